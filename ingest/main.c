/*
 * main.c - weft-ingest: the one process that owns client connections.
 *
 * One thread, one io_uring (loop.c): multishot accept; multishot receive
 * into a provided buffer ring; parse RESP2/inline and validate (cmd.c);
 * journal EVENTs with group commit (commit.c); route each request to its
 * session's shard through the shard's request ring and take the replies
 * from the reply rings (shard.c); send replies back in request order per
 * connection, EVENTs only once durable (conn.c). Backpressure: a
 * connection whose shard ring is full, or that owes too many replies, is
 * not read until it drains. This file: arguments and start-up.
 *
 *   weft-ingest --dir DIR --shm NAME [--socket PATH] [--max-clients N]
 *               [--idle-timeout S] [--request-timeout S] [--socket-mode MODE]
 *               [--journal DIR] [--durability fsync|os] [--socket-group G]
 *               [--pubsub-limit HARD[,SOFT,SECONDS]] [--triggers-recent N]
 *               [--kafka-partitions L --kafka-peers "L=ADDR ..."]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "shm/front.h"

static int setup_buffers(struct ingest_ctx *ctx)
{
	struct io_uring_buf_reg reg = { 0 };
	size_t ring_bytes = INGEST_BUF_COUNT * sizeof(struct io_uring_buf);
	int r;

	ctx->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	ctx->bufs = malloc((size_t)INGEST_BUF_COUNT * INGEST_BUF_SIZE);
	if (ctx->br == MAP_FAILED || !ctx->bufs)
		return -ENOMEM;
	reg.ring_addr = (uint64_t)(uintptr_t)ctx->br;
	reg.ring_entries = INGEST_BUF_COUNT;
	reg.bgid = INGEST_BGID;
	r = io_uring_register_buf_ring(&ctx->ring, &reg, 0);
	if (r < 0)
		return r;
	io_uring_buf_ring_init(ctx->br);
	for (uint32_t i = 0; i < INGEST_BUF_COUNT; i++)
		io_uring_buf_ring_add(ctx->br, ctx->bufs + (size_t)i * INGEST_BUF_SIZE, INGEST_BUF_SIZE, (uint16_t)i,
				      io_uring_buf_ring_mask(INGEST_BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(ctx->br, INGEST_BUF_COUNT);
	return 0;
}

static int open_listener(struct ingest_ctx *ctx)
{
	int n = sd_listen_fds(0), r;
	unsigned int gid = 0;

	if (n > 0) {
		ctx->listen_fd = SD_LISTEN_FDS_START;
		return 0;
	}
	if (ctx->socket_group && wf_group_gid(ctx->socket_group, &gid) < 0) {
		wf_err("client socket group '%s' does not exist: create it (groupadd %s) or pass another "
		       "--socket-group", ctx->socket_group, ctx->socket_group);
		return -ENOENT;
	}
	r = wf_unix_listen(ctx->sock_path, 4096, ctx->socket_mode,
			   ctx->socket_group ? (int64_t)gid : -1, 0, &ctx->listen_fd);
	if (r < 0)
		wf_err("cannot listen on %s: %s", ctx->sock_path, strerror(-r));
	return r;
}

/* The rankers wake a sleeping ingest with a futex on ctl->ingest_wait
 * (shm/wait.h), which ingest waits for in its ring (IORING_OP_FUTEX_WAIT,
 * Linux 6.7): nothing outside the segment, so no other local user can
 * take it. (It was an abstract socket, "weft-bell.<segment>", which any
 * user could bind first to keep ingest from starting.) Without it (or
 * with WEFT_INGEST_FUTEX=0 in the environment, to test that path) ingest
 * sleeps on its signalfd's read in the ring and the rankers send it
 * WF_WAIT_WAKE_SIGNAL: only its own user (or root) can signal it. */
static void probe_futex(struct ingest_ctx *ctx)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(&ctx->ring);
	const char *force = getenv("WEFT_INGEST_FUTEX");

	ctx->futex_ok = p && io_uring_opcode_supported(p, INGEST_IORING_OP_FUTEX_WAIT);
	if (p)
		io_uring_free_probe(p);
	if (force && !strcmp(force, "0")) {
		ctx->futex_ok = 0;
		wf_info("WEFT_INGEST_FUTEX=0: the rankers wake ingest by a signal (SIGUSR1)");
	} else if (!ctx->futex_ok) {
		wf_warn("this kernel's io_uring cannot wait on a futex (Linux 6.7+): the rankers wake ingest by a "
			"signal (SIGUSR1) instead");
	}
}

