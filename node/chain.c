/*
 * The chain: applying committed blocks and answering queries from the store.
 *
 * Store layout (schema version 1). Integers in keys and values are big-endian
 * (u64: 8 bytes, u32: 4 bytes), so keys sort numerically; ocids and release
 * ids hold no NUL byte (td_get_str refuses it), so NUL ends them in keys.
 *
 *   "S"                          -> schema version (u32)
 *   "I"                          -> chain id (bytes)
 *   "M"                          -> tip: height u64 | last hash[32] |
 *                                   last time ms u64 | record count u64
 *   "B" height                   -> block, as td_block_encode (header and the
 *                                   record bytes: records are stored once, here)
 *   "C" height                   -> commit, as td_commit_encode
 *   "R" record id[32]            -> height u64 | index in block u32
 *   "T" ocid                     -> tender state: owner agency[32] | flags u8
 *                                   (1: cancelled) | first height u64 | first
 *                                   index u32 | releases u32 | last height u64 |
 *                                   status length u8 | tender.status bytes
 *   "E" ocid \0 seq u32          -> record id of the tender's seq-th release
 *   "U" ocid \0 release id       -> record id ((ocid, release id) uniqueness)
 *   "K" ocid                     -> compiled release (JSON text, exact numbers)
 *   "Y" ocid                     -> summary for listings (JSON text):
 *                                   td_release_summary + agency, agency_name,
 *                                   height (first release), releases (count)
 *   "L" \0 height u64 index u32  -> ocid: every tender by its first release;
 *                                   read in reverse for newest first
 *
 * Listing filters are further "L" indexes keyed so that the same reverse
 * walk answers them: "L" 'a' agency[32] height index (by agency), "L" 's'
 * status \0 height index, "L" 'c' category \0 ..., "L" 'm' method \0 ...,
 * "L" 'd' deadline u64 ...; an index on a field that amendments can change
 * deletes the old key (known from "T"/"K") and puts the new one in the same
 * batch. A list cursor is the hex of the last index key returned, so it is
 * tied to the index it came from.
 *
 * Invariants: chain_apply() is the only writer after chain_open(); a block
 * and everything derived from it (commit, record, release, tender, summary,
 * list keys and the tip) go into one LevelDB batch written with sync, and the
 * in-memory tip changes only after that write succeeded. So the store always
 * holds blocks 1..height with their commits, and "M" describes exactly them.
 *
 * While checking a block, the records already accepted from the same block
 * live in an overlay (struct overlay): tender states and compiled releases
 * touched so far, and the accepted records for id and (ocid, release id)
 * uniqueness. Lookups go to the overlay first, then to the store.
 *
 * chain_apply() recomputes the block hash from the header, the records root
 * from the records and each record id from its bytes, and verifies the
 * commit; record signatures are taken as checked by whoever built the
 * td_record (td_record_decode, td_block_decode, td_record_sign).
 *
 * JSON answers: "time" of a release entry is the record's own time (when the
 * agency signed it); "height" of a listed tender is the height of its first
 * release and "releases" its number of releases. A tender counts as cancelled
 * once a cancellation is committed or its compiled tender.status is
 * "cancelled"; no later record may touch it.
 *
 * The genesis is borrowed from the caller; the chain owns its store.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "tenderd/block.h"
#include "tenderd/codec.h"
#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "tenderd/types.h"
#include "chain.h"
#include "store.h"

#define SCHEMA_VERSION 1u
#define TIP_LEN (8 + TD_HASH_LEN + 8 + 8)
#define TSTATE_FIXED (TD_PUBKEY_LEN + 1 + 8 + 4 + 4 + 8 + 1)
#define STATUS_MAX 32 /* longest tender.status kept in "T" (codes are short) */
#define KEY_MAX (2 + TD_OCID_MAX + 1 + TD_ID_MAX + 16)
#define LIST_KEY_LEN (2 + 8 + 4)
#define LIST_LIMIT_MAX 1000
#define FLAG_CANCELLED 1u

struct chain {
	struct store *st;           /* owned */
	const struct td_genesis *g; /* borrowed */
	uint64_t height;
	uint8_t last_hash[TD_HASH_LEN];
	uint64_t last_time;
	uint64_t n_records;
};

/* A tender's bookkeeping, as in "T". */
struct tstate {
	uint8_t owner[TD_PUBKEY_LEN];
	uint8_t flags;
	uint64_t first_height;
	uint32_t first_index;
	uint32_t n_releases;
	uint64_t last_height;
	char status[STATUS_MAX + 1];
};

/* A tender touched by the block being applied. */
struct pend {
	char ocid[TD_OCID_MAX + 1];
	struct tstate st;
	json_t *compiled; /* owned */
	bool is_new;      /* first published in this block */
};

