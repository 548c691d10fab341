/*
 * test_msg.c - a RECS's parsed arguments through the request ring
 * (shm/msg.c, WF_MSG_F_PARSED): what weft-ingest parsed
 * (wf_recs_args_parse) comes out of wf_msg_req_decode equal, argument for
 * argument, beside the untouched arguments; a record without it decodes
 * as before; a trailer that is missing or does not fit its arguments is
 * -EPROTO, never an out-of-bounds read. (The rest of the record format:
 * tests/test_ring.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "shm/msg.h"

static struct wf_ring *ring;
static struct wf_ring_prod prod;
static struct wf_ring_cons cons;

static int setup(void **state)
{
	ring = aligned_alloc(64, WF_ALIGN_UP(wf_ring_footprint(1 << 16), 64));
	if (!ring)
		return -1;
	memset(ring, 0, wf_ring_footprint(1 << 16));
	if (wf_ring_init(ring, 1 << 16) < 0)
		return -1;
	wf_ring_prod_attach(&prod, ring);
	wf_ring_cons_attach(&cons, ring);
	return 0;
}

static int teardown(void **state)
{
	free(ring);
	return 0;
}

/* Push "RECS" args (NULL-terminated) with their parse (parsed) or
 * without; pop its payload into *ret_len bytes. */
static const void *push_pop(const char *const *s, int parsed, uint32_t *ret_len)
{
	struct wf_msg_req h = { .req_id = 1, .cmd = WF_CMD_RECS };
	struct wf_arg a[16];
	uint32_t argl[16], kind = 0, bad = 0;
	struct wf_recs_args ra;
	struct wf_msg_recs m;
	const void *p;

	for (h.argc = 0; s[h.argc]; h.argc++) {
		a[h.argc] = (struct wf_arg){ s[h.argc], (uint32_t)strlen(s[h.argc]) };
		argl[h.argc] = a[h.argc].len;
	}
	assert_int_equal(wf_recs_args_parse(a, h.argc, &ra, &bad), 0);
	wf_msg_recs_of(&ra, a, &m);
	assert_int_equal(wf_msg_req_push_parsed(&prod, &h, s, argl, parsed ? &m : NULL), 0);
	wf_ring_prod_commit(&prod);
	p = wf_ring_pop(&cons, ret_len, &kind);
	assert_int_equal(kind, WF_MSG_REQ);
	return p;
}

static void test_msg_parsed_recs_decode_equal(void **state)
{
	static const char *const s[] = { "s1", "u1", "7", "SIZE", "M", "explain", "PAGE", "cart", "ANCHOR", "i3",
					 NULL };
	static struct wf_msg_req_view v;
	struct wf_recs_args ra;
	uint32_t len;
	const void *p = push_pop(s, 1, &len);

	assert_int_equal(wf_msg_req_decode(p, len, &v), 0);
	assert_true(v.parsed);
	assert_int_equal(v.argc, 10);
	assert_memory_equal(v.argv[9].p, "i3", 2);
	assert_int_equal(wf_msg_recs_get(&v.recs, v.argv, v.argc, &ra), 0);
	assert_int_equal(ra.k, 7);
	assert_int_equal(ra.page, WF_PAGE_CART);
	assert_true(ra.explain);
	assert_ptr_equal(ra.anchor, &v.argv[9]);
	assert_ptr_equal(ra.size, &v.argv[4]);
	wf_ring_cons_release(&cons);
}

static void test_msg_unparsed_recs_decode_as_before(void **state)
{
	static const char *const s[] = { "s1", "u1", "20", NULL };
	static struct wf_msg_req_view v;
	uint32_t len;
	const void *p = push_pop(s, 0, &len);

	assert_int_equal(wf_msg_req_decode(p, len, &v), 0);
	assert_false(v.parsed);
	assert_int_equal(v.argc, 3);
	assert_int_equal(len, wf_msg_req_size(3, 6));
	wf_ring_cons_release(&cons);
}

