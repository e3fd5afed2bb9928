/*
 * The chain's reads: tender states, records, blocks, a tender's releases,
 * the last release id and listings, all answered from the store (schema in
 * chainkeys.h). Nothing here writes.
 *
 * A block is checked whenever it is read (chain_block_head_load, chain_block_bytes):
 * its record ids against the records root of its header, its commit against
 * the hash of its header and the genesis validators, the tip's hash against
 * "M", and each record's bytes against its id. A record read through its id
 * ("R") is checked against that id. What fails a check is TD_ECORRUPT,
 * logged with the height, and never handed out: a query answers an error
 * and block sync sends nothing from that height on.
 *
 * Listing (chain_list_json). Every answer walks one list index in reverse
 * (newest first), never all tenders:
 *   - no filter: "L" \0, by first-release height and index, descending;
 *   - any of agency/status/category/method: the index of the one of them
 *     whose "N" count is smallest, by first-release height and index
 *     descending; each candidate's other filters (and since/until) are
 *     checked against its "T" state;
 *   - only since and/or until: "L" 'd' from until down to since, so by tender
 *     date descending (then first-release height and index descending).
 * since/until are inclusive and take an ISO 8601 date-time with a zone, or
 * a bare date YYYY-MM-DD (since: 00:00:00Z that day; until: 23:59:59.999Z).
 * One call examines at most LIST_SCAN_MAX index entries: when a combined
 * filter rejects that many it answers with fewer than limit tenders (maybe
 * none) and a next_cursor to continue from. A next_cursor can also lead to
 * an empty last page. The cursor is the hex of the last index key examined:
 * it names its index, so a continued walk stays on that index even if the
 * counts change, and a cursor whose index does not belong to the filter is
 * refused. Keys removed since (a status change) only move the walk to the
 * next older key.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tenderd/codec.h"
#include "tenderd/evidence.h"
#include "tenderd/json.h"
#include "tenderd/merkle.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "chain_int.h"
#include "log.h"

#define LIST_LIMIT_MAX 1000
#define LIST_SCAN_MAX 10000 /* list index entries one chain_list_json call examines at most */

/* ---- read errors -------------------------------------------------------------- */

int chain_read_error(int rc, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	if (rc != TD_EIO && rc != TD_ECORRUPT)
		return rc;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_error("chain: %s: %s", what, td_strerror(rc));
	return rc;
}

/* The hex of a key, for a log line. */
static const char *key_hex(const uint8_t *k, size_t n, char out[static 2 * CKEY_MAX + 1])
{
	td_hex(out, k, n > CKEY_MAX ? CKEY_MAX : n);
	return out;
}

/* ---- records and tender states ---------------------------------------------- */

bool chain_has_record(const struct chain *c, const uint8_t id[static TD_HASH_LEN], uint64_t *height)
{
	char hex[2 * TD_HASH_LEN + 1];
	struct ckey k;
	uint8_t *v;
	size_t n;
	int rc;

	ckey_record_loc(&k, id);
	rc = store_get(c->st, k.b, k.n, &v, &n);
	if (rc == 0) {
		rc = ckey_loc_decode(v, n, height, NULL) ? 0 : TD_ECORRUPT;
		free(v);
	}
	if (rc == TD_EIO || rc == TD_ECORRUPT) {
		td_hex(hex, id, TD_HASH_LEN);
		chain_read_error(rc, "record %s: its place (\"R\")", hex);
	}
	return rc == 0;
}

int chain_tstate_load(const struct chain *c, const char *ocid, struct ckey_tstate *t)
{
	struct ckey k;
	uint8_t *v;
	size_t n;
	int rc;

	ckey_tender(&k, ocid);
	rc = store_get(c->st, k.b, k.n, &v, &n);
	if (rc == 0) {
		rc = ckey_tstate_decode(t, v, n) ? 0 : TD_ECORRUPT;
		free(v);
	}
	return chain_read_error(rc, "tender %s: its state (\"T\")", ocid);
}

