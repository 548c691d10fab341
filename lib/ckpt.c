/*
 * ckpt.c - the ranker checkpoint file format (see ckpt.h): checksums and
 * verification. Written by rankers/checkpoint.c; read there and by
 * weft-batch's journal retention. Linked through libweft.
 */
#include "lib/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define CKPT_SEED 0x636b7074u

void wf_ckpt_hdr_init(struct wf_ckpt_hdr *h, uint32_t shard, uint64_t lsn, uint64_t created_ms)
{
	*h = (struct wf_ckpt_hdr){ .magic = WF_CKPT_MAGIC, .version = WF_CKPT_VERSION, .shard = shard, .lsn = lsn,
				   .created_ms = created_ms };
	h->xxh32 = XXH32(h, offsetof(struct wf_ckpt_hdr, xxh32), CKPT_SEED);
}

void wf_ckpt_sec_init(struct wf_ckpt_sec *s, uint32_t type, const void *body, uint64_t len)
{
	*s = (struct wf_ckpt_sec){ .type = type, .xxh32 = XXH32(body, len, CKPT_SEED), .len = len };
}

int wf_ckpt_verify(const uint8_t *p, size_t n, struct wf_ckpt_hdr *ret)
{
	struct wf_ckpt_hdr h;
	uint64_t off = sizeof(h), nsec = 0;

	if (n < sizeof(h))
		return -EBADMSG;
	memcpy(&h, p, sizeof(h));
	if (h.magic != WF_CKPT_MAGIC || h.xxh32 != XXH32(p, offsetof(struct wf_ckpt_hdr, xxh32), CKPT_SEED))
		return -EBADMSG;
	if (h.version > WF_CKPT_VERSION)
		return -EPROTONOSUPPORT;
	for (;;) {
		struct wf_ckpt_sec s;
		uint64_t at = off;

		if (n - off < sizeof(s))
			return -EBADMSG; /* truncated: no END */
		memcpy(&s, p + off, sizeof(s));
		off += sizeof(s);
		if (s.len > n - off || XXH32(p + off, s.len, CKPT_SEED) != s.xxh32)
			return -EBADMSG;
		if (s.type == WF_CKPT_END) {
			struct wf_ckpt_end e;
			if (s.len != sizeof(e))
				return -EBADMSG;
			memcpy(&e, p + off, sizeof(e));
			if (e.sections != nsec || e.bytes != at)
				return -EBADMSG;
			*ret = h;
			return 0;
		}
		off += s.len;
		if (wf_ckpt_pad(s.len) > n - off)
			return -EBADMSG;
		off += wf_ckpt_pad(s.len);
		nsec++;
	}
}

int wf_ckpt_next(const uint8_t *p, size_t n, uint64_t *off, uint32_t *ret_type, const uint8_t **ret_body,
		 uint64_t *ret_len)
{
	struct wf_ckpt_sec s;

	if (*off == 0)
		*off = sizeof(struct wf_ckpt_hdr);
	if (n - *off < sizeof(s))
		return 0;
	memcpy(&s, p + *off, sizeof(s));
	if (s.type == WF_CKPT_END)
		return 0;
	*ret_type = s.type;
	*ret_body = p + *off + sizeof(s);
	*ret_len = s.len;
	*off += sizeof(s) + s.len + wf_ckpt_pad(s.len);
	return 1;
}

int wf_ckpt_read_hdr(const char *path, struct wf_ckpt_hdr *ret)
{
	struct stat st;
	void *m;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (st.st_size < (off_t)sizeof(struct wf_ckpt_hdr)) {
		close(fd);
		return -EBADMSG;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	r = m == MAP_FAILED ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	r = wf_ckpt_verify(m, (size_t)st.st_size, ret);
	munmap(m, (size_t)st.st_size);
	return r;
}
