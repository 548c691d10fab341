/*
 * recoverybench.c - how long a weft-ranker takes to come back after a
 * kill -9 with a large journal, and what its checkpoints cost the RECS
 * it answers meanwhile.
 *
 *   weft-recoverybench --snap FILE [--events N (1000000)] [--sessions S (100000)]
 *                      [--checkpoint-interval SEC (0: none)] [--tail T (10000)]
 *                      [--load-seconds L (0)] [--ranker PATH]
 *
 * Creates its own segment (one shard) and journal (N EVENTs over S
 * sessions, items of FILE), publishes FILE, starts weft-ranker and prints
 * `RECOVER <what> <value>` lines:
 *   start_ms      exec to serving, replaying the whole journal
 *   checkpoint_ms (interval > 0) start to the first checkpoint covering it
 *   restart_ms    after T more EVENTs and a kill -9: exec to serving
 *                 (with a checkpoint: it plus the T after it)
 *   recs_p50_us, recs_p99_us, recs_p999_us, recs_max_us (L > 0): RECS
 *                 round trips, one at a time, for L seconds after the
 *                 restart (checkpoints run meanwhile when interval > 0)
 * Benchmark tooling only (tests/test_ranker.c checks correctness). The
 * ranker flags other than --shard/--dir/--shm are given only when set,
 * so an older weft-ranker (--ranker) is measured the same way.
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/journal.h"
#include "lib/proto.h"
#include "lib/snapshot.h"
#include "lib/util.h"
#include "shm/msg.h"
#include "shm/shm.h"

struct bench {
	struct wf_shm *shm;
	struct wf_shard_ctl *sc;
	struct wf_ring_prod req;
	struct wf_ring_cons rep;
	uint64_t next_id;
	struct wf_snap *snap;
	struct wf_journal *j;
	const char *ranker, *ckpt;
	char dir[64], name[64];
	uint32_t sessions;
	uint64_t written;
};

static int journal_events(struct bench *b, uint64_t n)
{
	char sid[32], item[160];

	for (uint64_t i = 0; i < n; i++, b->written++) {
		const struct wf_snap_item *it = &b->snap->items[(b->written * 7919) % b->snap->nitems];
		const char *argv[4] = { sid, "-", b->written % 5 ? "view" : "pdp", item };
		uint32_t argl[4];
		uint64_t lsn;

		snprintf(sid, sizeof(sid), "s%u", (uint32_t)(b->written % b->sessions));
		snprintf(item, sizeof(item), "%.*s", (int)it->id_len, wf_snap_str(b->snap, it->id_off));
		for (int k = 0; k < 4; k++)
			argl[k] = (uint32_t)strlen(argv[k]);
		if (wf_journal_append(b->j, wf_wall_ms(), 0, 4, argv, argl, &lsn) < 0)
			return -1;
		if ((i & 4095) == 4095 && wf_journal_flush_sync(b->j) < 0)
			return -1;
	}
	return wf_journal_flush_sync(b->j);
}

/* Start the ranker; the ms until it serves, or -1. */
static double start(struct bench *b, pid_t *ret)
{
	uint64_t t0 = wf_now_ns();
	pid_t pid;

	atomic_store_explicit(&b->sc->ready, 0, memory_order_relaxed);
	pid = fork();
	if (pid == 0) {
		if (b->ckpt)
			execl(b->ranker, b->ranker, "--shard", "0", "--dir", b->dir, "--shm", b->name, "--checkpoint-interval",
			      b->ckpt, (char *)NULL);
		else
			execl(b->ranker, b->ranker, "--shard", "0", "--dir", b->dir, "--shm", b->name, (char *)NULL);
		_exit(127);
	}
	/* A5-style acquire: pairs with R5 in the ranker. */
	while (pid > 0 && !atomic_load_explicit(&b->sc->ready, memory_order_acquire)) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(200);
	}
	*ret = pid;
	return pid > 0 ? (double)(wf_now_ns() - t0) / 1e6 : -1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* RECS one at a time for secs seconds; prints the quantiles. */
static int load(struct bench *b, double secs)
{
	uint64_t cap = 1u << 24, n = 0, end = wf_now_ns() + (uint64_t)(secs * 1e9);
	uint64_t *ns = malloc(cap * sizeof(*ns));
	char sid[32];

	if (!ns)
		return -1;
	while (n < cap && wf_now_ns() < end) {
		const char *a[] = { sid, "-", "20" };
		uint32_t argl[3], len, kind;
		struct wf_msg_req h = { .req_id = ++b->next_id, .t_recv_ns = wf_now_ns(), .cmd = WF_CMD_RECS, .argc = 3 };
		const void *p = NULL;
		uint64_t t0 = wf_now_ns();

		snprintf(sid, sizeof(sid), "s%u", (uint32_t)((n * 2654435761u) % b->sessions));
		for (int k = 0; k < 3; k++)
			argl[k] = (uint32_t)strlen(a[k]);
		if (wf_msg_req_push(&b->req, &h, a, argl) < 0)
			break;
		wf_ring_prod_commit(&b->req);
		if (wf_wait_needs_wake(&b->sc->ranker_wait))
			wf_wake_futex(&b->sc->ranker_wait);
		while (!(p = wf_ring_pop(&b->rep, &len, &kind)))
			__builtin_ia32_pause();
		wf_ring_cons_release(&b->rep);
		ns[n++] = wf_now_ns() - t0;
	}
	qsort(ns, n, sizeof(*ns), cmp_u64);
	if (n) {
		printf("RECOVER recs_n %llu\n", (unsigned long long)n);
		printf("RECOVER recs_p50_us %.1f\n", ns[n / 2] / 1e3);
		printf("RECOVER recs_p99_us %.1f\n", ns[n * 99 / 100] / 1e3);
		printf("RECOVER recs_p999_us %.1f\n", ns[n * 999 / 1000] / 1e3);
		printf("RECOVER recs_max_us %.1f\n", ns[n - 1] / 1e3);
	}
	free(ns);
	return 0;
}

