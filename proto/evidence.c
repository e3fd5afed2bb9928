/*
 * Evidence of equivocation (see tenderd/evidence.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/codec.h"
#include "tenderd/evidence.h"
#include "tenderd/msg.h"

static void encode_side(struct td_buf *b, const struct td_evidence_side *s)
{
	td_enc_array(b, 3);
	if (s->nil) {
		if (msgpack_pack_nil(&b->pk) != 0)
			abort();
	} else {
		td_enc_bin(b, s->value, TD_HASH_LEN);
	}
	td_enc_uint(b, (uint64_t)((int64_t)s->valid_round + 1));
	td_enc_bin(b, s->sig, TD_SIG_LEN);
}

/* Compares two sides by their encodings (shorter first, then bytes). */
static int side_cmp(const struct td_evidence_side *x, const struct td_evidence_side *y)
{
	struct td_buf a, b;
	int c;

	td_buf_init(&a);
	td_buf_init(&b);
	encode_side(&a, x);
	encode_side(&b, y);
	if (a.sb.size != b.sb.size)
		c = a.sb.size < b.sb.size ? -1 : 1;
	else
		c = memcmp(a.sb.data, b.sb.data, a.sb.size);
	td_buf_free(&a);
	td_buf_free(&b);
	return c;
}

void td_evidence_encode(struct td_buf *b, const struct td_evidence *ev)
{
	td_enc_array(b, 7);
	td_enc_uint(b, ev->kind);
	td_enc_bin(b, ev->pk, TD_PUBKEY_LEN);
	td_enc_uint(b, ev->height);
	td_enc_uint(b, ev->round);
	td_enc_uint(b, ev->kind == TD_EVIDENCE_VOTES ? (uint64_t)ev->vote_type : 0);
	encode_side(b, &ev->a);
	encode_side(b, &ev->b);
}

void td_evidence_seal(struct td_evidence *ev)
{
	struct td_buf b;

	if (side_cmp(&ev->a, &ev->b) > 0) {
		struct td_evidence_side t = ev->a;
		ev->a = ev->b;
		ev->b = t;
	}
	td_buf_init(&b);
	td_evidence_encode(&b, ev);
	td_hash(ev->id, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
}

static void read_side(struct td_rd *r, const msgpack_object *o, struct td_evidence_side *s)
{
	const msgpack_object *f = td_get_array(r, o, 3, 0, NULL);
	if (!f)
		return;
	s->nil = f[0].type == MSGPACK_OBJECT_NIL;
	if (!s->nil)
		td_get_bin_fixed(r, &f[0], s->value, TD_HASH_LEN);
	uint64_t vr = td_get_uint(r, &f[1]);
	if (vr > INT32_MAX)
		r->ok = false;
	s->valid_round = (int32_t)(r->ok ? vr : 0) - 1;
	td_get_bin_fixed(r, &f[2], s->sig, TD_SIG_LEN);
}

int td_evidence_decode(struct td_evidence *ev, const uint8_t *buf, size_t len)
{
	msgpack_unpacked u;
	struct td_rd r = { true };
	const msgpack_object *f;
	struct td_buf again;
	int rc = TD_EINVAL;

	memset(ev, 0, sizeof(*ev));
	msgpack_unpacked_init(&u);
	td_buf_init(&again);
	if (len > TD_EVIDENCE_LEN_MAX || td_unpack(&u, buf, len) != 0)
		goto out;
	f = td_get_array(&r, &u.data, 7, 0, NULL);
	if (!f)
		goto out;
	uint64_t kind = td_get_uint(&r, &f[0]);
	td_get_bin_fixed(&r, &f[1], ev->pk, TD_PUBKEY_LEN);
	ev->height = td_get_uint(&r, &f[2]);
	uint64_t round = td_get_uint(&r, &f[3]), type = td_get_uint(&r, &f[4]);
	read_side(&r, &f[5], &ev->a);
	read_side(&r, &f[6], &ev->b);
	if (!r.ok || round > INT32_MAX)
		goto out;
	ev->round = (uint32_t)round;
	if (kind == TD_EVIDENCE_VOTES) {
		if (type != TD_VOTE_PREVOTE && type != TD_VOTE_PRECOMMIT)
			goto out;
		if (ev->a.valid_round != -1 || ev->b.valid_round != -1)
			goto out;
	} else if (kind == TD_EVIDENCE_PROPOSALS) {
		if (type != 0 || ev->a.nil || ev->b.nil || ev->a.valid_round >= (int32_t)round ||
		    ev->b.valid_round >= (int32_t)round)
			goto out;
	} else {
		goto out;
	}
	ev->kind = (enum td_evidence_kind)kind;
	ev->vote_type = (enum td_vote_type)type;
	if (side_cmp(&ev->a, &ev->b) >= 0) /* in order, and different */
		goto out;
	td_evidence_encode(&again, ev);
	if (again.sb.size != len || memcmp(again.sb.data, buf, len) != 0)
		goto out;
	td_hash(ev->id, buf, len);
	rc = 0;
out:
	td_buf_free(&again);
	msgpack_unpacked_destroy(&u);
	return rc;
}

/*
 * Two sides are different messages exactly when their value, nil or valid
 * round differ; equal signatures over different messages cannot both verify.
 */
static bool sides_conflict(const struct td_evidence_side *a, const struct td_evidence_side *b)
{
	if (a->nil != b->nil || a->valid_round != b->valid_round)
		return true;
	return !a->nil && memcmp(a->value, b->value, TD_HASH_LEN) != 0;
}

static bool side_verify(const struct td_evidence *ev, const struct td_evidence_side *s,
			const uint8_t chain[static TD_HASH_LEN])
{
	if (ev->kind == TD_EVIDENCE_VOTES)
		return td_vote_verify(s->sig, chain, ev->vote_type, ev->height, ev->round, s->nil ? NULL : s->value,
				      ev->pk);
	return td_proposal_verify(s->sig, chain, ev->height, ev->round, s->valid_round, s->value, ev->pk);
}

int td_evidence_verify(const struct td_evidence *ev, const uint8_t chain[static TD_HASH_LEN], char *err, size_t errlen)
{
	if (!sides_conflict(&ev->a, &ev->b)) {
		snprintf(err, errlen, "evidence: the two messages are the same");
		return TD_EINVAL;
	}
	if (!side_verify(ev, &ev->a, chain) || !side_verify(ev, &ev->b, chain)) {
		snprintf(err, errlen, "evidence: a signature does not verify for this chain");
		return TD_ESIG;
	}
	return 0;
}

void td_evidence_key(uint8_t out[static TD_EVIDENCE_KEY_LEN], const struct td_evidence *ev)
{
	uint8_t *p = out;
	*p++ = (uint8_t)ev->kind;
	memcpy(p, ev->pk, TD_PUBKEY_LEN);
	p += TD_PUBKEY_LEN;
	for (int i = 7; i >= 0; i--)
		*p++ = (uint8_t)(ev->height >> (8 * i));
	for (int i = 3; i >= 0; i--)
		*p++ = (uint8_t)(ev->round >> (8 * i));
	*p = ev->kind == TD_EVIDENCE_VOTES ? (uint8_t)ev->vote_type : 0;
}
