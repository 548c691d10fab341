/*
 * main.c - weft-batch: builds snapshot files offline from the events and
 * catalog CSVs (`build`) and validates existing ones (`verify`).
 * The program weft-batch; run by the weft-batch.service timer or by hand.
 *
 *   weft-batch build --events FILE... [--catalog FILE] [--inventory FILE] --out FILE
 *                    [--candidates N] [--generation G] [--threads T] [--chunk-bytes B] [--quiet]
 *   weft-batch verify FILE [--json]
 *   weft-batch nightly --state-dir DIR [--admin SOCK] [--history CSV]... [--catalog FILE]
 *                      [--inventory FILE] [--keep N] [--candidates N] [--threads T] [--quiet]
 *                      [--journal-retention DAYS] [--ranker-state DIR] [--session-ttl SEC]
 *
 * build and nightly run the same pipeline (wf_batch_run): nightly only
 * adds the journal as an input, names the output and loads it.
 *
 * Exit status: 0 success, 1 failure (the error is logged), 2 usage.
 */
#include <dirent.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/journal.h"
#include "lib/proto.h"

#include "batch/batch.h"

static void usage(FILE *f)
{
	fputs("usage: weft-batch build --events FILE... [--catalog FILE] [--inventory FILE] --out FILE\n"
	      "                        [--candidates N (200)] [--generation G] [--threads T] [--chunk-bytes B]\n"
	      "                        [--quiet]\n"
	      "       weft-batch verify FILE [--json]\n"
	      "       weft-batch nightly --state-dir DIR [--admin SOCK] [--history CSV]... [--catalog FILE]\n"
	      "                          [--inventory FILE] [--keep N (7)] [--candidates N] [--threads T] [--quiet]\n"
	      "                          [--journal-retention DAYS (7; 0: never prune)] [--ranker-state DIR]\n"
	      "                          [--session-ttl SEC (1800)]\n"
	      "  After a successful night the journal is pruned: whole segments older than\n"
	      "  --journal-retention days and the session TTL, all read by this night, and at\n"
	      "  or below every ranker checkpoint in --ranker-state (default DIR/rankers).\n",
	      f);
}

void wf_batch_progress(struct wf_batch *b, const char *phase, uint64_t done, uint64_t total)
{
	double t = (double)(wf_now_ns() - b->t0_ns) / 1e9;

	if (b->opt.quiet)
		return;
	if (total)
		fprintf(stderr, "weft-batch: %6.1fs %s: %.1f of %.1f MiB (%.0f%%)\n", t, phase, (double)done / 1048576.0,
			(double)total / 1048576.0, 100.0 * (double)done / (double)total);
	else
		fprintf(stderr, "weft-batch: %6.1fs %s\n", t, phase);
}

void wf_batch_progress_count(struct wf_batch *b, const char *phase, uint64_t done, uint64_t total)
{
	if (b->opt.quiet || !total)
		return;
	fprintf(stderr, "weft-batch: %6.1fs %s: %" PRIu64 " of %" PRIu64 " (%.0f%%)\n",
		(double)(wf_now_ns() - b->t0_ns) / 1e9, phase, done, total, 100.0 * (double)done / (double)total);
}

void wf_batch_fini(struct wf_batch *b)
{
	wf_intern_fini(&b->items);
	wf_intern_fini(&b->users);
	wf_intern_fini(&b->cats);
	wf_intern_fini(&b->brands);
	wf_buf_fini(&b->strs);
	free(b->item);
	free(b->user);
	wf_batch_events_free(b);
	free(b->cat_boost);
	free(b->cat_wday_index);
	free(b->cat_year_index);
	free(b->neigh);
	free(b->neigh_cnt);
	free(b->seq);
	free(b->seq_cnt);
	free(b->compl);
	free(b->compl_cnt);
	free(b->cat_top);
	free(b->cat_top_cnt);
	free(b->cands);
	free(b->cand_cnt);
}

