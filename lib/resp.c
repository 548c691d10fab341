/*
 * resp.c - RESP2 request parser and reply writers (see resp.h).
 *
 * Linked into weft-ingest, weft-admin, weft-ranker and the RESP fuzz
 * target. The parser follows Redis's processMultibulkBuffer and
 * processInlineBuffer: every length is bounded before it is trusted, and
 * each call either consumes one whole request, asks for more bytes, or
 * names the protocol error. It never allocates and never logs.
 */
#include "lib/resp.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const struct wf_resp_limits wf_resp_default_limits = {
	.max_args = WF_RESP_MAX_ARGS,
	.max_bulk = WF_RESP_MAX_BULK,
	.max_inline = WF_RESP_MAX_INLINE,
};

/* Parse "<digits>\r\n" at p (a leading '-' allowed; no '+', no leading
 * zeros, as Redis's string2ll). Returns bytes used incl. CRLF, 0 if the
 * line is incomplete, -EPROTO as soon as a byte cannot belong to such a
 * line or the value passes 2^40 (so at most ~16 bytes are ever scanned). */
static int parse_len_line(const char *p, size_t len, int64_t *ret)
{
	size_t i = 0, d0;
	int64_t v = 0;
	int neg = 0;

	if (len && p[0] == '-') {
		neg = 1;
		i = 1;
	}
	d0 = i;
	for (; i < len && p[i] != '\r'; i++) {
		if (p[i] < '0' || p[i] > '9' || (i > d0 && p[d0] == '0'))
			return -EPROTO;
		v = v * 10 + (p[i] - '0');
		if (v > (int64_t)1 << 40)
			return -EPROTO;
	}
	if (i == len)
		return 0;
	if (i == d0)
		return -EPROTO; /* no digits */
	if (i + 1 == len)
		return 0; /* need the '\n' */
	if (p[i + 1] != '\n')
		return -EPROTO;
	*ret = neg ? -v : v;
	return (int)i + 2;
}

