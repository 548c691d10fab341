/*
 * gens.c - weft-ranker's snapshot generations: each generation's own
 * jemalloc arena and stock keys, the loader thread that builds the next
 * one off the serving loop (RL1-RL3 / AL1-AL3, ranker_int.h), the swap
 * between requests, and at start the current generation or, when it
 * cannot be loaded, the previous one (failed_gen says so).
 */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/journal.h"
#include "rankers/ranker_int.h"
#include "shm/front.h"

#define RANKER_LOADER_NICE 10 /* the snapshot loader thread, relative to the serving loop */

int ranker_arena_create(unsigned *ret)
{
	size_t sz = sizeof(*ret);
	return mallctl("arenas.create", ret, &sz, NULL, 0) == 0 ? 0 : -ENOMEM;
}

static void arena_destroy(unsigned a)
{
	char name[64];
	snprintf(name, sizeof(name), "arena.%u.destroy", a);
	mallctl(name, NULL, NULL, NULL, 0);
}

void ranker_gen_free(struct ranker_gen *g)
{
	if (!g)
		return;
	wf_snap_close(g->snap);
	wf_snap_close(g->prev);
	arena_destroy(g->arena); /* every list of the generation, in one call */
	free(g);
}

/* The stock filter's keys, hashed once per generation, not per query,
 * in g's arena. 0 or -ENOMEM. */
static int gen_stock_keys(struct ranker_gen *g)
{
	g->stock_keys = ranker_alloc(g->arena, (size_t)g->snap->nitems * sizeof(*g->stock_keys) + 8);
	if (!g->stock_keys)
		return -ENOMEM;
	for (uint64_t i = 0; i < g->snap->nitems; i++) {
		const struct wf_snap_item *it = &g->snap->items[i];
		g->stock_keys[i] = wf_stock_key(wf_snap_str(g->snap, it->id_off), it->id_len);
	}
	g->bytes += g->snap->nitems * sizeof(*g->stock_keys);
	return 0;
}

/* Build a generation: map the file, copy the lists of our users into a
 * fresh arena. Runs on the loader thread, off the serving path. */
static struct ranker_gen *gen_build(struct ranker_ctx *ctx, uint64_t gen, const char *path)
{
	struct ranker_gen *g = calloc(1, sizeof(*g));
	uint32_t nshards = wf_shm_nshards(ctx->shm), slots = 16;
	uint64_t ncands = 0;
	struct wf_snap_cand *block = NULL;
	char err[512];
	int r;

	if (!g)
		return NULL;
	g->gen = gen;
	r = wf_snap_open(path, &g->snap, err, sizeof(err));
	if (r < 0) {
		wf_err("shard %u cannot load generation %llu: %s", ctx->shard, (unsigned long long)gen, err);
		free(g);
		return NULL;
	}
	if (ranker_arena_create(&g->arena) < 0) {
		wf_err("shard %u: arenas.create failed", ctx->shard);
		wf_snap_close(g->snap);
		free(g);
		return NULL;
	}
	for (uint32_t u = 0; u < g->snap->nusers; u++) {
		const struct wf_snap_user *su = &g->snap->users[u];
		if (wf_shard_of(wf_snap_str(g->snap, su->id_off), su->id_len, nshards) == ctx->shard) {
			g->nowned++;
			ncands += su->cand_cnt;
		}
	}
	while (slots < 2 * g->nowned)
		slots *= 2;
	g->owned = ranker_alloc(g->arena, (size_t)slots * sizeof(*g->owned));
	if (!g->owned)
		goto nomem;
	memset(g->owned, 0, (size_t)slots * sizeof(*g->owned));
	g->owned_mask = slots - 1;
	/* Every owned list in one block: no per-list size-class rounding
	 * (200 candidates = 1,600 B would take a 1,792 B class) and one
	 * allocation instead of one per user. Freed with the arena. bytes:
	 * the table's size class plus the block as requested (a large
	 * extent's tail past the request is never touched, so not resident). */
	if (ncands && !(block = ranker_alloc(g->arena, ncands * sizeof(*block))))
		goto nomem;
	g->bytes = nallocx((size_t)slots * sizeof(*g->owned), 0) + ncands * sizeof(*block);
	if (!(g->pv_users = ranker_alloc(g->arena, (size_t)(g->nowned + 1) * sizeof(*g->pv_users))) ||
	    !(g->pv_life = ranker_alloc(g->arena, (size_t)g->nowned + 1)))
		goto nomem;
	g->bytes += nallocx((size_t)(g->nowned + 1) * sizeof(*g->pv_users), 0) + nallocx((size_t)g->nowned + 1, 0);
	if (gen_stock_keys(g) < 0)
		goto nomem;
	for (uint32_t u = 0, n = 0; u < g->snap->nusers; u++) {
		const struct wf_snap_user *su = &g->snap->users[u];
		const char *id = wf_snap_str(g->snap, su->id_off);
		uint64_t key;
		uint32_t i;

		if (wf_shard_of(id, su->id_len, nshards) != ctx->shard)
			continue;
		key = wf_hash64(id, su->id_len) | 1;
		for (i = (uint32_t)key & g->owned_mask; g->owned[i].key; i = (i + 1) & g->owned_mask)
			;
		g->owned[i].key = key;
		g->owned[i].user = u;
		g->owned[i].ncands = su->cand_cnt;
		g->pv_users[n] = (struct ranker_seg_user){ key, u, su->ltv };
		g->pv_life[n++] = (uint8_t)su->segment;
		if (su->cand_cnt) {
			g->owned[i].cands = block;
			memcpy(block, g->snap->cands + su->cand_off, su->cand_cnt * sizeof(*block));
			block += su->cand_cnt;
		}
	}
	return g;
nomem:
	wf_err("shard %u: out of memory building generation %llu", ctx->shard, (unsigned long long)gen);
	ranker_gen_free(g);
	return NULL;
}

