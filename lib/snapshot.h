/*
 * snapshot.h - the nightly snapshot file: format and validating reader.
 *
 * One immutable, mmap-able file written by weft-batch and read by every
 * ranker (and weftctl, weft-eval). Layout (little-endian, every section
 * 64-byte aligned):
 *
 *   struct wf_snap_hdr       magic, format version, generation, build time,
 *                            source digest, section table, header checksum
 *   section STRS             string bytes (ids and names), not terminated
 *   section ITEMS            struct wf_snap_item[nitems]
 *   section ITEM_HASH        uint32_t[pow2]: item index + 1, 0 = empty;
 *                            slot = wf_hash64(id) & mask, linear probing
 *   section USERS            struct wf_snap_user[nusers]
 *   section USER_HASH        as ITEM_HASH, for users
 *   section CANDS            struct wf_snap_cand[]: per-user candidate lists,
 *                            each sorted by score descending
 *   section NEIGH            struct wf_snap_cand[]: per-item neighbours
 *                            (time-decayed session co-occurrence), sorted
 *   section COMPL            struct wf_snap_cand[]: per-item complements
 *                            (bought/carted together), sorted
 *   section NAMES            struct wf_snap_name[ncats + nbrands]:
 *                            categories first, then brands
 *   section POPULAR          struct wf_snap_cand[]: global popularity, sorted
 *   section TRENDING         struct wf_snap_cand[]: rising items, sorted
 *   section SEQ              struct wf_snap_cand[]: per-item transitions
 *                            (what is clicked next after the item, gap-
 *                            weighted, conditional), sorted
 *   section SEQ_OFF          uint32_t[nitems + 1]: item i's transitions
 *                            are SEQ[SEQ_OFF[i], SEQ_OFF[i + 1])
 *   section MODEL            one struct wf_snap_model: the scoring
 *                            model's learned repeat curve and weights
 *
 * Every section carries an XXH3-64 checksum; the header carries one over
 * itself. wf_snap_open() checks magic, version, sizes, every checksum and
 * every index (a candidate's item < nitems, offsets inside their sections)
 * before anyone reads the file, so a reader never trusts a bad file.
 * A manifest (JSON, <file>.manifest.json) is written beside each snapshot.
 *
 * Readers: weft-ranker, weft-admin (validation before a load), weftctl,
 * weft-eval, weft-batch. Never logs: errors come back as -errno plus a
 * human message.
 */
#ifndef WF_SNAPSHOT_H
#define WF_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define WF_SNAP_MAGIC 0x31504e5354464557ull /* "WEFTSNP1" */
#define WF_SNAP_FORMAT_VERSION 2u /* 2: SEQ, SEQ_OFF, MODEL (issue 14) */
#define WF_SNAP_MAX_SECTIONS 16u

enum wf_snap_section_id {
	WF_SNAP_SEC_STRS = 1,
	WF_SNAP_SEC_ITEMS,
	WF_SNAP_SEC_ITEM_HASH,
	WF_SNAP_SEC_USERS,
	WF_SNAP_SEC_USER_HASH,
	WF_SNAP_SEC_CANDS,
	WF_SNAP_SEC_NEIGH,
	WF_SNAP_SEC_COMPL,
	WF_SNAP_SEC_NAMES,
	WF_SNAP_SEC_POPULAR,
	WF_SNAP_SEC_TRENDING,
	WF_SNAP_SEC_SEQ,
	WF_SNAP_SEC_SEQ_OFF,
	WF_SNAP_SEC_MODEL,
};

struct wf_snap_section {
	uint32_t id;   /* enum wf_snap_section_id */
	uint32_t pad;
	uint64_t off;  /* from the start of the file, 64-aligned */
	uint64_t size; /* bytes */
	uint64_t xxh3; /* XXH3-64 of the section bytes */
};

struct wf_snap_hdr {
	uint64_t magic;
	uint32_t format_version;
	uint32_t header_size;    /* sizeof(struct wf_snap_hdr) */
	uint64_t generation;     /* set by weft-batch; admin may override at load */
	uint64_t build_ms;       /* wall clock of the build */
	uint64_t source_digest;  /* XXH3 of the input files */
	uint64_t file_size;
	uint64_t data_end_ms;    /* ts of the newest event the build saw */
	uint32_t nitems, nusers;
	uint32_t ncats, nbrands;
	uint32_t nsections;
	uint32_t flags;
	struct wf_snap_section sec[WF_SNAP_MAX_SECTIONS];
	uint64_t header_xxh3;    /* XXH3-64 of this struct with this field 0 */
};

/* A candidate, neighbour, complement or popular entry. */
struct wf_snap_cand {
	uint32_t item; /* index into ITEMS */
	float score;
};

struct wf_snap_name {
	uint32_t off; /* into STRS */
	uint32_t len;
};

#define WF_SNAP_NO_CAT 0xffffffffu

/* wf_snap_item.brand is the brand number b < nbrands; its name is
 * NAMES[ncats + b] (wf_snap_brand_name()). */

