/*
 * msg.h - the records weft-ingest and weft-ranker exchange over a shard's
 * rings.
 *
 * Request ring (ingest -> ranker), kind WF_MSG_REQ:
 *   struct wf_msg_req, then argc x uint32_t argument lengths, then the
 *   argument bytes back to back, then (flag WF_MSG_F_PARSED, a RECS) its
 *   arguments as ingest parsed them (struct wf_msg_recs). Arguments
 *   exclude the command name (cmd says which command); for EVENT:
 *   session user type item [f v]...
 * Reply ring (ranker -> ingest), kind WF_MSG_REP:
 *   struct wf_msg_rep, then resp_len bytes of ready-made RESP2.
 * Reply ring, kind WF_MSG_NOTE: a record the ranker asks ingest to
 *   journal (a segment transition, an experiment exposure): struct
 *   wf_msg_note, then argc x uint32_t argument lengths, then the bytes.
 *   Ingest journals it (wf_journal_append_kind with the note's kind and
 *   this shard) and acts on it once durable (pushes a transition to
 *   subscribers); a reply that follows a note on the same ring is not sent
 *   to its client before that note is durable, so an answer the client saw
 *   is never missing from the journal. Notes answer no request: they do not
 *   take a request's place in the reply order.
 *
 * req_id = (ingest_epoch << 32) | per-shard sequence number. Replies come
 * back in request order per shard; weft-ingest drops a reply whose epoch is
 * not its own (requests of a previous ingest process) or whose sequence it
 * has already seen (a restarted ranker redoing unreleased requests).
 *
 * Both sides validate: the decoder bounds-checks every length, so a corrupt
 * record is an error, never an out-of-bounds read.
 */
#ifndef WF_MSG_H
#define WF_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "lib/proto.h"
#include "shm/ring.h"

enum { WF_MSG_REQ = 1, WF_MSG_REP = 2, WF_MSG_NOTE = 3 };

#define WF_MSG_MAX_ARGS 1024u

struct wf_msg_req {
	uint64_t req_id;
	uint64_t t_recv_ns; /* CLOCK_MONOTONIC when ingest parsed it */
	uint64_t lsn;       /* an EVENT's journal sequence; a RECS's session version
	                     * (front tables, shm/front.h); else 0 */
	uint16_t cmd;       /* enum wf_cmd */
	uint16_t argc;
	uint32_t flags;     /* WF_MSG_F_* */
};
_Static_assert(sizeof(struct wf_msg_req) == 32, "request header");

/* The ranker sends no reply. EVENTs carry it: weft-ingest acknowledges an
 * EVENT once the journal holds it; the ring is FIFO per shard, so the
 * ranker applies it before any request sent after it on that shard. */
#define WF_MSG_F_NOREPLY 1u
/* A struct wf_msg_recs follows the argument bytes (RECS only): the ranker
 * takes it instead of parsing the arguments again. */
#define WF_MSG_F_PARSED 2u

/* A RECS's arguments as weft-ingest parsed them (wf_recs_args_parse), by
 * argument index (0 is the session: never an option's value). Stored
 * unaligned: decoded by copy. */
struct wf_msg_recs {
	uint16_t k;         /* 1..WF_RECS_MAX_K */
	uint8_t page;       /* enum wf_page_type */
	uint8_t explain;
	uint16_t anchor;    /* index of ANCHOR's item, 0: none */
	uint16_t size;      /* index of SIZE's size, 0: none */
};
_Static_assert(sizeof(struct wf_msg_recs) == 8, "parsed RECS");

struct wf_msg_rep {
	uint64_t req_id;
	uint64_t t_recv_ns; /* copied from the request */
	uint64_t t_done_ns; /* CLOCK_MONOTONIC when the ranker began the batch holding it
	                     * (one clock read per batch, not per request) */
	uint32_t resp_len;
	uint32_t flags;
};
_Static_assert(sizeof(struct wf_msg_rep) == 32, "reply header");

