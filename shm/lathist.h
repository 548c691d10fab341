/*
 * lathist.h - a fixed log-linear latency histogram for shared memory:
 * 4 buckets per power of two of nanoseconds (about 19 % wide), 128
 * buckets covering up to ~2^31 ns. Writers add with relaxed atomics (each
 * counter is independent statistics); readers sum a snapshot of the
 * counters, which may be a few increments apart: fine for percentiles.
 */
#ifndef WF_LATHIST_H
#define WF_LATHIST_H

#include <stdatomic.h>
#include <stdint.h>

#define WF_LAT_BUCKETS 128u

static inline uint32_t wf_lat_bucket(uint64_t ns)
{
	uint32_t msb, b;

	if (ns < 4)
		return (uint32_t)ns;
	msb = 63u - (uint32_t)__builtin_clzll(ns);
	b = msb * 4u + (uint32_t)((ns >> (msb - 2u)) & 3u);
	return b < WF_LAT_BUCKETS ? b : WF_LAT_BUCKETS - 1u;
}

/* Smallest value of bucket b + 1, i.e. an upper bound of bucket b. */
static inline uint64_t wf_lat_bucket_upper(uint32_t b)
{
	uint32_t msb = (b + 1u) / 4u, sub = (b + 1u) % 4u;

	if (b + 1u < 8u)
		return b + 1u;
	return (4ull + sub) << (msb - 2u);
}

static inline void wf_lat_add(_Atomic uint64_t *hist, uint64_t ns)
{
	/* relaxed: an independent statistics counter (see above). */
	atomic_fetch_add_explicit(&hist[wf_lat_bucket(ns)], 1, memory_order_relaxed);
}

/* The q-quantile (0..1) of a histogram, as its bucket's upper bound; 0 if
 * empty. *ret_count gets the number of samples when non-NULL. */
static inline uint64_t wf_lat_quantile(const _Atomic uint64_t *hist, double q, uint64_t *ret_count)
{
	uint64_t c[WF_LAT_BUCKETS], total = 0, acc = 0;

	for (uint32_t i = 0; i < WF_LAT_BUCKETS; i++)
		total += c[i] = atomic_load_explicit(&((_Atomic uint64_t *)hist)[i], memory_order_relaxed);
	if (ret_count)
		*ret_count = total;
	if (!total)
		return 0;
	for (uint32_t i = 0; i < WF_LAT_BUCKETS; i++) {
		acc += c[i];
		if ((double)acc >= q * (double)total)
			return wf_lat_bucket_upper(i);
	}
	return wf_lat_bucket_upper(WF_LAT_BUCKETS - 1u);
}

#endif
