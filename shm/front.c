/*
 * front.c - the front table (see front.h and shm/README.md, "Front
 * table"): keys, the ranker's publishing, ingest's lookup with the one
 * validity rule, and ingest's mirror of the stock table's item states.
 * Linked into weft-ranker (writer) and weft-ingest (reader) through
 * libweft.
 */
#include "shm/front.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/util.h"

/* ---- keys ---- */

int wf_front_prefault(struct wf_front *f, int write)
{
	return wf_populate(f, sizeof(*f), write);
}

void wf_front_key_init(struct wf_front_key *k, int quiet)
{
	k->hash = 0;
	k->len = 0;
	if (quiet)
		k->args[k->len++] = 0; /* the empty session: WF_FRONT_ARGS >= 1 */
}

int wf_front_key_add(struct wf_front_key *k, const char *p, uint32_t len)
{
	if (len > 255 || k->len + 1 + len > WF_FRONT_ARGS)
		return -E2BIG;
	k->args[k->len] = (char)len;
	memcpy(k->args + k->len + 1, p, len);
	k->len += 1 + len;
	return 0;
}

void wf_front_key_seal(struct wf_front_key *k)
{
	k->hash = wf_hash64(k->args, k->len) | 1;
}

/* The first way of key's two-way set. */
static struct wf_front_entry *front_set(const struct wf_front *f, uint64_t key)
{
	return (struct wf_front_entry *)&f->e[key & (WF_FRONT_SLOTS - 2)];
}

/* ---- writer ---- */

void wf_front_stage_init(struct wf_front_stage *s, const struct wf_front_key *k, const struct wf_front_deps *d)
{
	struct wf_front_entry *e = &s->e;

	/* The header zeroed; data is filled as used. */
	memset(e, 0, offsetof(struct wf_front_entry, data));
	memcpy(e->data, k->args, k->len);
	e->args_len = (uint8_t)k->len;
	e->key = k->hash;
	e->sver = d->sver;
	e->gen = d->gen;
	e->until_ms = d->until_ms;
	e->epoch = d->epoch;
	e->starts = d->starts;
	e->wseq = d->wseq;
	s->pos = k->len;
	s->dropped = 0;
}

/* An item record (see struct wf_front_entry): the stock key with bit 0
 * cleared when the snapshot marks the item sold out, the id's length, the
 * id. */
int wf_front_stage_item(struct wf_front_stage *s, uint64_t stock_key, int snap_sold_out, const char *id,
			uint32_t len)
{
	uint64_t w = snap_sold_out ? stock_key & ~1ull : stock_key | 1ull;

	if (s->dropped || s->e.n >= WF_FRONT_ITEMS || len > 255 || s->pos + WF_FRONT_REC + len > WF_FRONT_DATA) {
		s->dropped = 1;
		return -ENOSPC;
	}
	memcpy(s->e.data + s->pos, &w, 8);
	s->e.data[s->pos + 8] = (char)len;
	memcpy(s->e.data + s->pos + WF_FRONT_REC, id, len);
	s->pos += WF_FRONT_REC + len;
	s->e.n++;
	return 0;
}

void wf_front_publish(struct wf_front *f, struct wf_front_stage *s, int complete)
{
	struct wf_front_entry *e = &s->e, *slot = front_set(f, e->key);

	e->complete = complete && !s->dropped;
	e->data_len = (uint16_t)s->pos;
	memset(e->data + s->pos, 0, WF_ALIGN_UP(s->pos, 4) - s->pos); /* readers copy whole words */
	/* Two ways per key: this key's own entry, else the one that expires
	 * first. Plain reads: this ranker is the entries' only writer, and
	 * readers never write them, so these loads race with nothing. */
	if (slot[0].key != e->key && (slot[1].key == e->key || slot[1].until_ms < slot[0].until_ms))
		slot++;
	/* One run: the header and the data used (see struct wf_front_entry). */
	wf_seq_write_begin(&slot->lock);
	wf_seq_store((uint8_t *)slot + sizeof(slot->lock), (uint8_t *)e + sizeof(e->lock),
		     offsetof(struct wf_front_entry, data) - sizeof(e->lock) + WF_ALIGN_UP(s->pos, 4));
	wf_seq_write_end(&slot->lock);
}

void wf_front_live_add(struct wf_front *f, uint64_t h, int d)
{
	_Atomic uint8_t *c = wf_front_live(f, h);
	/* relaxed: this ranker is the only writer; ingest reads it after A2 on
	 * the request ring, which the ranker's R2 (after this store) pairs with. */
	uint8_t v = atomic_load_explicit(c, memory_order_relaxed);

	if (v == 255 || (d < 0 && v == 0))
		return;
	atomic_store_explicit(c, (uint8_t)(v + d), memory_order_relaxed);
}

