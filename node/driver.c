/*
 * The consensus driver (see driver.h). Owns the core, the saved sign state,
 * the precommits of the heights being decided, the consensus timer slots and
 * the proposer's wait for records.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "evidence.h"
#include "log.h"
#include "signstate.h"
#include "tenderd/codec.h"
#include "tenderd/evidence.h"
#include "tenderd/msg.h"
#include "wal.h"

/* Kinds of consensus log entries: msgpack arrays whose first item is the kind. */
enum wal_kind {
	WAL_PROPOSAL = 1, /* [1, height, round, valid round + 1, proposer, block hash, block bytes or nil] */
	WAL_VOTE = 2,     /* [2, VOTE message bytes]: a verified vote, ours or received */
	WAL_TIMEOUT = 3,  /* [3, kind, height, round]: a consensus timeout fired */
};

/* A signed vote kept for commits, relaying and re-sending; height 0: a free slot. */
struct svote {
	uint64_t height;
	uint32_t round;
	uint8_t type; /* enum td_vote_type */
	bool nil;
	uint8_t hash[TD_HASH_LEN];
	uint8_t sig[TD_SIG_LEN];
};

enum vote_kept {
	VOTE_NEW,  /* kept now */
	VOTE_SEEN, /* kept already */
	VOTE_FULL, /* no room: dropped */
};

/* The pending consensus timeout of one kind: a newer one makes an older one stale, so one slot suffices. */
struct tslot {
	bool armed;
	uint64_t h;
	uint32_t r;
	uint64_t due; /* io mono_ms */
};

struct driver {
	const struct node_io *io;
	const struct td_genesis *g;
	struct chain *chain;
	struct mempool *mp;
	struct proposals *prop;
	struct driver_config cfg;
	struct driver_callbacks cb;
	char ss_path[PATH_MAX + 32];
	struct cons cons;
	bool cons_ok;
	struct cons_config cc;           /* the core's timeouts, for each new validator set */
	struct registry_set set;         /* the validators of the core's height (a copy: the registry changes) */
	int32_t me;                      /* this node's index in set, or -1 */
	struct cons_sign_state saved_ss; /* what is on disk */
	bool stopping;
	uint32_t holds;
	bool draining;

	struct svote *votes;               /* DRIVER_VOTES_PER_VALIDATOR slots per validator */
	size_t nvotes;                     /* DRIVER_VOTES_PER_VALIDATOR per validator of the largest set so far */
	uint64_t heard[TD_VALIDATORS_MAX]; /* io mono_ms of the last message signed by each, relayed or not */
	uint64_t pol_h;                    /* the round named as valid_round by the latest proposal of */
	int64_t pol_r;                     /* the core's round, at height pol_h; -1: none */
	struct tslot tmo[3];               /* by enum cons_timeout */
	bool awaiting_value;               /* REQUEST_VALUE(av_h, av_r) unanswered: nothing pending here */
	uint64_t av_h;
	uint32_t av_r;
	struct td_record **scratch; /* cfg.block_max_records slots */

	struct evidence *evidence;
	struct wal *wal;
	bool replaying;                                     /* feeding the core from the log: write nothing to it */
	uint32_t replayed;                                  /* entries fed back at start-up */
	bool wal_failed;                                    /* a write failed: sign nothing more */
	uint8_t wal_blocks[DRIVER_WAL_BLOCKS][TD_HASH_LEN]; /* blocks already in the log at this height */
	uint32_t n_wal_blocks;
};

static uint64_t cur_height(const struct driver *d)
{
	return chain_height(d->chain) + 1;
}

/* The validator set that signs height h, or NULL if not known yet (past the chain's tip + 2). */
static const struct registry_set *vset(const struct driver *d, uint64_t h)
{
	return registry_set(chain_registry(d->chain), h);
}

static const uint8_t *my_pk(const struct driver *d)
{
	return d->cfg.sk + TD_SECKEY_LEN - TD_PUBKEY_LEN;
}

/* True if s is the core's validator set. */
static bool same_set(const struct driver *d, const struct registry_set *s)
{
	return s && memcmp(s->hash, d->set.hash, TD_HASH_LEN) == 0;
}

/* Passes a vote of validator v at height h (in b) on to that height's validators but skip_peer and the voter. */
static void relay_vote(struct driver *d, uint64_t h, uint32_t v, uint32_t skip_peer, const struct td_buf *b)
{
	const struct registry_set *s = vset(d, h);
	if (s && v < s->n)
		nio_relay_slots(d->io, s->slot, s->n, skip_peer, s->slot[v], (const uint8_t *)b->sb.data, b->sb.size);
}

/* Room in the vote table for the votes of n validators (a set that grew, or the next height's). */
static void votes_grow(struct driver *d, uint32_t n)
{
	size_t want = (size_t)n * DRIVER_VOTES_PER_VALIDATOR;
	if (want <= d->nvotes)
		return;
	d->votes = td_xrealloc(d->votes, want * sizeof(*d->votes));
	memset(d->votes + d->nvotes, 0, (want - d->nvotes) * sizeof(*d->votes));
	d->nvotes = want;
}

/*
 * Makes the core decide with the validator set of the current height: a
 * new core when the set changed (this node's index with it), fed the votes
 * of the height kept so far. Returns 0 or TD_EINVAL.
 */
static int adopt_set(struct driver *d, const struct cons_sign_state *ss)
{
	const struct registry_set *s = vset(d, cur_height(d));
	uint64_t h = cur_height(d);

	if (d->cons_ok && same_set(d, s))
		return 0;
	if (d->cons_ok) {
		cons_free(&d->cons);
		d->cons_ok = false;
		log_info("height %llu: the validator set changes to %u validators (hash %02x%02x%02x%02x...)",
			 (unsigned long long)h, s->n, s->hash[0], s->hash[1], s->hash[2], s->hash[3]);
	}
	d->set = *s;
	d->me = registry_set_find(s, my_pk(d));
	votes_grow(d, s->n);
	memset(d->heard, 0, sizeof(d->heard));
	if (cons_init(&d->cons, s->n, d->me, h, &d->cc, ss) != 0)
		return TD_EINVAL;
	d->cons_ok = true;
	for (size_t i = 0; i < d->nvotes; i++) {
		const struct svote *q = &d->votes[i];
		if (q->height == h && i / DRIVER_VOTES_PER_VALIDATOR < s->n)
			cons_on_vote(&d->cons, (uint32_t)(i / DRIVER_VOTES_PER_VALIDATOR), (enum td_vote_type)q->type,
				     h, q->round, q->nil ? NULL : q->hash);
	}
	return 0;
}

int driver_my_index(const struct driver *d)
{
	return d->me;
}

const struct registry_set *driver_set(const struct driver *d)
{
	return &d->set;
}

uint64_t driver_ledger_now(const struct driver *d)
{
	uint64_t now = d->io->wall_ms(d->io->ctx), last = chain_last_time(d->chain);
	return now < last ? last : now;
}

/* A new block's time: the clock, but always after the last block's (block times strictly increase). */
static uint64_t block_time(const struct driver *d)
{
	uint64_t now = d->io->wall_ms(d->io->ctx), last = chain_last_time(d->chain);
	return now <= last ? last + 1 : now;
}

