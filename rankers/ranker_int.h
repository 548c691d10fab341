/*
 * ranker_int.h - weft-ranker internals, shared by ranker.c (process, loop,
 * snapshot generations, journal replay), sessions.c (sessions, their
 * history, EVENT), cache.c (a query's inputs, the ranked-list cache, front
 * publishing) and cmds.c (the client commands). Private to rankers/.
 */
#ifndef WF_RANKER_INT_H
#define WF_RANKER_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "lib/journal.h"
#include "lib/rank/rank.h"
#include "lib/resp.h"
#include "lib/seg/seg.h"
#include "lib/snapshot.h"
#include "lib/util.h"
#include "shm/msg.h"
#include "shm/shm.h"

#define RANKER_HISTORY_MAX 4096u   /* newest events kept per session (HISTORY); older ones are folded */
#define RANKER_HISTORY_BYTES (128u << 10) /* and at most this many bytes of it: HISTORY's reply
					   * (~2.3x at worst) fits a ring record, a session stays bounded */
#define RANKER_SESSION_TABLE (1u << 16) /* hash buckets (chained) */
#define RANKER_EVICT_STEP 64u          /* sessions examined per loop pass (idle) or per event (budget) */
#define RANKER_MEMORY_BUDGET (2048ull << 20) /* --memory-budget default: sessions and generation, bytes */
#define RANKER_SPILL_BUDGET (1024ull << 20) /* --spill-budget default: disk for evicted sessions */
#define RANKER_CKPT_INTERVAL_S 300u     /* --checkpoint-interval default, seconds */
#define RANKER_CACHE_SLOTS (1u << 16)   /* ranked-list cache entries per shard (2-way sets) */
#define RANKER_CACHE_DEPTH 64u          /* best items kept per entry, before the stock filter */

/* A snapshot generation as this shard holds it: the mapped file, and the
 * candidate lists of the users this shard owns, copied into the
 * generation's own jemalloc arena (freed with it in one call). */
struct ranker_owned {
	uint64_t key;                   /* wf_hash64(user id); 0 = empty slot */
	uint32_t user;                  /* snapshot user index */
	uint32_t ncands;
	struct wf_snap_cand *cands;     /* in the generation arena */
};

struct ranker_gen {
	uint64_t gen;
	struct wf_snap *snap;
	unsigned arena;                 /* jemalloc arena index */
	struct ranker_owned *owned;     /* open addressing, in the arena */
	uint32_t owned_mask;
	uint32_t nowned;
	uint64_t bytes;                 /* allocated in the arena */
	uint64_t *stock_keys;           /* wf_stock_key() of every item, in the arena */
	/* SEGPREVIEW's view of the owned users, in user order, in the arena
	 * (built with the generation by the loader, so no preview pays for
	 * it): pv_users[i] and its lifecycle pv_life[i] (a rule on the
	 * lifecycle alone scans those nowned bytes only). */
	struct ranker_seg_user *pv_users;
	uint8_t *pv_life;
	/* The previous generation's snapshot file (an experiment's `stale`
	 * arm, exps.c): the mapping of the generation this one replaced, or
	 * one the loader opened (struct ranker_prev); NULL until then. Read
	 * from the file only: no lists copied, no arena bytes. */
	struct wf_snap *prev;
	uint64_t prev_gen;
};

/* A previous generation's file the loader opened for the loop (prev_ready). */
struct ranker_prev {
	uint64_t gen;
	struct wf_snap *snap;
};

/* A session's segment state (segs.c), in the session arena: its place
 * in ctx->seg_heap (0: no deadline, else index + 1), then lib/seg's state
 * under ctx->segs (wf_seg_state_size bytes). */
struct ranker_seg {
	uint32_t heap_pos;
	uint32_t pad;
	struct wf_seg_state st;         /* followed by the rest of lib/seg's bytes */
};

/* A deadline: when, whose. */
struct ranker_seg_timer {
	uint64_t at;
	struct ranker_session *s;
};

/* A snapshot user of this shard as a preview reads it (segquery.c). */
struct ranker_seg_user {
	uint64_t key;                   /* as the owned table's: wf_hash64(id) | 1 */
	uint32_t user;                  /* snapshot user index */
	float ltv;
};

