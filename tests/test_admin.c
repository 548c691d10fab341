/*
 * test_admin.c - weft-admin and weftctl, driven from outside.
 *
 * Starts the real weft-admin binary on a temp dir (it creates the segment
 * weft.test.admin.<pid>.<n>), talks RESP to it with hiredis, and checks the
 * control block through shm: WEIGHTS SET/GET and validation, persistence of
 * weights.ini across restarts, SNAPSHOT LOAD refusing a garbage file,
 * SNAPSHOT LOAD / ROLLBACK with the test playing the rankers (loaded_gen,
 * failed_gen), other clients served while a load waits, STATS, SHUTDOWN.
 * Issue 15: the copy weft-admin serves (truncating the loaded file does not
 * reach it), a FIFO refused without blocking, stale temp files removed,
 * `weftctl status` counting only rankers that serve.
 * Also weftctl's JSON emitter (linked in) and the weftctl binary's exit
 * codes and messages.
 *
 * Needs WEFT_BUILD_ROOT (set by meson test) to find the binaries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "admin/weftctl_int.h"
#include "lib/snapshot.h"
#include "lib/util.h"
#include "shm/shm.h"

struct fx {
	char dir[256];
	char shm[64];
	char admin_bin[PATH_MAX];
	char weftctl_bin[PATH_MAX];
	pid_t pid;
	redisContext *c;
	struct wf_shm *seg;
};

static int fx_counter;

static void admin_start(struct fx *f, const char *extra)
{
	char sock[300];

	snprintf(sock, sizeof(sock), "%s/admin.sock", f->dir);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		if (extra)
			execl(f->admin_bin, "weft-admin", "--dir", f->dir, "--shm", f->shm, "--shards", "2",
			      "--load-timeout", extra, (char *)NULL);
		else
			execl(f->admin_bin, "weft-admin", "--dir", f->dir, "--shm", f->shm, "--shards", "2",
			      (char *)NULL);
		_exit(127);
	}
	/* Wait (bounded) until the socket answers. */
	for (int i = 0; i < 1000; i++) {
		redisContext *c = redisConnectUnix(sock);

		if (c && !c->err) {
			f->c = c;
			break;
		}
		redisFree(c);
		assert_int_equal(waitpid(f->pid, NULL, WNOHANG), 0);
		usleep(10000);
	}
	assert_non_null(f->c);
	assert_int_equal(wf_shm_attach(f->shm, &f->seg), 0);
}

