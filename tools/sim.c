/*
 * sim.c - weft-sim: simulated shoppers browse a weft-gen store through a
 * running appliance's client socket (DIR/weft.sock, hiredis), look at the
 * recommendations weft returns and click, cart and buy with probabilities
 * that depend on how well the shown items match their current intent. The
 * truth is known: each shopper's intent, the chance of a click on every
 * list shown (a cascade over positions), and so the expected CTR of what
 * weft served. Standalone program; links libweft (csv, util) only.
 *
 * Shopper model (docs/EXPERIMENTS.md, "The simulator"):
 *   taste   returning: the categories and brands of their history in
 *           events.csv; new (anonymous): two categories drawn by size
 *   visit   an intent (a taste category, 15 % a random one; half the time
 *           a favourite brand); the intent drifts: before each later page
 *           view, 12 % it moves (half to another taste category, half to
 *           any category)
 *   page    the first: EVENT view of a landing item, RECS PAGE home; then
 *           either the item clicked on the last page (EVENT pdp on the
 *           shown item, maybe cart_add) or one the shopper finds on their
 *           own (EVENT view + dwell, maybe cart_add), then RECS PAGE pdp
 *           ANCHOR item
 *   click   cascade: position i is examined with 1/(1+i)^0.6 and clicked
 *           with 0.03 * match; match 1 for the intent category (+0.5 for
 *           a favourite brand), 0.25 another taste category, 0.04 else,
 *           x0.3 for an item already seen in the visit
 *   cart    after a click 0.3 * min(match, 1); on their own 0.01
 *   buy     at the end of a visit with a cart, 50 %: every carted item,
 *           EVENT purchase item qty 1 value PRICE (the catalog's price)
 * Every shopper draws from their own stream seeded by (--seed, shopper):
 * the same seed and the same replies give the same actions.
 */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/exp.h"
#include "lib/proto.h"
#include "lib/util.h"
#include "tools/rng.h"
#include "tools/sim.h"

#define SIM_MAXK 50
#define SIM_SEEN 32
#define SIM_CART 16
#define SIM_OUT 8 /* commands one shopper sends in one tick */

struct sim_opts {
	const char *dir, *store, *units_out, *tag, *experiment;
	uint64_t shoppers, pageviews, seed;
	double rate, returning;
	uint32_t concurrency, k;
	int quiet;
};

/* The truth and the outcomes of one unit (a returning user, or the
 * session of an anonymous visit). */
struct sim_unit {
	uint32_t shopper;
	uint32_t returning;
	int arm; /* of its first exposure under the experiment; -1 none */
	double exposures, exp_clicks, clicks, carts, purchases, converted, revenue;
};

struct shopper {
	struct gen_rng rng;
	uint32_t id;
	uint32_t user; /* index into the store's users, UINT32_MAX: anonymous */
	uint32_t taste[SIM_TASTE], tbrand[SIM_TASTE];
	double tw[SIM_TASTE];
	uint64_t budget; /* page views left */
	uint32_t visit, pv_left, npv;
	char sid[64];
	const char *uid;
	uint32_t unit;   /* index into units */
	uint32_t intent, ibrand;
	uint32_t click, cur; /* item clicked on the last page (UINT32_MAX: none) */
	int cart_click;
	uint32_t seen[SIM_SEEN], nseen;
	uint32_t cart[SIM_CART], ncart;
	int checkout;    /* the visit ended: buy next tick (or not) */
	/* the replies to read for this tick: kinds in order */
	uint8_t kinds[SIM_OUT];
	uint32_t nkinds;
};

enum { R_EVENT = 1, R_RECS };

struct sim_stats {
	uint64_t visits, pageviews, recs, events, clicks, carts, purchases, buying_visits;
	uint64_t errors, returning, anonymous;
	double revenue, exp_clicks;
};

/* The truth by arm, when an experiment runs (lib/exp's assignment). */
struct sim_arm {
	double exposures, exp_clicks, clicks, units, converted, revenue;
};

