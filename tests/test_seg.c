/*
 * test_seg.c - lib/seg: the rule language (good rules compile; each kind
 * of error names its byte and what was expected), sets (in() resolution,
 * cycles, limits, the built-in definitions), the definitions file
 * (round trip, tombstones, versions, malformed lines), and the evaluator
 * against a brute-force reference over random rules and random event
 * streams: the same membership at random times, a deadline before which
 * nothing changes without an event, and timer-driven steps that announce
 * every change once with increasing sequence numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/proto.h"
#include "lib/seg/seg.h"

static int compile_ok(const char *rule)
{
	struct wf_seg_rule *r = NULL;
	struct wf_seg_error err = { 0 };
	int e = wf_seg_compile(rule, strlen(rule), &r, &err);

	if (e < 0)
		print_error("rule '%s': %s\n", rule, err.msg);
	wf_seg_rule_free(r);
	return e;
}

static void test_seg_compile_good_rules_compile(void **state)
{
	static const char *const good[] = {
		"count(pdp, 10m) >= 3",
		"count(pdp, category=shoes, 10m) >= 3",
		"count(pdp, category=\"running shoes\", brand=acme, price>=19.99, 2h) > 1",
		"did(cart_add, 1h) and idle(2s) and not did(purchase, 1h)",
		"did(cart_add,1h)and idle(2s)",
		"NOT (did(search, 30s) OR did(click, 7d))",
		"cart_value >= 100 and cart_items >= 2",
		"lifecycle = at_risk|lapsed and ltv >= 250.5",
		"visitor = new or visitor != returning",
		"in(abandon) and not in(x-1)",
		"pivot",
		"count(any, 30m) = 0",
		"count(view, price<5, price>1, 1d) != 4",
		"idle(7d)",
		"count(pdp, 10m) <= 100",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(compile_ok(good[i]), 0);
}

/* rule fails at byte pos with a message holding want. */
static void bad(const char *rule, uint32_t pos, const char *want)
{
	struct wf_seg_rule *r = NULL;
	struct wf_seg_error err = { 0 };
	int e = wf_seg_compile(rule, strlen(rule), &r, &err);

	if (e != -EINVAL || err.pos != pos || !strstr(err.msg, want))
		fail_msg("rule '%s': got %d at %u '%s', want -EINVAL at %u with '%s'", rule, e, err.pos, err.msg, pos,
			 want);
	assert_null(r);
	char at[16];
	snprintf(at, sizeof(at), "at %u: ", pos + 1);
	assert_true(strncmp(err.msg, at, strlen(at)) == 0);
}

static void test_seg_compile_errors_name_position(void **state)
{
	(void)state;
	bad("count(pdp, 10x) >= 3", 11, "expected a window like 30s, 10m, 2h, 7d");
	bad("count(pdp, 8d) >= 3", 11, "window too long: at most 7d");
	bad("count(pdp, 0s) >= 3", 11, "at least 1s");
	bad("count(pdq, 10m) >= 3", 6, "expected an event type");
	bad("count(pdp, colour=red, 10m) >= 3", 11, "expected a window");
	bad("count(pdp, 10m) >= 101", 19, "out of range: at most 100");
	bad("count(pdp, 10m) 3", 16, "expected a comparison");
	bad("did(cart_add, 1h) and", 21, "expected a term");
	bad("did(cart_add, 1h) extra", 18, "expected and, or, or the end");
	bad("shoe_size >= 3", 0, "unknown term 'shoe_size'");
	bad("category = shoes", 0, "inside count(");
	bad("lifecycle = gold", 12, "expected a lifecycle");
	bad("lifecycle >= vip", 10, "expected = or !=");
	bad("visitor = old", 10, "expected a visitor type");
	bad("(did(pdp, 1h)", 13, "expected ')'");
	bad("in(bad name)", 7, "expected ')'");
	bad("in()", 3, "expected a segment name");
	bad("cart_value >= 1.234", 18, "at most 2 decimals");
	bad("count(pdp, category=, 1h) >= 1", 20, "expected a category name");
	bad("", 0, "expected a term");
	bad("idle 5m", 5, "expected '(' after idle");
	/* nesting and size limits */
	char deep[200] = "";
	for (int i = 0; i < 17; i++)
		strcat(deep, "(");
	strcat(deep, "pivot");
	bad(deep, 16, "nested too deep");
	char longr[2000] = "pivot";
	for (int i = 0; i < 40; i++)
		strcat(longr, " or pivot");
	bad(longr, 5 + 31 * 9 + 4, "rule too long");
	char *huge = malloc(WF_SEG_RULE_MAX + 2);
	memset(huge, ' ', WF_SEG_RULE_MAX + 1);
	huge[WF_SEG_RULE_MAX + 1] = '\0';
	struct wf_seg_rule *r;
	struct wf_seg_error err;
	assert_int_equal(wf_seg_compile(huge, strlen(huge), &r, &err), -E2BIG);
	free(huge);
}

