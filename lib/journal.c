/*
 * journal.c - append-only event journal with group commit and recovery
 * (see journal.h). Written by weft-ingest; read by weft-ranker (replay),
 * weft-batch (nightly) and the fuzz target. Linked through libweft.
 */
#include "lib/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH32_state_t on the stack */
#include <xxhash.h>

#include "lib/ckpt.h"
#include "lib/util.h"

#define SEG_MAGIC 0x314c4e4a54464557ull /* "WEFTJNL1" */
#define SEG_HDR WF_JOURNAL_SEG_HDR
#define REC_HDR 32u
#define DEFAULT_SEGMENT (64ull << 20)
#define ZERO_AHEAD (4ull << 20) /* zeros written past the data, in fsync mode */

struct seg_hdr {
	uint64_t magic;
	uint64_t first_lsn;
	uint64_t created_ms;
	uint32_t version;
	uint32_t xxh32; /* of the first 28 bytes */
};
_Static_assert(sizeof(struct seg_hdr) == SEG_HDR, "segment header");

struct rec_hdr {
	uint32_t len; /* bytes after this header, before padding */
	uint32_t xxh32;
	uint64_t lsn;
	uint64_t ts_ms;
	uint16_t shard;
	uint16_t argc;
	uint16_t kind;     /* enum wf_journal_kind */
	uint16_t reserved; /* 0 */
};
_Static_assert(sizeof(struct rec_hdr) == REC_HDR, "record header");

struct journal_flight {
	struct wf_buf buf; /* the batch written */
	uint64_t last;     /* its last LSN */
	int done;          /* ended, not yet retired (an older one has not) */
};

struct wf_journal {
	char dir[1024];
	struct wf_journal_opts opts;
	int fd;              /* current segment */
	uint64_t seg_size;   /* bytes written or in flight in the current segment */
	uint64_t zeroed_end; /* the segment file holds written zeros up to here */
	int no_zero;         /* zeroing ahead failed once (e.g. ENOSPC): append */
	uint64_t next_lsn;
	uint64_t durable_lsn;
	struct wf_buf pending;   /* appended, not yet flushing */
	uint64_t pending_last;   /* last LSN in pending */
	/* Flushes begun and not yet retired: ids [fl_head, fl_tail), each in
	 * flight[id % WF_JOURNAL_FLIGHTS_MAX]. They may end in any order; the
	 * durable LSN moves only over the oldest ones that ended. */
	struct journal_flight flight[WF_JOURNAL_FLIGHTS_MAX];
	uint64_t fl_head, fl_tail;
	int failed;
};

static uint32_t rec_checksum(const uint8_t *rec, uint32_t total_unpadded)
{
	XXH32_state_t st;
	struct rec_hdr h;

	memcpy(&h, rec, sizeof(h));
	h.xxh32 = 0;
	XXH32_reset(&st, 0x77656674);
	XXH32_update(&st, &h, sizeof(h));
	XXH32_update(&st, rec + REC_HDR, total_unpadded - REC_HDR);
	return XXH32_digest(&st);
}

int wf_journal_decode(const uint8_t *buf, size_t len, struct wf_journal_rec *rec)
{
	struct rec_hdr h;
	uint64_t total;
	const uint8_t *lens, *data, *end;

	if (len < REC_HDR)
		return 0;
	memcpy(&h, buf, sizeof(h));
	if (h.len == 0 && h.lsn == 0)
		return -EBADMSG; /* zero fill: preallocated or torn */
	if (h.len > WF_JOURNAL_MAX_RECORD || h.argc > WF_JOURNAL_MAX_ARGS || h.reserved != 0)
		return -EBADMSG;
	total = WF_ALIGN_UP((uint64_t)REC_HDR + h.len, 8);
	if (len < total)
		return 0;
	if (rec_checksum(buf, REC_HDR + h.len) != h.xxh32)
		return -EBADMSG;
	if ((uint64_t)h.argc * 4 > h.len)
		return -EBADMSG;
	lens = buf + REC_HDR;
	data = lens + 4u * h.argc;
	end = buf + REC_HDR + h.len;
	rec->lsn = h.lsn;
	rec->ts_ms = h.ts_ms;
	rec->shard = h.shard;
	rec->kind = h.kind;
	rec->argc = h.argc;
	for (uint32_t i = 0; i < h.argc; i++) {
		uint32_t l;
		memcpy(&l, lens + 4u * i, 4);
		if (l > (uint64_t)(end - data))
			return -EBADMSG;
		rec->argv[i] = (const char *)data;
		rec->argl[i] = l;
		data += l;
	}
	if (data != end)
		return -EBADMSG;
	return (int)total;
}

