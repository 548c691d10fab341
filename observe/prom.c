/*
 * prom.c - weft's Prometheus text exposition (see prom.h). Linked into
 * weftctl and weft-observe. Every segment load is relaxed: counters and
 * state for display, each word independent (as STATS reads them).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "observe/prom.h"
#include "shm/lathist.h"
#include "shm/reqlat.h"

#define LOAD(x) ((uint64_t)atomic_load_explicit(&(x), memory_order_relaxed))

/* Event-to-visible buckets: powers of two of ns, 2^10 (1 us) .. 2^30 (1.07 s). */
#define VIS_LO 10u
#define VIS_HI 30u
#define VIS_N (VIS_HI - VIS_LO + 2u) /* + Inf */

int wf_prom_head(struct wf_buf *b, const char *name, const char *type, const char *help)
{
	return wf_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int wf_prom_hist(struct wf_buf *b, const char *name, const char *labels, const double *bounds,
		 const uint64_t *counts, size_t n, double sum)
{
	const char *sep = labels[0] ? "," : "";
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++) {
		if (isinf(bounds[i]))
			r = wf_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, counts[i]);
		else
			r = wf_buf_printf(b, "%s_bucket{%s%sle=\"%.9g\"} %" PRIu64 "\n", name, labels, sep, bounds[i],
					  counts[i]);
	}
	if (r == 0 && labels[0])
		r = wf_buf_printf(b, "%s_sum{%s} %.9g\n%s_count{%s} %" PRIu64 "\n", name, labels, sum, name, labels,
				  n ? counts[n - 1] : 0);
	else if (r == 0)
		r = wf_buf_printf(b, "%s_sum %.9g\n%s_count %" PRIu64 "\n", name, sum, name, n ? counts[n - 1] : 0);
	return r;
}

size_t wf_prom_procs(const struct wf_shm *shm, struct wf_prom_proc *procs, size_t max)
{
	struct wf_ctl *ctl = shm->ctl;
	size_t n = 0;

	if (n < max)
		procs[n++] = (struct wf_prom_proc){ "weft-admin", -1, (uint32_t)LOAD(ctl->admin_pid) };
	if (n < max)
		procs[n++] = (struct wf_prom_proc){ "weft-ingest", -1, (uint32_t)LOAD(ctl->ingest_pid) };
	for (uint32_t i = 0; i < wf_shm_nshards(shm) && n < max; i++)
		procs[n++] = (struct wf_prom_proc){ "weft-ranker", (int)i,
						    (uint32_t)LOAD(wf_shm_shard(shm, i)->ranker_pid) };
	return n;
}

int wf_prom_schedstat(uint32_t pid, uint64_t *ret_cpu_ns, uint64_t *ret_wait_ns)
{
	char path[64], line[128];
	uint64_t cpu = 0, wait = 0;
	struct dirent *de;
	DIR *d;

	if (!pid)
		return -ENOENT;
	snprintf(path, sizeof(path), "/proc/%u/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		unsigned long long c, w;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%u/task/%.16s/schedstat", pid, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* the thread just exited */
		if (fgets(line, sizeof(line), f) && sscanf(line, "%llu %llu", &c, &w) == 2) {
			cpu += c;
			wait += w;
		}
		fclose(f);
	}
	closedir(d);
	*ret_cpu_ns = cpu;
	*ret_wait_ns = wait;
	return 0;
}

/* Sum of the sizes of DIR/ *.wfj, or -errno. */
static int64_t journal_bytes(const char *dir)
{
	struct dirent *de;
	int64_t sum = 0;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		struct stat st;

		if (l > 4 && strcmp(de->d_name + l - 4, ".wfj") == 0 && fstatat(dirfd(d), de->d_name, &st, 0) == 0)
			sum += st.st_size;
	}
	closedir(d);
	return sum;
}

struct fam {
	const char *name, *type, *help;
};

/* A lathist snapshot c (ns) as a Prometheus histogram, folded to powers
 * of two of ns; sum_ns: its exact sum, or < 0 to estimate it from bucket
 * midpoints. */
