/*
 * batch.h - weft-batch internals: the build context shared by the loader
 * (load.c), the model (model.c) and the snapshot/manifest writer (emit.c).
 * Private to batch/; linked only into weft-batch.
 *
 * Memory: events are one growable array of fixed 32-byte records (no
 * per-event allocation); every id and name is interned once into a byte
 * arena whose offsets become the snapshot's STRS; lookups go through
 * open-addressing tables (wf_hash64 & mask, linear probing, value =
 * index + 1), the same scheme as the snapshot's hash sections.
 */
#ifndef WF_BATCH_H
#define WF_BATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <xxhash.h>

#include "lib/csv.h"
#include "lib/proto.h"
#include "lib/snapshot.h"
#include "lib/util.h"

#define WF_BATCH_MAX_ID 128u       /* ids longer than this are malformed rows */
#define WF_BATCH_MAX_REPORTED 10u  /* malformed rows named one by one per file */
#define WF_BATCH_NEIGH_TOP 30u     /* co-occurrence neighbours per item... */
#define WF_BATCH_SEQ_TOP 20u       /* ...and transitions: the 50 one list had before */
#define WF_BATCH_SEQ_GAP 10u       /* transitions counted up to this many clicks later */
#define WF_BATCH_COMPL_TOP 20u
#define WF_BATCH_POPULAR_TOP 1000u
#define WF_BATCH_TRENDING_TOP 200u
#define WF_BATCH_CAT_TOP 50u       /* popular items kept per category */
#define WF_BATCH_SESSION_CAP 100u  /* distinct items per session used for pairs */
#define WF_BATCH_BASKET_CAP 200u   /* distinct carted/bought items per user */
#define WF_BATCH_NO_USER 0xffffffffu

/* Event types: enum wf_event_type of lib/proto.h (one vocabulary for all). */

/* One event row, 24 bytes (126M of them at 1M users: 3 GB). item is
 * 0xffffffff for a search without an item. */
struct wf_batch_event {
	int64_t ts_ms;
	uint32_t user;    /* index into users, or WF_BATCH_NO_USER (anonymous) */
	uint32_t session; /* dense session number */
	uint32_t item;    /* index into items, or 0xffffffff */
	uint8_t type;     /* enum wf_event_type */
	uint8_t pad;
	uint16_t qty;     /* quantity for purchases/cart adds, 1..1000 (1 if absent) */
};
_Static_assert(sizeof(struct wf_batch_event) == 24, "event record size");

/* Interned strings: arena offsets plus an open-addressing table. */
struct wf_intern {
	struct wf_buf *arena;     /* shared arena (STRS) or a private one */
	uint32_t *slots;          /* index + 1, 0 empty */
	uint32_t mask;
	uint32_t n, cap;
	uint64_t *off;            /* per entry: arena offset */
	uint32_t *len;            /* per entry: length */
};

/* Per-item model state, parallel to items.ids. */
struct wf_batch_item {
	uint32_t category, brand;  /* WF_SNAP_NO_CAT if none */
	uint32_t price_cents;
	uint8_t price_band, nsizes;
	uint16_t flags;
	float pop_raw;             /* decayed strength sum */
	float popularity;          /* [0,1] */
	float trend;
	float recent, past;        /* trend windows, event strength sums */
	float sess_norm;           /* decayed count of sessions holding it */
	float basket_norm;         /* users who carted/bought it */
	uint32_t stock_rows, stock_pos; /* inventory rows / rows with qty > 0 */
};

/* Per-user model state, parallel to users.ids. */
struct wf_batch_user {
	int64_t first_ms, last_ms, last_buy_ms;
	uint32_t orders;
	uint32_t nevents;
	float spend;               /* currency units */
	uint16_t segment;
	uint8_t r, f, m;
	float ltv;
};

#define WF_BATCH_MAX_EVENT_FILES 64u
#define WF_BATCH_CHUNK_BYTES (256u << 20) /* events CSV bytes parsed per job */

struct wf_batch_opts {
	const char *events[WF_BATCH_MAX_EVENT_FILES]; /* events CSVs, read in this order */
	uint32_t nevents;
	const char *journal;       /* journal directory (nightly), read after the CSVs, or NULL */
	const char *catalog, *inventory, *out;
	uint64_t chunk_bytes;      /* events CSV bytes per parse job (WF_BATCH_CHUNK_BYTES) */
	uint32_t candidates;
	uint64_t generation;
	bool have_generation;
	uint32_t threads;
	bool quiet;
};

struct wf_batch_stats {
	uint64_t events_read, rows_skipped, catalog_rows, catalog_skipped, inventory_rows, inventory_skipped;
	uint64_t anon_events, sessions;
	uint64_t users_full;       /* users with a full candidate list */
	uint64_t items_listed;     /* items in some candidate list */
};

/* The one context of a weft-batch build. */
struct wf_batch {
	struct wf_batch_opts opt;
	struct wf_buf strs;        /* STRS arena */
	struct wf_intern items, users, cats, brands;
	struct wf_batch_item *item;   /* items.cap entries */
	struct wf_batch_user *user;   /* users.cap entries */
	struct wf_batch_event *ev;    /* anonymous mapping of ev_map bytes (events.c) */
	uint64_t nev, ev_map;
	uint32_t item_cap, user_cap;  /* allocated entries of item / user */
	int64_t min_ms, max_ms;       /* event time range */
	uint64_t source_digest;
	uint64_t build_ms;
	uint64_t t0_ns;
	struct wf_batch_stats st;

