/*
 * load.c - weft-load: shoppers walking sessions on a generated store, as
 * a store's servers would send them, against weft and against Redis in
 * the same run. Benchmark tooling only; reports, never asserts a time.
 *
 *   weft-load --events FILE [--weft SOCK] [--redis SOCK] [-c CONNS] [-P PAGES]
 *             [-d SECONDS] [-n PAGEVIEWS] [--warmup SECONDS] [--rounds R] [--seed S]
 *             [--csv FILE] [--plot FILE.png] [--label NAME] ...   (--help for all)
 *
 * Sessions: the first --sessions sessions of weft-gen's events.csv (the
 * one the snapshot was built from), replayed as templates: their events,
 * items, values and users, so the proportions of views, product pages,
 * searches, carts, purchases, session lengths, and returning users versus
 * anonymous visitors are the generator's. Each simulated session takes a
 * template at random and a session id never used before, so every RECS
 * is a fresh ranking.
 *
 * A page view is one round trip: the interaction events since the last
 * page (hover, click, scroll, dwell, cart_remove: beacons a store batches)
 * and the page's own event (view: a category page, pdp, search, cart_add:
 * the cart, purchase: the cart), then the recommendations for that page:
 *
 *   weft:   EVENT s u type item [field value] ...  RECS s u 20 PAGE p
 *   redis:  XADD events * s s u u t type i item [field value] ...
 *           LRANGE <user> 0 19   (an anonymous visitor: LRANGE popular 0 19)
 *
 * pipelined on one connection; the next page view of that shopper goes
 * out when the last reply is in. -c connections each carry -P shoppers
 * (so up to -P page views in flight per connection); one thread, epoll,
 * non-blocking Unix sockets, replies parsed by hiredis's redisReader with
 * reply functions that only check (no allocation per reply).
 *
 * Both targets get the same shoppers: per round, each shopper's sequence
 * of templates comes from (--seed, round, connection, shopper). Rounds
 * alternate weft then redis; the round whose page-view ratio is the
 * median is marked in the CSV and printed as "PAGEVIEW ratio". A run is
 * bounded by -d and by -n (both, whichever comes first); after the bound,
 * replies still due get --drain seconds, then count as errors.
 *
 * Checks: EVENT must answer :1, XADD an id, RECS and LRANGE an array of
 * strings, non-empty for a known user. Anything else (an -ERR, a closed
 * connection, no reply) is a bad reply, its page view an error; both are
 * counted and the first few are printed. Exit 0 if every page view was
 * good, 1 if any was not (or a reply never came, or no page view was
 * answered at all), 2 on bad usage or a socket that does not answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench/load.h"
#include "lib/csv.h"
#include "lib/proto.h"
#include "lib/util.h"
#include "tools/rng.h"

#define LOAD_MAX_GROUP 32u /* events in one page view at most */
#define LOAD_POPULAR 20u   /* items in the popular list weft-load creates in Redis */
#define LOAD_SHOWN_ERRORS 5

struct load_opt {
	const char *events, *sock[LOAD_NTARGETS], *pids[LOAD_NTARGETS];
	const char *csv, *plot, *label, *key_prefix, *anon_key, *stream;
	char prefix[32]; /* of the session ids: unique to this process */
	uint32_t conns, pipeline, rounds, sessions, k;
	double seconds, warmup, drain, anon; /* anon < 0: the log's share */
	double rate; /* page views per second, all shoppers together; 0: each as fast as replies come */
	uint64_t count, seed;
	int quiet;
};

/* ---- session templates from events.csv ---- */

struct tev {
	uint32_t tmpl;  /* while loading: its template; then unused */
	uint32_t item;  /* arena offset */
	uint32_t value; /* arena offset; 0: no value */
	uint8_t type;   /* enum wf_event_type */
};

struct tmpl {
	uint32_t user;  /* arena offset; 0: anonymous */
	uint32_t first; /* index of its first event */
	uint32_t n;
};

struct tmpls {
	struct wf_buf arena; /* NUL-terminated strings; offset 0 is "" */
	struct tev *ev;
	size_t nev, evcap;
	struct tmpl *t;
	uint32_t nt;
	uint32_t *known, *anon, nknown, nanon;
	uint32_t popular[LOAD_POPULAR], npopular; /* the most viewed items, arena offsets */
};

static const char *str(const struct tmpls *ts, uint32_t off)
{
	return ts->arena.data + off;
}

static int intern(struct tmpls *ts, const char *p, size_t n, uint32_t *ret)
{
	size_t off = ts->arena.len;
	static const char zero = 0;

	if (off > UINT32_MAX - n - 1 || wf_buf_append(&ts->arena, p, n) < 0 || wf_buf_append(&ts->arena, &zero, 1) < 0)
		return -ENOMEM;
	*ret = (uint32_t)off;
	return 0;
}

/* The event types that open a page (and so end a page view's group). */
static int is_page_event(int type)
{
	return type == WF_EV_VIEW || type == WF_EV_PDP || type == WF_EV_SEARCH || type == WF_EV_CART_ADD ||
	       type == WF_EV_PURCHASE;
}

static int page_of(int type)
{
	switch (type) {
	case WF_EV_PDP:
		return WF_PAGE_PDP;
	case WF_EV_SEARCH:
		return WF_PAGE_SEARCH;
	case WF_EV_CART_ADD:
	case WF_EV_PURCHASE:
		return WF_PAGE_CART;
	default:
		return WF_PAGE_CATEGORY;
	}
}

/* The EVENT field weft-gen's value column is, by type; NULL: none. */
static const char *field_of(int type)
{
	switch (type) {
	case WF_EV_DWELL:
		return "ms";
	case WF_EV_SCROLL:
		return "depth";
	case WF_EV_SEARCH:
		return "q";
	case WF_EV_CART_ADD:
	case WF_EV_PURCHASE:
		return "qty";
	default:
		return NULL;
	}
}

struct sess_map {
	uint64_t *key; /* wf_hash64 of the session id; 0 empty */
	uint32_t *val, mask;
};

