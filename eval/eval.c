/*
 * eval.c - weft-eval: offline evaluation of weft's ranking on a real or
 * generated event log, through the same scoring library that serves.
 *
 *   weft-eval --events FILE [--catalog FILE] --split-days N --k K [--json]
 *             [--live DIR] [--plot FILE.png] [--valid-days V] [--quiet]
 *
 * Protocol: the snapshot is built by the real weft-batch from the events
 * before the last N days; every later session is replayed in time order,
 * and after each event K recommendations are asked for; a hit is the next
 * item the shopper looked at (HR@K), and its reciprocal rank (MRR@K).
 * Variants: popularity, batch (snapshot only), session (session model
 * only), hybrid; beside them the published baselines sknn (V-SkNN), ar
 * (association rules) and sr (sequential rules), trained on the same
 * events (eval/baselines.c). Slices: returning users (history before the
 * split) / new visitors, the next item a repeat of one this session saw /
 * a novel one, the prediction after a session's first event / later ones,
 * and sessions where an intent pivot was detected.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eval/eval.h"
#include "lib/proto.h"

static const char *const variant_names[EV_NVARIANTS] = { "popularity", "batch", "session", "hybrid",
							 "sknn",       "ar",    "sr" };
static const char *const slice_names[SL_NSLICES] = { "all", "returning", "new", "repeat",
						     "novel", "first", "later", "pivot" };

const char *eval_variant_name(int v)
{
	return variant_names[v];
}

const char *eval_slice_name(int s)
{
	return slice_names[s];
}

double eval_hr(const struct eval_metrics *m, uint32_t k)
{
	uint64_t h = 0;

	if (!m->preds)
		return 0;
	for (uint32_t r = 0; r < k && r < EVAL_MAX_K; r++)
		h += m->hits[r];
	return (double)h / (double)m->preds;
}

double eval_mrr(const struct eval_metrics *m, uint32_t k)
{
	double s = 0;

	if (!m->preds)
		return 0;
	for (uint32_t r = 0; r < k && r < EVAL_MAX_K; r++)
		s += (double)m->hits[r] / (double)(r + 1);
	return s / (double)m->preds;
}

static void usage(FILE *f)
{
	fputs("usage: weft-eval --events FILE [--catalog FILE] --split-days N --k K [--json]\n"
	      "                 [--live DIR] [--plot FILE.png] [--valid-days V] [--threads T] [--quiet]\n"
	      "  --events FILE     events CSV (ts,user_id,session_id,event,item_id,value); rows without a\n"
	      "                    session id are cut into sessions at 30 minutes of inactivity\n"
	      "  --catalog FILE    catalog CSV for the snapshot build (optional)\n"
	      "  --split-days N    test on the last N days, build the snapshot from the days before\n"
	      "  --k K             recommendations asked after each event (HR@K, MRR@K)\n"
	      "  --valid-days V    tune the session/batch weights (and sknn's k and sample) on the V days\n"
	      "                    before the test days\n"
	      "                    (the test days are never looked at while tuning); 0 = defaults\n"
	      "  --live DIR        also replay through the appliance running at DIR (weft.sock,\n"
	      "                    admin.sock) and compare with the in-process numbers; refused if that\n"
	      "                    appliance serves (a snapshot current, events acknowledged)\n"
	      "  --live-force      --live even so: loads the evaluation snapshot, sets the home weights,\n"
	      "                    journals the replay; then puts the weights and generation back\n"
	      "                    (the appliance serves the defaults: use this to choose new defaults)\n"
	      "  --plot FILE.png   draw HR@k for k = 1..50 per variant, baselines included (gnuplot)\n"
	      "  --json            one JSON object on stdout\n"
	      "  --drop-features F,...  an ablation: those features' fitted weights taken as 0\n"
	      "                    (names as EXPLAIN's model terms: batch, cat, repeat, seq, ...)\n",
	      f);
}

/* Write the events with ts < before (and >= after) as an events CSV. */
static int write_split(const struct eval_log *log, int64_t after, int64_t before, const char *path)
{
	FILE *f = fopen(path, "w");
	uint64_t n = 0;

	if (!f)
		return -errno;
	fputs("ts,user_id,session_id,event,item_id,value\n", f);
	for (uint64_t i = 0; i < log->nev; i++) {
		const struct eval_event *e = &log->ev[i];
		uint32_t ul = 0, il = 0;
		const char *u = "", *it = "";

		if (e->ts_ms < after || e->ts_ms >= before)
			continue;
		if (e->user != UINT32_MAX)
			u = eval_str(log, e->user, &ul);
		if (e->item != UINT32_MAX)
			it = eval_str(log, e->item, &il);
		fprintf(f, "%lld,%.*s,e%u,%s,%.*s,", (long long)e->ts_ms, (int)ul, u, e->session,
			wf_event_name(e->type), (int)il, it);
		if (e->value)
			fprintf(f, "%u", e->value);
		fputc('\n', f);
		n++;
	}
	if (fclose(f) != 0)
		return -errno;
	return n ? 0 : -ENODATA;
}

