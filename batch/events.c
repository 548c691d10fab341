/*
 * events.c - weft-batch's event input: every events CSV (`--events`,
 * nightly's `--history`) and the event journal (nightly's
 * `--state-dir`/journal, lib/journal.h) into the one event array the model
 * reads. Linked only into weft-batch.
 *
 * Parallel read: each CSV is mapped and split after its header into
 * byte ranges of opt.chunk_bytes that end at a newline (a CSV record is one
 * physical line, lib/csv.h, so a range boundary is a record boundary). Each
 * range is a job run on opt.threads threads (wf_batch_parallel): it parses
 * with lib/csv.h into its own id tables and its own event buffer, counts its
 * lines and keeps its first malformed rows by line number within the range.
 * A finished job is merged under one mutex as soon as every earlier job is
 * merged, so the merge runs in file order: items, users and sessions get the
 * numbers a sequential read would give, and the result does not depend on
 * the thread count. The journal is one more job after the CSVs. Line
 * numbers become file line numbers once every job's line count is known.
 *
 * Memory: event buffers are anonymous mappings grown with mremap (no copy;
 * resident = what was written); the final array is filled job by job and
 * each job's buffer unmapped right after its copy, so the peak is the
 * events once plus one job's. Mapped CSV pages are dropped from the
 * process (MADV_DONTNEED; the page cache keeps them) once read.
 *
 * Sessions are keyed by the XXH3-64 of their id, not the id: only their
 * grouping matters, and two of 10^7 sessions share a key with probability
 * ~3e-6 (they would count as one session).
 *
 * Source digest: each events CSV is hashed in fixed 256 MiB pieces (piece
 * boundaries do not depend on the ranges or threads), the file's digest
 * input is the pieces' XXH3-64 values then its length; the journal adds
 * the XXH3-64 of its records' timestamps and arguments.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch/batch.h"
#include "lib/journal.h"
#include "lib/proto.h"

#define PIECE_BYTES (256ull << 20)   /* digest piece; fixed, part of the digest's definition */
#define HASH_STEP (16u << 20)        /* hash this much, then drop its pages */

/* ---- event buffers: anonymous mappings grown with mremap ---- */

struct evbuf {
	struct wf_batch_event *p;
	uint64_t n, cap;
};

