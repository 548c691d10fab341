/*
 * layout.h - the one layout of weft's shared-memory segment.
 *
 * /dev/shm/<name>: a header with a table of contents, then regions found by
 * name (never by caller arithmetic). Fixed-size types only, offsets from the
 * base instead of pointers. Any change here bumps WF_SHM_LAYOUT_VERSION;
 * attach refuses a mismatch with -EPROTO.
 *
 * Regions:
 *   "ctl"       struct wf_ctl: weights, snapshot generations, process state
 *   "shard.N"   struct wf_shard_ctl for shard N, followed by its request ring,
 *               its reply ring and its front table (struct wf_front)
 *   "stock"     struct wf_stock: size-level inventory
 *   "reqlat"    struct wf_reqlat: weft-ingest's request latency histograms
 */
#ifndef WF_SHM_LAYOUT_H
#define WF_SHM_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/proto.h"
#include "shm/lathist.h"
#include "shm/ring.h"
#include "shm/wait.h"

#define WF_SHM_MAGIC 0x4d48535446455721ull /* "!WEFTSHM" */
#define WF_SHM_LAYOUT_VERSION 13u
#define WF_SHM_MAX_SHARDS 64u
#define WF_SHM_TOC_MAX (WF_SHM_MAX_SHARDS + 8u)
#define WF_SHM_NAME_MAX 24u
#define WF_PATH_MAX 1024u

struct wf_shm_toc_entry {
	char name[WF_SHM_NAME_MAX]; /* NUL-terminated */
	uint64_t off;               /* from the segment base */
	uint64_t size;
};
_Static_assert(sizeof(struct wf_shm_toc_entry) == 40, "toc entry");

/* Written once by the creator before the segment gets its final name;
 * read-only afterwards. */
struct wf_shm_hdr {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t nshards;
	uint64_t total_size;
	uint64_t created_ms; /* wall clock */
	uint32_t ntoc;
	uint32_t ring_capacity;
	struct wf_shm_toc_entry toc[WF_SHM_TOC_MAX];
};
_Static_assert(offsetof(struct wf_shm_hdr, magic) == 0 && offsetof(struct wf_shm_hdr, layout_version) == 8 &&
		       offsetof(struct wf_shm_hdr, total_size) == 16 && offsetof(struct wf_shm_hdr, ntoc) == 32 &&
		       offsetof(struct wf_shm_hdr, toc) == 40,
	       "shm header layout (attach reads magic and version first)");
_Static_assert(sizeof(struct wf_shm_hdr) == 40 + 40 * WF_SHM_TOC_MAX, "shm header size");

/*
 * Seqlock: the writer makes seq odd, writes, makes it even (release); a
 * reader retries while seq is odd or changed across its read. Fields under
 * a seqlock are read and written with relaxed atomic word accesses
 * (wf_seq_copy), so the race is a defined one.
 */
struct wf_seqlock {
	_Atomic uint32_t seq;
};

/* Snapshot generation record: which file a generation serves from.
 * Under ctl->snap_lock, accessed only as 32-bit words by wf_seq_store
 * (writer) and wf_seq_copy (readers), never field by field in shm. */
struct wf_snap_ref {
	uint64_t gen;       /* 0 = none */
	uint64_t loaded_ms; /* wall clock when admin accepted it */
	char path[WF_PATH_MAX];
};
_Static_assert(sizeof(struct wf_snap_ref) == 16 + WF_PATH_MAX && sizeof(struct wf_snap_ref) % 4 == 0,
	       "snapshot ref: whole words");

/* Weight pair of one page type x visitor type, as float bits. Under
 * ctl->weights_lock: written by wf_seq_store, read by wf_seq_copy (relaxed
 * word accesses; the seqlock orders them). */
struct wf_weight {
	_Atomic uint32_t batch_bits;
	_Atomic uint32_t session_bits;
};
_Static_assert(sizeof(struct wf_weight) == 8, "weight pair");

