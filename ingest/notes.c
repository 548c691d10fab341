/*
 * notes.c - weft-ingest's side of the rankers' notes (shm/msg.h
 * WF_MSG_NOTE): records a ranker asks ingest to journal between its
 * replies. A segment transition (WF_JREC_SEGMENT) is journaled once per
 * key, published to subscribers once durable (pubsub.c) and kept for
 * TRIGGERS; an exposure (WF_JREC_EXPOSURE) is only journaled. A reply that
 * follows a note on the same ring leaves only once that note is durable
 * (ingest_notes_hold(), through the EVENT acks' wait FIFO, commit.c).
 * Linked into weft-ingest only.
 *
 * A transition's argv (rankers, contract of issue 16): key segment version
 * enter|exit session user reason, key = "<segment>/<version>/<seq>/<session>"
 * (unique per transition and the same across a ranker's restarts:
 * docs/SEGMENTS.md "Transitions"; here only hashed for the seen set).
 * Its id is its journal LSN, a decimal string: ids grow with time and one
 * is a TRIGGERS cursor.
 *
 * Exactly once: the keys of recent transitions (two generations of
 * NOTES_SEEN_GEN keys; the journal's at start, ingest_notes_recover()) are
 * looked up before a transition is journaled, so a ranker that re-emits
 * one after a crash (its replay of the journal re-evaluates the same
 * events: the same key) does not announce it twice.
 *
 * A failing journal (full disk; ingest/README.md "A failing journal"):
 * notes not yet durable stay here, in order, with their bytes; those the
 * failure dropped are appended again once the journal writes
 * (ingest_notes_rejournal(), tried every second by loop.c and before an
 * EVENT), so a transition is neither lost nor published twice (it is
 * published only once durable, under the LSN it was made durable with). A
 * reply held behind such a note is answered with an error instead. At
 * NOTES_MAX notes or NOTES_BYTES_MAX bytes held, ingest stops reading the
 * reply rings (the rankers wait) rather than drop one.
 *
 * What is not covered: a note ingest took but had not made durable when
 * weft-ingest itself died is gone (the ranker does not send it again);
 * the shopper's membership is right, the announcement is missing.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest.h"

#define NOTES_MAX 65536u              /* notes held until durable */
#define NOTES_BYTES_MAX (16u << 20)   /* and their bytes */
#define NOTES_SEEN_GEN 65536u         /* transition keys a generation of the seen set holds */
#define NOTES_RECENT_BYTES (32u << 20) /* bytes of the transitions kept for TRIGGERS (--triggers-recent: how many) */
#define TRIGGERS_COUNT 100u           /* TRIGGERS COUNT default */
#define TRIGGERS_COUNT_MAX 1000u
#define TRIGGERS_READ_MAX (4u << 20)  /* journal bytes one TRIGGERS reads at most */
#define NOTES_JPOS 16u                /* journal positions remembered for TRIGGERS */
#define TRIGGERS_SEGMENTS_MAX 64u

enum { A_KEY, A_SEGMENT, A_VERSION, A_EVENT, A_SESSION, A_USER, A_REASON, A_COUNT };

/* A note held until durable: header, argc lengths, the bytes. */
struct note {
	uint64_t lsn;   /* 0: not in the journal (it failed); appended again */
	uint64_t ts_ms;
	uint16_t kind, shard;
	uint32_t argc;
	uint32_t gone; /* the journal refused it for good: dropped when its turn comes */
	size_t bytes;
	uint32_t argl[];
};

/* A durable transition, for TRIGGERS: its arguments as journaled (the
 * JSON is built when a TRIGGERS reads it, so the start-up scan of the
 * journal builds none). */
struct recent {
	uint64_t lsn, ts_ms;
	char *blob;                 /* the A_COUNT arguments back to back */
	uint32_t argl[A_COUNT];
};

struct seen_gen {
	uint64_t *slot; /* 2 x NOTES_SEEN_GEN, 0 free */
	uint32_t n;
};

/* Where a TRIGGERS journal read stopped: the record of next_lsn (or a
 * later one) starts at off in segment seg (its first LSN). */
struct ingest_jpos {
	uint64_t next_lsn, seg, off;
};

