/*
 * ingest.c - weft-ingest: the one process that owns client connections.
 *
 * One thread, one io_uring: multishot accept; multishot receive into a provided
 * buffer ring; parse RESP2/inline; validate; journal EVENTs (group commit:
 * a synchronous pwrite, then an fdatasync through the ring); route each request to its session's
 * shard through the shard's request ring; collect replies from the reply
 * rings; send replies back in request order per connection, EVENTs only
 * once durable. Backpressure: a connection whose shard ring is full, or
 * that owes too many replies, is not read until it drains.
 *
 *   weft-ingest --dir DIR --shm NAME [--socket PATH] [--max-clients N]
 *               [--journal DIR] [--durability fsync|os] [--socket-group G]
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "ingest/ingest.h"

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_BELL, OP_SIGNAL, OP_JSYNC, OP_CANCEL };

static uint64_t ud(int op, uint32_t idx, uint32_t gen)
{
	return ((uint64_t)op << 56) | ((uint64_t)(idx & 0xffffff) << 32) | gen;
}

static struct io_uring_sqe *get_sqe(struct ingest_ctx *ctx)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ctx->ring);

	if (!sqe) {
		io_uring_submit(&ctx->ring);
		sqe = io_uring_get_sqe(&ctx->ring);
	}
	return sqe; /* the SQ drains on submit: not NULL in practice */
}

/* ---- connections ---- */

static void mark_dirty(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		ctx->dirty[ctx->ndirty++] = c->idx;
	}
}

static struct ingest_conn *conn_new(struct ingest_ctx *ctx, int fd)
{
	struct ingest_conn *c;
	uint32_t idx;

	if (ctx->nfree == 0)
		return NULL;
	idx = ctx->free_idx[--ctx->nfree];
	c = ctx->conns[idx];
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			ctx->nfree++;
			return NULL;
		}
		ctx->conns[idx] = c;
		c->idx = idx;
	}
	c->fd = fd;
	c->gen++;
	c->in.len = c->out.len = c->sendbuf.len = 0;
	c->recv_armed = c->send_armed = c->closing = c->dead = c->stalled = c->dirty = c->last_queued = 0;
	c->recv_cancel = 0;
	c->head = c->tail = 0;
	if (!c->slots) {
		c->cap = 64;
		c->slots = calloc(c->cap, sizeof(*c->slots));
		if (!c->slots) {
			ctx->nfree++;
			return NULL;
		}
	}
	ctx->nconns++;
	atomic_store_explicit(&ctx->shm->ctl->ingest_stats.connections, ctx->nconns, memory_order_relaxed);
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.connections_total, 1, memory_order_relaxed);
	return c;
}

static void conn_release(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	close(c->fd);
	c->fd = -1;
	for (uint64_t s = c->head; s < c->tail; s++) {
		struct ingest_slot *sl = &c->slots[s % c->cap];
		free(sl->data);
		sl->data = NULL;
	}
	c->head = c->tail = 0;
	c->gen++; /* replies still owed by rankers will not find it */
	/* Keep buffers for reuse, but not huge ones. */
	if (c->in.cap > (1u << 20))
		wf_buf_fini(&c->in);
	if (c->out.cap > (1u << 20))
		wf_buf_fini(&c->out);
	if (c->sendbuf.cap > (1u << 20))
		wf_buf_fini(&c->sendbuf);
	ctx->free_idx[ctx->nfree++] = c->idx;
	ctx->nconns--;
	atomic_store_explicit(&ctx->shm->ctl->ingest_stats.connections, ctx->nconns, memory_order_relaxed);
}

/* A connection goes away once nothing of ours is in flight on it. */
static void conn_kill(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	if (!c->dead) {
		c->dead = 1;
		shutdown(c->fd, SHUT_RDWR); /* completes an armed recv */
	}
	if (!c->recv_armed && !c->send_armed && c->fd >= 0)
		conn_release(ctx, c);
}

static struct ingest_slot *slot_new(struct ingest_conn *c)
{
	if (c->tail - c->head == c->cap) {
		uint32_t ncap = c->cap * 2;
		struct ingest_slot *n = calloc(ncap, sizeof(*n));
		if (!n)
			return NULL;
		for (uint64_t s = c->head; s < c->tail; s++)
			n[s % ncap] = c->slots[s % c->cap];
		free(c->slots);
		c->slots = n;
		c->cap = ncap;
	}
	struct ingest_slot *sl = &c->slots[c->tail % c->cap];
	memset(sl, 0, sizeof(*sl));
	c->tail++;
	return sl;
}

static int slot_fill(struct ingest_slot *sl, const char *data, size_t len)
{
	if (len <= INGEST_SLOT_INLINE) {
		memcpy(sl->inl, data, len);
		sl->data = NULL;
	} else {
		sl->data = malloc(len);
		if (!sl->data)
			return -ENOMEM;
		memcpy(sl->data, data, len);
	}
	sl->len = (uint32_t)len;
	sl->ready = 1;
	return 0;
}

/* Move every reply that may go now, in order, to the output buffer. */
static void conn_drain(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	uint64_t durable = wf_journal_durable_lsn(ctx->journal);
	uint64_t acked = 0;

	while (c->head < c->tail) {
		struct ingest_slot *sl = &c->slots[c->head % c->cap];
		static const char jfail[] = "-ERR the journal cannot write: event not stored, retry later\r\n";

		if (!sl->ready)
			break;
		if (sl->wait_lsn > durable) {
			if (!ctx->journal_failed)
				break;
			wf_buf_append(&c->out, jfail, sizeof(jfail) - 1);
		} else {
			wf_buf_append(&c->out, sl->data ? sl->data : sl->inl, sl->len);
			acked += sl->wait_lsn != 0; /* only an EVENT waits for an LSN, and its reply is :1 */
		}
		free(sl->data);
		sl->data = NULL;
		if (sl->close)
			c->closing = 1;
		c->head++;
		if (c->closing)
			break;
	}
	if (acked)
		atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.events_acked, acked, memory_order_relaxed);
	if (c->out.len)
		mark_dirty(ctx, c);
}

