/*
 * weftctl.c - the weft admin CLI: argument parsing and the admin-socket
 * subcommands (hiredis over DIR/admin.sock). `weftctl up` lives in
 * weftctl_up.c, output formatting in weftctl_render.c.
 * Program: weftctl (links libweft, hiredis).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "admin/weftctl_int.h"
#include "lib/part.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: weftctl [--dir DIR] [--json] COMMAND\n"
		"\n"
		"commands (talk to weft-admin over DIR/admin.sock):\n"
		"  status                              is weft up? ingest, rankers, snapshot\n"
		"  stats                               counters of ingest and every ranker\n"
		"  snapshot load FILE                  validate FILE, make it current, wait for the rankers\n"
		"  snapshot rollback                   go back to the previous generation\n"
		"  snapshot diff A B                   what changed between two snapshot files\n"
		"  stock load FILE                     inventory CSV (item_id,size,qty) into the live stock table\n"
		"  export --channel email [--k K] [--out FILE] [--snapshot FILE]\n"
		"                                      every user's top K batch items as CSV, stock-filtered\n"
		"  snapshot status                     current/previous generation, per-ranker state\n"
		"  weights get                         batch/session weights per page x visitor\n"
		"  weights set PAGE VISITOR BATCH SESSION\n"
		"                                      PAGE: home pdp cart search category email;\n"
		"                                      VISITOR: returning new; numbers in [0, 10]\n"
		"  segment define NAME RULE            define (or redefine) a real-time segment, live\n"
		"  segment drop NAME                   drop it (docs/SEGMENTS.md: the rule language)\n"
		"  segment list                        the live definitions\n"
		"  segment preview RULE                how many shoppers match RULE now, and a sample\n"
		"  shutdown                            stop every weft process\n"
		"  metrics                             Prometheus text exposition of every weft metric\n"
		"  experiment create|start|stop|list|status|report ...\n"
		"                                      A/B experiments (weftctl experiment --help)\n"
		"  top [--once]                        live view, refreshed each second (q quits);\n"
		"                                      --once prints one frame\n"
		"  latency [--plot FILE.png]           every latency histogram (per command, event-to-visible,\n"
		"                                      journal flush, run-queue wait): a table, or a picture\n"
		"\n"
		"  up [--shards N] [--snapshot FILE] [--durability fsync|os] [--sessions N]\n"
		"     [--memory-budget BYTES] [--idle-timeout S] [--request-timeout S] [--socket-mode MODE]\n"
		"     [--metrics-file PATH] [--no-bpf] [--foreground-log] [--pubsub-limit HARD[,SOFT,S]]\n"
		"     [--session-ttl S] [--spill-budget BYTES] [--checkpoint-interval S]\n"
		"     [--kafka-brokers H:P --kafka-topic T [--kafka-group G] [--kafka-partitions L\n"
		"      [--kafka-peers \"L=ADDR ...\"]] [--kafka-out-topic T]]\n"
		"                                      run the whole appliance in the foreground\n"
		"                                      (no systemd); Ctrl-C stops it\n"
		"\n"
		"options:\n"
		"  --dir DIR         runtime directory (default %s)\n"
		"  --json            one JSON object on stdout, for scripts\n"
		"  --shards N        (up) number of rankers (default: one per core weftctl may use)\n"
		"  --snapshot FILE   (up) snapshot to serve\n"
		"  --durability M    (up) fsync: EVENT acknowledged after fdatasync (default); os: after write()\n"
		"  --sessions N      (up) sessions weft-ingest's routing table holds per half TTL\n"
		"                    (default 4194304, 384 MiB; a small store needs far fewer)\n"
		"  --memory-budget B (up) per ranker: its sessions and snapshot lists (suffix K, M or G;\n"
		"                    default 2G, at least 4M); past it the least recently active\n"
		"                    sessions are forgotten (to the spill store)\n"
		"  --session-ttl S   (up) each ranker forgets a session idle this long (default 1800,\n"
		"                    at most 3600)\n"
		"  --spill-budget B  (up) per ranker: disk for evicted sessions under DIR/rankers\n"
		"                    (default 1G; 0: an evicted session is lost)\n"
		"  --checkpoint-interval S  (up) each ranker checkpoints its sessions this often\n"
		"                    (default 300; 0: never, a restart replays the journal)\n"
		"  --idle-timeout S, --request-timeout S, --socket-mode M\n"
		"                    (up) weft-ingest's: close idle clients (default 300 s), unfinished\n"
		"                    requests (10 s; 0: never); weft.sock's mode (default 0660)\n"
		"  --pubsub-limit L  (up) weft-ingest's: a subscriber with HARD bytes unsent, or over SOFT\n"
		"                    for S seconds, is disconnected (default 33554432,8388608,60)\n"
		"  --metrics-file P  (up) weft-observe writes `weftctl metrics` to P every 2 s\n"
		"                    (atomically; for node_exporter's textfile collector)\n"
		"  --no-bpf          (up) weft-observe loads no BPF program (schedstat only)\n"
		"  --foreground-log  (up) debug-level logs from every process\n"
		"  --kafka-brokers H:P, --kafka-topic T, --kafka-group G\n"
		"                    (up) also run weft-kafka: events from topic T (group G, default weft)\n"
		"  --kafka-partitions L  (up) this box owns only partitions L (\"0,1\"), never rebalanced\n"
		"  --kafka-peers \"L=ADDR ...\"  (up) the box of every other partition (socket path or\n"
		"                    host:port): a command for its shoppers gets -MOVED <partition> <ADDR>\n"
		"  --kafka-out-topic T  (up) weft-kafka produces every segment transition to topic T\n",
		WF_CLI_DEFAULT_DIR);
}

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "weftctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n\n");
	usage(stderr);
	return 2;
}

redisContext *wf_cli_connect(const struct wf_cli_opts *o, int quiet)
{
	char path[PATH_MAX];
	redisContext *c;

	snprintf(path, sizeof(path), "%s/admin.sock", o->dir);
	c = redisConnectUnix(path);
	if (c && !c->err)
		return c;
	if (!quiet) {
		const char *why = c ? c->errstr : "out of memory";

		if (o->json) {
			struct wf_buf b = { 0 };
			char msg[PATH_MAX * 2];

			snprintf(msg, sizeof(msg), "cannot connect to %s: %s - is weft running?", path, why);
			if (wf_buf_printf(&b, "{\"ok\":false,\"error\":") == 0 && wf_cli_json_str(&b, msg, strlen(msg)) == 0)
				printf("%.*s}\n", (int)b.len, b.data);
			wf_buf_fini(&b);
		}
		if (c && c->err == REDIS_ERR_IO && strstr(why, "ermission denied"))
			fprintf(stderr,
				"weftctl: cannot connect to %s: %s — only root, the weft user and the admin "
				"group may administer weft (usermod -aG <admin group> $USER)\n",
				path, why);
		else
			fprintf(stderr,
				"weftctl: cannot connect to %s: %s — is weft running? start it with "
				"`weftctl up --dir %s` or `systemctl start weft.target`\n",
				path, why, o->dir);
	}
	redisFree(c);
	return NULL;
}

/* Print a reply per --json or for a person. Returns the exit code. */
static int show(const struct wf_cli_opts *o, const redisReply *r)
{
	int err = r->type == REDIS_REPLY_ERROR;
	const char *msg = r->str;
	size_t mlen = r->len;

	if (err && mlen >= 4 && strncmp(msg, "ERR ", 4) == 0) {
		/* The RESP error class means nothing to a person. */
		msg += 4;
		mlen -= 4;
	}

	if (o->json) {
		struct wf_buf b = { 0 };
		int rc;

		if (r->type == REDIS_REPLY_STATUS || err) {
			rc = wf_buf_printf(&b, "{\"ok\":%s,\"%s\":", err ? "false" : "true", err ? "error" : "message");
			if (rc == 0)
				rc = wf_cli_json_str(&b, msg, mlen);
			if (rc == 0)
				rc = wf_buf_append(&b, "}", 1);
		} else {
			rc = wf_cli_json(&b, r);
		}
		if (rc == 0)
			printf("%.*s\n", (int)b.len, b.data);
		wf_buf_fini(&b);
		if (rc)
			return 1;
	} else if (err) {
		fprintf(stderr, "weftctl: %.*s\n", (int)mlen, msg);
	} else {
		wf_cli_print(stdout, r, 0);
	}
	return err ? 1 : 0;
}

