/*
 * Tests for the streamed OCDS packages (chain_export in node/chainjson.c):
 * on a ledger of the sample releases (tenders, an amendment, an award, a
 * cancellation, many small tenders over several blocks, an empty block),
 * the text a chain_export produces piece by piece is byte for byte the
 * compact JSON of chain_release_package_json and chain_record_package_json
 * (the whole-answer code ledger.export used before), for every kind of
 * range; an export reads the ledger as of its start, whatever commits
 * meanwhile; an empty range says so.
 *
 * The ledger fixtures are those of tests/test_chain.c.
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
#include <cmocka.h>
#include <sodium.h>

#include "tenderd/block.h"
#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "chain.h"

static uint8_t CHAIN[TD_HASH_LEN]; /* the genesis hash of the newest fixture: what signatures bind */
#define CHAIN_ID "tenderd-test"
#define PREFIX "ocds-kr2020"
#define GENESIS_MS 1577836800000ull /* 2020-01-01T00:00:00Z */
#define MAX_VALS 4

struct net {
	struct td_genesis g;
	uint8_t sk[MAX_VALS][TD_SECKEY_LEN];
	char dir[64];
	char path[96];
	struct chain *c;
	uint64_t clock_ms;
};

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
	td_genesis_seal(&t->g);
	memcpy(CHAIN, t->g.hash, TD_HASH_LEN);
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

static int teardown(void **state)
{
	net_free(*state);
	return 0;
}
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
	/* After the tender's latest committed record (zeros if it has none: the lifecycle check refuses that). */
	uint8_t prev[TD_HASH_LEN] = { 0 };
	if (kind != TD_KIND_TENDER &&
	    chain_tender_last(t->c, json_string_value(json_object_get(rel, "ocid")), prev) != 0)
		memset(prev, 0, sizeof(prev));
	if (td_record_sign(&rec, kind, rel, ms, kind == TD_KIND_TENDER ? NULL : prev, CHAIN, sk, err, sizeof(err)) != 0)
		fail_msg("sign: %s", err);
	json_decref(rel);
	json_decref(frag);
	return rec;
}

/* Sets amendsReleaseID to id in every tender.amendments entry of frag that lacks it; returns frag. */
static json_t *with_ref(json_t *frag, const char *id)
{
	json_t *list = json_object_get(json_object_get(frag, "tender"), "amendments"), *e;
	size_t i;

	json_array_foreach(list, i, e) {
		if (!json_object_get(e, "amendsReleaseID"))
			json_object_set_new(e, "amendsReleaseID", json_string(id));
	}
	return frag;
}

/* with_ref with the latest committed release of ocid. */
static json_t *ref_last(struct net *t, json_t *frag, const char *ocid)
{
	char id[TD_ID_MAX + 1];

	assert_int_equal(chain_last_release_id(t->c, ocid, id), 0);
	return with_ref(frag, id);
}

/* A block at height over n records (stolen), proposed by validator height % n, time after the tip. */
static struct td_block *mkblock_at(struct net *t, uint64_t height, const uint8_t prev[static TD_HASH_LEN],
				   struct td_record **recs, uint32_t n)
{
	struct td_record **arr = calloc(n ? n : 1, sizeof(*arr));

	for (uint32_t i = 0; i < n; i++)
		arr[i] = recs[i];
	return td_block_new(height, prev, chain_last_time(t->c) + 1000, t->g.v[height % t->g.n].pk,
			    t->g.validators_hash, arr, n);
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
		td_vote_sign(cm->sigs[cm->n_sigs].sig, CHAIN, TD_VOTE_PRECOMMIT, height, 0, hash, t->sk[i]);
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

/* ---- the ledger of samples ------------------------------------------------- */

static struct td_record *sample(struct net *t, enum td_kind kind, const char *file, const char *ocid)
{
	return mkrec(t, kind, load_sample(file), ocid, t->sk[0]);
}

/* A small tender number i of its own (ocid PREFIX-gen-i), with an amount kept as written. */
static struct td_record *gen_tender(struct net *t, int i)
{
	char text[512];

