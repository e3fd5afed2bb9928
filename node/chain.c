/*
 * The chain: opening the store, the lifecycle rules, and checking, staging
 * and applying committed blocks. The store schema is in chainkeys.h, reads
 * in chainquery.c, JSON answers in chainjson.c (see chain_int.h).
 *
 * Invariants: chain_apply() is the only writer after chain_open(); a block
 * and everything derived from it (commit, record, release, tender, summary,
 * list keys and the tip) go into one LevelDB batch written with sync, and the
 * in-memory tip changes only after that write succeeded. So the store always
 * holds blocks 1..height with their commits, and "M" describes exactly them.
 * Whenever a block changes a tender's compiled status, category, method or
 * date, the same batch deletes the old list key, puts the new one and moves
 * the "N" counts (old values from "T", new ones from the compiled release
 * after the block). The tender date is tender.tenderPeriod.startDate of the
 * compiled release if present, else the date of the tender's first release.
 *
 * While checking a block, the records already accepted from the same block
 * live in an overlay (struct chain_overlay, chainoverlay.c): the tenders
 * touched so far (owner and cancelled state for the checks; when applying,
 * the "T" state being staged) and the accepted records
 * for id and (ocid, release id) uniqueness, each behind a hash index (htab.h:
 * SipHash under a random key per chain, so crafted ocids cannot make lookups
 * slow). Lookups go to the overlay first, then to the store. The overlay
 * lives for one call; the chain keeps nothing that grows with the ledger.
 * When applying, a tender's state and list keys go into the batch right
 * after its last record in the block (found by a first pass over the
 * block's ocids). The state's indexed fields follow each release as the
 * OCDS merge would change them (chain_tstate_release): applying compiles
 * no release; readers compile a tender's releases when asked.
 *
 * chain_validate() only checks: the block, then each record's lifecycle
 * rules with the overlay's owner and cancelled state (a record cancels its
 * tender if it is a cancellation or sets tender.status to "cancelled", which
 * is what chain_tstate_compiled makes of the compiled release), without compiling
 * releases or staging a batch. It remembers the hashes of the last
 * CHAIN_MEMO_N blocks it accepted with the tip (height, hash) it checked
 * them against; chain_apply() of such a block at that same tip still checks
 * the block and its commit (check_block) but not its records again, and
 * stages them. Since the store changes only with the tip, a block accepted
 * at a tip would pass the record checks again at that tip.
 *
 * chain_apply() recomputes the block hash from the header, the records root
 * from the records and each record id from its bytes, and verifies the
 * commit; record signatures are taken as checked by whoever built the
 * td_record (td_record_decode, td_block_decode, td_record_sign).
 *
 * Lifecycle rules (check_record, for chain_check_record, chain_validate and
 * chain_apply alike): the ocid has the genesis prefix; a record id, a new
 * tender's ocid and an (ocid, release id) pair are used once; amendments,
 * cancellations and awards need an existing tender, come from the agency
 * that published it and find it not cancelled; and an amendment references
 * the release it amends: each tender.amendments entry with amendsReleaseID
 * names a release of the same ocid that is committed or earlier in the same
 * block, and at least one entry has it. A tender counts as cancelled once a
 * cancellation is committed or its compiled tender.status is "cancelled";
 * no later record may touch it.
 *
 * A store write that fails (a full disk, an I/O error) leaves the tip where
 * it was and marks the chain failed: it writes nothing more, and
 * chain_apply, chain_validate and chain_check_record refuse with TD_EIO and
 * the store's message, so no record is acknowledged that could not be kept.
 *
 * The genesis is borrowed from the caller; the chain owns its store.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "tenderd/block.h"
#include "tenderd/codec.h"
#include "tenderd/evidence.h"
#include "tenderd/governance.h"
#include "tenderd/json.h"
#include "tenderd/merge.h"
#include "tenderd/merkle.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "tenderd/types.h"
#include "chain_int.h"
#include "log.h"

/* ---- small helpers ------------------------------------------------------- */

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Monotonic seconds, for the apply histograms only (nothing decides on them). */
static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The refusal of a chain whose store failed a write: its code, with the store's message in err. */
static int store_failed(const struct chain *c, char *err, size_t errlen)
{
	seterr(err, errlen,
	       "the store failed (%s): this node accepts nothing until it is restarted with the store fixed",
	       c->failure);
	return c->failed;
}

/* Copies a code list value into out (CKEY_FIELD_MAX + 1 bytes); "" if v is not a string or too long. */
static void copy_field(char *out, const json_t *v)
{
	out[0] = '\0';
	if (td_json_is_string(v) && json_string_length(v) <= CKEY_FIELD_MAX)
		snprintf(out, CKEY_FIELD_MAX + 1, "%s", json_string_value(v));
}

/* The tender date of a compiled tenderPeriod (first_date without a usable startDate). */
static uint64_t period_date(const struct ckey_tstate *t, const json_t *period)
{
	const json_t *start = json_object_get(period, "startDate");
	uint64_t d;

	if (!td_json_is_string(start) || !ckey_date(json_string_value(start), json_string_length(start), &d))
		return t->first_date;
	return d;
}

/* Takes the indexed fields of a compiled tender (any value; not an object: none) into t. */
static void tender_fields(struct ckey_tstate *t, const json_t *tender)
{
	copy_field(t->status, json_object_get(tender, "status"));
	copy_field(t->category, json_object_get(tender, "mainProcurementCategory"));
	copy_field(t->method, json_object_get(tender, "procurementMethod"));
	if (strcmp(t->status, "cancelled") == 0)
		t->flags |= CKEY_FLAG_CANCELLED;
	t->date = period_date(t, json_object_get(tender, "tenderPeriod"));
}

void chain_tstate_compiled(struct ckey_tstate *t, const json_t *compiled)
{
	tender_fields(t, json_object_get(compiled, "tender"));
}

/* What merging a release's value v at path (NULL: absent) does to the compiled value there. */
enum merge_fx {
	FX_KEEP,  /* nothing: absent, omitted, or an empty object or array of objects */
	FX_MERGE, /* an object merged member by member into what is there (a new object if none) */
	FX_SET,   /* replaced by v as it is */
	FX_OTHER, /* removed (null), or replaced by an array merged by id */
};

static enum merge_fx merge_fx(const json_t *v, const char *path)
{
	const unsigned fl = td_merge_path_flags(path);
	size_t i;
	const json_t *e;
	bool ids = json_is_array(v);

	if (!v || (fl & TD_MERGE_OMIT))
		return FX_KEEP;
	if (json_is_null(v))
		return FX_OTHER;
	if (fl & TD_MERGE_WHOLE)
		return FX_SET;
	json_array_foreach(v, i, e) {
		if (!json_is_object(e))
			ids = false;
	}
	if (json_is_object(v))
		return json_object_size(v) == 0 ? FX_KEEP : FX_MERGE;
	if (ids)
		return json_array_size(v) == 0 ? FX_KEEP : FX_OTHER;
	return FX_SET;
}

/* A code list field of t after merging v at path. */
static void leaf_fx(char *field, const json_t *v, const char *path)
{
	switch (merge_fx(v, path)) {
	case FX_KEEP: break;
	case FX_SET: copy_field(field, v); break;
	case FX_MERGE:
	case FX_OTHER: field[0] = '\0'; break;
	}
}

