/*
 * exp.c - experiment definitions, experiments.conf, and the assignment of
 * units to arms (see exp.h). Linked into weft-admin, weft-ranker and
 * weftctl through libweft. Never logs: errors go back in err.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/exp.h"
#include "lib/proto.h"
#include "lib/util.h"

static const char *const policy_names[WF_EXP_POLICIES] = { "live", "batch", "stale", "weights" };
static const char *const state_names[WF_EXP_STATES] = { "created", "running", "stopped" };

const char *wf_exp_policy_name(int policy)
{
	return policy >= 0 && policy < WF_EXP_POLICIES ? policy_names[policy] : "?";
}

const char *wf_exp_state_name(int state)
{
	return state >= 0 && state < WF_EXP_STATES ? state_names[state] : "?";
}

const char *wf_exp_unit_name(int unit)
{
	return unit == WF_EXP_UNIT_SESSION ? "session" : "user";
}

static void seterr(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (!err || !n)
		return;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

int wf_exp_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > WF_EXP_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

/* A percentage "50", "33.33", "0.5" into 1/100 of a percent. */
static int share_parse(const char *s, size_t len, uint32_t *ret)
{
	uint64_t v = 0;
	size_t i = 0;
	int frac = -1;

	if (len == 0)
		return -EINVAL;
	for (; i < len; i++) {
		if (s[i] == '.' && frac < 0) {
			frac = 0;
			continue;
		}
		if (s[i] < '0' || s[i] > '9' || frac >= 2 || v > 100000)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (frac >= 0)
			frac++;
	}
	for (frac = frac < 0 ? 0 : frac; frac < 2; frac++)
		v *= 10;
	if (v == 0 || v > WF_EXP_SHARE_SCALE)
		return -ERANGE;
	*ret = (uint32_t)v;
	return 0;
}

static int weight_parse(const char *s, size_t len, float *ret)
{
	double d;

	if (wf_parse_double(s, len, &d) < 0 || !isfinite(d) || d < 0 || d > 10)
		return -EINVAL;
	*ret = (float)d;
	return 0;
}

int wf_exp_arm_parse(const char *s, struct wf_exp_armdef *ret, char *err, size_t errlen)
{
	struct wf_exp_armdef a = { 0 };
	const char *eq = strchr(s, '='), *colon, *pol;
	int r;

	if (!eq || !wf_exp_name_valid(s, (size_t)(eq - s))) {
		seterr(err, errlen, "arm '%.80s' wants ARM=PERCENT:POLICY with ARM of 1..%u letters, digits, '_', '-' or '.'",
		       s, WF_EXP_NAME_MAX);
		return -EINVAL;
	}
	memcpy(a.name, s, (size_t)(eq - s));
	colon = strchr(eq + 1, ':');
	if (!colon) {
		seterr(err, errlen, "arm '%.80s' wants ARM=PERCENT:POLICY (no ':POLICY')", s);
		return -EINVAL;
	}
	r = share_parse(eq + 1, (size_t)(colon - eq - 1), &a.share);
	if (r < 0) {
		seterr(err, errlen, "arm '%s': percent '%.*s' is not a number in (0, 100] with at most two decimals",
		       a.name, (int)WF_MIN(colon - eq - 1, 40), eq + 1);
		return -EINVAL;
	}
	pol = colon + 1;
	if (strncmp(pol, "weights:", 8) == 0) {
		const char *comma = strchr(pol + 8, ',');
		a.policy = WF_EXP_WEIGHTS;
		if (!comma || weight_parse(pol + 8, (size_t)(comma - pol - 8), &a.w_batch) < 0 ||
		    weight_parse(comma + 1, strlen(comma + 1), &a.w_session) < 0) {
			seterr(err, errlen, "arm '%s': policy '%.80s' wants weights:BATCH,SESSION, numbers in [0, 10]",
			       a.name, pol);
			return -EINVAL;
		}
	} else {
		a.policy = -1;
		for (int p = 0; p < WF_EXP_POLICIES; p++)
			if (p != WF_EXP_WEIGHTS && strcmp(pol, policy_names[p]) == 0)
				a.policy = p;
		if (a.policy < 0) {
			seterr(err, errlen, "arm '%s': unknown policy '%.80s' (stale, batch, live or weights:BATCH,SESSION)",
			       a.name, pol);
			return -EINVAL;
		}
	}
	*ret = a;
	return 0;
}