/* Sessions pinned before a restart stay pinned: the journal says where
 * each one went. And the segment transitions it holds are known (none is
 * announced twice) and kept for TRIGGERS. */
static void rebuild_routes(struct ingest_ctx *ctx)
{
	struct wf_journal_reader *r;
	struct wf_journal_rec *rec = malloc(sizeof(*rec));
	uint64_t since = wf_wall_ms() - ctx->route_ttl_ms, n = 0;

	if (!rec || wf_journal_reader_open(ctx->journal_dir, 0, &r) < 0) {
		free(rec);
		return;
	}
	while (wf_journal_reader_next(r, rec) == 1) {
		if (rec->kind == WF_JREC_EVENT && rec->ts_ms >= since && rec->argc > 0) {
			wf_route_pin(&ctx->route, rec->argv[0], rec->argl[0], rec->shard, rec->ts_ms);
			n++;
		}
		/* The same pass: transitions announced before (notes.c). */
		ingest_notes_recover(ctx, rec);
	}
	wf_journal_reader_close(r);
	free(rec);
	if (n)
		wf_info("routing rebuilt from %llu journal events", (unsigned long long)n);
}

static void usage(FILE *f)
{
	fputs("usage: weft-ingest --dir DIR --shm NAME [--socket PATH] [--max-clients N]\n"
	      "                   [--journal DIR] [--durability fsync|os] [--journal-flights N]\n"
	      "                   [--sessions N] [--socket-group G] [--socket-mode MODE]\n"
	      "                   [--idle-timeout S] [--request-timeout S]\n"
	      "                   [--kafka-partitions L --kafka-peers \"L=ADDR ...\"]\n"
	      "  --socket PATH     client socket (default DIR/weft.sock; systemd socket activation wins)\n"
	      "  --journal DIR     event journal (default DIR/journal)\n"
	      "  --durability M    fsync: acknowledge after fdatasync (default); os: after write()\n"
	      "  --journal-flights N  journal flushes (fdatasyncs) in flight at once, 1..16 (default 4)\n"
	      "  --sessions N      sessions the routing table holds per half TTL, 1024..268435456\n"
	      "                    (default 4194304: 2 x 192 MiB, resident from the start; past it\n"
	      "                    the oldest half is forgotten early)\n"
	      "  --socket-group G  give the socket to group G (its members may connect)\n"
	      "  --socket-mode M   the socket's mode, octal (default 0660: owner and group only;\n"
	      "                    0666 lets every local user connect)\n"
	      "  --idle-timeout S  close a connection idle S seconds, nothing owed (default 300; 0: never)\n"
	      "  --request-timeout S  close a connection whose request stays unfinished S seconds\n"
	      "                    (default 10; 0: never)\n"
	      "  --pubsub-limit HARD[,SOFT,SECONDS]  a subscriber holding HARD bytes unsent, or over\n"
	      "                    SOFT for SECONDS, is disconnected (default 33554432,8388608,60,\n"
	      "                    Redis's client-output-buffer-limit pubsub)\n"
	      "  --triggers-recent N  the last N segment transitions (at most 32 MiB of them) are\n"
	      "                    kept in memory for TRIGGERS; older ones are read from the journal\n"
	      "                    (default 131072)\n"
	      "  --kafka-partitions L  this box owns Kafka partitions L (\"0,1\", \"0-1\"; default\n"
	      "                    $WEFT_KAFKA_PARTITIONS)\n"
	      "  --kafka-peers \"L=ADDR ...\"  the box owning each other partition (a socket path or\n"
	      "                    host:port; default $WEFT_KAFKA_PEERS): with both, a command for a\n"
	      "                    shopper of another box gets -MOVED <partition> <ADDR>\n",
	      f);
}

