/*
 * test_front.c - the front table (shm/front.c) with its real writer
 * (wf_front_publish, the ranker's) and reader (wf_front_lookup, ingest's):
 * a published answer is found with its items in rank order; each input of
 * the validity rule (session version, ingest epoch, weights seqlock count,
 * generation, ranker start count, deadline, exact arguments) refuses the
 * entry when it differs; a short prefix answers only when complete; items
 * are filtered by live stock (else the snapshot's word), through the
 * reader's mirror after each stock write; the quiet rule (live-session
 * filter, start count); an entry left mid-write by a dead writer is a miss
 * until the next publish repairs it; a republished key reuses its way;
 * and two processes, one publishing and overwriting, the other looking
 * up, where every accepted answer is whole and current.
 *
 * Uses its own segment weft.test.front.<pid>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "shm/front.h"
#include "shm/shm.h"

static char name[64];
static struct wf_shm *shm;
static struct wf_front_stock *mirror;

static int setup(void **state)
{
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1 << 16, .stock_capacity = 1024 };

	snprintf(name, sizeof(name), "weft.test.front.%d", (int)getpid());
	wf_shm_unlink(name);
	mirror = NULL;
	return wf_shm_create(name, &cfg, &shm);
}

static int teardown(void **state)
{
	wf_front_stock_free(&mirror);
	wf_shm_detach(shm);
	wf_shm_unlink(name);
	return 0;
}

static struct wf_front_reader reader(void)
{
	return (struct wf_front_reader){
		.front = wf_shm_front(shm, 0), .sc = wf_shm_shard(shm, 0), .ctl = shm->ctl, .stock = shm->stock,
		.mirror = &mirror, .epoch = 7,
	};
}

/* The dependencies as they are now (the reader's view), for sver. */
static struct wf_front_deps deps_now(uint64_t sver)
{
	struct wf_shard_ctl *sc = wf_shm_shard(shm, 0);

	/* relaxed: this test is the only writer of these fields. */
	return (struct wf_front_deps){
		.sver = sver,
		.gen = atomic_load_explicit(&sc->loaded_gen, memory_order_relaxed),
		.until_ms = wf_wall_ms() + 600000,
		.epoch = 7,
		.starts = atomic_load_explicit(&sc->ranker_starts, memory_order_relaxed),
		.wseq = atomic_load_explicit(&shm->ctl->weights_lock.seq, memory_order_relaxed),
	};
}

/* The key of "RECS sess user k" (quiet: the session emptied). */
static void key_of(struct wf_front_key *key, int quiet, const char *sess, const char *user, const char *k)
{
	wf_front_key_init(key, quiet);
	if (!quiet)
		assert_int_equal(wf_front_key_add(key, sess, (uint32_t)strlen(sess)), 0);
	assert_int_equal(wf_front_key_add(key, user, (uint32_t)strlen(user)), 0);
	assert_int_equal(wf_front_key_add(key, k, (uint32_t)strlen(k)), 0);
	wf_front_key_seal(key);
}

/* Publish ids (NULL-terminated; sold: per item the snapshot's word, or
 * NULL) under key with d. */
static void publish(const struct wf_front_key *key, const struct wf_front_deps *d, const char *const *ids,
		    const uint8_t *sold, int complete)
{
	static struct wf_front_stage st;

	wf_front_stage_init(&st, key, d);
	for (uint32_t i = 0; ids[i]; i++)
		assert_int_equal(wf_front_stage_item(&st, wf_stock_key(ids[i], strlen(ids[i])), sold && sold[i], ids[i],
						     (uint32_t)strlen(ids[i])),
				 0);
	wf_front_publish(wf_shm_front(shm, 0), &st, complete);
}

/* Look key up for k items; 0 and the ids (NULL-terminated) it answers, or
 * -ENOENT when want is NULL. */
static void expect(const struct wf_front_key *key, uint64_t sver, uint32_t k, uint64_t quiet_hash,
		   const char *const *want)
{
	struct wf_front_reader r = reader();
	static struct wf_front_answer a;
	int rc = wf_front_lookup(&r, key, sver, k, quiet_hash, wf_wall_ms(), &a);
	uint32_t n = 0;

	if (!want) {
		assert_int_equal(rc, -ENOENT);
		return;
	}
	assert_int_equal(rc, 0);
	while (want[n])
		n++;
	assert_int_equal(a.n, n);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len;
		const char *id = wf_front_answer_id(&a, i, &len);
		assert_int_equal(len, strlen(want[i]));
		assert_memory_equal(id, want[i], len);
	}
}

static const char *const ABC[] = { "a1", "b22", "c333", NULL };

