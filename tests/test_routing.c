/*
 * test_routing.c - weft-ingest's session table (ingest/shard.c): a session
 * is pinned at its first request (user's shard if known, else the
 * session's), follows the user it is asked for until its first EVENT,
 * keeps its shard from then on when the shopper logs in halfway, is
 * forgotten after the idle TTL, survives a restart through wf_route_pin,
 * and the table stays within its bound under millions of sessions; a
 * session counts as evented from its first routed EVENT (or when rebuilt
 * from the journal), and every way an evented entry can be forgotten
 * (a generation dropped, idle past the TTL) moves the forgets count that
 * weft-ingest's quiet answers wait on; a dropped generation stays dropped
 * though its table is reused without clearing, across the generation
 * number's wrap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ingest/ingest.h"
#include "lib/util.h"

#define NSHARDS 8u
#define TTL 60000u

static uint32_t shard_of(const char *s)
{
	return wf_shard_of(s, strlen(s), NSHARDS);
}

/* A session id whose own shard differs from the user's. */
static void split_ids(char *sess, size_t n, const char *user)
{
	for (int i = 0;; i++) {
		snprintf(sess, n, "sess-%d", i);
		if (shard_of(sess) != shard_of(user))
			return;
	}
}

static void test_route_anonymous_pins_by_session(void **state)
{
	struct wf_route r;

	assert_int_equal(wf_route_init(&r, NSHARDS, 1024, TTL, 0), 0);
	for (int i = 0; i < 200; i++) {
		char s[32];
		snprintf(s, sizeof(s), "anon-%d", i);
		assert_int_equal(wf_route_shard(&r, s, strlen(s), "-", 1, 10), shard_of(s));
		assert_int_equal(wf_route_shard(&r, s, strlen(s), NULL, 0, 11), shard_of(s));
	}
	wf_route_fini(&r);
}

static void test_route_known_user_pins_by_user(void **state)
{
	struct wf_route r;
	char s[32];

	assert_int_equal(wf_route_init(&r, NSHARDS, 1024, TTL, 0), 0);
	split_ids(s, sizeof(s), "alice");
	assert_int_equal(wf_route_shard(&r, s, strlen(s), "alice", 5, 1), shard_of("alice"));
	/* Later requests of the session, anonymous or not, stay there. */
	assert_int_equal(wf_route_shard(&r, s, strlen(s), "-", 1, 2), shard_of("alice"));
	assert_int_equal(wf_route_lookup(&r, s, strlen(s), "alice", 5, 3, 1, NULL), shard_of("alice")); /* EVENT */
	assert_int_equal(wf_route_shard(&r, s, strlen(s), "dora", 4, 4), shard_of("alice")); /* pinned now */
	wf_route_fini(&r);
}

static void test_route_login_halfway_keeps_shard(void **state)
{
	struct wf_route r;
	char s[32];

	assert_int_equal(wf_route_init(&r, NSHARDS, 1024, TTL, 0), 0);
	split_ids(s, sizeof(s), "bob");
	uint32_t first = wf_route_lookup(&r, s, strlen(s), "-", 1, 1, 1, NULL); /* an anonymous EVENT */
	assert_int_equal(first, shard_of(s));
	/* The shopper logs in: same session, now with a user on another shard. */
	assert_int_equal(wf_route_shard(&r, s, strlen(s), "bob", 3, 2), first);
	assert_int_not_equal(first, shard_of("bob"));
	wf_route_fini(&r);
}

static void test_route_idle_ttl_forgets(void **state)
{
	struct wf_route r;
	char s[32];

	assert_int_equal(wf_route_init(&r, NSHARDS, 1024, TTL, 0), 0);
	split_ids(s, sizeof(s), "carol");
	assert_int_equal(wf_route_lookup(&r, s, strlen(s), "-", 1, 0, 1, NULL), shard_of(s)); /* an EVENT */
	/* Used within TTL/2: kept (and refreshed). */
	assert_int_equal(wf_route_shard(&r, s, strlen(s), "carol", 5, TTL / 2 + 1), shard_of(s));
	assert_int_equal(wf_route_shard(&r, s, strlen(s), "carol", 5, TTL), shard_of(s));
	/* Idle for more than the TTL: a new visit, pinned afresh by its user. */
	assert_int_equal(wf_route_shard(&r, s, strlen(s), "carol", 5, 3 * TTL), shard_of("carol"));
	wf_route_fini(&r);
}

static void test_route_pin_restores_after_restart(void **state)
{
	struct wf_route r;
	char s[32];

	assert_int_equal(wf_route_init(&r, NSHARDS, 1024, TTL, 0), 0);
	split_ids(s, sizeof(s), "dave");
	/* What the journal says: this session went to its own shard. */
	wf_route_pin(&r, s, strlen(s), shard_of(s), 5);
	assert_int_equal(wf_route_shard(&r, s, strlen(s), "dave", 4, 6), shard_of(s));
	/* A shard number out of range is ignored, not trusted. */
	wf_route_pin(&r, "x", 1, NSHARDS + 3, 7);
	assert_int_equal(wf_route_shard(&r, "x", 1, NULL, 0, 8), shard_of("x"));
	wf_route_fini(&r);
}

