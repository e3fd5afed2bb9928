/*
 * Tests for node/chain.c: applying blocks signed by one and by four
 * validators, reading tenders, listings and blocks back after a reopen, every
 * refusal leaving the chain (and the store) as it was, and crash consistency
 * under SIGKILL while a child process applies blocks.
 *
 * Records are built from the sample releases in tests/data/samples with td_release_build and
 * td_record_sign; keys come from libsodium. Each test uses its own temporary
 * directory under /tmp, removed at teardown.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ftw.h>
#include <signal.h>
#include <time.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <sodium.h>

#include "tenderd/block.h"
#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "chain.h"
#include "store.h"

#define CHAIN_ID "tenderd-test"
#define PREFIX "ocds-kr2020"
#define GENESIS_MS 1577836800000ull /* 2020-01-01T00:00:00Z */
#define MAX_VALS 4

struct net {
	struct td_genesis g;
	uint8_t sk[MAX_VALS][TD_SECKEY_LEN];
	uint8_t out_pk[TD_PUBKEY_LEN]; /* an agency that is not a validator */
	uint8_t out_sk[TD_SECKEY_LEN];
	char dir[64];
	char path[96];
	struct chain *c;
	uint64_t clock_ms; /* record times, increasing */
};

/* ---- fixtures ---------------------------------------------------------------- */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static struct net *net_new(uint32_t n)
{
	struct net *t = calloc(1, sizeof(*t));
	char err[256];

	assert_true(sodium_init() >= 0);
	snprintf(t->g.chain_id, sizeof(t->g.chain_id), CHAIN_ID);
	snprintf(t->g.ocid_prefix, sizeof(t->g.ocid_prefix), PREFIX);
	t->g.time_ms = GENESIS_MS;
	t->g.n = n;
	t->g.v = calloc(n, sizeof(*t->g.v));
	for (uint32_t i = 0; i < n; i++) {
		snprintf(t->g.v[i].name, sizeof(t->g.v[i].name), "agency-%u", i);
		crypto_sign_keypair(t->g.v[i].pk, t->sk[i]);
	}
	crypto_sign_keypair(t->out_pk, t->out_sk);
	t->clock_ms = GENESIS_MS + 1000;
	snprintf(t->dir, sizeof(t->dir), "/tmp/td-chain-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/chain", t->dir);
	assert_int_equal(chain_open(&t->c, t->path, &t->g, err, sizeof(err)), 0);
	return t;
}

static void net_free(struct net *t)
{
	chain_close(t->c);
	nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(t->g.v);
	free(t);
}

static int setup1(void **state)
{
	*state = net_new(1);
	return 0;
}

static int setup4(void **state)
{
	*state = net_new(4);
	return 0;
}

static int teardown(void **state)
{
	net_free(*state);
	return 0;
}

static void reopen(struct net *t)
{
	char err[256];

	chain_close(t->c);
	t->c = NULL;
	assert_int_equal(chain_open(&t->c, t->path, &t->g, err, sizeof(err)), 0);
}

/* ---- records, blocks, commits ---------------------------------------------- */

