/*
 * test_ranker.h - the small store test_rank.c and test_ranker.c share,
 * written with the real snapshot writer (lib/snapwrite.h) and read back
 * with the real reader.
 *
 *   categories shoes, hats, bags, socks (10 items each, i00..i39: item i is
 *   in category i / 10, brand acme (even) or zeta (odd), price band
 *   (i % 10) / 2); neighbours of an item: the next two of its category
 *   (0.5, 0.4); complements of i00 (a shoe): socks i30 (0.9), i31 (0.8);
 *   alice's batch list: shoes i00..i09 then hats i10..i14, scores 0.9^rank
 *   (times 7, to check per-list normalisation); bob's: hats i19..i10;
 *   popular: every item; trending: i05, i25. Items i%10 >= 5 come in 2
 *   sizes (nsizes), the others' sizes are unknown (0).
 */
#ifndef TEST_RANKER_H
#define TEST_RANKER_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/snapshot.h"
#include "lib/snapwrite.h"

#define TR_NITEMS 40u
#define TR_ALICE_N 15u

struct tr_store {
	char strs[4096];
	uint32_t len;
	struct wf_snap_item items[TR_NITEMS];
	struct wf_snap_user users[2];
	struct wf_snap_name names[6];
	struct wf_snap_cand cands[TR_ALICE_N + 10];
	struct wf_snap_cand neigh[TR_NITEMS * 2];
	struct wf_snap_cand compl[2];
	struct wf_snap_cand popular[TR_NITEMS];
	struct wf_snap_cand trending[2];
};

static uint32_t tr_put(struct tr_store *s, const char *str, uint32_t *ret_len)
{
	uint32_t off = s->len, n = (uint32_t)strlen(str);

	memcpy(s->strs + s->len, str, n);
	s->len += n;
	*ret_len = n;
	return off;
}

/* Write the store to path with generation gen. 0 or -errno. */
/* The store, generation gen, with scoring model m (NULL: none) to path. */
static int tr_write_store_model(const char *path, uint64_t gen, const struct wf_snap_model *m)
{
	static struct tr_store s;
	static const char *const names[6] = { "shoes", "hats", "bags", "socks", "acme", "zeta" };
	struct wf_snapw_input in = { 0 };
	char id[16], err[256];
	uint32_t nc = 0;

	memset(&s, 0, sizeof(s));
	for (uint32_t i = 0; i < 6; i++)
		s.names[i].off = tr_put(&s, names[i], &s.names[i].len);
	for (uint32_t i = 0; i < TR_NITEMS; i++) {
		struct wf_snap_item *it = &s.items[i];
		uint32_t base = i / 10 * 10;

		snprintf(id, sizeof(id), "i%02u", i);
		it->id_off = tr_put(&s, id, &it->id_len);
		it->category = i / 10;
		it->brand = i % 2;
		it->price_cents = 1000 + 100 * i;
		it->price_band = (uint8_t)((i % 10) / 2);
		it->flags = WF_SNAP_ITEM_IN_CATALOG;
		it->nsizes = i % 10 >= 5 ? 2 : 0;
		it->popularity = 0.5f + 0.05f * (float)(i % 7);
		it->trend = 0.1f * (float)(i % 3);
		it->neigh_off = 2 * i;
		it->neigh_cnt = 2;
		s.neigh[2 * i] = (struct wf_snap_cand){ base + (i + 1) % 10, 0.5f };
		s.neigh[2 * i + 1] = (struct wf_snap_cand){ base + (i + 2) % 10, 0.4f };
		s.popular[i] = (struct wf_snap_cand){ i, it->popularity };
	}
	/* popular sorted by score, descending (stable on index) */
	for (uint32_t i = 1; i < TR_NITEMS; i++)
		for (uint32_t j = i; j > 0 && s.popular[j - 1].score < s.popular[j].score; j--) {
			struct wf_snap_cand t = s.popular[j];
			s.popular[j] = s.popular[j - 1];
			s.popular[j - 1] = t;
		}
	s.items[0].compl_off = 0;
	s.items[0].compl_cnt = 2;
	s.compl[0] = (struct wf_snap_cand){ 30, 0.9f };
	s.compl[1] = (struct wf_snap_cand){ 31, 0.8f };
	s.trending[0] = (struct wf_snap_cand){ 5, 2.0f };
	s.trending[1] = (struct wf_snap_cand){ 25, 1.5f };

	s.users[0].id_off = tr_put(&s, "alice", &s.users[0].id_len);
	s.users[0].cand_off = nc;
	for (uint32_t r = 0; r < TR_ALICE_N; r++)
		s.cands[nc++] = (struct wf_snap_cand){ r, 7.0f * powf(0.9f, (float)r) };
	s.users[0].cand_cnt = TR_ALICE_N;
	s.users[0].segment = WF_SEG_LOYAL;
	s.users[1].id_off = tr_put(&s, "bob", &s.users[1].id_len);
	s.users[1].cand_off = nc;
	for (uint32_t r = 0; r < 10; r++)
		s.cands[nc++] = (struct wf_snap_cand){ 19 - r, 1.0f - 0.05f * (float)r };
	s.users[1].cand_cnt = 10;
	s.users[1].segment = WF_SEG_AT_RISK;

	in.generation = gen;
	in.build_ms = 1;
	in.strs = s.strs;
	in.strs_len = s.len;
	in.items = s.items;
	in.nitems = TR_NITEMS;
	in.users = s.users;
	in.nusers = 2;
	in.cands = s.cands;
	in.ncands = nc;
	in.neigh = s.neigh;
	in.nneigh = TR_NITEMS * 2;
	in.compl = s.compl;
	in.ncompl = 2;
	in.names = s.names;
	in.ncats = 4;
	in.nbrands = 2;
	in.popular = s.popular;
	in.npopular = TR_NITEMS;
	in.trending = s.trending;
	in.ntrending = 2;
	in.model = m;
	return wf_snapw_write(path, &in, NULL, err, sizeof(err));
}

static int tr_write_store(const char *path, uint64_t gen)
{
	return tr_write_store_model(path, gen, NULL);
}

#endif
