/*
 * pool.c - the parallel for of pool.h (pthreads, one shared counter).
 * Part of libweft; used by weft-batch.
 */
#include "lib/pool.h"

#include <pthread.h>
#include <stdatomic.h>

#include "lib/util.h"

struct pool {
	uint64_t n, chunk;
	void (*fn)(void *, uint64_t, uint32_t);
	void *arg;
	wf_pool_progress_fn *progress;
	void *parg;
	atomic_uint_fast64_t next; /* next chunk start; relaxed: it only hands out disjoint ranges,
				      the results are published by pthread_join */
};

struct pool_worker {
	struct pool *p;
	uint32_t id;
	pthread_t th;
};

static void *pool_run(void *arg)
{
	struct pool_worker *w = arg;
	struct pool *p = w->p;
	uint64_t last_ns = wf_now_ns(), k = 0;

	for (;;) {
		uint64_t i = atomic_fetch_add_explicit(&p->next, p->chunk, memory_order_relaxed);
		if (i >= p->n)
			break;
		for (uint64_t j = i; j < WF_MIN(i + p->chunk, p->n); j++)
			p->fn(p->arg, j, w->id);
		/* Worker 0 shows how far the hand-out got, about once a second;
		 * the clock is read every 16 chunks. */
		if (w->id == 0 && p->progress && (++k & 15) == 0) {
			uint64_t now = wf_now_ns();
			if (now - last_ns >= 1000000000ull) {
				p->progress(p->parg, WF_MIN(i + p->chunk, p->n), p->n);
				last_ns = now;
			}
		}
	}
	return NULL;
}

int wf_pool_for(uint32_t threads, uint64_t n, void (*fn)(void *arg, uint64_t i, uint32_t worker), void *arg,
		wf_pool_progress_fn *progress, void *parg)
{
	/* 64 indexes at a time, fewer when there are few (weft-batch's
	 * reader hands out a few big jobs). */
	struct pool p = { .n = n, .chunk = WF_MAX(1u, WF_MIN(64u, n / (16u * WF_MAX(1u, threads)))),
			  .fn = fn, .arg = arg, .progress = progress, .parg = parg };
	struct pool_worker w[WF_POOL_MAX_THREADS];
	uint32_t nt = WF_MAX(1u, WF_MIN(threads, WF_POOL_MAX_THREADS)), started = 0;

	atomic_init(&p.next, 0);
	for (uint32_t i = 1; i < nt; i++) {
		w[i] = (struct pool_worker){ .p = &p, .id = i };
		if (pthread_create(&w[i].th, NULL, pool_run, &w[i]) != 0)
			break;
		started = i;
	}
	w[0] = (struct pool_worker){ .p = &p, .id = 0 };
	pool_run(&w[0]);
	for (uint32_t i = 1; i <= started; i++)
		pthread_join(w[i].th, NULL);
	return 0;
}