/* ---- segments ---- */

static int seg_name_lsn(const char *name, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (strlen(name) != 20 || strcmp(name + 16, ".wfj") != 0)
		return -EINVAL;
	v = strtoull(name, &end, 16);
	if (end != name + 16)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int wf_journal_segments(const char *dir, uint64_t **ret, size_t *ret_n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		uint64_t lsn;
		if (seg_name_lsn(e->d_name, &lsn) < 0)
			continue;
		if (n == cap) {
			uint64_t *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = lsn;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_u64);
	*ret = v;
	*ret_n = n;
	return 0;
}

void wf_journal_segment_path(char *out, size_t n, const char *dir, uint64_t lsn)
{
	snprintf(out, n, "%s/%016llx.wfj", dir, (unsigned long long)lsn);
}

/*
 * Zero ahead (fsync mode). fdatasync after an append that grows the file
 * must also commit the new size, an ext4 journal commit each time; after
 * an overwrite of blocks already written it flushes only the data: about
 * half the time per flush here (append 190-230 us, overwrite 113-116 us on
 * this VM's ext4). So the writer keeps ZERO_AHEAD bytes of written zeros
 * past the data and writes records over them; the next fdatasync makes the
 * zeros durable with the batch. A zero record header reads as the end of
 * the data (wf_journal_decode), so recovery and readers of the newest
 * segment stop there as at a torn tail, and a segment is cut back to its
 * data before the next one is created, so no older segment has a zero
 * tail. A failure to zero (a full disk) only turns this off.
 */
static void seg_zero_ahead(struct wf_journal *j, uint64_t need)
{
	static const uint8_t zeros[64 << 10];
	struct iovec iov[64];
	/* Not past the segment's end: a roll cuts what lies beyond the data. */
	uint64_t from = WF_MAX(j->zeroed_end, j->seg_size),
		 to = WF_MIN(need + ZERO_AHEAD, WF_MAX(need, j->opts.segment_bytes));

	for (size_t i = 0; i < WF_ARRAY_SIZE(iov); i++)
		iov[i] = (struct iovec){ (void *)zeros, sizeof(zeros) };
	while (from < to) {
		uint64_t n = WF_MIN(to - from, (uint64_t)sizeof(zeros) * WF_ARRAY_SIZE(iov));
		int cnt = (int)((n + sizeof(zeros) - 1) / sizeof(zeros));
		ssize_t w;

		iov[cnt - 1].iov_len = n - (uint64_t)(cnt - 1) * sizeof(zeros);
		w = pwritev(j->fd, iov, cnt, (off_t)from);
		iov[cnt - 1].iov_len = sizeof(zeros);
		if (w <= 0) {
			j->no_zero = 1;
			return;
		}
		from += (uint64_t)w;
		j->zeroed_end = from;
	}
}

/* Cut the current segment's zero tail off, durably, before it stops being
 * the newest (readers take a bad record in an older segment for corruption). */
static int seg_cut_zero_tail(struct wf_journal *j)
{
	if (j->fd < 0 || j->zeroed_end <= j->seg_size)
		return 0;
	if (ftruncate(j->fd, (off_t)j->seg_size) < 0 || fsync(j->fd) < 0) /* once a segment: fsync, size and all */
		return -errno;
	j->zeroed_end = j->seg_size;
	return 0;
}

static int seg_create(struct wf_journal *j, uint64_t first_lsn)
{
	char path[1200];
	struct seg_hdr h = { .magic = SEG_MAGIC, .first_lsn = first_lsn, .created_ms = wf_wall_ms(), .version = 1 };
	int fd, r;

	if ((r = seg_cut_zero_tail(j)) < 0)
		return r;
	h.xxh32 = XXH32(&h, offsetof(struct seg_hdr, xxh32), 0);
	wf_journal_segment_path(path, sizeof(path), j->dir, first_lsn);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || fdatasync(fd) < 0) {
		int e = errno ? -errno : -EIO;
		close(fd);
		unlink(path);
		return e;
	}
	wf_fsync_dir(j->dir);
	if (j->fd >= 0)
		close(j->fd);
	j->fd = fd;
	j->seg_size = SEG_HDR;
	j->zeroed_end = SEG_HDR;
	return 0;
}