/* One session. Allocated in the session arena, sized to its id. */
struct ranker_session {
	struct ranker_session *next;    /* hash chain */
	/* Activity list (ctx->lru_*): most recently active at the head; the
	 * idle expiry and the memory budget take sessions from the tail. */
	struct ranker_session *lru_prev, *lru_next;
	uint64_t key;                   /* wf_hash64(session id) */
	uint64_t last_ms;               /* wall clock of the last event or query (TTL, lru order) */
	uint64_t last_event_ms;         /* wall clock of the last event (abandonment) */
	uint64_t snap_gen;              /* generation its item indexes refer to */
	uint64_t stamp;                 /* changes whenever model or user may have (cache key) */
	uint64_t lsn;                   /* journal LSN of the newest event applied (0: none known);
					 * an event at or below it is not applied again (replay,
					 * catch-up, a restored session) */
	char *user;                     /* user_len bytes + NUL, own allocation; NULL until known */
	/* History (HISTORY, and the rebuild after a swap): compact records
	 * appended, see hist_append() in sessions.c; NULL until the first event. */
	uint8_t *hist;
	uint64_t hist_last_ts;          /* ts of the newest record (records store deltas) */
	uint32_t hist_len, hist_cap;
	uint16_t hist_n;                /* <= RANKER_HISTORY_MAX */
	uint8_t id_len, user_len;       /* ids are at most WF_ID_MAX (128) bytes */
	uint32_t hist_folded;           /* events folded out of hist (saturates); the model has them */
	struct ranker_seg *seg;         /* segments (segs.c); NULL until an event a segment reads */
	struct wf_rank_session model;
	char id[];                      /* id_len bytes + NUL */
};

/*
 * One cached ranked list: the best RANKER_CACHE_DEPTH pool items of a RECS
 * without the stock filter (wf_rank_recs() with filter NULL), in rank
 * order, and every input that list depends on. The scoring library is
 * clock-free and deterministic, so the same inputs give the same list; a
 * RECS then filters this prefix by live stock at read time, which is
 * exactly what a fresh wf_rank_recs() with the filter returns as long as
 * the prefix yields k items (or holds the whole pool: `complete`).
 * Otherwise the query is computed fresh. Owner: the ranker loop.
 */
enum { RANKER_LIST, RANKER_GHOST, RANKER_TWICE };

struct ranker_cached {
	uint64_t stamp;                 /* session stamp; 0 = no session */
	uint64_t gen;                   /* snapshot generation; 0 = empty slot */
	const struct wf_snap_cand *cands; /* the user's batch list (identity) */
	int64_t user;                   /* snapshot user index, -1 unknown */
	int64_t anchor;                 /* ANCHOR item, -1 none */
	uint32_t w_batch_bits, w_session_bits; /* page x visitor weights as used */
	uint64_t used;                  /* ctx->cache_tick at the last use (LRU within a set) */
	uint64_t args_key;              /* front key of the last RECS it answered (0: none) */
	uint16_t n;                     /* items[] used */
	uint8_t complete;               /* n < RANKER_CACHE_DEPTH: the whole pool */
	/* RANKER_LIST; RANKER_GHOST: only the inputs are kept (n 0), of a
	 * query with session state seen once and answered fresh for its k,
	 * the list is ranked if it comes back; RANKER_TWICE: a list ranked
	 * for a ghost's return (seen twice: front_publish need not wait). */
	uint8_t state;
	uint32_t items[RANKER_CACHE_DEPTH];
};

struct ranker_ctx {
	const char *dir, *shm_name, *journal_dir;
	char journal_buf[WF_PATH_MAX];  /* DIR/journal when --journal is not given */
	uint32_t shard;
	int cpu;
	int recs_cache;                 /* --recs-cache */
	int spin_iters;                 /* --spin: idle pause loops before sleeping */
	uint64_t session_ttl_ms;

	struct wf_shm *shm;
	struct wf_shard_ctl *sc;
	struct wf_front *front;         /* this shard's front table (writer); NULL: --recs-cache 0 */
	struct wf_front *live;          /* the same table, for its live-session filter (writer, always) */
	struct wf_ring_cons req;
	struct wf_ring_prod rep;
	int signal_fd;
	int ingest_pidfd;               /* -1, or a pidfd of ingest_pidfd_pid: ranker_wake_ingest() by signal */
	uint32_t ingest_pidfd_pid;
	int signal_warned;              /* logged once that it could not */
	_Atomic int stop;               /* seq_cst: read by the loader thread too */

