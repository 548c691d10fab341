/*
 * shm.c - weft's shared-memory segment: create, attach, regions, seqlocks,
 * weights, snapshot refs and the size-level stock table (see shm.h).
 * Linked into every weft process through libweft.
 */
#include "shm/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"

#define SHM_DIR "/dev/shm/"
#define DEFAULT_RING (4u << 20)
#define DEFAULT_STOCK (1u << 18)

static int is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static int name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 200 || strchr(name, '/') || name[0] == '.')
		return 0;
	return 1;
}

/* ---- ring and waiter (out-of-line parts) ---- */

int wf_ring_init(struct wf_ring *r, uint32_t capacity)
{
	if (!is_pow2(capacity) || capacity < 4096 || capacity > (1u << 30))
		return -EINVAL;
	r->capacity = capacity;
	r->mask = capacity - 1;
	r->magic = WF_RING_MAGIC;
	atomic_store_explicit(&r->head, 0, memory_order_relaxed); /* relaxed: not yet shared */
	atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
	return 0;
}

void wf_ring_prod_attach(struct wf_ring_prod *p, struct wf_ring *r)
{
	p->r = r;
	p->mask = r->mask;
	p->capacity = r->capacity;
	/* relaxed: we are the only writer of head; a predecessor's last
	 * commit is what we resume from. */
	p->head = atomic_load_explicit(&r->head, memory_order_relaxed);
	/* A2 (see ring.h). */
	p->cached_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
}

void wf_ring_cons_attach(struct wf_ring_cons *c, struct wf_ring *r)
{
	c->r = r;
	c->mask = r->mask;
	c->capacity = r->capacity;
	/* relaxed: we are the only writer of tail. */
	c->tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	c->cached_head = c->tail;
}

int wf_wait_futex(struct wf_waiter *w, uint64_t timeout_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000ull),
			       .tv_nsec = (long)(timeout_ns % 1000000000ull) };
	long r;

	/* Not FUTEX_PRIVATE: the word is shared between processes. */
	r = syscall(SYS_futex, &w->sleeping, FUTEX_WAIT, 1, timeout_ns ? &ts : NULL, NULL, 0);
	/* relaxed: clears our own flag; see wf_wait_cancel(). */
	atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
	if (r < 0 && errno == EINTR)
		return -EINTR;
	return 0;
}

