/*
 * reqlat.h - the names of weft-ingest's request latency series (struct
 * wf_reqlat in layout.h), one table for every reader: INFO's
 * Latencystats, `weftctl metrics`, `weftctl top`, `weftctl latency`.
 * Callers: weft-ingest, weftctl, weft-observe. Never logs.
 */
#ifndef WF_REQLAT_H
#define WF_REQLAT_H

#include <stdint.h>

#include "shm/layout.h"

struct wf_reqlat_name {
	const char *command; /* Prometheus label command="..." */
	const char *path;    /* label path="...": who answered (front, ranker, journal, ingest) */
	const char *info;    /* INFO latency_percentiles_usec_<info> */
	const char *display; /* weftctl top / latency, at most 12 characters */
};

/* Series ser's names; NULL past WF_LAT_SERIES. */
static inline const struct wf_reqlat_name *wf_reqlat_name(uint32_t ser)
{
	static const struct wf_reqlat_name names[WF_LAT_SERIES] = {
		[WF_LAT_EVENT] = { "EVENT", "journal", "event", "EVENT ack" },
		[WF_LAT_RECS_FRONT] = { "RECS", "front", "recs_front", "RECS front" },
		[WF_LAT_RECS] = { "RECS", "ranker", "recs", "RECS ranker" },
		[WF_LAT_RERANK] = { "RERANK", "ranker", "rerank", "RERANK" },
		[WF_LAT_HISTORY] = { "HISTORY", "ranker", "history", "HISTORY" },
		[WF_LAT_SEGMENTS] = { "SEGMENTS", "ranker", "segments", "SEGMENTS" },
		[WF_LAT_RANKER_OTHER] = { "other", "ranker", "ranker_other", "other rank" },
		[WF_LAT_LOCAL] = { "other", "ingest", "local", "local" },
		[WF_LAT_FLUSH] = { NULL, NULL, "journal_flush", "jrnl flush" },
		[WF_LAT_RING] = { NULL, NULL, "ring_wait", "ring wait" },
	};

	return ser < WF_LAT_SERIES ? &names[ser] : NULL;
}

#endif
