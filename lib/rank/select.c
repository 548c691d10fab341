/*
 * select.c - choosing the best m entries of a scored pool (libweftrank,
 * see rank.h): by order key (rank_int.h: score, then the lower item
 * index), a branch-free scan for a few, a heap for more.
 */
#include "lib/rank/rank.h"
#include "lib/rank/rank_int.h"
#include "lib/util.h"

#include <math.h>
#include <string.h>

/* Sift h[i] down the heap h[0..hn) (the worst entry, lowest key, at the root). */
static inline void heap_down(const uint64_t *key, uint32_t *h, uint32_t hn, uint32_t i)
{
	uint32_t x = h[i];
	uint64_t kx = key[x];

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= hn)
			break;
		if (c + 1 < hn && key[h[c + 1]] < key[h[c]])
			c++; /* the worse child */
		if (kx <= key[h[c]])
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = x;
}

/*
 * rank_select_top() for m <= SELECT_FEW, from the keys: the best m so far kept
 * unsorted, with the place of the worst of them; an entry that beats it
 * takes that place, and the worst is found again by a scan that does not
 * branch (for a few dozen, cheaper than a heap's sift down, whose
 * branches are coin tosses); at the end each kept entry's place in the
 * order is the number of kept entries better than it (keys are unique).
 */
#define SELECT_FEW 32u

/* The index of the lowest of hk[0..hn), hn >= 1. */
static inline uint32_t worst_of(const uint64_t *hk, uint32_t hn)
{
	uint64_t v0 = hk[0], v1 = hk[hn > 1];
	uint32_t p0 = 0, p1 = hn > 1;

	/* Two chains of compare and move, for the two halves' worst. */
	for (uint32_t i = 2; i + 1 < hn; i += 2) {
		int b0 = hk[i] < v0, b1 = hk[i + 1] < v1;
		p0 = b0 ? i : p0;
		v0 = b0 ? hk[i] : v0;
		p1 = b1 ? i + 1 : p1;
		v1 = b1 ? hk[i + 1] : v1;
	}
	if (hn > 2 && hn % 2 && hk[hn - 1] < v0) {
		p0 = hn - 1;
		v0 = hk[hn - 1];
	}
	return v1 < v0 ? p1 : p0;
}

static uint32_t select_few(struct wf_rank_scratch *w, const uint32_t *cand, uint32_t n, uint32_t m,
			   int *ret_more)
{
	uint64_t hk[SELECT_FEW], root = 0, ninf = order_key(-INFINITY, 0); /* the highest key at -inf */
	uint32_t hx[SELECT_FEW], hn = 0, more = 0, at = 0, x;

	for (x = 0; x < n && hn < m; x++)
		if (w->score[cand[x]] != -INFINITY) {
			hk[hn] = w->key[cand[x]];
			hx[hn++] = cand[x];
		}
	if (hn) {
		at = worst_of(hk, hn);
		root = hk[at];
	}
	/* As rank_select_top()'s heap: most entries lose one comparison. */
	for (; x < n; x++) {
		uint64_t kx = w->key[cand[x]];
		if (kx <= root) {
			more |= kx > ninf;
			continue;
		}
		more = 1;
		hk[at] = kx;
		hx[at] = cand[x];
		at = worst_of(hk, hn);
		root = hk[at];
	}
	for (uint32_t i = 0; i < hn; i++) {
		uint32_t better = 0;
		for (uint32_t j = 0; j < hn; j++)
			better += hk[j] > hk[i];
		w->order[better] = hx[i];
	}
	*ret_more = (int)more;
	return hn;
}

/*
 * select_few() over a pool many times larger than m: first a score that
 * the m-th best cannot be below, so that most entries are left out by
 * one comparison, before their order key is even computed, and none is
 * kept for a while and then replaced (in pool order the batch list's best
 * come first and the session's entries replace them one by one, a scan
 * of the kept keys each). Entries in g >= m groups (entry x in group x
 * mod g, four groups a vector), each group's best score: each of the g
 * groups holds an entry at or above the lowest group best, so the best m
 * by order key (score first) all are (at -inf: no bound). The entries not
 * below it are listed in pool order without branches (a NaN too, as
 * order_key() puts it first), their keys computed and select_few() picks
 * from them: the same m entries in the same order as over the whole pool.
 * Entries scored above -inf and left out of the list are left out of the
 * answer too: *ret_more.
 */
#define SELECT_GROUPS_FROM 4u /* select_groups() from pools of 4m entries */

