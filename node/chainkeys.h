/*
 * chainkeys: the chain's store schema (version 8), its keys and the
 * encodings of its values. Every key the chain reads or writes is built
 * here; tests/test_chainkeys.c pins the bytes of each kind.
 *
 * Integers in keys and values are big-endian (u64: 8 bytes, u32: 4 bytes),
 * so keys sort numerically; ocids, release ids and code-list values hold no
 * NUL byte (td_get_str and td_json_load refuse it), so NUL ends them in keys.
 *
 *   "S"                          -> schema version (u32)
 *   "I"                          -> chain id (bytes)
 *   "G"                          -> genesis hash[32] (td_genesis_hash) of the
 *                                   genesis the store was built on; a store from
 *                                   before it gets it at its first open
 *   "M"                          -> tip: height u64 | last hash[32] |
 *                                   last time ms u64 | record count u64 |
 *                                   records file length u64 (what the
 *                                   blocks up to the tip fill of it)
 *   "B" height                   -> block header, record ids and evidence:
 *                                   header length u32 | td_header_encode bytes
 *                                   | the ids of its records in order, 32
 *                                   bytes each | for each evidence item, its
 *                                   length u16 and td_evidence_encode bytes
 *   "D" height index u32         -> offset u64 | length u32 of the record's
 *                                   bytes, as signed, in the store's records
 *                                   file (store.h): records are written once,
 *                                   there, a block's in order, and never pass
 *                                   through LevelDB's compactions;
 *                                   chain_block_raw puts a block's
 *                                   td_block_encode form back together
 *   "C" height                   -> commit, as td_commit_encode
 *   "R" record id[32]            -> height u64 | index in block u32
 *   "X" evidence key             -> height u64 of the block that committed the
 *                                   offence (td_evidence_key: one per offence)
 *   "V" height                   -> the indexes (u32 each) in block height of its
 *                                   governance records, in block order: what the
 *                                   registry (registry.h) replays at open
 *   "T" ocid                     -> tender state: owner agency[32] | flags u8
 *                                   (1: cancelled) | first height u64 | first
 *                                   index u32 | releases u32 | last height u64 |
 *                                   first release date u64 | tender date u64 |
 *                                   latest record id[32] | four strings, each a length u8 and its
 *                                   bytes: tender.status, tender.
 *                                   mainProcurementCategory, tender.
 *                                   procurementMethod (each empty when absent
 *                                   or longer than CKEY_FIELD_MAX) and the id
 *                                   of the latest release
 *   "E" ocid \0 seq u32          -> record id of the tender's seq-th release
 *   "U" ocid \0 release id       -> record id ((ocid, release id) uniqueness)
 *
 * A tender's compiled release (its releases merged in order) and its summary
 * for listings (td_release_summary of the compiled release, its agency and
 * counts) are built when read. Schemas 5 and 6 stored compiled releases of
 * tenders with two or more releases under "K" ocid, and schema 5 summaries
 * under "Y" ocid: opening such a store deletes them.
 *
 * List indexes, where h i is the height u64 and index u32 of the tender's
 * first release. The every-tender entry maps to the ocid; the others map to
 * nothing (schemas 5 to 7 wrote the ocid there too, which readers still
 * take), and a reader finds the ocid under "L" \0 h i:
 *   "L" \0 h i                   every tender
 *   "L" 'a' agency[32] h i       by publishing agency (never changes)
 *   "L" 's' status \0 h i        by compiled tender.status
 *   "L" 'c' category \0 h i      by compiled tender.mainProcurementCategory
 *   "L" 'm' method \0 h i        by compiled tender.procurementMethod
 *   "L" 'd' date u64 h i         by tender date
 *   "N" <an 'a', 's', 'c' or 'm' list key without "L" and h i> -> u64: how
 *                                   many tenders that index value holds
 * A tender with no (or an over-long) status, category or method has no key
 * in that index.
 *
 * Dates: a date key is the instant in ms since the epoch in UTC (the zone
 * offset applied, so "2020-03-09T09:00:00+09:00" and "2020-03-09T00:00:00Z"
 * are one key; digits past the millisecond dropped) plus 2^63, so u64 order
 * is time order and the same as comparing the dates as ISO strings
 * normalised to UTC.
 *
 * Nothing here touches the store: builders fill a struct ckey the caller
 * owns; encoders write into the caller's buffers.
 */
#ifndef TENDERD_CHAINKEYS_H
#define TENDERD_CHAINKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tenderd/block.h"
#include "tenderd/codec.h"
#include "tenderd/types.h"

/*
 * Version 8 leaves the ocid out of the list entries but the every-tender
 * one (opening a version 7 store only writes the new version: its entries
 * are read as they are). Version 7 builds compiled releases and summaries
 * when read; version 6 stored compiled releases under "K", version 5 also
 * summaries under "Y" (opening a version 5 or 6 store deletes them and makes
 * it version 8). Version 5 keeps record bytes in the store's records file;
 * version 4 held them under "D" (both format 2, TD_FORMAT_VERSION); version
 * 3 held format 1.
 */
