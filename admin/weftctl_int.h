/*
 * weftctl_int.h - what weftctl's files share (weftctl.c: arguments and
 * admin commands; weftctl_render.c: tables and JSON; weftctl_up.c: the
 * foreground supervisor). Internal to admin/.
 */
#ifndef WF_WEFTCTL_INT_H
#define WF_WEFTCTL_INT_H

#include <hiredis/hiredis.h>
#include <stdio.h>

#include "lib/util.h"

#define WF_CLI_DEFAULT_DIR "/run/weft"

struct wf_cli_opts {
	const char *dir;
	int json;
	/* up only */
	long shards;           /* 0 = online cpus */
	const char *snapshot;
	const char *durability; /* NULL = weft-ingest's default (fsync) */
	const char *sessions;   /* NULL = weft-ingest's default routing table size */
	const char *idle_timeout, *request_timeout, *socket_mode; /* NULL = weft-ingest's defaults */
	const char *pubsub_limit; /* NULL = weft-ingest's default (--pubsub-limit) */
	const char *memory_budget; /* NULL = weft-ranker's default (--memory-budget) */
	/* up: weft-kafka (issue 20) runs when kafka_brokers is set */
	const char *kafka_brokers, *kafka_topic, *kafka_group, *kafka_partitions, *kafka_peers, *kafka_out_topic;
	const char *spill_budget, *checkpoint_interval, *session_ttl; /* NULL: weft-ranker's defaults */
	/* export only */
	const char *channel, *out;
	long k;
	int foreground_log;
	/* up only: weft-observe's --metrics-file */
	const char *metrics_file;
	int once;   /* top --once */
	int no_bpf; /* up: weft-observe --no-bpf */
	const char *plot; /* latency --plot FILE.png */
};

/*
 * Reply conventions (admin_cmd.c): an array whose elements are all arrays is
 * a list; any other array is a map of key, value pairs. Strings that look
 * like JSON numbers are numbers.
 */

/* Append r as JSON to b. 0 or -ENOMEM. */
int wf_cli_json(struct wf_buf *b, const redisReply *r);
/* Append s as a JSON string literal (quoted, escaped). */
int wf_cli_json_str(struct wf_buf *b, const char *s, size_t len);
/* Print r for a person: maps as aligned "key  value" lines, lists as
 * tables (transposed when they have many columns), indent spaces deep. */
void wf_cli_print(FILE *f, const redisReply *r, int indent);
/* Value of key in map reply r, or NULL. */
const redisReply *wf_cli_get(const redisReply *r, const char *key);
/* Integer value of key (integer or numeric string), or def. */
long long wf_cli_get_int(const redisReply *r, const char *key, long long def);

/* Connect to DIR/admin.sock; on failure print what to do and return NULL. */
redisContext *wf_cli_connect(const struct wf_cli_opts *o, int quiet);

/* weftctl snapshot diff A B. Returns the process exit code. */
int wf_cli_snapshot_diff(const struct wf_cli_opts *o, const char *a, const char *b);

/* weftctl export --channel email. Returns the process exit code. */
int wf_cli_export(const struct wf_cli_opts *o);

/* weftctl stock load FILE. Returns the process exit code. */
int wf_cli_stock_load(const struct wf_cli_opts *o, const char *file);

/* weftctl segment define|drop|list|preview (weftctl_seg.c): pos[0] is
 * "segment". Returns the process exit code. */
int wf_cli_segment(const struct wf_cli_opts *o, int npos, const char **pos);

/* weft-kafka's DIR/kafka.status (weftctl_kafka.c): lines for `status`
 * (nothing when it is absent), Prometheus families appended to b (0 or
 * -ENOMEM). */
void wf_cli_kafka_status(const struct wf_cli_opts *o);
int wf_cli_kafka_metrics(const struct wf_cli_opts *o, struct wf_buf *b);

/* weftctl metrics (weftctl_metrics.c). Returns the process exit code. */
int wf_cli_metrics(const struct wf_cli_opts *o);
struct wf_shm;
/* Attach the segment weft-admin's STATS names (errors printed). 0 or -errno. */
int wf_cli_attach(const struct wf_cli_opts *o, struct wf_shm **ret);
/* The exposition of shm and weft-observe's fresh families into b. 0 or -ENOMEM. */
int wf_cli_metrics_render(const struct wf_cli_opts *o, const struct wf_shm *shm, struct wf_buf *b);
/* weft-observe's state ("ok: ..." / "degraded: why") into out; 1 if ok. */
int wf_cli_observe_line(const struct wf_cli_opts *o, char *out, size_t len);

/* weftctl top [--once] (weftctl_top.c). Returns the process exit code. */
int wf_cli_top(const struct wf_cli_opts *o, int once);
/* ns as "850ns", "12.3us", "1.25ms", "2.1s" (at most 7 characters; "-"
 * for 0) into buf; returns buf. */
const char *wf_cli_dur(double ns, char *buf, size_t len);

/* `weftctl latency [--plot FILE.png]` (weftctl_latency.c): the histograms
 * as a table on stdout, or drawn to png with gnuplot. Exit status. */
int wf_cli_latency(const struct wf_cli_opts *o, const char *png);

/* weftctl experiment ... (weftctl_exp.c): argv as main got it, parsed
 * there (its own options). Returns the process exit code. */
int wf_cli_experiment(struct wf_cli_opts *o, int argc, char **argv);
/* weftctl experiment report NAME: attribution from the journal (journal
 * NULL: DIR/journal), the statistics, and a plot when plot is a path. */
int wf_cli_exp_report(const struct wf_cli_opts *o, const char *name, const char *journal, const char *plot);

/* weftctl up. Returns the process exit code. */
int wf_cli_up(const struct wf_cli_opts *o);

#endif
