/*
 * set.c - a set of live segments (in() resolved, evaluation order, the
 * per-session state layout), and the evaluator over a session's state:
 * events in (wf_seg_apply), membership and the next deadline out
 * (wf_seg_eval, wf_seg_step). Linked into libweft (weft-ranker evaluates,
 * weft-admin validates a whole set).
 *
 * A session's state (struct wf_seg_state, then):
 *   uint64_t seq[n]           per segment, its last announced sequence
 *   uint8_t  fill[nfill]      per count atom, event times held (<= k)
 *   (padding to 8)
 *   uint64_t slots[nslots]    per count atom, its k newest matching event
 *                             times, oldest first (fill of them used)
 * A count atom with op n needs only the newest k matching times (k from
 * op and n, compile.c count_slots): "count(T, W) >= n" holds at t iff the
 * n-th newest is inside the window, i.e. later than t - W.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/seg/seg_int.h"

static const struct seg_atom *atom_of(const struct wf_seg_set *set, uint32_t seg, uint32_t a)
{
	return &set->seg[seg].rule->atoms[a];
}

/* Depth-first order: every in() target before the segment naming it;
 * -ELOOP on a cycle (*ret_bad: a segment on it). */
static int order_visit(struct wf_seg_set *set, uint32_t i, uint8_t *mark, uint32_t *n, uint32_t *ret_bad)
{
	const struct wf_seg_rule *r = set->seg[i].rule;

	if (mark[i] == 2)
		return 0;
	if (mark[i] == 1) {
		*ret_bad = i;
		return -ELOOP;
	}
	mark[i] = 1;
	for (uint32_t a = 0; a < r->natoms; a++)
		if (r->atoms[a].kind == SEG_A_IN && order_visit(set, (uint32_t)r->atoms[a].in_idx, mark, n, ret_bad) < 0)
			return -ELOOP;
	mark[i] = 2;
	set->order[(*n)++] = i;
	return 0;
}

static int type_matches(uint8_t atom_type, int type)
{
	return atom_type == WF_SEG_TYPE_ANY || atom_type == type;
}

/* After every rule is in: resolve in(), order, lay the state out, index
 * count atoms by event type. 0, -EINVAL (err, *ret_bad), -ENOMEM. */
