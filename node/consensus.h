/*
 * The consensus core: Tendermint (Buchman, Kwon, Milosevic, "The latest
 * gossip on BFT consensus", arXiv 1807.04938, Algorithm 1) as a pure state
 * machine. Events go in (cons_start, cons_on_proposal, cons_on_vote,
 * cons_on_timeout, cons_on_value, cons_on_validity); actions come out of a
 * queue the caller drains with cons_next_action() after every event. The core
 * touches no socket, clock, file or store, so a test drives it step by step.
 *
 * Validators are indexes 0..n-1 in genesis order; proposer(h, r) is
 * validator (h + r) mod n. Values are block hashes (TD_HASH_LEN bytes); the
 * core never looks inside a block. Thresholds for any n: quorum ("2f+1") is
 * more than two thirds, 2n/3 + 1 votes; "f+1" is f + 1 with f = (n-1)/3.
 *
 * Contracts with the node (the caller):
 * - Messages: the node verifies signatures and feeds only messages really
 *   signed by `from`; it feeds a PROPOSAL only once it holds the block, so
 *   that it can answer VALIDATE for that value. The core processes its own
 *   broadcasts itself: echoes of them coming back from the network are
 *   harmless duplicates.
 * - valid(v) is asynchronous: the core emits VALIDATE{value} once per value
 *   and height and waits for cons_on_validity(value, ok); rules needing
 *   valid(v) (lines 22-33, 36, 49) wait until the answer arrives. Values the
 *   node gave in cons_on_value() are valid without asking.
 * - getValue() (line 18) is REQUEST_VALUE{h, r}; the node answers with
 *   cons_on_value(h, r, value) when it has one. "No empty blocks" and
 *   heartbeats are the node's job: it just delays the answer while it has
 *   nothing to propose (the proposer waits in step propose, the others time
 *   out and move on as the paper says).
 * - Timeouts: SCHEDULE_TIMEOUT{kind, h, r, duration_ms} asks the node to call
 *   cons_on_timeout(kind, h, r) after duration_ms; stale ones are ignored, so
 *   the node never needs to cancel a timer.
 * - Decision: DECIDE{h, r, value, signers} names the validators whose
 *   PRECOMMITs for value in round r form the commit (the first precommit of
 *   each, in increasing index order). The core then moves to height h+1 but
 *   stays idle until the node applied the block and calls cons_start(h+1).
 *   After block sync the node calls cons_start(h') for a later height.
 * - Double signing: before queueing any BROADCAST the core records it in its
 *   sign state (cons_sign_state()); the node persists that struct (fsync)
 *   before it signs the message, and gives it back to cons_init() after a
 *   restart. The core never signs at or below the recorded (height, round,
 *   step); after a restart at that height it resumes at the recorded round
 *   and step, restores its lock from the last non-nil precommit, and re-sends
 *   exactly the messages recorded (flag resend), never anything different.
 * - Restarts: the node keeps a write-ahead log of every message it fed to
 *   the core at the current height (driver.h, wal.h) and feeds it again
 *   after cons_start, so the core gets back the votes it counted, its round
 *   and its valid value; the sign state alone decides what may be signed.
 * - Messages for height h+1 are buffered (at most CONS_BUFFER_PER_VALIDATOR
 *   per sender) and replayed when the core enters h+1; higher heights are
 *   dropped (the node syncs blocks instead).
 * - Votes and proposals of at most CONS_ROUND_SLOTS rounds of the current
 *   height are kept; when full, the round with the fewest distinct senders
 *   (then the farthest from the current round) is forgotten, never the
 *   current, locked or valid round. Forgetting only loses progress, never
 *   safety.
 */
#ifndef TENDERD_CONSENSUS_H
#define TENDERD_CONSENSUS_H

#include "tenderd/types.h"
#include "tenderd/block.h"

