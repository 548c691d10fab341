/*
 * gen.c - weft-gen: a deterministic synthetic store for demos, tests and
 * benchmarks. Writes DIR/catalog.csv, DIR/inventory.csv and DIR/events.csv
 * in the formats of DESIGN.md. Standalone program; links libweft.
 *
 * Shoppers: returning users with stable tastes (2-3 favourite categories,
 * a price tier, favourite brands) and a personal visit rate, so most have a
 * multi-day history; some of their visits explore a new use case. Anonymous
 * visitors (empty user_id) come with one coherent intent each.
 *
 * Sessions: an intent (category + tier) drives the items seen; views follow
 * popularity inside the category, co-viewed neighbours of the last item,
 * favourite brands, searches; engagement (hover, click, pdp, dwell, scroll,
 * cart) is likelier for items that match the intent and the shopper's
 * taste; a cart pulls complements; ~18 % of sessions pivot midway.
 *
 * Events are generated one day at a time, sorted by (ts, generation order)
 * and streamed out; events of sessions running past midnight are carried
 * into the next day's batch. Memory is bounded by one day of events plus
 * 9 bytes per user. Every random draw comes from xoshiro256** streams seeded
 * from (--seed, user, day), so the same seed gives byte-identical files.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "tools/gen.h"
#include "tools/out.h"

#define DAY_MS 86400000ull
#define MIN_MS 60000ull
#define BASE_MS 1709510400000ull /* 2024-03-04 00:00 UTC, a Monday */
#define MAX_CART 8
#define MAX_USER_SESSIONS 6

enum ev_type {
	EV_VIEW, EV_CLICK, EV_PDP, EV_HOVER, EV_DWELL, EV_SCROLL, EV_SEARCH, EV_CART_ADD, EV_CART_REMOVE,
	EV_PURCHASE, EV_COUNT
};
static const char *const ev_names[EV_COUNT] = { "view",	  "click",  "pdp",	"hover",       "dwell",
						 "scroll", "search", "cart_add", "cart_remove", "purchase" };

/* Relative traffic per hour of the day (UTC taken as store time). */
static const double hour_w[24] = { 0.30, 0.20, 0.15, 0.10, 0.10, 0.15, 0.30, 0.60, 0.90, 1.00, 1.10, 1.20,
				   1.40, 1.30, 1.10, 1.00, 1.00, 1.10, 1.30, 1.60, 1.80, 1.70, 1.20, 0.60 };

struct gen_opt {
	const char *out;
	uint32_t users, items, days, visitors;
	uint64_t seed;
	int quiet;
};

struct ev {
	uint64_t ts;
	uint32_t seq;	/* generation order: the tie-break, keeps sorting stable */
	uint32_t user;	/* 0 anonymous, else index + 1 */
	uint32_t sess;
	uint32_t item;	/* GEN_NO_ITEM: none */
	uint32_t value; /* search: category | (brand + 1) << 8 */
	uint8_t type;
};

struct profile {
	uint8_t ncat;
	uint8_t cat[3];
	double cat_w[3];
	uint8_t tier;
	uint8_t nbrand;
	uint16_t brand[4];
	double rate; /* mean sessions per day */
};

struct gen_stats {
	uint64_t sessions, anon_sessions, pivot, explore, search, cart, purchase, cart_remove;
	uint64_t events, ev[EV_COUNT];
	uint64_t multi_day_users, active_users;
};

struct gen_ctx {
	struct gen_opt opt;
	struct gen_store st;
	struct ev *ev;
	size_t nev, cap;
	uint32_t seq;
	uint32_t next_sess;
	uint64_t *last_end; /* per user: end of the last session, ms */
	uint8_t *days_active;
	struct out out;
	struct gen_stats stats;
	int oom;
};

struct sess {
	struct gen_ctx *g;
	struct gen_rng *r;
	const struct profile *p; /* NULL: anonymous */
	uint32_t user, id;
	uint64_t t;
	uint32_t cat, tier;
	int exploring;
	uint32_t cart[MAX_CART], cart_qty[MAX_CART], ncart;
	uint32_t prev;
	uint32_t pending_brand; /* after a search naming a brand */
	int after_cart;	/* steps left in which complements are favoured */
	int carted, removed;
};

