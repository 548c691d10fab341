/*
 * admin_seg.c - weft-admin's segment commands: SEGMENT DEFINE name rule,
 * SEGMENT DROP name, SEGMENT LIST, SEGMENT PREVIEW rule. Linked into
 * weft-admin only.
 *
 * The definitions live in segments.conf (lib/seg's format: "name\tversion\t
 * rule\n", a dropped name a tombstone keeping its version), written whole
 * and atomically (temp file, fsync, rename, fsync of the directory) into
 * the state directory (--state-dir: it survives a reboot) and, when that
 * is another directory, into --dir, where the rankers read it; then
 * ctl->segdefs_gen is bumped (R12) and every ranker reloads at its next
 * loop pass (A12): a definition takes effect without a restart. At start
 * (wf_admin_seg_restore) the state directory's copy is put back into
 * --dir. While no file exists the built-in definitions apply (lib/seg
 * wf_seg_defs_default), and the first change writes them out with it.
 *
 * Every rule is compiled here first (wf_seg_compile: an error names the
 * byte and what was expected), and the whole set is built before anything
 * is written (in() of an unknown segment, a cycle, too many segments), so
 * the rankers never meet a file they refuse. SEGMENT PREVIEW validates the
 * same way, then asks weft-ingest (SEGPREVIEW on DIR/weft.sock, which every
 * ranker answers for its live sessions) and waits for it at most
 * SEG_PREVIEW_TIMEOUT_MS: the one admin command that waits on another
 * process, rare and bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "lib/seg/seg.h"

#define SEG_PREVIEW_TIMEOUT_MS 2000

static void conf_path(const char *dir, char *out, size_t n)
{
	snprintf(out, n, "%s/segments.conf", dir);
}

/* The definitions: the state directory's file, else the built-in ones.
 * 0, -EINVAL (*ret_line: the malformed line), -errno. */
static int defs_load(struct wf_admin_ctx *ctx, struct wf_seg_defs *ret, uint32_t *ret_line)
{
	char path[WF_PATH_MAX], *data = NULL;
	size_t len = 0;
	int r;

	conf_path(ctx->state_dir, path, sizeof(path));
	r = wf_read_file(path, &data, &len);
	if (r == -ENOENT)
		return wf_seg_defs_default(ret);
	if (r < 0)
		return r;
	r = wf_seg_defs_parse(data, len, ret, ret_line);
	free(data);
	return r;
}