static int parse_args(struct ingest_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },        { "shm", required_argument, NULL, 'm' },
		{ "socket", required_argument, NULL, 's' },     { "max-clients", required_argument, NULL, 'c' },
		{ "journal", required_argument, NULL, 'j' },    { "durability", required_argument, NULL, 'D' },
		{ "socket-group", required_argument, NULL, 'g' }, { "journal-flights", required_argument, NULL, 'F' },
		{ "sessions", required_argument, NULL, 'S' },   { "help", no_argument, NULL, 'h' },
		{ "socket-mode", required_argument, NULL, 'M' }, { "idle-timeout", required_argument, NULL, 'I' },
		{ "request-timeout", required_argument, NULL, 'R' },
		{ "pubsub-limit", required_argument, NULL, 'P' },
		{ "triggers-recent", required_argument, NULL, 'T' },
		{ "kafka-partitions", required_argument, NULL, 'K' }, { "kafka-peers", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	const char *own = getenv("WEFT_KAFKA_PARTITIONS"), *peers = getenv("WEFT_KAFKA_PEERS"); /* the config file */
	char why[256];
	int o, e;
	int64_t v;

	ctx->max_clients = 10000;
	ctx->socket_mode = 0660;
	ctx->idle_ns = INGEST_IDLE_TIMEOUT_S * 1000000000ull;
	ctx->request_ns = INGEST_REQUEST_TIMEOUT_S * 1000000000ull;
	ctx->route_ttl_ms = 3600 * 1000ull;
	ctx->route_sessions = 1u << 22;
	ctx->pubsub_limit[0] = 32u << 20;
	ctx->pubsub_limit[1] = 8u << 20;
	ctx->pubsub_limit[2] = 60;
	ctx->triggers_recent = 131072;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': ctx->dir = optarg; break;
		case 'm': ctx->shm_name = optarg; break;
		case 's': ctx->sock_path = optarg; break;
		case 'j': ctx->journal_dir = optarg; break;
		case 'g': ctx->socket_group = optarg; break;
		case 'c':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 1 || v > 1000000) {
				fprintf(stderr, "weft-ingest: --max-clients wants 1..1000000\n");
				return -EINVAL;
			}
			ctx->max_clients = (uint32_t)v;
			break;
		case 'M': {
			char *end;
			unsigned long m = strtoul(optarg, &end, 8);
			if (!*optarg || *end || m > 0777 || (m & 0600) != 0600) {
				fprintf(stderr, "weft-ingest: --socket-mode wants an octal mode with owner rw, "
						"0600..0777 (e.g. 0660)\n");
				return -EINVAL;
			}
			ctx->socket_mode = (uint32_t)m;
			break;
		}
		case 'I':
		case 'R':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 0 || v > 86400 * 365) {
				fprintf(stderr, "weft-ingest: --%s wants seconds, 0 (never) .. 31536000\n",
					o == 'I' ? "idle-timeout" : "request-timeout");
				return -EINVAL;
			}
			*(o == 'I' ? &ctx->idle_ns : &ctx->request_ns) = (uint64_t)v * 1000000000ull;
			break;
		case 'S':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 1024 || v > (1ll << 28)) {
				fprintf(stderr, "weft-ingest: --sessions wants 1024..268435456\n");
				return -EINVAL;
			}
			ctx->route_sessions = (uint32_t)v;
			break;
		case 'F':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 1 || v > WF_JOURNAL_FLIGHTS_MAX) {
				fprintf(stderr, "weft-ingest: --journal-flights wants 1..%u\n", WF_JOURNAL_FLIGHTS_MAX);
				return -EINVAL;
			}
			ctx->gc.flights = (uint32_t)v;
			break;
		case 'D':
			if (strcmp(optarg, "fsync") == 0)
				ctx->durability = WF_JOURNAL_FSYNC;
			else if (strcmp(optarg, "os") == 0)
				ctx->durability = WF_JOURNAL_OS;
			else {
				fprintf(stderr, "weft-ingest: --durability is fsync or os\n");
				return -EINVAL;
			}
			break;
		case 'P': {
			uint64_t l[3] = { 0, 0, 0 };
			int k = sscanf(optarg, "%" SCNu64 ",%" SCNu64 ",%" SCNu64, &l[0], &l[1], &l[2]);
			if ((k != 1 && k != 3) || l[0] < 1024 || (k == 3 && (l[1] > l[0] || l[2] > 86400))) {
				fprintf(stderr, "weft-ingest: --pubsub-limit wants HARD[,SOFT,SECONDS]: bytes >= 1024, "
						"SOFT <= HARD, SECONDS <= 86400\n");
				return -EINVAL;
			}
			ctx->pubsub_limit[0] = l[0];
			ctx->pubsub_limit[1] = k == 3 ? l[1] : l[0];
			ctx->pubsub_limit[2] = k == 3 ? l[2] : 0;
			break;
		}
		case 'T':
			if (wf_parse_i64(optarg, strlen(optarg), &v) < 0 || v < 16 || v > (1 << 24)) {
				fprintf(stderr, "weft-ingest: --triggers-recent wants 16..16777216\n");
				return -EINVAL;
			}
			ctx->triggers_recent = (uint32_t)v;
			break;
		case 'K': own = optarg; break;
		case 'k': peers = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (!ctx->dir || !ctx->shm_name || optind != argc) {
		fprintf(stderr, "weft-ingest: --dir and --shm are required\n");
		usage(stderr);
		return -EINVAL;
	}
	if ((e = wf_part_map_parse(&ctx->part, own, peers, why, sizeof(why))) < 0) {
		fprintf(stderr, "weft-ingest: --kafka-partitions/--kafka-peers: %s\n",
			e == -ENOMEM ? "out of memory" : why);
		return e;
	}
	if (!ctx->sock_path) {
		snprintf(ctx->sock_buf, sizeof(ctx->sock_buf), "%s/weft.sock", ctx->dir);
		ctx->sock_path = ctx->sock_buf;
	}
	if (!ctx->journal_dir) {
		snprintf(ctx->journal_buf, sizeof(ctx->journal_buf), "%s/journal", ctx->dir);
		ctx->journal_dir = ctx->journal_buf;
	}
	return 0;
}

