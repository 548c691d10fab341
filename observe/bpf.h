/*
 * bpf.h - weft-observe's BPF programs through their skeletons:
 * runqlat.bpf.c (run-queue wait, required) and fsynclat.bpf.c
 * (fsync/fdatasync latency, optional: a kernel that cannot trace
 * vfs_fsync_range keeps the first). Built only when meson found clang, bpftool and the kernel's
 * BTF (WF_HAVE_BPF). Owner: weft-observe's context. Never logs: failures
 * come back as -errno plus a sentence for `weftctl status`.
 */
#ifndef WF_OBS_BPF_H
#define WF_OBS_BPF_H

#include <stddef.h>
#include <stdint.h>

#include "observe/runqlat.h"

struct wf_obs_bpf;

enum wf_obs_kind { WF_OBS_RUNQ, WF_OBS_OFFCPU, WF_OBS_FSYNC };

/*
 * Open, load, fill the process filter with tgids[0..n), attach. 0, or
 * -errno with why (a sentence: no BTF, no privilege, ...) filled. The
 * fsync program failing is not an error (wf_obs_bpf_fsync_why()).
 */
int wf_obs_bpf_create(const uint32_t *tgids, size_t n, struct wf_obs_bpf **ret, char *why, size_t why_len);

/* Make the filter hold exactly tgids[0..n) (processes restart). 0 or -errno. */
int wf_obs_bpf_set_tgids(struct wf_obs_bpf *b, const uint32_t *tgids, size_t n);

/* NULL if the fsync program runs, else why not. */
const char *wf_obs_bpf_fsync_why(const struct wf_obs_bpf *b);

/*
 * Read and clear every thread's histogram of one program: fn(arg, h) once
 * per thread with samples since the last drain. Returns the threads read
 * (0 for an fsync program that does not run) or -errno.
 */
int wf_obs_bpf_drain(struct wf_obs_bpf *b, enum wf_obs_kind kind, void (*fn)(void *arg, const struct wf_rq_hist *h),
		     void *arg);

/* Detach and free; takes NULL. */
void wf_obs_bpf_destroy(struct wf_obs_bpf *b);

#endif
