/*
 * The chain: applying committed blocks and answering queries from the store.
 *
 * Store layout (schema version 3). Integers in keys and values are big-endian
 * (u64: 8 bytes, u32: 4 bytes), so keys sort numerically; ocids, release
 * ids and code-list values hold no NUL byte (td_get_str and td_json_load
 * refuse it), so NUL ends them in keys.
 *
 *   "S"                          -> schema version (u32)
 *   "I"                          -> chain id (bytes)
 *   "M"                          -> tip: height u64 | last hash[32] |
 *                                   last time ms u64 | record count u64
 *   "B" height                   -> block header and record ids: header length
 *                                   u32 | td_header_encode bytes | the ids of
 *                                   its records in order, 32 bytes each
 *   "D" height index u32         -> record bytes, as signed (records are stored
 *                                   once, here; chain_block_raw puts a block's
 *                                   td_block_encode form back together)
 *   "C" height                   -> commit, as td_commit_encode
 *   "R" record id[32]            -> height u64 | index in block u32
 *   "T" ocid                     -> tender state: owner agency[32] | flags u8
 *                                   (1: cancelled) | first height u64 | first
 *                                   index u32 | releases u32 | last height u64 |
 *                                   first release date u64 | tender date u64 |
 *                                   four strings, each a length u8 and its
 *                                   bytes: tender.status, tender.
 *                                   mainProcurementCategory, tender.
 *                                   procurementMethod (each empty when absent
 *                                   or longer than FIELD_MAX) and the id of
 *                                   the latest release
 *   "E" ocid \0 seq u32          -> record id of the tender's seq-th release
 *   "U" ocid \0 release id       -> record id ((ocid, release id) uniqueness)
 *   "K" ocid                     -> compiled release (JSON text, exact numbers)
 *                                   of a tender with two or more releases; with
 *                                   one release it is compiled when read
 *   "Y" ocid                     -> summary for listings (JSON text):
 *                                   td_release_summary + agency, agency_name,
 *                                   height (first release), releases (count)
 *
 * List indexes; each maps to the ocid, and h i is the height u64 and index
 * u32 of the tender's first release:
 *   "L" \0 h i                   every tender
 *   "L" 'a' agency[32] h i       by publishing agency (never changes)
 *   "L" 's' status \0 h i        by compiled tender.status
 *   "L" 'c' category \0 h i      by compiled tender.mainProcurementCategory
 *   "L" 'm' method \0 h i        by compiled tender.procurementMethod
 *   "L" 'd' date u64 h i         by tender date
 *   "N" <an 'a', 's', 'c' or 'm' list key without "L" and h i> -> u64: how
 *                                   many tenders that index value holds
 * A tender with no (or an over-long) status, category or method has no key
 * in that index. Whenever a block changes a tender's compiled status,
 * category, method or date, the same batch deletes the old list key, puts
 * the new one and moves the "N" counts (old values from "T", new ones from
 * the compiled release after the block).
 *
 * Dates: the tender date is tender.tenderPeriod.startDate of the compiled
 * release if present, else the date of the tender's first release. A date
 * key is the instant in ms since the epoch in UTC (the zone offset applied,
 * so "2020-03-09T09:00:00+09:00" and "2020-03-09T00:00:00Z" are one key;
 * digits past the millisecond dropped) plus 2^63, so u64 order is time order
 * and the same as comparing the dates as ISO strings normalised to UTC.
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
 *
 * Invariants: chain_apply() is the only writer after chain_open(); a block
 * and everything derived from it (commit, record, release, tender, summary,
 * list keys and the tip) go into one LevelDB batch written with sync, and the
 * in-memory tip changes only after that write succeeded. So the store always
 * holds blocks 1..height with their commits, and "M" describes exactly them.
 *
 * While checking a block, the records already accepted from the same block
 * live in an overlay (struct overlay): the tenders touched so far (owner and
 * cancelled state for the checks; when applying, the "T" state and compiled
 * release being staged) and the accepted records for id and (ocid, release
 * id) uniqueness, each behind a hash index (SipHash under a random key per
 * chain, so crafted ocids cannot make lookups slow). Lookups go to the
 * overlay first, then to the store. The overlay lives for one call; the
 * chain keeps nothing that grows with the ledger. When applying, a tender's
 * state, compiled release, summary and list keys go into the batch right
 * after its last record in the block (found by a first pass over the
 * block's ocids), and its compiled tree is freed then, so a block of new
 * tenders does not hold every compiled release until the end.
 *
 * chain_validate() only checks: the block, then each record's lifecycle
 * rules with the overlay's owner and cancelled state (a record cancels its
 * tender if it is a cancellation or sets tender.status to "cancelled", which
 * is what tstate_fields makes of the compiled release), without compiling
 * releases or staging a batch. It remembers the hashes of the last MEMO_N
 * blocks it accepted with the tip (height, hash) it checked them against;
 * chain_apply() of such a block at that same tip still checks the block and
 * its commit (check_block) but not its records again, and stages them.
 * Since the store changes only with the tip, a block accepted at a tip
 * would pass the record checks again at that tip.
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
 * block, and at least one entry has it.
 *
 * Packages (chain_release_package_json, chain_record_package_json) carry the
 * releases as signed, except that a release whose tender object has no "id"
 * (amendments and cancellations may leave it out) gets the compiled
 * tender.id in the exported copy, as the OCDS release schema requires.
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
#include <sodium.h>

#include "tenderd/block.h"
#include "tenderd/codec.h"
#include "tenderd/isotime.h"
#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "tenderd/types.h"
#include "chain.h"
#include "store.h"

#define SCHEMA_VERSION 3u
#define TIP_LEN (8 + TD_HASH_LEN + 8 + 8)
#define TSTATE_FIXED (TD_PUBKEY_LEN + 1 + 8 + 4 + 4 + 8 + 8 + 8)
#define FIELD_MAX 32 /* longest status, category or method kept in "T" (code list values are short) */
#define TSTATE_MAX (TSTATE_FIXED + 3 * (1 + FIELD_MAX) + 1 + TD_ID_MAX)
#define KEY_MAX (2 + TD_OCID_MAX + 1 + TD_ID_MAX + 16)
#define LIST_LIMIT_MAX 1000
#define LIST_SCAN_MAX 10000 /* list index entries one chain_list_json call examines at most */
#define DATE_BIAS 0x8000000000000000ull
#define FLAG_CANCELLED 1u

#define MEMO_N 4 /* blocks remembered as checked (chain_validate) at a tip */

/* A block whose records passed the lifecycle checks at a tip. */
struct memo_entry {
	bool used;
	uint8_t block[TD_HASH_LEN]; /* the block's hash */
	uint64_t height;            /* the tip it was checked against */
	uint8_t tip[TD_HASH_LEN];
};

/* What chain_validate remembers; behind a pointer so a const chain can update it. */
struct memo {
	struct memo_entry e[MEMO_N];
	unsigned next; /* the entry to replace next */
};

struct chain {
	struct store *st;           /* owned */
	const struct td_genesis *g; /* borrowed */
	uint64_t height;
	uint8_t last_hash[TD_HASH_LEN];
	uint64_t last_time;
	uint64_t n_records;
	struct memo *memo;                             /* owned; fixed size */
	struct store_batch *batch;                     /* owned; reused by every chain_apply, so its
							  buffer is allocated once, not per block */
	uint8_t hkey[crypto_shorthash_KEYBYTES];        /* random key of the overlay's hash indexes */
};

