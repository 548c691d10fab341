/*
 * util.h - small helpers every weft program uses: cleanup attribute, time,
 * hashing (xxh3 via libxxhash), logging, growable byte buffer.
 *
 * Linked into every program through libweft. Library code (shm/, lib/) logs
 * only at debug level; programs log once where an error is handled.
 */
#ifndef WF_UTIL_H
#define WF_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define WF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define WF_MAX(a, b) ((a) > (b) ? (a) : (b))
#define WF_ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define wf_likely(x) __builtin_expect(!!(x), 1)
#define wf_unlikely(x) __builtin_expect(!!(x), 0)

/* Run fn(&var) when var leaves scope: WF_CLEANUP(wf_freep) char *p = ... */
#define WF_CLEANUP(fn) __attribute__((cleanup(fn)))
void wf_freep(void *pp);
void wf_closep(int *fd);
void wf_fclosep(FILE **f);

/* Monotonic and wall clocks in nanoseconds / milliseconds. */
/* Start loading the cache line at a. An asm statement on x86: GCC
 * deletes a loop whose only statements are __builtin_prefetch() calls. */
static inline __attribute__((always_inline)) void wf_prefetch(const void *a)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)a));
#else
	__builtin_prefetch(a);
#endif
}

static inline uint64_t wf_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A warning a flood would repeat (failed or refused accepts): written at
 * most once per `every` ns, saying how many there were. Zeroed to start;
 * wf_ratelimit() counts one and returns 0 to stay quiet, else the count
 * the warning should give (then starts counting again). */
struct wf_ratelimit {
	uint64_t last_ns, n;
};

static inline uint64_t wf_ratelimit(struct wf_ratelimit *r, uint64_t now, uint64_t every)
{
	uint64_t n = ++r->n;

	if (r->last_ns && now - r->last_ns < every)
		return 0;
	r->last_ns = now;
	r->n = 0;
	return n;
}

/* accept() failed for want of descriptors or memory: it fails again at
 * once until some are freed, so a listener should rest, not retry. */
static inline int wf_accept_starved(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static inline uint64_t wf_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

/* 64-bit hash of bytes (XXH3). Stable across processes and versions of weft:
 * the snapshot format and the routing depend on it. */
uint64_t wf_hash64(const void *data, size_t len);

/* Shard owning a routing key (user id, or session id for an anonymous
 * first event), from its wf_hash64(): uniform over [0, nshards). Stable:
 * routing and the rankers' ownership of snapshot users both depend on it. */
static inline uint32_t wf_shard_of_hash(uint64_t h, uint32_t nshards)
{
	return (uint32_t)(((unsigned __int128)h * nshards) >> 64);
}

/* The same from the key itself: wf_shard_of_hash(wf_hash64(key, len), n). */
static inline uint32_t wf_shard_of(const void *key, size_t len, uint32_t nshards)
{
	return wf_shard_of_hash(wf_hash64(key, len), nshards);
}

/* Logging to stderr (journald picks it up under systemd). */
enum { WF_LOG_ERR = 3, WF_LOG_WARN = 4, WF_LOG_INFO = 6, WF_LOG_DEBUG = 7 };
void wf_log_init(const char *prog);
void wf_log_set_level(int level);
void wf_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define wf_err(...) wf_log(WF_LOG_ERR, __VA_ARGS__)
#define wf_warn(...) wf_log(WF_LOG_WARN, __VA_ARGS__)
#define wf_info(...) wf_log(WF_LOG_INFO, __VA_ARGS__)
#define wf_debug(...) wf_log(WF_LOG_DEBUG, __VA_ARGS__)

/* Write a printable, escaped copy of s[0..len) (at most out_len-1 bytes,
 * NUL-terminated) for quoting client strings in logs and errors. */
void wf_escape(char *out, size_t out_len, const char *s, size_t len);

/* Parse a base-10 integer occupying all of s[0..len). Returns 0 or -EINVAL /
 * -ERANGE; *ret untouched on failure. */
int wf_parse_i64(const char *s, size_t len, int64_t *ret);
int wf_parse_double(const char *s, size_t len, double *ret);

/* A size on a command line: "N", or N with a K, M or G suffix (powers of
 * 1024), N > 0. Returns 0 or -EINVAL; *ret untouched on failure. The one
 * rule for --memory-budget and --spill-budget in weft-ranker and weftctl. */
int wf_parse_bytes(const char *s, uint64_t *ret);

/*
 * Growable byte buffer. Owner: whoever declares it. wf_buf_fini() frees.
 * Append functions return 0 or -ENOMEM.
 */
struct wf_buf {
	char *data;
	size_t len;
	size_t cap;
};

int wf_buf_reserve(struct wf_buf *b, size_t extra);
int wf_buf_append(struct wf_buf *b, const void *p, size_t n);
int wf_buf_printf(struct wf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wf_buf_consume(struct wf_buf *b, size_t n); /* drop n bytes from the front */
void wf_buf_fini(struct wf_buf *b);

/* Fault [p, p + len) into this process now (rounded out to whole pages):
 * MADV_POPULATE_WRITE when write, else MADV_POPULATE_READ, so a hot path
 * takes no first-touch faults later; for a shared mapping it also
 * allocates the pages in the segment. 0; -EINVAL when the kernel has no
 * populate (< 5.14: pages fault in on use); another -errno (-EFAULT,
 * -ENOMEM) when the memory cannot be had (say, /dev/shm full). */
int wf_populate(void *p, size_t len, int write);

/* Read a whole file into a malloc'd buffer (NUL-terminated). 0 or -errno. */
int wf_read_file(const char *path, char **ret, size_t *ret_len);

/* Write data to path atomically (temp file, fsync, rename). 0 or -errno. */
int wf_write_file_atomic(const char *path, const void *data, size_t len);

/* fsync directory dir (a rename or unlink in it becomes durable). 0 or -errno. */
int wf_fsync_dir(const char *dir);

/* The gid of group name into *ret_gid. 0, or -ENOENT when there is no
 * such group (the caller says to create it). */
int wf_group_gid(const char *name, unsigned int *ret_gid);

/*
 * wf_unix_listen - listen on a Unix stream socket at path: a stale socket
 * file left there is removed first, then the socket gets mode and, when
 * gid >= 0, that group as owner (wf_group_gid()).
 * @flags:   extra socket() type flags (SOCK_NONBLOCK); SOCK_CLOEXEC always.
 * @ret_fd:  the listening socket, written only on success.
 * Returns 0, or -ENAMETOOLONG (path does not fit sun_path), or the -errno
 * of socket(), bind(), chmod(), chown() or listen(). Logs nothing.
 */
int wf_unix_listen(const char *path, int backlog, unsigned int mode, int64_t gid, int flags, int *ret_fd);

#endif