struct ingest_notes {
	struct note **q; /* FIFO of NOTES_MAX, LSN order */
	uint64_t q_head, q_tail;
	size_t q_bytes;
	struct seen_gen seen[2]; /* [cur] takes inserts; both are looked up */
	uint32_t cur;
	struct recent *recent; /* ring of recent_cap (--triggers-recent), LSN order */
	uint64_t recent_cap;
	uint64_t r_head, r_tail;
	size_t r_bytes;
	uint64_t recent_from;  /* every transition from this LSN on is in recent */
	uint64_t published;    /* the last transition published (or recovered) */
	uint64_t journaled, duplicates, dropped, bad, retry_ns;
	struct ingest_jpos jpos[NOTES_JPOS];
	uint32_t jpos_next;
};

static struct note *note_at(struct ingest_notes *n, uint64_t i)
{
	return n->q[i % NOTES_MAX];
}

static char *note_arg(struct note *nt, uint32_t i)
{
	char *p = (char *)&nt->argl[nt->argc];

	for (uint32_t k = 0; k < i; k++)
		p += nt->argl[k];
	return p;
}

/* ---- the seen set ---- */

static uint64_t key_hash(const char *p, size_t len)
{
	return wf_hash64(p, len) | 1; /* 0 marks a free slot */
}

static int seen_has(const struct seen_gen *g, uint64_t h)
{
	uint32_t mask = 2 * NOTES_SEEN_GEN - 1;

	for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
		if (g->slot[i] == h)
			return 1;
		if (!g->slot[i])
			return 0;
	}
}

/* 1 if the key was seen, else 0 and now it is. */
static int seen_check_add(struct ingest_notes *n, const char *p, size_t len)
{
	uint64_t h = key_hash(p, len);
	uint32_t mask = 2 * NOTES_SEEN_GEN - 1, i;
	struct seen_gen *g;

	if (seen_has(&n->seen[0], h) || seen_has(&n->seen[1], h))
		return 1;
	g = &n->seen[n->cur];
	if (g->n == NOTES_SEEN_GEN) {
		/* Full: the older generation is forgotten, its table reused. */
		n->cur ^= 1;
		g = &n->seen[n->cur];
		memset(g->slot, 0, 2 * NOTES_SEEN_GEN * sizeof(*g->slot));
		g->n = 0;
	}
	for (i = (uint32_t)h & mask; g->slot[i]; i = (i + 1) & mask)
		;
	g->slot[i] = h;
	g->n++;
	return 0;
}

/* ---- the payload ---- */

/* A JSON string of bytes that may not be UTF-8 (ids are printable bytes). */
static json_t *jstr(const char *p, size_t len)
{
	char esc[4 * WF_ID_MAX + 8];
	json_t *s = json_stringn(p, len);

	if (s)
		return s;
	wf_escape(esc, sizeof(esc), p, len);
	return json_string(esc);
}

/* The payload of a transition (argv as the contract says), malloc'd,
 * NUL-terminated: {"id","segment","event","session","user","ts","reason",
 * "key","version"}. NULL: out of memory. */
static char *transition_json(uint64_t lsn, uint64_t ts_ms, const char *const *argv, const uint32_t *argl)
{
	char id[24];
	json_t *o = json_object();
	int64_t ver = 0;
	char *s;

	if (!o)
		return NULL;
	snprintf(id, sizeof(id), "%llu", (unsigned long long)lsn);
	(void)wf_parse_i64(argv[A_VERSION], argl[A_VERSION], &ver);
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "segment", jstr(argv[A_SEGMENT], argl[A_SEGMENT]));
	json_object_set_new(o, "event", jstr(argv[A_EVENT], argl[A_EVENT]));
	json_object_set_new(o, "session", jstr(argv[A_SESSION], argl[A_SESSION]));
	json_object_set_new(o, "user", jstr(argv[A_USER], argl[A_USER]));
	json_object_set_new(o, "ts", json_integer((json_int_t)ts_ms));
	json_object_set_new(o, "reason", jstr(argv[A_REASON], argl[A_REASON]));
	json_object_set_new(o, "key", jstr(argv[A_KEY], argl[A_KEY]));
	json_object_set_new(o, "version", json_integer((json_int_t)ver));
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

