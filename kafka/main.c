/*
 * main.c - weft-kafka: the appliance's Kafka consumer (issue 20). Reads
 * events from a topic with librdkafka and sends each, as a client of
 * DIR/weft.sock, as the EVENT a store's app would send, with one more
 * field, `kafka TOPIC:PARTITION:OFFSET`. weft-ingest checks, journals,
 * routes and applies it exactly as any EVENT and answers :1 once it is
 * durable; only then are the batch's offsets committed to the group.
 * Messages the journal already holds (seen.h, read at start) are skipped,
 * so a kill -9 of any process neither loses nor doubles an event (the one
 * window left open: kafka/README.md, "Not covered").
 *
 *   weft-kafka --dir DIR --kafka-brokers HOST:PORT --kafka-topic T
 *              [--kafka-group G] [--config FILE] [--socket PATH]
 *              [--journal DIR] [--kafka-instance ID] [--kafka-partitions L]
 *              [--batch N]
 *
 * Writes DIR/kafka.status (JSON: counters, per partition position, high
 * watermark, lag) 5 times a second for weftctl status and metrics. Touches no
 * shared memory. Run by weftctl up (--kafka-*) or systemd/weft-kafka.service.
 */
#include <errno.h>
#include <stddef.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "kafka/event.h"
#include "kafka/out.h"
#include "kafka/seen.h"
#include "lib/part.h"
#include "lib/util.h"

#define KAFKA_BATCH_DEFAULT 512u
#define KAFKA_BATCH_MAX 4096u /* under ingest's 4096 replies owed per connection */
#define KAFKA_BAD_LOGGED 100u /* each bad message logged up to this, then every 1000th */

enum { KP_SEND, KP_SENT, KP_DONE, KP_BAD };

/* A message taken from the consumer, until its batch is committed. */
struct kafka_pending {
	rd_kafka_message_t *m;
	int state;          /* KP_*: to send, owed a reply, durable (or already journaled), bad */
	struct wf_kevent ev; /* parsed (KP_BAD: not) */
};

/* The process's one context. */
#define CONF_VALUE_MAX 256 /* a weft.conf value weft-kafka keeps (each *_buf below) */

struct kafka_ctx {
	const char *dir, *socket, *journal, *brokers, *topic, *group, *config, *instance, *partitions, *out_topic,
		*out_cursor;
	char socket_buf[PATH_MAX], journal_buf[PATH_MAX], status_path[PATH_MAX];
	char group_buf[CONF_VALUE_MAX], brokers_buf[CONF_VALUE_MAX], topic_buf[CONF_VALUE_MAX], /* --config */
		instance_buf[CONF_VALUE_MAX], partitions_buf[CONF_VALUE_MAX], out_topic_buf[CONF_VALUE_MAX];
	uint32_t batch_max;
	rd_kafka_t *rk;
	redisContext *rc;
	int sfd;
	int stop;
	struct wf_kseen seen;
	struct kafka_out out; /* --kafka-out-topic (out.c) */
	struct kafka_pending *batch;
	uint32_t nbatch;
	uint64_t next_status_ns;
	uint64_t last_sent_ns; /* a quiet connection PINGs: ingest closes one idle past --idle-timeout */
	/* counters (kafka.status) */
	uint64_t consumed, journaled, skipped, bad, rebalances, commits, commit_errors, ingest_recoveries;
	uint64_t high[WF_KSEEN_MAX_PARTITIONS];
	int64_t committed[WF_KSEEN_MAX_PARTITIONS]; /* next offset committed, -1 none this run */
};

static void usage(void)
{
	fprintf(stderr,
		"usage: weft-kafka --dir DIR --kafka-brokers HOST:PORT[,...] --kafka-topic TOPIC\n"
		"                  [--kafka-group GROUP] [--config FILE] [--socket PATH] [--journal DIR]\n"
		"                  [--kafka-instance ID] [--kafka-partitions L] [--kafka-out-topic T]\n"
		"                  [--kafka-out-cursor PATH] [--batch N]\n"
		"  --kafka-group G  consumer group (default weft)\n"
		"  --kafka-instance ID  static group member id (default HOST:hash of DIR)\n"
		"  --kafka-partitions L  own only these partitions (\"0,1\"): assigned, never rebalanced\n"
		"  --kafka-out-topic T  produce every segment transition (TRIGGERS) to topic T,\n"
		"                   at least once, with its id\n"
		"  --kafka-out-cursor PATH  its cursor file (default DIR/kafka-out.cursor)\n"
		"  --config FILE    weft.conf: WEFT_KAFKA_BROKERS, _TOPIC, _GROUP, _INSTANCE,\n"
		"                   _PARTITIONS, _OUT_TOPIC (flags win)\n"
		"  --socket PATH    weft-ingest's socket (default DIR/weft.sock)\n"
		"  --journal DIR    the journal weft-ingest writes (default DIR/journal)\n"
		"  --batch N        messages per batch, 1..%u (default %u)\n",
		KAFKA_BATCH_MAX, KAFKA_BATCH_DEFAULT);
}