void wf_wake_futex(struct wf_waiter *w)
{
	syscall(SYS_futex, &w->sleeping, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* ---- segment ---- */

struct layout_plan {
	uint64_t ctl_off, stock_off, stock_size, shard_off[WF_SHM_MAX_SHARDS], shard_size, reqlat_off, total;
};

static void plan_layout(const struct wf_shm_config *cfg, struct layout_plan *p)
{
	uint64_t off = WF_ALIGN_UP((uint64_t)sizeof(struct wf_shm_hdr), 4096);

	p->ctl_off = off;
	off = WF_ALIGN_UP(off + sizeof(struct wf_ctl), 4096);
	p->shard_size = WF_ALIGN_UP(sizeof(struct wf_shard_ctl), 64) + 2 * wf_ring_footprint(cfg->ring_capacity) +
			sizeof(struct wf_front);
	p->shard_size = WF_ALIGN_UP(p->shard_size, 4096);
	for (uint32_t i = 0; i < cfg->nshards; i++) {
		p->shard_off[i] = off;
		off += p->shard_size;
	}
	p->stock_off = off;
	p->stock_size = WF_ALIGN_UP(sizeof(struct wf_stock) + (uint64_t)cfg->stock_capacity * sizeof(struct wf_stock_slot),
				    4096);
	off += p->stock_size;
	p->reqlat_off = off;
	off += WF_ALIGN_UP(sizeof(struct wf_reqlat), 4096);
	p->total = off;
}

static void toc_add(struct wf_shm_hdr *h, const char *name, uint64_t off, uint64_t size)
{
	struct wf_shm_toc_entry *e = &h->toc[h->ntoc++];

	snprintf(e->name, sizeof(e->name), "%s", name);
	e->off = off;
	e->size = size;
}

static int map_fd(int fd, uint64_t size, struct wf_shm **ret, const char *name, int prot)
{
	struct wf_shm *shm = calloc(1, sizeof(*shm));
	void *p;

	if (!shm)
		return -ENOMEM;
	p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int e = -errno;
		free(shm);
		return e;
	}
	/* Advice only: huge pages for the segment where the kernel allows them
	 * for shared memory (/sys/kernel/mm/transparent_hugepage/shmem_enabled
	 * "advise" or "always"): the front tables and stock table are probed
	 * at random, a TLB miss per request with 4 KiB pages. */
	(void)madvise(p, size, MADV_HUGEPAGE);
	shm->base = p;
	shm->size = size;
	shm->hdr = p;
	snprintf(shm->name, sizeof(shm->name), "%s", name);
	*ret = shm;
	return 0;
}

static int bind_regions(struct wf_shm *shm)
{
	uint64_t sz;

	shm->ctl = wf_shm_region(shm, "ctl", &sz);
	if (!shm->ctl || sz < sizeof(struct wf_ctl))
		return -EPROTO;
	shm->stock = wf_shm_region(shm, "stock", &sz);
	if (!shm->stock || sz < sizeof(struct wf_stock))
		return -EPROTO;
	shm->reqlat = wf_shm_region(shm, "reqlat", &sz);
	if (!shm->reqlat || sz < sizeof(struct wf_reqlat))
		return -EPROTO;
	if (shm->hdr->nshards == 0 || shm->hdr->nshards > WF_SHM_MAX_SHARDS)
		return -EPROTO;
	for (uint32_t i = 0; i < shm->hdr->nshards; i++)
		if (!wf_shm_req_ring(shm, i) || !wf_shm_rep_ring(shm, i))
			return -EPROTO;
	return 0;
}

int wf_shm_create(const char *name, const struct wf_shm_config *cfg_in, struct wf_shm **ret)
{
	struct wf_shm_config cfg = *cfg_in;
	struct layout_plan plan;
	char tmp[512], final[512];
	struct wf_shm *shm = NULL;
	int fd, r;

	if (!name_ok(name))
		return -EINVAL;
	if (!cfg.ring_capacity)
		cfg.ring_capacity = DEFAULT_RING;
	if (!cfg.stock_capacity)
		cfg.stock_capacity = DEFAULT_STOCK;
	if (cfg.nshards == 0 || cfg.nshards > WF_SHM_MAX_SHARDS || !is_pow2(cfg.ring_capacity) ||
	    cfg.ring_capacity < 4096 || cfg.ring_capacity > (1u << 30) || !is_pow2(cfg.stock_capacity))
		return -EINVAL;
	plan_layout(&cfg, &plan);

	snprintf(final, sizeof(final), SHM_DIR "%s", name);
	snprintf(tmp, sizeof(tmp), SHM_DIR ".%s.tmp.%d", name, (int)getpid());
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0660);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)plan.total) < 0) {
		r = -errno;
		goto fail;
	}
	r = map_fd(fd, plan.total, &shm, name, PROT_READ | PROT_WRITE);
	if (r < 0)
		goto fail;

	/* The file is fresh from tmpfs: all zero. Fill in, then publish by link(). */
	struct wf_shm_hdr *h = shm->hdr;
	h->magic = WF_SHM_MAGIC;
	h->layout_version = WF_SHM_LAYOUT_VERSION;
	h->nshards = cfg.nshards;
	h->total_size = plan.total;
	h->created_ms = wf_wall_ms();
	h->ring_capacity = cfg.ring_capacity;
	toc_add(h, "ctl", plan.ctl_off, sizeof(struct wf_ctl));
	for (uint32_t i = 0; i < cfg.nshards; i++) {
		char rn[WF_SHM_NAME_MAX];
		struct wf_shard_ctl *sc = (struct wf_shard_ctl *)(shm->base + plan.shard_off[i]);
		uint64_t ring0 = plan.shard_off[i] + WF_ALIGN_UP(sizeof(struct wf_shard_ctl), 64);

		snprintf(rn, sizeof(rn), "shard.%u", i);
		toc_add(h, rn, plan.shard_off[i], plan.shard_size);
		sc->req_ring_off = ring0;
		sc->rep_ring_off = ring0 + wf_ring_footprint(cfg.ring_capacity);
		sc->front_off = ring0 + 2 * wf_ring_footprint(cfg.ring_capacity); /* zero: every entry empty */
		wf_ring_init((struct wf_ring *)(shm->base + sc->req_ring_off), cfg.ring_capacity);
		wf_ring_init((struct wf_ring *)(shm->base + sc->rep_ring_off), cfg.ring_capacity);
	}
	toc_add(h, "stock", plan.stock_off, plan.stock_size);
	struct wf_stock *st = (struct wf_stock *)(shm->base + plan.stock_off);
	st->capacity = cfg.stock_capacity;
	st->mask = cfg.stock_capacity - 1;
	toc_add(h, "reqlat", plan.reqlat_off, sizeof(struct wf_reqlat)); /* zero: empty histograms */

	r = bind_regions(shm);
	if (r < 0)
		goto fail;
	wf_ctl_weights_default(shm->ctl);
	/* Publish: the segment appears under its name complete or not at all.
	 * link() fails with EEXIST when another creator won the race. */
	if (link(tmp, final) < 0) {
		r = -errno;
		goto fail;
	}
	unlink(tmp);
	close(fd);
	*ret = shm;
	return 0;
