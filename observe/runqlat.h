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

/* Why a thread was off its CPU (state when it was switched out). */
#define WF_OFF_SLEEP 0   /* TASK_INTERRUPTIBLE: futex, poll, io_uring wait */
#define WF_OFF_IO 1      /* TASK_UNINTERRUPTIBLE: disk I/O, some kernel locks */
#define WF_OFF_PREEMPT 2 /* still runnable: preempted */
#define WF_OFF_REASONS 3

/* One thread's histogram (run-queue wait, fsync, or off-CPU time of one
 * reason) since the map was last drained. */
struct wf_rq_hist {
	unsigned int tgid;
	unsigned int reason; /* off-CPU histograms: WF_OFF_*; else 0 */
	unsigned long long count;
	unsigned long long sum_ns;
	unsigned int slots[WF_RQ_SLOTS];
};

#endif