/* ---- definitions ---- */

static void test_seg_defs_round_trip_and_versions(void **state)
{
	struct wf_seg_defs d = { 0 }, back = { 0 };
	char *buf;
	size_t len;
	uint32_t line = 0;
	(void)state;

	assert_int_equal(wf_seg_defs_default(&d), 0);
	assert_int_equal(d.n, 5);
	assert_int_equal(wf_seg_defs_put(&d, "abandon", "did(cart_add, 1h) and idle(2s)", 30), 1);
	assert_int_equal(wf_seg_defs_put(&d, "abandon", "did(cart_add, 1h) and idle(3s)", 30), 2);
	assert_int_equal(wf_seg_defs_put(&d, "high_intent", "", 0), 2); /* dropped: a tombstone */
	assert_int_equal(wf_seg_defs_put(&d, "high_intent", "", 0), -ENOENT);
	assert_int_equal(wf_seg_defs_put(&d, "nope", "", 0), -ENOENT);
	assert_int_equal(wf_seg_defs_put(&d, "bad name", "pivot", 5), -EINVAL);
	assert_int_equal(wf_seg_defs_format(&d, &buf, &len), 0);
	assert_non_null(strstr(buf, "abandon\t2\tdid(cart_add, 1h) and idle(3s)\n"));
	assert_non_null(strstr(buf, "high_intent\t2\t\n"));
	assert_int_equal(wf_seg_defs_parse(buf, len, &back, &line), 0);
	assert_int_equal(back.n, d.n);
	for (uint32_t i = 0; i < d.n; i++) {
		assert_string_equal(back.defs[i].name, d.defs[i].name);
		assert_int_equal(back.defs[i].version, d.defs[i].version);
		assert_string_equal(back.defs[i].rule, d.defs[i].rule);
	}
	/* A dropped name defined again continues its counter. */
	assert_int_equal(wf_seg_defs_put(&back, "high_intent", "pivot", 5), 3);
	/* The set skips the tombstone. */
	struct wf_seg_set *set;
	assert_int_equal(wf_seg_set_build(&d, &set, NULL, NULL), 0);
	assert_int_equal(wf_seg_set_count(set), 5);
	assert_int_equal(wf_seg_set_find(set, "high_intent", 11), -1);
	assert_int_equal(wf_seg_set_version(set, (uint32_t)wf_seg_set_find(set, "abandon", 7)), 2);
	wf_seg_set_free(set);
	free(buf);
	wf_seg_defs_fini(&d);
	wf_seg_defs_fini(&back);
}

static void defs_bad(const char *text, uint32_t want_line)
{
	struct wf_seg_defs d;
	uint32_t line = 0;

	if (wf_seg_defs_parse(text, strlen(text), &d, &line) != -EINVAL || line != want_line)
		fail_msg("'%s': want -EINVAL at line %u, got line %u", text, want_line, line);
}