/* A tender's bookkeeping, as in "T". */
struct tstate {
	uint8_t owner[TD_PUBKEY_LEN];
	uint8_t flags;
	uint64_t first_height;
	uint32_t first_index;
	uint32_t n_releases;
	uint64_t last_height;
	uint64_t first_date;              /* date key of the first release's date */
	uint64_t date;                    /* date key of the tender date (list index 'd') */
	char status[FIELD_MAX + 1];       /* compiled tender.status; "" if absent or too long */
	char category[FIELD_MAX + 1];     /* compiled tender.mainProcurementCategory, likewise */
	char method[FIELD_MAX + 1];       /* compiled tender.procurementMethod, likewise */
	char last_release[TD_ID_MAX + 1]; /* id of the latest release */
};

/*
 * A tender touched by the block being checked or applied: a committed one
 * (its "T" state loaded on first touch) or one the block publishes.
 */
struct pend {
	char ocid[TD_OCID_MAX + 1];
	uint8_t owner[TD_PUBKEY_LEN]; /* check state: the agency that published it */
	bool cancelled;               /* check state: cancelled, committed or by an earlier record */
	bool is_new;                  /* first published in this block */
	struct tstate st;             /* staging: after the block's records so far */
	struct tstate old;            /* staging: as committed (unset when is_new): the list keys to replace */
	json_t *compiled;             /* staging: owned; NULL until the tender's first staged record */
};

/* A change of one "N" count by the block. */
struct ndelta;

/*
 * An open-addressing hash index over entries kept in an array elsewhere:
 * a slot holds an entry's index + 1 (0: empty) and the entry's hash, so
 * growing never rehashes keys. Kept at most half full.
 */
struct hslot {
	uint32_t idx1;
	uint32_t h;
};

struct htab {
	struct hslot *s;
	uint32_t mask; /* slots - 1; slots a power of two */
	uint32_t n;
};

struct overlay {
	const uint8_t *hkey; /* the chain's hash key (crypto_shorthash_KEYBYTES) */
	struct pend *t;
	size_t nt, cap;
	struct htab t_ix;              /* t by ocid */
	const struct td_record **recs; /* accepted records of the block (when checking), borrowed */
	size_t nrecs;
	struct htab id_ix;   /* recs by record id */
	struct htab pair_ix; /* recs by (ocid, release id) */
	struct ndelta *nd;   /* "N" count changes, one per key */
	size_t nnd, ndcap;
	struct htab nd_ix;                      /* nd by key */
	struct td_record *const *block_recs; /* the block's records, borrowed (for last_touch) */
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

/* The list indexes (see the file comment). */
enum lix {
	LIX_ALL,
	LIX_AGENCY,
	LIX_STATUS,
	LIX_CATEGORY,
	LIX_METHOD,
	LIX_DATE,
};
#define LIX_COUNT 6

struct ndelta {
	struct key k;
	int64_t d;
};

/*
 * The start of every key of index x with value v (the agency key, a
 * NUL-ended string, or NULL for LIX_ALL and LIX_DATE): "L", the index tag and
 * the value; the ordered part follows.
 */
static void lix_prefix(struct key *k, enum lix x, const void *v)
{
	key_tag(k, 'L');
	switch (x) {
	case LIX_ALL: key_byte(k, 0); break;
	case LIX_AGENCY:
		key_byte(k, 'a');
		key_bytes(k, v, TD_PUBKEY_LEN);
		break;
	case LIX_STATUS:
	case LIX_CATEGORY:
	case LIX_METHOD:
		key_byte(k, x == LIX_STATUS ? 's' : x == LIX_CATEGORY ? 'c' : 'm');
		key_str(k, v);
		key_byte(k, 0);
		break;
	case LIX_DATE: key_byte(k, 'd'); break;
	}
}

/* Bytes of a key of index x after its prefix. */
static size_t lix_tail(enum lix x)
{
	return x == LIX_DATE ? 8 + 8 + 4 : 8 + 4;
}

/* Index x's value for tender t (NULL for LIX_ALL and LIX_DATE). */
static const void *lix_value(enum lix x, const struct tstate *t)
{
	switch (x) {
	case LIX_ALL: return NULL;
	case LIX_AGENCY: return t->owner;
	case LIX_STATUS: return t->status;
	case LIX_CATEGORY: return t->category;
	case LIX_METHOD: return t->method;
	case LIX_DATE: return NULL;
	}
	return NULL;
}

/* True if tender t has a key in index x (a string index skips an empty value). */
static bool lix_has(enum lix x, const struct tstate *t)
{
	switch (x) {
	case LIX_ALL:
	case LIX_AGENCY:
	case LIX_DATE: return true;
	case LIX_STATUS:
	case LIX_CATEGORY:
	case LIX_METHOD: return *(const char *)lix_value(x, t) != '\0';
	}
	return false;
}

/* The key of tender t in index x. */
static void lix_key(struct key *k, enum lix x, const struct tstate *t)
{
	lix_prefix(k, x, lix_value(x, t));
	if (x == LIX_DATE)
		key_u64(k, t->date);
	key_u64(k, t->first_height);
	key_u32(k, t->first_index);
}

/* True if index x keeps an "N" count per value. */
static bool lix_counted(enum lix x)
{
	return x != LIX_ALL && x != LIX_DATE;
}

/* The "N" count key of value v in index x (lix_counted). */
static void lix_count_key(struct key *k, enum lix x, const void *v)
{
	lix_prefix(k, x, v);
	k->b[0] = 'N';
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

static uint8_t *put_field(uint8_t *p, const char *s)
{
	size_t n = strlen(s);

	*p++ = (uint8_t)n;
	memcpy(p, s, n);
	return p + n;
}

static void tstate_encode(const struct tstate *t, uint8_t out[static TSTATE_MAX], size_t *len)
{
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
	put_u64(p, t->first_date);
	p += 8;
	put_u64(p, t->date);
	p += 8;
	p = put_field(p, t->status);
	p = put_field(p, t->category);
	p = put_field(p, t->method);
	p = put_field(p, t->last_release);
	*len = (size_t)(p - out);
}

/* Reads a length-prefixed string of at most max bytes into out (max + 1 bytes); false if malformed. */
static bool get_field(const uint8_t **p, const uint8_t *end, char *out, size_t max)
{
	size_t n;

	if (*p >= end)
		return false;
	n = **p;
	if (n > max || (size_t)(end - *p - 1) < n || memchr(*p + 1, 0, n))
		return false;
	memcpy(out, *p + 1, n);
	out[n] = '\0';
	*p += 1 + n;
	return true;
}

static bool tstate_decode(struct tstate *t, const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;

	if (len < TSTATE_FIXED)
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
	t->first_date = get_u64(p);
	p += 8;
	t->date = get_u64(p);
	p += 8;
	return get_field(&p, end, t->status, FIELD_MAX) && get_field(&p, end, t->category, FIELD_MAX) &&
	       get_field(&p, end, t->method, FIELD_MAX) && get_field(&p, end, t->last_release, TD_ID_MAX) && p == end;
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

/*
 * The date key (file comment) of an ISO 8601 date-time with seconds and a
 * zone (td_iso_parse) into *out; false if s[0..len) is not one.
 */
static bool date_key(const char *s, size_t len, uint64_t *out)
{
	int64_t ms;

	if (!td_iso_parse(s, len, &ms))
		return false;
	*out = (uint64_t)ms + DATE_BIAS;
	return true;
}

/*
 * The date key of a since/until filter: a date-time as date_key, or a bare
 * date YYYY-MM-DD taken as its first (end false) or last (end true)
 * millisecond in UTC. False if s is neither.
 */
static bool filter_date(const char *s, bool end, uint64_t *out)
{
	char buf[32];
	size_t n = strlen(s);

	if (n == 10) {
		snprintf(buf, sizeof(buf), "%.10sT%s", s, end ? "23:59:59.999Z" : "00:00:00Z");
		return date_key(buf, strlen(buf), out);
	}
	return date_key(s, n, out);
}

/* Copies a code list value into out (FIELD_MAX + 1 bytes); "" if v is not a string or too long. */
static void copy_field(char *out, const json_t *v)
{
	out[0] = '\0';
	if (td_json_is_string(v) && json_string_length(v) <= FIELD_MAX)
		snprintf(out, FIELD_MAX + 1, "%s", json_string_value(v));
}

/*
 * Takes the indexed fields of the compiled release into t: status (and the
 * cancelled flag), category, method and the tender date (t->first_date if
 * the compiled release has no tenderPeriod.startDate).
 */
static void tstate_fields(struct tstate *t, const json_t *compiled)
{
	const json_t *tender = json_object_get(compiled, "tender");
	const json_t *start = json_object_get(json_object_get(tender, "tenderPeriod"), "startDate");

	copy_field(t->status, json_object_get(tender, "status"));
	copy_field(t->category, json_object_get(tender, "mainProcurementCategory"));
	copy_field(t->method, json_object_get(tender, "procurementMethod"));
	if (strcmp(t->status, "cancelled") == 0)
		t->flags |= FLAG_CANCELLED;
	if (!td_json_is_string(start) || !date_key(json_string_value(start), json_string_length(start), &t->date))
		t->date = t->first_date;
}

/* ---- overlay --------------------------------------------------------------- */

static uint32_t ov_hash(const struct overlay *ov, const void *p, size_t n)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint32_t h = 0;

	crypto_shorthash(out, p, n, ov->hkey);
	for (int i = 0; i < 4; i++)
		h = h << 8 | out[i];
	return h;
}

static void htab_init(struct htab *t, size_t want)
{
	size_t slots = 16;

	while (slots < 2 * want)
		slots *= 2;
	t->s = td_xcalloc(slots, sizeof(*t->s));
	t->mask = (uint32_t)(slots - 1);
	t->n = 0;
}

static void htab_free(struct htab *t)
{
	free(t->s);
	memset(t, 0, sizeof(*t));
}

/* Compares entry idx of the overlay with a key. */
typedef bool (*htab_eq)(const struct overlay *ov, uint32_t idx, const void *key);

/* The slot of the entry whose key equals key (idx1 != 0), or the empty slot where it belongs. */
static struct hslot *htab_find(const struct htab *t, uint32_t h, htab_eq eq, const struct overlay *ov, const void *key)
{
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		struct hslot *s = &t->s[i];
		if (s->idx1 == 0 || (s->h == h && eq(ov, s->idx1 - 1, key)))
			return s;
	}
}

/* Fills the empty slot at (from htab_find, no insert since) with entry idx; grows past half full. */
static void htab_put(struct htab *t, struct hslot *at, uint32_t h, uint32_t idx)
{
	struct hslot *old = t->s;
	const uint32_t nold = t->mask + 1;

	at->idx1 = idx + 1;
	at->h = h;
	if (++t->n * 2 <= nold)
		return;
	if (nold > UINT32_MAX / 2)
		abort(); /* blocks hold at most TD_BLOCK_RECORDS_MAX records */
	t->s = td_xcalloc((size_t)nold * 2, sizeof(*t->s));
	t->mask = nold * 2 - 1;
	for (uint32_t i = 0; i < nold; i++) {
		uint32_t j;
		if (old[i].idx1 == 0)
			continue;
		for (j = old[i].h & t->mask; t->s[j].idx1 != 0; j = (j + 1) & t->mask)
			;
		t->s[j] = old[i];
	}
	free(old);
}

/* An empty overlay for a block of n records; checking: with the indexes of accepted records. */
static void overlay_init(struct overlay *ov, const struct chain *c, size_t n, bool checking)
{
	memset(ov, 0, sizeof(*ov));
	ov->hkey = c->hkey;
	ov->cap = n ? n : 1;
	ov->t = td_xmalloc(ov->cap * sizeof(*ov->t));
	htab_init(&ov->t_ix, n);
	htab_init(&ov->nd_ix, 16);
	if (checking) {
		ov->recs = td_xcalloc(n ? n : 1, sizeof(*ov->recs));
		htab_init(&ov->id_ix, n);
		htab_init(&ov->pair_ix, n);
	}
}

static void overlay_free(struct overlay *ov)
{
	for (size_t i = 0; i < ov->nt; i++)
		json_decref(ov->t[i].compiled);
	free(ov->t);
	free(ov->recs);
	free(ov->nd);
	htab_free(&ov->t_ix);
	htab_free(&ov->id_ix);
	htab_free(&ov->pair_ix);
	htab_free(&ov->nd_ix);
	memset(ov, 0, sizeof(*ov));
}

static bool eq_ocid(const struct overlay *ov, uint32_t idx, const void *key)
{
	return strcmp(ov->t[idx].ocid, key) == 0;
}

static struct pend *overlay_find(const struct overlay *ov, const char *ocid)
{
	const struct hslot *s = htab_find(&ov->t_ix, ov_hash(ov, ocid, strlen(ocid)), eq_ocid, ov, ocid);