static int evbuf_reserve(struct evbuf *e, uint64_t want)
{
	uint64_t cap;
	void *p;

	if (want <= e->cap)
		return 0;
	cap = WF_MAX(want, e->cap ? e->cap * 2 : 65536);
	if (e->p)
		p = mremap(e->p, e->cap * sizeof(*e->p), cap * sizeof(*e->p), MREMAP_MAYMOVE);
	else
		p = mmap(NULL, cap * sizeof(*e->p), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	e->p = p;
	e->cap = cap;
	return 0;
}

static void evbuf_free(struct evbuf *e)
{
	if (e->p)
		munmap(e->p, e->cap * sizeof(*e->p));
	*e = (struct evbuf){ 0 };
}

void wf_batch_events_free(struct wf_batch *b)
{
	if (b->ev)
		munmap(b->ev, b->ev_map);
	b->ev = NULL;
	b->ev_map = 0;
	b->nev = 0;
}

/* ---- sessions: XXH3-64 of the id -> dense number ---- */

struct sesstab {
	uint64_t *key;  /* per number */
	uint32_t *slot; /* number + 1, 0 empty */
	uint32_t mask, n, cap;
};

static int sess_init(struct sesstab *t)
{
	*t = (struct sesstab){ .slot = calloc(1024, sizeof(uint32_t)), .mask = 1023 };
	return t->slot ? 0 : -ENOMEM;
}

static void sess_fini(struct sesstab *t)
{
	free(t->key);
	free(t->slot);
	*t = (struct sesstab){ 0 };
}

/* Number of key h, adding it if new. 0 or -ENOMEM / -E2BIG. */
static int sess_get(struct sesstab *t, uint64_t h, uint32_t *ret)
{
	uint32_t s = (uint32_t)h & t->mask, v;

	while ((v = t->slot[s]) != 0) {
		if (t->key[v - 1] == h) {
			*ret = v - 1;
			return 0;
		}
		s = (s + 1) & t->mask;
	}
	if (t->n >= 0xfffffff0u)
		return -E2BIG;
	if ((uint64_t)(t->n + 1) * 2 > (uint64_t)t->mask + 1) {
		uint64_t nslots = ((uint64_t)t->mask + 1) * 2;
		uint32_t *slot = calloc(nslots, sizeof(*slot));
		if (!slot)
			return -ENOMEM;
		free(t->slot);
		t->slot = slot;
		t->mask = (uint32_t)(nslots - 1);
		for (uint32_t i = 0; i < t->n; i++) {
			uint32_t x = (uint32_t)t->key[i] & t->mask;
			while (t->slot[x])
				x = (x + 1) & t->mask;
			t->slot[x] = i + 1;
		}
		s = (uint32_t)h & t->mask;
		while (t->slot[s])
			s = (s + 1) & t->mask;
	}
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 1024;
		uint64_t *k = realloc(t->key, (size_t)cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		t->key = k;
		t->cap = cap;
	}
	t->key[t->n] = h;
	t->slot[s] = ++t->n;
	*ret = t->n - 1;
	return 0;
}

/* ---- jobs ---- */

struct report {
	uint64_t line; /* within the job's range (1-based), or the journal record's LSN */
	const char *why;
};

/* A source: an events CSV, or the journal (read whole by one job). */
struct srcfile {
	const char *path;     /* the CSV, or the journal's directory */
	bool journal;
	const char *base; /* whole file mapped read-only, or NULL when empty */
	uint64_t size;
	uint64_t header_line; /* line number of the header */
	uint64_t data_off;    /* first byte after the header line */
	struct wf_batch_cols m;
	uint64_t *piece;      /* XXH3-64 per PIECE_BYTES piece */
	uint64_t npieces;
	uint64_t good, bad, reported;
	uint64_t jhash;       /* journal: XXH3-64 of its records */
};

struct job {
	uint32_t file;        /* index into loader.files */
	uint64_t off, len;    /* byte range in the file */
	uint64_t lines;       /* lines in the range, once parsed */
	struct wf_buf arena;  /* local ids */
	struct wf_intern items, users;
	uint64_t *ifirst, *ufirst; /* per local item / user: its first event in the job */
	struct sesstab sess;
	struct evbuf ev;
	uint64_t good, bad, anon;
	int64_t min_ms, max_ms;
	struct report rep[WF_BATCH_MAX_REPORTED];
	uint32_t nrep;
	int err;              /* -errno: the job failed (already logged) */
	bool done;
};

struct loader {
	struct wf_batch *b;
	struct srcfile *files;    /* the CSVs, then the journal if any */
	uint32_t nfiles;
	struct job *jobs;
	uint64_t njobs;
	pthread_mutex_t lock;     /* guards next, err, done flags and everything merge() touches in b */
	uint64_t next;            /* first job not merged yet */
	int err;
	struct sesstab sess;      /* global sessions (under lock) */
	uint64_t total_bytes;
	atomic_uint_fast64_t bytes_done; /* relaxed: progress display only */
	atomic_uint_fast64_t last_print; /* relaxed: progress display only */
};

static void progress(struct loader *L, uint64_t add)
{
	uint64_t done = atomic_fetch_add_explicit(&L->bytes_done, add, memory_order_relaxed) + add;
	uint64_t now = wf_now_ns(), last = atomic_load_explicit(&L->last_print, memory_order_relaxed);

	if (L->b->opt.quiet || now - last < 1000000000ull)
		return;
	/* One thread wins the second; the loser just skips this print. */
	if (atomic_compare_exchange_strong_explicit(&L->last_print, &last, now, memory_order_relaxed,
						    memory_order_relaxed))
		wf_batch_progress(L->b, "reading events", done, L->total_bytes);
}

static void bad(struct job *j, uint64_t line, const char *why)
{
	if (j->nrep < WF_BATCH_MAX_REPORTED)
		j->rep[j->nrep++] = (struct report){ line, why };
	j->bad++;
}

struct row {
	int64_t ts_ms;
	struct wf_csv_field sess, type, item, user, val;
};

/* Intern f in t; a new entry records ev (its first event) in *first. */
static int intern_first(struct wf_intern *t, uint64_t **first, uint64_t ev, const struct wf_csv_field *f,
			uint32_t *ret)
{
	bool isnew;
	int r = wf_intern_get(t, f->p, f->len, ret, &isnew);

	if (r < 0 || !isnew)
		return r;
	if ((t->n & (t->n - 1)) == 0) {
		/* grow at powers of two: n - 1 entries fit, the new one may not */
		uint64_t *p = realloc(*first, (size_t)WF_MAX(t->n * 2, 16u) * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*first = p;
	}
	(*first)[*ret] = ev;
	return 0;
}

/* Validate one row (CSV or journal: the same rules) and append it to the
 * job with job-local ids. NULL when added, else why it is malformed;
 * j->err set on a fatal error. */
static const char *add_row(struct job *j, const struct row *w)
{
	struct wf_batch_event e = { .ts_ms = w->ts_ms, .item = 0xffffffffu, .user = WF_BATCH_NO_USER, .qty = 1 };
	int t = wf_event_from_name(w->type.p, w->type.len), r;

	if (t < 0)
		return "unknown event type";
	e.type = (uint8_t)t;
	if (w->sess.len == 0 || w->sess.len > WF_BATCH_MAX_ID || w->user.len > WF_BATCH_MAX_ID ||
	    w->item.len > WF_BATCH_MAX_ID)
		return "session_id empty, or an id longer than 128 bytes";
	if (w->item.len == 0 && t != WF_EV_SEARCH)
		return "item_id empty (only search events may omit it)";
	if ((t == WF_EV_PURCHASE || t == WF_EV_CART_ADD) && w->val.len) {
		double q;
		if (wf_parse_double(w->val.p, w->val.len, &q) == 0 && q > 0 && q <= 1000)
			e.qty = (uint16_t)WF_MAX(1L, lround(q));
	}
	if ((w->item.len && (r = intern_first(&j->items, &j->ifirst, j->ev.n, &w->item, &e.item)) < 0) ||
	    (w->user.len && (r = intern_first(&j->users, &j->ufirst, j->ev.n, &w->user, &e.user)) < 0) ||
	    (r = sess_get(&j->sess, wf_hash64(w->sess.p, w->sess.len), &e.session)) < 0 ||
	    (r = evbuf_reserve(&j->ev, j->ev.n + 1)) < 0) {
		j->err = r;
		return NULL;
	}
	j->ev.p[j->ev.n++] = e;
	j->min_ms = WF_MIN(j->min_ms, e.ts_ms);
	j->max_ms = WF_MAX(j->max_ms, e.ts_ms);
	j->anon += e.user == WF_BATCH_NO_USER;
	j->good++;
	return NULL;
}

/* Drop [from, to) of a read-only file mapping from this process (rounded
 * inwards to pages); the page cache keeps it. Only costs a re-fault if
 * touched again. */
static void drop_pages(const char *from, const char *to)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)from + pg - 1) & ~(pg - 1),
		  z = (uintptr_t)to & ~(pg - 1);

	if (z > a)
		madvise((void *)a, z - a, MADV_DONTNEED);
}

