/*
 * Proofs of a tender's history that anyone can check offline, with the
 * genesis alone: no node, no socket, no trust in whoever handed the proof.
 *
 * A proof is one JSON document (hex is lowercase):
 *   {"proof": "tenderd-tender-proof", "version": 1,
 *    "chain_id": "...", "genesis_hash": HEX32, "ocid": "...",
 *    "releases": [{"height": H, "index": I, "record": HEX, "path": [HEX32 ...]} ...],
 *    "blocks": [{"height": H, "header": HEX, "commit": HEX} ...]}
 * releases holds every record of the ocid, oldest first: the signed record
 * bytes, its place in its block and its RFC 6962 inclusion path to the
 * block's records root (tenderd/merkle.h). blocks holds each block those
 * records are in, once, by increasing height: the header bytes and the
 * commit bytes. No member carries anything that is not checked, so any
 * changed value is refused.
 *
 * td_proof_verify checks, against genesis g:
 *   - the chain id and genesis hash are g's;
 *   - each header decodes and its commit carries PRECOMMIT signatures of
 *     more than two thirds of g's validators for that header's hash;
 *   - each record decodes and its agency's signature verifies for g;
 *   - each record id is in its block at its index (Merkle path, index and
 *     the header's record count);
 *   - the records are the ocid's, in (height, index) order, the first a
 *     tender naming no previous record and each later one naming the one
 *     before it (tenderd/record.h), so the list is the ocid's whole history
 *     up to the last one, with nothing left out.
 * What a proof cannot show: that no release came after the last one it
 * holds (the header does not commit to each ocid's latest record).
 * Validator set changes are not in format 2's chains yet: g's set signs
 * every block.
 */
#ifndef TENDERD_PROOF_H
#define TENDERD_PROOF_H

#include <jansson.h>

#include "tenderd/block.h"
#include "tenderd/record.h"

#define TD_PROOF_NAME "tenderd-tender-proof"
#define TD_PROOF_VERSION 1
#define TD_PROOF_RELEASES_MAX 100000

/* What a valid proof shows about its last release. */
struct td_proof_result {
	char ocid[TD_OCID_MAX + 1];
	uint32_t releases;                        /* in the proof: the ocid's history up to the last */
	char release_id[TD_ID_MAX + 1];           /* of the last release */
	enum td_kind kind;                        /* of the last release */
	uint8_t agency[TD_PUBKEY_LEN];            /* who signed the last release */
	uint8_t record_id[TD_HASH_LEN];           /* of the last release */
	uint64_t height;                          /* of its block */
	uint64_t time_ms;                         /* its block's time */
	uint32_t signers;                         /* validators whose PRECOMMIT signatures commit its block */
	uint32_t signer_index[TD_VALIDATORS_MAX]; /* their indexes in g */
};

/*
 * Checks proof (a parsed document, borrowed) against g as the file comment
 * says. Returns 0 with *out filled, TD_EINVAL (malformed, or not g's chain)
 * or TD_ESIG (a signature, a commit or a path does not verify), with the
 * failed check in err.
 */
int td_proof_verify(const json_t *proof, const struct td_genesis *g, struct td_proof_result *out, char *err,
		    size_t errlen);

#endif