/* 1 if pid is a live weft-ingest other than us (not a zombie, not a
 * process that took a dead one's pid). */
static int other_ingest(uint32_t pid)
{
	char path[64], stat[128] = "", state = 0;
	FILE *f;

	if (!pid || pid == (uint32_t)getpid() || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
		return 0;
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return 1; /* alive, not ours to look at: take it for one */
	if (!fgets(stat, sizeof(stat), f))
		stat[0] = '\0';
	fclose(f);
	/* "pid (comm) S ...": comm first, then the state */
	if (strstr(stat, ") ") && strstr(stat, ") ")[2])
		state = strstr(stat, ") ")[2];
	return strstr(stat, " (weft-ingest) ") != NULL && state != 'Z' && state != 'X';
}

/* One weft-ingest per segment (the rings have one producer): take
 * ctl->ingest_pid unless a live weft-ingest holds it. (The doorbell's
 * abstract socket used to be this lock.) 0 or -EBUSY (logged). */
static int claim_segment(struct ingest_ctx *ctx)
{
	_Atomic uint32_t *owner = &ctx->shm->ctl->ingest_pid;
	/* relaxed: the CAS below decides; this only names the holder */
	uint32_t cur = atomic_load_explicit(owner, memory_order_relaxed);

	for (;;) {
		if (other_ingest(cur)) {
			wf_err("another weft-ingest (pid %u) serves segment %s: stop it first", cur, ctx->shm_name);
			return -EBUSY;
		}
		/* R9/A9: pairs with this same CAS in another weft-ingest
		 * starting on the segment: one of the two sees the other's pid. */
		if (atomic_compare_exchange_weak_explicit(owner, &cur, (uint32_t)getpid(), memory_order_acq_rel,
							  memory_order_relaxed))
			return 0;
	}
}

/* One descriptor a client, and a few of our own (journal segments,
 * pidfds, the ring): the soft open-file limit raised as far as the hard
 * one allows (a shell's 1024 would refuse clients long before
 * --max-clients), and a warning when that is still short. */
#define INGEST_OWN_FDS 64u

static void raise_fd_limit(const struct ingest_ctx *ctx)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)ctx->max_clients + INGEST_OWN_FDS;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	if (rl.rlim_cur > was && setrlimit(RLIMIT_NOFILE, &rl) < 0)
		rl.rlim_cur = was;
	if (rl.rlim_cur < want)
		wf_warn("the open-file limit is %llu (hard limit %llu): at most about %llu clients at once, not "
			"--max-clients %u; raise it (LimitNOFILE=, ulimit -Hn) or lower --max-clients",
			(unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
			(unsigned long long)(rl.rlim_cur > INGEST_OWN_FDS ? rl.rlim_cur - INGEST_OWN_FDS : 0),
			ctx->max_clients);
}

