/*
 * test_ingest.c - weft-ingest end to end over its Unix socket, against a
 * fake ranker (a thread here that serves every shard of a test segment and
 * answers each request with "+<CMD> <arg> <arg>..."; EVENTs carry
 * WF_MSG_F_NOREPLY and get no reply: ingest acks them once journaled):
 * an EVENT is acknowledged while its ranker is not reading, a request after
 * it on the same connection still waits for the ranker;
 * replies stay in request order when a pipeline spans shards; backpressure
 * holds requests (nothing dropped) while the ranker does not read, and
 * stops reading the client (the kernel socket pushes back); a
 * connection that closes with requests in flight does not leak replies into
 * the next connection that reuses its slot; foreign-epoch and duplicate
 * replies are dropped; protocol errors, oversized requests and QUIT answer
 * then close, executing nothing after; validation errors keep the
 * connection; max clients; STOCK; INFO; SIGTERM exits 0; quiet front
 * answers (a user's answer for sessions without state) are given only
 * while no EVENT was routed for the session, the ranker's live-session
 * filter says it holds none, and its start count is the entry's; a front
 * answer applies live stock (else the snapshot's word in the item's
 * record) at read time, past the records read first when many are sold,
 * after every STOCK and for stock written before ingest started.
 * Segments (issue 16): pub/sub answers byte for byte as redis-server 7;
 * a transition note (the fake sends one for an EVENT on item
 * "note-<segment>", and before the reply to a request of session
 * "note-...") is pushed to channel and pattern subscribers once, even
 * when sent twice, and TRIGGERS replays it from a cursor; a reply behind
 * a note leaves only once the note is in TRIGGERS; SEGPREVIEW's answers
 * of every shard merge into one reply, in order; a subscriber that never
 * reads is disconnected at --pubsub-limit while others are served.
 *
 * Needs the weft-ingest binary (WEFT_BUILD_ROOT/ingest/weft-ingest). Uses
 * its own segment weft.test.ingest.<pid> and a temp dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ingest/ingest.h" /* the input bounds the backpressure test checks */
#include "lib/proto.h"
#include "lib/util.h"
#include "shm/front.h"
#include "shm/msg.h"
#include "shm/shm.h"

#define NSHARDS 2u
#define MAX_CLIENTS 8
#define IO_TIMEOUT_MS 20000 /* a hang detector, not a measurement */

struct fake {
	struct wf_shm *shm;
	pthread_t th;
	_Atomic int stop;
	_Atomic int paused;
	_Atomic int dup_next;       /* next reply: a foreign-epoch one before it, a copy after */
	_Atomic uint64_t served[NSHARDS];
	_Atomic uint64_t saw_marker; /* requests whose first argument is "afterquit" */
	int squat_fd;               /* holds the old doorbell name, as a hostile local user would */
};

struct env {
	char dir[256], sock[300], shm_name[64];
	pid_t ingest;
	struct fake fake;
};

static struct env E;

static const char *cmd_name(int cmd)
{
	static const char *const n[] = { "?", "EVENT", "RECS", "RERANK", "HISTORY", "SEGMENTS", "SEGPREVIEW" };
	return cmd > 0 && cmd < WF_CMD_COUNT ? n[cmd] : "?";
}

/* As a ranker wakes ingest (rankers/ranker.c wake_ingest()). */
static void fake_bell(struct fake *f)
{
	if (wf_wait_needs_wake(&f->shm->ctl->ingest_wait))
		wf_wake_futex(&f->shm->ctl->ingest_wait);
}

/* Push a reply, waiting for room (ingest drains the reply ring every pass). */
static void fake_push(struct fake *f, struct wf_ring_prod *rp, const struct wf_msg_rep *h, const char *resp,
		      uint32_t len)
{
	while (wf_msg_rep_push(rp, h, resp, len) == -EAGAIN) {
		wf_ring_prod_commit(rp);
		fake_bell(f);
		usleep(100);
	}
}

static int arg_is(const struct wf_arg *a, const char *s)
{
	return a->len == strlen(s) && memcmp(a->p, s, a->len) == 0;
}

static int arg_prefix(const struct wf_arg *a, const char *s)
{
	return a->len >= strlen(s) && memcmp(a->p, s, strlen(s)) == 0;
}

/* A segment transition note, as a ranker sends it (issue 16's contract):
 * key segment version enter session user reason. An EVENT whose item is
 * "note-<segment>" [seq n] makes one for its session; so does any other
 * request whose session starts with "note-" (segment "held"), before its
 * reply. */
static void fake_note(struct fake *f, struct wf_ring_prod *rp, const struct wf_msg_req_view *v)
{
	char key[300], seg[140];
	const struct wf_arg *seq = v->argc >= 6 && arg_is(&v->argv[4], "seq") ? &v->argv[5] : NULL;
	int ev = v->hdr->cmd == WF_CMD_EVENT;

	snprintf(seg, sizeof(seg), "%.*s", ev ? (int)v->argv[3].len - 5 : 4, ev ? v->argv[3].p + 5 : "held");
	snprintf(key, sizeof(key), "%s/1/%.*s/%.*s", seg, seq ? (int)seq->len : 1, seq ? seq->p : "1",
		 (int)v->argv[0].len, v->argv[0].p);
	struct wf_arg a[7] = {
		{ key, (uint32_t)strlen(key) }, { seg, (uint32_t)strlen(seg) }, { "1", 1 }, { "enter", 5 },
		v->argv[0], v->argc > 1 ? v->argv[1] : (struct wf_arg){ "-", 1 }, { "test", 4 },
	};
	struct wf_msg_note h = { .ts_ms = 1700000000000ull, .jkind = WF_JREC_SEGMENT };

	while (wf_msg_note_push(rp, &h, 7, a) == -EAGAIN) {
		wf_ring_prod_commit(rp);
		fake_bell(f);
		usleep(100);
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	struct wf_ring_cons rq[NSHARDS];
	struct wf_ring_prod rp[NSHARDS];
	static struct wf_msg_req_view v;
	char out[4096];

	for (uint32_t s = 0; s < NSHARDS; s++) {
		wf_ring_cons_attach(&rq[s], wf_shm_req_ring(f->shm, s));
		wf_ring_prod_attach(&rp[s], wf_shm_rep_ring(f->shm, s));
	}
	while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
		int work = 0;

		if (atomic_load_explicit(&f->paused, memory_order_acquire)) {
			usleep(200);
			continue;
		}
		for (uint32_t s = 0; s < NSHARDS; s++) {
			const void *p;
			uint32_t len, kind, n = 0;

			while ((p = wf_ring_pop(&rq[s], &len, &kind))) {
				struct wf_msg_rep h = { 0 };
				size_t o = 0;

				n++;
				if (kind != WF_MSG_REQ || wf_msg_req_decode(p, len, &v) < 0)
					continue;
				if (v.argc > 0 && v.argv[0].len == 9 && memcmp(v.argv[0].p, "afterquit", 9) == 0)
					atomic_fetch_add_explicit(&f->saw_marker, 1, memory_order_relaxed);
				if (v.hdr->cmd == WF_CMD_EVENT && v.argc >= 4 && arg_prefix(&v.argv[3], "note-"))
					fake_note(f, &rp[s], &v);
				else if (v.hdr->cmd != WF_CMD_EVENT && v.argc >= 1 && arg_prefix(&v.argv[0], "note-"))
					fake_note(f, &rp[s], &v);
				if (v.hdr->flags & WF_MSG_F_NOREPLY) { /* EVENTs: ingest acks them */
					atomic_fetch_add_explicit(&f->served[s], 1, memory_order_relaxed);
					continue;
				} else if (v.hdr->cmd == WF_CMD_SEGPREVIEW) {
					/* shard s: s+1 matched, 1 new, s returning, one sample */
					if (arg_prefix(&v.argv[0], "bad"))
						o = (size_t)snprintf(out, sizeof(out), "-ERR rule: at 4: expected '('\r\n");
					else
						o = (size_t)snprintf(out, sizeof(out), "*4\r\n:%u\r\n:1\r\n:%u\r\n*1\r\n$7\r\nsess%u "
								     "u\r\n", s + 1, s, s);
				} else {
					o = (size_t)snprintf(out, sizeof(out), "+%s", cmd_name(v.hdr->cmd));
					for (uint32_t i = 0; i < v.argc && o < sizeof(out) - 300; i++)
						o += (size_t)snprintf(out + o, sizeof(out) - o, " %.*s",
								      (int)WF_MIN(v.argv[i].len, 256u), v.argv[i].p);
					o += (size_t)snprintf(out + o, sizeof(out) - o, "\r\n");
				}
				h.req_id = v.hdr->req_id;
				h.t_recv_ns = v.hdr->t_recv_ns;
				if (atomic_exchange_explicit(&f->dup_next, 0, memory_order_relaxed)) {
					struct wf_msg_rep foreign = h;
					foreign.req_id ^= (uint64_t)0x5a5a << 32; /* another epoch */
					fake_push(f, &rp[s], &foreign, "+FOREIGN\r\n", 10);
					fake_push(f, &rp[s], &h, out, (uint32_t)o);
				}
				fake_push(f, &rp[s], &h, out, (uint32_t)o);
				atomic_fetch_add_explicit(&f->served[s], 1, memory_order_relaxed);
			}
			if (n) {
				wf_ring_cons_release(&rq[s]);
				wf_ring_prod_commit(&rp[s]);
				work = 1;
			}
		}
		if (work)
			fake_bell(f);
		else
			usleep(50);
	}
	return NULL;
}

