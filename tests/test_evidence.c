/*
 * Unit tests for proto/evidence.c (tenderd/evidence.h): evidence of
 * equivocation, and blocks that carry it (proto/block.c).
 *
 * Real offences are signed here with validator keys from fixed seeds: two
 * votes of one type at one (height, round) for different values, and two
 * proposals at one (height, round). The encoding is checked against bytes
 * written by hand from the format in tenderd/evidence.h, decoding against
 * every way of breaking it (order of the sides, equal sides, fields out of
 * range, non-canonical forms, truncation), and td_evidence_verify against
 * forged signatures and signatures for another chain. A block with evidence
 * must commit to it through the evidence root, hold each offence once, and
 * refuse evidence that does not verify unless decoded as trusted.
 */
#define _GNU_SOURCE /* memmem */
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
#include "tenderd/json.h"
#include "tenderd/merkle.h"
#include "tenderd/msg.h"
#include "tenderd/record.h"
#include "tenderd/release.h"

static const uint8_t CHAIN[TD_HASH_LEN] = "tenderd-test"; /* a genesis hash, for signatures */
static const uint8_t OTHER[TD_HASH_LEN] = "another chain";
#define TIME_MS 1583712000000ULL
#define BLOCK_TIME 1583712060000ULL
#define HEIGHT 7
#define ROUND 2

struct fixture {
	uint8_t pk[2][32], sk[2][64];                           /* two validators */
	uint8_t a[TD_HASH_LEN], b[TD_HASH_LEN], c[TD_HASH_LEN]; /* three block hashes, a < b < c */
};