void wf_exp_arm_format(const struct wf_exp_armdef *a, char *out, size_t n)
{
	char pct[32];

	snprintf(pct, sizeof(pct), "%u.%02u", a->share / 100, a->share % 100);
	/* "50.00" -> "50", "12.50" -> "12.5" */
	size_t l = strlen(pct);
	while (pct[l - 1] == '0')
		pct[--l] = 0;
	if (pct[l - 1] == '.')
		pct[--l] = 0;
	if (a->policy == WF_EXP_WEIGHTS)
		snprintf(out, n, "%s=%s:weights:%.6g,%.6g", a->name, pct, (double)a->w_batch, (double)a->w_session);
	else
		snprintf(out, n, "%s=%s:%s", a->name, pct, wf_exp_policy_name(a->policy));
}

int wf_exp_window_parse(const char *s, uint64_t *ret_ms)
{
	size_t len = strlen(s);
	uint64_t mult = 1;
	int64_t v;

	if (len == 0)
		return -EINVAL;
	switch (s[len - 1]) {
	case 's': mult = 1000; break;
	case 'm': mult = 60 * 1000; break;
	case 'h': mult = 3600 * 1000; break;
	case 'd': mult = 86400 * 1000; break;
	default: len++; break;
	}
	len--;
	if (wf_parse_i64(s, len, &v) < 0 || v <= 0 || (uint64_t)v > UINT64_MAX / mult / 2)
		return -EINVAL;
	*ret_ms = (uint64_t)v * mult;
	return 0;
}

int wf_exp_pages_parse(const char *s, uint32_t *ret, char *err, size_t errlen)
{
	uint32_t m = 0;

	if (strcmp(s, "all") == 0) {
		*ret = 0;
		return 0;
	}
	while (*s) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		int p = wf_page_from_name(s, len);
		if (p < 0) {
			seterr(err, errlen, "unknown page '%.*s' (home, pdp, cart, search, category, email)",
			       (int)WF_MIN(len, 40), s);
			return -EINVAL;
		}
		m |= 1u << p;
		s += len + (e ? 1 : 0);
	}
	if (!m) {
		seterr(err, errlen, "an empty page list");
		return -EINVAL;
	}
	*ret = m;
	return 0;
}

void wf_exp_pages_format(uint32_t pages, char *out, size_t n)
{
	size_t at = 0;

	if (!pages) {
		snprintf(out, n, "all");
		return;
	}
	out[0] = 0;
	for (int p = 0; p < WF_PAGE_COUNT && at < n; p++)
		if (pages >> p & 1u)
			at += (size_t)snprintf(out + at, n - at, "%s%s", at ? "," : "", wf_page_name(p));
}

int wf_exp_overlap(const struct wf_exp *a, const struct wf_exp *b)
{
	return a->unit == b->unit && (a->pages == 0 || b->pages == 0 || (a->pages & b->pages) != 0);
}

int wf_exp_validate(const struct wf_exp *e, char *err, size_t errlen)
{
	uint32_t sum = 0;

	if (!wf_exp_name_valid(e->name, strlen(e->name))) {
		seterr(err, errlen, "experiment name '%.60s' wants 1..%u letters, digits, '_', '-' or '.'", e->name,
		       WF_EXP_NAME_MAX);
		return -EINVAL;
	}
	if (e->narms == 0 || e->narms > WF_EXP_ARMS_MAX) {
		seterr(err, errlen, "experiment '%s' wants 1..%u arms (--arm ARM=PERCENT:POLICY)", e->name,
		       WF_EXP_ARMS_MAX);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < e->narms; i++) {
		sum += e->arms[i].share;
		for (uint32_t j = 0; j < i; j++)
			if (strcmp(e->arms[i].name, e->arms[j].name) == 0) {
				seterr(err, errlen, "experiment '%s': arm '%s' named twice", e->name, e->arms[i].name);
				return -EINVAL;
			}
	}
	if (sum > WF_EXP_SHARE_SCALE) {
		seterr(err, errlen, "experiment '%s': the arms' percentages add up to %u.%02u, over 100", e->name,
		       sum / 100, sum % 100);
		return -EINVAL;
	}
	if (e->window_ms == 0) {
		seterr(err, errlen, "experiment '%s': the window must be positive", e->name);
		return -EINVAL;
	}
	return 0;
}

