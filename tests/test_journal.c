/*
 * test_journal.c - the event journal (lib/journal.h): append and group
 * commit, recovery of a torn tail, segment roll and reading across
 * segments, corruption detection, recovery after a failed write (a full
 * disk: wf_journal_reset), and a crash test: a writer killed with
 * SIGKILL at random moments never loses a record it reported durable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/ckpt.h"
#include "lib/journal.h"
#include "lib/util.h"

static char dir[256];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/weft-test-journal.%d.XXXXXX", (int)getpid());
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static uint64_t append_event(struct wf_journal *j, const char *session, const char *item, uint16_t shard)
{
	const char *argv[] = { session, "-", "view", item };
	uint32_t argl[] = { (uint32_t)strlen(session), 1, 4, (uint32_t)strlen(item) };
	uint64_t lsn;

	assert_int_equal(wf_journal_append(j, 1000, shard, 4, argv, argl, &lsn), 0);
	return lsn;
}

static void test_journal_append_flush_reopen_continues_lsn(void **state)
{
	struct wf_journal *j;
	struct wf_journal_reader *r;
	struct wf_journal_rec rec;
	char err[256];

	assert_int_equal(wf_journal_open(dir, NULL, &j, err, sizeof(err)), 0);
	assert_int_equal(wf_journal_next_lsn(j), 1);
	assert_int_equal(append_event(j, "s1", "i1", 0), 1);
	assert_int_equal(append_event(j, "s2", "i2", 1), 2);
	assert_int_equal(wf_journal_durable_lsn(j), 0);
	assert_int_equal(wf_journal_flush_sync(j), 0);
	assert_int_equal(wf_journal_durable_lsn(j), 2);
	wf_journal_close(j);

	assert_int_equal(wf_journal_open(dir, NULL, &j, err, sizeof(err)), 0);
	assert_int_equal(wf_journal_next_lsn(j), 3);
	wf_journal_close(j);

	assert_int_equal(wf_journal_reader_open(dir, 2, &r), 0);
	assert_int_equal(wf_journal_reader_next(r, &rec), 1);
	assert_int_equal(rec.lsn, 2);
	assert_int_equal(rec.shard, 1);
	assert_int_equal(rec.argc, 4);
	assert_memory_equal(rec.argv[0], "s2", 2);
	assert_memory_equal(rec.argv[3], "i2", 2);
	assert_int_equal(wf_journal_reader_next(r, &rec), 0);
	wf_journal_reader_close(r);
}

/* Records carry a kind: EVENT by default, others read back as written, and
 * a kind the format does not define is refused at append. */
static void test_journal_record_kinds_read_back(void **state)
{
	const char *argv[] = { "abandon", "enter" };
	uint32_t argl[] = { 7, 5 };
	struct wf_journal *j;
	struct wf_journal_reader *r;
	struct wf_journal_rec rec;
	uint64_t lsn;
	char err[256];

	assert_int_equal(wf_journal_open(dir, NULL, &j, err, sizeof(err)), 0);
	assert_int_equal(append_event(j, "s1", "i1", 0), 1);
	assert_int_equal(wf_journal_append_kind(j, WF_JREC_SEGMENT, 1000, 1, 2, argv, argl, &lsn), 0);
	assert_int_equal(lsn, 2);
	assert_int_equal(wf_journal_append_kind(j, WF_JREC_KINDS, 1000, 1, 2, argv, argl, &lsn), -EINVAL);
	assert_int_equal(wf_journal_flush_sync(j), 0);
	wf_journal_close(j);

	assert_int_equal(wf_journal_reader_open(dir, 0, &r), 0);
	assert_int_equal(wf_journal_reader_next(r, &rec), 1);
	assert_int_equal(rec.kind, WF_JREC_EVENT);
	assert_int_equal(wf_journal_reader_next(r, &rec), 1);
	assert_int_equal(rec.kind, WF_JREC_SEGMENT);
	assert_int_equal(rec.shard, 1);
	assert_memory_equal(rec.argv[1], "enter", 5);
	assert_int_equal(wf_journal_reader_next(r, &rec), 0);
	wf_journal_reader_close(r);
}

