/*
 * Unit tests for proto/msg.c: the wire messages between nodes (tenderd/msg.h).
 *
 * Golden bytes: every message type is encoded from fixed inputs and compared
 * with hex written below field by field from the msgpack layout in msg.h
 * (fixarray 0x90|n, array16 0xdc, positive fixint 0x00-0x7f, uint8 0xcc,
 * uint16 0xcd, uint32 0xce, uint64 0xcf, nil 0xc0, bin8 0xc4 + length), then
 * decoded back and compared field by field. Peers of every version exchange
 * these bytes: they must never drift.
 *
 * Signatures: the secret key of RFC 8032's first Ed25519 test vector signs
 * fixed proposals and votes. Ed25519 is deterministic, so each signature is
 * fixed below next to the exact bytes it signs; changing any signed field
 * (genesis hash, height, round, valid round, block hash, vote type) must make
 * verification fail. The signed bytes are written by hand from the format;
 * the signatures over them were computed once, outside tenderd (Python's
 * cryptography package, Ed25519 with the RFC 8032 key), and are pinned
 * regression values.
 *
 * Refusals: every strict prefix of every golden message, trailing bytes,
 * other encodings of the same values, unknown types and wrong shapes, counts
 * one over each limit (accepted at the limit), and items of a wrong or an
 * oversized length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "tenderd/block.h"
#include "tenderd/codec.h"
#include "tenderd/evidence.h"
#include "tenderd/msg.h"

static const uint8_t CHAIN[TD_HASH_LEN] = "tenderd-test"; /* a genesis hash, for signatures */
static const uint8_t OTHER[TD_HASH_LEN] = "another chain";

/* The fixed inputs: byte i of each is first + i. */
#define X_LAST "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"     /* first 0x10 */
#define X_ID1 "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"      /* first 0x40 */
#define X_ID2 "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"      /* first 0x60 */
#define X_ID3 "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"      /* first 0x80 */
#define X_PREV "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"     /* first 0x20 */
#define X_PROPOSER "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf" /* first 0xa0 */
#define X_ROOT "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"     /* first 0x00 */
#define X_EVROOT "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f"   /* first 0x30 */
#define X_NEXT "707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f"     /* first 0x70 */
#define X_SIG                                                              \
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf" \
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"   /* first 0xc0, 64 bytes */
#define Z31 "00000000000000000000000000000000000000000000000000000000000000" /* 31 zero bytes */
#define Z63 Z31 "00" Z31                                                     /* 63 zero bytes */
#define TIME_MS 1583712060000ULL /* 2020-03-09T00:01:00Z = 0x00000170bc984260 */

/* STATUS [1, height 300, last hash] */
#define GOLD_STATUS "93 01 cd012c c420" X_LAST
/* ANNOUNCE [2, [id1, id2]] */
#define GOLD_ANNOUNCE "92 02 92 c420" X_ID1 " c420" X_ID2
/* FETCH [3, [id3]] and [3, []] */
#define GOLD_FETCH "92 03 91 c420" X_ID3
#define GOLD_FETCH_EMPTY "92 03 90"
/* RECORDS [4, [bin 010203, bin ""]] (the decoder does not look inside a record) */
#define GOLD_RECORDS "92 04 92 c403 010203 c400"
/*
 * Evidence (tenderd/evidence.h) of two PRECOMMITs by X_PROPOSER at height 70000,
 * round 3: [1, pk, 70000, 3, 2, [nil, 0, sig], [id1, 0, sig]], the nil side
 * first (its encoding is the shorter). 214 bytes. The decoders of messages
 * do not look inside it.
 */
#define X_EV "97 01 c420" X_PROPOSER " ce00011170 03 02 93 c0 00 c440" X_SIG " 93 c420" X_ID1 " 00 c440" X_SIG
/* Header [2, height 70000, prev, TIME_MS, proposer, root, 2 records, evidence root, 1 evidence, next validators] */
#define GOLD_HEADER                                                                                             \
	"9a 02 ce00011170 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER " c420" X_ROOT " 02 c420" X_EVROOT \
	" 01 c420" X_NEXT
/* BLAKE2b-256 of GOLD_HEADER's bytes (computed outside tenderd: Python's hashlib.blake2b, digest_size 32) */
#define GOLD_BLOCK_HASH "c8ca2d22a16f33f1de3f1c8d3302788badea91aff0cbafdc109e418240cb30b7"
/* PROPOSAL [5, height 70000, round 3, valid round 1 + 1, header, [id1, id2], [evidence], sig] */
#define GOLD_PROPOSAL_TAIL " 92 c420" X_ID1 " c420" X_ID2 " 91 c4d6 " X_EV " c440" X_SIG
#define GOLD_PROPOSAL "98 05 ce00011170 03 02 " GOLD_HEADER GOLD_PROPOSAL_TAIL
/* Header [2, height 1, prev, TIME_MS, proposer, root, 0 records, evidence root, 0 evidence, next validators] */
#define GOLD_HEADER_EMPTY                                                                               \
	"9a 02 01 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER " c420" X_ROOT " 00 c420" X_EVROOT \
	" 00 c420" X_NEXT
#define GOLD_BLOCK_HASH_EMPTY "80bf6e1dfa3c09fc0dbf97cf3b893cb8a8251ab4f822e7e7f212fb1ffb972e8f"
/* PROPOSAL [5, height 1, round 0, no valid round (-1 + 1), header, [], [], sig] */
#define GOLD_PROPOSAL_EMPTY "98 05 01 00 00 " GOLD_HEADER_EMPTY " 90 90 c440" X_SIG
/* The header fields of a PROPOSAL at height 1 before the record count, and after it up to the evidence count */
#define HDR1_HEAD "9a 02 01 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER " c420" X_ROOT
#define HDR_EVROOT " c420" X_EVROOT
#define HDR_NEXT " c420" X_NEXT
/* VOTE [6, PREVOTE, height 2^32, round 200, id3, validator 3, sig] */
#define GOLD_VOTE "97 06 01 cf0000000100000000 ccc8 c420" X_ID3 " 03 c440" X_SIG
/* VOTE [6, PRECOMMIT, height 5, round 0, nil, validator 127, sig] */
#define GOLD_VOTE_NIL "97 06 02 05 00 c0 7f c440" X_SIG
/* SYNC_REQ [7, from 1000, 64 blocks] */
#define GOLD_SYNC_REQ "93 07 cd03e8 40"
/* SYNC_BLOCKS [8, [[bin b1b2, bin c1], [bin "", bin c2c3]]] and [8, []] */
#define GOLD_SYNC_BLOCKS "92 08 92 92 c402b1b2 c401c1 92 c400 c402c2c3"
#define GOLD_SYNC_BLOCKS_EMPTY "92 08 90"
/* EVIDENCE [9, [evidence]] and [9, []] */
#define GOLD_EVIDENCE "92 09 91 c4d6 " X_EV
#define GOLD_EVIDENCE_EMPTY "92 09 90"

static const struct golden {
	const char *name, *hex;
} goldens[] = {
	{ "STATUS", GOLD_STATUS },
	{ "ANNOUNCE", GOLD_ANNOUNCE },
	{ "FETCH", GOLD_FETCH },
	{ "FETCH empty", GOLD_FETCH_EMPTY },
	{ "RECORDS", GOLD_RECORDS },
	{ "PROPOSAL", GOLD_PROPOSAL },
	{ "PROPOSAL empty", GOLD_PROPOSAL_EMPTY },
	{ "VOTE", GOLD_VOTE },
	{ "VOTE nil", GOLD_VOTE_NIL },
	{ "SYNC_REQ", GOLD_SYNC_REQ },
	{ "SYNC_BLOCKS", GOLD_SYNC_BLOCKS },
	{ "SYNC_BLOCKS empty", GOLD_SYNC_BLOCKS_EMPTY },
	{ "EVIDENCE", GOLD_EVIDENCE },
	{ "EVIDENCE empty", GOLD_EVIDENCE_EMPTY },
};

/* RFC 8032 section 7.1, TEST 1: secret key (the seed) and public key. */
#define RFC8032_SEED "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define RFC8032_PK "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

/* CHAIN: "tenderd-test" and 20 zero bytes, standing for a genesis hash */
#define X_CHAIN                    \
	"74656e646572642d74657374" \
	"0000000000000000000000000000000000000000"
#define X_PROPOSAL_DOMAIN "74656e646572642d70726f706f73616c2d7632" /* "tenderd-proposal-v2" */
#define X_VOTE_DOMAIN "74656e646572642d766f74652d7632"             /* "tenderd-vote-v2" */

/*
 * The bytes signed: domain, NUL, the 32-byte genesis hash (no NUL after it),
 * then the array. The signatures: pinned regression values (see the top).
 */
