/*
 * ranker.c - weft-ranker: owns one shard. Consumes its request ring,
 * answers on its reply ring, holds its sessions (session arena) and its
 * share of the snapshot (one jemalloc arena per generation), loads its
 * checkpoint and replays the journal after it at start, catches up on
 * what a killed ingest had not sent, and swaps generations between
 * requests.
 *
 *   weft-ranker --shard I --dir DIR --shm NAME [--cpu C] [--session-ttl SEC]
 *               [--journal DIR] [--recs-cache 0|1] [--memory-budget BYTES]
 *               [--state DIR] [--spill-budget BYTES] [--checkpoint-interval SEC]
 */
#include <errno.h>
#include <getopt.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "lib/journal.h"
#include "rankers/ranker_int.h"
#include "shm/front.h"


/* Idle spin before sleeping: a count of pause instructions (~20-40 us),
 * not a clock, so spinning makes no system-clock reads. */
#define SPIN_ITERS 1000
#define SLEEP_NS 100000000ull
#define BATCH 64u

static void usage(FILE *f)
{
	fputs("usage: weft-ranker --shard I --dir DIR --shm NAME [--cpu C] [--session-ttl SEC]\n"
	      "                   [--journal DIR] [--recs-cache 0|1] [--memory-budget BYTES]\n"
	      "                   [--state DIR] [--spill-budget BYTES] [--checkpoint-interval SEC]\n"
	      "  --shard I         the shard this ranker owns (0..N-1)\n"
	      "  --dir DIR         the appliance's run directory\n"
	      "  --shm NAME        shared segment (created by weft-admin)\n"
	      "  --cpu C           core to pin to (default: I modulo the online cores)\n"
	      "  --session-ttl SEC idle sessions are forgotten after this (default 1800)\n"
	      "  --journal DIR     event journal to replay after a restart (default DIR/journal)\n"
	      "  --recs-cache 0|1  keep ranked lists between a session's events (default 1)\n"
	      "  --memory-budget BYTES  sessions and snapshot lists together (suffix K, M or G;\n"
	      "                    default 2G, at least 4M); past it the least recently active\n"
	      "                    sessions go to the spill store\n"
	      "  --state DIR       spill store and checkpoints (default DIR/rankers)\n"
	      "  --spill-budget BYTES  disk for evicted sessions (default 1G; 0: evicted sessions\n"
	      "                    are forgotten); past it the oldest are dropped\n"
	      "  --checkpoint-interval SEC  checkpoint the sessions this often (default 300;\n"
	      "                    0: never, a restart replays the journal's TTL window)\n",
	      f);
}

/* ---- generations ---- */


/* ---- the loop ---- */

/* Ingest sleeping on its signalfd (shm/wait.h WF_WAIT_SIGNAL): the
 * wake-up signal by a pidfd of ctl->ingest_pid, opened when that pid
 * first needs one (ingest was alive then: it announced its sleep) and
 * kept while the pid stays, so a signal never reaches another process
 * that took the pid of an ingest that died since (ESRCH: dropped; the
 * next ingest announces itself with its own pid). */
static void signal_ingest(struct ranker_ctx *ctx)
{
	/* relaxed: the pid is written once at ingest's start, before it sleeps */
	uint32_t pid = atomic_load_explicit(&ctx->shm->ctl->ingest_pid, memory_order_relaxed);

	if (!pid)
		return;
	if (pid != ctx->ingest_pidfd_pid) {
		if (ctx->ingest_pidfd >= 0)
			close(ctx->ingest_pidfd);
		ctx->ingest_pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
		ctx->ingest_pidfd_pid = pid;
	}
	if ((ctx->ingest_pidfd < 0 ||
	     syscall(SYS_pidfd_send_signal, ctx->ingest_pidfd, WF_WAIT_WAKE_SIGNAL, NULL, 0) < 0) &&
	    errno != ESRCH && !ctx->signal_warned) {
		ctx->signal_warned = 1;
		wf_warn("cannot signal weft-ingest (pid %u) to wake it: %s; its replies wait up to 2 ms "
			"(run both as one user, or on Linux 6.7+ where it waits on a futex)",
			pid, strerror(errno));
	}
}

