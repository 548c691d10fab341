/*
 * test_snapshot.c - the snapshot file: a round trip through the real writer
 * (lib/snapwrite.c) and reader (lib/snapshot.c), and the reader's refusal of
 * truncated files, flipped bytes in every section and in the header, other
 * format versions, bad magic, and well-checksummed files whose indexes are
 * wrong (forged with wf_snapw_reseal()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/snapshot.h"
#include "lib/snapwrite.h"
#include "lib/util.h"

struct fixture {
	char dir[256];
	char path[512];
	char bad[512];
	char *image;
	size_t size;
};

static struct fixture fx;

struct strs {
	char buf[512];
	uint32_t len;
};

static uint32_t put(struct strs *s, const char *str, uint32_t *ret_len)
{
	uint32_t off = s->len, n = (uint32_t)strlen(str);

	memcpy(s->buf + s->len, str, n);
	s->len += n;
	*ret_len = n;
	return off;
}

/* Items i1 i2 i3 (shoes/hats, brand acme), users alice and bob. */
static void write_small(const char *path)
{
	static struct strs st;
	static struct wf_snap_item items[3];
	static struct wf_snap_user users[2];
	static struct wf_snap_name names[3];
	static const struct wf_snap_cand cands[] = { { 1, 0.9f }, { 0, 0.5f }, { 2, 0.7f } };
	static const struct wf_snap_cand neigh[] = { { 1, 0.8f }, { 2, 0.1f } };
	static const struct wf_snap_cand compl[] = { { 2, 0.6f } };
	static const struct wf_snap_cand popular[] = { { 0, 1.0f }, { 1, 0.5f }, { 2, 0.25f } };
	static const struct wf_snap_cand trending[] = { { 2, 3.0f } };
	static const struct wf_snap_cand seq[] = { { 2, 0.5f } };
	static const uint32_t seq_off[] = { 0, 1, 1, 1 };
	static struct wf_snap_model model = { .repeat = { 0.25f, 0.125f } };
	const char *ids[] = { "i1", "i2", "i3" };
	struct wf_snapw_input in = { 0 };
	char err[256];
	uint64_t size = 0;

	memset(&st, 0, sizeof(st));
	names[0].off = put(&st, "shoes", &names[0].len);
	names[1].off = put(&st, "hats", &names[1].len);
	names[2].off = put(&st, "acme", &names[2].len);
	for (int i = 0; i < 3; i++) {
		items[i] = (struct wf_snap_item){ .category = (uint32_t)(i == 2), .brand = i == 1 ? WF_SNAP_NO_CAT : 0,
						  .price_cents = 1000u * (uint32_t)(i + 1), .price_band = (uint8_t)i,
						  .popularity = popular[i].score, .flags = WF_SNAP_ITEM_IN_CATALOG };
		items[i].id_off = put(&st, ids[i], &items[i].id_len);
	}
	items[0].neigh_off = 0;
	items[0].neigh_cnt = 2;
	items[1].compl_off = 0;
	items[1].compl_cnt = 1;
	users[0] = (struct wf_snap_user){ .cand_off = 0, .cand_cnt = 2, .segment = WF_SEG_VIP, .r = 5, .f = 5, .m = 5,
					  .ltv = 123.5f, .orders = 7 };
	users[0].id_off = put(&st, "alice", &users[0].id_len);
	users[1] = (struct wf_snap_user){ .cand_off = 2, .cand_cnt = 1, .segment = WF_SEG_NEW };
	users[1].id_off = put(&st, "bob", &users[1].id_len);

	in.generation = 42;
	in.build_ms = 1700000000000ull;
	in.source_digest = 0xabcdef;
	in.data_end_ms = 1699999999000ull;
	in.strs = st.buf;
	in.strs_len = st.len;
	in.items = items;
	in.nitems = 3;
	in.users = users;
	in.nusers = 2;
	in.cands = cands;
	in.ncands = 3;
	in.neigh = neigh;
	in.nneigh = 2;
	in.compl = compl;
	in.ncompl = 1;
	in.names = names;
	in.ncats = 2;
	in.nbrands = 1;
	in.popular = popular;
	in.npopular = 3;
	in.trending = trending;
	in.ntrending = 1;
	in.seq = seq;
	in.nseq = 1;
	in.seq_off = seq_off;
	in.model = &model;
	assert_int_equal(wf_snapw_write(path, &in, &size, err, sizeof(err)), 0);
	assert_int_equal(size % 64, 0);
}