static int set_finish(struct wf_seg_set *set, struct wf_seg_error *err, uint32_t *ret_bad)
{
	uint8_t mark[WF_SEG_MAX] = { 0 };
	uint32_t n = 0, bad = 0;
	uint64_t deps[WF_SEG_MAX] = { 0 }; /* bit j: segment i reads segment j, transitively once ordered */

	for (uint32_t i = 0; i < set->n; i++) {
		struct wf_seg_rule *r = set->seg[i].rule;
		set->uses |= r->uses;
		for (uint32_t a = 0; a < r->natoms; a++) {
			struct seg_atom *at = &r->atoms[a];
			if (at->kind == SEG_A_IN) {
				at->in_idx = wf_seg_set_find(set, r->in_name[a], strlen(r->in_name[a]));
				if (at->in_idx < 0) {
					seg_error(err, 0, "in(%s): no segment of that name is defined", r->in_name[a]);
					*ret_bad = i;
					return -EINVAL;
				}
				deps[i] |= 1ull << at->in_idx;
			}
			if (at->kind == SEG_A_COUNT) {
				at->fill = set->nfill++;
				at->slot = set->nslots;
				set->nslots += at->k;
			}
		}
	}
	if (set->nslots > WF_SEG_SLOTS_MAX) {
		seg_error(err, 0, "the segments together keep %u event times per session: at most %u (lower the N "
				  "of count())", set->nslots, WF_SEG_SLOTS_MAX);
		*ret_bad = set->n - 1;
		return -EINVAL;
	}
	for (uint32_t i = 0; i < set->n; i++)
		if (order_visit(set, i, mark, &n, &bad) < 0) {
			seg_error(err, 0, "in() goes round in a cycle through segment %s", set->seg[bad].name);
			*ret_bad = bad;
			return -EINVAL;
		}
	/* Transitive readers, in order (targets first). */
	for (uint32_t o = 0; o < set->n; o++) {
		uint32_t i = set->order[o];
		for (uint32_t j = 0; j < set->n; j++)
			if (deps[i] >> j & 1)
				deps[i] |= deps[j];
	}
	set->seq_off = sizeof(struct wf_seg_state);
	set->fill_off = set->seq_off + 8u * set->n;
	set->slots_off = (set->fill_off + set->nfill + 7u) & ~(size_t)7;
	set->size = set->slots_off + 8u * set->nslots;
	/* What an event of each type may change, and the atoms it feeds. */
	for (int t = 0; t < WF_EV_COUNT; t++) {
		uint64_t direct = 0;
		for (uint32_t i = 0; i < set->n; i++) {
			const struct wf_seg_rule *r = set->seg[i].rule;
			/* idle, and the user (an event may log the session in), and
			 * pivot (the model) move with any event */
			if (r->uses & (WF_SEG_USES_IDLE | WF_SEG_USES_USER | WF_SEG_USES_PIVOT))
				direct |= 1ull << i;
			if ((r->uses & WF_SEG_USES_CART) &&
			    (t == WF_EV_CART_ADD || t == WF_EV_CART_REMOVE || t == WF_EV_PURCHASE))
				direct |= 1ull << i;
			for (uint32_t a = 0; a < r->natoms; a++)
				if (r->atoms[a].kind == SEG_A_COUNT && type_matches(r->atoms[a].type, t)) {
					direct |= 1ull << i;
					set->nrefs[t]++;
					if (r->atoms[a].nfilt)
						set->needs_item[t] = 1;
				}
		}
		set->affected[t] = direct;
		for (uint32_t i = 0; i < set->n; i++)
			if (deps[i] & direct)
				set->affected[t] |= 1ull << i;
		if (set->nrefs[t]) {
			set->refs[t] = calloc(set->nrefs[t], sizeof(*set->refs[t]));
			if (!set->refs[t])
				return -ENOMEM;
			uint32_t k = 0;
			for (uint32_t i = 0; i < set->n; i++)
				for (uint32_t a = 0; a < set->seg[i].rule->natoms; a++) {
					const struct seg_atom *at = atom_of(set, i, a);
					if (at->kind == SEG_A_COUNT && type_matches(at->type, t))
						set->refs[t][k++] = (struct seg_ref){ (uint16_t)i, (uint16_t)a };
				}
		}
	}
	return 0;
}

void wf_seg_set_free(struct wf_seg_set *set)
{
	if (!set)
		return;
	for (uint32_t i = 0; i < set->n; i++)
		wf_seg_rule_free(set->seg[i].rule);
	for (int t = 0; t < WF_EV_COUNT; t++)
		free(set->refs[t]);
	free(set);
}

int wf_seg_set_build(const struct wf_seg_defs *defs, struct wf_seg_set **ret, struct wf_seg_error *err,
		     uint32_t *ret_bad)
{
	struct wf_seg_set *set = calloc(1, sizeof(*set));
	uint32_t bad = 0, idx[WF_SEG_MAX];
	int r;

	if (!set)
		return -ENOMEM;
	for (uint32_t d = 0; d < defs->n; d++) {
		const struct wf_seg_def *df = &defs->defs[d];
		if (!df->rule_len)
			continue;
		if (set->n == WF_SEG_MAX) {
			seg_error(err, 0, "too many segments: at most %u", WF_SEG_MAX);
			bad = d;
			r = -EINVAL;
			goto fail;
		}
		r = wf_seg_compile(df->rule, df->rule_len, &set->seg[set->n].rule, err);
		if (r < 0) {
			bad = d;
			goto fail;
		}
		memcpy(set->seg[set->n].name, df->name, sizeof(df->name));
		set->seg[set->n].version = df->version;
		idx[set->n++] = d;
	}
	r = set_finish(set, err, &bad);
	if (r < 0) {
		if (r == -EINVAL && bad < set->n)
			bad = idx[bad];
		goto fail;
	}
	*ret = set;
	return 0;
fail:
	if (ret_bad)
		*ret_bad = bad;
	wf_seg_set_free(set);
	return r;
}

