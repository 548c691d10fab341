/*
 * weftctl_render.c - weftctl's output: a tiny JSON emitter and aligned
 * human tables, both driven by the admin reply conventions (see
 * admin_cmd.c: maps are key/value arrays, lists are arrays of arrays).
 * Linked into weftctl only.
 */
#include <ctype.h>
#include <string.h>

#include "admin/weftctl_int.h"

static int is_list(const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
		return 0;
	for (size_t i = 0; i < r->elements; i++)
		if (r->element[i]->type != REDIS_REPLY_ARRAY)
			return 0;
	return 1;
}

static int is_map(const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 || is_list(r))
		return 0;
	for (size_t i = 0; i < r->elements; i += 2)
		if (r->element[i]->type != REDIS_REPLY_STRING && r->element[i]->type != REDIS_REPLY_STATUS)
			return 0;
	return 1;
}

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s, size_t n)
{
	size_t i = 0;

	if (i < n && s[i] == '-')
		i++;
	if (i >= n || !isdigit((unsigned char)s[i]))
		return 0;
	if (s[i] == '0')
		i++;
	else
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	if (i < n && s[i] == '.') {
		if (++i >= n || !isdigit((unsigned char)s[i]))
			return 0;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !isdigit((unsigned char)s[i]))
			return 0;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	return i == n;
}

int wf_cli_json_str(struct wf_buf *b, const char *s, size_t len)
{
	int r = wf_buf_append(b, "\"", 1);

	for (size_t i = 0; i < len && r == 0; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"': r = wf_buf_append(b, "\\\"", 2); break;
		case '\\': r = wf_buf_append(b, "\\\\", 2); break;
		case '\n': r = wf_buf_append(b, "\\n", 2); break;
		case '\r': r = wf_buf_append(b, "\\r", 2); break;
		case '\t': r = wf_buf_append(b, "\\t", 2); break;
		case '\b': r = wf_buf_append(b, "\\b", 2); break;
		case '\f': r = wf_buf_append(b, "\\f", 2); break;
		default:
			/* Control bytes and DEL escaped; bytes >= 0x80 pass
			 * through (UTF-8 stays UTF-8). */
			if (c < 0x20 || c == 0x7f)
				r = wf_buf_printf(b, "\\u%04x", c);
			else
				r = wf_buf_append(b, &s[i], 1);
		}
	}
	return r ? r : wf_buf_append(b, "\"", 1);
}

int wf_cli_json(struct wf_buf *b, const redisReply *r)
{
	int rc = 0;

	switch (r->type) {
	case REDIS_REPLY_INTEGER:
		return wf_buf_printf(b, "%lld", r->integer);
	case REDIS_REPLY_NIL:
		return wf_buf_append(b, "null", 4);
	case REDIS_REPLY_STRING:
		if (is_json_number(r->str, r->len))
			return wf_buf_append(b, r->str, r->len);
		return wf_cli_json_str(b, r->str, r->len);
	case REDIS_REPLY_STATUS:
		return wf_cli_json_str(b, r->str, r->len);
	case REDIS_REPLY_ERROR:
		rc = wf_buf_append(b, "{\"error\":", 9);
		if (rc == 0)
			rc = wf_cli_json_str(b, r->str, r->len);
		return rc ? rc : wf_buf_append(b, "}", 1);
	case REDIS_REPLY_ARRAY:
		break;
	default:
		return wf_buf_append(b, "null", 4);
	}
	if (is_map(r)) {
		rc = wf_buf_append(b, "{", 1);
		for (size_t i = 0; i < r->elements && rc == 0; i += 2) {
			if (i)
				rc = wf_buf_append(b, ",", 1);
			if (rc == 0)
				rc = wf_cli_json_str(b, r->element[i]->str, r->element[i]->len);
			if (rc == 0)
				rc = wf_buf_append(b, ":", 1);
			if (rc == 0)
				rc = wf_cli_json(b, r->element[i + 1]);
		}
		return rc ? rc : wf_buf_append(b, "}", 1);
	}
	rc = wf_buf_append(b, "[", 1);
	for (size_t i = 0; i < r->elements && rc == 0; i++) {
		if (i)
			rc = wf_buf_append(b, ",", 1);
		if (rc == 0)
			rc = wf_cli_json(b, r->element[i]);
	}
	return rc ? rc : wf_buf_append(b, "]", 1);
}

const redisReply *wf_cli_get(const redisReply *r, const char *key)
{
	if (!r || !is_map(r))
		return NULL;
	for (size_t i = 0; i < r->elements; i += 2)
		if (strcmp(r->element[i]->str, key) == 0)
			return r->element[i + 1];
	return NULL;
}

