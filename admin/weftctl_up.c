/*
 * weftctl_up.c - `weftctl up`: run the whole appliance in the foreground
 * without systemd. Starts weft-admin (which creates the segment), waits for
 * its socket, starts one weft-ranker per shard and weft-ingest, prints one
 * "weft ready" line once everything serves, then supervises: a child that
 * dies is restarted after a short backoff while the others keep running.
 * SIGINT/SIGTERM or ctl->shutdown (weftctl shutdown) stop everything, and
 * the segment and sockets are removed.
 *
 * Reads shm only (ctl->ingest_ready, shard ready/loaded_gen, shutdown).
 * Linked into weftctl.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin/dirlock.h"
#include "admin/weftctl_int.h"
#include "shm/shm.h"

#define UP_MAX_CHILDREN (WF_SHM_MAX_SHARDS + 4)
#define UP_START_TIMEOUT_MS 120000u /* everything ready, or give up */
#define UP_ADMIN_TIMEOUT_MS 15000u  /* admin.sock answers PING */
#define UP_GRACE_MS 10000u          /* SIGTERM -> SIGKILL */
#define UP_STABLE_MS 10000u         /* a child that lived this long resets its backoff */
#define UP_TICK_MS 100

enum { KIND_ADMIN, KIND_RANKER, KIND_INGEST, KIND_OBSERVE, KIND_KAFKA, KIND_COUNT };

struct up_child {
	int kind;
	int shard;
	char label[48];       /* "weft-ranker --shard 1" */
	pid_t pid;            /* 0 = not running */
	uint64_t started_ns;
	uint64_t restart_at_ns; /* 0 = no restart scheduled */
	unsigned failures;    /* consecutive quick deaths (backoff) */
};

/* The supervisor's context (one per `weftctl up`). */
struct up_ctx {
	const struct wf_cli_opts *o;
	char dir[PATH_MAX];
	char shm_name[32];
	char snapshot[PATH_MAX]; /* absolute, or "" */
	char shards_arg[16];
	/* The cores weftctl may run on (its affinity: a cpuset or taskset
	 * narrows it), in order; ranker i is pinned to cpus[(i + pin_base) %
	 * ncpus]. */
	int cpus[CPU_SETSIZE];
	int ncpus;
	int pin_base; /* 1 when there are fewer shards than cores: cpus[0] is left to weft-ingest */
	char cpu_arg[WF_SHM_MAX_SHARDS][12]; /* each ranker's --cpu */
	char metrics_file[PATH_MAX]; /* absolute, for weft-observe */
	char bin[KIND_COUNT][PATH_MAX]; /* admin, ranker, ingest, observe, kafka ("": not built) */
	uint32_t nshards;
	int sfd;
	int lock_fd;             /* DIR/weft.lock: DIR is ours while it is held */
	int admin_up;            /* our weft-admin answered: the sockets are ours */
	int stopping;
	struct wf_shm *shm;
	struct up_child child[UP_MAX_CHILDREN];
	int nchild;
	redisContext *load;      /* SNAPSHOT LOAD in flight (up --snapshot) */
	int snap_done;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n = snprintf(line, sizeof(line), "weftctl: ");

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}

/* ---- finding the daemons ---- */

static int is_exec(const char *p)
{
	return access(p, X_OK) == 0;
}

static int find_bin(const char *name, const char *subdir, char *out, size_t len)
{
	const char *env = getenv("WEFT_LIBEXEC_DIR");
	char self[PATH_MAX], *slash, *path, *save = NULL;
	ssize_t n;

	if (env && *env) {
		snprintf(out, len, "%s/%s", env, name);
		return is_exec(out) ? 0 : -ENOENT;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			if ((size_t)snprintf(out, len, "%s/%s", self, name) < len && is_exec(out))
				return 0;
			if ((size_t)snprintf(out, len, "%s/../%s/%s", self, subdir, name) < len && is_exec(out))
				return 0;
#ifdef WEFT_LIBEXECDIR
			if ((size_t)snprintf(out, len, "%s/%s", WEFT_LIBEXECDIR, name) < len && is_exec(out))
				return 0;
#endif
		}
	}
	path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/local/bin:/usr/bin:/bin");
	for (char *d = path ? strtok_r(path, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", d, name);
		if (is_exec(out)) {
			free(path);
			return 0;
		}
	}
	free(path);
	return -ENOENT;
}