/* Proposal at height 70000, round 3, valid round 1 for block hash id1: the bytes signed and the signature. */
#define SIGNED_PROPOSAL X_PROPOSAL_DOMAIN " 00 " X_CHAIN " 94 ce00011170 03 02 c420" X_ID1
#define SIG_PROPOSAL                                                       \
	"9fa5ca1ab3b2e2f435a985c8b8df11b4346f636f86ba32dac9af262220c49d39" \
	"efd262831bd3171c46d938fc8d1e37daeaa3e3707fefb2b0da685a81d8635d0a"
/* Proposal at height 1, round 0, no valid round, for id1. */
#define SIGNED_PROPOSAL_NO_VR X_PROPOSAL_DOMAIN " 00 " X_CHAIN " 94 01 00 00 c420" X_ID1
#define SIG_PROPOSAL_NO_VR                                                 \
	"8df56ce4de15df56f1e94e7d946870635de87a470fe44098261aa09c50f0f552" \
	"d7898675fbfb6f516e458ab29352bf0d1e8d168b6262055f2cd21f7c8bb54100"
/* PREVOTE at height 2^32, round 200 for id3. */
#define SIGNED_PREVOTE X_VOTE_DOMAIN " 00 " X_CHAIN " 94 01 cf0000000100000000 ccc8 c420" X_ID3
#define SIG_PREVOTE                                                        \
	"3dbf492c81e83f33e1def10175a28c86efce1e1b21e7f4eba2d4130d03e5b8e0" \
	"b5a3cdbce8a8c79e9303e4c4716c84ac34708e4dc77ebbe7161d5cc2ef6ecc05"
/* PRECOMMIT at height 5, round 0 for nothing (nil). */
#define SIGNED_PRECOMMIT_NIL X_VOTE_DOMAIN " 00 " X_CHAIN " 94 02 05 00 c0"
#define SIG_PRECOMMIT_NIL                                                  \
	"59d6b79505f3f3552c78ff5caaa0e790f10fe40a58baf00eb4c65e8019dcf09a" \
	"7db975294335a09a7edb41d93120c1f870f6c9cf9f7436b52be7f65dbd973003"

_Static_assert(TD_SYNC_BATCH <= TD_SYNC_REQ_MAX, "a node must be allowed to ask for its own batch");
_Static_assert(TD_MSG_ITEMS_MAX >= TD_MSG_IDS_MAX, "a RECORDS must hold every record one FETCH asks for");

/* ---- helpers ---- */

static void seq(uint8_t *out, size_t len, uint8_t first)
{
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)(first + i);
}

/* The bytes of hex that may hold spaces between fields (caller frees); asserts the hex is well formed. */
static uint8_t *unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex), k = 0;
	char *digits = td_xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		if (hex[i] != ' ')
			digits[k++] = hex[i];
	assert_int_equal(k % 2, 0);
	uint8_t *out = td_xmalloc(k / 2 + 1);
	assert_true(td_unhex(out, k / 2, digits, k));
	free(digits);
	*len = k / 2;
	return out;
}

static void print_hex(const char *what, const uint8_t *p, size_t len)
{
	char *h = td_xmalloc(2 * len + 1);
	td_hex(h, p, len);
	print_error("%s (%zu bytes): %s\n", what, len, h);
	free(h);
}

/* Asserts that p[0..len) are the bytes of hex. */
static void expect_bytes(const uint8_t *p, size_t len, const char *hex)
{
	size_t wlen;
	uint8_t *want = unhex(hex, &wlen);
	bool same = len == wlen && memcmp(p, want, len) == 0;
	if (!same) {
		print_hex("got ", p, len);
		print_hex("want", want, wlen);
	}
	free(want);
	assert_true(same);
}

/* Asserts that b holds the bytes of hex and empties it. */
static void expect_buf(struct td_buf *b, const char *hex)
{
	expect_bytes((const uint8_t *)b->sb.data, b->sb.size, hex);
	td_buf_free(b);
	td_buf_init(b);
}

/* Decodes the bytes of hex into m, which must succeed; returns the bytes, which m points into (free after td_msg_free). */
static uint8_t *decode_ok(struct td_msg *m, const char *hex)
{
	size_t len;
	uint8_t *in = unhex(hex, &len);
	int rc = td_msg_decode(m, in, len);
	if (rc != 0)
		print_error("refused: %s\n", hex);
	assert_int_equal(rc, 0);
	return in;
}

/* True if p[0..len) decodes (the message is freed again). */
static bool decodes(const uint8_t *p, size_t len)
{
	struct td_msg m;
	if (td_msg_decode(&m, p, len) != 0)
		return false;
	td_msg_free(&m);
	return true;
}

/*
 * Asserts that the bytes of hex are one whole msgpack value (so the case is
 * well formed msgpack, refused by the message rules) and that they are refused.
 */
static void expect_refused(const char *what, const char *hex)
{
	size_t len;
	uint8_t *in = unhex(hex, &len);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	int unpacked = td_unpack(&u, in, len);
	msgpack_unpacked_destroy(&u);
	bool ok = decodes(in, len);
	free(in);
	if (unpacked != 0)
		print_error("not one msgpack value: %s: %s\n", what, hex);
	if (ok)
		print_error("accepted: %s: %s\n", what, hex);
	assert_int_equal(unpacked, 0);
	assert_false(ok);
}

static void expect_hash(const uint8_t hash[static TD_HASH_LEN], const char *hex)
{
	expect_bytes(hash, TD_HASH_LEN, hex);
}

/* A growing byte string for messages too big to spell out, written in canonical msgpack. */
struct w {
	uint8_t *p;
	size_t n, cap;
};

static void w_raw(struct w *w, const void *p, size_t len)
{
	if (w->n + len > w->cap) {
		w->cap = (w->n + len) * 2;
		w->p = td_xrealloc(w->p, w->cap);
	}
	memcpy(w->p + w->n, p, len);
	w->n += len;
}

static void w_byte(struct w *w, uint8_t b)
{
	w_raw(w, &b, 1);
}

static void w_hex(struct w *w, const char *hex)
{
	size_t len;
	uint8_t *p = unhex(hex, &len);
	w_raw(w, p, len);
	free(p);
}

static void w_be(struct w *w, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		w_byte(w, (uint8_t)(v >> (8 * i)));
}

static void w_uint(struct w *w, uint64_t v)
{
	if (v < 0x80) {
		w_byte(w, (uint8_t)v);
	} else if (v <= UINT8_MAX) {
		w_byte(w, 0xcc);
		w_be(w, v, 1);
	} else if (v <= UINT16_MAX) {
		w_byte(w, 0xcd);
		w_be(w, v, 2);
	} else if (v <= UINT32_MAX) {
		w_byte(w, 0xce);
		w_be(w, v, 4);
	} else {
		w_byte(w, 0xcf);
		w_be(w, v, 8);
	}
}

static void w_array(struct w *w, uint32_t n)
{
	if (n < 16) {
		w_byte(w, (uint8_t)(0x90 | n));
	} else if (n <= UINT16_MAX) {
		w_byte(w, 0xdc);
		w_be(w, n, 2);
	} else {
		w_byte(w, 0xdd);
		w_be(w, n, 4);
	}
}

/* A bin of len bytes, each fill. */
static void w_bin(struct w *w, size_t len, uint8_t fill)
{
	if (len <= UINT8_MAX) {
		w_byte(w, 0xc4);
		w_be(w, len, 1);
	} else if (len <= UINT16_MAX) {
		w_byte(w, 0xc5);
		w_be(w, len, 2);
	} else {
		w_byte(w, 0xc6);
		w_be(w, len, 4);
	}
	if (w->n + len > w->cap) {
		w->cap = (w->n + len) * 2;
		w->p = td_xrealloc(w->p, w->cap);
	}
	memset(w->p + w->n, fill, len);
	w->n += len;
}

/* True if the bytes written decode; empties w. */
static bool w_decodes(struct w *w)
{
	bool ok = decodes(w->p, w->n);
	w->n = 0;
	return ok;
}

/* ---- golden bytes ---- */

static void test_status(void **state)
{
	(void)state;
	struct td_buf b;
	struct td_msg m;
	uint8_t last[TD_HASH_LEN];
	seq(last, sizeof(last), 0x10);

	td_buf_init(&b);
	td_msg_status(&b, 300, last);
	expect_buf(&b, GOLD_STATUS);
	td_buf_free(&b);

	uint8_t *in = decode_ok(&m, GOLD_STATUS);
	assert_int_equal(m.type, TD_MSG_STATUS);
	assert_int_equal(m.height, 300);
	assert_memory_equal(m.hash, last, TD_HASH_LEN);
	td_msg_free(&m);
	free(in);
}

