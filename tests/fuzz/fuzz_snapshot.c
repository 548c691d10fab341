/*
 * fuzz_snapshot.c - libFuzzer target for the snapshot reader
 * (lib/snapshot.c). Each input is written to a private temp file and opened
 * with wf_snap_open(); when it opens, every list and string it points at is
 * walked, so a bound the validator missed shows up under ASan. Seeds in
 * tests/fuzz/snapshot/. Built only with -Dfuzz=true (clang).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/snapshot.h"
#include "lib/snapwrite.h"
#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk_list(const struct wf_snap *s, const struct wf_snap_cand *c, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		const struct wf_snap_item *it = &s->items[c[i].item];
		uint32_t len;

		const char *p;

		if (it->id_len)
			sink += (uint64_t)wf_snap_str(s, it->id_off)[it->id_len - 1];
		p = wf_snap_cat_name(s, it->category, &len);
		sink += len ? (uint64_t)p[len - 1] : 0;
		p = wf_snap_brand_name(s, it->brand, &len);
		sink += len ? (uint64_t)p[len - 1] : 0;
		uint32_t bits;

		memcpy(&bits, &c[i].score, sizeof(bits)); /* any finite float: no conversion UB */
		sink += bits;
	}
}

static void walk(const struct wf_snap *s)
{
	for (uint32_t i = 0; i < s->nitems; i++) {
		const struct wf_snap_item *it = &s->items[i];

		walk_list(s, s->neigh + it->neigh_off, it->neigh_cnt);
		walk_list(s, s->compl + it->compl_off, it->compl_cnt);
		walk_list(s, s->seq + s->seq_off[i], s->seq_off[i + 1] - s->seq_off[i]);
		if (wf_snap_item_find(s, wf_snap_str(s, it->id_off), it->id_len) != (int64_t)i)
			abort(); /* the validator promised every id is found */
	}
	for (uint32_t i = 0; i < s->nusers; i++) {
		const struct wf_snap_user *u = &s->users[i];

		walk_list(s, s->cands + u->cand_off, u->cand_cnt);
		if (wf_snap_user_find(s, wf_snap_str(s, u->id_off), u->id_len) != (int64_t)i)
			abort();
	}
	walk_list(s, s->cands, s->ncands);
	walk_list(s, s->neigh, s->nneigh);
	walk_list(s, s->compl, s->ncompl);
	walk_list(s, s->popular, s->npopular);
	walk_list(s, s->trending, s->ntrending);
	walk_list(s, s->seq, s->nseq);
	for (uint32_t r = 0; r < WF_SNAP_MODEL_REPEAT; r++)
		sink += (uint64_t)(s->model->repeat[r] * 1e6f); /* validated to [0, 1] */
	(void)wf_snap_item_find(s, "nope", 4);
	(void)wf_snap_user_find(s, "", 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct wf_snap *s = NULL;
	char err[512] = "";
	int fd;

	uint8_t *img;
	int mode;

	if (size < 1)
		return 0;
	mode = data[0] & 1;
	data++;
	size--;
	img = malloc(size ? size : 1);
	if (!img)
		abort();
	memcpy(img, data, size);
	if (mode)
		wf_snapw_reseal(img, size);
	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/weft.fuzz.snapshot.%d", (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	if (size && write(fd, img, size) != (ssize_t)size)
		abort();
	close(fd);
	free(img);
	if (wf_snap_open(path, &s, err, sizeof(err)) == 0) {
		walk(s);
		wf_snap_close(s);
	} else if (!err[0]) {
		abort(); /* every refusal explains itself */
	}
	unlink(path);
	return 0;
}
