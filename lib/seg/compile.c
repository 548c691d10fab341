/*
 * compile.c - the segment rule language (docs/SEGMENTS.md): a recursive
 * descent parser over the rule's bytes that emits a postfix program of
 * atoms and and/or/not (struct wf_seg_rule), or the position of the first
 * error and what was expected there. Linked into libweft (weft-admin
 * validates with it, weft-ranker evaluates what it builds).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/seg/seg_int.h"

const char *const seg_lifecycle_names[SEG_LIFECYCLES] = {
	"none", "new", "active", "loyal", "vip", "at_risk", "lapsed",
};

void seg_error(struct wf_seg_error *err, uint32_t pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err)
		return;
	err->pos = pos;
	n = snprintf(err->msg, sizeof(err->msg), "at %u: ", pos + 1);
	va_start(ap, fmt);
	vsnprintf(err->msg + n, sizeof(err->msg) - (size_t)n, fmt, ap);
	va_end(ap);
}

struct parser {
	const char *s;
	uint32_t len, pos;
	uint32_t depth;
	struct wf_seg_rule *r;
	struct wf_seg_error *err;
	int failed;
};

#define WINDOW_HINT "a window like 30s, 10m, 2h, 7d"

static int fail(struct parser *p, uint32_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct parser *p, uint32_t pos, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	if (p->failed) /* the first error wins */
		return -EINVAL;
	p->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	seg_error(p->err, pos, "%s", msg);
	return -EINVAL;
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
				   p->s[p->pos] == '\r'))
		p->pos++;
}

static int is_word(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* The next word [A-Za-z0-9_-]+ (after blanks): its start and length (0: none). */
static uint32_t peek_word(struct parser *p, uint32_t *ret_at)
{
	uint32_t n = 0;

	skip_ws(p);
	*ret_at = p->pos;
	while (p->pos + n < p->len && is_word(p->s[p->pos + n]))
		n++;
	return n;
}

static int word_is(const struct parser *p, uint32_t at, uint32_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(p->s + at, w, n) == 0;
}

/* Take the next word if it is w (any case). */
static int accept_word(struct parser *p, const char *w)
{
	uint32_t at, n = peek_word(p, &at);

	if (n && word_is(p, at, n, w)) {
		p->pos = at + n;
		return 1;
	}
	return 0;
}

static int accept(struct parser *p, char c)
{
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == c) {
		p->pos++;
		return 1;
	}
	return 0;
}

static int expect(struct parser *p, char c, const char *what)
{
	if (accept(p, c))
		return 0;
	return fail(p, p->pos, "expected %s", what);
}

/* A comparison operator. */
static int parse_cmp(struct parser *p, uint8_t *ret)
{
	skip_ws(p);
	const char *c = p->s + p->pos;
	uint32_t left = p->len - p->pos;

	if (left >= 2 && c[0] == '>' && c[1] == '=') {
		*ret = SEG_GE;
		p->pos += 2;
	} else if (left >= 2 && c[0] == '<' && c[1] == '=') {
		*ret = SEG_LE;
		p->pos += 2;
	} else if (left >= 2 && c[0] == '!' && c[1] == '=') {
		*ret = SEG_NE;
		p->pos += 2;
	} else if (left >= 2 && c[0] == '=' && c[1] == '=') {
		*ret = SEG_EQ;
		p->pos += 2;
	} else if (left >= 1 && c[0] == '>') {
		*ret = SEG_GT;
		p->pos++;
	} else if (left >= 1 && c[0] == '<') {
		*ret = SEG_LT;
		p->pos++;
	} else if (left >= 1 && c[0] == '=') {
		*ret = SEG_EQ;
		p->pos++;
	} else {
		return fail(p, p->pos, "expected a comparison (>=, >, <=, <, =, !=)");
	}
	return 0;
}

/* = or != only (names). */
static int parse_eq(struct parser *p, uint8_t *ret, const char *what)
{
	uint32_t at;
	uint8_t op;

	skip_ws(p);
	at = p->pos;
	if (parse_cmp(p, &op) < 0)
		return -EINVAL;
	if (op != SEG_EQ && op != SEG_NE)
		return fail(p, at, "expected = or != after %s", what);
	*ret = op;
	return 0;
}

