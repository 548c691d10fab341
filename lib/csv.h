/*
 * csv.h - streaming reader for the CSV files weft reads (events, catalog,
 * inventory) and for the foreign logs the importer turns into them.
 *
 * Linked into weft-batch, weft-eval, weft-gen/weft-import, weftctl (stock
 * load) and the CSV fuzz target. RFC 4180 quoting ("a,b" and "" inside
 * quotes), configurable separator, CRLF tolerated. Never logs.
 *
 * Ownership: struct wf_csv is the caller's (init/fini); field pointers stay
 * valid until the next wf_csv_next() call.
 */
#ifndef WF_CSV_H
#define WF_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define WF_CSV_MAX_FIELDS 64
#define WF_CSV_MAX_LINE (1u << 20) /* a longer record is an error, not a crash */

struct wf_csv_field {
	const char *p; /* not NUL-terminated unless noted; unquoted content */
	uint32_t len;
};

struct wf_csv {
	FILE *f;
	char sep;
	uint64_t line_no;      /* 1-based number of the line the current record started on */
	uint64_t bytes_read;   /* for progress reporting */
	uint32_t nfields;
	struct wf_csv_field field[WF_CSV_MAX_FIELDS];
	char *buf;             /* internal: read buffer, records are parsed in place */
	size_t buf_cap;
	size_t buf_pos;        /* internal: first unconsumed byte */
	size_t buf_end;        /* internal: end of valid bytes */
	int eof;               /* internal: the file has no more bytes */
};

/* Open path (or "-" for stdin) for reading. 0 or -errno. */
int wf_csv_open(struct wf_csv *c, const char *path, char sep);
/* Read the len bytes at p instead (a mapped file's range; p must stay
 * valid until wf_csv_close). 0, -EINVAL (bad sep) or -errno (fmemopen's). */
int wf_csv_open_mem(struct wf_csv *c, const char *p, size_t len, char sep);
/* Read the next record into c->field[0..nfields). Returns 1 record read,
 * 0 end of file, -EPROTO malformed record (unterminated quote, too many
 * fields, line too long: the reader skips to the next line, so the caller can
 * report c->line_no and go on), -errno on I/O error. */
int wf_csv_next(struct wf_csv *c);
/* Field i as a NUL-terminated copy into out (truncated); returns out. */
const char *wf_csv_str(const struct wf_csv *c, uint32_t i, char *out, size_t out_len);
void wf_csv_close(struct wf_csv *c);

#endif
