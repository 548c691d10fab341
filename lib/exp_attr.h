/*
 * exp_attr.h - attribution of an experiment from the journal: its
 * exposures (WF_JREC_EXPOSURE, lib/journal.h) and the EVENTs after them,
 * summed per unit into struct wf_exp_unit (lib/expstats.h), and per unit
 * and day into struct wf_exp_unit_day (what the day added), the input of
 * the report and of its daily series.
 *
 * Rules (README.md, "Experiments"):
 *  - an exposure counts when it names the experiment and one of its arms,
 *    at or after started_ms and (stopped) at or before stopped_ms; a
 *    request redone by a restarted ranker (same shard and request id) is
 *    counted once; a unit stays in the arm of its first exposure;
 *  - a click or pdp, a cart_add, a purchase of an item the unit was shown
 *    counts once per exposure of that item, within the window after it;
 *  - per unit, any purchase within the window after its latest exposure
 *    makes it converted and adds its revenue: the field `value` (the
 *    line's money), else `price` times `qty` (1 when absent), else 0;
 *  - an EVENT belongs to a unit by its user (unit user, user known) or by
 *    its session (a session some exposure named);
 *  - pre_revenue (CUPED): for user units, the user's purchases before
 *    started_ms; has_pre when the journal holds any event of the user
 *    before then. Session units have none.
 * The journal is read in LSN order from its oldest segment; nothing is
 * written. Everything the report counts was durable before the client
 * saw it (exposures before their replies, EVENTs before their acks), so
 * a report after a crash and recovery equals the one before for
 * everything acknowledged.
 *
 * Called by weftctl (experiment report); any thread, no shared state.
 * Units are told apart by 64-bit hashes of their ids (a collision, about
 * n^2 / 2^65, would merge two units).
 */
#ifndef WF_EXP_ATTR_H
#define WF_EXP_ATTR_H

#include <stddef.h>
#include <stdint.h>

#include "lib/exp.h"
#include "lib/expstats.h"

struct wf_exp_attr_stats {
	uint64_t records;       /* journal records read */
	uint64_t exposures;     /* of this experiment, counted */
	uint64_t redone;        /* exposures of a redone request, skipped */
	uint64_t events;        /* EVENTs that belonged to a unit */
	uint64_t first_ms, last_ms; /* first exposure, last record read */
};

/*
 * Attribute experiment e over the journal in dir. Returns 0 with
 * *ret_units (malloc'd, *ret_n of them, unit.arm = index into e->arms;
 * the caller frees) and *ret_stats, or -errno: -ENOENT no journal,
 * -EBADMSG a corrupt record before the end of the newest segment,
 * -ENOMEM.
 */
int wf_exp_attr_run(const char *dir, const struct wf_exp *e, struct wf_exp_unit **ret_units, size_t *ret_n,
		    struct wf_exp_attr_stats *ret_stats);

/*
 * wf_exp_attr_run() and also what each day added to each unit: with
 * ret_days, *ret_days (malloc'd, *ret_ndays records; the caller frees)
 * holds one struct wf_exp_unit_day per unit and day with activity, sorted
 * by (day, unit), the input of wf_exp_report_build_daily(). The day of an
 * exposure or an outcome is whole days from started_ms to its timestamp
 * (an outcome stamped before its unit's first day counts on that day).
 * ret_days NULL: the totals alone.
 */
int wf_exp_attr_run_daily(const char *dir, const struct wf_exp *e, struct wf_exp_unit **ret_units, size_t *ret_n,
			  struct wf_exp_unit_day **ret_days, size_t *ret_ndays, struct wf_exp_attr_stats *ret_stats);

#endif
