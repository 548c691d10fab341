/*
 * sessions.c - weft-ranker's sessions: the table in the session arena
 * (idle TTL), each session's history (a compact record codec, replayed
 * into a fresh model after a generation swap), and EVENT. Linked only
 * into weft-ranker.
 */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <xxhash.h>
#include <strings.h>
#include <stdio.h>
#include <string.h>

#include "lib/journal.h"
#include "lib/proto.h"
#include "rankers/ranker_int.h"
#include "shm/front.h"

void *ranker_alloc(unsigned arena, size_t n)
{
	return mallocx(n, MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE);
}

/* Bytes jemalloc really hands out for a request of n (its size class). */
static uint64_t usable(size_t n)
{
	return n ? nallocx(n, 0) : 0;
}

void ranker_free(void *p)
{
	if (p)
		dallocx(p, MALLOCX_TCACHE_NONE);
}

enum { buckets = RANKER_SESSION_TABLE };

int ranker_sessions_init(struct ranker_ctx *ctx)
{
	ctx->sessions = ranker_alloc(ctx->sess_arena, buckets * sizeof(*ctx->sessions));
	if (!ctx->sessions)
		return -ENOMEM;
	memset(ctx->sessions, 0, buckets * sizeof(*ctx->sessions));
	return 0;
}

static uint64_t session_size(const struct ranker_session *s)
{
	return usable(sizeof(*s) + s->id_len + 1u) + usable(s->hist_cap) + (s->user ? usable(s->user_len + 1u) : 0);
}

static void lru_unlink(struct ranker_ctx *ctx, struct ranker_session *s)
{
	if (s->lru_prev)
		s->lru_prev->lru_next = s->lru_next;
	else
		ctx->lru_head = s->lru_next;
	if (s->lru_next)
		s->lru_next->lru_prev = s->lru_prev;
	else
		ctx->lru_tail = s->lru_prev;
	s->lru_prev = s->lru_next = NULL;
}

static void lru_push_head(struct ranker_ctx *ctx, struct ranker_session *s)
{
	s->lru_prev = NULL;
	s->lru_next = ctx->lru_head;
	if (ctx->lru_head)
		ctx->lru_head->lru_prev = s;
	else
		ctx->lru_tail = s;
	ctx->lru_head = s;
}

void ranker_session_touch(struct ranker_ctx *ctx, struct ranker_session *s, uint64_t now_ms)
{
	s->last_ms = now_ms;
	if (ctx->lru_head == s)
		return;
	lru_unlink(ctx, s);
	lru_push_head(ctx, s);
}

/* Free s; keep_live: the spill store holds it now, so the live-session
 * filter keeps counting it (ingest must not answer it as a session with
 * no state). Its segments announce their exits (why: the reason). */
static void session_free(struct ranker_ctx *ctx, struct ranker_session *s, const char *why, int keep_live)
{
	ranker_segs_forget(ctx, s, why);
	if (!keep_live)
		wf_front_live_add(ctx->live, s->key, -1);
	lru_unlink(ctx, s);
	ctx->session_bytes -= session_size(s);
	ranker_free(s->hist);
	ranker_free(s->user);
	ranker_free(s);
	ctx->nsessions--;
}

void ranker_sessions_fini(struct ranker_ctx *ctx)
{
	if (!ctx->sessions)
		return;
	for (uint32_t b = 0; b < buckets; b++)
		while (ctx->sessions[b]) {
			struct ranker_session *s = ctx->sessions[b];
			ctx->sessions[b] = s->next;
			session_free(ctx, s, "stopped", 0);
		}
	ranker_free(ctx->sessions);
	ctx->sessions = NULL;
}

static int arg_eq(const struct wf_msg_arg *a, const char *s)
{
	size_t n = strlen(s);
	return a->len == n && strncasecmp(a->p, s, n) == 0;
}

/* A new empty session in the table (id not in it); counted: the
 * live-session filter counts its key already (the spill store holds it). */
