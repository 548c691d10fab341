/*
 * journal.h - weft's event journal: append-only segment files of
 * length-prefixed, checksummed records, written with group commit.
 *
 * Writer: weft-ingest only. It appends every valid EVENT (wf_journal_append
 * gives it a log sequence number, LSN), and takes each batch
 * (wf_journal_flush_begin), writes it and, in durability "fsync" mode,
 * fdatasyncs it through io_uring; several flushes may be in flight at once
 * (concurrent fdatasyncs of one file overlap on the device; figures in
 * BENCHMARKS.md, bench/syncbench.c). When a flush ends,
 * wf_journal_flush_end makes its LSNs durable once every older flush has
 * ended too, and only then are those events acknowledged. The module does
 * no I/O on the hot path itself, so it does not depend on io_uring;
 * wf_journal_flush_sync() does the same synchronously for tools and tests.
 * It keeps no state outside struct wf_journal / wf_journal_reader: any
 * number of journals may be open, recovered or read at once.
 *
 * Readers: weft-ranker (replays its shard's tail after a restart),
 * weft-batch (nightly build from the journal), the fuzz target.
 *
 * Files: DIR/<first-lsn, 16 hex digits>.wfj, each starting with a 32-byte
 * segment header. Record (8-byte aligned):
 *   u32 len (bytes after this header), u32 xxh32 (of the header with this
 *   field 0, and the body), u64 lsn, u64 ts_ms, u16 shard, u16 argc,
 *   u16 kind, u16 reserved (0), then argc x u32 argument lengths and the
 *   argument bytes.
 * Kinds (enum wf_journal_kind): an EVENT's arguments are session user type
 * item [field value]...; the other kinds say their own arguments where
 * they are written. Every reader skips the kinds it does not know, so a
 * new kind needs no format version (journals before kinds hold 0 there).
 *
 * Recovery (wf_journal_open): the newest segment is scanned; a torn or
 * corrupt tail (a crash mid-write) is truncated away; the next LSN follows
 * the last valid record. Records are never rewritten.
 */
#ifndef WF_JOURNAL_H
#define WF_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define WF_JOURNAL_MAX_ARGS 64u
#define WF_JOURNAL_MAX_RECORD (64u * 1024)

/* What a record holds. Values are stored: append new kinds, never renumber. */
enum wf_journal_kind {
	WF_JREC_EVENT = 0,      /* an EVENT (every record before kinds existed) */
	WF_JREC_SEGMENT = 1,    /* a segment enter/exit transition (issue 16) */
	/* An experiment exposure (issue 17): a RECS/RERANK reply shown to a
	 * unit in an arm, journaled before the reply reaches its client.
	 * Arguments: experiment, arm, unit ("u:" user or "s:" session,
	 * lib/exp.h), session, user (as the request gave it, "-"
	 * anonymous), page (RERANK: "search"), request id (decimal: a
	 * ranker that redoes a request after a crash writes the same one,
	 * so readers count it once), then the reply's item ids in their
	 * positions. At most WF_JOURNAL_MAX_ARGS: a reply of more than 57
	 * items lists its first 57 (the rest are not attributed). ts_ms: the
	 * ranker's wall clock when it answered. shard: the ranker's. */
	WF_JREC_EXPOSURE = 2,
	WF_JREC_KINDS
};

enum wf_journal_durability {
	WF_JOURNAL_FSYNC = 0, /* ack after fdatasync */
	WF_JOURNAL_OS,        /* ack after write(): survives a process crash, not power loss */
};

#define WF_JOURNAL_FLIGHTS 4u     /* flushes in flight at most, by default */
#define WF_JOURNAL_FLIGHTS_MAX 16u

struct wf_journal_opts {
	uint64_t segment_bytes; /* roll to a new segment past this (default 64 MiB) */
	int durability;         /* enum wf_journal_durability */
	uint32_t flights;       /* flushes in flight at most (0: WF_JOURNAL_FLIGHTS; capped at _MAX) */
};

struct wf_journal;

/*
 * Open (creating DIR if needed) and recover. Returns 0, or -errno; on
 * -EBADMSG a segment other than the newest is corrupt (the message in err
 * names it). *ret untouched on failure.
 */
int wf_journal_open(const char *dir, const struct wf_journal_opts *opts, struct wf_journal **ret, char *err,
		    size_t errlen);