fail:
	wf_shm_detach(shm);
	unlink(tmp);
	close(fd);
	return r;
}

/* Attach with open() flags oflags (O_RDWR, or O_RDONLY: a read-only map). */
static int attach(const char *name, int oflags, struct wf_shm **ret)
{
	char path[512];
	struct wf_shm_hdr h;
	struct wf_shm *shm = NULL;
	struct stat st;
	int fd, r;

	if (!name_ok(name))
		return -EINVAL;
	snprintf(path, sizeof(path), SHM_DIR "%s", name);
	fd = open(path, oflags | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size < sizeof(h) || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		r = -EPROTO;
		goto out;
	}
	if (h.magic != WF_SHM_MAGIC || h.layout_version != WF_SHM_LAYOUT_VERSION ||
	    h.total_size != (uint64_t)st.st_size || h.ntoc > WF_SHM_TOC_MAX) {
		r = -EPROTO;
		goto out;
	}
	r = map_fd(fd, h.total_size, &shm, name, oflags == O_RDONLY ? PROT_READ : PROT_READ | PROT_WRITE);
	if (r < 0)
		goto out;
	r = bind_regions(shm);
	if (r < 0) {
		wf_shm_detach(shm);
		goto out;
	}
	*ret = shm;
out:
	close(fd);
	return r;
}

int wf_shm_attach(const char *name, struct wf_shm **ret)
{
	return attach(name, O_RDWR, ret);
}

int wf_shm_attach_ro(const char *name, struct wf_shm **ret)
{
	return attach(name, O_RDONLY, ret);
}

int wf_shm_open(const char *name, const struct wf_shm_config *cfg, struct wf_shm **ret)
{
	for (int tries = 0; tries < 50; tries++) {
		struct wf_shm *shm;
		int r = wf_shm_attach(name, &shm);

		if (r == 0) {
			if (cfg && cfg->nshards && shm->hdr->nshards != cfg->nshards) {
				wf_shm_detach(shm);
				return -ESTALE;
			}
			*ret = shm;
			return 0;
		}
		if (r != -ENOENT || !cfg)
			return r;
		r = wf_shm_create(name, cfg, ret);
		if (r != -EEXIST)
			return r;
		/* Lost the creation race: attach to the winner's segment. */
	}
	return -EAGAIN;
}

void wf_shm_detach(struct wf_shm *shm)
{
	if (!shm)
		return;
	if (shm->base)
		munmap(shm->base, shm->size);
	free(shm);
}

int wf_shm_unlink(const char *name)
{
	char path[512];

	if (!name_ok(name))
		return -EINVAL;
	snprintf(path, sizeof(path), SHM_DIR "%s", name);
	return unlink(path) < 0 ? -errno : 0;
}

void *wf_shm_ptr(const struct wf_shm *shm, uint64_t off, uint64_t len)
{
	if (off > shm->size || len > shm->size - off)
		return NULL;
	return shm->base + off;
}