long long wf_cli_get_int(const redisReply *r, const char *key, long long def)
{
	const redisReply *v = wf_cli_get(r, key);

	if (!v)
		return def;
	if (v->type == REDIS_REPLY_INTEGER)
		return v->integer;
	if (v->type == REDIS_REPLY_STRING && is_json_number(v->str, v->len))
		return strtoll(v->str, NULL, 10);
	return def;
}

/* A scalar as text for a table cell. */
static void cell(const redisReply *r, char *out, size_t len)
{
	switch (r->type) {
	case REDIS_REPLY_INTEGER: snprintf(out, len, "%lld", r->integer); break;
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
	case REDIS_REPLY_ERROR: snprintf(out, len, "%.*s", (int)r->len, r->str); break;
	case REDIS_REPLY_NIL: snprintf(out, len, "-"); break;
	default: snprintf(out, len, "(%zu items)", r->elements); break;
	}
}

#define CELL 1100

static void print_table(FILE *f, const redisReply *list, int indent)
{
	const redisReply *first = list->element[0];
	size_t ncol = first->elements / 2, nrow = list->elements;
	char buf[CELL];

	if (!is_map(first))
		return;
	if (ncol > 8 && nrow <= 16) {
		/* Transposed: one row per field, one column per record. */
		int kw = 0, *cw = calloc(nrow, sizeof(int));

		if (!cw)
			return;
		for (size_t c = 0; c < ncol; c++)
			kw = WF_MAX(kw, (int)first->element[2 * c]->len);
		for (size_t r = 0; r < nrow; r++)
			for (size_t c = 0; c < ncol && 2 * c + 1 < list->element[r]->elements; c++) {
				cell(list->element[r]->element[2 * c + 1], buf, sizeof(buf));
				cw[r] = WF_MAX(cw[r], (int)strlen(buf));
			}
		for (size_t c = 0; c < ncol; c++) {
			fprintf(f, "%*s%-*s", indent, "", kw, first->element[2 * c]->str);
			for (size_t r = 0; r < nrow; r++) {
				const redisReply *m = list->element[r];

				if (2 * c + 1 < m->elements)
					cell(m->element[2 * c + 1], buf, sizeof(buf));
				else
					snprintf(buf, sizeof(buf), "-");
				fprintf(f, "  %*s", cw[r], buf);
			}
			fputc('\n', f);
		}
		free(cw);
		return;
	}
	int *w = calloc(ncol, sizeof(int));

	if (!w)
		return;
	for (size_t c = 0; c < ncol; c++)
		w[c] = (int)first->element[2 * c]->len;
	for (size_t r = 0; r < nrow; r++)
		for (size_t c = 0; c < ncol && 2 * c + 1 < list->element[r]->elements; c++) {
			cell(list->element[r]->element[2 * c + 1], buf, sizeof(buf));
			w[c] = WF_MAX(w[c], (int)strlen(buf));
		}
	fprintf(f, "%*s", indent, "");
	for (size_t c = 0; c < ncol; c++)
		fprintf(f, "%s%-*s", c ? "  " : "", c + 1 < ncol ? w[c] : 0, first->element[2 * c]->str);
	fputc('\n', f);
	for (size_t r = 0; r < nrow; r++) {
		fprintf(f, "%*s", indent, "");
		for (size_t c = 0; c < ncol; c++) {
			const redisReply *m = list->element[r];

			if (2 * c + 1 < m->elements)
				cell(m->element[2 * c + 1], buf, sizeof(buf));
			else
				snprintf(buf, sizeof(buf), "-");
			fprintf(f, "%s%-*s", c ? "  " : "", c + 1 < ncol ? w[c] : 0, buf);
		}
		fputc('\n', f);
	}
	free(w);
}

void wf_cli_print(FILE *f, const redisReply *r, int indent)
{
	char buf[CELL];

	if (is_list(r)) {
		print_table(f, r, indent);
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY && is_map(r)) {
		int kw = 0;

		for (size_t i = 0; i < r->elements; i += 2)
			kw = WF_MAX(kw, (int)r->element[i]->len);
		for (size_t i = 0; i < r->elements; i += 2) {
			const redisReply *v = r->element[i + 1];

			if (v->type == REDIS_REPLY_ARRAY && v->elements) {
				fprintf(f, "%*s%s:\n", indent, "", r->element[i]->str);
				wf_cli_print(f, v, indent + 2);
				continue;
			}
			cell(v, buf, sizeof(buf));
			fprintf(f, "%*s%-*s  %s\n", indent, "", kw, r->element[i]->str, buf);
		}
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < r->elements; i++)
			wf_cli_print(f, r->element[i], indent);
		return;
	}
	cell(r, buf, sizeof(buf));
	fprintf(f, "%*s%s\n", indent, "", buf);
}
