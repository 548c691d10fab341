/*
 * replay.c - weft-eval's in-process replay: every test session in time
 * order, K recommendations after each event from each variant, scored
 * against the next item the shopper looked at. Uses the same scoring
 * library as weft-ranker (lib/rank). Sessions are split over threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "lib/proto.h"

struct replay_job {
	const struct eval_opts *o;
	const struct eval_log *log;
	const struct wf_snap *snap;
	const int64_t *str_item;     /* interned string -> snapshot item, or -1 */
	const uint64_t *sess_off;    /* CSR: events of session s are order[sess_off[s]..sess_off[s+1]) */
	const uint64_t *order;
	const uint32_t *test;        /* test sessions */
	uint32_t ntest;
	uint32_t first, step;        /* this thread's share: first, first+step, ... */
	struct eval_result res;
	_Atomic uint64_t *progress;
};

void eval_default_weights(struct eval_opts *o)
{
	o->w[WF_VISITOR_RETURNING][0] = 0.4f;
	o->w[WF_VISITOR_RETURNING][1] = 0.6f;
	o->w[WF_VISITOR_NEW][0] = 0.1f;
	o->w[WF_VISITOR_NEW][1] = 0.9f;
}

static int is_target_type(int t)
{
	return t == WF_EV_VIEW || t == WF_EV_CLICK || t == WF_EV_PDP || t == WF_EV_CART_ADD || t == WF_EV_PURCHASE;
}

static void score(struct eval_metrics *m, const uint32_t *items, int n, int64_t target)
{
	m->preds++;
	for (int r = 0; r < n && r < (int)EVAL_MAX_K; r++)
		if ((int64_t)items[r] == target) {
			m->hits[r]++;
			return;
		}
}

static void add_metrics(struct eval_metrics *dst, const struct eval_metrics *src)
{
	dst->preds += src->preds;
	for (uint32_t r = 0; r < EVAL_MAX_K; r++)
		dst->hits[r] += src->hits[r];
}

static void *replay_thread(void *arg)
{
	struct replay_job *j = arg;
	const struct wf_snap *snap = j->snap;
	struct wf_rank_scratch *w = malloc(sizeof(*w));
	struct wf_rank_session sess;
	uint32_t items[EVAL_MAX_K];
	float scores[EVAL_MAX_K];

	if (!w)
		return NULL;
	for (uint32_t t = j->first; t < j->ntest; t += j->step) {
		uint32_t s = j->test[t];
		uint64_t a = j->sess_off[s], b = j->sess_off[s + 1];
		struct eval_metrics local[EV_NVARIANTS];
		int64_t user = -1;
		const struct wf_snap_cand *cands = NULL;
		uint32_t ncands = 0;

		memset(local, 0, sizeof(local));
		wf_rank_session_init(&sess);
		for (uint64_t i = a; i < b; i++) {
			const struct eval_event *e = &j->log->ev[j->order[i]];
			int64_t item = e->item == UINT32_MAX ? -1 : j->str_item[e->item];

			/* A shopper who logs in halfway: from then on, their list. */
			if (user < 0 && e->user != UINT32_MAX) {
				uint32_t ul;
				const char *u = eval_str(j->log, e->user, &ul);
				user = wf_snap_user_find(snap, u, ul);
				if (user >= 0) {
					cands = snap->cands + snap->users[user].cand_off;
					ncands = snap->users[user].cand_cnt;
				}
			}
			wf_rank_session_apply(&sess, snap, &j->o->params, e->type, item,
					      e->type == WF_EV_DWELL ? e->value : 0);
			j->res.events++;
			if (i + 1 >= b)
				break;
			const struct eval_event *nx = &j->log->ev[j->order[i + 1]];
			if (nx->item == UINT32_MAX || !is_target_type(nx->type))
				continue;
			int64_t target = j->str_item[nx->item];
			int vis = user >= 0 ? WF_VISITOR_RETURNING : WF_VISITOR_NEW;
			int n;

			/* popularity */
			n = (int)WF_MIN(EVAL_MAX_K, snap->npopular);
			for (int r = 0; r < n; r++)
				items[r] = snap->popular[r].item;
			score(&local[EV_POPULARITY], items, n, target);

			/* batch: the nightly list as it is (popular for an unknown user) */
			const struct wf_snap_cand *bl = ncands ? cands : snap->popular;
			n = (int)WF_MIN(EVAL_MAX_K, ncands ? ncands : snap->npopular);
			for (int r = 0; r < n; r++)
				items[r] = bl[r].item;
			score(&local[EV_BATCH], items, n, target);
			/* session model only, and the hybrid */
			struct wf_rank_query q = { .sess = &sess, .w_batch = 0, .w_session = 1, .anchor = -1,
						   .k = EVAL_MAX_K };
			n = wf_rank_recs(snap, &j->o->params, &q, w, items, scores, NULL);
			score(&local[EV_SESSION], items, n, target);
			q.cands = cands;
			q.ncands = ncands;
			q.w_batch = j->o->w[vis][0];
			q.w_session = j->o->w[vis][1];
			n = wf_rank_recs(snap, &j->o->params, &q, w, items, scores, NULL);
			score(&local[EV_HYBRID], items, n, target);
		}
		j->res.test_sessions++;
		j->res.pivot_sessions += sess.pivots > 0;
		for (int v = 0; v < EV_NVARIANTS; v++) {
			add_metrics(&j->res.m[v][SL_ALL], &local[v]);
			add_metrics(&j->res.m[v][user >= 0 ? SL_RETURNING : SL_NEW], &local[v]);
			if (sess.pivots)
				add_metrics(&j->res.m[v][SL_PIVOT], &local[v]);
		}
		atomic_fetch_add_explicit(j->progress, 1, memory_order_relaxed); /* progress display only */
	}
	free(w);
	return NULL;
}