static void test_seg_defs_malformed_lines_refused(void **state)
{
	struct wf_seg_defs d;
	(void)state;
	defs_bad("a\t1\tpivot\nb\t0\tpivot\n", 2);           /* version 0 */
	defs_bad("a\t1\tpivot\na\t2\tpivot\n", 2);           /* a name twice */
	defs_bad("a b\t1\tpivot\n", 1);                      /* bad name */
	defs_bad("a\t1pivot\n", 1);                          /* one tab */
	defs_bad("a\t\tpivot\n", 1);                         /* no version */
	defs_bad("a\t1x\tpivot\n", 1);
	defs_bad("a\t1\tpivot\there\n", 1);                  /* a tab in the rule */
	defs_bad("a\t99999999999999999999\tpivot\n", 1);    /* version over 19 digits */
	/* empty lines are skipped, the last newline is optional */
	assert_int_equal(wf_seg_defs_parse("\na\t1\tpivot", 10, &d, NULL), 0);
	assert_int_equal(d.n, 1);
	wf_seg_defs_fini(&d);
	assert_int_equal(wf_seg_defs_parse("", 0, &d, NULL), 0);
	assert_int_equal(d.n, 0);
	wf_seg_defs_fini(&d);
}

/* defs from "name=rule" strings (NULL-terminated). */
static void defs_of(struct wf_seg_defs *d, const char *const *rules)
{
	*d = (struct wf_seg_defs){ 0 };
	for (; *rules; rules++) {
		const char *eq = strchr(*rules, '=');
		char name[80];
		snprintf(name, sizeof(name), "%.*s", (int)(eq - *rules), *rules);
		assert_true(wf_seg_defs_put(d, name, eq + 1, strlen(eq + 1)) > 0);
	}
}

static void test_seg_set_in_resolution_and_cycles(void **state)
{
	struct wf_seg_defs d;
	struct wf_seg_set *set = NULL;
	struct wf_seg_error err;
	uint32_t badi = 99;
	(void)state;

	defs_of(&d, (const char *const[]){ "b=in(a) and pivot", "a=did(pdp, 1m)", NULL });
	assert_int_equal(wf_seg_set_build(&d, &set, &err, &badi), 0);
	struct wf_seg_inputs u = { .pivot = 1 };
	struct wf_seg_state *st = calloc(1, wf_seg_state_size(set));
	wf_seg_state_init(set, st);
	wf_seg_apply(set, st, &(struct wf_seg_event){ .type = WF_EV_PDP, .ts_ms = 1000 });
	uint64_t next, bits = wf_seg_eval(set, st, &u, 1000, &next);
	assert_int_equal(bits, 3);
	assert_int_equal(next, 61000);
	assert_int_equal(wf_seg_eval(set, st, &u, 61000, &next), 0);
	free(st);
	wf_seg_set_free(set);
	wf_seg_defs_fini(&d);

	defs_of(&d, (const char *const[]){ "a=in(b)", "b=in(c)", "c=in(a) or pivot", NULL });
	assert_int_equal(wf_seg_set_build(&d, &set, &err, &badi), -EINVAL);
	assert_non_null(strstr(err.msg, "cycle"));
	wf_seg_defs_fini(&d);

	defs_of(&d, (const char *const[]){ "a=pivot", "b=in(zz)", NULL });
	assert_int_equal(wf_seg_set_build(&d, &set, &err, &badi), -EINVAL);
	assert_int_equal(badi, 1);
	assert_non_null(strstr(err.msg, "in(zz)"));
	wf_seg_defs_fini(&d);

	defs_of(&d, (const char *const[]){ "a=pivot", "b=did(cart_add, 10m) and count(pdp, 10m) >= 3 bogus", NULL });
	assert_int_equal(wf_seg_set_build(&d, &set, &err, &badi), -EINVAL);
	assert_int_equal(badi, 1);
	assert_int_equal(err.pos, 44);

	/* A preview set holds only the rule and what it reads. */
	wf_seg_defs_fini(&d);
	defs_of(&d, (const char *const[]){ "a=did(pdp, 1m)", "b=in(a)", "c=idle(1m)", NULL });
	assert_int_equal(wf_seg_set_build(&d, &set, &err, &badi), 0);
	struct wf_seg_set *pv;
	assert_int_equal(wf_seg_set_with_rule(set, "in(b) and pivot", 15, &pv, &err), 0);
	assert_int_equal(wf_seg_set_count(pv), 3);
	assert_string_equal(wf_seg_set_name(pv, 2), "preview");
	wf_seg_set_free(pv);
	assert_int_equal(wf_seg_set_with_rule(set, "in(q)", 5, &pv, &err), -EINVAL);
	wf_seg_set_free(set);
	wf_seg_defs_fini(&d);
}

