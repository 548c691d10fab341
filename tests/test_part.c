/*
 * test_part.c - lib/part: a shopper's partition is librdkafka's
 * consistent_random (CRC-32 of the key mod n, zlib's crc32, checked against
 * known values) and the partition map of --kafka-partitions/--kafka-peers
 * (every partition named exactly once; bad lists refused, *m untouched).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "lib/part.h"

static void test_part_crc32_matches_zlib(void **state)
{
	(void)state;
	/* zlib.crc32(): the check value, and two keys (Python, by hand). */
	assert_int_equal(wf_part_crc32("123456789", 9), 0xcbf43926u);
	assert_int_equal(wf_part_crc32("u000001", 7), 0xdcbfb421u);
	assert_int_equal(wf_part_crc32("", 0), 0);
	assert_int_equal(wf_part_of("u000001", 7, 4), 1);
	assert_int_equal(wf_part_of("ks3", 3, 4), 0);
}

static void test_part_map_parse_names_owners(void **state)
{
	static struct wf_part_map m;
	char e[200];

	(void)state;
	assert_int_equal(wf_part_map_parse(&m, "0,1", "2-3=/run/b/weft.sock", e, sizeof(e)), 0);
	assert_int_equal(m.n, 4);
	assert_null(wf_part_owner(&m, 0));
	assert_null(wf_part_owner(&m, 1));
	assert_string_equal(wf_part_owner(&m, 2), "/run/b/weft.sock");
	assert_string_equal(wf_part_owner(&m, 3), "/run/b/weft.sock");
	assert_int_equal(wf_part_map_parse(&m, "1", "0=10.0.0.1:6380; 2,3=10.0.0.3:6380", e, sizeof(e)), 0);
	assert_int_equal(m.n, 4);
	assert_string_equal(wf_part_owner(&m, 0), "10.0.0.1:6380");
	assert_null(wf_part_owner(&m, 1));
	assert_string_equal(wf_part_owner(&m, 3), "10.0.0.3:6380");
	/* off: nothing, or own partitions alone */
	assert_int_equal(wf_part_map_parse(&m, NULL, NULL, e, sizeof(e)), 0);
	assert_int_equal(m.n, 0);
	assert_int_equal(wf_part_map_parse(&m, "0,1", "", e, sizeof(e)), 0);
	assert_int_equal(m.n, 0);
}

static void test_part_map_parse_bad_returns_einval(void **state)
{
	static struct wf_part_map m;
	static const char *const bad[][2] = {
		{ "0,1", "2=/b 2,3=/c" },  /* twice */
		{ "0", "1,3=/b" },         /* 2 missing */
		{ "0,1", "2-3" },          /* no address */
		{ "0,1", "2-3=" },         /* empty address */
		{ "0,", "1=/b" },          /* bad list */
		{ "0", "x=/b" },
		{ "0", "3-1=/b" },
		{ "0", "1=/b\x01" },
		{ "0", "1-1024=/b" },      /* past WF_PART_MAX */
		{ NULL, "1=/b" },          /* peers without own */
	};
	char e[200];

	(void)state;
	assert_int_equal(wf_part_map_parse(&m, "0", "1=/keep", e, sizeof(e)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e[0] = '\0';
		assert_int_equal(wf_part_map_parse(&m, bad[i][0], bad[i][1], e, sizeof(e)), -EINVAL);
		assert_true(e[0] != '\0');
	}
	assert_int_equal(m.n, 2);
	assert_string_equal(wf_part_owner(&m, 1), "/keep");
}

/* weft-kafka's --kafka-partitions reads the list by the same rule as
 * weft-ingest's map: ranges too, each partition once. */
static void test_part_list_parse_sets_seen(void **state)
{
	uint8_t seen[WF_PART_MAX] = { 0 };
	char why[128];

	(void)state;
	assert_int_equal(wf_part_list_parse("0-1,3", seen, why, sizeof(why)), 0);
	assert_true(seen[0] && seen[1] && !seen[2] && seen[3] && !seen[4]);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(wf_part_list_parse("1,1", seen, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "twice"));
	memset(seen, 0, sizeof(seen));
	assert_int_equal(wf_part_list_parse("x", seen, why, sizeof(why)), -EINVAL);
	assert_int_equal(wf_part_list_parse("", seen, why, sizeof(why)), -EINVAL);
	assert_int_equal(wf_part_list_parse(NULL, seen, why, sizeof(why)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_part_crc32_matches_zlib),
		cmocka_unit_test(test_part_map_parse_names_owners),
		cmocka_unit_test(test_part_map_parse_bad_returns_einval),
		cmocka_unit_test(test_part_list_parse_sets_seen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