void chain_tstate_release(struct ckey_tstate *t, const json_t *release)
{
	const json_t *tender = json_object_get(release, "tender"), *period, *start;

	switch (merge_fx(tender, "tender")) {
	case FX_KEEP: return;
	case FX_SET: /* a whole value: what it holds is all there is */
	case FX_OTHER: tender_fields(t, json_is_object(tender) ? tender : NULL); return;
	case FX_MERGE: break;
	}
	leaf_fx(t->status, json_object_get(tender, "status"), "tender/status");
	leaf_fx(t->category, json_object_get(tender, "mainProcurementCategory"), "tender/mainProcurementCategory");
	leaf_fx(t->method, json_object_get(tender, "procurementMethod"), "tender/procurementMethod");
	if (strcmp(t->status, "cancelled") == 0)
		t->flags |= CKEY_FLAG_CANCELLED;
	period = json_object_get(tender, "tenderPeriod");
	switch (merge_fx(period, "tender/tenderPeriod")) {
	case FX_KEEP: return;
	case FX_SET:
	case FX_OTHER: t->date = period_date(t, json_is_object(period) ? period : NULL); return;
	case FX_MERGE: break;
	}
	start = json_object_get(period, "startDate");
	switch (merge_fx(start, "tender/tenderPeriod/startDate")) {
	case FX_KEEP: return;
	case FX_SET: t->date = period_date(t, period); return;
	case FX_MERGE:
	case FX_OTHER: t->date = t->first_date; return;
	}
}

/* ---- open / close ---------------------------------------------------------- */

/*
 * Puts what ties the store to c->g into b: the chain id and the genesis hash,
 * and with tip an empty tip at the genesis time (for a store that holds no
 * block).
 */
static void batch_identity(const struct chain *c, struct store_batch *b, bool tip)
{
	struct ckey_tipval t = { .height = 0, .time_ms = c->g->time_ms, .n_records = 0, .file_end = 0 };
	uint8_t hash[TD_HASH_LEN], tipv[CKEY_TIP_LEN];
	struct ckey k;

	ckey_chain_id(&k);
	store_batch_put(b, k.b, k.n, c->g->chain_id, strlen(c->g->chain_id));
	td_genesis_hash(hash, c->g);
	ckey_genesis(&k);
	store_batch_put(b, k.b, k.n, hash, sizeof(hash));
	if (tip) {
		ckey_tip_encode(&t, tipv);
		ckey_tip(&k);
		store_batch_put(b, k.b, k.n, tipv, sizeof(tipv));
	}
}

/* Writes batch_identity() without the tip in one synced batch. */
static int put_identity(struct chain *c, char *err, size_t errlen)
{
	struct store_batch *b = store_batch_new();
	batch_identity(c, b, false);
	int rc = store_write(c->st, b, true, err, errlen);
	store_batch_free(b);
	return rc;
}

/* Writes schema, chain id, genesis hash and an empty tip into a new store. */
static int init_store(struct chain *c, const char *path, char *err, size_t errlen)
{
	struct store_iter *it = store_iter_new(c->st, NULL, 0, false);
	const uint8_t *first;
	size_t kn;
	bool empty = !store_iter_next(it, &first, &kn, NULL, NULL);
	int rc = store_iter_error(it);
	struct store_batch *b;
	uint8_t ver[4];
	struct ckey k;

	store_iter_free(it);
	if (rc != 0) {
		seterr(err, errlen, "%s: cannot read the store", path);
		return rc;
	}
	if (!empty) {
		seterr(err, errlen, "%s: not a tenderd store (no schema version)", path);
		return TD_ECORRUPT;
	}
	b = store_batch_new();
	ckey_put_u32(ver, CKEY_SCHEMA_VERSION);
	ckey_schema(&k);
	store_batch_put(b, k.b, k.n, ver, sizeof(ver));
	batch_identity(c, b, true);
	rc = store_write(c->st, b, true, err, errlen);
	store_batch_free(b);
	return rc;
}

/*
 * Checks the store's genesis against c->g (after the tip was read): the same
 * genesis hash goes on; a store from before genesis hashes (chain id only)
 * of the same chain id gets the hash of c->g recorded, logged. Anything else
 * is refused with TD_EINVAL and a message naming both genesis hashes and
 * what to do: a store that holds no block yet can simply be removed.
 */
static int check_genesis(struct chain *c, const char *path, char *err, size_t errlen)
{
	uint8_t want[TD_HASH_LEN], *id = NULL, *have = NULL;
	size_t idn = 0, hn = 0;
	char whex[2 * TD_HASH_LEN + 1], hhex[2 * TD_HASH_LEN + 1] = "";
	struct ckey k;
	int rc;

	td_genesis_hash(want, c->g);
	td_hex(whex, want, TD_HASH_LEN);
	ckey_chain_id(&k);
	rc = store_get(c->st, k.b, k.n, &id, &idn);
	if (rc != 0) {
		seterr(err, errlen, "%s: store has no chain id", path);
		return rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
	}
	ckey_genesis(&k);
	rc = store_get(c->st, k.b, k.n, &have, &hn);
	if (rc != 0 && rc != TD_ENOTFOUND) {
		seterr(err, errlen, "%s: cannot read the store's genesis hash", path);
		goto out;
	}
	bool hashed = rc == 0, same_id = idn == strlen(c->g->chain_id) && memcmp(id, c->g->chain_id, idn) == 0;
	int idlen = (int)(idn > TD_CHAIN_ID_MAX ? TD_CHAIN_ID_MAX : idn);
	if (hashed && hn != TD_HASH_LEN) {
		seterr(err, errlen, "%s: the store's genesis hash is %zu bytes, not %d", path, hn, TD_HASH_LEN);
		rc = TD_ECORRUPT;
		goto out;
	}
	if (hashed)
		td_hex(hhex, have, TD_HASH_LEN);
	else
		snprintf(hhex, sizeof(hhex), "(not recorded)");
	if (hashed && same_id && memcmp(have, want, TD_HASH_LEN) == 0) {
		rc = 0;
		goto out;
	}
	if (!hashed && same_id) {
		if ((rc = put_identity(c, err, errlen)) == 0)
			log_info("%s: a store from before genesis hashes: recorded genesis %s of chain \"%s\" as the "
				 "one it was built on; from now on another genesis is refused",
				 path, whex, c->g->chain_id);
		goto out;
	}
	if (c->height == 0) {
		/* Nothing was committed on the old genesis: the agreed one replaces it (the consortium's ceremony). */
		struct store_batch *b = store_batch_new();
		batch_identity(c, b, true);
		rc = store_write(c->st, b, true, err, errlen);
		store_batch_free(b);
		if (rc == 0) {
			c->adopted = true;
			c->last_time = c->g->time_ms;
			log_info("%s: the store holds no block: it now follows genesis %s of chain \"%s\" (it was made "
				 "for genesis %s of chain \"%.*s\")",
				 path, whex, c->g->chain_id, hhex, idlen, (const char *)id);
		}
		goto out;
	}
	seterr(err, errlen,
	       "%s: the store holds %llu blocks of genesis %s of chain \"%.*s\", but the genesis is now %s of "
	       "chain \"%s\"; a node cannot change its genesis once it holds blocks: put back the genesis "
	       "this store was built on, or move the store away to start over on the new one",
	       path, (unsigned long long)c->height, hhex, idlen, (const char *)id, whex, c->g->chain_id);
	rc = TD_EINVAL;
out:
	free(id);
	free(have);
	return rc;
}

/*
 * Deletes the keys starting with tag, CHAIN_UPGRADE_BATCH at a time, counting
 * them into *n.
 */
static int drop_tag(struct chain *c, uint8_t tag, uint64_t *n, const char *path, char *err, size_t errlen)
{
	struct store_iter *it = store_iter_new(c->st, &tag, 1, false);
	struct store_batch *b = store_batch_new();
	const uint8_t *key;
	size_t klen, pending = 0;
	int rc = 0;

	*n = 0;
	while (store_iter_next(it, &key, &klen, NULL, NULL)) {
		store_batch_delete(b, key, klen);
		(*n)++;
		if (++pending == CHAIN_UPGRADE_BATCH) {
			if ((rc = store_write(c->st, b, false, err, errlen)) != 0)
				goto out;
			store_batch_free(b);
			b = store_batch_new();
			pending = 0;
		}
	}
	if ((rc = store_iter_error(it)) != 0) {
		seterr(err, errlen, "%s: cannot read the store to upgrade it (%s)", path, td_strerror(rc));
		goto out;
	}
	if (pending > 0)
		rc = store_write(c->st, b, false, err, errlen);
out:
	store_iter_free(it);
	store_batch_free(b);
	return rc;
}