/* ---- client side ---- */

static int cli_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(E.sock) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, E.sock, strlen(E.sock) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Send out[0..n) while reading; return when want bytes arrived, or what
 * arrived ends with until (if not NULL), or at EOF. The reply is
 * NUL-terminated in *ret (malloc'd). */
static size_t exchange_until(int fd, const char *out, size_t n, size_t want, const char *until, char **ret)
{
	size_t sent = 0, cap = 1 << 16, got = 0;
	char *in = malloc(cap + 1);

	assert_non_null(in);
	while (got < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (sent < n ? POLLOUT : 0) };
		int r = poll(&p, 1, IO_TIMEOUT_MS);

		if (r == 0)
			fail_msg("no progress for %d ms: sent %zu/%zu, got %zu/%zu", IO_TIMEOUT_MS, sent, n, got, want);
		if ((p.revents & POLLOUT) && sent < n) {
			ssize_t w = send(fd, out + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w > 0)
				sent += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				sent = n; /* peer closed: read what it said */
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			if (got == cap) {
				cap *= 2;
				in = realloc(in, cap + 1);
				assert_non_null(in);
			}
			ssize_t m = recv(fd, in + got, cap - got, MSG_DONTWAIT);
			if (m == 0 || (m < 0 && errno != EAGAIN))
				break;
			if (m > 0)
				got += (size_t)m;
			if (until && got >= strlen(until) && memcmp(in + got - strlen(until), until, strlen(until)) == 0)
				break;
		}
	}
	in[got] = '\0';
	*ret = in;
	return got;
}

static size_t exchange(int fd, const char *out, size_t n, size_t want, char **ret)
{
	return exchange_until(fd, out, n, want, NULL, ret);
}

static void expect_reply(int fd, const char *send_s, const char *want)
{
	char *got;

	exchange(fd, send_s, strlen(send_s), strlen(want), &got);
	assert_string_equal(got, want);
	free(got);
}

static void expect_reply_then_eof(int fd, const char *send_s, const char *want)
{
	char *got;

	exchange(fd, send_s, strlen(send_s), SIZE_MAX, &got);
	assert_string_equal(got, want);
	free(got);
}

static uint64_t stat_stalls(void)
{
	return atomic_load_explicit(&E.fake.shm->ctl->ingest_stats.backpressure_stalls, memory_order_relaxed);
}

/* Wait (bounded) until ingest holds exactly n connections. */
static void wait_connections(uint64_t n)
{
	for (int i = 0; i < IO_TIMEOUT_MS / 5; i++) {
		if (atomic_load_explicit(&E.fake.shm->ctl->ingest_stats.connections, memory_order_relaxed) == n)
			return;
		usleep(5000);
	}
	fail_msg("ingest never reached %llu connections", (unsigned long long)n);
}

/* ---- setup ---- */

/* Each case starts with the fake ranker reading (a case that failed
 * while it was paused must not hang the ones after it). */
static int fresh(void **state)
{
	(void)state;
	atomic_store_explicit(&E.fake.paused, 0, memory_order_release);
	return 0;
}

static int setup(void **state)
{
	struct wf_shm_config cfg = { .nshards = NSHARDS, .ring_capacity = 8192, .stock_capacity = 1024 };
	const char *root = getenv("WEFT_BUILD_ROOT");
	char exe[512], maxc[16];

	snprintf(E.shm_name, sizeof(E.shm_name), "weft.test.ingest.%d", (int)getpid());
	snprintf(E.dir, sizeof(E.dir), "%s/weft-test-ingest.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(E.dir))
		return -1;
	snprintf(E.sock, sizeof(E.sock), "%s/weft.sock", E.dir);
	snprintf(exe, sizeof(exe), "%s/ingest/weft-ingest", root ? root : "build");
	if (access(exe, X_OK) != 0) {
		fprintf(stderr, "test_ingest: %s not built\n", exe);
		return -1;
	}
	if (wf_shm_create(E.shm_name, &cfg, &E.fake.shm) < 0)
		return -1;
	/* A local user binds the abstract name ingest's doorbell once had
	 * ("weft-bell.<segment>"), before ingest starts: it must not matter. */
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "weft-bell.%s", E.shm_name);

		E.fake.squat_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (E.fake.squat_fd < 0 ||
		    bind(E.fake.squat_fd, (struct sockaddr *)&sa,
			 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0)
			return -1;
	}
	if (pthread_create(&E.fake.th, NULL, fake_main, &E.fake) != 0)
		return -1;
	snprintf(maxc, sizeof(maxc), "%d", MAX_CLIENTS);
	E.ingest = fork();
	if (E.ingest == 0) {
		execl(exe, exe, "--dir", E.dir, "--shm", E.shm_name, "--max-clients", maxc, "--durability", "os",
		      "--pubsub-limit", "65536,16384,1", "--triggers-recent", "1024",
		      (char *)NULL);
		_exit(127);
	}
	/* A5-like: pairs with the release store of ingest_ready in weft-ingest. */
	for (int i = 0; i < 2000; i++) {
		if (atomic_load_explicit(&E.fake.shm->ctl->ingest_ready, memory_order_acquire))
			return 0;
		if (waitpid(E.ingest, NULL, WNOHANG) == E.ingest)
			return -1;
		usleep(5000);
	}
	return -1;
}