/*
 * Proposer-based timestamps (as CometBFT's PBTS): a fresh proposal (no
 * valid round) is timely when its block's time is within
 * DRIVER_CLOCK_PRECISION_MS of our clock, or behind it by at most that plus
 * timeout_max_ms (the message's way here). An untimely one is not given to
 * the core: we treat it as never received and prevote nil when the round
 * times out. A re-proposal (valid round >= 0) is not checked again: the
 * validators whose prevotes made its polka found it timely, and a clock
 * must never keep a correct validator from a value others locked on.
 */
static bool timely(const struct driver *d, const struct td_block *blk, int64_t *off_ms)
{
	uint64_t now = d->io->wall_ms(d->io->ctx), t = blk->hdr.time_ms;
	*off_ms = (int64_t)(t - now);
	return t <= now + DRIVER_CLOCK_PRECISION_MS && t + DRIVER_CLOCK_PRECISION_MS + d->cfg.timeout_max_ms >= now;
}

int driver_new(struct driver **out, const struct node_io *io, const struct td_genesis *g, struct chain *chain,
	       struct mempool *mp, struct proposals *prop, const struct driver_config *cfg,
	       const struct driver_callbacks *cb, char *err, size_t errlen)
{
	struct driver *d = td_xcalloc(1, sizeof(*d));
	struct cons_sign_state ss;
	int rc;

	*out = NULL;
	d->io = io;
	d->pol_r = -1;
	d->g = g;
	d->chain = chain;
	d->mp = mp;
	d->prop = prop;
	d->cfg = *cfg;
	d->cb = *cb;
	snprintf(d->ss_path, sizeof(d->ss_path), "%s", cfg->sign_state_path);
	d->cfg.sign_state_path = d->ss_path;
	if ((rc = signstate_load(d->ss_path, &ss, err, errlen)))
		goto fail;
	d->saved_ss = ss;
	d->cc = (struct cons_config){
		.propose_base = cfg->timeout_propose_ms,
		.propose_delta = cfg->timeout_propose_ms / 2,
		.propose_max = cfg->timeout_max_ms,
		.prevote_base = cfg->timeout_vote_ms,
		.prevote_delta = cfg->timeout_vote_ms / 2,
		.prevote_max = cfg->timeout_max_ms,
		.precommit_base = cfg->timeout_vote_ms,
		.precommit_delta = cfg->timeout_vote_ms / 2,
		.precommit_max = cfg->timeout_max_ms,
	};
	if ((rc = adopt_set(d, ss.any && ss.height >= cur_height(d) ? &ss : NULL))) {
		snprintf(err, errlen, "consensus: bad validator set or sign state");
		goto fail;
	}
	if (cfg->wal_path && (rc = wal_open(&d->wal, cfg->wal_path, err, errlen)))
		goto fail;
	if ((rc = evidence_open(&d->evidence, cfg->evidence_path, g, err, errlen)))
		goto fail;
	d->scratch = td_xcalloc(cfg->block_max_records ? cfg->block_max_records : 1, sizeof(*d->scratch));
	*out = d;
	return 0;
fail:
	driver_free(d);
	return rc;
}

void driver_free(struct driver *d)
{
	if (!d)
		return;
	if (d->cons_ok)
		cons_free(&d->cons);
	wal_close(d->wal);
	evidence_close(d->evidence);
	free(d->votes);
	free(d->scratch);
	free(d);
}

const struct cons *driver_cons(const struct driver *d)
{
	return &d->cons;
}

const struct wal *driver_wal(const struct driver *d)
{
	return d->wal;
}

const struct evidence *driver_evidence(const struct driver *d)
{
	return d->evidence;
}