/* path made absolute (its directory resolved, the file need not exist);
 * NULL if the directory does not exist. */
static char *abs_path(const char *path, char *out, size_t len)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
	if (!*base || !realpath(dir, real) || (size_t)snprintf(out, len, "%s/%s", real, base) >= len)
		return NULL;
	return out;
}

/* ---- children ---- */

/* The options `weftctl up` hands to a daemon as they were given (weftctl
 * checked each with the daemon's rule first, weftctl.c). */
static const struct {
	int kind;
	const char *flag;
	size_t field; /* a const char * in struct wf_cli_opts; NULL: not given */
} passed[] = {
	{ KIND_INGEST, "--durability", offsetof(struct wf_cli_opts, durability) },
	{ KIND_INGEST, "--idle-timeout", offsetof(struct wf_cli_opts, idle_timeout) },
	{ KIND_INGEST, "--request-timeout", offsetof(struct wf_cli_opts, request_timeout) },
	{ KIND_INGEST, "--pubsub-limit", offsetof(struct wf_cli_opts, pubsub_limit) },
	{ KIND_INGEST, "--socket-mode", offsetof(struct wf_cli_opts, socket_mode) },
	{ KIND_INGEST, "--sessions", offsetof(struct wf_cli_opts, sessions) },
	{ KIND_RANKER, "--memory-budget", offsetof(struct wf_cli_opts, memory_budget) },
	{ KIND_RANKER, "--spill-budget", offsetof(struct wf_cli_opts, spill_budget) },
	{ KIND_RANKER, "--checkpoint-interval", offsetof(struct wf_cli_opts, checkpoint_interval) },
	{ KIND_RANKER, "--session-ttl", offsetof(struct wf_cli_opts, session_ttl) },
	{ KIND_KAFKA, "--kafka-brokers", offsetof(struct wf_cli_opts, kafka_brokers) },
	{ KIND_KAFKA, "--kafka-topic", offsetof(struct wf_cli_opts, kafka_topic) },
	{ KIND_KAFKA, "--kafka-group", offsetof(struct wf_cli_opts, kafka_group) },
	{ KIND_KAFKA, "--kafka-partitions", offsetof(struct wf_cli_opts, kafka_partitions) },
	{ KIND_KAFKA, "--kafka-out-topic", offsetof(struct wf_cli_opts, kafka_out_topic) },
	{ KIND_INGEST, "--kafka-partitions", offsetof(struct wf_cli_opts, kafka_partitions) },
	{ KIND_INGEST, "--kafka-peers", offsetof(struct wf_cli_opts, kafka_peers) },
};

/* The core ranker i is pinned to (u->ncpus > 0; see choose_layout()). */
static int ranker_cpu(const struct up_ctx *u, uint32_t i)
{
	return u->cpus[(i + (uint32_t)u->pin_base) % (uint32_t)u->ncpus];
}