int wf_batch_run(struct wf_batch *b)
{
	int r = wf_batch_load(b);

	if (r == 0)
		r = wf_batch_fit(b);
	if (r == 0)
		r = wf_batch_model(b);
	if (r == 0)
		r = wf_batch_emit(b);
	if (r == 0 && !b->opt.quiet)
		fprintf(stderr,
			"weft-batch: wrote %s: %u users, %u items, %" PRIu64 " events read, %" PRIu64
			" rows skipped, %" PRIu64 " users with full lists, %.1fs\n",
			b->opt.out, b->users.n, b->items.n, b->st.events_read, b->st.rows_skipped, b->st.users_full,
			(double)(wf_now_ns() - b->t0_ns) / 1e9);
	return r;
}

/* A new build context with the defaults both commands share. */
static struct wf_batch *batch_new(void)
{
	struct wf_batch *b = calloc(1, sizeof(*b));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (!b) {
		wf_err("out of memory");
		return NULL;
	}
	b->opt.candidates = 200;
	b->opt.threads = ncpu > 0 ? (uint32_t)WF_MIN(ncpu, 64) : 2;
	b->opt.chunk_bytes = WF_BATCH_CHUNK_BYTES;
	b->serve_wday = -1;
	b->t0_ns = wf_now_ns();
	b->build_ms = wf_wall_ms();
	return b;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	int64_t v;

	if (wf_parse_i64(s, strlen(s), &v) < 0 || v < 0 || (uint64_t)v < min || (uint64_t)v > max)
		return -EINVAL;
	*ret = (uint64_t)v;
	return 0;
}

/* optarg as an integer in min..max into *ret; else says so for --name. 0 or -1. */
static int opt_range(const char *name, uint64_t min, uint64_t max, uint64_t *ret)
{
	if (parse_u64(optarg, min, max, ret) < 0) {
		wf_err("--%s wants an integer in %llu..%llu, not '%s'", name, (unsigned long long)min,
		       (unsigned long long)max, optarg);
		return -1;
	}
	return 0;
}

/* The options build and nightly share (short codes c i n t q, and e for
 * --events / --history). 1 handled, 0 not one of them, -1 bad value
 * (logged). */
static int common_opt(struct wf_batch *b, int c, const char *name)
{
	uint64_t v;

	switch (c) {
	case 'e':
		if (b->opt.nevents == WF_BATCH_MAX_EVENT_FILES) {
			wf_err("at most %u --%s files", WF_BATCH_MAX_EVENT_FILES, name);
			return -1;
		}
		b->opt.events[b->opt.nevents++] = optarg;
		return 1;
	case 'c': b->opt.catalog = optarg; return 1;
	case 'i': b->opt.inventory = optarg; return 1;
	case 'q': b->opt.quiet = true; return 1;
	case 'n':
		if (opt_range("candidates", 1, 10000, &v) < 0)
			return -1;
		b->opt.candidates = (uint32_t)v;
		return 1;
	case 't':
		if (opt_range("threads", 1, 64, &v) < 0)
			return -1;
		b->opt.threads = (uint32_t)v;
		return 1;
	}
	return 0;
}

