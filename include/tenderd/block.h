/*
 * Blocks, votes, commits and the validator set from genesis: format version
 * TD_FORMAT_VERSION (2).
 *
 * Header (canonical msgpack array of 10):
 *   [2, height, prev hash (bin 32), time ms, proposer public key (bin 32),
 *    records root (bin 32), record count, evidence root (bin 32),
 *    evidence count, next validators hash (bin 32)]
 * The block hash is BLAKE2b-256 of the header's encoding. The records root
 * is the RFC 6962 Merkle root (tenderd/merkle.h) over the record ids in block
 * order; the evidence root the same over the evidence ids. The next
 * validators hash is td_validators_hash of the set that signs the next
 * block. A block's encoding is
 *   [header, [record bytes (bin) ...], [evidence bytes (bin) ...]].
 *
 * A vote is an Ed25519 signature over TD_VOTE_DOMAIN, a NUL, the genesis
 * hash (32 bytes) and the encoding of [type, height, round, block hash or
 * nil]. Every signature of the ledger binds the genesis hash this way, so a
 * message signed for one chain never verifies on another that happens to
 * share its chain id. A commit is the set of PRECOMMIT signatures for one
 * block from more than two thirds of the validators:
 *   [height, round, block hash, [[validator index, sig] ...]]
 * with strictly increasing indexes.
 */
#ifndef TENDERD_BLOCK_H
#define TENDERD_BLOCK_H

#include <jansson.h>
#include "tenderd/types.h"
#include "tenderd/codec.h"
#include "tenderd/record.h"

#define TD_VOTE_DOMAIN "tenderd-vote-v2"

/*
 * Bounds on what the block encoding adds to its records' bytes, so that a
 * proposer filling a byte budget stays under it: at most
 * TD_BLOCK_ITEM_OVERHEAD per record (its bin header) and
 * TD_BLOCK_FIXED_OVERHEAD for the header and the arrays.
 */
#define TD_BLOCK_ITEM_OVERHEAD 5
#define TD_BLOCK_FIXED_OVERHEAD 512

enum td_vote_type {
	TD_VOTE_PREVOTE = 1,
	TD_VOTE_PRECOMMIT = 2,
};

struct td_validator {
	char name[TD_NAME_MAX + 1];
	uint8_t pk[TD_PUBKEY_LEN];
};

/*
 * The roles of a chain's parties. Validators vote and propose; members
 * publish records but do not vote; observers follow the chain read-only.
 * Every party is a key the chain knows: only parties may connect.
 */
enum td_role {
	TD_ROLE_VALIDATOR = 0,
	TD_ROLE_MEMBER = 1,
	TD_ROLE_OBSERVER = 2,
};

/*
 * The genesis: the chain's identity, its validators in proposer order, and
 * its members and observers. Parties are numbered validators first (0..n-1,
 * the validator index), then members, then observers: the party index.
 */
struct td_genesis {
	char chain_id[TD_CHAIN_ID_MAX + 1];
	char ocid_prefix[TD_OCID_MAX + 1]; /* every tender's ocid starts with it */
	uint64_t time_ms;
	uint32_t n;
	struct td_validator *v; /* n entries, owned */
	uint32_t n_members, n_observers;
	struct td_validator *others;          /* n_members members, then n_observers observers; owned; NULL if none */
	uint8_t hash[TD_HASH_LEN];            /* td_genesis_hash, set by td_genesis_seal */
	uint8_t validators_hash[TD_HASH_LEN]; /* td_validators_hash of v, set by td_genesis_seal */
};

/*
 * Parses a genesis JSON document (and seals it: td_genesis_seal):
 *   {"chain_id": "...", "ocid_prefix": "ocds-xxxxxx", "genesis_time": "ISO",
 *    "validators": [{"name": "...", "pub_key": "hex"}, ...],
 *    "members": [...], "observers": [...]}
 * members and observers (same form as validators) may be absent. No key may
 * appear twice, in one role or across roles.
 * Returns 0 or TD_EINVAL with a message.
 */
