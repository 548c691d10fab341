/*
 * segs.c - weft-ranker's real-time segments (issue 16; lib/seg evaluates,
 * docs/SEGMENTS.md says what the rules mean): the live definitions
 * (DIR/segments.conf, reloaded when weft-admin bumps ctl->segdefs_gen),
 * each session's segment state (in the session arena), evaluation on
 * every event and at every deadline (a binary heap of sessions by their
 * next deadline), the enter/exit notes for ingest to journal and publish,
 * the replay after a restart (announced membership and sequence numbers
 * from this shard's WF_JREC_SEGMENT records), SEGMENTS' evaluated part and
 * SEGPREVIEW. Linked only into weft-ranker.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jemalloc/jemalloc.h>
#include <unistd.h>

#include "lib/journal.h"
#include "lib/proto.h"
#include "rankers/ranker_int.h"

#define TIMERS_STEP 256u /* deadlines fired per call, so requests wait for no more */

/* ---- the heap of deadlines ---- */

static void heap_swap(struct ranker_ctx *ctx, uint32_t a, uint32_t b)
{
	struct ranker_seg_timer t = ctx->seg_heap[a];

	ctx->seg_heap[a] = ctx->seg_heap[b];
	ctx->seg_heap[b] = t;
	ctx->seg_heap[a].s->seg->heap_pos = a + 1;
	ctx->seg_heap[b].s->seg->heap_pos = b + 1;
}

