/*
 * test_shm.c - the shared segment (shm/shm.h): create and attach by name,
 * refusal of foreign or mismatched segments, the table of contents,
 * weights and snapshot refs under their seqlocks, and the size-level stock
 * table (single writer, readers in another process), the read-only
 * attach (sees every region, a store through it faults).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "shm/shm.h"

static char name[64];

static int setup(void **state)
{
	snprintf(name, sizeof(name), "weft.test.shm.%d", (int)getpid());
	wf_shm_unlink(name);
	return 0;
}

static int teardown(void **state)
{
	wf_shm_unlink(name);
	return 0;
}

static void test_shm_create_then_attach_sees_same_layout(void **state)
{
	struct wf_shm_config cfg = { .nshards = 3, .ring_capacity = 1 << 16, .stock_capacity = 1024 };
	struct wf_shm *a, *b;

	assert_int_equal(wf_shm_create(name, &cfg, &a), 0);
	assert_int_equal(wf_shm_create(name, &cfg, &b), -EEXIST);
	assert_int_equal(wf_shm_attach(name, &b), 0);
	assert_int_equal(wf_shm_nshards(b), 3);
	for (uint32_t i = 0; i < 3; i++) {
		assert_non_null(wf_shm_req_ring(b, i));
		assert_non_null(wf_shm_rep_ring(b, i));
		assert_int_equal(wf_shm_req_ring(b, i)->capacity, 1 << 16);
	}
	assert_null(wf_shm_shard(b, 3));
	assert_null(wf_shm_region(b, "nope", NULL));
	assert_null(wf_shm_ptr(b, b->size - 8, 16));
	assert_non_null(wf_shm_ptr(b, b->size - 8, 8));
	/* Writes through one mapping are seen through the other. */
	atomic_store(&wf_shm_shard(a, 2)->ready, 1);
	assert_int_equal(atomic_load(&wf_shm_shard(b, 2)->ready), 1);
	wf_shm_detach(a);
	wf_shm_detach(b);
}

static void test_shm_open_with_other_shard_count_returns_estale(void **state)
{
	struct wf_shm_config cfg = { .nshards = 2, .ring_capacity = 1 << 16, .stock_capacity = 1024 };
	struct wf_shm_config other = cfg;
	struct wf_shm *a, *b;

	assert_int_equal(wf_shm_open(name, &cfg, &a), 0);
	other.nshards = 4;
	assert_int_equal(wf_shm_open(name, &other, &b), -ESTALE);
	assert_int_equal(wf_shm_open(name, &cfg, &b), 0);
	wf_shm_detach(a);
	wf_shm_detach(b);
}

static void test_shm_attach_foreign_file_returns_eproto(void **state)
{
	char path[128];
	struct wf_shm *s;
	int fd;

	assert_int_equal(wf_shm_attach(name, &s), -ENOENT);
	snprintf(path, sizeof(path), "/dev/shm/%s", name);
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 65536), 0);
	assert_int_equal(pwrite(fd, "not a weft segment", 18, 0), 18);
	close(fd);
	assert_int_equal(wf_shm_attach(name, &s), -EPROTO);
	assert_int_equal(wf_shm_create("bad/name", &(struct wf_shm_config){ .nshards = 1 }, &s), -EINVAL);
	assert_int_equal(wf_shm_create(name, &(struct wf_shm_config){ .nshards = 0 }, &s), -EINVAL);
}

static void test_shm_weights_default_and_set(void **state)
{
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1 << 16, .stock_capacity = 1024 };
	struct wf_shm *s;
	float b, se;

	assert_int_equal(wf_shm_create(name, &cfg, &s), 0);
	wf_ctl_weights_get(s->ctl, WF_PAGE_HOME, WF_VISITOR_RETURNING, &b, &se);
	assert_float_equal(b, 0.4, 1e-6);
	assert_float_equal(se, 0.6, 1e-6);
	wf_ctl_weights_get(s->ctl, WF_PAGE_PDP, WF_VISITOR_NEW, &b, &se);
	assert_float_equal(b, 0.1, 1e-6);
	assert_float_equal(se, 0.9, 1e-6);
	wf_ctl_weights_get(s->ctl, WF_PAGE_EMAIL, WF_VISITOR_NEW, &b, &se);
	assert_float_equal(se, 0.0, 1e-6);
	wf_ctl_weights_set(s->ctl, WF_PAGE_SEARCH, WF_VISITOR_NEW, 0.25f, 0.75f);
	wf_ctl_weights_get(s->ctl, WF_PAGE_SEARCH, WF_VISITOR_NEW, &b, &se);
	assert_float_equal(b, 0.25, 1e-6);
	assert_float_equal(se, 0.75, 1e-6);
	wf_shm_detach(s);
}

