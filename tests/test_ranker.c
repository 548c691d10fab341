/*
 * test_ranker.c - weft-ranker as a process, driven the way weft-ingest
 * drives it: this test creates the segment, publishes a snapshot
 * generation in the control block, starts the real weft-ranker binary for
 * one shard, pushes WF_MSG_REQ records into its request ring (waking it on
 * its futex) and reads the RESP bytes of its replies.
 *
 * EVENTs go as ingest sends them: with an LSN and WF_MSG_F_NOREPLY (no
 * reply; the next request's reply means they were applied).
 *
 * Covers: start-up (pid, starts, ready, loaded generation), RECS order,
 * EVENTs applied without a reply (bad ones counted), cart_add removal and complements, live stock with and
 * without SIZE, EXPLAIN parts adding up (decimal, exactly), HISTORY,
 * RERANK, SEGMENTS (snapshot segment, high_intent), errors, generation
 * swap keeping sessions, a refused file keeping the current generation,
 * a cached RECS equal to a fresh one (EXPLAIN is always computed fresh)
 * across events, weight changes, stock changes and swaps, items the
 * snapshot lacks coming back by id after the session viewed them (live
 * items: stock, ANCHOR, cart, EXPLAIN, RERANK), a clean exit on
 * ctl->shutdown, a live session under 1 KiB with up to 10 events, a
 * session past 4,096 events keeping every acked one (HISTORY folds the
 * oldest), the memory budget (least recently active sessions go, and come
 * back whole from the spill store; idle ones too), the spill store within
 * its disk budget, checkpoints (a restart replays only after one; a
 * corrupt or truncated one is refused), the catch-up on EVENTs a killed
 * ingest had journaled and not sent, and segments: a definition reloaded
 * by its counter, an enter note from the ranker's own timer and an exit
 * from an event (keys, fields), SEGMENTS and SEGPREVIEW, and kill -9
 * restarts announcing each transition once.
 * Round-trip times are measured by bench/rankerbench.c, not here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/exp.h"
#include "lib/journal.h"
#include "lib/proto.h"
#include "lib/util.h"
#include "shm/msg.h"
#include "shm/shm.h"
#include "tests/test_ranker.h"

struct fx {
	char dir[256], shm_name[64], snap1[512], snap2[512], bad[512];
	struct wf_shm *shm;
	uint32_t shard;
	pid_t pid;
	struct wf_ring_prod req;
	struct wf_ring_cons rep;
	uint64_t next_id;
	uint64_t next_lsn; /* the "journal LSN" of the next EVENT */
	char reply[1 << 20];
	size_t reply_len;
	/* Segment notes read off the reply ring (as weft-ingest does), and
	 * journaled as ingest would when j is open. */
	struct tnote {
		char key[256], seg[80], version[24], event[8], session[136], user[136], reason[40];
		uint64_t ts;
	} notes[512];
	uint32_t nnotes;
	struct wf_journal *j;
	/* the last exposure note before the last reply (issue 17) */
	uint32_t exp_n, exp_kind, exp_argc;
	char exp_note[64][160];
};

static struct fx F;

static int wait_for(int (*cond)(void))
{
	for (int i = 0; i < 1000; i++) { /* 20 s: a bound, not a timing check */
		if (cond())
			return 1;
		usleep(20000);
	}
	return 0;
}

static struct wf_shard_ctl *sc(void)
{
	return wf_shm_shard(F.shm, F.shard);
}

static int ranker_ready(void)
{
	return atomic_load_explicit(&sc()->ready, memory_order_acquire) == 1;
}

static void publish(uint64_t gen, const char *path)
{
	struct wf_snap_ref cur = { .gen = gen, .loaded_ms = wf_wall_ms() }, prev = { 0 };

	snprintf(cur.path, sizeof(cur.path), "%s", path);
	wf_ctl_snap_set(F.shm->ctl, &cur, &prev);
}

static const char *ranker_ttl = "600"; /* --session-ttl of the next start */
static const char *ranker_ckpt = "300"; /* --checkpoint-interval of the next start */
static const char *ranker_spill = "1G"; /* --spill-budget of the next start */

/* Start weft-ranker for F.shard (path exe) and wait until it serves. */
static int start_ranker(const char *exe)
{
	char shard[16];

	snprintf(shard, sizeof(shard), "%u", F.shard);
	F.pid = fork();
	if (F.pid == 0) {
		execl(exe, exe, "--shard", shard, "--dir", F.dir, "--shm", F.shm_name, "--session-ttl",
		      ranker_ttl, "--memory-budget", "4M", "--checkpoint-interval", ranker_ckpt, "--spill-budget",
		      ranker_spill, (char *)NULL);
		_exit(127);
	}
	return F.pid > 0 && wait_for(ranker_ready) ? 0 : -1;
}

static char exe_path[600];