static int spawn(struct up_ctx *u, struct up_child *ch)
{
	char shard[16], sup[16];
	const char *argv[32];
	int n = 0;
	pid_t parent = getpid(), pid;

	argv[n++] = u->bin[ch->kind];
	if (ch->kind == KIND_RANKER) {
		/* First, so `pgrep -f "weft-ranker --shard 1 .*--dir D"` finds it. */
		snprintf(shard, sizeof(shard), "%d", ch->shard);
		argv[n++] = "--shard";
		argv[n++] = shard;
	}
	argv[n++] = "--dir";
	argv[n++] = u->dir;
	argv[n++] = "--shm";
	argv[n++] = u->shm_name;
	for (size_t i = 0; i < sizeof(passed) / sizeof(passed[0]); i++) {
		const char *v = *(const char *const *)((const char *)u->o + passed[i].field);

		if (ch->kind == passed[i].kind && v) {
			argv[n++] = passed[i].flag;
			argv[n++] = v;
		}
	}
	if (ch->kind == KIND_RANKER && u->ncpus > 0) {
		char *a = u->cpu_arg[(uint32_t)ch->shard % WF_SHM_MAX_SHARDS];
		snprintf(a, sizeof(u->cpu_arg[0]), "%d", ranker_cpu(u, (uint32_t)ch->shard));
		argv[n++] = "--cpu";
		argv[n++] = a;
	}
	if (ch->kind == KIND_OBSERVE && u->o->no_bpf)
		argv[n++] = "--no-bpf";
	if (ch->kind == KIND_OBSERVE && u->o->metrics_file) {
		argv[n++] = "--metrics-file";
		argv[n++] = u->metrics_file;
	}
	if (ch->kind == KIND_ADMIN) {
		argv[n++] = "--shards";
		argv[n++] = u->shards_arg;
		/* Removes the segment if it outlives us (we were SIGKILLed). */
		snprintf(sup, sizeof(sup), "%d", (int)parent);
		argv[n++] = "--supervisor";
		argv[n++] = sup;
		if (u->snapshot[0]) {
			argv[n++] = "--snapshot";
			argv[n++] = u->snapshot;
		}
	}
	argv[n] = NULL;

	pid = fork();
	if (pid < 0) {
		say("fork() failed for %s: %s", ch->label, strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		sigset_t none;
		int devnull;

		/* Die with the supervisor, even if it is SIGKILLed. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		/* Own process group: a terminal's Ctrl-C reaches weftctl only,
		 * which then stops the children in order. */
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL); /* signalfd blocked them */
		signal(SIGPIPE, SIG_DFL);
		/* The one fd a child inherits: DIR stays owned (a second
		 * `weftctl up` refuses) until the last of us exits. */
		fcntl(u->lock_fd, F_SETFD, 0);
		devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (devnull >= 0)
			dup2(devnull, 0);
		if (u->o->foreground_log)
			setenv("WEFT_LOG_LEVEL", "7", 1);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "weftctl: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	ch->pid = pid;
	ch->started_ns = wf_now_ns();
	ch->restart_at_ns = 0;
	return 0;
}

static struct up_child *child_add(struct up_ctx *u, int kind, int shard)
{
	static const char *const names[] = { "weft-admin", "weft-ranker", "weft-ingest", "weft-observe",
					      "weft-kafka" };
	struct up_child *ch = &u->child[u->nchild++];

	ch->kind = kind;
	ch->shard = shard;
	if (kind == KIND_RANKER)
		snprintf(ch->label, sizeof(ch->label), "%s --shard %d", names[kind], shard);
	else
		snprintf(ch->label, sizeof(ch->label), "%s", names[kind]);
	return ch;
}

static int shutdown_flag(struct up_ctx *u)
{
	/* acquire: pairs with R8 in weft-admin's SHUTDOWN. */
	return u->shm && atomic_load_explicit(&u->shm->ctl->shutdown, memory_order_acquire);
}

/* Reap exited children; schedule restarts unless stopping. */
static void reap(struct up_ctx *u)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		char why[96];

		if (pid <= 0)
			return;
		for (int i = 0; i < u->nchild; i++) {
			struct up_child *ch = &u->child[i];
			uint64_t lived, delay_ms;

			if (ch->pid != pid)
				continue;
			ch->pid = 0;
			if (WIFEXITED(status))
				snprintf(why, sizeof(why), "exited with code %d", WEXITSTATUS(status));
			else
				snprintf(why, sizeof(why), "was killed by signal %d (%s)", WTERMSIG(status),
					 strsignal(WTERMSIG(status)));
			if (u->stopping || shutdown_flag(u)) {
				say("%s (pid %d) %s", ch->label, (int)pid, why);
				break;
			}
			lived = (wf_now_ns() - ch->started_ns) / 1000000u;
			ch->failures = lived >= UP_STABLE_MS ? 0 : ch->failures + 1;
			delay_ms = ch->failures ? WF_MIN(250ull << WF_MIN(ch->failures - 1, 5u), 5000ull) : 100;
			ch->restart_at_ns = wf_now_ns() + delay_ms * 1000000u;
			say("%s (pid %d) %s after %llu ms; restarting in %llu ms", ch->label, (int)pid, why,
			    (unsigned long long)lived, (unsigned long long)delay_ms);
			break;
		}
	}
}

