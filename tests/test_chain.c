/*
 * Tests for node/chain.c: applying blocks signed by one and by four
 * validators, reading tenders, listings and blocks back after a reopen, every
 * refusal leaving the chain (and the store) as it was, listing filters and
 * their indexes and cursors, the amendsReleaseID rule, block releases, OCDS
 * packages validated against the official schemas (by /usr/bin/python3 with
 * jsonschema), crash consistency under SIGKILL while a child process
 * applies blocks, damage found on read and by chain_check_all, and a failed
 * store write.
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
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <sodium.h>

#include "tenderd/block.h"
#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "chain.h"
#include "chain_int.h"
#include "chainkeys.h"
#include "store.h"

static uint8_t CHAIN[TD_HASH_LEN]; /* the genesis hash of the newest fixture: what signatures bind */
#define CHAIN_ID "tenderd-test"
#define PREFIX "ocds-kr2020"
#define GENESIS_MS 1577836800000ull /* 2020-01-01T00:00:00Z */
#define MAX_VALS 4

struct net {
	struct td_genesis g;
	uint8_t sk[MAX_VALS][TD_SECKEY_LEN];
	uint8_t out_pk[TD_PUBKEY_LEN]; /* an agency that is a member, not a validator: "member-out" */
	uint8_t out_sk[TD_SECKEY_LEN];
	uint8_t obs_pk[TD_PUBKEY_LEN]; /* an observer: "observer-1" */
	uint8_t obs_sk[TD_SECKEY_LEN];
	char dir[64];
	char path[96];
	struct chain *c;
	uint64_t clock_ms;   /* record times, increasing */
	bool validate_first; /* apply_recs runs chain_validate before chain_apply (its remembered checks) */
	struct {             /* per ocid, the last record mkrec signed since the last block was made */
		char ocid[TD_OCID_MAX + 1];
		uint8_t id[TD_HASH_LEN];
	} made[64];
	unsigned nmade;
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
	crypto_sign_keypair(t->obs_pk, t->obs_sk);
	t->g.n_members = 1;
	t->g.n_observers = 1;
	t->g.others = calloc(2, sizeof(*t->g.others));
	snprintf(t->g.others[0].name, sizeof(t->g.others[0].name), "member-out");
	memcpy(t->g.others[0].pk, t->out_pk, TD_PUBKEY_LEN);
	snprintf(t->g.others[1].name, sizeof(t->g.others[1].name), "observer-1");
	memcpy(t->g.others[1].pk, t->obs_pk, TD_PUBKEY_LEN);
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
	free(t->g.others);
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

/* As setup1 and setup4, with every block validated before it is applied. */
static int setup1v(void **state)
{
	struct net *t = net_new(1);

	t->validate_first = true;
	*state = t;
	return 0;
}

static int setup4v(void **state)
{
	struct net *t = net_new(4);

	t->validate_first = true;
	*state = t;
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

/* ---- queries ------------------------------------------------------------------ */

static json_t *q_last; /* the answer of the last Q_OK or Q_RC */

/* The answer of a chain query that returned rc: fails the test unless rc is 0 and there is one. */
static json_t *q_ok(int rc)
{
	if (rc != 0)
		fail_msg("chain query failed: %s", td_strerror(rc));
	assert_non_null(q_last);
	return q_last;
}

/* The code of a chain query, checking that an error leaves no answer (an answer is freed). */
static int q_rc(int rc)
{
	if (rc == 0)
		json_decref(q_last);
	else
		assert_null(q_last);
	q_last = NULL;
	return rc;
}

/* Q_OK(chain_tender_json, c, ocid): the call with &q_last as its last argument, through q_ok; Q_RC likewise. */
#define Q_OK(fn, ...) q_ok(fn(__VA_ARGS__, &q_last))
#define Q_RC(fn, ...) q_rc(fn(__VA_ARGS__, &q_last))

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
/* When set, the prev every mkrec names (for records out of their ocid's chain). */
static const uint8_t *force_prev;

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
	/*
	 * After the last record signed here for the ocid (records are applied in
	 * the order they are made), else the tender's latest committed one; zeros
	 * if neither exists (the lifecycle check refuses that).
	 */
	const char *rocid = json_string_value(json_object_get(rel, "ocid"));
	uint8_t prev[TD_HASH_LEN] = { 0 };
	unsigned slot = t->nmade;
	for (unsigned i = 0; i < t->nmade; i++)
		if (strcmp(t->made[i].ocid, rocid) == 0)
			slot = i;
	if (force_prev)
		memcpy(prev, force_prev, TD_HASH_LEN);
	else if (slot < t->nmade)
		memcpy(prev, t->made[slot].id, TD_HASH_LEN);
	else if (kind != TD_KIND_TENDER && chain_tender_last(t->c, rocid, prev) != 0)
		memset(prev, 0, sizeof(prev));
	if (td_record_sign(&rec, kind, rel, ms, kind == TD_KIND_TENDER ? NULL : prev, CHAIN, sk, err, sizeof(err)) != 0)
		fail_msg("sign: %s", err);
	if (slot == t->nmade && t->nmade < sizeof(t->made) / sizeof(t->made[0]))
		snprintf(t->made[t->nmade++].ocid, sizeof(t->made[0].ocid), "%s", rocid);
	if (slot < t->nmade)
		memcpy(t->made[slot].id, rec->id, TD_HASH_LEN);
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

	t->nmade = 0; /* made records go into a block: later ones chain on what the chain then holds */
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

/*
 * Applies a block over recs with a full commit; returns chain_apply's code
 * (with validate_first, chain_validate's when it refuses the block).
 */
static int apply_recs(struct net *t, struct td_record **recs, uint32_t n, char *err, size_t errlen)
{
	struct td_block *blk = mkblock(t, recs, n);
	struct td_commit cm;
	int rc;

	if (t->validate_first) {
		rc = chain_validate(t->c, blk, err, errlen);
		if (rc != 0) {
			td_block_free(blk);
			return rc;
		}
	}
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
 * Validates, then applies, a block over recs and expects both to refuse it
 * with want and the same message; checks the chain is unchanged and that
 * none of the records got in. err gets the message.
 */
static void refuse(struct net *t, struct td_record **recs, uint32_t n, int want, char *err, size_t errlen)
{
	struct tip before;
	uint8_t ids[8][TD_HASH_LEN];
	char verr[256] = "";
	struct td_block *blk;
	struct td_commit cm;
	int rc;

	assert_true(n <= 8);
	for (uint32_t i = 0; i < n; i++)
		memcpy(ids[i], recs[i]->id, TD_HASH_LEN);
	tip_get(t, &before);
	err[0] = '\0';
	blk = mkblock(t, recs, n);
	rc = chain_validate(t->c, blk, verr, sizeof(verr));
	if (rc != want)
		fail_msg("validate gave %d (%s), want %d", rc, verr, want);
	mkcommit(t, &cm, blk);
	rc = chain_apply(t->c, blk, &cm, err, errlen);
	td_commit_clear(&cm);
	td_block_free(blk);
	if (rc != want)
		fail_msg("apply gave %d (%s), want %d", rc, err, want);
	assert_string_equal(verr, err);
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
	assert_int_equal(Q_RC(chain_tender_json, t->c, "ocds-kr2020-kisa-0001"), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_block_json, t->c, 0), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_block_json, t->c, 1), TD_ENOTFOUND);
	json_t *l = Q_OK(chain_list_json, t->c, NULL, 10, NULL);
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
	r[1] = mkrec(t, TD_KIND_AMENDMENT, with_ref(load_sample("amend-jeju.json"), r[0]->release_id),
		     "ocds-kr2020-jeju-0001", t->sk[0]);
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
	json_t *tj = Q_OK(chain_tender_json, t->c, "ocds-kr2020-jeju-0001");
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
	assert_int_equal(Q_RC(chain_tender_json, t->c, "ocds-kr2020-none"), TD_ENOTFOUND);

	/* a tender with one release: compiled from it when read, the same as a merge into {} */
	tj = Q_OK(chain_tender_json, t->c, "ocds-kr2020-kisa-0001");
	assert_non_null(tj);
	rels = json_object_get(tj, "releases");
	assert_int_equal(json_array_size(rels), 1);
	json_t *want = json_object();
	td_release_merge(want, json_object_get(json_array_get(rels, 0), "release"));
	assert_true(json_equal(want, json_object_get(tj, "compiled")));
	assert_string_equal(json_string_value(json_array_get(jpath(json_object_get(tj, "compiled"), "tag", NULL), 0)),
			    "compiled");
	json_decref(want);
	json_decref(tj);

	/* the listing: newest first by (height, index of the first release) */
	static const char *order[] = { "ocds-kr2020-gw-0001", "ocds-kr2020-jeju-0001", "ocds-kr2020-kisa-0001" };
	json_t *l = Q_OK(chain_list_json, t->c, NULL, 10, NULL);
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
	assert_string_equal(jstr(sg, "agency_name"), "member-out"); /* a member: its genesis name */
	assert_string_equal(jstr(sg, "agency"), outhex);
	assert_int_equal(juint(sg, "releases"), 1);
	json_decref(l);

	/* pagination: one at a time, then two and one */
	char cursor[128] = "";
	for (size_t i = 0; i < 3; i++) {
		l = Q_OK(chain_list_json, t->c, NULL, 1, i ? cursor : NULL);
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
	l = Q_OK(chain_list_json, t->c, NULL, 2, NULL);
	assert_int_equal(json_array_size(json_object_get(l, "tenders")), 2);
	snprintf(cursor, sizeof(cursor), "%s", jstr(l, "next_cursor"));
	json_decref(l);
	l = Q_OK(chain_list_json, t->c, NULL, 2, cursor);
	ts = json_object_get(l, "tenders");
	assert_int_equal(json_array_size(ts), 1);
	assert_string_equal(jstr(json_array_get(ts, 0), "ocid"), order[2]);
	assert_true(json_is_null(json_object_get(l, "next_cursor")));
	json_decref(l);
	/* bad cursors and limits */
	assert_int_equal(Q_RC(chain_list_json, t->c, NULL, 10, "zz"), TD_EINVAL);
	assert_int_equal(Q_RC(chain_list_json, t->c, NULL, 10, "4c00"), TD_EINVAL);
	assert_int_equal(Q_RC(chain_list_json, t->c, NULL, 10, "5900000000000000020000000000"), TD_EINVAL);
	assert_int_equal(Q_RC(chain_list_json, t->c, NULL, 0, NULL), TD_EINVAL);
	assert_int_equal(Q_RC(chain_list_json, t->c, NULL, 1001, NULL), TD_EINVAL);

	/* blocks */
	json_t *bj = Q_OK(chain_block_json, t->c, 2);
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
	assert_int_equal(Q_RC(chain_block_json, t->c, 4), TD_ENOTFOUND);

	/* raw block and commit decode to what was applied */
	uint8_t *bb, *cb;
	size_t bl, cl;
	struct td_block *blk;
	struct td_commit cm;
	assert_int_equal(chain_block_raw(t->c, 2, &bb, &bl, &cb, &cl), 0);
	assert_int_equal(td_block_decode(&blk, bb, bl, CHAIN, false, err, sizeof(err)), 0);
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
	json_t *bj = Q_OK(chain_block_json, t->c, 1);
	assert_int_equal(json_array_size(jpath(bj, "commit", "signatures")), 3);
	assert_string_equal(jstr(json_array_get(jpath(bj, "commit", "signatures"), 1), "name"), "agency-2");
	assert_string_equal(jstr(bj, "proposer_name"), "agency-1");
	json_decref(bj);
	json_t *l = Q_OK(chain_list_json, t->c, NULL, 5, NULL);
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
		blk = td_block_new(2, chain_last_hash(t->c), tm, t->out_pk, t->g.validators_hash, arr, 1);
	}
	mkcommit(t, &cm, blk);
	TRY(TD_EINVAL);
	assert_non_null(strstr(err, "proposer"));

	/* time before the previous block */
	NEXT_REC();
	{
		struct td_record **arr = calloc(1, sizeof(*arr));
		arr[0] = r[0];
		blk = td_block_new(2, chain_last_hash(t->c), chain_last_time(t->c) - 1, t->g.v[0].pk,
				   t->g.validators_hash, arr, 1);
	}
	mkcommit(t, &cm, blk);
	TRY(TD_EINVAL);

	reopen(t);
	tip_same(t, &tp);
	assert_false(chain_has_record(t->c, id, NULL));
	assert_int_equal(Q_RC(chain_tender_json, t->c, "ocds-kr2020-jeju-0001"), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_block_json, t->c, 2), TD_ENOTFOUND);

	/* and a good block still goes on top */
	NEXT_REC();
	apply_ok(t, r, 1);
	assert_int_equal(chain_height(t->c), 2);
	assert_true(chain_has_record(t->c, id, NULL));
#undef NEXT_REC
#undef TRY
}

/*
 * Only validators and members author records: a record signed by an
 * observer or by a key the chain does not know is refused when checked and
 * in a block, and the block leaves the ledger as it was.
 */