/* Sends evidence items to every peer but skip (NODE_ALL: none skipped). */
static void evidence_send(struct driver *d, uint32_t skip, const struct td_evidence *ev, uint32_t n)
{
	struct td_buf b;
	td_buf_init(&b);
	td_msg_items_begin(&b, TD_MSG_EVIDENCE, n);
	for (uint32_t i = 0; i < n; i++) {
		struct td_buf eb;
		td_buf_init(&eb);
		td_evidence_encode(&eb, &ev[i]);
		td_enc_bin(&b, (const uint8_t *)eb.sb.data, eb.sb.size);
		td_buf_free(&eb);
	}
	nio_relay_slots(d->io, d->set.slot, d->set.n, skip, NODE_ALL, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
}

/* Keeps new evidence (verified), logs it and passes it on to every peer but from. */
static void evidence_found(struct driver *d, const struct td_evidence *ev, uint32_t from)
{
	const struct registry_set *es = vset(d, ev->height);
	int v = es ? registry_set_find(es, ev->pk) : -1;
	if (v < 0 || evidence_add(d->evidence, ev, d->io->wall_ms(d->io->ctx)) != 0)
		return;
	if (ev->kind == TD_EVIDENCE_VOTES)
		log_warn("evidence: validator %d (%s) signed two %s votes at height %llu round %u; both kept in %s", v,
			 es->v[v].name, ev->vote_type == TD_VOTE_PREVOTE ? "prevote" : "precommit",
			 (unsigned long long)ev->height, ev->round, EVIDENCE_FILE);
	else
		log_warn("evidence: validator %d (%s) signed two proposals at height %llu round %u; both kept in %s", v,
			 es->v[v].name, (unsigned long long)ev->height, ev->round, EVIDENCE_FILE);
	evidence_send(d, from, ev, 1);
}

/*
 * Validator v signed a vote at (h, r, type) conflicting with one kept: the
 * new one (value, sig) and the first kept with another value are evidence,
 * kept once per (v, h, r, type).
 */
static void record_equivocation(struct driver *d, uint32_t v, enum td_vote_type type, uint64_t h, uint32_t r,
				const uint8_t *value, const uint8_t sig[static TD_SIG_LEN])
{
	const struct svote *slots = &d->votes[(size_t)v * DRIVER_VOTES_PER_VALIDATOR];
	for (uint32_t i = 0; i < DRIVER_VOTES_PER_VALIDATOR; i++) {
		const struct svote *q = &slots[i];
		if (q->height != h || q->round != r || q->type != (uint8_t)type)
			continue;
		if (q->nil == (value == NULL) && (!value || memcmp(q->hash, value, TD_HASH_LEN) == 0))
			continue; /* the same vote */
		struct td_evidence ev = {
			.kind = TD_EVIDENCE_VOTES,
			.height = h,
			.round = r,
			.vote_type = type,
			.a = { .nil = q->nil, .valid_round = -1 },
			.b = { .nil = value == NULL, .valid_round = -1 },
		};
		const struct registry_set *vs = vset(d, h);
		if (!vs || v >= vs->n)
			return;
		memcpy(ev.pk, vs->v[v].pk, TD_PUBKEY_LEN);
		memcpy(ev.a.value, q->hash, TD_HASH_LEN);
		memcpy(ev.a.sig, q->sig, TD_SIG_LEN);
		if (value)
			memcpy(ev.b.value, value, TD_HASH_LEN);
		memcpy(ev.b.sig, sig, TD_SIG_LEN);
		if (ev.a.nil)
			memset(ev.a.value, 0, TD_HASH_LEN);
		td_evidence_seal(&ev);
		evidence_found(d, &ev, NODE_ALL);
		return;
	}
}

void driver_on_proposal_conflict(struct driver *d, const struct td_evidence *ev)
{
	evidence_found(d, ev, NODE_ALL);
}

static int check_evidence(void *ctx, const struct td_evidence *ev, uint64_t h, char *err, size_t errlen)
{
	return chain_check_evidence(ctx, ev, h, err, errlen);
}

void driver_on_evidence(struct driver *d, uint32_t peer, const struct td_msg *m)
{
	for (uint32_t i = 0; i < m->n_items; i++) {
		struct td_evidence ev;
		char err[TD_ERRMSG_MAX];
		if (td_evidence_decode(&ev, m->items[i].p, m->items[i].len) != 0) {
			d->io->disconnect(d->io->ctx, peer, "sent malformed evidence");
			return;
		}
		if (evidence_has(d->evidence, &ev))
			continue; /* known: no signature work for a repeat */
		/* Checked for the block after the current height's: an offence at the current height is news too. */
		int rc = chain_check_evidence(d->chain, &ev, cur_height(d) + 1, err, sizeof(err));
		if (rc == TD_EINVAL || rc == TD_ESIG) {
			d->io->disconnect(d->io->ctx, peer, "sent evidence that does not verify");
			return;
		}
		if (rc == 0)
			evidence_found(d, &ev, peer);
	}
}

/* ---- the consensus log ---- */

/* Appends the entry in b; a failure stops this validator signing (the log would no longer cover it). */
static void wal_put(struct driver *d, const struct td_buf *b)
{
	if (!d->wal || d->replaying)
		return;
	int rc = wal_append(d->wal, (const uint8_t *)b->sb.data, b->sb.size);
	if (rc == TD_EINVAL)
		log_warn("consensus log: an entry of %zu bytes is over the cap; not logged", b->sb.size);
	else if (rc != 0 && !d->wal_failed) {
		d->wal_failed = true;
		log_error("the consensus log cannot be written: this validator signs nothing more until restarted");
	}
}

static void wal_vote(struct driver *d, enum td_vote_type type, uint64_t h, uint32_t r, const uint8_t *hash, uint32_t v,
		     const uint8_t sig[static TD_SIG_LEN])
{
	struct td_buf m, b;
	td_buf_init(&m);
	td_buf_init(&b);
	td_msg_vote(&m, type, h, r, hash, v, sig);
	td_enc_array(&b, 2);
	td_enc_uint(&b, WAL_VOTE);
	td_enc_bin(&b, (const uint8_t *)m.sb.data, m.sb.size);
	wal_put(d, &b);
	td_buf_free(&b);
	td_buf_free(&m);
}

/* A proposal of blk; the block's bytes go in the first time it is logged at this height. */
static void wal_proposal(struct driver *d, uint32_t from, uint32_t r, int32_t valid_round, const struct td_block *blk)
{
	struct td_buf b;
	/* A block over the entry cap is over TD_BLOCK_MAX too: invalid, so nobody can lock on it. */
	bool fresh = d->n_wal_blocks < DRIVER_WAL_BLOCKS && td_block_encoded_len(blk) + 256 <= WAL_ENTRY_MAX;
	if (!d->wal || d->replaying)
		return;
	for (uint32_t i = 0; i < d->n_wal_blocks; i++)
		if (memcmp(d->wal_blocks[i], blk->hash, TD_HASH_LEN) == 0)
			fresh = false;
	td_buf_init(&b);
	td_enc_array(&b, 7);
	td_enc_uint(&b, WAL_PROPOSAL);
	td_enc_uint(&b, blk->hdr.height);
	td_enc_uint(&b, r);
	td_enc_uint(&b, (uint64_t)((int64_t)valid_round + 1));
	td_enc_uint(&b, from);
	td_enc_bin(&b, blk->hash, TD_HASH_LEN);
	if (fresh) {
		uint8_t *enc;
		size_t len;
		td_block_encode(blk, &enc, &len);
		td_enc_bin(&b, enc, len);
		free(enc);
		memcpy(d->wal_blocks[d->n_wal_blocks++], blk->hash, TD_HASH_LEN);
	} else {
		msgpack_pack_nil(&b.pk);
	}
	wal_put(d, &b);
	td_buf_free(&b);
}

static void wal_timeout(struct driver *d, enum cons_timeout kind, uint64_t h, uint32_t r)
{
	struct td_buf b;
	if (!d->wal || d->replaying)
		return;
	td_buf_init(&b);
	td_enc_array(&b, 4);
	td_enc_uint(&b, WAL_TIMEOUT);
	td_enc_uint(&b, (uint64_t)kind);
	td_enc_uint(&b, h);
	td_enc_uint(&b, r);
	wal_put(d, &b);
	td_buf_free(&b);
}

/* Makes the log durable before a signed message leaves; false: send nothing. */
static bool wal_durable(struct driver *d)
{
	if (!d->wal)
		return true;
	if (!d->wal_failed && wal_sync(d->wal) != 0) {
		d->wal_failed = true;
		log_error("the consensus log cannot be synced: this validator signs nothing more until restarted");
	}
	return !d->wal_failed;
}

/* A new height: the log keeps only the votes already received for it. */
static void wal_new_height(struct driver *d)
{
	uint64_t h = cur_height(d);
	d->n_wal_blocks = 0;
	if (!d->wal || d->replaying)
		return;
	if (wal_reset(d->wal) != 0) {
		d->wal_failed = true;
		return;
	}
	for (size_t i = 0; i < d->nvotes; i++) {
		const struct svote *q = &d->votes[i];
		if (q->height >= h)
			wal_vote(d, (enum td_vote_type)q->type, q->height, q->round, q->nil ? NULL : q->hash,
				 (uint32_t)(i / DRIVER_VOTES_PER_VALIDATOR), q->sig);
	}
}

/* ---- signing ---- */

static bool save_sign_state(struct driver *d)
{
	const struct cons_sign_state *ss = cons_sign_state(&d->cons);
	char err[TD_ERRMSG_MAX];
	if (memcmp(ss, &d->saved_ss, sizeof(*ss)) == 0)
		return true;
	if (signstate_save(d->ss_path, ss, err, sizeof(err)) != 0) {
		log_error("cannot save the sign state, refusing to sign: %s", err);
		return false;
	}
	d->saved_ss = *ss;
	return true;
}

/* How far a vote at (h, r) is from what the core works on; smaller is kept first. */
static uint64_t vote_distance(const struct driver *d, uint64_t h, uint32_t r)
{
	uint32_t cur = cons_started(&d->cons) ? cons_round(&d->cons) : 0;
	if (h > cur_height(d))
		return (uint64_t)r + 1; /* next height: its first rounds matter */
	/*
	 * The polka behind our lock and valid value: others need it to accept
	 * our proposal of it. The polka a proposal of the round names: we need
	 * it to accept that proposal, however far back its round.
	 */
	if (cons_started(&d->cons) && h == cons_height(&d->cons) &&
	    ((int64_t)r == cons_locked(&d->cons, NULL) || (int64_t)r == cons_valid(&d->cons, NULL)))
		return 0;
	if (h == d->pol_h && (int64_t)r == d->pol_r)
		return 0;
	return r > cur ? (uint64_t)(r - cur) : (uint64_t)(cur - r);
}

/*
 * How readily a kept vote gives way (larger first): its distance from the
 * core's round, and far more for a vote for a value no block at hand has
 * at this height (made_up). A flooder's votes for made-up values go before
 * its votes for real proposals, which may be part of a polka others locked on.
 */
static uint64_t vote_weight(const struct driver *d, uint64_t h, uint32_t r, bool made_up)
{
	return vote_distance(d, h, r) + (made_up ? (uint64_t)1 << 40 : 0);
}

/* True for a vote for a value (not nil) at the current height whose block is at hand. */
static bool vote_known(const struct driver *d, uint64_t h, const uint8_t *hash)
{
	return hash && h == cur_height(d) && prop_block_find(d->prop, hash);
}

/* Sends the prevotes for value at (h, vr) we keep, from every validator: the polka a proposal names. */
static void pol_send(struct driver *d, uint32_t to, uint64_t h, int32_t vr, const uint8_t value[static TD_HASH_LEN])
{
	if (vr < 0)
		return;
	for (size_t i = 0; i < d->nvotes; i++) {
		const struct svote *q = &d->votes[i];
		if (q->height != h || q->round != (uint32_t)vr || q->type != TD_VOTE_PREVOTE || q->nil ||
		    memcmp(q->hash, value, TD_HASH_LEN) != 0)
			continue;
		struct td_buf b;
		td_buf_init(&b);
		td_msg_vote(&b, TD_VOTE_PREVOTE, h, q->round, q->hash, (uint32_t)(i / DRIVER_VOTES_PER_VALIDATOR),
			    q->sig);
		nio_send(d->io, to, &b);
		td_buf_free(&b);
	}
}

/*
 * Gives the core again the kept prevotes of the polka (h, vr, value): the
 * core holds CONS_ROUND_SLOTS rounds and may have forgotten vr, while the
 * driver kept its votes (pol_r); no peer needs to send them back.
 */
static void pol_feed(struct driver *d, uint64_t h, int32_t vr, const uint8_t value[static TD_HASH_LEN])
{
	if (vr < 0)
		return;
	for (size_t i = 0; i < d->nvotes; i++) {
		const struct svote *q = &d->votes[i];
		if (q->height != h || q->round != (uint32_t)vr || q->type != TD_VOTE_PREVOTE || q->nil ||
		    memcmp(q->hash, value, TD_HASH_LEN) != 0 || i / DRIVER_VOTES_PER_VALIDATOR >= d->set.n)
			continue;
		cons_on_vote(&d->cons, (uint32_t)(i / DRIVER_VOTES_PER_VALIDATOR), TD_VOTE_PREVOTE, h, q->round,
			     q->hash);
	}
}

/*
 * Keeps a verified vote of validator v. Each validator has its own
 * DRIVER_VOTES_PER_VALIDATOR slots, so no key can fill the table for the
 * others, and one vote is kept per (height, round, type, value). An
 * equivocating validator's conflicting votes are all kept, fed to the core
 * and relayed: a polka some correct validators saw (and locked on) must
 * become visible to the others, or they may never unlock them. When a
 * validator's slots are full, the vote farthest from the round the core is
 * in gives way, but never a precommit for a value at the current height
 * (the core may name it in a commit); a flood of far rounds or of
 * conflicting values only displaces the flooder's own votes. A vote that
 * finds no room must not reach the core either: every vote the core counts
 * has its signature here.
 */
static enum vote_kept vote_keep(struct driver *d, uint64_t h, uint32_t r, enum td_vote_type type, uint32_t v,
				const uint8_t *hash, const uint8_t sig[static TD_SIG_LEN])
{
	struct svote *slots = &d->votes[(size_t)v * DRIVER_VOTES_PER_VALIDATOR], *p = NULL;
	uint64_t far = 0, cur = cur_height(d);
	for (uint32_t i = 0; i < DRIVER_VOTES_PER_VALIDATOR; i++) {
		struct svote *q = &slots[i];
		if (q->height == h && q->round == r && q->type == (uint8_t)type && q->nil == (hash == NULL) &&
		    (!hash || memcmp(q->hash, hash, TD_HASH_LEN) == 0))
			return VOTE_SEEN;
		if (q->height < cur) {
			p = q; /* free, or of a finished height */
			far = UINT64_MAX;
			continue;
		}
		bool known = vote_known(d, q->height, q->nil ? NULL : q->hash);
		if (known && q->type == TD_VOTE_PRECOMMIT && q->round <= cons_round(&d->cons) + 1)
			continue; /* may be named in this height's commit */
		uint64_t dist = vote_weight(d, q->height, q->round, !q->nil && q->height == cur && !known);
		if (far != UINT64_MAX && (!p || dist > far)) {
			p = q;
			far = dist;
		}
	}
	if (!p || (far != UINT64_MAX && vote_weight(d, h, r, hash && h == cur && !vote_known(d, h, hash)) >= far))
		return VOTE_FULL; /* full of nearer votes: this one is the farthest */
	p->height = h;
	p->round = r;
	p->type = (uint8_t)type;
	p->nil = hash == NULL;
	if (hash)
		memcpy(p->hash, hash, TD_HASH_LEN);
	memcpy(p->sig, sig, TD_SIG_LEN);
	return VOTE_NEW;
}

/* Sends every kept vote of validator v at height h or later to `to`; with NODE_ALL, to every peer but v. */
static void votes_send(struct driver *d, uint32_t to, uint32_t v, uint64_t h)
{
	const struct svote *slots = &d->votes[(size_t)v * DRIVER_VOTES_PER_VALIDATOR];
	for (uint32_t i = 0; i < DRIVER_VOTES_PER_VALIDATOR; i++) {
		const struct svote *q = &slots[i];
		if (q->height < h)
			continue;
		struct td_buf b;
		td_buf_init(&b);
		td_msg_vote(&b, (enum td_vote_type)q->type, q->height, q->round, q->nil ? NULL : q->hash, v, q->sig);
		if (to != NODE_ALL)
			nio_send(d->io, to, &b);
		else
			relay_vote(d, q->height, v, NODE_ALL, &b);
		td_buf_free(&b);
	}
}

/*
 * Signs a proposal of blk (vote_type ignored) or a vote (blk NULL; value
 * NULL for nil) at (h, r) and sends it to `to`, after writing a fresh one
 * (not a re-send) to the consensus log, syncing the log and saving the
 * sign state; if either fails, nothing is sent. Ed25519 is deterministic:
 * signing the same message again gives the same bytes, so re-sends use
 * this too.
 */
static void sign_send(struct driver *d, uint32_t to, const struct td_block *blk, enum td_vote_type type, uint64_t h,
		      uint32_t r, int32_t valid_round, const uint8_t *value, bool fresh)
{
	uint8_t sig[TD_SIG_LEN];
	uint32_t me = (uint32_t)d->me;
	struct td_buf b;
	td_buf_init(&b);
	if (blk) {
		td_proposal_sign(sig, d->g->hash, h, r, valid_round, blk->hash, d->cfg.sk);
		if (fresh)
			wal_proposal(d, me, r, valid_round, blk);
		td_msg_proposal(&b, blk, r, valid_round, sig);
	} else {
		td_vote_sign(sig, d->g->hash, type, h, r, value, d->cfg.sk);
		if (vote_keep(d, h, r, type, me, value, sig) == VOTE_NEW || fresh)
			wal_vote(d, type, h, r, value, me, sig);
		td_msg_vote(&b, type, h, r, value, me, sig);
	}
	/*
	 * The log holds the message, and a proposal its block, before the sign
	 * state names it: a restarted validator must never be locked on a
	 * block it cannot find. Both are on disk before the message leaves.
	 */
	if (wal_durable(d) && save_sign_state(d))
		nio_send(d->io, to, &b);
	td_buf_free(&b);
}

void driver_resend(struct driver *d, uint32_t to)
{
	const struct cons_sign_state *ss = cons_sign_state(&d->cons);
	uint64_t h = cur_height(d);
	if (d->me >= 0 && ss->any && ss->height == h) {
		if (ss->proposal.set) {
			const struct td_block *blk = prop_block_find(d->prop, ss->proposal.value);
			if (blk)
				sign_send(d, to, blk, TD_VOTE_PREVOTE, h, ss->proposal.round, ss->proposal.valid_round,
					  NULL, false);
			pol_send(d, to, h, ss->proposal.valid_round, ss->proposal.value);
		}
		const struct cons_signed *mine[2] = { &ss->prevote, &ss->precommit };
		for (int i = 0; i < 2; i++) {
			if (!mine[i]->set)
				continue;
			sign_send(d, to, NULL, i == 0 ? TD_VOTE_PREVOTE : TD_VOTE_PRECOMMIT, h, mine[i]->round, -1,
				  mine[i]->nil ? NULL : mine[i]->value, false);
		}
	}
	/* Everyone else's votes of this height, for a peer that lost them on the way. */
	for (uint32_t v = 0; v < d->set.n; v++)
		if ((int32_t)v != d->me && d->set.slot[v] != to)
			votes_send(d, to, v, h);
}

/* ---- values ---- */

/* Puts the pending evidence that the chain accepts for blk's height into blk; returns blk. */
/* Puts a copy of the n evidence items ev into blk; returns blk. */
static struct td_block *with_evidence(struct td_block *blk, const struct td_evidence *ev, uint32_t n)
{
	if (n > 0) {
		struct td_evidence *own = td_xcalloc(n, sizeof(*own));
		memcpy(own, ev, n * sizeof(*ev));
		td_block_set_evidence(blk, own, n);
	}
	return blk;
}

/* The pending evidence the chain accepts at height h, into ev; *bytes: what it adds to a block's encoding. */
static uint32_t block_evidence(struct driver *d, uint64_t h, struct td_evidence ev[static TD_BLOCK_EVIDENCE_MAX],
			       uint32_t *bytes)
{
	uint32_t n = evidence_pending(d->evidence, h, check_evidence, d->chain, ev, TD_BLOCK_EVIDENCE_MAX);
	*bytes = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct td_buf b;
		td_buf_init(&b);
		td_evidence_encode(&b, &ev[i]);
		*bytes += (uint32_t)b.sb.size + 3; /* its bin header */
		td_buf_free(&b);
	}
	return n;
}

