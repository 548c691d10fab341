/*
 * bpf.h - weft-observe's BPF programs (runqlat.bpf.c through its
 * skeleton). Built only when meson found clang, bpftool and the kernel's
 * BTF (WF_HAVE_BPF). Owner: weft-observe's context. Never logs: failures
 * come back as -errno plus a sentence for `weftctl status`.
 */
#ifndef WF_OBS_BPF_H
#define WF_OBS_BPF_H

#include <stddef.h>
#include <stdint.h>

#include "observe/runqlat.h"

struct wf_obs_bpf;

/*
 * Open, load, fill the process filter with tgids[0..n), attach. 0, or
 * -errno with why (a sentence: no BTF, no privilege, ...) filled.
 */
int wf_obs_bpf_create(const uint32_t *tgids, size_t n, struct wf_obs_bpf **ret, char *why, size_t why_len);

/* Make the filter hold exactly tgids[0..n) (processes restart). 0 or -errno. */
int wf_obs_bpf_set_tgids(struct wf_obs_bpf *b, const uint32_t *tgids, size_t n);

/*
 * Read and clear every thread's histogram: fn(arg, h) once per thread
 * with samples since the last drain. Returns the threads read or -errno.
 */
int wf_obs_bpf_drain(struct wf_obs_bpf *b, void (*fn)(void *arg, const struct wf_rq_hist *h), void *arg);

/* Detach and free; takes NULL. */
void wf_obs_bpf_destroy(struct wf_obs_bpf *b);

#endif
