/*
 * observe.c - weft-observe: loads the BPF run-queue latency and fsync
 * latency programs for weft's own processes (observe/bpf.c), drains them
 * every interval into cumulative histograms per process, and publishes:
 *   DIR/observe.state  "ok: ..." or "degraded: <why>" (weftctl status)
 *   DIR/observe.prom   its metric families (weftctl metrics appends them)
 *   --metrics-file     the whole exposition, for node_exporter's textfile
 *                      collector
 * all written atomically (temp file + rename). Without BPF (no BTF, no
 * privilege, built without clang/bpftool) it says so once and still
 * writes the metrics, run-queue wait coming from /proc schedstat.
 * Reads the segment only. Process: weft-observe (links libweft, libbpf).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "observe/prom.h"
#include "observe/runqlat.h"
#ifdef WF_HAVE_BPF
#include "observe/bpf.h"
#endif

#define OBS_PROCS (WF_SHM_MAX_SHARDS + 2)
#define RQ_LO 10u /* exported buckets: 2^10 ns (1 us) .. 2^30 ns, + Inf */
#define RQ_HI 30u
#define RQ_N (RQ_HI - RQ_LO + 2u)

/* Cumulative run-queue wait of one process slot (admin, ingest, ranker i). */
struct obs_acc {
	uint64_t count, sum_ns;
	uint64_t slots[WF_RQ_SLOTS];
};

struct obs_ctx {
	const char *dir, *shm_name, *metrics_file, *journal_dir;
	char journal_buf[PATH_MAX];
	unsigned interval_ms;
	int no_bpf;
	struct wf_shm *shm;
	int sfd;
	struct wf_prom_proc procs[OBS_PROCS];
	size_t nprocs;
	struct obs_acc acc[OBS_PROCS];    /* run-queue wait */
	struct obs_acc fsacc[OBS_PROCS];  /* fsync / fdatasync */
	struct obs_acc offacc[WF_OFF_REASONS][OBS_PROCS]; /* off-CPU by reason */
	int fsync_ok;
	char state[512];
#ifdef WF_HAVE_BPF
	struct wf_obs_bpf *bpf;
#endif
};

static void usage(FILE *f)
{
	fprintf(f, "usage: weft-observe --dir DIR --shm NAME [--metrics-file PATH] [--interval-ms MS]\n"
		   "                    [--journal DIR] [--no-bpf]\n");
}

static int parse_args(struct obs_ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },          { "shm", required_argument, NULL, 's' },
		{ "metrics-file", required_argument, NULL, 'm' }, { "interval-ms", required_argument, NULL, 'i' },
		{ "journal", required_argument, NULL, 'j' },      { "no-bpf", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },               { 0 }
	};
	int o;

	c->interval_ms = 2000;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'd': c->dir = optarg; break;
		case 's': c->shm_name = optarg; break;
		case 'm': c->metrics_file = optarg; break;
		case 'j': c->journal_dir = optarg; break;
		case 'n': c->no_bpf = 1; break;
		case 'i': {
			int64_t v;

			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 100 || v > 600000) {
				fprintf(stderr, "weft-observe: --interval-ms wants 100..600000, not '%s'\n", optarg);
				return -EINVAL;
			}
			c->interval_ms = (unsigned)v;
			break;
		}
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (!c->dir || !c->shm_name) {
		usage(stderr);
		return -EINVAL;
	}
	if (!c->journal_dir) {
		snprintf(c->journal_buf, sizeof(c->journal_buf), "%s/journal", c->dir);
		c->journal_dir = c->journal_buf;
	}
	return 0;
}

static int write_in_dir(const struct obs_ctx *c, const char *name, const char *data, size_t len)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", c->dir, name) >= sizeof(path))
		return -ENAMETOOLONG;
	return wf_write_file_atomic(path, data, len);
}

static void refresh_procs(struct obs_ctx *c)
{
	c->nprocs = wf_prom_procs(c->shm, c->procs, OBS_PROCS);
}

#ifdef WF_HAVE_BPF
struct drain_arg {
	struct obs_ctx *c;
	struct obs_acc *acc; /* c->acc, c->fsacc, or c->offacc[0] (indexed by reason) */
};

static void take_hist(void *arg, const struct wf_rq_hist *h)
{
	struct drain_arg *d = arg;

	for (size_t i = 0; i < d->c->nprocs; i++) {
		struct obs_acc *a;

		if (d->c->procs[i].pid != h->tgid || h->reason >= WF_OFF_REASONS)
			continue;
		a = &d->acc[(size_t)h->reason * OBS_PROCS + i];
		a->count += h->count;
		a->sum_ns += h->sum_ns;
		for (uint32_t k = 0; k < WF_RQ_SLOTS; k++)
			a->slots[k] += h->slots[k];
		return;
	}
	/* A process that has just been replaced: its last samples go. */
}

