/*
 * proto.c - names of event, page and visitor types (see proto.h).
 * Linked into every program through libweft.
 */
#include "lib/proto.h"

#include <string.h>
#include <strings.h>

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