struct sim {
	struct sim_opts o;
	struct wf_exp_set *exps;
	const struct wf_exp *exp; /* the experiment whose truth is printed */
	struct sim_arm arm[WF_EXP_ARMS_MAX];
	struct sim_store st;
	redisContext *c;
	struct sim_unit *units;
	uint32_t nunits, capunits;
	uint32_t *perm; /* returning users in a seeded order */
	struct sim_stats s;
	char kbuf[16];
	char first_err[256];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: weft-sim --dir DIR --store STORE_DIR --shoppers N [--pageviews M] [--seed S]\n"
		"                [--rate R] [--concurrency C] [--returning F] [--k K] [--tag T]\n"
		"                [--units-out FILE] [--experiment NAME] [--quiet]\n"
		"Simulated shoppers browse the weft-gen store STORE_DIR through DIR/weft.sock.\n"
		"  --pageviews M     page views in all (default 20 per shopper)\n"
		"  --seed S          the shoppers' random streams (default 1)\n"
		"  --rate R          page views per second at most (default 0: as fast as weft answers)\n"
		"  --concurrency C   shoppers browsing at once, pipelined (default 64)\n"
		"  --returning F     share of shoppers who are returning users of the store (0.7)\n"
		"  --k K             recommendations asked per page (default 10)\n"
		"  --tag T           prefix of the session ids (default sim<seed>)\n"
		"  --units-out FILE  per unit: exposures, the expected clicks (the truth), outcomes\n"
		"  --experiment NAME the experiment in DIR/experiments.conf whose truth to print per arm\n"
		"                    (default: the one running, if one is)\n");
}

static int parse_opts(int argc, char **argv, struct sim_opts *o)
{
	static const struct option lo[] = {
		{ "dir", 1, 0, 'd' }, { "store", 1, 0, 's' }, { "shoppers", 1, 0, 'n' },
		{ "pageviews", 1, 0, 'm' }, { "seed", 1, 0, 'S' }, { "rate", 1, 0, 'r' },
		{ "concurrency", 1, 0, 'c' }, { "returning", 1, 0, 'R' }, { "k", 1, 0, 'k' },
		{ "tag", 1, 0, 't' }, { "units-out", 1, 0, 'u' }, { "quiet", 0, 0, 'q' },
		{ "experiment", 1, 0, 'e' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 }
	};
	int ch;

	*o = (struct sim_opts){ .seed = 1, .concurrency = 64, .returning = 0.7, .k = 10 };
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *end = NULL;

		errno = 0;
		switch (ch) {
		case 'd': o->dir = optarg; break;
		case 's': o->store = optarg; break;
		case 'n': o->shoppers = strtoull(optarg, &end, 10); break;
		case 'm': o->pageviews = strtoull(optarg, &end, 10); break;
		case 'S': o->seed = strtoull(optarg, &end, 10); break;
		case 'r': o->rate = strtod(optarg, &end); break;
		case 'c': o->concurrency = (uint32_t)strtoul(optarg, &end, 10); break;
		case 'R': o->returning = strtod(optarg, &end); break;
		case 'k': o->k = (uint32_t)strtoul(optarg, &end, 10); break;
		case 't': o->tag = optarg; break;
		case 'u': o->units_out = optarg; break;
		case 'e': o->experiment = optarg; break;
		case 'q': o->quiet = 1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
		if (end && (*end || errno)) {
			fprintf(stderr, "weft-sim: bad number '%s'\n", optarg);
			return -1;
		}
	}
	if (!o->dir || !o->store || !o->shoppers) {
		fprintf(stderr, "weft-sim: --dir, --store and --shoppers are required\n");
		usage(stderr);
		return -1;
	}
	if (o->k == 0 || o->k > SIM_MAXK || o->concurrency == 0 || o->rate < 0 ||
	    !(o->returning >= 0 && o->returning <= 1) || o->shoppers > UINT32_MAX) {
		fprintf(stderr, "weft-sim: --k is 1..%d, --concurrency > 0, --rate >= 0, "
				"--returning in [0, 1]\n", SIM_MAXK);
		return -1;
	}
	if (!o->pageviews)
		o->pageviews = 20 * o->shoppers;
	return 0;
}

/* ---- the shopper model ---- */

static uint32_t pick_cat_by_size(struct sim *S, struct gen_rng *r)
{
	uint32_t x = gen_below(r, S->st.nitems);

	return S->st.items[x].cat;
}

