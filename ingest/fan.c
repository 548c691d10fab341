/*
 * fan.c - a request every shard answers, merged into one reply: SEGPREVIEW
 * rule (a segment rule's live reach). Each shard's ranker answers for its
 * own sessions, RESP2 [matched, new, returning, [up to 10 "session
 * user"]]; the client gets the sums and the first 10 of the samples, in
 * request order with everything else on its connection: one reply slot
 * waits for every shard's answer (struct ingest_fan, which each shard's
 * pending entry points at). The first shard error (a bad rule: every
 * shard compiles it the same way, and the error names the position) is
 * the reply. Linked into weft-ingest only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"

#define FAN_SAMPLE 10u

struct ingest_fan {
	uint32_t conn_idx, conn_gen;
	uint64_t slot;
	uint32_t left;         /* shards yet to answer */
	int64_t sum[3];        /* matched, new, returning */
	uint64_t hold;         /* the latest note before any shard's answer */
	uint32_t nsample;
	struct wf_buf sample;  /* nsample bulk strings */
	struct wf_buf err;     /* the first error reply, or empty */
};

/* Room for a record of len payload bytes in p now (as wf_ring_reserve()
 * would find it), so a fan request goes to every shard or none. */
static int ring_room(struct wf_ring_prod *p, uint32_t len)
{
	uint32_t need = wf_ring__recsize(len), off = p->head & p->mask;
	uint32_t total = need + (off + need > p->capacity ? p->capacity - off : 0);
	/* A2 as in wf_ring_reserve(): pairs with R2 in wf_ring_cons_release(). */
	uint32_t tail = atomic_load_explicit(&p->r->tail, memory_order_acquire);

	return len <= p->capacity / 4 - sizeof(struct wf_ring_rec) && p->capacity - (p->head - tail) >= total;
}

int ingest_fan_segpreview(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r,
			  const struct wf_cmd_info *ci)
{
	const char *argv[1] = { r->argc > 1 ? r->argv[1].p : NULL };
	uint32_t argl[1] = { r->argc > 1 ? r->argv[1].len : 0 };
	struct ingest_fan *fan;
	struct ingest_slot *sl;

	if (wf_cmd_arity(ci, r->argc - 1) < 0 || !argl[0]) {
		ctx->tmp.len = 0;
		wf_resp_w_error(&ctx->tmp, "ERR %s", ci->usage);
		return ingest_reply_local(ctx, c, ctx->tmp.data, ctx->tmp.len, 0);
	}
	if (c->tail - c->head >= INGEST_MAX_PENDING)
		return -EAGAIN;
	for (uint32_t s = 0; s < ctx->nshards; s++) {
		struct ingest_shard *sh = &ctx->shards[s];
		if (sh->fifo_tail - sh->fifo_head >= sh->fifo_cap || !ring_room(&sh->req, wf_msg_req_size(1, argl[0])))
			return -EAGAIN; /* a shard has no room: the connection waits */
	}
	if (!(fan = calloc(1, sizeof(*fan))) || !(sl = ingest_slot_new(c))) {
		free(fan);
		return -ENOMEM;
	}
	*fan = (struct ingest_fan){ .conn_idx = c->idx, .conn_gen = c->gen, .slot = c->tail - 1, .left = ctx->nshards };
	for (uint32_t s = 0; s < ctx->nshards; s++) {
		struct ingest_shard *sh = &ctx->shards[s];
		struct wf_msg_req h = { .req_id = ((uint64_t)ctx->epoch << 32) | sh->next_seq,
					.t_recv_ns = ctx->fwd_ns = wf_now_ns(), .cmd = WF_CMD_SEGPREVIEW, .argc = 1 };

		/* Cannot fail: room checked above, nothing reserved since. */
		(void)wf_msg_req_push_parsed(&sh->req, &h, argv, argl, NULL);
		sh->fifo[sh->fifo_tail++ % sh->fifo_cap] = (struct ingest_pending){
			.conn_idx = c->idx, .conn_gen = c->gen, .slot = c->tail - 1, .seq = sh->next_seq, .fan = fan,
		};
		sh->next_seq++;
		sh->dirty = 1;
	}
	return 0;
}

/* ":n\r\n" at *p: 0 and *ret, the cursor past it; -EPROTO. */
static int take_int(const char **p, const char *end, char lead, int64_t *ret)
{
	const char *q = *p, *nl;

	if (q >= end || *q != lead || !(nl = memchr(q, '\r', (size_t)(end - q))) || nl + 1 >= end || nl[1] != '\n' ||
	    wf_parse_i64(q + 1, (size_t)(nl - q - 1), ret) < 0)
		return -EPROTO;
	*p = nl + 2;
	return 0;
}

/* A shard's [matched, new, returning, [sample...]] into fan. */
static int merge(struct ingest_fan *fan, const char *resp, uint32_t len)
{
	const char *p = resp, *end = resp + len;
	int64_t n, v[3], ns;

	if (take_int(&p, end, '*', &n) < 0 || n != 4)
		return -EPROTO;
	for (int i = 0; i < 3; i++)
		if (take_int(&p, end, ':', &v[i]) < 0)
			return -EPROTO;
	if (take_int(&p, end, '*', &ns) < 0 || ns < 0)
		return -EPROTO;
	for (int i = 0; i < 3; i++)
		fan->sum[i] += v[i];
	for (int64_t i = 0; i < ns; i++) {
		int64_t bl;
		if (take_int(&p, end, '$', &bl) < 0 || bl < 0 || end - p < bl + 2)
			return -EPROTO;
		if (fan->nsample < FAN_SAMPLE) {
			wf_resp_w_bulk(&fan->sample, p, (size_t)bl);
			fan->nsample++;
		}
		p += bl + 2;
	}
	return 0;
}

void ingest_fan_reply(struct ingest_ctx *ctx, struct ingest_shard *sh, const struct ingest_pending *pd, const char *resp,
		      uint32_t len)
{
	struct ingest_fan *fan = pd->fan;
	const struct ingest_pending at = { .conn_idx = fan->conn_idx, .conn_gen = fan->conn_gen, .slot = fan->slot };
	struct ingest_conn *c;
	struct wf_buf *b = &ctx->tmp;

	fan->hold = WF_MAX(fan->hold, sh->note_lsn == UINT64_MAX ? 0 : sh->note_lsn);
	if (!fan->err.len) {
		if (!resp)
			wf_resp_w_error(&fan->err, "ERR ranker lost this request; retry");
		else if (len && resp[0] == '-')
			wf_buf_append(&fan->err, resp, len);
		else if (merge(fan, resp, len) < 0)
			wf_resp_w_error(&fan->err, "ERR shard %u gave a SEGPREVIEW answer weft-ingest cannot read",
					(unsigned)(sh - ctx->shards));
	}
	if (--fan->left)
		return;
	if ((c = ingest_pending_conn(ctx, &at)) && !ingest_notes_hold(ctx, fan->hold, c, fan->slot)) {
		b->len = 0;
		if (fan->err.len) {
			wf_buf_append(b, fan->err.data, fan->err.len);
		} else {
			wf_resp_w_array(b, 4);
			for (int i = 0; i < 3; i++)
				wf_resp_w_int(b, fan->sum[i]);
			wf_resp_w_array(b, fan->nsample);
			wf_buf_append(b, fan->sample.data ? fan->sample.data : "", fan->sample.len);
		}
		ingest_slot_answer(ctx, c, fan->slot, b->data, b->len);
	}
	wf_buf_fini(&fan->sample);
	wf_buf_fini(&fan->err);
	free(fan);
}
