/*
 * test_csv.c - the streaming CSV reader (lib/csv.h): plain and quoted
 * fields ("a,b", "" inside quotes), CRLF, empty fields and blank lines,
 * another separator, too many fields, an over-long line, an unterminated
 * quote (each -EPROTO, and the reader goes on with the next line), line
 * numbers, a last line without a newline, records spanning buffer refills,
 * wf_csv_str() truncation, open errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/csv.h"
#include "lib/util.h"

static char path[256];

static int setup(void **state)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/weft-test-csv.%d.XXXXXX", (int)getpid());
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	return 0;
}

static void write_text(const char *s, size_t len)
{
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(s, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void open_text(struct wf_csv *c, const char *s, char sep)
{
	write_text(s, strlen(s));
	assert_int_equal(wf_csv_open(c, path, sep), 0);
}

static void assert_field(const struct wf_csv *c, uint32_t i, const char *want)
{
	assert_true(i < c->nfields);
	assert_int_equal(c->field[i].len, strlen(want));
	assert_memory_equal(c->field[i].p, want, strlen(want));
}

static void test_csv_plain_fields_read(void **state)
{
	struct wf_csv c;

	open_text(&c, "ts,user_id,event\n1,u1,view\n", ',');
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.nfields, 3);
	assert_field(&c, 0, "ts");
	assert_field(&c, 2, "event");
	assert_int_equal(c.line_no, 1);
	assert_int_equal(wf_csv_next(&c), 1);
	assert_field(&c, 1, "u1");
	assert_int_equal(c.line_no, 2);
	assert_int_equal(wf_csv_next(&c), 0);
	assert_int_equal(wf_csv_next(&c), 0);
	wf_csv_close(&c);
}

/* wf_csv_open_mem reads a byte range as a file: the bytes past len are
 * not read, even without a final newline. */
static void test_csv_open_mem_reads_only_the_range(void **state)
{
	static const char text[] = "a,b\n1,\"x,y\"\n2,z\nnot,this\n";
	struct wf_csv c;

	assert_int_equal(wf_csv_open_mem(&c, text, strlen("a,b\n1,\"x,y\"\n2,z"), ','), 0);
	assert_int_equal(wf_csv_next(&c), 1);
	assert_field(&c, 1, "b");
	assert_int_equal(wf_csv_next(&c), 1);
	assert_field(&c, 1, "x,y");
	assert_int_equal(wf_csv_next(&c), 1);
	assert_field(&c, 1, "z");
	assert_int_equal(c.line_no, 3);
	assert_int_equal(wf_csv_next(&c), 0);
	wf_csv_close(&c);
	assert_int_equal(wf_csv_open_mem(&c, text, 4, '"'), -EINVAL);
}

static void test_csv_quoting_unescaped(void **state)
{
	struct wf_csv c;

	open_text(&c, "\"a,b\",\"say \"\"hi\"\"\",\"\",plain\"quote\n", ',');
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.nfields, 4);
	assert_field(&c, 0, "a,b");
	assert_field(&c, 1, "say \"hi\"");
	assert_field(&c, 2, "");
	assert_field(&c, 3, "plain\"quote"); /* a quote inside an unquoted field is text */
	wf_csv_close(&c);
}

static void test_csv_crlf_stripped(void **state)
{
	struct wf_csv c;

	open_text(&c, "a,b\r\n\"c\",d\r\n", ',');
	assert_int_equal(wf_csv_next(&c), 1);
	assert_field(&c, 1, "b");
	assert_int_equal(wf_csv_next(&c), 1);
	assert_field(&c, 0, "c");
	assert_field(&c, 1, "d");
	assert_int_equal(wf_csv_next(&c), 0);
	wf_csv_close(&c);
}

static void test_csv_empty_fields_kept(void **state)
{
	struct wf_csv c;

	open_text(&c, "1,,s1,search,,jacket\n,,,\n\n\n2,u,s,view,i,\n", ',');
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.nfields, 6);
	assert_field(&c, 1, "");
	assert_field(&c, 4, "");
	assert_field(&c, 5, "jacket");
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.nfields, 4);
	for (uint32_t i = 0; i < 4; i++)
		assert_field(&c, i, "");
	/* Blank lines are skipped but counted. */
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.line_no, 5);
	assert_int_equal(c.nfields, 6);
	assert_field(&c, 5, "");
	assert_int_equal(wf_csv_next(&c), 0);
	wf_csv_close(&c);
}

static void test_csv_other_separator_used(void **state)
{
	struct wf_csv c;

	open_text(&c, "session_id;user_id;item_id\n1;NA;\"81;766\"\n", ';');
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.nfields, 3);
	assert_int_equal(wf_csv_next(&c), 1);
	assert_field(&c, 1, "NA");
	assert_field(&c, 2, "81;766");
	wf_csv_close(&c);
}

static void test_csv_too_many_fields_returns_eproto(void **state)
{
	struct wf_csv c;
	struct wf_buf b = { 0 };

	for (int i = 0; i < WF_CSV_MAX_FIELDS; i++)
		assert_int_equal(wf_buf_printf(&b, "%d,", i), 0);
	assert_int_equal(wf_buf_printf(&b, "x\nok,1\n"), 0);
	write_text(b.data, b.len);
	assert_int_equal(wf_csv_open(&c, path, ','), 0);
	assert_int_equal(wf_csv_next(&c), -EPROTO);
	assert_int_equal(c.line_no, 1);
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.line_no, 2);
	assert_field(&c, 0, "ok");
	wf_csv_close(&c);
	wf_buf_fini(&b);

	/* Exactly WF_CSV_MAX_FIELDS is fine. */
	b = (struct wf_buf){ 0 };
	for (int i = 0; i < WF_CSV_MAX_FIELDS; i++)
		assert_int_equal(wf_buf_printf(&b, i ? ",%d" : "%d", i), 0);
	assert_int_equal(wf_buf_append(&b, "\n", 1), 0);
	write_text(b.data, b.len);
	assert_int_equal(wf_csv_open(&c, path, ','), 0);
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.nfields, WF_CSV_MAX_FIELDS);
	assert_field(&c, WF_CSV_MAX_FIELDS - 1, "63");
	wf_csv_close(&c);
	wf_buf_fini(&b);
}