static struct ranker_session *session_new(struct ranker_ctx *ctx, const char *id, uint32_t len, uint64_t key,
					  uint64_t now_ms, int counted)
{
	struct ranker_session *s;

	if (len > WF_ID_MAX)
		return NULL;
	s = ranker_alloc(ctx->sess_arena, sizeof(*s) + len + 1);
	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->key = key;
	s->id_len = (uint8_t)len;
	memcpy(s->id, id, len);
	s->id[len] = '\0';
	s->last_ms = now_ms; /* and the head of the activity list, below */
	s->snap_gen = ctx->cur ? ctx->cur->gen : 0;
	s->stamp = ++ctx->stamp_next;
	wf_rank_session_init(&s->model);
	s->next = ctx->sessions[key & (buckets - 1)];
	ctx->sessions[key & (buckets - 1)] = s;
	lru_push_head(ctx, s);
	ctx->nsessions++;
	ctx->session_bytes += session_size(s);
	if (!counted)
		wf_front_live_add(ctx->live, key, +1);
	return s;
}

static struct ranker_session *session_get(struct ranker_ctx *ctx, const struct wf_msg_arg *id, uint64_t now_ms)
{
	struct ranker_session *s = ranker_session_find(ctx, id);
	uint64_t key = ranker_session_key(ctx, id);

	if (s)
		return s;
	return session_new(ctx, id->p, id->len, key, now_ms, ranker_spill_has(ctx, key));
}

/* Unchain s from its bucket and free it: the chain's length, no more.
 * Its record goes to the spill store first (when there is one), so it
 * comes back whole if it returns. */
static void session_drop(struct ranker_ctx *ctx, struct ranker_session *s, const char *why)
{
	struct ranker_session **pp = &ctx->sessions[s->key & (buckets - 1)];
	int spilled;

	/* Its exits first, so the record holds the state after them (the
	 * sequences advanced: a restored session's next key is new). */
	ranker_segs_leave(ctx, s, why);
	spilled = ctx->spill && ranker_spill_put(ctx, s) == 0;

	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	session_free(ctx, s, why, spilled);
}

/* Unchain and free s without spilling it (a restore that failed). */
static void session_drop_nospill(struct ranker_ctx *ctx, struct ranker_session *s)
{
	struct ranker_session **pp = &ctx->sessions[s->key & (buckets - 1)];

	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	session_free(ctx, s, "dropped", ranker_spill_has(ctx, s->key));
}

uint64_t ranker_sessions_allowance(const struct ranker_ctx *ctx)
{
	uint64_t fixed = (uint64_t)usable(buckets * sizeof(*ctx->sessions)) + (ctx->cur ? ctx->cur->bytes : 0) +
			 ranker_spill_index_bytes(ctx);
	uint64_t floor = ctx->memory_budget / 4;

	return ctx->memory_budget > fixed + floor ? ctx->memory_budget - fixed : floor;
}

/* Evict least recently active sessions (never keep) while the sessions
 * use more than their allowance, at most RANKER_EVICT_STEP. A session
 * that comes back is restored from the spill store (rankers/README.md,
 * "Memory budget"). */
static void sessions_trim(struct ranker_ctx *ctx, const struct ranker_session *keep)
{
	uint64_t allow = ranker_sessions_allowance(ctx);

	for (uint32_t i = 0; i < RANKER_EVICT_STEP && ctx->session_bytes > allow; i++) {
		struct ranker_session *s = ctx->lru_tail;
		if (!s || s == keep)
			break;
		if (!ctx->budget_warned) {
			wf_warn("shard %u reached its memory budget (%llu MB: sessions %llu MB, generation %llu MB): "
				"evicting the least recently active sessions; raise --memory-budget to keep more",
				ctx->shard, (unsigned long long)(ctx->memory_budget >> 20),
				(unsigned long long)(ctx->session_bytes >> 20),
				(unsigned long long)((ctx->cur ? ctx->cur->bytes : 0) >> 20));
			ctx->budget_warned = 1;
		}
		session_drop(ctx, s, "evicted");
		ctx->sessions_evicted++;
	}
}

uint32_t ranker_sessions_expire(struct ranker_ctx *ctx, uint64_t now_ms)
{
	uint64_t evicted = ctx->sessions_evicted;
	uint32_t n = 0;

	/* The tail is the least recently active: once it is young enough,
	 * every other one is (a wall clock that went back expires nobody). */
	for (; n < RANKER_EVICT_STEP && ctx->lru_tail; n++) {
		struct ranker_session *s = ctx->lru_tail;
		if (now_ms <= s->last_ms || now_ms - s->last_ms <= ctx->session_ttl_ms)
			break;
		session_drop(ctx, s, "expired");
	}
	sessions_trim(ctx, NULL);
	return n + (uint32_t)(ctx->sessions_evicted - evicted);
}

