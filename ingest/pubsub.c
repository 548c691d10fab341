/*
 * pubsub.c - weft-ingest's publish/subscribe on weft.sock, as Redis does
 * it in RESP2, so redis-cli, redis-py's pubsub() and hiredis work
 * unchanged: SUBSCRIBE / UNSUBSCRIBE / PSUBSCRIBE / PUNSUBSCRIBE with their
 * ["subscribe", channel, count] confirmations, ["message", channel,
 * payload] and ["pmessage", pattern, channel, payload] pushes, glob
 * patterns matched as Redis's stringmatch, PING's ["pong", arg] and the
 * error for any other command while subscribed; RESET leaves the mode.
 * Channels are segment names; the only publisher is notes.c (a durable
 * segment transition, its JSON payload). Linked into weft-ingest only.
 *
 * Slow subscribers (Redis's client-output-buffer-limit pubsub): a
 * subscriber whose unsent output passes the hard limit (--pubsub-limit,
 * default 32 MiB), or stays over the soft limit (8 MiB) for the soft
 * time (60 s), is disconnected when the next push finds it so; nothing
 * waits for it, and its memory is bounded by the hard limit plus one
 * push. Subscribers are exempt from --idle-timeout, as in Redis.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ingest/ingest.h"

#define SUB_MAX 1024u      /* channels + patterns one connection may hold */
#define SUB_NAME_MAX 512u  /* bytes of a channel name or pattern */
#define GLOB_NESTING 1000  /* Redis's bound on stringmatch's recursion */

struct sub_name {
	uint32_t len;
	char s[];
};

struct ingest_sub {
	struct sub_name **chan, **pat;
	uint32_t nchan, npat;
	uint64_t soft_since_ns; /* over the soft limit since (0: under it) */
	uint32_t pos;           /* in ctx->pubsub->subs */
};

struct ingest_pubsub {
	uint64_t hard, soft, soft_ns;
	uint32_t *subs; /* connections with a subscription */
	uint32_t nsubs, cap;
	struct wf_buf buf; /* a push being built */
	uint64_t pushed, limit_closed;
};

/* ---- Redis's stringmatch ---- */

/* A [...] class at *pp (just past its '['), against c: whether it
 * matches (a leading ^ negates). *pp, *plp are left on its closing ']'
 * (an unclosed one: on its last byte), which the caller's loop end steps
 * past. */
static int glob_class(const char **pp, size_t *plp, char c)
{
	const char *p = *pp;
	size_t pl = *plp;
	int neg = pl && p[0] == '^', match = 0;

	if (neg) {
		p++;
		pl--;
	}
	for (;;) {
		if (pl >= 2 && p[0] == '\\') {
			p++;
			pl--;
			match |= p[0] == c;
		} else if (pl == 0) {
			p--; /* an unclosed [: the loop end steps past it */
			pl++;
			break;
		} else if (p[0] == ']') {
			break;
		} else if (pl >= 3 && p[1] == '-') {
			unsigned char lo = (unsigned char)p[0], hi = (unsigned char)p[2], ch = (unsigned char)c;
			if (lo > hi) {
				unsigned char t = lo;
				lo = hi;
				hi = t;
			}
			match |= ch >= lo && ch <= hi;
			p += 2;
			pl -= 2;
		} else {
			match |= p[0] == c;
		}
		p++;
		pl--;
	}
	*pp = p;
	*plp = pl;
	return neg ? !match : match;
}

