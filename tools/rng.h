/*
 * rng.h - deterministic pseudo-random numbers for weft-gen: splitmix64 to
 * derive seeds, xoshiro256** for streams. Never rand(): the same --seed must
 * give byte-identical output on every host and libc.
 *
 * Included by tools/gen*.c only.
 */
#ifndef WF_TOOLS_RNG_H
#define WF_TOOLS_RNG_H

#include <math.h>
#include <stdint.h>

struct gen_rng {
	uint64_t s[4];
};

static inline uint64_t gen_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Mix several words into one seed (order matters). */
static inline uint64_t gen_mix(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t x = a;
	uint64_t h = gen_splitmix64(&x);
	x = h ^ b;
	h = gen_splitmix64(&x);
	x = h ^ c;
	return gen_splitmix64(&x);
}

static inline void gen_rng_seed(struct gen_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = gen_splitmix64(&x);
}

static inline uint64_t gen_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t gen_next(struct gen_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = gen_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = gen_rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1). */
static inline double gen_unif(struct gen_rng *r)
{
	return (double)(gen_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n). n > 0. */
static inline uint32_t gen_below(struct gen_rng *r, uint32_t n)
{
	return (uint32_t)(((gen_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform integer in [lo, hi]. */
static inline int64_t gen_range(struct gen_rng *r, int64_t lo, int64_t hi)
{
	return lo + (int64_t)(gen_unif(r) * (double)(hi - lo + 1));
}

static inline int gen_chance(struct gen_rng *r, double p)
{
	return gen_unif(r) < p;
}

/* Standard normal (Box-Muller, one value per call; fine for a generator). */
static inline double gen_normal(struct gen_rng *r)
{
	double u1 = gen_unif(r), u2 = gen_unif(r);
	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Log-normal with the given median and log-space sigma. */
static inline double gen_lognormal(struct gen_rng *r, double median, double sigma)
{
	return median * exp(sigma * gen_normal(r));
}

/* Poisson (Knuth; lambda is small here). */
static inline uint32_t gen_poisson(struct gen_rng *r, double lambda)
{
	double l = exp(-lambda), p = 1.0;
	uint32_t k = 0;

	do {
		k++;
		p *= gen_unif(r);
	} while (p > l && k < 1000);
	return k - 1;
}

/* Index into a cumulative weight array cdf[0..n) (non-decreasing, cdf[n-1]
 * the total): the first i with cdf[i] > u * total. */
static inline uint32_t gen_pick_cdf(struct gen_rng *r, const double *cdf, uint32_t n)
{
	double u = gen_unif(r) * cdf[n - 1];
	uint32_t lo = 0, hi = n - 1;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

#endif
