/*
 * rankbench.c - microseconds per fresh wf_rank_recs() (lib/rank) as
 * weft-ranker calls it: a returning user's batch list, a session, k, and a
 * filter that reads the snapshot's sold-out flag (the ranker's stock filter
 * with no live stock). Benchmark tooling only, linked into nothing else;
 * tests/test_rank.c checks correctness.
 *
 *   weft-rankbench --snap FILE [--queries N] [--rounds R] [--k K] [--case C] [--cold KB] [--check]
 *
 * Users with a full batch list (the most candidates in the snapshot) take
 * turns, each with its own generated 10-event session (views, clicks, pdp
 * views, mostly along the snapshot's neighbours; every fourth session
 * carts one item), so each query is a fresh computation over a different
 * pool. Prints per case the median and best of R rounds of N queries, in
 * this thread's CPU time (the machine is shared):
 *   "recs <case> <median> us/query (best <b>, pool <p> entries)"
 * for the cases session (10 events), empty (a session with no events), none
 * (no session), explain (session, with EXPLAIN) and live (the session and
 * then two live items, lib/rank's items the snapshot lacks, at ring places
 * 0 and 2); --case C measures only
 * case C (for a profiler). --cold KB writes over KB KiB between queries
 * (users then in random order) and times each query alone: the caches as
 * a ranker finds them between two requests on a shared core.
 * --check prints instead one hash over every result of every case (items,
 * score bits, EXPLAIN parts, RERANK order) for every user, with the
 * sold-out filter, filters that refuse a third and nine in ten of the
 * items, and none: equal hashes
 * before and after a change mean equal results, bit for bit. A second
 * line hashes wf_rank_positions() (the evaluator's session-only and
 * hybrid pair) for a few items of each user under the same filters, a
 * third RECS with an ANCHOR (the user's first candidate), with and
 * without a session, with EXPLAIN, a fourth RECS and EXPLAIN with a
 * repeat-look penalty (penalty_seen 0.05), a fifth the live case (RECS,
 * EXPLAIN, positions of its live items), and how many sessions are in an
 * intent pivot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/rank/rank.h"
#include "lib/util.h"

#define BENCH_EVENTS 10u
#define BENCH_USERS 8192u
#define BENCH_LIVE1 0x1234567u /* the live items' keys (lib/rank/rank.h WF_RANK_LIVE_BASE) */
#define BENCH_LIVE2 0x89abcdfu

struct bench {
	struct wf_snap *snap;
	struct wf_rank_params p;
	struct wf_rank_scratch *w;
	uint32_t nusers;
	uint32_t user[BENCH_USERS];
	struct wf_rank_session sess[BENCH_USERS];
	struct wf_rank_session live[BENCH_USERS]; /* sess, then two live items */
	struct wf_rank_session empty;
	uint32_t k;
};

static uint64_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

static int sold_out(void *ctx, uint32_t item)
{
	const struct wf_snap *snap = ctx;

	return wf_rank_is_live(item) || !(snap->items[item].flags & WF_SNAP_ITEM_SOLD_OUT);
}

/* The users with the longest batch lists (up to BENCH_USERS), and a
 * session for each. */