/* Sessions as CSR over the time-sorted events, and which are tests. */
struct sessions {
	uint64_t *off, *order;
	uint32_t *test, ntest;
	int64_t *str_item;
};

static int sessions_build(const struct eval_log *log, const struct wf_snap *snap, int64_t from, int64_t to,
			  struct sessions *ss)
{
	uint32_t ns = log->nsessions;
	int64_t *first = malloc(ns * sizeof(*first));
	uint64_t *fill = calloc((size_t)ns + 1, sizeof(*fill));

	ss->off = calloc((size_t)ns + 1, sizeof(*ss->off));
	ss->order = malloc(log->nev * sizeof(*ss->order));
	ss->test = malloc(ns * sizeof(*ss->test));
	ss->str_item = malloc((size_t)(log->nstr ? log->nstr : 1) * sizeof(*ss->str_item));
	if (!first || !fill || !ss->off || !ss->order || !ss->test || !ss->str_item)
		return -ENOMEM;
	for (uint32_t s = 0; s < ns; s++)
		first[s] = INT64_MAX;
	for (uint64_t i = 0; i < log->nev; i++) {
		const struct eval_event *e = &log->ev[i];
		ss->off[e->session + 1]++;
		if (e->ts_ms < first[e->session])
			first[e->session] = e->ts_ms;
	}
	for (uint32_t s = 0; s < ns; s++)
		ss->off[s + 1] += ss->off[s];
	for (uint64_t i = 0; i < log->nev; i++) {
		uint32_t s = log->ev[i].session;
		ss->order[ss->off[s] + fill[s]++] = i; /* log->ev is time-sorted: so is each session */
	}
	ss->ntest = 0;
	for (uint32_t s = 0; s < ns; s++)
		if (first[s] >= from && first[s] < to && ss->off[s + 1] - ss->off[s] >= 2)
			ss->test[ss->ntest++] = s;
	for (uint32_t i = 0; i < log->nstr; i++) {
		uint32_t l;
		const char *p = eval_str(log, i, &l);
		ss->str_item[i] = wf_snap_item_find(snap, p, l);
	}
	free(first);
	free(fill);
	return 0;
}

static void sessions_free(struct sessions *ss)
{
	free(ss->off);
	free(ss->order);
	free(ss->test);
	free(ss->str_item);
}

