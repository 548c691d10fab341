/*
 * live.c - weft-eval --live: the same replay through a running appliance,
 * over its sockets, with hiredis. Loads the evaluation snapshot and the
 * weights through admin.sock, then sends every test session's events and
 * RECS through weft.sock (pipelined per session), and scores the answers
 * exactly as the in-process replay does. Covers the variants that the
 * appliance serves: session (weights 0/1, anonymous) and hybrid.
 *
 * That changes what the appliance serves and writes the replay into its
 * journal, so an appliance that serves (a snapshot generation is current,
 * or it has acknowledged events) is refused unless --live-force; start one
 * for the evaluation instead (weftctl up --dir /tmp/x). Afterwards the
 * home weights are put back as they were read, and with --live-force the
 * snapshot is rolled back to the generation that served before, if ours
 * is still current. Nothing is restored by guesswork (no defaults).
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eval/eval.h"
#include "lib/proto.h"

static redisContext *connect_sock(const char *dir, const char *name)
{
	char path[4096];
	redisContext *c;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	c = redisConnectUnix(path);
	if (!c || c->err) {
		fprintf(stderr, "weft-eval: cannot connect to %s: %s — is weft running there?\n", path,
			c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	return c;
}

static int admin(redisContext *a, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;
	int ok;

	va_start(ap, fmt);
	r = redisvCommand(a, fmt, ap);
	va_end(ap);
	ok = r && r->type != REDIS_REPLY_ERROR;
	if (!ok)
		fprintf(stderr, "weft-eval: admin command failed: %s\n", r ? r->str : a->errstr);
	if (r)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

static int set_weights(redisContext *a, float rb, float rs, float nb, float ns)
{
	return admin(a, "WEIGHTS SET home returning %f %f", rb, rs) | admin(a, "WEIGHTS SET home new %f %f", nb, ns);
}

/* Value of key in a flat key/value array reply, or NULL. */
static const redisReply *get(const redisReply *m, const char *key)
{
	for (size_t i = 0; m && m->type == REDIS_REPLY_ARRAY && i + 1 < m->elements; i += 2)
		if (m->element[i]->type == REDIS_REPLY_STRING && strcmp(m->element[i]->str, key) == 0)
			return m->element[i + 1];
	return NULL;
}

static long long get_int(const redisReply *m, const char *key)
{
	const redisReply *v = get(m, key);

	return v && v->type == REDIS_REPLY_INTEGER ? v->integer : 0;
}

/* What the appliance serves before we touch it. */
struct live_before {
	long long gen;     /* current snapshot generation, 0 = none */
	long long acked;   /* events weft-ingest acknowledged */
	char w[2][2][32];  /* home [returning|new][batch|session], as WEIGHTS GET said */
};

static int read_before(redisContext *a, struct live_before *b)
{
	redisReply *st = redisCommand(a, "STATS"), *w = st ? redisCommand(a, "WEIGHTS GET") : NULL;
	int found = 0;

	if (st && st->type == REDIS_REPLY_ARRAY) {
		b->gen = get_int(st, "snapshot_gen");
		b->acked = get_int(get(st, "ingest"), "events_acked");
	}
	for (size_t i = 0; w && w->type == REDIS_REPLY_ARRAY && i < w->elements; i++) {
		const redisReply *pg = get(w->element[i], "page"), *vi = get(w->element[i], "visitor");
		const redisReply *wb = get(w->element[i], "batch"), *ws = get(w->element[i], "session");
		int v;

		if (!pg || !vi || !wb || !ws || !pg->str || strcmp(pg->str, "home") != 0 || !wb->str || !ws->str)
			continue;
		v = strcmp(vi->str, "new") == 0;
		snprintf(b->w[v][0], sizeof(b->w[v][0]), "%s", wb->str);
		snprintf(b->w[v][1], sizeof(b->w[v][1]), "%s", ws->str);
		found++;
	}
	if (found != 2 || !st || st->type != REDIS_REPLY_ARRAY)
		fprintf(stderr, "weft-eval: cannot read the appliance's state (STATS, WEIGHTS GET): %s\n",
			st && st->type == REDIS_REPLY_ERROR ? st->str : a->errstr[0] ? a->errstr : "odd reply");
	freeReplyObject(st);
	freeReplyObject(w);
	return found == 2 && b->w[0][0][0] && b->w[1][0][0] ? 0 : -1;
}

/* Put back what read_before() saw (weights; with --live-force, the
 * generation that served, if ours is still current). */
static void restore(redisContext *a, const struct live_before *b, long long ours)
{
	redisReply *st;

	admin(a, "WEIGHTS SET home returning %s %s", b->w[0][0], b->w[0][1]);
	admin(a, "WEIGHTS SET home new %s %s", b->w[1][0], b->w[1][1]);
	if (!b->gen || !ours)
		return;
	st = redisCommand(a, "STATS");
	if (st && get_int(st, "snapshot_gen") == ours)
		admin(a, "SNAPSHOT ROLLBACK");
	else
		fprintf(stderr, "weft-eval: generation %lld is no longer ours; not rolling back\n", ours);
	freeReplyObject(st);
}