/*
 * Builds a block at height h from pending records that pass the chain's
 * checks; with nothing pending, an empty block if allow_empty, else NULL. A
 * record that fails alone is dropped from the mempool and reported.
 */
static struct td_block *build_block(struct driver *d, uint64_t h, bool allow_empty)
{
	char err[TD_ERRMSG_MAX];
	struct td_evidence ev[TD_BLOCK_EVIDENCE_MAX];
	uint32_t evbytes, nev = block_evidence(d, h, ev, &evbytes);
	for (;;) {
		/*
		 * block_max_bytes bounds the encoded block: header, arrays, evidence
		 * and each record's bin header included.
		 */
		uint32_t budget = d->cfg.block_max_bytes - TD_BLOCK_FIXED_OVERHEAD;
		uint32_t k = mempool_peek(d->mp, d->scratch, d->cfg.block_max_records,
					  budget > evbytes ? budget - evbytes : 0);
		if (k == 0) {
			if (!allow_empty)
				return NULL;
			return with_evidence(td_block_new(h, chain_last_hash(d->chain), block_time(d),
							  d->set.v[d->me].pk, chain_next_validators(d->chain), NULL, 0),
					     ev, nev);
		}
		for (uint32_t attempt = 0; attempt < 2; attempt++) {
			uint32_t take = attempt == 0 ? k : 1;
			struct td_record **recs = td_xcalloc(take, sizeof(*recs));
			for (uint32_t i = 0; i < take; i++)
				recs[i] = td_record_ref(d->scratch[i]);
			struct td_block *blk = with_evidence(td_block_new(h, chain_last_hash(d->chain), block_time(d),
									  d->set.v[d->me].pk,
									  chain_next_validators(d->chain), recs, take),
							     ev, nev);
			if (chain_validate(d->chain, blk, err, sizeof(err)) == 0)
				return blk;
			td_block_free(blk);
			if (take == 1) {
				/* The oldest record alone is refused: it can never commit. */
				struct td_record *bad = d->scratch[0];
				uint8_t id[TD_HASH_LEN];
				memcpy(id, bad->id, TD_HASH_LEN);
				log_warn("dropping pending record for %s: %s", bad->ocid, err);
				mempool_remove(d->mp, id);
				d->cb.on_dropped(d->cb.ctx, id, err);
				break;
			}
		}
	}
}

