/*
 * prom.h - weft's Prometheus text exposition, rendered from what the
 * shared-memory segment already holds (counters, lathist histograms, ring
 * use) plus /proc/PID/task/TID/schedstat of weft's processes.
 *
 * Callers: weftctl (`weftctl metrics`, `weftctl top`) and weft-observe
 * (--metrics-file). Reads the segment only (relaxed loads: display);
 * never writes it, never logs.
 */
#ifndef WF_PROM_H
#define WF_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"
#include "shm/shm.h"

/* What weft-observe publishes in DIR/observe.prom and DIR/observe.state. */
#define WF_OBSERVE_PROM "observe.prom"
#define WF_OBSERVE_STATE "observe.state"

/* One weft process as the exposition labels it. */
struct wf_prom_proc {
	char process[16]; /* "weft-ingest", "weft-ranker", "weft-admin" */
	int shard;        /* ranker's shard, -1 otherwise */
	uint32_t pid;     /* 0: not running */
};

/*
 * The weft processes the segment names (admin, ingest, every ranker), at
 * most max. Returns how many were written to procs.
 */
size_t wf_prom_procs(const struct wf_shm *shm, struct wf_prom_proc *procs, size_t max);

/*
 * Run-queue wait and on-CPU time of every thread of pid, summed, in ns,
 * from /proc/PID/task/TID/schedstat (fields 1 and 2). 0 or -errno
 * (-ENOENT: no such process).
 */
int wf_prom_schedstat(uint32_t pid, uint64_t *ret_cpu_ns, uint64_t *ret_wait_ns);

/*
 * Append the whole exposition to b: the segment's metrics, the journal's
 * size (journal_dir, or NULL to leave it out), schedstat per process, and
 * extra verbatim (weft-observe's own families, or NULL). 0 or -ENOMEM.
 */
int wf_prom_render(struct wf_buf *b, const struct wf_shm *shm, const char *journal_dir, const char *extra);

/* Families are written with these (0 or -ENOMEM), so weft-observe's match. */
int wf_prom_head(struct wf_buf *b, const char *name, const char *type, const char *help);
/*
 * A cumulative histogram family member: counts[i] samples at most
 * bounds[i] seconds (ascending, n of them, bounds[n - 1] may be +Inf as
 * INFINITY), sum in seconds; labels: "" or `k="v",...` without braces.
 */
int wf_prom_hist(struct wf_buf *b, const char *name, const char *labels, const double *bounds,
		 const uint64_t *counts, size_t n, double sum);

#endif