int td_genesis_parse(struct td_genesis *g, const char *text, size_t len, char *err, size_t errlen);
/* The genesis as a JSON document (new reference); members and observers only when there are some. */
json_t *td_genesis_json(const struct td_genesis *g);
void td_genesis_free(struct td_genesis *g);
/* Index of the validator with public key pk, or -1. */
int td_genesis_find(const struct td_genesis *g, const uint8_t pk[static TD_PUBKEY_LEN]);
/* Validators, members and observers. */
static inline uint32_t td_genesis_parties(const struct td_genesis *g)
{
	return g->n + g->n_members + g->n_observers;
}
/* Party index of the key pk in any role, or -1. */
int td_genesis_find_party(const struct td_genesis *g, const uint8_t pk[static TD_PUBKEY_LEN]);
/* Party i (i < td_genesis_parties(g)). */
const struct td_validator *td_genesis_party(const struct td_genesis *g, uint32_t i);
/* The role of party i (i < td_genesis_parties(g)). */
enum td_role td_genesis_role(const struct td_genesis *g, uint32_t i);
/* "validator", "member" or "observer". */
const char *td_role_name(enum td_role role);
/* True if a record signed by pk may reach a block: pk is a validator or a member. */
bool td_genesis_may_publish(const struct td_genesis *g, const uint8_t pk[static TD_PUBKEY_LEN]);
/*
 * The canonical bytes of a genesis (msgpack):
 *   [1, chain id, ocid prefix, genesis time ms, [[name, pub_key (bin 32)] ...]]
 * with the validators in their genesis order; a genesis with members or
 * observers appends their lists in the same form:
 *   [1, chain id, ocid prefix, genesis time ms, validators, members, observers]
 * Two genesis files describe the same chain exactly when these bytes are
 * equal, however the JSON is laid out.
 */
void td_genesis_encode(struct td_buf *b, const struct td_genesis *g);
/* The genesis hash: BLAKE2b-256 of td_genesis_encode's bytes. */
void td_genesis_hash(uint8_t out[static TD_HASH_LEN], const struct td_genesis *g);
/* Fills g->hash and g->validators_hash; a genesis built by hand needs it before use. */
void td_genesis_seal(struct td_genesis *g);
/*
 * The hash of a validator set: BLAKE2b-256 of [1, [public key (bin 32) ...]]
 * in proposer order. Names do not count: they are labels, not identities.
 */
void td_validators_hash(uint8_t out[static TD_HASH_LEN], const struct td_validator *v, uint32_t n);

struct td_block_header {
	uint64_t height;
	uint8_t prev_hash[TD_HASH_LEN];
	uint64_t time_ms;
	uint8_t proposer[TD_PUBKEY_LEN];
	uint8_t records_root[TD_HASH_LEN];
	uint32_t n_records;
	uint8_t evidence_root[TD_HASH_LEN];
	uint32_t n_evidence;
	uint8_t next_validators[TD_HASH_LEN];
};

struct td_evidence;

struct td_block {
	struct td_block_header hdr;
	uint8_t hash[TD_HASH_LEN];
	struct td_record **records;   /* hdr.n_records entries, owned */
	struct td_evidence *evidence; /* hdr.n_evidence entries, owned */
};

struct td_commit_sig {
	uint32_t validator; /* index into the genesis validators */
	uint8_t sig[TD_SIG_LEN];
};

struct td_commit {
	uint64_t height;
	uint32_t round;
	uint8_t block_hash[TD_HASH_LEN];
	uint32_t n_sigs;
	struct td_commit_sig *sigs; /* owned, increasing validator index */
};

/* Encodes a header; the block hash is td_hash() of these bytes. */
void td_header_encode(struct td_buf *b, const struct td_block_header *h);
/*
 * Reads a header from its msgpack array: false (and r poisoned) unless it is
 * a header of this format version with fields of the right types and counts
 * within the limits. The canonical check is the caller's.
 */
bool td_header_read(struct td_rd *r, const msgpack_object *o, struct td_block_header *h);
/*
 * Decodes exactly the bytes of td_header_encode (canonical form checked)
 * and puts the block hash into hash. Returns 0 or TD_EINVAL.
 */
int td_header_decode(struct td_block_header *h, uint8_t hash[static TD_HASH_LEN], const uint8_t *buf, size_t len);
/* Computes the records root over n records' ids. */
void td_records_root(uint8_t out[static TD_HASH_LEN], struct td_record *const *records, uint32_t n);