static void test_announce_fetch(void **state)
{
	(void)state;
	struct td_buf b;
	struct td_msg m;
	uint8_t ids[3][TD_HASH_LEN];
	seq(ids[0], TD_HASH_LEN, 0x40);
	seq(ids[1], TD_HASH_LEN, 0x60);
	seq(ids[2], TD_HASH_LEN, 0x80);

	td_buf_init(&b);
	td_msg_ids(&b, TD_MSG_ANNOUNCE, (const uint8_t(*)[TD_HASH_LEN])ids, 2);
	expect_buf(&b, GOLD_ANNOUNCE);
	td_msg_ids(&b, TD_MSG_FETCH, (const uint8_t(*)[TD_HASH_LEN])ids + 2, 1);
	expect_buf(&b, GOLD_FETCH);
	td_msg_ids(&b, TD_MSG_FETCH, NULL, 0);
	expect_buf(&b, GOLD_FETCH_EMPTY);
	td_buf_free(&b);

	uint8_t *in = decode_ok(&m, GOLD_ANNOUNCE);
	assert_int_equal(m.type, TD_MSG_ANNOUNCE);
	assert_int_equal(m.n_ids, 2);
	assert_memory_equal(m.ids[0], ids[0], TD_HASH_LEN);
	assert_memory_equal(m.ids[1], ids[1], TD_HASH_LEN);
	td_msg_free(&m);
	free(in);

	in = decode_ok(&m, GOLD_FETCH);
	assert_int_equal(m.type, TD_MSG_FETCH);
	assert_int_equal(m.n_ids, 1);
	assert_memory_equal(m.ids[0], ids[2], TD_HASH_LEN);
	td_msg_free(&m);
	free(in);

	in = decode_ok(&m, GOLD_FETCH_EMPTY);
	assert_int_equal(m.type, TD_MSG_FETCH);
	assert_int_equal(m.n_ids, 0);
	td_msg_free(&m);
	free(in);
}

static void test_records(void **state)
{
	(void)state;
	struct td_buf b;
	struct td_msg m;
	static const uint8_t rec[] = { 1, 2, 3 };

	td_buf_init(&b);
	td_msg_items_begin(&b, TD_MSG_RECORDS, 2);
	td_enc_bin(&b, rec, sizeof(rec));
	td_enc_bin(&b, rec, 0);
	expect_buf(&b, GOLD_RECORDS);
	td_buf_free(&b);

	uint8_t *in = decode_ok(&m, GOLD_RECORDS);
	assert_int_equal(m.type, TD_MSG_RECORDS);
	assert_int_equal(m.n_items, 2);
	assert_int_equal(m.items[0].len, 3);
	assert_memory_equal(m.items[0].p, rec, 3);
	assert_int_equal(m.items[1].len, 0);
	td_msg_free(&m);
	free(in);
}

/* The header of GOLD_HEADER (n records, nev evidence) or GOLD_HEADER_EMPTY. */
static void fixed_header(struct td_block_header *h, uint64_t height, uint32_t n, uint32_t nev)
{
	memset(h, 0, sizeof(*h));
	h->height = height;
	seq(h->prev_hash, TD_HASH_LEN, 0x20);
	h->time_ms = TIME_MS;
	seq(h->proposer, TD_PUBKEY_LEN, 0xa0);
	seq(h->records_root, TD_HASH_LEN, 0x00);
	h->n_records = n;
	seq(h->evidence_root, TD_HASH_LEN, 0x30);
	h->n_evidence = nev;
	seq(h->next_validators, TD_HASH_LEN, 0x70);
}

static void expect_fixed_header(const struct td_block_header *h, uint64_t height, uint32_t n, uint32_t nev)
{
	struct td_block_header want;
	fixed_header(&want, height, n, nev);
	assert_int_equal(h->height, want.height);
	assert_memory_equal(h->prev_hash, want.prev_hash, TD_HASH_LEN);
	assert_int_equal(h->time_ms, want.time_ms);
	assert_memory_equal(h->proposer, want.proposer, TD_PUBKEY_LEN);
	assert_memory_equal(h->records_root, want.records_root, TD_HASH_LEN);
	assert_int_equal(h->n_records, want.n_records);
	assert_memory_equal(h->evidence_root, want.evidence_root, TD_HASH_LEN);
	assert_int_equal(h->n_evidence, want.n_evidence);
	assert_memory_equal(h->next_validators, want.next_validators, TD_HASH_LEN);
}

/*
 * The evidence of X_EV, its sides filled in the other order (value first):
 * td_evidence_seal puts the nil side first.
 */
static void fixed_evidence(struct td_evidence *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->kind = TD_EVIDENCE_VOTES;
	seq(ev->pk, TD_PUBKEY_LEN, 0xa0);
	ev->height = 70000;
	ev->round = 3;
	ev->vote_type = TD_VOTE_PRECOMMIT;
	seq(ev->a.value, TD_HASH_LEN, 0x40);
	ev->a.valid_round = -1;
	seq(ev->a.sig, TD_SIG_LEN, 0xc0);
	ev->b.nil = true;
	ev->b.valid_round = -1;
	seq(ev->b.sig, TD_SIG_LEN, 0xc0);
	td_evidence_seal(ev);
	assert_true(ev->a.nil);
	assert_false(ev->b.nil);
}

static void test_proposal(void **state)
{
	(void)state;
	struct td_buf b;
	struct td_msg m;
	uint8_t sig[TD_SIG_LEN];
	/* td_msg_proposal reads only the records' ids; the decoder does not check the roots. */
	struct td_record recs[2];
	struct td_record *ptrs[2] = { &recs[0], &recs[1] };
	struct td_evidence ev;
	memset(recs, 0, sizeof(recs));
	seq(recs[0].id, TD_HASH_LEN, 0x40);
	seq(recs[1].id, TD_HASH_LEN, 0x60);
	seq(sig, TD_SIG_LEN, 0xc0);
	fixed_evidence(&ev);
	struct td_block blk = { .records = ptrs, .evidence = &ev };
	fixed_header(&blk.hdr, 70000, 2, 1);

	td_buf_init(&b);
	td_msg_proposal(&b, &blk, 3, 1, sig);
	expect_buf(&b, GOLD_PROPOSAL);
	/* the block hash is the hash of the header's encoding */
	td_header_encode(&b, &blk.hdr);
	expect_buf(&b, GOLD_HEADER);
	/* the evidence item is the evidence's encoding */
	td_evidence_encode(&b, &ev);
	expect_buf(&b, X_EV);
	fixed_header(&blk.hdr, 1, 0, 0);
	td_msg_proposal(&b, &blk, 0, -1, sig);
	expect_buf(&b, GOLD_PROPOSAL_EMPTY);
	td_buf_free(&b);

	uint8_t *in = decode_ok(&m, GOLD_PROPOSAL);
	assert_int_equal(m.type, TD_MSG_PROPOSAL);
	assert_int_equal(m.height, 70000);
	assert_int_equal(m.round, 3);
	assert_int_equal(m.valid_round, 1);
	expect_fixed_header(&m.hdr, 70000, 2, 1);
	expect_hash(m.hash, GOLD_BLOCK_HASH);
	assert_int_equal(m.n_ids, 2);
	assert_memory_equal(m.ids[0], recs[0].id, TD_HASH_LEN);
	assert_memory_equal(m.ids[1], recs[1].id, TD_HASH_LEN);
	assert_int_equal(m.n_items, 1);
	expect_bytes(m.items[0].p, m.items[0].len, X_EV);
	struct td_evidence got;
	assert_int_equal(td_evidence_decode(&got, m.items[0].p, m.items[0].len), 0);
	assert_memory_equal(got.id, ev.id, TD_HASH_LEN);
	assert_memory_equal(m.sig, sig, TD_SIG_LEN);
	td_msg_free(&m);
	free(in);

	in = decode_ok(&m, GOLD_PROPOSAL_EMPTY);
	assert_int_equal(m.type, TD_MSG_PROPOSAL);
	assert_int_equal(m.height, 1);
	assert_int_equal(m.round, 0);
	assert_int_equal(m.valid_round, -1);
	expect_fixed_header(&m.hdr, 1, 0, 0);
	expect_hash(m.hash, GOLD_BLOCK_HASH_EMPTY);
	assert_int_equal(m.n_ids, 0);
	assert_int_equal(m.n_items, 0);
	assert_memory_equal(m.sig, sig, TD_SIG_LEN);
	td_msg_free(&m);
	free(in);

	/* td_header_decode reads the header alone, and only in its one encoding. */
	struct td_block_header h;
	uint8_t hash[TD_HASH_LEN];
	size_t len;
	in = unhex(GOLD_HEADER, &len);
	assert_int_equal(td_header_decode(&h, hash, in, len), 0);
	expect_fixed_header(&h, 70000, 2, 1);
	expect_hash(hash, GOLD_BLOCK_HASH);
	for (size_t k = 0; k < len; k++)
		assert_int_not_equal(td_header_decode(&h, hash, in, k), 0);
	free(in);
}