static size_t recent_bytes(const struct recent *e)
{
	size_t b = 0;

	for (uint32_t i = 0; i < A_COUNT; i++)
		b += e->argl[i];
	return b;
}

/* Entry e's arguments, pointers into its blob. */
static void recent_args(const struct recent *e, const char **argv)
{
	const char *p = e->blob;

	for (uint32_t i = 0; i < A_COUNT; i++) {
		argv[i] = p;
		p += e->argl[i];
	}
}

/* Keep a durable transition for TRIGGERS (the oldest go when full). 0 or -ENOMEM. */
static int recent_add(struct ingest_notes *n, uint64_t lsn, uint64_t ts_ms, const char *const *argv,
		      const uint32_t *argl)
{
	struct recent e = { .lsn = lsn, .ts_ms = ts_ms };
	size_t bytes = 0;
	char *p;

	for (uint32_t i = 0; i < A_COUNT; i++)
		bytes += e.argl[i] = argl[i];
	if (!(e.blob = p = malloc(bytes ? bytes : 1)))
		return -ENOMEM;
	for (uint32_t i = 0; i < A_COUNT; i++) {
		memcpy(p, argv[i], argl[i]);
		p += argl[i];
	}
	while (n->r_tail - n->r_head == n->recent_cap ||
	       (n->r_tail > n->r_head && n->r_bytes + bytes > NOTES_RECENT_BYTES)) {
		struct recent *old = &n->recent[n->r_head++ % n->recent_cap];
		n->recent_from = old->lsn + 1;
		n->r_bytes -= recent_bytes(old);
		free(old->blob);
	}
	n->r_bytes += bytes;
	n->recent[n->r_tail++ % n->recent_cap] = e;
	return 0;
}

/* A durable transition: kept, then pushed to its subscribers. */
static void transition_durable(struct ingest_ctx *ctx, uint64_t lsn, uint64_t ts_ms, const char *const *argv,
			       const uint32_t *argl, int publish)
{
	struct ingest_notes *n = ctx->notes;
	char *json;

	n->published = WF_MAX(n->published, lsn);
	/* relaxed: statistic */
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.segment_transitions, 1, memory_order_relaxed);
	if (recent_add(n, lsn, ts_ms, argv, argl) < 0)
		n->dropped++; /* out of memory: TRIGGERS finds it in the journal no more */
	/* The JSON payload only when a subscriber takes this segment: with
	 * none (the usual case) a transition costs no jansson objects, no
	 * dump and no malloc (0.5 transitions an EVENT under bench/run's
	 * EVENT load, whose random users flip at_risk and win_back). */
	if (!publish || !ingest_pubsub_wanted(ctx, argv[A_SEGMENT], argl[A_SEGMENT]))
		return;
	if (!(json = transition_json(lsn, ts_ms, argv, argl))) {
		n->dropped++;
		return;
	}
	ingest_pubsub_publish(ctx, argv[A_SEGMENT], argl[A_SEGMENT], json, strlen(json));
	free(json);
}

/* ---- set-up ---- */

int ingest_notes_init(struct ingest_ctx *ctx)
{
	struct ingest_notes *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	ctx->notes = n;
	ctx->note_view = malloc(sizeof(*ctx->note_view));
	n->q = calloc(NOTES_MAX, sizeof(*n->q));
	n->recent_cap = ctx->triggers_recent;
	n->recent = calloc(n->recent_cap, sizeof(*n->recent));
	for (int g = 0; g < 2; g++)
		n->seen[g].slot = calloc(2 * NOTES_SEEN_GEN, sizeof(uint64_t));
	if (!ctx->note_view || !n->q || !n->recent || !n->seen[0].slot || !n->seen[1].slot)
		return -ENOMEM;
	return 0;
}