static int glob_impl(const char *p, size_t pl, const char *s, size_t sl, int *skip_longer, int nesting)
{
	if (nesting > GLOB_NESTING)
		return 0;
	while (pl && sl) {
		switch (p[0]) {
		case '*':
			while (pl > 1 && p[1] == '*') {
				p++;
				pl--;
			}
			if (pl == 1)
				return 1;
			while (sl) {
				if (glob_impl(p + 1, pl - 1, s, sl, skip_longer, nesting + 1))
					return 1;
				if (*skip_longer)
					return 0;
				s++;
				sl--;
			}
			*skip_longer = 1; /* no match here: none with a longer prefix either */
			return 0;
		case '?':
			s++;
			sl--;
			break;
		case '[':
			p++;
			pl--;
			if (!glob_class(&p, &pl, s[0]))
				return 0;
			s++;
			sl--;
			break;
		case '\\':
			if (pl >= 2) {
				p++;
				pl--;
			}
			/* fall through */
		default:
			if (p[0] != s[0])
				return 0;
			s++;
			sl--;
			break;
		}
		p++;
		pl--;
		if (sl == 0) {
			while (pl && p[0] == '*') {
				p++;
				pl--;
			}
			break;
		}
	}
	return pl == 0 && sl == 0;
}

int ingest_glob_match(const char *p, size_t plen, const char *s, size_t slen)
{
	int skip = 0;

	return glob_impl(p, plen, s, slen, &skip, 0);
}

/* ---- set-up ---- */

int ingest_pubsub_init(struct ingest_ctx *ctx, uint64_t hard, uint64_t soft, uint32_t soft_s)
{
	struct ingest_pubsub *ps = calloc(1, sizeof(*ps));

	if (!ps)
		return -ENOMEM;
	ps->hard = hard;
	ps->soft = soft;
	ps->soft_ns = (uint64_t)soft_s * 1000000000ull;
	ctx->pubsub = ps;
	return 0;
}

void ingest_pubsub_fini(struct ingest_ctx *ctx)
{
	if (!ctx->pubsub)
		return;
	free(ctx->pubsub->subs);
	wf_buf_fini(&ctx->pubsub->buf);
	free(ctx->pubsub);
	ctx->pubsub = NULL;
}

static uint32_t sub_count(const struct ingest_conn *c)
{
	return c->sub ? c->sub->nchan + c->sub->npat : 0;
}

/* c's subscription state, listed among the subscribers. NULL: out of memory. */
static struct ingest_sub *sub_get(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	struct ingest_pubsub *ps = ctx->pubsub;

	if (c->sub)
		return c->sub;
	if (ps->nsubs == ps->cap) {
		uint32_t ncap = ps->cap ? 2 * ps->cap : 16;
		uint32_t *n = realloc(ps->subs, ncap * sizeof(*n));
		if (!n)
			return NULL;
		ps->subs = n;
		ps->cap = ncap;
	}
	c->sub = calloc(1, sizeof(*c->sub));
	if (!c->sub)
		return NULL;
	c->sub->pos = ps->nsubs;
	ps->subs[ps->nsubs++] = c->idx;
	/* relaxed: a gauge for metrics */
	atomic_store_explicit(&ctx->shm->ctl->ingest_stats.pubsub_clients, ps->nsubs, memory_order_relaxed);
	return c->sub;
}

void ingest_pubsub_drop(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	struct ingest_pubsub *ps = ctx->pubsub;
	struct ingest_sub *sb = c->sub;

	if (!sb)
		return;
	for (uint32_t i = 0; i < sb->nchan; i++)
		free(sb->chan[i]);
	for (uint32_t i = 0; i < sb->npat; i++)
		free(sb->pat[i]);
	free(sb->chan);
	free(sb->pat);
	/* Swap-remove from the list. */
	ps->subs[sb->pos] = ps->subs[--ps->nsubs];
	if (sb->pos < ps->nsubs)
		ctx->conns[ps->subs[sb->pos]]->sub->pos = sb->pos;
	free(sb);
	c->sub = NULL;
	/* relaxed: a gauge for metrics */
	atomic_store_explicit(&ctx->shm->ctl->ingest_stats.pubsub_clients, ps->nsubs, memory_order_relaxed);
}

/* ---- the commands ---- */

static int find(struct sub_name **v, uint32_t n, const struct wf_resp_arg *a)
{
	for (uint32_t i = 0; i < n; i++)
		if (v[i]->len == a->len && memcmp(v[i]->s, a->p, a->len) == 0)
			return (int)i;
	return -1;
}

