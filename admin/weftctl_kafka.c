/*
 * weftctl_kafka.c - weft-kafka's state (issue 20) for `weftctl status` and
 * `weftctl metrics`: DIR/kafka.status, the JSON weft-kafka rewrites 5 times
 * a second (kafka/main.c). Reads that file only. Linked into weftctl.
 */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "admin/weftctl_int.h"

static json_t *load(const struct wf_cli_opts *o, long long *ret_age_s)
{
	char path[PATH_MAX];
	struct stat sb;
	json_t *j;

	snprintf(path, sizeof(path), "%s/kafka.status", o->dir);
	if (stat(path, &sb) < 0)
		return NULL;
	j = json_load_file(path, 0, NULL);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	*ret_age_s = (long long)(time(NULL) - sb.st_mtime);
	return j;
}

static long long num(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

void wf_cli_kafka_status(const struct wf_cli_opts *o)
{
	long long age, lag = 0;
	json_t *j = load(o, &age), *parts, *p;
	size_t i;

	if (!j)
		return;
	parts = json_object_get(j, "partitions");
	json_array_foreach(parts, i, p)
		lag += num(p, "lag") > 0 ? num(p, "lag") : 0;
	printf("kafka    topic %s, group %s: %lld journaled, %lld already journaled (skipped), %lld bad, "
	       "%lld rebalances, lag %lld%s\n",
	       json_string_value(json_object_get(j, "topic")), json_string_value(json_object_get(j, "group")),
	       num(j, "journaled"), num(j, "skipped"), num(j, "bad"), num(j, "rebalances"), lag,
	       age > 5 ? " (STALE: weft-kafka has not written its status for a while)" : "");
	json_array_foreach(parts, i, p)
		printf("  partition %lld: committed %lld, high %lld, lag %lld\n", num(p, "partition"),
		       num(p, "committed"), num(p, "high"), num(p, "lag"));
	if (json_string_value(json_object_get(j, "out_topic")))
		printf("  out topic %s: %lld transitions produced (cursor %lld), %lld exposures (cursor %lld), "
		       "%lld failed rounds\n",
		       json_string_value(json_object_get(j, "out_topic")), num(j, "out_produced"), num(j, "out_cursor"),
		       num(j, "out_exposures"), num(j, "out_exposure_cursor"), num(j, "out_errors"));
	json_decref(j);
}

int wf_cli_kafka_metrics(const struct wf_cli_opts *o, struct wf_buf *b)
{
	long long age;
	json_t *j = load(o, &age), *parts, *p;
	static const char *const counters[][2] = {
		{ "journaled", "Kafka messages journaled as EVENTs by this weft-kafka run" },
		{ "skipped", "Kafka messages skipped because the journal already held them" },
		{ "bad", "Kafka messages refused (not JSON, missing fields, unknown event type)" },
		{ "rebalances", "consumer group rebalances seen by this weft-kafka run" },
		{ "commit_errors", "offset commits that failed (the journal still skips what it holds)" },
		{ "out_produced", "segment transitions produced to --kafka-out-topic and acked, this run" },
		{ "out_exposures", "experiment exposures produced to --kafka-out-topic and acked, this run" },
		{ "out_errors", "--kafka-out-topic rounds not acked whole (produced again)" },
	};
	size_t i;
	int e = 0;

	if (!j)
		return 0;
	for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]) && e == 0; k++)
		e = wf_buf_printf(b, "# HELP weft_kafka_%s_total %s\n# TYPE weft_kafka_%s_total counter\nweft_kafka_%s_total %lld\n",
				  counters[k][0], counters[k][1], counters[k][0], counters[k][0], num(j, counters[k][0]));
	if (e == 0)
		e = wf_buf_printf(b, "# HELP weft_kafka_lag Kafka messages of a partition not yet durable here\n"
				     "# TYPE weft_kafka_lag gauge\n");
	parts = json_object_get(j, "partitions");
	json_array_foreach(parts, i, p)
		if (e == 0)
			e = wf_buf_printf(b, "weft_kafka_lag{partition=\"%lld\"} %lld\n", num(p, "partition"),
					  num(p, "lag"));
	json_decref(j);
	return e;
}
