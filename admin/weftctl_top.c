/*
 * weftctl_top.c - `weftctl top [--once]`: a live view of the appliance
 * (like redis-cli --stat and htop together), refreshed each second, `q`
 * to quit; --once prints one frame (rates over one second) for scripts.
 * A frame fits 80 x 24. Reads the segment (relaxed loads, display only),
 * /proc (schedstat, RSS) and weft-observe's DIR/observe.prom (run-queue
 * wait histograms). Program: weftctl.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "admin/weftctl_int.h"
#include "observe/prom.h"
#include "shm/reqlat.h"

#define LOAD(x) ((uint64_t)atomic_load_explicit(&(x), memory_order_relaxed))
#define TOP_PROCS (WF_SHM_MAX_SHARDS + 2)
#define TOP_RQ_BUCKETS 32
#define TOP_SHARD_ROWS 6 /* shards shown at most */
#define TOP_LINES 23      /* a frame's lines (24 with the live view's "q: quit") */

/* What one frame reads; two samples make the rates. */
struct top_sample {
	uint64_t t_ns;
	uint64_t commands, errors, acked, front, conns;
	uint64_t events[WF_SHM_MAX_SHARDS], recs[WF_SHM_MAX_SHARDS], reranks[WF_SHM_MAX_SHARDS];
	uint64_t vis[WF_SHM_MAX_SHARDS][WF_LAT_BUCKETS];
	uint64_t req[WF_LAT_SERIES][WF_LAT_BUCKETS]; /* weft-ingest's request latency */
	struct wf_prom_proc procs[TOP_PROCS];
	size_t nprocs;
	uint64_t cpu_ns[TOP_PROCS], wait_ns[TOP_PROCS];
	/* weft-observe's histograms per process, cumulative buckets:
	 * [0] weft_runqueue_wait_seconds, [1] weft_fsync_seconds. */
	struct top_hist {
		double le[TOP_RQ_BUCKETS], cnt[TOP_RQ_BUCKETS];
		int n;
	} h[2][TOP_PROCS];
};

static const char *const top_fams[2] = { "weft_runqueue_wait_seconds_bucket{", "weft_fsync_seconds_bucket{" };

static void take(const struct wf_cli_opts *o, const struct wf_shm *shm, struct top_sample *s)
{
	struct wf_ctl *ctl = shm->ctl;
	char path[PATH_MAX], *prom = NULL;
	size_t len;

	s->t_ns = wf_now_ns();
	s->commands = LOAD(ctl->ingest_stats.commands);
	s->errors = LOAD(ctl->ingest_stats.errors);
	s->acked = LOAD(ctl->ingest_stats.events_acked);
	s->front = LOAD(ctl->ingest_stats.recs_front);
	s->conns = LOAD(ctl->ingest_stats.connections);
	for (uint32_t i = 0; i < wf_shm_nshards(shm); i++) {
		struct wf_shard_ctl *sh = wf_shm_shard(shm, i);

		s->events[i] = LOAD(sh->stats.events);
		s->recs[i] = LOAD(sh->stats.recs);
		s->reranks[i] = LOAD(sh->stats.reranks);
		for (uint32_t b = 0; b < WF_LAT_BUCKETS; b++)
			s->vis[i][b] = LOAD(sh->stats.visible_hist[b]);
	}
	for (uint32_t r = 0; r < WF_LAT_SERIES; r++)
		wf_lat_snapshot(shm->reqlat->hist[r], s->req[r]);
	s->nprocs = wf_prom_procs(shm, s->procs, TOP_PROCS);
	for (size_t p = 0; p < s->nprocs; p++) {
		s->h[0][p].n = s->h[1][p].n = 0;
		if (wf_prom_schedstat(s->procs[p].pid, &s->cpu_ns[p], &s->wait_ns[p]) < 0)
			s->cpu_ns[p] = s->wait_ns[p] = 0;
	}
	snprintf(path, sizeof(path), "%s/%s", o->dir, WF_OBSERVE_PROM);
	if (wf_read_file(path, &prom, &len) < 0)
		return;
	for (char *line = strtok(prom, "\n"); line; line = strtok(NULL, "\n")) {
		char proc[32] = "", le[32] = "";
		int shard = -1;
		double v;
		int f = strncmp(line, top_fams[0], strlen(top_fams[0])) == 0 ? 0
			: strncmp(line, top_fams[1], strlen(top_fams[1])) == 0 ? 1
									       : -1;
		char *lab = f < 0 ? NULL : line + strlen(top_fams[f]);

		if (f < 0)
			continue;
		if (sscanf(lab, "process=\"%31[^\"]\",shard=\"%d\",le=\"%31[^\"]\"} %lf", proc, &shard, le, &v) != 4 &&
		    sscanf(lab, "process=\"%31[^\"]\",le=\"%31[^\"]\"} %lf", proc, le, &v) != 3)
			continue;
		for (size_t p = 0; p < s->nprocs; p++)
			if (strcmp(s->procs[p].process, proc) == 0 && s->procs[p].shard == shard &&
			    s->h[f][p].n < TOP_RQ_BUCKETS) {
				struct top_hist *h = &s->h[f][p];

				h->le[h->n] = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
				h->cnt[h->n++] = v;
			}
	}
	free(prom);
}

