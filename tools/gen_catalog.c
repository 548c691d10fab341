/*
 * gen_catalog.c - weft-gen's store: departments and categories with
 * complement relations, brands with price tiers, items with prices, sizes,
 * Zipf-like popularity inside each category and co-viewed neighbours; the
 * catalog.csv and inventory.csv writers. Linked into weft-gen only.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "tools/gen.h"
#include "tools/out.h"

/* Category indices, so the complement table below reads as names. */
enum {
	C_JACKETS, C_COATS, C_DRESSES, C_SHIRTS, C_TSHIRTS, C_JEANS, C_SWEATERS, C_SKIRTS,
	C_SCARVES, C_HATS, C_GLOVES, C_SOCKS,
	C_SNEAKERS, C_BOOTS, C_SANDALS, C_HEELS,
	C_BAGS, C_BELTS, C_SUNGLASSES, C_WATCHES,
	C_COOKWARE, C_KNIVES, C_BOARDS, C_BEDDING, C_PILLOWS, C_TOWELS, C_LAMPS, C_MUGS, C_COFFEE,
	C_SKINCARE, C_MAKEUP, C_FRAGRANCE, C_HAIRCARE,
	C_COUNT
};

enum { D_APPAREL, D_SHOES, D_ACCESSORIES, D_HOME, D_BEAUTY, D_COUNT };

#define A GEN_SIZE_APPAREL
#define S GEN_SIZE_SHOES
#define N GEN_SIZE_NONE
static const struct gen_cat cats[C_COUNT] = {
	[C_JACKETS] = { "jackets", "jacket", D_APPAREL, A, 89, 1.6, 3, { C_SCARVES, C_GLOVES, C_HATS } },
	[C_COATS] = { "coats", "coat", D_APPAREL, A, 149, 1.0, 3, { C_SCARVES, C_GLOVES, C_BOOTS } },
	[C_DRESSES] = { "dresses", "dress", D_APPAREL, A, 69, 1.8, 3, { C_HEELS, C_BAGS, C_SANDALS } },
	[C_SHIRTS] = { "shirts", "shirt", D_APPAREL, A, 39, 1.4, 2, { C_JEANS, C_BELTS } },
	[C_TSHIRTS] = { "t-shirts", "t-shirt", D_APPAREL, A, 19, 2.0, 2, { C_JEANS, C_SNEAKERS } },
	[C_JEANS] = { "jeans", "jeans", D_APPAREL, A, 59, 1.7, 3, { C_BELTS, C_TSHIRTS, C_SNEAKERS } },
	[C_SWEATERS] = { "sweaters", "sweater", D_APPAREL, A, 55, 1.2, 2, { C_SCARVES, C_JEANS } },
	[C_SKIRTS] = { "skirts", "skirt", D_APPAREL, A, 45, 0.8, 2, { C_TSHIRTS, C_SANDALS } },
	[C_SCARVES] = { "scarves", "scarf", D_APPAREL, N, 25, 0.7, 2, { C_JACKETS, C_GLOVES } },
	[C_HATS] = { "hats", "hat", D_APPAREL, N, 22, 0.6, 2, { C_SCARVES, C_GLOVES } },
	[C_GLOVES] = { "gloves", "gloves", D_APPAREL, N, 24, 0.5, 2, { C_SCARVES, C_HATS } },
	[C_SOCKS] = { "socks", "socks", D_APPAREL, N, 9, 0.9, 2, { C_SNEAKERS, C_BOOTS } },
	[C_SNEAKERS] = { "sneakers", "sneakers", D_SHOES, S, 79, 1.8, 2, { C_SOCKS, C_TSHIRTS } },
	[C_BOOTS] = { "boots", "boots", D_SHOES, S, 119, 1.1, 2, { C_SOCKS, C_COATS } },
	[C_SANDALS] = { "sandals", "sandals", D_SHOES, S, 39, 0.8, 2, { C_SUNGLASSES, C_DRESSES } },
	[C_HEELS] = { "heels", "heels", D_SHOES, S, 89, 0.7, 2, { C_DRESSES, C_BAGS } },
	[C_BAGS] = { "bags", "bag", D_ACCESSORIES, N, 99, 1.2, 2, { C_SUNGLASSES, C_WATCHES } },
	[C_BELTS] = { "belts", "belt", D_ACCESSORIES, N, 29, 0.6, 1, { C_JEANS } },
	[C_SUNGLASSES] = { "sunglasses", "sunglasses", D_ACCESSORIES, N, 59, 0.7, 2, { C_SANDALS, C_BAGS } },
	[C_WATCHES] = { "watches", "watch", D_ACCESSORIES, N, 159, 0.6, 1, { C_BAGS } },
	[C_COOKWARE] = { "cookware", "pan", D_HOME, N, 69, 1.0, 2, { C_KNIVES, C_BOARDS } },
	[C_KNIVES] = { "knives", "knife", D_HOME, N, 49, 0.8, 2, { C_BOARDS, C_COOKWARE } },
	[C_BOARDS] = { "cutting-boards", "cutting board", D_HOME, N, 29, 0.6, 1, { C_KNIVES } },
	[C_BEDDING] = { "bedding", "duvet cover", D_HOME, N, 79, 1.0, 2, { C_PILLOWS, C_TOWELS } },
	[C_PILLOWS] = { "pillows", "pillow", D_HOME, N, 35, 0.7, 1, { C_BEDDING } },
	[C_TOWELS] = { "towels", "towel", D_HOME, N, 25, 0.7, 1, { C_BEDDING } },
	[C_LAMPS] = { "lamps", "lamp", D_HOME, N, 65, 0.6, 1, { C_PILLOWS } },
	[C_MUGS] = { "mugs", "mug", D_HOME, N, 14, 0.7, 1, { C_COFFEE } },
	[C_COFFEE] = { "coffee-makers", "coffee maker", D_HOME, N, 129, 0.5, 1, { C_MUGS } },
	[C_SKINCARE] = { "skincare", "moisturizer", D_BEAUTY, N, 32, 1.2, 2, { C_MAKEUP, C_HAIRCARE } },
	[C_MAKEUP] = { "makeup", "lipstick", D_BEAUTY, N, 24, 1.1, 2, { C_SKINCARE, C_FRAGRANCE } },
	[C_FRAGRANCE] = { "fragrance", "perfume", D_BEAUTY, N, 75, 0.7, 1, { C_MAKEUP } },
	[C_HAIRCARE] = { "haircare", "shampoo", D_BEAUTY, N, 18, 0.8, 1, { C_SKINCARE } },
};
#undef A
#undef S
#undef N