static void test_record_authors(void **state)
{
	struct net *t = *state;
	struct td_record *r[1];
	struct tip tp;
	uint8_t spk[TD_PUBKEY_LEN], ssk[TD_SECKEY_LEN];
	char err[256];

	crypto_sign_keypair(spk, ssk);
	tip_get(t, &tp);
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, ssk);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_EPERM);
	assert_non_null(strstr(err, "is not a validator or member of the chain"));
	refuse(t, r, 1, TD_EPERM, err, sizeof(err));
	tip_same(t, &tp);
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->obs_sk);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_EPERM);
	assert_non_null(strstr(err, "(\"observer-1\") is an observer"));
	refuse(t, r, 1, TD_EPERM, err, sizeof(err));
	tip_same(t, &tp);
	/* The member publishes; a validator, too. */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->out_sk);
	apply_ok(t, r, 1);
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	apply_ok(t, r, 1);
	assert_int_equal(chain_height(t->c), tp.height + 2);
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
		ref_last(
			t,
			parse("{\"id\": \"jeju-amend-1\", \"tender\": {\"title\": \"T2\", \"amendments\": [{\"id\": \"a\", \"rationale\": \"r\"}]}}"),
			"ocds-kr2020-jeju-0001"),
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
	assert_int_equal(Q_RC(chain_tender_json, t->c, "ocds-kr2020-kisa-0001"), TD_ENOTFOUND);

	/* the same record twice: in one block, and again after it was committed */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-gangwon.json"), NULL, t->sk[0]);
	{
		uint8_t *bytes = r[0]->bytes;
		struct td_record *copy = NULL;
		assert_int_equal(td_record_decode(&copy, bytes, r[0]->len, CHAIN, err, sizeof(err)), 0);
		r[1] = copy;
	}
	refuse(t, r, 2, TD_EEXIST, err, sizeof(err));
	assert_non_null(strstr(err, "already on the ledger"));
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-gangwon.json"), NULL, t->sk[0]);
	{
		struct td_record *copy = NULL;
		assert_int_equal(td_record_decode(&copy, r[0]->bytes, r[0]->len, CHAIN, err, sizeof(err)), 0);
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
	/* the award names the cancellation as its previous record: the committed ledger alone has another */
	assert_int_equal(chain_check_record(t->c, r[1], err, sizeof(err)), TD_ERULE);
	assert_non_null(strstr(err, "as its previous one"));
	refuse(t, r, 2, TD_ERULE, err, sizeof(err));
	assert_non_null(strstr(err, "cancelled"));

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
		ref_last(
			t,
			parse("{\"id\": \"jeju-amend-1\", \"tender\": {\"title\": \"T3\", \"amendments\": [{\"id\": \"a\", \"rationale\": \"r\"}]}}"),
			"ocds-kr2020-jeju-0001"),
		"ocds-kr2020-jeju-0001", t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_EEXIST);
	refuse(t, r, 1, TD_EEXIST, err, sizeof(err));
	assert_non_null(strstr(err, "jeju-amend-1"));
	r[0] = mkrec(
		t, TD_KIND_AMENDMENT,
		ref_last(
			t,
			parse("{\"id\": \"jeju-amend-2\", \"tender\": {\"title\": \"T4\", \"amendments\": [{\"id\": \"a\", \"rationale\": \"r\"}]}}"),
			"ocds-kr2020-jeju-0001"),
		"ocds-kr2020-jeju-0001", t->sk[0]);
	r[1] = mkrec(
		t, TD_KIND_AMENDMENT,
		ref_last(
			t,
			parse("{\"id\": \"jeju-amend-2\", \"tender\": {\"title\": \"T5\", \"amendments\": [{\"id\": \"a\", \"rationale\": \"r\"}]}}"),
			"ocds-kr2020-jeju-0001"),
		"ocds-kr2020-jeju-0001", t->sk[0]);
	refuse(t, r, 2, TD_EEXIST, err, sizeof(err));

	/* a good record followed by a bad one: nothing of the block is written */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_AMENDMENT, load_sample("amend-jeju.json"), "ocds-kr2020-jeju-0001", t->out_sk);
	refuse(t, r, 2, TD_EPERM, err, sizeof(err));

	reopen(t);
	tip_same(t, &tp);
	assert_int_equal(Q_RC(chain_tender_json, t->c, "ocds-kr2020-kisa-0001"), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_tender_json, t->c, "ocds-zz9999-x"), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_tender_json, t->c, "ocds-kr2020-nobody-1"), TD_ENOTFOUND);
	json_t *tj = Q_OK(chain_tender_json, t->c, "ocds-kr2020-jeju-0001");
	assert_int_equal(json_array_size(json_object_get(tj, "releases")), 2);
	assert_string_equal(jstr(jpath(tj, "compiled", "tender"), "title"), "T2");
	json_decref(tj);
	tj = Q_OK(chain_tender_json, t->c, "ocds-kr2020-sj-0001");
	assert_int_equal(json_array_size(json_object_get(tj, "releases")), 2);
	assert_string_equal(jstr(jpath(tj, "compiled", "tender"), "status"), "cancelled");
	json_decref(tj);
	tj = Q_OK(chain_tender_json, t->c, "ocds-kr2020-kisa-0002");
	assert_int_equal(json_array_size(json_object_get(tj, "releases")), 1);
	json_decref(tj);
	json_t *l = Q_OK(chain_list_json, t->c, NULL, 100, NULL);
	assert_int_equal(json_array_size(json_object_get(l, "tenders")), 4);
	json_decref(l);
}