static int group_setup(void **state)
{
	struct wf_shm_config cfg = { .nshards = 4, .ring_capacity = 1u << 20, .stock_capacity = 1024 };
	const char *root = getenv("WEFT_BUILD_ROOT");
	char *exe = exe_path;

	snprintf(F.dir, sizeof(F.dir), "/tmp/weft.test.ranker.%d.XXXXXX", (int)getpid());
	if (!mkdtemp(F.dir))
		return -1;
	snprintf(F.shm_name, sizeof(F.shm_name), "weft.test.ranker.%d", (int)getpid());
	snprintf(F.snap1, sizeof(F.snap1), "%s/g1.snap", F.dir);
	snprintf(F.snap2, sizeof(F.snap2), "%s/g2.snap", F.dir);
	snprintf(F.bad, sizeof(F.bad), "%s/bad.snap", F.dir);
	snprintf(exe, sizeof(exe_path), "%s/rankers/weft-ranker", root ? root : ".");
	if (access(exe, X_OK) < 0) {
		fprintf(stderr, "no %s (set WEFT_BUILD_ROOT)\n", exe);
		return -1;
	}
	if (tr_write_store(F.snap1, 1) < 0 || tr_write_store(F.snap2, 2) < 0)
		return -1;
	if (wf_shm_create(F.shm_name, &cfg, &F.shm) < 0)
		return -1;
	wf_ctl_weights_default(F.shm->ctl);
	/* The shard alice lives on: her list comes from the generation arena;
	 * bob's (another shard with 4 shards) straight from the mapped file. */
	F.shard = wf_shard_of("alice", 5, 4);
	publish(1, F.snap1);
	wf_ring_prod_attach(&F.req, wf_shm_req_ring(F.shm, F.shard));
	wf_ring_cons_attach(&F.rep, wf_shm_rep_ring(F.shm, F.shard));
	if (start_ranker(exe) < 0)
		return -1;
	*state = &F;
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[600];

	if (F.pid > 0) {
		kill(F.pid, SIGTERM);
		waitpid(F.pid, NULL, 0);
	}
	wf_shm_detach(F.shm);
	wf_shm_unlink(F.shm_name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", F.dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void copy_arg(char *dst, size_t cap, const struct wf_arg *a)
{
	snprintf(dst, cap, "%.*s", (int)a->len, a->p);
}

/* A WF_MSG_NOTE off the reply ring: recorded in F.notes, journaled into
 * F.j (kind WF_JREC_SEGMENT, this shard) when open, released. */
static void take_note(const void *p, uint32_t len)
{
	static struct wf_msg_note_view v;
	const char *argv[WF_MSG_NOTE_MAX_ARGS];
	uint32_t argl[WF_MSG_NOTE_MAX_ARGS];
	uint64_t lsn;

	assert_int_equal(wf_msg_note_decode(p, len, &v), 0);
	if (v.hdr.jkind == WF_JREC_EXPOSURE) {
		/* An exposure comes before the reply it belongs to: the last
		 * one kept in F.exp_note, counted in F.exp_n (issue 17). */
		F.exp_kind = v.hdr.jkind;
		F.exp_argc = v.argc;
		for (uint32_t i = 0; i < v.argc; i++)
			copy_arg(F.exp_note[i], sizeof(F.exp_note[i]), &v.argv[i]);
		F.exp_n++;
		wf_ring_cons_release(&F.rep);
		return;
	}
	assert_int_equal(v.hdr.jkind, WF_JREC_SEGMENT);
	assert_int_equal(v.argc, 7);
	assert_true(F.nnotes < sizeof(F.notes) / sizeof(F.notes[0]));
	struct tnote *n = &F.notes[F.nnotes++];
	copy_arg(n->key, sizeof(n->key), &v.argv[0]);
	copy_arg(n->seg, sizeof(n->seg), &v.argv[1]);
	copy_arg(n->version, sizeof(n->version), &v.argv[2]);
	copy_arg(n->event, sizeof(n->event), &v.argv[3]);
	copy_arg(n->session, sizeof(n->session), &v.argv[4]);
	copy_arg(n->user, sizeof(n->user), &v.argv[5]);
	copy_arg(n->reason, sizeof(n->reason), &v.argv[6]);
	n->ts = v.hdr.ts_ms;
	if (F.j) {
		for (uint32_t i = 0; i < v.argc; i++) {
			argv[i] = v.argv[i].p;
			argl[i] = v.argv[i].len;
		}
		assert_int_equal(wf_journal_append_kind(F.j, WF_JREC_SEGMENT, v.hdr.ts_ms, (uint16_t)F.shard, v.argc, argv,
							argl, &lsn), 0);
		assert_int_equal(wf_journal_flush_sync(F.j), 0);
	}
	wf_ring_cons_release(&F.rep);
}

/* Send one request (args exclude the command) and wait for its reply
 * into F.reply. */
static void call(int cmd, const char *const *argv, uint32_t argc)
{
	uint32_t argl[64], len = 0, kind = 0;
	struct wf_msg_req h = { .req_id = ++F.next_id, .t_recv_ns = wf_now_ns(), .cmd = (uint16_t)cmd,
				.argc = (uint16_t)argc };
	const struct wf_msg_rep *rh;
	const char *resp;
	const void *p = NULL;

	for (uint32_t i = 0; i < argc; i++)
		argl[i] = (uint32_t)strlen(argv[i]);
	assert_int_equal(wf_msg_req_push(&F.req, &h, argv, argl), 0);
	wf_ring_prod_commit(&F.req);
	if (wf_wait_needs_wake(&sc()->ranker_wait))
		wf_wake_futex(&sc()->ranker_wait);
	F.exp_n = 0;
	for (int i = 0; i < 4000000; i++) {
		if ((p = wf_ring_pop(&F.rep, &len, &kind)) && kind == WF_MSG_NOTE) {
			take_note(p, len); /* a segment transition, ahead of replies */
			p = NULL;
			continue;
		}
		if (p)
			break;
		if (i > 200000)
			usleep(10); /* spin first, then yield the core */
	}
	assert_non_null(p);
	assert_int_equal(kind, WF_MSG_REP);
	assert_int_equal(wf_msg_rep_decode(p, len, &rh, &resp), 0);
	assert_true(rh->req_id == h.req_id);
	assert_true(rh->resp_len < sizeof(F.reply));
	memcpy(F.reply, resp, rh->resp_len);
	F.reply[rh->resp_len] = '\0';
	F.reply_len = rh->resp_len;
	wf_ring_cons_release(&F.rep);
}

#define CALL(cmd, ...)                                                          \
	do {                                                                    \
		const char *const a_[] = { __VA_ARGS__ };                        \
		call(cmd, a_, (uint32_t)(sizeof(a_) / sizeof(a_[0])));           \
	} while (0)

/* Send an EVENT as weft-ingest does: with its journal LSN and
 * WF_MSG_F_NOREPLY (ingest acks it once journaled), so the ranker applies
 * it and answers nothing. The ring is FIFO: the reply to any later call()
 * means it was applied, and call() checks that reply is its own (so no
 * reply came for the event). */
static void event(const char *const *argv, uint32_t argc)
{
	uint32_t argl[64];
	struct wf_msg_req h = { .req_id = ++F.next_id, .t_recv_ns = wf_now_ns(), .lsn = ++F.next_lsn,
				.flags = WF_MSG_F_NOREPLY, .cmd = WF_CMD_EVENT, .argc = (uint16_t)argc };

	int r;

	for (uint32_t i = 0; i < argc; i++)
		argl[i] = (uint32_t)strlen(argv[i]);
	/* A full ring: wait for the ranker to release (a bound, not a time). */
	for (int i = 0; (r = wf_msg_req_push(&F.req, &h, argv, argl)) == -EAGAIN && i < 2000000; i++) {
		wf_ring_prod_commit(&F.req);
		if (wf_wait_needs_wake(&sc()->ranker_wait))
			wf_wake_futex(&sc()->ranker_wait);
		usleep(10);
	}
	assert_int_equal(r, 0);
	wf_ring_prod_commit(&F.req);
	if (wf_wait_needs_wake(&sc()->ranker_wait))
		wf_wake_futex(&sc()->ranker_wait);
}

#define EVENT(...)                                                              \
	do {                                                                    \
		const char *const a_[] = { __VA_ARGS__ };                        \
		event(a_, (uint32_t)(sizeof(a_) / sizeof(a_[0])));               \
	} while (0)

/* Every request sent so far has been handled (a SEGMENTS round trip). */
static void barrier(void)
{
	CALL(WF_CMD_SEGMENTS, "barrier", "-");
}

/* A RESP reply flattened: bulk strings and integers as text, arrays as
 * "*n" followed by their elements. Returns the token count. */
#define TOKS_MAX 65536 /* a long session's HISTORY: ~10 tokens per event */

struct toks {
	char t[TOKS_MAX][160];
	int n;
};

static const char *flatten_one(const char *p, struct toks *t)
{
	const char *e = strstr(p, "\r\n");
	long n;

	assert_non_null(e);
	assert_true(t->n < TOKS_MAX);
	switch (*p) {
	case '*':
		n = strtol(p + 1, NULL, 10);
		snprintf(t->t[t->n++], 160, "*%ld", n);
		p = e + 2;
		for (long i = 0; i < n; i++)
			p = flatten_one(p, t);
		return p;
	case '$':
		n = strtol(p + 1, NULL, 10);
		assert_true(n >= 0 && n < 160);
		memcpy(t->t[t->n], e + 2, (size_t)n);
		t->t[t->n++][n] = '\0';
		return e + 2 + n + 2;
	default: /* + - : */
		snprintf(t->t[t->n++], 160, "%.*s", (int)(e - p), p);
		return e + 2;
	}
}

static struct toks *flatten(void)
{
	static struct toks t;

	t.n = 0;
	flatten_one(F.reply, &t);
	return &t;
}

/* Items of a flat (non-EXPLAIN) array reply. */
static int items_of(char out[][16], int max)
{
	struct toks *t = flatten();
	int n = 0;

	assert_true(t->t[0][0] == '*');
	for (int i = 1; i < t->n && n < max; i++)
		snprintf(out[n++], 16, "%s", t->t[i]);
	return n;
}

static int has(char items[][16], int n, const char *id)
{
	for (int i = 0; i < n; i++)
		if (strcmp(items[i], id) == 0)
			return 1;
	return 0;
}

static void test_ranker_started_and_loaded_generation(void **state)
{
	assert_int_equal(atomic_load(&sc()->ranker_pid), (uint32_t)F.pid);
	assert_int_equal(atomic_load(&sc()->ranker_starts), 1);
	assert_int_equal(atomic_load(&sc()->loaded_gen), 1);
	assert_int_equal(atomic_load(&sc()->stats.snapshot_users),
			 (wf_shard_of("bob", 3, 4) == F.shard) + 1); /* alice, and bob if he is ours */
}

/* SEGPREVIEW's count equals a brute-force count over the same events.
 * On a ranker of another shard started for it, so these are the shard's
 * only live sessions: 400 anonymous ones of 0..23 events each (pdp, view, hover, cart_add; items of every
 * category, brand and price, and one the snapshot lacks), each event's
 * time of record (its ts field) 0..9 or 11..20 minutes ago, so the 10m
 * windows cut through sessions and no time sits near their edge while
 * the test runs. Every rule counted here by hand: category = and !=,
 * brand, price, an unknown item (matches neither = nor !=), >=, >, =,
 * did, not, or. */
#define PV_SESS 400
#define PV_EV 24

struct pv_ev {
	int type, item; /* item -1: "zz9", unknown to the snapshot */
	uint64_t ts;
};

static const char *const pv_types[4] = { "pdp", "view", "hover", "cart_add" };

/* Events of type t, of items passing ok, within 10 minutes of now. */
static int pv_count(const struct pv_ev *e, int n, uint64_t now, int t, int (*ok)(int item))
{
	int c = 0;

	for (int i = 0; i < n; i++)
		c += (t < 0 || e[i].type == t) && (!ok || (e[i].item >= 0 && ok(e[i].item))) &&
		     e[i].ts + 600000 > now;
	return c;
}

static int pv_bags(int i) { return i / 10 == 2; }
static int pv_not_bags_20(int i) { return i / 10 != 2 && 1000 + 100 * i >= 2000; }
static int pv_acme(int i) { return i % 2 == 0; }
static int pv_hats(int i) { return i / 10 == 1; }

static void test_ranker_segpreview_equals_brute_force(void **state)
{
	static struct pv_ev ev[PV_SESS][PV_EV];
	static const char *const rules[] = {
		"count(pdp, category=bags, 10m) >= 3",
		"count(pdp, category!=bags, price>=20, 10m) > 1",
		"did(cart_add, brand=acme, 10m) and not did(view, 10m)",
		"count(any, 10m) >= 4 or count(hover, category=hats, 10m) = 2",
	};
	int nev[PV_SESS], want[4] = { 0 };
	uint64_t seed = 16, now = wf_wall_ms();
	char sid[16], item[8], ts[24];
	uint32_t shard = F.shard;
	pid_t pid = F.pid;

	F.shard = (shard + 1) % 4;
	wf_ring_prod_attach(&F.req, wf_shm_req_ring(F.shm, F.shard));
	wf_ring_cons_attach(&F.rep, wf_shm_rep_ring(F.shm, F.shard));
	assert_int_equal(start_ranker(exe_path), 0);
	for (int s = 0; s < PV_SESS; s++) {
		snprintf(sid, sizeof(sid), "pv%d", s);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		nev[s] = (int)(seed >> 33) % PV_EV;
		for (int k = 0; k < nev[s]; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			uint64_t ago = (seed >> 20) % 540000; /* 0..9 minutes */
			struct pv_ev *e = &ev[s][k];
			static const int types[8] = { 0, 0, 0, 0, 1, 2, 3, 3 };
			e->type = types[(seed >> 40) % 8];
			e->item = (int)((seed >> 44) % 9) * 5 - 1; /* zz9, i04, i09, ... i39 */
			e->ts = now - ((seed >> 60) & 3 ? ago : ago + 660000); /* or 11..20 */
			snprintf(item, sizeof(item), e->item < 0 ? "zz9" : "i%02d", e->item);
			snprintf(ts, sizeof(ts), "%llu", (unsigned long long)e->ts);
			EVENT(sid, "-", pv_types[e->type], item, "ts", ts);
		}
		want[0] += pv_count(ev[s], nev[s], now, 0, pv_bags) >= 3;
		want[1] += pv_count(ev[s], nev[s], now, 0, pv_not_bags_20) > 1;
		want[2] += pv_count(ev[s], nev[s], now, 3, pv_acme) >= 1 && pv_count(ev[s], nev[s], now, 1, NULL) == 0;
		want[3] += pv_count(ev[s], nev[s], now, -1, NULL) >= 4 || pv_count(ev[s], nev[s], now, 2, pv_hats) == 2;
	}
	for (int r = 0; r < 4; r++) {
		CALL(WF_CMD_SEGPREVIEW, rules[r]);
		struct toks *t = flatten();
		assert_string_equal(t->t[0], "*4");
		print_message("%s: %d of %d sessions\n", rules[r], want[r], PV_SESS);
		assert_int_equal(atol(t->t[1] + 1), want[r]);
		assert_int_equal(atol(t->t[2] + 1), want[r]); /* all new: no user */
		assert_true(want[r] > 5 && want[r] < PV_SESS - 5); /* the rule tells sessions apart */
	}
	kill(F.pid, SIGKILL);
	waitpid(F.pid, NULL, 0);
	F.pid = pid;
	F.shard = shard;
	wf_ring_prod_attach(&F.req, wf_shm_req_ring(F.shm, F.shard));
	wf_ring_cons_attach(&F.rep, wf_shm_rep_ring(F.shm, F.shard));
}

static void test_ranker_recs_is_batch_list_then_cart_changes_it(void **state)
{
	char it[64][16];
	int n;

	CALL(WF_CMD_RECS, "s1", "alice", "5");
	assert_string_equal(F.reply, "*5\r\n$3\r\ni00\r\n$3\r\ni01\r\n$3\r\ni02\r\n$3\r\ni03\r\n$3\r\ni04\r\n");
	EVENT("s1", "alice", "cart_add", "i00");
	CALL(WF_CMD_RECS, "s1", "alice", "10");
	n = items_of(it, 64);
	assert_int_equal(n, 10);
	assert_false(has(it, n, "i00"));
	assert_true(has(it, n, "i30"));
	/* The same user seen anonymously in this session keeps the context. */
	CALL(WF_CMD_RECS, "s1", "-", "10");
	n = items_of(it, 64);
	assert_false(has(it, n, "i00"));
	assert_true(has(it, n, "i30"));
}

static void test_ranker_stock_filters_items_and_sizes(void **state)
{
	char it[64][16];
	int n;

	assert_int_equal(wf_stock_set(F.shm->stock, "i01", 3, NULL, 0, 0), 0);
	assert_int_equal(wf_stock_set(F.shm->stock, "i02", 3, "M", 1, 0), 0);
	assert_int_equal(wf_stock_set(F.shm->stock, "i02", 3, "L", 1, 4), 0);
	CALL(WF_CMD_RECS, "st", "alice", "40");
	n = items_of(it, 64);
	assert_true(n > 10);
	assert_false(has(it, n, "i01"));
	assert_true(has(it, n, "i02"));
	CALL(WF_CMD_RECS, "st", "alice", "40", "SIZE", "M");
	n = items_of(it, 64);
	assert_false(has(it, n, "i01"));
	assert_false(has(it, n, "i02"));
	assert_true(has(it, n, "i03")); /* size-less, never stocked live: any size */
	CALL(WF_CMD_RECS, "st", "alice", "40", "SIZE", "L");
	n = items_of(it, 64);
	assert_true(has(it, n, "i02"));
	CALL(WF_CMD_RERANK, "st", "alice", "i05", "i01", "nosuch", "i02");
	assert_string_equal(F.reply, "*3\r\n$3\r\ni02\r\n$3\r\ni05\r\n$6\r\nnosuch\r\n");
	assert_int_equal(wf_stock_set(F.shm->stock, "i01", 3, NULL, 0, 2), 0);
}

/* "0.123456" / "-0.000012" -> micro-units */
/* Issue 15 item 11: live stock removes only what it says is out. A
 * sized item never stocked live is not filtered by SIZE (main dropped
 * it); STOCK item M 0 on such an item removes it in M only (main: in
 * every size); once every size the snapshot knows is told live, a size
 * not among them is out; an item whose size count is unknown keeps
 * sizes never told. */
static void test_ranker_size_filter_drops_only_what_live_stock_says(void **state)
{
	char it[64][16];
	int n;

#define RECS_SIZE(sz)                                                           \
	do {                                                                    \
		CALL(WF_CMD_RECS, "sz", "alice", "40", "SIZE", sz);            \
		n = items_of(it, 64);                                           \
	} while (0)
	RECS_SIZE("M");
	assert_true(has(it, n, "i06"));
	assert_true(has(it, n, "i07"));
	assert_int_equal(wf_stock_set(F.shm->stock, "i07", 3, "M", 1, 0), 0);
	RECS_SIZE("M");
	assert_false(has(it, n, "i07"));
	assert_true(has(it, n, "i06"));
	RECS_SIZE("L");
	assert_true(has(it, n, "i07"));
	assert_int_equal(wf_stock_set(F.shm->stock, "i07", 3, "L", 1, 5), 0);
	RECS_SIZE("L");
	assert_true(has(it, n, "i07"));
	RECS_SIZE("XL"); /* both of its 2 sizes told: it has no XL */
	assert_false(has(it, n, "i07"));
	assert_int_equal(wf_stock_set(F.shm->stock, "i03", 3, "M", 1, 0), 0);
	RECS_SIZE("M");
	assert_false(has(it, n, "i03"));
	RECS_SIZE("XL"); /* size count unknown: XL never told, kept */
	assert_true(has(it, n, "i03"));
#undef RECS_SIZE
	/* Back in stock for the tests after this one. */
	assert_int_equal(wf_stock_set(F.shm->stock, "i07", 3, "M", 1, 5), 0);
	assert_int_equal(wf_stock_set(F.shm->stock, "i03", 3, "M", 1, 5), 0);
}

static int64_t micro(const char *s)
{
	int neg = *s == '-';
	char *dot;
	int64_t whole = strtoll(s + neg, &dot, 10), frac;

	assert_true(*dot == '.' && strlen(dot + 1) == 6);
	frac = strtoll(dot + 1, NULL, 10);
	return (neg ? -1 : 1) * (whole * 1000000 + frac);
}

static void test_ranker_explain_parts_add_up(void **state)
{
	struct toks *t;
	int items = 0;

	EVENT("ex", "alice", "pdp", "i22");
	EVENT("ex", "alice", "cart_add", "i00");
	CALL(WF_CMD_RECS, "ex", "alice", "10", "EXPLAIN", "PAGE", "pdp", "ANCHOR", "i11");
	t = flatten();
	assert_string_equal(t->t[0], "*10");
	for (int i = 1; i < t->n; i += 17, items++) {
		int64_t sum = 0;
		assert_string_equal(t->t[i], "*16");
		assert_true(strcmp(t->t[i + 1], "i00") != 0 && strcmp(t->t[i + 1], "i11") != 0);
		for (int j = 0; j < 6; j++)
			sum += micro(t->t[i + 4 + 2 * j]);
		assert_string_equal(t->t[i + 3], "batch");
		assert_string_equal(t->t[i + 13], "penalty");
		assert_string_equal(t->t[i + 15], "model");
		assert_true(sum == micro(t->t[i + 2]));
	}
	assert_int_equal(items, 10);
}

static void test_ranker_history_and_segments(void **state)
{
	struct toks *t;

	EVENT("h1", "-", "pdp", "i20");
	EVENT("h1", "-", "dwell", "i21", "ms", "4000");
	CALL(WF_CMD_SEGMENTS, "h1", "-");
	assert_string_equal(F.reply, "*0\r\n");
	EVENT("h1", "bob", "pdp", "i21");
	EVENT("h1", "bob", "pdp", "i23");
	CALL(WF_CMD_HISTORY, "h1");
	t = flatten();
	assert_string_equal(t->t[0], "*4");
	assert_string_equal(t->t[1], "*3");
	assert_string_equal(t->t[3], "pdp");
	assert_string_equal(t->t[4], "i20");
	assert_string_equal(t->t[5], "*5");
	assert_string_equal(t->t[7], "dwell");
	assert_string_equal(t->t[9], "ms");
	assert_string_equal(t->t[10], "4000");
	assert_string_equal(t->t[11], "*5");
	assert_string_equal(t->t[15], "user");
	assert_string_equal(t->t[16], "bob");
	/* bob: at_risk in the snapshot and back now; three bag pdps. */
	CALL(WF_CMD_SEGMENTS, "h1", "bob");
	assert_string_equal(F.reply,
			    "*3\r\n$7\r\nat_risk\r\n$8\r\nwin_back\r\n$11\r\nhigh_intent\r\n");
	CALL(WF_CMD_SEGMENTS, "nobody", "alice");
	assert_string_equal(F.reply, "*1\r\n$5\r\nloyal\r\n");
	CALL(WF_CMD_HISTORY, "nobody");
	assert_string_equal(F.reply, "*0\r\n");
}

/* The compact history gives back what was sent: times (also going
 * backwards), users changing and coming back, anonymous events between,
 * fields, a search text. */
static void test_ranker_history_round_trips_users_fields_and_times(void **state)
{
	static char q[151];
	struct toks *t;

	memset(q, 'q', sizeof(q) - 1);
	EVENT("h2", "carol", "view", "i01", "ts", "1700000000000");
	EVENT("h2", "-", "search", "-", "q", q, "ts", "1699999999000");
	EVENT("h2", "dave", "dwell", "i02", "ms", "1200", "ts", "1700000000500");
	EVENT("h2", "carol", "cart_add", "i03", "ts", "1800000000000");
	CALL(WF_CMD_HISTORY, "h2");
	t = flatten();
	assert_string_equal(t->t[0], "*4");
	/* [ts, type, item, f, v..., "user", id] */
	assert_string_equal(t->t[1], "*7");
	assert_string_equal(t->t[2], "1700000000000");
	assert_string_equal(t->t[3], "view");
	assert_string_equal(t->t[4], "i01");
	assert_string_equal(t->t[5], "ts");
	assert_string_equal(t->t[7], "user");
	assert_string_equal(t->t[8], "carol");
	assert_string_equal(t->t[9], "*7");
	assert_string_equal(t->t[10], "1699999999000");
	assert_string_equal(t->t[11], "search");
	assert_string_equal(t->t[12], "-");
	assert_string_equal(t->t[13], "q");
	assert_string_equal(t->t[14], q);
	assert_string_equal(t->t[17], "*9");
	assert_string_equal(t->t[18], "1700000000500");
	assert_string_equal(t->t[19], "dwell");
	assert_string_equal(t->t[21], "ms");
	assert_string_equal(t->t[22], "1200");
	assert_string_equal(t->t[25], "user");
	assert_string_equal(t->t[26], "dave");
	assert_string_equal(t->t[27], "*7");
	assert_string_equal(t->t[28], "1800000000000");
	assert_string_equal(t->t[29], "cart_add");
	assert_string_equal(t->t[34], "carol");
	/* The session is carol's again: her segment. */
	CALL(WF_CMD_SEGMENTS, "h2", "-");
	assert_string_equal(F.reply, "*0\r\n");
}

/* Issue 15 item 1: ingest acks every EVENT it journaled, so the ranker
 * must not drop the 4,097th of a session. HISTORY keeps the newest
 * RANKER_HISTORY_MAX (4,096) and says first how many older ones were
 * folded; the model applied them all (no error counted). Users named
 * only by folded records still decode on the kept ones. */
static void test_ranker_long_session_keeps_every_acked_event(void **state)
{
	char item[16];
	uint64_t errors = atomic_load(&sc()->stats.errors);
	uint64_t events = atomic_load(&sc()->stats.events);
	struct toks *t;
	int i, n;

	for (n = 1; n <= 4100; n++) {
		snprintf(item, sizeof(item), "fs-%d", n);
		/* bob names himself on the first event and every 100th after:
		 * the first one goes, the others name him without repeating his id. */
		EVENT("full1", n % 100 == 1 ? "bob" : "-", "view", item);
	}
	barrier();
	assert_int_equal(atomic_load(&sc()->stats.errors), errors);
	assert_int_equal(atomic_load(&sc()->stats.events), events + 4100);
	CALL(WF_CMD_HISTORY, "full1");
	t = flatten();
	assert_string_equal(t->t[0], "*4097");
	assert_string_equal(t->t[1], "*2");
	assert_string_equal(t->t[2], "folded");
	assert_string_equal(t->t[3], ":4");
	/* [ts, "view", item] or with "user", "bob": events 5..4100 */
	for (i = 4, n = 5; n <= 4100; n++) {
		int named = n % 100 == 1;
		snprintf(item, sizeof(item), "fs-%d", n);
		assert_string_equal(t->t[i], named ? "*5" : "*3");
		assert_true(t->t[i + 1][0] >= '1' && t->t[i + 1][0] <= '9'); /* a wall-clock ts */
		assert_string_equal(t->t[i + 3], item);
		if (named)
			assert_string_equal(t->t[i + 5], "bob");
		i += named ? 6 : 4;
	}
	assert_int_equal(i, t->n);
	/* The session stays bob's (his segment) and keeps taking events. */
	CALL(WF_CMD_SEGMENTS, "full1", "-");
	assert_string_equal(F.reply, "*2\r\n$7\r\nat_risk\r\n$8\r\nwin_back\r\n");
	EVENT("full1", "-", "view", "fs-last");
	CALL(WF_CMD_HISTORY, "full1");
	t = flatten();
	assert_string_equal(t->t[0], "*4097");
	assert_string_equal(t->t[3], ":5");
	assert_string_equal(t->t[t->n - 1], "fs-last");
}

/* The history is also bounded in bytes (128 KiB): 100 events of ~3 KiB
 * (20 fields of 150 bytes) keep the newest that fit, the rest folded and
 * counted, every one applied (a hostile session cannot grow without
 * bound, and its HISTORY still fits a reply). */
static void test_ranker_long_session_history_bytes_bounded(void **state)
{
	static char v[151];
	const char *a[4 + 40];
	uint64_t errors = atomic_load(&sc()->stats.errors);
	char item[16], want[32];
	int kept = -1, folded = -1;

	memset(v, 'v', sizeof(v) - 1);
	a[0] = "big1";
	a[1] = "-";
	a[2] = "view";
	a[3] = item;
	for (int i = 0; i < 40; i += 2) {
		a[4 + i] = "f";
		a[5 + i] = v;
	}
	for (int n = 1; n <= 100; n++) {
		snprintf(item, sizeof(item), "big-%d", n);
		event(a, 44);
	}
	barrier();
	assert_int_equal(atomic_load(&sc()->stats.errors), errors);
	CALL(WF_CMD_HISTORY, "big1");
	assert_int_equal(sscanf(F.reply, "*%d\r\n*2\r\n$6\r\nfolded\r\n:%d\r\n", &kept, &folded), 2);
	assert_true(folded > 0 && kept > 1);
	assert_int_equal(kept - 1 + folded, 100);
	assert_true((size_t)(kept - 1) * 3000 < 128u << 10);
	assert_non_null(strstr(F.reply, "big-100\r\n"));
	snprintf(want, sizeof(want), "big-%d\r\n", folded + 1); /* the oldest kept */
	assert_non_null(strstr(F.reply, want));
	snprintf(want, sizeof(want), "big-%d\r\n", folded); /* the newest folded */
	assert_null(strstr(F.reply, want));
}

static void test_ranker_bad_requests_get_err(void **state)
{
	CALL(WF_CMD_RECS, "s", "-", "zero");
	assert_true(F.reply[0] == '-');
	CALL(WF_CMD_RECS, "s", "-", "5", "PAGE", "moon");
	assert_true(F.reply[0] == '-');
	/* EVENTs the ranker cannot apply (ingest validates before, so only a
	 * bug gets here) are counted, not answered: ingest acked them. */
	uint64_t errors = atomic_load(&sc()->stats.errors);
	EVENT("s", "-", "teleport", "i01");
	EVENT("s", "-", "view");
	barrier();
	assert_int_equal(atomic_load(&sc()->stats.errors), errors + 2);
	CALL(WF_CMD_HISTORY, "a", "b");
	assert_true(F.reply[0] == '-');
	CALL(77, "x");
	assert_true(F.reply[0] == '-');
	CALL(WF_CMD_RECS, "s", "-", "3");
	assert_true(F.reply[0] == '*');
}

static int gen2_loaded(void)
{
	return atomic_load_explicit(&sc()->loaded_gen, memory_order_acquire) == 2;
}

static int gen3_failed(void)
{
	return atomic_load_explicit(&sc()->failed_gen, memory_order_acquire) == 3;
}

static void test_ranker_swap_keeps_sessions_and_refuses_bad_file(void **state)
{
	char it[64][16];
	int n;
	FILE *f;

	EVENT("sw", "alice", "cart_add", "i00");
	barrier(); /* applied before the swap */
	publish(2, F.snap2);
	assert_true(wait_for(gen2_loaded));
	CALL(WF_CMD_RECS, "sw", "alice", "10");
	n = items_of(it, 64);
	assert_int_equal(n, 10);
	assert_false(has(it, n, "i00")); /* the cart survived the swap */
	assert_true(has(it, n, "i30"));
	f = fopen(F.bad, "w");
	assert_non_null(f);
	fputs("not a snapshot", f);
	fclose(f);
	publish(3, F.bad);
	assert_true(wait_for(gen3_failed));
	assert_int_equal(atomic_load(&sc()->loaded_gen), 2);
	CALL(WF_CMD_RECS, "sw2", "alice", "3");
	assert_string_equal(F.reply, "*3\r\n$3\r\ni00\r\n$3\r\ni01\r\n$3\r\ni02\r\n");
	publish(2, F.snap2);
}

/* RECS session user k [extra...] three times: the first may fill the
 * ranked-list cache, the second is then answered from it, the third asks
 * for EXPLAIN, which is always computed fresh. All three lists must be the
 * same. Returns the count of items. */
static int recs_all_ways(const char *sid, const char *user, const char *k, const char *x1, const char *x2)
{
	const char *argv[6] = { sid, user, k, x1, x2, "EXPLAIN" };
	uint32_t argc = x1 ? (x2 ? 5 : 4) : 3;
	char a[64][16], b[64][16];
	struct toks *t;
	int na, nb, nc = 0;

	call(WF_CMD_RECS, argv, argc);
	na = items_of(a, 64);
	call(WF_CMD_RECS, argv, argc);
	nb = items_of(b, 64);
	assert_int_equal(na, nb);
	for (int i = 0; i < na; i++)
		assert_string_equal(a[i], b[i]);
	if (argc == 3) {
		argv[3] = "EXPLAIN";
	} else if (argc == 4) {
		argv[4] = "EXPLAIN";
	}
	call(WF_CMD_RECS, argv, argc + 1);
	t = flatten();
	assert_int_equal(strtol(t->t[0] + 1, NULL, 10), na);
	for (int i = 1; i < t->n; i += 17, nc++) {
		assert_true(nc < na);
		assert_string_equal(t->t[i + 1], a[nc]);
	}
	assert_int_equal(nc, na);
	return na;
}

static int gen4_loaded(void)
{
	return atomic_load_explicit(&sc()->loaded_gen, memory_order_acquire) == 4;
}

static void test_ranker_cached_recs_equal_fresh_across_changes(void **state)
{
	char g4[600];
	float wb, ws;

	/* A live session, sessionless queries, anonymous, pages, anchor, size. */
	assert_int_equal(recs_all_ways("cf", "alice", "10", NULL, NULL), 10);
	recs_all_ways("cf-none", "bob", "10", NULL, NULL);
	recs_all_ways("cf-none", "-", "10", NULL, NULL);
	EVENT("cf", "alice", "pdp", "i22");
	recs_all_ways("cf", "alice", "10", NULL, NULL);
	recs_all_ways("cf", "-", "10", NULL, NULL);
	recs_all_ways("cf", "bob", "10", NULL, NULL);
	EVENT("cf", "alice", "pdp", "i23");
	EVENT("cf", "alice", "cart_add", "i00");
	recs_all_ways("cf", "alice", "20", NULL, NULL);
	recs_all_ways("cf", "alice", "20", "PAGE", "pdp");
	recs_all_ways("cf", "alice", "20", "ANCHOR", "i11");
	recs_all_ways("cf", "alice", "20", "SIZE", "M");
	/* Weights: the next query must not see the old ones' list. */
	wf_ctl_weights_get(F.shm->ctl, WF_PAGE_HOME, WF_VISITOR_RETURNING, &wb, &ws);
	wf_ctl_weights_set(F.shm->ctl, WF_PAGE_HOME, WF_VISITOR_RETURNING, 0.05f, 0.95f);
	recs_all_ways("cf", "alice", "20", NULL, NULL);
	recs_all_ways("cf-none", "bob", "10", NULL, NULL);
	wf_ctl_weights_set(F.shm->ctl, WF_PAGE_HOME, WF_VISITOR_RETURNING, wb, ws);
	recs_all_ways("cf", "alice", "20", NULL, NULL);
	/* Stock: a sold-out item leaves a cached list at once, and comes back. */
	assert_int_equal(wf_stock_set(F.shm->stock, "i12", 3, NULL, 0, 0), 0);
	assert_int_equal(wf_stock_set(F.shm->stock, "i13", 3, "M", 1, 0), 0);
	recs_all_ways("cf", "alice", "20", NULL, NULL);
	recs_all_ways("cf", "alice", "20", "SIZE", "M");
	recs_all_ways("cf-none", "alice", "40", NULL, NULL);
	assert_int_equal(wf_stock_set(F.shm->stock, "i12", 3, NULL, 0, 5), 0);
	assert_int_equal(wf_stock_set(F.shm->stock, "i13", 3, "M", 1, 5), 0);
	recs_all_ways("cf", "alice", "20", NULL, NULL);
	recs_all_ways("cf-none", "alice", "40", NULL, NULL);
	/* A snapshot swap: new item indexes, new lists. */
	snprintf(g4, sizeof(g4), "%s/g4.snap", F.dir);
	assert_int_equal(tr_write_store(g4, 4), 0);
	publish(4, g4);
	assert_true(wait_for(gen4_loaded));
	recs_all_ways("cf", "alice", "20", NULL, NULL);
	recs_all_ways("cf-none", "bob", "10", NULL, NULL);
	EVENT("cf", "alice", "cart_remove", "i00");
	recs_all_ways("cf", "alice", "20", NULL, NULL);
}

static int gen5_loaded(void)
{
	return atomic_load_explicit(&sc()->loaded_gen, memory_order_acquire) == 5;
}

/* The EXPLAIN reply of RECS (flattened): every item's parts add up to its
 * score. Returns the count of items. */
static int explain_sums(void)
{
	struct toks *t = flatten();
	int items = 0;

	for (int i = 1; i < t->n; i += 17, items++) {
		int64_t sum = 0;
		assert_string_equal(t->t[i], "*16");
		for (int j = 0; j < 6; j++)
			sum += micro(t->t[i + 4 + 2 * j]);
		assert_true(sum == micro(t->t[i + 2]));
	}
	return items;
}

/*
 * Live items: with a learned repeat curve, an item the snapshot never had
 * comes back in RECS by its id once the session viewed it (EXPLAIN: its
 * repeat part, the parts summing to the score; cached, fresh and EXPLAIN
 * lists equal; RERANK orders it as RECS does), not when the stock table
 * says it is sold out, not as
 * the ANCHOR, not once carted; RECS of a session that never saw it does
 * not name it.
 */
static void test_ranker_live_items_come_back_by_id(void **state)
{
	static const struct wf_snap_model m = { .repeat = { 0.5f, 0.4f, 0.3f } };
	char g5[600], it[64][16];
	int n;

	snprintf(g5, sizeof(g5), "%s/g5.snap", F.dir);
	assert_int_equal(tr_write_store_model(g5, 5, &m), 0);
	publish(5, g5);
	assert_true(wait_for(gen5_loaded));
	EVENT("lv", "-", "view", "i05");
	EVENT("lv", "-", "view", "brand-new");
	EVENT("lv", "-", "view", "i06");
	CALL(WF_CMD_RECS, "lv", "-", "10");
	n = items_of(it, 64);
	assert_true(has(it, n, "brand-new"));
	assert_true(has(it, n, "i06"));
	assert_true(recs_all_ways("lv", "-", "10", NULL, NULL) == n);
	CALL(WF_CMD_RECS, "lv", "-", "10", "EXPLAIN");
	assert_int_equal(explain_sums(), n);
	assert_non_null(strstr(F.reply, "brand-new"));
	assert_non_null(strstr(F.reply, "repeat=1*0.4"));
	CALL(WF_CMD_RECS, "other", "-", "10");
	n = items_of(it, 64);
	assert_false(has(it, n, "brand-new"));
	/* sold out in the live table: not shown; back in stock: shown */
	assert_int_equal(wf_stock_set(F.shm->stock, "brand-new", 9, NULL, 0, 0), 0);
	recs_all_ways("lv", "-", "10", NULL, NULL);
	n = items_of(it, 64);
	assert_false(has(it, n, "brand-new"));
	assert_int_equal(wf_stock_set(F.shm->stock, "brand-new", 9, NULL, 0, 3), 0);
	n = recs_all_ways("lv", "-", "10", NULL, NULL);
	CALL(WF_CMD_RECS, "lv", "-", "10");
	n = items_of(it, 64);
	assert_true(has(it, n, "brand-new"));
	/* RERANK: the viewed items in RECS's order (brand-new by its score),
	 * an unknown one last */
	CALL(WF_CMD_RECS, "lv", "-", "40");
	n = items_of(it, 64);
	char want[256] = "", got[256] = "";
	for (int i = 0; i < n; i++)
		if (!strcmp(it[i], "i05") || !strcmp(it[i], "brand-new") || !strcmp(it[i], "i06"))
			strcat(strcat(want, it[i]), " "); /* 3 ids of < 16 bytes */
	assert_non_null(strstr(want, "brand-new"));
	strcat(want, "nosuch ");
	CALL(WF_CMD_RERANK, "lv", "-", "nosuch", "i05", "brand-new", "i06");
	n = items_of(it, 64);
	assert_true(n <= 4);
	for (int i = 0; i < n; i++)
		strcat(strcat(got, it[i]), " ");
	assert_string_equal(got, want);
	/* the item on screen, by ANCHOR: not shown */
	CALL(WF_CMD_RECS, "lv", "-", "10", "PAGE", "pdp", "ANCHOR", "brand-new");
	n = items_of(it, 64);
	assert_false(has(it, n, "brand-new"));
	assert_true(has(it, n, "i06"));
	/* carted: not shown */
	EVENT("lv", "-", "cart_add", "brand-new");
	n = recs_all_ways("lv", "-", "10", NULL, NULL);
	CALL(WF_CMD_RECS, "lv", "-", "10");
	n = items_of(it, 64);
	assert_false(has(it, n, "brand-new"));
}

/* The shard's session counters as the ranker published them after
 * wall-clock time t_ms: it publishes them at most ~1 s apart (in
 * housekeeping, which first stores its heartbeat, R11), so a heartbeat
 * 1.1 s past t_ms, and then one more pass, follow a publish made after
 * t_ms. Bounded waits on what the ranker shows, not timing checks. */
static void stats_after(uint64_t t_ms, uint64_t *ret_live, uint64_t *ret_bytes)
{
	uint64_t hb = 0;

	/* A11: pairs with R11 in the ranker's housekeeping(). */
	for (int i = 0; i < 4000 && (hb = atomic_load_explicit(&sc()->heartbeat_ms, memory_order_acquire)) < t_ms + 1100;
	     i++)
		usleep(5000);
	assert_true(hb >= t_ms + 1100);
	for (int i = 0; i < 4000 && atomic_load_explicit(&sc()->heartbeat_ms, memory_order_acquire) == hb; i++)
		usleep(5000);
	*ret_live = atomic_load_explicit(&sc()->stats.sessions_live, memory_order_relaxed);
	*ret_bytes = atomic_load_explicit(&sc()->stats.session_bytes, memory_order_relaxed);
}

/* A live session costs under 1 KiB with up to 10 events (rankers/README:
 * one allocation sized to its id, the user id once known, ~13 bytes per
 * event of history), plus what segments and the spill store add: its
 * segment state when a defined segment reads its events (the built-in
 * ones: 96 bytes) and its share of the spill index (32 bytes): 1,152 in
 * all. 1,000 sessions of 3 events, then 7 more each with a
 * 13-byte user id, as ingest sends them. Timing: bench/rankerbench.c. */
#define SESSION_BOUND (1024u + 96u + 32u)
static void test_ranker_session_bytes_within_bound(void **state)
{
	char sid[32];
	uint64_t live, bytes;

	for (int i = 0; i < 1000; i++) {
		snprintf(sid, sizeof(sid), "m%d", i);
		EVENT(sid, "-", "view", "i05");
		EVENT(sid, "-", "pdp", "i06");
		EVENT(sid, "-", "click", "i07");
	}
	barrier();
	stats_after(wf_wall_ms(), &live, &bytes);
	assert_true(live >= 1000);
	assert_true(bytes < SESSION_BOUND * live);
	for (int i = 0; i < 1000; i++) {
		snprintf(sid, sizeof(sid), "m%d", i);
		for (int e = 0; e < 7; e++)
			EVENT(sid, "u000000000042", e == 3 ? "pdp" : "view", e & 1 ? "i11" : "i12");
	}
	barrier();
	stats_after(wf_wall_ms(), &live, &bytes);
	print_message("ranker: %.0f bytes/session (%llu sessions, most with 10 events)\n", (double)bytes / (double)live,
		      (unsigned long long)live);
	assert_true(live >= 1000);
	assert_true(bytes < SESSION_BOUND * live);
}

/* Issue 15 item 7: a ranker's sessions stay within its memory budget
 * (the group's ranker runs with --memory-budget 4M: the session table,
 * 512 KiB, and the generation's lists, a few KiB, leave ~3.4 MiB to
 * sessions, ~4,000 of this size). 20,000 new sessions: the bytes stay
 * under the budget, the least recently active go (the first ones), a
 * session kept active and the newest survive with their history. */
static void test_ranker_memory_budget_evicts_least_recently_active(void **state)
{
	const uint64_t budget = 4ull << 20, table = 65536 * 8;
	char sid[32];
	uint64_t live, bytes, snap;
	struct toks *t;

	for (int i = 0; i < 20000; i++) {
		snprintf(sid, sizeof(sid), "lru%d", i);
		EVENT(sid, "-", "view", "i05");
		EVENT(sid, "-", "pdp", "i06");
		EVENT(sid, "-", "click", "i07");
		if (i % 500 == 0) /* "keep": active all along, by events and queries */
			EVENT("keep", "-", "view", i % 1000 ? "i08" : "i09");
		if (i % 500 == 250)
			CALL(WF_CMD_RECS, "keep", "-", "3");
	}
	barrier();
	stats_after(wf_wall_ms(), &live, &bytes);
	snap = atomic_load_explicit(&sc()->stats.snapshot_bytes, memory_order_relaxed);
	print_message("ranker: %llu sessions live in %llu bytes (budget %llu, generation %llu)\n",
		      (unsigned long long)live, (unsigned long long)bytes, (unsigned long long)budget,
		      (unsigned long long)snap);
	assert_true(bytes + snap + table <= budget);
	/* STATS shows both (relaxed: published with the counters above). */
	assert_true(atomic_load_explicit(&sc()->stats.memory_budget, memory_order_relaxed) == budget);
	assert_true(atomic_load_explicit(&sc()->stats.sessions_evicted, memory_order_relaxed) > 0);
	assert_true(live < 20000);
	assert_true(live > 1000); /* a budget, not a wipe */
	/* The first sessions left memory; "keep" and the newest stayed. */
	assert_true(atomic_load_explicit(&sc()->stats.sessions_restored, memory_order_relaxed) == 0);
	CALL(WF_CMD_HISTORY, "lru19999");
	assert_string_equal(flatten()->t[0], "*3");
	CALL(WF_CMD_HISTORY, "keep");
	t = flatten();
	assert_string_equal(t->t[0], "*40");
	/* Issue 15 item 7: an evicted session comes back whole from the spill
	 * store (history, user; its model rebuilt), before a query or an
	 * event is applied to it: the event lands on its history, not on an
	 * empty session. */
	CALL(WF_CMD_HISTORY, "m0"); /* test_ranker_session_bytes_within_bound's: 3 + 7 events */
	t = flatten();
	assert_string_equal(t->t[0], "*10");
	EVENT("lru0", "-", "view", "i01");
	CALL(WF_CMD_HISTORY, "lru0");
	assert_non_null(strstr(F.reply, "i05")); /* its own events, and the new one */
	assert_non_null(strstr(F.reply, "i07"));
	assert_non_null(strstr(F.reply, "i01"));
	t = flatten();
	assert_string_equal(t->t[0], "*4");
	CALL(WF_CMD_RECS, "lru1", "-", "3"); /* a query restores it too */
	CALL(WF_CMD_HISTORY, "lru1");
	assert_string_equal(flatten()->t[0], "*3");
	barrier();
	stats_after(wf_wall_ms(), &live, &bytes);
	assert_true(atomic_load_explicit(&sc()->stats.sessions_restored, memory_order_relaxed) >= 3);
	assert_true(bytes + snap + table <= budget); /* the restored ones within the budget too */
}

/* Issue 15 item 4 (ranker side): a ranker that starts while the current
 * generation cannot be loaded serves the previous one (admin's snap_prev)
 * and says so: failed_gen is the bad one, loaded_gen the one it serves
 * (reset at start, never an earlier process's); with no loadable
 * generation at all, RECS is an error, not an empty list. A good load
 * clears failed_gen. */
static int gen7_loaded(void)
{
	return atomic_load_explicit(&sc()->loaded_gen, memory_order_acquire) == 7;
}

static void restart_with(const struct wf_snap_ref *cur, const struct wf_snap_ref *prev)
{
	barrier(); /* nothing in flight */
	kill(F.pid, SIGKILL);
	waitpid(F.pid, NULL, 0);
	/* A killed ranker leaves ready set: clear it, so start_ranker()
	 * waits for the new one (as weft-admin sees it). */
	atomic_store_explicit(&sc()->ready, 0, memory_order_relaxed);
	wf_ctl_snap_set(F.shm->ctl, cur, prev);
	assert_int_equal(start_ranker(exe_path), 0);
}

static void test_ranker_restart_serves_previous_generation_when_current_fails(void **state)
{
	struct wf_snap_ref cur = { .gen = 5, .loaded_ms = wf_wall_ms() }, prev = { .gen = 4, .loaded_ms = 1 };
	char it[8][16];

	snprintf(cur.path, sizeof(cur.path), "%s", F.bad); /* "not a snapshot" */
	snprintf(prev.path, sizeof(prev.path), "%s/g4.snap", F.dir);
	restart_with(&cur, &prev);
	assert_int_equal(atomic_load(&sc()->failed_gen), 5);
	assert_int_equal(atomic_load(&sc()->loaded_gen), 4);
	CALL(WF_CMD_RECS, "rs", "alice", "3");
	assert_int_equal(items_of(it, 8), 3);
	assert_string_equal(it[0], "i00");
	/* Neither loads: nothing served, and RECS says so. */
	prev.gen = 6;
	snprintf(prev.path, sizeof(prev.path), "%s/missing.snap", F.dir);
	restart_with(&cur, &prev);
	assert_int_equal(atomic_load(&sc()->failed_gen), 5);
	assert_int_equal(atomic_load(&sc()->loaded_gen), 0);
	CALL(WF_CMD_RECS, "rs", "alice", "3");
	assert_true(F.reply[0] == '-');
	assert_non_null(strstr(F.reply, "generation 5 failed to load"));
	/* A good generation: served, the failure cleared. */
	cur.gen = 7;
	snprintf(cur.path, sizeof(cur.path), "%s/g4.snap", F.dir);
	publish(7, cur.path);
	assert_true(wait_for(gen7_loaded));
	assert_int_equal(atomic_load(&sc()->failed_gen), 0);
	CALL(WF_CMD_RECS, "rs", "alice", "3");
	assert_int_equal(items_of(it, 8), 3);
}

/* ---- segments (issue 16): notes on the reply ring, as ingest reads them ---- */

/* DIR/segments.conf := text (NULL: removed, the built-in ones apply), and
 * the bump weft-admin gives (R12). */
static void define_segments(const char *text)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/segments.conf", F.dir);
	if (text)
		assert_int_equal(wf_write_file_atomic(path, text, strlen(text)), 0);
	else
		unlink(path);
	/* R12: pairs with A12 in the ranker's segs.c. */
	atomic_fetch_add_explicit(&F.shm->ctl->segdefs_gen, 1, memory_order_release);
	wf_wake_futex(&sc()->ranker_wait);
}

static const char *preview_rule;

/* SEGPREVIEW of preview_rule is answered (not an error): the definitions
 * it names are loaded. */
static int preview_ok(void)
{
	CALL(WF_CMD_SEGPREVIEW, preview_rule);
	return F.reply[0] == '*';
}

/* The note with this key, waiting for it (bounded) while reading the
 * reply ring as ingest does; NULL if it never came. */
static const struct tnote *note_wait(const char *key, int max_ms)
{
	for (int ms = 0;; ms++) {
		uint32_t len, kind;
		const void *p;
		for (uint32_t i = 0; i < F.nnotes; i++)
			if (strcmp(F.notes[i].key, key) == 0)
				return &F.notes[i];
		if (ms >= max_ms)
			return NULL;
		while ((p = wf_ring_pop(&F.rep, &len, &kind))) {
			assert_int_equal(kind, WF_MSG_NOTE); /* no request is out */
			take_note(p, len);
		}
		usleep(1000);
	}
}

/* How many notes have this key (exactly once: 1). */
static int notes_with(const char *key)
{
	int n = 0;

	for (uint32_t i = 0; i < F.nnotes; i++)
		n += strcmp(F.notes[i].key, key) == 0;
	return n;
}

/* The key of the n-th transition of version 1 of seg for session sid,
 * whose first came when its newest event had LSN lsn
 * (wf_seg_seq_next: sequences start at lsn * 2^20 + 1). Four buffers. */
static const char *K(const char *seg, uint64_t lsn, uint64_t n, const char *sid)
{
	static char buf[4][160];
	static unsigned next;
	char *b = buf[next++ % 4];

	snprintf(b, sizeof(buf[0]), "%s/1/%llu/%s", seg, (unsigned long long)((lsn << 20) + n), sid);
	return b;
}

/* A rule from admin's file reaches the ranker by the counter; a shopper
 * who adds to the cart and does nothing else enters the segment when the
 * idle deadline passes (the ranker's own timer, nobody asking): a note
 * with the key segment/version/seq/session (seq from the cart_add's LSN),
 * reason "timer", its time the deadline; a purchase then is an exit with
 * the next sequence number.
 * SEGMENTS answers from the same evaluation; SEGPREVIEW counts live
 * sessions and this shard's snapshot users, and names a bad rule's
 * position. */
static void test_ranker_segments_timer_enter_then_exit(void **state)
{
	const struct tnote *n;
	uint64_t t0, l1;

	define_segments("abandon\t1\tdid(cart_add, 1h) and idle(1s) and not did(purchase, 1h)\n");
	preview_rule = "in(abandon)";
	assert_true(wait_for(preview_ok));
	t0 = wf_wall_ms();
	EVENT("sg1", "-", "cart_add", "i01");
	l1 = F.next_lsn;
	barrier();
	CALL(WF_CMD_SEGMENTS, "sg1", "-");
	assert_string_equal(F.reply, "*0\r\n"); /* not idle yet */
	n = note_wait(K("abandon", l1, 1, "sg1"), 5000);
	assert_non_null(n);
	assert_string_equal(n->seg, "abandon");
	assert_string_equal(n->version, "1");
	assert_string_equal(n->event, "enter");
	assert_string_equal(n->session, "sg1");
	assert_string_equal(n->user, "-");
	assert_string_equal(n->reason, "timer");
	assert_true(n->ts >= t0 + 1000);
	CALL(WF_CMD_SEGMENTS, "sg1", "-");
	assert_string_equal(F.reply, "*1\r\n$7\r\nabandon\r\n");
	EVENT("sg1", "bob", "purchase", "i01");
	barrier(); /* the exit note came before this reply */
	n = note_wait(K("abandon", l1, 2, "sg1"), 0);
	assert_non_null(n);
	assert_string_equal(n->event, "exit");
	assert_string_equal(n->reason, "purchase");
	assert_string_equal(n->user, "bob");
	assert_int_equal(notes_with(K("abandon", l1, 1, "sg1")), 1);

	/* Preview: the live session that carted, and alice (this shard's
	 * snapshot user, loyal, no live session). */
	CALL(WF_CMD_SEGPREVIEW, "did(cart_add, 1h)");
	struct toks *t = flatten();
	assert_string_equal(t->t[0], "*4");
	long before = atol(t->t[1] + 1);
	assert_true(before >= 1); /* sg1 at least */
	EVENT("sg2", "-", "cart_add", "i02");
	CALL(WF_CMD_SEGPREVIEW, "did(cart_add, 1h)");
	t = flatten();
	assert_int_equal(atol(t->t[1] + 1), before + 1);
	assert_int_equal(atol(t->t[1] + 1), atol(t->t[2] + 1) + atol(t->t[3] + 1)); /* new + returning */
	CALL(WF_CMD_SEGPREVIEW, "lifecycle = loyal");
	t = flatten();
	assert_true(atol(t->t[1] + 1) >= 1);
	assert_string_equal(t->t[1], t->t[3]); /* all returning */
	int alice = 0;
	for (int i = 5; i < t->n; i++)
		alice |= strlen(t->t[i]) > 6 && strcmp(t->t[i] + strlen(t->t[i]) - 6, " alice") == 0;
	assert_true(alice);
	CALL(WF_CMD_SEGPREVIEW, "did(cart, 1h)");
	assert_string_equal(F.reply, "-ERR bad rule: at 5: expected an event type (view, click, pdp, hover, dwell, "
				     "scroll, search, cart_add, cart_remove, purchase, or any)\r\n");
	CALL(WF_CMD_SEGPREVIEW, "did(pdp, 30d)");
	assert_non_null(strstr(F.reply, "at 10: window too long: at most 7d"));
}

/* An EVENT as ingest sends it: journaled (F.j, this shard, now), then on
 * the ring with its LSN. */
static uint64_t jevent(const char *sess, const char *user, const char *type, const char *item)
{
	const char *argv[4] = { sess, user, type, item };
	uint32_t argl[4];
	uint64_t lsn;
	struct wf_msg_req h = { .req_id = ++F.next_id, .t_recv_ns = wf_now_ns(), .flags = WF_MSG_F_NOREPLY,
				.cmd = WF_CMD_EVENT, .argc = 4 };

	for (int i = 0; i < 4; i++)
		argl[i] = (uint32_t)strlen(argv[i]);
	assert_int_equal(wf_journal_append(F.j, wf_wall_ms(), (uint16_t)F.shard, 4, argv, argl, &lsn), 0);
	assert_int_equal(wf_journal_flush_sync(F.j), 0);
	h.lsn = lsn;
	assert_int_equal(wf_msg_req_push(&F.req, &h, argv, argl), 0);
	wf_ring_prod_commit(&F.req);
	if (wf_wait_needs_wake(&sc()->ranker_wait))
		wf_wake_futex(&sc()->ranker_wait);
	return lsn;
}

static void restart_same(void)
{
	struct wf_snap_ref cur = { 0 }, prev = { 0 };

	wf_ctl_snap_get(F.shm->ctl, &cur, &prev);
	restart_with(&cur, &prev);
}

/* kill -9 of the ranker: an announced transition (journaled by the fake
 * ingest) is not announced again after the replay; one whose deadline
 * passed while no ranker ran arrives once, with the key it would have had
 * (its first sequence number); another restart repeats nothing. */
static void test_ranker_segments_survive_kill_exactly_once(void **state)
{
	char jdir[600], err[256];
	const struct tnote *n;
	uint64_t l1, l2;

	snprintf(jdir, sizeof(jdir), "%s/journal", F.dir);
	assert_int_equal(wf_journal_open(jdir, NULL, &F.j, err, sizeof(err)), 0);
	ranker_ttl = "600";
	l1 = jevent("sk1", "-", "cart_add", "i02");
	assert_non_null(note_wait(K("abandon", l1, 1, "sk1"), 5000));
	restart_same(); /* ready once the replay announced what it found (read by the calls below) */
	barrier();
	CALL(WF_CMD_SEGMENTS, "sk1", "-");
	assert_string_equal(F.reply, "*1\r\n$7\r\nabandon\r\n"); /* replayed */
	assert_int_equal(notes_with(K("abandon", l1, 1, "sk1")), 1);

	/* Killed before the deadline: the enter comes from the next ranker. */
	l2 = jevent("sk2", "-", "cart_add", "i03");
	restart_same(); /* its barrier: applied, then killed at once */
	n = note_wait(K("abandon", l2, 1, "sk2"), 5000);
	assert_non_null(n);
	assert_string_equal(n->event, "enter");
	restart_same();
	barrier();
	assert_int_equal(notes_with(K("abandon", l1, 1, "sk1")), 1);
	assert_int_equal(notes_with(K("abandon", l2, 1, "sk2")), 1);
	for (uint32_t i = 0; i < F.nnotes; i++)
		assert_true(strstr(F.notes[i].key, "/sk") == NULL || !strcmp(F.notes[i].key, K("abandon", l1, 1, "sk1")) ||
			    !strcmp(F.notes[i].key, K("abandon", l2, 1, "sk2")));
	wf_journal_close(F.j);
	F.j = NULL;
	define_segments(NULL); /* the built-in ones again */
}

/* Idle expiry, now a bounded step per loop pass from the least recently
 * active end (no walk of the table): with --session-ttl 1, 1,000
 * sessions (16 steps of 64) all leave memory, the last one too, into the
 * spill store, from which each comes back whole when named again.
 * Bounded waits on what the ranker publishes, no time asserted. */
static int ttl_gone(void)
{
	uint64_t live;

	barrier(); /* a request: the ranker passes its housekeeping */
	live = atomic_load_explicit(&sc()->stats.sessions_live, memory_order_relaxed);
	return live == 0;
}

static void test_ranker_idle_sessions_expire_in_steps(void **state)
{
	struct wf_snap_ref cur = { 0 }, prev = { 0 };
	uint64_t ev0;
	char sid[32];

	wf_ctl_snap_get(F.shm->ctl, &cur, &prev); /* the same generations again */
	ranker_ttl = "1";
	restart_with(&cur, &prev);
	ev0 = atomic_load(&sc()->stats.events);
	for (int i = 0; i < 1000; i++) {
		snprintf(sid, sizeof(sid), "ttl%d", i);
		EVENT(sid, "-", "view", "i05");
	}
	barrier();
	/* Applied (sessions made), whether or not a second went by since. */
	assert_true(atomic_load(&sc()->stats.events) == ev0 + 1000);
	assert_true(wait_for(ttl_gone));
	CALL(WF_CMD_HISTORY, "ttl0");
	assert_string_equal(flatten()->t[0], "*1");
	CALL(WF_CMD_HISTORY, "ttl999");
	assert_string_equal(flatten()->t[0], "*1");
}

/* ---- checkpoints, catch-up, the spill store's disk budget (issue 15 items 7, 10) ---- */

static struct wf_journal *J; /* DIR/journal, as weft-ingest writes it */

/* Journal an EVENT of session sid on item (with its LSN, as ingest does),
 * and send it on the ring when ring (ingest sends only what is durable;
 * one journaled and not sent is what an ingest killed in between left). */
static void jevent_view(const char *sid, const char *item, int ring)
{
	const char *argv[4] = { sid, "-", "view", item };
	uint32_t argl[4];
	uint64_t lsn;

	for (int i = 0; i < 4; i++)
		argl[i] = (uint32_t)strlen(argv[i]);
	assert_int_equal(wf_journal_append(J, wf_wall_ms(), (uint16_t)F.shard, 4, argv, argl, &lsn), 0);
	assert_int_equal(wf_journal_flush_sync(J), 0);
	F.next_lsn = lsn - 1;
	if (ring)
		event(argv, 4);
	else
		F.next_lsn = lsn;
}

/* Open the journal and take its LSNs up to the ones the ring carried so
 * far (records of a kind the ranker skips), so they continue them. */
static void journal_open(void)
{
	const char *argv[1] = { "pad" };
	uint32_t argl[1] = { 3 };
	char dir[300], err[256];
	uint64_t lsn;

	snprintf(dir, sizeof(dir), "%s/journal", F.dir);
	assert_int_equal(wf_journal_open(dir, &(struct wf_journal_opts){ 0 }, &J, err, sizeof(err)), 0);
	while (wf_journal_next_lsn(J) <= F.next_lsn) {
		assert_int_equal(wf_journal_append_kind(J, WF_JREC_SEGMENT, wf_wall_ms(), (uint16_t)F.shard, 1, argv, argl,
							&lsn), 0);
		if ((lsn & 4095) == 0)
			assert_int_equal(wf_journal_flush_sync(J), 0);
	}
	assert_int_equal(wf_journal_flush_sync(J), 0);
}

static uint64_t ckpt_want;

static int ckpt_written(void)
{
	barrier();
	return atomic_load_explicit(&sc()->stats.checkpoint_lsn, memory_order_relaxed) >= ckpt_want;
}

/* A ranker checkpoints its sessions (here every second) and a restart
 * loads the checkpoint and replays only the journal after its LSN: every
 * event once (HISTORY counts them), the evicted sessions still in the
 * spill store. A corrupt checkpoint is refused and the whole journal is
 * replayed instead: the same sessions. */
static void test_ranker_checkpoint_then_replay_after_its_lsn(void **state)
{
	struct wf_snap_ref cur = { 0 }, prev = { 0 };
	char sid[32], path[400];
	uint64_t ck;
	FILE *f;

	journal_open();
	wf_ctl_snap_get(F.shm->ctl, &cur, &prev);
	ranker_ttl = "600";
	ranker_ckpt = "1";
	restart_with(&cur, &prev);
	CALL(WF_CMD_HISTORY, "m0"); /* the spill store outlived the restart */
	assert_string_equal(flatten()->t[0], "*10");
	for (int i = 0; i < 200; i++) {
		snprintf(sid, sizeof(sid), "ck%d", i);
		jevent_view(sid, "i05", 1);
		jevent_view(sid, "i06", 1);
	}
	ckpt_want = F.next_lsn;
	assert_true(wait_for(ckpt_written));
	ck = atomic_load_explicit(&sc()->stats.checkpoint_lsn, memory_order_relaxed);
	jevent_view("ck0", "i07", 1); /* after the checkpoint: from the journal */
	barrier();
	ranker_ckpt = "300"; /* no new one: the restarts below load that one */
	restart_with(&cur, &prev);
	assert_true(atomic_load_explicit(&sc()->stats.checkpoint_lsn, memory_order_relaxed) >= ck);
	CALL(WF_CMD_HISTORY, "ck0");
	assert_string_equal(flatten()->t[0], "*3");
	CALL(WF_CMD_HISTORY, "ck199");
	assert_string_equal(flatten()->t[0], "*2");
	/* One byte of the checkpoint changed: refused, the journal replayed. */
	snprintf(path, sizeof(path), "%s/rankers/shard-%u.wfc", F.dir, F.shard);
	f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, 200, SEEK_SET);
	fputc(fgetc(f) ^ 0x55, f);
	fclose(f);
	restart_with(&cur, &prev);
	assert_true(atomic_load_explicit(&sc()->stats.checkpoint_lsn, memory_order_relaxed) == 0);
	CALL(WF_CMD_HISTORY, "ck0");
	assert_string_equal(flatten()->t[0], "*3");
	CALL(WF_CMD_HISTORY, "ck199");
	assert_string_equal(flatten()->t[0], "*2");
	/* And truncated (no END): refused the same way. */
	assert_int_equal(truncate(path, 300), 0);
	restart_with(&cur, &prev);
	assert_true(atomic_load_explicit(&sc()->stats.checkpoint_lsn, memory_order_relaxed) == 0);
	CALL(WF_CMD_HISTORY, "ck0");
	assert_string_equal(flatten()->t[0], "*3");
}

