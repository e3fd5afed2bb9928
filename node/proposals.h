/*
 * Proposals: the blocks proposed at the height being decided.
 *
 * A PROPOSAL carries a block header and record ids. Its signature is checked
 * against the proposer of its (height, round); its block is then rebuilt
 * from the mempool, FETCHing the records we lack from the sender, checked
 * against the header's hash, and handed up through on_complete: only then
 * may consensus see the proposal (it must be able to validate the value).
 * A complete proposal is relayed once to every other peer. Each proposer
 * has PROP_PENDING_PER_PROPOSER slots for proposals being rebuilt, so no
 * key can fill them. Proposals for the next height are kept (at most
 * PROP_FUTURE_MAX) and
 * replayed by prop_new_height(). The last PROP_RECENT committed blocks stay
 * at hand for peers that FETCH their records late.
 */
#ifndef TENDERD_PROPOSALS_H
#define TENDERD_PROPOSALS_H

#include "mempool.h"
#include "registry.h"
#include "nodeio.h"
#include "tenderd/msg.h"

#define PROP_BLOCKS_MAX 16          /* complete blocks and blocks being rebuilt, each, at one height */
#define PROP_FUTURE_MAX 8           /* next-height proposals kept until this height commits */
#define PROP_RECENT 4               /* committed blocks kept to answer late FETCHes */
#define PROP_PENDING_PER_PROPOSER 2 /* proposals of one validator being rebuilt at once */
#define PROP_SEEN_MAX 64            /* signed proposals remembered to catch a proposer signing two */

struct proposals;

struct td_evidence;

struct prop_callbacks {
	void *ctx;
	/* The block of proposal (h, r) by validator from is at hand (prop_block_find finds it). */
	void (*on_complete)(void *ctx, uint32_t from, uint64_t h, uint32_t r, const uint8_t hash[static TD_HASH_LEN],
			    int32_t valid_round);
	/* Records of a proposal are missing: ask peer for them. */
	void (*fetch)(void *ctx, uint32_t peer, const uint8_t (*ids)[TD_HASH_LEN], uint32_t k);
	/* A proposer signed two different proposals for one height and round: ev holds both (NULL: ignored). */
	void (*on_conflict)(void *ctx, const struct td_evidence *ev);
	/*
	 * The validator set that signs height h, or NULL if not known yet
	 * (registry_set of the chain's registry). NULL callback: the genesis
	 * validators at every height.
	 */
	const struct registry_set *(*valset)(void *ctx, uint64_t h);
};

/* Proposals at height for genesis g (borrowed), records from mp (borrowed). */
struct proposals *prop_new(const struct node_io *io, const struct td_genesis *g, struct mempool *mp, uint64_t height,
			   const struct prop_callbacks *cb);
/* NULL does nothing. */
void prop_free(struct proposals *p);

/*
 * A PROPOSAL from peer. A bad signature costs the peer its connection.
 * Proposals for other heights than this one and the next are ignored.
 */
void prop_on_proposal(struct proposals *p, uint32_t peer, const struct td_msg *m);
/* A record arrived: it fills the proposals waiting for it (completing some). */
void prop_offer(struct proposals *p, struct td_record *rec);
/* Sends again the complete proposals of this height, to one peer or NODE_ALL. */
void prop_resend(struct proposals *p, uint32_t to);
/* Asks again for records missing longer than the retry time. */
void prop_refetch(struct proposals *p);

/* The complete block with this hash at this height, or NULL (borrowed). */
struct td_block *prop_block_find(const struct proposals *p, const uint8_t hash[static TD_HASH_LEN]);
/* Keeps blk (ownership taken) among this height's blocks; the oldest goes when full. */
void prop_keep(struct proposals *p, struct td_block *blk);
/*
 * Moves the block with this hash to the recently committed ones and returns
 * it (borrowed: valid until PROP_RECENT more commits), or NULL.
 */
struct td_block *prop_commit(struct proposals *p, const uint8_t hash[static TD_HASH_LEN]);
/* A record of this height's blocks or the recently committed ones, or NULL (borrowed). */
struct td_record *prop_find_record(const struct proposals *p, const uint8_t id[static TD_HASH_LEN]);
/* Proposals still waiting for records. */
uint32_t prop_waiting(const struct proposals *p);

/* Forgets this height's proposals and moves to height h, replaying the proposals kept for it. */
void prop_new_height(struct proposals *p, uint64_t h);

#endif
