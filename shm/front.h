/*
 * front.h - the key of a front-table entry (see struct wf_front_entry in
 * layout.h): the RECS arguments after the command name, each as one length
 * byte and its bytes. weft-ranker (writer) and weft-ingest (reader) build
 * it the same way from their own views of the request.
 */
#ifndef WF_FRONT_H
#define WF_FRONT_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "shm/layout.h"

/* Append one argument to out[*pos..]. 0, or -1 when it does not fit (the
 * request is then not cached). */
static inline int wf_front_args_add(char *out, uint32_t *pos, const char *p, uint32_t len)
{
	if (len > 255 || *pos + 1 + len > WF_FRONT_ARGS)
		return -1;
	out[*pos] = (char)len;
	memcpy(out + *pos + 1, p, len);
	*pos += 1 + len;
	return 0;
}

/* Quiet key (see layout.h): the RECS arguments with the session emptied. */
static inline int wf_front_args_quiet(char *out, uint32_t *pos)
{
	return wf_front_args_add(out, pos, "", 0);
}

/* The live-session filter's counter for a session id's wf_hash64 (bits
 * above the low ones, which ingest's route keys force to 1). */
static inline _Atomic uint8_t *wf_front_live(struct wf_front *f, uint64_t h)
{
	return &f->live[(h >> 8) & (WF_FRONT_LIVE - 1)];
}

/* Writer (the shard's ranker): a session with hash h was created (+1) or
 * freed (-1). Saturated counters stay put. */
static inline void wf_front_live_add(struct wf_front *f, uint64_t h, int d)
{
	_Atomic uint8_t *c = wf_front_live(f, h);
	/* relaxed: this ranker is the only writer; ingest reads it after A2 on
	 * the request ring, which the ranker's R2 (after this store) pairs with. */
	uint8_t v = atomic_load_explicit(c, memory_order_relaxed);

	if (v == 255 || (d < 0 && v == 0))
		return;
	atomic_store_explicit(c, (uint8_t)(v + d), memory_order_relaxed);
}

/*
 * Writer side of an entry's seqlock, robust to a writer that died mid-write
 * (seq left odd): begin keeps an odd seq odd, end makes it even. Readers
 * (wf_front_read_begin) never wait: an odd seq is a miss.
 */
static inline uint32_t wf_front_write_begin(struct wf_front_entry *e)
{
	/* relaxed load: one writer per table (its shard's ranker). */
	uint32_t s = atomic_load_explicit(&e->lock.seq, memory_order_relaxed) | 1u;

	atomic_store_explicit(&e->lock.seq, s, memory_order_relaxed);
	/* F3: orders the odd seq before the data stores that follow; pairs
	 * with the acquire fence F4 in wf_front_read_retry(). */
	atomic_thread_fence(memory_order_release);
	return s;
}

static inline void wf_front_write_end(struct wf_front_entry *e, uint32_t s)
{
	/* R10: the data stores happen before the even seq; pairs with A10 in
	 * wf_front_read_begin(). */
	atomic_store_explicit(&e->lock.seq, s + 1, memory_order_release);
}

/* Reader: the seq to pass to wf_front_read_retry(), or 1 (odd: miss). */
static inline uint32_t wf_front_read_begin(const struct wf_front_entry *e)
{
	/* A10: pairs with R10 in wf_front_write_end(). */
	return atomic_load_explicit(&((struct wf_front_entry *)e)->lock.seq, memory_order_acquire);
}

/* Nonzero if the entry changed while it was copied (then: a miss). */
static inline int wf_front_read_retry(const struct wf_front_entry *e, uint32_t s)
{
	/* F4: the data loads before complete before the seq re-load; pairs
	 * with F3 in wf_front_write_begin(). */
	atomic_thread_fence(memory_order_acquire);
	/* relaxed: ordered by F4. */
	return atomic_load_explicit(&((struct wf_front_entry *)e)->lock.seq, memory_order_relaxed) != s;
}

#endif
