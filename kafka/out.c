/*
 * out.c - weft-kafka's --kafka-out-topic (issue 20), two streams to one
 * topic, one JSON object a message, keyed by the shopper (user, or session
 * when anonymous):
 *
 * - segment transitions, read with TRIGGERS (the catch-up command every
 *   other client uses, so only durable, published transitions, each once,
 *   under its stable id), the same object a SUBSCRIBE push carries; the
 *   cursor (the last id Kafka acked) in DIR/kafka-out.cursor;
 * - experiment exposures (WF_JREC_EXPOSURE), read from the journal itself
 *   (a lib/journal.h tail) only up to weft-ingest's journal_durable_lsn,
 *   so never one a crash could still take back; "kind": "exposure"; the
 *   cursor (every record up to it done) in DIR/kafka-out.cursor.exposures.
 *
 * A cursor is written atomically after each acked round. Linked only into
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
#include "lib/proto.h"
#include "lib/util.h"

#define OUT_ROUND 512u               /* TRIGGERS COUNT */
#define OUT_EVERY_NS 100000000ull    /* a round at most every 100 ms */
#define OUT_FLUSH_MS 30000
#define OUT_SCAN_MAX 65536u          /* journal records an exposure round reads at most */

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

/* A cursor file: *v its number (absent: 0). 0, or -errno (-EIO: not a number). */
static int cursor_read(const char *path, uint64_t *v)
{
	FILE *f = fopen(path, "re");
	unsigned long long x;
	int ok;

	*v = 0;
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	ok = fscanf(f, "%llu", &x) == 1;
	fclose(f);
	if (!ok)
		return -EIO;
	*v = x;
	return 0;
}

/* path = cursor, atomically (lib/util's temporary file, fsync, rename): a
 * crash leaves the old value or the new one. */
static int cursor_write(const char *path, uint64_t cursor)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", cursor);

	return wf_write_file_atomic(path, buf, (size_t)n);
}

int kafka_ingest_stats(redisContext *rc, struct kafka_ingest_stats *st)
{
	redisReply *r = rc ? redisCommand(rc, "INFO stats") : NULL;
	int ok = r && r->type == REDIS_REPLY_STRING;

	*st = (struct kafka_ingest_stats){ 0 };
	for (const char *l = ok ? r->str : NULL; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *v = strchr(l, ':');
		size_t kl = v ? (size_t)(v - l) : 0;

		if (!v)
			continue;
		if (kl == 11 && !strncmp(l, "kafka_conns", kl))
			st->kafka_conns = strtoull(v + 1, NULL, 10);
		else if (kl == 16 && !strncmp(l, "journal_next_lsn", kl))
			st->next_lsn = strtoull(v + 1, NULL, 10);
		else if (kl == 19 && !strncmp(l, "journal_durable_lsn", kl))
			st->durable_lsn = strtoull(v + 1, NULL, 10);
		else if (kl == 14 && !strncmp(l, "journal_failed", kl))
			st->journal_failed = strncmp(v + 1, "no\r", 3) != 0;
	}
	freeReplyObject(r);
	return ok ? 0 : -1;
}

int kafka_out_start(struct kafka_out *o, const char *brokers, const char *dir, const char *socket,
		    const char *journal, const char *cursor_path)
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
	o->journal = journal;
	if ((size_t)(cursor_path ? snprintf(o->cursor_path, sizeof(o->cursor_path), "%s", cursor_path)
				 : snprintf(o->cursor_path, sizeof(o->cursor_path), "%s/kafka-out.cursor", dir)) >=
	    sizeof(o->cursor_path)) {
		wf_err("the out cursor's path is too long");
		return -EINVAL;
	}
	snprintf(o->ecursor_path, sizeof(o->ecursor_path), "%s.exposures", o->cursor_path);
	if ((e = cursor_read(o->cursor_path, &o->cursor)) < 0 || (e = cursor_read(o->ecursor_path, &o->ecursor)) < 0) {
		wf_err("cannot read the out cursors %s(.exposures): %s", o->cursor_path,
		       e == -EIO ? "not a number" : strerror(-e));
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
	wf_info("transitions after id %" PRIu64 " and exposures after LSN %" PRIu64 " go to topic %s", o->cursor,
		o->ecursor, o->topic);
	return 0;
}

