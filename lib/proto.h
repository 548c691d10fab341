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
#define WF_ANON_USER "-"

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
	WF_CMD_COUNT
};

/* Name <-> code. *_from_name returns -1 for an unknown name. */
const char *wf_event_name(int type);
int wf_event_from_name(const char *s, size_t len);
const char *wf_page_name(int page);
int wf_page_from_name(const char *s, size_t len);
const char *wf_visitor_name(int v);
int wf_visitor_from_name(const char *s, size_t len);

/* Valid id: 1..WF_ID_MAX bytes, printable, no spaces or control bytes. */
int wf_id_valid(const char *s, size_t len);

#endif
