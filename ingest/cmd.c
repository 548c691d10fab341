/*
 * cmd.c - weft-ingest's commands: validation and routing of the commands a
 * ranker answers (EVENT, RECS, RERANK, HISTORY, SEGMENTS), and the ones
 * answered here (PING, ECHO, QUIT, SELECT, INFO, CONFIG GET, COMMAND,
 * STOCK), and where the segment commands go (SUBSCRIBE and friends:
 * pubsub.c; TRIGGERS: notes.c; SEGPREVIEW: fan.c). Linked only into
 * weft-ingest.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "shm/front.h"
#include "lib/proto.h"

static int is(const struct wf_resp_arg *a, const char *s)
{
	return wf_resp_arg_is(a, s);
}

/* Reply now (in order): an error. */
static int err(struct ingest_ctx *ctx, struct ingest_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int err(struct ingest_ctx *ctx, struct ingest_conn *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->tmp.len = 0;
	wf_resp_w_error(&ctx->tmp, "ERR %s", msg);
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.errors, 1, memory_order_relaxed); /* stats */
	return ingest_reply_local(ctx, c, ctx->tmp.data, ctx->tmp.len, 0);
}

static int reply(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	return ingest_reply_local(ctx, c, ctx->tmp.data, ctx->tmp.len, 0);
}

static void quoted(char *out, size_t n, const struct wf_resp_arg *a)
{
	wf_escape(out, n, a->p, WF_MIN(a->len, 64u));
}

/* ---- ranker commands ---- */

/* 0 if a is a valid id, else -EINVAL with the error replied. */
static int valid_id(struct ingest_ctx *ctx, struct ingest_conn *c, const char *what, const struct wf_resp_arg *a)
{
	char q[300];

	if (wf_id_valid(a->p, a->len))
		return 0;
	quoted(q, sizeof(q), a);
	err(ctx, c, "invalid %s '%s': 1..%u printable bytes without spaces", what, q, WF_ID_MAX);
	return -EINVAL;
}

/* EVENT's arguments past its arity: 0, or -EINVAL with the error replied. */
static int check_event(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r)
{
	char q[300];

	if (r->argc - 1 > WF_JOURNAL_MAX_ARGS) {
		err(ctx, c, "EVENT has too many fields (at most %u)", (WF_JOURNAL_MAX_ARGS - 4) / 2);
		return -EINVAL;
	}
	if (valid_id(ctx, c, "session", &r->argv[1]) < 0 || valid_id(ctx, c, "user", &r->argv[2]) < 0 ||
	    valid_id(ctx, c, "item", &r->argv[4]) < 0)
		return -EINVAL;
	if (wf_event_from_name(r->argv[3].p, r->argv[3].len) < 0) {
		quoted(q, sizeof(q), &r->argv[3]);
		err(ctx, c, "unknown event type '%s' (view click pdp hover dwell scroll search cart_add cart_remove "
			    "purchase)", q);
		return -EINVAL;
	}
	for (uint32_t i = 5; i < r->argc; i += 2) {
		const struct wf_resp_arg *f = &r->argv[i], *v = &r->argv[i + 1];
		int64_t n;

		if (f->len == 0 || f->len > 32 || v->len > 1024) {
			err(ctx, c, "EVENT field names are 1..32 bytes and values at most 1024");
			return -EINVAL;
		}
		if ((is(f, "ms") || is(f, "depth") || is(f, "qty") || is(f, "ts")) &&
		    (wf_parse_i64(v->p, v->len, &n) < 0 || n < 0)) {
			quoted(q, sizeof(q), f);
			err(ctx, c, "EVENT field '%s' wants a non-negative integer", q);
			return -EINVAL;
		}
	}
	return 0;
}

/* RECS's arguments past its arity (wf_recs_args_parse): 0 and in
 * *ret_front_k the k a front table may answer (0: none may: EXPLAIN,
 * SIZE, or k past WF_FRONT_ITEMS), or -EINVAL with the error replied. */