/* Add a to the set (*v, *n): 0 (added or already there), -E2BIG, -ENOMEM. */
static int set_add(struct ingest_conn *c, struct sub_name ***v, uint32_t *n, const struct wf_resp_arg *a)
{
	struct sub_name *e, **nv;

	if (find(*v, *n, a) >= 0)
		return 0;
	if (sub_count(c) >= SUB_MAX || a->len > SUB_NAME_MAX)
		return -E2BIG;
	if (!(nv = realloc(*v, (*n + 1) * sizeof(*nv))))
		return -ENOMEM;
	*v = nv;
	if (!(e = malloc(sizeof(*e) + a->len)))
		return -ENOMEM;
	e->len = a->len;
	memcpy(e->s, a->p, a->len);
	(*v)[(*n)++] = e;
	return 0;
}

/* ["kind", name, count]; name NULL: a null bulk. */
static void w_confirm(struct wf_buf *b, const char *kind, const char *name, size_t len, uint32_t count)
{
	wf_resp_w_array(b, 3);
	wf_resp_w_bulk_str(b, kind);
	if (name)
		wf_resp_w_bulk(b, name, len);
	else
		wf_resp_w_null(b);
	wf_resp_w_int(b, count);
}

static int subscribe(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r, int pat)
{
	struct wf_buf *b = &ctx->tmp;
	struct ingest_sub *sb;

	b->len = 0;
	if (r->argc < 2) {
		wf_resp_w_error(b, "ERR wrong number of arguments for '%s' command", pat ? "psubscribe" : "subscribe");
		return ingest_reply_local(ctx, c, b->data, b->len, 0) < 0 ? -ENOMEM : 1;
	}
	if (!(sb = sub_get(ctx, c)))
		return -ENOMEM;
	for (uint32_t i = 1; i < r->argc; i++) {
		int e = pat ? set_add(c, &sb->pat, &sb->npat, &r->argv[i]) : set_add(c, &sb->chan, &sb->nchan, &r->argv[i]);
		if (e == -ENOMEM)
			return -ENOMEM;
		if (e == -E2BIG) {
			wf_resp_w_error(b, "ERR a connection holds at most %u channels and patterns of at most %u bytes",
					SUB_MAX, SUB_NAME_MAX);
			break;
		}
		w_confirm(b, pat ? "psubscribe" : "subscribe", r->argv[i].p, r->argv[i].len, sub_count(c));
	}
	if (!sub_count(c))
		ingest_pubsub_drop(ctx, c);
	return ingest_reply_local(ctx, c, b->data, b->len, 0) < 0 ? -ENOMEM : 1;
}

/* Remove entry i of the set (*v, *n). */
static void set_del(struct sub_name **v, uint32_t *n, uint32_t i)
{
	free(v[i]);
	memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
	(*n)--;
}

/* UNSUBSCRIBE / PUNSUBSCRIBE [name...] into ctx->tmp (appended). */
static void unsubscribe(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r, int pat)
{
	const char *kind = pat ? "punsubscribe" : "unsubscribe";
	struct wf_buf *b = &ctx->tmp;
	struct ingest_sub *sb = c->sub;
	struct sub_name ***v = sb ? (pat ? &sb->pat : &sb->chan) : NULL;
	uint32_t *n = sb ? (pat ? &sb->npat : &sb->nchan) : NULL;

	if (r->argc < 2) {
		if (!n || !*n) {
			w_confirm(b, kind, NULL, 0, sub_count(c));
			return;
		}
		while (*n) { /* each, as Redis confirms each */
			struct sub_name *e = (*v)[0];
			(*v)[0] = NULL;
			memmove(&(*v)[0], &(*v)[1], (*n - 1) * sizeof(**v));
			(*n)--;
			w_confirm(b, kind, e->s, e->len, sub_count(c));
			free(e);
		}
	} else {
		for (uint32_t i = 1; i < r->argc; i++) {
			int k = n ? find(*v, *n, &r->argv[i]) : -1;
			if (k >= 0)
				set_del(*v, n, (uint32_t)k);
			w_confirm(b, kind, r->argv[i].p, r->argv[i].len, sub_count(c));
		}
	}
	if (c->sub && !sub_count(c))
		ingest_pubsub_drop(ctx, c);
}

