/*
 * admin_cmd.c - weft-admin's commands: SNAPSHOT LOAD/ROLLBACK/STATUS,
 * WEIGHTS GET/SET, STATS, SHUTDOWN, PING. Linked into weft-admin only.
 *
 * Structured replies follow one convention so weftctl can render any of
 * them as a table or as JSON without knowing the command:
 *   - a "map" is a RESP array of even length: key (bulk), value, key, value…
 *   - a "list" is a RESP array whose every element is itself an array (maps)
 *   - a value is a bulk string, an integer, nil, or a nested map / list.
 * Numbers that are not integers (weights) travel as bulk strings ("0.4").
 *
 * Writes to shm: ctl->weights (seqlock), ctl->snap_* (seqlock + R3 in
 * wf_ctl_snap_set), ctl->snap_next_gen, ctl->shutdown. Reads the shards'
 * loaded_gen/failed_gen with acquire (A4) and everything else relaxed
 * (display only).
 */
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "shm/reqlat.h"

/* ---- structured reply builder ---- */

/* A map or list under construction: body bytes and element count. */
struct rmap {
	struct wf_buf b;
	int64_t n;
	int err;
};

static void rm_fini(struct rmap *m)
{
	wf_buf_fini(&m->b);
}

static void rm_key(struct rmap *m, const char *k)
{
	if (wf_resp_w_bulk_str(&m->b, k) < 0)
		m->err = -ENOMEM;
	m->n += 2;
}

static void rm_str(struct rmap *m, const char *k, const char *v)
{
	rm_key(m, k);
	if (wf_resp_w_bulk_str(&m->b, v) < 0)
		m->err = -ENOMEM;
}

static void rm_int(struct rmap *m, const char *k, int64_t v)
{
	rm_key(m, k);
	if (wf_resp_w_int(&m->b, v) < 0)
		m->err = -ENOMEM;
}

static void rm_dbl(struct rmap *m, const char *k, double v)
{
	rm_key(m, k);
	if (wf_resp_w_bulk_fmt(&m->b, "%.6g", v) < 0)
		m->err = -ENOMEM;
}

static void rm_nil(struct rmap *m, const char *k)
{
	rm_key(m, k);
	if (wf_resp_w_null(&m->b) < 0)
		m->err = -ENOMEM;
}

/* Append child (a finished map or list) as one element; frees child. */
static void rm_append(struct rmap *m, struct rmap *child)
{
	if (child->err)
		m->err = child->err;
	if (wf_resp_w_array(&m->b, child->n) < 0 || wf_buf_append(&m->b, child->b.data, child->b.len) < 0)
		m->err = -ENOMEM;
	rm_fini(child);
}

/* key -> child map/list. */
static void rm_sub(struct rmap *m, const char *k, struct rmap *child)
{
	rm_key(m, k);
	m->n--; /* rm_append counts the value */
	rm_append(m, child);
	m->n++;
}

/* List element. */
static void rm_item(struct rmap *list, struct rmap *child)
{
	rm_append(list, child);
	list->n++;
}

static int rm_emit(struct wf_buf *out, struct rmap *m)
{
	int r = m->err;

	if (r == 0)
		r = wf_resp_w_array(out, m->n);
	if (r == 0)
		r = wf_buf_append(out, m->b.data, m->b.len);
	rm_fini(m);
	return r;
}

static int arg_copy(const struct wf_resp_arg *a, char *out, size_t len)
{
	if (a->len >= len)
		return -ENAMETOOLONG;
	memcpy(out, a->p, a->len);
	out[a->len] = '\0';
	return 0;
}

/* ---- SNAPSHOT ---- */

static uint64_t now_ms_since(uint64_t start_ns)
{
	return (wf_now_ns() - start_ns) / 1000000u;
}

static uint64_t next_gen_get(struct wf_admin_ctx *ctx)
{
	/* relaxed: weft-admin is the only writer and reader of snap_next_gen. */
	return atomic_load_explicit(&ctx->shm->ctl->snap_next_gen, memory_order_relaxed);
}