/* An item of category c the shopper finds on their own: by popularity,
 * a favourite brand preferred when they have one. */
static uint32_t nav_pick(struct sim *S, struct shopper *sh, uint32_t c)
{
	const struct sim_cat *ct = &S->st.cats[c];
	uint32_t it = UINT32_MAX;

	for (int tries = 0; tries < 8; tries++) {
		double x = gen_unif(&sh->rng) * ct->cdf[ct->n - 1];
		uint32_t lo = 0, hi = ct->n - 1;

		while (lo < hi) {
			uint32_t mid = (lo + hi) / 2;

			if (ct->cdf[mid] > x)
				hi = mid;
			else
				lo = mid + 1;
		}
		it = ct->items[lo];
		if (sh->ibrand == UINT32_MAX || S->st.items[it].brand == sh->ibrand)
			break;
	}
	return it;
}

static int seen(const struct shopper *sh, uint32_t it)
{
	for (uint32_t i = 0; i < sh->nseen && i < SIM_SEEN; i++)
		if (sh->seen[i] == it)
			return 1;
	return 0;
}

static void see(struct shopper *sh, uint32_t it)
{
	sh->seen[sh->nseen++ % SIM_SEEN] = it;
}

/* How well item it matches the shopper's intent now. */
static double match(const struct sim *S, const struct shopper *sh, uint32_t it)
{
	const struct sim_item *x = &S->st.items[it];
	double m = 0.04;

	if (x->cat == sh->intent) {
		m = 1.0;
		for (int i = 0; i < SIM_TASTE; i++)
			if (x->brand == sh->tbrand[i] || x->brand == sh->ibrand) {
				m = 1.5;
				break;
			}
	} else {
		for (int i = 0; i < SIM_TASTE; i++)
			if (x->cat == sh->taste[i] && sh->tw[i] > 0)
				m = 0.25;
	}
	return seen(sh, it) ? 0.3 * m : m;
}

static uint32_t taste_pick(struct shopper *sh)
{
	double tot = 0, x;

	for (int i = 0; i < SIM_TASTE; i++)
		tot += sh->tw[i];
	x = gen_unif(&sh->rng) * tot;
	for (int i = 0; i < SIM_TASTE; i++) {
		if (x < sh->tw[i])
			return sh->taste[i];
		x -= sh->tw[i];
	}
	return sh->taste[0];
}

static void new_intent(struct sim *S, struct shopper *sh, int drift)
{
	double u = gen_unif(&sh->rng);

	if (drift ? u < 0.5 : u < 0.85)
		sh->intent = taste_pick(sh);
	else
		sh->intent = pick_cat_by_size(S, &sh->rng);
	sh->ibrand = UINT32_MAX;
	if (sh->tbrand[0] != UINT32_MAX && gen_unif(&sh->rng) < 0.5)
		sh->ibrand = sh->tbrand[gen_below(&sh->rng, sh->tbrand[1] == UINT32_MAX ? 1 : 2)];
}

static int unit_new(struct sim *S, struct shopper *sh)
{
	if (S->nunits == S->capunits) {
		uint32_t nc = S->capunits ? S->capunits * 2 : 4096;
		struct sim_unit *nu = realloc(S->units, nc * sizeof(*nu));

		if (!nu)
			return -ENOMEM;
		S->units = nu;
		S->capunits = nc;
	}
	memset(&S->units[S->nunits], 0, sizeof(S->units[0]));
	S->units[S->nunits].arm = -1;
	S->units[S->nunits].shopper = sh->id;
	S->units[S->nunits].returning = sh->user != UINT32_MAX;
	sh->unit = S->nunits++;
	return 0;
}

