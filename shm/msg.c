/*
 * msg.c - encode and decode ring records between weft-ingest and
 * weft-ranker (see msg.h). Linked into both through libweft.
 */
#include "shm/msg.h"

#include <errno.h>
#include <string.h>

int wf_msg_req_push_parsed(struct wf_ring_prod *p, const struct wf_msg_req *hdr, const char *const *argv,
			   const uint32_t *argl, const struct wf_msg_recs *recs)
{
	uint32_t trailer = recs ? (uint32_t)sizeof(*recs) : 0, size;
	struct wf_msg_req h = *hdr;
	uint64_t bytes = 0;
	uint8_t *dst;
	void *buf;

	if (h.argc > WF_MSG_MAX_ARGS)
		return -E2BIG;
	for (uint32_t i = 0; i < h.argc; i++)
		bytes += argl[i];
	if ((uint64_t)wf_msg_req_size(h.argc, bytes) + trailer > wf_ring_max_payload(p->r))
		return -EMSGSIZE;
	size = wf_msg_req_size(h.argc, bytes) + trailer;
	if (wf_ring_reserve(p, size, WF_MSG_REQ, &buf) < 0)
		return -EAGAIN;
	dst = buf;
	h.flags = recs ? h.flags | WF_MSG_F_PARSED : h.flags & ~WF_MSG_F_PARSED;
	memcpy(dst, &h, sizeof(h));
	dst += sizeof(h);
	memcpy(dst, argl, 4ull * h.argc);
	dst += 4ull * h.argc;
	for (uint32_t i = 0; i < h.argc; i++) {
		memcpy(dst, argv[i], argl[i]);
		dst += argl[i];
	}
	if (recs)
		memcpy(dst, recs, sizeof(*recs));
	return 0;
}

int wf_msg_req_push(struct wf_ring_prod *p, const struct wf_msg_req *hdr, const char *const *argv,
		    const uint32_t *argl)
{
	return wf_msg_req_push_parsed(p, hdr, argv, argl, NULL);
}

/* argc lengths (unaligned u32s at lens), their bytes from data to exactly
 * end, into argv. 0 or -EPROTO (a length past end, or bytes left over). */
static int args_decode(const uint8_t *lens, uint32_t argc, const uint8_t *data, const uint8_t *end,
		       struct wf_arg *argv)
{
	for (uint32_t i = 0; i < argc; i++) {
		uint32_t l;

		memcpy(&l, lens + 4ull * i, 4);
		if (l > (uint64_t)(end - data))
			return -EPROTO;
		argv[i].p = (const char *)data;
		argv[i].len = l;
		data += l;
	}
	return data == end ? 0 : -EPROTO;
}

int wf_msg_req_decode(const void *payload, uint32_t len, struct wf_msg_req_view *v)
{
	const uint8_t *p = payload;
	const uint8_t *end = p + len;
	const uint8_t *data;
	const struct wf_msg_req *h = payload;

	if (len < sizeof(*h) || h->argc > WF_MSG_MAX_ARGS)
		return -EPROTO;
	if ((uint64_t)len < sizeof(*h) + 4ull * h->argc)
		return -EPROTO;
	data = p + sizeof(*h) + 4ull * h->argc;
	v->parsed = (h->flags & WF_MSG_F_PARSED) != 0;
	if (v->parsed) {
		if ((uint64_t)(end - data) < sizeof(v->recs))
			return -EPROTO;
		end -= sizeof(v->recs);
		memcpy(&v->recs, end, sizeof(v->recs));
	}
	v->hdr = h;
	v->argc = h->argc;
	return args_decode(p + sizeof(*h), h->argc, data, end, v->argv);
}

void wf_msg_recs_of(const struct wf_recs_args *ra, const struct wf_arg *argv, struct wf_msg_recs *ret)
{
	*ret = (struct wf_msg_recs){
		.k = (uint16_t)ra->k,
		.page = (uint8_t)ra->page,
		.explain = (uint8_t)(ra->explain != 0),
		.anchor = ra->anchor ? (uint16_t)(ra->anchor - argv) : 0,
		.size = ra->size ? (uint16_t)(ra->size - argv) : 0,
	};
}

