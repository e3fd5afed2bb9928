/*
 * Evidence of equivocation: two different messages a validator signed where
 * the protocol allows it one. Either two votes of one type at one (height,
 * round) for different values, or two proposals at one (height, round).
 * Anyone holding the genesis can check it: both signatures verify under the
 * validator's key, and the two messages differ.
 *
 * Encoding (canonical msgpack), an array of 7:
 *   [kind, validator public key (bin 32), height, round, vote type (0 for
 *    proposals), side a, side b]
 * where a side is [value (bin 32) or nil, valid round + 1 (0 for votes and
 * for proposals without one), signature (bin 64)]. The sides are ordered by
 * their encoding (the shorter first, then bytewise), so one pair of messages has
 * one encoding, and its id (BLAKE2b-256 of it) is fixed. Proposals always
 * carry a value. An offence is named by its key (kind, validator, height,
 * round, vote type): a block holds at most one evidence per key, and the
 * chain commits each key once.
 */
#ifndef TENDERD_EVIDENCE_PROTO_H
#define TENDERD_EVIDENCE_PROTO_H

#include <stdbool.h>
#include <stdint.h>

#include "tenderd/block.h"

#define TD_EVIDENCE_LEN_MAX 512  /* an encoding is about 220 bytes */
#define TD_BLOCK_EVIDENCE_MAX 32 /* evidence items in one block */
/* Evidence older than this many heights (by the block that would hold it) is not committed. */
#define TD_EVIDENCE_MAX_AGE 10000

enum td_evidence_kind {
	TD_EVIDENCE_VOTES = 1,
	TD_EVIDENCE_PROPOSALS = 2,
};

struct td_evidence_side {
	bool nil;                   /* a vote for nothing */
	uint8_t value[TD_HASH_LEN]; /* block hash */
	int32_t valid_round;        /* proposals: -1 for none; votes: -1 */
	uint8_t sig[TD_SIG_LEN];
};

struct td_evidence {
	enum td_evidence_kind kind;
	uint8_t pk[TD_PUBKEY_LEN];
	uint64_t height;
	uint32_t round;
	enum td_vote_type vote_type; /* TD_EVIDENCE_VOTES only, else 0 */
	struct td_evidence_side a, b;
	uint8_t id[TD_HASH_LEN]; /* BLAKE2b-256 of the encoding (td_evidence_seal) */
};

/* Orders the sides canonically and computes the id; call after filling the fields by hand. */
void td_evidence_seal(struct td_evidence *ev);
void td_evidence_encode(struct td_buf *b, const struct td_evidence *ev);
/*
 * Decodes exactly one canonical encoding (sides in order, different, fields
 * in range) and computes its id. Checks no signature. Returns 0 or TD_EINVAL.
 */
__attribute__((warn_unused_result)) int td_evidence_decode(struct td_evidence *ev, const uint8_t *buf, size_t len);
/*
 * Checks both signatures under ev->pk for the chain whose genesis hash is
 * chain. Whether ev->pk was a validator at ev->height is the caller's
 * check. Returns 0 or TD_ESIG with the reason in err.
 */
__attribute__((warn_unused_result)) int
td_evidence_verify(const struct td_evidence *ev, const uint8_t chain[static TD_HASH_LEN], char *err, size_t errlen);
/* The offence's key: kind u8 | pk[32] | height u64 BE | round u32 BE | vote type u8. */
#define TD_EVIDENCE_KEY_LEN (1 + TD_PUBKEY_LEN + 8 + 4 + 1)
void td_evidence_key(uint8_t out[static TD_EVIDENCE_KEY_LEN], const struct td_evidence *ev);

#endif
