/*
 * test_kafka.c - weft-kafka's pieces that need no broker (kafka/): the
 * message parser (kafka/event.h: the JSON object, checked by a socket
 * EVENT's rules; bad messages refused with a reason naming the field) and
 * the record of what the journal holds (kafka/seen.h: tags, a journal
 * written with the real writer read back, out-of-order offsets, other
 * topics and kinds ignored). The consumer end to end is
 * integration/test_kafka.py.
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

#include "kafka/event.h"
#include "kafka/seen.h"
#include "lib/journal.h"

static int parse(const char *s, struct wf_kevent *ev, char *err)
{
	return wf_kevent_parse(s, strlen(s), ev, err, 256);
}

static void test_kafka_event_full_message_parses(void **state)
{
	struct wf_kevent ev;
	char err[256];

	assert_int_equal(parse("{\"ts\": 1700000000000, \"user_id\": \"u1\", \"session_id\": \"s1\", "
			       "\"event\": \"cart_add\", \"item_id\": \"i1\", \"value\": \"x y\", \"extra\": 3}",
			       &ev, err), 0);
	assert_true(ev.ts == 1700000000000ull);
	assert_string_equal(ev.session, "s1");
	assert_string_equal(ev.user, "u1");
	assert_string_equal(ev.type, "cart_add");
	assert_string_equal(ev.item, "i1");
	assert_string_equal(ev.value, "x y");
}

static void test_kafka_event_empty_or_missing_user_is_anonymous(void **state)
{
	struct wf_kevent ev;
	char err[256];

	assert_int_equal(parse("{\"ts\":0,\"user_id\":\"\",\"session_id\":\"s\",\"event\":\"view\",\"item_id\":\"i\"}",
			       &ev, err), 0);
	assert_string_equal(ev.user, "-");
	assert_string_equal(ev.value, "");
	assert_int_equal(parse("{\"ts\":0,\"session_id\":\"s\",\"event\":\"view\",\"item_id\":\"i\",\"user_id\":null}",
			       &ev, err), 0);
	assert_string_equal(ev.user, "-");
}

static void test_kafka_event_bad_messages_refused_with_reason(void **state)
{
	static const struct {
		const char *msg, *why;
	} bad[] = {
		{ "not json", "not JSON" },
		{ "", "not JSON" },
		{ "[1,2]", "not a JSON object" },
		{ "{\"session_id\":\"s\",\"event\":\"view\",\"item_id\":\"i\"}", "'ts' is missing" },
		{ "{\"ts\":-1,\"session_id\":\"s\",\"event\":\"view\",\"item_id\":\"i\"}", "'ts' wants" },
		{ "{\"ts\":1.5,\"session_id\":\"s\",\"event\":\"view\",\"item_id\":\"i\"}", "'ts' wants" },
		{ "{\"ts\":1,\"event\":\"view\",\"item_id\":\"i\"}", "'session_id' is missing" },
		{ "{\"ts\":1,\"session_id\":\"a b\",\"event\":\"view\",\"item_id\":\"i\"}", "invalid session_id" },
		{ "{\"ts\":1,\"session_id\":\"s\",\"event\":\"teleport\",\"item_id\":\"i\"}", "unknown event type" },
		{ "{\"ts\":1,\"session_id\":\"s\",\"event\":\"view\"}", "'item_id' is missing" },
		{ "{\"ts\":1,\"session_id\":\"s\",\"event\":\"view\",\"item_id\":7}", "'item_id' is not a string" },
		{ "{\"ts\":1,\"session_id\":\"s\",\"event\":\"view\",\"item_id\":\"i\",\"user_id\":\"u\\u0000\"}", "NUL" },
		{ "{\"ts\":1,\"ts\":2,\"session_id\":\"s\",\"event\":\"view\",\"item_id\":\"i\"}", "not JSON" },
	};
	struct wf_kevent ev;
	char err[256];

	memset(&ev, 0x5a, sizeof(ev));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(parse(bad[i].msg, &ev, err), -EINVAL);
		if (!strstr(err, bad[i].why))
			fail_msg("message %zu: reason '%s' lacks '%s'", i, err, bad[i].why);
		assert_true(ev.ts == 0x5a5a5a5a5a5a5a5aull); /* untouched on failure */
	}
}