static void pick(struct bench *b)
{
	const struct wf_snap *snap = b->snap;
	uint32_t best = 0;
	uint64_t seed = 7;

	for (uint32_t u = 0; u < snap->nusers; u++)
		best = WF_MAX(best, snap->users[u].cand_cnt);
	for (uint32_t u = 0; u < snap->nusers && b->nusers < BENCH_USERS; u++)
		if (snap->users[u].cand_cnt == best)
			b->user[b->nusers++] = u;
	for (uint32_t i = 0; i < b->nusers; i++) {
		const struct wf_snap_user *su = &snap->users[b->user[i]];
		uint32_t it = snap->cands[su->cand_off + rnd(&seed) % su->cand_cnt].item;
		wf_rank_session_init(&b->sess[i]);
		for (uint32_t e = 0; e < BENCH_EVENTS; e++) {
			static const int types[] = { WF_EV_VIEW, WF_EV_VIEW, WF_EV_VIEW, WF_EV_CLICK, WF_EV_PDP };
			int type = types[rnd(&seed) % WF_ARRAY_SIZE(types)];
			if (i % 4 == 0 && e == 7)
				type = WF_EV_CART_ADD;
			wf_rank_session_apply(&b->sess[i], snap, &b->p, type, it, 0);
			const struct wf_snap_item *m = &snap->items[it];
			if (m->neigh_cnt && rnd(&seed) % 10 < 6)
				it = snap->neigh[m->neigh_off + rnd(&seed) % m->neigh_cnt].item;
			else
				it = (uint32_t)(rnd(&seed) % snap->nitems);
		}
		b->live[i] = b->sess[i];
		wf_rank_session_apply_key(&b->live[i], snap, &b->p, WF_EV_VIEW, -1, BENCH_LIVE1, 0);
		wf_rank_session_apply(&b->live[i], snap, &b->p, WF_EV_VIEW, it, 0);
		wf_rank_session_apply_key(&b->live[i], snap, &b->p, WF_EV_PDP, -1, BENCH_LIVE2, 0);
	}
	wf_rank_session_init(&b->empty);
}

/* The --check hashes before live items cover the cases up to CASE_COUNT. */
enum { CASE_SESSION, CASE_EMPTY, CASE_NONE, CASE_EXPLAIN, CASE_COUNT, CASE_LIVE = CASE_COUNT, CASE_ALL };
static const char *const case_name[CASE_ALL] = { "session", "empty", "none", "explain", "live" };

static struct wf_rank_query query(const struct bench *b, uint32_t i, int c)
{
	const struct wf_snap_user *su = &b->snap->users[b->user[i]];

	return (struct wf_rank_query){
		.sess = c == CASE_NONE ? NULL : c == CASE_EMPTY ? &b->empty : c == CASE_LIVE ? &b->live[i] : &b->sess[i],
		.cands = b->snap->cands + su->cand_off,
		.ncands = su->cand_cnt,
		.w_batch = 0.4f,
		.w_session = 0.6f,
		.anchor = -1,
		.k = b->k,
		.filter = sold_out,
		.filter_ctx = b->snap,
	};
}

/* For --check: filters that refuse a third of the items (emit() selects
 * wider) and nine in ten (emit() orders the whole pool). */
static int refuse_third(void *ctx, uint32_t item)
{
	(void)ctx;
	return (item * 2654435761u) >> 16 & 1 ? 1 : item % 3 != 0;
}

static int refuse_most(void *ctx, uint32_t item)
{
	(void)ctx;
	return item % 10 == 0;
}

static uint64_t hash_mix(uint64_t h, const void *p, size_t len)
{
	uint64_t v[2] = { h, wf_hash64(p, len) };

	return wf_hash64(v, sizeof(v));
}

/* One RECS (with EXPLAIN's parts for that case) into the hash. */
static uint64_t mix_recs(uint64_t h, struct bench *b, const struct wf_rank_params *p, const struct wf_rank_query *q,
			 int c)
{
	uint32_t items[WF_RANK_MAX_K];
	float sc[WF_RANK_MAX_K];
	struct wf_rank_explain ex[WF_RANK_MAX_K];
	int n = wf_rank_recs(b->snap, p, q, b->w, items, sc, c == CASE_EXPLAIN ? ex : NULL);

	h = hash_mix(h, &n, sizeof(n));
	h = hash_mix(h, items, (size_t)n * sizeof(*items));
	h = hash_mix(h, sc, (size_t)n * sizeof(*sc));
	if (c == CASE_EXPLAIN)
		h = hash_mix(h, ex, (size_t)n * sizeof(*ex));
	return h;
}

