/*
 * lathist.h - a fixed log-linear latency histogram for shared memory:
 * 4 buckets per power of two of nanoseconds (about 19 % wide), 128
 * buckets covering up to ~2^31 ns. Writers add with relaxed atomics (each
 * counter is independent statistics); readers sum a snapshot of the
 * counters, which may be a few increments apart: fine for percentiles.
 *
 * Buckets: 0..3 hold 0..3 ns exactly; 4..7 are never used; from 8 on,
 * bucket b holds [wf_lat_bucket_lower(b), wf_lat_bucket_upper(b)): the
 * power of two 2^(b/4) split in four equal parts (b % 4); the last
 * bucket also takes everything above it.
 *
 * Two ways to add: wf_lat_add() (an atomic add, any number of writers)
 * and wf_lat_add_n() (a relaxed load and store: one writer only, no locked
 * instruction: weft-ingest's request histograms, layout.h).
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

/* Smallest value bucket b holds (see above; 4..7 hold nothing: 4). */
static inline uint64_t wf_lat_bucket_lower(uint32_t b)
{
	if (b < 4u)
		return b;
	if (b < 8u)
		return 4;
	return (4ull + b % 4u) << (b / 4u - 2u);
}

static inline void wf_lat_add(_Atomic uint64_t *hist, uint64_t ns)
{
	/* relaxed: an independent statistics counter (see above). */
	atomic_fetch_add_explicit(&hist[wf_lat_bucket(ns)], 1, memory_order_relaxed);
}

/* n samples of ns each, by the histogram's one writer: relaxed load and
 * store (a reader sees the old or the new count, both whole: statistics);
 * sum_ns, when not NULL, gets n x ns the same way. */
static inline void wf_lat_add_n(_Atomic uint64_t *hist, _Atomic uint64_t *sum_ns, uint64_t ns, uint64_t n)
{
	_Atomic uint64_t *c = &hist[wf_lat_bucket(ns)];

	/* relaxed: single writer, independent statistics (see above). */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
	if (sum_ns)
		atomic_store_explicit(sum_ns, atomic_load_explicit(sum_ns, memory_order_relaxed) + n * ns,
				      memory_order_relaxed);
}

/* A plain copy of a shared histogram (relaxed loads: display); returns
 * the number of samples. */
static inline uint64_t wf_lat_snapshot(const _Atomic uint64_t *hist, uint64_t out[WF_LAT_BUCKETS])
{
	uint64_t total = 0;

	for (uint32_t i = 0; i < WF_LAT_BUCKETS; i++)
		total += out[i] = atomic_load_explicit(&((_Atomic uint64_t *)hist)[i], memory_order_relaxed);
	return total;
}

/*
 * The q-quantile (0..1) estimated from plain counts c (a snapshot, or the
 * difference of two): the sample of rank ceil(q x total) (at least 1),
 * placed by linear interpolation inside its bucket, as HdrHistogram and
 * Prometheus' histogram_quantile() do; 0 if empty. The estimate lies in
 * the right bucket, so within its width (~19 %) of the true value.
 */
static inline double wf_lat_quantile_est(const uint64_t c[WF_LAT_BUCKETS], double q)
{
	uint64_t total = 0, acc = 0, rank;

	for (uint32_t i = 0; i < WF_LAT_BUCKETS; i++)
		total += c[i];
	if (!total)
		return 0;
	rank = (uint64_t)(q * (double)total + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > total)
		rank = total;
	for (uint32_t i = 0; i < WF_LAT_BUCKETS; i++) {
		if (acc + c[i] >= rank) {
			double lo = (double)wf_lat_bucket_lower(i), hi = (double)wf_lat_bucket_upper(i);

			if (i < 4u)
				return lo; /* exact */
			return lo + (hi - lo) * ((double)(rank - acc) - 0.5) / (double)c[i];
		}
		acc += c[i];
	}
	return (double)wf_lat_bucket_upper(WF_LAT_BUCKETS - 1u);
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
