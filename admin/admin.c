/*
 * admin.c - weft-admin: owns the admin socket (DIR/admin.sock) and the
 * control block of the shared segment. Creates the segment if absent,
 * restores persisted weights and snapshot refs into a new segment, then
 * serves RESP2 admin commands (admin_cmd.c) from a poll() loop. Never
 * touches the serving path: rankers pick changes up from the control block.
 *
 *   weft-admin --dir DIR --shm NAME --shards N [--snapshot FILE]
 *              [--socket PATH] [--state-dir DIR] [--load-timeout SEC]
 *              [--admin-group G] [--supervisor PID]
 *
 * Program: weft-admin (links libweft, libinih, libsystemd).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "admin/dirlock.h"

#define TICK_MS 20          /* loop tick while a SNAPSHOT reply is pending */
#define IDLE_TICK_MS 250    /* otherwise: notice ctl->shutdown set elsewhere */
#define EXIT_FLUSH_MS 2000  /* how long SHUTDOWN waits for replies to drain */
#define ACCEPT_PAUSE_MS 100 /* out of descriptors: the listener rests this long */
#define ACCEPT_WARN_MS 10000 /* a refused or failed accept: a warning at most this often */

static void usage(FILE *f)
{
	fprintf(f, "usage: weft-admin --dir DIR --shm NAME --shards N [--snapshot FILE] [--socket PATH]\n"
		   "                  [--state-dir DIR] [--load-timeout SEC]\n"
		   "  --dir DIR          state and sockets (weights.ini, snapshot.state, admin.sock)\n"
		   "  --shm NAME         shared segment name in /dev/shm (created if absent)\n"
		   "  --shards N         number of rankers (1..%u)\n"
		   "  --snapshot FILE    load FILE at start if no snapshot is current\n"
		   "  --socket PATH      admin socket (default DIR/admin.sock)\n"
		   "  --state-dir DIR    where weights.ini and snapshot.state live (default --dir)\n"
		   "  --load-timeout SEC how long SNAPSHOT LOAD waits for the rankers (default 300)\n"
		   "  --admin-group G    group owning admin.sock; only root, our user and members of\n"
		   "                     G may use it (default: our own group)\n"
		   "  --supervisor PID   our parent, the `weftctl up` that restarts us; stopped after\n"
		   "                     it is gone (SIGKILLed), no one will, and the segment is removed\n",
		WF_SHM_MAX_SHARDS);
}

static int parse_args(struct wf_admin_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },      { "shm", required_argument, NULL, 'm' },
		{ "shards", required_argument, NULL, 'n' },   { "snapshot", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },   { "load-timeout", required_argument, NULL, 't' },
		{ "state-dir", required_argument, NULL, 'D' }, { "help", no_argument, NULL, 'h' },
		{ "admin-group", required_argument, NULL, 'g' }, { "supervisor", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL;
	int64_t v;
	int o;

	ctx->load_timeout_ms = 300000;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': ctx->dir = optarg; break;
		case 'D': ctx->state_dir = optarg; break;
		case 'm': ctx->shm_name = optarg; break;
		case 's': ctx->snapshot_arg = optarg; break;
		case 'S': sock = optarg; break;
		case 'g': ctx->admin_group = optarg; break;
		case 'n':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 1 || v > WF_SHM_MAX_SHARDS) {
				fprintf(stderr, "weft-admin: --shards wants a number in 1..%u, not '%s'\n",
					WF_SHM_MAX_SHARDS, optarg);
				return -EINVAL;
			}
			ctx->nshards = (uint32_t)v;
			break;
		case 't':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 1 || v > 86400) {
				fprintf(stderr, "weft-admin: --load-timeout wants seconds in 1..86400\n");
				return -EINVAL;
			}
			ctx->load_timeout_ms = (uint64_t)v * 1000;
			break;
		case 'P':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 2 || v > INT32_MAX) {
				fprintf(stderr, "weft-admin: --supervisor wants a pid, not '%s'\n", optarg);
				return -EINVAL;
			}
			ctx->supervisor = (pid_t)v;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (optind != argc || !ctx->dir || !ctx->shm_name || !ctx->nshards) {
		fprintf(stderr, "weft-admin: --dir, --shm and --shards are required\n");
		usage(stderr);
		return -EINVAL;
	}
	if (!ctx->state_dir)
		ctx->state_dir = ctx->dir;
	if ((size_t)snprintf(ctx->sock_path, sizeof(ctx->sock_path), "%s", sock ? sock : "") >=
		    sizeof(ctx->sock_path) ||
	    (!sock && (size_t)snprintf(ctx->sock_path, sizeof(ctx->sock_path), "%s/admin.sock", ctx->dir) >=
			      sizeof(ctx->sock_path))) {
		fprintf(stderr, "weft-admin: socket path too long\n");
		return -ENAMETOOLONG;
	}
	return 0;
}

