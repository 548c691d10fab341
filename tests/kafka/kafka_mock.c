/*
 * kafka_mock.c - weft-test-kafka-mock: librdkafka's mock cluster
 * (rdkafka_mock.h), brokers on loopback, for the Kafka integration tests
 * (test_kafka.py). No broker needs installing and the protocol on the wire
 * is real: kcat and weft-kafka talk to it as to Kafka.
 *
 *   weft-test-kafka-mock TOPIC PARTITIONS [BROKERS]
 *
 * Creates TOPIC (or each of a comma-separated list: the out topic of
 * --kafka-out-topic too) with PARTITIONS partitions, prints the bootstrap address
 * on one line, and serves until its stdin closes (the test's pipe: the
 * cluster dies with the test) or SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

int main(int argc, char **argv)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_t *rk;
	char err[256], buf[64];
	int parts, brokers;

	if (argc < 3 || (parts = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: weft-test-kafka-mock TOPIC PARTITIONS [BROKERS]\n");
		return 2;
	}
	brokers = argc > 3 ? atoi(argv[3]) : 1;
	/* quiet: this handle only hosts the cluster (no bootstrap.servers) */
	rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "rd_kafka_new() failed: %s\n", err);
		return 1;
	}
	mc = rd_kafka_mock_cluster_new(rk, brokers < 1 ? 1 : brokers);
	if (!mc) {
		fprintf(stderr, "rd_kafka_mock_cluster_new() failed\n");
		return 1;
	}
	for (char *save = NULL, *t = strtok_r(argv[1], ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (rd_kafka_mock_topic_create(mc, t, parts, 1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "rd_kafka_mock_topic_create(%s) failed\n", t);
			return 1;
		}
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	signal(SIGTERM, SIG_DFL);
	while (read(0, buf, sizeof(buf)) > 0)
		;
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
