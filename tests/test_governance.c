/*
 * Governance on the chain (node/chain.c with node/registry.c): proposals and
 * approvals in blocks change who signs, proposes and publishes, at the
 * height the registry says, and a reopened store replays them.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>

#include <cmocka.h>
#include <sodium.h>

#include "chain.h"
#include "registry.h"
#include "tenderd/block.h"
#include "tenderd/governance.h"
#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/release.h"

#define NKEYS 10
#define PREFIX "ocds-gov"
#define GOV_OCID PREFIX TD_GOV_OCID_SUFFIX

struct net {
	struct td_genesis g;
	uint8_t pk[NKEYS][TD_PUBKEY_LEN], sk[NKEYS][TD_SECKEY_LEN]; /* 0..3 validators, 4 member, 5.. newcomers */
	char dir[64], path[96];
	struct chain *c;
	uint64_t ms;
	int seq;
};

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct net *t = calloc(1, sizeof(*t));
	char err[256];

	assert_true(sodium_init() >= 0);
	for (int i = 0; i < NKEYS; i++) {
		uint8_t seed[crypto_sign_SEEDBYTES];
		memset(seed, 0x60 + i, sizeof(seed));
		crypto_sign_seed_keypair(t->pk[i], t->sk[i], seed);
	}
	snprintf(t->g.chain_id, sizeof(t->g.chain_id), "gov-test");
	snprintf(t->g.ocid_prefix, sizeof(t->g.ocid_prefix), PREFIX);
	t->g.time_ms = 1577836800000ull;
	t->g.n = 4;
	t->g.v = calloc(4, sizeof(*t->g.v));
	for (int i = 0; i < 4; i++) {
		snprintf(t->g.v[i].name, sizeof(t->g.v[i].name), "validator-%d", i);
		memcpy(t->g.v[i].pk, t->pk[i], TD_PUBKEY_LEN);
	}
	t->g.n_members = 1;
	t->g.others = calloc(1, sizeof(*t->g.others));
	snprintf(t->g.others[0].name, sizeof(t->g.others[0].name), "member-4");
	memcpy(t->g.others[0].pk, t->pk[4], TD_PUBKEY_LEN);
	td_genesis_seal(&t->g);
	t->ms = t->g.time_ms + 1000;
	snprintf(t->dir, sizeof(t->dir), "/tmp/td-gov-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/chain", t->dir);
	assert_int_equal(chain_open(&t->c, t->path, &t->g, err, sizeof(err)), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct net *t = *state;
	chain_close(t->c);
	nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	td_genesis_free(&t->g);
	free(t);
	return 0;
}

static int key_of(const struct net *t, const uint8_t pk[static TD_PUBKEY_LEN])
{
	for (int i = 0; i < NKEYS; i++)
		if (memcmp(t->pk[i], pk, TD_PUBKEY_LEN) == 0)
			return i;
	return -1;
}

/* A governance record of kind with body (stolen) signed by key `by`. */
static struct td_record *gov_sign(struct net *t, enum td_kind kind, json_t *body, int by)
{
	struct td_record *rec = NULL;
	char err[256];
	if (td_record_sign(&rec, kind, body, t->ms += 1000, NULL, t->g.hash, t->sk[by], err, sizeof(err)) != 0)
		fail_msg("sign: %s", err);
	json_decref(body);
	return rec;
}

static struct td_record *propose(struct net *t, int by, enum td_gov_action a, enum td_role role, int key, int new_key)
{
	struct td_gov g = { .kind = TD_KIND_GOV_PROPOSAL, .action = a, .role = role };
	char id[32];
	snprintf(g.name, sizeof(g.name), "agency-%d", key);
	memcpy(g.pub_key, t->pk[key], TD_PUBKEY_LEN);
	if (new_key >= 0)
		memcpy(g.new_pub_key, t->pk[new_key], TD_PUBKEY_LEN);
	snprintf(id, sizeof(id), "proposal-%d", ++t->seq);
	return gov_sign(t, TD_KIND_GOV_PROPOSAL, td_gov_body(&g, GOV_OCID, id, "2026-03-01T00:00:00Z", "test"), by);
}