/* ---- segment and state ---- */

/* One weft-admin per admin socket: SOCK.lock. A second one would take
 * over the socket path (unlinking the live one) and the control block. */
static int take_lock(struct wf_admin_ctx *ctx)
{
	char p[WF_PATH_MAX + 8];
	pid_t owner = 0;

	snprintf(p, sizeof(p), "%s.lock", ctx->sock_path);
	ctx->lock_fd = wf_dirlock_take(p, &owner);
	if (ctx->lock_fd == -EBUSY)
		wf_err("another weft-admin (pid %d) serves %s; stop it first (weftctl --dir %s shutdown)",
		       (int)owner, ctx->sock_path, ctx->dir);
	else if (ctx->lock_fd < 0)
		wf_err("cannot lock %s: %s", p, strerror(-ctx->lock_fd));
	return ctx->lock_fd < 0 ? ctx->lock_fd : 0;
}

static int open_segment(struct wf_admin_ctx *ctx)
{
	struct wf_shm_config cfg = { .nshards = ctx->nshards };
	int r;

	/* Create first so we know whether the segment is new (restore state
	 * only then); fall back to attaching one that exists. */
	r = wf_shm_create(ctx->shm_name, &cfg, &ctx->shm);
	if (r == 0) {
		ctx->created = 1;
	} else if (r == -EEXIST) {
		r = wf_shm_open(ctx->shm_name, &cfg, &ctx->shm);
		if (r == -ESTALE) {
			wf_err("segment %s exists with a different shard count than --shards %u; "
			       "stop weft and remove /dev/shm/%s",
			       ctx->shm_name, ctx->nshards, ctx->shm_name);
			return r;
		}
	}
	if (r < 0) {
		wf_err("cannot open shared segment %s: %s", ctx->shm_name, strerror(-r));
		return r;
	}
	/* relaxed: display only (weftctl, STATS). */
	atomic_store_explicit(&ctx->shm->ctl->admin_pid, (uint32_t)getpid(), memory_order_relaxed);
	wf_info("%s segment %s (%u shards)", ctx->created ? "created" : "attached to", ctx->shm_name,
		wf_shm_nshards(ctx->shm));
	return 0;
}