static void test_shm_snap_refs_publish_generation(void **state)
{
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1 << 16, .stock_capacity = 1024 };
	struct wf_snap_ref cur = { .gen = 5 }, prev = { .gen = 4 }, c2, p2;
	struct wf_shm *s;

	assert_int_equal(wf_shm_create(name, &cfg, &s), 0);
	snprintf(cur.path, sizeof(cur.path), "/x/night5.snap");
	snprintf(prev.path, sizeof(prev.path), "/x/night4.snap");
	wf_ctl_snap_set(s->ctl, &cur, &prev);
	assert_int_equal(atomic_load(&s->ctl->snap_cur_gen), 5);
	wf_ctl_snap_get(s->ctl, &c2, &p2);
	assert_string_equal(c2.path, "/x/night5.snap");
	assert_string_equal(p2.path, "/x/night4.snap");
	assert_int_equal(p2.gen, 4);
	wf_shm_detach(s);
}

static void test_stock_sizes_and_sold_out(void **state)
{
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1 << 16, .stock_capacity = 1024 };
	struct wf_stock_view v[WF_STOCK_SIZES];
	struct wf_shm *s;
	uint64_t k;

	assert_int_equal(wf_shm_create(name, &cfg, &s), 0);
	k = wf_stock_key("jacket", 6);
	assert_int_equal(wf_stock_state(s->stock, k, NULL, 0), WF_STOCK_UNKNOWN);
	assert_int_equal(wf_stock_set(s->stock, "jacket", 6, "M", 1, 3), 0);
	assert_int_equal(wf_stock_set(s->stock, "jacket", 6, "L", 1, 0), 0);
	assert_int_equal(wf_stock_state(s->stock, k, NULL, 0), WF_STOCK_IN);
	assert_int_equal(wf_stock_state(s->stock, k, "M", 1), WF_STOCK_IN);
	assert_int_equal(wf_stock_state(s->stock, k, "L", 1), WF_STOCK_OUT);
	assert_int_equal(wf_stock_state(s->stock, k, "XL", 2), WF_STOCK_OUT);
	assert_int_equal(wf_stock_set(s->stock, "jacket", 6, "M", 1, 0), 0);
	assert_int_equal(wf_stock_state(s->stock, k, NULL, 0), WF_STOCK_OUT);
	assert_int_equal(wf_stock_read(s->stock, "jacket", 6, v, WF_STOCK_SIZES), 2);
	assert_string_equal(v[0].name, "M");
	assert_int_equal(v[1].qty, 0);
	/* Size-less item. */
	assert_int_equal(wf_stock_set(s->stock, "mug", 3, NULL, 0, 0), 0);
	assert_int_equal(wf_stock_state(s->stock, wf_stock_key("mug", 3), NULL, 0), WF_STOCK_OUT);
	assert_int_equal(wf_stock_set(s->stock, "mug", 3, "", 0, 2), 0);
	assert_int_equal(wf_stock_state(s->stock, wf_stock_key("mug", 3), "M", 1), WF_STOCK_IN);
	assert_int_equal(wf_stock_set(s->stock, "mug", 3, "a-size-name-too-long", 20, 2), -EINVAL);
	assert_int_equal(wf_stock_read(s->stock, "nothing", 7, v, 4), -ENOENT);
	wf_shm_detach(s);
}

static void test_stock_full_table_returns_enospc(void **state)
{
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1 << 16, .stock_capacity = 16 };
	struct wf_shm *s;
	char id[16];

	assert_int_equal(wf_shm_create(name, &cfg, &s), 0);
	for (int i = 0; i < 16; i++) {
		snprintf(id, sizeof(id), "i%d", i);
		assert_int_equal(wf_stock_set(s->stock, id, strlen(id), "M", 1, 1), 0);
	}
	assert_int_equal(wf_stock_set(s->stock, "one-more", 8, "M", 1, 1), -ENOSPC);
	assert_int_equal(wf_stock_set(s->stock, "i3", 2, "L", 1, 1), 0);
	wf_shm_detach(s);
}

/* A reader in another process never sees an item that is sold out in every
 * size as in stock once the writer has marked it out, and sees every item
 * the writer inserted. */