/* q-quantile (ns, interpolated) of the difference of two lathist
 * snapshots, 0 if empty; *ret_n (when not NULL) gets its sample count. */
static double vis_quantile(const uint64_t *now, const uint64_t *then, double q, uint64_t *ret_n)
{
	uint64_t d[WF_LAT_BUCKETS], n = 0;

	for (uint32_t b = 0; b < WF_LAT_BUCKETS; b++)
		n += d[b] = now[b] - (then ? then[b] : 0);
	if (ret_n)
		*ret_n = n;
	return wf_lat_quantile_est(d, q);
}

const char *wf_cli_dur(double ns, char *buf, size_t len)
{
	if (ns <= 0)
		snprintf(buf, len, "-");
	else if (ns < 1e3)
		snprintf(buf, len, "%.0fns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.*fus", ns < 1e4 ? 1 : 0, ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.*fms", ns < 1e7 ? 2 : 1, ns / 1e6);
	else
		snprintf(buf, len, "%.1fs", ns / 1e9);
	return buf;
}

static const char *bytes(double v, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "K", "M", "G", "T" };
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f%s" : "%.0f%s", v, unit[u]);
	return buf;
}

/* p99 (ns) of weft-observe's histogram f of process p over the frame
 * (or since weft-observe started, when it has not published since). */
static double obs_p99(const struct top_sample *a, const struct top_sample *b, int f, size_t p)
{
	const struct top_hist *now = &b->h[f][p];
	const double *then = NULL;
	double total;

	if (!now->n)
		return 0;
	for (size_t q = 0; a && q < a->nprocs; q++)
		if (a->procs[q].pid == b->procs[p].pid && a->h[f][q].n == now->n)
			then = a->h[f][q].cnt;
	total = now->cnt[now->n - 1] - (then ? then[now->n - 1] : 0);
	if (total <= 0) {
		then = NULL;
		total = now->cnt[now->n - 1];
	}
	for (int i = 0; i < now->n && total > 0; i++)
		if (now->cnt[i] - (then ? then[i] : 0) >= 0.99 * total)
			return isinf(now->le[i]) ? 2 * now->le[i - (i > 0)] * 1e9 : now->le[i] * 1e9;
	return 0;
}