static int check_recs(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r,
		      uint32_t *ret_front_k, struct wf_msg_recs *ret_recs)
{
	struct wf_arg av[WF_RESP_MAX_ARGS];
	struct wf_recs_args ra;
	uint32_t bad = 0;
	char msg[400];
	int e;

	if (valid_id(ctx, c, "session", &r->argv[1]) < 0 || valid_id(ctx, c, "user", &r->argv[2]) < 0)
		return -EINVAL;
	for (uint32_t i = 1; i < r->argc; i++)
		av[i - 1] = (struct wf_arg){ r->argv[i].p, r->argv[i].len };
	e = wf_recs_args_parse(av, r->argc - 1, &ra, &bad);
	if (e == 0) {
		*ret_front_k = ra.explain || ra.size || ra.k > WF_FRONT_ITEMS ? 0 : ra.k; /* never published */
		wf_msg_recs_of(&ra, av, ret_recs);
		return 0;
	}
	wf_recs_args_error(e, e == -EINVAL ? NULL : &av[bad], msg, sizeof(msg));
	err(ctx, c, "%s", msg);
	return -EINVAL;
}

/* A ranker command's arguments (its arity from the command table, then
 * each command's checks): 0, or -EINVAL with the error replied. RECS:
 * *ret_front_k as check_recs() gives it. */
static int check_args(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r,
		      const struct wf_cmd_info *ci, uint32_t *ret_front_k, struct wf_msg_recs *ret_recs)
{
	if (wf_cmd_arity(ci, r->argc - 1) < 0) {
		err(ctx, c, "%s", ci->usage);
		return -EINVAL;
	}
	switch (ci->code) {
	case WF_CMD_EVENT:
		return check_event(ctx, c, r);
	case WF_CMD_RECS:
		return check_recs(ctx, c, r, ret_front_k, ret_recs);
	case WF_CMD_RERANK: {
		struct wf_arg av[WF_RESP_MAX_ARGS];
		uint32_t bad;

		for (uint32_t i = 1; i < r->argc; i++) {
			if (valid_id(ctx, c, i == 1 ? "session" : i == 2 ? "user" : "item", &r->argv[i]) < 0)
				return -EINVAL;
			av[i - 1] = (struct wf_arg){ r->argv[i].p, r->argv[i].len };
		}
		if (wf_rerank_args_check(av, r->argc - 1, &bad) < 0) {
			err(ctx, c, "%s", ci->usage);
			return -EINVAL;
		}
		return 0;
	}
	default: /* HISTORY session, SEGMENTS session user */
		for (uint32_t i = 1; i < r->argc; i++)
			if (valid_id(ctx, c, i == 1 ? "session" : "user", &r->argv[i]) < 0)
				return -EINVAL;
		return 0;
	}
}

/* 1 if every request forwarded to the shard before the route table last
 * forgot entries has been applied by its ranker (see layout.h, quiet). */
static int forgotten_applied(const struct ingest_ctx *ctx, struct ingest_shard *sh)
{
	if (sh->quiet_rot != ctx->route.forgets + 1) {
		sh->quiet_rot = ctx->route.forgets + 1;
		sh->quiet_mark = wf_ring_prod_pos(&sh->req);
		sh->quiet_released = 0;
	}
	/* Once released, always released (the tail only moves on), and the
	 * acquire that saw it orders every later load here: the ring's tail,
	 * a line the ranker keeps writing, is read only until then. */
	if (!sh->quiet_released)
		sh->quiet_released = wf_ring_prod_released(&sh->req, sh->quiet_mark);
	return sh->quiet_released;
}

/* "*n\r\n", then per item "$len\r\nid\r\n", into ctx->tmp (the bulk
 * lengths are at most 3 digits: ids are under 256 bytes). */
static int front_render(struct ingest_ctx *ctx, const struct wf_front_answer *a)
{
	struct wf_buf *b = &ctx->tmp;
	char *p;

	b->len = 0;
	if (wf_buf_reserve(b, 8 + (size_t)a->bytes + (size_t)a->n * 8) < 0)
		return -ENOMEM;
	p = b->data;
	*p++ = '*';
	if (a->n >= 10)
		*p++ = (char)('0' + a->n / 10);
	*p++ = (char)('0' + a->n % 10);
	*p++ = '\r';
	*p++ = '\n';
	for (uint32_t i = 0; i < a->n; i++) {
		uint32_t len;
		const char *id = wf_front_answer_id(a, i, &len);

		*p++ = '$';
		if (len >= 100)
			*p++ = (char)('0' + len / 100);
		if (len >= 10)
			*p++ = (char)('0' + len / 10 % 10);
		*p++ = (char)('0' + len % 10);
		*p++ = '\r';
		*p++ = '\n';
		memcpy(p, id, len);
		p += len;
		*p++ = '\r';
		*p++ = '\n';
	}
	b->len = (size_t)(p - b->data);
	return 0;
}