static int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "events", required_argument, NULL, 'e' },	{ "catalog", required_argument, NULL, 'c' },
		{ "inventory", required_argument, NULL, 'i' }, { "out", required_argument, NULL, 'o' },
		{ "candidates", required_argument, NULL, 'n' }, { "generation", required_argument, NULL, 'g' },
		{ "threads", required_argument, NULL, 't' },	{ "quiet", no_argument, NULL, 'q' },
		{ "chunk-bytes", required_argument, NULL, 'C' }, { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct wf_batch *b = batch_new();
	uint64_t v;
	int c, r, rc = 2;

	if (!b)
		return 1;
	while ((c = getopt_long(argc, argv, "e:c:i:o:n:g:t:qh", opts, NULL)) != -1) {
		int k = common_opt(b, c, "events");

		if (k < 0)
			goto out;
		if (k > 0)
			continue;
		switch (c) {
		case 'o': b->opt.out = optarg; break;
		case 'g':
			if (parse_u64(optarg, 0, INT64_MAX, &v) < 0) {
				wf_err("--generation wants a non-negative integer, not '%s'", optarg);
				goto out;
			}
			b->opt.generation = v;
			b->opt.have_generation = true;
			break;
		case 'C':
			if (parse_u64(optarg, 1, UINT64_MAX >> 2, &v) < 0) {
				wf_err("--chunk-bytes wants a positive integer, not '%s'", optarg);
				goto out;
			}
			b->opt.chunk_bytes = v;
			break;
		case 'h': usage(stdout); rc = 0; goto out;
		default: usage(stderr); goto out;
		}
	}
	if (!b->opt.nevents || !b->opt.out || optind != argc) {
		usage(stderr);
		goto out;
	}
	r = wf_batch_run(b);
	rc = r < 0 ? 1 : 0;
out:
	wf_batch_fini(b);
	free(b);
	return rc;
}

static void print_id(FILE *f, const struct wf_snap *s, uint32_t off, uint32_t len)
{
	char buf[512];

	wf_escape(buf, sizeof(buf), wf_snap_str(s, off), len);
	fputs(buf, f);
}

static int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { 0 } };
	struct wf_snap *s = NULL;
	bool json = false;
	char err[1024];
	int c, r;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	r = wf_snap_open(argv[optind], &s, err, sizeof(err));
	if (r < 0) {
		if (json) {
			struct wf_buf o = { 0 };
			wf_batch_json_str(&o, err, strlen(err));
			printf("{\"ok\": false, \"errno\": %d, \"error\": %s}\n", -r, o.data ? o.data : "\"\"");
			wf_buf_fini(&o);
		}
		wf_err("%s", err);
		return 1;
	}
	const struct wf_snap_hdr *h = s->hdr;
	uint64_t full = 0, seg[WF_SEG_COUNT] = { 0 };
	for (uint32_t u = 0; u < s->nusers; u++) {
		full += s->users[u].cand_cnt > 0;
		seg[s->users[u].segment]++;
	}
	if (json) {
		printf("{\"ok\": true, \"format_version\": %u, \"generation\": %" PRIu64 ", \"build_ms\": %" PRIu64
		       ", \"data_end_ms\": %" PRIu64 ", \"source_digest\": \"%016" PRIx64 "\", \"file_size\": %" PRIu64
		       ", \"users\": %u, \"items\": %u, \"categories\": %u, \"brands\": %u, \"candidates\": %" PRIu64
		       ", \"neighbours\": %" PRIu64 ", \"complements\": %" PRIu64 ", \"popular\": %u, \"trending\": %u"
		       ", \"users_with_candidates\": %" PRIu64 ", \"sections\": [",
		       h->format_version, h->generation, h->build_ms, h->data_end_ms, h->source_digest, h->file_size,
		       s->nusers, s->nitems, s->ncats, s->nbrands, s->ncands, s->nneigh, s->ncompl, s->npopular,
		       s->ntrending, full);
		for (uint32_t i = 0; i < h->nsections; i++)
			printf("%s{\"name\": \"%s\", \"offset\": %" PRIu64 ", \"size\": %" PRIu64 ", \"xxh3\": \"%016" PRIx64 "\"}",
			       i ? ", " : "", wf_snap_section_name(h->sec[i].id), h->sec[i].off, h->sec[i].size, h->sec[i].xxh3);
		printf("]}\n");
	} else {
		time_t bt = (time_t)(h->build_ms / 1000), dt = (time_t)(h->data_end_ms / 1000);
		char b1[64], b2[64];
		strftime(b1, sizeof(b1), "%Y-%m-%d %H:%M:%S UTC", gmtime(&bt));
		strftime(b2, sizeof(b2), "%Y-%m-%d %H:%M:%S UTC", gmtime(&dt));
		printf("%s: OK (format %u, every checksum and index valid)\n", s->path, h->format_version);
		printf("  generation   %" PRIu64 "\n  built        %s\n  data until   %s\n  source       %016" PRIx64
		       "\n  size         %" PRIu64 " bytes\n",
		       h->generation, b1, b2, h->source_digest, h->file_size);
		printf("  users        %u (%" PRIu64 " with candidates, %" PRIu64 " candidates, %.1f per user)\n", s->nusers,
		       full, s->ncands, s->nusers ? (double)s->ncands / s->nusers : 0.0);
		printf("  items        %u (%" PRIu64 " neighbours, %" PRIu64 " complements), %u categories, %u brands\n",
		       s->nitems, s->nneigh, s->ncompl, s->ncats, s->nbrands);
		printf("  popular      %u, trending %u\n  segments    ", s->npopular, s->ntrending);
		static const char *const sn[WF_SEG_COUNT] = { "none", "new", "active", "loyal", "vip", "at_risk", "lapsed" };
		for (int g = 0; g < WF_SEG_COUNT; g++)
			printf(" %s=%" PRIu64, sn[g], seg[g]);
		printf("\n  top popular ");
		for (uint32_t i = 0; i < WF_MIN(s->npopular, 5u); i++) {
			const struct wf_snap_item *it = &s->items[s->popular[i].item];
			putchar(' ');
			print_id(stdout, s, it->id_off, it->id_len);
		}
		printf("\n  sections\n");
		for (uint32_t i = 0; i < h->nsections; i++)
			printf("    %-10s offset %12" PRIu64 " size %12" PRIu64 " xxh3 %016" PRIx64 "\n",
			       wf_snap_section_name(h->sec[i].id), h->sec[i].off, h->sec[i].size, h->sec[i].xxh3);
	}
	wf_snap_close(s);
	return 0;
}