/*
 * Makes a schema 5, 6 or 7 store of the current schema: deletes its stored
 * summaries ("Y") and compiled releases ("K"), which a schema 7 store does
 * not hold, then writes the new version, synced (a crash before leaves the
 * old version and the upgrade runs again at the next open). List entries
 * that name their ocid stay: readers take both forms. Logs what it did.
 */
static int upgrade_store(struct chain *c, uint32_t from, const char *path, char *err, size_t errlen)
{
	uint64_t ny, nk;
	struct store_batch *b;
	uint8_t ver[4];
	struct ckey k;
	int rc;

	if ((rc = drop_tag(c, CKEY_OLD_SUMMARY, &ny, path, err, errlen)) != 0 ||
	    (rc = drop_tag(c, CKEY_OLD_COMPILED, &nk, path, err, errlen)) != 0)
		return rc;
	b = store_batch_new();
	ckey_put_u32(ver, CKEY_SCHEMA_VERSION);
	ckey_schema(&k);
	store_batch_put(b, k.b, k.n, ver, sizeof(ver));
	rc = store_write(c->st, b, true, err, errlen);
	store_batch_free(b);
	if (rc == 0 && from < 7)
		log_info("%s: upgraded the store from schema %u to %u: deleted %llu stored tender summaries and %llu "
			 "compiled releases (both are built when read now)",
			 path, from, CKEY_SCHEMA_VERSION, (unsigned long long)ny, (unsigned long long)nk);
	else if (rc == 0)
		log_info("%s: upgraded the store from schema %u to %u (list entries written from now on are smaller; "
			 "the existing ones are read as they are)",
			 path, from, CKEY_SCHEMA_VERSION);
	return rc;
}

/*
 * Checks schema, tip and genesis (check_genesis) of an existing store and
 * reads its tip; upgrades a schema 5, 6 or 7 store once it passed (upgrade_store).
 */
static int read_store(struct chain *c, const char *path, const uint8_t *ver, size_t vlen, char *err, size_t errlen)
{
	uint8_t *v = NULL;
	size_t n;
	int rc;
	struct ckey k;
	struct ckey_tipval t;
	bool ok;
	const uint32_t from = vlen == 4 ? ckey_get_u32(ver) : 0;
	const bool upgrade = vlen == 4 && from >= CKEY_SCHEMA_UPGRADE && from < CKEY_SCHEMA_VERSION;

	if (vlen == 4 && from < CKEY_SCHEMA_UPGRADE) {
		const bool same_format = ckey_get_u32(ver) == 4; /* format 2, records kept under "D" */
		seterr(err, errlen,
		       "%s: the store is of an older %s (store schema %u); this tenderd writes and checks format "
		       "%d (schema %u)%s. Resync: stop the node, move the store (mv %s %s.old), consensus.wal "
		       "and sign_state.json of its home away, and start again on the empty store; it syncs the "
		       "chain from peers that run this version",
		       path, same_format ? "layout" : "ledger format", ckey_get_u32(ver), TD_FORMAT_VERSION,
		       CKEY_SCHEMA_VERSION,
		       same_format ? ", which keeps records in a records file beside the keys" :
				     ", whose records, blocks and signatures differ",
		       path, path);
		return TD_ECORRUPT;
	}
	if (!upgrade && (vlen != 4 || ckey_get_u32(ver) != CKEY_SCHEMA_VERSION)) {
		seterr(err, errlen,
		       "%s: store schema version %u, this tenderd reads version %u (a newer tenderd made it?)", path,
		       vlen == 4 ? ckey_get_u32(ver) : 0, CKEY_SCHEMA_VERSION);
		return TD_ECORRUPT;
	}
	ckey_tip(&k);
	rc = store_get(c->st, k.b, k.n, &v, &n);
	ok = rc == 0 && ckey_tip_decode(&t, v, n);
	free(v);
	if (!ok) {
		seterr(err, errlen, "%s: store has no valid tip", path);
		return rc == 0 || rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
	}
	c->height = t.height;
	memcpy(c->last_hash, t.hash, TD_HASH_LEN);
	c->last_time = t.time_ms;
	c->n_records = t.n_records;
	if (store_file_end(c->st) < t.file_end) {
		seterr(err, errlen, "%s: the records file (%s) holds %llu bytes, the blocks name %llu", path,
		       STORE_RECORDS_FILE, (unsigned long long)store_file_end(c->st), (unsigned long long)t.file_end);
		return TD_ECORRUPT;
	}
	/* bytes of a block a crash kept from the store: it comes again */
	if (store_file_end(c->st) > t.file_end && (rc = store_file_truncate(c->st, t.file_end, err, errlen)) != 0)
		return rc;
	if (c->height > 0) {
		ckey_block(&k, c->height);
		if (!store_has(c->st, k.b, k.n)) {
			seterr(err, errlen, "%s: store tip at height %llu but no such block", path,
			       (unsigned long long)c->height);
			return TD_ECORRUPT;
		}
	}
	rc = check_genesis(c, path, err, errlen);
	if (rc == 0 && upgrade)
		rc = upgrade_store(c, from, path, err, errlen);
	return rc;
}

/* The registry's view of a governance record whose body td_record_decode checked. */
static int gov_record(const struct td_record *rec, struct registry_record *out, char *err, size_t errlen)
{
	struct td_gov g;
	int rc = td_gov_parse(rec->release, rec->kind, &g, err, errlen);

	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->approval = rec->kind == TD_KIND_GOV_APPROVAL;
	memcpy(out->id, rec->id, TD_HASH_LEN);
	memcpy(out->author, rec->agency, TD_PUBKEY_LEN);
	memcpy(out->proposal, g.proposal, TD_HASH_LEN);
	out->change.action = (enum registry_action)g.action;
	out->change.role = g.role;
	memcpy(out->change.name, g.name, sizeof(out->change.name));
	memcpy(out->change.key, g.pub_key, TD_PUBKEY_LEN);
	memcpy(out->change.new_key, g.new_pub_key, TD_PUBKEY_LEN);
	return 0;
}

/*
 * Builds the registry at the tip: genesis, then the governance records of
 * every block that holds some ("V" keys), in height order.
 */
static int load_registry(struct chain *c, const char *path, char *err, size_t errlen)
{
	struct store_iter *it;
	const uint8_t *key, *val;
	size_t kn, vn;
	struct ckey k;
	int rc = 0;

	c->reg = registry_new(c->g);
	ckey_gov(&k, 0);
	it = store_iter_new(c->st, k.b, 1, false);
	while (rc == 0 && store_iter_next(it, &key, &kn, &val, &vn)) {
		uint64_t h = kn == 9 ? ckey_get_u64(key + 1) : 0;
		uint32_t n = (uint32_t)(vn / 4);
		struct registry_record *g = td_xcalloc(n ? n : 1, sizeof(*g));
		char e[TD_ERRMSG_MAX] = "";
		if (h == 0 || h > c->height || vn % 4 != 0 || n == 0 || h <= registry_height(c->reg)) {
			seterr(err, errlen, "%s: malformed governance index at height %llu", path,
			       (unsigned long long)h);
			rc = TD_ECORRUPT;
		}
		for (uint32_t i = 0; rc == 0 && i < n; i++) {
			struct td_record *rec = NULL;
			uint8_t *bytes = NULL;
			size_t blen = 0;
			rc = chain_record_get(c, h, ckey_get_u32(val + 4 * i), &bytes, &blen);
			if (rc == 0 && (td_record_decode_trusted(&rec, bytes, blen, c->g->hash, e, sizeof(e)) != 0 ||
					!td_kind_is_gov(rec->kind) || gov_record(rec, &g[i], e, sizeof(e)) != 0))
				rc = TD_ECORRUPT;
			if (rc != 0)
				seterr(err, errlen, "%s: governance record %u of block %llu: %s", path,
				       ckey_get_u32(val + 4 * i), (unsigned long long)h, e[0] ? e : td_strerror(rc));
			td_record_free(rec);
			free(bytes);
		}
		if (rc == 0) {
			registry_advance(c->reg, h - 1);
			if (registry_apply(c->reg, h, g, n, e, sizeof(e)) != 0) {
				seterr(err, errlen, "%s: block %llu: %s", path, (unsigned long long)h, e);
				rc = TD_ECORRUPT;
			}
		}
		free(g);
	}
	if (rc == 0 && (rc = store_iter_error(it)) != 0)
		seterr(err, errlen, "%s: cannot read the governance index", path);
	store_iter_free(it);
	if (rc == 0)
		registry_advance(c->reg, c->height);
	return rc;
}

