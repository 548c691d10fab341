/*
 * exp.h - A/B experiments: their definitions (arms with a share and a
 * serving policy, the unit, the attribution window, the pages), the
 * experiments.conf file that holds them, and the assignment of a unit to
 * an arm by a salted hash.
 *
 * Writer of DIR/experiments.conf: weft-admin only (wf_exp_conf_format,
 * written atomically, then ctl->experiments_gen bumped: R13). Readers:
 * weft-ranker (wf_exp_conf_load at start and when experiments_gen moves),
 * weftctl (reports). Linked into all of them through libweft.
 *
 * Assignment (wf_exp_assign) depends on nothing but the experiment's salt,
 * its arms' shares and the unit's bytes: every shard, every restart and
 * every snapshot generation give a unit the same arm.
 */
#ifndef WF_EXP_H
#define WF_EXP_H

#include <stddef.h>
#include <stdint.h>

#define WF_EXP_MAX 32u          /* experiments in one file (any state) */
#define WF_EXP_ARMS_MAX 8u
#define WF_EXP_NAME_MAX 48u     /* experiment and arm names: [A-Za-z0-9_.-], 1..48 bytes */
#define WF_EXP_SHARE_SCALE 10000u /* shares are in 1/100 of a percent */
#define WF_EXP_WINDOW_DEFAULT_MS (30ull * 60 * 1000)
#define WF_EXP_UNIT_MAX (2 + 128u) /* "u:" or "s:" and an id (WF_ID_MAX) */

enum wf_exp_policy {
	WF_EXP_LIVE = 0,        /* today's hybrid (what everyone else gets) */
	WF_EXP_BATCH,           /* today's snapshot, no session rerank */
	WF_EXP_STALE,           /* the previous generation's snapshot, no session rerank */
	WF_EXP_WEIGHTS,         /* the hybrid with the arm's batch/session weights */
	WF_EXP_POLICIES
};

enum wf_exp_state { WF_EXP_CREATED = 0, WF_EXP_RUNNING, WF_EXP_STOPPED, WF_EXP_STATES };

/* The unit an experiment splits: the user (a visitor without one: the
 * session), or always the session. */
enum wf_exp_unit_kind { WF_EXP_UNIT_USER = 0, WF_EXP_UNIT_SESSION };

struct wf_exp_armdef {
	char name[WF_EXP_NAME_MAX + 1];
	uint32_t share;         /* 1/100 of a percent of the units: 1..WF_EXP_SHARE_SCALE */
	int policy;             /* enum wf_exp_policy */
	float w_batch, w_session; /* WF_EXP_WEIGHTS only */
};

struct wf_exp {
	char name[WF_EXP_NAME_MAX + 1];
	int state;              /* enum wf_exp_state */
	int unit;               /* enum wf_exp_unit_kind */
	uint64_t salt;          /* fixed at creation: the assignment's */
	uint64_t window_ms;     /* attribution window after an exposure */
	uint32_t pages;         /* bit per enum wf_page_type it serves on; 0: every page */
	uint32_t narms;
	uint64_t created_ms, started_ms, stopped_ms; /* 0: not yet */
	struct wf_exp_armdef arms[WF_EXP_ARMS_MAX];
};

struct wf_exp_set {
	uint32_t n;
	struct wf_exp exps[WF_EXP_MAX];
};

/* Names of policies, states, unit kinds ("live", "running", "user", ...). */
const char *wf_exp_policy_name(int policy);
const char *wf_exp_state_name(int state);
const char *wf_exp_unit_name(int unit);

/* 1 if s[0..len) is a valid experiment or arm name. */
int wf_exp_name_valid(const char *s, size_t len);

/*
 * Parse an arm "ARM=PERCENT:POLICY" (PERCENT a decimal with at most two
 * places, > 0 and <= 100; POLICY stale | batch | live | weights:B,S with
 * B and S finite in [0, 10]). Returns 0 (*ret filled), or -EINVAL with
 * the reason in err.
 */
int wf_exp_arm_parse(const char *s, struct wf_exp_armdef *ret, char *err, size_t errlen);
/* Format arm a back to "ARM=PERCENT:POLICY" into out (NUL-terminated). */
void wf_exp_arm_format(const struct wf_exp_armdef *a, char *out, size_t n);

/* Parse a duration "30m", "2h", "90s", "1d" or plain milliseconds.
 * 0 (*ret_ms > 0), or -EINVAL. */
int wf_exp_window_parse(const char *s, uint64_t *ret_ms);
/* Parse a page list "home,pdp,..." into a bit mask (see struct wf_exp).
 * 0, or -EINVAL naming the bad page in err. */
int wf_exp_pages_parse(const char *s, uint32_t *ret, char *err, size_t errlen);
/* Format a page mask ("home,pdp" or "all") into out. */
void wf_exp_pages_format(uint32_t pages, char *out, size_t n);

/* 1 if e serves on page (enum wf_page_type). */
static inline int wf_exp_on_page(const struct wf_exp *e, int page)
{
	return e->pages == 0 || (page >= 0 && page < 32 && (e->pages >> page & 1u));
}

/* 1 if a and b could both claim one request: the same unit kind and a
 * page in common. */
int wf_exp_overlap(const struct wf_exp *a, const struct wf_exp *b);

/*
 * Check a definition on its own (a name, 1..WF_EXP_ARMS_MAX arms with
 * distinct names, shares summing to at most 100 %). 0, or -EINVAL with
 * the reason in err.
 */
int wf_exp_validate(const struct wf_exp *e, char *err, size_t errlen);

/* The experiment named name in set, or NULL. */
struct wf_exp *wf_exp_find(struct wf_exp_set *set, const char *name);

/*
 * The unit string of a request: "u:" user when the experiment's unit is
 * the user and the user is known (not "-"), else "s:" session. Written to
 * out (NUL-terminated, at most WF_EXP_UNIT_MAX + 1 bytes). Returns its
 * length.
 */
size_t wf_exp_unit_of(const struct wf_exp *e, const char *session, size_t slen, const char *user, size_t ulen,
		      char *out);

/*
 * The arm of unit (unit[0..len), as wf_exp_unit_of() gives it): the
 * bucket xxh3(salt, unit) mod WF_EXP_SHARE_SCALE falls in one arm's
 * share (arms in order), or past them all: -1, the unit is outside the
 * experiment (served normally, not exposed).
 */
int wf_exp_assign(const struct wf_exp *e, const char *unit, size_t len);

/*
 * experiments.conf: one block per experiment,
 *   [experiment NAME]
 *   state = created|running|stopped
 *   unit = user|session
 *   salt = 16 hex digits
 *   window_ms = N
 *   pages = all | home,pdp,...
 *   created_ms = N, started_ms = N, stopped_ms = N
 *   arm = ARM=PERCENT:POLICY   (one line per arm, in order)
 * '#' starts a comment line. Parse text[0..len) into *ret: 0, or -EINVAL
 * with "line N: what" in err (*ret untouched).
 */
int wf_exp_conf_parse(const char *text, size_t len, struct wf_exp_set *ret, char *err, size_t errlen);
/* The file text of set into b (appended). 0 or -ENOMEM. */
struct wf_buf;
int wf_exp_conf_format(const struct wf_exp_set *set, struct wf_buf *b);
/* Read and parse path; a missing file is an empty set. 0, -errno of the
 * read, or -EINVAL (err says where). */
int wf_exp_conf_load(const char *path, struct wf_exp_set *ret, char *err, size_t errlen);

#endif
