/*
 * exp_attr.c - an experiment's per-unit totals, and what each day added
 * to them, from the journal (see
 * exp_attr.h for the rules). One pass over the journal in LSN order with
 * a few hash tables keyed by 64-bit hashes. Linked into libweftexp
 * (weftctl, tests). Never logs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/exp_attr.h"
#include "lib/journal.h"
#include "lib/proto.h"
#include "lib/util.h"

/* u64 key (never 0) -> u32 value, open addressing, grown at half full. */
struct map {
	uint64_t *keys;
	uint32_t *vals;
	uint32_t mask, n;
};

static void map_fini(struct map *m)
{
	free(m->keys);
	free(m->vals);
}

static int map_grow(struct map *m)
{
	uint32_t cap = m->mask ? (m->mask + 1) * 2 : 1024;
	uint64_t *k = calloc(cap, sizeof(*k));
	uint32_t *v = calloc(cap, sizeof(*v));

	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	for (uint32_t i = 0; m->mask && i <= m->mask; i++) {
		if (!m->keys[i])
			continue;
		uint32_t j = (uint32_t)m->keys[i] & (cap - 1);
		while (k[j])
			j = (j + 1) & (cap - 1);
		k[j] = m->keys[i];
		v[j] = m->vals[i];
	}
	map_fini(m);
	m->keys = k;
	m->vals = v;
	m->mask = cap - 1;
	return 0;
}

/* The value slot of key, or NULL; with add, created (value UINT32_MAX)
 * when missing (NULL only when out of memory). */
static uint32_t *map_at(struct map *m, uint64_t key, int add)
{
	key |= 1;
	if (add && (!m->mask || m->n * 2 >= m->mask) && map_grow(m) < 0)
		return NULL;
	if (!m->mask)
		return NULL;
	uint32_t i = (uint32_t)key & m->mask;
	for (; m->keys[i]; i = (i + 1) & m->mask)
		if (m->keys[i] == key)
			return &m->vals[i];
	if (!add)
		return NULL;
	m->keys[i] = key;
	m->vals[i] = UINT32_MAX;
	m->n++;
	return &m->vals[i];
}

