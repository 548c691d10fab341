/*
 * admin_snapfile.c - weft-admin's own copy of every generation it serves.
 *
 * SNAPSHOT LOAD never publishes the operator's file: the rankers map the
 * snapshot shared, so a `truncate` or an overwrite in place of that file
 * would SIGBUS them. Instead weft-admin copies it into STATE/serving/
 * (mode 0750, written by weft-admin only) as "<gen>-<name>", mode 0444,
 * fsynced, and publishes that path. A copy, not a hard link: a link shares
 * the inode, which its owner (or root) can still truncate.
 *
 * The source is opened O_NONBLOCK and must be a regular file (a FIFO or a
 * device would block weft-admin or never end) of the size its header
 * states, and the copy is of the descriptor that was checked, so the name
 * cannot be swapped in between. A copy that would leave less than 64 MiB
 * free is refused (the journal may share the file system). weft-admin
 * copies in its loop: other admin clients wait for it (about 1 s a GB).
 *
 * Copies are dropped when their generation falls off (neither current nor
 * previous): unlinking a file a ranker still maps is safe. Linked into
 * weft-admin only.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "admin/admin_int.h"

#define SNAPDIR "serving" /* not snapshots/: weft-batch nightly writes there */
#define COPY_HEADROOM (64ull << 20) /* free space a copy must leave behind */

/* The absolute path of STATE/serving (the rankers resolve what we publish
 * from their own working directory): set by wf_admin_snapfile_init(). */
static int snapdir(const struct wf_admin_ctx *ctx, char *out, size_t len)
{
	if (!ctx->serving_dir[0])
		return -ENOENT;
	return (size_t)snprintf(out, len, "%s", ctx->serving_dir) >= len ? -ENAMETOOLONG : 0;
}

/* Is path one of our copies (directly inside STATE/serving)? */
static int is_ours(const struct wf_admin_ctx *ctx, const char *path)
{
	char dir[WF_PATH_MAX];
	size_t n;

	if (snapdir(ctx, dir, sizeof(dir)) < 0)
		return 0;
	n = strlen(dir);
	return strncmp(path, dir, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/');
}

int wf_admin_snapfile_init(struct wf_admin_ctx *ctx)
{
	char dir[WF_PATH_MAX];
	struct wf_snap_ref cur, prev;
	struct dirent *de;
	DIR *d;
	char abs[PATH_MAX];

	if ((size_t)snprintf(dir, sizeof(dir), "%s/" SNAPDIR, ctx->state_dir) >= sizeof(dir))
		return -ENAMETOOLONG;
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	if (!realpath(dir, abs))
		return -errno;
	if (strlen(abs) >= sizeof(ctx->serving_dir))
		return -ENAMETOOLONG;
	snprintf(ctx->serving_dir, sizeof(ctx->serving_dir), "%s", abs);
	snprintf(dir, sizeof(dir), "%s", abs);
	/* Remove what no generation refers to: copies that fell off while no
	 * weft-admin ran, and a copy a killed weft-admin left half written. */
	wf_ctl_snap_get(ctx->shm->ctl, &cur, &prev);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char p[WF_PATH_MAX + 256];

		if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if ((cur.gen && strcmp(p, cur.path) == 0) || (prev.gen && strcmp(p, prev.path) == 0))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			wf_info("removed %s (no generation refers to it)", p);
	}
	closedir(d);
	return 0;
}

void wf_admin_snapfile_drop(struct wf_admin_ctx *ctx, const char *path)
{
	if (path && is_ours(ctx, path) && unlink(path) == 0)
		wf_info("removed %s (generation no longer current or previous)", path);
}