/* Write a begun flush and end it (the fdatasync left out: tests need no disk flush). */
static void write_end(struct wf_journal *j, const struct wf_journal_flush *f)
{
	assert_int_equal(wf_journal_flush_write(f), (int64_t)f->iov.iov_len);
	assert_int_equal(wf_journal_flush_end(j, f->id, (int64_t)f->iov.iov_len), 0);
}

static void test_journal_group_commit_batches_appends_during_flush(void **state)
{
	struct wf_journal_opts o = { .flights = 1 };
	struct wf_journal *j;
	struct wf_journal_flush f, f2;
	char err[256];

	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	append_event(j, "s", "a", 0);
	assert_int_equal(wf_journal_flush_begin(j, &f), 1);
	assert_true(f.sync);
	/* Appended while the only flight is taken: the next batch. */
	append_event(j, "s", "b", 0);
	append_event(j, "s", "c", 0);
	assert_int_equal(wf_journal_flush_begin(j, &f2), 0);
	write_end(j, &f);
	assert_int_equal(wf_journal_durable_lsn(j), 1);
	assert_int_equal(wf_journal_flush_sync(j), 0);
	assert_int_equal(wf_journal_durable_lsn(j), 3);
	/* A failed write stops acks: nothing after it becomes durable. */
	append_event(j, "s", "d", 0);
	assert_int_equal(wf_journal_flush_begin(j, &f), 1);
	assert_int_equal(wf_journal_flush_end(j, f.id, -EIO), -EIO);
	assert_int_equal(wf_journal_durable_lsn(j), 3);
	append_event(j, "s", "e", 0);
	assert_int_equal(wf_journal_flush_begin(j, &f), -EIO);
	wf_journal_close(j);
}

/* Several flushes in flight end in any order; the durable LSN moves only
 * over the oldest that ended, a failed one stops every later one, and a
 * segment roll waits for the flights of the old segment. */
static void test_journal_flights_end_out_of_order(void **state)
{
	struct wf_journal_opts o = { .flights = 3, .segment_bytes = 4096 };
	struct wf_journal_flush f[4];
	struct wf_journal *j;
	struct wf_journal_reader *r;
	struct wf_journal_rec rec;
	char err[256];
	uint64_t n = 0;

	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++) {
		append_event(j, "s", "a", 0); /* lsn 1, 2, 3: one per flush */
		assert_int_equal(wf_journal_flush_begin(j, &f[i]), 1);
	}
	assert_int_equal(wf_journal_flights(j), 3);
	append_event(j, "s", "b", 0); /* lsn 4: every flight taken */
	assert_int_equal(wf_journal_flush_begin(j, &f[3]), 0);
	write_end(j, &f[2]);
	write_end(j, &f[1]);
	assert_int_equal(wf_journal_durable_lsn(j), 0); /* the oldest is still in flight */
	assert_int_equal(wf_journal_flush_end(j, f[2].id, (int64_t)f[2].iov.iov_len), -EINVAL); /* ended */
	write_end(j, &f[0]);
	assert_int_equal(wf_journal_durable_lsn(j), 3);
	assert_int_equal(wf_journal_flights(j), 0);
	assert_int_equal(wf_journal_flush_sync(j), 0);
	assert_int_equal(wf_journal_durable_lsn(j), 4);

	/* Roll: past 4096 bytes the next flush opens a new segment, but only
	 * once the flights of this one have ended. */
	while (wf_journal_pending_bytes(j) < 4096)
		append_event(j, "s", "c", 0);
	assert_int_equal(wf_journal_flush_begin(j, &f[0]), 1);
	append_event(j, "s", "d", 0);
	assert_int_equal(wf_journal_flush_begin(j, &f[1]), 0); /* the roll waits */
	write_end(j, &f[0]);
	assert_int_equal(wf_journal_flush_begin(j, &f[1]), 1);
	assert_int_not_equal(f[1].fd, f[0].fd);
	write_end(j, &f[1]);
	assert_int_equal(wf_journal_durable_lsn(j), wf_journal_next_lsn(j) - 1);

	/* An older flush fails after a newer one ended: neither is durable,
	 * and the journal refuses more. */
	uint64_t durable = wf_journal_durable_lsn(j);
	append_event(j, "s", "e", 0);
	assert_int_equal(wf_journal_flush_begin(j, &f[0]), 1);
	append_event(j, "s", "e", 0);
	assert_int_equal(wf_journal_flush_begin(j, &f[1]), 1);
	write_end(j, &f[1]);
	assert_int_equal(wf_journal_flush_end(j, f[0].id, -EIO), -EIO);
	assert_int_equal(wf_journal_durable_lsn(j), durable);
	append_event(j, "s", "f", 0);
	assert_int_equal(wf_journal_flush_begin(j, &f[2]), -EIO);
	wf_journal_close(j);

	/* What was written reads back in order, across the roll. */
	assert_int_equal(wf_journal_reader_open(dir, 1, &r), 0);
	while (wf_journal_reader_next(r, &rec) == 1)
		assert_int_equal(rec.lsn, ++n);
	wf_journal_reader_close(r);
	assert_true(n >= durable);
}