	return s->idx1 ? &ov->t[s->idx1 - 1] : NULL;
}

/* A new entry for ocid (not in the overlay yet), zeroed; the pointer lives until the next add. */
static struct pend *overlay_add(struct overlay *ov, const char *ocid)
{
	const uint32_t h = ov_hash(ov, ocid, strlen(ocid));
	struct hslot *s = htab_find(&ov->t_ix, h, eq_ocid, ov, ocid);
	struct pend *p;

	if (s->idx1)
		abort(); /* callers look first */
	if (ov->nt == ov->cap) {
		ov->cap *= 2;
		ov->t = td_xrealloc(ov->t, ov->cap * sizeof(*ov->t));
	}
	p = &ov->t[ov->nt];
	memset(p, 0, sizeof(*p));
	snprintf(p->ocid, sizeof(p->ocid), "%s", ocid);
	htab_put(&ov->t_ix, s, h, (uint32_t)ov->nt);
	ov->nt++;
	return p;
}

static bool eq_nd(const struct overlay *ov, uint32_t idx, const void *key)
{
	const struct key *k = key;

	return ov->nd[idx].k.n == k->n && memcmp(ov->nd[idx].k.b, k->b, k->n) == 0;
}

/* Adds d to the "N" count of tender t's value in index x (a counted one). */
static void overlay_count(struct overlay *ov, enum lix x, const struct tstate *t, int64_t d)
{
	struct key k;
	uint32_t h;
	struct hslot *s;

	lix_count_key(&k, x, lix_value(x, t));
	h = ov_hash(ov, k.b, k.n);
	s = htab_find(&ov->nd_ix, h, eq_nd, ov, &k);
	if (s->idx1) {
		ov->nd[s->idx1 - 1].d += d;
		return;
	}
	if (ov->nnd == ov->ndcap) {
		ov->ndcap = ov->ndcap ? 2 * ov->ndcap : 8;
		ov->nd = td_xrealloc(ov->nd, ov->ndcap * sizeof(*ov->nd));
	}
	ov->nd[ov->nnd].k = k;
	ov->nd[ov->nnd].d = d;
	htab_put(&ov->nd_ix, s, h, (uint32_t)ov->nnd);
	ov->nnd++;
}

static bool eq_id(const struct overlay *ov, uint32_t idx, const void *key)
{
	return memcmp(ov->recs[idx]->id, key, TD_HASH_LEN) == 0;
}

/* An (ocid, release id) pair as a key. */
struct pair {
	const char *ocid;
	const char *release_id;
};

static bool eq_pair(const struct overlay *ov, uint32_t idx, const void *key)
{
	const struct pair *k = key;

	return strcmp(ov->recs[idx]->ocid, k->ocid) == 0 && strcmp(ov->recs[idx]->release_id, k->release_id) == 0;
}

/* The hash of a pair: of the ocid, a NUL and the release id (each at most TD_ID_MAX bytes). */
static uint32_t pair_hash(const struct overlay *ov, const struct pair *k)
{
	char buf[TD_OCID_MAX + 1 + TD_ID_MAX + 1];
	size_t a = strnlen(k->ocid, TD_OCID_MAX), b = strnlen(k->release_id, TD_ID_MAX);

	memcpy(buf, k->ocid, a);
	buf[a] = '\0';
	memcpy(buf + a + 1, k->release_id, b);
	return ov_hash(ov, buf, a + 1 + b);
}

static bool overlay_has_id(const struct overlay *ov, const uint8_t id[static TD_HASH_LEN])
{
	if (!ov || !ov->recs)
		return false;
	return htab_find(&ov->id_ix, ov_hash(ov, id, TD_HASH_LEN), eq_id, ov, id)->idx1 != 0;
}

static bool overlay_has_pair(const struct overlay *ov, const char *ocid, const char *release_id)
{
	const struct pair k = { ocid, release_id };

	if (!ov || !ov->recs)
		return false;
	return htab_find(&ov->pair_ix, pair_hash(ov, &k), eq_pair, ov, &k)->idx1 != 0;
}

static bool eq_rec_ocid(const struct overlay *ov, uint32_t idx, const void *key)
{
	return strcmp(ov->block_recs[idx]->ocid, key) == 0;
}

/*
 * For each of the n records of a block, true in last[i] if no later record
 * of the block has the same ocid (so its tender can be staged after it).
 */
static void last_touch(struct overlay *ov, struct td_record *const *recs, uint32_t n, bool *last)
{
	struct htab ix;
	uint32_t *latest = td_xcalloc(n ? n : 1, sizeof(*latest)); /* by first record of an ocid: its last */

	htab_init(&ix, n);
	ov->block_recs = recs;
	for (uint32_t i = 0; i < n; i++) {
		const char *ocid = recs[i]->ocid;
		const uint32_t h = ov_hash(ov, ocid, strlen(ocid));
		struct hslot *s = htab_find(&ix, h, eq_rec_ocid, ov, ocid);
		uint32_t first;
		if (s->idx1 == 0) {
			first = i;
			htab_put(&ix, s, h, i);
		} else {
			first = s->idx1 - 1;
			last[latest[first]] = false;
		}
		latest[first] = i;
		last[i] = true;
	}
	htab_free(&ix);
	free(latest);
}

/* Adds an accepted record to the id and pair indexes (a checking overlay). */
static void overlay_accept(struct overlay *ov, const struct td_record *rec)
{
	const struct pair k = { rec->ocid, rec->release_id };
	const uint32_t hi = ov_hash(ov, rec->id, TD_HASH_LEN), hp = pair_hash(ov, &k);
	const uint32_t idx = (uint32_t)ov->nrecs;
	struct hslot *s;

	ov->recs[ov->nrecs++] = rec;
	s = htab_find(&ov->id_ix, hi, eq_id, ov, rec->id);
	if (s->idx1 == 0)
		htab_put(&ov->id_ix, s, hi, idx);
	s = htab_find(&ov->pair_ix, hp, eq_pair, ov, &k);
	if (s->idx1 == 0)
		htab_put(&ov->pair_ix, s, hp, idx);
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
	if (sodium_init() < 0) {
		seterr(err, errlen, "libsodium failed to initialise");
		rc = TD_EIO;
		goto fail;
	}
	randombytes_buf(c->hkey, sizeof(c->hkey));
	c->memo = td_xcalloc(1, sizeof(*c->memo));
	c->batch = store_batch_new();
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
	store_batch_free(c->batch);
	free(c->memo);
	free(c);
	return rc;
}

void chain_close(struct chain *c)
{
	if (!c)
		return;
	store_close(c->st);
	store_batch_free(c->batch);
	free(c->memo);
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
 * "A release references the release it amends": every tender.amendments
 * entry of an amendment that has amendsReleaseID names a release of the same
 * ocid, committed or accepted earlier in the block (ov), and at least one
 * entry has it.
 */
static int check_amends(const struct chain *c, const struct overlay *ov, const struct td_record *rec, char *err,
			size_t errlen)
{
	const json_t *list = json_object_get(json_object_get(rec->release, "tender"), "amendments");
	const json_t *e;
	size_t i, refs = 0;
	struct key k;

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
		key_ocid(&k, 'U', rec->ocid);
		key_byte(&k, 0);
		key_str(&k, id);
		if (!overlay_has_pair(ov, rec->ocid, id) && !store_has(c->st, k.b, k.n)) {
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
static int pend_lookup(const struct chain *c, struct overlay *ov, const char *ocid, struct pend **out, char *err,
		       size_t errlen)
{
	struct pend *p = overlay_find(ov, ocid);
	struct tstate st;
	int rc;

	*out = p;
	if (p)
		return 0;
	rc = tstate_load(c, ocid, &st);
	if (rc == TD_ENOTFOUND)
		return 0;
	if (rc != 0) {
		seterr(err, errlen, "tender %s: cannot read its state (%s)", ocid, td_strerror(rc));
		return rc;
	}
	p = overlay_add(ov, ocid);
	memcpy(p->owner, st.owner, TD_PUBKEY_LEN);
	p->cancelled = (st.flags & FLAG_CANCELLED) != 0;
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
static int check_record(const struct chain *c, struct overlay *ov, const struct td_record *rec, struct pend **found,
			char *err, size_t errlen)
{
	const char *prefix = c->g->ocid_prefix;
	const uint8_t *owner = NULL;
	struct pend *p = NULL;
	struct tstate st;
	struct key k;
	bool exists, cancelled = false;
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

	if (ov) {
		rc = pend_lookup(c, ov, rec->ocid, &p, err, errlen);
		if (rc != 0)
			return rc;
		*found = p;
		exists = p != NULL;
		if (p) {
			owner = p->owner;
			cancelled = p->cancelled;
		}
	} else {
		rc = tstate_load(c, rec->ocid, &st);
		if (rc != 0 && rc != TD_ENOTFOUND) {
			seterr(err, errlen, "tender %s: cannot read its state (%s)", rec->ocid, td_strerror(rc));
			return rc;
		}
		exists = rc == 0;
		owner = st.owner;
		cancelled = exists && (st.flags & FLAG_CANCELLED);
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
	}

	key_ocid(&k, 'U', rec->ocid);
	key_byte(&k, 0);
	key_str(&k, rec->release_id);
	if (overlay_has_pair(ov, rec->ocid, rec->release_id) || store_has(c->st, k.b, k.n)) {
		seterr(err, errlen, "release %s of tender %s already exists", rec->release_id, rec->ocid);
		return TD_EEXIST;
	}
	if (rec->kind == TD_KIND_AMENDMENT)
		return check_amends(c, ov, rec, err, errlen);
	return 0;
}

int chain_check_record(const struct chain *c, const struct td_record *rec, char *err, size_t errlen)
{
	return check_record(c, NULL, rec, NULL, err, errlen);
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

	return td_json_is_string(s) && json_string_length(s) <= FIELD_MAX &&
	       strcmp(json_string_value(s), "cancelled") == 0;
}

/*
 * Notes an accepted record in the overlay: creates the entry of a tender it
 * publishes (p NULL), marks a cancellation and, when checking, indexes its id
 * and (ocid, release id). Returns the tender's entry in *out, or TD_ECORRUPT
 * for a change to a tender that does not exist (checked blocks never have one).
 */
static int note_record(struct overlay *ov, const struct td_record *rec, struct pend *p, uint64_t height,
		       uint32_t index, struct pend **out, char *err, size_t errlen)
{
	if (!p) {
		const json_t *date = json_object_get(rec->release, "date");
		if (rec->kind != TD_KIND_TENDER) {
			seterr(err, errlen, "tender %s: no state for a %s", rec->ocid, td_kind_name(rec->kind));
			return TD_ECORRUPT;
		}
		p = overlay_add(ov, rec->ocid);
		memcpy(p->owner, rec->agency, TD_PUBKEY_LEN);
		memcpy(p->st.owner, rec->agency, TD_PUBKEY_LEN);
		p->st.first_height = height;
		p->st.first_index = index;
		if (!td_json_is_string(date) ||
		    !date_key(json_string_value(date), json_string_length(date), &p->st.first_date))
			p->st.first_date = rec->time_ms + DATE_BIAS;
		p->is_new = true;
	}
	if (rec->kind == TD_KIND_CANCELLATION || release_cancels(rec->release))
		p->cancelled = true;
	if (ov->recs)
		overlay_accept(ov, rec);
	*out = p;
	return 0;
}

static json_t *compiled_load(const struct chain *c, const char *ocid, const struct tstate *st);

/* Adds a record's keys to the batch and its effect to its tender's entry p. */
static int stage_record(const struct chain *c, struct store_batch *b, struct pend *p, const struct td_record *rec,
			uint64_t height, uint32_t index, char *err, size_t errlen)
{
	struct key k;
	uint8_t loc[12];

	if (!p->compiled) {
		if (p->is_new) {
			p->compiled = json_object();
		} else {
			p->compiled = compiled_load(c, rec->ocid, &p->old);
			if (!p->compiled) {
				seterr(err, errlen, "tender %s: cannot read its compiled release", rec->ocid);
				return TD_ECORRUPT;
			}
		}
	}
	td_release_merge(p->compiled, rec->release);
	if (rec->kind == TD_KIND_CANCELLATION)
		p->st.flags |= FLAG_CANCELLED;
	tstate_fields(&p->st, p->compiled);
	p->st.last_height = height;
	snprintf(p->st.last_release, sizeof(p->st.last_release), "%s", rec->release_id);

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
	return 0;
}

static void key_record(struct key *k, uint64_t height, uint32_t index)
{
	key_height(k, 'D', height);
	key_u32(k, index);
}

/* Puts "B" (header and record ids) and a "D" key per record. */
static void stage_block(struct store_batch *b, const struct td_block *blk)
{
	struct td_buf v;
	struct key k;
	uint8_t hl[4];

	td_buf_init(&v);
	td_enc_raw(&v, hl, sizeof(hl));
	td_header_encode(&v, &blk->hdr);
	put_u32((uint8_t *)v.sb.data, (uint32_t)(v.sb.size - sizeof(hl)));
	for (uint32_t i = 0; i < blk->hdr.n_records; i++) {
		td_enc_raw(&v, blk->records[i]->id, TD_HASH_LEN);
		key_record(&k, blk->hdr.height, i);
		store_batch_put(b, k.b, k.n, blk->records[i]->bytes, blk->records[i]->len);
	}
	key_height(&k, 'B', blk->hdr.height);
	store_batch_put(b, k.b, k.n, v.sb.data, v.sb.size);
	td_buf_free(&v);
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

/*
 * Puts the list keys of a touched tender that the block adds or changes and
 * deletes the ones it replaces, noting the "N" count changes in ov.
 */
static void stage_lists(struct overlay *ov, struct store_batch *b, const struct pend *p)
{
	for (int i = 0; i < LIX_COUNT; i++) {
		const enum lix x = (enum lix)i;
		const bool had = !p->is_new && lix_has(x, &p->old), has = lix_has(x, &p->st);
		struct key ko, kn;
		if (had)
			lix_key(&ko, x, &p->old);
		if (has)
			lix_key(&kn, x, &p->st);
		if (had && has && ko.n == kn.n && memcmp(ko.b, kn.b, ko.n) == 0)
			continue;
		if (had) {
			store_batch_delete(b, ko.b, ko.n);
			if (lix_counted(x))
				overlay_count(ov, x, &p->old, -1);
		}
		if (has) {
			store_batch_put(b, kn.b, kn.n, p->ocid, strlen(p->ocid));
			if (lix_counted(x))
				overlay_count(ov, x, &p->st, 1);
		}
	}
}

/* Puts the "N" counts changed by the block. */
static int stage_counts(const struct chain *c, const struct overlay *ov, struct store_batch *b, char *err,
			size_t errlen)
{
	for (size_t i = 0; i < ov->nnd; i++) {
		const struct ndelta *nd = &ov->nd[i];
		uint64_t n = 0;
		uint8_t *v, nb[8];
		size_t vl;
		int rc;
		if (nd->d == 0)
			continue;
		rc = store_get(c->st, nd->k.b, nd->k.n, &v, &vl);
		if (rc == 0) {
			n = vl == 8 ? get_u64(v) : UINT64_MAX;
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
			put_u64(nb, n);
			store_batch_put(b, nd->k.b, nd->k.n, nb, sizeof(nb));
		}
	}
	return 0;
}

/* Adds the state, compiled release, summary and list keys of a touched tender. */
static int stage_tender(const struct chain *c, struct overlay *ov, struct store_batch *b, const struct pend *p,
			char *err, size_t errlen)
{
	uint8_t tv[TSTATE_MAX];
	char name[2 * TD_PUBKEY_LEN + 1];
	size_t tl;
	struct key k;
	json_t *sum;
	int rc;

	key_ocid(&k, 'T', p->ocid);
	tstate_encode(&p->st, tv, &tl);
	store_batch_put(b, k.b, k.n, tv, tl);

	if (p->st.n_releases > 1) {
		key_ocid(&k, 'K', p->ocid);
		rc = put_json(b, &k, p->compiled);
		if (rc != 0)
			goto fail;
	}

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

	stage_lists(ov, b, p);
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

/* ---- remembered checks ----------------------------------------------------- */

/* True if the block with this hash passed every record check at the current tip. */
static bool memo_has(const struct chain *c, const uint8_t hash[static TD_HASH_LEN])
{
	for (unsigned i = 0; i < MEMO_N; i++) {
		const struct memo_entry *m = &c->memo->e[i];
		if (m->used && m->height == c->height && memcmp(m->tip, c->last_hash, TD_HASH_LEN) == 0 &&
		    memcmp(m->block, hash, TD_HASH_LEN) == 0)
			return true;
	}
	return false;
}

/* Remembers that the block with this hash passed every record check at the current tip. */
static void memo_add(const struct chain *c, const uint8_t hash[static TD_HASH_LEN])
{
	struct memo_entry *m = &c->memo->e[c->memo->next];

	c->memo->next = (c->memo->next + 1) % MEMO_N;
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
static int apply(const struct chain *c, const struct td_block *blk, const struct td_commit *commit, char *err,
		 size_t errlen)
{
	const uint64_t height = blk->hdr.height;
	const bool stage = commit != NULL;
	struct overlay ov;
	struct store_batch *b = NULL;
	uint8_t *bytes = NULL, tip[TIP_LEN];
	size_t len;
	char e[TD_ERRMSG_MAX];
	struct key k;
	bool checked, *last = NULL;
	int rc;

	rc = check_block(c, blk, commit, err, errlen);
	if (rc != 0)
		return rc;
	checked = memo_has(c, blk->hash);
	if (checked && !stage)
		return 0;

	overlay_init(&ov, c, blk->hdr.n_records, !checked);
	if (stage) {
		b = c->batch;
		store_batch_clear(b);
		last = td_xcalloc(blk->hdr.n_records ? blk->hdr.n_records : 1, sizeof(*last));
		last_touch(&ov, blk->records, blk->hdr.n_records, last);
	}
	for (uint32_t i = 0; i < blk->hdr.n_records; i++) {
		const struct td_record *rec = blk->records[i];
		struct pend *p = NULL;
		if (checked)
			rc = pend_lookup(c, &ov, rec->ocid, &p, e, sizeof(e));
		else
			rc = check_record(c, &ov, rec, &p, e, sizeof(e));
		if (rc == 0)
			rc = note_record(&ov, rec, p, height, i, &p, e, sizeof(e));
		if (rc == 0 && stage)
			rc = stage_record(c, b, p, rec, height, i, e, sizeof(e));
		if (rc != 0) {
			seterr(err, errlen, "block %llu: record %u: %s", (unsigned long long)height, i, e);
			goto out;
		}
		if (stage && last[i]) {
			/* the tender's last record in the block: its state is final */
			rc = stage_tender(c, &ov, b, p, err, errlen);
			if (rc != 0)
				goto out;
			json_decref(p->compiled);
			p->compiled = NULL;
		}
	}
	if (!stage) {
		memo_add(c, blk->hash);
		goto out;
	}
	rc = stage_counts(c, &ov, b, err, errlen);
	if (rc != 0)
		goto out;

	len = td_block_encoded_len(blk);
	if (len > TD_BLOCK_MAX) {
		seterr(err, errlen, "block %llu: %zu bytes, at most %u", (unsigned long long)height, len,
		       (unsigned)TD_BLOCK_MAX);
		rc = TD_EINVAL;
		goto out;
	}
	stage_block(b, blk);
	td_commit_encode(commit, &bytes, &len);
	key_height(&k, 'C', height);
	store_batch_put(b, k.b, k.n, bytes, len);

	tip_encode(height, blk->hash, blk->hdr.time_ms, c->n_records + blk->hdr.n_records, tip);
	store_batch_put(b, "M", 1, tip, sizeof(tip));

	rc = store_write(c->st, b, true, err, errlen);
out:
	free(bytes);
	free(last);
	if (b)
		store_batch_clear(b);
	overlay_free(&ov);
	return rc;
}

int chain_apply(struct chain *c, const struct td_block *blk, const struct td_commit *commit, char *err, size_t errlen)
{
	int rc;

	if (!commit) {
		seterr(err, errlen, "block %llu: no commit", (unsigned long long)blk->hdr.height);
		return TD_ESIG;
	}
	rc = apply(c, blk, commit, err, errlen);
	if (rc != 0)
		return rc;
	c->height = blk->hdr.height;
	memcpy(c->last_hash, blk->hash, TD_HASH_LEN);
	c->last_time = blk->hdr.time_ms;
	c->n_records += blk->hdr.n_records;
	return 0;
}

int chain_validate(const struct chain *c, const struct td_block *blk, char *err, size_t errlen)
{
	return apply(c, blk, NULL, err, errlen);
}

/* ---- queries --------------------------------------------------------------- */

/* Decodes the committed record at index in block height ("D") into *out. */
static int record_load(const struct chain *c, uint64_t height, uint32_t index, struct td_record **out)
{
	char e[TD_ERRMSG_MAX];
	uint8_t *p;
	size_t n;
	struct key k;
	int rc;

	*out = NULL;
	key_record(&k, height, index);
	rc = store_get(c->st, k.b, k.n, &p, &n);
	if (rc != 0)
		return rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
	if (td_record_decode_trusted(out, p, n, c->g->chain_id, e, sizeof(e)) != 0) {
		td_record_free(*out);
		*out = NULL;
		rc = TD_ECORRUPT;
	}
	free(p);
	return rc;
}

/* Decodes the committed record with this id into *out, its height in *height. */
static int record_at(const struct chain *c, const uint8_t id[static TD_HASH_LEN], struct td_record **out,
		     uint64_t *height)
{
	struct td_record *rec;
	uint8_t *loc;
	size_t ln;
	uint32_t index;
	struct key k;
	int rc;

	*out = NULL;
	key_tag(&k, 'R');
	key_bytes(&k, id, TD_HASH_LEN);
	rc = store_get(c->st, k.b, k.n, &loc, &ln);
	if (rc != 0)
		return rc;
	if (ln != 12) {
		free(loc);
		return TD_ECORRUPT;
	}
	*height = get_u64(loc);
	index = get_u32(loc + 8);
	free(loc);
	rc = record_load(c, *height, index, &rec);
	if (rc != 0)
		return rc;
	if (memcmp(rec->id, id, TD_HASH_LEN) != 0) {
		td_record_free(rec);
		return TD_ECORRUPT;
	}
	*out = rec;
	return 0;
}

/*
 * The compiled release of a committed tender whose state is st: from "K",
 * or compiled from its only release (at st's first height and index).
 * NULL on a read error.
 */
static json_t *compiled_load(const struct chain *c, const char *ocid, const struct tstate *st)
{
	struct td_record *rec;
	struct key k;
	json_t *out;

	if (st->n_releases > 1) {
		key_ocid(&k, 'K', ocid);
		return get_json(c, &k);
	}
	if (record_load(c, st->first_height, st->first_index, &rec) != 0)
		return NULL;
	if (strcmp(rec->ocid, ocid) != 0) {
		td_record_free(rec);
		return NULL;
	}
	out = json_object();
	td_release_merge(out, rec->release);
	td_record_free(rec);
	return out;
}

/* The fields of a release entry (chain_tender_json, chain_block_releases_json) for rec at height. */
static json_t *entry_json(const struct chain *c, const struct td_record *rec, uint64_t height)
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

/*
 * The releases of a committed tender in order: entries as in
 * chain_tender_json (entries true) or the bare releases. NULL on a read
 * error or if fewer than n releases are found.
 */
static json_t *tender_releases(const struct chain *c, const char *ocid, uint32_t n, bool entries)
{
	struct store_iter *it;
	struct key k;
	const uint8_t *key, *val;
	size_t klen, vlen;
	json_t *rels = json_array();

	key_ocid(&k, 'E', ocid);
	key_byte(&k, 0);
	it = store_iter_new(c->st, k.b, k.n, false);
	while (store_iter_next(it, &key, &klen, &val, &vlen)) {
		struct td_record *rec;
		uint64_t height;
		if (vlen != TD_HASH_LEN || record_at(c, val, &rec, &height) != 0)
			goto fail;
		json_array_append_new(rels, entries ? entry_json(c, rec, height) : json_incref(rec->release));
		td_record_free(rec);
	}
	if (store_iter_error(it) != 0 || json_array_size(rels) != n)
		goto fail;
	store_iter_free(it);
	return rels;
fail:
	store_iter_free(it);
	json_decref(rels);
	return NULL;
}

json_t *chain_tender_json(const struct chain *c, const char *ocid)
{
	struct tstate st;
	json_t *out, *compiled, *rels;

	if (!ocid || strlen(ocid) > TD_OCID_MAX || tstate_load(c, ocid, &st) != 0)
		return NULL;
	compiled = compiled_load(c, ocid, &st);
	if (!compiled)
		return NULL;
	rels = tender_releases(c, ocid, st.n_releases, true);
	if (!rels) {
		json_decref(compiled);
		return NULL;
	}
	out = json_object();
	json_object_set_new(out, "ocid", json_string(ocid));
	json_object_set_new(out, "compiled", compiled);
	json_object_set_new(out, "releases", rels);
	return out;
}

int chain_last_release_id(const struct chain *c, const char *ocid, char out[static TD_ID_MAX + 1])
{
	struct tstate st;
	int rc;

	if (!ocid || strlen(ocid) > TD_OCID_MAX)
		return TD_ENOTFOUND;
	rc = tstate_load(c, ocid, &st);
	if (rc != 0)
		return rc;
	snprintf(out, TD_ID_MAX + 1, "%s", st.last_release);
	return 0;
}

/* A filter ready for a walk over one list index. */
struct lquery {
	const void *eq[LIX_COUNT]; /* equality value per index, NULL where not filtered */
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
	q->eq[LIX_AGENCY] = f->agency;
	q->eq[LIX_STATUS] = f->status;
	q->eq[LIX_CATEGORY] = f->category;
	q->eq[LIX_METHOD] = f->method;
	for (int i = 0; i < LIX_COUNT; i++) {
		if (!q->eq[i])
			continue;
		q->n_eq++;
		/* a value "T" cannot hold matches no tender (and would not fit a key) */
		if (i != LIX_AGENCY && (strlen(q->eq[i]) > FIELD_MAX || *(const char *)q->eq[i] == '\0'))
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
static bool lquery_match(const struct lquery *q, const struct tstate *t)
{
	for (int i = 0; i < LIX_COUNT; i++) {
		const enum lix x = (enum lix)i;
		if (!q->eq[i])
			continue;
		if (x == LIX_AGENCY ? memcmp(t->owner, q->eq[i], TD_PUBKEY_LEN) != 0 :
				      strcmp(lix_value(x, t), q->eq[i]) != 0)
			return false;
	}
	return !(q->has_since && t->date < q->since) && !(q->has_until && t->date > q->until);
}

/* The "N" count of value v in index x; UINT64_MAX on a read error (never chosen). */
static uint64_t lix_count(const struct chain *c, enum lix x, const void *v)
{
	struct key k;
	uint8_t *val;
	size_t n;
	uint64_t r;
	int rc;

	lix_count_key(&k, x, v);
	rc = store_get(c->st, k.b, k.n, &val, &n);
	if (rc == TD_ENOTFOUND)
		return 0;
	if (rc != 0)
		return UINT64_MAX;
	r = n == 8 ? get_u64(val) : UINT64_MAX;
	free(val);
	return r;
}

/*
 * The index a query walks and its prefix in *pre: the one a cursor (ck, cl
 * bytes; NULL for none) names if it belongs to the query, else the smallest
 * equality index, the date index for a date range alone, or all tenders.
 * False if the cursor belongs to none of the query's indexes.
 */
static bool lquery_index(const struct chain *c, const struct lquery *q, const uint8_t *ck, size_t cl, enum lix *out,
			 struct key *pre)
{
	uint64_t best = UINT64_MAX;
	bool found = false;

	for (int i = 0; i < LIX_COUNT; i++) {
		const enum lix x = (enum lix)i;
		struct key k;
		if (!q->eq[i])
			continue;
		lix_prefix(&k, x, q->eq[i]);
		if (ck) {
			if (cl == k.n + lix_tail(x) && memcmp(ck, k.b, k.n) == 0) {
				*out = x;
				*pre = k;
				return true;
			}
			continue;
		}
		uint64_t n = lix_count(c, x, q->eq[i]);
		if (!found || n < best) {
			best = n;
			*out = x;
			*pre = k;
			found = true;
		}
	}
	if (q->n_eq > 0)
		return found;
	*out = q->has_since || q->has_until ? LIX_DATE : LIX_ALL;
	lix_prefix(pre, *out, NULL);
	return !ck || (cl == pre->n + lix_tail(*out) && memcmp(ck, pre->b, pre->n) == 0);
}

json_t *chain_list_json(const struct chain *c, const struct chain_filter *f, uint32_t limit, const char *cursor)
{
	uint8_t ck[KEY_MAX], last[KEY_MAX];
	size_t cl = 0, lastlen = 0;
	struct store_iter *it = NULL;
	struct lquery q;
	struct key pre, sk = { .n = 0 };
	enum lix x = LIX_ALL;
	const uint8_t *key, *val;
	size_t klen, vlen;
	json_t *out, *list;
	uint32_t got = 0, examined = 0;
	bool more = false, check;

	if (limit < 1 || limit > LIST_LIMIT_MAX || !lquery_init(&q, f))
		return NULL;
	if (cursor) {
		size_t hl = strlen(cursor);
		if (hl == 0 || hl % 2 != 0 || hl / 2 > sizeof(ck) || !td_unhex(ck, hl / 2, cursor, hl))
			return NULL;
		cl = hl / 2;
	}
	if (!q.none && !lquery_index(c, &q, cursor ? ck : NULL, cl, &x, &pre))
		return NULL;
	out = json_object();
	list = json_array();
	json_object_set_new(out, "tenders", list);
	if (q.none)
		goto done;
	/* a candidate needs its "T" state unless the index alone answers the query */
	check = q.n_eq > 1 || (q.n_eq == 1 && (q.has_since || q.has_until));

	it = store_iter_new(c->st, pre.b, pre.n, true);
	if (cursor) {
		sk.n = cl;
		memcpy(sk.b, ck, cl);
	}
	if (x == LIX_DATE && q.has_until) {
		/* start at the newest key dated until, or at the cursor if older */
		struct key k = pre;
		uint8_t ff[8 + 4];
		memset(ff, 0xff, sizeof(ff));
		key_u64(&k, q.until);
		key_bytes(&k, ff, sizeof(ff));
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
		struct tstate st;
		struct key yk;
		json_t *sum;
		if (got == limit || examined == LIST_SCAN_MAX) {
			more = true;
			break;
		}
		if (klen != pre.n + lix_tail(x) || vlen == 0 || vlen > TD_OCID_MAX || memchr(val, 0, vlen))
			goto fail;
		if (x == LIX_DATE && q.has_since && get_u64(key + pre.n) < q.since)
			break; /* descending: every later key is older still */
		examined++;
		memcpy(last, key, klen);
		lastlen = klen;
		memcpy(ocid, val, vlen);
		ocid[vlen] = '\0';
		if (check) {
			if (tstate_load(c, ocid, &st) != 0)
				goto fail;
			if (!lquery_match(&q, &st))
				continue;
		}
		key_ocid(&yk, 'Y', ocid);
		sum = get_json(c, &yk);
		if (!sum)
			goto fail;
		json_array_append_new(list, sum);
		got++;
	}
	if (store_iter_error(it) != 0)
		goto fail;
done:
	if (more) {
		char hex[2 * KEY_MAX + 1];
		td_hex(hex, last, lastlen);
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

/* Decodes the committed block at height (1..tip; records not re-verified). */
/* A block's "B" entry: header, hash and record ids, pointing into val (the caller frees it). */
struct blkmeta {
	uint8_t *val;
	const uint8_t *hdr, *ids;
	size_t hlen;
	struct td_block_header h;
	uint8_t hash[TD_HASH_LEN];
};

static int blkmeta_load(const struct chain *c, uint64_t height, struct blkmeta *m)
{
	struct key k;
	size_t len;
	int rc;

	key_height(&k, 'B', height);
	rc = store_get(c->st, k.b, k.n, &m->val, &len);
	if (rc != 0)
		return rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
	m->hlen = len >= 4 ? get_u32(m->val) : 0;
	m->hdr = m->val + 4;
	m->ids = m->hdr + m->hlen;
	if (len < 4 || m->hlen > len - 4 || td_header_decode(&m->h, m->hash, m->hdr, m->hlen) != 0 ||
	    m->h.height != height || (len - 4 - m->hlen) != (size_t)m->h.n_records * TD_HASH_LEN) {
		free(m->val);
		m->val = NULL;
		return TD_ECORRUPT;
	}
	return 0;
}

/* The committed block at height in td_block_encode's form, put together from "B" and "D". */
static int block_bytes(const struct chain *c, uint64_t height, uint8_t **out, size_t *len)
{
	struct blkmeta m = { 0 };
	struct store_iter *it;
	struct td_buf b;
	const uint8_t *key, *val;
	size_t klen, vlen;
	uint32_t n = 0;
	struct key k;
	int rc;

	*out = NULL;
	rc = blkmeta_load(c, height, &m);
	if (rc != 0)
		return rc;
	/* [header, [record bytes...]] */
	td_buf_init(&b);
	td_enc_array(&b, 2);
	td_enc_raw(&b, m.hdr, m.hlen);
	td_enc_array(&b, m.h.n_records);
	key_height(&k, 'D', height);
	it = store_iter_new(c->st, k.b, k.n, false);
	while (n < m.h.n_records && store_iter_next(it, &key, &klen, &val, &vlen)) {
		if (klen != k.n + 4 || get_u32(key + k.n) != n) {
			rc = TD_ECORRUPT;
			break;
		}
		td_enc_bin(&b, val, vlen);
		n++;
	}
	if (rc == 0 && store_iter_error(it) != 0)
		rc = store_iter_error(it);
	else if (rc == 0 && n != m.h.n_records)
		rc = TD_ECORRUPT;
	store_iter_free(it);
	free(m.val);
	if (rc == 0)
		*out = td_buf_take(&b, len);
	td_buf_free(&b);
	return rc;
}

static int load_block(const struct chain *c, uint64_t height, struct td_block **out)
{
	char e[TD_ERRMSG_MAX];
	uint8_t *buf;
	size_t len;
	int rc;

	*out = NULL;
	rc = block_bytes(c, height, &buf, &len);
	if (rc != 0)
		return rc;
	rc = td_block_decode(out, buf, len, c->g->chain_id, true, e, sizeof(e)) == 0 ? 0 : TD_ECORRUPT;
	free(buf);
	return rc;
}

json_t *chain_block_releases_json(const struct chain *c, uint64_t height)
{
	struct td_block *blk;
	json_t *out;

	if (height == 0 || height > c->height || load_block(c, height, &blk) != 0)
		return NULL;
	out = json_array();
	for (uint32_t i = 0; i < blk->hdr.n_records; i++) {
		const struct td_record *rec = blk->records[i];
		json_t *e = entry_json(c, rec, height);
		json_object_set_new(e, "index", td_json_uint(i));
		json_object_set_new(e, "block_records", td_json_uint(blk->hdr.n_records));
		json_object_set_new(e, "ocid", json_string(rec->ocid));
		json_object_set_new(e, "release_id", json_string(rec->release_id));
		json_array_append_new(out, e);
	}
	td_block_free(blk);
	return out;
}

/*
 * The head of a package over blocks *from..*to: the range clamped to the
 * chain (from 0 is 1, to past the tip is the tip); "publishedDate" is the
 * time of block *to in whole seconds UTC. NULL if the range is empty.
 */
static json_t *package_new(const struct chain *c, uint64_t *from, uint64_t *to, const char *publisher, const char *uri)
{
	struct td_block *blk;
	char iso[32], date[32], def[TD_CHAIN_ID_MAX + 80];
	json_t *out, *pub;

	if (*from == 0)
		*from = 1;
	if (*from > *to || *from > c->height)
		return NULL;
	if (*to > c->height)
		*to = c->height;
	if (load_block(c, *to, &blk) != 0)
		return NULL;
	td_time_iso(iso, blk->hdr.time_ms);
	td_block_free(blk);
	snprintf(date, sizeof(date), "%.19sZ", iso);
	if (!uri) {
		snprintf(def, sizeof(def), "tenderd://%s/export?from=%llu&to=%llu", c->g->chain_id,
			 (unsigned long long)*from, (unsigned long long)*to);
		uri = def;
	}
	out = json_object();
	json_object_set_new(out, "uri", json_string(uri));
	json_object_set_new(out, "version", json_string("1.1"));
	json_object_set_new(out, "publishedDate", json_string(date));
	pub = json_object();
	json_object_set_new(pub, "name", json_string(publisher ? publisher : c->g->chain_id));
	json_object_set_new(out, "publisher", pub);
	return out;
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

/* The compiled tender.id of ocid, remembered in cache (ocid -> id); NULL if there is none. */
static const json_t *tender_id_of(const struct chain *c, json_t *cache, const char *ocid)
{
	const json_t *id = json_object_get(cache, ocid);
	json_t *compiled = NULL;
	struct tstate st;

	if (id)
		return id;
	if (tstate_load(c, ocid, &st) == 0)
		compiled = compiled_load(c, ocid, &st);
	id = json_object_get(json_object_get(compiled, "tender"), "id");
	json_object_set(cache, ocid, td_json_is_string(id) ? (json_t *)id : json_null());
	json_decref(compiled);
	return json_object_get(cache, ocid);
}

json_t *chain_release_package_json(const struct chain *c, uint64_t from, uint64_t to, const char *publisher,
				   const char *uri)
{
	json_t *out = package_new(c, &from, &to, publisher, uri);
	json_t *rels, *ids;

	if (!out)
		return NULL;
	ids = json_object();
	rels = json_array();
	json_object_set_new(out, "releases", rels);
	for (uint64_t h = from; h <= to; h++) {
		struct td_block *blk;
		if (load_block(c, h, &blk) != 0) {
			json_decref(ids);
			json_decref(out);
			return NULL;
		}
		for (uint32_t i = 0; i < blk->hdr.n_records; i++) {
			const struct td_record *rec = blk->records[i];
			json_array_append_new(rels, export_release(rec->release, tender_id_of(c, ids, rec->ocid)));
		}
		td_block_free(blk);
	}
	json_decref(ids);
	return out;
}

json_t *chain_record_package_json(const struct chain *c, uint64_t from, uint64_t to, const char *publisher,
				  const char *uri)
{
	json_t *out = package_new(c, &from, &to, publisher, uri);
	json_t *seen, *ocids, *recs, *o;
	size_t i;

	if (!out)
		return NULL;
	/* the ocids with a release in the range, in order of their first one there */
	seen = json_object();
	ocids = json_array();
	for (uint64_t h = from; h <= to; h++) {
		struct td_block *blk;
		if (load_block(c, h, &blk) != 0)
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
	json_object_set_new(out, "records", recs);
	json_array_foreach(ocids, i, o) {
		const char *ocid = json_string_value(o);
		struct tstate st;
		json_t *r, *rels, *compiled;
		if (tstate_load(c, ocid, &st) != 0)
			goto fail;
		compiled = compiled_load(c, ocid, &st);
		rels = compiled ? tender_releases(c, ocid, st.n_releases, false) : NULL;
		if (!rels) {
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
	return out;
fail:
	json_decref(seen);
	json_decref(ocids);
	json_decref(out);
	return NULL;
}

json_t *chain_block_json(const struct chain *c, uint64_t height)
{
	char e[TD_ERRMSG_MAX], name[2 * TD_PUBKEY_LEN + 1];
	struct blkmeta m = { 0 };
	struct td_commit cm = { 0 };
	uint8_t *cb = NULL;
	size_t cl;
	struct key k;
	json_t *out = NULL, *ids, *cj, *sigs;

	if (height == 0 || height > c->height)
		return NULL;
	if (blkmeta_load(c, height, &m) != 0)
		return NULL;
	key_height(&k, 'C', height);
	if (store_get(c->st, k.b, k.n, &cb, &cl) != 0 || td_commit_decode(&cm, cb, cl, e, sizeof(e)) != 0)
		goto done;

	out = json_object();
	json_object_set_new(out, "height", td_json_uint(m.h.height));
	json_object_set_new(out, "hash", hex_json(m.hash, TD_HASH_LEN));
	json_object_set_new(out, "prev_hash", hex_json(m.h.prev_hash, TD_HASH_LEN));
	json_object_set_new(out, "time", time_json(m.h.time_ms));
	json_object_set_new(out, "proposer", hex_json(m.h.proposer, TD_PUBKEY_LEN));
	agency_name(c->g, m.h.proposer, name);
	json_object_set_new(out, "proposer_name", json_string(name));
	ids = json_array();
	for (uint32_t i = 0; i < m.h.n_records; i++)
		json_array_append_new(ids, hex_json(m.ids + (size_t)i * TD_HASH_LEN, TD_HASH_LEN));
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
	td_commit_clear(&cm);
	free(m.val);
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
	rc = block_bytes(c, height, blk, blen);
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