/* Ingest sleeps in its io_uring on a futex wait on ingest_wait (no
 * socket: nothing another local user could take first), or, where its
 * io_uring cannot, on a signal. */
void ranker_wake_ingest(struct ranker_ctx *ctx)
{
	/* F2 inside wf_wait_needs_wake() orders our reply commit before the
	 * load of sleeping: pairs with F1 in ingest's wf_wait_prepare_how(). */
	uint32_t how = wf_wait_needs_wake(&ctx->shm->ctl->ingest_wait);

	if (how == WF_WAIT_FUTEX)
		wf_wake_futex(&ctx->shm->ctl->ingest_wait);
	else if (how == WF_WAIT_SIGNAL)
		signal_ingest(ctx);
}

/* Stop was asked for (signal or ctl->shutdown): sets ctx->stop. */
static int should_stop(struct ranker_ctx *ctx)
{
	struct signalfd_siginfo si;

	if (read(ctx->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		ctx->stop = 1;
	/* A8: pairs with R8 in weft-admin's SHUTDOWN (admin/admin_cmd.c). */
	if (atomic_load_explicit(&ctx->shm->ctl->shutdown, memory_order_acquire))
		ctx->stop = 1;
	return ctx->stop;
}

int ranker_reply_wait(struct ranker_ctx *ctx)
{
	wf_ring_prod_commit(&ctx->rep);
	ranker_wake_ingest(ctx);
	if (should_stop(ctx))
		return -ECANCELED;
	usleep(50);
	return 0;
}

/* Push the reply in ctx->out. 0, or -ECANCELED when asked to stop while
 * the reply ring stayed full (the request is then not released, so the
 * next ranker redoes it). */
static int push_reply(struct ranker_ctx *ctx, uint64_t req_id, uint64_t t_recv, uint64_t t_done)
{
	struct wf_msg_rep h = { .req_id = req_id, .t_recv_ns = t_recv, .t_done_ns = t_done };
	int r;

	if (ctx->out.len > wf_ring_max_payload(ctx->rep.r) - sizeof(h)) {
		ctx->out.len = 0;
		wf_resp_w_error(&ctx->out, "ERR reply too large: ask for fewer items");
	}
	/* Never drop: a full reply ring means ingest is behind; let it drain. */
	while ((r = wf_msg_rep_push(&ctx->rep, &h, ctx->out.data, (uint32_t)ctx->out.len)) == -EAGAIN)
		if (ranker_reply_wait(ctx) < 0) {
			ctx->out.len = 0;
			return -ECANCELED;
		}
	ctx->out.len = 0;
	return 0;
}

int ranker_push_note(struct ranker_ctx *ctx, const struct wf_msg_note *hdr, uint32_t argc, const struct wf_arg *argv)
{
	int r;

	while ((r = wf_msg_note_push(&ctx->rep, hdr, argc, argv)) == -EAGAIN)
		if (ranker_reply_wait(ctx) < 0)
			return -ECANCELED;
	return r;
}

/* The hint for a request (struct ranker_hint): wf_hash64() of its session
 * id (its first argument) and, for a RECS, of its user id (its second),
 * read from the record as wf_msg_req_decode() will lay it out; p NULL
 * where the record has no such argument. */
/* A request's hint: its session id hashed, and the user argument of a
 * RECS, or of an EVENT when event_user (a segment rule reads the user's
 * attributes: segs.c looks the event's user up for every step). */
static void req_hint(const void *p, uint32_t len, uint32_t kind, int event_user, struct ranker_hint *ret)
{
	const struct wf_msg_req *h = p;
	const char *data;
	uint32_t l0, l1;

	*ret = (struct ranker_hint){ 0 };
	if (kind != WF_MSG_REQ || len < sizeof(*h) || h->argc < 1 || h->argc > WF_MSG_MAX_ARGS ||
	    len < sizeof(*h) + 4ull * h->argc)
		return;
	data = (const char *)p + sizeof(*h) + 4ull * h->argc;
	memcpy(&l0, (const uint8_t *)p + sizeof(*h), 4);
	if (l0 > len - sizeof(*h) - 4ull * h->argc)
		return;
	*ret = (struct ranker_hint){ .sess_p = data, .sess_len = l0, .sess_key = wf_hash64(data, l0) };
	if ((h->cmd != WF_CMD_RECS && !(h->cmd == WF_CMD_EVENT && event_user)) || h->argc < 2)
		return;
	ret->recs = h->cmd == WF_CMD_RECS;
	memcpy(&l1, (const uint8_t *)p + sizeof(*h) + 4, 4);
	if (l1 > len - sizeof(*h) - 4ull * h->argc - l0)
		return;
	ret->user_p = data + l0;
	ret->user_len = l1;
	ret->user_key = wf_hash64(data + l0, l1);
}

/* Start loading what a request's lookups read first: its session's
 * bucket, and for a RECS its user's slot in this shard's table of owned
 * users or, for another shard's user, in the snapshot's user hash (as
 * user_lookup() and wf_snap_user_find() index them). */
static void prefetch_lookups(struct ranker_ctx *ctx, const struct ranker_hint *h)
{
	const struct ranker_gen *g = ctx->cur;

	if (!h->sess_p)
		return;
	wf_prefetch(&ctx->sessions[h->sess_key & (RANKER_SESSION_TABLE - 1)]);
	if (!h->user_p || !g)
		return;
	if (g->owned && wf_shard_of_hash(h->user_key, wf_shm_nshards(ctx->shm)) == ctx->shard)
		wf_prefetch(&g->owned[(uint32_t)(h->user_key | 1) & g->owned_mask]);
	else if (g->snap->user_hash)
		wf_prefetch(&g->snap->user_hash[(uint32_t)h->user_key & g->snap->user_hash_mask]);
}

/* Start loading the session a request's bucket leads to: the whole of it
 * (header, scoring state, and its id as far as 32 bytes), which
 * session_find() and then the query read. */
static void prefetch_session(struct ranker_ctx *ctx, const struct ranker_hint *h)
{
	const struct ranker_session *s;

	if (!h->sess_p || !(s = ctx->sessions[h->sess_key & (RANKER_SESSION_TABLE - 1)]))
		return;
	/* addresses as integers: the end may lie past a short id's allocation
	 * (a prefetch reads nothing) */
	for (uintptr_t c = (uintptr_t)s; c < (uintptr_t)s + offsetof(struct ranker_session, id) + 32; c += 64)
		wf_prefetch((const void *)c);
}

/*
 * Answer up to BATCH requests. They are popped first, their ids hashed
 * once (the hint) and their lookups' first loads prefetched (session
 * bucket, user slot), then each is handled while the next one's session
 * is prefetched: under EVENT load the session lookup, a chain of cache
 * misses (bucket, session, its id), was a sixth of the ranker's samples;
 * under mixed RECS the scoring state read cold. The payloads stay valid
 * until the release at the end (the hint is cleared before it).
 */
/* Pop up to BATCH requests, each with its hint and prefetches. */
static uint32_t pop_batch(struct ranker_ctx *ctx, const void **ps, uint32_t *ls, uint32_t *ks, struct ranker_hint *hs)
{
	uint32_t m = 0, len, kind;
	int event_user = ctx->segs && (wf_seg_set_uses(ctx->segs) & WF_SEG_USES_USER);
	const void *p;

	while (m < BATCH && (p = wf_ring_pop(&ctx->req, &len, &kind))) {
		ps[m] = p;
		ls[m] = len;
		ks[m] = kind;
		req_hint(p, len, kind, event_user, &hs[m]);
		prefetch_lookups(ctx, &hs[m]);
		m++;
	}
	if (m)
		prefetch_session(ctx, &hs[0]);
	return m;
}

static int handle_batch(struct ranker_ctx *ctx)
{
	uint32_t n = 0, m = 0, replies = 0, backlog, len, kind;
	const void *ps[BATCH];
	uint32_t ls[BATCH], ks[BATCH];
	struct ranker_hint hs[BATCH];
	const void *p;
	uint64_t t0;

	ranker_take_generation(ctx);
	if (!wf_ring_readable(&ctx->req))
		return 0; /* no clock read on an empty poll */
	t0 = wf_now_ns();
	m = pop_batch(ctx, ps, ls, ks, hs);
	ranker_catch_up(ctx); /* after the pops: their acquire shows a new ingest's epoch */
	for (; n < m; n++) {
		p = ps[n];
		len = ls[n];
		kind = ks[n];
		if (n + 1 < m) {
			prefetch_session(ctx, &hs[n + 1]);
			ranker_lookahead(ctx, &hs[n + 1]);
		}
		ctx->hint = hs[n];
		if (kind != WF_MSG_REQ || wf_msg_req_decode(p, len, ctx->view) < 0) {
			/* Cannot happen with a sane ingest; answer so nobody waits. */
			uint64_t id = 0;
			if (len >= 8)
				memcpy(&id, p, 8);
			wf_resp_w_error(&ctx->out, "ERR ranker %u got a malformed request", ctx->shard);
			if (push_reply(ctx, id, 0, t0) < 0)
				goto cancel;
			replies++;
			continue;
		}
		ranker_handle(ctx, ctx->view);
		if (ctx->view->hdr->flags & WF_MSG_F_NOREPLY) {
			ctx->out.len = 0; /* an EVENT, acked by ingest once journaled: writes nothing */
			continue;
		}
		if (push_reply(ctx, ctx->view->hdr->req_id, ctx->view->hdr->t_recv_ns, t0) < 0)
			goto cancel;
		replies++;
		/* Each reply published as soon as it is written, not with the
		 * batch: a busy ingest polls the reply ring every pass and sends
		 * it while the rest of the batch is ranked (a batch of page views
		 * is ~50 fresh rankings, ~300 us, that the first reply waited
		 * for). A store-release each; the doorbell still rings once, at
		 * the end, for an ingest that went to sleep. */
		wf_ring_prod_commit(&ctx->rep);
	}
	ctx->hint = (struct ranker_hint){ 0 }; /* the payloads go back below */
	if (!n)
		return 0;
	/* Replies first (most published above; this one publishes the
	 * rest: error replies, segment notes), then give the requests back:
	 * a crash in between redoes them, and ingest drops the duplicate
	 * replies. */
	wf_ring_prod_commit(&ctx->rep);
	/* relaxed: the tail is this process's own store (R2 below). */
	backlog = ctx->req.cached_head - atomic_load_explicit(&ctx->req.r->tail, memory_order_relaxed);
	wf_ring_cons_release(&ctx->req);
	/* A batch of EVENTs alone (WF_MSG_F_NOREPLY) gives ingest nothing to
	 * read: no doorbell then (a futex wake-up of ingest for
	 * nothing, 0.02 a request under EVENT load), unless the request ring
	 * was over half full: ingest may have stalled a connection on it (a
	 * record is at most a quarter of the ring, so a full one means more
	 * than half used) and waits for the space this release gives back.
	 * Ingest also retries stalled connections at least every ms. */
	if (replies || backlog > ctx->req.capacity / 2)
		ranker_wake_ingest(ctx);
	atomic_fetch_add_explicit(&ctx->sc->stats.requests, n, memory_order_relaxed); /* stats */
	atomic_fetch_add_explicit(&ctx->sc->stats.busy_ns, wf_now_ns() - t0, memory_order_relaxed);
	return (int)n;
cancel:
	/* Stopping with the reply ring full: publish what was answered, keep
	 * every request of the batch unreleased (redone after a restart). */
	ctx->hint = (struct ranker_hint){ 0 };
	wf_ring_prod_commit(&ctx->rep);
	return 0;
}

static void housekeeping(struct ranker_ctx *ctx)
{
	uint64_t now = wf_wall_ms();

	/* R11: pairs with A11 in tests/test_ranker.c: the session counters
	 * published by an earlier pass are visible with this heartbeat
	 * (weft-admin and weftctl read it relaxed, for display). */
	atomic_store_explicit(&ctx->sc->heartbeat_ms, now, memory_order_release);
	ranker_check_generation(ctx);
	ranker_take_generation(ctx);
	ranker_segs_check(ctx);
	ranker_exps_check(ctx);
	/* Every pass, bounded steps (RANKER_EVICT_STEP sessions each), never
	 * a walk of the table between two requests: one step, and up to 15
	 * more while they find work and no request waits (an idle ranker
	 * passes here at least every 100 ms). */
	for (int i = 0; i < 16 && ranker_sessions_expire(ctx, now) && !wf_ring_readable(&ctx->req); i++)
		;
	/* Segment exits of the sessions forgotten above (segs.c): published
	 * now, not with the next batch. */
	if (wf_ring_prod_pending(&ctx->rep)) {
		wf_ring_prod_commit(&ctx->rep);
		ranker_wake_ingest(ctx);
	}
	/* A checkpoint being written: one bounded step (~64 KiB packed), up to
	 * 63 more while no request waits. */
	for (int i = 0; i < 64 && ranker_ckpt_step(ctx, now) && !wf_ring_readable(&ctx->req); i++)
		;
	if (now - ctx->last_expire_ms > 1000) {
		ctx->last_expire_ms = now;
		atomic_store_explicit(&ctx->sc->stats.sessions_live, ctx->nsessions, memory_order_relaxed);
		atomic_store_explicit(&ctx->sc->stats.session_bytes, ctx->session_bytes, memory_order_relaxed);
		atomic_store_explicit(&ctx->sc->stats.sessions_evicted, ctx->sessions_evicted, memory_order_relaxed);
		atomic_store_explicit(&ctx->sc->stats.sessions_restored, ctx->sessions_restored, memory_order_relaxed);
		atomic_store_explicit(&ctx->sc->stats.spill_dropped, ranker_spill_dropped(ctx), memory_order_relaxed);
	}
	should_stop(ctx);
}

/* How long an idle loop may sleep: SLEEP_NS, or until the earliest
 * segment deadline (rounded up to the ms it falls in, at least 1 us). */
static uint64_t sleep_ns(struct ranker_ctx *ctx)
{
	uint64_t next = ranker_segs_next(ctx), now;

	if (next == WF_SEG_NEVER)
		return SLEEP_NS;
	now = wf_wall_ms();
	if (next <= now)
		return 1000;
	return (next - now) * 1000000ull < SLEEP_NS ? (next - now) * 1000000ull : SLEEP_NS;
}

static void run(struct ranker_ctx *ctx)
{
	uint64_t last_hk = 0;
	int spin = ctx->spin_iters;

	while (!ctx->stop) {
		uint64_t now = wf_now_ns();
		if (now - last_hk > 10000000ull) { /* every 10 ms while busy */
			housekeeping(ctx);
			last_hk = now;
		}
		/* Segment deadlines (segs.c): a wall clock read only while
		 * some session has one. */
		if (ctx->seg_heap_n && ranker_segs_next(ctx) <= wf_wall_ms())
			ranker_segs_timers(ctx, wf_wall_ms());
		if (handle_batch(ctx))
			continue;
		/* Idle: spin briefly (cheap wake-up under load), then sleep on
		 * the futex so a 2-core box is not starved. */
		/* Adaptive: a spin that found work doubles the next one (up to
		 * --spin), one that ended in sleep halves it (down to 1/16), so
		 * a ranker that is rarely needed (most RECS answered from the
		 * front table) stops taking the core from ingest and clients. */
		int got = 0;
		for (int i = 0; i < spin; i++)
			if (wf_ring_readable(&ctx->req)) {
				got = 1;
				break;
			} else {
				__builtin_ia32_pause();
			}
		if (got) {
			spin = WF_MIN(spin * 2, ctx->spin_iters);
			continue;
		}
		spin = WF_MAX(spin / 2, ctx->spin_iters / 16);
		wf_wait_prepare(&ctx->sc->ranker_wait);
		/* AL1 (see ranker_take_generation()): a finished generation is work. */
		if (wf_ring_readable(&ctx->req) || atomic_load_explicit(&ctx->ready, memory_order_acquire)) {
			wf_wait_cancel(&ctx->sc->ranker_wait);
			continue;
		}
		wf_wait_futex(&ctx->sc->ranker_wait, sleep_ns(ctx));
		housekeeping(ctx);
		last_hk = wf_now_ns();
	}
}

static int parse_args(struct ranker_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "shard", required_argument, NULL, 'i' }, { "dir", required_argument, NULL, 'd' },
		{ "shm", required_argument, NULL, 'm' },   { "cpu", required_argument, NULL, 'c' },
		{ "session-ttl", required_argument, NULL, 't' }, { "journal", required_argument, NULL, 'j' },
		{ "recs-cache", required_argument, NULL, 'r' }, { "spin", required_argument, NULL, 's' },
		{ "memory-budget", required_argument, NULL, 'b' }, { "state", required_argument, NULL, 'S' },
		{ "spill-budget", required_argument, NULL, 'B' }, { "checkpoint-interval", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },        { NULL, 0, NULL, 0 },
	};
	int64_t v;
	int o, have_shard = 0;

	ctx->cpu = -1;
	ctx->recs_cache = 1;
	ctx->spin_iters = SPIN_ITERS;
	ctx->session_ttl_ms = 1800 * 1000ull;
	ctx->memory_budget = RANKER_MEMORY_BUDGET;
	ctx->spill_budget = RANKER_SPILL_BUDGET;
	ctx->ckpt_interval_ms = RANKER_CKPT_INTERVAL_S * 1000ull;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'i':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 0 || v >= WF_SHM_MAX_SHARDS)
				goto bad;
			ctx->shard = (uint32_t)v;
			have_shard = 1;
			break;
		case 'd': ctx->dir = optarg; break;
		case 'm': ctx->shm_name = optarg; break;
		case 'j': ctx->journal_dir = optarg; break;
		case 'c':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 0)
				goto bad;
			ctx->cpu = (int)v;
			break;
		case 't':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 1)
				goto bad;
			ctx->session_ttl_ms = (uint64_t)v * 1000;
			break;
		case 'r':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 0 || v > 1)
				goto bad;
			ctx->recs_cache = (int)v;
			break;
		case 's':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 0 || v > 1000000)
				goto bad;
			ctx->spin_iters = (int)v;
			break;
		case 'b':
			if (wf_parse_bytes(optarg, &ctx->memory_budget) < 0 || ctx->memory_budget < (4ull << 20)) {
				fprintf(stderr, "weft-ranker: --memory-budget wants bytes (suffix K, M or G), at least 4M, "
						"not '%s'\n", optarg);
				return -EINVAL;
			}
			break;
		case 'S': ctx->state_dir = optarg; break;
		case 'B':
			if (strcmp(optarg, "0") != 0 && (wf_parse_bytes(optarg, &ctx->spill_budget) < 0 ||
							 ctx->spill_budget < (1ull << 20))) {
				fprintf(stderr, "weft-ranker: --spill-budget wants bytes (suffix K, M or G), 0 or at least "
						"1M, not '%s'\n", optarg);
				return -EINVAL;
			}
			if (strcmp(optarg, "0") == 0)
				ctx->spill_budget = 0;
			break;
		case 'C':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 0 || v > 86400 * 7)
				goto bad;
			ctx->ckpt_interval_ms = (uint64_t)v * 1000;
			break;
		case 'h': usage(stdout); exit(0);
		default: goto bad;
		}
	}
	if (!have_shard || !ctx->dir || !ctx->shm_name || optind != argc)
		goto bad;
	if (!ctx->journal_dir) {
		snprintf(ctx->journal_buf, sizeof(ctx->journal_buf), "%s/journal", ctx->dir);
		ctx->journal_dir = ctx->journal_buf;
	}
	if (!ctx->state_dir) {
		snprintf(ctx->state_buf, sizeof(ctx->state_buf), "%s/rankers", ctx->dir);
		ctx->state_dir = ctx->state_buf;
	}
	return 0;