/* Answers the core's REQUEST_VALUE(h, r) with blk, kept among the height's blocks. */
static void give_value(struct driver *d, uint64_t h, uint32_t r, struct td_block *blk)
{
	d->awaiting_value = false;
	d->io->timer(d->io->ctx, NODE_TIMER_VALUE, NODE_TIMER_OFF);
	prop_keep(d->prop, blk);
	cons_on_value(&d->cons, h, r, blk->hash);
}

static bool awaited(const struct driver *d)
{
	return d->awaiting_value && d->av_h == cur_height(d) && cons_height(&d->cons) == d->av_h &&
	       cons_round(&d->cons) == d->av_r;
}

/* ---- actions ---- */

/*
 * True when the proposer of (h, r) is another validator with no connection
 * to us and nothing it signed reached us, relayed or not, for
 * DRIVER_HEARD_MS: its proposal is unlikely to arrive, and waiting the full
 * propose timeout for it only delays the next round. Timeouts bear on
 * liveness only, never on safety.
 */
static bool proposer_unreachable(struct driver *d, uint64_t h, uint32_t r)
{
	uint32_t p = cons_proposer(&d->cons, h, r);
	uint64_t now = d->io->mono_ms(d->io->ctx);
	return d->set.n > 1 && (int32_t)p != d->me && p < d->set.n && !d->io->connected(d->io->ctx, d->set.slot[p]) &&
	       (d->heard[p] == 0 || now - d->heard[p] > DRIVER_HEARD_MS);
}

/*
 * A decided block the chain cannot take (the store failed, or a check that
 * validation missed): consensus stops here, loudly, instead of idling. The
 * node goes on answering queries; its pending records are dropped with the
 * reason, so publishes waiting for them get an answer. Restarting the node
 * after the cause is fixed resumes (block sync fetches the decided block).
 */
static void halt(struct driver *d, uint64_t height, const char *why)
{
	char msg[TD_ERRMSG_MAX + 96];
	log_error("consensus stopped: decided block %llu cannot be applied: %s", (unsigned long long)height, why);
	log_error("this node signs nothing more until it is restarted; fix the cause (see above) and restart it");
	snprintf(msg, sizeof(msg), "consensus stopped: decided block %llu cannot be applied: %s",
		 (unsigned long long)height, why);
	driver_stop(d);
	for (;;) {
		uint32_t k = mempool_peek(d->mp, d->scratch, 1, UINT64_MAX);
		if (k == 0)
			break;
		uint8_t id[TD_HASH_LEN];
		memcpy(id, d->scratch[0]->id, TD_HASH_LEN);
		mempool_remove(d->mp, id);
		d->cb.on_dropped(d->cb.ctx, id, msg);
	}
}

