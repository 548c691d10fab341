/*
 * commit.c - weft-ingest's group commit: every EVENT is appended to the
 * journal before it reaches a ranker, flushes of the appended groups
 * (a synchronous write, then an fdatasync through the ring in durability
 * fsync), and the connections whose `:1` waits for a flush. The state is
 * struct ingest_group_commit (ctx->gc). Linked into weft-ingest only.
 *
 * Up to --journal-flights flushes are in flight at once, and appends
 * meanwhile form the next group; flushes may end in any order, and an
 * event is acknowledged only once its flush and every older one ended
 * (wf_journal_flush_end). A group lingers a little to fill: the next flush
 * waits until the group is as large as the recent largest one, or at most
 * a fraction of a flush time after its first event (a quarter with
 * nothing in flight, capped at JOURNAL_LINGER_MAX_NS, divided by 1 + the
 * flushes in flight). A lone client (largest group 1) never waits. An ack
 * still means durable: only when the flush starts is delayed.
 *
 * An EVENT reaches its ranker only once durable (shard.c holds it in the
 * ring until ingest_journal_done() releases it). A failed write or flush
 * (a full disk) voids every EVENT not yet durable and answers each with an
 * error; the next EVENT once no flush is in flight tries again
 * (ingest_journal_retry(): the journal drops what it could not write and
 * cuts its segment back), so the failure clears itself when the disk has
 * room. ctl->ingest_stats.journal_failed shows it meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest.h"

#define JOURNAL_LINGER_MAX_NS 250000ull

static void journal_failed(struct ingest_ctx *ctx, int err);

void ingest_journal_append(struct ingest_ctx *ctx, uint32_t shard, uint32_t argc, const char *const *argv,
			   const uint32_t *argl, uint64_t lsn, uint64_t now_ns)
{
	struct ingest_group_commit *gc = &ctx->gc;
	uint64_t got;

	/* Cannot fail: argc and sizes were checked in check_event(). */
	if (wf_journal_append(ctx->journal, wf_wall_ms(), (uint16_t)shard, argc, argv, argl, &got) < 0 || got != lsn) {
		wf_err("journal append failed for lsn %llu", (unsigned long long)lsn);
		journal_failed(ctx, ENOMEM);
	}
	if (!gc->pending_n++)
		gc->pending_ns = now_ns;
	/* relaxed: single writer; STATS shows it, nothing is read through it */
	atomic_store_explicit(&ctx->shm->ctl->next_lsn, wf_journal_next_lsn(ctx->journal), memory_order_relaxed);
}

int ingest_journal_retry(struct ingest_ctx *ctx)
{
	struct ingest_group_commit *gc = &ctx->gc;
	int r;

	if (!gc->failed)
		return 0;
	if (gc->inflight)
		return -EBUSY;
	r = wf_journal_reset(ctx->journal);
	if (r < 0)
		return r;
	gc->failed = 0;
	gc->pending_n = 0;
	/* relaxed: display (status, INFO); single writer */
	atomic_store_explicit(&ctx->shm->ctl->ingest_stats.journal_failed, 0, memory_order_relaxed);
	atomic_store_explicit(&ctx->shm->ctl->next_lsn, wf_journal_next_lsn(ctx->journal), memory_order_relaxed);
	wf_info("journal: trying to write again from lsn %llu",
		(unsigned long long)wf_journal_next_lsn(ctx->journal));
	/* The rankers' notes the failure dropped go in first (notes.c). */
	ingest_notes_rejournal(ctx);
	return 0;
}

