/*
 * proto.c - names of event, page and visitor types, and the client
 * command schema (see proto.h). Linked into every program through libweft.
 */
#include "lib/proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

static const char *const event_names[WF_EV_COUNT] = {
	"view", "click", "pdp", "hover", "dwell", "scroll", "search", "cart_add", "cart_remove", "purchase",
};
static const char *const page_names[WF_PAGE_COUNT] = {
	"home", "pdp", "cart", "search", "category", "email",
};
static const char *const visitor_names[WF_VISITOR_COUNT] = { "returning", "new" };

static int lookup(const char *const *names, int n, const char *s, size_t len)
{
	for (int i = 0; i < n; i++)
		if (strlen(names[i]) == len && strncasecmp(names[i], s, len) == 0)
			return i;
	return -1;
}

const char *wf_event_name(int t)
{
	return (t >= 0 && t < WF_EV_COUNT) ? event_names[t] : "?";
}

int wf_event_from_name(const char *s, size_t len)
{
	return lookup(event_names, WF_EV_COUNT, s, len);
}

const char *wf_page_name(int p)
{
	return (p >= 0 && p < WF_PAGE_COUNT) ? page_names[p] : "?";
}

int wf_page_from_name(const char *s, size_t len)
{
	return lookup(page_names, WF_PAGE_COUNT, s, len);
}

const char *wf_visitor_name(int v)
{
	return (v >= 0 && v < WF_VISITOR_COUNT) ? visitor_names[v] : "?";
}

int wf_visitor_from_name(const char *s, size_t len)
{
	return lookup(visitor_names, WF_VISITOR_COUNT, s, len);
}

int wf_id_valid(const char *s, size_t len)
{
	if (len == 0 || len > WF_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

int wf_size_name_valid(const char *s, size_t len)
{
	return len <= WF_SIZE_NAME_MAX && wf_id_valid(s, len);
}

static const struct wf_cmd_info cmds[] = {
	{ "EVENT", WF_CMD_EVENT, 4, UINT16_MAX, 4, "EVENT wants: session user type item [field value]..." },
	{ "RECS", WF_CMD_RECS, 3, UINT16_MAX, 0, "RECS wants: session user k [PAGE p] [ANCHOR item] [EXPLAIN] [SIZE s]" },
	{ "RERANK", WF_CMD_RERANK, 3, UINT16_MAX, 0,
	  "RERANK wants: session user item... (no options: RECS ... EXPLAIN explains a ranking)" },
	{ "HISTORY", WF_CMD_HISTORY, 1, 1, 0, "HISTORY wants: session" },
	{ "SEGMENTS", WF_CMD_SEGMENTS, 2, 2, 0, "SEGMENTS wants: session user" },
	{ "SEGPREVIEW", WF_CMD_SEGPREVIEW, 1, 1, 0, "SEGPREVIEW wants: rule" },
	{ "STOCK", 0, 1, 3, 0, "STOCK wants: item size qty | item [size]" },
};

static int arg_is(const struct wf_arg *a, const char *s)
{
	size_t n = strlen(s);

	return a->len == n && strncasecmp(a->p, s, n) == 0;
}

const struct wf_cmd_info *wf_cmd_find(const char *s, size_t len)
{
	for (size_t i = 0; i < WF_ARRAY_SIZE(cmds); i++)
		if (strlen(cmds[i].name) == len && strncasecmp(cmds[i].name, s, len) == 0)
			return &cmds[i];
	return NULL;
}

const struct wf_cmd_info *wf_cmd_of(int code)
{
	for (size_t i = 0; i < WF_ARRAY_SIZE(cmds); i++)
		if (code && cmds[i].code == code)
			return &cmds[i];
	return NULL;
}

int wf_cmd_arity(const struct wf_cmd_info *cmd, uint32_t nargs)
{
	if (nargs < cmd->min_args || nargs > cmd->max_args)
		return -EINVAL;
	if (cmd->pairs_after && (nargs - cmd->pairs_after) % 2)
		return -EINVAL;
	return 0;
}

int wf_recs_args_parse(const struct wf_arg *argv, uint32_t argc, struct wf_recs_args *ret, uint32_t *ret_bad)
{
	struct wf_recs_args a = { .page = WF_PAGE_HOME };
	int64_t k;

	if (argc < 3)
		return -EINVAL;
	if (wf_parse_i64(argv[2].p, argv[2].len, &k) < 0 || k < 1 || k > WF_RECS_MAX_K) {
		*ret_bad = 2;
		return -ERANGE;
	}
	a.k = (uint32_t)k;
	for (uint32_t i = 3; i < argc; i++) {
		if (arg_is(&argv[i], "EXPLAIN")) {
			a.explain = 1;
		} else if (i + 1 < argc && arg_is(&argv[i], "PAGE")) {
			a.page = wf_page_from_name(argv[i + 1].p, argv[i + 1].len);
			if (a.page < 0) {
				*ret_bad = i + 1;
				return -ENOENT;
			}
			i++;
		} else if (i + 1 < argc && arg_is(&argv[i], "ANCHOR")) {
			a.anchor = &argv[++i];
			if (!wf_id_valid(a.anchor->p, a.anchor->len)) {
				*ret_bad = i;
				return -EILSEQ;
			}
		} else if (i + 1 < argc && arg_is(&argv[i], "SIZE")) {
			a.size = &argv[++i];
			if (!wf_size_name_valid(a.size->p, a.size->len)) {
				*ret_bad = i;
				return -EMSGSIZE;
			}
		} else {
			*ret_bad = i;
			return -EBADMSG;
		}
	}
	*ret = a;
	return 0;
}

int wf_rerank_args_check(const struct wf_arg *argv, uint32_t argc, uint32_t *ret_bad)
{
	for (uint32_t i = 2; i < argc; i++)
		if (arg_is(&argv[i], "EXPLAIN")) {
			*ret_bad = i;
			return -EBADMSG;
		}
	return 0;
}

void wf_recs_args_error(int e, const struct wf_arg *bad, char *out, size_t n)
{
	char q[300];

	if (bad)
		wf_escape(q, sizeof(q), bad->p, WF_MIN(bad->len, 64u));
	if (e == -ERANGE && bad)
		snprintf(out, n, "RECS k must be an integer from 1 to %u, not '%s'", WF_RECS_MAX_K, q);
	else if (e == -ENOENT && bad)
		snprintf(out, n, "unknown page type '%s' (home pdp cart search category email)", q);
	else if (e == -EBADMSG && bad)
		snprintf(out, n, "RECS: unexpected argument '%s'", q);
	else if (e == -EILSEQ && bad)
		snprintf(out, n, "RECS ANCHOR wants an item id (1 to %u printable bytes, no spaces), not '%s'",
			 WF_ID_MAX, q);
	else if (e == -EMSGSIZE && bad)
		snprintf(out, n, "RECS SIZE wants a size name (1 to %u printable bytes, no spaces), not '%s'",
			 WF_SIZE_NAME_MAX, q);
	else
		snprintf(out, n, "%s", wf_cmd_of(WF_CMD_RECS)->usage);
}