#define CONS_ROUND_SLOTS 16          /* rounds of votes kept per height */
#define CONS_PROPOSALS_PER_ROUND 4   /* distinct proposals kept per round (equivocating proposer) */
#define CONS_BUFFER_PER_VALIDATOR 4  /* next-height messages buffered per sender */
#define CONS_EVIDENCE_MAX 64         /* equivocations kept until cons_evidence_clear() */
#define CONS_VCACHE (CONS_ROUND_SLOTS * CONS_PROPOSALS_PER_ROUND + 8) /* validity answers kept per height */
#define CONS_ROUND_MAX 0x3fffffffu   /* rounds above are refused as malformed */

/* Steps of a round; also the kind of a signed message (PROPOSE = proposal). */
enum cons_step {
	CONS_STEP_PROPOSE = 0,
	CONS_STEP_PREVOTE = 1,
	CONS_STEP_PRECOMMIT = 2,
};

enum cons_timeout {
	CONS_TIMEOUT_PROPOSE = 0,
	CONS_TIMEOUT_PREVOTE = 1,
	CONS_TIMEOUT_PRECOMMIT = 2,
};

/* timeout(r) = base + r * delta, at most max (milliseconds). */
struct cons_config {
	uint32_t propose_base, propose_delta, propose_max;
	uint32_t prevote_base, prevote_delta, prevote_max;
	uint32_t precommit_base, precommit_delta, precommit_max;
};

/* Defaults: propose 1000 +500/round cap 5000; prevote/precommit 500 +250/round cap 3000. */
void cons_config_default(struct cons_config *cfg);

/* One signed message kept in the sign state. */
struct cons_signed {
	bool set;                    /* false: nothing of this kind signed at that height */
	uint32_t round;
	bool nil;                    /* votes only: a vote for nothing */
	uint8_t value[TD_HASH_LEN];
	int32_t valid_round;         /* proposals only */
};

/*
 * What this validator signed, persisted by the node (fsync) before it signs
 * the broadcast just queued. All zero (any false) means nothing signed yet.
 */
struct cons_sign_state {
	bool any;                    /* something was signed */
	uint64_t height;             /* position of the last signed message */
	uint32_t round;
	enum cons_step step;
	/* the latest message of each kind at `height`, re-sent after a restart */
	struct cons_signed proposal, prevote, precommit;
	struct cons_signed locked;   /* latest non-nil precommit at `height`: the lock (line 38) */
};

enum cons_action_kind {
	CONS_ACT_PROPOSAL = 0,       /* broadcast <PROPOSAL, h, r, value, valid_round> */
	CONS_ACT_VOTE = 1,           /* broadcast <vote_type, h, r, value or nil> */
	CONS_ACT_TIMEOUT = 2,        /* schedule cons_on_timeout(timeout, h, r) after duration_ms */
	CONS_ACT_REQUEST_VALUE = 3,  /* getValue(): answer with cons_on_value(h, r, ...) */
	CONS_ACT_VALIDATE = 4,       /* valid(value)?: answer with cons_on_validity() */
	CONS_ACT_DECIDE = 5,         /* decision for height h in round r; signers form the commit */
};

struct cons_action {
	enum cons_action_kind kind;
	uint64_t height;
	uint32_t round;
	enum td_vote_type vote_type; /* VOTE */
	bool nil;                    /* VOTE: for nothing */
	uint8_t value[TD_HASH_LEN];  /* PROPOSAL, VOTE (unless nil), VALIDATE, DECIDE */
	int32_t valid_round;         /* PROPOSAL: -1 or the round of the polka for value */
	bool resend;                 /* PROPOSAL, VOTE: re-send after restart of a message already signed */
	enum cons_timeout timeout;   /* TIMEOUT */
	uint32_t duration_ms;        /* TIMEOUT */
	uint32_t n_signers;          /* DECIDE */
	uint16_t signers[TD_VALIDATORS_MAX]; /* DECIDE: increasing validator indexes */
};

/* Proof that a validator signed two different messages of one kind for one (h, r). */
struct cons_evidence {
	uint32_t validator;
	uint64_t height;
	uint32_t round;
	enum cons_step kind;         /* PROPOSE: two proposals; PREVOTE/PRECOMMIT: two votes */
	bool nil_a, nil_b;
	uint8_t a[TD_HASH_LEN];      /* the one counted (first received) */
	uint8_t b[TD_HASH_LEN];      /* the conflicting one */
};

