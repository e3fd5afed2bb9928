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
#include "chainjson.h"

static json_t *hex_json(const uint8_t *p, size_t n)
{
	char small[2 * 64 + 1], *buf = n > 64 ? td_xmalloc(2 * n + 1) : small;
	json_t *s;

	td_hex(buf, p, n);
	s = json_string(buf);
	if (buf != small)
		free(buf);
	return s;
}

static json_t *time_json(uint64_t ms)
{
	char buf[32];

	td_time_iso(buf, ms);
	return json_string(buf);
}

/* The name the chain gives the party (any role, now or once) whose key is pk, else pk in hex. */
static void agency_name(const struct chain *c, const uint8_t pk[static TD_PUBKEY_LEN],
			char out[static 2 * TD_PUBKEY_LEN + 1])
{
	int i = registry_find(c->reg, pk);

	if (i >= 0)
		snprintf(out, 2 * TD_PUBKEY_LEN + 1, "%s", registry_party(c->reg, (uint32_t)i)->name);
	else
		td_hex(out, pk, TD_PUBKEY_LEN);
}

json_t *chain_entry_json(const struct chain *c, const struct td_record *rec, uint64_t height)
{
	char name[2 * TD_PUBKEY_LEN + 1];
	json_t *out = json_object();

	agency_name(c, rec->agency, name);
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

	agency_name(c, st->owner, name);
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
		if (td_kind_is_gov(rec->kind))
			continue; /* not an OCDS release */
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
	agency_name(c, m.h.proposer, name);
	json_object_set_new(res, "proposer_name", json_string(name));
	ids = json_array();
	for (uint32_t i = 0; i < m.h.n_records; i++)
		json_array_append_new(ids, hex_json(m.ids + (size_t)i * TD_HASH_LEN, TD_HASH_LEN));
	json_object_set_new(res, "records", ids);
	json_object_set_new(res, "records_root", hex_json(m.h.records_root, TD_HASH_LEN));
	/* Evidence of equivocation the block committed: canonical encodings (tenderd/evidence.h), hex. */
	ids = json_array();
	{
		const uint8_t *q = m.ev; /* ckey_block_meta_decode checked the lengths */
		for (uint32_t i = 0; i < m.h.n_evidence; i++) {
			size_t el = (size_t)q[0] << 8 | q[1];
			json_array_append_new(ids, hex_json(q + 2, el));
			q += 2 + el;
		}
	}
	json_object_set_new(res, "evidence", ids);
	json_object_set_new(res, "evidence_root", hex_json(m.h.evidence_root, TD_HASH_LEN));
	json_object_set_new(res, "next_validators", hex_json(m.h.next_validators, TD_HASH_LEN));

	cj = json_object();
	json_object_set_new(cj, "height", td_json_uint(cm.height));
	json_object_set_new(cj, "round", td_json_uint(cm.round));
	json_object_set_new(cj, "block_hash", hex_json(cm.block_hash, TD_HASH_LEN));
	sigs = json_array();
	for (uint32_t i = 0; i < cm.n_sigs; i++) {
		const struct td_commit_sig *s = &cm.sigs[i];
		json_t *sj = json_object();
		json_object_set_new(sj, "validator", td_json_uint(s->validator));
		const struct registry_set *vs = registry_set(c->reg, cm.height);
		if (vs && s->validator < vs->n) {
			json_object_set_new(sj, "name", json_string(vs->v[s->validator].name));
			json_object_set_new(sj, "pub_key", hex_json(vs->v[s->validator].pk, TD_PUBKEY_LEN));
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
 * The state and compiled release of a tender that a committed block names,
 * and with rels not NULL its bare releases (chain_tender_releases): 0,
 * TD_EIO or TD_ECORRUPT (no state is corruption here).
 */
static int committed_tender(const struct chain *c, const char *ocid, struct ckey_tstate *st, json_t **rels,
			    json_t **compiled)
{
	int rc = chain_tstate_load(c, ocid, st);

	*compiled = NULL;
	if (rels)
		*rels = NULL;
	if (rc == TD_ENOTFOUND)
		return chain_read_error(TD_ECORRUPT, "tender %s: released in a block but has no state (\"T\")", ocid);
	if (rc != 0)
		return rc;
	if (rels)
		return chain_tender_releases(c, ocid, st->n_releases, false, rels, compiled);
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
	rc = committed_tender(c, ocid, &st, NULL, &compiled);
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
			if (td_kind_is_gov(rec->kind))
				continue;
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
			if (td_kind_is_gov(blk->records[j]->kind))
				continue;
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
		rc = committed_tender(c, ocid, &st, &rels, &compiled);
		if (rc != 0)
			goto fail;
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

/* ---- streamed packages (chain_export) ----------------------------------------- */

#define EXPORT_IDS_MAX 4096    /* tender ids one export remembers; past it, all are forgotten at once */
#define EXPORT_EMPTY_BLOCKS 64 /* blocks without records one chain_export_next steps over at most */

enum export_step {
	EXPORT_HEAD,     /* the package head is next */
	EXPORT_ITEM,     /* the next release (or record) of the walk */
	EXPORT_RELEASE,  /* records: the next release of the record being written */
	EXPORT_COMPILED, /* records: the compiled release closing the record being written */
	EXPORT_DONE,
};

struct chain_export {
	const struct chain *c;
	struct store_iter *walk; /* "D" keys, in order: the records of the range; a snapshot */
	struct store_iter *look; /* every key, the same snapshot: point reads (store_iter_seek) */
	bool records;            /* a record package, else a release package */
	bool empty;              /* the range holds no record */
	uint64_t from, to;
	enum export_step step;
	json_t *head; /* the package without its list, until written */
	bool wrote_item;
	/* the block being walked */
	uint64_t h;
	uint32_t i;    /* its next record */
	uint8_t *meta; /* its "B" value (owned); m points into it */
	struct ckey_block_meta m;
	struct ckey dk; /* "D" h: the prefix of its records' keys */
	json_t *ids;    /* releases: ocid -> compiled tender.id or null, at most EXPORT_IDS_MAX */
	/* records: the record being written */
	char ocid[TD_OCID_MAX + 1];
	struct ckey_tstate st;
	json_t *compiled;
	uint32_t seq; /* its next release */
};

static void text_put(struct chain_text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		while (cap < t->len + n + 1)
			cap *= 2;
		t->p = td_xrealloc(t->p, cap);
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void text_str(struct chain_text *t, const char *s)
{
	text_put(t, s, strlen(s));
}

/* The compact text of v, as td_json_dump writes it inside the whole package. */
static int text_json(struct chain_text *t, const json_t *v)
{
	char *s = td_json_dump(v, JSON_COMPACT);

	if (!s)
		return chain_read_error(TD_ECORRUPT, "export: a value that cannot be encoded as JSON");
	text_str(t, s);
	free(s);
	return 0;
}

/* Reads k from the export's snapshot: 0 with a copy in *val (the caller frees it), TD_ENOTFOUND or TD_EIO. */
static int snap_get(struct chain_export *x, const struct ckey *k, uint8_t **val, size_t *vlen)
{
	const uint8_t *key, *v;
	size_t kl, vl;

	*val = NULL;
	store_iter_seek(x->look, k->b, k->n);
	if (!store_iter_next(x->look, &key, &kl, &v, &vl))
		return store_iter_error(x->look) ? TD_EIO : TD_ENOTFOUND;
	if (kl != k->n || memcmp(key, k->b, kl) != 0)
		return TD_ENOTFOUND;
	*val = td_xmalloc(vl ? vl : 1);
	memcpy(*val, v, vl);
	*vlen = vl;
	return 0;
}

/* The record at index of block height from the snapshot, as chain_record_load. */
static int snap_record(struct chain_export *x, uint64_t height, uint32_t index, struct td_record **out)
{
	char e[TD_ERRMSG_MAX];
	struct ckey k;
	uint8_t *p, *ref;
	size_t n, refn;
	int rc;

	*out = NULL;
	ckey_record(&k, height, index);
	rc = snap_get(x, &k, &ref, &refn);
	if (rc == TD_ENOTFOUND)
		rc = TD_ECORRUPT;
	if (rc == 0) {
		rc = chain_record_bytes(x->c, ref, refn, &p, &n);
		free(ref);
	}
	if (rc == 0) {
		if (td_record_decode_trusted(out, p, n, x->c->g->hash, e, sizeof(e)) != 0) {
			td_record_free(*out);
			*out = NULL;
			rc = TD_ECORRUPT;
		}
		free(p);
	}
	return chain_read_error(rc, "block %llu: record %u (\"D\")", (unsigned long long)height, index);
}

/* Release seq of tender ocid from the snapshot ("E", then its place "R"), checked to be its. */
static int snap_release(struct chain_export *x, const char *ocid, uint32_t seq, struct td_record **out)
{
	char hex[2 * TD_HASH_LEN + 1] = "";
	struct td_record *rec;
	struct ckey k;
	uint8_t *id = NULL, *loc = NULL;
	size_t n, ln;
	uint64_t h;
	uint32_t i;
	int rc;

	*out = NULL;
	ckey_release(&k, ocid, seq);
	rc = snap_get(x, &k, &id, &n);
	if (rc == 0 && n != TD_HASH_LEN)
		rc = TD_ECORRUPT;
	if (rc != 0)
		goto out;
	td_hex(hex, id, TD_HASH_LEN);
	ckey_record_loc(&k, id);
	rc = snap_get(x, &k, &loc, &ln);
	if (rc == 0 && !ckey_loc_decode(loc, ln, &h, &i))
		rc = TD_ECORRUPT;
	if (rc == 0 && (rc = snap_record(x, h, i, &rec)) == 0) {
		if (memcmp(rec->id, id, TD_HASH_LEN) != 0 || strcmp(rec->ocid, ocid) != 0) {
			td_record_free(rec);
			rc = TD_ECORRUPT;
		} else {
			*out = rec;
		}
	}
out:
	free(id);
	free(loc);
	return chain_read_error(rc == TD_ENOTFOUND ? TD_ECORRUPT : rc, "tender %s: release %u (\"E\" %s)", ocid, seq,
				hex);
}

/* A committed tender's state and compiled release from the snapshot, as committed_tender. */
static int snap_tender(struct chain_export *x, const char *ocid, struct ckey_tstate *st, json_t **compiled)
{
	struct td_record *rec;
	struct ckey k;
	uint8_t *v;
	size_t n;
	int rc;

	*compiled = NULL;
	ckey_tender(&k, ocid);
	rc = snap_get(x, &k, &v, &n);
	if (rc == TD_ENOTFOUND)
		return chain_read_error(TD_ECORRUPT, "tender %s: released in a block but has no state (\"T\")", ocid);
	if (rc == 0) {
		rc = ckey_tstate_decode(st, v, n) ? 0 : TD_ECORRUPT;
		free(v);
	}
	if (rc != 0)
		return chain_read_error(rc, "tender %s: its state (\"T\")", ocid);
	if (st->n_releases > 1) {
		*compiled = json_object();
		for (uint32_t seq = 0; seq < st->n_releases; seq++) {
			if ((rc = snap_release(x, ocid, seq, &rec)) != 0) {
				json_decref(*compiled);
				*compiled = NULL;
				return rc;
			}
			td_release_merge(*compiled, rec->release);
			td_record_free(rec);
		}
		return 0;
	}
	rc = snap_record(x, st->first_height, st->first_index, &rec);
	if (rc != 0)
		return rc;
	if (strcmp(rec->ocid, ocid) != 0) {
		td_record_free(rec);
		return chain_read_error(TD_ECORRUPT, "tender %s: its first release (block %llu, record %u) is of %s",
					ocid, (unsigned long long)st->first_height, st->first_index, rec->ocid);
	}
	*compiled = json_object();
	td_release_merge(*compiled, rec->release);
	td_record_free(rec);
	return 0;
}

/* The compiled tender.id of ocid (as tender_id_of), remembered for the next releases of the same tender. */
static int snap_tender_id(struct chain_export *x, const char *ocid, const json_t **id)
{
	struct ckey_tstate st;
	json_t *compiled;
	const json_t *v;
	int rc;

	*id = json_object_get(x->ids, ocid);
	if (*id)
		return 0;
	rc = snap_tender(x, ocid, &st, &compiled);
	if (rc != 0)
		return rc;
	if (json_object_size(x->ids) >= EXPORT_IDS_MAX)
		json_object_clear(x->ids);
	v = json_object_get(json_object_get(compiled, "tender"), "id");
	json_object_set(x->ids, ocid, td_json_is_string(v) ? (json_t *)v : json_null());
	json_decref(compiled);
	*id = json_object_get(x->ids, ocid);
	return 0;
}

/* Reads and checks block x->h's header and commit (as chain_block_head_load) and starts its records. */
static int export_enter(struct chain_export *x)
{
	char e[TD_ERRMSG_MAX];
	struct td_commit cm;
	struct ckey k;
	uint8_t *cb;
	size_t len, cl;
	int rc;

	free(x->meta);
	x->meta = NULL;
	x->i = 0;
	ckey_block(&k, x->h);
	rc = snap_get(x, &k, &x->meta, &len);
	if (rc == TD_ENOTFOUND)
		rc = TD_ECORRUPT;
	if (rc == 0 && !ckey_block_meta_decode(&x->m, x->meta, len, x->h))
		rc = TD_ECORRUPT;
	if (rc != 0)
		return chain_read_error(rc, "block %llu: its header (\"B\")", (unsigned long long)x->h);
	ckey_commit(&k, x->h);
	rc = snap_get(x, &k, &cb, &cl);
	if (rc != 0)
		return chain_read_error(rc == TD_ENOTFOUND ? TD_ECORRUPT : rc, "block %llu: its commit (\"C\")",
					(unsigned long long)x->h);
	rc = chain_block_head_check(x->c, x->h, &x->m, cb, cl, &cm, e, sizeof(e));
	td_commit_clear(&cm);
	free(cb);
	if (rc != 0)
		return chain_read_error(rc, "block %llu: %s", (unsigned long long)x->h, e);
	ckey_records(&x->dk, x->h);
	store_iter_seek(x->walk, x->dk.b, x->dk.n);
	return 0;
}

/*
 * The next record of the walk into *rec (its height and index in *h, *idx),
 * checked against its block's ids; *rec NULL when the range is done or
 * EXPORT_EMPTY_BLOCKS blocks without records were stepped over.
 */
static int export_walk(struct chain_export *x, struct td_record **rec, uint64_t *h, uint32_t *idx)
{
	char e[TD_ERRMSG_MAX];
	const uint8_t *key, *val;
	size_t klen, vlen, rbn;
	uint8_t id[TD_HASH_LEN], *rb;
	int rc;

	*rec = NULL;
	for (int skipped = 0; x->i == x->m.h.n_records; skipped++) {
		if (x->h == x->to || skipped == EXPORT_EMPTY_BLOCKS)
			return 0;
		x->h++;
		rc = export_enter(x);
		if (rc != 0)
			return rc;
	}
	if (!store_iter_next(x->walk, &key, &klen, &val, &vlen) || klen != x->dk.n + 4 ||
	    memcmp(key, x->dk.b, x->dk.n) != 0 || ckey_get_u32(key + x->dk.n) != x->i) {
		rc = store_iter_error(x->walk) ? TD_EIO : TD_ECORRUPT;
		return chain_read_error(rc, "block %llu: record %u of %u (\"D\")", (unsigned long long)x->h, x->i,
					x->m.h.n_records);
	}
	rc = chain_record_bytes(x->c, val, vlen, &rb, &rbn);
	if (rc == 0) {
		td_hash(id, rb, rbn);
		if (memcmp(id, x->m.ids + (size_t)x->i * TD_HASH_LEN, TD_HASH_LEN) != 0 ||
		    td_record_decode_trusted(rec, rb, rbn, x->c->g->hash, e, sizeof(e)) != 0) {
			td_record_free(*rec);
			*rec = NULL;
			rc = TD_ECORRUPT;
		}
		free(rb);
	}
	if (rc != 0)
		return chain_read_error(rc, "block %llu: record %u of %u (\"D\")", (unsigned long long)x->h, x->i,
					x->m.h.n_records);
	*h = x->h;
	*idx = x->i++;
	return 0;
}

/* The record id of ocid's seq-th release and its place, from the snapshot. */
static int snap_release_at(struct chain_export *x, const char *ocid, uint32_t seq, uint8_t id[static TD_HASH_LEN],
			   uint64_t *height, uint32_t *index)
{
	char hex[2 * TD_HASH_LEN + 1];
	struct ckey k;
	uint8_t *v;
	size_t n;
	int rc;

	ckey_release(&k, ocid, seq);
	rc = snap_get(x, &k, &v, &n);
	if (rc == 0) {
		rc = n == TD_HASH_LEN ? 0 : TD_ECORRUPT;
		if (rc == 0)
			memcpy(id, v, TD_HASH_LEN);
		free(v);
	}
	if (rc != 0)
		return chain_read_error(rc == TD_ENOTFOUND ? TD_ECORRUPT : rc, "tender %s: release %u (\"E\")", ocid,
					seq);
	td_hex(hex, id, TD_HASH_LEN);
	ckey_record_loc(&k, id);
	rc = snap_get(x, &k, &v, &n);
	if (rc == 0) {
		rc = ckey_loc_decode(v, n, height, index) ? 0 : TD_ECORRUPT;
		free(v);
	}
	return chain_read_error(rc == TD_ENOTFOUND ? TD_ECORRUPT : rc, "record %s: its place (\"R\")", hex);
}

/*
 * Whether rec (at h, idx) is the first release of its tender in the range,
 * so that its record is written here; the tender's state in *st. The
 * releases of a tender are in ledger order, so this is a binary search over
 * them when the tender began before the range.
 */
static int export_first(struct chain_export *x, const struct td_record *rec, uint64_t h, uint32_t idx, bool *first,
			struct ckey_tstate *st)
{
	uint8_t id[TD_HASH_LEN];
	uint64_t height;
	uint32_t index, lo = 0, hi;
	struct ckey k;
	uint8_t *v;
	size_t n;
	int rc;

	ckey_tender(&k, rec->ocid);
	rc = snap_get(x, &k, &v, &n);
	if (rc == TD_ENOTFOUND)
		return chain_read_error(TD_ECORRUPT, "tender %s: released in a block but has no state (\"T\")",
					rec->ocid);
	if (rc == 0) {
		rc = ckey_tstate_decode(st, v, n) ? 0 : TD_ECORRUPT;
		free(v);
	}
	if (rc != 0)
		return chain_read_error(rc, "tender %s: its state (\"T\")", rec->ocid);
	if (st->first_height >= x->from) {
		*first = st->first_height == h && st->first_index == idx;
		return 0;
	}
	for (hi = st->n_releases; lo < hi;) {
		uint32_t mid = lo + (hi - lo) / 2;
		rc = snap_release_at(x, rec->ocid, mid, id, &height, &index);
		if (rc != 0)
			return rc;
		if (height < x->from)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == st->n_releases)
		return chain_read_error(TD_ECORRUPT, "tender %s: block %llu holds a release its \"E\" list lacks",
					rec->ocid, (unsigned long long)h);
	rc = snap_release_at(x, rec->ocid, lo, id, &height, &index);
	if (rc != 0)
		return rc;
	*first = memcmp(id, rec->id, TD_HASH_LEN) == 0;
	return 0;
}

int chain_export_new(struct chain_export **out, const struct chain *c, uint64_t from, uint64_t to, bool records,
		     const char *publisher, const char *uri)
{
	char iso[32], date[32], def[TD_CHAIN_ID_MAX + 80];
	const uint8_t *key, *val;
	size_t klen, vlen;
	struct chain_export *x;
	json_t *pub;
	int rc;

	*out = NULL;
	if (from == 0)
		from = 1;
	if (from > to || from > c->height)
		return TD_ENOTFOUND;
	if (to > c->height)
		to = c->height;
	x = td_xcalloc(1, sizeof(*x));
	x->c = c;
	x->records = records;
	x->from = from;
	x->to = to;
	x->ids = json_object();
	/* both made in one turn of the loop, with no write between them: one snapshot */
	ckey_records(&x->dk, from);
	x->walk = store_iter_new(c->st, x->dk.b, 1, false);
	x->look = store_iter_new(c->st, NULL, 0, false);

	/* the head: publishedDate is the time of block to */
	x->h = to;
	rc = export_enter(x);
	if (rc != 0)
		goto fail;
	td_time_iso(iso, x->m.h.time_ms);
	snprintf(date, sizeof(date), "%.19sZ", iso);
	if (!uri) {
		snprintf(def, sizeof(def), "tenderd://%s/export?from=%llu&to=%llu", c->g->chain_id,
			 (unsigned long long)from, (unsigned long long)to);
		uri = def;
	}
	x->head = json_object();
	json_object_set_new(x->head, "uri", json_string(uri));
	json_object_set_new(x->head, "version", json_string("1.1"));
	json_object_set_new(x->head, "publishedDate", json_string(date));
	pub = json_object();
	json_object_set_new(pub, "name", json_string(publisher ? publisher : c->g->chain_id));
	json_object_set_new(x->head, "publisher", pub);

	/* empty: no "D" key from block from to block to */
	ckey_records(&x->dk, from);
	store_iter_seek(x->walk, x->dk.b, x->dk.n);
	x->empty = !store_iter_next(x->walk, &key, &klen, &val, &vlen) || klen < x->dk.n || ckey_get_u64(key + 1) > to;
	if (store_iter_error(x->walk)) {
		rc = chain_read_error(TD_EIO, "export of blocks %llu..%llu (\"D\")", (unsigned long long)from,
				      (unsigned long long)to);
		goto fail;
	}
	x->h = from;
	rc = export_enter(x);
	if (rc != 0)
		goto fail;
	*out = x;
	return 0;
fail:
	chain_export_free(x);
	return rc;
}

bool chain_export_empty(const struct chain_export *x)
{
	return x->empty;
}

/* Writes the next release of a release package (or its end). */
static int export_next_release(struct chain_export *x, struct chain_text *out)
{
	struct td_record *rec;
	const json_t *id;
	uint64_t h;
	uint32_t idx;
	int rc = export_walk(x, &rec, &h, &idx);

	if (rc != 0)
		return rc;
	if (!rec) {
		if (x->i < x->m.h.n_records || x->h < x->to)
			return 1; /* stepped over empty blocks: more next time */
		text_str(out, "]}");
		x->step = EXPORT_DONE;
		return 0;
	}
	if (td_kind_is_gov(rec->kind)) {
		td_record_free(rec); /* not an OCDS release */
		return 1;
	}
	rc = snap_tender_id(x, rec->ocid, &id);
	if (rc == 0) {
		json_t *rel = export_release(rec->release, id);
		if (x->wrote_item)
			text_put(out, ",", 1);
		rc = text_json(out, rel);
		json_decref(rel);
		x->wrote_item = true;
	}
	td_record_free(rec);
	return rc != 0 ? rc : 1;
}

/* Writes the next part of a record package: a record's start, one of its releases, its end, or the package's end. */
static int export_next_record(struct chain_export *x, struct chain_text *out)
{
	struct td_record *rec;
	uint8_t id[TD_HASH_LEN];
	uint64_t h;
	uint32_t idx;
	bool first = false;
	json_t *s;
	int rc;

	switch (x->step) {
	case EXPORT_RELEASE:
		if (x->seq == x->st.n_releases) {
			x->step = EXPORT_COMPILED;
			return 1;
		}
		rc = snap_release_at(x, x->ocid, x->seq, id, &h, &idx);
		if (rc != 0)
			return rc;
		rc = snap_record(x, h, idx, &rec);
		if (rc != 0)
			return rc;
		if (memcmp(rec->id, id, TD_HASH_LEN) != 0 || strcmp(rec->ocid, x->ocid) != 0) {
			td_record_free(rec);
			return chain_read_error(TD_ECORRUPT, "tender %s: release %u is not the record at its place",
						x->ocid, x->seq);
		}
		json_t *rel =
			export_release(rec->release, json_object_get(json_object_get(x->compiled, "tender"), "id"));
		if (x->seq > 0)
			text_put(out, ",", 1);
		rc = text_json(out, rel);
		json_decref(rel);
		td_record_free(rec);
		x->seq++;
		return rc != 0 ? rc : 1;
	case EXPORT_COMPILED:
		text_str(out, "],\"compiledRelease\":");
		rc = text_json(out, x->compiled);
		text_put(out, "}", 1);
		json_decref(x->compiled);
		x->compiled = NULL;
		x->step = EXPORT_ITEM;
		return rc != 0 ? rc : 1;
	case EXPORT_ITEM: break;
	case EXPORT_HEAD:
	case EXPORT_DONE: abort(); /* chain_export_next handles them */
	}
	rc = export_walk(x, &rec, &h, &idx);
	if (rc != 0)
		return rc;
	if (!rec) {
		if (x->i < x->m.h.n_records || x->h < x->to)
			return 1;
		text_str(out, "]}");
		x->step = EXPORT_DONE;
		return 0;
	}
	if (td_kind_is_gov(rec->kind)) {
		td_record_free(rec);
		return 1;
	}
	rc = export_first(x, rec, h, idx, &first, &x->st);
	if (rc == 0 && first)
		rc = snap_tender(x, rec->ocid, &x->st, &x->compiled);
	if (rc != 0 || !first) {
		td_record_free(rec);
		return rc != 0 ? rc : 1;
	}
	snprintf(x->ocid, sizeof(x->ocid), "%s", rec->ocid);
	td_record_free(rec);
	if (x->wrote_item)
		text_put(out, ",", 1);
	x->wrote_item = true;
	text_str(out, "{\"ocid\":");
	s = json_string(x->ocid);
	rc = text_json(out, s);
	json_decref(s);
	text_str(out, ",\"releases\":[");
	x->seq = 0;
	x->step = EXPORT_RELEASE;
	return rc != 0 ? rc : 1;
}

int chain_export_next(struct chain_export *x, struct chain_text *out)
{
	char *s;
	size_t n;

	switch (x->step) {
	case EXPORT_DONE: return 0;
	case EXPORT_HEAD:
		/* the head's text without its closing brace, then the list the package ends with */
		s = td_json_dump(x->head, JSON_COMPACT);
		if (!s)
			return chain_read_error(TD_ECORRUPT, "export: a package head that cannot be encoded");
		n = strlen(s);
		text_put(out, s, n - 1);
		free(s);
		text_str(out, x->records ? ",\"records\":[" : ",\"releases\":[");
		json_decref(x->head);
		x->head = NULL;
		x->step = EXPORT_ITEM;
		return 1;
	case EXPORT_ITEM:
	case EXPORT_RELEASE:
	case EXPORT_COMPILED: break;
	}
	return x->records ? export_next_record(x, out) : export_next_release(x, out);
}

void chain_export_free(struct chain_export *x)
{
	if (!x)
		return;
	store_iter_free(x->walk);
	store_iter_free(x->look);
	free(x->meta);
	json_decref(x->head);
	json_decref(x->ids);
	json_decref(x->compiled);
	free(x);
}

/* ---- for the HTTP endpoint (chainjson.h) -------------------------------------- */

int chain_tender_package_json(const struct chain *c, const char *ocid, const char *publisher, const char *uri,
			      json_t **out)
{
	struct ckey_tstate st;
	json_t *res = NULL, *compiled = NULL, *rels = NULL, *r, *recs;
	uint64_t from, to;
	int rc;

	*out = NULL;
	if (!ocid || strlen(ocid) > TD_OCID_MAX)
		return TD_ENOTFOUND;
	rc = chain_tstate_load(c, ocid, &st);
	if (rc != 0)
		return rc;
	from = to = st.last_height;
	if ((rc = package_new(c, &from, &to, publisher, uri, &res)) != 0 ||
	    (rc = chain_tender_releases(c, ocid, st.n_releases, false, &rels, &compiled)) != 0)
		goto fail;
	for (size_t j = 0; j < json_array_size(rels); j++)
		json_array_set_new(rels, j,
				   export_release(json_array_get(rels, j),
						  json_object_get(json_object_get(compiled, "tender"), "id")));
	r = json_object();
	json_object_set_new(r, "ocid", json_string(ocid));
	json_object_set_new(r, "releases", rels);
	json_object_set_new(r, "compiledRelease", compiled);
	recs = json_array();
	json_array_append_new(recs, r);
	json_object_set_new(res, "records", recs);
	*out = res;
	return 0;
fail:
	json_decref(rels);
	json_decref(compiled);
	json_decref(res);
	return rc == TD_ENOTFOUND ? chain_read_error(TD_ECORRUPT, "tender %s: its last block is missing", ocid) : rc;
}

int chain_block_info(const struct chain *c, uint64_t height, bool with_commit, struct chain_block_info *out)
{
	struct ckey_block_meta m;
	struct td_commit cm = { 0 };
	char e[TD_ERRMSG_MAX];
	uint8_t *val = NULL, *cb = NULL;
	size_t cl = 0;
	struct ckey k;
	int rc;

	memset(out, 0, sizeof(*out));
	if (height == 0 || height > c->height)
		return TD_ENOTFOUND;
	rc = chain_block_meta_load(c, height, &m, &val);
	if (rc != 0)
		return rc;
	out->height = height;
	memcpy(out->hash, m.hash, TD_HASH_LEN);
	out->time_ms = m.h.time_ms;
	out->n_records = m.h.n_records;
	if (with_commit) {
		/* its signatures were verified when it was committed: decoded, not verified again */
		ckey_commit(&k, height);
		rc = store_get(c->st, k.b, k.n, &cb, &cl);
		if (rc != 0) {
			rc = chain_read_error(rc == TD_ENOTFOUND ? TD_ECORRUPT : rc, "block %llu: its commit (\"C\")",
					      (unsigned long long)height);
		} else if (td_commit_decode(&cm, cb, cl, e, sizeof(e)) != 0 || cm.height != height ||
			   memcmp(cm.block_hash, m.hash, TD_HASH_LEN) != 0) {
			rc = chain_read_error(TD_ECORRUPT, "block %llu: its commit (\"C\") is not this block's",
					      (unsigned long long)height);
		} else {
			out->round = cm.round;
			out->n_sigs = cm.n_sigs;
		}
		td_commit_clear(&cm);
		free(cb);
	}
	free(val);
	return rc;
}
