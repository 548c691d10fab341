/*
 * shard.c - weft-ingest between a checked request and its ranker: which
 * shard a session lives on (the session table, with each session's
 * version), forwarding a request to that shard's ranker (request ring),
 * matching the rankers' replies to the connections that wait for them
 * (reply ring, per-shard FIFO of pending requests), and when to wake a
 * sleeping ranker.
 *
 * Rings (shm/ring.h): ingest is the one producer of each request ring and
 * the one consumer of each reply ring. A ranker replies in request order,
 * so each shard's pending FIFO is matched from its head by sequence
 * number. An EVENT goes with WF_MSG_F_NOREPLY and takes no FIFO entry:
 * its ack is the journal's (commit.c).
 *
 * Durable first: an EVENT is reserved in the ring at once but held back
 * (the ring is committed only up to its start) until the journal holds it
 * (fsync mode: its fdatasync ended; os: its write did); what follows it in
 * that ring waits with it, so the ring stays FIFO and a later request
 * still finds it applied. When the journal fails, every held EVENT is
 * voided in place (turned into ring padding, which the ranker skips) and
 * what followed it goes on.
 *
 * Which shard: the session table (struct wf_route, ingest.h), at the end
 * of this file. Linked into weft-ingest and, through the weftingest
 * library, tests/test_routing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ingest/ingest.h"

/* Requests not yet reserved: the connection is stalled (-EAGAIN) or gets
 * an error reply now. */
static int forward_check(struct ingest_ctx *ctx, struct ingest_conn *c, struct ingest_shard *sh, int cmd)
{
	/* An EVENT takes no fifo entry (its ranker sends no reply). */
	if (c->tail - c->head >= INGEST_MAX_PENDING ||
	    (cmd != WF_CMD_EVENT && sh->fifo_tail - sh->fifo_head >= sh->fifo_cap))
		return -EAGAIN;
	if (cmd == WF_CMD_EVENT && ctx->gc.failed && ingest_journal_retry(ctx) < 0) {
		/* relaxed: statistic */
		atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.errors, 1, memory_order_relaxed);
		return ingest_reply_local(ctx, c, INGEST_ERR_JOURNAL, sizeof(INGEST_ERR_JOURNAL) - 1, 0) < 0 ? -ENOMEM
													       : 1;
	}
	if (cmd == WF_CMD_EVENT && ingest_held_reserve(sh) < 0)
		return -ENOMEM;
	return 0;
}