/* Hash every digest piece of f that starts in [from, to). 0 or -ENOMEM. */
static int hash_pieces(struct srcfile *f, uint64_t from, uint64_t to)
{
	XXH3_state_t *st = XXH3_createState();

	if (!st)
		return -ENOMEM;
	for (uint64_t k = (from + PIECE_BYTES - 1) / PIECE_BYTES; k < f->npieces && k * PIECE_BYTES < to; k++) {
		uint64_t s = k * PIECE_BYTES, e = WF_MIN(s + PIECE_BYTES, f->size);

		XXH3_64bits_reset(st);
		for (uint64_t p = s; p < e; p += HASH_STEP) {
			uint64_t n = WF_MIN((uint64_t)HASH_STEP, e - p);
			XXH3_64bits_update(st, f->base + p, n);
			drop_pages(f->base + p, f->base + p + n);
		}
		f->piece[k] = XXH3_64bits_digest(st);
	}
	XXH3_freeState(st);
	return 0;
}

/* A lib/csv.h reader over [p, p + len) of a mapping. lib/csv.h opens a
 * path; its reader state is public (lib/csv.h), so the stream is swapped
 * for an fmemopen() one. 0 or -errno. */
static void parse_csv(struct loader *L, struct job *j)
{
	struct srcfile *f = &L->files[j->file];
	uint64_t last_bytes = 0, rows = 0;
	struct wf_csv c;
	int r;

	/* The file's first range also hashes the piece holding the header. */
	if ((r = hash_pieces(f, j->off == f->data_off ? 0 : j->off, j->off + j->len)) < 0) {
		j->err = r;
		wf_err("out of memory");
		return;
	}
	if ((r = wf_csv_open_mem(&c, f->base + j->off, j->len, ',')) < 0) {
		j->err = r;
		wf_err("%s: cannot start a reader for bytes %" PRIu64 "..%" PRIu64 ": %s", f->path, j->off,
		       j->off + j->len, strerror(-r));
		return;
	}
	while ((r = wf_csv_next(&c)) != 0 && !j->err) {
		const struct wf_csv_field *ts = wf_batch_col(&c, &f->m, 0);
		const char *why;
		struct row w;

		if (r < 0 && r != -EPROTO) {
			j->err = r;
			wf_err("%s: read failed: %s", f->path, strerror(-r));
			break;
		}
		if ((++rows & 0xffff) == 0) {
			/* Everything fread so far was copied out of the mapping. */
			drop_pages(f->base + j->off + last_bytes, f->base + j->off + c.bytes_read);
			progress(L, c.bytes_read - last_bytes);
			last_bytes = c.bytes_read;
		}
		if (r == -EPROTO) {
			bad(j, c.line_no, "malformed CSV record");
			continue;
		}
		w = (struct row){ .sess = *wf_batch_col(&c, &f->m, 1), .type = *wf_batch_col(&c, &f->m, 2),
				  .item = *wf_batch_col(&c, &f->m, 3), .user = *wf_batch_col(&c, &f->m, 4),
				  .val = *wf_batch_col(&c, &f->m, 5) };
		if (wf_parse_i64(ts->p, ts->len, &w.ts_ms) < 0 || w.ts_ms < 0) {
			bad(j, c.line_no, "ts is not a unix time in milliseconds");
			continue;
		}
		if ((why = add_row(j, &w)) != NULL)
			bad(j, c.line_no, why);
	}
	if (j->err == -ENOMEM || j->err == -E2BIG)
		wf_err("%s: %s while reading events", f->path, strerror(-j->err));
	j->lines = c.line_no;
	progress(L, j->len - last_bytes);
	drop_pages(f->base + j->off, f->base + j->off + j->len);
	wf_csv_close(&c);
}