void wf_journal_close(struct wf_journal *j); /* accepts NULL; does not flush */

/* Append a record to the pending batch. Returns 0 and the record's LSN, or
 * -E2BIG (too many arguments or over WF_JOURNAL_MAX_RECORD), -ENOMEM. */
int wf_journal_append(struct wf_journal *j, uint64_t ts_ms, uint16_t shard, uint32_t argc,
		      const char *const *argv, const uint32_t *argl, uint64_t *ret_lsn);
/* The same for a record of any kind (wf_journal_append is kind EVENT).
 * -EINVAL for a kind >= WF_JREC_KINDS. */
int wf_journal_append_kind(struct wf_journal *j, uint16_t kind, uint64_t ts_ms, uint16_t shard, uint32_t argc,
			   const char *const *argv, const uint32_t *argl, uint64_t *ret_lsn);

/* LSN the next append will get; highest LSN that is durable (0 = none). */
uint64_t wf_journal_next_lsn(const struct wf_journal *j);
uint64_t wf_journal_durable_lsn(const struct wf_journal *j);
int wf_journal_durability(const struct wf_journal *j);

/* Bytes appended and not yet handed to a flush. */
size_t wf_journal_pending_bytes(const struct wf_journal *j);

/*
 * Start a flush of everything appended so far. Returns 1 and fills *ret
 * (its id, fd, file offset, one iovec, whether to fdatasync) when there is
 * work, 0 when nothing is pending or opts.flights flushes are in flight
 * (appends meanwhile form the next batch: that is the group commit) or a
 * segment roll waits for the flushes in flight to end, -errno if rolling
 * to a new segment failed.
 */
struct wf_journal_flush {
	uint64_t id; /* for wf_journal_flush_end */
	int fd;
	uint64_t offset;
	struct iovec iov;
	int sync; /* 1: follow the write with fdatasync before ending the flush */
};
int wf_journal_flush_begin(struct wf_journal *j, struct wf_journal_flush *ret);

/*
 * Flush id finished (in any order): res = bytes written (a short write is
 * an error here: the caller retries the remainder itself or reports), or
 * -errno. On success its LSNs become durable once every older flush has
 * ended. On failure the journal refuses further flushes (-EIO) until
 * wf_journal_reset() or reopened, and no later flush makes anything
 * durable: acks stop, nothing is lost that was acked. -EINVAL for an id
 * not in flight.
 */
int wf_journal_flush_end(struct wf_journal *j, uint64_t id, int64_t res);

/*
 * After a failed flush (a full disk: flushes give -EIO) or a failed roll
 * (wf_journal_flush_begin's -errno), once every flush begun has ended:
 * drop every record that is not durable (the failed flushes' and those
 * appended since), cut the segment back to its durable end, and take
 * appends and flushes again; the next LSN follows the durable one, so the
 * LSNs of the dropped records are given again. Returns 0, -EBUSY while a
 * flush is in flight, or -errno of the truncate (the journal stays failed).
 */
int wf_journal_reset(struct wf_journal *j);

/* Flushes begun and not yet retired (ended with every older one). */
uint32_t wf_journal_flights(const struct wf_journal *j);

/* The write of a begun flush, synchronously (pwrite of the whole iovec at
 * its offset; the caller still syncs if f->sync and ends the flush).
 * Returns the bytes written, or -errno (-EIO for a write of 0). */
int64_t wf_journal_flush_write(const struct wf_journal_flush *f);

/* Begin + write + fdatasync + end, synchronously. 0 or -errno. */
int wf_journal_flush_sync(struct wf_journal *j);

/* ---- reading ---- */

struct wf_journal_rec {
	uint64_t lsn;
	uint64_t ts_ms;
	uint16_t shard;
	uint16_t kind;      /* enum wf_journal_kind (unknown values are read, not refused) */
	uint32_t argc;
	const char *argv[WF_JOURNAL_MAX_ARGS];
	uint32_t argl[WF_JOURNAL_MAX_ARGS];
};

struct wf_journal_reader;

/* Read every record with lsn >= from_lsn, in order, across segments. */
int wf_journal_reader_open(const char *dir, uint64_t from_lsn, struct wf_journal_reader **ret);
/* 1 record read (valid until the next call), 0 end, -EBADMSG corruption
 * before the end of the newest segment. */
