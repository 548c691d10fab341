/*
 * test_pool.c - lib/pool.h: wf_pool_for runs every index exactly once,
 * on worker numbers below the thread count (capped at
 * WF_POOL_MAX_THREADS), for small and large n, and with no work at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>

#include "lib/pool.h"

struct job {
	atomic_uint *hits; /* per index */
	uint32_t max_worker;
	atomic_uint bad_worker;
};

static void one(void *arg, uint64_t i, uint32_t worker)
{
	struct job *j = arg;

	atomic_fetch_add_explicit(&j->hits[i], 1, memory_order_relaxed);
	if (worker >= j->max_worker)
		atomic_fetch_add_explicit(&j->bad_worker, 1, memory_order_relaxed);
}

static void run(uint32_t threads, uint64_t n)
{
	struct job j = { .hits = calloc(n + 1, sizeof(atomic_uint)) };
	uint32_t nt = threads == 0 ? 1 : threads > WF_POOL_MAX_THREADS ? WF_POOL_MAX_THREADS : threads;

	assert_non_null(j.hits);
	j.max_worker = nt;
	atomic_init(&j.bad_worker, 0);
	assert_int_equal(wf_pool_for(threads, n, one, &j, NULL, NULL), 0);
	/* pthread_join published every worker's writes. */
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(atomic_load_explicit(&j.hits[i], memory_order_relaxed), 1);
	assert_int_equal(atomic_load_explicit(&j.bad_worker, memory_order_relaxed), 0);
	free(j.hits);
}

static void test_pool_every_index_once(void **state)
{
	const uint32_t threads[] = { 0, 1, 2, 3, 8, 64, 200 };
	const uint64_t ns[] = { 0, 1, 5, 63, 64, 65, 1000, 100003 };

	for (size_t t = 0; t < sizeof(threads) / sizeof(*threads); t++)
		for (size_t k = 0; k < sizeof(ns) / sizeof(*ns); k++)
			run(threads[t], ns[k]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_every_index_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
