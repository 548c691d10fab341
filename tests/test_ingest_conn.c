/*
 * test_ingest_conn.c - weft-ingest's connections and reply slots
 * (ingest/conn.c) driven directly, with a real segment and journal:
 * replies leave in request order whatever order they come in; a reply
 * that cannot be copied (malloc fails) still makes its slot ready, as an
 * error, so the connection does not wait forever; with no submission
 * entry to be had a send or receive is left for a later pass instead of
 * writing through NULL. malloc is wrapped (-Wl,--wrap=malloc) to fail
 * one chosen size. Each reply is timed (ingest/latency.c): into its
 * request's series, from the pass it came in to the pass end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingest/ingest.h"

/* ---- malloc that fails one size on demand ---- */

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
static size_t fail_size; /* 0: never */

void *__wrap_malloc(size_t n)
{
	if (fail_size && n == fail_size)
		return NULL;
	return __real_malloc(n);
}

/* ---- what conn.c needs from the rest of weft-ingest ---- */

static int sqe_none; /* ingest_get_sqe() finds no entry */

struct io_uring_sqe *ingest_get_sqe(struct ingest_ctx *ctx)
{
	if (sqe_none) {
		ctx->sqe_short = 1;
		return NULL;
	}
	return io_uring_get_sqe(&ctx->ring);
}

int ingest_dispatch(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r)
{
	return 0;
}

void ingest_pubsub_drop(struct ingest_ctx *ctx, struct ingest_conn *c)
{
}

/* ---- fixture ---- */

static struct {
	struct ingest_ctx ctx;
	char shm_name[64], dir[64];
	int sv[2];
} F;

static int setup(void **state)
{
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1 << 16, .stock_capacity = 64 };
	char err[256];

	memset(&F, 0, sizeof(F));
	snprintf(F.shm_name, sizeof(F.shm_name), "weft.test.conn.%d", (int)getpid());
	snprintf(F.dir, sizeof(F.dir), "/tmp/weft-test-conn.XXXXXX");
	wf_shm_unlink(F.shm_name);
	assert_int_equal(wf_shm_create(F.shm_name, &cfg, &F.ctx.shm), 0);
	assert_non_null(mkdtemp(F.dir));
	assert_int_equal(wf_journal_open(F.dir, NULL, &F.ctx.journal, err, sizeof(err)), 0);
	F.ctx.nconns_cap = 4;
	F.ctx.conns = calloc(4, sizeof(*F.ctx.conns));
	F.ctx.free_idx = malloc(4 * sizeof(*F.ctx.free_idx));
	F.ctx.dirty = malloc(4 * sizeof(*F.ctx.dirty));
	for (uint32_t i = 0; i < 4; i++)
		F.ctx.free_idx[F.ctx.nfree++] = 3 - i;
	assert_int_equal(io_uring_queue_init(8, &F.ctx.ring, 0), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, F.sv), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	for (uint32_t i = 0; i < F.ctx.nconns_cap; i++) {
		struct ingest_conn *c = F.ctx.conns[i];
		if (!c)
			continue;
		if (c->fd >= 0)
			close(c->fd);
		wf_buf_fini(&c->in);
		wf_buf_fini(&c->out);
		wf_buf_fini(&c->sendbuf);
		free(c->slots);
		free(c);
	}
	free(F.ctx.conns);
	free(F.ctx.free_idx);
	free(F.ctx.dirty);
	io_uring_queue_exit(&F.ctx.ring);
	close(F.sv[1]);
	wf_journal_close(F.ctx.journal);
	wf_shm_detach(F.ctx.shm);
	wf_shm_unlink(F.shm_name);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", F.dir);
	assert_int_equal(system(cmd), 0);
	fail_size = 0;
	sqe_none = 0;
	return 0;
}

static void assert_out(const struct ingest_conn *c, const char *want)
{
	assert_int_equal(c->out.len, strlen(want));
	assert_memory_equal(c->out.data, want, strlen(want));
}

