/*
 * seg_int.h - lib/seg internals shared by compile.c (rules), set.c
 * (sets, session state, evaluation) and defs.c (the definitions file).
 * Private to lib/seg.
 */
#ifndef WF_SEG_INT_H
#define WF_SEG_INT_H

#include <stdint.h>

#include "lib/proto.h"
#include "lib/seg/seg.h"

enum seg_atom_kind {
	SEG_A_COUNT = 1,  /* count()/did(): type, filters, window, op, n */
	SEG_A_IDLE,       /* window */
	SEG_A_CART_VALUE, /* op, n (cents) */
	SEG_A_CART_ITEMS, /* op, n */
	SEG_A_LTV,        /* op, n (cents) */
	SEG_A_LIFECYCLE,  /* mask of lib/snapshot.h segments, op EQ or NE */
	SEG_A_VISITOR,    /* n: 1 returning, 0 new; op EQ or NE */
	SEG_A_IN,         /* in_name; in_idx once a set resolved it */
	SEG_A_PIVOT,
};

enum seg_cmp { SEG_GE = 0, SEG_GT, SEG_LE, SEG_LT, SEG_EQ, SEG_NE };

enum seg_filter_kind { SEG_F_CATEGORY = 1, SEG_F_BRAND, SEG_F_PRICE };

#define SEG_VALUE_MAX WF_ID_MAX /* bytes of a category or brand name in a filter */

struct seg_filter {
	uint8_t kind;            /* enum seg_filter_kind */
	uint8_t op;              /* enum seg_cmp (category, brand: EQ or NE) */
	uint8_t len;
	uint64_t cents;          /* price */
	char s[SEG_VALUE_MAX + 1];
};

struct seg_atom {
	uint8_t kind;            /* enum seg_atom_kind */
	uint8_t op;              /* enum seg_cmp */
	uint8_t type;            /* count: enum wf_event_type, or WF_SEG_TYPE_ANY */
	uint8_t nfilt;
	uint32_t k;              /* count: event times kept (what op n needs) */
	int64_t n;               /* threshold (count, items; cents for cart_value and ltv) */
	uint64_t window_ms;      /* count, idle */
	uint32_t mask;           /* lifecycle: bit per enum wf_snap_segment */
	int32_t in_idx;          /* in: the segment's index in the set, -1 unresolved */
	uint32_t fill;           /* count: index of its fill byte in the state (set.c) */
	uint32_t slot;           /* count: index of its first time slot in the state (set.c) */
};
/* An atom is what every evaluation reads (40 bytes, a rule's atoms a few
 * cache lines); its filters and in() name, read only by events of its
 * type and by the set build, are beside it in the rule by atom index. */

/* ops[]: an atom's index, or one of these. */
#define SEG_OP_AND 0xffffu
#define SEG_OP_OR 0xfffeu
#define SEG_OP_NOT 0xfffdu
#define SEG_OPS_MAX (WF_SEG_ATOMS_MAX * 4u)

struct wf_seg_rule {
	uint32_t nops, natoms;
	uint32_t uses;           /* WF_SEG_USES_* */
	uint16_t ops[SEG_OPS_MAX];       /* postfix */
	struct seg_atom atoms[WF_SEG_ATOMS_MAX];
	struct seg_filter filt[WF_SEG_ATOMS_MAX][WF_SEG_FILTERS_MAX]; /* count: by atom index */
	char in_name[WF_SEG_ATOMS_MAX][WF_SEG_NAME_MAX + 1];           /* in: by atom index */
};

/* A set's segment. */
struct seg_entry {
	char name[WF_SEG_NAME_MAX + 1];
	uint64_t version;
	struct wf_seg_rule *rule;
};

/* An event type's count atoms: (segment, atom) pairs. */
struct seg_ref {
	uint16_t seg, atom;
};

struct wf_seg_set {
	uint32_t n;
	uint32_t uses;
	struct seg_entry seg[WF_SEG_MAX];
	uint32_t order[WF_SEG_MAX];      /* evaluation order: in() targets first */
	uint32_t nfill, nslots;
	size_t seq_off, fill_off, slots_off, size;
	uint64_t affected[WF_EV_COUNT];  /* segments an event of the type may change */
	uint8_t needs_item[WF_EV_COUNT];
	uint32_t nrefs[WF_EV_COUNT];
	struct seg_ref *refs[WF_EV_COUNT]; /* count atoms matching the type (any included) */
};

/* Error helper: err (may be NULL) gets pos and "at <pos+1>: <fmt>". */
void seg_error(struct wf_seg_error *err, uint32_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Lifecycle names (lib/snapshot.h enum wf_snap_segment), index = value. */
extern const char *const seg_lifecycle_names[];
#define SEG_LIFECYCLES 7u

#endif