static int lat_hist(struct wf_buf *b, const char *name, const char *labels, const uint64_t *c, double sum_ns)
{
	double bounds[VIS_N], sum = 0;
	uint64_t counts[VIS_N] = { 0 };

	for (uint32_t k = 0; k < VIS_N; k++)
		bounds[k] = k + 1 < VIS_N ? ldexp(1.0, (int)(VIS_LO + k)) * 1e-9 : INFINITY;
	for (uint32_t i = 0; i < WF_LAT_BUCKETS; i++) {
		uint64_t up = wf_lat_bucket_upper(i);

		if (!c[i])
			continue;
		sum += (double)c[i] * (double)(wf_lat_bucket_lower(i) + up) * 0.5e-9;
		/* Bucket i lies wholly at or below 2^k ns once up <= 2^k. */
		for (uint32_t k = 0; k < VIS_N; k++)
			if (k + 1 == VIS_N || up <= (1ull << (VIS_LO + k)))
				counts[k] += c[i];
	}
	return wf_prom_hist(b, name, labels, bounds, counts, VIS_N, sum_ns >= 0 ? sum_ns * 1e-9 : sum);
}

/* One event-to-visible histogram. */
static int visible_hist(struct wf_buf *b, struct wf_shard_ctl *sh, uint32_t shard)
{
	uint64_t c[WF_LAT_BUCKETS];
	char labels[32];

	wf_lat_snapshot(sh->stats.visible_hist, c);
	snprintf(labels, sizeof(labels), "shard=\"%u\"", shard);
	return lat_hist(b, "weft_event_visible_seconds", labels, c, -1);
}

/* weft-ingest's request latency (struct wf_reqlat): per command and path,
 * and the journal flush and ring wait stages. */
static int render_reqlat(struct wf_buf *b, const struct wf_shm *shm)
{
	static const struct fam stage[2] = {
		{ "weft_journal_flush_seconds", "histogram",
		  "A journal flush (write and fdatasync) as weft-ingest saw it, start to completion." },
		{ "weft_request_ring_wait_seconds", "histogram",
		  "From weft-ingest forwarding a request to its ranker beginning the batch holding it (ring "
		  "wait, the ranker's wake-up and run-queue wait)." },
	};
	struct wf_reqlat *rl = shm->reqlat;
	uint64_t c[WF_LAT_BUCKETS];
	char labels[64];
	int r = wf_prom_head(b, "weft_request_duration_seconds", "histogram",
			     "From the weft-ingest loop pass that received a request to the pass end that sent "
			     "its reply (EVENT: its durable ack), by command and by who answered (path).");

	for (uint32_t s = 0; s < WF_LAT_CMDS && r == 0; s++) {
		const struct wf_reqlat_name *n = wf_reqlat_name(s);

		wf_lat_snapshot(rl->hist[s], c);
		snprintf(labels, sizeof(labels), "command=\"%s\",path=\"%s\"", n->command, n->path);
		r = lat_hist(b, "weft_request_duration_seconds", labels, c, (double)LOAD(rl->sum_ns[s]));
	}
	for (uint32_t k = 0; k < 2 && r == 0; k++) {
		uint32_t s = k ? WF_LAT_RING : WF_LAT_FLUSH;

		r = wf_prom_head(b, stage[k].name, stage[k].type, stage[k].help);
		wf_lat_snapshot(rl->hist[s], c);
		if (r == 0)
			r = lat_hist(b, stage[k].name, "", c, (double)LOAD(rl->sum_ns[s]));
	}
	return r;
}

/* Per-shard families: the value of shard i's field. */
static int shard_family(struct wf_buf *b, const struct wf_shm *shm, const struct fam *f, uint64_t (*get)(
	const struct wf_shm *, uint32_t), double scale)
{
	int r = wf_prom_head(b, f->name, f->type, f->help);

	for (uint32_t i = 0; i < wf_shm_nshards(shm) && r == 0; i++)
		r = wf_buf_printf(b, "%s{shard=\"%u\"} %.9g\n", f->name, i, (double)get(shm, i) * scale);
	return r;
}

#define SHARD_GETTER(fn, field)                                                 \
	static uint64_t fn(const struct wf_shm *shm, uint32_t i)                \
	{                                                                       \
		return LOAD(wf_shm_shard(shm, i)->field);                       \
	}