static void emit(struct sess *s, int type, uint64_t ts, uint32_t item, uint32_t value)
{
	struct gen_ctx *g = s->g;
	struct ev *e;

	if (g->nev == g->cap) {
		size_t ncap = g->cap ? g->cap * 2 : 1 << 16;
		struct ev *n = realloc(g->ev, ncap * sizeof(*n));
		if (!n) {
			g->oom = 1;
			return;
		}
		g->ev = n;
		g->cap = ncap;
	}
	e = &g->ev[g->nev++];
	e->ts = ts;
	e->seq = g->seq++;
	e->user = s->user;
	e->sess = s->id;
	e->item = item;
	e->value = value;
	e->type = (uint8_t)type;
	g->stats.ev[type]++;
	g->stats.events++;
}

/* Functions, not WF_MIN/WF_MAX: those evaluate an argument twice, which
 * would draw a random number twice. */
static double clampd(double x, double lo, double hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

/* ---- shoppers ---- */

static uint32_t pick_cat(const struct gen_store *st, struct gen_rng *r)
{
	return gen_pick_cdf(r, st->cat_cdf, st->ncats);
}

static int has_cat(const struct profile *p, uint32_t c)
{
	for (int i = 0; i < p->ncat; i++)
		if (p->cat[i] == c)
			return 1;
	return 0;
}

/* A user's lasting taste, the same every day: derived from (seed, user). */
static void user_profile(const struct gen_ctx *g, uint32_t u, struct profile *p)
{
	const struct gen_store *st = &g->st;
	static const double w[3] = { 0.55, 0.30, 0.15 };
	struct gen_rng r;
	double x;

	gen_rng_seed(&r, gen_mix(g->opt.seed, 0x5e7, u));
	memset(p, 0, sizeof(*p));
	p->ncat = (uint8_t)(gen_chance(&r, 0.5) ? 2 : 3);
	p->cat[0] = (uint8_t)pick_cat(st, &r);
	for (int i = 1; i < p->ncat; i++) {
		uint32_t c;
		do {
			if (gen_chance(&r, 0.6)) {
				/* Same department: a coherent wardrobe or kitchen. */
				uint32_t d = st->cats[p->cat[0]].dept;
				do
					c = gen_below(&r, st->ncats);
				while (st->cats[c].dept != d);
			} else {
				c = pick_cat(st, &r);
			}
		} while (has_cat(p, c) && gen_chance(&r, 0.98));
		p->cat[i] = (uint8_t)c;
	}
	for (int i = 0; i < p->ncat; i++)
		p->cat_w[i] = w[i];
	x = gen_unif(&r);
	p->tier = x < 0.35 ? 0 : x < 0.8 ? 1 : 2;
	p->nbrand = (uint8_t)(2 + gen_below(&r, 3));
	for (int i = 0; i < p->nbrand; i++)
		p->brand[i] = (uint16_t)gen_pick_brand(st, &r, st->cats[p->cat[i % p->ncat]].dept, p->tier);
	/* Heavy-tailed visit rate: many occasional shoppers, a few regulars. */
	p->rate = clampd(gen_lognormal(&r, 0.16, 0.9), 0.0, 3.0);
}

static int fav_brand(const struct profile *p, uint32_t b)
{
	for (int i = 0; p && i < p->nbrand; i++)
		if (p->brand[i] == b)
			return 1;
	return 0;
}

/* ---- sessions ---- */

static uint32_t other_tier(struct gen_rng *r, uint32_t t)
{
	return t == 1 ? (gen_chance(r, 0.5) ? 0 : 2) : 1;
}

static uint32_t pick_step_item(struct sess *s)
{
	const struct gen_store *st = &s->g->st;
	struct gen_rng *r = s->r;
	uint32_t it;

	if (s->pending_brand != GEN_NO_ITEM) {
		it = gen_pick_brand_item(st, r, s->cat, s->pending_brand);
		if (!gen_chance(r, 0.7))
			s->pending_brand = GEN_NO_ITEM;
		if (it != GEN_NO_ITEM)
			return it;
	}
	if (s->ncart && gen_chance(r, s->after_cart > 0 ? 0.5 : 0.12)) {
		const struct gen_item *ci = &st->items[s->cart[gen_below(r, s->ncart)]];
		const struct gen_cat *c = &st->cats[ci->cat];
		if (c->ncomp)
			return gen_pick_item(st, r, c->comp[gen_below(r, c->ncomp)], ci->tier);
	}
	if (s->prev != GEN_NO_ITEM && gen_chance(r, 0.35)) {
		it = st->items[s->prev].nb[gen_below(r, GEN_NEIGHBOURS - 1)];
		if (it != GEN_NO_ITEM)
			return it;
	}
	if (s->p && !s->exploring && gen_chance(r, 0.25)) {
		it = gen_pick_brand_item(st, r, s->cat, s->p->brand[gen_below(r, s->p->nbrand)]);
		if (it != GEN_NO_ITEM)
			return it;
	}
	if (gen_chance(r, 0.07)) /* noise: something unrelated caught the eye */
		return gen_pick_item(st, r, pick_cat(st, r), gen_below(r, GEN_TIERS));
	return gen_pick_item(st, r, s->cat, s->tier);
}

static void search(struct sess *s)
{
	const struct gen_store *st = &s->g->st;
	struct gen_rng *r = s->r;
	uint32_t b = GEN_NO_ITEM;

	if (gen_chance(r, 0.6)) {
		b = GEN_NO_ITEM;
		for (int i = 0; s->p && i < s->p->nbrand; i++)
			if (st->brands[s->p->brand[i]].dept == st->cats[s->cat].dept && gen_chance(r, 0.6))
				b = s->p->brand[i];
		if (b == GEN_NO_ITEM)
			b = gen_pick_brand(st, r, st->cats[s->cat].dept, (int)s->tier);
	}
	emit(s, EV_SEARCH, s->t, GEN_NO_ITEM, s->cat | ((b == GEN_NO_ITEM ? 0 : b + 1) << 8));
	s->pending_brand = b;
	s->t += (uint64_t)gen_range(r, 1500, 6000);
}

static double match(const struct sess *s, uint32_t item)
{
	const struct gen_item *it = &s->g->st.items[item];
	double m = 0;

	if (it->cat == s->cat)
		m += 0.5;
	if (it->tier == s->tier)
		m += 0.3;
	if (fav_brand(s->p, it->brand))
		m += 0.5;
	return m;
}

/* One item shown to the shopper and what they did with it. */
static void step(struct sess *s)
{
	struct gen_rng *r = s->r;
	uint32_t item = pick_step_item(s);
	double m = match(s, item);
	uint64_t t = s->t, end = t;

	if (s->ncart && gen_chance(r, 0.025)) {
		uint32_t k = gen_below(r, s->ncart);
		emit(s, EV_CART_REMOVE, t, s->cart[k], 0);
		s->cart[k] = s->cart[s->ncart - 1];
		s->cart_qty[k] = s->cart_qty[s->ncart - 1];
		s->ncart--;
		s->removed = 1;
		t += (uint64_t)gen_range(r, 1000, 5000);
	}
	emit(s, EV_VIEW, t, item, 0);
	end = t;
	if (gen_chance(r, 0.30 + 0.2 * m)) {
		end = t + (uint64_t)gen_range(r, 600, 4000);
		emit(s, EV_HOVER, end, item, 0);
	}
	if (gen_chance(r, 0.15 + 0.25 * m)) {
		uint64_t click = end + (uint64_t)gen_range(r, 800, 8000);
		uint64_t pdp = click + (uint64_t)gen_range(r, 150, 900);
		uint64_t dwell = (uint64_t)clampd(gen_lognormal(r, 9000.0 * (1.0 + m), 0.75), 400.0, 900000.0);

		emit(s, EV_CLICK, click, item, 0);
		emit(s, EV_PDP, pdp, item, 0);
		if (gen_chance(r, 0.65)) {
			uint32_t depth = (uint32_t)clampd(25.0 + 45.0 * m + 20.0 * gen_normal(r), 0.0, 100.0);
			uint64_t at = (uint64_t)gen_range(r, 1500, 15000);
			emit(s, EV_SCROLL, pdp + WF_MIN(dwell / 2, at), item, depth);
		}
		emit(s, EV_DWELL, pdp + dwell, item, (uint32_t)dwell);
		end = pdp + dwell;
		if (gen_chance(r, 0.02 + 0.05 * m)) {
			uint32_t q = gen_chance(r, 0.85) ? 1 : 2 + gen_below(r, 2);
			end += (uint64_t)gen_range(r, 500, 4000);
			emit(s, EV_CART_ADD, end, item, q);
			s->carted = 1;
			if (s->ncart < MAX_CART) {
				s->cart[s->ncart] = item;
				s->cart_qty[s->ncart++] = q;
			}
			s->after_cart = 3;
		}
	}
	if (s->after_cart > 0)
		s->after_cart--;
	s->prev = item;
	s->t = end + (uint64_t)clampd(gen_lognormal(r, 18000.0, 0.8), 2000.0, 600000.0);
}

static void pivot(struct sess *s)
{
	const struct gen_store *st = &s->g->st;
	struct gen_rng *r = s->r;
	uint32_t c = s->cat;

	while (c == s->cat) {
		if (s->p && !s->exploring && gen_chance(r, 0.4))
			c = s->p->cat[gen_below(r, s->p->ncat)];
		else if (gen_chance(r, 0.5)) {
			uint32_t d = st->cats[s->cat].dept;
			do
				c = gen_below(r, st->ncats);
			while (st->cats[c].dept != d && gen_chance(r, 0.97));
		} else {
			c = pick_cat(st, r);
		}
	}
	s->cat = c;
	if (gen_chance(r, 0.3))
		s->tier = other_tier(r, s->tier);
	s->prev = GEN_NO_ITEM;
	s->pending_brand = GEN_NO_ITEM;
	if (gen_chance(r, 0.4))
		search(s);
}

/* Run one session from start_ms; returns the time of its last event. */
static uint64_t session(struct gen_ctx *g, struct gen_rng *r, const struct profile *p, uint32_t user,
			uint64_t start_ms)
{
	struct sess s = { .g = g, .r = r, .p = p, .user = user, .id = g->next_sess++, .t = start_ms,
			  .prev = GEN_NO_ITEM, .pending_brand = GEN_NO_ITEM };
	uint32_t len, pivot_at = UINT32_MAX;
	uint64_t last;

	if (p) {
		s.exploring = gen_chance(r, 0.15);
		if (s.exploring) {
			do
				s.cat = pick_cat(&g->st, r);
			while (has_cat(p, s.cat));
			s.tier = gen_below(r, GEN_TIERS);
		} else {
			double u = gen_unif(r);
			int i = 0;
			while (i < p->ncat - 1 && u >= p->cat_w[i])
				u -= p->cat_w[i++];
			s.cat = p->cat[i];
			s.tier = gen_chance(r, 0.8) ? p->tier : other_tier(r, p->tier);
		}
		len = 1 + (uint32_t)(-log(1.0 - gen_unif(r)) * 7.0);
	} else {
		double x = gen_unif(r);
		s.cat = pick_cat(&g->st, r);
		s.tier = x < 0.35 ? 0 : x < 0.8 ? 1 : 2;
		len = 1 + (uint32_t)(-log(1.0 - gen_unif(r)) * 5.0);
	}
	len = WF_MIN(len, 60u);
	/* About 18 % of sessions change intent midway; such a visit is long
	 * enough to show both halves. */
	if (gen_chance(r, 0.18)) {
		uint32_t min_len = 5 + gen_below(r, 4);
		len = WF_MAX(len, min_len);
		pivot_at = (uint32_t)(len * (0.35 + 0.3 * gen_unif(r)));
		pivot_at = WF_MAX(pivot_at, 2u);
	}
	if (gen_chance(r, p ? 0.22 : 0.3)) {
		search(&s);
		g->stats.search++;
	}
	for (uint32_t i = 0; i < len && !g->oom; i++) {
		if (i == pivot_at)
			pivot(&s);
		step(&s);
	}
	last = s.t;
	if (s.ncart && gen_chance(r, p ? 0.45 : 0.35)) {
		last += (uint64_t)gen_range(r, 20000, 180000);
		for (uint32_t k = 0; k < s.ncart; k++)
			emit(&s, EV_PURCHASE, last, s.cart[k], s.cart_qty[k]);
		g->stats.purchase++;
	}
	g->stats.sessions++;
	g->stats.anon_sessions += p == NULL;
	g->stats.pivot += pivot_at != UINT32_MAX;
	g->stats.explore += (uint64_t)s.exploring;
	g->stats.cart += (uint64_t)s.carted;
	g->stats.cart_remove += (uint64_t)s.removed;
	return last;
}

static uint64_t time_of_day_ms(struct gen_rng *r, const double *hour_cdf)
{
	uint32_t h = gen_pick_cdf(r, hour_cdf, 24);
	return (uint64_t)h * 3600000ull + (uint64_t)(gen_unif(r) * 3600000.0);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void gen_day(struct gen_ctx *g, uint32_t d, const double *hour_cdf)
{
	uint64_t day0 = BASE_MS + (uint64_t)d * DAY_MS;
	/* Weekly seasonality: weekends busier. */
	double dayf = (d % 7 == 5 || d % 7 == 6) ? 1.25 : 1.0;
	struct gen_rng r;
	uint32_t nanon;

	for (uint32_t u = 0; u < g->opt.users && !g->oom; u++) {
		uint64_t starts[MAX_USER_SESSIONS];
		struct profile p;
		uint32_t k;
		int active = 0;

		user_profile(g, u, &p);
		gen_rng_seed(&r, gen_mix(g->opt.seed, (uint64_t)u + 1, (uint64_t)d + 1));
		k = gen_poisson(&r, p.rate * dayf); /* not inside WF_MIN: it evaluates twice */
		k = WF_MIN(k, (uint32_t)MAX_USER_SESSIONS);
		if (k == 0)
			continue;
		for (uint32_t i = 0; i < k; i++)
			starts[i] = day0 + time_of_day_ms(&r, hour_cdf);
		qsort(starts, k, sizeof(starts[0]), u64_cmp);
		for (uint32_t i = 0; i < k; i++) {
			uint64_t st = starts[i];
			/* More than 30 idle minutes between a shopper's sessions. */
			uint64_t earliest = g->last_end[u] ? g->last_end[u] + 31 * MIN_MS : 0;
			if (st < earliest)
				st = earliest + (uint64_t)gen_range(&r, 0, 40 * MIN_MS);
			if (st >= day0 + DAY_MS)
				break;
			g->last_end[u] = session(g, &r, &p, u + 1, st);
			active = 1;
		}
		if (active && g->days_active[u] < 255)
			g->days_active[u]++;
	}
	gen_rng_seed(&r, gen_mix(g->opt.seed, 0xa707, (uint64_t)d + 1));
	nanon = (uint32_t)(g->opt.visitors * dayf * (0.9 + 0.2 * gen_unif(&r)));
	for (uint32_t v = 0; v < nanon && !g->oom; v++)
		session(g, &r, NULL, 0, day0 + time_of_day_ms(&r, hour_cdf));
}

static int ev_cmp(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void write_event(struct gen_ctx *g, const struct ev *e)
{
	struct out *o = &g->out;

	out_u64(o, e->ts);
	out_ch(o, ',');
	if (e->user) {
		out_ch(o, 'u');
		out_u64w(o, e->user, 6);
	}
	out_str(o, ",s");
	out_u64w(o, (uint64_t)e->sess + 1, 8);
	out_ch(o, ',');
	out_str(o, ev_names[e->type]);
	out_ch(o, ',');
	if (e->item != GEN_NO_ITEM) {
		out_ch(o, 'i');
		out_u64w(o, (uint64_t)e->item + 1, 6);
	}
	out_ch(o, ',');
	switch (e->type) {
	case EV_DWELL:
	case EV_SCROLL:
	case EV_CART_ADD:
	case EV_PURCHASE:
		out_u64(o, e->value);
		break;
	case EV_SEARCH: {
		uint32_t b = e->value >> 8;
		out_str(o, g->st.cats[e->value & 0xff].word);
		if (b) {
			const char *n = g->st.brands[b - 1].name;
			out_ch(o, ' ');
			for (; *n; n++)
				out_ch(o, (char)(*n >= 'A' && *n <= 'Z' ? *n - 'A' + 'a' : *n));
		}
		break;
	}
	default:
		break;
	}
	out_ch(o, '\n');
	out_maybe_flush(o);
}

/* Sort the batch, write events before `until` (all if until == 0), carry
 * the rest (sessions past midnight) to the front, renumbered in order. */
static void flush_events(struct gen_ctx *g, uint64_t until)
{
	size_t i, keep = 0;

	if (g->nev > 1) /* qsort(NULL, 0) is undefined */
		qsort(g->ev, g->nev, sizeof(*g->ev), ev_cmp);
	for (i = 0; i < g->nev && (until == 0 || g->ev[i].ts < until); i++)
		write_event(g, &g->ev[i]);
	for (; i < g->nev; i++) {
		g->ev[keep] = g->ev[i];
		g->ev[keep].seq = (uint32_t)keep;
		keep++;
	}
	g->nev = keep;
	g->seq = (uint32_t)keep;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: weft-gen --out DIR [--users N] [--items M] [--days D] [--seed S] [--visitors V] [--quiet]\n"
		   "  --users N     returning shoppers (default 2000)\n"
		   "  --items M     catalog size (default 3000)\n"
		   "  --days D      days of history (default 14)\n"
		   "  --seed S      PRNG seed; same seed, same bytes (default 1)\n"
		   "  --visitors V  anonymous visitor sessions per day (default users/5)\n"
		   "  --quiet       no progress or summary on stderr\n");
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *ret)
{
	int64_t v;

	if (wf_parse_i64(s, strlen(s), &v) < 0 || v < min || v > max)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct gen_opt *o)
{
	static const struct option lo[] = { { "out", required_argument, NULL, 'o' },
					    { "users", required_argument, NULL, 'u' },
					    { "items", required_argument, NULL, 'i' },
					    { "days", required_argument, NULL, 'd' },
					    { "seed", required_argument, NULL, 's' },
					    { "visitors", required_argument, NULL, 'v' },
					    { "quiet", no_argument, NULL, 'q' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	int visitors_set = 0, ch;

	*o = (struct gen_opt){ .users = 2000, .items = 3000, .days = 14, .seed = 1 };
	while ((ch = getopt_long(argc, argv, "o:u:i:d:s:v:qh", lo, NULL)) != -1) {
		int r = 0;
		int64_t v;
		switch (ch) {
		case 'o':
			o->out = optarg;
			break;
		case 'u':
			r = parse_u32(optarg, 0, 50000000, &o->users);
			break;
		case 'i':
			r = parse_u32(optarg, 50, 10000000, &o->items);
			break;
		case 'd':
			r = parse_u32(optarg, 1, 3650, &o->days);
			break;
		case 'v':
			r = parse_u32(optarg, 0, 50000000, &o->visitors);
			visitors_set = 1;
			break;
		case 's':
			r = wf_parse_i64(optarg, strlen(optarg), &v);
			o->seed = (uint64_t)v;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
		if (r < 0) {
			wf_err("bad value for --%s: '%s'", lo[ch == 'o' ? 0 : ch == 'u' ? 1 : ch == 'i' ? 2 : ch == 'd' ? 3
							     : ch == 's' ? 4 : 5].name, optarg);
			return -EINVAL;
		}
	}
	if (!o->out || optind != argc) {
		usage(stderr);
		return -EINVAL;
	}
	if (!visitors_set)
		o->visitors = o->users / 5;
	return 0;
}

static void pct(const char *what, uint64_t n, uint64_t of)
{
	fprintf(stderr, "  %-28s %12llu  (%.1f %%)\n", what, (unsigned long long)n, of ? 100.0 * (double)n / (double)of : 0.0);
}

static void summary(const struct gen_ctx *g, uint64_t inv_rows, uint64_t inv_soldout, double secs)
{
	const struct gen_stats *s = &g->stats;

	fprintf(stderr, "weft-gen: wrote %s/{events,catalog,inventory}.csv in %.1f s (seed %llu)\n", g->opt.out, secs,
		(unsigned long long)g->opt.seed);
	fprintf(stderr, "  catalog: %u items, %u categories, %u brands; inventory: %llu rows, %llu items sold out\n",
		g->st.nitems, g->st.ncats, g->st.nbrands, (unsigned long long)inv_rows, (unsigned long long)inv_soldout);
	fprintf(stderr, "  users: %u, active %llu, active on 2+ days %llu\n", g->opt.users,
		(unsigned long long)s->active_users, (unsigned long long)s->multi_day_users);
	fprintf(stderr, "  sessions: %llu over %u days\n", (unsigned long long)s->sessions, g->opt.days);
	pct("anonymous", s->anon_sessions, s->sessions);
	pct("exploring a new category", s->explore, s->sessions);
	pct("with a pivot", s->pivot, s->sessions);
	pct("with a search", s->search, s->sessions);
	pct("with a cart_add", s->cart, s->sessions);
	pct("with a cart_remove", s->cart_remove, s->sessions);
	pct("with a purchase", s->purchase, s->sessions);
	fprintf(stderr, "  events: %llu\n", (unsigned long long)s->events);
	for (int t = 0; t < EV_COUNT; t++)
		pct(ev_names[t], s->ev[t], s->events);
}

int main(int argc, char **argv)
{
	struct gen_ctx g = { 0 };
	double hour_cdf[24], acc = 0;
	uint64_t t0 = wf_now_ns(), inv_rows = 0, inv_soldout = 0;
	int tty = isatty(STDERR_FILENO), r;
	char path[4096];

	wf_log_init("weft-gen");
	if (parse_args(argc, argv, &g.opt) < 0)
		return 2;
	if (mkdir(g.opt.out, 0755) < 0 && errno != EEXIST) {
		wf_err("mkdir(%s) failed: %s", g.opt.out, strerror(errno));
		return 1;
	}
	for (int h = 0; h < 24; h++) {
		acc += hour_w[h];
		hour_cdf[h] = acc;
	}
	if ((r = gen_store_build(&g.st, g.opt.seed, g.opt.items)) < 0) {
		wf_err("building the catalog failed: %s", strerror(-r));
		return 1;
	}
	if ((r = gen_write_catalog(&g.st, g.opt.out)) < 0 ||
	    (r = gen_write_inventory(&g.st, g.opt.out, &inv_rows, &inv_soldout)) < 0) {
		wf_err("writing the catalog or inventory in %s failed: %s", g.opt.out, strerror(-r));
		goto fail;
	}
	g.last_end = calloc(WF_MAX(g.opt.users, 1u), sizeof(*g.last_end));
	g.days_active = calloc(WF_MAX(g.opt.users, 1u), 1);
	snprintf(path, sizeof(path), "%s/events.csv", g.opt.out);
	if (!g.last_end || !g.days_active) {
		r = -ENOMEM;
		wf_err("out of memory for %u users", g.opt.users);
		goto fail;
	}
	if ((r = out_open(&g.out, path)) < 0) {
		wf_err("open(%s) failed: %s", path, strerror(-r));
		goto fail;
	}
	out_str(&g.out, "ts,user_id,session_id,event,item_id,value\n");
	for (uint32_t d = 0; d < g.opt.days; d++) {
		gen_day(&g, d, hour_cdf);
		if (g.oom) {
			r = -ENOMEM;
			wf_err("out of memory generating day %u", d);
			goto fail;
		}
		flush_events(&g, d + 1 < g.opt.days ? BASE_MS + (uint64_t)(d + 1) * DAY_MS : 0);
		if (!g.opt.quiet)
			fprintf(stderr, "%sweft-gen: day %u/%u (%u %%), %llu events%s", tty ? "\r" : "", d + 1,
				g.opt.days, (d + 1) * 100 / g.opt.days, (unsigned long long)g.stats.events,
				tty && d + 1 < g.opt.days ? "" : "\n");
	}
	if ((r = out_close(&g.out)) < 0) {
		wf_err("writing %s failed: %s", path, strerror(-r));
		goto fail;
	}
	for (uint32_t u = 0; u < g.opt.users; u++) {
		g.stats.active_users += g.days_active[u] > 0;
		g.stats.multi_day_users += g.days_active[u] > 1;
	}
	if (!g.opt.quiet)
		summary(&g, inv_rows, inv_soldout, (double)(wf_now_ns() - t0) / 1e9);
	r = 0;
fail:
	if (g.out.f)
		(void)out_close(&g.out);
	free(g.ev);
	free(g.last_end);
	free(g.days_active);
	gen_store_free(&g.st);
	return r < 0 ? 1 : 0;
}
