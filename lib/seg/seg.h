/*
 * seg.h - real-time segments: the rule language (docs/SEGMENTS.md), its
 * compiled form, the evaluator the rankers run per event and per timer
 * deadline, and the definitions file weft-admin writes (DIR/segments.conf).
 *
 * Three layers, each usable alone:
 *   rule   wf_seg_compile() parses one rule into a compiled program (a
 *          postfix list of atoms and and/or/not) or names the byte where it
 *          went wrong and what was expected. weft-admin validates with it.
 *   set    wf_seg_set_build() compiles every live definition together,
 *          resolves in(SEGMENT) (cycles are refused) and lays out the
 *          per-session state: for each count()/did() atom the times of the
 *          newest K matching events (K = what its comparison needs, at most
 *          WF_SEG_N_MAX + 1), so an event costs O(atoms of its type) and
 *          the state of a session is a fixed number of bytes.
 *   state  a session's bytes (wf_seg_state_size()): wf_seg_apply() takes
 *          an event, wf_seg_eval() says which segments the session is in
 *          at a time and the next time that can change without an event
 *          (the session's timer deadline). Clock-free: every call takes
 *          the time as a parameter.
 *
 * Item and user attributes, the cart and the pivot come from the caller
 * (the ranker resolves them in the snapshot and its session model):
 * struct wf_seg_event and struct wf_seg_inputs. Nothing
 * here reads a file but wf_seg_defs_parse's buffer; nothing logs; no
 * globals. Owner of every struct: whoever created it.
 */
#ifndef WF_SEG_H
#define WF_SEG_H

#include <stddef.h>
#include <stdint.h>

#define WF_SEG_NAME_MAX 64u      /* a segment name: [A-Za-z0-9_-]{1,64} */
#define WF_SEG_RULE_MAX 4096u    /* bytes of one rule */
#define WF_SEG_ATOMS_MAX 32u     /* atoms (count, did, idle, attributes, in) in one rule */
#define WF_SEG_FILTERS_MAX 4u    /* item attribute filters in one count()/did() */
#define WF_SEG_DEPTH_MAX 16u     /* nesting of parentheses and not */
#define WF_SEG_N_MAX 100         /* N of count(...) op N, and cart_items */
#define WF_SEG_WINDOW_MAX_MS (7ull * 24 * 3600 * 1000) /* 7d: the longest window */
#define WF_SEG_MAX 64u           /* segments defined at once (a session's membership is one u64) */
#define WF_SEG_SLOTS_MAX 2048u   /* event times kept per session over every segment */
#define WF_SEG_TYPE_ANY 255u     /* count(any, ...): every event type */
#define WF_SEG_NEVER UINT64_MAX  /* no deadline */

/* Where a rule went wrong: pos is the byte offset (0-based) in the rule;
 * msg reads "at <pos + 1>: expected ..." (a 1-based column). */
struct wf_seg_error {
	uint32_t pos;
	char msg[200];
};

struct wf_seg_rule;

/*
 * Compile rule[0..len). Returns 0 and *ret (free with wf_seg_rule_free),
 * or -EINVAL with err filled (a syntax error, an unknown event type,
 * attribute, lifecycle or visitor value, a window over 7d or under 1s, N
 * out of 0..WF_SEG_N_MAX, too many atoms or too deep), -E2BIG for a rule
 * over WF_SEG_RULE_MAX bytes (err filled too), -ENOMEM. *ret untouched
 * on failure. in(NAME) is only checked to be a name here; the set resolves
 * it. err may be NULL.
 */
int wf_seg_compile(const char *rule, size_t len, struct wf_seg_rule **ret, struct wf_seg_error *err);
void wf_seg_rule_free(struct wf_seg_rule *r); /* accepts NULL */

/* What a compiled rule reads (wf_seg_rule_uses), so a caller can skip
 * work a rule does not need. */
#define WF_SEG_USES_EVENTS 0x1u  /* count()/did(): the session's events */
#define WF_SEG_USES_IDLE 0x2u    /* idle() */
#define WF_SEG_USES_CART 0x4u    /* cart_value, cart_items */
#define WF_SEG_USES_USER 0x8u    /* lifecycle, ltv, visitor: the snapshot's user */
#define WF_SEG_USES_ITEM 0x10u   /* category=, brand=, price filters: the snapshot's items */
#define WF_SEG_USES_IN 0x20u     /* in(SEGMENT) */
#define WF_SEG_USES_PIVOT 0x40u  /* pivot */
#define WF_SEG_USES_LTV 0x80u    /* ltv (with WF_SEG_USES_USER) */
uint32_t wf_seg_rule_uses(const struct wf_seg_rule *r);

/* ---- definitions ---- */

/* One segment definition: name, version (> 0), rule text (len 0: a
 * tombstone, the segment was dropped; its version counter stays). */
struct wf_seg_def {
	char name[WF_SEG_NAME_MAX + 1];
	uint64_t version;
	char *rule;              /* NUL-terminated, own allocation */
	uint32_t rule_len;
};