int64_t ranker_item_index(struct ranker_ctx *ctx, const char *id, size_t len)
{
	if (!ctx->cur || wf_user_is_anon(id, len)) /* an anonymous user's "-": no item */
		return -1;
	return wf_snap_item_find(ctx->cur->snap, id, len);
}

/* Value field of an event: dwell "ms", else 0; and an optional "ts". */
static void event_fields(const struct wf_msg_arg *argv, uint32_t argc, uint32_t *ret_value, uint64_t *ret_ts)
{
	for (uint32_t i = 4; i + 1 < argc; i += 2) {
		int64_t v;
		if (wf_parse_i64(argv[i + 1].p, argv[i + 1].len, &v) < 0 || v < 0)
			continue;
		if (arg_eq(&argv[i], "ms"))
			*ret_value = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
		else if (arg_eq(&argv[i], "ts"))
			*ret_ts = (uint64_t)v;
	}
}

/*
 * History records, appended to s->hist (one allocation, doubled as it
 * grows, NULL until the first event), about 13 bytes for a plain event:
 *   varint   ts - previous record's ts (zigzag LEB128; the first: ts - 0)
 *   u8       event type (enum wf_event)
 *   u8       flags: HIST_USER the event named a user (not "-"),
 *            HIST_NEWUSER and it differs from the user the previous
 *            naming record named: u8 len + the id follow
 *   u8 len + item id
 *   u8 n     field/value args, each u16 len + bytes
 * Decoding walks from the start (struct ranker_hist_cur), which every reader
 * does anyway (HISTORY, segments, the rebuild after a swap).
 */
#define HIST_USER 1u
#define HIST_NEWUSER 2u

/* The varint of a record's ts delta d (zigzag LEB128) at p; its length. */
static uint32_t put_delta(uint8_t *p, int64_t d)
{
	uint64_t z = d < 0 ? ((uint64_t)~d << 1) | 1 : (uint64_t)d << 1;
	uint32_t n = 0;

	do {
		p[n++] = (uint8_t)((z & 0x7f) | (z > 0x7f ? 0x80 : 0));
		z >>= 7;
	} while (z);
	return n;
}

/* Make room for cap bytes of history (the used ones kept). 0 or -ENOMEM. */
static int hist_reserve(struct ranker_ctx *ctx, struct ranker_session *s, uint32_t need)
{
	uint32_t cap;
	uint8_t *n;

	if (need <= s->hist_cap)
		return 0;
	cap = (uint32_t)usable(WF_MAX(WF_MAX(s->hist_cap * 2, need), 32u));
	n = ranker_alloc(ctx->sess_arena, cap);
	if (!n)
		return -ENOMEM;
	if (s->hist_len)
		memcpy(n, s->hist, s->hist_len);
	ranker_free(s->hist);
	ctx->session_bytes += usable(cap) - usable(s->hist_cap);
	s->hist = n;
	s->hist_cap = cap;
	return 0;
}

/* Bytes the record of an event (argv as the EVENT's) takes at most. */
static uint32_t hist_need(const struct wf_msg_arg *argv, uint32_t argc, int new_user)
{
	uint32_t need = 10 + 3 + 1 + argv[3].len + 1;

	if (new_user && !wf_user_is_anon(argv[1].p, argv[1].len))
		need += 1 + argv[1].len;
	for (uint32_t i = 4; i < argc; i++)
		need += 2u + argv[i].len;
	return need;
}

/*
 * Make room for a record of need bytes: fold the oldest records out of
 * s's history until it holds fewer than RANKER_HISTORY_MAX and need more
 * bytes fit in RANKER_HISTORY_BYTES. HISTORY keeps the newest and counts
 * the folded ones (hist_folded); the model has applied every event. The
 * first record kept becomes the first: its ts delta is made absolute and,
 * when a user is current, that user is written into it (HIST_NEWUSER: the
 * decoder takes a user from any record that carries one, named by it or
 * not), since the record that named it may be gone. The later records are
 * kept byte for byte (their deltas and users are relative to what stays),
 * moved once. 0 or -ENOMEM.
 */