/* A non-negative integer, at most max. */
static int parse_int(struct parser *p, int64_t max, const char *what, int64_t *ret)
{
	uint32_t at;
	int64_t v = 0;

	skip_ws(p);
	at = p->pos;
	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
		v = v * 10 + (p->s[p->pos++] - '0');
		if (v > max)
			return fail(p, at, "%s out of range: at most %lld", what, (long long)max);
	}
	if (p->pos == at)
		return fail(p, at, "expected %s (a whole number)", what);
	*ret = v;
	return 0;
}

/* A non-negative decimal amount with at most 2 decimals, as cents (at most 10^12 units). */
static int parse_cents(struct parser *p, const char *what, int64_t *ret)
{
	uint32_t at, frac = 0;
	int64_t v = 0;

	skip_ws(p);
	at = p->pos;
	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
		v = v * 10 + (p->s[p->pos++] - '0');
		if (v > 1000000000000ll)
			return fail(p, at, "%s out of range: at most 1000000000000", what);
	}
	if (p->pos == at)
		return fail(p, at, "expected %s (a number like 50 or 19.99)", what);
	v *= 100;
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		for (int64_t scale = 10; p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9'; scale /= 10) {
			if (scale == 0)
				return fail(p, p->pos, "expected at most 2 decimals in %s", what);
			v += (p->s[p->pos++] - '0') * scale;
			frac++;
		}
		if (!frac)
			return fail(p, p->pos, "expected decimals after '.' in %s", what);
	}
	*ret = v;
	return 0;
}

/* A window: integer + s, m, h or d, 1s..7d. */
static int parse_window(struct parser *p, uint64_t *ret)
{
	uint32_t at;
	uint64_t v = 0, unit;

	skip_ws(p);
	at = p->pos;
	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
		v = v * 10 + (uint64_t)(p->s[p->pos++] - '0');
		if (v > 1000000000ull)
			return fail(p, at, "window too long: at most 7d (sessions and their history keep no more)");
	}
	if (p->pos == at || p->pos >= p->len)
		return fail(p, at, "expected " WINDOW_HINT);
	switch (p->s[p->pos]) {
	case 's': unit = 1000; break;
	case 'm': unit = 60000; break;
	case 'h': unit = 3600000; break;
	case 'd': unit = 86400000; break;
	default: return fail(p, at, "expected " WINDOW_HINT);
	}
	p->pos++;
	if (p->pos < p->len && is_word(p->s[p->pos]))
		return fail(p, at, "expected " WINDOW_HINT);
	if (v == 0)
		return fail(p, at, "window must be at least 1s");
	if (v * unit > WF_SEG_WINDOW_MAX_MS)
		return fail(p, at, "window too long: at most 7d (sessions and their history keep no more)");
	*ret = v * unit;
	return 0;
}

/* A filter value: "quoted" (\" and \\ escapes) or a run of bytes up to a
 * blank, ',', ')' or '|'. */
static int parse_value(struct parser *p, char *out, uint8_t *ret_len, const char *what)
{
	uint32_t at, n = 0;

	skip_ws(p);
	at = p->pos;
	if (p->pos < p->len && p->s[p->pos] == '"') {
		p->pos++;
		for (;;) {
			if (p->pos >= p->len)
				return fail(p, at, "expected a closing '\"' for %s", what);
			char c = p->s[p->pos++];
			if (c == '"')
				break;
			if (c == '\\' && p->pos < p->len)
				c = p->s[p->pos++];
			if (n == SEG_VALUE_MAX)
				return fail(p, at, "%s too long: at most %u bytes", what, SEG_VALUE_MAX);
			out[n++] = c;
		}
	} else {
		while (p->pos < p->len && !strchr(" \t\r\n,()|\"", p->s[p->pos])) {
			if (n == SEG_VALUE_MAX)
				return fail(p, at, "%s too long: at most %u bytes", what, SEG_VALUE_MAX);
			out[n++] = p->s[p->pos++];
		}
	}
	if (n == 0)
		return fail(p, at, "expected %s", what);
	out[n] = '\0';
	*ret_len = (uint8_t)n;
	return 0;
}