static int admin_stop(struct fx *f)
{
	int st = -1;

	if (f->c)
		redisFree(f->c);
	f->c = NULL;
	wf_shm_detach(f->seg);
	f->seg = NULL;
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		waitpid(f->pid, &st, 0);
	}
	f->pid = 0;
	return st;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *root = getenv("WEFT_BUILD_ROOT");

	assert_non_null(f);
	assert_non_null(root);
	snprintf(f->admin_bin, sizeof(f->admin_bin), "%s/admin/weft-admin", root);
	snprintf(f->weftctl_bin, sizeof(f->weftctl_bin), "%s/admin/weftctl", root);
	snprintf(f->dir, sizeof(f->dir), "/tmp/weft-test-admin.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->shm, sizeof(f->shm), "weft.test.admin.%d.%d", (int)getpid(), fx_counter++);
	wf_shm_unlink(f->shm);
	admin_start(f, "2");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[400];

	admin_stop(f);
	wf_shm_unlink(f->shm);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static redisReply *cmd(struct fx *f, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;

	va_start(ap, fmt);
	r = redisvCommand(f->c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	return r;
}

static void expect_status(struct fx *f, const char *want_prefix, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;

	va_start(ap, fmt);
	r = redisvCommand(f->c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (r->type != REDIS_REPLY_STATUS)
		fail_msg("want +%s, got type %d: %s", want_prefix, r->type, r->str ? r->str : "");
	assert_true(strncmp(r->str, want_prefix, strlen(want_prefix)) == 0);
	freeReplyObject(r);
}

static void expect_error(struct fx *f, const char *needle, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;

	va_start(ap, fmt);
	r = redisvCommand(f->c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (r->type != REDIS_REPLY_ERROR)
		fail_msg("want an error containing '%s', got type %d", needle, r->type);
	if (!strstr(r->str, needle))
		fail_msg("error '%s' lacks '%s'", r->str, needle);
	freeReplyObject(r);
}

/* The weights reply entry for page/visitor: batch and session strings. */
static void weights_find(const redisReply *r, const char *page, const char *vis, char *b, char *s)
{
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, WF_PAGE_COUNT * WF_VISITOR_COUNT);
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *m = r->element[i];
		const redisReply *p = wf_cli_get(m, "page"), *v = wf_cli_get(m, "visitor");

		assert_non_null(p);
		assert_non_null(v);
		if (strcmp(p->str, page) || strcmp(v->str, vis))
			continue;
		strcpy(b, wf_cli_get(m, "batch")->str);
		strcpy(s, wf_cli_get(m, "session")->str);
		return;
	}
	fail_msg("no weights entry for %s/%s", page, vis);
}

static void test_admin_weights_set_then_get_and_shm(void **state)
{
	struct fx *f = *state;
	redisReply *r;
	char b[32], s[32];
	float fb, fs;

	expect_status(f, "PONG", "PING");
	expect_status(f, "OK", "WEIGHTS SET home returning 0.25 0.75");
	r = cmd(f, "weights get"); /* case-insensitive */
	weights_find(r, "home", "returning", b, s);
	assert_string_equal(b, "0.25");
	assert_string_equal(s, "0.75");
	weights_find(r, "home", "new", b, s);
	assert_string_equal(b, "0.1");
	assert_string_equal(s, "0.9");
	freeReplyObject(r);
	wf_ctl_weights_get(f->seg->ctl, WF_PAGE_HOME, WF_VISITOR_RETURNING, &fb, &fs);
	assert_true(fb == 0.25f && fs == 0.75f);
	wf_ctl_weights_get(f->seg->ctl, WF_PAGE_HOME, WF_VISITOR_NEW, &fb, &fs);
	assert_true(fb == 0.1f && fs == 0.9f);
}

static void test_admin_weights_invalid_returns_err(void **state)
{
	struct fx *f = *state;
	float fb, fs;

	expect_error(f, "unknown page type 'nosuchpage'", "WEIGHTS SET nosuchpage new 0.1 0.2");
	expect_error(f, "unknown visitor type 'robot'", "WEIGHTS SET cart robot 0.1 0.2");
	expect_error(f, "batch weight 'nan'", "WEIGHTS SET cart new nan 0.2");
	expect_error(f, "session weight '11'", "WEIGHTS SET cart new 1 11");
	expect_error(f, "batch weight '-1'", "WEIGHTS SET cart new -1 1");
	expect_error(f, "session weight 'x'", "WEIGHTS SET cart new 1 x");
	expect_error(f, "wrong number of arguments", "WEIGHTS SET cart new 1");
	expect_error(f, "unknown command 'FROB'", "FROB");
	wf_ctl_weights_get(f->seg->ctl, WF_PAGE_CART, WF_VISITOR_NEW, &fb, &fs);
	assert_true(fb == 0.1f && fs == 0.9f);
	/* The connection stays usable after errors. */
	expect_status(f, "PONG", "PING");
}

static void test_admin_weights_persist_across_restart(void **state)
{
	struct fx *f = *state;
	char path[400], *txt = NULL, b[32], s[32];
	redisReply *r;
	float fb, fs;

	expect_status(f, "OK", "WEIGHTS SET search new 0.3 0.7");
	snprintf(path, sizeof(path), "%s/weights.ini", f->dir);
	assert_int_equal(wf_read_file(path, &txt, NULL), 0);
	assert_non_null(strstr(txt, "[search]"));
	assert_non_null(strstr(txt, "new = 0.300000012 0.699999988"));
	free(txt);

	/* Restart keeping the segment: weights still there. */
	assert_int_equal(admin_stop(f), 0);
	admin_start(f, NULL);
	wf_ctl_weights_get(f->seg->ctl, WF_PAGE_SEARCH, WF_VISITOR_NEW, &fb, &fs);
	assert_true(fb == 0.3f && fs == 0.7f);

	/* Full restart: segment gone, weights come back from weights.ini. */
	assert_int_equal(admin_stop(f), 0);
	assert_int_equal(wf_shm_unlink(f->shm), 0);
	admin_start(f, NULL);
	r = cmd(f, "WEIGHTS GET");
	weights_find(r, "search", "new", b, s);
	assert_string_equal(b, "0.3");
	assert_string_equal(s, "0.7");
	freeReplyObject(r);
	wf_ctl_weights_get(f->seg->ctl, WF_PAGE_SEARCH, WF_VISITOR_NEW, &fb, &fs);
	assert_true(fb == 0.3f && fs == 0.7f);
	wf_ctl_weights_get(f->seg->ctl, WF_PAGE_EMAIL, WF_VISITOR_NEW, &fb, &fs);
	assert_true(fb == 1.0f && fs == 0.0f);
}

/* weft-admin killed in the middle of writing the weights or the
 * generation refs leaves their seqlock odd (readers wait): the next
 * weft-admin rewrites them whole, from weights.ini and snapshot.state. */
static void test_admin_repairs_a_write_it_died_in(void **state)
{
	struct fx *f = *state;
	struct wf_shm *seg;
	float fb, fs;

	expect_status(f, "OK", "WEIGHTS SET pdp returning 0.2 0.8");
	assert_int_equal(admin_stop(f), 0);
	/* What a SIGKILL between begin and end leaves: an odd seq, half data. */
	assert_int_equal(wf_shm_attach(f->shm, &seg), 0);
	wf_seq_write_begin(&seg->ctl->weights_lock);
	seg->ctl->weights[WF_PAGE_PDP][WF_VISITOR_RETURNING].batch_bits = 0x7fc00000u; /* NaN: torn */
	wf_seq_write_begin(&seg->ctl->snap_lock);
	assert_true(wf_seq_abandoned(&seg->ctl->weights_lock));
	wf_shm_detach(seg);
	admin_start(f, NULL);
	assert_false(wf_seq_abandoned(&f->seg->ctl->weights_lock));
	assert_false(wf_seq_abandoned(&f->seg->ctl->snap_lock));
	wf_ctl_weights_get(f->seg->ctl, WF_PAGE_PDP, WF_VISITOR_RETURNING, &fb, &fs);
	assert_true(fb == 0.2f && fs == 0.8f);
	wf_ctl_weights_get(f->seg->ctl, WF_PAGE_HOME, WF_VISITOR_NEW, &fb, &fs);
	assert_true(fb == 0.1f && fs == 0.9f);
	/* And later writes leave it even (a write begun on an odd seq does
	 * not flip the parity for good). */
	expect_status(f, "OK", "WEIGHTS SET pdp returning 0.5 0.5");
	assert_false(wf_seq_abandoned(&f->seg->ctl->weights_lock));
}

static void test_admin_snapshot_load_garbage_refused(void **state)
{
	struct fx *f = *state;
	struct wf_snap_ref cur, prev;
	char path[400];
	int fd;

	snprintf(path, sizeof(path), "%s/garbage.snap", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "this is not a snapshot, not at all\n", 35), 35);
	close(fd);
	expect_error(f, "not a weft snapshot", "SNAPSHOT LOAD %s", path);
	expect_error(f, "No such file", "SNAPSHOT LOAD %s/missing.snap", f->dir);
	expect_error(f, "no previous generation", "SNAPSHOT ROLLBACK");
	wf_ctl_snap_get(f->seg->ctl, &cur, &prev);
	assert_int_equal(cur.gen, 0);
	assert_int_equal(prev.gen, 0);
	assert_int_equal(atomic_load(&f->seg->ctl->snap_cur_gen), 0);
	snprintf(path, sizeof(path), "%s/snapshot.state", f->dir);
	assert_int_equal(access(path, F_OK), -1);
}

/* Write the smallest valid snapshot: no items, no users, empty hashes. */
static void write_empty_snapshot(const char *path, uint64_t gen)
{
	static const uint32_t ids[] = { WF_SNAP_SEC_STRS,  WF_SNAP_SEC_ITEMS, WF_SNAP_SEC_ITEM_HASH,
					WF_SNAP_SEC_USERS, WF_SNAP_SEC_USER_HASH, WF_SNAP_SEC_CANDS,
					WF_SNAP_SEC_NEIGH, WF_SNAP_SEC_COMPL, WF_SNAP_SEC_NAMES,
					WF_SNAP_SEC_POPULAR, WF_SNAP_SEC_TRENDING, WF_SNAP_SEC_SEQ,
					WF_SNAP_SEC_SEQ_OFF, WF_SNAP_SEC_MODEL };
	uint8_t buf[8192] = { 0 };
	struct wf_snap_hdr *h = (struct wf_snap_hdr *)buf;
	uint64_t off = WF_ALIGN_UP((uint64_t)sizeof(*h), 64);
	uint32_t zero = 0;

	h->magic = WF_SNAP_MAGIC;
	h->format_version = WF_SNAP_FORMAT_VERSION;
	h->header_size = sizeof(*h);
	h->generation = gen;
	h->build_ms = wf_wall_ms();
	h->nsections = WF_ARRAY_SIZE(ids);
	for (uint32_t i = 0; i < WF_ARRAY_SIZE(ids); i++) {
		/* a hash of one empty slot; SEQ_OFF's one offset (0 items + 1); a MODEL of zeros (none) */
		uint64_t size = (ids[i] == WF_SNAP_SEC_ITEM_HASH || ids[i] == WF_SNAP_SEC_USER_HASH ||
				 ids[i] == WF_SNAP_SEC_SEQ_OFF) ? 4 :
				ids[i] == WF_SNAP_SEC_MODEL ? sizeof(struct wf_snap_model) : 0;

		h->sec[i].id = ids[i];
		h->sec[i].off = off;
		h->sec[i].size = size;
		memcpy(buf + off, &zero, WF_MIN(size, sizeof(zero)));
		h->sec[i].xxh3 = XXH3_64bits(buf + off, size);
		off += WF_ALIGN_UP(WF_MAX(size, 1), 64);
	}
	h->file_size = off;
	h->header_xxh3 = 0;
	h->header_xxh3 = XXH3_64bits(h, sizeof(*h));
	assert_int_equal(wf_write_file_atomic(path, buf, off), 0);
}

/* Play the rankers: wait for generation != old to be published, return it. */
static uint64_t published_gen(struct fx *f, uint64_t old)
{
	for (int i = 0; i < 1000; i++) {
		uint64_t g = atomic_load_explicit(&f->seg->ctl->snap_cur_gen, memory_order_acquire);

		if (g != old)
			return g;
		usleep(5000);
	}
	fail_msg("generation never published");
	return 0;
}

static void rankers_report(struct fx *f, uint64_t gen, int failing_shard)
{
	for (uint32_t i = 0; i < 2; i++) {
		struct wf_shard_ctl *sh = wf_shm_shard(f->seg, i);

		if ((int)i == failing_shard)
			atomic_store_explicit(&sh->failed_gen, gen, memory_order_release);
		else
			atomic_store_explicit(&sh->loaded_gen, gen, memory_order_release);
	}
}

static redisReply *reply_of(redisContext *c)
{
	redisReply *r = NULL;

	assert_int_equal(redisGetReply(c, (void **)&r), REDIS_OK);
	assert_non_null(r);
	return r;
}

static void test_admin_snapshot_load_rollback_and_failure(void **state)
{
	struct fx *f = *state;
	char p1[400], p2[400], sock[300];
	struct wf_snap_ref cur, prev;
	redisContext *other;
	redisReply *r;
	uint64_t g1, g2, g3;

	snprintf(p1, sizeof(p1), "%s/a.snap", f->dir);
	snprintf(p2, sizeof(p2), "%s/b.snap", f->dir);
	write_empty_snapshot(p1, 7);
	write_empty_snapshot(p2, 0);
	snprintf(sock, sizeof(sock), "%s/admin.sock", f->dir);

	/* LOAD a: the reply waits for the rankers, other clients do not. */
	assert_int_equal(redisAppendCommand(f->c, "SNAPSHOT LOAD %s", p1), REDIS_OK);
	{
		int done = 0;

		while (!done)
			assert_int_equal(redisBufferWrite(f->c, &done), REDIS_OK);
	}
	g1 = published_gen(f, 0);
	assert_int_equal(g1, 7); /* header generation wins over next = 1 */
	other = redisConnectUnix(sock);
	assert_true(other && !other->err);
	r = redisCommand(other, "PING");
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	r = redisCommand(other, "SNAPSHOT STATUS");
	assert_int_equal(wf_cli_get_int(r, "loading_gen", -1), 7);
	freeReplyObject(r);
	r = redisCommand(other, "SNAPSHOT LOAD %s", p2);
	assert_int_equal(r->type, REDIS_REPLY_ERROR);
	assert_non_null(strstr(r->str, "still being loaded"));
	freeReplyObject(r);
	rankers_report(f, g1, -1);
	r = reply_of(f->c);
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	assert_non_null(strstr(r->str, "generation 7 loaded by 2 rankers"));
	freeReplyObject(r);

	/* LOAD b: header says 0, so it gets last + 1. */
	assert_int_equal(redisAppendCommand(f->c, "SNAPSHOT LOAD %s", p2), REDIS_OK);
	assert_int_equal(redisBufferWrite(f->c, &(int){ 0 }), REDIS_OK);
	g2 = published_gen(f, g1);
	assert_int_equal(g2, 8);
	rankers_report(f, g2, -1);
	r = reply_of(f->c);
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	wf_ctl_snap_get(f->seg->ctl, &cur, &prev);
	assert_int_equal(cur.gen, 8);
	assert_int_equal(prev.gen, 7);
	assert_non_null(strstr(cur.path, "/serving/8-b.snap")); /* weft-admin's own copy */
	assert_true(cur.path[0] == '/');

	/* ROLLBACK: a is current again. */
	assert_int_equal(redisAppendCommand(f->c, "SNAPSHOT ROLLBACK"), REDIS_OK);
	assert_int_equal(redisBufferWrite(f->c, &(int){ 0 }), REDIS_OK);
	assert_int_equal(published_gen(f, g2), 7);
	rankers_report(f, 7, -1);
	r = reply_of(f->c);
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	assert_non_null(strstr(r->str, "rolled back to generation 7"));
	freeReplyObject(r);
	wf_ctl_snap_get(f->seg->ctl, &cur, &prev);
	assert_int_equal(cur.gen, 7);
	assert_int_equal(prev.gen, 8);

	/* LOAD b again, ranker 1 fails: refs go back to 7 / 8. */
	assert_int_equal(redisAppendCommand(f->c, "SNAPSHOT LOAD %s", p2), REDIS_OK);
	assert_int_equal(redisBufferWrite(f->c, &(int){ 0 }), REDIS_OK);
	g3 = published_gen(f, 7);
	assert_int_equal(g3, 9);
	rankers_report(f, g3, 1);
	r = reply_of(f->c);
	assert_int_equal(r->type, REDIS_REPLY_ERROR);
	assert_non_null(strstr(r->str, "ranker 1 could not load generation 9"));
	freeReplyObject(r);
	wf_ctl_snap_get(f->seg->ctl, &cur, &prev);
	assert_int_equal(cur.gen, 7);
	assert_int_equal(prev.gen, 8);
	assert_int_equal(atomic_load(&f->seg->ctl->snap_cur_gen), 7);

	/* Nobody answers: timeout (admin started with --load-timeout 2). */
	r = cmd(f, "SNAPSHOT LOAD %s", p2);
	assert_int_equal(r->type, REDIS_REPLY_ERROR);
	assert_non_null(strstr(r->str, "timed out"));
	freeReplyObject(r);

	/* STATUS shows both generations with header facts. */
	r = cmd(f, "SNAPSHOT STATUS");
	assert_string_equal(wf_cli_get(wf_cli_get(r, "current"), "path")->str, p2);
	assert_int_equal(wf_cli_get_int(r, "current_gen", -1), 10);
	assert_int_equal(wf_cli_get_int(wf_cli_get(r, "current"), "users", -1), 0);
	assert_int_equal(wf_cli_get_int(wf_cli_get(r, "previous"), "gen", -1), 7);
	freeReplyObject(r);

	/* A new segment restores the refs from snapshot.state. */
	assert_int_equal(admin_stop(f), 0);
	assert_int_equal(wf_shm_unlink(f->shm), 0);
	admin_start(f, NULL);
	wf_ctl_snap_get(f->seg->ctl, &cur, &prev);
	assert_int_equal(cur.gen, 10);
	assert_int_equal(prev.gen, 7);
	redisFree(other);
}

/* Files directly in dir/serving (weft-admin's copies). */
static int count_copies(struct fx *f)
{
	char cmdline[400];
	FILE *p;
	int n = -1;

	snprintf(cmdline, sizeof(cmdline), "ls -A '%s/serving' | wc -l", f->dir);
	p = popen(cmdline, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

/* Issue 15 item 4: what serves is weft-admin's own read-only copy, so an
 * operator's truncate or overwrite of the file it loaded cannot reach the
 * rankers' mapping; copies that fall off (or fail) are removed. */
static void test_admin_snapshot_serves_its_own_copy(void **state)
{
	struct fx *f = *state;
	char p1[400], p2[400];
	struct wf_snap_ref cur, prev;
	struct stat st;
	redisReply *r;

	snprintf(p1, sizeof(p1), "%s/a.snap", f->dir);
	snprintf(p2, sizeof(p2), "%s/b.snap", f->dir);
	write_empty_snapshot(p1, 3);
	write_empty_snapshot(p2, 0);
	assert_int_equal(redisAppendCommand(f->c, "SNAPSHOT LOAD %s", p1), REDIS_OK);
	assert_int_equal(redisBufferWrite(f->c, &(int){ 0 }), REDIS_OK);
	rankers_report(f, published_gen(f, 0), -1);
	freeReplyObject(reply_of(f->c));
	wf_ctl_snap_get(f->seg->ctl, &cur, &prev);
	assert_string_not_equal(cur.path, p1);
	assert_int_equal(strncmp(cur.path, f->dir, strlen(f->dir)), 0);
	assert_int_equal(stat(cur.path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0444);
	assert_int_equal(truncate(p1, 10), 0);
	assert_int_equal(stat(cur.path, &st), 0);
	assert_true(st.st_size > 10);

	/* Two more loads: the first copy falls off and is removed. */
	for (int i = 0; i < 2; i++) {
		uint64_t g = atomic_load(&f->seg->ctl->snap_cur_gen);

		assert_int_equal(redisAppendCommand(f->c, "SNAPSHOT LOAD %s", p2), REDIS_OK);
		assert_int_equal(redisBufferWrite(f->c, &(int){ 0 }), REDIS_OK);
		rankers_report(f, published_gen(f, g), -1);
		r = reply_of(f->c);
		assert_int_equal(r->type, REDIS_REPLY_STATUS);
		freeReplyObject(r);
	}
	assert_int_equal(access(cur.path, F_OK), -1);
	assert_int_equal(count_copies(f), 2);
	/* A file longer than its header says is refused before any copy. */
	{
		int fd;

		write_empty_snapshot(p1, 3);
		fd = open(p1, O_WRONLY | O_APPEND);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "junk", 4), 4);
		close(fd);
	}
	expect_error(f, "the file has", "SNAPSHOT LOAD %s", p1);
	assert_int_equal(count_copies(f), 2);
	/* A load a ranker refuses leaves no copy behind. */
	assert_int_equal(redisAppendCommand(f->c, "SNAPSHOT LOAD %s", p2), REDIS_OK);
	assert_int_equal(redisBufferWrite(f->c, &(int){ 0 }), REDIS_OK);
	rankers_report(f, published_gen(f, atomic_load(&f->seg->ctl->snap_cur_gen)), 0);
	r = reply_of(f->c);
	assert_int_equal(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
	assert_int_equal(count_copies(f), 2);
}

/* Issue 15 item 3: a FIFO (or device, or directory) given to SNAPSHOT LOAD
 * is refused at once; weft-admin never blocks opening it, and still
 * answers and shuts down. */
static void test_admin_snapshot_load_fifo_refused(void **state)
{
	struct fx *f = *state;
	char fifo[400];
	redisReply *r;

	snprintf(fifo, sizeof(fifo), "%s/f.snap", f->dir);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	redisSetTimeout(f->c, (struct timeval){ .tv_sec = 10 });
	r = redisCommand(f->c, "SNAPSHOT LOAD %s", fifo);
	if (!r) {
		/* Today's weft-admin blocks in open(): free it, then fail. */
		close(open(fifo, O_WRONLY | O_NONBLOCK));
		fail_msg("SNAPSHOT LOAD of a FIFO got no answer (weft-admin blocked)");
	}
	assert_int_equal(r->type, REDIS_REPLY_ERROR);
	assert_non_null(strstr(r->str, "not a regular file (a FIFO)"));
	freeReplyObject(r);
	expect_error(f, "not a regular file (a device)", "SNAPSHOT LOAD /dev/zero");
	expect_error(f, "not a regular file (a directory)", "SNAPSHOT LOAD %s", f->dir);
	expect_status(f, "PONG", "PING");
	expect_status(f, "OK", "SHUTDOWN");
}

/* Issue 15 item 11: temp files a killed weft-admin left between write and
 * rename are removed by the next one. */
static void test_admin_stale_tmp_files_removed_at_start(void **state)
{
	struct fx *f = *state;
	char a[400], b[400];

	assert_int_equal(admin_stop(f), 0);
	snprintf(a, sizeof(a), "%s/weights.ini.tmp.99999", f->dir);
	snprintf(b, sizeof(b), "%s/snapshot.state.tmp.4242", f->dir);
	assert_int_equal(wf_write_file_atomic(a, "x", 1), 0);
	assert_int_equal(wf_write_file_atomic(b, "y", 1), 0);
	admin_start(f, NULL);
	assert_int_equal(access(a, F_OK), -1);
	assert_int_equal(access(b, F_OK), -1);
}

static void test_admin_stats_answers(void **state)
{
	struct fx *f = *state;
	redisReply *r = cmd(f, "STATS"), *sh;

	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_string_equal(wf_cli_get(r, "segment")->str, f->shm);
	assert_int_equal(wf_cli_get_int(r, "nshards", -1), 2);
	assert_int_equal(wf_cli_get_int(r, "admin_pid", -1), f->pid);
	assert_int_equal(wf_cli_get_int(wf_cli_get(r, "ingest"), "ready", -1), 0);
	sh = (redisReply *)wf_cli_get(r, "shards");
	assert_non_null(sh);
	assert_int_equal(sh->elements, 2);
	assert_int_equal(wf_cli_get_int(sh->element[1], "shard", -1), 1);
	assert_int_equal(wf_cli_get_int(sh->element[1], "req_ring_used", -1), 0);
	freeReplyObject(r);
}

static void test_admin_shutdown_sets_flag_and_exits(void **state)
{
	struct fx *f = *state;
	int st;

	expect_status(f, "OK", "SHUTDOWN");
	assert_int_equal(waitpid(f->pid, &st, 0), f->pid);
	f->pid = 0;
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(atomic_load(&f->seg->ctl->shutdown), 1);
}

/* Run weftctl with args; capture stdout+stderr; return exit code. */
static int weftctl(struct fx *f, char *out, size_t outlen, const char *args)
{
	char line[PATH_MAX + 1024];
	FILE *p;
	size_t n;
	int st;

	snprintf(line, sizeof(line), "'%s' %s 2>&1", f->weftctl_bin, args);
	p = popen(line, "r");
	assert_non_null(p);
	n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_admin_weftctl_commands(void **state)
{
	struct fx *f = *state;
	char out[16384], args[600];

	snprintf(args, sizeof(args), "--dir '%s' weights set pdp new 2 3", f->dir);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 0);
	snprintf(args, sizeof(args), "--dir '%s' --json weights get", f->dir);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 0);
	assert_true(strncmp(out, "[{\"page\":\"home\",\"visitor\":\"returning\",\"batch\":0.4,\"session\":0.6}", 64) == 0);
	assert_non_null(strstr(out, "{\"page\":\"pdp\",\"visitor\":\"new\",\"batch\":2,\"session\":3}"));
	snprintf(args, sizeof(args), "--dir '%s' weights get", f->dir);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 0);
	assert_non_null(strstr(out, "page      visitor    batch  session"));
	snprintf(args, sizeof(args), "--dir '%s' weights set bogus new 1 1", f->dir);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 1);
	assert_non_null(strstr(out, "unknown page type 'bogus'"));
	/* A negative number is a value for the admin to refuse, not an option. */
	snprintf(args, sizeof(args), "--dir '%s' weights set home new -2 1", f->dir);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 1);
	assert_non_null(strstr(out, "batch weight '-2' is not a number in [0, 10]"));
	snprintf(args, sizeof(args), "--dir '%s' --json stats", f->dir);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 0);
	assert_non_null(strstr(out, "\"nshards\":2"));
	snprintf(args, sizeof(args), "--dir '%s' status", f->dir);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 0);
	assert_non_null(strstr(out, "rankers  0/2 ready"));
	snprintf(args, sizeof(args), "--dir '%s/nowhere' status", f->dir);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 1);
	assert_non_null(strstr(out, "is weft running?"));
	assert_non_null(strstr(out, "weftctl up --dir"));
	assert_int_equal(weftctl(f, out, sizeof(out), "frobnicate"), 2);
	assert_non_null(strstr(out, "unknown command 'frobnicate'"));
	assert_non_null(strstr(out, "usage: weftctl"));
	assert_int_equal(weftctl(f, out, sizeof(out), "weights set home"), 2);
	assert_int_equal(weftctl(f, out, sizeof(out), "--shards 2 status"), 2);
}

