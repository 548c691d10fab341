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

#define MAX_REPORTED 10 /* malformed rows named one by one per file */

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

/* Intern an item id and make sure its model record exists. */
static int get_item(struct wf_batch *b, uint32_t *cap, const char *id, uint32_t len, uint32_t *ret)
{
	bool isnew;
	int r = wf_intern_get(&b->items, id, len, ret, &isnew);

	if (r < 0)
		return r;
	if (*ret >= *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 4096;
		struct wf_batch_item *p = realloc(b->item, (size_t)ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		b->item = p;
		*cap = ncap;
	}
	if (isnew)
		b->item[*ret] = (struct wf_batch_item){ .category = WF_SNAP_NO_CAT, .brand = WF_SNAP_NO_CAT,
							.price_band = 255 };
	return 0;
}

static int get_user(struct wf_batch *b, uint32_t *cap, const char *id, uint32_t len, uint32_t *ret)
{
	bool isnew;
	int r = wf_intern_get(&b->users, id, len, ret, &isnew);

	if (r < 0)
		return r;
	if (*ret >= *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 4096;
		struct wf_batch_user *p = realloc(b->user, (size_t)ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		b->user = p;
		*cap = ncap;
	}
	if (isnew)
		b->user[*ret] = (struct wf_batch_user){ .first_ms = INT64_MAX, .last_ms = INT64_MIN,
							.last_buy_ms = INT64_MIN };
	return 0;
}

/* ---- CSV helpers ---- */

struct cols {
	int idx[8];
};

/* Map header names to column numbers; -1 if absent. */
static void map_header(const struct wf_csv *c, const char *const *names, uint32_t n, struct cols *ret)
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

static const struct wf_csv_field *col(const struct wf_csv *c, const struct cols *m, int k)
{
	static const struct wf_csv_field empty = { "", 0 };
	int i = m->idx[k];

	return i >= 0 && (uint32_t)i < c->nfields ? &c->field[i] : &empty;
}

static void bad_row(struct wf_batch *b, const char *path, uint64_t line, uint64_t *count, const char *why)
{
	if (++*count <= MAX_REPORTED)
		wf_warn("%s:%llu: %s; row skipped", path, (unsigned long long)line, why);
	else if (*count == MAX_REPORTED + 1)
		wf_warn("%s: more malformed rows; only the count is reported from here on", path);
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Too many bad rows means the wrong file or format, not a few bad lines. */
static int judge(const char *path, const char *what, uint64_t good, uint64_t bad)
{
	if (bad > 0)
		wf_warn("%s: %llu malformed %s rows skipped, %llu read", path, (unsigned long long)bad, what,
			(unsigned long long)good);
	if (bad > good) {
		wf_err("%s: most rows are malformed (%llu bad, %llu good); is this really the %s CSV, with the header DESIGN.md names?",
		       path, (unsigned long long)bad, (unsigned long long)good, what);
		return -EINVAL;
	}
	return 0;
}

static int open_csv(struct wf_csv *c, const char *path, const char *what, const char *const *names, uint32_t n,
		    uint32_t required, struct cols *m)
{
	int r = wf_csv_open(c, path, ',');

	if (r < 0) {
		wf_err("cannot open %s file %s: %s", what, path, strerror(-r));
		return r;
	}
	r = wf_csv_next(c);
	if (r <= 0) {
		wf_err("%s: %s", path, r == 0 ? "empty file, a header line is required" : "cannot read the header line");
		wf_csv_close(c);
		return r < 0 ? r : -EINVAL;
	}
	map_header(c, names, n, m);
	for (uint32_t k = 0; k < required; k++) {
		if (m->idx[k] < 0) {
			wf_err("%s: header lacks column '%s' (the %s CSV starts with a header naming its columns)", path,
			       names[k], what);
			wf_csv_close(c);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- catalog: item_id,category,brand,price,sizes ---- */

static int load_catalog(struct wf_batch *b, uint32_t *icap)
{
	static const char *const names[] = { "item_id", "category", "brand", "price", "sizes" };
	const char *path = b->opt.catalog;
	struct wf_csv c;
	struct cols m;
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
		id = col(&c, &m, 0);
		cat = col(&c, &m, 1);
		brand = col(&c, &m, 2);
		price = col(&c, &m, 3);
		sizes = col(&c, &m, 4);
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
		if ((r = get_item(b, icap, id->p, id->len, &idx)) < 0)
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
	return judge(path, "catalog", good, bad);
}

/* ---- inventory: item_id,size,qty ---- */

static int load_inventory(struct wf_batch *b)
{
	static const char *const names[] = { "item_id", "size", "qty" };
	const char *path = b->opt.inventory;
	struct wf_csv c;
	struct cols m;
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
		id = col(&c, &m, 0);
		qty = col(&c, &m, 2);
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
	return judge(path, "inventory", good, bad);
}

/* ---- events: ts,user_id,session_id,event,item_id,value ---- */

static int parse_type(const char *p, uint32_t len)
{
	static const char *const names[WF_EV_COUNT] = {
		[WF_EV_VIEW] = "view",	       [WF_EV_CLICK] = "click",	    [WF_EV_PDP] = "pdp",
		[WF_EV_HOVER] = "hover",       [WF_EV_DWELL] = "dwell",	    [WF_EV_SCROLL] = "scroll",
		[WF_EV_SEARCH] = "search",     [WF_EV_CART_ADD] = "cart_add", [WF_EV_CART_REMOVE] = "cart_remove",
		[WF_EV_PURCHASE] = "purchase",
	};

	for (int i = 0; i < WF_EV_COUNT; i++)
		if (strlen(names[i]) == len && memcmp(names[i], p, len) == 0)
			return i;
	return -1;
}

static int push_event(struct wf_batch *b, const struct wf_batch_event *e)
{
	if (b->nev == b->ev_cap) {
		uint64_t cap = b->ev_cap ? b->ev_cap * 2 : (1u << 20);
		struct wf_batch_event *p = realloc(b->ev, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		b->ev = p;
		b->ev_cap = cap;
	}
	b->ev[b->nev++] = *e;
	return 0;
}

static int load_events(struct wf_batch *b, uint32_t *icap, uint32_t *ucap)
{
	static const char *const names[] = { "ts", "session_id", "event", "item_id", "user_id", "value" };
	const char *path = b->opt.events;
	uint64_t total = file_size(path), good = 0, bad = 0, last_ns = 0;
	struct wf_csv c;
	struct cols m;
	int r;

	if ((r = open_csv(&c, path, "events", names, 6, 4, &m)) < 0)
		return r;
	b->min_ms = INT64_MAX;
	b->max_ms = INT64_MIN;
	while ((r = wf_csv_next(&c)) != 0) {
		const struct wf_csv_field *ts = col(&c, &m, 0), *sess = col(&c, &m, 1), *type = col(&c, &m, 2),
					  *item = col(&c, &m, 3), *user = col(&c, &m, 4), *val = col(&c, &m, 5);
		struct wf_batch_event e = { .item = 0xffffffffu, .user = WF_BATCH_NO_USER, .value = 1.0f };
		int t;

		if (r < 0 && r != -EPROTO)
			break;
		if ((good & 0xffff) == 0 && !b->opt.quiet) {
			uint64_t now = wf_now_ns();
			if (now - last_ns > 1000000000ull) {
				wf_batch_progress(b, "reading events", c.bytes_read, total);
				last_ns = now;
			}
		}
		if (r == -EPROTO) {
			bad_row(b, path, c.line_no, &bad, "malformed CSV record");
			continue;
		}
		if (wf_parse_i64(ts->p, ts->len, &e.ts_ms) < 0 || e.ts_ms < 0) {
			bad_row(b, path, c.line_no, &bad, "ts is not a unix time in milliseconds");
			continue;
		}
		if ((t = parse_type(type->p, type->len)) < 0) {
			bad_row(b, path, c.line_no, &bad, "unknown event type");
			continue;
		}
		e.type = (uint8_t)t;
		if (sess->len == 0 || sess->len > WF_BATCH_MAX_ID || user->len > WF_BATCH_MAX_ID ||
		    item->len > WF_BATCH_MAX_ID) {
			bad_row(b, path, c.line_no, &bad, "session_id empty, or an id longer than 128 bytes");
			continue;
		}
		if (item->len == 0 && t != WF_EV_SEARCH) {
			bad_row(b, path, c.line_no, &bad, "item_id empty (only search events may omit it)");
			continue;
		}
		if ((t == WF_EV_PURCHASE || t == WF_EV_CART_ADD) && val->len) {
			double q;
			if (wf_parse_double(val->p, val->len, &q) == 0 && q > 0 && q <= 1000)
				e.value = (float)q;
		}
		if (item->len && (r = get_item(b, icap, item->p, item->len, &e.item)) < 0)
			break;
		if (user->len && (r = get_user(b, ucap, user->p, user->len, &e.user)) < 0)
			break;
		if ((r = wf_intern_get(&b->sessions, sess->p, sess->len, &e.session, NULL)) < 0)
			break;
		if ((r = push_event(b, &e)) < 0)
			break;
		b->min_ms = WF_MIN(b->min_ms, e.ts_ms);
		b->max_ms = WF_MAX(b->max_ms, e.ts_ms);
		b->st.anon_events += e.user == WF_BATCH_NO_USER;
		good++;
	}
	wf_csv_close(&c);
	if (r < 0) {
		wf_err("%s: %s", path, r == -ENOMEM ? "out of memory while loading events" : strerror(-r));
		return r;
	}
	wf_batch_progress(b, "reading events", total, total);
	b->st.events_read = good;
	b->st.rows_skipped = bad;
	b->st.sessions = b->sessions.n;
	if (good == 0) {
		wf_err("%s: no usable event rows", path);
		return -EINVAL;
	}
	return judge(path, "events", good, bad);
}

/* XXH3 over each input's bytes, in a fixed order (events, catalog,
 * inventory), with each file's length mixed in so a byte moved from one
 * file to the next changes the digest. */
static int digest(struct wf_batch *b)
{
	const char *files[] = { b->opt.events, b->opt.catalog, b->opt.inventory };
	XXH3_state_t *st = XXH3_createState();
	char *buf = malloc(1u << 20);
	int r = 0;

	if (!st || !buf) {
		r = -ENOMEM;
		goto out;
	}
	XXH3_64bits_reset(st);
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
	b->source_digest = XXH3_64bits_digest(st);
out:
	XXH3_freeState(st);
	free(buf);
	return r;
}

int wf_batch_load(struct wf_batch *b)
{
	uint32_t icap = 0, ucap = 0;
	int r;

	if ((r = wf_intern_init(&b->items, &b->strs)) < 0 || (r = wf_intern_init(&b->users, &b->strs)) < 0 ||
	    (r = wf_intern_init(&b->cats, &b->strs)) < 0 || (r = wf_intern_init(&b->brands, &b->strs)) < 0 ||
	    (r = wf_intern_init(&b->sessions, &b->sess_arena)) < 0) {
		wf_err("out of memory");
		return r;
	}
	if ((r = digest(b)) < 0)
		return r;
	if (b->opt.catalog && (r = load_catalog(b, &icap)) < 0)
		return r;
	if ((r = load_events(b, &icap, &ucap)) < 0)
		return r;
	if (b->opt.inventory && (r = load_inventory(b)) < 0)
		return r;
	/* The sessions' ids are not written: only their numbers are needed. */
	wf_intern_fini(&b->sessions);
	wf_buf_fini(&b->sess_arena);
	for (uint32_t i = 0; i < b->items.n; i++)
		if (b->item[i].stock_rows && !b->item[i].stock_pos)
			b->item[i].flags |= WF_SNAP_ITEM_SOLD_OUT;
	return 0;
}