static void test_ingest_conn_replies_leave_in_request_order(void **state)
{
	struct ingest_conn *c = ingest_conn_new(&F.ctx, F.sv[0]);

	assert_non_null(c);
	assert_non_null(ingest_slot_new(c));
	assert_non_null(ingest_slot_new(c));
	ingest_slot_answer(&F.ctx, c, 1, "+second\r\n", 9);
	assert_int_equal(c->out.len, 0); /* the first is still owed */
	ingest_slot_answer(&F.ctx, c, 0, "+first\r\n", 8);
	assert_out(c, "+first\r\n+second\r\n");
	assert_int_equal(c->head, c->tail);
}

static void test_ingest_conn_reply_without_memory_is_an_error_not_a_stall(void **state)
{
	struct ingest_conn *c = ingest_conn_new(&F.ctx, F.sv[0]);
	char big[100];

	assert_non_null(c);
	memset(big, 'x', sizeof(big));
	big[0] = '+';
	big[98] = '\r';
	big[99] = '\n';
	assert_non_null(ingest_slot_new(c));
	assert_non_null(ingest_slot_new(c));
	fail_size = sizeof(big); /* the slot's copy of this reply */
	ingest_slot_answer(&F.ctx, c, 0, big, sizeof(big));
	fail_size = 0;
	ingest_slot_answer(&F.ctx, c, 1, "+next\r\n", 7);
	/* Both slots went: the first as an error, the second as sent. */
	assert_out(c, "-ERR out of memory\r\n+next\r\n");
	assert_int_equal(c->head, c->tail);
}

static void test_ingest_conn_no_sqe_leaves_send_and_recv_for_later(void **state)
{
	struct ingest_conn *c = ingest_conn_new(&F.ctx, F.sv[0]);

	assert_non_null(c);
	assert_int_equal(ingest_reply_local(&F.ctx, c, "+PONG\r\n", 7, 0), 0);
	sqe_none = 1;
	ingest_arm_send(&F.ctx, c);
	ingest_arm_recv(&F.ctx, c);
	assert_int_equal(c->send_armed, 0);
	assert_int_equal(c->recv_armed, 0);
	assert_int_equal(F.ctx.sqe_short, 1);
	assert_int_equal(c->sendbuf.len, 7); /* kept for the next try */
	sqe_none = 0;
	ingest_arm_send(&F.ctx, c);
	ingest_arm_recv(&F.ctx, c);
	assert_int_equal(c->send_armed, 1);
	assert_int_equal(c->recv_armed, 1);
}

/* A local reply and a forwarded request's reply, queued in one pass,
 * land in their series at the pass end, timed from the pass clock. */
static void test_ingest_conn_replies_are_timed_in_their_series(void **state)
{
	struct ingest_conn *c = ingest_conn_new(&F.ctx, F.sv[0]);
	struct wf_reqlat *rl = F.ctx.shm->reqlat;
	uint64_t h[WF_LAT_BUCKETS];
	struct ingest_slot *sl;

	assert_non_null(c);
	F.ctx.pass_ns = wf_now_ns();
	F.ctx.lat.series = WF_LAT_LOCAL;
	assert_int_equal(ingest_reply_local(&F.ctx, c, "+PONG\r\n", 7, 0), 0);
	sl = ingest_slot_new(c);
	assert_non_null(sl);
	ingest_lat_stamp(&F.ctx, sl, ingest_lat_series_of(WF_CMD_RECS));
	assert_int_equal(wf_lat_snapshot(rl->hist[WF_LAT_LOCAL], h), 0); /* not before the pass end */
	ingest_slot_answer(&F.ctx, c, 0, "*0\r\n", 4);
	ingest_lat_flush(&F.ctx);
	assert_int_equal(wf_lat_snapshot(rl->hist[WF_LAT_LOCAL], h), 1);
	assert_int_equal(wf_lat_snapshot(rl->hist[WF_LAT_RECS], h), 1);
	assert_int_equal(wf_lat_snapshot(rl->hist[WF_LAT_EVENT], h), 0);
	assert_true(atomic_load(&rl->sum_ns[WF_LAT_RECS]) <= wf_now_ns() - F.ctx.pass_ns);
	assert_int_equal(F.ctx.lat.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ingest_conn_replies_leave_in_request_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_conn_reply_without_memory_is_an_error_not_a_stall, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ingest_conn_no_sqe_leaves_send_and_recv_for_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ingest_conn_replies_are_timed_in_their_series, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