static void test_journal_torn_tail_is_truncated(void **state)
{
	struct wf_journal *j;
	struct wf_journal_reader *r;
	struct wf_journal_rec rec;
	char err[256], path[512];
	struct dirent *e;
	DIR *d;
	int fd, n = 0;

	assert_int_equal(wf_journal_open(dir, NULL, &j, err, sizeof(err)), 0);
	for (int i = 0; i < 10; i++)
		append_event(j, "s", "item", 0);
	assert_int_equal(wf_journal_flush_sync(j), 0);
	wf_journal_close(j);
	/* Append half a record of garbage, as a crash mid-write would. */
	d = opendir(dir);
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".wfj"))
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
	closedir(d);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "\x40\0\0\0garbage-garbage-garbage", 25), 25);
	close(fd);

	assert_int_equal(wf_journal_open(dir, NULL, &j, err, sizeof(err)), 0);
	assert_int_equal(wf_journal_next_lsn(j), 11);
	append_event(j, "s", "after", 0);
	assert_int_equal(wf_journal_flush_sync(j), 0);
	wf_journal_close(j);
	assert_int_equal(wf_journal_reader_open(dir, 0, &r), 0);
	while (wf_journal_reader_next(r, &rec) == 1) {
		n++;
		assert_int_equal(rec.lsn, (uint64_t)n);
	}
	assert_int_equal(n, 11);
	wf_journal_reader_close(r);
}

static void test_journal_rolls_segments_and_reads_across(void **state)
{
	struct wf_journal_opts o = { .segment_bytes = 4096, .durability = WF_JOURNAL_OS };
	struct wf_journal *j;
	struct wf_journal_reader *r;
	struct wf_journal_rec rec;
	char err[256], item[32];
	uint64_t want = 500;
	int nseg = 0;
	struct dirent *e;
	DIR *d;

	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(item, sizeof(item), "item%d", i);
		append_event(j, "sess", item, (uint16_t)(i % 3));
		if (i % 37 == 0)
			assert_int_equal(wf_journal_flush_sync(j), 0);
	}
	assert_int_equal(wf_journal_flush_sync(j), 0);
	wf_journal_close(j);
	d = opendir(dir);
	while ((e = readdir(d)))
		nseg += strstr(e->d_name, ".wfj") != NULL;
	closedir(d);
	assert_true(nseg > 5);
	assert_int_equal(wf_journal_reader_open(dir, want, &r), 0);
	while (wf_journal_reader_next(r, &rec) == 1) {
		assert_int_equal(rec.lsn, want);
		snprintf(item, sizeof(item), "item%d", (int)(want - 1));
		assert_int_equal(rec.argl[3], strlen(item));
		assert_memory_equal(rec.argv[3], item, rec.argl[3]);
		want++;
	}
	assert_int_equal(want, 2001);
	wf_journal_reader_close(r);
	/* Everything is older than "now + 1 min"; keep from LSN 1000 on. */
	assert_true(wf_journal_prune(dir, wf_wall_ms() + 60000, 1000) > 0);
	assert_int_equal(wf_journal_reader_open(dir, 1000, &r), 0);
	assert_int_equal(wf_journal_reader_next(r, &rec), 1);
	assert_int_equal(rec.lsn, 1000);
	wf_journal_reader_close(r);
}