static uint32_t select_groups(struct wf_rank_scratch *w, uint32_t n, uint32_t m, int *ret_more)
{
	typedef float v4f __attribute__((vector_size(16)));
	typedef int32_t v4i __attribute__((vector_size(16)));
	const v4f ninf4 = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
	v4f best[SELECT_FEW / 4];
	uint32_t *cand = w->order, nc = 0, live = 0, ng = (m + 3) / 4, got, x, j = 0; /* select_few() writes w->order once done with cand */
	float bound = INFINITY;

	for (uint32_t i = 0; i < ng; i++)
		best[i] = ninf4;
	for (x = 0; x + 4 <= n; x += 4) { /* (a NaN never replaces) */
		v4f v;
		memcpy(&v, &w->score[x], sizeof(v));
		v4i gt = v > best[j];
		best[j] = (v4f)((gt & (v4i)v) | (~gt & (v4i)best[j]));
		j = j + 1 == ng ? 0 : j + 1;
	}
	for (uint32_t i = 0; i < ng; i++)
		for (uint32_t l = 0; l < 4; l++)
			bound = best[i][l] < bound ? best[i][l] : bound;
	/* Four at a time: most blocks hold no entry at or above the bound
	 * (one test), and those that do list theirs without branches. */
	const v4f b4 = { bound, bound, bound, bound };
	v4i lv = { 0, 0, 0, 0 };
	for (x = 0; x + 4 <= n; x += 4) {
		v4f v;
		memcpy(&v, &w->score[x], sizeof(v));
		v4i in = ~(v < b4);
		lv -= v != ninf4; /* (a true compare is -1) */
		v4i any = in | __builtin_shufflevector(in, in, 2, 3, 0, 1); /* (lanes.h's v4_any()) */
		any |= __builtin_shufflevector(any, any, 1, 0, 3, 2);
		if (any[0])
			for (uint32_t l = 0; l < 4; l++) {
				cand[nc] = x + l;
				nc += in[l] & 1;
			}
	}
	live = (uint32_t)(lv[0] + lv[1] + lv[2] + lv[3]);
	for (; x < n; x++) {
		cand[nc] = x;
		nc += !(w->score[x] < bound);
		live += w->score[x] != -INFINITY;
	}
	for (uint32_t i = 0; i < nc; i++)
		w->key[cand[i]] = order_key(w->score[cand[i]], w->item[cand[i]]);
	got = select_few(w, cand, nc, m, ret_more);
	*ret_more = *ret_more || live > got;
	return got;
}

/* Put the m best scored pool entries (score > -inf) in order[0..ret),
 * best first, and return ret <= m; *ret_more is 1 when entries were left
 * out (m = n: the whole pool in order). Every entry's order_key() first
 * (one loop, no branches); then, for m <= SELECT_FEW, select_few(), else
 * a bounded heap with the worst kept entry at the root (most entries lose
 * one integer comparison with it and cost nothing more) and a heap sort. */
uint32_t rank_select_top(struct wf_rank_scratch *w, uint32_t n, uint32_t m, int *ret_more)
{
	uint32_t *h = w->order, hn = 0, x;
	uint64_t *key = w->key, root = 0, ninf = order_key(-INFINITY, 0); /* the highest key at -inf */
	uint32_t more = 0;

	if (m == 0) {
		for (x = 0; x < n; x++)
			more |= w->score[x] != -INFINITY;
		*ret_more = (int)more;
		return 0;
	}
	if (m <= SELECT_FEW && n >= SELECT_GROUPS_FROM * m)
		return select_groups(w, n, m, ret_more);
	/* Every key first, in one loop without branches. */
	for (x = 0; x < n; x++)
		key[x] = order_key(w->score[x], w->item[x]);
	if (m <= SELECT_FEW) {
		for (x = 0; x < n; x++)
			h[x] = x;
		return select_few(w, h, n, m, ret_more);
	}
	/* Fill the heap with the first m entries scored above -inf. */
	for (x = 0; x < n && hn < m; x++) {
		uint32_t i;
		uint64_t kx = key[x];
		if (w->score[x] == -INFINITY)
			continue;
		/* Sift up: a parent is never better than its children. */
		for (i = hn++; i > 0 && key[h[(i - 1) / 2]] > kx; i = (i - 1) / 2)
			h[i] = h[(i - 1) / 2];
		h[i] = x;
	}
	if (hn)
		root = key[h[0]];
	/* Then each entry beats the worst kept one, or stops on one integer
	 * comparison (an entry at -inf has a key at most ninf, below every
	 * kept one; it only must not count as left out). */
	for (; x < n; x++) {
		uint64_t kx = key[x];
		if (kx <= root) {
			more |= kx > ninf;
			continue;
		}
		more = 1;
		h[0] = x; /* replace the root */
		heap_down(key, h, hn, 0);
		root = key[h[0]];
	}
	*ret_more = (int)more;
	/* Heap sort: the worst goes last, each in turn; the best stays first. */
	for (uint32_t end = hn; end > 1; end--) {
		uint32_t t = h[0];
		h[0] = h[end - 1];
		h[end - 1] = t;
		heap_down(key, h, end - 1, 0);
	}
	return hn;
}
