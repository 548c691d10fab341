/*
 * weftctl_seg.c - `weftctl segment define NAME RULE | drop NAME | list |
 * preview RULE`: weft-admin's SEGMENT commands (admin_seg.c) with human
 * output (a rule weft-admin refuses is shown with a caret under the byte
 * at fault) or --json. A rule may be one quoted argument or several words
 * (joined by spaces). Linked into weftctl.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/weftctl_int.h"

/* pos[from..n) joined by spaces into b (NUL-terminated). */
static int join(struct wf_buf *b, int n, const char **pos, int from)
{
	for (int i = from; i < n; i++)
		if (wf_buf_printf(b, "%s%s", i > from ? " " : "", pos[i]) < 0)
			return -1;
	return b->len ? 0 : -1;
}

/* An error "... at N: ..." about rule: the message, then the rule with a
 * caret under byte N (1-based). */
static void print_rule_error(const char *msg, const char *rule)
{
	const char *at = rule ? strstr(msg, " at ") : NULL;
	long col = at ? strtol(at + 4, NULL, 10) : 0;

	fprintf(stderr, "weftctl: %s\n", msg);
	if (col < 1 || (size_t)col > strlen(rule) + 1)
		return;
	fprintf(stderr, "  %s\n  %*s^\n", rule, (int)(col - 1), "");
}

static void print_human(const char *what, const redisReply *r)
{
	if (!strcasecmp(what, "list")) {
		if (!r->elements) {
			printf("no segments defined\n");
			return;
		}
		for (size_t i = 0; i < r->elements; i++)
			printf("%-24s v%-4lld %s\n", wf_cli_get(r->element[i], "name") ? wf_cli_get(r->element[i], "name")->str : "?",
			       wf_cli_get_int(r->element[i], "version", 0),
			       wf_cli_get(r->element[i], "rule") ? wf_cli_get(r->element[i], "rule")->str : "");
	} else if (!strcasecmp(what, "preview")) {
		const redisReply *s = wf_cli_get(r, "sample");

		printf("matches %lld shoppers now (%lld new, %lld returning)\n", wf_cli_get_int(r, "matched", 0),
		       wf_cli_get_int(r, "new", 0), wf_cli_get_int(r, "returning", 0));
		for (size_t i = 0; s && i < s->elements; i++)
			printf("  session %s  user %s\n", wf_cli_get(s->element[i], "session")->str,
			       wf_cli_get(s->element[i], "user")->str);
	} else if (!strcasecmp(what, "drop")) {
		printf("segment %s dropped (its version counter stays at %lld)\n", wf_cli_get(r, "name")->str,
		       wf_cli_get_int(r, "version", 0));
	} else {
		printf("segment %s defined, version %lld: %s\n", wf_cli_get(r, "name")->str,
		       wf_cli_get_int(r, "version", 0), wf_cli_get(r, "rule")->str);
	}
}

int wf_cli_segment(const struct wf_cli_opts *o, int npos, const char **pos)
{
	const char *argv[4] = { "SEGMENT", NULL, NULL, NULL };
	struct wf_buf rule = { 0 };
	redisContext *c;
	redisReply *r;
	int argc = 2, rc = 1;

	if (npos >= 4 && !strcasecmp(pos[1], "define")) {
		argv[1] = "DEFINE";
		argv[2] = pos[2];
		if (join(&rule, npos, pos, 3) < 0)
			return 1;
		argv[3] = rule.data;
		argc = 4;
	} else if (npos == 3 && !strcasecmp(pos[1], "drop")) {
		argv[1] = "DROP";
		argv[2] = pos[2];
		argc = 3;
	} else if (npos == 2 && !strcasecmp(pos[1], "list")) {
		argv[1] = "LIST";
	} else if (npos >= 3 && !strcasecmp(pos[1], "preview")) {
		argv[1] = "PREVIEW";
		if (join(&rule, npos, pos, 2) < 0)
			return 1;
		argv[2] = rule.data;
		argc = 3;
	} else {
		fprintf(stderr, "weftctl: segment wants: define NAME RULE | drop NAME | list | preview RULE\n");
		return 2;
	}
	if (!(c = wf_cli_connect(o, 0))) {
		wf_buf_fini(&rule);
		return 1;
	}
	r = redisCommandArgv(c, argc, argv, NULL);
	if (!r) {
		fprintf(stderr, "weftctl: %s/admin.sock: %s (weft-admin went away?)\n", o->dir,
			c->errstr[0] ? c->errstr : "connection lost");
	} else if (o->json) {
		struct wf_buf b = { 0 };

		if (r->type == REDIS_REPLY_ERROR) {
			wf_buf_printf(&b, "{\"ok\":false,\"error\":");
			wf_cli_json_str(&b, r->str + (strncmp(r->str, "ERR ", 4) ? 0 : 4),
					r->len - (strncmp(r->str, "ERR ", 4) ? 0 : 4));
			wf_buf_printf(&b, "}");
		} else {
			wf_cli_json(&b, r);
		}
		printf("%.*s\n", (int)b.len, b.data ? b.data : "");
		wf_buf_fini(&b);
		rc = r->type == REDIS_REPLY_ERROR;
	} else if (r->type == REDIS_REPLY_ERROR) {
		print_rule_error(strncmp(r->str, "ERR ", 4) ? r->str : r->str + 4, rule.data);
	} else {
		print_human(pos[1], r);
		rc = 0;
	}
	freeReplyObject(r);
	redisFree(c);
	wf_buf_fini(&rule);
	return rc;
}