struct overlay {
	struct pend *t;
	size_t nt, cap;
	const struct td_record **recs; /* accepted records of the block, borrowed */
	size_t nrecs;
};

/* ---- keys and integers --------------------------------------------------- */

struct key {
	uint8_t b[KEY_MAX];
	size_t n;
};

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | p[i];
	return v;
}

static void key_tag(struct key *k, char tag)
{
	k->b[0] = (uint8_t)tag;
	k->n = 1;
}

/* Appends n bytes; keys are sized for the longest layout, so overflow is a bug. */
static void key_bytes(struct key *k, const void *p, size_t n)
{
	if (k->n + n > sizeof(k->b))
		abort();
	memcpy(k->b + k->n, p, n);
	k->n += n;
}

static void key_byte(struct key *k, uint8_t c)
{
	key_bytes(k, &c, 1);
}

static void key_u64(struct key *k, uint64_t v)
{
	uint8_t b[8];
	put_u64(b, v);
	key_bytes(k, b, 8);
}

static void key_u32(struct key *k, uint32_t v)
{
	uint8_t b[4];
	put_u32(b, v);
	key_bytes(k, b, 4);
}

static void key_str(struct key *k, const char *s)
{
	key_bytes(k, s, strlen(s));
}

static void key_height(struct key *k, char tag, uint64_t h)
{
	key_tag(k, tag);
	key_u64(k, h);
}

static void key_ocid(struct key *k, char tag, const char *ocid)
{
	key_tag(k, tag);
	key_str(k, ocid);
}

static void key_list(struct key *k, uint64_t height, uint32_t index)
{
	key_tag(k, 'L');
	key_byte(k, 0);
	key_u64(k, height);
	key_u32(k, index);
}

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

/* Loads JSON text stored by this node; NULL if it does not parse. */
static json_t *load_json(const uint8_t *p, size_t n)
{
	char e[TD_ERRMSG_MAX];

	return td_json_load((const char *)p, n, e, sizeof(e));
}

static json_t *get_json(const struct chain *c, const struct key *k)
{
	uint8_t *v;
	size_t n;
	json_t *j;

	if (store_get(c->st, k->b, k->n, &v, &n) != 0)
		return NULL;
	j = load_json(v, n);
	free(v);
	return j;
}

/* ---- tender state ---------------------------------------------------------- */

static void tstate_encode(const struct tstate *t, uint8_t out[static TSTATE_FIXED + STATUS_MAX], size_t *len)
{
	size_t sl = strlen(t->status);
	uint8_t *p = out;

	memcpy(p, t->owner, TD_PUBKEY_LEN);
	p += TD_PUBKEY_LEN;
	*p++ = t->flags;
	put_u64(p, t->first_height);
	p += 8;
	put_u32(p, t->first_index);
	p += 4;
	put_u32(p, t->n_releases);
	p += 4;
	put_u64(p, t->last_height);
	p += 8;
	*p++ = (uint8_t)sl;
	memcpy(p, t->status, sl);
	*len = TSTATE_FIXED + sl;
}

static bool tstate_decode(struct tstate *t, const uint8_t *p, size_t len)
{
	size_t sl;

	if (len < TSTATE_FIXED)
		return false;
	sl = p[TSTATE_FIXED - 1];
	if (sl > STATUS_MAX || len != TSTATE_FIXED + sl)
		return false;
	memcpy(t->owner, p, TD_PUBKEY_LEN);
	p += TD_PUBKEY_LEN;
	t->flags = *p++;
	t->first_height = get_u64(p);
	p += 8;
	t->first_index = get_u32(p);
	p += 4;
	t->n_releases = get_u32(p);
	p += 4;
	t->last_height = get_u64(p);
	p += 8;
	p++;
	memcpy(t->status, p, sl);
	t->status[sl] = '\0';
	return true;
}

/* Reads the committed state of a tender: 0, TD_ENOTFOUND, TD_EIO or TD_ECORRUPT. */
static int tstate_load(const struct chain *c, const char *ocid, struct tstate *t)
{
	struct key k;
	uint8_t *v;
	size_t n;
	int rc;

	key_ocid(&k, 'T', ocid);
	rc = store_get(c->st, k.b, k.n, &v, &n);
	if (rc != 0)
		return rc;
	rc = tstate_decode(t, v, n) ? 0 : TD_ECORRUPT;
	free(v);
	return rc;
}

/* Takes tender.status from the compiled release into t (and the cancelled flag). */
static void tstate_status(struct tstate *t, const json_t *compiled)
{
	const json_t *s = json_object_get(json_object_get(compiled, "tender"), "status");
	const char *text;

	t->status[0] = '\0';
	if (!td_json_is_string(s))
		return;
	text = json_string_value(s);
	if (strlen(text) <= STATUS_MAX)
		snprintf(t->status, sizeof(t->status), "%s", text);
	if (strcmp(text, "cancelled") == 0)
		t->flags |= FLAG_CANCELLED;
}