static int hist_fold(struct ranker_ctx *ctx, struct ranker_session *s, uint32_t need)
{
	struct wf_msg_arg a[WF_JOURNAL_MAX_ARGS];
	struct ranker_hist_cur cur = { 0 };
	uint8_t head[10 + 2 + 1 + 255];
	uint32_t argc, p = 0, hl, tail, n = 0;
	uint64_t ts;
	uint8_t flags;

	while ((s->hist_n - n >= RANKER_HISTORY_MAX || s->hist_len - p + need > RANKER_HISTORY_BYTES) &&
	       ranker_hist_next(s, &cur, &ts, a, &argc)) {
		p = cur.off; /* the record after the n + 1 folded */
		n++;
	}
	if (n == 0)
		return 0;
	if (!ranker_hist_next(s, &cur, &ts, a, &argc)) { /* every record folded */
		s->hist_len = 0;
		s->hist_last_ts = 0;
		goto folded;
	}
	/* Its header: the varint, type, flags, [u8 len + user]; the rest stays. */
	while (s->hist[p++] & 0x80)
		;
	flags = s->hist[p + 1];
	hl = put_delta(head, (int64_t)ts);
	head[hl++] = s->hist[p];
	head[hl++] = (uint8_t)(flags | (cur.user ? HIST_NEWUSER : 0));
	p += 2;
	if (flags & HIST_NEWUSER)
		p += 1u + s->hist[p];
	if (cur.user) {
		head[hl++] = (uint8_t)cur.user_len;
		memcpy(head + hl, cur.user, cur.user_len); /* cur.user points into hist: copied before it moves */
		hl += cur.user_len;
	}
	tail = s->hist_len - p;
	if (hist_reserve(ctx, s, hl + tail) < 0)
		return -ENOMEM;
	memmove(s->hist + hl, s->hist + p, tail);
	memcpy(s->hist, head, hl);
	s->hist_len = hl + tail;
folded:
	s->hist_n = (uint16_t)(s->hist_n - n);
	s->hist_folded = s->hist_folded > UINT32_MAX - n ? UINT32_MAX : s->hist_folded + n;
	return 0;
}

/* A record's head at p: the zigzag varint time delta (applied to
 * cur->ts), the type and the flags. Returns the offset after them. */
static inline uint32_t hist_head(const uint8_t *h, uint32_t p, struct ranker_hist_cur *cur, uint8_t *ret_type,
				 uint8_t *ret_flags)
{
	uint64_t z = 0;
	uint32_t shift = 0;

	do {
		z |= (uint64_t)(h[p] & 0x7f) << shift;
		shift += 7;
	} while (h[p++] & 0x80);
	cur->ts += (z & 1) ? ~(z >> 1) : (z >> 1);
	*ret_type = h[p++];
	*ret_flags = h[p++];
	return p;
}

/* Decode the record at cur: ts and args laid out as the EVENT's after the
 * session id (user type item [f v]...). Returns 1, or 0 past the end. */
int ranker_hist_next(const struct ranker_session *s, struct ranker_hist_cur *cur, uint64_t *ret_ts, struct wf_msg_arg *a,
		     uint32_t *ret_argc)
{
	const uint8_t *h = s->hist;
	uint32_t p = cur->off, argc = 3, nx;
	uint8_t type, flags, l8;

	if (p >= s->hist_len)
		return 0;
	p = hist_head(h, p, cur, &type, &flags);
	if (flags & HIST_NEWUSER) {
		cur->user_len = h[p];
		cur->user = (const char *)h + p + 1;
		p += 1u + cur->user_len;
	}
	if (flags & HIST_USER)
		a[0] = (struct wf_msg_arg){ cur->user, cur->user_len };
	else
		a[0] = (struct wf_msg_arg){ WF_ANON_USER, 1 };
	a[1] = (struct wf_msg_arg){ wf_event_name(type), (uint32_t)strlen(wf_event_name(type)) };
	l8 = h[p];
	a[2] = (struct wf_msg_arg){ (const char *)h + p + 1, l8 };
	p += 1u + l8;
	nx = h[p++];
	for (uint32_t i = 0; i < nx && argc < WF_JOURNAL_MAX_ARGS; i++) {
		uint16_t l;
		memcpy(&l, h + p, 2);
		a[argc++] = (struct wf_msg_arg){ (const char *)h + p + 2, l };
		p += 2u + l;
	}
	cur->off = p;
	*ret_ts = cur->ts;
	*ret_argc = argc;
	return 1;
}

