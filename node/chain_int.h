/*
 * The chain's private parts, shared by node/chain*.c only: the struct chain
 * and the helpers one chain file offers another.
 *
 *   chain.c        open and close, the lifecycle rules, staging and applying blocks
 *   chainoverlay.c what a block's earlier records did, while it is checked or applied
 *   chainkeys.c    the store schema: keys and value encodings (chainkeys.h)
 *   chainquery.c   reads: tender states, records, blocks, tenders, listings
 *   chainjson.c    answers as JSON: entries, summaries, blocks, OCDS packages
 *
 * Nothing declared here writes the store: chain_apply in chain.c is its
 * only writer.
 */
#ifndef TENDERD_CHAIN_INT_H
#define TENDERD_CHAIN_INT_H

#include <jansson.h>

#include "tenderd/block.h"
#include "tenderd/record.h"
#include "chain.h"
#include "hist.h"
#include "chainkeys.h"
#include "htab.h"
#include "registry.h"
#include "store.h"

#define CHAIN_MEMO_N 4 /* blocks remembered as checked (chain_validate) at a tip */
#define CHAIN_UPGRADE_BATCH 4096 /* keys deleted per write when a store is upgraded */

/* A block whose records passed the lifecycle checks at a tip. */
struct chain_memo_entry {
	bool used;
	uint8_t block[TD_HASH_LEN]; /* the block's hash */
	uint64_t height;            /* the tip it was checked against */
	uint8_t tip[TD_HASH_LEN];
};

/* What chain_validate remembers. */
struct chain_memo {
	struct chain_memo_entry e[CHAIN_MEMO_N];
	unsigned next; /* the entry to replace next */
};

struct chain {
	struct store *st;           /* owned */
	const struct td_genesis *g; /* borrowed */
	uint64_t height;
	uint8_t last_hash[TD_HASH_LEN];
	uint64_t last_time;
	uint64_t n_records;
	struct chain_memo memo;
	struct store_batch *batch;   /* owned; reused by every chain_apply, so its
					buffer is allocated once, not per block */
	uint8_t hkey[HTAB_KEYBYTES]; /* random key of the overlay's hash indexes */
	int failed;                  /* 0, or the code of a store write that failed: from then
					on the chain writes nothing and refuses every record */
	char failure[TD_ERRMSG_MAX]; /* when failed: the store's message */
	bool adopted;                /* the store held no block and took the genesis it was opened with */
	struct registry *reg;        /* owned: parties and validator sets, at the tip */
	struct hist apply_hist;      /* wall seconds of each chain_apply that wrote a block */
	struct hist write_hist;      /* of its synced store write alone */
};

/* ---- chainoverlay.c ---- */

/*
 * A tender touched by the block being checked or applied: a committed one
 * (its "T" state loaded on first touch) or one the block publishes.
 */
struct chain_pend {
	char ocid[TD_OCID_MAX + 1];
	uint8_t owner[TD_PUBKEY_LEN]; /* check state: the agency that published it */
	bool cancelled;               /* check state: cancelled, committed or by an earlier record */
	uint8_t last_id[TD_HASH_LEN]; /* check state: the id of the tender's latest record */
	bool is_new;                  /* first published in this block */
	struct ckey_tstate st;        /* staging: after the block's records so far */
	struct ckey_tstate old;       /* staging: as committed (unset when is_new): the list keys to replace */
};

/* A change of one "N" count by the block. */
struct chain_ndelta {
	struct ckey k;
	int64_t d;
};

/* What a block's earlier records did, seen by its later ones (chainoverlay.c). */
struct chain_overlay {
	const uint8_t *hkey; /* the chain's hash key (HTAB_KEYBYTES) */
	struct chain_pend *t;
	size_t nt, cap;
	struct htab t_ix;              /* t by ocid */
	const struct td_record **recs; /* accepted records of the block (when checking), borrowed */
	size_t nrecs;
	struct htab id_ix;       /* recs by record id */
	struct htab pair_ix;     /* recs by (ocid, release id) */
	struct chain_ndelta *nd; /* "N" count changes, one per key */
	size_t nnd, ndcap;
	struct htab nd_ix;                   /* nd by key */
	struct td_record *const *block_recs; /* the block's records, borrowed (for chain_overlay_last_touch) */
};