static void tgids_of(const struct obs_ctx *c, uint32_t *tgids, size_t *ret_n)
{
	size_t n = 0;

	for (size_t i = 0; i < c->nprocs; i++)
		if (c->procs[i].pid)
			tgids[n++] = c->procs[i].pid;
	*ret_n = n;
}
#endif

/* BPF up, or the one sentence saying why not (logged once). */
static void start_bpf(struct obs_ctx *c)
{
#ifdef WF_HAVE_BPF
	uint32_t tgids[OBS_PROCS];
	char why[384];
	size_t n;
	int r;

	if (c->no_bpf) {
		snprintf(c->state, sizeof(c->state), "degraded: BPF turned off (--no-bpf); run-queue wait from "
						     "/proc schedstat only");
		return;
	}
	refresh_procs(c);
	tgids_of(c, tgids, &n);
	r = wf_obs_bpf_create(tgids, n, &c->bpf, why, sizeof(why));
	if (r < 0)
		snprintf(c->state, sizeof(c->state), "degraded: %s", why);
	else if (wf_obs_bpf_fsync_why(c->bpf))
		snprintf(c->state, sizeof(c->state), "ok: BPF run-queue wait and off-CPU time of weft's processes (no fsync latency: %s)",
			 wf_obs_bpf_fsync_why(c->bpf));
	else
		snprintf(c->state, sizeof(c->state), "ok: BPF run-queue wait, off-CPU time and fsync latency of weft's processes");
	c->fsync_ok = r == 0 && !wf_obs_bpf_fsync_why(c->bpf);
#else
	snprintf(c->state, sizeof(c->state), "degraded: weft was built without BPF (clang, bpftool or "
					     "/sys/kernel/btf/vmlinux missing at configure time); run-queue "
					     "wait from /proc schedstat only");
#endif
	if (strncmp(c->state, "ok", 2) == 0)
		wf_info("observability: %s", c->state);
	else
		wf_warn("observability: %s", c->state);
}

/* Histograms of per-process accumulators; reason: a label value, or NULL.
 * head: write the family's HELP and TYPE first. */
static int render_family(const struct obs_ctx *c, struct wf_buf *b, const char *name, const char *help,
			 const struct obs_acc *acc, const char *reason)
{
	double bounds[RQ_N];
	int r = help ? wf_prom_head(b, name, "histogram", help) : 0;

	for (uint32_t k = 0; k < RQ_N; k++)
		bounds[k] = k + 1 < RQ_N ? ldexp(1.0, (int)(RQ_LO + k)) * 1e-9 : INFINITY;
	for (size_t i = 0; i < c->nprocs && r == 0; i++) {
		uint64_t counts[RQ_N] = { 0 };
		char labels[96], rl[32] = "";

		/* Slot k holds [2^k, 2^(k+1)) ns: at most 2^(k+1). */
		for (uint32_t k = 0; k < WF_RQ_SLOTS; k++)
			for (uint32_t j = 0; j < RQ_N; j++)
				if (j + 1 == RQ_N || k + 1 <= RQ_LO + j)
					counts[j] += acc[i].slots[k];
		if (reason)
			snprintf(rl, sizeof(rl), ",reason=\"%s\"", reason);
		if (c->procs[i].shard >= 0)
			snprintf(labels, sizeof(labels), "process=\"%s\",shard=\"%d\"%s", c->procs[i].process,
				 c->procs[i].shard, rl);
		else
			snprintf(labels, sizeof(labels), "process=\"%s\"%s", c->procs[i].process, rl);
		r = wf_prom_hist(b, name, labels, bounds, counts, RQ_N, (double)acc[i].sum_ns * 1e-9);
	}
	return r;
}

