/*
 * rankerbench.c - the real weft-ranker process driven through its rings
 * the way weft-ingest drives it, one request at a time: RECS round trip,
 * EVENT-then-RECS round trip (an EVENT goes with WF_MSG_F_NOREPLY, as from
 * ingest, and the RECS that follows sees it), and the bytes a session
 * costs in the session arena (as the ranker publishes them in STATS).
 *
 *   weft-rankerbench --snap FILE [--n N] [--ranker PATH]
 *
 * Creates its own segment (one shard), publishes FILE as generation 1,
 * starts weft-ranker (default: ../rankers/weft-ranker next to this
 * program), and prints "ranker <what> <median> us (p99 ...)" lines and a
 * "ranker session_bytes" line. Benchmark tooling only;
 * tests/test_ranker.c checks correctness (and the bytes bound).
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/proto.h"
#include "lib/snapshot.h"
#include "lib/util.h"
#include "shm/msg.h"
#include "shm/shm.h"

struct rb {
	struct wf_shm *shm;
	struct wf_shard_ctl *sc;
	struct wf_ring_prod req;
	struct wf_ring_cons rep;
	uint64_t next_id, next_lsn;
};

static int push(struct rb *b, int cmd, uint32_t flags, const char *const *argv, uint32_t argc)
{
	uint32_t argl[16];
	struct wf_msg_req h = { .req_id = ++b->next_id, .t_recv_ns = wf_now_ns(), .flags = flags, .cmd = (uint16_t)cmd,
				.argc = (uint16_t)argc };
	int r;

	if (cmd == WF_CMD_EVENT)
		h.lsn = ++b->next_lsn;
	for (uint32_t i = 0; i < argc; i++)
		argl[i] = (uint32_t)strlen(argv[i]);
	while ((r = wf_msg_req_push(&b->req, &h, argv, argl)) == -EAGAIN) {
		wf_ring_prod_commit(&b->req);
		if (wf_wait_needs_wake(&b->sc->ranker_wait))
			wf_wake_futex(&b->sc->ranker_wait);
		__builtin_ia32_pause();
	}
	wf_ring_prod_commit(&b->req);
	if (wf_wait_needs_wake(&b->sc->ranker_wait))
		wf_wake_futex(&b->sc->ranker_wait);
	return r;
}

/* Wait (spinning, as ingest does under load) for the reply to the last request. */
static int wait_reply(struct rb *b)
{
	const void *p;
	uint32_t len, kind;
	const struct wf_msg_rep *h;
	const char *resp;

	for (uint64_t i = 0; i < 2000000000ull; i++) {
		if ((p = wf_ring_pop(&b->rep, &len, &kind))) {
			int ok = kind == WF_MSG_REP && wf_msg_rep_decode(p, len, &h, &resp) == 0 && h->req_id == b->next_id;
			wf_ring_cons_release(&b->rep);
			if (ok)
				return 0;
		}
		__builtin_ia32_pause();
	}
	return -ETIMEDOUT;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static void report(const char *what, uint64_t *ns, uint32_t n)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
	printf("ranker %-14s %7.1f us (p99 %.1f, %u requests)\n", what, ns[n / 2] / 1e3, ns[(uint64_t)n * 99 / 100] / 1e3,
	       n);
}