static void next_gen_set(struct wf_admin_ctx *ctx, uint64_t v)
{
	/* relaxed: as above. */
	atomic_store_explicit(&ctx->shm->ctl->snap_next_gen, v, memory_order_relaxed);
}

/* Copy path into weft-admin's own store, validate the copy and make it
 * current (the old current becomes previous). Fills the pending record's
 * old_* fields so the caller can roll back. Returns the new generation or
 * -errno with err filled. */
static int64_t snapshot_switch(struct wf_admin_ctx *ctx, const char *arg, char *err, size_t errlen)
{
	struct wf_admin_pending *p = &ctx->pending;
	struct wf_snap_ref cur, prev, ncur = { 0 };
	struct wf_snap *snap = NULL;
	char abs[PATH_MAX];
	uint64_t gen;
	int r;

	if (!realpath(arg, abs)) {
		r = -errno;
		snprintf(err, errlen, "snapshot %s: %s", arg, strerror(-r));
		return r;
	}
	if (strlen(abs) >= sizeof(ncur.path) || strpbrk(abs, "\r\n")) {
		snprintf(err, errlen, "snapshot path too long or contains a line break");
		return -EINVAL;
	}
	wf_ctl_snap_get(ctx->shm->ctl, &cur, &prev);
	r = wf_admin_snapfile_adopt(ctx, abs, WF_MAX(next_gen_get(ctx), WF_MAX(cur.gen, prev.gen) + 1), &snap, &gen,
				    err, errlen);
	if (r < 0)
		return r;
	ncur.gen = gen;
	ncur.loaded_ms = wf_wall_ms();
	snprintf(ncur.path, sizeof(ncur.path), "%s", snap->path);

	p->old_cur = cur;
	p->old_prev = prev;
	p->old_cur_snap = ctx->cur_snap;
	p->old_prev_snap = ctx->prev_snap;
	memcpy(p->old_src, ctx->src, sizeof(p->old_src));
	next_gen_set(ctx, gen + 1);
	wf_ctl_snap_set(ctx->shm->ctl, &ncur, cur.gen ? &cur : &(struct wf_snap_ref){ 0 });
	ctx->cur_snap = snap;
	ctx->prev_snap = cur.gen ? p->old_cur_snap : NULL;
	memcpy(ctx->src[1], cur.gen ? ctx->src[0] : "", cur.gen ? sizeof(ctx->src[1]) : 1);
	snprintf(ctx->src[0], sizeof(ctx->src[0]), "%s", abs);
	r = wf_admin_snapstate_save(ctx);
	if (r < 0)
		wf_warn("cannot save %s/snapshot.state: %s (generation %llu is live but will not survive a restart)",
			ctx->state_dir, strerror(-r), (unsigned long long)gen);
	return (int64_t)gen;
}

/* Is path the file of the current or previous generation now? */
static int path_in_use(struct wf_admin_ctx *ctx, const char *path)
{
	struct wf_snap_ref cur, prev;

	wf_ctl_snap_get(ctx->shm->ctl, &cur, &prev);
	return (cur.gen && strcmp(cur.path, path) == 0) || (prev.gen && strcmp(prev.path, path) == 0);
}

/* Put back the refs saved in the pending record (failed load). */
static void snapshot_restore(struct wf_admin_ctx *ctx)
{
	struct wf_admin_pending *p = &ctx->pending;
	struct wf_snap_ref failed;
	int r;

	wf_ctl_snap_get(ctx->shm->ctl, &failed, NULL);
	wf_ctl_snap_set(ctx->shm->ctl, &p->old_cur, &p->old_prev);
	if (failed.gen && !path_in_use(ctx, failed.path))
		wf_admin_snapfile_drop(ctx, failed.path);
	if (ctx->cur_snap != p->old_cur_snap && ctx->cur_snap != p->old_prev_snap)
		wf_snap_close(ctx->cur_snap);
	if (ctx->prev_snap != p->old_cur_snap && ctx->prev_snap != p->old_prev_snap)
		wf_snap_close(ctx->prev_snap);
	ctx->cur_snap = p->old_cur_snap;
	ctx->prev_snap = p->old_prev_snap;
	memcpy(ctx->src, p->old_src, sizeof(ctx->src));
	r = wf_admin_snapstate_save(ctx);
	if (r < 0)
		wf_warn("cannot save %s/snapshot.state: %s", ctx->state_dir, strerror(-r));
}