static struct td_record *approve(struct net *t, int by, const struct td_record *p)
{
	struct td_gov g = { .kind = TD_KIND_GOV_APPROVAL };
	char id[32];
	memcpy(g.proposal, p->id, TD_HASH_LEN);
	snprintf(id, sizeof(id), "approval-%d", ++t->seq);
	return gov_sign(t, TD_KIND_GOV_APPROVAL, td_gov_body(&g, GOV_OCID, id, "2026-03-01T00:00:00Z", NULL), by);
}

static struct td_record *tender(struct net *t, int by, const char *ocid)
{
	char err[256];
	json_t *frag = json_pack("{s:s, s:{s:s, s:s, s:s}}", "ocid", ocid, "tender", "id", "t1", "title", "A tender",
				 "status", "active");
	json_t *rel = td_release_build(frag, TD_KIND_TENDER, NULL, t->ms += 1000, "Agency", err, sizeof(err));
	struct td_record *rec = NULL;
	if (!rel)
		fail_msg("build: %s", err);
	if (td_record_sign(&rec, TD_KIND_TENDER, rel, t->ms, NULL, t->g.hash, t->sk[by], err, sizeof(err)) != 0)
		fail_msg("sign: %s", err);
	json_decref(frag);
	json_decref(rel);
	return rec;
}

/*
 * The next block over recs (references taken), proposed and committed by
 * the set the chain says signs its height; `signers` of them sign (all if
 * negative). Returns chain_apply's code; validates first and returns that
 * code if validation fails.
 */
static int next_block(struct net *t, struct td_record **recs, uint32_t n, int signers, char *err, size_t errlen)
{
	uint64_t h = chain_height(t->c) + 1;
	const struct registry_set *s = registry_set(chain_registry(t->c), h);
	struct td_record **arr = calloc(n ? n : 1, sizeof(*arr));
	struct td_commit cm = { 0 };
	int rc;

	assert_non_null(s);
	for (uint32_t i = 0; i < n; i++)
		arr[i] = td_record_ref(recs[i]);
	struct td_block *blk = td_block_new(h, chain_last_hash(t->c), chain_last_time(t->c) + 1000, s->v[h % s->n].pk,
					    chain_next_validators(t->c), arr, n);
	rc = chain_validate(t->c, blk, err, errlen);
	if (rc == 0) {
		cm.height = h;
		memcpy(cm.block_hash, blk->hash, TD_HASH_LEN);
		cm.sigs = calloc(s->n, sizeof(*cm.sigs));
		for (uint32_t i = 0; i < s->n && (signers < 0 || (int)cm.n_sigs < signers); i++) {
			int k = key_of(t, s->v[i].pk);
			assert_true(k >= 0);
			cm.sigs[cm.n_sigs].validator = i;
			td_vote_sign(cm.sigs[cm.n_sigs].sig, t->g.hash, TD_VOTE_PRECOMMIT, h, 0, blk->hash, t->sk[k]);
			cm.n_sigs++;
		}
		rc = chain_apply(t->c, blk, &cm, err, errlen);
		td_commit_clear(&cm);
	}
	td_block_free(blk);
	return rc;
}

static void block_ok(struct net *t, struct td_record **recs, uint32_t n)
{
	char err[256] = "";
	int rc = next_block(t, recs, n, -1, err, sizeof(err));
	if (rc != 0)
		fail_msg("block %llu: %s (%s)", (unsigned long long)chain_height(t->c) + 1, err, td_strerror(rc));
	for (uint32_t i = 0; i < n; i++)
		td_record_free(recs[i]);
}

static int block_refused(struct net *t, struct td_record **recs, uint32_t n, const char *want)
{
	char err[256] = "";
	uint64_t h = chain_height(t->c);
	int rc = next_block(t, recs, n, -1, err, sizeof(err));
	assert_int_not_equal(rc, 0);
	assert_int_equal(chain_height(t->c), h);
	if (!strstr(err, want))
		fail_msg("refusal \"%s\" does not say \"%s\"", err, want);
	for (uint32_t i = 0; i < n; i++)
		td_record_free(recs[i]);
	return rc;
}

