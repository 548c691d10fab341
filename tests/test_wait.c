/*
 * test_wait.c - shm/wait.h, sleeping and waking without lost wake-ups
 * (the Dekker pattern: the sleeper announces, then re-checks; the
 * producer publishes, then checks the announcement). Covers: one waker
 * is elected per sleep; a producer and a consumer that goes to sleep
 * whenever it finds nothing, as two threads and as two processes on
 * shared memory, for many rounds each: the consumer is never left asleep
 * with work posted. A lost wake-up shows as the producer waiting for an
 * ack past a bound of yields (a count, not a time); it then wakes the
 * consumer itself, counts the loss, and the test fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
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
};

/* The consumer: takes items 1..n in order, sleeping whenever none waits. */
static void consume(struct shared *sh, uint32_t n)
{
	for (uint32_t want = 1; want <= n; want++) {
		for (;;) {
			/* acquire: pairs with the producer's release of posted. */
			if (atomic_load_explicit(&sh->posted, memory_order_acquire) >= want)
				break;
			wf_wait_prepare(&sh->w);
			if (atomic_load_explicit(&sh->posted, memory_order_acquire) >= want) {
				wf_wait_cancel(&sh->w);
				break;
			}
			wf_wait_futex(&sh->w, 0); /* until woken: a lost wake hangs here */
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
		if (wf_wait_needs_wake(&sh->w))
			wf_wake_futex(&sh->w);
		while (atomic_load_explicit(&sh->acked, memory_order_acquire) < i) {
			if (++y == ACK_YIELDS) {
				/* The consumer sleeps with work posted: rescue it. */
				atomic_fetch_add_explicit(&sh->lost, 1, memory_order_relaxed);
				atomic_store_explicit(&sh->w.sleeping, 0, memory_order_relaxed);
				wf_wake_futex(&sh->w);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wait_one_waker_is_elected),
		cmocka_unit_test(test_wait_threads_never_miss_a_wake),
		cmocka_unit_test(test_wait_processes_never_miss_a_wake),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