/* Shopper k: returning (a user of the store, in a seeded order) or new. */
static int shopper_init(struct sim *S, struct shopper *sh, uint32_t k, uint64_t budget)
{
	uint64_t nret = (uint64_t)(S->o.returning * S->o.shoppers + 0.5);

	memset(sh, 0, sizeof(*sh));
	gen_rng_seed(&sh->rng, gen_mix(S->o.seed, k, 0x5eed));
	sh->id = k;
	sh->budget = budget;
	sh->user = UINT32_MAX;
	sh->click = UINT32_MAX;
	if (k < nret && k < S->st.nusers)
		sh->user = S->perm[k]; /* each user at most once */
	if (sh->user != UINT32_MAX) {
		const struct sim_user *u = &S->st.users[sh->user];

		sh->uid = u->id;
		for (int i = 0; i < SIM_TASTE; i++) {
			sh->taste[i] = u->cat[i] == UINT32_MAX ? u->cat[0] : u->cat[i];
			sh->tw[i] = u->cat[i] == UINT32_MAX ? 0 : u->catn[i];
			sh->tbrand[i] = u->brand[i];
		}
		S->s.returning++;
		return unit_new(S, sh);
	}
	sh->uid = "-";
	sh->taste[0] = pick_cat_by_size(S, &sh->rng);
	sh->taste[1] = pick_cat_by_size(S, &sh->rng);
	sh->taste[2] = sh->taste[1];
	sh->tw[0] = 2;
	sh->tw[1] = 1;
	sh->tbrand[0] = sh->tbrand[1] = sh->tbrand[2] = UINT32_MAX;
	S->s.anonymous++;
	return 0; /* a unit per visit (its session) */
}

/* ---- talking to weft ---- */

static void cmd(struct sim *S, struct shopper *sh, int kind, int argc, const char **argv)
{
	size_t len[12];

	for (int i = 0; i < argc; i++)
		len[i] = strlen(argv[i]);
	redisAppendCommandArgv(S->c, argc, argv, len);
	if (sh->nkinds < SIM_OUT)
		sh->kinds[sh->nkinds++] = (uint8_t)kind;
	if (kind == R_EVENT)
		S->s.events++;
}

static void event(struct sim *S, struct shopper *sh, const char *type, uint32_t it,
		  const char *f1, const char *v1, const char *f2, const char *v2)
{
	const char *av[9] = { "EVENT", sh->sid, sh->uid, type, S->st.items[it].id, f1, v1, f2, v2 };

	cmd(S, sh, R_EVENT, f2 ? 9 : f1 ? 7 : 5, av);
}

static void cart_add(struct sim *S, struct shopper *sh, uint32_t it)
{
	event(S, sh, "cart_add", it, "qty", "1", NULL, NULL);
	if (sh->ncart < SIM_CART)
		sh->cart[sh->ncart++] = it;
	S->s.carts++;
}

/* The visit is over: the last page's click if there was one, then buy
 * the cart (50 %). */
static void checkout(struct sim *S, struct shopper *sh)
{
	struct sim_unit *u = &S->units[sh->unit];

	if (sh->click != UINT32_MAX) { /* the last page's click: its pdp, no more lists */
		event(S, sh, "pdp", sh->click, NULL, NULL, NULL, NULL);
		if (sh->cart_click)
			cart_add(S, sh, sh->click);
		u->carts += sh->cart_click;
		sh->click = UINT32_MAX;
		sh->cart_click = 0;
	}

	if (sh->ncart && gen_unif(&sh->rng) < 0.5) {
		for (uint32_t i = 0; i < sh->ncart; i++) {
			char v[32];

			snprintf(v, sizeof(v), "%.2f", S->st.items[sh->cart[i]].price);
			event(S, sh, "purchase", sh->cart[i], "qty", "1", "value", v);
			u->purchases++;
			u->revenue += S->st.items[sh->cart[i]].price;
			S->s.revenue += S->st.items[sh->cart[i]].price;
			S->s.purchases++;
		}
		u->converted = 1;
		S->s.buying_visits++;
	}
	sh->ncart = 0;
	sh->checkout = 0;
}

/* A new visit: session id, intent, length. */
static int visit_start(struct sim *S, struct shopper *sh)
{
	uint32_t len = 1;

	while (len < 40 && gen_unif(&sh->rng) < 6.0 / 7)
		len++; /* geometric, mean 7 */
	sh->pv_left = len < sh->budget ? len : (uint32_t)sh->budget;
	sh->visit++;
	sh->npv = 0;
	sh->nseen = 0;
	sh->ncart = 0;
	sh->click = UINT32_MAX;
	snprintf(sh->sid, sizeof(sh->sid), "%s%llu-%u-%u", S->o.tag ? S->o.tag : "sim",
		 (unsigned long long)(S->o.tag ? 0 : S->o.seed), sh->id, sh->visit);
	new_intent(S, sh, 0);
	S->s.visits++;
	if (sh->user == UINT32_MAX)
		return unit_new(S, sh);
	return 0;
}

