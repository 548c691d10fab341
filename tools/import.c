/*
 * import.c - weft-import: turns a public shopping log, read where it lies,
 * into weft's events.csv and catalog.csv (DESIGN.md, "Files"). Standalone
 * program; links libweft (CSV reader, parsing helpers).
 *
 *   taobao      UserBehavior.csv: user,item,category,behavior,ts(s), no
 *               header, grouped by user. pv->view, cart->cart_add,
 *               fav->click, buy->purchase. Rows outside [--min-ts,
 *               --max-ts) are dropped (default: the dataset's nine days,
 *               2017-11-25..2017-12-03 China time). Sessions are cut at more
 *               than 30 minutes of inactivity per user.
 *   diginetica  train-item-views.csv: session;user;item;timeframe;eventdate
 *               with a header; NA user -> anonymous; ts = eventdate midnight
 *               UTC + timeframe ms; every event is a view.
 *
 * All rows are held in memory (32 bytes each: the full 100 M-row Taobao log
 * needs ~3.2 GB) and sorted by time; ties keep (user, input) order.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/csv.h"
#include "lib/util.h"
#include "tools/out.h"

#define SESSION_GAP_MS (30ull * 60 * 1000)
#define TAOBAO_MIN_TS 1511539200ll /* 2017-11-25 00:00 UTC+8 */
#define TAOBAO_MAX_TS 1512316800ll /* 2017-12-04 00:00 UTC+8 (exclusive) */
#define NO_USER UINT32_MAX

enum fmt { FMT_TAOBAO, FMT_DIGINETICA };
enum ev { EV_VIEW, EV_CLICK, EV_CART_ADD, EV_PURCHASE, EV_COUNT };
static const char *const ev_names[EV_COUNT] = { "view", "click", "cart_add", "purchase" };

enum skip { SK_FIELDS, SK_NUMBER, SK_BEHAVIOR, SK_WINDOW, SK_MALFORMED, SK_COUNT };
static const char *const skip_names[SK_COUNT] = {
	[SK_FIELDS] = "wrong number of fields",
	[SK_NUMBER] = "id, time or date not a valid number",
	[SK_BEHAVIOR] = "unknown behavior type",
	[SK_WINDOW] = "timestamp outside the window",
	[SK_MALFORMED] = "malformed CSV (quote, length)",
};

struct row {
	int64_t ts;    /* unix ms */
	uint32_t user; /* NO_USER: anonymous */
	uint32_t item;
	uint32_t cat;
	uint32_t sess; /* diginetica: its session id; taobao: per-user session number */
	uint32_t seq;  /* input order */
	uint8_t type;
};

struct imp {
	enum fmt fmt;
	const char *in, *out;
	int64_t min_ts, max_ts; /* unix seconds, [min, max) */
	int quiet;
	struct row *rows;
	size_t n, cap;
	uint64_t read, skipped[SK_COUNT], ev[EV_COUNT];
	uint64_t first_line_skipped[SK_COUNT];
	uint64_t users, sessions, items, cat_conflicts;
};