int ingest_reply_local(struct ingest_ctx *ctx, struct ingest_conn *c, const char *data, size_t len, int close)
{
	struct ingest_slot *sl;

	if (close)
		c->last_queued = 1;
	/* In order and nothing owed before it: straight to the output. */
	if (c->head == c->tail && !close)
		return wf_buf_append(&c->out, data, len) < 0 ? -ENOMEM : (mark_dirty(ctx, c), 0);
	sl = slot_new(c);
	if (!sl || slot_fill(sl, data, len) < 0)
		return -ENOMEM;
	sl->close = (uint8_t)close;
	conn_drain(ctx, c);
	return 0;
}

/* Remember that connection c has a reply waiting for lsn. 0 or -ENOMEM. */
static int jwait_push(struct ingest_ctx *ctx, struct ingest_conn *c, uint64_t lsn)
{
	if (ctx->jwait_tail - ctx->jwait_head == ctx->jwait_cap) {
		uint64_t ncap = ctx->jwait_cap ? ctx->jwait_cap * 2 : 4096;
		struct ingest_jwait *n = malloc(ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (uint64_t i = ctx->jwait_head; i < ctx->jwait_tail; i++)
			n[i % ncap] = ctx->jwait[i % ctx->jwait_cap];
		free(ctx->jwait);
		ctx->jwait = n;
		ctx->jwait_cap = ncap;
	}
	ctx->jwait[ctx->jwait_tail++ % ctx->jwait_cap] = (struct ingest_jwait){ c->idx, c->gen, lsn };
	return 0;
}

int ingest_forward(struct ingest_ctx *ctx, struct ingest_conn *c, uint32_t shard, int cmd, const struct wf_resp_req *r,
		   uint64_t ver)
{
	struct ingest_shard *sh = &ctx->shards[shard];
	const char *argv[WF_MSG_MAX_ARGS];
	uint32_t argl[WF_MSG_MAX_ARGS];
	struct wf_msg_req h = { 0 };
	struct ingest_slot *sl;
	uint64_t lsn = 0;
	int e;

	/* An EVENT takes no fifo entry (its ranker sends no reply). */
	if (c->tail - c->head >= INGEST_MAX_PENDING ||
	    (cmd != WF_CMD_EVENT && sh->fifo_tail - sh->fifo_head >= sh->fifo_cap))
		return -EAGAIN;
	if (cmd == WF_CMD_EVENT) {
		if (ctx->journal_failed) {
			static const char m[] = "-ERR the journal cannot write: event not stored, retry later\r\n";
			return ingest_reply_local(ctx, c, m, sizeof(m) - 1, 0);
		}
		lsn = wf_journal_next_lsn(ctx->journal);
	}
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
	e = wf_msg_req_push(&sh->req, &h, argv, argl);
	if (e == -EAGAIN) {
		atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.backpressure_stalls, 1, memory_order_relaxed);
		return -EAGAIN;
	}
	if (e < 0) {
		static const char m[] = "-ERR request too large for the shard ring\r\n";
		return ingest_reply_local(ctx, c, m, sizeof(m) - 1, 0);
	}
	if (cmd == WF_CMD_EVENT) {
		uint64_t got;
		/* Cannot fail: argc and sizes were checked in check_event(). */
		if (wf_journal_append(ctx->journal, wf_wall_ms(), (uint16_t)shard, h.argc, argv, argl, &got) < 0 ||
		    got != lsn) {
			wf_err("journal append failed for lsn %llu", (unsigned long long)lsn);
			ctx->journal_failed = 1;
		}
		if (!ctx->journal_pending_n++)
			ctx->journal_pending_ns = h.t_recv_ns;
	}
	sl = slot_new(c);
	if (!sl)
		return -ENOMEM;
	sl->wait_lsn = lsn;
	sh->next_seq++;
	sh->dirty = 1;
	if (cmd == WF_CMD_EVENT) {
		/* Ready now; conn_drain sends it once the journal is durable past
		 * lsn, and journal_done() finds the connection through jwait. */
		static const char one[] = ":1\r\n";
		slot_fill(sl, one, sizeof(one) - 1);
		return jwait_push(ctx, c, lsn);
	}
	sh->fifo[sh->fifo_tail % sh->fifo_cap] = (struct ingest_pending){
		.conn_idx = c->idx, .conn_gen = c->gen, .slot = c->tail - 1, .seq = sh->next_seq - 1,
	};
	sh->fifo_tail++;
	return 0;
}

/* Parse and execute what a connection sent, until it stalls. A request
 * still incomplete past INGEST_MAX_INPUT can never be read (the connection
 * stops receiving there): it is refused and the connection closed. */
static void conn_parse(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	size_t off = 0;
	int n = 1;

	c->stalled = 0;
	while (off < c->in.len && !c->closing && !c->dead && !c->last_queued) {
		const char *e = NULL;

		n = wf_resp_parse(c->in.data + off, c->in.len - off, NULL, ctx->req, &e);
		if (n == 0)
			break;
		if (n < 0) {
			char m[256];
			int l = snprintf(m, sizeof(m), "-ERR %s\r\n", e ? e : "Protocol error");
			ingest_reply_local(ctx, c, m, (size_t)l, 1);
			atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.errors, 1, memory_order_relaxed); /* stats */
			off = c->in.len;
			break;
		}
		if (ctx->req->argc == 0) {
			off += (size_t)n;
			continue;
		}
		int r = ingest_dispatch(ctx, c, ctx->req);
		if (r == -EAGAIN) {
			c->stalled = 1;
			ctx->any_stalled = 1;
			break;
		}
		if (r < 0) {
			wf_err("out of memory serving a client: closing it");
			conn_kill(ctx, c);
			return;
		}
		off += (size_t)n;
	}
	if (n == 0 && c->in.len - off > INGEST_MAX_INPUT) {
		static const char m[] = "-ERR Protocol error: request larger than the 1.5 MiB input limit\r\n";
		ingest_reply_local(ctx, c, m, sizeof(m) - 1, 1);
		atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.errors, 1, memory_order_relaxed); /* stats */
		off = c->in.len;
	}
	if (c->last_queued)
		off = c->in.len; /* nothing after QUIT or an error is executed */
	wf_buf_consume(&c->in, off);
}