static void test_seg_defaults_reproduce_builtin_segments(void **state)
{
	struct wf_seg_defs d;
	struct wf_seg_set *set;
	(void)state;

	assert_int_equal(wf_seg_defs_default(&d), 0);
	assert_int_equal(wf_seg_set_build(&d, &set, NULL, NULL), 0);
	struct wf_seg_state *st = calloc(1, wf_seg_state_size(set));
	wf_seg_state_init(set, st);
	int ca = wf_seg_set_find(set, "cart_abandon", 12), hi = wf_seg_set_find(set, "high_intent", 11);
	int wb = wf_seg_set_find(set, "win_back", 8), ar = wf_seg_set_find(set, "at_risk", 7);
	int pv = wf_seg_set_find(set, "intent_pivot", 12);
	uint64_t t = 1000000, next, bits;
	struct wf_seg_inputs u = { .known = 1, .lifecycle = 5 /* at_risk */ };

	/* An empty session of an at_risk user: at_risk, not win_back (not active). */
	bits = wf_seg_eval(set, st, &u, t, &next);
	assert_int_equal(bits, 1ull << ar);
	wf_seg_apply(set, st, &(struct wf_seg_event){ .type = WF_EV_CART_ADD, .ts_ms = t, .price_cents = 500 });
	u.cart_items = 1;
	u.cart_cents = 500;
	bits = wf_seg_eval(set, st, &u, t, &next);
	assert_int_equal(bits, (1ull << ar) | (1ull << wb));
	assert_int_equal(next, t + 15 * 60000); /* cart_abandon's deadline first */
	bits = wf_seg_eval(set, st, &u, next, &next);
	assert_int_equal(bits, (1ull << ar) | (1ull << wb) | (1ull << ca));
	assert_int_equal(next, t + 30 * 60000); /* win_back's did(any, 30m) runs out */
	for (int i = 0; i < 3; i++)
		wf_seg_apply(set, st, &(struct wf_seg_event){ .type = WF_EV_PDP, .ts_ms = t + 1 + (uint64_t)i });
	u.pivot = 1;
	bits = wf_seg_eval(set, st, &u, t + 10, &next);
	assert_int_equal(bits, (1ull << ar) | (1ull << wb) | (1ull << hi) | (1ull << pv));
	/* Bought: the cart is empty, no abandonment however long the wait. */
	wf_seg_apply(set, st, &(struct wf_seg_event){ .type = WF_EV_PURCHASE, .ts_ms = t + 20 });
	u.cart_items = 0;
	u.cart_cents = 0;
	bits = wf_seg_eval(set, st, &u, t + 3600000, &next);
	assert_int_equal(bits & (1ull << ca), 0);
	free(st);
	wf_seg_set_free(set);
	wf_seg_defs_fini(&d);
}

/* ---- the evaluator against a brute-force reference ---- */

struct ev {
	int type;
	uint64_t ts;
	int cat;        /* 0..2, or -1 unknown */
	uint32_t price; /* cents, 0 unknown */
	uint64_t item;  /* 1..6 */
};

static const char *const cats[3] = { "shoes", "bags", "hats" };

enum { N_COUNT, N_IDLE, N_CARTV, N_CARTI, N_LTV, N_LIFE, N_VIS, N_PIVOT, N_AND, N_OR, N_NOT };

struct node {
	int kind;
	int type, cat, op, pricef, pop; /* count: type (-1 any), cat filter (-1 none), op; price filter cents / op */
	uint64_t n, window;
	int lmask;
	struct node *a, *b;
};

static const char *const ops[6] = { ">=", ">", "<=", "<", "=", "!=" };