int chain_record_load(const struct chain *c, uint64_t height, uint32_t index, struct td_record **out)
{
	char e[TD_ERRMSG_MAX];
	uint8_t *p;
	size_t n;
	int rc;

	*out = NULL;
	rc = chain_record_get(c, height, index, &p, &n);
	if (rc == TD_ENOTFOUND)
		rc = TD_ECORRUPT;
	if (rc == 0) {
		if (td_record_decode_stored(out, p, n, c->g->hash, e, sizeof(e)) != 0) {
			td_record_free(*out);
			*out = NULL;
			rc = TD_ECORRUPT;
		}
		free(p);
	}
	return chain_read_error(rc, "block %llu: record %u (\"D\")", (unsigned long long)height, index);
}

/* Decodes the committed record with this id into *out, its height in *height: 0, TD_EIO or TD_ECORRUPT. */
static int record_at(const struct chain *c, const uint8_t id[static TD_HASH_LEN], struct td_record **out,
		     uint64_t *height)
{
	char hex[2 * TD_HASH_LEN + 1];
	struct td_record *rec;
	uint8_t *loc;
	size_t ln;
	uint32_t index;
	struct ckey k;
	int rc;
	bool ok;

	*out = NULL;
	td_hex(hex, id, TD_HASH_LEN);
	ckey_record_loc(&k, id);
	rc = store_get(c->st, k.b, k.n, &loc, &ln);
	if (rc != 0)
		return chain_read_error(rc == TD_ENOTFOUND ? TD_ECORRUPT : rc, "record %s: its place (\"R\")", hex);
	ok = ckey_loc_decode(loc, ln, height, &index);
	free(loc);
	if (!ok)
		return chain_read_error(TD_ECORRUPT, "record %s: its place (\"R\")", hex);
	rc = chain_record_load(c, *height, index, &rec);
	if (rc != 0)
		return rc;
	if (memcmp(rec->id, id, TD_HASH_LEN) != 0) {
		td_record_free(rec);
		return chain_read_error(TD_ECORRUPT, "record %s: block %llu holds another record at index %u", hex,
					(unsigned long long)*height, index);
	}
	*out = rec;
	return 0;
}

int chain_compiled_load(const struct chain *c, const char *ocid, const struct ckey_tstate *st, json_t **out)
{
	struct td_record *rec;
	int rc;

	*out = NULL;
	if (st->n_releases > 1)
		return chain_tender_releases(c, ocid, st->n_releases, false, NULL, out);
	rc = chain_record_load(c, st->first_height, st->first_index, &rec);
	if (rc != 0)
		return rc;
	if (strcmp(rec->ocid, ocid) != 0) {
		td_record_free(rec);
		return chain_read_error(TD_ECORRUPT, "tender %s: its first release (block %llu, record %u) is of %s",
					ocid, (unsigned long long)st->first_height, st->first_index, rec->ocid);
	}
	*out = json_object();
	td_release_merge(*out, rec->release);
	td_record_free(rec);
	return 0;
}

int chain_tender_releases(const struct chain *c, const char *ocid, uint32_t n, bool entries, json_t **out,
			  json_t **compiled)
{
	struct store_iter *it;
	struct ckey k;
	const uint8_t *key, *val;
	size_t klen, vlen;
	json_t *rels = out ? json_array() : NULL, *merged = compiled ? json_object() : NULL;
	uint32_t got = 0;
	int rc = 0;

	if (out)
		*out = NULL;
	if (compiled)
		*compiled = NULL;
	ckey_releases(&k, ocid);
	it = store_iter_new(c->st, k.b, k.n, false);
	while (store_iter_next(it, &key, &klen, &val, &vlen)) {
		struct td_record *rec;
		uint64_t height;
		if (vlen != TD_HASH_LEN) {
			rc = chain_read_error(TD_ECORRUPT, "tender %s: release %u (\"E\")", ocid, got);
			goto fail;
		}
		rc = record_at(c, val, &rec, &height);
		if (rc != 0)
			goto fail;
		if (rels)
			json_array_append_new(rels,
					      entries ? chain_entry_json(c, rec, height) : json_incref(rec->release));
		if (merged)
			td_release_merge(merged, rec->release);
		td_record_free(rec);
		got++;
	}
	rc = store_iter_error(it);
	if (rc != 0) {
		chain_read_error(rc, "tender %s: its releases (\"E\")", ocid);
		goto fail;
	}
	if (got != n) {
		rc = chain_read_error(TD_ECORRUPT, "tender %s: %u releases (\"E\"), its state says %u", ocid, got, n);
		goto fail;
	}
	store_iter_free(it);
	if (out)
		*out = rels;
	if (compiled)
		*compiled = merged;
	return 0;
fail:
	store_iter_free(it);
	json_decref(rels);
	json_decref(merged);
	return rc;
}