/* Write bytes to dir/segments.conf atomically, the directory synced. */
static int conf_write(const char *dir, const char *data, size_t len)
{
	char path[WF_PATH_MAX];
	int r, fd;

	conf_path(dir, path, sizeof(path));
	r = wf_write_file_atomic(path, data, len);
	if (r < 0)
		return r;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* Persist defs and tell the rankers. 0 or -errno. */
static int defs_save(struct wf_admin_ctx *ctx, const struct wf_seg_defs *defs)
{
	char *data;
	size_t len;
	int r;

	r = wf_seg_defs_format(defs, &data, &len);
	if (r < 0)
		return r;
	r = conf_write(ctx->state_dir, data, len);
	if (r == 0 && strcmp(ctx->state_dir, ctx->dir) != 0)
		r = conf_write(ctx->dir, data, len);
	free(data);
	if (r < 0)
		return r;
	/* R12: pairs with A12 in the rankers' loop: the file is in place
	 * before they see the new count and read it. */
	atomic_fetch_add_explicit(&ctx->shm->ctl->segdefs_gen, 1, memory_order_release);
	return 0;
}

void wf_admin_seg_restore(struct wf_admin_ctx *ctx)
{
	char path[WF_PATH_MAX], *data = NULL;
	size_t len = 0;
	int r;

	if (strcmp(ctx->state_dir, ctx->dir) == 0)
		return;
	conf_path(ctx->state_dir, path, sizeof(path));
	if (wf_read_file(path, &data, &len) < 0)
		return; /* none: the built-in definitions apply */
	r = conf_write(ctx->dir, data, len);
	free(data);
	if (r < 0)
		wf_warn("cannot put segments.conf back into %s: %s (the rankers use the built-in segments)", ctx->dir,
			strerror(-r));
	else /* R12, as in defs_save() */
		atomic_fetch_add_explicit(&ctx->shm->ctl->segdefs_gen, 1, memory_order_release);
}

/* A rule's compile error as a reply: where, what was expected, and the
 * text from there. */
static int rule_error(struct wf_admin_client *c, const char *what, const struct wf_seg_error *e, const char *rule,
		      size_t len)
{
	char near[64];
	size_t at = WF_MIN((size_t)e->pos, len);

	wf_escape(near, sizeof(near), rule + at, WF_MIN(len - at, 24u));
	return wf_resp_w_error(&c->out, "ERR %s: %s (here: '%s')", what, e->msg, near);
}

/* Compile rule[0..len) alone: 0, or the error replied (1), -ENOMEM. */
static int rule_check(struct wf_admin_client *c, const char *rule, size_t len)
{
	struct wf_seg_error e = { 0 };
	struct wf_seg_rule *r = NULL;
	int k = wf_seg_compile(rule, len, &r, &e);

	wf_seg_rule_free(r);
	if (k == -ENOMEM)
		return -ENOMEM;
	if (k < 0)
		return rule_error(c, "bad rule", &e, rule, len) < 0 ? -ENOMEM : 1;
	return 0;
}

/* defs as a whole: 0, or the error replied (1). */
static int set_check(struct wf_admin_client *c, const struct wf_seg_defs *defs, const char *doing)
{
	struct wf_seg_error e = { 0 };
	struct wf_seg_set *set = NULL;
	uint32_t bad = 0;
	int k = wf_seg_set_build(defs, &set, &e, &bad);

	wf_seg_set_free(set);
	if (k == -ENOMEM)
		return -ENOMEM;
	if (k < 0)
		return wf_resp_w_error(&c->out, "ERR %s: segment '%s' would not work: %s", doing,
				       bad < defs->n ? defs->defs[bad].name : "?", e.msg) < 0 ? -ENOMEM : 1;
	return 0;
}

static int load_or_reply(struct wf_admin_ctx *ctx, struct wf_admin_client *c, struct wf_seg_defs *defs)
{
	uint32_t line = 0;
	int r = defs_load(ctx, defs, &line);

	if (r == -EINVAL)
		return wf_resp_w_error(&c->out, "ERR %s/segments.conf line %u is malformed: fix or remove the line",
				       ctx->state_dir, line) < 0 ? -ENOMEM : 1;
	if (r < 0)
		return wf_resp_w_error(&c->out, "ERR cannot read %s/segments.conf: %s", ctx->state_dir, strerror(-r)) < 0
			       ? -ENOMEM
			       : 1;
	return 0;
}

/* The reply for one definition: a map name, version, rule. */
static int w_def(struct wf_buf *b, const char *name, uint64_t version, const char *rule, size_t len)
{
	int r = wf_resp_w_array(b, 6);

	r |= wf_resp_w_bulk_str(b, "name");
	r |= wf_resp_w_bulk_str(b, name);
	r |= wf_resp_w_bulk_str(b, "version");
	r |= wf_resp_w_int(b, (int64_t)version);
	r |= wf_resp_w_bulk_str(b, "rule");
	r |= wf_resp_w_bulk(b, rule, len);
	return r ? -ENOMEM : 0;
}

/* DEFINE (rule given) or DROP (rule NULL). */
static int cmd_put(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_arg *name,
		   const struct wf_resp_arg *rule)
{
	struct wf_seg_defs defs = { 0 };
	char nm[WF_SEG_NAME_MAX + 1], esc[80];
	int64_t ver;
	int r;

	if (!wf_seg_name_valid(name->p, name->len)) {
		wf_escape(esc, sizeof(esc), name->p, WF_MIN(name->len, 64u));
		return wf_resp_w_error(&c->out, "ERR bad segment name '%s': 1..%u of A-Z a-z 0-9 _ -", esc,
				       WF_SEG_NAME_MAX);
	}
	memcpy(nm, name->p, name->len);
	nm[name->len] = '\0';
	if (rule && (r = rule_check(c, rule->p, rule->len)) != 0)
		return r < 0 ? r : 0;
	if ((r = load_or_reply(ctx, c, &defs)) != 0)
		goto out;
	ver = wf_seg_defs_put(&defs, nm, rule ? rule->p : "", rule ? rule->len : 0);
	if (ver == -ENOENT) {
		r = wf_resp_w_error(&c->out, "ERR no segment named '%s' (weftctl segment list shows them)", nm);
		goto out;
	}
	if (ver < 0) {
		r = ver == -ENOMEM ? -ENOMEM : wf_resp_w_error(&c->out, "ERR cannot store this rule (%s)", strerror((int)-ver));
		goto out;
	}
	if ((r = set_check(c, &defs, rule ? "not defined" : "not dropped")) != 0)
		goto out;
	if ((r = defs_save(ctx, &defs)) < 0) {
		r = wf_resp_w_error(&c->out, "ERR cannot write %s/segments.conf: %s (nothing changed)", ctx->state_dir,
				    strerror(-r));
		goto out;
	}
	wf_info("segment %s %s (version %lld)", nm, rule ? "defined" : "dropped", (long long)ver);
	r = w_def(&c->out, nm, (uint64_t)ver, rule ? rule->p : "", rule ? rule->len : 0);
out:
	wf_seg_defs_fini(&defs);
	return r < 0 ? r : 0;
}

static int cmd_list(struct wf_admin_ctx *ctx, struct wf_admin_client *c)
{
	struct wf_seg_defs defs = { 0 };
	uint32_t live = 0;
	int r;

	if ((r = load_or_reply(ctx, c, &defs)) != 0)
		goto out;
	for (uint32_t i = 0; i < defs.n; i++)
		live += defs.defs[i].rule_len > 0;
	/* An empty list is an empty array (a list, not a map). */
	r = wf_resp_w_array(&c->out, live);
	for (uint32_t i = 0; i < defs.n && r == 0; i++)
		if (defs.defs[i].rule_len)
			r = w_def(&c->out, defs.defs[i].name, defs.defs[i].version, defs.defs[i].rule,
				  defs.defs[i].rule_len);
out:
	wf_seg_defs_fini(&defs);
	return r < 0 ? r : 0;
}

/* The merged SEGPREVIEW answer [matched, new, returning, [sample...]] as
 * a map; samples "session user" as a list of maps. */
static int w_preview(struct wf_buf *b, const redisReply *rp)
{
	const redisReply *s = rp->element[3];
	int r = wf_resp_w_array(b, 8);

	r |= wf_resp_w_bulk_str(b, "matched");
	r |= wf_resp_w_int(b, rp->element[0]->integer);
	r |= wf_resp_w_bulk_str(b, "new");
	r |= wf_resp_w_int(b, rp->element[1]->integer);
	r |= wf_resp_w_bulk_str(b, "returning");
	r |= wf_resp_w_int(b, rp->element[2]->integer);
	r |= wf_resp_w_bulk_str(b, "sample");
	r |= wf_resp_w_array(b, (int64_t)s->elements);
	for (size_t i = 0; i < s->elements; i++) {
		const char *sp = s->element[i]->type == REDIS_REPLY_STRING ? memchr(s->element[i]->str, ' ', s->element[i]->len) : NULL;
		const char *str = s->element[i]->str ? s->element[i]->str : "";
		size_t len = s->element[i]->len;

		r |= wf_resp_w_array(b, 4);
		r |= wf_resp_w_bulk_str(b, "session");
		r |= wf_resp_w_bulk(b, str, sp ? (size_t)(sp - str) : len);
		r |= wf_resp_w_bulk_str(b, "user");
		r |= wf_resp_w_bulk(b, sp ? sp + 1 : "-", sp ? len - (size_t)(sp - str) - 1 : 1);
	}
	return r ? -ENOMEM : 0;
}

static int cmd_preview(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_arg *rule)
{
	struct wf_seg_defs defs = { 0 };
	struct wf_seg_set *base = NULL, *with = NULL;
	struct wf_seg_error e = { 0 };
	struct timeval tv = { SEG_PREVIEW_TIMEOUT_MS / 1000, SEG_PREVIEW_TIMEOUT_MS % 1000 * 1000 };
	char path[WF_PATH_MAX];
	redisContext *rc = NULL;
	redisReply *rp = NULL;
	int r;

	if ((r = rule_check(c, rule->p, rule->len)) != 0)
		return r < 0 ? r : 0;
	/* in() of the live segments resolves (the rankers preview it so). */
	if ((r = load_or_reply(ctx, c, &defs)) != 0)
		goto out;
	if (wf_seg_set_build(&defs, &base, NULL, NULL) == 0 &&
	    wf_seg_set_with_rule(base, rule->p, rule->len, &with, &e) == -EINVAL) {
		r = rule_error(c, "bad rule", &e, rule->p, rule->len);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/weft.sock", ctx->dir);
	rc = redisConnectUnixWithTimeout(path, tv);
	if (!rc || rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
		r = wf_resp_w_error(&c->out, "ERR cannot ask weft-ingest (%s): %s — is weft up?", path,
				    rc ? rc->errstr : "out of memory");
		goto out;
	}
	rp = redisCommand(rc, "SEGPREVIEW %b", rule->p, (size_t)rule->len);
	if (!rp) {
		r = wf_resp_w_error(&c->out, "ERR weft-ingest gave no preview within %d ms (%s): try again",
				    SEG_PREVIEW_TIMEOUT_MS, rc->errstr);
	} else if (rp->type == REDIS_REPLY_ERROR) {
		r = wf_resp_w_error(&c->out, "%s", rp->str);
	} else if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 4 || rp->element[3]->type != REDIS_REPLY_ARRAY) {
		r = wf_resp_w_error(&c->out, "ERR weft-ingest's preview has an unexpected form");
	} else {
		r = w_preview(&c->out, rp);
	}
out:
	if (rp)
		freeReplyObject(rp);
	redisFree(rc);
	wf_seg_set_free(with);
	wf_seg_set_free(base);
	wf_seg_defs_fini(&defs);
	return r < 0 ? r : 0;
}

int wf_admin_seg_cmd(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_req *req)
{
	const struct wf_resp_arg *a = req->argv;
	uint32_t n = req->argc;

	if (n >= 2 && wf_resp_arg_is(&a[1], "DEFINE") && n == 4)
		return cmd_put(ctx, c, &a[2], &a[3]);
	if (n >= 2 && wf_resp_arg_is(&a[1], "DROP") && n == 3)
		return cmd_put(ctx, c, &a[2], NULL);
	if (n >= 2 && wf_resp_arg_is(&a[1], "LIST") && n == 2)
		return cmd_list(ctx, c);
	if (n >= 2 && wf_resp_arg_is(&a[1], "PREVIEW") && n == 3)
		return cmd_preview(ctx, c, &a[2]);
	return wf_resp_w_error(&c->out, "ERR usage: SEGMENT DEFINE name rule | DROP name | LIST | PREVIEW rule");
}
