/*
 * runqlat.h - what runqlat.bpf.c and weft-observe share (libbpf-tools
 * triad): fixed-size types only. Compiles for the BPF target and for
 * user space.
 */
#ifndef WF_RUNQLAT_H
#define WF_RUNQLAT_H

#define WF_RQ_SLOTS 40 /* log2 buckets of ns: slot k holds [2^k, 2^(k+1)) */
#define WF_RQ_MAX_TGIDS 128
#define WF_RQ_MAX_TIDS 4096

/* Run-queue wait of one thread since the map was last cleared. */
struct wf_rq_hist {
	unsigned int tgid;
	unsigned int pad;
	unsigned long long count;
	unsigned long long sum_ns;
	unsigned int slots[WF_RQ_SLOTS];
};

#endif
