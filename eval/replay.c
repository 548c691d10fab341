/*
 * replay.c - weft-eval's in-process replay: every test session in time
 * order; after each event, where each variant's K recommendations would
 * put the next item the shopper looked at. Uses the same scoring library
 * as weft-ranker (lib/rank). Threads take sessions by ticket; their
 * integer sums are merged after the join, so any thread count gives the
 * same numbers. Also the session index live.c replays from, and the
 * tuning on the validation days.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval/eval.h"
#include "lib/proto.h"

/*
 * What the replay threads share. Everything but the two counters and
 * pivot[] is written before the threads start (pthread_create orders it)
 * and only read by them; pivot[t] is written by the one thread that took
 * ticket t in the weft pass and read after the join.
 */
struct replay_shared {
	const struct eval_opts *o;
	const struct eval_log *log;
	const struct wf_snap *snap;
	const struct eval_base *base;    /* the baselines' pass: may be NULL */
	const struct eval_sessions *ss;
	int pass;                        /* EVAL_PASS_WEFT or EVAL_PASS_BASE */
	const char *what;                /* progress display */
	uint8_t *pivot;                  /* per test session: weft's model saw a pivot */
	uint32_t pop[EVAL_MAX_K], npop;  /* the popularity variant's list: the same for every event */
	_Atomic uint32_t next;           /* next test session to take (a ticket) */
	_Atomic uint64_t done;           /* sessions replayed (progress display only) */
};

struct replay_job {
	struct replay_shared *sh;
	struct wf_rank_scratch *w;       /* allocated before the thread starts */
	struct eval_base_sess *bs;       /* the baselines' session (their pass only) */
	uint32_t *seen, seen_gen;        /* seen[interned item] == seen_gen: looked at in this session */
	int progress;                    /* this one prints progress (the calling thread's job) */
	struct eval_result res;          /* this thread's sums; merged after the join */
};

static double thread_cpu_secs(void)
{
	struct timespec cpu;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) != 0)
		return 0;
	return (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9;
}

void eval_default_weights(struct eval_opts *o)
{
	o->w[WF_VISITOR_RETURNING][0] = 0.4f;
	o->w[WF_VISITOR_RETURNING][1] = 0.6f;
	o->w[WF_VISITOR_NEW][0] = 0.1f;
	o->w[WF_VISITOR_NEW][1] = 0.9f;
}

int eval_is_target(int type)
{
	return type == WF_EV_VIEW || type == WF_EV_CLICK || type == WF_EV_PDP || type == WF_EV_CART_ADD ||
	       type == WF_EV_PURCHASE;
}

void eval_score(struct eval_metrics *m, const uint32_t *items, size_t n, int64_t target)
{
	m->preds++;
	for (size_t r = 0; r < n && r < EVAL_MAX_K; r++)
		if ((int64_t)items[r] == target) {
			m->hits[r]++;
			return;
		}
}

void eval_score_at(struct eval_metrics *m, int32_t rank)
{
	m->preds++;
	if (rank >= 0 && rank < (int32_t)EVAL_MAX_K)
		m->hits[rank]++;
}

static void add_metrics(struct eval_metrics *dst, const struct eval_metrics *src)
{
	dst->preds += src->preds;
	for (uint32_t r = 0; r < EVAL_MAX_K; r++)
		dst->hits[r] += src->hits[r];
}

/* The target's rank in items[0..n), or -1. */
static int32_t list_position(const uint32_t *items, uint32_t n, int64_t target)
{
	for (uint32_t r = 0; r < n; r++)
		if ((int64_t)items[r] == target)
			return (int32_t)r;
	return -1;
}

/* A new session for job j's seen[] marks. */
static void seen_reset(struct replay_job *j, uint32_t nstr)
{
	if (++j->seen_gen == 0) {
		memset(j->seen, 0, ((size_t)nstr + 1) * sizeof(*j->seen));
		j->seen_gen = 1;
	}
}

/* The live key (lib/rank/rank.h WF_RANK_LIVE_BASE) of interned item id,
 * as weft-ranker's: wf_stock_key(), wf_hash64(id) | 1; 0 for none. */
