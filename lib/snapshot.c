/*
 * snapshot.c - the validating snapshot reader (see snapshot.h and
 * docs/SNAPSHOT.md). Linked through libweft into weft-ranker, weft-admin,
 * weftctl, weft-eval and weft-batch.
 *
 * wf_snap_open() trusts nothing in the file: it checks the header, the
 * section table, every checksum and every index before it hands the
 * mapping out, so the lookups below can index without further checks.
 */
#include "lib/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "lib/util.h"

#define REBUILD "; rebuild it with weft-batch build"

static const char *const sec_names[] = {
	[WF_SNAP_SEC_STRS] = "STRS",	       [WF_SNAP_SEC_ITEMS] = "ITEMS",
	[WF_SNAP_SEC_ITEM_HASH] = "ITEM_HASH", [WF_SNAP_SEC_USERS] = "USERS",
	[WF_SNAP_SEC_USER_HASH] = "USER_HASH", [WF_SNAP_SEC_CANDS] = "CANDS",
	[WF_SNAP_SEC_NEIGH] = "NEIGH",	       [WF_SNAP_SEC_COMPL] = "COMPL",
	[WF_SNAP_SEC_NAMES] = "NAMES",	       [WF_SNAP_SEC_POPULAR] = "POPULAR",
	[WF_SNAP_SEC_TRENDING] = "TRENDING",   [WF_SNAP_SEC_SEQ] = "SEQ",
	[WF_SNAP_SEC_SEQ_OFF] = "SEQ_OFF",     [WF_SNAP_SEC_MODEL] = "MODEL",
};
#define SEC_LAST WF_SNAP_SEC_MODEL

const char *wf_snap_section_name(uint32_t id)
{
	return id >= 1 && id <= SEC_LAST ? sec_names[id] : "?";
}