/* Private parts, declared here so the caller can embed struct cons. */
#define CONS_VOTER_BYTES (TD_VALIDATORS_MAX / 8)

/*
 * Votes of one type in one round. A validator's first vote counts in
 * `total` (the paper's 2f+1 <*>); each value counts each validator at most
 * once. A conflicting later vote is evidence and counts only for its own
 * value (the paper counts messages per value: a polka another process saw
 * must become visible here too), and may create a new value entry only
 * while fewer than n such entries exist, so the table holds at most 2n.
 */
struct cons_tally {
	int16_t *first;              /* n entries: -2 none, -1 nil, else index into val */
	uint8_t *evid;               /* n flags: evidence already recorded */
	uint8_t (*val)[TD_HASH_LEN]; /* 2n distinct values voted for */
	uint8_t (*voters)[CONS_VOTER_BYTES]; /* 2n: bit i set when validator i voted for val[k] */
	uint16_t *cnt;               /* 2n: bits set in voters[k] */
	uint8_t nil_voters[CONS_VOTER_BYTES];
	uint16_t nval, nextra, nnil, total;
};

struct cons_prop {
	uint8_t value[TD_HASH_LEN];
	int32_t valid_round;
};

struct cons_round {
	int64_t round;               /* -1: free slot */
	struct cons_tally tally[2];  /* [0] prevotes, [1] precommits */
	uint8_t *sent;               /* n flags: sent something in this round (line 55) */
	uint16_t nsenders;
	uint8_t nprop;
	bool prop_evid;
	struct cons_prop prop[CONS_PROPOSALS_PER_ROUND];
	bool done34, done36, done47; /* "for the first time" rules */
};

struct cons_buffered {
	enum cons_step kind;
	uint32_t from;
	uint32_t round;
	bool nil;
	uint8_t value[TD_HASH_LEN];
	int32_t valid_round;
};

struct cons_vcache_entry {
	uint8_t value[TD_HASH_LEN];
	uint8_t state;               /* 0 free, 1 pending, 2 valid, 3 invalid */
};

struct cons {
	uint32_t n;
	int32_t me;                  /* -1: not a validator */
	struct cons_config cfg;
	uint64_t height;             /* h_p */
	uint32_t round;              /* round_p */
	enum cons_step step;         /* step_p */
	bool started;                /* cons_start() called for height */
	bool awaiting_value;         /* REQUEST_VALUE outstanding for (height, round) */
	bool locked, valid;          /* lockedRound/validRound != -1 */
	uint32_t locked_round, valid_round;
	uint8_t locked_value[TD_HASH_LEN], valid_value[TD_HASH_LEN];
	struct cons_sign_state ss;
	struct cons_round slots[CONS_ROUND_SLOTS];
	struct cons_vcache_entry vcache[CONS_VCACHE];
	uint32_t vcache_next;
	struct cons_buffered *buf;   /* n * CONS_BUFFER_PER_VALIDATOR, for height + 1 */
	uint8_t *buf_count;          /* n: buffered per sender */
	uint32_t nbuf;
	struct cons_evidence evidence[CONS_EVIDENCE_MAX];
	uint32_t nevidence;
	uint64_t evidence_dropped;
	uint64_t *missed;            /* n: rounds left without a valid proposal from their proposer */
	struct cons_action *q;       /* action queue, q_head..q_tail */
	size_t q_head, q_tail, q_cap;
	void *mem;                   /* one allocation behind every n-sized array */
};

/*
 * Initialises c for n validators (1..TD_VALIDATORS_MAX) where this node is
 * validator `me` (-1 for a non-validator, which never signs), at `height`
 * (not started: call cons_start). cfg NULL means the defaults. ss is the
 * restored sign state, or NULL for a validator that never signed. Returns 0
 * or TD_EINVAL. On success cons_free() must follow.
 */
int cons_init(struct cons *c, uint32_t n, int32_t me, uint64_t height, const struct cons_config *cfg,
	      const struct cons_sign_state *ss);
