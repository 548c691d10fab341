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

#include <stdio.h>
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


/* A client's bytes arrive one at a time: the caller keeps what it has not
 * consumed and parses again; the requests come out whole and in order. */
static void test_resp_stream_byte_by_byte_yields_same_requests(void **state)
{
	static const char stream[] = "*2\r\n$4\r\nECHO\r\n$3\r\na\nb\r\n"
				     "PING\r\n"
				     "\r\n"
				     "ECHO \"x y\"\n"
				     "*0\r\n"
				     "*3\r\n$5\r\nEVENT\r\n$0\r\n\r\n$2\r\n\0z\r\n"
				     "  ECHO\t 'q'  \r\n";
	/* Expected requests: argc, then each argument with its length. */
	static const struct {
		uint32_t argc;
		struct wf_resp_arg a[3];
	} want[] = {
		{ 2, { { "ECHO", 4 }, { "a\nb", 3 } } }, { 1, { { "PING", 4 } } }, { 0, { { NULL, 0 } } },
		{ 2, { { "ECHO", 4 }, { "x y", 3 } } },   { 0, { { NULL, 0 } } },
		{ 3, { { "EVENT", 5 }, { "", 0 }, { "\0z", 2 } } }, { 2, { { "ECHO", 4 }, { "q", 1 } } },
	};
	char acc[sizeof(stream)];
	size_t have = 0, got = 0;
	const char *err;

	for (size_t i = 0; i < sizeof(stream) - 1; i++) {
		int n;

		acc[have++] = stream[i];
		while (have && (n = parse(acc, have, &err)) != 0) {
			assert_true(n > 0);
			assert_true(got < WF_ARRAY_SIZE(want));
			assert_int_equal(req.argc, want[got].argc);
			for (uint32_t a = 0; a < want[got].argc; a++) {
				assert_int_equal(req.argv[a].len, want[got].a[a].len);
				assert_memory_equal(req.argv[a].p, want[got].a[a].p, want[got].a[a].len);
			}
			got++;
			memmove(acc, acc + n, have - (size_t)n);
			have -= (size_t)n;
		}
	}
	assert_int_equal(got, WF_ARRAY_SIZE(want));
	assert_int_equal(have, 0);
}

static void test_resp_empty_lines_are_empty_requests(void **state)
{
	static const char *const lines[] = { "\r\n", "\n", "   \r\n", "\t \n" };
	const char *err;

	for (size_t i = 0; i < WF_ARRAY_SIZE(lines); i++) {
		req.argc = 99;
		assert_int_equal(parse(lines[i], strlen(lines[i]), &err), (int)strlen(lines[i]));
		assert_int_equal(req.argc, 0);
	}
	/* A bare LF ends an inline line, like CRLF. */
	assert_int_equal(parse("PING\nPING\r\n", 11, &err), 5);
	assert_int_equal(req.argc, 1);
	assert_arg(0, "PING");
	/* A lone CR inside a line is a separator (isspace), as in sdssplitargs. */
	assert_int_equal(parse("A\rB\n", 4, &err), 4);
	assert_int_equal(req.argc, 2);
}

static void test_resp_inline_quote_edge_cases(void **state)
{
	const char *err;
	const char *s;

	/* Empty quoted argument, adjacent quoted args, escapes as sdssplitargs. */
	s = "SET \"\" '' \"\\t\\r\\\\\\\"\"\r\n";
	assert_int_equal(parse(s, strlen(s), &err), (int)strlen(s));
	assert_int_equal(req.argc, 4);
	assert_arg(1, "");
	assert_arg(2, "");
	assert_arg(3, "\t\r\\\"");
	/* \x without two hex digits is a literal x, like Redis. */
	s = "E \"\\xZZ\" \"\\x4\"\r\n";
	assert_int_equal(parse(s, strlen(s), &err), (int)strlen(s));
	assert_arg(1, "xZZ");
	assert_arg(2, "x4");
	/* \x00 gives a NUL byte inside the argument. */
	s = "E \"a\\x00b\"\n";
	assert_int_equal(parse(s, strlen(s), &err), (int)strlen(s));
	assert_int_equal(req.argv[1].len, 3);
	assert_memory_equal(req.argv[1].p, "a\0b", 3);
	/* In single quotes only \' is an escape. */
	s = "E 'a\\nb'\n";
	assert_int_equal(parse(s, strlen(s), &err), (int)strlen(s));
	assert_arg(1, "a\\nb");
	/* Unbalanced: trailing escape, quote at the very end, single quote. */
	static const char *const bad[] = { "E \"abc\\\"\r\n", "E \"\r\n", "E 'x\r\n", "E 'x'y\r\n", "E \"a\"\"b\"\n" };
	for (size_t i = 0; i < WF_ARRAY_SIZE(bad); i++) {
		err = NULL;
		assert_int_equal(parse(bad[i], strlen(bad[i]), &err), -EPROTO);
		assert_string_equal(err, "Protocol error: unbalanced quotes in request");
	}
}