/* Writes key = val into the store at path (not open elsewhere), synced. */
static void put_key(const char *path, const char *key, const void *val, size_t vlen)
{
	struct store *st;
	struct store_batch *b;
	char err[256];

	assert_int_equal(store_open(&st, path, err, sizeof(err)), 0);
	b = store_batch_new();
	store_batch_put(b, key, strlen(key), val, vlen);
	assert_int_equal(store_write(st, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
	store_close(st);
}

/* A store of another chain or schema is refused. */
static void test_wrong_store(void **state)
{
	struct net *t = *state;
	struct td_genesis other = t->g;
	struct chain *c2 = NULL;
	char err[256];

	chain_close(t->c);
	t->c = NULL;
	snprintf(other.chain_id, sizeof(other.chain_id), "another-chain");
	td_genesis_seal(&other);
	/* The store holds no block: another genesis is taken (an agreed genesis over a home's own). */
	assert_int_equal(chain_open(&c2, t->path, &other, err, sizeof(err)), 0);
	assert_true(chain_genesis_adopted(c2));
	chain_close(c2);
	c2 = NULL;
	assert_int_equal(chain_open(&c2, t->path, &other, err, sizeof(err)), 0);
	assert_false(chain_genesis_adopted(c2)); /* already its own */
	chain_close(c2);
	c2 = NULL;

	static const uint8_t v9[4] = { 0, 0, 0, 9 };
	put_key(t->path, "S", v9, sizeof(v9));
	assert_true(chain_open(&c2, t->path, &t->g, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "schema"));

	/* a LevelDB directory that is not a tenderd store */
	char p2[128];
	snprintf(p2, sizeof(p2), "%s/plain", t->dir);
	put_key(p2, "x", "y", 1);
	assert_true(chain_open(&c2, p2, &t->g, err, sizeof(err)) < 0);

	/* a store of ledger format 1 (schema 3) is refused with what to do */
	static const uint8_t v3[4] = { 0, 0, 0, 3 };
	put_key(t->path, "S", v3, sizeof(v3));
	assert_true(chain_open(&c2, t->path, &t->g, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "older ledger format"));
	assert_non_null(strstr(err, "Resync"));

	/* a store of format 2 with records under "D" (schema 4) is refused too */
	static const uint8_t v4[4] = { 0, 0, 0, 4 };
	put_key(t->path, "S", v4, sizeof(v4));
	assert_true(chain_open(&c2, t->path, &t->g, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "older layout"));
	assert_non_null(strstr(err, "records file"));
	assert_non_null(strstr(err, "Resync"));

	/* the net's own store reopens once the schema is back */
	static const uint8_t cur[4] = { 0, 0, 0, CKEY_SCHEMA_VERSION };
	put_key(t->path, "S", cur, sizeof(cur));
	assert_int_equal(chain_open(&t->c, t->path, &t->g, err, sizeof(err)), 0);
}

/* The keys of the store at path whose first byte is tag, counted. */
static uint64_t count_tag(const char *path, uint8_t tag)
{
	struct store *st;
	struct store_iter *it;
	const uint8_t *key;
	size_t klen;
	uint64_t n = 0;
	char err[256];

	assert_int_equal(store_open(&st, path, err, sizeof(err)), 0);
	it = store_iter_new(st, &tag, 1, false);
	while (store_iter_next(it, &key, &klen, NULL, NULL))
		n++;
	assert_int_equal(store_iter_error(it), 0);
	store_iter_free(it);
	store_close(st);
	return n;
}

/* Applies three blocks: jeju's tender, its amendment (so it has two releases), kisa's tender. */
static void apply_jeju_amended_kisa(struct net *t)
{
	const char *jeju = PREFIX "-jeju-0001";
	struct td_record *r[1];

	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[0]);
	apply_ok(t, r, 1);
	r[0] = mkrec(t, TD_KIND_AMENDMENT, ref_last(t, load_sample("amend-jeju.json"), jeju), jeju, t->sk[0]);
	apply_ok(t, r, 1);
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	apply_ok(t, r, 1);
}

/* The schema version of the store at path. */
static uint32_t schema_of(const char *path)
{
	struct store *st;
	char err[256];
	uint8_t *v;
	size_t vl;
	uint32_t ver;

	assert_int_equal(store_open(&st, path, err, sizeof(err)), 0);
	assert_int_equal(store_get(st, "S", 1, &v, &vl), 0);
	assert_int_equal(vl, 4);
	ver = ckey_get_u32(v);
	free(v);
	store_close(st);
	return ver;
}

/*
 * Gives every list entry but the every-tender ones the ocid as its value,
 * as schemas 5 to 7 wrote them; returns how many it rewrote.
 */
static unsigned old_list_values(const char *path)
{
	const uint8_t tag = 'L';
	struct store *st;
	struct store_iter *it;
	struct store_batch *b = store_batch_new();
	const uint8_t *key, *val;
	size_t klen, vlen;
	unsigned n = 0;
	char err[256];

	assert_int_equal(store_open(&st, path, err, sizeof(err)), 0);
	it = store_iter_new(st, &tag, 1, false);
	while (store_iter_next(it, &key, &klen, &val, &vlen)) {
		struct ckey all;
		uint8_t *ocid;
		size_t on;
		assert_true(klen >= 2 + 12);
		if (key[1] == 0) {
			assert_true(vlen > 0);
			continue;
		}
		assert_int_equal(vlen, 0);
		ckey_lix_prefix(&all, CKEY_LIX_ALL, NULL);
		ckey_bytes(&all, key + klen - 12, 12);
		assert_int_equal(store_get(st, all.b, all.n, &ocid, &on), 0);
		store_batch_put(b, key, klen, ocid, on);
		free(ocid);
		n++;
	}
	assert_int_equal(store_iter_error(it), 0);
	store_iter_free(it);
	assert_int_equal(store_write(st, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
	store_close(st);
	return n;
}

/* The list of every tender and the lists filtered by kisa's agency and by status "active", as one array. */
static json_t *lists_of(struct chain *c, const uint8_t *agency)
{
	struct chain_filter fa = { .agency = agency }, fs = { .status = "active" };
	json_t *all = json_array();

	json_array_append_new(all, Q_OK(chain_list_json, c, NULL, 10, NULL));
	json_array_append_new(all, Q_OK(chain_list_json, c, &fa, 10, NULL));
	json_array_append_new(all, Q_OK(chain_list_json, c, &fs, 10, NULL));
	return all;
}

/*
 * A schema 5 store (summaries under "Y", compiled releases under "K"), a
 * schema 6 one ("K" only) and a schema 7 one open as the current schema
 * with those keys deleted. Their list entries, which all named the ocid,
 * are kept: tenders and lists, filtered or not, read the same as before,
 * and chain_check_all accepts them. Such a store of another chain is
 * refused untouched.
 */
static void upgrade_from(void **state, uint8_t from)
{
	struct net *t = *state;
	struct td_genesis other = t->g;
	const char *jeju = PREFIX "-jeju-0001";
	const uint8_t old[4] = { 0, 0, 0, from };
	json_t *list0, *list1, *tender0, *tender1;
	struct chain *c2 = NULL;
	uint64_t bad;
	char err[256];

	apply_jeju_amended_kisa(t);
	list0 = lists_of(t->c, t->g.v[0].pk);
	assert_int_equal(json_array_size(json_object_get(json_array_get(list0, 0), "tenders")), 2);
	assert_int_equal(json_array_size(json_object_get(json_array_get(list0, 1), "tenders")), 2);
	tender0 = Q_OK(chain_tender_json, t->c, jeju);
	chain_close(t->c);
	t->c = NULL;
	assert_int_equal(schema_of(t->path), CKEY_SCHEMA_VERSION);

	/* what the old schema held beside the rest: two tenders, each in 'a', 's', 'c', 'm' and 'd' */
	assert_int_equal(old_list_values(t->path), 10);
	put_key(t->path, "S", old, sizeof(old));
	if (from < 7)
		put_key(t->path, "K" PREFIX "-jeju-0001", "{\"ocid\":\"old\"}", 14);
	if (from == 5) {
		put_key(t->path, "Y" PREFIX "-jeju-0001", "{\"title\":\"old\"}", 15);
		put_key(t->path, "Y" PREFIX "-kisa-0001", "{\"title\":\"old\"}", 15);
	}

	snprintf(other.chain_id, sizeof(other.chain_id), "another-chain");
	td_genesis_seal(&other);
	assert_true(chain_open(&c2, t->path, &other, err, sizeof(err)) < 0);
	assert_int_equal(count_tag(t->path, 'Y'), from == 5 ? 2 : 0);
	assert_int_equal(count_tag(t->path, 'K'), from < 7 ? 1 : 0);
	assert_int_equal(schema_of(t->path), from);

	assert_int_equal(chain_open(&t->c, t->path, &t->g, err, sizeof(err)), 0);
	list1 = lists_of(t->c, t->g.v[0].pk);
	tender1 = Q_OK(chain_tender_json, t->c, jeju);
	assert_int_equal(chain_check_all(t->c, &bad, err, sizeof(err), NULL, NULL), 0);
	assert_true(json_equal(list0, list1));
	assert_true(json_equal(tender0, tender1));
	json_decref(list0);
	json_decref(list1);
	json_decref(tender0);
	json_decref(tender1);
	chain_close(t->c);
	t->c = NULL;
	assert_int_equal(count_tag(t->path, 'Y'), 0);
	assert_int_equal(count_tag(t->path, 'K'), 0);
	assert_int_equal(schema_of(t->path), CKEY_SCHEMA_VERSION);
	assert_int_equal(chain_open(&t->c, t->path, &t->g, err, sizeof(err)), 0);
}

static void test_upgrade_5(void **state)
{
	upgrade_from(state, 5);
}

static void test_upgrade_6(void **state)
{
	upgrade_from(state, 6);
}

static void test_upgrade_7(void **state)
{
	upgrade_from(state, 7);
}

/* ---- the state's indexed fields, merged one release at a time ---------------- */

static uint64_t tst_rng = 88172645463325252ull;

static unsigned tst_pick(unsigned n)
{
	tst_rng ^= tst_rng << 13;
	tst_rng ^= tst_rng >> 7;
	tst_rng ^= tst_rng << 17;
	return (unsigned)(tst_rng % n);
}

/* Appends a random member "name": one of vals, or none (as likely as each value). */
static void tst_member(char *buf, size_t cap, const char *name, const char *const *vals, unsigned n)
{
	unsigned i = tst_pick(n + 1);

	if (i >= n)
		return;
	snprintf(buf + strlen(buf), cap - strlen(buf), "%s\"%s\":%s", buf[strlen(buf) - 1] == '{' ? "" : ",", name,
		 vals[i]);
}

/* A random release that exercises every way the merge can change the indexed fields. */
static void tst_release(char *buf, size_t cap, unsigned seq)
{
	static const char *const leaf[] = { "null",
					    "\"active\"",
					    "\"cancelled\"",
					    "\"complete\"",
					    "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
					    "{}",
					    "{\"a\":1}",
					    "[]",
					    "[{\"id\":\"1\"}]",
					    "[1,2]",
					    "7",
					    "true" };
	static const char *const date[] = { "null",
					    "\"2020-03-09T09:00:00+09:00\"",
					    "\"2021-01-01T00:00:00Z\"",
					    "\"2022-05-01T12:00:00+09:00\"",
					    "\"2023-07-01T00:00:00Z\"",
					    "\"not a date\"",
					    "{}",
					    "{\"a\":1}",
					    "[]",
					    "5" };
	static const char *const shape[] = { "null", "{}", "[]", "\"x\"", "[{\"id\":\"t\"}]", "5" };
	char period[512] = "{", tender[2048] = "{\"title\":\"t\"";

	tst_member(period, sizeof(period), "startDate", date, 10);
	strcat(period, "}");
	tst_member(tender, sizeof(tender), "status", leaf, 12);
	tst_member(tender, sizeof(tender), "mainProcurementCategory", leaf, 12);
	tst_member(tender, sizeof(tender), "procurementMethod", leaf, 12);
	{
		const char *const p[] = { shape[tst_pick(6)], period, period, period, period };
		tst_member(tender, sizeof(tender), "tenderPeriod", p, 5);
	}
	strcat(tender, "}");
	snprintf(buf, cap, "{\"ocid\":\"o\",\"id\":\"r%u\",\"date\":\"2020-03-09T09:00:00Z\"", seq);
	{
		const char *const tv[] = { shape[tst_pick(6)], tender, tender, tender };
		tst_member(buf, cap, "tender", tv, 4);
	}
	strcat(buf, "}");
}

/*
 * chain_tstate_release, one release at a time, gives what
 * chain_tstate_compiled reads from the merged releases, for releases that
 * set, null, empty, replace with other shapes or leave out each field.
 */
static void test_tstate_incremental(void **state)
{
	(void)state;
	unsigned changed = 0;

	for (unsigned run = 0; run < 4000; run++) {
		struct ckey_tstate inc, ref;
		json_t *compiled = json_object();
		char text[4096], e[TD_ERRMSG_MAX];
		const unsigned n = 1 + tst_pick(4);

		memset(&inc, 0, sizeof(inc));
		inc.first_date = 1234567;
		inc.date = inc.first_date;
		ref = inc;
		for (unsigned i = 0; i < n; i++) {
			json_t *rel;
			tst_release(text, sizeof(text), i);
			rel = td_json_load(text, strlen(text), e, sizeof(e));
			if (!rel)
				fail_msg("%s: %s", text, e);
			chain_tstate_release(&inc, rel);
			td_release_merge(compiled, rel);
			chain_tstate_compiled(&ref, compiled);
			json_decref(rel);
			if (strcmp(inc.status, ref.status) != 0 || strcmp(inc.category, ref.category) != 0 ||
			    strcmp(inc.method, ref.method) != 0 || inc.date != ref.date || inc.flags != ref.flags) {
				char *c = json_dumps(compiled, JSON_COMPACT);
				fail_msg(
					"run %u release %u %s: incremental status '%s' category '%s' method '%s' date %llu "
					"flags %u; compiled %s gives '%s' '%s' '%s' %llu %u",
					run, i, text, inc.status, inc.category, inc.method,
					(unsigned long long)inc.date, inc.flags, c, ref.status, ref.category,
					ref.method, (unsigned long long)ref.date, ref.flags);
			}
			changed += ref.status[0] != '\0' && ref.date != ref.first_date;
		}
		json_decref(compiled);
	}
	print_message("%u of the states had a status and a date from startDate\n", changed);
	assert_true(changed > 300); /* the generator reaches them */
}

/* ---- listing filters -------------------------------------------------------- */

static json_t *parsef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *parsef(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return parse(buf);
}

/* A new tender PREFIX-name with these fields (start NULL: no tenderPeriod) signed with sk. */
static struct td_record *mktender(struct net *t, const char *name, const char *category, const char *method,
				  const char *start, const uint8_t sk[static TD_SECKEY_LEN])
{
	char period[128] = "";

	if (start)
		snprintf(period, sizeof(period), ", \"tenderPeriod\": {\"startDate\": \"%s\"}", start);
	return mkrec(t, TD_KIND_TENDER,
		     parsef("{\"ocid\": \"" PREFIX "-%s\", \"tender\": {\"id\": \"%s\", \"title\": \"Tender %s\", "
			    "\"status\": \"active\", \"value\": {\"amount\": 1000.50, \"currency\": \"KRW\"}, "
			    "\"procurementMethod\": \"%s\", \"mainProcurementCategory\": \"%s\"%s}}",
			    name, name, name, method, category, period),
		     NULL, sk);
}

/* Appends the ocids of a listing answer, without PREFIX "-", to out as space-separated words. */
static void collect(const json_t *l, char *out, size_t outlen)
{
	const json_t *ts = json_object_get(l, "tenders"), *e;
	size_t i;

	assert_true(json_is_array(ts));
	json_array_foreach(ts, i, e) {
		const char *ocid = jstr(e, "ocid");
		size_t n = strlen(out);
		assert_true(strncmp(ocid, PREFIX "-", strlen(PREFIX) + 1) == 0);
		snprintf(out + n, outlen - n, "%s%s", n ? " " : "", ocid + strlen(PREFIX) + 1);
	}
}

/* The listing under f is exactly want, in one answer and in pages of two through the cursor. */
static void expect(struct net *t, const struct chain_filter *f, const char *want)
{
	char got[1024] = "", cursor[1024] = "";
	json_t *l = Q_OK(chain_list_json, t->c, f, 1000, NULL);

	assert_non_null(l);
	assert_true(json_is_null(json_object_get(l, "next_cursor")));
	collect(l, got, sizeof(got));
	json_decref(l);
	assert_string_equal(got, want);

	got[0] = '\0';
	for (int page = 0;; page++) {
		assert_true(page < 20);
		l = Q_OK(chain_list_json, t->c, f, 2, page ? cursor : NULL);
		assert_non_null(l);
		assert_true(json_array_size(json_object_get(l, "tenders")) <= 2);
		collect(l, got, sizeof(got));
		const json_t *nc = json_object_get(l, "next_cursor");
		if (json_is_null(nc)) {
			json_decref(l);
			break;
		}
		assert_true(td_json_is_string(nc));
		snprintf(cursor, sizeof(cursor), "%s", json_string_value(nc));
		json_decref(l);
	}
	assert_string_equal(got, want);
}

/* The next_cursor of one call (limit 1) under f into out; asserts there is one. */
static void first_cursor(struct net *t, const struct chain_filter *f, char *out, size_t outlen)
{
	json_t *l = Q_OK(chain_list_json, t->c, f, 1, NULL);

	assert_non_null(l);
	snprintf(out, outlen, "%s", jstr(l, "next_cursor"));
	json_decref(l);
}

/* The "N" count of a list index value (tag and value bytes) in the raw store; 0 if absent. */
static uint64_t raw_count(struct store *st, char tag, const void *v, size_t vlen)
{
	uint8_t k[64], *val;
	size_t kl = 0, n;
	uint64_t r = 0;

	k[kl++] = 'N';
	k[kl++] = (uint8_t)tag;
	memcpy(k + kl, v, vlen);
	kl += vlen;
	if (store_get(st, k, kl, &val, &n) == TD_ENOTFOUND)
		return 0;
	assert_int_equal(n, 8);
	for (size_t i = 0; i < 8; i++)
		r = r << 8 | val[i];
	free(val);
	return r;
}

/*
 * Every filter alone and combined, since/until over +09:00 offsets, cursors
 * under filters, and the indexes following amendments and a cancellation.
 */
static void test_list_filters(void **state)
{
	struct net *t = *state;
	const uint8_t *a0 = t->g.v[0].pk, *a1 = t->g.v[1].pk;
	struct td_record *r[4];
	struct chain_filter f;
	char err[256], cur[1024];

	/*
	 * tender date in UTC and order by first release (newest last):
	 *   f1 a0 goods open       03-09 00:00:00.000    height 1
	 *   f2 a1 services select. 03-08 23:30:00.000    height 1
	 *   f3 a0 services open    03-08 23:59:59.999    height 2
	 *   f4 a2 works limited    (first release date: 2020-01-01)
	 *   f5 a0 goods selective  03-09 16:00:00.000    height 2
	 *   f6 a1 goods open       03-09 00:00:00.001    height 3
	 *   f7 out services open   03-09 00:00:00.000    height 3
	 */
	r[0] = mktender(t, "f1", "goods", "open", "2020-03-09T09:00:00+09:00", t->sk[0]);
	r[1] = mktender(t, "f2", "services", "selective", "2020-03-08T23:30:00Z", t->sk[1]);
	apply_ok(t, r, 2);
	r[0] = mktender(t, "f3", "services", "open", "2020-03-09T08:59:59.999+09:00", t->sk[0]);
	r[1] = mktender(t, "f4", "works", "limited", NULL, t->sk[2]);
	r[2] = mktender(t, "f5", "goods", "selective", "2020-03-10T01:00:00+09:00", t->sk[0]);
	apply_ok(t, r, 3);
	r[0] = mktender(t, "f6", "goods", "open", "2020-03-09T00:00:00.001Z", t->sk[1]);
	r[1] = mktender(t, "f7", "services", "open", "2020-03-09T10:00:00+10:00", t->out_sk);
	apply_ok(t, r, 2);

	expect(t, NULL, "f7 f6 f5 f4 f3 f2 f1");
	memset(&f, 0, sizeof(f));
	expect(t, &f, "f7 f6 f5 f4 f3 f2 f1");

	/* each filter alone */
	f = (struct chain_filter){ .agency = a0 };
	expect(t, &f, "f5 f3 f1");
	f = (struct chain_filter){ .agency = a1 };
	expect(t, &f, "f6 f2");
	f = (struct chain_filter){ .agency = t->out_pk };
	expect(t, &f, "f7");
	f = (struct chain_filter){ .agency = t->g.v[3].pk };
	expect(t, &f, "");
	f = (struct chain_filter){ .status = "active" };
	expect(t, &f, "f7 f6 f5 f4 f3 f2 f1");
	f = (struct chain_filter){ .status = "cancelled" };
	expect(t, &f, "");
	f = (struct chain_filter){ .category = "goods" };
	expect(t, &f, "f6 f5 f1");
	f = (struct chain_filter){ .category = "services" };
	expect(t, &f, "f7 f3 f2");
	f = (struct chain_filter){ .category = "consultingServices" };
	expect(t, &f, "");
	f = (struct chain_filter){ .method = "open" };
	expect(t, &f, "f7 f6 f3 f1");
	f = (struct chain_filter){ .method = "selective" };
	expect(t, &f, "f5 f2");
	f = (struct chain_filter){ .method = "an-unknown-method-far-longer-than-any-code-list-value" };
	expect(t, &f, "");

	/* combinations, still by first release */
	f = (struct chain_filter){ .agency = a0, .category = "goods" };
	expect(t, &f, "f5 f1");
	f = (struct chain_filter){ .agency = a0, .category = "services", .method = "open" };
	expect(t, &f, "f3");
	f = (struct chain_filter){ .category = "goods", .method = "open", .status = "active" };
	expect(t, &f, "f6 f1");
	f = (struct chain_filter){ .agency = a1, .method = "limited" };
	expect(t, &f, "");

	/* the most selective index answers: one candidate, so no cursor after it */
	f = (struct chain_filter){ .status = "active", .agency = t->out_pk };
	json_t *l = Q_OK(chain_list_json, t->c, &f, 1, NULL);
	assert_int_equal(json_array_size(json_object_get(l, "tenders")), 1);
	assert_true(json_is_null(json_object_get(l, "next_cursor")));
	json_decref(l);
	f = (struct chain_filter){ .status = "active", .method = "selective" };
	first_cursor(t, &f, cur, sizeof(cur));
	assert_true(strncmp(cur, "4c6d73656c65637469766500", 24) == 0); /* "L" 'm' "selective" NUL */

	/* since/until alone: by tender date, newest first; +09:00 is nine hours before Z */
	f = (struct chain_filter){ .until = "2100-01-01T00:00:00Z" };
	expect(t, &f, "f5 f6 f7 f1 f3 f2 f4");
	f = (struct chain_filter){ .since = "2020-03-09T09:00:00+09:00" };
	expect(t, &f, "f5 f6 f7 f1");
	f = (struct chain_filter){ .since = "2020-03-09T00:00:00.001Z" };
	expect(t, &f, "f5 f6");
	f = (struct chain_filter){ .since = "2020-03-09T09:00:00.0011+09:00" };
	expect(t, &f, "f5 f6");
	f = (struct chain_filter){ .since = "2020-03-09T09:00:00.002+09:00" };
	expect(t, &f, "f5");
	f = (struct chain_filter){ .until = "2020-03-09T08:59:59.999+09:00" };
	expect(t, &f, "f3 f2 f4");
	f = (struct chain_filter){ .until = "2020-03-09T09:00:00+09:00" };
	expect(t, &f, "f7 f1 f3 f2 f4");
	f = (struct chain_filter){ .since = "2020-03-08T23:59:59.999Z", .until = "2020-03-09T02:00:00+02:00" };
	expect(t, &f, "f7 f1 f3");
	f = (struct chain_filter){ .since = "2020-03-08T18:00:00-06:00", .until = "2020-03-08T18:00:00-06:00" };
	expect(t, &f, "f7 f1");
	f = (struct chain_filter){ .since = "2020-03-09", .until = "2020-03-09" };
	expect(t, &f, "f5 f6 f7 f1");
	f = (struct chain_filter){ .since = "2020-01-01", .until = "2020-01-01" };
	expect(t, &f, "f4");
	f = (struct chain_filter){ .since = "2020-03-10T00:00:00Z", .until = "2020-03-09T00:00:00Z" };
	expect(t, &f, "");
	f = (struct chain_filter){ .since = "2021-01-01T00:00:00Z" };
	expect(t, &f, "");

	/* dates combined with other filters: by first release again */
	f = (struct chain_filter){ .agency = a0, .since = "2020-03-09T00:00:00Z" };
	expect(t, &f, "f5 f1");
	f = (struct chain_filter){ .category = "services", .until = "2020-03-09T08:59:59.999+09:00" };
	expect(t, &f, "f3 f2");
	f = (struct chain_filter){ .method = "open", .since = "2020-03-09", .until = "2020-03-09T09:00:00+09:00" };
	expect(t, &f, "f7 f1");

	/* bad dates, cursors of another filter, cursors that are not keys */
	f = (struct chain_filter){ .since = "yesterday" };
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, NULL), TD_EINVAL);
	f = (struct chain_filter){ .until = "2020-03-09T09:00:00" };
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, NULL), TD_EINVAL);
	f = (struct chain_filter){ .until = "2020-02-30" };
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, NULL), TD_EINVAL);
	f = (struct chain_filter){ .method = "open" };
	first_cursor(t, &f, cur, sizeof(cur));
	f = (struct chain_filter){ .method = "open", .agency = a1 };
	l = Q_OK(chain_list_json, t->c, &f, 10, cur); /* the method index still serves this filter */
	assert_non_null(l);
	char got[256] = "";
	collect(l, got, sizeof(got));
	assert_string_equal(got, "f6");
	json_decref(l);
	f = (struct chain_filter){ .category = "goods" };
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, cur), TD_EINVAL);
	assert_int_equal(Q_RC(chain_list_json, t->c, NULL, 10, cur), TD_EINVAL);
	f = (struct chain_filter){ .method = "selective" };
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, cur), TD_EINVAL);
	f = (struct chain_filter){ .since = "2020-03-09" };
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, cur), TD_EINVAL);
	first_cursor(t, &f, cur, sizeof(cur));
	cur[strlen(cur) - 2] = '\0';
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, cur), TD_EINVAL);
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, "4c64"), TD_EINVAL);
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, "4c6"), TD_EINVAL);

	/*
	 * Block 4: f3 cancelled; f1 amended to works with a later start; f6
	 * amended to another method. The indexes follow in the same block.
	 */
	r[0] = mkrec(t, TD_KIND_CANCELLATION, parse("{}"), PREFIX "-f3", t->sk[0]);
	r[1] = mkrec(t, TD_KIND_AMENDMENT,
		     ref_last(t,
			      parse("{\"tender\": {\"mainProcurementCategory\": \"works\", \"tenderPeriod\": "
				    "{\"startDate\": \"2020-03-11T00:00:00+09:00\"}, \"amendments\": [{\"id\": \"m1\", "
				    "\"rationale\": \"scope\"}]}}"),
			      PREFIX "-f1"),
		     PREFIX "-f1", t->sk[0]);
	r[2] = mkrec(t, TD_KIND_AMENDMENT,
		     ref_last(t,
			      parse("{\"tender\": {\"procurementMethod\": \"limited\", \"amendments\": [{\"id\": "
				    "\"m1\", \"rationale\": \"method\"}]}}"),
			      PREFIX "-f6"),
		     PREFIX "-f6", t->sk[1]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), 0);
	apply_ok(t, r, 3);

	for (int pass = 0; pass < 2; pass++) {
		f = (struct chain_filter){ .status = "active" };
		expect(t, &f, "f7 f6 f5 f4 f2 f1");
		f = (struct chain_filter){ .status = "cancelled" };
		expect(t, &f, "f3");
		f = (struct chain_filter){ .status = "cancelled", .agency = a0 };
		expect(t, &f, "f3");
		f = (struct chain_filter){ .status = "active", .agency = a0 };
		expect(t, &f, "f5 f1");
		f = (struct chain_filter){ .category = "works" };
		expect(t, &f, "f4 f1");
		f = (struct chain_filter){ .category = "goods" };
		expect(t, &f, "f6 f5");
		f = (struct chain_filter){ .method = "open" };
		expect(t, &f, "f7 f3 f1");
		f = (struct chain_filter){ .method = "limited" };
		expect(t, &f, "f6 f4");
		f = (struct chain_filter){ .until = "2100-01-01T00:00:00Z" };
		expect(t, &f, "f1 f5 f6 f7 f3 f2 f4");
		f = (struct chain_filter){ .since = "2020-03-10T15:00:00Z", .until = "2020-03-11T00:00:00+09:00" };
		expect(t, &f, "f1");
		/* the smallest index is the cancelled one: one candidate, no cursor */
		f = (struct chain_filter){ .status = "cancelled", .method = "open" };
		l = Q_OK(chain_list_json, t->c, &f, 1, NULL);
		assert_int_equal(json_array_size(json_object_get(l, "tenders")), 1);
		assert_true(json_is_null(json_object_get(l, "next_cursor")));
		json_decref(l);
		expect(t, NULL, "f7 f6 f5 f4 f3 f2 f1");
		reopen(t);
	}

	/* a cursor taken before a status change still continues the walk */
	f = (struct chain_filter){ .status = "active" };
	first_cursor(t, &f, cur, sizeof(cur)); /* after f7 */
	r[0] = mkrec(t, TD_KIND_CANCELLATION, parse("{}"), PREFIX "-f6", t->sk[1]);
	apply_ok(t, r, 1);
	l = Q_OK(chain_list_json, t->c, &f, 10, cur);
	got[0] = '\0';
	collect(l, got, sizeof(got));
	assert_string_equal(got, "f5 f4 f2 f1");
	json_decref(l);
	f = (struct chain_filter){ .status = "cancelled" };
	expect(t, &f, "f6 f3");

	/* the counts that pick the smallest index moved with every change, and none is left at zero */
	chain_close(t->c);
	t->c = NULL;
	struct store *st;
	assert_int_equal(store_open(&st, t->path, err, sizeof(err)), 0);
	assert_int_equal(raw_count(st, 's', "active", 7), 5);
	assert_int_equal(raw_count(st, 's', "cancelled", 10), 2);
	assert_int_equal(raw_count(st, 'c', "goods", 6), 2);
	assert_int_equal(raw_count(st, 'c', "works", 6), 2);
	assert_int_equal(raw_count(st, 'c', "services", 9), 3);
	assert_int_equal(raw_count(st, 'm', "open", 5), 3);
	assert_int_equal(raw_count(st, 'm', "limited", 8), 2);
	assert_int_equal(raw_count(st, 'm', "selective", 10), 2);
	assert_int_equal(raw_count(st, 'a', a0, TD_PUBKEY_LEN), 3);
	assert_int_equal(raw_count(st, 'a', t->out_pk, TD_PUBKEY_LEN), 1);
	struct store_iter *it = store_iter_new(st, "N", 1, false);
	const uint8_t *k, *v;
	size_t kn, vn, nkeys = 0;
	while (store_iter_next(it, &k, &kn, &v, &vn)) {
		assert_int_equal(vn, 8);
		assert_memory_not_equal(v, "\0\0\0\0\0\0\0\0", 8);
		nkeys++;
	}
	store_iter_free(it);
	assert_int_equal(nkeys, 2 + 4 + 3 + 3); /* status, agency (a0 a1 a2 out), category, method values */
	store_close(st);
	assert_int_equal(chain_open(&t->c, t->path, &t->g, err, sizeof(err)), 0);
}