static int cmpv(uint64_t a, int op, uint64_t b)
{
	switch (op) {
	case 0: return a >= b;
	case 1: return a > b;
	case 2: return a <= b;
	case 3: return a < b;
	case 4: return a == b;
	default: return a != b;
	}
}

static uint64_t windows[] = { 1000, 5000, 60000, 120000 };

static struct node *gen(int depth, char *out, size_t cap)
{
	struct node *n = calloc(1, sizeof(*n));
	int k = depth > 2 ? rand() % 8 : rand() % 11;
	size_t l = strlen(out);

	n->kind = k;
	switch (k) {
	case N_COUNT:
		n->type = rand() % 4 == 0 ? -1 : rand() % WF_EV_COUNT;
		n->cat = rand() % 3 == 0 ? rand() % 3 : -1;
		n->pricef = rand() % 4 == 0 ? 100 * (1 + rand() % 5) : 0;
		n->pop = rand() % 6;
		n->op = rand() % 6;
		n->n = (uint64_t)(rand() % 4);
		n->window = windows[rand() % 4];
		snprintf(out + l, cap - l, "count(%s%s%s%s%s%s, %llus) %s %llu", n->type < 0 ? "any" : wf_event_name(n->type),
			 n->cat >= 0 ? ", category=" : "", n->cat >= 0 ? cats[n->cat] : "", n->pricef ? ", price" : "",
			 n->pricef ? ops[n->pop] : "", "", (unsigned long long)(n->window / 1000), ops[n->op],
			 (unsigned long long)n->n);
		if (n->pricef) { /* put the price value in: rewrite with it */
			out[l] = '\0';
			snprintf(out + l, cap - l, "count(%s%s%s, price%s%u.%02u, %llus) %s %llu",
				 n->type < 0 ? "any" : wf_event_name(n->type), n->cat >= 0 ? ", category=" : "",
				 n->cat >= 0 ? cats[n->cat] : "", ops[n->pop], n->pricef / 100, n->pricef % 100,
				 (unsigned long long)(n->window / 1000), ops[n->op], (unsigned long long)n->n);
		}
		break;
	case N_IDLE:
		n->window = windows[rand() % 4];
		snprintf(out + l, cap - l, "idle(%llus)", (unsigned long long)(n->window / 1000));
		break;
	case N_CARTV:
		n->op = rand() % 6;
		n->n = 100 * (uint64_t)(rand() % 8);
		snprintf(out + l, cap - l, "cart_value %s %llu", ops[n->op], (unsigned long long)(n->n / 100));
		break;
	case N_CARTI:
		n->op = rand() % 6;
		n->n = (uint64_t)(rand() % 4);
		snprintf(out + l, cap - l, "cart_items %s %llu", ops[n->op], (unsigned long long)n->n);
		break;
	case N_LTV:
		n->op = rand() % 6;
		n->n = 5000;
		snprintf(out + l, cap - l, "ltv %s 50", ops[n->op]);
		break;
	case N_LIFE:
		n->lmask = 1 << (1 + rand() % 6);
		n->op = rand() % 2 ? 4 : 5;
		snprintf(out + l, cap - l, "lifecycle %s %s", ops[n->op],
			 (const char *[]){ "", "new", "active", "loyal", "vip", "at_risk", "lapsed" }[__builtin_ctz((unsigned)n->lmask)]);
		break;
	case N_VIS:
		n->n = (uint64_t)(rand() % 2);
		snprintf(out + l, cap - l, "visitor = %s", n->n ? "returning" : "new");
		break;
	case N_PIVOT:
		snprintf(out + l, cap - l, "pivot");
		break;
	case N_NOT:
		snprintf(out + l, cap - l, "not (");
		n->a = gen(depth + 1, out, cap);
		strcat(out, ")");
		break;
	default:
		strcat(out, "(");
		n->a = gen(depth + 1, out, cap);
		strcat(out, k == N_AND ? ") and (" : ") or (");
		n->b = gen(depth + 1, out, cap);
		strcat(out, ")");
		break;
	}
	return n;
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	node_free(n->a);
	node_free(n->b);
	free(n);
}

