/*
 * eval_log.c - read an events CSV (ts,user_id,session_id,event,item_id,value)
 * into memory for weft-eval: ids interned, sessions numbered, rows without
 * a session id cut into sessions at 30 minutes of a user's inactivity.
 * Linked only into weft-eval.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_int.h"
#include "lib/csv.h"
#include "lib/proto.h"

#define SESSION_GAP_MS (30ll * 60 * 1000)

static int intern(struct eval_log *log, const char *s, uint32_t len, uint32_t *ret)
{
	uint64_t h = wf_hash64(s, len);
	uint32_t i;

	if (2ull * (log->nstr + 1) > (uint64_t)log->mask + 1 || !log->slots) {
		uint32_t nmask = log->slots ? log->mask * 2 + 1 : 4095;
		uint32_t *ns = calloc((size_t)nmask + 1, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (uint32_t k = 0; log->slots && k <= log->mask; k++) {
			uint32_t v = log->slots[k];
			if (!v)
				continue;
			uint64_t hh = wf_hash64(log->arena.data + log->str_off[v - 1], log->str_len[v - 1]);
			for (i = (uint32_t)hh & nmask; ns[i]; i = (i + 1) & nmask)
				;
			ns[i] = v;
		}
		free(log->slots);
		log->slots = ns;
		log->mask = nmask;
	}
	for (i = (uint32_t)h & log->mask; log->slots[i]; i = (i + 1) & log->mask) {
		uint32_t v = log->slots[i] - 1;
		if (log->str_len[v] == len && memcmp(log->arena.data + log->str_off[v], s, len) == 0) {
			*ret = v;
			return 0;
		}
	}
	if (log->nstr == log->cap_str) {
		uint32_t ncap = log->cap_str ? log->cap_str * 2 : 4096;
		uint64_t *no = realloc(log->str_off, ncap * sizeof(*no));
		uint32_t *nl = no ? realloc(log->str_len, ncap * sizeof(*nl)) : NULL;
		if (!no || !nl)
			return -ENOMEM;
		log->str_off = no;
		log->str_len = nl;
		log->cap_str = ncap;
	}
	log->str_off[log->nstr] = log->arena.len;
	log->str_len[log->nstr] = len;
	if (wf_buf_append(&log->arena, s, len) < 0)
		return -ENOMEM;
	log->slots[i] = log->nstr + 1;
	*ret = log->nstr++;
	return 0;
}

const char *eval_str(const struct eval_log *log, uint32_t id, uint32_t *ret_len)
{
	*ret_len = log->str_len[id];
	return log->arena.data + log->str_off[id];
}

struct sess_key {
	uint32_t str;    /* interned session id, or the user's id for cut sessions */
	uint32_t number; /* dense session number */
	int64_t last_ms;
};

static int cmp_ev(const void *a, const void *b)
{
	const struct eval_event *x = a, *y = b;

	if (x->ts_ms != y->ts_ms)
		return x->ts_ms < y->ts_ms ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int eval_log_read(struct eval_log *log, const char *path, int quiet)
{
	struct wf_csv c;
	struct sess_key *sk = NULL; /* indexed by interned string id */
	uint32_t sk_cap = 0;
	int r, first = 1;
	uint64_t rows = 0;

	r = wf_csv_open(&c, path, ',');
	if (r < 0) {
		fprintf(stderr, "weft-eval: cannot open %s: %s\n", path, strerror(-r));
		return r;
	}
	while ((r = wf_csv_next(&c)) != 0) {
		struct eval_event e = { 0 };
		int64_t ts, v = 0;
		int type;
		uint32_t sid, uid = UINT32_MAX;

		if (r < 0) {
			if (r != -EPROTO)
				break;
			log->bad_rows++;
			continue;
		}
		if (first) {
			first = 0;
			if (c.nfields >= 1 && c.field[0].len == 2 && memcmp(c.field[0].p, "ts", 2) == 0)
				continue; /* header */
		}
		rows++;
		if (c.nfields < 5 || wf_parse_i64(c.field[0].p, c.field[0].len, &ts) < 0 ||
		    (type = wf_event_from_name(c.field[3].p, c.field[3].len)) < 0) {
			if (log->bad_rows++ < 10)
				fprintf(stderr, "weft-eval: %s:%llu: malformed row skipped\n", path,
					(unsigned long long)c.line_no);
			continue;
		}
		if (c.field[1].len && (r = intern(log, c.field[1].p, c.field[1].len, &uid)) < 0)
			break;
		/* Session: the log's own id, else the user's activity cut at 30 min. */
		if (c.field[2].len) {
			if ((r = intern(log, c.field[2].p, c.field[2].len, &sid)) < 0)
				break;
		} else if (uid != UINT32_MAX) {
			sid = uid;
		} else {
			log->bad_rows++;
			continue; /* anonymous without a session: cannot be replayed */
		}
		if (sid >= sk_cap) {
			uint32_t ncap = WF_MAX(sk_cap * 2, sid + 4096);
			struct sess_key *n = realloc(sk, ncap * sizeof(*n));
			if (!n) {
				r = -ENOMEM;
				break;
			}
			memset(n + sk_cap, 0xff, (ncap - sk_cap) * sizeof(*n));
			sk = n;
			sk_cap = ncap;
		}
		if (sk[sid].number == UINT32_MAX ||
		    (c.field[2].len == 0 && ts - sk[sid].last_ms > SESSION_GAP_MS)) {
			sk[sid].number = log->nsessions++;
		}
		sk[sid].last_ms = ts;
		e.ts_ms = ts;
		e.user = uid;
		e.session = sk[sid].number;
		e.type = (uint8_t)type;
		e.item = UINT32_MAX;
		if (c.field[4].len && (r = intern(log, c.field[4].p, c.field[4].len, &e.item)) < 0)
			break;
		if (c.nfields > 5 && c.field[5].len && wf_parse_i64(c.field[5].p, c.field[5].len, &v) == 0 && v > 0)
			e.value = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
		if (log->nev == log->cap_ev) {
			uint64_t ncap = log->cap_ev ? log->cap_ev * 2 : 65536;
			struct eval_event *n = realloc(log->ev, ncap * sizeof(*n));
			if (!n) {
				r = -ENOMEM;
				break;
			}
			log->ev = n;
			log->cap_ev = ncap;
		}
		e.seq = (uint32_t)log->nev;
		log->ev[log->nev++] = e;
		if (!quiet && (log->nev & 0xfffff) == 0)
			fprintf(stderr, "\rweft-eval: read %llu events (%.0f MB)", (unsigned long long)log->nev,
				c.bytes_read / 1e6);
	}
	wf_csv_close(&c);
	free(sk);
	if (!quiet && log->nev >= 0x100000)
		fputc('\n', stderr);
	if (r < 0) {
		fprintf(stderr, "weft-eval: reading %s failed: %s\n", path, strerror(-r));
		return r;
	}
	if (log->nev == 0 || log->bad_rows > rows / 2) {
		fprintf(stderr, "weft-eval: %s has %llu usable rows of %llu: is it an events CSV "
			"(ts,user_id,session_id,event,item_id,value)?\n", path, (unsigned long long)log->nev,
			(unsigned long long)rows);
		return -EINVAL;
	}
	qsort(log->ev, log->nev, sizeof(*log->ev), cmp_ev);
	return 0;
}

void eval_log_fini(struct eval_log *log)
{
	wf_buf_fini(&log->arena);
	free(log->str_off);
	free(log->str_len);
	free(log->slots);
	free(log->ev);
	memset(log, 0, sizeof(*log));
}