/*
 * Control block. Writers and readers per field (tags: shm/README.md):
 *   weights_lock, weights        writer weft-admin; readers rankers (each query)
 *   snap_lock, snap_cur/prev     writer weft-admin; readers rankers, weftctl
 *   snap_cur_gen                 writer weft-admin (R3 release, after snap_cur is
 *                                written); readers rankers (A3 acquire, each loop)
 *   admin_pid                    writer weft-admin; readers weftctl (relaxed, display)
 *   ingest_pid                   writer weft-ingest at start (R9/A9: a CAS, the one-ingest-
 *                                per-segment lock); readers weft-admin (relaxed: display)
 *   ingest_epoch                 writer weft-ingest at start; readers rankers (relaxed:
 *                                display; replies of old epochs are dropped by ingest)
 *   ingest_ready                 writer weft-ingest (R10 release); reader weftctl up (A10 acquire)
 *   ingest_wait                  see wait.h; owner weft-ingest (sleeps in io_uring on a
 *                                futex wait on it), wakers rankers (FUTEX_WAKE)
 *   shutdown                     writer weft-admin (R8 release); readers all (A8 acquire)
 *   next_lsn                     writer weft-ingest only (relaxed: single writer,
 *                                published to readers through ring records)
 *   stats                        writer weft-ingest (relaxed counters); readers admin
 *   segdefs_gen                  writer weft-admin (R12 release, after DIR/segments.conf is
 *                                renamed in place); readers rankers (A12 acquire, each loop:
 *                                a new value means reload the definitions)
 *   experiments_gen              writer weft-admin (R13 release, after DIR/experiments.conf
 *                                is renamed in place); readers rankers (A13 acquire, each loop)
 *   ingest_start_lsn             writer weft-ingest at start, once its journal is recovered
 *                                (relaxed, published by R14); readers rankers after A14
 *   ingest_started               writer weft-ingest at start: its epoch, after
 *                                ingest_start_lsn (R14 release); readers rankers (A14
 *                                acquire: a new value means "apply the journal's events
 *                                below ingest_start_lsn that you have not seen")
 */
struct wf_ctl {
	struct wf_seqlock weights_lock;
	struct wf_weight weights[WF_PAGE_COUNT][WF_VISITOR_COUNT];

	alignas(64) struct wf_seqlock snap_lock;
	struct wf_snap_ref snap_cur;
	struct wf_snap_ref snap_prev;
	_Atomic uint64_t snap_cur_gen;
	_Atomic uint64_t snap_next_gen; /* writer weft-admin only (relaxed) */

	alignas(64) _Atomic uint32_t admin_pid;
	_Atomic uint32_t ingest_pid;
	_Atomic uint32_t ingest_epoch;
	_Atomic uint32_t ingest_ready;
	_Atomic uint32_t shutdown;
	_Atomic uint64_t next_lsn;

	alignas(64) struct wf_waiter ingest_wait;

	alignas(64) struct {
		_Atomic uint64_t connections;     /* open now */
		_Atomic uint64_t connections_total;
		_Atomic uint64_t commands;
		_Atomic uint64_t errors;
		_Atomic uint64_t events_acked;
		_Atomic uint64_t bytes_in, bytes_out;
		_Atomic uint64_t backpressure_stalls;
		_Atomic uint64_t recs_front;      /* RECS answered from a front table */
		_Atomic uint64_t journal_failed;  /* 0, or the errno of the journal's failed write
		                                   * (EVENTs get errors until it writes again) */
		_Atomic uint64_t journal_errors;  /* failed journal writes, flushes or rolls */
		_Atomic uint64_t timeouts;        /* connections closed by --idle/--request-timeout */
		_Atomic uint64_t segment_transitions; /* segment enters/exits made durable (notes.c) */
		_Atomic uint64_t exposures;       /* experiment exposures journaled (notes.c) */
		_Atomic uint64_t pubsub_clients;  /* connections subscribed now (pubsub.c) */
		_Atomic uint64_t pubsub_disconnects; /* subscribers closed at their output limit */
		_Atomic uint64_t redirects;       /* -MOVED replies: a shopper another box owns (cmd.c) */
	} ingest_stats;