static void heap_fix(struct ranker_ctx *ctx, uint32_t i)
{
	struct ranker_seg_timer *h = ctx->seg_heap;

	while (i > 0 && h[i].at < h[(i - 1) / 2].at) {
		heap_swap(ctx, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		uint32_t l = 2 * i + 1, m = i;
		if (l < ctx->seg_heap_n && h[l].at < h[m].at)
			m = l;
		if (l + 1 < ctx->seg_heap_n && h[l + 1].at < h[m].at)
			m = l + 1;
		if (m == i)
			return;
		heap_swap(ctx, i, m);
		i = m;
	}
}

static void heap_remove(struct ranker_ctx *ctx, struct ranker_session *s)
{
	uint32_t i;

	if (!s->seg || !s->seg->heap_pos)
		return;
	i = s->seg->heap_pos - 1;
	s->seg->heap_pos = 0;
	if (i != --ctx->seg_heap_n) {
		ctx->seg_heap[i] = ctx->seg_heap[ctx->seg_heap_n];
		ctx->seg_heap[i].s->seg->heap_pos = i + 1;
		heap_fix(ctx, i);
	}
}

/* s's next deadline is at (WF_SEG_NEVER: none). On no memory the session
 * keeps no timer (logged once): its membership follows its events only. */
static void heap_set(struct ranker_ctx *ctx, struct ranker_session *s, uint64_t at)
{
	if (at == WF_SEG_NEVER) {
		heap_remove(ctx, s);
		return;
	}
	if (s->seg->heap_pos) {
		ctx->seg_heap[s->seg->heap_pos - 1].at = at;
		heap_fix(ctx, s->seg->heap_pos - 1);
		return;
	}
	if (ctx->seg_heap_n == ctx->seg_heap_cap) {
		uint32_t cap = ctx->seg_heap_cap ? ctx->seg_heap_cap * 2 : 1024;
		struct ranker_seg_timer *n = realloc(ctx->seg_heap, cap * sizeof(*n));
		if (!n) {
			if (!ctx->seg_heap_warned++)
				wf_warn("shard %u: no memory for segment timers; idle() and windows follow events only",
					ctx->shard);
			return;
		}
		ctx->seg_heap = n;
		ctx->seg_heap_cap = cap;
	}
	ctx->seg_heap[ctx->seg_heap_n] = (struct ranker_seg_timer){ at, s };
	s->seg->heap_pos = ++ctx->seg_heap_n;
	heap_fix(ctx, ctx->seg_heap_n - 1);
}

/* s's deadline, WF_SEG_NEVER: none. */
static uint64_t deadline_of(const struct ranker_ctx *ctx, const struct ranker_session *s)
{
	return s->seg && s->seg->heap_pos ? ctx->seg_heap[s->seg->heap_pos - 1].at : WF_SEG_NEVER;
}

uint64_t ranker_segs_next(const struct ranker_ctx *ctx)
{
	return ctx->seg_heap_n ? ctx->seg_heap[0].at : WF_SEG_NEVER;
}

/* ---- notes ---- */

struct emit {
	struct ranker_ctx *ctx;
	const struct wf_seg_set *set;
	const struct ranker_session *s;
	const char *reason;
};

/* Push one transition as a WF_MSG_NOTE on the reply ring (ahead of any
 * reply pushed after it; committed with them, or by the caller). A full
 * ring is waited on like a reply; asked to stop meanwhile, the note is
 * dropped: the next ranker's replay finds it unannounced and sends it
 * with the same key. */
static void note_push(struct ranker_ctx *ctx, const struct wf_seg_set *set, const struct ranker_session *s,
		      uint32_t seg, int enter, uint64_t seq, uint64_t ts, const char *reason)
{
	char key[WF_SEG_NAME_MAX + 48 + WF_ID_MAX], ver[24];
	const char *name = wf_seg_set_name(set, seg);
	int kl = snprintf(key, sizeof(key), "%s/%llu/%llu/%s", name, (unsigned long long)wf_seg_set_version(set, seg),
			  (unsigned long long)seq, s->id);
	int vl = snprintf(ver, sizeof(ver), "%llu", (unsigned long long)wf_seg_set_version(set, seg));
	struct wf_arg a[7] = {
		{ key, (uint32_t)kl },
		{ name, (uint32_t)strlen(name) },
		{ ver, (uint32_t)vl },
		{ enter ? "enter" : "exit", enter ? 5u : 4u },
		{ s->id, s->id_len },
		{ s->user ? s->user : WF_ANON_USER, s->user ? s->user_len : 1u },
		{ reason, (uint32_t)strlen(reason) },
	};
	struct wf_msg_note h = { .ts_ms = ts, .jkind = WF_JREC_SEGMENT };
	int r;

	if (ctx->seg_replaying)
		return;
	while ((r = wf_msg_note_push(&ctx->rep, &h, 7, a)) == -EAGAIN)
		if (ranker_reply_wait(ctx) < 0)
			return;
	if (r < 0) {
		atomic_fetch_add_explicit(&ctx->sc->stats.errors, 1, memory_order_relaxed); /* stats */
		return;
	}
	ctx->seg_notes++;
}

static void on_transition(void *arg, uint32_t seg, int enter, uint64_t seq, uint64_t now)
{
	struct emit *e = arg;

	note_push(e->ctx, e->set, e->s, seg, enter, seq, now, e->reason);
}

/* ---- a session's inputs ---- */

/* What the rules read besides events (struct wf_seg_inputs): the
 * session's cart and pivot from its model, and the user attributes of
 * user id (when not NULL and the snapshot knows it), else of the user s
 * logged in as, looked up only when uses (WF_SEG_USES_*) reads them. */
void ranker_seg_inputs(struct ranker_ctx *ctx, const struct ranker_session *s, const char *id, size_t len,
		       uint32_t uses, struct wf_seg_inputs *ret)
{
	const struct wf_snap_cand *c;
	uint32_t nc;
	int64_t u = -1;

	*ret = (struct wf_seg_inputs){ .pivot = s && (uses & WF_SEG_USES_PIVOT) ? s->model.pivot : 0,
				       .lsn = s ? s->lsn : 0 };
	if (s && (uses & WF_SEG_USES_CART)) {
		/* lib/rank's cart: snapshot items (priced) and live ones (not) */
		for (uint32_t i = 0; i < WF_RANK_CART; i++) {
			int32_t it = s->model.cart[i];
			if (it < 0)
				continue;
			ret->cart_items++;
			if (ctx->cur && (uint32_t)it < ctx->cur->snap->nitems)
				ret->cart_cents += ctx->cur->snap->items[it].price_cents;
		}
		ret->cart_items += (uint32_t)__builtin_popcount(s->model.live_cart);
	}
	if (!(uses & WF_SEG_USES_USER))
		return; /* no rule reads it: no lookup */
	if (id)
		u = ranker_user_lookup(ctx, id, len, &c, &nc);
	if (u < 0 && s && s->user && !(id && len == s->user_len && memcmp(id, s->user, len) == 0))
		u = ranker_user_lookup(ctx, s->user, s->user_len, &c, &nc);
	if (u < 0)
		return;
	ret->known = 1;
	ret->lifecycle = ctx->cur->snap->users[u].segment;
	ret->ltv = ctx->cur->snap->users[u].ltv;
}

void ranker_seg_item_attrs(const struct ranker_ctx *ctx, int64_t it, struct wf_seg_event *ev)
{
	if (it < 0 || !ctx->cur)
		return;
	const struct wf_snap *snap = ctx->cur->snap;
	const struct wf_snap_item *si = &snap->items[it];
	if (si->category != WF_SNAP_NO_CAT && si->category < snap->ncats) {
		ev->category = wf_snap_str(snap, snap->names[si->category].off);
		ev->category_len = snap->names[si->category].len;
	}
	if (si->brand != WF_SNAP_NO_CAT && si->brand < snap->nbrands) {
		ev->brand = wf_snap_str(snap, snap->names[snap->ncats + si->brand].off);
		ev->brand_len = snap->names[snap->ncats + si->brand].len;
	}
	ev->price_cents = si->price_cents;
}

/* An event (type, item id) as lib/seg takes it, item attributes resolved
 * in the snapshot when set needs them. */
static void seg_event_of(struct ranker_ctx *ctx, const struct wf_seg_set *set, int type, uint64_t ts,
			 const struct wf_msg_arg *item, struct wf_seg_event *ev)
{
	*ev = (struct wf_seg_event){ .type = type, .ts_ms = ts };
	if (wf_seg_set_needs_item(set, type))
		ranker_seg_item_attrs(ctx, ranker_item_index(ctx, item->p, item->len), ev);
}

/* The type of a history record: its name is wf_event_name()'s own string
 * (ranker_hist_next), found by address before any compare. */
static int type_of(const struct wf_msg_arg *name)
{
	for (int t = 0; t < WF_EV_COUNT; t++)
		if (name->p == wf_event_name(t))
			return t;
	return wf_event_from_name(name->p, name->len);
}

/* Feed s's history into st (a state of set), as the events came. */
void ranker_seg_from_history(struct ranker_ctx *ctx, const struct wf_seg_set *set, const struct ranker_session *s,
			     struct wf_seg_state *st)
{
	struct wf_msg_arg a[WF_JOURNAL_MAX_ARGS + 1];
	struct ranker_hist_cur cur = { 0 };
	struct wf_seg_event ev;
	uint32_t argc;
	uint64_t ts;

	while (ranker_hist_next(s, &cur, &ts, a, &argc)) {
		int type = type_of(&a[1]);
		if (!wf_seg_set_affected(set, type))
			continue;
		seg_event_of(ctx, set, type, ts, &a[2], &ev);
		wf_seg_apply(set, st, &ev);
	}
}

static struct ranker_seg *state_alloc(struct ranker_ctx *ctx)
{
	struct ranker_seg *g = ranker_alloc(ctx->sess_arena, ctx->seg_size);

	if (!g)
		return NULL;
	g->heap_pos = g->pad = 0;
	wf_seg_state_init(ctx->segs, &g->st);
	ctx->session_bytes += nallocx(ctx->seg_size, 0);
	return g;
}

static void state_free(struct ranker_ctx *ctx, struct ranker_seg *g, size_t size)
{
	if (!g)
		return;
	ctx->session_bytes -= nallocx(size, 0);
	ranker_free(g);
}

/* Rules read cart or pivot: a session's model must be current. */
static int reads_model(const struct ranker_ctx *ctx)
{
	return (wf_seg_set_uses(ctx->segs) & (WF_SEG_USES_CART | WF_SEG_USES_PIVOT)) != 0;
}

/* A session's model (restored ones rebuild it lazily), rebuilt when a
 * rule reads it. */
static void model_fresh(struct ranker_ctx *ctx, struct ranker_session *s)
{
	if (reads_model(ctx))
		ranker_session_fresh(ctx, s);
}

/* Step s at now and set its timer. uid: the user argument of the event
 * being applied (NULL: none), which is s's user unless anonymous: looked
 * up by it, the request's own bytes, ranker_lookahead() has resolved it
 * (ranker_user_lookup's hint) while the request before was handled. */
static void session_step_as(struct ranker_ctx *ctx, struct ranker_session *s, uint64_t now, const char *reason,
			    const struct wf_msg_arg *uid)
{
	struct emit e = { ctx, ctx->segs, s, reason };
	struct wf_seg_inputs u;
	int own = uid && !wf_user_is_anon(uid->p, uid->len);

	model_fresh(ctx, s);
	ranker_seg_inputs(ctx, s, own ? uid->p : NULL, own ? uid->len : 0, wf_seg_set_uses(ctx->segs), &u);
	heap_set(ctx, s, wf_seg_step(ctx->segs, &s->seg->st, &u, now, on_transition, &e));
}

static void session_step(struct ranker_ctx *ctx, struct ranker_session *s, uint64_t now, const char *reason)
{
	session_step_as(ctx, s, now, reason, NULL);
}

/* Fire s's deadlines up to until (at each deadline's own time). */
static void session_catch_up(struct ranker_ctx *ctx, struct ranker_session *s, uint64_t until)
{
	for (int i = 0; i < 64 && deadline_of(ctx, s) <= until; i++)
		session_step(ctx, s, deadline_of(ctx, s), "timer");
}

void ranker_segs_before(struct ranker_ctx *ctx, struct ranker_session *s, uint64_t ts_ms)
{
	/* Deadlines before this event first, at their own time, with the
	 * cart and the model as they were (a late timer: a busy ranker). */
	if (s->seg && s->seg->heap_pos && !ctx->seg_replaying)
		session_catch_up(ctx, s, ts_ms > 0 ? ts_ms - 1 : 0);
}

void ranker_segs_event(struct ranker_ctx *ctx, struct ranker_session *s, int type, const struct wf_msg_arg *argv,
		       uint32_t argc, uint64_t ts_ms)
{
	struct wf_seg_event ev;

	if (!ctx->segs || !wf_seg_set_affected(ctx->segs, type))
		return;
	if (!s->seg && !(s->seg = state_alloc(ctx)))
		return; /* out of memory: this session is in no segment */
	if (ctx->seg_replaying) { /* the state only: membership is settled once the replay ends */
		seg_event_of(ctx, ctx->segs, type, ts_ms, &argv[3], &ev);
		wf_seg_apply(ctx->segs, &s->seg->st, &ev);
		return;
	}
	seg_event_of(ctx, ctx->segs, type, ts_ms, &argv[3], &ev);
	wf_seg_apply(ctx->segs, &s->seg->st, &ev);
	session_step_as(ctx, s, ts_ms, wf_event_name(type), &argv[1]);
}

void ranker_segs_leave(struct ranker_ctx *ctx, struct ranker_session *s, const char *reason)
{
	if (!s->seg || !ctx->segs || ctx->seg_replaying)
		return;
	/* Announced members leave with the session (its key continues the
	 * sequence; a spill record keeps the advanced one). */
	for (uint32_t i = 0; i < wf_seg_set_count(ctx->segs); i++)
		if (s->seg->st.member >> i & 1) {
			uint64_t *seq = wf_seg_state_seq(ctx->segs, &s->seg->st, i);
			*seq = wf_seg_seq_next(*seq, s->lsn);
			note_push(ctx, ctx->segs, s, i, 0, *seq, wf_wall_ms(), reason);
			s->seg->st.member &= ~(1ull << i);
		}
}

void ranker_segs_forget(struct ranker_ctx *ctx, struct ranker_session *s, const char *reason)
{
	heap_remove(ctx, s);
	if (!s->seg)
		return;
	ranker_segs_leave(ctx, s, reason);
	state_free(ctx, s->seg, ctx->seg_size);
	s->seg = NULL;
}

/* ---- session records, checkpoints ---- */

/* Segment i of set by name and version (a record's sequence list). */
static uint64_t seg_hash(const struct wf_seg_set *set, uint32_t i)
{
	const char *name = wf_seg_set_name(set, i);

	return wf_hash64(name, strlen(name)) + wf_seg_set_version(set, i) * 0x9e3779b97f4a7c15ull;
}

/* The set's names and versions, in order (ctx->seg_fp). */
static uint64_t set_fp(const struct wf_seg_set *set)
{
	uint64_t h = wf_seg_set_count(set);

	for (uint32_t i = 0; i < wf_seg_set_count(set); i++)
		h = (h ^ seg_hash(set, i)) * 0x100000001b3ull;
	return h;
}

struct seg_rec_hdr {
	uint64_t fp;
	uint32_t state_len, nseq; /* nseq | SEQ64: (u32 hash, u32 0, u64 seq) each, else (u32 hash, u32 seq) */
};

#define SEQ64 0x80000000u /* records written since sequences are 64-bit (wf_seg_seq_next) */

static uint32_t seqs_used(const struct wf_seg_set *set, struct wf_seg_state *st)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < wf_seg_set_count(set); i++)
		n += *wf_seg_state_seq(set, st, i) != 0;
	return n;
}