static uint64_t rss_bytes(uint32_t pid)
{
	char path[64];
	unsigned long long size, res;
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/proc/%u/statm", pid);
	f = pid ? fopen(path, "re") : NULL;
	if (!f)
		return 0;
	ok = fscanf(f, "%llu %llu", &size, &res) == 2;
	fclose(f);
	return ok ? res * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/*
 * The command rows from weft-ingest's request latency series (layout.h):
 * replies per second over the frame, total, p50 and p99 over the frame
 * ("-" when none came in it). EVENT, RECS (front and ranker) and RERANK
 * always, the others once they have any. Returns the lines written.
 */
static int commands(FILE *f, const struct top_sample *a, const struct top_sample *s, double dt)
{
	char t1[16], t2[16];
	uint64_t all = 0, all_then = 0;
	int lines = 1;

	fprintf(f, "%-12s %9s %10s %8s %8s\n", "command", "rate/s", "total", "p50", "p99");
	for (uint32_t r = 0; r < WF_LAT_CMDS; r++) {
		uint64_t n, total = 0, then = 0;

		for (uint32_t b = 0; b < WF_LAT_BUCKETS; b++) {
			total += s->req[r][b];
			then += a ? a->req[r][b] : 0;
		}
		all += total;
		all_then += then;
		if (!total && r != WF_LAT_EVENT && r != WF_LAT_RECS_FRONT && r != WF_LAT_RECS && r != WF_LAT_RERANK)
			continue;
		vis_quantile(s->req[r], a ? a->req[r] : NULL, 0.5, &n);
		fprintf(f, "%-12s %9.0f %10" PRIu64 " %8s %8s\n", wf_reqlat_name(r)->display,
			a && dt > 0 ? (double)(total - then) / dt : 0.0, total,
			wf_cli_dur(n ? vis_quantile(s->req[r], a ? a->req[r] : NULL, 0.50, NULL) : 0, t1, sizeof(t1)),
			wf_cli_dur(n ? vis_quantile(s->req[r], a ? a->req[r] : NULL, 0.99, NULL) : 0, t2, sizeof(t2)));
		lines++;
	}
	fprintf(f, "%-12s %9.0f %10" PRIu64 "  errors %.0f/s (%" PRIu64 ")\n", "all",
		a && dt > 0 ? (double)(all - all_then) / dt : 0.0, all,
		a && dt > 0 ? (double)(s->errors - a->errors) / dt : 0.0, s->errors);
	return lines + 1;
}

#define SUM(s, f, n) ({ uint64_t t_ = 0; for (uint32_t i_ = 0; i_ < (n); i_++) t_ += (s)->f[i_]; t_; })

/* One frame to f from samples a (earlier, NULL: none) and s. */
static void frame(FILE *f, const struct wf_cli_opts *o, const struct wf_shm *shm, const struct top_sample *a,
		  const struct top_sample *s)
{
	uint32_t n = wf_shm_nshards(shm);
	double dt = a ? (double)(s->t_ns - a->t_ns) / 1e9 : 0;
	uint64_t vis_all[WF_LAT_BUCKETS] = { 0 }, vis_then[WF_LAT_BUCKETS] = { 0 }, sessions = 0, sbytes = 0;
	char obs[512], t1[16], t2[16], t3[16], t4[16];
	struct wf_snap_ref cur, prev;
	int rows = 0, lines, left, shard_rows, proc_rows;

	wf_ctl_snap_get(shm->ctl, &cur, &prev);
	wf_cli_observe_line(o, obs, sizeof(obs));
	for (uint32_t i = 0; i < n; i++) {
		struct wf_shard_ctl *sh = wf_shm_shard(shm, i);

		sessions += LOAD(sh->stats.sessions_live);
		sbytes += LOAD(sh->stats.session_bytes) + LOAD(sh->stats.snapshot_bytes);
		for (uint32_t b = 0; b < WF_LAT_BUCKETS; b++) {
			vis_all[b] += s->vis[i][b];
			vis_then[b] += a ? a->vis[i][b] : 0;
		}
	}
	{
		char head[81]; /* the directory last, cut to the 80 columns */

		snprintf(head, sizeof(head), "weft top  %u shards  gen %" PRIu64 "  %s  %s", n, cur.gen,
			 a ? "(rates per second)" : "(totals)", o->dir);
		fprintf(f, "%s\n", head);
	}
	fprintf(f, "observability: %.64s\n", obs);
	lines = 2 + commands(f, a, s, dt);
	fprintf(f, "EVENT visible p50 %s p99 %s  journal flush p99 %s", wf_cli_dur(vis_quantile(vis_all, vis_then, 0.50, NULL), t1, sizeof(t1)),
		wf_cli_dur(vis_quantile(vis_all, vis_then, 0.99, NULL), t2, sizeof(t2)),
		wf_cli_dur(vis_quantile(s->req[WF_LAT_FLUSH], a ? a->req[WF_LAT_FLUSH] : NULL, 0.99, NULL), t3, sizeof(t3)));
	for (size_t p = 0; p < s->nprocs; p++)
		if (strcmp(s->procs[p].process, "weft-ingest") == 0)
			fprintf(f, " (fdatasync %s)", wf_cli_dur(obs_p99(a, s, 1, p), t1, sizeof(t1)));
	fprintf(f, "\nconnections %" PRIu64 "  sessions %" PRIu64 "  arenas %s  ring wait p99 %s\n", s->conns, sessions,
		bytes((double)sbytes, t1, sizeof(t1)),
		wf_cli_dur(vis_quantile(s->req[WF_LAT_RING], a ? a->req[WF_LAT_RING] : NULL, 0.99, NULL), t2, sizeof(t2)));
	lines += 2 + 4; /* and the two blank lines and headers below */
	/* What is left of TOP_LINES: shards first (with their rankers below),
	 * at least one of each. */
	left = lines < TOP_LINES ? TOP_LINES - lines : 0;
	shard_rows = (int)WF_MIN((uint32_t)WF_MAX(left - 3, 2) / 2, n);
	shard_rows = WF_MIN(shard_rows, TOP_SHARD_ROWS);
	proc_rows = WF_MAX(left - shard_rows - ((int)n > shard_rows), 1);
	fprintf(f, "\n%-5s %8s %8s %8s %9s %9s %8s %9s\n", "shard", "events/s", "recs/s", "sessions", "req ring",
		"rep ring", "vis p99", "arena");
	for (uint32_t i = 0; i < n && rows < shard_rows; i++, rows++) {
		struct wf_shard_ctl *sh = wf_shm_shard(shm, i);
		double cap = (double)shm->hdr->ring_capacity;
		char rq[16], rp[16];

		snprintf(rq, sizeof(rq), "%.1f%%", 100.0 * wf_ring_used(wf_shm_req_ring(shm, i)) / cap);
		snprintf(rp, sizeof(rp), "%.1f%%", 100.0 * wf_ring_used(wf_shm_rep_ring(shm, i)) / cap);
		fprintf(f, "%-5u %8.0f %8.0f %8" PRIu64 " %9s %9s %8s %9s\n", i,
			a && dt > 0 ? (double)(s->events[i] - a->events[i]) / dt : 0.0,
			a && dt > 0 ? (double)(s->recs[i] - a->recs[i]) / dt : 0.0, LOAD(sh->stats.sessions_live), rq, rp,
			wf_cli_dur(vis_quantile(s->vis[i], a ? a->vis[i] : NULL, 0.99, NULL), t3, sizeof(t3)),
			bytes((double)(LOAD(sh->stats.session_bytes) + LOAD(sh->stats.snapshot_bytes)), t4, sizeof(t4)));
	}
	if ((int)n > shard_rows)
		fprintf(f, "... %u more shards (weftctl metrics)\n", n - (uint32_t)shard_rows);
	fprintf(f, "\n%-14s %7s %6s %11s %11s %9s\n", "process", "pid", "cpu%", "runq p99", "runq ms/s", "rss");
	rows = 0;
	for (size_t p = 0; p < s->nprocs && rows < proc_rows; p++, rows++) {
		char name[24];
		double cpu = 0, wait = 0;

		for (size_t q = 0; a && q < a->nprocs && dt > 0; q++)
			if (a->procs[q].pid == s->procs[p].pid) {
				cpu = (double)(s->cpu_ns[p] - a->cpu_ns[q]) / dt / 1e7;       /* % */
				wait = (double)(s->wait_ns[p] - a->wait_ns[q]) / dt / 1e6;    /* ms/s */
			}
		if (s->procs[p].shard >= 0)
			snprintf(name, sizeof(name), "ranker %d", s->procs[p].shard);
		else
			snprintf(name, sizeof(name), "%s", s->procs[p].process + strlen("weft-"));
		fprintf(f, "%-14s %7u %6.1f %11s %11.2f %9s\n", name, s->procs[p].pid, cpu,
			wf_cli_dur(obs_p99(a, s, 0, p), t1, sizeof(t1)), wait, bytes((double)rss_bytes(s->procs[p].pid), t2, sizeof(t2)));
	}
}

/* Interactive: raw keys, 'q' or Ctrl-C quits, the terminal restored.
 * a and b: the two samples, swapped each frame. */
static int live(const struct wf_cli_opts *o, const struct wf_shm *shm, struct top_sample *a, struct top_sample *b)
{
	int first = 1;
	struct termios old, raw;
	int tty = tcgetattr(0, &old) == 0, sfd;
	sigset_t set, oldset;
	int rc = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, &oldset);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (tty) {
		raw = old;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tcsetattr(0, TCSANOW, &raw);
	}
	/* One write per frame: a terminal never shows half of one. */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	fputs("\033[?25l", stdout); /* hide the cursor */
	for (;;) {
		struct pollfd p[2] = { { .fd = 0, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		struct top_sample *t;
		char c;

		take(o, shm, b);
		fputs("\033[H\033[2J", stdout);
		frame(stdout, o, shm, first ? NULL : a, b);
		first = 0;
		fputs("q: quit", stdout);
		fflush(stdout);
		t = a;
		a = b;
		b = t;
		if (poll(p, 2, 1000) > 0) {
			if (p[1].revents)
				break;
			if (p[0].revents & (POLLHUP | POLLERR))
				break;
			if ((p[0].revents & POLLIN) && read(0, &c, 1) == 1 && (c == 'q' || c == 'Q'))
				break;
		}
		/* A8: acquire, pairs with R8 in weft-admin's SHUTDOWN. */
		if (atomic_load_explicit(&shm->ctl->shutdown, memory_order_acquire)) {
			rc = 1;
			break;
		}
	}
	fputs("\033[?25h\n", stdout);
	fflush(stdout);
	if (tty)
		tcsetattr(0, TCSANOW, &old);
	if (sfd >= 0)
		close(sfd);
	sigprocmask(SIG_SETMASK, &oldset, NULL);
	return rc;
}

int wf_cli_top(const struct wf_cli_opts *o, int once)
{
	struct top_sample *s = calloc(2, sizeof(*s));
	struct wf_shm *shm;
	int rc = 1;

	if (!s)
		return 1;
	if (wf_cli_attach(o, &shm) < 0) {
		free(s);
		return 1;
	}
	if (once) {
		take(o, shm, &s[0]);
		usleep(1000000);
		take(o, shm, &s[1]);
		frame(stdout, o, shm, &s[0], &s[1]);
		rc = fflush(stdout) != 0;
	} else {
		rc = live(o, shm, &s[1], &s[0]);
	}
	wf_shm_detach(shm);
	free(s);
	return rc;
}
