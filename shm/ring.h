/*
 * ring.h - single-producer single-consumer byte ring in shared memory.
 *
 * One request ring (weft-ingest -> weft-ranker@i) and one reply ring
 * (weft-ranker@i -> weft-ingest) per shard. Records are variable length,
 * 8-byte aligned, and never wrap: a record that does not fit before the end
 * of the buffer is preceded by a PAD record that fills the rest.
 *
 *   record = struct wf_ring_rec (len, kind) + payload, padded to 8 bytes
 *
 * Indexes are free-running uint32_t byte positions, masked on access, so
 * capacity is a power of two of at most 2^30 bytes.
 *
 * Shared state (struct wf_ring, in shm):
 *   head  - written only by the producer (R1: store-release in
 *           wf_ring_prod_commit); read by the consumer (A1: load-acquire in
 *           wf_ring_pop). Everything written before R1 is visible after A1.
 *   tail  - written only by the consumer (R2: store-release in
 *           wf_ring_cons_release); read by the producer (A2: load-acquire in
 *           wf_ring_reserve). The consumer's reads of released records
 *           happen before the producer overwrites them.
 *   data  - written by the producer between reserve and commit, read by the
 *           consumer between pop and release. Never both on the same bytes.
 *
 * Private cursors live in process-local handles (struct wf_ring_prod /
 * wf_ring_cons), not in shm, so a restarted process resumes from the
 * committed head / released tail: uncommitted writes and unreleased reads of
 * a dead process are simply redone.
 *
 * Batching: reserve many, commit once; pop many, release once. One
 * store-release per batch, and the other side's index is re-read only when
 * the cached copy says the ring is full / empty.
 */
#ifndef WF_RING_H
#define WF_RING_H

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define WF_RING_ALIGN 8u
#define WF_RING_KIND_PAD 0u /* filler to the end of the buffer; never returned */

struct wf_ring {
	/* Producer's line. head: writer producer (R1), reader consumer (A1). */
	alignas(64) _Atomic uint32_t head;
	/* Consumer's line. tail: writer consumer (R2), reader producer (A2). */
	alignas(64) _Atomic uint32_t tail;
	/* Read-only after wf_ring_init(). */
	alignas(64) uint32_t capacity; /* bytes, power of two */
	uint32_t mask;
	uint64_t magic;
	/* Records follow, 64-byte aligned. */
	alignas(64) uint8_t data[];
};
_Static_assert(offsetof(struct wf_ring, tail) == 64, "head and tail on separate cache lines");
_Static_assert(offsetof(struct wf_ring, data) == 192, "ring header layout");

struct wf_ring_rec {
	uint32_t len;  /* payload bytes, excluding this header and padding */
	uint32_t kind; /* WF_RING_KIND_PAD or a caller-defined kind > 0 */
};
_Static_assert(sizeof(struct wf_ring_rec) == 8, "ring record header");

#define WF_RING_MAGIC 0x474e495254464557ull /* "WEFTRING" */

/* Bytes a ring of the given capacity occupies in shm. */
static inline uint64_t wf_ring_footprint(uint32_t capacity)
{
	return sizeof(struct wf_ring) + capacity;
}

/* Largest payload one record may carry: a quarter of the ring, so a full
 * ring always drains to room for the biggest record. */
static inline uint32_t wf_ring_max_payload(const struct wf_ring *r)
{
	return r->capacity / 4 - (uint32_t)sizeof(struct wf_ring_rec);
}

/*
 * Initialise a ring in zeroed shm memory. capacity: power of two, 4 KiB to
 * 1 GiB. Only the segment creator calls this, before anyone attaches.
 * Returns 0 or -EINVAL.
 */
int wf_ring_init(struct wf_ring *r, uint32_t capacity);

/* Producer handle: process-local. */
struct wf_ring_prod {
	struct wf_ring *r;
	uint32_t head;        /* next byte to write (uncommitted past r->head) */
	uint32_t cached_tail; /* last tail seen (A2) */
	uint32_t mask, capacity;
};

/* Consumer handle: process-local. */
struct wf_ring_cons {
	struct wf_ring *r;
	uint32_t tail;        /* next byte to read (unreleased past r->tail) */
	uint32_t cached_head; /* last head seen (A1) */
	uint32_t mask, capacity;
};

/* Bind a handle to a ring, resuming from the committed head / released
 * tail. Call once per process start, in the ring's one producer / consumer. */
void wf_ring_prod_attach(struct wf_ring_prod *p, struct wf_ring *r);
void wf_ring_cons_attach(struct wf_ring_cons *c, struct wf_ring *r);

static inline uint32_t wf_ring__recsize(uint32_t len)
{
	return (uint32_t)((sizeof(struct wf_ring_rec) + len + (WF_RING_ALIGN - 1)) & ~(WF_RING_ALIGN - 1));
}