/* /etc/weft/weft.conf: KEY=VALUE lines every unit reads (inih: section
 * ""). Only WEFT_KAFKA_* are ours; a flag given wins. */
static int config_key(void *user, const char *section, const char *name, const char *value)
{
	struct kafka_ctx *ctx = user;
	static const struct {
		const char *key;
		size_t off, buf;
	} keys[] = {
		{ "WEFT_KAFKA_BROKERS", offsetof(struct kafka_ctx, brokers), offsetof(struct kafka_ctx, brokers_buf) },
		{ "WEFT_KAFKA_TOPIC", offsetof(struct kafka_ctx, topic), offsetof(struct kafka_ctx, topic_buf) },
		{ "WEFT_KAFKA_GROUP", offsetof(struct kafka_ctx, group), offsetof(struct kafka_ctx, group_buf) },
		{ "WEFT_KAFKA_INSTANCE", offsetof(struct kafka_ctx, instance), offsetof(struct kafka_ctx, instance_buf) },
		{ "WEFT_KAFKA_PARTITIONS", offsetof(struct kafka_ctx, partitions),
		  offsetof(struct kafka_ctx, partitions_buf) },
		{ "WEFT_KAFKA_OUT_TOPIC", offsetof(struct kafka_ctx, out_topic), offsetof(struct kafka_ctx, out_topic_buf) },
	};

	if (section[0])
		return 1;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char **dst = (const char **)((char *)ctx + keys[i].off);
		char *buf = (char *)ctx + keys[i].buf;

		if (strcmp(name, keys[i].key) != 0 || *dst || !*value)
			continue;
		snprintf(buf, CONF_VALUE_MAX, "%s", value); /* inih's lines are shorter */
		*dst = buf;
	}
	return 1;
}

static int parse_args(struct kafka_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dir", required_argument, NULL, 'd' },           { "kafka-brokers", required_argument, NULL, 'b' },
		{ "kafka-topic", required_argument, NULL, 't' },   { "kafka-group", required_argument, NULL, 'g' },
		{ "config", required_argument, NULL, 'c' },        { "socket", required_argument, NULL, 's' },
		{ "journal", required_argument, NULL, 'j' },       { "batch", required_argument, NULL, 'B' },
		{ "shm", required_argument, NULL, 'S' },           { "help", no_argument, NULL, 'h' },
		{ "kafka-instance", required_argument, NULL, 'i' }, { "kafka-partitions", required_argument, NULL, 'P' },
		{ "kafka-out-topic", required_argument, NULL, 'o' }, { "kafka-out-cursor", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t n;
	int c;

	ctx->batch_max = KAFKA_BATCH_DEFAULT;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': ctx->dir = optarg; break;
		case 'b': ctx->brokers = optarg; break;
		case 't': ctx->topic = optarg; break;
		case 'g': ctx->group = optarg; break;
		case 'c': ctx->config = optarg; break;
		case 'i': ctx->instance = optarg; break;
		case 'P': ctx->partitions = optarg; break;
		case 'o': ctx->out_topic = optarg; break;
		case 'C': ctx->out_cursor = optarg; break;
		case 's': ctx->socket = optarg; break;
		case 'j': ctx->journal = optarg; break;
		case 'S': break; /* weftctl up passes every child its segment; no shm here */
		case 'B':
			if (wf_parse_i64(optarg, strlen(optarg), &n) < 0 || n < 1 || n > KAFKA_BATCH_MAX) {
				fprintf(stderr, "weft-kafka: --batch wants 1..%u\n", KAFKA_BATCH_MAX);
				return -EINVAL;
			}
			ctx->batch_max = (uint32_t)n;
			break;
		default: usage(); return -EINVAL;
		}
	}
	if (ctx->config) {
		int e = ini_parse(ctx->config, config_key, ctx);

		if (e != 0) {
			fprintf(stderr, "weft-kafka: cannot read %s (%s %d)\n", ctx->config,
				e < 0 ? "cannot open" : "error on line", e);
			return -EINVAL;
		}
	}
	if (!ctx->dir || !ctx->brokers || !ctx->topic) {
		usage();
		return -EINVAL;
	}
	if (!ctx->group)
		ctx->group = "weft";
	if (!ctx->instance) {
		/* One box, one member: this host and DIR (two appliances on
		 * one host are two members). */
		char host[128] = "localhost";

		gethostname(host, sizeof(host) - 1);
		snprintf(ctx->instance_buf, sizeof(ctx->instance_buf), "%s:%016llx", host,
			 (unsigned long long)wf_hash64(ctx->dir, strlen(ctx->dir)));
		ctx->instance = ctx->instance_buf;
	}
	if (!ctx->socket)
		ctx->socket = snprintf(ctx->socket_buf, sizeof(ctx->socket_buf), "%s/weft.sock", ctx->dir) >= 0
				      ? ctx->socket_buf : NULL;
	if (!ctx->journal)
		ctx->journal = snprintf(ctx->journal_buf, sizeof(ctx->journal_buf), "%s/journal", ctx->dir) >= 0
				       ? ctx->journal_buf : NULL;
	snprintf(ctx->status_path, sizeof(ctx->status_path), "%s/kafka.status", ctx->dir);
	return 0;
}