/* Releases what cons_init allocated; a zeroed or freed struct is fine. */
void cons_free(struct cons *c);

/*
 * Starts height h (line 10: StartRound(0)), or resumes it after a restart
 * as recorded in the sign state. h must be the current height if not yet
 * started, or any later height (after a decision or a block sync). Returns 0
 * or TD_EINVAL.
 */
int cons_start(struct cons *c, uint64_t h);

/*
 * A PROPOSAL signed by validator `from`. Returns 0 when processed or
 * harmlessly ignored (old height, duplicate, far future), TD_EINVAL when
 * malformed (index, round, valid_round), TD_EPERM when from is not
 * proposer(h, r), TD_ERULE when it conflicts with an earlier proposal from
 * the same proposer (recorded as evidence).
 */
int cons_on_proposal(struct cons *c, uint32_t from, uint64_t h, uint32_t r, const uint8_t value[static TD_HASH_LEN],
		     int32_t valid_round);
/*
 * A PREVOTE or PRECOMMIT signed by `from`; value NULL is a vote for nil.
 * Returns 0, TD_EINVAL (malformed) or TD_ERULE (a second, different vote for
 * the same height, round and type: recorded as evidence once, never counted
 * twice; see struct cons_tally). The node keeps the signature of every
 * precommit it feeds: DECIDE may name any of them.
 */
int cons_on_vote(struct cons *c, uint32_t from, enum td_vote_type type, uint64_t h, uint32_t r, const uint8_t *value);
/* A timeout scheduled earlier fired (lines 57-67). Stale ones are ignored. Returns 0 or TD_EINVAL. */
int cons_on_timeout(struct cons *c, enum cons_timeout kind, uint64_t h, uint32_t r);
/* The answer to REQUEST_VALUE{h, r}; ignored unless still wanted. Returns 0. */
int cons_on_value(struct cons *c, uint64_t h, uint32_t r, const uint8_t value[static TD_HASH_LEN]);
/* The answer to VALIDATE{value}. Returns 0. */
int cons_on_validity(struct cons *c, const uint8_t value[static TD_HASH_LEN], bool ok);

/* Pops the oldest queued action into *out; false when the queue is empty. */
bool cons_next_action(struct cons *c, struct cons_action *out);

/* The sign state to persist before signing any queued broadcast. */
const struct cons_sign_state *cons_sign_state(const struct cons *c);
/* Equivocations seen (at most CONS_EVIDENCE_MAX, oldest first); *count is set. */
const struct cons_evidence *cons_evidence(const struct cons *c, uint32_t *count);
/* Forgets the evidence list once the node has handled it. */
void cons_evidence_clear(struct cons *c);
/*
 * Missed proposals of validator v as seen by this node: rounds this node
 * left (timeout or round skip, not a decision) without having received a
 * valid proposal from that round's proposer. 0 for a bad index.
 */
uint64_t cons_missed_proposals(const struct cons *c, uint32_t v);

/* proposer(h, r) = (h + r) mod n. */
uint32_t cons_proposer(const struct cons *c, uint64_t h, uint32_t r);
/* timeout(r) for kind from cfg, capped. */
uint32_t cons_timeout_ms(const struct cons_config *cfg, enum cons_timeout kind, uint32_t r);

/*
 * One line on the rounds the core keeps: for each, whether it holds a
 * proposal, the prevote and precommit totals, nil votes and the first byte
 * of each value with its count. For diagnostics (the simulator's failures).
 */
void cons_describe(const struct cons *c, char *buf, size_t len);

uint64_t cons_height(const struct cons *c);
/* True once cons_start() ran for the current height (false again after DECIDE). */
bool cons_started(const struct cons *c);
uint32_t cons_round(const struct cons *c);
enum cons_step cons_step(const struct cons *c);
/* lockedRound / validRound, -1 when none; value copied to out when not NULL and set. */
int64_t cons_locked(const struct cons *c, uint8_t out[TD_HASH_LEN]);
int64_t cons_valid(const struct cons *c, uint8_t out[TD_HASH_LEN]);

#endif
