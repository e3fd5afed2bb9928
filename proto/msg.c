/*
 * Wire messages (see tenderd/msg.h). Decoding reads the msgpack tree once
 * with a poisoning reader, then re-encodes the message and compares bytes,
 * so every message has exactly one accepted encoding.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tenderd/codec.h"
#include "tenderd/evidence.h"
#include "tenderd/msg.h"
#include "tenderd/sig.h"

void td_msg_status(struct td_buf *b, uint64_t height, const uint8_t hash[static TD_HASH_LEN])
{
	td_enc_array(b, 3);
	td_enc_uint(b, TD_MSG_STATUS);
	td_enc_uint(b, height);
	td_enc_bin(b, hash, TD_HASH_LEN);
}

void td_msg_ids(struct td_buf *b, enum td_msg_type type, const uint8_t (*ids)[TD_HASH_LEN], uint32_t n)
{
	td_enc_array(b, 2);
	td_enc_uint(b, type);
	td_enc_array(b, n);
	for (uint32_t i = 0; i < n; i++)
		td_enc_bin(b, ids[i], TD_HASH_LEN);
}

void td_msg_items_begin(struct td_buf *b, enum td_msg_type type, uint32_t n)
{
	td_enc_array(b, 2);
	td_enc_uint(b, type);
	td_enc_array(b, n);
}

/* Writes a PROPOSAL; ev holds hdr->n_evidence encoded evidence items. */
static void encode_proposal(struct td_buf *b, const struct td_block_header *hdr, const uint8_t (*ids)[TD_HASH_LEN],
			    const struct td_bytes *ev, uint32_t round, int32_t valid_round,
			    const uint8_t sig[static TD_SIG_LEN])
{
	td_enc_array(b, 8);
	td_enc_uint(b, TD_MSG_PROPOSAL);
	td_enc_uint(b, hdr->height);
	td_enc_uint(b, round);
	td_enc_uint(b, (uint64_t)((int64_t)valid_round + 1));
	td_header_encode(b, hdr);
	td_enc_array(b, hdr->n_records);
	for (uint32_t i = 0; i < hdr->n_records; i++)
		td_enc_bin(b, ids[i], TD_HASH_LEN);
	td_enc_array(b, hdr->n_evidence);
	for (uint32_t i = 0; i < hdr->n_evidence; i++)
		td_enc_bin(b, ev[i].p, ev[i].len);
	td_enc_bin(b, sig, TD_SIG_LEN);
}

void td_msg_proposal(struct td_buf *b, const struct td_block *blk, uint32_t round, int32_t valid_round,
		     const uint8_t sig[static TD_SIG_LEN])
{
	uint8_t(*ids)[TD_HASH_LEN] = td_xcalloc(blk->hdr.n_records ? blk->hdr.n_records : 1, TD_HASH_LEN);
	struct td_buf eb[TD_BLOCK_EVIDENCE_MAX];
	struct td_bytes ev[TD_BLOCK_EVIDENCE_MAX] = { { 0 } };
	const uint32_t nev = blk->hdr.n_evidence;

	for (uint32_t i = 0; i < blk->hdr.n_records; i++)
		memcpy(ids[i], blk->records[i]->id, TD_HASH_LEN);
	for (uint32_t i = 0; i < nev; i++) {
		td_buf_init(&eb[i]);
		td_evidence_encode(&eb[i], &blk->evidence[i]);
		ev[i].p = (const uint8_t *)eb[i].sb.data;
		ev[i].len = eb[i].sb.size;
	}
	encode_proposal(b, &blk->hdr, (const uint8_t(*)[TD_HASH_LEN])ids, ev, round, valid_round, sig);
	for (uint32_t i = 0; i < nev; i++)
		td_buf_free(&eb[i]);
	free(ids);
}