static void test_front_publish_then_lookup_answers_in_rank_order(void **state)
{
	struct wf_front_key key;
	struct wf_front_deps d = deps_now(5);

	key_of(&key, 0, "s1", "u1", "3");
	expect(&key, 5, 3, 0, NULL); /* nothing published yet */
	publish(&key, &d, ABC, NULL, 1);
	expect(&key, 5, 3, 0, ABC);
	expect(&key, 5, 2, 0, (const char *const[]){ "a1", "b22", NULL });
	/* A complete pool shorter than k answers what it has... */
	expect(&key, 5, 4, 0, ABC);
	/* ...a prefix that is not the whole pool does not. */
	publish(&key, &d, ABC, NULL, 0);
	expect(&key, 5, 3, 0, ABC);
	expect(&key, 5, 4, 0, NULL);
	/* k out of range: never answered here. */
	expect(&key, 5, 0, 0, NULL);
	expect(&key, 5, WF_FRONT_ITEMS + 1, 0, NULL);
}

static void test_front_each_changed_input_refuses_the_entry(void **state)
{
	struct wf_shard_ctl *sc = wf_shm_shard(shm, 0);
	struct wf_front_key key, other;
	struct wf_front_deps d = deps_now(5);

	key_of(&key, 0, "s1", "u1", "3");
	publish(&key, &d, ABC, NULL, 1);
	expect(&key, 5, 3, 0, ABC);
	/* The session version (an EVENT was routed since). */
	expect(&key, 6, 3, 0, NULL);
	/* Other arguments. */
	key_of(&other, 0, "s1", "u1", "4");
	expect(&other, 5, 3, 0, NULL);
	/* Another ingest epoch. */
	struct wf_front_reader r = reader();
	static struct wf_front_answer a;
	r.epoch = 8;
	assert_int_equal(wf_front_lookup(&r, &key, 5, 3, 0, wf_wall_ms(), &a), -ENOENT);
	/* Past the deadline. */
	r.epoch = 7;
	assert_int_equal(wf_front_lookup(&r, &key, 5, 3, 0, d.until_ms, &a), -ENOENT);
	assert_int_equal(wf_front_lookup(&r, &key, 5, 3, 0, d.until_ms - 1, &a), 0);
	/* The weights changed. */
	wf_ctl_weights_default(shm->ctl);
	expect(&key, 5, 3, 0, NULL);
	d = deps_now(5);
	publish(&key, &d, ABC, NULL, 1);
	expect(&key, 5, 3, 0, ABC);
	/* Another generation loaded. */
	atomic_fetch_add_explicit(&sc->loaded_gen, 1, memory_order_relaxed);
	expect(&key, 5, 3, 0, NULL);
	d = deps_now(5);
	publish(&key, &d, ABC, NULL, 1);
	expect(&key, 5, 3, 0, ABC);
	/* The ranker restarted. */
	atomic_fetch_add_explicit(&sc->ranker_starts, 1, memory_order_relaxed);
	expect(&key, 5, 3, 0, NULL);
}

static void test_front_items_filtered_by_live_stock_then_snapshot(void **state)
{
	struct wf_front_key key;
	struct wf_front_deps d = deps_now(1);
	static const char *const ids[] = { "x1", "x2", "x3", "x4", NULL };
	static const uint8_t sold[] = { 0, 1, 1, 0 };

	key_of(&key, 0, "s2", "u2", "4");
	publish(&key, &d, ids, sold, 1);
	/* Nothing stocked live: the snapshot's word (x2, x3 sold out). */
	expect(&key, 1, 4, 0, (const char *const[]){ "x1", "x4", NULL });
	/* Live stock overrides it, read through the mirror noted after each
	 * write (as weft-ingest's STOCK does)... */
	assert_int_equal(wf_stock_set(shm->stock, "x2", 2, "M", 1, 3), 0);
	assert_int_equal(wf_front_stock_note(&mirror, shm->stock, wf_stock_key("x2", 2)), 0);
	assert_int_equal(wf_stock_set(shm->stock, "x1", 2, "M", 1, 0), 0);
	assert_int_equal(wf_front_stock_note(&mirror, shm->stock, wf_stock_key("x1", 2)), 0);
	expect(&key, 1, 4, 0, (const char *const[]){ "x2", "x4", NULL });
	expect(&key, 1, 1, 0, (const char *const[]){ "x2", NULL });
	/* ...and a mirror that misses a write (a restarted ingest) is rebuilt
	 * from the table before use. */
	assert_int_equal(wf_stock_set(shm->stock, "x3", 2, "S", 1, 1), 0);
	expect(&key, 1, 4, 0, (const char *const[]){ "x2", "x3", "x4", NULL });
	wf_front_stock_free(&mirror);
	assert_int_equal(wf_stock_set(shm->stock, "x4", 2, "S", 1, 0), 0);
	expect(&key, 1, 4, 0, (const char *const[]){ "x2", "x3", NULL });
}

static void test_front_quiet_needs_empty_filter_and_same_start(void **state)
{
	struct wf_front *f = wf_shm_front(shm, 0);
	struct wf_shard_ctl *sc = wf_shm_shard(shm, 0);
	struct wf_front_key key;
	struct wf_front_deps d = deps_now(0);
	uint64_t h = wf_hash64("q1", 2) | 1;

	key_of(&key, 1, NULL, "u3", "3");
	publish(&key, &d, ABC, NULL, 1);
	expect(&key, 0, 3, h, ABC);
	/* The ranker holds a session with this hash. */
	wf_front_live_add(f, h, +1);
	expect(&key, 0, 3, h, NULL);
	wf_front_live_add(f, h, -1);
	expect(&key, 0, 3, h, ABC);
	/* A restart zeroed the filter after the entry was computed. */
	atomic_fetch_add_explicit(&sc->ranker_starts, 1, memory_order_relaxed);
	expect(&key, 0, 3, h, NULL);
}