	struct wf_rank_params params;
	struct wf_rank_scratch *scratch;

	/* Generations: cur serves; the loader thread builds the next and
	 * publishes it in `ready` (RL1 release in the loader; AL1 acquire in
	 * the loop). */
	struct ranker_gen *cur;
	_Atomic(struct ranker_gen *) ready;
	_Atomic uint64_t want_gen;      /* loop -> loader: generation to build (RL2/AL2) */
	_Atomic int loader_busy;
	uint64_t failed_gen_seen;

	/* Sessions (session arena). */
	unsigned sess_arena;
	struct ranker_session **sessions;
	uint32_t nsessions;
	uint64_t session_bytes;
	uint64_t stamp_next;            /* last session stamp handed out */
	struct ranker_session *lru_head, *lru_tail; /* activity list, see struct ranker_session */
	/* --memory-budget: the session arena (table included) and the serving
	 * generation's arena together; past it the least recently active
	 * sessions go (see ranker_sessions_trim). */
	uint64_t memory_budget;
	uint64_t sessions_evicted;      /* by the budget (not the idle TTL) */
	int budget_warned;              /* logged once that eviction began */
	/* Evicted sessions on disk (spill.c): NULL when --spill-budget 0. */
	struct ranker_spill *spill;
	uint64_t spill_budget;          /* --spill-budget, bytes */
	uint64_t sessions_restored;     /* brought back from the spill store */
	/* Checkpoints (checkpoint.c): NULL when --checkpoint-interval 0. */
	struct ranker_ckpt *ckpt;
	uint64_t ckpt_interval_ms;
	const char *state_dir;          /* --state: spill files and checkpoints */
	char state_buf[WF_PATH_MAX];    /* DIR/rankers when --state is not given */
	/* Highest journal LSN of this shard's events seen (ring or journal):
	 * a checkpoint covers what is at or below it when it begins. */
	uint64_t applied_lsn;
	/* Newest EVENT LSN taken from the request ring (sc->ring_lsn when
	 * given back; starts from it, so it only grows). */
	uint64_t ring_lsn;
	uint32_t ingest_epoch;          /* ctl->ingest_epoch when the journal was last read */

	/* Ranked-list cache (NULL: --recs-cache 0); counters logged at exit. */
	struct ranker_cached *cache;
	uint64_t cache_hits, cache_fills, cache_short, cache_ghosts, cache_tick;

	/* Journal replay watermark: events with lsn <= this were replayed
	 * at start and are not applied again when they come through the ring. */
	uint64_t replayed_lsn;

	/* Per-query buffers (one query at a time, allocated at start). */
	struct wf_rank_explain *explain; /* WF_RANK_MAX_K */
	int64_t *rr_items;              /* WF_RANK_POOL: RERANK snapshot indexes */
	uint32_t *rr_pos;               /* WF_RANK_POOL */

	/* The request being handled: wf_hash64() of its first two arguments
	 * (session id; user id of a RECS, or of an EVENT when a segment rule
	 * reads user attributes), computed once when its batch was
	 * popped (for prefetching); session_find() and user_lookup() take them
	 * when their argument is that very id (the same bytes in the ring),
	 * instead of hashing it again. p NULL: none. ranker_lookahead(), run
	 * while the request before it is handled, resolves the user in
	 * generation g (user, cands, ncands), which user_lookup() then takes
	 * while g serves (a batch is served by one generation). */
	struct ranker_hint {
		const char *sess_p, *user_p;
		uint32_t sess_len, user_len;
		uint64_t sess_key, user_key;
		const struct ranker_gen *g;     /* NULL: user not resolved */
		int64_t user;
		const struct wf_snap_cand *cands;
		uint32_t ncands;
		int recs;                       /* a RECS (else an EVENT's user, for segs.c) */
	} hint;