void *wf_shm_region(const struct wf_shm *shm, const char *name, uint64_t *ret_size)
{
	const struct wf_shm_hdr *h = shm->hdr;

	for (uint32_t i = 0; i < h->ntoc && i < WF_SHM_TOC_MAX; i++) {
		if (strncmp(h->toc[i].name, name, WF_SHM_NAME_MAX) == 0) {
			void *p = wf_shm_ptr(shm, h->toc[i].off, h->toc[i].size);
			if (p && ret_size)
				*ret_size = h->toc[i].size;
			return p;
		}
	}
	return NULL;
}

struct wf_shard_ctl *wf_shm_shard(const struct wf_shm *shm, uint32_t i)
{
	char rn[WF_SHM_NAME_MAX];
	uint64_t sz;
	void *p;

	if (i >= shm->hdr->nshards)
		return NULL;
	snprintf(rn, sizeof(rn), "shard.%u", i);
	p = wf_shm_region(shm, rn, &sz);
	return (p && sz >= sizeof(struct wf_shard_ctl)) ? p : NULL;
}

static struct wf_ring *ring_at(const struct wf_shm *shm, uint64_t off)
{
	struct wf_ring *r = wf_shm_ptr(shm, off, sizeof(struct wf_ring));

	if (!r || r->magic != WF_RING_MAGIC || !is_pow2(r->capacity) ||
	    !wf_shm_ptr(shm, off, wf_ring_footprint(r->capacity)))
		return NULL;
	return r;
}

struct wf_ring *wf_shm_req_ring(const struct wf_shm *shm, uint32_t i)
{
	struct wf_shard_ctl *sc = wf_shm_shard(shm, i);

	return sc ? ring_at(shm, sc->req_ring_off) : NULL;
}

struct wf_ring *wf_shm_rep_ring(const struct wf_shm *shm, uint32_t i)
{
	struct wf_shard_ctl *sc = wf_shm_shard(shm, i);

	return sc ? ring_at(shm, sc->rep_ring_off) : NULL;
}

/* ---- seqlock ---- */

/*
 * Writer side, robust to a writer that died mid-write (seq left odd):
 * begin keeps an odd seq odd (s | 1) instead of making it even over data
 * a dead writer half wrote, end makes it even. So a restarted writer's
 * first complete write repairs the lock (see wf_seq_abandoned).
 */
void wf_seq_write_begin(struct wf_seqlock *l)
{
	/* relaxed load: one writer. FS2 (release fence): the odd seq before
	 * the data writes that follow; pairs with FS2 (acquire fence) in
	 * wf_seq_read_retry(). */
	uint32_t s = atomic_load_explicit(&l->seq, memory_order_relaxed) | 1u;

	atomic_store_explicit(&l->seq, s, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

void wf_seq_write_end(struct wf_seqlock *l)
{
	/* relaxed load: one writer; odd since wf_seq_write_begin. */
	uint32_t s = atomic_load_explicit(&l->seq, memory_order_relaxed) | 1u;

	/* RS1: the data writes happen before the even seq; pairs with AS1 in
	 * wf_seq_read_try() / wf_seq_read_begin(). */
	atomic_store_explicit(&l->seq, s + 1, memory_order_release);
}

int wf_seq_abandoned(const struct wf_seqlock *l)
{
	/* relaxed: asked by the lock's one writer before it writes (nobody
	 * else changes seq), so it reads its own predecessor's last store. */
	return atomic_load_explicit(&((struct wf_seqlock *)l)->seq, memory_order_relaxed) & 1;
}

uint32_t wf_seq_read_try(const struct wf_seqlock *l)
{
	/* AS1: pairs with RS1 in wf_seq_write_end(). */
	return atomic_load_explicit(&((struct wf_seqlock *)l)->seq, memory_order_acquire);
}

uint32_t wf_seq_read_begin(const struct wf_seqlock *l)
{
	uint32_t s;

	while ((s = wf_seq_read_try(l)) & 1)
		__builtin_ia32_pause();
	return s;
}

int wf_seq_read_retry(const struct wf_seqlock *l, uint32_t seq)
{
	/* FS2 (acquire fence): the data reads before it complete before the
	 * seq re-read; pairs with FS2 (release fence) in wf_seq_write_begin(). */
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&((struct wf_seqlock *)l)->seq, memory_order_relaxed) != seq;
}

/* A seqlock's payload is read and written as _Atomic 32-bit words, of
 * the same size and alignment as the plain words they overlay. */
_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t) && _Alignof(_Atomic uint32_t) == _Alignof(uint32_t),
	       "atomic words overlay plain ones");

