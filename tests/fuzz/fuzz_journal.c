/*
 * fuzz_journal.c - libFuzzer target for the journal record decoder
 * (wf_journal_decode), the code that reads whatever a crash left on disk.
 * Invariants: a decoded record lies inside the input, its arguments lie
 * inside the record, and decoding never reads past the buffer.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct wf_journal_rec rec;
	/* Copy so ASan sees the exact bounds and alignment does not matter. */
	uint8_t *buf = malloc(size ? size : 1);
	size_t off = 0;

	memcpy(buf, data, size);
	while (off < size) {
		int n = wf_journal_decode(buf + off, size - off, &rec);
		if (n <= 0)
			break;
		assert((size_t)n <= size - off);
		for (uint32_t i = 0; i < rec.argc; i++) {
			assert((const uint8_t *)rec.argv[i] >= buf + off);
			assert((const uint8_t *)rec.argv[i] + rec.argl[i] <= buf + off + (size_t)n);
		}
		off += (size_t)n;
	}
	free(buf);
	return 0;
}