static uint32_t *sess_slot(struct sess_map *m, uint64_t h)
{
	uint32_t i = (uint32_t)h & m->mask;

	h |= 1;
	while (m->key[i] && m->key[i] != h)
		i = (i + 1) & m->mask;
	if (!m->key[i]) {
		m->key[i] = h;
		m->val[i] = UINT32_MAX;
	}
	return &m->val[i];
}

struct csv_cols {
	int ts, user, sess, event, item, value; /* value: -1 if absent */
	uint32_t need;                           /* fields a row needs */
};

static int find_cols(const struct wf_csv *c, struct csv_cols *ret)
{
	struct csv_cols k = { -1, -1, -1, -1, -1, -1, 0 };
	static const char *const name[] = { "ts", "user_id", "session_id", "event", "item_id", "value" };
	int *slot[] = { &k.ts, &k.user, &k.sess, &k.event, &k.item, &k.value };

	for (uint32_t i = 0; i < c->nfields; i++)
		for (int j = 0; j < 6; j++)
			if (c->field[i].len == strlen(name[j]) && !memcmp(c->field[i].p, name[j], c->field[i].len))
				*slot[j] = (int)i;
	if (k.ts < 0 || k.user < 0 || k.sess < 0 || k.event < 0 || k.item < 0)
		return -EPROTO;
	k.need = (uint32_t)WF_MAX(WF_MAX(WF_MAX(k.ts, k.user), WF_MAX(k.sess, k.event)), k.item) + 1;
	*ret = k;
	return 0;
}

static int add_event(struct tmpls *ts, uint32_t t, int type, const struct wf_csv_field *item,
		     const struct wf_csv_field *value)
{
	struct tev *e;

	if (ts->nev == ts->evcap) {
		size_t ncap = ts->evcap ? ts->evcap * 2 : 1 << 16;
		struct tev *n = realloc(ts->ev, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		ts->ev = n;
		ts->evcap = ncap;
	}
	e = &ts->ev[ts->nev];
	*e = (struct tev){ .tmpl = t, .type = (uint8_t)type };
	/* weft wants an item id on every EVENT; a search has none ("-", as weft-eval sends). */
	if (intern(ts, item->len ? item->p : "-", item->len ? item->len : 1, &e->item) < 0)
		return -ENOMEM;
	if (field_of(type) && value && value->len && intern(ts, value->p, value->len, &e->value) < 0)
		return -ENOMEM;
	ts->nev++;
	ts->t[t].n++;
	return 0;
}

/* A table for n keys (half full at most): 0 or -ENOMEM. */
static int map_init(struct sess_map *m, size_t n)
{
	uint32_t cap = 1;

	while (cap < 2 * n + 2)
		cap <<= 1;
	m->key = calloc(cap, sizeof(*m->key));
	m->val = calloc(cap, sizeof(*m->val));
	m->mask = cap - 1;
	return m->key && m->val ? 0 : -ENOMEM;
}

static void map_fini(struct sess_map *m)
{
	free(m->key);
	free(m->val);
}

/* The most viewed items, for the popular list. Items are not interned
 * once each, so views are counted by the string's hash, each kept with
 * its first-seen copy. */
static int popular_items(struct tmpls *ts)
{
	struct sess_map m = { 0 };
	uint32_t *views = NULL;
	int r = map_init(&m, ts->nev);

	if (r == 0 && !(views = calloc((size_t)m.mask + 1, sizeof(*views))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < ts->nev; i++) {
		const char *item = str(ts, ts->ev[i].item);
		uint32_t *v;

		if (ts->ev[i].type != WF_EV_VIEW)
			continue;
		v = sess_slot(&m, wf_hash64(item, strlen(item)));
		if (*v == UINT32_MAX)
			*v = ts->ev[i].item;
		views[v - m.val]++;
	}
	for (ts->npopular = 0; r == 0 && ts->npopular < LOAD_POPULAR; ts->npopular++) {
		uint32_t best = UINT32_MAX;

		for (uint32_t i = 0; i <= m.mask; i++)
			if (views[i] && (best == UINT32_MAX || views[i] > views[best]))
				best = i;
		if (best == UINT32_MAX)
			break;
		ts->popular[ts->npopular] = m.val[best];
		views[best] = 0;
	}
	free(views);
	map_fini(&m);
	return r;
}

/* Group the events by template (stable: each template's events stay in
 * file order), split the templates into known and anonymous, and pick the
 * most viewed items for the popular list. */
static int finish_templates(struct tmpls *ts)
{
	struct tev *sorted = malloc(WF_MAX(ts->nev, (size_t)1) * sizeof(*sorted));
	uint32_t *at = calloc(ts->nt + 1, sizeof(*at));
	int r = -ENOMEM;

	ts->known = calloc(ts->nt + 1, sizeof(uint32_t));
	ts->anon = calloc(ts->nt + 1, sizeof(uint32_t));
	if (sorted && at && ts->known && ts->anon) {
		for (uint32_t t = 0, acc = 0; t < ts->nt; t++) {
			ts->t[t].first = acc;
			at[t] = acc;
			acc += ts->t[t].n;
			if (ts->t[t].user)
				ts->known[ts->nknown++] = t;
			else
				ts->anon[ts->nanon++] = t;
		}
		for (size_t i = 0; i < ts->nev; i++)
			sorted[at[ts->ev[i].tmpl]++] = ts->ev[i];
		free(ts->ev);
		ts->ev = sorted;
		sorted = NULL;
		r = popular_items(ts);
	}
	free(sorted);
	free(at);
	return r;
}

/* One row of events.csv: kept if its session is (or, while fewer than
 * max are, becomes) a template. 1 read on, 0 stop (past stop_ts), or
 * -ENOMEM. */
static int take_row(struct tmpls *ts, struct sess_map *m, const struct wf_csv *c, const struct csv_cols *col,
		    uint32_t max, int64_t *stop_ts)
{
	const struct wf_csv_field *f = c->field, *sess = &f[col->sess];
	const struct wf_csv_field *value = col->value >= 0 && (uint32_t)col->value < c->nfields ? &f[col->value] : NULL;
	int64_t ts_ms = 0;
	uint32_t *v;
	int type;

	if (c->nfields < col->need)
		return 1;
	(void)wf_parse_i64(f[col->ts].p, f[col->ts].len, &ts_ms);
	if (ts_ms > *stop_ts)
		return 0;
	type = wf_event_from_name(f[col->event].p, f[col->event].len);
	if (type < 0 || !sess->len)
		return 1;
	v = sess_slot(m, wf_hash64(sess->p, sess->len));
	if (*v == UINT32_MAX) {
		if (ts->nt == max) {
			*v = UINT32_MAX - 1; /* seen, not kept */
			return 1;
		}
		*v = ts->nt;
		ts->t[ts->nt] = (struct tmpl){ 0 };
		if (f[col->user].len && intern(ts, f[col->user].p, f[col->user].len, &ts->t[ts->nt].user) < 0)
			return -ENOMEM;
		if (++ts->nt == max)
			*stop_ts = ts_ms + 6 * 3600 * 1000;
	}
	if (*v >= ts->nt)
		return 1;
	return add_event(ts, *v, type, &f[col->item], value) < 0 ? -ENOMEM : 1;
}

/*
 * Read the first max sessions of events.csv (in order of their first
 * event) as templates. Stops reading 6 hours of store time after the
 * last of them started (a session lasts minutes to an hour or two), or
 * at the end of the file.
 */
static int load_templates(const char *path, uint32_t max, struct tmpls *ts, char *err, size_t errlen)
{
	struct wf_csv c;
	struct csv_cols col;
	struct sess_map m = { 0 };
	int64_t stop_ts = INT64_MAX;
	int r;

	memset(ts, 0, sizeof(*ts));
	if ((r = wf_csv_open(&c, path, ',')) < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(-r));
		return r;
	}
	r = map_init(&m, max);
	ts->t = calloc(max, sizeof(*ts->t));
	if (r < 0 || !ts->t || intern(ts, "", 0, &(uint32_t){ 0 }) < 0) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = wf_csv_next(&c)) <= 0 || find_cols(&c, &col) < 0) {
		snprintf(err, errlen, "%s: not an events CSV (header ts,user_id,session_id,event,item_id,value)", path);
		r = -EPROTO;
		goto out;
	}
	while ((r = wf_csv_next(&c)) != 0) {
		if (r == -EPROTO)
			continue;
		if (r < 0 || (r = take_row(ts, &m, &c, &col, max, &stop_ts)) <= 0)
			break;
	}
	if (r < 0) {
		snprintf(err, errlen, "reading %s: %s", path, strerror(-r));
		goto out;
	}
	if (!ts->nt) {
		snprintf(err, errlen, "%s has no sessions", path);
		r = -ENODATA;
		goto out;
	}
	r = finish_templates(ts);
	if (r < 0)
		snprintf(err, errlen, "out of memory for %u sessions", ts->nt);
