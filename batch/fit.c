/*
 * fit.c - weft-batch's fit of the scoring model's weights (batch/README.md
 * "The fit"): the statistics (neighbours, transitions, repeat curve,
 * popularity, batch lists) are built from the training days before a fit
 * window, written as a snapshot to a temporary file and replayed through
 * lib/rank itself over the fit window's sessions; wf_rank_features()
 * gives every pool entry's features as the scoring scales them, and a
 * pairwise logistic model with L2 (the next click against other pool
 * entries) learns the weight of each, per visitor type. The full build
 * then ships those weights in MODEL. Linked only into weft-batch.
 */
#include <inttypes.h>
#include <math.h>
#include <sys/mman.h>
#include <unistd.h>

#include "batch/batch.h"
#include "lib/rank/rank.h"

#define DAY_MS 86400000LL
#define FIT_SHARE 0.20       /* the fit window: the fewest whole days at the end holding this share of sessions */
#define FIT_KEEP 0.5         /* ... while at least this share of the sessions starts before it */
#define FIT_MAX_SESSIONS 4000u /* replayed at most (every n-th session beyond): a bounded fit */
#define FIT_MIN_POSITIVES 100u  /* next clicks found in the pool a visitor type needs to be fitted */
#define FIT_TOP_NEG 30u      /* negatives per next click: the best others under the default weights... */
#define FIT_SPREAD_NEG 20u   /* ... and others spread over the pool */
#define FIT_VALID 0.25       /* the latest sessions of the window held back to choose λ and features */
#define FIT_SEL_PAIRS 200000u /* pairs per visitor type the choice fits on (every n-th; λ scaled to match) */
#define FIT_MAX_CAND 8u      /* weight vectors scored in one held-back replay */
#define FIT_ROUND_PAIRS 500000u /* pairs collected per round and visitor type at most (Newton's cost) */
#define FIT_ROUNDS 3u         /* of hard negatives */
#define FIT_ITERS 12u        /* Newton steps (at most; it stops when no weight moves by 1e-5) */
#define FIT_K 20u            /* HR@K of the fit window, default against fitted weights */
#define NF WF_RANK_NFEAT

/* Pairwise examples of one visitor type: rows of x_next - x_other. */
struct pairs {
	double *d;
	uint64_t n, cap;
	uint64_t positives;
	uint64_t round_n0;  /* pairs before this round */
};

static int pairs_add(struct pairs *p, const float *pos, const float *neg)
{
	if (p->n == p->cap) {
		uint64_t cap = p->cap ? 2 * p->cap : 4096;
		double *d = realloc(p->d, cap * NF * sizeof(*d));
		if (!d)
			return -ENOMEM;
		p->d = d;
		p->cap = cap;
	}
	for (uint32_t f = 0; f < NF; f++)
		p->d[p->n * NF + f] = (double)pos[f] - (double)neg[f];
	p->n++;
	return 0;
}

static double dot(const double *w, const float *x)
{
	double s = 0;

	for (uint32_t f = 0; f < NF; f++)
		s += w[f] * x[f];
	return s;
}

/* Solve a x = b (n x n, symmetric positive definite after the L2) by
 * Gaussian elimination with partial pivoting; a and b are destroyed. */
static void solve(double *a, double *b, uint32_t n, double *x)
{
	for (uint32_t c = 0; c < n; c++) {
		uint32_t piv = c;
		for (uint32_t r = c + 1; r < n; r++)
			if (fabs(a[r * n + c]) > fabs(a[piv * n + c]))
				piv = r;
		for (uint32_t k = 0; k < n; k++) {
			double t = a[c * n + k];
			a[c * n + k] = a[piv * n + k];
			a[piv * n + k] = t;
		}
		double t = b[c];
		b[c] = b[piv];
		b[piv] = t;
		for (uint32_t r = c + 1; r < n; r++) {
			double m = a[r * n + c] / a[c * n + c];
			for (uint32_t k = c; k < n; k++)
				a[r * n + k] -= m * a[c * n + k];
			b[r] -= m * b[c];
		}
	}
	for (uint32_t c = n; c-- > 0;) {
		double s = b[c];
		for (uint32_t k = c + 1; k < n; k++)
			s -= a[c * n + k] * x[k];
		x[c] = s / a[c * n + c];
	}
}