/* wf_snap_item.flags */
#define WF_SNAP_ITEM_IN_CATALOG 0x1u /* listed in the catalog CSV */
#define WF_SNAP_ITEM_SOLD_OUT 0x2u   /* the inventory CSV had every size at 0 */

struct wf_snap_item {
	uint32_t id_off, id_len;   /* into STRS */
	uint32_t category;         /* index into NAMES, or WF_SNAP_NO_CAT */
	uint32_t brand;            /* index into NAMES (after ncats), or WF_SNAP_NO_CAT */
	uint32_t price_cents;      /* 0 = unknown */
	uint8_t price_band;        /* 0..4 within its category (quintile), 255 unknown */
	uint8_t nsizes;
	uint16_t flags;
	float popularity;          /* time-decayed, normalised to [0,1] */
	float trend;               /* recent vs past rate, >= 0 */
	uint32_t neigh_off, neigh_cnt; /* into NEIGH */
	uint32_t compl_off, compl_cnt; /* into COMPL */
};

/*
 * An item's fields that lib/rank reads for every pool entry, packed in
 * 16 bytes (four items' rows are four vector loads): derived from ITEMS
 * by wf_snap_open(), not stored in the file. Values as ITEMS has them,
 * out-of-range names and bands mapped to one index past the end.
 */
#define WF_SNAP_ROW_BANDS 5u /* price bands 0..4; 5: unknown */
struct wf_snap_row {
	float popularity, trend;
	uint32_t category;   /* category, or ncats when none */
	uint32_t brand_band; /* (brand, or nbrands when none) << 3 | (price band, or WF_SNAP_ROW_BANDS when unknown) */
};
_Static_assert(sizeof(struct wf_snap_row) == 16, "wf_snap_row: four to a vector load each");

/* The popular and trending items of one category (derived, see
 * wf_snap.prior_groups): their prior_rows indexes are
 * prior_order[first, first + n); the lowest and highest popularity and
 * trend / (1 + trend) among them (all four NaN when one is). */
struct wf_snap_prior_group {
	uint32_t category; /* as a row has it: ncats for none */
	uint32_t first, n;
	float pop_lo, pop_hi, tr_lo, tr_hi;
};

/*
 * The scoring model weft-batch learned from the training days (lib/rank
 * reads it; lib/rank/README.md "The model"). version 0: none, lib/rank
 * uses its defaults. A model whose feature_set or nfeat is not the
 * library's is ignored the same way (a snapshot from another release).
 */
#define WF_SNAP_MODEL_REPEAT 16u /* recent positions with a repeat probability */
#define WF_SNAP_MODEL_FEATS 16u  /* weight slots per visitor type */
struct wf_snap_model {
	uint32_t version;        /* 0 none; else the fit's version (lib/rank WF_RANK_MODEL_VERSION) */
	uint32_t nfeat;          /* features fitted (lib/rank WF_RANK_NFEAT) */
	uint32_t feature_set;    /* lib/rank WF_RANK_FEATURE_SET the weights are for */
	uint32_t flags;          /* WF_SNAP_MODEL_FITTED_*: which visitor types were fitted */
	/* P(the next click is the item viewed r steps back), r = 0 the item
	 * on screen, from the training days' sessions. */
	float repeat[WF_SNAP_MODEL_REPEAT];
	/* weight[v][f]: feature f's weight for visitor type v (lib/proto.h
	 * WF_VISITOR_RETURNING 0, WF_VISITOR_NEW 1). */
	float weight[2][WF_SNAP_MODEL_FEATS];
	/* Training metrics per visitor type: examples (positives and
	 * negatives), positives, mean log-loss, and the fit window's HR@20 of
	 * the fitted and the default weights (replayed through lib/rank). */
	uint64_t examples[2], positives[2];
	float logloss[2], hr_fit[2], hr_default[2];
	uint32_t fit_days;       /* the fit window, days at the end of the data */
	uint32_t pad;            /* 0 */
};
#define WF_SNAP_MODEL_FITTED_RETURNING 0x1u
#define WF_SNAP_MODEL_FITTED_NEW 0x2u
_Static_assert(sizeof(struct wf_snap_model) == 272, "wf_snap_model layout: no implicit padding");

/* Customer value segments from the batch model (RFM and LTV). */
enum wf_snap_segment {
	WF_SEG_NONE = 0,
	WF_SEG_NEW,       /* first seen recently, few orders */
	WF_SEG_ACTIVE,
	WF_SEG_LOYAL,     /* frequent and recent */
	WF_SEG_VIP,       /* top monetary value */
	WF_SEG_AT_RISK,   /* was active, gone quiet */
	WF_SEG_LAPSED,    /* win-back candidates */
	WF_SEG_COUNT
};

struct wf_snap_user {
	uint32_t id_off, id_len;   /* into STRS */
	uint64_t cand_off;         /* index into CANDS */
	uint32_t cand_cnt;
	uint16_t segment;          /* enum wf_snap_segment */
	uint8_t r, f, m;           /* RFM quintiles 1..5 (0 = no purchases) */
	uint8_t pad[3];            /* 0; every byte of the record is a named field, so an
				      initializer zeroes it (no compiler-chosen padding bytes
				      reach the file) */
	float ltv;                 /* estimated lifetime value, currency units */
	uint32_t orders;
	uint32_t last_seen_days;   /* days before data_end_ms */
	uint32_t pad2[2];          /* 0 */
};
/* On-disk records have no implicit padding: a writer's struct copy could
 * carry stack bytes into the file and make builds differ (issue 5). */