out:
	if (r < 0 && !*err)
		snprintf(err, errlen, "out of memory reading %s", path);
	map_fini(&m);
	wf_csv_close(&c);
	return r < 0 ? r : 0;
}

static void free_templates(struct tmpls *ts)
{
	wf_buf_fini(&ts->arena);
	free(ts->ev);
	free(ts->t);
	free(ts->known);
	free(ts->anon);
}

/* ---- shoppers and connections ---- */

struct shopper {
	struct gen_rng rng;
	uint32_t tmpl, pos;   /* the session's template; its next event */
	uint32_t nsess;       /* sessions this shopper started */
	uint64_t t0;          /* the page view in flight: sent at (--rate: due at) */
	uint64_t next;        /* --rate: when its next page view is due */
	uint16_t due;         /* its replies still due */
	uint8_t bad, page;    /* any bad reply; the last page type */
	uint8_t meas;         /* issued after the warm-up: measured */
	char sid[64];
};

/* One reply due on a connection, in request order. */
struct due {
	uint32_t shopper;
	uint8_t op;    /* LOAD_EVENT or LOAD_RECS */
	uint8_t known; /* a returning user (an empty list is then an error) */
};

/* What the reply functions saw of the reply being parsed. */
struct rsum {
	int type;
	long long integer;
	int elements, strings;
	char err[120];
};

struct conn {
	int fd, dead;
	redisReader *rd;
	struct rsum rs;
	struct wf_buf out;
	size_t out_off;
	int pollout; /* EPOLLOUT registered */
	struct due *q;
	uint32_t qhead, qtail, qmask; /* free-running, masked */
	struct shopper *sh;
	uint32_t *fresh, nfresh; /* shoppers whose page view waits for the next write */
	uint32_t *parked, nparked; /* --rate: shoppers waiting for their next page view to be due */
};

struct driver {
	const struct load_opt *o;
	const struct tmpls *ts;
	int target, round, ep;
	struct conn *c;
	uint64_t start, deadline, issued; /* measured page views issued */
	uint64_t last_done;
	uint64_t interval; /* --rate: ns between one shopper's page views; 0: none */
	uint32_t nparked;  /* shoppers parked on all connections */
	int stopping;
	struct load_run *run;
	int shown;
	redisReplyObjectFunctions fn; /* the readers' reply functions (rs_*) */
};

/* Reply functions: record the top level, count an array's strings. */
static void *rs_string(const redisReadTask *t, char *s, size_t len)
{
	struct rsum *rs = t->privdata;

	if (t->parent) {
		rs->strings += len > 0;
		return rs;
	}
	rs->type = t->type;
	if (t->type == REDIS_REPLY_ERROR)
		snprintf(rs->err, sizeof(rs->err), "%.*s", (int)WF_MIN(len, sizeof(rs->err) - 1), s);
	return rs;
}

static void *rs_array(const redisReadTask *t, int n)
{
	struct rsum *rs = t->privdata;

	if (!t->parent) {
		rs->type = REDIS_REPLY_ARRAY;
		rs->elements = n;
	}
	return rs;
}

static void *rs_integer(const redisReadTask *t, long long v)
{
	struct rsum *rs = t->privdata;

	if (!t->parent) {
		rs->type = REDIS_REPLY_INTEGER;
		rs->integer = v;
	}
	return rs;
}

static void *rs_nil(const redisReadTask *t)
{
	struct rsum *rs = t->privdata;

	if (!t->parent)
		rs->type = REDIS_REPLY_NIL;
	return rs;
}

static void rs_free(void *p)
{
	(void)p;
}


