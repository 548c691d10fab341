/*
 * util.c - helpers shared by every weft program (see util.h).
 * Linked into every program through libweft.
 */
#include "lib/util.h"

#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <xxhash.h>

static const char *log_prog = "weft";
static int log_level = WF_LOG_INFO;

void wf_freep(void *pp)
{
	free(*(void **)pp);
}

void wf_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

void wf_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

uint64_t wf_hash64(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}

void wf_log_init(const char *prog)
{
	const char *lvl = getenv("WEFT_LOG_LEVEL");

	log_prog = prog;
	if (lvl && *lvl)
		log_level = atoi(lvl);
}

void wf_log_set_level(int level)
{
	log_level = level;
}

void wf_log(int level, const char *fmt, ...)
{
	static const char *const names[] = { [WF_LOG_ERR] = "error", [WF_LOG_WARN] = "warning",
					      [WF_LOG_INFO] = "info", [WF_LOG_DEBUG] = "debug" };
	char line[2048];
	va_list ap;
	int n;

	if (level > log_level)
		return;
	n = snprintf(line, sizeof(line), "<%d>%s: %s: ", level, log_prog,
		     (level >= 0 && level < (int)WF_ARRAY_SIZE(names) && names[level]) ? names[level] : "log");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so lines from several processes do not interleave. */
	n = (int)strnlen(line, sizeof(line) - 2);
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

void wf_escape(char *out, size_t out_len, const char *s, size_t len)
{
	size_t o = 0;

	if (out_len == 0)
		return;
	for (size_t i = 0; i < len && o + 5 < out_len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
			out[o++] = (char)c;
		} else {
			o += (size_t)snprintf(out + o, out_len - o, "\\x%02x", c);
		}
	}
	out[o] = '\0';
}

int wf_parse_i64(const char *s, size_t len, int64_t *ret)
{
	char tmp[32];
	char *end;
	long long v;

	if (len == 0 || len >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	v = strtoll(tmp, &end, 10);
	if (*end != '\0' || end == tmp)
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*ret = v;
	return 0;
}

int wf_parse_bytes(const char *s, uint64_t *ret)
{
	size_t n = strlen(s);
	unsigned shift = 0;
	int64_t v;

	if (n > 1 && strchr("kKmMgG", s[n - 1])) {
		shift = strchr("kK", s[n - 1]) ? 10 : strchr("mM", s[n - 1]) ? 20 : 30;
		n--;
	}
	if (wf_parse_i64(s, n, &v) < 0 || v <= 0 || (uint64_t)v > (UINT64_MAX >> 1) >> shift)
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

int wf_parse_double(const char *s, size_t len, double *ret)
{
	char tmp[64];
	char *end;
	double v;

	if (len == 0 || len >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	v = strtod(tmp, &end);
	if (*end != '\0' || end == tmp || !isfinite(v))
		return -EINVAL;
	*ret = v;
	return 0;
}

int wf_buf_reserve(struct wf_buf *b, size_t extra)
{
	size_t need = b->len + extra;
	size_t cap;
	char *p;

	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int wf_buf_append(struct wf_buf *b, const void *p, size_t n)
{
	int r = wf_buf_reserve(b, n + 1);

	if (r < 0)
		return r;
	if (n) /* an empty buffer's data may be NULL: memcpy must not see it */
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int wf_buf_printf(struct wf_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	r = wf_buf_reserve(b, (size_t)n + 1);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void wf_buf_consume(struct wf_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void wf_buf_fini(struct wf_buf *b)
{
	free(b->data);
	*b = (struct wf_buf){ 0 };
}

int wf_read_file(const char *path, char **ret, size_t *ret_len)
{
	WF_CLEANUP(wf_closep) int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *p;
	size_t off = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	p = malloc((size_t)st.st_size + 1);
	if (!p)
		return -ENOMEM;
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, p + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			break; /* it shrank meanwhile (a journal segment's zero tail cut): what it holds now */
		if (n < 0) {
			int e = -errno;
			free(p);
			return e;
		}
		off += (size_t)n;
	}
	p[off] = '\0';
	*ret = p;
	if (ret_len)
		*ret_len = off;
	return 0;
}

int wf_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int wf_write_file_atomic(const char *path, const void *data, size_t len)
{
	char tmp[4096];
	const char *p = data;
	int fd, r = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int wf_group_gid(const char *name, unsigned int *ret_gid)
{
	struct group *g = getgrnam(name);

	if (!g)
		return -ENOENT;
	*ret_gid = (unsigned int)g->gr_gid;
	return 0;
}

int wf_unix_listen(const char *path, int backlog, unsigned int mode, int64_t gid, int flags, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0)
		return -errno;
	/* A stale socket from an earlier run: nobody listens on it any more
	 * (a second instance on the same directory fails earlier, on the
	 * shm segment it would have to own). */
	if (unlink(path) < 0 && errno != ENOENT)
		goto fail;
	/* The mode given at creation (the umask bind() applies), not by a
	 * chmod(path) after it: in a directory others can write, the path
	 * could be a symlink by then, and chmod would follow it. lchown for
	 * the same reason (a swapped-in symlink is changed, not its target).
	 * The process is single-threaded while it listens (ingest, admin). */
	mode_t um = umask((mode_t)(~mode & 0777));
	int b = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(um);
	if (b < 0 || (gid >= 0 && lchown(path, (uid_t)-1, (gid_t)gid) < 0) || listen(fd, backlog) < 0)
		goto fail;
	*ret_fd = fd;
	return 0;
fail:
	r = -errno;
	close(fd);
	return r;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int wf_populate(void *p, size_t len, int write)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p & ~(pg - 1);

	return madvise((void *)a, (uintptr_t)p + len - a, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) < 0 ? -errno
														  : 0;
}