/* Pairwise logistic regression over every stride-th pair: minimise
 * sum log(1 + exp(-w.d)) + l2 / 2 |w|^2 by Newton's method from w. The
 * mean log-loss per pair to *ret_loss. */
static void logistic_fit(const struct pairs *p, uint64_t stride, double l2, double *w, double *ret_loss)
{
	double h[NF * NF], g[NF], step[NF], loss = 0;
	uint64_t used = 0;

	for (uint32_t it = 0; it < FIT_ITERS; it++) {
		memset(h, 0, sizeof(h));
		for (uint32_t f = 0; f < NF; f++) {
			g[f] = l2 * w[f];
			h[f * NF + f] = l2;
		}
		loss = 0;
		used = 0;
		for (uint64_t i = 0; i < p->n; i += stride, used++) {
			const double *d = &p->d[i * NF];
			double z = 0, s;
			for (uint32_t f = 0; f < NF; f++)
				z += w[f] * d[f];
			s = 1.0 / (1.0 + exp(-z));
			loss += z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
			for (uint32_t f = 0; f < NF; f++) {
				if (d[f] == 0)
					continue;
				g[f] += (s - 1.0) * d[f];
				for (uint32_t e = 0; e < NF; e++)
					h[f * NF + e] += s * (1.0 - s) * d[f] * d[e];
			}
		}
		for (uint32_t f = 0; f < NF; f++)
			g[f] = -g[f];
		solve(h, g, NF, step);
		double moved = 0;
		for (uint32_t f = 0; f < NF; f++) {
			w[f] += step[f];
			moved = fmax(moved, fabs(step[f]));
		}
		if (moved < 1e-5)
			break;
	}
	*ret_loss = used ? loss / (double)used : 0;
}

/* The fit's data: every session starting in the fit window, its events in
 * time order (then file order). */
struct fit_sessions {
	uint32_t *ev;   /* event numbers, grouped by session */
	uint64_t nev;
	uint64_t *off;  /* session k's events: ev[off[k], off[k + 1]) */
	uint8_t *valid; /* session k is held back (the latest FIT_VALID by start): chooses, never fits */
	uint32_t n;
	uint32_t nvalid;
};

static int cmp_session_time(const void *x, const void *y, void *arg)
{
	const struct wf_batch *b = arg;
	const struct wf_batch_event *a = &b->ev[*(const uint32_t *)x], *c = &b->ev[*(const uint32_t *)y];

	if (a->session != c->session)
		return a->session < c->session ? -1 : 1;
	if (a->ts_ms != c->ts_ms)
		return a->ts_ms < c->ts_ms ? -1 : 1;
	return (*(const uint32_t *)x > *(const uint32_t *)y) - (*(const uint32_t *)x < *(const uint32_t *)y);
}

/* Where a session starts (its first event's ts), per session number. */
static int64_t *session_starts(const struct wf_batch *b)
{
	int64_t *st = malloc(((size_t)b->st.sessions + 1) * sizeof(*st));

	if (!st)
		return NULL;
	for (uint64_t s = 0; s < b->st.sessions; s++)
		st[s] = INT64_MAX;
	for (uint64_t i = 0; i < b->nev; i++)
		st[b->ev[i].session] = WF_MIN(st[b->ev[i].session], b->ev[i].ts_ms);
	return st;
}

/* The fit window (batch/README.md "The fit"): the fewest whole days at
 * the end of the data that hold FIT_SHARE of the sessions, if at least
 * FIT_KEEP of them start before it. 0 and the cut in *ret_cut, or -1: no
 * fit (too little data). */
static int fit_window(const struct wf_batch *b, const int64_t *start, int64_t *ret_cut, uint32_t *ret_days)
{
	uint64_t total = 0;

	for (uint64_t s = 0; s < b->st.sessions; s++)
		total += start[s] != INT64_MAX;
	for (uint32_t days = 1; (int64_t)days * DAY_MS < b->max_ms - b->min_ms; days++) {
		int64_t cut = b->max_ms - (int64_t)days * DAY_MS;
		uint64_t after = 0;
		for (uint64_t s = 0; s < b->st.sessions; s++)
			after += start[s] != INT64_MAX && start[s] >= cut;
		if ((double)after >= FIT_SHARE * (double)total) {
			if ((double)(total - after) < FIT_KEEP * (double)total)
				return -1;
			*ret_cut = cut;
			*ret_days = days;
			return 0;
		}
	}
	return -1;
}

