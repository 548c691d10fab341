/*
 * admin_exp.c - weft-admin's EXPERIMENT commands (issue 17): CREATE,
 * START, STOP, LIST, STATUS. Definitions live in STATE/experiments.conf
 * (lib/exp.h), written atomically on every change; when the state dir is
 * not DIR, DIR/experiments.conf (what the rankers read) is written too.
 * Then ctl->experiments_gen is bumped (R13) so the rankers reload, and a
 * START or STOP also bumps the weights seqlock: every front-table entry
 * (shm/front.h) checks it, so no answer published before the change is
 * given after it without the ranker (and its exposure). REPORT is
 * weftctl's: it reads the journal, which weft-admin never scans.
 * Linked into weft-admin only.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "lib/exp.h"

/* Write the set where it is kept and where the rankers read it; then
 * R13, and (front: 1) the weights seqlock. 0 or -errno. */
static int exp_save(struct wf_admin_ctx *ctx, int front)
{
	struct wf_buf b = { 0 };
	char path[WF_PATH_MAX];
	int r = wf_exp_conf_format(ctx->exps, &b);

	if (r == 0 && snprintf(path, sizeof(path), "%s/experiments.conf", ctx->state_dir) >= (int)sizeof(path))
		r = -ENAMETOOLONG;
	if (r == 0)
		r = wf_write_file_atomic(path, b.data, b.len);
	if (r == 0 && strcmp(ctx->state_dir, ctx->dir) != 0) {
		if (snprintf(path, sizeof(path), "%s/experiments.conf", ctx->dir) >= (int)sizeof(path))
			r = -ENAMETOOLONG;
		else
			r = wf_write_file_atomic(path, b.data, b.len);
	}
	wf_buf_fini(&b);
	if (r < 0)
		return r;
	/* R13: pairs with A13 in the rankers' loop (rankers/exps.c): the
	 * renamed file is complete before they see the new count. */
	atomic_fetch_add_explicit(&ctx->shm->ctl->experiments_gen, 1, memory_order_release);
	if (front) {
		/* A write of nothing under the weights seqlock moves its count:
		 * front entries published before carry the old one and stop
		 * answering (wf_front_lookup compares it). After R13, so a
		 * ranker that reads the new count (acquire) also sees the new
		 * experiments_gen and does not publish under the old set. */
		wf_seq_write_begin(&ctx->shm->ctl->weights_lock);
		wf_seq_write_end(&ctx->shm->ctl->weights_lock);
	}
	return 0;
}

int wf_admin_exp_init(struct wf_admin_ctx *ctx)
{
	char path[WF_PATH_MAX], err[512];
	int r;

	ctx->exps = calloc(1, sizeof(*ctx->exps));
	if (!ctx->exps)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/experiments.conf", ctx->state_dir);
	r = wf_exp_conf_load(path, ctx->exps, err, sizeof(err));
	if (r < 0) {
		/* Refuse to serve with a set we cannot read: a START in it
		 * must not be lost by the next write. */
		wf_err("%s: fix or remove the file", err);
		return r;
	}
	if (ctx->exps->n)
		wf_info("%u experiments from %s", ctx->exps->n, path);
	/* The rankers' copy may lag behind (a kill between the two writes):
	 * write it again, and tell them. */
	return strcmp(ctx->state_dir, ctx->dir) != 0 ? exp_save(ctx, 0) : 0;
}

void wf_admin_exp_fini(struct wf_admin_ctx *ctx)
{
	free(ctx->exps);
	ctx->exps = NULL;
}

/* A copy of argument a as a C string (ids here are short). */
static int arg_str(const struct wf_resp_arg *a, char *out, size_t n)
{
	if (a->len >= n || memchr(a->p, 0, a->len))
		return -EINVAL;
	memcpy(out, a->p, a->len);
	out[a->len] = 0;
	return 0;
}

