/*
 * conn.c - weft-ingest's connections: their life (new, kill, release),
 * their reply slots (one per request, filled in any order, sent in
 * request order), parsing what they sent, and arming their receive and
 * send on the ring. Linked into weft-ingest only.
 *
 * A connection's replies are slots head..tail (absolute numbers, a ring
 * of cap). A slot is ready once its bytes are in; an EVENT's slot also
 * waits until the journal is durable past its LSN (commit.c).
 * ingest_conn_drain() moves the ready prefix to the output buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingest/ingest.h"

/* Fits INGEST_SLOT_INLINE: filling a slot with it cannot fail. */
static const char ERR_NOMEM[] = "-ERR out of memory\r\n";
_Static_assert(sizeof(ERR_NOMEM) - 1 <= INGEST_SLOT_INLINE, "ERR_NOMEM is inline");

void ingest_mark_dirty(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	if (!c->dirty) {
		c->dirty = 1;
		ctx->dirty[ctx->ndirty++] = c->idx;
	}
}

struct ingest_conn *ingest_conn_new(struct ingest_ctx *ctx, int fd)
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
	c->recv_cancel = c->kafka = 0;
	c->ack_hold_ns = 0;
	c->head = c->tail = 0;
	c->active_ns = ctx->pass_ns;
	c->partial_ns = 0;
	if (!c->slots) {
		c->cap = 64;
		c->slots = calloc(c->cap, sizeof(*c->slots));
		if (!c->slots) {
			ctx->nfree++;
			return NULL;
		}
	}
	ctx->nconns++;
	/* relaxed: statistics for INFO/STATS readers, no ordering. */
	atomic_store_explicit(&ctx->shm->ctl->ingest_stats.connections, ctx->nconns, memory_order_relaxed);
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.connections_total, 1, memory_order_relaxed);
	return c;
}

static void conn_release(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	ingest_pubsub_drop(ctx, c);
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
	ctx->kafka_conns -= c->kafka;
	ctx->free_idx[ctx->nfree++] = c->idx;
	ctx->nconns--;
	/* relaxed: statistic, as in ingest_conn_new(). */
	atomic_store_explicit(&ctx->shm->ctl->ingest_stats.connections, ctx->nconns, memory_order_relaxed);
}

void ingest_conn_kill(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	if (!c->dead) {
		c->dead = 1;
		shutdown(c->fd, SHUT_RDWR); /* completes an armed recv */
	}
	if (!c->recv_armed && !c->send_armed && c->fd >= 0)
		conn_release(ctx, c);
}

struct ingest_slot *ingest_slot_new(struct ingest_conn *c)
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

int ingest_slot_fill(struct ingest_slot *sl, const char *data, size_t len)
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

void ingest_slot_answer(struct ingest_ctx *ctx, struct ingest_conn *c, uint64_t slot, const char *data, size_t len)
{
	struct ingest_slot *sl = &c->slots[slot % c->cap];

	if (ingest_slot_fill(sl, data, len) < 0) {
		ingest_slot_fill(sl, ERR_NOMEM, sizeof(ERR_NOMEM) - 1); /* inline: cannot fail */
		/* relaxed: statistic. */
		atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.errors, 1, memory_order_relaxed);
	}
	ingest_conn_drain(ctx, c);
}

void ingest_conn_drain(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	uint64_t durable = wf_journal_durable_lsn(ctx->journal);
	uint64_t acked = 0;

	while (c->head < c->tail) {
		struct ingest_slot *sl = &c->slots[c->head % c->cap];

		if (!sl->ready)
			break;
		/* An EVENT not yet durable (a failed journal turned each
		 * such reply into an error: commit.c journal_failed()). */
		if (sl->wait_lsn > durable)
			break;
		int ack = sl->wait_lsn != 0 && !sl->note_held; /* an EVENT's :1 */
		c->out_acks = (uint8_t)(ack && (c->out.len == 0 || c->out_acks));
		wf_buf_append(&c->out, sl->data ? sl->data : sl->inl, sl->len);
		ingest_lat_queued(ctx, sl->lat_series, sl->lat_t0);
		acked += (uint64_t)ack; /* (not a reply behind a note) */
		free(sl->data);
		sl->data = NULL;
		if (sl->close)
			c->closing = 1;
		c->head++;
		if (c->closing)
			break;
	}
	if (acked) /* relaxed: statistic */
		atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.events_acked, acked, memory_order_relaxed);
	if (c->out.len)
		ingest_mark_dirty(ctx, c);
}