/* One page view's commands: the event(s), then RECS. */
static void pageview(struct sim *S, struct shopper *sh)
{
	const char *recs[8] = { "RECS", sh->sid, sh->uid, S->kbuf, "PAGE", "pdp", "ANCHOR", NULL };

	if (sh->npv == 0) {
		sh->cur = nav_pick(S, sh, sh->intent);
		event(S, sh, "view", sh->cur, NULL, NULL, NULL, NULL);
		recs[5] = "home";
		see(sh, sh->cur);
		cmd(S, sh, R_RECS, 6, recs);
	} else {
		if (gen_unif(&sh->rng) < 0.12)
			new_intent(S, sh, 1);
		if (sh->click != UINT32_MAX) {
			sh->cur = sh->click;
			event(S, sh, "pdp", sh->cur, NULL, NULL, NULL, NULL);
			if (sh->cart_click)
				cart_add(S, sh, sh->cur);
			S->units[sh->unit].carts += sh->cart_click;
		} else {
			char ms[16];

			sh->cur = nav_pick(S, sh, sh->intent);
			snprintf(ms, sizeof(ms), "%u", 3000 + gen_below(&sh->rng, 30000));
			event(S, sh, "view", sh->cur, NULL, NULL, NULL, NULL);
			event(S, sh, "dwell", sh->cur, "ms", ms, NULL, NULL);
			if (gen_unif(&sh->rng) < 0.01)
				cart_add(S, sh, sh->cur);
		}
		see(sh, sh->cur);
		recs[7] = S->st.items[sh->cur].id;
		cmd(S, sh, R_RECS, 8, recs);
	}
	sh->click = UINT32_MAX;
	sh->cart_click = 0;
	sh->npv++;
	sh->pv_left--;
	sh->budget--;
	S->s.pageviews++;
}

/* The arm this page's list was served under (lib/exp's assignment, as
 * the rankers compute it), or -1: no experiment, another page, outside. */
static int arm_of(const struct sim *S, const struct shopper *sh)
{
	char unit[WF_EXP_UNIT_MAX + 1];
	size_t len;

	if (!S->exp || !wf_exp_on_page(S->exp, sh->npv == 1 ? WF_PAGE_HOME : WF_PAGE_PDP))
		return -1;
	len = wf_exp_unit_of(S->exp, sh->sid, strlen(sh->sid), sh->uid, strlen(sh->uid), unit);
	return wf_exp_assign(S->exp, unit, len);
}

/* The shopper looks at the list: cascade over positions. */
static void look(struct sim *S, struct shopper *sh, const redisReply *r)
{
	struct sim_unit *u = &S->units[sh->unit];
	double none = 1;
	int clicked = 0, arm = arm_of(S, sh);

	S->s.recs++;
	u->exposures++;
	for (size_t i = 0; i < r->elements && i < SIM_MAXK; i++) {
		const redisReply *e = r->element[i];
		uint32_t it;
		double p;

		if (e->type != REDIS_REPLY_STRING)
			continue;
		it = sim_item_find(&S->st, e->str, e->len);
		if (it == UINT32_MAX)
			continue;
		p = 0.03 * match(S, sh, it) / pow(1.0 + i, 0.6);
		if (p > 0.9)
			p = 0.9;
		none *= 1 - p;
		if (!clicked && gen_unif(&sh->rng) < p) {
			double m = match(S, sh, it);

			clicked = 1;
			sh->click = it;
			sh->cart_click = gen_unif(&sh->rng) < 0.3 * (m < 1 ? m : 1);
		}
	}
	u->exp_clicks += 1 - none;
	S->s.exp_clicks += 1 - none;
	if (clicked) {
		u->clicks++;
		S->s.clicks++;
	}
	if (arm >= 0) {
		S->arm[arm].exposures++;
		S->arm[arm].exp_clicks += 1 - none;
		S->arm[arm].clicks += clicked;
		if (u->arm < 0)
			u->arm = arm;
	}
	if (sh->pv_left == 0)
		sh->checkout = 1; /* the visit ends after this page (and its click) */
}