static const char *const apparel_sizes[] = { "XS", "S", "M", "L", "XL" };
static const char *const shoe_sizes[] = { "36", "37", "38", "39", "40", "41", "42", "43", "44", "45" };
static const double tier_mult[GEN_TIERS] = { 0.55, 1.0, 2.3 };

static const char *const syl[] = { "ka", "lo", "ver", "na", "mi", "tor", "el", "sa", "ri", "do", "fen", "ba",
				   "lu", "zen", "ko", "ra", "vi", "mo", "ten", "ar", "is", "pa", "no", "wen" };

static void brand_name(struct gen_rng *r, char *out, size_t len)
{
	int n = 2 + (int)gen_below(r, 2);
	size_t o = 0;

	for (int i = 0; i < n; i++) {
		const char *p = syl[gen_below(r, WF_ARRAY_SIZE(syl))];
		size_t l = strlen(p);
		if (o + l + 1 >= len)
			break;
		memcpy(out + o, p, l);
		o += l;
	}
	out[o] = '\0';
	out[0] = (char)(out[0] - 'a' + 'A');
}

void gen_store_free(struct gen_store *s)
{
	if (!s)
		return;
	free(s->brands);
	free(s->items);
	free(s->cat_cdf);
	free(s->cat_items);
	free(s->cat_range);
	free(s->cat_tier_cdf);
	free(s->cat_brand_items);
	free(s->cat_brand_cdf);
	free(s->cat_brand_range);
	free(s->dept_brands);
	memset(s, 0, sizeof(*s));
}

/* Sort key for grouping items; file-local sort context avoided by packing. */
struct key {
	uint64_t k;
	uint32_t item;
};

static int key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

