/*
 * libFuzzer target for the wire messages (td_msg_decode): the payload of one p2p frame, the
 * first bytes a peer controls after the handshake.
 *
 * Besides "no crash, no leak", it checks that whatever decodes is canonical: the message
 * re-encoded from its decoded fields is the very input (every type; a PROPOSAL through its
 * header and ids). The records of a RECORDS message and the blocks and commits of a
 * SYNC_BLOCKS message go on through their own decoders, as a node would take them.
 *
 * A msgpack-aware mutator (LLVMFuzzerCustomMutator) mutates one value of the input's tree
 * half of the time: it re-encodes the tree with a small integer changed, a bin lengthened or
 * shortened, an item dropped or duplicated, so mutations get past the shape checks. The
 * other half is libFuzzer's own byte mutation.
 *
 * Seeds: tests/fuzz/corpus/fuzz_msg (fuzz-corpus-gen: the golden messages of
 * tests/test_msg.c and signed proposals, votes and sync batches of real blocks).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/block.h"
#include "tenderd/codec.h"
#include "tenderd/evidence.h"
#include "tenderd/msg.h"
#include "tenderd/record.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

static void same(const struct td_buf *b, const uint8_t *data, size_t size, const char *what)
{
	fz_check(b->sb.size == size && memcmp(b->sb.data, data, size) == 0, what);
}

static void reencode(const struct td_msg *m, const uint8_t *data, size_t size)
{
	struct td_buf b;
	td_buf_init(&b);
	switch (m->type) {
	case TD_MSG_STATUS:
		td_msg_status(&b, m->height, m->hash);
		same(&b, data, size, "STATUS re-encodes differently");
		break;
	case TD_MSG_ANNOUNCE:
	case TD_MSG_FETCH:
		td_msg_ids(&b, m->type, m->ids, m->n_ids);
		same(&b, data, size, "ANNOUNCE/FETCH re-encodes differently");
		break;
	case TD_MSG_RECORDS:
	case TD_MSG_SYNC_BLOCKS:
		if (m->type == TD_MSG_RECORDS)
			td_msg_items_begin(&b, m->type, m->n_items);
		else
			td_msg_items_begin(&b, m->type, m->n_items / 2);
		for (uint32_t i = 0; i < m->n_items; i++) {
			if (m->type == TD_MSG_SYNC_BLOCKS && i % 2 == 0)
				td_enc_array(&b, 2);
			td_enc_bin(&b, m->items[i].p, m->items[i].len);
		}
		same(&b, data, size, "RECORDS/SYNC_BLOCKS re-encodes differently");
		break;
	case TD_MSG_EVIDENCE:
		td_msg_encode(&b, m);
		same(&b, data, size, "EVIDENCE re-encodes differently");
		break;
	case TD_MSG_PROPOSAL: {
		td_msg_encode(&b, m);
		same(&b, data, size, "PROPOSAL re-encodes differently");
		/* m->hash is the block hash of the header. */
		struct td_buf h;
		uint8_t hash[TD_HASH_LEN];
		td_buf_init(&h);
		td_header_encode(&h, &m->hdr);
		td_hash(hash, (const uint8_t *)h.sb.data, h.sb.size);
		fz_check(memcmp(hash, m->hash, TD_HASH_LEN) == 0, "PROPOSAL hash is not the header's");
		td_buf_free(&h);
		break;
	}
	case TD_MSG_VOTE:
		td_msg_vote(&b, m->vote_type, m->height, m->round, m->nil ? NULL : m->hash, m->validator, m->sig);
		same(&b, data, size, "VOTE re-encodes differently");
		break;
	case TD_MSG_SYNC_REQ:
		fz_check(m->count <= UINT32_MAX, "SYNC_REQ count over 32 bits");
		td_msg_sync_req(&b, m->height, (uint32_t)m->count);
		same(&b, data, size, "SYNC_REQ re-encodes differently");
		break;
	}
	td_buf_free(&b);
}

