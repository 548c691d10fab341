/*
 * bpf.c - loads runqlat.bpf.c for weft-observe (libbpf-tools style: open
 * -> set knobs -> load -> fill the filter -> attach, one cleanup label).
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
#include "runqlat.skel.h"

struct wf_obs_bpf {
	struct runqlat_bpf *skel;
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

int wf_obs_bpf_set_tgids(struct wf_obs_bpf *b, const uint32_t *tgids, size_t n)
{
	int fd = bpf_map__fd(b->skel->maps.tgids);
	uint8_t one = 1;

	for (size_t i = 0; i < b->ntgids; i++) {
		size_t j = 0;

		while (j < n && tgids[j] != b->tgids[i])
			j++;
		if (j == n)
			bpf_map_delete_elem(fd, &b->tgids[i]);
	}
	b->ntgids = 0;
	for (size_t i = 0; i < n && b->ntgids < WF_RQ_MAX_TGIDS; i++) {
		if (!tgids[i])
			continue;
		if (bpf_map_update_elem(fd, &tgids[i], &one, BPF_ANY) < 0)
			return -errno;
		b->tgids[b->ntgids++] = tgids[i];
	}
	return 0;
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
	*ret = b;
	return 0;
cleanup:
	wf_obs_bpf_destroy(b);
	return err < 0 ? err : -EINVAL;
}

int wf_obs_bpf_drain(struct wf_obs_bpf *b, void (*fn)(void *arg, const struct wf_rq_hist *h), void *arg)
{
	int fd = bpf_map__fd(b->skel->maps.hists);
	uint32_t keys[WF_RQ_MAX_TIDS], key, next;
	struct wf_rq_hist h;
	size_t n = 0;
	int first = 1;

	/* Collect the keys first: deleting while walking restarts the walk. */
	while (n < WF_RQ_MAX_TIDS && bpf_map_get_next_key(fd, first ? NULL : &key, &next) == 0) {
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
	runqlat_bpf__destroy(b->skel);
	free(b);
}