static void fixed_keypair(uint8_t pk[static 32], uint8_t sk[static 64], uint8_t first)
{
	uint8_t seed[crypto_sign_SEEDBYTES];
	for (size_t i = 0; i < sizeof(seed); i++)
		seed[i] = (uint8_t)(first + i);
	assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (sodium_init() < 0)
		return -1;
	fixed_keypair(f->pk[0], f->sk[0], 10);
	fixed_keypair(f->pk[1], f->sk[1], 20);
	memset(f->a, 0x11, TD_HASH_LEN);
	memset(f->b, 0x22, TD_HASH_LEN);
	memset(f->c, 0x33, TD_HASH_LEN);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

/* A side of a vote offence: validator v's vote of type for value (NULL: nil), signed for chain. */
static struct td_evidence_side vote_side(const struct fixture *f, int v, enum td_vote_type type, const uint8_t *value,
					 const uint8_t chain[static TD_HASH_LEN])
{
	struct td_evidence_side s = { .nil = value == NULL, .valid_round = -1 };
	if (value)
		memcpy(s.value, value, TD_HASH_LEN);
	td_vote_sign(s.sig, chain, type, HEIGHT, ROUND, value, f->sk[v]);
	return s;
}

/* A side of a proposal offence: validator v's proposal of value with valid round vr, in round. */
static struct td_evidence_side proposal_side(const struct fixture *f, int v, uint32_t round, int32_t vr,
					     const uint8_t value[static TD_HASH_LEN])
{
	struct td_evidence_side s = { .nil = false, .valid_round = vr };
	memcpy(s.value, value, TD_HASH_LEN);
	td_proposal_sign(s.sig, CHAIN, HEIGHT, round, vr, value, f->sk[v]);
	return s;
}

/* Validator v's double vote: type for x and for y (either NULL for nil), sides as given (unsealed). */
static struct td_evidence double_vote(const struct fixture *f, int v, enum td_vote_type type, const uint8_t *x,
				      const uint8_t *y)
{
	struct td_evidence ev = { .kind = TD_EVIDENCE_VOTES, .height = HEIGHT, .round = ROUND, .vote_type = type };
	memcpy(ev.pk, f->pk[v], TD_PUBKEY_LEN);
	ev.a = vote_side(f, v, type, x, CHAIN);
	ev.b = vote_side(f, v, type, y, CHAIN);
	return ev;
}

/* Validator v's double proposal in round: (x, vx) and (y, vy) (unsealed). */
static struct td_evidence double_proposal(const struct fixture *f, int v, uint32_t round, const uint8_t *x, int32_t vx,
					  const uint8_t *y, int32_t vy)
{
	struct td_evidence ev = { .kind = TD_EVIDENCE_PROPOSALS, .height = HEIGHT, .round = round };
	memcpy(ev.pk, f->pk[v], TD_PUBKEY_LEN);
	ev.a = proposal_side(f, v, round, vx, x);
	ev.b = proposal_side(f, v, round, vy, y);
	return ev;
}

/* The encoding of ev (caller frees). */
static uint8_t *encode(const struct td_evidence *ev, size_t *len)
{
	struct td_buf b;
	td_buf_init(&b);
	td_evidence_encode(&b, ev);
	uint8_t *p = td_buf_take(&b, len);
	td_buf_free(&b);
	return p;
}

static int decode(const uint8_t *p, size_t len)
{
	struct td_evidence ev;
	return td_evidence_decode(&ev, p, len);
}

static int verify(const struct td_evidence *ev, const uint8_t chain[static TD_HASH_LEN])
{
	char err[TD_ERRMSG_MAX] = "";
	int rc = td_evidence_verify(ev, chain, err, sizeof(err));
	if (rc != 0)
		assert_true(err[0] != '\0');
	return rc;
}

/* Appends a side written by hand: [bin32 value or nil, vr1, bin64 sig]. */
static uint8_t *w_side(uint8_t *w, const struct td_evidence_side *s, int vr1)
{
	*w++ = 0x93;
	if (s->nil) {
		*w++ = 0xc0;
	} else {
		*w++ = 0xc4;
		*w++ = 0x20;
		memcpy(w, s->value, 32);
		w += 32;
	}
	if (vr1 < 128) {
		*w++ = (uint8_t)vr1;
	} else {
		*w++ = 0xcc;
		*w++ = (uint8_t)vr1;
	}
	*w++ = 0xc4;
	*w++ = 0x40;
	memcpy(w, s->sig, 64);
	return w + 64;
}

static void expect_same_side(const struct td_evidence_side *x, const struct td_evidence_side *y)
{
	assert_int_equal(x->nil, y->nil);
	if (!x->nil)
		assert_memory_equal(x->value, y->value, TD_HASH_LEN);
	assert_int_equal(x->valid_round, y->valid_round);
	assert_memory_equal(x->sig, y->sig, TD_SIG_LEN);
}

static void expect_same(const struct td_evidence *x, const struct td_evidence *y)
{
	assert_int_equal(x->kind, y->kind);
	assert_memory_equal(x->pk, y->pk, TD_PUBKEY_LEN);
	assert_true(x->height == y->height);
	assert_int_equal(x->round, y->round);
	assert_int_equal(x->vote_type, y->vote_type);
	expect_same_side(&x->a, &y->a);
	expect_same_side(&x->b, &y->b);
	assert_memory_equal(x->id, y->id, TD_HASH_LEN);
}

/* Asserts that decoding gives back ev's fields, its id the hash of the bytes. */
static void expect_decodes_to(const uint8_t *p, size_t len, const struct td_evidence *ev)
{
	struct td_evidence got;
	uint8_t id[TD_HASH_LEN];
	assert_int_equal(td_evidence_decode(&got, p, len), 0);
	assert_int_equal(got.kind, ev->kind);
	assert_memory_equal(got.pk, ev->pk, TD_PUBKEY_LEN);
	assert_true(got.height == ev->height);
	assert_int_equal(got.round, ev->round);
	assert_int_equal(got.vote_type, ev->kind == TD_EVIDENCE_VOTES ? ev->vote_type : 0);
	const struct td_evidence_side *gs[2] = { &got.a, &got.b }, *ws[2] = { &ev->a, &ev->b };
	for (int i = 0; i < 2; i++) {
		assert_int_equal(gs[i]->nil, ws[i]->nil);
		if (!ws[i]->nil)
			assert_memory_equal(gs[i]->value, ws[i]->value, TD_HASH_LEN);
		assert_int_equal(gs[i]->valid_round, ws[i]->valid_round);
		assert_memory_equal(gs[i]->sig, ws[i]->sig, TD_SIG_LEN);
	}
	td_hash(id, p, len);
	assert_memory_equal(got.id, id, TD_HASH_LEN);
	assert_memory_equal(got.id, ev->id, TD_HASH_LEN);
}

/* ---- encoding ---- */

static void test_double_vote_roundtrip(void **state)
{
	struct fixture *f = *state;
	/* Signed b first, a second: sealing orders the sides (a's value sorts first). */
	struct td_evidence ev = double_vote(f, 0, TD_VOTE_PREVOTE, f->b, f->a);
	struct td_evidence_side first = ev.b, second = ev.a;
	td_evidence_seal(&ev);
	expect_same_side(&ev.a, &first);
	expect_same_side(&ev.b, &second);

	/* [1, bin32 pk, 7, 2, 1 (PREVOTE), [a, 0, sig], [b, 0, sig]] by hand */
	uint8_t want[1 + 1 + 34 + 1 + 1 + 1 + 2 * (1 + 34 + 1 + 66)], *w = want;
	*w++ = 0x97;
	*w++ = 0x01;
	*w++ = 0xc4;
	*w++ = 0x20;
	memcpy(w, f->pk[0], 32);
	w += 32;
	*w++ = HEIGHT;
	*w++ = ROUND;
	*w++ = 0x01;
	w = w_side(w, &first, 0);
	w = w_side(w, &second, 0);
	assert_int_equal(w - want, sizeof(want));
	size_t len;
	uint8_t *p = encode(&ev, &len);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(p, want, len);
	assert_true(len <= TD_EVIDENCE_LEN_MAX);
	uint8_t id[TD_HASH_LEN];
	td_hash(id, want, sizeof(want));
	assert_memory_equal(ev.id, id, TD_HASH_LEN);
	expect_decodes_to(p, len, &ev);
	assert_int_equal(verify(&ev, CHAIN), 0);
	free(p);

	/* Sealing twice changes nothing; sealing the other order gives the same id. */
	struct td_evidence again = ev;
	td_evidence_seal(&again);
	expect_same(&again, &ev);
	struct td_evidence swapped = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->b);
	td_evidence_seal(&swapped);
	assert_memory_equal(swapped.id, ev.id, TD_HASH_LEN);

	/* A PRECOMMIT for a value and a nil PRECOMMIT: the nil side first (c0 sorts before c4). */
	ev = double_vote(f, 1, TD_VOTE_PRECOMMIT, f->c, NULL);
	first = ev.b;
	second = ev.a;
	td_evidence_seal(&ev);
	assert_true(ev.a.nil);
	assert_false(ev.b.nil);
	w = want;
	*w++ = 0x97;
	*w++ = 0x01;
	*w++ = 0xc4;
	*w++ = 0x20;
	memcpy(w, f->pk[1], 32);
	w += 32;
	*w++ = HEIGHT;
	*w++ = ROUND;
	*w++ = 0x02;
	w = w_side(w, &first, 0);
	w = w_side(w, &second, 0);
	p = encode(&ev, &len);
	assert_int_equal(len, (size_t)(w - want));
	assert_memory_equal(p, want, len);
	expect_decodes_to(p, len, &ev);
	assert_int_equal(verify(&ev, CHAIN), 0);
	free(p);
}