static json_t *load_sample(const char *name)
{
	char path[512], err[256];
	FILE *f;
	long n;
	char *buf;
	json_t *j;

	snprintf(path, sizeof(path), "%s/samples/%s", TD_TEST_DATA, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	j = td_json_load(buf, (size_t)n, err, sizeof(err));
	free(buf);
	if (!j)
		fail_msg("%s: %s", name, err);
	return j;
}

static json_t *parse(const char *text)
{
	char err[256];
	json_t *j = td_json_load(text, strlen(text), err, sizeof(err));

	if (!j)
		fail_msg("%s", err);
	return j;
}

/*
 * Signs fragment (stolen) as kind for ocid (NULL: the fragment's; a given
 * ocid replaces the fragment's) by the agency with secret key sk.
 */
static struct td_record *mkrec(struct net *t, enum td_kind kind, json_t *frag, const char *ocid,
			       const uint8_t sk[static TD_SECKEY_LEN])
{
	char err[256];
	struct td_record *rec = NULL;
	uint64_t ms = t->clock_ms += 1000;
	json_t *rel;

	if (ocid)
		json_object_del(frag, "ocid");
	rel = td_release_build(frag, kind, ocid, ms, "Test agency", err, sizeof(err));
	if (!rel)
		fail_msg("build: %s", err);
	if (td_record_sign(&rec, kind, rel, ms, CHAIN_ID, sk, err, sizeof(err)) != 0)
		fail_msg("sign: %s", err);
	json_decref(rel);
	json_decref(frag);
	return rec;
}

/* A block at height over n records (stolen), proposed by validator height % n, time after the tip. */
static struct td_block *mkblock_at(struct net *t, uint64_t height, const uint8_t prev[static TD_HASH_LEN],
				   struct td_record **recs, uint32_t n)
{
	struct td_record **arr = calloc(n ? n : 1, sizeof(*arr));

	for (uint32_t i = 0; i < n; i++)
		arr[i] = recs[i];
	return td_block_new(height, prev, chain_last_time(t->c) + 1000, t->g.v[height % t->g.n].pk, arr, n);
}

static struct td_block *mkblock(struct net *t, struct td_record **recs, uint32_t n)
{
	return mkblock_at(t, chain_height(t->c) + 1, chain_last_hash(t->c), recs, n);
}

/* A commit for (height, hash) signed by the validators whose bit is set in mask. */
static void mkcommit_for(struct net *t, struct td_commit *cm, uint64_t height, const uint8_t hash[static TD_HASH_LEN],
			 uint32_t mask)
{
	memset(cm, 0, sizeof(*cm));
	cm->height = height;
	cm->round = 0;
	memcpy(cm->block_hash, hash, TD_HASH_LEN);
	cm->sigs = calloc(t->g.n, sizeof(*cm->sigs));
	for (uint32_t i = 0; i < t->g.n; i++) {
		if (!(mask & (1u << i)))
			continue;
		cm->sigs[cm->n_sigs].validator = i;
		td_vote_sign(cm->sigs[cm->n_sigs].sig, CHAIN_ID, TD_VOTE_PRECOMMIT, height, 0, hash, t->sk[i]);
		cm->n_sigs++;
	}
}

static void mkcommit(struct net *t, struct td_commit *cm, const struct td_block *blk)
{
	mkcommit_for(t, cm, blk->hdr.height, blk->hash, (1u << t->g.n) - 1);
}

/* Applies a block over recs with a full commit; returns chain_apply's code. */
static int apply_recs(struct net *t, struct td_record **recs, uint32_t n, char *err, size_t errlen)
{
	struct td_block *blk = mkblock(t, recs, n);
	struct td_commit cm;
	int rc;

	mkcommit(t, &cm, blk);
	rc = chain_apply(t->c, blk, &cm, err, errlen);
	td_commit_clear(&cm);
	td_block_free(blk);
	return rc;
}

static void apply_ok(struct net *t, struct td_record **recs, uint32_t n)
{
	char err[256] = "";
	int rc = apply_recs(t, recs, n, err, sizeof(err));

	if (rc != 0)
		fail_msg("apply: %s (%s)", err, td_strerror(rc));
}

/* The tip, to compare before and after a refusal. */
struct tip {
	uint64_t height, time, count;
	uint8_t hash[TD_HASH_LEN];
};

static void tip_get(const struct net *t, struct tip *tp)
{
	tp->height = chain_height(t->c);
	tp->time = chain_last_time(t->c);
	tp->count = chain_record_count(t->c);
	memcpy(tp->hash, chain_last_hash(t->c), TD_HASH_LEN);
}

static void tip_same(const struct net *t, const struct tip *tp)
{
	assert_int_equal(chain_height(t->c), tp->height);
	assert_int_equal(chain_last_time(t->c), tp->time);
	assert_int_equal(chain_record_count(t->c), tp->count);
	assert_memory_equal(chain_last_hash(t->c), tp->hash, TD_HASH_LEN);
}

/*
 * Applies a block over recs and expects refusal with want; checks the chain
 * is unchanged and that none of the records got in. err gets the message.
 */
static void refuse(struct net *t, struct td_record **recs, uint32_t n, int want, char *err, size_t errlen)
{
	struct tip before;
	uint8_t ids[8][TD_HASH_LEN];
	int rc;

	assert_true(n <= 8);
	for (uint32_t i = 0; i < n; i++)
		memcpy(ids[i], recs[i]->id, TD_HASH_LEN);
	tip_get(t, &before);
	err[0] = '\0';
	rc = apply_recs(t, recs, n, err, errlen);
	if (rc != want)
		fail_msg("apply gave %d (%s), want %d", rc, err, want);
	assert_true(strlen(err) > 0);
	tip_same(t, &before);
	for (uint32_t i = 0; i < n; i++)
		assert_false(chain_has_record(t->c, ids[i], NULL));
}

static const char *jstr(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	assert_true(td_json_is_string(v));
	return json_string_value(v);
}

static uint64_t juint(const json_t *o, const char *key)
{
	uint64_t v = 0;

	assert_true(td_json_number_u64(json_object_get(o, key), &v));
	return v;
}

static const json_t *jpath(const json_t *o, const char *a, const char *b)
{
	const json_t *v = json_object_get(o, a);

	assert_non_null(v);
	if (b) {
		v = json_object_get(v, b);
		assert_non_null(v);
	}
	return v;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_empty(void **state)
{
	struct net *t = *state;
	static const uint8_t zero[TD_HASH_LEN] = { 0 };

	assert_int_equal(chain_height(t->c), 0);
	assert_memory_equal(chain_last_hash(t->c), zero, TD_HASH_LEN);
	assert_int_equal(chain_last_time(t->c), GENESIS_MS);
	assert_int_equal(chain_record_count(t->c), 0);
	assert_null(chain_tender_json(t->c, "ocds-kr2020-kisa-0001"));
	assert_null(chain_block_json(t->c, 0));
	assert_null(chain_block_json(t->c, 1));
	json_t *l = chain_list_json(t->c, 10, NULL);
	assert_non_null(l);
	assert_int_equal(json_array_size(json_object_get(l, "tenders")), 0);
	assert_true(json_is_null(json_object_get(l, "next_cursor")));
	json_decref(l);
	reopen(t);
	assert_int_equal(chain_height(t->c), 0);
	assert_int_equal(chain_last_time(t->c), GENESIS_MS);
	chain_close(NULL);
}

/* The lifecycle on one validator: publish, amend in the same block, award; read it all back after a reopen. */
static void test_apply_and_query(void **state)
{
	struct net *t = *state;
	uint8_t id_kisa[TD_HASH_LEN], id_jeju[TD_HASH_LEN], id_amend[TD_HASH_LEN], id_gw[TD_HASH_LEN],
		id_award[TD_HASH_LEN], h1[TD_HASH_LEN], h2[TD_HASH_LEN];
	struct td_record *r[3];
	char err[256];

	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	memcpy(id_kisa, r[0]->id, TD_HASH_LEN);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), 0);
	apply_ok(t, r, 1);
	assert_int_equal(chain_height(t->c), 1);
	assert_int_equal(chain_record_count(t->c), 1);
	memcpy(h1, chain_last_hash(t->c), TD_HASH_LEN);

	/* a tender and its amendment in one block, and another tender */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_AMENDMENT, load_sample("amend-jeju.json"), "ocds-kr2020-jeju-0001", t->sk[0]);
	r[2] = mkrec(t, TD_KIND_TENDER, load_sample("tender-gangwon.json"), NULL, t->out_sk);
	memcpy(id_jeju, r[0]->id, TD_HASH_LEN);
	memcpy(id_amend, r[1]->id, TD_HASH_LEN);
	memcpy(id_gw, r[2]->id, TD_HASH_LEN);
	/* against the committed ledger alone the amendment has no tender yet */
	assert_int_equal(chain_check_record(t->c, r[1], err, sizeof(err)), TD_ERULE);
	uint64_t time_before = chain_last_time(t->c);
	apply_ok(t, r, 3);
	assert_int_equal(chain_height(t->c), 2);
	assert_int_equal(chain_record_count(t->c), 4);
	assert_true(chain_last_time(t->c) > time_before);
	assert_memory_not_equal(chain_last_hash(t->c), h1, TD_HASH_LEN);
	memcpy(h2, chain_last_hash(t->c), TD_HASH_LEN);

	r[0] = mkrec(t, TD_KIND_AWARD, load_sample("award-jeju.json"), NULL, t->sk[0]);
	memcpy(id_award, r[0]->id, TD_HASH_LEN);
	apply_ok(t, r, 1);
	assert_int_equal(chain_height(t->c), 3);
	assert_int_equal(chain_record_count(t->c), 5);

	struct tip tp;
	tip_get(t, &tp);
	reopen(t);
	tip_same(t, &tp);

	uint64_t h;
	assert_true(chain_has_record(t->c, id_kisa, &h));
	assert_int_equal(h, 1);
	assert_true(chain_has_record(t->c, id_amend, &h));
	assert_int_equal(h, 2);
	assert_true(chain_has_record(t->c, id_award, NULL));
	uint8_t unknown[TD_HASH_LEN] = { 1 };
	assert_false(chain_has_record(t->c, unknown, &h));

	/* the tender: releases in order, compiled state merged */
	json_t *tj = chain_tender_json(t->c, "ocds-kr2020-jeju-0001");
	assert_non_null(tj);
	assert_string_equal(jstr(tj, "ocid"), "ocds-kr2020-jeju-0001");
	const json_t *rels = json_object_get(tj, "releases");
	assert_int_equal(json_array_size(rels), 3);
	static const char *kinds[] = { "tender", "tenderAmendment", "award" };
	const uint8_t *ids[] = { id_jeju, id_amend, id_award };
	static const uint64_t heights[] = { 2, 2, 3 };
	for (size_t i = 0; i < 3; i++) {
		const json_t *e = json_array_get(rels, i);
		char hex[2 * TD_HASH_LEN + 1], pk[2 * TD_PUBKEY_LEN + 1];
		td_hex(hex, ids[i], TD_HASH_LEN);
		td_hex(pk, t->g.v[0].pk, TD_PUBKEY_LEN);
		assert_string_equal(jstr(e, "kind"), kinds[i]);
		assert_string_equal(jstr(e, "record_id"), hex);
		assert_int_equal(juint(e, "height"), heights[i]);
		assert_string_equal(jstr(e, "agency"), pk);
		assert_string_equal(jstr(e, "agency_name"), "agency-0");
		assert_true(td_iso_valid(jstr(e, "time"), strlen(jstr(e, "time"))));
		assert_string_equal(jstr(json_object_get(e, "release"), "ocid"), "ocds-kr2020-jeju-0001");
	}
	const json_t *comp = json_object_get(tj, "compiled");
	assert_string_equal(jstr(jpath(comp, "tender", "tenderPeriod"), "endDate"), "2020-04-10T18:00:00+09:00");
	assert_string_equal(jstr(jpath(comp, "tender", "tenderPeriod"), "startDate"), "2020-03-09T09:00:00+09:00");
	size_t nlen;
	const char *amount = td_json_number_text(jpath(jpath(comp, "tender", "value"), "amount", NULL), &nlen);
	assert_non_null(amount);
	assert_int_equal(nlen, strlen("712500000.50"));
	assert_memory_equal(amount, "712500000.50", nlen);
	assert_int_equal(json_array_size(jpath(comp, "tender", "amendments")), 1);
	assert_int_equal(json_array_size(jpath(comp, "awards", NULL)), 1);
	assert_string_equal(json_string_value(json_array_get(jpath(comp, "tag", NULL), 0)), "compiled");
	json_decref(tj);
	assert_null(chain_tender_json(t->c, "ocds-kr2020-none"));

	/* the listing: newest first by (height, index of the first release) */
	static const char *order[] = { "ocds-kr2020-gw-0001", "ocds-kr2020-jeju-0001", "ocds-kr2020-kisa-0001" };
	json_t *l = chain_list_json(t->c, 10, NULL);
	assert_non_null(l);
	const json_t *ts = json_object_get(l, "tenders");
	assert_int_equal(json_array_size(ts), 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(jstr(json_array_get(ts, i), "ocid"), order[i]);
	assert_true(json_is_null(json_object_get(l, "next_cursor")));
	const json_t *sj = json_array_get(ts, 1);
	assert_int_equal(juint(sj, "height"), 2);
	assert_int_equal(juint(sj, "releases"), 3);
	assert_string_equal(jstr(sj, "agency_name"), "agency-0");
	assert_string_equal(jstr(sj, "status"), "active");
	assert_string_equal(jstr(sj, "title"),
			    "Blockchain-based electric vehicle battery life-cycle management system");
	const json_t *sg = json_array_get(ts, 0);
	char outhex[2 * TD_PUBKEY_LEN + 1];
	td_hex(outhex, t->out_pk, TD_PUBKEY_LEN);
	assert_string_equal(jstr(sg, "agency_name"), outhex); /* not a validator: hex */
	assert_string_equal(jstr(sg, "agency"), outhex);
	assert_int_equal(juint(sg, "releases"), 1);
	json_decref(l);

	/* pagination: one at a time, then two and one */
	char cursor[128] = "";
	for (size_t i = 0; i < 3; i++) {
		l = chain_list_json(t->c, 1, i ? cursor : NULL);
		assert_non_null(l);
		ts = json_object_get(l, "tenders");
		assert_int_equal(json_array_size(ts), 1);
		assert_string_equal(jstr(json_array_get(ts, 0), "ocid"), order[i]);
		const json_t *nc = json_object_get(l, "next_cursor");
		if (i < 2) {
			assert_true(td_json_is_string(nc));
			snprintf(cursor, sizeof(cursor), "%s", json_string_value(nc));
		} else {
			assert_true(json_is_null(nc));
		}
		json_decref(l);
	}
	l = chain_list_json(t->c, 2, NULL);
	assert_int_equal(json_array_size(json_object_get(l, "tenders")), 2);
	snprintf(cursor, sizeof(cursor), "%s", jstr(l, "next_cursor"));
	json_decref(l);
	l = chain_list_json(t->c, 2, cursor);
	ts = json_object_get(l, "tenders");
	assert_int_equal(json_array_size(ts), 1);
	assert_string_equal(jstr(json_array_get(ts, 0), "ocid"), order[2]);
	assert_true(json_is_null(json_object_get(l, "next_cursor")));
	json_decref(l);
	/* bad cursors and limits */
	assert_null(chain_list_json(t->c, 10, "zz"));
	assert_null(chain_list_json(t->c, 10, "4c00"));
	assert_null(chain_list_json(t->c, 10, "5900000000000000020000000000"));
	assert_null(chain_list_json(t->c, 0, NULL));
	assert_null(chain_list_json(t->c, 1001, NULL));

	/* blocks */
	json_t *bj = chain_block_json(t->c, 2);
	assert_non_null(bj);
	char hex[2 * TD_HASH_LEN + 1];
	assert_int_equal(juint(bj, "height"), 2);
	td_hex(hex, h2, TD_HASH_LEN);
	assert_string_equal(jstr(bj, "hash"), hex);
	td_hex(hex, h1, TD_HASH_LEN);
	assert_string_equal(jstr(bj, "prev_hash"), hex);
	assert_string_equal(jstr(bj, "proposer_name"), "agency-0");
	assert_true(td_iso_valid(jstr(bj, "time"), strlen(jstr(bj, "time"))));
	const json_t *rids = json_object_get(bj, "records");
	assert_int_equal(json_array_size(rids), 3);
	td_hex(hex, id_gw, TD_HASH_LEN);
	assert_string_equal(json_string_value(json_array_get(rids, 2)), hex);
	const json_t *cj = json_object_get(bj, "commit");
	assert_int_equal(juint(cj, "height"), 2);
	assert_int_equal(juint(cj, "round"), 0);
	td_hex(hex, h2, TD_HASH_LEN);
	assert_string_equal(jstr(cj, "block_hash"), hex);
	const json_t *sigs = json_object_get(cj, "signatures");
	assert_int_equal(json_array_size(sigs), 1);
	assert_string_equal(jstr(json_array_get(sigs, 0), "name"), "agency-0");
	assert_int_equal(juint(json_array_get(sigs, 0), "validator"), 0);
	assert_int_equal(strlen(jstr(json_array_get(sigs, 0), "signature")), 2 * TD_SIG_LEN);
	char *dump = td_json_dump(bj, JSON_COMPACT);
	assert_non_null(dump);
	assert_non_null(strstr(dump, "\"height\":2"));
	free(dump);
	json_decref(bj);
	assert_null(chain_block_json(t->c, 4));

	/* raw block and commit decode to what was applied */
	uint8_t *bb, *cb;
	size_t bl, cl;
	struct td_block *blk;
	struct td_commit cm;
	assert_int_equal(chain_block_raw(t->c, 2, &bb, &bl, &cb, &cl), 0);
	assert_int_equal(td_block_decode(&blk, bb, bl, CHAIN_ID, false, err, sizeof(err)), 0);
	assert_memory_equal(blk->hash, h2, TD_HASH_LEN);
	assert_int_equal(blk->hdr.n_records, 3);
	assert_int_equal(td_commit_decode(&cm, cb, cl, err, sizeof(err)), 0);
	assert_int_equal(td_commit_verify(&cm, &t->g, 2, h2, err, sizeof(err)), 0);
	td_commit_clear(&cm);
	td_block_free(blk);
	free(bb);
	free(cb);
	assert_int_equal(chain_block_raw(t->c, 4, &bb, &bl, &cb, &cl), TD_ENOTFOUND);
	assert_int_equal(chain_block_raw(t->c, 0, &bb, &bl, &cb, &cl), TD_ENOTFOUND);
}