/* A front-table key as built for one shard (see front_key()); k: the
 * request's (check_recs()), 0 when no entry may answer it. */
struct front_key {
	uint32_t shard;
	uint32_t k;
	struct wf_front_key key;
};

/*
 * Build r's front key (quiet: with the session emptied) for shard, and
 * start loading its set (wf_front_prefetch: all its lines in flight at
 * once). 0, or -ENOENT when r cannot be answered from a front table.
 */
static int front_key(struct ingest_ctx *ctx, const struct wf_resp_req *r, uint32_t shard, int quiet,
		     struct front_key *fk)
{
	struct ingest_shard *sh = &ctx->shards[shard];

	fk->shard = UINT32_MAX; /* until built */
	if (!sh->front || !fk->k)
		return -ENOENT;
	wf_front_key_init(&fk->key, quiet);
	for (uint32_t i = quiet ? 2 : 1; i < r->argc; i++)
		if (wf_front_key_add(&fk->key, r->argv[i].p, (uint32_t)r->argv[i].len) < 0)
			return -ENOENT;
	wf_front_key_seal(&fk->key);
	fk->shard = shard;
	wf_front_prefetch(sh->front, &fk->key, fk->k);
	return 0;
}

/*
 * RECS from the shard's front table (wf_front_lookup: the ranker's
 * published answer to these exact arguments, if it still holds, filtered
 * by live stock the rankers' way). fk: the key (front_key() for this
 * shard, or built here when fk->shard is another). quiet_hash, when not
 * 0: the session id's hash (the route table's key), and fk is the quiet
 * key (the caller knows no EVENT was routed for the session under its
 * route entry). now_ms: the wall clock read for this request.
 * Returns 0 (answered), -ENOENT (miss: forward it) or -ENOMEM.
 */
static int front_recs(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r, uint32_t shard,
		      uint64_t ver, uint64_t quiet_hash, uint64_t now_ms, struct front_key *fk)
{
	struct ingest_shard *sh = &ctx->shards[shard];
	const struct wf_front_reader rd = {
		.front = sh->front, .sc = sh->sc, .ctl = ctx->shm->ctl, .stock = ctx->shm->stock,
		.mirror = &ctx->front_stock, .epoch = ctx->epoch,
	};
	struct wf_front_answer a;

	if (fk->shard != shard && front_key(ctx, r, shard, quiet_hash != 0, fk) < 0)
		return -ENOENT;
	if (quiet_hash) {
		if (!forgotten_applied(ctx, sh))
			return -ENOENT;
		/* Its cache miss overlaps the entry's (read in wf_front_lookup). */
		__builtin_prefetch(wf_front_live(sh->front, quiet_hash));
	}
	if (wf_front_lookup(&rd, &fk->key, ver, fk->k, quiet_hash, now_ms, &a) < 0)
		return -ENOENT;
	if (front_render(ctx, &a) < 0)
		return -ENOMEM;
	ctx->recs_front++;
	ctx->recs_quiet += quiet_hash != 0;
	ctx->lat.series = WF_LAT_RECS_FRONT;
	return ingest_reply_local(ctx, c, ctx->tmp.data, ctx->tmp.len, 0) < 0 ? -ENOMEM : 0;
}

/* An EVENT with the field kafka: weft-kafka's, from a Kafka partition. */
static int event_from_kafka(const struct wf_resp_req *r)
{
	for (uint32_t i = 5; i + 1 < r->argc; i += 2)
		if (is(&r->argv[i], "kafka"))
			return 1;
	return 0;
}