int ranker_hist_scan(const struct ranker_session *s, struct ranker_hist_cur *cur, uint64_t *ret_ts, int *ret_type,
		     struct wf_msg_arg *ret_item)
{
	const uint8_t *h = s->hist;
	uint32_t p = cur->off, nx;
	uint8_t type, flags;

	if (p >= s->hist_len)
		return 0;
	p = hist_head(h, p, cur, &type, &flags);
	*ret_type = type;
	if (flags & HIST_NEWUSER)
		p += 1u + h[p];
	*ret_item = (struct wf_msg_arg){ (const char *)h + p + 1, h[p] };
	p += 1u + h[p];
	nx = h[p++];
	for (uint32_t i = 0; i < nx; i++) {
		uint16_t l;
		memcpy(&l, h + p, 2);
		p += 2u + l;
	}
	cur->off = p;
	*ret_ts = cur->ts;
	return 1;
}

/* Apply one event of item id to s's model: an item the snapshot lacks
 * by its key (lib/rank's live items: wf_stock_key(), the stock table's). */
static void model_apply(struct ranker_ctx *ctx, struct ranker_session *s, int type, const struct wf_msg_arg *id,
			uint32_t value)
{
	int64_t item = ranker_item_index(ctx, id->p, id->len);
	uint64_t key = item < 0 && !(id->len == 1 && id->p[0] == '-') ? wf_stock_key(id->p, id->len) : 0;

	wf_rank_session_apply_key(&s->model, ctx->cur->snap, &ctx->params, type, item, key, value);
}

int ranker_live_id(const struct ranker_session *s, uint32_t code, const char **ret_p, uint32_t *ret_len)
{
	struct wf_msg_arg a[WF_JOURNAL_MAX_ARGS + 1];
	struct ranker_hist_cur cur = { 0 };
	const char *p = NULL;
	uint32_t argc, len = 0;
	uint64_t key, ts;

	if (wf_rank_live_key(&s->model, code, &key) < 0)
		return -ENOENT;
	while (ranker_hist_next(s, &cur, &ts, a, &argc)) /* the newest wins */
		if (wf_stock_key(a[2].p, a[2].len) == key) {
			p = a[2].p;
			len = a[2].len;
		}
	if (!p)
		return -ENOENT;
	*ret_p = p;
	*ret_len = len;
	return 0;
}

/* Re-apply a session's history to a fresh model: after a snapshot swap
 * the item indexes of the old generation mean nothing. */
static void session_rebuild(struct ranker_ctx *ctx, struct ranker_session *s)
{
	struct wf_msg_arg a[WF_JOURNAL_MAX_ARGS + 1];
	struct ranker_hist_cur cur = { 0 };
	uint32_t argc;
	uint64_t ts;

	wf_rank_session_init(&s->model);
	s->snap_gen = ctx->cur ? ctx->cur->gen : 0;
	s->stamp = ++ctx->stamp_next; /* a new model: cached lists of the old one are stale */
	/* a[0] = session id, then user type item [f v]... as in an EVENT. */
	a[0] = (struct wf_msg_arg){ s->id, s->id_len };
	while (ctx->cur && ranker_hist_next(s, &cur, &ts, a + 1, &argc)) {
		uint32_t value = 0;
		uint64_t ets;
		event_fields(a, argc + 1, &value, &ets);
		model_apply(ctx, s, wf_event_from_name(a[2].p, a[2].len), &a[3], value);
	}
}

void ranker_session_fresh(struct ranker_ctx *ctx, struct ranker_session *s)
{
	if (s && ctx->cur && s->snap_gen != ctx->cur->gen)
		session_rebuild(ctx, s);
}

/* Append one event (argv as the EVENT's: session user type item [f v]...);
 * new_user: the user differs from the one the history named last. */