/* One call examines at most 10000 index entries and hands back a cursor to go on. */
static void test_list_scan_bound(void **state)
{
	struct net *t = *state;
	enum { N = 10100, PER_BLOCK = 2020 };
	struct td_record **r = calloc(PER_BLOCK, sizeof(*r));
	struct chain_filter f;
	char cur[1024], got[256] = "";
	uint32_t made = 0;

	/* the oldest tender is the only one starting in 2031 */
	r[0] = mktender(t, "late", "goods", "open", "2031-01-01T00:00:00Z", t->sk[0]);
	apply_ok(t, r, 1);
	while (made < N) {
		for (uint32_t i = 0; i < PER_BLOCK; i++) {
			char name[32];
			snprintf(name, sizeof(name), "bulk-%u", made + i);
			r[i] = mktender(t, name, "goods", "open", NULL, t->sk[0]);
		}
		apply_ok(t, r, PER_BLOCK);
		made += PER_BLOCK;
	}
	free(r);

	f = (struct chain_filter){ .agency = t->g.v[0].pk, .since = "2030-01-01" };
	json_t *l = Q_OK(chain_list_json, t->c, &f, 10, NULL);
	assert_non_null(l);
	assert_int_equal(json_array_size(json_object_get(l, "tenders")), 0);
	snprintf(cur, sizeof(cur), "%s", jstr(l, "next_cursor"));
	json_decref(l);
	l = Q_OK(chain_list_json, t->c, &f, 10, cur);
	assert_non_null(l);
	collect(l, got, sizeof(got));
	assert_string_equal(got, "late");
	assert_true(json_is_null(json_object_get(l, "next_cursor")));
	json_decref(l);

	/* the date index alone finds it at once */
	f = (struct chain_filter){ .since = "2030-01-01" };
	expect(t, &f, "late");
}

/* ---- each record names the ocid's record before it ------------------------------- */

static void test_prev_chain(void **state)
{
	struct net *t = *state;
	struct td_record *r[2];
	uint8_t tender[TD_HASH_LEN], last[TD_HASH_LEN];
	char err[256];
	const char *jeju = PREFIX "-jeju-0001";

	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[0]);
	assert_false(r[0]->has_prev);
	memcpy(tender, r[0]->id, TD_HASH_LEN);
	apply_ok(t, r, 1);
	assert_int_equal(chain_tender_last(t->c, jeju, last), 0);
	assert_memory_equal(last, tender, TD_HASH_LEN);
	assert_int_equal(chain_tender_last(t->c, PREFIX "-none", last), TD_ENOTFOUND);

	r[0] = mkrec(t, TD_KIND_AMENDMENT, ref_last(t, load_sample("amend-jeju.json"), jeju), jeju, t->sk[0]);
	assert_true(r[0]->has_prev);
	assert_memory_equal(r[0]->prev, tender, TD_HASH_LEN);
	apply_ok(t, r, 1);
	assert_int_equal(chain_tender_last(t->c, jeju, last), 0);
	assert_memory_not_equal(last, tender, TD_HASH_LEN);

	/* an award that names the tender, not the amendment after it: out of place */
	force_prev = tender;
	r[0] = mkrec(t, TD_KIND_AWARD, parse("{\"awards\": [{\"id\": \"j-a1\", \"status\": \"active\"}]}"), jeju,
		     t->sk[0]);
	force_prev = NULL;
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_ERULE);
	assert_non_null(strstr(err, "as its previous one"));
	refuse(t, r, 1, TD_ERULE, err, sizeof(err));
	assert_non_null(strstr(err, "as its previous one"));

	/* after the amendment, it goes in */
	r[0] = mkrec(t, TD_KIND_AWARD, parse("{\"awards\": [{\"id\": \"j-a1\", \"status\": \"active\"}]}"), jeju,
		     t->sk[0]);
	assert_memory_equal(r[0]->prev, last, TD_HASH_LEN);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), 0);
	apply_ok(t, r, 1);
}

