/*
 * ingest.h - weft-ingest internals: the context, connections, reply
 * slots and per-shard state. Private to ingest/.
 */
#ifndef WF_INGEST_H
#define WF_INGEST_H

#include <liburing.h>
#include <stdint.h>

#include "lib/journal.h"
#include "lib/part.h"
#include "lib/proto.h"
#include "lib/resp.h"
#include "lib/util.h"
#include "shm/msg.h"
#include "shm/shm.h"

#define INGEST_BUF_SIZE (16u * 1024)     /* provided receive buffer */
#define INGEST_BUF_COUNT 512u            /* provided buffers (power of two) */
#define INGEST_BGID 1
#define INGEST_MAX_PENDING 4096u         /* replies owed to one connection */
#define INGEST_MAX_INPUT (WF_RESP_MAX_BULK + (1u << 20))
#define INGEST_MAX_OUTPUT (8u << 20)     /* stop reading a client that does not read */

#define WEFT_VERSION "0.1.0"
#define INGEST_IDLE_TIMEOUT_S 300u    /* --idle-timeout default */
#define INGEST_IORING_OP_FUTEX_WAIT 51 /* Linux 6.7; liburing 2.3 has no name for it */
#define INGEST_FUTEX2_SIZE_U32 0x02u   /* futex2 flags: 32-bit word, shared (not private) */
#define INGEST_REQUEST_TIMEOUT_S 10u  /* --request-timeout default */
/* An EVENT the journal could not store (commit.c, shard.c). */
#define INGEST_ERR_JOURNAL "-ERR the journal cannot write (disk full or failing): event not stored, retry later\r\n"
#define INGEST_SLOT_INLINE 24u
#define INGEST_ACK_HOLD_MAX 1024u /* EVENT acks held for the reply a ranker owes after them (conn.c) */
#define INGEST_ACK_HOLD_NS 50000000ull /* and for at most this long (a ranking takes microseconds; a loaded box, ms) */

/*
 * The session table (shard.c): which shard a session lives on.
 *
 * A session is pinned at its first request: to the shard of its user when
 * the user is known then, else to the shard of the session id. Until an
 * EVENT is routed for it, a request naming a user moves it to that user's
 * shard (it has no context yet, and that shard holds the user's list in
 * its arena; the others read it from the mapped snapshot file); from its first EVENT on, every request of the session goes to its
 * shard, so a shopper who logs in halfway keeps their context. Entries
 * idle longer than the TTL are forgotten.
 *
 * Two generations of open-addressing tables: lookups check the current
 * and then the previous one (moving a hit forward); every TTL/2 (or when
 * the current one fills) the previous generation is dropped whole, by
 * numbering the generations: an entry another generation wrote reads as
 * empty, so the dropped table is reused as it is (a memset of 200 MB
 * stalled every client for 20-40 ms; it is done only when the 16-bit
 * number wraps, every 65,536 rotations). So there is no per-entry deletion, memory is bounded by 2 x max_entries, and an
 * entry is kept between TTL/2 and TTL after its last use, and an entry found
 * idle for more than the TTL counts as absent. Sessions are keyed
 * by a 64-bit hash of their id (a collision among millions of live
 * sessions has odds below one in a million; its effect would be one
 * session routed by the other's pin).
 */

struct wf_route_entry {
	uint64_t key;    /* wf_hash64(session id) | 1; 0 = empty */
	uint8_t shard;   /* < WF_SHM_MAX_SHARDS */
	uint8_t flags;   /* WF_ROUTE_EVENTED, WF_ROUTE_ASKED */
	uint16_t gen;    /* the generation that wrote it: any other reads as empty */
	uint32_t last_s; /* wall-clock seconds of the last use */
	uint64_t ver;    /* version: new on creation and on every EVENT (front table) */
};

/* An EVENT was routed for the session since it was pinned (or it came
 * from the journal). */
#define WF_ROUTE_EVENTED 1u
/* A request other than an EVENT was routed for it at its current version:
 * until then no front entry can hold that version (a ranker publishes one
 * only in answer to a RECS stamped with it), so a lookup would miss. */