/* ---- the status file ---- */

static void status_write(struct kafka_ctx *ctx)
{
	rd_kafka_topic_partition_list_t *as = NULL;
	json_t *o = json_object(), *parts = json_array();
	char tmp[PATH_MAX + 8];

	if (!o || !parts)
		goto out;
	json_object_set_new(o, "topic", json_string(ctx->topic));
	json_object_set_new(o, "group", json_string(ctx->group));
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "consumed", json_integer((json_int_t)ctx->consumed));
	json_object_set_new(o, "journaled", json_integer((json_int_t)ctx->journaled));
	json_object_set_new(o, "skipped", json_integer((json_int_t)ctx->skipped));
	json_object_set_new(o, "bad", json_integer((json_int_t)ctx->bad));
	json_object_set_new(o, "rebalances", json_integer((json_int_t)ctx->rebalances));
	json_object_set_new(o, "commits", json_integer((json_int_t)ctx->commits));
	json_object_set_new(o, "commit_errors", json_integer((json_int_t)ctx->commit_errors));
	json_object_set_new(o, "ingest_recoveries", json_integer((json_int_t)ctx->ingest_recoveries));
	if (ctx->out.topic) {
		json_object_set_new(o, "out_topic", json_string(ctx->out.topic));
		json_object_set_new(o, "out_produced", json_integer((json_int_t)ctx->out.produced));
		json_object_set_new(o, "out_errors", json_integer((json_int_t)ctx->out.errors));
		json_object_set_new(o, "out_cursor", json_integer((json_int_t)ctx->out.cursor));
		json_object_set_new(o, "out_exposures", json_integer((json_int_t)ctx->out.eproduced));
		json_object_set_new(o, "out_exposure_cursor", json_integer((json_int_t)ctx->out.ecursor));
	}
	if (rd_kafka_assignment(ctx->rk, &as) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		for (int i = 0; i < as->cnt; i++) {
			int32_t p = as->elems[i].partition;
			int64_t lo = -1, hi = -1, done;
			json_t *e = json_object();

			if (!e || p < 0 || (uint32_t)p >= WF_KSEEN_MAX_PARTITIONS) {
				json_decref(e);
				continue;
			}
			rd_kafka_get_watermark_offsets(ctx->rk, ctx->topic, p, &lo, &hi);
			done = ctx->committed[p];
			json_object_set_new(e, "partition", json_integer(p));
			json_object_set_new(e, "committed", json_integer(done));
			json_object_set_new(e, "high", json_integer(hi));
			json_object_set_new(e, "journaled_max", json_integer(wf_kseen_max(&ctx->seen, p)));
			/* lag: messages in the partition not yet durable here */
			json_object_set_new(e, "lag", json_integer(hi >= 0 && done >= 0 ? hi - done : hi >= 0 ? hi - lo : -1));
			json_array_append_new(parts, e);
		}
		rd_kafka_topic_partition_list_destroy(as);
	}
	json_object_set(o, "partitions", parts);
	snprintf(tmp, sizeof(tmp), "%s.tmp", ctx->status_path);
	if (json_dump_file(o, tmp, JSON_COMPACT) == 0 && rename(tmp, ctx->status_path) < 0)
		wf_warn("rename(%s) failed: %s", ctx->status_path, strerror(errno));
