/*
 * fuzz_resp.c - libFuzzer target for the RESP2 request parser
 * (lib/resp.c, as weft-ingest drives it): parses a whole input as a
 * pipeline, checking each result against the documented contract:
 *   - the result is > 0, 0, -EPROTO or -E2BIG, and an error names itself;
 *   - consumed <= len, argc <= the limit, every argument lies inside the
 *     consumed bytes or the request's scratch, and within the bulk limit;
 *   - the parse is a pure function: the same bytes give the same result;
 *   - a stream split anywhere asks for more (0) at every cut before the end
 *     of a request that parses whole, so feeding byte by byte is safe;
 * once with the default limits and once with tight ones (small argc,
 * bulk and inline limits, as a configured ingest might use).
 * Built only with -Dfuzz=true (tests/meson.build fuzz block); seeds in
 * tests/fuzz/resp/.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_req(const struct wf_resp_req *req, const struct wf_resp_limits *lim, const char *frame, size_t n)
{
	assert(req->argc <= lim->max_args);
	for (uint32_t i = 0; i < req->argc; i++) {
		const char *p = req->argv[i].p;
		size_t l = req->argv[i].len;
		int in_buf = p >= frame && p + l <= frame + n;
		int in_scratch = p >= req->scratch && p + l <= req->scratch + sizeof(req->scratch);

		assert(in_buf || in_scratch || l == 0);
		if (frame[0] == '*')
			assert(l <= lim->max_bulk);
		else
			assert(l <= lim->max_inline);
	}
	if (frame[0] != '*')
		assert(n <= (size_t)lim->max_inline + 2); /* line + CRLF */
}

static void run(const char *buf, size_t size, const struct wf_resp_limits *lim)
{
	static struct wf_resp_req req, again;
	size_t off = 0;

	while (off < size) {
		const char *err = NULL, *err2 = NULL;
		int n = wf_resp_parse(buf + off, size - off, lim, &req, &err);

		assert(n == wf_resp_parse(buf + off, size - off, lim, &again, &err2));
		if (n <= 0) {
			assert(n == 0 || n == -EPROTO || n == -E2BIG);
			assert(n == 0 || (err != NULL && err[0] != '\0' && err == err2));
			break;
		}
		assert((size_t)n <= size - off);
		assert(req.argc == again.argc);
		check_req(&req, lim, buf + off, (size_t)n);
		/* Every cut before the end (up to 64 of them, spread) needs more. */
		size_t step = (size_t)n / 64 + 1;
		for (size_t cut = 0; cut < (size_t)n; cut += step)
			assert(wf_resp_parse(buf + off, cut, lim, &again, &err2) == 0);
		assert(wf_resp_parse(buf + off, (size_t)n - 1, lim, &again, &err2) == 0);
		off += (size_t)n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct wf_resp_limits tight = { .max_args = 4, .max_bulk = 16, .max_inline = 32 };
	char *buf = malloc(size ? size : 1); /* exact size: ASan sees overreads */

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	run(buf, size, &wf_resp_default_limits);
	run(buf, size, &tight);
	free(buf);
	return 0;
}
