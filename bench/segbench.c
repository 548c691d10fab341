/*
 * segbench.c - what real-time segments cost (issue 16), two figures:
 *
 *   weft-segbench eval [--segments N (20)] [--sessions S (10000)] [--events E (2000000)]
 *     lib/seg alone: ns per event for wf_seg_apply + wf_seg_step (as the
 *     ranker runs them per EVENT) with N segments defined (a mix of
 *     count/did with and without filters, idle, cart, lifecycle, in()),
 *     over S sessions' states; and ns per timer step. One thread, its CPU
 *     time.
 *
 *   weft-segbench preview [--sessions S (100000)] [--users U (1000000)]
 *                         [--shards N (2)] [--events E (5)] [--rounds R (5)]
 *                         [--segments N (20)] [--ranker PATH]
 *     The real weft-ranker, N of them on a segment of their own, a
 *     snapshot written here (U users with random lifecycles, 10,000 items
 *     in 20 categories); S anonymous sessions of E pdp events each pushed
 *     through the rings (as weft-ingest routes them: by session), then
 *     SEGPREVIEW of several rules sent to every shard at once (as ingest
 *     fans it out): wall time until the last shard answered, median and
 *     max of R rounds, the busiest shard's CPU time per preview (what the
 *     wall time is on an idle box: shards run in parallel), and each
 *     rule's total count. Also the rankers' CPU
 *     ns per EVENT (/proc schedstat: idle spinning included) with no
 *     segments, the built-in ones and N defined (DIR/segments.conf), and
 *     timer lateness (2,000 idle(2s) deadlines: when each enter note was
 *     on the ring after its deadline).
 *
 * Prints "SEG <name> <value>" lines. Reports only; no time is asserted
 * anywhere (tests/test_seg.c and tests/test_ranker.c check behaviour).
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/proto.h"
#include "lib/seg/seg.h"
#include "lib/snapshot.h"
#include "lib/snapwrite.h"
#include "lib/util.h"
#include "shm/msg.h"
#include "shm/shm.h"

#define NCATS 20u
#define NITEMS 10000u

static const char *cat_name(uint32_t c, char *buf, size_t n)
{
	snprintf(buf, n, "cat%02u", c);
	return buf;
}

/* n segment definitions, a mix of what rules use, as segments.conf text. */
static char *segments_conf(uint32_t n)
{
	static const char *const rules[] = {
		"did(cart_add, 1h) and idle(10m) and not did(purchase, 1h)",
		"count(pdp, category=cat03, 10m) >= 3",
		"count(pdp, 30m) >= 5 and not did(cart_add, 30m)",
		"lifecycle = at_risk|lapsed and did(any, 30m)",
		"cart_value >= 100 and idle(5m)",
		"count(search, 10m) >= 3 and not did(pdp, 10m)",
		"did(purchase, 7d) and count(pdp, brand=b01, 1h) >= 2",
		"visitor = new and count(view, 5m) >= 4",
		"idle(30m)",
		"count(pdp, price>=50, 1h) >= 2",
	};
	char *buf = malloc(65536), line[512];
	size_t at = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < n; i++) {
		if (i >= 10 && i % 5 == 0)
			snprintf(line, sizeof(line), "s%u\t1\tin(s%u) and not did(click, 2m)\n", i, i - 10);
		else
			snprintf(line, sizeof(line), "s%u\t1\t%s\n", i, rules[i % 10]);
		at += (size_t)snprintf(buf + at, 65536 - at, "%s", line);
	}
	return buf;
}

/* ---- eval: lib/seg alone ---- */

