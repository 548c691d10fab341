/*
 * snapwrite.c - writes snapshot files (see snapwrite.h and docs/SNAPSHOT.md).
 * Linked into weft-batch and the snapshot tests through libweft.
 */
#include "lib/snapwrite.h"

#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "lib/util.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

uint32_t wf_snapw_hash_slots(uint32_t n)
{
	uint64_t s = 2;

	while (s < 2ull * n)
		s <<= 1;
	return (uint32_t)s;
}

/* Build an id hash table over n records whose id lives at (off, len) of the
 * record at base + i * stride. Slot = wf_hash64(id) & mask, linear probing,
 * value = index + 1. */
static int build_hash(const char *strs, uint64_t strs_len, const void *base, size_t stride,
		      uint32_t n, uint32_t **ret, uint32_t *ret_slots)
{
	uint32_t slots = wf_snapw_hash_slots(n), mask = slots - 1;
	uint32_t *t = calloc(slots, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const uint32_t *rec = (const uint32_t *)((const char *)base + (size_t)i * stride);
		uint32_t off = rec[0], len = rec[1]; /* id_off, id_len lead both records */
		uint32_t slot;

		if ((uint64_t)off + len > strs_len) {
			free(t);
			return -EINVAL;
		}
		slot = (uint32_t)wf_hash64(strs + off, len) & mask;
		while (t[slot])
			slot = (slot + 1) & mask;
		t[slot] = i + 1;
	}
	*ret = t;
	*ret_slots = slots;
	return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char copy[4096];
	int fd, r = 0;

	if (strlen(path) >= sizeof(copy))
		return -ENAMETOOLONG;
	strcpy(copy, path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)
		r = -errno;
	close(fd);
	return r;
}