out:
	json_decref(parts);
	json_decref(o);
}

/* ---- a batch: send, wait until durable, commit ---- */

/* ingest refused the EVENT for what it holds (its checks in ingest/cmd.c),
 * not for a failure that a retry could cure. */
static int refused_for_content(const char *s)
{
	return strncmp(s, "ERR invalid ", 12) == 0 || strncmp(s, "ERR unknown event type", 22) == 0 ||
	       strncmp(s, "ERR EVENT ", 10) == 0;
}

static void bad_message(struct kafka_ctx *ctx, const rd_kafka_message_t *m, const char *why)
{
	ctx->bad++;
	if (ctx->bad <= KAFKA_BAD_LOGGED || ctx->bad % 1000 == 0)
		wf_warn("bad message %s:%d:%lld skipped (%llu so far): %s", ctx->topic, m->partition,
			(long long)m->offset, (unsigned long long)ctx->bad, why);
}

/* Take m into the batch: counted, checked once (a bad one is counted
 * and logged here, once). */
static void batch_add(struct kafka_ctx *ctx, rd_kafka_message_t *m)
{
	struct kafka_pending *p = &ctx->batch[ctx->nbatch++];
	char err[256];

	p->m = m;
	p->state = KP_SEND;
	ctx->consumed++;
	if (wf_kevent_parse(m->payload, m->len, &p->ev, err, sizeof(err)) < 0) {
		bad_message(ctx, m, err);
		p->state = KP_BAD;
	} else if (m->partition < 0 || (uint32_t)m->partition >= WF_KSEEN_MAX_PARTITIONS) {
		bad_message(ctx, m, "partition number past 1023");
		p->state = KP_BAD;
	}
}

/* Queue p's EVENT on the connection (-EIO if it cannot), or mark it
 * already journaled. */
static int send_one(struct kafka_ctx *ctx, struct kafka_pending *p)
{
	const struct wf_kevent *ev = &p->ev;
	char tag[300], ts[24];
	const char *argv[11];
	size_t argl[11];
	int n = 0;

	if (wf_kseen_has(&ctx->seen, p->m->partition, p->m->offset)) {
		ctx->skipped++;
		p->state = KP_DONE;
		return 0;
	}
	if (wf_kseen_tag(tag, sizeof(tag), ctx->topic, p->m->partition, p->m->offset) < 0) {
		bad_message(ctx, p->m, "topic name too long for the tag");
		p->state = KP_BAD;
		return 0;
	}
	snprintf(ts, sizeof(ts), "%llu", (unsigned long long)ev->ts);
	argv[n] = "EVENT", argl[n++] = 5;
	argv[n] = ev->session, argl[n++] = strlen(ev->session);
	argv[n] = ev->user, argl[n++] = strlen(ev->user);
	argv[n] = ev->type, argl[n++] = strlen(ev->type);
	argv[n] = ev->item, argl[n++] = strlen(ev->item);
	argv[n] = "ts", argl[n++] = 2;
	argv[n] = ts, argl[n++] = strlen(ts);
	argv[n] = "kafka", argl[n++] = 5;
	argv[n] = tag, argl[n++] = strlen(tag);
	if (ev->value[0]) {
		argv[n] = "value", argl[n++] = 5;
		argv[n] = ev->value, argl[n++] = strlen(ev->value);
	}
	if (redisAppendCommandArgv(ctx->rc, n, argv, argl) != REDIS_OK)
		return -EIO;
	p->state = KP_SENT;
	return 0;
}

/* Every EVENT of the batch sent and answered, in order (ingest replies
 * in request order, :1 once durable). 0, or -EIO: weft-ingest went away
 * or refused one for a reason that is not its content (a failing
 * journal); what it did make durable is in the journal, the rest is
 * still KP_SEND. */