/* This thread's CPU time, ns (a busy box's other work is not counted). */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int bench_eval(uint32_t nseg, uint32_t nsess, uint64_t nev)
{
	char *conf = segments_conf(nseg);
	struct wf_seg_defs d;
	struct wf_seg_set *set;
	struct wf_seg_error err;
	uint32_t bad;

	if (wf_seg_defs_parse(conf, strlen(conf), &d, &bad) < 0 || wf_seg_set_build(&d, &set, &err, &bad) < 0) {
		fprintf(stderr, "segbench: definitions: %s\n", err.msg);
		return 1;
	}
	size_t sz = wf_seg_state_size(set);
	uint8_t *states = calloc(nsess, sz);
	uint64_t *next = malloc(nsess * sizeof(*next));
	for (uint32_t i = 0; i < nsess; i++) {
		wf_seg_state_init(set, (struct wf_seg_state *)(states + (size_t)i * sz));
		next[i] = WF_SEG_NEVER;
	}
	uint64_t t = 1700000000000ull, seed = 1, steps = 0, enters = 0;
	char cats[NCATS][8];
	for (uint32_t c = 0; c < NCATS; c++)
		cat_name(c, cats[c], sizeof(cats[c]));
	struct wf_seg_inputs in = { .known = 1, .lifecycle = 5, .ltv = 80 };
	uint64_t t0 = cpu_ns();
	for (uint64_t e = 0; e < nev; e++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t s = (uint32_t)(seed >> 33) % nsess, item = (uint32_t)(seed >> 13) % NITEMS;
		struct wf_seg_state *st = (struct wf_seg_state *)(states + (size_t)s * sz);
		static const int types[8] = { WF_EV_VIEW, WF_EV_PDP, WF_EV_PDP, WF_EV_CLICK, WF_EV_SEARCH,
					      WF_EV_CART_ADD, WF_EV_VIEW, WF_EV_PURCHASE };
		struct wf_seg_event ev = { .type = types[(seed >> 40) & 7], .ts_ms = t,
					   .category = cats[item % NCATS], .category_len = 5,
					   .brand = "b01", .brand_len = 3, .price_cents = 1000 + item % 9000 };
		t += 3; /* ~300 events a second per 1,000 sessions: minutes of traffic */
		in.cart_items = ev.type == WF_EV_CART_ADD;
		in.cart_cents = in.cart_items * 12000u;
		wf_seg_apply(set, st, &ev);
		uint64_t m = st->member;
		next[s] = wf_seg_step(set, st, &in, t, NULL, NULL);
		enters += (uint64_t)__builtin_popcountll(st->member & ~m);
	}
	double per_event = (double)(cpu_ns() - t0) / (double)nev;
	/* Timer steps: every session at its deadline. */
	t0 = cpu_ns();
	for (uint32_t i = 0; i < nsess; i++)
		if (next[i] != WF_SEG_NEVER) {
			wf_seg_step(set, (struct wf_seg_state *)(states + (size_t)i * sz), &in, next[i], NULL, NULL);
			steps++;
		}
	double per_step = steps ? (double)(cpu_ns() - t0) / (double)steps : 0;
	printf("SEG eval_segments %u\n", nseg);
	printf("SEG eval_state_bytes %zu\n", sz);
	printf("SEG eval_ns_per_event %.0f\n", per_event);
	printf("SEG eval_ns_per_timer_step %.0f (%llu steps)\n", per_step, (unsigned long long)steps);
	printf("SEG eval_enters %llu\n", (unsigned long long)enters);
	wf_seg_set_free(set);
	wf_seg_defs_fini(&d);
	free(states);
	free(next);
	free(conf);
	return 0;
}

/* ---- preview: real rankers ---- */

struct shardc {
	struct wf_shard_ctl *sc;
	struct wf_ring_prod req;
	struct wf_ring_cons rep;
	pid_t pid;
};

struct pb {
	struct wf_shm *shm;
	uint32_t nshards;
	struct shardc sh[8];
	uint64_t next_id, next_lsn, notes;
	char dir[256], name[64];
};

static void wake(struct shardc *c)
{
	if (wf_wait_needs_wake(&c->sc->ranker_wait))
		wf_wake_futex(&c->sc->ranker_wait);
}

/* Read the notes a shard pushed (as ingest would, at once). */
static void drain_notes(struct pb *b, uint32_t shard)
{
	struct shardc *c = &b->sh[shard];
	const void *p;
	uint32_t len, kind;

	while ((p = wf_ring_pop(&c->rep, &len, &kind))) {
		if (kind != WF_MSG_NOTE) {
			fprintf(stderr, "segbench: an unexpected reply\n");
			exit(1);
		}
		b->notes++;
		wf_ring_cons_release(&c->rep);
	}
}