/* Four validators: more than two thirds (3) must sign; 2 of 4 is refused. */
static void test_four_validators(void **state)
{
	struct net *t = *state;
	struct td_record *r[1];
	struct td_block *blk;
	struct td_commit cm;
	struct tip tp;
	char err[256];
	uint8_t id[TD_HASH_LEN];

	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[2]);
	memcpy(id, r[0]->id, TD_HASH_LEN);
	blk = mkblock(t, r, 1);
	tip_get(t, &tp);

	mkcommit_for(t, &cm, 1, blk->hash, 0x3); /* 2 of 4 */
	assert_true(chain_apply(t->c, blk, &cm, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "two thirds"));
	td_commit_clear(&cm);
	tip_same(t, &tp);
	assert_false(chain_has_record(t->c, id, NULL));

	/* a signature by the wrong key under a validator's index */
	mkcommit_for(t, &cm, 1, blk->hash, 0x7);
	cm.sigs[1].sig[0] ^= 1;
	assert_int_equal(chain_apply(t->c, blk, &cm, err, sizeof(err)), TD_ESIG);
	td_commit_clear(&cm);
	tip_same(t, &tp);

	/* a commit for another block */
	uint8_t other[TD_HASH_LEN];
	memcpy(other, blk->hash, TD_HASH_LEN);
	other[5] ^= 0x10;
	mkcommit_for(t, &cm, 1, other, 0xf);
	assert_true(chain_apply(t->c, blk, &cm, err, sizeof(err)) < 0);
	td_commit_clear(&cm);
	tip_same(t, &tp);

	reopen(t);
	tip_same(t, &tp);
	assert_false(chain_has_record(t->c, id, NULL));

	mkcommit_for(t, &cm, 1, blk->hash, 0xd); /* 3 of 4: 0, 2, 3 */
	if (chain_apply(t->c, blk, &cm, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	td_commit_clear(&cm);
	assert_int_equal(chain_height(t->c), 1);
	assert_memory_equal(chain_last_hash(t->c), blk->hash, TD_HASH_LEN);
	td_block_free(blk);
	json_t *bj = chain_block_json(t->c, 1);
	assert_int_equal(json_array_size(jpath(bj, "commit", "signatures")), 3);
	assert_string_equal(jstr(json_array_get(jpath(bj, "commit", "signatures"), 1), "name"), "agency-2");
	assert_string_equal(jstr(bj, "proposer_name"), "agency-1");
	json_decref(bj);
	json_t *l = chain_list_json(t->c, 5, NULL);
	assert_string_equal(jstr(json_array_get(json_object_get(l, "tenders"), 0), "agency_name"), "agency-2");
	json_decref(l);

	/* the next block with all four */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[3]);
	apply_ok(t, r, 1);
	reopen(t);
	assert_int_equal(chain_height(t->c), 2);
	assert_int_equal(chain_record_count(t->c), 2);
}