static int batch_send(struct kafka_ctx *ctx)
{
	uint32_t first = UINT32_MAX;

	for (uint32_t i = 0; i < ctx->nbatch; i++)
		if (ctx->batch[i].state == KP_SEND) {
			if (send_one(ctx, &ctx->batch[i]) < 0)
				return -EIO;
			if (first == UINT32_MAX && ctx->batch[i].state == KP_SENT)
				first = i;
		}
	for (uint32_t i = first; i < ctx->nbatch; i++) {
		struct kafka_pending *p = &ctx->batch[i];
		redisReply *r = NULL;

		if (p->state != KP_SENT)
			continue;
		if (redisGetReply(ctx->rc, (void **)&r) != REDIS_OK || !r) {
			wf_warn("weft-ingest did not answer (%s)", ctx->rc->errstr);
			return -EIO;
		}
		if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
			ctx->journaled++;
			p->state = KP_DONE;
			if (wf_kseen_add(&ctx->seen, p->m->partition, p->m->offset) < 0) {
				wf_err("out of memory recording offsets; exiting, nothing of this batch committed");
				exit(1);
			}
		} else if (r->type == REDIS_REPLY_ERROR && refused_for_content(r->str)) {
			bad_message(ctx, p->m, r->str);
			p->state = KP_BAD;
		} else {
			wf_warn("weft-ingest refused %s:%d:%lld: %s", ctx->topic, p->m->partition,
				(long long)p->m->offset, r->type == REDIS_REPLY_ERROR ? r->str : "(unexpected reply)");
			freeReplyObject(r);
			return -EIO;
		}
		freeReplyObject(r);
	}
	return 0;
}

static int connect_ingest(struct kafka_ctx *ctx);
static int load_seen(struct kafka_ctx *ctx);
static void check_signals(struct kafka_ctx *ctx);

/*
 * weft-ingest went away or could not journal: wait until it answers
 * again, read the journal again (what it made durable of this batch,
 * whether or not we saw the :1, is now skipped) and mark the rest to be
 * sent again. The consumer keeps its partitions and position: nothing
 * past this batch was taken.
 */
static void ingest_recover(struct kafka_ctx *ctx)
{
	int n;

	redisFree(ctx->rc);
	ctx->rc = NULL;
	for (;;) {
		usleep(100000);
		check_signals(ctx);
		if (ctx->stop) {
			wf_info("stopping while weft-ingest is away: nothing of this batch committed");
			exit(0);
		}
		if (connect_ingest(ctx) < 0)
			continue;
		wf_kseen_fini(&ctx->seen);
		n = load_seen(ctx);
		if (n >= 0)
			break;
		wf_err("cannot read the journal %s: %s; trying again", ctx->journal, strerror(-n));
	}
	ctx->ingest_recoveries++;
	wf_info("weft-ingest answers again; the journal holds %d events of topic %s", n, ctx->topic);
	for (uint32_t i = 0; i < ctx->nbatch; i++)
		if (ctx->batch[i].state == KP_SENT)
			ctx->batch[i].state = KP_SEND;
}

/*
 * The batch made durable (batch_send, again after ingest_recover until it
 * holds), then the next offset of each of its partitions committed,
 * synchronously. Only then is anything more consumed.
 */
static void batch_flush(struct kafka_ctx *ctx)
{
	rd_kafka_topic_partition_list_t *offs;
	int64_t next[WF_KSEEN_MAX_PARTITIONS];
	rd_kafka_resp_err_t ke;

	if (ctx->nbatch == 0)
		return;
	while (batch_send(ctx) < 0)
		ingest_recover(ctx);
	ctx->last_sent_ns = wf_now_ns();
	for (uint32_t i = 0; i < WF_KSEEN_MAX_PARTITIONS; i++)
		next[i] = -1;
	for (uint32_t i = 0; i < ctx->nbatch; i++) {
		const rd_kafka_message_t *m = ctx->batch[i].m;

		if (m->partition >= 0 && (uint32_t)m->partition < WF_KSEEN_MAX_PARTITIONS)
			next[m->partition] = m->offset + 1;
	}
	offs = rd_kafka_topic_partition_list_new(8);
	for (uint32_t i = 0; i < WF_KSEEN_MAX_PARTITIONS; i++)
		if (next[i] >= 0)
			rd_kafka_topic_partition_list_add(offs, ctx->topic, (int32_t)i)->offset = next[i];
	ke = rd_kafka_commit(ctx->rk, offs, 0);
	if (ke != RD_KAFKA_RESP_ERR_NO_ERROR) {
		/* Not fatal: the events are durable and recorded; a
		 * redelivery is skipped (seen.h). */
		ctx->commit_errors++;
		wf_warn("offset commit failed: %s (the journal still skips what it holds)", rd_kafka_err2str(ke));
	} else {
		ctx->commits++;
		for (uint32_t i = 0; i < WF_KSEEN_MAX_PARTITIONS; i++)
			if (next[i] >= 0)
				ctx->committed[i] = next[i];
	}
	rd_kafka_topic_partition_list_destroy(offs);
	for (uint32_t i = 0; i < ctx->nbatch; i++)
		rd_kafka_message_destroy(ctx->batch[i].m);
	ctx->nbatch = 0;
}