/* ---- nightly: the journal (and any history) into tonight's snapshot ---- */

static int is_night(const struct dirent *e)
{
	size_t l = strlen(e->d_name);

	return strncmp(e->d_name, "night-", 6) == 0 && l > 5 && strcmp(e->d_name + l - 5, ".snap") == 0;
}

/* Keep the newest `keep` night-*.snap files (and their manifests), and any
 * night that is one of keep_paths (what weft serves now and can roll back
 * to; compared by inode, so any spelling of the path counts); the names
 * sort by their timestamp. Nothing is removed when the directory cannot be
 * listed (a warning says so). */
static void prune_snapshots(const char *dir, unsigned keep, char *const *keep_paths, size_t nkeep)
{
	struct stat serve[2], st; /* keep_paths: at most the current and the previous generation */
	size_t nserve = 0;
	struct dirent **ents;
	int n = scandir(dir, &ents, is_night, alphasort);

	if (n < 0) {
		wf_warn("cannot list %s to keep the newest %u nights: %s", dir, keep, strerror(errno));
		return;
	}
	for (size_t i = 0; i < nkeep && nserve < WF_ARRAY_SIZE(serve); i++)
		if (keep_paths[i] && stat(keep_paths[i], &serve[nserve]) == 0)
			nserve++;
	for (int i = 0; i < n; i++) {
		char p[4096 + 512];
		bool serving = false;

		snprintf(p, sizeof(p), "%s/%s", dir, ents[i]->d_name);
		bool known = nserve && stat(p, &st) == 0;
		for (size_t k = 0; known && k < nserve; k++)
			serving |= st.st_dev == serve[k].st_dev && st.st_ino == serve[k].st_ino;
		if ((unsigned)i + keep < (unsigned)n && !serving) {
			unlink(p);
			snprintf(p, sizeof(p), "%s/%s.manifest.json", dir, ents[i]->d_name);
			unlink(p);
		}
		free(ents[i]);
	}
	free(ents);
}

/* The "path" of the generation under key ("current", "previous") in a
 * SNAPSHOT STATUS reply (flat key/value arrays), strdup'd; NULL if none. */
