/*
 * out.c - weft-kafka's --kafka-out-topic (issue 20): segment transitions
 * read with TRIGGERS (the catch-up command every other client uses, so
 * only durable, published transitions, each once, under its stable id) and
 * produced to a topic, one JSON object a message, the same object a
 * SUBSCRIBE push carries, keyed by the shopper (user, or session when
 * anonymous). The cursor (the last id Kafka acked) is written atomically
 * to DIR/kafka-out.cursor after each acked round. Linked only into
 * weft-kafka.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "kafka/out.h"
#include "lib/util.h"

#define OUT_ROUND 512u               /* TRIGGERS COUNT */
#define OUT_EVERY_NS 100000000ull    /* a round at most every 100 ms */
#define OUT_FLUSH_MS 30000

static void delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka_out *o = opaque;

	(void)rk;
	if (m->err) {
		if (!o->failed)
			wf_warn("out topic %s: a message was not delivered: %s", o->topic, rd_kafka_err2str(m->err));
		o->failed++;
	}
}

static int cursor_read(struct kafka_out *o)
{
	FILE *f = fopen(o->cursor_path, "re");
	unsigned long long v;
	int ok;

	o->cursor = 0;
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	ok = fscanf(f, "%llu", &v) == 1;
	fclose(f);
	if (!ok)
		return -EIO;
	o->cursor = v;
	return 0;
}

/* DIR/kafka-out.cursor = cursor, atomically (lib/util's temporary file,
 * fsync, rename): a crash leaves the old value or the new one. */
static int cursor_write(struct kafka_out *o, uint64_t cursor)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", cursor);

	return wf_write_file_atomic(o->cursor_path, buf, (size_t)n);
}

int kafka_out_start(struct kafka_out *o, const char *brokers, const char *dir, const char *socket,
		    const char *cursor_path)
{
	rd_kafka_conf_t *conf;
	char err[512];
	int e;
	const char *kv[][2] = {
		{ "bootstrap.servers", brokers }, { "client.id", "weft-kafka-out" },
		/* No duplicate from a retry within a run; acks=all with it. */
		{ "enable.idempotence", "true" }, { "linger.ms", "5" },
	};

	o->socket = socket;
	if ((size_t)(cursor_path ? snprintf(o->cursor_path, sizeof(o->cursor_path), "%s", cursor_path)
				 : snprintf(o->cursor_path, sizeof(o->cursor_path), "%s/kafka-out.cursor", dir)) >=
	    sizeof(o->cursor_path)) {
		wf_err("the out cursor's path is too long");
		return -EINVAL;
	}
	if ((e = cursor_read(o)) < 0) {
		wf_err("cannot read %s: %s", o->cursor_path, strerror(-e));
		return -EIO;
	}
	conf = rd_kafka_conf_new();
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
			wf_err("librdkafka %s: %s", kv[i][0], err);
			rd_kafka_conf_destroy(conf);
			return -EINVAL;
		}
	rd_kafka_conf_set_opaque(conf, o);
	rd_kafka_conf_set_dr_msg_cb(conf, delivered);
	o->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!o->rk) {
		wf_err("rd_kafka_new(producer) failed: %s", err);
		return -EINVAL;
	}
	wf_info("transitions after id %" PRIu64 " go to topic %s", o->cursor, o->topic);
	return 0;
}

/* Produce one transition (a TRIGGERS item): 0 and its id in *ret_id, or
 * -EPROTO (not a transition object: skipped, logged), -EIO (not queued). */