/* ---- overlay --------------------------------------------------------------- */

static void overlay_free(struct overlay *ov)
{
	for (size_t i = 0; i < ov->nt; i++)
		json_decref(ov->t[i].compiled);
	free(ov->t);
	free(ov->recs);
	memset(ov, 0, sizeof(*ov));
}

static struct pend *overlay_find(const struct overlay *ov, const char *ocid)
{
	if (!ov)
		return NULL;
	for (size_t i = 0; i < ov->nt; i++)
		if (strcmp(ov->t[i].ocid, ocid) == 0)
			return &ov->t[i];
	return NULL;
}

static struct pend *overlay_add(struct overlay *ov, const char *ocid)
{
	struct pend *p;

	if (ov->nt == ov->cap) {
		ov->cap = ov->cap ? 2 * ov->cap : 8;
		ov->t = td_xrealloc(ov->t, ov->cap * sizeof(*ov->t));
	}
	p = &ov->t[ov->nt++];
	memset(p, 0, sizeof(*p));
	snprintf(p->ocid, sizeof(p->ocid), "%s", ocid);
	return p;
}

static bool overlay_has_id(const struct overlay *ov, const uint8_t id[static TD_HASH_LEN])
{
	if (!ov)
		return false;
	for (size_t i = 0; i < ov->nrecs; i++)
		if (memcmp(ov->recs[i]->id, id, TD_HASH_LEN) == 0)
			return true;
	return false;
}

static bool overlay_has_pair(const struct overlay *ov, const char *ocid, const char *release_id)
{
	if (!ov)
		return false;
	for (size_t i = 0; i < ov->nrecs; i++)
		if (strcmp(ov->recs[i]->ocid, ocid) == 0 && strcmp(ov->recs[i]->release_id, release_id) == 0)
			return true;
	return false;
}

/* ---- open / close ---------------------------------------------------------- */

static void tip_encode(uint64_t height, const uint8_t hash[static TD_HASH_LEN], uint64_t time_ms, uint64_t n_records,
		       uint8_t out[static TIP_LEN])
{
	put_u64(out, height);
	memcpy(out + 8, hash, TD_HASH_LEN);
	put_u64(out + 8 + TD_HASH_LEN, time_ms);
	put_u64(out + 16 + TD_HASH_LEN, n_records);
}

/* Writes schema, chain id and an empty tip into a new store. */
static int init_store(struct chain *c, const char *path, char *err, size_t errlen)
{
	struct store_iter *it = store_iter_new(c->st, NULL, 0, false);
	const uint8_t *k;
	size_t kn;
	bool empty = !store_iter_next(it, &k, &kn, NULL, NULL);
	int rc = store_iter_error(it);
	struct store_batch *b;
	uint8_t ver[4], tip[TIP_LEN], zero[TD_HASH_LEN] = { 0 };

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
	put_u32(ver, SCHEMA_VERSION);
	store_batch_put(b, "S", 1, ver, sizeof(ver));
	store_batch_put(b, "I", 1, c->g->chain_id, strlen(c->g->chain_id));
	tip_encode(0, zero, c->g->time_ms, 0, tip);
	store_batch_put(b, "M", 1, tip, sizeof(tip));
	rc = store_write(c->st, b, true, err, errlen);
	store_batch_free(b);
	return rc;
}

/* Checks schema and chain id of an existing store and reads its tip. */
static int read_store(struct chain *c, const char *path, const uint8_t *ver, size_t vlen, char *err, size_t errlen)
{
	uint8_t *v = NULL;
	size_t n;
	int rc;
	struct key k;

	if (vlen != 4 || get_u32(ver) != SCHEMA_VERSION) {
		seterr(err, errlen, "%s: store schema version %u, this tenderd reads version %u", path,
		       vlen == 4 ? get_u32(ver) : 0, SCHEMA_VERSION);
		return TD_ECORRUPT;
	}
	rc = store_get(c->st, "I", 1, &v, &n);
	if (rc != 0) {
		seterr(err, errlen, "%s: store has no chain id", path);
		return rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
	}
	if (n != strlen(c->g->chain_id) || memcmp(v, c->g->chain_id, n) != 0) {
		seterr(err, errlen, "%s: store belongs to chain \"%.*s\", not \"%s\"", path,
		       (int)(n > TD_CHAIN_ID_MAX ? TD_CHAIN_ID_MAX : n), (const char *)v, c->g->chain_id);
		free(v);
		return TD_EINVAL;
	}
	free(v);
	rc = store_get(c->st, "M", 1, &v, &n);
	if (rc != 0 || n != TIP_LEN) {
		seterr(err, errlen, "%s: store has no valid tip", path);
		free(v);
		return rc == 0 || rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
	}
	c->height = get_u64(v);
	memcpy(c->last_hash, v + 8, TD_HASH_LEN);
	c->last_time = get_u64(v + 8 + TD_HASH_LEN);
	c->n_records = get_u64(v + 16 + TD_HASH_LEN);
	free(v);
	if (c->height > 0) {
		key_height(&k, 'B', c->height);
		if (!store_has(c->st, k.b, k.n)) {
			seterr(err, errlen, "%s: store tip at height %llu but no such block", path,
			       (unsigned long long)c->height);
			return TD_ECORRUPT;
		}
	}
	return 0;
}