int chain_open_store(struct chain **out, struct store *st, const char *path, const struct td_genesis *g, char *err,
		     size_t errlen)
{
	struct chain *c = td_xcalloc(1, sizeof(*c));
	uint8_t *ver = NULL;
	size_t vlen;
	struct ckey k;
	int rc;

	*out = NULL;
	c->g = g;
	c->st = st;
	if (sodium_init() < 0) {
		seterr(err, errlen, "libsodium failed to initialise");
		rc = TD_EIO;
		goto fail;
	}
	randombytes_buf(c->hkey, sizeof(c->hkey));
	c->batch = store_batch_new();
	hist_init(&c->apply_hist, hist_latency_le, HIST_LATENCY_N);
	hist_init(&c->write_hist, hist_latency_le, HIST_LATENCY_N);
	ckey_schema(&k);
	rc = store_get(c->st, k.b, k.n, &ver, &vlen);
	if (rc == TD_ENOTFOUND) {
		rc = init_store(c, path, err, errlen);
		if (rc != 0)
			goto fail;
		c->height = 0;
		memset(c->last_hash, 0, sizeof(c->last_hash));
		c->last_time = g->time_ms;
		c->n_records = 0;
	} else if (rc != 0) {
		seterr(err, errlen, "%s: cannot read the store", path);
		goto fail;
	} else {
		rc = read_store(c, path, ver, vlen, err, errlen);
		free(ver);
		if (rc != 0)
			goto fail;
	}
	if ((rc = load_registry(c, path, err, errlen)) != 0)
		goto fail;
	*out = c;
	return 0;

fail:
	registry_free(c->reg);
	store_close(c->st);
	store_batch_free(c->batch);
	free(c);
	return rc;
}

int chain_open(struct chain **out, const char *path, const struct td_genesis *g, char *err, size_t errlen)
{
	struct store *st;
	int rc;
	*out = NULL;
	if ((rc = store_open(&st, path, err, errlen)) != 0)
		return rc;
	return chain_open_store(out, st, path, g, err, errlen);
}

void chain_close(struct chain *c)
{
	if (!c)
		return;
	registry_free(c->reg);
	store_close(c->st);
	store_batch_free(c->batch);
	free(c);
}

int chain_tender_last(const struct chain *c, const char *ocid, uint8_t out[static TD_HASH_LEN])
{
	struct ckey_tstate st;
	int rc = chain_tstate_load(c, ocid, &st);
	if (rc == 0)
		memcpy(out, st.last_id, TD_HASH_LEN);
	return rc;
}

bool chain_genesis_adopted(const struct chain *c)
{
	return c->adopted;
}

uint64_t chain_height(const struct chain *c)
{
	return c->height;
}

const uint8_t *chain_last_hash(const struct chain *c)
{
	return c->last_hash;
}

uint64_t chain_last_time(const struct chain *c)
{
	return c->last_time;
}

uint64_t chain_record_count(const struct chain *c)
{
	return c->n_records;
}

/* ---- checking records ---------------------------------------------------- */

int chain_record_bytes(const struct chain *c, const uint8_t *ref, size_t rlen, uint8_t **bytes, size_t *len)
{
	uint64_t off;
	uint32_t n;
	int rc;

	*bytes = NULL;
	*len = 0;
	if (!ckey_ref_decode(ref, rlen, &off, &n) || n > TD_RECORD_MAX)
		return TD_ECORRUPT;
	rc = store_file_read(c->st, off, n, bytes);
	if (rc == 0)
		*len = n;
	return rc;
}

int chain_record_get(const struct chain *c, uint64_t height, uint32_t index, uint8_t **bytes, size_t *len)
{
	uint8_t *ref;
	size_t rn;
	struct ckey k;
	int rc;

	*bytes = NULL;
	*len = 0;
	ckey_record(&k, height, index);
	rc = store_get(c->st, k.b, k.n, &ref, &rn);
	if (rc != 0)
		return rc;
	rc = chain_record_bytes(c, ref, rn, bytes, len);
	free(ref);
	return rc;
}

static const char *kind_verb(enum td_kind kind)
{
	switch (kind) {
	case TD_KIND_TENDER: return "publish";
	case TD_KIND_AMENDMENT: return "amend";
	case TD_KIND_CANCELLATION: return "cancel";
	case TD_KIND_AWARD: return "award";
	case TD_KIND_GOV_PROPOSAL:
	case TD_KIND_GOV_APPROVAL: break;
	}
	return "change";
}

/*
 * "A release references the release it amends": every tender.amendments
 * entry of an amendment that has amendsReleaseID names a release of the same
 * ocid, committed or accepted earlier in the block (ov), and at least one
 * entry has it.
 */
static int check_amends(const struct chain *c, const struct chain_overlay *ov, const struct td_record *rec, char *err,
			size_t errlen)
{
	const json_t *list = json_object_get(json_object_get(rec->release, "tender"), "amendments");
	const json_t *e;
	size_t i, refs = 0;
	struct ckey k;

	json_array_foreach(list, i, e) {
		const json_t *ref = json_object_get(e, "amendsReleaseID");
		const char *id;
		if (!ref)
			continue;
		if (!td_json_is_string(ref) || json_string_length(ref) == 0 || json_string_length(ref) > TD_ID_MAX ||
		    strlen(json_string_value(ref)) != json_string_length(ref)) {
			seterr(err, errlen,
			       "tender.amendments[%zu].amendsReleaseID: must be the id of the release amended", i);
			return TD_ERULE;
		}
		id = json_string_value(ref);
		ckey_release_id(&k, rec->ocid, id);
		if (!chain_overlay_has_pair(ov, rec->ocid, id) && !store_has(c->st, k.b, k.n)) {
			seterr(err, errlen, "tender.amendments[%zu].amendsReleaseID: no release %s for ocid %s", i, id,
			       rec->ocid);
			return TD_ERULE;
		}
		refs++;
	}
	if (refs == 0) {
		seterr(err, errlen,
		       "tender.amendments: an amendment must name the release it amends (amendsReleaseID) of tender %s",
		       rec->ocid);
		return TD_ERULE;
	}
	return 0;
}

/*
 * The overlay entry of ocid into *out: found in the overlay, or made from
 * the committed "T" state on first use; NULL if no tender has this ocid
 * (committed or earlier in the block). 0 or a read error with a message.
 */
static int pend_lookup(const struct chain *c, struct chain_overlay *ov, const char *ocid, struct chain_pend **out,
		       char *err, size_t errlen)
{
	struct chain_pend *p = chain_overlay_find(ov, ocid);
	struct ckey_tstate st;
	int rc;

	*out = p;
	if (p)
		return 0;
	rc = chain_tstate_load(c, ocid, &st);
	if (rc == TD_ENOTFOUND)
		return 0;
	if (rc != 0) {
		seterr(err, errlen, "tender %s: cannot read its state (%s)", ocid, td_strerror(rc));
		return rc;
	}
	p = chain_overlay_add(ov, ocid);
	memcpy(p->owner, st.owner, TD_PUBKEY_LEN);
	p->cancelled = (st.flags & CKEY_FLAG_CANCELLED) != 0;
	memcpy(p->last_id, st.last_id, TD_HASH_LEN);
	p->st = st;
	p->old = st;
	*out = p;
	return 0;
}

/*
 * The lifecycle rules of chain_check_record, seeing the block's earlier
 * records through ov (NULL: the committed ledger only). With ov, the
 * tender's overlay entry (NULL for a new tender) goes into *found.
 */