static uint64_t live_key(const struct eval_log *log, uint32_t id)
{
	uint32_t len;
	const char *p;

	if (id == UINT32_MAX)
		return 0;
	p = eval_str(log, id, &len);
	return wf_hash64(p, len) | 1;
}

/* weft's four variants for one prediction: pos[EV_POPULARITY..EV_HYBRID].
 * target: the next item's snapshot index (-1: unknown); ranked: what the
 * session's lists would name it by (the index, or its live code, or -1). */
static void weft_positions(const struct replay_shared *sh, struct wf_rank_scratch *w, const struct wf_rank_session *sess,
			   const struct wf_snap_cand *cands, uint32_t ncands, const uint32_t *batch, uint32_t nbatch,
			   int vis, int64_t target, int64_t ranked, int32_t *pos)
{
	/* the session model only (no list, weights 0/1), and the hybrid,
	 * from one pool: where their lists would place the target */
	struct wf_rank_query q[2] = {
		{ .sess = sess, .w_batch = 0, .w_session = 1, .anchor = -1, .k = sh->o->depth },
		{ .sess = sess, .cands = cands, .ncands = ncands, .w_batch = sh->o->w[vis][0],
		  .w_session = sh->o->w[vis][1], .anchor = -1, .k = sh->o->depth },
	};
	int32_t p2[2];

	/* popularity and batch do not depend on the session */
	pos[EV_POPULARITY] = list_position(sh->pop, sh->npop, target);
	pos[EV_BATCH] = list_position(batch, nbatch, target);
	wf_rank_positions(sh->snap, &sh->o->params, q, 2, w, ranked, p2);
	pos[EV_SESSION] = p2[0];
	pos[EV_HYBRID] = p2[1];
}

/*
 * Replay test session number t (ticket t): after each event, one
 * prediction per variant of this pass. Slices by prediction (repeat or
 * novel next item, first or later) are counted at once; slices by
 * session (returning or new shopper, pivot) when the session ends, since
 * a shopper may log in halfway. (Longer than most: both passes walk the
 * session the same way, so their predictions and slices match.)
 */