	/* Segments (segs.c): the live set (DIR/segments.conf, else the
	 * built-in ones), the ctl->segdefs_gen it was loaded at, the bytes of
	 * a session's state under it, the sessions with a deadline (a binary
	 * heap by deadline), notes pushed (logged). seg_replaying: the
	 * journal replay runs, states are fed but nothing is announced. */
	struct wf_seg_set *segs;
	uint64_t segdefs_gen;
	size_t seg_size;                /* bytes of a struct ranker_seg */
	uint64_t seg_fp;                /* the set's names and versions, in order, hashed (segs.c) */
	struct ranker_seg_timer *seg_heap;
	uint32_t seg_heap_n, seg_heap_cap, seg_heap_warned;
	int seg_replaying;
	uint64_t seg_notes;
	/* Experiments (exps.c): the running ones, as of experiments_gen
	 * exp_gen (A13); the loader opens the previous generation's file
	 * for the stale arm (want_prev: loop -> loader, RL4/AL4; prev_ready:
	 * loader -> loop, RL5/AL5). */
	struct wf_exp_set *exps;
	uint64_t exp_gen;
	uint64_t exposures;             /* notes pushed (logged at exit) */
	uint64_t prev_asked;            /* cur->gen the previous file was asked for */
	_Atomic uint64_t want_prev;
	uint64_t prev_built;            /* the loader's own: want_prev it last acted on */
	_Atomic(struct ranker_prev *) prev_ready;

	struct wf_buf out;              /* reply being built */
	struct wf_msg_req_view *view;
	uint64_t last_expire_ms;
};

/* sessions.c */
int ranker_sessions_init(struct ranker_ctx *ctx);
void ranker_sessions_fini(struct ranker_ctx *ctx);
/* Housekeeping, bounded: forget at most RANKER_EVICT_STEP sessions idle
 * past the TTL (from the least recently active end, which is where they
 * are) and bring the session bytes under the budget by at most as many
 * more evictions. Never walks the table. Returns the sessions forgotten. */
uint32_t ranker_sessions_expire(struct ranker_ctx *ctx, uint64_t now_ms);
/* Bytes the sessions may use: the budget less the table and the serving
 * generation, at least a quarter of the budget (a generation that takes
 * more is warned about at its swap). */
uint64_t ranker_sessions_allowance(const struct ranker_ctx *ctx);
/* Mark s active now: the head of the activity list. */
void ranker_session_touch(struct ranker_ctx *ctx, struct ranker_session *s, uint64_t now_ms);
/* Apply an EVENT (args: session user type item [field value]...). Returns
 * 0, or -errno with a RESP error already written to out when out != NULL. */
int ranker_event(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, uint64_t ts_ms,
		 struct wf_buf *out);
/* Rebuild s's model if a generation swap happened since it was built (s
 * may be NULL). */
void ranker_session_fresh(struct ranker_ctx *ctx, struct ranker_session *s);
/* The current generation's index of item id, or -1 (unknown, no
 * snapshot, or "-"). */
int64_t ranker_item_index(struct ranker_ctx *ctx, const char *id, size_t len);
/* The id of live item code (lib/rank/rank.h WF_RANK_LIVE_BASE) of s's
 * model: the item of s's newest event whose wf_stock_key() is the
 * code's key, pointing into s's history (valid until its next event).
 * 0, or -ENOENT. */
int ranker_live_id(const struct ranker_session *s, uint32_t code, const char **ret_p, uint32_t *ret_len);

/* A walk over a session's history records (start zeroed). */
struct ranker_hist_cur {
	uint32_t off;
	uint64_t ts;
	const char *user;
	uint32_t user_len;
};

/* Decode the record at cur: ts and args laid out as the EVENT's after the
 * session id (user type item [f v]...). Returns 1, or 0 past the end. */
int ranker_hist_next(const struct ranker_session *s, struct ranker_hist_cur *cur, uint64_t *ret_ts,
		     struct wf_msg_arg *a, uint32_t *ret_argc);

/* ranker_hist_next for readers of the type and item only (SEGPREVIEW):
 * the type as recorded (enum wf_event_type), the item pointing into the
 * history; no user and no fields decoded. 1, or 0 past the end. */
int ranker_hist_scan(const struct ranker_session *s, struct ranker_hist_cur *cur, uint64_t *ret_ts, int *ret_type,
		     struct wf_msg_arg *ret_item);

/* wf_hash64() of a session id: the hint's when id is the request's own. */
static inline uint64_t ranker_session_key(const struct ranker_ctx *ctx, const struct wf_msg_arg *id)
{
	if (id->p == ctx->hint.sess_p && id->len == ctx->hint.sess_len)
		return ctx->hint.sess_key;
	return wf_hash64(id->p, id->len);
}