/*
 * Partitioned boxes (--kafka-partitions with --kafka-peers, lib/part.h):
 * the partition of the command's shopper if another box owns it, else -1
 * (always for an EVENT from_kafka).
 * The key is the Kafka message key, the user, or the session for an
 * anonymous visitor. HISTORY names only a session: keyed by it, and asked
 * only when this box holds no EVENT of it (the caller's route probe), so a
 * logged-in shopper's session is answered by the box of the user.
 * An EVENT weft-kafka sends (field kafka) came from a partition this box
 * was assigned: it is never redirected (a producer with another
 * partitioner is not refused here). One CRC-32 and one table lookup.
 */
static int64_t moved_partition(const struct ingest_ctx *ctx, const struct wf_resp_req *r, int cmd, int from_kafka)
{
	const struct wf_resp_arg *k = &r->argv[1];
	uint32_t p;

	if (cmd != WF_CMD_HISTORY && !wf_user_is_anon(r->argv[2].p, r->argv[2].len))
		k = &r->argv[2];
	p = wf_part_of(k->p, k->len, ctx->part.n);
	if (!wf_part_owner(&ctx->part, p))
		return -1;
	return from_kafka ? -1 : (int64_t)p;
}

/* Reply -MOVED <partition> <address> (as Redis Cluster), counted. */
static int moved(struct ingest_ctx *ctx, struct ingest_conn *c, uint32_t p)
{
	ctx->tmp.len = 0;
	wf_resp_w_error(&ctx->tmp, "MOVED %u %s", p, wf_part_owner(&ctx->part, p));
	/* relaxed: statistics for INFO/STATS readers, no ordering. */
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.redirects, 1, memory_order_relaxed);
	return reply(ctx, c);
}

static int forward(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r,
		   const struct wf_cmd_info *ci)
{
	int64_t mp;
	struct front_key fk = { .shard = UINT32_MAX, .k = 0 };
	struct wf_route_hit hit;
	const char *user = NULL;
	size_t ulen = 0;
	uint64_t now_ms;
	uint32_t shard;
	int cmd = ci->code, from_kafka;

	struct wf_msg_recs recs;

	if (check_args(ctx, c, r, ci, &fk.k, &recs) < 0)
		return 0;
	/* weft-kafka's connection: a restarted weft-kafka reads the journal
	 * only once no such connection is left (INFO kafka_conns, kafka/README). */
	from_kafka = cmd == WF_CMD_EVENT && event_from_kafka(r);
	if (from_kafka && !c->kafka) {
		c->kafka = 1;
		ctx->kafka_conns++;
	}
	if (wf_unlikely(ctx->part.n) && cmd != WF_CMD_HISTORY && (mp = moved_partition(ctx, r, cmd, from_kafka)) >= 0)
		return moved(ctx, c, (uint32_t)mp);
	if (cmd != WF_CMD_HISTORY) {
		user = r->argv[2].p;
		ulen = r->argv[2].len;
	}
	/* RECS naming a user: the quiet key's set starts loading in the shard
	 * of a session no EVENT pinned (its user's) while the route probe
	 * misses. (Anonymous: one quiet entry per k, always in cache; it is
	 * built only if needed.) */
	if (cmd == WF_CMD_RECS && !wf_user_is_anon(user, ulen))
		front_key(ctx, r, wf_shard_of(user, ulen, ctx->nshards), 1, &fk);
	now_ms = wf_wall_ms();
	shard = wf_route_lookup(&ctx->route, r->argv[1].p, r->argv[1].len, user, ulen, now_ms, cmd == WF_CMD_EVENT,
				&hit);
	if (wf_unlikely(ctx->part.n) && cmd == WF_CMD_HISTORY && !hit.evented && (mp = moved_partition(ctx, r, cmd, 0)) >= 0)
		return moved(ctx, c, (uint32_t)mp);
	if (cmd == WF_CMD_RECS) {
		/* A session with no EVENT routed may have no state: try the
		 * user's quiet answer; then the session's own key, unless no
		 * request was routed at its version yet (pinned just now, or an
		 * EVENT since: a page view's RECS), so nothing can have been
		 * published for it and the lookup's cache misses are saved. */
		int f = hit.evented ? -ENOENT : front_recs(ctx, c, r, shard, 0, hit.key, now_ms, &fk);
		if (f == -ENOENT && hit.asked) {
			fk.shard = UINT32_MAX; /* the session's own key */
			f = front_recs(ctx, c, r, shard, hit.ver, 0, now_ms, &fk);
		}
		if (f != -ENOENT)
			return f;
	}
	return ingest_forward(ctx, c, shard, cmd, r, hit.ver, cmd == WF_CMD_RECS ? &recs : NULL);
}