/* "<c>N\r\n" (c: '*' or '$') at p; returns its length. */
static size_t put_len(char *p, char c, size_t n)
{
	char d[24];
	size_t k = 0, m = 0;

	do
		d[k++] = (char)('0' + n % 10);
	while ((n /= 10));
	p[m++] = c;
	while (k)
		p[m++] = d[--k];
	p[m++] = '\r';
	p[m++] = '\n';
	return m;
}

/* Append one RESP command (argv NUL-terminated strings) to b. */
static int put_cmd(struct wf_buf *b, int argc, const char *const *argv)
{
	size_t len[16], need = 16;

	if (argc > 16)
		return -EINVAL;
	for (int i = 0; i < argc; i++) {
		len[i] = strlen(argv[i]);
		need += len[i] + 32;
	}
	if (wf_buf_reserve(b, need) < 0)
		return -ENOMEM;
	b->len += put_len(b->data + b->len, '*', (size_t)argc);
	for (int i = 0; i < argc; i++) {
		b->len += put_len(b->data + b->len, '$', len[i]);
		memcpy(b->data + b->len, argv[i], len[i]);
		b->len += len[i];
		b->data[b->len++] = '\r';
		b->data[b->len++] = '\n';
	}
	return 0;
}

static void push_due(struct conn *c, uint32_t shopper, int op, int known)
{
	c->q[c->qtail++ & c->qmask] = (struct due){ shopper, (uint8_t)op, (uint8_t)known };
}

static void new_session(struct driver *d, struct shopper *s, uint32_t ci, uint32_t si)
{
	const struct tmpls *ts = d->ts;
	int anon;

	if (d->o->anon < 0)
		anon = gen_below(&s->rng, ts->nt) >= ts->nknown;
	else
		anon = gen_unif(&s->rng) < d->o->anon;
	if (anon && !ts->nanon)
		anon = 0;
	if (!anon && !ts->nknown)
		anon = 1;
	s->tmpl = anon ? ts->anon[gen_below(&s->rng, ts->nanon)] : ts->known[gen_below(&s->rng, ts->nknown)];
	s->pos = 0;
	s->page = WF_PAGE_HOME;
	snprintf(s->sid, sizeof(s->sid), "%s.%d%c.%u.%u.%u", d->o->prefix, d->round, d->target == LOAD_WEFT ? 'w' : 'r',
		 ci, si, s->nsess++);
	d->run->sessions += s->meas;
}

/* One event of shopper s's page view, as EVENT or as XADD. */
static int put_event(struct driver *d, struct conn *c, const struct shopper *s, const char *user,
		     const struct tev *e)
{
	const struct tmpls *ts = d->ts;
	const char *type = wf_event_name(e->type), *item = str(ts, e->item), *field = field_of(e->type);
	const char *wv[] = { "EVENT", s->sid, user, type, item, field, str(ts, e->value) };
	const char *rv[] = { "XADD", d->o->stream, "*", "s", s->sid, "u", user, "t", type, "i", item, field,
			     str(ts, e->value) };
	int extra = field && e->value ? 2 : 0;

	return d->target == LOAD_WEFT ? put_cmd(&c->out, 5 + extra, wv) : put_cmd(&c->out, 11 + extra, rv);
}

/* The page's recommendations: RECS, or LRANGE of the user's list (of the
 * popular list for an anonymous visitor). */
static int put_recs(struct driver *d, struct conn *c, const struct shopper *s, const char *user, int known)
{
	char k[16], last[16], key[WF_ID_MAX + 64];
	const char *wv[] = { "RECS", s->sid, user, k, "PAGE", wf_page_name(s->page) };
	const char *rv[] = { "LRANGE", key, "0", last };

	snprintf(k, sizeof(k), "%u", d->o->k);
	snprintf(last, sizeof(last), "%u", d->o->k - 1);
	snprintf(key, sizeof(key), "%s%s", known ? d->o->key_prefix : "", known ? user : d->o->anon_key);
	return d->target == LOAD_WEFT ? put_cmd(&c->out, 6, wv) : put_cmd(&c->out, 4, rv);
}

/* Queue shopper si's next page view on connection ci, unless the run's
 * bounds say stop: the events up to and including the next page's own
 * (a purchase's lines together: one confirmation page), then its RECS. */
static int issue(struct driver *d, uint32_t ci, uint32_t si, uint64_t now)
{
	struct conn *c = &d->c[ci];
	struct shopper *s = &c->sh[si];
	const struct tmpls *ts = d->ts;
	const struct tmpl *t;
	const char *user;
	uint32_t n = 0;

	if (now >= d->deadline)
		d->stopping = 1;
	if (d->stopping || (d->o->count && now >= d->start && d->issued >= d->o->count))
		return 0;
	s->meas = now >= d->start;
	d->issued += s->meas;
	if (s->pos >= ts->t[s->tmpl].n || !s->nsess)
		new_session(d, s, ci, si);
	t = &ts->t[s->tmpl];
	user = t->user ? str(ts, t->user) : "-";
	while (s->pos < t->n && n < LOAD_MAX_GROUP) {
		const struct tev *e = &ts->ev[t->first + s->pos++];

		if (put_event(d, c, s, user, e) < 0)
			return -ENOMEM;
		push_due(c, si, LOAD_EVENT, t->user != 0);
		n++;
		if (!is_page_event(e->type))
			continue;
		s->page = (uint8_t)page_of(e->type);
		if (e->type != WF_EV_PURCHASE || s->pos == t->n || ts->ev[t->first + s->pos].type != WF_EV_PURCHASE)
			break;
	}
	if (put_recs(d, c, s, user, t->user != 0) < 0)
		return -ENOMEM;
	push_due(c, si, LOAD_RECS, t->user != 0);
	s->due = (uint16_t)(n + 1);
	s->bad = 0;
	c->fresh[c->nfresh++] = si;
	return 0;
}

static void bad_reply(struct driver *d, struct shopper *s, int op, const char *why)
{
	s->bad = 1;
	if (s->meas)
		d->run->bad[op]++;
	if (d->shown < LOAD_SHOWN_ERRORS) {
		d->shown++;
		fprintf(stderr, "weft-load: %s %s: bad %s reply: %s\n", load_target_name(d->target), s->sid,
			load_op_name(d->target, op), why);
	}
}

