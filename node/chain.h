/*
 * The chain: committed blocks and what they say, kept in the store.
 *
 * chain_apply() is the only writer: it checks a block against the ledger
 * (height, previous hash, proposer, records root, each record's lifecycle
 * rules in block order, the commit) and writes the block, its commit, its
 * records and every index in one synced LevelDB batch, so a crash at any
 * point leaves either the whole block or none of it. Queries read the store.
 */
#ifndef TENDERD_CHAIN_H
#define TENDERD_CHAIN_H

#include <jansson.h>
#include "tenderd/block.h"

struct chain;
struct hist;
struct store;

/*
 * Opens (creating if missing) the store at path for genesis g, which the
 * caller keeps alive until chain_close(). A new store records the genesis
 * hash (td_genesis_hash); a store made for another genesis, or of another
 * schema version, is refused (TD_EINVAL naming both genesis hashes); a store
 * from before genesis hashes gets the hash recorded at its first open if its
 * chain id is g's. Returns 0 or an error with a message.
 */
int chain_open(struct chain **out, const char *path, const struct td_genesis *g, char *err, size_t errlen);
/*
 * As chain_open(), over a store the caller opened (store_open_mem() in the
 * simulator); name labels it in messages. The chain takes st in every case:
 * chain_close() closes it, and so does a failed call.
 */
int chain_open_store(struct chain **out, struct store *st, const char *name, const struct td_genesis *g, char *err,
		     size_t errlen);
/* Closes the store; NULL does nothing. */
void chain_close(struct chain *c);

uint64_t chain_height(const struct chain *c);
/*
 * True if the store was made for another genesis but held no block, so
 * opening it took the new genesis (the agreed genesis of a consortium,
 * copied over a home's own). What the node signed before belongs to the
 * old chain.
 */
bool chain_genesis_adopted(const struct chain *c);
/*
 * The id of the latest committed record of tender ocid into out: what its
 * next amendment, cancellation or award names as previous. Returns 0,
 * TD_ENOTFOUND (no such tender), TD_EIO or TD_ECORRUPT.
 */
int chain_tender_last(const struct chain *c, const char *ocid, uint8_t out[static TD_HASH_LEN]);
/*
 * The proof of tender ocid's committed history (tenderd/proof.h) into *out
 * (a new reference). 0, TD_ENOTFOUND, TD_EIO or TD_ECORRUPT; TD_ERULE if a
 * block holding one of its releases is signed by a validator set other
 * than the genesis one (a proof carries no set changes yet).
 */
int chain_proof_json(const struct chain *c, const char *ocid, json_t **out);
/* Hash of the last block; all zeros at height 0. */
const uint8_t *chain_last_hash(const struct chain *c);
/* Time of the last block (genesis time at height 0). */
uint64_t chain_last_time(const struct chain *c);

/*
 * Wall time of each block chain_apply() wrote: the whole call, and its
 * synced store write alone (LevelDB's log and the records file). For the
 * metrics; what a slow disk or LevelDB's throttling costs shows here.
 */
const struct hist *chain_apply_hist(const struct chain *c);
const struct hist *chain_write_hist(const struct chain *c);
/* Records committed so far. */
uint64_t chain_record_count(const struct chain *c);
/*
 * td_validators_hash of the set that signs the height after the next
 * block's: what the next block's header names as its next validators.
 */
const uint8_t *chain_next_validators(const struct chain *c);
struct registry;
/* The chain's parties and validator sets (registry.h), at the tip; valid until the next chain_apply. */
const struct registry *chain_registry(const struct chain *c);

struct td_evidence;
/*
 * Checks evidence for a block at height: the offender is a validator, the
 * offence is below height and at most TD_EVIDENCE_MAX_AGE heights older, no
 * block committed the offence yet, and both signatures verify. Returns 0,
 * TD_EEXIST (already committed), TD_ERULE (expired or too new), TD_EINVAL or
 * TD_ESIG, with a message; TD_EIO or TD_ECORRUPT if the store cannot be read.
 */
int chain_check_evidence(const struct chain *c, const struct td_evidence *ev, uint64_t height, char *err,
			 size_t errlen);

/*
 * Checks one record against the committed ledger: its agency is a validator
 * or a member of the chain (TD_EPERM), ocid prefix from genesis, no committed record with the same id, ocid or (ocid, release id) pair for a
 * new tender, and for amendments, cancellations and awards the lifecycle
 * rules (tender exists, same agency, not cancelled). Returns 0, TD_EEXIST,
 * TD_ERULE or TD_EPERM, with a message naming the rule in err; TD_EIO or
 * TD_ECORRUPT if the store cannot be read, and TD_EIO naming the store's
 * failure once a write failed (chain_failed).
 */