static int setup(void **state)
{
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/weft.test.snapshot.%d.XXXXXX", (int)getpid());
	if (!mkdtemp(fx.dir))
		return -1;
	snprintf(fx.path, sizeof(fx.path), "%s/good.snap", fx.dir);
	snprintf(fx.bad, sizeof(fx.bad), "%s/bad.snap", fx.dir);
	write_small(fx.path);
	return wf_read_file(fx.path, &fx.image, &fx.size);
}

static int teardown(void **state)
{
	unlink(fx.path);
	unlink(fx.bad);
	rmdir(fx.dir);
	free(fx.image);
	return 0;
}

/* Write a modified copy of the good image to fx.bad and open it. */
static int open_copy(const char *img, size_t size, char *err, size_t errlen)
{
	struct wf_snap *s = NULL;
	int r;

	assert_int_equal(wf_write_file_atomic(fx.bad, img, size), 0);
	r = wf_snap_open(fx.bad, &s, err, errlen);
	if (r == 0)
		wf_snap_close(s);
	return r;
}

static char *copy_image(void)
{
	char *c = malloc(fx.size);

	assert_non_null(c);
	memcpy(c, fx.image, fx.size);
	return c;
}

static const struct wf_snap_section *section(const char *img, uint32_t id)
{
	const struct wf_snap_hdr *h = (const void *)img;

	for (uint32_t i = 0; i < h->nsections; i++)
		if (h->sec[i].id == id)
			return &h->sec[i];
	fail();
	return NULL;
}