static void replay_session(const struct replay_shared *sh, struct replay_job *j, uint32_t t)
{
	const struct eval_sessions *ss = sh->ss;
	const struct wf_snap *snap = sh->snap;
	const struct eval_base *base = sh->base;
	uint32_t s = ss->test[t];
	uint64_t a = ss->off[s], b = ss->off[s + 1];
	int v0 = sh->pass == EVAL_PASS_WEFT ? 0 : EV_NWEFT, v1 = sh->pass == EVAL_PASS_WEFT ? EV_NWEFT : EV_NVARIANTS;
	struct eval_metrics local[EV_NVARIANTS];
	struct eval_result *res = &j->res;
	struct wf_rank_session sess;
	int64_t user = -1;
	const struct wf_snap_cand *cands = NULL;
	uint32_t ncands = 0, batch[EVAL_MAX_K], nbatch = sh->npop, last = UINT32_MAX;

	memset(local, 0, sizeof(local));
	memcpy(batch, sh->pop, sizeof(batch));
	wf_rank_session_init(&sess);
	if (sh->pass == EVAL_PASS_BASE)
		eval_base_sess_reset(j->bs);
	seen_reset(j, sh->log->nstr);
	for (uint64_t i = a; i < b; i++) {
		const struct eval_event *e = &sh->log->ev[ss->order[i]];
		int64_t item = e->item == UINT32_MAX ? -1 : ss->str_item[e->item];

		/* A shopper who logs in halfway: from then on, their list. */
		if (user < 0 && e->user != UINT32_MAX && (user = ss->str_user[e->user]) >= 0) {
			cands = snap->cands + snap->users[user].cand_off;
			ncands = snap->users[user].cand_cnt;
			if (ncands) { /* the batch variant: the nightly list as it is */
				nbatch = WF_MIN(sh->o->depth, ncands);
				for (uint32_t r = 0; r < nbatch; r++)
					batch[r] = cands[r].item;
			}
		}
		if (sh->pass == EVAL_PASS_WEFT)
			wf_rank_session_apply_key(&sess, snap, &sh->o->params, e->type, item,
						  item < 0 ? live_key(sh->log, e->item) : 0,
						  e->type == WF_EV_DWELL ? e->value : 0);
		if (e->item != UINT32_MAX && eval_is_target(e->type)) {
			j->seen[e->item] = j->seen_gen;
			last = e->item;
			if (sh->pass == EVAL_PASS_BASE)
				eval_base_sess_add(base, j->bs, eval_base_item(base, e->item));
		}
		res->events++;
		if (i + 1 >= b)
			break;
		const struct eval_event *nx = &sh->log->ev[ss->order[i + 1]];
		if (nx->item == UINT32_MAX || !eval_is_target(nx->type))
			continue;
		int64_t target = ss->str_item[nx->item];
		int vis = user >= 0 ? WF_VISITOR_RETURNING : WF_VISITOR_NEW;
		int repeat = j->seen[nx->item] == j->seen_gen;
		int32_t pos[EV_NVARIANTS];

		res->next_is_last += nx->item == last;
		if (sh->pass == EVAL_PASS_WEFT)
			weft_positions(sh, j->w, &sess, cands, ncands, batch, nbatch, vis, target,
				       target < 0 ? wf_rank_live_code(&sess, live_key(sh->log, nx->item)) : target, pos);
		else
			eval_base_positions(base, j->bs, target, pos + EV_SKNN);
		for (int v = v0; v < v1; v++) {
			eval_score_at(&local[v], pos[v]);
			eval_score_at(&res->m[v][repeat ? SL_REPEAT : SL_NOVEL], pos[v]);
			eval_score_at(&res->m[v][i == a ? SL_FIRST : SL_LATER], pos[v]);
		}
	}
	res->test_sessions++;
	if (sh->pass == EVAL_PASS_WEFT)
		sh->pivot[t] = sess.pivots > 0;
	res->pivot_sessions += sh->pivot[t];
	for (int v = v0; v < v1; v++) {
		add_metrics(&res->m[v][SL_ALL], &local[v]);
		add_metrics(&res->m[v][user >= 0 ? SL_RETURNING : SL_NEW], &local[v]);
		if (sh->pivot[t])
			add_metrics(&res->m[v][SL_PIVOT], &local[v]);
	}
}

/*
 * A replay thread takes test sessions by ticket until none are left. The
 * results are integer sums per thread, merged after the join: the same
 * whatever the number of threads or which took which session. The job
 * run by the calling thread also shows progress.
 */
static void *replay_thread(void *arg)
{
	struct replay_job *j = arg;
	struct replay_shared *sh = j->sh;
	double cpu0 = thread_cpu_secs();
	uint64_t shown = wf_now_ns();

	for (;;) {
		/* Relaxed: a ticket counter; what it indexes is read-only. */
		uint32_t t = atomic_fetch_add_explicit(&sh->next, 1, memory_order_relaxed);
		if (t >= sh->ss->ntest)
			break;
		replay_session(sh, j, t);
		atomic_fetch_add_explicit(&sh->done, 1, memory_order_relaxed); /* progress display only */
		if (j->progress && !sh->o->quiet && wf_now_ns() - shown > 200000000ull) {
			shown = wf_now_ns();
			fprintf(stderr, "\rweft-eval: %s: %llu / %u sessions", sh->what,
				/* relaxed: a display; the results come after the join */
				(unsigned long long)atomic_load_explicit(&sh->done, memory_order_relaxed), sh->ss->ntest);
		}
	}
	j->res.replay_cpu_secs = thread_cpu_secs() - cpu0;
	return NULL;
}

int eval_sessions_build(const struct eval_log *log, const struct wf_snap *snap, int64_t from, int64_t to,
			struct eval_sessions *ss)
{
	uint32_t ns = log->nsessions;
	uint64_t *fill = calloc((size_t)ns + 1, sizeof(*fill));
	size_t nstr = log->nstr ? log->nstr : 1;