static void restore_state(struct wf_admin_ctx *ctx)
{
	struct wf_snap_ref cur, prev;
	char err[512] = "";
	uint64_t gen;
	int r;

	/* A weft-admin killed while it wrote the weights or the generation
	 * refs left their seqlock odd: readers wait until a complete write,
	 * so write them again whole (the defaults, then weights.ini; the refs
	 * from snapshot.state). */
	if (!ctx->created && wf_seq_abandoned(&ctx->shm->ctl->weights_lock)) {
		wf_warn("the weights were being written when weft-admin stopped; rewriting them from %s/weights.ini",
			ctx->state_dir);
		wf_ctl_weights_default(ctx->shm->ctl);
		if (wf_admin_weights_load(ctx) < 0)
			wf_warn("cannot read %s/weights.ini (defaults in use)", ctx->state_dir);
	}
	if (!ctx->created && wf_seq_abandoned(&ctx->shm->ctl->snap_lock)) {
		wf_warn("the snapshot generations were being written when weft-admin stopped; rewriting them from "
			"%s/snapshot.state", ctx->state_dir);
		if (wf_admin_snapstate_load(ctx) < 0 || wf_seq_abandoned(&ctx->shm->ctl->snap_lock))
			wf_ctl_snap_set(ctx->shm->ctl, &(struct wf_snap_ref){ 0 }, &(struct wf_snap_ref){ 0 });
	}
	if (ctx->created) {
		r = wf_admin_weights_load(ctx);
		if (r < 0)
			wf_warn("cannot read %s/weights.ini: %s (defaults in use)", ctx->state_dir, strerror(-r));
		else if (r > 0)
			wf_info("restored %d weight pairs from %s/weights.ini", r, ctx->state_dir);
		r = wf_admin_snapstate_load(ctx);
		if (r < 0)
			wf_warn("cannot read %s/snapshot.state: %s", ctx->state_dir, strerror(-r));
	}
	wf_admin_seg_restore(ctx);
	/* Map the current and previous generations for SNAPSHOT STATUS. */
	wf_ctl_snap_get(ctx->shm->ctl, &cur, &prev);
	if (cur.gen && wf_snap_open(cur.path, &ctx->cur_snap, err, sizeof(err)) < 0)
		wf_warn("current generation %llu: %s", (unsigned long long)cur.gen, err);
	if (prev.gen && wf_snap_open(prev.path, &ctx->prev_snap, err, sizeof(err)) < 0)
		wf_warn("previous generation %llu: %s", (unsigned long long)prev.gen, err);
	if (cur.gen)
		wf_info("current snapshot: generation %llu (%s)", (unsigned long long)cur.gen, cur.path);
	r = wf_admin_snapfile_init(ctx);
	if (r < 0)
		wf_warn("cannot prepare %s/serving (where weft-admin keeps the generations it serves): %s",
			ctx->state_dir, strerror(-r));
	if (!ctx->snapshot_arg || cur.gen)
		return;
	r = wf_admin_snapshot_install(ctx, ctx->snapshot_arg, &gen, err, sizeof(err));
	if (r < 0)
		wf_err("--snapshot refused: %s", err);
	else
		wf_info("snapshot %s is generation %llu", ctx->snapshot_arg, (unsigned long long)gen);
}

/* ---- sockets ---- */

static int open_listener(struct wf_admin_ctx *ctx)
{
	unsigned int gid = (unsigned int)getegid();
	int r;

	if (ctx->admin_group && wf_group_gid(ctx->admin_group, &gid) < 0) {
		wf_err("admin group '%s' does not exist: create it (groupadd %s) or pass another "
		       "--admin-group", ctx->admin_group, ctx->admin_group);
		return -ENOENT;
	}
	r = wf_unix_listen(ctx->sock_path, 64, 0660, ctx->admin_group ? (int64_t)gid : -1, SOCK_NONBLOCK,
			   &ctx->listen_fd);
	if (r < 0) {
		wf_err("cannot listen on %s: %s", ctx->sock_path, strerror(-r));
		return r;
	}
	ctx->admin_gid = gid;
	return 0;
}

static int open_signals(struct wf_admin_ctx *ctx)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	ctx->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return ctx->signal_fd < 0 ? -errno : 0;
}

struct wf_admin_client *wf_admin_client_find(struct wf_admin_ctx *ctx, uint64_t id)
{
	for (int i = 0; id && i < WF_ADMIN_MAX_CLIENTS; i++)
		if (ctx->clients[i].fd >= 0 && ctx->clients[i].id == id)
			return &ctx->clients[i];
	return NULL;
}

static void client_close(struct wf_admin_client *c)
{
	close(c->fd);
	wf_buf_fini(&c->in);
	wf_buf_fini(&c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/*
 * Who may administer weft: root, the user weft-admin runs as, and members
 * (primary or supplementary) of the admin group. The socket's mode already
 * says so to the kernel; this check holds even if someone loosens the mode
 * or passes the socket on. Returns 1 if allowed; *why explains a refusal.
 */
static int peer_allowed(const struct wf_admin_ctx *ctx, int fd, char *why, size_t whylen)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	gid_t groups[256];
	socklen_t glen = sizeof(groups);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		snprintf(why, whylen, "cannot read peer credentials: %s", strerror(errno));
		return 0;
	}
	if (cr.uid == 0 || cr.uid == geteuid() || cr.gid == ctx->admin_gid)
		return 1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0) {
		for (size_t i = 0; i < glen / sizeof(gid_t); i++)
			if (groups[i] == ctx->admin_gid)
				return 1;
	}
	snprintf(why, whylen, "permission denied: uid %u is not root, the weft user, or in group %u; "
		 "add the user to the admin group (usermod -aG <group> <user>)", (unsigned)cr.uid,
		 (unsigned)ctx->admin_gid);
	return 0;
}