static char *status_path(const redisReply *st, const char *key)
{
	if (!st || st->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < st->elements; i += 2) {
		const redisReply *k = st->element[i], *g = st->element[i + 1];

		if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
			continue;
		if (strcmp(k->str, key) != 0 || g->type != REDIS_REPLY_ARRAY)
			continue;
		for (size_t j = 0; j + 1 < g->elements; j += 2)
			if (g->element[j]->type == REDIS_REPLY_STRING && !strcmp(g->element[j]->str, "path") &&
			    g->element[j + 1]->type == REDIS_REPLY_STRING)
				return strdup(g->element[j + 1]->str);
	}
	return NULL;
}

/* Ask weft-admin to load path; prints its reply. Then asks which files
 * serve now (current, previous) into ret_paths[0..1] (NULL where unknown),
 * so pruning never removes the rollback target. 0, or 1 with the reason
 * logged; 2 when loaded but the serving files are unknown (prune nothing). */
static int admin_load(const char *admin, const char *path, char **ret_paths)
{
	redisContext *ac = redisConnectUnix(admin);
	redisReply *rep;
	int rc = 1;

	if (!ac || ac->err) {
		wf_err("built %s but cannot reach %s to load it: %s; the current snapshot stays (load it with "
		       "weftctl snapshot load)", path, admin, ac ? ac->errstr : "out of memory");
		redisFree(ac);
		return 1;
	}
	rep = redisCommand(ac, "SNAPSHOT LOAD %s", path);
	if (!rep)
		wf_err("no reply from %s to SNAPSHOT LOAD %s: %s; the current snapshot stays", admin, path, ac->errstr);
	else if (rep->type == REDIS_REPLY_ERROR)
		wf_err("weft refused %s: %s; the current snapshot stays", path, rep->str);
	else {
		printf("%s: %s\n", path,
		       rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_STRING ? rep->str : "loaded");
		rc = 0;
	}
	if (rep)
		freeReplyObject(rep);
	if (rc == 0) {
		rep = redisCommand(ac, "SNAPSHOT STATUS");
		ret_paths[0] = status_path(rep, "current");
		ret_paths[1] = status_path(rep, "previous");
		if (!rep || rep->type != REDIS_REPLY_ARRAY) {
			wf_warn("loaded %s, but %s did not say which snapshots serve (%s): no old nights removed",
				path, admin, rep ? (rep->type == REDIS_REPLY_ERROR ? rep->str : "odd reply") : ac->errstr);
			rc = 2;
		}
		if (rep)
			freeReplyObject(rep);
	}
	redisFree(ac);
	return rc;
}

/* Journal retention after a successful night (the rule: lib/journal.h,
 * wf_journal_retain). Logs what it removed; a failure only warns. */
static void prune_journal(const char *jdir, const char *state, const char *rstate, uint64_t days, uint64_t ttl_s,
			  uint64_t consumed)
{
	char cdir[4200];
	struct wf_journal_retention r = { .now_ms = wf_wall_ms(), .keep_ms = days * 86400000ull,
					  .session_ttl_ms = ttl_s * 1000, .consumed_lsn = consumed, .ckpt_dir = cdir };
	uint64_t keep = 0;
	int n;

	if (days == 0)
		return;
	snprintf(cdir, sizeof(cdir), "%s", rstate ? rstate : "");
	if (!rstate)
		snprintf(cdir, sizeof(cdir), "%s/rankers", state);
	n = wf_journal_retain(jdir, &r, &keep);
	if (n < 0)
		wf_warn("journal retention: cannot prune %s: %s (it keeps growing until this works)", jdir, strerror(-n));
	else
		wf_info("journal retention: removed %d segment(s) of %s (kept: the last %" PRIu64 " days, lsn %" PRIu64
			" and after)", n, jdir, days, keep);
}