/* ---- tenders ------------------------------------------------------------------ */

int chain_tender_json(const struct chain *c, const char *ocid, json_t **out)
{
	struct ckey_tstate st;
	json_t *compiled, *rels;
	int rc;

	*out = NULL;
	if (!ocid || strlen(ocid) > TD_OCID_MAX)
		return TD_ENOTFOUND;
	rc = chain_tstate_load(c, ocid, &st);
	if (rc != 0)
		return rc;
	rc = chain_tender_releases(c, ocid, st.n_releases, true, &rels, &compiled);
	if (rc != 0)
		return rc;
	*out = json_object();
	json_object_set_new(*out, "ocid", json_string(ocid));
	json_object_set_new(*out, "compiled", compiled);
	json_object_set_new(*out, "releases", rels);
	return 0;
}

int chain_last_release_id(const struct chain *c, const char *ocid, char out[static TD_ID_MAX + 1])
{
	struct ckey_tstate st;
	int rc;

	if (!ocid || strlen(ocid) > TD_OCID_MAX)
		return TD_ENOTFOUND;
	rc = chain_tstate_load(c, ocid, &st);
	if (rc != 0)
		return rc;
	snprintf(out, TD_ID_MAX + 1, "%s", st.last_release);
	return 0;
}

/* ---- listings ------------------------------------------------------------------ */

/*
 * The date key of a since/until filter: a date-time as ckey_date, or a bare
 * date YYYY-MM-DD taken as its first (end false) or last (end true)
 * millisecond in UTC. False if s is neither.
 */
static bool filter_date(const char *s, bool end, uint64_t *out)
{
	char buf[32];
	size_t n = strlen(s);

	if (n == 10) {
		snprintf(buf, sizeof(buf), "%.10sT%s", s, end ? "23:59:59.999Z" : "00:00:00Z");
		return ckey_date(buf, strlen(buf), out);
	}
	return ckey_date(s, n, out);
}

/* A filter ready for a walk over one list index. */
struct lquery {
	const void *eq[CKEY_LIX_COUNT]; /* equality value per index, NULL where not filtered */
	int n_eq;
	bool has_since, has_until;
	uint64_t since, until; /* date keys, inclusive */
	bool none;             /* no tender can match */
};

static bool lquery_init(struct lquery *q, const struct chain_filter *f)
{
	memset(q, 0, sizeof(*q));
	if (!f)
		return true;
	q->eq[CKEY_LIX_AGENCY] = f->agency;
	q->eq[CKEY_LIX_STATUS] = f->status;
	q->eq[CKEY_LIX_CATEGORY] = f->category;
	q->eq[CKEY_LIX_METHOD] = f->method;
	for (int i = 0; i < CKEY_LIX_COUNT; i++) {
		if (!q->eq[i])
			continue;
		q->n_eq++;
		/* a value "T" cannot hold matches no tender (and would not fit a key) */
		if (i != CKEY_LIX_AGENCY && (strlen(q->eq[i]) > CKEY_FIELD_MAX || *(const char *)q->eq[i] == '\0'))
			q->none = true;
	}
	if (f->since) {
		if (!filter_date(f->since, false, &q->since))
			return false;
		q->has_since = true;
	}
	if (f->until) {
		if (!filter_date(f->until, true, &q->until))
			return false;
		q->has_until = true;
	}
	if (q->has_since && q->has_until && q->since > q->until)
		q->none = true;
	return true;
}

/* True if tender t passes every part of q. */
static bool lquery_match(const struct lquery *q, const struct ckey_tstate *t)
{
	for (int i = 0; i < CKEY_LIX_COUNT; i++) {
		const enum ckey_lix x = (enum ckey_lix)i;
		if (!q->eq[i])
			continue;
		if (x == CKEY_LIX_AGENCY ? memcmp(t->owner, q->eq[i], TD_PUBKEY_LEN) != 0 :
					   strcmp(ckey_lix_value(x, t), q->eq[i]) != 0)
			return false;
	}
	return !(q->has_since && t->date < q->since) && !(q->has_until && t->date > q->until);
}

