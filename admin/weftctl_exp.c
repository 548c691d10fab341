/*
 * weftctl_exp.c - `weftctl experiment ...` (issue 17): create, start,
 * stop, list and status go to weft-admin (EXPERIMENT ...); report reads
 * the journal here (lib/exp_attr), so weft-admin never scans it and
 * serving never waits for a report. Parses its own options (--arm,
 * --unit, --window, --pages, --plot, --journal besides --dir, --json).
 * Linked into weftctl only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/weftctl_int.h"
#include "lib/exp.h"
#include "lib/exp_attr.h"
#include "lib/expstats.h"
#include "shm/layout.h"

#define EXP_USAGE                                                                                                  \
	"usage: weftctl [--dir DIR] [--json] experiment COMMAND\n"                                              \
	"  create NAME --arm ARM=PERCENT:POLICY... [--unit user|session] [--window 30m] [--pages home,pdp,...]\n" \
	"         POLICY: stale (yesterday's list) | batch | live | weights:BATCH,SESSION;\n"                     \
	"         percentages may leave a share outside the experiment (served as usual, not exposed)\n"          \
	"  start NAME | stop NAME | list | status NAME\n"                                                          \
	"  report NAME [--json] [--plot FILE.png] [--journal DIR (default DIR/journal)]\n"

static int exp_usage(const char *what, const char *arg)
{
	fprintf(stderr, "weftctl: %s%s\n%s", what, arg ? arg : "", EXP_USAGE);
	return 2;
}

/* Send argv to weft-admin; print the reply per --json or for a person.
 * Returns the exit code. */
static int exp_call(const struct wf_cli_opts *o, int argc, const char **argv)
{
	redisContext *c = wf_cli_connect(o, 0);
	redisReply *r;
	int rc = 1;

	if (!c)
		return 1;
	r = redisCommandArgv(c, argc, argv, NULL);
	if (!r) {
		fprintf(stderr, "weftctl: %s/admin.sock: %s\n", o->dir, c->errstr[0] ? c->errstr : "connection lost");
	} else if (r->type == REDIS_REPLY_ERROR) {
		const char *m = strncmp(r->str, "ERR ", 4) == 0 ? r->str + 4 : r->str;
		if (o->json) {
			struct wf_buf b = { 0 };
			wf_buf_printf(&b, "{\"ok\":false,\"error\":");
			wf_cli_json_str(&b, m, strlen(m));
			printf("%.*s}\n", (int)b.len, b.data);
			wf_buf_fini(&b);
		} else {
			fprintf(stderr, "weftctl: %s\n", m);
		}
	} else if (o->json) {
		struct wf_buf b = { 0 };
		if (r->type == REDIS_REPLY_STATUS)
			wf_buf_printf(&b, "{\"ok\":true,\"message\":\"%s\"}", r->str);
		else
			wf_cli_json(&b, r);
		printf("%.*s\n", (int)b.len, b.data);
		wf_buf_fini(&b);
		rc = 0;
	} else {
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 0)
			printf("no experiments (create one: weftctl experiment create NAME --arm ...)\n");
		else
			wf_cli_print(stdout, r, 0);
		rc = 0;
	}
	freeReplyObject(r);
	redisFree(c);
	return rc;
}

int wf_cli_experiment(struct wf_cli_opts *o, int argc, char **argv)
{
	const char *pos[8], *av[8 + 2 * WF_EXP_ARMS_MAX + 8], *plot = NULL, *journal = NULL;
	int npos = 0, ac = 0, narms = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			o->json = 1;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(EXP_USAGE, stdout);
			return 0;
		}
		if (a[0] != '-') {
			if (npos == (int)WF_ARRAY_SIZE(pos))
				return exp_usage("too many arguments", NULL);
			pos[npos++] = a;
			continue;
		}
		if (i + 1 >= argc)
			return exp_usage("option needs a value: ", a);
		const char *v = argv[++i];
		if (strcmp(a, "--dir") == 0)
			o->dir = v;
		else if (strcmp(a, "--plot") == 0)
			plot = v;
		else if (strcmp(a, "--journal") == 0)
			journal = v;
		else if (strcmp(a, "--arm") == 0 || strcmp(a, "--unit") == 0 || strcmp(a, "--window") == 0 ||
			 strcmp(a, "--pages") == 0) {
			if (a[2] == 'a' && ++narms > (int)WF_EXP_ARMS_MAX)
				return exp_usage("too many --arm (at most 8)", NULL);
			/* kept for CREATE: ARM x, UNIT x, WINDOW x, PAGES x */
			av[8 + ac++] = a[2] == 'a' ? "ARM" : a[2] == 'u' ? "UNIT" : a[2] == 'w' ? "WINDOW" : "PAGES";
			av[8 + ac++] = v;
		} else
			return exp_usage("unknown option ", a);
	}
	/* pos[0] is "experiment" */