bad:
	fprintf(stderr, "weft-ranker: --shard, --dir and --shm are required (numbers must be valid)\n");
	usage(stderr);
	return -EINVAL;
}

static int attach(struct ranker_ctx *ctx)
{
	int r = -ENOENT;

	for (int i = 0; i < 200 && (r = wf_shm_attach(ctx->shm_name, &ctx->shm)) == -ENOENT; i++)
		usleep(50000);
	if (r < 0) {
		wf_err("cannot attach shared segment %s: %s (is weft-admin running?)", ctx->shm_name, strerror(-r));
		return r;
	}
	if (ctx->shard >= wf_shm_nshards(ctx->shm)) {
		wf_err("shard %u does not exist: the segment has %u shards", ctx->shard, wf_shm_nshards(ctx->shm));
		return -EINVAL;
	}
	ctx->sc = wf_shm_shard(ctx->shm, ctx->shard);
	/* A previous ranker's entries carry its ranker_starts (retired once
	 * ours moves); one it died writing stays odd until our next complete
	 * write of it (wf_seq_write_begin keeps odd odd): no reset needed. */
	ctx->live = wf_shm_front(ctx->shm, ctx->shard);
	if ((r = wf_front_prefault(ctx->live, 1)) < 0 && r != -EINVAL) {
		wf_err("the front table (%zu MiB of shared memory) cannot be allocated: %s; /dev/shm is probably full "
		       "(df -h /dev/shm): free space there or give it more, then start again",
		       sizeof(*ctx->live) >> 20, strerror(-r));
		return r;
	}
	if (ctx->recs_cache)
		ctx->front = ctx->live;
	wf_ring_cons_attach(&ctx->req, wf_shm_req_ring(ctx->shm, ctx->shard));
	wf_ring_prod_attach(&ctx->rep, wf_shm_rep_ring(ctx->shm, ctx->shard));
	return 0;
}

