/*
 * weftctl_latency.c - `weftctl latency [--plot FILE.png]`: where a
 * millisecond goes. Every latency histogram weft keeps, as a table (count,
 * mean, p50, p90, p99, p99.9) or as a picture (gnuplot): weft-ingest's
 * request latency per command and its stages (journal flush, ring wait),
 * the rankers' event-to-visible, and, while weft-observe runs, the BPF
 * histograms (run-queue wait per process, weft-ingest's fdatasync).
 * Cumulative: since the segment was created (weft-observe's: since it
 * started). Reads the segment (relaxed loads: display) and the exposition
 * `weftctl metrics` renders. Program: weftctl.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin/weftctl_int.h"
#include "shm/reqlat.h"
#include "shm/shm.h"

#define LAT_ROWS (WF_LAT_SERIES + 1 + WF_SHM_MAX_SHARDS + 2 * (WF_SHM_MAX_SHARDS + 2))
#define LAT_MAXB WF_LAT_BUCKETS

/* One histogram: per bucket [lo, hi) seconds and its count (not cumulative). */
struct lat_row {
	char name[64];
	int n;
	double lo[LAT_MAXB], hi[LAT_MAXB], cnt[LAT_MAXB];
	double total, sum_s; /* sum_s < 0: unknown (estimated from midpoints) */
};

struct lat_table {
	struct lat_row *rows;
	size_t n;
};

static struct lat_row *row_new(struct lat_table *t, const char *name)
{
	struct lat_row *r;

	if (t->n == LAT_ROWS)
		return NULL;
	r = &t->rows[t->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->sum_s = -1;
	return r;
}

/* A lathist snapshot (ns) as a row; sum_ns < 0: unknown. */
static void row_lathist(struct lat_table *t, const char *name, const uint64_t *c, double sum_ns)
{
	struct lat_row *r = row_new(t, name);

	if (!r)
		return;
	for (uint32_t i = 0; i < WF_LAT_BUCKETS; i++) {
		if (!c[i])
			continue;
		r->lo[r->n] = (double)wf_lat_bucket_lower(i) * 1e-9;
		r->hi[r->n] = (double)wf_lat_bucket_upper(i) * 1e-9;
		r->cnt[r->n++] = (double)c[i];
		r->total += (double)c[i];
	}
	r->sum_s = sum_ns >= 0 ? sum_ns * 1e-9 : -1;
}

/* "process=\"weft-ranker\",shard=\"0\"" -> "ranker 0"; "weft-ingest" -> "ingest". */
static void proc_name(const char *labels, char *out, size_t len)
{
	char proc[32] = "";
	int shard;

	if (sscanf(labels, "process=\"weft-%31[^\"]\",shard=\"%d\"", proc, &shard) == 2)
		snprintf(out, len, "%s %d", proc, shard);
	else if (sscanf(labels, "process=\"weft-%31[^\"]\"", proc) == 1)
		snprintf(out, len, "%s", proc);
	else
		snprintf(out, len, "?");
}

/*
 * weft-observe's histograms of family fam (cumulative power-of-two
 * buckets, seconds) from the exposition text, one row per label set
 * with samples, named prefix + the process.
 */
static void rows_bpf(struct lat_table *t, const char *text, const char *fam, const char *prefix)
{
	size_t flen = strlen(fam);
	struct lat_row *r = NULL;
	char cur[128] = "";
	double prev_le = 0, prev_c = 0;

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		const char *le, *end = strchr(l, '\n');
		char labels[128], name[48], who[32];
		double v, bound;
		size_t llen;

		if (strncmp(l, fam, flen) != 0 || strncmp(l + flen, "_bucket{", 8) != 0)
			continue;
		le = strstr(l, "le=\"");
		if (!le || (end && le > end) || le < l + flen + 8)
			continue;
		llen = (size_t)(le - (l + flen + 8));
		snprintf(labels, sizeof(labels), "%.*s", (int)(llen ? llen - 1 : 0), l + flen + 8);
		bound = strncmp(le + 4, "+Inf", 4) == 0 ? INFINITY : strtod(le + 4, NULL);
		if (sscanf(strchr(le + 4, '}') ? strchr(le + 4, '}') + 1 : "", "%lf", &v) != 1)
			continue;
		if (strcmp(labels, cur) != 0) {
			if (r && r->total == 0)
				t->n--; /* no samples: not a row */
			snprintf(cur, sizeof(cur), "%s", labels);
			proc_name(labels, who, sizeof(who));
			snprintf(name, sizeof(name), "%s %s (BPF)", prefix, who);
			r = row_new(t, name);
			prev_le = prev_c = 0;
		}
		if (r && v > prev_c && r->n < (int)LAT_MAXB) {
			r->lo[r->n] = prev_le;
			r->hi[r->n] = bound;
			r->cnt[r->n++] = v - prev_c;
			r->total = v;
		}
		prev_le = isinf(bound) ? prev_le : bound;
		prev_c = v;
	}
	if (r && r->total == 0)
		t->n--;
}

