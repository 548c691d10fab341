/*
 * pool.h - a parallel for: run a function over [0, n) on a few threads.
 *
 * wf_pool_for() starts threads - 1 threads, works on the calling thread
 * too, hands out indexes in chunks from one shared counter, and returns
 * when every index is done (the threads are joined, so everything they
 * wrote is visible to the caller). Each thread has a worker number below
 * threads, for per-worker scratch the caller sets up beforehand.
 *
 * Used by weft-batch (per-item and per-user stages, parallel CSV reads).
 * Library code, never logs; progress goes through the caller's callback.
 */
#ifndef WF_POOL_H
#define WF_POOL_H

#include <stdint.h>

#define WF_POOL_MAX_THREADS 64u

/* Called by worker 0 about once a second: done indexes handed out of n. */
typedef void wf_pool_progress_fn(void *parg, uint64_t done, uint64_t n);

/*
 * wf_pool_for - fn(arg, i, worker) for every i in [0, n), each exactly once.
 * @threads:  workers (1..WF_POOL_MAX_THREADS; 0 counts as 1, more as the
 *            maximum), the calling thread being worker 0.
 * @progress: NULL, or called with parg by worker 0 about once a second.
 * Indexes are handed out 64 at a time (fewer when n is small against the
 * threads), so fn should not depend on which worker gets which index.
 * Returns 0: a thread that cannot be started leaves its share to the
 * others (at least the caller), so every index still runs.
 */
int wf_pool_for(uint32_t threads, uint64_t n, void (*fn)(void *arg, uint64_t i, uint32_t worker), void *arg,
		wf_pool_progress_fn *progress, void *parg);

#endif