#define IS(i, s) (npos > (i) && strcasecmp(pos[i], s) == 0)
	if (IS(1, "create") && npos == 3) {
		const char *cv[3 + 2 * WF_EXP_ARMS_MAX + 8] = { "EXPERIMENT", "CREATE", pos[2] };
		if (!narms)
			return exp_usage("create wants at least one --arm ARM=PERCENT:POLICY", NULL);
		memcpy(cv + 3, av + 8, (size_t)ac * sizeof(*cv));
		return exp_call(o, 3 + ac, cv);
	}
	if (ac)
		return exp_usage("--arm, --unit, --window and --pages belong to experiment create", NULL);
	if ((plot || journal) && !IS(1, "report"))
		return exp_usage("--plot and --journal belong to experiment report", NULL);
	if ((IS(1, "start") || IS(1, "stop") || IS(1, "status")) && npos == 3) {
		char sub[16];
		snprintf(sub, sizeof(sub), "%s", pos[1]);
		for (char *p = sub; *p; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		return exp_call(o, 3, (const char *[]){ "EXPERIMENT", sub, pos[2] });
	}
	if (IS(1, "list") && npos == 2)
		return exp_call(o, 2, (const char *[]){ "EXPERIMENT", "LIST" });
	if (IS(1, "report") && npos == 3)
		return wf_cli_exp_report(o, pos[2], journal, plot);
#undef IS
	return exp_usage(npos < 2 ? "experiment wants a command" : "bad or incomplete experiment command: ",
			 npos < 2 ? NULL : pos[1]);
}

/* The experiment named name in DIR/experiments.conf (the copy weft-admin
 * writes for the rankers), printed errors when it is not there. */
static int exp_load(const struct wf_cli_opts *o, const char *name, struct wf_exp *ret)
{
	struct wf_exp_set *set = calloc(1, sizeof(*set));
	char path[WF_PATH_MAX], err[600];
	const struct wf_exp *e;
	int rc = 1;

	if (!set)
		return 1;
	snprintf(path, sizeof(path), "%s/experiments.conf", o->dir);
	if (wf_exp_conf_load(path, set, err, sizeof(err)) < 0)
		fprintf(stderr, "weftctl: %s\n", err);
	else if (!(e = wf_exp_find(set, name)))
		fprintf(stderr, "weftctl: no experiment named '%s' in %s (weftctl experiment list shows them)\n", name,
			path);
	else if (e->state == WF_EXP_CREATED)
		fprintf(stderr, "weftctl: experiment '%s' has not started: nothing to report (weftctl experiment start %s)\n",
			name, name);
	else if (e->narms < 2)
		fprintf(stderr, "weftctl: experiment '%s' has one arm: a report compares arms against the first (the "
				"control); create one with two or more\n",
			name);
	else {
		*ret = *e;
		rc = 0;
	}
	free(set);
	return rc;
}

int wf_cli_exp_report(const struct wf_cli_opts *o, const char *name, const char *journal, const char *plot)
{
	char jdir[WF_PATH_MAX];
	const char *names[WF_EXP_ARMS_MAX];
	double share[WF_EXP_ARMS_MAX];
	struct wf_exp_attr_stats st;
	struct wf_exp_report *rep = NULL;
	struct wf_exp_unit *u = NULL;
	struct wf_exp_unit_day *ud = NULL;
	struct wf_exp e;
	size_t n = 0, nud = 0;
	int r, rc = 1;

	if (exp_load(o, name, &e))
		return 1;
	if (!journal) {
		snprintf(jdir, sizeof(jdir), "%s/journal", o->dir);
		journal = jdir;
	}
	/* Read-only, in this process: weft-admin and the serving path never wait for it. */
	r = wf_exp_attr_run_daily(journal, &e, &u, &n, &ud, &nud, &st);
	if (r < 0) {
		fprintf(stderr, "weftctl: cannot read the journal %s: %s%s\n", journal, strerror(-r),
			r == -ENOENT ? " (give its directory with --journal DIR)" : "");
		return 1;
	}
	for (uint32_t i = 0; i < e.narms; i++) {
		names[i] = e.arms[i].name;
		share[i] = e.arms[i].share / (double)WF_EXP_SHARE_SCALE;
	}
	r = wf_exp_report_build_daily(u, n, ud, nud, e.narms, names, share, &rep);
	if (r < 0) {
		fprintf(stderr, "weftctl: cannot build the report: %s\n", strerror(-r));
		goto out;
	}
	if (o->json) {
		json_t *j = wf_exp_report_json(rep);
		if (!j)
			goto out;
		json_object_set_new(j, "experiment", json_string(e.name));
		json_object_set_new(j, "state", json_string(wf_exp_state_name(e.state)));
		json_object_set_new(j, "journal",
				    json_pack("{s:I,s:I,s:I,s:I}", "records", (json_int_t)st.records, "exposures",
					      (json_int_t)st.exposures, "redone", (json_int_t)st.redone, "events",
					      (json_int_t)st.events));
		char *txt = json_dumps(j, JSON_COMPACT);
		if (txt)
			printf("%s\n", txt);
		free(txt);
		json_decref(j);
	} else {
		printf("experiment %s (%s, unit %s, window %llu ms): %llu exposures, %llu events attributed, %llu "
		       "journal records\n",
		       e.name, wf_exp_state_name(e.state), wf_exp_unit_name(e.unit), (unsigned long long)e.window_ms,
		       (unsigned long long)st.exposures, (unsigned long long)st.events, (unsigned long long)st.records);
		wf_exp_report_text(rep, stdout);
	}
	rc = 0;
	if (plot) {
		r = wf_exp_report_plot(rep, plot);
		if (r < 0) {
			fprintf(stderr, "weftctl: cannot draw %s: %s\n", plot,
				r == -ENOENT ? "gnuplot is not installed" : r == -ENODATA ? "no day to draw yet" : strerror(-r));
			rc = 1;
		} else if (!o->json) {
			printf("plot: %s\n", plot);
		}
	}
out:
	wf_exp_report_free(rep);
	free(u);
	free(ud);
	return rc;
}