/* May the connection be read now? Not while it is stalled, owes too
 * many replies, has too much output queued or input unparsed, is closing,
 * or ingest is stopping: the kernel socket buffer then pushes back. */
static int recv_allowed(const struct ingest_ctx *ctx, const struct ingest_conn *c)
{
	return !(c->dead || c->closing || c->stalled || c->last_queued || c->in.len > INGEST_MAX_INPUT ||
		 c->out.len + c->sendbuf.len > INGEST_MAX_OUTPUT || c->tail - c->head >= INGEST_MAX_PENDING ||
		 ctx->stopping);
}

/*
 * One multishot recv per connection: it stays armed across completions
 * (IORING_CQE_F_MORE), so a request costs no SQE, no re-arm and no poll
 * set-up and tear-down in the kernel. It ends on EOF, an error, a dry
 * buffer ring (-ENOBUFS; re-armed next pass) or our cancel, which
 * backpressure sends (recv_stop()) when the connection may not be read;
 * completions the kernel posted before the cancel landed still go to
 * c->in: on a busy box that can be every provided buffer (INGEST_BUF_COUNT
 * x INGEST_BUF_SIZE), the bound past INGEST_MAX_INPUT that
 * test_ingest_backpressure_stops_reading checks.
 */
static void arm_recv(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->recv_armed || !recv_allowed(ctx, c))
		return;
	sqe = get_sqe(ctx);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = INGEST_BGID;
	io_uring_sqe_set_data64(sqe, ud(OP_RECV, c->idx, c->gen));
	c->recv_armed = 1;
}

/* Backpressure: cancel an armed recv of a connection that may not be read. */
static void recv_stop(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->recv_armed || c->recv_cancel || c->dead || recv_allowed(ctx, c))
		return;
	sqe = get_sqe(ctx);
	io_uring_prep_cancel64(sqe, ud(OP_RECV, c->idx, c->gen), 0);
	io_uring_sqe_set_data64(sqe, ud(OP_CANCEL, 0, 0));
	c->recv_cancel = 1;
}

static void arm_send(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	struct io_uring_sqe *sqe;
	struct wf_buf t;

	if (c->send_armed || c->dead)
		return;
	if (c->sendbuf.len == 0) {
		if (c->out.len == 0)
			return;
		t = c->sendbuf;
		c->sendbuf = c->out;
		c->out = t;
		c->out.len = 0;
	}
	sqe = get_sqe(ctx);
	io_uring_prep_send(sqe, c->fd, c->sendbuf.data, c->sendbuf.len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud(OP_SEND, c->idx, c->gen));
	c->send_armed = 1;
}

/* ---- replies from the rankers ---- */

static int poll_replies(struct ingest_ctx *ctx)
{
	int work = 0;

	for (uint32_t s = 0; s < ctx->nshards; s++) {
		struct ingest_shard *sh = &ctx->shards[s];
		const void *p;
		uint32_t len, kind, n = 0;

		while ((p = wf_ring_pop(&sh->rep, &len, &kind))) {
			const struct wf_msg_rep *h;
			const char *resp;
			n++;
			if (kind != WF_MSG_REP || wf_msg_rep_decode(p, len, &h, &resp) < 0)
				continue;
			if ((uint32_t)(h->req_id >> 32) != ctx->epoch)
				continue; /* for a previous weft-ingest: nobody waits */
			uint32_t seq = (uint32_t)h->req_id;
			/* A restarted ranker redoes requests it had answered. */
			while (sh->fifo_head < sh->fifo_tail &&
			       (int32_t)(sh->fifo[sh->fifo_head % sh->fifo_cap].seq - seq) < 0) {
				/* Owed, yet the ranker went past it: cannot happen with
				 * replies in order; answer so the client is not stuck. */
				struct ingest_pending *pd = &sh->fifo[sh->fifo_head % sh->fifo_cap];
				struct ingest_conn *c = ctx->conns[pd->conn_idx];
				static const char m[] = "-ERR ranker lost this request; retry\r\n";
				if (c && c->gen == pd->conn_gen && c->fd >= 0 && pd->slot >= c->head && pd->slot < c->tail) {
					slot_fill(&c->slots[pd->slot % c->cap], m, sizeof(m) - 1);
					conn_drain(ctx, c);
				}
				sh->fifo_head++;
			}
			if (sh->fifo_head == sh->fifo_tail || sh->fifo[sh->fifo_head % sh->fifo_cap].seq != seq)
				continue; /* duplicate */
			struct ingest_pending *pd = &sh->fifo[sh->fifo_head % sh->fifo_cap];
			struct ingest_conn *c = ctx->conns[pd->conn_idx];
			sh->fifo_head++;
			if (!c || c->gen != pd->conn_gen || c->fd < 0 || pd->slot < c->head || pd->slot >= c->tail)
				continue; /* the client went away */
			slot_fill(&c->slots[pd->slot % c->cap], resp, h->resp_len);
			conn_drain(ctx, c);
		}
		if (n) {
			wf_ring_cons_release(&sh->rep);
			work += (int)n;
		}
	}
	return work;
}

/* Publish the requests reserved so far (a spinning ranker sees them at
 * once). A sleeping ranker is woken later, by wake_rankers() at the end of
 * the loop pass: waking it per connection cost a futex call and, worse, a
 * context switch each time (the woken ranker preempts ingest on its core,
 * applies one event, spins and sleeps again): 0.41 wake-ups per EVENT at
 * -c 50. */
#define INGEST_WAKE_DEFER_NS 5000ull /* longest a sleeping ranker's wake-up waits for the pass end */

