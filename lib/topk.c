/*
 * topk.c - dense score accumulator and bounded top-k heap (topk.h).
 * Part of libweft; used by weft-batch.
 */
#include "lib/topk.h"

#include <errno.h>
#include <stdlib.h>

int wf_acc_init(struct wf_acc *a, uint32_t nids)
{
	a->v = calloc(nids ? nids : 1, sizeof(*a->v));
	a->touched = malloc((nids ? nids : 1) * sizeof(*a->touched));
	a->n = 0;
	return a->v && a->touched ? 0 : -ENOMEM;
}

void wf_acc_fini(struct wf_acc *a)
{
	free(a->v);
	free(a->touched);
	a->v = NULL;
	a->touched = NULL;
	a->n = 0;
}

void wf_acc_clear(struct wf_acc *a)
{
	for (uint32_t k = 0; k < a->n; k++)
		a->v[a->touched[k]] = 0.0f;
	a->n = 0;
}

/* x ranks below y: lower score, or the same score and a higher item. */
static inline bool worse(const struct wf_snap_cand *x, const struct wf_snap_cand *y)
{
	return x->score < y->score || (x->score == y->score && x->item > y->item);
}

/* Sift h[i] down the min-heap h[0..n) (the worst entry at the root). */
static void heap_down(struct wf_snap_cand *h, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, m = i;
		if (l < n && worse(&h[l], &h[m]))
			m = l;
		if (l + 1 < n && worse(&h[l + 1], &h[m]))
			m = l + 1;
		if (m == i)
			return;
		struct wf_snap_cand t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

void wf_topk_push(struct wf_topk *t, uint32_t item, float score)
{
	struct wf_snap_cand c = { item, score };

	if (!(score > 0.0f) || t->k == 0)
		return;
	if (t->n < t->k) {
		uint32_t i = t->n++;
		t->h[i] = c;
		while (i > 0 && worse(&t->h[i], &t->h[(i - 1) / 2])) {
			struct wf_snap_cand x = t->h[i];
			t->h[i] = t->h[(i - 1) / 2];
			t->h[(i - 1) / 2] = x;
			i = (i - 1) / 2;
		}
	} else if (worse(&t->h[0], &c)) {
		t->h[0] = c;
		heap_down(t->h, t->n, 0);
	}
}

uint32_t wf_topk_finish(struct wf_topk *t)
{
	uint32_t n = t->n;

	for (uint32_t end = n; end > 1; end--) {
		struct wf_snap_cand x = t->h[0];
		t->h[0] = t->h[end - 1];
		t->h[end - 1] = x;
		heap_down(t->h, end - 1, 0);
	}
	return n;
}