/* Replay one variant; anonymous = send no user ids (session-only). */
static int replay_variant(const struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap,
			  const struct eval_sessions *ss, redisContext *c, int variant, struct eval_result *res)
{
	char kbuf[16];
	uint64_t done = 0;

	snprintf(kbuf, sizeof(kbuf), "%u", o->depth);
	for (uint32_t t = 0; t < ss->ntest; t++) {
		uint32_t s = ss->test[t];
		uint64_t a = ss->off[s], b = ss->off[s + 1];
		char sid[64];
		char user[WF_ID_MAX + 1] = "-";
		int known = 0;

		snprintf(sid, sizeof(sid), "eval%x-%d-%u", (unsigned)getpid() ^ (unsigned)time(NULL), variant, s);
		int64_t *targets = malloc((b - a) * sizeof(*targets));
		if (!targets)
			return -1;
		for (uint64_t i = a; i < b; i++) {
			const struct eval_event *e = &log->ev[ss->order[i]];
			char val[16];
			uint32_t il = 1, ul;
			const char *it = "-";

			if (variant == EV_HYBRID && !known && e->user != UINT32_MAX && ss->str_user[e->user] >= 0) {
				const char *u = eval_str(log, e->user, &ul);
				snprintf(user, sizeof(user), "%.*s", (int)ul, u);
				known = 1;
			}
			if (e->item != UINT32_MAX)
				it = eval_str(log, e->item, &il);
			snprintf(val, sizeof(val), "%u", e->value);
			const char *argv[] = { "EVENT", sid, user, wf_event_name(e->type), it, "ms", val };
			size_t argl[] = { 5, strlen(sid), strlen(user), strlen(argv[3]), il, 2, strlen(val) };
			redisAppendCommandArgv(c, e->type == WF_EV_DWELL ? 7 : 5, argv, argl);
			targets[i - a] = -2;
			if (i + 1 < b) {
				const struct eval_event *nx = &log->ev[ss->order[i + 1]];
				if (nx->item != UINT32_MAX && eval_is_target(nx->type)) {
					const char *rv[] = { "RECS", sid, user, kbuf, "PAGE", "home" };
					size_t rl[] = { 4, strlen(sid), strlen(user), strlen(kbuf), 4, 4 };
					targets[i - a] = nx->item; /* by id: a live item too */
					redisAppendCommandArgv(c, 6, rv, rl);
				}
			}
		}
		/* Read the replies in order: EVENT acks, then RECS lists. */
		for (uint64_t i = a; i < b; i++) {
			redisReply *r;
			if (redisGetReply(c, (void **)&r) != REDIS_OK || !r || r->type != REDIS_REPLY_INTEGER) {
				fprintf(stderr, "weft-eval: EVENT not acknowledged: %s\n",
					r && r->str ? r->str : c->errstr);
				free(targets);
				return -1;
			}
			freeReplyObject(r);
			res->events++;
			if (targets[i - a] == -2)
				continue;
			if (redisGetReply(c, (void **)&r) != REDIS_OK || !r || r->type != REDIS_REPLY_ARRAY) {
				fprintf(stderr, "weft-eval: RECS failed: %s\n", r && r->str ? r->str : c->errstr);
				free(targets);
				return -1;
			}
			/* Score the reply as the in-process replay scores its list:
			 * the target's place by id (an item the snapshot lacks
			 * comes back as a live item, by its id). */
			uint32_t tl;
			const char *tp = eval_str(log, (uint32_t)targets[i - a], &tl);
			int32_t rank = -1;
			for (size_t x = 0; x < r->elements && x < EVAL_MAX_K && rank < 0; x++)
				if (r->element[x]->type == REDIS_REPLY_STRING && r->element[x]->len == tl &&
				    memcmp(r->element[x]->str, tp, tl) == 0)
					rank = (int32_t)x;
			eval_score_at(&res->m[variant][SL_ALL], rank);
			freeReplyObject(r);
		}
		free(targets);
		if (!o->quiet && (++done & 255) == 0)
			fprintf(stderr, "\rweft-eval: live %s: %llu sessions", eval_variant_name(variant),
				(unsigned long long)done);
	}
	if (!o->quiet)
		fputc('\n', stderr);
	return 0;
}

int eval_live(const struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, const char *snap_path,
	      int64_t from, struct eval_result *res)
{
	redisContext *a = connect_sock(o->live, "admin.sock"), *c = connect_sock(o->live, "weft.sock");
	struct eval_sessions ss = { 0 };
	int r = -1;

	struct live_before before = { 0 };
	long long ours = 0;
	int touched = 0;

	memset(res, 0, sizeof(*res));
	if (!a || !c || read_before(a, &before) < 0)
		goto out;
	if ((before.gen || before.acked) && !o->live_force) {
		fprintf(stderr,
			"weft-eval: the appliance at %s is serving (snapshot generation %lld, %lld events "
			"acknowledged): --live would load its own snapshot, change its weights and write the "
			"replay into its journal. Start one for the evaluation (weftctl up --dir /tmp/weft-eval-live) "
			"and point --live there, or pass --live-force\n",
			o->live, before.gen, before.acked);
		goto out;
	}
	if (before.gen || before.acked)
		fprintf(stderr, "weft-eval: --live-force: the replay's events go into the journal of %s (sessions "
			"eval*), which its nightly reads\n", o->live);
	if (eval_sessions_build(log, snap, from, INT64_MAX, &ss) < 0) {
		fprintf(stderr, "weft-eval: out of memory\n");
		goto out;
	}
	touched = 1;
	if (admin(a, "SNAPSHOT LOAD %s", snap_path) < 0)
		goto out;
	{
		redisReply *st = redisCommand(a, "STATS");

		ours = get_int(st, "snapshot_gen");
		freeReplyObject(st);
	}
	if (set_weights(a, 0, 1, 0, 1) < 0 || replay_variant(o, log, snap, &ss, c, EV_SESSION, res) < 0)
		goto out;
	if (set_weights(a, o->w[0][0], o->w[0][1], o->w[1][0], o->w[1][1]) < 0 ||
	    replay_variant(o, log, snap, &ss, c, EV_HYBRID, res) < 0)
		goto out;
	r = 0;
out:
	eval_sessions_free(&ss);
	if (a) {
		if (touched)
			restore(a, &before, ours);
		redisFree(a);
	}
	if (c)
		redisFree(c);
	return r;
}
