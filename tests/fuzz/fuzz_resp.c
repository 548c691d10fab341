/*
 * fuzz_resp.c - libFuzzer target for the RESP2 request parser
 * (lib/resp.c, as weft-ingest drives it): parses a whole input as a
 * pipeline, checking each result against the documented contract.
 * Built only with -Dfuzz=true (tests/meson.build fuzz block).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct wf_resp_req req;
	char *buf = malloc(size ? size : 1); /* exact size: ASan sees overreads */
	size_t off = 0;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	while (off < size) {
		const char *err = NULL;
		int n = wf_resp_parse(buf + off, size - off, &wf_resp_default_limits, &req, &err);

		if (n <= 0) {
			assert(n == 0 || n == -EPROTO || n == -E2BIG);
			assert(n == 0 || err != NULL);
			break;
		}
		assert((size_t)n <= size - off);
		assert(req.argc <= WF_RESP_MAX_ARGS);
		for (uint32_t i = 0; i < req.argc; i++) {
			const char *p = req.argv[i].p;
			int in_buf = p >= buf + off && p + req.argv[i].len <= buf + off + n;
			int in_scratch = p >= req.scratch && p + req.argv[i].len <= req.scratch + sizeof(req.scratch);

			assert(in_buf || in_scratch || req.argv[i].len == 0);
		}
		off += (size_t)n;
	}
	free(buf);
	return 0;
}