/*
 * After a failed exchange: what weft-admin said before it closed (a
 * refused client gets "-ERR <why>" and a close, so our write may fail
 * first). Returns 1 if it printed a reason.
 */
static int print_refusal(redisContext *c, const struct wf_cli_opts *o)
{
	char buf[512];
	ssize_t n = recv(c->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	char *eol;

	if (n < 5 || buf[0] != '-')
		return 0;
	buf[n] = '\0';
	eol = strpbrk(buf, "\r\n");
	if (eol)
		*eol = '\0';
	{
		redisReply r = { .type = REDIS_REPLY_ERROR, .str = buf + 1, .len = strlen(buf + 1) };

		show(o, &r);
	}
	return 1;
}

/* Send argv, return the reply (NULL after printing the transport error,
 * or weft-admin's refusal). */
static redisReply *call(redisContext *c, const struct wf_cli_opts *o, int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);

	if (!r && !print_refusal(c, o))
		fprintf(stderr, "weftctl: %s/admin.sock: %s (weft-admin went away?)\n", o->dir,
			c->errstr[0] ? c->errstr : "connection lost");
	return r;
}

static int run_one(const struct wf_cli_opts *o, int argc, const char **argv)
{
	redisContext *c = wf_cli_connect(o, 0);
	redisReply *r;
	int rc;

	if (!c)
		return 1;
	r = call(c, o, argc, argv);
	rc = r ? show(o, r) : 1;
	freeReplyObject(r);
	redisFree(c);
	return rc;
}