static void inner(const struct td_msg *m)
{
	char err[TD_ERRMSG_MAX];

	if (m->type == TD_MSG_RECORDS) {
		for (uint32_t i = 0; i < m->n_items && i < 4; i++) {
			struct td_record *rec;
			if (td_record_decode_trusted(&rec, m->items[i].p, m->items[i].len, FZ_CHAIN, err, sizeof(err)) == 0)
				td_record_free(rec);
		}
	} else if (m->type == TD_MSG_EVIDENCE || m->type == TD_MSG_PROPOSAL) {
		for (uint32_t i = 0; i < m->n_items; i++) {
			struct td_evidence ev;
			struct td_buf b;
			if (td_evidence_decode(&ev, m->items[i].p, m->items[i].len) != 0)
				continue;
			td_buf_init(&b);
			td_evidence_encode(&b, &ev);
			fz_check(b.sb.size == m->items[i].len && memcmp(b.sb.data, m->items[i].p, b.sb.size) == 0,
				 "evidence re-encodes differently");
			td_buf_free(&b);
			(void)td_evidence_verify(&ev, FZ_CHAIN, err, sizeof(err));
		}
	} else if (m->type == TD_MSG_SYNC_BLOCKS) {
		for (uint32_t i = 0; i + 1 < m->n_items && i < 8; i += 2) {
			struct td_block *blk;
			struct td_commit c;
			if (td_block_decode(&blk, m->items[i].p, m->items[i].len, FZ_CHAIN, true, err, sizeof(err)) == 0)
				td_block_free(blk);
			if (td_commit_decode(&c, m->items[i + 1].p, m->items[i + 1].len, err, sizeof(err)) == 0)
				td_commit_clear(&c);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct td_msg m;

	if (td_msg_decode(&m, data, size) != 0)
		return 0;
	fz_check(m.type >= TD_MSG_STATUS && m.type <= TD_MSG_EVIDENCE, "decoded type out of range");
	reencode(&m, data, size);
	inner(&m);
	td_msg_free(&m);
	return 0;
}

/* ---- msgpack-aware mutator ---------------------------------------------------------------- */

struct mut {
	uint32_t rnd;
	uint32_t target; /* index (pre-order) of the value to mutate */
	uint32_t seen;
	int op;
};

static uint32_t next_rnd(struct mut *mu)
{
	mu->rnd = mu->rnd * 1103515245u + 12345u;
	return mu->rnd >> 8;
}

static void count_values(const msgpack_object *o, uint32_t *n)
{
	(*n)++;
	if (o->type == MSGPACK_OBJECT_ARRAY)
		for (uint32_t i = 0; i < o->via.array.size; i++)
			count_values(&o->via.array.ptr[i], n);
}

static const uint64_t interesting[] = { 0, 1, 2, 3, 5, 7, 8, 9, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000,
					0xffffffffull, 0x100000000ull, UINT64_MAX };

/* Writes o into pk, mutating the value numbered mu->target. */
static void emit(msgpack_packer *pk, const msgpack_object *o, struct mut *mu)
{
	bool here = mu->seen++ == mu->target;

	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (here) {
			uint64_t v = o->via.u64;
			switch (mu->op % 3) {
			case 0: v = interesting[next_rnd(mu) % (sizeof(interesting) / sizeof(interesting[0]))]; break;
			case 1: v += 1; break;
			default: v -= 1; break;
			}
			msgpack_pack_uint64(pk, v);
			return;
		}
		msgpack_pack_uint64(pk, o->via.u64);
		return;
	case MSGPACK_OBJECT_BIN: {
		uint32_t len = o->via.bin.size;
		if (here) {
			switch (mu->op % 4) {
			case 0: len = len ? len - 1 : 0; break;
			case 1: len = len + 1; break;
			case 2: len = next_rnd(mu) % 2 ? 32 : 64; break;
			default: msgpack_pack_nil(pk); return;
			}
		}
		msgpack_pack_bin(pk, len);
		if (len <= o->via.bin.size) {
			msgpack_pack_bin_body(pk, o->via.bin.ptr, len);
		} else {
			msgpack_pack_bin_body(pk, o->via.bin.ptr, o->via.bin.size);
			for (uint32_t i = o->via.bin.size; i < len; i++) {
				char c = (char)next_rnd(mu);
				msgpack_pack_bin_body(pk, &c, 1);
			}
		}
		return;
	}
	case MSGPACK_OBJECT_ARRAY: {
		uint32_t n = o->via.array.size, drop = UINT32_MAX, dup = UINT32_MAX;
		if (here && n > 0) {
			if (mu->op % 2 == 0)
				drop = next_rnd(mu) % n;
			else
				dup = next_rnd(mu) % n;
		}
		msgpack_pack_array(pk, n - (drop != UINT32_MAX) + (dup != UINT32_MAX));
		for (uint32_t i = 0; i < n; i++) {
			if (i == drop) {
				uint32_t skip = 0;
				count_values(&o->via.array.ptr[i], &skip);
				mu->seen += skip;
				continue;
			}
			emit(pk, &o->via.array.ptr[i], mu);
			if (i == dup) {
				struct mut quiet = *mu;
				quiet.target = UINT32_MAX;
				emit(pk, &o->via.array.ptr[i], &quiet);
			}
		}
		return;
	}
	case MSGPACK_OBJECT_NIL:
		if (here) {
			uint8_t zero[TD_HASH_LEN] = { 0 };
			msgpack_pack_bin(pk, TD_HASH_LEN);
			msgpack_pack_bin_body(pk, zero, TD_HASH_LEN);
			return;
		}
		msgpack_pack_object(pk, *o);
		return;
	default:
		msgpack_pack_object(pk, *o);
		return;
	}
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	struct mut mu = { .rnd = seed };
	msgpack_unpacked u;

	if (next_rnd(&mu) % 2 == 0)
		return LLVMFuzzerMutate(data, size, max_size);
	msgpack_unpacked_init(&u);
	/* td_unpack checks every count against the bytes present before msgpack-c allocates. */
	if (td_unpack(&u, data, size) != 0) {
		msgpack_unpacked_destroy(&u);
		return LLVMFuzzerMutate(data, size, max_size);
	}
	uint32_t n = 0;
	count_values(&u.data, &n);
	mu.target = next_rnd(&mu) % n;
	mu.op = (int)(next_rnd(&mu) % 12);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	emit(&pk, &u.data, &mu);
	msgpack_unpacked_destroy(&u);
	size_t out = sb.size;
	if (out > max_size || out == 0) {
		msgpack_sbuffer_destroy(&sb);
		return LLVMFuzzerMutate(data, size, max_size);
	}
	memcpy(data, sb.data, out);
	msgpack_sbuffer_destroy(&sb);
	return out;
}