static void commit_shards(struct ingest_ctx *ctx)
{
	for (uint32_t s = 0; s < ctx->nshards; s++) {
		struct ingest_shard *sh = &ctx->shards[s];
		if (!sh->dirty)
			continue;
		sh->dirty = 0;
		wf_ring_prod_commit(&sh->req);
		if (!sh->pass_checked) {
			/* The pass's first commit to this shard wakes a sleeping
			 * ranker at once (visibility); later ones wait. */
			sh->pass_checked = 1;
			if (wf_wait_needs_wake(&sh->sc->ranker_wait))
				wf_wake_futex(&sh->sc->ranker_wait);
		} else if (!sh->unwoken) {
			sh->unwoken = 1;
			sh->unwoken_ns = ctx->fwd_ns;
		} else if (ctx->fwd_ns - sh->unwoken_ns > INGEST_WAKE_DEFER_NS) {
			/* A long pass: do not let the first requests wait for its end. */
			sh->unwoken = 0;
			if (wf_wait_needs_wake(&sh->sc->ranker_wait))
				wf_wake_futex(&sh->sc->ranker_wait);
		}
	}
}

/* Once per pass, after the pass's sends are submitted and before ingest
 * can sleep: wake every ranker that sleeps with requests committed since
 * the last check. Never skipped while a commit is unchecked (see run()),
 * so no wake-up is lost: wf_wait_needs_wake() follows the commit. */
static void wake_rankers(struct ingest_ctx *ctx)
{
	for (uint32_t s = 0; s < ctx->nshards; s++) {
		struct ingest_shard *sh = &ctx->shards[s];
		sh->pass_checked = 0;
		if (!sh->unwoken)
			continue;
		sh->unwoken = 0;
		if (wf_wait_needs_wake(&sh->sc->ranker_wait))
			wf_wake_futex(&sh->sc->ranker_wait);
	}
}

/* ---- journal ---- */

/*
 * Group commit. Up to --journal-flights flushes (write, then fdatasync)
 * are in flight at once, and appends meanwhile form the next group.
 * Concurrent fdatasyncs overlap on the device, so an event that just
 * missed a group need not wait for that group's flush to end before its
 * own starts (bench: EVENT -c 50 with a disk kept busy by another writer,
 * 11.6-12.7k/s with one flight, 15.1-16.5k/s with four; on an idle disk
 * the flush is not the limit and both are the same). A group still lingers a little to fill: with many clients
 * each waiting for its ack, the clients just acknowledged send their next
 * event a few microseconds later. So the next flush waits until the group
 * is as large as the recent largest one, or at most a fraction of a flush
 * time after its first event (a quarter with nothing in flight, capped at
 * 250 us, divided by 1 + the flushes in flight). A lone client
 * (largest group 1) never waits. An ack still means on disk: only when
 * the flush starts is delayed.
 * Returns the ns until the group is due (0: started, or nothing to do).
 */
#define JOURNAL_LINGER_MAX_NS 250000ull
#define INGEST_SPIN_ITERS 200 /* idle pause loops before sleeping (~5 us) */

static void journal_done(struct ingest_ctx *ctx, uint32_t slot, int64_t res);

static uint64_t journal_kick(struct ingest_ctx *ctx)
{
	struct wf_journal_flush f;
	struct ingest_jflush *jf;
	struct io_uring_sqe *sqe;
	uint32_t slot;
	int r;

	if (ctx->journal_failed || !ctx->journal_pending_n)
		return 0;
	/* Only an fdatasync is worth waiting for; a write() alone is cheap. */
	if (ctx->durability == WF_JOURNAL_FSYNC && ctx->journal_pending_n < ctx->journal_group_max &&
	    !ctx->stopping) {
		uint64_t linger =
			WF_MIN(ctx->journal_flush_ns / 4, JOURNAL_LINGER_MAX_NS) / (1 + ctx->journal_inflight);
		uint64_t now = wf_now_ns();
		if (now - ctx->journal_pending_ns < linger)
			return ctx->journal_pending_ns + linger - now;
	}
	r = wf_journal_flush_begin(ctx->journal, &f);
	if (r < 0) {
		wf_err("journal flush failed: %s; events are no longer acknowledged", strerror(-r));
		ctx->journal_failed = 1;
		return 0;
	}
	if (r == 0)
		return 0; /* every flight taken, or a segment roll waits for them */
	slot = (uint32_t)(f.id % WF_JOURNAL_FLIGHTS_MAX);
	jf = &ctx->jflush[slot];
	jf->id = f.id;
	jf->n = ctx->journal_pending_n;
	jf->t0 = wf_now_ns();
	ctx->journal_inflight++;
	ctx->journal_pending_n = 0;
	/* The write itself is synchronous: a group's few KB into the page
	 * cache cost microseconds, while io_uring hands a buffered ext4 write
	 * to an io-wq worker, and that worker's wake-up on a busy 2-core box
	 * took 300-700 us a flush (bench/run JOURNAL lines, durability os).
	 * Only the fdatasync, which blocks for real, goes through the ring. */
	jf->written = wf_journal_flush_write(&f);
	/* The recent largest group: grows at once, decays by 1/8 a flush. */
	ctx->journal_group_max = WF_MAX(jf->n, ctx->journal_group_max * 7 / 8);
	if (jf->written < 0 || !f.sync) {
		journal_done(ctx, slot, jf->written);
	} else {
		sqe = get_sqe(ctx);
		io_uring_prep_fsync(sqe, f.fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, ud(OP_JSYNC, slot, 0));
	}
	return 0;
}

/* Flush slot ended: res = the bytes written, or -errno (of the write or
 * the fdatasync). Then the replies it made durable may go (with every
 * older flush ended): the connections in the journal-wait FIFO up to the
 * durable LSN (LSNs are issued in order, so the FIFO is in LSN order), or
 * every connection when the journal failed (they get errors instead). */