static void push(struct pb *b, uint32_t shard, int cmd, const char *const *argv, uint32_t argc)
{
	struct shardc *c = &b->sh[shard];
	uint32_t argl[8];
	struct wf_msg_req h = { .req_id = ++b->next_id, .t_recv_ns = wf_now_ns(), .cmd = (uint16_t)cmd,
				.argc = (uint16_t)argc };

	if (cmd == WF_CMD_EVENT) {
		h.lsn = ++b->next_lsn;
		h.flags = WF_MSG_F_NOREPLY;
	}
	for (uint32_t i = 0; i < argc; i++)
		argl[i] = (uint32_t)strlen(argv[i]);
	if (cmd == WF_CMD_EVENT)
		drain_notes(b, shard);
	while (wf_msg_req_push(&c->req, &h, argv, argl) == -EAGAIN) {
		wf_ring_prod_commit(&c->req);
		wake(c);
		usleep(20);
		drain_notes(b, shard);
	}
	wf_ring_prod_commit(&c->req);
	wake(c);
}

/* The next reply of shard (notes skipped) into out. */
static void reply(struct pb *b, uint32_t shard, char *out, size_t cap)
{
	struct shardc *c = &b->sh[shard];
	const void *p;
	uint32_t len, kind;

	for (;;) {
		if (!(p = wf_ring_pop(&c->rep, &len, &kind))) {
			usleep(20); /* never spin: the rankers need the cores (2 on this box) */
			continue;
		}
		if (kind == WF_MSG_REP) {
			const struct wf_msg_rep *rh;
			const char *resp;
			wf_msg_rep_decode(p, len, &rh, &resp);
			snprintf(out, cap, "%.*s", (int)rh->resp_len, resp);
			wf_ring_cons_release(&c->rep);
			return;
		}
		wf_ring_cons_release(&c->rep); /* a note */
		b->notes++;
	}
}

static int write_snapshot(const char *path, uint32_t nusers)
{
	size_t strs_cap = (size_t)nusers * 14 + NITEMS * 8 + 1024, len = 0;
	char *strs = malloc(strs_cap), err[256];
	struct wf_snap_item *items = calloc(NITEMS, sizeof(*items));
	struct wf_snap_user *users = calloc(nusers, sizeof(*users));
	struct wf_snap_name names[NCATS + 4];
	struct wf_snapw_input in = { .generation = 1, .build_ms = 1 };
	char buf[32];
	int r;

	for (uint32_t c = 0; c < NCATS + 4; c++) {
		int n = c < NCATS ? snprintf(buf, sizeof(buf), "cat%02u", c) : snprintf(buf, sizeof(buf), "b%02u", c - NCATS);
		names[c] = (struct wf_snap_name){ (uint32_t)len, (uint32_t)n };
		memcpy(strs + len, buf, (size_t)n);
		len += (size_t)n;
	}
	for (uint32_t i = 0; i < NITEMS; i++) {
		int n = snprintf(buf, sizeof(buf), "it%u", i);
		items[i] = (struct wf_snap_item){ .id_off = (uint32_t)len, .id_len = (uint32_t)n, .category = i % NCATS,
						  .brand = i % 4, .price_cents = 1000 + 100 * (i % 90),
						  .price_band = 255, .flags = WF_SNAP_ITEM_IN_CATALOG };
		memcpy(strs + len, buf, (size_t)n);
		len += (size_t)n;
	}
	for (uint32_t u = 0; u < nusers; u++) {
		int n = snprintf(buf, sizeof(buf), "u%u", u);
		users[u] = (struct wf_snap_user){ .id_off = (uint32_t)len, .id_len = (uint32_t)n,
						  .segment = (uint16_t)(1 + u % 6), .ltv = (float)(u % 500) };
		memcpy(strs + len, buf, (size_t)n);
		len += (size_t)n;
	}
	in.strs = strs;
	in.strs_len = len;
	in.items = items;
	in.nitems = NITEMS;
	in.users = users;
	in.nusers = nusers;
	in.names = names;
	in.ncats = NCATS;
	in.nbrands = 4;
	r = wf_snapw_write(path, &in, NULL, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "segbench: %s\n", err);
	free(strs);
	free(items);
	free(users);
	return r;
}

static int start(struct pb *b, const char *ranker)
{
	for (uint32_t i = 0; i < b->nshards; i++) {
		char shard[16];
		snprintf(shard, sizeof(shard), "%u", i);
		b->sh[i].pid = fork();
		if (b->sh[i].pid == 0) {
			execl(ranker, ranker, "--shard", shard, "--dir", b->dir, "--shm", b->name, "--session-ttl", "7200",
			      "--memory-budget", "4G", (char *)NULL);
			_exit(127);
		}
	}
	for (uint32_t i = 0; i < b->nshards; i++) {
		int k;
		for (k = 0; k < 6000 && !(atomic_load_explicit(&b->sh[i].sc->ready, memory_order_acquire) &&
					  atomic_load_explicit(&b->sh[i].sc->loaded_gen, memory_order_acquire) == 1);
		     k++)
			usleep(10000);
		if (k == 6000)
			return -1;
	}
	return 0;
}