/*
 * An empty overlay for a block of n records of chain c (whose hash key it
 * borrows); checking: with the indexes of accepted records (has_id, has_pair).
 */
void chain_overlay_init(struct chain_overlay *ov, const struct chain *c, size_t n, bool checking);
/* Frees what ov holds and zeroes it. */
void chain_overlay_free(struct chain_overlay *ov);
/* The entry of ocid, or NULL if the overlay has none. */
struct chain_pend *chain_overlay_find(const struct chain_overlay *ov, const char *ocid);
/*
 * A new entry for ocid, zeroed but for its ocid; the pointer lives until the
 * next add. ocid must not be in the overlay yet (aborts).
 */
struct chain_pend *chain_overlay_add(struct chain_overlay *ov, const char *ocid);
/* Adds d to the "N" count of tender t's value in index x (a counted one). */
void chain_overlay_count(struct chain_overlay *ov, enum ckey_lix x, const struct ckey_tstate *t, int64_t d);
/* True if a record with this id was accepted; false for a NULL or non-checking overlay. */
bool chain_overlay_has_id(const struct chain_overlay *ov, const uint8_t id[static TD_HASH_LEN]);
/* True if a release (ocid, release_id) was accepted; false for a NULL or non-checking overlay. */
bool chain_overlay_has_pair(const struct chain_overlay *ov, const char *ocid, const char *release_id);
/* Adds an accepted record (borrowed) to the id and pair indexes of a checking overlay. */
void chain_overlay_accept(struct chain_overlay *ov, const struct td_record *rec);
/*
 * For each of the n records of a block, true in last[i] if no later record
 * of the block has the same ocid (so its tender can be staged after it).
 * Borrows recs until the overlay is freed.
 */
void chain_overlay_last_touch(struct chain_overlay *ov, struct td_record *const *recs, uint32_t n, bool *last);

/* ---- chainquery.c ---- */

/*
 * The reads below return 0, TD_EIO or TD_ECORRUPT (and TD_ENOTFOUND where
 * said) and log TD_EIO and TD_ECORRUPT at error level where they find them,
 * naming the key or height, so a caller passes such a code on without
 * logging it again.
 */

/*
 * Logs a failed read of the store, "chain: <what>: <td_strerror(rc)>", if
 * rc is TD_EIO or TD_ECORRUPT; returns rc.
 */