static void decide(struct driver *d, const struct cons_action *a)
{
	char err[TD_ERRMSG_MAX], hex[2 * TD_HASH_LEN + 1];
	struct td_block *blk = prop_block_find(d->prop, a->value);
	struct td_commit_sig sigs[TD_VALIDATORS_MAX];
	struct td_commit commit = { .height = a->height, .round = a->round, .n_sigs = 0, .sigs = sigs };

	if (a->height != cur_height(d))
		return; /* already applied through block sync */
	if (!blk) {
		log_error("decided height %llu but the block is unknown; waiting for block sync",
			  (unsigned long long)a->height);
		return;
	}
	memcpy(commit.block_hash, a->value, TD_HASH_LEN);
	for (uint32_t i = 0; i < a->n_signers; i++) {
		const struct svote *slots = &d->votes[(size_t)a->signers[i] * DRIVER_VOTES_PER_VALIDATOR];
		for (uint32_t j = 0; j < DRIVER_VOTES_PER_VALIDATOR; j++) {
			const struct svote *p = &slots[j];
			if (p->height == a->height && p->round == a->round && p->type == TD_VOTE_PRECOMMIT && !p->nil &&
			    memcmp(p->hash, a->value, TD_HASH_LEN) == 0) {
				sigs[commit.n_sigs].validator = a->signers[i];
				memcpy(sigs[commit.n_sigs++].sig, p->sig, TD_SIG_LEN);
				break;
			}
		}
	}
	if (commit.n_sigs < a->n_signers) {
		/* Not expected (every vote the core counts is kept), but no reason to stop: a peer's commit will do. */
		log_warn(
			"decided height %llu but %u of %u precommit signatures are not at hand; waiting for block sync",
			(unsigned long long)a->height, a->n_signers - commit.n_sigs, a->n_signers);
		return;
	}
	if (chain_apply(d->chain, blk, &commit, err, sizeof(err)) != 0) {
		halt(d, a->height, err);
		return;
	}
	td_hex(hex, blk->hash, TD_HASH_LEN);
	log_info("committed block %llu (%s) round %u with %u record%s, %u signatures", (unsigned long long)a->height,
		 hex, a->round, blk->hdr.n_records, blk->hdr.n_records == 1 ? "" : "s", commit.n_sigs);
	for (uint32_t i = 0; i < blk->hdr.n_records; i++)
		mempool_remove(d->mp, blk->records[i]->id);
	/* The committed block stays at hand for late FETCHes. */
	blk = prop_commit(d->prop, a->value);
	/* A big block leaves megabytes of freed batch and encoding buffers: give them back. */
	if (blk->hdr.n_records >= 1024)
		malloc_trim(0);
	d->cb.on_commit(d->cb.ctx, blk);
}

static void act(struct driver *d, const struct cons_action *a)
{
	log_debug("consensus action %d at height %llu round %u%s", (int)a->kind, (unsigned long long)a->height,
		  a->round, a->kind == CONS_ACT_VOTE ? (a->nil ? " (vote nil)" : " (vote)") : "");
	switch (a->kind) {
	case CONS_ACT_PROPOSAL: {
		const struct td_block *blk = prop_block_find(d->prop, a->value);
		if (!blk) {
			log_warn("cannot re-send proposal for height %llu round %u: block not at hand",
				 (unsigned long long)a->height, a->round);
			return;
		}
		sign_send(d, NODE_ALL, blk, TD_VOTE_PREVOTE, a->height, a->round, a->valid_round, NULL, !a->resend);
		pol_send(d, NODE_ALL, a->height, a->valid_round, a->value);
		return;
	}
	case CONS_ACT_VOTE:
		sign_send(d, NODE_ALL, NULL, a->vote_type, a->height, a->round, -1, a->nil ? NULL : a->value,
			  !a->resend);
		return;
	case CONS_ACT_TIMEOUT: {
		uint64_t ms = a->duration_ms;
		if (a->timeout == CONS_TIMEOUT_PROPOSE && proposer_unreachable(d, a->height, a->round) &&
		    ms > d->cfg.timeout_propose_unreachable_ms)
			ms = d->cfg.timeout_propose_unreachable_ms;
		struct tslot *t = &d->tmo[a->timeout];
		t->armed = true;
		t->h = a->height;
		t->r = a->round;
		t->due = d->io->mono_ms(d->io->ctx) + ms;
		d->io->timer(d->io->ctx, (enum node_timer)a->timeout, ms);
		return;
	}
	case CONS_ACT_REQUEST_VALUE: {
		if (a->height != cur_height(d))
			return; /* the chain moved on by block sync: a block for that height would refuse every record */
		struct td_block *blk = build_block(d, a->height, false);
		if (!blk) {
			/*
			 * Nothing pending here although the height started (records are
			 * pending elsewhere): wait for them to arrive, but no longer than a
			 * propose timeout, so the others are not left waiting on us.
			 */
			d->awaiting_value = true;
			d->av_h = a->height;
			d->av_r = a->round;
			d->io->timer(d->io->ctx, NODE_TIMER_VALUE, d->cfg.timeout_propose_ms);
			return;
		}
		give_value(d, a->height, a->round, blk);
		return;
	}
	case CONS_ACT_VALIDATE: {
		if (a->height != cur_height(d))
			return; /* the chain moved on by block sync */
		struct td_block *blk = prop_block_find(d->prop, a->value);
		char err[TD_ERRMSG_MAX];
		/* No clock here: the answer is cached per value, so it must not depend on when it is asked. */
		bool later = blk && blk->hdr.time_ms > chain_last_time(d->chain);
		bool ok = blk && later && chain_validate(d->chain, blk, err, sizeof(err)) == 0;
		if (blk && !ok)
			log_warn("refusing proposed block %llu: %s", (unsigned long long)blk->hdr.height,
				 later ? err : "its time is not after the previous block's");
		cons_on_validity(&d->cons, a->value, ok);
		return;
	}
	case CONS_ACT_DECIDE: decide(d, a); return;
	}
}

/* The one place that runs actions: loops until the core's queue is empty. */
static void drain(struct driver *d)
{
	struct cons_action a;
	if (d->draining || !d->cons_ok || d->stopping)
		return;
	d->draining = true;
	for (;;) {
		if (awaited(d) && mempool_count(d->mp) > 0) {
			struct td_block *blk = build_block(d, d->av_h, false);
			if (blk)
				give_value(d, d->av_h, d->av_r, blk);
		}
		if (d->stopping || !cons_next_action(&d->cons, &a))
			break;
		act(d, &a);
	}
	d->draining = false;
}

void driver_hold(struct driver *d)
{
	d->holds++;
}

void driver_release(struct driver *d)
{
	if (--d->holds == 0)
		drain(d);
}

/* ---- events ---- */

void driver_start_current(struct driver *d)
{
	if (!cons_started(&d->cons) || cons_height(&d->cons) != cur_height(d))
		cons_start(&d->cons, cur_height(d));
}

/*
 * Whether our own message at (h, r, step) left this node: the sign state is
 * saved before every send, and only moves forward, so a message at or below
 * its position was sent (the one at its position only with the recorded
 * value). A logged message of ours above it never left: the crash came
 * between the log and the sign state, and it must not count.
 */