/* sessions.c: the session with key and id brought back from the spill
 * store into the table, or NULL (none there, or unreadable). */
struct ranker_session *ranker_session_restore(struct ranker_ctx *ctx, uint64_t key, const char *id, uint32_t len);

/* The session with this id, or NULL. One evicted to the spill store comes
 * back whole (history, user, model) before anything reads it. */
static inline struct ranker_session *ranker_session_find(struct ranker_ctx *ctx, const struct wf_msg_arg *id)
{
	uint64_t key = ranker_session_key(ctx, id);

	for (struct ranker_session *s = ctx->sessions[key & (RANKER_SESSION_TABLE - 1)]; s; s = s->next)
		if (s->key == key && s->id_len == id->len && memcmp(s->id, id->p, id->len) == 0)
			return s;
	return ctx->spill ? ranker_session_restore(ctx, key, id->p, id->len) : NULL;
}

/* Session records: a session's durable state (id, user, LSN, times,
 * history) as the spill store and checkpoints keep it. The model is not
 * stored: it is rebuilt from the history when the session is next used
 * (like after a generation swap). Layout in sessions.c. */
#define RANKER_REC_HDR 64u
/* Bytes of s's record (a multiple of 8). */
uint32_t ranker_session_rec_size(const struct ranker_ctx *ctx, const struct ranker_session *s);
/* Write s's record to out (ranker_session_rec_size bytes). */
void ranker_session_pack(const struct ranker_ctx *ctx, const struct ranker_session *s, uint8_t *out);
/* The record at p (n bytes available): its size, 0 if incomplete,
 * -EBADMSG if it is not a valid record; its key and id. */
int ranker_session_rec_check(const uint8_t *p, size_t n, uint64_t *ret_key, const char **ret_id,
			     uint32_t *ret_id_len);
/* Make the session of a checked record live (it must not be in the table):
 * in_spill: the spill store holds its key (the live-session filter counts
 * it already). *seg_exact: in, < 0 to rebuild the segment state from the
 * history when the record has none (ranker_segs_unpack's rebuild); out,
 * ranker_segs_unpack's result. The session, or NULL (no memory). */
struct ranker_session *ranker_session_unpack(struct ranker_ctx *ctx, const uint8_t *p, int in_spill,
					     int *seg_exact);
/* Apply an EVENT with its journal LSN (0: none); an event at or below the
 * session's LSN is acknowledged without being applied again. */
int ranker_event_lsn(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, uint64_t ts_ms,
		     uint64_t lsn, struct wf_buf *out);

/* spill.c: the store of evicted sessions, STATE/spill-<shard>-<seq>.wfs
 * (two files: new records go to the newer; past half the budget the older
 * is deleted, with the sessions only it held, counted as dropped). */
int ranker_spill_open(struct ranker_ctx *ctx);
void ranker_spill_close(struct ranker_ctx *ctx);
/* Write s's record (s is being evicted). 0, or -errno (not stored). */
int ranker_spill_put(struct ranker_ctx *ctx, const struct ranker_session *s);
/* The record of the session key, id (len bytes), checked, in a buffer
 * valid until the next call: 0 and *ret_p, -ENOENT or -errno. */
int ranker_spill_get(struct ranker_ctx *ctx, uint64_t key, const char *id, uint32_t len, const uint8_t **ret_p);
/* The store holds a record for key. */
int ranker_spill_has(const struct ranker_ctx *ctx, uint64_t key);
/* Bytes of memory the store's index takes (within the memory budget). */
uint64_t ranker_spill_index_bytes(const struct ranker_ctx *ctx);
/* Sessions dropped from the store by its disk budget. */
uint64_t ranker_spill_dropped(const struct ranker_ctx *ctx);

/* checkpoint.c */
/* Load the shard's checkpoint: 0 and the LSN it covers (*ret_lsn), -ENOENT
 * (none), or -errno (corrupt: nothing of it was kept, a full replay follows).
 * *ret_segs: 1 when every session's segment state was restored as it was
 * (its definitions are the live ones), so the SEGMENT records at or below
 * the LSN need not be read; 0: the states were rebuilt from the histories
 * and what was announced must be read from the journal's start. Call
 * during the replay (ranker_segs_replay_begin). */