static void test_route_bounded_under_many_sessions(void **state)
{
	struct wf_route r;
	char s[32];

	assert_int_equal(wf_route_init(&r, NSHARDS, 1000, TTL, 0), 0);
	for (int i = 0; i < 200000; i++) {
		snprintf(s, sizeof(s), "many-%d", i);
		assert_true(wf_route_shard(&r, s, strlen(s), NULL, 0, 1) < NSHARDS);
		/* Two generations of at most max_entries (rounded up) each. */
		assert_true(wf_route_count(&r) <= 2 * 1024);
	}
	/* The newest sessions are still remembered with their pins. */
	wf_route_pin(&r, "last", 4, 3, 2);
	assert_int_equal(wf_route_shard(&r, "last", 4, "zed", 3, 3), 3);
	wf_route_fini(&r);
}

/* A dropped generation's table is reused as it is: its entries read as
 * empty to the new generation, and when the 16-bit generation number
 * wraps, nothing written 65,536 rotations before comes back. Rotations
 * here are by fullness (the clock stands still, so an old entry would
 * still be fresh); the fill keys take distinct home slots away from the
 * watched session's, so nothing overwrites its slot by chance. */
static void test_route_dropped_generation_stays_dropped(void **state)
{
	enum { MAX = 64 };
	struct wf_route r;
	struct wf_route_hit hit;
	char x[32], fill[MAX + 1][32]; /* one more than a generation holds: it keeps rotating */
	uint32_t pin = 0, used[128 / 32] = { 0 }, n = 0;
	uint64_t f0;

	assert_int_equal(wf_route_init(&r, NSHARDS, MAX, TTL, 0), 0);
	assert_int_equal(r.mask, 127);
	snprintf(x, sizeof(x), "watched");
	used[((wf_hash64(x, strlen(x)) | 1) >> 17 & r.mask) / 32] |= 1u << (((wf_hash64(x, strlen(x)) | 1) >> 17 & r.mask) % 32);
	for (int i = 0; n < MAX + 1; i++) {
		snprintf(fill[n], sizeof(fill[n]), "fill-%d", i);
		uint32_t h = (uint32_t)((wf_hash64(fill[n], strlen(fill[n])) | 1) >> 17) & r.mask;
		if (used[h / 32] & (1u << (h % 32)))
			continue;
		used[h / 32] |= 1u << (h % 32);
		n++;
	}
	while (pin == shard_of(x))
		pin++;
	wf_route_pin(&r, x, strlen(x), pin, 1); /* evented, on a shard not its own */
	assert_int_equal(wf_route_shard(&r, x, strlen(x), NULL, 0, 1), pin);
	/* Two rotations: dropped, though its slot in the reused table still
	 * holds it. */
	f0 = r.forgets;
	for (uint32_t i = 0; r.forgets < f0 + 2; i++)
		wf_route_shard(&r, fill[i % n], strlen(fill[i % n]), NULL, 0, 1);
	assert_int_equal(wf_route_lookup(&r, x, strlen(x), NULL, 0, 1, 0, &hit), shard_of(x));
	assert_true(hit.pinned);
	assert_false(hit.evented);
	/* Pin it again, then 65,536 rotations: the same generation number
	 * on the same table again. */
	wf_route_pin(&r, x, strlen(x), pin, 1);
	f0 = r.forgets;
	for (uint32_t i = 0; r.forgets < f0 + 65536; i++)
		wf_route_shard(&r, fill[i % n], strlen(fill[i % n]), NULL, 0, 1);
	assert_int_equal(wf_route_lookup(&r, x, strlen(x), NULL, 0, 1, 0, &hit), shard_of(x));
	assert_true(hit.pinned);
	assert_true(wf_route_count(&r) <= 2 * MAX);
	wf_route_fini(&r);
}

static void test_route_session_without_events_follows_its_user(void **state)
{
	struct wf_route r;
	struct wf_route_hit h;
	char s[32];

	assert_int_equal(wf_route_init(&r, NSHARDS, 1024, TTL, 0), 0);
	split_ids(s, sizeof(s), "erin");
	/* Pinned by its first user, then asked for another: no context, so
	 * it goes to that user's shard (same version: nothing happened). */
	wf_route_lookup(&r, s, strlen(s), "erin", 4, 1, 0, &h);
	uint64_t v = h.ver;
	for (int i = 0; i < 50; i++) {
		char u[16];
		snprintf(u, sizeof(u), "user-%d", i);
		assert_int_equal(wf_route_lookup(&r, s, strlen(s), u, strlen(u), 2, 0, &h), shard_of(u));
		assert_false(h.pinned);
		assert_true(h.ver == v);
	}
	/* Anonymous requests leave it where it is. */
	assert_int_equal(wf_route_shard(&r, s, strlen(s), "-", 1, 3), shard_of("user-49"));
	/* Its first EVENT pins it: other users follow it from then on. */
	assert_int_equal(wf_route_lookup(&r, s, strlen(s), "erin", 4, 4, 1, NULL), shard_of("erin"));
	for (int i = 0; i < 50; i++) {
		char u[16];
		snprintf(u, sizeof(u), "user-%d", i);
		assert_int_equal(wf_route_shard(&r, s, strlen(s), u, strlen(u), 5), shard_of("erin"));
	}
	wf_route_fini(&r);
}

