/*
 * replay.c - weft-ranker's journal replay: a restart's (the checkpoint,
 * then the journal after it, or the session TTL's tail without one) and
 * the catch-up after an ingest restart (what the dead ingest journaled and
 * never sent). Linked only into weft-ranker.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lib/journal.h"
#include "rankers/ranker_int.h"

/* Apply this shard's EVENTs of the journal from LSN events_from (those
 * older than since_ms skipped), each with its LSN: one already in its
 * session's state is not applied twice (a checkpoint's, a spilled one's,
 * the ring's). Reading starts at from (<= events_from): during a
 * restart's replay (ctx->seg_replaying) this shard's WF_JREC_SEGMENT
 * records before events_from say what was announced (segs.c). EVENTs
 * are applied below events_until (UINT64_MAX: the end); a restart reads
 * on to the end for the segment records only. Returns the
 * events read, or -errno when the journal cannot be read; *ret_last: the
 * last LSN read. */
static int64_t replay_from(struct ranker_ctx *ctx, uint64_t from, uint64_t events_from, uint64_t events_until,
			   uint64_t since_ms, uint64_t *ret_last)
{
	struct wf_journal_reader *r;
	struct wf_journal_rec *rec = calloc(1, sizeof(*rec));
	uint64_t n = 0, last = 0;
	int e;

	if (!rec)
		return -ENOMEM;
	e = wf_journal_reader_open(ctx->journal_dir, from, &r);
	if (e < 0) {
		free(rec);
		return e;
	}
	while ((e = wf_journal_reader_next(r, rec)) == 1) {
		struct wf_msg_arg a[WF_JOURNAL_MAX_ARGS];

		if (rec->lsn >= events_until) {
			/* The ring brings these EVENTs, in order with the requests
			 * around them; a restart still reads what was announced
			 * after them (a dead ranker's notes for an EVENT it
			 * had not given back, a timer's). */
			if (!ctx->seg_replaying)
				break;
			if (rec->kind == WF_JREC_SEGMENT && rec->shard == ctx->shard)
				ranker_segs_replay_record(ctx, rec);
			continue;
		}
		last = rec->lsn;
		if (rec->kind == WF_JREC_SEGMENT && rec->shard == ctx->shard) {
			if (ctx->seg_replaying) /* a transition this shard announced (segs.c) */
				ranker_segs_replay_record(ctx, rec);
			continue;
		}
		if (rec->kind != WF_JREC_EVENT || rec->shard != ctx->shard || rec->ts_ms < since_ms ||
		    rec->lsn < events_from)
			continue;
		for (uint32_t i = 0; i < rec->argc; i++)
			a[i] = (struct wf_msg_arg){ rec->argv[i], rec->argl[i] };
		ranker_event_lsn(ctx, a, rec->argc, rec->ts_ms, rec->lsn, NULL);
		n++;
	}
	if (e < 0)
		wf_warn("shard %u: journal replay stopped at a corrupt record after lsn %llu", ctx->shard,
			(unsigned long long)last);
	wf_journal_reader_close(r);
	free(rec);
	if (last > ctx->applied_lsn)
		ctx->applied_lsn = last;
	*ret_last = last;
	return (int64_t)n;
}

/* Where a restart's replay stops: the request ring still holds (or will
 * hold) every EVENT of this shard that the running weft-ingest journaled
 * after the newest one a ranker took from it (sc->ring_lsn), in order
 * with the RECS around them; applied now, a RECS the dead ranker had not
 * answered would see an EVENT its client sent after it. (One taken but
 * not given back, in the batch the ranker died in, is replayed and then
 * skipped when the ring brings it again.) What the journal
 * has below the running ingest's first LSN never comes through the ring.
 * With no ingest started yet in this segment the ring holds nothing: the
 * whole journal (an ingest that starts later is caught up, catch_up). */
static uint64_t replay_until(struct ranker_ctx *ctx)
{
	/* relaxed: the ranker that wrote it has exited (see layout.h) */
	uint64_t ring = atomic_load_explicit(&ctx->sc->ring_lsn, memory_order_relaxed);

	ctx->ring_lsn = ring;
	if (!ctx->ingest_epoch)
		return UINT64_MAX;
	/* relaxed: published by R14 (the acquire of ingest_started above) */
	return WF_MAX(ring + 1, atomic_load_explicit(&ctx->shm->ctl->ingest_start_lsn, memory_order_relaxed));
}