static void test_double_proposal_roundtrip(void **state)
{
	struct fixture *f = *state;
	/* Two blocks proposed in one round. */
	struct td_evidence ev = double_proposal(f, 1, ROUND, f->c, -1, f->a, -1);
	struct td_evidence_side first = ev.b, second = ev.a;
	td_evidence_seal(&ev);
	expect_same_side(&ev.a, &first);
	/* [2, bin32 pk, 7, 2, 0, [a, 0, sig], [c, 0, sig]] by hand */
	uint8_t want[256], *w = want;
	*w++ = 0x97;
	*w++ = 0x02;
	*w++ = 0xc4;
	*w++ = 0x20;
	memcpy(w, f->pk[1], 32);
	w += 32;
	*w++ = HEIGHT;
	*w++ = ROUND;
	*w++ = 0x00;
	w = w_side(w, &first, 0);
	w = w_side(w, &second, 0);
	size_t len;
	uint8_t *p = encode(&ev, &len);
	assert_int_equal(len, (size_t)(w - want));
	assert_memory_equal(p, want, len);
	expect_decodes_to(p, len, &ev);
	assert_int_equal(verify(&ev, CHAIN), 0);
	free(p);

	/* One block proposed twice with different valid rounds (vr + 1 = 0 and 2) is two messages too. */
	ev = double_proposal(f, 0, ROUND, f->b, 1, f->b, -1);
	first = ev.b;
	second = ev.a;
	td_evidence_seal(&ev);
	assert_int_equal(ev.a.valid_round, -1);
	assert_int_equal(ev.b.valid_round, 1);
	p = encode(&ev, &len);
	w = want + 39; /* after [2, pk, 7, 2, 0 */
	memcpy(want + 4, f->pk[0], 32);
	w = w_side(w, &first, 0);
	w = w_side(w, &second, 2);
	assert_int_equal(len, (size_t)(w - want));
	assert_memory_equal(p, want, len);
	expect_decodes_to(p, len, &ev);
	assert_int_equal(verify(&ev, CHAIN), 0);
	free(p);

	/* A proposal's vote type is 0 whatever the struct says. */
	ev.vote_type = TD_VOTE_PRECOMMIT;
	uint8_t *q = encode(&ev, &len);
	assert_int_equal(q[38], 0x00);
	free(q);
}

/*
 * The order of the sides is by encoding, shorter first, then bytewise (as
 * proto/evidence.c's side_cmp does). Where the two disagree, here a valid
 * round of 127 (vr + 1 = 128, cc 80: one byte longer) on the side with the
 * smaller value, the shorter side comes first.
 */
static void test_side_order(void **state)
{
	struct fixture *f = *state;
	struct td_evidence ev = double_proposal(f, 0, 200, f->a, 127, f->b, 4);
	td_evidence_seal(&ev);
	assert_memory_equal(ev.a.value, f->b, TD_HASH_LEN);
	assert_int_equal(ev.a.valid_round, 4);
	assert_int_equal(ev.b.valid_round, 127);
	size_t len;
	uint8_t *p = encode(&ev, &len);
	assert_int_equal(len, 1 + 1 + 34 + 1 + 2 + 1 + 2 * 102 + 1);
	expect_decodes_to(p, len, &ev);
	assert_int_equal(verify(&ev, CHAIN), 0);
	free(p);
	/* The other order is refused. */
	struct td_evidence_side t = ev.a;
	ev.a = ev.b;
	ev.b = t;
	p = encode(&ev, &len);
	assert_int_equal(decode(p, len), TD_EINVAL);
	free(p);
}

/* ---- refusals ---- */

static void test_swapped_and_same_sides_refused(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *p;
	struct td_evidence ev = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->b), bad;
	td_evidence_seal(&ev);
	/* Sides swapped: not canonical. */
	bad = ev;
	bad.a = ev.b;
	bad.b = ev.a;
	p = encode(&bad, &len);
	assert_int_equal(decode(p, len), TD_EINVAL);
	free(p);
	/* The nil side second. */
	struct td_evidence nil = double_vote(f, 0, TD_VOTE_PRECOMMIT, NULL, f->a);
	td_evidence_seal(&nil);
	bad = nil;
	bad.a = nil.b;
	bad.b = nil.a;
	p = encode(&bad, &len);
	assert_int_equal(decode(p, len), TD_EINVAL);
	free(p);
	/* The same side twice. */
	bad = ev;
	bad.b = ev.a;
	p = encode(&bad, &len);
	assert_int_equal(decode(p, len), TD_EINVAL);
	free(p);
	bad = nil;
	bad.b = nil.a;
	p = encode(&bad, &len);
	assert_int_equal(decode(p, len), TD_EINVAL);
	free(p);
	/* The same message with two signatures (one forged): it decodes, sides differ, but it proves nothing. */
	bad = ev;
	bad.b = ev.a;
	bad.b.sig[0] ^= 0x01;
	td_evidence_seal(&bad);
	p = encode(&bad, &len);
	assert_int_equal(decode(p, len), 0);
	free(p);
	assert_int_equal(verify(&bad, CHAIN), TD_EINVAL);
	bad = nil;
	bad.a = nil.b;
	bad.b = nil.b;
	bad.b.sig[63] ^= 0x80;
	td_evidence_seal(&bad);
	assert_int_equal(verify(&bad, CHAIN), TD_EINVAL);
	/* A proposal signed twice for the same (value, valid round): the same message. */
	struct td_evidence pr = double_proposal(f, 0, ROUND, f->a, -1, f->a, -1);
	assert_memory_equal(pr.a.sig, pr.b.sig, TD_SIG_LEN); /* Ed25519 is deterministic */
	td_evidence_seal(&pr);
	p = encode(&pr, &len);
	assert_int_equal(decode(p, len), TD_EINVAL);
	free(p);
	assert_int_equal(verify(&pr, CHAIN), TD_EINVAL);
}

