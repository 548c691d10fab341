/*
 * rank_int.h - what libweftrank's two files share (session.c: the session
 * model; rank.c: the scoring); not installed, included only in lib/rank/.
 */
#ifndef WF_RANK_INT_H
#define WF_RANK_INT_H

#include <stdint.h>

#include "lib/rank/rank.h"

/* Ring slot of the i-th newest recent entry (i < recent_count). */
static inline uint32_t recent_slot(const struct wf_rank_session *s, uint32_t i)
{
	return (s->recent_head + WF_RANK_RECENT - 1 - i) % WF_RANK_RECENT;
}

/*
 * What session s says to one query, into w: its evidence per category
 * and brand (rows w->ev_key/ev_val: categories, then brands from w->ncat
 * on, to w->nev; no row of value +0; and by index in w->ev_direct when
 * w->direct) and per price band (w->band_ev), and its confidence, once
 * per query, so that scoring only looks values up. Defined in
 * session.c.
 */
void rank_session_evidence(struct wf_rank_scratch *w, const struct wf_snap *snap, const struct wf_rank_session *s,
			   const struct wf_rank_params *p);

/* ---- the pool (pool.c); its hash and insertion, inlined into every loop that adds ---- */


/* The pool hash: 2 * WF_RANK_POOL slots, each item << 32 | pool index + 1
 * (0: empty), so a probe compares its item without a second load; slots
 * from the top bits of a multiplicative hash (the low bits of the product
 * depend on the item's low bits only). */
#define POOL_SLOT_BITS 12u
_Static_assert(1u << POOL_SLOT_BITS == WF_RANK_POOL * 2, "the pool hash has 2 * WF_RANK_POOL slots");
_Static_assert(POOL_SLOT_BITS <= 16, "a slot's index fits wf_rank_scratch.slotix");

static inline uint32_t pool_hash(uint32_t item)
{
	return (item * 2654435761u) >> (32 - POOL_SLOT_BITS);
}

/* Entry n's sums (neighbours, transitions, repeat) to +0: one store. */
static inline __attribute__((always_inline)) void acc_clear(struct wf_rank_scratch *w, uint32_t n)
{
	typedef float v4f_a __attribute__((vector_size(16)));
	*(v4f_a *)w->acc[n] = (v4f_a){ 0, 0, 0, 0 };
}

/* Add item to the pool (unless there, or the pool is full: UINT32_MAX);
 * returns its index. The caller keeps the entry count in *pn, a local,
 * while it adds, and stores it in w->n when done: in w->n, each add would
 * wait for the previous one's store of it (the entry arrays might alias
 * it, as far as the compiler knows). */
static inline __attribute__((always_inline)) uint32_t pool_add(struct wf_rank_scratch *w, uint32_t *pn,
								uint32_t item)
{
	uint32_t mask = WF_RANK_POOL * 2 - 1, h = pool_hash(item), n = *pn;
	uint64_t v = w->slot[h];

	/* Most items settle on their first slot, new or already there, and
	 * which of the two is a coin toss for the neighbour and popular
	 * lists: decided without a branch. A new entry is written at n
	 * either way (n < cap <= WF_RANK_POOL: past the pool's end, unread,
	 * when the item was there) and n moves only when it is new. */
	uint32_t fresh = v == 0, there = (uint32_t)(v >> 32) == item;
	if (__builtin_expect((fresh | there) & (n < w->cap), 1)) {
		/* Masks, not ?: (GCC made a branch of that, mispredicted on
		 * one add in two): keep = all ones when the item was there. */
		uint64_t keep = (uint64_t)fresh - 1;
		uint32_t k = (uint32_t)((n & ~keep) | (((uint32_t)v - 1) & keep));
		w->item[n] = item;
		w->slotix[n] = (uint16_t)h;
		w->batch[n] = -1.0f;
		acc_clear(w, n);
		w->compl[n] = 0;
		w->slot[h] = (((uint64_t)item << 32 | (n + 1)) & ~keep) | (v & keep);
		*pn = n + fresh;
		return k;
	}
	for (;; h = (h + 1) & mask) {
		v = w->slot[h];
		if (v == 0) {
			if (n >= w->cap)
				return UINT32_MAX;
			w->slot[h] = (uint64_t)item << 32 | (n + 1);
			w->item[n] = item;
			w->slotix[n] = (uint16_t)h;
			w->batch[n] = -1.0f;
			acc_clear(w, n);
			w->compl[n] = 0;
			*pn = n + 1;
			return n;
		}
		if ((uint32_t)(v >> 32) == item)
			return (uint32_t)v - 1;
	}
}

void rank_pool_reset(struct wf_rank_scratch *w, uint32_t cap);

void rank_pool_add_list(const struct wf_snap *snap, const struct wf_rank_query *q, struct wf_rank_scratch *w);

void rank_pool_add_near(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_session *s,
			int64_t anchor, struct wf_rank_scratch *w);

void rank_pool_add_prior(const struct wf_snap *snap, const struct wf_rank_params *p, struct wf_rank_scratch *w);

void rank_pool_add_session(const struct wf_snap *snap, const struct wf_rank_params *p,
			     const struct wf_rank_session *s, int64_t anchor, struct wf_rank_scratch *w);

void rank_build_pool(const struct wf_snap *snap, const struct wf_rank_params *p, const struct wf_rank_query *q,
		       struct wf_rank_scratch *w, uint32_t cap, int prior);

/* ---- selection (select.c) ---- */

/* An entry's place in the order as one integer: higher score first, then
 * lower item index (+ 0.0f makes -0 +0, which compares equal to it). */
static inline uint64_t order_key(float score, uint32_t item)
{
	union {
		float f;
		uint32_t u;
	} v = { .f = score + 0.0f };
	uint32_t u = (v.u & 0x80000000u) ? ~v.u : (v.u | 0x80000000u);

	return ((uint64_t)u << 32) | (uint32_t)~item;
}

uint32_t rank_select_top(struct wf_rank_scratch *w, uint32_t n, uint32_t m, int *ret_more);

#endif