/* The segment (waiting up to 10 s for weft-admin to create it), the
 * shards' rings and front tables, the connection tables, the route
 * table and the journal. 0, or 1 (logged). */
static int setup_state(struct ingest_ctx *ctx)
{
	struct wf_journal_opts jo = { 0 };
	char err[512];
	int r;

	for (int i = 0; i < 200 && (r = wf_shm_attach(ctx->shm_name, &ctx->shm)) == -ENOENT; i++)
		usleep(50000);
	if (r < 0) {
		wf_err("cannot attach shared segment %s: %s (is weft-admin running?)", ctx->shm_name, strerror(-r));
		return 1;
	}
	if (claim_segment(ctx) < 0)
		return 1;
	ctx->nshards = wf_shm_nshards(ctx->shm);
	/* relaxed: the epoch only has to differ from the previous ingest's;
	 * rankers copy it from requests, never read it here. */
	ctx->epoch = atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_epoch, 1, memory_order_relaxed) + 1;
	ctx->shards = calloc(ctx->nshards, sizeof(*ctx->shards));
	ctx->req = malloc(sizeof(*ctx->req));
	ctx->nconns_cap = ctx->max_clients;
	raise_fd_limit(ctx);
	ctx->conns = calloc(ctx->nconns_cap, sizeof(*ctx->conns));
	ctx->free_idx = malloc(ctx->nconns_cap * sizeof(*ctx->free_idx));
	ctx->dirty = malloc(ctx->nconns_cap * sizeof(*ctx->dirty));
	if (!ctx->shards || !ctx->req || !ctx->conns || !ctx->free_idx || !ctx->dirty) {
		wf_err("out of memory at start");
		return 1;
	}
	for (uint32_t i = 0; i < ctx->nconns_cap; i++)
		ctx->free_idx[ctx->nfree++] = ctx->nconns_cap - 1 - i;
	for (uint32_t s = 0; s < ctx->nshards; s++) {
		struct ingest_shard *sh = &ctx->shards[s];
		sh->sc = wf_shm_shard(ctx->shm, s);
		sh->front = wf_shm_front(ctx->shm, s);
		if ((r = wf_front_prefault(sh->front, 0)) < 0 && r != -EINVAL) {
			wf_err("shard %u's front table (%zu MiB of shared memory) cannot be allocated: %s; /dev/shm is "
			       "probably full (df -h /dev/shm): free space there or give it more, then start again",
			       s, sizeof(*sh->front) >> 20, strerror(-r));
			return 1;
		}
		wf_ring_prod_attach(&sh->req, wf_shm_req_ring(ctx->shm, s));
		wf_ring_cons_attach(&sh->rep, wf_shm_rep_ring(ctx->shm, s));
		sh->fifo_cap = 1u << 17;
		sh->fifo = malloc(sh->fifo_cap * sizeof(*sh->fifo));
		if (!sh->fifo) {
			wf_err("out of memory at start");
			return 1;
		}
	}
	if (wf_route_init(&ctx->route, ctx->nshards, ctx->route_sessions, ctx->route_ttl_ms, wf_wall_ms()) < 0) {
		wf_err("out of memory for the session table (--sessions %u: try fewer)", ctx->route_sessions);
		return 1;
	}
	jo.durability = ctx->durability;
	jo.flights = ctx->gc.flights;
	r = wf_journal_open(ctx->journal_dir, &jo, &ctx->journal, err, sizeof(err));
	if (r < 0) {
		wf_err("%s", err);
		return 1;
	}
	/* R14: the rankers apply what the journal held before this ingest
	 * (durable, maybe never sent by the one before) up to its first LSN;
	 * published before anything is committed to a ring. */
	atomic_store_explicit(&ctx->shm->ctl->ingest_start_lsn, wf_journal_next_lsn(ctx->journal), memory_order_relaxed);
	atomic_store_explicit(&ctx->shm->ctl->ingest_started, ctx->epoch, memory_order_release);
	if (ingest_notes_init(ctx) < 0 ||
	    ingest_pubsub_init(ctx, ctx->pubsub_limit[0], ctx->pubsub_limit[1], (uint32_t)ctx->pubsub_limit[2]) < 0) {
		wf_err("out of memory at start (segment notes)");
		return 1;
	}
	rebuild_routes(ctx);
	return 0;
}

