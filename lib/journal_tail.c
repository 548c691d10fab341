/*
 * journal_tail.c - follow the journal as it grows (lib/journal.h,
 * "tail"): records in LSN order from an LSN, read from the segment files a
 * chunk at a time with pread (never a whole segment in memory, as
 * wf_journal_reader does), and on from the same place at the next call,
 * records appended since included. Read only; any process may hold one
 * (weft-kafka's out topic reads experiment exposures with it). Or parked
 * between calls as a position (wf_journal_tail_pos, _open_at) with a byte
 * budget per call: weft-ingest's TRIGGERS pages through the journal so.
 *
 * The end of what is written is where a record does not decode: the
 * preallocated zeros past the tail, or a record being written. The bytes
 * past the last whole record are read again at the next call, never kept
 * (they change under us). A later segment is moved to only once every LSN
 * below its first is read or durable (max_lsn): a record of the old
 * segment still being written is waited for, not skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/journal.h"
#include "lib/util.h"

#define TAIL_CHUNK (256u << 10) /* read at a time */

struct wf_journal_tail {
	char dir[1024];
	uint64_t from;  /* the next LSN wanted: records below are skipped */
	uint64_t seg;   /* first LSN of the segment open in fd */
	int fd;         /* -1: none open yet */
	uint64_t off;   /* file offset of buf[0] */
	size_t len, p;  /* bytes in buf; the next record's position in it */
	size_t cap;
	uint8_t *buf;
	size_t budget;  /* bytes it may still read (SIZE_MAX: no bound) */
	uint64_t start_seg, start_off; /* open_at's place, until opened there */
};

int wf_journal_tail_open(const char *dir, uint64_t from_lsn, struct wf_journal_tail **ret)
{
	struct wf_journal_tail *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->cap = TAIL_CHUNK + WF_JOURNAL_MAX_RECORD + 64;
	t->fd = -1;
	if (!(t->buf = malloc(t->cap))) {
		wf_journal_tail_close(t);
		return -ENOMEM;
	}
	if ((size_t)snprintf(t->dir, sizeof(t->dir), "%s", dir) >= sizeof(t->dir)) {
		wf_journal_tail_close(t);
		return -ENAMETOOLONG;
	}
	t->from = from_lsn;
	t->budget = SIZE_MAX;
	*ret = t;
	return 0;
}

int wf_journal_tail_open_at(const char *dir, uint64_t from_lsn, uint64_t seg, uint64_t off,
			    struct wf_journal_tail **ret)
{
	int e = wf_journal_tail_open(dir, from_lsn, ret);

	if (e == 0 && seg && off >= WF_JOURNAL_SEG_HDR) {
		(*ret)->start_seg = seg;
		(*ret)->start_off = off;
	}
	return e;
}

void wf_journal_tail_pos(const struct wf_journal_tail *t, uint64_t *seg, uint64_t *off)
{
	*seg = t->fd >= 0 ? t->seg : t->start_seg;
	*off = t->fd >= 0 ? t->off + t->p : t->start_off;
}

void wf_journal_tail_budget(struct wf_journal_tail *t, size_t bytes)
{
	t->budget = bytes;
}

void wf_journal_tail_close(struct wf_journal_tail *t)
{
	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);
	free(t->buf);
	free(t);
}

/* Open segment seg, read from its first record. 0 or -errno (-ENOENT:
 * pruned meanwhile). */
static int tail_open_seg(struct wf_journal_tail *t, uint64_t seg)
{
	char path[1200];

	if (t->fd >= 0)
		close(t->fd);
	wf_journal_segment_path(path, sizeof(path), t->dir, seg);
	t->fd = open(path, O_RDONLY | O_CLOEXEC);
	t->seg = seg;
	t->off = WF_JOURNAL_SEG_HDR;
	t->len = t->p = 0;
	return t->fd < 0 ? -errno : 0;
}

/*
 * At the end of what the open segment holds: the segment to go on with.
 * None open: the last whose first LSN is <= from (else the first). Else
 * the next one, if there is one and every LSN below its first is read
 * (from) or durable (max_lsn). 1 moved (or opened), 0 stay, -errno.
 */
static int tail_next_seg(struct wf_journal_tail *t, uint64_t max_lsn)
{
	uint64_t *segs = NULL, pick = 0;
	size_t n = 0;
	int e;

	if (t->fd < 0 && t->start_seg) { /* open_at's place, unless pruned since */
		uint64_t seg = t->start_seg, off = t->start_off;
		t->start_seg = 0;
		if ((e = tail_open_seg(t, seg)) == 0) {
			t->off = off;
			return 1;
		}
		if (e != -ENOENT)
			return e;
	}
	if ((e = wf_journal_segments(t->dir, &segs, &n)) < 0)
		return e;
	for (size_t i = 0; i < n; i++) {
		if (t->fd < 0) {
			if (!pick || segs[i] <= t->from)
				pick = segs[i];
		} else if (segs[i] > t->seg) {
			if (t->from >= segs[i] || segs[i] - 1 <= max_lsn)
				pick = segs[i];
			break;
		}
	}
	free(segs);
	if (!pick)
		return 0;
	e = tail_open_seg(t, pick);
	return e == -ENOENT ? 1 : e < 0 ? e : 1; /* pruned: the next call takes the one after */
}

int wf_journal_tail_next(struct wf_journal_tail *t, struct wf_journal_rec *rec, uint64_t max_lsn)
{
	for (;;) {
		int k = 0, e;
		ssize_t r;

		if (t->fd >= 0 && t->p < t->len)
			k = wf_journal_decode(t->buf + t->p, t->len - t->p, rec);
		if (k > 0) {
			if (rec->lsn < t->from) {
				t->p += (size_t)k;
				continue;
			}
			if (rec->lsn > max_lsn)
				return 0; /* not durable yet: read again next time */
			t->p += (size_t)k;
			t->from = rec->lsn + 1;
			return 1;
		}
		if (t->fd >= 0 && k == 0) { /* more of the file, after what is left */
			memmove(t->buf, t->buf + t->p, t->len - t->p);
			t->len -= t->p;
			t->off += t->p;
			t->p = 0;
			if (t->len < t->cap) {
				if (!t->budget)
					return -EAGAIN; /* wf_journal_tail_budget() */
				r = pread(t->fd, t->buf + t->len,
					  WF_MIN(WF_MIN((size_t)TAIL_CHUNK, t->cap - t->len), t->budget),
					  (off_t)(t->off + t->len));
				if (r < 0)
					return -errno;
				if (r > 0) {
					t->len += (size_t)r;
					t->budget -= (size_t)r;
					continue;
				}
			}
		}
		/* The end of what is written here (EOF, zeros, a record being
		 * written): forget the bytes past the last whole record, then
		 * a later segment if its time has come. */
		t->len = t->p;
		if ((e = tail_next_seg(t, max_lsn)) <= 0)
			return e;
	}
}