static void journal_done(struct ingest_ctx *ctx, uint32_t slot, int64_t res)
{
	struct ingest_jflush *jf = &ctx->jflush[slot];
	uint64_t took = wf_now_ns() - jf->t0, durable;

	ctx->journal_inflight--;
	/* EWMA, 1/4 weight on the newest: a spike moves it, one does not rule it */
	ctx->journal_flush_ns = ctx->journal_flush_ns ? (3 * ctx->journal_flush_ns + took) / 4 : took;
	ctx->journal_flushes++;
	ctx->journal_flushed_events += jf->n;
	if (wf_journal_flush_end(ctx->journal, jf->id, res) < 0 && !ctx->journal_failed) {
		wf_err("journal write failed: %s; events are no longer acknowledged", strerror(res < 0 ? (int)-res : EIO));
		ctx->journal_failed = 1;
	}
	if (ctx->journal_failed) {
		for (uint32_t i = 0; i < ctx->nconns_cap; i++) {
			struct ingest_conn *c = ctx->conns[i];
			if (c && c->fd >= 0 && c->head < c->tail)
				conn_drain(ctx, c);
		}
		ctx->jwait_head = ctx->jwait_tail;
		return;
	}
	durable = wf_journal_durable_lsn(ctx->journal);
	while (ctx->jwait_head < ctx->jwait_tail) {
		struct ingest_jwait *w = &ctx->jwait[ctx->jwait_head % ctx->jwait_cap];
		struct ingest_conn *c;

		if (w->lsn > durable)
			break;
		ctx->jwait_head++;
		c = ctx->conns[w->conn_idx];
		if (c && c->gen == w->conn_gen && c->fd >= 0 && c->head < c->tail)
			conn_drain(ctx, c);
	}
}

/* ---- completions ---- */

static void on_accept(struct ingest_ctx *ctx, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		ctx->accept_armed = 0;
	if (cqe->res < 0) {
		if (cqe->res != -EINTR && cqe->res != -ECANCELED)
			wf_warn("accept failed: %s", strerror(-cqe->res));
		return;
	}
	if (ctx->stopping) {
		close(cqe->res);
		return;
	}
	struct ingest_conn *c = conn_new(ctx, cqe->res);
	if (!c) {
		static const char m[] = "-ERR max clients reached\r\n";
		if (write(cqe->res, m, sizeof(m) - 1) < 0) {
			/* refused client: nothing more to tell it */
		}
		close(cqe->res);
		return;
	}
	arm_recv(ctx, c);
}

static void on_recv(struct ingest_ctx *ctx, struct ingest_conn *c, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->recv_armed = c->recv_cancel = 0; /* the multishot recv ended */
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		uint8_t *buf = ctx->bufs + (size_t)bid * INGEST_BUF_SIZE;
		if (cqe->res > 0 && !c->dead && wf_buf_append(&c->in, buf, (size_t)cqe->res) < 0)
			c->dead = 1;
		io_uring_buf_ring_add(ctx->br, buf, INGEST_BUF_SIZE, bid, io_uring_buf_ring_mask(INGEST_BUF_COUNT), 0);
		io_uring_buf_ring_advance(ctx->br, 1);
	}
	if (cqe->res == -ENOBUFS || (cqe->res == -ECANCELED && !c->recv_armed)) {
		mark_dirty(ctx, c); /* buffers ran dry, or backpressure: re-arm when allowed */
		return;
	}
	if (cqe->res <= 0 || c->dead) {
		conn_kill(ctx, c);
		return;
	}
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.bytes_in, (uint64_t)cqe->res, memory_order_relaxed);
	conn_parse(ctx, c);
	/* Backpressure: stop the multishot recv now, not at the end of the
	 * pass, so that no more than what is already received comes in. */
	if (!recv_allowed(ctx, c) && c->recv_armed && !c->recv_cancel) {
		recv_stop(ctx, c);
		io_uring_submit(&ctx->ring);
	}
	/* Hand this connection's requests to the rankers now, not after every
	 * other completion of the pass: an event is visible sooner to a busy
	 * ranker, which is spinning and sees it at once (a sleeping one is
	 * woken at the end of the pass, wake_rankers()). */
	commit_shards(ctx);
	mark_dirty(ctx, c);
}

static void on_send(struct ingest_ctx *ctx, struct ingest_conn *c, struct io_uring_cqe *cqe)
{
	c->send_armed = 0;
	if (cqe->res <= 0 || c->dead) {
		conn_kill(ctx, c);
		return;
	}
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.bytes_out, (uint64_t)cqe->res, memory_order_relaxed);
	wf_buf_consume(&c->sendbuf, (size_t)cqe->res);
	mark_dirty(ctx, c);
}

static int reap(struct ingest_ctx *ctx)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&ctx->ring, head, cqe) {
		uint64_t d = io_uring_cqe_get_data64(cqe);
		int op = (int)(d >> 56);
		uint32_t idx = (uint32_t)(d >> 32) & 0xffffff, gen = (uint32_t)d;
		struct ingest_conn *c = (op == OP_RECV || op == OP_SEND) && idx < ctx->nconns_cap ? ctx->conns[idx] : NULL;

		n++;
		switch (op) {
		case OP_ACCEPT:
			on_accept(ctx, cqe);
			break;
		case OP_RECV:
		case OP_SEND:
			if (!c || c->gen != gen) {
				/* stale: a buffer may still need returning */
				if (op == OP_RECV && (cqe->flags & IORING_CQE_F_BUFFER)) {
					uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
					io_uring_buf_ring_add(ctx->br, ctx->bufs + (size_t)bid * INGEST_BUF_SIZE,
							      INGEST_BUF_SIZE, bid, io_uring_buf_ring_mask(INGEST_BUF_COUNT), 0);
					io_uring_buf_ring_advance(ctx->br, 1);
				}
				break;
			}
			if (op == OP_RECV)
				on_recv(ctx, c, cqe);
			else
				on_send(ctx, c, cqe);
			break;
		case OP_BELL:
			ctx->bell_armed = 0;
			break;
		case OP_SIGNAL:
			ctx->sig_armed = 0;
			if (cqe->res > 0) {
				wf_info("signal received: stopping");
				ctx->stopping = 1;
			}
			break;
		case OP_JSYNC:
			journal_done(ctx, idx, cqe->res < 0 ? cqe->res : ctx->jflush[idx % WF_JOURNAL_FLIGHTS_MAX].written);
			break;
		case OP_CANCEL:
			break; /* the recv's own completion says it ended */
		}
	}
	io_uring_cq_advance(&ctx->ring, n);
	return (int)n;
}

/* ---- the loop ---- */

