/*
 * test_topk.c - lib/topk.h: the dense accumulator (sums, the touched list,
 * a sum that cancels to zero, clearing) and the bounded top-k heap (the k
 * best in order, ties by item, scores not above zero refused, k = 0,
 * agreement with a full sort over random input with many ties).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/topk.h"

static void test_topk_acc_sums_and_lists_each_id_once(void **state)
{
	struct wf_acc a;

	assert_int_equal(wf_acc_init(&a, 10), 0);
	wf_acc_add(&a, 7, 1.0f);
	wf_acc_add(&a, 2, 0.5f);
	wf_acc_add(&a, 7, 2.0f);
	assert_int_equal(a.n, 2);
	assert_int_equal(a.touched[0], 7);
	assert_int_equal(a.touched[1], 2);
	assert_true(a.v[7] == 3.0f);
	assert_true(a.v[2] == 0.5f);
	/* Cancelling to zero keeps the id listed, once, with a tiny sum. */
	wf_acc_add(&a, 2, -0.5f);
	assert_true(a.v[2] > 0.0f && a.v[2] < 1e-20f);
	wf_acc_add(&a, 2, 1.0f);
	assert_int_equal(a.n, 2);
	wf_acc_clear(&a);
	assert_int_equal(a.n, 0);
	for (uint32_t i = 0; i < 10; i++)
		assert_true(a.v[i] == 0.0f);
	wf_acc_add(&a, 9, 4.0f);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.touched[0], 9);
	wf_acc_fini(&a);
	wf_acc_fini(&a); /* twice: fini leaves it empty */
}

static void test_topk_keeps_best_k_sorted_ties_by_item(void **state)
{
	struct wf_snap_cand h[3];
	struct wf_topk t = { h, 0, 3 };

	wf_topk_push(&t, 5, 1.0f);
	wf_topk_push(&t, 1, 2.0f);
	wf_topk_push(&t, 9, 2.0f);
	wf_topk_push(&t, 4, 0.5f);
	wf_topk_push(&t, 3, 2.0f);
	wf_topk_push(&t, 8, 0.0f);
	wf_topk_push(&t, 6, -1.0f);
	wf_topk_push(&t, 7, NAN);
	assert_int_equal(wf_topk_finish(&t), 3);
	assert_int_equal(h[0].item, 1);
	assert_int_equal(h[1].item, 3);
	assert_int_equal(h[2].item, 9);
	assert_true(h[0].score == 2.0f && h[2].score == 2.0f);
}

static void test_topk_zero_k_and_nonpositive_keep_nothing(void **state)
{
	struct wf_snap_cand h[1];
	struct wf_topk t = { h, 0, 0 }, u = { h, 0, 1 };

	wf_topk_push(&t, 1, 5.0f);
	assert_int_equal(wf_topk_finish(&t), 0);
	wf_topk_push(&u, 1, 0.0f);
	wf_topk_push(&u, 2, -INFINITY);
	assert_int_equal(wf_topk_finish(&u), 0);
}

static int cmp_best_first(const void *x, const void *y)
{
	const struct wf_snap_cand *a = x, *b = y;

	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return (a->item > b->item) - (a->item < b->item);
}

static void test_topk_random_matches_full_sort(void **state)
{
	enum { N = 5000, K = 37 };
	struct wf_snap_cand *all = malloc(N * sizeof(*all)), h[K];
	uint32_t seed = 12345, n = 0;

	assert_non_null(all);
	for (uint32_t round = 0; round < 20; round++) {
		struct wf_topk t = { h, 0, K };
		n = 0;
		for (uint32_t i = 0; i < N; i++) {
			seed = seed * 1103515245u + 12345u;
			/* Few distinct scores, so most comparisons are ties. */
			float s = (float)((seed >> 16) % 50) - 5.0f;
			wf_topk_push(&t, i, s);
			if (s > 0.0f)
				all[n++] = (struct wf_snap_cand){ i, s };
		}
		qsort(all, n, sizeof(*all), cmp_best_first);
		assert_int_equal(wf_topk_finish(&t), n < K ? n : K);
		for (uint32_t k = 0; k < t.n; k++) {
			assert_int_equal(h[k].item, all[k].item);
			assert_true(h[k].score == all[k].score);
		}
	}
	free(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topk_acc_sums_and_lists_each_id_once),
		cmocka_unit_test(test_topk_keeps_best_k_sorted_ties_by_item),
		cmocka_unit_test(test_topk_zero_k_and_nonpositive_keep_nothing),
		cmocka_unit_test(test_topk_random_matches_full_sort),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
