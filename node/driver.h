/*
 * The consensus driver: feeds the pure core (consensus.h) and carries out
 * its actions.
 *
 * Every event goes into the core, whose actions wait in the core's queue.
 * The queue is drained in one place, driver_release() at the outermost
 * level: the node holds the driver (driver_hold) around each event it
 * handles, and anything that happens while actions run (a block applied,
 * proposals replayed, records dropped) only adds events to the core, whose
 * actions the same drain picks up. No handler re-enters the drain.
 *
 * Signing: every proposal and vote is made by one helper, after the sign
 * state has been saved with fsync (the double-sign guard); if it cannot be
 * saved, nothing is signed. Decided blocks are applied to the chain here,
 * with a commit built from the precommits kept per height.
 *
 * The consensus log (wal.h): every message is written to it before the
 * core sees it (a received proposal with its block, the first time that
 * block is logged at the height; a verified vote; a timeout that fired),
 * and every message this validator signs is written and synced before it
 * is sent. After a commit the log is emptied but for the next height's
 * votes. driver_resume() feeds the log back to the core after a restart,
 * so the core resumes with the votes it counted and the blocks it may
 * decide; the sign state stays the guard against signing anything new.
 */
#ifndef TENDERD_DRIVER_H
#define TENDERD_DRIVER_H

#include "chain.h"
#include "consensus.h"
#include "mempool.h"
#include "nodeio.h"
#include "proposals.h"
#include "registry.h"

#define DRIVER_CLOCK_PRECISION_MS 30000 /* how far validators' clocks may differ (timely proposals) */
#define DRIVER_VOTES_PER_VALIDATOR 32   /* signed votes kept per validator, nearest the core's round first */
#define DRIVER_VOTES_MAX (DRIVER_VOTES_PER_VALIDATOR * TD_VALIDATORS_MAX)
#define DRIVER_HEARD_MS 3000 /* a validator heard from this recently counts as reachable */
#define DRIVER_WAL_BLOCKS 32 /* distinct blocks written to the consensus log per height */

struct driver;

struct driver_config {
	const char *sign_state_path;
	const char *wal_path;      /* the consensus write-ahead log (wal.h) */
	const char *evidence_path; /* equivocations, both signed messages (evidence.h); NULL: kept in memory only */
	const uint8_t *sk;         /* TD_SECKEY_LEN, borrowed: the key says which validator this node is at each height */
	uint32_t block_max_records, block_max_bytes;
	uint32_t timeout_propose_ms, timeout_vote_ms, timeout_max_ms;
	uint32_t timeout_propose_unreachable_ms;
};

struct driver_callbacks {
	void *ctx;
	/* Block blk was decided and applied (borrowed for the call). */
	void (*on_commit)(void *ctx, const struct td_block *blk);
	/* A pending record can never commit and left the mempool; msg says why. */
	void (*on_dropped)(void *ctx, const uint8_t id[static TD_HASH_LEN], const char *msg);
};

/*
 * A driver for genesis g over chain, mp and proposals (all borrowed). Loads
 * the sign state from cfg->sign_state_path. Returns 0 or an error with a message.
 */
int driver_new(struct driver **out, const struct node_io *io, const struct td_genesis *g, struct chain *chain,
	       struct mempool *mp, struct proposals *prop, const struct driver_config *cfg,
	       const struct driver_callbacks *cb, char *err, size_t errlen);
/* NULL does nothing. */
void driver_free(struct driver *d);

/* This node's index in the validator set of the height being decided, or -1 (a member or an observer now). */
int driver_my_index(const struct driver *d);
/* The validator set of the height being decided (a copy the driver keeps). */
const struct registry_set *driver_set(const struct driver *d);

/* Defers the drain of actions until the matching driver_release(); holds nest. */
void driver_hold(struct driver *d);
/* Ends a hold; the outermost one runs the core's actions until it has nothing more to say. */
void driver_release(struct driver *d);

/*
 * After a restart: feeds the consensus log of the current height back to
 * the core, and resumes the height recorded in the sign state, re-sending
 * what was signed. Returns 0 or TD_EIO with a message (the log cannot be read).
 */
int driver_resume(struct driver *d, char *err, size_t errlen);
/* Starts the core on the height being decided now if it is not on it. */
void driver_start_current(struct driver *d);
/* Starts the next height after delay_ms if records are pending and the core is not on it yet. */
void driver_maybe_start(struct driver *d, uint32_t delay_ms);
/* The block of a proposal is at hand (proposals.h on_complete). */
void driver_on_proposal(struct driver *d, uint32_t from, uint64_t h, uint32_t r, const uint8_t hash[static TD_HASH_LEN],
			int32_t valid_round);
/* A VOTE from peer: checked, kept if a precommit, fed to the core. A bad signature costs the peer. */
void driver_on_vote(struct driver *d, uint32_t peer, const struct td_msg *m);
/* An EVIDENCE message from peer: each item checked, kept, proposed and passed on. Bad evidence costs the peer. */
void driver_on_evidence(struct driver *d, uint32_t peer, const struct td_msg *m);
struct td_evidence;
/* A proposer signed two proposals at one height and round (proposals.c found them): ev, verified. */
void driver_on_proposal_conflict(struct driver *d, const struct td_evidence *ev);
/* A timer of the driver's kinds fired (consensus timeouts, VALUE, START). */
void driver_on_timer(struct driver *d, enum node_timer kind);
/* Records entered the mempool: a proposer waiting for some proposes now. */
void driver_on_pooled(struct driver *d);
/* The chain grew (decided or synced): forget the height's votes and waits. */
void driver_new_height(struct driver *d);
/* Validator v lost its connection: a wait on its proposal ends after the unreachable timeout at most. */
void driver_peer_lost(struct driver *d, uint32_t v);
/* Sends again what this validator signed at the current height, to one peer or NODE_ALL. Signs nothing new. */
void driver_resend(struct driver *d, uint32_t to);
/* No more actions or timers: the node is stopping. */
void driver_stop(struct driver *d);

const struct cons *driver_cons(const struct driver *d);
/* The evidence kept (evidence.h). */
const struct evidence *driver_evidence(const struct driver *d);
/* The consensus log (for the simulator, which tears its unsynced tail on a crash). */
const struct wal *driver_wal(const struct driver *d);
/* The time for a new record or block: the clock, but never before the last block. */
uint64_t driver_ledger_now(const struct driver *d);

#endif
