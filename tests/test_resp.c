/*
 * test_resp.c - the RESP2 parser and reply writers (lib/resp.h): multibulk
 * and inline requests, every split point of a frame, pipelines, quoting,
 * limits, and malformed input of every kind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/resp.h"

static struct wf_resp_req req;

static int parse(const char *s, size_t n, const char **err)
{
	return wf_resp_parse(s, n, NULL, &req, err);
}

static void assert_arg(uint32_t i, const char *s)
{
	assert_true(i < req.argc);
	assert_int_equal(req.argv[i].len, strlen(s));
	assert_memory_equal(req.argv[i].p, s, strlen(s));
}

static void test_resp_multibulk_parses_all_args(void **state)
{
	const char *f = "*3\r\n$4\r\nRECS\r\n$2\r\ns1\r\n$0\r\n\r\n";
	const char *err = NULL;

	assert_int_equal(parse(f, strlen(f), &err), (int)strlen(f));
	assert_int_equal(req.argc, 3);
	assert_arg(0, "RECS");
	assert_arg(1, "s1");
	assert_arg(2, "");
}

static void test_resp_every_split_point_needs_more(void **state)
{
	const char *f = "*2\r\n$5\r\nEVENT\r\n$13\r\nbinary\r\nsafe!\r\n";
	const char *inl = "EVENT s1 - view \"i 1\"\r\n";
	const char *err;

	for (size_t cut = 0; cut < strlen(f); cut++)
		assert_int_equal(parse(f, cut, &err), 0);
	assert_int_equal(parse(f, strlen(f), &err), (int)strlen(f));
	assert_arg(1, "binary\r\nsafe!");
	for (size_t cut = 0; cut < strlen(inl); cut++)
		assert_int_equal(parse(inl, cut, &err), 0);
	assert_int_equal(parse(inl, strlen(inl), &err), (int)strlen(inl));
	assert_int_equal(req.argc, 5);
	assert_arg(4, "i 1");
}

static void test_resp_pipeline_mixed_frames(void **state)
{
	const char *p = "PING\r\n*1\r\n$4\r\nPING\r\n\r\nECHO hi\n*2\r\n$4\r\nECHO\r\n$2\r\nyo\r\n";
	const char *expect[][2] = { { "PING", NULL }, { "PING", NULL }, { NULL, NULL }, { "ECHO", "hi" }, { "ECHO", "yo" } };
	size_t off = 0;
	const char *err;

	for (int i = 0; i < 5; i++) {
		int n = parse(p + off, strlen(p) - off, &err);
		assert_true(n > 0);
		off += (size_t)n;
		if (!expect[i][0]) {
			assert_int_equal(req.argc, 0);
			continue;
		}
		assert_arg(0, expect[i][0]);
		if (expect[i][1])
			assert_arg(1, expect[i][1]);
	}
	assert_int_equal(off, strlen(p));
}

static void test_resp_inline_quotes_and_escapes(void **state)
{
	const char *s = "SET \"a\\x41\\n\" 'it\\'s' plain\r\n";
	const char *err;

	assert_true(parse(s, strlen(s), &err) > 0);
	assert_int_equal(req.argc, 4);
	assert_arg(1, "aA\n");
	assert_arg(2, "it's");
	assert_arg(3, "plain");
	assert_int_equal(parse("A \"open\r\n", 9, &err), -EPROTO);
	assert_non_null(err);
	assert_int_equal(parse("A \"x\"y\r\n", 8, &err), -EPROTO);
}

static void test_resp_malformed_returns_eproto(void **state)
{
	static const char *bad[] = {
		"*x\r\n", "*1\r\n:5\r\n", "*1\r\n$x\r\n", "*1\r\n$-3\r\n", "*1\r\n$3\r\nabcXY",
		"*1\r\n$3\r\nabc\rX", "*2\r\r", "*99999999999999999999\r\n", "*1\r\n$\r\n", "*-\r\n",
	};
	const char *err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		int r = parse(bad[i], strlen(bad[i]), &err);
		if (r != -EPROTO && r != -E2BIG)
			fail_msg("input %zu (%s) gave %d", i, bad[i], r);
		assert_non_null(err);
	}
	/* Empty and null multibulk are empty requests, as in Redis. */
	assert_int_equal(parse("*0\r\n", 4, &err), 4);
	assert_int_equal(req.argc, 0);
	assert_int_equal(parse("*-1\r\n", 5, &err), 5);
}

static void test_resp_limits_return_e2big(void **state)
{
	struct wf_resp_limits lim = { .max_args = 3, .max_bulk = 8, .max_inline = 16 };
	const char *err;
	char big[64];

	assert_int_equal(wf_resp_parse("*4\r\n", 4, &lim, &req, &err), -E2BIG);
	assert_int_equal(wf_resp_parse("*1\r\n$9\r\n", 8, &lim, &req, &err), -E2BIG);
	assert_int_equal(wf_resp_parse("a b c d\r\n", 9, &lim, &req, &err), -E2BIG);
	memset(big, 'x', sizeof(big));
	assert_int_equal(wf_resp_parse(big, sizeof(big), &lim, &req, &err), -E2BIG);
	/* Within the limits is fine. */
	assert_int_equal(wf_resp_parse("*1\r\n$8\r\n12345678\r\n", 18, &lim, &req, &err), 18);
	/* A huge declared bulk is refused before anything is buffered. */
	assert_int_equal(parse("*1\r\n$999999999\r\n", 16, &err), -E2BIG);
}

static void test_resp_arg_is_case_insensitive(void **state)
{
	struct wf_resp_arg a = { "ReCs", 4 };

	assert_true(wf_resp_arg_is(&a, "RECS"));
	assert_false(wf_resp_arg_is(&a, "REC"));
}

static void test_resp_writers_produce_resp2(void **state)
{
	struct wf_buf b = { 0 };

	assert_int_equal(wf_resp_w_array(&b, 4), 0);
	assert_int_equal(wf_resp_w_simple(&b, "OK"), 0);
	assert_int_equal(wf_resp_w_int(&b, -7), 0);
	assert_int_equal(wf_resp_w_bulk_str(&b, "a\r\nb"), 0);
	assert_int_equal(wf_resp_w_null(&b), 0);
	assert_int_equal(wf_resp_w_error(&b, "ERR bad\r\n%s", "x"), 0);
	assert_int_equal(wf_resp_w_bulk_fmt(&b, "%d", 42), 0);
	const char *want = "*4\r\n+OK\r\n:-7\r\n$4\r\na\r\nb\r\n$-1\r\n-ERR bad  x\r\n$2\r\n42\r\n";
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	wf_buf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resp_multibulk_parses_all_args),
		cmocka_unit_test(test_resp_every_split_point_needs_more),
		cmocka_unit_test(test_resp_pipeline_mixed_frames),
		cmocka_unit_test(test_resp_inline_quotes_and_escapes),
		cmocka_unit_test(test_resp_malformed_returns_eproto),
		cmocka_unit_test(test_resp_limits_return_e2big),
		cmocka_unit_test(test_resp_arg_is_case_insensitive),
		cmocka_unit_test(test_resp_writers_produce_resp2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
