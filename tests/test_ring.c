/*
 * test_ring.c - the SPSC byte ring (shm/ring.h) and the ingest<->ranker
 * message records (shm/msg.h).
 *
 * Covers: empty/full behaviour, wrap-around with PAD records, batched
 * reserve/commit and pop/release, max payload, restart of either side
 * resuming from the published indexes, message encode/decode bounds, and a
 * two-process stress test over a real shared segment that moves tens of
 * millions of variable-length messages and checks order and content.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "shm/msg.h"
#include "shm/ring.h"
#include "shm/shm.h"

static struct wf_ring *ring_new(uint32_t cap)
{
	struct wf_ring *r = aligned_alloc(64, WF_ALIGN_UP(wf_ring_footprint(cap), 64));

	assert_non_null(r);
	memset(r, 0, wf_ring_footprint(cap));
	assert_int_equal(wf_ring_init(r, cap), 0);
	return r;
}

static void test_ring_init_bad_capacity_returns_einval(void **state)
{
	struct wf_ring *r = ring_new(4096);

	assert_int_equal(wf_ring_init(r, 1000), -EINVAL);
	assert_int_equal(wf_ring_init(r, 2048), -EINVAL);
	free(r);
}

static void test_ring_pop_empty_returns_null(void **state)
{
	struct wf_ring *r = ring_new(4096);
	struct wf_ring_cons c;
	uint32_t len, kind;

	wf_ring_cons_attach(&c, r);
	assert_null(wf_ring_pop(&c, &len, &kind));
	assert_false(wf_ring_readable(&c));
	free(r);
}

static void test_ring_uncommitted_is_invisible(void **state)
{
	struct wf_ring *r = ring_new(4096);
	struct wf_ring_prod p;
	struct wf_ring_cons c;
	uint32_t len, kind;
	char *d;
	void *w = NULL;

	wf_ring_prod_attach(&p, r);
	wf_ring_cons_attach(&c, r);
	assert_int_equal(wf_ring_reserve(&p, 5, 7, &w), 0);
	memcpy(w, "hello", 5);
	assert_null(wf_ring_pop(&c, &len, &kind));
	assert_true(wf_ring_prod_pending(&p));
	wf_ring_prod_commit(&p);
	d = (char *)wf_ring_pop(&c, &len, &kind);
	assert_non_null(d);
	assert_int_equal(len, 5);
	assert_int_equal(kind, 7);
	assert_memory_equal(d, "hello", 5);
	free(r);
}

static void test_ring_reserve_full_returns_eagain_until_release(void **state)
{
	struct wf_ring *r = ring_new(4096);
	struct wf_ring_prod p;
	struct wf_ring_cons c;
	uint32_t len, kind, n = 0;
	void *d = NULL, *before;

	wf_ring_prod_attach(&p, r);
	wf_ring_cons_attach(&c, r);
	/* 56-byte payload + 8 header = 64 bytes: exactly 64 fit in 4 KiB. */
	while (wf_ring_reserve(&p, 56, 1, &d) == 0)
		n++;
	assert_int_equal(n, 64);
	wf_ring_prod_commit(&p);
	before = d;
	assert_int_equal(wf_ring_reserve(&p, 1, 1, &d), -EAGAIN);
	assert_ptr_equal(d, before); /* untouched on failure */
	/* Popping without releasing frees nothing. */
	assert_non_null(wf_ring_pop(&c, &len, &kind));
	assert_int_equal(wf_ring_reserve(&p, 56, 1, &d), -EAGAIN);
	wf_ring_cons_release(&c);
	assert_int_equal(wf_ring_reserve(&p, 56, 1, &d), 0);
	assert_int_equal(wf_ring_reserve(&p, 56, 1, &d), -EAGAIN);
	free(r);
}

static void test_ring_reserve_oversize_returns_emsgsize(void **state)
{
	struct wf_ring *r = ring_new(4096);
	struct wf_ring_prod p;
	void *d;

	wf_ring_prod_attach(&p, r);
	assert_int_equal(wf_ring_max_payload(r), 1024 - 8);
	assert_int_equal(wf_ring_reserve(&p, 1024 - 7, 1, &d), -EMSGSIZE);
	assert_int_equal(wf_ring_reserve(&p, 1024 - 8, 1, &d), 0);
	free(r);
}