int chain_check_record(const struct chain *c, const struct td_record *rec, char *err, size_t errlen);

/*
 * 0, or if a store write failed (chain_apply), its code (TD_EIO) with a
 * message naming the store's failure in err. A failed chain writes nothing
 * more: chain_apply, chain_validate and chain_check_record refuse with that
 * code and message until the chain is closed and opened again.
 */
int chain_failed(const struct chain *c, char *err, size_t errlen);

/*
 * Verifies the whole store (tenderd check): every block from 1 to the tip
 * (its header, hash chain, records root, each record's bytes and id, the
 * commit's signatures against the genesis validators), every record's
 * place ("R"), release ("E", "U"), tender state ("T", "K", "Y") and every
 * list index entry ("L", "N"). Stops at the first damage: returns 0, or
 * TD_ECORRUPT (or TD_EIO) with *bad_height the lowest height found damaged
 * (0 if what is damaged belongs to no one block, such as the tip) and a
 * message in err. progress, if not NULL, is called every few blocks.
 */
int chain_check_all(const struct chain *c, uint64_t *bad_height, char *err, size_t errlen,
		    void (*progress)(void *ctx, uint64_t height), void *ctx);

/*
 * True if a record with this id is committed; stores its block height in
 * *height (may be NULL). False also if the store cannot be read (logged).
 */
bool chain_has_record(const struct chain *c, const uint8_t id[static TD_HASH_LEN], uint64_t *height);

/*
 * Appends blk at height chain_height()+1 with its commit after checking both
 * (see the file comment); records in a block see the earlier records of the
 * same block. Writes everything in one synced batch. On any failure nothing
 * is written and err names the reason (TD_EINVAL, TD_ERULE, TD_ESIG, TD_EIO).
 * A failed store write (TD_EIO) also marks the chain failed (chain_failed).
 */
int chain_apply(struct chain *c, const struct td_block *blk, const struct td_commit *commit, char *err, size_t errlen);

/*
 * Checks a proposed block as chain_apply() would, without a commit and
 * without writing the store: valid(v) for consensus. Changes c: it
 * remembers the last few blocks it accepted, so chain_apply() of one of them
 * at the same tip does not check its records again. Returns 0 or an error
 * with a message.
 */
int chain_validate(struct chain *c, const struct td_block *blk, char *err, size_t errlen);

/*
 * Queries. Each returns 0 with its answer in *out (a new reference the
 * caller owns), or an error with *out NULL:
 *   TD_ENOTFOUND  what was asked for is not on the ledger;
 *   TD_EINVAL     the question is malformed (chain_list_json only);
 *   TD_EIO        the store could not be read;
 *   TD_ECORRUPT   the store holds something it cannot hold (a missing or
 *                 malformed value that a committed block implies).
 * TD_EIO and TD_ECORRUPT are logged at error level, naming the key or
 * height, by the chain itself; the caller need not log them again.
 */

/*
 * A tender's compiled state and releases:
 *   {"ocid", "compiled": {OCDS compiled release}, "releases": [{"record_id",
 *    "height", "time", "agency", "agency_name", "kind", "release"}...]}
 * 0; TD_ENOTFOUND if no committed tender has this ocid (NULL or longer than
 * TD_OCID_MAX included); TD_EIO or TD_ECORRUPT.
 */
int chain_tender_json(const struct chain *c, const char *ocid, json_t **out);

/* What chain_list_json keeps; NULL members match everything. */
struct chain_filter {
	const uint8_t *agency; /* TD_PUBKEY_LEN bytes: the publishing agency */
	const char *status;    /* the compiled tender.status */
	const char *category;  /* tender.mainProcurementCategory */
	const char *method;    /* tender.procurementMethod */
	const char *since;     /* ISO 8601: tender period start (or first release date) on or after */
	const char *until;     /* ISO 8601: tender period start (or first release date) on or before */
};

/*
 * Tender summaries newest first (by the height and position of the tender's
 * first release; when the filter has only since/until, by tender date),
 * keeping those that match f (NULL: all), answered from one index without
 * scanning every tender: {"tenders": [summary + "agency", "agency_name",
 * "height", "releases"...], "next_cursor": string or null}. At most 10,000
 * index entries are examined per call, so a selective filter may return
 * fewer than limit tenders with a next_cursor to follow. cursor is NULL or a
 * next_cursor from an earlier answer with the same filter; limit is 1..1000.
 * 0 (no tender matching is an empty list, not an error); TD_EINVAL for a
 * bad cursor (not hex, or not of this filter's indexes), limit or
 * since/until date; TD_EIO or TD_ECORRUPT.
 */
int chain_list_json(const struct chain *c, const struct chain_filter *f, uint32_t limit, const char *cursor,
		    json_t **out);