/* The q-quantile of a row (seconds), interpolated inside its bucket; an
 * open top bucket answers its lower bound. 0 if empty. */
static double row_quantile(const struct lat_row *r, double q)
{
	double rank = q * r->total, acc = 0;

	if (r->total <= 0)
		return 0;
	for (int i = 0; i < r->n; i++) {
		if (acc + r->cnt[i] >= rank) {
			if (isinf(r->hi[i]))
				return r->lo[i];
			return r->lo[i] + (r->hi[i] - r->lo[i]) * (rank - acc) / r->cnt[i];
		}
		acc += r->cnt[i];
	}
	return r->lo[r->n - 1];
}

static double row_mean(const struct lat_row *r)
{
	double s = 0;

	if (r->total <= 0)
		return 0;
	if (r->sum_s >= 0)
		return r->sum_s / r->total;
	for (int i = 0; i < r->n; i++)
		s += r->cnt[i] * (isinf(r->hi[i]) ? r->lo[i] : (r->lo[i] + r->hi[i]) / 2);
	return s / r->total;
}

/* Every histogram, in the order a request meets them. */
static int collect(const struct wf_cli_opts *o, const struct wf_shm *shm, struct lat_table *t)
{
	uint64_t c[WF_LAT_BUCKETS], all[WF_LAT_BUCKETS] = { 0 };
	struct wf_buf b = { 0 };
	char name[40];

	for (uint32_t s = 0; s < WF_LAT_SERIES; s++) {
		wf_lat_snapshot(shm->reqlat->hist[s], c);
		/* relaxed: display (the one writer, weft-ingest, adds relaxed) */
		row_lathist(t, wf_reqlat_name(s)->display, c,
			    (double)atomic_load_explicit(&shm->reqlat->sum_ns[s], memory_order_relaxed));
	}
	for (uint32_t i = 0; i < wf_shm_nshards(shm); i++) {
		wf_lat_snapshot(wf_shm_shard(shm, i)->stats.visible_hist, c);
		for (uint32_t k = 0; k < WF_LAT_BUCKETS; k++)
			all[k] += c[k];
	}
	row_lathist(t, "event visible", all, -1);
	for (uint32_t i = 0; i < wf_shm_nshards(shm) && wf_shm_nshards(shm) > 1; i++) {
		wf_lat_snapshot(wf_shm_shard(shm, i)->stats.visible_hist, c);
		snprintf(name, sizeof(name), "  visible shard %u", i);
		row_lathist(t, name, c, -1);
	}
	if (wf_cli_metrics_render(o, shm, &b) < 0) {
		wf_buf_fini(&b);
		return -ENOMEM;
	}
	rows_bpf(t, b.data, "weft_fsync_seconds", "fdatasync");
	rows_bpf(t, b.data, "weft_runqueue_wait_seconds", "runq");
	wf_buf_fini(&b);
	return 0;
}