static int fail(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* Validation state: the mapping plus where each section lies. */
struct vctx {
	struct wf_snap *s;
	const char *path;
	char *err;
	size_t errlen;
	const struct wf_snap_section *sec[SEC_LAST + 1];
};

static const void *sec_ptr(const struct vctx *v, uint32_t id)
{
	return v->s->base + v->sec[id]->off;
}

/* Section table: known ids, each once, 64-aligned, after the header, inside
 * the file, no two overlapping, whole records, checksums right. */
static int check_sections(struct vctx *v)
{
	static const uint32_t recsz[SEC_LAST + 1] = {
		[WF_SNAP_SEC_STRS] = 1,
		[WF_SNAP_SEC_ITEMS] = sizeof(struct wf_snap_item),
		[WF_SNAP_SEC_ITEM_HASH] = 4,
		[WF_SNAP_SEC_USERS] = sizeof(struct wf_snap_user),
		[WF_SNAP_SEC_USER_HASH] = 4,
		[WF_SNAP_SEC_CANDS] = sizeof(struct wf_snap_cand),
		[WF_SNAP_SEC_NEIGH] = sizeof(struct wf_snap_cand),
		[WF_SNAP_SEC_COMPL] = sizeof(struct wf_snap_cand),
		[WF_SNAP_SEC_NAMES] = sizeof(struct wf_snap_name),
		[WF_SNAP_SEC_POPULAR] = sizeof(struct wf_snap_cand),
		[WF_SNAP_SEC_TRENDING] = sizeof(struct wf_snap_cand),
		[WF_SNAP_SEC_SEQ] = sizeof(struct wf_snap_cand),
		[WF_SNAP_SEC_SEQ_OFF] = 4,
		[WF_SNAP_SEC_MODEL] = sizeof(struct wf_snap_model),
	};
	const struct wf_snap_hdr *h = v->s->hdr;
	const uint64_t first = WF_ALIGN_UP((uint64_t)sizeof(*h), 64);

	if (h->nsections > WF_SNAP_MAX_SECTIONS)
		return fail(v->err, v->errlen, -EPROTO, "snapshot %s: header lists %u sections, at most %u allowed" REBUILD,
			    v->path, h->nsections, WF_SNAP_MAX_SECTIONS);
	for (uint32_t i = 0; i < h->nsections; i++) {
		const struct wf_snap_section *x = &h->sec[i];

		if (x->id < 1 || x->id > SEC_LAST)
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: section table entry %u has unknown id %u" REBUILD,
				    v->path, i, x->id);
		if (v->sec[x->id])
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: section %s appears twice" REBUILD, v->path,
				    sec_names[x->id]);
		if (x->off % 64 || x->off < first || x->off > h->file_size || x->size > h->file_size - x->off)
			return fail(v->err, v->errlen, -EPROTO,
				    "snapshot %s: section %s at offset %llu size %llu is misaligned or outside the %llu-byte file" REBUILD,
				    v->path, sec_names[x->id], (unsigned long long)x->off, (unsigned long long)x->size,
				    (unsigned long long)h->file_size);
		if (x->size % recsz[x->id])
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: section %s size %llu is not a whole number of %u-byte records" REBUILD,
				    v->path, sec_names[x->id], (unsigned long long)x->size, recsz[x->id]);
		for (uint32_t j = 0; j < i; j++) {
			const struct wf_snap_section *y = &h->sec[j];
			if (x->off < y->off + y->size && y->off < x->off + x->size)
				return fail(v->err, v->errlen, -EPROTO, "snapshot %s: sections %s and %s overlap" REBUILD, v->path,
					    sec_names[y->id], sec_names[x->id]);
		}
		v->sec[x->id] = x;
	}
	for (uint32_t id = 1; id <= SEC_LAST; id++)
		if (!v->sec[id])
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: section %s is missing" REBUILD, v->path, sec_names[id]);
	/* Bytes outside every section (alignment padding) must be zero, so no
	 * byte of the file escapes a check. */
	for (uint64_t at = sizeof(*h); at < h->file_size;) {
		uint64_t next = h->file_size;
		bool inside = false;
		for (uint32_t id = 1; id <= SEC_LAST; id++) {
			const struct wf_snap_section *x = v->sec[id];
			if (x->size && x->off <= at && at < x->off + x->size) {
				at = x->off + x->size;
				inside = true;
				break;
			}
			if (x->size && x->off > at)
				next = WF_MIN(next, x->off);
		}
		if (inside)
			continue;
		for (uint64_t k = at; k < next; k++)
			if (v->s->base[k])
				return fail(v->err, v->errlen, -EBADMSG, "snapshot %s: byte %llu lies outside every section and is not zero (file corrupt?)" REBUILD,
					    v->path, (unsigned long long)k);
		at = next;
	}
	for (uint32_t id = 1; id <= SEC_LAST; id++) {
		uint64_t x = XXH3_64bits(sec_ptr(v, id), v->sec[id]->size);
		if (x != v->sec[id]->xxh3)
			return fail(v->err, v->errlen, -EBADMSG,
				    "snapshot %s: section %s checksum mismatch (file corrupt?): %016llx, header says %016llx" REBUILD,
				    v->path, sec_names[id], (unsigned long long)x, (unsigned long long)v->sec[id]->xxh3);
	}
	return 0;
}

/* A list of (item, score): items < nitems, scores finite, sorted descending. */
static int check_list(struct vctx *v, const char *what, uint64_t idx, const struct wf_snap_cand *c, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		if (c[i].item >= v->s->nitems)
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: %s %llu entry %llu names item %u of %u" REBUILD,
				    v->path, what, (unsigned long long)idx, (unsigned long long)i, c[i].item, v->s->nitems);
		if (!isfinite(c[i].score) || (i > 0 && c[i].score > c[i - 1].score))
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: %s %llu entry %llu has a score that is not finite or out of order" REBUILD,
				    v->path, what, (unsigned long long)idx, (unsigned long long)i);
	}
	return 0;
}

static int check_str(struct vctx *v, const char *what, uint64_t idx, uint32_t off, uint32_t len)
{
	if ((uint64_t)off + len > v->s->strs_len)
		return fail(v->err, v->errlen, -EPROTO, "snapshot %s: %s %llu string at %u+%u lies outside STRS (%llu bytes)" REBUILD,
			    v->path, what, (unsigned long long)idx, off, len, (unsigned long long)v->s->strs_len);
	return 0;
}

/* Hash table: power-of-two size with an empty slot, values <= count, exactly
 * count filled slots, and every id found at its own index. */