/* Issue 15 item 4: status counts a ranker in "loaded by N/M" only if it
 * runs, reports the generation and did not report failing it (a restarted
 * ranker that cannot load it leaves its predecessor's loaded_gen). */
static void test_admin_status_counts_only_rankers_that_serve(void **state)
{
	struct fx *f = *state;
	char out[16384], args[600], p1[400];
	uint64_t g;

	snprintf(p1, sizeof(p1), "%s/a.snap", f->dir);
	write_empty_snapshot(p1, 5);
	assert_int_equal(redisAppendCommand(f->c, "SNAPSHOT LOAD %s", p1), REDIS_OK);
	assert_int_equal(redisBufferWrite(f->c, &(int){ 0 }), REDIS_OK);
	g = published_gen(f, 0);
	rankers_report(f, g, -1);
	freeReplyObject(reply_of(f->c));
	for (uint32_t i = 0; i < 2; i++) /* both "run": this process stands in */
		atomic_store(&wf_shm_shard(f->seg, i)->ranker_pid, (uint32_t)getpid());
	snprintf(args, sizeof(args), "--dir '%s' status", f->dir);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 0);
	assert_non_null(strstr(out, "loaded by 2/2 rankers"));
	assert_null(strstr(out, "DEGRADED"));
	/* Ranker 1 restarted and could not load g; loaded_gen still says g. */
	atomic_store(&wf_shm_shard(f->seg, 1)->failed_gen, g);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 0);
	assert_non_null(strstr(out, "DEGRADED ranker 1 could not load generation 5"));
	assert_non_null(strstr(out, "loaded by 1/2 rankers"));
	/* A ranker that is not running serves nothing either. */
	atomic_store(&wf_shm_shard(f->seg, 0)->ranker_pid, 0);
	assert_int_equal(weftctl(f, out, sizeof(out), args), 0);
	assert_non_null(strstr(out, "loaded by 0/2 rankers"));
}