void ingest_notes_fini(struct ingest_ctx *ctx)
{
	struct ingest_notes *n = ctx->notes;

	free(ctx->note_view);
	ctx->note_view = NULL;
	if (!n)
		return;
	for (uint64_t i = n->q_head; n->q && i < n->q_tail; i++)
		free(note_at(n, i));
	for (uint64_t i = n->r_head; n->recent && i < n->r_tail; i++)
		free(n->recent[i % n->recent_cap].blob);
	free(n->q);
	free(n->recent);
	free(n->seen[0].slot);
	free(n->seen[1].slot);
	free(n);
	ctx->notes = NULL;
}

void ingest_notes_recover(struct ingest_ctx *ctx, const struct wf_journal_rec *rec)
{
	if (rec->kind != WF_JREC_SEGMENT || rec->argc != A_COUNT)
		return;
	seen_check_add(ctx->notes, rec->argv[A_KEY], rec->argl[A_KEY]);
	transition_durable(ctx, rec->lsn, rec->ts_ms, rec->argv, rec->argl, 0);
}

/* ---- notes in ---- */

int ingest_notes_full(const struct ingest_ctx *ctx)
{
	const struct ingest_notes *n = ctx->notes;

	return n->q_tail - n->q_head >= NOTES_MAX || n->q_bytes >= NOTES_BYTES_MAX;
}

int ingest_notes_waiting(const struct ingest_ctx *ctx)
{
	return ctx->gc.failed && ctx->notes->q_head != ctx->notes->q_tail;
}

/* Append nt to the journal; while it failed, nt waits for
 * ingest_notes_rejournal() (lsn 0). 0, or -errno: the journal refuses
 * this record for good (too large, out of memory): the caller drops it. */
static int note_append(struct ingest_ctx *ctx, struct ingest_shard *sh, struct note *nt)
{
	const char *argv[WF_MSG_NOTE_MAX_ARGS];
	uint64_t lsn;
	int e;

	nt->lsn = 0;
	if (ctx->gc.failed) {
		sh->note_lsn = UINT64_MAX; /* a reply after it: an error until it is in again */
		return 0;
	}
	for (uint32_t i = 0; i < nt->argc; i++)
		argv[i] = note_arg(nt, i);
	e = wf_journal_append_kind(ctx->journal, nt->kind, nt->ts_ms, nt->shard, nt->argc, argv, nt->argl, &lsn);
	if (e < 0) {
		ctx->notes->dropped++;
		return e;
	}
	nt->lsn = lsn;
	ctx->notes->journaled++;
	if (nt->kind == WF_JREC_EXPOSURE) /* relaxed: statistic */
		atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.exposures, 1, memory_order_relaxed);
	if (!ctx->gc.pending_n++)
		ctx->gc.pending_ns = wf_now_ns();
	/* relaxed: single writer; STATS shows it */
	atomic_store_explicit(&ctx->shm->ctl->next_lsn, wf_journal_next_lsn(ctx->journal), memory_order_relaxed);
	sh->note_lsn = lsn; /* a reply after it on this ring waits for it */
	return 0;
}

int ingest_note(struct ingest_ctx *ctx, uint32_t shard, const struct wf_msg_note_view *v)
{
	struct ingest_notes *n = ctx->notes;
	size_t bytes = 0;
	struct note *nt;
	char *p;

	if (v->hdr.jkind == WF_JREC_EVENT || v->hdr.jkind >= WF_JREC_KINDS) {
		n->bad++; /* an EVENT comes from clients only */
		return 0;
	}
	if (v->hdr.jkind == WF_JREC_SEGMENT) {
		if (v->argc != A_COUNT || !v->argv[A_SEGMENT].len) {
			n->bad++;
			return 0;
		}
		if (seen_check_add(n, v->argv[A_KEY].p, v->argv[A_KEY].len)) {
			n->duplicates++; /* announced before (a ranker redoing its tail) */
			return 0;
		}
	}
	for (uint32_t i = 0; i < v->argc; i++)
		bytes += v->argv[i].len;
	nt = malloc(sizeof(*nt) + v->argc * sizeof(uint32_t) + bytes);
	if (!nt) {
		n->dropped++;
		return -ENOMEM;
	}
	*nt = (struct note){ .ts_ms = v->hdr.ts_ms, .kind = v->hdr.jkind, .shard = (uint16_t)shard, .argc = v->argc,
			     .bytes = bytes };
	p = (char *)&nt->argl[nt->argc];
	for (uint32_t i = 0; i < v->argc; i++) {
		nt->argl[i] = v->argv[i].len;
		memcpy(p, v->argv[i].p, v->argv[i].len);
		p += v->argv[i].len;
	}
	if (note_append(ctx, &ctx->shards[shard], nt) < 0) {
		free(nt);
		return 0;
	}
	n->q[n->q_tail++ % NOTES_MAX] = nt;
	n->q_bytes += bytes;
	return 0;
}

