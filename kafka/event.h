/*
 * event.h - one Kafka message, a JSON object with the events CSV's fields,
 * checked by the rules a socket EVENT is checked by (ingest/cmd.c
 * check_event: lib/proto.h's id rule and event types, ts a non-negative
 * integer):
 *
 *   {"ts": 1700000000000, "user_id": "u1", "session_id": "s1",
 *    "event": "view", "item_id": "i1", "value": ""}
 *
 * user_id "" (or absent, or null) is an anonymous visitor ("-"); value
 * may be absent, "" or a string of at most WF_KEVENT_VALUE_MAX bytes;
 * other keys are ignored (a producer may add its own). Parsed with
 * jansson. Linked into weft-kafka, its test and fuzz_kafka_event.
 */
#ifndef WF_KAFKA_EVENT_H
#define WF_KAFKA_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/proto.h"

#define WF_KEVENT_VALUE_MAX 1024u /* EVENT's field value limit (ingest/cmd.c) */

/* Caller's memory; strings NUL-terminated, copied out of the message. */
struct wf_kevent {
	uint64_t ts;
	char session[WF_ID_MAX + 1];
	char user[WF_ID_MAX + 1]; /* "-" for an anonymous visitor */
	char type[16];
	char item[WF_ID_MAX + 1];
	char value[WF_KEVENT_VALUE_MAX + 1]; /* "" when none */
};

/*
 * Parse and check one message of len bytes (not NUL-terminated). Returns
 * 0 and fills *ret, or -EINVAL with a one-line reason in err (never
 * longer than errlen, names the field; client bytes are not copied into
 * it). *ret is untouched on failure.
 */
int wf_kevent_parse(const void *buf, size_t len, struct wf_kevent *ret, char *err, size_t errlen);

#endif