/* The journal's record: session user type item [field value]...; "-" is
 * no user / no item; the value column is the field the event type carries. */
static void parse_journal(struct loader *L, struct job *j)
{
	struct srcfile *f = &L->files[j->file];
	const char *dir = f->path;
	struct wf_journal_reader *rd;
	struct wf_journal_rec *rec = calloc(1, sizeof(*rec));
	XXH3_state_t *st = XXH3_createState();
	uint64_t n = 0;
	int e;

	if (!rec || !st) {
		free(rec);
		XXH3_freeState(st);
		j->err = -ENOMEM;
		wf_err("out of memory");
		return;
	}
	XXH3_64bits_reset(st);
	e = wf_journal_reader_open(dir, 0, &rd);
	if (e < 0) {
		free(rec);
		f->jhash = XXH3_64bits_digest(st);
		XXH3_freeState(st);
		if (e == -ENOENT)
			return;
		j->err = e;
		wf_err("cannot read the journal in %s: %s", dir, strerror(-e));
		return;
	}
	while ((e = wf_journal_reader_next(rd, rec)) == 1 && !j->err) {
		static const char *const key[WF_EV_COUNT] = {
			[WF_EV_DWELL] = "ms", [WF_EV_SCROLL] = "depth", [WF_EV_SEARCH] = "q",
			[WF_EV_CART_ADD] = "qty", [WF_EV_PURCHASE] = "qty",
		};
		struct row w = { 0 };
		const char *why;
		int t;

		if (rec->kind != WF_JREC_EVENT)
			continue; /* segment transitions, exposures: not the nightly's input */
		n++;
		XXH3_64bits_update(st, &rec->ts_ms, sizeof(rec->ts_ms));
		for (uint32_t i = 0; i < rec->argc; i++) {
			XXH3_64bits_update(st, &rec->argl[i], sizeof(rec->argl[i]));
			XXH3_64bits_update(st, rec->argv[i], rec->argl[i]);
		}
		if (rec->argc < 4 || rec->ts_ms > (uint64_t)INT64_MAX) {
			bad(j, rec->lsn, "not an EVENT record (session user type item)");
			continue;
		}
		w.ts_ms = (int64_t)rec->ts_ms;
		w.sess = (struct wf_csv_field){ rec->argv[0], rec->argl[0] };
		if (!wf_user_is_anon(rec->argv[1], rec->argl[1]))
			w.user = (struct wf_csv_field){ rec->argv[1], rec->argl[1] };
		w.type = (struct wf_csv_field){ rec->argv[2], rec->argl[2] };
		if (!(rec->argl[3] == 1 && rec->argv[3][0] == '-'))
			w.item = (struct wf_csv_field){ rec->argv[3], rec->argl[3] };
		/* Names as weft-ingest and the rankers take them: any case. */
		t = wf_event_from_name(w.type.p, w.type.len);
		for (uint32_t i = 4; t >= 0 && key[t] && i + 1 < rec->argc; i += 2)
			if (rec->argl[i] == strlen(key[t]) && strncasecmp(rec->argv[i], key[t], rec->argl[i]) == 0)
				w.val = (struct wf_csv_field){ rec->argv[i + 1], rec->argl[i + 1] };
		if ((why = add_row(j, &w)) != NULL)
			bad(j, rec->lsn, why);
	}
	wf_journal_reader_close(rd);
	free(rec);
	if (e < 0)
		wf_warn("the journal in %s has a corrupt record after %" PRIu64 " records: building from those", dir, n);
	if (j->err)
		wf_err("%s: %s while reading the journal", dir, strerror(-j->err));
	j->lines = n;
	f->jhash = XXH3_64bits_digest(st);
	XXH3_freeState(st);
}

