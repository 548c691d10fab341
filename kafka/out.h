/*
 * out.h - weft-kafka's --kafka-out-topic (issue 20): the segment
 * transitions weft-ingest made durable, read with TRIGGERS on weft.sock,
 * and the experiment exposures it made durable, read from the journal up
 * to its durable LSN, produced to a Kafka topic; the cursors kept in
 * DIR/kafka-out.cursor and DIR/kafka-out.cursor.exposures. At least once:
 * each message carries a stable id, its journal LSN (kafka/README.md,
 * "Produced back"). Linked only into weft-kafka.
 */
#ifndef WF_KAFKA_OUT_H
#define WF_KAFKA_OUT_H

#include <limits.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "lib/journal.h"

/* Owner: weft-kafka's context (main.c), one. */
struct kafka_out {
	const char *topic;          /* NULL: off */
	const char *socket;         /* weft.sock */
	char cursor_path[PATH_MAX]; /* --kafka-out-cursor, default DIR/kafka-out.cursor */
	rd_kafka_t *rk;             /* the producer (idempotent) */
	redisContext *rc;           /* its own connection to weft.sock; NULL: reconnect */
	uint64_t cursor;            /* the last id Kafka acked (and the file holds) */
	uint64_t next_ns;           /* the next round, at most 10 a second */
	uint64_t produced, errors;  /* kafka.status: messages acked; failed rounds */
	uint32_t failed;            /* delivery reports of this round that failed */
	/* Exposures (WF_JREC_EXPOSURE), read from the journal itself. */
	const char *journal;        /* the journal's directory */
	char ecursor_path[PATH_MAX + 16]; /* cursor_path + ".exposures" */
	uint64_t ecursor;           /* records up to this LSN are done: their exposures acked */
	struct wf_journal_tail *tail; /* NULL: opened at ecursor + 1 by the next round */
	uint64_t enext_ns;          /* the next exposure round */
	uint64_t eproduced;         /* kafka.status: exposures acked */
	int ewarned;                /* the cursor-ahead-of-the-journal warning was logged */
};

/* Start: the cursor file (cursor_path, NULL: DIR/kafka-out.cursor) read (absent: 0, every transition the journal
 * retains), the producer made. 0, -EINVAL (librdkafka's configuration,
 * logged), -EIO (an unreadable cursor file, logged). */
int kafka_out_start(struct kafka_out *o, const char *brokers, const char *dir, const char *socket,
		    const char *journal, const char *cursor_path);

/* One round, when due: TRIGGERS after the cursor (at most 512), each
 * produced keyed by its shopper, all flushed; only when every one was
 * acked is the cursor advanced and written (atomically). A failure leaves
 * the cursor: the next round produces the same again. Then the same for
 * the exposures the journal holds durably after their cursor. Logs its
 * errors. */
void kafka_out_pump(struct kafka_out *o);

/* The fields of weft-ingest's INFO stats weft-kafka reads (0 where a
 * weft-ingest does not have one). */
struct kafka_ingest_stats {
	uint64_t kafka_conns;  /* open connections that sent an EVENT with the kafka field */
	uint64_t next_lsn;     /* journal_next_lsn: the LSN the next record gets */
	uint64_t durable_lsn;  /* journal_durable_lsn */
	int journal_failed;    /* journal_failed is not "no" */
};

/* One INFO stats on rc into *st: 0, or -1 (no answer; *st zeroed). */
int kafka_ingest_stats(redisContext *rc, struct kafka_ingest_stats *st);

/* Flush and free; accepts an object never started. */
void kafka_out_stop(struct kafka_out *o);

#endif /* WF_KAFKA_OUT_H */