static int parse_multibulk(const char *buf, size_t len, const struct wf_resp_limits *lim, struct wf_resp_req *req,
			   const char **ret_err)
{
	size_t off = 1;
	int64_t n;
	int r;

	r = parse_len_line(buf + 1, len - 1, &n);
	if (r == 0)
		return 0;
	if (r < 0) {
		*ret_err = "Protocol error: invalid multibulk length";
		return -EPROTO;
	}
	off += (size_t)r;
	if (n > (int64_t)lim->max_args) {
		*ret_err = "too many arguments in one command";
		return -E2BIG;
	}
	if (n <= 0) {
		/* "*0" and "*-1" are empty requests, as in Redis. */
		req->argc = 0;
		return (int)off;
	}
	for (int64_t i = 0; i < n; i++) {
		int64_t bl;

		if (off >= len)
			return 0;
		if (buf[off] != '$') {
			*ret_err = "Protocol error: expected '$'";
			return -EPROTO;
		}
		r = parse_len_line(buf + off + 1, len - off - 1, &bl);
		if (r == 0)
			return 0;
		if (r < 0 || bl < 0) {
			*ret_err = "Protocol error: invalid bulk length";
			return -EPROTO;
		}
		if (bl > (int64_t)lim->max_bulk) {
			*ret_err = "argument too long";
			return -E2BIG;
		}
		off += 1 + (size_t)r;
		if (len - off < (size_t)bl + 2)
			return 0;
		if (buf[off + (size_t)bl] != '\r' || buf[off + (size_t)bl + 1] != '\n') {
			*ret_err = "Protocol error: bulk string not followed by CRLF";
			return -EPROTO;
		}
		req->argv[i].p = buf + off;
		req->argv[i].len = (uint32_t)bl;
		off += (size_t)bl + 2;
	}
	req->argc = (uint32_t)n;
	return off > (size_t)INT32_MAX ? -E2BIG : (int)off;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* Split one inline line like Redis's sdssplitargs: spaces separate words,
 * "double" quotes allow escapes (\n \r \t \b \a \\ \" \xHH), 'single'
 * quotes only \'. A closing quote must be followed by a space or the end. */
static int split_inline(const char *line, size_t n, const struct wf_resp_limits *lim, struct wf_resp_req *req,
			const char **ret_err)
{
	size_t i = 0, s = 0;
	uint32_t argc = 0;

	for (;;) {
		while (i < n && isspace((unsigned char)line[i]))
			i++;
		if (i >= n)
			break;
		if (argc >= lim->max_args) {
			*ret_err = "too many arguments in one command";
			return -E2BIG;
		}
		size_t start = s;
		if (line[i] == '"' || line[i] == '\'') {
			char q = line[i++];
			int closed = 0;
			while (i < n) {
				char c = line[i];
				if (q == '"' && c == '\\' && i + 3 < n && line[i + 1] == 'x' && hexval(line[i + 2]) >= 0 &&
				    hexval(line[i + 3]) >= 0) {
					req->scratch[s++] = (char)(hexval(line[i + 2]) * 16 + hexval(line[i + 3]));
					i += 4;
				} else if (c == '\\' && i + 1 < n && (q == '"' || line[i + 1] == '\'')) {
					char e = line[i + 1];
					if (q == '"')
						e = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e == 'a' ? '\a' : e;
					req->scratch[s++] = e;
					i += 2;
				} else if (c == q) {
					i++;
					closed = 1;
					break;
				} else {
					req->scratch[s++] = c;
					i++;
				}
			}
			if (!closed || (i < n && !isspace((unsigned char)line[i]))) {
				*ret_err = "Protocol error: unbalanced quotes in request";
				return -EPROTO;
			}
		} else {
			while (i < n && !isspace((unsigned char)line[i]))
				req->scratch[s++] = line[i++];
		}
		req->argv[argc].p = req->scratch + start;
		req->argv[argc].len = (uint32_t)(s - start);
		argc++;
	}
	req->argc = argc;
	return 0;
}

static int parse_inline(const char *buf, size_t len, const struct wf_resp_limits *lim, struct wf_resp_req *req,
			const char **ret_err)
{
	size_t max = WF_MIN((size_t)lim->max_inline, sizeof(req->scratch));
	const char *nl = memchr(buf, '\n', WF_MIN(len, max + 2)); /* max bytes, CR, LF */
	size_t n;
	int r;

	if (!nl) {
		/* Over the limit once max + 1 bytes are here and the last of them
		 * cannot be the CR of a CRLF. */
		if (len > max + 1 || (len == max + 1 && buf[max] != '\r')) {
			*ret_err = "Protocol error: too big inline request";
			return -E2BIG;
		}
		return 0;
	}
	n = (size_t)(nl - buf);
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n > max) {
		*ret_err = "Protocol error: too big inline request";
		return -E2BIG;
	}
	r = split_inline(buf, n, lim, req, ret_err);
	if (r < 0)
		return r;
	return (int)(nl - buf) + 1;
}

int wf_resp_parse(const char *buf, size_t len, const struct wf_resp_limits *lim, struct wf_resp_req *req,
		  const char **ret_err)
{
	struct wf_resp_limits l = lim ? *lim : wf_resp_default_limits;

	l.max_args = WF_MIN(l.max_args, WF_RESP_MAX_ARGS);
	l.max_bulk = WF_MIN(l.max_bulk, WF_RESP_MAX_BULK);
	l.max_inline = WF_MIN(l.max_inline, WF_RESP_MAX_INLINE);
	if (len == 0)
		return 0;
	if (buf[0] == '*')
		return parse_multibulk(buf, len, &l, req, ret_err);
	return parse_inline(buf, len, &l, req, ret_err);
}

int wf_resp_arg_is(const struct wf_resp_arg *a, const char *s)
{
	size_t n = strlen(s);

	return a->len == n && strncasecmp(a->p, s, n) == 0;
}

/* ---- writers ---- */

int wf_resp_w_simple(struct wf_buf *b, const char *s)
{
	int r = wf_buf_append(b, "+", 1);

	if (!r)
		r = wf_buf_append(b, s, strlen(s));
	return r ? r : wf_buf_append(b, "\r\n", 2);
}

int wf_resp_w_error(struct wf_buf *b, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* An error line may not contain CR or LF. */
	for (char *p = msg; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	r = wf_buf_append(b, "-", 1);
	if (!r)
		r = wf_buf_append(b, msg, strlen(msg));
	return r ? r : wf_buf_append(b, "\r\n", 2);
}

int wf_resp_w_int(struct wf_buf *b, int64_t v)
{
	return wf_buf_printf(b, ":%lld\r\n", (long long)v);
}

/* "<c><decimal n>\r\n" into out (>= 24 bytes); returns its length. On the
 * reply hot path: no printf. */
static int len_line(char *out, char c, uint64_t n)
{
	char tmp[24];
	int t = 0, h = 0;

	do {
		tmp[t++] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	out[h++] = c;
	while (t)
		out[h++] = tmp[--t];
	out[h++] = '\r';
	out[h++] = '\n';
	return h;
}

int wf_resp_w_bulk(struct wf_buf *b, const void *p, size_t n)
{
	char hdr[32];
	int h = len_line(hdr, '$', n);
	int r = wf_buf_reserve(b, (size_t)h + n + 3);

	if (r)
		return r;
	memcpy(b->data + b->len, hdr, (size_t)h);
	memcpy(b->data + b->len + h, p, n);
	memcpy(b->data + b->len + h + n, "\r\n", 3);
	b->len += (size_t)h + n + 2;
	return 0;
}

int wf_resp_w_bulk_str(struct wf_buf *b, const char *s)
{
	return wf_resp_w_bulk(b, s, strlen(s));
}

int wf_resp_w_bulk_fmt(struct wf_buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	return wf_resp_w_bulk(b, tmp, WF_MIN((size_t)n, sizeof(tmp) - 1));
}

int wf_resp_w_null(struct wf_buf *b)
{
	return wf_buf_append(b, "$-1\r\n", 5);
}

int wf_resp_w_array(struct wf_buf *b, int64_t n)
{
	char hdr[32];

	if (n < 0)
		return wf_buf_append(b, "*-1\r\n", 5);
	return wf_buf_append(b, hdr, (size_t)len_line(hdr, '*', (uint64_t)n));
}