/* Issue 15 item 4's crash window: weft-ingest killed after an EVENT was
 * durable and before it reached the ring. The ranker sees the new
 * ingest's start (R14) with the next request and first applies what the
 * journal held before that ingest's first LSN after the last event it
 * saw; the ring's copies are not applied twice. The new ingest's own
 * EVENTs come through the ring only, in order with its other requests: a
 * request sent before one of them does not see it, even once it is in
 * the journal. */
static void test_ranker_applies_what_a_killed_ingest_had_not_sent(void **state)
{
	const char *i08[4] = { "cu", "-", "view", "i08" };
	uint32_t argl[4] = { 2, 1, 4, 3 };
	uint64_t lsn8;

	jevent_view("cu", "i05", 1);
	jevent_view("cu", "i06", 0); /* durable, never sent */
	jevent_view("cu", "i07", 0);
	barrier();
	CALL(WF_CMD_HISTORY, "cu");
	assert_string_equal(flatten()->t[0], "*1");
	/* A new ingest, as setup_state() starts: its first LSN, then its
	 * epoch (R14, release). */
	atomic_store_explicit(&F.shm->ctl->ingest_start_lsn, wf_journal_next_lsn(J), memory_order_relaxed);
	atomic_fetch_add_explicit(&F.shm->ctl->ingest_started, 1, memory_order_release);
	/* Its first EVENT is durable; a HISTORY its client sent before it
	 * reaches the ranker first. */
	assert_int_equal(wf_journal_append(J, wf_wall_ms(), (uint16_t)F.shard, 4, i08, argl, &lsn8), 0);
	assert_int_equal(wf_journal_flush_sync(J), 0);
	CALL(WF_CMD_HISTORY, "cu");
	assert_string_equal(flatten()->t[0], "*3"); /* the dead ingest's two, not the new one's */
	F.next_lsn = lsn8 - 1;
	event(i08, 4);
	CALL(WF_CMD_HISTORY, "cu");
	assert_string_equal(flatten()->t[0], "*4");
	wf_journal_close(J);
	J = NULL;
}

