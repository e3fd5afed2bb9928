/*
 * libFuzzer target for block headers, blocks and commits (td_header_decode,
 * td_block_decode, td_commit_decode): what a peer sends in a PROPOSAL and in SYNC_BLOCKS.
 *
 * The input goes through all three decoders. Whatever decodes must re-encode to the very
 * input (the decoders take only canonical bytes), a header's hash must be the hash of its
 * bytes, a block's records root must be that of its records, and a commit that decodes is
 * put through td_commit_verify against the fuzz world's genesis (one validator).
 *
 * Seeds: tests/fuzz/corpus/fuzz_block (fuzz-corpus-gen: headers, blocks and commits of the
 * fuzz world's chain).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/block.h"
#include "tenderd/codec.h"
#include "tenderd/record.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct td_genesis genesis;

static void fuzz_header(const uint8_t *data, size_t size)
{
	struct td_block_header h;
	uint8_t hash[TD_HASH_LEN], again[TD_HASH_LEN];

	if (td_header_decode(&h, hash, data, size) != 0)
		return;
	struct td_buf b;
	td_buf_init(&b);
	td_header_encode(&b, &h);
	fz_check(b.sb.size == size && memcmp(b.sb.data, data, size) == 0, "header re-encodes differently");
	td_hash(again, data, size);
	fz_check(memcmp(again, hash, TD_HASH_LEN) == 0, "header hash is not the hash of its bytes");
	td_buf_free(&b);
}

static void fuzz_block(const uint8_t *data, size_t size)
{
	struct td_block *blk = NULL;
	char err[TD_ERRMSG_MAX];

	for (int trusted = 0; trusted < 2; trusted++) {
		if (td_block_decode(&blk, data, size, FZ_CHAIN, trusted, err, sizeof(err)) != 0)
			continue;
		uint8_t *again, root[TD_HASH_LEN];
		size_t len;
		td_block_encode(blk, &again, &len);
		fz_check(len == size && memcmp(again, data, size) == 0, "block re-encodes differently");
		fz_check(td_block_encoded_len(blk) == size, "td_block_encoded_len differs from the encoding");
		td_records_root(root, blk->records, blk->hdr.n_records);
		fz_check(memcmp(root, blk->hdr.records_root, TD_HASH_LEN) == 0, "records root does not match");
		free(again);
		td_block_free(blk);
	}
}

static void fuzz_commit(const uint8_t *data, size_t size)
{
	struct td_commit c;
	char err[TD_ERRMSG_MAX];

	if (td_commit_decode(&c, data, size, err, sizeof(err)) != 0)
		return;
	uint8_t *again;
	size_t len;
	td_commit_encode(&c, &again, &len);
	fz_check(len == size && memcmp(again, data, size) == 0, "commit re-encodes differently");
	for (uint32_t i = 1; i < c.n_sigs; i++)
		fz_check(c.sigs[i - 1].validator < c.sigs[i].validator, "commit indexes not increasing");
	if (td_commit_verify(&c, &genesis, c.height, c.block_hash, err, sizeof(err)) == 0)
		fz_check(c.n_sigs >= 1 && c.sigs[0].validator == 0, "a commit verified without its signer");
	free(again);
	td_commit_clear(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!genesis.n)
		genesis = fz_world()->g;
	if (size > TD_BLOCK_MAX)
		return 0;
	fuzz_header(data, size);
	fuzz_block(data, size);
	fuzz_commit(data, size);
	return 0;
}
