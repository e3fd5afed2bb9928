// libFuzzer target for the decoders that take bytes from outside: records,
// blocks, commits, the genesis and JSON text. Built by CMake with -DTENDER_FUZZ=ON
// (tests/fuzz/CMakeLists.txt); run it on top of its seed corpus, e.g.
//
//   build-fuzz/fuzz/fuzz_record -max_len=65536 -max_total_time=120 tests/fuzz/corpus/fuzz_record
//
// Seeds (tests/fuzz/corpus/fuzz_record, from fuzz-corpus-gen): the sample JSON files,
// the bytes of signed records, a block and a commit (signatures verify for chain id
// "tenderd-test"; the trusted decoders skip them, so mutations still get deep).
//
// Besides "no crash, no leak", the target checks invariants: whatever
// decodes re-encodes to the very input, td_get_json never returns NULL with
// r.ok still true, and JSON that loads dumps and encodes stably.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/block.h"
#include "tenderd/codec.h"
#include "tenderd/json.h"
#include "tenderd/record.h"
#include "world.h"

/* The genesis hash the seed records were signed for (tests/fuzz/world.c: seed 0x5a, "tenderd-test"). */
#define CHAIN (fz_world()->g.hash)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

static void fuzz_record(const uint8_t *data, size_t size)
{
	struct td_record *rec = NULL;
	char err[TD_ERRMSG_MAX];

	if (td_record_decode(&rec, data, size, CHAIN, err, sizeof(err)) == 0) {
		check(rec->len == size && memcmp(rec->bytes, data, size) == 0, "record bytes differ from input");
		td_record_free(rec);
	}
	if (td_record_decode_trusted(&rec, data, size, CHAIN, err, sizeof(err)) == 0) {
		uint8_t id[TD_HASH_LEN];
		check(rec->len == size && memcmp(rec->bytes, data, size) == 0, "trusted record bytes differ");
		td_hash(id, data, size);
		check(memcmp(id, rec->id, TD_HASH_LEN) == 0, "record id is not the hash of its bytes");
		check(rec->kind >= TD_KIND_MIN && rec->kind <= TD_KIND_ALL_MAX, "record kind out of range");
		td_record_free(rec);
	}
}

static void fuzz_block(const uint8_t *data, size_t size)
{
	struct td_block *blk = NULL;
	char err[TD_ERRMSG_MAX];

	for (int trusted = 0; trusted < 2; trusted++) {
		if (td_block_decode(&blk, data, size, CHAIN, trusted, err, sizeof(err)) == 0) {
			uint8_t *again;
			size_t len;
			td_block_encode(blk, &again, &len);
			check(len == size && memcmp(again, data, size) == 0, "block re-encodes differently");
			free(again);
			td_block_free(blk);
		}
	}
}

static void fuzz_commit(const uint8_t *data, size_t size)
{
	struct td_commit c;
	char err[TD_ERRMSG_MAX];

	if (td_commit_decode(&c, data, size, err, sizeof(err)) == 0) {
		uint8_t *again;
		size_t len;
		td_commit_encode(&c, &again, &len);
		check(len == size && memcmp(again, data, size) == 0, "commit re-encodes differently");
		free(again);
		td_commit_clear(&c);
	}
}

/* Raw msgpack as a JSON tree: what td_get_json accepts must re-encode stably. */
static void fuzz_msgpack_json(const uint8_t *data, size_t size)
{
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	if (td_unpack(&u, data, size) == 0) {
		struct td_rd r = { true };
		json_t *v = td_get_json(&r, &u.data, TD_JSON_DEPTH_MAX);
		check((v != NULL) == r.ok, "td_get_json result and r.ok disagree");
		if (v) {
			struct td_buf b;
			td_buf_init(&b);
			check(td_enc_json(&b, v, TD_JSON_DEPTH_MAX) == 0, "tree from td_get_json does not encode");
			td_buf_free(&b);
			json_decref(v);
		}
	}
	msgpack_unpacked_destroy(&u);
}

static void fuzz_json(const uint8_t *data, size_t size)
{
	char err[TD_ERRMSG_MAX];
	json_t *v = td_json_load((const char *)data, size, err, sizeof(err));
	if (!v)
		return;
	/* dump -> load -> dump is stable, and both trees encode to the same bytes. */
	char *s1 = td_json_dump(v, JSON_COMPACT | JSON_ENCODE_ANY);
	check(s1 != NULL, "dump failed");
	json_t *w = td_json_load(s1, strlen(s1), err, sizeof(err));
	check(w != NULL, "dumped JSON does not load again");
	char *s2 = td_json_dump(w, JSON_COMPACT | JSON_ENCODE_ANY);
	check(strcmp(s1, s2) == 0, "dump is not stable");
	struct td_buf a, b;
	td_buf_init(&a);
	td_buf_init(&b);
	int ra = td_enc_json(&a, v, TD_JSON_DEPTH_MAX), rb = td_enc_json(&b, w, TD_JSON_DEPTH_MAX);
	check(ra == rb, "a tree and its reload encode differently");
	if (ra == 0) {
		check(a.sb.size == b.sb.size && memcmp(a.sb.data, b.sb.data, a.sb.size) == 0, "encodings differ");
		/* Within the depth limit the encoding reads back as the same tree and bytes. */
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		check(td_unpack(&u, (const uint8_t *)a.sb.data, a.sb.size) == 0, "encoding does not unpack");
		struct td_rd r = { true };
		json_t *x = td_get_json(&r, &u.data, TD_JSON_DEPTH_MAX);
		check(x != NULL && r.ok, "encoding does not read back as JSON");
		struct td_buf c;
		td_buf_init(&c);
		check(td_enc_json(&c, x, TD_JSON_DEPTH_MAX) == 0, "read-back tree does not encode");
		check(c.sb.size == a.sb.size && memcmp(c.sb.data, a.sb.data, a.sb.size) == 0,
		      "read-back tree encodes differently");
		td_buf_free(&c);
		json_decref(x);
		msgpack_unpacked_destroy(&u);
	}
	td_buf_free(&a);
	td_buf_free(&b);
	free(s1);
	free(s2);
	json_decref(v);
	json_decref(w);

	struct td_genesis g;
	if (td_genesis_parse(&g, (const char *)data, size, err, sizeof(err)) == 0)
		td_genesis_free(&g);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > TD_RECORD_MAX + 16)
		return 0;
	fuzz_record(data, size);
	fuzz_block(data, size);
	fuzz_commit(data, size);
	fuzz_msgpack_json(data, size);
	fuzz_json(data, size);
	return 0;
}
