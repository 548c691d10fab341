/*
 * dirlock.h - who owns a weft directory: a lock file holding an open file
 * description lock (F_OFD_SETLK) and the owner's pid in decimal. The lock
 * goes away with the last descriptor of the open file (process death
 * included); the pid is only there to name the owner in a refusal.
 * Internal to admin/ (weft-admin and weftctl up link dirlock.c).
 */
#ifndef WF_DIRLOCK_H
#define WF_DIRLOCK_H

#include <sys/types.h>

/*
 * Take the write lock on path (created 0644 if absent, never following a
 * symlink) and write our pid into it. Returns the lock's fd (O_CLOEXEC;
 * keep it open for as long as the directory is ours), or -EBUSY with
 * *ret_owner = the pid written by the holder (0 if it wrote none yet), or
 * another -errno (open or fcntl failed).
 */
int wf_dirlock_take(const char *path, pid_t *ret_owner);

#endif
