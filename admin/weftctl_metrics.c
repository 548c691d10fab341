/*
 * weftctl_metrics.c - `weftctl metrics`: the Prometheus text exposition
 * (observe/prom.c) of the running appliance, read from its segment (the
 * name comes from weft-admin's STATS), plus weft-observe's families from
 * DIR/observe.prom while weft-observe keeps it fresh; and the
 * "observability:" line of `weftctl status`. Program: weftctl.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin/weftctl_int.h"
#include "observe/prom.h"

/* weft-observe rewrites its files every few seconds: older means gone. */
#define OBS_STALE_S 30
/* Where systemd's weft-observe writes the whole exposition, under DIR. */
#define WF_CLI_METRICS_COPY "metrics/weft.prom"

/* DIR/name's content if weft-observe wrote it lately, else NULL (free()). */
static char *observe_file(const struct wf_cli_opts *o, const char *name)
{
	char path[PATH_MAX], *data = NULL;
	struct stat st;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", o->dir, name);
	if (stat(path, &st) < 0 || time(NULL) - st.st_mtime > OBS_STALE_S)
		return NULL;
	if (wf_read_file(path, &data, &len) < 0)
		return NULL;
	return data;
}

int wf_cli_observe_line(const struct wf_cli_opts *o, char *out, size_t len)
{
	char *state, *prom = observe_file(o, WF_OBSERVE_PROM);
	char path[PATH_MAX], *data = NULL;
	size_t n;

	/* observe.state is written once at start; observe.prom says it lives. */
	snprintf(path, sizeof(path), "%s/%s", o->dir, WF_OBSERVE_STATE);
	state = prom && wf_read_file(path, &data, &n) == 0 ? data : NULL;
	if (state)
		snprintf(out, len, "%.*s", (int)strcspn(state, "\n"), state);
	else
		snprintf(out, len, "degraded: weft-observe is not running; run-queue wait from /proc schedstat only");
	free(data);
	free(prom);
	return strncmp(out, "ok", 2) == 0;
}

int wf_cli_attach(const struct wf_cli_opts *o, struct wf_shm **ret)
{
	const char *argv[] = { "STATS" };
	redisContext *c = wf_cli_connect(o, 0);
	const redisReply *seg;
	redisReply *st;
	int r = -EIO;

	if (!c)
		return -ENOTCONN;
	st = redisCommandArgv(c, 1, argv, NULL);
	seg = st && st->type == REDIS_REPLY_ARRAY ? wf_cli_get(st, "segment") : NULL;
	if (!st)
		fprintf(stderr, "weftctl: %s/admin.sock: %s\n", o->dir, c->errstr[0] ? c->errstr : "connection lost");
	else if (st->type == REDIS_REPLY_ERROR)
		fprintf(stderr, "weftctl: %s\n", st->str);
	else if (!seg || !seg->str)
		fprintf(stderr, "weftctl: weft-admin's STATS names no segment\n");
	else if ((r = wf_shm_attach_ro(seg->str, ret)) == -EACCES)
		fprintf(stderr, "weftctl: cannot read segment %s: %s: only its group (weft) may, as it holds "
				"sessions and users; other users read the aggregates weft-observe writes "
				"(--metrics-file; /run/weft/metrics/weft.prom under systemd)\n", seg->str, strerror(-r));
	else if (r < 0)
		fprintf(stderr, "weftctl: cannot attach segment %s: %s\n", seg->str, strerror(-r));
	freeReplyObject(st);
	redisFree(c);
	return r;
}

int wf_cli_metrics_render(const struct wf_cli_opts *o, const struct wf_shm *shm, struct wf_buf *b)
{
	char journal[PATH_MAX], *extra = observe_file(o, WF_OBSERVE_PROM);
	int r;

	snprintf(journal, sizeof(journal), "%s/journal", o->dir);
	r = wf_prom_render(b, shm, journal, extra);
	if (r == 0)
		r = wf_cli_kafka_metrics(o, b);
	free(extra);
	return r;
}

/*
 * A user outside group weft cannot read the segment (it holds sessions,
 * users and their lists) nor, outside the admin group, reach weft-admin:
 * such a user gets the aggregates weft-observe writes world-readable for
 * node_exporter, DIR/metrics/weft.prom (systemd's --metrics-file), when
 * it is fresh. Exit status.
 */
static int metrics_copy(const struct wf_cli_opts *o)
{
	char *copy = observe_file(o, WF_CLI_METRICS_COPY);
	int rc;

	if (!copy)
		return 1;
	fprintf(stderr, "weftctl: printing %s/%s instead: weft-observe's copy for node_exporter, rewritten every "
			"2 s\n", o->dir, WF_CLI_METRICS_COPY);
	rc = fputs(copy, stdout) < 0 || fflush(stdout) != 0;
	free(copy);
	return rc;
}

int wf_cli_metrics(const struct wf_cli_opts *o)
{
	struct wf_buf b = { 0 };
	struct wf_shm *shm;
	int rc = 1;

	if (wf_cli_attach(o, &shm) < 0)
		return metrics_copy(o);
	if (wf_cli_metrics_render(o, shm, &b) == 0 && fwrite(b.data, 1, b.len, stdout) == b.len &&
	    fflush(stdout) == 0)
		rc = 0;
	wf_buf_fini(&b);
	wf_shm_detach(shm);
	return rc;
}