int ingest_reply_local(struct ingest_ctx *ctx, struct ingest_conn *c, const char *data, size_t len, int close)
{
	struct ingest_slot *sl;

	if (close)
		c->last_queued = 1;
	/* In order and nothing owed before it: straight to the output. */
	if (c->head == c->tail && !close) {
		if (wf_buf_append(&c->out, data, len) < 0)
			return -ENOMEM;
		c->out_acks = 0;
		ingest_lat_queued(ctx, ctx->lat.series + 1, ctx->pass_ns); /* NONE + 1 = 0: not timed */
		ingest_mark_dirty(ctx, c);
		return 0;
	}
	sl = ingest_slot_new(c);
	if (!sl || ingest_slot_fill(sl, data, len) < 0)
		return -ENOMEM;
	sl->close = (uint8_t)close;
	ingest_lat_stamp(ctx, sl, ctx->lat.series);
	ingest_conn_drain(ctx, c);
	return 0;
}

/* Refuse a frame that cannot be parsed: the error reply m, then close. */
static void conn_refuse(struct ingest_ctx *ctx, struct ingest_conn *c, const char *m, size_t len)
{
	ctx->lat.series = WF_LAT_LOCAL;
	ingest_reply_local(ctx, c, m, len, 1);
	/* relaxed: statistic */
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.errors, 1, memory_order_relaxed);
}

/* Parse and execute what a connection sent, until it stalls. A request
 * still incomplete past INGEST_MAX_INPUT can never be read (the connection
 * stops receiving there): it is refused and the connection closed. */
void ingest_conn_parse(struct ingest_ctx *ctx, struct ingest_conn *c)
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
			conn_refuse(ctx, c, m, (size_t)l);
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
			ingest_conn_kill(ctx, c);
			return;
		}
		off += (size_t)n;
	}
	if (n == 0 && c->in.len - off > INGEST_MAX_INPUT) {
		static const char m[] = "-ERR Protocol error: request larger than the 1.5 MiB input limit\r\n";
		conn_refuse(ctx, c, m, sizeof(m) - 1);
		off = c->in.len;
	}
	if (c->last_queued)
		off = c->in.len; /* nothing after QUIT or an error is executed */
	/* An unfinished request: its clock starts when the requests before
	 * it were taken (the request timeout, loop.c). */
	if (n == 0 && off < c->in.len) {
		if (!c->partial_ns || off)
			c->partial_ns = ctx->pass_ns;
	} else {
		c->partial_ns = 0;
	}
	wf_buf_consume(&c->in, off);
}

/* Not while it is stalled, owes too many replies, has too much output
 * queued or input unparsed, is closing, or ingest is stopping: the
 * kernel socket buffer then pushes back. */
int ingest_recv_allowed(const struct ingest_ctx *ctx, const struct ingest_conn *c)
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
 * backpressure sends (ingest_recv_stop()) when the connection may not be
 * read; completions the kernel posted before the cancel landed still go
 * to c->in: on a busy box that can be every provided buffer
 * (INGEST_BUF_COUNT x INGEST_BUF_SIZE), the bound past INGEST_MAX_INPUT
 * that test_ingest_backpressure_stops_reading checks.
 */
void ingest_arm_recv(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->recv_armed || !ingest_recv_allowed(ctx, c))
		return;
	if (!(sqe = ingest_get_sqe(ctx)))
		return; /* armed on a later pass (sqe_short) */
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = INGEST_BGID;
	io_uring_sqe_set_data64(sqe, ingest_ud(INGEST_OP_RECV, c->idx, c->gen));
	c->recv_armed = 1;
}