/* Malformed blocks: height, previous hash, root, hash, proposer, time. */
static void test_block_refusals(void **state)
{
	struct net *t = *state;
	struct td_record *r[1];
	struct td_block *blk;
	struct td_commit cm;
	struct tip tp;
	char err[256];
	uint8_t id[TD_HASH_LEN];

	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	apply_ok(t, r, 1);
	tip_get(t, &tp);

#define NEXT_REC()                                                                                \
	do {                                                                                      \
		r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[0]); \
		memcpy(id, r[0]->id, TD_HASH_LEN);                                                \
	} while (0)
#define TRY(want)                                                                                     \
	do {                                                                                          \
		int rc_ = chain_apply(t->c, blk, &cm, err, sizeof(err));                              \
		if (rc_ != (want))                                                                    \
			fail_msg("line %d: apply gave %d (%s), want %d", __LINE__, rc_, err, (want)); \
		td_commit_clear(&cm);                                                                 \
		td_block_free(blk);                                                                   \
		tip_same(t, &tp);                                                                     \
		assert_false(chain_has_record(t->c, id, NULL));                                       \
	} while (0)

	/* wrong height: skips one */
	NEXT_REC();
	blk = mkblock_at(t, 3, chain_last_hash(t->c), r, 1);
	mkcommit(t, &cm, blk);
	TRY(TD_EINVAL);
	assert_non_null(strstr(err, "height"));
	/* same height again */
	NEXT_REC();
	blk = mkblock_at(t, 1, chain_last_hash(t->c), r, 1);
	mkcommit(t, &cm, blk);
	TRY(TD_EINVAL);

	/* wrong previous hash */
	uint8_t prev[TD_HASH_LEN];
	memcpy(prev, chain_last_hash(t->c), TD_HASH_LEN);
	prev[0] ^= 1;
	NEXT_REC();
	blk = mkblock_at(t, 2, prev, r, 1);
	mkcommit(t, &cm, blk);
	TRY(TD_EINVAL);
	assert_non_null(strstr(err, "previous hash"));

	/* records root that does not match the records (header hash recomputed and signed) */
	NEXT_REC();
	blk = mkblock(t, r, 1);
	blk->hdr.records_root[3] ^= 0x40;
	{
		struct td_buf hb;
		uint8_t *p;
		size_t n;
		td_buf_init(&hb);
		td_header_encode(&hb, &blk->hdr);
		p = td_buf_take(&hb, &n);
		td_buf_free(&hb);
		td_hash(blk->hash, p, n);
		free(p);
	}
	mkcommit(t, &cm, blk);
	TRY(TD_EINVAL);
	assert_non_null(strstr(err, "records root"));

	/* a hash that is not the header's */
	NEXT_REC();
	blk = mkblock(t, r, 1);
	blk->hash[7] ^= 2;
	mkcommit(t, &cm, blk);
	TRY(TD_EINVAL);

	/* a proposer that is not a validator */
	NEXT_REC();
	blk = mkblock(t, r, 1);
	{
		struct td_record **arr = blk->records;
		blk->records = NULL;
		blk->hdr.n_records = 0;
		uint64_t tm = blk->hdr.time_ms;
		td_block_free(blk);
		blk = td_block_new(2, chain_last_hash(t->c), tm, t->out_pk, arr, 1);
	}
	mkcommit(t, &cm, blk);
	TRY(TD_EINVAL);
	assert_non_null(strstr(err, "proposer"));

	/* time before the previous block */
	NEXT_REC();
	{
		struct td_record **arr = calloc(1, sizeof(*arr));
		arr[0] = r[0];
		blk = td_block_new(2, chain_last_hash(t->c), chain_last_time(t->c) - 1, t->g.v[0].pk, arr, 1);
	}
	mkcommit(t, &cm, blk);
	TRY(TD_EINVAL);

	reopen(t);
	tip_same(t, &tp);
	assert_false(chain_has_record(t->c, id, NULL));
	assert_null(chain_tender_json(t->c, "ocds-kr2020-jeju-0001"));
	assert_null(chain_block_json(t->c, 2));

	/* and a good block still goes on top */
	NEXT_REC();
	apply_ok(t, r, 1);
	assert_int_equal(chain_height(t->c), 2);
	assert_true(chain_has_record(t->c, id, NULL));
