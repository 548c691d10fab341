/*
 * weftctl_stock.c - `weftctl stock load FILE`: an inventory CSV
 * (item_id,size,qty) into the live size-level stock table, sent as STOCK
 * commands over weft.sock (weft-ingest stays the table's only writer),
 * pipelined in batches. Bad rows are reported with their line number and
 * skipped; progress on stderr for big files. Linked into weftctl.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "admin/weftctl_int.h"
#include "lib/csv.h"

#define BATCH 1000

static int flush(redisContext *c, uint32_t n, uint64_t *ok, uint64_t *bad)
{
	for (uint32_t i = 0; i < n; i++) {
		redisReply *r;
		if (redisGetReply(c, (void **)&r) != REDIS_OK) {
			fprintf(stderr, "weftctl: connection to weft lost: %s\n", c->errstr);
			return -EIO;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			if (*bad < 10)
				fprintf(stderr, "weftctl: weft refused a row: %s\n", r->str);
			(*bad)++;
		} else {
			(*ok)++;
		}
		freeReplyObject(r);
	}
	return 0;
}

int wf_cli_stock_load(const struct wf_cli_opts *o, const char *file)
{
	char path[PATH_MAX];
	struct wf_csv csv;
	redisContext *c;
	uint64_t ok = 0, bad = 0, rows = 0;
	uint32_t pending = 0;
	int r, first = 1;

	r = wf_csv_open(&csv, file, ',');
	if (r < 0) {
		fprintf(stderr, "weftctl: cannot read %s: %s\n", file, strerror(-r));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/weft.sock", o->dir);
	c = redisConnectUnix(path);
	if (!c || c->err) {
		fprintf(stderr, "weftctl: cannot connect to %s: %s — is weft running?\n", path,
			c ? c->errstr : "out of memory");
		wf_csv_close(&csv);
		redisFree(c);
		return 1;
	}
	while ((r = wf_csv_next(&csv)) != 0) {
		char item[256], size[64], qty[32];

		if (r == -EPROTO) {
			fprintf(stderr, "weftctl: %s:%llu: malformed row skipped\n", file, (unsigned long long)csv.line_no);
			bad++;
			continue;
		}
		if (r < 0) {
			fprintf(stderr, "weftctl: reading %s: %s\n", file, strerror(-r));
			break;
		}
		if (first) {
			first = 0;
			if (csv.nfields >= 1 && csv.field[0].len == 7 && memcmp(csv.field[0].p, "item_id", 7) == 0)
				continue;
		}
		if (csv.nfields != 3 || csv.field[0].len == 0) {
			fprintf(stderr, "weftctl: %s:%llu: want item_id,size,qty\n", file, (unsigned long long)csv.line_no);
			bad++;
			continue;
		}
		wf_csv_str(&csv, 0, item, sizeof(item));
		wf_csv_str(&csv, 1, size, sizeof(size));
		wf_csv_str(&csv, 2, qty, sizeof(qty));
		redisAppendCommand(c, "STOCK %s %s %s", item, size, qty);
		rows++;
		if (++pending == BATCH) {
			if (flush(c, pending, &ok, &bad) < 0)
				goto fail;
			pending = 0;
			if (!o->json && rows % (BATCH * 100) == 0)
				fprintf(stderr, "\rweftctl: %llu rows sent (%.0f MB read)", (unsigned long long)rows,
					csv.bytes_read / 1e6);
		}
	}
	if (flush(c, pending, &ok, &bad) < 0)
		goto fail;
	if (!o->json && rows >= (uint64_t)BATCH * 100)
		fputc('\n', stderr);
	wf_csv_close(&csv);
	redisFree(c);
	if (o->json)
		printf("{\"ok\":%s,\"rows\":%llu,\"loaded\":%llu,\"refused\":%llu}\n", bad ? "false" : "true",
		       (unsigned long long)rows, (unsigned long long)ok, (unsigned long long)bad);
	else
		printf("stock: %llu rows loaded, %llu refused\n", (unsigned long long)ok, (unsigned long long)bad);
	return bad ? 1 : 0;
fail:
	wf_csv_close(&csv);
	redisFree(c);
	return 1;
}