static void test_resp_bad_lengths_return_eproto(void **state)
{
	static const char *const bad_count[] = {
		"*+1\r\n", "*01\r\n", "*1 \r\n", "* 1\r\n", "*1\n", "*1\r\r", "*\r\n", "*-\r\n", "*1x",
		"*9223372036854775808\r\n", "*18446744073709551617\r\n",
	};
	static const char *const bad_bulk[] = {
		"*1\r\n$-1\r\n", "*1\r\n$-9223372036854775808\r\n", "*1\r\n$99999999999999999999\r\n",
		"*1\r\n$03\r\nabc\r\n", "*1\r\n$3x", "*1\r\n$\r\n", "*1\r\n$3\n", "*1\r\n$+3\r\n",
	};
	const char *err;

	for (size_t i = 0; i < WF_ARRAY_SIZE(bad_count); i++) {
		err = NULL;
		if (parse(bad_count[i], strlen(bad_count[i]), &err) != -EPROTO)
			fail_msg("count %zu (%s) accepted", i, bad_count[i]);
		assert_string_equal(err, "Protocol error: invalid multibulk length");
	}
	for (size_t i = 0; i < WF_ARRAY_SIZE(bad_bulk); i++) {
		err = NULL;
		if (parse(bad_bulk[i], strlen(bad_bulk[i]), &err) != -EPROTO)
			fail_msg("bulk %zu (%s) accepted", i, bad_bulk[i]);
		assert_string_equal(err, "Protocol error: invalid bulk length");
	}
	/* Something other than '$' where a bulk header belongs. */
	assert_int_equal(parse("*2\r\n$1\r\na\r\n:1\r\n", 15, &err), -EPROTO);
	assert_string_equal(err, "Protocol error: expected '$'");
	assert_int_equal(parse("*1\r\n$1\r\nab\r\n", 12, &err), -EPROTO);
	assert_string_equal(err, "Protocol error: bulk string not followed by CRLF");
	/* A negative count is an empty request (Redis: ll <= 0). */
	assert_int_equal(parse("*-5\r\nPING\r\n", 11, &err), 5);
	assert_int_equal(req.argc, 0);
	/* "0" itself is a fine length. */
	assert_int_equal(parse("*1\r\n$0\r\n\r\n", 10, &err), 10);
	assert_int_equal(req.argv[0].len, 0);
}