static void stop(struct pb *b)
{
	for (uint32_t i = 0; i < b->nshards; i++)
		if (b->sh[i].pid > 0) {
			kill(b->sh[i].pid, SIGTERM);
			waitpid(b->sh[i].pid, NULL, 0);
			b->sh[i].pid = 0;
		}
}

/* CPU ns per request of every ranker since the last call (the events):
 * their on-CPU time (/proc/PID/schedstat, every thread), so a busy box's
 * other work is not counted. */
static uint64_t cpu_of(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%llu", &ns) != 1)
			ns = 0;
		fclose(f);
	}
	return ns;
}

static double busy_per_event(struct pb *b, uint64_t *last_busy, uint64_t *last_req)
{
	uint64_t busy = 0, req = 0;

	for (uint32_t i = 0; i < b->nshards; i++) {
		busy += cpu_of(b->sh[i].pid);
		req += atomic_load_explicit(&b->sh[i].sc->stats.requests, memory_order_relaxed);
	}
	double r = req > *last_req ? (double)(busy - *last_busy) / (double)(req - *last_req) : 0;
	*last_busy = busy;
	*last_req = req;
	return r;
}

/* Push every session's events; the barrier: a SEGMENTS on each shard. */
static void feed(struct pb *b, uint32_t nsess, uint32_t nev, const char *prefix)
{
	char sid[32], item[16], out[256];
	uint64_t seed = 7;

	for (uint32_t s = 0; s < nsess; s++) {
		snprintf(sid, sizeof(sid), "%s%u", prefix, s);
		uint32_t shard = wf_shard_of(sid, strlen(sid), b->nshards);
		for (uint32_t e = 0; e < nev; e++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			snprintf(item, sizeof(item), "it%u", (uint32_t)(seed >> 33) % NITEMS);
			const char *a[4] = { sid, "-", e == nev - 1 && s % 4 == 0 ? "cart_add" : "pdp", item };
			push(b, shard, WF_CMD_EVENT, a, 4);
		}
	}
	for (uint32_t i = 0; i < b->nshards; i++) {
		const char *a[2] = { "barrier", "-" };
		push(b, i, WF_CMD_SEGMENTS, a, 2);
		reply(b, i, out, sizeof(out));
	}
}

static void define(struct pb *b, const char *text)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/segments.conf", b->dir);
	wf_write_file_atomic(path, text, strlen(text));
	atomic_fetch_add_explicit(&b->shm->ctl->segdefs_gen, 1, memory_order_release);
	for (uint32_t i = 0; i < b->nshards; i++)
		wf_wake_futex(&b->sh[i].sc->ranker_wait);
	usleep(300000); /* every ranker passes its loop (each pass checks the counter) */
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Timer lateness: sessions of one event under "did(any, 1h) and
 * idle(2s)", spread over a second; each enter note's time is its deadline,
 * read here as ingest would (polling every 100 us): how late after the
 * deadline the note was on the ring, p50 / p99 / max. */
