/*
 * fuzz_kafka_event.c - libFuzzer target for weft-kafka's message parser
 * (kafka/event.h), which reads every message a Kafka topic holds: bytes
 * anyone with produce rights chose. Invariants: it returns 0 or -EINVAL;
 * on 0 every id passes wf_id_valid (what ingest will check again), the
 * event type is known, the value fits; on -EINVAL the reason is a
 * NUL-terminated line and the output untouched.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kafka/event.h"
#include "lib/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wf_kevent ev, before;
	char err[128];
	int r;

	memset(&ev, 0x33, sizeof(ev));
	before = ev;
	memset(err, 'x', sizeof(err));
	r = wf_kevent_parse(data, size, &ev, err, sizeof(err));
	assert(r == 0 || r == -EINVAL);
	if (r < 0) {
		assert(memchr(err, '\0', sizeof(err)) != NULL);
		assert(memcmp(&ev, &before, sizeof(ev)) == 0);
		return 0;
	}
	assert(wf_id_valid(ev.session, strlen(ev.session)));
	assert(strcmp(ev.user, "-") == 0 || wf_id_valid(ev.user, strlen(ev.user)));
	assert(wf_id_valid(ev.item, strlen(ev.item)));
	assert(wf_event_from_name(ev.type, strlen(ev.type)) >= 0);
	assert(strlen(ev.value) <= WF_KEVENT_VALUE_MAX);
	return 0;
}