	memset(ss, 0, sizeof(*ss));
	ss->first = malloc(((size_t)ns + 1) * sizeof(*ss->first));
	ss->off = calloc((size_t)ns + 1, sizeof(*ss->off));
	ss->order = malloc((log->nev ? log->nev : 1) * sizeof(*ss->order));
	ss->test = malloc(((size_t)ns + 1) * sizeof(*ss->test));
	ss->str_item = malloc(nstr * sizeof(*ss->str_item));
	ss->str_user = malloc(nstr * sizeof(*ss->str_user));
	if (!fill || !ss->first || !ss->off || !ss->order || !ss->test || !ss->str_item || !ss->str_user) {
		free(fill);
		eval_sessions_free(ss);
		return -ENOMEM;
	}
	for (uint32_t s = 0; s < ns; s++)
		ss->first[s] = INT64_MAX;
	for (uint64_t i = 0; i < log->nev; i++) {
		const struct eval_event *e = &log->ev[i];
		ss->off[e->session + 1]++;
		if (e->ts_ms < ss->first[e->session])
			ss->first[e->session] = e->ts_ms;
	}
	for (uint32_t s = 0; s < ns; s++)
		ss->off[s + 1] += ss->off[s];
	for (uint64_t i = 0; i < log->nev; i++) {
		uint32_t s = log->ev[i].session;
		ss->order[ss->off[s] + fill[s]++] = i; /* log->ev is time-sorted: so is each session */
	}
	for (uint32_t s = 0; s < ns; s++)
		if (ss->first[s] >= from && ss->first[s] < to && ss->off[s + 1] - ss->off[s] >= 2)
			ss->test[ss->ntest++] = s;
	/* Ids are interned once for users and items alike: look each up as
	 * both (an id that is not an item or not a user gets -1). */
	for (uint32_t i = 0; i < log->nstr; i++) {
		uint32_t l;
		const char *p = eval_str(log, i, &l);
		ss->str_item[i] = wf_snap_item_find(snap, p, l);
		ss->str_user[i] = wf_snap_user_find(snap, p, l);
	}
	free(fill);
	return 0;
}

void eval_sessions_free(struct eval_sessions *ss)
{
	free(ss->first);
	free(ss->off);
	free(ss->order);
	free(ss->test);
	free(ss->str_item);
	free(ss->str_user);
	memset(ss, 0, sizeof(*ss));
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p) {
		fprintf(stderr, "weft-eval: out of memory\n");
		exit(1);
	}
	return p;
}

/* One pass over the test sessions on nt threads (job 0 runs here and
 * shows progress); its sums go to *out. */
static void run_pass(struct replay_shared *sh, struct replay_job *jobs, int nt, struct eval_result *out)
{
	pthread_t th[64];

	memset(out, 0, sizeof(*out));
	/* Relaxed: no thread runs yet; pthread_create orders these stores. */
	atomic_store_explicit(&sh->next, 0, memory_order_relaxed);
	atomic_store_explicit(&sh->done, 0, memory_order_relaxed);
	for (int i = 0; i < nt; i++) {
		memset(&jobs[i].res, 0, sizeof(jobs[i].res));
		jobs[i].progress = i == 0;
	}
	for (int i = 1; i < nt; i++)
		if (pthread_create(&th[i], NULL, replay_thread, &jobs[i]) != 0) {
			fprintf(stderr, "weft-eval: cannot start a replay thread\n");
			exit(1);
		}
	replay_thread(&jobs[0]);
	for (int i = 0; i < nt; i++) {
		if (i > 0)
			pthread_join(th[i], NULL);
		out->events += jobs[i].res.events;
		out->test_sessions += jobs[i].res.test_sessions;
		out->pivot_sessions += jobs[i].res.pivot_sessions;
		out->next_is_last += jobs[i].res.next_is_last;
		out->replay_cpu_secs += jobs[i].res.replay_cpu_secs;
		for (int v = 0; v < EV_NVARIANTS; v++)
			for (int s = 0; s < SL_NSLICES; s++)
				add_metrics(&out->m[v][s], &jobs[i].res.m[v][s]);
	}
	if (!sh->o->quiet)
		fprintf(stderr, "\rweft-eval: %s: %u / %u sessions\n", sh->what, sh->ss->ntest, sh->ss->ntest);
}

