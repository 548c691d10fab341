/*
 * weftctl_diff.c - `weftctl snapshot diff A B [--json]`: what changed
 * between two nights, so a bad night is caught before it serves: users
 * gained, lost and kept; for kept users how much of their list changed
 * (Jaccard distance of the top 20 and of the whole list: mean, p50, p90);
 * the items that rose and fell most in how many lists they appear in (top
 * 10 each); items gained and lost; candidate counts. Reads both files with
 * the validating reader (a bad file: its message, exit 1). Linked into
 * weftctl.
 *
 * Cost: one pass over A's users (a hash lookup in B each) and their lists
 * with per-user stamps over B's items, so 1M users x 200 candidates is a
 * few seconds, not a quadratic list comparison.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/weftctl_int.h"
#include "lib/snapshot.h"

#define TOP_LIST 20u
#define TOP_MOVERS 10u

struct delta {
	int64_t d;       /* lists in B minus lists in A */
	uint32_t item;   /* index in B, or in A when only_a */
	uint32_t only_a; /* the item is not in B */
};

static int cmp_f(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

static int cmp_delta(const void *a, const void *b)
{
	const struct delta *x = a, *y = b;

	if (x->d != y->d)
		return x->d < y->d ? 1 : -1; /* descending */
	if (x->only_a != y->only_a)
		return x->only_a < y->only_a ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

static float pct(const float *v, uint64_t n, double q)
{
	return n ? v[(uint64_t)(q * (double)(n - 1) + 0.5)] : 0.0f;
}

struct dist {
	float *v;
	uint64_t n;
	double mean;
};

static void dist_finish(struct dist *d)
{
	double sum = 0;

	qsort(d->v, d->n, sizeof(*d->v), cmp_f);
	for (uint64_t i = 0; i < d->n; i++)
		sum += d->v[i];
	d->mean = d->n ? sum / (double)d->n : 0;
}

static void json_item(struct wf_buf *o, const struct wf_snap *s, uint32_t i)
{
	wf_cli_json_str(o, wf_snap_str(s, s->items[i].id_off), s->items[i].id_len);
}

static void print_item(const struct wf_snap *s, uint32_t i)
{
	char buf[600];

	wf_escape(buf, sizeof(buf), wf_snap_str(s, s->items[i].id_off), s->items[i].id_len);
	fputs(buf, stdout);
}

/* What diff_compute() finds; owned by the caller (diff_fini). */
struct diff {
	uint64_t kept, lost, gained, items_kept, items_gained, items_lost;
	struct dist d20, dall;   /* per kept user: Jaccard distance of the top 20 / whole lists */
	struct delta *dl;        /* items whose list count changed, most risen first */
	uint64_t ndelta;
};

static void diff_fini(struct diff *d)
{
	free(d->d20.v);
	free(d->dall.v);
	free(d->dl);
}

/* One pass over A's users (a hash lookup in B each), their lists marked
 * by per-user stamps over B's items; list counts per item. 0 or -ENOMEM. */
static int diff_compute(const struct wf_snap *a, const struct wf_snap *b, struct diff *ret)
{
	uint32_t *a2b = malloc(((size_t)a->nitems + 1) * sizeof(*a2b));
	uint32_t *mark20 = calloc((size_t)b->nitems + 1, sizeof(*mark20));
	uint32_t *markall = calloc((size_t)b->nitems + 1, sizeof(*markall));
	int64_t *cnt = calloc((size_t)b->nitems + a->nitems + 1, sizeof(*cnt));
	struct diff d = { .dl = malloc(((size_t)b->nitems + a->nitems + 1) * sizeof(*d.dl)),
			  .d20 = { .v = malloc(((size_t)a->nusers + 1) * sizeof(float)) },
			  .dall = { .v = malloc(((size_t)a->nusers + 1) * sizeof(float)) } };
	int r = -ENOMEM;

	if (!a2b || !mark20 || !markall || !cnt || !d.dl || !d.d20.v || !d.dall.v) {
		diff_fini(&d);
		goto out;
	}
	for (uint32_t i = 0; i < a->nitems; i++) {
		int64_t j = wf_snap_item_find(b, wf_snap_str(a, a->items[i].id_off), a->items[i].id_len);
		a2b[i] = j < 0 ? UINT32_MAX : (uint32_t)j;
		d.items_kept += j >= 0;
	}
	/* Appearances in lists: +1 per B list, -1 per A list (items B lacks
	 * counted past B's items). */
	for (uint64_t i = 0; i < b->ncands; i++)
		cnt[b->cands[i].item]++;
	for (uint64_t i = 0; i < a->ncands; i++) {
		uint32_t x = a2b[a->cands[i].item];
		cnt[x != UINT32_MAX ? x : b->nitems + a->cands[i].item]--;
	}
	for (uint32_t u = 0; u < a->nusers; u++) {
		const struct wf_snap_user *ua = &a->users[u];
		int64_t v = wf_snap_user_find(b, wf_snap_str(a, ua->id_off), ua->id_len);
		uint32_t stamp = (uint32_t)d.kept + 1, in20 = 0, inall = 0;

		if (v < 0) {
			d.lost++;
			continue;
		}
		const struct wf_snap_user *ub = &b->users[v];
		uint32_t na20 = WF_MIN(ua->cand_cnt, TOP_LIST), nb20 = WF_MIN(ub->cand_cnt, TOP_LIST);
		for (uint32_t i = 0; i < ub->cand_cnt; i++) {
			uint32_t x = b->cands[ub->cand_off + i].item;
			markall[x] = stamp;
			if (i < nb20)
				mark20[x] = stamp;
		}
		for (uint32_t i = 0; i < ua->cand_cnt; i++) {
			uint32_t x = a2b[a->cands[ua->cand_off + i].item];
			if (x == UINT32_MAX)
				continue;
			inall += markall[x] == stamp;
			in20 += i < na20 && mark20[x] == stamp;
		}
		/* Two empty lists are the same list. */
		d.d20.v[d.kept] = na20 + nb20 ? 1.0f - (float)in20 / (float)(na20 + nb20 - in20) : 0.0f;
		d.dall.v[d.kept] = ua->cand_cnt + ub->cand_cnt
					   ? 1.0f - (float)inall / (float)(ua->cand_cnt + ub->cand_cnt - inall)
					   : 0.0f;
		d.kept++;
	}
	d.gained = b->nusers - d.kept;
	d.items_gained = b->nitems - d.items_kept;
	d.items_lost = a->nitems - d.items_kept;
	d.d20.n = d.dall.n = d.kept;
	dist_finish(&d.d20);
	dist_finish(&d.dall);
	for (uint64_t i = 0; i < (uint64_t)b->nitems + a->nitems; i++)
		if (cnt[i])
			d.dl[d.ndelta++] = (struct delta){ cnt[i], i < b->nitems ? (uint32_t)i : (uint32_t)(i - b->nitems),
							   i >= b->nitems };
	qsort(d.dl, d.ndelta, sizeof(*d.dl), cmp_delta);
	*ret = d;
	r = 0;
out:
	free(a2b);
	free(mark20);
	free(markall);
	free(cnt);
	return r;
}

/* The items that rose (side 0) or fell (side 1) most, into j (JSON) or
 * on stdout. */
static void print_movers(const struct wf_cli_opts *o, struct wf_buf *j, const struct diff *d,
			 const struct wf_snap *a, const struct wf_snap *b, int side)
{
	uint32_t shown = 0;

	if (o->json)
		wf_buf_printf(j, side ? "],\"fell\":[" : ",\"rose\":[");
	else
		printf(side ? "  fell most (lists with the item, B - A)\n" : "  rose most (lists with the item, B - A)\n");
	for (uint64_t k = 0; k < d->ndelta && shown < TOP_MOVERS; k++) {
		const struct delta *x = &d->dl[side ? d->ndelta - 1 - k : k];
		const struct wf_snap *s = x->only_a ? a : b;
		if ((side == 0 && x->d <= 0) || (side == 1 && x->d >= 0))
			break;
		if (o->json) {
			wf_buf_printf(j, "%s{\"item\":", shown ? "," : "");
			json_item(j, s, x->item);
			wf_buf_printf(j, ",\"lists\":%lld%s}", (long long)x->d, x->only_a ? ",\"gone\":true" : "");
		} else {
			printf("    %+9lld  ", (long long)x->d);
			print_item(s, x->item);
			printf("%s\n", x->only_a ? "  (gone from B)" : "");
		}
		shown++;
	}
	if (!o->json && shown == 0)
		printf("    (none)\n");
}

/* The report; a, b open. Returns the exit code. */
static int diff(const struct wf_cli_opts *o, const char *pa, const char *pb, struct wf_snap *a, struct wf_snap *b)
{
	struct wf_buf j = { 0 };
	struct diff d;
	uint64_t kept;

	if (diff_compute(a, b, &d) < 0) {
		fprintf(stderr, "weftctl: out of memory\n");
		return 1;
	}
	kept = d.kept;
	if (o->json) {
		wf_buf_printf(&j, "{\"a\":{\"path\":");
		wf_cli_json_str(&j, pa, strlen(pa));
		wf_buf_printf(&j, ",\"generation\":%llu,\"users\":%u,\"items\":%u,\"candidates\":%llu},\"b\":{\"path\":",
			      (unsigned long long)a->hdr->generation, a->nusers, a->nitems, (unsigned long long)a->ncands);
		wf_cli_json_str(&j, pb, strlen(pb));
		wf_buf_printf(&j,
			      ",\"generation\":%llu,\"users\":%u,\"items\":%u,\"candidates\":%llu},"
			      "\"users\":{\"kept\":%llu,\"gained\":%llu,\"lost\":%llu},"
			      "\"items\":{\"kept\":%llu,\"gained\":%llu,\"lost\":%llu},"
			      "\"candidates\":{\"a\":%llu,\"b\":%llu,\"change\":%lld},"
			      "\"changed_top20\":{\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f},"
			      "\"changed_list\":{\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f}",
			      (unsigned long long)b->hdr->generation, b->nusers, b->nitems, (unsigned long long)b->ncands,
			      (unsigned long long)kept, (unsigned long long)d.gained, (unsigned long long)d.lost,
			      (unsigned long long)d.items_kept, (unsigned long long)d.items_gained,
			      (unsigned long long)d.items_lost, (unsigned long long)a->ncands, (unsigned long long)b->ncands,
			      (long long)b->ncands - (long long)a->ncands, d.d20.mean, (double)pct(d.d20.v, kept, 0.5),
			      (double)pct(d.d20.v, kept, 0.9), d.dall.mean, (double)pct(d.dall.v, kept, 0.5),
			      (double)pct(d.dall.v, kept, 0.9));
	} else {
		printf("snapshot diff: %s (generation %llu) -> %s (generation %llu)\n", pa,
		       (unsigned long long)a->hdr->generation, pb, (unsigned long long)b->hdr->generation);
		printf("  users       %10u -> %-10u kept %llu, gained %llu, lost %llu\n", a->nusers, b->nusers,
		       (unsigned long long)kept, (unsigned long long)d.gained, (unsigned long long)d.lost);
		printf("  items       %10u -> %-10u kept %llu, gained %llu, lost %llu\n", a->nitems, b->nitems,
		       (unsigned long long)d.items_kept, (unsigned long long)d.items_gained,
		       (unsigned long long)d.items_lost);
		printf("  candidates  %10llu -> %-10llu (%+lld)\n", (unsigned long long)a->ncands,
		       (unsigned long long)b->ncands, (long long)b->ncands - (long long)a->ncands);
		printf("  lists changed, kept users (Jaccard distance: 0 same, 1 disjoint)\n");
		printf("                  mean    p50    p90\n");
		printf("    top 20       %.3f  %.3f  %.3f\n", d.d20.mean, (double)pct(d.d20.v, kept, 0.5),
		       (double)pct(d.d20.v, kept, 0.9));
		printf("    whole list   %.3f  %.3f  %.3f\n", d.dall.mean, (double)pct(d.dall.v, kept, 0.5),
		       (double)pct(d.dall.v, kept, 0.9));
	}
	print_movers(o, &j, &d, a, b, 0);
	print_movers(o, &j, &d, a, b, 1);
	diff_fini(&d);
	if (o->json) {
		wf_buf_printf(&j, "]}\n");
		if (!j.data) {
			fprintf(stderr, "weftctl: out of memory\n");
			return 1;
		}
		fwrite(j.data, 1, j.len, stdout);
		wf_buf_fini(&j);
	}
	return 0;
}

int wf_cli_snapshot_diff(const struct wf_cli_opts *o, const char *pa, const char *pb)
{
	struct wf_snap *a, *b;
	char err[1024];
	int rc;

	if (wf_snap_open(pa, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "weftctl: %s\n", err);
		return 1;
	}
	if (wf_snap_open(pb, &b, err, sizeof(err)) < 0) {
		fprintf(stderr, "weftctl: %s\n", err);
		wf_snap_close(a);
		return 1;
	}
	rc = diff(o, pa, pb, a, b);
	wf_snap_close(a);
	wf_snap_close(b);
	return rc;
}