static int check_hash(struct vctx *v, const char *what, const uint32_t *t, uint64_t bytes, uint32_t count,
		      int64_t (*find)(const struct wf_snap *, const char *, size_t), const void *recs, size_t stride)
{
	uint64_t slots = bytes / 4, filled = 0;

	if (slots == 0 || (slots & (slots - 1)) || slots > (1ull << 32) || slots <= count)
		return fail(v->err, v->errlen, -EPROTO, "snapshot %s: %s hash has %llu slots for %u entries (needs a power of two above the count)" REBUILD,
			    v->path, what, (unsigned long long)slots, count);
	for (uint64_t i = 0; i < slots; i++) {
		if (t[i] > count)
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: %s hash slot %llu holds %u, beyond %u entries" REBUILD,
				    v->path, what, (unsigned long long)i, t[i], count);
		filled += t[i] != 0;
	}
	if (filled != count)
		return fail(v->err, v->errlen, -EPROTO, "snapshot %s: %s hash holds %llu entries, expected %u" REBUILD, v->path,
			    what, (unsigned long long)filled, count);
	for (uint32_t i = 0; i < count; i++) {
		const uint32_t *rec = (const uint32_t *)((const char *)recs + (size_t)i * stride);
		if (find(v->s, v->s->strs + rec[0], rec[1]) != (int64_t)i)
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: %s %u is not found through the hash (duplicate id or bad table)" REBUILD,
				    v->path, what, i);
	}
	return 0;
}

/* The model: finite numbers, repeat probabilities in [0, 1], counts in
 * range, padding zero. */
static int check_model(struct vctx *v, const struct wf_snap_model *m)
{
	bool ok = m->nfeat <= WF_SNAP_MODEL_FEATS && m->pad == 0;

	for (uint32_t r = 0; r < WF_SNAP_MODEL_REPEAT; r++)
		ok &= m->repeat[r] >= 0 && m->repeat[r] <= 1;
	for (uint32_t t = 0; t < 2; t++) {
		for (uint32_t f = 0; f < WF_SNAP_MODEL_FEATS; f++)
			ok &= isfinite(m->weight[t][f]) != 0;
		ok &= isfinite(m->logloss[t]) && isfinite(m->hr_fit[t]) && isfinite(m->hr_default[t]);
	}
	if (!ok)
		return fail(v->err, v->errlen, -EPROTO, "snapshot %s: MODEL has a count out of range or a weight that is not finite" REBUILD,
			    v->path);
	return 0;
}