/*
 * The releases committed in block `height`, in block order:
 *   [{"height", "index", "block_records", "record_id", "ocid", "release_id",
 *     "kind", "time", "agency", "agency_name", "release"}]
 * (block_records: how many records the block holds, so a reader can tell it
 * saw the whole block). 0; TD_ENOTFOUND if there is no such block (0 or
 * past the tip); TD_EIO or TD_ECORRUPT.
 */
int chain_block_releases_json(const struct chain *c, uint64_t height, json_t **out);

/*
 * An OCDS 1.1 release package of every release committed in blocks from..to
 * (inclusive; from 0 counts as 1, to past the tip as the tip): {"uri",
 * "version": "1.1", "publishedDate", "publisher": {"name"}, "releases":
 * [...]} that validates against the official release-package schema.
 * 0; TD_ENOTFOUND if from > to or from is past the chain; TD_EIO or
 * TD_ECORRUPT.
 */
int chain_release_package_json(const struct chain *c, uint64_t from, uint64_t to, const char *publisher,
			       const char *uri, json_t **out);

/*
 * An OCDS 1.1 record package for every ocid with a release in blocks
 * from..to: {"uri", "version": "1.1", "publishedDate", "publisher",
 * "records": [{"ocid", "releases": [...all of the ocid's releases...],
 * "compiledRelease"}]}. Returns as chain_release_package_json. Exported
 * releases that have a tender but no tender.id get it from the compiled
 * release (the schema requires it); the ledger keeps them as signed.
 */
int chain_record_package_json(const struct chain *c, uint64_t from, uint64_t to, const char *publisher, const char *uri,
			      json_t **out);

/*
 * Streamed packages: the same bytes as the compact JSON text (td_json_dump,
 * JSON_COMPACT) of chain_release_package_json or chain_record_package_json,
 * produced a piece at a time so that neither the package nor the list of
 * its ocids is ever held whole. An export reads a snapshot of the store
 * taken by chain_export_new (store iterators): blocks committed meanwhile
 * change nothing in it. Each piece is checked as chain_load_block checks a
 * block (header, commit, each record against its id).
 */
struct chain_export;

/* A growable text buffer a chain_export appends to; zero it to start, free(p) at the end. */
struct chain_text {
	char *p;
	size_t len, cap;
};

/*
 * An export of blocks from..to (clamped as chain_release_package_json
 * does), as a record package with records, else a release package;
 * publisher and uri as there (copied). The chain must stay open until
 * chain_export_free. 0; TD_ENOTFOUND for an empty range or one past the
 * chain; TD_EIO or TD_ECORRUPT.
 */
int chain_export_new(struct chain_export **out, const struct chain *c, uint64_t from, uint64_t to, bool records,
		     const char *publisher, const char *uri);
/* True if the export's range holds no release (its package would have an empty list). */
bool chain_export_empty(const struct chain_export *x);
/*
 * Appends the next piece of the package's text to out (the head, then one
 * release or one record's part at a time, then the end). Returns 1 while
 * more is to come, 0 once the package is complete (later calls append
 * nothing), or TD_EIO or TD_ECORRUPT (logged; the text so far is not a
 * package and the export can only be freed).
 */
int chain_export_next(struct chain_export *x, struct chain_text *out);
/* Frees the export and its iterators; NULL does nothing. */
void chain_export_free(struct chain_export *x);

/*
 * The id of the latest committed release of ocid into out. 0; TD_ENOTFOUND
 * if no tender has that ocid (NULL or longer than TD_OCID_MAX included);
 * TD_EIO or TD_ECORRUPT.
 */
int chain_last_release_id(const struct chain *c, const char *ocid, char out[static TD_ID_MAX + 1]);

/*
 * A block for people: {"height", "hash", "prev_hash", "time", "proposer",
 * "proposer_name", "records": [record ids], "commit": {"height", "round",
 * "block_hash", "signatures": [{"validator", "name", "pub_key", "signature"}]}}
 * with hashes and keys in hex. 0; TD_ENOTFOUND if there is no such block (0
 * or past the tip); TD_EIO or TD_ECORRUPT.
 */
int chain_block_json(const struct chain *c, uint64_t height, json_t **out);

/*
 * The stored encodings of a block and its commit (for block sync) into
 * *blk, *blen, *commit and *clen; the caller frees both. 0; TD_ENOTFOUND if
 * there is no such block (0 or past the tip); TD_EIO or TD_ECORRUPT. Both
 * are NULL on any error.
 */
int chain_block_raw(const struct chain *c, uint64_t height, uint8_t **blk, size_t *blen, uint8_t **commit,
		    size_t *clen);

#endif