uint32_t ranker_segs_rec_size(const struct ranker_ctx *ctx, const struct ranker_session *s)
{
	uint64_t n;

	if (!s->seg || !ctx->segs)
		return 0;
	n = sizeof(struct seg_rec_hdr) + 16ull * seqs_used(ctx->segs, &s->seg->st); /* at most 1,040 */
	if (n + wf_seg_state_size(ctx->segs) <= RANKER_SEG_REC_MAX)
		n += wf_seg_state_size(ctx->segs); /* else (thousands of count terms) the sequences alone */
	return (uint32_t)WF_ALIGN_UP(n, 8);
}

/* The state's bytes a record of s holds (0: the sequences only). */
static uint32_t state_kept(const struct ranker_ctx *ctx, const struct ranker_session *s)
{
	size_t n = sizeof(struct seg_rec_hdr) + 16ull * seqs_used(ctx->segs, &s->seg->st);

	return n + wf_seg_state_size(ctx->segs) <= RANKER_SEG_REC_MAX ? (uint32_t)wf_seg_state_size(ctx->segs) : 0;
}

void ranker_segs_pack(const struct ranker_ctx *ctx, const struct ranker_session *s, uint8_t *out)
{
	uint32_t n = ranker_segs_rec_size(ctx, s);
	struct seg_rec_hdr h;
	uint8_t *p = out + sizeof(h);

	if (!n)
		return;
	h = (struct seg_rec_hdr){ ctx->seg_fp, state_kept(ctx, s), seqs_used(ctx->segs, &s->seg->st) | SEQ64 };
	memcpy(out, &h, sizeof(h));
	memcpy(p, &s->seg->st, h.state_len);
	p += h.state_len;
	for (uint32_t i = 0; i < wf_seg_set_count(ctx->segs); i++) {
		uint32_t e[2] = { (uint32_t)seg_hash(ctx->segs, i), 0 };
		uint64_t seq = *wf_seg_state_seq(ctx->segs, &s->seg->st, i);
		if (seq) {
			memcpy(p, e, sizeof(e));
			memcpy(p + sizeof(e), &seq, sizeof(seq));
			p += sizeof(e) + sizeof(seq);
		}
	}
	memset(p, 0, (size_t)(out + n - p));
}