/* TD_EEXIST if a record with rec's id is committed or earlier in the block. */
static int check_new_id(const struct chain *c, const struct chain_overlay *ov, const struct td_record *rec, char *err,
			size_t errlen)
{
	struct ckey k;

	ckey_record_loc(&k, rec->id);
	if (chain_overlay_has_id(ov, rec->id) || store_has(c->st, k.b, k.n)) {
		char hex[2 * TD_HASH_LEN + 1];
		td_hex(hex, rec->id, TD_HASH_LEN);
		seterr(err, errlen, "record %s is already on the ledger", hex);
		return TD_EEXIST;
	}
	return 0;
}

/* True if ocid is the chain's governance ocid: its prefix and TD_GOV_OCID_SUFFIX. */
static bool is_gov_ocid(const struct chain *c, const char *ocid)
{
	size_t pn = strlen(c->g->ocid_prefix);
	return strncmp(ocid, c->g->ocid_prefix, pn) == 0 && strcmp(ocid + pn, TD_GOV_OCID_SUFFIX) == 0;
}

/*
 * A governance record: the chain's governance ocid, a new id and, offered
 * alone (ov NULL, the mempool), what the registry would say at the next
 * height. In a block the registry judges them all at once (apply).
 */
static int check_gov(const struct chain *c, const struct chain_overlay *ov, const struct td_record *rec, char *err,
		     size_t errlen)
{
	struct registry_record g;
	char e[TD_ERRMSG_MAX];
	int rc;

	if (!is_gov_ocid(c, rec->ocid)) {
		seterr(err, errlen, "a governance record's ocid must be \"%s%s\"", c->g->ocid_prefix,
		       TD_GOV_OCID_SUFFIX);
		return TD_ERULE;
	}
	if ((rc = check_new_id(c, ov, rec, err, errlen)) != 0)
		return rc;
	if ((rc = gov_record(rec, &g, e, sizeof(e))) != 0) {
		seterr(err, errlen, "%s", e);
		return rc;
	}
	if (!ov && (rc = registry_check(c->reg, c->height + 1, &g, e, sizeof(e))) != 0)
		seterr(err, errlen, "%s", e);
	return rc;
}

static int check_record(const struct chain *c, struct chain_overlay *ov, const struct td_record *rec,
			struct chain_pend **found, char *err, size_t errlen)
{
	const char *prefix = c->g->ocid_prefix;
	const uint8_t *owner = NULL, *last = NULL;
	struct chain_pend *p = NULL;
	struct ckey_tstate st;
	struct ckey k;
	bool exists, cancelled = false;
	int rc;

	if (strncmp(rec->ocid, prefix, strlen(prefix)) != 0) {
		seterr(err, errlen, "ocid \"%s\" does not start with the chain's prefix \"%s\"", rec->ocid, prefix);
		return TD_ERULE;
	}
	if (td_kind_is_gov(rec->kind))
		return check_gov(c, ov, rec, err, errlen);
	if (is_gov_ocid(c, rec->ocid)) {
		seterr(err, errlen, "ocid \"%s\" is the chain's governance ocid: no tender may take it", rec->ocid);
		return TD_ERULE;
	}
	enum td_role role;
	int slot = registry_find(c->reg, rec->agency);
	if (slot < 0 || registry_role(c->reg, (uint32_t)slot, c->height + 1, &role) != 0 || role == TD_ROLE_OBSERVER) {
		char hex[2 * TD_PUBKEY_LEN + 1];
		td_hex(hex, rec->agency, TD_PUBKEY_LEN);
		if (slot >= 0 && registry_role(c->reg, (uint32_t)slot, c->height + 1, &role) == 0)
			seterr(err, errlen,
			       "agency %s (\"%s\") is an observer of the chain: only validators and members "
			       "publish records",
			       hex, registry_party(c->reg, (uint32_t)slot)->name);
		else
			seterr(err, errlen,
			       "agency %s is not a validator or member of the chain: only they publish records", hex);
		return TD_EPERM;
	}
	if ((rc = check_new_id(c, ov, rec, err, errlen)) != 0)
		return rc;

	if (ov) {
		rc = pend_lookup(c, ov, rec->ocid, &p, err, errlen);
		if (rc != 0)
			return rc;
		*found = p;
		exists = p != NULL;
		if (p) {
			owner = p->owner;
			cancelled = p->cancelled;
			last = p->last_id;
		}
	} else {
		rc = chain_tstate_load(c, rec->ocid, &st);
		if (rc != 0 && rc != TD_ENOTFOUND) {
			seterr(err, errlen, "tender %s: cannot read its state (%s)", rec->ocid, td_strerror(rc));
			return rc;
		}
		exists = rc == 0;
		owner = st.owner;
		last = st.last_id;
		cancelled = exists && (st.flags & CKEY_FLAG_CANCELLED);
	}

	if (rec->kind == TD_KIND_TENDER) {
		if (exists) {
			seterr(err, errlen, "tender %s already exists", rec->ocid);
			return TD_EEXIST;
		}
		if (rec->has_prev) {
			seterr(err, errlen, "a tender opens its ocid: it names no previous record");
			return TD_ERULE;
		}
	} else {
		if (!exists) {
			seterr(err, errlen, "tender %s does not exist: a %s needs a published tender", rec->ocid,
			       td_kind_name(rec->kind));
			return TD_ERULE;
		}
		if (memcmp(owner, rec->agency, TD_PUBKEY_LEN) != 0) {
			seterr(err, errlen, "only the agency that published tender %s may %s it", rec->ocid,
			       kind_verb(rec->kind));
			return TD_EPERM;
		}
		if (cancelled) {
			seterr(err, errlen, "tender %s is cancelled: no %s may follow", rec->ocid,
			       td_kind_name(rec->kind));
			return TD_ERULE;
		}
		if (!rec->has_prev || memcmp(rec->prev, last, TD_HASH_LEN) != 0) {
			char want[2 * TD_HASH_LEN + 1];
			td_hex(want, last, TD_HASH_LEN);
			seterr(err, errlen,
			       "the %s does not name tender %s's latest record %s as its previous one (a release "
			       "of the tender was published meanwhile?)",
			       td_kind_name(rec->kind), rec->ocid, want);
			return TD_ERULE;
		}
	}

	ckey_release_id(&k, rec->ocid, rec->release_id);
	if (chain_overlay_has_pair(ov, rec->ocid, rec->release_id) || store_has(c->st, k.b, k.n)) {
		seterr(err, errlen, "release %s of tender %s already exists", rec->release_id, rec->ocid);
		return TD_EEXIST;
	}
	if (rec->kind == TD_KIND_AMENDMENT)
		return check_amends(c, ov, rec, err, errlen);
	return 0;
}

int chain_check_record(const struct chain *c, const struct td_record *rec, char *err, size_t errlen)
{
	if (c->failed)
		return store_failed(c, err, errlen);
	return check_record(c, NULL, rec, NULL, err, errlen);
}

int chain_failed(const struct chain *c, char *err, size_t errlen)
{
	return c->failed ? store_failed(c, err, errlen) : 0;
}

/* ---- applying blocks ------------------------------------------------------- */

/*
 * True if merging release into a compiled release leaves its tender.status
 * "cancelled" as tstate_fields reads it: release.tender.status is that
 * string (an object tender merges member by member, and a status it does
 * not carry stays as it was, so an earlier "cancelled" already counted).
 */
static bool release_cancels(const json_t *release)
{
	const json_t *s = json_object_get(json_object_get(release, "tender"), "status");

	return td_json_is_string(s) && json_string_length(s) <= CKEY_FIELD_MAX &&
	       strcmp(json_string_value(s), "cancelled") == 0;
}

/*
 * Notes an accepted record in the overlay: creates the entry of a tender it
 * publishes (p NULL), marks a cancellation and, when checking, indexes its id
 * and (ocid, release id). Returns the tender's entry in *out, or TD_ECORRUPT
 * for a change to a tender that does not exist (checked blocks never have one).
 */