static void test_evidence(void **state)
{
	(void)state;
	struct td_buf b;
	struct td_msg m;
	struct td_evidence ev;
	fixed_evidence(&ev);

	td_buf_init(&b);
	td_msg_items_begin(&b, TD_MSG_EVIDENCE, 1);
	struct td_buf eb;
	td_buf_init(&eb);
	td_evidence_encode(&eb, &ev);
	td_enc_bin(&b, (const uint8_t *)eb.sb.data, eb.sb.size);
	td_buf_free(&eb);
	expect_buf(&b, GOLD_EVIDENCE);
	td_msg_items_begin(&b, TD_MSG_EVIDENCE, 0);
	expect_buf(&b, GOLD_EVIDENCE_EMPTY);
	td_buf_free(&b);

	uint8_t *in = decode_ok(&m, GOLD_EVIDENCE);
	assert_int_equal(m.type, TD_MSG_EVIDENCE);
	assert_int_equal(m.n_items, 1);
	expect_bytes(m.items[0].p, m.items[0].len, X_EV);
	td_msg_free(&m);
	free(in);

	in = decode_ok(&m, GOLD_EVIDENCE_EMPTY);
	assert_int_equal(m.type, TD_MSG_EVIDENCE);
	assert_int_equal(m.n_items, 0);
	td_msg_free(&m);
	free(in);
}

/* td_msg_encode gives back the very bytes of every golden message. */
static void test_reencode(void **state)
{
	(void)state;
	for (size_t g = 0; g < sizeof(goldens) / sizeof(goldens[0]); g++) {
		struct td_msg m;
		struct td_buf b;
		uint8_t *in = decode_ok(&m, goldens[g].hex);
		td_buf_init(&b);
		td_msg_encode(&b, &m);
		expect_buf(&b, goldens[g].hex);
		td_buf_free(&b);
		td_msg_free(&m);
		free(in);
	}
}

static void test_vote(void **state)
{
	(void)state;
	struct td_buf b;
	struct td_msg m;
	uint8_t hash[TD_HASH_LEN], sig[TD_SIG_LEN];
	seq(hash, TD_HASH_LEN, 0x80);
	seq(sig, TD_SIG_LEN, 0xc0);

	td_buf_init(&b);
	td_msg_vote(&b, TD_VOTE_PREVOTE, 0x100000000ULL, 200, hash, 3, sig);
	expect_buf(&b, GOLD_VOTE);
	td_msg_vote(&b, TD_VOTE_PRECOMMIT, 5, 0, NULL, 127, sig);
	expect_buf(&b, GOLD_VOTE_NIL);
	td_buf_free(&b);

	uint8_t *in = decode_ok(&m, GOLD_VOTE);
	assert_int_equal(m.type, TD_MSG_VOTE);
	assert_int_equal(m.vote_type, TD_VOTE_PREVOTE);
	assert_int_equal(m.height, 0x100000000ULL);
	assert_int_equal(m.round, 200);
	assert_false(m.nil);
	assert_memory_equal(m.hash, hash, TD_HASH_LEN);
	assert_int_equal(m.validator, 3);
	assert_memory_equal(m.sig, sig, TD_SIG_LEN);
	td_msg_free(&m);
	free(in);

	in = decode_ok(&m, GOLD_VOTE_NIL);
	assert_int_equal(m.type, TD_MSG_VOTE);
	assert_int_equal(m.vote_type, TD_VOTE_PRECOMMIT);
	assert_int_equal(m.height, 5);
	assert_int_equal(m.round, 0);
	assert_true(m.nil);
	assert_int_equal(m.validator, 127);
	assert_memory_equal(m.sig, sig, TD_SIG_LEN);
	td_msg_free(&m);
	free(in);
}

static void test_sync(void **state)
{
	(void)state;
	struct td_buf b;
	struct td_msg m;
	static const uint8_t b1[] = { 0xb1, 0xb2 }, c1[] = { 0xc1 }, c2[] = { 0xc2, 0xc3 };

	td_buf_init(&b);
	td_msg_sync_req(&b, 1000, TD_SYNC_BATCH);
	expect_buf(&b, GOLD_SYNC_REQ);
	td_msg_items_begin(&b, TD_MSG_SYNC_BLOCKS, 2);
	td_enc_array(&b, 2);
	td_enc_bin(&b, b1, sizeof(b1));
	td_enc_bin(&b, c1, sizeof(c1));
	td_enc_array(&b, 2);
	td_enc_bin(&b, b1, 0);
	td_enc_bin(&b, c2, sizeof(c2));
	expect_buf(&b, GOLD_SYNC_BLOCKS);
	td_msg_items_begin(&b, TD_MSG_SYNC_BLOCKS, 0);
	expect_buf(&b, GOLD_SYNC_BLOCKS_EMPTY);
	td_buf_free(&b);

	uint8_t *in = decode_ok(&m, GOLD_SYNC_REQ);
	assert_int_equal(m.type, TD_MSG_SYNC_REQ);
	assert_int_equal(m.height, 1000);
	assert_int_equal(m.count, TD_SYNC_BATCH);
	td_msg_free(&m);
	free(in);

	in = decode_ok(&m, GOLD_SYNC_BLOCKS);
	assert_int_equal(m.type, TD_MSG_SYNC_BLOCKS);
	assert_int_equal(m.n_items, 4); /* block, commit, block, commit */
	assert_int_equal(m.items[0].len, 2);
	assert_memory_equal(m.items[0].p, b1, 2);
	assert_int_equal(m.items[1].len, 1);
	assert_memory_equal(m.items[1].p, c1, 1);
	assert_int_equal(m.items[2].len, 0);
	assert_int_equal(m.items[3].len, 2);
	assert_memory_equal(m.items[3].p, c2, 2);
	td_msg_free(&m);
	free(in);

	in = decode_ok(&m, GOLD_SYNC_BLOCKS_EMPTY);
	assert_int_equal(m.type, TD_MSG_SYNC_BLOCKS);
	assert_int_equal(m.n_items, 0);
	td_msg_free(&m);
	free(in);
}

/* ---- signatures ---- */

static void rfc8032_key(uint8_t pk[static TD_PUBKEY_LEN], uint8_t sk[static TD_SECKEY_LEN])
{
	size_t len;
	uint8_t *seed = unhex(RFC8032_SEED, &len);
	assert_int_equal(len, crypto_sign_SEEDBYTES);
	assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
	free(seed);
	expect_bytes(pk, TD_PUBKEY_LEN, RFC8032_PK);
}

/* Asserts that sig is the signature in hex and that it signs exactly the bytes in signed_hex under pk. */
static void expect_signature(const uint8_t sig[static TD_SIG_LEN], const char *hex, const char *signed_hex,
			     const uint8_t pk[static TD_PUBKEY_LEN])
{
	size_t len;
	expect_bytes(sig, TD_SIG_LEN, hex);
	uint8_t *msg = unhex(signed_hex, &len);
	int rc = crypto_sign_verify_detached(sig, msg, len, pk);
	free(msg);
	assert_int_equal(rc, 0);
}

/* CHAIN with byte i xor mask: another genesis hash. */
static const uint8_t *chain_changed(uint8_t out[static TD_HASH_LEN], size_t i, uint8_t mask)
{
	memcpy(out, CHAIN, TD_HASH_LEN);
	out[i] ^= mask;
	return out;
}