/* The training days before the cut as a build of their own, written to
 * path: a copy of b's loaded state (ids, catalog) with the events of the
 * sessions that start before the cut, through the same model and writer. */
static int build_before(struct wf_batch *b, const int64_t *start, int64_t cut, const char *path)
{
	struct wf_batch f = *b;
	uint64_t n = 0;
	uint8_t *seen = NULL; /* users with events before the cut */
	int r = -ENOMEM;

	f.opt.out = path;
	f.opt.quiet = true;
	f.item = malloc(((size_t)b->items.n + 1) * sizeof(*f.item));
	f.user = malloc(((size_t)b->users.n + 1) * sizeof(*f.user));
	f.ev_map = (b->nev + 1) * sizeof(*f.ev);
	f.ev = mmap(NULL, f.ev_map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	f.neigh = f.seq = f.compl = f.cands = NULL;
	f.neigh_cnt = f.seq_cnt = f.compl_cnt = f.cat_top = f.cat_top_cnt = f.cand_cnt = NULL;
	f.cat_boost = f.cat_wday_index = f.cat_year_index = NULL;
	memset(&f.model, 0, sizeof(f.model));
	if (f.ev == MAP_FAILED) {
		f.ev = NULL;
		goto out;
	}
	seen = calloc((size_t)b->users.n + 1, 1);
	if (!f.item || !f.user || !seen)
		goto out;
	if (b->items.n)
		memcpy(f.item, b->item, (size_t)b->items.n * sizeof(*f.item));
	if (b->users.n)
		memcpy(f.user, b->user, (size_t)b->users.n * sizeof(*f.user));
	f.min_ms = INT64_MAX;
	f.max_ms = INT64_MIN;
	for (uint64_t i = 0; i < b->nev; i++)
		if (start[b->ev[i].session] < cut) {
			f.ev[n++] = b->ev[i];
			f.min_ms = WF_MIN(f.min_ms, b->ev[i].ts_ms);
			f.max_ms = WF_MAX(f.max_ms, b->ev[i].ts_ms);
			if (b->ev[i].user != WF_BATCH_NO_USER)
				seen[b->ev[i].user] = 1;
		}
	f.nev = n;
	/* A user first seen in the fit window is, before it, someone with no
	 * history: seen "now", so no time span runs from INT64_MIN. */
	for (uint32_t u = 0; u < b->users.n; u++)
		if (!seen[u])
			f.user[u].first_ms = f.user[u].last_ms = f.max_ms;
	if ((r = wf_batch_model(&f)) == 0)
		r = wf_batch_emit(&f);
out:
	if (f.ev)
		munmap(f.ev, f.ev_map);
	free(seen);
	free(f.item);
	free(f.user);
	free(f.neigh);
	free(f.neigh_cnt);
	free(f.seq);
	free(f.seq_cnt);
	free(f.compl);
	free(f.compl_cnt);
	free(f.cat_top);
	free(f.cat_top_cnt);
	free(f.cands);
	free(f.cand_cnt);
	free(f.cat_boost);
	free(f.cat_wday_index);
	free(f.cat_year_index);
	return r;
}

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, c = *(const int64_t *)y;

	return (a > c) - (a < c);
}

/* Mark the latest FIT_VALID of the window's sessions (by first event) as
 * held back: they come after every fitted one in time, as tomorrow's
 * shoppers come after the nightly. */
static int hold_back(const struct wf_batch *b, struct fit_sessions *fs)
{
	int64_t *st = malloc(((size_t)fs->n + 1) * sizeof(*st)), cut;

	fs->valid = calloc((size_t)fs->n + 1, 1);
	if (!st || !fs->valid) {
		free(st);
		free(fs->valid);
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < fs->n; k++)
		st[k] = b->ev[fs->ev[fs->off[k]]].ts_ms;
	qsort(st, fs->n, sizeof(*st), cmp_i64);
	cut = fs->n ? st[(uint32_t)((double)fs->n * (1.0 - FIT_VALID))] : 0;
	for (uint32_t k = 0; k < fs->n; k++)
		if (b->ev[fs->ev[fs->off[k]]].ts_ms >= cut)
			fs->valid[k] = 1, fs->nvalid++;
	free(st);
	return 0;
}