int ranker_segs_unpack(struct ranker_ctx *ctx, struct ranker_session *s, const uint8_t *p, uint32_t len, int rebuild)
{
	struct seg_rec_hdr h = { 0 };
	struct ranker_seg *g;
	uint32_t esize = 8;
	int exact;

	if (!ctx->segs || s->seg)
		return 1;
	if (len >= sizeof(h))
		memcpy(&h, p, sizeof(h));
	if (h.nseq & SEQ64) {
		h.nseq &= ~SEQ64;
		esize = 16;
	}
	if (len < sizeof(h) || (uint64_t)sizeof(h) + h.state_len + (uint64_t)esize * h.nseq > len)
		len = 0; /* none (rec_check bounds len only) */
	if (!len && (!rebuild || !s->hist_n))
		return 1; /* no state, none to rebuild */
	exact = len && h.state_len && h.fp == ctx->seg_fp && h.state_len == wf_seg_state_size(ctx->segs);
	if (!(g = state_alloc(ctx)))
		return 0;
	if (exact) {
		memcpy(&g->st, p + sizeof(h), h.state_len);
	} else {
		/* Other definitions: rebuilt (as switch_set does), in no segment,
		 * each sequence whose segment and version stay continued. */
		ranker_seg_from_history(ctx, ctx->segs, s, &g->st);
		for (uint32_t k = 0; len && k < h.nseq; k++) {
			const uint8_t *q = p + sizeof(h) + h.state_len + (uint64_t)esize * k;
			uint32_t e[2];
			uint64_t seq;
			memcpy(e, q, sizeof(e));
			if (esize == 16)
				memcpy(&seq, q + sizeof(e), sizeof(seq));
			else
				seq = e[1];
			for (uint32_t i = 0; i < wf_seg_set_count(ctx->segs); i++)
				if ((uint32_t)seg_hash(ctx->segs, i) == e[0])
					*wf_seg_state_seq(ctx->segs, &g->st, i) = seq;
		}
	}
	s->seg = g;
	/* Its notes go with the reply (or batch) that restored it; a replay
	 * steps every session at its end. */
	if (!ctx->seg_replaying)
		session_step(ctx, s, wf_wall_ms(), "restored");
	return exact;
}