/* status: a summary of STATS and SNAPSHOT STATUS. */
static int cmd_status(const struct wf_cli_opts *o)
{
	const char *stats_argv[] = { "STATS" }, *snap_argv[] = { "SNAPSHOT", "STATUS" };
	redisContext *c = wf_cli_connect(o, 0);
	redisReply *st = NULL, *sn = NULL;
	int rc = 1;

	if (!c)
		return 1;
	st = call(c, o, 1, stats_argv);
	if (st && st->type == REDIS_REPLY_ERROR) {
		/* e.g. refused: weft-admin said why and closed. */
		rc = show(o, st);
		goto out;
	}
	if (st)
		sn = call(c, o, 2, snap_argv);
	if (!st || !sn)
		goto out;
	if (st->type == REDIS_REPLY_ERROR || sn->type == REDIS_REPLY_ERROR) {
		rc = show(o, st->type == REDIS_REPLY_ERROR ? st : sn);
		goto out;
	}
	if (o->json) {
		struct wf_buf b = { 0 };

		char obs[512];

		wf_cli_observe_line(o, obs, sizeof(obs));
		if (wf_buf_printf(&b, "{\"running\":true,\"stats\":") == 0 && wf_cli_json(&b, st) == 0 &&
		    wf_buf_printf(&b, ",\"snapshot\":") == 0 && wf_cli_json(&b, sn) == 0 &&
		    wf_buf_printf(&b, ",\"observability\":") == 0 && wf_cli_json_str(&b, obs, strlen(obs)) == 0 &&
		    wf_buf_append(&b, "}", 1) == 0) {
			printf("%.*s\n", (int)b.len, b.data);
			rc = 0;
		}
		wf_buf_fini(&b);
		goto out;
	}
	{
		const redisReply *ing = wf_cli_get(st, "ingest"), *shards = wf_cli_get(st, "shards");
		const redisReply *cur = wf_cli_get(sn, "current");
		long long n = wf_cli_get_int(st, "nshards", 0), ready = 0, alive = 0, gen;
		const redisReply *seg = wf_cli_get(st, "segment");

		gen = wf_cli_get_int(sn, "current_gen", 0);
		for (size_t i = 0; shards && shards->type == REDIS_REPLY_ARRAY && i < shards->elements; i++) {
			ready += wf_cli_get_int(shards->element[i], "ready", 0) != 0;
			alive += wf_cli_get_int(shards->element[i], "alive", 0) != 0;
		}
		printf("weft     running (admin pid %lld, segment %s, %lld shards)\n",
		       wf_cli_get_int(st, "admin_pid", 0), seg && seg->str ? seg->str : "?", n);
		printf("ingest   %s (pid %lld)\n",
		       wf_cli_get_int(ing, "ready", 0) ? "ready"
		       : wf_cli_get_int(ing, "alive", 0) ? "starting"
							 : "not running",
		       wf_cli_get_int(ing, "pid", 0));
		if (wf_cli_get_int(ing, "journal_failed", 0))
			printf("journal  FAILING: %s: EVENTs get errors until it writes again (%lld failures)\n",
			       strerror((int)wf_cli_get_int(ing, "journal_failed", 0)),
			       wf_cli_get_int(ing, "journal_errors", 0));
		if (wf_cli_get_int(ing, "redirects", 0))
			printf("redirects %lld -MOVED replies (shoppers of another box, --kafka-peers)\n",
			       wf_cli_get_int(ing, "redirects", 0));
		printf("rankers  %lld/%lld ready, %lld running\n", ready, n, alive);
		if (gen && cur && cur->type == REDIS_REPLY_ARRAY) {
			const redisReply *p = wf_cli_get(cur, "path");
			long long loaded = 0;

			/* A ranker serves gen only if it runs, reports gen, and
			 * has not reported failing it (a restarted ranker that
			 * could not load it leaves its predecessor's loaded_gen). */
			for (size_t i = 0; shards && shards->type == REDIS_REPLY_ARRAY && i < shards->elements; i++) {
				const redisReply *s = shards->element[i];

				if (!wf_cli_get_int(s, "alive", 0))
					continue;
				if (wf_cli_get_int(s, "failed_gen", 0) == gen) {
					printf("DEGRADED ranker %lld could not load generation %lld: see its log; "
					       "`weftctl snapshot rollback` or load a good file\n",
					       wf_cli_get_int(s, "shard", -1), gen);
					continue;
				}
				loaded += wf_cli_get_int(s, "loaded_gen", 0) == gen;
			}
			printf("snapshot generation %lld (%s), loaded by %lld/%lld rankers\n", gen,
			       p && p->str ? p->str : "?", loaded, n);
		} else {
			printf("snapshot none loaded (weftctl --dir %s snapshot load FILE)\n", o->dir);
		}
		{
			char obs[512];

			wf_cli_observe_line(o, obs, sizeof(obs));
			printf("observability: %s\n", obs);
		}
		wf_cli_kafka_status(o);
		rc = 0;
	}
out:
	freeReplyObject(st);
	freeReplyObject(sn);
	redisFree(c);
	return rc;
}