/* seconds, as weftctl top shows a duration */
static const char *secs(double s, char *buf, size_t len)
{
	return wf_cli_dur(s * 1e9, buf, len);
}

static void print_table(FILE *f, const struct lat_table *t, int have_bpf)
{
	char m[16], a[16], b[16], c[16], d[16];

	fprintf(f, "weft latency, cumulative (request series: from the ingest loop pass that\n"
		   "received a request to the pass end that sent its reply)\n");
	fprintf(f, "%-24s %10s %8s %8s %8s %8s %8s\n", "series", "count", "mean", "p50", "p90", "p99", "p99.9");
	for (size_t i = 0; i < t->n; i++) {
		const struct lat_row *r = &t->rows[i];

		fprintf(f, "%-24s %10.0f %8s %8s %8s %8s %8s\n", r->name, r->total, secs(row_mean(r), m, sizeof(m)),
			secs(row_quantile(r, 0.50), a, sizeof(a)), secs(row_quantile(r, 0.90), b, sizeof(b)),
			secs(row_quantile(r, 0.99), c, sizeof(c)), secs(row_quantile(r, 0.999), d, sizeof(d)));
	}
	if (!have_bpf)
		fprintf(f, "(no BPF histograms: weft-observe is not running or is degraded; see weftctl status)\n");
}

/* The dash type of a row in the picture: 1 a command's requests, 2 a
 * stage of them (flush, ring wait), 3 event-to-visible, 4 BPF. */
static int row_dash(const struct lat_row *r)
{
	if (strstr(r->name, "(BPF)"))
		return 4;
	if (strstr(r->name, "visible"))
		return 3;
	if (strcmp(r->name, wf_reqlat_name(WF_LAT_FLUSH)->display) == 0 ||
	    strcmp(r->name, wf_reqlat_name(WF_LAT_RING)->display) == 0)
		return 2;
	return 1;
}

/*
 * The picture: left, latency at each percentile (steps, log scales) of
 * every row with samples; right, p50 and p99 of each as bars (log scale),
 * so the biggest parts of a millisecond stand out. 0, or -errno: -ENOEXEC
 * when gnuplot is not installed, -EINVAL for a name with a quote, the
 * open()'s errno when png cannot be written, -EIO when gnuplot failed.
 */