static bool own_sent(const struct driver *d, uint64_t h, uint32_t r, enum cons_step step, const uint8_t *value)
{
	const struct cons_sign_state *ss = cons_sign_state(&d->cons);
	if (!ss->any || ss->height < h || (ss->height == h && ss->round < r) ||
	    (ss->height == h && ss->round == r && ss->step < step))
		return false;
	const struct cons_signed *x = step == CONS_STEP_PROPOSE ? &ss->proposal :
				      step == CONS_STEP_PREVOTE ? &ss->prevote :
								  &ss->precommit;
	if (ss->height != h || !x->set || x->round != r)
		return true;
	return x->nil ? value == NULL : value && memcmp(x->value, value, TD_HASH_LEN) == 0;
}

/* Feeds one logged entry back to the core (entries of other heights are skipped). */
static int replay_entry(void *ctx, const uint8_t *p, size_t len)
{
	struct driver *d = ctx;
	msgpack_unpacked u;
	struct td_rd rd = { true };
	uint64_t h = cur_height(d);
	uint32_t n;
	d->replayed++;
	msgpack_unpacked_init(&u);
	if (td_unpack(&u, p, len) != 0)
		goto bad;
	const msgpack_object *it = td_get_array(&rd, &u.data, UINT32_MAX, 8, &n);
	uint64_t kind = n > 0 ? td_get_uint(&rd, &it[0]) : 0;
	if (!rd.ok || n == 0)
		goto bad;
	if (kind == WAL_VOTE && n == 2 && it[1].type == MSGPACK_OBJECT_BIN) {
		struct td_msg m;
		if (td_msg_decode(&m, (const uint8_t *)it[1].via.bin.ptr, it[1].via.bin.size) != 0)
			goto bad;
		const struct registry_set *vs = vset(d, m.height);
		if (m.type != TD_MSG_VOTE || !vs || m.validator >= vs->n || m.round > CONS_ROUND_MAX) {
			td_msg_free(&m);
			goto bad;
		}
		bool mine = memcmp(vs->v[m.validator].pk, my_pk(d), TD_PUBKEY_LEN) == 0;
		enum cons_step step = m.vote_type == TD_VOTE_PREVOTE ? CONS_STEP_PREVOTE : CONS_STEP_PRECOMMIT;
		votes_grow(d, vs->n);
		if ((m.height == h || (m.height == h + 1 && same_set(d, vs))) &&
		    (!mine || own_sent(d, m.height, m.round, step, m.nil ? NULL : m.hash))) {
			if (vote_keep(d, m.height, m.round, m.vote_type, m.validator, m.nil ? NULL : m.hash, m.sig) !=
			    VOTE_FULL) {
				if (m.height == h)
					driver_start_current(d);
				cons_on_vote(&d->cons, m.validator, m.vote_type, m.height, m.round,
					     m.nil ? NULL : m.hash);
			}
		}
		td_msg_free(&m);
	} else if (kind == WAL_PROPOSAL && n == 7) {
		uint64_t eh = td_get_uint(&rd, &it[1]), r = td_get_uint(&rd, &it[2]), vr1 = td_get_uint(&rd, &it[3]),
			 from = td_get_uint(&rd, &it[4]);
		uint8_t hash[TD_HASH_LEN];
		td_get_bin_fixed(&rd, &it[5], hash, TD_HASH_LEN);
		if (!rd.ok || r > CONS_ROUND_MAX || vr1 > r || from >= TD_VALIDATORS_MAX)
			goto bad;
		if (eh != h || from >= d->set.n)
			goto out;
		if (it[6].type == MSGPACK_OBJECT_BIN && !prop_block_find(d->prop, hash)) {
			struct td_block *blk;
			char err[TD_ERRMSG_MAX];
			if (td_block_decode(&blk, (const uint8_t *)it[6].via.bin.ptr, it[6].via.bin.size, d->g->hash,
					    true, err, sizeof(err)) != 0) {
				log_warn("consensus log: skipping a proposed block: %s", err);
				goto out;
			}
			if (memcmp(blk->hash, hash, TD_HASH_LEN) != 0 || blk->hdr.height != h) {
				td_block_free(blk);
				goto bad;
			}
			/* Its records were pending here before the crash: pending again, unless committed since. */
			for (uint32_t i = 0; i < blk->hdr.n_records; i++) {
				struct td_record *rec = blk->records[i];
				if (!mempool_has(d->mp, rec->id) &&
				    chain_check_record(d->chain, rec, err, sizeof(err)) == 0 &&
				    mempool_add(d->mp, td_record_ref(rec), err, sizeof(err)) != 0)
					td_record_free(rec);
			}
			prop_keep(d->prop, blk);
		}
		if (!prop_block_find(d->prop, hash))
			goto out; /* the block was not logged (too many at this height) */
		if (d->n_wal_blocks < DRIVER_WAL_BLOCKS)
			memcpy(d->wal_blocks[d->n_wal_blocks++], hash, TD_HASH_LEN);
		if ((int32_t)from == d->me && !own_sent(d, h, (uint32_t)r, CONS_STEP_PROPOSE, hash))
			goto out; /* never sent: its block and records stay, the proposal does not count */
		driver_start_current(d);
		cons_on_proposal(&d->cons, (uint32_t)from, h, (uint32_t)r, hash, (int32_t)vr1 - 1);
	} else if (kind == WAL_TIMEOUT && n == 4) {
		uint64_t tk = td_get_uint(&rd, &it[1]), eh = td_get_uint(&rd, &it[2]), r = td_get_uint(&rd, &it[3]);
		if (!rd.ok || tk > CONS_TIMEOUT_PRECOMMIT || r > CONS_ROUND_MAX)
			goto bad;
		if (eh == h) {
			driver_start_current(d);
			cons_on_timeout(&d->cons, (enum cons_timeout)tk, h, (uint32_t)r);
		}
	} else {
		goto bad;
	}
out:
	msgpack_unpacked_destroy(&u);
	return 0;
bad:
	log_warn("consensus log: skipping a malformed entry");
	goto out;
}

int driver_resume(struct driver *d, char *err, size_t errlen)
{
	const struct cons_sign_state *ss = cons_sign_state(&d->cons);
	int rc = 0;
	driver_hold(d);
	if (ss->any && ss->height == cur_height(d))
		cons_start(&d->cons, ss->height);
	if (d->wal) {
		d->replaying = true;
		rc = wal_replay(d->wal, replay_entry, d, err, errlen);
		d->replaying = false;
		if (d->replayed > 0)
			log_info("consensus log: %u entries fed back at height %llu (%llu bytes)", d->replayed,
				 (unsigned long long)cur_height(d), (unsigned long long)wal_size(d->wal));
	}
	driver_release(d);
	return rc;
}

void driver_maybe_start(struct driver *d, uint32_t delay_ms)
{
	if (d->stopping || mempool_count(d->mp) == 0)
		return;
	if (cons_started(&d->cons) && cons_height(&d->cons) == cur_height(d))
		return;
	if (delay_ms > 0 && d->io->timer_pending(d->io->ctx, NODE_TIMER_START))
		return;
	d->io->timer(d->io->ctx, NODE_TIMER_START, delay_ms);
}