static void arm_fixed(struct ingest_ctx *ctx)
{
	struct io_uring_sqe *sqe;

	if (!ctx->accept_armed && !ctx->stopping) {
		sqe = get_sqe(ctx);
		io_uring_prep_multishot_accept(sqe, ctx->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, 0, 0));
		ctx->accept_armed = 1;
	}
	if (!ctx->bell_armed) {
		sqe = get_sqe(ctx);
		io_uring_prep_recv(sqe, ctx->bell_fd, ctx->bell_buf, sizeof(ctx->bell_buf), 0);
		io_uring_sqe_set_data64(sqe, ud(OP_BELL, 0, 0));
		ctx->bell_armed = 1;
	}
	if (!ctx->sig_armed) {
		sqe = get_sqe(ctx);
		io_uring_prep_read(sqe, ctx->signal_fd, ctx->sig_buf, sizeof(ctx->sig_buf), 0);
		io_uring_sqe_set_data64(sqe, ud(OP_SIGNAL, 0, 0));
		ctx->sig_armed = 1;
	}
}

static void retry_stalled(struct ingest_ctx *ctx)
{
	uint32_t left = 0;

	if (!ctx->any_stalled)
		return;
	ctx->any_stalled = 0;
	for (uint32_t i = 0; i < ctx->nconns_cap; i++) {
		struct ingest_conn *c = ctx->conns[i];
		if (c && c->fd >= 0 && c->stalled) {
			conn_parse(ctx, c);
			mark_dirty(ctx, c);
			left |= c->stalled;
		}
	}
	ctx->any_stalled |= left;
}

static void service_dirty(struct ingest_ctx *ctx)
{
	for (uint32_t i = 0; i < ctx->ndirty; i++) {
		struct ingest_conn *c = ctx->conns[ctx->dirty[i]];
		c->dirty = 0;
		if (c->fd < 0)
			continue;
		if (c->dead) {
			conn_kill(ctx, c);
			continue;
		}
		arm_send(ctx, c);
		if (c->closing && !c->send_armed && c->head == c->tail) {
			conn_kill(ctx, c);
			continue;
		}
		recv_stop(ctx, c);
		arm_recv(ctx, c);
	}
	ctx->ndirty = 0;
}

static int rings_readable(struct ingest_ctx *ctx)
{
	for (uint32_t s = 0; s < ctx->nshards; s++)
		if (wf_ring_readable(&ctx->shards[s].rep))
			return 1;
	return 0;
}

static int owed(struct ingest_ctx *ctx)
{
	for (uint32_t s = 0; s < ctx->nshards; s++)
		if (ctx->shards[s].fifo_head != ctx->shards[s].fifo_tail)
			return 1;
	return 0;
}

static void run(struct ingest_ctx *ctx)
{
	uint64_t stop_deadline = 0;
	uint32_t stalled_tick = 0;

	for (;;) {
		int work = reap(ctx);

		work += poll_replies(ctx);
		if (ctx->ndirty || (++stalled_tick & 63) == 0)
			retry_stalled(ctx);
		commit_shards(ctx);
		uint64_t due = journal_kick(ctx);
		service_dirty(ctx);
		arm_fixed(ctx);
		/* A: pairs with the release store of shutdown in weft-admin. */
		if (atomic_load_explicit(&ctx->shm->ctl->shutdown, memory_order_acquire))
			ctx->stopping = 1;
		if (ctx->stopping) {
			if (!stop_deadline) {
				stop_deadline = wf_now_ns() + 5000000000ull;
				/* Read nothing more: requests already received are served. */
				for (uint32_t i = 0; i < ctx->nconns_cap; i++)
					if (ctx->conns[i] && ctx->conns[i]->fd >= 0)
						recv_stop(ctx, ctx->conns[i]);
			}
			/* Leave once every owed reply is sent (or after 5 s). */
			if ((!owed(ctx) && !ctx->journal_inflight) || wf_now_ns() > stop_deadline) {
				wake_rankers(ctx);
				break;
			}
		}
		if (work) {
			/* relaxed: a statistic for INFO/STATS readers, no ordering. */
			atomic_store_explicit(&ctx->shm->ctl->ingest_stats.commands, ctx->commands, memory_order_relaxed);
			atomic_store_explicit(&ctx->shm->ctl->ingest_stats.recs_front, ctx->recs_front,
					      memory_order_relaxed); /* statistic, as above */
			io_uring_submit(&ctx->ring);
			wake_rankers(ctx);
			continue;
		}
		wake_rankers(ctx);
		/* Idle: a short spin catches replies cheaply under load (a count
		 * of pause instructions, ~5 us, not clock reads), but only while
		 * a ranker owes a reply: with none owed (EVENTs, local and front
		 * answers) nothing can come on the rings and the spin only burnt
		 * the core before every sleep. */
		for (int i = 0; i < INGEST_SPIN_ITERS && owed(ctx) && !rings_readable(ctx); i++)
			__builtin_ia32_pause();
		if (rings_readable(ctx))
			continue;
		wf_wait_prepare(&ctx->shm->ctl->ingest_wait);
		if (rings_readable(ctx)) {
			wf_wait_cancel(&ctx->shm->ctl->ingest_wait);
			continue;
		}
		/* Sleep until a completion, a doorbell, or the group commit due. */
		/* A connection stalled on a full request ring waits for a
		 * ranker to release space; a ranker rings the doorbell for that
		 * only when the ring was over half full (EVENT batches send no
		 * replies): poll stalled connections every ms as well. */
		uint64_t nap = ctx->any_stalled ? 1000000ull : 50000000ull;
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = (long long)(due ? WF_MIN(due, nap) : nap) };
		struct io_uring_cqe *cqe;
		io_uring_submit_and_wait_timeout(&ctx->ring, &cqe, 1, &ts, NULL);
		wf_wait_cancel(&ctx->shm->ctl->ingest_wait);
	}
}

/* ---- setup ---- */