struct wf_exp *wf_exp_find(struct wf_exp_set *set, const char *name)
{
	for (uint32_t i = 0; i < set->n; i++)
		if (strcmp(set->exps[i].name, name) == 0)
			return &set->exps[i];
	return NULL;
}

size_t wf_exp_unit_of(const struct wf_exp *e, const char *session, size_t slen, const char *user, size_t ulen,
		      char *out)
{
	int by_user = e->unit == WF_EXP_UNIT_USER && ulen > 0 && !wf_user_is_anon(user, ulen);
	const char *id = by_user ? user : session;
	size_t len = WF_MIN(by_user ? ulen : slen, (size_t)WF_ID_MAX);

	out[0] = by_user ? 'u' : 's';
	out[1] = ':';
	memcpy(out + 2, id, len);
	out[2 + len] = 0;
	return 2 + len;
}

int wf_exp_assign(const struct wf_exp *e, const char *unit, size_t len)
{
	uint8_t buf[8 + WF_EXP_UNIT_MAX];
	uint64_t h;
	uint32_t bucket, at = 0;

	len = WF_MIN(len, (size_t)WF_EXP_UNIT_MAX);
	memcpy(buf, &e->salt, 8); /* little-endian on every box weft runs on */
	memcpy(buf + 8, unit, len);
	h = wf_hash64(buf, 8 + len);
	bucket = (uint32_t)(h % WF_EXP_SHARE_SCALE);
	for (uint32_t i = 0; i < e->narms; i++) {
		at += e->arms[i].share;
		if (bucket < at)
			return (int)i;
	}
	return -1;
}

/* ---- experiments.conf ---- */

static int u64_parse(const char *s, size_t len, int hex, uint64_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || len > (hex ? 16u : 19u))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int d;
		char c = s[i];
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (hex && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return -EINVAL;
		v = v * (hex ? 16u : 10u) + (uint64_t)d;
	}
	*ret = v;
	return 0;
}

static void trim(const char **p, size_t *len)
{
	while (*len && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*len)--;
	}
	while (*len && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t' || (*p)[*len - 1] == '\r'))
		(*len)--;
}

/* One "key = value" line of the current experiment e. */
static int conf_kv(struct wf_exp *e, const char *k, size_t kl, const char *v, size_t vl, char *err, size_t errlen)
{
	char val[256];

	if (vl >= sizeof(val)) {
		seterr(err, errlen, "value too long");
		return -EINVAL;
	}
	memcpy(val, v, vl);
	val[vl] = 0;
#define KEY(s) (kl == sizeof(s) - 1 && memcmp(k, s, kl) == 0)
	if (KEY("state")) {
		for (int i = 0; i < WF_EXP_STATES; i++)
			if (strcmp(val, state_names[i]) == 0) {
				e->state = i;
				return 0;
			}
		seterr(err, errlen, "unknown state '%s'", val);
		return -EINVAL;
	}
	if (KEY("unit")) {
		if (strcmp(val, "user") && strcmp(val, "session")) {
			seterr(err, errlen, "unit is user or session, not '%s'", val);
			return -EINVAL;
		}
		e->unit = strcmp(val, "session") == 0 ? WF_EXP_UNIT_SESSION : WF_EXP_UNIT_USER;
		return 0;
	}
	if (KEY("pages"))
		return wf_exp_pages_parse(val, &e->pages, err, errlen);
	if (KEY("arm")) {
		if (e->narms == WF_EXP_ARMS_MAX) {
			seterr(err, errlen, "more than %u arms", WF_EXP_ARMS_MAX);
			return -EINVAL;
		}
		return wf_exp_arm_parse(val, &e->arms[e->narms++], err, errlen);
	}
	uint64_t *dst = KEY("salt") ? &e->salt : KEY("window_ms") ? &e->window_ms : KEY("created_ms") ? &e->created_ms
						: KEY("started_ms") ? &e->started_ms : KEY("stopped_ms") ? &e->stopped_ms : NULL;
#undef KEY
	if (!dst) {
		seterr(err, errlen, "unknown key '%.*s'", (int)WF_MIN(kl, 40), k);
		return -EINVAL;
	}
	if (u64_parse(val, vl, dst == &e->salt, dst) < 0) {
		seterr(err, errlen, "'%.*s' wants a %s number, not '%s'", (int)kl, k, dst == &e->salt ? "hex" : "decimal",
		       val);
		return -EINVAL;
	}
	return 0;
}