void ingest_notes_durable(struct ingest_ctx *ctx, uint64_t durable)
{
	struct ingest_notes *n = ctx->notes;

	while (n->q_head < n->q_tail) {
		struct note *nt = note_at(n, n->q_head);
		const char *argv[WF_MSG_NOTE_MAX_ARGS];

		if (!nt->gone && (!nt->lsn || nt->lsn > durable))
			break;
		n->q_head++;
		n->q_bytes -= nt->bytes;
		if (nt->kind == WF_JREC_SEGMENT && !nt->gone) {
			for (uint32_t i = 0; i < nt->argc; i++)
				argv[i] = note_arg(nt, i);
			transition_durable(ctx, nt->lsn, nt->ts_ms, argv, nt->argl, 1);
		}
		free(nt);
	}
}

void ingest_notes_rejournal(struct ingest_ctx *ctx)
{
	struct ingest_notes *n = ctx->notes;

	/* Those made durable before the failure go out; the rest, in order,
	 * into the journal again. */
	ingest_notes_durable(ctx, wf_journal_durable_lsn(ctx->journal));
	for (uint64_t i = n->q_head; i < n->q_tail; i++) {
		struct note *nt = note_at(n, i);
		if (note_append(ctx, &ctx->shards[nt->shard], nt) < 0)
			nt->gone = 1; /* refused for good: leaves unpublished */
	}
}

/* ---- the reply hold ---- */

int ingest_notes_hold(struct ingest_ctx *ctx, uint64_t note_lsn, struct ingest_conn *c, uint64_t slot)
{
	static const char m[] = "-ERR the journal cannot write (disk full or failing): a segment change behind this "
				"answer is not stored yet, retry later\r\n";
	struct ingest_slot *sl = &c->slots[slot % c->cap];

	if (note_lsn <= wf_journal_durable_lsn(ctx->journal))
		return 0;
	if (ctx->gc.failed || note_lsn == UINT64_MAX) {
		ingest_slot_answer(ctx, c, slot, m, sizeof(m) - 1);
		return 1;
	}
	sl->wait_lsn = note_lsn;
	sl->note_held = 1;
	if (ingest_journal_wait(ctx, c, note_lsn) < 0) {
		/* Nothing would wake it: an error now, never stuck. */
		sl->wait_lsn = 0;
		sl->note_held = 0;
		ingest_slot_answer(ctx, c, slot, "-ERR out of memory\r\n", 20);
		return 1;
	}
	return 0;
}

/* ---- TRIGGERS ---- */

struct trig_args {
	uint64_t cursor;
	uint32_t count, nseg;
	const struct wf_resp_arg *seg[TRIGGERS_SEGMENTS_MAX];
};

static int trig_wanted(const struct trig_args *t, const char *seg, size_t len)
{
	if (!t->nseg)
		return 1;
	for (uint32_t i = 0; i < t->nseg; i++)
		if (t->seg[i]->len == len && memcmp(t->seg[i]->p, seg, len) == 0)
			return 1;
	return 0;
}