/* ---- local commands ---- */

/* INFO [section...]: as Redis, no argument (or all/default/everything)
 * gives every section; otherwise only the named ones. */
static int info_wants(const struct wf_resp_req *r, const char *section)
{
	if (r->argc < 2)
		return 1;
	for (uint32_t i = 1; i < r->argc; i++)
		if (is(&r->argv[i], section) || is(&r->argv[i], "all") || is(&r->argv[i], "default") ||
		    is(&r->argv[i], "everything"))
			return 1;
	return 0;
}

/* INFO's journal_failed: "no", or why the journal cannot write. */
static const char *journal_state(struct wf_ctl *ctl)
{
	/* relaxed: display; ingest's own field */
	uint64_t e = atomic_load_explicit(&ctl->ingest_stats.journal_failed, memory_order_relaxed);

	return e ? strerror((int)e) : "no";
}

static int cmd_info(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r)
{
	struct wf_buf b = { 0 };
	struct wf_ctl *ctl = ctx->shm->ctl;

	if (info_wants(r, "server"))
		wf_buf_printf(&b, "# Server\r\nweft_version:%s\r\nredis_version:7.0.0\r\nprocess_id:%d\r\n"
			      "uptime_in_seconds:%llu\r\nshards:%u\r\n\r\n",
			      WEFT_VERSION, (int)getpid(), (unsigned long long)((wf_wall_ms() - ctx->start_ms) / 1000),
			      ctx->nshards);
	if (info_wants(r, "clients"))
		wf_buf_printf(&b,
			      "# Clients\r\nconnected_clients:%u\r\nmaxclients:%u\r\nidle_timeout_s:%llu\r\n"
			      "request_timeout_s:%llu\r\nclients_timed_out:%llu\r\n\r\n",
			      ctx->nconns, ctx->max_clients, (unsigned long long)(ctx->idle_ns / 1000000000ull),
			      (unsigned long long)(ctx->request_ns / 1000000000ull),
			      (unsigned long long)atomic_load_explicit(&ctl->ingest_stats.timeouts,
								       memory_order_relaxed)); /* display */
	if (info_wants(r, "stats")) {
		wf_buf_printf(&b,
			      "# Stats\r\ntotal_commands_processed:%llu\r\nevents_acked:%llu\r\nerrors:%llu\r\n"
			      "backpressure_stalls:%llu\r\nsessions_routed:%llu\r\njournal_durable_lsn:%llu\r\n"
			      "journal_durability:%s\r\njournal_failed:%s\r\njournal_errors:%llu\r\n"
			      "recs_front_answers:%llu\r\nrecs_quiet_answers:%llu\r\nkafka_partitions:%u\r\n"
			      "redirects:%llu\r\njournal_next_lsn:%llu\r\nkafka_conns:%u\r\n",
			      (unsigned long long)ctx->commands,
			      (unsigned long long)atomic_load_explicit(&ctl->ingest_stats.events_acked,
								       memory_order_relaxed), /* display */
			      (unsigned long long)atomic_load_explicit(&ctl->ingest_stats.errors, memory_order_relaxed),
			      (unsigned long long)atomic_load_explicit(&ctl->ingest_stats.backpressure_stalls,
								       memory_order_relaxed),
			      (unsigned long long)wf_route_count(&ctx->route),
			      (unsigned long long)wf_journal_durable_lsn(ctx->journal),
			      ctx->durability == WF_JOURNAL_FSYNC ? "fsync" : "os", journal_state(ctl),
			      (unsigned long long)atomic_load_explicit(&ctl->ingest_stats.journal_errors,
								       memory_order_relaxed),
			      (unsigned long long)ctx->recs_front,
			      (unsigned long long)ctx->recs_quiet, ctx->part.n,
			      (unsigned long long)atomic_load_explicit(&ctl->ingest_stats.redirects,
								       memory_order_relaxed), /* display */
			      (unsigned long long)wf_journal_next_lsn(ctx->journal), ctx->kafka_conns);
		for (uint32_t s = 0; s < ctx->nshards; s++)
			wf_buf_printf(&b, "shard%u:requests_queued_bytes=%u,replies_queued_bytes=%u,pending=%llu\r\n", s,
				      wf_ring_used(ctx->shards[s].req.r), wf_ring_used(ctx->shards[s].rep.r),
				      (unsigned long long)(ctx->shards[s].fifo_tail - ctx->shards[s].fifo_head));
	}
	if (info_wants(r, "latencystats"))
		ingest_lat_info(ctx, &b);
	if (info_wants(r, "segments")) {
		if (b.len >= 4 && memcmp(b.data + b.len - 4, "\r\n\r\n", 4) != 0)
			wf_buf_printf(&b, "\r\n"); /* after the stats section: a blank line */
		wf_buf_printf(&b, "# Segments\r\n");
		ingest_notes_info(ctx, &b);
		ingest_pubsub_info(ctx, &b);
	}
	if (b.len >= 4 && b.data[b.len - 1] == '\n' && b.data[b.len - 3] == '\n')
		b.len -= 2; /* no blank line after the last section */
	ctx->tmp.len = 0;
	wf_resp_w_bulk(&ctx->tmp, b.data ? b.data : "", b.len);
	wf_buf_fini(&b);
	return reply(ctx, c);
}