struct refuser {
	int known, life, pivot;
	float ltv;
};

/* The cart as lib/rank's model keeps it: a set of items (an add of one
 * in it changes nothing), removed by cart_remove and purchase; priced at
 * its add. */
static void ref_cart(const struct ev *evs, int nev, uint64_t now, uint64_t *ret_items, uint64_t *ret_cents)
{
	uint64_t key[64], price[64];
	int nc = 0;

	for (int i = 0; i < nev; i++) {
		const struct ev *e = &evs[i];
		int j;
		if (e->ts > now)
			continue;
		for (j = 0; j < nc && key[j] != e->item; j++)
			;
		if (e->type == WF_EV_CART_ADD && j == nc) {
			key[nc] = e->item;
			price[nc++] = e->price;
		} else if ((e->type == WF_EV_CART_REMOVE || e->type == WF_EV_PURCHASE) && j < nc) {
			key[j] = key[nc - 1];
			price[j] = price[nc - 1];
			nc--;
		}
	}
	*ret_items = (uint64_t)nc;
	*ret_cents = 0;
	for (int j = 0; j < nc; j++)
		*ret_cents += price[j];
}

/* The rule over the whole event list (events with ts <= now applied). */
static int ref_eval(const struct node *n, const struct ev *evs, int nev, uint64_t now, const struct refuser *u)
{
	uint64_t c = 0, last = 0, cv = 0, ci = 0;

	switch (n->kind) {
	case N_COUNT:
		for (int i = 0; i < nev; i++) {
			const struct ev *e = &evs[i];
			if (e->ts > now || e->ts + n->window <= now)
				continue;
			if (n->type >= 0 && e->type != n->type)
				continue;
			if (n->cat >= 0 && e->cat != n->cat)
				continue;
			if (n->pricef && !(e->price && cmpv(e->price, n->pop, (uint64_t)n->pricef)))
				continue;
			c++;
		}
		return cmpv(c, n->op, n->n);
	case N_IDLE:
		for (int i = 0; i < nev; i++)
			if (evs[i].ts <= now && evs[i].ts > last)
				last = evs[i].ts;
		return last == 0 || now >= last + n->window;
	case N_CARTV:
	case N_CARTI:
		ref_cart(evs, nev, now, &ci, &cv);
		return n->kind == N_CARTV ? cmpv(cv, n->op, n->n) : cmpv(ci, n->op, n->n);
	case N_LTV:
		return cmpv(u->known ? (uint64_t)(u->ltv * 100 + 0.5) : 0, n->op, n->n);
	case N_LIFE:
		return (((n->lmask >> (u->known ? u->life : 0)) & 1) != 0) == (n->op == 4);
	case N_VIS:
		return u->known == (int)n->n;
	case N_PIVOT:
		return u->pivot;
	case N_NOT:
		return !ref_eval(n->a, evs, nev, now, u);
	case N_AND:
		return ref_eval(n->a, evs, nev, now, u) && ref_eval(n->b, evs, nev, now, u);
	default:
		return ref_eval(n->a, evs, nev, now, u) || ref_eval(n->b, evs, nev, now, u);
	}
}

static uint64_t ref_bits(struct node **nodes, int nseg, const struct ev *evs, int nev, uint64_t now,
			 const struct refuser *u)
{
	uint64_t b = 0;
	for (int i = 0; i < nseg; i++)
		b |= (uint64_t)ref_eval(nodes[i], evs, nev, now, u) << i;
	return b;
}

struct seen {
	uint64_t bits;
	uint64_t last_seq[8];
	int calls;
};

static void on_transition(void *arg, uint32_t seg, int enter, uint64_t seq, uint64_t now)
{
	struct seen *s = arg;
	(void)now;
	assert_int_equal(seq, s->last_seq[seg] + 1);
	s->last_seq[seg] = seq;
	assert_int_equal((s->bits >> seg & 1), !enter);
	s->bits ^= 1ull << seg;
	s->calls++;
}

