/*
 * Evidence of equivocation that a third party can check: both conflicting
 * signed votes of a validator for one (height, round, type), kept in a file
 * of the node's home, one JSON document per line, synced when written.
 *
 * Each line holds the chain id, the validator's index, name and public key,
 * the height, round and vote type, and the two votes (value or null for nil,
 * and the Ed25519 signature over td_vote_sign_bytes). Anyone with the
 * genesis can verify both signatures (evidence_check does) and see that
 * they differ. At most EVIDENCE_MAX entries are kept; one per validator,
 * height, round and type.
 */
#ifndef TENDERD_EVIDENCE_H
#define TENDERD_EVIDENCE_H

#include <jansson.h>

#include "tenderd/block.h"

#define EVIDENCE_FILE "evidence.jsonl"
#define EVIDENCE_MAX 10000

struct evidence;

/* One signed vote: value NULL for nil. */
struct evidence_vote {
	const uint8_t *value;
	const uint8_t *sig; /* TD_SIG_LEN */
};

/* Opens (creating, mode 0600) the evidence file at path for chain g (borrowed). Returns 0 or an error with a message. */
int evidence_open(struct evidence **out, const char *path, const struct td_genesis *g, char *err, size_t errlen);
/* NULL does nothing. */
void evidence_close(struct evidence *e);

/*
 * Records votes a and b of validator v (both verified by the caller, with
 * different values) at (h, r, type), seen at seen_ms. Returns 0, TD_EEXIST
 * (already recorded), TD_EFULL (EVIDENCE_MAX reached) or TD_EIO.
 */
int evidence_add_votes(struct evidence *e, uint32_t v, enum td_vote_type type, uint64_t h, uint32_t r,
		       const struct evidence_vote *a, const struct evidence_vote *b, uint64_t seen_ms);
/* Entries recorded (those in the file when opened included). */
uint32_t evidence_count(const struct evidence *e);
/* The entries, oldest first, at most limit of the newest (a new reference), or NULL on a read error. */
json_t *evidence_list(const struct evidence *e, uint32_t limit);

/*
 * Checks one entry as a third party would, against genesis g: the validator
 * is in g, both signatures verify, and the two votes differ. Returns 0 or
 * TD_EINVAL with the reason in err.
 */
int evidence_check(const json_t *entry, const struct td_genesis *g, char *err, size_t errlen);

#endif