static void pin(struct ranker_ctx *ctx)
{
	cpu_set_t set;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int cpu = ctx->cpu >= 0 ? ctx->cpu : (int)(ctx->shard % (uint32_t)(ncpu > 0 ? ncpu : 1));

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		wf_warn("cannot pin shard %u to cpu %d: %s", ctx->shard, cpu, strerror(errno));
	atomic_store_explicit(&ctx->sc->cpu, (uint32_t)cpu, memory_order_relaxed); /* display only */
}


int main(int argc, char **argv)
{
	static struct ranker_ctx ctx;
	pthread_t loader;
	sigset_t set;
	char name[32];

	wf_log_init("weft-ranker");
	if (parse_args(&ctx, argc, argv) < 0)
		return 2;
	snprintf(name, sizeof(name), "weft-ranker");
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	ctx.signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	ctx.ingest_pidfd = -1;
	ctx.scratch = calloc(1, sizeof(*ctx.scratch));
	ctx.view = calloc(1, sizeof(*ctx.view));
	ctx.explain = calloc(WF_RANK_MAX_K, sizeof(*ctx.explain));
	ctx.rr_items = calloc(WF_RANK_POOL, sizeof(*ctx.rr_items));
	ctx.rr_pos = calloc(WF_RANK_POOL, sizeof(*ctx.rr_pos));
	if (ctx.recs_cache)
		ctx.cache = calloc(RANKER_CACHE_SLOTS, sizeof(*ctx.cache));
	if ((ctx.recs_cache && !ctx.cache) || ctx.signal_fd < 0 || !ctx.scratch || !ctx.view ||
	    !ctx.explain || !ctx.rr_items || !ctx.rr_pos) {
		wf_err("startup failed: %s", strerror(errno));
		return 1;
	}
	if (attach(&ctx) < 0)
		return 1;
	pin(&ctx);
	wf_rank_params_default(&ctx.params);
	if (ranker_arena_create(&ctx.sess_arena) < 0 || ranker_sessions_init(&ctx) < 0) {
		wf_err("cannot create the session arena");
		return 1;
	}
	atomic_store_explicit(&ctx.sc->ranker_pid, (uint32_t)getpid(), memory_order_relaxed); /* display */
	atomic_fetch_add_explicit(&ctx.sc->ranker_starts, 1, memory_order_relaxed);
	/* R5 (pairs with A5 in weft-admin / weftctl up): a killed ranker left
	 * ready set; not serving until the replay below is done. */
	atomic_store_explicit(&ctx.sc->ready, 0, memory_order_release);
	/* R4: pairs with A4 in weft-admin: an earlier process's generation is
	 * not ours (this one has loaded nothing yet), nor is its failure. */
	atomic_store_explicit(&ctx.sc->loaded_gen, 0, memory_order_release);
	atomic_store_explicit(&ctx.sc->stats.memory_budget, ctx.memory_budget, memory_order_relaxed); /* stats */
	atomic_store_explicit(&ctx.sc->stats.sessions_evicted, 0, memory_order_relaxed);
	atomic_store_explicit(&ctx.sc->failed_gen, 0, memory_order_release);
	/* F5: the bump is ordered before the filter's zeroing; pairs with F6
	 * in weft-ingest's quiet check (see layout.h). The journal replay
	 * below counts our sessions in again. */
	atomic_thread_fence(memory_order_release);
	for (uint32_t i = 0; i < WF_FRONT_LIVE; i++)
		atomic_store_explicit(&ctx.live->live[i], 0, memory_order_relaxed); /* ordered by F5 */
	/* After the zeroing above: the spill store counts its sessions in. */
	if ((ctx.spill_budget || ctx.ckpt_interval_ms) && mkdir(ctx.state_dir, 0750) < 0 && errno != EEXIST)
		wf_warn("shard %u: cannot create %s: %s (evicted sessions are forgotten, no checkpoints)", ctx.shard,
			ctx.state_dir, strerror(errno));
	if (ctx.spill_budget && (errno = -ranker_spill_open(&ctx)) != 0)
		wf_warn("shard %u: no spill store in %s: %s (evicted sessions will be forgotten)", ctx.shard,
			ctx.state_dir, strerror(errno));
	atomic_store_explicit(&ctx.sc->stats.checkpoint_lsn, 0, memory_order_relaxed); /* stats */
	if (pthread_create(&loader, NULL, ranker_loader_main, &ctx) != 0) {
		wf_err("cannot start the snapshot loader thread");
		return 1;
	}
	ranker_first_generation(&ctx);
	if (ranker_segs_init(&ctx) < 0) {
		wf_err("cannot set the segments up: out of memory");
		return 1;
	}
	ranker_exps_check(&ctx);
	ranker_replay_journal(&ctx);
	/* R5: pairs with A5 in weft-admin / weftctl up. */
	atomic_store_explicit(&ctx.sc->ready, 1, memory_order_release);
	sd_notify(0, "READY=1");
	wf_info("shard %u serving (pid %d, memory budget %llu MB)", ctx.shard, (int)getpid(),
		(unsigned long long)(ctx.memory_budget >> 20));
	run(&ctx);
	/* R5, as above: not serving any more. */
	atomic_store_explicit(&ctx.sc->ready, 0, memory_order_release);
	ctx.stop = 1;
	pthread_join(loader, NULL);
	/* AL1; the join already ordered it. */
	ranker_gen_free(atomic_load_explicit(&ctx.ready, memory_order_acquire));
	ranker_ckpt_fini(&ctx);
	ctx.seg_replaying = 1; /* stopping: sessions leave without notes (a restart keeps them) */
	ranker_sessions_fini(&ctx);
	ranker_segs_fini(&ctx);
	ranker_spill_close(&ctx);
	ranker_exps_fini(&ctx);
	ranker_gen_free(ctx.cur);
	wf_shm_detach(ctx.shm);
	wf_info("shard %u stopped; sessions evicted by the memory budget %llu; RECS from the ranked-list cache %llu, computed and cached %llu, "
		"computed (cached prefix too short) %llu, computed for k at first sight %llu; exposures %llu", ctx.shard,
		(unsigned long long)ctx.sessions_evicted,
		(unsigned long long)ctx.cache_hits, (unsigned long long)ctx.cache_fills, (unsigned long long)ctx.cache_short,
		(unsigned long long)ctx.cache_ghosts, (unsigned long long)ctx.exposures);
	free(ctx.cache);
	return 0;
}