static int hist_append(struct ranker_ctx *ctx, struct ranker_session *s, uint64_t ts, int type,
		       const struct wf_msg_arg *argv, uint32_t argc, int new_user)
{
	int named = !wf_user_is_anon(argv[1].p, argv[1].len);
	uint32_t need = hist_need(argv, argc, new_user);
	uint8_t *p;

	if (need > UINT16_MAX)
		return -E2BIG;
	if (hist_reserve(ctx, s, s->hist_len + need) < 0)
		return -ENOMEM;
	p = s->hist + s->hist_len;
	p += put_delta(p, (int64_t)(ts - s->hist_last_ts));
	*p++ = (uint8_t)type;
	*p++ = (uint8_t)((named ? HIST_USER : 0) | (named && new_user ? HIST_NEWUSER : 0));
	if (named && new_user) {
		*p++ = (uint8_t)argv[1].len;
		memcpy(p, argv[1].p, argv[1].len);
		p += argv[1].len;
	}
	*p++ = (uint8_t)argv[3].len;
	memcpy(p, argv[3].p, argv[3].len);
	p += argv[3].len;
	*p++ = (uint8_t)(argc - 4);
	for (uint32_t i = 4; i < argc; i++) {
		uint16_t l = (uint16_t)argv[i].len;
		memcpy(p, &l, 2);
		memcpy(p + 2, argv[i].p, l);
		p += 2u + l;
	}
	s->hist_len = (uint32_t)(p - s->hist);
	s->hist_last_ts = ts;
	s->hist_n++;
	return 0;
}

/* Remember the user the session logged in as. 0 or -ENOMEM. */
static int session_set_user(struct ranker_ctx *ctx, struct ranker_session *s, const struct wf_msg_arg *u)
{
	char *n;

	if (s->user && s->user_len == u->len && memcmp(s->user, u->p, u->len) == 0)
		return 0;
	n = ranker_alloc(ctx->sess_arena, u->len + 1u);
	if (!n)
		return -ENOMEM;
	memcpy(n, u->p, u->len);
	n[u->len] = '\0';
	if (s->user)
		ctx->session_bytes -= usable(s->user_len + 1u);
	ranker_free(s->user);
	s->user = n;
	s->user_len = (uint8_t)u->len;
	ctx->session_bytes += usable(s->user_len + 1u);
	return 0;
}

int ranker_event(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, uint64_t ts_ms,
		 struct wf_buf *out)
{
	return ranker_event_lsn(ctx, argv, argc, ts_ms, 0, out);
}