static int read_replies(struct sim *S, struct shopper *sh)
{
	for (uint32_t i = 0; i < sh->nkinds; i++) {
		redisReply *r = NULL;

		if (redisGetReply(S->c, (void **)&r) != REDIS_OK || !r) {
			fprintf(stderr, "weft-sim: the connection failed: %s\n", S->c->errstr);
			return -EIO;
		}
		if (r->type == REDIS_REPLY_ERROR ||
		    (sh->kinds[i] == R_RECS && r->type != REDIS_REPLY_ARRAY) ||
		    (sh->kinds[i] == R_EVENT && r->type != REDIS_REPLY_INTEGER)) {
			if (!S->s.errors++)
				snprintf(S->first_err, sizeof(S->first_err), "%s",
					 r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply type");
		} else if (sh->kinds[i] == R_RECS) {
			look(S, sh, r);
		}
		freeReplyObject(r);
	}
	sh->nkinds = 0;
	return 0;
}

/* One step of a shopper: checkout, or a visit's next page view. Returns 1
 * when the shopper is done (nothing left to send). */
static int step(struct sim *S, struct shopper *sh)
{
	if (sh->checkout) {
		checkout(S, sh);
		if (sh->nkinds)
			return 0;
	}
	if (sh->budget == 0)
		return 1;
	if (sh->pv_left == 0 && visit_start(S, sh) < 0)
		return -ENOMEM;
	pageview(S, sh);
	return 0;
}

static double now_s(void)
{
	return wf_now_ns() / 1e9;
}

static void progress(const struct sim *S, double t0, int final)
{
	double dt = now_s() - t0;

	fprintf(stderr, "\rweft-sim: %llu/%llu page views, %llu clicks, %llu carts, %llu purchases, "
			"%.0f/s%s",
		(unsigned long long)S->s.pageviews, (unsigned long long)S->o.pageviews,
		(unsigned long long)S->s.clicks, (unsigned long long)S->s.carts,
		(unsigned long long)S->s.purchases, dt > 0 ? S->s.pageviews / dt : 0,
		final ? "\n" : "   ");
}

/* Run every shopper: C at a time, each tick one step of each active
 * shopper, pipelined on one connection, paced to --rate. */
static int run(struct sim *S, double *ret_secs)
{
	uint32_t C = S->o.concurrency < S->o.shoppers ? S->o.concurrency : (uint32_t)S->o.shoppers;
	struct shopper *act = calloc(C, sizeof(*act));
	uint64_t next = 0, per = S->o.pageviews / S->o.shoppers, extra = S->o.pageviews % S->o.shoppers;
	double t0 = now_s(), last = t0;
	uint32_t live = 0;
	int e = 0;

	if (!act)
		return -ENOMEM;
	for (uint32_t i = 0; i < C; i++, next++) {
		e = shopper_init(S, &act[i], (uint32_t)next, per + (next < extra));
		if (e < 0)
			goto out;
		live++;
	}
	while (live) {
		live = 0;
		for (uint32_t i = 0; i < C; i++) {
			int d = act[i].id == UINT32_MAX ? 1 : step(S, &act[i]);

			while (d == 1 && act[i].id != UINT32_MAX && next < S->o.shoppers) {
				e = shopper_init(S, &act[i], (uint32_t)next, per + (next < extra));
				next++;
				if (e < 0)
					goto out;
				d = step(S, &act[i]);
			}
			if (d < 0) {
				e = d;
				goto out;
			}
			if (d == 1)
				act[i].id = UINT32_MAX; /* nobody left to take this place */
			else
				live++;
		}
		for (uint32_t i = 0; i < C; i++)
			if (act[i].id != UINT32_MAX && (e = read_replies(S, &act[i])) < 0)
				goto out;
		if (S->o.rate > 0) {
			double ahead = S->s.pageviews / S->o.rate - (now_s() - t0);

			if (ahead > 0)
				usleep((useconds_t)(ahead * 1e6));
		}
		if (!S->o.quiet && now_s() - last >= 1) {
			last = now_s();
			progress(S, t0, 0);
		}
	}
out:
	*ret_secs = now_s() - t0;
	if (!S->o.quiet)
		progress(S, t0, 1);
	free(act);
	return e;
}

static int units_write(const struct sim *S, const char *path)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fprintf(f, "unit,shopper,returning,arm,exposures,expected_clicks,clicks,carts,purchases,"
		   "converted,revenue\n");
	for (uint32_t i = 0; i < S->nunits; i++) {
		const struct sim_unit *u = &S->units[i];

		fprintf(f, "%u,%u,%u,%s,%.0f,%.6f,%.0f,%.0f,%.0f,%.0f,%.2f\n", i, u->shopper,
			u->returning, u->arm >= 0 ? S->exp->arms[u->arm].name : "", u->exposures, u->exp_clicks, u->clicks, u->carts, u->purchases, u->converted,
			u->revenue);
	}
	return fclose(f) == 0 ? 0 : -errno;
}

