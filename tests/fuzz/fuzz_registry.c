/*
 * libFuzzer target for the registry (node/registry.c): the rules by which
 * governance records change a chain's parties and validator sets.
 *
 * The input is a script of blocks. Each block starts with a byte whose low
 * nibble is its number of governance records (0..15; its high bits skip
 * up to 3 empty heights first), then 4 bytes per record: flags (bit 0:
 * approval, bits 1-2: action, bits 3-4: role), the author's key (of 16), the
 * subject key and the new key (or, for an approval, which proposal so far).
 * Each block is applied to a copy, as the chain does; a refused block
 * leaves the registry as it was.
 *
 * Checks after every block: each set of the block's height and the two after has 1..TD_VALIDATORS_MAX
 * validators, distinct keys, its hash, and exactly the parties whose role
 * at that height is validator; a second registry fed the same blocks agrees
 * on the sets of the last few heights; registry_check accepts a record alone exactly when
 * applying it alone succeeds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NKEYS 16
#define NGENESIS 4

static void key(uint8_t out[static TD_PUBKEY_LEN], unsigned i)
{
	memset(out, 0, TD_PUBKEY_LEN);
	out[0] = (uint8_t)(0xa0 + i % NKEYS);
}

/* The sets from height `from` to the last known one (history does not change: the twin checks it). */
static void check_sets(const struct registry *r, uint64_t from)
{
	for (uint64_t h = from ? from : 1; h <= registry_height(r) + REGISTRY_EFFECT_DELAY; h++) {
		const struct registry_set *s = registry_set(r, h);
		uint8_t hash[TD_HASH_LEN];
		fz_check(s != NULL && s->n >= 1 && s->n <= TD_VALIDATORS_MAX, "a known height without a valid set");
		td_validators_hash(hash, s->v, s->n);
		fz_check(memcmp(hash, s->hash, TD_HASH_LEN) == 0, "a set's hash is not the hash of its keys");
		uint32_t validators = 0;
		for (uint32_t i = 0; i < registry_slots(r); i++) {
			enum td_role role;
			if (registry_role(r, i, h, &role) == 0 && role == TD_ROLE_VALIDATOR)
				validators++;
		}
		fz_check(validators == s->n, "the set and the validator roles disagree");
		for (uint32_t i = 0; i < s->n; i++) {
			enum td_role role;
			fz_check(registry_role(r, s->slot[i], h, &role) == 0 && role == TD_ROLE_VALIDATOR,
				 "a set member without the validator role");
			fz_check(memcmp(registry_party(r, s->slot[i])->pk, s->v[i].pk, TD_PUBKEY_LEN) == 0,
				 "a set member's key is not its slot's");
			for (uint32_t j = 0; j < i; j++)
				fz_check(memcmp(s->v[i].pk, s->v[j].pk, TD_PUBKEY_LEN) != 0, "a key twice in a set");
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct td_genesis g = { 0 };
	struct td_validator v[NGENESIS];
	struct registry_record recs[16];
	uint8_t ids[64][TD_HASH_LEN];
	unsigned nids = 0, serial = 0;
	char err[TD_ERRMSG_MAX];
	size_t at = 0;

	for (unsigned i = 0; i < NGENESIS; i++) {
		memset(&v[i], 0, sizeof(v[i]));
		snprintf(v[i].name, sizeof(v[i].name), "v%u", i);
		key(v[i].pk, i);
	}
	g.n = NGENESIS;
	g.v = v;
	td_genesis_seal(&g);
	struct registry *r = registry_new(&g), *twin = registry_new(&g);

	while (at < size && registry_height(r) < 5000) {
		uint8_t head = data[at++];
		unsigned n = head & 15, skip = head >> 6;
		memset(recs, 0, sizeof(recs));
		for (unsigned i = 0; i < n && at + 4 <= size; i++, at += 4) {
			const uint8_t *b = data + at;
			struct registry_record *x = &recs[i];
			x->approval = b[0] & 1;
			x->id[0] = (uint8_t)(serial >> 8);
			x->id[1] = (uint8_t)serial++;
			x->id[2] = 0x5a;
			key(x->author, b[1]);
			if (x->approval) {
				if (nids)
					memcpy(x->proposal, ids[b[3] % nids], TD_HASH_LEN);
			} else {
				x->change.action = (enum registry_action)(1 + (b[0] >> 1) % 3);
				x->change.role = (enum td_role)((b[0] >> 3) % 3);
				snprintf(x->change.name, sizeof(x->change.name), "k%u", b[2] % NKEYS);
				key(x->change.key, b[2]);
				key(x->change.new_key, b[3]);
				if (nids < 64)
					memcpy(ids[nids++], x->id, TD_HASH_LEN);
			}
		}
		uint64_t h = registry_height(r) + 1 + skip;
		registry_advance(r, h - 1);
		registry_advance(twin, h - 1);
		/* A record alone: registry_check says yes exactly when applying it alone works. */
		if (n > 0) {
			struct registry *one = registry_clone(r);
			int crc = registry_check(r, h, &recs[0], err, sizeof(err));
			int arc = registry_apply(one, h, &recs[0], 1, err, sizeof(err));
			fz_check((crc == 0) == (arc == 0), "registry_check and registry_apply disagree on one record");
			registry_free(one);
		}
		struct registry *c = registry_clone(r), *t = registry_clone(twin);
		int rc = registry_apply(c, h, recs, n, err, sizeof(err));
		int trc = registry_apply(t, h, recs, n, err, sizeof(err));
		fz_check(rc == trc, "two registries judge one block differently");
		if (rc == 0) {
			registry_free(r);
			registry_free(twin);
			r = c;
			twin = t;
			check_sets(r, h);
			for (uint64_t k = h > 8 ? h - 8 : 1; k <= h + REGISTRY_EFFECT_DELAY; k++)
				fz_check(memcmp(registry_set(r, k)->hash, registry_set(twin, k)->hash, TD_HASH_LEN) ==
						 0,
					 "two registries fed the same blocks disagree");
		} else {
			registry_free(c);
			registry_free(t);
			registry_advance(r, h);
			registry_advance(twin, h);
		}
	}
	registry_free(r);
	registry_free(twin);
	return 0;
}
