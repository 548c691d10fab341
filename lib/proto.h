/*
 * proto.h - the vocabulary every weft component agrees on: event types and
 * their strengths, page types, visitor types, id limits, client commands.
 *
 * Used by weft-ingest (validation), weft-ranker and the scoring library,
 * weft-batch and weft-eval. Adding a value here is a protocol change.
 */
#ifndef WF_PROTO_H
#define WF_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define WF_ID_MAX 128 /* session, user and item ids: bytes */
#define WF_ANON_USER "-" /* the user argument of an anonymous visitor */
#define WF_RECS_MAX_K 500 /* RECS k: 1..WF_RECS_MAX_K */
#define WF_SIZE_NAME_MAX 11 /* a size name (RECS SIZE, STOCK): bytes */

enum wf_event_type {
	WF_EV_VIEW = 0,
	WF_EV_CLICK,
	WF_EV_PDP,
	WF_EV_HOVER,
	WF_EV_DWELL,
	WF_EV_SCROLL,
	WF_EV_SEARCH,
	WF_EV_CART_ADD,
	WF_EV_CART_REMOVE,
	WF_EV_PURCHASE,
	WF_EV_COUNT
};

enum wf_page_type {
	WF_PAGE_HOME = 0,
	WF_PAGE_PDP,
	WF_PAGE_CART,
	WF_PAGE_SEARCH,
	WF_PAGE_CATEGORY,
	WF_PAGE_EMAIL,
	WF_PAGE_COUNT
};

enum wf_visitor_type {
	WF_VISITOR_RETURNING = 0, /* the snapshot knows the user */
	WF_VISITOR_NEW,           /* anonymous, or a user the snapshot lacks */
	WF_VISITOR_COUNT
};

/* Client commands forwarded from weft-ingest to a ranker. */
enum wf_cmd {
	WF_CMD_EVENT = 1,
	WF_CMD_RECS,
	WF_CMD_RERANK,
	WF_CMD_HISTORY,
	WF_CMD_SEGMENTS,
	WF_CMD_SEGPREVIEW,      /* ingest asks every shard; each answers for its own sessions (issue 16) */
	WF_CMD_COUNT
};

/* One argument of a request: len bytes at p (not NUL-terminated). */
struct wf_arg {
	const char *p;
	uint32_t len;
};

/*
 * The client commands weft-ingest and the rankers know: name, code, how
 * many arguments follow the name, and the usage a wrong count gets. One
 * table (proto.c) for both processes.
 */
struct wf_cmd_info {
	const char *name;
	int code;               /* enum wf_cmd; 0: answered by weft-ingest itself */
	uint16_t min_args;      /* arguments after the name */
	uint16_t max_args;      /* UINT16_MAX: no bound here */
	uint16_t pairs_after;   /* not 0: the arguments past this many come in pairs */
	const char *usage;      /* "<NAME> wants: ..." (the error for a wrong count) */
};

/* The command named s (any case), or NULL. */
const struct wf_cmd_info *wf_cmd_find(const char *s, size_t len);
/* The command of code (enum wf_cmd), or NULL. */
const struct wf_cmd_info *wf_cmd_of(int code);
/* 0 if nargs arguments after the name fit cmd's arity, else -EINVAL (the
 * caller answers "ERR " cmd->usage). */
int wf_cmd_arity(const struct wf_cmd_info *cmd, uint32_t nargs);

/* 1 if the user argument names the anonymous visitor (WF_ANON_USER). */
static inline int wf_user_is_anon(const char *p, size_t len)
{
	return len == 1 && p[0] == WF_ANON_USER[0];
}

/* A RECS's arguments after session and user, parsed. */
struct wf_recs_args {
	uint32_t k;             /* 1..WF_RECS_MAX_K */
	int page;               /* enum wf_page_type; WF_PAGE_HOME when not given */
	int explain;            /* EXPLAIN given */
	const struct wf_arg *anchor; /* ANCHOR's item, or NULL */
	const struct wf_arg *size;   /* SIZE's size, or NULL */
};

/*
 * Parse RECS's arguments: argv[0..argc) = session user k [PAGE p]
 * [ANCHOR item] [EXPLAIN] [SIZE s] (options in any order, any case; the
 * last of a repeated one wins). Session and user are not checked here;
 * ANCHOR's item and SIZE's name are. Returns 0 (*ret filled; anchor and
 * size point into argv), or:
 *   -EINVAL  fewer than 3 arguments (usage),
 *   -ERANGE  k is not an integer in 1..WF_RECS_MAX_K (*ret_bad: its index),
 *   -ENOENT  unknown page type (*ret_bad: its index),
 *   -EBADMSG an argument that is no option (*ret_bad: its index),
 *   -EILSEQ  ANCHOR's item is not a valid id (wf_id_valid; *ret_bad: its index),
 *   -EMSGSIZE SIZE's name is empty, over WF_SIZE_NAME_MAX bytes or not
 *            printable (*ret_bad: its index).
 */
int wf_recs_args_parse(const struct wf_arg *argv, uint32_t argc, struct wf_recs_args *ret, uint32_t *ret_bad);
/* The words (without "ERR ") a client gets for wf_recs_args_parse's error
 * e and the argument at fault (NULL for -EINVAL), its first 64 bytes
 * quoted and escaped, into out[0..n) (NUL-terminated, cut to fit). */
void wf_recs_args_error(int e, const struct wf_arg *bad, char *out, size_t n);

/*
 * RERANK's arguments: argv[0..argc) = session user item... Ids are not
 * checked here. RERANK takes no options: an item that is a RECS option
 * word (EXPLAIN, any case) is refused rather than ranked as an item.
 * Returns 0, or -EBADMSG (*ret_bad: its index).
 */
int wf_rerank_args_check(const struct wf_arg *argv, uint32_t argc, uint32_t *ret_bad);

/* Name <-> code. *_from_name returns -1 for an unknown name. */
const char *wf_event_name(int type);
int wf_event_from_name(const char *s, size_t len);
const char *wf_page_name(int page);
int wf_page_from_name(const char *s, size_t len);
const char *wf_visitor_name(int v);
int wf_visitor_from_name(const char *s, size_t len);

/* Valid id: 1..WF_ID_MAX bytes, printable, no spaces or control bytes. */
int wf_id_valid(const char *s, size_t len);
/* Valid size name: 1..WF_SIZE_NAME_MAX bytes, as an id otherwise. */
int wf_size_name_valid(const char *s, size_t len);

#endif
