/*
 * shm.h - create or attach weft's shared-memory segment by name, and find
 * its regions.
 *
 * Any weft daemon may create the segment (the first one to start); the
 * others attach. Creation builds the segment under a temporary name and
 * links it into place, so an attacher never sees a half-written header.
 *
 * Callers: every weft process. Never logs.
 */
#ifndef WF_SHM_H
#define WF_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "shm/layout.h"

struct wf_shm_config {
	uint32_t nshards;        /* 1..WF_SHM_MAX_SHARDS */
	uint32_t ring_capacity;  /* bytes per ring, power of two (default 4 MiB) */
	uint32_t stock_capacity; /* stock slots, power of two (default 256 Ki) */
};

/* Process-local handle on the mapped segment. Owner: the caller. */
struct wf_shm {
	uint8_t *base;
	uint64_t size;
	struct wf_shm_hdr *hdr;
	struct wf_ctl *ctl;
	struct wf_stock *stock;
	struct wf_reqlat *reqlat; /* weft-ingest's request latency histograms */
	char name[256];
};

/*
 * Create segment `name` (a /dev/shm file name without slashes, e.g.
 * "weft.demo"). Fails -EEXIST if it exists, -EINVAL on a bad config or name,
 * -errno from the system. On success *ret is attached and initialised.
 */
int wf_shm_create(const char *name, const struct wf_shm_config *cfg, struct wf_shm **ret);

/* Attach to an existing segment. -ENOENT if absent, -EPROTO if its magic,
 * layout version or size do not match this build. */
int wf_shm_attach(const char *name, struct wf_shm **ret);

/*
 * Attach read-only (PROT_READ): for readers that only display (weftctl
 * metrics, top, latency, export; weft-observe). Needs only read permission
 * on the segment (the daemons create it 0660 under UMask=0027: 0640, so
 * group weft may read it, and only weft may write). Every store through
 * the handle faults (SIGSEGV): use only loads (relaxed atomics, seqlock
 * reads). Errors as wf_shm_attach(); -EACCES without read permission.
 */
int wf_shm_attach_ro(const char *name, struct wf_shm **ret);

/* Attach, or create with cfg if absent (racing creators are fine). If the
 * segment exists with a different shard count, -ESTALE. */
int wf_shm_open(const char *name, const struct wf_shm_config *cfg, struct wf_shm **ret);

/* Unmap and free the handle. Accepts NULL. */
void wf_shm_detach(struct wf_shm *shm);

/* Remove the name (mappings stay valid). 0 or -errno. */
int wf_shm_unlink(const char *name);

/* Region by name; NULL if absent. *ret_size gets its size if non-NULL. */
void *wf_shm_region(const struct wf_shm *shm, const char *name, uint64_t *ret_size);

/* Bounds-checked offset -> pointer; NULL if [off, off+len) is outside. */
void *wf_shm_ptr(const struct wf_shm *shm, uint64_t off, uint64_t len);

static inline uint32_t wf_shm_nshards(const struct wf_shm *shm)
{
	return shm->hdr->nshards;
}

/* Shard i's control block and rings (i < nshards; NULL otherwise). */
struct wf_shard_ctl *wf_shm_shard(const struct wf_shm *shm, uint32_t i);
struct wf_ring *wf_shm_req_ring(const struct wf_shm *shm, uint32_t i);
struct wf_ring *wf_shm_rep_ring(const struct wf_shm *shm, uint32_t i);

/* Shard i's front table (see layout.h); NULL if i >= nshards. */
struct wf_front *wf_shm_front(const struct wf_shm *shm, uint32_t i);

/* Seqlock helpers (see layout.h). */
void wf_seq_write_begin(struct wf_seqlock *l);
void wf_seq_write_end(struct wf_seqlock *l);
uint32_t wf_seq_read_begin(const struct wf_seqlock *l);
/* Without waiting: the seq to pass to wf_seq_read_retry, or an odd one
 * while a write is under way (the caller then does without). */
uint32_t wf_seq_read_try(const struct wf_seqlock *l);
/* 1 if the lock's last writer died mid-write (readers wait until the next
 * complete write). For the one writer to ask when it starts. */
