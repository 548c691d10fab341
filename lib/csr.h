/*
 * csr.h - compressed sparse rows: values grouped by row in one array.
 *
 * Row r's values are idx[off[r] .. off[r + 1]). A CSR is built by a
 * counting sort in two passes over the same input, in the same order:
 *
 *   wf_csr_begin(&c, nrows);           for each (row, v): wf_csr_count(&c, row);
 *   wf_csr_alloc(&c, nrows);           for each (row, v): wf_csr_put(&c, row, v);
 *
 * so within a row the values keep the order of the input. Nothing is
 * allocated per value. Owner: the caller; wf_csr_fini() frees.
 * Used by weft-batch (events by session and by user, items by basket).
 * Library code, never logs.
 */
#ifndef WF_CSR_H
#define WF_CSR_H

#include <stdint.h>

struct wf_csr {
	uint64_t *off; /* nrows + 2 entries while building, nrows + 1 meaningful after */
	uint32_t *idx; /* off[nrows] values */
};

/* Start a CSR of nrows rows, every count zero. 0 or -ENOMEM. */
int wf_csr_begin(struct wf_csr *c, uint32_t nrows);

/* First pass: one more value for row (< nrows). */
static inline void wf_csr_count(struct wf_csr *c, uint32_t row)
{
	c->off[row + 2]++;
}

/* Between the passes: turn the counts into row starts and allocate the
 * values. 0, or -ENOMEM with *c freed (zeroed). */
int wf_csr_alloc(struct wf_csr *c, uint32_t nrows);

/* Second pass: append v to row. After the last put, off[r]..off[r + 1]
 * is row r. */
static inline void wf_csr_put(struct wf_csr *c, uint32_t row, uint32_t v)
{
	c->idx[c->off[row + 1]++] = v;
}

/* Free and zero; takes a zeroed or half-built CSR. */
void wf_csr_fini(struct wf_csr *c);

/* The transpose of c (nrows rows of column numbers < ncols) into *ret:
 * ncols rows, row j listing in ascending order the rows of c that hold j
 * (a row twice if it holds j twice). 0 or -ENOMEM; *ret written only on
 * success. */
int wf_csr_transpose(const struct wf_csr *c, uint32_t nrows, uint32_t ncols, struct wf_csr *ret);

#endif