static void encode_vote(struct td_buf *b, enum td_vote_type type, uint64_t height, uint32_t round, const uint8_t *hash,
			uint32_t validator, const uint8_t sig[static TD_SIG_LEN])
{
	td_enc_array(b, 7);
	td_enc_uint(b, TD_MSG_VOTE);
	td_enc_uint(b, type);
	td_enc_uint(b, height);
	td_enc_uint(b, round);
	if (hash)
		td_enc_bin(b, hash, TD_HASH_LEN);
	else if (msgpack_pack_nil(&b->pk) != 0)
		abort();
	td_enc_uint(b, validator);
	td_enc_bin(b, sig, TD_SIG_LEN);
}

void td_msg_vote(struct td_buf *b, enum td_vote_type type, uint64_t height, uint32_t round, const uint8_t *hash,
		 uint32_t validator, const uint8_t sig[static TD_SIG_LEN])
{
	encode_vote(b, type, height, round, hash, validator, sig);
}

void td_msg_sync_req(struct td_buf *b, uint64_t from, uint32_t count)
{
	td_enc_array(b, 3);
	td_enc_uint(b, TD_MSG_SYNC_REQ);
	td_enc_uint(b, from);
	td_enc_uint(b, count);
}

static void proposal_bytes(uint8_t **out, size_t *len, const uint8_t chain[static TD_HASH_LEN], uint64_t height,
			   uint32_t round, int32_t valid_round, const uint8_t hash[static TD_HASH_LEN])
{
	struct td_buf b;
	td_buf_init(&b);
	td_enc_raw(&b, (const uint8_t *)TD_PROPOSAL_DOMAIN, strlen(TD_PROPOSAL_DOMAIN));
	td_enc_raw(&b, (const uint8_t *)"\0", 1);
	td_enc_raw(&b, chain, TD_HASH_LEN);
	td_enc_array(&b, 4);
	td_enc_uint(&b, height);
	td_enc_uint(&b, round);
	td_enc_uint(&b, (uint64_t)((int64_t)valid_round + 1));
	td_enc_bin(&b, hash, TD_HASH_LEN);
	*out = td_buf_take(&b, len);
	td_buf_free(&b);
}

void td_proposal_sign(uint8_t sig[static TD_SIG_LEN], const uint8_t chain[static TD_HASH_LEN], uint64_t height,
		      uint32_t round, int32_t valid_round, const uint8_t hash[static TD_HASH_LEN],
		      const uint8_t sk[static TD_SECKEY_LEN])
{
	uint8_t *msg;
	size_t len;
	proposal_bytes(&msg, &len, chain, height, round, valid_round, hash);
	td_sig_sign(sig, msg, len, sk);
	free(msg);
}

bool td_proposal_verify(const uint8_t sig[static TD_SIG_LEN], const uint8_t chain[static TD_HASH_LEN], uint64_t height,
			uint32_t round, int32_t valid_round, const uint8_t hash[static TD_HASH_LEN],
			const uint8_t pk[static TD_PUBKEY_LEN])
{
	uint8_t *msg;
	size_t len;
	proposal_bytes(&msg, &len, chain, height, round, valid_round, hash);
	bool ok = td_sig_verify(sig, msg, len, pk);
	free(msg);
	return ok;
}

/* Reads an array of 32-byte ids into m->ids_buf. */
static void read_ids(struct td_rd *r, struct td_msg *m, const msgpack_object *o)
{
	uint32_t n = 0;
	const msgpack_object *a = td_get_array(r, o, UINT32_MAX, TD_MSG_IDS_MAX, &n);
	if (!r->ok)
		return;
	m->ids_buf = td_xcalloc(n ? n : 1, TD_HASH_LEN);
	for (uint32_t i = 0; i < n; i++)
		td_get_bin_fixed(r, &a[i], m->ids_buf[i], TD_HASH_LEN);
	m->n_ids = n;
	m->ids = (const uint8_t(*)[TD_HASH_LEN])m->ids_buf;
}