static void restart_due(struct up_ctx *u)
{
	uint64_t now = wf_now_ns();

	for (int i = 0; i < u->nchild; i++) {
		struct up_child *ch = &u->child[i];

		if (!ch->pid && ch->restart_at_ns && now >= ch->restart_at_ns && spawn(u, ch) == 0)
			say("restarted %s (pid %d)", ch->label, (int)ch->pid);
	}
}

/* Returns 1 when SIGINT/SIGTERM arrived. */
static int wait_tick(struct up_ctx *u, int ms)
{
	struct pollfd p = { .fd = u->sfd, .events = POLLIN };
	struct signalfd_siginfo si;
	int stop = 0;

	if (poll(&p, 1, ms) > 0)
		while (read(u->sfd, &si, sizeof(si)) == sizeof(si))
			if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
				say("%s received, stopping weft", strsignal((int)si.ssi_signo));
				stop = 1;
			}
	reap(u);
	return stop;
}

static void stop_all(struct up_ctx *u)
{
	uint64_t deadline;
	int left;

	u->stopping = 1;
	for (int i = u->nchild - 1; i >= 0; i--)
		if (u->child[i].pid)
			kill(u->child[i].pid, SIGTERM);
	deadline = wf_now_ns() + UP_GRACE_MS * 1000000ull;
	for (;;) {
		left = 0;
		for (int i = 0; i < u->nchild; i++)
			left += u->child[i].pid != 0;
		if (!left)
			break;
		if (wf_now_ns() >= deadline) {
			for (int i = 0; i < u->nchild; i++)
				if (u->child[i].pid) {
					say("%s (pid %d) did not stop within %u s; killing it", u->child[i].label,
					    (int)u->child[i].pid, UP_GRACE_MS / 1000);
					kill(u->child[i].pid, SIGKILL);
				}
			deadline = UINT64_MAX;
		}
		wait_tick(u, UP_TICK_MS);
	}
}

/* 1 if pid runs a program given "--shm NAME" (a weft process of that
 * segment; not one that took a dead one's pid). */
