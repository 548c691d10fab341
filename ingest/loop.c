/*
 * loop.c - weft-ingest's event loop: one thread, one io_uring. Each pass
 * reaps completions (accept, recv, send, doorbell, signal, fdatasync),
 * takes the rankers' replies, retries stalled connections, publishes the
 * requests to the rankers, starts the next journal flush, arms sends and
 * receives, and, with nothing to do, spins briefly and sleeps in the
 * ring until a completion, a doorbell or the group commit is due.
 * Linked into weft-ingest only.
 */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingest/ingest.h"

#define INGEST_SPIN_ITERS 200 /* idle pause loops before sleeping (~5 us) */
#define INGEST_STOP_NS 5000000000ull /* stopping: longest wait for owed replies */
#define INGEST_SWEEP_NS 100000000ull /* timeouts: a sweep at most every 100 ms */
#define INGEST_ACCEPT_PAUSE_NS 100000000ull  /* accepting paused after running out of descriptors */
#define INGEST_ACCEPT_WARN_NS 10000000000ull /* an "accept failed" warning at most this often */
#define INGEST_SWEEP_MAX 4096u       /* connections one sweep looks at */
#define INGEST_NOFUTEX_NAP_NS 2000000ull /* woken by signal: longest sleep while a reply is owed */

struct io_uring_sqe *ingest_get_sqe(struct ingest_ctx *ctx)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ctx->ring);

	if (!sqe) {
		io_uring_submit(&ctx->ring);
		sqe = io_uring_get_sqe(&ctx->ring);
	}
	if (!sqe)
		ctx->sqe_short = 1;
	return sqe;
}

/* A provided buffer goes back to the buffer ring. */
static void buf_return(struct ingest_ctx *ctx, uint16_t bid)
{
	io_uring_buf_ring_add(ctx->br, ctx->bufs + (size_t)bid * INGEST_BUF_SIZE, INGEST_BUF_SIZE, bid,
			      io_uring_buf_ring_mask(INGEST_BUF_COUNT), 0);
	io_uring_buf_ring_advance(ctx->br, 1);
}

/*
 * accept() failed with err. Out of descriptors or memory (a flood of
 * connections, a low open-file limit), accepting again at once fails
 * again at once: the loop would spin on it and write a warning each time
 * (23 million lines in two minutes, seen). So accepting pauses for
 * INGEST_ACCEPT_PAUSE_NS (the clients wait in the listen backlog, and are
 * taken once connections close), and the warning says how often, at
 * most every INGEST_ACCEPT_WARN_NS.
 */
static void accept_failed(struct ingest_ctx *ctx, int err)
{
	struct rlimit rl = { 0 };
	uint64_t n;

	if (wf_accept_starved(err))
		ctx->accept_resume_ns = ctx->pass_ns + INGEST_ACCEPT_PAUSE_NS;
	if (!(n = wf_ratelimit(&ctx->accept_warns, ctx->pass_ns, INGEST_ACCEPT_WARN_NS)))
		return;
	getrlimit(RLIMIT_NOFILE, &rl);
	wf_warn("accept failed: %s (%llu time%s since the last warning; %u clients connected, open-file limit %llu)%s",
		strerror(err), (unsigned long long)n, n == 1 ? "" : "s", ctx->nconns, (unsigned long long)rl.rlim_cur,
		err == EMFILE || err == ENFILE ? "; new clients wait in the listen backlog until connections close: "
						 "raise the limit (LimitNOFILE=, ulimit -n) or connect fewer clients"
					       : "");
}