static int fit_sessions_of(const struct wf_batch *b, const int64_t *start, int64_t cut, struct fit_sessions *ret)
{
	struct fit_sessions fs = { 0 };
	uint64_t nsess = 0, every;

	for (uint64_t s = 0; s < b->st.sessions; s++)
		nsess += start[s] != INT64_MAX && start[s] >= cut;
	every = (nsess + FIT_MAX_SESSIONS - 1) / FIT_MAX_SESSIONS; /* keep every n-th session */
	fs.ev = malloc((b->nev + 1) * sizeof(*fs.ev));
	fs.off = malloc((nsess + 2) * sizeof(*fs.off));
	if (!fs.ev || !fs.off) {
		free(fs.ev);
		free(fs.off);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < b->nev; i++) {
		uint32_t s = b->ev[i].session;
		if (start[s] >= cut && start[s] != INT64_MAX && s % WF_MAX(every, 1) == 0)
			fs.ev[fs.nev++] = (uint32_t)i;
	}
	qsort_r(fs.ev, fs.nev, sizeof(*fs.ev), cmp_session_time, (void *)b);
	for (uint64_t i = 0; i < fs.nev; i++)
		if (i == 0 || b->ev[fs.ev[i]].session != b->ev[fs.ev[i - 1]].session)
			fs.off[fs.n++] = i;
	fs.off[fs.n] = fs.nev;
	if (hold_back(b, &fs) < 0) {
		free(fs.ev);
		free(fs.off);
		return -ENOMEM;
	}
	*ret = fs;
	return 0;
}

/* Every entry's score by weights w, to sc[0..n). */
static void scores_by(const double *w, const float *feat, uint32_t n, double *sc)
{
	for (uint32_t i = 0; i < n; i++)
		sc[i] = dot(w, feat + (size_t)i * NF);
}

/* Entry i ranks before entry t (higher score; ties: lower index). */
static inline int before(const double *sc, uint32_t i, uint32_t t)
{
	return sc[i] > sc[t] || (sc[i] == sc[t] && i < t);
}

/* The rank of entry t among n by scores sc (0 best). */
static uint32_t rank_of(const double *sc, uint32_t n, uint32_t t)
{
	uint32_t better = 0;

	for (uint32_t i = 0; i < n; i++)
		better += i != t && before(sc, i, t);
	return better;
}

/* Weight vectors scored on the held-back sessions in one replay, per
 * visitor type: the next click's rank under each (HR@K, MRR@K). */
struct scored {
	uint32_t n;
	double w[FIT_MAX_CAND][NF];
	uint64_t hits[FIT_MAX_CAND];
	double rr[FIT_MAX_CAND];  /* sum of 1 / (rank + 1) over the hits */
	uint64_t positions;
};

struct replay {
	const struct wf_batch *b;
	const struct wf_snap *snap;
	const struct wf_rank_params *p;
	const struct fit_sessions *fs;
	struct wf_rank_scratch *w;
	uint32_t *items;
	float *feat;
	double *sc;          /* WF_RANK_POOL scores */
	const double *wt_neg[2]; /* per visitor type: the weights that choose the negatives */
	int held;                /* 0: collect pairs on the fitted sessions; 1: score cand on the held-back ones */
	uint32_t round;          /* of collecting: 0 the defaults choose the negatives */
	struct pairs pr[2];
	struct scored cand[2];
};

/* A held-back position: its rank under every candidate weight vector. */
static void score_position(struct replay *rp, struct scored *sc, uint32_t n, uint32_t t)
{
	sc->positions++;
	if (t == UINT32_MAX)
		return;
	for (uint32_t c = 0; c < sc->n; c++) {
		scores_by(sc->w[c], rp->feat, n, rp->sc);
		uint32_t rank = rank_of(rp->sc, n, t);
		if (rank < FIT_K) {
			sc->hits[c]++;
			sc->rr[c] += 1.0 / (rank + 1);
		}
	}
}