static int serves_segment(pid_t pid, const char *name)
{
	char path[64], buf[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (const char *a = buf; a < buf + n; a += strlen(a) + 1)
		if (strcmp(a, "--shm") == 0 && a + strlen(a) + 1 < buf + n && strcmp(a + strlen(a) + 1, name) == 0)
			return 1;
	return 0;
}

/* A process still running on segment name, as the pids it records say
 * (weft-admin, weft-ingest, each ranker), or 0. */
static pid_t segment_user(const char *name)
{
	struct wf_shm *shm;
	pid_t pids[WF_SHM_MAX_SHARDS + 2], found = 0;
	uint32_t n = 0;

	if (wf_shm_attach_ro(name, &shm) < 0)
		return 0;
	/* relaxed: each is written once by its process at start; a stale
	 * value only names a process that is checked below. */
	pids[n++] = (pid_t)atomic_load_explicit(&shm->ctl->admin_pid, memory_order_relaxed);
	pids[n++] = (pid_t)atomic_load_explicit(&shm->ctl->ingest_pid, memory_order_relaxed);
	for (uint32_t i = 0; i < wf_shm_nshards(shm) && i < WF_SHM_MAX_SHARDS; i++)
		pids[n++] = (pid_t)atomic_load_explicit(&wf_shm_shard(shm, i)->ranker_pid, memory_order_relaxed);
	for (uint32_t i = 0; i < n && !found; i++)
		if (pids[i] > 0 && serves_segment(pids[i], name))
			found = pids[i];
	wf_shm_detach(shm);
	return found;
}

/* Remove the segment and sockets, if they were ours: a weft-admin of
 * ours that never answered may have found DIR served by another. */
static void cleanup_files(struct up_ctx *u)
{
	char p[PATH_MAX + 32];

	if (!u->admin_up) {
		/* One that failed after creating the segment (it could not
		 * listen, say) left it: ours, unless a process still uses it. */
		if (segment_user(u->shm_name) == 0 && wf_shm_unlink(u->shm_name) == 0)
			say("removed segment /dev/shm/%s, which weft-admin made before it failed", u->shm_name);
		return;
	}
	wf_shm_unlink(u->shm_name);
	snprintf(p, sizeof(p), "%s/admin.sock", u->dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/weft.sock", u->dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/observe.prom", u->dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/observe.state", u->dir);
	unlink(p);
}

/* ---- readiness ---- */

static int admin_answers(struct up_ctx *u)
{
	struct wf_cli_opts q = *u->o;
	redisContext *c;
	redisReply *r;
	int ok;

	q.dir = u->dir;
	c = wf_cli_connect(&q, 1);
	if (!c)
		return 0;
	r = redisCommand(c, "PING");
	ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
	u->admin_up |= ok;
	freeReplyObject(r);
	redisFree(c);
	return ok;
}

/* Everything serving? Writes who is not yet into why. */
static int all_ready(struct up_ctx *u, char *why, size_t len)
{
	struct wf_ctl *ctl = u->shm->ctl;
	/* A3-style acquire: pairs with R3 in wf_ctl_snap_set(). */
	uint64_t gen = atomic_load_explicit(&ctl->snap_cur_gen, memory_order_acquire);

	/* acquire: pairs with weft-ingest's release store of ingest_ready. */
	if (!atomic_load_explicit(&ctl->ingest_ready, memory_order_acquire)) {
		snprintf(why, len, "weft-ingest is not ready");
		return 0;
	}
	for (uint32_t i = 0; i < u->nshards; i++) {
		struct wf_shard_ctl *sh = wf_shm_shard(u->shm, i);

		/* A5: pairs with R5 in the ranker. */
		if (!atomic_load_explicit(&sh->ready, memory_order_acquire)) {
			snprintf(why, len, "weft-ranker --shard %u is not ready", i);
			return 0;
		}
		/* A4: pairs with R4 in the ranker. */
		if (u->snapshot[0] && atomic_load_explicit(&sh->loaded_gen, memory_order_acquire) != gen) {
			snprintf(why, len, "weft-ranker --shard %u has not loaded snapshot generation %llu", i,
				 (unsigned long long)gen);
			return 0;
		}
	}
	if (u->snapshot[0] && !u->snap_done) {
		if ((size_t)snprintf(why, len, "snapshot %s is not loaded", u->snapshot) >= len)
			snprintf(why, len, "the snapshot is not loaded");
		return 0;
	}
	return 1;
}

/*
 * `up --snapshot FILE` when the restored state names another file: ask
 * admin to load FILE once the rankers serve. The reply is read without
 * blocking the supervisor. Returns -1 on a refused load.
 */
static int snapshot_step(struct up_ctx *u)
{
	struct wf_snap_ref cur;
	redisReply *r = NULL;
	int done = 0;

	if (!u->snapshot[0] || u->snap_done)
		return 0;
	if (!u->load) {
		struct wf_cli_opts q = *u->o;

		for (uint32_t i = 0; i < u->nshards; i++)
			/* A5: pairs with R5 in the ranker. */
			if (!atomic_load_explicit(&wf_shm_shard(u->shm, i)->ready, memory_order_acquire))
				return 0;
		q.dir = u->dir;
		u->load = wf_cli_connect(&q, 1);
		if (!u->load)
			return 0;
		/* weft-admin serves its own copy: compare the file it came from
		 * (SNAPSHOT STATUS path). */
		wf_ctl_snap_get(u->shm->ctl, &cur, NULL);
		r = cur.gen ? redisCommand(u->load, "SNAPSHOT STATUS") : NULL;
		if (r) {
			const redisReply *src = wf_cli_get(wf_cli_get(r, "current"), "path");

			done = src && src->type == REDIS_REPLY_STRING && strcmp(src->str, u->snapshot) == 0;
			freeReplyObject(r);
			r = NULL;
			if (done) {
				redisFree(u->load);
				u->load = NULL;
				u->snap_done = 1;
				return 0;
			}
		}
		if (redisAppendCommand(u->load, "SNAPSHOT LOAD %s", u->snapshot) != REDIS_OK)
			goto lost;
		while (!done)
			if (redisBufferWrite(u->load, &done) != REDIS_OK)
				goto lost;
		return 0;
	}
	if (redisBufferRead(u->load) != REDIS_OK && u->load->err != 0)
		goto lost;
	if (redisGetReplyFromReader(u->load, (void **)&r) != REDIS_OK)
		goto lost;
	if (!r)
		return 0;
	redisFree(u->load);
	u->load = NULL;
	if (r->type == REDIS_REPLY_ERROR) {
		say("snapshot %s refused: %s", u->snapshot, r->str);
		freeReplyObject(r);
		return -1;
	}
	say("snapshot %s: %s", u->snapshot, r->str);
	freeReplyObject(r);
	u->snap_done = 1;
	return 0;
lost:
	redisFree(u->load);
	u->load = NULL;
	return 0;
}

/*
 * Own DIR (DIR/weft.lock) before touching anything in it: a second `up` on
 * a running DIR would otherwise remove its live segment as stale and its
 * sockets on the way out. Refuses naming the owner's pid.
 */
static int take_dir(struct up_ctx *u)
{
	char p[PATH_MAX + 32];
	pid_t owner = 0;

	snprintf(p, sizeof(p), "%s/weft.lock", u->dir);
	u->lock_fd = wf_dirlock_take(p, &owner);
	if (u->lock_fd == -EBUSY && owner > 0 && (kill(owner, 0) == 0 || errno == EPERM)) {
		say("%s is in use by weft (pid %d owns %s); refusing to start a second one. "
		    "Stop it first: weftctl --dir %s shutdown", u->dir, (int)owner, p, u->dir);
	} else if (u->lock_fd == -EBUSY) {
		say("%s is in use by weft (pid %d, which has exited; its processes still hold %s). "
		    "Wait for them to stop, or find them: fuser %s", u->dir, (int)owner, p, p);
	} else if (u->lock_fd < 0) {
		say("cannot lock %s: %s", p, strerror(-u->lock_fd));
	}
	return u->lock_fd < 0 ? u->lock_fd : 0;
}

/*
 * The process layout for the box: one shard per core weftctl may run on
 * (its CPU affinity, which a cpuset, systemd's CPUAffinity= or taskset
 * narrows; the online cores when it cannot be read) but one, which is
 * left to weft-ingest (every request passes through it, and a ranker
 * that shares its core makes both wait on each other's wake-ups); one
 * shard on a single core; at most WF_SHM_MAX_SHARDS; --shards overrides.
 * With fewer shards than cores, ranker i is pinned to the (i+1)-th of
 * those cores, else to the i-th (mod their count); weft-ingest and the
 * clients are free to run anywhere. On two cores one shard measured
 * ahead of two (BENCHMARKS.md, issue 19: page views 0.91 against
 * 0.63-0.72 of Redis, RECS mixed -P 16 0.61 against 0.19-0.21).
 * Says what it chose.
 */
static void choose_layout(struct up_ctx *u)
{
	cpu_set_t set;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	char list[256] = "";
	size_t len = 0;

	u->ncpus = 0;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set))
				u->cpus[u->ncpus++] = c;
	if (u->ncpus == 0) /* unreadable: every online core, as the rankers' default */
		for (long c = 0; c < WF_MIN(online, (long)CPU_SETSIZE); c++)
			u->cpus[u->ncpus++] = (int)c;
	u->nshards = (uint32_t)(u->o->shards ? u->o->shards
					     : WF_MAX(1, WF_MIN(u->ncpus - 1, (int)WF_SHM_MAX_SHARDS)));
	u->pin_base = u->nshards < (uint32_t)u->ncpus;
	snprintf(u->shards_arg, sizeof(u->shards_arg), "%u", u->nshards);
	for (uint32_t i = 0; i < u->nshards && len + 16 < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", i ? "," : "",
					u->ncpus ? ranker_cpu(u, i) : 0);
	say("layout: %u shard%s (%s), %d usable core%s of %ld online; %s pinned to core%s %s, "
	    "weft-ingest unpinned",
	    u->nshards, u->nshards == 1 ? "" : "s",
	    u->o->shards ? "--shards" : u->ncpus > 1 ? "one per usable core but one, left to weft-ingest" : "one core",
	    u->ncpus, u->ncpus == 1 ? "" : "s", online, u->nshards == 1 ? "the ranker" : "rankers",
	    u->nshards == 1 ? "" : "s", list);
}

