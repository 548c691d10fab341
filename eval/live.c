/*
 * live.c - weft-eval --live: the same replay through a running appliance,
 * over its sockets, with hiredis. Loads the evaluation snapshot and the
 * weights through admin.sock, then sends every test session's events and
 * RECS through weft.sock (pipelined per session), and scores the answers
 * exactly as the in-process replay does. Covers the variants that the
 * appliance serves: session (weights 0/1, anonymous) and hybrid.
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
					targets[i - a] = ss->str_item[nx->item];
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
			/* Score the reply as the in-process replay scores its list. */
			uint32_t items[EVAL_MAX_K];
			size_t n = 0;
			for (size_t x = 0; x < r->elements && n < EVAL_MAX_K; x++) {
				int64_t ix = wf_snap_item_find(snap, r->element[x]->str, r->element[x]->len);
				items[n++] = ix >= 0 ? (uint32_t)ix : UINT32_MAX;
			}
			eval_score(&res->m[variant][SL_ALL], items, n, targets[i - a]);
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

	memset(res, 0, sizeof(*res));
	if (!a || !c)
		goto out;
	if (eval_sessions_build(log, snap, from, INT64_MAX, &ss) < 0) {
		fprintf(stderr, "weft-eval: out of memory\n");
		goto out;
	}
	if (admin(a, "SNAPSHOT LOAD %s", snap_path) < 0)
		goto out;
	if (set_weights(a, 0, 1, 0, 1) < 0 || replay_variant(o, log, snap, &ss, c, EV_SESSION, res) < 0)
		goto out;
	if (set_weights(a, o->w[0][0], o->w[0][1], o->w[1][0], o->w[1][1]) < 0 ||
	    replay_variant(o, log, snap, &ss, c, EV_HYBRID, res) < 0)
		goto out;
	r = 0;
out:
	eval_sessions_free(&ss);
	if (a) {
		set_weights(a, 0.4f, 0.6f, 0.1f, 0.9f);
		redisFree(a);
	}
	if (c)
		redisFree(c);
	return r;
}