static void test_csv_overlong_line_returns_eproto(void **state)
{
	size_t big = 3 * (size_t)WF_CSV_MAX_LINE + 17; /* spans several refills */
	struct wf_buf b = { 0 };
	struct wf_csv c;

	assert_int_equal(wf_buf_printf(&b, "head,1\n"), 0);
	assert_int_equal(wf_buf_reserve(&b, big + 64), 0);
	memset(b.data + b.len, 'x', big);
	b.len += big;
	assert_int_equal(wf_buf_printf(&b, "\nafter,2\n"), 0);
	/* A line of exactly the limit is accepted. */
	assert_int_equal(wf_buf_reserve(&b, WF_CSV_MAX_LINE + 8), 0);
	memset(b.data + b.len, 'y', WF_CSV_MAX_LINE);
	b.len += WF_CSV_MAX_LINE;
	assert_int_equal(wf_buf_printf(&b, "\nlast,3"), 0);
	write_text(b.data, b.len);

	assert_int_equal(wf_csv_open(&c, path, ','), 0);
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.line_no, 1);
	assert_int_equal(wf_csv_next(&c), -EPROTO);
	assert_int_equal(c.line_no, 2);
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.line_no, 3);
	assert_field(&c, 0, "after");
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.line_no, 4);
	assert_int_equal(c.nfields, 1);
	assert_int_equal(c.field[0].len, WF_CSV_MAX_LINE);
	/* Last line without a newline. */
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.line_no, 5);
	assert_field(&c, 1, "3");
	assert_int_equal(wf_csv_next(&c), 0);
	assert_int_equal(c.bytes_read, b.len);
	wf_csv_close(&c);
	wf_buf_fini(&b);
}

static void test_csv_unterminated_quote_returns_eproto_and_continues(void **state)
{
	struct wf_csv c;

	open_text(&c, "a,\"open,b\nnext,1\n\"x\"y,2\nfine,\"q\"\n", ',');
	assert_int_equal(wf_csv_next(&c), -EPROTO);
	assert_int_equal(c.line_no, 1);
	assert_int_equal(c.nfields, 0);
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.line_no, 2);
	assert_field(&c, 0, "next");
	/* Text after a closing quote is malformed too. */
	assert_int_equal(wf_csv_next(&c), -EPROTO);
	assert_int_equal(c.line_no, 3);
	assert_int_equal(wf_csv_next(&c), 1);
	assert_int_equal(c.line_no, 4);
	assert_field(&c, 1, "q");
	assert_int_equal(wf_csv_next(&c), 0);
	wf_csv_close(&c);
}

static void test_csv_many_records_across_refills(void **state)
{
	struct wf_buf b = { 0 };
	struct wf_csv c;
	const int n = 200000; /* ~5 MB: several buffer refills */
	int i = 0, r;

	for (int k = 0; k < n; k++)
		assert_int_equal(wf_buf_printf(&b, "%d,u%06d,\"s,%d\",view\n", k, k % 977, k), 0);
	write_text(b.data, b.len);
	assert_int_equal(wf_csv_open(&c, path, ','), 0);
	while ((r = wf_csv_next(&c)) == 1) {
		char want[32], got[32];
		int64_t v;
		assert_int_equal(c.nfields, 4);
		assert_int_equal(wf_parse_i64(c.field[0].p, c.field[0].len, &v), 0);
		assert_int_equal(v, i);
		snprintf(want, sizeof(want), "s,%d", i);
		assert_string_equal(wf_csv_str(&c, 2, got, sizeof(got)), want);
		assert_int_equal(c.line_no, (uint64_t)i + 1);
		i++;
	}
	assert_int_equal(r, 0);
	assert_int_equal(i, n);
	wf_csv_close(&c);
	wf_buf_fini(&b);
}

static void test_csv_str_truncates_and_bounds(void **state)
{
	struct wf_csv c;
	char out[4];

	open_text(&c, "abcdef,x\n", ',');
	assert_int_equal(wf_csv_next(&c), 1);
	assert_string_equal(wf_csv_str(&c, 0, out, sizeof(out)), "abc");
	assert_string_equal(wf_csv_str(&c, 1, out, sizeof(out)), "x");
	assert_string_equal(wf_csv_str(&c, 7, out, sizeof(out)), "");
	wf_csv_close(&c);
}

static void test_csv_open_missing_returns_enoent(void **state)
{
	struct wf_csv c;

	assert_int_equal(wf_csv_open(&c, "/nonexistent/weft/x.csv", ','), -ENOENT);
	wf_csv_close(NULL);
	assert_int_equal(wf_csv_open(&c, path, '"'), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_csv_plain_fields_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_open_mem_reads_only_the_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_quoting_unescaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_crlf_stripped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_empty_fields_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_other_separator_used, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_too_many_fields_returns_eproto, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_overlong_line_returns_eproto, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_unterminated_quote_returns_eproto_and_continues, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_csv_many_records_across_refills, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_str_truncates_and_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_open_missing_returns_enoent, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
