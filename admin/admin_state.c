/*
 * admin_state.c - weft-admin's persisted state: DIR/weights.ini and
 * DIR/snapshot.state, both INI files read with libinih and written
 * atomically (wf_write_file_atomic). Linked into weft-admin only.
 *
 * weights.ini: one section per page type, one key per visitor type, the
 * value "batch session" (two decimal numbers in [0, 10]):
 *
 *   [home]
 *   returning = 0.4 0.6
 *   new = 0.1 0.9
 *
 * snapshot.state: sections [current] and [previous] with keys gen,
 * loaded_ms and path, and [generation] next = the lowest generation the
 * next SNAPSHOT LOAD may get.
 */
#include <dirent.h>
#include <ini.h>
#include <math.h>
#include <stdatomic.h>
#include <unistd.h>

#include "admin/admin_int.h"

static int state_path(struct wf_admin_ctx *ctx, const char *file, char *out, size_t len)
{
	if ((size_t)snprintf(out, len, "%s/%s", ctx->state_dir, file) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int wf_admin_weights_save(struct wf_admin_ctx *ctx)
{
	WF_CLEANUP(wf_buf_fini) struct wf_buf b = { 0 };
	char path[WF_PATH_MAX + 32];
	int r;

	r = state_path(ctx, "weights.ini", path, sizeof(path));
	if (r < 0)
		return r;
	r = wf_buf_printf(&b, "# weft weights, written by weft-admin (WEIGHTS SET).\n"
			      "# [page] sections; key = visitor type; value = batch session\n");
	for (int p = 0; p < WF_PAGE_COUNT && r == 0; p++) {
		r = wf_buf_printf(&b, "\n[%s]\n", wf_page_name(p));
		for (int v = 0; v < WF_VISITOR_COUNT && r == 0; v++) {
			float wb, ws;

			wf_ctl_weights_get(ctx->shm->ctl, p, v, &wb, &ws);
			r = wf_buf_printf(&b, "%s = %.9g %.9g\n", wf_visitor_name(v), (double)wb, (double)ws);
		}
	}
	if (r < 0)
		return r;
	return wf_write_file_atomic(path, b.data, b.len);
}

struct weights_parse {
	struct wf_admin_ctx *ctx;
	const char *path;
	int applied;
};

/* Parse "batch session": two finite numbers in [0, 10]. 0 or -EINVAL. */
static int parse_pair(const char *value, float *ret_b, float *ret_s)
{
	char *end;
	double b, s;

	errno = 0;
	b = strtod(value, &end);
	if (end == value)
		return -EINVAL;
	value = end;
	s = strtod(value, &end);
	if (end == value || errno)
		return -EINVAL;
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end || !isfinite(b) || !isfinite(s) || b < 0 || b > 10 || s < 0 || s > 10)
		return -EINVAL;
	*ret_b = (float)b;
	*ret_s = (float)s;
	return 0;
}

static int weights_handler(void *user, const char *section, const char *name, const char *value)
{
	struct weights_parse *wp = user;
	int page = wf_page_from_name(section, strlen(section));
	int vis = wf_visitor_from_name(name, strlen(name));
	float b, s;

	if (page < 0 || vis < 0 || parse_pair(value, &b, &s) < 0) {
		wf_warn("%s: ignoring [%s] %s = %s (want [page] visitor = batch session, numbers in [0, 10])",
			wp->path, section, name, value);
		return 1; /* keep going: one bad line must not lose the others */
	}
	wf_ctl_weights_set(wp->ctx->shm->ctl, page, vis, b, s);
	wp->applied++;
	return 1;
}

int wf_admin_weights_load(struct wf_admin_ctx *ctx)
{
	char path[WF_PATH_MAX + 32];
	struct weights_parse wp = { .ctx = ctx, .path = path };
	int r;

	r = state_path(ctx, "weights.ini", path, sizeof(path));
	if (r < 0)
		return r;
	if (access(path, F_OK) < 0)
		return errno == ENOENT ? 0 : -errno;
	r = ini_parse(path, weights_handler, &wp);
	if (r < 0)
		return -EIO;
	if (r > 0)
		wf_warn("%s: syntax error on line %d (later lines still applied)", path, r);
	return wp.applied;
}

static int ref_print(struct wf_buf *b, const char *section, const struct wf_snap_ref *ref, const char *src)
{
	return wf_buf_printf(b, "\n[%s]\ngen = %llu\nloaded_ms = %llu\npath = %s\nsource = %s\n", section,
			     (unsigned long long)ref->gen, (unsigned long long)ref->loaded_ms,
			     ref->gen ? ref->path : "", ref->gen ? src : "");
}

int wf_admin_snapstate_save(struct wf_admin_ctx *ctx)
{
	WF_CLEANUP(wf_buf_fini) struct wf_buf b = { 0 };
	struct wf_snap_ref cur, prev;
	char path[WF_PATH_MAX + 32];
	int r;

	r = state_path(ctx, "snapshot.state", path, sizeof(path));
	if (r < 0)
		return r;
	wf_ctl_snap_get(ctx->shm->ctl, &cur, &prev);
	r = wf_buf_printf(&b, "# weft snapshot generations, written by weft-admin.\n\n[generation]\nnext = %llu\n",
			  /* relaxed: weft-admin is the only writer and reader of snap_next_gen. */
			  (unsigned long long)atomic_load_explicit(&ctx->shm->ctl->snap_next_gen,
								   memory_order_relaxed));
	if (r == 0)
		r = ref_print(&b, "current", &cur, ctx->src[0]);
	if (r == 0)
		r = ref_print(&b, "previous", &prev, ctx->src[1]);
	if (r < 0)
		return r;
	return wf_write_file_atomic(path, b.data, b.len);
}

struct snapstate_parse {
	const char *path;
	struct wf_snap_ref cur, prev;
	char src[2][WF_PATH_MAX];
	uint64_t next;
};

static int snapstate_handler(void *user, const char *section, const char *name, const char *value)
{
	struct snapstate_parse *sp = user;
	struct wf_snap_ref *ref = NULL;
	int64_t v;

	if (strcmp(section, "current") == 0)
		ref = &sp->cur;
	else if (strcmp(section, "previous") == 0)
		ref = &sp->prev;
	if (ref && strcmp(name, "path") == 0) {
		if (strlen(value) >= sizeof(ref->path))
			goto bad;
		snprintf(ref->path, sizeof(ref->path), "%s", value);
		return 1;
	}
	if (ref && strcmp(name, "source") == 0) {
		snprintf(sp->src[ref == &sp->prev], sizeof(sp->src[0]), "%s", value);
		return 1;
	}
	if (wf_parse_i64(value, strlen(value), &v) < 0 || v < 0)
		goto bad;
	if (ref && strcmp(name, "gen") == 0)
		ref->gen = (uint64_t)v;
	else if (ref && strcmp(name, "loaded_ms") == 0)
		ref->loaded_ms = (uint64_t)v;
	else if (strcmp(section, "generation") == 0 && strcmp(name, "next") == 0)
		sp->next = (uint64_t)v;
	else
		goto bad;
	return 1;
bad:
	wf_warn("%s: ignoring [%s] %s = %s", sp->path, section, name, value);
	return 1;
}

int wf_admin_snapstate_load(struct wf_admin_ctx *ctx)
{
	char path[WF_PATH_MAX + 32];
	struct snapstate_parse sp = { .path = path };
	int r;

	r = state_path(ctx, "snapshot.state", path, sizeof(path));
	if (r < 0)
		return r;
	if (access(path, F_OK) < 0)
		return errno == ENOENT ? 0 : -errno;
	r = ini_parse(path, snapstate_handler, &sp);
	if (r < 0)
		return -EIO;
	if (r > 0)
		wf_warn("%s: syntax error on line %d", path, r);
	if (sp.cur.gen == 0 || sp.cur.path[0] != '/') {
		/* No usable current generation: a previous one alone is useless. */
		memset(&sp.cur, 0, sizeof(sp.cur));
		memset(&sp.prev, 0, sizeof(sp.prev));
	}
	if (sp.prev.gen == 0 || sp.prev.path[0] != '/')
		memset(&sp.prev, 0, sizeof(sp.prev));
	sp.next = WF_MAX(sp.next, WF_MAX(sp.cur.gen, sp.prev.gen) + 1);
	/* relaxed: weft-admin is the only writer and reader of snap_next_gen. */
	atomic_store_explicit(&ctx->shm->ctl->snap_next_gen, sp.next, memory_order_relaxed);
	if (sp.cur.gen) {
		wf_ctl_snap_set(ctx->shm->ctl, &sp.cur, &sp.prev);
		memcpy(ctx->src[0], sp.src[0], sizeof(ctx->src[0]));
		memcpy(ctx->src[1], sp.prev.gen ? sp.src[1] : "", sp.prev.gen ? sizeof(ctx->src[1]) : 1);
	}
	return sp.cur.gen ? 1 : 0;
}

void wf_admin_state_sweep(struct wf_admin_ctx *ctx)
{
	static const char *const prefixes[] = { "weights.ini.tmp.", "snapshot.state.tmp.", "segments.conf.tmp.",
						"experiments.conf.tmp." };
	DIR *d = opendir(ctx->state_dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		for (size_t i = 0; i < WF_ARRAY_SIZE(prefixes); i++)
			if (strncmp(de->d_name, prefixes[i], strlen(prefixes[i])) == 0 &&
			    unlinkat(dirfd(d), de->d_name, 0) == 0)
				wf_info("removed %s/%s (left by a weft-admin killed while it wrote)", ctx->state_dir,
					de->d_name);
	closedir(d);
}