int ingest_forward(struct ingest_ctx *ctx, struct ingest_conn *c, uint32_t shard, int cmd, const struct wf_resp_req *r,
		   uint64_t ver, const struct wf_msg_recs *recs)
{
	struct ingest_shard *sh = &ctx->shards[shard];
	const char *argv[WF_MSG_MAX_ARGS];
	uint32_t argl[WF_MSG_MAX_ARGS];
	struct wf_msg_req h = { 0 };
	struct ingest_slot *sl;
	uint64_t lsn = 0;
	uint32_t from = wf_ring_prod_pos(&sh->req);
	int e;

	if ((e = forward_check(ctx, c, sh, cmd)) != 0)
		return e < 0 ? e : 0;
	if (cmd == WF_CMD_EVENT)
		lsn = wf_journal_next_lsn(ctx->journal);
	h.req_id = ((uint64_t)ctx->epoch << 32) | sh->next_seq;
	h.t_recv_ns = ctx->fwd_ns = wf_now_ns();
	/* EVENT: its journal LSN; RECS: the session's version (front table). */
	h.lsn = cmd == WF_CMD_RECS ? ver : lsn;
	/* An EVENT's ack is its durability, not the ranker's reply. */
	h.flags = cmd == WF_CMD_EVENT ? WF_MSG_F_NOREPLY : 0;
	h.cmd = (uint16_t)cmd;
	h.argc = (uint16_t)(r->argc - 1);
	for (uint32_t i = 1; i < r->argc; i++) {
		argv[i - 1] = r->argv[i].p;
		argl[i - 1] = r->argv[i].len;
	}
	e = wf_msg_req_push_parsed(&sh->req, &h, argv, argl, recs);
	if (e == -EAGAIN) {
		/* relaxed: statistic */
		atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.backpressure_stalls, 1, memory_order_relaxed);
		return -EAGAIN;
	}
	if (e < 0) {
		static const char m[] = "-ERR request too large for the shard ring\r\n";
		return ingest_reply_local(ctx, c, m, sizeof(m) - 1, 0);
	}
	if (cmd == WF_CMD_EVENT) {
		/* Room made in forward_check() */
		sh->held[sh->held_tail++ % sh->held_cap] =
			(struct ingest_held){ .lsn = lsn, .from = from, .to = wf_ring_prod_pos(&sh->req) };
		ingest_journal_append(ctx, shard, h.argc, argv, argl, lsn, h.t_recv_ns);
	}
	sl = ingest_slot_new(c);
	if (!sl)
		return -ENOMEM;
	ingest_lat_stamp(ctx, sl, ingest_lat_series_of(cmd));
	sh->next_seq++;
	sh->dirty = 1;
	if (cmd == WF_CMD_EVENT && ctx->gc.failed) {
		/* Its append failed (out of memory): voided with the rest. */
		ingest_slot_answer(ctx, c, c->tail - 1, INGEST_ERR_JOURNAL, sizeof(INGEST_ERR_JOURNAL) - 1);
		return 0;
	}
	sl->wait_lsn = lsn;
	if (cmd == WF_CMD_EVENT) {
		/* Ready now; ingest_conn_drain sends it once the journal is
		 * durable past lsn, and ingest_journal_done() finds the
		 * connection through its wait FIFO. */
		static const char one[] = ":1\r\n";
		ingest_slot_fill(sl, one, sizeof(one) - 1); /* inline: cannot fail */
		return ingest_journal_wait(ctx, c, lsn);
	}
	sh->fifo[sh->fifo_tail % sh->fifo_cap] = (struct ingest_pending){
		.conn_idx = c->idx, .conn_gen = c->gen, .slot = c->tail - 1, .seq = sh->next_seq - 1, .fan = NULL,
	};
	sh->fifo_tail++;
	return 0;
}