/*
 * A warning that a flood would repeat (refused peers, failed accepts):
 * written at most every ACCEPT_WARN_MS, with how many there were since,
 * so a local user who connects in a loop cannot fill the log.
 */
static void accept_warn(struct wf_admin_ctx *ctx, const char *what)
{
	uint64_t n = wf_ratelimit(&ctx->accept_warns, wf_now_ns(), ACCEPT_WARN_MS * 1000000ull);

	if (n)
		wf_warn("%s (%llu such since the last warning)", what, (unsigned long long)n);
}

static void accept_clients(struct wf_admin_ctx *ctx)
{
	for (;;) {
		int fd = accept4(ctx->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int i;

		if (fd < 0) {
			char what[WF_PATH_MAX + 128];

			if (errno == EAGAIN || errno == EINTR)
				return;
			/* Out of descriptors the listener stays readable: poll it
			 * again only after a pause, or the loop spins. */
			if (wf_accept_starved(errno))
				ctx->accept_resume_ns = wf_now_ns() + ACCEPT_PAUSE_MS * 1000000ull;
			snprintf(what, sizeof(what), "accept() on %s failed: %s", ctx->sock_path, strerror(errno));
			accept_warn(ctx, what);
			return;
		}
		char why[256];

		if (!peer_allowed(ctx, fd, why, sizeof(why))) {
			char msg[320];
			int n = snprintf(msg, sizeof(msg), "-ERR %s\r\n", why);

			if (write(fd, msg, (size_t)n) < 0) {
				/* nothing more to do for a client we refuse */
			}
			close(fd);
			char what[320];
			snprintf(what, sizeof(what), "refused an admin client: %s", why);
			accept_warn(ctx, what);
			continue;
		}
		for (i = 0; i < WF_ADMIN_MAX_CLIENTS && ctx->clients[i].fd >= 0; i++)
			;
		if (i == WF_ADMIN_MAX_CLIENTS) {
			static const char full[] = "-ERR too many admin clients\r\n";

			if (write(fd, full, sizeof(full) - 1) < 0) {
				/* nothing more to do for a client we refuse */
			}
			close(fd);
			continue;
		}
		ctx->clients[i].fd = fd;
		ctx->clients[i].id = ++ctx->next_client_id;
	}
}

/* Parse and execute every complete request in c->in (stops while a
 * SNAPSHOT reply is pending, so replies stay in request order). */
static void client_process(struct wf_admin_ctx *ctx, struct wf_admin_client *c)
{
	size_t off = 0;

	while (!c->waiting && !c->close_after && off < c->in.len) {
		const char *err = NULL;
		int n = wf_resp_parse(c->in.data + off, c->in.len - off, &wf_resp_default_limits, ctx->req, &err);

		if (n == 0)
			break;
		if (n < 0) {
			if (wf_resp_w_error(&c->out, "ERR protocol error: %s", err ? err : "malformed request") < 0)
				wf_buf_fini(&c->out);
			c->close_after = 1;
			break;
		}
		off += (size_t)n;
		if (ctx->req->argc == 0)
			continue;
		if (wf_admin_dispatch(ctx, c, ctx->req) < 0) {
			wf_err("out of memory building a reply; closing the admin client");
			c->close_after = 1;
		}
	}
	wf_buf_consume(&c->in, off);
}

/* Returns -1 if the client is gone. */
static int client_read(struct wf_admin_ctx *ctx, struct wf_admin_client *c)
{
	for (;;) {
		ssize_t n;

		if (c->in.len >= WF_ADMIN_MAX_INPUT) {
			/* A client that pipelines behind a pending reply: stop
			 * reading until it drains (poll without POLLIN). */
			return 0;
		}
		if (wf_buf_reserve(&c->in, 16384) < 0)
			return -1;
		n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		if (n == 0)
			return -1;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -1;
	}
	(void)ctx;
}

static int client_flush(struct wf_admin_client *c)
{
	while (c->out.len) {
		ssize_t n = write(c->fd, c->out.data, c->out.len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		wf_buf_consume(&c->out, (size_t)n);
	}
	return c->close_after ? -1 : 0;
}

static int handle_signals(struct wf_admin_ctx *ctx)
{
	struct signalfd_siginfo si;

	while (read(ctx->signal_fd, &si, sizeof(si)) == sizeof(si)) {
		wf_info("signal %s received, exiting", strsignal((int)si.ssi_signo));
		return 1;
	}
	return 0;
}

static int all_flushed(struct wf_admin_ctx *ctx)
{
	for (int i = 0; i < WF_ADMIN_MAX_CLIENTS; i++)
		if (ctx->clients[i].fd >= 0 && ctx->clients[i].out.len)
			return 0;
	return 1;
}

static int run(struct wf_admin_ctx *ctx)
{
	struct pollfd pfd[WF_ADMIN_MAX_CLIENTS + 2];
	int idx[WF_ADMIN_MAX_CLIENTS + 2];

	for (;;) {
		int n = 0, timeout;

		if (ctx->exiting && (all_flushed(ctx) || wf_now_ns() >= ctx->exit_deadline_ns))
			return 0;
		/* acquire: pairs with R8 (SHUTDOWN here, or another admin). */
		if (!ctx->exiting && atomic_load_explicit(&ctx->shm->ctl->shutdown, memory_order_acquire)) {
			wf_info("shutdown flag set in the control block, exiting");
			ctx->exiting = 1;
		}
		if (ctx->exiting && !ctx->exit_deadline_ns)
			ctx->exit_deadline_ns = wf_now_ns() + EXIT_FLUSH_MS * 1000000ull;

		pfd[n] = (struct pollfd){ .fd = ctx->signal_fd, .events = POLLIN };
		idx[n++] = -1;
		if (ctx->accept_resume_ns && wf_now_ns() >= ctx->accept_resume_ns)
			ctx->accept_resume_ns = 0;
		if (!ctx->exiting && !ctx->accept_resume_ns) {
			pfd[n] = (struct pollfd){ .fd = ctx->listen_fd, .events = POLLIN };
			idx[n++] = -2;
		}
		for (int i = 0; i < WF_ADMIN_MAX_CLIENTS; i++) {
			struct wf_admin_client *c = &ctx->clients[i];
			short ev = 0;

			if (c->fd < 0)
				continue;
			if (c->in.len < WF_ADMIN_MAX_INPUT && !c->close_after && !ctx->exiting)
				ev |= POLLIN;
			if (c->out.len)
				ev |= POLLOUT;
			pfd[n] = (struct pollfd){ .fd = c->fd, .events = ev };
			idx[n++] = i;
		}
		timeout = (ctx->pending.active || ctx->exiting) ? TICK_MS
			  : ctx->accept_resume_ns ? ACCEPT_PAUSE_MS : IDLE_TICK_MS;
		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR) {
			wf_err("poll() failed: %s", strerror(errno));
			return -errno;
		}
		for (int k = 0; k < n; k++) {
			struct wf_admin_client *c;

			if (!pfd[k].revents)
				continue;
			if (idx[k] == -1) {
				if (handle_signals(ctx))
					return 0;
				continue;
			}
			if (idx[k] == -2) {
				accept_clients(ctx);
				continue;
			}
			c = &ctx->clients[idx[k]];
			if ((pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) && client_read(ctx, c) < 0) {
				/* Peer gone: answer nothing more; a pending
				 * SNAPSHOT operation still completes. */
				client_close(c);
				continue;
			}
			client_process(ctx, c);
		}
		wf_admin_pending_check(ctx);
		/* Flush every client: replies may come from the pending check. */
		for (int i = 0; i < WF_ADMIN_MAX_CLIENTS; i++) {
			struct wf_admin_client *c = &ctx->clients[i];

			if (c->fd < 0)
				continue;
			client_process(ctx, c); /* input held back by a finished wait */
			if (client_flush(c) < 0)
				client_close(c);
		}
	}
}

static void ctx_fini(struct wf_admin_ctx *ctx)
{
	for (int i = 0; i < WF_ADMIN_MAX_CLIENTS; i++)
		if (ctx->clients[i].fd >= 0)
			client_close(&ctx->clients[i]);
	if (ctx->listen_fd >= 0) {
		close(ctx->listen_fd);
		unlink(ctx->sock_path);
	}
	if (ctx->signal_fd >= 0)
		close(ctx->signal_fd);
	if (ctx->prev_snap != ctx->cur_snap)
		wf_snap_close(ctx->prev_snap);
	wf_snap_close(ctx->cur_snap);
	if (ctx->shm) {
		uint32_t me = (uint32_t)getpid();

		/* relaxed: display only; clear it only if it is still ours. */
		atomic_compare_exchange_strong_explicit(&ctx->shm->ctl->admin_pid, &me, 0, memory_order_relaxed,
							memory_order_relaxed);
	}
	wf_shm_detach(ctx->shm);
	if (ctx->lock_fd >= 0)
		close(ctx->lock_fd);
	free(ctx->req);
	wf_admin_exp_fini(ctx);
}

/*
 * Stopping after our supervisor is gone. `weftctl up` gives every child
 * PR_SET_PDEATHSIG SIGTERM, so a SIGKILLed weftctl stops us all, and no
 * one is left to restart a process or to remove the segment: left in
 * /dev/shm it would hold its whole size (its tables are faulted in at
 * start) until the same DIR is started again. The name goes now; the
 * processes that have it mapped keep it until they exit. A supervisor
 * still there (we are its child) restarts us or removes it itself.
 */
static void orphan_cleanup(struct wf_admin_ctx *ctx)
{
	if (!ctx->supervisor || !ctx->shm || getppid() == ctx->supervisor)
		return;
	if (wf_shm_unlink(ctx->shm_name) == 0)
		wf_info("weftctl up (pid %d) is gone and no one will restart weft: removed segment /dev/shm/%s",
			(int)ctx->supervisor, ctx->shm_name);
}

int main(int argc, char **argv)
{
	struct wf_admin_ctx *ctx = calloc(1, sizeof(*ctx));
	int r;

	wf_log_init("weft-admin");
	if (!ctx)
		return 1;
	ctx->listen_fd = ctx->signal_fd = ctx->lock_fd = -1;
	for (int i = 0; i < WF_ADMIN_MAX_CLIENTS; i++)
		ctx->clients[i].fd = -1;
	r = parse_args(ctx, argc, argv);
	if (r < 0) {
		free(ctx);
		return 2;
	}
	ctx->req = malloc(sizeof(*ctx->req));
	if (!ctx->req) {
		wf_err("out of memory");
		goto out;
	}
	for (int k = 0; k < 2; k++) {
		const char *d = k ? ctx->state_dir : ctx->dir;

		if (mkdir(d, 0755) < 0 && errno != EEXIST) {
			r = -errno;
			wf_err("cannot create %s: %s", d, strerror(-r));
			goto out;
		}
	}
	r = take_lock(ctx);
	if (r < 0)
		goto out;
	wf_admin_state_sweep(ctx);
	r = open_signals(ctx);
	if (r < 0) {
		wf_err("signalfd() failed: %s", strerror(-r));
		goto out;
	}
	r = open_segment(ctx);
	if (r < 0)
		goto out;
	restore_state(ctx);
	r = wf_admin_exp_init(ctx);
	if (r < 0)
		goto out;
	r = open_listener(ctx);
	if (r < 0)
		goto out;
	wf_info("listening on %s", ctx->sock_path);
	sd_notify(0, "READY=1");
	r = run(ctx);
out:
	orphan_cleanup(ctx);
	ctx_fini(ctx);
	free(ctx);
	return r < 0 ? 1 : 0;
}