/* The "N" count of value v in index x into *n (0 if none): 0, TD_EIO or TD_ECORRUPT. */
static int lix_count(const struct chain *c, enum ckey_lix x, const void *v, uint64_t *n)
{
	char hex[2 * CKEY_MAX + 1];
	struct ckey k;
	uint8_t *val;
	size_t vl;
	int rc;

	*n = 0;
	ckey_lix_count_key(&k, x, v);
	rc = store_get(c->st, k.b, k.n, &val, &vl);
	if (rc == TD_ENOTFOUND)
		return 0;
	if (rc == 0) {
		rc = vl == 8 ? 0 : TD_ECORRUPT;
		if (rc == 0)
			*n = ckey_get_u64(val);
		free(val);
	}
	return chain_read_error(rc, "list count %s (\"N\")", key_hex(k.b, k.n, hex));
}

/*
 * The ocid of the tender whose first release is at hi (height u64, index
 * u32), from its every-tender list entry: 0, TD_EIO or TD_ECORRUPT.
 */
static int list_ocid(const struct chain *c, const uint8_t hi[static 8 + 4], char ocid[static TD_OCID_MAX + 1])
{
	char hex[2 * CKEY_MAX + 1];
	struct ckey k;
	uint8_t *v;
	size_t vl;
	int rc;

	ckey_lix_prefix(&k, CKEY_LIX_ALL, NULL);
	ckey_bytes(&k, hi, 8 + 4);
	rc = store_get(c->st, k.b, k.n, &v, &vl);
	if (rc == TD_ENOTFOUND)
		rc = TD_ECORRUPT;
	if (rc == 0) {
		if (vl == 0 || vl > TD_OCID_MAX || memchr(v, 0, vl))
			rc = TD_ECORRUPT;
		else {
			memcpy(ocid, v, vl);
			ocid[vl] = '\0';
		}
		free(v);
	}
	return chain_read_error(rc, "list index entry %s (\"L\")", key_hex(k.b, k.n, hex));
}

/*
 * The index a query walks and its prefix in *pre: the one a cursor (ck, cl
 * bytes; NULL for none) names if it belongs to the query, else the smallest
 * equality index, the date index for a date range alone, or all tenders.
 * 0; TD_EINVAL if the cursor belongs to none of the query's indexes; TD_EIO
 * or TD_ECORRUPT reading a count.
 */
static int lquery_index(const struct chain *c, const struct lquery *q, const uint8_t *ck, size_t cl, enum ckey_lix *out,
			struct ckey *pre)
{
	uint64_t best = UINT64_MAX;
	bool found = false;

	for (int i = 0; i < CKEY_LIX_COUNT; i++) {
		const enum ckey_lix x = (enum ckey_lix)i;
		struct ckey k;
		uint64_t n;
		int rc;
		if (!q->eq[i])
			continue;
		ckey_lix_prefix(&k, x, q->eq[i]);
		if (ck) {
			if (cl == k.n + ckey_lix_tail(x) && memcmp(ck, k.b, k.n) == 0) {
				*out = x;
				*pre = k;
				return 0;
			}
			continue;
		}
		rc = lix_count(c, x, q->eq[i], &n);
		if (rc != 0)
			return rc;
		if (!found || n < best) {
			best = n;
			*out = x;
			*pre = k;
			found = true;
		}
	}
	if (q->n_eq > 0)
		return found ? 0 : TD_EINVAL;
	*out = q->has_since || q->has_until ? CKEY_LIX_DATE : CKEY_LIX_ALL;
	ckey_lix_prefix(pre, *out, NULL);
	return !ck || (cl == pre->n + ckey_lix_tail(*out) && memcmp(ck, pre->b, pre->n) == 0) ? 0 : TD_EINVAL;
}