/* A tail follows the journal as it is written: in fsync mode (zeros ahead
 * of the data), across segment rolls, never past max_lsn (a record above
 * it comes at a later call), and on from where it stopped with records
 * appended since; records below from_lsn are skipped. */
static void test_journal_tail_follows_writes_and_rolls(void **state)
{
	struct wf_journal_opts o = { .segment_bytes = 4096, .durability = WF_JOURNAL_FSYNC };
	struct wf_journal *j;
	struct wf_journal_tail *t;
	struct wf_journal_rec rec;
	char err[256], item[32];
	uint64_t want = 5, last = 0;

	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	assert_int_equal(wf_journal_tail_open(dir, want, &t), 0);
	assert_int_equal(wf_journal_tail_next(t, &rec, UINT64_MAX), 0); /* nothing written yet */
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < 25; i++) {
			snprintf(item, sizeof(item), "item%d", round * 25 + i);
			last = append_event(j, "sess", item, 0);
		}
		assert_int_equal(wf_journal_flush_sync(j), 0);
		/* Bounded: only up to half of this round. */
		while (wf_journal_tail_next(t, &rec, last - 12) == 1) {
			assert_int_equal(rec.lsn, want);
			snprintf(item, sizeof(item), "item%d", (int)(want - 1));
			assert_memory_equal(rec.argv[3], item, rec.argl[3]);
			want++;
		}
		assert_int_equal(want, last - 11);
		while (wf_journal_tail_next(t, &rec, last) == 1)
			assert_int_equal(rec.lsn, want++);
		assert_int_equal(want, last + 1);
	}
	assert_true(last == 1000);
	wf_journal_tail_close(t);
	wf_journal_close(j);
}

/* A tail parked between calls (weft-ingest's TRIGGERS): read with a
 * byte budget it stops (-EAGAIN) where the budget ran out, and a tail
 * opened at wf_journal_tail_pos()'s place goes on with the very next
 * record, across segment rolls, until all are read once in order. A
 * place in a segment pruned since falls back to a search. */
static void test_journal_tail_parks_at_a_position(void **state)
{
	struct wf_journal_opts o = { .segment_bytes = 4096, .durability = WF_JOURNAL_FSYNC };
	struct wf_journal *j;
	struct wf_journal_tail *t;
	struct wf_journal_rec rec;
	char err[256], item[32];
	uint64_t want = 1, last = 0, seg = 0, off = 0;
	int calls = 0, r;

	(void)state;
	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	for (int i = 0; i < 3000; i++) {
		snprintf(item, sizeof(item), "item%d", i);
		last = append_event(j, "sess", item, 0);
		if (i % 100 == 99) /* a segment rolls at a flush */
			assert_int_equal(wf_journal_flush_sync(j), 0);
	}
	while (want <= last) {
		assert_int_equal(wf_journal_tail_open_at(dir, want, seg, off, &t), 0);
		wf_journal_tail_budget(t, 7000); /* ~100 records a call, cut mid-record */
		while ((r = wf_journal_tail_next(t, &rec, last)) == 1) {
			assert_int_equal(rec.lsn, want);
			snprintf(item, sizeof(item), "item%d", (int)(want - 1));
			assert_memory_equal(rec.argv[3], item, rec.argl[3]);
			want++;
		}
		assert_true(r == -EAGAIN || (r == 0 && want == last + 1));
		wf_journal_tail_pos(t, &seg, &off);
		assert_true(seg >= 1 && off >= WF_JOURNAL_SEG_HDR);
		wf_journal_tail_close(t);
		calls++;
	}
	assert_true(calls > 20);
	/* Read across rolls (the journal made several segments); a place in
	 * a segment removed since: found again by LSN, at the next one. */
	uint64_t *segs = NULL;
	size_t nseg = 0;
	char path[600];
	assert_int_equal(wf_journal_segments(dir, &segs, &nseg), 0);
	assert_true(nseg >= 3);
	assert_int_equal(wf_journal_tail_open_at(dir, segs[1] - 1, segs[0], 64, &t), 0);
	wf_journal_segment_path(path, sizeof(path), dir, segs[0]);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(wf_journal_tail_next(t, &rec, last), 1);
	assert_int_equal(rec.lsn, segs[1]);
	free(segs);
	wf_journal_tail_close(t);
	wf_journal_close(j);
}

