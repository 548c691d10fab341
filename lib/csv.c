/*
 * csv.c - streaming CSV reader (lib/csv.h).
 *
 * Linked through libweft into weft-batch, weft-eval, weft-gen, weft-import,
 * weftctl and the CSV fuzz target. Never logs.
 *
 * A record is one physical line: the reader keeps a 2 MiB block buffer,
 * refills it with large fread() calls, finds the end of the line with
 * memchr() and splits the line in place (quoted fields are unescaped in
 * place, which only ever shrinks them). A quoted field may hold the
 * separator and "" but not a newline: a quote still open at the end of the
 * line is an unterminated quote, reported as -EPROTO, and reading goes on
 * with the next line. Blank lines are skipped (they still count in line_no).
 */
#include "lib/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* Room for one maximal line plus a refill of at least the same size. */
#define CSV_BUF_CAP (2 * (size_t)WF_CSV_MAX_LINE)

/* Set c up to read f (owned from now on) with separator sep. 0 or -ENOMEM
 * (f closed, unless it is stdin). */
static int csv_init(struct wf_csv *c, FILE *f, char sep)
{
	memset(c, 0, sizeof(*c));
	/* +1: a NUL can always be written after the last byte. */
	c->buf = malloc(CSV_BUF_CAP + 1);
	if (!c->buf) {
		if (f != stdin)
			fclose(f);
		return -ENOMEM;
	}
	c->f = f;
	c->sep = sep;
	c->buf_cap = CSV_BUF_CAP;
	return 0;
}

int wf_csv_open(struct wf_csv *c, const char *path, char sep)
{
	FILE *f;

	if (!c || !path || sep == '"' || sep == '\n' || sep == '\r')
		return -EINVAL;
	if (strcmp(path, "-") == 0) {
		f = stdin;
	} else {
		f = fopen(path, "re");
		if (!f)
			return -errno;
		(void)posix_fadvise(fileno(f), 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	return csv_init(c, f, sep);
}

int wf_csv_open_mem(struct wf_csv *c, const char *p, size_t len, char sep)
{
	FILE *f;

	if (!c || !p || sep == '"' || sep == '\n' || sep == '\r')
		return -EINVAL;
	f = fmemopen((void *)(uintptr_t)p, len, "r");
	if (!f)
		return -errno;
	return csv_init(c, f, sep);
}

void wf_csv_close(struct wf_csv *c)
{
	if (!c)
		return;
	if (c->f && c->f != stdin)
		fclose(c->f);
	free(c->buf);
	c->f = NULL;
	c->buf = NULL;
	c->buf_cap = c->buf_pos = c->buf_end = 0;
	c->nfields = 0;
}

/* Move the unconsumed tail to the front and read more. Returns bytes read
 * (0 at end of file) or -errno. */
static int refill(struct wf_csv *c)
{
	size_t n;

	if (c->eof)
		return 0;
	if (c->buf_pos > 0) {
		memmove(c->buf, c->buf + c->buf_pos, c->buf_end - c->buf_pos);
		c->buf_end -= c->buf_pos;
		c->buf_pos = 0;
	}
	if (c->buf_end == c->buf_cap)
		return -ENOBUFS; /* caller bounds lines below the capacity */
	n = fread(c->buf + c->buf_end, 1, c->buf_cap - c->buf_end, c->f);
	if (n == 0) {
		if (ferror(c->f))
			return -EIO;
		c->eof = 1;
		return 0;
	}
	c->buf_end += n;
	c->bytes_read += n;
	return (int)WF_MIN(n, (size_t)INT32_MAX);
}

/* Discard the rest of an over-long line, up to and including its newline. */
static int skip_line(struct wf_csv *c)
{
	for (;;) {
		char *nl = memchr(c->buf + c->buf_pos, '\n', c->buf_end - c->buf_pos);
		int r;

		if (nl) {
			c->buf_pos = (size_t)(nl - c->buf) + 1;
			return 0;
		}
		c->buf_pos = c->buf_end;
		r = refill(c);
		if (r < 0)
			return r;
		if (r == 0)
			return 0;
	}
}

/* Split line[0..len) into fields. line[len] is writable. 1 or -EPROTO. */
static int split(struct wf_csv *c, char *line, size_t len)
{
	char *p = line, *e = line + len;
	const char sep = c->sep;
	uint32_t n = 0;

	for (;;) {
		if (n == WF_CSV_MAX_FIELDS)
			return -EPROTO;
		if (p < e && *p == '"') {
			char *w = p + 1, *q = p + 1, *start = p + 1;
			int closed = 0;

			while (q < e) {
				char *dq = memchr(q, '"', (size_t)(e - q));
				size_t run = dq ? (size_t)(dq - q) : (size_t)(e - q);

				if (w != q)
					memmove(w, q, run);
				w += run;
				q += run;
				if (!dq)
					break;
				if (q + 1 < e && q[1] == '"') {
					*w++ = '"';
					q += 2;
					continue;
				}
				closed = 1;
				q++;
				break;
			}
			if (!closed)
				return -EPROTO; /* unterminated quote */
			c->field[n].p = start;
			c->field[n].len = (uint32_t)(w - start);
			*w = '\0';
			n++;
			if (q == e)
				break;
			if (*q != sep)
				return -EPROTO; /* text after a closing quote */
			p = q + 1;
			continue;
		}
		{
			char *s = memchr(p, sep, (size_t)(e - p));

			c->field[n].p = p;
			if (!s) {
				c->field[n].len = (uint32_t)(e - p);
				*e = '\0';
				n++;
				break;
			}
			c->field[n].len = (uint32_t)(s - p);
			*s = '\0';
			n++;
			p = s + 1;
		}
	}
	c->nfields = n;
	return 1;
}

int wf_csv_next(struct wf_csv *c)
{
	if (!c || !c->buf)
		return -EINVAL;
	c->nfields = 0;
	for (;;) {
		char *line = c->buf + c->buf_pos;
		size_t avail = c->buf_end - c->buf_pos, len;
		char *nl = memchr(line, '\n', avail);
		int r;

		if (!nl) {
			if (avail > WF_CSV_MAX_LINE) {
				c->line_no++;
				r = skip_line(c);
				return r < 0 ? r : -EPROTO;
			}
			if (!c->eof) {
				r = refill(c);
				if (r < 0)
					return r;
				continue;
			}
			if (avail == 0)
				return 0;
			/* Last line without a newline. */
			len = avail;
			c->buf_pos = c->buf_end;
		} else {
			len = (size_t)(nl - line);
			c->buf_pos += len + 1;
		}
		c->line_no++;
		if (len > WF_CSV_MAX_LINE)
			return -EPROTO;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 0)
			continue; /* blank line */
		r = split(c, line, len);
		if (r < 0)
			c->nfields = 0;
		return r;
	}
}

const char *wf_csv_str(const struct wf_csv *c, uint32_t i, char *out, size_t out_len)
{
	size_t n;

	if (!out || out_len == 0)
		return out;
	if (!c || i >= c->nfields) {
		out[0] = '\0';
		return out;
	}
	n = WF_MIN((size_t)c->field[i].len, out_len - 1);
	memcpy(out, c->field[i].p, n);
	out[n] = '\0';
	return out;
}