static int setup_buffers(struct ingest_ctx *ctx)
{
	struct io_uring_buf_reg reg = { 0 };
	size_t ring_bytes = INGEST_BUF_COUNT * sizeof(struct io_uring_buf);
	int r;

	ctx->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	ctx->bufs = malloc((size_t)INGEST_BUF_COUNT * INGEST_BUF_SIZE);
	if (ctx->br == MAP_FAILED || !ctx->bufs)
		return -ENOMEM;
	reg.ring_addr = (uint64_t)(uintptr_t)ctx->br;
	reg.ring_entries = INGEST_BUF_COUNT;
	reg.bgid = INGEST_BGID;
	r = io_uring_register_buf_ring(&ctx->ring, &reg, 0);
	if (r < 0)
		return r;
	io_uring_buf_ring_init(ctx->br);
	for (uint32_t i = 0; i < INGEST_BUF_COUNT; i++)
		io_uring_buf_ring_add(ctx->br, ctx->bufs + (size_t)i * INGEST_BUF_SIZE, INGEST_BUF_SIZE, (uint16_t)i,
				      io_uring_buf_ring_mask(INGEST_BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(ctx->br, INGEST_BUF_COUNT);
	return 0;
}

static int open_listener(struct ingest_ctx *ctx)
{
	int n = sd_listen_fds(0), r;
	unsigned int gid = 0;

	if (n > 0) {
		ctx->listen_fd = SD_LISTEN_FDS_START;
		return 0;
	}
	if (ctx->socket_group && wf_group_gid(ctx->socket_group, &gid) < 0) {
		wf_err("client socket group '%s' does not exist: create it (groupadd %s) or pass another "
		       "--socket-group", ctx->socket_group, ctx->socket_group);
		return -ENOENT;
	}
	r = wf_unix_listen(ctx->sock_path, 4096, ctx->socket_group ? 0660 : 0666,
			   ctx->socket_group ? (int64_t)gid : -1, 0, &ctx->listen_fd);
	if (r < 0)
		wf_err("cannot listen on %s: %s", ctx->sock_path, strerror(-r));
	return r;
}

static int open_bell(struct ingest_ctx *ctx)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "weft-bell.%s", ctx->shm_name);

	ctx->bell_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ctx->bell_fd < 0)
		return -errno;
	if (bind(ctx->bell_fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) <
	    0) {
		int r = -errno;
		wf_err("cannot bind the doorbell socket for %s: %s (is another weft-ingest running on this segment?)",
		       ctx->shm_name, strerror(-r));
		return r;
	}
	return 0;
}

/* Sessions pinned before a restart stay pinned: the journal says where
 * each one went. */
static void rebuild_routes(struct ingest_ctx *ctx)
{
	struct wf_journal_reader *r;
	static struct wf_journal_rec rec;
	uint64_t since = wf_wall_ms() - ctx->route_ttl_ms, n = 0;

	if (wf_journal_reader_open(ctx->journal_dir, 0, &r) < 0)
		return;
	while (wf_journal_reader_next(r, &rec) == 1)
		if (rec.ts_ms >= since && rec.argc > 0) {
			wf_route_pin(&ctx->route, rec.argv[0], rec.argl[0], rec.shard, rec.ts_ms);
			n++;
		}
	wf_journal_reader_close(r);
	if (n)
		wf_info("routing rebuilt from %llu journal events", (unsigned long long)n);
}

static void usage(FILE *f)
{
	fputs("usage: weft-ingest --dir DIR --shm NAME [--socket PATH] [--max-clients N]\n"
	      "                   [--journal DIR] [--durability fsync|os] [--journal-flights N]\n"
	      "                   [--sessions N] [--socket-group G]\n"
	      "  --socket PATH     client socket (default DIR/weft.sock; systemd socket activation wins)\n"
	      "  --journal DIR     event journal (default DIR/journal)\n"
	      "  --durability M    fsync: acknowledge after fdatasync (default); os: after write()\n"
	      "  --journal-flights N  journal flushes (fdatasyncs) in flight at once, 1..16 (default 4)\n"
	      "  --sessions N      sessions the routing table holds per half TTL, 1024..268435456\n"
	      "                    (default 4194304: 2 x 192 MiB, resident from the start; past it\n"
	      "                    the oldest half is forgotten early)\n"
	      "  --socket-group G  give the socket to group G, mode 0660 (default: mode 0666)\n",
	      f);
}