/* ---- the reader's stock mirror ---- */

/*
 * The stock table's item-level states, mirrored in ingest's own memory
 * for front answers: an item's state there is a random line (and a TLB
 * walk) in a table of 280-byte slots per item checked; here it is a
 * 16-byte slot of a table a few hundred KB for thousands of items. Exact
 * because weft-ingest is the stock table's only writer and its loop does
 * every write, then wf_front_stock_note(). The mirror holds every key of
 * the table while n equals the table's used count (slots are never
 * freed); otherwise (a restarted ingest, whose predecessor filled the
 * table) it is rebuilt from the table before use. Mapped (not malloc'd).
 */
struct front_stock_slot {
	uint64_t key; /* wf_stock_key; 0 = empty */
	uint32_t in;  /* the table's WF_STOCK_IN (1) or WF_STOCK_OUT (0) */
	uint32_t pad;
};

struct wf_front_stock {
	uint32_t mask, n; /* slots - 1; keys held */
	struct front_stock_slot *slot;
};

/* Where key's probe starts (stock_find; the prefetch in front_way). */
static uint32_t stock_home(const struct wf_front_stock *fs, uint64_t key)
{
	return (uint32_t)(key >> 32) & fs->mask;
}

static struct front_stock_slot *stock_find(const struct wf_front_stock *fs, uint64_t key)
{
	uint32_t i = stock_home(fs, key);

	while (fs->slot[i].key && fs->slot[i].key != key)
		i = (i + 1) & fs->mask;
	return &fs->slot[i];
}

void wf_front_stock_free(struct wf_front_stock **m)
{
	struct wf_front_stock *fs = *m;

	if (fs)
		munmap(fs, sizeof(*fs) + ((size_t)fs->mask + 1) * sizeof(struct front_stock_slot));
	*m = NULL;
}

/* Replace *m by a mirror of 2^bits slots holding its keys. 0 or -ENOMEM
 * (*m untouched). */
static int stock_grow(struct wf_front_stock **m, uint32_t bits)
{
	struct wf_front_stock *old = *m, *fs;
	size_t bytes = sizeof(*fs) + ((size_t)1 << bits) * sizeof(struct front_stock_slot);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -ENOMEM;
	fs = p;
	fs->mask = (1u << bits) - 1;
	fs->n = 0;
	fs->slot = (struct front_stock_slot *)(fs + 1);
	for (uint32_t i = 0; old && i <= old->mask; i++)
		if (old->slot[i].key) {
			*stock_find(fs, old->slot[i].key) = old->slot[i];
			fs->n++;
		}
	wf_front_stock_free(m);
	*m = fs;
	return 0;
}

int wf_front_stock_note(struct wf_front_stock **m, const struct wf_stock *st, uint64_t key)
{
	int s = wf_stock_state(st, key, NULL, 0);
	struct front_stock_slot *e;

	if (s == WF_STOCK_UNKNOWN)
		return 0;
	if (!*m || ((*m)->n + 1) * 2 > (*m)->mask + 1) {
		uint32_t bits = *m ? (uint32_t)__builtin_ctz((*m)->mask + 1) + 1 : 12;
		if (stock_grow(m, bits) < 0) {
			wf_front_stock_free(m);
			return -ENOMEM;
		}
	}
	e = stock_find(*m, key);
	if (!e->key) {
		e->key = key;
		(*m)->n++;
	}
	e->in = s == WF_STOCK_IN;
	return 0;
}

/* The mirror, complete (rebuilt from the table when it is not), or NULL
 * (out of memory: the caller reads the table). */
static const struct wf_front_stock *stock_get(struct wf_front_stock **m, const struct wf_stock *st)
{
	/* relaxed: the caller's thread is the table's only writer (see layout.h). */
	uint32_t used = atomic_load_explicit(&((struct wf_stock *)st)->used, memory_order_relaxed);

	static const struct front_stock_slot none[1];
	static const struct wf_front_stock empty = { 0, 0, (struct front_stock_slot *)none };

	if (*m && (*m)->n == used)
		return *m;
	if (!*m && used == 0)
		return &empty; /* nothing stocked live */
	if (*m) {
		(*m)->n = 0;
		memset((*m)->slot, 0, ((size_t)(*m)->mask + 1) * sizeof(struct front_stock_slot));
	}
	for (uint32_t i = 0; i < st->capacity; i++) {
		/* A6: pairs with R6 in wf_stock_set() (written by this thread). */
		uint64_t key = atomic_load_explicit(&((struct wf_stock *)st)->slot[i].key, memory_order_acquire);
		if (key && wf_front_stock_note(m, st, key) < 0)
			return NULL;
	}
	return *m && (*m)->n == used ? *m : NULL;
}