static void on_accept(struct ingest_ctx *ctx, struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		ctx->accept_armed = 0;
	if (cqe->res < 0) {
		if (cqe->res != -EINTR && cqe->res != -ECANCELED)
			accept_failed(ctx, -cqe->res);
		return;
	}
	if (ctx->stopping) {
		close(cqe->res);
		return;
	}
	struct ingest_conn *c = ingest_conn_new(ctx, cqe->res);
	if (!c) {
		static const char m[] = "-ERR max clients reached\r\n";
		if (write(cqe->res, m, sizeof(m) - 1) < 0) {
			/* refused client: nothing more to tell it */
		}
		close(cqe->res);
		return;
	}
	ingest_arm_recv(ctx, c);
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
		buf_return(ctx, bid);
	}
	if (cqe->res == -ENOBUFS || (cqe->res == -ECANCELED && !c->recv_armed)) {
		ingest_mark_dirty(ctx, c); /* buffers ran dry, or backpressure: re-arm when allowed */
		return;
	}
	if (cqe->res <= 0 || c->dead) {
		ingest_conn_kill(ctx, c);
		return;
	}
	/* relaxed: statistic */
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.bytes_in, (uint64_t)cqe->res, memory_order_relaxed);
	c->active_ns = ctx->pass_ns;
	ingest_conn_parse(ctx, c);
	/* Backpressure: stop the multishot recv now, not at the end of the
	 * pass, so that no more than what is already received comes in. */
	if (!ingest_recv_allowed(ctx, c) && c->recv_armed && !c->recv_cancel) {
		ingest_recv_stop(ctx, c);
		io_uring_submit(&ctx->ring);
	}
	/* Hand this connection's requests to the rankers now, not after every
	 * other completion of the pass: an event is visible sooner to a busy
	 * ranker, which is spinning and sees it at once (a sleeping one is
	 * woken at the end of the pass, ingest_wake_rankers()). */
	ingest_shards_commit(ctx);
	ingest_mark_dirty(ctx, c);
}

static void on_send(struct ingest_ctx *ctx, struct ingest_conn *c, struct io_uring_cqe *cqe)
{
	c->send_armed = 0;
	if (cqe->res <= 0 || c->dead) {
		ingest_conn_kill(ctx, c);
		return;
	}
	/* relaxed: statistic */
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.bytes_out, (uint64_t)cqe->res, memory_order_relaxed);
	wf_buf_consume(&c->sendbuf, (size_t)cqe->res);
	c->active_ns = ctx->pass_ns;
	ingest_mark_dirty(ctx, c);
}

/* A recv or send completion: to its connection unless stale (the
 * connection was released and maybe reused since). */
static void on_conn(struct ingest_ctx *ctx, int op, uint32_t idx, uint32_t gen, struct io_uring_cqe *cqe)
{
	struct ingest_conn *c = idx < ctx->nconns_cap ? ctx->conns[idx] : NULL;

	if (!c || c->gen != gen) {
		/* stale: a buffer may still need returning */
		if (op == INGEST_OP_RECV && (cqe->flags & IORING_CQE_F_BUFFER))
			buf_return(ctx, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
		return;
	}
	if (op == INGEST_OP_RECV)
		on_recv(ctx, c, cqe);
	else
		on_send(ctx, c, cqe);
}

static int reap(struct ingest_ctx *ctx)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&ctx->ring, head, cqe) {
		uint64_t d = io_uring_cqe_get_data64(cqe);
		int op = (int)(d >> 56);
		uint32_t idx = (uint32_t)(d >> 32) & 0xffffff, gen = (uint32_t)d;

		n++;
		switch (op) {
		case INGEST_OP_ACCEPT:
			on_accept(ctx, cqe);
			break;
		case INGEST_OP_RECV:
		case INGEST_OP_SEND:
			on_conn(ctx, op, idx, gen, cqe);
			break;
		case INGEST_OP_BELL:
			ctx->bell_armed = 0;
			if (cqe->res == -EINVAL || cqe->res == -EOPNOTSUPP) {
				wf_warn("io_uring futex wait refused (%s): polling replies instead",
					strerror(-cqe->res));
				ctx->futex_ok = 0;
			}
			break;
		case INGEST_OP_SIGNAL:
			ctx->sig_armed = 0;
			for (int off = 0; off + (int)sizeof(struct signalfd_siginfo) <= cqe->res;
			     off += (int)sizeof(struct signalfd_siginfo)) {
				struct signalfd_siginfo si;
				memcpy(&si, ctx->sig_buf + off, sizeof(si));
				if (si.ssi_signo == WF_WAIT_WAKE_SIGNAL)
					continue; /* a ranker's wake-up (idle()): this pass takes its replies */
				if (!ctx->stopping)
					wf_info("signal received: stopping");
				ctx->stopping = 1;
			}
			break;
		case INGEST_OP_JSYNC:
			ingest_journal_done(ctx, idx,
					    cqe->res < 0 ? cqe->res : ctx->gc.jflush[idx % WF_JOURNAL_FLIGHTS_MAX].written);
			break;
		case INGEST_OP_CANCEL:
			break; /* the recv's own completion says it ended */
		}
	}
	io_uring_cq_advance(&ctx->ring, n);
	return (int)n;
}

