/*
 * dirlock.c - the lock file that says who owns a weft directory (see
 * dirlock.h). Linked into weft-admin and weftctl.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "admin/dirlock.h"

static pid_t read_owner(int fd)
{
	char buf[24];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long v;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	v = strtol(buf, NULL, 10);
	return v > 0 && v < (1l << 30) ? (pid_t)v : 0;
}

int wf_dirlock_take(const char *path, pid_t *ret_owner)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char pid[24];
	int fd, n, r;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		r = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
		if (r == -EBUSY)
			*ret_owner = read_owner(fd);
		close(fd);
		return r;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	errno = 0; /* a short write sets none */
	if (pwrite(fd, pid, (size_t)n, 0) != n) {
		r = errno ? -errno : -EIO;
		close(fd);
		return r;
	}
	return fd;
}
