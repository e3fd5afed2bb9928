/*
 * Unit tests for tenderd/proof.h and chain_proof_json: a tender's proof from
 * a real chain (one validator, a store in /tmp) checks out offline with the
 * genesis alone, and is refused after any single changed value, with a
 * release left out or reordered, or against another genesis.
 *
 * The chain: block 1 holds three tenders (Jeju's at index 1), block 2 Jeju's
 * amendment and the Sejong tender, block 3 Jeju's award, so the Merkle paths
 * are not trivial.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "chain.h"
#include "tenderd/json.h"
#include "tenderd/proof.h"
#include "tenderd/record.h"
#include "tenderd/release.h"

#define JEJU "ocds-kr2020-jeju-0001"
#define GENESIS_MS 1583020800000ull /* 2020-03-01T00:00:00Z */

struct fix {
	struct td_genesis g;
	uint8_t sk[TD_SECKEY_LEN];
	char dir[64];
	struct chain *c;
	uint64_t clock_ms;
	json_t *proof;
};

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static json_t *sample(const char *name)
{
	char path[512], err[TD_ERRMSG_MAX];
	FILE *f;
	snprintf(path, sizeof(path), "%s/samples/%s", TD_TEST_DATA, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	json_t *j = td_json_load(buf, n, err, sizeof(err));
	assert_non_null(j);
	return j;
}

/* A record of kind from frag (stolen) for ocid, after the ocid's latest committed record. */
static struct td_record *mkrec(struct fix *x, enum td_kind kind, json_t *frag, const char *ocid, const uint8_t *prev)
{
	char err[TD_ERRMSG_MAX];
	struct td_record *rec = NULL;
	uint64_t ms = x->clock_ms += 1000;
	if (ocid)
		json_object_del(frag, "ocid");
	json_t *rel = td_release_build(frag, kind, ocid, ms, "Jeju", err, sizeof(err));
	if (!rel)
		fail_msg("build: %s", err);
	if (td_record_sign(&rec, kind, rel, ms, prev, x->g.hash, x->sk, err, sizeof(err)) != 0)
		fail_msg("sign: %s", err);
	json_decref(rel);
	json_decref(frag);
	return rec;
}

static void apply(struct fix *x, struct td_record **recs, uint32_t n)
{
	char err[TD_ERRMSG_MAX];
	struct td_record **arr = calloc(n, sizeof(*arr));
	memcpy(arr, recs, n * sizeof(*arr));
	struct td_block *blk = td_block_new(chain_height(x->c) + 1, chain_last_hash(x->c), x->clock_ms, x->g.v[0].pk,
					    x->g.validators_hash, arr, n);
	struct td_commit cm = { .height = blk->hdr.height, .round = 0, .n_sigs = 1 };
	memcpy(cm.block_hash, blk->hash, TD_HASH_LEN);
	cm.sigs = calloc(1, sizeof(*cm.sigs));
	td_vote_sign(cm.sigs[0].sig, x->g.hash, TD_VOTE_PRECOMMIT, cm.height, 0, blk->hash, x->sk);
	if (chain_apply(x->c, blk, &cm, err, sizeof(err)) != 0)
		fail_msg("apply: %s", err);
	td_commit_clear(&cm);
	td_block_free(blk);
}

static int setup(void **state)
{
	struct fix *x = calloc(1, sizeof(*x));
	char err[TD_ERRMSG_MAX], tender_id[TD_ID_MAX + 1];
	uint8_t seed[crypto_sign_SEEDBYTES], last[TD_HASH_LEN];
	struct td_record *r[3];

	if (sodium_init() < 0)
		return -1;
	snprintf(x->g.chain_id, sizeof(x->g.chain_id), "tenderd-proof-test");
	snprintf(x->g.ocid_prefix, sizeof(x->g.ocid_prefix), "ocds-kr2020");
	x->g.time_ms = GENESIS_MS;
	x->g.n = 1;
	x->g.v = calloc(1, sizeof(*x->g.v));
	snprintf(x->g.v[0].name, sizeof(x->g.v[0].name), "Jeju Special Self-Governing Province");
	memset(seed, 0x42, sizeof(seed));
	crypto_sign_seed_keypair(x->g.v[0].pk, x->sk, seed);
	td_genesis_seal(&x->g);
	x->clock_ms = GENESIS_MS + 1000;
	snprintf(x->dir, sizeof(x->dir), "/tmp/td-proof-XXXXXX");
	if (!mkdtemp(x->dir))
		return -1;
	char path[128];
	snprintf(path, sizeof(path), "%s/chain", x->dir);
	if (chain_open(&x->c, path, &x->g, err, sizeof(err)) != 0)
		return -1;

	r[0] = mkrec(x, TD_KIND_TENDER, sample("tender-kisa.json"), NULL, NULL);
	r[1] = mkrec(x, TD_KIND_TENDER, sample("tender-jeju.json"), NULL, NULL);
	r[2] = mkrec(x, TD_KIND_TENDER, sample("tender-gangwon.json"), NULL, NULL);
	snprintf(tender_id, sizeof(tender_id), "%s", r[1]->release_id);
	apply(x, r, 3);
	json_t *am = sample("amend-jeju.json");
	json_t *e = json_array_get(json_object_get(json_object_get(am, "tender"), "amendments"), 0);
	json_object_set_new(e, "amendsReleaseID", json_string(tender_id));
	assert_int_equal(chain_tender_last(x->c, JEJU, last), 0);
	r[0] = mkrec(x, TD_KIND_TENDER, sample("tender-sejong.json"), NULL, NULL);
	r[1] = mkrec(x, TD_KIND_AMENDMENT, am, JEJU, last);
	apply(x, r, 2);
	assert_int_equal(chain_tender_last(x->c, JEJU, last), 0);
	r[0] = mkrec(x, TD_KIND_AWARD, sample("award-jeju.json"), JEJU, last);
	apply(x, r, 1);
	assert_int_equal(chain_proof_json(x->c, JEJU, &x->proof), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fix *x = *state;
	json_decref(x->proof);
	chain_close(x->c);
	nftw(x->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	td_genesis_free(&x->g);
	free(x);
	return 0;
}

static int verify(const struct fix *x, const json_t *proof, const struct td_genesis *g, char *err, size_t errlen)
{
	struct td_proof_result r;
	return td_proof_verify(proof, g ? g : &x->g, &r, err, errlen);
}

static void test_round_trip(void **state)
{
	struct fix *x = *state;
	struct td_proof_result r;
	char err[TD_ERRMSG_MAX] = "";

	if (td_proof_verify(x->proof, &x->g, &r, err, sizeof(err)) != 0)
		fail_msg("verify: %s", err);
	assert_string_equal(r.ocid, JEJU);
	assert_int_equal(r.releases, 3);
	assert_int_equal(r.kind, TD_KIND_AWARD);
	assert_int_equal(r.height, 3);
	assert_int_equal(r.signers, 1);
	assert_int_equal(r.signer_index[0], 0);
	assert_memory_equal(r.agency, x->g.v[0].pk, TD_PUBKEY_LEN);
	assert_int_equal(json_array_size(json_object_get(x->proof, "releases")), 3);
	assert_int_equal(json_array_size(json_object_get(x->proof, "blocks")), 3);
	/* Jeju's tender is record 1 of 3 in block 1: a path of two hashes */
	const json_t *first = json_array_get(json_object_get(x->proof, "releases"), 0);
	assert_int_equal(json_array_size(json_object_get(first, "path")), 2);
	/* the same through text, as tenderctl reads a file */
	char *text = td_json_dump(x->proof, JSON_COMPACT);
	json_t *back = td_json_load(text, strlen(text), err, sizeof(err));
	free(text);
	assert_non_null(back);
	assert_int_equal(verify(x, back, NULL, err, sizeof(err)), 0);
	json_decref(back);
	/* no such tender */
	json_t *none = NULL;
	assert_int_equal(chain_proof_json(x->c, "ocds-kr2020-none", &none), TD_ENOTFOUND);
	assert_null(none);
}

/* Every character of every string and every number, changed alone: refused. */
static size_t mutate_all(const struct fix *x, json_t *root, json_t *v)
{
	char err[TD_ERRMSG_MAX];
	size_t tried = 0;

	if (json_is_object(v)) {
		const char *k;
		json_t *m;
		json_object_foreach(v, k, m)
			tried += mutate_all(x, root, m);
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			tried += mutate_all(x, root, json_array_get(v, i));
	} else if (json_is_string(v)) {
		char *s = strdup(json_string_value(v));
		size_t n = strlen(s);
		for (size_t i = 0; i < n; i++) {
			char was = s[i];
			s[i] = was == '0' ? '1' : was == 'f' ? 'e' : (char)(was ^ 1);
			json_string_set(v, s);
			if (verify(x, root, NULL, err, sizeof(err)) == 0)
				fail_msg("a change at character %zu of \"%.40s...\" passed", i, json_string_value(v));
			s[i] = was;
			tried++;
		}
		json_string_set(v, s);
		free(s);
	} else {
		assert_true(json_is_integer(v)); /* test_every_change_refused made every number one */
		json_int_t n = json_integer_value(v);
		json_integer_set(v, n + 1);
		if (verify(x, root, NULL, err, sizeof(err)) == 0)
			fail_msg("a number changed from %lld passed", (long long)n);
		json_integer_set(v, n);
		tried++;
	}
	return tried;
}

static void test_every_change_refused(void **state)
{
	struct fix *x = *state;
	char err[TD_ERRMSG_MAX];
	json_t *p = json_deep_copy(x->proof);

	/* numbers as plain JSON integers, so they can be changed in place */
	json_object_set_new(p, "version", json_integer(TD_PROOF_VERSION));
	json_t *rels = json_object_get(p, "releases"), *blks = json_object_get(p, "blocks");
	for (size_t i = 0; i < json_array_size(rels); i++) {
		json_t *o = json_array_get(rels, i);
		uint64_t h, ix;
		assert_true(td_json_number_u64(json_object_get(o, "height"), &h));
		assert_true(td_json_number_u64(json_object_get(o, "index"), &ix));
		json_object_set_new(o, "height", json_integer((json_int_t)h));
		json_object_set_new(o, "index", json_integer((json_int_t)ix));
	}
	for (size_t i = 0; i < json_array_size(blks); i++) {
		json_t *o = json_array_get(blks, i);
		uint64_t h;
		assert_true(td_json_number_u64(json_object_get(o, "height"), &h));
		json_object_set_new(o, "height", json_integer((json_int_t)h));
	}
	assert_int_equal(verify(x, p, NULL, err, sizeof(err)), 0);
	size_t tried = mutate_all(x, p, p);
	print_message("%zu single changes, each refused\n", tried);
	assert_true(tried > 1000);
	assert_int_equal(verify(x, p, NULL, err, sizeof(err)), 0); /* every change was undone */
	json_decref(p);
}

static void test_left_out_or_reordered(void **state)
{
	struct fix *x = *state;
	char err[TD_ERRMSG_MAX];
	json_t *p = json_deep_copy(x->proof);

	/* the amendment and its block left out: the award does not follow the tender */
	json_array_remove(json_object_get(p, "releases"), 1);
	json_array_remove(json_object_get(p, "blocks"), 1);
	assert_int_equal(verify(x, p, NULL, err, sizeof(err)), TD_EINVAL);
	assert_non_null(strstr(err, "does not follow"));
	json_decref(p);

	/* the tender left out: the history does not start with it */
	p = json_deep_copy(x->proof);
	json_array_remove(json_object_get(p, "releases"), 0);
	json_array_remove(json_object_get(p, "blocks"), 0);
	assert_int_equal(verify(x, p, NULL, err, sizeof(err)), TD_EINVAL);
	assert_non_null(strstr(err, "opens"));
	json_decref(p);

	/* releases swapped */
	p = json_deep_copy(x->proof);
	json_t *rels = json_object_get(p, "releases");
	json_t *r0 = json_incref(json_array_get(rels, 0));
	json_array_remove(rels, 0);
	json_array_insert_new(rels, 1, r0);
	assert_int_not_equal(verify(x, p, NULL, err, sizeof(err)), 0);
	json_decref(p);

	/* a block no release is in; a member more */
	p = json_deep_copy(x->proof);
	json_array_remove(json_object_get(p, "releases"), 2);
	assert_int_equal(verify(x, p, NULL, err, sizeof(err)), TD_EINVAL);
	assert_non_null(strstr(err, "holds none"));
	json_decref(p);
	p = json_deep_copy(x->proof);
	json_object_set_new(p, "note", json_string("trust me"));
	assert_int_equal(verify(x, p, NULL, err, sizeof(err)), TD_EINVAL);
	json_decref(p);
}

static void test_other_genesis(void **state)
{
	struct fix *x = *state;
	char err[TD_ERRMSG_MAX];
	struct td_genesis other = x->g;
	struct td_validator v = x->g.v[0];
	uint8_t sk[TD_SECKEY_LEN];

	/* the same chain id and names, another validator key: another genesis */
	crypto_sign_keypair(v.pk, sk);
	other.v = &v;
	td_genesis_seal(&other);
	assert_int_equal(verify(x, x->proof, &other, err, sizeof(err)), TD_EINVAL);
	assert_non_null(strstr(err, "another genesis"));
	/* told it is that genesis, the commits do not verify under its key */
	json_t *p = json_deep_copy(x->proof);
	char hex[2 * TD_HASH_LEN + 1];
	td_hex(hex, other.hash, TD_HASH_LEN);
	json_object_set_new(p, "genesis_hash", json_string(hex));
	assert_int_equal(verify(x, p, &other, err, sizeof(err)), TD_ESIG);
	assert_non_null(strstr(err, "not committed by this chain's validators"));
	json_decref(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_change_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_left_out_or_reordered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_genesis, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