/* The listener's accept and the signalfd: armed again whenever one ended
 * (each pass looks). The doorbell is armed by idle() only. */
static void arm_fixed(struct ingest_ctx *ctx)
{
	struct io_uring_sqe *sqe;

	if (ctx->accept_resume_ns && ctx->pass_ns >= ctx->accept_resume_ns)
		ctx->accept_resume_ns = 0;
	if (!ctx->accept_armed && !ctx->accept_resume_ns && !ctx->stopping && (sqe = ingest_get_sqe(ctx))) {
		io_uring_prep_multishot_accept(sqe, ctx->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		io_uring_sqe_set_data64(sqe, ingest_ud(INGEST_OP_ACCEPT, 0, 0));
		ctx->accept_armed = 1;
	}
	if (!ctx->sig_armed && (sqe = ingest_get_sqe(ctx))) {
		io_uring_prep_read(sqe, ctx->signal_fd, ctx->sig_buf, sizeof(ctx->sig_buf), 0);
		io_uring_sqe_set_data64(sqe, ingest_ud(INGEST_OP_SIGNAL, 0, 0));
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
			ingest_conn_parse(ctx, c);
			ingest_mark_dirty(ctx, c);
			left |= c->stalled;
		}
	}
	ctx->any_stalled |= left;
}

/* An operation found no SQE last pass: every connection is looked at
 * again (rare: only when a submit failed). */
static void retry_short(struct ingest_ctx *ctx)
{
	if (!ctx->sqe_short)
		return;
	ctx->sqe_short = 0;
	for (uint32_t i = 0; i < ctx->nconns_cap; i++)
		if (ctx->conns[i] && ctx->conns[i]->fd >= 0)
			ingest_mark_dirty(ctx, ctx->conns[i]);
}

static void service_dirty(struct ingest_ctx *ctx)
{
	for (uint32_t i = 0; i < ctx->ndirty; i++) {
		struct ingest_conn *c = ctx->conns[ctx->dirty[i]];
		c->dirty = 0;
		if (c->fd < 0)
			continue;
		if (c->dead) {
			ingest_conn_kill(ctx, c);
			continue;
		}
		ingest_arm_send(ctx, c);
		if (c->closing && !c->send_armed && c->head == c->tail) {
			ingest_conn_kill(ctx, c);
			continue;
		}
		ingest_recv_stop(ctx, c);
		ingest_arm_recv(ctx, c);
	}
	ctx->ndirty = 0;
}

/* Close c for a timeout: a best-effort error line when nothing else is
 * owed or queued to it (a client that reads learns why), then shut. */
static void timeout_close(struct ingest_ctx *ctx, struct ingest_conn *c, const char *m, size_t len)
{
	if (m && c->head == c->tail && !c->out.len && !c->sendbuf.len && !c->send_armed &&
	    send(c->fd, m, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* its buffer is full or it left: closed all the same */
	}
	/* relaxed: statistic */
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.timeouts, 1, memory_order_relaxed);
	ingest_conn_kill(ctx, c);
}

/* Slow or idle clients (a slowloris holding every slot with half a
 * request): every INGEST_SWEEP_NS at most INGEST_SWEEP_MAX connections,
 * round robin, so a sweep's cost is bounded and --max-clients connections
 * are all looked at within max_clients / 4096 x 100 ms. A request left
 * unfinished past --request-timeout closes its connection; so does a
 * connection with nothing owed, queued or received past --idle-timeout. */