static void test_snapshot_round_trip_finds_everything(void **state)
{
	struct wf_snap *s = NULL;
	char err[256] = "";
	uint32_t len;
	const char *name;

	assert_int_equal(wf_snap_open(fx.path, &s, err, sizeof(err)), 0);
	assert_int_equal(s->hdr->generation, 42);
	assert_int_equal(s->hdr->data_end_ms, 1699999999000ull);
	assert_int_equal(s->nitems, 3);
	assert_int_equal(s->nusers, 2);
	assert_int_equal(s->ncands, 3);
	assert_int_equal(s->npopular, 3);
	assert_int_equal(s->ntrending, 1);
	assert_int_equal(wf_snap_item_find(s, "i1", 2), 0);
	assert_int_equal(wf_snap_item_find(s, "i2", 2), 1);
	assert_int_equal(wf_snap_item_find(s, "i3", 2), 2);
	assert_int_equal(wf_snap_item_find(s, "i4", 2), -1);
	assert_int_equal(wf_snap_item_find(s, "i", 1), -1);
	assert_int_equal(wf_snap_user_find(s, "alice", 5), 0);
	assert_int_equal(wf_snap_user_find(s, "bob", 3), 1);
	assert_int_equal(wf_snap_user_find(s, "carol", 5), -1);
	assert_int_equal(wf_snap_user_find(s, "i1", 2), -1);

	const struct wf_snap_user *u = &s->users[0];
	assert_int_equal(u->cand_cnt, 2);
	assert_int_equal(u->segment, WF_SEG_VIP);
	assert_true(u->ltv > 123.4f && u->ltv < 123.6f);
	assert_memory_equal(wf_snap_str(s, s->items[s->cands[u->cand_off].item].id_off), "i2", 2);
	for (uint32_t i = 1; i < u->cand_cnt; i++)
		assert_true(s->cands[u->cand_off + i].score <= s->cands[u->cand_off + i - 1].score);

	name = wf_snap_cat_name(s, s->items[2].category, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(name, "hats", 4);
	name = wf_snap_brand_name(s, s->items[0].brand, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(name, "acme", 4);
	name = wf_snap_brand_name(s, s->items[1].brand, &len);
	assert_int_equal(len, 0);
	assert_string_equal(name, "");
	assert_int_equal(s->items[0].neigh_cnt, 2);
	assert_int_equal(s->neigh[s->items[0].neigh_off].item, 1);
	assert_int_equal(s->nseq, 1);
	assert_int_equal(s->seq_off[0], 0);
	assert_int_equal(s->seq_off[1], 1);
	assert_int_equal(s->seq[0].item, 2);
	assert_true(s->model->repeat[0] == 0.25f && s->model->version == 0);
	assert_int_equal(s->compl[s->items[1].compl_off].item, 2);
	assert_string_equal(wf_snap_section_name(WF_SNAP_SEC_CANDS), "CANDS");
	wf_snap_close(s);
	wf_snap_close(NULL);
}

static void test_snapshot_missing_file_returns_enoent(void **state)
{
	struct wf_snap *s = (void *)0x1;
	char err[256];

	assert_int_equal(wf_snap_open("/nonexistent/weft.snap", &s, err, sizeof(err)), -ENOENT);
	assert_ptr_equal(s, (void *)0x1);
	assert_non_null(strstr(err, "/nonexistent/weft.snap"));
}

static void test_snapshot_truncated_returns_eproto(void **state)
{
	const size_t cuts[] = { 0, 4, 11, 100, sizeof(struct wf_snap_hdr) - 1, sizeof(struct wf_snap_hdr), 700,
				fx.size / 2, fx.size - 64, fx.size - 1 };
	char err[256];

	for (size_t i = 0; i < WF_ARRAY_SIZE(cuts); i++) {
		err[0] = '\0';
		assert_int_equal(open_copy(fx.image, cuts[i], err, sizeof(err)), -EPROTO);
		if (cuts[i] >= sizeof(struct wf_snap_hdr)) {
			char want[128];
			snprintf(want, sizeof(want), "truncated: %zu of %zu bytes", cuts[i], fx.size);
			assert_non_null(strstr(err, want));
			assert_non_null(strstr(err, "weft-batch build"));
		} else if (cuts[i] > 0) {
			assert_non_null(strstr(err, cuts[i] < 8 ? "bad magic" : "truncated"));
		}
	}
	/* Bytes appended are refused too. */
	char *big = calloc(1, fx.size + 64);
	memcpy(big, fx.image, fx.size);
	assert_int_equal(open_copy(big, fx.size + 64, err, sizeof(err)), -EPROTO);
	free(big);
}

static void test_snapshot_flipped_byte_in_each_section_returns_ebadmsg(void **state)
{
	const struct wf_snap_hdr *h = (const void *)fx.image;
	char err[256];

	assert_int_equal(h->nsections, 14);
	for (uint32_t i = 0; i < h->nsections; i++) {
		const struct wf_snap_section *x = &h->sec[i];
		char *c = copy_image();

		assert_true(x->size > 0);
		c[x->off + x->size / 2] ^= 0x10;
		assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, wf_snap_section_name(x->id)));
		assert_non_null(strstr(err, "checksum"));
		free(c);
	}
	/* Header fields after the magic and version, including the table. */
	const size_t at[] = { offsetof(struct wf_snap_hdr, generation), offsetof(struct wf_snap_hdr, nusers),
			      offsetof(struct wf_snap_hdr, sec) + 9, offsetof(struct wf_snap_hdr, header_xxh3) };
	for (size_t i = 0; i < WF_ARRAY_SIZE(at); i++) {
		char *c = copy_image();
		c[at[i]] ^= 0x01;
		assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "header checksum"));
		free(c);
	}
}