/* ---- segment keys across eviction, restore and restart (issue 16 with issue 15) ---- */

/* Each key (segment/version/seq/session) of the notes about session sid
 * came once. */
static void keys_once(const char *sid)
{
	char suffix[64];

	snprintf(suffix, sizeof(suffix), "/%s", sid);
	for (uint32_t i = 0; i < F.nnotes; i++) {
		size_t kl = strlen(F.notes[i].key), sl = strlen(suffix);
		if (kl > sl && strcmp(F.notes[i].key + kl - sl, suffix) == 0 && notes_with(F.notes[i].key) != 1)
			fail_msg("key %s came %d times", F.notes[i].key, notes_with(F.notes[i].key));
	}
}

/* A session in a segment evicted by the memory budget leaves it (an exit
 * with the next sequence number); its spill record holds that state, so
 * when an event brings it back its enter continues the sequence: no key
 * is used twice. */
static void test_ranker_segments_keys_continue_across_eviction(void **state)
{
	char sid[32], jdir[600], err[256];
	const struct tnote *n = NULL;
	uint64_t l1;

	/* ev1's events and the notes journaled, as ingest does (the next
	 * test's restarts replay them); the others only sent. */
	snprintf(jdir, sizeof(jdir), "%s/journal", F.dir);
	assert_int_equal(wf_journal_open(jdir, NULL, &F.j, err, sizeof(err)), 0);
	define_segments("carted\t1\tdid(cart_add, 1h) and not did(purchase, 1h)\n");
	preview_rule = "in(carted)";
	assert_true(wait_for(preview_ok));
	l1 = jevent("ev1", "-", "cart_add", "i01");
	assert_non_null(note_wait(K("carted", l1, 1, "ev1"), 5000));
	/* New sessions until ev1, the least recently active, is evicted. */
	for (int i = 0; i < 40000 && !n; i++) {
		snprintf(sid, sizeof(sid), "evf%d", i);
		EVENT(sid, "-", "view", "i05");
		EVENT(sid, "-", "pdp", "i06");
		if (i % 1000 == 999) {
			barrier();
			n = note_wait(K("carted", l1, 2, "ev1"), 0);
		}
	}
	assert_non_null(n);
	assert_string_equal(n->event, "exit");
	jevent("ev1", "-", "view", "i02"); /* restored from the spill store, still carted */
	n = note_wait(K("carted", l1, 3, "ev1"), 5000);
	assert_non_null(n);
	assert_string_equal(n->event, "enter");
	CALL(WF_CMD_HISTORY, "ev1");
	assert_string_equal(flatten()->t[0], "*2");
	CALL(WF_CMD_SEGMENTS, "ev1", "-");
	assert_string_equal(F.reply, "*1\r\n$6\r\ncarted\r\n");
	jevent("ev1", "-", "purchase", "i01");
	assert_non_null(note_wait(K("carted", l1, 4, "ev1"), 5000));
	keys_once("ev1");
	wf_journal_close(F.j);
	F.j = NULL;
}

