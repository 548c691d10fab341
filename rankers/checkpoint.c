/*
 * checkpoint.c - weft-ranker's periodic checkpoint of its sessions, so a
 * restart loads it and replays only the journal after its LSN (lib/ckpt.h
 * is the file format; STATE/shard-<N>.wfc, STATE: --state, default
 * DIR/rankers).
 *
 * Writing never stops the loop for long: every --checkpoint-interval a
 * checkpoint begins with the shard's applied LSN (ctx->applied_lsn: every
 * event of this shard at or below it is in some session's state, or in
 * the spill store's), then each housekeeping pass packs the sessions of
 * the next buckets of the table, about CHUNK bytes, into one SESSIONS
 * section and write()s it to STATE/shard-<N>.wfc.tmp (the page cache);
 * the last pass writes END and hands the file to a helper thread that
 * fdatasyncs it, renames it over the previous checkpoint and fsyncs the
 * directory. Sessions change while the walk goes on: each record carries
 * its session's own LSN, and the replay after the checkpoint's LSN skips
 * an event at or below it (ranker_event_lsn), so a session written late
 * (newer than the checkpoint's LSN) is not applied twice, and one created
 * or evicted after its bucket was written is in the journal after that
 * LSN or in the spill store.
 *
 * Loading verifies the whole file first (every section's checksum, END);
 * a corrupt or truncated checkpoint loads nothing and the ranker replays
 * the whole journal (ranker.c says so in its log).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/ckpt.h"
#include "rankers/ranker_int.h"

#define CHUNK (128u << 10) /* bytes packed per housekeeping pass (then one write) */

struct ranker_ckpt {
	char path[WF_PATH_MAX + 32], tmp[WF_PATH_MAX + 40], dir[WF_PATH_MAX];
	int fd;                  /* the temp file being written; -1 none */
	uint32_t bucket;         /* next bucket to pack */
	uint64_t lsn, t0_ns, off, sections, sessions;
	uint64_t last_ms;        /* when the last one began (or failed) */
	uint8_t *buf;
	size_t cap;
	/* The helper thread syncing and renaming a finished file. done:
	 * RC1 release in sync_main after result; AC1 acquire in ckpt_poll. */
	pthread_t th;
	int syncing;
	_Atomic int done;
	int result;              /* 0 or -errno (written before done) */
	uint64_t sync_ns;        /* the helper's time (written before done) */
};