/* A rebalance: what was taken is made durable and committed before the
 * partitions go (eager protocol: assign/unassign here). */
static void rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct kafka_ctx *ctx = opaque;

	ctx->rebalances++;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (int i = 0; i < parts->cnt; i++) {
			int32_t p = parts->elems[i].partition;

			if (p >= 0 && (uint32_t)p < WF_KSEEN_MAX_PARTITIONS)
				ctx->committed[p] = -1;
		}
		wf_info("assigned %d partition%s of %s", parts->cnt, parts->cnt == 1 ? "" : "s", ctx->topic);
		rd_kafka_assign(rk, parts);
		/* The group's committed offsets, for the lag until our first
		 * commit (none: the lag counts from the partition's start). */
		rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(parts);
		if (rd_kafka_committed(rk, c, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
			for (int i = 0; i < c->cnt; i++) {
				int32_t p = c->elems[i].partition;

				if (p >= 0 && (uint32_t)p < WF_KSEEN_MAX_PARTITIONS && c->elems[i].offset >= 0)
					ctx->committed[p] = c->elems[i].offset;
			}
		rd_kafka_topic_partition_list_destroy(c);
	} else {
		batch_flush(ctx);
		wf_info("revoked %d partition%s of %s", parts->cnt, parts->cnt == 1 ? "" : "s", ctx->topic);
		rd_kafka_assign(rk, NULL);
	}
}

/* ---- start-up ---- */

static int connect_ingest(struct kafka_ctx *ctx)
{
	/* weft-ingest may start after us (weftctl up starts it last): wait. */
	for (int i = 0; i < 600 && !ctx->stop; i++) {
		ctx->rc = redisConnectUnix(ctx->socket);
		if (ctx->rc && !ctx->rc->err) {
			redisReply *r = redisCommand(ctx->rc, "PING");
			int ok = r && r->type == REDIS_REPLY_STATUS;

			freeReplyObject(r);
			if (ok)
				return 0;
		}
		redisFree(ctx->rc);
		ctx->rc = NULL;
		usleep(100000);
		check_signals(ctx);
	}
	wf_err("cannot reach weft-ingest at %s", ctx->socket);
	return -ECONNREFUSED;
}

/*
 * What the journal holds of our topic (seen.h), read only once no EVENT
 * of an earlier weft-kafka connection (one killed, or our own before a
 * recovery) can still reach it: weft-ingest has closed every such
 * connection (INFO kafka_conns 0: it read each to its end, and every
 * EVENT it took from one is in the journal's LSNs), and the journal holds
 * every LSN given out by then (journal_durable_lsn reaches
 * journal_next_lsn - 1). Read earlier, an EVENT still in a dead
 * connection's socket would be journaled after the read, and sent again
 * by us: twice. Each wait is bounded (30 s, then a warning: a client that
 * keeps a connection with a kafka-tagged EVENT open would hold us forever).
 */
static int load_seen(struct kafka_ctx *ctx)
{
	struct kafka_ingest_stats st = { .kafka_conns = 1 };
	uint64_t next;
	int i, asked = 1; /* 0: an INFO failed (st is then all 0, not weft-ingest's word) */

	for (i = 0; i < 300 && !ctx->stop; i++) {
		if (kafka_ingest_stats(ctx->rc, &st) < 0) {
			asked = 0;
			break;
		}
		if (!st.kafka_conns)
			break; /* 0 also from a weft-ingest without the field */
		if (i == 10)
			wf_info("waiting for weft-ingest to finish %llu earlier weft-kafka connection%s",
				(unsigned long long)st.kafka_conns, st.kafka_conns == 1 ? "" : "s");
		usleep(100000);
		check_signals(ctx);
	}
	if (!asked)
		wf_warn("cannot read weft-ingest's INFO stats on %s: reading the journal without waiting for earlier "
			"weft-kafka connections and flushes (an EVENT still in one could be journaled twice)", ctx->socket);
	else if (st.kafka_conns)
		wf_warn("weft-ingest still holds %llu weft-kafka connection%s after 30 s: reading the journal "
			"anyway (an EVENT still in one could be journaled twice)",
			(unsigned long long)st.kafka_conns, st.kafka_conns == 1 ? "" : "s");
	/* Every LSN given out by then durable. A failing journal makes nothing
	 * more durable: what it refused is not in it, and is sent again. */
	next = st.next_lsn;
	for (i = 0; i < 300 && asked && !ctx->stop && st.durable_lsn + 1 < next && !st.journal_failed; i++) {
		usleep(100000);
		check_signals(ctx);
		if (kafka_ingest_stats(ctx->rc, &st) < 0) {
			wf_warn("cannot read weft-ingest's INFO stats on %s while waiting for LSN %llu to be durable: "
				"reading the journal anyway", ctx->socket, (unsigned long long)next - 1);
			asked = 0;
		}
	}
	if (asked && st.durable_lsn + 1 < next && !st.journal_failed)
		wf_warn("the journal holds LSNs up to %llu of %llu given out after 30 s (failing?): reading it anyway",
			(unsigned long long)st.durable_lsn, (unsigned long long)next - 1);
	return wf_kseen_load(&ctx->seen, ctx->journal, ctx->topic);
}