#define WF_ROUTE_ASKED 2u

struct wf_route {
	struct wf_route_entry *cur, *prev;
	uint32_t mask;        /* slots - 1 per generation */
	uint32_t ncur, nprev;
	uint32_t max_entries; /* per generation: rotate when reached */
	uint16_t gen;         /* cur's; prev's is gen - 1 */
	uint32_t nshards;
	uint64_t ttl_ms;
	uint64_t rotated_ms;
	uint64_t ver_next;    /* last version handed out (never reused) */
	uint64_t forgets;     /* times entries were forgotten (a generation dropped, an idle one re-pinned) */
};

/* What wf_route_lookup() found out about a session besides its shard. */
struct wf_route_hit {
	uint64_t key; /* wf_hash64(session id) | 1, as the table keys it */
	uint64_t ver; /* changes whenever the session is pinned afresh and on every EVENT routed */
	int pinned;   /* 1: this call pinned it afresh (nothing was published for ver yet) */
	/* 0: no EVENT was routed for the session since this entry was pinned
	 * (and it was not rebuilt from the journal). Entries forgotten before
	 * (r->forgets moved) may have had events: the caller must know those
	 * have reached their ranker before treating the session as quiet. */
	int evented;
	/* 1: a request other than an EVENT was routed for the session at
	 * ver before this one (WF_ROUTE_ASKED); 0: a front entry of the
	 * session's own key cannot hold ver yet. */
	int asked;
};

/* max_entries per generation (rounded up to a power of two / 2). 0 or -ENOMEM. */
int wf_route_init(struct wf_route *r, uint32_t nshards, uint32_t max_entries, uint64_t ttl_ms, uint64_t now_ms);
void wf_route_fini(struct wf_route *r);

/* The shard of session (pinning it now if new); user may be NULL or "-". */
uint32_t wf_route_shard(struct wf_route *r, const char *session, size_t slen, const char *user, size_t ulen,
			uint64_t now_ms);

/* The same, and what *hit says (see struct wf_route_hit); event=1 for an
 * EVENT being routed, so equal versions mean no event in between; any
 * other request marks the version asked. */
uint32_t wf_route_lookup(struct wf_route *r, const char *session, size_t slen, const char *user, size_t ulen,
			 uint64_t now_ms, int event, struct wf_route_hit *hit);

/* Pin a session to a shard (rebuilding the table from the journal): it
 * counts as evented. */
void wf_route_pin(struct wf_route *r, const char *session, size_t slen, uint32_t shard, uint64_t now_ms);

/* Sessions remembered now (both generations). */
uint64_t wf_route_count(const struct wf_route *r);

/* A reply owed to a client, in request order. */
struct ingest_slot {
	uint8_t ready;      /* reply bytes present */
	uint8_t close;      /* close the connection after this reply */
	uint8_t lat_series; /* latency.c: its wf_reqlat series + 1 (0: not measured) */
	uint64_t lat_t0;    /* latency.c: the pass clock when its request came */
	uint8_t note_held;  /* a ranker's reply held for a note's durability (notes.c),
	                     * not an EVENT's ack: a failed journal answers it apart */
	uint64_t wait_lsn;  /* an EVENT's LSN (0 otherwise): sent once the journal is durable to here */
	char *data;         /* malloc'd reply, or NULL when it fits inl */
	uint32_t len;
	char inl[INGEST_SLOT_INLINE];
};