static uint64_t hash2(uint64_t a, const void *p, size_t len)
{
	uint64_t h = wf_hash64(p, len);
	return h ^ (a * 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
}

/* An exposed item of a unit: when last shown, what was already counted
 * for that showing. */
struct shown {
	uint64_t ms;
	uint8_t done; /* DONE_* */
};
enum { DONE_CLICK = 1, DONE_CART = 2, DONE_BUY = 4 };

struct attr {
	const struct wf_exp *e;
	struct wf_exp_unit *u;
	uint64_t *last_ms;     /* per unit: its latest exposure */
	uint64_t *user_key;    /* per unit: hash of its user id (unit user), else 0 */
	size_t *lastrec;       /* per unit: its latest record in days, SIZE_MAX none */
	size_t n, cap;
	struct wf_exp_unit_day *days; /* what each day added to each unit */
	size_t ndays, capdays;
	struct shown *shown;
	size_t nshown, capshown;
	struct map units, sessions, items, reqs, pre;
	double *pre_rev;       /* per pre entry */
	size_t npre, cappre;
	uint64_t end_ms;       /* outcomes after this are not counted */
	struct wf_exp_attr_stats st;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 1024;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, c * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

/* The record of what the day of ts adds to unit idx, or NULL when out of
 * memory. A day is whole days since the start; an outcome stamped before
 * its unit's first day (clocks of two shards) counts on that first day. */
static struct wf_exp_unit_day *day_rec(struct attr *a, uint32_t idx, uint64_t ts)
{
	uint64_t d = (ts - a->e->started_ms) / 86400000u;
	uint32_t day = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
	size_t k = a->lastrec[idx];

	if (day < a->u[idx].first_day)
		day = a->u[idx].first_day;
	if (k != SIZE_MAX && a->days[k].day == day)
		return &a->days[k];
	if (grow((void **)&a->days, &a->capdays, a->ndays + 1, sizeof(*a->days)) < 0)
		return NULL;
	a->lastrec[idx] = a->ndays;
	a->days[a->ndays] = (struct wf_exp_unit_day){ .unit = idx, .day = day };
	return &a->days[a->ndays++];
}

static int arg_is(const struct wf_journal_rec *r, uint32_t i, const char *s)
{
	return r->argl[i] == strlen(s) && memcmp(r->argv[i], s, r->argl[i]) == 0;
}

static int exposure(struct attr *a, const struct wf_journal_rec *r)
{
	const struct wf_exp *e = a->e;
	uint32_t arm = UINT32_MAX, *slot, idx;

	if (r->argc < 7 || !arg_is(r, 0, e->name) || r->ts_ms < e->started_ms ||
	    (e->stopped_ms && r->ts_ms > e->stopped_ms))
		return 0;
	for (uint32_t i = 0; i < e->narms; i++)
		if (arg_is(r, 1, e->arms[i].name))
			arm = i;
	if (arm == UINT32_MAX)
		return 0;
	/* A request redone by a restarted ranker: its shard and id again. */
	slot = map_at(&a->reqs, hash2(r->shard, r->argv[6], r->argl[6]), 1);
	if (!slot)
		return -ENOMEM;
	if (*slot != UINT32_MAX) {
		a->st.redone++;
		return 0;
	}
	*slot = 1;
	slot = map_at(&a->units, wf_hash64(r->argv[2], r->argl[2]), 1);
	if (!slot)
		return -ENOMEM;
	if (*slot == UINT32_MAX) {
		if (grow((void **)&a->u, &a->cap, a->n + 1, sizeof(*a->u)) < 0 ||
		    !(a->last_ms = realloc(a->last_ms, a->cap * sizeof(*a->last_ms))) ||
		    !(a->user_key = realloc(a->user_key, a->cap * sizeof(*a->user_key))) ||
		    !(a->lastrec = realloc(a->lastrec, a->cap * sizeof(*a->lastrec))))
			return -ENOMEM;
		*slot = (uint32_t)a->n;
		a->u[a->n] = (struct wf_exp_unit){ .arm = arm,
						   .first_day = (uint32_t)((r->ts_ms - e->started_ms) / 86400000u) };
		a->lastrec[a->n] = SIZE_MAX;
		a->user_key[a->n] = r->argl[2] > 2 && r->argv[2][0] == 'u'
					    ? wf_hash64(r->argv[2] + 2, r->argl[2] - 2) : 0;
		a->n++;
		if (!a->st.first_ms)
			a->st.first_ms = r->ts_ms;
	}
	idx = *slot;
	struct wf_exp_unit_day *d = day_rec(a, idx, r->ts_ms);
	if (!d)
		return -ENOMEM;
	d->exposures += 1;
	a->u[idx].exposures += 1;
	a->last_ms[idx] = r->ts_ms;
	/* The session's later events belong to this unit. */
	if (!(slot = map_at(&a->sessions, wf_hash64(r->argv[3], r->argl[3]), 1)))
		return -ENOMEM;
	*slot = idx;
	for (uint32_t i = 7; i < r->argc; i++) {
		if (!(slot = map_at(&a->items, hash2(idx, r->argv[i], r->argl[i]), 1)))
			return -ENOMEM;
		if (*slot == UINT32_MAX) {
			if (grow((void **)&a->shown, &a->capshown, a->nshown + 1, sizeof(*a->shown)) < 0)
				return -ENOMEM;
			*slot = (uint32_t)a->nshown++;
		}
		a->shown[*slot] = (struct shown){ .ms = r->ts_ms, .done = 0 };
	}
	a->st.exposures++;
	return 0;
}

/* A purchase's money: value, else price x qty. */
static double revenue(const struct wf_journal_rec *r)
{
	double value = 0, price = -1, qty = 1, v;

	for (uint32_t i = 4; i + 1 < r->argc; i += 2) {
		if (wf_parse_double(r->argv[i + 1], r->argl[i + 1], &v) < 0 || v < 0)
			continue;
		if (arg_is(r, i, "value"))
			return v;
		if (arg_is(r, i, "price"))
			price = v;
		else if (arg_is(r, i, "qty"))
			qty = v;
	}
	return price >= 0 ? price * qty : value;
}

/* Before the start: a user's history (CUPED). */
static int pre_event(struct attr *a, const struct wf_journal_rec *r, int type)
{
	uint32_t *slot;

	if (a->e->unit != WF_EXP_UNIT_USER || wf_user_is_anon(r->argv[1], r->argl[1]) || r->argl[1] == 0)
		return 0;
	if (!(slot = map_at(&a->pre, wf_hash64(r->argv[1], r->argl[1]), 1)))
		return -ENOMEM;
	if (*slot == UINT32_MAX) {
		if (grow((void **)&a->pre_rev, &a->cappre, a->npre + 1, sizeof(*a->pre_rev)) < 0)
			return -ENOMEM;
		*slot = (uint32_t)a->npre;
		a->pre_rev[a->npre++] = 0;
	}
	if (type == WF_EV_PURCHASE)
		a->pre_rev[*slot] += revenue(r);
	return 0;
}

static int event(struct attr *a, const struct wf_journal_rec *r)
{
	const struct wf_exp *e = a->e;
	int type;
	uint32_t *slot = NULL, idx;

	if (r->argc < 4 || (type = wf_event_from_name(r->argv[2], r->argl[2])) < 0)
		return 0;
	if (r->ts_ms < e->started_ms)
		return pre_event(a, r, type);
	if (r->ts_ms > a->end_ms)
		return 0;
	if (e->unit == WF_EXP_UNIT_USER && r->argl[1] && !wf_user_is_anon(r->argv[1], r->argl[1])) {
		char unit[WF_EXP_UNIT_MAX + 1];
		size_t len = wf_exp_unit_of(e, r->argv[0], r->argl[0], r->argv[1], r->argl[1], unit);
		slot = map_at(&a->units, wf_hash64(unit, len), 0);
	}
	if (!slot || *slot == UINT32_MAX)
		slot = map_at(&a->sessions, wf_hash64(r->argv[0], r->argl[0]), 0);
	if (!slot || *slot == UINT32_MAX)
		return 0; /* not a unit of the experiment (or not exposed yet) */
	idx = *slot;
	a->st.events++;
	if (r->ts_ms - a->last_ms[idx] > e->window_ms && r->ts_ms >= a->last_ms[idx])
		return 0; /* past the window of its latest exposure */
	struct wf_exp_unit *u = &a->u[idx];
	uint8_t bit = type == WF_EV_CLICK || type == WF_EV_PDP ? DONE_CLICK
		      : type == WF_EV_CART_ADD			? DONE_CART
		      : type == WF_EV_PURCHASE			? DONE_BUY
								: 0;
	if (!bit)
		return 0;
	/* the day's record, made only when something counts */
	struct wf_exp_unit_day *d;
	if (type == WF_EV_PURCHASE) {
		double v = revenue(r);

		if (!(d = day_rec(a, idx, r->ts_ms)))
			return -ENOMEM;
		d->converted += u->converted ? 0 : 1;
		u->converted = 1;
		d->revenue += v;
		u->revenue += v;
	}
	/* Through a recommendation: an item shown to the unit, within the
	 * window after that showing, once per showing. */
	uint32_t *s = map_at(&a->items, hash2(idx, r->argv[3], r->argl[3]), 0);
	if (!s || *s == UINT32_MAX)
		return 0;
	struct shown *sh = &a->shown[*s];
	if ((sh->done & bit) || r->ts_ms < sh->ms || r->ts_ms - sh->ms > e->window_ms)
		return 0;
	if (!(d = day_rec(a, idx, r->ts_ms)))
		return -ENOMEM;
	sh->done |= bit;
	if (bit == DONE_CLICK) {
		u->clicks += 1;
		d->clicks += 1;
	} else if (bit == DONE_CART) {
		u->carts += 1;
		d->carts += 1;
	} else {
		u->purchases += 1;
		d->purchases += 1;
	}
	return 0;
}

static void attr_fini(struct attr *a)
{
	free(a->u);
	free(a->last_ms);
	free(a->user_key);
	free(a->lastrec);
	free(a->days);
	free(a->shown);
	free(a->pre_rev);
	map_fini(&a->units);
	map_fini(&a->sessions);
	map_fini(&a->items);
	map_fini(&a->reqs);
	map_fini(&a->pre);
}

static int rec_cmp(const void *x, const void *y)
{
	const struct wf_exp_unit_day *p = x, *q = y;

	if (p->day != q->day)
		return p->day < q->day ? -1 : 1;
	return p->unit < q->unit ? -1 : p->unit > q->unit;
}

/* The records in order of (day, unit), one per unit and day: a unit's
 * activity can come back to an earlier day when shards' clocks differ. */
static void days_sort(struct attr *a)
{
	size_t m = 0;

	qsort(a->days, a->ndays, sizeof(*a->days), rec_cmp);
	for (size_t k = 0; k < a->ndays; k++) {
		struct wf_exp_unit_day *p = &a->days[m - (m > 0)], *q = &a->days[k];

		if (m > 0 && p->day == q->day && p->unit == q->unit) {
			p->exposures += q->exposures;
			p->clicks += q->clicks;
			p->carts += q->carts;
			p->purchases += q->purchases;
			p->converted += q->converted;
			p->revenue += q->revenue;
		} else {
			a->days[m++] = *q;
		}
	}
	a->ndays = m;
}

int wf_exp_attr_run_daily(const char *dir, const struct wf_exp *e, struct wf_exp_unit **ret_units, size_t *ret_n,
			  struct wf_exp_unit_day **ret_days, size_t *ret_ndays, struct wf_exp_attr_stats *ret_stats)
{
	struct attr a = { .e = e, .end_ms = e->stopped_ms ? e->stopped_ms + e->window_ms : UINT64_MAX };
	struct wf_journal_reader *jr = NULL;
	struct wf_journal_rec *rec = malloc(sizeof(*rec));
	int r;

	if (!rec)
		return -ENOMEM;
	r = wf_journal_reader_open(dir, 0, &jr);
	while (r == 0) {
		r = wf_journal_reader_next(jr, rec);
		if (r <= 0)
			break;
		a.st.records++;
		a.st.last_ms = rec->ts_ms;
		if (rec->kind == WF_JREC_EXPOSURE)
			r = exposure(&a, rec);
		else if (rec->kind == WF_JREC_EVENT)
			r = event(&a, rec);
		else
			r = 0;
	}
	wf_journal_reader_close(jr);
	free(rec);
	if (r < 0) {
		attr_fini(&a);
		return r;
	}
	for (size_t i = 0; i < a.n; i++) {
		uint32_t *s = a.user_key[i] ? map_at(&a.pre, a.user_key[i], 0) : NULL;
		if (s && *s != UINT32_MAX) {
			a.u[i].has_pre = 1;
			a.u[i].pre_revenue = a.pre_rev[*s];
		}
	}
	days_sort(&a);
	*ret_units = a.u;
	*ret_n = a.n;
	if (ret_days) {
		*ret_days = a.days;
		*ret_ndays = a.ndays;
		a.days = NULL;
	}
	*ret_stats = a.st;
	a.u = NULL;
	attr_fini(&a);
	return 0;
}

int wf_exp_attr_run(const char *dir, const struct wf_exp *e, struct wf_exp_unit **ret_units, size_t *ret_n,
		    struct wf_exp_attr_stats *ret_stats)
{
	return wf_exp_attr_run_daily(dir, e, ret_units, ret_n, NULL, NULL, ret_stats);
}