void eval_replay(const struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap,
		 const struct eval_base *base, int64_t from, int64_t to, int passes, struct eval_result *res)
{
	struct eval_sessions ss;
	int nt = WF_MAX(1, WF_MIN(o->threads, 64));
	struct replay_job *jobs = xcalloc((size_t)nt, sizeof(*jobs));
	struct replay_shared sh = { .o = o, .log = log, .snap = snap, .base = base, .ss = &ss };
	struct eval_result pass;
	uint64_t t0 = wf_now_ns();

	memset(res, 0, sizeof(*res));
	if (!base)
		passes &= ~EVAL_PASS_BASE;
	if (eval_sessions_build(log, snap, from, to, &ss) < 0) {
		fprintf(stderr, "weft-eval: out of memory\n");
		exit(1);
	}
	sh.pivot = xcalloc((size_t)ss.ntest, sizeof(*sh.pivot));
	sh.npop = (uint32_t)WF_MIN(o->depth, snap->npopular);
	for (uint32_t r = 0; r < sh.npop; r++)
		sh.pop[r] = snap->popular[r].item;
	for (int i = 0; i < nt; i++) {
		jobs[i].sh = &sh;
		jobs[i].seen = xcalloc((size_t)log->nstr + 1, sizeof(*jobs[i].seen));
		if (passes & EVAL_PASS_WEFT)
			jobs[i].w = xcalloc(1, sizeof(*jobs[i].w));
		if ((passes & EVAL_PASS_BASE) && eval_base_sess_create(base, &o->sknn, &jobs[i].bs) < 0) {
			fprintf(stderr, "weft-eval: out of memory\n");
			exit(1);
		}
	}
	for (int p = EVAL_PASS_WEFT; p <= EVAL_PASS_BASE; p <<= 1) {
		if (!(passes & p))
			continue;
		sh.pass = p;
		sh.what = p == EVAL_PASS_WEFT ? "replayed" : "baselines";
		run_pass(&sh, jobs, nt, &pass);
		for (int v = 0; v < EV_NVARIANTS; v++)
			for (int s = 0; s < SL_NSLICES; s++)
				add_metrics(&res->m[v][s], &pass.m[v][s]);
		res->events = pass.events; /* every pass replays the same events */
		res->test_sessions = pass.test_sessions;
		res->pivot_sessions = pass.pivot_sessions; /* known after the weft pass */
		res->next_is_last = pass.next_is_last;
		if (p == EVAL_PASS_WEFT) {
			res->replay_cpu_secs = pass.replay_cpu_secs;
			res->replay_secs = (double)(wf_now_ns() - t0) / 1e9;
		} else {
			res->base_cpu_secs = pass.replay_cpu_secs;
			res->base_secs = (double)(wf_now_ns() - t0) / 1e9 - res->replay_secs;
		}
	}
	for (int i = 0; i < nt; i++) {
		free(jobs[i].w);
		free(jobs[i].seen);
		eval_base_sess_destroy(jobs[i].bs);
	}
	eval_sessions_free(&ss);
	free(sh.pivot);
	free(jobs);
}

struct eval_base *eval_base_train(const struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap,
				  int64_t before, double *ret_secs)
{
	struct eval_base *base = NULL;
	uint64_t t0 = wf_now_ns(), ns, ni, nr;
	int r;

	if (!o->quiet)
		fprintf(stderr, "weft-eval: training the baselines (sknn, ar, sr)");
	r = eval_base_build(log, snap, before, o->depth, &base);
	if (r < 0) {
		fprintf(stderr, "\nweft-eval: training the baselines failed: %s\n",
			r == -ENODATA ? "no viewed item before the split" : strerror(-r));
		exit(1);
	}
	*ret_secs = (double)(wf_now_ns() - t0) / 1e9;
	eval_base_stats(base, &ns, &ni, &nr);
	if (!o->quiet)
		fprintf(stderr, ": %llu sessions, %llu items, %llu rules kept, %.2f s\n", (unsigned long long)ns,
			(unsigned long long)ni, (unsigned long long)nr, *ret_secs);
	return base;
}