int chain_read_error(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads the committed state ("T") of a tender: 0, TD_ENOTFOUND, TD_EIO or TD_ECORRUPT. */
int chain_tstate_load(const struct chain *c, const char *ocid, struct ckey_tstate *t);

/*
 * Decodes the committed record at index in block height ("D") into *out
 * (the caller frees it with td_record_free; NULL on failure), as
 * td_record_decode_stored: its release is not validated again, and its id
 * is the hash of the bytes found. 0, TD_EIO or TD_ECORRUPT (a missing record
 * is corruption: callers ask only for committed ones).
 */
int chain_record_load(const struct chain *c, uint64_t height, uint32_t index, struct td_record **out);
/*
 * The bytes of a record (a malloc'd copy in *bytes) from its "D" value ref,
 * a place in the store's records file: 0, TD_ECORRUPT for a malformed place
 * or one past the file's end, or TD_EIO.
 */
int chain_record_bytes(const struct chain *c, const uint8_t *ref, size_t rlen, uint8_t **bytes, size_t *len);
/* The bytes of record index of block height ("D" and the records file): 0, TD_ENOTFOUND, TD_ECORRUPT or TD_EIO. */
int chain_record_get(const struct chain *c, uint64_t height, uint32_t index, uint8_t **bytes, size_t *len);

/*
 * The compiled release of a committed tender whose state is st into *out (a
 * new reference; NULL on failure): its releases ("E", or the one at st's
 * first height and index) merged in order. 0, TD_EIO or TD_ECORRUPT.
 */
int chain_compiled_load(const struct chain *c, const char *ocid, const struct ckey_tstate *st, json_t **out);

/*
 * The indexed fields of "T" (status and the cancelled flag, category,
 * method, tender date) as read from a tender's compiled release, and as
 * changed by merging one more release into it, without the compiled
 * release: what the OCDS merge (merge.h) does to tender.status,
 * .mainProcurementCategory, .procurementMethod and .tenderPeriod.startDate.
 * A date without a usable startDate is t->first_date. For any releases,
 * chain_tstate_release over them in order gives what chain_tstate_compiled
 * gives of their merge (test_chain test_tstate_incremental).
 */
void chain_tstate_compiled(struct ckey_tstate *t, const json_t *compiled);
void chain_tstate_release(struct ckey_tstate *t, const json_t *release);

/*
 * The releases of a committed tender in order into *out (a new reference;
 * NULL on failure): entries as in chain_tender_json (entries true) or the
 * bare releases; and, with compiled not NULL, its compiled release (the
 * releases merged in order) from the same reads. out may be NULL when only
 * the compiled release is wanted. 0, TD_EIO or TD_ECORRUPT (also if other
 * than n releases are found).
 */
int chain_tender_releases(const struct chain *c, const char *ocid, uint32_t n, bool entries, json_t **out,
			  json_t **compiled);

/*
 * Reads the "B" value of committed block height into *val (the caller frees
 * it) and decodes it into *m, which points into *val. 0, TD_EIO or
 * TD_ECORRUPT (missing or malformed); *val is NULL on failure.
 */
int chain_block_meta_load(const struct chain *c, uint64_t height, struct ckey_block_meta *m, uint8_t **val);

/* The records root (td_records_root) of n record ids laid end to end. */
void chain_ids_root(uint8_t out[static TD_HASH_LEN], const uint8_t *ids, uint32_t n);

/*
 * Checks the header of block height (decoded "B" value m) and its commit
 * bytes cb[0..cl): the ids of m against the header's records root, the
 * commit decodes into *cm, is for this height and the hash of the header and
 * verifies against the genesis validators, and the tip's hash is the
 * chain's. 0, or TD_ECORRUPT with what failed in err (not logged). *cm is
 * the caller's to clear (td_commit_clear) in either case.
 */
int chain_block_head_check(const struct chain *c, uint64_t height, const struct ckey_block_meta *m,
			   const uint8_t *cb, size_t cl, struct td_commit *cm, char *err, size_t errlen);

/*
 * Reads "B" and "C" of committed block height and checks them
 * (chain_block_head_check): 0 with the header in *m (pointing into *val,
 * which the caller frees) and the commit in *cm (the caller clears it); TD_EIO
 * or TD_ECORRUPT, logged, with *val NULL and *cm empty.
 */
int chain_block_head_load(const struct chain *c, uint64_t height, struct ckey_block_meta *m, uint8_t **val,
			  struct td_commit *cm);

/*
 * The committed block at height in td_block_encode's form into *out (the
 * caller frees it), put together from "B" and "D" after checking them: the
 * header and commit as chain_block_head_load, and each record's bytes
 * against its id in "B". 0, TD_EIO or TD_ECORRUPT (logged; *out NULL).
 */
int chain_block_bytes(const struct chain *c, uint64_t height, uint8_t **out, size_t *len);

/*
 * Decodes committed block height (1..tip) from "B" and "D" into *out after
 * checking it (chain_block_head_load; each record's bytes against its id;
 * record signatures not re-verified; the caller frees it with td_block_free;
 * NULL on failure). 0, TD_EIO or TD_ECORRUPT.
 */
int chain_load_block(const struct chain *c, uint64_t height, struct td_block **out);

/* ---- chainjson.c ---- */

/* The fields of a release entry (chain_tender_json, chain_block_releases_json) for rec at height. */
json_t *chain_entry_json(const struct chain *c, const struct td_record *rec, uint64_t height);

/*
 * A tender's "Y" summary: td_release_summary of compiled plus "agency",
 * "agency_name", "height" (of the first release) and "releases" from st.
 */
json_t *chain_summary_json(const struct chain *c, const struct ckey_tstate *st, const json_t *compiled);

#endif