/* Parse TRIGGERS's arguments: 0, or -EINVAL with the error in msg. */
static int trig_parse(const struct wf_resp_req *r, struct trig_args *t, char *msg, size_t n)
{
	int64_t v;

	*t = (struct trig_args){ .count = TRIGGERS_COUNT };
	if (r->argc < 2 || wf_parse_i64(r->argv[1].p, r->argv[1].len, &v) < 0 || v < 0) {
		snprintf(msg, n, "TRIGGERS wants: cursor [COUNT n] [SEGMENT name...] (cursor: the last id seen, 0 "
				 "for the start of retention)");
		return -EINVAL;
	}
	t->cursor = (uint64_t)v;
	for (uint32_t i = 2; i < r->argc; i++) {
		if (wf_resp_arg_is(&r->argv[i], "COUNT") && i + 1 < r->argc) {
			if (wf_parse_i64(r->argv[i + 1].p, r->argv[i + 1].len, &v) < 0 || v < 1 ||
			    v > TRIGGERS_COUNT_MAX) {
				snprintf(msg, n, "TRIGGERS COUNT wants an integer from 1 to %u", TRIGGERS_COUNT_MAX);
				return -EINVAL;
			}
			t->count = (uint32_t)v;
			i++;
		} else if (wf_resp_arg_is(&r->argv[i], "SEGMENT") && i + 1 < r->argc) {
			for (i++; i < r->argc; i++) {
				if (t->nseg == TRIGGERS_SEGMENTS_MAX) {
					snprintf(msg, n, "TRIGGERS takes at most %u segments", TRIGGERS_SEGMENTS_MAX);
					return -EINVAL;
				}
				t->seg[t->nseg++] = &r->argv[i];
			}
		} else {
			snprintf(msg, n, "TRIGGERS wants: cursor [COUNT n] [SEGMENT name...] (SEGMENT comes last)");
			return -EINVAL;
		}
	}
	return 0;
}

/* From the recent transitions: those after t->cursor (the caller checked
 * the buffer holds every one). */