/* The switch stands: drop the snapshot that fell off the end (and our copy
 * of its file: a ranker that still maps it keeps the inode). */
static void snapshot_commit(struct wf_admin_ctx *ctx)
{
	struct wf_admin_pending *p = &ctx->pending;

	if (p->old_prev_snap && p->old_prev_snap != ctx->cur_snap && p->old_prev_snap != ctx->prev_snap)
		wf_snap_close(p->old_prev_snap);
	if (p->old_cur_snap && p->old_cur_snap != ctx->cur_snap && p->old_cur_snap != ctx->prev_snap)
		wf_snap_close(p->old_cur_snap);
	if (p->old_prev.gen && !path_in_use(ctx, p->old_prev.path))
		wf_admin_snapfile_drop(ctx, p->old_prev.path);
	if (p->old_cur.gen && !path_in_use(ctx, p->old_cur.path))
		wf_admin_snapfile_drop(ctx, p->old_cur.path);
}

int wf_admin_snapshot_install(struct wf_admin_ctx *ctx, const char *path, uint64_t *ret_gen, char *err,
			      size_t errlen)
{
	int64_t g = snapshot_switch(ctx, path, err, errlen);

	if (g < 0)
		return (int)g;
	snapshot_commit(ctx);
	memset(&ctx->pending, 0, sizeof(ctx->pending));
	*ret_gen = (uint64_t)g;
	return 0;
}

static void pending_start(struct wf_admin_ctx *ctx, struct wf_admin_client *c, uint64_t gen, int rollback)
{
	struct wf_admin_pending *p = &ctx->pending;

	p->active = 1;
	p->rollback = rollback;
	p->client_id = c->id;
	p->gen = gen;
	p->start_ns = wf_now_ns();
	p->deadline_ns = p->start_ns + ctx->load_timeout_ms * 1000000u;
	c->waiting = 1;
	wf_info("generation %llu (%s) published; waiting for %u ranker(s)", (unsigned long long)gen,
		ctx->cur_snap ? ctx->cur_snap->path : "?", ctx->nshards);
	wf_admin_pending_check(ctx);
}

static int cmd_snapshot_load(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_arg *a)
{
	char path[WF_PATH_MAX], err[512];
	int64_t g;

	if (arg_copy(a, path, sizeof(path)) < 0 || !path[0])
		return wf_resp_w_error(&c->out, "ERR snapshot path empty or too long");
	if (ctx->pending.active)
		return wf_resp_w_error(&c->out,
				       "ERR generation %llu is still being loaded; try again when it finishes",
				       (unsigned long long)ctx->pending.gen);
	err[0] = '\0';
	g = snapshot_switch(ctx, path, err, sizeof(err));
	if (g < 0) {
		wf_warn("SNAPSHOT LOAD refused: %s", err);
		return wf_resp_w_error(&c->out, "ERR %s", err[0] ? err : strerror((int)-g));
	}
	pending_start(ctx, c, (uint64_t)g, 0);
	return 0;
}