	/* Definitions weft-admin keeps in files under DIR: a new value of a
	 * counter means "read that file again" (R12/A12, R13/A13 above). */
	alignas(64) _Atomic uint64_t segdefs_gen;
	_Atomic uint64_t experiments_gen;
	/* The running weft-ingest's first LSN: everything below it was in the
	 * journal before it started (R14/A14 above). */
	_Atomic uint64_t ingest_start_lsn;
	_Atomic uint32_t ingest_started;
};
_Static_assert(offsetof(struct wf_ctl, weights) == 4 && offsetof(struct wf_ctl, snap_lock) == 128 &&
		       offsetof(struct wf_ctl, snap_cur) == 136 && offsetof(struct wf_ctl, snap_cur_gen) == 2216 &&
		       offsetof(struct wf_ctl, admin_pid) == 2240 && offsetof(struct wf_ctl, shutdown) == 2256 &&
		       offsetof(struct wf_ctl, next_lsn) == 2264 && offsetof(struct wf_ctl, ingest_wait) == 2304 &&
		       offsetof(struct wf_ctl, ingest_stats) == 2368,
	       "control block layout: a change bumps WF_SHM_LAYOUT_VERSION");
_Static_assert(offsetof(struct wf_ctl, segdefs_gen) == 2560 && offsetof(struct wf_ctl, experiments_gen) == 2568 &&
		       offsetof(struct wf_ctl, ingest_start_lsn) == 2576 && offsetof(struct wf_ctl, ingest_started) == 2584,
	       "definition counters, ingest start");
_Static_assert(sizeof(struct wf_ctl) == 2624, "control block size");
_Static_assert(offsetof(struct wf_ctl, ingest_stats.timeouts) == 2456, "ingest stats layout");

/*
 * Per shard. Writer of every field: weft-ranker@N, unless noted.
 * Readers: weft-admin and weftctl (relaxed: display), weft-ingest (notes).
 */
struct wf_shard_ctl {
	_Atomic uint32_t ranker_pid;
	_Atomic uint32_t ranker_starts;   /* bumped on every (re)start */
	_Atomic uint64_t loaded_gen;      /* R4 release after a swap; A4 acquire in admin */
	_Atomic uint64_t failed_gen;      /* generation it could not load (R4/A4 as above) */
	_Atomic uint64_t heartbeat_ms;    /* wall clock of the last loop pass; R11 release, after
					   * the stats of earlier passes (A11 in test_ranker) */
	_Atomic uint32_t ready;           /* R5 release when serving; A5 acquire in admin */
	_Atomic uint32_t cpu;             /* core it is pinned to */
	/* The newest EVENT LSN a ranker of this shard took from the request
	 * ring, stored before applying it: every later one of the running
	 * weft-ingest is still in the ring (or will be). Relaxed store (before
	 * the tail's release R2 that gives it back); read relaxed by the next
	 * ranker of the shard at start, once the one before has exited. Kept
	 * across ranker restarts, zero in a new segment. */
	_Atomic uint64_t ring_lsn;

	/* Owner ranker sleeps here; waker weft-ingest after committing requests. */
	alignas(64) struct wf_waiter ranker_wait;

	alignas(64) struct {
		_Atomic uint64_t requests;
		_Atomic uint64_t events;
		_Atomic uint64_t recs;
		_Atomic uint64_t reranks;
		_Atomic uint64_t errors;
		_Atomic uint64_t sessions_live;
		_Atomic uint64_t session_bytes;  /* allocated in the session arena */
		_Atomic uint64_t snapshot_bytes; /* allocated in the generation arena */
		_Atomic uint64_t snapshot_users; /* users held in the generation arena */
		_Atomic uint64_t swaps;
		_Atomic uint64_t busy_ns;        /* time spent handling requests */
		/* Event-to-visible: from weft-ingest parsing an EVENT to this
		 * ranker having applied it (visible to the next RECS), ns. */
		_Atomic uint64_t visible_hist[WF_LAT_BUCKETS];
		_Atomic uint64_t memory_budget;    /* --memory-budget, bytes (set at start) */
		_Atomic uint64_t sessions_evicted; /* by the memory budget (not the idle TTL) */
		_Atomic uint64_t sessions_restored; /* evicted ones brought back from the spill store */
		_Atomic uint64_t spill_dropped;    /* evicted ones the spill store's disk budget dropped */
		_Atomic uint64_t checkpoint_lsn;   /* LSN the newest checkpoint covers (0: none) */
	} stats;