static void test_ring_wraps_with_pad_and_keeps_content(void **state)
{
	struct wf_ring *r = ring_new(4096);
	struct wf_ring_prod p;
	struct wf_ring_cons c;
	uint32_t len, kind;
	uint64_t seq_out = 0, seq_in = 0;

	wf_ring_prod_attach(&p, r);
	wf_ring_cons_attach(&c, r);
	/* Odd sizes force PAD records at many different offsets. */
	for (int round = 0; round < 20000; round++) {
		for (;;) {
			uint32_t l = 8 + (uint32_t)(seq_out * 37 % 300);
			void *w;
			if (wf_ring_reserve(&p, l, 3, &w) < 0)
				break;
			uint8_t *d = w;
			memcpy(d, &seq_out, 8);
			memset(d + 8, (int)(seq_out & 0xff), l - 8);
			seq_out++;
		}
		wf_ring_prod_commit(&p);
		for (int i = 0; i < 5; i++) {
			const uint8_t *d = wf_ring_pop(&c, &len, &kind);
			uint64_t s;
			if (!d)
				break;
			memcpy(&s, d, 8);
			assert_int_equal(s, seq_in);
			assert_int_equal(len, 8 + seq_in * 37 % 300);
			for (uint32_t j = 8; j < len; j++)
				assert_int_equal(d[j], seq_in & 0xff);
			seq_in++;
		}
		wf_ring_cons_release(&c);
	}
	assert_true(seq_in > 50000);
	free(r);
}

/* Reserve a 4-byte record holding v (the ring has room). */
static void put_u32(struct wf_ring_prod *p, uint32_t v)
{
	void *d = NULL;

	assert_int_equal(wf_ring_reserve(p, 4, 1, &d), 0);
	memcpy(d, &v, 4);
}

static void test_ring_restarted_sides_resume_from_published_indexes(void **state)
{
	struct wf_ring *r = ring_new(4096);
	struct wf_ring_prod p, p2;
	struct wf_ring_cons c, c2;
	uint32_t len, kind;
	const uint32_t *v;

	wf_ring_prod_attach(&p, r);
	wf_ring_cons_attach(&c, r);
	for (uint32_t i = 0; i < 3; i++)
		put_u32(&p, i);
	wf_ring_prod_commit(&p);
	/* Reserved but never committed by a producer that then dies. */
	put_u32(&p, 99);
	wf_ring_prod_attach(&p2, r);
	put_u32(&p2, 3);
	wf_ring_prod_commit(&p2);

	/* Consumer pops two, releases one, dies; its successor redoes one. */
	assert_non_null(wf_ring_pop(&c, &len, &kind));
	wf_ring_cons_release(&c);
	assert_non_null(wf_ring_pop(&c, &len, &kind));
	wf_ring_cons_attach(&c2, r);
	for (uint32_t want = 1; want <= 3; want++) {
		v = wf_ring_pop(&c2, &len, &kind);
		assert_non_null(v);
		assert_int_equal(*v, want);
	}
	assert_null(wf_ring_pop(&c2, &len, &kind));
	free(r);
}

static void test_msg_req_roundtrip_and_bounds(void **state)
{
	struct wf_ring *r = ring_new(1 << 16);
	struct wf_ring_prod p;
	struct wf_ring_cons c;
	struct wf_msg_req h = { .req_id = 42, .cmd = 2, .argc = 3, .lsn = 7 };
	const char *argv[] = { "s1", "u1", "20" };
	uint32_t argl[] = { 2, 2, 2 };
	static struct wf_msg_req_view v;
	uint32_t len = 0, kind = 0;
	const void *payload;
	uint8_t bad[64];

	wf_ring_prod_attach(&p, r);
	wf_ring_cons_attach(&c, r);
	assert_int_equal(wf_msg_req_push(&p, &h, argv, argl), 0);
	wf_ring_prod_commit(&p);
	payload = wf_ring_pop(&c, &len, &kind);
	assert_int_equal(kind, WF_MSG_REQ);
	assert_int_equal(wf_msg_req_decode(payload, len, &v), 0);
	assert_int_equal(v.argc, 3);
	assert_int_equal(v.hdr->req_id, 42);
	assert_int_equal(v.hdr->lsn, 7);
	assert_memory_equal(v.argv[2].p, "20", 2);
	/* Truncated payloads and lying lengths are refused. */
	assert_int_equal(wf_msg_req_decode(payload, len - 1, &v), -EPROTO);
	assert_int_equal(wf_msg_req_decode(payload, 10, &v), -EPROTO);
	memcpy(bad, payload, len);
	((uint32_t *)(bad + sizeof(struct wf_msg_req)))[1] = 0xffffff00u;
	assert_int_equal(wf_msg_req_decode(bad, len, &v), -EPROTO);
	free(r);
}