struct ingest_conn {
	int fd;
	uint32_t idx;        /* position in ctx->conns */
	uint32_t gen;        /* bumps on reuse of idx: stale completions are ignored */
	struct wf_buf in;    /* received, not yet parsed */
	struct wf_buf out;   /* replies gathered while a send is in flight */
	struct wf_buf sendbuf; /* being sent (never reallocated while in flight) */
	uint8_t recv_armed, send_armed, closing, dead;
	uint8_t recv_cancel; /* a cancel of the armed (multishot) recv is in flight */
	uint8_t stalled;     /* a shard ring was full: parse again later */
	uint8_t last_queued; /* a reply that closes the connection is queued (QUIT,
	                      * protocol error): parse nothing after it */
	uint8_t dirty;       /* on ctx->dirty: has output or input to look at */
	uint8_t out_acks;    /* out holds EVENT acks only (meaningful while out.len > 0) */
	uint64_t ack_hold_ns; /* conn.c ack_hold(): the pass clock when out's hold began; 0: none */
	uint8_t kafka;       /* sent an EVENT with the field kafka (weft-kafka's): counted in kafka_conns */
	uint64_t active_ns;  /* pass time of its last byte received or sent (idle timeout) */
	uint64_t partial_ns; /* pass time its unfinished request began, 0: none (request timeout) */
	/* Reply slots: absolute sequence numbers head..tail, ring of cap. */
	struct ingest_slot *slots;
	uint32_t cap;
	uint64_t head, tail;
	struct ingest_sub *sub; /* pubsub.c: its subscriptions, NULL when it has none */
};

/* A request a ranker owes us. */
struct ingest_pending {
	uint32_t conn_idx, conn_gen;
	uint64_t slot;       /* absolute slot number in that connection */
	uint32_t seq;
	struct ingest_fan *fan; /* fan.c: one of a request asked of every shard, else NULL */
};

/* An EVENT reserved in a shard's request ring and held back from the
 * ranker until the journal holds it: ring positions [from, to). */
struct ingest_held {
	uint64_t lsn;
	uint32_t from, to;
};

struct ingest_jwait {
	uint32_t conn_idx, conn_gen;
	uint64_t lsn;
};

struct ingest_shard {
	struct wf_ring_prod req;
	struct wf_ring_cons rep;
	struct wf_shard_ctl *sc;
	struct wf_front *front;       /* the ranker's answers ingest may give (reader) */
	/* Quiet answers (layout.h): the request ring's position when the
	 * route table had forgotten entries quiet_rot - 1 times (0: never
	 * taken); sessions are quiet only once the ranker released it. */
	uint64_t quiet_rot;
	uint32_t quiet_mark;
	int quiet_released;           /* the ranker has released quiet_mark */
	uint32_t next_seq;
	int dirty;           /* requests reserved, not yet committed */
	int unwoken;         /* committed since wake_rankers() last looked */
	int pass_checked;    /* this pass already looked whether the ranker sleeps */
	uint64_t unwoken_ns; /* when the first of those was forwarded */
	/* EVENTs not yet durable, in LSN order (free-running indexes,
	 * capacity a power of two): the ring is committed only up to the
	 * first one's start, so nothing reaches the ranker before the
	 * journal holds it, and what follows it waits with it (FIFO). */
	struct ingest_held *held;
	uint64_t held_head, held_tail, held_cap;
	uint64_t note_lsn;            /* notes.c: the LSN of the last note this ring
	                               * brought; a reply after it waits for it */
	struct ingest_pending *fifo;  /* ring of fifo_cap */
	uint32_t fifo_cap;
	uint64_t fifo_head, fifo_tail;
};

/*
 * Group commit (commit.c): the journal's flushes in flight and the
 * connections waiting for them. Only commit.c writes it; conn.c and
 * shard.c read `failed`.
 */
struct ingest_group_commit {
	uint32_t flights;  /* --journal-flights (0: the journal's default) */
	uint32_t inflight; /* flushes under way (their fdatasyncs in the ring) */
	int failed;        /* the journal cannot write: EVENTs get errors until
	                    * ingest_journal_retry() resets it (commit.c) */
	/* Connections with an EVENT reply waiting for the journal, in LSN
	 * order (free-running indexes, capacity a power of two). */
	struct ingest_jwait *jwait;
	uint64_t jwait_head, jwait_tail, jwait_cap;
	/* Sizing (ingest_journal_kick()): events appended since the last
	 * flush began and when the first of them came; the recent largest
	 * group (decays 1/8 per flush); the flush time, smoothed (ns); the
	 * flushes in flight, by the journal's id % WF_JOURNAL_FLIGHTS_MAX. */
	uint32_t pending_n, group_max;
	uint64_t pending_ns, flush_ns;
	struct ingest_jflush {
		uint64_t id;     /* the journal's */
		int64_t written; /* bytes its write wrote, or -errno */
		uint32_t n;      /* events */
		uint64_t t0;     /* when it began */
	} jflush[WF_JOURNAL_FLIGHTS_MAX];
	uint64_t flushes, flushed_events; /* totals, logged at exit */
};

