/*
 * checkpoint.c - weft-ranker's periodic checkpoint of its sessions, so a
 * restart loads it and replays only the journal after its LSN (lib/ckpt.h
 * is the file format; STATE/shard-<N>.wfc, STATE: --state, default
 * DIR/rankers).
 *
 * Writing never stops the loop for long: every --checkpoint-interval a
 * checkpoint begins with the shard's applied LSN (ctx->applied_lsn: every
 * event of this shard at or below it is in some session's state, or in
 * the spill store's), then each housekeeping step packs the sessions of
 * the next buckets of the table, about CHUNK bytes, into one SESSIONS
 * section in one of two buffers; a writer thread writes each buffer to
 * STATE/shard-<N>.wfc.tmp, and after END fdatasyncs it, renames it over
 * the previous checkpoint and fsyncs the directory. The loop does no I/O
 * for it (a step only packs, and skips while both buffers wait for the
 * writer). Sessions change while the walk goes on: each record carries
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
#include <time.h>
#include <unistd.h>

#include "lib/ckpt.h"
#include "rankers/ranker_int.h"

#define CHUNK (64u << 10) /* bytes packed per step */

/* A packed section (header, body, padding), handed to the writer. */
struct ckpt_buf {
	uint8_t *p;
	size_t len, cap;
	int full;                /* under mu: packed, not yet written */
};

struct ranker_ckpt {
	char path[WF_PATH_MAX + 32], tmp[WF_PATH_MAX + 40], dir[WF_PATH_MAX];
	int active;              /* a checkpoint is being packed or written */
	uint32_t bucket;         /* next bucket to pack */
	uint64_t lsn, t0_ns, off, sections, sessions;
	uint64_t step_max_ns;    /* the longest step of this checkpoint (the loop's stall: CPU time) */
	uint64_t last_ms;        /* when the last one began (or failed) */
	int next;                /* the buffer the loop packs into next */
	/* The writer thread: writes the full buffers in order, then (finish)
	 * fdatasyncs, renames and fsyncs the directory. bufs[].full, finish,
	 * werr under mu. done: RC1 release in writer_main after result;
	 * AC1 acquire in ckpt_poll. */
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ckpt_buf bufs[2];
	int fd, finish, werr;
	_Atomic int done;
	int result;              /* 0 or -errno (written before done) */
	uint64_t sync_ns;        /* the writer's sync and rename time (written before done) */
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

/* The writer: every write and sync of a checkpoint, off the loop. */
static void *writer_main(void *arg)
{
	struct ranker_ckpt *c = arg;
	uint64_t t0;
	int i = 0, r = 0;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->bufs[i].full && !c->finish)
			pthread_cond_wait(&c->cv, &c->mu);
		if (!c->bufs[i].full)
			break; /* finish, and every buffer written */
		pthread_mutex_unlock(&c->mu);
		if (r == 0)
			r = write_all(c->fd, c->bufs[i].p, c->bufs[i].len);
		pthread_mutex_lock(&c->mu);
		c->bufs[i].full = 0;
		c->werr = r;
		pthread_cond_broadcast(&c->cv);
		i ^= 1;
	}
	pthread_mutex_unlock(&c->mu);
	t0 = wf_now_ns();
	if (r == 0 && c->finish > 0 && fdatasync(c->fd) < 0)
		r = -errno;
	close(c->fd);
	if (r == 0 && c->finish > 0 && rename(c->tmp, c->path) < 0)
		r = -errno;
	if (r == 0 && c->finish > 0)
		r = wf_fsync_dir(c->dir);
	if (r < 0 || c->finish < 0)
		unlink(c->tmp);
	c->result = c->finish < 0 ? -ECANCELED : r;
	c->sync_ns = wf_now_ns() - t0;
	/* RC1: pairs with AC1 in ckpt_poll(). */
	atomic_store_explicit(&c->done, 1, memory_order_release);
	return NULL;
}

