/*
 * front.h - the key of a front-table entry (see struct wf_front_entry in
 * layout.h): the RECS arguments after the command name, each as one length
 * byte and its bytes (the quiet key: the session's emptied). weft-ranker
 * (writer) and weft-ingest (reader) build it the same way from their own
 * views of the request. The item records that follow the arguments in the
 * entry's data (the writer's and the reader's sides). And the shard's
 * live-session filter (layout.h).
 */
#ifndef WF_FRONT_H
#define WF_FRONT_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "shm/layout.h"
#include "shm/shm.h"

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

/* Writer: append one item record (see struct wf_front_entry) to
 * data[*pos..]. 0, or -1 when it does not fit (the entry then stops
 * there, not complete). */
static inline int wf_front_item_add(char *data, uint32_t *pos, uint64_t stock_key, int snap_sold_out,
				    const char *id, uint32_t len)
{
	uint64_t w = snap_sold_out ? stock_key & ~1ull : stock_key | 1ull;

	if (len > 255 || *pos + WF_FRONT_REC + len > WF_FRONT_DATA)
		return -1;
	memcpy(data + *pos, &w, 8);
	data[*pos + 8] = (char)len;
	memcpy(data + *pos + WF_FRONT_REC, id, len);
	*pos += WF_FRONT_REC + len;
	return 0;
}

/* Reader: the record at rec (in a copy of the entry): its stock key, the
 * snapshot's sold-out word and its id length (the id follows at
 * rec + WF_FRONT_REC). */
static inline uint64_t wf_front_item_key(const char *rec, int *ret_snap_sold_out, uint32_t *ret_len)
{
	uint64_t w;

	memcpy(&w, rec, 8);
	*ret_snap_sold_out = !(w & 1);
	*ret_len = (uint8_t)rec[8];
	return w | 1;
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

/* An entry's seqlock is shm's (wf_seq_write_begin / _end, robust to a
 * writer that died mid-write); readers never wait: wf_seq_read_try, an odd
 * seq is a miss, then wf_seq_read_retry. */

#endif
