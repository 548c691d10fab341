/*
 * spill.c - weft-ranker's store of evicted sessions. A session the memory
 * budget or the idle TTL evicts is written here (its record: sessions.c)
 * and comes back whole when an event or a query names it again.
 *
 * On disk (STATE: --state, default DIR/rankers): STATE/spill-<shard>-<seq, 8 hex>.wfs, at most two files.
 * Records are appended to the newer; once it holds half of --spill-budget
 * the older one is deleted (the oldest records go first) and a new file
 * begins. The sessions whose newest record was in the deleted file are
 * dropped: counted (STATS spill_dropped), and they start fresh if they
 * return. The files are not fsynced: they survive a process crash (the
 * page cache), and after a power loss a record that fails its checksum is
 * a session that starts fresh (checkpoints and the journal hold it too).
 *
 * In memory: an index, key -> file, offset, length (16 bytes a slot, open
 * addressing, at most half full), counted within the memory budget. At
 * start both files are scanned to rebuild it (sequential reads, bounded by
 * the disk budget). Only the ranker loop calls these.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankers/ranker_int.h"
#include "shm/front.h"

#define SLOT_OFF_BITS 40u
#define SLOT_SEQ_BITS 8u
#define MAX_REC (RANKER_REC_HDR + RANKER_SEG_REC_MAX + 2u * 255u + RANKER_HISTORY_BYTES + 65536u)

/* loc = offset (40 bits) | seq mod 256 (8) | length / 8 (16); 0: empty;
 * key != 0 and loc 0: removed. */
struct spill_slot {
	uint64_t key, loc;
};

struct ranker_spill {
	char dir[WF_PATH_MAX];
	uint32_t shard;
	uint64_t half;                  /* bytes a file takes before the next begins */
	int fd[2];                      /* [0] newer (appended to), [1] older (-1 none) */
	uint32_t seq[2];
	uint64_t size[2];
	uint64_t live[2];               /* index slots pointing into each */
	struct spill_slot *tab;
	uint32_t mask, used;            /* slots; used: keys ever set (removed ones too) */
	uint64_t dropped;
	uint8_t *buf;                   /* MAX_REC: a record written or read */
};

static uint64_t slot_hash(uint64_t key)
{
	return key ^ (key >> 29);
}

static void file_path(const struct ranker_spill *sp, uint32_t seq, char *out, size_t n)
{
	snprintf(out, n, "%s/spill-%u-%08x.wfs", sp->dir, sp->shard, seq);
}

/* Which of the two files seq (mod 256) names: 0, 1, or -1 (deleted). */
static int file_of(const struct ranker_spill *sp, uint64_t loc)
{
	uint32_t s = (uint32_t)(loc >> SLOT_OFF_BITS) & 0xff;

	for (int i = 0; i < 2; i++)
		if (sp->fd[i] >= 0 && (sp->seq[i] & 0xff) == s)
			return i;
	return -1;
}

static uint64_t loc_make(uint32_t seq, uint64_t off, uint32_t len)
{
	return (off & ((1ull << SLOT_OFF_BITS) - 1)) | ((uint64_t)(seq & 0xff) << SLOT_OFF_BITS) |
	       ((uint64_t)(len >> 3) << (SLOT_OFF_BITS + SLOT_SEQ_BITS));
}

static struct spill_slot *slot_find(const struct ranker_spill *sp, uint64_t key)
{
	for (uint32_t i = (uint32_t)slot_hash(key) & sp->mask;; i = (i + 1) & sp->mask) {
		struct spill_slot *e = &sp->tab[i];
		if (e->key == key)
			return e;
		if (!e->key)
			return NULL;
	}
}

/* Rebuild the table at twice the live slots' count (those into a deleted
 * file are gone). 0 or -ENOMEM. */
static int tab_grow(struct ranker_spill *sp)
{
	uint32_t n = 1024;
	struct spill_slot *t;

	while (n < 4 * (sp->live[0] + sp->live[1] + 1))
		n *= 2;
	t = calloc(n, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; sp->tab && i <= sp->mask; i++) {
		struct spill_slot *e = &sp->tab[i];
		if (!e->key || !e->loc || file_of(sp, e->loc) < 0)
			continue;
		for (uint32_t j = (uint32_t)slot_hash(e->key) & (n - 1);; j = (j + 1) & (n - 1))
			if (!t[j].key) {
				t[j] = *e;
				break;
			}
	}
	free(sp->tab);
	sp->tab = t;
	sp->used = (uint32_t)(sp->live[0] + sp->live[1]);
	sp->mask = n - 1;
	return 0;
}