static void test_msg_bad_trailer_returns_eproto(void **state)
{
	static const char *const s[] = { "s1", "u1", "20", "ANCHOR", "i1", NULL };
	static struct wf_msg_req_view v;
	struct wf_recs_args ra;
	uint8_t rec[256];
	struct wf_msg_recs m;
	uint32_t len;
	const void *p = push_pop(s, 1, &len);

	/* Cut short, or the flag on a record without the trailer. */
	assert_int_equal(wf_msg_req_decode(p, len - 1, &v), -EPROTO);
	memcpy(rec, p, len);
	((struct wf_msg_req *)rec)->flags &= ~WF_MSG_F_PARSED;
	assert_int_equal(wf_msg_req_decode(rec, len, &v), -EPROTO);
	wf_ring_cons_release(&cons);
	p = push_pop(s, 0, &len);
	memcpy(rec, p, len);
	((struct wf_msg_req *)rec)->flags |= WF_MSG_F_PARSED;
	assert_int_equal(wf_msg_req_decode(rec, len, &v), -EPROTO);
	wf_ring_cons_release(&cons);
	/* A trailer that does not fit its arguments. */
	p = push_pop(s, 1, &len);
	assert_int_equal(wf_msg_req_decode(p, len, &v), 0);
	m = v.recs;
	m.anchor = 5; /* past argc */
	assert_int_equal(wf_msg_recs_get(&m, v.argv, v.argc, &ra), -EPROTO);
	m.anchor = 1; /* the user, never an option's value */
	assert_int_equal(wf_msg_recs_get(&m, v.argv, v.argc, &ra), -EPROTO);
	m = v.recs;
	m.k = WF_RECS_MAX_K + 1;
	assert_int_equal(wf_msg_recs_get(&m, v.argv, v.argc, &ra), -EPROTO);
	m = v.recs;
	m.page = WF_PAGE_COUNT;
	assert_int_equal(wf_msg_recs_get(&m, v.argv, v.argc, &ra), -EPROTO);
	assert_int_equal(wf_msg_recs_get(&v.recs, v.argv, v.argc, &ra), 0);
	wf_ring_cons_release(&cons);
}

/* A note (WF_MSG_NOTE) comes out as pushed; cut short or with lengths
 * that overrun it, it is -EPROTO. */
static void test_msg_note_roundtrip_and_bounds(void **state)
{
	const struct wf_arg a[] = { { "abandon", 7 }, { "enter", 5 }, { "", 0 } };
	struct wf_msg_note h = { .ts_ms = 1700000000000ull, .jkind = 1 };
	static struct wf_msg_note_view v;
	uint32_t len = 0, kind = 0;
	uint8_t rec[256];
	const void *p;

	assert_int_equal(wf_msg_note_push(&prod, &h, 3, a), 0);
	wf_ring_prod_commit(&prod);
	p = wf_ring_pop(&cons, &len, &kind);
	assert_int_equal(kind, WF_MSG_NOTE);
	assert_int_equal(wf_msg_note_decode(p, len, &v), 0);
	assert_int_equal(v.hdr.ts_ms, h.ts_ms);
	assert_int_equal(v.hdr.jkind, 1);
	assert_int_equal(v.argc, 3);
	assert_memory_equal(v.argv[0].p, "abandon", 7);
	assert_int_equal(v.argv[1].len, 5);
	assert_int_equal(v.argv[2].len, 0);
	assert_int_equal(wf_msg_note_decode(p, len - 1, &v), -EPROTO);
	memcpy(rec, p, len);
	((struct wf_msg_note *)rec)->argc = 60; /* lengths past the record */
	assert_int_equal(wf_msg_note_decode(rec, len, &v), -EPROTO);
	wf_ring_cons_release(&cons);
	assert_int_equal(wf_msg_note_push(&prod, &h, WF_MSG_NOTE_MAX_ARGS + 1, a), -E2BIG);
}

/* Each case on a ring of its own. */
#define CASE(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(test_msg_parsed_recs_decode_equal),
		CASE(test_msg_unparsed_recs_decode_as_before),
		CASE(test_msg_bad_trailer_returns_eproto),
		CASE(test_msg_note_roundtrip_and_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