/* Scan a segment file: last valid lsn and the end offset of valid data. */
static int seg_scan(const char *path, uint64_t *ret_last_lsn, uint64_t *ret_end, uint64_t *ret_first)
{
	char *data;
	size_t len;
	struct seg_hdr h;
	uint64_t off = SEG_HDR, last = 0;
	int r = wf_read_file(path, &data, &len);
	struct wf_journal_rec rec; /* the caller's stack: recovery may run in several threads */

	if (r < 0)
		return r;
	if (len < SEG_HDR) {
		free(data);
		return -ENODATA;
	}
	memcpy(&h, data, sizeof(h));
	if (h.magic != SEG_MAGIC || h.xxh32 != XXH32(&h, offsetof(struct seg_hdr, xxh32), 0)) {
		free(data);
		return -ENODATA;
	}
	while (off < len) {
		int n = wf_journal_decode((uint8_t *)data + off, len - off, &rec);
		if (n <= 0)
			break;
		last = rec.lsn;
		off += (uint64_t)n;
	}
	free(data);
	*ret_last_lsn = last;
	*ret_end = off;
	*ret_first = h.first_lsn;
	return 0;
}

int wf_journal_open(const char *dir, const struct wf_journal_opts *opts, struct wf_journal **ret, char *err,
		    size_t errlen)
{
	struct wf_journal *j;
	uint64_t *segs = NULL;
	size_t nsegs = 0;
	int r;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(err, errlen, "cannot create journal directory %s: %s", dir, strerror(-r));
		return r;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	snprintf(j->dir, sizeof(j->dir), "%s", dir);
	j->fd = -1;
	j->opts.segment_bytes = opts && opts->segment_bytes ? opts->segment_bytes : DEFAULT_SEGMENT;
	j->opts.durability = opts ? opts->durability : WF_JOURNAL_FSYNC;
	j->opts.flights = opts && opts->flights ? WF_MIN(opts->flights, WF_JOURNAL_FLIGHTS_MAX) : WF_JOURNAL_FLIGHTS;
	j->next_lsn = 1;

	r = wf_journal_segments(dir, &segs, &nsegs);
	if (r < 0) {
		snprintf(err, errlen, "cannot list journal directory %s: %s", dir, strerror(-r));
		goto fail;
	}
	/* Newest segment with a valid header: recover its tail. A newest
	 * segment whose header never made it to disk is removed. */
	while (nsegs > 0) {
		char path[1200];
		uint64_t last = 0, end = 0, first = 0;

		wf_journal_segment_path(path, sizeof(path), dir, segs[nsegs - 1]);
		r = seg_scan(path, &last, &end, &first);
		if (r == -ENODATA) {
			unlink(path);
			nsegs--;
			continue;
		}
		if (r < 0) {
			snprintf(err, errlen, "cannot read journal segment %s: %s", path, strerror(-r));
			goto fail;
		}
		j->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (j->fd < 0 || ftruncate(j->fd, (off_t)end) < 0 || fdatasync(j->fd) < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot recover journal segment %s: %s", path, strerror(-r));
			goto fail;
		}
		j->seg_size = end;
		j->zeroed_end = end;
		j->next_lsn = last ? last + 1 : first;
		break;
	}
	if (j->fd < 0) {
		r = seg_create(j, j->next_lsn);
		if (r < 0) {
			snprintf(err, errlen, "cannot create a journal segment in %s: %s", dir, strerror(-r));
			goto fail;
		}
	}
	j->durable_lsn = j->next_lsn - 1;
	free(segs);
	*ret = j;
	return 0;
fail:
	free(segs);
	wf_journal_close(j);
	return r;
}

void wf_journal_close(struct wf_journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	wf_buf_fini(&j->pending);
	for (uint32_t i = 0; i < WF_JOURNAL_FLIGHTS_MAX; i++)
		wf_buf_fini(&j->flight[i].buf);
	free(j);
}

int wf_journal_append(struct wf_journal *j, uint64_t ts_ms, uint16_t shard, uint32_t argc, const char *const *argv,
		      const uint32_t *argl, uint64_t *ret_lsn)
{
	return wf_journal_append_kind(j, WF_JREC_EVENT, ts_ms, shard, argc, argv, argl, ret_lsn);
}