void *ranker_loader_main(void *arg)
{
	struct ranker_ctx *ctx = arg;
	uint64_t built = 0;

	/* The loader shares its core with the serving loop: lower its nice
	 * (this thread only) so a swap slows requests less. Best effort. */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), RANKER_LOADER_NICE) < 0)
		wf_warn("shard %u: cannot lower the snapshot loader's priority: %s", ctx->shard, strerror(errno));
	while (!ctx->stop) {
		/* AL2: pairs with RL2 in ranker_check_generation(). */
		uint64_t want = atomic_load_explicit(&ctx->want_gen, memory_order_acquire);
		struct wf_snap_ref cur;

		ranker_exps_loader_step(ctx);
		/* AL3: pairs with RL3 in ranker_take_generation(): the slot is empty
		 * once the loop took (and stopped reading) the last one. */
		if (want == built || atomic_load_explicit(&ctx->ready, memory_order_acquire)) {
			usleep(20000);
			continue;
		}
		wf_ctl_snap_get(ctx->shm->ctl, &cur, NULL);
		if (cur.gen != want) {
			built = 0; /* changed again meanwhile: look next time */
			usleep(20000);
			continue;
		}
		struct ranker_gen *g = gen_build(ctx, want, cur.path);
		built = want;
		if (!g) {
			/* R4: pairs with A4 in weft-admin. */
			atomic_store_explicit(&ctx->sc->failed_gen, want, memory_order_release);
			continue;
		}
		/* RL1: pairs with AL1 in ranker_take_generation() and run(); the whole
		 * generation is built before the loop sees the pointer. */
		atomic_store_explicit(&ctx->ready, g, memory_order_release);
	}
	return NULL;
}

void ranker_check_generation(struct ranker_ctx *ctx)
{
	/* A3: pairs with R3 in wf_ctl_snap_set(). */
	uint64_t gen = atomic_load_explicit(&ctx->shm->ctl->snap_cur_gen, memory_order_acquire);

	if (gen && (!ctx->cur || ctx->cur->gen != gen))
		/* RL2: pairs with AL2 in ranker_loader_main(). */
		atomic_store_explicit(&ctx->want_gen, gen, memory_order_release);
	else if (gen && atomic_load_explicit(&ctx->sc->failed_gen, memory_order_relaxed))
		/* Back on the generation we serve (a rollback after a failed
		 * load): not degraded any more. R4: pairs with A4 in weft-admin.
		 * relaxed load: the loader's store of it is ordered by RL1 and
		 * it stores it only after a failure the loop then acts on. */
		atomic_store_explicit(&ctx->sc->failed_gen, 0, memory_order_release);
}