int ranker_ckpt_load(struct ranker_ctx *ctx, uint64_t *ret_lsn, int *ret_segs);

/* replay.c: a restart's replay (checkpoint, then the journal after it),
 * and the catch-up after a new weft-ingest started (R14/A14). */
void ranker_replay_journal(struct ranker_ctx *ctx);
void ranker_catch_up(struct ranker_ctx *ctx);
/* One bounded step of the periodic checkpoint (from housekeeping): about
 * 64 KiB of sessions packed (a writer thread writes them). 1 when a checkpoint is being
 * written and has more to write, else 0. */
int ranker_ckpt_step(struct ranker_ctx *ctx, uint64_t now_ms);
void ranker_ckpt_fini(struct ranker_ctx *ctx);

/* cache.c */
/* The live stock filter of a query (wf_rank_query.filter). */
struct ranker_stock_filter {
	const struct wf_snap *snap;
	const uint64_t *keys;           /* wf_stock_key() per item (the generation's) */
	const struct wf_stock *stock;
	const struct wf_rank_session *sess; /* the query's (its live items' keys), or NULL */
	const char *size;
	size_t size_len;
};

/* Common part of RECS and RERANK: session, user, weights, filter. */
struct ranker_query {
	struct ranker_session *sess;
	struct wf_rank_query q;
	struct ranker_stock_filter f;
	int64_t user;
};

/* Set q up for the request argv (session user ...) on page: its session
 * (fresh), user and batch list, weights, the stock filter; anchor none. */
void ranker_query_setup(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, int page, struct ranker_query *q);
/* The snapshot user index of id in the current generation with its batch
 * list, or -1 (unknown, anonymous, no snapshot). */
int64_t ranker_user_lookup(struct ranker_ctx *ctx, const char *id, size_t len, const struct wf_snap_cand **ret_cands,
			   uint32_t *ret_n);
/* RECS of k through the ranked-list cache: the count written to out, or
 * -ENOENT when the caller must compute it fresh (see cache.c). *ret_c: the
 * entry answered from. */
int ranker_recs_cached(struct ranker_ctx *ctx, const struct ranker_query *e, uint32_t k, uint32_t *out,
		       const struct ranker_cached **ret_c);
/* Publish c, the list a RECS (hdr, argv; its session sess, NULL if none)
 * was answered from, in the shard's front table (see cache.c). */
void ranker_front_publish(struct ranker_ctx *ctx, const struct wf_msg_req *hdr, const struct wf_msg_arg *argv,
			  uint32_t argc, const struct ranker_cached *c, uint32_t wseq,
			  const struct ranker_session *sess);
/* For the request after the one being handled (its hint h): resolve its
 * user into h and, for a RECS, start loading the ranked-list cache sets it will
 * look in (with and without a session, no ANCHOR), so that those misses
 * overlap the current request's work. */
void ranker_lookahead(struct ranker_ctx *ctx, struct ranker_hint *h);

/* exps.c: experiments (issue 17) */
struct wf_exp;
/* What an experiment makes of one RECS/RERANK. */
struct ranker_pick {
	const struct wf_exp *e;         /* NULL: no running experiment on this page */
	int arm;                        /* -1: the unit is outside the experiment */
	int policy;                     /* enum wf_exp_policy of arm (WF_EXP_LIVE outside) */
	int by_session;                 /* an experiment on the page split this request by its session */
	uint32_t unit_len;
	char unit[2 + 128 + 1];         /* wf_exp_unit_of() */
};
/* Each loop pass and at start: reload DIR/experiments.conf when
 * experiments_gen moved (A13); ask the loader for the previous
 * generation's file and take it when ready. */
void ranker_exps_check(struct ranker_ctx *ctx);
/* Loader thread: open the previous generation's file when asked. */
void ranker_exps_loader_step(struct ranker_ctx *ctx);
void ranker_exps_fini(struct ranker_ctx *ctx);
/* The experiment of a request (argv: session user ...) on page, with the
 * query's session s (its user when argv's is "-"): pk filled. 1 if an
 * experiment runs on the page, else 0. */
int ranker_exp_pick(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, const struct ranker_session *s, int page,
		    struct ranker_pick *pk);