/*
 * Reads the items of RECORDS (records of at most TD_RECORD_MAX bytes),
 * SYNC_BLOCKS (pairs of block and commit, each at most TD_BLOCK_MAX bytes),
 * or EVIDENCE and a PROPOSAL's evidence (at most TD_BLOCK_EVIDENCE_MAX items
 * of at most TD_EVIDENCE_LEN_MAX bytes).
 */
static void read_items(struct td_rd *r, struct td_msg *m, const msgpack_object *o, enum td_msg_type type)
{
	const bool pairs = type == TD_MSG_SYNC_BLOCKS, evidence = type == TD_MSG_EVIDENCE || type == TD_MSG_PROPOSAL;
	const uint32_t max = pairs ? TD_SYNC_REQ_MAX : evidence ? TD_BLOCK_EVIDENCE_MAX : TD_MSG_ITEMS_MAX;
	const size_t item_max = pairs ? TD_BLOCK_MAX : evidence ? TD_EVIDENCE_LEN_MAX : TD_RECORD_MAX;
	uint32_t n = 0;
	const msgpack_object *a = td_get_array(r, o, UINT32_MAX, max, &n);
	if (!r->ok)
		return;
	m->items = td_xcalloc(pairs ? 2 * (size_t)n + 1 : (size_t)n + 1, sizeof(*m->items));
	for (uint32_t i = 0; i < n && r->ok; i++) {
		const msgpack_object *it = &a[i];
		uint32_t k = 1;
		if (pairs)
			it = td_get_array(r, &a[i], 2, 0, NULL), k = 2;
		for (uint32_t j = 0; j < k && r->ok; j++) {
			if (it[j].type != MSGPACK_OBJECT_BIN || it[j].via.bin.size > item_max) {
				r->ok = false;
				break;
			}
			m->items[m->n_items].p = (const uint8_t *)it[j].via.bin.ptr;
			m->items[m->n_items++].len = it[j].via.bin.size;
		}
	}
}

void td_msg_encode(struct td_buf *b, const struct td_msg *m)
{
	switch (m->type) {
	case TD_MSG_STATUS: td_msg_status(b, m->height, m->hash); return;
	case TD_MSG_ANNOUNCE:
	case TD_MSG_FETCH: td_msg_ids(b, m->type, m->ids, m->n_ids); return;
	case TD_MSG_RECORDS:
	case TD_MSG_EVIDENCE:
	case TD_MSG_SYNC_BLOCKS: {
		bool pairs = m->type == TD_MSG_SYNC_BLOCKS;
		td_msg_items_begin(b, m->type, pairs ? m->n_items / 2 : m->n_items);
		for (uint32_t i = 0; i < m->n_items; i++) {
			if (pairs && i % 2 == 0)
				td_enc_array(b, 2);
			td_enc_bin(b, m->items[i].p, m->items[i].len);
		}
		return;
	}
	case TD_MSG_PROPOSAL: encode_proposal(b, &m->hdr, m->ids, m->items, m->round, m->valid_round, m->sig); return;
	case TD_MSG_VOTE:
		encode_vote(b, m->vote_type, m->height, m->round, m->nil ? NULL : m->hash, m->validator, m->sig);
		return;
	case TD_MSG_SYNC_REQ: td_msg_sync_req(b, m->height, (uint32_t)m->count); return;
	}
}