int chain_list_json(const struct chain *c, const struct chain_filter *f, uint32_t limit, const char *cursor,
		    json_t **out)
{
	uint8_t ck[CKEY_MAX], last[CKEY_MAX];
	char hex[2 * CKEY_MAX + 1];
	size_t cl = 0, lastlen = 0;
	struct store_iter *it = NULL;
	struct lquery q;
	struct ckey pre, sk = { .n = 0 };
	enum ckey_lix x = CKEY_LIX_ALL;
	const uint8_t *key, *val;
	size_t klen, vlen;
	json_t *res, *list;
	uint32_t got = 0, examined = 0;
	bool more = false, check;
	int rc;

	*out = NULL;
	if (limit < 1 || limit > LIST_LIMIT_MAX || !lquery_init(&q, f))
		return TD_EINVAL;
	if (cursor) {
		size_t hl = strlen(cursor);
		if (hl == 0 || hl % 2 != 0 || hl / 2 > sizeof(ck) || !td_unhex(ck, hl / 2, cursor, hl))
			return TD_EINVAL;
		cl = hl / 2;
	}
	if (!q.none) {
		rc = lquery_index(c, &q, cursor ? ck : NULL, cl, &x, &pre);
		if (rc != 0)
			return rc;
	}
	res = json_object();
	list = json_array();
	json_object_set_new(res, "tenders", list);
	if (q.none)
		goto done;
	/* a candidate is matched against its "T" state unless the index alone answers the query */
	check = q.n_eq > 1 || (q.n_eq == 1 && (q.has_since || q.has_until));

	it = store_iter_new(c->st, pre.b, pre.n, true);
	if (cursor) {
		sk.n = cl;
		memcpy(sk.b, ck, cl);
	}
	if (x == CKEY_LIX_DATE && q.has_until) {
		/* start at the newest key dated until, or at the cursor if older */
		struct ckey k = pre;
		uint8_t ff[8 + 4];
		memset(ff, 0xff, sizeof(ff));
		ckey_u64(&k, q.until);
		ckey_bytes(&k, ff, sizeof(ff));
		if (!cursor || memcmp(k.b, ck, cl) < 0)
			sk = k;
	}
	if (sk.n)
		store_iter_seek(it, sk.b, sk.n);
	if (cursor) {
		/* the cursor is the last key already examined: skip it if still there */
		if (store_iter_next(it, &key, &klen, &val, &vlen) && !(klen == cl && memcmp(key, ck, cl) == 0))
			store_iter_seek(it, sk.b, sk.n);
	}
	while (store_iter_next(it, &key, &klen, &val, &vlen)) {
		char ocid[TD_OCID_MAX + 1];
		struct ckey_tstate st;
		json_t *compiled;
		if (got == limit || examined == LIST_SCAN_MAX) {
			more = true;
			break;
		}
		if (klen != pre.n + ckey_lix_tail(x) || (vlen == 0 && x == CKEY_LIX_ALL) || vlen > TD_OCID_MAX ||
		    memchr(val, 0, vlen)) {
			rc = chain_read_error(TD_ECORRUPT, "list index entry %s (\"L\")", key_hex(key, klen, hex));
			goto fail;
		}
		if (x == CKEY_LIX_DATE && q.has_since && ckey_get_u64(key + pre.n) < q.since)
			break; /* descending: every later key is older still */
		examined++;
		memcpy(last, key, klen);
		lastlen = klen;
		if (vlen > 0) {
			memcpy(ocid, val, vlen);
			ocid[vlen] = '\0';
		} else if ((rc = list_ocid(c, key + klen - (8 + 4), ocid)) != 0) {
			goto fail;
		}
		rc = chain_tstate_load(c, ocid, &st);
		if (rc == TD_ENOTFOUND)
			rc = chain_read_error(TD_ECORRUPT, "tender %s: listed by %s (\"L\") but has no state", ocid,
					      key_hex(key, klen, hex));
		if (rc != 0)
			goto fail;
		if (check && !lquery_match(&q, &st))
			continue;
		if ((rc = chain_compiled_load(c, ocid, &st, &compiled)) != 0)
			goto fail;
		json_array_append_new(list, chain_summary_json(c, &st, compiled));
		json_decref(compiled);
		got++;
	}
	rc = store_iter_error(it);
	if (rc != 0) {
		chain_read_error(rc, "list index %s (\"L\")", key_hex(pre.b, pre.n, hex));
		goto fail;
	}
done:
	if (more) {
		char next[2 * CKEY_MAX + 1];
		td_hex(next, last, lastlen);
		json_object_set_new(res, "next_cursor", json_string(next));
	} else {
		json_object_set_new(res, "next_cursor", json_null());
	}
	store_iter_free(it);
	*out = res;
	return 0;
fail:
	store_iter_free(it);
	json_decref(res);
	return rc;
}

/* ---- blocks ---------------------------------------------------------------------- */

