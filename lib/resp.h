/*
 * resp.h - RESP2 request parser and reply writer.
 *
 * Linked into weft-ingest (client socket), weft-admin (admin socket),
 * weft-ranker (writes replies into the reply ring) and the RESP fuzz target.
 * Pure functions over caller buffers: no allocation in the parser, no logging.
 *
 * Requests are RESP arrays of bulk strings (`*2\r\n$4\r\nPING\r\n...`) or
 * inline commands (`PING\r\n`, space-separated, as redis-cli and nc send;
 * double quotes group words with spaces, as in Redis).
 */
#ifndef WF_RESP_H
#define WF_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"

#define WF_RESP_MAX_ARGS 1024          /* hard cap on argc per request */
#define WF_RESP_MAX_BULK (512u * 1024) /* hard cap on one bulk string */
#define WF_RESP_MAX_INLINE (64u * 1024) /* hard cap on one inline line */

struct wf_resp_arg {
	const char *p; /* points into the input buffer (or into inline scratch) */
	uint32_t len;
};

struct wf_resp_limits {
	uint32_t max_args; /* <= WF_RESP_MAX_ARGS */
	uint32_t max_bulk; /* <= WF_RESP_MAX_BULK */
	uint32_t max_inline;
};

/* Default limits (the maxima above). */
extern const struct wf_resp_limits wf_resp_default_limits;

struct wf_resp_req {
	uint32_t argc;
	struct wf_resp_arg argv[WF_RESP_MAX_ARGS];
	/* Inline commands with quotes are unescaped here; argv may point in. */
	char scratch[WF_RESP_MAX_INLINE];
};

/*
 * Parse one request from buf[0..len).
 * Returns:
 *   > 0       bytes consumed; *req holds the request (argc may be 0 for an
 *             empty inline line, which the caller ignores, as Redis does)
 *   0         incomplete: call again with more bytes
 *   -EPROTO   malformed; *ret_err names what was wrong (static string).
 *             The stream cannot be resynchronised: reply and close.
 *   -E2BIG    over a limit (argc, bulk length, inline length); *ret_err says
 *             which. Reply and close.
 * Every length is bounded before it is trusted (as processMultibulkBuffer).
 * argv pointers point into buf or req->scratch: valid while both are.
 */
int wf_resp_parse(const char *buf, size_t len, const struct wf_resp_limits *lim,
		  struct wf_resp_req *req, const char **ret_err);

/* True if argument a equals the ASCII string s, case-insensitively. */
int wf_resp_arg_is(const struct wf_resp_arg *a, const char *s);

/* Reply writers: append RESP2 to b. Return 0 or -ENOMEM. */
int wf_resp_w_simple(struct wf_buf *b, const char *s);              /* +s */
int wf_resp_w_error(struct wf_buf *b, const char *fmt, ...)         /* -fmt */
	__attribute__((format(printf, 2, 3)));
int wf_resp_w_int(struct wf_buf *b, int64_t v);                      /* :v */
int wf_resp_w_bulk(struct wf_buf *b, const void *p, size_t n);       /* $n */
int wf_resp_w_bulk_str(struct wf_buf *b, const char *s);
int wf_resp_w_bulk_fmt(struct wf_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int wf_resp_w_null(struct wf_buf *b);                                /* $-1 */
int wf_resp_w_array(struct wf_buf *b, int64_t n);                    /* *n  */

#endif
