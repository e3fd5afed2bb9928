/*
 * libFuzzer target for genesis.json (td_genesis_parse, proto/block.c), read at start-up from
 * a node's home and shared between agencies.
 *
 * Checks: a genesis that parses has 1..TD_VALIDATORS_MAX validators and at most
 * TD_PARTIES_MAX parties (validators, members, observers) with distinct keys and names within
 * their caps; written back as JSON (td_genesis_json) it parses again to the same chain id,
 * prefix, time, parties and genesis hash.
 *
 * Seeds: tests/fuzz/corpus/fuzz_genesis (fuzz-corpus-gen: written by td_genesis_json).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/block.h"
#include "tenderd/json.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct td_genesis g, h;
	char err[TD_ERRMSG_MAX];

	if (td_genesis_parse(&g, (const char *)data, size, err, sizeof(err)) != 0)
		return 0;
	fz_check(g.n >= 1, "a genesis without validators");
	json_t *j = td_genesis_json(&g);
	char *s = td_json_dump(j, JSON_COMPACT);
	fz_check(s != NULL, "a genesis does not dump");
	if (td_genesis_parse(&h, s, strlen(s), err, sizeof(err)) != 0) {
		fprintf(stderr, "reparse: %s\n%s\n", err, s);
		fz_check(false, "a genesis written back does not parse");
	}
	fz_check(strcmp(g.chain_id, h.chain_id) == 0 && strcmp(g.ocid_prefix, h.ocid_prefix) == 0 &&
			 g.time_ms == h.time_ms && g.n == h.n,
		 "a genesis written back differs");
	fz_check(g.n <= TD_VALIDATORS_MAX && td_genesis_parties(&g) <= TD_PARTIES_MAX, "too many parties");
	fz_check(td_genesis_parties(&g) == td_genesis_parties(&h) && g.n_members == h.n_members,
		 "the parties written back differ in number");
	for (uint32_t i = 0; i < td_genesis_parties(&g); i++) {
		const struct td_validator *a = td_genesis_party(&g, i), *b = td_genesis_party(&h, i);
		fz_check(strcmp(a->name, b->name) == 0 && memcmp(a->pk, b->pk, TD_PUBKEY_LEN) == 0,
			 "a party written back differs");
		fz_check(td_genesis_find_party(&g, a->pk) == (int)i, "party keys are not distinct");
		fz_check(td_genesis_may_publish(&g, a->pk) == (td_genesis_role(&g, i) != TD_ROLE_OBSERVER),
			 "publishing rights do not follow the role");
	}
	fz_check(memcmp(g.hash, h.hash, TD_HASH_LEN) == 0, "a genesis written back hashes otherwise");
	td_genesis_free(&h);
	free(s);
	json_decref(j);
	td_genesis_free(&g);
	return 0;
}