	snprintf(text, sizeof(text),
		 "{\"ocid\": \"" PREFIX
		 "-gen-%04d\", \"tender\": {\"id\": \"gen-%d\", \"title\": \"Generated tender %d "
		 "\\u00e9\", \"status\": \"active\", \"value\": {\"amount\": %d.50, \"currency\": \"KRW\"}}}",
		 i, i, i, 1000 + i);
	return mkrec(t, TD_KIND_TENDER, parse(text), NULL, t->sk[0]);
}

/*
 * Blocks: 1 jeju + sejong; 2 the jeju amendment; 3 an empty block (if the
 * chain takes one); then award jeju + cancel sejong; kisa + gangwon;
 * 12 blocks of 25 generated tenders; an amendment-free cancellation of one
 * generated tender; private.
 */
static void fill(struct net *t)
{
	struct td_record *r[32];
	char err[256];

	r[0] = sample(t, TD_KIND_TENDER, "tender-jeju.json", NULL);
	r[1] = sample(t, TD_KIND_TENDER, "tender-sejong.json", NULL);
	apply_ok(t, r, 2);
	r[0] = mkrec(t, TD_KIND_AMENDMENT, ref_last(t, load_sample("amend-jeju.json"), PREFIX "-jeju-0001"),
		     PREFIX "-jeju-0001", t->sk[0]);
	apply_ok(t, r, 1);
	(void)apply_recs(t, r, 0, err, sizeof(err)); /* an empty block, where allowed */
	r[0] = sample(t, TD_KIND_AWARD, "award-jeju.json", NULL);
	r[1] = mkrec(t, TD_KIND_CANCELLATION, parse("{\"tender\": {\"description\": \"no budget\"}}"),
		     PREFIX "-sj-0001", t->sk[0]);
	apply_ok(t, r, 2);
	r[0] = sample(t, TD_KIND_TENDER, "tender-kisa.json", NULL);
	r[1] = sample(t, TD_KIND_TENDER, "tender-gangwon.json", NULL);
	apply_ok(t, r, 2);
	for (int b = 0; b < 12; b++) {
		for (int i = 0; i < 25; i++)
			r[i] = gen_tender(t, b * 25 + i);
		apply_ok(t, r, 25);
	}
	r[0] = mkrec(t, TD_KIND_CANCELLATION, parse("{\"tender\": {\"description\": \"withdrawn\"}}"),
		     PREFIX "-gen-0007", t->sk[0]);
	r[1] = sample(t, TD_KIND_TENDER, "tender-private.json", NULL);
	apply_ok(t, r, 2);
}

/* The whole text of an export of from..to, or NULL with *rc the code of chain_export_new. */
static char *export_text(struct net *t, uint64_t from, uint64_t to, bool records, int *rc)
{
	struct chain_export *x;
	struct chain_text text = { 0 };
	int r;

	*rc = chain_export_new(&x, t->c, from, to, records, "Test publisher", "tenderd://" CHAIN_ID "/export");
	if (*rc != 0)
		return NULL;
	while ((r = chain_export_next(x, &text)) == 1)
		;
	assert_int_equal(r, 0);
	assert_int_equal(chain_export_next(x, &text), 0); /* done stays done */
	chain_export_free(x);
	return text.p;
}

/* The compact text of the package the old code built whole, or NULL with *rc its code. */
static char *whole_text(struct net *t, uint64_t from, uint64_t to, bool records, int *rc)
{
	json_t *pkg = NULL;
	char *s;

	*rc = records ? chain_record_package_json(t->c, from, to, "Test publisher", "tenderd://" CHAIN_ID "/export",
						  &pkg) :
			chain_release_package_json(t->c, from, to, "Test publisher", "tenderd://" CHAIN_ID "/export",
						   &pkg);
	if (*rc != 0)
		return NULL;
	s = td_json_dump(pkg, JSON_COMPACT);
	json_decref(pkg);
	return s;
}

static void same(struct net *t, uint64_t from, uint64_t to, bool records)
{
	int rc_new, rc_old;
	char *a = export_text(t, from, to, records, &rc_new), *b = whole_text(t, from, to, records, &rc_old);

	assert_int_equal(rc_new, rc_old);
	if (a || b) {
		assert_non_null(a);
		assert_non_null(b);
		if (strcmp(a, b) != 0)
			fail_msg("blocks %llu..%llu (%s): streamed and whole packages differ:\n%s\n%s",
				 (unsigned long long)from, (unsigned long long)to, records ? "records" : "releases", a,
				 b);
	}
	free(a);
	free(b);
}

/* Every kind of range, both packages: the streamed text is the whole package's, byte for byte. */
static void test_same_bytes(void **state)
{
	struct net *t = *state;
	uint64_t top;

	fill(t);
	top = chain_height(t->c);
	assert_true(top >= 16);
	for (int records = 0; records < 2; records++) {
		same(t, 0, 0, records);
		same(t, 1, top, records);
		same(t, 0, top + 10, records);
		same(t, top, top, records);
		same(t, top + 1, top + 3, records);
		same(t, 5, 3, records);
		for (uint64_t from = 1; from <= top; from += 3)
			for (uint64_t to = from; to <= top; to += 4)
				same(t, from, to, records);
		same(t, 2, 2, records);
		same(t, 3, 3, records);
		same(t, 2, 4, records);
	}
}

/* An export reads the ledger as of its start: blocks committed meanwhile change nothing in its text. */
static void test_snapshot(void **state)
{
	struct net *t = *state;
	struct td_record *r[2];
	int rc;

	fill(t);
	uint64_t top = chain_height(t->c);
	for (int records = 0; records < 2; records++) {
		char *want = whole_text(t, 1, top, records, &rc);
		struct chain_export *x;
		struct chain_text text = { 0 };
		assert_int_equal(
			chain_export_new(&x, t->c, 1, top, records, "Test publisher", "tenderd://" CHAIN_ID "/export"),
			0);
		for (int i = 0; i < 3; i++)
			assert_int_equal(chain_export_next(x, &text), 1);
		/* the jeju tender changes (its compiled release, its list of releases) and a new one comes */
		r[0] = mkrec(
			t, TD_KIND_AMENDMENT,
			ref_last(t,
				 parse("{\"tender\": {\"title\": \"Renamed\", \"amendments\": [{\"id\": \"amend-x\", "
				       "\"date\": \"2020-03-21T10:00:00+09:00\", \"rationale\": \"typo\"}]}}"),
				 PREFIX "-jeju-0001"),
			PREFIX "-jeju-0001", t->sk[0]);
		r[1] = gen_tender(t, 900 + records);
		apply_ok(t, r, 2);
		while ((rc = chain_export_next(x, &text)) == 1)
			;
		assert_int_equal(rc, 0);
		assert_string_equal(text.p, want);
		chain_export_free(x);
		free(text.p);
		free(want);
	}
}

/* A range of blocks with no record is empty; a range with one is not. */
static void test_empty_range(void **state)
{
	struct net *t = *state;
	struct td_record *r[1];
	struct chain_export *x;
	char err[256];

	r[0] = sample(t, TD_KIND_TENDER, "tender-jeju.json", NULL);
	apply_ok(t, r, 1);
	if (apply_recs(t, r, 0, err, sizeof(err)) != 0)
		skip();
	assert_int_equal(chain_export_new(&x, t->c, 2, 2, false, NULL, NULL), 0);
	assert_true(chain_export_empty(x));
	chain_export_free(x);
	assert_int_equal(chain_export_new(&x, t->c, 1, 2, true, NULL, NULL), 0);
	assert_false(chain_export_empty(x));
	chain_export_free(x);
	same(t, 2, 2, false);
	same(t, 1, 2, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_same_bytes, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_empty_range, setup1, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
