/*
 * sim_store.c - weft-sim's model of a weft-gen store: reads catalog.csv
 * (item_id,category,brand,price,sizes) and events.csv (ts,user_id,
 * session_id,event,item_id,value) once, and keeps per item its category,
 * brand, price and popularity, per category its items by popularity, per
 * returning user the categories and brands they touched most. Linked into
 * weft-sim only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/csv.h"
#include "lib/util.h"
#include "tools/sim.h"

static int map_grow(struct sim_map *m, char *const *keys, uint32_t n, size_t stride);

/* Index of key in m, or UINT32_MAX; keys[i * stride] is entry i's id. */
static uint32_t map_get(const struct sim_map *m, const void *base, size_t stride, const char *key,
			size_t len)
{
	uint64_t h = wf_hash64(key, len);

	if (!m->cap)
		return UINT32_MAX;
	for (uint32_t i = (uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		uint32_t s = m->slot[i];
		const char *k;

		if (!s)
			return UINT32_MAX;
		k = *(char *const *)((const char *)base + (size_t)(s - 1) * stride);
		if (strlen(k) == len && memcmp(k, key, len) == 0)
			return s - 1;
	}
}

/* Insert entry idx (its key already stored); the table is kept at most
 * half full. */
static int map_put(struct sim_map *m, const void *base, size_t stride, uint32_t idx)
{
	const char *k = *(char *const *)((const char *)base + (size_t)idx * stride);
	uint64_t h;

	if ((uint64_t)(idx + 1) * 2 > m->cap) {
		int e = map_grow(m, (char *const *)base, idx, stride);

		if (e < 0)
			return e;
	}
	h = wf_hash64(k, strlen(k));
	for (uint32_t i = (uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
		if (!m->slot[i]) {
			m->slot[i] = idx + 1;
			return 0;
		}
}

/* Double the table and reinsert entries 0..n-1. */
static int map_grow(struct sim_map *m, char *const *keys, uint32_t n, size_t stride)
{
	struct sim_map nm = { NULL, m->cap ? m->cap * 2 : 1024 };

	nm.slot = calloc(nm.cap, sizeof(*nm.slot));
	if (!nm.slot)
		return -ENOMEM;
	free(m->slot);
	*m = nm;
	for (uint32_t i = 0; i < n; i++) {
		const char *k = *(char *const *)((const char *)keys + (size_t)i * stride);
		uint64_t h = wf_hash64(k, strlen(k));

		for (uint32_t s = (uint32_t)h & (m->cap - 1);; s = (s + 1) & (m->cap - 1))
			if (!m->slot[s]) {
				m->slot[s] = i + 1;
				break;
			}
	}
	return 0;
}

uint32_t sim_item_find(const struct sim_store *st, const char *id, size_t len)
{
	return map_get(&st->item_map, st->items, sizeof(*st->items), id, len);
}

/* Index of name in a growing list of names (linear: a store has tens of
 * categories and a few hundred brands). */
static int name_index(char ***names, uint32_t *n, const struct wf_csv_field *f, uint32_t *ret)
{
	char **nn;

	for (uint32_t i = 0; i < *n; i++)
		if (strlen((*names)[i]) == f->len && memcmp((*names)[i], f->p, f->len) == 0) {
			*ret = i;
			return 0;
		}
	nn = realloc(*names, (*n + 1) * sizeof(*nn));
	if (!nn)
		return -ENOMEM;
	*names = nn;
	nn[*n] = strndup(f->p, f->len);
	if (!nn[*n])
		return -ENOMEM;
	*ret = (*n)++;
	return 0;
}

/* DIR/name, a weft-gen output's CSV, opened into c (its path in path).
 * 0, or -errno with the error in err. */
static int store_csv_open(struct wf_csv *c, const char *dir, const char *name, char *path, size_t pathlen, char *err,
			  size_t errlen)
{
	int e;

	snprintf(path, pathlen, "%s/%s", dir, name);
	if ((e = wf_csv_open(c, path, ',')) < 0)
		snprintf(err, errlen, "cannot open %s: %s (is --store a weft-gen output?)", path, strerror(-e));
	return e;
}

static int load_catalog(struct sim_store *st, const char *dir, char *err, size_t errlen)
{
	char path[4096], **cats = NULL;
	struct wf_csv c;
	uint32_t cap = 0;
	int e;

	if ((e = store_csv_open(&c, dir, "catalog.csv", path, sizeof(path), err, errlen)) < 0)
		return e;
	while ((e = wf_csv_next(&c)) == 1) {
		struct sim_item *it;
		double price = 0;

		if (c.line_no == 1)
			continue; /* header */
		if (c.nfields < 4 || c.field[0].len == 0 || c.field[0].len > SIM_ID_MAX)
			continue;
		if (st->nitems == cap) {
			struct sim_item *ni = realloc(st->items, (cap = cap ? cap * 2 : 4096) * sizeof(*ni));

			if (!ni)
				goto nomem;
			st->items = ni;
		}
		it = &st->items[st->nitems];
		memset(it, 0, sizeof(*it));
		it->id = strndup(c.field[0].p, c.field[0].len);
		if (!it->id || name_index(&cats, &st->ncats, &c.field[1], &it->cat) < 0 ||
		    name_index(&st->brands, &st->nbrands, &c.field[2], &it->brand) < 0)
			goto nomem;
		wf_parse_double(c.field[3].p, c.field[3].len, &price);
		it->price = price > 0 ? price : 0;
		if (sim_item_find(st, c.field[0].p, c.field[0].len) != UINT32_MAX) {
			free(it->id);
			continue; /* a repeated id: the first row wins */
		}
		if (map_put(&st->item_map, st->items, sizeof(*st->items), st->nitems) < 0)
			goto nomem;
		st->nitems++;
	}
	wf_csv_close(&c);
	if (e < 0 || st->nitems == 0) {
		snprintf(err, errlen, "%s: %s", path, e < 0 ? "unreadable" : "no items");
		free(cats);
		return e < 0 ? e : -ENODATA;
	}
	st->cats = calloc(st->ncats, sizeof(*st->cats));
	if (!st->cats)
		goto nomem_closed;
	for (uint32_t i = 0; i < st->ncats; i++)
		st->cats[i].name = cats[i];
	free(cats);
	return 0;
nomem:
	wf_csv_close(&c);
nomem_closed:
	for (uint32_t i = 0; i < st->ncats && cats; i++)
		free(cats[i]);
	free(cats);
	snprintf(err, errlen, "out of memory reading %s", path);
	return -ENOMEM;
}

/* Per-user counts while reading events: category and brand tallies are
 * kept in small open lists (SIM_TASTE * 4 entries), the top kept at the
 * end. */
#define TALLY 12
struct tally {
	uint32_t cat[TALLY], catn[TALLY], brand[TALLY], brandn[TALLY];
	double price_sum;
	uint32_t nprice;
};

static void tally_add(uint32_t *k, uint32_t *n, uint32_t key)
{
	uint32_t lo = 0;

	for (uint32_t i = 0; i < TALLY; i++) {
		if (n[i] && k[i] == key) {
			n[i]++;
			return;
		}
		if (n[i] < n[lo])
			lo = i;
	}
	/* replace the least counted (space-saving sketch) */
	k[lo] = key;
	n[lo] = n[lo] + 1;
}

static void tally_top(const uint32_t *k, const uint32_t *n, uint32_t *out, uint32_t *outn)
{
	uint8_t used[TALLY] = { 0 };

	for (int t = 0; t < SIM_TASTE; t++) {
		int best = -1;

		for (int i = 0; i < TALLY; i++)
			if (!used[i] && n[i] && (best < 0 || n[i] > n[best]))
				best = i;
		out[t] = best < 0 ? UINT32_MAX : k[best];
		if (outn)
			outn[t] = best < 0 ? 0 : n[best];
		if (best >= 0)
			used[best] = 1;
	}
}

static int load_events(struct sim_store *st, const char *dir, char *err, size_t errlen)
{
	char path[4096];
	struct wf_csv c;
	struct tally *tl = NULL;
	uint32_t cap = 0;
	int e;

	if ((e = store_csv_open(&c, dir, "events.csv", path, sizeof(path), err, errlen)) < 0)
		return e;
	while ((e = wf_csv_next(&c)) == 1) {
		uint32_t it, u;

		if (c.line_no == 1 || c.nfields < 5)
			continue;
		it = sim_item_find(st, c.field[4].p, c.field[4].len);
		if (it == UINT32_MAX)
			continue;
		st->items[it].pop++;
		st->events_read++;
		if (c.field[1].len == 0 || c.field[1].len > SIM_ID_MAX)
			continue; /* anonymous */
		u = map_get(&st->user_map, st->users, sizeof(*st->users), c.field[1].p, c.field[1].len);
		if (u == UINT32_MAX) {
			if (st->nusers == cap) {
				uint32_t nc = cap ? cap * 2 : 4096;
				struct sim_user *nu = realloc(st->users, nc * sizeof(*nu));
				struct tally *nt = realloc(tl, nc * sizeof(*nt));

				if (nu)
					st->users = nu;
				if (nt)
					tl = nt;
				if (!nu || !nt)
					goto nomem;
				cap = nc;
			}
			u = st->nusers;
			memset(&st->users[u], 0, sizeof(st->users[u]));
			memset(&tl[u], 0, sizeof(tl[u]));
			st->users[u].id = strndup(c.field[1].p, c.field[1].len);
			if (!st->users[u].id || map_put(&st->user_map, st->users, sizeof(*st->users), u) < 0)
				goto nomem;
			st->nusers++;
		}
		tally_add(tl[u].cat, tl[u].catn, st->items[it].cat);
		tally_add(tl[u].brand, tl[u].brandn, st->items[it].brand);
		tl[u].price_sum += st->items[it].price;
		tl[u].nprice++;
	}
	wf_csv_close(&c);
	for (uint32_t u = 0; u < st->nusers; u++) {
		tally_top(tl[u].cat, tl[u].catn, st->users[u].cat, st->users[u].catn);
		tally_top(tl[u].brand, tl[u].brandn, st->users[u].brand, NULL);
		st->users[u].price = tl[u].nprice ? tl[u].price_sum / tl[u].nprice : 0;
	}
	free(tl);
	if (e < 0) {
		snprintf(err, errlen, "%s: unreadable near line %llu", path,
			 (unsigned long long)c.line_no);
		return e;
	}
	return 0;
nomem:
	wf_csv_close(&c);
	free(tl);
	snprintf(err, errlen, "out of memory reading %s", path);
	return -ENOMEM;
}

/* Popularity descending, then catalog order. */
static int by_pop(const void *a, const void *b, void *arg)
{
	const struct sim_store *st = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (st->items[x].pop != st->items[y].pop)
		return st->items[x].pop > st->items[y].pop ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* A shopper finds category items by popularity: weight 1 / (rank + 5). */
static int cats_index(struct sim_store *st)
{
	uint32_t *fill = calloc(st->ncats, sizeof(*fill));

	if (!fill)
		return -ENOMEM;
	for (uint32_t i = 0; i < st->nitems; i++)
		st->cats[st->items[i].cat].n++;
	for (uint32_t c = 0; c < st->ncats; c++) {
		st->cats[c].items = malloc(st->cats[c].n * sizeof(uint32_t));
		st->cats[c].cdf = malloc(st->cats[c].n * sizeof(double));
		if (!st->cats[c].items || !st->cats[c].cdf) {
			free(fill);
			return -ENOMEM;
		}
	}
	for (uint32_t i = 0; i < st->nitems; i++) {
		struct sim_cat *c = &st->cats[st->items[i].cat];

		c->items[fill[st->items[i].cat]++] = i;
	}
	free(fill);
	for (uint32_t c = 0; c < st->ncats; c++) {
		struct sim_cat *ct = &st->cats[c];
		double s = 0;

		qsort_r(ct->items, ct->n, sizeof(uint32_t), by_pop, st);
		for (uint32_t i = 0; i < ct->n; i++) {
			s += 1.0 / (i + 5);
			ct->cdf[i] = s;
		}
	}
	return 0;
}

int sim_store_load(struct sim_store *st, const char *dir, char *err, size_t errlen)
{
	int e;

	memset(st, 0, sizeof(*st));
	e = load_catalog(st, dir, err, errlen);
	if (e == 0)
		e = load_events(st, dir, err, errlen);
	if (e == 0 && (e = cats_index(st)) < 0)
		snprintf(err, errlen, "out of memory indexing the catalog");
	if (e < 0)
		sim_store_fini(st);
	return e;
}

void sim_store_fini(struct sim_store *st)
{
	for (uint32_t i = 0; i < st->nitems; i++)
		free(st->items[i].id);
	for (uint32_t c = 0; st->cats && c < st->ncats; c++) {
		free(st->cats[c].name);
		free(st->cats[c].items);
		free(st->cats[c].cdf);
	}
	for (uint32_t b = 0; b < st->nbrands; b++)
		free(st->brands[b]);
	for (uint32_t u = 0; u < st->nusers; u++)
		free(st->users[u].id);
	free(st->items);
	free(st->cats);
	free(st->brands);
	free(st->users);
	free(st->item_map.slot);
	free(st->user_map.slot);
	memset(st, 0, sizeof(*st));
}