static struct seg_atom *new_atom(struct parser *p, uint32_t at, uint8_t kind)
{
	struct wf_seg_rule *r = p->r;

	if (r->natoms == WF_SEG_ATOMS_MAX || r->nops == SEG_OPS_MAX) {
		fail(p, at, "rule too long: at most %u terms", WF_SEG_ATOMS_MAX);
		return NULL;
	}
	struct seg_atom *a = &r->atoms[r->natoms];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->in_idx = -1;
	r->ops[r->nops++] = (uint16_t)r->natoms++;
	return a;
}

static int emit(struct parser *p, uint32_t at, uint16_t op)
{
	if (p->r->nops == SEG_OPS_MAX)
		return fail(p, at, "rule too long: at most %u operators", SEG_OPS_MAX);
	p->r->ops[p->r->nops++] = op;
	return 0;
}

/* Event times a count atom keeps to decide op n (seg_int.h, set.c). */
static uint32_t count_slots(uint8_t op, int64_t n)
{
	switch (op) {
	case SEG_GE: return (uint32_t)n;      /* the n newest all in the window */
	case SEG_LT: return (uint32_t)n;
	case SEG_GT: return (uint32_t)n + 1;
	case SEG_LE: return (uint32_t)n + 1;
	default: return (uint32_t)n + 1;      /* = and !=: exact up to n, and "more" */
	}
}

/* count(TYPE[, filter...], WINDOW) op N, or did(TYPE[, filter...], WINDOW). */
static int parse_count(struct parser *p, uint32_t at, int did)
{
	struct seg_atom *a = new_atom(p, at, SEG_A_COUNT);
	uint32_t wat, n;

	if (!a || expect(p, '(', "'(' after count or did") < 0)
		return -EINVAL;
	n = peek_word(p, &wat);
	if (n && word_is(p, wat, n, "any")) {
		a->type = WF_SEG_TYPE_ANY;
	} else {
		int t = n ? wf_event_from_name(p->s + wat, n) : -1;
		if (t < 0)
			return fail(p, wat, "expected an event type (view, click, pdp, hover, dwell, scroll, search, "
					    "cart_add, cart_remove, purchase, or any)");
		a->type = (uint8_t)t;
	}
	p->pos = wat + n;
	for (;;) {
		if (expect(p, ',', "',' and a window or a filter") < 0)
			return -EINVAL;
		uint32_t fat;
		n = peek_word(p, &fat);
		uint8_t kind = word_is(p, fat, n, "category") ? SEG_F_CATEGORY
			     : word_is(p, fat, n, "brand")  ? SEG_F_BRAND
			     : word_is(p, fat, n, "price")  ? SEG_F_PRICE
							    : 0;
		if (!kind)
			break; /* the window */
		if (a->nfilt == WF_SEG_FILTERS_MAX)
			return fail(p, fat, "too many filters: at most %u", WF_SEG_FILTERS_MAX);
		struct seg_filter *f = &p->r->filt[a - p->r->atoms][a->nfilt++];
		p->pos = fat + n;
		f->kind = kind;
		p->r->uses |= WF_SEG_USES_ITEM;
		if (kind == SEG_F_PRICE) {
			int64_t c;
			if (parse_cmp(p, &f->op) < 0 || parse_cents(p, "a price", &c) < 0)
				return -EINVAL;
			f->cents = (uint64_t)c;
		} else if (parse_eq(p, &f->op, kind == SEG_F_CATEGORY ? "category" : "brand") < 0 ||
			   parse_value(p, f->s, &f->len, kind == SEG_F_CATEGORY ? "a category name" : "a brand name") < 0) {
			return -EINVAL;
		}
	}
	if (parse_window(p, &a->window_ms) < 0 || expect(p, ')', "')'") < 0)
		return -EINVAL;
	if (did) {
		a->op = SEG_GE;
		a->n = 1;
	} else if (parse_cmp(p, &a->op) < 0 || parse_int(p, WF_SEG_N_MAX, "N", &a->n) < 0) {
		return -EINVAL;
	}
	a->k = count_slots(a->op, a->n);
	p->r->uses |= WF_SEG_USES_EVENTS;
	return 0;
}

