/*
 * sub_hiredis.c - a subscriber written against hiredis as a store's app
 * would write it, for tests/integration/test_segments.py: connects to
 * SOCKET, SUBSCRIBEs (or PSUBSCRIBEs, with -p) to the names given and
 * prints each message's payload on its own line (flushed), until N
 * messages came (N = 0: until killed) or the connection ends. Exit 0
 * after N messages, 1 on any error. Built into the test tree only.
 *
 *   weft-test-sub SOCKET N [-p] NAME...
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	redisContext *c;
	redisReply *r;
	long want, got = 0;
	int pat = 0, first = 3;

	if (argc < 4) {
		fprintf(stderr, "usage: weft-test-sub SOCKET N [-p] NAME...\n");
		return 2;
	}
	want = strtol(argv[2], NULL, 10);
	if (strcmp(argv[3], "-p") == 0) {
		pat = 1;
		first = 4;
	}
	c = redisConnectUnix(argv[1]);
	if (!c || c->err) {
		fprintf(stderr, "weft-test-sub: cannot connect: %s\n", c ? c->errstr : "out of memory");
		return 1;
	}
	for (int i = first; i < argc; i++)
		redisAppendCommand(c, pat ? "PSUBSCRIBE %s" : "SUBSCRIBE %s", argv[i]);
	for (int i = first; i < argc; i++) {
		if (redisGetReply(c, (void **)&r) != REDIS_OK || r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
			fprintf(stderr, "weft-test-sub: bad confirmation\n");
			return 1;
		}
		freeReplyObject(r);
	}
	printf("subscribed\n");
	fflush(stdout);
	while (want == 0 || got < want) {
		if (redisGetReply(c, (void **)&r) != REDIS_OK) {
			fprintf(stderr, "weft-test-sub: %s\n", c->errstr);
			redisFree(c);
			return 1;
		}
		if (r->type == REDIS_REPLY_ARRAY && r->elements >= 3 && r->element[r->elements - 1]->type == REDIS_REPLY_STRING) {
			printf("%s\n", r->element[r->elements - 1]->str);
			fflush(stdout);
			got++;
		}
		freeReplyObject(r);
	}
	redisFree(c);
	return 0;
}