/* Point key at loc (file i), replacing what it pointed at. 0 or -ENOMEM. */
static int slot_set(struct ranker_spill *sp, uint64_t key, uint64_t loc, int i)
{
	struct spill_slot *e;

	if (2ull * (sp->used + 1) > sp->mask + 1ull && tab_grow(sp) < 0)
		return -ENOMEM;
	e = slot_find(sp, key);
	if (e && e->loc && file_of(sp, e->loc) >= 0)
		sp->live[file_of(sp, e->loc)]--;
	if (!e) {
		for (uint32_t j = (uint32_t)slot_hash(key) & sp->mask;; j = (j + 1) & sp->mask)
			if (!sp->tab[j].key) {
				e = &sp->tab[j];
				break;
			}
		e->key = key;
		sp->used++;
	}
	e->loc = loc;
	sp->live[i]++;
	return 0;
}

static int file_create(struct ranker_spill *sp, uint32_t seq)
{
	char path[WF_PATH_MAX + 64];
	int fd;

	file_path(sp, seq, path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

/* The newer file holds half the budget: delete the older (its sessions are
 * dropped), the newer becomes the older, a new file begins. */
static int rotate(struct ranker_spill *sp)
{
	char path[WF_PATH_MAX + 64];
	int fd = file_create(sp, sp->seq[0] + 1);

	if (fd < 0)
		return fd;
	if (sp->fd[1] >= 0) {
		close(sp->fd[1]);
		file_path(sp, sp->seq[1], path, sizeof(path));
		unlink(path);
		sp->dropped += sp->live[1];
	}
	sp->fd[1] = sp->fd[0];
	sp->seq[1] = sp->seq[0];
	sp->size[1] = sp->size[0];
	sp->live[1] = sp->live[0];
	sp->fd[0] = fd;
	sp->seq[0]++;
	sp->size[0] = 0;
	sp->live[0] = 0;
	/* Slots into the deleted file read as removed (file_of() < 0): the
	 * table is rebuilt without them when it next grows; now, if they are
	 * most of it, so that it does not keep growing with dead keys. */
	if (sp->used > 2 * (sp->live[0] + sp->live[1]) + 1024)
		return tab_grow(sp) < 0 ? -ENOMEM : 0;
	return 0;
}

/* Index every valid record of file i (a torn or corrupt one ends it),
 * reading MAX_REC bytes at a time. */
static void file_scan(struct ranker_spill *sp, int i)
{
	uint64_t off = 0; /* file offset of buf[0] */
	size_t have = 0, pos = 0;

	for (;;) {
		const char *id;
		uint32_t idl;
		uint64_t key;
		ssize_t got;
		int n = ranker_session_rec_check(sp->buf + pos, have - pos, &key, &id, &idl);

		if (n > 0) {
			if (slot_set(sp, key, loc_make(sp->seq[i], off + pos, (uint32_t)n), i) < 0)
				break;
			pos += (size_t)n;
			continue;
		}
		if (n < 0)
			break;
		memmove(sp->buf, sp->buf + pos, have - pos);
		off += pos;
		have -= pos;
		pos = 0;
		got = pread(sp->fd[i], sp->buf + have, MAX_REC - have, (off_t)(off + have));
		if (got <= 0)
			break;
		have += (size_t)got;
	}
	sp->size[i] = off + pos;
	/* A torn tail goes: appends follow the last record (on failure the
	 * next append overwrites it at size[i] all the same). */
	if (ftruncate(sp->fd[i], (off_t)sp->size[i]) < 0)
		return;
}

/* The two newest spill files of the shard (seq, 0: none); older ones are
 * deleted (a crash between rotate()'s steps). */
static void find_files(struct ranker_spill *sp, uint32_t ret[2])
{
	char prefix[32], path[WF_PATH_MAX + 64];
	DIR *d = opendir(sp->dir);
	struct dirent *e;
	size_t pl;

	ret[0] = ret[1] = 0;
	if (!d)
		return;
	pl = (size_t)snprintf(prefix, sizeof(prefix), "spill-%u-", sp->shard);
	while ((e = readdir(d))) {
		unsigned v;
		char tail[8];
		if (strncmp(e->d_name, prefix, pl) != 0 || sscanf(e->d_name + pl, "%8x%7s", &v, tail) != 2 ||
		    strcmp(tail, ".wfs") != 0 || v == 0)
			continue;
		if (v > ret[0]) {
			ret[1] = ret[0];
			ret[0] = v;
		} else if (v > ret[1]) {
			ret[1] = v;
		}
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		unsigned v;
		char tail[8];
		if (strncmp(e->d_name, prefix, pl) == 0 && sscanf(e->d_name + pl, "%8x%7s", &v, tail) == 2 &&
		    strcmp(tail, ".wfs") == 0 && v != ret[0] && v != ret[1]) {
			file_path(sp, v, path, sizeof(path));
			unlink(path);
		}
	}
	closedir(d);
}

static void spill_free(struct ranker_spill *sp)
{
	for (int i = 0; i < 2; i++)
		if (sp->fd[i] >= 0)
			close(sp->fd[i]);
	free(sp->tab);
	free(sp->buf);
	free(sp);
}

int ranker_spill_open(struct ranker_ctx *ctx)
{
	struct ranker_spill *sp = calloc(1, sizeof(*sp));
	char path[WF_PATH_MAX + 64];
	uint32_t seqs[2];
	int r;

	if (!sp || !(sp->buf = malloc(MAX_REC))) {
		free(sp);
		return -ENOMEM;
	}
	snprintf(sp->dir, sizeof(sp->dir), "%s", ctx->state_dir);
	sp->shard = ctx->shard;
	sp->half = WF_MAX(ctx->spill_budget / 2, (uint64_t)MAX_REC);
	sp->fd[0] = sp->fd[1] = -1;
	if (tab_grow(sp) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	find_files(sp, seqs);
	/* The older first: a key's newest record wins. */
	for (int i = 1; i >= 0; i--) {
		if (!seqs[i])
			continue;
		file_path(sp, seqs[i], path, sizeof(path));
		sp->fd[i] = open(path, O_RDWR | O_CLOEXEC);
		sp->seq[i] = seqs[i];
		if (sp->fd[i] >= 0)
			file_scan(sp, i);
	}
	if (sp->fd[0] < 0) {
		sp->seq[0] = seqs[0] + 1;
		if ((sp->fd[0] = file_create(sp, sp->seq[0])) < 0) {
			r = sp->fd[0];
			goto fail;
		}
	}
	/* The live-session filter was zeroed at start: the sessions held here
	 * are ours (ingest must not answer them as sessions with no state). */
	for (uint32_t i = 0; i <= sp->mask; i++)
		if (sp->tab[i].key && sp->tab[i].loc && file_of(sp, sp->tab[i].loc) >= 0)
			wf_front_live_add(ctx->live, sp->tab[i].key, +1);
	ctx->spill = sp;
	return 0;
fail:
	spill_free(sp);
	return r;
}

void ranker_spill_close(struct ranker_ctx *ctx)
{
	if (ctx->spill)
		spill_free(ctx->spill);
	ctx->spill = NULL;
}

int ranker_spill_put(struct ranker_ctx *ctx, const struct ranker_session *s)
{
	struct ranker_spill *sp = ctx->spill;
	uint32_t n = ranker_session_rec_size(ctx, s);
	struct spill_slot *e;
	ssize_t w;

	if (n > MAX_REC)
		goto fail;
	if (sp->size[0] + n > sp->half && sp->size[0] > 0 && rotate(sp) < 0)
		goto fail;
	ranker_session_pack(ctx, s, sp->buf);
	w = pwrite(sp->fd[0], sp->buf, n, (off_t)sp->size[0]);
	if (w != (ssize_t)n)
		goto fail; /* a full disk: the session is not kept */
	if (slot_set(sp, s->key, loc_make(sp->seq[0], sp->size[0], n), 0) < 0)
		goto fail;
	sp->size[0] += n;
	return 0;
fail:
	/* An older record of it must not come back in its place. */
	if ((e = slot_find(sp, s->key)) && e->loc) {
		if (file_of(sp, e->loc) >= 0)
			sp->live[file_of(sp, e->loc)]--;
		e->loc = 0;
	}
	return -EIO;
}

int ranker_spill_get(struct ranker_ctx *ctx, uint64_t key, const char *id, uint32_t len, const uint8_t **ret_p)
{
	struct ranker_spill *sp = ctx->spill;
	struct spill_slot *e = slot_find(sp, key);
	uint64_t off;
	uint32_t n, idl;
	const char *rid;
	uint64_t rkey;
	int i;

	if (!e || !e->loc || (i = file_of(sp, e->loc)) < 0)
		return -ENOENT;
	off = e->loc & ((1ull << SLOT_OFF_BITS) - 1);
	n = (uint32_t)(e->loc >> (SLOT_OFF_BITS + SLOT_SEQ_BITS)) << 3;
	if (pread(sp->fd[i], sp->buf, n, (off_t)off) != (ssize_t)n ||
	    ranker_session_rec_check(sp->buf, n, &rkey, &rid, &idl) != (int)n)
		return -EIO;
	if (rkey != key || idl != len || memcmp(rid, id, len) != 0)
		return -ENOENT; /* another id with the same hash */
	*ret_p = sp->buf;
	return 0;
}

int ranker_spill_has(const struct ranker_ctx *ctx, uint64_t key)
{
	const struct spill_slot *e;

	if (!ctx->spill)
		return 0;
	e = slot_find(ctx->spill, key);
	return e && e->loc && file_of(ctx->spill, e->loc) >= 0;
}

uint64_t ranker_spill_index_bytes(const struct ranker_ctx *ctx)
{
	return ctx->spill ? (ctx->spill->mask + 1ull) * sizeof(struct spill_slot) : 0;
}

uint64_t ranker_spill_dropped(const struct ranker_ctx *ctx)
{
	return ctx->spill ? ctx->spill->dropped : 0;
}
