/*
 * The chain's answers as JSON: release entries, tender summaries, blocks,
 * the releases of a block and the OCDS 1.1 release and record packages.
 * Reads through chainquery.c; writes nothing.
 *
 * JSON answers: "time" of a release entry is the record's own time (when the
 * agency signed it); "height" of a listed tender is the height of its first
 * release and "releases" its number of releases. Hashes and keys are hex.
 *
 * Packages (chain_release_package_json, chain_record_package_json) carry the
 * releases as signed, except that a release whose tender object has no "id"
 * (amendments and cancellations may leave it out) gets the compiled
 * tender.id in the exported copy, as the OCDS release schema requires.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/release.h"
#include "chain_int.h"

static json_t *hex_json(const uint8_t *p, size_t n)
{
	char buf[2 * 64 + 1];

	if (n > 64)
		abort();
	td_hex(buf, p, n);
	return json_string(buf);
}

static json_t *time_json(uint64_t ms)
{
	char buf[32];

	td_time_iso(buf, ms);
	return json_string(buf);
}

/* The genesis validator name whose key is pk, else pk in hex. */
static void agency_name(const struct td_genesis *g, const uint8_t pk[static TD_PUBKEY_LEN],
			char out[static 2 * TD_PUBKEY_LEN + 1])
{
	int i = td_genesis_find(g, pk);

	if (i >= 0)
		snprintf(out, 2 * TD_PUBKEY_LEN + 1, "%s", g->v[i].name);
	else
		td_hex(out, pk, TD_PUBKEY_LEN);
}

json_t *chain_entry_json(const struct chain *c, const struct td_record *rec, uint64_t height)
{
	char name[2 * TD_PUBKEY_LEN + 1];
	json_t *out = json_object();

	agency_name(c->g, rec->agency, name);
	json_object_set_new(out, "record_id", hex_json(rec->id, TD_HASH_LEN));
	json_object_set_new(out, "height", td_json_uint(height));
	json_object_set_new(out, "time", time_json(rec->time_ms));
	json_object_set_new(out, "agency", hex_json(rec->agency, TD_PUBKEY_LEN));
	json_object_set_new(out, "agency_name", json_string(name));
	json_object_set_new(out, "kind", json_string(td_kind_name(rec->kind)));
	json_object_set_new(out, "release", json_incref(rec->release));
	return out;
}

json_t *chain_summary_json(const struct chain *c, const struct ckey_tstate *st, const json_t *compiled)
{
	char name[2 * TD_PUBKEY_LEN + 1];
	json_t *sum = td_release_summary(compiled);

	agency_name(c->g, st->owner, name);
	json_object_set_new(sum, "agency", hex_json(st->owner, TD_PUBKEY_LEN));
	json_object_set_new(sum, "agency_name", json_string(name));
	json_object_set_new(sum, "height", td_json_uint(st->first_height));
	json_object_set_new(sum, "releases", td_json_uint(st->n_releases));
	return sum;
}

int chain_block_releases_json(const struct chain *c, uint64_t height, json_t **out)
{
	struct td_block *blk;
	int rc;

	*out = NULL;
	if (height == 0 || height > c->height)
		return TD_ENOTFOUND;
	rc = chain_load_block(c, height, &blk);
	if (rc != 0)
		return rc;
	*out = json_array();
	for (uint32_t i = 0; i < blk->hdr.n_records; i++) {
		const struct td_record *rec = blk->records[i];
		json_t *e = chain_entry_json(c, rec, height);
		json_object_set_new(e, "index", td_json_uint(i));
		json_object_set_new(e, "block_records", td_json_uint(blk->hdr.n_records));
		json_object_set_new(e, "ocid", json_string(rec->ocid));
		json_object_set_new(e, "release_id", json_string(rec->release_id));
		json_array_append_new(*out, e);
	}
	td_block_free(blk);
	return 0;
}