static void test_seg_eval_matches_brute_force_reference(void **state)
{
	(void)state;
	srand(16);
	for (int round = 0; round < 400; round++) {
		enum { NSEG = 6, NEV = 40 };
		struct node *nodes[NSEG];
		struct wf_seg_defs d = { 0 };
		struct wf_seg_set *set;
		struct wf_seg_error err;
		char text[4096];

		for (int i = 0; i < NSEG; i++) {
			char name[8];
			text[0] = '\0';
			nodes[i] = gen(0, text, sizeof(text));
			snprintf(name, sizeof(name), "s%d", i);
			assert_true(wf_seg_defs_put(&d, name, text, strlen(text)) > 0);
		}
		if (wf_seg_set_build(&d, &set, &err, NULL) < 0)
			fail_msg("build: %s (%s)", err.msg, d.defs[0].rule);
		struct refuser ru = { rand() % 2, 1 + rand() % 6, rand() % 2, (float)(rand() % 100) };
		struct wf_seg_inputs u = { ru.known, ru.life, ru.ltv, ru.pivot, 0, 0, 0 };
		struct ev evs[NEV];
		uint64_t t = 1000000;
		for (int i = 0; i < NEV; i++) {
			t += (uint64_t)(rand() % 4 == 0 ? rand() % 130000 : rand() % 3000);
			evs[i] = (struct ev){ rand() % WF_EV_COUNT, t, rand() % 4 - 1, (uint32_t)(rand() % 3) * 150,
					      1 + (uint64_t)(rand() % 6) };
		}
		/* Live: events applied in order, a step at each event and at
		 * every deadline in between, as the ranker runs it. */
		struct wf_seg_state *st = calloc(1, wf_seg_state_size(set));
		struct seen seen = { 0 };
		wf_seg_state_init(set, st);
		uint64_t next = WF_SEG_NEVER;
		for (int i = 0; i <= NEV; i++) {
			uint64_t until = i < NEV ? evs[i].ts : t + 300000;
			while (next < until) {
				uint64_t at = next;
				next = wf_seg_step(set, st, &u, at, on_transition, &seen);
				assert_int_equal(seen.bits, ref_bits(nodes, NSEG, evs, i, at, &ru));
				/* Nothing changes between a deadline and the next. */
				uint64_t mid = at + (next == WF_SEG_NEVER ? 5000 : (next - at) / 2);
				if (mid < until)
					assert_int_equal(ref_bits(nodes, NSEG, evs, i, mid, &ru), seen.bits);
			}
			if (i == NEV)
				break;
			const struct ev *e = &evs[i];
			struct wf_seg_event we = { .type = e->type, .ts_ms = e->ts, .price_cents = e->price };
			uint64_t items, cents;
			ref_cart(evs, i + 1, e->ts, &items, &cents);
			u.cart_items = (uint32_t)items;
			u.cart_cents = cents;
			if (e->cat >= 0) {
				we.category = cats[e->cat];
				we.category_len = (uint32_t)strlen(cats[e->cat]);
			}
			wf_seg_apply(set, st, &we);
			next = wf_seg_step(set, st, &u, e->ts, on_transition, &seen);
			uint64_t want = ref_bits(nodes, NSEG, evs, i + 1, e->ts, &ru);
			if (seen.bits != want)
				fail_msg("round %d event %d: got %llx want %llx; rules %s | %s | %s", round, i,
					 (unsigned long long)seen.bits, (unsigned long long)want, d.defs[0].rule,
					 d.defs[1].rule, d.defs[2].rule);
			/* Random times ahead, evaluated without stepping. */
			for (int k = 0; k < 3; k++) {
				uint64_t at = e->ts + (uint64_t)(rand() % 200000);
				if (i + 1 < NEV && at >= evs[i + 1].ts)
					continue;
				assert_int_equal(wf_seg_eval(set, st, &u, at, NULL),
						 ref_bits(nodes, NSEG, evs, i + 1, at, &ru));
			}
		}
		/* A preview's state (SEGPREVIEW): every event applied with its
		 * item's match bits, for one evaluation time only (times out of
		 * the windows then dropped, items out of them not resolved):
		 * the same answer at that time. */
		for (int k = 0; k < 4 && wf_seg_set_count_atoms(set) <= 64; k++) {
			uint64_t at = k == 0 ? t : evs[0].ts + (uint64_t)(rand() % (int)(t + 200000 - evs[0].ts));
			int n = 0;
			while (n < NEV && evs[n].ts <= at)
				n++;
			wf_seg_state_init(set, st);
			for (int i = 0; i < n; i++) {
				struct wf_seg_event we = { .type = evs[i].type, .ts_ms = evs[i].ts,
							   .price_cents = evs[i].price };
				uint64_t m = 0;
				if (evs[i].cat >= 0) {
					we.category = cats[evs[i].cat];
					we.category_len = (uint32_t)strlen(cats[evs[i].cat]);
				}
				if (evs[i].ts + wf_seg_item_window(set, evs[i].type) > at)
					m = wf_seg_item_match(set, &we);
				wf_seg_apply_matched(set, st, evs[i].type, evs[i].ts, m, at);
			}
			uint64_t items, cents;
			ref_cart(evs, n, at, &items, &cents);
			u.cart_items = (uint32_t)items;
			u.cart_cents = cents;
			assert_int_equal(wf_seg_eval(set, st, &u, at, NULL), ref_bits(nodes, NSEG, evs, n, at, &ru));
		}
		free(st);
		wf_seg_set_free(set);
		wf_seg_defs_fini(&d);
		for (int i = 0; i < NSEG; i++)
			node_free(nodes[i]);
	}
}