/* The truth per arm: what the model expected of the lists each arm was
 * served, beside what the shoppers did. */
static void report_truth(const struct sim *S)
{
	const struct wf_exp *e = S->exp;
	struct sim_arm a[WF_EXP_ARMS_MAX];
	double ctr0 = NAN;

	memcpy(a, S->arm, sizeof(a));
	for (uint32_t i = 0; i < S->nunits; i++) {
		const struct sim_unit *u = &S->units[i];

		if (u->arm < 0)
			continue;
		a[u->arm].units++;
		a[u->arm].converted += u->converted;
		a[u->arm].revenue += u->revenue;
	}
	printf("  truth         experiment %s (unit %s), arms by lib/exp's assignment:\n", e->name,
	       wf_exp_unit_name(e->unit));
	printf("    %-14s %7s %9s %9s %9s %9s %9s\n", "arm", "units", "exposures", "exp. CTR",
	       "CTR", "conv", "rev/unit");
	for (uint32_t i = 0; i < e->narms; i++) {
		double ctr = a[i].exposures ? a[i].exp_clicks / a[i].exposures : NAN;

		printf("    %-14.14s %7.0f %9.0f %9.4f %9.4f %9.4f %9.2f\n", e->arms[i].name, a[i].units,
		       a[i].exposures, ctr, a[i].exposures ? a[i].clicks / a[i].exposures : NAN,
		       a[i].units ? a[i].converted / a[i].units : NAN,
		       a[i].units ? a[i].revenue / a[i].units : NAN);
		if (i == 0)
			ctr0 = ctr;
		else
			printf("    expected CTR lift of %s over %s: %+.2f %% (the truth the report "
			       "estimates)\n", e->arms[i].name, e->arms[0].name, 100 * (ctr / ctr0 - 1));
	}
}

static void report(const struct sim *S, double secs)
{
	const struct sim_stats *s = &S->s;
	double rec = s->recs ? (double)s->recs : 1;

	printf("weft-sim: seed %llu, %llu shoppers (%llu returning, %llu new), %llu visits\n",
	       (unsigned long long)S->o.seed, (unsigned long long)S->o.shoppers,
	       (unsigned long long)s->returning, (unsigned long long)s->anonymous,
	       (unsigned long long)s->visits);
	printf("  page views    %llu in %.1f s: %.0f/s%s\n", (unsigned long long)s->pageviews, secs,
	       secs > 0 ? s->pageviews / secs : 0, S->o.rate > 0 ? " (paced)" : "");
	printf("  requests      %llu RECS, %llu EVENTs, %llu errors%s%s\n", (unsigned long long)s->recs,
	       (unsigned long long)s->events, (unsigned long long)s->errors,
	       s->errors ? "; first: " : "", s->errors ? S->first_err : "");
	printf("  clicks        %llu: CTR %.4f per list (expected from the model: %.4f)\n",
	       (unsigned long long)s->clicks, s->clicks / rec, s->exp_clicks / rec);
	printf("  carts         %llu (%.4f per list)\n", (unsigned long long)s->carts, s->carts / rec);
	printf("  purchases     %llu items in %llu visits (%.2f %% of visits), revenue %.2f\n",
	       (unsigned long long)s->purchases, (unsigned long long)s->buying_visits,
	       s->visits ? 100.0 * s->buying_visits / s->visits : 0, s->revenue);
	printf("  units         %u (returning users, and anonymous sessions)\n", S->nunits);
	if (S->exp)
		report_truth(S);
}