static void test_proposal_signature(void **state)
{
	(void)state;
	uint8_t pk[TD_PUBKEY_LEN], sk[TD_SECKEY_LEN], other_pk[TD_PUBKEY_LEN], other_sk[TD_SECKEY_LEN];
	uint8_t hash[TD_HASH_LEN], sig[TD_SIG_LEN];
	rfc8032_key(pk, sk);
	crypto_sign_keypair(other_pk, other_sk);
	seq(hash, TD_HASH_LEN, 0x40);

	td_proposal_sign(sig, CHAIN, 70000, 3, 1, hash, sk);
	expect_signature(sig, SIG_PROPOSAL, SIGNED_PROPOSAL, pk);
	assert_true(td_proposal_verify(sig, CHAIN, 70000, 3, 1, hash, pk));
	/* each signed field changed */
	uint8_t chain[TD_HASH_LEN];
	static const uint8_t zero[TD_HASH_LEN];
	for (size_t i = 0; i < TD_HASH_LEN; i++) {
		assert_false(td_proposal_verify(sig, chain_changed(chain, i, 0x01), 70000, 3, 1, hash, pk));
		assert_false(td_proposal_verify(sig, chain_changed(chain, i, 0x80), 70000, 3, 1, hash, pk));
	}
	assert_false(td_proposal_verify(sig, OTHER, 70000, 3, 1, hash, pk));
	assert_false(td_proposal_verify(sig, zero, 70000, 3, 1, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 70001, 3, 1, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 69999, 3, 1, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 70000 + (1ULL << 32), 3, 1, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 70000, 2, 1, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 70000, 4, 1, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 70000, 3, 0, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 70000, 3, -1, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 70000, 3, 2, hash, pk));
	for (size_t i = 0; i < TD_HASH_LEN; i += TD_HASH_LEN - 1) {
		hash[i] ^= 0x01;
		assert_false(td_proposal_verify(sig, CHAIN, 70000, 3, 1, hash, pk));
		hash[i] ^= 0x01;
	}
	/* another key, a changed signature */
	assert_false(td_proposal_verify(sig, CHAIN, 70000, 3, 1, hash, other_pk));
	sig[TD_SIG_LEN - 1] ^= 0x01;
	assert_false(td_proposal_verify(sig, CHAIN, 70000, 3, 1, hash, pk));

	td_proposal_sign(sig, CHAIN, 1, 0, -1, hash, sk);
	expect_signature(sig, SIG_PROPOSAL_NO_VR, SIGNED_PROPOSAL_NO_VR, pk);
	assert_true(td_proposal_verify(sig, CHAIN, 1, 0, -1, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 1, 0, 0, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 1, 1, -1, hash, pk));
	assert_false(td_proposal_verify(sig, CHAIN, 0, 0, -1, hash, pk));
}

static void test_vote_signature(void **state)
{
	(void)state;
	uint8_t pk[TD_PUBKEY_LEN], sk[TD_SECKEY_LEN], other_pk[TD_PUBKEY_LEN], other_sk[TD_SECKEY_LEN];
	uint8_t hash[TD_HASH_LEN], zero[TD_HASH_LEN] = { 0 }, sig[TD_SIG_LEN];
	uint8_t *bytes;
	size_t len;
	const uint64_t h = 0x100000000ULL;
	rfc8032_key(pk, sk);
	crypto_sign_keypair(other_pk, other_sk);
	seq(hash, TD_HASH_LEN, 0x80);

	td_vote_sign_bytes(&bytes, &len, CHAIN, TD_VOTE_PREVOTE, h, 200, hash);
	expect_bytes(bytes, len, SIGNED_PREVOTE);
	free(bytes);
	td_vote_sign(sig, CHAIN, TD_VOTE_PREVOTE, h, 200, hash, sk);
	expect_signature(sig, SIG_PREVOTE, SIGNED_PREVOTE, pk);
	assert_true(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, h, 200, hash, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PRECOMMIT, h, 200, hash, pk));
	uint8_t chain[TD_HASH_LEN];
	for (size_t i = 0; i < TD_HASH_LEN; i++) {
		assert_false(td_vote_verify(sig, chain_changed(chain, i, 0x01), TD_VOTE_PREVOTE, h, 200, hash, pk));
		assert_false(td_vote_verify(sig, chain_changed(chain, i, 0x80), TD_VOTE_PREVOTE, h, 200, hash, pk));
	}
	assert_false(td_vote_verify(sig, OTHER, TD_VOTE_PREVOTE, h, 200, hash, pk));
	assert_false(td_vote_verify(sig, zero, TD_VOTE_PREVOTE, h, 200, hash, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, h + 1, 200, hash, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, h - 1, 200, hash, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, 0, 200, hash, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, h, 199, hash, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, h, 201, hash, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, h, 200, NULL, pk));
	for (size_t i = 0; i < TD_HASH_LEN; i += TD_HASH_LEN - 1) {
		hash[i] ^= 0x80;
		assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, h, 200, hash, pk));
		hash[i] ^= 0x80;
	}
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, h, 200, hash, other_pk));
	sig[0] ^= 0x01;
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, h, 200, hash, pk));

	td_vote_sign_bytes(&bytes, &len, CHAIN, TD_VOTE_PRECOMMIT, 5, 0, NULL);
	expect_bytes(bytes, len, SIGNED_PRECOMMIT_NIL);
	free(bytes);
	td_vote_sign(sig, CHAIN, TD_VOTE_PRECOMMIT, 5, 0, NULL, sk);
	expect_signature(sig, SIG_PRECOMMIT_NIL, SIGNED_PRECOMMIT_NIL, pk);
	assert_true(td_vote_verify(sig, CHAIN, TD_VOTE_PRECOMMIT, 5, 0, NULL, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PREVOTE, 5, 0, NULL, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PRECOMMIT, 5, 0, zero, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PRECOMMIT, 6, 0, NULL, pk));
	assert_false(td_vote_verify(sig, CHAIN, TD_VOTE_PRECOMMIT, 5, 1, NULL, pk));
	assert_false(
		td_vote_verify(sig, chain_changed(chain, TD_HASH_LEN - 1, 0x01), TD_VOTE_PRECOMMIT, 5, 0, NULL, pk));
	assert_false(td_vote_verify(sig, OTHER, TD_VOTE_PRECOMMIT, 5, 0, NULL, pk));
	/* A proposal signature is no vote, and a vote no proposal (different domains). */
	assert_false(td_proposal_verify(sig, CHAIN, 5, 0, -1, zero, pk));
}

/* A signed proposal and vote survive encoding and decoding: what the receiver decodes verifies. */
static void test_signed_messages_travel(void **state)
{
	(void)state;
	uint8_t pk[TD_PUBKEY_LEN], sk[TD_SECKEY_LEN], sig[TD_SIG_LEN], hash[TD_HASH_LEN];
	struct td_block blk = { .records = NULL };
	struct td_buf b;
	struct td_msg m;
	rfc8032_key(pk, sk);
	fixed_header(&blk.hdr, 1, 0, 0);
	td_buf_init(&b);
	td_header_encode(&b, &blk.hdr);
	td_hash(hash, (const uint8_t *)b.sb.data, b.sb.size);
	expect_hash(hash, GOLD_BLOCK_HASH_EMPTY);
	td_buf_free(&b);

	td_proposal_sign(sig, CHAIN, 1, 0, -1, hash, sk);
	td_buf_init(&b);
	td_msg_proposal(&b, &blk, 0, -1, sig);
	assert_int_equal(td_msg_decode(&m, (const uint8_t *)b.sb.data, b.sb.size), 0);
	assert_true(td_proposal_verify(m.sig, CHAIN, m.height, m.round, m.valid_round, m.hash, pk));
	td_msg_free(&m);
	td_buf_free(&b);

	td_vote_sign(sig, CHAIN, TD_VOTE_PRECOMMIT, 1, 0, hash, sk);
	td_buf_init(&b);
	td_msg_vote(&b, TD_VOTE_PRECOMMIT, 1, 0, hash, 0, sig);
	assert_int_equal(td_msg_decode(&m, (const uint8_t *)b.sb.data, b.sb.size), 0);
	assert_true(td_vote_verify(m.sig, CHAIN, m.vote_type, m.height, m.round, m.nil ? NULL : m.hash, pk));
	td_msg_free(&m);
	td_buf_free(&b);
}

/* ---- refusals ---- */

/* Every strict prefix of every golden message, and each with one byte more, is refused. */
static void test_truncated_and_trailing(void **state)
{
	(void)state;
	static const uint8_t extra[] = { 0x00, 0xc0, 0x90, 0xc4 };
	for (size_t g = 0; g < sizeof(goldens) / sizeof(goldens[0]); g++) {
		size_t len;
		uint8_t *in = unhex(goldens[g].hex, &len);
		uint8_t *buf = td_xmalloc(len + 1);
		memcpy(buf, in, len);
		assert_true(decodes(buf, len));
		for (size_t k = 0; k < len; k++) {
			if (decodes(buf, k))
				print_error("%s: the first %zu of %zu bytes decode\n", goldens[g].name, k, len);
			assert_false(decodes(buf, k));
		}
		for (size_t e = 0; e < sizeof(extra); e++) {
			buf[len] = extra[e];
			if (decodes(buf, len + 1))
				print_error("%s: accepted with a trailing byte %02x\n", goldens[g].name, extra[e]);
			assert_false(decodes(buf, len + 1));
		}
		free(buf);
		free(in);
	}
}