SHARD_GETTER(g_errors, stats.errors)
SHARD_GETTER(g_sessions, stats.sessions_live)
SHARD_GETTER(g_sess_bytes, stats.session_bytes)
SHARD_GETTER(g_snap_bytes, stats.snapshot_bytes)
SHARD_GETTER(g_snap_users, stats.snapshot_users)
SHARD_GETTER(g_swaps, stats.swaps)
SHARD_GETTER(g_busy, stats.busy_ns)
SHARD_GETTER(g_starts, ranker_starts)
SHARD_GETTER(g_loaded, loaded_gen)
#undef SHARD_GETTER

static const struct {
	struct fam f;
	uint64_t (*get)(const struct wf_shm *, uint32_t);
	double scale;
} shard_fams[] = {
	{ { "weft_ranker_errors_total", "counter", "Requests a ranker answered with an error." }, g_errors, 1 },
	{ { "weft_sessions_live", "gauge", "Sessions a ranker holds." }, g_sessions, 1 },
	{ { "weft_session_arena_bytes", "gauge", "Bytes allocated in a ranker's session arena." }, g_sess_bytes, 1 },
	{ { "weft_snapshot_arena_bytes", "gauge", "Bytes allocated in a ranker's generation arena." }, g_snap_bytes, 1 },
	{ { "weft_snapshot_users", "gauge", "Users in the generation a ranker serves." }, g_snap_users, 1 },
	{ { "weft_snapshot_swaps_total", "counter", "Generations a ranker has swapped in." }, g_swaps, 1 },
	{ { "weft_ranker_busy_seconds_total", "counter", "Time a ranker spent handling requests." }, g_busy, 1e-9 },
	{ { "weft_ranker_starts_total", "counter", "Times a shard's ranker has started." }, g_starts, 1 },
	{ { "weft_ranker_loaded_generation", "gauge", "Snapshot generation a ranker serves." }, g_loaded, 1 },
};

static int render_ingest(struct wf_buf *b, const struct wf_shm *shm)
{
	struct wf_ctl *ctl = shm->ctl;
	int r = 0;

#define CTR(name, help, v)                                                              \
	if (r == 0)                                                                     \
		r = wf_prom_head(b, name, "counter", help);                             \
	if (r == 0)                                                                     \
	r = wf_buf_printf(b, "%s %" PRIu64 "\n", name, (uint64_t)(v))
	CTR("weft_commands_total", "Commands weft-ingest parsed (every command).", LOAD(ctl->ingest_stats.commands));
	CTR("weft_command_errors_total", "Commands weft-ingest answered with an error.",
	    LOAD(ctl->ingest_stats.errors));
	CTR("weft_events_acked_total", "EVENTs acknowledged (journaled per the durability mode).",
	    LOAD(ctl->ingest_stats.events_acked));
	CTR("weft_connections_total", "Client connections accepted.", LOAD(ctl->ingest_stats.connections_total));
	CTR("weft_receive_bytes_total", "Bytes read from clients.", LOAD(ctl->ingest_stats.bytes_in));
	CTR("weft_transmit_bytes_total", "Bytes written to clients.", LOAD(ctl->ingest_stats.bytes_out));
	CTR("weft_backpressure_stalls_total", "Times a full request ring stalled weft-ingest.",
	    LOAD(ctl->ingest_stats.backpressure_stalls));
	CTR("weft_segment_transitions_total", "Segment enters and exits made durable and published.",
	    LOAD(ctl->ingest_stats.segment_transitions));
	CTR("weft_experiment_exposures_total", "Experiment exposures journaled (RECS and RERANK replies under an arm).",
	    LOAD(ctl->ingest_stats.exposures));
	CTR("weft_pubsub_disconnects_total", "Subscribers closed at their output limit.",
	    LOAD(ctl->ingest_stats.pubsub_disconnects));
	CTR("weft_redirects_total", "-MOVED replies: commands for a shopper another box owns (--kafka-peers).",
	    LOAD(ctl->ingest_stats.redirects));
#undef CTR
	if (r == 0)
		r = wf_prom_head(b, "weft_pubsub_clients", "gauge", "Connections subscribed to segment pushes.");
	if (r == 0)
		r = wf_buf_printf(b, "weft_pubsub_clients %" PRIu64 "\n", LOAD(ctl->ingest_stats.pubsub_clients));
	if (r == 0)
		r = wf_prom_head(b, "weft_connections", "gauge", "Client connections open.");
	if (r == 0)
		r = wf_buf_printf(b, "weft_connections %" PRIu64 "\n", LOAD(ctl->ingest_stats.connections));
	return r;
}