static void test_kafka_seen_tag_roundtrip_and_foreign_topic(void **state)
{
	char tag[64];
	int32_t p;
	int64_t o;

	assert_true(wf_kseen_tag(tag, sizeof(tag), "ev", 3, 12345) > 0);
	assert_string_equal(tag, "ev:3:12345");
	assert_int_equal(wf_kseen_untag(tag, strlen(tag), "ev", &p, &o), 0);
	assert_int_equal(p, 3);
	assert_true(o == 12345);
	assert_int_equal(wf_kseen_untag(tag, strlen(tag), "e", &p, &o), -EINVAL);
	assert_int_equal(wf_kseen_untag("ev:3:", 5, "ev", &p, &o), -EINVAL);
	assert_int_equal(wf_kseen_untag("ev:x:1", 6, "ev", &p, &o), -EINVAL);
	assert_int_equal(wf_kseen_tag(tag, 8, "ev", 3, 12345), -ENAMETOOLONG);
}

static void append(struct wf_journal *j, uint16_t kind, const char *tag)
{
	const char *argv[] = { "s1", "-", "view", "i1", "ts", "5", "kafka", tag };
	uint32_t argl[8];
	uint64_t lsn;

	for (int i = 0; i < (tag ? 8 : 4); i++)
		argl[i] = (uint32_t)strlen(argv[i]);
	assert_int_equal(wf_journal_append_kind(j, kind, 1, 0, tag ? 8 : 4, argv, argl, &lsn), 0);
}

static void test_kafka_seen_load_reads_journal_offsets(void **state)
{
	char dir[64], err[256];
	struct wf_journal_opts jo = { .durability = WF_JOURNAL_OS };
	struct wf_journal *j;
	struct wf_kseen *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	snprintf(dir, sizeof(dir), "/tmp/weft-test-kafka.XXXXXX");
	assert_non_null(mkdtemp(dir));
	strcat(dir, "/journal");
	/* no journal yet: nothing seen */
	assert_int_equal(wf_kseen_load(s, dir, "ev"), 0);
	assert_int_equal(wf_kseen_max(s, 0), -1);
	wf_kseen_fini(s);

	assert_int_equal(wf_journal_open(dir, &jo, &j, err, sizeof(err)), 0);
	append(j, WF_JREC_EVENT, "ev:0:0");
	append(j, WF_JREC_EVENT, "ev:0:1");
	append(j, WF_JREC_EVENT, "ev:2:7");
	append(j, WF_JREC_EVENT, "ev:2:5");   /* refused once, made durable after a later one */
	append(j, WF_JREC_EVENT, "other:1:9"); /* another topic */
	append(j, WF_JREC_EVENT, NULL);        /* a socket EVENT */
	append(j, WF_JREC_SEGMENT, "ev:1:4");  /* not an EVENT */
	assert_int_equal(wf_journal_flush_sync(j), 0);
	wf_journal_close(j);

	assert_int_equal(wf_kseen_load(s, dir, "ev"), 4);
	assert_true(wf_kseen_has(s, 0, 0) && wf_kseen_has(s, 0, 1) && !wf_kseen_has(s, 0, 2));
	assert_true(wf_kseen_has(s, 2, 5) && wf_kseen_has(s, 2, 7) && !wf_kseen_has(s, 2, 6));
	assert_false(wf_kseen_has(s, 1, 9) || wf_kseen_has(s, 1, 4));
	assert_true(wf_kseen_max(s, 2) == 7 && wf_kseen_max(s, 1) == -1);
	assert_int_equal(wf_kseen_add(s, 2, 6), 0);
	assert_int_equal(wf_kseen_add(s, 2, 6), 0);
	assert_true(wf_kseen_has(s, 2, 6) && wf_kseen_max(s, 2) == 7);
	assert_int_equal(wf_kseen_add(s, WF_KSEEN_MAX_PARTITIONS, 1), -ERANGE);
	wf_kseen_fini(s);
	free(s);
	dir[strlen(dir) - strlen("/journal")] = '\0';
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kafka_event_full_message_parses),
		cmocka_unit_test(test_kafka_event_empty_or_missing_user_is_anonymous),
		cmocka_unit_test(test_kafka_event_bad_messages_refused_with_reason),
		cmocka_unit_test(test_kafka_seen_tag_roundtrip_and_foreign_topic),
		cmocka_unit_test(test_kafka_seen_load_reads_journal_offsets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