int wf_journal_append_kind(struct wf_journal *j, uint16_t kind, uint64_t ts_ms, uint16_t shard, uint32_t argc,
			   const char *const *argv, const uint32_t *argl, uint64_t *ret_lsn)
{
	uint64_t body = 4ull * argc;
	struct rec_hdr h;
	size_t start;
	uint8_t *p;
	int r;

	if (kind >= WF_JREC_KINDS)
		return -EINVAL;
	if (argc > WF_JOURNAL_MAX_ARGS)
		return -E2BIG;
	for (uint32_t i = 0; i < argc; i++)
		body += argl[i];
	if (body > WF_JOURNAL_MAX_RECORD)
		return -E2BIG;
	r = wf_buf_reserve(&j->pending, WF_ALIGN_UP(REC_HDR + body, 8) + 1);
	if (r < 0)
		return r;
	start = j->pending.len;
	p = (uint8_t *)j->pending.data + start;
	h = (struct rec_hdr){ .len = (uint32_t)body, .lsn = j->next_lsn, .ts_ms = ts_ms, .shard = shard,
			      .argc = (uint16_t)argc, .kind = kind };
	memcpy(p, &h, sizeof(h));
	memcpy(p + REC_HDR, argl, 4ull * argc);
	p += REC_HDR + 4ull * argc;
	for (uint32_t i = 0; i < argc; i++) {
		memcpy(p, argv[i], argl[i]);
		p += argl[i];
	}
	memset(p, 0, WF_ALIGN_UP(REC_HDR + body, 8) - (REC_HDR + body));
	p = (uint8_t *)j->pending.data + start;
	h.xxh32 = rec_checksum(p, (uint32_t)(REC_HDR + body));
	memcpy(p + offsetof(struct rec_hdr, xxh32), &h.xxh32, 4);
	j->pending.len += WF_ALIGN_UP(REC_HDR + body, 8);
	j->pending_last = j->next_lsn;
	*ret_lsn = j->next_lsn++;
	return 0;
}

uint64_t wf_journal_next_lsn(const struct wf_journal *j)
{
	return j->next_lsn;
}

uint64_t wf_journal_durable_lsn(const struct wf_journal *j)
{
	return j->durable_lsn;
}

int wf_journal_durability(const struct wf_journal *j)
{
	return j->opts.durability;
}

size_t wf_journal_pending_bytes(const struct wf_journal *j)
{
	return j->pending.len;
}

uint32_t wf_journal_flights(const struct wf_journal *j)
{
	return (uint32_t)(j->fl_tail - j->fl_head);
}

int wf_journal_flush_begin(struct wf_journal *j, struct wf_journal_flush *ret)
{
	struct journal_flight *fl = &j->flight[j->fl_tail % WF_JOURNAL_FLIGHTS_MAX];
	struct wf_buf t;

	if (j->failed)
		return -EIO;
	if (j->pending.len == 0 || j->fl_tail - j->fl_head >= j->opts.flights)
		return 0;
	if (j->seg_size >= j->opts.segment_bytes) {
		/* Roll: the first LSN of the pending batch names the new file.
		 * Not under flushes in flight: the roll closes their fd. */
		struct rec_hdr h;
		int r;
		if (j->fl_tail != j->fl_head)
			return 0;
		memcpy(&h, j->pending.data, sizeof(h));
		r = seg_create(j, h.lsn);
		if (r < 0)
			return r;
	}
	if (j->opts.durability == WF_JOURNAL_FSYNC && !j->no_zero && j->seg_size + j->pending.len > j->zeroed_end)
		seg_zero_ahead(j, j->seg_size + j->pending.len);
	/* The slot's buffer is empty (its flush was retired): it becomes the
	 * next pending one, keeping its capacity. */
	t = fl->buf;
	fl->buf = j->pending;
	fl->last = j->pending_last;
	fl->done = 0;
	j->pending = t;
	j->pending.len = 0;
	ret->id = j->fl_tail++;
	ret->fd = j->fd;
	ret->offset = j->seg_size;
	ret->iov.iov_base = fl->buf.data;
	ret->iov.iov_len = fl->buf.len;
	ret->sync = j->opts.durability == WF_JOURNAL_FSYNC;
	j->seg_size += fl->buf.len;
	return 1;
}