/* A note for the journal (kind WF_MSG_NOTE). */
struct wf_msg_note {
	uint64_t ts_ms;     /* wall clock the record carries (the transition's or exposure's time) */
	uint16_t jkind;     /* enum wf_journal_kind (lib/journal.h), not WF_JREC_EVENT */
	uint16_t argc;      /* <= WF_MSG_NOTE_MAX_ARGS */
	uint32_t flags;     /* 0 */
};
_Static_assert(sizeof(struct wf_msg_note) == 16, "note header");
#define WF_MSG_NOTE_MAX_ARGS 64u /* WF_JOURNAL_MAX_ARGS: a note is one journal record */

/* An argument in a request record: lib/proto.h's struct wf_arg, so the
 * ranker hands it to the command schema (wf_recs_args_parse) as is. */
#define wf_msg_arg wf_arg

/* A decoded request; argv points into the ring record. */
struct wf_msg_req_view {
	const struct wf_msg_req *hdr;
	uint32_t argc;
	int parsed;                 /* hdr->flags has WF_MSG_F_PARSED: recs holds it */
	struct wf_msg_recs recs;
	struct wf_msg_arg argv[WF_MSG_MAX_ARGS];
};

/* The parsed form of RECS arguments argv (ra from wf_recs_args_parse on
 * the same argv). */
void wf_msg_recs_of(const struct wf_recs_args *ra, const struct wf_arg *argv, struct wf_msg_recs *ret);
/* Back: *ret as wf_recs_args_parse(argv, argc) gave it. 0, or -EPROTO
 * when m does not fit argv (a corrupt record). */
int wf_msg_recs_get(const struct wf_msg_recs *m, const struct wf_arg *argv, uint32_t argc,
		    struct wf_recs_args *ret);

/* Payload bytes a request of argc arguments totalling bytes needs. */
static inline uint32_t wf_msg_req_size(uint32_t argc, uint64_t bytes)
{
	return (uint32_t)(sizeof(struct wf_msg_req) + 4ull * argc + bytes);
}

/*
 * Reserve and fill a request in the ring (not committed). argv/argl: the
 * arguments. Returns 0, -EAGAIN if the ring is full, -EMSGSIZE if it can
 * never fit, -E2BIG if argc > WF_MSG_MAX_ARGS.
 */
int wf_msg_req_push(struct wf_ring_prod *p, const struct wf_msg_req *hdr, const char *const *argv,
		    const uint32_t *argl);
/* The same with a RECS's parsed arguments (recs not NULL: the record gets
 * WF_MSG_F_PARSED and recs after the argument bytes). */
int wf_msg_req_push_parsed(struct wf_ring_prod *p, const struct wf_msg_req *hdr, const char *const *argv,
			   const uint32_t *argl, const struct wf_msg_recs *recs);

/* Decode a request payload (v->parsed and v->recs from a parsed RECS's
 * trailer). 0 or -EPROTO. */
int wf_msg_req_decode(const void *payload, uint32_t len, struct wf_msg_req_view *v);

/* Reserve and fill a reply carrying resp[0..resp_len). 0, -EAGAIN, -EMSGSIZE. */
int wf_msg_rep_push(struct wf_ring_prod *p, const struct wf_msg_rep *hdr, const void *resp, uint32_t resp_len);

/* Reserve and fill a note (hdr->argc is taken from argc). 0, -EAGAIN if
 * the ring is full, -EMSGSIZE if it can never fit, -E2BIG if argc >
 * WF_MSG_NOTE_MAX_ARGS. The caller commits, like a reply. */
int wf_msg_note_push(struct wf_ring_prod *p, const struct wf_msg_note *hdr, uint32_t argc, const struct wf_arg *argv);

/* A decoded note; argv points into the ring record. */
struct wf_msg_note_view {
	struct wf_msg_note hdr;
	uint32_t argc;
	struct wf_arg argv[WF_MSG_NOTE_MAX_ARGS];
};
/* Decode a note payload. 0 or -EPROTO. */
int wf_msg_note_decode(const void *payload, uint32_t len, struct wf_msg_note_view *v);

/* Decode a reply payload; *ret_resp points at the RESP bytes. 0 or -EPROTO. */
int wf_msg_rep_decode(const void *payload, uint32_t len, const struct wf_msg_rep **ret_hdr,
		      const char **ret_resp);

#endif
