/*
 * weftctl_export.c - `weftctl export --channel email --k K [--out FILE]
 * [--snapshot FILE]`: every user's top K batch items as CSV
 * (user_id,rank,item_id,score), stock-filtered. Email is batch by nature
 * (static once sent), so no session data is used. The snapshot is the one
 * the appliance serves (SNAPSHOT STATUS) unless --snapshot names one; the
 * stock is the live size-level table in shared memory (the segment named by
 * STATS), or, with no appliance to ask, the snapshot's sold-out flags.
 * Linked into weftctl.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "admin/weftctl_int.h"
#include "lib/snapshot.h"
#include "shm/shm.h"

static int admin_strings(const struct wf_cli_opts *o, char *snap, size_t snaplen, char *seg, size_t seglen)
{
	redisContext *c = wf_cli_connect(o, 1);
	redisReply *st, *sn;
	int r = -1;

	if (!c)
		return -1;
	st = redisCommand(c, "STATS");
	sn = redisCommand(c, "SNAPSHOT STATUS");
	if (st && sn && st->type == REDIS_REPLY_ARRAY && sn->type == REDIS_REPLY_ARRAY) {
		const redisReply *g = wf_cli_get(st, "segment"), *cur = wf_cli_get(sn, "current");
		const redisReply *p = cur ? wf_cli_get(cur, "path") : NULL;
		if (g && g->str)
			snprintf(seg, seglen, "%s", g->str);
		if (p && p->str && !snap[0])
			snprintf(snap, snaplen, "%s", p->str);
		r = 0;
	}
	if (st)
		freeReplyObject(st);
	if (sn)
		freeReplyObject(sn);
	redisFree(c);
	return r;
}

/* One CSV field, quoted (RFC 4180) when it holds a separator, quote or
 * line break: ids are opaque strings. */
static void csv_field(FILE *f, const char *p, size_t n)
{
	if (!memchr(p, ',', n) && !memchr(p, '"', n) && !memchr(p, '\n', n) && !memchr(p, '\r', n)) {
		fwrite(p, 1, n, f);
		return;
	}
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"')
			fputc('"', f);
		fputc(p[i], f);
	}
	fputc('"', f);
}

int wf_cli_export(const struct wf_cli_opts *o)
{
	char snap_path[PATH_MAX] = "", seg[256] = "", err[512];
	struct wf_shm *shm = NULL;
	struct wf_snap *s;
	FILE *out = stdout;
	uint64_t rows = 0, skipped = 0;

	if (!o->channel || strcmp(o->channel, "email") != 0) {
		fprintf(stderr, "weftctl: export knows one channel: --channel email\n");
		return 2;
	}
	if (o->snapshot)
		snprintf(snap_path, sizeof(snap_path), "%s", o->snapshot);
	if (admin_strings(o, snap_path, sizeof(snap_path), seg, sizeof(seg)) < 0 && !o->snapshot) {
		fprintf(stderr, "weftctl: cannot ask weft at %s/admin.sock which snapshot it serves; start weft "
			"or pass --snapshot FILE\n", o->dir);
		return 1;
	}
	if (!snap_path[0]) {
		fprintf(stderr, "weftctl: weft serves no snapshot yet; load one or pass --snapshot FILE\n");
		return 1;
	}
	if (wf_snap_open(snap_path, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "weftctl: %s\n", err);
		return 1;
	}
	if (seg[0] && wf_shm_attach_ro(seg, &shm) < 0) {
		fprintf(stderr, "weftctl: cannot attach segment %s: using the snapshot's sold-out flags\n", seg);
		shm = NULL;
	}
	if (o->out && !(out = fopen(o->out, "w"))) {
		fprintf(stderr, "weftctl: cannot write %s: %s\n", o->out, strerror(errno));
		wf_snap_close(s);
		wf_shm_detach(shm);
		return 1;
	}
	fputs("user_id,rank,item_id,score\n", out);
	for (uint32_t u = 0; u < s->nusers; u++) {
		const struct wf_snap_user *usr = &s->users[u];
		uint32_t rank = 0;

		/* Fill from further down the list when a top item is sold out. */
		for (uint32_t i = 0; i < usr->cand_cnt && rank < o->k; i++) {
			const struct wf_snap_cand *c = &s->cands[usr->cand_off + i];
			const struct wf_snap_item *it = &s->items[c->item];
			const char *id = wf_snap_str(s, it->id_off);
			int sold_out = it->flags & WF_SNAP_ITEM_SOLD_OUT;

			/* The rankers' rule; with no appliance running, the snapshot's word. */
			if (shm ? !wf_stock_ok(shm->stock, wf_stock_key(id, it->id_len), sold_out, 0, NULL, 0) : sold_out) {
				skipped++;
				continue;
			}
			csv_field(out, wf_snap_str(s, usr->id_off), usr->id_len);
			fprintf(out, ",%u,", ++rank);
			csv_field(out, id, it->id_len);
			fprintf(out, ",%.6f\n", (double)c->score);
			rows++;
		}
		if (!o->json && (u + 1) % 200000 == 0)
			fprintf(stderr, "\rweftctl: exported %u of %u users", u + 1, s->nusers);
	}
	if (!o->json && s->nusers >= 200000)
		fputc('\n', stderr);
	if (out != stdout && fclose(out) != 0) {
		fprintf(stderr, "weftctl: writing %s failed: %s\n", o->out, strerror(errno));
		wf_snap_close(s);
		wf_shm_detach(shm);
		return 1;
	}
	fprintf(stderr, "weftctl: exported %llu rows for %u users from %s (%llu sold-out items skipped, stock %s)\n",
		(unsigned long long)rows, s->nusers, snap_path, (unsigned long long)skipped,
		shm ? "live" : "from the snapshot");
	wf_snap_close(s);
	wf_shm_detach(shm);
	return 0;
}