static uint64_t check(struct bench *b)
{
	static const wf_rank_filter_fn filters[] = { sold_out, refuse_third, refuse_most, NULL };
	uint32_t pos[WF_RANK_POOL];
	float sc[WF_RANK_MAX_K];
	int64_t rr[64];
	uint64_t h = 0;

	for (uint32_t f = 0; f < WF_ARRAY_SIZE(filters); f++) {
		for (int c = 0; c < CASE_COUNT; c++) {
			for (uint32_t i = 0; i < b->nusers; i++) {
				struct wf_rank_query q = query(b, i, c);
				uint32_t nr = WF_MIN(q.ncands, (uint32_t)WF_ARRAY_SIZE(rr));
				int n;

				q.filter = filters[f];
				h = mix_recs(h, b, &b->p, &q, c);
				/* RERANK of the list's first 64 candidates, reversed. */
				for (uint32_t x = 0; x < nr; x++)
					rr[x] = q.cands[nr - 1 - x].item;
				n = wf_rank_rerank(b->snap, &b->p, &q, b->w, rr, nr, pos, sc);
				h = hash_mix(h, &n, sizeof(n));
				h = hash_mix(h, pos, (size_t)n * sizeof(*pos));
				h = hash_mix(h, sc, (size_t)n * sizeof(*sc));
			}
		}
	}
	return h;
}

/* wf_rank_positions() as weft-eval calls it (session only, and hybrid,
 * from one pool) for the user's first candidates, the session's newest
 * item's neighbours and one item that is in no pool. */
static uint64_t check_positions(struct bench *b)
{
	static const wf_rank_filter_fn filters[] = { sold_out, refuse_third, refuse_most, NULL };
	uint64_t h = 0;

	for (uint32_t f = 0; f < WF_ARRAY_SIZE(filters); f++) {
		for (int c = 0; c < CASE_EXPLAIN; c++) {
			for (uint32_t i = 0; i < b->nusers; i++) {
				struct wf_rank_query q[2] = { query(b, i, c), query(b, i, c) };
				const struct wf_snap_item *m = &b->snap->items[q[1].cands[0].item];
				int64_t targets[6] = { q[1].cands[0].item, q[1].cands[1].item, q[1].cands[7].item,
						       m->neigh_cnt ? (int64_t)b->snap->neigh[m->neigh_off].item : -1, -1,
						       (int64_t)(i % b->snap->nitems) };
				int32_t pos[2];

				q[0].cands = NULL;
				q[0].ncands = 0;
				q[0].w_batch = 0;
				q[0].w_session = 1;
				q[0].filter = q[1].filter = filters[f];
				for (uint32_t t = 0; t < WF_ARRAY_SIZE(targets); t++) {
					int r = wf_rank_positions(b->snap, &b->p, q, 2, b->w, targets[t], pos);
					h = hash_mix(h, &r, sizeof(r));
					h = hash_mix(h, pos, sizeof(pos));
				}
			}
		}
	}
	return h;
}

/* RECS and EXPLAIN with an ANCHOR (a PDP), with and without a session. */
static uint64_t check_anchor(struct bench *b)
{
	static const wf_rank_filter_fn filters[] = { sold_out, NULL };
	uint64_t h = 0;

	for (uint32_t f = 0; f < WF_ARRAY_SIZE(filters); f++) {
		for (int c = 0; c < CASE_COUNT; c++) {
			for (uint32_t i = 0; i < b->nusers; i++) {
				struct wf_rank_query q = query(b, i, c);

				q.anchor = q.cands[0].item;
				q.filter = filters[f];
				h = mix_recs(h, b, &b->p, &q, c);
			}
		}
	}
	return h;
}

/* The live case: RECS and EXPLAIN under the filters, and the positions of
 * its two live items and the user's first candidate. */
