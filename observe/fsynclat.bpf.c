/*
 * fsynclat.bpf.c - how long weft's fsync/fdatasync calls take, timed
 * where both the fdatasync system call and io_uring's IORING_OP_FSYNC
 * (weft-ingest's journal flushes, run by its io-wq worker threads, same
 * thread group) go through: a kprobe/kretprobe pair on vfs_fsync_range
 * (any file system; kprobes rather than fentry/fexit, which need a BPF
 * trampoline some kernels refuse), or, where the kernel has no kprobes,
 * ext4's sync_file tracepoints; the loader picks one pair (autoload). A
 * log2 histogram (ns) and a sum per thread of the processes in `tgids`.
 * Loaded by weft-observe (observe/bpf.c), optional: without it the
 * run-queue program still runs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "observe/hist.bpf.h"

static __always_inline int enter(void)
{
	__u64 id = bpf_get_current_pid_tgid(), ts;
	__u32 tgid = id >> 32, tid = (__u32)id;

	if (!bpf_map_lookup_elem(&tgids, &tgid))
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &tid, &ts, BPF_ANY);
	return 0;
}

static __always_inline int leave(void)
{
	__u64 id = bpf_get_current_pid_tgid(), *tsp, delta;
	__u32 tid = (__u32)id;

	tsp = bpf_map_lookup_elem(&start, &tid);
	if (!tsp)
		return 0;
	delta = bpf_ktime_get_ns() - *tsp;
	bpf_map_delete_elem(&start, &tid);
	wf_hist_add(tid, id >> 32, delta);
	return 0;
}

/* Any file system: needs kprobes (CONFIG_KPROBE_EVENTS). */
SEC("kprobe/vfs_fsync_range")
int BPF_KPROBE(wf_fsync_enter)
{
	return enter();
}

SEC("kretprobe/vfs_fsync_range")
int BPF_KRETPROBE(wf_fsync_exit)
{
	return leave();
}

/* Else ext4's own tracepoints (the journal's usual file system). */
SEC("tp_btf/ext4_sync_file_enter")
int BPF_PROG(wf_ext4_sync_enter, struct file *file, int datasync)
{
	return enter();
}

SEC("tp_btf/ext4_sync_file_exit")
int BPF_PROG(wf_ext4_sync_exit, struct inode *inode, int ret)
{
	return leave();
}

char LICENSE[] SEC("license") = "GPL";
