/*
 * syncbench.c - weft-syncbench: how many durable small writes a second
 * this disk does with 1, 2, 4 and 8 of them in flight at once (threads,
 * each a pwrite of 2,000 bytes then fdatasync, over blocks already
 * written, as the journal's zero-ahead makes them). The reason
 * weft-ingest keeps several journal flushes in flight
 * (--journal-flights). Reports only.
 *
 *   weft-syncbench [--dir DIR] [--seconds S]   (default: the current directory, 2 s)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

#define REGION (1000u * 4096u) /* bytes each thread cycles over */

static int fd;
static atomic_ulong ops;
static atomic_int stop;

static void *writer(void *arg)
{
	char buf[2000];
	off_t base = (off_t)(uintptr_t)arg * REGION;

	memset(buf, 'x', sizeof(buf));
	for (uint64_t i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) { /* relaxed: a flag polled */
		if (pwrite(fd, buf, sizeof(buf), base + (off_t)(i % 1000) * 4096) != (ssize_t)sizeof(buf) ||
		    fdatasync(fd) < 0) {
			fprintf(stderr, "weft-syncbench: write failed: %s\n", strerror(errno));
			exit(1);
		}
		atomic_fetch_add_explicit(&ops, 1, memory_order_relaxed); /* relaxed: a count read after join */
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "dir", required_argument, NULL, 'd' },
					      { "seconds", required_argument, NULL, 's' },
					      { NULL, 0, NULL, 0 } };
	const char *dir = ".";
	char path[4096];
	double secs = 2, one = 0;
	static const char zeros[65536];
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'd')
			dir = optarg;
		else if (o == 's' && atof(optarg) > 0)
			secs = atof(optarg);
		else {
			fprintf(stderr, "usage: weft-syncbench [--dir DIR] [--seconds S]\n");
			return 2;
		}
	}
	snprintf(path, sizeof(path), "%s/weft-syncbench.%d", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "weft-syncbench: cannot create %s: %s\n", path, strerror(errno));
		return 1;
	}
	unlink(path);
	/* Written and synced first: the measured writes overwrite allocated blocks. */
	for (uint64_t off = 0; off < 8ull * REGION; off += sizeof(zeros))
		if (pwrite(fd, zeros, sizeof(zeros), (off_t)off) != (ssize_t)sizeof(zeros)) {
			fprintf(stderr, "weft-syncbench: cannot write %s: %s\n", path, strerror(errno));
			return 1;
		}
	fsync(fd);
	for (uintptr_t n = 1; n <= 8; n *= 2) {
		pthread_t t[8];
		uint64_t t0;
		double s, rate;

		atomic_store(&ops, 0);
		atomic_store(&stop, 0);
		t0 = wf_now_ns();
		for (uintptr_t i = 0; i < n; i++)
			pthread_create(&t[i], NULL, writer, (void *)i);
		usleep((useconds_t)(secs * 1e6));
		atomic_store(&stop, 1);
		for (uintptr_t i = 0; i < n; i++)
			pthread_join(t[i], NULL);
		s = (double)(wf_now_ns() - t0) / 1e9;
		rate = (double)atomic_load(&ops) / s;
		if (n == 1)
			one = rate;
		printf("SYNC in_flight %u  %.0f syncs/s  %.0f us each  %.2fx one in flight\n", (unsigned)n, rate,
		       1e6 * (double)n / rate, rate / one);
	}
	close(fd);
	return 0;
}