static void test_front_dead_writer_mid_write_is_a_miss_until_repaired(void **state)
{
	struct wf_front *f = wf_shm_front(shm, 0);
	struct wf_front_key key;
	struct wf_front_deps d = deps_now(2);
	struct wf_front_entry *set;

	key_of(&key, 0, "s4", "u4", "3");
	set = &f->e[key.hash & (WF_FRONT_SLOTS - 2)];
	publish(&key, &d, ABC, NULL, 1);
	assert_int_equal(set[0].key, key.hash);
	/* A writer killed between begin and end. */
	wf_seq_write_begin(&set[0].lock);
	expect(&key, 2, 3, 0, NULL);
	/* The next publish of the key reuses its way and repairs the lock. */
	publish(&key, &d, (const char *const[]){ "d1", NULL }, NULL, 1);
	assert_int_equal(set[1].key, 0);
	expect(&key, 2, 3, 0, (const char *const[]){ "d1", NULL });
}

/* Generation g's answer: 1 + g % 24 items, item i's id is 1 + (g * 7 + i)
 * % 40 bytes, all the letter 'a' + g % 26 (a torn mix shows). */
static uint32_t race_items(uint64_t g)
{
	return 1 + (uint32_t)(g % 24);
}

static uint32_t race_len(uint64_t g, uint32_t i)
{
	return 1 + (uint32_t)((g * 7 + i) % 40);
}

static void race_publish(const struct wf_front_key *key, struct wf_front_deps *d, uint64_t g)
{
	static struct wf_front_stage st;
	char id[64];

	d->gen = g;
	wf_front_stage_init(&st, key, d);
	for (uint32_t i = 0; i < race_items(g); i++) {
		memset(id, 'a' + (int)(g % 26), sizeof(id));
		if (wf_front_stage_item(&st, wf_stock_key(id, race_len(g, i)), 0, id, race_len(g, i)) < 0)
			_exit(3);
	}
	wf_front_publish(wf_shm_front(shm, 0), &st, 1);
}

#define RACE_GENS 1000000u

static void test_front_two_processes_never_accept_torn_or_stale(void **state)
{
	struct wf_shard_ctl *sc = wf_shm_shard(shm, 0);
	struct wf_front_reader r = reader();
	static struct wf_front_answer a;
	struct wf_front_key key;
	struct wf_front_deps d = deps_now(9);
	uint64_t hits = 0;
	int status;
	pid_t pid;

	key_of(&key, 0, "s5", "u5", "24");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The ranker's side: generation g loaded (R4-like release),
		 * then its answer published over the previous one. */
		for (uint64_t n = 1; n <= RACE_GENS; n++) {
			atomic_store_explicit(&sc->loaded_gen, n, memory_order_release);
			race_publish(&key, &d, n);
		}
		_exit(0);
	}
	while (waitpid(pid, &status, WNOHANG) == 0) {
		/* acquire: pairs with the child's release store. */
		uint64_t before = atomic_load_explicit(&sc->loaded_gen, memory_order_acquire);
		if (wf_front_lookup(&r, &key, 9, 24, 0, wf_wall_ms(), &a) != 0)
			continue;
		/* Accepted: whole (one generation's items, each id intact) and
		 * current (a generation loaded at or after the lookup began). */
		uint32_t len;
		const char *id0 = wf_front_answer_id(&a, 0, &len);
		assert_true(a.e.gen >= before);
		assert_int_equal(a.e.gen % 26, (uint64_t)(id0[0] - 'a'));
		assert_int_equal(a.n, race_items(a.e.gen));
		for (uint32_t i = 0; i < a.n; i++) {
			const char *id = wf_front_answer_id(&a, i, &len);
			assert_int_equal(len, race_len(a.e.gen, i));
			for (uint32_t j = 0; j < len; j++)
				assert_int_equal(id[j], id0[0]);
		}
		hits++;
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* The writer is done: its last answer holds. */
	assert_int_equal(wf_front_lookup(&r, &key, 9, 24, 0, wf_wall_ms(), &a), 0);
	assert_int_equal(a.e.gen, RACE_GENS);
	assert_int_equal(a.n, race_items(RACE_GENS));
	print_message("accepted %llu answers while %u were published\n", (unsigned long long)hits, RACE_GENS);
}

/* Each case on a segment of its own. */
#define CASE(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CASE(test_front_publish_then_lookup_answers_in_rank_order),
		CASE(test_front_each_changed_input_refuses_the_entry),
		CASE(test_front_items_filtered_by_live_stock_then_snapshot),
		CASE(test_front_quiet_needs_empty_filter_and_same_start),
		CASE(test_front_dead_writer_mid_write_is_a_miss_until_repaired),
		CASE(test_front_two_processes_never_accept_torn_or_stale),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