static void test_verify_refusals(void **state)
{
	struct fixture *f = *state;
	struct td_evidence votes = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->b);
	struct td_evidence props = double_proposal(f, 1, ROUND, f->a, -1, f->b, 0);
	td_evidence_seal(&votes);
	td_evidence_seal(&props);
	struct td_evidence *evs[2] = { &votes, &props };
	for (int k = 0; k < 2; k++) {
		struct td_evidence ev = *evs[k];
		assert_int_equal(verify(&ev, CHAIN), 0);
		/* Another chain's hash: OTHER, and CHAIN with any one bit changed. */
		assert_int_equal(verify(&ev, OTHER), TD_ESIG);
		uint8_t chain[TD_HASH_LEN];
		for (size_t bit = 0; bit < 8 * TD_HASH_LEN; bit++) {
			memcpy(chain, CHAIN, TD_HASH_LEN);
			chain[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(verify(&ev, chain), TD_ESIG);
		}
		/* A forged signature on either side: every single bit. */
		for (size_t bit = 0; bit < 8 * TD_SIG_LEN; bit++) {
			ev.a.sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
			ev.a.sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			ev.b.sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
			ev.b.sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		/* Another validator's key, height, round; a side's value or valid round changed. */
		ev = *evs[k];
		memcpy(ev.pk, f->pk[1 - k], TD_PUBKEY_LEN);
		assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
		ev = *evs[k];
		ev.height++;
		assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
		ev = *evs[k];
		ev.round--;
		assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
		ev = *evs[k];
		ev.a.value[31] ^= 1;
		assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
		if (k == 1) { /* (a vote's valid round is not signed: decoding holds it at none) */
			ev = *evs[k];
			ev.b.valid_round++;
			assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
		}
		/* Signatures of one kind passed off as the other. */
		ev = *evs[k];
		ev.kind = k == 0 ? TD_EVIDENCE_PROPOSALS : TD_EVIDENCE_VOTES;
		ev.vote_type = TD_VOTE_PREVOTE;
		assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
	}
	/* A prevote pair is no precommit pair. */
	struct td_evidence ev = votes;
	ev.vote_type = TD_VOTE_PRECOMMIT;
	assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
	/* Sides signed for two different chains. */
	ev = votes;
	ev.b = vote_side(f, 0, TD_VOTE_PREVOTE, f->c, OTHER);
	td_evidence_seal(&ev);
	assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
	assert_int_equal(verify(&ev, OTHER), TD_ESIG);
	/* Votes by two validators are no offence of either. */
	ev = votes;
	ev.b = vote_side(f, 1, TD_VOTE_PREVOTE, f->c, CHAIN);
	td_evidence_seal(&ev);
	assert_int_equal(verify(&ev, CHAIN), TD_ESIG);
	/* The evidence survives its encoding: what decodes verifies. */
	size_t len;
	uint8_t *p = encode(&props, &len);
	struct td_evidence got;
	assert_int_equal(td_evidence_decode(&got, p, len), 0);
	assert_int_equal(verify(&got, CHAIN), 0);
	free(p);
}

/* Writes [kind, bin32 pk, height, round, type, side, side] with the given raw pieces. */
static size_t w_evidence(uint8_t *out, const char *head, const struct td_evidence_side *a, int avr1,
			 const struct td_evidence_side *b, int bvr1)
{
	char digits[256];
	size_t k = 0;
	for (const char *c = head; *c; c++)
		if (*c != ' ')
			digits[k++] = *c;
	assert_true(k % 2 == 0 && k < sizeof(digits));
	const size_t hl = k / 2;
	assert_true(td_unhex(out, hl, digits, k));
	uint8_t *w = w_side(out + hl, a, avr1);
	w = w_side(w, b, bvr1);
	return (size_t)(w - out);
}

#define PK32 " c420 0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526272829 " /* any 32 bytes */

static void test_decode_refusals(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[600];
	size_t len;
	struct td_evidence v = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->b);
	struct td_evidence_side nil = vote_side(f, 0, TD_VOTE_PREVOTE, NULL, CHAIN);
	td_evidence_seal(&v);
	/* Controls: well formed vote and proposal evidence decode (signatures are not checked here). */
	len = w_evidence(buf, "97 01" PK32 "07 02 01", &v.a, 0, &v.b, 0);
	assert_int_equal(decode(buf, len), 0);
	len = w_evidence(buf, "97 02" PK32 "07 02 00", &v.a, 0, &v.b, 0);
	assert_int_equal(decode(buf, len), 0);
	len = w_evidence(buf, "97 02" PK32 "07 02 00", &v.a, 2, &v.b, 1);
	assert_int_equal(decode(buf, len), 0);
	len = w_evidence(buf, "97 01" PK32 "07 02 02", &nil, 0, &v.a, 0);
	assert_int_equal(decode(buf, len), 0);
	static const struct {
		const char *what, *head;
		bool a_nil;
		int avr1, bvr1;
	} cases[] = {
		{ "kind 0", "97 00" PK32 "07 02 01", false, 0, 0 },
		{ "kind 3", "97 03" PK32 "07 02 00", false, 0, 0 },
		{ "kind as uint8", "97 cc01" PK32 "07 02 01", false, 0, 0 },
		{ "kind nil", "97 c0" PK32 "07 02 01", false, 0, 0 },
		{ "vote type 0", "97 01" PK32 "07 02 00", false, 0, 0 },
		{ "vote type 3", "97 01" PK32 "07 02 03", false, 0, 0 },
		{ "vote with a valid round", "97 01" PK32 "07 02 01", false, 0, 1 },
		{ "proposal with a vote type", "97 02" PK32 "07 02 01", false, 0, 0 },
		{ "proposal of nothing", "97 02" PK32 "07 02 00", true, 0, 0 },
		{ "proposal with a valid round equal to the round", "97 02" PK32 "07 02 00", false, 0, 3 },
		{ "proposal with a valid round above the round", "97 02" PK32 "07 02 00", false, 0, 200 },
		{ "round past int32", "97 01" PK32 "07 ce80000000 01", false, 0, 0 },
		{ "height as uint64", "97 01" PK32 "cf0000000000000007 02 01", false, 0, 0 },
		{ "round as uint16", "97 01" PK32 "07 cd0002 01", false, 0, 0 },
		{ "height -1", "97 01" PK32 "ff 02 01", false, 0, 0 },
		{ "key of 31 bytes",
		  "97 01 c41f 0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728 07 02 01", false, 0, 0 },
		{ "key as bin16",
		  "97 01 c50020 0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526272829 07 02 01", false, 0,
		  0 },
		{ "key nil", "97 01 c0 07 02 01", false, 0, 0 },
		{ "array of 7 as array16", "dc0007 01" PK32 "07 02 01", false, 0, 0 },
		{ "array of 8", "98 01" PK32 "07 02 01", false, 0, 0 },
		{ "array of 6", "96 01" PK32 "07 02", false, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = w_evidence(buf, cases[i].head, cases[i].a_nil ? &nil : &v.a, cases[i].avr1, &v.b, cases[i].bvr1);
		if (decode(buf, len) == 0)
			print_error("accepted: %s\n", cases[i].what);
		assert_int_equal(decode(buf, len), TD_EINVAL);
	}
	/* Sides: not an array of 3, a value of 31 or 33 bytes, a signature of 63, a value as a string. */
	size_t good = w_evidence(buf, "97 01" PK32 "07 02 01", &v.a, 0, &v.b, 0);
	const size_t side_b = good - 102;
	static const struct {
		const char *what;
		size_t at;
		uint8_t from, to;
	} edits[] = {
		{ "side of 4", 0, 0x93, 0x94 },          { "side of 2", 0, 0x93, 0x92 },
		{ "value of 31", 2, 0x20, 0x1f },        { "value of 33", 2, 0x20, 0x21 },
		{ "value as str8", 1, 0xc4, 0xd9 },      { "signature of 63", 37, 0x40, 0x3f },
		{ "signature as str8", 36, 0xc4, 0xd9 }, { "vr1 as int8", 35, 0x00, 0xd0 },
	};
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		good = w_evidence(buf, "97 01" PK32 "07 02 01", &v.a, 0, &v.b, 0);
		assert_int_equal(buf[side_b + edits[i].at], edits[i].from);
		buf[side_b + edits[i].at] = edits[i].to;
		if (decode(buf, good) == 0)
			print_error("accepted: %s\n", edits[i].what);
		assert_int_not_equal(decode(buf, good), 0);
	}
	/* Truncated at every length, a trailing byte, over TD_EVIDENCE_LEN_MAX. */
	good = w_evidence(buf, "97 01" PK32 "07 02 01", &v.a, 0, &v.b, 0);
	for (size_t k = 0; k < good; k++)
		assert_int_equal(decode(buf, k), TD_EINVAL);
	buf[good] = 0xc0;
	assert_int_equal(decode(buf, good + 1), TD_EINVAL);
	uint8_t *big = calloc(1, TD_EVIDENCE_LEN_MAX + 1);
	memcpy(big, buf, good);
	assert_int_equal(decode(big, TD_EVIDENCE_LEN_MAX + 1), TD_EINVAL);
	free(big);
	/* A large round and valid round that fit: accepted. */
	len = w_evidence(buf, "97 02" PK32 "07 ce7fffffff 00", &v.a, 0, &v.b, 200);
	assert_int_equal(decode(buf, len), 0);
}

