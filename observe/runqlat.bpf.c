/*
 * runqlat.bpf.c - run-queue latency of weft's threads, as libbpf-tools'
 * runqlat measures it: a thread is stamped when it becomes runnable
 * (sched_wakeup, sched_wakeup_new, or preempted while still TASK_RUNNING
 * at sched_switch) and charged when sched_switch puts it on a CPU. Only
 * threads whose process is in `tgids` (filled by weft-observe before it
 * attaches) are counted, into a log2 histogram per thread.
 * The same switches give off-CPU time by reason (as offcputime, without
 * stacks): from a thread's switch-out to its next switch-in, charged to
 * the state it left in (sleep, I/O, preempted; runqlat.h WF_OFF_*).
 * Loaded by weft-observe (observe/bpf.c) through its skeleton.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "observe/hist.bpf.h"

#define TASK_RUNNING 0
#define TASK_UNINTERRUPTIBLE 2

struct wf_off_start {
	__u64 ts;
	__u32 reason;
	__u32 pad;
};

/* tid -> when and why it left its CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WF_RQ_MAX_TIDS);
	__type(key, __u32);
	__type(value, struct wf_off_start);
} offstart SEC(".maps");

/* tid * WF_OFF_REASONS + reason -> off-CPU histogram. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WF_RQ_MAX_TIDS * 2);
	__type(key, __u32);
	__type(value, struct wf_rq_hist);
} offhists SEC(".maps");

/* Knob: 0 counts every thread of the machine (a test of the program itself). */
const volatile int targ_filter = 1;

/* Kernels before 5.14 call the field `state` (libbpf-tools' core_fixes). */
struct task_struct___o {
	volatile long int state;
} __attribute__((preserve_access_index));

struct task_struct___x {
	unsigned int __state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(void *task)
{
	struct task_struct___x *t = task;

	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___o *)task, state);
}

static __always_inline int wanted(__u32 tgid)
{
	return !targ_filter || bpf_map_lookup_elem(&tgids, &tgid);
}

static __always_inline int enqueue(__u32 tgid, __u32 pid)
{
	__u64 ts;

	if (!pid || !wanted(tgid))
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &pid, &ts, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(wf_sched_wakeup, struct task_struct *p)
{
	return enqueue(p->tgid, p->pid);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(wf_sched_wakeup_new, struct task_struct *p)
{
	return enqueue(p->tgid, p->pid);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(wf_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 pid = next->pid, ppid = prev->pid;
	long state = task_state(prev);
	struct wf_off_start *off;
	__u64 *tsp, delta, now = bpf_ktime_get_ns();

	if (state == TASK_RUNNING)
		enqueue(prev->tgid, ppid);
	if (ppid && wanted(prev->tgid)) {
		struct wf_off_start o = { now, state == TASK_RUNNING	      ? WF_OFF_PREEMPT
					       : state & TASK_UNINTERRUPTIBLE ? WF_OFF_IO
									      : WF_OFF_SLEEP };

		bpf_map_update_elem(&offstart, &ppid, &o, BPF_ANY);
	}
	off = bpf_map_lookup_elem(&offstart, &pid);
	if (off) {
		delta = now - off->ts;
		if ((__s64)delta >= 0 && off->reason < WF_OFF_REASONS)
			wf_hist_add_to(&offhists, pid * WF_OFF_REASONS + off->reason, next->tgid, off->reason, delta);
		bpf_map_delete_elem(&offstart, &pid);
	}
	tsp = bpf_map_lookup_elem(&start, &pid);
	if (!tsp)
		return 0;
	delta = now - *tsp;
	bpf_map_delete_elem(&start, &pid);
	if ((__s64)delta >= 0)
		wf_hist_add(pid, next->tgid, delta);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