/* wf_stock_ok() for an item-level check (no SIZE), from the mirror. */
static int stock_ok(const struct wf_front_stock *fs, uint64_t key, int snap_sold_out)
{
	const struct front_stock_slot *e = stock_find(fs, key);

	return e->key ? (int)e->in : !snap_sold_out;
}

/* ---- reader ---- */

/* The record at rec (in a copy of the entry): its stock key, the
 * snapshot's sold-out word and its id length. */
static uint64_t item_key(const char *rec, int *ret_snap_sold_out, uint32_t *ret_len)
{
	uint64_t w;

	memcpy(&w, rec, 8);
	*ret_snap_sold_out = !(w & 1);
	*ret_len = (uint8_t)rec[8];
	return w | 1;
}

void wf_front_prefetch(const struct wf_front *f, const struct wf_front_key *key, uint32_t k)
{
	const struct wf_front_entry *set = front_set(f, key->hash);

	__builtin_prefetch(&set[1]);
	for (uint32_t l = 0, end = 56 + key->len + WF_MIN(k + 2, WF_FRONT_ITEMS) * 16; l < end; l += 64)
		__builtin_prefetch((const char *)&set[0] + l);
}

/* Copy the entry's data up to at least byte need (whole lines, within the
 * words written: see struct wf_front_entry) into a->e; *have: bytes so
 * far. 0, or -ENOENT when need is past data_len (a torn read: a miss). */
static int front_fill(struct wf_front_answer *a, const struct wf_front_entry *slot, uint32_t *have, uint32_t need)
{
	uint32_t to;

	if (need <= *have)
		return 0;
	if (need > a->e.data_len)
		return -ENOENT;
	to = WF_MIN(WF_ALIGN_UP(offsetof(struct wf_front_entry, data) + need, 64) - offsetof(struct wf_front_entry, data),
		    WF_ALIGN_UP((uint32_t)a->e.data_len, 4));
	wf_seq_copy(a->e.data + *have, slot->data + *have, to - *have);
	*have = to;
	return 0;
}

/*
 * The validity rule: the header h (copied under the entry's seqlock) is
 * key's, for session version sver, and every input the ranker's answer
 * depended on is what it is now: ingest epoch, weights seqlock count,
 * generation served, ranker start count, and the deadline. 1 if so.
 */
static int front_holds(const struct wf_front_reader *r, const struct wf_front_entry *h,
		       const struct wf_front_key *key, uint64_t sver, uint64_t now_ms)
{
	/* acquire: pairs with the release in wf_seq_write_end() (weights);
	 * A4 on loaded_gen pairs with R4 in the ranker's swap. */
	uint32_t ws = atomic_load_explicit(&r->ctl->weights_lock.seq, memory_order_acquire);

	return h->key == key->hash && h->args_len == key->len && h->sver == sver && h->epoch == r->epoch &&
	       h->wseq == ws && h->n <= WF_FRONT_ITEMS && h->data_len <= WF_FRONT_DATA &&
	       h->gen == atomic_load_explicit(&r->sc->loaded_gen, memory_order_acquire) &&
	       /* relaxed: a count only compared for equality; a restart moves it */
	       h->starts == atomic_load_explicit(&r->sc->ranker_starts, memory_order_relaxed) && now_ms < h->until_ms;
}

/* The quiet rule's last part (see layout.h): the live-session filter says
 * the ranker holds no state for the session, and no restart zeroed the
 * filter since the entry was computed. 1 if so. */
static int front_quiet_holds(const struct wf_front_reader *r, const struct wf_front_entry *h, uint64_t quiet_hash)
{
	/* relaxed: ordered after A2 in the caller's check that the ranker
	 * applied what was forwarded (events it applied are counted) and
	 * before F6. */
	if (atomic_load_explicit(wf_front_live(r->front, quiet_hash), memory_order_relaxed))
		return 0;
	/* F6: pairs with F5 in the ranker's start; relaxed load after it. */
	atomic_thread_fence(memory_order_acquire);
	return h->starts == atomic_load_explicit(&r->sc->ranker_starts, memory_order_relaxed);
}