int wf_journal_flush_end(struct wf_journal *j, uint64_t id, int64_t res)
{
	struct journal_flight *fl = &j->flight[id % WF_JOURNAL_FLIGHTS_MAX];

	if (id < j->fl_head || id >= j->fl_tail || fl->done)
		return -EINVAL;
	fl->done = 1;
	if (res < 0 || (uint64_t)res != fl->buf.len) {
		j->failed = 1;
		return res < 0 ? (int)res : -EIO;
	}
	if (j->failed)
		return -EIO;
	/* Durable up to the newest flush that ended with every older one. */
	while (j->fl_head < j->fl_tail && (fl = &j->flight[j->fl_head % WF_JOURNAL_FLIGHTS_MAX])->done) {
		j->durable_lsn = fl->last;
		fl->buf.len = 0;
		j->fl_head++;
	}
	return 0;
}

int wf_journal_reset(struct wf_journal *j)
{
	uint64_t end = j->seg_size;

	if (j->fl_head != j->fl_tail) {
		/* Only failed flushes stay unretired: wait until each ended. */
		for (uint64_t id = j->fl_head; id < j->fl_tail; id++)
			if (!j->flight[id % WF_JOURNAL_FLIGHTS_MAX].done)
				return -EBUSY;
		/* Unretired flights all lie in the current segment (a roll
		 * waits for them), after its durable end. */
		for (uint64_t id = j->fl_head; id < j->fl_tail; id++)
			end -= j->flight[id % WF_JOURNAL_FLIGHTS_MAX].buf.len;
	}
	/* A failed write may have left part of its records, checksums and
	 * all: cut them, or a reader would take them for the LSNs given again. */
	if (end != j->seg_size || j->zeroed_end > end) {
		if (ftruncate(j->fd, (off_t)end) < 0)
			return -errno;
	}
	for (uint64_t id = j->fl_head; id < j->fl_tail; id++)
		j->flight[id % WF_JOURNAL_FLIGHTS_MAX].buf.len = 0;
	j->fl_head = j->fl_tail;
	j->seg_size = end;
	j->zeroed_end = end;
	j->no_zero = 0;
	j->pending.len = 0;
	j->next_lsn = j->durable_lsn + 1;
	j->failed = 0;
	return 0;
}