#undef NEXT_REC
#undef TRY
}

/* Lifecycle refusals, from chain_check_record and from chain_apply. */
static void test_record_refusals(void **state)
{
	struct net *t = *state;
	struct td_record *r[3];
	struct tip tp;
	char err[256];

	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_TENDER, load_sample("tender-sejong.json"), NULL, t->sk[0]);
	r[2] = mkrec(t, TD_KIND_CANCELLATION, parse("{}"), "ocds-kr2020-sj-0001", t->sk[0]);
	apply_ok(t, r, 3);
	r[0] = mkrec(
		t, TD_KIND_AMENDMENT,
		parse("{\"id\": \"jeju-amend-1\", \"tender\": {\"title\": \"T2\", \"amendments\": [{\"id\": \"a\", \"rationale\": \"r\"}]}}"),
		"ocds-kr2020-jeju-0001", t->sk[0]);
	apply_ok(t, r, 1);
	tip_get(t, &tp);

	/* a second tender with a committed ocid */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_EEXIST);
	assert_string_equal(err, "tender ocds-kr2020-jeju-0001 already exists");
	refuse(t, r, 1, TD_EEXIST, err, sizeof(err));

	/* the same new ocid twice in one block */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), 0);
	assert_int_equal(chain_check_record(t->c, r[1], err, sizeof(err)), 0);
	refuse(t, r, 2, TD_EEXIST, err, sizeof(err));
	assert_non_null(strstr(err, "already exists"));
	assert_null(chain_tender_json(t->c, "ocds-kr2020-kisa-0001"));

	/* the same record twice: in one block, and again after it was committed */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-gangwon.json"), NULL, t->sk[0]);
	{
		uint8_t *bytes = r[0]->bytes;
		struct td_record *copy = NULL;
		assert_int_equal(td_record_decode(&copy, bytes, r[0]->len, CHAIN_ID, err, sizeof(err)), 0);
		r[1] = copy;
	}
	refuse(t, r, 2, TD_EEXIST, err, sizeof(err));
	assert_non_null(strstr(err, "already on the ledger"));
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-gangwon.json"), NULL, t->sk[0]);
	{
		struct td_record *copy = NULL;
		assert_int_equal(td_record_decode(&copy, r[0]->bytes, r[0]->len, CHAIN_ID, err, sizeof(err)), 0);
		apply_ok(t, r, 1);
		assert_int_equal(chain_check_record(t->c, copy, err, sizeof(err)), TD_EEXIST);
		assert_non_null(strstr(err, "already on the ledger"));
		r[0] = copy;
	}
	tip_get(t, &tp);
	assert_int_equal(apply_recs(t, r, 1, err, sizeof(err)), TD_EEXIST);
	tip_same(t, &tp);

	/* an amendment by another agency */
	r[0] = mkrec(t, TD_KIND_AMENDMENT, load_sample("amend-jeju.json"), "ocds-kr2020-jeju-0001", t->out_sk);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_EPERM);
	assert_non_null(strstr(err, "only the agency that published"));
	refuse(t, r, 1, TD_EPERM, err, sizeof(err));

	/* an award and an amendment of a cancelled tender */
	r[0] = mkrec(t, TD_KIND_AWARD, parse("{\"awards\": [{\"id\": \"sj-a1\", \"status\": \"active\"}]}"),
		     "ocds-kr2020-sj-0001", t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_ERULE);
	assert_non_null(strstr(err, "cancelled"));
	refuse(t, r, 1, TD_ERULE, err, sizeof(err));
	r[0] = mkrec(
		t, TD_KIND_AMENDMENT,
		parse("{\"tender\": {\"title\": \"again\", \"amendments\": [{\"id\": \"a\", \"rationale\": \"r\"}]}}"),
		"ocds-kr2020-sj-0001", t->sk[0]);
	refuse(t, r, 1, TD_ERULE, err, sizeof(err));

	/* a cancellation and an award in one block: the award sees the cancellation */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-private.json"), NULL, t->sk[0]);
	apply_ok(t, r, 1);
	tip_get(t, &tp);
	r[0] = mkrec(t, TD_KIND_CANCELLATION, parse("{}"), "ocds-kr2020-kisa-0002", t->sk[0]);
	r[1] = mkrec(t, TD_KIND_AWARD, parse("{\"awards\": [{\"id\": \"p-a1\", \"status\": \"active\"}]}"),
		     "ocds-kr2020-kisa-0002", t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[1], err, sizeof(err)), 0);
	refuse(t, r, 2, TD_ERULE, err, sizeof(err));

	/* an amendment of a tender nobody published */
	r[0] = mkrec(t, TD_KIND_AMENDMENT, load_sample("amend-jeju.json"), "ocds-kr2020-nobody-1", t->sk[0]);
	refuse(t, r, 1, TD_ERULE, err, sizeof(err));

	/* an ocid outside the chain's prefix */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), "ocds-zz9999-x", t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_ERULE);
	assert_string_equal(err, "ocid \"ocds-zz9999-x\" does not start with the chain's prefix \"ocds-kr2020\"");
	refuse(t, r, 1, TD_ERULE, err, sizeof(err));

	/* (ocid, release id) already used: in a later block and within one block */
	r[0] = mkrec(
		t, TD_KIND_AMENDMENT,
		parse("{\"id\": \"jeju-amend-1\", \"tender\": {\"title\": \"T3\", \"amendments\": [{\"id\": \"a\", \"rationale\": \"r\"}]}}"),
		"ocds-kr2020-jeju-0001", t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_EEXIST);
	refuse(t, r, 1, TD_EEXIST, err, sizeof(err));
	assert_non_null(strstr(err, "jeju-amend-1"));
	r[0] = mkrec(
		t, TD_KIND_AMENDMENT,
		parse("{\"id\": \"jeju-amend-2\", \"tender\": {\"title\": \"T4\", \"amendments\": [{\"id\": \"a\", \"rationale\": \"r\"}]}}"),
		"ocds-kr2020-jeju-0001", t->sk[0]);
	r[1] = mkrec(
		t, TD_KIND_AMENDMENT,
		parse("{\"id\": \"jeju-amend-2\", \"tender\": {\"title\": \"T5\", \"amendments\": [{\"id\": \"a\", \"rationale\": \"r\"}]}}"),
		"ocds-kr2020-jeju-0001", t->sk[0]);
	refuse(t, r, 2, TD_EEXIST, err, sizeof(err));

	/* a good record followed by a bad one: nothing of the block is written */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_AMENDMENT, load_sample("amend-jeju.json"), "ocds-kr2020-jeju-0001", t->out_sk);
	refuse(t, r, 2, TD_EPERM, err, sizeof(err));

	reopen(t);
	tip_same(t, &tp);
	assert_null(chain_tender_json(t->c, "ocds-kr2020-kisa-0001"));
	assert_null(chain_tender_json(t->c, "ocds-zz9999-x"));
	assert_null(chain_tender_json(t->c, "ocds-kr2020-nobody-1"));
	json_t *tj = chain_tender_json(t->c, "ocds-kr2020-jeju-0001");
	assert_int_equal(json_array_size(json_object_get(tj, "releases")), 2);
	assert_string_equal(jstr(jpath(tj, "compiled", "tender"), "title"), "T2");
	json_decref(tj);
	tj = chain_tender_json(t->c, "ocds-kr2020-sj-0001");
	assert_int_equal(json_array_size(json_object_get(tj, "releases")), 2);
	assert_string_equal(jstr(jpath(tj, "compiled", "tender"), "status"), "cancelled");
	json_decref(tj);
	tj = chain_tender_json(t->c, "ocds-kr2020-kisa-0002");
	assert_int_equal(json_array_size(json_object_get(tj, "releases")), 1);
	json_decref(tj);
	json_t *l = chain_list_json(t->c, 100, NULL);
	assert_int_equal(json_array_size(json_object_get(l, "tenders")), 4);
	json_decref(l);
}