/* Check one reply against what it answers. */
static void check(struct driver *d, struct conn *c, const struct due *w)
{
	struct shopper *s = &c->sh[w->shopper];
	const struct rsum *rs = &c->rs;
	int weft = d->target == LOAD_WEFT;
	char why[160];

	if (rs->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "-%s", rs->err);
		bad_reply(d, s, w->op, why);
	} else if (w->op == LOAD_EVENT) {
		if (weft ? rs->type != REDIS_REPLY_INTEGER || rs->integer != 1 : rs->type != REDIS_REPLY_STRING)
			bad_reply(d, s, w->op, weft ? "not :1" : "not a stream id");
	} else if (rs->type != REDIS_REPLY_ARRAY || rs->strings != rs->elements) {
		bad_reply(d, s, w->op, "not an array of item ids");
	} else if (rs->elements == 0 && s->meas) {
		if (w->known) {
			d->run->empty_known++;
			bad_reply(d, s, w->op, "no items for a known user");
		} else {
			d->run->empty_anon++;
		}
	}
}

static void conn_lost(struct driver *d, struct conn *c, const char *why);
static void flush_out(struct driver *d, struct conn *c);

static void done_page(struct driver *d, struct conn *c, uint32_t si, uint64_t now)
{
	struct shopper *s = &c->sh[si];

	if (s->meas) {
		load_hist_add(&d->run->h[LOAD_PV], now - s->t0);
		d->run->errors += s->bad;
		if (d->ts->t[s->tmpl].user)
			d->run->known++;
		else
			d->run->anon++;
		d->last_done = now;
	}
	if (d->interval) {
		s->next += d->interval;
		if (s->next > now && !d->stopping) { /* early: wait until due (drive()) */
			c->parked[c->nparked++] = si;
			d->nparked++;
			return;
		}
	}
	if (issue(d, (uint32_t)(c - d->c), si, now) < 0)
		conn_lost(d, c, "out of memory");
}

/* --rate: the parked shoppers whose page view is due by now go out;
 * returns ns until the next one is due (UINT64_MAX: none parked). */
static uint64_t release_due(struct driver *d, uint64_t now)
{
	uint64_t wait = UINT64_MAX;

	for (uint32_t i = 0; d->nparked && i < d->o->conns; i++) {
		struct conn *c = &d->c[i];
		uint32_t kept = 0;
		if (c->dead) {
			d->nparked -= c->nparked;
			c->nparked = 0;
			continue;
		}
		for (uint32_t j = 0; j < c->nparked; j++) {
			uint32_t si = c->parked[j];
			if (c->sh[si].next > now && !d->stopping) {
				wait = WF_MIN(wait, c->sh[si].next - now);
				c->parked[kept++] = si;
			} else if (issue(d, i, si, now) < 0) {
				conn_lost(d, c, "out of memory");
				break;
			}
		}
		if (c->dead)
			continue;
		d->nparked -= c->nparked - kept;
		c->nparked = kept;
		if (c->nfresh)
			flush_out(d, c);
	}
	return wait;
}

static void conn_lost(struct driver *d, struct conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = 1;
	epoll_ctl(d->ep, EPOLL_CTL_DEL, c->fd, NULL);
	while (c->qhead != c->qtail) {
		const struct due *w = &c->q[c->qhead++ & c->qmask];
		struct shopper *s = &c->sh[w->shopper];
		d->run->lost++;
		bad_reply(d, s, w->op, why);
		if (--s->due == 0 && s->meas)
			d->run->errors++;
	}
}

static void flush_out(struct driver *d, struct conn *c)
{
	uint64_t now = wf_now_ns();
	int need;

	/* Paced (--rate), a page view's time runs from when it was due, not
	 * from when it went out: one that waited for the previous to finish
	 * counts the wait (no coordinated omission). */
	for (uint32_t i = 0; i < c->nfresh; i++)
		c->sh[c->fresh[i]].t0 = d->interval ? c->sh[c->fresh[i]].next : now;
	c->nfresh = 0;
	while (c->out_off < c->out.len) {
		ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			conn_lost(d, c, strerror(errno));
			return;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out.len)
		c->out.len = c->out_off = 0;
	need = c->out.len != 0;
	if (need != c->pollout) {
		struct epoll_event ev = { .events = EPOLLIN | (need ? EPOLLOUT : 0u), .data.u32 = (uint32_t)(c - d->c) };
		epoll_ctl(d->ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->pollout = need;
	}
}

static void on_readable(struct driver *d, struct conn *c)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));
		uint64_t now;
		void *reply;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			conn_lost(d, c, n == 0 ? "connection closed by the server" : strerror(errno));
			return;
		}
		now = wf_now_ns();
		if (redisReaderFeed(c->rd, buf, (size_t)n) != REDIS_OK) {
			conn_lost(d, c, "out of memory");
			return;
		}
		for (;;) {
			memset(&c->rs, 0, sizeof(c->rs));
			if (redisReaderGetReply(c->rd, &reply) != REDIS_OK) {
				conn_lost(d, c, c->rd->errstr);
				return;
			}
			if (!reply)
				break;
			if (c->qhead == c->qtail) {
				conn_lost(d, c, "a reply nothing asked for");
				return;
			}
			const struct due w = c->q[c->qhead++ & c->qmask];
			struct shopper *s = &c->sh[w.shopper];
			check(d, c, &w);
			if (s->meas)
				load_hist_add(&d->run->h[w.op], now - s->t0);
			if (--s->due == 0)
				done_page(d, c, w.shopper, now);
		}
		if ((size_t)n < sizeof(buf))
			break;
	}
	if (!c->dead && (c->nfresh || c->out.len))
		flush_out(d, c);
}

static int connect_unix(const char *path, int *ret_fd)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	memcpy(a.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A server that does not accept (a full backlog) must not hang us:
	 * a Unix connect waits at most the send timeout. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &(struct timeval){ .tv_sec = 5 }, sizeof(struct timeval)) < 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	/* Non-blocking once connected: a Unix connect is immediate. */
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	*ret_fd = fd;
	return 0;
}