static int teardown(void **state)
{
	int st = -1;
	char cmd[600];

	if (E.ingest > 0) {
		kill(E.ingest, SIGTERM);
		waitpid(E.ingest, &st, 0);
	}
	atomic_store_explicit(&E.fake.stop, 1, memory_order_relaxed);
	pthread_join(E.fake.th, NULL);
	wf_shm_unlink(E.shm_name);
	wf_shm_detach(E.fake.shm);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", E.dir);
	(void)!system(cmd);
	/* SIGTERM: stop accepting, flush, exit 0. */
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "weft-ingest did not exit 0 on SIGTERM (status %d)\n", st);
		return -1;
	}
	return 0;
}

/* ---- tests ---- */

static void test_ingest_local_commands_answer(void **state)
{
	int fd = cli_connect();

	expect_reply(fd, "PING\r\n", "+PONG\r\n");
	expect_reply(fd, "*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n", "$2\r\nhi\r\n");
	expect_reply(fd, "ECHO \"a b\"\r\n", "$3\r\na b\r\n");
	expect_reply(fd, "SELECT 0\r\n", "+OK\r\n");
	expect_reply(fd, "COMMAND DOCS\r\n", "*0\r\n");
	expect_reply(fd, "CONFIG GET save\r\n", "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
	expect_reply(fd, "CONFIG GET appendonly\r\n", "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
	expect_reply(fd, "HELLO 3\r\n",
		     "-ERR unknown command 'HELLO' (weft speaks EVENT RECS RERANK STOCK SEGMENTS "
		     "SEGPREVIEW HISTORY SUBSCRIBE PSUBSCRIBE TRIGGERS PING INFO)\r\n");
	close(fd);
}

static void test_ingest_stock_set_and_read(void **state)
{
	int fd = cli_connect();

	expect_reply(fd, "STOCK sku1 M 3\r\nSTOCK sku1 L 0\r\n", ":1\r\n:1\r\n");
	expect_reply(fd, "STOCK sku1 M\r\n", ":3\r\n");
	expect_reply(fd, "STOCK sku1 XL\r\n", "$-1\r\n");
	expect_reply(fd, "STOCK sku1\r\n", "*4\r\n$1\r\nM\r\n:3\r\n$1\r\nL\r\n:0\r\n");
	expect_reply(fd, "STOCK sku1 M -1\r\n", "-ERR STOCK qty must be an integer from 0 to 2147483647\r\n");
	close(fd);
}

static void test_ingest_info_is_redis_like(void **state)
{
	static const char *const fields[] = { "# Server\r\n", "\r\nweft_version:", "\r\nprocess_id:",
					      "\r\nuptime_in_seconds:", "# Clients\r\nconnected_clients:1\r\n",
					      "# Stats\r\n", "\r\ntotal_commands_processed:", "\r\nevents_acked:",
					      "\r\nshard0:", "\r\nshard1:" };
	int fd;
	char *got;

	wait_connections(0);
	fd = cli_connect();
	exchange_until(fd, "INFO\r\nPING\r\n", 12, SIZE_MAX, "\r\n+PONG\r\n", &got);
	assert_true(got[0] == '$');
	for (size_t i = 0; i < WF_ARRAY_SIZE(fields); i++)
		if (!strstr(got, fields[i]))
			fail_msg("INFO lacks '%s': %s", fields[i], got);
	/* The bulk length is right: the PONG follows it exactly. */
	long len = strtol(got + 1, NULL, 10);
	char *body = strstr(got, "\r\n") + 2;
	assert_string_equal(body + len, "\r\n+PONG\r\n");
	free(got);
	/* One section only, as Redis. */
	exchange_until(fd, "INFO clients\r\nPING\r\n", 20, SIZE_MAX, "\r\n+PONG\r\n", &got);
	assert_non_null(strstr(got, "# Clients\r\nconnected_clients:1\r\n"));
	assert_null(strstr(got, "# Server"));
	assert_null(strstr(got, "# Stats"));
	free(got);
	close(fd);
}

/* A pipeline whose requests alternate between shards, with local commands
 * between them: every reply comes back, in request order. */
static void test_ingest_pipeline_across_shards_in_order(void **state)
{
	enum { N = 3000 };
	struct wf_buf out = { 0 }, want = { 0 };
	uint64_t before[NSHARDS];
	int fd = cli_connect();
	char *got;

	for (uint32_t s = 0; s < NSHARDS; s++)
		before[s] = atomic_load(&E.fake.served[s]);
	for (int i = 0; i < N; i++) {
		switch (i % 4) {
		case 0:
			wf_buf_printf(&out, "HISTORY s%d\r\n", i);
			wf_buf_printf(&want, "+HISTORY s%d\r\n", i);
			break;
		case 1:
			wf_buf_printf(&out, "*4\r\n$4\r\nRECS\r\n$3\r\nt%02d\r\n$1\r\n-\r\n$2\r\n10\r\n", i % 100);
			wf_buf_printf(&want, "+RECS t%02d - 10\r\n", i % 100);
			break;
		case 2:
			wf_buf_printf(&out, "ECHO e%d\r\n", i);
			wf_buf_printf(&want, "$%d\r\ne%d\r\n", snprintf(NULL, 0, "e%d", i), i);
			break;
		case 3:
			wf_buf_printf(&out, "EVENT s%d u%d view item%d\r\n", i, i, i);
			wf_buf_printf(&want, ":1\r\n");
			break;
		}
	}
	size_t n = exchange(fd, out.data, out.len, want.len, &got);
	assert_int_equal(n, want.len);
	assert_memory_equal(got, want.data, want.len);
	/* It did span the shards. */
	for (uint32_t s = 0; s < NSHARDS; s++)
		assert_true(atomic_load(&E.fake.served[s]) > before[s] + N / 8);
	free(got);
	wf_buf_fini(&out);
	wf_buf_fini(&want);
	close(fd);
}

/* n HISTORY requests tagged tag, and the fake ranker's replies to them. */
static void history_batch(const char *tag, int n, struct wf_buf *out, struct wf_buf *want)
{
	for (int i = 0; i < n; i++) {
		wf_buf_printf(out, "HISTORY %s%d\r\n", tag, i);
		wf_buf_printf(want, "+HISTORY %s%d\r\n", tag, i);
	}
}

/* Let the fake ranker read again, send the rest of out and expect every
 * reply in want, in order; frees both and closes fd. */
static void resume_expect_all(int fd, struct wf_buf *out, size_t sent, struct wf_buf *want)
{
	char *got;

	atomic_store_explicit(&E.fake.paused, 0, memory_order_release);
	size_t n = exchange(fd, out->data + sent, out->len - sent, want->len, &got);
	assert_int_equal(n, want->len);
	assert_memory_equal(got, want->data, want->len);
	free(got);
	wf_buf_fini(out);
	wf_buf_fini(want);
	close(fd);
}

/* While the ranker does not read, requests wait (the connection is not
 * read); once it reads again every reply arrives, in order. */
static void test_ingest_backpressure_holds_then_delivers_all(void **state)
{
	enum { N = 6000 };
	struct wf_buf out = { 0 }, want = { 0 };
	uint64_t stalls = stat_stalls();
	size_t sent = 0;
	int fd = cli_connect();

	history_batch("bp", N, &out, &want);
	atomic_store_explicit(&E.fake.paused, 1, memory_order_release);
	/* Send what the socket takes now; the 8 KiB shard rings fill. */
	while (sent < out.len) {
		ssize_t w = send(fd, out.data + sent, out.len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w <= 0)
			break;
		sent += (size_t)w;
	}
	for (int i = 0; i < IO_TIMEOUT_MS / 5 && stat_stalls() == stalls; i++)
		usleep(5000);
	assert_true(stat_stalls() > stalls);
	resume_expect_all(fd, &out, sent, &want);
}

/* A stalled connection is not read (its multishot recv is cancelled): a
 * client sending far more than the rings and socket buffers hold is
 * pushed back by the kernel instead of filling ingest's memory; once the
 * ranker reads again every reply arrives, in order. */
static void test_ingest_backpressure_stops_reading(void **state)
{
	/* What ingest may hold for a connection it stopped reading: its input
	 * limit, plus what the kernel had already received into the provided
	 * buffers before the cancel of the multishot recv landed (on a busy
	 * box, up to all of them), plus the socket buffers. The client sends
	 * well past that. */
	const size_t bound = (size_t)INGEST_BUF_COUNT * INGEST_BUF_SIZE + INGEST_MAX_INPUT + (4u << 20);
	enum { N = 1200000 };
	struct wf_buf out = { 0 }, want = { 0 };
	uint64_t stalls = stat_stalls();
	size_t sent = 0;
	int fd = cli_connect();

	history_batch("bq", N, &out, &want);
	assert_true(out.len > bound + (bound >> 2));
	atomic_store_explicit(&E.fake.paused, 1, memory_order_release);
	for (int i = 0; i < IO_TIMEOUT_MS / 5 && stat_stalls() == stalls; i++) {
		ssize_t w = send(fd, out.data + sent, out.len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0)
			sent += (size_t)w;
		else
			usleep(5000);
	}
	assert_true(stat_stalls() > stalls);
	/* Keep pushing for 200 ms: the socket must stay full. */
	for (int i = 0; i < 40; i++) {
		ssize_t w = send(fd, out.data + sent, out.len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w > 0)
			sent += (size_t)w;
		usleep(5000);
	}
	assert_true(sent <= bound);
	resume_expect_all(fd, &out, sent, &want);
}

/* An EVENT's ack is the journal's: it comes while the ranker reads
 * nothing; the HISTORY sent after it waits for the ranker, and the ranker
 * sees the EVENT first (the ring is FIFO). */
static void test_ingest_event_acked_once_journaled_not_by_ranker(void **state)
{
	int fd = cli_connect();
	char *got;

	atomic_store_explicit(&E.fake.paused, 1, memory_order_release);
	expect_reply(fd, "EVENT ev1 u1 view i1\r\n", ":1\r\n");
	expect_reply(fd, "EVENT ev1 u1 pdp i1\r\n", ":1\r\n");
	const char *h = "HISTORY ev1\r\n";
	assert_int_equal(send(fd, h, strlen(h), MSG_NOSIGNAL), (ssize_t)strlen(h));
	usleep(50000);
	char b[64];
	assert_int_equal(recv(fd, b, sizeof(b), MSG_DONTWAIT), -1); /* nothing yet */
	atomic_store_explicit(&E.fake.paused, 0, memory_order_release);
	exchange(fd, "", 0, strlen("+HISTORY ev1\r\n"), &got);
	assert_string_equal(got, "+HISTORY ev1\r\n");
	free(got);
	close(fd);
}

/* Publish a quiet entry (RECS <any session> user k) on shard sh with the
 * ranker's writer (wf_front_publish), as a ranker would after answering
 * it for a session without state; sold (or NULL): per item, the
 * snapshot's sold-out word. */
static void publish_quiet_sold(uint32_t sh, const char *user, const char *k, const char *const *ids,
			       const uint8_t *sold, uint32_t n, int complete)
{
	struct wf_shard_ctl *sc = wf_shm_shard(E.fake.shm, sh);
	static struct wf_front_stage st;
	struct wf_front_key key;

	wf_front_key_init(&key, 1);
	assert_int_equal(wf_front_key_add(&key, user, (uint32_t)strlen(user)), 0);
	assert_int_equal(wf_front_key_add(&key, k, (uint32_t)strlen(k)), 0);
	wf_front_key_seal(&key);
	/* relaxed: this test is the segment's only writer of these. */
	wf_front_stage_init(&st, &key,
			    &(struct wf_front_deps){
				    .sver = 0,
				    .gen = atomic_load_explicit(&sc->loaded_gen, memory_order_relaxed),
				    .until_ms = wf_wall_ms() + 600000,
				    .epoch = atomic_load_explicit(&E.fake.shm->ctl->ingest_epoch, memory_order_relaxed),
				    .starts = atomic_load_explicit(&sc->ranker_starts, memory_order_relaxed),
				    .wseq = atomic_load_explicit(&E.fake.shm->ctl->weights_lock.seq, memory_order_relaxed),
			    });
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(wf_front_stage_item(&st, wf_stock_key(ids[i], strlen(ids[i])), sold && sold[i], ids[i],
						     (uint32_t)strlen(ids[i])),
				 0);
	wf_front_publish(wf_shm_front(E.fake.shm, sh), &st, complete);
}

static void publish_quiet(uint32_t sh, const char *user, const char *k, const char *const *ids, uint32_t n)
{
	publish_quiet_sold(sh, user, k, ids, NULL, n, 1);
}

static void test_ingest_quiet_answers_only_for_sessions_without_state(void **state)
{
	static const char *const ids[] = { "q1", "q2", "q3" };
	const char *quiet = "*3\r\n$2\r\nq1\r\n$2\r\nq2\r\n$2\r\nq3\r\n";
	uint32_t sh = wf_shard_of("qu", 2, NSHARDS);
	struct wf_shard_ctl *sc = wf_shm_shard(E.fake.shm, sh);
	int fd = cli_connect();

	publish_quiet(sh, "qu", "3", ids, 3);
	/* Sessions never seen: the user's quiet answer, from ingest. */
	expect_reply(fd, "RECS qs1 qu 3\r\n", quiet);
	expect_reply(fd, "RECS qs2 qu 3\r\n", quiet);
	/* Another k or user is another key: the ranker answers. */
	expect_reply(fd, "RECS qs1 qu 4\r\n", "+RECS qs1 qu 4\r\n");
	/* An EVENT routed for the session: never quiet again, even while the
	 * ranker has not applied it (paused) and its filter still says 0. */
	atomic_store_explicit(&E.fake.paused, 1, memory_order_release);
	expect_reply(fd, "EVENT qs2 qu view i1\r\n", ":1\r\n");
	const char *r = "RECS qs2 qu 3\r\n";
	assert_int_equal(send(fd, r, strlen(r), MSG_NOSIGNAL), (ssize_t)strlen(r));
	usleep(50000);
	char b[64];
	assert_int_equal(recv(fd, b, sizeof(b), MSG_DONTWAIT), -1); /* waits for the ranker */
	atomic_store_explicit(&E.fake.paused, 0, memory_order_release);
	char *got;
	exchange(fd, "", 0, strlen("+RECS qs2 qu 3\r\n"), &got);
	assert_string_equal(got, "+RECS qs2 qu 3\r\n");
	free(got);
	/* The ranker holds state for a session ingest has no event for (its
	 * route entry was forgotten, or rebuilt elsewhere): the filter. */
	struct wf_front *f = wf_shm_front(E.fake.shm, sh);
	wf_front_live_add(f, wf_hash64("qs3", 3), +1);
	expect_reply(fd, "RECS qs3 qu 3\r\n", "+RECS qs3 qu 3\r\n");
	wf_front_live_add(f, wf_hash64("qs3", 3), -1);
	expect_reply(fd, "RECS qs4 qu 3\r\n", quiet);
	/* A restarted ranker: entries of the earlier start are refused. */
	atomic_fetch_add_explicit(&sc->ranker_starts, 1, memory_order_relaxed);
	expect_reply(fd, "RECS qs5 qu 3\r\n", "+RECS qs5 qu 3\r\n");
	publish_quiet(sh, "qu", "3", ids, 3);
	expect_reply(fd, "RECS qs5 qu 3\r\n", quiet);
	close(fd);
}

/* RECS cmd on fd answers exactly the ids (NULL-terminated), in order. */
static void expect_ids(int fd, const char *cmd, const char *const *ids)
{
	struct wf_buf want = { 0 };
	uint32_t n = 0;

	while (ids[n])
		n++;
	wf_resp_w_array(&want, n);
	for (uint32_t i = 0; i < n; i++)
		wf_resp_w_bulk(&want, ids[i], strlen(ids[i]));
	wf_buf_append(&want, "", 1);
	expect_reply(fd, cmd, want.data);
	free(want.data);
}

/* A front answer filters the entry's items by the rankers' stock rule at
 * read time: live state first, else the snapshot's word from the item's
 * record; past the k + 8 records read first when many are sold out; ids
 * with 1-, 2- and 3-digit lengths rendered; a short prefix that is not the
 * whole pool goes to the ranker. */
static void test_ingest_front_filters_by_live_stock_and_snapshot(void **state)
{
	static char longid[121];
	static const char *ids[18];
	static uint8_t sold[18];
	static char snapsold[12][8];
	uint32_t sh = wf_shard_of("fu", 2, NSHARDS), sh2 = wf_shard_of("fv", 2, NSHARDS);
	int fd = cli_connect();

	memset(longid, 'x', 120);
	for (uint32_t i = 0; i < 12; i++) { /* sold out in the snapshot, never stocked live */
		snprintf(snapsold[i], sizeof(snapsold[i]), "ss%u", i);
		ids[i] = snapsold[i];
		sold[i] = 1;
	}
	ids[12] = longid;
	ids[13] = "fb22"; /* sold out in the snapshot, in stock live */
	sold[13] = 1;
	ids[14] = "fc3"; /* stocked live, qty 0 */
	ids[15] = "e0123456789";
	ids[16] = "fd4";
	ids[17] = "fe5";
	expect_reply(fd, "STOCK fb22 M 2\r\nSTOCK fc3 M 0\r\n", ":1\r\n:1\r\n");
	publish_quiet_sold(sh, "fu", "4", ids, sold, 18, 1);
	expect_ids(fd, "RECS fs1 fu 4\r\n", (const char *const[]){ longid, "fb22", "e0123456789", "fd4", NULL });
	/* Stock changes apply at once: fd4 sold out, fe5 takes its place. */
	expect_reply(fd, "STOCK fd4 M 0\r\n", ":1\r\n");
	expect_ids(fd, "RECS fs2 fu 4\r\n", (const char *const[]){ longid, "fb22", "e0123456789", "fe5", NULL });
	/* Fewer than k pass: the whole pool gives what passes... */
	expect_reply(fd, "STOCK fe5 S 0\r\n", ":1\r\n");
	expect_ids(fd, "RECS fs3 fu 4\r\n", (const char *const[]){ longid, "fb22", "e0123456789", NULL });
	/* A change to a stocked item (no new slot) applies at once too. */
	expect_reply(fd, "STOCK fb22 M 0\r\n", ":1\r\n");
	expect_ids(fd, "RECS fs5 fu 4\r\n", (const char *const[]){ longid, "e0123456789", NULL });
	/* Stock in the table from before this ingest started (a restarted
	 * ingest finds its predecessor's; here the test writes it) too. */
	assert_int_equal(wf_stock_set(E.fake.shm->stock, "e0123456789", 11, "S", 1, 0), 0);
	expect_ids(fd, "RECS fs6 fu 4\r\n", (const char *const[]){ longid, NULL });
	/* ...a prefix that is not the whole pool goes to the ranker. */
	publish_quiet_sold(sh2, "fv", "4", ids, sold, 18, 0);
	expect_reply(fd, "RECS fs4 fv 4\r\n", "+RECS fs4 fv 4\r\n");
	close(fd);
}

/* A client leaves with replies owed; the next client, which reuses its
 * connection slot (free slots are a stack), gets only its own replies. */
static void test_ingest_closed_connection_replies_go_nowhere(void **state)
{
	struct wf_buf out = { 0 };
	int fd;

	wait_connections(0);
	atomic_store_explicit(&E.fake.paused, 1, memory_order_release);
	fd = cli_connect();
	for (int i = 0; i < 40; i++) /* fits the 8 KiB rings: the connection is not stalled */
		wf_buf_printf(&out, "HISTORY gone%d\r\n", i);
	assert_int_equal(send(fd, out.data, out.len, MSG_NOSIGNAL), (ssize_t)out.len);
	/* Wait (bounded) until ingest forwarded them: replies are owed. */
	for (int i = 0; i < IO_TIMEOUT_MS / 5; i++) {
		if (wf_ring_used(wf_shm_req_ring(E.fake.shm, 0)) + wf_ring_used(wf_shm_req_ring(E.fake.shm, 1)) > 0)
			break;
		usleep(5000);
	}
	assert_true(wf_ring_used(wf_shm_req_ring(E.fake.shm, 0)) + wf_ring_used(wf_shm_req_ring(E.fake.shm, 1)) > 0);
	close(fd);
	wait_connections(0);
	fd = cli_connect();
	expect_reply(fd, "PING\r\n", "+PONG\r\n"); /* accepted before the old replies come */
	atomic_store_explicit(&E.fake.paused, 0, memory_order_release);
	expect_reply(fd, "HISTORY mine1\r\nPING\r\nHISTORY mine2\r\n", "+HISTORY mine1\r\n+PONG\r\n+HISTORY mine2\r\n");
	close(fd);
	wf_buf_fini(&out);
}

/* A reply from another ingest epoch is ignored; a repeated one is too. */
static void test_ingest_drops_foreign_and_duplicate_replies(void **state)
{
	int fd = cli_connect();

	atomic_store_explicit(&E.fake.dup_next, 1, memory_order_relaxed);
	expect_reply(fd, "HISTORY d1\r\nHISTORY d2\r\nPING\r\n", "+HISTORY d1\r\n+HISTORY d2\r\n+PONG\r\n");
	assert_int_equal(atomic_load(&E.fake.dup_next), 0);
	/* Nothing else is pending on the connection. */
	expect_reply(fd, "PING\r\n", "+PONG\r\n");
	close(fd);
}

static void test_ingest_validation_keeps_connection(void **state)
{
	int fd = cli_connect();

	expect_reply(fd, "EVENT s1 u1 stare i1\r\n",
		     "-ERR unknown event type 'stare' (view click pdp hover dwell scroll search cart_add cart_remove "
		     "purchase)\r\n");
	expect_reply(fd, "EVENT s1 u1 view i1 ms\r\n", "-ERR EVENT wants: session user type item [field value]...\r\n");
	expect_reply(fd, "EVENT s1 u1 dwell i1 ms x\r\n", "-ERR EVENT field 'ms' wants a non-negative integer\r\n");
	expect_reply(fd, "RECS s1 u1 0\r\n", "-ERR RECS k must be an integer from 1 to 500, not '0'\r\n");
	expect_reply(fd, "RECS s1 u1 501\r\n", "-ERR RECS k must be an integer from 1 to 500, not '501'\r\n");
	expect_reply(fd, "RECS s1 u1 5 PAGE attic\r\n",
		     "-ERR unknown page type 'attic' (home pdp cart search category email)\r\n");
	expect_reply(fd, "RERANK s1 u1 a \"b c\"\r\n",
		     "-ERR invalid item 'b c': 1..128 printable bytes without spaces\r\n");
	expect_reply(fd, "HISTORY\r\n", "-ERR HISTORY wants: session\r\n");
	expect_reply(fd, "RECS s1 u1 5 ANCHOR \"\"\r\n",
		     "-ERR RECS ANCHOR wants an item id (1 to 128 printable bytes, no spaces), not ''\r\n");
	expect_reply(fd, "RECS s1 u1 5 SIZE XXXXXXXXXXXXXXXL\r\n",
		     "-ERR RECS SIZE wants a size name (1 to 11 printable bytes, no spaces), not "
		     "'XXXXXXXXXXXXXXXL'\r\n");
	expect_reply(fd, "RERANK s1 u1 a EXPLAIN\r\n",
		     "-ERR RERANK wants: session user item... (no options: RECS ... EXPLAIN explains a ranking)\r\n");
	expect_reply(fd, "RECS s1 u1 5 PAGE pdp ANCHOR i9 EXPLAIN SIZE M\r\n",
		     "+RECS s1 u1 5 PAGE pdp ANCHOR i9 EXPLAIN SIZE M\r\n");
	close(fd);
}

/* An error in the stream: earlier replies first, then the error, then EOF;
 * nothing after the bad frame runs. */
static void test_ingest_protocol_error_replies_and_closes(void **state)
{
	int fd = cli_connect();

	expect_reply_then_eof(fd, "PING\r\nHISTORY pe1\r\n*1\r\n$x\r\nHISTORY pe2\r\n",
			      "+PONG\r\n+HISTORY pe1\r\n-ERR Protocol error: invalid bulk length\r\n");
	close(fd);
	fd = cli_connect();
	expect_reply_then_eof(fd, "ECHO \"open\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n");
	close(fd);
}

static void test_ingest_quit_runs_nothing_after(void **state)
{
	struct wf_buf probe = { 0 }, want = { 0 };
	int fd = cli_connect();
	char *got;

	expect_reply_then_eof(fd, "HISTORY q1\r\nQUIT\r\nHISTORY afterquit\r\nEVENT afterquit - view i\r\n",
			      "+HISTORY q1\r\n+OK\r\n");
	close(fd);
	/* Requests to every shard after it: whatever was queued before is done. */
	for (int i = 0; i < 64; i++) {
		wf_buf_printf(&probe, "HISTORY probe%d\r\n", i);
		wf_buf_printf(&want, "+HISTORY probe%d\r\n", i);
	}
	fd = cli_connect();
	assert_int_equal(exchange(fd, probe.data, probe.len, want.len, &got), want.len);
	assert_memory_equal(got, want.data, want.len);
	assert_int_equal(atomic_load(&E.fake.saw_marker), 0);
	free(got);
	close(fd);
	wf_buf_fini(&probe);
	wf_buf_fini(&want);
}

static void test_ingest_oversized_requests_close(void **state)
{
	size_t big = 2u << 20;
	char *out = malloc(big + 64);
	int fd = cli_connect();
	size_t n;

	assert_non_null(out);
	/* One bulk over the 512 KiB cap: refused from its header. */
	expect_reply_then_eof(fd, "*2\r\n$4\r\nECHO\r\n$600000\r\n", "-ERR argument too long\r\n");
	close(fd);
	/* Legal bulks, but the request is over the 1.5 MiB input limit. */
	fd = cli_connect();
	n = (size_t)sprintf(out, "*5\r\n$4\r\nECHO\r\n");
	for (int i = 0; i < 4; i++) {
		n += (size_t)sprintf(out + n, "$500000\r\n");
		memset(out + n, 'x', 500000);
		n += 500000;
		memcpy(out + n, "\r\n", 2);
		n += 2;
	}
	char *got;
	exchange(fd, out, n, SIZE_MAX, &got);
	assert_string_equal(got, "-ERR Protocol error: request larger than the 1.5 MiB input limit\r\n");
	free(got);
	close(fd);
	/* An inline line over 64 KiB. */
	fd = cli_connect();
	memset(out, 'a', 70000);
	exchange(fd, out, 70000, SIZE_MAX, &got);
	assert_string_equal(got, "-ERR Protocol error: too big inline request\r\n");
	free(got);
	close(fd);
	free(out);
}

/* The old doorbell name is held by another process (setup()): ingest
 * started all the same, and a request that needs the ranker's wake-up of
 * a sleeping ingest (a reply after ingest went to sleep) is answered. */
static void test_ingest_doorbell_name_taken_does_not_matter(void **state)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int fd = cli_connect();

	assert_int_equal(getsockname(E.fake.squat_fd, (struct sockaddr *)&sa, &len), 0);
	assert_true(len > offsetof(struct sockaddr_un, sun_path) + 1 && sa.sun_path[0] == '\0');
	atomic_store_explicit(&E.fake.paused, 1, memory_order_release);
	assert_int_equal(send(fd, "HISTORY sleeper\r\n", 18, MSG_NOSIGNAL), 18);
	usleep(200000); /* ingest finds nothing to do and sleeps */
	atomic_store_explicit(&E.fake.paused, 0, memory_order_release);
	expect_reply(fd, "", "+HISTORY sleeper\r\n");
	close(fd);
}

static void test_ingest_max_clients_refused(void **state)
{
	int fds[MAX_CLIENTS], extra;

	wait_connections(0);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		fds[i] = cli_connect();
		expect_reply(fds[i], "PING\r\n", "+PONG\r\n");
	}
	extra = cli_connect();
	expect_reply_then_eof(extra, "PING\r\n", "-ERR max clients reached\r\n");
	close(extra);
	close(fds[0]);
	wait_connections(MAX_CLIENTS - 1);
	extra = cli_connect();
	expect_reply(extra, "PING\r\n", "+PONG\r\n");
	close(extra);
	for (int i = 1; i < MAX_CLIENTS; i++)
		close(fds[i]);
}