static uint64_t check_live(struct bench *b)
{
	static const wf_rank_filter_fn filters[] = { sold_out, refuse_third, NULL };
	uint64_t h = 0;

	for (uint32_t f = 0; f < WF_ARRAY_SIZE(filters); f++) {
		for (uint32_t i = 0; i < b->nusers; i++) {
			struct wf_rank_query q[2] = { query(b, i, CASE_LIVE), query(b, i, CASE_LIVE) };
			int64_t targets[3] = { wf_rank_live_code(&b->live[i], BENCH_LIVE1),
					       wf_rank_live_code(&b->live[i], BENCH_LIVE2), q[1].cands[0].item };
			int32_t pos[2];

			q[0].filter = q[1].filter = filters[f];
			h = mix_recs(h, b, &b->p, &q[1], CASE_LIVE);
			h = mix_recs(h, b, &b->p, &q[1], CASE_EXPLAIN);
			q[0].cands = NULL;
			q[0].ncands = 0;
			q[0].w_batch = 0;
			q[0].w_session = 1;
			for (uint32_t t = 0; t < WF_ARRAY_SIZE(targets); t++) {
				int r = wf_rank_positions(b->snap, &b->p, q, 2, b->w, targets[t], pos);
				h = hash_mix(h, &r, sizeof(r));
				h = hash_mix(h, pos, sizeof(pos));
			}
		}
	}
	return h;
}

/* RECS and EXPLAIN with a repeat-look penalty (off by default). */
static uint64_t check_penalty(struct bench *b)
{
	struct wf_rank_params p = b->p;
	uint64_t h = 0;

	p.penalty_seen = 0.05f;
	for (int c = 0; c < CASE_COUNT; c++) {
		for (uint32_t i = 0; i < b->nusers; i++) {
			struct wf_rank_query q = query(b, i, c);
			h = mix_recs(h, b, &p, &q, c);
		}
	}
	return h;
}

/* This thread's CPU time: time the scheduler gave other processes on a
 * shared machine does not count. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Write over cold_kb KiB (when > 0) between queries: what runs on the
 * core between two rankings in weft-ranker (weft-ingest, the clients, the
 * other ranker, the kernel) leaves the scratch, the snapshot and the
 * lists mostly out of L1 and L2. Each query is then timed alone (TSC,
 * scaled to this thread's CPU time over the round). */
static uint8_t *cold_buf;
static size_t cold_len;

static void chill(void)
{
	for (size_t i = 0; i < cold_len; i += 64)
		cold_buf[i]++;
}

static void measure(struct bench *b, int c, uint32_t nq, uint32_t rounds)
{
	uint32_t items[WF_RANK_MAX_K];
	float sc[WF_RANK_MAX_K];
	struct wf_rank_explain ex[WF_RANK_MAX_K];
	double us[64];
	uint64_t pool = 0, sink = 0, seed = 11;

	rounds = WF_MIN(rounds, (uint32_t)WF_ARRAY_SIZE(us));
	for (uint32_t r = 0; r < rounds; r++) {
		uint64_t t0 = cpu_ns(), c0 = __builtin_ia32_rdtsc(), in = 0;
		for (uint32_t j = 0; j < nq; j++) {
			/* cold: users in random order, as a ranker sees them */
			struct wf_rank_query q = query(b, cold_len ? (uint32_t)(rnd(&seed) % b->nusers) : j % b->nusers, c);
			uint64_t q0 = 0;
			if (cold_len) {
				chill();
				q0 = __builtin_ia32_rdtsc();
			}
			int n = wf_rank_recs(b->snap, &b->p, &q, b->w, items, sc, c == CASE_EXPLAIN ? ex : NULL);
			if (cold_len)
				in += __builtin_ia32_rdtsc() - q0;
			sink += (uint64_t)n + items[0];
			pool += b->w->n;
		}
		uint64_t ns = cpu_ns() - t0, cyc = __builtin_ia32_rdtsc() - c0;
		us[r] = (cold_len ? (double)ns * (double)in / (double)cyc : (double)ns) / nq / 1000.0;
	}
	qsort(us, rounds, sizeof(*us), cmp_double);
	printf("recs %-8s %6.2f us/query (best %.2f, pool %.0f entries)%s%s\n", case_name[c], us[rounds / 2], us[0],
	       (double)pool / ((double)nq * rounds), cold_len ? " cold" : "", sink ? "" : " ");
}

/* Nanoseconds per wf_rank_session_apply (a click on a random item, into a
 * copy of a bench session), median of the rounds: what an EVENT costs the
 * ranker beyond the ring. */
