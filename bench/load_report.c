/*
 * load_report.c - weft-load's figures: the latency histogram and its
 * percentiles, the stdout lines, the CSV rows, the gnuplot CDF plot, and
 * CPU seconds of the servers' processes from /proc. Linked into weft-load
 * only (bench/load.c drives the sockets).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/load.h"

void load_hist_add(struct load_hist *h, uint64_t ns)
{
	uint32_t i;

	if (ns < 64) {
		i = (uint32_t)ns;
	} else {
		int e = 63 - __builtin_clzll(ns);
		i = ((uint32_t)(e - LOAD_HIST_SUB + 1) << LOAD_HIST_SUB) + (uint32_t)((ns >> (e - LOAD_HIST_SUB)) & 63);
	}
	h->b[i]++;
	h->n++;
	if (ns > h->max)
		h->max = ns;
}

/* Bucket i's lower bound and width in ns. */
static void bucket(uint32_t i, uint64_t *ret_lo, uint64_t *ret_w)
{
	uint32_t e;

	if (i < 64) {
		*ret_lo = i;
		*ret_w = 1;
		return;
	}
	e = (i >> LOAD_HIST_SUB) + LOAD_HIST_SUB - 1;
	*ret_lo = (64ull + (i & 63)) << (e - LOAD_HIST_SUB);
	*ret_w = 1ull << (e - LOAD_HIST_SUB);
}

uint64_t load_hist_quantile(const struct load_hist *h, double q)
{
	uint64_t want, seen = 0, lo, w;

	if (!h->n)
		return 0;
	want = (uint64_t)(q * (double)h->n + 0.999999);
	if (want < 1)
		want = 1;
	for (uint32_t i = 0; i < LOAD_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			bucket(i, &lo, &w);
			lo += w / 2;
			return lo < h->max ? lo : h->max;
		}
	}
	return h->max;
}

const char *load_target_name(int target)
{
	return target == LOAD_WEFT ? "weft" : "redis";
}

const char *load_op_name(int target, int op)
{
	static const char *const n[LOAD_NTARGETS][LOAD_NOPS] = { { "pageview", "EVENT", "RECS" },
								{ "pageview", "XADD", "LRANGE" } };
	return n[target][op];
}

double load_cpu_s(const char *pids, double ret_groups[LOAD_CPU_GROUPS], int *ret_n)
{
	long tck = sysconf(_SC_CLK_TCK);
	double s = 0, g[LOAD_CPU_GROUPS] = { 0 };
	const char *p = pids;
	int n = 0;

	if (!pids || !*pids)
		return -1;
	while (*p) {
		char path[64], buf[1024], *end, *rp;
		long pid = strtol(p, &end, 10);
		unsigned long long ut = 0, st = 0;
		FILE *f;

		if (end == p)
			break;
		p = *end == ',' || *end == ':' ? end + 1 : end;
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		f = fopen(path, "re");
		if (f && fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')) &&
		    sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2) {
			s += (double)(ut + st) / (double)tck;
			g[n] += (double)(ut + st) / (double)tck;
		}
		if (f)
			fclose(f);
		if (*end == ':' && n + 1 < LOAD_CPU_GROUPS)
			n++;
	}
	memcpy(ret_groups, g, sizeof(g));
	*ret_n = n + 1;
	return s;
}

static double per_s(const struct load_run *r, int op)
{
	return r->seconds > 0 ? (double)r->h[op].n / r->seconds : 0;
}

static double ops(const struct load_run *r)
{
	return (double)(r->h[LOAD_EVENT].n + r->h[LOAD_RECS].n);
}

/* CPU microseconds per page view, -1 if not measured. */
static double cpu_us(double s, const struct load_run *r)
{
	return s >= 0 && r->h[LOAD_PV].n ? s * 1e6 / (double)r->h[LOAD_PV].n : -1;
}

/* "a+b" : CPU microseconds per page view of each pid group. */
static void cpu_groups(char *out, size_t n, const struct load_run *r)
{
	size_t len = 0;

	out[0] = 0;
	for (int g = 0; g < r->ngroups && len < n; g++)
		len += (size_t)snprintf(out + len, n - len, "%s%.1f", g ? "+" : "", cpu_us(r->group_cpu_s[g], r));
}

void load_print(const char *label, int target, int round, const struct load_run *r)
{
	const char *t = load_target_name(target);

	char groups[128];

	cpu_groups(groups, sizeof(groups), r);
	printf("LOAD %s %s r%d pageviews %llu in %.2f s = %.0f/s, ops %.0f/s (%.2f events per page view), errors %llu"
	       " (empty for a known user %llu, replies lost %llu), known %llu anonymous %llu (empty %llu), sessions %llu,"
	       " CPU us/pageview"
	       " server %.1f (%s) client %.1f\n",
	       label, t, round, (unsigned long long)r->h[LOAD_PV].n, r->seconds, per_s(r, LOAD_PV),
	       r->seconds > 0 ? ops(r) / r->seconds : 0,
	       r->h[LOAD_PV].n ? (double)r->h[LOAD_EVENT].n / (double)r->h[LOAD_PV].n : 0,
	       (unsigned long long)r->errors, (unsigned long long)r->empty_known, (unsigned long long)r->lost,
	       (unsigned long long)r->known,
	       (unsigned long long)r->anon, (unsigned long long)r->empty_anon, (unsigned long long)r->sessions,
	       cpu_us(r->server_cpu_s, r), groups, cpu_us(r->client_cpu_s, r));
	for (int op = 0; op < LOAD_NOPS; op++) {
		const struct load_hist *h = &r->h[op];
		printf("LOAD %s %s r%d %-8s n %llu %.0f/s p50 %.3f p99 %.3f p99.9 %.3f max %.3f ms, bad %llu\n", label, t,
		       round, load_op_name(target, op), (unsigned long long)h->n, per_s(r, op),
		       (double)load_hist_quantile(h, 0.5) / 1e6, (double)load_hist_quantile(h, 0.99) / 1e6,
		       (double)load_hist_quantile(h, 0.999) / 1e6, (double)h->max / 1e6, (unsigned long long)r->bad[op]);
	}
	fflush(stdout);
}