static int build_brands(struct gen_store *s, struct gen_rng *r)
{
	uint32_t nb = WF_MIN(200u, WF_MAX(50u, s->nitems / 20));
	double dept_w[D_COUNT] = { 0 }, tot = 0;
	uint32_t cnt[D_COUNT] = { 0 };

	s->nbrands = nb;
	s->brands = calloc(nb, sizeof(*s->brands));
	s->dept_brands = calloc(nb, sizeof(*s->dept_brands));
	if (!s->brands || !s->dept_brands)
		return -ENOMEM;
	for (uint32_t c = 0; c < s->ncats; c++)
		dept_w[cats[c].dept] += 1.0;
	for (int d = 0; d < D_COUNT; d++)
		tot += dept_w[d];
	for (uint32_t b = 0; b < nb; b++) {
		struct gen_brand *br = &s->brands[b];
		double u;
		int d, dup;

		/* Each department gets at least a few brands. */
		if (b < D_COUNT * 3) {
			d = (int)(b % D_COUNT);
		} else {
			u = gen_unif(r) * tot;
			for (d = 0; d < D_COUNT - 1 && u >= dept_w[d]; d++)
				u -= dept_w[d];
		}
		br->dept = (uint8_t)d;
		u = gen_unif(r);
		br->tier = u < 0.3 ? 0 : u < 0.75 ? 1 : 2;
		do {
			brand_name(r, br->name, sizeof(br->name));
			dup = 0;
			for (uint32_t j = 0; j < b && !dup; j++)
				dup = strcmp(s->brands[j].name, br->name) == 0;
		} while (dup);
		cnt[d]++;
	}
	/* dept_brands: brand indices grouped by department. */
	{
		uint32_t pos = 0;
		for (int d = 0; d < D_COUNT; d++) {
			s->dept_range[d].start = pos;
			s->dept_range[d].count = cnt[d];
			for (uint32_t b = 0; b < nb; b++)
				if (s->brands[b].dept == d)
					s->dept_brands[pos++] = b;
		}
	}
	return 0;
}

uint32_t gen_pick_brand(const struct gen_store *s, struct gen_rng *r, uint32_t d, int t)
{
	const struct gen_range *g = &s->dept_range[d];
	uint32_t b = s->dept_brands[g->start + gen_below(r, g->count)];

	for (int tries = 0; t >= 0 && tries < 8 && s->brands[b].tier != t; tries++)
		b = s->dept_brands[g->start + gen_below(r, g->count)];
	return b;
}

static void build_items(struct gen_store *s, struct gen_rng *r)
{
	for (uint32_t i = 0; i < s->nitems; i++) {
		struct gen_item *it = &s->items[i];
		uint32_t c = gen_pick_cdf(r, s->cat_cdf, s->ncats);
		const struct gen_range *g = &s->dept_range[cats[c].dept];
		/* Brands inside a department are Zipf-sized: a few big ones. */
		uint32_t k = (uint32_t)(g->count * pow(gen_unif(r), 1.8));
		uint32_t b = s->dept_brands[g->start + WF_MIN(k, g->count - 1)];
		double price;

		it->cat = (uint16_t)c;
		it->brand = (uint16_t)b;
		it->tier = s->brands[b].tier;
		/* A brand mostly sells in its tier, sometimes one step off. */
		if (gen_chance(r, 0.15))
			it->tier = (uint8_t)(it->tier == 0 ? 1 : it->tier == 2 ? 1 : (gen_chance(r, 0.5) ? 0 : 2));
		price = cats[c].base_price * tier_mult[it->tier] * gen_lognormal(r, 1.0, 0.22);
		if (price < 3)
			price = 3;
		it->price_cents = price >= 20 ? (uint32_t)price * 100 + 99 : (uint32_t)(price * 100.0 + 0.5);
		if (cats[c].sizing == GEN_SIZE_APPAREL) {
			int full = gen_chance(r, 0.7);
			it->size0 = full ? 0 : 1;
			it->nsizes = full ? 5 : 3;
		} else if (cats[c].sizing == GEN_SIZE_SHOES) {
			it->size0 = (uint8_t)gen_below(r, 2);
			it->nsizes = (uint8_t)(7 + gen_below(r, 2));
		}
	}
}

/* Per category: popularity order, tier-weighted cumulative popularity,
 * brand groups. */