	/* Read-only after creation: offsets of this shard's rings and front table. */
	alignas(64) uint64_t req_ring_off;
	uint64_t rep_ring_off;
	uint64_t front_off;
};
_Static_assert(offsetof(struct wf_shard_ctl, loaded_gen) == 8 && offsetof(struct wf_shard_ctl, ready) == 32 &&
		       offsetof(struct wf_shard_ctl, ring_lsn) == 40 &&
		       offsetof(struct wf_shard_ctl, ranker_wait) == 64 && offsetof(struct wf_shard_ctl, stats) == 128 &&
		       offsetof(struct wf_shard_ctl, req_ring_off) == 1280 &&
		       offsetof(struct wf_shard_ctl, front_off) == 1296,
	       "shard block layout: waiter and stats each on their own lines");
_Static_assert(sizeof(struct wf_shard_ctl) == 1344 && WF_LAT_BUCKETS == 128, "shard block size");
_Static_assert(offsetof(struct wf_shard_ctl, stats.sessions_evicted) == 1248 &&
		       offsetof(struct wf_shard_ctl, stats.checkpoint_lsn) == 1272,
	       "shard stats: in the line before the offsets");

/*
 * Front table: RECS answers weft-ingest may give without a ring round trip.
 * Writer: weft-ranker@N (one per shard); reader: weft-ingest. Each entry is
 * under its own seqlock (fields copied with wf_seq_copy / wf_seq_store).
 *
 * The ranker publishes, after answering a RECS without EXPLAIN or SIZE,
 * the stock-free ranked prefix it filtered (its ranked-list cache) and
 * every input it depended on that ingest can check: the exact argument
 * bytes, the session's version as ingest stamped it in the request (bumped
 * by ingest on each EVENT it routes for that session), the ingest epoch,
 * the ranker's start count, the generation it served, the weights seqlock
 * count it read, and a deadline (half the ranker's session TTL, so a
 * session kept alive only by front answers still reaches its ranker). An
 * entry whose inputs all match answers exactly what the ranker would:
 * ingest filters the prefix by live stock the ranker's way and takes k,
 * or, when the prefix runs short, forwards the request.
 */
#define WF_FRONT_SLOTS 131072u /* 1,856 B each, 2-way sets: 232 MiB per shard, mapped in at start (wf_front_prefault) */
#define WF_FRONT_ITEMS 64u
#define WF_FRONT_ARGS 160u
#define WF_FRONT_DATA 1800u
#define WF_FRONT_REC 9u /* an item record's bytes before its id */

/*
 * Packed so that an answer reads one contiguous run from the entry's
 * start: the header, then data[] = the arguments (args_len bytes, each
 * argument one length byte and its bytes, see front.h), then the n item
 * records back to back, in rank order, each WF_FRONT_REC + id_len bytes:
 *   u64 (native order) the item's stock key (wf_stock_key, bit 0 always
 *       set) with bit 0 cleared when the snapshot marks it sold out,
 *   u8  id_len,
 *   the id's bytes.
 * A k = 20 answer with 7-byte ids reads ~9 consecutive lines (was ~11 in
 * six places). data_len: bytes of data[] used; the writer zeroes data up
 * to the next multiple of 4 (readers copy whole words).
 */