#define CKEY_SCHEMA_VERSION 8u
#define CKEY_SCHEMA_UPGRADE 5u /* the oldest version opening upgrades */
#define CKEY_OLD_SUMMARY 'Y'    /* the prefix of the summaries it deletes */
#define CKEY_OLD_COMPILED 'K'   /* the prefix of the compiled releases it deletes */
#define CKEY_TIP_LEN (8 + TD_HASH_LEN + 8 + 8 + 8)
#define CKEY_REF_LEN (8 + 4) /* a "D" value */
#define CKEY_LOC_LEN (8 + 4) /* an "R" value */
#define CKEY_FIELD_MAX 32    /* longest status, category or method kept in "T" (code list values are short) */
#define CKEY_TSTATE_FIXED (TD_PUBKEY_LEN + 1 + 8 + 4 + 4 + 8 + 8 + 8 + TD_HASH_LEN)
#define CKEY_TSTATE_MAX (CKEY_TSTATE_FIXED + 3 * (1 + CKEY_FIELD_MAX) + 1 + TD_ID_MAX)
#define CKEY_MAX (2 + TD_OCID_MAX + 1 + TD_ID_MAX + 16) /* the longest key */
#define CKEY_DATE_BIAS 0x8000000000000000ull
#define CKEY_FLAG_CANCELLED 1u /* "T" flags: the tender is cancelled */

/* A key being built; b[0..n) is the key. */
struct ckey {
	uint8_t b[CKEY_MAX];
	size_t n;
};

/* ---- integers: big-endian, at p[0..8) or p[0..4) ---- */

void ckey_put_u64(uint8_t p[static 8], uint64_t v);
void ckey_put_u32(uint8_t p[static 4], uint32_t v);
uint64_t ckey_get_u64(const uint8_t p[static 8]);
uint32_t ckey_get_u32(const uint8_t p[static 4]);

/* ---- appending to a key ---- */

/* Appends p[0..n) to k; aborts past CKEY_MAX (keys are sized for the longest layout, so that is a bug). */
void ckey_bytes(struct ckey *k, const void *p, size_t n);
/* Appends v as a big-endian u64, as ckey_bytes. */
void ckey_u64(struct ckey *k, uint64_t v);

/* ---- the keys, one builder per kind (each starts k afresh) ---- */

/* "S": the schema version. */
void ckey_schema(struct ckey *k);
/* "I": the chain id. */
void ckey_chain_id(struct ckey *k);
/* "G": the genesis hash. */
void ckey_genesis(struct ckey *k);
/* "M": the tip. */
void ckey_tip(struct ckey *k);
/* "B" height: a block's header and record ids. */
void ckey_block(struct ckey *k, uint64_t height);
/* "D" height: the prefix of the "D" keys of a block's records. */
void ckey_records(struct ckey *k, uint64_t height);
/* "D" height index: the bytes of a block's index-th record. */
void ckey_record(struct ckey *k, uint64_t height, uint32_t index);
/* "C" height: a block's commit. */
void ckey_commit(struct ckey *k, uint64_t height);
/* "X" key (TD_EVIDENCE_KEY_LEN bytes): the height that committed an offence. */
void ckey_evidence(struct ckey *k, const uint8_t *evkey);
/* "V" height: a block's governance records. */
void ckey_gov(struct ckey *k, uint64_t height);
/* "R" id: where a record is. */
void ckey_record_loc(struct ckey *k, const uint8_t id[static TD_HASH_LEN]);
/* "T" ocid: a tender's state. */
void ckey_tender(struct ckey *k, const char *ocid);
/* "E" ocid \0: the prefix of a tender's "E" keys. */
void ckey_releases(struct ckey *k, const char *ocid);
/* "E" ocid \0 seq: the record id of a tender's seq-th release. */
void ckey_release(struct ckey *k, const char *ocid, uint32_t seq);
/* "U" ocid \0 release id: the record id of a release, by its id. */
void ckey_release_id(struct ckey *k, const char *ocid, const char *release_id);

/* ---- values ---- */

/* What "M" holds. */
struct ckey_tipval {
	uint64_t height;
	uint8_t hash[TD_HASH_LEN]; /* of the last block; zeros at height 0 */
	uint64_t time_ms;          /* of the last block; the genesis time at height 0 */
	uint64_t n_records;
	uint64_t file_end; /* the records file's length after the last block */
};

void ckey_tip_encode(const struct ckey_tipval *t, uint8_t out[static CKEY_TIP_LEN]);
/* False if p[0..n) is not a tip (wrong length). */
bool ckey_tip_decode(struct ckey_tipval *t, const uint8_t *p, size_t n);