static int parse_opts(int argc, char **argv, struct wf_cli_opts *o, const char **pos, int *npos)
{
	*npos = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		const char *eq = strchr(a, '=');
		size_t nlen = eq ? (size_t)(eq - a) : strlen(a);

		/* "-2" is a value (weights set ... -2 1: the admin refuses it
		 * with its own message), not an option. */
		if (a[0] != '-' || strcmp(a, "-") == 0 || (a[1] >= '0' && a[1] <= '9') || a[1] == '.') {
			pos[(*npos)++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			while (++i < argc)
				pos[(*npos)++] = argv[i];
			break;
		}
#define OPT(name) (nlen == strlen(name) && strncmp(a, name, nlen) == 0)
		if (OPT("--json") || OPT("--foreground-log") || OPT("--once") || OPT("--no-bpf") || OPT("-h") ||
		    OPT("--help")) {
			if (eq)
				return bad_usage("option %s takes no value", a);
			if (OPT("--json"))
				o->json = 1;
			else if (OPT("--foreground-log"))
				o->foreground_log = 1;
			else if (OPT("--once"))
				o->once = 1;
			else if (OPT("--no-bpf"))
				o->no_bpf = 1;
			else {
				usage(stdout);
				exit(0);
			}
			continue;
		}
		if (!OPT("--dir") && !OPT("--shards") && !OPT("--snapshot") && !OPT("--durability") &&
		    !OPT("--sessions") && !OPT("--memory-budget") && !OPT("--channel") && !OPT("--k") && !OPT("--out") &&
		    !OPT("--idle-timeout") && !OPT("--request-timeout") && !OPT("--socket-mode") && !OPT("--metrics-file") &&
		    !OPT("--plot") && !OPT("--pubsub-limit") && !OPT("--spill-budget") && !OPT("--checkpoint-interval") &&
		    !OPT("--session-ttl") && !OPT("--kafka-brokers") && !OPT("--kafka-topic") && !OPT("--kafka-group") &&
		    !OPT("--kafka-partitions") && !OPT("--kafka-peers") && !OPT("--kafka-out-topic"))
			return bad_usage("unknown option %s", a);
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return bad_usage("option %s needs a value", a);
		if (OPT("--dir")) {
			o->dir = val;
		} else if (OPT("--snapshot")) {
			o->snapshot = val;
		} else if (OPT("--metrics-file")) {
			o->metrics_file = val;
		} else if (OPT("--plot")) {
			o->plot = val;
		} else if (OPT("--channel")) {
			o->channel = val;
		} else if (OPT("--out")) {
			o->out = val;
		} else if (OPT("--k")) {
			char *end;

			errno = 0;
			o->k = strtol(val, &end, 10);
			if (errno || *end || end == val || o->k < 1 || o->k > 1000)
				return bad_usage("--k wants a number in 1..1000, not '%s'", val);
		} else if (OPT("--sessions")) {
			char *end;
			long v;

			errno = 0;
			v = strtol(val, &end, 10);
			if (errno || *end || end == val || v < 1024 || v > (1l << 28))
				return bad_usage("--sessions wants a number in 1024..268435456, not '%s'", val);
			o->sessions = val;
		} else if (OPT("--memory-budget")) {
			uint64_t v;

			if (wf_parse_bytes(val, &v) < 0 || v < (4ull << 20))
				return bad_usage("--memory-budget wants bytes (an optional K, M or G), at least 4M, not '%s'",
						 val);
			o->memory_budget = val; /* weft-ranker parses it with the same wf_parse_bytes */
		} else if (OPT("--spill-budget")) {
			uint64_t v;

			if (strcmp(val, "0") != 0 && (wf_parse_bytes(val, &v) < 0 || v < (1ull << 20)))
				return bad_usage("--spill-budget wants bytes (an optional K, M or G), 0 or at least 1M, not '%s'",
						 val);
			o->spill_budget = val;
		} else if (OPT("--checkpoint-interval") || OPT("--session-ttl")) {
			int ttl = OPT("--session-ttl");
			int64_t v;

			/* A session idle longer than weft-ingest's routing TTL (an hour)
			 * could come back on another shard: the ranker's TTL stays inside it. */
			if (wf_parse_i64(val, strlen(val), &v) < 0 || v < ttl || v > (ttl ? 3600 : 86400 * 7))
				return bad_usage(ttl ? "--session-ttl wants seconds in 1..3600 (weft-ingest routes a session "
						       "to its shard for an hour), not '%s'"
						  : "--checkpoint-interval wants seconds in 0..604800 (0: never), not '%s'",
						 val);
			*(ttl ? &o->session_ttl : &o->checkpoint_interval) = val;
		} else if (OPT("--idle-timeout") || OPT("--request-timeout")) {
			char *end;
			long v;

			errno = 0;
			v = strtol(val, &end, 10);
			if (errno || *end || end == val || v < 0 || v > 31536000)
				return bad_usage("timeouts want seconds in 0..31536000 (0: never), not '%s'", val);
			*(OPT("--idle-timeout") ? &o->idle_timeout : &o->request_timeout) = val;
		} else if (OPT("--kafka-brokers")) {
			o->kafka_brokers = val; /* weft-kafka checks these three */
		} else if (OPT("--kafka-topic")) {
			o->kafka_topic = val;
		} else if (OPT("--kafka-group")) {
			o->kafka_group = val;
		} else if (OPT("--kafka-partitions")) {
			o->kafka_partitions = val;
		} else if (OPT("--kafka-out-topic")) {
			o->kafka_out_topic = val;
		} else if (OPT("--kafka-peers")) {
			o->kafka_peers = val; /* checked below, with --kafka-partitions */
		} else if (OPT("--pubsub-limit")) {
			o->pubsub_limit = val; /* weft-ingest checks it (and refuses to start on a bad one) */
		} else if (OPT("--socket-mode")) {
			char *end;
			unsigned long m = strtoul(val, &end, 8);

			if (*end || end == val || m > 0777 || (m & 0600) != 0600)
				return bad_usage("--socket-mode wants an octal mode in 0600..0777, not '%s'", val);
			o->socket_mode = val;
		} else if (OPT("--durability")) {
			if (strcmp(val, "fsync") != 0 && strcmp(val, "os") != 0)
				return bad_usage("--durability is fsync or os, not '%s'", val);
			o->durability = val;
		} else {
			char *end;

			errno = 0;
			o->shards = strtol(val, &end, 10);
			if (errno || *end || end == val || o->shards < 1 || o->shards > 64)
				return bad_usage("--shards wants a number in 1..64, not '%s'", val);
		}
#undef OPT
	}
	if (!*o->dir)
		return bad_usage("%s--dir must not be empty", "");
	if (!o->kafka_brokers != !o->kafka_topic || ((o->kafka_group || o->kafka_partitions || o->kafka_out_topic) && !o->kafka_brokers))
		return bad_usage("%s--kafka-brokers and --kafka-topic go together (--kafka-group, --kafka-partitions, "
				 "--kafka-out-topic with them)", "");
	if (o->kafka_peers) {
		struct wf_part_map *m = calloc(1, sizeof(*m));
		char why[256] = "out of memory";
		int e = m ? wf_part_map_parse(m, o->kafka_partitions, o->kafka_peers, why, sizeof(why)) : -ENOMEM;

		free(m);
		if (e < 0)
			return bad_usage("--kafka-partitions/--kafka-peers: %s", why);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct wf_cli_opts o = { .dir = WF_CLI_DEFAULT_DIR };
	const char **pos = calloc((size_t)argc + 1, sizeof(char *));
	char abs[PATH_MAX];
	int npos, rc;

	wf_log_init("weftctl");
	/* A refusing weft-admin writes its reason and closes: our write then
	 * fails with EPIPE (and we read the reason) instead of killing us. */
	signal(SIGPIPE, SIG_IGN);
	if (!pos)
		return 1;
	/* `experiment` has options of its own (weftctl_exp.c). */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "experiment") == 0 && (i == 1 || argv[i - 1][0] != '-' || !strcmp(argv[i - 1], "--json"))) {
			rc = wf_cli_experiment(&o, argc, argv);
			goto out;
		}
	rc = parse_opts(argc, argv, &o, pos, &npos);
	if (rc)
		goto out;
	rc = 2;
	if (npos == 0) {
		rc = bad_usage("%sno command given", "");
		goto out;
	}
