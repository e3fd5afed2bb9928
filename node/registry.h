/*
 * The registry: the chain's parties, their roles, and the validator set that
 * signs each height, changed only by governance records voted on chain.
 *
 * A pure state machine (no I/O, no clock): the chain feeds it the governance
 * records of each committed block in order (registry_apply) and asks it who
 * signs a height and who may publish or connect. Validation uses a copy
 * (registry_clone), so a block is valid exactly when applying it succeeds.
 *
 * Parties have stable slots: the genesis parties take 0..P-1 in genesis
 * order (validators, members, observers), and each party added later, or
 * each new key of a replaced one, takes the next slot. Peers are named by
 * slot. A removed party keeps its slot, with no role from its removal on.
 *
 * Rules, each checked when the record is applied:
 * - a proposal names one change (add a validator, member or observer with
 *   its name and key; remove a party; replace a party's key) and is signed
 *   by a validator of the set that signs its block; it counts as its
 *   author's approval;
 * - an approval names a pending proposal (its record id) and is signed by a
 *   validator of the set that signs its block, once per validator;
 * - a proposal is decided in the block whose records bring its approvals
 *   from that block's signing set to more than two thirds of that set; its
 *   change takes effect REGISTRY_EFFECT_DELAY heights later on every node;
 * - when it is decided, a change that would remove a third or more of the
 *   validators in force (so the set never falls below one), add a key some
 *   party holds, or touch a party already removed is rejected (kept, with
 *   the reason) instead;
 * - a proposal not decided within REGISTRY_PROPOSAL_TTL heights of its block
 *   expires; approvals of an expired, decided or rejected proposal are
 *   refused. Proposals are independent: each is decided on its own.
 */
#ifndef TENDERD_REGISTRY_H
#define TENDERD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tenderd/block.h"

#define REGISTRY_EFFECT_DELAY 2     /* a change decided in block H takes effect at H + 2 */
#define REGISTRY_PROPOSAL_TTL 1000u /* heights a proposal waits for its approvals */
#define REGISTRY_PROPOSALS_MAX 256  /* proposals kept, pending or not; the oldest finished go first */

enum registry_action {
	REGISTRY_ADD = 1,         /* a new party: role, name, key */
	REGISTRY_REMOVE = 2,      /* the party holding key leaves */
	REGISTRY_REPLACE_KEY = 3, /* the party holding key goes on under new_key, in the same role and place */
};

struct registry_change {
	enum registry_action action;
	enum td_role role;              /* REGISTRY_ADD */
	char name[TD_NAME_MAX + 1];     /* REGISTRY_ADD */
	uint8_t key[TD_PUBKEY_LEN];     /* the new party's key (ADD), else the key of the party changed */
	uint8_t new_key[TD_PUBKEY_LEN]; /* REGISTRY_REPLACE_KEY */
};

/* A governance record as the registry sees it (the record's id and signer, and what it says). */
struct registry_record {
	bool approval;                 /* else a proposal */
	uint8_t id[TD_HASH_LEN];       /* the record id: a proposal is named by it */
	uint8_t author[TD_PUBKEY_LEN]; /* the signing agency */
	uint8_t proposal[TD_HASH_LEN]; /* approval: the proposal's record id */
	struct registry_change change; /* proposal */
};

/* A validator set: the validators that sign heights from..(the next set's from - 1), in proposer order. */
struct registry_set {
	uint64_t from;
	uint32_t n;
	uint32_t slot[TD_VALIDATORS_MAX];
	struct td_validator v[TD_VALIDATORS_MAX];
	uint8_t hash[TD_HASH_LEN]; /* td_validators_hash of v */
};

enum registry_status {
	REGISTRY_PENDING = 0,
	REGISTRY_DECIDED = 1,  /* takes (or took) effect at effect_height */
	REGISTRY_REJECTED = 2, /* decided, but its change broke a rule then (reason) */
	REGISTRY_EXPIRED = 3,
};

struct registry_proposal {
	uint8_t id[TD_HASH_LEN];
	uint8_t author[TD_PUBKEY_LEN];
	struct registry_change change;
	uint64_t height;         /* of the block that holds it */
	uint64_t decided_height; /* DECIDED, REJECTED */
	uint64_t effect_height;  /* DECIDED */
	enum registry_status status;
	uint32_t n_approvals;
	uint8_t approvers[TD_VALIDATORS_MAX][TD_PUBKEY_LEN];
	char reason[160]; /* REJECTED */
};

struct registry;

/* The genesis validators of g as a set signing from height 1 (slots: their genesis indexes). */
void registry_genesis_set(struct registry_set *s, const struct td_genesis *g);
/* Index of pk in set s, or -1. */
int registry_set_find(const struct registry_set *s, const uint8_t pk[static TD_PUBKEY_LEN]);

/* A registry of genesis g's parties, its validators signing from height 1. */
struct registry *registry_new(const struct td_genesis *g);
struct registry *registry_clone(const struct registry *r);
void registry_free(struct registry *r);

/* The last height applied (0 at genesis). */
uint64_t registry_height(const struct registry *r);

/*
 * The set that signs height h, for 1 <= h <= registry_height(r) + 1 +
 * REGISTRY_EFFECT_DELAY - 1 (every set a decided change already fixed);
 * NULL for a height out of that range.
 */
const struct registry_set *registry_set(const struct registry *r, uint64_t h);

/* Slots: every party ever named. */
uint32_t registry_slots(const struct registry *r);
/* Slot of key pk, or -1. */
int registry_find(const struct registry *r, const uint8_t pk[static TD_PUBKEY_LEN]);
/* Name and key of slot i (< registry_slots). */
const struct td_validator *registry_party(const struct registry *r, uint32_t slot);
/*
 * The role of slot i at height h: 0 and *role set, or -1 if the party has no
 * role then (not yet added, or removed, or its key replaced).
 */
int registry_role(const struct registry *r, uint32_t slot, uint64_t h, enum td_role *role);

/*
 * Applies the governance records of block h (h == registry_height(r) + 1),
 * in block order. Returns 0, or TD_ERULE / TD_EPERM / TD_EINVAL with a
 * message naming the record (its index in recs) and the rule; on error r is
 * unchanged only if the caller applied to a clone, so validate on a clone.
 * A block without governance records is applied with n = 0: it advances the
 * height and expires proposals.
 */
int registry_apply(struct registry *r, uint64_t h, const struct registry_record *recs, uint32_t n, char *err,
		   size_t errlen);

/*
 * Moves to height h (>= registry_height) as if blocks without governance
 * records were applied up to it: proposals past their time expire.
 */
void registry_advance(struct registry *r, uint64_t h);

/*
 * Checks one governance record as registry_apply would at height h
 * (registry_height(r) + 1) on its own, without changing r: for a record
 * offered to the mempool. Returns as registry_apply.
 */
int registry_check(const struct registry *r, uint64_t h, const struct registry_record *g, char *err, size_t errlen);

/* True if some party's role starts or ends at height h (a change takes effect there). */
bool registry_changes_at(const struct registry *r, uint64_t h);

/* The proposals kept, oldest first: *n of them. */
const struct registry_proposal *registry_proposals(const struct registry *r, uint32_t *n);
/* The proposal with record id id, or NULL. */
const struct registry_proposal *registry_proposal(const struct registry *r, const uint8_t id[static TD_HASH_LEN]);

const char *registry_action_name(enum registry_action a);
const char *registry_status_name(enum registry_status s);

#endif