/* A running experiment other than e that overlaps it, or NULL. */
static const struct wf_exp *running_overlap(struct wf_admin_ctx *ctx, const struct wf_exp *e)
{
	for (uint32_t i = 0; i < ctx->exps->n; i++) {
		const struct wf_exp *o = &ctx->exps->exps[i];
		if (o != e && o->state == WF_EXP_RUNNING && strcmp(o->name, e->name) && wf_exp_overlap(o, e))
			return o;
	}
	return NULL;
}

static int overlap_err(struct wf_admin_client *c, const struct wf_exp *e, const struct wf_exp *o)
{
	char pages[128];

	wf_exp_pages_format(o->pages, pages, sizeof(pages));
	return wf_resp_w_error(&c->out,
			       "ERR experiment '%s' overlaps running experiment '%s' (unit %s, pages %s): one request "
			       "would be in both; stop '%s' first or choose other pages or unit",
			       e->name, o->name, wf_exp_unit_name(o->unit), pages, o->name);
}

/* EXPERIMENT CREATE name [UNIT user|session] [WINDOW dur] [PAGES list] ARM spec [ARM spec]... */
static int cmd_create(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_arg *a, uint32_t n)
{
	struct wf_exp e = { .window_ms = WF_EXP_WINDOW_DEFAULT_MS };
	char val[256], err[300];
	const struct wf_exp *o;
	int r;

	if (n < 1 || arg_str(&a[0], e.name, sizeof(e.name)) < 0 || !wf_exp_name_valid(e.name, strlen(e.name)))
		return wf_resp_w_error(&c->out, "ERR an experiment name is 1..%u letters, digits, '_', '-' or '.'",
				       WF_EXP_NAME_MAX);
	if (wf_exp_find(ctx->exps, e.name))
		return wf_resp_w_error(&c->out,
				       "ERR experiment '%s' exists (a started experiment cannot change: create one "
				       "under a new name)",
				       e.name);
	if (ctx->exps->n == WF_EXP_MAX)
		return wf_resp_w_error(&c->out, "ERR %u experiments exist already (the most weft keeps)", WF_EXP_MAX);
	for (uint32_t i = 1; i < n; i += 2) {
		if (i + 1 >= n || arg_str(&a[i + 1], val, sizeof(val)) < 0)
			return wf_resp_w_error(&c->out, "ERR EXPERIMENT CREATE wants: name [UNIT user|session] "
							"[WINDOW 30m] [PAGES home,pdp,...] ARM name=percent:policy...");
		if (wf_resp_arg_is(&a[i], "ARM")) {
			if (e.narms == WF_EXP_ARMS_MAX)
				return wf_resp_w_error(&c->out, "ERR at most %u arms", WF_EXP_ARMS_MAX);
			if (wf_exp_arm_parse(val, &e.arms[e.narms++], err, sizeof(err)) < 0)
				return wf_resp_w_error(&c->out, "ERR %s", err);
		} else if (wf_resp_arg_is(&a[i], "UNIT")) {
			if (strcmp(val, "user") && strcmp(val, "session"))
				return wf_resp_w_error(&c->out, "ERR unit is user or session, not '%.40s'", val);
			e.unit = strcmp(val, "session") == 0 ? WF_EXP_UNIT_SESSION : WF_EXP_UNIT_USER;
		} else if (wf_resp_arg_is(&a[i], "WINDOW")) {
			if (wf_exp_window_parse(val, &e.window_ms) < 0)
				return wf_resp_w_error(&c->out, "ERR window '%.40s' is not a duration (30m, 2h, 90s, 1d)",
						       val);
		} else if (wf_resp_arg_is(&a[i], "PAGES")) {
			if (wf_exp_pages_parse(val, &e.pages, err, sizeof(err)) < 0)
				return wf_resp_w_error(&c->out, "ERR %s", err);
		} else {
			wf_escape(val, sizeof(val), a[i].p, a[i].len);
			return wf_resp_w_error(&c->out, "ERR unknown option '%s' (ARM, UNIT, WINDOW, PAGES)", val);
		}
	}
	if (wf_exp_validate(&e, err, sizeof(err)) < 0)
		return wf_resp_w_error(&c->out, "ERR %s", err);
	if ((o = running_overlap(ctx, &e)))
		return overlap_err(c, &e, o);
	e.created_ms = wf_wall_ms();
	/* The salt: fixed now and kept in the file, so every shard and every
	 * restart assign alike; two experiments of one name at different
	 * times split differently. */
	uint64_t seed[2] = { e.created_ms, (uint64_t)getpid() };
	e.salt = wf_hash64(seed, sizeof(seed)) ^ wf_hash64(e.name, strlen(e.name));
	ctx->exps->exps[ctx->exps->n++] = e;
	r = exp_save(ctx, 0);
	if (r < 0) {
		ctx->exps->n--;
		wf_err("cannot save %s/experiments.conf: %s", ctx->state_dir, strerror(-r));
		return wf_resp_w_error(&c->out, "ERR experiment not created: cannot write %s/experiments.conf: %s",
				       ctx->state_dir, strerror(-r));
	}
	wf_info("experiment %s created (%u arms)", e.name, e.narms);
	return wf_resp_w_simple(&c->out, "OK");
}