static int cmd_snapshot_rollback(struct wf_admin_ctx *ctx, struct wf_admin_client *c)
{
	struct wf_admin_pending *p = &ctx->pending;
	struct wf_snap_ref cur, prev;
	struct wf_snap *psnap;
	char err[512] = "";
	int r;

	if (p->active)
		return wf_resp_w_error(&c->out,
				       "ERR generation %llu is still being loaded; try again when it finishes",
				       (unsigned long long)p->gen);
	wf_ctl_snap_get(ctx->shm->ctl, &cur, &prev);
	if (!prev.gen)
		return wf_resp_w_error(&c->out, "ERR no previous generation to roll back to");
	psnap = ctx->prev_snap;
	if (!psnap) {
		r = wf_snap_open(prev.path, &psnap, err, sizeof(err));
		if (r < 0)
			return wf_resp_w_error(&c->out, "ERR cannot roll back to generation %llu: %s",
					       (unsigned long long)prev.gen, err);
	}
	p->old_cur = cur;
	p->old_prev = prev;
	p->old_cur_snap = ctx->cur_snap;
	p->old_prev_snap = psnap;
	memcpy(p->old_src, ctx->src, sizeof(p->old_src));
	prev.loaded_ms = wf_wall_ms();
	wf_ctl_snap_set(ctx->shm->ctl, &prev, &cur);
	ctx->prev_snap = ctx->cur_snap;
	ctx->cur_snap = psnap;
	memcpy(ctx->src[0], p->old_src[1], sizeof(ctx->src[0]));
	memcpy(ctx->src[1], p->old_src[0], sizeof(ctx->src[1]));
	r = wf_admin_snapstate_save(ctx);
	if (r < 0)
		wf_warn("cannot save %s/snapshot.state: %s", ctx->state_dir, strerror(-r));
	pending_start(ctx, c, prev.gen, 1);
	return 0;
}

/* Reply to the pending operation's client (if still there) and clear it. */
static void pending_finish(struct wf_admin_ctx *ctx, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void pending_finish(struct wf_admin_ctx *ctx, int ok, const char *fmt, ...)
{
	struct wf_admin_client *c = wf_admin_client_find(ctx, ctx->pending.client_id);
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ok)
		wf_info("%s", msg);
	else
		wf_warn("%s", msg);
	if (c) {
		int r = ok ? wf_resp_w_simple(&c->out, msg) : wf_resp_w_error(&c->out, "ERR %s", msg);

		if (r < 0)
			c->close_after = 1;
		c->waiting = 0;
	}
	memset(&ctx->pending, 0, sizeof(ctx->pending));
}

void wf_admin_pending_check(struct wf_admin_ctx *ctx)
{
	struct wf_admin_pending *p = &ctx->pending;
	uint32_t loaded = 0;
	char waiting[256] = "";
	size_t wl = 0;

	if (!p->active)
		return;
	for (uint32_t i = 0; i < ctx->nshards; i++) {
		struct wf_shard_ctl *sh = wf_shm_shard(ctx->shm, i);
		/* A4: pairs with R4 in the ranker; a ranker that reports the
		 * generation has finished swapping to it. */
		uint64_t lg = atomic_load_explicit(&sh->loaded_gen, memory_order_acquire);
		uint64_t fg = atomic_load_explicit(&sh->failed_gen, memory_order_acquire);

		if (fg == p->gen) {
			char path[WF_PATH_MAX];

			snprintf(path, sizeof(path), "%s", ctx->cur_snap ? ctx->cur_snap->path : "?");
			snapshot_restore(ctx);
			pending_finish(ctx, 0,
				       "ranker %u could not load generation %llu (%s): see its log; "
				       "generation %llu stays current",
				       i, (unsigned long long)p->gen, path, (unsigned long long)p->old_cur.gen);
			return;
		}
		if (lg == p->gen)
			loaded++;
		else if (wl < sizeof(waiting) - 16)
			wl += (size_t)snprintf(waiting + wl, sizeof(waiting) - wl, "%s%u", wl ? "," : "", i);
	}
	if (loaded == ctx->nshards) {
		snapshot_commit(ctx);
		if (p->rollback)
			pending_finish(ctx, 1, "OK rolled back to generation %llu, loaded by %u rankers in %llu ms",
				       (unsigned long long)p->gen, loaded,
				       (unsigned long long)now_ms_since(p->start_ns));
		else
			pending_finish(ctx, 1, "OK generation %llu loaded by %u rankers in %llu ms",
				       (unsigned long long)p->gen, loaded,
				       (unsigned long long)now_ms_since(p->start_ns));
		return;
	}
	if (wf_now_ns() >= p->deadline_ns) {
		snapshot_commit(ctx);
		pending_finish(ctx, 0,
			       "timed out after %llu s: ranker(s) %s have not loaded generation %llu yet "
			       "(is weft-ranker running? see `weftctl stats`); it stays current and they load it "
			       "when they start",
			       (unsigned long long)(ctx->load_timeout_ms / 1000), waiting,
			       (unsigned long long)p->gen);
	}
}