void driver_on_proposal(struct driver *d, uint32_t from, uint64_t h, uint32_t r, const uint8_t hash[static TD_HASH_LEN],
			int32_t valid_round)
{
	if (h != cur_height(d) || from >= d->set.n)
		return;
	d->heard[from] = d->io->mono_ms(d->io->ctx);
	const struct td_block *blk = prop_block_find(d->prop, hash);
	int64_t off;
	if (blk && valid_round < 0 && !timely(d, blk, &off)) {
		log_warn("ignoring the proposal of %s for height %llu round %u: its time is %+.1f s from this "
			 "node's clock (more than %u s); check both clocks (NTP)",
			 d->set.v[from].name, (unsigned long long)h, r, (double)off / 1000.0,
			 DRIVER_CLOCK_PRECISION_MS / 1000);
		return;
	}
	if (blk)
		wal_proposal(d, from, r, valid_round, blk);
	driver_hold(d);
	driver_start_current(d);
	/*
	 * A proposal that names a polka (valid_round >= 0) is accepted only
	 * with that polka's prevotes. Keep them however old their round, and
	 * pass on the ones kept: a peer reached only through us (a star) may
	 * have forgotten that round, and a vote we relayed once is not relayed
	 * again; and give them to the core again, which may have forgotten
	 * that round. Only the proposal of the core's round counts, so a
	 * proposer of some far round cannot take the protection away from it;
	 * the proposer sends its proposal again while no block comes.
	 */
	if (valid_round >= 0 && from == cons_proposer(&d->cons, h, r) && r == cons_round(&d->cons)) {
		d->pol_h = h;
		d->pol_r = valid_round;
		pol_send(d, NODE_ALL, h, valid_round, hash);
		pol_feed(d, h, valid_round, hash);
	}
	cons_on_proposal(&d->cons, from, h, r, hash, valid_round);
	driver_release(d);
}

void driver_on_vote(struct driver *d, uint32_t peer, const struct td_msg *m)
{
	uint64_t h = cur_height(d);
	if ((m->height != h && m->height != h + 1) || m->round > CONS_ROUND_MAX)
		return;
	const struct registry_set *vs = vset(d, m->height);
	if (!vs)
		return;
	if (m->validator >= vs->n) {
		d->io->disconnect(d->io->ctx, peer, "sent a vote from an unknown validator");
		return;
	}
	if (!td_vote_verify(m->sig, d->g->hash, m->vote_type, m->height, m->round, m->nil ? NULL : m->hash,
			    vs->v[m->validator].pk)) {
		d->io->disconnect(d->io->ctx, peer, "sent a vote with a bad signature");
		return;
	}
	log_debug("vote type %d from %u at height %llu round %u%s", (int)m->vote_type, m->validator,
		  (unsigned long long)m->height, m->round, m->nil ? " nil" : "");
	if (m->height == h || same_set(d, vs))
		d->heard[m->validator] = d->io->mono_ms(d->io->ctx);
	/*
	 * A vote seen before was relayed and logged then; it still goes to the
	 * core, which may have forgotten its round (CONS_ROUND_SLOTS) and needs
	 * it again, say as the polka a proposal names.
	 */
	votes_grow(d, vs->n);
	enum vote_kept kept =
		vote_keep(d, m->height, m->round, m->vote_type, m->validator, m->nil ? NULL : m->hash, m->sig);
	if (kept == VOTE_FULL)
		return;
	if (kept == VOTE_NEW) {
		/* Relay: a peer without a link to the voter still gets the vote. */
		struct td_buf b;
		td_buf_init(&b);
		td_msg_vote(&b, m->vote_type, m->height, m->round, m->nil ? NULL : m->hash, m->validator, m->sig);
		relay_vote(d, m->height, m->validator, peer, &b);
		td_buf_free(&b);
		wal_vote(d, m->vote_type, m->height, m->round, m->nil ? NULL : m->hash, m->validator, m->sig);
	}
	/* A vote of the next height goes to the core only if that height keeps the core's validator set. */
	if (m->height != h && !same_set(d, vs))
		return;
	driver_hold(d);
	if (m->height == h)
		driver_start_current(d);
	int rc = cons_on_vote(&d->cons, m->validator, m->vote_type, m->height, m->round, m->nil ? NULL : m->hash);
	if (rc == TD_ERULE && kept == VOTE_NEW)
		record_equivocation(d, m->validator, m->vote_type, m->height, m->round, m->nil ? NULL : m->hash,
				    m->sig);
	driver_release(d);
}

void driver_on_timer(struct driver *d, enum node_timer kind)
{
	if (d->stopping)
		return;
	driver_hold(d);
	switch (kind) {
	case NODE_TIMER_PROPOSE:
	case NODE_TIMER_PREVOTE:
	case NODE_TIMER_PRECOMMIT: {
		struct tslot *t = &d->tmo[kind];
		if (t->armed) {
			t->armed = false;
			wal_timeout(d, (enum cons_timeout)kind, t->h, t->r);
			cons_on_timeout(&d->cons, (enum cons_timeout)kind, t->h, t->r);
		}
		break;
	}
	case NODE_TIMER_VALUE:
		if (awaited(d)) {
			struct td_block *blk = build_block(d, d->av_h, true);
			log_info("proposing an empty block at height %llu round %u: nothing pending here",
				 (unsigned long long)d->av_h, d->av_r);
			give_value(d, d->av_h, d->av_r, blk);
		}
		break;
	case NODE_TIMER_START:
		/*
		 * Records may have committed since the timer was set (they were in the
		 * block of the height just decided): with nothing pending, no height
		 * starts, so an idle chain makes no empty block.
		 */
		if (mempool_count(d->mp) > 0 && (!cons_started(&d->cons) || cons_height(&d->cons) != cur_height(d)))
			cons_start(&d->cons, cur_height(d));
		break;
	case NODE_TIMER_TICK:
	case NODE_TIMER_WATCH: break;
	}
	driver_release(d);
}

void driver_on_pooled(struct driver *d)
{
	/* The drain answers a waiting REQUEST_VALUE first thing. */
	driver_hold(d);
	driver_release(d);
}

void driver_new_height(struct driver *d)
{
	uint64_t h = cur_height(d);
	for (size_t i = 0; i < d->nvotes; i++)
		if (d->votes[i].height < h)
			memset(&d->votes[i], 0, sizeof(d->votes[i]));
	wal_new_height(d);
	d->awaiting_value = false;
	d->io->timer(d->io->ctx, NODE_TIMER_VALUE, NODE_TIMER_OFF);
	if (adopt_set(d, NULL) != 0)
		log_error("consensus: cannot start the validator set of height %llu", (unsigned long long)h);
}

void driver_peer_lost(struct driver *d, uint32_t v)
{
	struct tslot *t = &d->tmo[CONS_TIMEOUT_PROPOSE];
	uint64_t now = d->io->mono_ms(d->io->ctx), cap = d->cfg.timeout_propose_unreachable_ms;
	uint32_t p = cons_proposer(&d->cons, t->h, t->r);
	if (t->armed && p < d->set.n && d->set.slot[p] == v && t->due > now + cap &&
	    proposer_unreachable(d, t->h, t->r)) {
		t->due = now + cap;
		d->io->timer(d->io->ctx, NODE_TIMER_PROPOSE, cap);
	}
}

void driver_stop(struct driver *d)
{
	d->stopping = true;
	for (int k = NODE_TIMER_PROPOSE; k <= NODE_TIMER_START; k++)
		d->io->timer(d->io->ctx, (enum node_timer)k, NODE_TIMER_OFF);
}
