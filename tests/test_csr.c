/*
 * test_csr.c - lib/csr.h: a CSR built by the two-pass counting sort keeps
 * each row's values in input order, empty rows included; the transpose
 * lists, per column, the rows holding it in ascending order; an empty CSR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "lib/csr.h"

static void build(struct wf_csr *c, const uint32_t *rows, uint32_t n, uint32_t nrows)
{
	assert_int_equal(wf_csr_begin(c, nrows), 0);
	for (uint32_t i = 0; i < n; i++)
		wf_csr_count(c, rows[i]);
	assert_int_equal(wf_csr_alloc(c, nrows), 0);
	for (uint32_t i = 0; i < n; i++)
		wf_csr_put(c, rows[i], 100 + i);
}

static void test_csr_rows_keep_input_order(void **state)
{
	/* rows 0..4; row 1 and row 4 empty; value 100 + input position */
	const uint32_t rows[] = { 2, 0, 2, 3, 0, 2 };
	const uint64_t off[] = { 0, 2, 2, 5, 6, 6 };
	const uint32_t idx[] = { 101, 104, 100, 102, 105, 103 };
	struct wf_csr c;

	build(&c, rows, 6, 5);
	assert_memory_equal(c.off, off, sizeof(off));
	assert_memory_equal(c.idx, idx, sizeof(idx));
	wf_csr_fini(&c);
	assert_null(c.off);
	wf_csr_fini(&c);
}

static void test_csr_transpose_lists_rows_per_column(void **state)
{
	enum { ROWS = 40, COLS = 13 };
	uint32_t seed = 7;
	struct wf_csr c, t;

	/* Row r holds r % 5 columns, pseudo-random, repeats allowed. */
	assert_int_equal(wf_csr_begin(&c, ROWS), 0);
	for (uint32_t r = 0; r < ROWS; r++)
		for (uint32_t k = 0; k < r % 5; k++)
			wf_csr_count(&c, r);
	assert_int_equal(wf_csr_alloc(&c, ROWS), 0);
	for (uint32_t r = 0; r < ROWS; r++)
		for (uint32_t k = 0; k < r % 5; k++) {
			seed = seed * 1103515245u + 12345u;
			wf_csr_put(&c, r, (seed >> 16) % COLS);
		}
	assert_int_equal(wf_csr_transpose(&c, ROWS, COLS, &t), 0);
	assert_int_equal(t.off[COLS], c.off[ROWS]);
	for (uint32_t col = 0; col < COLS; col++) {
		uint64_t j = t.off[col];
		for (uint32_t r = 0; r < ROWS; r++)
			for (uint64_t m = c.off[r]; m < c.off[r + 1]; m++)
				if (c.idx[m] == col) {
					assert_true(j < t.off[col + 1]);
					assert_int_equal(t.idx[j++], r);
				}
		assert_int_equal(j, t.off[col + 1]);
	}
	wf_csr_fini(&c);
	wf_csr_fini(&t);
}

static void test_csr_empty(void **state)
{
	struct wf_csr c, t;

	build(&c, NULL, 0, 0);
	assert_int_equal(c.off[0], 0);
	assert_int_equal(wf_csr_transpose(&c, 0, 3, &t), 0);
	for (uint32_t col = 0; col <= 3; col++)
		assert_int_equal(t.off[col], 0);
	wf_csr_fini(&c);
	wf_csr_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csr_rows_keep_input_order),
		cmocka_unit_test(test_csr_transpose_lists_rows_per_column),
		cmocka_unit_test(test_csr_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