static void test_key(void **state)
{
	struct fixture *f = *state;
	struct td_evidence ev = double_vote(f, 1, TD_VOTE_PRECOMMIT, f->a, f->b);
	ev.height = 0x0102030405060708ULL;
	ev.round = 0x0a0b0c0d;
	uint8_t key[TD_EVIDENCE_KEY_LEN], want[TD_EVIDENCE_KEY_LEN];
	assert_int_equal(TD_EVIDENCE_KEY_LEN, 46);
	td_evidence_key(key, &ev);
	want[0] = 0x01;
	memcpy(want + 1, f->pk[1], 32);
	static const uint8_t tail[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0a, 0x0b, 0x0c, 0x0d, 0x02 };
	memcpy(want + 33, tail, sizeof(tail));
	assert_memory_equal(key, want, sizeof(key));
	/* A proposal offence: kind 2, vote type 0 whatever the struct holds. */
	ev.kind = TD_EVIDENCE_PROPOSALS;
	td_evidence_key(key, &ev);
	want[0] = 0x02;
	want[45] = 0x00;
	assert_memory_equal(key, want, sizeof(key));
	/* The sides do not enter the key: two pairs for one offence share it, not their ids. */
	struct td_evidence x = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->b);
	struct td_evidence y = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->c);
	struct td_evidence z = double_vote(f, 0, TD_VOTE_PRECOMMIT, f->a, f->b);
	td_evidence_seal(&x);
	td_evidence_seal(&y);
	td_evidence_seal(&z);
	uint8_t kx[TD_EVIDENCE_KEY_LEN], ky[TD_EVIDENCE_KEY_LEN], kz[TD_EVIDENCE_KEY_LEN];
	td_evidence_key(kx, &x);
	td_evidence_key(ky, &y);
	td_evidence_key(kz, &z);
	assert_memory_equal(kx, ky, sizeof(kx));
	assert_memory_not_equal(x.id, y.id, TD_HASH_LEN);
	/* Another vote type is another offence. */
	assert_memory_not_equal(kx, kz, sizeof(kx));
	assert_int_equal(kz[45], TD_VOTE_PRECOMMIT);
	assert_int_equal(kx[45], TD_VOTE_PREVOTE);
}

/* ---- blocks with evidence ---- */

static struct td_record *sign_sample(const char *name, const uint8_t sk[static 64])
{
	char path[512], err[TD_ERRMSG_MAX] = "";
	static char buf[1 << 16];
	snprintf(path, sizeof(path), "%s/samples/%s", TD_TEST_DATA, name);
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	size_t n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	json_t *frag = td_json_load(buf, n, err, sizeof(err));
	assert_non_null(frag);
	json_t *r = td_release_build(frag, TD_KIND_TENDER, NULL, TIME_MS, "Test Agency", err, sizeof(err));
	assert_non_null(r);
	struct td_record *rec;
	assert_int_equal(td_record_sign(&rec, TD_KIND_TENDER, r, TIME_MS, NULL, CHAIN, sk, err, sizeof(err)), 0);
	json_decref(r);
	json_decref(frag);
	return rec;
}

/* A block at height 9 with one record (if with_record) and the n evidence items of evs (copied). */
static struct td_block *block_with(const struct fixture *f, bool with_record, const struct td_evidence *evs, uint32_t n)
{
	static const uint8_t prev[TD_HASH_LEN] = { 1 }, next[TD_HASH_LEN] = { 2 };
	struct td_record **recs = calloc(1, sizeof(*recs));
	if (with_record)
		recs[0] = sign_sample("tender-jeju.json", f->sk[1]);
	struct td_block *blk = td_block_new(9, prev, BLOCK_TIME, f->pk[0], next, recs, with_record ? 1 : 0);
	struct td_evidence *copy = calloc(n ? n : 1, sizeof(*copy));
	if (n)
		memcpy(copy, evs, n * sizeof(*copy));
	td_block_set_evidence(blk, copy, n);
	return blk;
}