/*
 * Builds a block over records (takes ownership of the array and records),
 * with no evidence: fills the roots, counts and hash. Never fails.
 */
struct td_block *td_block_new(uint64_t height, const uint8_t prev[static TD_HASH_LEN], uint64_t time_ms,
			      const uint8_t proposer[static TD_PUBKEY_LEN],
			      const uint8_t next_validators[static TD_HASH_LEN], struct td_record **records,
			      uint32_t n);
/*
 * Puts n (at most TD_BLOCK_EVIDENCE_MAX) evidence items into a block
 * without any (takes ownership of the array) and computes the evidence root
 * and the block hash again.
 */
void td_block_set_evidence(struct td_block *blk, struct td_evidence *ev, uint32_t n);
/* Encodes a block with its records. Caller frees *out. */
void td_block_encode(const struct td_block *blk, uint8_t **out, size_t *len);
/* The length td_block_encode would give, without encoding the records. */
size_t td_block_encoded_len(const struct td_block *blk);
/*
 * Decodes a block of the chain whose genesis hash is chain, checking
 * canonical form, every record and evidence item, both roots and counts, and
 * that no two evidence items share a key. Returns 0 or an error with a
 * message. A trusted block is one a commit vouches for (a synced block, whose
 * commit chain_apply checks, or one read back from this node's store): its
 * records are decoded as td_record_decode_stored (the records root still
 * binds their bytes) and evidence signatures are not verified.
 */
__attribute__((warn_unused_result)) int td_block_decode(struct td_block **out, const uint8_t *buf, size_t len,
							const uint8_t chain[static TD_HASH_LEN], bool trusted,
							char *err, size_t errlen);
void td_block_free(struct td_block *blk);

/*
 * The bytes a validator signs for a vote on the chain whose genesis hash is
 * chain; caller frees *out. hash NULL is a vote for nothing.
 */
void td_vote_sign_bytes(uint8_t **out, size_t *len, const uint8_t chain[static TD_HASH_LEN], enum td_vote_type type,
			uint64_t height, uint32_t round, const uint8_t *hash);
/* Signs a vote with sk into sig. */
void td_vote_sign(uint8_t sig[static TD_SIG_LEN], const uint8_t chain[static TD_HASH_LEN], enum td_vote_type type,
		  uint64_t height, uint32_t round, const uint8_t *hash, const uint8_t sk[static TD_SECKEY_LEN]);
/* Verifies a vote signature from pk. */
__attribute__((warn_unused_result)) bool td_vote_verify(const uint8_t sig[static TD_SIG_LEN],
							const uint8_t chain[static TD_HASH_LEN], enum td_vote_type type,
							uint64_t height, uint32_t round, const uint8_t *hash,
							const uint8_t pk[static TD_PUBKEY_LEN]);

void td_commit_encode(const struct td_commit *c, uint8_t **out, size_t *len);
int td_commit_decode(struct td_commit *c, const uint8_t *buf, size_t len, char *err, size_t errlen);
/*
 * Checks a commit for the block (height, hash) against the genesis
 * validators (and its hash, which the signatures bind): indexes valid and increasing, each signature a PRECOMMIT for
 * that block, and more than two thirds of the validators signed.
 */
__attribute__((warn_unused_result)) int td_commit_verify(const struct td_commit *c, const struct td_genesis *g,
							 uint64_t height, const uint8_t hash[static TD_HASH_LEN],
							 char *err, size_t errlen);
/*
 * td_commit_verify against a validator set v[0..n) (validator indexes are
 * indexes into v), signatures bound to the genesis hash chain: for a height
 * whose signing set differs from the genesis validators.
 */
__attribute__((warn_unused_result)) int td_commit_verify_set(const struct td_commit *c,
							     const uint8_t chain[static TD_HASH_LEN],
							     const struct td_validator *v, uint32_t n, uint64_t height,
							     const uint8_t hash[static TD_HASH_LEN], char *err,
							     size_t errlen);
/* Frees the signatures (not c itself). */
void td_commit_clear(struct td_commit *c);

#endif