void wf_seq_copy(void *dst, const void *src, size_t n)
{
	uint32_t *d = dst;
	const _Atomic uint32_t *s = src;

	/* relaxed: the seqlock's sequence reads around the copy order it (the
	 * caller retries on a change); atomic words only so a torn read is no UB. */
	for (size_t i = 0; i < n / 4; i++)
		d[i] = atomic_load_explicit(&s[i], memory_order_relaxed);
}

struct wf_front *wf_shm_front(const struct wf_shm *shm, uint32_t i)
{
	struct wf_shard_ctl *sc = wf_shm_shard(shm, i);

	return sc ? wf_shm_ptr(shm, sc->front_off, sizeof(struct wf_front)) : NULL;
}

void wf_seq_store(void *dst, const void *src, size_t n)
{
	_Atomic uint32_t *d = dst;
	const uint32_t *s = src;

	/* relaxed: between wf_seq_write_begin() and _end(), whose fences and
	 * sequence stores order these for readers (they retry on a change). */
	for (size_t i = 0; i < n / 4; i++)
		atomic_store_explicit(&d[i], s[i], memory_order_relaxed);
}

/* ---- weights ---- */

static uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

void wf_ctl_weights_get(struct wf_ctl *ctl, int page, int visitor, float *ret_batch, float *ret_session)
{
	uint32_t w[2], s; /* batch_bits, session_bits */

	_Static_assert(sizeof(w) == sizeof(struct wf_weight), "weight words");
	do {
		s = wf_seq_read_begin(&ctl->weights_lock);
		wf_seq_copy(w, &ctl->weights[page][visitor], sizeof(w));
	} while (wf_seq_read_retry(&ctl->weights_lock, s));
	*ret_batch = u2f(w[0]);
	*ret_session = u2f(w[1]);
}

void wf_ctl_weights_set(struct wf_ctl *ctl, int page, int visitor, float batch, float session)
{
	uint32_t w[2] = { f2u(batch), f2u(session) };

	wf_seq_write_begin(&ctl->weights_lock);
	wf_seq_store(&ctl->weights[page][visitor], w, sizeof(w));
	wf_seq_write_end(&ctl->weights_lock);
}

void wf_ctl_weights_default(struct wf_ctl *ctl)
{
	for (int p = 0; p < WF_PAGE_COUNT; p++) {
		if (p == WF_PAGE_EMAIL) {
			/* Email is static once sent: batch decides alone (seeds). */
			wf_ctl_weights_set(ctl, p, WF_VISITOR_RETURNING, 1.0f, 0.0f);
			wf_ctl_weights_set(ctl, p, WF_VISITOR_NEW, 1.0f, 0.0f);
			continue;
		}
		wf_ctl_weights_set(ctl, p, WF_VISITOR_RETURNING, 0.4f, 0.6f);
		wf_ctl_weights_set(ctl, p, WF_VISITOR_NEW, 0.1f, 0.9f);
	}
}

/* ---- snapshot refs ---- */

void wf_ctl_snap_get(struct wf_ctl *ctl, struct wf_snap_ref *ret_cur, struct wf_snap_ref *ret_prev)
{
	struct wf_snap_ref cur, prev;
	uint32_t s;

	do {
		s = wf_seq_read_begin(&ctl->snap_lock);
		wf_seq_copy(&cur, &ctl->snap_cur, sizeof(cur));
		wf_seq_copy(&prev, &ctl->snap_prev, sizeof(prev));
	} while (wf_seq_read_retry(&ctl->snap_lock, s));
	cur.path[WF_PATH_MAX - 1] = '\0';
	prev.path[WF_PATH_MAX - 1] = '\0';
	if (ret_cur)
		*ret_cur = cur;
	if (ret_prev)
		*ret_prev = prev;
}