static void test_stock_reader_in_other_process_sees_writes(void **state)
{
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1 << 16, .stock_capacity = 1 << 12 };
	struct wf_shm *s;
	int status;
	pid_t pid;

	assert_int_equal(wf_shm_create(name, &cfg, &s), 0);
	pid = fork();
	if (pid == 0) {
		struct wf_shm *r;
		if (wf_shm_attach(name, &r) < 0)
			_exit(2);
		/* Wait for the writer's last item, then check them all. */
		while (wf_stock_state(r->stock, wf_stock_key("i1999", 5), NULL, 0) != WF_STOCK_OUT)
			;
		for (int i = 0; i < 2000; i++) {
			char id[16];
			snprintf(id, sizeof(id), "i%d", i);
			int st = wf_stock_state(r->stock, wf_stock_key(id, strlen(id)), NULL, 0);
			if (st != (i % 2 ? WF_STOCK_OUT : WF_STOCK_IN))
				_exit(1);
		}
		_exit(0);
	}
	for (int i = 0; i < 2000; i++) {
		char id[16];
		snprintf(id, sizeof(id), "i%d", i);
		wf_stock_set(s->stock, id, strlen(id), "S", 1, i % 2 ? 0 : 5);
		wf_stock_set(s->stock, id, strlen(id), "M", 1, 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	wf_shm_detach(s);
}

/* Latency histogram: every value falls in a bucket whose upper bound is
 * above it and at most ~25 % away; quantiles come out in order. */
static void test_lathist_buckets_and_quantiles(void **state)
{
	static _Atomic uint64_t h[WF_LAT_BUCKETS];
	uint64_t n;

	for (uint64_t ns = 1; ns < (1ull << 31); ns = ns * 3 / 2 + 1) {
		uint32_t b = wf_lat_bucket(ns);
		assert_true(b < WF_LAT_BUCKETS);
		assert_true(wf_lat_bucket_upper(b) > ns);
		assert_true(ns < 8 || wf_lat_bucket_upper(b) <= ns + ns / 4 + 1);
		if (b > 0)
			assert_true(wf_lat_bucket_upper(b - 1) <= ns);
	}
	assert_int_equal(wf_lat_quantile(h, 0.5, &n), 0);
	assert_int_equal(n, 0);
	for (int i = 1; i <= 100; i++)
		wf_lat_add(h, (uint64_t)i * 1000); /* 1..100 us */
	uint64_t p50 = wf_lat_quantile(h, 0.50, &n), p99 = wf_lat_quantile(h, 0.99, NULL);
	assert_int_equal(n, 100);
	assert_true(p50 >= 50000 && p50 <= 64000);
	assert_true(p99 >= 99000 && p99 <= 128000);
	assert_true(p50 < p99);
}

/* A read-only attach sees what the writer wrote, every region included;
 * a store through it is a fault (the child dies of SIGSEGV), not a write. */
static void test_shm_attach_ro_reads_and_cannot_write(void **state)
{
	struct wf_shm_config cfg = { .nshards = 2, .ring_capacity = 1 << 16, .stock_capacity = 64 };
	struct wf_shm *a, *r;
	int status;
	pid_t pid;

	assert_int_equal(wf_shm_create(name, &cfg, &a), 0);
	atomic_store(&a->reqlat->sum_ns[WF_LAT_EVENT], 12345);
	atomic_store(&wf_shm_shard(a, 1)->ready, 1);
	assert_int_equal(wf_shm_attach_ro(name, &r), 0);
	assert_int_equal(wf_shm_nshards(r), 2);
	assert_int_equal(atomic_load(&r->reqlat->sum_ns[WF_LAT_EVENT]), 12345);
	assert_int_equal(atomic_load(&wf_shm_shard(r, 1)->ready), 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL); /* not cmocka's handler */
		atomic_store(&wf_shm_shard(r, 1)->ready, 2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
	assert_int_equal(atomic_load(&wf_shm_shard(a, 1)->ready), 1);
	assert_int_equal(wf_shm_attach_ro("weft.test.no.such", &r), -ENOENT);
	wf_shm_detach(r);
	wf_shm_detach(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_shm_create_then_attach_sees_same_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shm_open_with_other_shard_count_returns_estale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shm_attach_foreign_file_returns_eproto, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shm_weights_default_and_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shm_snap_refs_publish_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stock_sizes_and_sold_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stock_full_table_returns_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stock_reader_in_other_process_sees_writes, setup, teardown),
		cmocka_unit_test(test_lathist_buckets_and_quantiles),
		cmocka_unit_test_setup_teardown(test_shm_attach_ro_reads_and_cannot_write, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