static int block_decode(const uint8_t *p, size_t len, const uint8_t chain[static TD_HASH_LEN], bool trusted, char *err,
			size_t errlen)
{
	struct td_block *blk = (struct td_block *)1;
	int rc = td_block_decode(&blk, p, len, chain, trusted, err, errlen);
	if (rc == 0) {
		td_block_free(blk);
		return 0;
	}
	assert_null(blk);
	assert_true(err[0] != '\0');
	return rc;
}

static void test_block_with_evidence(void **state)
{
	struct fixture *f = *state;
	struct td_evidence evs[2];
	evs[0] = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->b);
	evs[1] = double_proposal(f, 1, ROUND, f->b, -1, f->c, -1);
	td_evidence_seal(&evs[0]);
	td_evidence_seal(&evs[1]);
	struct td_block *plain = block_with(f, true, NULL, 0), *blk = block_with(f, true, evs, 2);
	char err[TD_ERRMSG_MAX] = "";

	/* The header commits to the evidence: count, RFC 6962 root over the ids, and so the hash. */
	assert_int_equal(blk->hdr.n_evidence, 2);
	uint8_t ids[2][TD_HASH_LEN], root[TD_HASH_LEN], l0[TD_HASH_LEN], l1[TD_HASH_LEN], hash[TD_HASH_LEN];
	memcpy(ids[0], evs[0].id, TD_HASH_LEN);
	memcpy(ids[1], evs[1].id, TD_HASH_LEN);
	td_merkle_root(root, (const uint8_t(*)[TD_HASH_LEN])ids, 2);
	assert_memory_equal(blk->hdr.evidence_root, root, TD_HASH_LEN);
	uint8_t in[1 + 2 * TD_HASH_LEN];
	in[0] = 0x00;
	memcpy(in + 1, ids[0], TD_HASH_LEN);
	crypto_generichash(l0, TD_HASH_LEN, in, 1 + TD_HASH_LEN, NULL, 0);
	memcpy(in + 1, ids[1], TD_HASH_LEN);
	crypto_generichash(l1, TD_HASH_LEN, in, 1 + TD_HASH_LEN, NULL, 0);
	in[0] = 0x01;
	memcpy(in + 1, l0, TD_HASH_LEN);
	memcpy(in + 1 + TD_HASH_LEN, l1, TD_HASH_LEN);
	crypto_generichash(hash, TD_HASH_LEN, in, sizeof(in), NULL, 0);
	assert_memory_equal(root, hash, TD_HASH_LEN);
	struct td_buf b;
	td_buf_init(&b);
	td_header_encode(&b, &blk->hdr);
	td_hash(hash, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
	assert_memory_equal(blk->hash, hash, TD_HASH_LEN);
	assert_memory_not_equal(blk->hash, plain->hash, TD_HASH_LEN);
	assert_memory_equal(blk->hdr.records_root, plain->hdr.records_root, TD_HASH_LEN);
	/* Evidence in the other order: another root, another block (both are valid blocks). */
	struct td_evidence rev[2] = { evs[1], evs[0] };
	struct td_block *other = block_with(f, true, rev, 2);
	assert_memory_not_equal(other->hdr.evidence_root, blk->hdr.evidence_root, TD_HASH_LEN);
	td_block_free(other);

	/* The encoding: [header, [record], [bin ev0, bin ev1]], the items being the evidence encodings. */
	uint8_t *p, *e0, *e1;
	size_t len, l0len, l1len;
	td_block_encode(blk, &p, &len);
	assert_int_equal(td_block_encoded_len(blk), len);
	e0 = encode(&evs[0], &l0len);
	e1 = encode(&evs[1], &l1len);
	assert_true(l0len < 256 && l1len < 256);
	const size_t tail = 1 + 2 + l0len + 2 + l1len;
	assert_int_equal(p[0], 0x93);
	assert_int_equal(p[len - tail], 0x92);
	assert_int_equal(p[len - tail + 1], 0xc4);
	assert_int_equal(p[len - tail + 2], l0len);
	assert_memory_equal(p + len - tail + 3, e0, l0len);
	assert_int_equal(p[len - l1len - 2], 0xc4);
	assert_int_equal(p[len - l1len - 1], l1len);
	assert_memory_equal(p + len - l1len, e1, l1len);

	/* Round trip, verified and trusted. */
	struct td_block *got;
	int rc = td_block_decode(&got, p, len, CHAIN, false, err, sizeof(err));
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	assert_memory_equal(got->hash, blk->hash, TD_HASH_LEN);
	assert_memory_equal(&got->hdr, &blk->hdr, sizeof(got->hdr));
	assert_int_equal(got->hdr.n_evidence, 2);
	for (int i = 0; i < 2; i++)
		expect_same(&got->evidence[i], &evs[i]);
	uint8_t *q;
	size_t qlen;
	td_block_encode(got, &q, &qlen);
	assert_int_equal(qlen, len);
	assert_memory_equal(q, p, len);
	free(q);
	td_block_free(got);
	assert_int_equal(block_decode(p, len, CHAIN, true, err, sizeof(err)), 0);
	/* On another chain neither the record nor the evidence verifies. */
	assert_int_equal(block_decode(p, len, OTHER, false, err, sizeof(err)), TD_ESIG);

	/* The proposal of the block carries the evidence bytes; they decode to the same ids. */
	uint8_t sig[TD_SIG_LEN] = { 0 };
	struct td_msg m;
	td_buf_init(&b);
	td_msg_proposal(&b, blk, 0, -1, sig);
	assert_int_equal(td_msg_decode(&m, (const uint8_t *)b.sb.data, b.sb.size), 0);
	assert_memory_equal(m.hash, blk->hash, TD_HASH_LEN);
	assert_int_equal(m.n_items, 2);
	for (uint32_t i = 0; i < 2; i++) {
		struct td_evidence ev;
		assert_int_equal(td_evidence_decode(&ev, m.items[i].p, m.items[i].len), 0);
		assert_memory_equal(ev.id, evs[i].id, TD_HASH_LEN);
	}
	td_msg_free(&m);
	td_buf_free(&b);

	/* Taking the evidence out gives back the plain block. */
	td_block_set_evidence(blk, NULL, 0);
	assert_int_equal(blk->hdr.n_evidence, 0);
	assert_memory_equal(blk->hash, plain->hash, TD_HASH_LEN);
	assert_memory_equal(&blk->hdr, &plain->hdr, sizeof(blk->hdr));

	free(e0);
	free(e1);
	free(p);
	td_block_free(blk);
	td_block_free(plain);

	/* A block of evidence alone: on another chain, refused for the evidence. */
	blk = block_with(f, false, evs, 2);
	td_block_encode(blk, &p, &len);
	assert_int_equal(block_decode(p, len, CHAIN, false, err, sizeof(err)), 0);
	assert_int_equal(block_decode(p, len, OTHER, false, err, sizeof(err)), TD_ESIG);
	assert_non_null(strstr(err, "evidence"));
	assert_int_equal(block_decode(p, len, OTHER, true, err, sizeof(err)), 0);
	free(p);
	td_block_free(blk);
}

