/*
 * baselines.c - the published session-based methods that weft-eval
 * reports beside weft's variants (see baselines.h): V-SkNN, association
 * rules (AR) and sequential rules (SR) after Ludewig & Jannach 2018. For
 * evaluation only; linked only into weft-eval.
 *
 * Training (single-threaded, deterministic): the training sessions as
 * item sequences, then per item its AR and SR rule lists (best `depth`
 * kept: a rank past depth is a miss anyway) and, for V-SkNN, the sessions
 * that contain it, most recent first. Memory: the sequences, one posting
 * per (session, distinct item), and at most 2 x depth rules per item.
 * Time: AR counts every pair of positions of a session (sum of L^2 over
 * the training sessions, as published), SR 10 per position.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "eval/baselines.h"
#include "eval/eval.h"

struct eval_base {
	uint32_t nitems;        /* the snapshot's items, then those it lacks */
	uint32_t nstr;
	uint32_t *item_of_str;  /* per interned string: item, or UINT32_MAX */
	uint32_t depth;
	/* AR and SR: item a's rules are rule_item[m][rule_off[m][a] .. rule_off[m][a + 1]), best first */
	uint64_t *rule_off[2];
	uint32_t *rule_item[2];
	/* V-SkNN: training sessions numbered by recency (0 = the one that
	 * ended last), each as its distinct items; per item the sessions
	 * that contain it, in ascending number (most recent first). */
	uint32_t nsess;
	uint64_t *sess_off, *post_off;
	uint32_t *sess_items, *post;
};

struct eval_base_sess {
	struct eval_sknn_params kp;
	uint32_t nitems;
	uint32_t *seq, len, cap;     /* the items looked at, in order */
	uint32_t *sample, nsample;   /* the kp.sample most recent sessions sharing an item, ascending */
	uint32_t *merge_tmp;
	uint32_t *merged, gen;       /* merged[item] == gen: its sessions are in the sample */
	uint32_t *wstamp, wgen;      /* wstamp[item] == wgen: wgt[item] is this prediction's weight */
	float *wgt;
	uint32_t *wpos;              /* and wpos[item] its last position in the session (1-based) */
	double *acc;                 /* item scores of one prediction; 0 = untouched */
	uint32_t *touched, ntouched;
	struct neighbour {
		double sim;
		uint32_t sess;
		uint32_t step; /* steps back to the most recent item shared with the session (1: the last) */
	} *nb;
};

void eval_sknn_params_default(struct eval_sknn_params *kp)
{
	kp->k = 100;
	kp->sample = 500;
	kp->linear = 0;
	kp->step_decay = 0;
}

uint32_t eval_base_item(const struct eval_base *b, uint32_t str)
{
	return str < b->nstr ? b->item_of_str[str] : UINT32_MAX;
}

void eval_base_destroy(struct eval_base *b)
{
	if (!b)
		return;
	free(b->item_of_str);
	for (int m = 0; m < 2; m++) {
		free(b->rule_off[m]);
		free(b->rule_item[m]);
	}
	free(b->sess_off);
	free(b->post_off);
	free(b->sess_items);
	free(b->post);
	free(b);
}

void eval_base_stats(const struct eval_base *b, uint64_t *ret_sessions, uint64_t *ret_items, uint64_t *ret_rules)
{
	*ret_sessions = b->nsess;
	*ret_items = b->nitems;
	*ret_rules = b->rule_off[0][b->nitems] + b->rule_off[1][b->nitems];
}

/* Number every item of the log: snapshot items keep their index. */
static int number_items(struct eval_base *b, const struct eval_log *log, const struct wf_snap *snap)
{
	b->nstr = log->nstr;
	b->item_of_str = malloc(((size_t)log->nstr + 1) * sizeof(*b->item_of_str));
	if (!b->item_of_str)
		return -ENOMEM;
	memset(b->item_of_str, 0xff, ((size_t)log->nstr + 1) * sizeof(*b->item_of_str));
	b->nitems = snap->nitems;
	for (uint64_t i = 0; i < log->nev; i++) {
		const struct eval_event *e = &log->ev[i];
		uint32_t l;

		if (e->item == UINT32_MAX || !eval_is_target(e->type) || b->item_of_str[e->item] != UINT32_MAX)
			continue;
		const char *id = eval_str(log, e->item, &l);
		int64_t ix = wf_snap_item_find(snap, id, l);
		b->item_of_str[e->item] = ix >= 0 ? (uint32_t)ix : b->nitems++;
	}
	return 0;
}