static int note_record(struct chain_overlay *ov, const struct td_record *rec, struct chain_pend *p, uint64_t height,
		       uint32_t index, struct chain_pend **out, char *err, size_t errlen)
{
	if (!p) {
		const json_t *date = json_object_get(rec->release, "date");
		if (rec->kind != TD_KIND_TENDER) {
			seterr(err, errlen, "tender %s: no state for a %s", rec->ocid, td_kind_name(rec->kind));
			return TD_ECORRUPT;
		}
		p = chain_overlay_add(ov, rec->ocid);
		memcpy(p->owner, rec->agency, TD_PUBKEY_LEN);
		memcpy(p->st.owner, rec->agency, TD_PUBKEY_LEN);
		p->st.first_height = height;
		p->st.first_index = index;
		if (!td_json_is_string(date) ||
		    !ckey_date(json_string_value(date), json_string_length(date), &p->st.first_date))
			p->st.first_date = ckey_date_ms(rec->time_ms);
		p->st.date = p->st.first_date; /* until a tenderPeriod.startDate says otherwise */
		p->is_new = true;
	}
	if (rec->kind == TD_KIND_CANCELLATION || release_cancels(rec->release))
		p->cancelled = true;
	memcpy(p->last_id, rec->id, TD_HASH_LEN);
	if (ov->recs)
		chain_overlay_accept(ov, rec);
	*out = p;
	return 0;
}

/* Adds a record's keys to the batch and its effect to its tender's entry p. */
static void stage_record(struct store_batch *b, struct chain_pend *p, const struct td_record *rec, uint64_t height,
			 uint32_t index)
{
	struct ckey k;
	uint8_t loc[CKEY_LOC_LEN];

	if (rec->kind == TD_KIND_CANCELLATION)
		p->st.flags |= CKEY_FLAG_CANCELLED;
	chain_tstate_release(&p->st, rec->release);
	p->st.last_height = height;
	snprintf(p->st.last_release, sizeof(p->st.last_release), "%s", rec->release_id);
	memcpy(p->st.last_id, rec->id, TD_HASH_LEN);

	ckey_release(&k, rec->ocid, p->st.n_releases);
	store_batch_put(b, k.b, k.n, rec->id, TD_HASH_LEN);
	p->st.n_releases++;

	ckey_release_id(&k, rec->ocid, rec->release_id);
	store_batch_put(b, k.b, k.n, rec->id, TD_HASH_LEN);

	ckey_record_loc(&k, rec->id);
	ckey_loc_encode(loc, height, index);
	store_batch_put(b, k.b, k.n, loc, sizeof(loc));
}

/*
 * Puts "B" (header, record ids, evidence), a "D" key per record (its bytes
 * go to st's records file) and an "X" key per offence.
 */
static void stage_block(struct store *st, struct store_batch *b, const struct td_block *blk)
{
	struct td_buf v;
	struct ckey k;
	uint8_t hv[8];

	ckey_put_u64(hv, blk->hdr.height);
	for (uint32_t i = 0; i < blk->hdr.n_evidence; i++) {
		uint8_t key[TD_EVIDENCE_KEY_LEN];
		td_evidence_key(key, &blk->evidence[i]);
		ckey_evidence(&k, key);
		store_batch_put(b, k.b, k.n, hv, sizeof(hv));
	}
	for (uint32_t i = 0; i < blk->hdr.n_records; i++) {
		uint8_t ref[CKEY_REF_LEN];
		uint64_t off;
		store_file_append(st, blk->records[i]->bytes, blk->records[i]->len, &off);
		ckey_ref_encode(ref, off, (uint32_t)blk->records[i]->len);
		ckey_record(&k, blk->hdr.height, i);
		store_batch_put(b, k.b, k.n, ref, sizeof(ref));
	}
	td_buf_init(&v);
	ckey_block_meta_encode(&v, blk);
	ckey_block(&k, blk->hdr.height);
	store_batch_put(b, k.b, k.n, v.sb.data, v.sb.size);
	td_buf_free(&v);
}

/*
 * Puts the list keys of a touched tender that the block adds or changes and
 * deletes the ones it replaces, noting the "N" count changes in ov.
 */
static void stage_lists(struct chain_overlay *ov, struct store_batch *b, const struct chain_pend *p)
{
	for (int i = 0; i < CKEY_LIX_COUNT; i++) {
		const enum ckey_lix x = (enum ckey_lix)i;
		const bool had = !p->is_new && ckey_lix_has(x, &p->old), has = ckey_lix_has(x, &p->st);
		struct ckey ko, kn;
		if (had)
			ckey_lix_key(&ko, x, &p->old);
		if (has)
			ckey_lix_key(&kn, x, &p->st);
		if (had && has && ko.n == kn.n && memcmp(ko.b, kn.b, ko.n) == 0)
			continue;
		if (had) {
			store_batch_delete(b, ko.b, ko.n);
			if (ckey_lix_counted(x))
				chain_overlay_count(ov, x, &p->old, -1);
		}
		if (has) {
			/* only the every-tender entry names the ocid; the others lead to it by their height and index */
			store_batch_put(b, kn.b, kn.n, p->ocid, x == CKEY_LIX_ALL ? strlen(p->ocid) : 0);
			if (ckey_lix_counted(x))
				chain_overlay_count(ov, x, &p->st, 1);
		}
	}
}

/* Puts the "N" counts changed by the block. */
static int stage_counts(const struct chain *c, const struct chain_overlay *ov, struct store_batch *b, char *err,
			size_t errlen)
{
	for (size_t i = 0; i < ov->nnd; i++) {
		const struct chain_ndelta *nd = &ov->nd[i];
		uint64_t n = 0;
		uint8_t *v, nb[8];
		size_t vl;
		int rc;
		if (nd->d == 0)
			continue;
		rc = store_get(c->st, nd->k.b, nd->k.n, &v, &vl);
		if (rc == 0) {
			n = vl == 8 ? ckey_get_u64(v) : UINT64_MAX;
			free(v);
		} else if (rc != TD_ENOTFOUND) {
			seterr(err, errlen, "cannot read a list count (%s)", td_strerror(rc));
			return rc;
		}
		if (n == UINT64_MAX || (nd->d < 0 && (uint64_t)-nd->d > n)) {
			seterr(err, errlen, "a list count in the store is corrupt");
			return TD_ECORRUPT;
		}
		n = nd->d < 0 ? n - (uint64_t)-nd->d : n + (uint64_t)nd->d;
		if (n == 0) {
			store_batch_delete(b, nd->k.b, nd->k.n);
		} else {
			ckey_put_u64(nb, n);
			store_batch_put(b, nd->k.b, nd->k.n, nb, sizeof(nb));
		}
	}
	return 0;
}

/* Adds the state and list keys of a touched tender. */
static void stage_tender(struct chain_overlay *ov, struct store_batch *b, const struct chain_pend *p)
{
	uint8_t tv[CKEY_TSTATE_MAX];
	size_t tl;
	struct ckey k;

	ckey_tender(&k, p->ocid);
	ckey_tstate_encode(&p->st, tv, &tl);
	store_batch_put(b, k.b, k.n, tv, tl);
	stage_lists(ov, b, p);
}

const uint8_t *chain_next_validators(const struct chain *c)
{
	/* Block height+1's header names the set that signs height+2. */
	return registry_set(c->reg, c->height + 2)->hash;
}

const struct registry *chain_registry(const struct chain *c)
{
	return c->reg;
}

/* Index of pk in set s, or -1. */
static int set_index(const struct registry_set *s, const uint8_t pk[static TD_PUBKEY_LEN])
{
	for (uint32_t i = 0; i < s->n; i++)
		if (memcmp(s->v[i].pk, pk, TD_PUBKEY_LEN) == 0)
			return (int)i;
	return -1;
}