/*
 * Filter the entry's records by live stock the rankers' way (a front
 * entry is never for a RECS with SIZE) into a->rec, up to k, reading the
 * records a batch at a time: first k + 2 (few of the best items are sold
 * out), then 8 more at a time; each batch's stock slots are loaded first
 * to overlap their cache misses. 0, or -ENOENT on a torn read.
 */
static int front_filter(const struct wf_front_reader *r, const struct wf_front_entry *slot, uint32_t k,
			uint32_t *have, struct wf_front_answer *a)
{
	const struct wf_front_entry *h = &a->e;
	const struct wf_front_stock *fs = stock_get(r->mirror, r->stock);
	uint16_t rec[WF_FRONT_ITEMS];
	uint64_t sk[WF_FRONT_ITEMS];
	uint32_t n = h->n, i, want, off, len;
	int sold;

	a->n = a->bytes = 0;
	for (i = 0, want = 0, off = h->args_len; i < n && a->n < k; i++) {
		if (i == want) {
			want = WF_MIN(n, i ? want + 8 : k + 2);
			for (uint32_t j = i; j < want; j++) {
				if (front_fill(a, slot, have, off + WF_FRONT_REC) < 0)
					return -ENOENT;
				sk[j] = item_key(h->data + off, &sold, &len);
				rec[j] = (uint16_t)off;
				off += WF_FRONT_REC + len;
				if (fs)
					__builtin_prefetch(&fs->slot[stock_home(fs, sk[j])]);
				else
					wf_stock_prefetch(r->stock, sk[j]);
			}
			if (front_fill(a, slot, have, off) < 0)
				return -ENOENT;
		}
		item_key(h->data + rec[i], &sold, &len);
		if (fs ? stock_ok(fs, sk[i], sold) : wf_stock_ok(r->stock, sk[i], sold, 0, NULL, 0)) {
			a->rec[a->n++] = rec[i];
			a->bytes += len;
		}
	}
	return 0;
}

/*
 * Answer from the entry at slot: 0 (a filled) or -ENOENT. Reads the entry
 * in place under its seqlock, from its start and only as far as the
 * answer needs: the header, the arguments, and the records of the items
 * it checks. The quiet rule, when asked, is checked between the entry's
 * start count and the final sequence check.
 */
static int front_way(const struct wf_front_reader *r, const struct wf_front_entry *slot,
		     const struct wf_front_key *key, uint64_t sver, uint32_t k, uint64_t quiet_hash, uint64_t now_ms,
		     struct wf_front_answer *a)
{
	struct wf_front_entry *h = &a->e;
	uint32_t seq = wf_seq_read_try(&slot->lock), have;
	uint64_t hint;

	/* The key as a hint (relaxed word loads, like every read of a
	 * seqlock payload), checked again under the sequence below. */
	if (seq & 1)
		return -ENOENT;
	wf_seq_copy(&hint, &slot->key, sizeof(hint));
	if (hint != key->hash)
		return -ENOENT;
	/* The header's line: the header and the data's first 8 bytes. */
	wf_seq_copy(h, slot, 64);
	have = 64 - offsetof(struct wf_front_entry, data);
	if (!front_holds(r, h, key, sver, now_ms))
		return -ENOENT;
	/* The arguments and (a guess) the records of k items and 2 more, in
	 * one copy. */
	if (front_fill(a, slot, &have,
		       WF_MIN(key->len + WF_MIN((uint32_t)h->n, k + 2) * (WF_FRONT_REC + 8), (uint32_t)h->data_len)) < 0 ||
	    memcmp(h->data, key->args, key->len) != 0)
		return -ENOENT;
	if (front_filter(r, slot, k, &have, a) < 0)
		return -ENOENT;
	if (a->n < k && !h->complete)
		return -ENOENT; /* a short prefix that is not the whole pool: the ranker's */
	if (quiet_hash && !front_quiet_holds(r, h, quiet_hash))
		return -ENOENT;
	return wf_seq_read_retry(&slot->lock, seq) ? -ENOENT : 0;
}

int wf_front_lookup(const struct wf_front_reader *r, const struct wf_front_key *key, uint64_t sver, uint32_t k,
		    uint64_t quiet_hash, uint64_t now_ms, struct wf_front_answer *a)
{
	const struct wf_front_entry *set = front_set(r->front, key->hash);

	if (k < 1 || k > WF_FRONT_ITEMS)
		return -ENOENT;
	if (front_way(r, &set[0], key, sver, k, quiet_hash, now_ms, a) == 0 ||
	    front_way(r, &set[1], key, sver, k, quiet_hash, now_ms, a) == 0)
		return 0;
	return -ENOENT;
}