static void test_block_duplicate_offence(void **state)
{
	struct fixture *f = *state;
	char err[TD_ERRMSG_MAX] = "";
	uint8_t *p;
	size_t len;
	struct td_evidence evs[3];
	evs[0] = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->b);
	evs[1] = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->c);   /* the same offence, other messages */
	evs[2] = double_vote(f, 0, TD_VOTE_PRECOMMIT, f->a, f->b); /* another offence */
	for (int i = 0; i < 3; i++)
		td_evidence_seal(&evs[i]);
	/* Each alone, and two different offences, are fine. */
	struct td_evidence ok[2] = { evs[0], evs[2] };
	struct td_block *blk = block_with(f, false, ok, 2);
	td_block_encode(blk, &p, &len);
	assert_int_equal(block_decode(p, len, CHAIN, false, err, sizeof(err)), 0);
	free(p);
	td_block_free(blk);
	/* One offence twice, by other messages or by the very same evidence: refused, even trusted. */
	struct td_evidence dup[2][2] = { { evs[0], evs[1] }, { evs[2], evs[2] } };
	for (int i = 0; i < 2; i++) {
		blk = block_with(f, false, dup[i], 2);
		td_block_encode(blk, &p, &len);
		assert_int_equal(block_decode(p, len, CHAIN, false, err, sizeof(err)), TD_EINVAL);
		assert_non_null(strstr(err, "repeats"));
		assert_int_equal(block_decode(p, len, CHAIN, true, err, sizeof(err)), TD_EINVAL);
		free(p);
		td_block_free(blk);
	}
	/* Also when other evidence stands between them. */
	struct td_evidence three[3] = { evs[0], evs[2], evs[1] };
	blk = block_with(f, false, three, 3);
	td_block_encode(blk, &p, &len);
	assert_int_equal(block_decode(p, len, CHAIN, true, err, sizeof(err)), TD_EINVAL);
	free(p);
	td_block_free(blk);
}

static void test_block_tampered_evidence(void **state)
{
	struct fixture *f = *state;
	char err[TD_ERRMSG_MAX] = "";
	uint8_t *p, *e;
	size_t len, elen;
	struct td_evidence ev = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->b);
	td_evidence_seal(&ev);

	/* Bytes changed in a sealed block: the evidence root no longer matches, trusted or not. */
	struct td_block *blk = block_with(f, true, &ev, 1);
	td_block_encode(blk, &p, &len);
	e = encode(&ev, &elen);
	uint8_t *at = memmem(p, len, e, elen);
	assert_non_null(at);
	at[elen - 1] ^= 0x01; /* the last byte of side b's signature */
	assert_int_equal(block_decode(p, len, CHAIN, false, err, sizeof(err)), TD_ESIG);
	assert_int_equal(block_decode(p, len, CHAIN, true, err, sizeof(err)), TD_EINVAL);
	at[elen - 1] ^= 0x01;
	/* A changed height: the signatures fail, and trusted the root. */
	assert_int_equal(at[36], HEIGHT);
	at[36] = HEIGHT + 1;
	assert_int_equal(block_decode(p, len, CHAIN, false, err, sizeof(err)), TD_ESIG);
	assert_int_equal(block_decode(p, len, CHAIN, true, err, sizeof(err)), TD_EINVAL);
	at[36] = HEIGHT;
	/* Item bytes that are no evidence (the first side's array header): refused either way. */
	assert_int_equal(at[39], 0x93);
	at[39] = 0x94;
	assert_int_equal(block_decode(p, len, CHAIN, false, err, sizeof(err)), TD_EINVAL);
	assert_int_equal(block_decode(p, len, CHAIN, true, err, sizeof(err)), TD_EINVAL);
	at[39] = 0x93;
	assert_int_equal(block_decode(p, len, CHAIN, false, err, sizeof(err)), 0);
	/* Every single-bit change of the evidence bytes is refused when verifying. */
	const size_t off = (size_t)(at - p);
	for (size_t i = 0; i < elen; i++) {
		for (int bit = 0; bit < 8; bit++) {
			p[off + i] ^= (uint8_t)(1u << bit);
			int rc = block_decode(p, len, CHAIN, false, err, sizeof(err));
			if (rc == 0)
				print_error("accepted with evidence byte %zu ^ %02x\n", i, 1u << bit);
			assert_int_not_equal(rc, 0);
			p[off + i] ^= (uint8_t)(1u << bit);
		}
	}
	free(p);
	td_block_free(blk);

	/* A block built over forged evidence (its root is right): refused unless trusted. */
	struct td_evidence forged = ev;
	forged.b.sig[5] ^= 0x20;
	td_evidence_seal(&forged);
	blk = block_with(f, true, &forged, 1);
	td_block_encode(blk, &p, &len);
	assert_int_equal(block_decode(p, len, CHAIN, false, err, sizeof(err)), TD_ESIG);
	assert_non_null(strstr(err, "evidence 0"));
	assert_int_equal(block_decode(p, len, CHAIN, true, err, sizeof(err)), 0);
	free(p);
	td_block_free(blk);
	/* Likewise evidence that proves nothing (the same message twice), and evidence for another chain. */
	struct td_evidence same = ev;
	same.b = ev.a;
	same.b.sig[0] ^= 1;
	td_evidence_seal(&same);
	blk = block_with(f, false, &same, 1);
	td_block_encode(blk, &p, &len);
	assert_int_not_equal(block_decode(p, len, CHAIN, false, err, sizeof(err)), 0);
	assert_int_equal(block_decode(p, len, CHAIN, true, err, sizeof(err)), 0);
	free(p);
	td_block_free(blk);
	struct td_evidence elsewhere = ev;
	elsewhere.a = vote_side(f, 0, TD_VOTE_PREVOTE, f->a, OTHER);
	elsewhere.b = vote_side(f, 0, TD_VOTE_PREVOTE, f->b, OTHER);
	td_evidence_seal(&elsewhere);
	blk = block_with(f, false, &elsewhere, 1);
	td_block_encode(blk, &p, &len);
	assert_int_equal(block_decode(p, len, CHAIN, false, err, sizeof(err)), TD_ESIG);
	assert_int_equal(block_decode(p, len, OTHER, false, err, sizeof(err)), 0);
	free(p);
	td_block_free(blk);
	free(e);
}