static void status_gen(struct rmap *m, const char *key, const struct wf_snap_ref *ref, struct wf_snap *snap,
		       const char *src)
{
	struct rmap g = { 0 };

	if (!ref->gen) {
		rm_nil(m, key);
		return;
	}
	rm_int(&g, "gen", (int64_t)ref->gen);
	/* path: the file the operator loaded; copy: what the rankers map. */
	rm_str(&g, "path", src[0] ? src : ref->path);
	rm_str(&g, "copy", ref->path);
	rm_int(&g, "loaded_ms", (int64_t)ref->loaded_ms);
	rm_int(&g, "age_ms", (int64_t)(wf_wall_ms() - ref->loaded_ms));
	if (snap) {
		rm_int(&g, "users", snap->hdr->nusers);
		rm_int(&g, "items", snap->hdr->nitems);
		rm_int(&g, "size", (int64_t)snap->hdr->file_size);
		rm_int(&g, "file_gen", (int64_t)snap->hdr->generation);
		rm_int(&g, "build_ms", (int64_t)snap->hdr->build_ms);
	} else {
		rm_str(&g, "error", "snapshot file not open in weft-admin (missing or invalid?)");
	}
	rm_sub(m, key, &g);
}

static int cmd_snapshot_status(struct wf_admin_ctx *ctx, struct wf_admin_client *c)
{
	struct wf_ctl *ctl = ctx->shm->ctl;
	struct rmap m = { 0 }, shards = { 0 };
	struct wf_snap_ref cur, prev;

	wf_ctl_snap_get(ctl, &cur, &prev);
	/* relaxed: display only (the refs above were read under the seqlock). */
	rm_int(&m, "current_gen", (int64_t)atomic_load_explicit(&ctl->snap_cur_gen, memory_order_relaxed));
	rm_int(&m, "next_gen", (int64_t)next_gen_get(ctx));
	if (ctx->pending.active)
		rm_int(&m, "loading_gen", (int64_t)ctx->pending.gen);
	else
		rm_nil(&m, "loading_gen");
	status_gen(&m, "current", &cur, ctx->cur_snap, ctx->src[0]);
	status_gen(&m, "previous", &prev, ctx->prev_snap, ctx->src[1]);
	for (uint32_t i = 0; i < ctx->nshards; i++) {
		struct wf_shard_ctl *sh = wf_shm_shard(ctx->shm, i);
		struct rmap s = { 0 };

		/* relaxed: display only. */
		rm_int(&s, "shard", i);
		rm_int(&s, "loaded_gen", (int64_t)atomic_load_explicit(&sh->loaded_gen, memory_order_relaxed));
		rm_int(&s, "failed_gen", (int64_t)atomic_load_explicit(&sh->failed_gen, memory_order_relaxed));
		rm_int(&s, "snapshot_bytes",
		       (int64_t)atomic_load_explicit(&sh->stats.snapshot_bytes, memory_order_relaxed));
		rm_int(&s, "snapshot_users",
		       (int64_t)atomic_load_explicit(&sh->stats.snapshot_users, memory_order_relaxed));
		rm_item(&shards, &s);
	}
	rm_sub(&m, "shards", &shards);
	return rm_emit(&c->out, &m);
}

/* ---- WEIGHTS ---- */

static int cmd_weights_get(struct wf_admin_ctx *ctx, struct wf_admin_client *c)
{
	struct rmap list = { 0 };

	for (int p = 0; p < WF_PAGE_COUNT; p++)
		for (int v = 0; v < WF_VISITOR_COUNT; v++) {
			struct rmap m = { 0 };
			float b, s;

			wf_ctl_weights_get(ctx->shm->ctl, p, v, &b, &s);
			rm_str(&m, "page", wf_page_name(p));
			rm_str(&m, "visitor", wf_visitor_name(v));
			rm_dbl(&m, "batch", (double)b);
			rm_dbl(&m, "session", (double)s);
			rm_item(&list, &m);
		}
	return rm_emit(&c->out, &list);
}