static int ckpt_init(struct ranker_ctx *ctx)
{
	struct ranker_ckpt *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	snprintf(c->dir, sizeof(c->dir), "%s", ctx->state_dir);
	snprintf(c->path, sizeof(c->path), "%s/shard-%u.wfc", ctx->state_dir, ctx->shard);
	snprintf(c->tmp, sizeof(c->tmp), "%s/shard-%u.wfc.tmp", ctx->state_dir, ctx->shard);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->fd = -1;
	c->last_ms = wf_wall_ms();
	ctx->ckpt = c;
	return 0;
}

/* Tell the writer to end: finish 1 (sync and rename) or -1 (drop it). */
static void writer_finish(struct ranker_ckpt *c, int how)
{
	pthread_mutex_lock(&c->mu);
	c->finish = how;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* A finished writer: its result. */
static void ckpt_poll(struct ranker_ctx *ctx)
{
	struct ranker_ckpt *c = ctx->ckpt;

	/* AC1: pairs with RC1 in writer_main(). */
	if (!c->active || !atomic_load_explicit(&c->done, memory_order_acquire))
		return;
	pthread_join(c->th, NULL);
	c->active = 0;
	if (c->result == -ECANCELED)
		return; /* dropped, said when it was */
	if (c->result < 0) {
		wf_warn("shard %u: checkpoint %s not written: %s (the previous one stays; retried in %llu s)", ctx->shard,
			c->path, strerror(-c->result), (unsigned long long)(ctx->ckpt_interval_ms / 1000));
		return;
	}
	atomic_store_explicit(&ctx->sc->stats.checkpoint_lsn, c->lsn, memory_order_relaxed); /* stats */
	wf_info("shard %u checkpoint: %llu sessions through lsn %llu, %llu KiB in %.1f ms (the loop's longest step "
		"%.3f ms of CPU; sync and rename %.1f ms)", ctx->shard, (unsigned long long)c->sessions,
		(unsigned long long)c->lsn, (unsigned long long)(c->off >> 10), (double)(wf_now_ns() - c->t0_ns) / 1e6,
		(double)c->step_max_ns / 1e6, (double)c->sync_ns / 1e6);
}

/* CPU time of the calling thread (a step's cost without the time the
 * ranker waited for a core). */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Append a section (header, body, padding) to b. 0 or -ENOMEM. */
static int pack_section(struct ckpt_buf *b, uint32_t type, const void *body, uint64_t len)
{
	size_t need = b->len + sizeof(struct wf_ckpt_sec) + len + wf_ckpt_pad(len);
	struct wf_ckpt_sec s;

	if (need > b->cap) {
		uint8_t *n = realloc(b->p, need);
		if (!n)
			return -ENOMEM;
		b->p = n;
		b->cap = need;
	}
	wf_ckpt_sec_init(&s, type, body, len);
	memcpy(b->p + b->len, &s, sizeof(s));
	if (body != b->p + b->len + sizeof(s))
		memmove(b->p + b->len + sizeof(s), body, len);
	memset(b->p + b->len + sizeof(s) + len, 0, wf_ckpt_pad(len));
	b->len = need;
	return 0;
}

/* Begin a checkpoint: the temp file, its header, the writer. 0 or -errno. */
static int ckpt_begin(struct ranker_ctx *ctx, uint64_t now_ms)
{
	struct ranker_ckpt *c = ctx->ckpt;
	struct wf_ckpt_hdr h;
	int r;

	c->fd = open(c->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (c->fd < 0)
		return -errno;
	c->lsn = ctx->applied_lsn;
	wf_ckpt_hdr_init(&h, ctx->shard, c->lsn, now_ms);
	/* The header and the segment definitions (a few KiB: the page cache). */
	size_t dl = ranker_segs_defs_size(ctx);
	struct ckpt_buf d = { .cap = sizeof(struct wf_ckpt_sec) + dl + 8 };
	r = -ENOMEM;
	if ((d.p = malloc(d.cap))) {
		/* packed in place after its header's room, as the SESSIONS are */
		ranker_segs_defs_pack(ctx, d.p + sizeof(struct wf_ckpt_sec));
		r = pack_section(&d, WF_CKPT_SEGDEFS, d.p + sizeof(struct wf_ckpt_sec), dl);
	}
	if (r == 0)
		r = write_all(c->fd, &h, sizeof(h));
	if (r == 0)
		r = write_all(c->fd, d.p, d.len);
	free(d.p);
	if (r < 0) {
		close(c->fd);
		unlink(c->tmp);
		return r;
	}
	c->t0_ns = wf_now_ns();
	c->bucket = 0;
	c->next = 0;
	c->off = sizeof(h) + d.len;
	c->sections = 1;
	c->sessions = c->step_max_ns = 0;
	c->finish = c->werr = 0;
	c->bufs[0].full = c->bufs[1].full = 0;
	atomic_store_explicit(&c->done, 0, memory_order_relaxed); /* no writer runs now */
	if (pthread_create(&c->th, NULL, writer_main, c) != 0) {
		close(c->fd);
		unlink(c->tmp);
		return -EAGAIN;
	}
	c->active = 1;
	return 0;
}

/* The next buckets, whole, until about CHUNK bytes, into b: one SESSIONS
 * section, packed in place after its header's room. 0 or -ENOMEM. */
static int pack_buckets(struct ranker_ctx *ctx, struct ranker_ckpt *c, struct ckpt_buf *b)
{
	size_t len = 0, at = sizeof(struct wf_ckpt_sec);

	b->len = 0;
	if (b->cap < CHUNK + sizeof(struct wf_ckpt_sec)) {
		uint8_t *n = realloc(b->p, CHUNK * 2);
		if (!n)
			return -ENOMEM;
		b->p = n;
		b->cap = CHUNK * 2;
	}
	while (c->bucket < RANKER_SESSION_TABLE && len < CHUNK) {
		for (const struct ranker_session *s = ctx->sessions[c->bucket]; s; s = s->next) {
			uint32_t n = ranker_session_rec_size(ctx, s);
			if (at + len + n + 8 > b->cap) {
				uint8_t *nb = realloc(b->p, at + len + n + 8 + CHUNK);
				if (!nb)
					return -ENOMEM;
				b->p = nb;
				b->cap = at + len + n + 8 + CHUNK;
			}
			ranker_session_pack(ctx, s, b->p + at + len);
			len += n;
			c->sessions++;
		}
		c->bucket++;
	}
	if (len && pack_section(b, WF_CKPT_SESSIONS, b->p + at, len) < 0)
		return -ENOMEM;
	c->sections += len != 0;
	return 0;
}

int ranker_ckpt_step(struct ranker_ctx *ctx, uint64_t now_ms)
{
	struct ranker_ckpt *c;
	struct ckpt_buf *b;
	uint64_t t0;
	int r, full, werr;

	if (!ctx->ckpt_interval_ms || (!ctx->ckpt && ckpt_init(ctx) < 0))
		return 0;
	c = ctx->ckpt;
	ckpt_poll(ctx);
	if (!c->active) {
		if (now_ms < c->last_ms + ctx->ckpt_interval_ms) /* (now_ms may be a little older than last_ms) */
			return 0;
		c->last_ms = now_ms;
		if ((r = ckpt_begin(ctx, now_ms)) < 0) {
			wf_warn("shard %u: cannot write %s: %s (no checkpoint; retried in %llu s)", ctx->shard, c->tmp,
				strerror(-r), (unsigned long long)(ctx->ckpt_interval_ms / 1000));
			return 0;
		}
	}
	if (c->bucket > RANKER_SESSION_TABLE)
		return 0; /* packed; the writer syncs */
	b = &c->bufs[c->next];
	pthread_mutex_lock(&c->mu);
	full = b->full;
	werr = c->werr;
	pthread_mutex_unlock(&c->mu);
	if (werr < 0) {
		wf_warn("shard %u: checkpoint %s not written: %s (the previous one stays; retried in %llu s)", ctx->shard,
			c->path, strerror(-werr), (unsigned long long)(ctx->ckpt_interval_ms / 1000));
		writer_finish(c, -1);
		c->bucket = RANKER_SESSION_TABLE + 1;
		return 0;
	}
	if (full)
		return 0; /* the writer is behind: next pass */
	t0 = thread_cpu_ns();
	if (pack_buckets(ctx, c, b) < 0)
		goto nomem;
	if (c->bucket == RANKER_SESSION_TABLE) {
		struct wf_ckpt_end e = { .sections = c->sections, .bytes = c->off + b->len };
		if (pack_section(b, WF_CKPT_END, &e, sizeof(e)) < 0)
			goto nomem;
		c->bucket++;
	}
	c->off += b->len;
	pthread_mutex_lock(&c->mu);
	b->full = b->len != 0;
	if (c->bucket > RANKER_SESSION_TABLE)
		c->finish = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	c->next ^= 1;
	c->step_max_ns = WF_MAX(c->step_max_ns, thread_cpu_ns() - t0);
	return c->bucket <= RANKER_SESSION_TABLE;
nomem:
	wf_warn("shard %u: checkpoint %s not written: out of memory (the previous one stays)", ctx->shard, c->path);
	writer_finish(c, -1);
	c->bucket = RANKER_SESSION_TABLE + 1;
	return 0;
}

void ranker_ckpt_fini(struct ranker_ctx *ctx)
{
	struct ranker_ckpt *c = ctx->ckpt;

	if (!c)
		return;
	if (c->active) {
		/* A checkpoint not fully packed is dropped; a packed one ends. */
		if (c->bucket <= RANKER_SESSION_TABLE)
			writer_finish(c, -1);
		pthread_join(c->th, NULL);
	}
	for (int i = 0; i < 2; i++)
		free(c->bufs[i].p);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
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

int ranker_ckpt_load(struct ranker_ctx *ctx, uint64_t *ret_lsn, int *ret_segs)
{
	char path[WF_PATH_MAX + 32];
	struct wf_ckpt_hdr h;
	struct stat st;
	const uint8_t *m, *body;
	uint64_t off = 0, len, n = 0;
	uint32_t type;
	int fd, r, segdefs = 0, segs = 1;

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
		if (type == WF_CKPT_SEGDEFS) {
			/* the definitions its segment states were built under */
			segdefs = 1;
			segs = ranker_segs_defs_match(ctx, body, len);
			continue;
		}
		if (type != WF_CKPT_SESSIONS)
			continue; /* a section of a kind this ranker does not know */
		segs &= segdefs; /* an older checkpoint: no segment state */
		for (uint64_t p = 0; p < len;) {
			const char *id;
			uint32_t idl;
			uint64_t key;
			int k = ranker_session_rec_check(body + p, len - p, &key, &id, &idl);

			if (k <= 0) {
				r = -EBADMSG;
				break;
			}
			/* A state not restored as it was: rebuilt from the history,
			 * and what was announced read from the journal's start. */
			int exact = segs ? 1 : -1;
			if (!table_has(ctx, key, id, idl) &&
			    !ranker_session_unpack(ctx, body + p, ranker_spill_has(ctx, key), &exact)) {
				r = -ENOMEM;
				break;
			}
			segs &= exact == 1;
			ranker_sessions_expire(ctx, 0); /* the budget's evictions only */
			p += (uint64_t)k;
			n++;
		}
	}
	munmap((void *)m, (size_t)st.st_size);
	if (r < 0)
		return r;
	wf_info("shard %u loaded checkpoint %s: %llu sessions through lsn %llu%s", ctx->shard, path,
		(unsigned long long)n, (unsigned long long)h.lsn,
		segs ? "" : " (segment states rebuilt: other definitions or an older checkpoint)");
	ctx->applied_lsn = WF_MAX(ctx->applied_lsn, h.lsn);
	atomic_store_explicit(&ctx->sc->stats.checkpoint_lsn, h.lsn, memory_order_relaxed); /* stats */
	*ret_lsn = h.lsn;
	*ret_segs = segs;
	return 0;
}