_Static_assert(sizeof(struct wf_snap_user) == 48 && offsetof(struct wf_snap_user, ltv) == 28 &&
		       offsetof(struct wf_snap_user, pad2) == 40,
	       "wf_snap_user layout: 48 bytes, no implicit padding");
_Static_assert(sizeof(struct wf_snap_item) == 48 && offsetof(struct wf_snap_item, popularity) == 24,
	       "wf_snap_item layout: 48 bytes, no implicit padding");
_Static_assert(sizeof(struct wf_snap_cand) == 8 && sizeof(struct wf_snap_name) == 8, "list/name records: 8 bytes");
_Static_assert(sizeof(struct wf_snap_hdr) == 600, "header: 600 bytes, no implicit padding");

/* An open, validated snapshot. Owner: whoever opened it; wf_snap_close(). */
struct wf_snap {
	const uint8_t *base;
	uint64_t size;
	const struct wf_snap_hdr *hdr;
	const char *strs;
	uint64_t strs_len;
	const struct wf_snap_item *items;
	uint32_t nitems;
	const uint32_t *item_hash;
	uint32_t item_hash_mask;
	const struct wf_snap_user *users;
	uint32_t nusers;
	const uint32_t *user_hash;
	uint32_t user_hash_mask;
	const struct wf_snap_cand *cands;
	uint64_t ncands;
	const struct wf_snap_cand *neigh;
	uint64_t nneigh;
	const struct wf_snap_cand *compl;
	uint64_t ncompl;
	const struct wf_snap_name *names; /* ncats + nbrands */
	uint32_t ncats, nbrands;
	const struct wf_snap_cand *popular;
	uint32_t npopular;
	const struct wf_snap_cand *trending;
	uint32_t ntrending;
	const struct wf_snap_cand *seq;     /* item i's: seq[seq_off[i], seq_off[i + 1]) */
	uint64_t nseq;
	const uint32_t *seq_off;            /* nitems + 1 */
	const struct wf_snap_model *model;
	/* items' rows (nitems), allocated by wf_snap_open() and freed by
	 * wf_snap_close(); NULL in a snapshot built in memory (a test's),
	 * or when a brand index does not fit: lib/rank reads items then */
	const struct wf_snap_row *rows;
	/* the rows of popular[0, npopular) then trending[0, ntrending), in
	 * list order (lib/rank scans them every query), allocated and freed
	 * with rows; NULL when rows is */
	const struct wf_snap_row *prior_rows;
	/* the same entries grouped by category, in category order, each
	 * group's in prior_rows order: lib/rank skips a category whose best
	 * could not reach a query's k best, instead of scoring each of its
	 * items; allocated and freed with rows; NULL when prior_rows is */
	const struct wf_snap_prior_group *prior_groups;
	uint32_t nprior_groups;
	const uint32_t *prior_order;
	char path[1024];
};

/*
 * Map and validate path. On failure returns -errno (-ENOENT, -EACCES,
 * -EPROTO bad magic/format/size/index, -EBADMSG checksum mismatch,
 * -EPROTONOSUPPORT other format version) and writes a one-line human
 * explanation to err (e.g. "snapshot /x: section CANDS checksum mismatch
 * (file corrupt?)"). *ret untouched on failure.
 */
int wf_snap_open(const char *path, struct wf_snap **ret, char *err, size_t errlen);

/* Unmap. Accepts NULL. */
void wf_snap_close(struct wf_snap *s);

/* The tables wf_snap_open() derives from the items and lists for
 * lib/rank (rows, prior_rows, prior_groups and prior_order), each left
 * NULL when memory is short or a brand index does not fit a row (lib/rank
 * reads the items then, for the same results); a snapshot built in
 * memory (a test's, a bench's) may derive them too, and frees them with
 * wf_snap_underive() (wf_snap_close() does for an opened one). */
void wf_snap_derive(struct wf_snap *s);
void wf_snap_underive(struct wf_snap *s);

/* Index of an item / user id, or -1. */
int64_t wf_snap_item_find(const struct wf_snap *s, const char *id, size_t len);
int64_t wf_snap_user_find(const struct wf_snap *s, const char *id, size_t len);

static inline const char *wf_snap_str(const struct wf_snap *s, uint32_t off)
{
	return s->strs + off;
}

/* Category / brand name of an item ("" if none); *ret_len gets the length. */
const char *wf_snap_cat_name(const struct wf_snap *s, uint32_t cat, uint32_t *ret_len);
const char *wf_snap_brand_name(const struct wf_snap *s, uint32_t brand, uint32_t *ret_len);

/* Name of a section id ("STRS", "CANDS", ...; "?" if unknown). */
const char *wf_snap_section_name(uint32_t id);

#endif
