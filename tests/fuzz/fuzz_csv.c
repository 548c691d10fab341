/*
 * fuzz_csv.c - libFuzzer target for the CSV reader (lib/csv.h), which reads
 * every events, catalog and inventory file weft is given. The input goes
 * through a memfd so the real buffered reader runs. Invariants: every
 * record's fields lie inside the reader's buffer and line numbers only grow.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct wf_csv c;
	uint64_t last_line = 0, sink = 0;
	int fd = memfd_create("fuzz_csv", MFD_CLOEXEC), r;

	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	/* Both separators weft uses: ',' (its own files), ';' (DIGINETICA). */
	for (int pass = 0; pass < 2; pass++) {
		if (wf_csv_open(&c, path, pass ? ';' : ',') < 0)
			break;
		last_line = 0;
		while ((r = wf_csv_next(&c)) != 0) {
			if (r < 0 && r != -EPROTO)
				break;
			assert(c.line_no >= last_line);
			last_line = c.line_no;
			if (r < 0)
				continue;
			assert(c.nfields <= WF_CSV_MAX_FIELDS);
			for (uint32_t i = 0; i < c.nfields; i++) {
				char tmp[64];
				assert(c.field[i].len <= WF_CSV_MAX_LINE);
				if (c.field[i].len)
					sink += (unsigned char)c.field[i].p[c.field[i].len - 1];
				wf_csv_str(&c, i, tmp, sizeof(tmp));
				sink += (unsigned char)tmp[0];
			}
		}
		wf_csv_close(&c);
	}
	close(fd);
	return (int)(sink & 0);
}