int wf_snapw_write(const char *path, const struct wf_snapw_input *in, uint64_t *ret_size,
		   char *err, size_t errlen)
{
	static const uint8_t zeros[64];
	struct {
		uint32_t id;
		const void *data;
		uint64_t size;
	} sec[WF_SNAP_MAX_SECTIONS];
	struct wf_snap_hdr hdr;
	uint32_t *ihash = NULL, *uhash = NULL, islots = 0, uslots = 0, nsec = 0;
	char tmp[4096] = "";
	uint64_t off;
	int fd = -1, r;
	static const struct wf_snap_model model0; /* no model: version 0 */
	uint32_t *seq_off0 = NULL;                /* no transitions: nitems + 1 zero offsets */

	if (in->strs_len >= (1ull << 32)) {
		set_err(err, errlen, "snapshot %s: string dictionary of %llu bytes exceeds 4 GiB", path,
			(unsigned long long)in->strs_len);
		return -EINVAL;
	}
	if (!in->seq_off && !(seq_off0 = calloc((size_t)in->nitems + 1, sizeof(*seq_off0)))) {
		set_err(err, errlen, "snapshot %s: out of memory", path);
		return -ENOMEM;
	}
	r = build_hash(in->strs, in->strs_len, in->items, sizeof(*in->items), in->nitems, &ihash, &islots);
	if (r == 0)
		r = build_hash(in->strs, in->strs_len, in->users, sizeof(*in->users), in->nusers, &uhash, &uslots);
	if (r < 0) {
		set_err(err, errlen, "snapshot %s: %s", path,
			r == -ENOMEM ? "out of memory for the hash tables" : "an id lies outside the string dictionary");
		goto out;
	}

#define ADD(i, p, sz) (sec[nsec++] = (__typeof__(sec[0])){ (i), (p), (sz) })
	ADD(WF_SNAP_SEC_STRS, in->strs, in->strs_len);
	ADD(WF_SNAP_SEC_ITEMS, in->items, (uint64_t)in->nitems * sizeof(struct wf_snap_item));
	ADD(WF_SNAP_SEC_ITEM_HASH, ihash, (uint64_t)islots * sizeof(uint32_t));
	ADD(WF_SNAP_SEC_USERS, in->users, (uint64_t)in->nusers * sizeof(struct wf_snap_user));
	ADD(WF_SNAP_SEC_USER_HASH, uhash, (uint64_t)uslots * sizeof(uint32_t));
	ADD(WF_SNAP_SEC_CANDS, in->cands, in->ncands * sizeof(struct wf_snap_cand));
	ADD(WF_SNAP_SEC_NEIGH, in->neigh, in->nneigh * sizeof(struct wf_snap_cand));
	ADD(WF_SNAP_SEC_COMPL, in->compl, in->ncompl * sizeof(struct wf_snap_cand));
	ADD(WF_SNAP_SEC_NAMES, in->names, (uint64_t)(in->ncats + in->nbrands) * sizeof(struct wf_snap_name));
	ADD(WF_SNAP_SEC_POPULAR, in->popular, (uint64_t)in->npopular * sizeof(struct wf_snap_cand));
	ADD(WF_SNAP_SEC_TRENDING, in->trending, (uint64_t)in->ntrending * sizeof(struct wf_snap_cand));
	ADD(WF_SNAP_SEC_SEQ, in->seq_off ? in->seq : NULL, in->seq_off ? in->nseq * sizeof(struct wf_snap_cand) : 0);
	ADD(WF_SNAP_SEC_SEQ_OFF, in->seq_off ? (const void *)in->seq_off : seq_off0, ((uint64_t)in->nitems + 1) * 4);
	ADD(WF_SNAP_SEC_MODEL, in->model ? (const void *)in->model : &model0, sizeof(struct wf_snap_model));
#undef ADD

	memset(&hdr, 0, sizeof(hdr));
	hdr.magic = WF_SNAP_MAGIC;
	hdr.format_version = WF_SNAP_FORMAT_VERSION;
	hdr.header_size = sizeof(hdr);
	hdr.generation = in->generation;
	hdr.build_ms = in->build_ms;
	hdr.source_digest = in->source_digest;
	hdr.data_end_ms = in->data_end_ms;
	hdr.nitems = in->nitems;
	hdr.nusers = in->nusers;
	hdr.ncats = in->ncats;
	hdr.nbrands = in->nbrands;
	hdr.nsections = nsec;
	hdr.flags = in->flags;
	off = WF_ALIGN_UP((uint64_t)sizeof(hdr), 64);
	for (uint32_t i = 0; i < nsec; i++) {
		hdr.sec[i].id = sec[i].id;
		hdr.sec[i].off = off;
		hdr.sec[i].size = sec[i].size;
		hdr.sec[i].xxh3 = XXH3_64bits(sec[i].size ? sec[i].data : zeros, sec[i].size);
		off = WF_ALIGN_UP(off + sec[i].size, 64);
	}
	hdr.file_size = off;
	hdr.header_xxh3 = 0;
	hdr.header_xxh3 = XXH3_64bits(&hdr, sizeof(hdr));

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp)) {
		r = -ENAMETOOLONG;
		set_err(err, errlen, "snapshot %s: path too long", path);
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		set_err(err, errlen, "cannot create %s: %s", tmp, strerror(-r));
		goto out;
	}
	r = write_all(fd, &hdr, sizeof(hdr));
	if (r == 0)
		r = write_all(fd, zeros, WF_ALIGN_UP(sizeof(hdr), 64) - sizeof(hdr));
	for (uint32_t i = 0; i < nsec && r == 0; i++) {
		if (sec[i].size)
			r = write_all(fd, sec[i].data, sec[i].size);
		if (r == 0)
			r = write_all(fd, zeros, WF_ALIGN_UP(sec[i].size, 64) - sec[i].size);
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		set_err(err, errlen, "cannot write %s: %s", tmp, strerror(-r));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		set_err(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(-r));
		goto out;
	}
	r = fsync_dir_of(path);
	if (r < 0) {
		set_err(err, errlen, "cannot fsync the directory of %s: %s", path, strerror(-r));
		goto out;
	}
	if (ret_size)
		*ret_size = hdr.file_size;
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	} else if (r < 0 && tmp[0]) {
		unlink(tmp);
	}
	free(ihash);
	free(uhash);
	free(seq_off0);
	return r;
}

int wf_snapw_reseal(void *image, size_t size)
{
	struct wf_snap_hdr *h = image;
	uint8_t *b = image;

	if (size < sizeof(*h))
		return -EINVAL;
	for (uint32_t i = 0; i < WF_MIN(h->nsections, WF_SNAP_MAX_SECTIONS); i++) {
		if (h->sec[i].off <= size && h->sec[i].size <= size - h->sec[i].off)
			h->sec[i].xxh3 = XXH3_64bits(b + h->sec[i].off, h->sec[i].size);
	}
	h->header_xxh3 = 0;
	h->header_xxh3 = XXH3_64bits(h, sizeof(*h));
	return 0;
}