static void test_route_evented_and_forgets(void **state)
{
	struct wf_route r;
	struct wf_route_hit h;
	uint64_t f0;

	assert_int_equal(wf_route_init(&r, NSHARDS, 1024, TTL, 0), 0);
	wf_route_lookup(&r, "q1", 2, "amy", 3, 1, 0, &h);
	assert_true(h.pinned);
	assert_false(h.evented);
	wf_route_lookup(&r, "q1", 2, "amy", 3, 2, 0, &h);
	assert_false(h.pinned);
	assert_false(h.evented);
	wf_route_lookup(&r, "q1", 2, "amy", 3, 3, 1, &h); /* an EVENT */
	assert_true(h.evented);
	wf_route_lookup(&r, "q1", 2, "amy", 3, 4, 0, &h);
	assert_true(h.evented);
	/* Rebuilt from the journal: evented. */
	wf_route_pin(&r, "q2", 2, 1, 5);
	wf_route_lookup(&r, "q2", 2, NULL, 0, 6, 0, &h);
	assert_true(h.evented);
	/* Survives a rotation (moved forward with its flag)... */
	f0 = r.forgets;
	wf_route_lookup(&r, "q1", 2, "amy", 3, TTL / 2 + 10, 0, &h);
	assert_true(r.forgets > f0); /* the rotation dropped a generation */
	assert_true(h.evented);
	assert_false(h.pinned);
	/* ...and idle past the TTL (its generation dropped by then) it is a
	 * new visit, not evented, and the forgetting was counted. */
	f0 = r.forgets;
	wf_route_lookup(&r, "q1", 2, "amy", 3, TTL / 2 + 10 + TTL + 2000, 0, &h);
	assert_true(h.pinned);
	assert_false(h.evented);
	assert_true(r.forgets > f0);
	wf_route_fini(&r);

	/* A full generation rotates early: counted too. */
	assert_int_equal(wf_route_init(&r, NSHARDS, 64, TTL, 0), 0);
	f0 = r.forgets;
	for (int i = 0; i < 200; i++) {
		char s[16];
		snprintf(s, sizeof(s), "f%d", i);
		wf_route_lookup(&r, s, strlen(s), NULL, 0, 1, 1, &h);
	}
	assert_true(r.forgets >= f0 + 2);
	wf_route_fini(&r);
}

/* asked: a request other than an EVENT was routed at the session's
 * current version (cmd.c skips the front lookup of the session's own key
 * until then: nothing can have been published for that version). */
static void test_route_asked_until_the_next_event(void **state)
{
	struct wf_route r;
	struct wf_route_hit h;
	uint64_t v;

	assert_int_equal(wf_route_init(&r, NSHARDS, 1024, TTL, 0), 0);
	wf_route_lookup(&r, "a1", 2, "amy", 3, 1, 0, &h); /* pinned by a RECS */
	assert_true(h.pinned);
	assert_false(h.asked);
	wf_route_lookup(&r, "a1", 2, "amy", 3, 2, 0, &h); /* the same RECS again */
	assert_true(h.asked);
	v = h.ver;
	wf_route_lookup(&r, "a1", 2, "amy", 3, 3, 1, &h); /* an EVENT: a new version */
	assert_false(h.asked);
	assert_true(h.ver != v);
	v = h.ver;
	wf_route_lookup(&r, "a1", 2, "amy", 3, 4, 0, &h); /* the page view's RECS */
	assert_false(h.asked);
	assert_int_equal(h.ver, v);
	wf_route_lookup(&r, "a1", 2, "amy", 3, 5, 0, &h); /* asked again at that version */
	assert_true(h.asked);
	/* Moved forward by a rotation with its flags. */
	wf_route_lookup(&r, "a1", 2, "amy", 3, TTL / 2 + 10, 0, &h);
	assert_true(h.asked);
	assert_int_equal(h.ver, v);
	/* Rebuilt from the journal: evented, nothing asked yet. */
	wf_route_pin(&r, "a2", 2, 1, TTL / 2 + 11);
	wf_route_lookup(&r, "a2", 2, NULL, 0, TTL / 2 + 12, 0, &h);
	assert_true(h.evented);
	assert_false(h.asked);
	wf_route_fini(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_anonymous_pins_by_session),
		cmocka_unit_test(test_route_known_user_pins_by_user),
		cmocka_unit_test(test_route_login_halfway_keeps_shard),
		cmocka_unit_test(test_route_idle_ttl_forgets),
		cmocka_unit_test(test_route_pin_restores_after_restart),
		cmocka_unit_test(test_route_bounded_under_many_sessions),
		cmocka_unit_test(test_route_session_without_events_follows_its_user),
		cmocka_unit_test(test_route_evented_and_forgets),
		cmocka_unit_test(test_route_asked_until_the_next_event),
		cmocka_unit_test(test_route_dropped_generation_stays_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