static uint32_t trig_recent(struct ingest_notes *n, const struct trig_args *t, struct wf_buf *items)
{
	uint64_t lo = n->r_head, hi = n->r_tail;
	uint32_t got = 0;

	while (lo < hi) { /* the first with lsn > cursor */
		uint64_t mid = lo + (hi - lo) / 2;
		if (n->recent[mid % n->recent_cap].lsn <= t->cursor)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (uint64_t i = lo; i < n->r_tail && got < t->count; i++) {
		const struct recent *e = &n->recent[i % n->recent_cap];
		const char *argv[A_COUNT];
		char *json;

		recent_args(e, argv);
		if (!trig_wanted(t, argv[A_SEGMENT], e->argl[A_SEGMENT]))
			continue;
		if (!(json = transition_json(e->lsn, e->ts_ms, argv, e->argl)))
			break; /* out of memory: what came so far */
		wf_resp_w_bulk(items, json, strlen(json));
		free(json);
		got++;
	}
	return got;
}

/*
 * From the journal (a cursor older than the recent buffer): a journal tail
 * (lib/journal_tail.c) reading at most TRIGGERS_READ_MAX bytes a call, so
 * a TRIGGERS never stalls the loop for long. Where a call stopped is
 * remembered (a few positions: LSN -> segment, offset), so a consumer
 * paging on from its last id, or from the cursor an error named, goes on
 * from there; any other cursor starts at the beginning of its segment.
 * No tail is kept open between calls: it would keep pruned segments.
 */

struct jscan {
	const struct trig_args *t;
	struct wf_buf *items;
	uint32_t got;
	uint64_t last;   /* the last LSN read */
	int cut;         /* the byte budget ran out first */
	int done;        /* reached COUNT (or out of memory) */
};

/* One record: 1 to stop (done). */
static int jrec(struct jscan *js, const struct wf_journal_rec *rec)
{
	char *json;

	js->last = rec->lsn;
	if (rec->kind != WF_JREC_SEGMENT || rec->argc != A_COUNT ||
	    !trig_wanted(js->t, rec->argv[A_SEGMENT], rec->argl[A_SEGMENT]))
		return 0;
	if (!(json = transition_json(rec->lsn, rec->ts_ms, rec->argv, rec->argl)))
		return js->done = 1;
	wf_resp_w_bulk(js->items, json, strlen(json));
	free(json);
	return js->done = ++js->got == js->t->count;
}

static int trig_journal(struct ingest_ctx *ctx, const struct trig_args *t, struct wf_buf *items, uint32_t *ret_got,
			uint64_t *ret_last, int *ret_cut)
{
	struct ingest_notes *n = ctx->notes;
	struct jscan js = { .t = t, .items = items, .last = t->cursor };
	struct wf_journal_rec *rec = malloc(sizeof(*rec));
	struct wf_journal_tail *tail = NULL;
	uint64_t seg = 0, off = 0, want = t->cursor + 1;
	/* Published, and older than the recent buffer (which has the rest). */
	uint64_t upto = WF_MIN(n->published, n->recent_from ? n->recent_from - 1 : 0);
	int e = 0;

	for (uint32_t i = 0; i < NOTES_JPOS; i++)
		if (n->jpos[i].next_lsn == want) {
			seg = n->jpos[i].seg;
			off = n->jpos[i].off;
		}
	if (!rec || (e = wf_journal_tail_open_at(ctx->journal_dir, want, seg, off, &tail)) < 0) {
		e = rec ? e : -ENOMEM;
		goto out;
	}
	wf_journal_tail_budget(tail, TRIGGERS_READ_MAX);
	while (!js.done) {
		int r = wf_journal_tail_next(tail, rec, upto);
		if (r == -EAGAIN)
			js.cut = 1;
		else if (r < 0)
			e = r;
		if (r <= 0)
			break; /* cut, failed, or every record up to upto read */
		jrec(&js, rec);
	}
	wf_journal_tail_pos(tail, &seg, &off);
	if (seg) /* remembered: a call from js.last + 1 goes on here */
		n->jpos[n->jpos_next++ % NOTES_JPOS] = (struct ingest_jpos){ .next_lsn = js.last + 1, .seg = seg, .off = off };
out:
	wf_journal_tail_close(tail);
	free(rec);
	*ret_got = js.got;
	*ret_last = js.last;
	*ret_cut = js.cut;
	return e;
}

int ingest_cmd_triggers(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r)
{
	struct ingest_notes *n = ctx->notes;
	struct wf_buf items = { 0 };
	struct trig_args t;
	uint32_t got = 0;
	uint64_t last = 0;
	int e = 0, cut = 0;
	char msg[300];

	ctx->tmp.len = 0;
	if (trig_parse(r, &t, msg, sizeof(msg)) < 0) {
		wf_resp_w_error(&ctx->tmp, "ERR %s", msg);
		goto out;
	}
	if (t.cursor + 1 < n->recent_from) {
		e = trig_journal(ctx, &t, &items, &got, &last, &cut);
		if (e < 0) {
			wf_resp_w_error(&ctx->tmp, "ERR TRIGGERS cannot read the journal: %s", strerror(-e));
			goto out;
		}
		if (cut && !got) {
			/* Bounded work: a long stretch without a transition. */
			wf_resp_w_error(&ctx->tmp,
					"ERR TRIGGERS read %u MiB of journal after %llu without a transition: go on "
					"with TRIGGERS %llu",
					TRIGGERS_READ_MAX >> 20, (unsigned long long)t.cursor, (unsigned long long)last);
			goto out;
		}
		if (!cut && got < t.count) { /* the rest from the buffer */
			t.cursor = WF_MAX(t.cursor, last);
			t.count -= got;
			got += trig_recent(n, &t, &items);
		}
	} else {
		got = trig_recent(n, &t, &items);
	}
	wf_resp_w_array(&ctx->tmp, got);
	wf_buf_append(&ctx->tmp, items.data ? items.data : "", items.len);
out:
	wf_buf_fini(&items);
	return ingest_reply_local(ctx, c, ctx->tmp.data, ctx->tmp.len, 0);
}

void ingest_notes_info(struct ingest_ctx *ctx, struct wf_buf *b)
{
	struct ingest_notes *n = ctx->notes;

	wf_buf_printf(b,
		      "notes_journaled:%llu\r\nnotes_duplicate:%llu\r\nnotes_dropped:%llu\r\nnotes_bad:%llu\r\n"
		      "notes_held:%llu\r\ntransitions_last_id:%llu\r\ntransitions_recent:%llu\r\n",
		      (unsigned long long)n->journaled, (unsigned long long)n->duplicates,
		      (unsigned long long)n->dropped, (unsigned long long)n->bad,
		      (unsigned long long)(n->q_tail - n->q_head), (unsigned long long)n->published,
		      (unsigned long long)(n->r_tail - n->r_head));
}
