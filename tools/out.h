/*
 * out.h - fast buffered CSV writer for weft-gen and weft-import: appends
 * into a 4 MiB buffer with hand-rolled integer formatting and flushes with
 * fwrite. Errors are sticky and reported once by out_close().
 *
 * Included by the programs in tools/ only.
 */
#ifndef WF_TOOLS_OUT_H
#define WF_TOOLS_OUT_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_CAP (4u << 20)
#define OUT_SLACK 4096 /* largest single append between flush checks */

struct out {
	FILE *f;
	char *buf;
	size_t len;
	int err; /* first -errno seen */
};

static inline int out_open(struct out *o, const char *path)
{
	memset(o, 0, sizeof(*o));
	o->buf = malloc(OUT_CAP + OUT_SLACK);
	if (!o->buf)
		return -ENOMEM;
	o->f = fopen(path, "we");
	if (!o->f) {
		int r = -errno;
		free(o->buf);
		o->buf = NULL;
		return r;
	}
	return 0;
}

static inline void out_flush(struct out *o)
{
	if (o->len && !o->err && fwrite(o->buf, 1, o->len, o->f) != o->len)
		o->err = errno ? -errno : -EIO;
	o->len = 0;
}

/* Call once per record: flushes when the buffer is nearly full. */
static inline void out_maybe_flush(struct out *o)
{
	if (o->len >= OUT_CAP)
		out_flush(o);
}

static inline void out_mem(struct out *o, const void *p, size_t n)
{
	if (n > OUT_SLACK) {
		out_flush(o);
		if (!o->err && fwrite(p, 1, n, o->f) != n)
			o->err = errno ? -errno : -EIO;
		return;
	}
	if (o->len + n > OUT_CAP + OUT_SLACK)
		out_flush(o);
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static inline void out_str(struct out *o, const char *s)
{
	out_mem(o, s, strlen(s));
}

static inline void out_ch(struct out *o, char ch)
{
	if (o->len + 1 > OUT_CAP + OUT_SLACK)
		out_flush(o);
	o->buf[o->len++] = ch;
}

/* Unsigned decimal, zero-padded to at least width digits. */
static inline void out_u64w(struct out *o, uint64_t v, int width)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n < width && n < (int)sizeof(tmp))
		tmp[n++] = '0';
	if (o->len + (size_t)n > OUT_CAP + OUT_SLACK)
		out_flush(o);
	while (n)
		o->buf[o->len++] = tmp[--n];
}

static inline void out_u64(struct out *o, uint64_t v)
{
	out_u64w(o, v, 1);
}

/* Close; returns 0 or the first -errno of any write, flush or close. */
static inline int out_close(struct out *o)
{
	int r;

	if (!o->f)
		return o->err;
	out_flush(o);
	if (fflush(o->f) != 0 && !o->err)
		o->err = -errno;
	if (fclose(o->f) != 0 && !o->err)
		o->err = -errno;
	o->f = NULL;
	free(o->buf);
	o->buf = NULL;
	r = o->err;
	return r;
}

#endif