int chain_block_json(const struct chain *c, uint64_t height, json_t **out)
{
	char name[2 * TD_PUBKEY_LEN + 1];
	struct ckey_block_meta m;
	struct td_commit cm = { 0 };
	uint8_t *mval = NULL;
	json_t *res, *ids, *cj, *sigs;
	int rc;

	*out = NULL;
	if (height == 0 || height > c->height)
		return TD_ENOTFOUND;
	uint8_t *whole;
	size_t wlen;

	/* the records are read too, so a block whose records are damaged is not shown */
	rc = chain_block_bytes(c, height, &whole, &wlen);
	if (rc != 0)
		return rc;
	free(whole);
	rc = chain_block_head_load(c, height, &m, &mval, &cm);
	if (rc != 0)
		return rc;

	res = json_object();
	json_object_set_new(res, "height", td_json_uint(m.h.height));
	json_object_set_new(res, "hash", hex_json(m.hash, TD_HASH_LEN));
	json_object_set_new(res, "prev_hash", hex_json(m.h.prev_hash, TD_HASH_LEN));
	json_object_set_new(res, "time", time_json(m.h.time_ms));
	json_object_set_new(res, "proposer", hex_json(m.h.proposer, TD_PUBKEY_LEN));
	agency_name(c->g, m.h.proposer, name);
	json_object_set_new(res, "proposer_name", json_string(name));
	ids = json_array();
	for (uint32_t i = 0; i < m.h.n_records; i++)
		json_array_append_new(ids, hex_json(m.ids + (size_t)i * TD_HASH_LEN, TD_HASH_LEN));
	json_object_set_new(res, "records", ids);

	cj = json_object();
	json_object_set_new(cj, "height", td_json_uint(cm.height));
	json_object_set_new(cj, "round", td_json_uint(cm.round));
	json_object_set_new(cj, "block_hash", hex_json(cm.block_hash, TD_HASH_LEN));
	sigs = json_array();
	for (uint32_t i = 0; i < cm.n_sigs; i++) {
		const struct td_commit_sig *s = &cm.sigs[i];
		json_t *sj = json_object();
		json_object_set_new(sj, "validator", td_json_uint(s->validator));
		if (s->validator < c->g->n) {
			json_object_set_new(sj, "name", json_string(c->g->v[s->validator].name));
			json_object_set_new(sj, "pub_key", hex_json(c->g->v[s->validator].pk, TD_PUBKEY_LEN));
		}
		json_object_set_new(sj, "signature", hex_json(s->sig, TD_SIG_LEN));
		json_array_append_new(sigs, sj);
	}
	json_object_set_new(cj, "signatures", sigs);
	json_object_set_new(res, "commit", cj);
	*out = res;
	td_commit_clear(&cm);
	free(mval);
	return 0;
}

/* ---- OCDS packages ------------------------------------------------------------ */

/*
 * The head of a package over blocks *from..*to into *out: the range clamped
 * to the chain (from 0 is 1, to past the tip is the tip); "publishedDate" is
 * the time of block *to in whole seconds UTC. 0, TD_ENOTFOUND if the range
 * is empty, TD_EIO or TD_ECORRUPT.
 */
static int package_new(const struct chain *c, uint64_t *from, uint64_t *to, const char *publisher, const char *uri,
		       json_t **out)
{
	struct td_block *blk;
	char iso[32], date[32], def[TD_CHAIN_ID_MAX + 80];
	json_t *pub;
	int rc;

	*out = NULL;
	if (*from == 0)
		*from = 1;
	if (*from > *to || *from > c->height)
		return TD_ENOTFOUND;
	if (*to > c->height)
		*to = c->height;
	rc = chain_load_block(c, *to, &blk);
	if (rc != 0)
		return rc;
	td_time_iso(iso, blk->hdr.time_ms);
	td_block_free(blk);
	snprintf(date, sizeof(date), "%.19sZ", iso);
	if (!uri) {
		snprintf(def, sizeof(def), "tenderd://%s/export?from=%llu&to=%llu", c->g->chain_id,
			 (unsigned long long)*from, (unsigned long long)*to);
		uri = def;
	}
	*out = json_object();
	json_object_set_new(*out, "uri", json_string(uri));
	json_object_set_new(*out, "version", json_string("1.1"));
	json_object_set_new(*out, "publishedDate", json_string(date));
	pub = json_object();
	json_object_set_new(pub, "name", json_string(publisher ? publisher : c->g->chain_id));
	json_object_set_new(*out, "publisher", pub);
	return 0;
}

/*
 * A release as a package carries it. OCDS requires tender.id wherever a
 * release has a tender object, and an amendment or cancellation may leave
 * it out (its signed release is kept as signed on the ledger): such a
 * release gets tender_id (the compiled tender.id) in a shallow copy.
 */
static json_t *export_release(const json_t *rel, const json_t *tender_id)
{
	json_t *tender = json_object_get(rel, "tender"), *copy, *tc;

	if (!json_is_object(tender) || json_object_get(tender, "id") || !td_json_is_string(tender_id))
		return json_incref((json_t *)rel);
	copy = json_copy((json_t *)rel);
	tc = json_copy(tender);
	json_object_set(tc, "id", (json_t *)tender_id);
	json_object_set_new(copy, "tender", tc);
	return copy;
}