/* Find a sibling program of this binary: ../batch/weft-batch in the build
 * tree, the same directory when installed, else PATH. */
void eval_find_prog(const char *name, const char *subdir, char *out, size_t n)
{
	char self[PATH_MAX];
	ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (l > 0) {
		self[l] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, n, "%s/../%s/%s", self, subdir, name);
			if (access(out, X_OK) == 0)
				return;
			snprintf(out, n, "%s/%s", self, name);
			if (access(out, X_OK) == 0)
				return;
		}
	}
	snprintf(out, n, "%s", name);
}

static int build_snapshot(const char *events, const char *catalog, const char *out, int quiet)
{
	char prog[PATH_MAX];
	const char *argv[12];
	int i = 0, st;
	pid_t pid;

	eval_find_prog("weft-batch", "batch", prog, sizeof(prog));
	argv[i++] = prog;
	argv[i++] = "build";
	argv[i++] = "--events";
	argv[i++] = events;
	if (catalog) {
		argv[i++] = "--catalog";
		argv[i++] = catalog;
	}
	argv[i++] = "--out";
	argv[i++] = out;
	if (quiet)
		argv[i++] = "--quiet";
	argv[i] = NULL;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (quiet && !freopen("/dev/null", "w", stdout))
			_exit(127);
		execvp(prog, (char *const *)argv);
		fprintf(stderr, "weft-eval: cannot run %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* {"hr", "mrr", "predictions", "hits"} of m at k. */
static json_t *json_metrics(const struct eval_metrics *m, uint32_t k)
{
	uint64_t hits = 0;

	for (uint32_t r = 0; r < k && r < EVAL_MAX_K; r++)
		hits += m->hits[r];
	return json_pack("{s:f, s:f, s:I, s:I}", "hr", eval_hr(m, k), "mrr", eval_mrr(m, k), "predictions",
			 (json_int_t)m->preds, "hits", (json_int_t)hits);
}

static json_t *json_variants(const struct eval_result *res, int slice, int v0, int v1, uint32_t k)
{
	json_t *o = json_object();

	for (int v = v0; v < v1; v++)
		json_object_set_new(o, variant_names[v], json_metrics(&res->m[v][slice], k));
	return o;
}

/* A weight as set (0.1, not the float's 0.1000000015). */
static double round3(float w)
{
	return round((double)w * 1000.0) / 1000.0;
}

/* The whole report as one JSON object on stdout (jansson writes it). */
static int print_json(const struct eval_opts *o, const struct eval_result *res, const struct eval_result *live)
{
	json_t *root, *slices = json_object();
	int r;

	root = json_pack("{s:i, s:I, s:I, s:I, s:I, s:f, s:f, s:i, s:{s:[f,f], s:[f,f]}, s:{s:{s:i, s:i, s:s, s:b}, s:{}, "
			 "s:{s:i}}, s:f, s:f, s:f}",
			 "k", (int)o->k, "events", (json_int_t)res->events, "test_sessions",
			 (json_int_t)res->test_sessions, "pivot_sessions", (json_int_t)res->pivot_sessions,
			 "predictions", (json_int_t)res->m[EV_HYBRID][SL_ALL].preds, "replay_events_per_sec",
			 res->replay_secs > 0 ? res->events / res->replay_secs : 0.0, "replay_events_per_cpu_sec",
			 res->replay_cpu_secs > 0 ? res->events / res->replay_cpu_secs : 0.0, "replay_threads",
			 o->threads, "weights", "returning", round3(o->w[0][0]), round3(o->w[0][1]), "new",
			 round3(o->w[1][0]), round3(o->w[1][1]), "baselines", "sknn", "k", (int)o->sknn.k, "sample",
			 (int)o->sknn.sample, "weights", o->sknn.linear ? "linear" : "i/L", "step_decay", o->sknn.step_decay, "ar", "sr", "steps",
			 (int)EVAL_SR_STEPS, "baseline_train_secs", res->base_build_secs, "baseline_replay_secs",
			 res->base_secs, "baseline_events_per_cpu_sec",
			 res->base_cpu_secs > 0 ? res->events / res->base_cpu_secs : 0.0);
	if (!root || !slices)
		return -ENOMEM;
	json_object_set_new(root, "predictions_next_is_last_item", json_integer((json_int_t)res->next_is_last));
	json_object_set_new(root, "variants", json_variants(res, SL_ALL, 0, EV_NVARIANTS, o->k));
	for (int s = 1; s < SL_NSLICES; s++)
		json_object_set_new(slices, slice_names[s], json_variants(res, s, 0, EV_NVARIANTS, o->k));
	json_object_set_new(root, "slices", slices);
	if (live) /* the variants the appliance serves */
		json_object_set_new(root, "live", json_variants(live, SL_ALL, EV_SESSION, EV_HYBRID + 1, o->k));
	r = json_dumpf(root, stdout, JSON_COMPACT | JSON_REAL_PRECISION(10));
	json_decref(root);
	if (r < 0 || putchar('\n') == EOF)
		return -EIO;
	return 0;
}

static void print_table(const struct eval_opts *o, const struct eval_result *res, const struct eval_result *live)
{
	printf("weft-eval: %llu test events in %llu sessions (%llu with an intent pivot), k = %u\n",
	       (unsigned long long)res->events, (unsigned long long)res->test_sessions,
	       (unsigned long long)res->pivot_sessions, o->k);
	printf("weights: returning %.2f batch / %.2f session, new %.2f / %.2f%s\n", o->w[0][0], o->w[0][1],
	       o->w[1][0], o->w[1][1], o->valid_days ? " (tuned on the validation days)" : " (defaults)");
	printf("baselines: sknn k %u sample %u step decay %s%s, ar, sr steps %u (trained on the same events)\n",
	       o->sknn.k, o->sknn.sample, o->sknn.step_decay ? "on" : "off",
	       o->valid_days ? " (tuned on the validation days)" : "", EVAL_SR_STEPS);
	printf("next item: the one just looked at in %llu of %llu predictions; HR@%u/MRR@%u per slice and variant:\n",
	       (unsigned long long)res->next_is_last, (unsigned long long)res->m[EV_HYBRID][SL_ALL].preds, o->k, o->k);
	printf("\n%-10s %8s", "slice", "preds");
	for (int v = 0; v < EV_NVARIANTS; v++)
		printf(" %15s", variant_names[v]);
	printf("\n");
	for (int s = 0; s < SL_NSLICES; s++) {
		printf("%-10s %8llu", slice_names[s], (unsigned long long)res->m[EV_HYBRID][s].preds);
		for (int v = 0; v < EV_NVARIANTS; v++)
			printf("   %.4f/%.4f", eval_hr(&res->m[v][s], o->k), eval_mrr(&res->m[v][s], o->k));
		printf("\n");
	}
	if (live) {
		printf("%-10s %8s", "live", "");
		for (int v = 0; v < EV_NVARIANTS; v++)
			if (v == EV_SESSION || v == EV_HYBRID)
				printf("   %.4f/%.4f", eval_hr(&live->m[v][SL_ALL], o->k),
				       eval_mrr(&live->m[v][SL_ALL], o->k));
			else
				printf(" %15s", "");
		printf("   (through the appliance's socket)\n");
	}
	printf("\nreplay: %.0f events/s (%d threads; %.0f events per CPU-second of the replay threads)\n",
	       res->replay_secs > 0 ? res->events / res->replay_secs : 0, o->threads,
	       res->replay_cpu_secs > 0 ? res->events / res->replay_cpu_secs : 0);
	printf("baselines: trained in %.2f s, replayed at %.0f events/s (%.0f per CPU-second)\n",
	       res->base_build_secs, res->base_secs > 0 ? res->events / res->base_secs : 0,
	       res->base_cpu_secs > 0 ? res->events / res->base_cpu_secs : 0);
}

/* HR@k for k = 1..50, one line per variant; the baselines dashed. */
static int plot(const char *png, const struct eval_result *res)
{
	static const char *const colours[EV_NVARIANTS] = { "#999999", "#2ca02c", "#1f77b4", "#ff7f0e",
							   "#9467bd", "#000000", "#d62728" };
	FILE *g = popen("gnuplot", "w");

	if (!g)
		return -errno;
	fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset output '%s'\n", png);
	fprintf(g, "set title 'weft-eval: HR@k per variant'\nset xlabel 'k'\nset ylabel 'HR@k'\n"
		   "set key left top\nset grid\nset yrange [0:*]\nplot ");
	for (int v = 0; v < EV_NVARIANTS; v++)
		fprintf(g, "%s'-' using 1:2 with lines lw %d dt %d lc rgb '%s' title '%s'", v ? ", " : "",
			v == EV_HYBRID ? 3 : 2, v >= EV_NWEFT ? 2 : 1, colours[v], variant_names[v]);
	fputc('\n', g);
	for (int v = 0; v < EV_NVARIANTS; v++) {
		for (uint32_t k = 1; k <= EVAL_MAX_K; k++)
			fprintf(g, "%u %.6f\n", k, eval_hr(&res->m[v][SL_ALL], k));
		fputs("e\n", g);
	}
	return pclose(g) == 0 ? 0 : -EIO;
}

/* --drop-features a,b: the fitted weights of those features taken as 0
 * (an ablation: what each part of the model is worth; the snapshot and
 * its fit are unchanged). */
static int parse_drop(const char *list, uint32_t *ret)
{
	uint32_t mask = 0;
	char buf[256];

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		uint32_t f;
		for (f = 0; f < WF_RANK_NFEAT && strcmp(t, wf_rank_feature_name(f)) != 0; f++)
			;
		if (f == WF_RANK_NFEAT) {
			fprintf(stderr, "weft-eval: --drop-features: unknown feature '%s' (the model's: ", t);
			for (f = 0; f < WF_RANK_NFEAT; f++)
				fprintf(stderr, "%s%s", f ? ", " : "", wf_rank_feature_name(f));
			fprintf(stderr, ")\n");
			return -EINVAL;
		}
		mask |= 1u << f;
	}
	*ret = mask;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "events", required_argument, NULL, 'e' }, { "catalog", required_argument, NULL, 'c' },
		{ "split-days", required_argument, NULL, 's' }, { "k", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' }, { "live", required_argument, NULL, 'l' },
		{ "plot", required_argument, NULL, 'p' }, { "valid-days", required_argument, NULL, 'v' },
		{ "threads", required_argument, NULL, 't' }, { "quiet", no_argument, NULL, 'q' },
		{ "live-force", no_argument, NULL, 'F' }, { "drop-features", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct eval_opts o = { .k = 20, .threads = 2 };
	static struct eval_log log;
	static struct eval_result res, live;
	char tmpdir[] = "/tmp/weft-eval.XXXXXX", train[PATH_MAX], snap_path[PATH_MAX], err[512];
	struct wf_snap *snap = NULL;
	struct eval_base *base = NULL;
	double base_secs = 0;
	int64_t max_ts = INT64_MIN, split, valid_start;
	int opt, r, json = 0, have_live = 0;
	double split_days = -1;
	const char *drop = NULL;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'e': o.events = optarg; break;
		case 'c': o.catalog = optarg; break;
		case 's': split_days = atof(optarg); break;
		case 'k': o.k = (uint32_t)atoi(optarg); break;
		case 'j': json = 1; break;
		case 'l': o.live = optarg; break;
		case 'p': o.plot = optarg; break;
		case 'v': o.valid_days = atof(optarg); break;
		case 't': o.threads = atoi(optarg); break;
		case 'q': o.quiet = 1; break;
		case 'F': o.live_force = 1; break;
		case 'D': drop = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o.events || split_days <= 0 || o.k < 1 || o.k > EVAL_MAX_K || o.threads < 1 || optind != argc) {
		fprintf(stderr, "weft-eval: --events, --split-days (> 0) and --k (1..%u) are required\n", EVAL_MAX_K);
		usage(stderr);
		return 2;
	}
	/* HR@k for k <= depth is the same whatever the depth (a list's top k
	 * is the shorter list): ask only for what is reported. */
	o.depth = o.plot ? EVAL_MAX_K : o.k;
	if (eval_log_read(&log, o.events, o.quiet) < 0)
		return 1;
	for (uint64_t i = 0; i < log.nev; i++)
		max_ts = WF_MAX(max_ts, log.ev[i].ts_ms);
	split = max_ts - (int64_t)(split_days * 86400000.0);
	valid_start = split - (int64_t)(o.valid_days * 86400000.0);
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "weft-eval: cannot create a temp dir: %s\n", strerror(errno));
		return 1;
	}
	snprintf(train, sizeof(train), "%s/train.csv", tmpdir);
	snprintf(snap_path, sizeof(snap_path), "%s/train.snap", tmpdir);
	r = 1;

	/* Tuning: build from the days before the validation window, choose
	 * weights on the validation window. The test days stay unseen. */
	wf_rank_params_default(&o.params);
	if (drop && parse_drop(drop, &o.params.drop_features) < 0)
		return 2;
	eval_default_weights(&o);
	eval_sknn_params_default(&o.sknn);
	if (o.valid_days > 0) {
		if (write_split(&log, INT64_MIN, valid_start, train) < 0 ||
		    build_snapshot(train, o.catalog, snap_path, o.quiet) < 0 ||
		    wf_snap_open(snap_path, &snap, err, sizeof(err)) < 0) {
			fprintf(stderr, "weft-eval: building the tuning snapshot failed %s\n", err);
			goto out;
		}
		eval_tune(&o, &log, snap, valid_start, split);
		eval_tune_sknn(&o, &log, snap, valid_start, split);
		wf_snap_close(snap);
		snap = NULL;
	}
	if (write_split(&log, INT64_MIN, split, train) < 0) {
		fprintf(stderr, "weft-eval: no events before the split (%g days before the newest event)\n",
			split_days);
		goto out;
	}
	if (build_snapshot(train, o.catalog, snap_path, o.quiet) < 0) {
		fprintf(stderr, "weft-eval: weft-batch build failed on the training days\n");
		goto out;
	}
	if (wf_snap_open(snap_path, &snap, err, sizeof(err)) < 0) {
		fprintf(stderr, "weft-eval: %s\n", err);
		goto out;
	}
	base = eval_base_train(&o, &log, snap, split, &base_secs);
	eval_replay(&o, &log, snap, base, split, INT64_MAX, EVAL_PASS_WEFT | EVAL_PASS_BASE, &res);
	res.base_build_secs = base_secs;
	if (o.live) {
		if (eval_live(&o, &log, snap, snap_path, split, &live) < 0)
			goto out;
		have_live = 1;
	}
	if (json) {
		if (print_json(&o, &res, have_live ? &live : NULL) < 0) {
			fprintf(stderr, "weft-eval: writing the JSON report failed\n");
			goto out;
		}
	} else
		print_table(&o, &res, have_live ? &live : NULL);
	if (o.plot && plot(o.plot, &res) < 0)
		fprintf(stderr, "weft-eval: could not draw %s (is gnuplot installed?)\n", o.plot);
	r = 0;
	if (have_live) {
		for (int v = EV_SESSION; v <= EV_HYBRID; v++)
			if (memcmp(&live.m[v][SL_ALL], &res.m[v][SL_ALL], sizeof(res.m[v][SL_ALL])) != 0) {
				fprintf(stderr, "weft-eval: live and in-process %s results differ\n",
					eval_variant_name(v));
				r = 1;
			}
		if (r == 0 && !o.quiet)
			fprintf(stderr, "weft-eval: live and in-process agree exactly (session, hybrid)\n");
	}
out:
	eval_base_destroy(base);
	wf_snap_close(snap);
	unlink(train);
	unlink(snap_path);
	{
		char man[PATH_MAX + 32];
		snprintf(man, sizeof(man), "%s.manifest.json", snap_path);
		unlink(man);
	}
	rmdir(tmpdir);
	eval_log_fini(&log);
	return r;
}
