/*
 * defs.c - segment definitions: DIR/segments.conf (one line per segment,
 * "name\tversion\trule\n"; an empty rule is a tombstone that keeps the
 * name's version counter), its parser and writer, and the built-in
 * definitions that apply while the file does not exist. weft-admin writes
 * the file (atomically, then bumps ctl->segdefs_gen); weft-ranker reads
 * it. Linked into libweft.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/seg/seg_int.h"

/* The built-in segments as ordinary rules (docs/SEGMENTS.md, "Defaults"),
 * in the order SEGMENTS listed them before they were rules. */
static const struct {
	const char *name, *rule;
} defaults[] = {
	{ "win_back", "lifecycle = at_risk|lapsed and did(any, 30m)" },
	{ "cart_abandon", "cart_items >= 1 and idle(15m)" },
	{ "high_intent", "count(pdp, 30m) >= 3" },
	{ "intent_pivot", "pivot" },
	{ "at_risk", "lifecycle = at_risk" },
};

int wf_seg_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > WF_SEG_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

void wf_seg_defs_fini(struct wf_seg_defs *defs)
{
	if (!defs)
		return;
	for (uint32_t i = 0; i < defs->n; i++)
		free(defs->defs[i].rule);
	free(defs->defs);
	defs->defs = NULL;
	defs->n = 0;
}

static int find(const struct wf_seg_defs *defs, const char *name, size_t len)
{
	for (uint32_t i = 0; i < defs->n; i++)
		if (strlen(defs->defs[i].name) == len && memcmp(defs->defs[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

/* Append a definition (name already checked). 0 or -ENOMEM. */
static int append(struct wf_seg_defs *defs, const char *name, size_t nlen, uint64_t version, const char *rule,
		  size_t rlen)
{
	struct wf_seg_def *n = realloc(defs->defs, (defs->n + 1) * sizeof(*n));
	char *r;

	if (!n)
		return -ENOMEM;
	defs->defs = n;
	r = malloc(rlen + 1);
	if (!r)
		return -ENOMEM;
	memcpy(r, rule, rlen);
	r[rlen] = '\0';
	n = &defs->defs[defs->n++];
	memset(n, 0, sizeof(*n));
	memcpy(n->name, name, nlen);
	n->version = version;
	n->rule = r;
	n->rule_len = (uint32_t)rlen;
	return 0;
}

int wf_seg_defs_parse(const char *buf, size_t len, struct wf_seg_defs *ret, uint32_t *ret_line)
{
	struct wf_seg_defs d = { 0 };
	uint32_t line = 0;
	size_t at = 0;
	int r = -EINVAL;

	while (at < len) {
		const char *l = buf + at, *nl = memchr(l, '\n', len - at);
		size_t n = nl ? (size_t)(nl - l) : len - at;
		const char *t1, *t2;
		uint64_t v = 0;

		at += n + (nl ? 1 : 0);
		line++;
		if (n == 0)
			continue;
		t1 = memchr(l, '\t', n);
		t2 = t1 ? memchr(t1 + 1, '\t', n - (size_t)(t1 + 1 - l)) : NULL;
		if (!t2 || !wf_seg_name_valid(l, (size_t)(t1 - l)) || t2 == t1 + 1 || t2 - t1 - 1 > 19 ||
		    d.n >= 4 * WF_SEG_MAX || find(&d, l, (size_t)(t1 - l)) >= 0)
			goto bad;
		for (const char *c = t1 + 1; c < t2; c++) {
			if (*c < '0' || *c > '9')
				goto bad;
			v = v * 10 + (uint64_t)(*c - '0');
		}
		if (v == 0 || memchr(t2 + 1, '\t', n - (size_t)(t2 + 1 - l)) || memchr(l, '\0', n) ||
		    n - (size_t)(t2 + 1 - l) > WF_SEG_RULE_MAX)
			goto bad;
		if ((r = append(&d, l, (size_t)(t1 - l), v, t2 + 1, n - (size_t)(t2 + 1 - l))) < 0) {
			wf_seg_defs_fini(&d);
			return r;
		}
	}
	*ret = d;
	return 0;
bad:
	if (ret_line)
		*ret_line = line;
	wf_seg_defs_fini(&d);
	return -EINVAL;
}

int wf_seg_defs_format(const struct wf_seg_defs *defs, char **ret, size_t *ret_len)
{
	size_t cap = 1, at = 0;
	char *out;

	for (uint32_t i = 0; i < defs->n; i++) {
		const struct wf_seg_def *d = &defs->defs[i];
		if (!wf_seg_name_valid(d->name, strlen(d->name)) || d->version == 0 ||
		    memchr(d->rule, '\t', d->rule_len) || memchr(d->rule, '\n', d->rule_len) ||
		    memchr(d->rule, '\0', d->rule_len))
			return -EINVAL;
		cap += strlen(d->name) + 22 + d->rule_len + 1;
	}
	out = malloc(cap);
	if (!out)
		return -ENOMEM;
	for (uint32_t i = 0; i < defs->n; i++) {
		const struct wf_seg_def *d = &defs->defs[i];
		size_t nl = strlen(d->name);
		memcpy(out + at, d->name, nl);
		at += nl;
		at += (size_t)snprintf(out + at, cap - at, "\t%llu\t", (unsigned long long)d->version);
		memcpy(out + at, d->rule, d->rule_len);
		at += d->rule_len;
		out[at++] = '\n';
	}
	out[at] = '\0';
	*ret = out;
	*ret_len = at;
	return 0;
}

int64_t wf_seg_defs_put(struct wf_seg_defs *defs, const char *name, const char *rule, size_t len)
{
	size_t nlen = strlen(name);
	int i;
	char *r;

	if (!wf_seg_name_valid(name, nlen))
		return -EINVAL;
	i = find(defs, name, nlen);
	if (len == 0 && (i < 0 || defs->defs[i].rule_len == 0))
		return -ENOENT;
	if (i < 0)
		return append(defs, name, nlen, 1, rule, len) < 0 ? -ENOMEM : 1;
	r = malloc(len + 1);
	if (!r)
		return -ENOMEM;
	memcpy(r, rule, len);
	r[len] = '\0';
	free(defs->defs[i].rule);
	defs->defs[i].rule = r;
	defs->defs[i].rule_len = (uint32_t)len;
	return (int64_t)++defs->defs[i].version;
}

int wf_seg_defs_default(struct wf_seg_defs *ret)
{
	struct wf_seg_defs d = { 0 };

	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (append(&d, defaults[i].name, strlen(defaults[i].name), 1, defaults[i].rule,
			   strlen(defaults[i].rule)) < 0) {
			wf_seg_defs_fini(&d);
			return -ENOMEM;
		}
	*ret = d;
	return 0;
}