static void free_conns(struct driver *d)
{
	for (uint32_t i = 0; d->c && i < d->o->conns; i++) {
		struct conn *c = &d->c[i];
		if (c->fd > 0)
			close(c->fd);
		if (c->rd)
			redisReaderFree(c->rd);
		wf_buf_fini(&c->out);
		free(c->q);
		free(c->sh);
		free(c->fresh);
		free(c->parked);
	}
	free(d->c);
	d->c = NULL;
	if (d->ep >= 0)
		close(d->ep);
	d->ep = -1;
}

static int setup_conns(struct driver *d)
{
	const struct load_opt *o = d->o;
	uint32_t qcap = 1;
	int r;

	while (qcap < o->pipeline * (LOAD_MAX_GROUP + 1))
		qcap <<= 1;
	d->ep = epoll_create1(EPOLL_CLOEXEC);
	d->c = calloc(o->conns, sizeof(*d->c));
	if (d->ep < 0 || !d->c)
		return -ENOMEM;
	for (uint32_t i = 0; i < o->conns; i++) {
		struct conn *c = &d->c[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

		c->rd = redisReaderCreateWithFunctions(&d->fn);
		c->q = calloc(qcap, sizeof(*c->q));
		c->sh = calloc(o->pipeline, sizeof(*c->sh));
		c->fresh = calloc(o->pipeline, sizeof(*c->fresh));
		c->parked = calloc(o->pipeline, sizeof(*c->parked));
		c->qmask = qcap - 1;
		if (!c->rd || !c->q || !c->sh || !c->fresh || !c->parked)
			return -ENOMEM;
		c->rd->privdata = &c->rs;
		if ((r = connect_unix(o->sock[d->target], &c->fd)) < 0)
			return r;
		if (epoll_ctl(d->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
			return -errno;
		for (uint32_t s = 0; s < o->pipeline; s++)
			gen_rng_seed(&c->sh[s].rng, gen_mix(o->seed, ((uint64_t)d->round << 32) | i, s));
	}
	return 0;
}

static double cpu_self(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One round against one target: connect, warm up, measure, drain. The
 * event loop itself, hence its length: each shopper's first page view,
 * then epoll until every reply is in or the drain time is over; CPU is
 * read when the measured part starts and at the end. */
static int drive(const struct load_opt *o, const struct tmpls *ts, int target, int round, struct load_run *run)
{
	struct driver d = { .o = o, .ts = ts, .target = target, .round = round, .ep = -1, .run = run,
			    .fn = { rs_string, rs_array, rs_integer, rs_nil, rs_free } };
	struct epoll_event evs[256];
	double cpu0 = 0, scpu0 = -1, g0[LOAD_CPU_GROUPS], g1[LOAD_CPU_GROUPS];
	uint64_t hard;
	int measuring = 0, r;

	memset(run, 0, sizeof(*run));
	if ((r = setup_conns(&d)) < 0) {
		fprintf(stderr, "weft-load: connecting %u clients to %s (%s) failed: %s; is it running there?\n", o->conns,
			o->sock[target], load_target_name(target), strerror(-r));
		free_conns(&d);
		return r;
	}
	d.start = wf_now_ns() + (uint64_t)(o->warmup * 1e9);
	d.deadline = d.start + (uint64_t)(o->seconds * 1e9);
	hard = d.deadline + (uint64_t)(o->drain * 1e9);
	if (o->rate > 0) {
		/* Each shopper a page view every interval, their first ones
		 * spread evenly over the first interval. */
		uint64_t now = wf_now_ns(), nsh = (uint64_t)o->conns * o->pipeline;
		d.interval = (uint64_t)((double)nsh * 1e9 / o->rate);
		for (uint32_t i = 0; i < o->conns; i++)
			for (uint32_t s = 0; s < o->pipeline; s++) {
				d.c[i].sh[s].next = now + ((uint64_t)i * o->pipeline + s) * d.interval / nsh;
				d.c[i].parked[d.c[i].nparked++] = s;
				d.nparked++;
			}
	}
	for (uint32_t i = 0; i < o->conns && !d.interval; i++) {
		for (uint32_t s = 0; s < o->pipeline; s++)
			if (issue(&d, i, s, wf_now_ns()) < 0) {
				free_conns(&d);
				return -ENOMEM;
			}
		flush_out(&d, &d.c[i]);
	}
	for (;;) {
		uint64_t now = wf_now_ns(), wait = d.nparked ? release_due(&d, now) : UINT64_MAX;
		int n, busy = d.nparked != 0;

		if (!measuring && now >= d.start) {
			measuring = 1;
			cpu0 = cpu_self();
			scpu0 = load_cpu_s(o->pids[target], g0, &run->ngroups);
		}
		if (now >= d.deadline)
			d.stopping = 1;
		for (uint32_t i = 0; i < o->conns && !busy; i++)
			busy = !d.c[i].dead && d.c[i].qhead != d.c[i].qtail;
		if (!busy || now >= hard)
			break;
		/* At most 20 ms, and no later than the next page view due
		 * (--rate: to the ns, so pacing adds no ms of lateness). */
		struct timespec tmo = { .tv_sec = 0, .tv_nsec = (long)WF_MIN(wait, 20000000ull) };
		n = epoll_pwait2(d.ep, evs, 256, &tmo, NULL);
		if (n < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = &d.c[evs[i].data.u32];
			if (c->dead)
				continue;
			if (evs[i].events & EPOLLOUT)
				flush_out(&d, c);
			if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				on_readable(&d, c);
		}
	}
	for (uint32_t i = 0; i < o->conns; i++)
		conn_lost(&d, &d.c[i], "no reply before the drain time ran out");
	run->seconds = d.last_done > d.start ? (double)(d.last_done - d.start) / 1e9 : 0;
	run->client_cpu_s = measuring ? cpu_self() - cpu0 : 0;
	run->server_cpu_s = scpu0 >= 0 ? load_cpu_s(o->pids[target], g1, &run->ngroups) - scpu0 : -1;
	for (int g = 0; scpu0 >= 0 && g < run->ngroups; g++)
		run->group_cpu_s[g] = g1[g] - g0[g];
	if (scpu0 < 0)
		run->ngroups = 0;
	free_conns(&d);
	return 0;
}

/* The popular list an anonymous visitor's LRANGE reads: created from
 * the most viewed items of the sessions read, when Redis lacks it. */
static int ensure_popular(const struct load_opt *o, const struct tmpls *ts)
{
	struct timeval tv = { .tv_sec = 10 };
	redisContext *c = redisConnectUnixWithTimeout(o->sock[LOAD_REDIS], tv);
	redisReply *r;
	int ret = -EIO;

	if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
		fprintf(stderr, "weft-load: cannot connect to redis at %s: %s\n", o->sock[LOAD_REDIS],
			c ? c->errstr : "out of memory");
		goto out;
	}
	r = redisCommand(c, "LLEN %s", o->anon_key);
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && ts->npopular) {
		const char *argv[2 + LOAD_POPULAR] = { "RPUSH", o->anon_key };
		freeReplyObject(r);
		for (uint32_t i = 0; i < ts->npopular; i++)
			argv[2 + i] = str(ts, ts->popular[i]);
		r = redisCommandArgv(c, (int)(2 + ts->npopular), argv, NULL);
		if (!o->quiet)
			fprintf(stderr, "weft-load: created the popular list '%s' in redis (%u most viewed items)\n",
				o->anon_key, ts->npopular);
	}
	if (r && r->type != REDIS_REPLY_ERROR)
		ret = 0;
	else
		fprintf(stderr, "weft-load: preparing '%s' in redis failed: %s\n", o->anon_key, r ? r->str : c->errstr);
	if (r)
		freeReplyObject(r);
out:
	if (c)
		redisFree(c);
	return ret;
}

static double pv_rate(const struct load_run *r)
{
	return r->seconds > 0 ? (double)r->h[LOAD_PV].n / r->seconds : 0;
}

static int cmp_ratio(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: weft-load --events FILE [--weft SOCK] [--redis SOCK] [options]\n"
		"  --events FILE      weft-gen's events.csv (the one the snapshot and the Redis lists come from)\n"
		"  --weft SOCK        weft's socket: EVENT + RECS per page view\n"
		"  --redis SOCK       redis-server's socket: XADD + LRANGE per page view\n"
		"  -c N               connections (default 50)\n"
		"  -P N               shoppers per connection, so page views in flight on it (default 1)\n"
		"  -d SECONDS         measure this long (default 5)\n"
		"  --rate PV/S        page views per second in all (each shopper paced, its latency counted from\n"
		"                     when its page view was due); default: each shopper as fast as replies come\n"
		"  -n PAGEVIEWS       or stop after this many page views (each target, each round)\n"
		"  --warmup SECONDS   run unmeasured first (default 0.5)\n"
		"  --rounds R         alternating rounds, weft then redis (default 1)\n"
		"  --seed S           which sessions each shopper walks (default 1)\n"
		"  --sessions N       sessions read from the events file as templates (default 20000)\n"
		"  --anonymous F      share of anonymous visitors' sessions (default: the file's)\n"
		"  -k K               recommendations per page (default 20)\n"
		"  --csv FILE         one row per target, round and op\n"
		"  --plot FILE.png    latency CDF of the median round (gnuplot; data in FILE.png.dat)\n"
		"  --label NAME       the first CSV column and the LOAD lines' tag (default pageview)\n"
		"  --weft-pids P,..   --redis-pids P,..: server processes whose CPU to report (P,P:P,P in groups)\n"
		"  --key-prefix P     Redis list key of a user: P<user> (default none)\n"
		"  --anon-key KEY     Redis list for anonymous visitors (default popular; created if missing)\n"
		"  --stream KEY       Redis stream for the events (default events)\n"
		"  --drain SECONDS    wait this long for replies after the bound (default 10)\n"
		"  --quiet            no progress on stderr\n");
}

/* s as a number from min to max into *ret; -EINVAL if it is not one. */
static int parse_num(const char *s, double min, double max, double *ret)
{
	double v = 0;
	int ok = wf_parse_double(s, strlen(s), &v) == 0 && v >= min && v <= max;

	if (ok)
		*ret = v;
	return ok ? 0 : -EINVAL;
}

static int parse_args(int argc, char **argv, struct load_opt *o)
{
	static const struct option lo[] = {
		{ "events", required_argument, NULL, 'e' }, { "weft", required_argument, NULL, 'w' },
		{ "redis", required_argument, NULL, 'r' },  { "warmup", required_argument, NULL, 'W' },
		{ "rounds", required_argument, NULL, 'R' }, { "seed", required_argument, NULL, 's' },
		{ "sessions", required_argument, NULL, 'S' }, { "anonymous", required_argument, NULL, 'a' },
		{ "csv", required_argument, NULL, 'C' },    { "plot", required_argument, NULL, 'p' },
		{ "label", required_argument, NULL, 'l' },  { "weft-pids", required_argument, NULL, 1 },
		{ "redis-pids", required_argument, NULL, 2 }, { "key-prefix", required_argument, NULL, 3 },
		{ "anon-key", required_argument, NULL, 4 }, { "stream", required_argument, NULL, 5 },
		{ "drain", required_argument, NULL, 6 },    { "quiet", no_argument, NULL, 'q' },
		{ "rate", required_argument, NULL, 7 },
		{ "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 }
	};
	double v;
	int ch;

	*o = (struct load_opt){ .conns = 50, .pipeline = 1, .rounds = 1, .sessions = 20000, .k = 20, .seconds = 5,
				.warmup = 0.5, .drain = 10, .anon = -1, .seed = 1, .label = "pageview",
				.key_prefix = "", .anon_key = "popular", .stream = "events" };
	snprintf(o->prefix, sizeof(o->prefix), "ld%x", (unsigned)getpid() ^ (unsigned)time(NULL));
	while ((ch = getopt_long(argc, argv, "c:P:d:n:k:qh", lo, NULL)) != -1) {
		int r = 0;
		switch (ch) {
		case 'e': o->events = optarg; break;
		case 'w': o->sock[LOAD_WEFT] = optarg; break;
		case 'r': o->sock[LOAD_REDIS] = optarg; break;
		case 'C': o->csv = optarg; break;
		case 'p': o->plot = optarg; break;
		case 'l': o->label = optarg; break;
		case 1: o->pids[LOAD_WEFT] = optarg; break;
		case 2: o->pids[LOAD_REDIS] = optarg; break;
		case 3: o->key_prefix = optarg; break;
		case 4: o->anon_key = optarg; break;
		case 5: o->stream = optarg; break;
		case 'q': o->quiet = 1; break;
		case 'c': r = parse_num(optarg, 1, 10000, &v); o->conns = (uint32_t)v; break;
		case 'P': r = parse_num(optarg, 1, 1024, &v); o->pipeline = (uint32_t)v; break;
		case 'd': r = parse_num(optarg, 0.01, 86400, &o->seconds); break;
		case 'n': r = parse_num(optarg, 1, 1e12, &v); o->count = (uint64_t)v; break;
		case 'k': r = parse_num(optarg, 1, 500, &v); o->k = (uint32_t)v; break;
		case 'W': r = parse_num(optarg, 0, 3600, &o->warmup); break;
		case 'R': r = parse_num(optarg, 1, 100, &v); o->rounds = (uint32_t)v; break;
		case 's': r = parse_num(optarg, 0, 1e15, &v); o->seed = (uint64_t)v; break;
		case 'S': r = parse_num(optarg, 1, 1e7, &v); o->sessions = (uint32_t)v; break;
		case 'a': r = parse_num(optarg, 0, 1, &o->anon); break;
		case 6: r = parse_num(optarg, 0, 3600, &o->drain); break;
		case 7: r = parse_num(optarg, 1, 1e9, &o->rate); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "weft-load: bad value '%s' for an option; see --help\n", optarg);
			return -EINVAL;
		}
	}
	if (!o->events || (!o->sock[LOAD_WEFT] && !o->sock[LOAD_REDIS]) || optind != argc) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* The round whose weft/redis page-view ratio is the median (0 with one
 * target), after printing the PAGEVIEW line. */
static int median_round(const struct load_opt *o, const struct load_run *runs)
{
	double ratio[100], sorted[100];
	int both = o->sock[LOAD_WEFT] && o->sock[LOAD_REDIS], median = 0;

	for (uint32_t r = 0; r < o->rounds; r++) {
		const struct load_run *w = &runs[r * LOAD_NTARGETS + LOAD_WEFT], *x = &runs[r * LOAD_NTARGETS + LOAD_REDIS];
		ratio[r] = both && pv_rate(x) > 0 ? pv_rate(w) / pv_rate(x) : 0;
	}
	memcpy(sorted, ratio, o->rounds * sizeof(double));
	qsort(sorted, o->rounds, sizeof(double), cmp_ratio);
	for (uint32_t r = 0; r < o->rounds; r++)
		if (ratio[r] == sorted[o->rounds / 2])
			median = (int)r;
	if (both) {
		printf("PAGEVIEW %s ratio %.2f (round %d; rounds:", o->label, ratio[median], median + 1);
		for (uint32_t r = 0; r < o->rounds; r++)
			printf(" %.2f", ratio[r]);
		printf(")\n");
	}
	return median;
}

/* The CSV (every round, target and op) and the plot (the median round).
 * 0, or -1 if either could not be written (said on stderr). */
static int write_outputs(const struct load_opt *o, const struct load_run *runs, int median)
{
	int r = 0;

	if (o->csv) {
		FILE *f = fopen(o->csv, "we");
		if (!f) {
			fprintf(stderr, "weft-load: cannot write %s: %s\n", o->csv, strerror(errno));
			return -1;
		}
		load_csv_header(f);
		for (uint32_t i = 0; i < o->rounds; i++)
			for (int t = 0; t < LOAD_NTARGETS; t++)
				if (o->sock[t])
					load_csv_rows(f, o->label, t, (int)i + 1, (int)i == median, (int)o->conns,
						      (int)o->pipeline, &runs[i * LOAD_NTARGETS + t]);
		if (fclose(f) != 0) {
			fprintf(stderr, "weft-load: writing %s failed: %s\n", o->csv, strerror(errno));
			r = -1;
		}
	}
	if (o->plot) {
		const struct load_run *pr[LOAD_NTARGETS];
		char title[256];

		for (int t = 0; t < LOAD_NTARGETS; t++)
			pr[t] = o->sock[t] ? &runs[median * LOAD_NTARGETS + t] : NULL;
		snprintf(title, sizeof(title), "weft-load %s: -c %u -P %u, round %d of %u", o->label, o->conns,
			 o->pipeline, median + 1, o->rounds);
		if (load_plot(o->plot, title, pr) < 0) {
			fprintf(stderr, "weft-load: writing the plot's data beside %s failed\n", o->plot);
			r = -1;
		}
	}
	return r;
}

int main(int argc, char **argv)
{
	struct load_opt o;
	struct tmpls ts;
	struct load_run *runs = NULL;
	char err[512] = "";
	int fail = 2;

	if (parse_args(argc, argv, &o) < 0)
		return 2;
	if (load_templates(o.events, o.sessions, &ts, err, sizeof(err)) < 0) {
		fprintf(stderr, "weft-load: %s\n", err);
		return 2;
	}
	if (!o.quiet)
		fprintf(stderr, "weft-load: %u sessions (%u of returning users, %u anonymous), %zu events from %s\n", ts.nt,
			ts.nknown, ts.nanon, ts.nev, o.events);
	if ((o.sock[LOAD_REDIS] && ensure_popular(&o, &ts) < 0) ||
	    !(runs = calloc((size_t)o.rounds * LOAD_NTARGETS, sizeof(*runs))))
		goto out;
	fail = 0;
	for (uint32_t r = 0; r < o.rounds; r++) {
		for (int t = 0; t < LOAD_NTARGETS; t++) {
			struct load_run *run = &runs[r * LOAD_NTARGETS + t];
			if (!o.sock[t])
				continue;
			if (drive(&o, &ts, t, (int)r + 1, run) < 0) {
				fail = 2;
				goto out;
			}
			load_print(o.label, t, (int)r + 1, run);
			if (!run->h[LOAD_PV].n)
				fprintf(stderr, "weft-load: no page view of %s was answered in the measured time\n",
					load_target_name(t));
			fail |= run->errors || run->lost || !run->h[LOAD_PV].n;
		}
	}
	if (write_outputs(&o, runs, median_round(&o, runs)) < 0)
		fail = 2;
out:
	free(runs);
	free_templates(&ts);
	return fail;
}