static void first_seq(void *arg, uint32_t seg, int enter, uint64_t seq, uint64_t now)
{
	(void)seg;
	(void)now;
	assert_true(enter);
	*(uint64_t *)arg = seq;
}

/* Sequence numbers: a segment's first transition is numbered from the
 * LSN of the session's newest event (a forgotten state that comes back
 * with a later event numbers above everything it used), the next ones
 * continue by one. */
static void test_seg_seq_first_from_lsn_then_by_one(void **state)
{
	struct wf_seg_defs d = { 0 };
	struct wf_seg_set *set;
	uint64_t got = 0;

	(void)state;
	assert_int_equal(wf_seg_seq_next(0, 0), 1);
	assert_int_equal(wf_seg_seq_next(0, 7), (7ull << 20) + 1);
	assert_int_equal(wf_seg_seq_next((7ull << 20) + 1, 9), (7ull << 20) + 2);
	assert_true(wf_seg_seq_next(0, 8) > (7ull << 20) + 1000);
	assert_true(wf_seg_defs_put(&d, "v", "did(view, 1h)", 13) > 0);
	assert_int_equal(wf_seg_set_build(&d, &set, NULL, NULL), 0);
	struct wf_seg_state *st = calloc(1, wf_seg_state_size(set));
	struct wf_seg_inputs u = { .lsn = 42 };
	wf_seg_state_init(set, st);
	wf_seg_apply(set, st, &(struct wf_seg_event){ .type = WF_EV_VIEW, .ts_ms = 1000 });
	wf_seg_step(set, st, &u, 1000, first_seq, &got);
	assert_int_equal(got, (42ull << 20) + 1);
	assert_int_equal(*wf_seg_state_seq(set, st, 0), got);
	free(st);
	wf_seg_set_free(set);
	wf_seg_defs_fini(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seg_compile_good_rules_compile),
		cmocka_unit_test(test_seg_compile_errors_name_position),
		cmocka_unit_test(test_seg_defs_round_trip_and_versions),
		cmocka_unit_test(test_seg_defs_malformed_lines_refused),
		cmocka_unit_test(test_seg_set_in_resolution_and_cycles),
		cmocka_unit_test(test_seg_defaults_reproduce_builtin_segments),
		cmocka_unit_test(test_seg_eval_matches_brute_force_reference),
		cmocka_unit_test(test_seg_seq_first_from_lsn_then_by_one),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