/* ---- amendments name the release they amend ------------------------------------ */

static void test_amends_rule(void **state)
{
	struct net *t = *state;
	struct td_record *r[3];
	char err[256], want[256], id[TD_ID_MAX + 1], tender_id[TD_ID_MAX + 1], kisa_id[TD_ID_MAX + 1];
	const char *jeju = PREFIX "-jeju-0001";

	assert_int_equal(chain_last_release_id(t->c, jeju, id), TD_ENOTFOUND);
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	snprintf(tender_id, sizeof(tender_id), "%s", r[0]->release_id);
	snprintf(kisa_id, sizeof(kisa_id), "%s", r[1]->release_id);
	apply_ok(t, r, 2);
	assert_int_equal(chain_last_release_id(t->c, jeju, id), 0);
	assert_string_equal(id, tender_id);
	assert_int_equal(chain_last_release_id(t->c, PREFIX "-none", id), TD_ENOTFOUND);

	/* no amendsReleaseID at all */
	r[0] = mkrec(t, TD_KIND_AMENDMENT, load_sample("amend-jeju.json"), jeju, t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_ERULE);
	assert_non_null(strstr(err, "amendsReleaseID"));
	refuse(t, r, 1, TD_ERULE, err, sizeof(err));
	assert_non_null(strstr(err, "must name the release it amends"));

	/* a release id that does not exist, and one of another tender */
	r[0] = mkrec(t, TD_KIND_AMENDMENT, with_ref(load_sample("amend-jeju.json"), "nope"), jeju, t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_ERULE);
	assert_string_equal(err, "tender.amendments[0].amendsReleaseID: no release nope for ocid " PREFIX "-jeju-0001");
	refuse(t, r, 1, TD_ERULE, err, sizeof(err));
	r[0] = mkrec(t, TD_KIND_AMENDMENT, with_ref(load_sample("amend-jeju.json"), kisa_id), jeju, t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), TD_ERULE);
	snprintf(want, sizeof(want), "tender.amendments[0].amendsReleaseID: no release %s for ocid %s", kisa_id, jeju);
	assert_string_equal(err, want);
	refuse(t, r, 1, TD_ERULE, err, sizeof(err));

	/* the second entry is the wrong one; a reference that is not a string */
	r[0] = mkrec(
		t, TD_KIND_AMENDMENT,
		parsef("{\"tender\": {\"amendments\": [{\"id\": \"a1\", \"rationale\": \"r\", \"amendsReleaseID\": "
		       "\"%s\"}, {\"id\": \"a2\", \"rationale\": \"r\", \"amendsReleaseID\": \"gone\"}]}}",
		       tender_id),
		jeju, t->sk[0]);
	refuse(t, r, 1, TD_ERULE, err, sizeof(err));
	assert_string_equal(err,
			    "block 2: record 0: tender.amendments[1].amendsReleaseID: no release gone for ocid " PREFIX
			    "-jeju-0001");
	r[0] = mkrec(
		t, TD_KIND_AMENDMENT,
		parse("{\"tender\": {\"amendments\": [{\"id\": \"a1\", \"rationale\": \"r\", \"amendsReleaseID\": 7}]}}"),
		jeju, t->sk[0]);
	refuse(t, r, 1, TD_ERULE, err, sizeof(err));
	assert_non_null(strstr(err, "tender.amendments[0].amendsReleaseID"));

	/* the right one */
	r[0] = mkrec(t, TD_KIND_AMENDMENT, with_ref(load_sample("amend-jeju.json"), tender_id), jeju, t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[0], err, sizeof(err)), 0);
	snprintf(id, sizeof(id), "%s", r[0]->release_id);
	apply_ok(t, r, 1);
	char last[TD_ID_MAX + 1];
	assert_int_equal(chain_last_release_id(t->c, jeju, last), 0);
	assert_string_equal(last, id);
	/* an amendment of the amendment; entries without the field are allowed next to one with it */
	r[0] = mkrec(t, TD_KIND_AMENDMENT,
		     parsef("{\"tender\": {\"amendments\": [{\"id\": \"amend-1\", \"rationale\": \"again\"}, {\"id\": "
			    "\"amend-2\", \"rationale\": \"r\", \"amendsReleaseID\": \"%s\"}]}}",
			    id),
		     jeju, t->sk[0]);
	apply_ok(t, r, 1);

	/* a reference to a release earlier in the same block */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-gangwon.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_AMENDMENT, with_ref(load_sample("amend-jeju.json"), r[0]->release_id),
		     PREFIX "-gw-0001", t->sk[0]);
	r[2] = mkrec(t, TD_KIND_AMENDMENT, with_ref(load_sample("amend-jeju.json"), r[1]->release_id),
		     PREFIX "-gw-0001", t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[1], err, sizeof(err)), TD_ERULE); /* not committed alone */
	apply_ok(t, r, 3);
	json_t *tj = Q_OK(chain_tender_json, t->c, PREFIX "-gw-0001");
	assert_int_equal(json_array_size(json_object_get(tj, "releases")), 3);
	json_decref(tj);
	/* but not to one later in the block */
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-private.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_AMENDMENT, with_ref(load_sample("amend-jeju.json"), "later"), PREFIX "-kisa-0002",
		     t->sk[0]);
	r[2] = mkrec(
		t, TD_KIND_AMENDMENT,
		parse("{\"id\": \"later\", \"tender\": {\"title\": \"x\", \"amendments\": [{\"id\": \"b\", \"rationale\": \"r\"}]}}"),
		PREFIX "-kisa-0002", t->sk[0]);
	refuse(t, r, 3, TD_ERULE, err, sizeof(err));
	assert_non_null(strstr(err, "no release later"));
}

/* ---- block releases and OCDS packages ------------------------------------------ */

/*
 * Validates a package file against the official OCDS 1.1 schemas in
 * TD_TEST_DATA/ocds (Draft 4), the release schema's URL mapped to the local
 * copy; date-time and uri formats checked. Exit 0: valid, 1: invalid.
 */
static const char validate_py[] =
	"import json, re, sys\n"
	"from jsonschema import Draft4Validator, FormatChecker, RefResolver\n"
	"d, kind, path = sys.argv[1:4]\n"
	"def load(n):\n"
	"    with open(d + '/' + n) as f:\n"
	"        return json.load(f)\n"
	"store = {}\n"
	"for n in ('release-schema.json', 'release-package-schema.json', 'record-package-schema.json'):\n"
	"    doc = load(n)\n"
	"    store[doc['id']] = doc\n"
	"schema = load(kind + '-package-schema.json')\n"
	"fc = FormatChecker()\n"
	"@fc.checks('date-time')\n"
	"def date_time(v):\n"
	"    return not isinstance(v, str) or re.fullmatch(\n"
	"        r'\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?(Z|[+-]\\d\\d:\\d\\d)', v) is not None\n"
	"v = Draft4Validator(schema, resolver=RefResolver(schema['id'], schema, store=store), format_checker=fc)\n"
	"with open(path) as f:\n"
	"    doc = json.load(f)\n"
	"errs = list(v.iter_errors(doc))\n"
	"for e in errs:\n"
	"    print('schema:', '/'.join(str(p) for p in e.absolute_path), e.message[:300], file=sys.stderr)\n"
	"sys.exit(1 if errs else 0)\n";

/* Writes text to dir/name. */
static void write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Runs the validator on pkg (kind "release" or "record"); returns its exit status. */
static int validate(struct net *t, const char *kind, const json_t *pkg)
{
	char cmd[1024], name[64];
	char *text = td_json_dump(pkg, JSON_INDENT(1));
	int st;

	assert_non_null(text);
	snprintf(name, sizeof(name), "%s-package.json", kind);
	write_file(t->dir, name, text);
	free(text);
	write_file(t->dir, "validate.py", validate_py);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/validate.py %s/ocds %s %s/%s", t->dir, TD_TEST_DATA, kind,
		 t->dir, name);
	st = system(cmd);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* The releases of block 2 in block order, with where they sit. */
static void test_block_releases(void **state)
{
	struct net *t = *state;
	struct td_record *r[3];
	char ids[3][2 * TD_HASH_LEN + 1], rids[3][TD_ID_MAX + 1], pk[2 * TD_PUBKEY_LEN + 1];

	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	apply_ok(t, r, 1);
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_AMENDMENT, with_ref(load_sample("amend-jeju.json"), r[0]->release_id),
		     PREFIX "-jeju-0001", t->sk[0]);
	r[2] = mkrec(t, TD_KIND_TENDER, load_sample("tender-gangwon.json"), NULL, t->out_sk);
	for (int i = 0; i < 3; i++) {
		td_hex(ids[i], r[i]->id, TD_HASH_LEN);
		snprintf(rids[i], sizeof(rids[i]), "%s", r[i]->release_id);
	}
	apply_ok(t, r, 3);

	json_t *b = Q_OK(chain_block_releases_json, t->c, 2);
	assert_non_null(b);
	assert_int_equal(json_array_size(b), 3);
	static const char *kinds[] = { "tender", "tenderAmendment", "tender" };
	static const char *ocids[] = { PREFIX "-jeju-0001", PREFIX "-jeju-0001", PREFIX "-gw-0001" };
	for (size_t i = 0; i < 3; i++) {
		const json_t *e = json_array_get(b, i);
		assert_int_equal(juint(e, "height"), 2);
		assert_int_equal(juint(e, "index"), i);
		assert_int_equal(juint(e, "block_records"), 3);
		assert_string_equal(jstr(e, "record_id"), ids[i]);
		assert_string_equal(jstr(e, "ocid"), ocids[i]);
		assert_string_equal(jstr(e, "release_id"), rids[i]);
		assert_string_equal(jstr(e, "kind"), kinds[i]);
		assert_true(td_iso_valid(jstr(e, "time"), strlen(jstr(e, "time"))));
		assert_string_equal(jstr(json_object_get(e, "release"), "id"), rids[i]);
	}
	td_hex(pk, t->out_pk, TD_PUBKEY_LEN);
	assert_string_equal(jstr(json_array_get(b, 2), "agency"), pk);
	assert_string_equal(jstr(json_array_get(b, 2), "agency_name"), "member-out");
	assert_string_equal(jstr(json_array_get(b, 0), "agency_name"), "agency-0");
	char *text = td_json_dump(b, JSON_COMPACT);
	assert_non_null(strstr(text, "\"amount\":712500000.50"));
	free(text);
	json_decref(b);

	b = Q_OK(chain_block_releases_json, t->c, 1);
	assert_int_equal(json_array_size(b), 1);
	assert_int_equal(juint(json_array_get(b, 0), "block_records"), 1);
	json_decref(b);
	assert_int_equal(Q_RC(chain_block_releases_json, t->c, 0), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_block_releases_json, t->c, 3), TD_ENOTFOUND);
}

/*
 * Release and record packages over a small chain (a tender, its amendment
 * and award; another tender and its cancellation), validated against the
 * official OCDS 1.1 schemas, with amounts kept as written.
 */
