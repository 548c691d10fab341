/*
 * weftctl_diff.c - `weftctl snapshot diff A B [--json]`: what changed
 * between two nights, so a bad night is caught before it serves: users
 * gained, lost and kept; for kept users how much of their list changed
 * (Jaccard distance of the top 20 and of the whole list: mean, p50, p90);
 * the items that rose and fell most in how many lists they appear in.
 * Reads both files with the validating reader. Linked into weftctl.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/weftctl_int.h"
#include "lib/snapshot.h"

struct delta {
	int64_t d;
	uint32_t b_item; /* index in B, or UINT32_MAX: only in A (then a_item) */
	uint32_t a_item;
};

static int cmp_f(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

static int cmp_delta(const void *a, const void *b)
{
	int64_t x = ((const struct delta *)a)->d, y = ((const struct delta *)b)->d;
	return x < y ? 1 : x > y ? -1 : 0; /* descending */
}

/* Jaccard distance of two item-index sets (B's indexes; lists are short). */
static float jaccard_dist(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb)
{
	uint32_t inter = 0;

	if (!na && !nb)
		return 0;
	for (uint32_t i = 0; i < na; i++)
		for (uint32_t j = 0; j < nb; j++)
			if (a[i] == b[j]) {
				inter++;
				break;
			}
	return 1.0f - (float)inter / (float)(na + nb - inter);
}

static float pct(const float *v, uint64_t n, double q)
{
	return n ? v[(uint64_t)(q * (double)(n - 1))] : 0.0f;
}

static const char *item_name(const struct wf_snap *s, uint32_t i, uint32_t *len)
{
	*len = s->items[i].id_len;
	return wf_snap_str(s, s->items[i].id_off);
}

int wf_cli_snapshot_diff(const struct wf_cli_opts *o, const char *pa, const char *pb)
{
	struct wf_snap *a, *b;
	char err[512];
	uint32_t *a2b, la[20], lb[20], *fa = NULL, *fb = NULL;
	int64_t *cnt;
	float *d20, *dall;
	uint64_t kept = 0, lost = 0, gained, ndelta = 0;
	struct delta *dl;

	if (wf_snap_open(pa, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "weftctl: %s\n", err);
		return 1;
	}
	if (wf_snap_open(pb, &b, err, sizeof(err)) < 0) {
		fprintf(stderr, "weftctl: %s\n", err);
		wf_snap_close(a);
		return 1;
	}
	a2b = malloc(a->nitems * sizeof(*a2b) + 1);
	cnt = calloc((size_t)b->nitems + a->nitems + 1, sizeof(*cnt));
	d20 = malloc(((size_t)a->nusers + 1) * sizeof(*d20));
	dall = malloc(((size_t)a->nusers + 1) * sizeof(*dall));
	dl = malloc(((size_t)b->nitems + a->nitems + 1) * sizeof(*dl));
	if (!a2b || !cnt || !d20 || !dall || !dl) {
		fprintf(stderr, "weftctl: out of memory\n");
		return 1;
	}
	for (uint32_t i = 0; i < a->nitems; i++) {
		uint32_t l;
		const char *id = item_name(a, i, &l);
		int64_t j = wf_snap_item_find(b, id, l);
		a2b[i] = j < 0 ? UINT32_MAX - i : (uint32_t)j; /* unmatched: distinct, never equal to a B index */
	}
	/* Appearances in lists: +1 per B list, -1 per A list (by B index, or
	 * past nitems of B for items B lacks). */
	for (uint64_t i = 0; i < b->ncands; i++)
		cnt[b->cands[i].item]++;
	for (uint64_t i = 0; i < a->ncands; i++) {
		uint32_t x = a2b[a->cands[i].item];
		cnt[x < b->nitems ? x : b->nitems + a->cands[i].item]--;
	}
	for (uint32_t u = 0; u < a->nusers; u++) {
		const struct wf_snap_user *ua = &a->users[u];
		int64_t v = wf_snap_user_find(b, wf_snap_str(a, ua->id_off), ua->id_len);
		if (v < 0) {
			lost++;
			continue;
		}
		const struct wf_snap_user *ub = &b->users[v];
		uint32_t na = WF_MIN(ua->cand_cnt, 20u), nb = WF_MIN(ub->cand_cnt, 20u);
		for (uint32_t i = 0; i < na; i++)
			la[i] = a2b[a->cands[ua->cand_off + i].item];
		for (uint32_t i = 0; i < nb; i++)
			lb[i] = b->cands[ub->cand_off + i].item;
		d20[kept] = jaccard_dist(la, na, lb, nb);
		fa = realloc(fa, (ua->cand_cnt + 1) * sizeof(*fa));
		fb = realloc(fb, (ub->cand_cnt + 1) * sizeof(*fb));
		for (uint32_t i = 0; i < ua->cand_cnt; i++)
			fa[i] = a2b[a->cands[ua->cand_off + i].item];
		for (uint32_t i = 0; i < ub->cand_cnt; i++)
			fb[i] = b->cands[ub->cand_off + i].item;
		dall[kept] = jaccard_dist(fa, ua->cand_cnt, fb, ub->cand_cnt);
		kept++;
	}
	gained = b->nusers - kept;
	qsort(d20, kept, sizeof(*d20), cmp_f);
	qsort(dall, kept, sizeof(*dall), cmp_f);
	double m20 = 0, mall = 0;
	for (uint64_t i = 0; i < kept; i++) {
		m20 += d20[i];
		mall += dall[i];
	}
	m20 = kept ? m20 / (double)kept : 0;
	mall = kept ? mall / (double)kept : 0;
	for (uint32_t i = 0; i < b->nitems + a->nitems; i++)
		if (cnt[i])
			dl[ndelta++] = (struct delta){ cnt[i], i < b->nitems ? i : UINT32_MAX, i < b->nitems ? 0 : i - b->nitems };
	qsort(dl, ndelta, sizeof(*dl), cmp_delta);

	if (o->json) {
		printf("{\"a\":{\"path\":\"%s\",\"generation\":%llu,\"users\":%u,\"items\":%u,\"candidates\":%llu},"
		       "\"b\":{\"path\":\"%s\",\"generation\":%llu,\"users\":%u,\"items\":%u,\"candidates\":%llu},"
		       "\"users\":{\"kept\":%llu,\"gained\":%llu,\"lost\":%llu},"
		       "\"changed_top20\":{\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f},"
		       "\"changed_list\":{\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f},\"rose\":[",
		       pa, (unsigned long long)a->hdr->generation, a->nusers, a->nitems, (unsigned long long)a->ncands, pb,
		       (unsigned long long)b->hdr->generation, b->nusers, b->nitems, (unsigned long long)b->ncands,
		       (unsigned long long)kept, (unsigned long long)gained, (unsigned long long)lost, m20,
		       pct(d20, kept, 0.5), pct(d20, kept, 0.9), mall, pct(dall, kept, 0.5), pct(dall, kept, 0.9));
	} else {
		printf("snapshot diff: %s (gen %llu) -> %s (gen %llu)\n", pa, (unsigned long long)a->hdr->generation, pb,
		       (unsigned long long)b->hdr->generation);
		printf("  users        %u -> %u: kept %llu, gained %llu, lost %llu\n", a->nusers, b->nusers,
		       (unsigned long long)kept, (unsigned long long)gained, (unsigned long long)lost);
		printf("  items        %u -> %u;  candidates %llu -> %llu\n", a->nitems, b->nitems,
		       (unsigned long long)a->ncands, (unsigned long long)b->ncands);
		printf("  top-20 changed (Jaccard distance, kept users): mean %.3f  p50 %.3f  p90 %.3f\n", m20,
		       pct(d20, kept, 0.5), pct(d20, kept, 0.9));
		printf("  whole list changed:                           mean %.3f  p50 %.3f  p90 %.3f\n", mall,
		       pct(dall, kept, 0.5), pct(dall, kept, 0.9));
		printf("  rose (in more lists):");
	}
	for (int side = 0; side < 2; side++) {
		int shown = 0;
		for (uint64_t k = 0; k < ndelta && shown < 10; k++) {
			const struct delta *x = &dl[side ? ndelta - 1 - k : k];
			uint32_t l;
			const char *id;
			if ((side == 0 && x->d <= 0) || (side == 1 && x->d >= 0))
				break;
			id = x->b_item != UINT32_MAX ? item_name(b, x->b_item, &l) : item_name(a, x->a_item, &l);
			if (o->json)
				printf("%s{\"item\":\"%.*s\",\"lists\":%lld}", shown ? "," : "", (int)l, id, (long long)x->d);
			else
				printf(" %.*s %+lld", (int)l, id, (long long)x->d);
			shown++;
		}
		if (o->json)
			printf(side ? "]}\n" : "],\"fell\":[");
		else
			printf(side ? "\n" : "\n  fell (in fewer lists):");
	}
	free(a2b);
	free(cnt);
	free(d20);
	free(dall);
	free(dl);
	free(fa);
	free(fb);
	wf_snap_close(a);
	wf_snap_close(b);
	return 0;
}