static void job_free(struct job *j)
{
	free(j->ifirst);
	free(j->ufirst);
	j->ifirst = j->ufirst = NULL;
	wf_intern_fini(&j->items);
	wf_intern_fini(&j->users);
	wf_buf_fini(&j->arena);
	sess_fini(&j->sess);
}

/* Job-local ids to global ones, in job order (caller holds L->lock). */
static int merge(struct loader *L, struct job *j)
{
	struct wf_batch *b = L->b;
	uint32_t *imap = malloc(((size_t)j->items.n + 1) * sizeof(*imap));
	uint32_t *umap = malloc(((size_t)j->users.n + 1) * sizeof(*umap));
	uint32_t *smap = malloc(((size_t)j->sess.n + 1) * sizeof(*smap));
	int r = -ENOMEM;

	if (!imap || !umap || !smap)
		goto out;
	/* Items and users in the order a sequential read meets them (a row's
	 * item before its user), so even the string section is the same
	 * however the file was split. */
	for (uint32_t i = 0, k = 0; i < j->items.n || k < j->users.n;) {
		if (i < j->items.n && (k == j->users.n || j->ifirst[i] <= j->ufirst[k])) {
			if ((r = wf_batch_item_get(b, j->arena.data + j->items.off[i], j->items.len[i], &imap[i])) < 0)
				goto out;
			i++;
		} else {
			if ((r = wf_batch_user_get(b, j->arena.data + j->users.off[k], j->users.len[k], &umap[k])) < 0)
				goto out;
			k++;
		}
	}
	for (uint32_t i = 0; i < j->sess.n; i++)
		if ((r = sess_get(&L->sess, j->sess.key[i], &smap[i])) < 0)
			goto out;
	for (uint64_t k = 0; k < j->ev.n; k++) {
		struct wf_batch_event *e = &j->ev.p[k];
		if (e->item != 0xffffffffu)
			e->item = imap[e->item];
		if (e->user != WF_BATCH_NO_USER)
			e->user = umap[e->user];
		e->session = smap[e->session];
	}
	b->min_ms = WF_MIN(b->min_ms, j->min_ms);
	b->max_ms = WF_MAX(b->max_ms, j->max_ms);
	b->st.anon_events += j->anon;
	r = 0;
out:
	if (r < 0)
		wf_err("merging events: %s", strerror(-r));
	free(imap);
	free(umap);
	free(smap);
	return r;
}