int td_msg_decode(struct td_msg *m, const uint8_t *buf, size_t len)
{
	struct td_rd r = { true };
	const msgpack_object *f;
	uint32_t n = 0;
	uint64_t v;

	memset(m, 0, sizeof(*m));
	msgpack_unpacked_init(&m->u);
	if (td_unpack(&m->u, buf, len))
		goto fail;
	f = td_get_array(&r, &m->u.data, UINT32_MAX, 8, &n);
	if (!f || n < 2)
		goto fail;
	v = td_get_uint(&r, &f[0]);
	switch (v) {
	case TD_MSG_STATUS:
		if (n != 3)
			goto fail;
		m->height = td_get_uint(&r, &f[1]);
		td_get_bin_fixed(&r, &f[2], m->hash, TD_HASH_LEN);
		break;
	case TD_MSG_ANNOUNCE:
	case TD_MSG_FETCH:
		if (n != 2)
			goto fail;
		read_ids(&r, m, &f[1]);
		break;
	case TD_MSG_RECORDS:
	case TD_MSG_EVIDENCE:
	case TD_MSG_SYNC_BLOCKS:
		if (n != 2)
			goto fail;
		read_items(&r, m, &f[1], (enum td_msg_type)v);
		break;
	case TD_MSG_PROPOSAL: {
		if (n != 8)
			goto fail;
		m->height = td_get_uint(&r, &f[1]);
		uint64_t round = td_get_uint(&r, &f[2]), vr = td_get_uint(&r, &f[3]);
		if (round > INT32_MAX || vr > (uint64_t)round)
			goto fail;
		m->round = (uint32_t)round;
		m->valid_round = (int32_t)vr - 1;
		td_header_read(&r, &f[4], &m->hdr);
		read_ids(&r, m, &f[5]);
		read_items(&r, m, &f[6], TD_MSG_PROPOSAL);
		td_get_bin_fixed(&r, &f[7], m->sig, TD_SIG_LEN);
		if (!r.ok || m->hdr.height != m->height || m->n_ids != m->hdr.n_records ||
		    m->n_items != m->hdr.n_evidence)
			goto fail;
		struct td_buf hb;
		td_buf_init(&hb);
		td_header_encode(&hb, &m->hdr);
		td_hash(m->hash, (const uint8_t *)hb.sb.data, hb.sb.size);
		td_buf_free(&hb);
		break;
	}
	case TD_MSG_VOTE: {
		if (n != 7)
			goto fail;
		uint64_t type = td_get_uint(&r, &f[1]);
		if (type != TD_VOTE_PREVOTE && type != TD_VOTE_PRECOMMIT)
			goto fail;
		m->vote_type = (enum td_vote_type)type;
		m->height = td_get_uint(&r, &f[2]);
		uint64_t round = td_get_uint(&r, &f[3]);
		if (round > INT32_MAX)
			goto fail;
		m->round = (uint32_t)round;
		m->nil = f[4].type == MSGPACK_OBJECT_NIL;
		if (!m->nil)
			td_get_bin_fixed(&r, &f[4], m->hash, TD_HASH_LEN);
		uint64_t val = td_get_uint(&r, &f[5]);
		if (val >= TD_VALIDATORS_MAX)
			goto fail;
		m->validator = (uint32_t)val;
		td_get_bin_fixed(&r, &f[6], m->sig, TD_SIG_LEN);
		break;
	}
	case TD_MSG_SYNC_REQ:
		if (n != 3)
			goto fail;
		m->height = td_get_uint(&r, &f[1]);
		m->count = td_get_uint(&r, &f[2]);
		if (m->count > TD_SYNC_REQ_MAX)
			goto fail;
		break;
	default: goto fail;
	}
	if (!r.ok)
		goto fail;
	m->type = (enum td_msg_type)v;
	{
		struct td_buf b;
		td_buf_init(&b);
		td_msg_encode(&b, m);
		bool same = b.sb.size == len && memcmp(b.sb.data, buf, len) == 0;
		td_buf_free(&b);
		if (!same)
			goto fail;
	}
	return 0;
fail:
	td_msg_free(m);
	return TD_EINVAL;
}

void td_msg_free(struct td_msg *m)
{
	if (!m)
		return;
	msgpack_unpacked_destroy(&m->u);
	free(m->ids_buf);
	free(m->items);
	m->ids_buf = NULL;
	m->items = NULL;
}