/* What "D" holds: the place of a record's bytes in the records file; decode is false for a wrong length. */
void ckey_ref_encode(uint8_t out[static CKEY_REF_LEN], uint64_t off, uint32_t len);
bool ckey_ref_decode(const uint8_t *p, size_t n, uint64_t *off, uint32_t *len);

/* An "R" value: the record's block height and index in the block. */
void ckey_loc_encode(uint8_t out[static CKEY_LOC_LEN], uint64_t height, uint32_t index);
/* False if p[0..n) is not an "R" value (wrong length); height and index may be NULL. */
bool ckey_loc_decode(const uint8_t *p, size_t n, uint64_t *height, uint32_t *index);

/* A tender's bookkeeping, as in "T". */
struct ckey_tstate {
	uint8_t owner[TD_PUBKEY_LEN];
	uint8_t flags; /* CKEY_FLAG_* */
	uint64_t first_height;
	uint32_t first_index;
	uint32_t n_releases;
	uint64_t last_height;
	uint64_t first_date;               /* date key of the first release's date */
	uint64_t date;                     /* date key of the tender date (list index 'd') */
	char status[CKEY_FIELD_MAX + 1];   /* compiled tender.status; "" if absent or too long */
	char category[CKEY_FIELD_MAX + 1]; /* compiled tender.mainProcurementCategory, likewise */
	char method[CKEY_FIELD_MAX + 1];   /* compiled tender.procurementMethod, likewise */
	char last_release[TD_ID_MAX + 1];  /* id of the latest release */
	uint8_t last_id[TD_HASH_LEN];      /* record id of the latest release (what the next one names as prev) */
};

/* The "T" value of t into out, its length in *len. The strings of t must fit their fields. */
void ckey_tstate_encode(const struct ckey_tstate *t, uint8_t out[static CKEY_TSTATE_MAX], size_t *len);
/* Decodes a "T" value; false if it is truncated, has trailing bytes or a string too long or with a NUL. */
bool ckey_tstate_decode(struct ckey_tstate *t, const uint8_t *p, size_t len);

/*
 * A "B" value: header length u32, the header as td_header_encode, the ids of
 * the block's records, its evidence items. Appended to v.
 */
void ckey_block_meta_encode(struct td_buf *v, const struct td_block *blk);

/* A decoded "B" value, pointing into the bytes it was decoded from. */
struct ckey_block_meta {
	const uint8_t *hdr; /* the encoded header */
	size_t hlen;
	const uint8_t *ids; /* h.n_records ids of TD_HASH_LEN bytes */
	const uint8_t *ev;  /* h.n_evidence items, each a length u16 and its bytes */
	size_t evlen;
	struct td_block_header h;
	uint8_t hash[TD_HASH_LEN]; /* the block's hash (of hdr) */
};

/*
 * Decodes the "B" value p[0..n) of block height; false if malformed, of
 * another height, or if its evidence items do not add up to n_evidence.
 */
bool ckey_block_meta_decode(struct ckey_block_meta *m, const uint8_t *p, size_t n, uint64_t height);

/* ---- dates ---- */

/* The date key of an ISO 8601 date-time (td_iso_parse) s[0..len) into *out; false if s is not one. */
bool ckey_date(const char *s, size_t len, uint64_t *out);
/* The date key of ms since the epoch. */
uint64_t ckey_date_ms(uint64_t ms);

/* ---- list indexes ---- */

/* The list indexes (see the file comment). */
enum ckey_lix {
	CKEY_LIX_ALL,
	CKEY_LIX_AGENCY,
	CKEY_LIX_STATUS,
	CKEY_LIX_CATEGORY,
	CKEY_LIX_METHOD,
	CKEY_LIX_DATE,
};
#define CKEY_LIX_COUNT 6

/*
 * The start of every key of index x with value v (the agency key of
 * TD_PUBKEY_LEN bytes, a NUL-ended string, or NULL for CKEY_LIX_ALL and
 * CKEY_LIX_DATE): "L", the index tag and the value; the ordered part follows.
 */
void ckey_lix_prefix(struct ckey *k, enum ckey_lix x, const void *v);
/* Bytes of a key of index x after its prefix. */
size_t ckey_lix_tail(enum ckey_lix x);
/* Index x's value for tender t (NULL for CKEY_LIX_ALL and CKEY_LIX_DATE). */
const void *ckey_lix_value(enum ckey_lix x, const struct ckey_tstate *t);
/* True if tender t has a key in index x (a string index skips an empty value). */
bool ckey_lix_has(enum ckey_lix x, const struct ckey_tstate *t);
/* The key of tender t in index x. */
void ckey_lix_key(struct ckey *k, enum ckey_lix x, const struct ckey_tstate *t);
/* True if index x keeps an "N" count per value. */
bool ckey_lix_counted(enum ckey_lix x);
/* The "N" count key of value v in index x (ckey_lix_counted). */
void ckey_lix_count_key(struct ckey *k, enum ckey_lix x, const void *v);

#endif