/* Copy len bytes of src to dst (in-kernel when it can). 0 or -errno. */
static int copy_fd(int src, int dst, uint64_t len)
{
	char buf[1 << 16];
	off_t off = 0;

	while ((uint64_t)off < len) {
		ssize_t n = copy_file_range(src, &off, dst, NULL, (size_t)WF_MIN(len - (uint64_t)off, 1ull << 30), 0);

		if (n > 0)
			continue;
		if (n == 0)
			return -EIO; /* shrank under us */
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
			return -errno;
		/* Not across these file systems: read and write. */
		while ((uint64_t)off < len) {
			n = pread(src, buf, (size_t)WF_MIN(sizeof(buf), len - (uint64_t)off), off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			for (ssize_t w = 0; w < n;) {
				ssize_t k = write(dst, buf + w, (size_t)(n - w));

				if (k < 0 && errno == EINTR)
					continue;
				if (k < 0)
					return -errno;
				w += k;
			}
			off += n;
		}
	}
	return 0;
}

/*
 * Copy the snapshot at src (absolute) into STATE/serving as generation
 * max(header generation, min_gen), validate the copy, and open it. On
 * success *ret_snap is the open copy (its path is the one to publish) and
 * *ret_gen the generation. -errno with err filled otherwise (nothing left
 * behind).
 */
int wf_admin_snapfile_adopt(struct wf_admin_ctx *ctx, const char *src, uint64_t min_gen, struct wf_snap **ret_snap,
			    uint64_t *ret_gen, char *err, size_t errlen)
{
	char dir[WF_PATH_MAX], dst[WF_PATH_MAX], tmp[WF_PATH_MAX + 16], base[NAME_MAX + 1];
	struct wf_snap_hdr hdr;
	struct wf_snap *snap = NULL;
	struct statvfs vfs;
	struct stat st;
	uint64_t gen;
	int in, out = -1, r;

	in = open(src, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (in < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open snapshot %s: %s", src, strerror(-r));
		return r;
	}
	if (fstat(in, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot stat snapshot %s: %s", src, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(err, errlen, "snapshot %s is not a regular file (%s); give the file weft-batch wrote", src,
			 S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a directory"
			 : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a socket");
		goto out;
	}
	if (pread(in, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || hdr.magic != WF_SNAP_MAGIC) {
		r = -EPROTO;
		snprintf(err, errlen, "%s is not a weft snapshot (bad magic or too short); build one with weft-batch",
			 src);
		goto out;
	}
	if (hdr.file_size != (uint64_t)st.st_size) {
		r = -EPROTO;
		snprintf(err, errlen, "snapshot %s: its header says %llu bytes, the file has %llu (truncated, or "
			 "still being written?)", src, (unsigned long long)hdr.file_size,
			 (unsigned long long)st.st_size);
		goto out;
	}
	gen = WF_MAX(hdr.generation, min_gen);
	snprintf(base, sizeof(base), "%s", strrchr(src, '/') ? strrchr(src, '/') + 1 : src);
	if (snapdir(ctx, dir, sizeof(dir)) < 0) {
		r = -ENOENT;
		snprintf(err, errlen, "%s/" SNAPDIR " is not usable (see weft-admin's start-up log); nothing loaded",
			 ctx->state_dir);
		goto out;
	}
	if ((size_t)snprintf(dst, sizeof(dst), "%s/%llu-%s", dir, (unsigned long long)gen, base) >= sizeof(dst)) {
		r = -ENAMETOOLONG;
		snprintf(err, errlen, "snapshot name %s too long for %s", base, dir);
		goto out;
	}
	/* The copy shares a file system with the journal (under systemd):
	 * never fill it. */
	if (statvfs(dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < (uint64_t)st.st_size + COPY_HEADROOM) {
		r = -ENOSPC;
		snprintf(err, errlen, "not enough space in %s for weft-admin's copy of %s (%llu MB needed with "
			 "headroom, %llu MB free); free space there, nothing loaded", dir, src,
			 (unsigned long long)(((uint64_t)st.st_size + COPY_HEADROOM) >> 20),
			 (unsigned long long)(((uint64_t)vfs.f_bavail * vfs.f_frsize) >> 20));
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s/.incoming", dir);
	unlink(tmp);
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);
	r = out < 0 ? -errno : copy_fd(in, out, (uint64_t)st.st_size);
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0) {
		snprintf(err, errlen, "cannot copy snapshot %s to %s: %s (weft serves its own copy; free space in %s)",
			 src, dir, strerror(-r), dir);
		unlink(tmp);
		goto out;
	}
	r = wf_snap_open(dst, &snap, err, errlen);
	if (r < 0) {
		char fixed[1024];
		const char *hit = strstr(err, dst);

		/* Name the operator's file in the message, not our copy. */
		if (hit) {
			snprintf(fixed, sizeof(fixed), "%.*s%s%s", (int)(hit - err), err, src, hit + strlen(dst));
			snprintf(err, errlen, "%s", fixed);
		}
		unlink(dst);
		goto out;
	}
	*ret_snap = snap;
	*ret_gen = gen;
out:
	if (out >= 0)
		close(out);
	close(in);
	return r;
}
