/*
 * load.c - weft-batch input: the catalog, inventory and events CSVs
 * (DESIGN.md "Files") read through lib/csv.h into the build context, ids
 * interned once, malformed rows reported with file:line and skipped, and
 * the source digest (XXH3 over every input file's bytes). Linked only into
 * weft-batch.
 */
#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "batch/batch.h"
#include "lib/csv.h"


/* ---- interning ---- */

int wf_intern_init(struct wf_intern *t, struct wf_buf *arena)
{
	*t = (struct wf_intern){ .arena = arena };
	t->slots = calloc(1024, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->mask = 1023;
	return 0;
}

void wf_intern_fini(struct wf_intern *t)
{
	free(t->slots);
	free(t->off);
	free(t->len);
	*t = (struct wf_intern){ 0 };
}

static uint32_t probe(const struct wf_intern *t, const char *s, uint32_t len, uint32_t *ret_slot)
{
	uint32_t slot = (uint32_t)wf_hash64(s, len) & t->mask;

	for (;;) {
		uint32_t v = t->slots[slot];
		if (v == 0 || (t->len[v - 1] == len && memcmp(t->arena->data + t->off[v - 1], s, len) == 0)) {
			*ret_slot = slot;
			return v;
		}
		slot = (slot + 1) & t->mask;
	}
}

static int grow(struct wf_intern *t)
{
	uint64_t nslots = ((uint64_t)t->mask + 1) * 2;
	uint32_t *slots;

	if (nslots > (1ull << 32))
		return -E2BIG;
	slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	free(t->slots);
	t->slots = slots;
	t->mask = (uint32_t)(nslots - 1);
	for (uint32_t i = 0; i < t->n; i++) {
		uint32_t slot;
		probe(t, t->arena->data + t->off[i], t->len[i], &slot);
		t->slots[slot] = i + 1;
	}
	return 0;
}

int wf_intern_get(struct wf_intern *t, const char *s, uint32_t len, uint32_t *ret, bool *ret_new)
{
	uint32_t slot, v;
	int r;

	v = probe(t, s, len, &slot);
	if (v) {
		*ret = v - 1;
		if (ret_new)
			*ret_new = false;
		return 0;
	}
	if (t->n >= 0xfffffff0u)
		return -E2BIG;
	if ((uint64_t)(t->n + 1) * 2 > (uint64_t)t->mask + 1) {
		if ((r = grow(t)) < 0)
			return r;
		probe(t, s, len, &slot);
	}
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 1024;
		uint64_t *off = realloc(t->off, (size_t)cap * sizeof(*off));
		if (!off)
			return -ENOMEM;
		t->off = off;
		uint32_t *ln = realloc(t->len, (size_t)cap * sizeof(*ln));
		if (!ln)
			return -ENOMEM;
		t->len = ln;
		t->cap = cap;
	}
	t->off[t->n] = t->arena->len;
	t->len[t->n] = len;
	if ((r = wf_buf_append(t->arena, s, len)) < 0)
		return r;
	t->slots[slot] = ++t->n;
	*ret = t->n - 1;
	if (ret_new)
		*ret_new = true;
	return 0;
}

int64_t wf_intern_find(const struct wf_intern *t, const char *s, uint32_t len)
{
	uint32_t slot, v = probe(t, s, len, &slot);

	return v ? (int64_t)v - 1 : -1;
}

/* ---- per-entity arrays that follow the intern tables ---- */