void eval_replay(const struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, int64_t from,
		 int64_t to, struct eval_result *res)
{
	struct sessions ss = { 0 };
	int nt = WF_MAX(1, WF_MIN(o->threads, 64));
	struct replay_job *jobs = calloc((size_t)nt, sizeof(*jobs));
	pthread_t th[64];
	_Atomic uint64_t progress = 0;
	uint64_t t0 = wf_now_ns();

	memset(res, 0, sizeof(*res));
	if (!jobs || sessions_build(log, snap, from, to, &ss) < 0) {
		fprintf(stderr, "weft-eval: out of memory\n");
		exit(1);
	}
	for (int i = 0; i < nt; i++) {
		jobs[i] = (struct replay_job){ .o = o, .log = log, .snap = snap, .str_item = ss.str_item,
					       .sess_off = ss.off, .order = ss.order, .test = ss.test,
					       .ntest = ss.ntest, .first = (uint32_t)i, .step = (uint32_t)nt,
					       .progress = &progress };
		pthread_create(&th[i], NULL, replay_thread, &jobs[i]);
	}
	if (!o->quiet) {
		/* Progress on stderr while the threads work. */
		for (;;) {
			uint64_t p = atomic_load_explicit(&progress, memory_order_relaxed);
			fprintf(stderr, "\rweft-eval: replayed %llu / %u sessions", (unsigned long long)p, ss.ntest);
			if (p >= ss.ntest)
				break;
			usleep(200000);
		}
		fputc('\n', stderr);
	}
	for (int i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		res->events += jobs[i].res.events;
		res->test_sessions += jobs[i].res.test_sessions;
		res->pivot_sessions += jobs[i].res.pivot_sessions;
		for (int v = 0; v < EV_NVARIANTS; v++)
			for (int s = 0; s < SL_NSLICES; s++)
				add_metrics(&res->m[v][s], &jobs[i].res.m[v][s]);
	}
	res->replay_secs = (double)(wf_now_ns() - t0) / 1e9;
	sessions_free(&ss);
	free(jobs);
}

/* Batch share per visitor type for the current model parameters. */
static void tune_weights(struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, int64_t from,
			 int64_t to, double best[2]);

void eval_tune(struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, int64_t from, int64_t to)
{
	double best[2];

	if (o->tune_model) {
		/* The session model's main constants, by the hybrid's MRR on the
		 * validation days (each with its best batch share). */
		static const float wr[] = { 1.0f, 2.0f, 4.0f }, wn[] = { 0.3f, 0.6f, 1.2f },
				   ce[] = { 1.5f, 2.0f, 3.0f };
		struct eval_opts t = *o, keep = *o;
		double top = -1;
		for (size_t a = 0; a < WF_ARRAY_SIZE(wr); a++)
			for (size_t b = 0; b < WF_ARRAY_SIZE(wn); b++)
				for (size_t c = 0; c < WF_ARRAY_SIZE(ce); c++) {
					t.params.w_recent_item = wr[a];
					t.params.w_neigh = wn[b];
					t.params.confidence_events = ce[c];
					tune_weights(&t, log, snap, from, to, best);
					if (best[0] + best[1] > top) {
						top = best[0] + best[1];
						keep = t;
					}
				}
		o->params = keep.params;
		memcpy(o->w, keep.w, sizeof(o->w));
		fprintf(stderr, "weft-eval: tuned model: w_recent_item %.2f w_neigh %.2f confidence_events %.1f\n",
			o->params.w_recent_item, o->params.w_neigh, o->params.confidence_events);
	}
	tune_weights(o, log, snap, from, to, best);
}

static void tune_weights(struct eval_opts *o, const struct eval_log *log, const struct wf_snap *snap, int64_t from,
			 int64_t to, double best[2])
{
	static struct eval_result r;
	struct eval_opts t = *o;

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
		eval_replay(&t, log, snap, from, to, &r);
		for (int v = 0; v < 2; v++) {
			double m = eval_mrr(&r.m[EV_HYBRID][v == WF_VISITOR_RETURNING ? SL_RETURNING : SL_NEW], o->k);
			if (m > best[v]) {
				best[v] = m;
				o->w[v][0] = wb;
				o->w[v][1] = 1.0f - wb;
			}
		}
		if (!o->quiet && !o->tune_model)
			fprintf(stderr, "\rweft-eval: tuning on the validation days: batch share %.1f", wb);
	}
	if (!o->quiet && !o->tune_model)
		fprintf(stderr, "\nweft-eval: tuned weights: returning %.1f/%.1f, new %.1f/%.1f (MRR@%u %.4f / %.4f)\n",
			o->w[0][0], o->w[0][1], o->w[1][0], o->w[1][1], o->k, best[0], best[1]);
}