int main(int argc, char **argv)
{
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1u << 22, .stock_capacity = 1024 };
	struct wf_snap_ref cur = { .gen = 1, .loaded_ms = wf_wall_ms() }, prev = { 0 };
	struct bench b = { .sessions = 100000 };
	const char *snap = NULL;
	char exe[1024], rpath[1200], err[256], jdir[128];
	uint64_t events = 1000000, tail = 10000;
	double secs = 0, ms;
	pid_t pid = -1;
	int r = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--snap") && i + 1 < argc)
			snap = argv[++i];
		else if (!strcmp(argv[i], "--events") && i + 1 < argc)
			events = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--sessions") && i + 1 < argc)
			b.sessions = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--checkpoint-interval") && i + 1 < argc)
			b.ckpt = argv[++i];
		else if (!strcmp(argv[i], "--tail") && i + 1 < argc)
			tail = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--load-seconds") && i + 1 < argc)
			secs = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--ranker") && i + 1 < argc)
			b.ranker = argv[++i];
		else
			snap = NULL, i = argc;
	}
	if (!snap || !b.sessions) {
		fprintf(stderr, "usage: weft-recoverybench --snap FILE [--events N] [--sessions S] "
				"[--checkpoint-interval SEC] [--tail T] [--load-seconds L] [--ranker PATH]\n");
		return 2;
	}
	if (!b.ranker) {
		ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		exe[l > 0 ? l : 0] = '\0';
		snprintf(rpath, sizeof(rpath), "%s/../rankers/weft-ranker", dirname(exe));
		b.ranker = rpath;
	}
	if (wf_snap_open(snap, &b.snap, err, sizeof(err)) < 0 || !b.snap->nitems) {
		fprintf(stderr, "weft-recoverybench: %s: no items, or %s\n", snap, err);
		return 1;
	}
	snprintf(b.dir, sizeof(b.dir), "/tmp/weft-recoverybench.XXXXXX");
	snprintf(b.name, sizeof(b.name), "weft.recoverybench.%d", (int)getpid());
	if (!mkdtemp(b.dir))
		return 1;
	snprintf(jdir, sizeof(jdir), "%s/journal", b.dir);
	if (wf_journal_open(jdir, &(struct wf_journal_opts){ .durability = WF_JOURNAL_OS }, &b.j, err, sizeof(err)) < 0 ||
	    journal_events(&b, events) < 0) {
		fprintf(stderr, "weft-recoverybench: cannot write the journal in %s\n", jdir);
		goto out;
	}
	if (wf_shm_create(b.name, &cfg, &b.shm) < 0)
		goto out;
	wf_ctl_weights_default(b.shm->ctl);
	snprintf(cur.path, sizeof(cur.path), "%s", snap);
	wf_ctl_snap_set(b.shm->ctl, &cur, &prev);
	b.sc = wf_shm_shard(b.shm, 0);
	wf_ring_prod_attach(&b.req, wf_shm_req_ring(b.shm, 0));
	wf_ring_cons_attach(&b.rep, wf_shm_rep_ring(b.shm, 0));
	printf("RECOVER events %llu sessions %u checkpoint_interval %s ranker %s\n", (unsigned long long)events,
	       b.sessions, b.ckpt ? b.ckpt : "-", b.ranker);
	if ((ms = start(&b, &pid)) < 0)
		goto out;
	printf("RECOVER start_ms %.1f\n", ms);
	if (b.ckpt && atoi(b.ckpt) > 0) {
		uint64_t t0 = wf_now_ns();
		while (atomic_load_explicit(&b.sc->stats.checkpoint_lsn, memory_order_relaxed) < events)
			usleep(1000);
		printf("RECOVER checkpoint_ms %.1f\n", (double)(wf_now_ns() - t0) / 1e6);
	}
	if (journal_events(&b, tail) < 0)
		goto out;
	usleep(100000); /* the tail reaches the journal, not the ring: the restart replays it */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	pid = -1;
	if ((ms = start(&b, &pid)) < 0)
		goto out;
	printf("RECOVER restart_ms %.1f\n", ms);
	if (secs > 0 && load(&b, secs) < 0)
		goto out;
	r = 0;
out:
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	wf_journal_close(b.j);
	if (b.shm) {
		wf_shm_detach(b.shm);
		wf_shm_unlink(b.name);
	}
	snprintf(rpath, sizeof(rpath), "rm -rf '%s'", b.dir);
	if (system(rpath) != 0)
		r = 1;
	wf_snap_close(b.snap);
	return r;
}
