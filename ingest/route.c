/*
 * route.c - session -> shard table with idle TTL (see route.h).
 * Linked into weft-ingest and tests/test_routing.
 */
#include "ingest/route.h"
#include "lib/proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/util.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/*
 * A generation's table: anonymous memory in huge pages where the kernel
 * gives them (a lookup is a random probe into hundreds of MiB: 4 KiB pages
 * would cost a TLB miss per request), faulted in whole now. Left to fault
 * on use, a new session's first probe and insert took a read and a write
 * fault (1.45 faults a request, 21-23 % of a fresh ingest's samples under
 * EVENT load), and a 2 MiB page zeroes on its first write. The memory is
 * what steady state holds anyway. Advice only: on an old kernel pages
 * fault in on use.
 */
static struct wf_route_entry *table_new(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, bytes, MADV_HUGEPAGE);
	(void)madvise(p, bytes, MADV_POPULATE_WRITE);
	return p;
}

static size_t table_bytes(const struct wf_route *r)
{
	return ((size_t)r->mask + 1) * sizeof(struct wf_route_entry);
}

int wf_route_init(struct wf_route *r, uint32_t nshards, uint32_t max_entries, uint64_t ttl_ms, uint64_t now_ms)
{
	uint32_t slots = 64;

	memset(r, 0, sizeof(*r));
	while (slots / 2 < max_entries)
		slots *= 2;
	r->mask = slots - 1;
	r->cur = table_new(table_bytes(r));
	r->prev = table_new(table_bytes(r));
	if (!r->cur || !r->prev) {
		wf_route_fini(r);
		return -ENOMEM;
	}
	r->max_entries = slots / 2;
	r->gen = 1; /* prev's, 0, holds only zeroed (empty) slots */
	r->nshards = nshards;
	r->ttl_ms = ttl_ms;
	r->rotated_ms = now_ms;
	return 0;
}

void wf_route_fini(struct wf_route *r)
{
	if (r->cur)
		munmap(r->cur, table_bytes(r));
	if (r->prev)
		munmap(r->prev, table_bytes(r));
	r->cur = r->prev = NULL;
}

static void rotate(struct wf_route *r, uint64_t now_ms)
{
	struct wf_route_entry *t = r->prev;

	r->prev = r->cur;
	r->nprev = r->ncur;
	/* The dropped table becomes the current one as it is: its entries are
	 * of older generations, empty to the new one. Only when the number
	 * wraps could an entry 65,536 rotations old read as current: then
	 * both tables are cleared (the pages stay resident). */
	if (++r->gen == 0) {
		memset(t, 0, table_bytes(r));
		memset(r->prev, 0, table_bytes(r));
		r->nprev = 0;
		r->gen = 1;
	}
	r->cur = t;
	r->ncur = 0;
	r->rotated_ms = now_ms;
	r->forgets++;
}

/* The slot of key in table t of generation gen: its entry, or the empty
 * slot (key 0, or another generation's) where it would go. */
static struct wf_route_entry *probe(struct wf_route_entry *t, uint32_t mask, uint64_t key, uint16_t gen)
{
	uint32_t i = (uint32_t)(key >> 17) & mask;

	while (t[i].key && t[i].gen == gen && t[i].key != key)
		i = (i + 1) & mask;
	return &t[i];
}

static int live(const struct wf_route_entry *e, uint16_t gen)
{
	return e->key && e->gen == gen;
}

static int fresh(const struct wf_route *r, const struct wf_route_entry *e, uint16_t gen, uint64_t now_ms)
{
	return live(e, gen) && (uint64_t)(now_ms / 1000) - e->last_s <= r->ttl_ms / 1000;
}

/* ver 0: a new version. Returns the entry. */
static struct wf_route_entry *put(struct wf_route *r, uint64_t key, uint32_t shard, uint64_t ver, int evented,
				  uint64_t now_ms)
{
	struct wf_route_entry *e;

	if (r->ncur >= r->max_entries)
		rotate(r, now_ms);
	e = probe(r->cur, r->mask, key, r->gen);
	if (!live(e, r->gen)) {
		e->key = key;
		e->gen = r->gen;
		r->ncur++;
	}
	e->shard = (uint8_t)shard;
	e->evented = (uint8_t)evented;
	e->last_s = (uint32_t)(now_ms / 1000);
	e->ver = ver ? ver : ++r->ver_next;
	return e;
}

uint32_t wf_route_lookup(struct wf_route *r, const char *session, size_t slen, const char *user, size_t ulen,
			 uint64_t now_ms, int event, struct wf_route_hit *hit)
{
	uint64_t key = wf_hash64(session, slen) | 1;
	int by_user = user && ulen && !wf_user_is_anon(user, ulen);
	struct wf_route_entry *e;
	int pinned = 0;

	if (now_ms - r->rotated_ms >= r->ttl_ms / 2)
		rotate(r, now_ms);
	e = probe(r->cur, r->mask, key, r->gen);
	if (fresh(r, e, r->gen, now_ms)) {
		e->last_s = (uint32_t)(now_ms / 1000);
	} else {
		uint16_t g = r->gen;
		if (!live(e, g)) {
			g = (uint16_t)(r->gen - 1);
			e = probe(r->prev, r->mask, key, g);
		}
		if (fresh(r, e, g, now_ms)) {
			e = put(r, key, e->shard, e->ver, e->evented, now_ms); /* used again: keep it */
		} else {
			/* New, or idle past the TTL: a new visit, pinned afresh.
			 * The events of an idle entry are forgotten like a dropped
			 * generation's. */
			if (live(e, g) && e->evented)
				r->forgets++;
			e = put(r, key,
				by_user ? wf_shard_of(user, ulen, r->nshards) : wf_shard_of(session, slen, r->nshards), 0,
				0, now_ms);
			pinned = 1;
		}
	}
	/* A session no EVENT was routed for has no context to keep: it goes
	 * where its user's list is owned (in that ranker's arena; the others
	 * read it from the mapped file), until its first EVENT pins it. */
	if (!pinned && !e->evented && by_user)
		e->shard = (uint8_t)wf_shard_of(user, ulen, r->nshards);
	if (event) {
		e->ver = ++r->ver_next;
		e->evented = 1;
	}
	if (hit) {
		hit->key = key;
		hit->ver = e->ver;
		hit->pinned = pinned;
		hit->evented = e->evented;
	}
	return e->shard;
}

uint32_t wf_route_shard(struct wf_route *r, const char *session, size_t slen, const char *user, size_t ulen,
			uint64_t now_ms)
{
	return wf_route_lookup(r, session, slen, user, ulen, now_ms, 0, NULL);
}

void wf_route_pin(struct wf_route *r, const char *session, size_t slen, uint32_t shard, uint64_t now_ms)
{
	if (shard < r->nshards)
		put(r, wf_hash64(session, slen) | 1, shard, 0, 1, now_ms);
}

uint64_t wf_route_count(const struct wf_route *r)
{
	return (uint64_t)r->ncur + r->nprev;
}