void wf_ctl_snap_set(struct wf_ctl *ctl, const struct wf_snap_ref *cur, const struct wf_snap_ref *prev)
{
	wf_seq_write_begin(&ctl->snap_lock);
	wf_seq_store(&ctl->snap_cur, cur, sizeof(*cur));
	wf_seq_store(&ctl->snap_prev, prev, sizeof(*prev));
	wf_seq_write_end(&ctl->snap_lock);
	/* R3: pairs with A3 in the rankers' loop; a ranker that sees the new
	 * generation finds its path under the seqlock. */
	atomic_store_explicit(&ctl->snap_cur_gen, cur->gen, memory_order_release);
}

/* ---- stock ---- */

uint64_t wf_stock_key(const char *item, size_t len)
{
	return wf_hash64(item, len) | 1; /* never 0: 0 marks an empty slot */
}

static struct wf_stock_slot *stock_find(const struct wf_stock *st, uint64_t key, int insert)
{
	struct wf_stock *w = (struct wf_stock *)st;
	uint32_t i = (uint32_t)(key >> 20) & st->mask;

	for (uint32_t n = 0; n < st->capacity; n++, i = (i + 1) & st->mask) {
		struct wf_stock_slot *s = &w->slot[i];
		/* A6: pairs with R6 below; a visible key means visible fields. */
		uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);

		if (k == key)
			return s;
		if (k == 0) {
			if (!insert)
				return NULL;
			/* Single writer: nobody else can claim this slot. */
			atomic_store_explicit(&s->nsizes, 0, memory_order_relaxed);
			atomic_store_explicit(&s->in_stock, 0, memory_order_relaxed);
			/* R6: pairs with A6 above (in readers). */
			atomic_store_explicit(&s->key, key, memory_order_release);
			/* relaxed: the slots in use, exactly (slots are never freed):
			 * readers skip the probe at 0, weft-ingest's front-answer
			 * stock mirror (ingest/cmd.c, same thread) counts against it. */
			atomic_fetch_add_explicit(&w->used, 1, memory_order_relaxed);
			return s;
		}
	}
	return NULL;
}

static int size_match(const struct wf_stock_size *z, const char *size, size_t len)
{
	return len < WF_STOCK_SIZE_NAME && strncmp(z->name, size, len) == 0 && z->name[len] == '\0';
}

int wf_stock_set(struct wf_stock *st, const char *item, size_t item_len, const char *size, size_t size_len,
		 int32_t qty)
{
	struct wf_stock_slot *s;
	uint32_t n, in = 0;

	if (size && size_len >= WF_STOCK_SIZE_NAME)
		return -EINVAL;
	if (qty < 0)
		qty = 0;
	s = stock_find(st, wf_stock_key(item, item_len), 1);
	if (!s) {
		atomic_fetch_add_explicit(&st->full_drops, 1, memory_order_relaxed); /* stats */
		return -ENOSPC;
	}
	/* relaxed: this process is the only writer of the slot. */
	n = atomic_load_explicit(&s->nsizes, memory_order_relaxed);
	if (!size || size_len == 0) {
		atomic_store_explicit(&s->qty, qty, memory_order_relaxed);
		if (n == 0)
			atomic_store_explicit(&s->in_stock, qty > 0, memory_order_relaxed);
		return 0;
	}
	uint32_t i;
	for (i = 0; i < n; i++)
		if (size_match(&s->size[i], size, size_len))
			break;
	if (i == n) {
		if (n == WF_STOCK_SIZES)
			return -ENOSPC;
		memset(s->size[i].name, 0, sizeof(s->size[i].name));
		memcpy(s->size[i].name, size, size_len);
		atomic_store_explicit(&s->size[i].qty, qty, memory_order_relaxed);
		/* R7: pairs with A7 in readers; the name is written before. */
		atomic_store_explicit(&s->nsizes, n + 1, memory_order_release);
		n++;
	} else {
		atomic_store_explicit(&s->size[i].qty, qty, memory_order_relaxed);
	}
	for (i = 0; i < n; i++)
		in += atomic_load_explicit(&s->size[i].qty, memory_order_relaxed) > 0;
	/* relaxed: a summary of the qtys just written (see layout.h). */
	atomic_store_explicit(&s->in_stock, in, memory_order_relaxed);
	return 0;
}