static uint64_t jlsn_want;

static int ckpt_covers(void)
{
	barrier();
	return atomic_load_explicit(&sc()->stats.checkpoint_lsn, memory_order_relaxed) >= jlsn_want;
}

/* A restart from a checkpoint (every second here) restores each session's
 * segment state from it and reads the SEGMENT records only after its LSN:
 * a record planted before the LSN (a sequence 7 exit the ranker never
 * sent) is not read, which the old replay from the journal's start would
 * have followed with an enter numbered 8. Transitions on both sides of
 * the LSN are announced exactly once across two restarts, a session
 * evicted before the checkpoint continues its sequence, and one whose
 * enter came after it (journaled) is not announced again. */
static void test_ranker_segments_restart_from_checkpoint_exactly_once(void **state)
{
	char jdir[600], err[256];
	const char *pa[7] = { NULL, "carted", "1", "exit", "cs1", "-", "planted" };
	uint32_t pl[7];
	uint64_t lsn, l1, l2, l4;
	char planted[160];

	snprintf(jdir, sizeof(jdir), "%s/journal", F.dir);
	assert_int_equal(wf_journal_open(jdir, NULL, &F.j, err, sizeof(err)), 0);
	ranker_ttl = "600";
	ranker_ckpt = "1";
	restart_same();
	l1 = jevent("cs1", "-", "cart_add", "i01");
	assert_non_null(note_wait(K("carted", l1, 1, "cs1"), 5000));
	l2 = jevent("cs2", "-", "cart_add", "i02");
	assert_non_null(note_wait(K("carted", l2, 1, "cs2"), 5000));
	snprintf(planted, sizeof(planted), "%s", K("carted", l1, 7, "cs1"));
	pa[0] = planted;
	for (int i = 0; i < 7; i++)
		pl[i] = (uint32_t)strlen(pa[i]);
	assert_int_equal(wf_journal_append_kind(F.j, WF_JREC_SEGMENT, wf_wall_ms(), (uint16_t)F.shard, 7, pa, pl, &lsn),
			 0);
	assert_int_equal(wf_journal_flush_sync(F.j), 0);
	jlsn_want = wf_journal_next_lsn(F.j);
	jevent("cs3", "-", "view", "i03"); /* moves the applied LSN past the planted record */
	assert_true(wait_for(ckpt_covers));
	/* After the checkpoint: an exit of cs2 and an enter of cs4, journaled. */
	ranker_ckpt = "300"; /* no new one: the restarts below load that one */
	jevent("cs2", "-", "purchase", "i02");
	assert_non_null(note_wait(K("carted", l2, 2, "cs2"), 5000));
	l4 = jevent("cs4", "-", "cart_add", "i04");
	assert_non_null(note_wait(K("carted", l4, 1, "cs4"), 5000));
	restart_same();
	barrier();
	CALL(WF_CMD_SEGMENTS, "cs1", "-");
	assert_string_equal(F.reply, "*1\r\n$6\r\ncarted\r\n"); /* from the checkpoint */
	CALL(WF_CMD_SEGMENTS, "cs2", "-");
	assert_string_equal(F.reply, "*0\r\n");
	CALL(WF_CMD_SEGMENTS, "cs4", "-");
	assert_string_equal(F.reply, "*1\r\n$6\r\ncarted\r\n");
	restart_same();
	barrier();
	assert_int_equal(notes_with(K("carted", l1, 8, "cs1")), 0);
	jevent("cs1", "-", "purchase", "i01");
	assert_non_null(note_wait(K("carted", l1, 2, "cs1"), 5000)); /* its sequence, from the checkpoint */
	keys_once("cs1");
	keys_once("cs2");
	keys_once("cs4");
	assert_int_equal(notes_with(K("carted", l4, 1, "cs4")), 1);
	assert_int_equal(notes_with(K("carted", l2, 2, "cs2")), 1);
	/* ev1 (the test before: in, evicted, back in, out by its purchase;
	 * replayed from the whole journal, spilled or checkpointed since):
	 * another event repeats no key. */
	jevent("ev1", "-", "view", "i03");
	barrier();
	CALL(WF_CMD_SEGMENTS, "ev1", "-");
	assert_string_equal(F.reply, "*0\r\n");
	keys_once("ev1");
	wf_journal_close(F.j);
	F.j = NULL;
	define_segments(NULL); /* the built-in ones again */
}