/* Requests by command: each ranker's EVENT / RECS / RERANK, and the RECS
 * weft-ingest answered from a front table (shard="front"). */
static int render_requests(struct wf_buf *b, const struct wf_shm *shm)
{
	int r = wf_prom_head(b, "weft_requests_total", "counter",
			     "Requests served, by command and by the shard that served them (front: RECS answered "
			     "by weft-ingest from a front table).");

	for (uint32_t i = 0; i < wf_shm_nshards(shm) && r == 0; i++) {
		struct wf_shard_ctl *sh = wf_shm_shard(shm, i);

		r = wf_buf_printf(b,
				  "weft_requests_total{command=\"EVENT\",shard=\"%u\"} %" PRIu64 "\n"
				  "weft_requests_total{command=\"RECS\",shard=\"%u\"} %" PRIu64 "\n"
				  "weft_requests_total{command=\"RERANK\",shard=\"%u\"} %" PRIu64 "\n",
				  i, LOAD(sh->stats.events), i, LOAD(sh->stats.recs), i, LOAD(sh->stats.reranks));
	}
	if (r == 0)
		r = wf_buf_printf(b, "weft_requests_total{command=\"RECS\",shard=\"front\"} %" PRIu64 "\n",
				  LOAD(shm->ctl->ingest_stats.recs_front));
	return r;
}

static int render_rings(struct wf_buf *b, const struct wf_shm *shm)
{
	static const char *const kind[2] = { "request", "reply" };
	double cap = (double)shm->hdr->ring_capacity;
	int r = wf_prom_head(b, "weft_ring_used_bytes", "gauge", "Bytes queued in a shard's ring.");

	for (uint32_t i = 0; i < wf_shm_nshards(shm) && r == 0; i++)
		for (int k = 0; k < 2 && r == 0; k++)
			r = wf_buf_printf(b, "weft_ring_used_bytes{ring=\"%s\",shard=\"%u\"} %u\n", kind[k], i,
					  wf_ring_used(k ? wf_shm_rep_ring(shm, i) : wf_shm_req_ring(shm, i)));
	if (r == 0)
		r = wf_prom_head(b, "weft_ring_fullness_ratio", "gauge", "Share of a shard's ring in use (0..1).");
	for (uint32_t i = 0; i < wf_shm_nshards(shm) && r == 0; i++)
		for (int k = 0; k < 2 && r == 0; k++)
			r = wf_buf_printf(b, "weft_ring_fullness_ratio{ring=\"%s\",shard=\"%u\"} %.6g\n", kind[k], i,
					  (double)wf_ring_used(k ? wf_shm_rep_ring(shm, i) : wf_shm_req_ring(shm, i)) / cap);
	if (r == 0)
		r = wf_prom_head(b, "weft_ring_capacity_bytes", "gauge", "Capacity of every ring.");
	if (r == 0)
		r = wf_buf_printf(b, "weft_ring_capacity_bytes %u\n", shm->hdr->ring_capacity);
	return r;
}

static int render_snapshot(struct wf_buf *b, const struct wf_shm *shm)
{
	struct wf_snap_ref cur, prev;
	uint64_t now = wf_wall_ms();
	int r;

	wf_ctl_snap_get(shm->ctl, &cur, &prev);
	r = wf_prom_head(b, "weft_snapshot_generation", "gauge", "Current snapshot generation (0: none).");
	if (r == 0)
		r = wf_buf_printf(b, "weft_snapshot_generation %" PRIu64 "\n", cur.gen);
	if (r == 0 && cur.gen)
		r = wf_prom_head(b, "weft_snapshot_age_seconds", "gauge",
				 "Seconds since weft-admin accepted the current generation.");
	if (r == 0 && cur.gen)
		r = wf_buf_printf(b, "weft_snapshot_age_seconds %.3f\n",
				  now > cur.loaded_ms ? (double)(now - cur.loaded_ms) / 1e3 : 0.0);
	if (r == 0)
		r = wf_prom_head(b, "weft_uptime_seconds", "gauge", "Seconds since the segment was created.");
	if (r == 0)
		r = wf_buf_printf(b, "weft_uptime_seconds %.3f\n",
				  now > shm->hdr->created_ms ? (double)(now - shm->hdr->created_ms) / 1e3 : 0.0);
	return r;
}

