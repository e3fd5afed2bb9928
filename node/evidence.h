/*
 * Evidence of equivocation that a third party can check, kept by a node:
 * every offence it saw (tenderd/evidence.h), in a file of its home, one JSON
 * document per line, synced when written, and the offences not yet
 * committed, which a proposer puts into its blocks.
 *
 * Each line holds the canonical encoding of the evidence ("evidence", hex),
 * which is what blocks carry and what evidence_check verifies, and, for
 * people: the kind, chain id, the validator's name and public key, height,
 * round, vote type and the two signed messages. Anyone with the genesis can
 * verify both signatures and see that the messages differ. One entry per
 * offence (td_evidence_key); at most EVIDENCE_MAX pending ones are held in
 * memory, and committed or expired ones are forgotten there to make room
 * (the file keeps every line).
 */
#ifndef TENDERD_EVIDENCE_H
#define TENDERD_EVIDENCE_H

#include <jansson.h>

#include "tenderd/block.h"
#include "tenderd/evidence.h"

#define EVIDENCE_FILE "evidence.jsonl"
#define EVIDENCE_MAX 10000

struct evidence;

/*
 * Opens (creating, mode 0600) the evidence file at path for chain g
 * (borrowed), or with path NULL keeps evidence in memory only. Entries in
 * the file are pending again until the chain says they are committed.
 * Returns 0 or an error with a message.
 */
int evidence_open(struct evidence **out, const char *path, const struct td_genesis *g, char *err, size_t errlen);
/* NULL does nothing. */
void evidence_close(struct evidence *e);

/*
 * Records ev (verified by the caller), seen at seen_ms, and makes it
 * pending. Returns 0, TD_EEXIST (the offence is already recorded), TD_EFULL
 * (EVIDENCE_MAX reached) or TD_EIO.
 */
int evidence_add(struct evidence *e, const struct td_evidence *ev, uint64_t seen_ms);
/* True if the offence of ev is recorded (known before its signatures are checked again). */
bool evidence_has(const struct evidence *e, const struct td_evidence *ev);
/* Entries recorded (those in the file when opened included). */
uint32_t evidence_count(const struct evidence *e);
/* Entries not yet known to be committed or expired. */
uint32_t evidence_pending_count(const struct evidence *e);
/* The entries, oldest first, at most limit of the newest (a new reference), or NULL on a read error. */
json_t *evidence_list(const struct evidence *e, uint32_t limit);

/*
 * Pending evidence for a block at height h: each pending entry goes through
 * check (chain_check_evidence's contract); those it accepts are copied into
 * out, at most max, and those it refuses for good (committed, expired,
 * invalid) are no longer pending. Returns how many were copied.
 */
typedef int (*evidence_check_fn)(void *ctx, const struct td_evidence *ev, uint64_t h, char *err, size_t errlen);
uint32_t evidence_pending(struct evidence *e, uint64_t h, evidence_check_fn check, void *ctx, struct td_evidence *out,
			  uint32_t max);

/*
 * Checks one entry as a third party would, against genesis g: its encoding
 * decodes, the validator is in g, both signatures verify for g's hash and
 * the two messages differ. Returns 0 or TD_EINVAL with the reason in err.
 */
int evidence_check(const json_t *entry, const struct td_genesis *g, char *err, size_t errlen);

#endif