/* Copy segment i of base (and what it reads, first) into set, once. */
static int copy_closure(struct wf_seg_set *set, const struct wf_seg_set *base, uint32_t i)
{
	const struct wf_seg_rule *r = base->seg[i].rule;

	if (wf_seg_set_find(set, base->seg[i].name, strlen(base->seg[i].name)) >= 0)
		return 0;
	for (uint32_t a = 0; a < r->natoms; a++)
		if (r->atoms[a].kind == SEG_A_IN && copy_closure(set, base, (uint32_t)r->atoms[a].in_idx) < 0)
			return -ENOMEM;
	if (set->n == WF_SEG_MAX - 1)
		return -ENOMEM;
	struct wf_seg_rule *c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	memcpy(c, r, sizeof(*c));
	set->seg[set->n] = (struct seg_entry){ .version = base->seg[i].version, .rule = c };
	memcpy(set->seg[set->n].name, base->seg[i].name, sizeof(base->seg[i].name));
	set->n++;
	return 0;
}

int wf_seg_set_with_rule(const struct wf_seg_set *base, const char *rule, size_t len, struct wf_seg_set **ret,
			 struct wf_seg_error *err)
{
	struct wf_seg_set *set = calloc(1, sizeof(*set));
	struct wf_seg_rule *r = NULL;
	uint32_t bad;
	int e;

	if (!set)
		return -ENOMEM;
	e = wf_seg_compile(rule, len, &r, err);
	if (e < 0) {
		free(set);
		return e == -E2BIG ? -EINVAL : e;
	}
	/* Only the segments the rule reads, transitively: a preview pays for
	 * nothing else. */
	for (uint32_t a = 0; a < r->natoms; a++) {
		if (r->atoms[a].kind != SEG_A_IN)
			continue;
		int j = base ? wf_seg_set_find(base, r->in_name[a], strlen(r->in_name[a])) : -1;
		if (j < 0) {
			seg_error(err, 0, "in(%s): no segment of that name is defined", r->in_name[a]);
			e = -EINVAL;
			goto fail;
		}
		if ((e = copy_closure(set, base, (uint32_t)j)) < 0)
			goto fail;
	}
	set->seg[set->n] = (struct seg_entry){ .name = "preview", .version = 0, .rule = r };
	r = NULL;
	set->n++;
	e = set_finish(set, err, &bad);
	if (e < 0)
		goto fail;
	*ret = set;
	return 0;
fail:
	wf_seg_rule_free(r);
	wf_seg_set_free(set);
	return e;
}

uint32_t wf_seg_set_count(const struct wf_seg_set *set)
{
	return set ? set->n : 0;
}

const char *wf_seg_set_name(const struct wf_seg_set *set, uint32_t i)
{
	return set->seg[i].name;
}

uint64_t wf_seg_set_version(const struct wf_seg_set *set, uint32_t i)
{
	return set->seg[i].version;
}