/* The experiment to print the truth of: --experiment NAME, or the first
 * running one in DIR/experiments.conf. 0 (S->exp may stay NULL), or -1
 * with the error printed. */
static int exp_find(struct sim *S)
{
	char path[4096], err[256];
	int e;

	S->exps = calloc(1, sizeof(*S->exps));
	if (!S->exps)
		return -1;
	snprintf(path, sizeof(path), "%s/experiments.conf", S->o.dir);
	e = wf_exp_conf_load(path, S->exps, err, sizeof(err));
	if (e < 0) {
		fprintf(stderr, "weft-sim: cannot read %s: %s\n", path, e == -EINVAL ? err : strerror(-e));
		return -1;
	}
	for (uint32_t i = 0; i < S->exps->n && !S->exp; i++) {
		const struct wf_exp *x = &S->exps->exps[i];

		if (S->o.experiment ? strcmp(x->name, S->o.experiment) == 0 : x->state == WF_EXP_RUNNING)
			S->exp = x;
	}
	if (S->o.experiment && !S->exp) {
		fprintf(stderr, "weft-sim: no experiment '%s' in %s (weftctl experiment list)\n",
			S->o.experiment, path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sim S = { 0 };
	char err[512], path[4096];
	double secs = 0;
	int e, rc;

	if (parse_opts(argc, argv, &S.o) < 0)
		return 2;
	snprintf(S.kbuf, sizeof(S.kbuf), "%u", S.o.k);
	e = sim_store_load(&S.st, S.o.store, err, sizeof(err));
	if (e < 0) {
		fprintf(stderr, "weft-sim: %s\n", err);
		return 1;
	}
	S.perm = malloc((S.st.nusers ? S.st.nusers : 1) * sizeof(*S.perm));
	if (!S.perm) {
		fprintf(stderr, "weft-sim: out of memory\n");
		rc = 1;
		goto out;
	}
	{
		struct gen_rng r;

		gen_rng_seed(&r, gen_mix(S.o.seed, 0xfeed, 1));
		for (uint32_t i = 0; i < S.st.nusers; i++)
			S.perm[i] = i;
		for (uint32_t i = S.st.nusers; i > 1; i--) {
			uint32_t j = gen_below(&r, i), t = S.perm[i - 1];

			S.perm[i - 1] = S.perm[j];
			S.perm[j] = t;
		}
	}
	if (!S.o.quiet)
		fprintf(stderr, "weft-sim: store %s: %u items in %u categories, %u returning users\n",
			S.o.store, S.st.nitems, S.st.ncats, S.st.nusers);
	snprintf(path, sizeof(path), "%s/weft.sock", S.o.dir);
	S.c = redisConnectUnix(path);
	if (!S.c || S.c->err) {
		fprintf(stderr, "weft-sim: cannot connect to %s: %s (is weft running? weftctl up --dir %s)\n",
			path, S.c ? S.c->errstr : "out of memory", S.o.dir);
		rc = 1;
		goto out;
	}
	if (exp_find(&S) < 0) {
		rc = 2;
		goto out;
	}
	e = run(&S, &secs);
	if (e < 0)
		fprintf(stderr, "weft-sim: stopped early: %s\n", strerror(-e));
	report(&S, secs);
	if (S.o.units_out && (e = units_write(&S, S.o.units_out)) < 0)
		fprintf(stderr, "weft-sim: cannot write %s: %s\n", S.o.units_out, strerror(-e));
	rc = e < 0 || S.s.errors ? 1 : 0;
out: /* everything freed on every way out (LeakSanitizer checks the error paths too) */
	if (S.c)
		redisFree(S.c);
	sim_store_fini(&S.st);
	free(S.perm);
	free(S.units);
	free(S.exps);
	return rc;
}