static int parse_weight(const struct wf_resp_arg *a, double *ret)
{
	double v;

	if (wf_parse_double(a->p, a->len, &v) < 0 || v < 0 || v > 10)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int cmd_weights_set(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_arg *a)
{
	int page = wf_page_from_name(a[0].p, a[0].len);
	int vis = wf_visitor_from_name(a[1].p, a[1].len);
	char esc[64];
	double b, s;
	int r;

	if (page < 0) {
		wf_escape(esc, sizeof(esc), a[0].p, a[0].len);
		return wf_resp_w_error(&c->out,
				       "ERR unknown page type '%s' (expected home, pdp, cart, search, category or email)",
				       esc);
	}
	if (vis < 0) {
		wf_escape(esc, sizeof(esc), a[1].p, a[1].len);
		return wf_resp_w_error(&c->out, "ERR unknown visitor type '%s' (expected returning or new)", esc);
	}
	for (int i = 2; i < 4; i++)
		if (parse_weight(&a[i], i == 2 ? &b : &s) < 0) {
			wf_escape(esc, sizeof(esc), a[i].p, a[i].len);
			return wf_resp_w_error(&c->out, "ERR %s weight '%s' is not a number in [0, 10]",
					       i == 2 ? "batch" : "session", esc);
		}
	wf_ctl_weights_set(ctx->shm->ctl, page, vis, (float)b, (float)s);
	wf_info("weights %s/%s set to batch %g session %g", wf_page_name(page), wf_visitor_name(vis), b, s);
	r = wf_admin_weights_save(ctx);
	if (r < 0) {
		wf_err("cannot save %s/weights.ini: %s", ctx->state_dir, strerror(-r));
		return wf_resp_w_error(&c->out, "ERR weights applied but not saved to %s/weights.ini: %s", ctx->state_dir,
				       strerror(-r));
	}
	return wf_resp_w_simple(&c->out, "OK");
}

/* ---- STATS ---- */

static int pid_alive(uint32_t pid)
{
	return pid && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

#define LOAD(x) (int64_t)atomic_load_explicit(&(x), memory_order_relaxed)

/* STATS' ingest "latency": per request latency series with samples (shm/
 * layout.h, struct wf_reqlat), its count, p50 and p99 in ns (interpolated). */
static void stats_latency(struct wf_admin_ctx *ctx, struct rmap *ing)
{
	struct rmap lat = { 0 };
	uint64_t h[WF_LAT_BUCKETS];
	char k[64];

	for (uint32_t s = 0; s < WF_LAT_SERIES; s++) {
		uint64_t n = wf_lat_snapshot(ctx->shm->reqlat->hist[s], h);

		if (!n)
			continue;
		snprintf(k, sizeof(k), "%s_count", wf_reqlat_name(s)->info);
		rm_int(&lat, k, (int64_t)n);
		snprintf(k, sizeof(k), "%s_p50_ns", wf_reqlat_name(s)->info);
		rm_int(&lat, k, (int64_t)wf_lat_quantile_est(h, 0.50));
		snprintf(k, sizeof(k), "%s_p99_ns", wf_reqlat_name(s)->info);
		rm_int(&lat, k, (int64_t)wf_lat_quantile_est(h, 0.99));
	}
	rm_sub(ing, "latency", &lat);
}

static int cmd_stats(struct wf_admin_ctx *ctx, struct wf_admin_client *c)
{
	/* Every load here is relaxed: counters and state for display only. */
	struct wf_ctl *ctl = ctx->shm->ctl;
	struct rmap m = { 0 }, ing = { 0 }, shards = { 0 };
	uint64_t now = wf_wall_ms();
	uint32_t ipid = (uint32_t)LOAD(ctl->ingest_pid);

	rm_str(&m, "segment", ctx->shm_name);
	rm_int(&m, "nshards", ctx->nshards);
	rm_int(&m, "admin_pid", LOAD(ctl->admin_pid));
	rm_int(&m, "shutdown", LOAD(ctl->shutdown));
	rm_int(&m, "snapshot_gen", LOAD(ctl->snap_cur_gen));
	rm_int(&m, "uptime_ms", (int64_t)(now - ctx->shm->hdr->created_ms));

	rm_int(&ing, "pid", ipid);
	rm_int(&ing, "alive", pid_alive(ipid));
	rm_int(&ing, "ready", LOAD(ctl->ingest_ready));
	rm_int(&ing, "epoch", LOAD(ctl->ingest_epoch));
	rm_int(&ing, "connections", LOAD(ctl->ingest_stats.connections));
	rm_int(&ing, "connections_total", LOAD(ctl->ingest_stats.connections_total));
	rm_int(&ing, "commands", LOAD(ctl->ingest_stats.commands));
	rm_int(&ing, "errors", LOAD(ctl->ingest_stats.errors));
	rm_int(&ing, "events_acked", LOAD(ctl->ingest_stats.events_acked));
	rm_int(&ing, "bytes_in", LOAD(ctl->ingest_stats.bytes_in));
	rm_int(&ing, "bytes_out", LOAD(ctl->ingest_stats.bytes_out));
	rm_int(&ing, "backpressure_stalls", LOAD(ctl->ingest_stats.backpressure_stalls));
	rm_int(&ing, "next_lsn", LOAD(ctl->next_lsn));
	rm_int(&ing, "journal_failed", LOAD(ctl->ingest_stats.journal_failed));
	rm_int(&ing, "journal_errors", LOAD(ctl->ingest_stats.journal_errors));
	rm_int(&ing, "redirects", LOAD(ctl->ingest_stats.redirects));
	stats_latency(ctx, &ing);
	rm_sub(&m, "ingest", &ing);

	for (uint32_t i = 0; i < ctx->nshards; i++) {
		struct wf_shard_ctl *sh = wf_shm_shard(ctx->shm, i);
		struct rmap s = { 0 };
		uint32_t pid = (uint32_t)LOAD(sh->ranker_pid);
		uint64_t hb = (uint64_t)LOAD(sh->heartbeat_ms);

		rm_int(&s, "shard", i);
		rm_int(&s, "pid", pid);
		rm_int(&s, "alive", pid_alive(pid));
		rm_int(&s, "ready", LOAD(sh->ready));
		rm_int(&s, "starts", LOAD(sh->ranker_starts));
		rm_int(&s, "cpu", LOAD(sh->cpu));
		if (hb)
			rm_int(&s, "heartbeat_age_ms", now >= hb ? (int64_t)(now - hb) : 0);
		else
			rm_nil(&s, "heartbeat_age_ms");
		rm_int(&s, "loaded_gen", LOAD(sh->loaded_gen));
		rm_int(&s, "failed_gen", LOAD(sh->failed_gen));
		rm_int(&s, "requests", LOAD(sh->stats.requests));
		rm_int(&s, "events", LOAD(sh->stats.events));
		rm_int(&s, "recs", LOAD(sh->stats.recs));
		rm_int(&s, "reranks", LOAD(sh->stats.reranks));
		rm_int(&s, "errors", LOAD(sh->stats.errors));
		rm_int(&s, "sessions_live", LOAD(sh->stats.sessions_live));
		rm_int(&s, "session_bytes", LOAD(sh->stats.session_bytes));
		rm_int(&s, "memory_budget", LOAD(sh->stats.memory_budget));
		rm_int(&s, "sessions_evicted", LOAD(sh->stats.sessions_evicted));
		rm_int(&s, "sessions_restored", LOAD(sh->stats.sessions_restored));
		rm_int(&s, "spill_dropped", LOAD(sh->stats.spill_dropped));
		rm_int(&s, "checkpoint_lsn", LOAD(sh->stats.checkpoint_lsn));
		rm_int(&s, "snapshot_bytes", LOAD(sh->stats.snapshot_bytes));
		rm_int(&s, "snapshot_users", LOAD(sh->stats.snapshot_users));
		rm_int(&s, "swaps", LOAD(sh->stats.swaps));
		rm_int(&s, "busy_ms", LOAD(sh->stats.busy_ns) / 1000000);
		{
			uint64_t n;
			rm_int(&s, "visible_p50_ns", (int64_t)wf_lat_quantile(sh->stats.visible_hist, 0.50, &n));
			rm_int(&s, "visible_p95_ns", (int64_t)wf_lat_quantile(sh->stats.visible_hist, 0.95, NULL));
			rm_int(&s, "visible_p99_ns", (int64_t)wf_lat_quantile(sh->stats.visible_hist, 0.99, NULL));
			rm_int(&s, "visible_events", (int64_t)n);
		}
		rm_int(&s, "req_ring_used", wf_ring_used(wf_shm_req_ring(ctx->shm, i)));
		rm_int(&s, "rep_ring_used", wf_ring_used(wf_shm_rep_ring(ctx->shm, i)));
		rm_item(&shards, &s);
	}
	rm_sub(&m, "shards", &shards);
	return rm_emit(&c->out, &m);
}

#undef LOAD

/* ---- dispatch ---- */

static int usage_err(struct wf_admin_client *c, const char *usage)
{
	return wf_resp_w_error(&c->out, "ERR wrong number of arguments; usage: %s", usage);
}

int wf_admin_dispatch(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_req *req)
{
	const struct wf_resp_arg *a = req->argv;
	uint32_t n = req->argc;
	char esc[64];

	if (wf_resp_arg_is(&a[0], "PING"))
		return n == 1 ? wf_resp_w_simple(&c->out, "PONG") : wf_resp_w_bulk(&c->out, a[1].p, a[1].len);
	if (wf_resp_arg_is(&a[0], "SNAPSHOT") && n >= 2) {
		if (wf_resp_arg_is(&a[1], "LOAD"))
			return n == 3 ? cmd_snapshot_load(ctx, c, &a[2]) : usage_err(c, "SNAPSHOT LOAD path");
		if (wf_resp_arg_is(&a[1], "ROLLBACK"))
			return n == 2 ? cmd_snapshot_rollback(ctx, c) : usage_err(c, "SNAPSHOT ROLLBACK");
		if (wf_resp_arg_is(&a[1], "STATUS"))
			return n == 2 ? cmd_snapshot_status(ctx, c) : usage_err(c, "SNAPSHOT STATUS");
	}
	if (wf_resp_arg_is(&a[0], "WEIGHTS") && n >= 2) {
		if (wf_resp_arg_is(&a[1], "GET"))
			return n == 2 ? cmd_weights_get(ctx, c) : usage_err(c, "WEIGHTS GET");
		if (wf_resp_arg_is(&a[1], "SET"))
			return n == 6 ? cmd_weights_set(ctx, c, &a[2])
				      : usage_err(c, "WEIGHTS SET page visitor batch session");
	}
	if (wf_resp_arg_is(&a[0], "EXPERIMENT"))
		return wf_admin_exp_dispatch(ctx, c, a + 1, n - 1);
	if (wf_resp_arg_is(&a[0], "STATS"))
		return n == 1 ? cmd_stats(ctx, c) : usage_err(c, "STATS");
	if (wf_resp_arg_is(&a[0], "SEGMENT"))
		return wf_admin_seg_cmd(ctx, c, req);
	if (wf_resp_arg_is(&a[0], "SHUTDOWN")) {
		if (n != 1)
			return usage_err(c, "SHUTDOWN");
		/* R8: pairs with the acquire loads of ctl->shutdown in every
		 * daemon's loop and in the weftctl up supervisor. */
		atomic_store_explicit(&ctx->shm->ctl->shutdown, 1, memory_order_release);
		wf_info("SHUTDOWN requested by an admin client");
		ctx->exiting = 1;
		return wf_resp_w_simple(&c->out, "OK");
	}
	wf_escape(esc, sizeof(esc), a[0].p, a[0].len);
	return wf_resp_w_error(&c->out,
			       "ERR unknown command '%s' (or wrong subcommand); commands: PING, SNAPSHOT LOAD path | "
			       "ROLLBACK | STATUS, WEIGHTS GET | SET page visitor batch session, SEGMENT DEFINE name rule | "
			       "DROP name | LIST | PREVIEW rule, EXPERIMENT CREATE | START | STOP | LIST | STATUS, STATS, "
			       "SHUTDOWN",
			       esc);
}