int chain_check_evidence(const struct chain *c, const struct td_evidence *ev, uint64_t height, char *err, size_t errlen)
{
	uint8_t key[TD_EVIDENCE_KEY_LEN];
	char e[TD_ERRMSG_MAX];
	struct ckey k;
	int rc;

	const struct registry_set *es = ev->height ? registry_set(c->reg, ev->height) : NULL;
	if (ev->height == 0 || ev->height >= height || height - ev->height > TD_EVIDENCE_MAX_AGE || !es) {
		seterr(err, errlen, "evidence of height %llu cannot go into block %llu (at most %d heights older)",
		       (unsigned long long)ev->height, (unsigned long long)height, TD_EVIDENCE_MAX_AGE);
		return TD_ERULE;
	}
	if (set_index(es, ev->pk) < 0) {
		seterr(err, errlen, "evidence against a key that is not a validator at height %llu",
		       (unsigned long long)ev->height);
		return TD_EINVAL;
	}
	td_evidence_key(key, ev);
	ckey_evidence(&k, key);
	{
		uint8_t *v = NULL;
		size_t vn = 0;
		rc = store_get(c->st, k.b, k.n, &v, &vn);
		free(v);
	}
	if (rc == 0) {
		seterr(err, errlen, "this offence (height %llu round %u) is already committed",
		       (unsigned long long)ev->height, ev->round);
		return TD_EEXIST;
	}
	if (rc != TD_ENOTFOUND) {
		seterr(err, errlen, "cannot read the store");
		return rc;
	}
	if ((rc = td_evidence_verify(ev, c->g->hash, e, sizeof(e))) != 0) {
		seterr(err, errlen, "%s", e);
		return rc;
	}
	return 0;
}

/* Checks the block itself (not its records) against the tip and the genesis. */
static int check_block(const struct chain *c, const struct td_block *blk, const struct td_commit *commit, char *err,
		       size_t errlen)
{
	const struct td_block_header *h = &blk->hdr;
	uint8_t hash[TD_HASH_LEN], root[TD_HASH_LEN];
	struct td_buf hb;
	uint8_t *hbytes;
	size_t hlen;
	char e[TD_ERRMSG_MAX];
	int rc;

	if (h->height != c->height + 1) {
		seterr(err, errlen, "block height %llu, expected %llu", (unsigned long long)h->height,
		       (unsigned long long)c->height + 1);
		return TD_EINVAL;
	}
	if (memcmp(h->prev_hash, c->last_hash, TD_HASH_LEN) != 0) {
		seterr(err, errlen, "block %llu: previous hash is not the hash of block %llu",
		       (unsigned long long)h->height, (unsigned long long)c->height);
		return TD_EINVAL;
	}
	const struct registry_set *vs = registry_set(c->reg, h->height);
	if (set_index(vs, h->proposer) < 0) {
		seterr(err, errlen, "block %llu: proposer is not a validator", (unsigned long long)h->height);
		return TD_EINVAL;
	}
	if (h->time_ms < c->last_time) {
		seterr(err, errlen, "block %llu: time goes back before the previous block",
		       (unsigned long long)h->height);
		return TD_EINVAL;
	}
	if (h->n_records > TD_BLOCK_RECORDS_MAX || (h->n_records > 0 && !blk->records)) {
		seterr(err, errlen, "block %llu: %u records, at most %u", (unsigned long long)h->height, h->n_records,
		       TD_BLOCK_RECORDS_MAX);
		return TD_EINVAL;
	}
	for (uint32_t i = 0; i < h->n_records; i++) {
		const struct td_record *rec = blk->records[i];
		uint8_t id[TD_HASH_LEN];
		if (!rec || !rec->bytes) {
			seterr(err, errlen, "block %llu: record %u missing", (unsigned long long)h->height, i);
			return TD_EINVAL;
		}
		td_hash(id, rec->bytes, rec->len);
		if (memcmp(id, rec->id, TD_HASH_LEN) != 0) {
			seterr(err, errlen, "block %llu: record %u: id does not match its bytes",
			       (unsigned long long)h->height, i);
			return TD_EINVAL;
		}
	}
	td_records_root(root, blk->records, h->n_records);
	if (memcmp(root, h->records_root, TD_HASH_LEN) != 0) {
		seterr(err, errlen, "block %llu: records root does not match its records",
		       (unsigned long long)h->height);
		return TD_EINVAL;
	}
	if (memcmp(h->next_validators, registry_set(c->reg, h->height + 1)->hash, TD_HASH_LEN) != 0) {
		seterr(err, errlen, "block %llu: next validators hash is not the hash of the validator set",
		       (unsigned long long)h->height);
		return TD_EINVAL;
	}
	if (h->n_evidence > TD_BLOCK_EVIDENCE_MAX || (h->n_evidence > 0 && !blk->evidence)) {
		seterr(err, errlen, "block %llu: %u evidence items, at most %u", (unsigned long long)h->height,
		       h->n_evidence, TD_BLOCK_EVIDENCE_MAX);
		return TD_EINVAL;
	}
	{
		uint8_t ids[TD_BLOCK_EVIDENCE_MAX][TD_HASH_LEN], keys[TD_BLOCK_EVIDENCE_MAX][TD_EVIDENCE_KEY_LEN];
		for (uint32_t i = 0; i < h->n_evidence; i++) {
			const struct td_evidence *ev = &blk->evidence[i];
			struct td_buf eb;
			td_buf_init(&eb);
			td_evidence_encode(&eb, ev);
			td_hash(ids[i], (const uint8_t *)eb.sb.data, eb.sb.size);
			td_buf_free(&eb);
			td_evidence_key(keys[i], ev);
			for (uint32_t j = 0; j < i; j++) {
				if (memcmp(keys[i], keys[j], TD_EVIDENCE_KEY_LEN) == 0) {
					seterr(err, errlen, "block %llu: evidence %u repeats evidence %u",
					       (unsigned long long)h->height, i, j);
					return TD_EINVAL;
				}
			}
			if ((rc = chain_check_evidence(c, ev, h->height, e, sizeof(e))) != 0) {
				seterr(err, errlen, "block %llu: evidence %u: %s", (unsigned long long)h->height, i, e);
				return rc == TD_EIO || rc == TD_ECORRUPT ? rc : TD_EINVAL;
			}
		}
		td_merkle_root(root, (const uint8_t(*)[TD_HASH_LEN])ids, h->n_evidence);
		if (memcmp(root, h->evidence_root, TD_HASH_LEN) != 0) {
			seterr(err, errlen, "block %llu: evidence root does not match its evidence",
			       (unsigned long long)h->height);
			return TD_EINVAL;
		}
	}
	td_buf_init(&hb);
	td_header_encode(&hb, h);
	hbytes = td_buf_take(&hb, &hlen);
	td_buf_free(&hb);
	td_hash(hash, hbytes, hlen);
	free(hbytes);
	if (memcmp(hash, blk->hash, TD_HASH_LEN) != 0) {
		seterr(err, errlen, "block %llu: hash does not match its header", (unsigned long long)h->height);
		return TD_EINVAL;
	}
	if (!commit)
		return 0; /* a proposal being validated: no commit yet */
	if (commit->height != h->height || memcmp(commit->block_hash, hash, TD_HASH_LEN) != 0) {
		seterr(err, errlen, "block %llu: commit is not for this block", (unsigned long long)h->height);
		return TD_ESIG;
	}
	rc = td_commit_verify_set(commit, c->g->hash, vs->v, vs->n, h->height, hash, e, sizeof(e));
	if (rc != 0) {
		seterr(err, errlen, "block %llu: %s", (unsigned long long)h->height, e);
		return rc;
	}
	return 0;
}

/* ---- remembered checks ----------------------------------------------------- */

/* True if the block with this hash passed every record check at the current tip. */
static bool memo_has(const struct chain *c, const uint8_t hash[static TD_HASH_LEN])
{
	for (unsigned i = 0; i < CHAIN_MEMO_N; i++) {
		const struct chain_memo_entry *m = &c->memo.e[i];
		if (m->used && m->height == c->height && memcmp(m->tip, c->last_hash, TD_HASH_LEN) == 0 &&
		    memcmp(m->block, hash, TD_HASH_LEN) == 0)
			return true;
	}
	return false;
}

