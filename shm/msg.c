/*
 * msg.c - encode and decode ring records between weft-ingest and
 * weft-ranker (see msg.h). Linked into both through libweft.
 */
#include "shm/msg.h"

#include <errno.h>
#include <string.h>

int wf_msg_req_push(struct wf_ring_prod *p, const struct wf_msg_req *hdr, const char *const *argv,
		    const uint32_t *argl)
{
	uint64_t bytes = 0;
	uint32_t size;
	uint8_t *dst;
	void *buf;

	if (hdr->argc > WF_MSG_MAX_ARGS)
		return -E2BIG;
	for (uint32_t i = 0; i < hdr->argc; i++)
		bytes += argl[i];
	if (wf_msg_req_size(hdr->argc, bytes) > wf_ring_max_payload(p->r))
		return -EMSGSIZE;
	size = wf_msg_req_size(hdr->argc, bytes);
	if (wf_ring_reserve(p, size, WF_MSG_REQ, &buf) < 0)
		return -EAGAIN;
	dst = buf;
	memcpy(dst, hdr, sizeof(*hdr));
	dst += sizeof(*hdr);
	memcpy(dst, argl, 4ull * hdr->argc);
	dst += 4ull * hdr->argc;
	for (uint32_t i = 0; i < hdr->argc; i++) {
		memcpy(dst, argv[i], argl[i]);
		dst += argl[i];
	}
	return 0;
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
	v->hdr = h;
	v->argc = h->argc;
	for (uint32_t i = 0; i < h->argc; i++) {
		uint32_t l;

		memcpy(&l, p + sizeof(*h) + 4ull * i, 4);
		if (l > (uint64_t)(end - data))
			return -EPROTO;
		v->argv[i].p = (const char *)data;
		v->argv[i].len = l;
		data += l;
	}
	return data == end ? 0 : -EPROTO;
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