/* Evidence items in a block: canonical, counted, bounded. */
static void test_block_evidence_shape(void **state)
{
	struct fixture *f = *state;
	char err[TD_ERRMSG_MAX] = "";
	struct td_evidence ev = double_vote(f, 0, TD_VOTE_PREVOTE, f->a, f->b);
	td_evidence_seal(&ev);
	struct td_block *blk = block_with(f, false, &ev, 1);
	size_t elen;
	uint8_t *e = encode(&ev, &elen);
	struct td_buf b;
	uint8_t *p;
	size_t len;

	/* [header, [], [item]] written with the block's header: control, then variants. */
	for (int variant = 0; variant < 6; variant++) {
		struct td_block_header h = blk->hdr;
		td_buf_init(&b);
		td_enc_array(&b, 3);
		if (variant == 4)
			h.n_evidence = 0; /* header counts none */
		td_header_encode(&b, &h);
		td_enc_array(&b, 0);
		if (variant == 1) { /* the item as a string */
			td_enc_array(&b, 1);
			msgpack_pack_str_with_body(&b.pk, e, elen);
		} else if (variant == 2) { /* the item as bin16 */
			td_enc_array(&b, 1);
			td_enc_raw(&b, (const uint8_t *)"\xc5\x00", 2);
			uint8_t n = (uint8_t)elen;
			td_enc_raw(&b, &n, 1);
			td_enc_raw(&b, e, elen);
		} else if (variant == 3) { /* the item as an array */
			td_enc_array(&b, 1);
			td_enc_raw(&b, e, elen);
		} else if (variant == 5) { /* the items as array16 */
			td_enc_raw(&b, (const uint8_t *)"\xdc\x00\x01", 3);
			td_enc_bin(&b, e, elen);
		} else {
			td_enc_array(&b, 1);
			td_enc_bin(&b, e, elen);
		}
		p = td_buf_take(&b, &len);
		td_buf_free(&b);
		int rc = block_decode(p, len, CHAIN, true, err, sizeof(err));
		if ((rc == 0) != (variant == 0))
			print_error("variant %d: %d %s\n", variant, rc, err);
		assert_int_equal(rc == 0, variant == 0);
		free(p);
	}
	/* More than TD_BLOCK_EVIDENCE_MAX items: refused on the header's count. */
	struct td_block_header h = blk->hdr;
	h.n_evidence = TD_BLOCK_EVIDENCE_MAX + 1;
	td_buf_init(&b);
	td_enc_array(&b, 3);
	td_header_encode(&b, &h);
	td_enc_array(&b, 0);
	td_enc_array(&b, TD_BLOCK_EVIDENCE_MAX + 1);
	for (uint32_t i = 0; i <= TD_BLOCK_EVIDENCE_MAX; i++)
		td_enc_bin(&b, e, elen);
	p = td_buf_take(&b, &len);
	td_buf_free(&b);
	assert_int_equal(block_decode(p, len, CHAIN, true, err, sizeof(err)), TD_EINVAL);
	free(p);
	/* TD_BLOCK_EVIDENCE_MAX different offences fit (rounds 0..31 of one validator). */
	struct td_evidence *many = calloc(TD_BLOCK_EVIDENCE_MAX, sizeof(*many));
	for (uint32_t i = 0; i < TD_BLOCK_EVIDENCE_MAX; i++) {
		many[i] = ev;
		many[i].round = i;
		td_vote_sign(many[i].a.sig, CHAIN, TD_VOTE_PREVOTE, HEIGHT, i, f->a, f->sk[0]);
		td_vote_sign(many[i].b.sig, CHAIN, TD_VOTE_PREVOTE, HEIGHT, i, f->b, f->sk[0]);
		td_evidence_seal(&many[i]);
	}
	td_block_free(blk);
	blk = block_with(f, false, many, TD_BLOCK_EVIDENCE_MAX);
	free(many);
	td_block_encode(blk, &p, &len);
	assert_int_equal(td_block_encoded_len(blk), len);
	int rc = block_decode(p, len, CHAIN, false, err, sizeof(err));
	if (rc)
		print_error("%s\n", err);
	assert_int_equal(rc, 0);
	free(p);
	td_block_free(blk);
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_double_vote_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_double_proposal_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_side_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swapped_and_same_sides_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_with_evidence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_duplicate_offence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_tampered_evidence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_block_evidence_shape, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
