/*
 * rank_int.h - what libweftrank's two files share (session.c: the session
 * model; rank.c: the scoring); not installed, included only in lib/rank/.
 */
#ifndef WF_RANK_INT_H
#define WF_RANK_INT_H

#include <stdint.h>

#include "lib/rank/rank.h"

/* Ring slot of the i-th newest recent entry (i < recent_count). */
static inline uint32_t recent_slot(const struct wf_rank_session *s, uint32_t i)
{
	return (s->recent_head + WF_RANK_RECENT - 1 - i) % WF_RANK_RECENT;
}

/*
 * What session s says to one query, into w: its evidence per category
 * and brand (rows w->ev_key/ev_val: categories, then brands from w->ncat
 * on, to w->nev; no row of value +0; and by index in w->ev_direct when
 * w->direct) and per price band (w->band_ev), and its confidence, once
 * per query, so that scoring only looks values up. Defined in
 * session.c.
 */
void rank_session_evidence(struct wf_rank_scratch *w, const struct wf_snap *snap, const struct wf_rank_session *s,
			   const struct wf_rank_params *p);

#endif