/* ---- segments: pub/sub, transitions, TRIGGERS, SEGPREVIEW ---- */

static void test_ingest_pubsub_answers_as_redis(void **state)
{
	int fd = cli_connect();

	(void)state;
	/* The bytes redis-server 7 gives (UNSUBSCRIBE's order aside: Redis
	 * walks a dict, weft the order of subscription). */
	expect_reply(fd, "UNSUBSCRIBE\r\n", "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
	expect_reply(fd, "SUBSCRIBE a b a\r\n",
		     "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
		     "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n");
	expect_reply(fd, "PSUBSCRIBE x*\r\n", "*3\r\n$10\r\npsubscribe\r\n$2\r\nx*\r\n:3\r\n");
	expect_reply(fd, "GET k\r\n", "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
				      "QUIT / RESET are allowed in this context\r\n");
	expect_reply(fd, "PING\r\n", "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
	expect_reply(fd, "PING hi\r\n", "*2\r\n$4\r\npong\r\n$2\r\nhi\r\n");
	expect_reply(fd, "UNSUBSCRIBE zz\r\n", "*3\r\n$11\r\nunsubscribe\r\n$2\r\nzz\r\n:3\r\n");
	expect_reply(fd, "UNSUBSCRIBE\r\n",
		     "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n");
	expect_reply(fd, "PUNSUBSCRIBE\r\n", "*3\r\n$12\r\npunsubscribe\r\n$2\r\nx*\r\n:0\r\n");
	expect_reply(fd, "PING\r\n", "+PONG\r\n");
	expect_reply(fd, "SUBSCRIBE\r\n", "-ERR wrong number of arguments for 'subscribe' command\r\n");
	expect_reply(fd, "SUBSCRIBE a\r\nRESET\r\nPING\r\n",
		     "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n+RESET\r\n+PONG\r\n");
	close(fd);
}

/* Read from fd until what came holds want, bounded. */
static char *read_until_has(int fd, const char *want)
{
	size_t cap = 1 << 16, got = 0;
	char *in = malloc(cap + 1);

	assert_non_null(in);
	in[0] = '\0';
	while (!strstr(in, want)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t m;

		if (poll(&p, 1, IO_TIMEOUT_MS) == 0)
			fail_msg("no '%s' within %d ms; got: %s", want, IO_TIMEOUT_MS, in);
		if (got == cap) {
			cap *= 2;
			in = realloc(in, cap + 1);
			assert_non_null(in);
		}
		m = recv(fd, in + got, cap - got, 0);
		if (m <= 0)
			fail_msg("closed before '%s'; got: %s", want, in);
		got += (size_t)m;
		in[got] = '\0';
	}
	return in;
}

static void test_ingest_transition_pushed_once_and_replayed(void **state)
{
	int sub = cli_connect(), fd = cli_connect();
	char *got, *id, cmd[128];
	uint64_t lsn;

	(void)state;
	expect_reply(sub, "SUBSCRIBE abandon\r\nPSUBSCRIBE ab* *z* a[^x]?n[e-c]o\\n\r\n",
		     "*3\r\n$9\r\nsubscribe\r\n$7\r\nabandon\r\n:1\r\n*3\r\n$10\r\npsubscribe\r\n$3\r\nab*\r\n:2\r\n"
		     "*3\r\n$10\r\npsubscribe\r\n$3\r\n*z*\r\n:3\r\n"
		     "*3\r\n$10\r\npsubscribe\r\n$15\r\na[^x]?n[e-c]o\\n\r\n:4\r\n");
	/* The same transition twice (a ranker redoing its tail): one push. */
	expect_reply(fd, "EVENT ts1 u1 cart_add note-abandon seq 7\r\nEVENT ts1 u1 cart_add note-abandon seq 7\r\n"
			 "EVENT ts1 u1 cart_add note-abandon seq 8\r\n",
		     ":1\r\n:1\r\n:1\r\n");
	got = read_until_has(sub, "abandon/1/8/ts1\",\"version\":1}");
	assert_non_null(strstr(got, "*3\r\n$7\r\nmessage\r\n$7\r\nabandon\r\n$"));
	assert_non_null(strstr(got, "*4\r\n$8\r\npmessage\r\n$3\r\nab*\r\n$7\r\nabandon\r\n$"));
	assert_non_null(strstr(got, "\"segment\":\"abandon\",\"event\":\"enter\",\"session\":\"ts1\",\"user\":\"u1\","
				    "\"ts\":1700000000000,\"reason\":\"test\",\"key\":\"abandon/1/7/ts1\""));
	/* Globs as Redis's stringmatch: a[^x]?n[e-c]o\n matches, *z* does not. */
	assert_non_null(strstr(got, "*4\r\n$8\r\npmessage\r\n$15\r\na[^x]?n[e-c]o\\n\r\n$7\r\nabandon\r\n$"));
	assert_null(strstr(got, "*z*\r\n$7"));
	/* seq 7: on the channel and on two patterns, never a fourth time */
	assert_null(strstr(strstr(strstr(strstr(got, "abandon/1/7/") + 1, "abandon/1/7/") + 1, "abandon/1/7/") + 1,
			   "abandon/1/7/"));
	id = strstr(got, "{\"id\":\"");
	assert_non_null(id);
	lsn = strtoull(id + 7, NULL, 10);
	assert_true(lsn > 0);
	free(got);
	/* TRIGGERS: both, in order; after the first's id only the second. */
	exchange_until(fd, "TRIGGERS 0 SEGMENT abandon\r\n", 28, SIZE_MAX, "abandon/1/8/ts1\",\"version\":1}\r\n",
		       &got);
	assert_non_null(strstr(got, "*2\r\n"));
	assert_non_null(strstr(got, "abandon/1/7/ts1"));
	assert_true(strstr(got, "abandon/1/7/ts1") < strstr(got, "abandon/1/8/ts1"));
	free(got);
	snprintf(cmd, sizeof(cmd), "TRIGGERS %llu COUNT 5 SEGMENT abandon\r\n", (unsigned long long)lsn);
	exchange_until(fd, cmd, strlen(cmd), SIZE_MAX, "}\r\n", &got);
	assert_null(strstr(got, "abandon/1/7/ts1"));
	assert_non_null(strstr(got, "*1\r\n"));
	free(got);
	expect_reply(fd, "TRIGGERS 0 SEGMENT nosuch\r\n", "*0\r\n");
	expect_reply(fd, "TRIGGERS x\r\n", "-ERR TRIGGERS wants: cursor [COUNT n] [SEGMENT name...] (cursor: the last "
					   "id seen, 0 for the start of retention)\r\n");
	expect_reply(fd, "TRIGGERS 0 COUNT 0\r\n", "-ERR TRIGGERS COUNT wants an integer from 1 to 1000\r\n");
	close(sub);
	close(fd);
}

/* A reply behind a note leaves only once the note is durable: by then
 * the transition is in TRIGGERS, asked on another connection. */
static void test_ingest_reply_after_note_waits_for_it(void **state)
{
	int fd = cli_connect(), other = cli_connect();
	char *got;

	(void)state;
	expect_reply(fd, "SEGMENTS note-h1 u2\r\n", "+SEGMENTS note-h1 u2\r\n");
	exchange_until(other, "TRIGGERS 0 COUNT 1000 SEGMENT held\r\n", 36, SIZE_MAX, "}\r\n", &got);
	assert_non_null(strstr(got, "\"key\":\"held/1/1/note-h1\""));
	free(got);
	close(fd);
	close(other);
}

static void test_ingest_segpreview_merges_every_shard(void **state)
{
	int fd = cli_connect();

	(void)state;
	/* In request order with the rest; sums of both shards, their samples. */
	expect_reply(fd, "PING\r\nSEGPREVIEW did(x,1h)\r\nPING\r\n",
		     "+PONG\r\n*4\r\n:3\r\n:2\r\n:1\r\n*2\r\n$7\r\nsess0 u\r\n$7\r\nsess1 u\r\n+PONG\r\n");
	expect_reply(fd, "SEGPREVIEW bad(\r\n", "-ERR rule: at 4: expected '('\r\n");
	expect_reply(fd, "SEGPREVIEW\r\n", "-ERR SEGPREVIEW wants: rule\r\n");
	close(fd);
}

/* INFO segments' field name (an integer). */
static uint64_t info_field(int fd, const char *name)
{
	char *got, *p;
	uint64_t v;

	exchange_until(fd, "INFO segments\r\n", 15, SIZE_MAX, "pubsub_limit_soft_seconds:1\r\n\r\n", &got);
	p = strstr(got, name);
	assert_non_null(p);
	v = strtoull(p + strlen(name) + 1, NULL, 10);
	free(got);
	return v;
}

/* A subscriber that never reads is disconnected at the limit (64 KiB
 * hard here); every other client goes on. */
static void test_ingest_slow_subscriber_disconnected(void **state)
{
	int sub = cli_connect(), fd = cli_connect();
	struct wf_buf b = { 0 };
	char *got;
	int round;

	(void)state;
	expect_reply(sub, "SUBSCRIBE flood\r\n", "*3\r\n$9\r\nsubscribe\r\n$5\r\nflood\r\n:1\r\n");
	for (round = 0; round < 200 && info_field(fd, "pubsub_limit_disconnects") == 0; round++) {
		b.len = 0;
		for (int i = 0; i < 200; i++)
			wf_buf_printf(&b, "EVENT fl%d u cart_add note-flood seq %d\r\n", round, i);
		exchange(fd, b.data, b.len, 200 * 4, &got);
		free(got);
	}
	assert_true(round < 200);
	expect_reply(fd, "PING\r\n", "+PONG\r\n");
	/* What it held is gone with it: it reads to the end, not forever. */
	exchange(sub, "", 0, SIZE_MAX, &got);
	free(got);
	wf_buf_fini(&b);
	close(sub);
	close(fd);
}

/* Send cmd (a TRIGGERS); its whole reply: an error line, "*0", or an
 * array of JSON payloads (each ends with "}\r\n"). */
static char *triggers_reply(int fd, const char *cmd)
{
	char *got, *more;
	size_t n = exchange_until(fd, cmd, strlen(cmd), SIZE_MAX, "\r\n", &got);
	long items = got[0] == '*' ? strtol(got + 1, NULL, 10) : 0;

	for (;;) {
		long ends = 0;
		for (char *p = got; (p = strstr(p, "}\r\n")); p++)
			ends++;
		if (ends >= items)
			return got;
		exchange_until(fd, "", 0, SIZE_MAX, "\r\n", &more);
		got = realloc(got, n + strlen(more) + 1);
		assert_non_null(got);
		memcpy(got + n, more, strlen(more) + 1);
		n += strlen(more);
		free(more);
	}
}

/* TRIGGERS pages through more transitions than the recent buffer holds
 * (--triggers-recent 1024 here): the oldest from the journal, the rest
 * from memory, each once, in id order. */
static void test_ingest_triggers_pages_journal_then_memory(void **state)
{
	enum { N = 3000, BATCH = 500 };
	int fd = cli_connect();
	struct wf_buf b = { 0 };
	char *got, cmd[128];
	uint64_t cursor = 0, last = 0, seen = 0;

	(void)state;
	for (int i = 0; i < N; i += BATCH) {
		b.len = 0;
		for (int k = i; k < i + BATCH; k++)
			wf_buf_printf(&b, "EVENT bulk u cart_add note-bulk seq %d\r\n", k);
		exchange(fd, b.data, b.len, BATCH * 4, &got);
		free(got);
	}
	/* The last one is published once durable: wait for it. */
	for (int i = 0; i < IO_TIMEOUT_MS / 10; i++) {
		snprintf(cmd, sizeof(cmd), "TRIGGERS 0 COUNT 1 SEGMENT nosuch\r\n");
		expect_reply(fd, cmd, "*0\r\n");
		exchange_until(fd, "INFO segments\r\n", 15, SIZE_MAX, "pubsub_limit_soft_seconds:1\r\n\r\n", &got);
		int done = strstr(got, "notes_held:0\r\n") != NULL;
		free(got);
		if (done)
			break;
		usleep(10000);
	}
	while (seen < N) {
		size_t n;
		char *p;

		snprintf(cmd, sizeof(cmd), "TRIGGERS %llu COUNT 1000 SEGMENT bulk\r\n", (unsigned long long)cursor);
		got = triggers_reply(fd, cmd);
		n = strlen(got);
		if (got[0] == '-') { /* 4 MiB read without one: go on where it says */
			assert_non_null(strstr(got, "go on with TRIGGERS "));
			cursor = strtoull(strstr(got, "go on with TRIGGERS ") + 20, NULL, 10);
			free(got);
			continue;
		}
		assert_true(n > 0 && got[0] == '*');
		if (strtol(got + 1, NULL, 10) == 0) {
			free(got);
			break;
		}
		for (p = got; (p = strstr(p, "{\"id\":\"")); p++) {
			uint64_t id = strtoull(p + 7, NULL, 10);
			char want[64];
			assert_true(id > last);
			last = id;
			snprintf(want, sizeof(want), "\"key\":\"bulk/1/%llu/bulk\"", (unsigned long long)seen);
			assert_non_null(strstr(p, want));
			seen++;
		}
		cursor = last;
		free(got);
	}
	assert_int_equal(seen, N);
	wf_buf_fini(&b);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_ingest_local_commands_answer, fresh),
		cmocka_unit_test_setup(test_ingest_stock_set_and_read, fresh),
		cmocka_unit_test_setup(test_ingest_info_is_redis_like, fresh),
		cmocka_unit_test_setup(test_ingest_pipeline_across_shards_in_order, fresh),
		cmocka_unit_test_setup(test_ingest_backpressure_holds_then_delivers_all, fresh),
		cmocka_unit_test_setup(test_ingest_backpressure_stops_reading, fresh),
		cmocka_unit_test_setup(test_ingest_event_acked_once_journaled_not_by_ranker, fresh),
		cmocka_unit_test_setup(test_ingest_closed_connection_replies_go_nowhere, fresh),
		cmocka_unit_test_setup(test_ingest_drops_foreign_and_duplicate_replies, fresh),
		cmocka_unit_test_setup(test_ingest_validation_keeps_connection, fresh),
		cmocka_unit_test_setup(test_ingest_protocol_error_replies_and_closes, fresh),
		cmocka_unit_test_setup(test_ingest_quit_runs_nothing_after, fresh),
		cmocka_unit_test_setup(test_ingest_oversized_requests_close, fresh),
		cmocka_unit_test_setup(test_ingest_max_clients_refused, fresh),
		cmocka_unit_test_setup(test_ingest_doorbell_name_taken_does_not_matter, fresh),
		cmocka_unit_test_setup(test_ingest_quiet_answers_only_for_sessions_without_state, fresh),
		cmocka_unit_test_setup(test_ingest_front_filters_by_live_stock_and_snapshot, fresh),
		cmocka_unit_test_setup(test_ingest_pubsub_answers_as_redis, fresh),
		cmocka_unit_test_setup(test_ingest_transition_pushed_once_and_replayed, fresh),
		cmocka_unit_test_setup(test_ingest_reply_after_note_waits_for_it, fresh),
		cmocka_unit_test_setup(test_ingest_segpreview_merges_every_shard, fresh),
		cmocka_unit_test_setup(test_ingest_slow_subscriber_disconnected, fresh),
		cmocka_unit_test_setup(test_ingest_triggers_pages_journal_then_memory, fresh),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