static int build_indexes(struct gen_store *s, struct gen_rng *r)
{
	uint32_t n = s->nitems, nc = s->ncats, nb = s->nbrands;
	struct key *keys = malloc((size_t)n * sizeof(*keys));
	double *pop = malloc((size_t)n * sizeof(*pop));

	s->cat_items = malloc((size_t)n * sizeof(uint32_t));
	s->cat_range = calloc(nc, sizeof(*s->cat_range));
	s->cat_tier_cdf = malloc((size_t)n * GEN_TIERS * sizeof(double));
	s->cat_brand_items = malloc((size_t)n * sizeof(uint32_t));
	s->cat_brand_cdf = malloc((size_t)n * sizeof(double));
	s->cat_brand_range = calloc((size_t)nc * nb, sizeof(*s->cat_brand_range));
	if (!keys || !pop || !s->cat_items || !s->cat_range || !s->cat_tier_cdf || !s->cat_brand_items ||
	    !s->cat_brand_cdf || !s->cat_brand_range) {
		free(keys);
		free(pop);
		return -ENOMEM;
	}
	/* Popularity rank inside a category: a random permutation. */
	for (uint32_t i = 0; i < n; i++) {
		keys[i].k = ((uint64_t)s->items[i].cat << 40) | (gen_next(r) >> 24);
		keys[i].item = i;
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t c = (uint32_t)(keys[i].k >> 40);
		uint32_t rank;

		if (s->cat_range[c].count == 0)
			s->cat_range[c].start = i;
		rank = s->cat_range[c].count++;
		s->cat_items[i] = keys[i].item;
		pop[keys[i].item] = 1.0 / pow(rank + 1.0, 1.1);
	}
	for (uint32_t t = 0; t < GEN_TIERS; t++) {
		double *cdf = s->cat_tier_cdf + (size_t)t * n;
		for (uint32_t c = 0; c < nc; c++) {
			const struct gen_range *g = &s->cat_range[c];
			double acc = 0;
			for (uint32_t j = 0; j < g->count; j++) {
				uint32_t it = s->cat_items[g->start + j];
				acc += pop[it] * (s->items[it].tier == t ? 1.0 : 0.12);
				cdf[g->start + j] = acc;
			}
		}
	}
	/* Brand groups: (cat, brand, popularity rank). keys are in (cat, rank)
	 * order, so a stable key of (cat, brand, position) keeps popularity. */
	for (uint32_t i = 0; i < n; i++) {
		uint32_t it = s->cat_items[i];
		keys[i].k = ((uint64_t)s->items[it].cat << 48) | ((uint64_t)s->items[it].brand << 32) | i;
		keys[i].item = it;
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t it = keys[i].item;
		struct gen_range *g = &s->cat_brand_range[(size_t)s->items[it].cat * nb + s->items[it].brand];
		double prev;

		if (g->count == 0)
			g->start = i;
		prev = g->count ? s->cat_brand_cdf[i - 1] : 0;
		g->count++;
		s->cat_brand_items[i] = it;
		s->cat_brand_cdf[i] = prev + pop[it];
	}
	free(keys);
	free(pop);
	return 0;
}

uint32_t gen_pick_item(const struct gen_store *s, struct gen_rng *r, uint32_t c, uint32_t t)
{
	const struct gen_range *g = &s->cat_range[c];

	if (g->count == 0)
		return gen_below(r, s->nitems);
	return s->cat_items[g->start +
			    gen_pick_cdf(r, s->cat_tier_cdf + (size_t)t * s->nitems + g->start, g->count)];
}

uint32_t gen_pick_brand_item(const struct gen_store *s, struct gen_rng *r, uint32_t c, uint32_t b)
{
	const struct gen_range *g = &s->cat_brand_range[(size_t)c * s->nbrands + b];

	if (g->count == 0)
		return GEN_NO_ITEM;
	return s->cat_brand_items[g->start + gen_pick_cdf(r, s->cat_brand_cdf + g->start, g->count)];
}

/* Co-viewed neighbours: mostly same category and tier, chosen uniformly
 * (not by popularity), so item-to-item structure carries signal beyond
 * popularity; the last one from a complement category. */
static void build_neighbours(struct gen_store *s, struct gen_rng *r)
{
	for (uint32_t i = 0; i < s->nitems; i++) {
		struct gen_item *it = &s->items[i];
		const struct gen_range *g = &s->cat_range[it->cat];
		const struct gen_cat *ct = &cats[it->cat];

		for (int k = 0; k < GEN_NEIGHBOURS; k++) {
			uint32_t nb = GEN_NO_ITEM;
			if (k == GEN_NEIGHBOURS - 1 && ct->ncomp) {
				uint32_t cc = ct->comp[gen_below(r, ct->ncomp)];
				nb = gen_pick_item(s, r, cc, it->tier);
			} else if (g->count > 1) {
				for (int tries = 0; tries < 8; tries++) {
					nb = s->cat_items[g->start + gen_below(r, g->count)];
					if (nb != i && s->items[nb].tier == it->tier)
						break;
				}
				if (nb == i)
					nb = GEN_NO_ITEM;
			}
			it->nb[k] = nb;
		}
	}
}