/* One next click: the pool's features; on a fitted session, pairs of the
 * next item against the best others by wt_neg and others spread over the
 * pool; on a held-back one, its rank under each candidate. */
static int replay_position(struct replay *rp, const struct wf_rank_query *q, uint32_t target)
{
	int vis, n = wf_rank_features(rp->snap, rp->p, q, rp->w, rp->items, rp->feat, WF_RANK_POOL, &vis);
	uint32_t t = UINT32_MAX, v = vis == WF_VISITOR_RETURNING ? 0 : 1;
	struct pairs *pr = &rp->pr[v];

	for (int i = 0; i < n; i++)
		if (rp->items[i] == target)
			t = (uint32_t)i;
	if (rp->held) {
		score_position(rp, &rp->cand[v], (uint32_t)n, t);
		return 0;
	}
	int full = pr->n - pr->round_n0 >= FIT_ROUND_PAIRS; /* this round has its pairs */

	if (t == UINT32_MAX || full)
		return 0;
	pr->positives++;
	scores_by(rp->wt_neg[v], rp->feat, (uint32_t)n, rp->sc);
	/* the FIT_TOP_NEG best others by wt_neg, kept in order
	 * by insertion (most entries lose one comparison) */
	uint32_t top[FIT_TOP_NEG], ntop = 0;
	for (uint32_t i = 0; i < (uint32_t)n; i++) {
		if (i == t || (ntop == FIT_TOP_NEG && !before(rp->sc, i, top[ntop - 1])))
			continue;
		uint32_t at = ntop < FIT_TOP_NEG ? ntop++ : ntop - 1;
		for (; at > 0 && before(rp->sc, i, top[at - 1]); at--)
			top[at] = top[at - 1];
		top[at] = i;
	}
	for (uint32_t k = 0; k < ntop; k++)
		if (pairs_add(pr, rp->feat + (size_t)t * NF, rp->feat + (size_t)top[k] * NF) < 0)
			return -ENOMEM;
	for (uint32_t k = 0; k < FIT_SPREAD_NEG && n > 1; k++) {
		uint32_t i = (uint32_t)(((uint64_t)k * 2654435761u + target) % (uint32_t)n);
		if (i != t && pairs_add(pr, rp->feat + (size_t)t * NF, rp->feat + (size_t)i * NF) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Replay the fit window's sessions through lib/rank: after each event
 * whose next event is a click on an item, one position. */
static int replay(struct replay *rp)
{
	const struct wf_batch *b = rp->b;
	const struct fit_sessions *fs = rp->fs;
	struct wf_rank_session sess;

	for (uint32_t k = 0; k < fs->n; k++) {
		const struct wf_snap_cand *cands = NULL;
		uint32_t ncands = 0;
		if (fs->valid[k] != rp->held)
			continue;
		wf_rank_session_init(&sess);
		for (uint64_t i = fs->off[k]; i < fs->off[k + 1]; i++) {
			const struct wf_batch_event *e = &b->ev[fs->ev[i]];
			int64_t item = e->item == 0xffffffffu ? -1 : (int64_t)e->item;
			if (!cands && e->user != WF_BATCH_NO_USER && e->user < rp->snap->nusers &&
			    rp->snap->users[e->user].cand_cnt) {
				cands = rp->snap->cands + rp->snap->users[e->user].cand_off;
				ncands = rp->snap->users[e->user].cand_cnt;
			}
			wf_rank_session_apply(&sess, rp->snap, rp->p, e->type, item, 0);
			if (i + 1 >= fs->off[k + 1])
				break;
			const struct wf_batch_event *nx = &b->ev[fs->ev[i + 1]];
			if (nx->item == 0xffffffffu ||
			    !(nx->type == WF_EV_VIEW || nx->type == WF_EV_CLICK || nx->type == WF_EV_PDP ||
			      nx->type == WF_EV_CART_ADD || nx->type == WF_EV_PURCHASE))
				continue;
			/* A returning shopper's position counts twice: with the
			 * list (the returning weights) and without (the new
			 * visitors' weights, which score the session alone). */
			struct wf_rank_query q = { .sess = &sess, .cands = cands, .ncands = ncands, .w_batch = 1,
						   .w_session = 1, .anchor = -1, .k = FIT_K };
			int r = replay_position(rp, &q, nx->item);
			q.cands = NULL;
			q.ncands = 0;
			if (r == 0 && cands)
				r = replay_position(rp, &q, nx->item);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* λ: a log-spaced grid, the same on every log (the held-back sessions
 * choose); when they choose its end, it goes on by the same factor. */
static const double fit_l2_grid[] = { 0.01, 0.1, 1, 10, 100, 1000, 10000 };
#define FIT_L2_STEP 10.0
#define FIT_L2_MAX 1e8
_Static_assert(WF_ARRAY_SIZE(fit_l2_grid) <= FIT_MAX_CAND, "candidates of one replay");

/* What the held-back sessions chose for one visitor type. */
struct choice {
	int fit;            /* enough next clicks to fit this type */
	int done;           /* λ is chosen */
	double l2;
	double w[NF];       /* the best candidate's weights so far */
};

/* Score the candidates in rp->cand on the held-back sessions. */
static int score_held(struct replay *rp)
{
	int r;

	for (uint32_t v = 0; v < 2; v++) {
		memset(rp->cand[v].hits, 0, sizeof(rp->cand[v].hits));
		memset(rp->cand[v].rr, 0, sizeof(rp->cand[v].rr));
		rp->cand[v].positions = 0;
	}
	rp->held = 1;
	r = replay(rp);
	rp->held = 0;
	return r;
}

/* The candidate with the best MRR@K on the held-back sessions; ties go to
 * the later one (the grid ascends: the stronger penalty). */
static uint32_t best_of(const struct scored *sc)
{
	uint32_t best = 0;

	for (uint32_t c = 1; c < sc->n; c++)
		if (sc->rr[c] >= sc->rr[best])
			best = c;
	return best;
}

/* A candidate: from w, fitted on every stride-th pair (λ / stride keeps
 * the penalty's weight against the data's). */
static void add_candidate(struct replay *rp, uint32_t v, const double *w, double l2)
{
	struct scored *sc = &rp->cand[v];
	const struct pairs *pr = &rp->pr[v];
	uint64_t stride = WF_MAX(1, (pr->n + FIT_SEL_PAIRS - 1) / FIT_SEL_PAIRS);
	double loss;

	memcpy(sc->w[sc->n], w, sizeof(sc->w[0]));
	logistic_fit(pr, stride, l2 / (double)stride, sc->w[sc->n], &loss);
	sc->n++;
}

/* Choose λ on the held-back sessions: the grid, then on past its end
 * while that helps. (Dropping features one at a time the same way was
 * tried: it lowered HR@20 on all three logs of EVAL.md, so it is not done.) */
static int choose(struct replay *rp, const double w0[2][NF], struct choice ch[2])
{
	int r;

	for (uint32_t v = 0; v < 2; v++) {
		rp->cand[v].n = 0;
		for (uint32_t g = 0; ch[v].fit && g < WF_ARRAY_SIZE(fit_l2_grid); g++) /* each from the last */
			add_candidate(rp, v, g ? rp->cand[v].w[g - 1] : w0[v], fit_l2_grid[g]);
	}
	if ((r = score_held(rp)) < 0)
		return r;
	for (uint32_t v = 0; v < 2; v++) {
		if (!ch[v].fit || !rp->cand[v].positions) {
			ch[v].fit = 0;
			continue;
		}
		uint32_t c = best_of(&rp->cand[v]);
		ch[v].l2 = fit_l2_grid[c];
		memcpy(ch[v].w, rp->cand[v].w[c], sizeof(ch[v].w));
		ch[v].done = c + 1 < rp->cand[v].n; /* inside the grid: λ is chosen */
	}
	/* The grid's end won: go on, one larger λ at a time, while it helps. */
	while ((!ch[0].done && ch[0].fit) || (!ch[1].done && ch[1].fit)) {
		for (uint32_t v = 0; v < 2; v++) {
			rp->cand[v].n = 0;
			if (!ch[v].fit || ch[v].done)
				continue;
			add_candidate(rp, v, ch[v].w, ch[v].l2);
			add_candidate(rp, v, ch[v].w, ch[v].l2 * FIT_L2_STEP);
		}
		if ((r = score_held(rp)) < 0)
			return r;
		for (uint32_t v = 0; v < 2; v++) {
			if (!ch[v].fit || ch[v].done)
				continue;
			if (best_of(&rp->cand[v]) == 0 || ch[v].l2 * FIT_L2_STEP > FIT_L2_MAX) {
				ch[v].done = 1;
				continue;
			}
			ch[v].l2 *= FIT_L2_STEP;
			memcpy(ch[v].w, rp->cand[v].w[1], sizeof(ch[v].w));
		}
	}
	return 0;
}

/* Progress: what the held-back sessions chose for visitor type v. */
static void report_choice(const struct wf_batch *b, uint32_t v, const char *vis, const struct choice *ch,
			  const struct pairs *pr, const double *w)
{
	if (b->opt.quiet)
		return;
	fprintf(stderr, "weft-batch: %6.1fs fit: %s: %" PRIu64 " pairs from %" PRIu64 " next clicks, λ %g,",
		(double)(wf_now_ns() - b->t0_ns) / 1e9, vis, pr->n, pr->positives, ch->l2);
	fprintf(stderr, " held-back HR@%u %.4f (defaults %.4f), weights", FIT_K, (double)b->model.hr_fit[v],
		(double)b->model.hr_default[v]);
	for (uint32_t f = 0; f < NF; f++)
		fprintf(stderr, " %s %.4g", wf_rank_feature_name(f), w[f]);
	fputc('\n', stderr);
}

int wf_batch_fit(struct wf_batch *b)
{
	static const char *const vis[2] = { "returning", "new" };
	char path[4096], man[4200], err[1024];
	int64_t *start = NULL, cut;
	uint32_t days;
	struct fit_sessions fs = { 0 };
	struct wf_snap *snap = NULL;
	struct wf_rank_params p;
	float wd[NF];
	double w0[2][NF], w1[2][NF];
	struct replay *rp = calloc(1, sizeof(*rp));
	struct choice ch[2] = { 0 };
	int r = 0;

	wf_rank_params_default(&p);
	if (!rp || !(start = session_starts(b))) {
		free(rp);
		return -ENOMEM;
	}
	if (fit_window(b, start, &cut, &days) < 0) {
		wf_batch_progress(b, "fit: too little data for a fit window, default weights", 0, 0);
		goto out;
	}
	snprintf(path, sizeof(path), "%s.fit.tmp", b->opt.out);
	snprintf(man, sizeof(man), "%s.manifest.json", path);
	if (!b->opt.quiet)
		fprintf(stderr, "weft-batch: %6.1fs fit: statistics from the days before the last %u (the fit window)\n",
			(double)(wf_now_ns() - b->t0_ns) / 1e9, days);
	if ((r = build_before(b, start, cut, path)) < 0)
		goto out;
	r = wf_snap_open(path, &snap, err, sizeof(err));
	unlink(path);
	unlink(man);
	if (r < 0) {
		wf_err("fit: %s", err);
		goto out;
	}
	if ((r = fit_sessions_of(b, start, cut, &fs)) < 0)
		goto out;
	if (!b->opt.quiet)
		fprintf(stderr, "weft-batch: %6.1fs fit: replaying %u sessions of the fit window through lib/rank (%u held back)\n",
			(double)(wf_now_ns() - b->t0_ns) / 1e9, fs.n - fs.nvalid, fs.nvalid);
	for (uint32_t v = 0; v < 2; v++) {
		wf_rank_weights(snap, &p, v == 0 ? WF_VISITOR_RETURNING : WF_VISITOR_NEW, wd);
		for (uint32_t f = 0; f < NF; f++)
			w0[v][f] = w1[v][f] = wd[f];
	}
	*rp = (struct replay){ .b = b, .snap = snap, .p = &p, .fs = &fs, .wt_neg = { w0[0], w0[1] } };
	rp->w = calloc(1, sizeof(*rp->w)); /* zeroed before its first query (lib/rank/rank.h) */
	rp->items = malloc(WF_RANK_POOL * sizeof(*rp->items));
	rp->feat = malloc((size_t)WF_RANK_POOL * NF * sizeof(*rp->feat));
	rp->sc = malloc(WF_RANK_POOL * sizeof(*rp->sc));
	if (!rp->w || !rp->items || !rp->feat || !rp->sc) {
		r = -ENOMEM;
		goto out;
	}
	/* FIT_ROUNDS rounds on the fitted sessions: the negatives of the
	 * first are the best others by the default weights, those of each
	 * later one by the previous fit's (the entries a fitted model would
	 * put above the next click; λ 1 there, it only picks negatives). */
	for (rp->round = 0; rp->round < FIT_ROUNDS; rp->round++) {
		uint32_t nfit = 0;
		for (uint32_t v = 0; v < 2; v++)
			rp->pr[v].round_n0 = rp->pr[v].n;
		if ((r = replay(rp)) < 0)
			goto out;
		for (uint32_t v = 0; v < 2; v++) {
			double loss = 0;
			if (rp->pr[v].positives < FIT_MIN_POSITIVES * (rp->round + 1))
				continue;
			logistic_fit(&rp->pr[v], 1, 1.0, w1[v], &loss);
			rp->wt_neg[v] = w1[v];
			ch[v].fit = 1;
			nfit++;
		}
		if (!nfit)
			break;
	}
	/* λ and the features, chosen on the held-back sessions; then the fit
	 * on every pair with them, kept only if it beats the defaults there. */
	if ((ch[0].fit || ch[1].fit) && (r = choose(rp, w0, ch)) < 0)
		goto out;
	for (uint32_t v = 0; v < 2; v++) {
		double loss = 0;
		rp->cand[v].n = 0;
		if (!ch[v].fit)
			continue;
		memcpy(w1[v], ch[v].w, sizeof(w1[v]));
		logistic_fit(&rp->pr[v], 1, ch[v].l2, w1[v], &loss);
		b->model.logloss[v] = (float)loss;
		b->model.examples[v] = rp->pr[v].n;
		b->model.positives[v] = rp->pr[v].positives / FIT_ROUNDS;
		memcpy(rp->cand[v].w[0], w0[v], sizeof(w0[v]));
		memcpy(rp->cand[v].w[1], w1[v], sizeof(w1[v]));
		rp->cand[v].n = 2;
	}
	if ((ch[0].fit || ch[1].fit) && (r = score_held(rp)) < 0)
		goto out;
	for (uint32_t v = 0; v < 2; v++) {
		const struct scored *sc = &rp->cand[v];
		if (!ch[v].fit || !sc->positions) {
			if (!b->opt.quiet)
				fprintf(stderr, "weft-batch: %6.1fs fit: %s: %" PRIu64 " next clicks in the pool, too few: default weights\n",
					(double)(wf_now_ns() - b->t0_ns) / 1e9, vis[v], rp->pr[v].positives);
			continue;
		}
		b->model.hr_default[v] = (float)((double)sc->hits[0] / (double)sc->positions);
		b->model.hr_fit[v] = (float)((double)sc->hits[1] / (double)sc->positions);
		if (sc->rr[1] < sc->rr[0]) { /* no better than the defaults on the held-back sessions */
			if (!b->opt.quiet)
				fprintf(stderr, "weft-batch: %6.1fs fit: %s: fitted MRR@%u below the defaults' on the held-back sessions: default weights\n",
					(double)(wf_now_ns() - b->t0_ns) / 1e9, vis[v], FIT_K);
			continue;
		}
		for (uint32_t f = 0; f < NF; f++)
			b->model.weight[v][f] = (float)w1[v][f];
		b->model.flags |= v == 0 ? WF_SNAP_MODEL_FITTED_RETURNING : WF_SNAP_MODEL_FITTED_NEW;
		report_choice(b, v, vis[v], &ch[v], &rp->pr[v], w1[v]);
	}
	if (b->model.flags) {
		b->model.version = WF_RANK_MODEL_VERSION;
		b->model.feature_set = WF_RANK_FEATURE_SET;
		b->model.nfeat = NF;
		b->model.fit_days = days;
	}
out:
	for (uint32_t v = 0; v < 2; v++)
		free(rp->pr[v].d);
	free(rp->w);
	free(rp->items);
	free(rp->feat);
	free(rp->sc);
	free(rp);
	wf_snap_close(snap);
	free(fs.ev);
	free(fs.off);
	free(fs.valid);
	free(start);
	if (r < 0)
		wf_err("fit: %s", strerror(-r));
	return r;
}