static int produce_one(struct kafka_out *o, const char *s, size_t len, uint64_t *ret_id)
{
	json_t *j = json_loadb(s, len, 0, NULL);
	const char *id = j ? json_string_value(json_object_get(j, "id")) : NULL;
	const char *user = j ? json_string_value(json_object_get(j, "user")) : NULL;
	const char *session = j ? json_string_value(json_object_get(j, "session")) : NULL;
	const char *key;
	rd_kafka_resp_err_t ke;
	char *end;
	int e = 0;

	if (!id || !session || !user) {
		json_decref(j);
		wf_warn("out topic %s: TRIGGERS gave something not a transition: skipped", o->topic);
		return -EPROTO;
	}
	*ret_id = strtoull(id, &end, 10);
	if (*end || end == id) {
		json_decref(j);
		wf_warn("out topic %s: a transition id that is not a number: skipped", o->topic);
		return -EPROTO;
	}
	key = strcmp(user, "-") != 0 ? user : session;
	for (int tries = 0;; tries++) {
		ke = rd_kafka_producev(o->rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_KEY(key, strlen(key)),
				       RD_KAFKA_V_VALUE((void *)s, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				       RD_KAFKA_V_END);
		if (ke != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries == 100)
			break;
		rd_kafka_poll(o->rk, 100);
	}
	if (ke) {
		wf_warn("out topic %s: produce failed: %s", o->topic, rd_kafka_err2str(ke));
		e = -EIO;
	}
	json_decref(j);
	return e;
}

void kafka_out_pump(struct kafka_out *o)
{
	char cur[24];
	const char *argv[4] = { "TRIGGERS", cur, "COUNT", "512" };
	size_t argl[4];
	redisReply *r;
	uint64_t last = o->cursor, id = 0;
	uint32_t queued = 0;
	size_t i;
	int e;

	if (!o->topic || wf_now_ns() < o->next_ns)
		return;
	o->next_ns = wf_now_ns() + OUT_EVERY_NS;
	if (!o->rc) {
		o->rc = redisConnectUnix(o->socket);
		if (!o->rc || o->rc->err) {
			redisFree(o->rc);
			o->rc = NULL;
			return; /* weft-ingest restarting: the next round */
		}
	}
	snprintf(cur, sizeof(cur), "%" PRIu64, o->cursor);
	for (int k = 0; k < 4; k++)
		argl[k] = strlen(argv[k]);
	r = redisCommandArgv(o->rc, 4, argv, argl);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		if (r && r->type == REDIS_REPLY_ERROR)
			wf_warn("out topic %s: TRIGGERS %s: %s", o->topic, cur, r->str);
		freeReplyObject(r);
		redisFree(o->rc);
		o->rc = NULL;
		return;
	}
	o->failed = 0;
	for (i = 0; i < r->elements; i++) {
		const redisReply *it = r->element[i];

		if (it->type != REDIS_REPLY_STRING)
			continue;
		e = produce_one(o, it->str, it->len, &id);
		if (e == -EIO)
			break;
		if (e == 0) {
			queued++;
			last = WF_MAX(last, id);
		}
	}
	if (r->elements && (i < r->elements || rd_kafka_flush(o->rk, OUT_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR ||
			    o->failed)) {
		o->errors++;
		wf_warn("out topic %s: a round after id %s was not acked whole: it is produced again", o->topic, cur);
		o->next_ns = wf_now_ns() + 10 * OUT_EVERY_NS; /* back off: 1 s */
		freeReplyObject(r);
		return;
	}
	if (r->elements == OUT_ROUND)
		o->next_ns = 0; /* more waiting: at once */
	freeReplyObject(r);
	rd_kafka_poll(o->rk, 0);
	if (last == o->cursor)
		return;
	if ((e = cursor_write(o, last)) < 0) {
		wf_warn("cannot write %s: %s (this round is produced again after a restart)", o->cursor_path,
			strerror(-e));
		o->errors++;
	}
	o->produced += queued;
	o->cursor = last;
}

void kafka_out_stop(struct kafka_out *o)
{
	if (o->rk) {
		rd_kafka_flush(o->rk, 5000);
		rd_kafka_destroy(o->rk);
		o->rk = NULL;
	}
	redisFree(o->rc);
	o->rc = NULL;
}