int64_t wf_journal_flush_write(const struct wf_journal_flush *f)
{
	size_t done = 0;

	while (done < f->iov.iov_len) {
		ssize_t n = pwrite(f->fd, (char *)f->iov.iov_base + done, f->iov.iov_len - done, (off_t)(f->offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return (int64_t)done;
}

int wf_journal_flush_sync(struct wf_journal *j)
{
	struct wf_journal_flush f;
	int r = wf_journal_flush_begin(j, &f);
	int64_t w;

	if (r <= 0)
		return r;
	w = wf_journal_flush_write(&f);
	if (w >= 0 && f.sync && fdatasync(f.fd) < 0)
		w = -errno;
	return wf_journal_flush_end(j, f.id, w);
}

/* ---- reader ---- */

struct wf_journal_reader {
	char dir[1024];
	uint64_t *segs;
	size_t nsegs, cur;
	char *data;
	size_t len, off;
	uint64_t from_lsn;
};

static int reader_load(struct wf_journal_reader *r)
{
	char path[1200];
	struct seg_hdr h;
	int e;

	free(r->data);
	r->data = NULL;
	wf_journal_segment_path(path, sizeof(path), r->dir, r->segs[r->cur]);
	e = wf_read_file(path, &r->data, &r->len);
	if (e == -ENOENT) { /* pruned meanwhile */
		r->len = 0;
		r->off = 0;
		return 0;
	}
	if (e < 0)
		return e;
	if (r->len < SEG_HDR)
		return r->cur + 1 == r->nsegs ? 0 : -EBADMSG;
	memcpy(&h, r->data, sizeof(h));
	if (h.magic != SEG_MAGIC)
		return -EBADMSG;
	r->off = SEG_HDR;
	return 0;
}

int wf_journal_reader_open(const char *dir, uint64_t from_lsn, struct wf_journal_reader **ret)
{
	struct wf_journal_reader *r = calloc(1, sizeof(*r));
	int e;

	if (!r)
		return -ENOMEM;
	snprintf(r->dir, sizeof(r->dir), "%s", dir);
	r->from_lsn = from_lsn;
	e = wf_journal_segments(dir, &r->segs, &r->nsegs);
	if (e < 0) {
		free(r);
		return e;
	}
	/* Start at the last segment whose first LSN is <= from_lsn. */
	while (r->cur + 1 < r->nsegs && r->segs[r->cur + 1] <= from_lsn)
		r->cur++;
	if (r->nsegs) {
		e = reader_load(r);
		if (e < 0) {
			wf_journal_reader_close(r);
			return e;
		}
	}
	*ret = r;
	return 0;
}

int wf_journal_reader_next(struct wf_journal_reader *r, struct wf_journal_rec *rec)
{
	while (r->cur < r->nsegs) {
		if (r->off < r->len) {
			struct rec_hdr h;
			int n;

			/* Before from_lsn: skipped by its header, unchecked (a restart
			 * after a checkpoint reads from the middle of a segment);
			 * what is returned is always checked. */
			if (r->len - r->off >= REC_HDR) {
				memcpy(&h, r->data + r->off, sizeof(h));
				if (h.lsn && h.lsn < r->from_lsn && h.len <= WF_JOURNAL_MAX_RECORD &&
				    WF_ALIGN_UP((uint64_t)REC_HDR + h.len, 8) <= r->len - r->off) {
					r->off += WF_ALIGN_UP((size_t)REC_HDR + h.len, 8);
					continue;
				}
			}
			n = wf_journal_decode((uint8_t *)r->data + r->off, r->len - r->off, rec);
			if (n > 0) {
				r->off += (size_t)n;
				if (rec->lsn < r->from_lsn)
					continue;
				return 1;
			}
			/* A bad or partial record ends the newest segment (a torn
			 * tail being written right now); elsewhere it is corruption. */
			if (r->cur + 1 < r->nsegs)
				return -EBADMSG;
			return 0;
		}
		if (++r->cur >= r->nsegs)
			break;
		int e = reader_load(r);
		if (e < 0)
			return e;
	}
	return 0;
}

void wf_journal_reader_close(struct wf_journal_reader *r)
{
	if (!r)
		return;
	free(r->data);
	free(r->segs);
	free(r);
}

int wf_journal_prune(const char *dir, uint64_t before_ms, uint64_t keep_lsn)
{
	uint64_t *segs;
	size_t n;
	int removed = 0;
	int r = wf_journal_segments(dir, &segs, &n);

	if (r < 0)
		return r;
	/* A segment may go when the next one starts at or below keep_lsn (so
	 * all its records are older) and it was last written before before_ms.
	 * The newest segment always stays. */
	for (size_t i = 0; i + 1 < n; i++) {
		char path[1200];
		struct stat st;

		if (segs[i + 1] > keep_lsn)
			break;
		wf_journal_segment_path(path, sizeof(path), dir, segs[i]);
		if (stat(path, &st) < 0)
			continue;
		if ((uint64_t)st.st_mtim.tv_sec * 1000 >= before_ms)
			break;
		if (unlink(path) == 0)
			removed++;
	}
	free(segs);
	return removed;
}

int wf_journal_head_lsn(const char *dir, uint64_t *ret)
{
	uint64_t *segs;
	size_t n;
	int r = wf_journal_segments(dir, &segs, &n);

	if (r < 0)
		return r;
	*ret = n ? segs[n - 1] : 0;
	free(segs);
	return 0;
}

int wf_journal_retain(const char *dir, const struct wf_journal_retention *r, uint64_t *ret_keep_lsn)
{
	uint64_t keep = r->consumed_lsn, window = WF_MAX(r->keep_ms, r->session_ttl_ms);
	DIR *d;
	struct dirent *e;
	int n;

	if (r->ckpt_dir && (d = opendir(r->ckpt_dir))) {
		while ((e = readdir(d))) {
			char path[1200];
			struct wf_ckpt_hdr h;
			size_t l = strlen(e->d_name);

			if (strncmp(e->d_name, "shard-", 6) != 0 || l < 5 || strcmp(e->d_name + l - 4, ".wfc") != 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", r->ckpt_dir, e->d_name);
			if (wf_ckpt_read_hdr(path, &h) < 0)
				keep = 0; /* unreadable: its ranker may need anything */
			else if (h.lsn + 1 < keep)
				keep = h.lsn + 1;
		}
		closedir(d);
	}
	if (r->now_ms <= window)
		keep = 0;
	n = keep ? wf_journal_prune(dir, r->now_ms - window, keep) : 0;
	if (n >= 0)
		*ret_keep_lsn = keep;
	return n;
}
