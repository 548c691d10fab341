/*
 * part.c - the partition of a shopper (librdkafka's consistent_random:
 * CRC-32 of the key modulo the partition count) and the partition map of
 * partitioned boxes (issue 20). Linked into every program through libweft.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "lib/part.h"

uint32_t wf_part_crc32(const void *p, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);

	/* zlib takes a uInt length: a key is far shorter, but stay exact. */
	for (const Bytef *b = p; len; ) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		c = crc32(c, b, n);
		b += n;
		len -= n;
	}
	return (uint32_t)c;
}

static int fail(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (errlen)
		vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Mark the partitions of the list [p, end) ("0,1", "2-3") as owned by
 * who (0: this box); seen[] tells which were named. 0 or -EINVAL. */
static int mark(struct wf_part_map *m, uint8_t *seen, const char *p, const char *end, uint16_t who, uint32_t *max,
		char *errbuf, size_t errlen)
{
	const char *list = p;

	if (p == end)
		return fail(errbuf, errlen, "an empty partition list");
	while (p < end) {
		unsigned long a, b;
		char *e;

		if (*p < '0' || *p > '9')
			goto bad;
		a = b = strtoul(p, &e, 10);
		if (e < end && *e == '-') {
			if (e + 1 >= end || e[1] < '0' || e[1] > '9')
				goto bad;
			b = strtoul(e + 1, &e, 10);
		}
		if (e > end || (e < end && *e != ',') || a > b || b >= WF_PART_MAX)
			goto bad;
		for (unsigned long i = a; i <= b; i++) {
			if (seen[i])
				return fail(errbuf, errlen, "partition %lu is named twice", i);
			seen[i] = 1;
			if (m)
				m->owner[i] = who;
			if (i + 1 > *max)
				*max = (uint32_t)i + 1;
		}
		p = e < end ? e + 1 : e;
		if (e < end && p == end)
			goto bad;
	}
	return 0;
bad:
	return fail(errbuf, errlen, "'%.*s' is not a partition list (\"0,1\", \"2-3\"; 0..%u)", (int)(end - list), list,
		    WF_PART_MAX - 1);
}

int wf_part_list_parse(const char *list, uint8_t *seen, char *errbuf, size_t errlen)
{
	uint32_t max = 0;

	if (!list)
		return fail(errbuf, errlen, "an empty partition list");
	return mark(NULL, seen, list, list + strlen(list), 0, &max, errbuf, errlen);
}

static int parse(struct wf_part_map *m, uint8_t *seen, const char *own, const char *peers, char *errbuf,
		 size_t errlen)
{
	const char *p = peers;
	uint32_t max = 0;
	int e;

	if ((e = mark(m, seen, own, own + strlen(own), 0, &max, errbuf, errlen)) < 0)
		return e;
	while (*p) {
		const char *ent, *eq, *end;
		size_t alen;

		while (*p == ' ' || *p == ';')
			p++;
		if (!*p)
			break;
		ent = p;
		end = p + strcspn(p, " ;");
		eq = memchr(ent, '=', (size_t)(end - ent));
		if (!eq)
			return fail(errbuf, errlen, "'%.*s' is not LIST=ADDRESS", (int)(end - ent), ent);
		alen = (size_t)(end - eq - 1);
		if (alen == 0 || alen >= WF_PART_ADDR_MAX)
			return fail(errbuf, errlen, "'%.*s': an address of 1..%u bytes", (int)(end - ent), ent,
				    WF_PART_ADDR_MAX - 1);
		for (size_t i = 0; i < alen; i++)
			if ((unsigned char)eq[1 + i] <= ' ' || (unsigned char)eq[1 + i] > '~')
				return fail(errbuf, errlen, "'%.*s': an address is printable, without spaces",
					    (int)(end - ent), ent);
		if (m->npeers == WF_PART_MAX_PEERS)
			return fail(errbuf, errlen, "more than %u other boxes", WF_PART_MAX_PEERS);
		memcpy(m->addr[m->npeers], eq + 1, alen);
		m->addr[m->npeers][alen] = '\0';
		m->npeers++;
		if ((e = mark(m, seen, ent, eq, (uint16_t)m->npeers, &max, errbuf, errlen)) < 0)
			return e;
		p = end;
	}
	for (uint32_t i = 0; i < max; i++)
		if (!seen[i])
			return fail(errbuf, errlen, "partition %u has no box (the lists name 0..%u)", i, max - 1);
	m->n = max;
	return 0;
}

int wf_part_map_parse(struct wf_part_map *m, const char *own, const char *peers, char *errbuf, size_t errlen)
{
	struct wf_part_map *t;
	uint8_t seen[WF_PART_MAX] = { 0 };
	int e;

	if (!peers || !*peers) {
		memset(m, 0, sizeof(*m)); /* own alone, or nothing: off */
		return 0;
	}
	if (!own || !*own)
		return fail(errbuf, errlen, "--kafka-peers wants --kafka-partitions (this box's)");
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	e = parse(t, seen, own, peers, errbuf, errlen);
	if (e == 0)
		memcpy(m, t, sizeof(*m));
	free(t);
	return e;
}