static redisReply *mk(int type, const char *s, long long i)
{
	redisReply *r = calloc(1, sizeof(*r));

	r->type = type;
	r->integer = i;
	if (s) {
		r->str = strdup(s);
		r->len = strlen(s);
	}
	return r;
}

static void test_admin_json_emitter_escapes(void **state)
{
	redisReply *m = mk(REDIS_REPLY_ARRAY, NULL, 0);
	struct wf_buf b = { 0 };

	(void)state;
	m->elements = 8;
	m->element = calloc(8, sizeof(redisReply *));
	m->element[0] = mk(REDIS_REPLY_STRING, "path", 0);
	m->element[1] = mk(REDIS_REPLY_STRING, "a\"b\\c\n\x01", 0);
	m->element[2] = mk(REDIS_REPLY_STRING, "n", 0);
	m->element[3] = mk(REDIS_REPLY_INTEGER, NULL, -42);
	m->element[4] = mk(REDIS_REPLY_STRING, "w", 0);
	m->element[5] = mk(REDIS_REPLY_STRING, "1e-05", 0);
	m->element[6] = mk(REDIS_REPLY_STRING, "id", 0);
	m->element[7] = mk(REDIS_REPLY_STRING, "007", 0);
	assert_int_equal(wf_cli_json(&b, m), 0);
	assert_int_equal(wf_buf_append(&b, "", 1), 0);
	assert_string_equal(b.data, "{\"path\":\"a\\\"b\\\\c\\n\\u0001\",\"n\":-42,\"w\":1e-05,\"id\":\"007\"}");
	wf_buf_fini(&b);
	freeReplyObject(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admin_json_emitter_escapes),
		cmocka_unit_test_setup_teardown(test_admin_weights_set_then_get_and_shm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_weights_invalid_returns_err, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_weights_persist_across_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_repairs_a_write_it_died_in, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_snapshot_load_garbage_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_snapshot_load_rollback_and_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_snapshot_serves_its_own_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_snapshot_load_fifo_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_stale_tmp_files_removed_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_stats_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_shutdown_sets_flag_and_exits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_weftctl_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_status_counts_only_rankers_that_serve, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