/*
 * V-SkNN's hyper-parameters, by MRR@k on the validation window like
 * weft's weights (the test days stay unseen): first the step decay on or
 * off at the published k 100 and sample 500, then k in {100, 50, 200} and
 * sample in {500, 1000} (session-rec's grids) with it. Ties keep the
 * earlier (published) value. Position weights stay i/L.
 */
void eval_tune_sknn(struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, int64_t from,
		    int64_t to)
{
	static const uint32_t ks[] = { 100, 50, 200 }, ms[] = { 500, 1000 };
	struct eval_result *r = xcalloc(1, sizeof(*r));
	struct eval_opts t = *o;
	double secs, best = -1;
	struct eval_base *base = eval_base_train(o, log, snap, from, &secs);

	t.quiet = 1;
	for (size_t g = 0; g < 2 + WF_ARRAY_SIZE(ks) * WF_ARRAY_SIZE(ms); g++) {
		if (g < 2) {
			t.sknn.step_decay = (int)g;
		} else {
			t.sknn = o->sknn; /* the best so far, then k and sample */
			t.sknn.k = ks[(g - 2) / WF_ARRAY_SIZE(ms)];
			t.sknn.sample = ms[(g - 2) % WF_ARRAY_SIZE(ms)];
			if (g == 2)
				continue; /* k 100, sample 500: done above */
		}
		eval_replay(&t, log, snap, base, from, to, EVAL_PASS_BASE, r);
		double m = eval_mrr(&r->m[EV_SKNN][SL_ALL], o->k);
		if (!o->quiet)
			fprintf(stderr, "weft-eval: sknn on the validation days: k %u, sample %u, step decay %s: MRR@%u %.4f\n",
				t.sknn.k, t.sknn.sample, t.sknn.step_decay ? "on" : "off", o->k, m);
		if (m > best) {
			best = m;
			o->sknn = t.sknn;
		}
	}
	if (!o->quiet)
		fprintf(stderr, "weft-eval: sknn: k %u, sample %u, step decay %s (MRR@%u %.4f on the validation days)\n",
			o->sknn.k, o->sknn.sample, o->sknn.step_decay ? "on" : "off", o->k, best);
	eval_base_destroy(base);
	free(r);
}

/*
 * The batch share per visitor type, by the hybrid's MRR on the validation
 * days: the blend weftctl weights sets live, a hyper-parameter of the
 * appliance, not of the model (the model's weights are fitted nightly by
 * weft-batch and travel in the snapshot).
 */
void eval_tune(struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, int64_t from, int64_t to)
{
	struct eval_result *r = calloc(1, sizeof(*r));
	struct eval_opts t = *o;
	double best[2];

	if (!r) {
		fprintf(stderr, "weft-eval: out of memory\n");
		exit(1);
	}

	best[0] = best[1] = -1;
	t.quiet = 1;
	/* Returning and new visitors are separate slices of the same replay,
	 * so one grid over the batch share tunes both. */
	for (int g = 0; g <= 10; g++) {
		float wb = (float)g / 10.0f;
		for (int v = 0; v < 2; v++) {
			t.w[v][0] = wb;
			t.w[v][1] = 1.0f - wb;
		}
		eval_replay(&t, log, snap, NULL, from, to, EVAL_PASS_WEFT, r);
		for (int v = 0; v < 2; v++) {
			double m = eval_mrr(&r->m[EV_HYBRID][v == WF_VISITOR_RETURNING ? SL_RETURNING : SL_NEW], o->k);
			if (m > best[v]) {
				best[v] = m;
				o->w[v][0] = wb;
				o->w[v][1] = 1.0f - wb;
			}
		}
		if (!o->quiet)
			fprintf(stderr, "\rweft-eval: tuning on the validation days: batch share %.1f", wb);
	}
	if (!o->quiet)
		fprintf(stderr, "\nweft-eval: tuned weights: returning %.1f/%.1f, new %.1f/%.1f (MRR@%u %.4f / %.4f)\n",
			o->w[0][0], o->w[0][1], o->w[1][0], o->w[1][1], o->k, best[0], best[1]);
	free(r);
}