/* lifecycle (= | !=) name ("|" name)... */
static int parse_lifecycle(struct parser *p, struct seg_atom *a)
{
	if (parse_eq(p, &a->op, "lifecycle") < 0)
		return -EINVAL;
	do {
		uint32_t at, n = peek_word(p, &at), i;
		for (i = 1; i < SEG_LIFECYCLES && !(n && word_is(p, at, n, seg_lifecycle_names[i])); i++)
			;
		if (i == SEG_LIFECYCLES)
			return fail(p, at, "expected a lifecycle: new, active, loyal, vip, at_risk or lapsed");
		a->mask |= 1u << i;
		p->pos = at + n;
	} while (accept(p, '|'));
	return 0;
}

static int parse_expr(struct parser *p);

/* An atom or a parenthesised expression. */
static int parse_primary(struct parser *p)
{
	uint32_t at, n;
	struct seg_atom *a;

	if (accept(p, '(')) {
		at = p->pos - 1;
		if (++p->depth > WF_SEG_DEPTH_MAX)
			return fail(p, at, "nested too deep: at most %u levels", WF_SEG_DEPTH_MAX);
		if (parse_expr(p) < 0 || expect(p, ')', "')' or and/or") < 0)
			return -EINVAL;
		p->depth--;
		return 0;
	}
	n = peek_word(p, &at);
	if (n == 0)
		return fail(p, at, "expected a term: count(, did(, idle(, in(, cart_value, cart_items, lifecycle, "
				   "ltv, visitor, pivot, not or '('");
	p->pos = at + n;
	if (word_is(p, at, n, "count") || word_is(p, at, n, "did"))
		return parse_count(p, at, word_is(p, at, n, "did"));
	if (word_is(p, at, n, "idle")) {
		if (!(a = new_atom(p, at, SEG_A_IDLE)) || expect(p, '(', "'(' after idle") < 0 ||
		    parse_window(p, &a->window_ms) < 0 || expect(p, ')', "')'") < 0)
			return -EINVAL;
		p->r->uses |= WF_SEG_USES_IDLE;
		return 0;
	}
	if (word_is(p, at, n, "in")) {
		uint32_t nat, nn;
		if (!(a = new_atom(p, at, SEG_A_IN)) || expect(p, '(', "'(' after in") < 0)
			return -EINVAL;
		nn = peek_word(p, &nat);
		if (!nn || !wf_seg_name_valid(p->s + nat, nn))
			return fail(p, nat, "expected a segment name ([A-Za-z0-9_-], at most %u)", WF_SEG_NAME_MAX);
		memcpy(p->r->in_name[a - p->r->atoms], p->s + nat, nn);
		p->r->in_name[a - p->r->atoms][nn] = '\0';
		p->pos = nat + nn;
		p->r->uses |= WF_SEG_USES_IN;
		return expect(p, ')', "')'");
	}
	if (word_is(p, at, n, "cart_value") || word_is(p, at, n, "ltv")) {
		int cart = word_is(p, at, n, "cart_value");
		if (!(a = new_atom(p, at, cart ? SEG_A_CART_VALUE : SEG_A_LTV)) || parse_cmp(p, &a->op) < 0 ||
		    parse_cents(p, cart ? "an amount" : "a lifetime value", &a->n) < 0)
			return -EINVAL;
		p->r->uses |= cart ? WF_SEG_USES_CART : WF_SEG_USES_USER | WF_SEG_USES_LTV;
		return 0;
	}
	if (word_is(p, at, n, "cart_items")) {
		if (!(a = new_atom(p, at, SEG_A_CART_ITEMS)) || parse_cmp(p, &a->op) < 0 ||
		    parse_int(p, WF_SEG_N_MAX, "a number of items", &a->n) < 0)
			return -EINVAL;
		p->r->uses |= WF_SEG_USES_CART;
		return 0;
	}
	if (word_is(p, at, n, "lifecycle")) {
		if (!(a = new_atom(p, at, SEG_A_LIFECYCLE)) || parse_lifecycle(p, a) < 0)
			return -EINVAL;
		p->r->uses |= WF_SEG_USES_USER;
		return 0;
	}
	if (word_is(p, at, n, "visitor")) {
		uint32_t vat, vn;
		if (!(a = new_atom(p, at, SEG_A_VISITOR)) || parse_eq(p, &a->op, "visitor") < 0)
			return -EINVAL;
		vn = peek_word(p, &vat);
		if (vn && word_is(p, vat, vn, "returning"))
			a->n = 1;
		else if (!(vn && word_is(p, vat, vn, "new")))
			return fail(p, vat, "expected a visitor type: new or returning");
		p->pos = vat + vn;
		p->r->uses |= WF_SEG_USES_USER;
		return 0;
	}
	if (word_is(p, at, n, "pivot")) {
		if (!new_atom(p, at, SEG_A_PIVOT))
			return -EINVAL;
		p->r->uses |= WF_SEG_USES_PIVOT;
		return 0;
	}
	if (word_is(p, at, n, "category") || word_is(p, at, n, "brand") || word_is(p, at, n, "price"))
		return fail(p, at, "'%.*s' filters events: write it inside count(TYPE, %.*s=..., WINDOW)", (int)n,
			    p->s + at, (int)n, p->s + at);
	return fail(p, at, "unknown term '%.*s': expected count(, did(, idle(, in(, cart_value, cart_items, "
			   "lifecycle, ltv, visitor, pivot, not or '('",
		    (int)(n > 40 ? 40 : n), p->s + at);
}

