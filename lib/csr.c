/*
 * csr.c - compressed sparse rows built by counting sort (csr.h).
 * Part of libweft; used by weft-batch.
 */
#include "lib/csr.h"

#include <errno.h>
#include <stdlib.h>

int wf_csr_begin(struct wf_csr *c, uint32_t nrows)
{
	*c = (struct wf_csr){ calloc((size_t)nrows + 2, sizeof(uint64_t)), NULL };
	return c->off ? 0 : -ENOMEM;
}

/* Counts sit in off[r + 2]; the prefix sum makes off[r + 1] row r's start,
 * and each put advances it to r's end, so off[r]..off[r + 1] is r. */
int wf_csr_alloc(struct wf_csr *c, uint32_t nrows)
{
	for (uint32_t r = 2; r <= nrows + 1; r++)
		c->off[r] += c->off[r - 1];
	c->idx = malloc((c->off[nrows + 1] ? c->off[nrows + 1] : 1) * sizeof(*c->idx));
	if (!c->idx) {
		wf_csr_fini(c);
		return -ENOMEM;
	}
	return 0;
}

void wf_csr_fini(struct wf_csr *c)
{
	free(c->off);
	free(c->idx);
	*c = (struct wf_csr){ 0 };
}

int wf_csr_transpose(const struct wf_csr *c, uint32_t nrows, uint32_t ncols, struct wf_csr *ret)
{
	struct wf_csr t;
	int r;

	if ((r = wf_csr_begin(&t, ncols)) < 0)
		return r;
	for (uint64_t j = 0; j < c->off[nrows]; j++)
		wf_csr_count(&t, c->idx[j]);
	if ((r = wf_csr_alloc(&t, ncols)) < 0)
		return r;
	for (uint32_t row = 0; row < nrows; row++)
		for (uint64_t j = c->off[row]; j < c->off[row + 1]; j++)
			wf_csr_put(&t, c->idx[j], row);
	*ret = t;
	return 0;
}
