/*
 * bpf.c - loads runqlat.bpf.c and fsynclat.bpf.c for weft-observe
 * (libbpf-tools style: open -> set knobs -> load -> fill the filter ->
 * attach, one cleanup label each).
 * Linked into weft-observe only, when WF_HAVE_BPF.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "observe/bpf.h"
#include "fsynclat.skel.h"
#include "runqlat.skel.h"

struct wf_obs_bpf {
	struct runqlat_bpf *skel;
	struct fsynclat_bpf *fs; /* NULL: not running, fs_why says why */
	char fs_why[160];
	uint32_t tgids[WF_RQ_MAX_TGIDS];
	size_t ntgids;
};

/* libbpf's own chatter stays out of weft's log: weft-observe says once
 * what failed (weftctl status shows it). */
static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static void explain(int err, const char *step, char *why, size_t len)
{
	if (err == -EPERM || err == -EACCES)
		snprintf(why, len, "no privilege to %s the BPF programs (weft-observe needs CAP_BPF and CAP_PERFMON, "
				   "or root); run-queue wait from /proc schedstat only", step);
	else
		snprintf(why, len, "cannot %s the BPF programs: %s; run-queue wait from /proc schedstat only", step,
			 strerror(-err));
}

/* Make filter map fd hold exactly tgids[0..n), given it held old[0..nold). */
static int set_filter(int fd, const uint32_t *old, size_t nold, const uint32_t *tgids, size_t n)
{
	uint8_t one = 1;

	for (size_t i = 0; i < nold; i++) {
		size_t j = 0;

		while (j < n && tgids[j] != old[i])
			j++;
		if (j == n)
			bpf_map_delete_elem(fd, &old[i]);
	}
	for (size_t i = 0; i < n && i < WF_RQ_MAX_TGIDS; i++)
		if (tgids[i] && bpf_map_update_elem(fd, &tgids[i], &one, BPF_ANY) < 0)
			return -errno;
	return 0;
}

int wf_obs_bpf_set_tgids(struct wf_obs_bpf *b, const uint32_t *tgids, size_t n)
{
	int r = set_filter(bpf_map__fd(b->skel->maps.tgids), b->tgids, b->ntgids, tgids, n);

	if (r == 0 && b->fs)
		r = set_filter(bpf_map__fd(b->fs->maps.tgids), b->tgids, b->ntgids, tgids, n);
	b->ntgids = 0;
	for (size_t i = 0; i < n && b->ntgids < WF_RQ_MAX_TGIDS; i++)
		if (tgids[i])
			b->tgids[b->ntgids++] = tgids[i];
	return r;
}

const char *wf_obs_bpf_fsync_why(const struct wf_obs_bpf *b)
{
	return b->fs ? NULL : b->fs_why;
}

/* One variant of the optional fsync program (ext4: its tracepoints, else
 * kprobes on vfs_fsync_range), filter = the run-queue program's. 0 or
 * -errno with *ret_step naming what failed. */
static int start_fsync_variant(struct wf_obs_bpf *b, int ext4, const char **ret_step)
{
	struct fsynclat_bpf *fs = fsynclat_bpf__open();
	int err = fs ? 0 : -errno;

	*ret_step = "open";
	if (!err) {
		bpf_program__set_autoload(fs->progs.wf_fsync_enter, !ext4);
		bpf_program__set_autoload(fs->progs.wf_fsync_exit, !ext4);
		bpf_program__set_autoload(fs->progs.wf_ext4_sync_enter, ext4);
		bpf_program__set_autoload(fs->progs.wf_ext4_sync_exit, ext4);
		*ret_step = "load";
		err = fsynclat_bpf__load(fs);
	}
	if (!err) {
		*ret_step = "fill the filter of";
		err = set_filter(bpf_map__fd(fs->maps.tgids), NULL, 0, b->tgids, b->ntgids);
	}
	if (!err) {
		*ret_step = "attach";
		err = fsynclat_bpf__attach(fs);
	}
	if (err) {
		fsynclat_bpf__destroy(fs);
		return err;
	}
	b->fs = fs;
	return 0;
}

static void start_fsync(struct wf_obs_bpf *b)
{
	const char *s1, *s2;
	int e1, e2;

	e1 = start_fsync_variant(b, 0, &s1);
	if (e1 == 0)
		return;
	e2 = start_fsync_variant(b, 1, &s2);
	if (e2 == 0)
		return;
	snprintf(b->fs_why, sizeof(b->fs_why), "cannot %s kprobes on vfs_fsync_range (%s) nor %s ext4's sync_file "
					       "tracepoints (%s)", s1, strerror(-e1), s2, strerror(-e2));
}

int wf_obs_bpf_create(const uint32_t *tgids, size_t n, struct wf_obs_bpf **ret, char *why, size_t why_len)
{
	struct wf_obs_bpf *b;
	int err;

	if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
		snprintf(why, why_len, "the kernel has no BTF (/sys/kernel/btf/vmlinux); "
				       "run-queue wait from /proc schedstat only");
		return -ENOTSUP;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	libbpf_set_print(quiet);
	b->skel = runqlat_bpf__open();
	if (!b->skel) {
		err = -errno;
		explain(err, "open", why, why_len);
		goto cleanup;
	}
	b->skel->rodata->targ_filter = 1;
	err = runqlat_bpf__load(b->skel);
	if (err) {
		explain(err, "load", why, why_len);
		goto cleanup;
	}
	err = wf_obs_bpf_set_tgids(b, tgids, n);
	if (err) {
		explain(err, "fill the filter of", why, why_len);
		goto cleanup;
	}
	err = runqlat_bpf__attach(b->skel);
	if (err) {
		explain(err, "attach", why, why_len);
		goto cleanup;
	}
	start_fsync(b);
	*ret = b;
	return 0;
cleanup:
	wf_obs_bpf_destroy(b);
	return err < 0 ? err : -EINVAL;
}

int wf_obs_bpf_drain(struct wf_obs_bpf *b, enum wf_obs_kind kind, void (*fn)(void *arg, const struct wf_rq_hist *h),
		     void *arg)
{
	int fd;
	uint32_t keys[2 * WF_RQ_MAX_TIDS], key, next;
	struct wf_rq_hist h;
	size_t n = 0;
	int first = 1;

	if (kind == WF_OBS_FSYNC && !b->fs)
		return 0;
	fd = kind == WF_OBS_FSYNC    ? bpf_map__fd(b->fs->maps.hists)
	     : kind == WF_OBS_OFFCPU ? bpf_map__fd(b->skel->maps.offhists)
				     : bpf_map__fd(b->skel->maps.hists);
	/* Collect the keys first: deleting while walking restarts the walk. */
	while (n < sizeof(keys) / sizeof(keys[0]) && bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
		keys[n++] = next;
		key = next;
		first = 0;
	}
	for (size_t i = 0; i < n; i++) {
		/* One step (hash maps since 5.14); else read, then delete,
		 * losing what lands in between (a sample or so per thread). */
		int r = bpf_map_lookup_and_delete_elem(fd, &keys[i], &h);

		if (r < 0 && errno != ENOENT && bpf_map_lookup_elem(fd, &keys[i], &h) == 0)
			r = bpf_map_delete_elem(fd, &keys[i]) < 0 ? -1 : 0;
		if (r == 0 && h.count)
			fn(arg, &h);
	}
	return (int)n;
}

void wf_obs_bpf_destroy(struct wf_obs_bpf *b)
{
	if (!b)
		return;
	fsynclat_bpf__destroy(b->fs);
	runqlat_bpf__destroy(b->skel);
	free(b);
}