int wf_seq_abandoned(const struct wf_seqlock *l);
int wf_seq_read_retry(const struct wf_seqlock *l, uint32_t seq);
/* Copy n bytes (multiple of 4, 4-aligned) with relaxed atomic word accesses. */
void wf_seq_copy(void *dst, const void *src, size_t n);
/* The writer's side of wf_seq_copy: relaxed word stores (n a multiple of 4). */
void wf_seq_store(void *dst, const void *src, size_t n);

/* Weights: read one page x visitor pair, consistent (retries the seqlock). */
void wf_ctl_weights_get(struct wf_ctl *ctl, int page, int visitor, float *ret_batch, float *ret_session);
/* Writer (weft-admin only). */
void wf_ctl_weights_set(struct wf_ctl *ctl, int page, int visitor, float batch, float session);
/* The defaults from the seeds: returning 0.4/0.6, new 0.1/0.9, email batch only. */
void wf_ctl_weights_default(struct wf_ctl *ctl);

/* Snapshot refs: read both under the seqlock. */
void wf_ctl_snap_get(struct wf_ctl *ctl, struct wf_snap_ref *ret_cur, struct wf_snap_ref *ret_prev);
/* Writer (weft-admin only): make `cur` current and `prev` previous, then
 * publish snap_cur_gen (R3). */
void wf_ctl_snap_set(struct wf_ctl *ctl, const struct wf_snap_ref *cur, const struct wf_snap_ref *prev);

/*
 * Stock (writer: weft-ingest only). size NULL/"" = the item has no sizes.
 * Returns 0, -ENOSPC when the table or the item's size list is full,
 * -EINVAL on a bad size name.
 */
int wf_stock_set(struct wf_stock *st, const char *item, size_t item_len, const char *size, size_t size_len,
		 int32_t qty);

/* Readers (any process). */
enum { WF_STOCK_UNKNOWN = -1, WF_STOCK_OUT = 0, WF_STOCK_IN = 1 };
/* Item-level: UNKNOWN if never stocked (treated as available), OUT if every
 * size is sold out, IN otherwise. With size given: that size's state. */
int wf_stock_state(const struct wf_stock *st, uint64_t item_key, const char *size, size_t size_len);
/* May the item be recommended in size (size_len > 0; nsizes: the sizes
 * the snapshot says it has, 0 unknown)? Live stock removes only what it
 * says is out: never stocked live, the snapshot's word (not sold out);
 * a size told live, its quantity; a size-less live item, its quantity; a
 * size never told live for an item told other sizes, the snapshot's word,
 * unless the live sizes cover all nsizes (then it has no such size). */
int wf_stock_size_ok(const struct wf_stock *st, uint64_t item_key, int snap_sold_out, uint32_t nsizes,
		     const char *size, size_t size_len);
/* May the item be recommended? Without a size: its live item-level state
 * (out when every size told live is out), or, never stocked live, the
 * snapshot's word; with one, wf_stock_size_ok(). The one rule for the
 * rankers' filter and weft-ingest's front answers (item-level only),
 * which must agree. */
static inline int wf_stock_ok(const struct wf_stock *st, uint64_t item_key, int snap_sold_out, uint32_t nsizes,
			      const char *size, size_t size_len)
{
	int s;

	if (size_len)
		return wf_stock_size_ok(st, item_key, snap_sold_out, nsizes, size, size_len);
	s = wf_stock_state(st, item_key, NULL, 0);
	if (s == WF_STOCK_UNKNOWN)
		return !snap_sold_out;
	return s == WF_STOCK_IN;
}
/* Start loading the slot wf_stock_state(st, item_key, ...) will probe
 * first, so a caller about to check many items overlaps their cache
 * misses. No effect on results; any process may call it. */
void wf_stock_prefetch(const struct wf_stock *st, uint64_t item_key);
/* The key wf_stock_state() expects for an item id. */
uint64_t wf_stock_key(const char *item, size_t len);
/* Read an item's sizes into out (up to max); returns count, or -ENOENT. */
struct wf_stock_view {
	char name[WF_STOCK_SIZE_NAME + 1];
	int32_t qty;
};
int wf_stock_read(const struct wf_stock *st, const char *item, size_t item_len, struct wf_stock_view *out,
		  uint32_t max);

#endif