/*
 * The state and compiled release of a tender that a committed block names:
 * 0, TD_EIO or TD_ECORRUPT (no state is corruption here).
 */
static int committed_tender(const struct chain *c, const char *ocid, struct ckey_tstate *st, json_t **compiled)
{
	int rc = chain_tstate_load(c, ocid, st);

	*compiled = NULL;
	if (rc == TD_ENOTFOUND)
		return chain_read_error(TD_ECORRUPT, "tender %s: released in a block but has no state (\"T\")", ocid);
	if (rc != 0)
		return rc;
	return chain_compiled_load(c, ocid, st, compiled);
}

/*
 * The compiled tender.id of ocid into *id, remembered in cache (ocid -> id
 * or null); *id NULL if the compiled release has none. 0, TD_EIO or
 * TD_ECORRUPT.
 */
static int tender_id_of(const struct chain *c, json_t *cache, const char *ocid, const json_t **id)
{
	json_t *compiled;
	struct ckey_tstate st;
	const json_t *v;
	int rc;

	*id = json_object_get(cache, ocid);
	if (*id)
		return 0;
	rc = committed_tender(c, ocid, &st, &compiled);
	if (rc != 0)
		return rc;
	v = json_object_get(json_object_get(compiled, "tender"), "id");
	json_object_set(cache, ocid, td_json_is_string(v) ? (json_t *)v : json_null());
	json_decref(compiled);
	*id = json_object_get(cache, ocid);
	return 0;
}

int chain_release_package_json(const struct chain *c, uint64_t from, uint64_t to, const char *publisher,
			       const char *uri, json_t **out)
{
	json_t *res, *rels, *ids;
	int rc = package_new(c, &from, &to, publisher, uri, &res);

	*out = NULL;
	if (rc != 0)
		return rc;
	ids = json_object();
	rels = json_array();
	json_object_set_new(res, "releases", rels);
	for (uint64_t h = from; h <= to && rc == 0; h++) {
		struct td_block *blk;
		rc = chain_load_block(c, h, &blk);
		if (rc != 0)
			break;
		for (uint32_t i = 0; rc == 0 && i < blk->hdr.n_records; i++) {
			const struct td_record *rec = blk->records[i];
			const json_t *id;
			rc = tender_id_of(c, ids, rec->ocid, &id);
			if (rc == 0)
				json_array_append_new(rels, export_release(rec->release, id));
		}
		td_block_free(blk);
	}
	json_decref(ids);
	if (rc != 0) {
		json_decref(res);
		return rc;
	}
	*out = res;
	return 0;
}

int chain_record_package_json(const struct chain *c, uint64_t from, uint64_t to, const char *publisher, const char *uri,
			      json_t **out)
{
	json_t *res, *seen, *ocids, *recs, *o;
	size_t i;
	int rc = package_new(c, &from, &to, publisher, uri, &res);

	*out = NULL;
	if (rc != 0)
		return rc;
	/* the ocids with a release in the range, in order of their first one there */
	seen = json_object();
	ocids = json_array();
	for (uint64_t h = from; h <= to; h++) {
		struct td_block *blk;
		rc = chain_load_block(c, h, &blk);
		if (rc != 0)
			goto fail;
		for (uint32_t j = 0; j < blk->hdr.n_records; j++) {
			const char *ocid = blk->records[j]->ocid;
			if (!json_object_get(seen, ocid)) {
				json_object_set_new(seen, ocid, json_true());
				json_array_append_new(ocids, json_string(ocid));
			}
		}
		td_block_free(blk);
	}
	recs = json_array();
	json_object_set_new(res, "records", recs);
	json_array_foreach(ocids, i, o) {
		const char *ocid = json_string_value(o);
		struct ckey_tstate st;
		json_t *r, *rels, *compiled;
		rc = committed_tender(c, ocid, &st, &compiled);
		if (rc != 0)
			goto fail;
		rc = chain_tender_releases(c, ocid, st.n_releases, false, &rels);
		if (rc != 0) {
			json_decref(compiled);
			goto fail;
		}
		for (size_t j = 0; j < json_array_size(rels); j++)
			json_array_set_new(rels, j,
					   export_release(json_array_get(rels, j),
							  json_object_get(json_object_get(compiled, "tender"), "id")));
		r = json_object();
		json_object_set_new(r, "ocid", json_string(ocid));
		json_object_set_new(r, "releases", rels);
		json_object_set_new(r, "compiledRelease", compiled);
		json_array_append_new(recs, r);
	}
	json_decref(seen);
	json_decref(ocids);
	*out = res;
	return 0;
fail:
	json_decref(seen);
	json_decref(ocids);
	json_decref(res);
	return rc;
}