static struct wf_exp *named(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_arg *a)
{
	char name[WF_EXP_NAME_MAX + 1], esc[80];
	struct wf_exp *e = NULL;

	if (arg_str(a, name, sizeof(name)) == 0)
		e = wf_exp_find(ctx->exps, name);
	if (!e) {
		wf_escape(esc, sizeof(esc), a->p, a->len);
		wf_resp_w_error(&c->out, "ERR no experiment named '%s' (weftctl experiment list shows them)", esc);
	}
	return e;
}

/* START (to running) or STOP (to stopped). */
static int cmd_transition(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_arg *a, int start)
{
	struct wf_exp *e = named(ctx, c, a), saved;
	const struct wf_exp *o;
	int r;

	if (!e)
		return 0;
	if (start && e->state != WF_EXP_CREATED)
		return wf_resp_w_error(&c->out, "ERR experiment '%s' is %s: an experiment starts once (create a new one)",
				       e->name, wf_exp_state_name(e->state));
	if (!start && e->state != WF_EXP_RUNNING)
		return wf_resp_w_error(&c->out, "ERR experiment '%s' is %s, not running", e->name,
				       wf_exp_state_name(e->state));
	if (start && (o = running_overlap(ctx, e)))
		return overlap_err(c, e, o);
	saved = *e;
	e->state = start ? WF_EXP_RUNNING : WF_EXP_STOPPED;
	*(start ? &e->started_ms : &e->stopped_ms) = wf_wall_ms();
	r = exp_save(ctx, 1);
	if (r < 0) {
		*e = saved;
		wf_err("cannot save %s/experiments.conf: %s", ctx->state_dir, strerror(-r));
		return wf_resp_w_error(&c->out, "ERR experiment '%s' not %s: cannot write %s/experiments.conf: %s",
				       e->name, start ? "started" : "stopped", ctx->state_dir, strerror(-r));
	}
	wf_info("experiment %s %s", e->name, start ? "started" : "stopped");
	return wf_resp_w_simple(&c->out, "OK");
}

/* The arms as one line: "a=50:stale b=50:live". */
static void arms_line(const struct wf_exp *e, char *out, size_t n)
{
	size_t at = 0;

	out[0] = 0;
	for (uint32_t i = 0; i < e->narms && at < n; i++) {
		char arm[160];
		wf_exp_arm_format(&e->arms[i], arm, sizeof(arm));
		at += (size_t)snprintf(out + at, n - at, "%s%s", i ? " " : "", arm);
	}
}