/* Other encodings of the values of a golden message. */
static void test_noncanonical(void **state)
{
	(void)state;
	static const struct golden cases[] = {
		{ "type 1 as uint8", "93 cc01 cd012c c420" X_LAST },
		{ "height 300 as uint32", "93 01 ce0000012c c420" X_LAST },
		{ "height 300 as uint64", "93 01 cf000000000000012c c420" X_LAST },
		{ "height 300 as int16", "93 01 d1012c c420" X_LAST },
		{ "message array as array16", "dc0003 01 cd012c c420" X_LAST },
		{ "message array as array32", "dd00000003 01 cd012c c420" X_LAST },
		{ "hash as bin16", "93 01 cd012c c50020" X_LAST },
		{ "hash as bin32", "93 01 cd012c c600000020" X_LAST },
		{ "ids as array16", "92 03 dc0001 c420" X_ID3 },
		{ "empty ids as array16", "92 03 dc0000" },
		{ "id as bin16", "92 03 91 c50020" X_ID3 },
		{ "record as bin16", "92 04 92 c50003 010203 c400" },
		{ "empty record as bin32", "92 04 92 c403 010203 c600000000" },
		{ "round 3 as uint8", "98 05 ce00011170 cc03 02 " GOLD_HEADER GOLD_PROPOSAL_TAIL },
		{ "valid round as int8", "98 05 ce00011170 03 d002 " GOLD_HEADER GOLD_PROPOSAL_TAIL },
		{ "header height as uint64",
		  "98 05 ce00011170 03 02 9a 02 cf0000000000011170 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER
		  " c420" X_ROOT " 02" HDR_EVROOT " 01" HDR_NEXT GOLD_PROPOSAL_TAIL },
		{ "header version as uint8",
		  "98 05 ce00011170 03 02 9a cc02 ce00011170 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER
		  " c420" X_ROOT " 02" HDR_EVROOT " 01" HDR_NEXT GOLD_PROPOSAL_TAIL },
		{ "header evidence count as uint8",
		  "98 05 ce00011170 03 02 9a 02 ce00011170 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER
		  " c420" X_ROOT " 02" HDR_EVROOT " cc01" HDR_NEXT GOLD_PROPOSAL_TAIL },
		{ "header evidence root as bin16",
		  "98 05 01 00 00 " HDR1_HEAD " 00 c50020" X_EVROOT " 00" HDR_NEXT " 90 90 c440" X_SIG },
		{ "header next validators as bin16",
		  "98 05 01 00 00 " HDR1_HEAD " 00" HDR_EVROOT " 00 c50020" X_NEXT " 90 90 c440" X_SIG },
		{ "header as array16", "98 05 01 00 00 dc000a 02 01 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER
				       " c420" X_ROOT " 00" HDR_EVROOT " 00" HDR_NEXT " 90 90 c440" X_SIG },
		{ "proposal evidence as array16", "98 05 ce00011170 03 02 " GOLD_HEADER " 92 c420" X_ID1 " c420" X_ID2
						  " dc0001 c4d6 " X_EV " c440" X_SIG },
		{ "proposal evidence item as bin16", "98 05 ce00011170 03 02 " GOLD_HEADER " 92 c420" X_ID1
						     " c420" X_ID2 " 91 c500d6 " X_EV " c440" X_SIG },
		{ "proposal empty evidence as array16", "98 05 01 00 00 " GOLD_HEADER_EMPTY " 90 dc0000 c440" X_SIG },
		{ "proposal signature as bin16", "98 05 01 00 00 " GOLD_HEADER_EMPTY " 90 90 c50040" X_SIG },
		{ "vote type as uint8", "97 06 cc02 05 00 c0 7f c440" X_SIG },
		{ "vote height as uint64", "97 06 02 cf0000000000000005 00 c0 7f c440" X_SIG },
		{ "vote round as int8", "97 06 02 05 d000 c0 7f c440" X_SIG },
		{ "validator as uint8", "97 06 02 05 00 c0 cc7f c440" X_SIG },
		{ "vote hash as bin16", "97 06 01 cf0000000100000000 ccc8 c50020" X_ID3 " 03 c440" X_SIG },
		{ "sync count as uint16", "93 07 cd03e8 cd0040" },
		{ "sync from as uint32", "93 07 ce000003e8 40" },
		{ "sync pairs as array16", "92 08 dc0002 92 c402b1b2 c401c1 92 c400 c402c2c3" },
		{ "sync pair as array16", "92 08 91 dc0002 c402b1b2 c401c1" },
		{ "EVIDENCE items as array16", "92 09 dc0001 c4d6 " X_EV },
		{ "EVIDENCE empty items as array16", "92 09 dc0000" },
		{ "EVIDENCE item as bin32", "92 09 91 c6000000d6 " X_EV },
		{ "EVIDENCE type as uint8", "92 cc09 91 c4d6 " X_EV },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_refused(cases[i].name, cases[i].hex);
}

/* Unknown types, wrong shapes and wrong item types. */
static void test_unknown_and_malformed(void **state)
{
	(void)state;
	static const uint8_t reserved[] = { 0xc1 }; /* never valid msgpack */
	assert_false(decodes(reserved, 0));
	assert_false(decodes(reserved, 1));
	static const struct golden cases[] = {
		{ "not an array", "01" },
		{ "a map", "81 a161 01" },
		{ "empty array", "90" },
		{ "type alone", "91 01" },
		{ "type 0", "93 00 cd012c c420" X_LAST },
		{ "type 10", "92 0a 90" },
		{ "type 10 shaped as a STATUS", "93 0a cd012c c420" X_LAST },
		{ "type 255", "92 ccff 90" },
		{ "type 2^32 + 1", "93 cf0000000100000001 cd012c c420" X_LAST },
		{ "type 2^32 + 9", "92 cf0000000100000009 90" },
		{ "type as a string", "93 a101 cd012c c420" X_LAST },
		{ "type nil", "92 c0 90" },
		{ "type -1", "93 ff cd012c c420" X_LAST },
		{ "nine items", "99 01 00 00 00 00 00 00 00 00" },
		{ "STATUS of 2", "92 01 cd012c" },
		{ "STATUS of 4", "94 01 cd012c c420" X_LAST " c0" },
		{ "STATUS height -1", "93 01 ff c420" X_LAST },
		{ "STATUS hash nil", "93 01 cd012c c0" },
		{ "STATUS hash a string", "93 01 cd012c d920" X_LAST },
		{ "ANNOUNCE of 3", "93 02 90 90" },
		{ "ANNOUNCE ids not an array", "92 02 c420" X_ID1 },
		{ "ANNOUNCE id a string", "92 02 91 d920" X_ID1 },
		{ "FETCH id nil", "92 03 91 c0" },
		{ "FETCH ids nil", "92 03 c0" },
		{ "RECORDS of 1", "91 04" },
		{ "RECORDS item a string", "92 04 91 a3 010203" },
		{ "RECORDS item an array", "92 04 91 91 c403010203" },
		{ "RECORDS not an array", "92 04 c403 010203" },
		/* format 1's empty proposal: 7 items, a header of 7 with version 1 */
		{ "PROPOSAL of format 1", "97 05 01 00 00 97 01 01 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER
					  " c420" X_ROOT " 00 90 c440" X_SIG },
		{ "PROPOSAL of 7 (no evidence)", "97 05 01 00 00 " GOLD_HEADER_EMPTY " 90 c440" X_SIG },
		{ "PROPOSAL of 9", "99 05 01 00 00 " GOLD_HEADER_EMPTY " 90 90 c440" X_SIG " c0" },
		{ "header of 7 (format 1)", "98 05 01 00 00 97 01 01 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER
					    " c420" X_ROOT " 00 90 90 c440" X_SIG },
		{ "header of 9 (no next validators)",
		  "98 05 01 00 00 99 02 01 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER " c420" X_ROOT
		  " 00" HDR_EVROOT " 00 90 90 c440" X_SIG },
		{ "header of 11", "98 05 01 00 00 9b 02 01 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER
				  " c420" X_ROOT " 00" HDR_EVROOT " 00" HDR_NEXT " c0 90 90 c440" X_SIG },
		{ "header version 1", "98 05 01 00 00 9a 01 01 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER
				      " c420" X_ROOT " 00" HDR_EVROOT " 00" HDR_NEXT " 90 90 c440" X_SIG },
		{ "header version 3", "98 05 01 00 00 9a 03 01 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER
				      " c420" X_ROOT " 00" HDR_EVROOT " 00" HDR_NEXT " 90 90 c440" X_SIG },
		{ "header not an array", "98 05 01 00 00 c0 90 90 c440" X_SIG },
		{ "header evidence root nil", "98 05 01 00 00 " HDR1_HEAD " 00 c0 00" HDR_NEXT " 90 90 c440" X_SIG },
		{ "header next validators nil",
		  "98 05 01 00 00 " HDR1_HEAD " 00" HDR_EVROOT " 00 c0 90 90 c440" X_SIG },
		{ "header evidence count -1",
		  "98 05 01 00 00 " HDR1_HEAD " 00" HDR_EVROOT " ff" HDR_NEXT " 90 90 c440" X_SIG },
		{ "header height 2 in a proposal for 1",
		  "98 05 01 00 00 9a 02 02 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER " c420" X_ROOT
		  " 00" HDR_EVROOT " 00" HDR_NEXT " 90 90 c440" X_SIG },
		{ "header counts 2 records, 1 id",
		  "98 05 ce00011170 03 02 " GOLD_HEADER " 91 c420" X_ID1 " 91 c4d6 " X_EV " c440" X_SIG },
		{ "header counts 0 records, 1 id",
		  "98 05 01 00 00 " GOLD_HEADER_EMPTY " 91 c420" X_ID1 " 90 c440" X_SIG },
		{ "header counts 1 evidence, none",
		  "98 05 ce00011170 03 02 " GOLD_HEADER " 92 c420" X_ID1 " c420" X_ID2 " 90 c440" X_SIG },
		{ "header counts 1 evidence, 2 items", "98 05 ce00011170 03 02 " GOLD_HEADER " 92 c420" X_ID1
						       " c420" X_ID2 " 92 c4d6 " X_EV " c4d6 " X_EV " c440" X_SIG },
		{ "header counts 0 evidence, 1 item",
		  "98 05 01 00 00 " GOLD_HEADER_EMPTY " 90 91 c4d6 " X_EV " c440" X_SIG },
		{ "proposal evidence not an array", "98 05 01 00 00 " GOLD_HEADER_EMPTY " 90 c0 c440" X_SIG },
		{ "proposal evidence item a string",
		  "98 05 ce00011170 03 02 " GOLD_HEADER " 92 c420" X_ID1 " c420" X_ID2 " 91 d9d6 " X_EV " c440" X_SIG },
		{ "proposal evidence item nil",
		  "98 05 ce00011170 03 02 " GOLD_HEADER " 92 c420" X_ID1 " c420" X_ID2 " 91 c0 c440" X_SIG },
		{ "evidence and signature swapped", "98 05 01 00 00 " GOLD_HEADER_EMPTY " 90 c440" X_SIG " 90" },
		{ "valid round equal to the round", "98 05 ce00011170 03 04 " GOLD_HEADER GOLD_PROPOSAL_TAIL },
		{ "valid round 0 in round 0", "98 05 01 00 01 " GOLD_HEADER_EMPTY " 90 90 c440" X_SIG },
		{ "PROPOSAL signature nil", "98 05 01 00 00 " GOLD_HEADER_EMPTY " 90 90 c0" },
		{ "VOTE of 6", "96 06 02 05 00 c0 7f" },
		{ "VOTE of 8", "98 06 02 05 00 c0 7f c440" X_SIG " c0" },
		{ "vote type 0", "97 06 00 05 00 c0 7f c440" X_SIG },
		{ "vote type 3", "97 06 03 05 00 c0 7f c440" X_SIG },
		{ "vote hash false", "97 06 02 05 00 c2 7f c440" X_SIG },
		{ "vote hash empty", "97 06 02 05 00 c400 7f c440" X_SIG },
		{ "validator -1", "97 06 02 05 00 c0 ff c440" X_SIG },
		{ "validator nil", "97 06 02 05 00 c0 c0 c440" X_SIG },
		{ "vote signature a string", "97 06 02 05 00 c0 7f d940" X_SIG },
		{ "SYNC_REQ of 2", "92 07 cd03e8" },
		{ "SYNC_REQ of 4", "94 07 cd03e8 40 00" },
		{ "SYNC_REQ count -1", "93 07 cd03e8 ff" },
		{ "SYNC_BLOCKS block without a pair", "92 08 92 c402b1b2 c401c1" },
		{ "SYNC_BLOCKS pair of 1", "92 08 91 91 c402b1b2" },
		{ "SYNC_BLOCKS pair of 3", "92 08 91 93 c402b1b2 c401c1 c400" },
		{ "SYNC_BLOCKS commit a string", "92 08 91 92 c402b1b2 a1c1" },
		{ "SYNC_BLOCKS commit nil", "92 08 91 92 c402b1b2 c0" },
		{ "EVIDENCE of 1", "91 09" },
		{ "EVIDENCE of 3", "93 09 91 c4d6 " X_EV " 90" },
		{ "EVIDENCE not an array", "92 09 c4d6 " X_EV },
		{ "EVIDENCE item a string", "92 09 91 d9d6 " X_EV },
		{ "EVIDENCE item an array", "92 09 91 91 c4d6 " X_EV },
		{ "EVIDENCE item nil", "92 09 91 c0" },
		{ "EVIDENCE items nil", "92 09 c0" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_refused(cases[i].name, cases[i].hex);
}

/* An ANNOUNCE, FETCH or PROPOSAL of n ids (header count n). */
static void w_ids_msg(struct w *w, enum td_msg_type type, uint32_t n)
{
	w_array(w, type == TD_MSG_PROPOSAL ? 8 : 2);
	w_uint(w, type);
	if (type == TD_MSG_PROPOSAL) {
		w_hex(w, "01 00 00 " HDR1_HEAD);
		w_uint(w, n);
		w_hex(w, HDR_EVROOT " 00" HDR_NEXT);
	}
	w_array(w, n);
	for (uint32_t i = 0; i < n; i++)
		w_bin(w, TD_HASH_LEN, (uint8_t)i);
	if (type == TD_MSG_PROPOSAL)
		w_hex(w, "90 c440" X_SIG);
}

/*
 * A RECORDS of n records of len bytes, an EVIDENCE of n items of len bytes,
 * or a SYNC_BLOCKS of n pairs (block len bytes, commit clen bytes).
 */
static void w_items_msg(struct w *w, enum td_msg_type type, uint32_t n, size_t len, size_t clen)
{
	w_array(w, 2);
	w_uint(w, type);
	w_array(w, n);
	for (uint32_t i = 0; i < n; i++) {
		if (type == TD_MSG_SYNC_BLOCKS)
			w_array(w, 2);
		w_bin(w, len, 0xab);
		if (type == TD_MSG_SYNC_BLOCKS)
			w_bin(w, clen, 0xcd);
	}
}

/* A PROPOSAL of an empty block at height 1 with n evidence items of len bytes (header count nev). */
static void w_evidence_proposal(struct w *w, uint64_t nev, uint32_t n, size_t len)
{
	w_hex(w, "98 05 01 00 00 " HDR1_HEAD " 00" HDR_EVROOT);
	w_uint(w, nev);
	w_hex(w, HDR_NEXT " 90");
	w_array(w, n);
	for (uint32_t i = 0; i < n; i++)
		w_bin(w, len, 0xee);
	w_hex(w, "c440" X_SIG);
}

static void w_vote(struct w *w, uint64_t round, uint64_t validator)
{
	w_hex(w, "97 06 02 05");
	w_uint(w, round);
	w_byte(w, 0xc0);
	w_uint(w, validator);
	w_hex(w, "c440" X_SIG);
}

/* A PROPOSAL at height 1 in round with valid round + 1 = vr1, for an empty block. */
static void w_proposal(struct w *w, uint64_t round, uint64_t vr1)
{
	w_hex(w, "98 05 01");
	w_uint(w, round);
	w_uint(w, vr1);
	w_hex(w, GOLD_HEADER_EMPTY " 90 90 c440" X_SIG);
}

static void w_sync_req(struct w *w, uint64_t count)
{
	w_hex(w, "93 07 01");
	w_uint(w, count);
}

/* Every count limit: accepted at the limit, refused one over it. */
static void test_count_limits(void **state)
{
	(void)state;
	struct w w = { 0 };
	static const enum td_msg_type id_types[] = { TD_MSG_ANNOUNCE, TD_MSG_FETCH, TD_MSG_PROPOSAL };
	for (size_t t = 0; t < 3; t++) {
		w_ids_msg(&w, id_types[t], TD_MSG_IDS_MAX);
		assert_true(w_decodes(&w));
		w_ids_msg(&w, id_types[t], TD_MSG_IDS_MAX + 1);
		assert_false(w_decodes(&w));
	}
	w_items_msg(&w, TD_MSG_RECORDS, TD_MSG_ITEMS_MAX, 0, 0);
	assert_true(w_decodes(&w));
	w_items_msg(&w, TD_MSG_RECORDS, TD_MSG_ITEMS_MAX + 1, 0, 0);
	assert_false(w_decodes(&w));
	w_items_msg(&w, TD_MSG_SYNC_BLOCKS, TD_SYNC_REQ_MAX, 0, 0);
	assert_true(w_decodes(&w));
	w_items_msg(&w, TD_MSG_SYNC_BLOCKS, TD_SYNC_REQ_MAX + 1, 0, 0);
	assert_false(w_decodes(&w));
	/* evidence: at most TD_BLOCK_EVIDENCE_MAX items, in an EVIDENCE and in a proposal */
	w_items_msg(&w, TD_MSG_EVIDENCE, TD_BLOCK_EVIDENCE_MAX, 0, 0);
	assert_true(w_decodes(&w));
	w_items_msg(&w, TD_MSG_EVIDENCE, TD_BLOCK_EVIDENCE_MAX + 1, 0, 0);
	assert_false(w_decodes(&w));
	w_evidence_proposal(&w, TD_BLOCK_EVIDENCE_MAX, TD_BLOCK_EVIDENCE_MAX, 1);
	assert_true(w_decodes(&w));
	w_evidence_proposal(&w, TD_BLOCK_EVIDENCE_MAX + 1, TD_BLOCK_EVIDENCE_MAX + 1, 1);
	assert_false(w_decodes(&w));
	w_evidence_proposal(&w, TD_BLOCK_EVIDENCE_MAX, TD_BLOCK_EVIDENCE_MAX + 1, 1);
	assert_false(w_decodes(&w));
	w_evidence_proposal(&w, UINT32_MAX + 1ULL, 0, 1);
	assert_false(w_decodes(&w));

	w_sync_req(&w, TD_SYNC_REQ_MAX);
	assert_true(w_decodes(&w));
	w_sync_req(&w, TD_SYNC_REQ_MAX + 1);
	assert_false(w_decodes(&w));
	w_sync_req(&w, UINT64_MAX);
	assert_false(w_decodes(&w));

	w_vote(&w, 0, TD_VALIDATORS_MAX - 1);
	assert_true(w_decodes(&w));
	w_vote(&w, 0, TD_VALIDATORS_MAX);
	assert_false(w_decodes(&w));
	w_vote(&w, 0, UINT32_MAX + 1ULL);
	assert_false(w_decodes(&w));

	/* rounds fit an int32 */
	w_vote(&w, INT32_MAX, 0);
	assert_true(w_decodes(&w));
	w_vote(&w, (uint64_t)INT32_MAX + 1, 0);
	assert_false(w_decodes(&w));
	w_vote(&w, UINT32_MAX + 1ULL, 0);
	assert_false(w_decodes(&w));
	w_proposal(&w, INT32_MAX, INT32_MAX);
	assert_true(w_decodes(&w));
	w_proposal(&w, (uint64_t)INT32_MAX + 1, 0);
	assert_false(w_decodes(&w));
	/* the valid round is below the round */
	w_proposal(&w, 5, 5);
	assert_true(w_decodes(&w));
	w_proposal(&w, 5, 6);
	assert_false(w_decodes(&w));
	w_proposal(&w, 5, UINT64_MAX);
	assert_false(w_decodes(&w));

	/* a header counting more records than a block may hold, with as many ids */
	w_hex(&w, "98 05 01 00 00 " HDR1_HEAD);
	w_uint(&w, TD_BLOCK_RECORDS_MAX + 1ULL);
	w_hex(&w, HDR_EVROOT " 00" HDR_NEXT);
	w_array(&w, TD_BLOCK_RECORDS_MAX + 1);
	for (uint32_t i = 0; i < TD_BLOCK_RECORDS_MAX + 1; i++)
		w_bin(&w, TD_HASH_LEN, 0);
	w_hex(&w, "90 c440" X_SIG);
	assert_false(w_decodes(&w));
	free(w.p);
}

/* Fixed-length items one byte short or long, and variable items over their byte limit. */
static void test_item_sizes(void **state)
{
	(void)state;
	static const struct golden cases[] = {
		{ "STATUS hash of 31", "93 01 cd012c c41f" Z31 },
		{ "STATUS hash of 33", "93 01 cd012c c421" X_LAST "00" },
		{ "ANNOUNCE id of 31", "92 02 91 c41f" Z31 },
		{ "ANNOUNCE id of 33", "92 02 91 c421" X_ID1 "00" },
		{ "FETCH second id of 33", "92 03 92 c420" X_ID1 " c421" X_ID2 "00" },
		{ "FETCH id of 0", "92 03 91 c400" },
		{ "VOTE hash of 33", "97 06 01 cf0000000100000000 ccc8 c421" X_ID3 "00 03 c440" X_SIG },
		{ "VOTE signature of 63", "97 06 02 05 00 c0 7f c43f" Z63 },
		{ "VOTE signature of 65", "97 06 02 05 00 c0 7f c441" X_SIG "00" },
		{ "PROPOSAL signature of 65", "98 05 01 00 00 " GOLD_HEADER_EMPTY " 90 90 c441" X_SIG "00" },
		{ "PROPOSAL id of 33", "98 05 ce00011170 03 02 " GOLD_HEADER " 92 c420" X_ID1 " c421" X_ID2
				       "00 91 c4d6 " X_EV " c440" X_SIG },
		{ "header prev hash of 33",
		  "98 05 01 00 00 9a 02 01 c421" X_PREV "00 cf00000170bc984260 c420" X_PROPOSER " c420" X_ROOT
		  " 00" HDR_EVROOT " 00" HDR_NEXT " 90 90 c440" X_SIG },
		{ "header proposer of 31", "98 05 01 00 00 9a 02 01 c420" X_PREV " cf00000170bc984260 c41f" Z31
					   " c420" X_ROOT " 00" HDR_EVROOT " 00" HDR_NEXT " 90 90 c440" X_SIG },
		{ "header root of 33", "98 05 01 00 00 9a 02 01 c420" X_PREV " cf00000170bc984260 c420" X_PROPOSER
				       " c421" X_ROOT "00 00" HDR_EVROOT " 00" HDR_NEXT " 90 90 c440" X_SIG },
		{ "header evidence root of 31",
		  "98 05 01 00 00 " HDR1_HEAD " 00 c41f" Z31 " 00" HDR_NEXT " 90 90 c440" X_SIG },
		{ "header next validators of 33",
		  "98 05 01 00 00 " HDR1_HEAD " 00" HDR_EVROOT " 00 c421" X_NEXT "00 90 90 c440" X_SIG },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_refused(cases[i].name, cases[i].hex);

	struct w w = { 0 };
	w_items_msg(&w, TD_MSG_RECORDS, 1, TD_RECORD_MAX, 0);
	assert_true(w_decodes(&w));
	w_items_msg(&w, TD_MSG_RECORDS, 1, TD_RECORD_MAX + 1, 0);
	assert_false(w_decodes(&w));
	w_items_msg(&w, TD_MSG_SYNC_BLOCKS, 1, TD_BLOCK_MAX, 100);
	assert_true(w_decodes(&w));
	w_items_msg(&w, TD_MSG_SYNC_BLOCKS, 1, TD_BLOCK_MAX + 1, 100);
	assert_false(w_decodes(&w));
	w_items_msg(&w, TD_MSG_SYNC_BLOCKS, 1, 100, TD_BLOCK_MAX + 1);
	assert_false(w_decodes(&w));
	/* evidence items: at most TD_EVIDENCE_LEN_MAX bytes, in an EVIDENCE and in a proposal */
	w_items_msg(&w, TD_MSG_EVIDENCE, 1, TD_EVIDENCE_LEN_MAX, 0);
	assert_true(w_decodes(&w));
	w_items_msg(&w, TD_MSG_EVIDENCE, 1, TD_EVIDENCE_LEN_MAX + 1, 0);
	assert_false(w_decodes(&w));
	w_evidence_proposal(&w, 1, 1, TD_EVIDENCE_LEN_MAX);
	assert_true(w_decodes(&w));
	w_evidence_proposal(&w, 1, 1, TD_EVIDENCE_LEN_MAX + 1);
	assert_false(w_decodes(&w));
	free(w.p);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_announce_fetch),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_proposal),
		cmocka_unit_test(test_vote),
		cmocka_unit_test(test_sync),
		cmocka_unit_test(test_evidence),
		cmocka_unit_test(test_reencode),
		cmocka_unit_test(test_proposal_signature),
		cmocka_unit_test(test_vote_signature),
		cmocka_unit_test(test_signed_messages_travel),
		cmocka_unit_test(test_truncated_and_trailing),
		cmocka_unit_test(test_noncanonical),
		cmocka_unit_test(test_unknown_and_malformed),
		cmocka_unit_test(test_count_limits),
		cmocka_unit_test(test_item_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