/* The training sessions (events before `before`) as item sequences:
 * seq[off[s] .. off[s + 1]), in time order; last[s] is the time of the
 * session's last such event. Sessions without one are left out. On
 * failure t may hold part: train_fini() frees it. */
struct train {
	uint32_t n;
	uint64_t *off;
	uint32_t *seq, *num; /* num: the log's session number (ties in recency) */
	int64_t *last;
};

static void train_fini(struct train *t)
{
	free(t->off);
	free(t->seq);
	free(t->num);
	free(t->last);
}

static int train_build(const struct eval_base *b, const struct eval_log *log, int64_t before, struct train *t)
{
	uint32_t ns = log->nsessions;
	WF_CLEANUP(wf_freep) uint64_t *cnt = calloc((size_t)ns + 1, sizeof(*cnt));
	WF_CLEANUP(wf_freep) uint32_t *dense = malloc(((size_t)ns + 1) * sizeof(*dense));
	uint64_t npos = 0;

	memset(t, 0, sizeof(*t));
	if (!cnt || !dense)
		return -ENOMEM;
	for (uint64_t i = 0; i < log->nev && log->ev[i].ts_ms < before; i++) {
		const struct eval_event *e = &log->ev[i];
		if (e->item != UINT32_MAX && eval_is_target(e->type)) {
			cnt[e->session]++;
			npos++;
		}
	}
	for (uint32_t s = 0; s < ns; s++)
		t->n += cnt[s] > 0;
	if (!t->n)
		return -ENODATA;
	t->off = malloc(((size_t)t->n + 1) * sizeof(*t->off));
	t->seq = malloc(npos * sizeof(*t->seq));
	t->num = malloc((size_t)t->n * sizeof(*t->num));
	t->last = malloc((size_t)t->n * sizeof(*t->last));
	if (!t->off || !t->seq || !t->num || !t->last)
		return -ENOMEM; /* the caller's train_fini() frees what was allocated */
	t->off[0] = 0;
	for (uint32_t s = 0, d = 0; s < ns; s++) {
		if (!cnt[s]) {
			dense[s] = UINT32_MAX;
			continue;
		}
		dense[s] = d;
		t->num[d] = s;
		t->off[d + 1] = t->off[d] + cnt[s];
		cnt[s] = t->off[d]; /* from here: the next free position */
		d++;
	}
	/* log->ev is sorted by time: each sequence fills in time order. */
	for (uint64_t i = 0; i < log->nev && log->ev[i].ts_ms < before; i++) {
		const struct eval_event *e = &log->ev[i];
		if (e->item == UINT32_MAX || !eval_is_target(e->type))
			continue;
		uint32_t d = dense[e->session];
		t->seq[cnt[e->session]++] = b->item_of_str[e->item];
		t->last[d] = e->ts_ms;
	}
	return 0;
}

/* A training session's place in recency order: most recent first; a tie
 * in time goes to the lower session number. */
struct recency {
	int64_t last;
	uint32_t num, sess;
};

static int cmp_recency(const void *x, const void *y)
{
	const struct recency *a = x, *c = y;

	if (a->last != c->last)
		return a->last > c->last ? -1 : 1;
	return a->num < c->num ? -1 : a->num > c->num;
}

/* V-SkNN's index: the sessions in recency order, each as its distinct
 * items, and per item the sessions that contain it (ascending number:
 * most recent first). */
