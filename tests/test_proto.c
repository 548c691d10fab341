/*
 * test_proto.c - the client command schema (lib/proto.c) weft-ingest and
 * the rankers share: the command table (names in any case, arity, EVENT's
 * field pairs), RECS argument parsing (k bounds, options in any order and
 * case, each error with the index of the argument at fault, and its
 * words) and the anonymous user.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "lib/proto.h"

/* argv from a NULL-terminated list of strings (at most 16). */
static uint32_t args(struct wf_arg *a, const char *const *s)
{
	uint32_t n = 0;

	for (; s[n]; n++)
		a[n] = (struct wf_arg){ s[n], (uint32_t)strlen(s[n]) };
	return n;
}

static void test_proto_cmd_table_names_and_arity(void **state)
{
	const struct wf_cmd_info *ev = wf_cmd_find("event", 5), *st = wf_cmd_find("STOCK", 5);

	assert_non_null(ev);
	assert_int_equal(ev->code, WF_CMD_EVENT);
	assert_ptr_equal(wf_cmd_of(WF_CMD_EVENT), ev);
	assert_null(wf_cmd_find("EVENTS", 6));
	assert_null(wf_cmd_find("PING", 4)); /* Redis's: not in the schema */
	/* EVENT: session user type item, then field value pairs. */
	assert_int_equal(wf_cmd_arity(ev, 3), -EINVAL);
	assert_int_equal(wf_cmd_arity(ev, 4), 0);
	assert_int_equal(wf_cmd_arity(ev, 5), -EINVAL);
	assert_int_equal(wf_cmd_arity(ev, 6), 0);
	assert_int_equal(wf_cmd_arity(wf_cmd_of(WF_CMD_HISTORY), 1), 0);
	assert_int_equal(wf_cmd_arity(wf_cmd_of(WF_CMD_HISTORY), 2), -EINVAL);
	assert_int_equal(wf_cmd_arity(wf_cmd_of(WF_CMD_SEGMENTS), 2), 0);
	assert_int_equal(wf_cmd_arity(wf_cmd_of(WF_CMD_RERANK), 2), -EINVAL);
	assert_int_equal(wf_cmd_arity(wf_cmd_of(WF_CMD_RERANK), 300), 0);
	/* STOCK is answered by ingest (code 0): item [size [qty]]. */
	assert_non_null(st);
	assert_int_equal(st->code, 0);
	assert_int_equal(wf_cmd_arity(st, 0), -EINVAL);
	assert_int_equal(wf_cmd_arity(st, 3), 0);
	assert_int_equal(wf_cmd_arity(st, 4), -EINVAL);
	assert_string_equal(wf_cmd_of(WF_CMD_RECS)->usage,
			    "RECS wants: session user k [PAGE p] [ANCHOR item] [EXPLAIN] [SIZE s]");
}

static void test_proto_recs_args_parsed_with_options(void **state)
{
	struct wf_arg a[16];
	struct wf_recs_args r;
	uint32_t bad = 99, n;

	n = args(a, (const char *const[]){ "s", "u", "20", NULL });
	assert_int_equal(wf_recs_args_parse(a, n, &r, &bad), 0);
	assert_int_equal(r.k, 20);
	assert_int_equal(r.page, WF_PAGE_HOME);
	assert_false(r.explain);
	assert_null(r.anchor);
	assert_null(r.size);
	n = args(a, (const char *const[]){ "s", "u", "500", "size", "M", "EXPLAIN", "Page", "pdp", "ANCHOR", "i9",
					   NULL });
	assert_int_equal(wf_recs_args_parse(a, n, &r, &bad), 0);
	assert_int_equal(r.k, WF_RECS_MAX_K);
	assert_int_equal(r.page, WF_PAGE_PDP);
	assert_true(r.explain);
	assert_ptr_equal(r.anchor, &a[9]);
	assert_ptr_equal(r.size, &a[4]);
}

static void test_proto_recs_args_errors_name_the_argument(void **state)
{
	struct wf_arg a[16];
	struct wf_recs_args r = { .k = 7 };
	uint32_t bad = 99, n;

	n = args(a, (const char *const[]){ "s", "u", NULL });
	assert_int_equal(wf_recs_args_parse(a, n, &r, &bad), -EINVAL);
	n = args(a, (const char *const[]){ "s", "u", "0", NULL });
	assert_int_equal(wf_recs_args_parse(a, n, &r, &bad), -ERANGE);
	assert_int_equal(bad, 2);
	n = args(a, (const char *const[]){ "s", "u", "501", NULL });
	assert_int_equal(wf_recs_args_parse(a, n, &r, &bad), -ERANGE);
	n = args(a, (const char *const[]){ "s", "u", "2x", NULL });
	assert_int_equal(wf_recs_args_parse(a, n, &r, &bad), -ERANGE);
	n = args(a, (const char *const[]){ "s", "u", "3", "EXPLAIN", "PAGE", "attic", NULL });
	assert_int_equal(wf_recs_args_parse(a, n, &r, &bad), -ENOENT);
	assert_int_equal(bad, 5);
	/* An option without its value is no option. */
	n = args(a, (const char *const[]){ "s", "u", "3", "ANCHOR", NULL });
	assert_int_equal(wf_recs_args_parse(a, n, &r, &bad), -EBADMSG);
	assert_int_equal(bad, 3);
	n = args(a, (const char *const[]){ "s", "u", "3", "PAGE", "home", "x", NULL });
	assert_int_equal(wf_recs_args_parse(a, n, &r, &bad), -EBADMSG);
	assert_int_equal(bad, 5);
	assert_int_equal(r.k, 7); /* untouched on failure */
}

/* The words both processes send for each error (test_ingest checks them
 * through the socket too). */
static void test_proto_recs_args_error_words(void **state)
{
	struct wf_arg bad = { "ab\"\x01", 4 };
	char out[400];

	wf_recs_args_error(-EINVAL, NULL, out, sizeof(out));
	assert_string_equal(out, "RECS wants: session user k [PAGE p] [ANCHOR item] [EXPLAIN] [SIZE s]");
	wf_recs_args_error(-ERANGE, &bad, out, sizeof(out));
	assert_string_equal(out, "RECS k must be an integer from 1 to 500, not 'ab\\x22\\x01'");
	wf_recs_args_error(-ENOENT, &bad, out, sizeof(out));
	assert_string_equal(out, "unknown page type 'ab\\x22\\x01' (home pdp cart search category email)");
	wf_recs_args_error(-EBADMSG, &bad, out, sizeof(out));
	assert_string_equal(out, "RECS: unexpected argument 'ab\\x22\\x01'");
}

static void test_proto_anonymous_user_is_a_lone_dash(void **state)
{
	assert_true(wf_user_is_anon("-", 1));
	assert_true(wf_user_is_anon(WF_ANON_USER, strlen(WF_ANON_USER)));
	assert_false(wf_user_is_anon("--", 2));
	assert_false(wf_user_is_anon("u", 1));
	assert_false(wf_user_is_anon("", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proto_cmd_table_names_and_arity),
		cmocka_unit_test(test_proto_recs_args_parsed_with_options),
		cmocka_unit_test(test_proto_recs_args_errors_name_the_argument),
		cmocka_unit_test(test_proto_recs_args_error_words),
		cmocka_unit_test(test_proto_anonymous_user_is_a_lone_dash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