int chain_open(struct chain **out, const char *path, const struct td_genesis *g, char *err, size_t errlen)
{
	struct chain *c = td_xcalloc(1, sizeof(*c));
	uint8_t *ver = NULL;
	size_t vlen;
	int rc;

	*out = NULL;
	c->g = g;
	rc = store_open(&c->st, path, err, errlen);
	if (rc != 0)
		goto fail;
	rc = store_get(c->st, "S", 1, &ver, &vlen);
	if (rc == TD_ENOTFOUND) {
		rc = init_store(c, path, err, errlen);
		if (rc != 0)
			goto fail_store;
		c->height = 0;
		memset(c->last_hash, 0, sizeof(c->last_hash));
		c->last_time = g->time_ms;
		c->n_records = 0;
	} else if (rc != 0) {
		seterr(err, errlen, "%s: cannot read the store", path);
		goto fail_store;
	} else {
		rc = read_store(c, path, ver, vlen, err, errlen);
		free(ver);
		if (rc != 0)
			goto fail_store;
	}
	*out = c;
	return 0;

fail_store:
	store_close(c->st);
fail:
	free(c);
	return rc;
}

void chain_close(struct chain *c)
{
	if (!c)
		return;
	store_close(c->st);
	free(c);
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

bool chain_has_record(const struct chain *c, const uint8_t id[static TD_HASH_LEN], uint64_t *height)
{
	struct key k;
	uint8_t *v;
	size_t n;

	key_tag(&k, 'R');
	key_bytes(&k, id, TD_HASH_LEN);
	if (store_get(c->st, k.b, k.n, &v, &n) != 0)
		return false;
	if (n != 12) {
		free(v);
		return false;
	}
	if (height)
		*height = get_u64(v);
	free(v);
	return true;
}

/* ---- checking records ---------------------------------------------------- */

static const char *kind_verb(enum td_kind kind)
{
	switch (kind) {
	case TD_KIND_TENDER: return "publish";
	case TD_KIND_AMENDMENT: return "amend";
	case TD_KIND_CANCELLATION: return "cancel";
	case TD_KIND_AWARD: return "award";
	}
	return "change";
}

/*
 * The lifecycle rules of chain_check_record, seeing the block's earlier
 * records through ov (NULL: the committed ledger only).
 */
static int check_record(const struct chain *c, const struct overlay *ov, const struct td_record *rec, char *err,
			size_t errlen)
{
	const char *prefix = c->g->ocid_prefix;
	const struct pend *p;
	struct tstate st;
	struct key k;
	bool exists;
	int rc;

	if (strncmp(rec->ocid, prefix, strlen(prefix)) != 0) {
		seterr(err, errlen, "ocid \"%s\" does not start with the chain's prefix \"%s\"", rec->ocid, prefix);
		return TD_ERULE;
	}
	key_tag(&k, 'R');
	key_bytes(&k, rec->id, TD_HASH_LEN);
	if (overlay_has_id(ov, rec->id) || store_has(c->st, k.b, k.n)) {
		char hex[2 * TD_HASH_LEN + 1];
		td_hex(hex, rec->id, TD_HASH_LEN);
		seterr(err, errlen, "record %s is already on the ledger", hex);
		return TD_EEXIST;
	}

	p = overlay_find(ov, rec->ocid);
	if (p) {
		st = p->st;
		exists = true;
	} else {
		rc = tstate_load(c, rec->ocid, &st);
		if (rc != 0 && rc != TD_ENOTFOUND) {
			seterr(err, errlen, "tender %s: cannot read its state (%s)", rec->ocid, td_strerror(rc));
			return rc;
		}
		exists = rc == 0;
	}

	if (rec->kind == TD_KIND_TENDER) {
		if (exists) {
			seterr(err, errlen, "tender %s already exists", rec->ocid);
			return TD_EEXIST;
		}
	} else {
		if (!exists) {
			seterr(err, errlen, "tender %s does not exist: a %s needs a published tender", rec->ocid,
			       td_kind_name(rec->kind));
			return TD_ERULE;
		}
		if (memcmp(st.owner, rec->agency, TD_PUBKEY_LEN) != 0) {
			seterr(err, errlen, "only the agency that published tender %s may %s it", rec->ocid,
			       kind_verb(rec->kind));
			return TD_EPERM;
		}
		if (st.flags & FLAG_CANCELLED) {
			seterr(err, errlen, "tender %s is cancelled: no %s may follow", rec->ocid,
			       td_kind_name(rec->kind));
			return TD_ERULE;
		}
	}

	key_ocid(&k, 'U', rec->ocid);
	key_byte(&k, 0);
	key_str(&k, rec->release_id);
	if (overlay_has_pair(ov, rec->ocid, rec->release_id) || store_has(c->st, k.b, k.n)) {
		seterr(err, errlen, "release %s of tender %s already exists", rec->release_id, rec->ocid);
		return TD_EEXIST;
	}
	return 0;
}

int chain_check_record(const struct chain *c, const struct td_record *rec, char *err, size_t errlen)
{
	return check_record(c, NULL, rec, err, errlen);
}

/* ---- applying blocks ------------------------------------------------------- */

/* The pending state of rec's tender, loaded from the store on first use. */
static int pend_get(const struct chain *c, struct overlay *ov, const struct td_record *rec, uint64_t height,
		    uint32_t index, struct pend **out, char *err, size_t errlen)
{
	struct pend *p = overlay_find(ov, rec->ocid);
	struct tstate st;
	struct key k;
	json_t *compiled;
	int rc;

	if (p) {
		*out = p;
		return 0;
	}
	if (rec->kind == TD_KIND_TENDER) {
		p = overlay_add(ov, rec->ocid);
		memcpy(p->st.owner, rec->agency, TD_PUBKEY_LEN);
		p->st.first_height = height;
		p->st.first_index = index;
		p->compiled = json_object();
		p->is_new = true;
		*out = p;
		return 0;
	}
	rc = tstate_load(c, rec->ocid, &st);
	if (rc != 0) {
		seterr(err, errlen, "tender %s: cannot read its state (%s)", rec->ocid, td_strerror(rc));
		return rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
	}
	key_ocid(&k, 'K', rec->ocid);
	compiled = get_json(c, &k);
	if (!compiled) {
		seterr(err, errlen, "tender %s: cannot read its compiled release", rec->ocid);
		return TD_ECORRUPT;
	}
	p = overlay_add(ov, rec->ocid);
	p->st = st;
	p->compiled = compiled;
	*out = p;
	return 0;
}

/* Adds a record's keys to the batch and its effect to the overlay. */
static int stage_record(const struct chain *c, struct overlay *ov, struct store_batch *b, const struct td_record *rec,
			uint64_t height, uint32_t index, char *err, size_t errlen)
{
	struct pend *p;
	struct key k;
	uint8_t loc[12];
	int rc;

	rc = pend_get(c, ov, rec, height, index, &p, err, errlen);
	if (rc != 0)
		return rc;
	td_release_merge(p->compiled, rec->release);
	if (rec->kind == TD_KIND_CANCELLATION)
		p->st.flags |= FLAG_CANCELLED;
	tstate_status(&p->st, p->compiled);
	p->st.last_height = height;

	key_ocid(&k, 'E', rec->ocid);
	key_byte(&k, 0);
	key_u32(&k, p->st.n_releases);
	store_batch_put(b, k.b, k.n, rec->id, TD_HASH_LEN);
	p->st.n_releases++;

	key_ocid(&k, 'U', rec->ocid);
	key_byte(&k, 0);
	key_str(&k, rec->release_id);
	store_batch_put(b, k.b, k.n, rec->id, TD_HASH_LEN);

	key_tag(&k, 'R');
	key_bytes(&k, rec->id, TD_HASH_LEN);
	put_u64(loc, height);
	put_u32(loc + 8, index);
	store_batch_put(b, k.b, k.n, loc, sizeof(loc));

	ov->recs[ov->nrecs++] = rec;
	return 0;
}

/* Puts a json value as compact JSON text. */
static int put_json(struct store_batch *b, const struct key *k, const json_t *v)
{
	char *text = td_json_dump(v, JSON_COMPACT);

	if (!text)
		return TD_ENOMEM;
	store_batch_put(b, k->b, k->n, text, strlen(text));
	free(text);
	return 0;
}

/* Adds the state, compiled release, summary and list key of a touched tender. */
static int stage_tender(const struct chain *c, struct store_batch *b, const struct pend *p, char *err, size_t errlen)
{
	uint8_t tv[TSTATE_FIXED + STATUS_MAX];
	char name[2 * TD_PUBKEY_LEN + 1];
	size_t tl;
	struct key k;
	json_t *sum;
	int rc;

	key_ocid(&k, 'T', p->ocid);
	tstate_encode(&p->st, tv, &tl);
	store_batch_put(b, k.b, k.n, tv, tl);

	key_ocid(&k, 'K', p->ocid);
	rc = put_json(b, &k, p->compiled);
	if (rc != 0)
		goto fail;

	sum = td_release_summary(p->compiled);
	agency_name(c->g, p->st.owner, name);
	json_object_set_new(sum, "agency", hex_json(p->st.owner, TD_PUBKEY_LEN));
	json_object_set_new(sum, "agency_name", json_string(name));
	json_object_set_new(sum, "height", td_json_uint(p->st.first_height));
	json_object_set_new(sum, "releases", td_json_uint(p->st.n_releases));
	key_ocid(&k, 'Y', p->ocid);
	rc = put_json(b, &k, sum);
	json_decref(sum);
	if (rc != 0)
		goto fail;

	if (p->is_new) {
		key_list(&k, p->st.first_height, p->st.first_index);
		store_batch_put(b, k.b, k.n, p->ocid, strlen(p->ocid));
	}
	return 0;
fail:
	seterr(err, errlen, "tender %s: cannot serialize its state", p->ocid);
	return rc;
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
	if (td_genesis_find(c->g, h->proposer) < 0) {
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
	rc = td_commit_verify(commit, c->g, h->height, hash, e, sizeof(e));
	if (rc != 0) {
		seterr(err, errlen, "block %llu: %s", (unsigned long long)h->height, e);
		return rc;
	}
	return 0;
}

/* Checks blk (and commit, unless NULL) as chain_apply does; writes only when commit is given. */
static int apply(struct chain *c, const struct td_block *blk, const struct td_commit *commit, char *err, size_t errlen)
{
	const uint64_t height = blk->hdr.height;
	struct overlay ov = { 0 };
	struct store_batch *b = NULL;
	uint8_t *bytes = NULL, tip[TIP_LEN];
	size_t len;
	char e[TD_ERRMSG_MAX];
	struct key k;
	int rc;

	rc = check_block(c, blk, commit, err, errlen);
	if (rc != 0)
		return rc;

	b = store_batch_new();
	ov.recs = td_xcalloc(blk->hdr.n_records ? blk->hdr.n_records : 1, sizeof(*ov.recs));
	for (uint32_t i = 0; i < blk->hdr.n_records; i++) {
		const struct td_record *rec = blk->records[i];
		rc = check_record(c, &ov, rec, e, sizeof(e));
		if (rc == 0)
			rc = stage_record(c, &ov, b, rec, height, i, e, sizeof(e));
		if (rc != 0) {
			seterr(err, errlen, "block %llu: record %u: %s", (unsigned long long)height, i, e);
			goto out;
		}
	}
	for (size_t i = 0; i < ov.nt; i++) {
		rc = stage_tender(c, b, &ov.t[i], err, errlen);
		if (rc != 0)
			goto out;
	}

	if (!commit)
		goto out;
	td_block_encode(blk, &bytes, &len);
	if (len > TD_BLOCK_MAX) {
		seterr(err, errlen, "block %llu: %zu bytes, at most %u", (unsigned long long)height, len,
		       (unsigned)TD_BLOCK_MAX);
		rc = TD_EINVAL;
		goto out;
	}
	key_height(&k, 'B', height);
	store_batch_put(b, k.b, k.n, bytes, len);
	free(bytes);
	bytes = NULL;
	td_commit_encode(commit, &bytes, &len);
	key_height(&k, 'C', height);
	store_batch_put(b, k.b, k.n, bytes, len);

	tip_encode(height, blk->hash, blk->hdr.time_ms, c->n_records + blk->hdr.n_records, tip);
	store_batch_put(b, "M", 1, tip, sizeof(tip));

	rc = store_write(c->st, b, true, err, errlen);
	if (rc != 0)
		goto out;
	c->height = height;
	memcpy(c->last_hash, blk->hash, TD_HASH_LEN);
	c->last_time = blk->hdr.time_ms;
	c->n_records += blk->hdr.n_records;
out:
	free(bytes);
	store_batch_free(b);
	overlay_free(&ov);
	return rc;
}

int chain_apply(struct chain *c, const struct td_block *blk, const struct td_commit *commit, char *err, size_t errlen)
{
	if (!commit) {
		seterr(err, errlen, "block %llu: no commit", (unsigned long long)blk->hdr.height);
		return TD_ESIG;
	}
	return apply(c, blk, commit, err, errlen);
}

int chain_validate(const struct chain *c, const struct td_block *blk, char *err, size_t errlen)
{
	return apply((struct chain *)c, blk, NULL, err, errlen);
}

/* ---- queries --------------------------------------------------------------- */

/* The stored block at a height, unpacked for picking records out of it. */
struct blkview {
	uint64_t height; /* 0: nothing loaded */
	uint8_t *buf;
	size_t len;
	msgpack_unpacked u;
};

static void blkview_clear(struct blkview *bv)
{
	if (bv->height) {
		msgpack_unpacked_destroy(&bv->u);
		free(bv->buf);
	}
	bv->height = 0;
	bv->buf = NULL;
}

/* Points *p at the bytes of record index in block height. */
static int blkview_record(const struct chain *c, struct blkview *bv, uint64_t height, uint32_t index, const uint8_t **p,
			  size_t *n)
{
	const msgpack_object *root, *recs, *item;
	struct key k;
	int rc;

	if (bv->height != height) {
		blkview_clear(bv);
		key_height(&k, 'B', height);
		rc = store_get(c->st, k.b, k.n, &bv->buf, &bv->len);
		if (rc != 0)
			return rc;
		msgpack_unpacked_init(&bv->u);
		if (td_unpack(&bv->u, bv->buf, bv->len) != 0) {
			msgpack_unpacked_destroy(&bv->u);
			free(bv->buf);
			bv->buf = NULL;
			return TD_ECORRUPT;
		}
		bv->height = height;
	}
	root = &bv->u.data;
	if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size != 2)
		return TD_ECORRUPT;
	recs = &root->via.array.ptr[1];
	if (recs->type != MSGPACK_OBJECT_ARRAY || index >= recs->via.array.size)
		return TD_ECORRUPT;
	item = &recs->via.array.ptr[index];
	if (item->type != MSGPACK_OBJECT_BIN)
		return TD_ECORRUPT;
	*p = (const uint8_t *)item->via.bin.ptr;
	*n = item->via.bin.size;
	return 0;
}

/* One release entry of chain_tender_json for the record with this id. */
static json_t *release_entry(const struct chain *c, struct blkview *bv, const uint8_t id[static TD_HASH_LEN])
{
	char e[TD_ERRMSG_MAX], name[2 * TD_PUBKEY_LEN + 1];
	struct td_record *rec = NULL;
	const uint8_t *p;
	uint8_t *loc;
	size_t n, ln;
	struct key k;
	uint64_t height;
	json_t *out;

	key_tag(&k, 'R');
	key_bytes(&k, id, TD_HASH_LEN);
	if (store_get(c->st, k.b, k.n, &loc, &ln) != 0)
		return NULL;
	if (ln != 12) {
		free(loc);
		return NULL;
	}
	height = get_u64(loc);
	if (blkview_record(c, bv, height, get_u32(loc + 8), &p, &n) != 0 ||
	    td_record_decode_trusted(&rec, p, n, c->g->chain_id, e, sizeof(e)) != 0 ||
	    memcmp(rec->id, id, TD_HASH_LEN) != 0) {
		free(loc);
		td_record_free(rec);
		return NULL;
	}
	free(loc);
	agency_name(c->g, rec->agency, name);
	out = json_object();
	json_object_set_new(out, "record_id", hex_json(rec->id, TD_HASH_LEN));
	json_object_set_new(out, "height", td_json_uint(height));
	json_object_set_new(out, "time", time_json(rec->time_ms));
	json_object_set_new(out, "agency", hex_json(rec->agency, TD_PUBKEY_LEN));
	json_object_set_new(out, "agency_name", json_string(name));
	json_object_set_new(out, "kind", json_string(td_kind_name(rec->kind)));
	json_object_set_new(out, "release", json_incref(rec->release));
	td_record_free(rec);
	return out;
}

json_t *chain_tender_json(const struct chain *c, const char *ocid)
{
	struct blkview bv = { 0 };
	struct store_iter *it;
	struct tstate st;
	struct key k;
	json_t *out, *compiled, *rels;
	const uint8_t *key, *val;
	size_t klen, vlen;

	if (!ocid || strlen(ocid) > TD_OCID_MAX || tstate_load(c, ocid, &st) != 0)
		return NULL;
	key_ocid(&k, 'K', ocid);
	compiled = get_json(c, &k);
	if (!compiled)
		return NULL;
	out = json_object();
	json_object_set_new(out, "ocid", json_string(ocid));
	json_object_set_new(out, "compiled", compiled);
	rels = json_array();
	json_object_set_new(out, "releases", rels);

	key_ocid(&k, 'E', ocid);
	key_byte(&k, 0);
	it = store_iter_new(c->st, k.b, k.n, false);
	while (store_iter_next(it, &key, &klen, &val, &vlen)) {
		json_t *entry = vlen == TD_HASH_LEN ? release_entry(c, &bv, val) : NULL;
		if (!entry)
			goto fail;
		json_array_append_new(rels, entry);
	}
	if (store_iter_error(it) != 0 || json_array_size(rels) != st.n_releases)
		goto fail;
	store_iter_free(it);
	blkview_clear(&bv);
	return out;
fail:
	store_iter_free(it);
	blkview_clear(&bv);
	json_decref(out);
	return NULL;
}

json_t *chain_list_json(const struct chain *c, uint32_t limit, const char *cursor)
{
	static const uint8_t prefix[2] = { 'L', 0 };
	uint8_t last[LIST_KEY_LEN];
	struct store_iter *it;
	const uint8_t *key, *val;
	size_t klen, vlen;
	json_t *out, *list;
	uint32_t got = 0;
	bool more = false;

	if (limit < 1 || limit > LIST_LIMIT_MAX)
		return NULL;
	it = store_iter_new(c->st, prefix, sizeof(prefix), true);
	if (cursor) {
		uint8_t ck[LIST_KEY_LEN];
		if (!td_unhex(ck, sizeof(ck), cursor, strlen(cursor)) || memcmp(ck, prefix, sizeof(prefix)) != 0) {
			store_iter_free(it);
			return NULL;
		}
		store_iter_seek(it, ck, sizeof(ck));
		/* the cursor is the last key already returned: skip it if still there */
		if (store_iter_next(it, &key, &klen, &val, &vlen) &&
		    !(klen == sizeof(ck) && memcmp(key, ck, sizeof(ck)) == 0))
			store_iter_seek(it, ck, sizeof(ck));
	}
	out = json_object();
	list = json_array();
	json_object_set_new(out, "tenders", list);
	while (store_iter_next(it, &key, &klen, &val, &vlen)) {
		if (got == limit) {
			more = true;
			break;
		}
		if (klen != LIST_KEY_LEN || vlen == 0 || vlen > TD_OCID_MAX)
			goto fail;
		struct key yk;
		key_tag(&yk, 'Y');
		key_bytes(&yk, val, vlen);
		json_t *sum = get_json(c, &yk);
		if (!sum)
			goto fail;
		json_array_append_new(list, sum);
		memcpy(last, key, LIST_KEY_LEN);
		got++;
	}
	if (store_iter_error(it) != 0)
		goto fail;
	if (more) {
		char hex[2 * LIST_KEY_LEN + 1];
		td_hex(hex, last, LIST_KEY_LEN);
		json_object_set_new(out, "next_cursor", json_string(hex));
	} else {
		json_object_set_new(out, "next_cursor", json_null());
	}
	store_iter_free(it);
	return out;
fail:
	store_iter_free(it);
	json_decref(out);
	return NULL;
}

json_t *chain_block_json(const struct chain *c, uint64_t height)
{
	char e[TD_ERRMSG_MAX], name[2 * TD_PUBKEY_LEN + 1];
	struct td_block *blk = NULL;
	struct td_commit cm = { 0 };
	uint8_t *bb = NULL, *cb = NULL;
	size_t bl, cl;
	json_t *out = NULL, *ids, *cj, *sigs;

	if (height == 0 || height > c->height)
		return NULL;
	if (chain_block_raw(c, height, &bb, &bl, &cb, &cl) != 0)
		return NULL;
	if (td_block_decode(&blk, bb, bl, c->g->chain_id, true, e, sizeof(e)) != 0)
		goto done;
	if (td_commit_decode(&cm, cb, cl, e, sizeof(e)) != 0)
		goto done;

	out = json_object();
	json_object_set_new(out, "height", td_json_uint(blk->hdr.height));
	json_object_set_new(out, "hash", hex_json(blk->hash, TD_HASH_LEN));
	json_object_set_new(out, "prev_hash", hex_json(blk->hdr.prev_hash, TD_HASH_LEN));
	json_object_set_new(out, "time", time_json(blk->hdr.time_ms));
	json_object_set_new(out, "proposer", hex_json(blk->hdr.proposer, TD_PUBKEY_LEN));
	agency_name(c->g, blk->hdr.proposer, name);
	json_object_set_new(out, "proposer_name", json_string(name));
	ids = json_array();
	for (uint32_t i = 0; i < blk->hdr.n_records; i++)
		json_array_append_new(ids, hex_json(blk->records[i]->id, TD_HASH_LEN));
	json_object_set_new(out, "records", ids);

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
	json_object_set_new(out, "commit", cj);
done:
	td_block_free(blk);
	td_commit_clear(&cm);
	free(bb);
	free(cb);
	return out;
}

int chain_block_raw(const struct chain *c, uint64_t height, uint8_t **blk, size_t *blen, uint8_t **commit, size_t *clen)
{
	struct key k;
	int rc;

	*blk = NULL;
	*commit = NULL;
	if (height == 0 || height > c->height)
		return TD_ENOTFOUND;
	key_height(&k, 'B', height);
	rc = store_get(c->st, k.b, k.n, blk, blen);
	if (rc != 0)
		return rc;
	key_height(&k, 'C', height);
	rc = store_get(c->st, k.b, k.n, commit, clen);
	if (rc != 0) {
		free(*blk);
		*blk = NULL;
		return rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
	}
	return 0;
}