int ingest_held_reserve(struct ingest_shard *sh)
{
	if (sh->held_tail - sh->held_head == sh->held_cap) {
		uint64_t ncap = sh->held_cap ? sh->held_cap * 2 : 1024;
		struct ingest_held *n = malloc(ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (uint64_t i = sh->held_head; i < sh->held_tail; i++)
			n[i % ncap] = sh->held[i % sh->held_cap];
		free(sh->held);
		sh->held = n;
		sh->held_cap = ncap;
	}
	return 0;
}

void ingest_held_release(struct ingest_ctx *ctx, uint64_t durable, int failed)
{
	for (uint32_t s = 0; s < ctx->nshards; s++) {
		struct ingest_shard *sh = &ctx->shards[s];
		uint64_t h0 = sh->held_head;

		while (sh->held_head < sh->held_tail) {
			struct ingest_held *e = &sh->held[sh->held_head % sh->held_cap];
			if (failed && e->lsn > durable)
				wf_ring_prod_void(&sh->req, e->from, e->to);
			else if (e->lsn > durable)
				break;
			sh->held_head++;
		}
		if (sh->held_head != h0)
			sh->dirty = 1; /* ingest_shards_commit() publishes them */
	}
}

struct ingest_conn *ingest_pending_conn(struct ingest_ctx *ctx, const struct ingest_pending *pd)
{
	struct ingest_conn *c = ctx->conns[pd->conn_idx];

	if (!c || c->gen != pd->conn_gen || c->fd < 0 || pd->slot < c->head || pd->slot >= c->tail)
		return NULL;
	return c;
}

/* One reply (seq, resp) from shard sh: the pending request at the FIFO's
 * head with that sequence number gets it. */
static void reply_one(struct ingest_ctx *ctx, struct ingest_shard *sh, uint32_t seq, const char *resp, uint32_t len)
{
	struct ingest_conn *c;

	/* A restarted ranker redoes requests it had answered. */
	while (sh->fifo_head < sh->fifo_tail && (int32_t)(sh->fifo[sh->fifo_head % sh->fifo_cap].seq - seq) < 0) {
		/* Owed, yet the ranker went past it: cannot happen with
		 * replies in order; answer so the client is not stuck. */
		static const char m[] = "-ERR ranker lost this request; retry\r\n";
		struct ingest_pending *pd = &sh->fifo[sh->fifo_head % sh->fifo_cap];
		if (pd->fan)
			ingest_fan_reply(ctx, sh, pd, NULL, 0);
		else if ((c = ingest_pending_conn(ctx, pd)))
			ingest_slot_answer(ctx, c, pd->slot, m, sizeof(m) - 1);
		sh->fifo_head++;
	}
	if (sh->fifo_head == sh->fifo_tail || sh->fifo[sh->fifo_head % sh->fifo_cap].seq != seq)
		return; /* duplicate */
	struct ingest_pending *pd = &sh->fifo[sh->fifo_head++ % sh->fifo_cap];
	if (pd->fan)
		ingest_fan_reply(ctx, sh, pd, resp, len); /* held with the merged reply (fan.c) */
	else if ((c = ingest_pending_conn(ctx, pd)) && !ingest_notes_hold(ctx, sh->note_lsn, c, pd->slot))
		ingest_slot_answer(ctx, c, pd->slot, resp, len);
}

int ingest_poll_replies(struct ingest_ctx *ctx)
{
	int work = 0;

	for (uint32_t s = 0; s < ctx->nshards; s++) {
		struct ingest_shard *sh = &ctx->shards[s];
		const void *p;
		uint32_t len, kind, n = 0;

		/* Notes held to their bound: the ranker waits (notes.c). */
		while (!ingest_notes_full(ctx) && (p = wf_ring_pop(&sh->rep, &len, &kind))) {
			const struct wf_msg_rep *h;
			const char *resp;
			n++;
			if (kind == WF_MSG_NOTE) { /* answers no request */
				struct wf_msg_note_view *nv = ctx->note_view;
				if (wf_msg_note_decode(p, len, nv) == 0)
					ingest_note(ctx, s, nv);
				continue;
			}
			if (kind != WF_MSG_REP || wf_msg_rep_decode(p, len, &h, &resp) < 0)
				continue;
			if ((uint32_t)(h->req_id >> 32) != ctx->epoch)
				continue; /* for a previous weft-ingest: nobody waits */
			if (h->t_recv_ns && h->t_done_ns >= h->t_recv_ns)
				ingest_lat_stage(ctx, WF_LAT_RING, h->t_done_ns - h->t_recv_ns);
			reply_one(ctx, sh, (uint32_t)h->req_id, resp, h->resp_len);
		}
		if (n) {
			wf_ring_cons_release(&sh->rep);
			work += (int)n;
		}
	}
	return work;
}

/* Publish the requests reserved so far (a spinning ranker sees them at
 * once). A sleeping ranker is woken later, by ingest_wake_rankers() at the
 * end of the loop pass: waking it per connection cost a futex call and a
 * context switch each time (the woken ranker preempts ingest on its core,
 * applies one event, spins and sleeps again). */
#define INGEST_WAKE_DEFER_NS 5000ull /* longest a sleeping ranker's wake-up waits for the pass end */

static void wake_ranker(struct ingest_shard *sh)
{
	/* F2 inside wf_wait_needs_wake() orders the ring commit (R1) before
	 * the load of sleeping: pairs with F1 in the ranker's wf_wait_prepare(). */
	if (wf_wait_needs_wake(&sh->sc->ranker_wait))
		wf_wake_futex(&sh->sc->ranker_wait);
}

void ingest_shards_commit(struct ingest_ctx *ctx)
{
	for (uint32_t s = 0; s < ctx->nshards; s++) {
		struct ingest_shard *sh = &ctx->shards[s];
		if (!sh->dirty)
			continue;
		sh->dirty = 0;
		if (sh->held_head == sh->held_tail)
			wf_ring_prod_commit(&sh->req);
		else
			wf_ring_prod_commit_to(&sh->req, sh->held[sh->held_head % sh->held_cap].from);
		if (!sh->pass_checked) {
			/* The pass's first commit to this shard wakes a sleeping
			 * ranker at once (visibility); later ones wait. */
			sh->pass_checked = 1;
			wake_ranker(sh);
		} else if (!sh->unwoken) {
			sh->unwoken = 1;
			sh->unwoken_ns = ctx->fwd_ns;
		} else if (ctx->fwd_ns - sh->unwoken_ns > INGEST_WAKE_DEFER_NS) {
			/* A long pass: do not let the first requests wait for its end. */
			sh->unwoken = 0;
			wake_ranker(sh);
		}
	}
}

/* Once per pass, after the pass's sends are submitted and before ingest
 * can sleep: wake every ranker that sleeps with requests committed since
 * the last check. Never skipped while a commit is unchecked (see
 * ingest_run()), so no wake-up is lost: wf_wait_needs_wake() follows the
 * commit. */
void ingest_wake_rankers(struct ingest_ctx *ctx)
{
	for (uint32_t s = 0; s < ctx->nshards; s++) {
		struct ingest_shard *sh = &ctx->shards[s];
		sh->pass_checked = 0;
		if (!sh->unwoken)
			continue;
		sh->unwoken = 0;
		wake_ranker(sh);
	}
}

int ingest_rings_readable(struct ingest_ctx *ctx)
{
	for (uint32_t s = 0; s < ctx->nshards; s++)
		if (wf_ring_readable(&ctx->shards[s].rep))
			return 1;
	return 0;
}

int ingest_owed(const struct ingest_ctx *ctx)
{
	for (uint32_t s = 0; s < ctx->nshards; s++)
		if (ctx->shards[s].fifo_head != ctx->shards[s].fifo_tail)
			return 1;
	return 0;
}

/* --- the session table: which shard a session lives on (ingest.h) --- */

/*
 * A generation's table: anonymous memory in huge pages where the kernel
 * gives them (a lookup is a random probe into hundreds of MiB: 4 KiB pages
 * would cost a TLB miss per request), faulted in whole now. Left to fault
 * on use, a new session's first probe and insert took a read and a write
 * fault (1.45 faults a request, 21-23 % of a fresh ingest's samples under
 * EVENT load), and a 2 MiB page zeroes on its first write. The memory is
 * what steady state holds anyway. Advice only: on an old kernel pages
 * fault in on use.
 */
static struct wf_route_entry *table_new(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, bytes, MADV_HUGEPAGE);
	(void)wf_populate(p, bytes, 1);
	return p;
}