struct wf_front_entry {
	struct wf_seqlock lock;
	uint8_t args_len;               /* 0: empty */
	uint8_t n;                      /* item records */
	uint8_t complete;               /* the records are the whole pool */
	uint8_t pad0;
	uint64_t key;                   /* hash of args */
	uint64_t sver;                  /* session version (request's lsn field) */
	uint64_t gen;                   /* generation served (loaded_gen) */
	uint64_t until_ms;              /* wall clock: not used after */
	uint32_t epoch;                 /* ingest epoch of the request */
	uint32_t starts;                /* ranker_starts when computed */
	uint32_t wseq;                  /* ctl->weights_lock.seq read (even) */
	uint16_t data_len;              /* bytes of data[] used */
	uint16_t pad1;
	char data[WF_FRONT_DATA];       /* args, then the item records */
};
_Static_assert(sizeof(struct wf_front_entry) == 1856 && sizeof(struct wf_front_entry) % 64 == 0, "front entry");
_Static_assert(offsetof(struct wf_front_entry, data) == 56, "front entry header");
_Static_assert(WF_FRONT_DATA >= WF_FRONT_ARGS + WF_FRONT_ITEMS * WF_FRONT_REC + 1024, "front entry data");

/*
 * Quiet answers. A RECS whose session has no state in the ranker is
 * answered from the user alone, so the ranker also publishes it under a
 * key with an empty session argument ("quiet key", sver 0), which answers
 * the same user for any session with no state. weft-ingest may use it only
 * when it knows the session has none:
 *   - its route entry has had no EVENT routed since it was pinned
 *     (wf_route_hit.evented), and
 *   - every request it forwarded to the shard before its route table last
 *     forgot entries has been released by the ranker (ring tail, A2), so
 *     events of forgotten entries have been applied, and
 *   - the shard's live-session filter below is 0 for the session's hash.
 *
 * Live-session filter: live[(h >> 8) & mask] counts the ranker's sessions
 * whose wf_hash64(id) is h (the low bits are left out: ingest's route keys
 * force bit 0; saturating at 255, then never decremented). Writer:
 * weft-ranker@N (relaxed stores: single writer), incremented while
 * applying the event that creates the session, so before the ring release
 * (R2) that covers that event; reader weft-ingest, after A2. A starting
 * ranker bumps ranker_starts, then (release fence F5) zeroes the filter,
 * then replays the journal into it before it publishes anything; ingest
 * loads the filter, then (acquire fence F6) ranker_starts, and compares it
 * with the entry's: reading a zero written by a restart means reading the
 * bumped count, so the entry (of the earlier start) is refused.
 */
#define WF_FRONT_LIVE (1u << 20) /* counters per shard (1 MiB) */

struct wf_front {
	struct wf_front_entry e[WF_FRONT_SLOTS];
	_Atomic uint8_t live[WF_FRONT_LIVE];
};

/*
 * Size-level stock. One writer (weft-ingest, which receives STOCK), any
 * number of lock-free readers (rankers). Open addressing by item hash,
 * linear probing, never deleted (sold out is qty 0).
 *
 * Per slot: key is published last with a store-release (R6) after the
 * slot's other fields; readers load key with acquire (A6). nsizes is
 * published with release (R7) after the size entry it adds; readers load it
 * with acquire (A7). in_stock (count of sizes with qty > 0, or for a
 * size-less item qty > 0 ? 1 : 0) is updated after the qty it summarises
 * (relaxed both: each is a single word, and a reader may see either side of
 * one STOCK command, which is the same as having read a moment earlier or
 * later).
 */
#define WF_STOCK_SIZES 16u
#define WF_STOCK_SIZE_NAME 12u
_Static_assert(WF_STOCK_SIZE_NAME == WF_SIZE_NAME_MAX + 1, "a stock size name is a RECS SIZE name");

struct wf_stock_size {
	char name[WF_STOCK_SIZE_NAME]; /* NUL-padded; written before R7 */
	_Atomic int32_t qty;
};