static int cmd_config(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r)
{
	static const char *const kv[][2] = {
		{ "save", "" }, { "appendonly", "no" }, { "databases", "1" }, { "maxclients", NULL },
	};
	char pat[128], val[32];
	uint32_t n = 0;

	if (r->argc != 3 || !is(&r->argv[1], "GET")) {
		return err(ctx, c, "only CONFIG GET pattern is supported");
	}
	snprintf(pat, sizeof(pat), "%.*s", (int)WF_MIN(r->argv[2].len, 120u), r->argv[2].p);
	for (size_t i = 0; i < WF_ARRAY_SIZE(kv); i++)
		n += fnmatch(pat, kv[i][0], FNM_CASEFOLD) == 0;
	ctx->tmp.len = 0;
	wf_resp_w_array(&ctx->tmp, 2 * n);
	for (size_t i = 0; i < WF_ARRAY_SIZE(kv); i++) {
		if (fnmatch(pat, kv[i][0], FNM_CASEFOLD) != 0)
			continue;
		wf_resp_w_bulk_str(&ctx->tmp, kv[i][0]);
		snprintf(val, sizeof(val), "%u", ctx->max_clients);
		wf_resp_w_bulk_str(&ctx->tmp, kv[i][1] ? kv[i][1] : val);
	}
	return reply(ctx, c);
}

static int cmd_stock(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r,
		     const struct wf_cmd_info *ci)
{
	struct wf_stock_view v[WF_STOCK_SIZES];
	int64_t qty;
	int n;

	if (wf_cmd_arity(ci, r->argc - 1) < 0)
		return err(ctx, c, "%s", ci->usage);
	if (valid_id(ctx, c, "item", &r->argv[1]) < 0)
		return 0;
	if (r->argc == 4) {
		if (wf_parse_i64(r->argv[3].p, r->argv[3].len, &qty) < 0 || qty < 0 || qty > INT32_MAX)
			return err(ctx, c, "STOCK qty must be an integer from 0 to %d", INT32_MAX);
		n = wf_stock_set(ctx->shm->stock, r->argv[1].p, r->argv[1].len, r->argv[2].p, r->argv[2].len,
				 (int32_t)qty);
		/* Even on failure (a slot may have been taken): see front.c.
		 * Out of memory: no mirror, rebuilt before use. */
		(void)wf_front_stock_note(&ctx->front_stock, ctx->shm->stock, wf_stock_key(r->argv[1].p, r->argv[1].len));
		if (n == -EINVAL)
			return err(ctx, c, "STOCK size names are at most %u bytes", WF_STOCK_SIZE_NAME - 1);
		if (n == -ENOSPC)
			return err(ctx, c, "stock table full (or more than %u sizes for this item): raise the "
					   "segment's stock capacity", WF_STOCK_SIZES);
		ctx->tmp.len = 0;
		wf_resp_w_int(&ctx->tmp, 1);
		return reply(ctx, c);
	}
	n = wf_stock_read(ctx->shm->stock, r->argv[1].p, r->argv[1].len, v, WF_STOCK_SIZES);
	ctx->tmp.len = 0;
	if (r->argc == 3) {
		for (int i = 0; i < n; i++)
			if (strlen(v[i].name) == r->argv[2].len && memcmp(v[i].name, r->argv[2].p, r->argv[2].len) == 0) {
				wf_resp_w_int(&ctx->tmp, v[i].qty);
				return reply(ctx, c);
			}
		wf_resp_w_null(&ctx->tmp);
		return reply(ctx, c);
	}
	wf_resp_w_array(&ctx->tmp, n > 0 ? 2 * n : 0);
	for (int i = 0; i < n; i++) {
		wf_resp_w_bulk_str(&ctx->tmp, v[i].name);
		wf_resp_w_int(&ctx->tmp, v[i].qty);
	}
	return reply(ctx, c);
}