static int render_sched(struct wf_buf *b, const struct wf_shm *shm)
{
	struct wf_prom_proc procs[WF_SHM_MAX_SHARDS + 2];
	size_t n = wf_prom_procs(shm, procs, WF_ARRAY_SIZE(procs));
	uint64_t cpu[WF_SHM_MAX_SHARDS + 2], wait[WF_SHM_MAX_SHARDS + 2];
	int ok[WF_SHM_MAX_SHARDS + 2], r;

	for (size_t i = 0; i < n; i++)
		ok[i] = wf_prom_schedstat(procs[i].pid, &cpu[i], &wait[i]) == 0;
	r = wf_prom_head(b, "weft_process_up", "gauge", "1 if the process the segment names runs.");
	for (size_t i = 0; i < n && r == 0; i++)
		r = procs[i].shard >= 0 ? wf_buf_printf(b, "weft_process_up{process=\"%s\",shard=\"%d\"} %d\n",
							procs[i].process, procs[i].shard, ok[i])
					: wf_buf_printf(b, "weft_process_up{process=\"%s\"} %d\n", procs[i].process, ok[i]);
	for (int k = 0; k < 2 && r == 0; k++) {
		const char *name = k ? "weft_schedstat_runqueue_wait_seconds_total" : "weft_schedstat_cpu_seconds_total";

		r = wf_prom_head(b, name, "counter",
				 k ? "Time the process's threads waited on a run queue (/proc schedstat)."
				   : "Time the process's threads ran on a CPU (/proc schedstat).");
		for (size_t i = 0; i < n && r == 0; i++) {
			double v = (double)(k ? wait[i] : cpu[i]) * 1e-9;

			if (!ok[i])
				continue;
			r = procs[i].shard >= 0 ? wf_buf_printf(b, "%s{process=\"%s\",shard=\"%d\"} %.9f\n", name,
								procs[i].process, procs[i].shard, v)
						: wf_buf_printf(b, "%s{process=\"%s\"} %.9f\n", name, procs[i].process, v);
		}
	}
	return r;
}

int wf_prom_render(struct wf_buf *b, const struct wf_shm *shm, const char *journal_dir, const char *extra)
{
	int r = render_ingest(b, shm);

	if (r == 0)
		r = render_requests(b, shm);
	for (size_t f = 0; f < WF_ARRAY_SIZE(shard_fams) && r == 0; f++)
		r = shard_family(b, shm, &shard_fams[f].f, shard_fams[f].get, shard_fams[f].scale);
	if (r == 0)
		r = wf_prom_head(b, "weft_event_visible_seconds", "histogram",
				 "From weft-ingest parsing an EVENT to its ranker having applied it (_sum estimated "
				 "from bucket midpoints).");
	for (uint32_t i = 0; i < wf_shm_nshards(shm) && r == 0; i++)
		r = visible_hist(b, wf_shm_shard(shm, i), i);
	if (r == 0)
		r = render_reqlat(b, shm);
	if (r == 0)
		r = render_rings(b, shm);
	if (r == 0)
		r = render_snapshot(b, shm);
	if (r == 0 && journal_dir) {
		int64_t jb = journal_bytes(journal_dir);

		if (jb >= 0) {
			r = wf_prom_head(b, "weft_journal_bytes", "gauge", "Bytes in the event journal's segment files.");
			if (r == 0)
				r = wf_buf_printf(b, "weft_journal_bytes %" PRId64 "\n", jb);
		}
	}
	if (r == 0)
		r = render_sched(b, shm);
	if (r == 0 && extra && extra[0])
		r = wf_buf_printf(b, "%s", extra);
	return r;
}