int ingest_pubsub_dispatch(struct ingest_ctx *ctx, struct ingest_conn *c, const struct wf_resp_req *r)
{
	const struct wf_resp_arg *a = &r->argv[0];
	struct wf_buf *b = &ctx->tmp;
	char name[40];

	if (wf_resp_arg_is(a, "SUBSCRIBE") || wf_resp_arg_is(a, "PSUBSCRIBE"))
		return subscribe(ctx, c, r, wf_resp_arg_is(a, "PSUBSCRIBE"));
	b->len = 0;
	if (wf_resp_arg_is(a, "UNSUBSCRIBE") || wf_resp_arg_is(a, "PUNSUBSCRIBE")) {
		unsubscribe(ctx, c, r, wf_resp_arg_is(a, "PUNSUBSCRIBE"));
	} else if (wf_resp_arg_is(a, "RESET")) {
		struct wf_resp_req none = { .argc = 1 };
		unsubscribe(ctx, c, &none, 0);
		unsubscribe(ctx, c, &none, 1);
		b->len = 0;
		wf_resp_w_simple(b, "RESET");
	} else if (!sub_count(c) || wf_resp_arg_is(a, "QUIT")) {
		return 0; /* not subscribed: an ordinary command */
	} else if (wf_resp_arg_is(a, "PING")) {
		wf_resp_w_array(b, 2);
		wf_resp_w_bulk_str(b, "pong");
		if (r->argc > 1)
			wf_resp_w_bulk(b, r->argv[1].p, r->argv[1].len);
		else
			wf_resp_w_bulk(b, "", 0);
	} else {
		size_t n = WF_MIN(a->len, sizeof(name) - 1);
		for (size_t i = 0; i < n; i++) {
			char ch = a->p[i];
			name[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : (ch >= ' ' && ch < 127 ? ch : '?');
		}
		name[n] = '\0';
		wf_resp_w_error(b, "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
				   "RESET are allowed in this context", name);
	}
	return ingest_reply_local(ctx, c, b->data, b->len, 0) < 0 ? -ENOMEM : 1;
}

/* ---- pushes ---- */

/* After a push to c: over the hard limit, or over the soft one for the
 * soft time: disconnected (1). */
static int over_limit(struct ingest_ctx *ctx, struct ingest_conn *c)
{
	struct ingest_pubsub *ps = ctx->pubsub;
	uint64_t q = c->out.len + c->sendbuf.len;

	if (q <= ps->soft) {
		c->sub->soft_since_ns = 0;
		return 0;
	}
	if (!c->sub->soft_since_ns)
		c->sub->soft_since_ns = ctx->pass_ns;
	if (q <= ps->hard && (!ps->soft_ns || ctx->pass_ns - c->sub->soft_since_ns < ps->soft_ns))
		return 0;
	ps->limit_closed++;
	/* relaxed: statistic */
	atomic_fetch_add_explicit(&ctx->shm->ctl->ingest_stats.pubsub_disconnects, 1, memory_order_relaxed);
	wf_warn("a subscriber holds %llu bytes it does not read (pubsub limits %llu, %llu for %llu s): "
		"disconnected (%llu so far)", (unsigned long long)q, (unsigned long long)ps->hard,
		(unsigned long long)ps->soft, (unsigned long long)(ps->soft_ns / 1000000000ull),
		(unsigned long long)ps->limit_closed);
	ingest_conn_kill(ctx, c);
	return 1;
}

int ingest_pubsub_wanted(const struct ingest_ctx *ctx, const char *channel, size_t chlen)
{
	const struct ingest_pubsub *ps = ctx->pubsub;

	for (uint32_t i = 0; i < ps->nsubs; i++) {
		const struct ingest_conn *c = ctx->conns[ps->subs[i]];
		const struct ingest_sub *sb = c->sub;

		if (c->fd < 0 || c->dead || c->closing)
			continue;
		for (uint32_t k = 0; k < sb->nchan; k++)
			if (sb->chan[k]->len == chlen && memcmp(sb->chan[k]->s, channel, chlen) == 0)
				return 1;
		for (uint32_t k = 0; k < sb->npat; k++)
			if (ingest_glob_match(sb->pat[k]->s, sb->pat[k]->len, channel, chlen))
				return 1;
	}
	return 0;
}

void ingest_pubsub_publish(struct ingest_ctx *ctx, const char *channel, size_t chlen, const char *payload, size_t plen)
{
	struct ingest_pubsub *ps = ctx->pubsub;
	struct wf_buf *b = &ps->buf;

	for (uint32_t i = 0; i < ps->nsubs;) {
		uint32_t idx = ps->subs[i];
		struct ingest_conn *c = ctx->conns[idx];
		struct ingest_sub *sb = c->sub;

		b->len = 0;
		if (c->fd >= 0 && !c->dead && !c->closing) {
			for (uint32_t k = 0; k < sb->nchan; k++) {
				if (sb->chan[k]->len != chlen || memcmp(sb->chan[k]->s, channel, chlen) != 0)
					continue;
				wf_resp_w_array(b, 3);
				wf_resp_w_bulk_str(b, "message");
				wf_resp_w_bulk(b, channel, chlen);
				wf_resp_w_bulk(b, payload, plen);
			}
			for (uint32_t k = 0; k < sb->npat; k++) {
				if (!ingest_glob_match(sb->pat[k]->s, sb->pat[k]->len, channel, chlen))
					continue;
				wf_resp_w_array(b, 4);
				wf_resp_w_bulk_str(b, "pmessage");
				wf_resp_w_bulk(b, sb->pat[k]->s, sb->pat[k]->len);
				wf_resp_w_bulk(b, channel, chlen);
				wf_resp_w_bulk(b, payload, plen);
			}
		}
		if (b->len) {
			uint32_t ser = ctx->lat.series;

			ps->pushed++;
			ctx->lat.series = INGEST_LAT_NONE; /* a push answers no request: not timed */
			if (ingest_reply_local(ctx, c, b->data, b->len, 0) < 0)
				ingest_conn_kill(ctx, c); /* out of memory: as over its limit */
			else
				over_limit(ctx, c);
			ctx->lat.series = ser;
		}
		/* A killed connection may have left the list at once. */
		if (i < ps->nsubs && ps->subs[i] == idx)
			i++;
	}
}

void ingest_pubsub_info(struct ingest_ctx *ctx, struct wf_buf *b)
{
	struct ingest_pubsub *ps = ctx->pubsub;
	uint64_t ch = 0, pat = 0;

	for (uint32_t i = 0; i < ps->nsubs; i++) {
		ch += ctx->conns[ps->subs[i]]->sub->nchan;
		pat += ctx->conns[ps->subs[i]]->sub->npat;
	}
	wf_buf_printf(b,
		      "pubsub_clients:%u\r\npubsub_channels:%llu\r\npubsub_patterns:%llu\r\npubsub_pushes:%llu\r\n"
		      "pubsub_limit_disconnects:%llu\r\npubsub_limit_hard:%llu\r\npubsub_limit_soft:%llu\r\n"
		      "pubsub_limit_soft_seconds:%llu\r\n",
		      ps->nsubs, (unsigned long long)ch, (unsigned long long)pat, (unsigned long long)ps->pushed,
		      (unsigned long long)ps->limit_closed, (unsigned long long)ps->hard,
		      (unsigned long long)ps->soft, (unsigned long long)(ps->soft_ns / 1000000000ull));
}