/* Serve g (built off the serving path) from now on, and say so. */
static void serve_generation(struct ranker_ctx *ctx, struct ranker_gen *g)
{
	struct ranker_gen *old = ctx->cur;
	struct wf_snap_ref cur, prev;

	/* The generation g replaces is usually the one admin now lists as
	 * previous: keep its file mapped for the stale arm (exps.c) instead
	 * of opening it again; its arena (the copied lists) goes. */
	wf_ctl_snap_get(ctx->shm->ctl, &cur, &prev);
	if (old && !g->prev && prev.gen && old->gen == prev.gen && old->gen != g->gen) {
		g->prev = old->snap;
		g->prev_gen = old->gen;
		old->snap = NULL;
	}
	ctx->cur = g;
	ranker_gen_free(old);
	atomic_store_explicit(&ctx->sc->stats.snapshot_bytes, g->bytes, memory_order_relaxed); /* stats */
	atomic_store_explicit(&ctx->sc->stats.snapshot_users, g->nowned, memory_order_relaxed);
	atomic_fetch_add_explicit(&ctx->sc->stats.swaps, 1, memory_order_relaxed);
	/* R4: pairs with A4 in weft-admin's SNAPSHOT LOAD wait and status:
	 * the generation asked for is served, so no failure stands. */
	if (g->gen == atomic_load_explicit(&ctx->shm->ctl->snap_cur_gen, memory_order_acquire)) /* A3 */
		atomic_store_explicit(&ctx->sc->failed_gen, 0, memory_order_release);
	atomic_store_explicit(&ctx->sc->loaded_gen, g->gen, memory_order_release);
	wf_info("shard %u serves generation %llu (%u users, %.1f MB in arena %u)", ctx->shard,
		(unsigned long long)g->gen, g->nowned, g->bytes / 1e6, g->arena);
	if (g->bytes > ctx->memory_budget / 2)
		wf_warn("shard %u: generation %llu takes %llu MB of the %llu MB memory budget; sessions keep %llu MB: "
			"raise --memory-budget", ctx->shard, (unsigned long long)g->gen,
			(unsigned long long)(g->bytes >> 20), (unsigned long long)(ctx->memory_budget >> 20),
			(unsigned long long)(ranker_sessions_allowance(ctx) >> 20));
}

/* Between two requests: switch to a generation the loader finished. */
void ranker_take_generation(struct ranker_ctx *ctx)
{
	/* AL1: pairs with RL1 in ranker_loader_main(). */
	struct ranker_gen *g = atomic_load_explicit(&ctx->ready, memory_order_acquire);

	if (!g)
		return;
	/* RL3: pairs with AL3 in ranker_loader_main(); it may build the next
	 * generation once it sees the slot empty. */
	atomic_store_explicit(&ctx->ready, NULL, memory_order_release);
	serve_generation(ctx, g);
}

/*
 * At start, when the current generation cannot be loaded (failed_gen set
 * by the loader): serve the previous one admin still lists (snap_prev),
 * as a running ranker keeps serving its own, and leave failed_gen set so
 * status says DEGRADED. Built here, before the loop runs; the loader
 * does not retry the failed generation (built == want) until admin
 * publishes another. Without a previous one, RECS says it cannot serve.
 */
static void fallback_generation(struct ranker_ctx *ctx)
{
	struct wf_snap_ref cur, prev;
	struct ranker_gen *g;

	wf_ctl_snap_get(ctx->shm->ctl, &cur, &prev);
	if (!prev.gen || prev.gen == cur.gen) {
		wf_err("shard %u has no generation to serve: %llu failed to load and there is no previous one",
		       ctx->shard, (unsigned long long)cur.gen);
		return;
	}
	g = gen_build(ctx, prev.gen, prev.path);
	if (!g) {
		wf_err("shard %u has no generation to serve: %llu and the previous %llu failed to load", ctx->shard,
		       (unsigned long long)cur.gen, (unsigned long long)prev.gen);
		return;
	}
	wf_warn("shard %u serves the previous generation %llu: generation %llu failed to load", ctx->shard,
		(unsigned long long)prev.gen, (unsigned long long)cur.gen);
	serve_generation(ctx, g);
}

/* At start: wait (up to 60 s) for the loader to build the current
 * generation, so the first request is served from it. */
void ranker_first_generation(struct ranker_ctx *ctx)
{
	ranker_check_generation(ctx);
	/* relaxed (want_gen): this thread wrote it; failed_gen: A4-style
	 * acquire, pairs with the loader's R4 store. */
	for (int i = 0; i < 6000 && atomic_load_explicit(&ctx->want_gen, memory_order_relaxed) && !ctx->cur; i++) {
		ranker_take_generation(ctx);
		if (atomic_load_explicit(&ctx->sc->failed_gen, memory_order_acquire) ==
		    atomic_load_explicit(&ctx->want_gen, memory_order_relaxed))
			break;
		if (!ctx->cur)
			usleep(10000);
	}
	if (!ctx->cur && atomic_load_explicit(&ctx->want_gen, memory_order_relaxed))
		fallback_generation(ctx);
}