static void test_packages(void **state)
{
	struct net *t = *state;
	struct td_record *r[2];
	char date[32];

	if (system("/usr/bin/python3 -c 'import jsonschema' 2>/dev/null") != 0)
		fail_msg("/usr/bin/python3 with jsonschema is needed (scripts/setup.sh installs python3-jsonschema)");
	assert_int_equal(Q_RC(chain_release_package_json, t->c, 0, 0, "p", "tenderd://x/export"), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_release_package_json, t->c, 1, 1, "p", "tenderd://x/export"), TD_ENOTFOUND);

	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_TENDER, load_sample("tender-sejong.json"), NULL, t->sk[0]);
	apply_ok(t, r, 2);
	r[0] = mkrec(t, TD_KIND_AMENDMENT, ref_last(t, load_sample("amend-jeju.json"), PREFIX "-jeju-0001"),
		     PREFIX "-jeju-0001", t->sk[0]);
	apply_ok(t, r, 1);
	r[0] = mkrec(t, TD_KIND_AWARD, load_sample("award-jeju.json"), NULL, t->sk[0]);
	r[1] = mkrec(t, TD_KIND_CANCELLATION, parse("{\"tender\": {\"description\": \"no budget\"}}"),
		     PREFIX "-sj-0001", t->sk[0]);
	apply_ok(t, r, 2);
	r[0] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
	apply_ok(t, r, 1);
	uint64_t t4 = chain_last_time(t->c);
	{
		json_t *bj = Q_OK(chain_block_json, t->c, 3);
		char iso[32];
		snprintf(iso, sizeof(iso), "%s", jstr(bj, "time"));
		json_decref(bj);
		snprintf(date, sizeof(date), "%.19sZ", iso);
	}

	/* release package of blocks 1..3 */
	json_t *pkg = Q_OK(chain_release_package_json, t->c, 1, 3, "Test publisher",
			   "tenderd://" CHAIN_ID "/export?from=1&to=3");
	assert_non_null(pkg);
	assert_string_equal(jstr(pkg, "uri"), "tenderd://" CHAIN_ID "/export?from=1&to=3");
	assert_string_equal(jstr(pkg, "version"), "1.1");
	assert_string_equal(jstr(jpath(pkg, "publisher", NULL), "name"), "Test publisher");
	assert_string_equal(jstr(pkg, "publishedDate"), date);
	const json_t *rels = json_object_get(pkg, "releases");
	assert_int_equal(json_array_size(rels), 5);
	static const char *tags[] = { "tender", "tender", "tenderAmendment", "award", "tenderCancellation" };
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(json_string_value(json_array_get(jpath(json_array_get(rels, i), "tag", NULL), 0)),
				    tags[i]);
	/* the amendment and the cancellation get their tender's id (OCDS requires it), the ledger keeps them as signed */
	assert_string_equal(jstr(jpath(json_array_get(rels, 2), "tender", NULL), "id"), "jeju-2020-0001");
	assert_string_equal(jstr(jpath(json_array_get(rels, 4), "tender", NULL), "id"), "sj-2020-0001");
	json_t *br = Q_OK(chain_block_releases_json, t->c, 2);
	assert_null(json_object_get(jpath(json_object_get(json_array_get(br, 0), "release"), "tender", NULL), "id"));
	json_decref(br);
	char *text = td_json_dump(pkg, JSON_COMPACT);
	assert_non_null(strstr(text, "712500000.50"));
	free(text);
	assert_int_equal(validate(t, "release", pkg), 0);
	/* the validator does refuse a broken package */
	json_object_set_new(json_array_get(rels, 0), "tag", json_pack("[s]", "noSuchTag"));
	assert_int_equal(validate(t, "release", pkg), 1);
	json_decref(pkg);

	/* ranges: one block; to past the tip; empty or past the chain */
	pkg = Q_OK(chain_release_package_json, t->c, 2, 2, "p", "tenderd://" CHAIN_ID "/export?from=2&to=2");
	assert_int_equal(json_array_size(json_object_get(pkg, "releases")), 1);
	assert_int_equal(validate(t, "release", pkg), 0);
	json_decref(pkg);
	pkg = Q_OK(chain_release_package_json, t->c, 0, 99, "p", "tenderd://" CHAIN_ID "/export");
	assert_int_equal(json_array_size(json_object_get(pkg, "releases")), 6);
	char iso4[32], date4[32];
	td_time_iso(iso4, t4);
	snprintf(date4, sizeof(date4), "%.19sZ", iso4);
	assert_string_equal(jstr(pkg, "publishedDate"), date4);
	json_decref(pkg);
	assert_int_equal(Q_RC(chain_release_package_json, t->c, 3, 2, "p", "tenderd://x/export"), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_release_package_json, t->c, 5, 9, "p", "tenderd://x/export"), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_record_package_json, t->c, 5, 5, "p", "tenderd://x/export"), TD_ENOTFOUND);

	/* record package of blocks 2..3: jeju (3 releases) and sejong (2) */
	pkg = Q_OK(chain_record_package_json, t->c, 2, 3, "Test publisher",
		   "tenderd://" CHAIN_ID "/export?from=2&to=3");
	assert_non_null(pkg);
	assert_string_equal(jstr(pkg, "version"), "1.1");
	assert_string_equal(jstr(pkg, "publishedDate"), date);
	const json_t *recs = json_object_get(pkg, "records");
	assert_int_equal(json_array_size(recs), 2);
	const json_t *jr = json_array_get(recs, 0), *sr = json_array_get(recs, 1);
	assert_string_equal(jstr(jr, "ocid"), PREFIX "-jeju-0001");
	assert_string_equal(jstr(sr, "ocid"), PREFIX "-sj-0001");
	assert_int_equal(json_array_size(json_object_get(jr, "releases")), 3);
	assert_int_equal(json_array_size(json_object_get(sr, "releases")), 2);
	const json_t *cr = json_object_get(jr, "compiledRelease");
	assert_string_equal(json_string_value(json_array_get(jpath(cr, "tag", NULL), 0)), "compiled");
	assert_string_equal(jstr(cr, "ocid"), PREFIX "-jeju-0001");
	assert_string_equal(jstr(cr, "initiationType"), "tender");
	assert_int_equal(json_array_size(jpath(cr, "awards", NULL)), 1);
	assert_string_equal(jstr(jpath(json_object_get(sr, "compiledRelease"), "tender", NULL), "status"), "cancelled");
	text = td_json_dump(pkg, JSON_COMPACT);
	assert_non_null(strstr(text, "\"amount\":712500000.50"));
	free(text);
	assert_int_equal(validate(t, "record", pkg), 0);
	json_object_del((json_t *)cr, "initiationType");
	assert_int_equal(validate(t, "record", pkg), 1);
	json_decref(pkg);

	pkg = Q_OK(chain_record_package_json, t->c, 4, 4, "p", "tenderd://" CHAIN_ID "/export?from=4&to=4");
	assert_int_equal(json_array_size(json_object_get(pkg, "records")), 1);
	assert_string_equal(jstr(json_array_get(json_object_get(pkg, "records"), 0), "ocid"), PREFIX "-kisa-0001");
	assert_int_equal(validate(t, "record", pkg), 0);
	json_decref(pkg);
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
		if (td_block_decode(&blk, bb, bl, CHAIN, false, err, sizeof(err)) != 0)
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
	json_t *l = Q_OK(chain_list_json, t->c, NULL, 1000, NULL);
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
	/* and one "D" key (the record's bytes) per record */
	it = store_iter_new(st, "D", 1, false);
	nkeys = 0;
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

/* ---- checks remembered between validate and apply ------------------------------ */

/* An amendment of ocid by sk that references release ref and sets the tender status (NULL: leaves it). */
static struct td_record *mkamend(struct net *t, const char *ocid, const char *ref, const char *status, unsigned i,
				 const uint8_t sk[static TD_SECKEY_LEN])
{
	char st[64] = "";

	if (status)
		snprintf(st, sizeof(st), "\"status\": \"%s\", ", status);
	return mkrec(t, TD_KIND_AMENDMENT,
		     parsef("{\"id\": \"%s-r%u\", \"tender\": {%s\"title\": \"Title %u\", \"amendments\": [{\"id\": "
			    "\"am-%u\", \"rationale\": \"r\", \"amendsReleaseID\": \"%s\"}]}}",
			    ocid + strlen(PREFIX) + 1, i, st, i, i, ref),
		     ocid, sk);
}

#define SAME_OCID_N 300

/*
 * One block with a tender and hundreds of changes of the same ocid, each
 * amendment referencing the release before it: validated, then applied with
 * the remembered checks, and the tender holds every release in order. Then
 * blocks where a later record of one ocid is refused by an earlier one:
 * a cancellation through tender.status, a repeated release id, a second
 * tender of an ocid published earlier in the block.
 */
static void test_same_ocid_block(void **state)
{
	struct net *t = *state;
	struct td_record **r = calloc(SAME_OCID_N + 2, sizeof(*r));
	const char *ocid = PREFIX "-many";
	char err[256], prev[TD_ID_MAX + 1], last[TD_ID_MAX + 1], award_id[TD_ID_MAX + 1];
	struct td_record *q[4];
	json_t *tj;

	r[0] = mktender(t, "many", "works", "open", NULL, t->sk[0]);
	snprintf(prev, sizeof(prev), "%s", r[0]->release_id);
	for (unsigned i = 1; i <= SAME_OCID_N; i++) {
		r[i] = mkamend(t, ocid, prev, NULL, i, t->sk[0]);
		snprintf(prev, sizeof(prev), "%s", r[i]->release_id);
	}
	r[SAME_OCID_N + 1] =
		mkrec(t, TD_KIND_AWARD, parse("{\"awards\": [{\"id\": \"many-a1\", \"status\": \"active\"}]}"), ocid,
		      t->sk[0]);
	snprintf(award_id, sizeof(award_id), "%s", r[SAME_OCID_N + 1]->release_id);
	t->validate_first = true;
	apply_ok(t, r, SAME_OCID_N + 2);
	free(r);
	assert_int_equal(chain_record_count(t->c), SAME_OCID_N + 2);
	assert_int_equal(chain_last_release_id(t->c, ocid, last), 0);
	assert_string_equal(last, award_id);
	tj = Q_OK(chain_tender_json, t->c, ocid);
	assert_non_null(tj);
	assert_int_equal(json_array_size(json_object_get(tj, "releases")), SAME_OCID_N + 2);
	assert_int_equal(json_array_size(jpath(jpath(tj, "compiled", "tender"), "amendments", NULL)), SAME_OCID_N);
	assert_string_equal(jstr(jpath(tj, "compiled", "tender"), "title"), "Title 300");
	assert_string_equal(
		jstr(json_object_get(json_array_get(json_object_get(tj, "releases"), SAME_OCID_N), "release"), "id"),
		"many-r300");
	json_decref(tj);

	/* an amendment cancels through tender.status: the next change of the same block is refused */
	q[0] = mktender(t, "cx", "works", "open", NULL, t->sk[0]);
	q[1] = mkamend(t, PREFIX "-cx", q[0]->release_id, "cancelled", 1, t->sk[0]);
	q[2] = mkamend(t, PREFIX "-cx", q[1]->release_id, NULL, 2, t->sk[0]);
	refuse(t, q, 3, TD_ERULE, err, sizeof(err));
	assert_string_equal(err, "block 2: record 2: tender " PREFIX "-cx is cancelled: no tenderAmendment may follow");
	/* without the last record the block is fine, and the tender is cancelled for later blocks */
	q[0] = mktender(t, "cx", "works", "open", NULL, t->sk[0]);
	q[1] = mkamend(t, PREFIX "-cx", q[0]->release_id, "cancelled", 1, t->sk[0]);
	snprintf(prev, sizeof(prev), "%s", q[1]->release_id);
	apply_ok(t, q, 2);
	q[0] = mkamend(t, PREFIX "-cx", prev, NULL, 2, t->sk[0]);
	refuse(t, q, 1, TD_ERULE, err, sizeof(err));
	assert_non_null(strstr(err, "is cancelled"));

	/* a release id used twice for one ocid in one block, and two tenders of one ocid */
	q[0] = mktender(t, "dup", "works", "open", NULL, t->sk[0]);
	q[1] = mkamend(t, PREFIX "-dup", q[0]->release_id, NULL, 1, t->sk[0]);
	q[2] = mkamend(t, PREFIX "-dup", q[0]->release_id, NULL, 1, t->sk[0]);
	refuse(t, q, 3, TD_EEXIST, err, sizeof(err));
	assert_string_equal(err, "block 3: record 2: release dup-r1 of tender " PREFIX "-dup already exists");
	q[0] = mktender(t, "dup", "works", "open", NULL, t->sk[0]);
	q[1] = mkamend(t, PREFIX "-dup", q[0]->release_id, NULL, 1, t->sk[0]);
	q[2] = mktender(t, "dup", "goods", "open", NULL, t->sk[0]);
	refuse(t, q, 3, TD_EEXIST, err, sizeof(err));
	assert_string_equal(err, "block 3: record 2: tender " PREFIX "-dup already exists");
}

/*
 * chain_validate remembers the blocks it accepted, for the tip it saw:
 * chain_apply of such a block still checks the block and its commit; a
 * refused block is not remembered; after the tip moves, a block of the same
 * records is checked in full again.
 */
