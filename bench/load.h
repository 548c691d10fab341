/*
 * load.h - what weft-load's two files share: the latency histogram, one
 * run's figures per target, and the report (load_report.c: percentiles,
 * the CSV, the gnuplot plot, /proc CPU readings). load.c drives the
 * sockets. Benchmark tooling only, included by bench/load*.c.
 *
 * Ownership: struct load_run is the caller's (zeroed before a run); it
 * holds no pointers.
 */
#ifndef WF_BENCH_LOAD_H
#define WF_BENCH_LOAD_H

#include <stdint.h>
#include <stdio.h>

/* Log-linear histogram of nanoseconds: exact below 64 ns, then 64
 * sub-buckets per power of two (1.6 % wide), up to 2^64 ns. */
#define LOAD_HIST_SUB 6
#define LOAD_HIST_BUCKETS (64u << LOAD_HIST_SUB)

struct load_hist {
	uint64_t n, max;
	uint64_t b[LOAD_HIST_BUCKETS];
};

void load_hist_add(struct load_hist *h, uint64_t ns);
/* The q-quantile (0 < q <= 1) in nanoseconds (a bucket's middle); 0 if empty. */
uint64_t load_hist_quantile(const struct load_hist *h, double q);

/* What a run measures: the whole page view, its events, its RECS. */
enum load_op { LOAD_PV, LOAD_EVENT, LOAD_RECS, LOAD_NOPS };

enum load_target { LOAD_WEFT, LOAD_REDIS, LOAD_NTARGETS };

#define LOAD_CPU_GROUPS 4

/* One target's measured run (page views sent after warm-up). */
struct load_run {
	struct load_hist h[LOAD_NOPS];
	uint64_t errors;      /* page views with any bad reply (or none) */
	uint64_t bad[LOAD_NOPS]; /* bad replies per op: -ERR, wrong type, empty list for a known user, none */
	uint64_t empty_known; /* RECS / LRANGE replies with no item for a known user (also in bad) */
	uint64_t empty_anon;  /* the same for an anonymous visitor (not an error) */
	uint64_t lost;        /* replies never received, warm-up included (errors) */
	uint64_t known, anon; /* page views of returning users, of anonymous visitors */
	uint64_t sessions;    /* sessions started */
	double seconds;       /* first send to last reply */
	double server_cpu_s;  /* CPU of the pids given for this target, -1 if none */
	double group_cpu_s[LOAD_CPU_GROUPS]; /* the same per ':'-separated group of them */
	int ngroups;
	double client_cpu_s;  /* weft-load's own */
};

/* Names: the target, and the command an op is on that target. */
const char *load_target_name(int target);
const char *load_op_name(int target, int op);

/* CPU seconds (user + system) the pids have used so far: "1,2:3" is two
 * groups (1 and 2; 3), each summed into ret_groups[] (LOAD_CPU_GROUPS at
 * most), their count into *ret_n. Returns the total, -1 if pids is NULL
 * or empty. A pid that is gone counts 0. */
double load_cpu_s(const char *pids, double ret_groups[LOAD_CPU_GROUPS], int *ret_n);

/* Print a run's lines on stdout, prefixed "LOAD <label> <target> r<round>". */
void load_print(const char *label, int target, int round, const struct load_run *r);
/* The CSV header, and one row per op of a run; median marks the run whose
 * weft/redis ratio is the median of the rounds. */
void load_csv_header(FILE *f);
void load_csv_rows(FILE *f, const char *label, int target, int round, int median, int conns, int pipeline,
		   const struct load_run *r);
/* The latency CDF of each target's page views and ops (runs[t] NULL:
 * absent) as gnuplot data beside png, then png itself if gnuplot is
 * installed. 0, or -errno writing the data. */
int load_plot(const char *png, const char *title, const struct load_run *const runs[LOAD_NTARGETS]);

#endif