/* Request latency (latency.c): replies queued this pass, by series and
 * start; recorded in the segment's wf_reqlat at the pass end with one
 * clock read (or earlier when the list is full). */
#define INGEST_LAT_PENDING 512u
#define INGEST_LAT_NONE UINT32_MAX /* series of a reply that answers no request (a push): not timed */
struct ingest_lat {
	uint32_t series;       /* of a reply ingest_reply_local() queues now
	                        * (ingest_dispatch, front_recs set it; INGEST_LAT_NONE) */
	uint32_t n;
	uint64_t t0[INGEST_LAT_PENDING];
	uint8_t ser[INGEST_LAT_PENDING];
};

struct ingest_ctx {
	const char *dir, *shm_name, *sock_path, *journal_dir;
	const char *socket_group;
	char sock_buf[WF_PATH_MAX], journal_buf[WF_PATH_MAX]; /* default paths under dir */
	uint32_t max_clients;
	uint32_t socket_mode;      /* --socket-mode (default 0660) */
	uint64_t idle_ns;          /* --idle-timeout: close a connection quiet this long (0: never) */
	uint64_t request_ns;       /* --request-timeout: close one whose request stays unfinished this long */
	uint64_t pass_ns;          /* CLOCK_MONOTONIC at the start of the loop pass */
	uint64_t sweep_ns;         /* loop.c sweep_timeouts(): last sweep */
	uint64_t notes_retry_ns;   /* loop.c: the journal last tried again for notes */
	uint32_t sweep_next;       /* and the connection it goes on from */
	int durability;
	uint64_t route_ttl_ms;
	uint32_t route_sessions; /* --sessions: the routing table's entries per generation */
	uint64_t pubsub_limit[3];  /* --pubsub-limit: hard, soft (bytes), soft seconds */
	uint32_t triggers_recent;  /* --triggers-recent: transitions TRIGGERS finds in memory */

	struct wf_shm *shm;
	uint32_t nshards, epoch;
	struct ingest_shard *shards;
	struct wf_route route;
	struct wf_journal *journal;
	struct ingest_group_commit gc; /* commit.c */

	struct io_uring ring;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	int listen_fd, signal_fd;
	uint8_t sig_buf[128];
	int futex_ok;              /* the ring can wait on ctl->ingest_wait (main.c probe_futex()) */
	int accept_armed, bell_armed, sig_armed; /* bell: that futex wait */
	uint64_t accept_resume_ns;  /* accept paused (out of descriptors) until then; 0: not */
	struct wf_ratelimit accept_warns; /* "accept failed" warnings (loop.c accept_failed()) */
	int stopping;
	int sqe_short;             /* an operation found no SQE: look at every connection next pass */

	struct ingest_conn **conns;
	uint32_t nconns_cap, nconns;
	uint32_t kafka_conns;      /* open connections with kafka=1 (INFO: weft-kafka waits for 0 after a restart) */
	uint32_t *free_idx;
	uint32_t nfree;

	uint32_t any_stalled;      /* some connection may have stalled=1 */
	uint64_t ack_hold_next;    /* conn.c: when the earliest held acks are due out (pass clock); 0: none held */
	uint32_t *dirty;           /* connections to look at this pass */
	uint32_t ndirty;
	struct wf_resp_req *req;   /* parse scratch */
	struct wf_buf tmp;         /* reply scratch */
	uint64_t start_ms;
	uint64_t commands;
	struct wf_front_stock *front_stock; /* cmd.c: item-level stock states, for front answers */
	uint64_t recs_front;       /* RECS answered from a front table */
	uint64_t recs_quiet;       /* of those, quiet answers (a session without state) */
	struct wf_part_map part;   /* --kafka-partitions/--kafka-peers (n 0: off); cmd.c redirects */
	uint64_t fwd_ns;           /* when the last request was forwarded (CLOCK_MONOTONIC) */
	struct ingest_lat lat;     /* latency.c */
	struct wf_msg_note_view *note_view; /* shard.c: decode scratch */
	struct ingest_notes *notes; /* notes.c: journaled notes, transitions, TRIGGERS */
	struct ingest_pubsub *pubsub; /* pubsub.c: subscribed connections, output limits */
};