static void test_validate_then_apply(void **state)
{
	struct net *t = *state;
	struct td_record *r[2], *copy = NULL;
	struct td_block *blk, *other;
	struct td_commit cm;
	struct tip tp;
	char err[256];

	r[0] = mktender(t, "va", "works", "open", NULL, t->sk[0]);
	apply_ok(t, r, 1);
	tip_get(t, &tp);

	/* validated, then a commit for another block, then one short of two thirds: refused */
	r[0] = mktender(t, "vb", "works", "open", NULL, t->sk[0]);
	blk = mkblock(t, r, 1);
	assert_int_equal(chain_validate(t->c, blk, err, sizeof(err)), 0);
	assert_int_equal(chain_validate(t->c, blk, err, sizeof(err)), 0);
	mkcommit_for(t, &cm, blk->hdr.height, tp.hash, 0xf);
	assert_int_equal(chain_apply(t->c, blk, &cm, err, sizeof(err)), TD_ESIG);
	td_commit_clear(&cm);
	mkcommit_for(t, &cm, blk->hdr.height, blk->hash, 0x3);
	assert_int_equal(chain_apply(t->c, blk, &cm, err, sizeof(err)), TD_ESIG);
	td_commit_clear(&cm);
	tip_same(t, &tp);
	/* a refused proposal is refused again by apply */
	r[0] = mkamend(t, PREFIX "-vb", "nope", NULL, 1, t->sk[0]);
	other = mkblock(t, r, 1);
	assert_int_equal(chain_validate(t->c, other, err, sizeof(err)), TD_ERULE);
	mkcommit(t, &cm, other);
	assert_int_equal(chain_apply(t->c, other, &cm, err, sizeof(err)), TD_ERULE);
	td_commit_clear(&cm);
	td_block_free(other);
	tip_same(t, &tp);

	/*
	 * Another block at the same height wins and publishes the same ocid; the
	 * validated block's record, proposed again on the new tip, is refused.
	 */
	assert_int_equal(td_record_decode(&copy, blk->records[0]->bytes, blk->records[0]->len, CHAIN, err, sizeof(err)),
			 0);
	r[0] = mktender(t, "vb", "goods", "open", NULL, t->sk[0]);
	apply_ok(t, r, 1);
	mkcommit(t, &cm, blk);
	assert_int_equal(chain_apply(t->c, blk, &cm, err, sizeof(err)), TD_EINVAL); /* the old height */
	td_commit_clear(&cm);
	td_block_free(blk);
	r[0] = copy;
	refuse(t, r, 1, TD_EEXIST, err, sizeof(err));
	assert_string_equal(err, "block 3: record 0: tender " PREFIX "-vb already exists");

	/* and a validated block applies, with its records */
	r[0] = mktender(t, "vc", "works", "open", NULL, t->sk[0]);
	r[1] = mkamend(t, PREFIX "-vc", r[0]->release_id, NULL, 1, t->sk[0]);
	blk = mkblock(t, r, 2);
	assert_int_equal(chain_validate(t->c, blk, err, sizeof(err)), 0);
	mkcommit(t, &cm, blk);
	assert_int_equal(chain_apply(t->c, blk, &cm, err, sizeof(err)), 0);
	assert_true(chain_has_record(t->c, blk->records[1]->id, NULL));
	td_commit_clear(&cm);
	td_block_free(blk);
	assert_int_equal(chain_height(t->c), 3);
}

/* Every key and value of the store at path, as "hexkey=hexvalue\n" lines in key order; caller frees. */
static char *store_dump(const char *path)
{
	struct store *st = NULL;
	struct store_iter *it;
	const uint8_t *k, *v;
	size_t kn, vn, len = 0, cap = 1 << 16;
	char *out = malloc(cap), err[256];

	assert_int_equal(store_open(&st, path, err, sizeof(err)), 0);
	it = store_iter_new(st, NULL, 0, false);
	while (store_iter_next(it, &k, &kn, &v, &vn)) {
		while (len + 2 * (kn + vn) + 3 > cap)
			out = realloc(out, cap *= 2);
		td_hex(out + len, k, kn);
		len += 2 * kn;
		out[len++] = '=';
		td_hex(out + len, v, vn);
		len += 2 * vn;
		out[len++] = '\n';
	}
	assert_int_equal(store_iter_error(it), 0);
	out[len] = '\0';
	store_iter_free(it);
	store_close(st);
	return out;
}

/*
 * The same blocks applied to two chains, one validating each block first
 * (so chain_apply takes the remembered checks) and one not, leave
 * byte-identical stores.
 */
static void test_validate_same_store(void **state)
{
	struct net *t = *state;
	struct chain *c2 = NULL;
	char path2[128], err[256], ref[TD_ID_MAX + 1];
	struct td_record *r[6];
	char *d1, *d2;
	const uint32_t nblocks = 4;

	snprintf(path2, sizeof(path2), "%s/chain2", t->dir);
	assert_int_equal(chain_open(&c2, path2, &t->g, err, sizeof(err)), 0);
	for (uint32_t b = 0; b < nblocks; b++) {
		struct td_block *b1, *b2;
		struct td_record **arr;
		struct td_commit cm;
		uint32_t n = 0;
		switch (b) {
		case 0:
			r[n++] = mkrec(t, TD_KIND_TENDER, load_sample("tender-jeju.json"), NULL, t->sk[0]);
			r[n++] = mkrec(t, TD_KIND_TENDER, load_sample("tender-sejong.json"), NULL, t->sk[1]);
			r[n++] = mktender(t, "s1", "works", "open", "2020-03-09T09:00:00+09:00", t->sk[2]);
			r[n++] = mkamend(t, PREFIX "-s1", r[2]->release_id, "planning", 1, t->sk[2]);
			break;
		case 1:
			assert_int_equal(chain_last_release_id(t->c, PREFIX "-jeju-0001", ref), 0);
			r[n++] = mkrec(t, TD_KIND_AMENDMENT, with_ref(load_sample("amend-jeju.json"), ref),
				       PREFIX "-jeju-0001", t->sk[0]);
			r[n++] = mkrec(t, TD_KIND_CANCELLATION, parse("{}"), PREFIX "-sj-0001", t->sk[1]);
			r[n++] = mkrec(t, TD_KIND_AWARD, load_sample("award-jeju.json"), NULL, t->sk[0]);
			r[n++] = mktender(t, "s2", "goods", "selective", NULL, t->sk[3]);
			break;
		case 2:
			assert_int_equal(chain_last_release_id(t->c, PREFIX "-s1", ref), 0);
			r[n++] = mkamend(t, PREFIX "-s1", ref, "active", 2, t->sk[2]);
			r[n] = mkamend(t, PREFIX "-s1", r[0]->release_id, "cancelled", 3, t->sk[2]);
			n++;
			r[n++] = mkrec(t, TD_KIND_TENDER, load_sample("tender-kisa.json"), NULL, t->sk[0]);
			break;
		case 3: break; /* an empty block */
		}
		b1 = mkblock(t, r, n);
		arr = calloc(n ? n : 1, sizeof(*arr));
		for (uint32_t i = 0; i < n; i++)
			arr[i] = td_record_ref(r[i]);
		b2 = td_block_new(b1->hdr.height, b1->hdr.prev_hash, b1->hdr.time_ms, b1->hdr.proposer,
				  t->g.validators_hash, arr, n);
		assert_memory_equal(b1->hash, b2->hash, TD_HASH_LEN);
		mkcommit(t, &cm, b1);
		assert_int_equal(chain_validate(t->c, b1, err, sizeof(err)), 0);
		if (chain_apply(t->c, b1, &cm, err, sizeof(err)) != 0)
			fail_msg("block %u: %s", b, err);
		if (chain_apply(c2, b2, &cm, err, sizeof(err)) != 0)
			fail_msg("block %u on the second chain: %s", b, err);
		td_commit_clear(&cm);
		td_block_free(b1);
		td_block_free(b2);
	}
	chain_close(c2);
	chain_close(t->c);
	t->c = NULL;
	d1 = store_dump(t->path);
	d2 = store_dump(path2);
	assert_true(strlen(d1) > 1000);
	assert_string_equal(d1, d2);
	free(d1);
	free(d2);
	reopen(t);
}

/* ---- store errors ------------------------------------------------------------ */

/*
 * Writes val (NULL: deletes) at key k straight into the store, with the
 * chain closed, then opens the chain again; the old value goes into *old
 * (the caller frees it; NULL if there was none) unless old is NULL.
 */
static void poke(struct net *t, const struct ckey *k, const void *val, size_t vlen, uint8_t **old, size_t *oldlen)
{
	char err[256];
	struct store *st;
	struct store_batch *b = store_batch_new();

	chain_close(t->c);
	t->c = NULL;
	assert_int_equal(store_open(&st, t->path, err, sizeof(err)), 0);
	if (old && store_get(st, k->b, k->n, old, oldlen) != 0)
		*old = NULL;
	if (val)
		store_batch_put(b, k->b, k->n, val, vlen);
	else
		store_batch_delete(b, k->b, k->n);
	assert_int_equal(store_write(st, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
	store_close(st);
	reopen(t);
}

/* Puts back a value poke saved (and frees it). */
static void unpoke(struct net *t, const struct ckey *k, uint8_t *old, size_t oldlen)
{
	assert_non_null(old);
	poke(t, k, old, oldlen, NULL, NULL);
	free(old);
}

/* Runs chain_tender_json for ocid with stderr going to a file; the code, and what was logged into log. */
static int tender_logged(struct net *t, const char *ocid, char *log, size_t loglen)
{
	char path[128];
	int saved = dup(STDERR_FILENO), fd, rc;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/stderr", t->dir);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	assert_true(saved >= 0 && fd >= 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	rc = Q_RC(chain_tender_json, t->c, ocid);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, log, loglen - 1, 0);
	close(fd);
	log[n > 0 ? n : 0] = '\0';
	return rc;
}

/*
 * A query tells "no such thing" (TD_ENOTFOUND), "bad question" (TD_EINVAL)
 * and "the store is broken" (TD_ECORRUPT, logged) apart: each key a query
 * reads, overwritten with garbage or deleted, gives TD_ECORRUPT, and the
 * other queries still answer.
 */
static void test_store_errors(void **state)
{
	struct net *t = *state;
	struct td_record *r[2];
	const char *jeju = PREFIX "-jeju-0001", *kisa = PREFIX "-kisa-0001";
	char id[TD_ID_MAX + 1], log[4096];
	struct chain_filter f = { .status = "active", .category = "services" };
	uint8_t *old, *bb, *cb;
	size_t oldlen, bl, cl;
	struct ckey k;

	apply_jeju_amended_kisa(t); /* blocks 1 to 3 */
	json_decref(Q_OK(chain_tender_json, t->c, jeju));
	json_decref(Q_OK(chain_list_json, t->c, &f, 10, NULL));

	/* not found and bad input are what they were */
	assert_int_equal(Q_RC(chain_tender_json, t->c, PREFIX "-none"), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_block_json, t->c, 4), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_block_releases_json, t->c, 0), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_release_package_json, t->c, 4, 9, "p", NULL), TD_ENOTFOUND);
	assert_int_equal(Q_RC(chain_list_json, t->c, NULL, 10, "zz"), TD_EINVAL);
	assert_int_equal(chain_block_raw(t->c, 4, &bb, &bl, &cb, &cl), TD_ENOTFOUND);

	/* a tender's state ("T") overwritten */
	ckey_tender(&k, jeju);
	poke(t, &k, "garbage", 7, &old, &oldlen);
	assert_int_equal(tender_logged(t, jeju, log, sizeof(log)), TD_ECORRUPT);
	assert_non_null(strstr(log, " error "));
	assert_non_null(strstr(log, jeju));
	assert_non_null(strstr(log, "corrupt data"));
	assert_int_equal(chain_last_release_id(t->c, jeju, id), TD_ECORRUPT);
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, NULL), TD_ECORRUPT);   /* each candidate's "T" */
	assert_int_equal(Q_RC(chain_list_json, t->c, NULL, 10, NULL), TD_ECORRUPT); /* its summary needs it */
	assert_int_equal(Q_RC(chain_release_package_json, t->c, 1, 3, "p", NULL), TD_ECORRUPT);
	assert_int_equal(Q_RC(chain_record_package_json, t->c, 1, 3, "p", NULL), TD_ECORRUPT);
	r[1] = mkrec(t, TD_KIND_AMENDMENT, with_ref(load_sample("amend-jeju.json"), "x"), jeju, t->sk[0]);
	assert_int_equal(chain_check_record(t->c, r[1], log, sizeof(log)), TD_ECORRUPT);
	td_record_free(r[1]);
	json_decref(Q_OK(chain_tender_json, t->c, kisa));
	json_decref(Q_OK(chain_block_json, t->c, 1));
	unpoke(t, &k, old, oldlen);
	json_decref(Q_OK(chain_tender_json, t->c, jeju));

	/* the second release ("E") the compiled release is built from: an unknown record, then missing */
	static const uint8_t unknown[TD_HASH_LEN] = { 0x11 };
	ckey_release(&k, jeju, 1);
	poke(t, &k, unknown, sizeof(unknown), &old, &oldlen);
	assert_int_equal(Q_RC(chain_tender_json, t->c, jeju), TD_ECORRUPT);
	assert_int_equal(Q_RC(chain_record_package_json, t->c, 2, 2, "p", NULL), TD_ECORRUPT);
	assert_int_equal(Q_RC(chain_list_json, t->c, NULL, 10, NULL), TD_ECORRUPT); /* its summary needs it */
	poke(t, &k, NULL, 0, NULL, NULL);
	assert_int_equal(Q_RC(chain_tender_json, t->c, jeju), TD_ECORRUPT);
	assert_int_equal(Q_RC(chain_record_package_json, t->c, 2, 2, "p", NULL), TD_ECORRUPT);
	unpoke(t, &k, old, oldlen);
	json_decref(Q_OK(chain_tender_json, t->c, jeju));
	json_decref(Q_OK(chain_list_json, t->c, NULL, 10, NULL));

	/* a list count ("N") of the wrong size */
	ckey_lix_count_key(&k, CKEY_LIX_STATUS, "active");
	poke(t, &k, "1234567", 7, &old, &oldlen);
	assert_int_equal(Q_RC(chain_list_json, t->c, &f, 10, NULL), TD_ECORRUPT);
	unpoke(t, &k, old, oldlen);

	/* a block header ("B") */
	ckey_block(&k, 3);
	poke(t, &k, "\x01\x02", 2, &old, &oldlen);
	assert_int_equal(Q_RC(chain_block_json, t->c, 3), TD_ECORRUPT);
	assert_int_equal(Q_RC(chain_block_releases_json, t->c, 3), TD_ECORRUPT);
	assert_int_equal(Q_RC(chain_release_package_json, t->c, 1, 3, "p", NULL), TD_ECORRUPT);
	assert_int_equal(chain_block_raw(t->c, 3, &bb, &bl, &cb, &cl), TD_ECORRUPT);
	assert_null(bb);
	assert_null(cb);
	json_decref(Q_OK(chain_block_json, t->c, 2));
	unpoke(t, &k, old, oldlen);

	/* a commit ("C"), deleted */
	ckey_commit(&k, 2);
	poke(t, &k, NULL, 0, &old, &oldlen);
	assert_int_equal(Q_RC(chain_block_json, t->c, 2), TD_ECORRUPT);
	assert_int_equal(chain_block_raw(t->c, 2, &bb, &bl, &cb, &cl), TD_ECORRUPT);
	unpoke(t, &k, old, oldlen);

	/* a record ("D"), deleted: its block and its tender */
	ckey_record(&k, 1, 0);
	poke(t, &k, NULL, 0, &old, &oldlen);
	assert_int_equal(Q_RC(chain_block_releases_json, t->c, 1), TD_ECORRUPT);
	assert_int_equal(Q_RC(chain_tender_json, t->c, jeju), TD_ECORRUPT);
	json_decref(Q_OK(chain_tender_json, t->c, kisa));
	unpoke(t, &k, old, oldlen);

	/* everything back: every query answers again */
	json_decref(Q_OK(chain_tender_json, t->c, jeju));
	json_decref(Q_OK(chain_list_json, t->c, &f, 10, NULL));
	json_decref(Q_OK(chain_record_package_json, t->c, 1, 3, "p", NULL));
	json_decref(Q_OK(chain_release_package_json, t->c, 1, 3, "p", NULL));
	json_decref(Q_OK(chain_block_releases_json, t->c, 1));
	assert_int_equal(chain_block_raw(t->c, 3, &bb, &bl, &cb, &cl), 0);
	free(bb);
	free(cb);
}