static void sweep_timeouts(struct ingest_ctx *ctx)
{
	static const char mreq[] = "-ERR request not completed in time (--request-timeout): closing\r\n";
	uint64_t now = ctx->pass_ns;

	if (now - ctx->sweep_ns < INGEST_SWEEP_NS)
		return;
	ctx->sweep_ns = now;
	/* Notes wait for a failed journal: try it again every second
	 * (EVENTs try it too, commit.c ingest_journal_retry()). */
	if (ingest_notes_waiting(ctx) && now - ctx->notes_retry_ns > 1000000000ull) {
		ctx->notes_retry_ns = now;
		(void)ingest_journal_retry(ctx);
	}
	if (!ctx->idle_ns && !ctx->request_ns)
		return;
	for (uint32_t n = 0; n < WF_MIN(ctx->nconns_cap, INGEST_SWEEP_MAX); n++) {
		struct ingest_conn *c = ctx->conns[ctx->sweep_next];

		ctx->sweep_next = (ctx->sweep_next + 1) % ctx->nconns_cap;
		if (!c || c->fd < 0 || c->dead)
			continue;
		if (ctx->request_ns && c->partial_ns && now - c->partial_ns > ctx->request_ns)
			timeout_close(ctx, c, mreq, sizeof(mreq) - 1);
		else if (ctx->idle_ns && now - c->active_ns > ctx->idle_ns && c->head == c->tail && !c->in.len &&
			 !c->out.len && !c->sendbuf.len && !c->send_armed && !c->sub) /* subscribers wait */
			timeout_close(ctx, c, NULL, 0);
	}
}

/* Stopping (a signal, or SHUTDOWN from weft-admin): read nothing more,
 * serve what was received. 1 once every owed reply is sent and no flush
 * is in flight, or after INGEST_STOP_NS. */
static int stop_done(struct ingest_ctx *ctx, uint64_t *deadline)
{
	if (!*deadline) {
		*deadline = wf_now_ns() + INGEST_STOP_NS;
		for (uint32_t i = 0; i < ctx->nconns_cap; i++)
			if (ctx->conns[i] && ctx->conns[i]->fd >= 0)
				ingest_recv_stop(ctx, ctx->conns[i]);
	}
	return (!ingest_owed(ctx) && !ctx->gc.inflight) || wf_now_ns() > *deadline;
}

/* The doorbell: a futex wait on ctl->ingest_wait.sleeping while it is 1,
 * in the ring. Armed only here, after wf_wait_prepare() set it: armed while
 * it is 0 (a ranker already woke us) it ends at once (-EAGAIN), as it
 * should. It stays armed across passes until a ranker's FUTEX_WAKE
 * (wf_wake_futex(), after wf_wait_needs_wake()) ends it. */
static void arm_bell(struct ingest_ctx *ctx)
{
	struct io_uring_sqe *sqe;

	if (!ctx->futex_ok || ctx->bell_armed || !(sqe = ingest_get_sqe(ctx)))
		return;
	io_uring_prep_rw(INGEST_IORING_OP_FUTEX_WAIT, sqe, (int)INGEST_FUTEX2_SIZE_U32,
			 &ctx->shm->ctl->ingest_wait.sleeping, 0, 1 /* sleep while the word is 1 */);
	sqe->addr3 = 0xffffffffu; /* FUTEX_BITSET_MATCH_ANY: any FUTEX_WAKE */
	io_uring_sqe_set_data64(sqe, ingest_ud(INGEST_OP_BELL, 0, 0));
	ctx->bell_armed = 1;
}

/* Nothing happened this pass: spin briefly while a ranker owes a reply,
 * then sleep in the ring until a completion, the doorbell (a ranker's
 * futex wake after a reply), or the group commit due in `due` ns (0:
 * none). */