	/* Model outputs. */
	struct wf_snap_cand *neigh;   /* nitems * NEIGH_TOP slots */
	uint32_t *neigh_cnt;
	struct wf_snap_cand *seq;     /* nitems * SEQ_TOP slots */
	uint32_t *seq_cnt;
	struct wf_snap_model model;   /* repeat curve (model.c), fitted weights (fit.c) */
	struct wf_snap_cand *compl;   /* nitems * COMPL_TOP slots */
	uint32_t *compl_cnt;
	uint32_t *cat_top;            /* ncats * CAT_TOP item indexes (popularity order) */
	uint32_t *cat_top_cnt;
	struct wf_snap_cand popular[WF_BATCH_POPULAR_TOP];
	uint32_t npopular;
	struct wf_snap_cand trending[WF_BATCH_TRENDING_TOP];
	uint32_t ntrending;
	struct wf_snap_cand *cands;   /* nusers * candidates slots, compacted by emit */
	uint32_t *cand_cnt;

	/* Seasonality (model.c): weekday the snapshot serves (0 = Sunday,
	 * UTC; the day after data_end), or -1 when the data spans < 14 days;
	 * per category the boost for that weekday (1 = none), times the
	 * yearly boost when the data spans a year and 28 days (yearly). */
	int serve_wday;
	bool yearly;
	float *cat_boost;             /* cats.n entries, or NULL */
	float *cat_wday_index;        /* cats.n x 7: category's weekday rate / its mean rate */
	float *cat_year_index;        /* cats.n: next 28 days a year ago / the 28 before (1 = none) */
};

/* intern.c-like helpers (load.c) */
int wf_intern_init(struct wf_intern *t, struct wf_buf *arena);
void wf_intern_fini(struct wf_intern *t);
/* Index of s, adding it if new (*ret_new set). 0 or -ENOMEM / -E2BIG. */
int wf_intern_get(struct wf_intern *t, const char *s, uint32_t len, uint32_t *ret, bool *ret_new);
/* Index of s or -1. */
int64_t wf_intern_find(const struct wf_intern *t, const char *s, uint32_t len);

/* Event strength of a type (purchase 8 ... view 1, search 0). */
float wf_batch_strength(uint8_t type);
/* exp2(-(max_ms - ts) / half-life), 7 days. */
double wf_batch_decay(const struct wf_batch *b, int64_t ts_ms);

/* Header columns by name (load.c): idx[k] is the column of names[k], or -1. */
struct wf_batch_cols {
	int idx[8];
};
void wf_batch_map_header(const struct wf_csv *c, const char *const *names, uint32_t n, struct wf_batch_cols *ret);
/* Read the header line from c (just opened on path), map names to columns
 * into *m and require the first `required` of them. 0, or -errno / -EINVAL
 * (logged, saying what the `what` CSV must start with). */
int wf_batch_read_header(struct wf_csv *c, const char *path, const char *what, const char *const *names, uint32_t n,
			 uint32_t required, struct wf_batch_cols *m);
/* A source's verdict after reading: warn of bad rows; more bad than good
 * means the wrong file or format (-EINVAL, logged: "is this really the
 * <what>?"), not a few bad lines. rows: what its rows are ("catalog"). */
int wf_batch_judge(const char *path, const char *rows, const char *what, uint64_t good, uint64_t bad);
/* Field k of the current record (an empty field when the column is absent). */
const struct wf_csv_field *wf_batch_col(const struct wf_csv *c, const struct wf_batch_cols *m, int k);

/* Model record for an item / user index, interning the id (load.c). The
 * record is zeroed to defaults when the id is new. 0 or -ENOMEM/-E2BIG. */
int wf_batch_item_get(struct wf_batch *b, const char *id, uint32_t len, uint32_t *ret);
int wf_batch_user_get(struct wf_batch *b, const char *id, uint32_t len, uint32_t *ret);

/* events.c: read every events CSV (split into byte ranges at line
 * boundaries, parsed on opt.threads threads, merged in file order so ids
 * and line numbers are those of a sequential read) and the journal into
 * b->ev, and fold their bytes into b->source_digest's state. */
int wf_batch_load_events(struct wf_batch *b, XXH3_state_t *digest);
void wf_batch_events_free(struct wf_batch *b);

/* Stages of a build; each returns 0 or -errno and logs its own error. */
int wf_batch_load(struct wf_batch *b);
int wf_batch_model(struct wf_batch *b);
/* fit.c: the scoring model's weights, learned on a fit window at the end
 * of the loaded events (before wf_batch_model, which it leaves untouched),
 * into b->model. A log too short for a fit window keeps the defaults. */
int wf_batch_fit(struct wf_batch *b);
int wf_batch_emit(struct wf_batch *b);
void wf_batch_fini(struct wf_batch *b);
/* The whole build (load, model, emit): what `build` and `nightly` run. */
int wf_batch_run(struct wf_batch *b);

/* Append s as a JSON string (quoted, escaped) to o. */
void wf_batch_json_str(struct wf_buf *o, const char *s, size_t len);

/* Progress line on stderr unless quiet: bytes (MiB) done of total, or the
 * phase alone when total is 0; _count: items done of total. */
void wf_batch_progress(struct wf_batch *b, const char *phase, uint64_t done, uint64_t total);
void wf_batch_progress_count(struct wf_batch *b, const char *phase, uint64_t done, uint64_t total);

/* Run fn(arg, i, worker) for i in [0, n) on opt.threads threads; each worker
 * gets its own number < threads for its scratch space. With what, about
 * once a second a progress line "what: i of n". Returns 0 (a thread that
 * cannot be started leaves its share to the others). */
int wf_batch_parallel(struct wf_batch *b, uint64_t n, const char *what,
		      void (*fn)(void *arg, uint64_t i, uint32_t worker), void *arg);

#endif
