/*
 * seen.h - which Kafka messages the journal already holds: the exactly-once
 * half of weft-kafka that survives kill -9.
 *
 * weft-kafka sends every message as `EVENT ... kafka TOPIC:PARTITION:OFFSET`
 * (a field like any other: journaled with the event, shown by HISTORY).
 * At start, before it consumes, it reads the journal (lib/journal.h
 * reader) and records, per partition of its topic, every offset found
 * there; a message whose offset is recorded is skipped. A set, not only
 * the highest offset: after a journal failure ingest may have made a later
 * event of a partition durable while an earlier one was refused, and the
 * earlier one must still go in. The highest offset per partition
 * (wf_kseen_max) is what `weftctl status` reports as journaled.
 *
 * Owner: weft-kafka (one per process). Memory: 8 bytes per journaled
 * Kafka event of the topic in the retained journal.
 */
#ifndef WF_KAFKA_SEEN_H
#define WF_KAFKA_SEEN_H

#include <stddef.h>
#include <stdint.h>

#define WF_KSEEN_MAX_PARTITIONS 1024u

struct wf_kseen_part {
	int64_t *off; /* sorted after wf_kseen_load */
	size_t n, cap;
	int64_t max;  /* -1: none */
};

struct wf_kseen {
	struct wf_kseen_part part[WF_KSEEN_MAX_PARTITIONS];
};

/* Format the field value "topic:partition:offset" into out. Returns the
 * length, or -ENAMETOOLONG if it does not fit. */
int wf_kseen_tag(char *out, size_t n, const char *topic, int32_t partition, int64_t offset);

/* Parse a tag; 0 and the parts if it names topic, else -EINVAL. */
int wf_kseen_untag(const char *p, size_t len, const char *topic, int32_t *ret_partition, int64_t *ret_offset);

/* Read the journal in dir (a missing one is empty) and record every
 * EVENT tagged with topic. s is the caller's, zeroed first. Returns the
 * number of tagged events found, or -errno (-ENOMEM, the reader's
 * -EBADMSG). On failure s is released. */
int wf_kseen_load(struct wf_kseen *s, const char *dir, const char *topic);

/* 1 if (partition, offset) is recorded. */
int wf_kseen_has(const struct wf_kseen *s, int32_t partition, int64_t offset);

/* Record one more (an event acknowledged durable in this run). 0 or -ENOMEM / -ERANGE. */
int wf_kseen_add(struct wf_kseen *s, int32_t partition, int64_t offset);

/* Highest recorded offset of a partition, -1 if none. */
int64_t wf_kseen_max(const struct wf_kseen *s, int32_t partition);

void wf_kseen_fini(struct wf_kseen *s); /* accepts a zeroed or released s */

#endif
