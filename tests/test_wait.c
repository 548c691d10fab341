/*
 * test_wait.c - shm/wait.h, sleeping and waking without lost wake-ups
 * (the Dekker pattern: the sleeper announces, then re-checks; the
 * producer publishes, then checks the announcement). Covers: one waker
 * is elected per sleep; a producer and a consumer that goes to sleep
 * whenever it finds nothing, as two threads and as two processes on
 * shared memory, for many rounds each: the consumer is never left asleep
 * with work posted. A lost wake-up shows as the producer waiting for an
 * ack past a bound of yields (a count, not a time); it then wakes the
 * consumer itself, counts the loss, and the test fails. The same with a
 * consumer that sleeps until a signal (WF_WAIT_SIGNAL: weft-ingest where
 * its io_uring cannot wait on a futex), the producer sending it one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/wait.h"

#define ROUNDS 20000u
#define ACK_YIELDS 20000000u /* yields the producer waits for one ack */

struct shared {
	struct wf_waiter w;
	_Atomic uint32_t posted; /* the "ring": items published so far */
	_Atomic uint32_t acked;  /* items the consumer took */
	_Atomic uint32_t lost;   /* acks that never came without a rescue */
	uint32_t how;            /* how the consumer sleeps: WF_WAIT_FUTEX, WF_WAIT_SIGNAL */
	pid_t consumer;          /* WF_WAIT_SIGNAL: whom to signal */
	int sfd;                 /* WF_WAIT_SIGNAL: the consumer's signalfd */
};

/* The consumer sleeps: on the futex, or until the wake-up signal. */
static void sleep_once(struct shared *sh)
{
	struct signalfd_siginfo si;

	if (sh->how == WF_WAIT_FUTEX) {
		wf_wait_futex(&sh->w, 0); /* until woken: a lost wake hangs here */
		return;
	}
	assert_int_equal(read(sh->sfd, &si, sizeof(si)), sizeof(si)); /* likewise */
	assert_int_equal(si.ssi_signo, WF_WAIT_WAKE_SIGNAL);
	wf_wait_cancel(&sh->w);
}

/* The producer wakes the consumer as it sleeps. */
static void wake(struct shared *sh, uint32_t how)
{
	if (how == WF_WAIT_FUTEX)
		wf_wake_futex(&sh->w);
	else if (how == WF_WAIT_SIGNAL)
		kill(sh->consumer, WF_WAIT_WAKE_SIGNAL);
}

/* The consumer: takes items 1..n in order, sleeping whenever none waits. */
static void consume(struct shared *sh, uint32_t n)
{
	for (uint32_t want = 1; want <= n; want++) {
		for (;;) {
			/* acquire: pairs with the producer's release of posted. */
			if (atomic_load_explicit(&sh->posted, memory_order_acquire) >= want)
				break;
			wf_wait_prepare_how(&sh->w, sh->how);
			if (atomic_load_explicit(&sh->posted, memory_order_acquire) >= want) {
				wf_wait_cancel(&sh->w);
				break;
			}
			sleep_once(sh);
		}
		/* release: pairs with the producer's acquire of acked. */
		atomic_store_explicit(&sh->acked, want, memory_order_release);
	}
}

/* The producer: posts one item, wakes the consumer if it sleeps, waits
 * for the ack, so the consumer goes to sleep between most items and
 * each post races with its announcement. */
static void produce(struct shared *sh, uint32_t n)
{
	for (uint32_t i = 1; i <= n; i++) {
		uint32_t y = 0;

		atomic_store_explicit(&sh->posted, i, memory_order_release);
		wake(sh, wf_wait_needs_wake(&sh->w));
		while (atomic_load_explicit(&sh->acked, memory_order_acquire) < i) {
			if (++y == ACK_YIELDS) {
				/* The consumer sleeps with work posted: rescue it. */
				atomic_fetch_add_explicit(&sh->lost, 1, memory_order_relaxed);
				atomic_store_explicit(&sh->w.sleeping, 0, memory_order_relaxed);
				wake(sh, sh->how);
				y = 0;
			}
			sched_yield();
		}
	}
}

static struct shared *shared_new(void)
{
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(sh != MAP_FAILED);
	sh->how = WF_WAIT_FUTEX;
	return sh; /* zero-filled: nobody sleeps, nothing posted */
}

static void test_wait_one_waker_is_elected(void **state)
{
	struct shared *sh = shared_new();

	assert_int_equal(wf_wait_needs_wake(&sh->w), 0); /* nobody sleeps */
	wf_wait_prepare(&sh->w);
	assert_int_equal(wf_wait_needs_wake(&sh->w), 1);
	assert_int_equal(wf_wait_needs_wake(&sh->w), 0); /* already being woken */
	assert_int_equal(atomic_load(&sh->w.wakes), 1);
	wf_wait_prepare(&sh->w);
	wf_wait_cancel(&sh->w);
	assert_int_equal(wf_wait_needs_wake(&sh->w), 0); /* the sleeper changed its mind */
	/* Woken before it sleeps: the futex returns at once (the word is 0). */
	wf_wait_prepare(&sh->w);
	assert_int_equal(wf_wait_needs_wake(&sh->w), 1);
	assert_int_equal(wf_wait_futex(&sh->w, 0), 0);
	munmap(sh, sizeof(*sh));
}

static void *consumer_thread(void *arg)
{
	consume(arg, ROUNDS);
	return NULL;
}

static void test_wait_threads_never_miss_a_wake(void **state)
{
	struct shared *sh = shared_new();
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, consumer_thread, sh), 0);
	produce(sh, ROUNDS);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&sh->acked), ROUNDS);
	assert_int_equal(atomic_load(&sh->lost), 0);
	munmap(sh, sizeof(*sh));
}

static void test_wait_processes_never_miss_a_wake(void **state)
{
	struct shared *sh = shared_new();
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		consume(sh, ROUNDS);
		_exit(0);
	}
	produce(sh, ROUNDS);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(atomic_load(&sh->acked), ROUNDS);
	assert_int_equal(atomic_load(&sh->lost), 0);
	munmap(sh, sizeof(*sh));
}

static void test_wait_signal_never_misses_a_wake(void **state)
{
	struct shared *sh = shared_new();
	sigset_t set;
	int status;

	/* The sleep announced says how to wake: the one waker elected sends
	 * the signal. */
	wf_wait_prepare_how(&sh->w, WF_WAIT_SIGNAL);
	assert_int_equal(wf_wait_needs_wake(&sh->w), WF_WAIT_SIGNAL);
	assert_int_equal(wf_wait_needs_wake(&sh->w), 0);
	/* A consumer process sleeping on its signalfd, as weft-ingest does
	 * where its io_uring cannot wait on a futex. */
	sigemptyset(&set);
	sigaddset(&set, WF_WAIT_WAKE_SIGNAL);
	assert_int_equal(sigprocmask(SIG_BLOCK, &set, NULL), 0); /* before the fork: no signal is lost */
	sh->how = WF_WAIT_SIGNAL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sh->sfd = signalfd(-1, &set, 0);
		if (sh->sfd < 0)
			_exit(1);
		consume(sh, ROUNDS / 4);
		_exit(0);
	}
	sh->consumer = pid;
	produce(sh, ROUNDS / 4);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(atomic_load(&sh->acked), ROUNDS / 4);
	assert_int_equal(atomic_load(&sh->lost), 0);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	munmap(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wait_one_waker_is_elected),
		cmocka_unit_test(test_wait_threads_never_miss_a_wake),
		cmocka_unit_test(test_wait_processes_never_miss_a_wake),
		cmocka_unit_test(test_wait_signal_never_misses_a_wake),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