int wf_exp_conf_parse(const char *text, size_t len, struct wf_exp_set *ret, char *err, size_t errlen)
{
	struct wf_exp_set *set = calloc(1, sizeof(*set));
	struct wf_exp *e = NULL;
	const char *p = text, *end = text + len;
	uint32_t line = 0;
	char why[200];
	int r = 0;

	if (!set)
		return -ENOMEM;
	while (p < end && r == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *s = p;

		p += l + 1;
		line++;
		trim(&s, &l);
		if (l == 0 || s[0] == '#')
			continue;
		why[0] = 0;
		if (s[0] == '[') {
			const char *name = s + 12;
			size_t nlen = l - 13;
			if (e && wf_exp_validate(e, why, sizeof(why)) < 0) {
				r = -EINVAL;
				break;
			}
			if (l < 14 || memcmp(s, "[experiment ", 12) || s[l - 1] != ']' || !wf_exp_name_valid(name, nlen)) {
				snprintf(why, sizeof(why), "a section is [experiment NAME]");
				r = -EINVAL;
			} else if (set->n == WF_EXP_MAX) {
				snprintf(why, sizeof(why), "more than %u experiments", WF_EXP_MAX);
				r = -EINVAL;
			} else {
				e = &set->exps[set->n++];
				memcpy(e->name, name, nlen);
				e->window_ms = WF_EXP_WINDOW_DEFAULT_MS;
			}
			continue;
		}
		const char *eq = memchr(s, '=', l);
		if (!e || !eq) {
			snprintf(why, sizeof(why), e ? "a line is key = value" : "a key before any [experiment NAME]");
			r = -EINVAL;
			continue;
		}
		const char *k = s, *v = eq + 1;
		size_t kl = (size_t)(eq - s), vl = l - kl - 1;
		trim(&k, &kl);
		trim(&v, &vl);
		r = conf_kv(e, k, kl, v, vl, why, sizeof(why));
	}
	if (r == 0 && e && wf_exp_validate(e, why, sizeof(why)) < 0)
		r = -EINVAL;
	if (r < 0) {
		seterr(err, errlen, "line %u: %s", line, why);
		free(set);
		return r;
	}
	*ret = *set;
	free(set);
	return 0;
}

int wf_exp_conf_format(const struct wf_exp_set *set, struct wf_buf *b)
{
	int r = wf_buf_printf(b, "# weft experiments (written by weft-admin; edit with weftctl experiment)\n");

	for (uint32_t i = 0; i < set->n && r >= 0; i++) {
		const struct wf_exp *e = &set->exps[i];
		char pages[128];

		wf_exp_pages_format(e->pages, pages, sizeof(pages));
		r = wf_buf_printf(b,
				  "\n[experiment %s]\nstate = %s\nunit = %s\nsalt = %016" PRIx64 "\nwindow_ms = %" PRIu64
				  "\npages = %s\ncreated_ms = %" PRIu64 "\nstarted_ms = %" PRIu64 "\nstopped_ms = %" PRIu64 "\n",
				  e->name, wf_exp_state_name(e->state), wf_exp_unit_name(e->unit), e->salt, e->window_ms,
				  pages, e->created_ms, e->started_ms, e->stopped_ms);
		for (uint32_t a = 0; a < e->narms && r >= 0; a++) {
			char arm[160];
			wf_exp_arm_format(&e->arms[a], arm, sizeof(arm));
			r = wf_buf_printf(b, "arm = %s\n", arm);
		}
	}
	return r < 0 ? -ENOMEM : 0;
}

int wf_exp_conf_load(const char *path, struct wf_exp_set *ret, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int r = wf_read_file(path, &text, &len);

	if (r == -ENOENT) {
		memset(ret, 0, sizeof(*ret));
		return 0;
	}
	if (r < 0) {
		seterr(err, errlen, "cannot read %s: %s", path, strerror(-r));
		return r;
	}
	char why[300];
	r = wf_exp_conf_parse(text, len, ret, why, sizeof(why));
	if (r < 0)
		seterr(err, errlen, "%s: %s", path, why);
	free(text);
	return r;
}