int gen_store_build(struct gen_store *s, uint64_t seed, uint32_t nitems)
{
	struct gen_rng r;
	double acc = 0;
	int ret;

	memset(s, 0, sizeof(*s));
	gen_rng_seed(&r, gen_mix(seed, 0xca7a109, 0));
	s->seed = seed;
	s->cats = cats;
	s->ncats = C_COUNT;
	s->ndepts = D_COUNT;
	s->nitems = nitems;
	s->cat_cdf = malloc(C_COUNT * sizeof(double));
	s->items = calloc(nitems, sizeof(*s->items));
	if (!s->cat_cdf || !s->items) {
		ret = -ENOMEM;
		goto fail;
	}
	for (uint32_t c = 0; c < C_COUNT; c++) {
		acc += cats[c].weight;
		s->cat_cdf[c] = acc;
	}
	if ((ret = build_brands(s, &r)) < 0)
		goto fail;
	build_items(s, &r);
	if ((ret = build_indexes(s, &r)) < 0)
		goto fail;
	build_neighbours(s, &r);
	return 0;
fail:
	gen_store_free(s);
	return ret;
}

static void out_item_id(struct out *o, uint32_t i)
{
	out_ch(o, 'i');
	out_u64w(o, (uint64_t)i + 1, 6);
}

static const char *size_name(const struct gen_cat *c, uint32_t k)
{
	return c->sizing == GEN_SIZE_SHOES ? shoe_sizes[k] : apparel_sizes[k];
}

int gen_write_catalog(const struct gen_store *s, const char *dir)
{
	char path[4096];
	struct out o;
	int r;

	snprintf(path, sizeof(path), "%s/catalog.csv", dir);
	if ((r = out_open(&o, path)) < 0)
		return r;
	out_str(&o, "item_id,category,brand,price,sizes\n");
	for (uint32_t i = 0; i < s->nitems; i++) {
		const struct gen_item *it = &s->items[i];
		const struct gen_cat *c = &cats[it->cat];

		out_item_id(&o, i);
		out_ch(&o, ',');
		out_str(&o, c->name);
		out_ch(&o, ',');
		out_str(&o, s->brands[it->brand].name);
		out_ch(&o, ',');
		out_u64(&o, it->price_cents / 100);
		out_ch(&o, '.');
		out_u64w(&o, it->price_cents % 100, 2);
		out_ch(&o, ',');
		for (uint32_t k = 0; k < it->nsizes; k++) {
			if (k)
				out_ch(&o, ';');
			out_str(&o, size_name(c, it->size0 + k));
		}
		out_ch(&o, '\n');
		out_maybe_flush(&o);
	}
	return out_close(&o);
}

/* Most sizes in stock, some sizes sold out, a few items sold out in every
 * size. */
int gen_write_inventory(const struct gen_store *s, const char *dir, uint64_t *ret_rows, uint64_t *ret_soldout)
{
	char path[4096];
	struct gen_rng r;
	struct out o;
	uint64_t rows = 0, soldout = 0;
	int ret;

	snprintf(path, sizeof(path), "%s/inventory.csv", dir);
	if ((ret = out_open(&o, path)) < 0)
		return ret;
	gen_rng_seed(&r, gen_mix(s->seed, 0x1417e7, 0));
	out_str(&o, "item_id,size,qty\n");
	for (uint32_t i = 0; i < s->nitems; i++) {
		const struct gen_item *it = &s->items[i];
		const struct gen_cat *c = &cats[it->cat];
		int all_out = gen_chance(&r, 0.03);

		soldout += (uint64_t)all_out;
		if (it->nsizes == 0) {
			out_item_id(&o, i);
			out_str(&o, ",,");
			out_u64(&o, all_out ? 0 : (uint64_t)gen_range(&r, 1, 200));
			out_ch(&o, '\n');
			rows++;
		}
		for (uint32_t k = 0; k < it->nsizes; k++) {
			uint64_t q = all_out || gen_chance(&r, 0.08) ? 0 : (uint64_t)gen_range(&r, 1, 40);
			out_item_id(&o, i);
			out_ch(&o, ',');
			out_str(&o, size_name(c, it->size0 + k));
			out_ch(&o, ',');
			out_u64(&o, q);
			out_ch(&o, '\n');
			rows++;
		}
		out_maybe_flush(&o);
	}
	ret = out_close(&o);
	if (ret == 0) {
		*ret_rows = rows;
		*ret_soldout = soldout;
	}
	return ret;
}