/* Issue 16, transition keys: a session forgotten with no spill record
 * (--spill-budget 0: an evicted session is dropped; as when the store
 * deletes its file, or an expired session is not kept) loses its segment
 * state; when it comes back its sequences start again, from the LSN of
 * the event that brought it back, so no key of the first life repeats
 * (before: carted/1/1/fs1 a second time, which ingest would have dropped
 * as a duplicate). */
/* Wait (bounded) until n notes of session sid are of event ev ("enter",
 * "exit"), whatever their keys; 1 if they came. */
static int notes_of_wait(const char *sid, const char *ev, uint32_t n, int max_ms)
{
	for (int ms = 0;; ms++) {
		uint32_t c = 0, len, kind;
		const void *p;
		for (uint32_t i = 0; i < F.nnotes; i++)
			c += !strcmp(F.notes[i].session, sid) && !strcmp(F.notes[i].event, ev);
		if (c >= n)
			return 1;
		if (ms >= max_ms)
			return 0;
		while ((p = wf_ring_pop(&F.rep, &len, &kind))) {
			assert_int_equal(kind, WF_MSG_NOTE);
			take_note(p, len);
		}
		usleep(1000);
	}
}

static void test_ranker_segments_keys_unique_after_forgotten_session(void **state)
{
	char sid[32], jdir[600], err[256];
	const struct tnote *n = NULL;
	uint64_t l1, l2;

	snprintf(jdir, sizeof(jdir), "%s/journal", F.dir);
	assert_int_equal(wf_journal_open(jdir, NULL, &F.j, err, sizeof(err)), 0);
	ranker_spill = "0";
	restart_same();
	define_segments("carted\t1\tdid(cart_add, 1h) and not did(purchase, 1h)\n");
	preview_rule = "in(carted)";
	assert_true(wait_for(preview_ok));
	int out = 0;

	l1 = jevent("fs1", "-", "cart_add", "i01");
	assert_true(notes_of_wait("fs1", "enter", 1, 5000));
	for (int i = 0; i < 40000 && !out; i++) {
		snprintf(sid, sizeof(sid), "fsf%d", i);
		EVENT(sid, "-", "view", "i05");
		EVENT(sid, "-", "pdp", "i06");
		if (i % 1000 == 999) {
			barrier();
			out = notes_of_wait("fs1", "exit", 1, 0);
		}
	}
	assert_true(out);
	n = &F.notes[F.nnotes - 1];
	for (uint32_t i = 0; i < F.nnotes; i++)
		if (!strcmp(F.notes[i].session, "fs1") && !strcmp(F.notes[i].event, "exit"))
			n = &F.notes[i];
	assert_string_equal(n->reason, "evicted");
	CALL(WF_CMD_HISTORY, "fs1");
	assert_string_equal(F.reply, "*0\r\n"); /* forgotten: nothing to restore */
	l2 = jevent("fs1", "-", "cart_add", "i02");
	assert_true(l2 > l1);
	assert_true(notes_of_wait("fs1", "enter", 2, 5000)); /* back in, whatever its key */
	jevent("fs1", "-", "purchase", "i02");
	assert_true(notes_of_wait("fs1", "exit", 2, 5000));
	keys_once("fs1"); /* four transitions, four keys */
	assert_int_equal(notes_with(K("carted", l1, 1, "fs1")), 1);
	assert_int_equal(notes_with(K("carted", l2, 1, "fs1")), 1); /* numbered from the LSN that brought it back */
	assert_int_equal(notes_with(K("carted", l2, 2, "fs1")), 1);
	wf_journal_close(F.j);
	F.j = NULL;
	define_segments(NULL);
	ranker_spill = "1G";
	restart_same();
}