/*
 * Reserve a record of len payload bytes and kind (> 0). *ret gets a pointer
 * to the payload, which the caller fills before the next
 * wf_ring_prod_commit(); written only on success.
 * Returns 0; -EAGAIN when the ring lacks room now (retry after the consumer
 * releases); -EMSGSIZE when len > wf_ring_max_payload() (never fits).
 */
static inline int wf_ring_reserve(struct wf_ring_prod *p, uint32_t len, uint32_t kind, void **ret)
{
	uint32_t need = wf_ring__recsize(len);
	uint32_t off = p->head & p->mask;
	uint32_t pad = (off + need > p->capacity) ? p->capacity - off : 0;
	uint32_t total = pad + need;
	struct wf_ring_rec *rec;

	if (len > p->capacity / 4 - sizeof(struct wf_ring_rec))
		return -EMSGSIZE;
	if (p->capacity - (p->head - p->cached_tail) < total) {
		/* A2: pairs with R2 in wf_ring_cons_release(); the consumer is
		 * done with every byte before the tail we load. */
		p->cached_tail = atomic_load_explicit(&p->r->tail, memory_order_acquire);
		if (p->capacity - (p->head - p->cached_tail) < total)
			return -EAGAIN;
	}
	if (pad) {
		rec = (struct wf_ring_rec *)(p->r->data + off);
		rec->len = pad - (uint32_t)sizeof(*rec);
		rec->kind = WF_RING_KIND_PAD;
		p->head += pad;
		off = 0;
	}
	rec = (struct wf_ring_rec *)(p->r->data + off);
	rec->len = len;
	rec->kind = kind;
	p->head += need;
	*ret = rec + 1;
	return 0;
}

/* Publish every record reserved since the last commit. */
static inline void wf_ring_prod_commit(struct wf_ring_prod *p)
{
	/* R1: pairs with A1 in wf_ring_pop(); record contents are visible to
	 * the consumer once it sees this head. */
	atomic_store_explicit(&p->r->head, p->head, memory_order_release);
}

/* True if the producer has reserved records not yet committed. */
static inline int wf_ring_prod_pending(const struct wf_ring_prod *p)
{
	/* relaxed: head is written only by this process. */
	return atomic_load_explicit(&p->r->head, memory_order_relaxed) != p->head;
}

/*
 * Pop the next record. Returns a pointer to its payload and sets *len and
 * *kind, or NULL when the ring is empty (-EAGAIN case). The payload stays
 * valid until wf_ring_cons_release().
 */
static inline const void *wf_ring_pop(struct wf_ring_cons *c, uint32_t *len, uint32_t *kind)
{
	for (;;) {
		const struct wf_ring_rec *rec;

		if (c->tail == c->cached_head) {
			/* A1: pairs with R1 in wf_ring_prod_commit(). */
			c->cached_head = atomic_load_explicit(&c->r->head, memory_order_acquire);
			if (c->tail == c->cached_head)
				return NULL;
		}
		rec = (const struct wf_ring_rec *)(c->r->data + (c->tail & c->mask));
		c->tail += wf_ring__recsize(rec->len);
		if (rec->kind == WF_RING_KIND_PAD)
			continue;
		*len = rec->len;
		*kind = rec->kind;
		return rec + 1;
	}
}

/* Give every popped record's space back to the producer. */
static inline void wf_ring_cons_release(struct wf_ring_cons *c)
{
	/* R2: pairs with A2 in wf_ring_reserve(). */
	atomic_store_explicit(&c->r->tail, c->tail, memory_order_release);
}

/* True if a record is waiting (does not pop it). */
static inline int wf_ring_readable(struct wf_ring_cons *c)
{
	if (c->tail != c->cached_head)
		return 1;
	/* A1 again: same pairing as in wf_ring_pop(). */
	c->cached_head = atomic_load_explicit(&c->r->head, memory_order_acquire);
	return c->tail != c->cached_head;
}

/* The producer's position after every record reserved so far: a mark for
 * wf_ring_prod_released(). */
static inline uint32_t wf_ring_prod_pos(const struct wf_ring_prod *p)
{
	return p->head;
}

/* True once the consumer has released every record reserved before mark,
 * so whatever it did with them before releasing is visible to the caller. */
static inline int wf_ring_prod_released(const struct wf_ring_prod *p, uint32_t mark)
{
	/* A2 again: pairs with R2 in wf_ring_cons_release(). */
	return (int32_t)(atomic_load_explicit(&p->r->tail, memory_order_acquire) - mark) >= 0;
}

/* Bytes committed and not yet released (for stats and backpressure). */
static inline uint32_t wf_ring_used(const struct wf_ring *r)
{
	/* relaxed: an estimate for statistics; no data is read through it. */
	return atomic_load_explicit(&r->head, memory_order_relaxed) -
	       atomic_load_explicit(&r->tail, memory_order_relaxed);
}

#endif