static void job_run(void *arg, uint64_t i, uint32_t worker)
{
	struct loader *L = arg;
	struct job *j = &L->jobs[i];

	(void)worker;
	j->min_ms = INT64_MAX;
	j->max_ms = INT64_MIN;
	if (wf_intern_init(&j->items, &j->arena) < 0 || wf_intern_init(&j->users, &j->arena) < 0 ||
	    sess_init(&j->sess) < 0) {
		j->err = -ENOMEM;
		wf_err("out of memory");
	} else if (L->files[j->file].journal) {
		parse_journal(L, j);
	} else {
		parse_csv(L, j);
	}
	pthread_mutex_lock(&L->lock);
	j->done = true;
	while (L->next < L->njobs && L->jobs[L->next].done) {
		struct job *m = &L->jobs[L->next++];
		if (!L->err && m->err)
			L->err = m->err;
		if (!L->err)
			L->err = merge(L, m);
		job_free(m);
	}
	pthread_mutex_unlock(&L->lock);
}

/* Map one events CSV, find and map its header. 0 or -errno (logged). */
static int open_file(struct srcfile *f)
{
	static const char *const names[] = { "ts", "session_id", "event", "item_id", "user_id", "value" };
	struct stat st;
	uint64_t pos = 0, line = 0;
	struct wf_csv c;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		wf_err("cannot open events file %s: %s", f->path, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	f->size = (uint64_t)st.st_size;
	if (f->size > 0) {
		void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			r = -errno;
			close(fd);
			wf_err("cannot map events file %s: %s", f->path, strerror(-r));
			return r;
		}
		f->base = p;
		madvise(p, f->size, MADV_SEQUENTIAL);
	}
	close(fd);
	f->npieces = (f->size + PIECE_BYTES - 1) / PIECE_BYTES;
	f->piece = calloc(f->npieces + 1, sizeof(*f->piece));
	if (!f->piece)
		return -ENOMEM;
	/* The header: the first line that is not blank (as lib/csv.h skips them). */
	for (;;) {
		const char *nl = pos < f->size ? memchr(f->base + pos, '\n', f->size - pos) : NULL;
		uint64_t end = nl ? (uint64_t)(nl - f->base) + 1 : f->size, len = end - pos;

		if (pos >= f->size) {
			wf_err("%s: empty file, a header line is required", f->path);
			return -EINVAL;
		}
		line++;
		while (len > 0 && (f->base[pos + len - 1] == '\n' || f->base[pos + len - 1] == '\r'))
			len--;
		if (len == 0) {
			pos = end;
			continue;
		}
		if ((r = wf_csv_open_mem(&c, f->base + pos, end - pos, ',')) < 0) {
			wf_err("%s: cannot start a reader: %s", f->path, strerror(-r));
			return r;
		}
		/* The first four columns are required. */
		r = wf_batch_read_header(&c, f->path, "events", names, WF_ARRAY_SIZE(names), 4, &f->m);
		wf_csv_close(&c);
		if (r < 0)
			return r;
		f->header_line = line;
		f->data_off = end;
		/* No rows: no job hashes the piece holding the header (the
		 * first range of a file does, see parse_csv). */
		return end >= f->size ? hash_pieces(f, 0, f->size) : 0;
	}
}

