/*
 * route.h - weft-ingest's session table: which shard a session lives on.
 *
 * A session is pinned at its first request: to the shard of its user when
 * the user is known then, else to the shard of the session id. Until an
 * EVENT is routed for it, a request naming a user moves it to that user's
 * shard (it has no context yet, and that shard holds the user's list in
 * its arena; the others read it from the mapped snapshot file); from its first EVENT on, every request of the session goes to its
 * shard, so a shopper who logs in halfway keeps their context. Entries
 * idle longer than the TTL are forgotten.
 *
 * Two generations of open-addressing tables: lookups check the current
 * and then the previous one (moving a hit forward); every TTL/2 (or when
 * the current one fills) the previous generation is dropped whole, by
 * numbering the generations: an entry another generation wrote reads as
 * empty, so the dropped table is reused as it is (a memset of 200 MB
 * stalled every client for 20-40 ms; it is done only when the 16-bit
 * number wraps, every 65,536 rotations). So there is no per-entry deletion, memory is bounded by 2 x max_entries, and an
 * entry is kept between TTL/2 and TTL after its last use, and an entry found
 * idle for more than the TTL counts as absent. Sessions are keyed
 * by a 64-bit hash of their id (a collision among millions of live
 * sessions has odds below one in a million; its effect would be one
 * session routed by the other's pin).
 *
 * Owner: weft-ingest's context (one thread). Never logs.
 */
#ifndef WF_ROUTE_H
#define WF_ROUTE_H

#include <stddef.h>
#include <stdint.h>

struct wf_route_entry {
	uint64_t key;    /* wf_hash64(session id) | 1; 0 = empty */
	uint8_t shard;   /* < WF_SHM_MAX_SHARDS */
	uint8_t evented; /* 1 once an EVENT was routed for it (or it came from the journal) */
	uint16_t gen;    /* the generation that wrote it: any other reads as empty */
	uint32_t last_s; /* wall-clock seconds of the last use */
	uint64_t ver;    /* version: new on creation and on every EVENT (front table) */
};

struct wf_route {
	struct wf_route_entry *cur, *prev;
	uint32_t mask;        /* slots - 1 per generation */
	uint32_t ncur, nprev;
	uint32_t max_entries; /* per generation: rotate when reached */
	uint16_t gen;         /* cur's; prev's is gen - 1 */
	uint32_t nshards;
	uint64_t ttl_ms;
	uint64_t rotated_ms;
	uint64_t ver_next;    /* last version handed out (never reused) */
	uint64_t forgets;     /* times entries were forgotten (a generation dropped, an idle one re-pinned) */
};

/* What wf_route_lookup() found out about a session besides its shard. */
struct wf_route_hit {
	uint64_t key; /* wf_hash64(session id) | 1, as the table keys it */
	uint64_t ver; /* changes whenever the session is pinned afresh and on every EVENT routed */
	int pinned;   /* 1: this call pinned it afresh (nothing was published for ver yet) */
	/* 0: no EVENT was routed for the session since this entry was pinned
	 * (and it was not rebuilt from the journal). Entries forgotten before
	 * (r->forgets moved) may have had events: the caller must know those
	 * have reached their ranker before treating the session as quiet. */
	int evented;
};

/* max_entries per generation (rounded up to a power of two / 2). 0 or -ENOMEM. */
int wf_route_init(struct wf_route *r, uint32_t nshards, uint32_t max_entries, uint64_t ttl_ms, uint64_t now_ms);
void wf_route_fini(struct wf_route *r);

/* The shard of session (pinning it now if new); user may be NULL or "-". */
uint32_t wf_route_shard(struct wf_route *r, const char *session, size_t slen, const char *user, size_t ulen,
			uint64_t now_ms);

/* The same, and what *hit says (see struct wf_route_hit); event=1 for an
 * EVENT being routed, so equal versions mean no event in between. */
uint32_t wf_route_lookup(struct wf_route *r, const char *session, size_t slen, const char *user, size_t ulen,
			 uint64_t now_ms, int event, struct wf_route_hit *hit);

/* Pin a session to a shard (rebuilding the table from the journal): it
 * counts as evented. */
void wf_route_pin(struct wf_route *r, const char *session, size_t slen, uint32_t shard, uint64_t now_ms);

/* Sessions remembered now (both generations). */
uint64_t wf_route_count(const struct wf_route *r);

#endif