void wf_stock_prefetch(const struct wf_stock *st, uint64_t key)
{
	/* relaxed: a hint only (see wf_stock_state) */
	if (atomic_load_explicit(&((struct wf_stock *)st)->used, memory_order_relaxed))
		__builtin_prefetch(&st->slot[(uint32_t)(key >> 20) & st->mask], 0, 1);
}

int wf_stock_state(const struct wf_stock *st, uint64_t key, const char *size, size_t size_len)
{
	struct wf_stock_slot *s;
	uint32_t n;

	/* relaxed: a store that has never sent STOCK skips the probe (a random
	 * cache line of a large table); an insert racing with this read is the
	 * same as reading a moment earlier. */
	if (atomic_load_explicit(&((struct wf_stock *)st)->used, memory_order_relaxed) == 0)
		return WF_STOCK_UNKNOWN;
	s = stock_find(st, key, 0);

	if (!s)
		return WF_STOCK_UNKNOWN;
	/* A7: pairs with R7 in wf_stock_set(). */
	n = atomic_load_explicit(&s->nsizes, memory_order_acquire);
	if (size && size_len) {
		for (uint32_t i = 0; i < n; i++)
			if (size_match(&s->size[i], size, size_len))
				return atomic_load_explicit(&s->size[i].qty, memory_order_relaxed) > 0 ? WF_STOCK_IN
													 : WF_STOCK_OUT;
		/* An item tracked by size that lacks the size asked for does not
		 * come in it. A size-less item comes in any size. */
		if (n)
			return WF_STOCK_OUT;
	}
	/* relaxed: see layout.h on in_stock. */
	return atomic_load_explicit(&s->in_stock, memory_order_relaxed) > 0 ? WF_STOCK_IN : WF_STOCK_OUT;
}

int wf_stock_size_ok(const struct wf_stock *st, uint64_t key, int snap_sold_out, uint32_t nsizes, const char *size,
		     size_t size_len)
{
	struct wf_stock_slot *s;
	uint32_t n;

	/* relaxed: as in wf_stock_state(). */
	if (atomic_load_explicit(&((struct wf_stock *)st)->used, memory_order_relaxed) == 0 ||
	    !(s = stock_find(st, key, 0)))
		return !snap_sold_out; /* no live data: not filtered */
	/* A7: pairs with R7 in wf_stock_set(). */
	n = atomic_load_explicit(&s->nsizes, memory_order_acquire);
	if (n == 0) /* size-less live item: comes in any size; relaxed: see layout.h */
		return atomic_load_explicit(&s->in_stock, memory_order_relaxed) > 0;
	for (uint32_t i = 0; i < n; i++)
		if (size_match(&s->size[i], size, size_len))
			return atomic_load_explicit(&s->size[i].qty, memory_order_relaxed) > 0;
	return nsizes && n >= nsizes ? 0 : !snap_sold_out;
}

int wf_stock_read(const struct wf_stock *st, const char *item, size_t item_len, struct wf_stock_view *out,
		  uint32_t max)
{
	struct wf_stock_slot *s = stock_find(st, wf_stock_key(item, item_len), 0);
	uint32_t n;

	if (!s)
		return -ENOENT;
	/* A7 (see wf_stock_set). */
	n = atomic_load_explicit(&s->nsizes, memory_order_acquire);
	if (n == 0) {
		if (max == 0)
			return 1;
		out[0].name[0] = '\0';
		out[0].qty = atomic_load_explicit(&s->qty, memory_order_relaxed);
		return 1;
	}
	for (uint32_t i = 0; i < n && i < max; i++) {
		memcpy(out[i].name, s->size[i].name, WF_STOCK_SIZE_NAME);
		out[i].name[WF_STOCK_SIZE_NAME] = '\0';
		out[i].qty = atomic_load_explicit(&s->size[i].qty, memory_order_relaxed);
	}
	return (int)WF_MIN(n, max);
}