static void bench_timers(struct pb *b, uint32_t nsess)
{
	char sid[32], out[256];
	uint64_t *late = calloc(nsess, sizeof(*late)), n = 0;
	struct wf_msg_note_view *v = malloc(sizeof(*v));

	define(b, "t\t1\tdid(any, 1h) and idle(2s)\n");
	for (uint32_t s = 0; s < nsess; s++) {
		snprintf(sid, sizeof(sid), "t%u", s);
		uint32_t shard = wf_shard_of(sid, strlen(sid), b->nshards);
		const char *a[4] = { sid, "-", "view", "it1" };
		push(b, shard, WF_CMD_EVENT, a, 4);
		if (s % 10 == 0)
			usleep(1000000 / (nsess / 10 + 1));
	}
	for (uint32_t i = 0; i < b->nshards; i++) { /* the events applied */
		const char *a[2] = { "barrier", "-" };
		push(b, i, WF_CMD_SEGMENTS, a, 2);
		reply(b, i, out, sizeof(out));
	}
	uint64_t until = wf_wall_ms() + 5000;
	while (n < nsess && wf_wall_ms() < until) {
		for (uint32_t i = 0; i < b->nshards; i++) {
			const void *p;
			uint32_t len, kind;
			while ((p = wf_ring_pop(&b->sh[i].rep, &len, &kind))) {
				if (kind == WF_MSG_NOTE && wf_msg_note_decode(p, len, v) == 0 && v->argc == 7 &&
				    v->argv[1].len == 1 && v->argv[1].p[0] == 't' && n < nsess) {
					uint64_t now = wf_wall_ms();
					late[n++] = now > v->hdr.ts_ms ? now - v->hdr.ts_ms : 0;
				}
				wf_ring_cons_release(&b->sh[i].rep);
			}
		}
		usleep(100);
	}
	qsort(late, n, sizeof(*late), cmp_u64);
	if (n)
		printf("SEG timer_lateness_ms p50 %llu p99 %llu max %llu (%llu of %u deadlines)\n",
		       (unsigned long long)late[n / 2], (unsigned long long)late[n * 99 / 100],
		       (unsigned long long)late[n - 1], (unsigned long long)n, nsess);
	free(late);
	free(v);
}

static int bench_preview(uint32_t nsess, uint32_t nusers, uint32_t nshards, uint32_t nev, uint32_t rounds,
			 uint32_t nseg, const char *ranker)
{
	struct pb b = { .nshards = nshards };
	struct wf_shm_config cfg = { .nshards = nshards, .ring_capacity = 1u << 22, .stock_capacity = 1024 };
	struct wf_snap_ref cur = { .gen = 1 }, prev = { 0 };
	char snap[512], out[4096];
	uint64_t lb = 0, lr = 0;
	int rc = 1;

	snprintf(b.dir, sizeof(b.dir), "/tmp/weft-segbench.%d", (int)getpid());
	snprintf(b.name, sizeof(b.name), "weft.segbench.%d", (int)getpid());
	mkdir(b.dir, 0700);
	snprintf(snap, sizeof(snap), "%s/g1.snap", b.dir);
	fprintf(stderr, "segbench: writing a snapshot of %u users\n", nusers);
	if (write_snapshot(snap, nusers) < 0 || wf_shm_create(b.name, &cfg, &b.shm) < 0)
		return 1;
	wf_ctl_weights_default(b.shm->ctl);
	snprintf(cur.path, sizeof(cur.path), "%s", snap);
	cur.loaded_ms = wf_wall_ms();
	wf_ctl_snap_set(b.shm->ctl, &cur, &prev);
	for (uint32_t i = 0; i < nshards; i++) {
		b.sh[i].sc = wf_shm_shard(b.shm, i);
		wf_ring_prod_attach(&b.sh[i].req, wf_shm_req_ring(b.shm, i));
		wf_ring_cons_attach(&b.sh[i].rep, wf_shm_rep_ring(b.shm, i));
	}
	if (start(&b, ranker) < 0) {
		fprintf(stderr, "segbench: the rankers did not start\n");
		goto out;
	}
	/* Event cost in the ranker: no segments, the built-in ones, N (fresh
	 * sessions each time, so each run pays the same session creation). */
	define(&b, "");
	feed(&b, nsess / 4, nev, "w"); /* warm the arenas */
	busy_per_event(&b, &lb, &lr);
	feed(&b, nsess / 4, nev, "x");
	printf("SEG ranker_busy_ns_per_event_nosegments %.0f\n", busy_per_event(&b, &lb, &lr));
	define(&b, "win_back\t1\tlifecycle = at_risk|lapsed and did(any, 30m)\n"
		   "cart_abandon\t1\tcart_items >= 1 and idle(15m)\nhigh_intent\t1\tcount(pdp, 30m) >= 3\n"
		   "intent_pivot\t1\tpivot\nat_risk\t1\tlifecycle = at_risk\n");
	busy_per_event(&b, &lb, &lr);
	feed(&b, nsess / 4, nev, "y");
	printf("SEG ranker_busy_ns_per_event_builtin %.0f\n", busy_per_event(&b, &lb, &lr));
	char *conf = segments_conf(nseg);
	define(&b, conf);
	free(conf);
	busy_per_event(&b, &lb, &lr);
	fprintf(stderr, "segbench: %u sessions x %u events, %u segments\n", nsess, nev, nseg);
	feed(&b, nsess, nev, "s");
	printf("SEG ranker_busy_ns_per_event_%usegments %.0f\n", nseg, busy_per_event(&b, &lb, &lr));
	printf("SEG ranker_notes %llu\n", (unsigned long long)b.notes);
	bench_timers(&b, 2000);
	printf("SEG preview_sessions_live %u\n", nsess + 3 * (nsess / 4));
	printf("SEG preview_snapshot_users %u\n", nusers);
	static const char *const rules[] = {
		"count(pdp, category=cat03, 10m) >= 1",
		"did(cart_add, 1h) and idle(2s)",
		"lifecycle = at_risk",
		"lifecycle = vip and ltv >= 400",
		"count(pdp, 10m) >= 3 and visitor = new",
	};
	for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); r++) {
		uint64_t t[64], total = 0, cpu0[8], cpu_max = 0;
		for (uint32_t i = 0; i < nshards; i++)
			cpu0[i] = cpu_of(b.sh[i].pid);
		for (uint32_t k = 0; k < rounds && k < 64; k++) {
			uint64_t t0 = wf_now_ns();
			total = 0;
			for (uint32_t i = 0; i < nshards; i++)
				push(&b, i, WF_CMD_SEGPREVIEW, (const char *const[]){ rules[r] }, 1);
			for (uint32_t i = 0; i < nshards; i++) {
				reply(&b, i, out, sizeof(out));
				total += (uint64_t)strtoull(out + 5, NULL, 10); /* "*4\r\n:N" */
			}
			t[k] = wf_now_ns() - t0;
		}
		for (uint32_t i = 0; i < nshards; i++)
			if (cpu_of(b.sh[i].pid) - cpu0[i] > cpu_max)
				cpu_max = cpu_of(b.sh[i].pid) - cpu0[i];
		qsort(t, rounds, sizeof(t[0]), cmp_u64);
		printf("SEG preview_ms \"%s\" wall median %.1f max %.1f, busiest shard's CPU per preview %.1f, "
		       "matched %llu\n", rules[r], t[rounds / 2] / 1e6, t[rounds - 1] / 1e6,
		       (double)cpu_max / rounds / 1e6, (unsigned long long)total);
	}
	rc = 0;