static int setup(struct up_ctx *u)
{
	static const char *const names[] = { "weft-admin", "weft-ranker", "weft-ingest", "weft-observe",
					      "weft-kafka" };
	static const char *const subdirs[] = { "admin", "rankers", "ingest", "observe", "kafka" };
	char tmp[PATH_MAX];
	sigset_t set;

	/* mkdir -p */
	snprintf(tmp, sizeof(tmp), "%s", u->o->dir);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
		say("cannot create %s: %s", tmp, strerror(errno));
		return -errno;
	}
	if (!realpath(u->o->dir, u->dir)) {
		say("cannot resolve %s: %s", u->o->dir, strerror(errno));
		return -errno;
	}
	struct stat st;
	if (stat(u->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		say("--dir %s exists and is not a directory; name a directory (it is made if absent)", u->o->dir);
		return -ENOTDIR;
	}
	/* The sockets' paths must fit a struct sockaddr_un: say so now, not
	 * through a weft-admin that cannot listen and is restarted. */
	size_t sun_max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	if (strlen(u->dir) + strlen("/admin.sock") > sun_max) {
		say("--dir %s is too long for its sockets: %s/admin.sock would be %zu bytes, a Unix socket path "
		    "holds at most %zu; use a shorter directory",
		    u->o->dir, u->dir, strlen(u->dir) + strlen("/admin.sock"), sun_max);
		return -ENAMETOOLONG;
	}
	if (take_dir(u) < 0)
		return -EBUSY;
	snprintf(u->shm_name, sizeof(u->shm_name), "weft.%012llx",
		 (unsigned long long)(wf_hash64(u->dir, strlen(u->dir)) >> 16));
	if (u->o->metrics_file && !abs_path(u->o->metrics_file, u->metrics_file, sizeof(u->metrics_file))) {
		say("--metrics-file %s: its directory does not exist", u->o->metrics_file);
		return -ENOENT;
	}
	if (u->o->snapshot && !realpath(u->o->snapshot, u->snapshot)) {
		say("snapshot %s: %s", u->o->snapshot, strerror(errno));
		return -errno;
	}
	choose_layout(u);
	for (int k = 0; k < KIND_COUNT; k++)
		if (find_bin(names[k], subdirs[k], u->bin[k], sizeof(u->bin[k])) < 0) {
			if (k == KIND_OBSERVE || (k == KIND_KAFKA && !u->o->kafka_brokers)) {
				/* Optional: weft serves without it, status says so
				 * (weft-kafka: wanted only with --kafka-brokers). */
				u->bin[k][0] = '\0';
				continue;
			}
			say("cannot find %s: set WEFT_LIBEXEC_DIR to the directory that holds it, "
			    "or put it next to weftctl or on PATH",
			    names[k]);
			return -ENOENT;
		}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	u->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (u->sfd < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	/* A stale segment of a previous run that was SIGKILLed, unless its
	 * processes still run: DIR (and the lock in it) was removed under a
	 * running weft. */
	pid_t owner = segment_user(u->shm_name);
	if (owner > 0) {
		say("segment /dev/shm/%s is in use by pid %d, a weft still running on an earlier %s that was "
		    "removed; stop that weft first (kill %d and the other processes given --shm %s)",
		    u->shm_name, (int)owner, u->dir, (int)owner, u->shm_name);
		return -EBUSY;
	}
	if (wf_shm_unlink(u->shm_name) == 0)
		say("removed stale segment /dev/shm/%s", u->shm_name);
	return 0;
}

/* Start everything and wait until it serves. 0, or -1 to give up. */
static int start(struct up_ctx *u)
{
	struct up_child *admin = child_add(u, KIND_ADMIN, -1);
	uint64_t t0 = wf_now_ns(), deadline = t0 + UP_ADMIN_TIMEOUT_MS * 1000000ull;
	char why[PATH_MAX + 128];
	int r;

	say("starting weft in %s (segment %s, %u shard%s)", u->dir, u->shm_name, u->nshards, u->nshards == 1 ? "" : "s");
	if (spawn(u, admin) < 0)
		return -1;
	while (!admin_answers(u)) {
		if (wait_tick(u, 50))
			return -1;
		if (!admin->pid) {
			say("weft-admin failed to start (see its log above)");
			return -1;
		}
		if (wf_now_ns() >= deadline) {
			say("weft-admin did not answer on %s/admin.sock within %u s", u->dir, UP_ADMIN_TIMEOUT_MS / 1000);
			return -1;
		}
	}
	r = wf_shm_attach(u->shm_name, &u->shm);
	if (r < 0) {
		say("cannot attach segment %s: %s", u->shm_name, strerror(-r));
		return -1;
	}
	for (uint32_t i = 0; i < u->nshards; i++)
		spawn(u, child_add(u, KIND_RANKER, (int)i));
	spawn(u, child_add(u, KIND_INGEST, -1));
	/* weft-kafka waits for weft-ingest's socket itself. */
	if (u->o->kafka_brokers)
		spawn(u, child_add(u, KIND_KAFKA, -1));

	deadline = wf_now_ns() + UP_START_TIMEOUT_MS * 1000000ull;
	for (;;) {
		if (wait_tick(u, UP_TICK_MS) || shutdown_flag(u))
			return -1;
		restart_due(u);
		if (snapshot_step(u) < 0)
			return -1;
		if (all_ready(u, why, sizeof(why)))
			break;
		if (wf_now_ns() >= deadline) {
			say("weft did not become ready within %u s: %s", UP_START_TIMEOUT_MS / 1000, why);
			return -1;
		}
	}
	printf("weft ready: %u shard%s, clients on %s/weft.sock, admin on %s/admin.sock (%llu ms)\n", u->nshards,
	       u->nshards == 1 ? "" : "s",
	       u->dir, u->dir, (unsigned long long)((wf_now_ns() - t0) / 1000000u));
	fflush(stdout);
	/* After ready: its BPF filter starts with every pid it serves. */
	if (u->bin[KIND_OBSERVE][0])
		spawn(u, child_add(u, KIND_OBSERVE, -1));
	return 0;
}

int wf_cli_up(const struct wf_cli_opts *o)
{
	struct up_ctx *u = calloc(1, sizeof(*u));
	int rc = 1;

	if (!u)
		return 1;
	u->o = o;
	u->sfd = u->lock_fd = -1;
	if (setup(u) < 0)
		goto out;
	if (start(u) == 0) {
		rc = 0;
		for (;;) {
			if (wait_tick(u, UP_TICK_MS))
				break;
			if (shutdown_flag(u)) {
				say("shutdown requested (weftctl shutdown), stopping weft");
				break;
			}
			restart_due(u);
		}
	}
	stop_all(u);
	cleanup_files(u);
	say("weft stopped");
out:
	if (u->load)
		redisFree(u->load);
	wf_shm_detach(u->shm);
	if (u->sfd >= 0)
		close(u->sfd);
	if (u->lock_fd >= 0)
		close(u->lock_fd);
	free(u);
	return rc;
}