static int sknn_build(struct eval_base *b, const struct train *t)
{
	WF_CLEANUP(wf_freep) struct recency *rk = malloc((size_t)t->n * sizeof(*rk));
	WF_CLEANUP(wf_freep) uint32_t *stamp = calloc((size_t)b->nitems + 1, sizeof(*stamp));
	WF_CLEANUP(wf_freep) uint64_t *fill = calloc((size_t)b->nitems + 1, sizeof(*fill));
	uint64_t total = 0;

	b->nsess = t->n;
	b->sess_off = malloc(((size_t)t->n + 1) * sizeof(*b->sess_off));
	b->post_off = calloc((size_t)b->nitems + 1, sizeof(*b->post_off));
	if (!rk || !stamp || !fill || !b->sess_off || !b->post_off)
		return -ENOMEM;
	for (uint32_t s = 0; s < t->n; s++)
		rk[s] = (struct recency){ .last = t->last[s], .num = t->num[s], .sess = s };
	qsort(rk, t->n, sizeof(*rk), cmp_recency);
	/* Pass 1 counts (session r marks its items with r + 1), pass 2 fills. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			b->sess_items = malloc((total ? total : 1) * sizeof(*b->sess_items));
			b->post = malloc((total ? total : 1) * sizeof(*b->post));
			if (!b->sess_items || !b->post)
				return -ENOMEM;
			for (uint32_t i = 0; i < b->nitems; i++)
				b->post_off[i + 1] += b->post_off[i];
			memcpy(fill, b->post_off, (size_t)b->nitems * sizeof(*fill));
			memset(stamp, 0, ((size_t)b->nitems + 1) * sizeof(*stamp));
			total = 0;
		}
		b->sess_off[0] = 0;
		for (uint32_t rank = 0; rank < t->n; rank++) {
			uint32_t s = rk[rank].sess;
			for (uint64_t q = t->off[s]; q < t->off[s + 1]; q++) {
				uint32_t it = t->seq[q];
				if (stamp[it] == rank + 1)
					continue;
				stamp[it] = rank + 1;
				if (pass == 0) {
					b->post_off[it + 1]++;
				} else {
					b->sess_items[total] = it;
					b->post[fill[it]++] = rank;
				}
				total++;
			}
			b->sess_off[rank + 1] = total;
		}
	}
	return 0;
}

/* An item's score in a rule list or a V-SkNN prediction. */
struct scored {
	double score;
	uint32_t item;
};

/* Best first; equal scores in item order. */
static int cmp_scored(const void *x, const void *y)
{
	const struct scored *a = x, *c = y;

	if (a->score != c->score)
		return a->score > c->score ? -1 : 1;
	return a->item < c->item ? -1 : a->item > c->item;
}

/* One item's rule list: its best b->depth items of acc[touched[..n)],
 * appended at rule_item[*w]; acc is left zero. */
static void emit_rules(const struct eval_base *b, double *acc, const uint32_t *touched, uint32_t n,
		       struct scored *tmp, uint32_t *rule_item, uint64_t *w)
{
	for (uint32_t i = 0; i < n; i++) {
		tmp[i] = (struct scored){ .score = acc[touched[i]], .item = touched[i] };
		acc[touched[i]] = 0;
	}
	qsort(tmp, n, sizeof(*tmp), cmp_scored);
	for (uint32_t i = 0; i < n && i < b->depth; i++)
		rule_item[(*w)++] = tmp[i].item;
}

/*
 * AR and SR (Ludewig & Jannach 2018, section 3.1; session-rec's
 * association_rules.py and sequential_rules.py):
 *   AR: for every two positions p != q of a training session, rule
 *       s_p -> s_q gains 1 (all pairs, both directions; an item that
 *       comes back in a session gains a rule to itself);
 *   SR: for positions p < q <= p + 10, rule s_p -> s_q gains 1 / (q - p).
 * Built one source item at a time from its occurrences, so the counts
 * need only one dense accumulator per method, never a table of pairs.
 * (Longer than most: the two methods share one walk over the occurrences.)
 */
static int rules_build(struct eval_base *b, const struct train *t)
{
	uint64_t npos = t->off[t->n], w[2] = { 0, 0 };
	WF_CLEANUP(wf_freep) uint64_t *occ_off = calloc((size_t)b->nitems + 1, sizeof(*occ_off));
	WF_CLEANUP(wf_freep) uint64_t *fill = malloc(((size_t)b->nitems + 1) * sizeof(*fill));
	WF_CLEANUP(wf_freep) uint64_t *occ = malloc((npos ? npos : 1) * sizeof(*occ));
	WF_CLEANUP(wf_freep) uint32_t *pos_sess = malloc((npos ? npos : 1) * sizeof(*pos_sess));
	WF_CLEANUP(wf_freep) double *acc_ar = calloc(b->nitems, sizeof(double));
	WF_CLEANUP(wf_freep) double *acc_sr = calloc(b->nitems, sizeof(double));
	WF_CLEANUP(wf_freep) uint32_t *touched_ar = malloc((size_t)b->nitems * sizeof(uint32_t));
	WF_CLEANUP(wf_freep) uint32_t *touched_sr = malloc((size_t)b->nitems * sizeof(uint32_t));
	WF_CLEANUP(wf_freep) struct scored *tmp = malloc((size_t)b->nitems * sizeof(*tmp));
	double *acc[2] = { acc_ar, acc_sr };
	uint32_t *touched[2] = { touched_ar, touched_sr };

	for (int m = 0; m < 2; m++) {
		b->rule_off[m] = malloc(((size_t)b->nitems + 1) * sizeof(uint64_t));
		b->rule_item[m] = malloc(((size_t)b->nitems * b->depth + 1) * sizeof(uint32_t));
		if (!b->rule_off[m] || !b->rule_item[m])
			return -ENOMEM;
	}
	if (!occ_off || !fill || !occ || !pos_sess || !acc_ar || !acc_sr || !touched_ar || !touched_sr || !tmp)
		return -ENOMEM;
	for (uint32_t s = 0; s < t->n; s++)
		for (uint64_t q = t->off[s]; q < t->off[s + 1]; q++) {
			pos_sess[q] = s;
			occ_off[t->seq[q] + 1]++;
		}
	for (uint32_t i = 0; i < b->nitems; i++)
		occ_off[i + 1] += occ_off[i];
	memcpy(fill, occ_off, ((size_t)b->nitems + 1) * sizeof(*fill));
	for (uint64_t q = 0; q < npos; q++)
		occ[fill[t->seq[q]]++] = q;
	for (uint32_t a = 0; a < b->nitems; a++) {
		uint32_t n[2] = { 0, 0 };

		for (uint64_t o = occ_off[a]; o < occ_off[a + 1]; o++) {
			uint64_t g = occ[o], lo = t->off[pos_sess[g]], hi = t->off[pos_sess[g] + 1];
			for (uint64_t q = lo; q < hi; q++) {
				uint32_t it = t->seq[q];
				if (q == g)
					continue;
				if (acc[0][it] == 0)
					touched[0][n[0]++] = it;
				acc[0][it] += 1;
			}
			for (uint64_t q = g + 1; q < hi && q <= g + EVAL_SR_STEPS; q++) {
				uint32_t it = t->seq[q];
				if (acc[1][it] == 0)
					touched[1][n[1]++] = it;
				acc[1][it] += 1.0 / (double)(q - g);
			}
		}
		for (int m = 0; m < 2; m++) {
			b->rule_off[m][a] = w[m];
			emit_rules(b, acc[m], touched[m], n[m], tmp, b->rule_item[m], &w[m]);
		}
	}
	for (int m = 0; m < 2; m++)
		b->rule_off[m][b->nitems] = w[m];
	return 0;
}

int eval_base_build(const struct eval_log *log, const struct wf_snap *snap, int64_t before, uint32_t depth,
		    struct eval_base **ret)
{
	struct eval_base *b = calloc(1, sizeof(*b));
	struct train t = { 0 };
	int r = -ENOMEM;

	if (!b)
		return -ENOMEM;
	b->depth = WF_MAX(1u, WF_MIN(depth, EVAL_MAX_K));
	if ((r = number_items(b, log, snap)) < 0 || (r = train_build(b, log, before, &t)) < 0 ||
	    (r = sknn_build(b, &t)) < 0 || (r = rules_build(b, &t)) < 0) {
		train_fini(&t);
		eval_base_destroy(b);
		return r;
	}
	train_fini(&t);
	*ret = b;
	return 0;
}

/* ---- one thread's test session ---- */

void eval_base_sess_destroy(struct eval_base_sess *s)
{
	if (!s)
		return;
	free(s->seq);
	free(s->sample);
	free(s->merge_tmp);
	free(s->merged);
	free(s->wstamp);
	free(s->wgt);
	free(s->wpos);
	free(s->acc);
	free(s->touched);
	free(s->nb);
	free(s);
}

int eval_base_sess_create(const struct eval_base *b, const struct eval_sknn_params *kp, struct eval_base_sess **ret)
{
	struct eval_base_sess *s = calloc(1, sizeof(*s));
	size_t n = (size_t)b->nitems + 1, m;

	if (!s)
		return -ENOMEM;
	s->kp = *kp;
	s->nitems = b->nitems;
	s->kp.sample = WF_MAX(1u, s->kp.sample);
	s->kp.k = WF_MAX(1u, s->kp.k);
	m = s->kp.sample;
	s->cap = 64;
	s->seq = malloc(s->cap * sizeof(*s->seq));
	s->sample = malloc(m * sizeof(*s->sample));
	s->merge_tmp = malloc(m * sizeof(*s->merge_tmp));
	s->merged = calloc(n, sizeof(*s->merged));
	s->wstamp = calloc(n, sizeof(*s->wstamp));
	s->wgt = malloc(n * sizeof(*s->wgt));
	s->wpos = malloc(n * sizeof(*s->wpos));
	s->acc = calloc(n, sizeof(*s->acc));
	s->touched = malloc(n * sizeof(*s->touched));
	s->nb = malloc(m * sizeof(*s->nb));
	if (!s->seq || !s->sample || !s->merge_tmp || !s->merged || !s->wstamp || !s->wgt || !s->wpos || !s->acc ||
	    !s->touched || !s->nb) {
		eval_base_sess_destroy(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

void eval_base_sess_reset(struct eval_base_sess *s)
{
	s->len = 0;
	s->nsample = 0;
	s->ntouched = 0;
	if (++s->gen == 0) { /* wrapped: forget every old mark */
		memset(s->merged, 0, ((size_t)s->nitems + 1) * sizeof(*s->merged));
		s->gen = 1;
	}
}

/*
 * V-SkNN's candidate sessions are the kp.sample most recent training
 * sessions among all that contain an item of the current session
 * (session-rec's sampling 'recent'). The most recent m of a union are
 * the most recent m of the most recent m of each part, so each new item
 * merges its first m sessions into the sample once: O(m) per item.
 */
static void sample_merge(const struct eval_base *b, struct eval_base_sess *s, uint32_t item)
{
	const uint32_t *x = s->sample, *y = b->post + b->post_off[item];
	uint32_t nx = s->nsample, ny = (uint32_t)WF_MIN(b->post_off[item + 1] - b->post_off[item], s->kp.sample);
	uint32_t i = 0, j = 0, n = 0, *out = s->merge_tmp;

	while (n < s->kp.sample && (i < nx || j < ny)) {
		if (j >= ny || (i < nx && x[i] < y[j]))
			out[n++] = x[i++];
		else if (i >= nx || y[j] < x[i])
			out[n++] = y[j++];
		else {
			out[n++] = x[i++];
			j++;
		}
	}
	s->merge_tmp = s->sample;
	s->sample = out;
	s->nsample = n;
}

void eval_base_sess_add(const struct eval_base *b, struct eval_base_sess *s, uint32_t item)
{
	if (item >= b->nitems)
		return;
	if (s->len == s->cap) {
		uint32_t *n = realloc(s->seq, (size_t)s->cap * 2 * sizeof(*n));
		if (!n)
			return; /* keep the session as it is: a longer one only refines it */
		s->seq = n;
		s->cap *= 2;
	}
	s->seq[s->len++] = item;
	if (s->merged[item] != s->gen) {
		s->merged[item] = s->gen;
		sample_merge(b, s, item);
	}
}

/* Neighbours: better similarity first, then the more recent session. */
static int nb_better(const struct neighbour *a, const struct neighbour *c)
{
	return a->sim > c->sim || (a->sim == c->sim && a->sess < c->sess);
}

/* Keep the k best of nb[0..n) in nb[0..k) (a min-heap on nb_better). */
static uint32_t top_neighbours(struct neighbour *nb, uint32_t n, uint32_t k)
{
	uint32_t h = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct neighbour x = nb[i];
		uint32_t c = 0;

		if (h < k) { /* sift up */
			c = h++;
			while (c > 0 && nb_better(&nb[(c - 1) / 2], &x)) {
				nb[c] = nb[(c - 1) / 2];
				c = (c - 1) / 2;
			}
			nb[c] = x;
			continue;
		}
		if (!nb_better(&x, &nb[0]))
			continue;
		for (;;) { /* replace the worst kept one, sift down */
			uint32_t l = 2 * c + 1, m = l;
			if (l >= h)
				break;
			if (l + 1 < h && nb_better(&nb[l], &nb[l + 1]))
				m = l + 1;
			if (!nb_better(&x, &nb[m]))
				break;
			nb[c] = nb[m];
			c = m;
		}
		nb[c] = x;
	}
	return h;
}

/*
 * V-SkNN (Ludewig & Jannach 2018, section 3.2, "vector multiplication
 * session-based kNN"; session-rec's vsknn.py with its defaults): the
 * current session is a vector over its items whose weight falls linearly
 * with the position, the most recent item weighing 1 (i/L for position i
 * of L, or 1 - 0.1 (L - i) with kp.linear; an item seen twice keeps its
 * later weight). A candidate session's similarity is the dot product
 * with its binary item vector (session-rec's 'vec'; its division by the
 * session's length is the same for every candidate and left out). The k
 * most similar candidates score each of their items with their
 * similarity, summed. Returns the target's rank, or -1.
 */
static int32_t sknn_position(const struct eval_base *b, struct eval_base_sess *s, int64_t target)
{
	uint32_t L = s->len, nnb = 0, nt = 0;
	int32_t pos = -1;

	if (++s->wgen == 0) {
		memset(s->wstamp, 0, ((size_t)s->nitems + 1) * sizeof(*s->wstamp));
		s->wgen = 1;
	}
	for (uint32_t i = 1; i <= L; i++) {
		uint32_t it = s->seq[i - 1], back = L - i;
		s->wgt[it] = s->kp.linear ? (back < 10 ? (float)(10 - back) / 10.0f : 0.0f) : (float)i / (float)L;
		s->wstamp[it] = s->wgen;
		s->wpos[it] = i;
	}
	for (uint32_t c = 0; c < s->nsample; c++) {
		uint32_t r = s->sample[c];
		double sim = 0;
		uint32_t latest = 0;
		for (uint64_t q = b->sess_off[r]; q < b->sess_off[r + 1]; q++) {
			uint32_t it = b->sess_items[q];
			if (s->wstamp[it] == s->wgen) {
				sim += s->wgt[it];
				latest = WF_MAX(latest, s->wpos[it]);
			}
		}
		if (sim > 0)
			s->nb[nnb++] = (struct neighbour){ .sim = sim, .sess = r, .step = L - latest + 1 };
	}
	nnb = top_neighbours(s->nb, nnb, s->kp.k);
	for (uint32_t c = 0; c < nnb; c++) {
		uint32_t r = s->nb[c].sess;
		double add = s->kp.step_decay ? s->nb[c].sim / s->nb[c].step : s->nb[c].sim;
		for (uint64_t q = b->sess_off[r]; q < b->sess_off[r + 1]; q++) {
			uint32_t it = b->sess_items[q];
			if (s->acc[it] == 0)
				s->touched[nt++] = it;
			s->acc[it] += add;
		}
	}
	if (target >= 0 && target < b->nitems && s->acc[target] > 0) {
		double t = s->acc[target];
		uint32_t above = 0;
		for (uint32_t c = 0; c < nt; c++) {
			uint32_t it = s->touched[c];
			above += s->acc[it] > t || (s->acc[it] == t && it < (uint64_t)target);
		}
		if (above < b->depth)
			pos = (int32_t)above;
	}
	for (uint32_t c = 0; c < nt; c++)
		s->acc[s->touched[c]] = 0;
	return pos;
}

/* AR and SR recommend the last item's rules, in order. */
static int32_t rule_position(const struct eval_base *b, int m, uint32_t last, int64_t target)
{
	for (uint64_t q = b->rule_off[m][last]; q < b->rule_off[m][last + 1]; q++)
		if (b->rule_item[m][q] == target)
			return (int32_t)(q - b->rule_off[m][last]);
	return -1;
}

void eval_base_positions(const struct eval_base *b, struct eval_base_sess *s, int64_t target,
			 int32_t ret_pos[EB_NMETHODS])
{
	for (int m = 0; m < EB_NMETHODS; m++)
		ret_pos[m] = -1;
	if (!s->len)
		return;
	ret_pos[EB_SKNN] = sknn_position(b, s, target);
	ret_pos[EB_AR] = rule_position(b, 0, s->seq[s->len - 1], target);
	ret_pos[EB_SR] = rule_position(b, 1, s->seq[s->len - 1], target);
}
