/*
 * chaincheck: chain_check_all, the whole-store verification behind
 * `tenderd check` (schema in chainkeys.h).
 *
 * Three passes, each stopping at the first damage:
 *   1. blocks 1..tip in order: the header ("B") decodes for its height, its
 *      record ids match its records root, its previous hash is the hash of
 *      the block before (zeros for block 1), its time does not go back, its
 *      proposer is a validator, its commit ("C") is for its hash and
 *      verifies against the genesis validators, the tip's hash ("M") is the
 *      last block's; each record ("D") hashes to its id in "B", decodes
 *      with its signature checked, and its place ("R") and release id ("U")
 *      point back at it; the record count is the tip's;
 *   2. record places ("R") and release ids ("U"): each points at a
 *      committed record with that id;
 *   3. tenders ("T"): each state decodes, its releases ("E") are n_releases
 *      committed records of that ocid, and it has exactly the list keys
 *      ("L") its state implies; the "L" entries are no more than
 *      those, and each "N" count is the number of "L" keys it counts.
 * Blocks are read in height order, so damage in a block is reported at the
 * lowest damaged height. Index damage names the height of the record or
 * tender it belongs to where it has one.
 *
 * Memory stays bounded: one block and one tender at a time, whatever the
 * size of the ledger. Nothing here writes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "chain_int.h"

#define CHECK_PROGRESS_EVERY 1000 /* blocks between progress calls */

struct check {
	const struct chain *c;
	uint64_t bad; /* height of the damage found, 0 if none or of no block */
	char *err;
	size_t errlen;
	void (*progress)(void *ctx, uint64_t height);
	void *ctx;
};

