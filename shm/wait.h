/*
 * wait.h - sleeping and waking across processes without lost wake-ups.
 *
 * A process that found nothing to do spins briefly, then announces that it
 * will sleep, re-checks its rings, and sleeps (futex on the shared word, or
 * for weft-ingest, a futex wait in its io_uring: IORING_OP_FUTEX_WAIT, or
 * where the kernel lacks that (< 6.7), a read of its signalfd in the ring,
 * woken by WF_WAIT_WAKE_SIGNAL, which only its own user can send). A producer
 * checks the flag after committing and wakes the sleeper only if it is set,
 * so the fast path costs no system call.
 *
 * The pattern is Dekker's: sleeper stores sleeping=1 then loads the ring
 * head; producer stores the head then loads sleeping. Each side puts a
 * seq_cst fence between its store and its load (F1 in wf_wait_prepare, F2
 * in wf_wait_needs_wake), so at least one of them sees the other's store:
 * either the sleeper sees the new record, or the producer sees the flag.
 */
#ifndef WF_WAIT_H
#define WF_WAIT_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

/* How the owner sleeps, in `sleeping`: on the futex (a waker calls
 * wf_wake_futex()), or until a signal (WF_WAIT_SIGNAL: weft-ingest on a
 * kernel whose io_uring cannot wait on a futex; a waker sends it
 * WF_WAIT_WAKE_SIGNAL, rankers/ranker.c wake_ingest()). */
#define WF_WAIT_FUTEX 1u
#define WF_WAIT_SIGNAL 2u
#define WF_WAIT_WAKE_SIGNAL SIGUSR1

struct wf_waiter {
	/* WF_WAIT_FUTEX or WF_WAIT_SIGNAL while the owner is (about to be)
	 * asleep, else 0. Writer: the owner (sets it) and any waker
	 * (exchanges to 0). Readers: wakers. Futex word. */
	_Atomic uint32_t sleeping;
	/* Count of wake-ups sent, for stats. Relaxed: statistics only. */
	_Atomic uint32_t wakes;
};

/* Owner: announce sleep, how (WF_WAIT_FUTEX or WF_WAIT_SIGNAL). Then
 * re-check for work; if any, wf_wait_cancel(). */
static inline void wf_wait_prepare_how(struct wf_waiter *w, uint32_t how)
{
	atomic_store_explicit(&w->sleeping, how, memory_order_relaxed);
	/* F1: pairs with F2 in wf_wait_needs_wake(). */
	atomic_thread_fence(memory_order_seq_cst);
}

/* Owner: announce a sleep on the futex. */
static inline void wf_wait_prepare(struct wf_waiter *w)
{
	wf_wait_prepare_how(w, WF_WAIT_FUTEX);
}

static inline void wf_wait_cancel(struct wf_waiter *w)
{
	/* relaxed: only clears our own announcement; a spurious wake is harmless. */
	atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
}

/* Producer, after committing: returns how the owner sleeps
 * (WF_WAIT_FUTEX, WF_WAIT_SIGNAL) if the caller must wake it, else 0 (and
 * clears the flag so only one producer pays for the wake). */
static inline uint32_t wf_wait_needs_wake(struct wf_waiter *w)
{
	uint32_t how;

	/* F2: pairs with F1 in wf_wait_prepare_how(). */
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(&w->sleeping, memory_order_relaxed))
		return 0;
	/* relaxed: the exchange only elects one waker; ordering came from F2. */
	if (!(how = atomic_exchange_explicit(&w->sleeping, 0, memory_order_relaxed)))
		return 0;
	atomic_fetch_add_explicit(&w->wakes, 1, memory_order_relaxed);
	return how;
}

/* Owner: sleep on the futex while sleeping == 1, at most timeout_ns
 * (0 = forever). Returns 0 on wake or timeout, -EINTR on a signal. */
int wf_wait_futex(struct wf_waiter *w, uint64_t timeout_ns);
/* Waker: wake the futex sleeper. */
void wf_wake_futex(struct wf_waiter *w);

#endif