/* 1 if the answer to a request with pick pk may go to the front table:
 * no experiment on its page, or every one on it split the request by its
 * user and left it outside (ingest may then give the entry, quiet ones
 * too, only to requests of that user: outside as well). A unit in an arm
 * never: each of its answers is an exposure. */
static inline int ranker_exp_publishable(const struct ranker_pick *pk)
{
	return !pk->e || (pk->arm < 0 && !pk->by_session);
}
/* Apply pk's policy to the query e (weights; batch and stale: no session). */
void ranker_exp_apply(const struct ranker_pick *pk, struct ranker_query *e);
/* The stale arm's RECS: the previous generation's list for the query's
 * user (q's k, anchor id, size), stock-filtered; ids point into that
 * file. Returns the count, or -ENOENT when no previous generation is open
 * (the caller serves the unit normally and exposes nothing). */
int ranker_exp_stale_recs(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, int page, struct ranker_query *e,
			  const struct wf_arg *anchor, const char **ids, uint32_t *lens, struct wf_rank_explain *ex);
/* The stale arm's RERANK of argv[2..2+n): positions into pos, or -ENOENT. */
int ranker_exp_stale_rerank(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t n,
			    const struct ranker_query *e, uint32_t *pos);
/* Journal the exposure of a reply (before the reply: the note goes on
 * the reply ring first). n ids at ids/lens. */
void ranker_exp_expose(struct ranker_ctx *ctx, const struct ranker_pick *pk, const struct wf_msg_req *hdr,
		       const struct wf_msg_arg *argv, int page, uint32_t n, const char *const *ids, const uint32_t *lens);

/* ranker.c: push a note on the reply ring (waits while it is full, as a
 * reply does). 0, or -ECANCELED when stopping. */
int ranker_push_note(struct ranker_ctx *ctx, const struct wf_msg_note *hdr, uint32_t argc, const struct wf_arg *argv);

/* cmds.c */
/* Handle one request; writes its RESP reply to ctx->out. */
void ranker_handle(struct ranker_ctx *ctx, const struct wf_msg_req_view *v);

/* segs.c (issue 16; docs/SEGMENTS.md) */
/* Load the definitions (DIR/segments.conf, else the built-in ones):
 * before the journal replay. 0 or -errno. */
int ranker_segs_init(struct ranker_ctx *ctx);
void ranker_segs_fini(struct ranker_ctx *ctx);
/* Each loop pass: a new ctl->segdefs_gen reloads the definitions and
 * moves every session onto them (exits for dropped or redefined
 * segments, enters for new ones). */
void ranker_segs_check(struct ranker_ctx *ctx);
/* Before an EVENT at ts_ms is applied to s: s's deadlines before it fire
 * (with the cart and model as they were). */
void ranker_segs_before(struct ranker_ctx *ctx, struct ranker_session *s, uint64_t ts_ms);
/* After an EVENT (argv as its) was applied to s at ts_ms: the event is
 * evaluated; transitions become notes on the reply ring. Nothing when no
 * segment reads the event's type. */
void ranker_segs_event(struct ranker_ctx *ctx, struct ranker_session *s, int type, const struct wf_msg_arg *argv,
		       uint32_t argc, uint64_t ts_ms);
/* s is being forgotten (reason: "expired", "evicted"): exits for the
 * segments it was announced in, its state freed, its timer gone. */
void ranker_segs_forget(struct ranker_ctx *ctx, struct ranker_session *s, const char *reason);
/* s leaves every segment it was announced in (exits pushed, membership
 * cleared, sequences advanced; nothing during a replay), its state kept:
 * what an evicted session's spill record holds. */
void ranker_segs_leave(struct ranker_ctx *ctx, struct ranker_session *s, const char *reason);
/* A session record's segment part (sessions.c places it after the
 * header): u64 the set's hash (ctx->seg_fp), u32 state bytes, u32 seqs,
 * the state (lib/seg's bytes, as they are; left out, state bytes 0, when
 * the part would pass RANKER_SEG_REC_MAX), then for each segment with a
 * sequence number u32 hash of (name, version) and u32 seq, padded to 8.
 * Its bytes for s (0: s has no segment state). */