/* Signals by signalfd, the ring, its receive buffers, the doorbell and
 * the client socket. 0, or 1 (logged). */
static int setup_io(struct ingest_ctx *ctx)
{
	struct io_uring_params p = { 0 };
	sigset_t set;
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, WF_WAIT_WAKE_SIGNAL); /* a ranker's wake-up (shm/wait.h, WF_WAIT_SIGNAL) */
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file-size limit (LimitFSIZE=) makes journal writes fail with
	 * EFBIG, handled as a full disk, instead of killing us. */
	signal(SIGXFSZ, SIG_IGN);
	ctx->signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
	r = io_uring_queue_init_params(4096, &ctx->ring, &p);
	if (r < 0) {
		p.flags = 0;
		r = io_uring_queue_init_params(4096, &ctx->ring, &p);
	}
	if (r < 0) {
		wf_err("io_uring_queue_init() failed: %s (is io_uring disabled? see /proc/sys/kernel/io_uring_disabled)",
		       strerror(-r));
		return 1;
	}
	r = setup_buffers(ctx);
	if (r < 0) {
		wf_err("cannot register the receive buffer ring: %s (kernel >= 5.19 needed)", strerror(-r));
		return 1;
	}
	probe_futex(ctx);
	if (ctx->signal_fd < 0 || open_listener(ctx) < 0)
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct ingest_ctx *ctx = calloc(1, sizeof(*ctx));

	wf_log_init("weft-ingest");
	if (!ctx) {
		wf_err("out of memory at start");
		return 1;
	}
	if (parse_args(ctx, argc, argv) < 0)
		return 2;
	ctx->start_ms = wf_wall_ms();
	if (setup_state(ctx) || setup_io(ctx))
		return 1;
	/* R10: pairs with A10 in weftctl up (admin/weftctl_up.c), which waits
	 * for the appliance to be ready. */
	atomic_store_explicit(&ctx->shm->ctl->ingest_ready, 1, memory_order_release);
	sd_notify(0, "READY=1");
	wf_info("serving clients on %s (%u shards, journal %s, durability %s)", ctx->sock_path, ctx->nshards,
		ctx->journal_dir, ctx->durability == WF_JOURNAL_FSYNC ? "fsync" : "os");
	ingest_run(ctx);
	/* R10, as above: not ready any more. */
	atomic_store_explicit(&ctx->shm->ctl->ingest_ready, 0, memory_order_release);
	if (!ctx->gc.failed && wf_journal_flush_sync(ctx->journal) == 0) {
		/* What was appended is durable now: the rankers may have it. */
		ingest_held_release(ctx, wf_journal_durable_lsn(ctx->journal), 0);
		ingest_shards_commit(ctx);
		ingest_wake_rankers(ctx);
	}
	wf_journal_close(ctx->journal);
	wf_info("RECS answered from the front tables: %llu", (unsigned long long)ctx->recs_front);
	if (ctx->gc.flushes)
		wf_info("journal: %llu flushes, %.1f events per group, %.0f us per flush (smoothed)",
			(unsigned long long)ctx->gc.flushes, (double)ctx->gc.flushed_events / (double)ctx->gc.flushes,
			ctx->gc.flush_ns / 1e3);
	io_uring_queue_exit(&ctx->ring);
	free(ctx->gc.jwait);
	ingest_notes_fini(ctx);
	ingest_pubsub_fini(ctx);
	wf_info("stopped");
	return 0;
}