static void idle(struct ingest_ctx *ctx, uint64_t due)
{
	/* A short spin catches replies cheaply under load (a count of pause
	 * instructions, not clock reads), but only while a ranker owes a
	 * reply: with none owed (EVENTs, local and front answers) nothing can
	 * come on the rings and the spin only burns the core. */
	for (int i = 0; i < INGEST_SPIN_ITERS && ingest_owed(ctx) && !ingest_rings_readable(ctx); i++)
		__builtin_ia32_pause();
	if (ingest_rings_readable(ctx))
		return;
	/* Dekker with the rankers (shm/wait.h): announce, then look again.
	 * Without the futex wait in the ring, a ranker with a reply signals
	 * us (the signalfd's read is armed in the ring: arm_fixed()). */
	wf_wait_prepare_how(&ctx->shm->ctl->ingest_wait, ctx->futex_ok ? WF_WAIT_FUTEX : WF_WAIT_SIGNAL);
	if (ingest_rings_readable(ctx)) {
		wf_wait_cancel(&ctx->shm->ctl->ingest_wait);
		return;
	}
	/* A connection stalled on a full request ring waits for a ranker to
	 * release space; a ranker rings the doorbell for that only when the
	 * ring was over half full (EVENT batches send no replies): poll
	 * stalled connections every ms as well. */
	uint64_t nap = ctx->any_stalled ? 1000000ull : 50000000ull;
	/* Woken by a ranker's signal: should one not come (a ranker that
	 * cannot signal us logs why), an owed reply waits 2 ms at most. */
	if (!ctx->futex_ok && ingest_owed(ctx))
		nap = INGEST_NOFUTEX_NAP_NS;
	arm_bell(ctx);
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = (long long)(due ? WF_MIN(due, nap) : nap) };
	struct io_uring_cqe *cqe;
	io_uring_submit_and_wait_timeout(&ctx->ring, &cqe, 1, &ts, NULL);
	wf_wait_cancel(&ctx->shm->ctl->ingest_wait);
}

/* The loop's sleep bound `due` (ns from now, 0: none), made no later
 * than the time `at` (pass clock, 0: none). */
static uint64_t due_by(uint64_t due, uint64_t at, uint64_t now)
{
	if (!at)
		return due;
	uint64_t in = at > now ? at - now : 1;
	return due && due < in ? due : in;
}

void ingest_run(struct ingest_ctx *ctx)
{
	uint64_t stop_deadline = 0;
	uint32_t stalled_tick = 0;

	for (;;) {
		int work;

		ctx->pass_ns = wf_now_ns();
		work = reap(ctx);

		work += ingest_poll_replies(ctx);
		if (ctx->ndirty || (++stalled_tick & 63) == 0)
			retry_stalled(ctx);
		retry_short(ctx);
		/* The kick first: an EVENT it makes durable (durability os)
		 * goes to its ranker in this pass's commit. */
		uint64_t due = ingest_journal_kick(ctx);
		ingest_shards_commit(ctx);
		sweep_timeouts(ctx);
		ingest_acks_due(ctx);
		service_dirty(ctx);
		/* Held acks (conn.c ack_hold()) go out by their due time even
		 * if nothing else wakes the loop. */
		due = due_by(due, ctx->ack_hold_next, ctx->pass_ns);
		/* So does accepting again after a pause (accept_failed()). */
		due = due_by(due, ctx->accept_resume_ns, ctx->pass_ns);
		ingest_lat_flush(ctx); /* the replies of this pass go out now */
		arm_fixed(ctx);
		/* A8: pairs with R8 in weft-admin's SHUTDOWN (admin_cmd.c). */
		if (atomic_load_explicit(&ctx->shm->ctl->shutdown, memory_order_acquire))
			ctx->stopping = 1;
		if (ctx->stopping && stop_done(ctx, &stop_deadline)) {
			ingest_wake_rankers(ctx);
			break;
		}
		if (work) {
			/* relaxed: statistics for INFO/STATS readers, no ordering. */
			atomic_store_explicit(&ctx->shm->ctl->ingest_stats.commands, ctx->commands, memory_order_relaxed);
			atomic_store_explicit(&ctx->shm->ctl->ingest_stats.recs_front, ctx->recs_front,
					      memory_order_relaxed);
			io_uring_submit(&ctx->ring);
			ingest_wake_rankers(ctx);
			continue;
		}
		ingest_wake_rankers(ctx);
		idle(ctx, due);
	}
}
