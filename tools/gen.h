/*
 * gen.h - weft-gen internals shared by gen.c (shoppers, sessions, events)
 * and gen_catalog.c (categories, brands, items, popularity, item
 * neighbours, inventory). Included by tools/gen*.c only.
 *
 * Ownership: struct gen_store is built by gen_store_build() and freed by
 * gen_store_free() (accepts a zeroed or half-built store).
 */
#ifndef WF_TOOLS_GEN_H
#define WF_TOOLS_GEN_H

#include <stdint.h>

#include "tools/rng.h"

#define GEN_TIERS 3      /* 0 budget, 1 mid, 2 premium */
#define GEN_NEIGHBOURS 4 /* co-viewed items per item */
#define GEN_NO_ITEM UINT32_MAX

enum gen_sizing { GEN_SIZE_NONE, GEN_SIZE_APPAREL, GEN_SIZE_SHOES };

struct gen_cat {
	const char *name;  /* catalog `category` column */
	const char *word;  /* what shoppers type in a search */
	uint8_t dept;
	uint8_t sizing;    /* enum gen_sizing */
	double base_price; /* mid-tier median price */
	double weight;     /* share of the catalog and of shopper interest */
	uint8_t ncomp;
	uint8_t comp[3];   /* complement categories (carts pull these) */
};

struct gen_brand {
	char name[24];
	uint8_t dept;
	uint8_t tier;
};

struct gen_item {
	uint16_t cat;
	uint16_t brand;
	uint8_t tier;
	uint8_t nsizes;
	uint8_t size0;     /* first size index into the sizing's size list */
	uint32_t price_cents;
	uint32_t nb[GEN_NEIGHBOURS]; /* co-viewed items */
};

struct gen_range {
	uint32_t start, count;
};

struct gen_store {
	uint64_t seed;
	uint32_t ncats, nbrands, nitems, ndepts;
	const struct gen_cat *cats;
	struct gen_brand *brands;
	struct gen_item *items;
	double *cat_cdf;         /* over categories, by weight */
	/* Per category: items by popularity (most popular first). */
	uint32_t *cat_items;     /* nitems entries, grouped by category */
	struct gen_range *cat_range; /* ncats */
	double *cat_tier_cdf;    /* GEN_TIERS arrays parallel to cat_items */
	/* Per category, items grouped by brand (popularity order inside a group),
	 * with a cumulative popularity restarting in each group. */
	uint32_t *cat_brand_items;
	double *cat_brand_cdf;
	struct gen_range *cat_brand_range; /* ncats * nbrands */
	/* Brands per department, for picking favourites and search words. */
	uint32_t *dept_brands;
	struct gen_range dept_range[8];
};

int gen_store_build(struct gen_store *s, uint64_t seed, uint32_t nitems);
void gen_store_free(struct gen_store *s);

/* Pick an item of category c, preferring tier t, by popularity. */
uint32_t gen_pick_item(const struct gen_store *s, struct gen_rng *r, uint32_t c, uint32_t t);
/* Pick an item of brand b in category c by popularity; GEN_NO_ITEM if none. */
uint32_t gen_pick_brand_item(const struct gen_store *s, struct gen_rng *r, uint32_t c, uint32_t b);
/* A brand of department d, preferring tier t. */
uint32_t gen_pick_brand(const struct gen_store *s, struct gen_rng *r, uint32_t d, int t);

/* Write catalog.csv and inventory.csv into dir. 0 or -errno. */
int gen_write_catalog(const struct gen_store *s, const char *dir);
int gen_write_inventory(const struct gen_store *s, const char *dir, uint64_t *ret_rows, uint64_t *ret_soldout);

#endif
