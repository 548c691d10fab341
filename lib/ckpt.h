/*
 * ckpt.h - the ranker checkpoint file format (rankers/checkpoint.c writes
 * and loads it; weft-batch's journal retention reads its LSN).
 *
 * A checkpoint is one file per shard, DIR/shard-<N>.wfc, replaced
 * atomically (temp file, fdatasync, rename, directory fsync). Layout:
 *   header (struct wf_ckpt_hdr, 48 bytes, its own xxh32)
 *   sections, each a struct wf_ckpt_sec (16 bytes: type, xxh32 of the
 *   body, body length) and its body, padded to 8 bytes
 *   an END section last: its body is struct wf_ckpt_end (the sections
 *   before it and their bytes), so a truncated file is detected
 * Section types are stored: append new ones (enum wf_ckpt_type), never
 * renumber; a reader skips the types it does not know, so a new section
 * (segments, experiments...) needs no version bump. `version` changes only
 * when a known section's body changes meaning.
 *
 * The header's lsn: every journal record of the shard with an LSN at or
 * below it is in the checkpoint's state (records above it are replayed
 * after loading it; sessions carry their own LSN, so a record already in
 * a session's state is not applied twice).
 */
#ifndef WF_CKPT_H
#define WF_CKPT_H

#include <stddef.h>
#include <stdint.h>

#define WF_CKPT_MAGIC 0x31544b4354464557ull /* "WEFTCKT1" */
#define WF_CKPT_VERSION 1u

enum wf_ckpt_type {
	WF_CKPT_END = 0,      /* last section: struct wf_ckpt_end */
	WF_CKPT_SESSIONS = 1, /* session records (rankers/sessions.c, ranker_session_pack) */
	WF_CKPT_SEGDEFS = 2,  /* the segment definitions (name, version) the records' segment
			       * states were built under, before any SESSIONS (rankers/segs.c,
			       * ranker_segs_defs_pack); without it a record holds no segment state */
	WF_CKPT_TYPES
};

struct wf_ckpt_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t shard;
	uint64_t lsn;        /* see above */
	uint64_t created_ms; /* wall clock when the checkpoint began */
	uint64_t reserved;   /* 0 */
	uint32_t flags;      /* 0 */
	uint32_t xxh32;      /* of the 44 bytes before it */
};
_Static_assert(sizeof(struct wf_ckpt_hdr) == 48, "checkpoint header");

struct wf_ckpt_sec {
	uint32_t type;  /* enum wf_ckpt_type */
	uint32_t xxh32; /* of the body */
	uint64_t len;   /* body bytes, before padding to 8 */
};
_Static_assert(sizeof(struct wf_ckpt_sec) == 16, "checkpoint section header");

struct wf_ckpt_end {
	uint64_t sections; /* before END */
	uint64_t bytes;    /* file offset of END's section header */
};

/* Fill a header (checksummed). */
void wf_ckpt_hdr_init(struct wf_ckpt_hdr *h, uint32_t shard, uint64_t lsn, uint64_t created_ms);
/* Fill a section header for body (len bytes). */
void wf_ckpt_sec_init(struct wf_ckpt_sec *s, uint32_t type, const void *body, uint64_t len);
/* Padding after a body of len bytes. */
static inline uint64_t wf_ckpt_pad(uint64_t len)
{
	return (8 - (len & 7)) & 7;
}

/*
 * Check a whole checkpoint image p (n bytes): header magic, version,
 * checksum; every section's checksum; END last, matching. Returns 0 and
 * *ret, -EBADMSG (corrupt or truncated) or -EPROTONOSUPPORT (a newer
 * version).
 */
int wf_ckpt_verify(const uint8_t *p, size_t n, struct wf_ckpt_hdr *ret);

/* Walk the sections of a verified image: *off starts at 0. Returns 1 with
 * the next section (END excluded), 0 at END. */
int wf_ckpt_next(const uint8_t *p, size_t n, uint64_t *off, uint32_t *ret_type, const uint8_t **ret_body,
		 uint64_t *ret_len);

/* Map and verify the checkpoint at path. Returns 0 and its header, or
 * -errno (-ENOENT none, -EBADMSG corrupt). */
int wf_ckpt_read_hdr(const char *path, struct wf_ckpt_hdr *ret);

#endif