/*
 * --kafka-partitions: this box owns these partitions; they are assigned
 * (no group balancing moves them), read from the group's committed
 * offsets (else the start). A box that is down holds its partitions'
 * events back; no other box takes them, so no two journals share one.
 */
static int assign_owned(struct kafka_ctx *ctx)
{
	uint8_t seen[WF_PART_MAX] = { 0 };
	rd_kafka_topic_partition_list_t *l;
	rd_kafka_resp_err_t ke;
	char why[256];

	/* The rule weft-ingest's --kafka-partitions takes (lib/part.h). */
	if (wf_part_list_parse(ctx->partitions, seen, why, sizeof(why)) < 0) {
		wf_err("--kafka-partitions: %s", why);
		return -EINVAL;
	}
	l = rd_kafka_topic_partition_list_new(8);
	for (uint32_t i = 0; i < WF_PART_MAX; i++) {
		if (!seen[i])
			continue;
		if (i >= WF_KSEEN_MAX_PARTITIONS) {
			wf_err("--kafka-partitions: partition %u is past the %u weft-kafka follows", i,
			       WF_KSEEN_MAX_PARTITIONS);
			rd_kafka_topic_partition_list_destroy(l);
			return -EINVAL;
		}
		rd_kafka_topic_partition_list_add(l, ctx->topic, (int32_t)i)->offset = RD_KAFKA_OFFSET_STORED;
	}
	ke = rd_kafka_assign(ctx->rk, l);
	if (ke == RD_KAFKA_RESP_ERR_NO_ERROR && rd_kafka_committed(ctx->rk, l, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
		for (int i = 0; i < l->cnt; i++)
			if (l->elems[i].offset >= 0)
				ctx->committed[l->elems[i].partition] = l->elems[i].offset;
	if (ke == RD_KAFKA_RESP_ERR_NO_ERROR)
		wf_info("owns %d partition%s of %s: %s", l->cnt, l->cnt == 1 ? "" : "s", ctx->topic, ctx->partitions);
	else
		wf_err("rd_kafka_assign(%s) failed: %s", ctx->partitions, rd_kafka_err2str(ke));
	rd_kafka_topic_partition_list_destroy(l);
	return ke == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -EINVAL;
}

static int make_consumer(struct kafka_ctx *ctx)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *sub;
	char err[512];
	rd_kafka_resp_err_t ke;
	const char *kv[][2] = {
		{ "bootstrap.servers", ctx->brokers },  { "group.id", ctx->group },
		{ "enable.auto.commit", "false" },      { "enable.auto.offset.store", "false" },
		{ "auto.offset.reset", "earliest" },    { "client.id", "weft-kafka" },
		{ "enable.partition.eof", "false" },
		/* Static membership (KIP-345): a restarted weft-kafka (kill -9,
		 * the supervisor's restart) takes its partitions back at once,
		 * without a rebalance, as long as it is back within the session
		 * timeout; so a partition stays with the box whose journal holds
		 * its offsets. */
		/* A member that died without leaving (kill -9) holds its
		 * partitions this long: Kafka's smallest default
		 * (group.min.session.timeout.ms), not librdkafka's 45 s. */
		{ "session.timeout.ms", "6000" },       { "heartbeat.interval.ms", "1500" },
		/* A broker answers a fetch as soon as it has data; one that
		 * waits out the timeout (librdkafka's mock) adds it to every
		 * event's latency: 50 ms, not 500. */
		{ "fetch.wait.max.ms", "50" },
	};

	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
			wf_err("librdkafka %s: %s", kv[i][0], err);
			rd_kafka_conf_destroy(conf);
			return -EINVAL;
		}
	/* Static membership (KIP-345): a restarted weft-kafka (kill -9,
	 * the supervisor's restart) takes its partitions back without a
	 * rebalance while it is back within the session timeout, so a
	 * partition stays with the box whose journal holds its offsets.
	 * Not with --kafka-partitions: those are assigned, never balanced. */
	if (!ctx->partitions && rd_kafka_conf_set(conf, "group.instance.id", ctx->instance, err, sizeof(err)) !=
					RD_KAFKA_CONF_OK) {
		wf_err("librdkafka group.instance.id: %s", err);
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	rd_kafka_conf_set_opaque(conf, ctx);
	rd_kafka_conf_set_rebalance_cb(conf, rebalance);
	ctx->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (!ctx->rk) {
		wf_err("rd_kafka_new() failed: %s", err);
		return -EINVAL;
	}
	rd_kafka_poll_set_consumer(ctx->rk);
	if (ctx->partitions)
		return assign_owned(ctx);
	sub = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, ctx->topic, RD_KAFKA_PARTITION_UA);
	ke = rd_kafka_subscribe(ctx->rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (ke) {
		wf_err("rd_kafka_subscribe(%s) failed: %s", ctx->topic, rd_kafka_err2str(ke));
		return -EINVAL;
	}
	return 0;
}

static void check_signals(struct kafka_ctx *ctx)
{
	struct signalfd_siginfo si;

	while (read(ctx->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		ctx->stop = 1;
}

int main(int argc, char **argv)
{
	struct kafka_ctx *ctx = calloc(1, sizeof(*ctx));
	sigset_t ss;
	int n;

	wf_log_init("weft-kafka");
	if (!ctx)
		return 1;
	for (uint32_t i = 0; i < WF_KSEEN_MAX_PARTITIONS; i++)
		ctx->committed[i] = -1;
	if (parse_args(ctx, argc, argv) < 0)
		return 2;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN); /* a weft-ingest gone is an -EPIPE, handled */
	ctx->sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	ctx->batch = calloc(ctx->batch_max, sizeof(*ctx->batch));
	if (ctx->sfd < 0 || !ctx->batch) {
		wf_err("start-up failed: %s", strerror(errno));
		return 1;
	}
	if (connect_ingest(ctx) < 0)
		return 1;
	/* After weft-ingest answers: it recovered the journal's tail. */
	n = load_seen(ctx);
	if (n < 0) {
		wf_err("cannot read the journal %s: %s", ctx->journal, strerror(-n));
		return 1;
	}
	wf_info("the journal holds %d event%s of topic %s", n, n == 1 ? "" : "s", ctx->topic);
	if (make_consumer(ctx) < 0)
		return 1;
	ctx->out.topic = ctx->out_topic;
	if (ctx->out.topic &&
	    kafka_out_start(&ctx->out, ctx->brokers, ctx->dir, ctx->socket, ctx->journal, ctx->out_cursor) < 0)
		return 1;
	while (!ctx->stop) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(ctx->rk, 100);

		while (m) {
			if (m->err) {
				wf_warn("consumer: %s", rd_kafka_message_errstr(m));
				rd_kafka_message_destroy(m);
			} else {
				batch_add(ctx, m);
			}
			if (ctx->nbatch == ctx->batch_max)
				break;
			m = rd_kafka_consumer_poll(ctx->rk, 0);
		}
		batch_flush(ctx);
		kafka_out_pump(&ctx->out);
		if (wf_now_ns() - ctx->last_sent_ns > 60000000000ull) {
			redisReply *r = redisCommand(ctx->rc, "PING");

			if (!r || r->type != REDIS_REPLY_STATUS)
				ingest_recover(ctx);
			freeReplyObject(r);
			ctx->last_sent_ns = wf_now_ns();
		}
		if (wf_now_ns() >= ctx->next_status_ns) {
			status_write(ctx);
			ctx->next_status_ns = wf_now_ns() + 200000000ull; /* 5 a second */
		}
		check_signals(ctx);
	}
	batch_flush(ctx);
	status_write(ctx);
	wf_info("stopping: %llu consumed, %llu journaled, %llu already journaled, %llu bad",
		(unsigned long long)ctx->consumed, (unsigned long long)ctx->journaled,
		(unsigned long long)ctx->skipped, (unsigned long long)ctx->bad);
	kafka_out_stop(&ctx->out);
	rd_kafka_consumer_close(ctx->rk);
	rd_kafka_destroy(ctx->rk);
	redisFree(ctx->rc);
	wf_kseen_fini(&ctx->seen);
	free(ctx->batch);
	close(ctx->sfd);
	free(ctx);
	return 0;
}