static int check_contents(struct vctx *v)
{
	struct wf_snap *s = v->s;
	const struct wf_snap_hdr *h = s->hdr;
	int r;

	s->strs = sec_ptr(v, WF_SNAP_SEC_STRS);
	s->strs_len = v->sec[WF_SNAP_SEC_STRS]->size;
	s->items = sec_ptr(v, WF_SNAP_SEC_ITEMS);
	s->nitems = h->nitems;
	s->item_hash = sec_ptr(v, WF_SNAP_SEC_ITEM_HASH);
	s->item_hash_mask = (uint32_t)(v->sec[WF_SNAP_SEC_ITEM_HASH]->size / 4 - 1);
	s->users = sec_ptr(v, WF_SNAP_SEC_USERS);
	s->nusers = h->nusers;
	s->user_hash = sec_ptr(v, WF_SNAP_SEC_USER_HASH);
	s->user_hash_mask = (uint32_t)(v->sec[WF_SNAP_SEC_USER_HASH]->size / 4 - 1);
	s->cands = sec_ptr(v, WF_SNAP_SEC_CANDS);
	s->ncands = v->sec[WF_SNAP_SEC_CANDS]->size / sizeof(struct wf_snap_cand);
	s->neigh = sec_ptr(v, WF_SNAP_SEC_NEIGH);
	s->nneigh = v->sec[WF_SNAP_SEC_NEIGH]->size / sizeof(struct wf_snap_cand);
	s->compl = sec_ptr(v, WF_SNAP_SEC_COMPL);
	s->ncompl = v->sec[WF_SNAP_SEC_COMPL]->size / sizeof(struct wf_snap_cand);
	s->names = sec_ptr(v, WF_SNAP_SEC_NAMES);
	s->ncats = h->ncats;
	s->nbrands = h->nbrands;
	s->popular = sec_ptr(v, WF_SNAP_SEC_POPULAR);
	s->npopular = (uint32_t)(v->sec[WF_SNAP_SEC_POPULAR]->size / sizeof(struct wf_snap_cand));
	s->trending = sec_ptr(v, WF_SNAP_SEC_TRENDING);
	s->ntrending = (uint32_t)(v->sec[WF_SNAP_SEC_TRENDING]->size / sizeof(struct wf_snap_cand));
	s->seq = sec_ptr(v, WF_SNAP_SEC_SEQ);
	s->nseq = v->sec[WF_SNAP_SEC_SEQ]->size / sizeof(struct wf_snap_cand);
	s->seq_off = sec_ptr(v, WF_SNAP_SEC_SEQ_OFF);
	s->model = sec_ptr(v, WF_SNAP_SEC_MODEL);

	if (v->sec[WF_SNAP_SEC_ITEMS]->size != (uint64_t)h->nitems * sizeof(struct wf_snap_item) ||
	    v->sec[WF_SNAP_SEC_USERS]->size != (uint64_t)h->nusers * sizeof(struct wf_snap_user) ||
	    v->sec[WF_SNAP_SEC_NAMES]->size != ((uint64_t)h->ncats + h->nbrands) * sizeof(struct wf_snap_name) ||
	    v->sec[WF_SNAP_SEC_SEQ_OFF]->size != ((uint64_t)h->nitems + 1) * 4 ||
	    v->sec[WF_SNAP_SEC_MODEL]->size != sizeof(struct wf_snap_model))
		return fail(v->err, v->errlen, -EPROTO, "snapshot %s: ITEMS, USERS, NAMES, SEQ_OFF or MODEL size disagrees with the header counts (%u items, %u users, %u+%u names)" REBUILD,
			    v->path, h->nitems, h->nusers, h->ncats, h->nbrands);
	if ((r = check_model(v, s->model)) < 0)
		return r;

	for (uint32_t i = 0; i < s->ncats + s->nbrands; i++)
		if ((r = check_str(v, "name", i, s->names[i].off, s->names[i].len)) < 0)
			return r;
	for (uint32_t i = 0; i < s->nitems; i++) {
		const struct wf_snap_item *it = &s->items[i];

		if ((r = check_str(v, "item", i, it->id_off, it->id_len)) < 0)
			return r;
		if ((it->category != WF_SNAP_NO_CAT && it->category >= s->ncats) ||
		    (it->brand != WF_SNAP_NO_CAT && it->brand >= s->nbrands) ||
		    (it->price_band > 4 && it->price_band != 255) || !isfinite(it->popularity) || !isfinite(it->trend))
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: item %u has a bad category, brand, price band or score" REBUILD,
				    v->path, i);
		if ((uint64_t)it->neigh_off + it->neigh_cnt > s->nneigh || (uint64_t)it->compl_off + it->compl_cnt > s->ncompl)
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: item %u neighbour or complement range lies outside NEIGH/COMPL" REBUILD,
				    v->path, i);
		if (s->seq_off[i] > s->seq_off[i + 1] || s->seq_off[i + 1] > s->nseq)
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: item %u transition range lies outside SEQ" REBUILD,
				    v->path, i);
		if ((r = check_list(v, "item transitions of", i, s->seq + s->seq_off[i], s->seq_off[i + 1] - s->seq_off[i])) < 0 ||
		    (r = check_list(v, "item neighbours of", i, s->neigh + it->neigh_off, it->neigh_cnt)) < 0 ||
		    (r = check_list(v, "item complements of", i, s->compl + it->compl_off, it->compl_cnt)) < 0)
			return r;
	}
	for (uint32_t i = 0; i < s->nusers; i++) {
		const struct wf_snap_user *u = &s->users[i];

		if ((r = check_str(v, "user", i, u->id_off, u->id_len)) < 0)
			return r;
		if (u->cand_off > s->ncands || u->cand_cnt > s->ncands - u->cand_off)
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: user %u candidate range %llu+%u lies outside CANDS (%llu entries)" REBUILD,
				    v->path, i, (unsigned long long)u->cand_off, u->cand_cnt, (unsigned long long)s->ncands);
		if (u->segment >= WF_SEG_COUNT || u->r > 5 || u->f > 5 || u->m > 5 || !isfinite(u->ltv))
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: user %u has a bad segment, RFM or LTV" REBUILD, v->path, i);
		if ((r = check_list(v, "candidates of user", i, s->cands + u->cand_off, u->cand_cnt)) < 0)
			return r;
	}
	/* Entries that no range covers are still checked: a reader may walk the
	 * whole section. */
	for (uint64_t i = 0; i < s->ncands; i++)
		if (s->cands[i].item >= s->nitems || !isfinite(s->cands[i].score))
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: CANDS entry %llu names item %u of %u" REBUILD,
				    v->path, (unsigned long long)i, s->cands[i].item, s->nitems);
	for (uint64_t i = 0; i < s->nneigh; i++)
		if (s->neigh[i].item >= s->nitems || !isfinite(s->neigh[i].score))
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: NEIGH entry %llu names item %u of %u" REBUILD,
				    v->path, (unsigned long long)i, s->neigh[i].item, s->nitems);
	for (uint64_t i = 0; i < s->nseq; i++)
		if (s->seq[i].item >= s->nitems || !isfinite(s->seq[i].score))
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: SEQ entry %llu names item %u of %u" REBUILD,
				    v->path, (unsigned long long)i, s->seq[i].item, s->nitems);
	for (uint64_t i = 0; i < s->ncompl; i++)
		if (s->compl[i].item >= s->nitems || !isfinite(s->compl[i].score))
			return fail(v->err, v->errlen, -EPROTO, "snapshot %s: COMPL entry %llu names item %u of %u" REBUILD,
				    v->path, (unsigned long long)i, s->compl[i].item, s->nitems);
	if ((r = check_list(v, "POPULAR list", 0, s->popular, s->npopular)) < 0 ||
	    (r = check_list(v, "TRENDING list", 0, s->trending, s->ntrending)) < 0)
		return r;
	if ((r = check_hash(v, "item", s->item_hash, v->sec[WF_SNAP_SEC_ITEM_HASH]->size, s->nitems, wf_snap_item_find,
			    s->items, sizeof(*s->items))) < 0 ||
	    (r = check_hash(v, "user", s->user_hash, v->sec[WF_SNAP_SEC_USER_HASH]->size, s->nusers, wf_snap_user_find,
			    s->users, sizeof(*s->users))) < 0)
		return r;
	return 0;
}