struct seg_def_hdr {
	uint64_t version;
	uint32_t name_len, pad;
};

size_t ranker_segs_defs_size(const struct ranker_ctx *ctx)
{
	size_t n = 16;

	for (uint32_t i = 0; ctx->segs && i < wf_seg_set_count(ctx->segs); i++)
		n += WF_ALIGN_UP(sizeof(struct seg_def_hdr) + strlen(wf_seg_set_name(ctx->segs, i)), 8);
	return n;
}

void ranker_segs_defs_pack(const struct ranker_ctx *ctx, uint8_t *out)
{
	uint32_t cnt = ctx->segs ? wf_seg_set_count(ctx->segs) : 0, zero = 0;
	uint8_t *p = out + 16;

	memcpy(out, &ctx->seg_fp, 8);
	memcpy(out + 8, &cnt, 4);
	memcpy(out + 12, &zero, 4);
	for (uint32_t i = 0; i < cnt; i++) {
		const char *name = wf_seg_set_name(ctx->segs, i);
		struct seg_def_hdr d = { wf_seg_set_version(ctx->segs, i), (uint32_t)strlen(name), 0 };
		size_t n = WF_ALIGN_UP(sizeof(d) + d.name_len, 8);
		memset(p, 0, n);
		memcpy(p, &d, sizeof(d));
		memcpy(p + sizeof(d), name, d.name_len);
		p += n;
	}
}