int wf_msg_recs_get(const struct wf_msg_recs *m, const struct wf_arg *argv, uint32_t argc,
		    struct wf_recs_args *ret)
{
	if (argc < 3 || m->k < 1 || m->k > WF_RECS_MAX_K || m->page >= WF_PAGE_COUNT || m->anchor >= argc ||
	    m->size >= argc || (m->anchor && m->anchor < 3) || (m->size && m->size < 3))
		return -EPROTO;
	*ret = (struct wf_recs_args){
		.k = m->k,
		.page = m->page,
		.explain = m->explain != 0,
		.anchor = m->anchor ? &argv[m->anchor] : NULL,
		.size = m->size ? &argv[m->size] : NULL,
	};
	return 0;
}

int wf_msg_rep_push(struct wf_ring_prod *p, const struct wf_msg_rep *hdr, const void *resp, uint32_t resp_len)
{
	uint8_t *dst;
	void *buf;
	struct wf_msg_rep h = *hdr;

	if ((uint64_t)sizeof(h) + resp_len > wf_ring_max_payload(p->r))
		return -EMSGSIZE;
	if (wf_ring_reserve(p, (uint32_t)sizeof(h) + resp_len, WF_MSG_REP, &buf) < 0)
		return -EAGAIN;
	dst = buf;
	h.resp_len = resp_len;
	memcpy(dst, &h, sizeof(h));
	memcpy(dst + sizeof(h), resp, resp_len);
	return 0;
}

int wf_msg_rep_decode(const void *payload, uint32_t len, const struct wf_msg_rep **ret_hdr, const char **ret_resp)
{
	const struct wf_msg_rep *h = payload;

	if (len < sizeof(*h) || (uint64_t)sizeof(*h) + h->resp_len != len)
		return -EPROTO;
	*ret_hdr = h;
	*ret_resp = (const char *)payload + sizeof(*h);
	return 0;
}

int wf_msg_note_push(struct wf_ring_prod *p, const struct wf_msg_note *hdr, uint32_t argc, const struct wf_arg *argv)
{
	struct wf_msg_note h = *hdr;
	uint64_t len = sizeof(h) + 4ull * argc;
	uint8_t *dst;
	void *buf;

	if (argc > WF_MSG_NOTE_MAX_ARGS)
		return -E2BIG;
	for (uint32_t i = 0; i < argc; i++)
		len += argv[i].len;
	if (len > wf_ring_max_payload(p->r))
		return -EMSGSIZE;
	if (wf_ring_reserve(p, (uint32_t)len, WF_MSG_NOTE, &buf) < 0)
		return -EAGAIN;
	dst = buf;
	h.argc = (uint16_t)argc;
	memcpy(dst, &h, sizeof(h));
	dst += sizeof(h);
	for (uint32_t i = 0; i < argc; i++) {
		uint32_t l = (uint32_t)argv[i].len;

		memcpy(dst, &l, 4);
		dst += 4;
	}
	for (uint32_t i = 0; i < argc; i++) {
		memcpy(dst, argv[i].p, argv[i].len);
		dst += argv[i].len;
	}
	return 0;
}

int wf_msg_note_decode(const void *payload, uint32_t len, struct wf_msg_note_view *v)
{
	const uint8_t *p = payload, *data, *end = p + len;

	if (len < sizeof(v->hdr))
		return -EPROTO;
	memcpy(&v->hdr, p, sizeof(v->hdr));
	if (v->hdr.argc > WF_MSG_NOTE_MAX_ARGS || (uint64_t)sizeof(v->hdr) + 4ull * v->hdr.argc > len)
		return -EPROTO;
	data = p + sizeof(v->hdr) + 4ull * v->hdr.argc;
	v->argc = v->hdr.argc;
	return args_decode(p + sizeof(v->hdr), v->argc, data, end, v->argv);
}