static int plot(const char *png, const struct lat_table *t)
{
	const char *gp = access("/usr/bin/gnuplot", X_OK) == 0 ? "/usr/bin/gnuplot" : NULL;
	int first = 1, st;
	FILE *g;

	if (!gp)
		return -ENOEXEC;
	/* gnuplot writes a PNG it cannot open to stdout instead: open it here
	 * first, so that a bad path is our error; a quote would end gnuplot's
	 * string. */
	if (strchr(png, '\''))
		return -EINVAL;
	st = open(png, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (st < 0)
		return -errno;
	close(st);
	g = popen(gp, "we");
	if (!g)
		return -errno;
	fprintf(g, "set terminal pngcairo size 1500,640 noenhanced\nset output '%s'\n", png);
	for (size_t i = 0; i < t->n; i++) {
		const struct lat_row *r = &t->rows[i];
		double acc = 0;

		if (r->total <= 0)
			continue;
		fprintf(g, "$S%zu << EOD\n", i);
		for (int k = 0; k < r->n; k++) {
			double x0 = 1 / (1 - WF_MIN(acc / r->total, 0.99999));

			acc += r->cnt[k];
			/* a bucket's step: its lower bound from where it starts */
			fprintf(g, "%.6g %.6g\n", x0, (isinf(r->hi[k]) ? r->lo[k] * 2 : r->lo[k] + 1e-9) * 1e6);
			fprintf(g, "%.6g %.6g\n", 1 / (1 - WF_MIN(acc / r->total, 0.99999)),
				(isinf(r->hi[k]) ? r->lo[k] * 2 : r->hi[k]) * 1e6);
		}
		fprintf(g, "EOD\n");
	}
	fprintf(g, "$BARS << EOD\n");
	for (size_t i = 0; i < t->n; i++)
		if (t->rows[i].total > 0)
			fprintf(g, "\"%s\" %.6g %.6g\n", t->rows[i].name, row_quantile(&t->rows[i], 0.5) * 1e6,
				row_quantile(&t->rows[i], 0.99) * 1e6);
	fprintf(g, "EOD\n");
	fprintf(g, "set multiplot layout 1,2 title 'weft: where a millisecond goes (cumulative histograms)'\n"
		   "set grid\nset logscale xy\nset xrange [1:100000]\nset yrange [1:*]\nset key bottom right font ',8'\n"
		   "set xtics ('0' 1, '50' 2, '90' 10, '99' 100, '99.9' 1000, '99.99' 10000)\n"
		   "set xlabel 'percentile'\nset ylabel 'latency (us, log scale)'\n"
		   "set title 'latency at each percentile'\nplot ");
	for (size_t i = 0; i < t->n; i++) {
		if (t->rows[i].total <= 0)
			continue;
		/* solid: requests; dashed: their stages, event-to-visible, BPF */
		fprintf(g, "%s$S%zu using 1:2 with lines lw 2 dt %d title '%s'", first ? "" : ", ", i, row_dash(&t->rows[i]),
			t->rows[i].name);
		first = 0;
	}
	if (first)
		fprintf(g, "1 notitle");
	fprintf(g, "\nunset logscale x\nset xrange [*:*]\nset xtics rotate by -40 font ',8' autofreq\n"
		   "set xlabel ''\nset style data histograms\nset style histogram clustered gap 1\n"
		   "set style fill solid 0.8 border -1\nset key top right\n"
		   "set title 'p50 and p99 of each'\nset yrange [0.1:*]\n");
	if (first)
		fprintf(g, "plot 1 notitle\n");
	else
		fprintf(g, "plot $BARS using 2:xtic(1) title 'p50' lc rgb '#4477aa', '' using 3 title 'p99' "
			   "lc rgb '#cc6677'\n");
	fprintf(g, "unset multiplot\n");
	st = pclose(g);
	return st == 0 ? 0 : -EIO;
}

int wf_cli_latency(const struct wf_cli_opts *o, const char *png)
{
	struct lat_table t = { .rows = calloc(LAT_ROWS, sizeof(struct lat_row)) };
	struct wf_shm *shm;
	int rc = 1, r, have_bpf = 0;

	if (!t.rows)
		return 1;
	if (wf_cli_attach(o, &shm) < 0) {
		free(t.rows);
		return 1;
	}
	r = collect(o, shm, &t);
	for (size_t i = 0; i < t.n; i++)
		have_bpf |= strstr(t.rows[i].name, "(BPF)") != NULL;
	if (r < 0) {
		fprintf(stderr, "weftctl: latency: %s\n", strerror(-r));
	} else if (png) {
		r = plot(png, &t);
		if (r == -ENOEXEC)
			fprintf(stderr, "weftctl: latency --plot needs gnuplot (Debian: apt install gnuplot-nox)\n");
		else if (r == -EINVAL)
			fprintf(stderr, "weftctl: latency: --plot %s: a file name without quotes, please\n", png);
		else if (r == -EIO)
			fprintf(stderr, "weftctl: latency: gnuplot could not draw %s (its error is above)\n", png);
		else if (r < 0)
			fprintf(stderr, "weftctl: latency: could not draw %s: %s\n", png, strerror(-r));
		else
			printf("%s: %zu histograms\n", png, t.n);
		rc = r < 0;
	} else {
		print_table(stdout, &t, have_bpf);
		rc = fflush(stdout) != 0;
	}
	wf_shm_detach(shm);
	free(t.rows);
	return rc;
}