/* Notes damage at height (0: of no one block) with a message; returns rc. */
static int damaged(struct check *k, int rc, uint64_t height, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int damaged(struct check *k, int rc, uint64_t height, const char *fmt, ...)
{
	char what[TD_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	k->bad = height;
	if (k->err && k->errlen) {
		if (height)
			snprintf(k->err, k->errlen, "block %llu: %s", (unsigned long long)height, what);
		else
			snprintf(k->err, k->errlen, "%s", what);
	}
	return rc;
}

/* store_get as TD_ECORRUPT when the key is missing. */
static int get(const struct chain *c, const struct ckey *key, uint8_t **v, size_t *n)
{
	int rc = store_get(c->st, key->b, key->n, v, n);

	return rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
}

/* True if key holds exactly want[0..wn), or, with empty_ok, an empty value. */
static bool holds(const struct chain *c, const struct ckey *key, const void *want, size_t wn, bool empty_ok)
{
	uint8_t *v;
	size_t n;
	bool ok;

	if (store_get(c->st, key->b, key->n, &v, &n) != 0)
		return false;
	ok = (n == wn && memcmp(v, want, wn) == 0) || (empty_ok && n == 0);
	free(v);
	return ok;
}

/* Checks the records ("D") of block height against the ids of its header m. */
static int check_records(struct check *k, uint64_t height, const struct ckey_block_meta *m)
{
	const struct chain *c = k->c;
	char e[TD_ERRMSG_MAX];
	struct store_iter *it;
	const uint8_t *key, *val;
	size_t klen, vlen;
	uint32_t n = 0;
	struct ckey pre, q;
	uint8_t loc[CKEY_LOC_LEN];
	int rc = 0;

	ckey_records(&pre, height);
	it = store_iter_new(c->st, pre.b, pre.n, false);
	/*
	 * Exactly the header's count is read: a step past the last record would
	 * read the table block holding the next block's records, and damage
	 * there belongs to that block.
	 */
	while (n < m->h.n_records && store_iter_next(it, &key, &klen, &val, &vlen)) {
		struct td_record *rec;
		uint8_t id[TD_HASH_LEN];
		if (klen != pre.n + 4 || ckey_get_u32(key + pre.n) != n) {
			rc = damaged(k, TD_ECORRUPT, height, "record %u (\"D\") is missing", n);
			goto out;
		}
		uint8_t *rb;
		size_t rbn;
		if ((rc = chain_record_bytes(c, val, vlen, &rb, &rbn)) != 0) {
			rc = damaged(k, rc, height, "record %u (\"D\"): its place in the records file: %s", n,
				     rc == TD_ECORRUPT ? "malformed or past the file's end" : td_strerror(rc));
			goto out;
		}
		td_hash(id, rb, rbn);
		if (memcmp(id, m->ids + (size_t)n * TD_HASH_LEN, TD_HASH_LEN) != 0) {
			free(rb);
			rc = damaged(k, TD_ECORRUPT, height, "record %u (\"D\"): its bytes do not hash to its id", n);
			goto out;
		}
		rc = td_record_decode(&rec, rb, rbn, c->g->hash, e, sizeof(e));
		free(rb);
		if (rc != 0) {
			rc = damaged(k, TD_ECORRUPT, height, "record %u (\"D\"): %s", n, e);
			goto out;
		}
		ckey_record_loc(&q, id);
		ckey_loc_encode(loc, height, n);
		if (!holds(c, &q, loc, sizeof(loc), false))
			rc = damaged(k, TD_ECORRUPT, height, "record %u: its place (\"R\") is missing or wrong", n);
		ckey_release_id(&q, rec->ocid, rec->release_id);
		if (rc == 0 && !holds(c, &q, id, TD_HASH_LEN, false))
			rc = damaged(k, TD_ECORRUPT, height, "record %u: its release id (\"U\") is missing or wrong",
				     n);
		td_record_free(rec);
		if (rc != 0)
			goto out;
		n++;
	}
	rc = store_iter_error(it);
	if (rc != 0) {
		rc = damaged(k, rc, height, "record %u (\"D\"): %s", n, td_strerror(rc));
		goto out;
	}
	if (n != m->h.n_records)
		rc = damaged(k, TD_ECORRUPT, height, "%u records (\"D\"), its header says %u", n, m->h.n_records);
out:
	store_iter_free(it);
	return rc;
}

/* Pass 1: every block in height order. */
static int check_blocks(struct check *k)
{
	const struct chain *c = k->c;
	uint8_t prev[TD_HASH_LEN] = { 0 };
	uint64_t prev_time = c->g->time_ms, records = 0;
	char e[TD_ERRMSG_MAX];

	for (uint64_t h = 1; h <= c->height; h++) {
		struct ckey_block_meta m;
		struct td_commit cm;
		uint8_t *mv = NULL, *cv = NULL;
		size_t mn, cn;
		struct ckey key;
		int rc;

		ckey_block(&key, h);
		rc = get(c, &key, &mv, &mn);
		if (rc != 0)
			return damaged(k, rc, h, "its header (\"B\"): %s", td_strerror(rc));
		if (!ckey_block_meta_decode(&m, mv, mn, h)) {
			free(mv);
			return damaged(k, TD_ECORRUPT, h, "its header (\"B\") does not decode");
		}
		ckey_commit(&key, h);
		rc = get(c, &key, &cv, &cn);
		if (rc != 0) {
			free(mv);
			return damaged(k, rc, h, "its commit (\"C\"): %s", td_strerror(rc));
		}
		rc = chain_block_head_check(c, h, &m, cv, cn, &cm, e, sizeof(e));
		td_commit_clear(&cm);
		free(cv);
		if (rc == 0 && memcmp(m.h.prev_hash, prev, TD_HASH_LEN) != 0)
			rc = damaged(k, TD_ECORRUPT, h, "its previous hash is not the hash of block %llu",
				     (unsigned long long)h - 1);
		else if (rc == 0 && m.h.time_ms < prev_time)
			rc = damaged(k, TD_ECORRUPT, h, "its time goes back before block %llu",
				     (unsigned long long)h - 1);
		else if (rc == 0 && registry_set_find(registry_set(c->reg, h), m.h.proposer) < 0)
			rc = damaged(k, TD_ECORRUPT, h, "its proposer is not a validator");
		else if (rc != 0)
			damaged(k, rc, h, "%s", e);
		if (rc == 0)
			rc = check_records(k, h, &m);
		if (rc != 0) {
			free(mv);
			return rc;
		}
		memcpy(prev, m.hash, TD_HASH_LEN);
		prev_time = m.h.time_ms;
		records += m.h.n_records;
		free(mv);
		if (k->progress && h % CHECK_PROGRESS_EVERY == 0)
			k->progress(k->ctx, h);
	}
	if (records != c->n_records)
		return damaged(k, TD_ECORRUPT, 0, "the tip (\"M\") counts %llu records, the blocks hold %llu",
			       (unsigned long long)c->n_records, (unsigned long long)records);
	return 0;
}

/*
 * The committed record with this id: 0 with its height in *height and, if
 * rec is not NULL, the record (trusted decode) in *rec; TD_ECORRUPT or
 * TD_EIO if its place ("R") or bytes ("D") are missing or wrong.
 */
static int record_of(const struct chain *c, const uint8_t id[static TD_HASH_LEN], uint64_t *height,
		     struct td_record **rec)
{
	char e[TD_ERRMSG_MAX];
	uint8_t *v, got[TD_HASH_LEN];
	size_t n;
	uint32_t index;
	struct ckey key;
	int rc;
	bool ok;

	*height = 0;
	ckey_record_loc(&key, id);
	rc = get(c, &key, &v, &n);
	if (rc != 0)
		return rc;
	ok = ckey_loc_decode(v, n, height, &index);
	free(v);
	if (!ok || *height == 0 || *height > c->height) {
		*height = 0;
		return TD_ECORRUPT;
	}
	rc = chain_record_get(c, *height, index, &v, &n);
	if (rc != 0)
		return rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
	td_hash(got, v, n);
	rc = memcmp(got, id, TD_HASH_LEN) == 0 ? 0 : TD_ECORRUPT;
	if (rc == 0 && rec && td_record_decode_trusted(rec, v, n, c->g->hash, e, sizeof(e)) != 0) {
		td_record_free(*rec);
		*rec = NULL;
		rc = TD_ECORRUPT;
	}
	free(v);
	return rc;
}

/* Pass 2: every "R" and "U" entry points at a committed record with its id. */
static int check_places(struct check *k)
{
	static const uint8_t tags[] = { 'R', 'U' };
	const struct chain *c = k->c;

	for (size_t t = 0; t < sizeof(tags); t++) {
		struct store_iter *it = store_iter_new(c->st, &tags[t], 1, false);
		const uint8_t *key, *val;
		size_t klen, vlen;
		int rc = 0;
		while (rc == 0 && store_iter_next(it, &key, &klen, &val, &vlen)) {
			uint8_t id[TD_HASH_LEN];
			uint64_t h;
			const uint8_t *want = tags[t] == 'R' ? key + 1 : val;
			if ((tags[t] == 'R' ? klen : vlen + 1) != 1 + TD_HASH_LEN) {
				rc = damaged(k, TD_ECORRUPT, 0, "an entry of \"%c\" is malformed", tags[t]);
				break;
			}
			memcpy(id, want, TD_HASH_LEN);
			rc = record_of(c, id, &h, NULL);
			if (rc != 0) {
				char hex[2 * TD_HASH_LEN + 1];
				td_hex(hex, id, TD_HASH_LEN);
				damaged(k, rc, h, "record %s (\"%c\"): no committed record with this id at its place",
					hex, tags[t]);
			}
		}
		if (rc == 0 && store_iter_error(it) != 0)
			rc = damaged(k, store_iter_error(it), 0, "reading \"%c\": %s", tags[t],
				     td_strerror(store_iter_error(it)));
		store_iter_free(it);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/*
 * Checks one tender's state t (of ocid): its releases, the indexed fields
 * against their compiled release, and its list keys.
 */
static int check_tender(struct check *k, const char *ocid, const struct ckey_tstate *t, uint64_t *n_lists,
			uint64_t *n_counted)
{
	const struct chain *c = k->c;
	const uint64_t h = t->first_height;
	struct store_iter *it;
	const uint8_t *key, *val;
	size_t klen, vlen;
	uint32_t n = 0;
	struct ckey q;
	struct ckey_tstate want = *t;
	json_t *compiled;
	int rc = 0;

	if (t->first_height == 0 || t->first_height > c->height || t->last_height > c->height ||
	    t->last_height < t->first_height || t->n_releases == 0)
		return damaged(k, TD_ECORRUPT, t->first_height <= c->height ? t->first_height : 0,
			       "tender %s: its state (\"T\") names blocks the chain does not hold", ocid);
	compiled = json_object();
	ckey_releases(&q, ocid);
	it = store_iter_new(c->st, q.b, q.n, false);
	while (store_iter_next(it, &key, &klen, &val, &vlen)) {
		struct td_record *rec = NULL;
		uint64_t rh;
		if (klen != q.n + 4 || ckey_get_u32(key + q.n) != n || vlen != TD_HASH_LEN) {
			rc = damaged(k, TD_ECORRUPT, h, "tender %s: release %u (\"E\") is malformed", ocid, n);
			break;
		}
		rc = record_of(c, val, &rh, &rec);
		if (rc == 0 && strcmp(rec->ocid, ocid) != 0)
			rc = TD_ECORRUPT;
		if (rc == 0)
			td_release_merge(compiled, rec->release);
		td_record_free(rec);
		if (rc != 0) {
			damaged(k, rc, rh ? rh : h, "tender %s: release %u (\"E\") is not a committed record of it",
				ocid, n);
			break;
		}
		n++;
	}
	if (rc == 0 && store_iter_error(it) != 0)
		rc = damaged(k, store_iter_error(it), h, "tender %s: its releases (\"E\"): %s", ocid,
			     td_strerror(store_iter_error(it)));
	store_iter_free(it);
	chain_tstate_compiled(&want, compiled);
	json_decref(compiled);
	if (rc != 0)
		return rc;
	if (n == t->n_releases &&
	    (strcmp(want.status, t->status) != 0 || strcmp(want.category, t->category) != 0 ||
	     strcmp(want.method, t->method) != 0 || want.date != t->date || (want.flags & ~t->flags) != 0))
		return damaged(k, TD_ECORRUPT, t->last_height,
			       "tender %s: its state (\"T\") disagrees with its compiled releases (status, category, "
			       "method or tender date)",
			       ocid);
	if (n != t->n_releases)
		return damaged(k, TD_ECORRUPT, t->last_height, "tender %s: %u releases (\"E\"), its state says %u",
			       ocid, n, t->n_releases);
	for (int i = 0; i < CKEY_LIX_COUNT; i++) {
		const enum ckey_lix x = (enum ckey_lix)i;
		if (!ckey_lix_has(x, t))
			continue;
		ckey_lix_key(&q, x, t);
		/* the every-tender entry names the ocid; the others nothing (or, from schemas 5 to 7, the ocid) */
		if (!holds(c, &q, ocid, strlen(ocid), x != CKEY_LIX_ALL))
			return damaged(k, TD_ECORRUPT, t->last_height,
				       "tender %s: a list index entry (\"L\") is missing", ocid);
		(*n_lists)++;
		if (ckey_lix_counted(x))
			(*n_counted)++;
	}
	return 0;
}

/* Counts the keys starting with pre[0..n) into *out: 0 or a read error. */
static int count_prefix(const struct chain *c, const uint8_t *pre, size_t n, uint64_t *out)
{
	struct store_iter *it = store_iter_new(c->st, pre, n, false);
	const uint8_t *key;
	size_t klen;
	int rc;

	*out = 0;
	while (store_iter_next(it, &key, &klen, NULL, NULL))
		(*out)++;
	rc = store_iter_error(it);
	store_iter_free(it);
	return rc;
}

/* Pass 3: tenders and the list indexes. */
static int check_tenders(struct check *k)
{
	const struct chain *c = k->c;
	const uint8_t tag_t = 'T', tag_l = 'L', tag_n = 'N';
	uint64_t n_lists = 0, n_counted = 0, got = 0, counted = 0;
	struct store_iter *it = store_iter_new(c->st, &tag_t, 1, false);
	const uint8_t *key, *val;
	size_t klen, vlen;
	int rc = 0;

	while (store_iter_next(it, &key, &klen, &val, &vlen)) {
		char ocid[TD_OCID_MAX + 1];
		struct ckey_tstate t;
		if (klen < 2 || klen - 1 > TD_OCID_MAX || memchr(key + 1, 0, klen - 1)) {
			rc = damaged(k, TD_ECORRUPT, 0, "a tender key (\"T\") is malformed");
			break;
		}
		memcpy(ocid, key + 1, klen - 1);
		ocid[klen - 1] = '\0';
		if (!ckey_tstate_decode(&t, val, vlen)) {
			rc = damaged(k, TD_ECORRUPT, 0, "tender %s: its state (\"T\") does not decode", ocid);
			break;
		}
		rc = check_tender(k, ocid, &t, &n_lists, &n_counted);
		if (rc != 0)
			break;
	}
	if (rc == 0 && store_iter_error(it) != 0)
		rc = damaged(k, store_iter_error(it), 0, "reading tenders (\"T\"): %s",
			     td_strerror(store_iter_error(it)));
	store_iter_free(it);
	if (rc != 0)
		return rc;

	rc = count_prefix(c, &tag_l, 1, &got);
	if (rc != 0)
		return damaged(k, rc, 0, "reading the list indexes (\"L\"): %s", td_strerror(rc));
	if (got != n_lists)
		return damaged(k, TD_ECORRUPT, 0, "%llu list index entries (\"L\"), the tenders imply %llu",
			       (unsigned long long)got, (unsigned long long)n_lists);

	it = store_iter_new(c->st, &tag_n, 1, false);
	while (store_iter_next(it, &key, &klen, &val, &vlen)) {
		uint8_t pre[CKEY_MAX];
		uint64_t n;
		if (vlen != 8 || klen > sizeof(pre)) {
			rc = damaged(k, TD_ECORRUPT, 0, "a list count (\"N\") is malformed");
			break;
		}
		memcpy(pre, key, klen);
		pre[0] = 'L';
		rc = count_prefix(c, pre, klen, &n);
		if (rc == 0 && n != ckey_get_u64(val))
			rc = TD_ECORRUPT;
		if (rc != 0) {
			damaged(k, rc, 0, "a list count (\"N\") is %llu, its index holds %llu",
				(unsigned long long)ckey_get_u64(val), (unsigned long long)n);
			break;
		}
		counted += n;
	}
	if (rc == 0 && store_iter_error(it) != 0)
		rc = damaged(k, store_iter_error(it), 0, "reading the list counts (\"N\"): %s",
			     td_strerror(store_iter_error(it)));
	store_iter_free(it);
	if (rc == 0 && counted != n_counted)
		rc = damaged(k, TD_ECORRUPT, 0, "the list counts (\"N\") cover %llu entries, the tenders imply %llu",
			     (unsigned long long)counted, (unsigned long long)n_counted);
	return rc;
}

int chain_check_all(const struct chain *c, uint64_t *bad_height, char *err, size_t errlen,
		    void (*progress)(void *ctx, uint64_t height), void *ctx)
{
	struct check k = { .c = c, .err = err, .errlen = errlen, .progress = progress, .ctx = ctx };
	int rc = check_blocks(&k);

	if (rc == 0)
		rc = check_places(&k);
	if (rc == 0)
		rc = check_tenders(&k);
	*bad_height = rc == 0 ? 0 : k.bad;
	if (rc == 0 && err && errlen)
		err[0] = '\0';
	return rc;
}
