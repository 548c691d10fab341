/*
 * sim.h - weft-sim's store model: the catalog (items with category, brand,
 * price and a popularity learned from the events), the categories' items
 * by popularity, and each returning user's taste (favourite categories and
 * brands counted from their history). Built by sim_store.c from a weft-gen
 * output directory; read by sim.c (the shoppers). Owned by weft-sim's
 * main; nothing shared, no globals.
 */
#ifndef WF_TOOLS_SIM_H
#define WF_TOOLS_SIM_H

#include <stddef.h>
#include <stdint.h>

#define SIM_ID_MAX 128
#define SIM_TASTE 3 /* favourite categories and brands kept per user */

struct sim_item {
	char *id;
	uint32_t cat, brand;
	double price;
	uint32_t pop; /* events on the item in events.csv */
};

struct sim_cat {
	char *name;
	uint32_t *items; /* by popularity, most first */
	uint32_t n;
	double *cdf;     /* Zipf-like pick weights over items[], cumulative */
};

struct sim_user {
	char *id;
	uint32_t cat[SIM_TASTE], brand[SIM_TASTE]; /* UINT32_MAX: none */
	uint32_t catn[SIM_TASTE];                 /* events in each */
	double price;                             /* mean price of viewed items */
};

/* A string -> index table (open addressing over a power of two). */
struct sim_map {
	uint32_t *slot; /* index + 1; 0 empty */
	uint32_t cap;
};

struct sim_store {
	struct sim_item *items;
	uint32_t nitems;
	struct sim_cat *cats;
	uint32_t ncats;
	char **brands;
	uint32_t nbrands;
	struct sim_user *users;
	uint32_t nusers;
	struct sim_map item_map, user_map;
	uint64_t events_read;
};

/* Load DIR/catalog.csv and DIR/events.csv. 0, or -errno with a message
 * for the user in err (which file, which line, what to do). */
int sim_store_load(struct sim_store *st, const char *dir, char *err, size_t errlen);
void sim_store_fini(struct sim_store *st);

/* The item with id[0..len), or UINT32_MAX. */
uint32_t sim_item_find(const struct sim_store *st, const char *id, size_t len);

#endif