/* io_uring user data: the operation, a connection index and generation
 * (or a journal flight slot). */
enum { INGEST_OP_ACCEPT = 1, INGEST_OP_RECV, INGEST_OP_SEND, INGEST_OP_BELL, INGEST_OP_SIGNAL,
       INGEST_OP_JSYNC, INGEST_OP_CANCEL };

static inline uint64_t ingest_ud(int op, uint32_t idx, uint32_t gen)
{
	return ((uint64_t)op << 56) | ((uint64_t)(idx & 0xffffff) << 32) | gen;
}

/* loop.c */
/* A free submission entry, submitting what is queued if the SQ is full;
 * NULL when even then there is none (the submit failed): the caller
 * leaves its operation for a later pass (ctx->sqe_short says so). */
struct io_uring_sqe *ingest_get_sqe(struct ingest_ctx *ctx);
void ingest_run(struct ingest_ctx *ctx);

/* conn.c: connections and their reply slots */
void ingest_mark_dirty(struct ingest_ctx *ctx, struct ingest_conn *c);
/* A connection for fd from the free list; NULL at --max-clients or out of memory. */
struct ingest_conn *ingest_conn_new(struct ingest_ctx *ctx, int fd);
/* Shut it down; freed once nothing of ours is in flight on it. */
void ingest_conn_kill(struct ingest_ctx *ctx, struct ingest_conn *c);
/* Parse and execute what c sent, until it stalls or must close. */
void ingest_conn_parse(struct ingest_ctx *ctx, struct ingest_conn *c);
/* Move every reply that may go now, in order, to c's output buffer. */
void ingest_conn_drain(struct ingest_ctx *ctx, struct ingest_conn *c);
/* A new reply slot at c's tail (zeroed), or NULL (out of memory). */
struct ingest_slot *ingest_slot_new(struct ingest_conn *c);
/* Copy a reply into sl and make it ready. 0, or -ENOMEM (sl unchanged;
 * a reply of at most INGEST_SLOT_INLINE bytes cannot fail). */
int ingest_slot_fill(struct ingest_slot *sl, const char *data, size_t len);
/* Slot number slot of c gets its reply: data, or when that cannot be
 * copied (out of memory) an error reply, so the slot always becomes
 * ready and the connection never waits for it forever. Then drains c. */
void ingest_slot_answer(struct ingest_ctx *ctx, struct ingest_conn *c, uint64_t slot, const char *data, size_t len);
/* May c be read now (not stalled, owing or holding too much, closing)? */
int ingest_recv_allowed(const struct ingest_ctx *ctx, const struct ingest_conn *c);
void ingest_arm_recv(struct ingest_ctx *ctx, struct ingest_conn *c);
void ingest_recv_stop(struct ingest_ctx *ctx, struct ingest_conn *c);
void ingest_arm_send(struct ingest_ctx *ctx, struct ingest_conn *c);
/* Connections whose EVENT acks were held (ack_hold()) for INGEST_ACK_HOLD_NS
 * marked dirty, so this pass's service_dirty() sends them; once per pass,
 * before it. ctx->ack_hold_next: when to look again (the loop sleeps no
 * longer). */
void ingest_acks_due(struct ingest_ctx *ctx);
/* Queue a reply produced here (in order with the connection's others). */
int ingest_reply_local(struct ingest_ctx *ctx, struct ingest_conn *c, const char *data, size_t len, int close);

/* shard.c: requests to the rankers, their replies, waking them */
/* Send a validated ranker command to shard; ver: the session's version
 * (the route table's), which a RECS carries for the front table. 0,
 * -EAGAIN (ring full or too many replies owed: the caller stalls the
 * connection), -ENOMEM. */