static size_t table_bytes(const struct wf_route *r)
{
	return ((size_t)r->mask + 1) * sizeof(struct wf_route_entry);
}

int wf_route_init(struct wf_route *r, uint32_t nshards, uint32_t max_entries, uint64_t ttl_ms, uint64_t now_ms)
{
	uint32_t slots = 64;

	memset(r, 0, sizeof(*r));
	while (slots / 2 < max_entries)
		slots *= 2;
	r->mask = slots - 1;
	r->cur = table_new(table_bytes(r));
	r->prev = table_new(table_bytes(r));
	if (!r->cur || !r->prev) {
		wf_route_fini(r);
		return -ENOMEM;
	}
	r->max_entries = slots / 2;
	r->gen = 1; /* prev's, 0, holds only zeroed (empty) slots */
	r->nshards = nshards;
	r->ttl_ms = ttl_ms;
	r->rotated_ms = now_ms;
	return 0;
}

void wf_route_fini(struct wf_route *r)
{
	if (r->cur)
		munmap(r->cur, table_bytes(r));
	if (r->prev)
		munmap(r->prev, table_bytes(r));
	r->cur = r->prev = NULL;
}

static void rotate(struct wf_route *r, uint64_t now_ms)
{
	struct wf_route_entry *t = r->prev;

	r->prev = r->cur;
	r->nprev = r->ncur;
	/* The dropped table becomes the current one as it is: its entries are
	 * of older generations, empty to the new one. Only when the number
	 * wraps could an entry 65,536 rotations old read as current: then
	 * both tables are cleared (the pages stay resident). */
	if (++r->gen == 0) {
		memset(t, 0, table_bytes(r));
		memset(r->prev, 0, table_bytes(r));
		r->nprev = 0;
		r->gen = 1;
	}
	r->cur = t;
	r->ncur = 0;
	r->rotated_ms = now_ms;
	r->forgets++;
}

/* The slot of key in table t of generation gen: its entry, or the empty
 * slot (key 0, or another generation's) where it would go. */
static struct wf_route_entry *probe(struct wf_route_entry *t, uint32_t mask, uint64_t key, uint16_t gen)
{
	uint32_t i = (uint32_t)(key >> 17) & mask;