static int render_own(const struct obs_ctx *c, struct wf_buf *b)
{
	int bpf = strncmp(c->state, "ok", 2) == 0;
	int r = wf_prom_head(b, "weft_observe_bpf", "gauge",
			     "1 if weft-observe's BPF programs run (else see `weftctl status`).");

	if (r == 0)
		r = wf_buf_printf(b, "weft_observe_bpf %d\n", bpf);
	if (r == 0 && bpf)
		r = render_family(c, b, "weft_runqueue_wait_seconds",
				  "Time a runnable thread of the process waited for a CPU (BPF, sched_wakeup to "
				  "sched_switch).",
				  c->acc, NULL);
	for (int k = 0; r == 0 && bpf && k < WF_OFF_REASONS; k++) {
		static const char *const reasons[WF_OFF_REASONS] = { "sleep", "io", "preempted" };

		r = render_family(c, b, "weft_offcpu_seconds",
				  k ? NULL
				    : "Time a thread of the process spent off its CPU, by the state it left in: sleep "
				      "(futex, poll, io_uring wait), io (uninterruptible: disk, some locks), preempted "
				      "(BPF, sched_switch to sched_switch; includes the run-queue wait after waking).",
				  c->offacc[k], reasons[k]);
	}
	if (r == 0 && c->fsync_ok)
		r = render_family(c, b, "weft_fsync_seconds",
				  "Duration of the process's fsync/fdatasync calls, io_uring's included (BPF, "
				  "vfs_fsync_range); weft-ingest's are the journal's flushes.",
				  c->fsacc, NULL);
	return r;
}

/* One interval: drain, publish. */
static void tick(struct obs_ctx *c)
{
	struct wf_buf own = { 0 }, all = { 0 };
	int r;

	refresh_procs(c);
#ifdef WF_HAVE_BPF
	if (c->bpf) {
		uint32_t tgids[OBS_PROCS];
		size_t n;

		struct drain_arg rq = { c, c->acc }, fs = { c, c->fsacc }, off = { c, c->offacc[0] };

		wf_obs_bpf_drain(c->bpf, WF_OBS_RUNQ, take_hist, &rq);
		wf_obs_bpf_drain(c->bpf, WF_OBS_OFFCPU, take_hist, &off);
		wf_obs_bpf_drain(c->bpf, WF_OBS_FSYNC, take_hist, &fs);
		tgids_of(c, tgids, &n);
		wf_obs_bpf_set_tgids(c->bpf, tgids, n);
	}
#endif
	r = render_own(c, &own);
	if (r == 0 && wf_buf_append(&own, "", 1) == 0) {
		r = write_in_dir(c, WF_OBSERVE_PROM, own.data, own.len - 1);
		if (r < 0)
			wf_warn("cannot write %s/%s: %s", c->dir, WF_OBSERVE_PROM, strerror(-r));
		if (c->metrics_file && wf_prom_render(&all, c->shm, c->journal_dir, own.data) == 0) {
			r = wf_write_file_atomic(c->metrics_file, all.data, all.len);
			if (r < 0)
				wf_warn("cannot write --metrics-file %s: %s", c->metrics_file, strerror(-r));
		}
	}
	wf_buf_fini(&own);
	wf_buf_fini(&all);
}

static int run(struct obs_ctx *c)
{
	uint64_t next = wf_now_ns();

	for (;;) {
		struct pollfd p = { .fd = c->sfd, .events = POLLIN };
		uint64_t now = wf_now_ns();
		int ms = now >= next ? 0 : (int)((next - now) / 1000000u) + 1;

		/* A8: acquire, pairs with R8 in weft-admin's SHUTDOWN. */
		if (atomic_load_explicit(&c->shm->ctl->shutdown, memory_order_acquire))
			return 0;
		if (poll(&p, 1, WF_MIN(ms, 250)) > 0)
			return 0; /* SIGTERM or SIGINT */
		if (wf_now_ns() >= next) {
			tick(c);
			next += (uint64_t)c->interval_ms * 1000000u;
			if (next < wf_now_ns())
				next = wf_now_ns() + (uint64_t)c->interval_ms * 1000000u;
		}
	}
}

int main(int argc, char **argv)
{
	struct obs_ctx *c = calloc(1, sizeof(*c));
	sigset_t set;
	int r, rc = 1;

	wf_log_init("weft-observe");
	if (!c)
		return 1;
	c->sfd = -1;
	if (parse_args(c, argc, argv) < 0) {
		rc = 2;
		goto out;
	}
	r = wf_shm_attach_ro(c->shm_name, &c->shm);
	if (r < 0) {
		wf_err("cannot attach segment %s: %s (is weft-admin running?)", c->shm_name, strerror(-r));
		goto out;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	c->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (c->sfd < 0) {
		wf_err("signalfd() failed: %s", strerror(errno));
		goto out;
	}
	start_bpf(c);
	r = write_in_dir(c, WF_OBSERVE_STATE, c->state, strlen(c->state));
	if (r < 0)
		wf_warn("cannot write %s/%s: %s", c->dir, WF_OBSERVE_STATE, strerror(-r));
	rc = run(c) < 0;
out:
#ifdef WF_HAVE_BPF
	wf_obs_bpf_destroy(c->bpf);
#endif
	if (c->sfd >= 0)
		close(c->sfd);
	wf_shm_detach(c->shm);
	free(c);
	return rc;
}
