/*
 * hist.bpf.h - what runqlat.bpf.c and fsynclat.bpf.c share (BPF side
 * only): the process filter, the start stamps and the per-thread log2
 * histograms (each object gets its own maps), and the one way to add a
 * sample. Include after vmlinux.h and bpf_helpers.h.
 */
#ifndef WF_HIST_BPF_H
#define WF_HIST_BPF_H

#include "observe/runqlat.h"

/* Processes counted (tgid -> 1): filled by weft-observe before attach. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WF_RQ_MAX_TGIDS);
	__type(key, __u32);
	__type(value, __u8);
} tgids SEC(".maps");

/* tid -> ns when the measured interval began. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WF_RQ_MAX_TIDS);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

/* tid -> its histogram since weft-observe last drained it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WF_RQ_MAX_TIDS);
	__type(key, __u32);
	__type(value, struct wf_rq_hist);
} hists SEC(".maps");

static struct wf_rq_hist zero;

/* Charge delta ns to key (a tid, or an off-CPU key) of process tgid in
 * map (hists, or an off-CPU map). */
static __always_inline void wf_hist_add_to(void *map, __u32 key, __u32 tgid, __u32 reason, __u64 delta)
{
	struct wf_rq_hist *h = bpf_map_lookup_elem(map, &key);
	__u32 slot = 0;
	__u64 v;

	if (!h) {
		bpf_map_update_elem(map, &key, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(map, &key);
		if (!h)
			return;
	}
	h->tgid = tgid;
	h->reason = reason;
	/* At most WF_RQ_SLOTS - 1 steps: a bounded loop for the verifier. */
	for (v = delta; v >= 2 && slot < WF_RQ_SLOTS - 1; v >>= 1)
		slot++;
	__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum_ns, delta);
}

static __always_inline void wf_hist_add(__u32 tid, __u32 tgid, __u64 delta)
{
	wf_hist_add_to(&hists, tid, tgid, 0, delta);
}

#endif
