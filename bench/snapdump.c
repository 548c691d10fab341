/*
 * snapdump.c - write a snapshot's per-user candidate lists as Redis
 * commands (RESP, for `redis-cli --pipe`), so bench/run can load the very
 * same lists into redis-server and compare LRANGE with weft's RECS.
 *
 *   weft-snapdump FILE [--max N] > lists.resp
 *
 * One `RPUSH <user id> item…` per user, items in list order (best first),
 * at most N (default: the whole list). Benchmark tooling only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/snapshot.h"

static void bulk(FILE *f, const char *p, size_t n)
{
	fprintf(f, "$%zu\r\n", n);
	fwrite(p, 1, n, f);
	fputs("\r\n", f);
}

int main(int argc, char **argv)
{
	struct wf_snap *s;
	char err[512];
	uint32_t max = 0xffffffffu;
	int r;

	if (argc < 2) {
		fprintf(stderr, "usage: weft-snapdump FILE [--max N] > lists.resp\n");
		return 2;
	}
	if (argc >= 4 && strcmp(argv[2], "--max") == 0)
		max = (uint32_t)strtoul(argv[3], NULL, 10);
	r = wf_snap_open(argv[1], &s, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "weft-snapdump: %s\n", err);
		return 1;
	}
	for (uint32_t u = 0; u < s->nusers; u++) {
		const struct wf_snap_user *usr = &s->users[u];
		uint32_t n = usr->cand_cnt < max ? usr->cand_cnt : max;

		if (n == 0)
			continue;
		fprintf(stdout, "*%u\r\n", n + 2);
		bulk(stdout, "RPUSH", 5);
		bulk(stdout, wf_snap_str(s, usr->id_off), usr->id_len);
		for (uint32_t i = 0; i < n; i++) {
			const struct wf_snap_item *it = &s->items[s->cands[usr->cand_off + i].item];
			bulk(stdout, wf_snap_str(s, it->id_off), it->id_len);
		}
	}
	wf_snap_close(s);
	return fflush(stdout) == 0 ? 0 : 1;
}