static int check_header(struct vctx *v, uint64_t size)
{
	const struct wf_snap_hdr *h = v->s->hdr;
	struct wf_snap_hdr copy;

	if (size < sizeof(h->magic) || h->magic != WF_SNAP_MAGIC)
		return fail(v->err, v->errlen, -EPROTO, "%s is not a weft snapshot (bad magic)%s", v->path,
			    "; point at a file written by weft-batch build");
	if (size >= offsetof(struct wf_snap_hdr, header_size) && h->format_version != WF_SNAP_FORMAT_VERSION)
		return fail(v->err, v->errlen, -EPROTONOSUPPORT,
			    "snapshot %s has format version %u, this weft reads version %u" REBUILD " from this release",
			    v->path, h->format_version, WF_SNAP_FORMAT_VERSION);
	if (size < sizeof(*h))
		return fail(v->err, v->errlen, -EPROTO, "snapshot %s is truncated: %llu bytes, shorter than its %zu-byte header" REBUILD,
			    v->path, (unsigned long long)size, sizeof(*h));
	if (h->header_size != sizeof(*h))
		return fail(v->err, v->errlen, -EPROTO, "snapshot %s: header size %u, expected %zu" REBUILD, v->path,
			    h->header_size, sizeof(*h));
	memcpy(&copy, h, sizeof(copy));
	copy.header_xxh3 = 0;
	if (XXH3_64bits(&copy, sizeof(copy)) != h->header_xxh3)
		return fail(v->err, v->errlen, -EBADMSG, "snapshot %s: header checksum mismatch (file corrupt?)" REBUILD, v->path);
	if (size < h->file_size)
		return fail(v->err, v->errlen, -EPROTO, "snapshot %s is truncated: %llu of %llu bytes" REBUILD, v->path,
			    (unsigned long long)size, (unsigned long long)h->file_size);
	if (size > h->file_size)
		return fail(v->err, v->errlen, -EPROTO, "snapshot %s has %llu bytes, its header says %llu (appended to?)" REBUILD,
			    v->path, (unsigned long long)size, (unsigned long long)h->file_size);
	return 0;
}

