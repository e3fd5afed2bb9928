/* Shared fixtures of the fuzz targets (see world.h). */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "tenderd/json.h"
#include "tenderd/record.h"
#include "chain.h"
#include "store.h"
#include "world.h"

static struct fz_world *the_world;

void fz_check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "invariant broken: %s\n", what);
		abort();
	}
}

json_t *fz_sample(const char *name)
{
	char path[512], err[TD_ERRMSG_MAX];
	snprintf(path, sizeof(path), "%s/samples/%s", TD_TEST_DATA, name);
	json_t *j = json_load_file(path, 0, NULL);
	fz_check(j != NULL, "a sample does not load");
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	j = td_json_load(s, strlen(s), err, sizeof(err));
	free(s);
	fz_check(j != NULL, "a sample does not load exactly");
	return j;
}

/* The record after: when set, what fz_sign names as previous (a record of the same block). */
static const uint8_t *sign_after;

struct td_record *fz_sign(const json_t *release, enum td_kind kind, uint64_t time_ms)
{
	struct fz_world *w = fz_world();
	struct td_record *rec = NULL;
	char err[TD_ERRMSG_MAX];

	uint8_t prev[TD_HASH_LEN] = { 0 }; /* after the tender's latest committed record, if it has one */
	const char *ocid = json_string_value(json_object_get(release, "ocid"));
	if (sign_after)
		memcpy(prev, sign_after, TD_HASH_LEN);
	else if (kind != TD_KIND_TENDER && ocid && chain_tender_last(w->c, ocid, prev) != 0)
		memset(prev, 0, sizeof(prev));
	if (td_record_sign(&rec, kind, release, time_ms, kind == TD_KIND_TENDER ? NULL : prev, FZ_CHAIN, w->sk, err,
			   sizeof(err)) != 0)
		return NULL;
	return rec;
}

int fz_apply(struct fz_world *w, struct td_record **recs, uint32_t n)
{
	char err[TD_ERRMSG_MAX];
	struct td_record **arr = calloc(n ? n : 1, sizeof(*arr));
	struct td_commit cm;

	memcpy(arr, recs, n * sizeof(*arr));
	uint64_t h = chain_height(w->c) + 1;
	struct td_block *blk = td_block_new(h, chain_last_hash(w->c), chain_last_time(w->c) + 1000, w->g.v[0].pk,
					    w->g.validators_hash, arr, n);
	memset(&cm, 0, sizeof(cm));
	cm.height = h;
	memcpy(cm.block_hash, blk->hash, TD_HASH_LEN);
	cm.n_sigs = 1;
	cm.sigs = calloc(1, sizeof(*cm.sigs));
	td_vote_sign(cm.sigs[0].sig, FZ_CHAIN, TD_VOTE_PRECOMMIT, h, 0, blk->hash, w->sk);
	int rc = chain_apply(w->c, blk, &cm, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "fuzz world: apply: %s\n", err);
	td_commit_clear(&cm);
	td_block_free(blk);
	return rc;
}

static struct td_record *build(struct fz_world *w, json_t *frag, enum td_kind kind)
{
	char err[TD_ERRMSG_MAX];
	uint64_t ms = w->clock_ms += 1000;
	json_t *rel = td_release_build(frag, kind, NULL, ms, "Test agency", err, sizeof(err));
	if (!rel) {
		fprintf(stderr, "fuzz world: build: %s\n", err);
		abort();
	}
	struct td_record *rec = fz_sign(rel, kind, ms);
	fz_check(rec != NULL, "a sample does not sign");
	json_decref(rel);
	json_decref(frag);
	return rec;
}

struct fz_world *fz_world(void)
{
	static const char *const tenders[] = { "tender-jeju.json", "tender-kisa.json", "tender-gangwon.json",
					       "tender-sejong.json", "tender-private.json" };
	char err[TD_ERRMSG_MAX];
	uint8_t seed[crypto_sign_SEEDBYTES];

	if (the_world)
		return the_world;
	fz_check(sodium_init() >= 0, "sodium_init");
	struct fz_world *w = calloc(1, sizeof(*w));
	the_world = w;
	snprintf(w->g.chain_id, sizeof(w->g.chain_id), FZ_CHAIN_ID);
	snprintf(w->g.ocid_prefix, sizeof(w->g.ocid_prefix), FZ_PREFIX);
	w->g.time_ms = FZ_GENESIS_MS;
	w->g.n = 1;
	w->g.v = calloc(1, sizeof(*w->g.v));
	snprintf(w->g.v[0].name, sizeof(w->g.v[0].name), "Test agency");
	memset(seed, 0x5a, sizeof(seed));
	crypto_sign_seed_keypair(w->g.v[0].pk, w->sk, seed);
	td_genesis_seal(&w->g);
	w->clock_ms = FZ_GENESIS_MS + 1000;

	struct store *st;
	w->mw = store_mem_world_new();
	fz_check(store_open_mem(&st, w->mw, "fuzz", err, sizeof(err)) == 0, "store_open_mem");
	fz_check(chain_open_store(&w->c, st, "fuzz", &w->g, err, sizeof(err)) == 0, "chain_open_store");

	for (size_t i = 0; i < sizeof(tenders) / sizeof(tenders[0]); i++) {
		struct td_record *rec = build(w, fz_sample(tenders[i]), TD_KIND_TENDER);
		if (i == 0)
			snprintf(w->jeju_tender_id, sizeof(w->jeju_tender_id), "%s", rec->release_id);
		fz_check(fz_apply(w, &rec, 1) == 0, "a sample tender does not apply");
	}
	json_t *am = fz_sample("amend-jeju.json");
	json_object_set_new(am, "ocid", json_string("ocds-kr2020-jeju-0001"));
	json_t *e = json_array_get(json_object_get(json_object_get(am, "tender"), "amendments"), 0);
	json_object_set_new(e, "amendsReleaseID", json_string(w->jeju_tender_id));
	struct td_record *recs[2];
	recs[0] = build(w, am, TD_KIND_AMENDMENT);
	json_t *aw = fz_sample("award-jeju.json");
	if (!json_object_get(aw, "ocid"))
		json_object_set_new(aw, "ocid", json_string("ocds-kr2020-jeju-0001"));
	sign_after = recs[0]->id; /* the award follows the amendment in the same block */
	recs[1] = build(w, aw, TD_KIND_AWARD);
	sign_after = NULL;
	fz_check(fz_apply(w, recs, 2) == 0, "the Jeju amendment and award do not apply");
	return w;
}

static char tmpdir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void rm_tmpdir(void)
{
	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

const char *fz_tmpdir(void)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/td-fuzz-XXXXXX");
		fz_check(mkdtemp(tmpdir) != NULL, "mkdtemp");
		atexit(rm_tmpdir);
	}
	return tmpdir;
}

void fz_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	fz_check(f != NULL, "cannot create a temporary file");
	fz_check(fwrite(data, 1, len, f) == len || len == 0, "cannot write a temporary file");
	fz_check(fclose(f) == 0, "cannot close a temporary file");
}