struct wf_seg_defs {
	uint32_t n;
	struct wf_seg_def *defs; /* in file order; names unique */
};

/* 1 if name[0..len) is a valid segment name. */
int wf_seg_name_valid(const char *name, size_t len);

/*
 * Parse DIR/segments.conf's bytes: one line per segment
 * "name\tversion\trule\n" (rule empty: tombstone). Returns 0 and *ret
 * (wf_seg_defs_fini), or -EINVAL (a malformed line, a bad name, a
 * version not a positive decimal, a name twice, more than 4 * WF_SEG_MAX
 * lines; *ret_line = its 1-based line, when ret_line is not NULL), -ENOMEM.
 * Rules are not compiled here (wf_seg_set_build does).
 */
int wf_seg_defs_parse(const char *buf, size_t len, struct wf_seg_defs *ret, uint32_t *ret_line);
/* The file bytes for defs (the inverse of wf_seg_defs_parse), malloc'd
 * into *ret / *ret_len. 0, -EINVAL (a rule holding a tab or newline, a bad
 * name), -ENOMEM. */
int wf_seg_defs_format(const struct wf_seg_defs *defs, char **ret, size_t *ret_len);
/* Set name's rule (len 0: drop it, a tombstone) with version = its old
 * one + 1 (1 if new). The definition of a live name replaced, a new one
 * appended. Returns the new version (> 0), or -ENOENT (drop of a name not
 * live), -EINVAL (bad name), -ENOMEM. */
int64_t wf_seg_defs_put(struct wf_seg_defs *defs, const char *name, const char *rule, size_t len);
/* The built-in definitions (win_back, cart_abandon, high_intent,
 * intent_pivot, at_risk: docs/SEGMENTS.md "Defaults"), version 1 each: what applies while
 * DIR/segments.conf does not exist. 0 or -ENOMEM. */
int wf_seg_defs_default(struct wf_seg_defs *ret);
void wf_seg_defs_fini(struct wf_seg_defs *defs); /* accepts a zeroed or half-built one */

/* ---- a set of live segments ---- */

struct wf_seg_set;

/*
 * Compile every live definition of defs (tombstones skipped) into a set.
 * Returns 0 and *ret (wf_seg_set_free), or -EINVAL with err filled and
 * *ret_bad = the index in defs of the definition at fault (a rule that
 * does not compile, in() of a name not defined, a cycle of in(), more
 * than WF_SEG_MAX live segments or WF_SEG_SLOTS_MAX event times in all),
 * -ENOMEM. err and ret_bad may be NULL.
 */
int wf_seg_set_build(const struct wf_seg_defs *defs, struct wf_seg_set **ret, struct wf_seg_error *err,
		     uint32_t *ret_bad);
void wf_seg_set_free(struct wf_seg_set *set); /* accepts NULL */

uint32_t wf_seg_set_count(const struct wf_seg_set *set);
const char *wf_seg_set_name(const struct wf_seg_set *set, uint32_t i);
uint64_t wf_seg_set_version(const struct wf_seg_set *set, uint32_t i);
/* Index of the segment named name, or -1. */
int wf_seg_set_find(const struct wf_seg_set *set, const char *name, size_t len);
/* OR of wf_seg_rule_uses() over the set's rules. */
uint32_t wf_seg_set_uses(const struct wf_seg_set *set);
/* Does an event of type (enum wf_event_type) need the item's attributes
 * (wf_seg_event.category, brand, price_cents)? And can it change any
 * segment at all (0: wf_seg_apply may be skipped, no evaluation needed)? */
int wf_seg_set_needs_item(const struct wf_seg_set *set, int type);
int wf_seg_set_affected(const struct wf_seg_set *set, int type);

/* ---- a session's state ---- */

/* An event as the evaluator needs it. Strings need not be NUL-terminated;
 * unknown attributes: NULL / 0. */
struct wf_seg_event {
	int type;                /* enum wf_event_type */
	uint64_t ts_ms;          /* time of record */
	const char *category;    /* the item's category name, or NULL */
	uint32_t category_len;
	const char *brand;
	uint32_t brand_len;
	uint32_t price_cents;    /* 0: unknown */
};

/* What a rule reads besides the session's events, as the caller knows it
 * when it evaluates: the snapshot's user, the session's cart and intent
 * pivot (lib/rank's session model: carted items not removed or bought,
 * priced from the snapshot). They change only with events. */
struct wf_seg_inputs {
	int known;               /* the snapshot has the user: visitor = returning */
	int lifecycle;           /* lib/snapshot.h enum wf_snap_segment (0: none) */
	float ltv;
	int pivot;               /* the session model's intent pivot */
	uint32_t cart_items;     /* distinct items in the cart */
	uint64_t cart_cents;     /* their prices (unknown ones count 0) */
	uint64_t lsn;            /* journal LSN of the session's newest event (0: none
				  * known): wf_seg_step numbers a segment's first
				  * transition from it (wf_seg_seq_next) */
};