int ingest_forward(struct ingest_ctx *ctx, struct ingest_conn *c, uint32_t shard, int cmd,
		   const struct wf_resp_req *r, uint64_t ver,
		   const struct wf_msg_recs *recs);
/* The connection a pending request came from, if it is still there and
 * still owes that slot; NULL when the client went away. */
struct ingest_conn *ingest_pending_conn(struct ingest_ctx *ctx, const struct ingest_pending *pd);
/* Replies from every shard's reply ring into their slots; how many. */
int ingest_poll_replies(struct ingest_ctx *ctx);
/* Room for one more held EVENT in shard's FIFO: 0 or -ENOMEM. */
int ingest_held_reserve(struct ingest_shard *sh);
/* The journal is durable up to durable: EVENTs held to there may go; with
 * failed, every held EVENT is voided instead (the ranker skips it). */
void ingest_held_release(struct ingest_ctx *ctx, uint64_t durable, int failed);
/* Publish the requests reserved so far, up to the first held EVENT; wake
 * policy in shard.c. */
void ingest_shards_commit(struct ingest_ctx *ctx);
/* Once per pass: wake rankers that sleep with requests committed. */
void ingest_wake_rankers(struct ingest_ctx *ctx);
/* A reply waits on some ring / some ranker owes a reply. */
int ingest_rings_readable(struct ingest_ctx *ctx);
int ingest_owed(const struct ingest_ctx *ctx);

/* commit.c: the journal's group commit */
/* Append an EVENT forwarded to shard as LSN lsn (received at now_ns). */
void ingest_journal_append(struct ingest_ctx *ctx, uint32_t shard, uint32_t argc, const char *const *argv,
			   const uint32_t *argl, uint64_t lsn, uint64_t now_ns);
/* The journal failed: try to write again (once no flush is in flight,
 * wf_journal_reset()). 0 when EVENTs may be appended again, else -errno. */
int ingest_journal_retry(struct ingest_ctx *ctx);
/* c has an EVENT reply waiting for lsn to be durable. 0 or -ENOMEM. */
int ingest_journal_wait(struct ingest_ctx *ctx, struct ingest_conn *c, uint64_t lsn);
/* Start the next flush when due. The ns until it is (0: started, or nothing to do). */
uint64_t ingest_journal_kick(struct ingest_ctx *ctx);
/* Flight slot ended with res (bytes written, or -errno): drain what it made durable. */
void ingest_journal_done(struct ingest_ctx *ctx, uint32_t slot, int64_t res);

/* latency.c: request latency histograms (shm/layout.h, struct wf_reqlat) */
/* The series of a ranker command's reply (WF_LAT_*). */
uint32_t ingest_lat_series_of(int cmd);
/* Slot sl will hold the reply of a request of series ser received this pass. */
static inline void ingest_lat_stamp(const struct ingest_ctx *ctx, struct ingest_slot *sl, uint32_t ser)
{
	sl->lat_series = ser < WF_LAT_SERIES ? (uint8_t)(ser + 1) : 0;
	sl->lat_t0 = ctx->pass_ns;
}
/* A reply of series ser (+ 1; 0: not measured), whose request came at t0,
 * was queued to its client now. */
void ingest_lat_queued(struct ingest_ctx *ctx, uint32_t ser1, uint64_t t0);
/* Record the replies queued so far this pass (one clock read): at the pass end. */
void ingest_lat_flush(struct ingest_ctx *ctx);
/* A stage sample (WF_LAT_FLUSH, WF_LAT_RING) of ns. */
void ingest_lat_stage(struct ingest_ctx *ctx, uint32_t ser, uint64_t ns);
/* INFO's "# Latencystats" section, in Redis 7's form, to b. */
void ingest_lat_info(struct ingest_ctx *ctx, struct wf_buf *b);
/* notes.c: the rankers' notes (segment transitions, exposures) */
/* Set up (main.c, before the journal scan). 0 or -ENOMEM. */
int ingest_notes_init(struct ingest_ctx *ctx);
void ingest_notes_fini(struct ingest_ctx *ctx);
/* A SEGMENT record read from the journal at start: its key is seen (no
 * second announcement) and it joins the recent transitions (TRIGGERS). */