/* The spill store within --spill-budget (1M here): the oldest evicted
 * sessions are dropped (counted), the recent ones still come back, and
 * the files stay within the budget. */
static int spill_dropped(void)
{
	barrier();
	return atomic_load_explicit(&sc()->stats.spill_dropped, memory_order_relaxed) > 0;
}

static void test_ranker_spill_store_within_its_disk_budget(void **state)
{
	struct wf_snap_ref cur = { 0 }, prev = { 0 };
	char sid[32], cmd[600];
	long bytes = 0;
	FILE *p;

	wf_ctl_snap_get(F.shm->ctl, &cur, &prev);
	ranker_spill = "1M";
	restart_with(&cur, &prev);
	for (int i = 0; i < 20000; i++) {
		snprintf(sid, sizeof(sid), "sb%d", i);
		EVENT(sid, "-", "view", "i05");
		EVENT(sid, "-", "pdp", "i06");
		EVENT(sid, "-", "click", "i07");
	}
	assert_true(wait_for(spill_dropped));
	snprintf(cmd, sizeof(cmd), "cat %s/rankers/spill-%u-*.wfs | wc -c", F.dir, F.shard);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%ld", &bytes), 1);
	pclose(p);
	print_message("ranker: spill store %ld bytes (budget 1 MiB), %llu sessions dropped\n", bytes,
		      (unsigned long long)atomic_load(&sc()->stats.spill_dropped));
	assert_true(bytes <= (1 << 20));
	CALL(WF_CMD_HISTORY, "sb0"); /* among the oldest: dropped, starts fresh */
	assert_string_equal(F.reply, "*0\r\n");
	CALL(WF_CMD_HISTORY, "sb15000"); /* evicted lately: whole */
	assert_string_equal(flatten()->t[0], "*3");
}