/* Rebuild the sessions of this shard: its checkpoint, then the journal
 * after the checkpoint's LSN; without a usable checkpoint, the journal
 * tail covering the session TTL. So a restarted ranker lost nothing that
 * was acknowledged, in a time bounded by the checkpoint interval's events. */
void ranker_replay_journal(struct ranker_ctx *ctx)
{
	uint64_t t0, t1, from = 0, last = 0, until, since = wf_wall_ms() - ctx->session_ttl_ms;
	int64_t n;
	int c, segs = 0;

	/* Sessions come back without notes; what differs from what was
	 * announced is announced once the replay ends (segs.c). */
	ranker_segs_replay_begin(ctx);
	t0 = wf_now_ns();
	c = ctx->ckpt_interval_ms ? ranker_ckpt_load(ctx, &from, &segs) : -ENOENT;
	t1 = wf_now_ns();

	if (c == 0)
		since = 0; /* everything after the checkpoint */
	else if (c != -ENOENT)
		wf_warn("shard %u: checkpoint in %s unusable (%s): replaying the whole journal instead", ctx->shard,
			ctx->state_dir, strerror(-c));
	/* A14: pairs with R14 in ingest/main.c setup_state() (the running
	 * ingest's epoch, published once its journal is recovered); read
	 * before the journal, so an ingest that starts meanwhile is caught up
	 * after (ranker_catch_up). */
	ctx->ingest_epoch = atomic_load_explicit(&ctx->shm->ctl->ingest_started, memory_order_acquire);
	until = replay_until(ctx);
	/* After the checkpoint's LSN when its segment states were restored as
	 * they were; else from the start, so the segment transitions announced
	 * before it are known before the sessions are evaluated again. */
	n = replay_from(ctx, c == 0 && segs ? from + 1 : 0, c == 0 ? from + 1 : 0, until, since, &last);
	if (n < 0) {
		if (n != -ENOENT)
			wf_warn("shard %u: cannot read journal %s: %s", ctx->shard, ctx->journal_dir, strerror((int)-n));
		ranker_segs_replay_end(ctx);
		return;
	}
	ctx->replayed_lsn = last;
	ranker_segs_replay_end(ctx);
	wf_info("shard %u replayed %lld journal events (lsn %llu..%llu%s) in %.1f ms (checkpoint %.1f ms)", ctx->shard,
		(long long)n, (unsigned long long)(c == 0 ? from + 1 : 0), (unsigned long long)last,
		c != 0 ? ", whole journal" : segs ? ", after its checkpoint" : ", after its checkpoint; segment records from the start",
		(double)(wf_now_ns() - t1) / 1e6, (double)(t1 - t0) / 1e6);
}

/* weft-ingest restarted since the journal was last read (a new one
 * started, R14): the EVENTs the dead one had made durable but not yet put
 * on this shard's ring were never applied. They follow every event this
 * ranker saw of the shard (the ring is FIFO in LSN order), so reading the
 * journal after ctx->applied_lsn finds them; called before the batch that
 * showed the new epoch is handled, and what the ring then brings again
 * is skipped by its LSN. */
void ranker_catch_up(struct ranker_ctx *ctx)
{
	/* A14: pairs with R14 in ingest/main.c setup_state(): a new ingest's
	 * epoch there, and its first LSN (written before it) with it. */
	uint32_t ep = atomic_load_explicit(&ctx->shm->ctl->ingest_started, memory_order_acquire);
	uint64_t last = 0, until;
	int64_t n;

	if (ep == ctx->ingest_epoch)
		return;
	ctx->ingest_epoch = ep;
	/* Only what the journal held before that ingest started: its own
	 * EVENTs come through the ring, in order with its other requests (a
	 * RECS must not see an EVENT its client sent after it). */
	until = atomic_load_explicit(&ctx->shm->ctl->ingest_start_lsn, memory_order_relaxed);
	if (until <= ctx->applied_lsn + 1)
		return;
	n = replay_from(ctx, ctx->applied_lsn + 1, ctx->applied_lsn + 1, until, 0, &last);
	if (n > 0)
		wf_info("shard %u: weft-ingest restarted; applied %lld journaled events it had not sent (through lsn %llu)",
			ctx->shard, (long long)n, (unsigned long long)last);
}