void ingest_notes_recover(struct ingest_ctx *ctx, const struct wf_journal_rec *rec);
/* The notes ingest may hold (not yet durable) are at their bound: stop
 * taking records from the reply rings until some are durable. */
int ingest_notes_full(const struct ingest_ctx *ctx);
/* A note from shard's reply ring: journaled (a SEGMENT one once per key).
 * 0, or -ENOMEM (dropped, counted). */
int ingest_note(struct ingest_ctx *ctx, uint32_t shard, const struct wf_msg_note_view *v);
/* The journal is durable to durable: publish the notes it made durable. */
void ingest_notes_durable(struct ingest_ctx *ctx, uint64_t durable);
/* A ranker's reply for c's slot, after a note (note_lsn: the ring's
 * ingest_shard.note_lsn) on its ring: held until that note is durable
 * (0; also when nothing is to hold), or answered here with an error (1:
 * the journal failed, or out of memory). */
int ingest_notes_hold(struct ingest_ctx *ctx, uint64_t note_lsn, struct ingest_conn *c, uint64_t slot);
/* After wf_journal_reset(): append again the notes the failure dropped. */
void ingest_notes_rejournal(struct ingest_ctx *ctx);
/* Notes wait for a journal that failed (loop.c retries it). */
int ingest_notes_waiting(const struct ingest_ctx *ctx);
/* TRIGGERS cursor [COUNT n] [SEGMENT name...]. 0 handled, -ENOMEM. */
int ingest_cmd_triggers(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r);
/* INFO lines of notes.c into b. */
void ingest_notes_info(struct ingest_ctx *ctx, struct wf_buf *b);

/* pubsub.c: SUBSCRIBE and friends, pushes, the output limits */
/* Set up with the limits (bytes, bytes, seconds). 0 or -ENOMEM. */
int ingest_pubsub_init(struct ingest_ctx *ctx, uint64_t hard, uint64_t soft, uint32_t soft_s);
void ingest_pubsub_fini(struct ingest_ctx *ctx);
/* A pub/sub command (or any command of a subscribed connection): 1 when
 * it was one and its reply is queued, 0 when not one (dispatch it),
 * -ENOMEM. */
int ingest_pubsub_dispatch(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r);
/* 1 when a live subscriber's channel or pattern takes channel (a push
 * would reach someone), else 0: the payload need not be made. */
int ingest_pubsub_wanted(const struct ingest_ctx *ctx, const char *channel, size_t chlen);
/* Push a transition's payload on channel (its segment) to every
 * subscriber of it or of a pattern matching it. */
void ingest_pubsub_publish(struct ingest_ctx *ctx, const char *channel, size_t chlen, const char *payload,
			   size_t plen);
/* INFO lines of pubsub.c into b. */
void ingest_pubsub_info(struct ingest_ctx *ctx, struct wf_buf *b);
/* c goes away: its subscriptions with it. */
void ingest_pubsub_drop(struct ingest_ctx *ctx, struct ingest_conn *c);
/* Redis's stringmatch: 1 when s matches the glob pattern p (* ? [..] \). */
int ingest_glob_match(const char *p, size_t plen, const char *s, size_t slen);

/* fan.c: a request every shard answers, merged into one reply */
/* SEGPREVIEW rule: forwarded to every shard. 0 handled, -EAGAIN stall, -ENOMEM. */
int ingest_fan_segpreview(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r,
			  const struct wf_cmd_info *ci);
/* Shard sh's reply (resp; NULL: the ranker lost the request) to the fan
 * request pd belongs to; the merged reply goes out with the last one,
 * held for every note the shards' rings brought before their replies. */
void ingest_fan_reply(struct ingest_ctx *ctx, struct ingest_shard *sh, const struct ingest_pending *pd, const char *resp,
		      uint32_t len);

/* cmd.c */
/* Execute one parsed request: 0 handled (its reply is queued), -EAGAIN
 * stall (nothing done; retry later), -ENOMEM. */
int ingest_dispatch(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r);

#endif
