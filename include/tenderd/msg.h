/*
 * Wire messages between nodes (the payload of one p2p frame).
 *
 * Each is a canonical msgpack array whose first item is the type:
 *   STATUS     [1, height, last block hash]
 *   ANNOUNCE   [2, [record id ...]]            ids of records a node holds
 *   FETCH      [3, [record id ...]]            ask for those records
 *   RECORDS    [4, [record bytes ...]]         the records asked for
 *   PROPOSAL   [5, height, round, valid round + 1 (0: none), header, [record id ...],
 *               [evidence bytes ...], proposer signature]
 *   VOTE       [6, vote type, height, round, block hash or nil, validator index, signature]
 *   SYNC_REQ   [7, from height, max blocks]
 *   SYNC_BLOCKS [8, [[block bytes, commit bytes] ...]]
 *   EVIDENCE   [9, [evidence bytes ...]]        tenderd/evidence.h, at most
 *                                               TD_BLOCK_EVIDENCE_MAX items
 * A proposal carries the block header, its record ids and its evidence
 * (small), not the records: receivers rebuild the block from their mempool
 * and FETCH what they lack, so each record body crosses each link about once.
 * Headers, records and evidence carry the format version (TD_FORMAT_VERSION).
 */
#ifndef TENDERD_MSG_H
#define TENDERD_MSG_H

#include <msgpack.h>
#include "tenderd/block.h"

#define TD_PROPOSAL_DOMAIN "tenderd-proposal-v2"

/*
 * Limits of the wire format. The decoder refuses a message over any of them,
 * and a sender must stay within them, so code that builds or answers a
 * message sizes its buffers by these names, never by their values.
 */
#define TD_MSG_IDS_MAX TD_BLOCK_RECORDS_MAX /* ids in one ANNOUNCE, FETCH or PROPOSAL */
#define TD_MSG_ITEMS_MAX TD_MSG_IDS_MAX     /* records in one RECORDS (it answers one FETCH) */
#define TD_SYNC_BATCH 64                    /* blocks a node asks for in one SYNC_REQ */
#define TD_SYNC_REQ_MAX (4 * TD_SYNC_BATCH) /* most blocks one SYNC_REQ may ask for and one SYNC_BLOCKS may hold */
/* One RECORDS item is at most TD_RECORD_MAX bytes; one SYNC_BLOCKS block or commit at most TD_BLOCK_MAX. */

enum td_msg_type {
	TD_MSG_STATUS = 1,
	TD_MSG_ANNOUNCE = 2,
	TD_MSG_FETCH = 3,
	TD_MSG_RECORDS = 4,
	TD_MSG_PROPOSAL = 5,
	TD_MSG_VOTE = 6,
	TD_MSG_SYNC_REQ = 7,
	TD_MSG_SYNC_BLOCKS = 8,
	TD_MSG_EVIDENCE = 9,
};

struct td_bytes {
	const uint8_t *p; /* points into the decoded input */
	size_t len;
};

/* A decoded message; pointers refer to the input bytes, which must outlive it. */
struct td_msg {
	enum td_msg_type type;
	uint64_t height;             /* STATUS, PROPOSAL, VOTE, SYNC_REQ (from) */
	uint32_t round;              /* PROPOSAL, VOTE */
	int32_t valid_round;         /* PROPOSAL: -1 for none */
	uint8_t hash[TD_HASH_LEN];   /* STATUS: last hash; VOTE: value; PROPOSAL: block hash of hdr */
	bool nil;                    /* VOTE for nothing */
	enum td_vote_type vote_type; /* VOTE */
	uint32_t validator;          /* VOTE */
	uint8_t sig[TD_SIG_LEN];     /* PROPOSAL, VOTE */
	uint64_t count;              /* SYNC_REQ: max blocks */
	struct td_block_header hdr;  /* PROPOSAL */
	uint32_t n_ids;              /* ANNOUNCE, FETCH, PROPOSAL */
	const uint8_t (*ids)[TD_HASH_LEN];
	uint32_t n_items; /* RECORDS: records; SYNC_BLOCKS: 2 per block (block, commit);
					    EVIDENCE, PROPOSAL: evidence items */
	struct td_bytes *items;
	msgpack_unpacked u;              /* private */
	uint8_t (*ids_buf)[TD_HASH_LEN]; /* private */
};

/*
 * Decodes one message; refuses unknown types, wrong shapes or types, counts
 * and item sizes over the limits above, truncated input, trailing bytes and
 * non-canonical encodings. It checks no signature and decodes no record,
 * block or commit inside RECORDS or SYNC_BLOCKS. For a PROPOSAL it computes
 * the block hash of the header into m->hash. On success td_msg_free() must
 * follow; on failure nothing needs freeing. Returns 0 or TD_EINVAL.
 */
__attribute__((warn_unused_result)) int td_msg_decode(struct td_msg *m, const uint8_t *buf, size_t len);
void td_msg_free(struct td_msg *m);
/* Encodes a decoded message again: the same bytes it was decoded from (decoding checked that). */
void td_msg_encode(struct td_buf *b, const struct td_msg *m);

/* Encoders: each writes one whole message into b (which the caller inits). */
void td_msg_status(struct td_buf *b, uint64_t height, const uint8_t hash[static TD_HASH_LEN]);
void td_msg_ids(struct td_buf *b, enum td_msg_type type, const uint8_t (*ids)[TD_HASH_LEN], uint32_t n);
/*
 * Starts a RECORDS, EVIDENCE or SYNC_BLOCKS message of n items; then add n
 * items (pairs for blocks) with td_enc_bin.
 */
void td_msg_items_begin(struct td_buf *b, enum td_msg_type type, uint32_t n);
void td_msg_proposal(struct td_buf *b, const struct td_block *blk, uint32_t round, int32_t valid_round,
		     const uint8_t sig[static TD_SIG_LEN]);
void td_msg_vote(struct td_buf *b, enum td_vote_type type, uint64_t height, uint32_t round, const uint8_t *hash,
		 uint32_t validator, const uint8_t sig[static TD_SIG_LEN]);
void td_msg_sync_req(struct td_buf *b, uint64_t from, uint32_t count);

/*
 * Proposal signatures: over the domain, NUL, the genesis hash (32 bytes) and
 * [height, round, valid round + 1, block hash].
 */
void td_proposal_sign(uint8_t sig[static TD_SIG_LEN], const uint8_t chain[static TD_HASH_LEN], uint64_t height,
		      uint32_t round, int32_t valid_round, const uint8_t hash[static TD_HASH_LEN],
		      const uint8_t sk[static TD_SECKEY_LEN]);
__attribute__((warn_unused_result)) bool td_proposal_verify(const uint8_t sig[static TD_SIG_LEN],
							    const uint8_t chain[static TD_HASH_LEN], uint64_t height,
							    uint32_t round, int32_t valid_round,
							    const uint8_t hash[static TD_HASH_LEN],
							    const uint8_t pk[static TD_PUBKEY_LEN]);

#endif