int ranker_segs_defs_match(const struct ranker_ctx *ctx, const uint8_t *p, uint64_t len)
{
	uint64_t fp, off = 16;
	uint32_t cnt;

	if (!ctx->segs || len < 16)
		return 0;
	memcpy(&fp, p, 8);
	memcpy(&cnt, p + 8, 4);
	if (fp != ctx->seg_fp || cnt != wf_seg_set_count(ctx->segs))
		return 0;
	for (uint32_t i = 0; i < cnt; i++) {
		const char *name = wf_seg_set_name(ctx->segs, i);
		struct seg_def_hdr d;
		if (off + sizeof(d) > len)
			return 0;
		memcpy(&d, p + off, sizeof(d));
		if (d.version != wf_seg_set_version(ctx->segs, i) || d.name_len != strlen(name) ||
		    off + sizeof(d) + d.name_len > len || memcmp(p + off + sizeof(d), name, d.name_len) != 0)
			return 0;
		off += WF_ALIGN_UP(sizeof(d) + d.name_len, 8);
	}
	return 1;
}

uint32_t ranker_segs_timers(struct ranker_ctx *ctx, uint64_t now_ms)
{
	uint32_t n = 0;

	while (n < TIMERS_STEP && ctx->seg_heap_n && ctx->seg_heap[0].at <= now_ms) {
		session_step(ctx, ctx->seg_heap[0].s, ctx->seg_heap[0].at, "timer");
		n++;
	}
	if (n) {
		/* Timer notes answer no request: publish them now. */
		wf_ring_prod_commit(&ctx->rep);
		ranker_wake_ingest(ctx);
	}
	return n;
}

/* ---- definitions ---- */

/* The live definitions: DIR/segments.conf, or the built-in ones when it
 * does not exist. 0, or -errno (logged). */
static int load_set(struct ranker_ctx *ctx, struct wf_seg_set **ret)
{
	struct wf_seg_defs d = { 0 };
	struct wf_seg_error err = { 0 };
	char path[WF_PATH_MAX], *buf = NULL;
	size_t len = 0;
	uint32_t bad = 0;
	int r;

	snprintf(path, sizeof(path), "%s/segments.conf", ctx->dir);
	r = wf_read_file(path, &buf, &len);
	if (r == -ENOENT) {
		r = wf_seg_defs_default(&d);
	} else if (r == 0) {
		r = wf_seg_defs_parse(buf, len, &d, &bad);
		if (r == -EINVAL)
			wf_warn("shard %u: %s line %u is malformed; keeping the segments it had", ctx->shard, path, bad);
	} else {
		wf_warn("shard %u: cannot read %s: %s; keeping the segments it had", ctx->shard, path, strerror(-r));
	}
	free(buf);
	if (r < 0)
		return r;
	r = wf_seg_set_build(&d, ret, &err, &bad);
	if (r == -EINVAL)
		wf_warn("shard %u: segment %s in %s: %s; keeping the segments it had", ctx->shard,
			bad < d.n ? d.defs[bad].name : "?", path, err.msg);
	wf_seg_defs_fini(&d);
	return r;
}