static void test_msg_rep_roundtrip_and_too_big(void **state)
{
	struct wf_ring *r = ring_new(4096);
	struct wf_ring_prod p;
	struct wf_ring_cons c;
	struct wf_msg_rep h = { .req_id = 9 };
	const struct wf_msg_rep *out;
	const char *resp;
	uint32_t len = 0, kind = 0;
	static char big[2048];
	const void *payload;

	wf_ring_prod_attach(&p, r);
	wf_ring_cons_attach(&c, r);
	assert_int_equal(wf_msg_rep_push(&p, &h, big, sizeof(big)), -EMSGSIZE);
	assert_int_equal(wf_msg_rep_push(&p, &h, ":1\r\n", 4), 0);
	wf_ring_prod_commit(&p);
	payload = wf_ring_pop(&c, &len, &kind);
	assert_int_equal(wf_msg_rep_decode(payload, len, &out, &resp), 0);
	assert_int_equal(out->req_id, 9);
	assert_int_equal(out->resp_len, 4);
	assert_memory_equal(resp, ":1\r\n", 4);
	assert_int_equal(wf_msg_rep_decode(payload, len - 1, &out, &resp), -EPROTO);
	free(r);
}

/*
 * Two processes, one ring in a real shm segment: the child produces
 * messages of varying length in batches, the parent consumes in batches and
 * checks every sequence number and byte. Sleeps use the futex waiter, so
 * the test also exercises wake-ups on a 2-core box.
 */
#define STRESS_MSGS 20000000ull

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x9e3779b97f4a7c15ull;
	return x ^ (x >> 29);
}

static void stress_produce(struct wf_shm *shm)
{
	struct wf_ring_prod p;
	struct wf_shard_ctl *sc = wf_shm_shard(shm, 0);

	wf_ring_prod_attach(&p, wf_shm_req_ring(shm, 0));
	for (uint64_t seq = 0; seq < STRESS_MSGS;) {
		uint32_t batch = 0;
		for (; batch < 64 && seq < STRESS_MSGS; batch++) {
			uint32_t len = 8 + (uint32_t)(mix(seq) % 57);
			void *w;
			if (wf_ring_reserve(&p, len, 1, &w) < 0)
				break;
			uint8_t *d = w;
			memcpy(d, &seq, 8);
			for (uint32_t j = 8; j < len; j++)
				d[j] = (uint8_t)(seq + j);
			seq++;
		}
		wf_ring_prod_commit(&p);
		if (wf_wait_needs_wake(&sc->ranker_wait))
			wf_wake_futex(&sc->ranker_wait);
		if (batch == 0)
			__builtin_ia32_pause();
	}
	_exit(0);
}

static void test_ring_two_process_stress_keeps_order_and_content(void **state)
{
	char name[64];
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1 << 16, .stock_capacity = 1024 };
	struct wf_shm *shm;
	struct wf_ring_cons c;
	struct wf_shard_ctl *sc;
	uint64_t want = 0, bad = 0;
	int status;
	pid_t pid;

	snprintf(name, sizeof(name), "weft.test.ring.%d", (int)getpid());
	wf_shm_unlink(name);
	assert_int_equal(wf_shm_create(name, &cfg, &shm), 0);
	sc = wf_shm_shard(shm, 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		stress_produce(shm);

	wf_ring_cons_attach(&c, wf_shm_req_ring(shm, 0));
	while (want < STRESS_MSGS) {
		uint32_t len, kind, n = 0;
		const uint8_t *d;

		while (n < 256 && (d = wf_ring_pop(&c, &len, &kind))) {
			uint64_t seq;
			memcpy(&seq, d, 8);
			if (seq != want || len != 8 + mix(seq) % 57 || kind != 1)
				bad++;
			for (uint32_t j = 8; j < len; j++)
				bad += d[j] != (uint8_t)(seq + j);
			want++;
			n++;
		}
		if (n) {
			wf_ring_cons_release(&c);
			continue;
		}
		wf_wait_prepare(&sc->ranker_wait);
		if (wf_ring_readable(&c)) {
			wf_wait_cancel(&sc->ranker_wait);
			continue;
		}
		/* A lost wake-up would show as a 1 s stall per occurrence; the
		 * timeout only keeps a broken build from hanging forever. */
		wf_wait_futex(&sc->ranker_wait, 1000000000ull);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(bad, 0);
	assert_int_equal(want, STRESS_MSGS);
	print_message("moved %llu messages, %u wake-ups\n", (unsigned long long)want,
		      atomic_load_explicit(&sc->ranker_wait.wakes, memory_order_relaxed));
	wf_shm_detach(shm);
	wf_shm_unlink(name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_init_bad_capacity_returns_einval),
		cmocka_unit_test(test_ring_pop_empty_returns_null),
		cmocka_unit_test(test_ring_uncommitted_is_invisible),
		cmocka_unit_test(test_ring_reserve_full_returns_eagain_until_release),
		cmocka_unit_test(test_ring_reserve_oversize_returns_emsgsize),
		cmocka_unit_test(test_ring_wraps_with_pad_and_keeps_content),
		cmocka_unit_test(test_ring_restarted_sides_resume_from_published_indexes),
		cmocka_unit_test(test_msg_req_roundtrip_and_bounds),
		cmocka_unit_test(test_msg_rep_roundtrip_and_too_big),
		cmocka_unit_test(test_ring_two_process_stress_keeps_order_and_content),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
