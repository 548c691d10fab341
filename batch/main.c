/*
 * main.c - weft-batch: builds snapshot files offline from the events and
 * catalog CSVs (`build`) and validates existing ones (`verify`).
 * The program weft-batch; run by the weft-batch.service timer or by hand.
 *
 *   weft-batch build --events FILE [--catalog FILE] [--inventory FILE] --out FILE
 *                    [--candidates N] [--generation G] [--threads T] [--quiet]
 *   weft-batch verify FILE [--json]
 *
 * Exit status: 0 success, 1 failure (the error is logged), 2 usage.
 */
#include <getopt.h>
#include <inttypes.h>
#include <unistd.h>

#include "batch/batch.h"

static void usage(FILE *f)
{
	fputs("usage: weft-batch build --events FILE [--catalog FILE] [--inventory FILE] --out FILE\n"
	      "                        [--candidates N (200)] [--generation G] [--threads T] [--quiet]\n"
	      "       weft-batch verify FILE [--json]\n",
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

void wf_batch_fini(struct wf_batch *b)
{
	wf_intern_fini(&b->items);
	wf_intern_fini(&b->users);
	wf_intern_fini(&b->cats);
	wf_intern_fini(&b->brands);
	wf_intern_fini(&b->sessions);
	wf_buf_fini(&b->strs);
	wf_buf_fini(&b->sess_arena);
	free(b->item);
	free(b->user);
	free(b->ev);
	free(b->neigh);
	free(b->neigh_cnt);
	free(b->compl);
	free(b->compl_cnt);
	free(b->cat_top);
	free(b->cat_top_cnt);
	free(b->cands);
	free(b->cand_cnt);
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	int64_t v;

	if (wf_parse_i64(s, strlen(s), &v) < 0 || v < 0 || (uint64_t)v < min || (uint64_t)v > max)
		return -EINVAL;
	*ret = (uint64_t)v;
	return 0;
}

static int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "events", required_argument, NULL, 'e' },	{ "catalog", required_argument, NULL, 'c' },
		{ "inventory", required_argument, NULL, 'i' }, { "out", required_argument, NULL, 'o' },
		{ "candidates", required_argument, NULL, 'n' }, { "generation", required_argument, NULL, 'g' },
		{ "threads", required_argument, NULL, 't' },	{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },		{ 0 },
	};
	struct wf_batch *b = calloc(1, sizeof(*b));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t v;
	int c, r;

	if (!b)
		return 1;
	b->opt.candidates = 200;
	b->opt.threads = ncpu > 0 ? (uint32_t)WF_MIN(ncpu, 64) : 2;
	b->t0_ns = wf_now_ns();
	b->build_ms = wf_wall_ms();
	while ((c = getopt_long(argc, argv, "e:c:i:o:n:g:t:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'e': b->opt.events = optarg; break;
		case 'c': b->opt.catalog = optarg; break;
		case 'i': b->opt.inventory = optarg; break;
		case 'o': b->opt.out = optarg; break;
		case 'q': b->opt.quiet = true; break;
		case 'n':
			if (parse_u64(optarg, 1, 10000, &v) < 0) {
				wf_err("--candidates wants an integer in 1..10000, not '%s'", optarg);
				free(b);
				return 2;
			}
			b->opt.candidates = (uint32_t)v;
			break;
		case 'g':
			if (parse_u64(optarg, 0, INT64_MAX, &v) < 0) {
				wf_err("--generation wants a non-negative integer, not '%s'", optarg);
				free(b);
				return 2;
			}
			b->opt.generation = v;
			b->opt.have_generation = true;
			break;
		case 't':
			if (parse_u64(optarg, 1, 64, &v) < 0) {
				wf_err("--threads wants an integer in 1..64, not '%s'", optarg);
				free(b);
				return 2;
			}
			b->opt.threads = (uint32_t)v;
			break;
		case 'h': usage(stdout); free(b); return 0;
		default: usage(stderr); free(b); return 2;
		}
	}
	if (!b->opt.events || !b->opt.out || optind != argc) {
		usage(stderr);
		free(b);
		return 2;
	}
	r = wf_batch_load(b);
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
	wf_batch_fini(b);
	free(b);
	return r < 0 ? 1 : 0;
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
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