/* chain_check_all: its code, the bad height into *bad and its message into err. */
static int check_all(struct net *t, uint64_t *bad, char *err, size_t errlen)
{
	*bad = 0;
	err[0] = '\0';
	return chain_check_all(t->c, bad, err, errlen, NULL, NULL);
}

/*
 * Damage the store's checksums cannot see (a value replaced by other bytes)
 * is caught when a block is read: a record that does not hash to its id, a
 * commit whose signature does not verify. The block is not handed out (no
 * query answer, nothing for block sync), the blocks around it still are,
 * and chain_check_all names the first damaged height; a missing record
 * place ("R") or list count ("N") is found by chain_check_all too.
 */
static void test_damage_detected(void **state)
{
	struct net *t = *state;
	struct td_record *r[2], *other;
	char err[512], name[16];
	uint8_t *old, *bb, *cb, id[TD_HASH_LEN];
	size_t oldlen, bl, cl;
	uint64_t bad;
	struct ckey k;

	for (unsigned i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "dmg-%u", i);
		r[0] = mktender(t, name, "services", "open", NULL, t->sk[0]);
		if (i == 1)
			memcpy(id, r[0]->id, TD_HASH_LEN);
		apply_ok(t, r, 1);
	}
	assert_int_equal(check_all(t, &bad, err, sizeof(err)), 0);
	assert_int_equal(bad, 0);

	/* a record ("D") of block 2 replaced by another signed record */
	other = mktender(t, "dmg-other", "services", "open", NULL, t->sk[0]);
	ckey_record(&k, 2, 0);
	poke(t, &k, other->bytes, other->len, &old, &oldlen);
	td_record_free(other);
	assert_int_equal(chain_block_raw(t->c, 2, &bb, &bl, &cb, &cl), TD_ECORRUPT);
	assert_null(bb);
	assert_null(cb);
	assert_int_equal(Q_RC(chain_block_json, t->c, 2), TD_ECORRUPT);
	assert_int_equal(Q_RC(chain_block_releases_json, t->c, 2), TD_ECORRUPT);
	assert_int_equal(Q_RC(chain_release_package_json, t->c, 1, 4, "p", NULL), TD_ECORRUPT);
	json_decref(Q_OK(chain_block_json, t->c, 1));
	json_decref(Q_OK(chain_block_json, t->c, 3));
	assert_int_equal(chain_block_raw(t->c, 3, &bb, &bl, &cb, &cl), 0);
	free(bb);
	free(cb);
	assert_int_equal(check_all(t, &bad, err, sizeof(err)), TD_ECORRUPT);
	assert_int_equal(bad, 2);
	assert_non_null(strstr(err, "block 2"));
	unpoke(t, &k, old, oldlen);
	assert_int_equal(check_all(t, &bad, err, sizeof(err)), 0);

	/* a signature of the commit ("C") of block 3 flipped */
	ckey_commit(&k, 3);
	{
		struct td_commit cm;
		uint8_t *enc;
		size_t elen;
		mkcommit_for(t, &cm, 3, id, 0xf); /* any commit: re-encoded below with a bad signature */
		td_commit_clear(&cm);
		chain_close(t->c);
		t->c = NULL;
		struct store *st;
		assert_int_equal(store_open(&st, t->path, err, sizeof(err)), 0);
		assert_int_equal(store_get(st, k.b, k.n, &enc, &elen), 0);
		store_close(st);
		reopen(t);
		enc[elen - 1] ^= 0x01; /* the last byte of the last signature */
		poke(t, &k, enc, elen, &old, &oldlen);
		free(enc);
	}
	assert_int_equal(Q_RC(chain_block_json, t->c, 3), TD_ECORRUPT);
	assert_int_equal(chain_block_raw(t->c, 3, &bb, &bl, &cb, &cl), TD_ECORRUPT);
	json_decref(Q_OK(chain_block_json, t->c, 2));
	assert_int_equal(check_all(t, &bad, err, sizeof(err)), TD_ECORRUPT);
	assert_int_equal(bad, 3);
	assert_non_null(strstr(err, "commit"));
	unpoke(t, &k, old, oldlen);

	/* the place ("R") of block 2's record, deleted */
	ckey_record_loc(&k, id);
	poke(t, &k, NULL, 0, &old, &oldlen);
	assert_int_equal(check_all(t, &bad, err, sizeof(err)), TD_ECORRUPT);
	assert_int_equal(bad, 2);
	unpoke(t, &k, old, oldlen);

	/* a list count ("N") off by one */
	{
		uint8_t n8[8];
		ckey_lix_count_key(&k, CKEY_LIX_STATUS, "active");
		ckey_put_u64(n8, 5);
		poke(t, &k, n8, sizeof(n8), &old, &oldlen);
		assert_int_equal(check_all(t, &bad, err, sizeof(err)), TD_ECORRUPT);
		assert_non_null(strstr(err, "\"N\""));
		unpoke(t, &k, old, oldlen);
	}
	assert_int_equal(check_all(t, &bad, err, sizeof(err)), 0);
}

/* The length of the store's records file, -1 if it cannot be read. */
static long records_file_len(const struct net *t)
{
	char fp[512];
	struct stat st;

	snprintf(fp, sizeof(fp), "%s/%s", t->path, STORE_RECORDS_FILE);
	return stat(fp, &st) == 0 ? (long)st.st_size : -1;
}

/*
 * The records file: bytes a crash left after the last block are cut at
 * open, a file shorter than the blocks name is refused, and a damaged
 * record in it is found by the checks and refused by block reads.
 */
static void test_records_file(void **state)
{
	struct net *t = *state;
	struct td_record *r[3];
	char err[512], name[16], fp[512];
	uint64_t bad;
	long len;
	FILE *f;

	for (unsigned i = 0; i < 3; i++) {
		for (unsigned j = 0; j < 3; j++) {
			snprintf(name, sizeof(name), "rf-%u-%u", i, j);
			r[j] = mktender(t, name, "services", "open", NULL, t->sk[0]);
		}
		apply_ok(t, r, 3);
	}
	chain_close(t->c);
	t->c = NULL;
	len = records_file_len(t);
	assert_true(len > 9 * 200);
	snprintf(fp, sizeof(fp), "%s/%s", t->path, STORE_RECORDS_FILE);

	/* a tail no block names (a crash between the file's write and the batch) */
	f = fopen(fp, "ab");
	assert_non_null(f);
	assert_int_equal(fwrite("torn tail", 1, 9, f), 9);
	fclose(f);
	assert_int_equal(records_file_len(t), len + 9);
	reopen(t);
	assert_int_equal(records_file_len(t), len);
	assert_int_equal(chain_record_count(t->c), 9);
	assert_int_equal(check_all(t, &bad, err, sizeof(err)), 0);

	/* a byte of block 2's first record flipped */
	chain_close(t->c);
	t->c = NULL;
	{
		int fd = open(fp, O_RDWR);
		uint8_t c;
		off_t at = len / 2;
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, &c, 1, at), 1);
		c ^= 0x20;
		assert_int_equal(pwrite(fd, &c, 1, at), 1);
		reopen(t);
		assert_int_equal(check_all(t, &bad, err, sizeof(err)), TD_ECORRUPT);
		assert_int_equal(bad, 2);
		assert_non_null(strstr(err, "block 2"));
		c ^= 0x20;
		assert_int_equal(pwrite(fd, &c, 1, at), 1);
		close(fd);
	}
	assert_int_equal(check_all(t, &bad, err, sizeof(err)), 0);

	/* a file shorter than the blocks name: refused, with the numbers */
	chain_close(t->c);
	t->c = NULL;
	assert_int_equal(truncate(fp, len - 1), 0);
	assert_true(chain_open(&t->c, t->path, &t->g, err, sizeof(err)) < 0);
	assert_null(t->c);
	assert_non_null(strstr(err, STORE_RECORDS_FILE));
	assert_non_null(strstr(err, "blocks name"));
}

/*
 * A store write that fails (here a file size limit, as a full disk would)
 * refuses the block with TD_EIO, leaves the tip where it was, and from then
 * on the chain writes nothing and refuses every record and block with a
 * message naming the store's failure, even once the disk has room again.
 * Opened again, the chain holds every block applied before the failure.
 */
static void test_write_failure(void **state)
{
	struct net *t = *state;
	struct td_record *r[1], *next;
	struct rlimit saved, lim;
	struct tip before;
	char err[512];
	uint64_t bad;

	r[0] = mktender(t, "wf-1", "services", "open", NULL, t->sk[0]);
	apply_ok(t, r, 1);
	r[0] = mktender(t, "wf-2", "services", "open", NULL, t->sk[0]);
	apply_ok(t, r, 1);
	tip_get(t, &before);
	assert_int_equal(chain_failed(t->c, err, sizeof(err)), 0);

	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	lim = saved;
	lim.rlim_cur = 512; /* below the size of the log LevelDB appends to */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	r[0] = mktender(t, "wf-3", "services", "open", NULL, t->sk[0]);
	err[0] = '\0';
	assert_int_equal(apply_recs(t, r, 1, err, sizeof(err)), TD_EIO);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	assert_non_null(strstr(err, "store"));
	tip_same(t, &before);

	/* failed for good: records and blocks refused, naming the store's failure */
	assert_int_equal(chain_failed(t->c, err, sizeof(err)), TD_EIO);
	assert_non_null(strstr(err, "store failed"));
	next = mktender(t, "wf-4", "services", "open", NULL, t->sk[0]);
	err[0] = '\0';
	assert_int_equal(chain_check_record(t->c, next, err, sizeof(err)), TD_EIO);
	assert_non_null(strstr(err, "store failed"));
	r[0] = mktender(t, "wf-5", "services", "open", NULL, t->sk[0]);
	assert_int_equal(apply_recs(t, r, 1, err, sizeof(err)), TD_EIO);
	tip_same(t, &before);

	/* opened again: every acknowledged block is there, and the chain goes on */
	reopen(t);
	tip_same(t, &before);
	json_decref(Q_OK(chain_tender_json, t->c, PREFIX "-wf-1"));
	json_decref(Q_OK(chain_tender_json, t->c, PREFIX "-wf-2"));
	assert_int_equal(Q_RC(chain_tender_json, t->c, PREFIX "-wf-3"), TD_ENOTFOUND);
	assert_int_equal(check_all(t, &bad, err, sizeof(err)), 0);
	assert_int_equal(chain_check_record(t->c, next, err, sizeof(err)), 0);
	r[0] = next;
	apply_ok(t, r, 1);
	assert_int_equal(chain_height(t->c), before.height + 1);
	assert_int_equal(check_all(t, &bad, err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_apply_and_query, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_four_validators, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_block_refusals, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_record_refusals, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_record_authors, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_store, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_5, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_6, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_7, setup1, teardown),
		cmocka_unit_test(test_tstate_incremental),
		cmocka_unit_test_setup_teardown(test_list_filters, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_list_scan_bound, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_prev_chain, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_amends_rule, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_block_releases, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_packages, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_same_ocid_block, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_validate_then_apply, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_validate_same_store, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_store_errors, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_damage_detected, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_write_failure, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_records_file, setup1, teardown),
		/* again, with every block validated first (chain_apply takes the remembered checks) */
		cmocka_unit_test_setup_teardown(test_apply_and_query, setup1v, teardown),
		cmocka_unit_test_setup_teardown(test_record_refusals, setup1v, teardown),
		cmocka_unit_test_setup_teardown(test_list_filters, setup4v, teardown),
		cmocka_unit_test_setup_teardown(test_amends_rule, setup1v, teardown),
		cmocka_unit_test_setup_teardown(test_packages, setup1v, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