static int start(struct rb *b, const char *snap, const char *ranker, const char *dir, const char *name, pid_t *ret)
{
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1u << 22, .stock_capacity = 1024 };
	struct wf_snap_ref cur = { .gen = 1, .loaded_ms = wf_wall_ms() }, prev = { 0 };
	pid_t pid;

	wf_shm_unlink(name);
	if (wf_shm_create(name, &cfg, &b->shm) < 0)
		return -1;
	wf_ctl_weights_default(b->shm->ctl);
	snprintf(cur.path, sizeof(cur.path), "%s", snap);
	wf_ctl_snap_set(b->shm->ctl, &cur, &prev);
	b->sc = wf_shm_shard(b->shm, 0);
	wf_ring_prod_attach(&b->req, wf_shm_req_ring(b->shm, 0));
	wf_ring_cons_attach(&b->rep, wf_shm_rep_ring(b->shm, 0));
	pid = fork();
	if (pid == 0) {
		execl(ranker, ranker, "--shard", "0", "--dir", dir, "--shm", name, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 3000 && pid > 0 && !atomic_load_explicit(&b->sc->ready, memory_order_acquire); i++)
		usleep(10000); /* A5-style acquire: pairs with R5 in the ranker */
	*ret = pid;
	return pid > 0 && atomic_load_explicit(&b->sc->ready, memory_order_acquire) ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *snap = NULL, *ranker = NULL;
	char exe[1024], rpath[1200], dir[] = "/tmp/weft-rankerbench.XXXXXX", name[64], user[160], sid[32];
	uint32_t n = 2000;
	struct wf_snap *s;
	struct rb b = { 0 };
	uint64_t *ns;
	pid_t pid = -1;
	int r = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--snap") && i + 1 < argc)
			snap = argv[++i];
		else if (!strcmp(argv[i], "--n") && i + 1 < argc)
			n = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--ranker") && i + 1 < argc)
			ranker = argv[++i];
		else
			snap = NULL, i = argc;
	}
	if (!snap || n == 0) {
		fprintf(stderr, "usage: weft-rankerbench --snap FILE [--n N] [--ranker PATH]\n");
		return 2;
	}
	if (!ranker) {
		ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		exe[l > 0 ? l : 0] = '\0';
		snprintf(rpath, sizeof(rpath), "%s/../rankers/weft-ranker", dirname(exe));
		ranker = rpath;
	}
	if (wf_snap_open(snap, &s, exe, sizeof(exe)) < 0 || s->nusers == 0) {
		fprintf(stderr, "weft-rankerbench: %s: no users, or %s\n", snap, exe);
		return 1;
	}
	snprintf(user, sizeof(user), "%.*s", (int)s->users[0].id_len, wf_snap_str(s, s->users[0].id_off));
	snprintf(name, sizeof(name), "weft.rankerbench.%d", (int)getpid());
	ns = calloc(n, sizeof(*ns));
	if (!ns || !mkdtemp(dir) || start(&b, snap, ranker, dir, name, &pid) < 0) {
		fprintf(stderr, "weft-rankerbench: cannot start %s\n", ranker);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		const char *a[] = { "rb-recs", user, "20" };
		uint64_t t0 = wf_now_ns();
		push(&b, WF_CMD_RECS, 0, a, 3);
		if (wait_reply(&b) < 0)
			goto out;
		ns[i] = wf_now_ns() - t0;
	}
	report("recs", ns, n);
	for (uint32_t i = 0; i < n; i++) {
		const struct wf_snap_item *it = &s->items[i % s->nitems];
		char item[160];
		snprintf(item, sizeof(item), "%.*s", (int)it->id_len, wf_snap_str(s, it->id_off));
		snprintf(sid, sizeof(sid), "rb-%u", i % 1000);
		const char *e[] = { sid, user, "view", item }, *a[] = { sid, user, "20" };
		uint64_t t0 = wf_now_ns();
		push(&b, WF_CMD_EVENT, WF_MSG_F_NOREPLY, e, 4);
		push(&b, WF_CMD_RECS, 0, a, 3);
		if (wait_reply(&b) < 0)
			goto out;
		ns[i] = wf_now_ns() - t0;
	}
	report("event+recs", ns, n);
	/* Session counters are published about once a second. */
	sleep(2);
	printf("ranker session_bytes %.0f per session (%llu sessions)\n",
	       (double)atomic_load(&b.sc->stats.session_bytes) /
		       (double)WF_MAX(1u, atomic_load(&b.sc->stats.sessions_live)),
	       (unsigned long long)atomic_load(&b.sc->stats.sessions_live));
	r = 0;
out:
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	if (b.shm) {
		wf_shm_detach(b.shm);
		wf_shm_unlink(name);
	}
	snprintf(rpath, sizeof(rpath), "rm -rf '%s'", dir);
	if (system(rpath) != 0)
		r = 1;
	free(ns);
	wf_snap_close(s);
	return r;
}