out:
	stop(&b);
	wf_shm_detach(b.shm);
	wf_shm_unlink(b.name);
	unlink(snap);
	char path[512];
	snprintf(path, sizeof(path), "%s/segments.conf", b.dir);
	unlink(path);
	rmdir(b.dir);
	return rc;
}

int main(int argc, char **argv)
{
	uint32_t nseg = 20, nsess = 0, nusers = 1000000, nshards = 2, nev = 0, rounds = 5;
	uint64_t events = 2000000;
	char ranker[600];

	snprintf(ranker, sizeof(ranker), "%s/../rankers/weft-ranker", dirname(strdup(argv[0])));
	if (argc < 2 || (strcmp(argv[1], "eval") && strcmp(argv[1], "preview"))) {
		fprintf(stderr, "usage: weft-segbench eval|preview [options] (see bench/segbench.c)\n");
		return 2;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		uint64_t v = strtoull(argv[i + 1], NULL, 10);
		if (!strcmp(argv[i], "--segments"))
			nseg = (uint32_t)v;
		else if (!strcmp(argv[i], "--sessions"))
			nsess = (uint32_t)v;
		else if (!strcmp(argv[i], "--events"))
			events = v, nev = (uint32_t)v;
		else if (!strcmp(argv[i], "--users"))
			nusers = (uint32_t)v;
		else if (!strcmp(argv[i], "--shards"))
			nshards = (uint32_t)v;
		else if (!strcmp(argv[i], "--rounds"))
			rounds = (uint32_t)v;
		else if (!strcmp(argv[i], "--ranker"))
			snprintf(ranker, sizeof(ranker), "%s", argv[i + 1]);
		else {
			fprintf(stderr, "segbench: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (nseg > WF_SEG_MAX || nshards < 1 || nshards > 8 || rounds < 1 || rounds > 64)
		return 2;
	if (!strcmp(argv[1], "eval"))
		return bench_eval(nseg, nsess ? nsess : 10000, events);
	return bench_preview(nsess ? nsess : 100000, nusers, nshards, nev && nev < 1000 ? nev : 5, rounds, nseg, ranker);
}