/* Queue one message keyed by its shopper: the user, or the session for an
 * anonymous visitor (lib/proto's wf_user_is_anon; the key its events have
 * in the input topic). 0, or -EIO (not queued, logged). */
static int produce_for_shopper(struct kafka_out *o, const char *session, size_t slen, const char *user,
			       size_t ulen, const char *s, size_t len)
{
	const char *key = wf_user_is_anon(user, ulen) ? session : user;
	size_t klen = key == session ? slen : ulen;
	rd_kafka_resp_err_t ke;

	for (int tries = 0;; tries++) {
		ke = rd_kafka_producev(o->rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_KEY(key, klen),
				       RD_KAFKA_V_VALUE((void *)s, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				       RD_KAFKA_V_END);
		if (ke != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries == 100)
			break;
		rd_kafka_poll(o->rk, 100);
	}
	if (ke)
		wf_warn("out topic %s: produce failed: %s", o->topic, rd_kafka_err2str(ke));
	return ke ? -EIO : 0;
}

/* Produce one transition (a TRIGGERS item): 0 and its id in *ret_id, or
 * -EPROTO (not a transition object: skipped, logged), -EIO (not queued). */
static int produce_one(struct kafka_out *o, const char *s, size_t len, uint64_t *ret_id)
{
	json_t *j = json_loadb(s, len, 0, NULL);
	const char *id = j ? json_string_value(json_object_get(j, "id")) : NULL;
	const char *user = j ? json_string_value(json_object_get(j, "user")) : NULL;
	const char *session = j ? json_string_value(json_object_get(j, "session")) : NULL;
	char *end;
	int e;

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
	e = produce_for_shopper(o, session, strlen(session), user, strlen(user), s, len);
	json_decref(j);
	return e;
}

/* Our own connection to weft.sock: 0, or -1 (weft-ingest restarting: the next round). */
static int ensure_rc(struct kafka_out *o)
{
	if (o->rc)
		return 0;
	o->rc = redisConnectUnix(o->socket);
	if (!o->rc || o->rc->err) {
		redisFree(o->rc);
		o->rc = NULL;
		return -1;
	}
	return 0;
}

static void transitions_round(struct kafka_out *o)
{
	char cur[24];
	const char *argv[4] = { "TRIGGERS", cur, "COUNT", "512" };
	size_t argl[4];
	redisReply *r;
	uint64_t last = o->cursor, id = 0;
	uint32_t queued = 0;
	size_t i;
	int e;

	if (wf_now_ns() < o->next_ns)
		return;
	o->next_ns = wf_now_ns() + OUT_EVERY_NS;
	if (ensure_rc(o) < 0)
		return;
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
	if ((e = cursor_write(o->cursor_path, last)) < 0) {
		wf_warn("cannot write %s: %s (this round is produced again after a restart)", o->cursor_path,
			strerror(-e));
		o->errors++;
	}
	o->produced += queued;
	o->cursor = last;
}

/*
 * An exposure record as a message: {"id", "kind": "exposure", "experiment",
 * "arm", "unit", "session", "user", "page", "request", "ts", "items"}
 * (argv as lib/journal.h's WF_JREC_EXPOSURE). NULL: not an exposure
 * record of that shape, or out of memory.
 */
static char *exposure_json(const struct wf_journal_rec *rec)
{
	static const char *const name[] = { "experiment", "arm", "unit", "session", "user", "page", "request" };
	json_t *o, *items;
	char id[24];
	char *s = NULL;

	if (rec->argc < 7 || !(o = json_object()))
		return NULL;
	snprintf(id, sizeof(id), "%" PRIu64, rec->lsn);
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "kind", json_string("exposure"));
	for (uint32_t i = 0; i < 7; i++)
		json_object_set_new(o, name[i], json_stringn(rec->argv[i], rec->argl[i]));
	json_object_set_new(o, "ts", json_integer((json_int_t)rec->ts_ms));
	if ((items = json_array())) {
		for (uint32_t i = 7; i < rec->argc; i++)
			json_array_append_new(items, json_stringn(rec->argv[i], rec->argl[i]));
		json_object_set_new(o, "items", items);
		s = json_dumps(o, JSON_COMPACT);
	}
	json_decref(o); /* json_stringn of bytes not UTF-8 is NULL: then dumps has no such key */
	return s;
}