/* Size of dir/name, and where its records end (the offset past the last
 * record that decodes). */
static void seg_sizes(const char *name, uint64_t *ret_size, uint64_t *ret_data_end)
{
	char path[600], *data;
	size_t len, off = 32; /* segment header */
	struct wf_journal_rec rec;
	int n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(wf_read_file(path, &data, &len), 0);
	while (off < len && (n = wf_journal_decode((uint8_t *)data + off, len - off, &rec)) > 0)
		off += (size_t)n;
	free(data);
	*ret_size = len;
	*ret_data_end = off;
}

/* In fsync mode the writer keeps written zeros ahead of its data (cheaper
 * fdatasync): the newest segment is longer than its records, every older
 * one ends exactly at its last record, readers see every record and no
 * corruption, the zeros stop at the segment size, and a reopen cuts the
 * zeros and continues the LSNs. */
static void test_journal_fsync_zero_ahead_reads_and_recovers(void **state)
{
	struct wf_journal_opts o = { .segment_bytes = 256 << 10, .durability = WF_JOURNAL_FSYNC };
	struct wf_journal *j;
	struct wf_journal_reader *r;
	struct wf_journal_rec rec;
	char err[256], item[32], newest[300] = "";
	uint64_t want = 1, size, end;
	int nseg = 0;
	struct dirent **ents;

	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	/* 24 groups of 500 fill three segments; 100 more start a fourth */
	for (int i = 0; i < 12100; i++) {
		snprintf(item, sizeof(item), "item%d", i);
		append_event(j, "sess", item, 0);
		if (i % 500 == 499 || i == 12099)
			assert_int_equal(wf_journal_flush_sync(j), 0);
	}
	int n = scandir(dir, &ents, NULL, alphasort);
	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		if (strstr(ents[i]->d_name, ".wfj")) {
			if (newest[0]) { /* the previous newest is an older segment */
				seg_sizes(newest, &size, &end);
				assert_int_equal(size, end);
			}
			snprintf(newest, sizeof(newest), "%s", ents[i]->d_name);
			nseg++;
		}
		free(ents[i]);
	}
	free(ents);
	assert_true(nseg >= 2);
	seg_sizes(newest, &size, &end);
	/* zeros ahead of the data, up to the segment's end and no further */
	assert_true(end < size);
	assert_int_equal(size, o.segment_bytes);

	/* A reader while the writer is open, zero tail and all. */
	assert_int_equal(wf_journal_reader_open(dir, 1, &r), 0);
	int e;
	while ((e = wf_journal_reader_next(r, &rec)) == 1)
		assert_int_equal(rec.lsn, want++);
	assert_int_equal(e, 0);
	assert_int_equal(want, 12101);
	wf_journal_reader_close(r);
	wf_journal_close(j);

	/* Reopen: the zeros are cut, the LSNs go on, the next flush zeroes again. */
	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	assert_int_equal(wf_journal_next_lsn(j), 12101);
	seg_sizes(newest, &size, &end);
	assert_int_equal(size, end);
	append_event(j, "sess", "after", 0);
	assert_int_equal(wf_journal_flush_sync(j), 0);
	assert_int_equal(wf_journal_durable_lsn(j), 12101);
	wf_journal_close(j);
	assert_int_equal(wf_journal_reader_open(dir, 12101, &r), 0);
	assert_int_equal(wf_journal_reader_next(r, &rec), 1);
	assert_int_equal(rec.lsn, 12101);
	assert_int_equal(wf_journal_reader_next(r, &rec), 0);
	wf_journal_reader_close(r);
}

/* A flush whose write reached the file but failed (ENOSPC on its
 * fdatasync, say): after wf_journal_reset its records are cut from the
 * segment, their LSNs are given again, and appends are durable again. */