int chain_block_meta_load(const struct chain *c, uint64_t height, struct ckey_block_meta *m, uint8_t **val)
{
	struct ckey k;
	size_t len;
	int rc;

	ckey_block(&k, height);
	rc = store_get(c->st, k.b, k.n, val, &len);
	if (rc == TD_ENOTFOUND)
		rc = TD_ECORRUPT;
	if (rc == 0 && !ckey_block_meta_decode(m, *val, len, height))
		rc = TD_ECORRUPT;
	if (rc != 0) {
		free(*val);
		*val = NULL;
	}
	return chain_read_error(rc, "block %llu: its header (\"B\")", (unsigned long long)height);
}

void chain_ids_root(uint8_t out[static TD_HASH_LEN], const uint8_t *ids, uint32_t n)
{
	td_merkle_root(out, (const uint8_t(*)[TD_HASH_LEN])ids, n);
}

int chain_block_head_check(const struct chain *c, uint64_t height, const struct ckey_block_meta *m, const uint8_t *cb,
			   size_t cl, struct td_commit *cm, char *err, size_t errlen)
{
	uint8_t root[TD_HASH_LEN];
	char e[TD_ERRMSG_MAX];

	memset(cm, 0, sizeof(*cm));
	chain_ids_root(root, m->ids, m->h.n_records);
	if (memcmp(root, m->h.records_root, TD_HASH_LEN) != 0) {
		snprintf(err, errlen, "its record ids (\"B\") do not match the records root of its header");
		return TD_ECORRUPT;
	}
	{
		uint8_t evids[TD_BLOCK_EVIDENCE_MAX][TD_HASH_LEN];
		const uint8_t *q = m->ev; /* ckey_block_meta_decode checked the lengths */
		for (uint32_t i = 0; i < m->h.n_evidence; i++) {
			size_t el = (size_t)q[0] << 8 | q[1];
			td_hash(evids[i], q + 2, el);
			q += 2 + el;
		}
		td_merkle_root(root, (const uint8_t(*)[TD_HASH_LEN])evids, m->h.n_evidence);
		if (memcmp(root, m->h.evidence_root, TD_HASH_LEN) != 0) {
			snprintf(err, errlen, "its evidence (\"B\") does not match the evidence root of its header");
			return TD_ECORRUPT;
		}
	}
	if (td_commit_decode(cm, cb, cl, e, sizeof(e)) != 0) {
		snprintf(err, errlen, "its commit (\"C\") does not decode (%s)", e);
		return TD_ECORRUPT;
	}
	if (cm->height != height || memcmp(cm->block_hash, m->hash, TD_HASH_LEN) != 0) {
		snprintf(err, errlen, "its commit (\"C\") is not for the hash of its header (\"B\")");
		return TD_ECORRUPT;
	}
	const struct registry_set *vs = registry_set(c->reg, height);
	if (!vs || td_commit_verify_set(cm, c->g->hash, vs->v, vs->n, height, m->hash, e, sizeof(e)) != 0) {
		snprintf(err, errlen, "its commit (\"C\") does not verify against the validators: %s", e);
		return TD_ECORRUPT;
	}
	if (height == c->height && memcmp(m->hash, c->last_hash, TD_HASH_LEN) != 0) {
		snprintf(err, errlen, "its hash is not the tip's (\"M\")");
		return TD_ECORRUPT;
	}
	return 0;
}

int chain_block_head_load(const struct chain *c, uint64_t height, struct ckey_block_meta *m, uint8_t **mval,
			  struct td_commit *cm)
{
	char e[TD_ERRMSG_MAX];
	uint8_t *cb = NULL;
	size_t cl = 0;
	struct ckey k;
	int rc;

	memset(cm, 0, sizeof(*cm));
	rc = chain_block_meta_load(c, height, m, mval);
	if (rc != 0)
		return rc;
	ckey_commit(&k, height);
	rc = store_get(c->st, k.b, k.n, &cb, &cl);
	if (rc != 0) {
		free(*mval);
		*mval = NULL;
		return chain_read_error(rc == TD_ENOTFOUND ? TD_ECORRUPT : rc, "block %llu: its commit (\"C\")",
					(unsigned long long)height);
	}
	rc = chain_block_head_check(c, height, m, cb, cl, cm, e, sizeof(e));
	free(cb);
	if (rc != 0) {
		td_commit_clear(cm);
		memset(cm, 0, sizeof(*cm));
		free(*mval);
		*mval = NULL;
		return chain_read_error(rc, "block %llu: %s", (unsigned long long)height, e);
	}
	return 0;
}