static int parse_args(struct ingest_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },        { "shm", required_argument, NULL, 'm' },
		{ "socket", required_argument, NULL, 's' },     { "max-clients", required_argument, NULL, 'c' },
		{ "journal", required_argument, NULL, 'j' },    { "durability", required_argument, NULL, 'D' },
		{ "socket-group", required_argument, NULL, 'g' }, { "journal-flights", required_argument, NULL, 'F' },
		{ "sessions", required_argument, NULL, 'S' },   { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char sock[WF_PATH_MAX], jdir[WF_PATH_MAX];
	int o;
	int64_t v;

	ctx->max_clients = 10000;
	ctx->route_ttl_ms = 3600 * 1000ull;
	ctx->route_sessions = 1u << 22;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': ctx->dir = optarg; break;
		case 'm': ctx->shm_name = optarg; break;
		case 's': ctx->sock_path = optarg; break;
		case 'j': ctx->journal_dir = optarg; break;
		case 'g': ctx->socket_group = optarg; break;
		case 'c':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 1 || v > 1000000) {
				fprintf(stderr, "weft-ingest: --max-clients wants 1..1000000\n");
				return -EINVAL;
			}
			ctx->max_clients = (uint32_t)v;
			break;
		case 'S':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 1024 || v > (1ll << 28)) {
				fprintf(stderr, "weft-ingest: --sessions wants 1024..268435456\n");
				return -EINVAL;
			}
			ctx->route_sessions = (uint32_t)v;
			break;
		case 'F':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 1 || v > WF_JOURNAL_FLIGHTS_MAX) {
				fprintf(stderr, "weft-ingest: --journal-flights wants 1..%u\n", WF_JOURNAL_FLIGHTS_MAX);
				return -EINVAL;
			}
			ctx->journal_flights = (uint32_t)v;
			break;
		case 'D':
			if (strcmp(optarg, "fsync") == 0)
				ctx->durability = WF_JOURNAL_FSYNC;
			else if (strcmp(optarg, "os") == 0)
				ctx->durability = WF_JOURNAL_OS;
			else {
				fprintf(stderr, "weft-ingest: --durability is fsync or os\n");
				return -EINVAL;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (!ctx->dir || !ctx->shm_name || optind != argc) {
		fprintf(stderr, "weft-ingest: --dir and --shm are required\n");
		usage(stderr);
		return -EINVAL;
	}
	if (!ctx->sock_path) {
		snprintf(sock, sizeof(sock), "%s/weft.sock", ctx->dir);
		ctx->sock_path = sock;
	}
	if (!ctx->journal_dir) {
		snprintf(jdir, sizeof(jdir), "%s/journal", ctx->dir);
		ctx->journal_dir = jdir;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct ingest_ctx ctx;
	struct wf_journal_opts jo = { 0 };
	struct io_uring_params p = { 0 };
	char err[512];
	sigset_t set;
	int r;

	wf_log_init("weft-ingest");
	if (parse_args(&ctx, argc, argv) < 0)
		return 2;
	ctx.start_ms = wf_wall_ms();
	for (int i = 0; i < 200 && (r = wf_shm_attach(ctx.shm_name, &ctx.shm)) == -ENOENT; i++)
		usleep(50000);
	if (r < 0) {
		wf_err("cannot attach shared segment %s: %s (is weft-admin running?)", ctx.shm_name, strerror(-r));
		return 1;
	}
	ctx.nshards = wf_shm_nshards(ctx.shm);
	/* relaxed: the epoch only has to differ from the previous ingest's;
	 * rankers copy it from requests, never read it here. */
	ctx.epoch = atomic_fetch_add_explicit(&ctx.shm->ctl->ingest_epoch, 1, memory_order_relaxed) + 1;
	ctx.shards = calloc(ctx.nshards, sizeof(*ctx.shards));
	ctx.req = malloc(sizeof(*ctx.req));
	ctx.nconns_cap = ctx.max_clients;
	ctx.conns = calloc(ctx.nconns_cap, sizeof(*ctx.conns));
	ctx.free_idx = malloc(ctx.nconns_cap * sizeof(*ctx.free_idx));
	ctx.dirty = malloc(ctx.nconns_cap * sizeof(*ctx.dirty));
	if (!ctx.shards || !ctx.req || !ctx.conns || !ctx.free_idx || !ctx.dirty) {
		wf_err("out of memory at start");
		return 1;
	}
	for (uint32_t i = 0; i < ctx.nconns_cap; i++)
		ctx.free_idx[ctx.nfree++] = ctx.nconns_cap - 1 - i;
	for (uint32_t s = 0; s < ctx.nshards; s++) {
		struct ingest_shard *sh = &ctx.shards[s];
		sh->sc = wf_shm_shard(ctx.shm, s);
		sh->front = wf_shm_front(ctx.shm, s);
		wf_ring_prod_attach(&sh->req, wf_shm_req_ring(ctx.shm, s));
		wf_ring_cons_attach(&sh->rep, wf_shm_rep_ring(ctx.shm, s));
		sh->fifo_cap = 1u << 17;
		sh->fifo = malloc(sh->fifo_cap * sizeof(*sh->fifo));
		if (!sh->fifo) {
			wf_err("out of memory at start");
			return 1;
		}
	}
	if (wf_route_init(&ctx.route, ctx.nshards, ctx.route_sessions, ctx.route_ttl_ms, wf_wall_ms()) < 0) {
		wf_err("out of memory for the session table (--sessions %u: try fewer)", ctx.route_sessions);
		return 1;
	}
	jo.durability = ctx.durability;
	jo.flights = ctx.journal_flights;
	r = wf_journal_open(ctx.journal_dir, &jo, &ctx.journal, err, sizeof(err));
	if (r < 0) {
		wf_err("%s", err);
		return 1;
	}
	rebuild_routes(&ctx);

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	ctx.signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
	r = io_uring_queue_init_params(4096, &ctx.ring, &p);
	if (r < 0) {
		p.flags = 0;
		r = io_uring_queue_init_params(4096, &ctx.ring, &p);
	}
	if (r < 0) {
		wf_err("io_uring_queue_init() failed: %s (is io_uring disabled? see /proc/sys/kernel/io_uring_disabled)",
		       strerror(-r));
		return 1;
	}
	r = setup_buffers(&ctx);
	if (r < 0) {
		wf_err("cannot register the receive buffer ring: %s (kernel >= 5.19 needed)", strerror(-r));
		return 1;
	}
	if (ctx.signal_fd < 0 || open_bell(&ctx) < 0 || open_listener(&ctx) < 0)
		return 1;
	atomic_store_explicit(&ctx.shm->ctl->ingest_pid, (uint32_t)getpid(), memory_order_relaxed); /* display */
	/* R: pairs with the acquire load of ingest_ready in weft-admin / weftctl up. */
	atomic_store_explicit(&ctx.shm->ctl->ingest_ready, 1, memory_order_release);
	sd_notify(0, "READY=1");
	wf_info("serving clients on %s (%u shards, journal %s, durability %s)", ctx.sock_path, ctx.nshards,
		ctx.journal_dir, ctx.durability == WF_JOURNAL_FSYNC ? "fsync" : "os");
	run(&ctx);
	atomic_store_explicit(&ctx.shm->ctl->ingest_ready, 0, memory_order_release);
	if (!ctx.journal_failed)
		wf_journal_flush_sync(ctx.journal);
	wf_journal_close(ctx.journal);
	wf_info("RECS answered from the front tables: %llu", (unsigned long long)ctx.recs_front);
	if (ctx.journal_flushes)
		wf_info("journal: %llu flushes, %.1f events per group, %.0f us per flush (smoothed)",
			(unsigned long long)ctx.journal_flushes,
			(double)ctx.journal_flushed_events / (double)ctx.journal_flushes, ctx.journal_flush_ns / 1e3);
	io_uring_queue_exit(&ctx.ring);
	free(ctx.jwait);
	wf_info("stopped");
	return 0;
}
