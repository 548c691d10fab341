/*
 * fuzz_seg.c - libFuzzer target for lib/seg: the rule compiler and the
 * definitions file parser (weft-admin feeds both what an admin typed).
 * The first byte picks the mode, the rest is the input:
 *   even: a rule. wf_seg_compile returns 0, -EINVAL or -E2BIG; an error
 *         names a position inside the rule (or its limit) and starts with
 *         "at <pos + 1>: "; the same bytes give the same answer. A rule
 *         that compiles is built into a set (alone, in() unresolved is an
 *         error, not a crash) and evaluated over a few events derived
 *         from its bytes; a deadline is never in the past.
 *   odd:  DIR/segments.conf. wf_seg_defs_parse returns 0 or -EINVAL; what
 *         parses formats back to bytes that parse to the same
 *         definitions; building a set from them never crashes.
 * Built only with -Dfuzz=true (tests/meson.build fuzz block); seeds in
 * tests/fuzz/seg/.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/proto.h"
#include "lib/seg/seg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void evaluate(const struct wf_seg_set *set, const uint8_t *data, size_t size)
{
	struct wf_seg_state *st = calloc(1, wf_seg_state_size(set));
	struct wf_seg_inputs in = { .known = size & 1, .lifecycle = (int)(size % 7), .ltv = 42.0f };
	uint64_t t = 1000000, next;

	assert(st);
	wf_seg_state_init(set, st);
	for (size_t i = 0; i < size && i < 64; i++) {
		struct wf_seg_event ev = { .type = data[i] % WF_EV_COUNT, .ts_ms = t, .category = "shoes",
					   .category_len = 5, .price_cents = data[i] * 10u };
		wf_seg_apply(set, st, &ev);
		next = wf_seg_step(set, st, &in, t, NULL, NULL);
		assert(next > t);
		if (next != WF_SEG_NEVER) {
			wf_seg_step(set, st, &in, next, NULL, NULL);
			t = next;
		}
		t += (uint64_t)data[i] * 1000;
	}
	free(st);
}

static void fuzz_rule(const char *rule, size_t len)
{
	struct wf_seg_rule *r = NULL, *r2 = NULL;
	struct wf_seg_error err = { 0 }, err2 = { 0 };
	int e = wf_seg_compile(rule, len, &r, &err), e2 = wf_seg_compile(rule, len, &r2, &err2);
	char at[24];

	assert(e == 0 || e == -EINVAL || e == -E2BIG);
	assert(e == e2);
	wf_seg_rule_free(r2);
	if (e < 0) {
		assert(r == NULL);
		assert(err.pos <= len || (e == -E2BIG && err.pos == WF_SEG_RULE_MAX));
		assert(memchr(err.msg, '\0', sizeof(err.msg)));
		snprintf(at, sizeof(at), "at %u: ", err.pos + 1);
		assert(strncmp(err.msg, at, strlen(at)) == 0);
		assert(err.pos == err2.pos && strcmp(err.msg, err2.msg) == 0);
		return;
	}
	wf_seg_rule_free(r);
	/* As a definition alone. */
	struct wf_seg_defs d = { 0 };
	struct wf_seg_set *set = NULL;
	if (memchr(rule, '\t', len) || memchr(rule, '\n', len) || len == 0)
		return;
	assert(wf_seg_defs_put(&d, "f", rule, len) == 1);
	e = wf_seg_set_build(&d, &set, &err, NULL);
	assert(e == 0 || e == -EINVAL);
	if (e == 0) {
		evaluate(set, (const uint8_t *)rule, len);
		wf_seg_set_free(set);
	}
	wf_seg_defs_fini(&d);
}

static void fuzz_defs(const char *buf, size_t len)
{
	struct wf_seg_defs d = { 0 }, back = { 0 };
	struct wf_seg_set *set = NULL;
	uint32_t line = 0;
	char *out;
	size_t olen;
	int e = wf_seg_defs_parse(buf, len, &d, &line);

	assert(e == 0 || e == -EINVAL);
	if (e < 0)
		return;
	e = wf_seg_defs_format(&d, &out, &olen);
	if (e == 0) {
		assert(wf_seg_defs_parse(out, olen, &back, NULL) == 0);
		assert(back.n == d.n);
		for (uint32_t i = 0; i < d.n; i++) {
			assert(strcmp(back.defs[i].name, d.defs[i].name) == 0);
			assert(back.defs[i].version == d.defs[i].version);
			assert(back.defs[i].rule_len == d.defs[i].rule_len);
			assert(memcmp(back.defs[i].rule, d.defs[i].rule, d.defs[i].rule_len) == 0);
		}
		wf_seg_defs_fini(&back);
		free(out);
	} else {
		assert(e == -EINVAL); /* a rule with a byte the format cannot hold */
	}
	e = wf_seg_set_build(&d, &set, NULL, NULL);
	assert(e == 0 || e == -EINVAL);
	if (e == 0) {
		evaluate(set, (const uint8_t *)buf, len);
		wf_seg_set_free(set);
	}
	wf_seg_defs_fini(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_defs((const char *)data + 1, size - 1);
	else
		fuzz_rule((const char *)data + 1, size - 1);
	return 0;
}