static int parse_unary(struct parser *p)
{
	uint32_t at;
	uint32_t n = peek_word(p, &at);

	if (n && word_is(p, at, n, "not")) {
		p->pos = at + n;
		if (++p->depth > WF_SEG_DEPTH_MAX)
			return fail(p, at, "nested too deep: at most %u levels", WF_SEG_DEPTH_MAX);
		if (parse_unary(p) < 0)
			return -EINVAL;
		p->depth--;
		return emit(p, at, SEG_OP_NOT);
	}
	return parse_primary(p);
}

static int parse_and(struct parser *p)
{
	if (parse_unary(p) < 0)
		return -EINVAL;
	for (;;) {
		uint32_t at;
		peek_word(p, &at);
		if (!accept_word(p, "and"))
			return 0;
		if (parse_unary(p) < 0 || emit(p, at, SEG_OP_AND) < 0)
			return -EINVAL;
	}
}

static int parse_expr(struct parser *p)
{
	if (parse_and(p) < 0)
		return -EINVAL;
	for (;;) {
		uint32_t at;
		peek_word(p, &at);
		if (!accept_word(p, "or"))
			return 0;
		if (parse_and(p) < 0 || emit(p, at, SEG_OP_OR) < 0)
			return -EINVAL;
	}
}

int wf_seg_compile(const char *rule, size_t len, struct wf_seg_rule **ret, struct wf_seg_error *err)
{
	struct parser p = { .s = rule, .len = (uint32_t)len, .err = err };
	struct wf_seg_rule *r;

	if (len > WF_SEG_RULE_MAX) {
		seg_error(err, WF_SEG_RULE_MAX, "rule too long: at most %u bytes", WF_SEG_RULE_MAX);
		return -E2BIG;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	p.r = r;
	if (memchr(rule, '\0', len)) {
		fail(&p, (uint32_t)((const char *)memchr(rule, '\0', len) - rule), "unexpected NUL byte");
		goto bad;
	}
	if (parse_expr(&p) < 0)
		goto bad;
	skip_ws(&p);
	if (p.pos != p.len) {
		fail(&p, p.pos, "expected and, or, or the end of the rule");
		goto bad;
	}
	*ret = r;
	return 0;
bad:
	free(r);
	return -EINVAL;
}

void wf_seg_rule_free(struct wf_seg_rule *r)
{
	free(r);
}

uint32_t wf_seg_rule_uses(const struct wf_seg_rule *r)
{
	return r->uses;
}