/* The tail back to the cursor: the next round reads from ecursor + 1 again. */
static void exposures_rewind(struct kafka_out *o)
{
	wf_journal_tail_close(o->tail);
	o->tail = NULL;
}

/*
 * One exposure round, when due: the journal's records after the cursor up
 * to weft-ingest's durable LSN (at most OUT_SCAN_MAX, 512 exposures), each
 * exposure produced, all flushed; only when every one was acked is the
 * cursor (the last record read) written. Records of other kinds only move
 * the cursor (written with the next exposure: a restart reads them again).
 */
static void exposures_round(struct kafka_out *o)
{
	struct kafka_ingest_stats st;
	struct wf_journal_rec rec;
	uint64_t durable, last = o->ecursor;
	uint32_t queued = 0, scanned = 0;
	int e = 0, r = 0;

	if (wf_now_ns() < o->enext_ns)
		return;
	o->enext_ns = wf_now_ns() + OUT_EVERY_NS;
	if (ensure_rc(o) < 0 || kafka_ingest_stats(o->rc, &st) < 0)
		return;
	durable = st.durable_lsn;
	if (durable < o->ecursor && !o->ewarned) {
		wf_warn("out topic %s: %s says LSN %" PRIu64 " but the journal is durable only to %" PRIu64
			" (a journal replaced underneath?): no exposure is produced until it passes the cursor; "
			"remove the file to start again from the journal's start",
			o->topic, o->ecursor_path, o->ecursor, durable);
		o->ewarned = 1;
	}
	if (durable <= o->ecursor)
		return;
	if (!o->tail && (e = wf_journal_tail_open(o->journal, o->ecursor + 1, &o->tail)) < 0) {
		wf_warn("out topic %s: cannot read the journal %s: %s (trying again in 5 s)", o->topic, o->journal,
			strerror(-e));
		o->enext_ns = wf_now_ns() + 50 * OUT_EVERY_NS;
		return;
	}
	o->failed = 0;
	while (queued < OUT_ROUND && scanned++ < OUT_SCAN_MAX &&
	       (r = wf_journal_tail_next(o->tail, &rec, durable)) == 1) {
		char *s;

		last = rec.lsn;
		if (rec.kind != WF_JREC_EXPOSURE)
			continue;
		if (!(s = exposure_json(&rec))) {
			wf_warn("out topic %s: journal record %" PRIu64 " is not an exposure of the known shape: skipped",
				o->topic, rec.lsn);
			continue;
		}
		e = produce_for_shopper(o, rec.argv[3], rec.argl[3], rec.argv[4], rec.argl[4], s, strlen(s));
		free(s);
		if (e < 0)
			break;
		queued++;
	}
	if (r < 0) { /* what came before it is still produced below; then a pause */
		wf_warn("out topic %s: reading the journal %s: %s (trying again in 5 s)", o->topic, o->journal,
			strerror(-r));
		exposures_rewind(o);
	}
	if (e < 0 || (queued && (rd_kafka_flush(o->rk, OUT_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR || o->failed))) {
		o->errors++;
		wf_warn("out topic %s: exposures after LSN %" PRIu64 " were not acked whole: produced again", o->topic,
			o->ecursor);
		exposures_rewind(o);
		o->enext_ns = wf_now_ns() + 10 * OUT_EVERY_NS; /* back off: 1 s */
		return;
	}
	if (r < 0)
		o->enext_ns = wf_now_ns() + 50 * OUT_EVERY_NS;
	else if (queued == OUT_ROUND || scanned > OUT_SCAN_MAX)
		o->enext_ns = 0; /* more waiting: at once */
	if (queued && (e = cursor_write(o->ecursor_path, last)) < 0) {
		wf_warn("cannot write %s: %s (this round is produced again after a restart)", o->ecursor_path,
			strerror(-e));
		o->errors++;
	}
	o->eproduced += queued;
	o->ecursor = last;
}

void kafka_out_pump(struct kafka_out *o)
{
	if (!o->topic)
		return;
	transitions_round(o);
	exposures_round(o);
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
	exposures_rewind(o);
}