/* Move every session onto set (ctx->segs replaced): its state rebuilt
 * from its history; membership and sequence kept for each segment whose
 * name and version stay, an exit for a member of one that went (dropped
 * or redefined: its old version's key), then a step (enters into new
 * ones). The old set is freed. One pass over the sessions: a definition
 * change is rare and the rebuild bounded by the history (4,096 events). */
static void switch_set(struct ranker_ctx *ctx, struct wf_seg_set *set)
{
	struct wf_seg_set *old = ctx->segs;
	size_t old_size = ctx->seg_size;
	uint64_t now = wf_wall_ms();

	ctx->segs = set;
	ctx->seg_size = offsetof(struct ranker_seg, st) + wf_seg_state_size(set);
	ctx->seg_fp = set_fp(set);
	for (uint32_t b = 0; b < RANKER_SESSION_TABLE; b++)
		for (struct ranker_session *s = ctx->sessions[b]; s; s = s->next) {
			struct ranker_seg *prev = s->seg, *g = s->hist_n ? state_alloc(ctx) : NULL;
			if (g)
				ranker_seg_from_history(ctx, set, s, &g->st);
			for (uint32_t i = 0; prev && i < wf_seg_set_count(old); i++) {
				const char *name = wf_seg_set_name(old, i);
				int j = wf_seg_set_find(set, name, strlen(name));
				uint64_t seq = *wf_seg_state_seq(old, &prev->st, i);
				if (j >= 0 && wf_seg_set_version(set, (uint32_t)j) == wf_seg_set_version(old, i)) {
					if (g) {
						g->st.member |= (prev->st.member >> i & 1) << j;
						*wf_seg_state_seq(set, &g->st, (uint32_t)j) = seq;
						g->st.eval_ms = prev->st.eval_ms;
					}
				} else if (prev->st.member >> i & 1) {
					note_push(ctx, old, s, i, 0, wf_seg_seq_next(seq, s->lsn), now,
						  j >= 0 ? "redefined" : "dropped");
				}
			}
			heap_remove(ctx, s);
			state_free(ctx, prev, old_size);
			s->seg = g;
			if (g)
				session_step(ctx, s, now, "defined");
		}
	wf_seg_set_free(old);
	wf_ring_prod_commit(&ctx->rep);
	ranker_wake_ingest(ctx);
}

int ranker_segs_init(struct ranker_ctx *ctx)
{
	struct wf_seg_set *set;
	int r;

	/* A12: pairs with R12 in weft-admin (the file is in place before the bump). */
	ctx->segdefs_gen = atomic_load_explicit(&ctx->shm->ctl->segdefs_gen, memory_order_acquire);
	r = load_set(ctx, &set);
	if (r < 0) {
		/* The built-in ones, rather than none. */
		struct wf_seg_defs d;
		if (wf_seg_defs_default(&d) < 0)
			return -ENOMEM;
		r = wf_seg_set_build(&d, &set, NULL, NULL);
		wf_seg_defs_fini(&d);
		if (r < 0)
			return r;
	}
	ctx->segs = set;
	ctx->seg_size = offsetof(struct ranker_seg, st) + wf_seg_state_size(set);
	ctx->seg_fp = set_fp(set);
	wf_info("shard %u: %u segments defined", ctx->shard, wf_seg_set_count(set));
	return 0;
}

void ranker_segs_check(struct ranker_ctx *ctx)
{
	/* A12: pairs with R12 in weft-admin. */
	uint64_t gen = atomic_load_explicit(&ctx->shm->ctl->segdefs_gen, memory_order_acquire);
	struct wf_seg_set *set;

	if (gen == ctx->segdefs_gen)
		return;
	ctx->segdefs_gen = gen;
	if (load_set(ctx, &set) < 0)
		return;
	uint64_t t0 = wf_now_ns();
	switch_set(ctx, set);
	wf_info("shard %u: segment definitions %llu loaded: %u segments, %u sessions re-evaluated in %.1f ms",
		ctx->shard, (unsigned long long)gen, wf_seg_set_count(set), ctx->nsessions, (wf_now_ns() - t0) / 1e6);
}