int ingest_dispatch(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r)
{
	const struct wf_resp_arg *a = &r->argv[0];
	const struct wf_cmd_info *ci = wf_cmd_find(a->p, a->len);
	char q[300];

	int e;

	ctx->commands++;
	/* Its local replies' latency series (front_recs() sets its own). */
	ctx->lat.series = ci && ci->code == WF_CMD_EVENT ? WF_LAT_EVENT : WF_LAT_LOCAL;
	/* Pub/sub commands, and every command of a subscribed connection. */
	if ((c->sub || (a->len && strchr("SsUuPpRr", a->p[0]))) && (e = ingest_pubsub_dispatch(ctx, c, r)) != 0)
		return e < 0 ? e : 0;
	if (ci && ci->code == WF_CMD_SEGPREVIEW)
		return ingest_fan_segpreview(ctx, c, r, ci);
	if (ci && ci->code)
		return forward(ctx, c, r, ci);
	ctx->tmp.len = 0;
	if (is(a, "PING")) {
		if (r->argc > 1)
			wf_resp_w_bulk(&ctx->tmp, r->argv[1].p, r->argv[1].len);
		else
			wf_resp_w_simple(&ctx->tmp, "PONG");
		return reply(ctx, c);
	}
	if (is(a, "ECHO")) {
		if (r->argc != 2)
			return err(ctx, c, "wrong number of arguments for 'echo' command");
		wf_resp_w_bulk(&ctx->tmp, r->argv[1].p, r->argv[1].len);
		return reply(ctx, c);
	}
	if (is(a, "QUIT")) {
		wf_resp_w_simple(&ctx->tmp, "OK");
		return ingest_reply_local(ctx, c, ctx->tmp.data, ctx->tmp.len, 1);
	}
	if (is(a, "SELECT")) {
		if (r->argc == 2 && r->argv[1].len == 1 && r->argv[1].p[0] == '0') {
			wf_resp_w_simple(&ctx->tmp, "OK");
			return reply(ctx, c);
		}
		return err(ctx, c, "weft has one database: SELECT 0");
	}
	if (is(a, "CLIENT")) {
		wf_resp_w_simple(&ctx->tmp, "OK");
		return reply(ctx, c);
	}
	if (is(a, "INFO"))
		return cmd_info(ctx, c, r);
	if (is(a, "CONFIG"))
		return cmd_config(ctx, c, r);
	if (is(a, "TRIGGERS"))
		return ingest_cmd_triggers(ctx, c, r);
	if (is(a, "COMMAND")) {
		wf_resp_w_array(&ctx->tmp, 0);
		return reply(ctx, c);
	}
	if (ci) /* STOCK */
		return cmd_stock(ctx, c, r, ci);
	quoted(q, sizeof(q), a);
	return err(ctx, c, "unknown command '%s' (weft speaks EVENT RECS RERANK STOCK SEGMENTS "
		       "SEGPREVIEW HISTORY SUBSCRIBE PSUBSCRIBE TRIGGERS PING INFO)", q);
}