static void reopen(struct net *t)
{
	char err[256];
	chain_close(t->c);
	if (chain_open(&t->c, t->path, &t->g, err, sizeof(err)) != 0)
		fail_msg("reopen: %s", err);
}

/* 4 -> 5: decided in block 1, the fifth validator signs from block 3, and blocks then need 4 of 5. */
static void test_validator_voted_in(void **state)
{
	struct net *t = *state;
	struct td_record *p = propose(t, 0, TD_GOV_ADD, TD_ROLE_VALIDATOR, 5, -1);
	struct td_record *b1[3] = { td_record_ref(p), approve(t, 1, p), approve(t, 2, p) };
	char err[256];
	uint8_t h2_next[TD_HASH_LEN];

	block_ok(t, b1, 3);
	const struct registry_proposal *rp = registry_proposal(chain_registry(t->c), p->id);
	assert_non_null(rp);
	assert_int_equal(rp->status, REGISTRY_DECIDED);
	assert_int_equal(rp->effect_height, 3);
	/* Block 2 is still signed by four; its header names the five that sign block 3. */
	memcpy(h2_next, chain_next_validators(t->c), TD_HASH_LEN);
	assert_memory_not_equal(h2_next, t->g.validators_hash, TD_HASH_LEN);
	block_ok(t, NULL, 0);
	const struct registry_set *s3 = registry_set(chain_registry(t->c), 3);
	assert_int_equal(s3->n, 5);
	assert_memory_equal(s3->hash, h2_next, TD_HASH_LEN);
	/* Three signatures of five are not more than two thirds; four are. */
	assert_int_equal(next_block(t, NULL, 0, 3, err, sizeof(err)), TD_ESIG);
	assert_non_null(strstr(err, "3 of 5 validators signed"));
	assert_int_equal(next_block(t, NULL, 0, 4, err, sizeof(err)), 0);
	assert_int_equal(chain_height(t->c), 3);
	/* The new validator proposes block 9 (index 9 % 5 == 4 in the test's rotation). */
	for (int i = 0; i < 5; i++)
		block_ok(t, NULL, 0);
	assert_int_equal(chain_height(t->c), 8);
	struct td_record *r[1] = { tender(t, 5, PREFIX "-new-validator-1") };
	block_ok(t, r, 1); /* height 9: the new validator publishes, and signs with the others */
	/* A reopened store replays the change. */
	reopen(t);
	assert_memory_equal(registry_set(chain_registry(t->c), 3)->hash, h2_next, TD_HASH_LEN);
	assert_int_equal(registry_set(chain_registry(t->c), 10)->n, 5);
	block_ok(t, NULL, 0);
	rp = registry_proposal(chain_registry(t->c), p->id);
	assert_non_null(rp);
	td_record_free(p);
}

/* A validator voted out: from the effect height its signatures and records are refused. */
static void test_validator_voted_out(void **state)
{
	struct net *t = *state;
	struct td_record *p = propose(t, 0, TD_GOV_REMOVE, 0, 3, -1);
	struct td_record *b1[3] = { td_record_ref(p), approve(t, 1, p), approve(t, 2, p) };
	char err[256];

	block_ok(t, b1, 3);
	struct td_record *r[1] = { tender(t, 3, PREFIX "-last-by-3") };
	block_ok(t, r, 1); /* height 2: validator 3 still publishes and signs */
	assert_int_equal(registry_set(chain_registry(t->c), 3)->n, 3);
	r[0] = tender(t, 3, PREFIX "-too-late");
	block_refused(t, r, 1, "not a validator or member");
	r[0] = tender(t, 3, PREFIX "-too-late");
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_EPERM);
	td_record_free(r[0]);
	/* Its approval of a new proposal is refused too. */
	struct td_record *q = propose(t, 0, TD_GOV_ADD, TD_ROLE_MEMBER, 6, -1);
	struct td_record *b[2] = { td_record_ref(q), approve(t, 3, q) };
	block_refused(t, b, 2, "only a validator");
	/* Three validators: all three sign; two of three are not enough for a removal... nor a commit. */
	assert_int_equal(next_block(t, NULL, 0, 2, err, sizeof(err)), TD_ESIG);
	block_ok(t, NULL, 0);
	td_record_free(q);
	td_record_free(p);
}