static int cmd_nightly(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' }, { "admin", required_argument, NULL, 'a' },
		{ "history", required_argument, NULL, 'e' },   { "catalog", required_argument, NULL, 'c' },
		{ "inventory", required_argument, NULL, 'i' }, { "keep", required_argument, NULL, 'k' },
		{ "candidates", required_argument, NULL, 'n' }, { "threads", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },           { "help", no_argument, NULL, 'h' },
		{ "journal-retention", required_argument, NULL, 'R' }, { "ranker-state", required_argument, NULL, 'S' },
		{ "session-ttl", required_argument, NULL, 'T' },
		{ 0 },
	};
	struct wf_batch *b = batch_new();
	const char *state = NULL, *admin = NULL, *rstate = NULL;
	uint64_t retention_days = 7, ttl_s = 1800, consumed = 0;
	unsigned keep = 7;
	int c, rc = 2;
	char jdir[4096], sdir[4096], out[4200], stamp[32];
	uint64_t v;
	time_t now = time(NULL);
	struct tm tm;

	if (!b)
		return 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		int k = common_opt(b, c, "history");

		if (k < 0)
			goto out;
		if (k > 0)
			continue;
		switch (c) {
		case 's': state = optarg; break;
		case 'a': admin = optarg; break;
		case 'k':
			if (parse_u64(optarg, 1, 1000, &v) < 0) {
				wf_err("--keep wants 1..1000, not '%s'", optarg);
				goto out;
			}
			keep = (unsigned)v;
			break;
		case 'R':
			if (parse_u64(optarg, 0, 36500, &retention_days) < 0) {
				wf_err("--journal-retention wants days, 0..36500 (0: never prune), not '%s'", optarg);
				goto out;
			}
			break;
		case 'S': rstate = optarg; break;
		case 'T':
			if (parse_u64(optarg, 1, 86400 * 365, &ttl_s) < 0) {
				wf_err("--session-ttl wants seconds, not '%s'", optarg);
				goto out;
			}
			break;
		case 'h': usage(stdout); rc = 0; goto out;
		default: usage(stderr); goto out;
		}
	}
	if (!state || optind != argc) {
		usage(stderr);
		goto out;
	}
	rc = 1;
	snprintf(jdir, sizeof(jdir), "%s/journal", state);
	snprintf(sdir, sizeof(sdir), "%s/snapshots", state);
	if (mkdir(sdir, 0750) < 0 && errno != EEXIST) {
		wf_err("cannot create %s: %s; the current snapshot stays", sdir, strerror(errno));
		goto out;
	}
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(out, sizeof(out), "%s/night-%s.snap", sdir, stamp);
	b->opt.journal = jdir;
	b->opt.out = out;
	/* What this night consumes: every segment before the newest (the
	 * build reads the journal to its end; the newest may still grow). */
	if (wf_journal_head_lsn(jdir, &consumed) < 0)
		consumed = 0;
	/* The very same build as `weft-batch build`: history CSVs, then the journal. */
	if (wf_batch_run(b) < 0) {
		wf_err("nightly build failed (reason above); the current snapshot stays");
		goto out;
	}
	/* Load first, prune after: a night is removed only when tonight's
	 * serves, and never the file weft could roll back to. */
	if (admin) {
		char *serve[2] = { NULL, NULL };

		rc = admin_load(admin, out, serve);
		if (rc == 0)
			prune_snapshots(sdir, keep, serve, 2);
		if (rc == 0 || rc == 2)
			prune_journal(jdir, state, rstate, retention_days, ttl_s, consumed);
		rc = rc == 2 ? 0 : rc;
		free(serve[0]);
		free(serve[1]);
	} else {
		prune_snapshots(sdir, keep, NULL, 0);
		prune_journal(jdir, state, rstate, retention_days, ttl_s, consumed);
		rc = 0;
	}
out:
	wf_batch_fini(b);
	free(b);
	return rc;
}

int main(int argc, char **argv)
{
	wf_log_init("weft-batch");
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "build") == 0)
		return cmd_build(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "nightly") == 0)
		return cmd_nightly(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