#define IS(i, s) (npos > (i) && strcasecmp(pos[i], s) == 0)
	if (!IS(0, "up") &&
	    (o.shards || (o.snapshot && !IS(0, "export")) || o.foreground_log || o.metrics_file || o.no_bpf ||
	     o.kafka_brokers)) {
		rc = bad_usage("%s--shards, --snapshot, --metrics-file, --no-bpf, --foreground-log and --kafka-* belong to "
			       "`weftctl up`", "");
		goto out;
	}
	if (IS(0, "up") && npos == 1)
		rc = wf_cli_up(&o);
	else if (IS(0, "status") && npos == 1)
		rc = cmd_status(&o);
	else if (IS(0, "stats") && npos == 1)
		rc = run_one(&o, 1, (const char *[]){ "STATS" });
	else if (IS(0, "shutdown") && npos == 1)
		rc = run_one(&o, 1, (const char *[]){ "SHUTDOWN" });
	else if (IS(0, "top") && npos == 1)
		rc = wf_cli_top(&o, o.once);
	else if (IS(0, "metrics") && npos == 1)
		rc = wf_cli_metrics(&o);
	else if (IS(0, "latency") && npos == 1)
		rc = wf_cli_latency(&o, o.plot);
	else if (IS(0, "ping") && npos == 1)
		rc = run_one(&o, 1, (const char *[]){ "PING" });
	else if (IS(0, "snapshot") && IS(1, "load") && npos == 3) {
		/* weft-admin runs elsewhere: resolve the path here. */
		if (!realpath(pos[2], abs)) {
			fprintf(stderr, "weftctl: snapshot %s: %s\n", pos[2], strerror(errno));
			rc = 1;
			goto out;
		}
		rc = run_one(&o, 3, (const char *[]){ "SNAPSHOT", "LOAD", abs });
	} else if (IS(0, "snapshot") && IS(1, "diff") && npos == 4)
		rc = wf_cli_snapshot_diff(&o, pos[2], pos[3]);
	else if (IS(0, "snapshot") && IS(1, "rollback") && npos == 2)
		rc = run_one(&o, 2, (const char *[]){ "SNAPSHOT", "ROLLBACK" });
	else if (IS(0, "snapshot") && IS(1, "status") && npos == 2)
		rc = run_one(&o, 2, (const char *[]){ "SNAPSHOT", "STATUS" });
	else if (IS(0, "weights") && IS(1, "get") && npos == 2)
		rc = run_one(&o, 2, (const char *[]){ "WEIGHTS", "GET" });
	else if (IS(0, "weights") && IS(1, "set") && npos == 6)
		rc = run_one(&o, 6, (const char *[]){ "WEIGHTS", "SET", pos[2], pos[3], pos[4], pos[5] });
	else if (IS(0, "export") && npos == 1) {
		if (!o.k)
			o.k = 10;
		rc = wf_cli_export(&o);
	} else if (IS(0, "stock") && IS(1, "load") && npos == 3)
		rc = wf_cli_stock_load(&o, pos[2]);
	else if (IS(0, "segment"))
		rc = wf_cli_segment(&o, npos, pos);
	else if (IS(0, "snapshot") || IS(0, "weights") || IS(0, "stock"))
		rc = bad_usage("bad or incomplete subcommand of '%s'", pos[0]);
	else
		rc = bad_usage("unknown command '%s'", pos[0]);
#undef IS
out:
	free(pos);
	return rc;
}
