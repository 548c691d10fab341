/*
 * admin_int.h - weft-admin's process context and the functions its three
 * files share (admin.c: socket loop; admin_cmd.c: commands; admin_state.c:
 * persisted state). Internal to admin/: no other directory includes it.
 */
#ifndef WF_ADMIN_INT_H
#define WF_ADMIN_INT_H

#include <stdint.h>
#include <sys/types.h>

#include "lib/resp.h"
#include "lib/snapshot.h"
#include "lib/util.h"
#include "shm/shm.h"

struct wf_exp_set;

#define WF_ADMIN_MAX_CLIENTS 256
#define WF_ADMIN_MAX_INPUT (1u << 20) /* unparsed bytes per client */

struct wf_admin_client {
	int fd;              /* -1 = free slot */
	uint64_t id;         /* unique per connection, for pending replies */
	struct wf_buf in;    /* received, not yet parsed */
	struct wf_buf out;   /* replies not yet written */
	int waiting;         /* a SNAPSHOT reply is pending: parse nothing more */
	int close_after;     /* close once out is flushed (protocol error) */
};

/* A SNAPSHOT LOAD / ROLLBACK waiting for the rankers (one at a time). */
struct wf_admin_pending {
	int active;
	int rollback;                  /* 1 = SNAPSHOT ROLLBACK */
	uint64_t client_id;            /* who gets the reply (0 = gone) */
	uint64_t gen;                  /* generation every shard must load */
	uint64_t start_ns, deadline_ns;
	struct wf_snap_ref old_cur, old_prev; /* restored on failure */
	struct wf_snap *old_cur_snap, *old_prev_snap;
	char old_src[2][WF_PATH_MAX];  /* the operator's files behind them */
};

/* One per weft-admin process; passed first to every function. */
struct wf_admin_ctx {
	const char *dir;            /* sockets */
	const char *state_dir;      /* weights.ini, snapshot.state (default dir) */
	const char *shm_name;
	uint32_t nshards;
	const char *snapshot_arg;   /* --snapshot */
	char sock_path[WF_PATH_MAX];
	uint64_t load_timeout_ms;
	const char *admin_group;    /* --admin-group: socket group, allowed peers */
	gid_t admin_gid;            /* resolved admin_group, or our egid */
	pid_t supervisor;           /* --supervisor: the weftctl up that started us, or 0 */
	uint64_t accept_resume_ns;  /* listener not polled until then (out of descriptors); 0: polled */
	struct wf_ratelimit accept_warns; /* refused/failed accepts (accept_warn()) */

	struct wf_shm *shm;
	int created;                /* 1 if this process created the segment */

	/* Open snapshots of the current and previous generation (or NULL),
	 * kept mapped for SNAPSHOT STATUS. */
	struct wf_snap *cur_snap, *prev_snap;
	/* The operator's file each was copied from (admin_snapfile.c), for
	 * display and `weftctl up`; "" if unknown. [0] current, [1] previous. */
	char src[2][WF_PATH_MAX];
	char serving_dir[WF_PATH_MAX]; /* absolute STATE/serving, "" until ready */

	int lock_fd;                /* SOCK.lock, held while we run (dirlock.h) */
	int listen_fd;
	int signal_fd;
	int exiting;                /* SHUTDOWN or signal: flush and leave */
	uint64_t exit_deadline_ns;
	uint64_t next_client_id;
	struct wf_admin_client clients[WF_ADMIN_MAX_CLIENTS];
	struct wf_admin_pending pending;

	struct wf_resp_req *req;    /* parse scratch (large: heap) */
	struct wf_exp_set *exps;    /* experiment definitions (admin_exp.c), heap */
};

/* admin_cmd.c */

/* Execute one request from client c, appending the reply to c->out (or
 * starting a pending SNAPSHOT reply). Returns 0 or -ENOMEM. */
int wf_admin_dispatch(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_req *req);

/* Check the pending SNAPSHOT operation: completes it (reply queued to its
 * client, if still connected) when every shard loaded its generation, one
 * failed, or the deadline passed. Called on every loop tick. */
void wf_admin_pending_check(struct wf_admin_ctx *ctx);

/* Load path as the new current generation without waiting (startup
 * --snapshot). err gets a human message on failure. 0 or -errno. */
int wf_admin_snapshot_install(struct wf_admin_ctx *ctx, const char *path, uint64_t *ret_gen, char *err,
			      size_t errlen);

/* Find a client by id (NULL if it disconnected). admin.c. */
struct wf_admin_client *wf_admin_client_find(struct wf_admin_ctx *ctx, uint64_t id);

/* admin_seg.c */

/* SEGMENT DEFINE name rule | DROP name | LIST | PREVIEW rule: the reply
 * appended to c->out. 0 or -ENOMEM. */
int wf_admin_seg_cmd(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_req *req);
/* At start: the state directory's segments.conf back into --dir (where
 * the rankers read it), when they differ. Logs a failure. */
void wf_admin_seg_restore(struct wf_admin_ctx *ctx);

/* admin_exp.c: EXPERIMENT commands (issue 17) */

/* Load STATE/experiments.conf (refusing one it cannot parse) and, when
 * STATE is not DIR, write the rankers' copy. 0 or -errno. */
int wf_admin_exp_init(struct wf_admin_ctx *ctx);
void wf_admin_exp_fini(struct wf_admin_ctx *ctx);
/* EXPERIMENT's subcommand a[0] and its arguments (n of them). 0 or -ENOMEM. */
int wf_admin_exp_dispatch(struct wf_admin_ctx *ctx, struct wf_admin_client *c, const struct wf_resp_arg *a,
			  uint32_t n);

/* admin_snapfile.c */

/* Create STATE/serving and remove the copies no generation refers to
 * (call after the refs are restored). 0 or -errno. */
int wf_admin_snapfile_init(struct wf_admin_ctx *ctx);
/* Copy src (absolute) into STATE/serving as generation max(its header's,
 * min_gen), read-only, and open the copy: *ret_snap, *ret_gen. Refuses
 * anything but a regular file without blocking. -errno with err filled. */
int wf_admin_snapfile_adopt(struct wf_admin_ctx *ctx, const char *src, uint64_t min_gen, struct wf_snap **ret_snap,
			    uint64_t *ret_gen, char *err, size_t errlen);
/* Unlink path if it is one of our copies (its generation fell off). */
void wf_admin_snapfile_drop(struct wf_admin_ctx *ctx, const char *path);

/* admin_state.c */

/* DIR/weights.ini: write every page x visitor pair from the control block. */
int wf_admin_weights_save(struct wf_admin_ctx *ctx);
/* Read DIR/weights.ini into the control block; absent file = 0 (defaults
 * stay). Bad lines are logged and skipped. Returns pairs applied or -errno. */
int wf_admin_weights_load(struct wf_admin_ctx *ctx);
/* DIR/snapshot.state: current and previous refs and the next generation. */
int wf_admin_snapstate_save(struct wf_admin_ctx *ctx);
/* Restore refs from DIR/snapshot.state into the control block (segment new
 * only). Absent file = 0. */
int wf_admin_snapstate_load(struct wf_admin_ctx *ctx);
/* Remove weights.ini.tmp.* and snapshot.state.tmp.* from the state dir: a
 * weft-admin killed between writing and renaming left them (we hold the
 * lock, so no other weft-admin is writing one). */
void wf_admin_state_sweep(struct wf_admin_ctx *ctx);

#endif