	while (t[i].key && t[i].gen == gen && t[i].key != key)
		i = (i + 1) & mask;
	return &t[i];
}

static int live(const struct wf_route_entry *e, uint16_t gen)
{
	return e->key && e->gen == gen;
}

static int fresh(const struct wf_route *r, const struct wf_route_entry *e, uint16_t gen, uint64_t now_ms)
{
	return live(e, gen) && (uint64_t)(now_ms / 1000) - e->last_s <= r->ttl_ms / 1000;
}

/* ver 0: a new version. Returns the entry. */
static struct wf_route_entry *put(struct wf_route *r, uint64_t key, uint32_t shard, uint64_t ver, uint8_t flags,
				  uint64_t now_ms)
{
	struct wf_route_entry *e;

	if (r->ncur >= r->max_entries)
		rotate(r, now_ms);
	e = probe(r->cur, r->mask, key, r->gen);
	if (!live(e, r->gen)) {
		e->key = key;
		e->gen = r->gen;
		r->ncur++;
	}
	e->shard = (uint8_t)shard;
	e->flags = flags;
	e->last_s = (uint32_t)(now_ms / 1000);
	e->ver = ver ? ver : ++r->ver_next;
	return e;
}

uint32_t wf_route_lookup(struct wf_route *r, const char *session, size_t slen, const char *user, size_t ulen,
			 uint64_t now_ms, int event, struct wf_route_hit *hit)
{
	uint64_t key = wf_hash64(session, slen) | 1;
	int by_user = user && ulen && !wf_user_is_anon(user, ulen);
	struct wf_route_entry *e;
	int pinned = 0;

	if (now_ms - r->rotated_ms >= r->ttl_ms / 2)
		rotate(r, now_ms);
	e = probe(r->cur, r->mask, key, r->gen);
	if (fresh(r, e, r->gen, now_ms)) {
		e->last_s = (uint32_t)(now_ms / 1000);
	} else {
		uint16_t g = r->gen;
		if (!live(e, g)) {
			g = (uint16_t)(r->gen - 1);
			e = probe(r->prev, r->mask, key, g);
		}
		if (fresh(r, e, g, now_ms)) {
			e = put(r, key, e->shard, e->ver, e->flags, now_ms); /* used again: keep it */
		} else {
			/* New, or idle past the TTL: a new visit, pinned afresh.
			 * The events of an idle entry are forgotten like a dropped
			 * generation's. */
			if (live(e, g) && (e->flags & WF_ROUTE_EVENTED))
				r->forgets++;
			e = put(r, key,
				by_user ? wf_shard_of(user, ulen, r->nshards) : wf_shard_of(session, slen, r->nshards), 0,
				0, now_ms);
			pinned = 1;
		}
	}
	/* A session no EVENT was routed for has no context to keep: it goes
	 * where its user's list is owned (in that ranker's arena; the others
	 * read it from the mapped file), until its first EVENT pins it. */
	if (!pinned && !(e->flags & WF_ROUTE_EVENTED) && by_user)
		e->shard = (uint8_t)wf_shard_of(user, ulen, r->nshards);
	if (event) {
		e->ver = ++r->ver_next;
		e->flags = WF_ROUTE_EVENTED; /* a new version: not asked */
	}
	if (hit) {
		hit->key = key;
		hit->ver = e->ver;
		hit->pinned = pinned;
		hit->evented = (e->flags & WF_ROUTE_EVENTED) != 0;
		hit->asked = (e->flags & WF_ROUTE_ASKED) != 0;
	}
	if (!event)
		e->flags |= WF_ROUTE_ASKED;
	return e->shard;
}

uint32_t wf_route_shard(struct wf_route *r, const char *session, size_t slen, const char *user, size_t ulen,
			uint64_t now_ms)
{
	return wf_route_lookup(r, session, slen, user, ulen, now_ms, 0, NULL);
}

void wf_route_pin(struct wf_route *r, const char *session, size_t slen, uint32_t shard, uint64_t now_ms)
{
	if (shard < r->nshards)
		put(r, wf_hash64(session, slen) | 1, shard, 0, WF_ROUTE_EVENTED, now_ms);
}

uint64_t wf_route_count(const struct wf_route *r)
{
	return (uint64_t)r->ncur + r->nprev;
}