/* A member voted in publishes from the effect height on; a key replaced signs under the new key. */
static void test_member_and_key(void **state)
{
	struct net *t = *state;
	struct td_record *p = propose(t, 1, TD_GOV_ADD, TD_ROLE_MEMBER, 6, -1);
	struct td_record *q = propose(t, 2, TD_GOV_REPLACE_KEY, 0, 0, 7);
	struct td_record *b1[6] = { td_record_ref(p), approve(t, 0, p), approve(t, 2, p),
				    td_record_ref(q), approve(t, 1, q), approve(t, 3, q) };
	char err[256];

	/* Before the effect height the newcomer may not publish. */
	struct td_record *r[1] = { tender(t, 6, PREFIX "-member-early") };
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_EPERM);
	td_record_free(r[0]);
	block_ok(t, b1, 6);
	r[0] = tender(t, 6, PREFIX "-member-early");
	block_refused(t, r, 1, "not a validator or member");
	block_ok(t, NULL, 0); /* height 2 */
	r[0] = tender(t, 6, PREFIX "-member-1");
	block_ok(t, r, 1); /* height 3: the member publishes */
	/* Validator 0 now signs with key 7, in the same place. */
	const struct registry_set *s = registry_set(chain_registry(t->c), 4);
	assert_memory_equal(s->v[0].pk, t->pk[7], TD_PUBKEY_LEN);
	assert_string_equal(s->v[0].name, "validator-0");
	r[0] = tender(t, 0, PREFIX "-old-key");
	block_refused(t, r, 1, "not a validator or member");
	block_ok(t, NULL, 0);
	td_record_free(p);
	td_record_free(q);
}

/* Refusals: the governance ocid is reserved, a governance record needs it, a stranger cannot propose. */
static void test_governance_refusals(void **state)
{
	struct net *t = *state;
	char err[256];
	struct td_record *r[2];

	r[0] = tender(t, 0, GOV_OCID);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_ERULE);
	assert_non_null(strstr(err, "governance ocid"));
	td_record_free(r[0]);
	struct td_gov g = { .kind = TD_KIND_GOV_PROPOSAL, .action = TD_GOV_ADD, .role = TD_ROLE_MEMBER };
	snprintf(g.name, sizeof(g.name), "x");
	memcpy(g.pub_key, t->pk[8], TD_PUBKEY_LEN);
	r[0] = gov_sign(t, TD_KIND_GOV_PROPOSAL,
			td_gov_body(&g, PREFIX "-other-governance", "p", "2026-03-01T00:00:00Z", NULL), 0);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_ERULE);
	block_refused(t, r, 1, "governance record's ocid");
	/* The member may publish tenders but not propose; an unknown proposal cannot be approved. */
	r[0] = propose(t, 4, TD_GOV_ADD, TD_ROLE_MEMBER, 8, -1);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_EPERM);
	block_refused(t, r, 1, "only a validator");
	struct td_record *ghost = propose(t, 0, TD_GOV_ADD, TD_ROLE_MEMBER, 8, -1);
	r[0] = approve(t, 1, ghost);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_ERULE);
	/* One proposal and the same approval twice in a block. */
	r[1] = td_record_ref(r[0]);
	struct td_record *b[3] = { td_record_ref(ghost), r[0], r[1] };
	block_refused(t, b, 3, "already");
	td_record_free(ghost);
	assert_int_equal(chain_height(t->c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_validator_voted_in, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validator_voted_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_member_and_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_governance_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