static void test_journal_reset_after_failed_flush_cuts_and_reuses_lsns(void **state)
{
	struct wf_journal_opts o = { .durability = WF_JOURNAL_FSYNC };
	struct wf_journal_flush f;
	struct wf_journal_reader *r;
	struct wf_journal_rec rec;
	struct wf_journal *j;
	char err[256];

	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	append_event(j, "s1", "i1", 0);
	append_event(j, "s1", "i2", 0);
	assert_int_equal(wf_journal_flush_sync(j), 0);
	for (int i = 0; i < 3; i++)
		append_event(j, "lost", "ix", 1);
	assert_int_equal(wf_journal_flush_begin(j, &f), 1);
	assert_true(wf_journal_flush_write(&f) > 0); /* the records are in the file */
	append_event(j, "lost", "iy", 1);         /* appended while it failed */
	assert_int_equal(wf_journal_reset(j), -EBUSY); /* still in flight */
	assert_int_equal(wf_journal_flush_end(j, f.id, -ENOSPC), -ENOSPC);
	assert_int_equal(wf_journal_flush_sync(j), -EIO);
	assert_int_equal(wf_journal_durable_lsn(j), 2);
	assert_int_equal(wf_journal_reset(j), 0);
	assert_int_equal(wf_journal_next_lsn(j), 3);
	assert_int_equal(append_event(j, "s2", "i3", 0), 3);
	assert_int_equal(wf_journal_flush_sync(j), 0);
	assert_int_equal(wf_journal_durable_lsn(j), 3);
	wf_journal_close(j);

	assert_int_equal(wf_journal_reader_open(dir, 0, &r), 0);
	for (uint64_t lsn = 1; lsn <= 3; lsn++) {
		assert_int_equal(wf_journal_reader_next(r, &rec), 1);
		assert_int_equal(rec.lsn, lsn);
		assert_true(rec.argl[0] == 2 && memcmp(rec.argv[0], lsn < 3 ? "s1" : "s2", 2) == 0);
	}
	assert_int_equal(wf_journal_reader_next(r, &rec), 0); /* nothing of the failed flush */
	wf_journal_reader_close(r);
	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	assert_int_equal(wf_journal_next_lsn(j), 4);
	wf_journal_close(j);
}