/* A store of another chain or schema is refused. */
static void test_wrong_store(void **state)
{
	struct net *t = *state;
	struct td_genesis other = t->g;
	struct chain *c2 = NULL;
	struct store *st;
	char err[256];

	chain_close(t->c);
	t->c = NULL;
	snprintf(other.chain_id, sizeof(other.chain_id), "another-chain");
	assert_true(chain_open(&c2, t->path, &other, err, sizeof(err)) < 0);
	assert_null(c2);
	assert_non_null(strstr(err, "tenderd-test"));

	assert_int_equal(store_open(&st, t->path, err, sizeof(err)), 0);
	struct store_batch *b = store_batch_new();
	static const uint8_t v9[4] = { 0, 0, 0, 9 };
	store_batch_put(b, "S", 1, v9, sizeof(v9));
	assert_int_equal(store_write(st, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
	store_close(st);
	assert_true(chain_open(&c2, t->path, &t->g, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "schema"));

	/* a LevelDB directory that is not a tenderd store */
	char p2[128];
	snprintf(p2, sizeof(p2), "%s/plain", t->dir);
	assert_int_equal(store_open(&st, p2, err, sizeof(err)), 0);
	b = store_batch_new();
	store_batch_put(b, "x", 1, "y", 1);
	assert_int_equal(store_write(st, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
	store_close(st);
	assert_true(chain_open(&c2, p2, &t->g, err, sizeof(err)) < 0);

	/* the net's own store reopens once the schema is back */
	assert_int_equal(store_open(&st, t->path, err, sizeof(err)), 0);
	b = store_batch_new();
	static const uint8_t v1[4] = { 0, 0, 0, 1 };
	store_batch_put(b, "S", 1, v1, sizeof(v1));
	assert_int_equal(store_write(st, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
	store_close(st);
	assert_int_equal(chain_open(&t->c, t->path, &t->g, err, sizeof(err)), 0);
}

/* ---- crash consistency ------------------------------------------------------ */

/* Applies blocks of 1..24 new tenders forever; exits 3 on any failure. */
static void crash_child(struct net *t, unsigned seed)
{
	char err[256];
	json_t *frag = load_sample("tender-kisa.json");

	if (chain_open(&t->c, t->path, &t->g, err, sizeof(err)) != 0)
		_exit(3);
	srand(seed);
	for (;;) {
		uint32_t n = 1 + (uint32_t)rand() % 24;
		struct td_record *recs[24];
		for (uint32_t i = 0; i < n; i++) {
			char ocid[64];
			snprintf(ocid, sizeof(ocid), PREFIX "-crash-%llu-%u",
				 (unsigned long long)chain_height(t->c) + 1, i);
			recs[i] = mkrec(t, TD_KIND_TENDER, json_deep_copy(frag), ocid, t->sk[i % t->g.n]);
		}
		if (apply_recs(t, recs, n, err, sizeof(err)) != 0) {
			fprintf(stderr, "child: %s\n", err);
			_exit(3);
		}
	}
}

/* Checks blocks 1..h, their commits and every index against the tip. */
static void check_consistent(struct net *t)
{
	uint8_t prev[TD_HASH_LEN] = { 0 };
	uint64_t h = chain_height(t->c), total = 0;
	char err[256];

	for (uint64_t i = 1; i <= h; i++) {
		uint8_t *bb, *cb;
		size_t bl, cl;
		struct td_block *blk;
		struct td_commit cm;
		assert_int_equal(chain_block_raw(t->c, i, &bb, &bl, &cb, &cl), 0);
		if (td_block_decode(&blk, bb, bl, CHAIN_ID, false, err, sizeof(err)) != 0)
			fail_msg("block %llu: %s", (unsigned long long)i, err);
		assert_int_equal(blk->hdr.height, i);
		assert_memory_equal(blk->hdr.prev_hash, prev, TD_HASH_LEN);
		assert_int_equal(td_commit_decode(&cm, cb, cl, err, sizeof(err)), 0);
		assert_int_equal(td_commit_verify(&cm, &t->g, i, blk->hash, err, sizeof(err)), 0);
		for (uint32_t j = 0; j < blk->hdr.n_records; j++) {
			uint64_t at = 0;
			assert_true(chain_has_record(t->c, blk->records[j]->id, &at));
			assert_int_equal(at, i);
		}
		total += blk->hdr.n_records;
		memcpy(prev, blk->hash, TD_HASH_LEN);
		td_commit_clear(&cm);
		td_block_free(blk);
		free(bb);
		free(cb);
	}
	assert_memory_equal(chain_last_hash(t->c), prev, TD_HASH_LEN);
	assert_int_equal(chain_record_count(t->c), total);
	json_t *l = chain_list_json(t->c, 1000, NULL);
	assert_non_null(l);
	assert_int_equal(json_array_size(json_object_get(l, "tenders")), total < 1000 ? total : 1000);
	json_decref(l);

	/* the raw store: no block past the tip, exactly one record key per record */
	chain_close(t->c);
	t->c = NULL;
	struct store *st;
	assert_int_equal(store_open(&st, t->path, err, sizeof(err)), 0);
	uint8_t bk[9] = { 'B' }, bnext[9] = { 'B' };
	for (int i = 0; i < 8; i++) {
		bk[1 + i] = (uint8_t)(h >> (56 - 8 * i));
		bnext[1 + i] = (uint8_t)((h + 1) >> (56 - 8 * i));
	}
	assert_false(store_has(st, bnext, sizeof(bnext)));
	struct store_iter *it = store_iter_new(st, "R", 1, false);
	const uint8_t *k, *v;
	size_t kn, vn;
	uint64_t nkeys = 0;
	while (store_iter_next(it, &k, &kn, &v, &vn))
		nkeys++;
	assert_int_equal(nkeys, total);
	store_iter_free(it);
	it = store_iter_new(st, "B", 1, true);
	assert_true(h == 0 ? !store_iter_next(it, &k, &kn, &v, &vn) : store_iter_next(it, &k, &kn, &v, &vn));
	if (h) {
		assert_int_equal(kn, sizeof(bk));
		assert_memory_equal(k, bk, sizeof(bk));
	}
	store_iter_free(it);
	store_close(st);
	assert_int_equal(chain_open(&t->c, t->path, &t->g, err, sizeof(err)), 0);
}

static void test_crash(void **state)
{
	struct net *t = *state;
	uint64_t last = 0;
	unsigned seed = (unsigned)time(NULL);

	srand(seed);
	for (int round = 0; round < 12; round++) {
		chain_close(t->c);
		t->c = NULL;
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			crash_child(t, seed + (unsigned)round);
		usleep(20000 + (useconds_t)(rand() % 150000));
		assert_int_equal(kill(pid, SIGKILL), 0);
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
			fail_msg("child ended on its own (status %d), seed %u", status, seed);

		char err[256];
		assert_int_equal(chain_open(&t->c, t->path, &t->g, err, sizeof(err)), 0);
		assert_true(chain_height(t->c) >= last);
		last = chain_height(t->c);
		check_consistent(t);
	}
	assert_true(last > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_apply_and_query, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_four_validators, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_block_refusals, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_record_refusals, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_store, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup4, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