struct wf_stock_slot {
	_Atomic uint64_t key;       /* wf_hash64(item id) | 1; 0 = empty slot */
	_Atomic uint32_t nsizes;    /* 0 = item tracked without sizes */
	_Atomic int32_t qty;        /* quantity of a size-less item */
	_Atomic uint32_t in_stock;  /* sizes with qty > 0 (size-less: 0 or 1) */
	uint32_t pad;
	struct wf_stock_size size[WF_STOCK_SIZES];
};
_Static_assert(sizeof(struct wf_stock_size) == 16, "stock size entry");
_Static_assert(offsetof(struct wf_stock_slot, key) == 0 && offsetof(struct wf_stock_slot, nsizes) == 8 &&
		       offsetof(struct wf_stock_slot, in_stock) == 16 && offsetof(struct wf_stock_slot, size) == 24,
	       "stock slot layout");
_Static_assert(sizeof(struct wf_stock_slot) == 24 + 16 * WF_STOCK_SIZES, "stock slot size");

struct wf_stock {
	uint32_t capacity;           /* slots, power of two; read-only */
	uint32_t mask;
	_Atomic uint32_t used;       /* slots in use, exact (never freed); writer weft-ingest; relaxed */
	_Atomic uint32_t full_drops; /* writer weft-ingest; relaxed (stats) */
	alignas(64) struct wf_stock_slot slot[];
};
_Static_assert(offsetof(struct wf_stock, slot) == 64, "stock header: one line");

/*
 * Request latency (issue 18): weft-ingest's histograms, one per series, in
 * the lathist.h buckets (ns), with an exact sum each.
 *
 * Command series: from the loop pass that received the request (its
 * pass clock, read once per pass) to the end of the pass that queued its
 * reply to the client's socket (the sends of a pass are submitted at its
 * end; one clock read per pass): what a client waits inside weft-ingest,
 * the ranker's time included, the network not (a request parsed after a
 * backpressure stall counts from the pass that parsed it).
 *   EVENT         an EVENT's reply (:1 once durable, or its error)
 *   RECS_FRONT    a RECS weft-ingest answered from a front table
 *   RECS          a RECS its ranker answered
 *   RERANK, HISTORY, SEGMENTS   answered by a ranker
 *   RANKER_OTHER  any other ranker command (SEGPREVIEW, ...)
 *   LOCAL         answered by weft-ingest alone (PING, INFO, STOCK, and the
 *                 errors of any command but EVENT found before forwarding)
 * Stage series (parts of the above, no requests of their own):
 *   FLUSH         a journal flush (its write and fdatasync) as weft-ingest
 *                 saw it, start to completion
 *   RING          a request ingest forwarded to a ranker: from forwarding
 *                 (t_recv_ns) to its ranker beginning the batch holding it
 *                 (the reply's t_done_ns): ring wait, the ranker's wake-up
 *                 and run-queue wait
 *
 * Writer: weft-ingest only (wf_lat_add_n: relaxed load and store, no
 * locked instruction). Readers: weftctl (metrics, top, latency),
 * weft-observe (--metrics-file), weft-ingest's INFO (relaxed: display).
 */
#define WF_LAT_EVENT 0u
#define WF_LAT_RECS_FRONT 1u
#define WF_LAT_RECS 2u
#define WF_LAT_RERANK 3u
#define WF_LAT_HISTORY 4u
#define WF_LAT_SEGMENTS 5u
#define WF_LAT_RANKER_OTHER 6u
#define WF_LAT_LOCAL 7u
#define WF_LAT_CMDS 8u          /* command series: 0 .. WF_LAT_CMDS - 1 */
#define WF_LAT_FLUSH 8u
#define WF_LAT_RING 9u
#define WF_LAT_SERIES 10u

struct wf_reqlat {
	_Atomic uint64_t hist[WF_LAT_SERIES][WF_LAT_BUCKETS];
	_Atomic uint64_t sum_ns[WF_LAT_SERIES];
	uint8_t pad[48];
};
_Static_assert(sizeof(struct wf_reqlat) == WF_LAT_SERIES * (WF_LAT_BUCKETS + 1) * 8 + 48 &&
		       sizeof(struct wf_reqlat) % 64 == 0,
	       "request latency region: a change bumps WF_SHM_LAYOUT_VERSION");

#endif