/* The fixed head of a session's state; the set's per-segment sequence
 * numbers and per-atom event times follow it (wf_seg_state_size bytes in
 * all). Plain data: copying the bytes copies the state (a checkpoint
 * writes them as they are, with the set's definitions they belong to). */
struct wf_seg_state {
	uint64_t last_ms;        /* newest event's time; 0: none */
	uint64_t eval_ms;        /* time of the last wf_seg_step (never goes back) */
	uint64_t member;         /* bit i: in segment i, as last announced */
};

/* Bytes of a session's state under set. */
size_t wf_seg_state_size(const struct wf_seg_set *set);
/* A fresh state (no events, in no segment). */
void wf_seg_state_init(const struct wf_seg_set *set, struct wf_seg_state *st);
/* The sequence number of segment i's last announced transition (0: none). */
uint64_t *wf_seg_state_seq(const struct wf_seg_set *set, struct wf_seg_state *st, uint32_t i);

/*
 * The sequence number of the transition after prev (0: none yet) of a
 * session whose newest event has journal LSN lsn: prev + 1, or, for the
 * first, lsn * 2^20 + 1 (odd: the first transition is an enter). A state
 * that is lost (a session forgotten with no record) starts again from an
 * event journaled after every transition it made, so its numbers are above
 * every number the lost one used (while a segment makes fewer than 2^20
 * transitions per event of the session, and LSNs stay below 2^44): the key
 * (segment, version, session, sequence) is never used twice.
 */
uint64_t wf_seg_seq_next(uint64_t prev, uint64_t lsn);

/* Take an event: the times of the atoms it matches, idle's. */
void wf_seg_apply(const struct wf_seg_set *set, struct wf_seg_state *st, const struct wf_seg_event *ev);

/*
 * The segments st is in at now (bit i: segment i), evaluated in in()
 * order, and in *ret_next the earliest time after now at which one of
 * them may change with no event (WF_SEG_NEVER: none), for the session's
 * timer. in may be NULL (nothing known). Pure: st is not written.
 */
uint64_t wf_seg_eval(const struct wf_seg_set *set, const struct wf_seg_state *st, const struct wf_seg_inputs *user,
		     uint64_t now, uint64_t *ret_next);

/*
 * Evaluate at now and announce: for each segment whose bit differs from
 * st->member, advance its sequence number (wf_seg_seq_next, from
 * user->lsn) and call fn(arg, i, enter, seq),
 * then store the new membership. now is raised to st->eval_ms if it is
 * older (time never goes back for a session). Returns the next deadline
 * (as wf_seg_eval's *ret_next). fn may be NULL.
 */
typedef void (*wf_seg_transition_fn)(void *arg, uint32_t seg, int enter, uint64_t seq, uint64_t now);
uint64_t wf_seg_step(const struct wf_seg_set *set, struct wf_seg_state *st, const struct wf_seg_inputs *user,
		     uint64_t now, wf_seg_transition_fn fn, void *arg);

/* ---- previews: a session's events replayed for one evaluation time ---- */

/* The set's count()/did() atoms (wf_seg_item_match answers the first 64). */
uint32_t wf_seg_set_count_atoms(const struct wf_seg_set *set);
/* Which count atoms an item's attributes pass (ev's category, brand,
 * price; its type and time are not read): bit i for the i-th count atom of
 * the set (atoms without a filter always), i < 64. Computed once per item,
 * it answers every event of that item for wf_seg_apply_matched. */
uint64_t wf_seg_item_match(const struct wf_seg_set *set, const struct wf_seg_event *ev);
/* The longest window of a count atom with filters that an event of type
 * feeds (0: none): an event at or before now minus it needs no item. */
uint64_t wf_seg_item_window(const struct wf_seg_set *set, int type);
/* wf_seg_apply of an event whose item answered match (wf_seg_item_match;
 * needs wf_seg_set_count_atoms(set) <= 64), for an evaluation at now only
 * (now 0: for any time): a time out of an atom's window at now is not
 * kept, so wf_seg_eval at now answers as after wf_seg_apply of every
 * event, but its next deadline may be later. */
void wf_seg_apply_matched(const struct wf_seg_set *set, struct wf_seg_state *st, int type, uint64_t ts_ms,
			  uint64_t match, uint64_t now);

/* For SEGPREVIEW: a set holding rule as its last segment (named
 * "preview", version 0) and, before it, only the segments of base the rule
 * reads through in() (transitively), so a preview pays for nothing else.
 * Returns 0, -EINVAL (err filled: the rule does not compile or names an
 * unknown segment), -ENOMEM. base may be NULL. */
int wf_seg_set_with_rule(const struct wf_seg_set *base, const char *rule, size_t len, struct wf_seg_set **ret,
			 struct wf_seg_error *err);

#endif