int ranker_event_lsn(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, uint64_t ts_ms,
		     uint64_t lsn, struct wf_buf *out)
{
	struct ranker_session *s;
	uint32_t value = 0;
	int type, r, new_user, stale;

	if (wf_cmd_arity(wf_cmd_of(WF_CMD_EVENT), argc) < 0 || argc > WF_JOURNAL_MAX_ARGS + 1) {
		if (out)
			wf_resp_w_error(out, "ERR %s", wf_cmd_of(WF_CMD_EVENT)->usage);
		return -EINVAL;
	}
	type = wf_event_from_name(argv[2].p, argv[2].len);
	if (type < 0 || !wf_id_valid(argv[0].p, argv[0].len) || !wf_id_valid(argv[1].p, argv[1].len) ||
	    !wf_id_valid(argv[3].p, argv[3].len)) {
		if (out)
			wf_resp_w_error(out, "ERR bad event: unknown type or malformed id");
		return -EINVAL;
	}
	event_fields(argv, argc, &value, &ts_ms);
	s = session_get(ctx, &argv[0], wf_wall_ms());
	if (!s) {
		if (out)
			wf_resp_w_error(out, "ERR out of memory for sessions");
		return -ENOMEM;
	}
	if (lsn > ctx->applied_lsn)
		ctx->applied_lsn = lsn;
	if (lsn && lsn <= s->lsn) { /* in its state already (replayed, restored, caught up) */
		if (out)
			wf_resp_w_int(out, 1);
		return 0;
	}
	/* A model built for another generation (a swap, or a session restored
	 * from the spill store or a checkpoint: snap_gen UINT64_MAX) is not
	 * rebuilt for an event: the event joins the history, and the model is
	 * rebuilt from it, this event included, when the session is next
	 * queried (ranker_session_fresh). So a restart's replay after a
	 * checkpoint costs a history append per event, not a rebuild per
	 * session. Read after the deadlines before the event fired: a step
	 * rebuilds a stale model when a segment reads it (segs.c), and then
	 * this event must be applied to it. */
	ranker_segs_before(ctx, s, ts_ms);
	stale = ctx->cur && s->snap_gen != ctx->cur->gen;
	/* The user the history named last is the session's user (only
	 * events set it). */
	new_user = !wf_user_is_anon(argv[1].p, argv[1].len) &&
		   !(s->user && s->user_len == argv[1].len && memcmp(s->user, argv[1].p, argv[1].len) == 0);
	r = new_user ? session_set_user(ctx, s, &argv[1]) : 0;
	/* A long session: the oldest events leave HISTORY, not the model (a
	 * record too big for the codec is refused below, folding nothing). */
	if (r == 0 && hist_need(argv, argc, new_user) <= UINT16_MAX)
		r = hist_fold(ctx, s, hist_need(argv, argc, new_user));
	if (r == 0)
		r = hist_append(ctx, s, ts_ms, type, argv, argc, new_user);
	/* Lists cached for this session are stale: the user may have changed
	 * and the model changes below. */
	s->stamp = ++ctx->stamp_next;
	if (r < 0) {
		if (out)
			wf_resp_w_error(out, "ERR cannot record event: %s", strerror(-r));
		return r;
	}
	if (lsn)
		s->lsn = lsn;
	s->last_event_ms = wf_wall_ms();
	ranker_session_touch(ctx, s, s->last_event_ms);
	sessions_trim(ctx, s); /* this event may have grown the sessions past the budget */
	if (ctx->cur && !stale)
		model_apply(ctx, s, type, &argv[3], value);
	ranker_segs_event(ctx, s, type, argv, argc, ts_ms); /* after the model: pivot is read */
	atomic_fetch_add_explicit(&ctx->sc->stats.events, 1, memory_order_relaxed); /* stats */
	if (out)
		wf_resp_w_int(out, 1);
	return 0;
}

/*
 * Session records (ranker_int.h), 8-byte aligned, native byte order (the
 * files stay on the box that wrote them):
 *   u32 len (the record's bytes, padded to 8)  u32 xxh32 (of what follows it)
 *   u64 key, lsn, last_ms, last_event_ms, hist_last_ts
 *   u32 hist_len, hist_folded  u16 hist_n  u8 id_len, user_len  u32 seg_len
 *   segment bytes (seg_len, a multiple of 8: segs.c, ranker_segs_pack; 0:
 *   no segment state, as in the records written before it existed)
 *   id bytes, user bytes, history bytes (the codec above), zero padding
 */
struct rec_hdr {
	uint32_t len, xxh32;
	uint64_t key, lsn, last_ms, last_event_ms, hist_last_ts;
	uint32_t hist_len, hist_folded;
	uint16_t hist_n;
	uint8_t id_len, user_len;
	uint32_t seg_len;
};
_Static_assert(sizeof(struct rec_hdr) == RANKER_REC_HDR, "session record header");

#define REC_SEED 0x73657373u

uint32_t ranker_session_rec_size(const struct ranker_ctx *ctx, const struct ranker_session *s)
{
	return (uint32_t)WF_ALIGN_UP((uint64_t)RANKER_REC_HDR + ranker_segs_rec_size(ctx, s) + s->id_len +
					     (s->user ? s->user_len : 0) + s->hist_len, 8);
}