int wf_seg_set_find(const struct wf_seg_set *set, const char *name, size_t len)
{
	for (uint32_t i = 0; set && i < set->n; i++)
		if (strlen(set->seg[i].name) == len && memcmp(set->seg[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

uint32_t wf_seg_set_uses(const struct wf_seg_set *set)
{
	return set ? set->uses : 0;
}

int wf_seg_set_needs_item(const struct wf_seg_set *set, int type)
{
	return set && type >= 0 && type < WF_EV_COUNT && set->needs_item[type];
}

int wf_seg_set_affected(const struct wf_seg_set *set, int type)
{
	return set && type >= 0 && type < WF_EV_COUNT && set->affected[type] != 0;
}

/* ---- a session's state ---- */

size_t wf_seg_state_size(const struct wf_seg_set *set)
{
	return set->size;
}

void wf_seg_state_init(const struct wf_seg_set *set, struct wf_seg_state *st)
{
	memset(st, 0, set->size);
}

uint64_t *wf_seg_state_seq(const struct wf_seg_set *set, struct wf_seg_state *st, uint32_t i)
{
	return (uint64_t *)((char *)st + set->seq_off) + i;
}

uint64_t wf_seg_seq_next(uint64_t prev, uint64_t lsn)
{
	return prev ? prev + 1 : (lsn << 20) + 1;
}

static uint8_t *fills(const struct wf_seg_set *set, const struct wf_seg_state *st)
{
	return (uint8_t *)st + set->fill_off;
}

static uint64_t *slots(const struct wf_seg_set *set, const struct wf_seg_state *st)
{
	return (uint64_t *)((char *)st + set->slots_off);
}

static int cmp_u64(uint64_t a, uint8_t op, uint64_t b)
{
	switch (op) {
	case SEG_GE: return a >= b;
	case SEG_GT: return a > b;
	case SEG_LE: return a <= b;
	case SEG_LT: return a < b;
	case SEG_EQ: return a == b;
	default: return a != b;
	}
}

static int filter_ok(const struct seg_filter *f, const struct wf_seg_event *ev)
{
	const char *s;
	uint32_t len;

	if (f->kind == SEG_F_PRICE)
		return ev->price_cents && cmp_u64(ev->price_cents, f->op, f->cents);
	s = f->kind == SEG_F_CATEGORY ? ev->category : ev->brand;
	len = f->kind == SEG_F_CATEGORY ? ev->category_len : ev->brand_len;
	if (!s) /* unknown: matches neither = nor != */
		return 0;
	return (len == f->len && memcmp(s, f->s, len) == 0) == (f->op == SEG_EQ);
}

/* Keep ts among the k newest times (ascending) of times[0..*fill). */
static void times_add(uint64_t *times, uint8_t *fill, uint32_t k, uint64_t ts)
{
	uint32_t n = *fill, i;

	if (k == 0)
		return;
	if (n == k) {
		if (ts <= times[0])
			return; /* older than every time kept */
		memmove(times, times + 1, (n - 1) * sizeof(*times));
		n--;
	}
	for (i = n; i > 0 && times[i - 1] > ts; i--)
		times[i] = times[i - 1];
	times[i] = ts;
	*fill = (uint8_t)(n + 1);
}

void wf_seg_apply(const struct wf_seg_set *set, struct wf_seg_state *st, const struct wf_seg_event *ev)
{
	uint8_t *fill = fills(set, st);
	uint64_t *times = slots(set, st);
	int t = ev->type;

	if (t < 0 || t >= WF_EV_COUNT)
		return;
	if (ev->ts_ms > st->last_ms)
		st->last_ms = ev->ts_ms;
	for (uint32_t i = 0; i < set->nrefs[t]; i++) {
		const struct wf_seg_rule *r = set->seg[set->refs[t][i].seg].rule;
		const struct seg_atom *a = &r->atoms[set->refs[t][i].atom];
		uint32_t f;
		for (f = 0; f < a->nfilt && filter_ok(&r->filt[set->refs[t][i].atom][f], ev); f++)
			;
		if (f == a->nfilt)
			times_add(times + a->slot, &fill[a->fill], a->k, ev->ts_ms);
	}
}

uint32_t wf_seg_set_count_atoms(const struct wf_seg_set *set)
{
	return set->nfill;
}

uint64_t wf_seg_item_match(const struct wf_seg_set *set, const struct wf_seg_event *ev)
{
	uint64_t m = 0;

	for (uint32_t i = 0; i < set->n; i++) {
		const struct wf_seg_rule *r = set->seg[i].rule;
		for (uint32_t a = 0; a < r->natoms; a++) {
			const struct seg_atom *at = &r->atoms[a];
			uint32_t f;
			if (at->kind != SEG_A_COUNT || at->fill >= 64)
				continue;
			for (f = 0; f < at->nfilt && filter_ok(&r->filt[a][f], ev); f++)
				;
			if (f == at->nfilt)
				m |= 1ull << at->fill;
		}
	}
	return m;
}

uint64_t wf_seg_item_window(const struct wf_seg_set *set, int type)
{
	uint64_t w = 0;

	if (type < 0 || type >= WF_EV_COUNT)
		return 0;
	for (uint32_t i = 0; i < set->nrefs[type]; i++) {
		const struct seg_atom *a = atom_of(set, set->refs[type][i].seg, set->refs[type][i].atom);
		if (a->nfilt && a->window_ms > w)
			w = a->window_ms;
	}
	return w;
}

void wf_seg_apply_matched(const struct wf_seg_set *set, struct wf_seg_state *st, int type, uint64_t ts_ms,
			  uint64_t match, uint64_t now)
{
	uint8_t *fill = fills(set, st);
	uint64_t *times = slots(set, st);

	if (type < 0 || type >= WF_EV_COUNT)
		return;
	if (ts_ms > st->last_ms)
		st->last_ms = ts_ms;
	for (uint32_t i = 0; i < set->nrefs[type]; i++) {
		const struct seg_atom *a = atom_of(set, set->refs[type][i].seg, set->refs[type][i].atom);
		/* Out of the window at now: it cannot count then (the k newest
		 * in the window are kept either way). */
		if ((a->nfilt && !(match >> a->fill & 1)) || (now && ts_ms + a->window_ms <= now))
			continue;
		times_add(times + a->slot, &fill[a->fill], a->k, ts_ms);
	}
}

/* A value and the next time it may change with no event. */
struct tv {
	uint8_t v;
	uint64_t next;
};

static struct tv eval_count(const struct wf_seg_set *set, const struct wf_seg_state *st, const struct seg_atom *a,
			    uint64_t now)
{
	const uint64_t *t = slots(set, st) + a->slot;
	uint32_t n = fills(set, st)[a->fill], first = 0;
	struct tv r;

	/* In the window at now: ts + W > now. The times are ascending. */
	while (first < n && t[first] + a->window_ms <= now)
		first++;
	r.v = (uint8_t)cmp_u64(n - first, a->op, (uint64_t)a->n);
	/* The count falls by one at the oldest one's expiry. */
	r.next = first < n ? t[first] + a->window_ms : WF_SEG_NEVER;
	/* ">= n" false (or "< n" true) stays so: only events raise a count. */
	if (((a->op == SEG_GE || a->op == SEG_GT) && !r.v) || ((a->op == SEG_LE || a->op == SEG_LT) && r.v))
		r.next = WF_SEG_NEVER;
	return r;
}

static int lifecycle_of(const struct wf_seg_inputs *u)
{
	return u && u->known && u->lifecycle > 0 && u->lifecycle < (int)SEG_LIFECYCLES ? u->lifecycle : 0;
}

static struct tv eval_atom(const struct wf_seg_set *set, const struct wf_seg_state *st, const struct seg_atom *a,
			   const struct wf_seg_inputs *u, uint64_t now, uint64_t bits, const uint64_t *seg_next)
{
	struct tv r = { 0, WF_SEG_NEVER };
	int64_t ltv;

	switch (a->kind) {
	case SEG_A_COUNT:
		return eval_count(set, st, a, now);
	case SEG_A_IDLE:
		/* No event yet counts as idle. */
		r.v = !st->last_ms || now >= st->last_ms + a->window_ms;
		if (!r.v)
			r.next = st->last_ms + a->window_ms;
		break;
	case SEG_A_CART_VALUE:
		r.v = (uint8_t)cmp_u64(u ? u->cart_cents : 0, a->op, (uint64_t)a->n);
		break;
	case SEG_A_CART_ITEMS:
		r.v = (uint8_t)cmp_u64(u ? u->cart_items : 0, a->op, (uint64_t)a->n);
		break;
	case SEG_A_LTV:
		ltv = u && u->known && u->ltv > 0 ? (int64_t)((double)u->ltv * 100.0 + 0.5) : 0;
		r.v = (uint8_t)cmp_u64((uint64_t)ltv, a->op, (uint64_t)a->n);
		break;
	case SEG_A_LIFECYCLE:
		r.v = (uint8_t)(((a->mask >> lifecycle_of(u)) & 1) == (a->op == SEG_EQ));
		break;
	case SEG_A_VISITOR:
		r.v = (uint8_t)(((u && u->known) == (a->n == 1)) == (a->op == SEG_EQ));
		break;
	case SEG_A_IN:
		r.v = (uint8_t)(bits >> a->in_idx & 1);
		r.next = seg_next[a->in_idx];
		break;
	case SEG_A_PIVOT:
		r.v = (uint8_t)(u && u->pivot);
		break;
	}
	return r;
}

/* A rule's value and next change: postfix over (value, next) pairs. An
 * and with a side false for good is false for good; an or with a side
 * true for good is true for good; else the sooner of the two. */
static struct tv eval_rule(const struct wf_seg_set *set, const struct wf_seg_state *st, const struct wf_seg_rule *r,
			   const struct wf_seg_inputs *u, uint64_t now, uint64_t bits, const uint64_t *seg_next)
{
	struct tv stack[SEG_OPS_MAX];
	uint32_t sp = 0;

	for (uint32_t i = 0; i < r->nops; i++) {
		uint16_t op = r->ops[i];
		if (op == SEG_OP_NOT) {
			stack[sp - 1].v ^= 1;
		} else if (op == SEG_OP_AND || op == SEG_OP_OR) {
			struct tv b = stack[--sp], a = stack[sp - 1];
			uint8_t dom = op == SEG_OP_OR; /* the value that decides */
			struct tv c;
			if ((a.v == dom && a.next == WF_SEG_NEVER) || (b.v == dom && b.next == WF_SEG_NEVER))
				c = (struct tv){ dom, WF_SEG_NEVER };
			else
				c = (struct tv){ op == SEG_OP_AND ? (a.v & b.v) : (a.v | b.v),
						 a.next < b.next ? a.next : b.next };
			stack[sp - 1] = c;
		} else {
			stack[sp++] = eval_atom(set, st, &r->atoms[op], u, now, bits, seg_next);
		}
	}
	return sp ? stack[0] : (struct tv){ 0, WF_SEG_NEVER };
}

uint64_t wf_seg_eval(const struct wf_seg_set *set, const struct wf_seg_state *st, const struct wf_seg_inputs *user,
		     uint64_t now, uint64_t *ret_next)
{
	uint64_t bits = 0, next = WF_SEG_NEVER, seg_next[WF_SEG_MAX];

	for (uint32_t o = 0; o < set->n; o++) {
		uint32_t i = set->order[o];
		struct tv v = eval_rule(set, st, set->seg[i].rule, user, now, bits, seg_next);
		bits |= (uint64_t)v.v << i;
		seg_next[i] = v.next;
		if (v.next < next)
			next = v.next;
	}
	if (ret_next)
		*ret_next = next;
	return bits;
}

uint64_t wf_seg_step(const struct wf_seg_set *set, struct wf_seg_state *st, const struct wf_seg_inputs *user,
		     uint64_t now, wf_seg_transition_fn fn, void *arg)
{
	uint64_t next, bits, diff;

	if (now < st->eval_ms)
		now = st->eval_ms;
	st->eval_ms = now;
	bits = wf_seg_eval(set, st, user, now, &next);
	diff = bits ^ st->member;
	for (uint32_t i = 0; diff && i < set->n; i++) {
		if (!(diff >> i & 1))
			continue;
		uint64_t *seq = wf_seg_state_seq(set, st, i);
		*seq = wf_seg_seq_next(*seq, user ? user->lsn : 0);
		if (fn)
			fn(arg, i, (int)(bits >> i & 1), *seq, now);
	}
	st->member = bits;
	return next;
}