#define RANKER_SEG_REC_MAX 32768u
uint32_t ranker_segs_rec_size(const struct ranker_ctx *ctx, const struct ranker_session *s);
void ranker_segs_pack(const struct ranker_ctx *ctx, const struct ranker_session *s, uint8_t *out);
/* Give s (unpacked, its history in place) the segment state of a record's
 * part p (len bytes; 0: none): the state as it was when the hash matches
 * the live set; otherwise rebuilt from s's history (as a definition reload
 * does) with the sequence of each segment whose name and version stay, and
 * in no segment (a replay from the journal's start restores what was
 * announced). rebuild: rebuild from the history also when len is 0 (a
 * record of a checkpoint without segment state). Returns 1 when the state
 * was restored as it was (or there was none to restore), 0 otherwise. */
int ranker_segs_unpack(struct ranker_ctx *ctx, struct ranker_session *s, const uint8_t *p, uint32_t len, int rebuild);
/* The checkpoint's list of the set (its SEGDEFS section: u64 hash, u32
 * count, u32 0, then per segment u64 version, u32 name length, the name,
 * padded to 8): its bytes, and writing it (to out, that many bytes). */
size_t ranker_segs_defs_size(const struct ranker_ctx *ctx);
void ranker_segs_defs_pack(const struct ranker_ctx *ctx, uint8_t *out);
/* 1 when a SEGDEFS body (len bytes) is the live set's list. */
int ranker_segs_defs_match(const struct ranker_ctx *ctx, const uint8_t *p, uint64_t len);
/* Fire the deadlines at or before now_ms (at most 256, each at its own
 * time), publishing their notes. Returns how many fired. */
uint32_t ranker_segs_timers(struct ranker_ctx *ctx, uint64_t now_ms);
/* The earliest deadline (wall ms), or WF_SEG_NEVER. */
uint64_t ranker_segs_next(const struct ranker_ctx *ctx);
/* Replay: begin (waits, bounded, for the previous process's notes to
 * leave the reply ring), a WF_JREC_SEGMENT record of this shard, end
 * (every session evaluated, what differs from the journal announced). */
void ranker_segs_replay_begin(struct ranker_ctx *ctx);
void ranker_segs_replay_record(struct ranker_ctx *ctx, const struct wf_journal_rec *rec);
void ranker_segs_replay_end(struct ranker_ctx *ctx);
/* segs.c, for segquery.c: what the rules read besides events (the
 * session's cart and pivot, the user's attributes: id when not NULL, else
 * the user s logged in as), and a session's history fed into a state. */
void ranker_seg_inputs(struct ranker_ctx *ctx, const struct ranker_session *s, const char *id, size_t len,
		       uint32_t uses, struct wf_seg_inputs *ret);
/* The snapshot attributes of item index it (-1: none, nothing set) into
 * ev's category, brand and price. */
void ranker_seg_item_attrs(const struct ranker_ctx *ctx, int64_t it, struct wf_seg_event *ev);
void ranker_seg_from_history(struct ranker_ctx *ctx, const struct wf_seg_set *set, const struct ranker_session *s,
			     struct wf_seg_state *st);
/* The segments session s (may be NULL) of user is in now (bit i: the
 * set's segment i). */
uint64_t ranker_segs_now(struct ranker_ctx *ctx, struct ranker_session *s, const struct wf_msg_arg *user);
/* SEGPREVIEW rule: writes the reply to out. */
void ranker_cmd_segpreview(struct ranker_ctx *ctx, const struct wf_msg_arg *argv, uint32_t argc, struct wf_buf *out);

/* ranker.c: for a producer of the reply ring that found it full: publish
 * what is pushed, wake ingest, wait a moment. 0, or -ECANCELED when the
 * ranker is asked to stop. */
int ranker_reply_wait(struct ranker_ctx *ctx);
/* Ring ingest's doorbell if it sleeps. */
void ranker_wake_ingest(struct ranker_ctx *ctx);

/* sessions.c: allocation in a jemalloc arena, without the thread cache. */
void *ranker_alloc(unsigned arena, size_t n);
void ranker_free(void *p);

/* Snapshot generations (gens.c). */
int ranker_arena_create(unsigned *ret);
void ranker_gen_free(struct ranker_gen *g);
void *ranker_loader_main(void *arg);
void ranker_check_generation(struct ranker_ctx *ctx);
void ranker_take_generation(struct ranker_ctx *ctx);
void ranker_first_generation(struct ranker_ctx *ctx);

#endif