void ranker_session_pack(const struct ranker_ctx *ctx, const struct ranker_session *s, uint8_t *out)
{
	uint32_t n = ranker_session_rec_size(ctx, s), ul = s->user ? s->user_len : 0;
	struct rec_hdr h = { .len = n, .key = s->key, .lsn = s->lsn, .last_ms = s->last_ms,
			     .last_event_ms = s->last_event_ms, .hist_last_ts = s->hist_last_ts,
			     .hist_len = s->hist_len, .hist_folded = s->hist_folded, .hist_n = s->hist_n,
			     .id_len = s->id_len, .user_len = (uint8_t)ul, .seg_len = ranker_segs_rec_size(ctx, s) };
	uint8_t *p = out + RANKER_REC_HDR;

	ranker_segs_pack(ctx, s, p);
	p += h.seg_len;

	memcpy(p, s->id, s->id_len);
	p += s->id_len;
	if (ul)
		memcpy(p, s->user, ul);
	p += ul;
	if (s->hist_len)
		memcpy(p, s->hist, s->hist_len);
	p += s->hist_len;
	memset(p, 0, (size_t)(out + n - p));
	memcpy(out, &h, sizeof(h));
	h.xxh32 = XXH32(out + 8, n - 8, REC_SEED);
	memcpy(out, &h, sizeof(h));
}

int ranker_session_rec_check(const uint8_t *p, size_t n, uint64_t *ret_key, const char **ret_id, uint32_t *ret_id_len)
{
	struct rec_hdr h;

	if (n < sizeof(h))
		return 0;
	memcpy(&h, p, sizeof(h));
	if (h.len < sizeof(h) || (h.len & 7) || (h.seg_len & 7) || h.seg_len > RANKER_SEG_REC_MAX ||
	    (uint64_t)RANKER_REC_HDR + h.seg_len + h.id_len + h.user_len + h.hist_len > h.len ||
	    h.hist_n > RANKER_HISTORY_MAX ||
	    h.hist_len > RANKER_HISTORY_BYTES + UINT16_MAX || h.id_len == 0 || h.id_len > WF_ID_MAX ||
	    h.user_len > WF_ID_MAX)
		return -EBADMSG;
	if (h.len > n)
		return 0;
	if (XXH32(p + 8, h.len - 8, REC_SEED) != h.xxh32 || wf_hash64(p + sizeof(h) + h.seg_len, h.id_len) != h.key)
		return -EBADMSG;
	*ret_key = h.key;
	*ret_id = (const char *)p + sizeof(h) + h.seg_len;
	*ret_id_len = h.id_len;
	return (int)h.len;
}

struct ranker_session *ranker_session_unpack(struct ranker_ctx *ctx, const uint8_t *p, int in_spill, int *seg_exact)
{
	struct rec_hdr h;
	struct ranker_session *s;
	const char *q;

	memcpy(&h, p, sizeof(h));
	q = (const char *)p + sizeof(h) + h.seg_len;
	s = session_new(ctx, q, h.id_len, h.key, h.last_ms, in_spill);
	if (!s)
		return NULL;
	q += h.id_len;
	if (h.user_len && session_set_user(ctx, s, &(struct wf_msg_arg){ q, h.user_len }) < 0)
		goto fail;
	q += h.user_len;
	if (h.hist_len && hist_reserve(ctx, s, h.hist_len) < 0)
		goto fail;
	if (h.hist_len)
		memcpy(s->hist, q, h.hist_len);
	s->hist_len = h.hist_len;
	s->hist_n = h.hist_n;
	s->hist_folded = h.hist_folded;
	s->hist_last_ts = h.hist_last_ts;
	s->lsn = h.lsn;
	s->last_event_ms = h.last_event_ms;
	/* The model is rebuilt from the history when the session is next used
	 * (ranker_session_fresh), as after a generation swap. */
	s->snap_gen = UINT64_MAX;
	/* Its segment state: as it was, or rebuilt from the history just put back. */
	*seg_exact = ranker_segs_unpack(ctx, s, p + sizeof(h), h.seg_len, *seg_exact < 0);
	return s;
fail:
	session_drop_nospill(ctx, s);
	return NULL;
}

struct ranker_session *ranker_session_restore(struct ranker_ctx *ctx, uint64_t key, const char *id, uint32_t len)
{
	const uint8_t *p;
	struct ranker_session *s;

	if (ranker_spill_get(ctx, key, id, len, &p) < 0)
		return NULL;
	s = ranker_session_unpack(ctx, p, 1, &(int){ 1 });
	if (!s)
		return NULL;
	ranker_session_touch(ctx, s, wf_wall_ms()); /* named now: active, whatever its record says */
	ctx->sessions_restored++;
	sessions_trim(ctx, s); /* it may have taken the sessions past the budget */
	return s;
}
