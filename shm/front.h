/*
 * front.h - a shard's front table (struct wf_front in layout.h): RECS
 * answers weft-ranker@N publishes (wf_front_publish) and weft-ingest gives
 * without a ring round trip (wf_front_lookup), and the shard's
 * live-session filter. The one rule for when an entry may answer is
 * wf_front_lookup()'s (see shm/README.md, "Front table"): every input the
 * ranker's answer depended on that ingest can check is equal now, read
 * under the entry's seqlock, and the items are filtered by live stock the
 * rankers' way.
 *
 * Writer: weft-ranker@N only (its own shard's table). Reader: weft-ingest
 * only. Linked into both through libweft.
 */
#ifndef WF_FRONT_H
#define WF_FRONT_H

#include <stdatomic.h>
#include <stdint.h>

#include "shm/layout.h"
#include "shm/shm.h"

/*
 * A front-table key: the RECS arguments after the command name, each as
 * one length byte and its bytes, and their hash. The quiet key (see
 * layout.h) has the session emptied. Writer and reader build it the same
 * way from their own views of the request.
 */
struct wf_front_key {
	uint64_t hash;          /* wf_hash64(args) | 1, set by wf_front_key_seal() */
	uint32_t len;           /* bytes of args[] used */
	char args[WF_FRONT_ARGS];
};

/* Start an empty key; quiet: its first argument is the empty session
 * (then add the arguments after the session). */
void wf_front_key_init(struct wf_front_key *k, int quiet);
/* Append one argument. 0, or -E2BIG when it does not fit (such a request
 * is never published nor looked up). */
int wf_front_key_add(struct wf_front_key *k, const char *p, uint32_t len);
/* After the last argument: its hash. */
void wf_front_key_seal(struct wf_front_key *k);

/*
 * Map the whole table into this process now, allocating its pages in the
 * segment if no process has yet (write: MADV_POPULATE_WRITE, for the
 * shard's ranker; else MADV_POPULATE_READ, for weft-ingest). The table is
 * probed at random by key hash, so under load every page is touched
 * within minutes; left to fault on use, each first touch was a page fault
 * in each process (a quarter of weft-ingest's CPU under the page-view load
 * of a freshly started weft). 0; -EINVAL when the kernel has no populate
 * (< 5.14: pages fault in on use); another -errno (-EFAULT, -ENOMEM) when
 * the segment cannot hold the pages (/dev/shm full: the caller stops
 * rather than take a SIGBUS on a missing page under load).
 */
int wf_front_prefault(struct wf_front *f, int write);

/* ---- writer (weft-ranker@N) ---- */

/* Everything an entry's answer depended on, as the ranker read it (see
 * struct wf_front_entry in layout.h). */
struct wf_front_deps {
	uint64_t sver;          /* the request's session version (0: quiet) */
	uint64_t gen;           /* generation served */
	uint64_t until_ms;      /* wall clock: not used after */
	uint32_t epoch;         /* ingest epoch of the request */
	uint32_t starts;        /* the shard's ranker_starts */
	uint32_t wseq;          /* weights seqlock count read before the query (even) */
};

/* An entry being built in the writer's own memory. */
struct wf_front_stage {
	struct wf_front_entry e;
	uint32_t pos;           /* bytes of e.data used */
	int dropped;            /* an item did not fit: the entry is not complete */
};

/* Start staging the answer to key k with dependencies d. */
void wf_front_stage_init(struct wf_front_stage *s, const struct wf_front_key *k, const struct wf_front_deps *d);
/* Append the next item in rank order: its wf_stock_key, the snapshot's
 * sold-out flag, its id. 0, or -ENOSPC when it does not fit (the entry
 * then stops there and is published not complete). */
int wf_front_stage_item(struct wf_front_stage *s, uint64_t stock_key, int snap_sold_out, const char *id,
			uint32_t len);
/* Write the staged entry into f (complete: the items are the whole pool),
 * in this key's way of its two-way set, else the way that expires first,
 * under the entry's seqlock. Only the shard's ranker calls it. */
void wf_front_publish(struct wf_front *f, struct wf_front_stage *s, int complete);

/* A session with hash h was created (+1) or freed (-1) by the shard's
 * ranker. Saturated counters stay put. */
void wf_front_live_add(struct wf_front *f, uint64_t h, int d);

/* ---- reader (weft-ingest) ---- */

/* Item-level stock states mirrored in the reader's own memory (see
 * front.c); NULL is an empty mirror. Owner: weft-ingest's loop, which is
 * the stock table's only writer and calls wf_front_stock_note() after
 * each write to it. */
struct wf_front_stock;

/* After a write to the item with stock key key: its state into *m
 * (created as needed). 0, or -ENOMEM (*m is then freed and NULL: it is
 * rebuilt from the table at the next lookup). */
int wf_front_stock_note(struct wf_front_stock **m, const struct wf_stock *st, uint64_t key);
/* Free *m (NULL is fine) and set it NULL. */
void wf_front_stock_free(struct wf_front_stock **m);

/* The shared state an answer is checked against, and the reader's own. */
struct wf_front_reader {
	struct wf_front *front;         /* the shard's table */
	struct wf_shard_ctl *sc;        /* loaded_gen, ranker_starts */
	struct wf_ctl *ctl;             /* weights_lock */
	const struct wf_stock *stock;
	struct wf_front_stock **mirror; /* the reader's stock mirror */
	uint32_t epoch;                 /* this ingest's epoch */
};

/* What one way answers: the entry's words as read (e), and the records of
 * the up to k items that pass live stock (offsets into e.data, in rank
 * order). Read with wf_front_answer_id(). */
struct wf_front_answer {
	uint32_t n, bytes;              /* items; sum of their id lengths */
	uint16_t rec[WF_FRONT_ITEMS];
	struct wf_front_entry e;
};

/* The i-th id of an answer (i < a->n). */
static inline const char *wf_front_answer_id(const struct wf_front_answer *a, uint32_t i, uint32_t *ret_len)
{
	const char *rec = a->e.data + a->rec[i];

	*ret_len = (uint8_t)rec[8];
	return rec + WF_FRONT_REC;
}

/* Start loading key's set: both ways' header lines, and the lines an
 * answer of k items from the first way reads. */
void wf_front_prefetch(const struct wf_front *f, const struct wf_front_key *key, uint32_t k);

/*
 * Answer a RECS of k items (1..WF_FRONT_ITEMS, no EXPLAIN or SIZE) from
 * key's set in r->front, if an entry there holds for session version sver
 * now (now_ms: the wall clock read for this request). quiet_hash not 0:
 * key is the quiet key, the caller knows no EVENT was routed for the
 * session and the ranker has applied every request forwarded before its
 * route table last forgot entries, and the live-session filter must also
 * say the ranker holds no state for the session id of this wf_hash64.
 * Readers never wait: an entry being written is a miss. a: the answer's
 * room (large: the caller's), scratch unless 0 is returned.
 * Returns 0 (a filled), or -ENOENT when no entry may answer.
 */
int wf_front_lookup(const struct wf_front_reader *r, const struct wf_front_key *key, uint64_t sver, uint32_t k,
		    uint64_t quiet_hash, uint64_t now_ms, struct wf_front_answer *a);

/* The live-session filter's counter for a session id's wf_hash64 (bits
 * above the low ones, which ingest's route keys force to 1). */
static inline _Atomic uint8_t *wf_front_live(struct wf_front *f, uint64_t h)
{
	return &f->live[(h >> 8) & (WF_FRONT_LIVE - 1)];
}

#endif