int wf_journal_reader_next(struct wf_journal_reader *r, struct wf_journal_rec *rec);
void wf_journal_reader_close(struct wf_journal_reader *r);

/*
 * A tail: records in order from from_lsn as the journal grows, read a
 * chunk at a time (lib/journal_tail.c). wf_journal_tail_next: 1 a record
 * (valid until the next call), 0 none more now with lsn <= max_lsn (call
 * again later: it goes on from there), -errno. A record above max_lsn is
 * left for a later call: pass the durable LSN to read only what is
 * durable.
 */
struct wf_journal_tail;
int wf_journal_tail_open(const char *dir, uint64_t from_lsn, struct wf_journal_tail **ret);
int wf_journal_tail_next(struct wf_journal_tail *t, struct wf_journal_rec *rec, uint64_t max_lsn);
void wf_journal_tail_close(struct wf_journal_tail *t); /* accepts NULL */
/* Where the next record is: segment *seg (its first LSN) at byte *off;
 * *seg 0 when no segment is open yet. A tail opened later at this place
 * (wf_journal_tail_open_at, the same from_lsn) goes on without looking
 * for it, and holds no file between (a parked tail would keep a pruned
 * segment on disk). */
void wf_journal_tail_pos(const struct wf_journal_tail *t, uint64_t *seg, uint64_t *off);
int wf_journal_tail_open_at(const char *dir, uint64_t from_lsn, uint64_t seg, uint64_t off,
			    struct wf_journal_tail **ret);
/* At most bytes more read from the files (a caller that must not stall
 * on a long read: weft-ingest's loop): past them wf_journal_tail_next()
 * returns -EAGAIN, and wf_journal_tail_pos() says where it stopped. */
void wf_journal_tail_budget(struct wf_journal_tail *t, size_t bytes);

/* Decode one record from buf (for the fuzz target and the reader).
 * Returns the record's total size (> 0), 0 if buf holds an incomplete
 * record, -EBADMSG if it is not a valid record. */
int wf_journal_decode(const uint8_t *buf, size_t len, struct wf_journal_rec *rec);

/* Segment files: each starts with a header of this many bytes, then
 * records (wf_journal_decode). */
#define WF_JOURNAL_SEG_HDR 32u
/* The first LSNs of the segments in dir, sorted, into *ret (malloc'd; the
 * caller frees) and their count into *ret_n. 0 or -errno. */
int wf_journal_segments(const char *dir, uint64_t **ret, size_t *ret_n);
/* The path of the segment whose first LSN is lsn. */
void wf_journal_segment_path(char *out, size_t n, const char *dir, uint64_t lsn);

/* Remove whole segments whose records are all older than before_ms and
 * below keep_lsn. Returns the number removed or -errno. */
int wf_journal_prune(const char *dir, uint64_t before_ms, uint64_t keep_lsn);

/* The first LSN of the newest segment (0: no segment): a reader that read
 * the journal to its end has consumed every record below it. 0 or -errno. */
int wf_journal_head_lsn(const char *dir, uint64_t *ret);

/*
 * Journal retention (weft-batch nightly, after a successful night). A
 * segment is removed only when all of these hold for every record in it:
 *   - older than keep_ms (--journal-retention) and than session_ttl_ms
 *     (a ranker without a checkpoint replays that window);
 *   - below consumed_lsn (what the night read);
 *   - at or below every ranker's checkpoint LSN (ckpt_dir's shard-*.wfc,
 *     lib/ckpt.h): a restart replays after it. A checkpoint that cannot be
 *     read (corrupt) keeps everything; a shard with none adds no bound
 *     (its ranker replays the TTL window).
 * Every reader of other record kinds (segment transitions, exposures)
 * gets the same window: they state it in their own docs.
 */
struct wf_journal_retention {
	uint64_t now_ms;
	uint64_t keep_ms;
	uint64_t session_ttl_ms;
	uint64_t consumed_lsn;
	const char *ckpt_dir; /* NULL: no checkpoints */
};

/* Apply the rule above to the journal in dir. Returns the segments
 * removed, or -errno; *ret_keep_lsn: the LSN bound it used (records
 * below it could go). */
int wf_journal_retain(const char *dir, const struct wf_journal_retention *r, uint64_t *ret_keep_lsn);

#endif