/* ---- experiments (issue 17): the arm's policy served, the exposure
 * note before its reply, nothing for units outside or pages not in it. */

static void set_experiments(const char *conf)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/experiments.conf", F.dir);
	assert_int_equal(wf_write_file_atomic(path, conf, strlen(conf)), 0);
	/* R13, as weft-admin: pairs with A13 in the ranker (rankers/exps.c). */
	atomic_fetch_add_explicit(&F.shm->ctl->experiments_gen, 1, memory_order_release);
}

/* The note F holds is an exposure of exp/arm/unit for session, user and
 * page, listing the items of the reply in their positions. */
static void assert_exposure(const char *exp, const char *arm, const char *unit, const char *sid, const char *user,
			    const char *page)
{
	char it[64][16], req[32];
	int n = items_of(it, 64);

	assert_int_equal(F.exp_n, 1);
	assert_int_equal(F.exp_kind, WF_JREC_EXPOSURE);
	assert_string_equal(F.exp_note[0], exp);
	assert_string_equal(F.exp_note[1], arm);
	assert_string_equal(F.exp_note[2], unit);
	assert_string_equal(F.exp_note[3], sid);
	assert_string_equal(F.exp_note[4], user);
	assert_string_equal(F.exp_note[5], page);
	snprintf(req, sizeof(req), "%llu", (unsigned long long)F.next_id);
	assert_string_equal(F.exp_note[6], req);
	assert_int_equal(F.exp_argc, 7 + (uint32_t)n);
	for (int i = 0; i < n; i++)
		assert_string_equal(F.exp_note[7 + i], it[i]);
}

static void test_ranker_experiment_batch_arm_exposed_before_reply(void **state)
{
	char it[64][16], quiet[64][16];
	int n, nq;

	set_experiments("");
	EVENT("xs", "alice", "pdp", "i35");
	EVENT("xs", "alice", "cart_add", "i00");
	CALL(WF_CMD_RECS, "xs", "alice", "8");
	assert_int_equal(F.exp_n, 0);
	assert_false(has(it, items_of(it, 64), "i00")); /* live: the cart took it */
	set_experiments("[experiment e1]\nstate = running\nunit = user\nsalt = 00000000000000aa\npages = home\n"
			"arm = b=100:batch\n");
	CALL(WF_CMD_RECS, "xs", "alice", "8");
	assert_exposure("e1", "b", "u:alice", "xs", "alice", "home");
	n = items_of(it, 64);
	assert_string_equal(it[0], "i00"); /* batch: the session does not count */
	CALL(WF_CMD_RECS, "quiet-x", "alice", "8");
	assert_exposure("e1", "b", "u:alice", "quiet-x", "alice", "home");
	nq = items_of(quiet, 64);
	assert_int_equal(n, nq);
	for (int i = 0; i < n; i++)
		assert_string_equal(it[i], quiet[i]);
	/* the unit is the user the session logged in as */
	CALL(WF_CMD_RECS, "xs", "-", "8");
	assert_exposure("e1", "b", "u:alice", "xs", "-", "home");
	/* a page the experiment is not on: live, not exposed */
	CALL(WF_CMD_RECS, "xs", "alice", "8", "PAGE", "pdp");
	assert_int_equal(F.exp_n, 0);
	assert_false(has(it, items_of(it, 64), "i00"));
	/* stopped: served as before, not exposed */
	set_experiments("[experiment e1]\nstate = stopped\nunit = user\nsalt = 00000000000000aa\npages = home\n"
			"arm = b=100:batch\n");
	CALL(WF_CMD_RECS, "xs", "alice", "8");
	assert_int_equal(F.exp_n, 0);
	assert_false(has(it, items_of(it, 64), "i00"));
}

static void test_ranker_experiment_outside_share_not_exposed_rerank_exposed(void **state)
{
	static const char conf[] = "[experiment e2]\nstate = running\nunit = session\nsalt = 0000000000000bbb\n"
				   "arm = w=50:weights:1,0\n";
	struct wf_exp_set set;
	char err[200], in[32] = "", out[32] = "", unit[64];

	assert_int_equal(wf_exp_conf_parse(conf, sizeof(conf) - 1, &set, err, sizeof(err)), 0);
	for (int i = 0; i < 100 && (!in[0] || !out[0]); i++) {
		char sid[32];
		size_t len = (size_t)snprintf(sid, sizeof(sid), "sess%d", i);
		size_t ul = wf_exp_unit_of(&set.exps[0], sid, len, "alice", 5, unit);
		snprintf(wf_exp_assign(&set.exps[0], unit, ul) < 0 ? out : in, 32, "%s", sid);
	}
	set_experiments(conf);
	CALL(WF_CMD_RECS, out, "alice", "5");
	assert_int_equal(F.exp_n, 0);
	CALL(WF_CMD_RECS, in, "alice", "5");
	snprintf(unit, sizeof(unit), "s:%s", in);
	assert_exposure("e2", "w", unit, in, "alice", "home");
	CALL(WF_CMD_RERANK, in, "alice", "i03", "i01", "i02");
	assert_exposure("e2", "w", unit, in, "alice", "search");
	CALL(WF_CMD_RERANK, out, "alice", "i03", "i01", "i02");
	assert_int_equal(F.exp_n, 0);
	set_experiments("");
}

static int stale_exposed(void)
{
	CALL(WF_CMD_RECS, "st", "alice", "5");
	return F.exp_n == 1;
}

static int gen9_loaded(void)
{
	return atomic_load_explicit(&sc()->loaded_gen, memory_order_acquire) == 9;
}

static void test_ranker_experiment_stale_arm_serves_previous_generation(void **state)
{
	struct wf_snap_ref cur = { .gen = 8, .loaded_ms = 1 }, prev = { 0 };
	char it[64][16], quiet[64][16];
	int n;

	set_experiments("[experiment e3]\nstate = running\nunit = user\nsalt = 0000000000000ccc\n"
			"arm = st=100:stale\n");
	/* only one generation: no previous one to serve, so served as everyone
	 * else and not exposed */
	snprintf(cur.path, sizeof(cur.path), "%s/g8.snap", F.dir);
	assert_int_equal(tr_write_store(cur.path, 8), 0);
	restart_with(&cur, &prev);
	CALL(WF_CMD_RECS, "st", "alice", "5");
	assert_int_equal(F.exp_n, 0);
	/* a swap to 9 keeps 8's file for the stale arm */
	prev = cur;
	cur.gen = 9;
	snprintf(cur.path, sizeof(cur.path), "%s/g9.snap", F.dir);
	assert_int_equal(tr_write_store(cur.path, 9), 0);
	wf_ctl_snap_set(F.shm->ctl, &cur, &prev);
	assert_true(wait_for(gen9_loaded));
	EVENT("st", "alice", "cart_add", "i00");
	CALL(WF_CMD_RECS, "st", "alice", "5");
	assert_exposure("e3", "st", "u:alice", "st", "alice", "home");
	n = items_of(it, 64);
	assert_string_equal(it[0], "i00"); /* no session rerank */
	/* after a restart the loader opens generation 8's file */
	restart_with(&cur, &prev);
	assert_true(wait_for(stale_exposed));
	assert_int_equal(items_of(quiet, 64), n);
	for (int i = 0; i < n; i++)
		assert_string_equal(it[i], quiet[i]);
	set_experiments("");
}

static void test_ranker_exits_on_shutdown(void **state)
{
	int st = -1;

	atomic_store_explicit(&F.shm->ctl->shutdown, 1, memory_order_release);
	wf_wake_futex(&sc()->ranker_wait);
	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(F.pid, &st, WNOHANG);
		if (r == F.pid)
			break;
		usleep(20000);
	}
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(atomic_load(&sc()->ready), 0);
	F.pid = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ranker_started_and_loaded_generation),
		cmocka_unit_test(test_ranker_segpreview_equals_brute_force),
		cmocka_unit_test(test_ranker_recs_is_batch_list_then_cart_changes_it),
		cmocka_unit_test(test_ranker_stock_filters_items_and_sizes),
		cmocka_unit_test(test_ranker_size_filter_drops_only_what_live_stock_says),
		cmocka_unit_test(test_ranker_explain_parts_add_up),
		cmocka_unit_test(test_ranker_history_and_segments),
		cmocka_unit_test(test_ranker_history_round_trips_users_fields_and_times),
		cmocka_unit_test(test_ranker_bad_requests_get_err),
		cmocka_unit_test(test_ranker_swap_keeps_sessions_and_refuses_bad_file),
		cmocka_unit_test(test_ranker_cached_recs_equal_fresh_across_changes),
		cmocka_unit_test(test_ranker_live_items_come_back_by_id),
		cmocka_unit_test(test_ranker_session_bytes_within_bound),
		cmocka_unit_test(test_ranker_long_session_keeps_every_acked_event),
		cmocka_unit_test(test_ranker_long_session_history_bytes_bounded),
		cmocka_unit_test(test_ranker_memory_budget_evicts_least_recently_active),
		cmocka_unit_test(test_ranker_restart_serves_previous_generation_when_current_fails),
		cmocka_unit_test(test_ranker_segments_timer_enter_then_exit),
		cmocka_unit_test(test_ranker_segments_survive_kill_exactly_once),
		cmocka_unit_test(test_ranker_idle_sessions_expire_in_steps),
		cmocka_unit_test(test_ranker_checkpoint_then_replay_after_its_lsn),
		cmocka_unit_test(test_ranker_applies_what_a_killed_ingest_had_not_sent),
		cmocka_unit_test(test_ranker_segments_keys_continue_across_eviction),
		cmocka_unit_test(test_ranker_segments_restart_from_checkpoint_exactly_once),
		cmocka_unit_test(test_ranker_segments_keys_unique_after_forgotten_session),
		cmocka_unit_test(test_ranker_spill_store_within_its_disk_budget),
		cmocka_unit_test(test_ranker_experiment_batch_arm_exposed_before_reply),
		cmocka_unit_test(test_ranker_experiment_outside_share_not_exposed_rerank_exposed),
		cmocka_unit_test(test_ranker_experiment_stale_arm_serves_previous_generation),
		cmocka_unit_test(test_ranker_exits_on_shutdown),
	};
	return cmocka_run_group_tests_name("ranker", tests, group_setup, group_teardown);
}