int chain_block_bytes(const struct chain *c, uint64_t height, uint8_t **out, size_t *len)
{
	struct ckey_block_meta m;
	struct td_commit cm;
	uint8_t *mval;
	struct store_iter *it;
	struct td_buf b;
	const uint8_t *key, *val;
	size_t klen, vlen;
	uint32_t n = 0;
	struct ckey k;
	int rc;

	*out = NULL;
	rc = chain_block_head_load(c, height, &m, &mval, &cm);
	if (rc != 0)
		return rc;
	td_commit_clear(&cm);
	/* [header, [record bytes...], [evidence bytes...]] */
	td_buf_init(&b);
	td_enc_array(&b, 3);
	td_enc_raw(&b, m.hdr, m.hlen);
	td_enc_array(&b, m.h.n_records);
	ckey_records(&k, height);
	it = store_iter_new(c->st, k.b, k.n, false);
	while (n < m.h.n_records && store_iter_next(it, &key, &klen, &val, &vlen)) {
		uint8_t id[TD_HASH_LEN];
		if (klen != k.n + 4 || ckey_get_u32(key + k.n) != n) {
			rc = TD_ECORRUPT;
			break;
		}
		uint8_t *rb;
		size_t rbn;
		if ((rc = chain_record_bytes(c, val, vlen, &rb, &rbn)) != 0)
			break;
		td_hash(id, rb, rbn);
		if (memcmp(id, m.ids + (size_t)n * TD_HASH_LEN, TD_HASH_LEN) != 0) {
			free(rb);
			rc = TD_ECORRUPT;
			break;
		}
		td_enc_bin(&b, rb, rbn);
		free(rb);
		n++;
	}
	if (rc == 0 && store_iter_error(it) != 0)
		rc = store_iter_error(it);
	else if (rc == 0 && n != m.h.n_records)
		rc = TD_ECORRUPT;
	store_iter_free(it);
	if (rc == 0) {
		const uint8_t *q = m.ev; /* ckey_block_meta_decode checked the lengths */
		td_enc_array(&b, m.h.n_evidence);
		for (uint32_t i = 0; i < m.h.n_evidence; i++) {
			size_t el = (size_t)q[0] << 8 | q[1];
			td_enc_bin(&b, q + 2, el);
			q += 2 + el;
		}
	}
	free(mval);
	if (rc == 0)
		*out = td_buf_take(&b, len);
	td_buf_free(&b);
	return chain_read_error(rc, "block %llu: record %u of %u (\"D\")", (unsigned long long)height, n,
				m.h.n_records);
}

int chain_load_block(const struct chain *c, uint64_t height, struct td_block **out)
{
	char e[TD_ERRMSG_MAX];
	uint8_t *buf;
	size_t len;
	int rc;

	*out = NULL;
	rc = chain_block_bytes(c, height, &buf, &len);
	if (rc != 0)
		return rc;
	rc = td_block_decode(out, buf, len, c->g->hash, true, e, sizeof(e));
	free(buf);
	if (rc != 0) {
		*out = NULL;
		return chain_read_error(TD_ECORRUPT, "block %llu: does not decode (%s)", (unsigned long long)height, e);
	}
	return 0;
}

int chain_block_raw(const struct chain *c, uint64_t height, uint8_t **blk, size_t *blen, uint8_t **commit, size_t *clen)
{
	struct ckey k;
	int rc;

	*blk = NULL;
	*commit = NULL;
	if (height == 0 || height > c->height)
		return TD_ENOTFOUND;
	rc = chain_block_bytes(c, height, blk, blen);
	if (rc != 0)
		return rc;
	ckey_commit(&k, height);
	rc = store_get(c->st, k.b, k.n, commit, clen);
	if (rc != 0) {
		free(*blk);
		*blk = NULL;
		*commit = NULL;
		return chain_read_error(rc == TD_ENOTFOUND ? TD_ECORRUPT : rc, "block %llu: its commit (\"C\")",
					(unsigned long long)height);
	}
	return 0;
}
