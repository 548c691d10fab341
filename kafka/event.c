/*
 * event.c - a Kafka message to a checked event (event.h), with jansson.
 * Linked into weft-kafka, test_kafka and fuzz_kafka_event.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "kafka/event.h"
#include "lib/util.h"

/* The string at key into out (cap bytes with the NUL): 1 copied, 0
 * absent or null (when may_miss), -EINVAL with err written. */
static int get_str(json_t *o, const char *key, int may_miss, char *out, size_t cap, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);
	size_t n;

	if (!v || json_is_null(v)) {
		if (may_miss)
			return 0;
		snprintf(err, errlen, "field '%s' is missing", key);
		return -EINVAL;
	}
	if (!json_is_string(v)) {
		snprintf(err, errlen, "field '%s' is not a string", key);
		return -EINVAL;
	}
	n = json_string_length(v);
	if (n >= cap) {
		snprintf(err, errlen, "field '%s' is longer than %zu bytes", key, cap - 1);
		return -EINVAL;
	}
	memcpy(out, json_string_value(v), n);
	out[n] = '\0';
	if (strlen(out) != n) {
		snprintf(err, errlen, "field '%s' holds a NUL byte", key);
		return -EINVAL;
	}
	return 1;
}

static int check_id(const char *what, const char *s, char *err, size_t errlen)
{
	if (wf_id_valid(s, strlen(s)))
		return 0;
	snprintf(err, errlen, "invalid %s: 1..%u printable bytes without spaces", what, WF_ID_MAX);
	return -EINVAL;
}

int wf_kevent_parse(const void *buf, size_t len, struct wf_kevent *ret, char *err, size_t errlen)
{
	struct wf_kevent ev = { 0 };
	json_error_t je;
	json_t *o, *ts;
	int e = -EINVAL, r;

	/* JSON_REJECT_DUPLICATES: {"event":"view","event":"buy"} has no one meaning. */
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		char esc[JSON_ERROR_TEXT_LENGTH * 4];

		/* jansson's text may quote the message: escaped (wf_escape) */
		wf_escape(esc, sizeof(esc), je.text, strnlen(je.text, sizeof(je.text)));
		snprintf(err, errlen, "not JSON: %s (at byte %d)", esc, je.position);
		return -EINVAL;
	}
	if (!json_is_object(o)) {
		snprintf(err, errlen, "not a JSON object");
		goto out;
	}
	ts = json_object_get(o, "ts");
	if (!ts || !json_is_integer(ts) || json_integer_value(ts) < 0) {
		snprintf(err, errlen, "field 'ts' %s", ts ? "wants a non-negative integer" : "is missing");
		goto out;
	}
	ev.ts = (uint64_t)json_integer_value(ts);
	if (get_str(o, "session_id", 0, ev.session, sizeof(ev.session), err, errlen) < 0 ||
	    check_id("session_id", ev.session, err, errlen) < 0)
		goto out;
	r = get_str(o, "user_id", 1, ev.user, sizeof(ev.user), err, errlen);
	if (r < 0)
		goto out;
	if (r == 0 || ev.user[0] == '\0')
		strcpy(ev.user, "-");
	else if (check_id("user_id", ev.user, err, errlen) < 0)
		goto out;
	if (get_str(o, "event", 0, ev.type, sizeof(ev.type), err, errlen) < 0)
		goto out;
	if (wf_event_from_name(ev.type, strlen(ev.type)) < 0) {
		snprintf(err, errlen, "unknown event type (view click pdp hover dwell scroll search cart_add "
				      "cart_remove purchase)");
		goto out;
	}
	if (get_str(o, "item_id", 0, ev.item, sizeof(ev.item), err, errlen) < 0 ||
	    check_id("item_id", ev.item, err, errlen) < 0)
		goto out;
	if (get_str(o, "value", 1, ev.value, sizeof(ev.value), err, errlen) < 0)
		goto out;
	*ret = ev;
	e = 0;
out:
	json_decref(o);
	return e;
}