/* Split every CSV into ranges; the journal is one job. 0 or -ENOMEM. */
static int plan(struct loader *L)
{
	uint64_t chunk = L->b->opt.chunk_bytes ? L->b->opt.chunk_bytes : WF_BATCH_CHUNK_BYTES, n = 0, cap = 16;

	L->jobs = calloc(cap, sizeof(*L->jobs));
	if (!L->jobs)
		return -ENOMEM;
	for (uint32_t fi = 0; fi < L->nfiles; fi++) {
		struct srcfile *f = &L->files[fi];
		uint64_t pos = f->data_off;

		do {
			uint64_t end = 0;
			if (!f->journal) {
				end = pos + chunk >= f->size ? f->size : pos + chunk;
				if (end < f->size) {
					const char *nl = memchr(f->base + end - 1, '\n', f->size - end + 1);
					end = nl ? (uint64_t)(nl - f->base) + 1 : f->size;
				}
				if (end <= pos)
					break;
			}
			if (n == cap) {
				struct job *p = realloc(L->jobs, 2 * cap * sizeof(*p));
				if (!p)
					return -ENOMEM;
				memset(p + cap, 0, cap * sizeof(*p));
				L->jobs = p;
				cap *= 2;
			}
			L->jobs[n++] = (struct job){ .file = fi, .off = pos, .len = end - pos };
			pos = end;
		} while (!f->journal && pos < f->size);
	}
	L->njobs = n;
	return 0;
}

/* Per source: malformed rows with their file line numbers (or journal
 * LSNs), counts, and the verdict (more bad rows than good ones: the wrong
 * file). */
static int report(struct loader *L)
{
	struct wf_batch *b = L->b;
	uint64_t *line = calloc(L->nfiles, sizeof(*line));
	int r = 0;

	if (!line)
		return -ENOMEM;
	for (uint32_t fi = 0; fi < L->nfiles; fi++)
		line[fi] = L->files[fi].header_line;
	for (uint64_t i = 0; i < L->njobs; i++) {
		struct job *j = &L->jobs[i];
		struct srcfile *f = &L->files[j->file];

		for (uint32_t k = 0; k < j->nrep; k++, f->reported++) {
			if (f->reported == WF_BATCH_MAX_REPORTED)
				wf_warn("%s: more malformed rows; only the count is reported from here on", f->path);
			if (f->reported >= WF_BATCH_MAX_REPORTED)
				continue;
			if (f->journal)
				wf_warn("%s: record lsn %" PRIu64 ": %s; record skipped", f->path, j->rep[k].line, j->rep[k].why);
			else
				wf_warn("%s:%" PRIu64 ": %s; row skipped", f->path, line[j->file] + j->rep[k].line, j->rep[k].why);
		}
		if (j->bad > j->nrep && f->reported == WF_BATCH_MAX_REPORTED) {
			/* rows past the job's own record (it kept only WF_BATCH_MAX_REPORTED) */
			wf_warn("%s: more malformed rows; only the count is reported from here on", f->path);
			f->reported++;
		}
		line[j->file] += j->lines;
		f->good += j->good;
		f->bad += j->bad;
		b->st.events_read += j->good;
		b->st.rows_skipped += j->bad;
	}
	for (uint32_t fi = 0; fi < L->nfiles && r == 0; fi++) {
		const struct srcfile *f = &L->files[fi];
		r = wf_batch_judge(f->path, "events",
				   f->journal ? "event journal" : "events CSV, with the header DESIGN.md names", f->good,
				   f->bad);
	}
	free(line);
	return r;
}

