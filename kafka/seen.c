/*
 * seen.c - the Kafka offsets the journal holds (seen.h). Linked into
 * weft-kafka and test_kafka.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/seen.h"
#include "lib/journal.h"
#include "lib/util.h"

int wf_kseen_tag(char *out, size_t n, const char *topic, int32_t partition, int64_t offset)
{
	int k = snprintf(out, n, "%s:%d:%lld", topic, partition, (long long)offset);

	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : k;
}

int wf_kseen_untag(const char *p, size_t len, const char *topic, int32_t *ret_partition, int64_t *ret_offset)
{
	size_t tl = strlen(topic);
	const char *q, *end = p + len;
	int64_t part, off;

	if (len <= tl + 1 || memcmp(p, topic, tl) != 0 || p[tl] != ':')
		return -EINVAL;
	p += tl + 1;
	q = memchr(p, ':', (size_t)(end - p));
	if (!q || wf_parse_i64(p, (size_t)(q - p), &part) < 0 || part < 0 || part >= WF_KSEEN_MAX_PARTITIONS ||
	    wf_parse_i64(q + 1, (size_t)(end - q - 1), &off) < 0 || off < 0)
		return -EINVAL;
	*ret_partition = (int32_t)part;
	*ret_offset = off;
	return 0;
}

int wf_kseen_add(struct wf_kseen *s, int32_t partition, int64_t offset)
{
	struct wf_kseen_part *p;

	if (partition < 0 || (uint32_t)partition >= WF_KSEEN_MAX_PARTITIONS)
		return -ERANGE;
	p = &s->part[partition];
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 1024;
		int64_t *o = realloc(p->off, cap * sizeof(*o));

		if (!o)
			return -ENOMEM;
		p->off = o;
		p->cap = cap;
	}
	/* Offsets arrive in order per partition but for a refused-then-redone
	 * one: keep the array sorted with an insertion from the end. */
	size_t i = p->n;
	while (i > 0 && p->off[i - 1] > offset)
		i--;
	if (i > 0 && p->off[i - 1] == offset)
		return 0;
	memmove(&p->off[i + 1], &p->off[i], (p->n - i) * sizeof(*p->off));
	p->off[i] = offset;
	p->n++;
	if (offset > p->max || p->n == 1)
		p->max = offset;
	return 0;
}

int wf_kseen_has(const struct wf_kseen *s, int32_t partition, int64_t offset)
{
	const struct wf_kseen_part *p;
	size_t lo = 0, hi;

	if (partition < 0 || (uint32_t)partition >= WF_KSEEN_MAX_PARTITIONS)
		return 0;
	p = &s->part[partition];
	hi = p->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->off[mid] < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < p->n && p->off[lo] == offset;
}

int64_t wf_kseen_max(const struct wf_kseen *s, int32_t partition)
{
	if (partition < 0 || (uint32_t)partition >= WF_KSEEN_MAX_PARTITIONS || s->part[partition].n == 0)
		return -1;
	return s->part[partition].max;
}

void wf_kseen_fini(struct wf_kseen *s)
{
	for (uint32_t i = 0; i < WF_KSEEN_MAX_PARTITIONS; i++) {
		free(s->part[i].off);
		s->part[i] = (struct wf_kseen_part){ .max = -1 };
	}
}

int wf_kseen_load(struct wf_kseen *s, const char *dir, const char *topic)
{
	struct wf_journal_reader *r = NULL;
	struct wf_journal_rec *rec;
	int e, n = 0;

	memset(s, 0, sizeof(*s));
	for (uint32_t i = 0; i < WF_KSEEN_MAX_PARTITIONS; i++)
		s->part[i].max = -1;
	rec = malloc(sizeof(*rec));
	if (!rec)
		return -ENOMEM;
	e = wf_journal_reader_open(dir, 0, &r);
	if (e == -ENOENT) {
		free(rec);
		return 0;
	}
	if (e < 0)
		goto fail;
	while ((e = wf_journal_reader_next(r, rec)) == 1) {
		int32_t part;
		int64_t off;

		if (rec->kind != WF_JREC_EVENT)
			continue;
		/* session user type item, then field value pairs */
		for (uint32_t i = 4; i + 1 < rec->argc; i += 2) {
			if (rec->argl[i] != 5 || memcmp(rec->argv[i], "kafka", 5) != 0)
				continue;
			if (wf_kseen_untag(rec->argv[i + 1], rec->argl[i + 1], topic, &part, &off) == 0) {
				if ((e = wf_kseen_add(s, part, off)) < 0)
					goto fail;
				n++;
			}
			break;
		}
	}
	if (e < 0)
		goto fail;
	wf_journal_reader_close(r);
	free(rec);
	return n;
fail:
	wf_journal_reader_close(r);
	free(rec);
	wf_kseen_fini(s);
	return e;
}