static void measure_apply(struct bench *b, uint32_t nq, uint32_t rounds)
{
	double ns[64];
	uint64_t seed = 5, sink = 0;

	rounds = WF_MIN(rounds, (uint32_t)WF_ARRAY_SIZE(ns));
	for (uint32_t r = 0; r < rounds; r++) {
		struct wf_rank_session s = b->sess[r % b->nusers];
		uint64_t t0 = cpu_ns();
		for (uint32_t j = 0; j < nq; j++)
			wf_rank_session_apply(&s, b->snap, &b->p, WF_EV_CLICK, (uint32_t)(rnd(&seed) % b->snap->nitems), 0);
		ns[r] = (double)(cpu_ns() - t0) / nq;
		sink += s.pivot;
	}
	qsort(ns, rounds, sizeof(*ns), cmp_double);
	printf("apply    %6.0f ns/event (best %.0f; struct wf_rank_session %zu bytes, scratch %zu)%s\n", ns[rounds / 2],
	       ns[0], sizeof(struct wf_rank_session), sizeof(struct wf_rank_scratch), sink == UINT64_MAX ? " " : "");
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	uint32_t nq = 20000, rounds = 5;
	int do_check = 0, only = -1;
	char err[256];
	static struct bench b;

	b.k = 20;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--snap") && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--queries") && i + 1 < argc)
			nq = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--k") && i + 1 < argc)
			b.k = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--cold") && i + 1 < argc)
			cold_len = (size_t)strtoul(argv[++i], NULL, 10) * 1024;
		else if (!strcmp(argv[i], "--check"))
			do_check = 1;
		else if (!strcmp(argv[i], "--case") && i + 1 < argc) {
			for (only = CASE_ALL - 1; only >= 0 && strcmp(argv[i + 1], case_name[only]); only--)
				;
			if (only < 0)
				path = NULL, i = argc; /* unknown case: usage */
			i++;
		}
		else
			path = NULL, i = argc;
	}
	if (!path || nq == 0 || rounds == 0 || b.k < 1 || b.k > WF_RANK_MAX_K) {
		fprintf(stderr, "usage: weft-rankbench --snap FILE [--queries N] [--rounds R] [--k K] [--case C] [--cold KB] [--check]\n"
				"  C: session, empty, none, explain or live\n");
		return 2;
	}
	if (wf_snap_open(path, &b.snap, err, sizeof(err)) < 0) {
		fprintf(stderr, "weft-rankbench: %s\n", err);
		return 1;
	}
	b.w = calloc(1, sizeof(*b.w));
	if (!b.w || (cold_len && !(cold_buf = calloc(1, cold_len))))
		return 1;
	wf_rank_params_default(&b.p);
	pick(&b);
	if (!b.nusers) {
		fprintf(stderr, "weft-rankbench: %s has no users\n", path);
		return 1;
	}
	if (do_check) {
		printf("check %016llx (%u users, k %u)\n", (unsigned long long)check(&b), b.nusers, b.k);
		printf("check-positions %016llx\n", (unsigned long long)check_positions(&b));
		printf("check-anchor %016llx\n", (unsigned long long)check_anchor(&b));
		printf("check-penalty %016llx\n", (unsigned long long)check_penalty(&b));
		printf("check-live %016llx\n", (unsigned long long)check_live(&b));
		uint32_t pivots = 0;
		for (uint32_t i = 0; i < b.nusers; i++)
			pivots += b.sess[i].pivot;
		printf("(%u of the %u sessions in a pivot)\n", pivots, b.nusers);
	} else {
		printf("%u users with %u candidates, %u queries x %u rounds, k %u\n", b.nusers,
		       b.snap->users[b.user[0]].cand_cnt, nq, rounds, b.k);
		for (int c = 0; c < CASE_ALL; c++)
			if (only < 0 || c == only)
				measure(&b, c, nq, rounds);
		if (only < 0)
			measure_apply(&b, nq, rounds);
	}
	free(cold_buf);
	free(b.w);
	wf_snap_close(b.snap);
	return 0;
}
