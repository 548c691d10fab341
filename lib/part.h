/*
 * part.h - which Kafka partition a shopper belongs to, and which box owns
 * each partition (issue 20, partitioned boxes).
 *
 * A shopper's key is the Kafka message key weft-kafka's producers use: the
 * user id, or the session id for an anonymous visitor (user "-"). Its
 * partition is CRC-32 (IEEE, zlib's crc32()) of the key modulo the
 * partition count: librdkafka's default partitioner for keyed messages
 * (consistent_random), which kcat and confluent-kafka use too. A store's
 * client computes the same (Python: zlib.crc32(key) % n) to pick the box.
 *
 * The map comes from two options (weft-ingest `--kafka-partitions L
 * --kafka-peers "L=ADDR ..."`, or WEFT_KAFKA_PARTITIONS/WEFT_KAFKA_PEERS in
 * the config file): this box's partitions, and every other partition's box
 * address (a Unix socket path or host:port, given back as is in -MOVED).
 * Together they name every partition 0..n-1 exactly once.
 *
 * Linked into every program through libweft; weft-ingest is the user.
 * Never logs.
 */
#ifndef WF_PART_H
#define WF_PART_H

#include <stddef.h>
#include <stdint.h>

#define WF_PART_MAX 1024u       /* partitions of a topic */
#define WF_PART_MAX_PEERS 32u   /* other boxes */
#define WF_PART_ADDR_MAX 256u   /* an address, with its NUL */

/* The map. Owner: whoever embeds it (weft-ingest's context); filled once by
 * wf_part_map_parse(), then only read. */
struct wf_part_map {
	uint32_t n;                     /* partitions; 0: partitioning off */
	uint32_t npeers;
	uint16_t owner[WF_PART_MAX];    /* 0: this box, else 1 + index into addr */
	char addr[WF_PART_MAX_PEERS][WF_PART_ADDR_MAX];
};

/* CRC-32 (IEEE 802.3, reflected): zlib's crc32(0, p, len). */
uint32_t wf_part_crc32(const void *p, size_t len);

/* The partition of a key among n (n > 0): librdkafka's consistent_random. */
static inline uint32_t wf_part_of(const char *key, size_t len, uint32_t n)
{
	return wf_part_crc32(key, len) % n;
}

/*
 * Parse this box's partitions (own: "0,1" or "0-1") and the others' boxes
 * (peers: entries "LIST=ADDR" separated by spaces or ';', LIST as own)
 * into *m. Both NULL or empty: partitioning off (m->n = 0). own without
 * peers: off too (the box takes its partitions from Kafka but cannot
 * name another box: weft-kafka's use alone).
 * Returns 0, or -EINVAL (a bad list or address, a partition named twice
 * or missing, more than WF_PART_MAX partitions or WF_PART_MAX_PEERS
 * boxes, peers without own) with why in errbuf, or -ENOMEM. *m is
 * written only on success.
 */
int wf_part_map_parse(struct wf_part_map *m, const char *own, const char *peers, char *errbuf, size_t errlen);

/* One partition list as --kafka-partitions takes it ("0,1", "2-3"): each
 * partition named sets seen[p] (seen: WF_PART_MAX bytes, zeroed by the
 * caller). 0, or -EINVAL (a bad list, a partition named twice) with why
 * in errbuf. The rule weft-ingest's map and weft-kafka's assignment share. */
int wf_part_list_parse(const char *list, uint8_t *seen, char *errbuf, size_t errlen);

/* The address of the box owning partition p (< m->n), or NULL: this box. */
static inline const char *wf_part_owner(const struct wf_part_map *m, uint32_t p)
{
	return m->owner[p] ? m->addr[m->owner[p] - 1] : NULL;
}

#endif /* WF_PART_H */