static void test_resp_limit_boundaries_exact(void **state)
{
	struct wf_resp_limits lim = { .max_args = 3, .max_bulk = 8, .max_inline = 10 };
	const char *err;

	/* argc: max is fine, max + 1 is not (multibulk and inline). */
	assert_int_equal(wf_resp_parse("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", 25, &lim, &req, &err), 25);
	assert_int_equal(wf_resp_parse("a b c\r\n", 7, &lim, &req, &err), 7);
	assert_int_equal(wf_resp_parse("a b c d\r\n", 9, &lim, &req, &err), -E2BIG);
	assert_string_equal(err, "too many arguments in one command");
	/* bulk: 8 fine, 9 refused as soon as its header is complete. */
	assert_int_equal(wf_resp_parse("*1\r\n$8\r\n", 8, &lim, &req, &err), 0);
	assert_int_equal(wf_resp_parse("*1\r\n$9\r\n", 8, &lim, &req, &err), -E2BIG);
	assert_string_equal(err, "argument too long");
	/* inline: a 10-byte line is fine with CRLF or LF, 11 bytes is not. */
	assert_int_equal(wf_resp_parse("0123456789\r\n", 12, &lim, &req, &err), 12);
	assert_int_equal(wf_resp_parse("0123456789\n", 11, &lim, &req, &err), 11);
	assert_int_equal(wf_resp_parse("0123456789\r", 11, &lim, &req, &err), 0);
	assert_int_equal(wf_resp_parse("0123456789", 10, &lim, &req, &err), 0);
	assert_int_equal(wf_resp_parse("0123456789A", 11, &lim, &req, &err), -E2BIG);
	assert_int_equal(wf_resp_parse("0123456789A\r\n", 13, &lim, &req, &err), -E2BIG);
	assert_string_equal(err, "Protocol error: too big inline request");
	/* Limits above the hard caps are clamped to them. */
	lim = (struct wf_resp_limits){ .max_args = UINT32_MAX, .max_bulk = UINT32_MAX, .max_inline = UINT32_MAX };
	assert_int_equal(wf_resp_parse("*1025\r\n", 7, &lim, &req, &err), -E2BIG);
	assert_int_equal(wf_resp_parse("*1\r\n$524289\r\n", 13, &lim, &req, &err), -E2BIG);
}

static void test_resp_default_limits_at_the_caps(void **state)
{
	size_t cap = 16 + 5 * WF_RESP_MAX_ARGS + WF_RESP_MAX_BULK + 32;
	char *f = malloc(cap);
	size_t n;
	const char *err;

	assert_non_null(f);
	/* 1024 one-byte arguments parse. */
	n = (size_t)sprintf(f, "*%u\r\n", WF_RESP_MAX_ARGS);
	for (uint32_t i = 0; i < WF_RESP_MAX_ARGS; i++)
		n += (size_t)sprintf(f + n, "$1\r\n%c\r\n", 'a' + (int)(i % 26));
	assert_int_equal(parse(f, n, &err), (int)n);
	assert_int_equal(req.argc, WF_RESP_MAX_ARGS);
	assert_arg(1023, "j");
	/* A bulk of exactly the cap parses; its header one more is refused. */
	n = (size_t)sprintf(f, "*1\r\n$%u\r\n", WF_RESP_MAX_BULK);
	memset(f + n, 'b', WF_RESP_MAX_BULK);
	n += WF_RESP_MAX_BULK;
	memcpy(f + n, "\r\n", 2);
	n += 2;
	assert_int_equal(parse(f, n, &err), (int)n);
	assert_int_equal(req.argv[0].len, WF_RESP_MAX_BULK);
	assert_int_equal(parse(f, n - 1, &err), 0);
	/* An inline line of exactly WF_RESP_MAX_INLINE bytes: one argument. */
	memset(f, 'c', WF_RESP_MAX_INLINE);
	memcpy(f + WF_RESP_MAX_INLINE, "\r\n", 2);
	assert_int_equal(parse(f, WF_RESP_MAX_INLINE + 2, &err), WF_RESP_MAX_INLINE + 2);
	assert_int_equal(req.argv[0].len, WF_RESP_MAX_INLINE);
	f[WF_RESP_MAX_INLINE] = 'c';
	assert_int_equal(parse(f, WF_RESP_MAX_INLINE + 2, &err), -E2BIG);
	free(f);
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
		cmocka_unit_test(test_resp_stream_byte_by_byte_yields_same_requests),
		cmocka_unit_test(test_resp_empty_lines_are_empty_requests),
		cmocka_unit_test(test_resp_inline_quote_edge_cases),
		cmocka_unit_test(test_resp_bad_lengths_return_eproto),
		cmocka_unit_test(test_resp_limit_boundaries_exact),
		cmocka_unit_test(test_resp_default_limits_at_the_caps),
		cmocka_unit_test(test_resp_arg_is_case_insensitive),
		cmocka_unit_test(test_resp_writers_produce_resp2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