int ingest_journal_wait(struct ingest_ctx *ctx, struct ingest_conn *c, uint64_t lsn)
{
	struct ingest_group_commit *gc = &ctx->gc;

	if (gc->jwait_tail - gc->jwait_head == gc->jwait_cap) {
		uint64_t ncap = gc->jwait_cap ? gc->jwait_cap * 2 : 4096;
		struct ingest_jwait *n = malloc(ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (uint64_t i = gc->jwait_head; i < gc->jwait_tail; i++)
			n[i % ncap] = gc->jwait[i % gc->jwait_cap];
		free(gc->jwait);
		gc->jwait = n;
		gc->jwait_cap = ncap;
	}
	gc->jwait[gc->jwait_tail++ % gc->jwait_cap] = (struct ingest_jwait){ c->idx, c->gen, lsn };
	return 0;
}

/* ns until the pending group is due (0: now). Only an fdatasync is worth
 * waiting for; a write() alone is cheap. */
static uint64_t group_due(const struct ingest_ctx *ctx)
{
	const struct ingest_group_commit *gc = &ctx->gc;

	if (ctx->durability == WF_JOURNAL_FSYNC && gc->pending_n < gc->group_max && !ctx->stopping) {
		uint64_t linger = WF_MIN(gc->flush_ns / 4, JOURNAL_LINGER_MAX_NS) / (1 + gc->inflight);
		uint64_t now = wf_now_ns();
		if (now - gc->pending_ns < linger)
			return gc->pending_ns + linger - now;
	}
	return 0;
}

uint64_t ingest_journal_kick(struct ingest_ctx *ctx)
{
	struct ingest_group_commit *gc = &ctx->gc;
	struct wf_journal_flush f;
	struct ingest_jflush *jf;
	struct io_uring_sqe *sqe;
	uint64_t due;
	uint32_t slot;
	int r;

	if (gc->failed || !gc->pending_n)
		return 0;
	if ((due = group_due(ctx)) != 0)
		return due;
	r = wf_journal_flush_begin(ctx->journal, &f);
	if (r < 0) {
		journal_failed(ctx, -r);
		return 0;
	}
	if (r == 0)
		return 0; /* every flight taken, or a segment roll waits for them */
	slot = (uint32_t)(f.id % WF_JOURNAL_FLIGHTS_MAX);
	jf = &gc->jflush[slot];
	jf->id = f.id;
	jf->n = gc->pending_n;
	jf->t0 = wf_now_ns();
	gc->inflight++;
	gc->pending_n = 0;
	/* The write itself is synchronous: a group's few KB into the page
	 * cache cost microseconds, while io_uring hands a buffered ext4 write
	 * to an io-wq worker, whose wake-up on a busy 2-core box costs far
	 * more (BENCHMARKS.md). Only the fdatasync, which blocks for real,
	 * goes through the ring. */
	jf->written = wf_journal_flush_write(&f);
	/* The recent largest group: grows at once, decays by 1/8 a flush. */
	gc->group_max = WF_MAX(jf->n, gc->group_max * 7 / 8);
	if (jf->written < 0 || !f.sync) {
		ingest_journal_done(ctx, slot, jf->written);
	} else if ((sqe = ingest_get_sqe(ctx))) {
		io_uring_prep_fsync(sqe, f.fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data64(sqe, ingest_ud(INGEST_OP_JSYNC, slot, 0));
	} else {
		/* No room in the ring (its submit failed): sync here instead. */
		ingest_journal_done(ctx, slot, fdatasync(f.fd) < 0 ? -errno : jf->written);
	}
	return 0;
}

/* The journal failed with err: every EVENT not durable is voided in its
 * ring and its reply becomes an error (so a retry by the client stores it
 * once); then each connection sends what it may. Later EVENTs get errors
 * until ingest_journal_retry() succeeds. */
static void journal_failed(struct ingest_ctx *ctx, int err)
{
	struct ingest_group_commit *gc = &ctx->gc;
	uint64_t durable = wf_journal_durable_lsn(ctx->journal), n = 0;
	struct wf_ctl *ctl = ctx->shm->ctl;

	if (gc->failed)
		return;
	gc->failed = 1;
	wf_err("journal write failed: %s; events get errors until it writes again", strerror(err));
	ingest_held_release(ctx, durable, 1);
	for (uint32_t i = 0; i < ctx->nconns_cap; i++) {
		struct ingest_conn *c = ctx->conns[i];

		if (!c || c->fd < 0)
			continue;
		for (uint64_t s = c->head; s < c->tail; s++) {
			struct ingest_slot *sl = &c->slots[s % c->cap];
			if (sl->wait_lsn <= durable)
				continue;
			free(sl->data);
			sl->data = NULL;
			sl->wait_lsn = 0;
			if (sl->note_held) {
				/* A ranker's answer behind a note the journal lost
				 * for now (notes.c keeps the note and appends it
				 * again): not sent, as it shows what is not stored. */
				static const char m[] = "-ERR the journal cannot write (disk full or failing): a segment "
							"change behind this answer is not stored yet, retry later\r\n";
				sl->note_held = 0;
				if (ingest_slot_fill(sl, m, sizeof(m) - 1) < 0)
					ingest_slot_fill(sl, "-ERR journal\r\n", 14);
				continue;
			}
			if (ingest_slot_fill(sl, INGEST_ERR_JOURNAL, sizeof(INGEST_ERR_JOURNAL) - 1) < 0) /* out of memory: the short form fits inline */
				ingest_slot_fill(sl, "-ERR journal\r\n", 14);
			n++;
		}
		if (c->head < c->tail)
			ingest_conn_drain(ctx, c);
	}
	gc->jwait_head = gc->jwait_tail;
	/* relaxed: display and statistics (status, INFO); single writer */
	atomic_store_explicit(&ctl->ingest_stats.journal_failed, (uint64_t)(err > 0 ? err : EIO), memory_order_relaxed);
	atomic_fetch_add_explicit(&ctl->ingest_stats.journal_errors, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&ctl->ingest_stats.errors, n, memory_order_relaxed);
}

/* Flush slot ended: res = the bytes written, or -errno (of the write or
 * the fdatasync). Then the replies it made durable may go (with every
 * older flush ended): the connections in the journal-wait FIFO up to the
 * durable LSN (LSNs are issued in order, so the FIFO is in LSN order),
 * and the EVENTs it made durable go to their rankers; or, when the
 * journal failed, journal_failed(). */
void ingest_journal_done(struct ingest_ctx *ctx, uint32_t slot, int64_t res)
{
	struct ingest_group_commit *gc = &ctx->gc;
	struct ingest_jflush *jf = &gc->jflush[slot];
	uint64_t took = wf_now_ns() - jf->t0, durable;

	gc->inflight--;
	ingest_lat_stage(ctx, WF_LAT_FLUSH, took);
	/* EWMA, 1/4 weight on the newest: a spike moves it, one does not rule it */
	gc->flush_ns = gc->flush_ns ? (3 * gc->flush_ns + took) / 4 : took;
	gc->flushes++;
	gc->flushed_events += jf->n;
	if (wf_journal_flush_end(ctx->journal, jf->id, res) < 0)
		journal_failed(ctx, res < 0 ? (int)-res : EIO);
	if (gc->failed)
		return;
	durable = wf_journal_durable_lsn(ctx->journal);
	ingest_held_release(ctx, durable, 0);
	ingest_notes_durable(ctx, durable); /* transitions to their subscribers */
	while (gc->jwait_head < gc->jwait_tail) {
		struct ingest_jwait *w = &gc->jwait[gc->jwait_head % gc->jwait_cap];
		struct ingest_conn *c;

		if (w->lsn > durable)
			break;
		gc->jwait_head++;
		c = ctx->conns[w->conn_idx];
		if (c && c->gen == w->conn_gen && c->fd >= 0 && c->head < c->tail)
			ingest_conn_drain(ctx, c);
	}
}