void ranker_segs_fini(struct ranker_ctx *ctx)
{
	wf_seg_set_free(ctx->segs);
	ctx->segs = NULL;
	free(ctx->seg_heap);
	ctx->seg_heap = NULL;
	ctx->seg_heap_n = ctx->seg_heap_cap = 0;
}

/* ---- replay ---- */

void ranker_segs_replay_begin(struct ranker_ctx *ctx)
{
	/* Notes the previous process left on the reply ring reach the journal
	 * first (ingest drains it), so the replay below reads them; bounded:
	 * without a running ingest the ring is not read. */
	for (int i = 0; i < 200 && wf_ring_used(ctx->rep.r); i++)
		usleep(5000);
	if (!wf_ring_used(ctx->rep.r))
		usleep(20000); /* and its group commit */
	ctx->seg_replaying = 1;
}

/* A WF_JREC_SEGMENT record of this shard: key segment version
 * enter|exit session user reason. The session's announced membership and
 * sequence, when it is live and the version is the one defined now. */
void ranker_segs_replay_record(struct ranker_ctx *ctx, const struct wf_journal_rec *rec)
{
	struct wf_msg_arg id;
	struct ranker_session *s;
	int64_t ver, seq;
	const char *p;
	int i;

	if (!ctx->segs || rec->argc < 5)
		return;
	i = wf_seg_set_find(ctx->segs, rec->argv[1], rec->argl[1]);
	if (i < 0 || wf_parse_i64(rec->argv[2], rec->argl[2], &ver) < 0 ||
	    (uint64_t)ver != wf_seg_set_version(ctx->segs, (uint32_t)i))
		return;
	/* The key's third part: the sequence. */
	p = memchr(rec->argv[0], '/', rec->argl[0]);
	p = p ? memchr(p + 1, '/', rec->argl[0] - (size_t)(p + 1 - rec->argv[0])) : NULL;
	if (!p)
		return;
	const char *q = memchr(p + 1, '/', rec->argl[0] - (size_t)(p + 1 - rec->argv[0]));
	if (!q || wf_parse_i64(p + 1, (size_t)(q - p - 1), &seq) < 0 || seq <= 0)
		return;
	id = (struct wf_msg_arg){ rec->argv[4], rec->argl[4] };
	s = ranker_session_find(ctx, &id);
	if (!s || (!s->seg && !(s->seg = state_alloc(ctx))))
		return;
	uint64_t *sq = wf_seg_state_seq(ctx->segs, &s->seg->st, (uint32_t)i);
	if ((uint64_t)seq < *sq)
		return; /* an older one (ingest journals each key once, in order) */
	*sq = (uint64_t)seq;
	if (rec->argl[3] == 5 && memcmp(rec->argv[3], "enter", 5) == 0)
		s->seg->st.member |= 1ull << i;
	else
		s->seg->st.member &= ~(1ull << i);
}

/* After the replay: every session evaluated now; what differs from what
 * was announced is announced (a deadline that passed while no ranker ran
 * included), continuing each sequence, so a note the previous process
 * pushed but ingest never journaled comes again with the same key. A
 * session whose model a rule reads and which came back without it (a
 * checkpoint's, rebuilt lazily) is evaluated by a timer due now instead,
 * so the rebuilds (100,000 sessions: seconds) come after serving began,
 * 256 a loop pass; an event for it first fires that timer. */
void ranker_segs_replay_end(struct ranker_ctx *ctx)
{
	uint64_t now = wf_wall_ms(), n0 = ctx->seg_notes;

	ctx->seg_replaying = 0;
	if (!ctx->segs)
		return;
	for (uint32_t b = 0; b < RANKER_SESSION_TABLE; b++)
		for (struct ranker_session *s = ctx->sessions[b]; s; s = s->next)
			if (s->seg && reads_model(ctx) && ctx->cur && s->snap_gen != ctx->cur->gen)
				heap_set(ctx, s, now); /* its model first: by the timers, once serving */
			else if (s->seg)
				session_step(ctx, s, now, "recovered");
	wf_ring_prod_commit(&ctx->rep);
	ranker_wake_ingest(ctx);
	if (ctx->seg_notes > n0)
		wf_info("shard %u: %llu segment transitions announced after the replay", ctx->shard,
			(unsigned long long)(ctx->seg_notes - n0));
}
