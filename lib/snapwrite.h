/*
 * snapwrite.h - the snapshot writer (the other half of snapshot.h).
 *
 * Linked into weft-batch (which builds snapshots) and the tests (which forge
 * good and corrupt ones). The caller hands over finished arrays in the
 * on-disk structs; the writer builds the two id hash tables, lays the
 * sections out 64-byte aligned in the order of enum wf_snap_section_id,
 * checksums every section and the header, and writes the file atomically
 * (temp file in the same directory, fsync, rename, fsync of the directory).
 * Never logs.
 */
#ifndef WF_SNAPWRITE_H
#define WF_SNAPWRITE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/snapshot.h"

/* Everything a snapshot holds. Borrowed by wf_snapw_write(), never freed. */
struct wf_snapw_input {
	uint64_t generation;
	uint64_t build_ms;
	uint64_t source_digest;
	uint64_t data_end_ms;
	uint32_t flags;
	const char *strs;                  /* id and name bytes */
	uint64_t strs_len;                 /* < 4 GiB: STRS offsets are 32-bit */
	const struct wf_snap_item *items;
	uint32_t nitems;
	const struct wf_snap_user *users;
	uint32_t nusers;
	const struct wf_snap_cand *cands;
	uint64_t ncands;
	const struct wf_snap_cand *neigh;
	uint64_t nneigh;
	const struct wf_snap_cand *compl;
	uint64_t ncompl;
	const struct wf_snap_name *names;  /* ncats categories, then nbrands brands */
	uint32_t ncats, nbrands;
	const struct wf_snap_cand *popular;
	uint32_t npopular;
	const struct wf_snap_cand *trending;
	uint32_t ntrending;
	const struct wf_snap_cand *seq;    /* transitions, item i's at seq[seq_off[i], seq_off[i + 1]) */
	uint64_t nseq;
	const uint32_t *seq_off;           /* nitems + 1 offsets, or NULL: no transitions */
	const struct wf_snap_model *model; /* or NULL: none (version 0, the library's defaults) */
};

/* Slots of an id hash table for n entries: the power of two >= 2n (>= 2),
 * so the table always has an empty slot. */
uint32_t wf_snapw_hash_slots(uint32_t n);

/*
 * Write in to path atomically. Does not validate indexes (a test may want a
 * bad file); weft-batch reopens what it wrote with wf_snap_open().
 * Returns 0 and the file size in *ret_size (may be NULL), or -EINVAL (STRS
 * too large, an id outside STRS), -ENOMEM, -errno of open/write/fsync/rename;
 * err gets a one-line explanation. On failure no file is left at path's
 * temp name and path itself is untouched.
 */
int wf_snapw_write(const char *path, const struct wf_snapw_input *in, uint64_t *ret_size,
		   char *err, size_t errlen);

/*
 * Recompute every section checksum (of sections whose range lies inside the
 * buffer) and then the header checksum of an in-memory snapshot image. For
 * tests that forge a file whose checksums are right but whose contents are
 * not. Returns 0 or -EINVAL (buffer smaller than a header).
 */
int wf_snapw_reseal(void *image, size_t size);

#endif