static int write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p = (const uint8_t *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* The helper: make the finished temp file the checkpoint. */
static void *sync_main(void *arg)
{
	struct ranker_ckpt *c = arg;
	uint64_t t0 = wf_now_ns();
	int r = 0;

	if (fdatasync(c->fd) < 0)
		r = -errno;
	close(c->fd);
	if (r == 0 && rename(c->tmp, c->path) < 0)
		r = -errno;
	if (r == 0)
		r = fsync_dir(c->dir);
	if (r < 0)
		unlink(c->tmp);
	c->result = r;
	c->sync_ns = wf_now_ns() - t0;
	/* RC1: pairs with AC1 in ckpt_poll(). */
	atomic_store_explicit(&c->done, 1, memory_order_release);
	return NULL;
}

static int ckpt_init(struct ranker_ctx *ctx)
{
	struct ranker_ckpt *c = calloc(1, sizeof(*c));

	if (!c || !(c->buf = malloc(c->cap = CHUNK + 256u * 1024))) {
		free(c);
		return -ENOMEM;
	}
	snprintf(c->dir, sizeof(c->dir), "%s", ctx->state_dir);
	snprintf(c->path, sizeof(c->path), "%s/shard-%u.wfc", ctx->state_dir, ctx->shard);
	snprintf(c->tmp, sizeof(c->tmp), "%s/shard-%u.wfc.tmp", ctx->state_dir, ctx->shard);
	c->fd = -1;
	c->last_ms = wf_wall_ms();
	ctx->ckpt = c;
	return 0;
}

static void ckpt_abort(struct ranker_ctx *ctx, int err)
{
	struct ranker_ckpt *c = ctx->ckpt;

	wf_warn("shard %u: checkpoint %s not written: %s (the previous one stays; retried in %llu s)", ctx->shard,
		c->path, strerror(-err), (unsigned long long)(ctx->ckpt_interval_ms / 1000));
	close(c->fd);
	unlink(c->tmp);
	c->fd = -1;
}

static int section_write(struct ranker_ckpt *c, uint32_t type, const void *body, uint64_t len)
{
	static const uint8_t zeros[8];
	struct wf_ckpt_sec s;
	int r;

	wf_ckpt_sec_init(&s, type, body, len);
	if ((r = write_all(c->fd, &s, sizeof(s))) < 0 || (r = write_all(c->fd, body, len)) < 0 ||
	    (r = write_all(c->fd, zeros, wf_ckpt_pad(len))) < 0)
		return r;
	c->off += sizeof(s) + len + wf_ckpt_pad(len);
	return 0;
}

/* A finished helper: its result. */
static void ckpt_poll(struct ranker_ctx *ctx)
{
	struct ranker_ckpt *c = ctx->ckpt;

	/* AC1: pairs with RC1 in sync_main(). */
	if (!c->syncing || !atomic_load_explicit(&c->done, memory_order_acquire))
		return;
	pthread_join(c->th, NULL);
	c->syncing = 0;
	c->fd = -1;
	if (c->result < 0) {
		wf_warn("shard %u: checkpoint %s not written: %s (the previous one stays)", ctx->shard, c->path,
			strerror(-c->result));
		return;
	}
	atomic_store_explicit(&ctx->sc->stats.checkpoint_lsn, c->lsn, memory_order_relaxed); /* stats */
	wf_info("shard %u checkpoint: %llu sessions through lsn %llu, %llu KiB, written in %.1f ms, synced in %.1f ms",
		ctx->shard, (unsigned long long)c->sessions, (unsigned long long)c->lsn,
		(unsigned long long)(c->off >> 10), (double)(wf_now_ns() - c->t0_ns - c->sync_ns) / 1e6,
		(double)c->sync_ns / 1e6);
}

int ranker_ckpt_step(struct ranker_ctx *ctx, uint64_t now_ms)
{
	struct ranker_ckpt *c;
	size_t len = 0;
	int r;

	if (!ctx->ckpt_interval_ms || (!ctx->ckpt && ckpt_init(ctx) < 0))
		return 0;
	c = ctx->ckpt;
	ckpt_poll(ctx);
	if (c->syncing)
		return 0;
	if (c->fd < 0) {
		struct wf_ckpt_hdr h;
		if (now_ms - c->last_ms < ctx->ckpt_interval_ms)
			return 0;
		c->last_ms = now_ms;
		c->fd = open(c->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (c->fd < 0) {
			wf_warn("shard %u: cannot create %s: %s (no checkpoint; retried in %llu s)", ctx->shard, c->tmp,
				strerror(errno), (unsigned long long)(ctx->ckpt_interval_ms / 1000));
			return 0;
		}
		c->lsn = ctx->applied_lsn;
		c->t0_ns = wf_now_ns();
		c->bucket = 0;
		c->sections = c->sessions = 0;
		wf_ckpt_hdr_init(&h, ctx->shard, c->lsn, now_ms);
		if ((r = write_all(c->fd, &h, sizeof(h))) < 0) {
			ckpt_abort(ctx, r);
			return 0;
		}
		c->off = sizeof(h);
	}
	/* The next buckets, whole, until about CHUNK bytes. */
	while (c->bucket < RANKER_SESSION_TABLE && len < CHUNK) {
		for (const struct ranker_session *s = ctx->sessions[c->bucket]; s; s = s->next) {
			uint32_t n = ranker_session_rec_size(s);
			if (len + n > c->cap) {
				uint8_t *nb = realloc(c->buf, c->cap = len + n + CHUNK);
				if (!nb) {
					ckpt_abort(ctx, -ENOMEM);
					return 0;
				}
				c->buf = nb;
			}
			ranker_session_pack(s, c->buf + len);
			len += n;
			c->sessions++;
		}
		c->bucket++;
	}
	if (len) {
		if ((r = section_write(c, WF_CKPT_SESSIONS, c->buf, len)) < 0) {
			ckpt_abort(ctx, r);
			return 0;
		}
		c->sections++;
	}
	if (c->bucket == RANKER_SESSION_TABLE) {
		struct wf_ckpt_end e = { .sections = c->sections, .bytes = c->off };
		if ((r = section_write(c, WF_CKPT_END, &e, sizeof(e))) < 0) {
			ckpt_abort(ctx, r);
			return 0;
		}
		atomic_store_explicit(&c->done, 0, memory_order_relaxed); /* no helper runs now */
		if (pthread_create(&c->th, NULL, sync_main, c) != 0) {
			ckpt_abort(ctx, -EAGAIN);
			return 0;
		}
		c->syncing = 1;
		return 0;
	}
	return 1;
}

void ranker_ckpt_fini(struct ranker_ctx *ctx)
{
	struct ranker_ckpt *c = ctx->ckpt;

	if (!c)
		return;
	if (c->syncing) {
		pthread_join(c->th, NULL);
		c->syncing = 0;
	} else if (c->fd >= 0) {
		close(c->fd);
		unlink(c->tmp);
	}
	free(c->buf);
	free(c);
	ctx->ckpt = NULL;
}

/* The table (not the spill store) holds the session key, id. Either
 * record of a session both keep is right: its events after the
 * checkpoint's LSN are replayed onto the checkpoint's one. */
static int table_has(const struct ranker_ctx *ctx, uint64_t key, const char *id, uint32_t len)
{
	for (const struct ranker_session *s = ctx->sessions[key & (RANKER_SESSION_TABLE - 1)]; s; s = s->next)
		if (s->key == key && s->id_len == len && memcmp(s->id, id, len) == 0)
			return 1;
	return 0;
}

int ranker_ckpt_load(struct ranker_ctx *ctx, uint64_t *ret_lsn)
{
	char path[WF_PATH_MAX + 32];
	struct wf_ckpt_hdr h;
	struct stat st;
	const uint8_t *m, *body;
	uint64_t off = 0, len, n = 0;
	uint32_t type;
	int fd, r;

	snprintf(path, sizeof(path), "%s/shard-%u.wfc", ctx->state_dir, ctx->shard);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size == 0) {
		r = st.st_size == 0 ? -EBADMSG : -errno;
		close(fd);
		return r;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -errno;
	r = wf_ckpt_verify(m, (size_t)st.st_size, &h);
	if (r == 0 && h.shard != ctx->shard)
		r = -EBADMSG;
	while (r == 0 && wf_ckpt_next(m, (size_t)st.st_size, &off, &type, &body, &len)) {
		if (type != WF_CKPT_SESSIONS)
			continue; /* a section of a kind this ranker does not know */
		for (uint64_t p = 0; p < len;) {
			const char *id;
			uint32_t idl;
			uint64_t key;
			int k = ranker_session_rec_check(body + p, len - p, &key, &id, &idl);

			if (k <= 0) {
				r = -EBADMSG;
				break;
			}
			if (!table_has(ctx, key, id, idl) && !ranker_session_unpack(ctx, body + p, ranker_spill_has(ctx, key))) {
				r = -ENOMEM;
				break;
			}
			ranker_sessions_expire(ctx, 0); /* the budget's evictions only */
			p += (uint64_t)k;
			n++;
		}
	}
	munmap((void *)m, (size_t)st.st_size);
	if (r < 0)
		return r;
	wf_info("shard %u loaded checkpoint %s: %llu sessions through lsn %llu", ctx->shard, path,
		(unsigned long long)n, (unsigned long long)h.lsn);
	ctx->applied_lsn = WF_MAX(ctx->applied_lsn, h.lsn);
	atomic_store_explicit(&ctx->sc->stats.checkpoint_lsn, h.lsn, memory_order_relaxed); /* stats */
	*ret_lsn = h.lsn;
	return 0;
}