/* A map of e: 10 pairs (with arms as a list of maps when full). */
static int w_exp(struct wf_buf *o, const struct wf_exp *e, int full)
{
	char pages[128], line[WF_EXP_ARMS_MAX * 160];

	wf_exp_pages_format(e->pages, pages, sizeof(pages));
	wf_resp_w_array(o, full ? 20 : 12);
	wf_resp_w_bulk_str(o, "name");
	wf_resp_w_bulk_str(o, e->name);
	wf_resp_w_bulk_str(o, "state");
	wf_resp_w_bulk_str(o, wf_exp_state_name(e->state));
	wf_resp_w_bulk_str(o, "unit");
	wf_resp_w_bulk_str(o, wf_exp_unit_name(e->unit));
	wf_resp_w_bulk_str(o, "pages");
	wf_resp_w_bulk_str(o, pages);
	wf_resp_w_bulk_str(o, "window_ms");
	wf_resp_w_int(o, (int64_t)e->window_ms);
	if (!full) {
		arms_line(e, line, sizeof(line));
		wf_resp_w_bulk_str(o, "arms");
		return wf_resp_w_bulk_str(o, line);
	}
	wf_resp_w_bulk_str(o, "salt");
	wf_resp_w_bulk_fmt(o, "%016llx", (unsigned long long)e->salt);
	wf_resp_w_bulk_str(o, "created_ms");
	wf_resp_w_int(o, (int64_t)e->created_ms);
	wf_resp_w_bulk_str(o, "started_ms");
	wf_resp_w_int(o, (int64_t)e->started_ms);
	wf_resp_w_bulk_str(o, "stopped_ms");
	wf_resp_w_int(o, (int64_t)e->stopped_ms);
	wf_resp_w_bulk_str(o, "arms");
	wf_resp_w_array(o, e->narms);
	for (uint32_t i = 0; i < e->narms; i++) {
		const struct wf_exp_armdef *a = &e->arms[i];
		wf_resp_w_array(o, a->policy == WF_EXP_WEIGHTS ? 10 : 6);
		wf_resp_w_bulk_str(o, "arm");
		wf_resp_w_bulk_str(o, a->name);
		wf_resp_w_bulk_str(o, "percent");
		wf_resp_w_bulk_fmt(o, "%u.%02u", a->share / 100, a->share % 100);
		wf_resp_w_bulk_str(o, "policy");
		wf_resp_w_bulk_str(o, wf_exp_policy_name(a->policy));
		if (a->policy == WF_EXP_WEIGHTS) {
			wf_resp_w_bulk_str(o, "batch");
			wf_resp_w_bulk_fmt(o, "%.6g", (double)a->w_batch);
			wf_resp_w_bulk_str(o, "session");
			wf_resp_w_bulk_fmt(o, "%.6g", (double)a->w_session);
		}
	}
	return o->len ? 0 : -ENOMEM;
}

int wf_admin_exp_dispatch(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_arg *a, uint32_t n)
{
	if (n >= 1 && wf_resp_arg_is(&a[0], "CREATE"))
		return cmd_create(ctx, c, a + 1, n - 1);
	if (n == 2 && wf_resp_arg_is(&a[0], "START"))
		return cmd_transition(ctx, c, &a[1], 1);
	if (n == 2 && wf_resp_arg_is(&a[0], "STOP"))
		return cmd_transition(ctx, c, &a[1], 0);
	if (n == 2 && wf_resp_arg_is(&a[0], "STATUS")) {
		const struct wf_exp *e = named(ctx, c, &a[1]);
		return e ? w_exp(&c->out, e, 1) : 0;
	}
	if (n == 1 && wf_resp_arg_is(&a[0], "LIST")) {
		wf_resp_w_array(&c->out, ctx->exps->n);
		for (uint32_t i = 0; i < ctx->exps->n; i++)
			w_exp(&c->out, &ctx->exps->exps[i], 0);
		return 0;
	}
	if (n >= 1 && wf_resp_arg_is(&a[0], "REPORT"))
		return wf_resp_w_error(&c->out, "ERR the report reads the journal, which weft-admin does not: run "
						"weftctl experiment report NAME");
	return wf_resp_w_error(&c->out, "ERR EXPERIMENT wants: CREATE name [UNIT user|session] [WINDOW dur] [PAGES "
					"list] ARM name=percent:policy... | START name | STOP name | LIST | STATUS name");
}