/* Grow *arr (elements of size elem, capacity *cap) to hold index i. 0 or -ENOMEM. */
static int grow_for(void **arr, uint32_t *cap, uint32_t i, size_t elem)
{
	uint32_t ncap = *cap ? *cap * 2 : 4096;
	void *p;

	if (i < *cap)
		return 0;
	while (ncap <= i)
		ncap *= 2;
	if (!(p = realloc(*arr, (size_t)ncap * elem)))
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* Intern an item id and make sure its model record exists. */
int wf_batch_item_get(struct wf_batch *b, const char *id, uint32_t len, uint32_t *ret)
{
	bool isnew;
	int r = wf_intern_get(&b->items, id, len, ret, &isnew);

	if (r < 0 || (r = grow_for((void **)&b->item, &b->item_cap, *ret, sizeof(*b->item))) < 0)
		return r;
	if (isnew)
		b->item[*ret] = (struct wf_batch_item){ .category = WF_SNAP_NO_CAT, .brand = WF_SNAP_NO_CAT,
							.price_band = 255 };
	return 0;
}

/* Intern a user id and make sure its model record exists. */
int wf_batch_user_get(struct wf_batch *b, const char *id, uint32_t len, uint32_t *ret)
{
	bool isnew;
	int r = wf_intern_get(&b->users, id, len, ret, &isnew);

	if (r < 0 || (r = grow_for((void **)&b->user, &b->user_cap, *ret, sizeof(*b->user))) < 0)
		return r;
	if (isnew)
		b->user[*ret] = (struct wf_batch_user){ .first_ms = INT64_MAX, .last_ms = INT64_MIN,
							.last_buy_ms = INT64_MIN };
	return 0;
}

/* ---- CSV helpers ---- */

/* Map header names to column numbers; -1 if absent. */
void wf_batch_map_header(const struct wf_csv *c, const char *const *names, uint32_t n, struct wf_batch_cols *ret)
{
	for (uint32_t k = 0; k < n; k++) {
		ret->idx[k] = -1;
		for (uint32_t i = 0; i < c->nfields; i++) {
			const struct wf_csv_field *f = &c->field[i];
			uint32_t len = f->len;
			const char *p = f->p;
			/* Tolerate a UTF-8 byte order mark on the first name. */
			if (i == 0 && len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
				p += 3;
				len -= 3;
			}
			if (len == strlen(names[k]) && memcmp(p, names[k], len) == 0) {
				ret->idx[k] = (int)i;
				break;
			}
		}
	}
}

const struct wf_csv_field *wf_batch_col(const struct wf_csv *c, const struct wf_batch_cols *m, int k)
{
	static const struct wf_csv_field empty = { "", 0 };
	int i = m->idx[k];

	return i >= 0 && (uint32_t)i < c->nfields ? &c->field[i] : &empty;
}

static void bad_row(struct wf_batch *b, const char *path, uint64_t line, uint64_t *count, const char *why)
{
	if (++*count <= WF_BATCH_MAX_REPORTED)
		wf_warn("%s:%llu: %s; row skipped", path, (unsigned long long)line, why);
	else if (*count == WF_BATCH_MAX_REPORTED + 1)
		wf_warn("%s: more malformed rows; only the count is reported from here on", path);
}

int wf_batch_judge(const char *path, const char *rows, const char *what, uint64_t good, uint64_t bad)
{
	if (bad > 0)
		wf_warn("%s: %llu malformed %s rows skipped, %llu read", path, (unsigned long long)bad, rows,
			(unsigned long long)good);
	if (bad > good) {
		wf_err("%s: most rows are malformed (%llu bad, %llu good); is this really the %s?", path,
		       (unsigned long long)bad, (unsigned long long)good, what);
		return -EINVAL;
	}
	return 0;
}

int wf_batch_read_header(struct wf_csv *c, const char *path, const char *what, const char *const *names, uint32_t n,
			 uint32_t required, struct wf_batch_cols *m)
{
	int r = wf_csv_next(c);

	if (r <= 0) {
		wf_err("%s: %s", path,
		       r == 0 ? "empty file, a header line is required"
			      : r == -EPROTO ? "the header line is a malformed CSV record" : "cannot read the header line");
		return r < 0 ? r : -EINVAL;
	}
	wf_batch_map_header(c, names, n, m);
	for (uint32_t k = 0; k < required; k++) {
		if (m->idx[k] < 0) {
			wf_err("%s: header lacks column '%s' (the %s CSV starts with a header naming its columns)", path,
			       names[k], what);
			return -EINVAL;
		}
	}
	return 0;
}

static int open_csv(struct wf_csv *c, const char *path, const char *what, const char *const *names, uint32_t n,
		    uint32_t required, struct wf_batch_cols *m)
{
	int r = wf_csv_open(c, path, ',');

	if (r < 0) {
		wf_err("cannot open %s file %s: %s", what, path, strerror(-r));
		return r;
	}
	r = wf_batch_read_header(c, path, what, names, n, required, m);
	if (r < 0)
		wf_csv_close(c);
	return r;
}

/* ---- catalog: item_id,category,brand,price,sizes ---- */

static int load_catalog(struct wf_batch *b)
{
	static const char *const names[] = { "item_id", "category", "brand", "price", "sizes" };
	const char *path = b->opt.catalog;
	struct wf_csv c;
	struct wf_batch_cols m;
	uint64_t good = 0, bad = 0;
	int r;

	if ((r = open_csv(&c, path, "catalog", names, 5, 1, &m)) < 0)
		return r;
	while ((r = wf_csv_next(&c)) != 0) {
		const struct wf_csv_field *id, *cat, *brand, *price, *sizes;
		uint32_t idx, x;
		double p = 0;

		if (r < 0 && r != -EPROTO)
			break;
		if (r == -EPROTO) {
			bad_row(b, path, c.line_no, &bad, "malformed CSV record");
			continue;
		}
		id = wf_batch_col(&c, &m, 0);
		cat = wf_batch_col(&c, &m, 1);
		brand = wf_batch_col(&c, &m, 2);
		price = wf_batch_col(&c, &m, 3);
		sizes = wf_batch_col(&c, &m, 4);
		if (id->len == 0 || id->len > WF_BATCH_MAX_ID) {
			bad_row(b, path, c.line_no, &bad, "item_id empty or longer than 128 bytes");
			continue;
		}
		if (price->len && (wf_parse_double(price->p, price->len, &p) < 0 || p < 0 || p > 4e7)) {
			bad_row(b, path, c.line_no, &bad, "price is not a non-negative number");
			continue;
		}
		if (cat->len > WF_BATCH_MAX_ID || brand->len > WF_BATCH_MAX_ID) {
			bad_row(b, path, c.line_no, &bad, "category or brand longer than 128 bytes");
			continue;
		}
		if ((r = wf_batch_item_get(b, id->p, id->len, &idx)) < 0)
			break;
		struct wf_batch_item *it = &b->item[idx];
		it->flags |= WF_SNAP_ITEM_IN_CATALOG;
		it->price_cents = (uint32_t)llround(p * 100.0);
		if (cat->len) {
			if ((r = wf_intern_get(&b->cats, cat->p, cat->len, &x, NULL)) < 0)
				break;
			it->category = x;
		}
		if (brand->len) {
			if ((r = wf_intern_get(&b->brands, brand->p, brand->len, &x, NULL)) < 0)
				break;
			it->brand = x;
		}
		uint32_t ns = 0;
		for (uint32_t i = 0, start = 0; i <= sizes->len; i++) {
			if (i == sizes->len || sizes->p[i] == ';') {
				ns += i > start;
				start = i + 1;
			}
		}
		it->nsizes = (uint8_t)WF_MIN(ns, 255u);
		good++;
	}
	wf_csv_close(&c);
	if (r < 0) {
		wf_err("%s: read failed: %s", path, strerror(-r));
		return r;
	}
	b->st.catalog_rows = good;
	b->st.catalog_skipped = bad;
	return wf_batch_judge(path, "catalog", "catalog CSV, with the header DESIGN.md names", good, bad);
}

/* ---- inventory: item_id,size,qty ---- */

static int load_inventory(struct wf_batch *b)
{
	static const char *const names[] = { "item_id", "size", "qty" };
	const char *path = b->opt.inventory;
	struct wf_csv c;
	struct wf_batch_cols m;
	uint64_t good = 0, bad = 0;
	int r;

	if ((r = open_csv(&c, path, "inventory", names, 3, 3, &m)) < 0)
		return r;
	while ((r = wf_csv_next(&c)) != 0) {
		const struct wf_csv_field *id, *qty;
		int64_t q;
		int64_t idx;

		if (r < 0 && r != -EPROTO)
			break;
		if (r == -EPROTO) {
			bad_row(b, path, c.line_no, &bad, "malformed CSV record");
			continue;
		}
		id = wf_batch_col(&c, &m, 0);
		qty = wf_batch_col(&c, &m, 2);
		if (id->len == 0 || id->len > WF_BATCH_MAX_ID || wf_parse_i64(qty->p, qty->len, &q) < 0 || q < 0) {
			bad_row(b, path, c.line_no, &bad, "item_id empty or qty not a non-negative integer");
			continue;
		}
		good++;
		idx = wf_intern_find(&b->items, id->p, id->len);
		if (idx < 0)
			continue; /* stock of an item neither sold nor listed: nothing to rank */
		b->item[idx].stock_rows++;
		b->item[idx].stock_pos += q > 0;
	}
	wf_csv_close(&c);
	if (r < 0) {
		wf_err("%s: read failed: %s", path, strerror(-r));
		return r;
	}
	b->st.inventory_rows = good;
	b->st.inventory_skipped = bad;
	return wf_batch_judge(path, "inventory", "inventory CSV, with the header DESIGN.md names", good, bad);
}

/* Fold the catalog's and inventory's bytes into the source digest (the
 * events' went in first, piece by piece, from events.c), each followed by
 * its 64-bit length so a byte moved from one file to the next changes it. */
static int digest_files(struct wf_batch *b, XXH3_state_t *st)
{
	const char *files[] = { b->opt.catalog, b->opt.inventory };
	char *buf = malloc(1u << 20);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < WF_ARRAY_SIZE(files) && r == 0; i++) {
		uint64_t len = 0;
		int fd;

		if (!files[i])
			continue;
		fd = open(files[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			wf_err("cannot open %s: %s", files[i], strerror(-r));
			break;
		}
		for (;;) {
			ssize_t n = read(fd, buf, 1u << 20);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = -errno;
				wf_err("cannot read %s: %s", files[i], strerror(-r));
				break;
			}
			if (n == 0)
				break;
			XXH3_64bits_update(st, buf, (size_t)n);
			len += (uint64_t)n;
		}
		close(fd);
		XXH3_64bits_update(st, &len, sizeof(len));
	}
	free(buf);
	return r;
}

int wf_batch_load(struct wf_batch *b)
{
	XXH3_state_t *st = XXH3_createState();
	int r;

	if (!st || (r = wf_intern_init(&b->items, &b->strs)) < 0 || (r = wf_intern_init(&b->users, &b->strs)) < 0 ||
	    (r = wf_intern_init(&b->cats, &b->strs)) < 0 || (r = wf_intern_init(&b->brands, &b->strs)) < 0) {
		wf_err("out of memory");
		XXH3_freeState(st);
		return -ENOMEM;
	}
	XXH3_64bits_reset(st);
	/* Catalog first: its items get the first numbers, as they always did. */
	if (b->opt.catalog && (r = load_catalog(b)) < 0)
		goto out;
	if ((r = wf_batch_load_events(b, st)) < 0 || (r = digest_files(b, st)) < 0)
		goto out;
	b->source_digest = XXH3_64bits_digest(st);
	if (b->opt.inventory && (r = load_inventory(b)) < 0)
		goto out;
	for (uint32_t i = 0; i < b->items.n; i++)
		if (b->item[i].stock_rows && !b->item[i].stock_pos)
			b->item[i].flags |= WF_SNAP_ITEM_SOLD_OUT;
out:
	XXH3_freeState(st);
	return r;
}