void load_csv_header(FILE *f)
{
	fprintf(f, "label,target,round,median,conns,pipeline,op,count,per_s,p50_us,p90_us,p99_us,p999_us,max_us,"
		   "bad,pageview_errors,lost,empty_known,empty_anon,known,anon,sessions,seconds,ops_per_s,"
		   "server_cpu_us_per_pv,server_cpu_groups_us_per_pv,client_cpu_us_per_pv\n");
}

void load_csv_rows(FILE *f, const char *label, int target, int round, int median, int conns, int pipeline,
		   const struct load_run *r)
{
	char groups[128];

	cpu_groups(groups, sizeof(groups), r);
	for (int op = 0; op < LOAD_NOPS; op++) {
		const struct load_hist *h = &r->h[op];
		fprintf(f, "%s,%s,%d,%d,%d,%d,%s,%llu,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,"
			   "%.3f,%.1f,%.2f,%s,%.2f\n",
			label, load_target_name(target), round, median, conns, pipeline, load_op_name(target, op),
			(unsigned long long)h->n, per_s(r, op), (double)load_hist_quantile(h, 0.5) / 1e3,
			(double)load_hist_quantile(h, 0.9) / 1e3, (double)load_hist_quantile(h, 0.99) / 1e3,
			(double)load_hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3, (unsigned long long)r->bad[op],
			(unsigned long long)r->errors, (unsigned long long)r->lost, (unsigned long long)r->empty_known,
			(unsigned long long)r->empty_anon, (unsigned long long)r->known, (unsigned long long)r->anon,
			(unsigned long long)r->sessions, r->seconds, r->seconds > 0 ? ops(r) / r->seconds : 0,
			cpu_us(r->server_cpu_s, r), groups, cpu_us(r->client_cpu_s, r));
	}
}

/* One gnuplot data block: "latency_us fraction" at each non-empty bucket. */
static void cdf_block(FILE *f, const struct load_hist *h)
{
	uint64_t seen = 0, lo, w;

	for (uint32_t i = 0; i < LOAD_HIST_BUCKETS; i++) {
		if (!h->b[i])
			continue;
		seen += h->b[i];
		bucket(i, &lo, &w);
		fprintf(f, "%.3f %.6f\n", (double)(lo + w) / 1e3, (double)seen / (double)h->n);
	}
	if (!h->n)
		fprintf(f, "1 0\n");
	fprintf(f, "\n\n");
}

int load_plot(const char *png, const char *title, const struct load_run *const runs[LOAD_NTARGETS])
{
	static const char *const colour[LOAD_NTARGETS] = { "#7030a0", "#c00000" };
	char dat[4096];
	FILE *f, *g;
	int block = 0, first = 1;

	snprintf(dat, sizeof(dat), "%s.dat", png);
	f = fopen(dat, "we");
	if (!f)
		return -errno;
	for (int t = 0; t < LOAD_NTARGETS; t++)
		for (int op = 0; runs[t] && op < LOAD_NOPS; op++)
			cdf_block(f, &runs[t]->h[op]);
	if (fclose(f) != 0)
		return -errno;
	if (access("/usr/bin/gnuplot", X_OK) != 0)
		return 0;
	g = popen("gnuplot", "we");
	if (!g)
		return 0;
	fprintf(g, "set terminal pngcairo size 1400,560 noenhanced\nset output '%s'\n"
		   "set multiplot layout 1,2 title '%s'\nset key bottom right font ',9'\nset grid\n"
		   "set logscale x\nset xlabel 'latency (us, log scale)'\nset ylabel 'fraction at or below'\n"
		   "set yrange [0:1]\nset title 'page view (EVENTs + RECS in one round trip): CDF'\nplot ",
		png, title);
	for (int t = 0; t < LOAD_NTARGETS; t++) {
		if (!runs[t])
			continue;
		fprintf(g, "%s'%s' index %d using 1:2 with steps lw 2 lc rgb '%s' title '%s page view'", first ? "" : ", ",
			dat, block, colour[t], load_target_name(t));
		block += LOAD_NOPS;
		first = 0;
	}
	fprintf(g, "\nset title 'tail: latency at each percentile'\nset logscale y\nset yrange [*:*]\n"
		   "set xrange [1:100000]\nset xlabel 'percentile'\nset ylabel 'latency (us, log scale)'\n"
		   "set xtics ('50' 2, '90' 10, '99' 100, '99.9' 1000, '99.99' 10000)\nset key top left\nplot ");
	block = 0;
	first = 1;
	for (int t = 0; t < LOAD_NTARGETS; t++) {
		for (int op = 0; runs[t] && op < LOAD_NOPS; op++, block++) {
			fprintf(g, "%s'%s' index %d using ($2 >= 0.99999 ? 100000 : 1/(1-$2)):1 with steps lw %d dt %d lc rgb '%s'"
				   " title '%s %s'",
				first ? "" : ", ", dat, block, op == LOAD_PV ? 2 : 1, op + 1, colour[t],
				load_target_name(t), load_op_name(t, op));
			first = 0;
		}
	}
	fprintf(g, "\nunset multiplot\n");
	pclose(g);
	return 0;
}
