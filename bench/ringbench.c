/*
 * ringbench.c - messages per second through one shared-memory SPSC ring
 * (shm/ring.h) between two processes, one per core: single (commit and
 * release after every message) and batched (every 64).
 *
 *   weft-ringbench [--msgs N] [--size BYTES]
 *
 * Prints one line per mode: "ring <mode> <msgs/s> msgs/s <MB/s> MB/s".
 * Benchmark tooling only; tests/test_ring.c checks correctness.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "shm/ring.h"
#include "shm/shm.h"

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static double run(const char *name, uint64_t msgs, uint32_t size, uint32_t batch)
{
	struct wf_shm_config cfg = { .nshards = 1, .ring_capacity = 1 << 20, .stock_capacity = 16 };
	struct wf_shm *shm;
	struct wf_ring_cons c;
	uint64_t got = 0, sum = 0, t0;
	pid_t pid;
	char shmname[64];

	snprintf(shmname, sizeof(shmname), "weft.bench.ring.%d", (int)getpid());
	wf_shm_unlink(shmname);
	if (wf_shm_create(shmname, &cfg, &shm) < 0) {
		fprintf(stderr, "cannot create shm segment %s\n", shmname);
		exit(1);
	}
	pid = fork();
	if (pid == 0) {
		struct wf_ring_prod p;
		pin(1);
		wf_ring_prod_attach(&p, wf_shm_req_ring(shm, 0));
		for (uint64_t i = 0; i < msgs;) {
			uint32_t n = 0;
			for (; n < batch && i < msgs; n++, i++) {
				void *d = NULL;
				while (wf_ring_reserve(&p, size, 1, &d) < 0) {
					wf_ring_prod_commit(&p);
					__builtin_ia32_pause();
				}
				*(uint64_t *)d = i;
			}
			wf_ring_prod_commit(&p);
		}
		_exit(0);
	}
	pin(0);
	wf_ring_cons_attach(&c, wf_shm_req_ring(shm, 0));
	t0 = wf_now_ns();
	while (got < msgs) {
		uint32_t len, kind, n = 0;
		const uint64_t *d;
		while (n < batch && (d = wf_ring_pop(&c, &len, &kind))) {
			sum += d[0];
			n++;
		}
		if (n) {
			got += n;
			wf_ring_cons_release(&c);
		} else {
			__builtin_ia32_pause();
		}
	}
	double secs = (double)(wf_now_ns() - t0) / 1e9;
	waitpid(pid, NULL, 0);
	wf_shm_detach(shm);
	wf_shm_unlink(shmname);
	if (sum != msgs * (msgs - 1) / 2) {
		fprintf(stderr, "checksum mismatch: ring lost or reordered messages\n");
		exit(1);
	}
	double rate = (double)msgs / secs;
	printf("ring %-8s %12.0f msgs/s %8.1f MB/s  (%u-byte payloads, %llu msgs)\n", name, rate,
	       rate * (size + 8) / 1e6, size, (unsigned long long)msgs);
	return rate;
}

int main(int argc, char **argv)
{
	uint64_t msgs = 20000000;
	uint32_t size = 32;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--msgs") == 0)
			msgs = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--size") == 0)
			size = (uint32_t)strtoul(argv[i + 1], NULL, 10);
	}
	if (size < 8)
		size = 8;
	run("single", msgs / 4, size, 1);
	run("batched", msgs, size, 64);
	return 0;
}