static void test_snapshot_other_version_returns_eprotonosupport(void **state)
{
	char *c = copy_image();
	char err[256];

	((struct wf_snap_hdr *)c)->format_version = 7;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "version 7"));
	assert_non_null(strstr(err, "version 2"));
	/* The format before issue 14 (no SEQ, SEQ_OFF, MODEL): refused, and
	 * the message names both versions. */
	((struct wf_snap_hdr *)c)->format_version = 1;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "format version 1"));
	assert_non_null(strstr(err, "reads version 2"));
	free(c);
}

static void test_snapshot_bad_magic_returns_eproto(void **state)
{
	char *c = copy_image();
	char err[256];

	c[0] ^= 0xff;
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "magic"));
	free(c);
}

static void test_snapshot_bad_index_with_valid_checksum_returns_eproto(void **state)
{
	char err[256];
	char *c;

	/* A candidate naming item 99 of 3. */
	c = copy_image();
	((struct wf_snap_cand *)(c + section(c, WF_SNAP_SEC_CANDS)->off))[0].item = 99;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "item 99 of 3"));
	free(c);

	/* A neighbour list that runs past NEIGH. */
	c = copy_image();
	((struct wf_snap_item *)(c + section(c, WF_SNAP_SEC_ITEMS)->off))[0].neigh_cnt = 3;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	free(c);

	/* A user whose candidate range lies past CANDS. */
	c = copy_image();
	((struct wf_snap_user *)(c + section(c, WF_SNAP_SEC_USERS)->off))[1].cand_off = 3;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "user 1"));
	free(c);

	/* An id outside STRS. */
	c = copy_image();
	((struct wf_snap_item *)(c + section(c, WF_SNAP_SEC_ITEMS)->off))[2].id_len = 10000;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	free(c);

	/* Candidates out of order. */
	c = copy_image();
	((struct wf_snap_cand *)(c + section(c, WF_SNAP_SEC_CANDS)->off))[1].score = 5.0f;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	free(c);

	/* A hash slot value beyond the count, then a hash that lost an entry. */
	c = copy_image();
	{
		const struct wf_snap_section *x = section(c, WF_SNAP_SEC_ITEM_HASH);
		uint32_t *t = (uint32_t *)(c + x->off);
		for (uint64_t i = 0; i < x->size / 4; i++)
			if (t[i] == 0) {
				t[i] = 4;
				break;
			}
	}
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	free(c);
	c = copy_image();
	{
		const struct wf_snap_section *x = section(c, WF_SNAP_SEC_USER_HASH);
		uint32_t *t = (uint32_t *)(c + x->off);
		for (uint64_t i = 0; i < x->size / 4; i++)
			if (t[i] == 2)
				t[i] = 0;
	}
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	free(c);
}

static void test_snapshot_bad_section_table_returns_eproto(void **state)
{
	char err[256];
	struct wf_snap_hdr *h;
	char *c;

	/* Misaligned. */
	c = copy_image();
	h = (void *)c;
	h->sec[3].off += 8;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	free(c);
	/* Overlapping: CANDS points at USERS. */
	c = copy_image();
	h = (void *)c;
	h->sec[5].off = h->sec[3].off;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "overlap"));
	free(c);
	/* Past the end of the file. */
	c = copy_image();
	h = (void *)c;
	h->sec[10].size = fx.size;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	free(c);
	/* A section missing. */
	c = copy_image();
	h = (void *)c;
	h->nsections = 10;
	wf_snapw_reseal(c, fx.size);
	assert_int_equal(open_copy(c, fx.size, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "TRENDING is missing"));
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snapshot_round_trip_finds_everything),
		cmocka_unit_test(test_snapshot_missing_file_returns_enoent),
		cmocka_unit_test(test_snapshot_truncated_returns_eproto),
		cmocka_unit_test(test_snapshot_flipped_byte_in_each_section_returns_ebadmsg),
		cmocka_unit_test(test_snapshot_other_version_returns_eprotonosupport),
		cmocka_unit_test(test_snapshot_bad_magic_returns_eproto),
		cmocka_unit_test(test_snapshot_bad_index_with_valid_checksum_returns_eproto),
		cmocka_unit_test(test_snapshot_bad_section_table_returns_eproto),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