static int push(struct imp *m, const struct row *r)
{
	if (m->n == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 1 << 16;
		struct row *p = realloc(m->rows, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		m->rows = p;
		m->cap = ncap;
	}
	m->rows[m->n] = *r;
	m->rows[m->n].seq = (uint32_t)m->n;
	m->n++;
	return 0;
}

static void skip(struct imp *m, enum skip why, uint64_t line)
{
	if (m->skipped[why]++ == 0)
		m->first_line_skipped[why] = line;
}

static int parse_u32(const struct wf_csv_field *f, uint32_t *ret)
{
	int64_t v;

	if (wf_parse_i64(f->p, f->len, &v) < 0 || v < 0 || v >= UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned mo, unsigned d)
{
	y -= mo <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* "YYYY-MM-DD" -> unix ms of its midnight UTC. */
static int parse_date_ms(const struct wf_csv_field *f, int64_t *ret)
{
	int64_t y, mo, d;

	if (f->len != 10 || f->p[4] != '-' || f->p[7] != '-' || wf_parse_i64(f->p, 4, &y) < 0 ||
	    wf_parse_i64(f->p + 5, 2, &mo) < 0 || wf_parse_i64(f->p + 8, 2, &d) < 0 || mo < 1 || mo > 12 || d < 1 ||
	    d > 31)
		return -EINVAL;
	*ret = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400000ll;
	return 0;
}

static int field_is(const struct wf_csv_field *f, const char *s)
{
	return f->len == strlen(s) && memcmp(f->p, s, f->len) == 0;
}

static void progress(const struct imp *m, const struct wf_csv *c, uint64_t size)
{
	if (!m->quiet && m->read % 5000000 == 0 && size)
		fprintf(stderr, "weft-import: %llu rows read (%llu %%)\n", (unsigned long long)m->read,
			(unsigned long long)(c->bytes_read * 100 / size));
}

static int read_taobao(struct imp *m, struct wf_csv *c, uint64_t size)
{
	int r;

	while ((r = wf_csv_next(c)) != 0) {
		struct row row = { 0 };
		int64_t ts;

		if (r < 0 && r != -EPROTO)
			return r;
		m->read++;
		progress(m, c, size);
		if (r == -EPROTO) {
			skip(m, SK_MALFORMED, c->line_no);
			continue;
		}
		if (c->nfields != 5) {
			skip(m, SK_FIELDS, c->line_no);
			continue;
		}
		if (parse_u32(&c->field[0], &row.user) < 0 || parse_u32(&c->field[1], &row.item) < 0 ||
		    parse_u32(&c->field[2], &row.cat) < 0 || wf_parse_i64(c->field[4].p, c->field[4].len, &ts) < 0) {
			skip(m, SK_NUMBER, c->line_no);
			continue;
		}
		if (field_is(&c->field[3], "pv"))
			row.type = EV_VIEW;
		else if (field_is(&c->field[3], "cart"))
			row.type = EV_CART_ADD;
		else if (field_is(&c->field[3], "fav"))
			row.type = EV_CLICK;
		else if (field_is(&c->field[3], "buy"))
			row.type = EV_PURCHASE;
		else {
			skip(m, SK_BEHAVIOR, c->line_no);
			continue;
		}
		if (ts < m->min_ts || ts >= m->max_ts) {
			skip(m, SK_WINDOW, c->line_no);
			continue;
		}
		row.ts = ts * 1000;
		if ((r = push(m, &row)) < 0)
			return r;
	}
	return 0;
}

static int read_diginetica(struct imp *m, struct wf_csv *c, uint64_t size)
{
	int r = wf_csv_next(c);

	if (r <= 0 || c->nfields != 5 || !field_is(&c->field[0], "session_id") || !field_is(&c->field[2], "item_id") ||
	    !field_is(&c->field[3], "timeframe") || !field_is(&c->field[4], "eventdate")) {
		wf_err("%s: expected the header session_id;user_id;item_id;timeframe;eventdate", m->in);
		return r < 0 ? r : -EINVAL;
	}
	while ((r = wf_csv_next(c)) != 0) {
		struct row row = { .type = EV_VIEW, .cat = UINT32_MAX };
		int64_t day, tf;

		if (r < 0 && r != -EPROTO)
			return r;
		m->read++;
		progress(m, c, size);
		if (r == -EPROTO) {
			skip(m, SK_MALFORMED, c->line_no);
			continue;
		}
		if (c->nfields != 5) {
			skip(m, SK_FIELDS, c->line_no);
			continue;
		}
		if (field_is(&c->field[1], "NA") || c->field[1].len == 0)
			row.user = NO_USER;
		else if (parse_u32(&c->field[1], &row.user) < 0) {
			skip(m, SK_NUMBER, c->line_no);
			continue;
		}
		if (parse_u32(&c->field[0], &row.sess) < 0 || parse_u32(&c->field[2], &row.item) < 0 ||
		    wf_parse_i64(c->field[3].p, c->field[3].len, &tf) < 0 || tf < 0 ||
		    parse_date_ms(&c->field[4], &day) < 0) {
			skip(m, SK_NUMBER, c->line_no);
			continue;
		}
		row.ts = day + tf;
		if (row.ts < m->min_ts * 1000 || row.ts >= m->max_ts * 1000) {
			skip(m, SK_WINDOW, c->line_no);
			continue;
		}
		if ((r = push(m, &row)) < 0)
			return r;
	}
	return 0;
}

static int cmp_user_ts(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->user != y->user)
		return x->user < y->user ? -1 : 1;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Output order: time, then (user or session), then input order. After
 * sessionizing, seq is rewritten to the (user, ts) order so a user's tied
 * events stay in their session order. */
static int cmp_ts(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_item(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->item != y->item)
		return x->item < y->item ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_sess(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->sess != y->sess)
		return x->sess < y->sess ? -1 : 1;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void sort_rows(struct imp *m, int (*cmp)(const void *, const void *))
{
	if (m->n > 1) /* qsort(NULL, 0) is undefined */
		qsort(m->rows, m->n, sizeof(*m->rows), cmp);
}

/* Taobao: cut each user's time-ordered events at > 30 min gaps. */
static void sessionize(struct imp *m)
{
	uint32_t k = 0;

	sort_rows(m, cmp_user_ts);
	for (size_t i = 0; i < m->n; i++) {
		struct row *r = &m->rows[i];
		if (i == 0 || r->user != r[-1].user) {
			k = 1;
			m->users++;
			m->sessions++;
		} else if ((uint64_t)(r->ts - r[-1].ts) > SESSION_GAP_MS) {
			k++;
			m->sessions++;
		}
		r->sess = k;
		r->seq = (uint32_t)i;
	}
}

/* Diginetica: sessions are given; count them and the known users. */
static int count_diginetica(struct imp *m)
{
	uint32_t *u = malloc((m->n + 1) * sizeof(*u));
	size_t nu = 0;

	if (!u)
		return -ENOMEM;
	sort_rows(m, cmp_sess);
	for (size_t i = 0; i < m->n; i++) {
		struct row *r = &m->rows[i];
		if (i == 0 || r->sess != r[-1].sess)
			m->sessions++;
		if (r->user != NO_USER)
			u[nu++] = r->user;
		r->seq = (uint32_t)i;
	}
	qsort(u, nu, sizeof(*u), cmp_u32);
	for (size_t i = 0; i < nu; i++)
		m->users += i == 0 || u[i] != u[i - 1];
	free(u);
	return 0;
}

static int write_events(struct imp *m)
{
	char path[4096];
	struct out o;
	int r;

	snprintf(path, sizeof(path), "%s/events.csv", m->out);
	if ((r = out_open(&o, path)) < 0) {
		wf_err("open(%s) failed: %s", path, strerror(-r));
		return r;
	}
	out_str(&o, "ts,user_id,session_id,event,item_id,value\n");
	for (size_t i = 0; i < m->n; i++) {
		const struct row *e = &m->rows[i];
		out_u64(&o, (uint64_t)e->ts);
		out_ch(&o, ',');
		if (e->user != NO_USER)
			out_u64(&o, e->user);
		out_ch(&o, ',');
		if (m->fmt == FMT_TAOBAO) {
			/* user-k: the user's k-th session */
			out_u64(&o, e->user);
			out_ch(&o, '-');
		}
		out_u64(&o, e->sess);
		out_ch(&o, ',');
		out_str(&o, ev_names[e->type]);
		out_ch(&o, ',');
		out_u64(&o, e->item);
		out_str(&o, ",\n");
		out_maybe_flush(&o);
		m->ev[e->type]++;
	}
	if ((r = out_close(&o)) < 0)
		wf_err("writing %s failed: %s", path, strerror(-r));
	return r;
}

/* catalog.csv: one row per item; taobao gives its category. Sorts rows by
 * item, so call it after write_events(). */
static int write_catalog(struct imp *m)
{
	char path[4096];
	struct out o;
	int r;

	snprintf(path, sizeof(path), "%s/catalog.csv", m->out);
	if ((r = out_open(&o, path)) < 0) {
		wf_err("open(%s) failed: %s", path, strerror(-r));
		return r;
	}
	sort_rows(m, cmp_item);
	out_str(&o, "item_id,category,brand,price,sizes\n");
	for (size_t i = 0, first = 0; i < m->n; i++) {
		const struct row *e = &m->rows[i];
		if (i > 0 && e->item == e[-1].item) {
			/* First occurrence wins; count items listed under two categories. */
			if (e->cat != m->rows[first].cat && e[-1].cat == m->rows[first].cat)
				m->cat_conflicts++;
			continue;
		}
		first = i;
		m->items++;
		out_u64(&o, e->item);
		out_ch(&o, ',');
		if (e->cat != UINT32_MAX)
			out_u64(&o, e->cat);
		out_str(&o, ",,,\n");
		out_maybe_flush(&o);
	}
	if ((r = out_close(&o)) < 0)
		wf_err("writing %s failed: %s", path, strerror(-r));
	return r;
}

static void fmt_time(int64_t ms, char *out, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&s, &tm) || strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, len, "%lld ms", (long long)ms);
}

static void summary(const struct imp *m, int64_t first, int64_t last)
{
	uint64_t skipped = 0;
	char a[64], b[64];

	for (int k = 0; k < SK_COUNT; k++)
		skipped += m->skipped[k];
	fprintf(stderr, "weft-import: %s -> %s/{events,catalog}.csv\n", m->in, m->out);
	fprintf(stderr, "  rows read %llu, imported %llu, skipped %llu\n", (unsigned long long)m->read,
		(unsigned long long)m->n, (unsigned long long)skipped);
	for (int k = 0; k < SK_COUNT; k++)
		if (m->skipped[k])
			fprintf(stderr, "    skipped %llu: %s (first at line %llu)\n", (unsigned long long)m->skipped[k],
				skip_names[k], (unsigned long long)m->first_line_skipped[k]);
	fprintf(stderr, "  users %llu, sessions %llu, items %llu", (unsigned long long)m->users,
		(unsigned long long)m->sessions, (unsigned long long)m->items);
	if (m->cat_conflicts)
		fprintf(stderr, " (%llu items seen under 2+ categories: first kept)", (unsigned long long)m->cat_conflicts);
	fprintf(stderr, "\n  events:");
	for (int t = 0; t < EV_COUNT; t++)
		fprintf(stderr, " %s %llu", ev_names[t], (unsigned long long)m->ev[t]);
	fprintf(stderr, "\n");
	if (m->n) {
		fmt_time(first, a, sizeof(a));
		fmt_time(last, b, sizeof(b));
		fprintf(stderr, "  time span %s .. %s (%.1f days)\n", a, b, (double)(last - first) / 86400000.0);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: weft-import --format taobao|diginetica --in FILE --out DIR [--min-ts S] [--max-ts S] [--quiet]\n"
		   "  --min-ts/--max-ts  keep rows with min <= ts < max (unix seconds); taobao default\n"
		   "                     %lld..%lld (2017-11-25..2017-12-03 China time), diginetica: all\n",
		(long long)TAOBAO_MIN_TS, (long long)TAOBAO_MAX_TS);
}

static int parse_args(int argc, char **argv, struct imp *m)
{
	static const struct option lo[] = { { "format", required_argument, NULL, 'f' },
					    { "in", required_argument, NULL, 'i' },
					    { "out", required_argument, NULL, 'o' },
					    { "min-ts", required_argument, NULL, 'a' },
					    { "max-ts", required_argument, NULL, 'b' },
					    { "quiet", no_argument, NULL, 'q' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	const char *fmt = NULL;
	int min_set = 0, max_set = 0, ch;

	while ((ch = getopt_long(argc, argv, "f:i:o:a:b:qh", lo, NULL)) != -1) {
		switch (ch) {
		case 'f':
			fmt = optarg;
			break;
		case 'i':
			m->in = optarg;
			break;
		case 'o':
			m->out = optarg;
			break;
		case 'a':
		case 'b':
			if (wf_parse_i64(optarg, strlen(optarg), ch == 'a' ? &m->min_ts : &m->max_ts) < 0) {
				wf_err("--%s wants unix seconds, got '%s'", ch == 'a' ? "min-ts" : "max-ts", optarg);
				return -EINVAL;
			}
			*(ch == 'a' ? &min_set : &max_set) = 1;
			break;
		case 'q':
			m->quiet = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (!fmt || !m->in || !m->out || optind != argc) {
		usage(stderr);
		return -EINVAL;
	}
	if (strcmp(fmt, "taobao") == 0)
		m->fmt = FMT_TAOBAO;
	else if (strcmp(fmt, "diginetica") == 0)
		m->fmt = FMT_DIGINETICA;
	else {
		wf_err("unknown --format '%s' (taobao or diginetica)", fmt);
		return -EINVAL;
	}
	if (!min_set)
		m->min_ts = m->fmt == FMT_TAOBAO ? TAOBAO_MIN_TS : INT64_MIN / 1000;
	if (!max_set)
		m->max_ts = m->fmt == FMT_TAOBAO ? TAOBAO_MAX_TS : INT64_MAX / 1000;
	return 0;
}

int main(int argc, char **argv)
{
	struct imp m = { 0 };
	struct wf_csv c;
	struct stat st;
	int64_t first = 0, last = 0;
	int r;

	wf_log_init("weft-import");
	if (parse_args(argc, argv, &m) < 0)
		return 2;
	if ((r = wf_csv_open(&c, m.in, m.fmt == FMT_TAOBAO ? ',' : ';')) < 0) {
		wf_err("cannot open %s: %s", m.in, strerror(-r));
		return 1;
	}
	if (mkdir(m.out, 0755) < 0 && errno != EEXIST) {
		wf_err("mkdir(%s) failed: %s", m.out, strerror(errno));
		wf_csv_close(&c);
		return 1;
	}
	r = m.fmt == FMT_TAOBAO ? read_taobao(&m, &c, stat(m.in, &st) == 0 ? (uint64_t)st.st_size : 0)
				: read_diginetica(&m, &c, stat(m.in, &st) == 0 ? (uint64_t)st.st_size : 0);
	wf_csv_close(&c);
	if (r < 0) {
		wf_err("reading %s failed: %s", m.in, strerror(-r));
		goto out;
	}
	if (m.fmt == FMT_TAOBAO)
		sessionize(&m);
	else if ((r = count_diginetica(&m)) < 0)
		goto out;
	sort_rows(&m, cmp_ts);
	if (m.n) {
		first = m.rows[0].ts;
		last = m.rows[m.n - 1].ts;
	}
	if ((r = write_events(&m)) < 0 || (r = write_catalog(&m)) < 0)
		goto out;
	if (!m.quiet)
		summary(&m, first, last);
out:
	free(m.rows);
	return r < 0 ? 1 : 0;
}