int wf_batch_load_events(struct wf_batch *b, XXH3_state_t *digest)
{
	struct loader L = { .b = b, .nfiles = b->opt.nevents + (b->opt.journal ? 1 : 0) };
	uint64_t total = 0;
	int r;

	b->min_ms = INT64_MAX;
	b->max_ms = INT64_MIN;
	atomic_init(&L.bytes_done, 0);
	atomic_init(&L.last_print, 0);
	pthread_mutex_init(&L.lock, NULL);
	L.files = calloc(L.nfiles + 1, sizeof(*L.files));
	if (!L.files || (r = sess_init(&L.sess)) < 0) {
		r = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < b->opt.nevents; i++) {
		L.files[i].path = b->opt.events[i];
		if ((r = open_file(&L.files[i])) < 0)
			goto out;
		L.total_bytes += L.files[i].size;
	}
	if (b->opt.journal)
		L.files[L.nfiles - 1] = (struct srcfile){ .path = b->opt.journal, .journal = true };
	if ((r = plan(&L)) < 0)
		goto out;
	wf_batch_parallel(b, L.njobs, NULL, job_run, &L); /* progress: by bytes, progress() */
	if ((r = L.err) < 0)
		goto out;
	wf_batch_progress(b, "reading events", L.total_bytes, L.total_bytes);
	if ((r = report(&L)) < 0)
		goto out;

	/* Digest: every CSV's pieces and length, then the journal's records. */
	for (uint32_t i = 0; i < L.nfiles; i++) {
		const struct srcfile *f = &L.files[i];
		if (f->journal) {
			XXH3_64bits_update(digest, &f->jhash, sizeof(f->jhash));
			continue;
		}
		XXH3_64bits_update(digest, f->piece, f->npieces * sizeof(uint64_t));
		XXH3_64bits_update(digest, &f->size, sizeof(f->size));
	}

	/* One array, job by job, each job's buffer unmapped after its copy. */
	for (uint64_t i = 0; i < L.njobs; i++)
		total += L.jobs[i].ev.n;
	if (total == 0) {
		if (b->opt.journal)
			wf_err("nothing to build from: %s holds no events and no --history rows were usable; the current "
			       "snapshot stays", b->opt.journal);
		else
			wf_err("%s: no usable event rows", b->opt.nevents ? L.files[0].path : "events");
		r = -EINVAL;
		goto out;
	}
	b->ev_map = total * sizeof(*b->ev);
	b->ev = mmap(NULL, b->ev_map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->ev == MAP_FAILED) {
		b->ev = NULL;
		b->ev_map = 0;
		wf_err("out of memory for %" PRIu64 " events", total);
		r = -ENOMEM;
		goto out;
	}
	for (uint64_t i = 0; i < L.njobs; i++) {
		memcpy(b->ev + b->nev, L.jobs[i].ev.p, L.jobs[i].ev.n * sizeof(*b->ev));
		b->nev += L.jobs[i].ev.n;
		evbuf_free(&L.jobs[i].ev);
	}
	b->st.sessions = L.sess.n;
	r = 0;
out:
	for (uint64_t i = 0; L.jobs && i < L.njobs; i++) {
		job_free(&L.jobs[i]);
		evbuf_free(&L.jobs[i].ev);
	}
	for (uint32_t i = 0; L.files && i < L.nfiles; i++) {
		if (L.files[i].base)
			munmap((void *)(uintptr_t)L.files[i].base, L.files[i].size);
		free(L.files[i].piece);
	}
	free(L.files);
	free(L.jobs);
	sess_fini(&L.sess);
	pthread_mutex_destroy(&L.lock);
	return r;
}