/* Backpressure: cancel an armed recv of a connection that may not be read. */
void ingest_recv_stop(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->recv_armed || c->recv_cancel || c->dead || ingest_recv_allowed(ctx, c))
		return;
	if (!(sqe = ingest_get_sqe(ctx)))
		return; /* sent on a later pass (sqe_short) */
	io_uring_prep_cancel64(sqe, ingest_ud(INGEST_OP_RECV, c->idx, c->gen), 0);
	io_uring_sqe_set_data64(sqe, ingest_ud(INGEST_OP_CANCEL, 0, 0));
	c->recv_cancel = 1;
}

/*
 * Hold c's output for now: it is EVENT acks only, a few, and the reply
 * right after them is a ranker's, not in yet (or in, and held for the
 * durability of a note it wrote: notes.c). A page view pipelines
 * its EVENTs and then its RECS; the acks are durable at once (durability
 * os) or after the flush, the RECS reply a ranking later. Sent apart,
 * that was two sends, and two wake-ups and reads of the client, per
 * page view; held, they go out with the reply (as Redis writes a
 * pipeline's replies together). An ack waits no longer than the reply
 * queued behind it, which its client waits for anyway, and never longer
 * than INGEST_ACK_HOLD_NS (a stopped or slow ranker, a stopping ingest,
 * a request timeout: a durable EVENT's ack still goes out, and its client
 * does not send it twice); never more than INGEST_ACK_HOLD_MAX bytes, so
 * a bulk load of EVENTs is not held. The first hold of c's output starts
 * its clock and tells ingest_acks_due() when to look again.
 */
static int ack_hold(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	const struct ingest_slot *sl = &c->slots[c->head % c->cap];

	if (!c->out_acks || c->out.len > INGEST_ACK_HOLD_MAX || c->head == c->tail || c->closing || ctx->stopping ||
	    (sl->ready && !(sl->note_held && sl->wait_lsn > wf_journal_durable_lsn(ctx->journal))))
		return 0;
	if (!c->ack_hold_ns) {
		uint64_t due = ctx->pass_ns + INGEST_ACK_HOLD_NS;
		c->ack_hold_ns = ctx->pass_ns;
		if (!ctx->ack_hold_next || due < ctx->ack_hold_next)
			ctx->ack_hold_next = due;
		return 1;
	}
	return ctx->pass_ns - c->ack_hold_ns < INGEST_ACK_HOLD_NS;
}

void ingest_acks_due(struct ingest_ctx *ctx)
{
	uint64_t next = 0;

	if (!ctx->ack_hold_next || ctx->pass_ns < ctx->ack_hold_next)
		return;
	/* Due: each connection whose hold ran out is looked at again (its
	 * output goes out in this pass's service_dirty()); the others'
	 * holds set the next time. Rare: a ranker's reply comes in well under 50 ms. */
	for (uint32_t i = 0; i < ctx->nconns_cap; i++) {
		struct ingest_conn *c = ctx->conns[i];
		if (!c || c->fd < 0 || !c->ack_hold_ns)
			continue;
		if (ctx->pass_ns - c->ack_hold_ns >= INGEST_ACK_HOLD_NS)
			ingest_mark_dirty(ctx, c);
		else if (!next || c->ack_hold_ns + INGEST_ACK_HOLD_NS < next)
			next = c->ack_hold_ns + INGEST_ACK_HOLD_NS;
	}
	ctx->ack_hold_next = next;
}

void ingest_arm_send(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	struct io_uring_sqe *sqe;
	struct wf_buf t;

	if (c->send_armed || c->dead)
		return;
	if (c->sendbuf.len == 0) {
		if (c->out.len == 0 || ack_hold(ctx, c))
			return;
		t = c->sendbuf;
		c->sendbuf = c->out;
		c->out = t;
		c->out.len = 0;
		c->ack_hold_ns = 0;
	}
	if (!(sqe = ingest_get_sqe(ctx)))
		return; /* sent on a later pass (sqe_short); sendbuf keeps the bytes */
	io_uring_prep_send(sqe, c->fd, c->sendbuf.data, c->sendbuf.len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ingest_ud(INGEST_OP_SEND, c->idx, c->gen));
	c->send_armed = 1;
}