/* Remembers that the block with this hash passed every record check at the current tip. */
static void memo_add(struct chain *c, const uint8_t hash[static TD_HASH_LEN])
{
	struct chain_memo_entry *m = &c->memo.e[c->memo.next];

	c->memo.next = (c->memo.next + 1) % CHAIN_MEMO_N;
	m->used = true;
	memcpy(m->block, hash, TD_HASH_LEN);
	m->height = c->height;
	memcpy(m->tip, c->last_hash, TD_HASH_LEN);
}

/*
 * Checks blk (and commit, unless NULL) as chain_apply does; stages and
 * writes only when commit is given. The records of a block that passed
 * their checks at the same tip (memo) are not checked again; the block
 * itself and the commit always are.
 */
static int apply(struct chain *c, const struct td_block *blk, const struct td_commit *commit, char *err, size_t errlen)
{
	const uint64_t height = blk->hdr.height;
	const bool stage = commit != NULL;
	struct chain_overlay ov;
	struct store_batch *b = NULL;
	uint8_t *bytes = NULL, tip[CKEY_TIP_LEN];
	struct ckey_tipval t;
	size_t len;
	char e[TD_ERRMSG_MAX];
	struct ckey k;
	bool checked, *last = NULL;
	struct registry_record *gov = NULL;
	struct registry *reg = NULL;
	uint32_t ngov = 0, *gov_at = NULL;
	double t0;
	int rc;

	if (c->failed)
		return store_failed(c, err, errlen);
	rc = check_block(c, blk, commit, err, errlen);
	if (rc != 0)
		return rc;
	checked = memo_has(c, blk->hash);
	if (checked && !stage)
		return 0;

	chain_overlay_init(&ov, c, blk->hdr.n_records, !checked);
	if (stage) {
		b = c->batch;
		store_batch_clear(b);
		last = td_xcalloc(blk->hdr.n_records ? blk->hdr.n_records : 1, sizeof(*last));
		chain_overlay_last_touch(&ov, blk->records, blk->hdr.n_records, last);
	}
	for (uint32_t i = 0; i < blk->hdr.n_records; i++) {
		const struct td_record *rec = blk->records[i];
		struct chain_pend *p = NULL;
		if (td_kind_is_gov(rec->kind)) {
			if (!gov) {
				gov = td_xcalloc(blk->hdr.n_records, sizeof(*gov));
				gov_at = td_xcalloc(blk->hdr.n_records, sizeof(*gov_at));
			}
			rc = checked ? 0 : check_record(c, &ov, rec, &p, e, sizeof(e));
			if (rc == 0)
				rc = gov_record(rec, &gov[ngov], e, sizeof(e));
			if (rc != 0) {
				seterr(err, errlen, "block %llu: record %u: %s", (unsigned long long)height, i, e);
				goto out;
			}
			gov_at[ngov++] = i;
			if (ov.recs)
				chain_overlay_accept(&ov, rec);
			if (stage) {
				uint8_t loc[CKEY_LOC_LEN];
				ckey_record_loc(&k, rec->id);
				ckey_loc_encode(loc, height, i);
				store_batch_put(b, k.b, k.n, loc, sizeof(loc));
			}
			continue;
		}
		if (checked)
			rc = pend_lookup(c, &ov, rec->ocid, &p, e, sizeof(e));
		else
			rc = check_record(c, &ov, rec, &p, e, sizeof(e));
		if (rc == 0)
			rc = note_record(&ov, rec, p, height, i, &p, e, sizeof(e));
		if (rc == 0 && stage)
			stage_record(b, p, rec, height, i);
		if (rc != 0) {
			seterr(err, errlen, "block %llu: record %u: %s", (unsigned long long)height, i, e);
			goto out;
		}
		if (stage && last[i]) {
			/* the tender's last record in the block: its state is final */
			stage_tender(&ov, b, p);
		}
	}
	/* Checked when validating too: a block every validator decides must be one the store takes. */
	len = td_block_encoded_len(blk);
	if (len > TD_BLOCK_MAX) {
		seterr(err, errlen, "block %llu: %zu bytes, at most %u", (unsigned long long)height, len,
		       (unsigned)TD_BLOCK_MAX);
		rc = TD_EINVAL;
		goto out;
	}
	/* The registry judges the block's governance records together, in order, on a copy. */
	if (ngov > 0) {
		reg = registry_clone(c->reg);
		if ((rc = registry_apply(reg, height, gov, ngov, e, sizeof(e))) != 0) {
			seterr(err, errlen, "block %llu: %s", (unsigned long long)height, e);
			goto out;
		}
	}
	if (!stage) {
		memo_add(c, blk->hash);
		goto out;
	}
	rc = stage_counts(c, &ov, b, err, errlen);
	if (rc != 0)
		goto out;
	if (ngov > 0) {
		uint8_t *idx = td_xcalloc(ngov, 4);
		for (uint32_t i = 0; i < ngov; i++)
			ckey_put_u32(idx + 4 * i, gov_at[i]);
		ckey_gov(&k, height);
		store_batch_put(b, k.b, k.n, idx, 4 * (size_t)ngov);
		free(idx);
	}

	stage_block(c->st, b, blk);
	td_commit_encode(commit, &bytes, &len);
	ckey_commit(&k, height);
	store_batch_put(b, k.b, k.n, bytes, len);

	t.height = height;
	memcpy(t.hash, blk->hash, TD_HASH_LEN);
	t.time_ms = blk->hdr.time_ms;
	t.n_records = c->n_records + blk->hdr.n_records;
	t.file_end = store_file_end(c->st);
	ckey_tip_encode(&t, tip);
	ckey_tip(&k);
	store_batch_put(b, k.b, k.n, tip, sizeof(tip));

	t0 = mono_s();
	rc = store_write(c->st, b, true, e, sizeof(e));
	hist_observe(&c->write_hist, mono_s() - t0);
	if (rc != 0) {
		/*
		 * LevelDB may have written part of the batch to its log: another
		 * write after it could make the log unreadable at the next open, and
		 * the in-memory tip no longer says what the store holds. So the
		 * chain stops writing until the node is restarted (the whole block
		 * is then there or not; a missing one comes back by block sync).
		 */
		c->failed = rc;
		snprintf(c->failure, sizeof(c->failure), "%s", e);
		log_error("chain: writing block %llu to the store failed: %s; the node accepts no records or blocks "
			  "until it is restarted with the store fixed (free disk space, check the disk)",
			  (unsigned long long)height, e);
		seterr(err, errlen, "block %llu: the store failed: %s", (unsigned long long)height, e);
	} else if (reg) {
		registry_free(c->reg);
		c->reg = reg;
		reg = NULL;
	} else {
		registry_advance(c->reg, height);
	}
out:
	registry_free(reg);
	free(gov);
	free(gov_at);
	free(bytes);
	free(last);
	if (b)
		store_batch_clear(b);
	chain_overlay_free(&ov);
	return rc;
}

int chain_apply(struct chain *c, const struct td_block *blk, const struct td_commit *commit, char *err, size_t errlen)
{
	double t0 = mono_s();
	int rc;

	if (!commit) {
		seterr(err, errlen, "block %llu: no commit", (unsigned long long)blk->hdr.height);
		return TD_ESIG;
	}
	rc = apply(c, blk, commit, err, errlen);
	if (rc != 0)
		return rc;
	hist_observe(&c->apply_hist, mono_s() - t0);
	c->height = blk->hdr.height;
	memcpy(c->last_hash, blk->hash, TD_HASH_LEN);
	c->last_time = blk->hdr.time_ms;
	c->n_records += blk->hdr.n_records;
	return 0;
}

const struct hist *chain_apply_hist(const struct chain *c)
{
	return &c->apply_hist;
}

const struct hist *chain_write_hist(const struct chain *c)
{
	return &c->write_hist;
}

int chain_validate(struct chain *c, const struct td_block *blk, char *err, size_t errlen)
{
	return apply(c, blk, NULL, err, errlen);
}