/* s->prior_groups and s->prior_order from s->prior_rows: a counting sort
 * by category (none: ncats, as the rows have it), stable, and each
 * category's bounds (left NULL when memory is short: lib/rank scans every
 * entry then). trend / (1 + trend) is computed as lib/rank computes the
 * feature (lanes.h item_parts4()), so the bounds hold its floats. */
static void make_prior_groups(struct wf_snap *s)
{
	uint32_t n = s->npopular + s->ntrending, ng = 0, *order, *start;
	struct wf_snap_prior_group *g;

	if (!n)
		return;
	start = calloc((size_t)s->ncats + 2, sizeof(*start));
	order = malloc((size_t)n * sizeof(*order));
	g = malloc(((size_t)s->ncats + 1) * sizeof(*g));
	if (!start || !order || !g) {
		free(start);
		free(order);
		free(g);
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		start[s->prior_rows[i].category + 1]++;
	for (uint32_t c = 0; c <= s->ncats; c++)
		start[c + 1] += start[c];
	for (uint32_t c = 0; c <= s->ncats; c++) {
		if (start[c + 1] == start[c])
			continue;
		g[ng++] = (struct wf_snap_prior_group){ .category = c, .first = start[c], .n = start[c + 1] - start[c],
							.pop_lo = INFINITY, .pop_hi = -INFINITY,
							.tr_lo = INFINITY, .tr_hi = -INFINITY };
	}
	for (uint32_t i = 0; i < n; i++) { /* (start[] becomes each group's fill position) */
		const struct wf_snap_row *r = &s->prior_rows[i];
		order[start[r->category]++] = i;
	}
	for (uint32_t gi = 0; gi < ng; gi++) {
		struct wf_snap_prior_group *x = &g[gi];
		int nan = 0;
		for (uint32_t j = x->first; j < x->first + x->n; j++) {
			const struct wf_snap_row *r = &s->prior_rows[order[j]];
			float tr = r->trend / (1.0f + r->trend);
			nan |= r->popularity != r->popularity || tr != tr;
			x->pop_lo = fminf(x->pop_lo, r->popularity);
			x->pop_hi = fmaxf(x->pop_hi, r->popularity);
			x->tr_lo = fminf(x->tr_lo, tr);
			x->tr_hi = fmaxf(x->tr_hi, tr);
		}
		if (nan)
			x->pop_lo = x->pop_hi = x->tr_lo = x->tr_hi = NAN;
	}
	free(start);
	s->prior_groups = g;
	s->nprior_groups = ng;
	s->prior_order = order;
}

void wf_snap_derive(struct wf_snap *s)
{
	struct wf_snap_row *r;

	if (s->nitems == 0 || s->nbrands >= (1u << 29))
		return;
	r = malloc((size_t)s->nitems * sizeof(*r));
	if (!r)
		return;
	for (uint32_t i = 0; i < s->nitems; i++) {
		const struct wf_snap_item *it = &s->items[i];
		uint32_t brand = it->brand < s->nbrands ? it->brand : s->nbrands;
		uint32_t band = it->price_band < WF_SNAP_ROW_BANDS ? it->price_band : WF_SNAP_ROW_BANDS;
		r[i] = (struct wf_snap_row){
			.popularity = it->popularity, .trend = it->trend,
			.category = it->category < s->ncats ? it->category : s->ncats,
			.brand_band = brand << 3 | band,
		};
	}
	s->rows = r;
	r = malloc(((size_t)s->npopular + s->ntrending + 1) * sizeof(*r));
	if (!r) {
		free((void *)s->rows);
		s->rows = NULL;
		return;
	}
	for (uint32_t i = 0; i < s->npopular; i++)
		r[i] = s->rows[s->popular[i].item];
	for (uint32_t i = 0; i < s->ntrending; i++)
		r[s->npopular + i] = s->rows[s->trending[i].item];
	s->prior_rows = r;
	make_prior_groups(s);
}

int wf_snap_open(const char *path, struct wf_snap **ret, char *err, size_t errlen)
{
	struct vctx v = { .path = path, .err = err, .errlen = errlen };
	struct wf_snap *s;
	struct stat st;
	void *map;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return fail(err, errlen, r, "cannot open snapshot %s: %s", path, strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return fail(err, errlen, r, "cannot stat snapshot %s: %s", path, strerror(-r));
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		close(fd);
		return fail(err, errlen, -EPROTO, "snapshot %s is %s" REBUILD, path,
			    S_ISREG(st.st_mode) ? "empty" : "not a regular file");
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	r = -errno;
	close(fd);
	if (map == MAP_FAILED)
		return fail(err, errlen, r, "cannot map snapshot %s: %s", path, strerror(-r));
	s = calloc(1, sizeof(*s));
	if (!s) {
		munmap(map, (size_t)st.st_size);
		return fail(err, errlen, -ENOMEM, "out of memory opening snapshot %s", path);
	}
	s->base = map;
	s->size = (uint64_t)st.st_size;
	s->hdr = map;
	snprintf(s->path, sizeof(s->path), "%s", path);
	v.s = s;
	/* The whole file is read once front to back for the checksums, then the
	 * rankers touch it at random. */
	(void)madvise(map, s->size, MADV_SEQUENTIAL);
	/* Short files are checked field by field against their size before
	 * anything past the end is read. */
	if (s->size < sizeof(struct wf_snap_hdr)) {
		struct wf_snap_hdr tmp = { 0 };
		memcpy(&tmp, map, s->size);
		s->hdr = &tmp;
		r = check_header(&v, s->size);
		s->hdr = map;
		if (r == 0)
			r = -EPROTO;
		goto bad;
	}
	if ((r = check_header(&v, s->size)) < 0 || (r = check_sections(&v)) < 0 || (r = check_contents(&v)) < 0)
		goto bad;
	(void)madvise(map, s->size, MADV_RANDOM);
	wf_snap_derive(s);
	*ret = s;
	return 0;
bad:
	wf_snap_close(s);
	return r;
}

void wf_snap_underive(struct wf_snap *s)
{
	free((void *)s->rows);
	free((void *)s->prior_rows);
	free((void *)s->prior_groups);
	free((void *)s->prior_order);
	s->rows = s->prior_rows = NULL;
	s->prior_groups = NULL;
	s->prior_order = NULL;
	s->nprior_groups = 0;
}

void wf_snap_close(struct wf_snap *s)
{
	if (!s)
		return;
	wf_snap_underive(s);
	if (s->base)
		munmap((void *)s->base, s->size);
	free(s);
}

static int64_t find(const uint32_t *t, uint32_t mask, const void *recs, size_t stride, const char *strs,
		    const char *id, size_t len)
{
	uint32_t slot = (uint32_t)wf_hash64(id, len) & mask;

	for (uint64_t n = 0; n <= mask; n++, slot = (slot + 1) & mask) {
		uint32_t v = t[slot];
		const uint32_t *rec;

		if (v == 0)
			return -1;
		rec = (const uint32_t *)((const char *)recs + (size_t)(v - 1) * stride);
		if (rec[1] == len && memcmp(strs + rec[0], id, len) == 0)
			return (int64_t)v - 1;
	}
	return -1;
}

int64_t wf_snap_item_find(const struct wf_snap *s, const char *id, size_t len)
{
	return find(s->item_hash, s->item_hash_mask, s->items, sizeof(*s->items), s->strs, id, len);
}

int64_t wf_snap_user_find(const struct wf_snap *s, const char *id, size_t len)
{
	return find(s->user_hash, s->user_hash_mask, s->users, sizeof(*s->users), s->strs, id, len);
}

const char *wf_snap_cat_name(const struct wf_snap *s, uint32_t cat, uint32_t *ret_len)
{
	if (cat >= s->ncats) {
		*ret_len = 0;
		return "";
	}
	*ret_len = s->names[cat].len;
	return s->strs + s->names[cat].off;
}

const char *wf_snap_brand_name(const struct wf_snap *s, uint32_t brand, uint32_t *ret_len)
{
	if (brand >= s->nbrands) {
		*ret_len = 0;
		return "";
	}
	*ret_len = s->names[s->ncats + brand].len;
	return s->strs + s->names[s->ncats + brand].off;
}