static void test_journal_decode_rejects_garbage(void **state)
{
	struct wf_journal_rec rec;
	uint8_t buf[256];

	memset(buf, 0, sizeof(buf));
	assert_int_equal(wf_journal_decode(buf, 10, &rec), 0);
	assert_int_equal(wf_journal_decode(buf, sizeof(buf), &rec), -EBADMSG);
	for (int i = 0; i < 256; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	buf[0] = 40;
	buf[1] = buf[2] = buf[3] = 0;
	assert_int_equal(wf_journal_decode(buf, sizeof(buf), &rec), -EBADMSG);
}

static void test_journal_corrupt_middle_segment_is_reported(void **state)
{
	struct wf_journal_opts o = { .segment_bytes = 1024, .durability = WF_JOURNAL_OS };
	struct wf_journal *j;
	struct wf_journal_reader *r;
	struct wf_journal_rec rec;
	char err[256], path[512];
	int fd, res;

	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	for (int i = 0; i < 200; i++) {
		append_event(j, "s", "abcdefgh", 0);
		assert_int_equal(wf_journal_flush_sync(j), 0);
	}
	wf_journal_close(j);
	snprintf(path, sizeof(path), "%s/%016llx.wfj", dir, 1ull);
	fd = open(path, O_WRONLY);
	assert_int_equal(pwrite(fd, "XXXX", 4, 80), 4);
	close(fd);
	assert_int_equal(wf_journal_reader_open(dir, 0, &r), 0);
	while ((res = wf_journal_reader_next(r, &rec)) == 1)
		;
	assert_int_equal(res, -EBADMSG);
	wf_journal_reader_close(r);
}

/*
 * A child appends and flushes in a loop and writes each durable LSN to a
 * pipe only after wf_journal_flush_sync() returned (its "ack"); the parent
 * SIGKILLs it at a random moment, reopens the journal, and checks every
 * acked LSN is there exactly once. Ten rounds, each reopening the last;
 * the parent waits for the first ack of a round before it picks the moment.
 */
static void test_journal_sigkill_loses_no_acked_record(void **state)
{
	uint64_t acked_max = 0;

	srand((unsigned)getpid());
	for (int round = 0; round < 10; round++) {
		int pfd[2];
		pid_t pid;
		uint64_t v;

		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		if (pid == 0) {
			struct wf_journal *j;
			char err[256];
			close(pfd[0]);
			if (wf_journal_open(dir, NULL, &j, err, sizeof(err)) < 0)
				_exit(3);
			for (;;) {
				for (int i = 0; i < 16; i++)
					append_event(j, "crash", "item-x", 0);
				if (wf_journal_flush_sync(j) < 0)
					_exit(4);
				v = wf_journal_durable_lsn(j);
				if (write(pfd[1], &v, 8) != 8)
					_exit(5);
			}
		}
		close(pfd[1]);
		/* The first ack before the random moment: on a loaded host the
		 * child may not finish one fsync in 100 ms, and a round that
		 * kills it before any ack checks nothing. */
		if (read(pfd[0], &v, 8) == 8)
			acked_max = WF_MAX(acked_max, v);
		usleep(20000 + (useconds_t)(rand() % 80000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		while (read(pfd[0], &v, 8) == 8)
			acked_max = WF_MAX(acked_max, v);
		close(pfd[0]);
	}
	assert_true(acked_max > 0);

	struct wf_journal_reader *r;
	struct wf_journal_rec rec;
	uint64_t want = 1;
	assert_int_equal(wf_journal_reader_open(dir, 0, &r), 0);
	while (wf_journal_reader_next(r, &rec) == 1) {
		assert_int_equal(rec.lsn, want); /* no gaps, no duplicates */
		want++;
	}
	wf_journal_reader_close(r);
	assert_true(want - 1 >= acked_max);
	print_message("acked up to lsn %llu, journal holds %llu\n", (unsigned long long)acked_max,
		      (unsigned long long)(want - 1));
}

/* Recovery keeps no state between calls: two threads recovering two
 * journals at once each find their own last LSN (seg_scan once decoded
 * into a function-local static record, shared by every caller). */
struct recover_job {
	const char *dir;
	uint64_t want_next; /* the LSN recovery must find next */
	int wrong;          /* recoveries that found another */
};

static void *recover_loop(void *arg)
{
	struct recover_job *job = arg;
	char err[256];

	for (int i = 0; i < 100; i++) {
		struct wf_journal *j;
		if (wf_journal_open(job->dir, NULL, &j, err, sizeof(err)) < 0) {
			job->wrong++;
			continue;
		}
		job->wrong += wf_journal_next_lsn(j) != job->want_next;
		wf_journal_close(j);
	}
	return NULL;
}

static void test_journal_concurrent_recovery_is_independent(void **state)
{
	char dir2[300];
	struct recover_job job[2] = { { dir, 2001, 0 }, { dir2, 3001, 0 } };
	pthread_t th;

	snprintf(dir2, sizeof(dir2), "%s/second", dir);
	for (int k = 0; k < 2; k++) {
		struct wf_journal *j;
		char err[256];
		assert_int_equal(wf_journal_open(job[k].dir, NULL, &j, err, sizeof(err)), 0);
		for (uint64_t n = 1; n < job[k].want_next; n++)
			append_event(j, k ? "other-session" : "s", "item", 0);
		assert_int_equal(wf_journal_flush_sync(j), 0);
		wf_journal_close(j);
	}
	assert_int_equal(pthread_create(&th, NULL, recover_loop, &job[1]), 0);
	recover_loop(&job[0]);
	pthread_join(th, NULL);
	assert_int_equal(job[0].wrong, 0);
	assert_int_equal(job[1].wrong, 0);
}

/* A checkpoint of shard `shard` covering lsn (no sessions: header and END). */
static void write_ckpt(const char *cdir, uint32_t shard, uint64_t lsn)
{
	char path[600];
	struct wf_ckpt_hdr h;
	struct wf_ckpt_end e = { .sections = 0, .bytes = sizeof(h) };
	struct wf_ckpt_sec s;
	FILE *f;

	snprintf(path, sizeof(path), "%s/shard-%u.wfc", cdir, shard);
	wf_ckpt_hdr_init(&h, shard, lsn, wf_wall_ms());
	wf_ckpt_sec_init(&s, WF_CKPT_END, &e, sizeof(e));
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(&h, sizeof(h), 1, f), 1);
	assert_int_equal(fwrite(&s, sizeof(s), 1, f), 1);
	assert_int_equal(fwrite(&e, sizeof(e), 1, f), 1);
	fclose(f);
}

/* The first LSN a reader from 0 finds. */
static uint64_t first_lsn(void)
{
	struct wf_journal_reader *r;
	struct wf_journal_rec rec;
	uint64_t lsn = 0;

	assert_int_equal(wf_journal_reader_open(dir, 0, &r), 0);
	if (wf_journal_reader_next(r, &rec) == 1)
		lsn = rec.lsn;
	wf_journal_reader_close(r);
	return lsn;
}

/* Issue 15 item 10: journal retention after a night. Nothing goes that
 * is younger than the retention window (and the session TTL), that the
 * night did not read, or that a ranker's checkpoint does not cover; an
 * unreadable checkpoint keeps everything. */
static void test_journal_retention_keeps_what_a_checkpoint_or_night_needs(void **state)
{
	struct wf_journal_opts o = { .segment_bytes = 4096, .durability = WF_JOURNAL_OS };
	struct wf_journal *j;
	char err[256], cdir[400], item[32], path[600];
	uint64_t head, keep, day = 86400000ull;
	struct wf_journal_retention r;
	FILE *f;

	assert_int_equal(wf_journal_open(dir, &o, &j, err, sizeof(err)), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(item, sizeof(item), "item%d", i);
		append_event(j, "sess", item, (uint16_t)(i % 2));
		if (i % 37 == 0)
			assert_int_equal(wf_journal_flush_sync(j), 0);
	}
	assert_int_equal(wf_journal_flush_sync(j), 0);
	wf_journal_close(j);
	assert_int_equal(wf_journal_head_lsn(dir, &head), 0);
	assert_true(head > 1000);
	snprintf(cdir, sizeof(cdir), "%s.ck", dir);
	assert_int_equal(mkdir(cdir, 0700), 0);
	write_ckpt(cdir, 0, 1500);
	write_ckpt(cdir, 1, 800);
	/* Written just now: inside a 7-day window, nothing goes. */
	r = (struct wf_journal_retention){ .now_ms = wf_wall_ms(), .keep_ms = 7 * day, .session_ttl_ms = 1800000,
					   .consumed_lsn = head, .ckpt_dir = cdir };
	assert_int_equal(wf_journal_retain(dir, &r, &keep), 0);
	assert_int_equal(first_lsn(), 1);
	/* Ten days later: up to the lowest checkpoint (shard 1's 800). */
	r.now_ms = wf_wall_ms() + 10 * day;
	assert_true(wf_journal_retain(dir, &r, &keep) > 0);
	assert_int_equal(keep, 801);
	assert_true(first_lsn() > 1 && first_lsn() <= 801);
	/* A corrupt checkpoint: nothing more goes. */
	write_ckpt(cdir, 1, 1900);
	snprintf(path, sizeof(path), "%s/shard-2.wfc", cdir);
	assert_non_null(f = fopen(path, "wb"));
	fputs("not a checkpoint", f);
	fclose(f);
	head = first_lsn();
	assert_int_equal(wf_journal_retain(dir, &r, &keep), 0);
	assert_int_equal(first_lsn(), head);
	/* Without it: the night's bound (what it read) now. */
	unlink(path);
	r.consumed_lsn = 1200;
	assert_true(wf_journal_retain(dir, &r, &keep) > 0);
	assert_int_equal(keep, 1200);
	assert_true(first_lsn() > head && first_lsn() <= 1200);
	snprintf(path, sizeof(path), "rm -rf '%s'", cdir);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_journal_append_flush_reopen_continues_lsn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_record_kinds_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_group_commit_batches_appends_during_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_flights_end_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_torn_tail_is_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_fsync_zero_ahead_reads_and_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_rolls_segments_and_reads_across, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_reset_after_failed_flush_cuts_and_reuses_lsns, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_journal_decode_rejects_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_corrupt_middle_segment_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_tail_follows_writes_and_rolls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_tail_parks_at_a_position, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_sigkill_loses_no_acked_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_concurrent_recovery_is_independent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_retention_keeps_what_a_checkpoint_or_night_needs, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
