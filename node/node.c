/*
 * The node (see node.h). It owns the loop's handles, the chain, the mempool,
 * the consensus core, the p2p transport and the socket, and wires them:
 *
 *   socket publish -> record (signed here) -> chain check -> mempool -> ANNOUNCE
 *   peer ANNOUNCE -> FETCH -> RECORDS -> verify once -> mempool -> ANNOUNCE
 *   consensus REQUEST_VALUE -> block from the mempool -> PROPOSAL (header + ids)
 *   peer PROPOSAL -> block rebuilt from the mempool (FETCH what is missing)
 *     -> VALIDATE (chain_validate) -> votes -> DECIDE -> chain_apply -> answers
 *   peer STATUS ahead of us -> SYNC_REQ -> SYNC_BLOCKS -> chain_apply
 *
 * A height is started only when something is pending (a record in the
 * mempool, or a peer's proposal or vote for it): an idle chain makes no
 * blocks and sends only STATUS. Before signing any proposal or vote the
 * consensus sign state is saved with fsync (double-sign guard).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "chain.h"
#include "consensus.h"
#include "log.h"
#include "mempool.h"
#include "node.h"
#include "p2p.h"
#include "rpc.h"
#include "signstate.h"
#include "tenderd/json.h"
#include "tenderd/msg.h"

#define TENDERD_VERSION "0.1.0"
#define SEEN_SLOTS 65536          /* recently requested or refused record ids */
#define FETCH_RETRY_MS 2000       /* ask again for a record after this long */
#define TICK_MS 1000              /* STATUS broadcast and sync checks */
#define SYNC_TIMEOUT_MS 5000      /* a sync request unanswered this long is given up */
#define FUTURE_DRIFT_MS 30000     /* a proposed block may be this far ahead of our clock */
#define PRECOMMITS_MAX (16 * TD_VALIDATORS_MAX)
#define PENDING_PROPOSALS_MAX 16
#define ANNOUNCE_BATCH 1024
#define FUTURE_PROPOSALS_MAX 8    /* next-height proposals kept until this height commits */
#define WATCH_QUEUE_MAX (1024 * 1024) /* bytes queued to a watcher before replay pauses */
#define WATCH_BLOCKS_PER_TURN 64       /* blocks replayed to one watcher per loop turn */
#define EXPORT_BLOCKS_MAX 100000   /* blocks in one ledger.export answer */
#define RECENT_BLOCKS 4           /* committed blocks kept to answer late FETCHes */
#define STALL_TICKS 2             /* ticks without a new block before signed messages are sent again */

struct waiter {
	struct rpc_req *req;
	uint8_t id[TD_HASH_LEN];
	char ocid[TD_OCID_MAX + 1];
	char release_id[TD_ID_MAX + 1];
	struct waiter *next;
};

/* A tender.watch subscription: releases of blocks from next_height on are still to be sent. */
struct watcher {
	struct rpc_req *req;
	uint64_t next_height;
	struct watcher *next;
};

struct ntimer {
	uv_timer_t t;
	struct node *n;
	enum cons_timeout kind;
	uint64_t h;
	uint32_t r;
	struct ntimer *prev, *next;
};

/* A proposal whose block is being rebuilt from records we still lack. */
struct pprop {
	uint32_t from;
	uint32_t round;
	int32_t valid_round;
	uint8_t hash[TD_HASH_LEN];
	struct td_block_header hdr;
	uint8_t (*ids)[TD_HASH_LEN];
	struct td_record **recs; /* references, NULL where missing */
	uint32_t missing;
	uint64_t asked_ms;
};

struct pvote {
	uint64_t height;
	uint32_t round;
	uint32_t validator;
	uint8_t hash[TD_HASH_LEN];
	uint8_t sig[TD_SIG_LEN];
};

struct seen {
	uint8_t id[TD_HASH_LEN];
	uint64_t ms;
	bool refused;
};

struct node {
	uv_loop_t *loop;
	struct config cfg;
	struct td_genesis genesis;
	uint8_t sk[TD_SECKEY_LEN];
	uint8_t pk[TD_PUBKEY_LEN];
	int my_index; /* in genesis validators, or -1 */
	struct chain *chain;
	struct mempool *mp;
	struct rpc *rpc;
	struct p2p *p2p;
	struct cons cons;
	bool cons_ok;
	struct cons_sign_state saved_ss; /* what is on disk */
	char ss_path[PATH_MAX + 32];

	uv_timer_t start_timer, tick_timer;
	uv_check_t flush_check;
	uv_signal_t sig_int, sig_term, sig_hup;
	bool handles_open;
	bool stopping;

	struct waiter *waiters;
	struct watcher *watchers;
	uv_timer_t watch_timer;
	struct ntimer *timers;

	/* this height's proposals: complete blocks and ones being rebuilt */
	struct td_block *blocks[PENDING_PROPOSALS_MAX];
	uint32_t nblocks;
	struct pprop pend[PENDING_PROPOSALS_MAX];
	uint32_t npend;
	struct pvote *precommits;
	uint32_t nprecommits;
	struct td_block *recent[RECENT_BLOCKS]; /* last committed blocks, oldest replaced first */
	uint32_t recent_next;
	uv_timer_t value_timer;  /* a proposer with nothing pending proposes an empty block when it fires */
	bool awaiting_value;
	uint64_t av_h;
	uint32_t av_r;

	/* gossip */
	struct seen *seen;
	uint8_t (*announce)[TD_HASH_LEN];
	uint32_t nannounce;

	/* block sync */
	struct {
		uint8_t *bytes;
		size_t len;
		uint32_t from; /* validator index of the peer that sent it */
	} future[FUTURE_PROPOSALS_MAX];
	uint32_t nfuture;
	uint32_t stalled_ticks;

	uint64_t peer_height[TD_VALIDATORS_MAX];
	bool peer_fresh[TD_VALIDATORS_MAX]; /* connected, its first STATUS not yet seen */
	bool syncing;
	uint64_t sync_deadline;
	uint64_t height_at_last_tick;

	struct td_record **scratch; /* cfg.block_max_records slots */
	uint64_t records_received, records_refused;
};

static void drive(struct node *n);
static void on_proposal(struct node *n, struct p2p_peer *peer, const struct td_msg *m);
static void on_value_timer(uv_timer_t *t);
static void reset_height(struct node *n);
static void maybe_start(struct node *n, uint32_t delay_ms);

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t cur_height(const struct node *n)
{
	return chain_height(n->chain) + 1;
}

/* The time for a new record or block: the clock, but never before the last block. */
static uint64_t ledger_now(const struct node *n)
{
	uint64_t now = wall_ms(), last = chain_last_time(n->chain);
	return now < last ? last : now;
}

/* Starts consensus on the height being decided if the core is not already on it. */
static void start_current(struct node *n)
{
	if (!cons_started(&n->cons) || cons_height(&n->cons) != cur_height(n))
		cons_start(&n->cons, cur_height(n));
}

static void send_buf(struct node *n, struct p2p_peer *to, struct td_buf *b)
{
	if (!n->p2p)
		return;
	if (to)
		p2p_send(to, (const uint8_t *)b->sb.data, b->sb.size);
	else
		p2p_broadcast(n->p2p, (const uint8_t *)b->sb.data, b->sb.size, NULL);
}

/* Tells to (NULL: every peer) our height and last block hash. */
static void send_status(struct node *n, struct p2p_peer *to)
{
	struct td_buf b;
	td_buf_init(&b);
	td_msg_status(&b, chain_height(n->chain), chain_last_hash(n->chain));
	send_buf(n, to, &b);
	td_buf_free(&b);
}

/* ---- answering waiting requests ---- */

static json_t *publish_result(const uint8_t id[static TD_HASH_LEN], const char *ocid, const char *release_id)
{
	char hex[2 * TD_HASH_LEN + 1];
	td_hex(hex, id, TD_HASH_LEN);
	return json_pack("{s:s, s:s, s:s}", "id", hex, "ocid", ocid, "release_id", release_id);
}

/* Answers every waiter whose record is committed, or the one refused with msg (id given). */
static void settle_waiters(struct node *n, const uint8_t *refused_id, int code, const char *msg)
{
	struct waiter **p = &n->waiters;
	while (*p) {
		struct waiter *w = *p;
		uint64_t height;
		if (refused_id && memcmp(w->id, refused_id, TD_HASH_LEN) == 0) {
			rpc_error(w->req, code, "%s", msg);
		} else if (!refused_id && chain_has_record(n->chain, w->id, &height)) {
			json_t *res = publish_result(w->id, w->ocid, w->release_id);
			json_object_set_new(res, "height", td_json_uint(height));
			rpc_reply(w->req, res);
		} else {
			p = &w->next;
			continue;
		}
		*p = w->next;
		free(w);
	}
}

/* ---- gossip ---- */

static struct seen *seen_slot(struct node *n, const uint8_t id[static TD_HASH_LEN])
{
	uint32_t h;
	memcpy(&h, id, sizeof(h));
	return &n->seen[h & (SEEN_SLOTS - 1)];
}

static bool seen_recent(struct node *n, const uint8_t id[static TD_HASH_LEN], uint64_t now, bool *refused)
{
	struct seen *s = seen_slot(n, id);
	if (memcmp(s->id, id, TD_HASH_LEN) != 0)
		return false;
	*refused = s->refused;
	return s->refused || now - s->ms < FETCH_RETRY_MS;
}

static void seen_mark(struct node *n, const uint8_t id[static TD_HASH_LEN], uint64_t now, bool refused)
{
	struct seen *s = seen_slot(n, id);
	memcpy(s->id, id, TD_HASH_LEN);
	s->ms = now;
	s->refused = refused;
}

static void flush_announce(struct node *n)
{
	if (n->nannounce == 0)
		return;
	if (n->p2p && p2p_peer_count(n->p2p) > 0) {
		struct td_buf b;
		td_buf_init(&b);
		td_msg_ids(&b, TD_MSG_ANNOUNCE, (const uint8_t(*)[TD_HASH_LEN])n->announce, n->nannounce);
		send_buf(n, NULL, &b);
		td_buf_free(&b);
	}
	n->nannounce = 0;
}

static void announce(struct node *n, const uint8_t id[static TD_HASH_LEN])
{
	memcpy(n->announce[n->nannounce++], id, TD_HASH_LEN);
	if (n->nannounce == ANNOUNCE_BATCH)
		flush_announce(n);
}

/* Runs after each loop iteration's I/O: one ANNOUNCE carries all ids gathered. */
static void on_flush_check(uv_check_t *c)
{
	flush_announce(c->data);
}

static void fetch(struct node *n, struct p2p_peer *peer, uint8_t (*ids)[TD_HASH_LEN], uint32_t k)
{
	if (k == 0 || !peer)
		return;
	struct td_buf b;
	td_buf_init(&b);
	td_msg_ids(&b, TD_MSG_FETCH, (const uint8_t(*)[TD_HASH_LEN])ids, k);
	send_buf(n, peer, &b);
	td_buf_free(&b);
}

static void on_announce(struct node *n, struct p2p_peer *peer, const struct td_msg *m)
{
	uint8_t(*want)[TD_HASH_LEN] = td_xcalloc(m->n_ids ? m->n_ids : 1, TD_HASH_LEN);
	uint32_t k = 0;
	uint64_t now = uv_now(n->loop);
	bool refused;
	for (uint32_t i = 0; i < m->n_ids; i++) {
		if (mempool_has(n->mp, m->ids[i]) || seen_recent(n, m->ids[i], now, &refused) ||
		    chain_has_record(n->chain, m->ids[i], NULL))
			continue;
		seen_mark(n, m->ids[i], now, false);
		memcpy(want[k++], m->ids[i], TD_HASH_LEN);
	}
	fetch(n, peer, want, k);
	free(want);
}

/* Answers FETCH with the records we hold, in messages under the frame cap. */
static void on_fetch(struct node *n, struct p2p_peer *peer, const struct td_msg *m)
{
	struct td_record **found = td_xcalloc(m->n_ids ? m->n_ids : 1, sizeof(*found));
	uint32_t k = 0;
	for (uint32_t i = 0; i < m->n_ids; i++) {
		struct td_record *rec = mempool_get(n->mp, m->ids[i]);
		/* A slower peer may ask for records of a block we have already committed. */
		for (uint32_t j = 0; !rec && j < n->nblocks + RECENT_BLOCKS; j++) {
			const struct td_block *blk = j < n->nblocks ? n->blocks[j] : n->recent[j - n->nblocks];
			for (uint32_t x = 0; blk && !rec && x < blk->hdr.n_records; x++)
				if (memcmp(blk->records[x]->id, m->ids[i], TD_HASH_LEN) == 0)
					rec = blk->records[x];
		}
		if (rec)
			found[k++] = rec;
	}
	for (uint32_t i = 0; i < k;) {
		uint32_t j = i;
		size_t bytes = 0;
		while (j < k && bytes + found[j]->len < TD_BLOCK_MAX / 2)
			bytes += found[j++]->len;
		struct td_buf b;
		td_buf_init(&b);
		td_msg_items_begin(&b, TD_MSG_RECORDS, j - i);
		for (uint32_t x = i; x < j; x++)
			td_enc_bin(&b, found[x]->bytes, found[x]->len);
		send_buf(n, peer, &b);
		td_buf_free(&b);
		i = j;
	}
	free(found);
}

static void pending_proposals_offer(struct node *n, struct td_record *rec);

/* A record from a peer: verified once, then into the mempool and on to others. */
static void on_records(struct node *n, struct p2p_peer *peer, const struct td_msg *m)
{
	char err[TD_ERRMSG_MAX];
	uint64_t now = uv_now(n->loop);
	bool added = false;
	for (uint32_t i = 0; i < m->n_items; i++) {
		uint8_t id[TD_HASH_LEN];
		bool refused = false;
		struct td_record *rec = NULL;
		if (m->items[i].len > TD_RECORD_MAX) {
			p2p_disconnect(peer, "sent a record over the size limit");
			return;
		}
		td_hash(id, m->items[i].p, m->items[i].len);
		if ((rec = mempool_get(n->mp, id))) {
			pending_proposals_offer(n, rec);
			continue;
		}
		if ((seen_recent(n, id, now, &refused) && refused) || chain_has_record(n->chain, id, NULL))
			continue;
		n->records_received++;
		int rc = td_record_decode(&rec, m->items[i].p, m->items[i].len, n->genesis.chain_id, err, sizeof(err));
		if (rc) {
			n->records_refused++;
			seen_mark(n, id, now, true);
			p2p_disconnect(peer, "sent a record that fails verification");
			return;
		}
		pending_proposals_offer(n, rec);
		if (chain_check_record(n->chain, rec, err, sizeof(err)) != 0 ||
		    mempool_add(n->mp, rec, err, sizeof(err)) != 0) {
			log_debug("record from peer not pooled: %s", err);
			td_record_free(rec);
			continue;
		}
		added = true;
		announce(n, id);
	}
	if (added)
		maybe_start(n, n->cfg.block_delay_ms);
	if (n->awaiting_value && added)
		drive(n);
}

/* ---- proposals being rebuilt ---- */

static struct td_block *block_find(struct node *n, const uint8_t hash[static TD_HASH_LEN])
{
	for (uint32_t i = 0; i < n->nblocks; i++)
		if (memcmp(n->blocks[i]->hash, hash, TD_HASH_LEN) == 0)
			return n->blocks[i];
	return NULL;
}

static void block_keep(struct node *n, struct td_block *blk)
{
	if (n->nblocks == PENDING_PROPOSALS_MAX) {
		td_block_free(n->blocks[0]);
		memmove(n->blocks, n->blocks + 1, (PENDING_PROPOSALS_MAX - 1) * sizeof(*n->blocks));
		n->nblocks--;
	}
	n->blocks[n->nblocks++] = blk;
}

static void pprop_clear(struct pprop *p)
{
	if (p->recs)
		for (uint32_t i = 0; i < p->hdr.n_records; i++)
			td_record_free(p->recs[i]);
	free(p->recs);
	free(p->ids);
	memset(p, 0, sizeof(*p));
}

/* The block of a complete proposal: checked against its header, kept, given to consensus. */
static void pprop_complete(struct node *n, uint32_t idx)
{
	struct pprop p = n->pend[idx];
	n->pend[idx] = n->pend[--n->npend];
	memset(&n->pend[n->npend], 0, sizeof(n->pend[n->npend]));

	struct td_block *blk = td_block_new(p.hdr.height, p.hdr.prev_hash, p.hdr.time_ms, p.hdr.proposer, p.recs,
					    p.hdr.n_records);
	p.recs = NULL;
	if (memcmp(blk->hash, p.hash, TD_HASH_LEN) != 0) {
		log_warn("proposal for height %llu round %u from validator %u: records do not match its header",
			 (unsigned long long)p.hdr.height, p.round, p.from);
		td_block_free(blk);
		pprop_clear(&p);
		return;
	}
	if (!block_find(n, blk->hash))
		block_keep(n, blk);
	else
		td_block_free(blk);
	if (p.hdr.height == cur_height(n)) {
		start_current(n);
		cons_on_proposal(&n->cons, p.from, p.hdr.height, p.round, p.hash, p.valid_round);
		drive(n);
	}
	pprop_clear(&p);
}

static void pending_proposals_offer(struct node *n, struct td_record *rec)
{
	for (uint32_t i = 0; i < n->npend; i++) {
		struct pprop *p = &n->pend[i];
		for (uint32_t j = 0; j < p->hdr.n_records; j++) {
			if (!p->recs[j] && memcmp(p->ids[j], rec->id, TD_HASH_LEN) == 0) {
				p->recs[j] = td_record_ref(rec);
				p->missing--;
			}
		}
	}
	for (uint32_t i = 0; i < n->npend;) {
		if (n->pend[i].missing == 0)
			pprop_complete(n, i);
		else
			i++;
	}
}

/* Re-encodes a decoded proposal (decoding made sure it is canonical, so the bytes are the same). */
static void encode_again(struct td_buf *b, const struct td_msg *m)
{
	struct td_block_header hdr = m->hdr;
	struct td_block blk = { .hdr = hdr };
	struct td_record *recs = td_xcalloc(m->n_ids ? m->n_ids : 1, sizeof(*recs));
	struct td_record **ptrs = td_xcalloc(m->n_ids ? m->n_ids : 1, sizeof(*ptrs));
	for (uint32_t i = 0; i < m->n_ids; i++) {
		memcpy(recs[i].id, m->ids[i], TD_HASH_LEN);
		ptrs[i] = &recs[i];
	}
	blk.records = ptrs;
	td_msg_proposal(b, &blk, m->round, m->valid_round, m->sig);
	free(ptrs);
	free(recs);
}

static void on_proposal(struct node *n, struct p2p_peer *peer, const struct td_msg *m)
{
	uint8_t hash[TD_HASH_LEN];
	struct td_buf b;

	log_debug("proposal for height %llu round %u with %u records", (unsigned long long)m->height, m->round,
		  m->n_ids);
	if (m->round > CONS_ROUND_MAX || (m->height != cur_height(n) && m->height != cur_height(n) + 1))
		return;
	uint32_t from = (uint32_t)((m->height + m->round) % n->genesis.n);
	td_buf_init(&b);
	td_header_encode(&b, &m->hdr);
	td_hash(hash, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
	if (!td_proposal_verify(m->sig, n->genesis.chain_id, m->height, m->round, m->valid_round, hash,
				n->genesis.v[from].pk)) {
		p2p_disconnect(peer, "sent a proposal with a bad signature");
		return;
	}
	if (m->height == cur_height(n) + 1 && n->nfuture < FUTURE_PROPOSALS_MAX) {
		/* The next height's proposer may be ahead of us by one commit: keep it for then. */
		struct td_buf fb;
		td_buf_init(&fb);
		encode_again(&fb, m);
		n->future[n->nfuture].bytes = td_buf_take(&fb, &n->future[n->nfuture].len);
		td_buf_free(&fb);
		n->future[n->nfuture++].from = p2p_peer_validator(peer);
		return;
	}
	if (m->height != cur_height(n))
		return;
	if (block_find(n, hash)) {
		start_current(n);
		cons_on_proposal(&n->cons, from, m->height, m->round, hash, m->valid_round);
		drive(n);
		return;
	}
	for (uint32_t i = 0; i < n->npend; i++)
		if (memcmp(n->pend[i].hash, hash, TD_HASH_LEN) == 0 && n->pend[i].round == m->round)
			return;
	if (n->npend == PENDING_PROPOSALS_MAX)
		return;
	struct pprop *p = &n->pend[n->npend++];
	memset(p, 0, sizeof(*p));
	p->from = from;
	p->round = m->round;
	p->valid_round = m->valid_round;
	memcpy(p->hash, hash, TD_HASH_LEN);
	p->hdr = m->hdr;
	p->ids = td_xcalloc(m->n_ids ? m->n_ids : 1, TD_HASH_LEN);
	p->recs = td_xcalloc(m->n_ids ? m->n_ids : 1, sizeof(*p->recs));
	memcpy(p->ids, m->ids, (size_t)m->n_ids * TD_HASH_LEN);
	uint8_t(*want)[TD_HASH_LEN] = td_xcalloc(m->n_ids ? m->n_ids : 1, TD_HASH_LEN);
	for (uint32_t i = 0; i < m->n_ids; i++) {
		struct td_record *rec = mempool_get(n->mp, m->ids[i]);
		if (rec)
			p->recs[i] = td_record_ref(rec);
		else
			memcpy(want[p->missing++], m->ids[i], TD_HASH_LEN);
	}
	p->asked_ms = uv_now(n->loop);
	if (p->missing == 0)
		pprop_complete(n, n->npend - 1);
	else
		fetch(n, peer, want, p->missing);
	free(want);
}

/* ---- votes ---- */

static void precommit_keep(struct node *n, uint64_t h, uint32_t r, uint32_t v, const uint8_t hash[static TD_HASH_LEN],
			   const uint8_t sig[static TD_SIG_LEN])
{
	for (uint32_t i = 0; i < n->nprecommits; i++) {
		struct pvote *p = &n->precommits[i];
		if (p->height == h && p->round == r && p->validator == v && memcmp(p->hash, hash, TD_HASH_LEN) == 0)
			return;
	}
	if (n->nprecommits == PRECOMMITS_MAX)
		return;
	struct pvote *p = &n->precommits[n->nprecommits++];
	p->height = h;
	p->round = r;
	p->validator = v;
	memcpy(p->hash, hash, TD_HASH_LEN);
	memcpy(p->sig, sig, TD_SIG_LEN);
}

static void on_vote(struct node *n, struct p2p_peer *peer, const struct td_msg *m)
{
	uint64_t h = cur_height(n);
	if ((m->height != h && m->height != h + 1) || m->round > CONS_ROUND_MAX)
		return;
	if (m->validator >= n->genesis.n) {
		p2p_disconnect(peer, "sent a vote from an unknown validator");
		return;
	}
	if (!td_vote_verify(m->sig, n->genesis.chain_id, m->vote_type, m->height, m->round, m->nil ? NULL : m->hash,
			    n->genesis.v[m->validator].pk)) {
		p2p_disconnect(peer, "sent a vote with a bad signature");
		return;
	}
	log_debug("vote type %d from %u at height %llu round %u%s", (int)m->vote_type, m->validator,
		  (unsigned long long)m->height, m->round, m->nil ? " nil" : "");
	if (m->vote_type == TD_VOTE_PRECOMMIT && !m->nil)
		precommit_keep(n, m->height, m->round, m->validator, m->hash, m->sig);
	if (m->height == h)
		start_current(n);
	int rc = cons_on_vote(&n->cons, m->validator, m->vote_type, m->height, m->round, m->nil ? NULL : m->hash);
	if (rc == TD_ERULE)
		log_warn("validator %u (%s) signed two different votes at height %llu round %u: kept as evidence",
			 m->validator, n->genesis.v[m->validator].name, (unsigned long long)m->height, m->round);
	drive(n);
}

/* ---- consensus actions ---- */

/*
 * Builds a block at height h from pending records that pass the chain's
 * checks; with nothing pending, an empty block if allow_empty, else NULL.
 */
static struct td_block *build_block(struct node *n, uint64_t h, bool allow_empty)
{
	char err[TD_ERRMSG_MAX];
	for (;;) {
		uint32_t k = mempool_peek(n->mp, n->scratch, n->cfg.block_max_records, n->cfg.block_max_bytes);
		if (k == 0) {
			if (!allow_empty)
				return NULL;
			return td_block_new(h, chain_last_hash(n->chain), ledger_now(n), n->pk, NULL, 0);
		}
		for (uint32_t attempt = 0; attempt < 2; attempt++) {
			uint32_t take = attempt == 0 ? k : 1;
			struct td_record **recs = td_xcalloc(take, sizeof(*recs));
			for (uint32_t i = 0; i < take; i++)
				recs[i] = td_record_ref(n->scratch[i]);
			struct td_block *blk = td_block_new(h, chain_last_hash(n->chain), ledger_now(n), n->pk, recs, take);
			if (chain_validate(n->chain, blk, err, sizeof(err)) == 0)
				return blk;
			td_block_free(blk);
			if (take == 1) {
				/* The oldest record alone is refused: it can never commit. */
				struct td_record *bad = n->scratch[0];
				uint8_t id[TD_HASH_LEN];
				memcpy(id, bad->id, TD_HASH_LEN);
				log_warn("dropping pending record for %s: %s", bad->ocid, err);
				mempool_remove(n->mp, id);
				settle_waiters(n, id, TD_RPC_RULE, err);
				break;
			}
		}
	}
}

static bool save_sign_state(struct node *n)
{
	const struct cons_sign_state *ss = cons_sign_state(&n->cons);
	char err[TD_ERRMSG_MAX];
	if (memcmp(ss, &n->saved_ss, sizeof(*ss)) == 0)
		return true;
	if (signstate_save(n->ss_path, ss, err, sizeof(err)) != 0) {
		log_error("cannot save the sign state, refusing to sign: %s", err);
		return false;
	}
	n->saved_ss = *ss;
	return true;
}

static void on_cons_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_cons_timer(uv_timer_t *t)
{
	struct ntimer *nt = t->data;
	struct node *n = nt->n;
	if (nt->prev)
		nt->prev->next = nt->next;
	else
		n->timers = nt->next;
	if (nt->next)
		nt->next->prev = nt->prev;
	uv_close((uv_handle_t *)&nt->t, on_cons_timer_closed);
	if (!n->stopping) {
		cons_on_timeout(&n->cons, nt->kind, nt->h, nt->r);
		drive(n);
	}
}

/*
 * True when the proposer of (h, r) is another validator with no connection
 * to us: proposals are not relayed, so its proposal cannot reach us and
 * waiting the full propose timeout for it only delays the next round.
 * Timeouts bear on liveness only, never on safety.
 */
static bool proposer_unreachable(struct node *n, uint64_t h, uint32_t r)
{
	uint32_t p = cons_proposer(&n->cons, h, r);
	return n->p2p && p != (uint32_t)n->my_index && !p2p_peer_find(n->p2p, p);
}

static void decide(struct node *n, const struct cons_action *a)
{
	char err[TD_ERRMSG_MAX], hex[2 * TD_HASH_LEN + 1];
	struct td_block *blk = block_find(n, a->value);
	struct td_commit_sig sigs[TD_VALIDATORS_MAX];
	struct td_commit commit = { .height = a->height, .round = a->round, .n_sigs = 0, .sigs = sigs };

	if (a->height != cur_height(n))
		return; /* already applied through block sync */
	if (!blk) {
		log_error("decided height %llu but the block is unknown; waiting for block sync",
			  (unsigned long long)a->height);
		return;
	}
	memcpy(commit.block_hash, a->value, TD_HASH_LEN);
	for (uint32_t i = 0; i < a->n_signers; i++) {
		for (uint32_t j = 0; j < n->nprecommits; j++) {
			const struct pvote *p = &n->precommits[j];
			if (p->height == a->height && p->round == a->round && p->validator == a->signers[i] &&
			    memcmp(p->hash, a->value, TD_HASH_LEN) == 0) {
				sigs[commit.n_sigs].validator = p->validator;
				memcpy(sigs[commit.n_sigs++].sig, p->sig, TD_SIG_LEN);
				break;
			}
		}
	}
	if (chain_apply(n->chain, blk, &commit, err, sizeof(err)) != 0) {
		log_error("decided block %llu refused by the chain: %s", (unsigned long long)a->height, err);
		return;
	}
	td_hex(hex, blk->hash, TD_HASH_LEN);
	log_info("committed block %llu (%s) round %u with %u record%s, %u signatures", (unsigned long long)a->height,
		 hex, a->round, blk->hdr.n_records, blk->hdr.n_records == 1 ? "" : "s", commit.n_sigs);
	for (uint32_t i = 0; i < blk->hdr.n_records; i++)
		mempool_remove(n->mp, blk->records[i]->id);
	/* Keep the committed block out of the height's proposals, for late FETCHes. */
	for (uint32_t i = 0; i < n->nblocks; i++) {
		if (n->blocks[i] == blk) {
			n->blocks[i] = n->blocks[--n->nblocks];
			break;
		}
	}
	td_block_free(n->recent[n->recent_next]);
	n->recent[n->recent_next] = blk;
	n->recent_next = (n->recent_next + 1) % RECENT_BLOCKS;
	/* A big block leaves megabytes of freed batch and encoding buffers: give them back. */
	if (blk->hdr.n_records >= 1024)
		malloc_trim(0);
	reset_height(n);
}

static void act(struct node *n, const struct cons_action *a)
{
	struct td_buf b;
	log_debug("consensus action %d at height %llu round %u%s", (int)a->kind, (unsigned long long)a->height,
		  a->round, a->kind == CONS_ACT_VOTE ? (a->nil ? " (vote nil)" : " (vote)") : "");
	switch (a->kind) {
	case CONS_ACT_PROPOSAL: {
		struct td_block *blk = block_find(n, a->value);
		uint8_t sig[TD_SIG_LEN];
		if (!blk) {
			log_warn("cannot re-send proposal for height %llu round %u: block not at hand",
				 (unsigned long long)a->height, a->round);
			return;
		}
		if (!save_sign_state(n))
			return;
		td_proposal_sign(sig, n->genesis.chain_id, a->height, a->round, a->valid_round, blk->hash, n->sk);
		td_buf_init(&b);
		td_msg_proposal(&b, blk, a->round, a->valid_round, sig);
		send_buf(n, NULL, &b);
		td_buf_free(&b);
		return;
	}
	case CONS_ACT_VOTE: {
		uint8_t sig[TD_SIG_LEN];
		if (!save_sign_state(n))
			return;
		td_vote_sign(sig, n->genesis.chain_id, a->vote_type, a->height, a->round, a->nil ? NULL : a->value,
			     n->sk);
		if (a->vote_type == TD_VOTE_PRECOMMIT && !a->nil)
			precommit_keep(n, a->height, a->round, (uint32_t)n->my_index, a->value, sig);
		td_buf_init(&b);
		td_msg_vote(&b, a->vote_type, a->height, a->round, a->nil ? NULL : a->value, (uint32_t)n->my_index,
			    sig);
		send_buf(n, NULL, &b);
		td_buf_free(&b);
		return;
	}
	case CONS_ACT_TIMEOUT: {
		uint64_t ms = a->duration_ms;
		if (a->timeout == CONS_TIMEOUT_PROPOSE && proposer_unreachable(n, a->height, a->round) &&
		    ms > n->cfg.timeout_propose_unreachable_ms)
			ms = n->cfg.timeout_propose_unreachable_ms;
		struct ntimer *nt = td_xcalloc(1, sizeof(*nt));
		nt->n = n;
		nt->kind = a->timeout;
		nt->h = a->height;
		nt->r = a->round;
		uv_timer_init(n->loop, &nt->t);
		nt->t.data = nt;
		nt->next = n->timers;
		if (n->timers)
			n->timers->prev = nt;
		n->timers = nt;
		uv_timer_start(&nt->t, on_cons_timer, ms, 0);
		return;
	}
	case CONS_ACT_REQUEST_VALUE: {
		struct td_block *blk = build_block(n, a->height, false);
		if (!blk) {
			/*
			 * Nothing pending here although the height started (records are
			 * pending elsewhere): wait for them to arrive, but no longer than a
			 * propose timeout, so the others are not left waiting on us.
			 */
			n->awaiting_value = true;
			n->av_h = a->height;
			n->av_r = a->round;
			uv_timer_start(&n->value_timer, on_value_timer, n->cfg.timeout_propose_ms, 0);
			return;
		}
		n->awaiting_value = false;
		block_keep(n, blk);
		cons_on_value(&n->cons, a->height, a->round, blk->hash);
		return;
	}
	case CONS_ACT_VALIDATE: {
		struct td_block *blk = block_find(n, a->value);
		char err[TD_ERRMSG_MAX];
		bool ok = blk && blk->hdr.time_ms <= wall_ms() + FUTURE_DRIFT_MS &&
			  chain_validate(n->chain, blk, err, sizeof(err)) == 0;
		if (blk && !ok)
			log_warn("refusing proposed block %llu: %s", (unsigned long long)blk->hdr.height,
				 blk->hdr.time_ms > wall_ms() + FUTURE_DRIFT_MS ? "time too far ahead" : err);
		cons_on_validity(&n->cons, a->value, ok);
		return;
	}
	case CONS_ACT_DECIDE:
		decide(n, a);
		return;
	}
}

static void on_value_timer(uv_timer_t *t)
{
	struct node *n = t->data;
	if (!n->awaiting_value || n->stopping || cons_height(&n->cons) != n->av_h || cons_round(&n->cons) != n->av_r)
		return;
	struct td_block *blk = build_block(n, n->av_h, true);
	n->awaiting_value = false;
	block_keep(n, blk);
	log_info("proposing an empty block at height %llu round %u: nothing pending here",
		 (unsigned long long)n->av_h, n->av_r);
	cons_on_value(&n->cons, n->av_h, n->av_r, blk->hash);
	drive(n);
}

/* Runs queued consensus actions until the core has nothing more to say. */
static void drive(struct node *n)
{
	struct cons_action a;
	if (!n->cons_ok || n->stopping)
		return;
	if (n->awaiting_value && mempool_count(n->mp) > 0 && cons_height(&n->cons) == n->av_h &&
	    cons_round(&n->cons) == n->av_r) {
		struct td_block *blk = build_block(n, n->av_h, false);
		if (blk) {
			n->awaiting_value = false;
			block_keep(n, blk);
			cons_on_value(&n->cons, n->av_h, n->av_r, blk->hash);
		}
	}
	while (cons_next_action(&n->cons, &a))
		act(n, &a);
}

static void on_watch_timer(uv_timer_t *t);

/*
 * Sends each watcher the releases of the blocks it has not seen, a few
 * blocks per turn and only while its client keeps reading; comes back by
 * timer while any watcher is behind. A watcher whose client left is
 * answered (which frees the request) and forgotten.
 */
static void pump_watchers(struct node *n)
{
	uint64_t top = chain_height(n->chain);
	bool behind = false, blocked = false;
	struct watcher **p = &n->watchers;
	while (*p) {
		struct watcher *w = *p;
		if (!rpc_req_alive(w->req) || n->stopping) {
			rpc_error(w->req, TD_RPC_SHUTTING_DOWN, "watch ended");
			*p = w->next;
			free(w);
			continue;
		}
		for (int k = 0; k < WATCH_BLOCKS_PER_TURN && w->next_height <= top; k++) {
			if (rpc_req_queued(w->req) > WATCH_QUEUE_MAX) {
				blocked = true;
				break;
			}
			json_t *rels = chain_block_releases_json(n->chain, w->next_height);
			size_t i;
			json_t *rel;
			json_array_foreach(rels, i, rel)
				rpc_notify(w->req, "tender.release", json_incref(rel));
			json_decref(rels);
			w->next_height++;
		}
		if (w->next_height <= top)
			behind = true;
		p = &w->next;
	}
	if ((behind || blocked) && !n->stopping && !uv_is_active((uv_handle_t *)&n->watch_timer))
		uv_timer_start(&n->watch_timer, on_watch_timer, blocked ? 20 : 0, 0);
}

static void on_watch_timer(uv_timer_t *t)
{
	pump_watchers(t->data);
}

/* Forgets the finished height's proposals and votes; answers waiters; starts the next height if needed. */
static void reset_height(struct node *n)
{
	uint64_t h = cur_height(n);
	for (uint32_t i = 0; i < n->nblocks; i++)
		td_block_free(n->blocks[i]);
	n->nblocks = 0;
	for (uint32_t i = 0; i < n->npend; i++)
		pprop_clear(&n->pend[i]);
	n->npend = 0;
	uint32_t k = 0;
	for (uint32_t i = 0; i < n->nprecommits; i++)
		if (n->precommits[i].height >= h)
			n->precommits[k++] = n->precommits[i];
	n->nprecommits = k;
	n->awaiting_value = false;
	uv_timer_stop(&n->value_timer);
	n->stalled_ticks = 0;
	settle_waiters(n, NULL, 0, NULL);
	pump_watchers(n);
	/* Proposals that arrived one height early. */
	uint32_t nf = n->nfuture;
	n->nfuture = 0;
	for (uint32_t i = 0; i < nf; i++) {
		struct td_msg m;
		struct p2p_peer *peer = n->p2p ? p2p_peer_find(n->p2p, n->future[i].from) : NULL;
		if (peer && td_msg_decode(&m, n->future[i].bytes, n->future[i].len) == 0) {
			if (m.height == h)
				on_proposal(n, peer, &m);
			td_msg_free(&m);
		}
		free(n->future[i].bytes);
	}
	send_status(n, NULL);
	maybe_start(n, 0);
}

static void on_start_timer(uv_timer_t *t)
{
	struct node *n = t->data;
	uint64_t h = cur_height(n);
	if (n->stopping || !n->cons_ok || (cons_started(&n->cons) && cons_height(&n->cons) == h))
		return;
	cons_start(&n->cons, h);
	drive(n);
}

/* Starts consensus on the next height after delay_ms when records are pending. */
static void maybe_start(struct node *n, uint32_t delay_ms)
{
	if (n->stopping || !n->cons_ok || mempool_count(n->mp) == 0 || n->syncing)
		return;
	if (cons_started(&n->cons) && cons_height(&n->cons) == cur_height(n))
		return;
	if (uv_is_active((uv_handle_t *)&n->start_timer) && delay_ms > 0)
		return;
	uv_timer_start(&n->start_timer, on_start_timer, delay_ms, 0);
}

/* ---- block sync ---- */

/* Asks peer for the blocks from height from on. */
static void request_sync_from(struct node *n, struct p2p_peer *peer, uint64_t from)
{
	struct td_buf b;
	n->syncing = true;
	n->sync_deadline = uv_now(n->loop) + SYNC_TIMEOUT_MS;
	td_buf_init(&b);
	td_msg_sync_req(&b, from, TD_SYNC_BATCH);
	send_buf(n, peer, &b);
	td_buf_free(&b);
}

static void request_sync(struct node *n, struct p2p_peer *peer)
{
	request_sync_from(n, peer, chain_height(n->chain) + 1);
}

static void on_status(struct node *n, struct p2p_peer *peer, const struct td_msg *m)
{
	uint32_t v = p2p_peer_validator(peer);
	bool fresh = n->peer_fresh[v];
	n->peer_height[v] = m->height;
	n->peer_fresh[v] = false;
	/*
	 * Two ahead, or one ahead while we still lack records of this height's
	 * proposal, or one ahead on a new connection (votes sent on the one it
	 * replaced may be lost): fetch the blocks.
	 */
	if (!n->syncing && (m->height >= chain_height(n->chain) + 2 ||
			    (m->height == chain_height(n->chain) + 1 && (n->npend > 0 || fresh))))
		request_sync(n, peer);
}

static void on_sync_req(struct node *n, struct p2p_peer *peer, const struct td_msg *m)
{
	struct td_buf b;
	uint64_t top = chain_height(n->chain);
	uint32_t count = 0;
	size_t bytes = 0;
	uint8_t *blks[TD_SYNC_BATCH * 4], *commits[TD_SYNC_BATCH * 4];
	size_t blens[TD_SYNC_BATCH * 4], clens[TD_SYNC_BATCH * 4];

	/* As many blocks as fit one frame: a block is at most TD_BLOCK_MAX, the frame a little more. */
	for (uint64_t h = m->height; h >= 1 && h <= top && count < m->count; h++) {
		if (chain_block_raw(n->chain, h, &blks[count], &blens[count], &commits[count], &clens[count]) != 0)
			break;
		if (count > 0 && bytes + blens[count] + clens[count] > TD_BLOCK_MAX) {
			free(blks[count]);
			free(commits[count]);
			break;
		}
		bytes += blens[count] + clens[count];
		count++;
	}
	td_buf_init(&b);
	td_msg_items_begin(&b, TD_MSG_SYNC_BLOCKS, count);
	for (uint32_t i = 0; i < count; i++) {
		td_enc_array(&b, 2);
		td_enc_bin(&b, blks[i], blens[i]);
		td_enc_bin(&b, commits[i], clens[i]);
		free(blks[i]);
		free(commits[i]);
	}
	send_buf(n, peer, &b);
	td_buf_free(&b);
}

/*
 * Applies the blocks of a SYNC_BLOCKS answer. The request for the blocks
 * after them goes out before they are applied, so the peer reads and sends
 * the next batch while we apply this one; it is sent once the answer's
 * blocks have decoded, and one more request is never outstanding.
 */
static void on_sync_blocks(struct node *n, struct p2p_peer *peer, const struct td_msg *m)
{
	char err[TD_ERRMSG_MAX];
	uint32_t applied = 0, nb = 0;
	uint32_t v = p2p_peer_validator(peer);
	bool asked = false;
	struct td_block **blks = td_xcalloc(m->n_items / 2 + 1, sizeof(*blks));

	/*
	 * Records of a synced block are not verified one by one: chain_apply
	 * checks the block's commit, and more than two thirds of the validators
	 * verified every record before they signed it.
	 */
	for (uint32_t i = 0; i + 1 < m->n_items; i += 2, nb++) {
		if (td_block_decode(&blks[nb], m->items[i].p, m->items[i].len, n->genesis.chain_id, true, err,
				    sizeof(err)) != 0) {
			p2p_disconnect(peer, "sent a block that fails verification");
			goto out;
		}
	}
	if (nb > 0 && blks[nb - 1]->hdr.height >= cur_height(n) && n->peer_height[v] > blks[nb - 1]->hdr.height) {
		request_sync_from(n, peer, blks[nb - 1]->hdr.height + 1);
		asked = true;
	}
	for (uint32_t i = 0; i < nb; i++) {
		struct td_block *blk = blks[i];
		struct td_commit commit;
		if (blk->hdr.height != cur_height(n))
			continue;
		if (td_commit_decode(&commit, m->items[2 * i + 1].p, m->items[2 * i + 1].len, err, sizeof(err)) != 0 ||
		    chain_apply(n->chain, blk, &commit, err, sizeof(err)) != 0) {
			log_warn("block %llu from sync refused: %s", (unsigned long long)blk->hdr.height, err);
			td_commit_clear(&commit);
			p2p_disconnect(peer, "sent a block the chain refuses");
			asked = false;
			break;
		}
		for (uint32_t j = 0; j < blk->hdr.n_records; j++)
			mempool_remove(n->mp, blk->records[j]->id);
		td_commit_clear(&commit);
		applied++;
	}
out:
	for (uint32_t i = 0; i < nb; i++)
		td_block_free(blks[i]);
	free(blks);
	if (!asked)
		n->syncing = false; /* else the answer to the request sent above is on its way */
	if (applied) {
		log_info("block sync: applied %u block%s, now at height %llu", applied, applied == 1 ? "" : "s",
			 (unsigned long long)chain_height(n->chain));
		reset_height(n);
		if (!asked && n->peer_height[v] > chain_height(n->chain))
			request_sync(n, peer);
	}
}

/*
 * Sends again what this validator signed at the current height (the same
 * bytes: Ed25519 signatures are deterministic), for peers that missed them
 * (a restart, a dropped connection): to one peer, or to all with to NULL.
 * Nothing new is signed here.
 */
static void resend_signed(struct node *n, struct p2p_peer *to)
{
	const struct cons_sign_state *ss = cons_sign_state(&n->cons);
	struct td_buf b;
	uint8_t sig[TD_SIG_LEN];
	uint64_t h = cur_height(n);
	if (n->my_index < 0 || !ss->any || ss->height != h)
		return;
	if (ss->proposal.set) {
		struct td_block *blk = block_find(n, ss->proposal.value);
		if (blk) {
			td_proposal_sign(sig, n->genesis.chain_id, h, ss->proposal.round, ss->proposal.valid_round,
					 blk->hash, n->sk);
			td_buf_init(&b);
			td_msg_proposal(&b, blk, ss->proposal.round, ss->proposal.valid_round, sig);
			send_buf(n, to, &b);
			td_buf_free(&b);
		}
	}
	const struct cons_signed *votes[2] = { &ss->prevote, &ss->precommit };
	for (int i = 0; i < 2; i++) {
		if (!votes[i]->set)
			continue;
		enum td_vote_type type = i == 0 ? TD_VOTE_PREVOTE : TD_VOTE_PRECOMMIT;
		const uint8_t *value = votes[i]->nil ? NULL : votes[i]->value;
		td_vote_sign(sig, n->genesis.chain_id, type, h, votes[i]->round, value, n->sk);
		td_buf_init(&b);
		td_msg_vote(&b, type, h, votes[i]->round, value, (uint32_t)n->my_index, sig);
		send_buf(n, to, &b);
		td_buf_free(&b);
	}
}

static void on_tick(uv_timer_t *t)
{
	struct node *n = t->data;
	uint64_t h = chain_height(n->chain);
	if (n->syncing && uv_now(n->loop) > n->sync_deadline)
		n->syncing = false;
	send_status(n, NULL);
	/* A peer ahead of us while we made no progress for a tick: catch up by sync. */
	if (!n->syncing && h == n->height_at_last_tick) {
		for (uint32_t v = 0; v < n->genesis.n; v++) {
			struct p2p_peer *peer = p2p_peer_find(n->p2p, v);
			if (peer && n->peer_height[v] > h) {
				request_sync(n, peer);
				break;
			}
		}
	}
	if (h == n->height_at_last_tick && cons_started(&n->cons) && cons_height(&n->cons) == h + 1) {
		if (++n->stalled_ticks >= STALL_TICKS) {
			resend_signed(n, NULL);
			log_debug("no new block for %u ticks at height %llu: sent our signed messages again",
				  n->stalled_ticks, (unsigned long long)h);
			/* Peers may have refused our records while their mempools were full: offer them again. */
			uint32_t k = mempool_peek(n->mp, n->scratch, ANNOUNCE_BATCH, UINT64_MAX);
			for (uint32_t i = 0; i < k; i++)
				announce(n, n->scratch[i]->id);
		}
	} else {
		n->stalled_ticks = 0;
	}
	n->height_at_last_tick = h;
	/* Proposals still missing records: ask their sender again. */
	for (uint32_t i = 0; i < n->npend; i++) {
		struct pprop *p = &n->pend[i];
		if (uv_now(n->loop) - p->asked_ms < FETCH_RETRY_MS)
			continue;
		uint8_t(*want)[TD_HASH_LEN] = td_xcalloc(p->missing, TD_HASH_LEN);
		uint32_t k = 0;
		for (uint32_t j = 0; j < p->hdr.n_records; j++)
			if (!p->recs[j])
				memcpy(want[k++], p->ids[j], TD_HASH_LEN);
		fetch(n, p2p_peer_find(n->p2p, p->from), want, k);
		p->asked_ms = uv_now(n->loop);
		free(want);
	}
	maybe_start(n, 0);
}

/* ---- p2p callbacks ---- */

static void on_peer_connect(void *ctx, struct p2p_peer *peer)
{
	struct node *n = ctx;
	struct td_buf b;
	uint32_t v = p2p_peer_validator(peer);
	log_info("peer %s (validator %u) connected", n->genesis.v[v].name, v);
	n->peer_fresh[v] = true;
	send_status(n, peer);
	/* what we signed at this height may have gone out on a connection this one replaces */
	resend_signed(n, peer);
	/* Tell the newcomer what we hold so it can fetch what it lacks. */
	uint32_t k = mempool_peek(n->mp, n->scratch, n->cfg.block_max_records, UINT64_MAX);
	if (k) {
		uint8_t(*ids)[TD_HASH_LEN] = td_xcalloc(k, TD_HASH_LEN);
		for (uint32_t i = 0; i < k; i++)
			memcpy(ids[i], n->scratch[i]->id, TD_HASH_LEN);
		td_buf_init(&b);
		td_msg_ids(&b, TD_MSG_ANNOUNCE, (const uint8_t(*)[TD_HASH_LEN])ids, k);
		send_buf(n, peer, &b);
		td_buf_free(&b);
		free(ids);
	}
}

static void on_peer_disconnect(void *ctx, struct p2p_peer *peer)
{
	struct node *n = ctx;
	uint32_t v = p2p_peer_validator(peer);
	log_info("peer %s (validator %u) disconnected", n->genesis.v[v].name, v);
	/* A propose wait on that validator now ends after the unreachable timeout at most. */
	for (struct ntimer *nt = n->timers; nt; nt = nt->next)
		if (nt->kind == CONS_TIMEOUT_PROPOSE && cons_proposer(&n->cons, nt->h, nt->r) == v &&
		    uv_timer_get_due_in(&nt->t) > n->cfg.timeout_propose_unreachable_ms)
			uv_timer_start(&nt->t, on_cons_timer, n->cfg.timeout_propose_unreachable_ms, 0);
}

static void on_peer_message(void *ctx, struct p2p_peer *peer, const uint8_t *msg, size_t len)
{
	struct node *n = ctx;
	struct td_msg m;
	if (n->stopping)
		return;
	if (td_msg_decode(&m, msg, len) != 0) {
		p2p_disconnect(peer, "sent a malformed message");
		return;
	}
	switch (m.type) {
	case TD_MSG_STATUS: on_status(n, peer, &m); break;
	case TD_MSG_ANNOUNCE: on_announce(n, peer, &m); break;
	case TD_MSG_FETCH: on_fetch(n, peer, &m); break;
	case TD_MSG_RECORDS: on_records(n, peer, &m); break;
	case TD_MSG_PROPOSAL: on_proposal(n, peer, &m); break;
	case TD_MSG_VOTE: on_vote(n, peer, &m); break;
	case TD_MSG_SYNC_REQ: on_sync_req(n, peer, &m); break;
	case TD_MSG_SYNC_BLOCKS: on_sync_blocks(n, peer, &m); break;
	}
	td_msg_free(&m);
}

/* ---- socket methods ---- */

static int rpc_code(int rc)
{
	switch (rc) {
	case TD_EEXIST: return TD_RPC_DUPLICATE;
	case TD_EPERM:
	case TD_ERULE: return TD_RPC_RULE;
	case TD_EFULL: return TD_RPC_MEMPOOL_FULL;
	default: return TD_RPC_INVALID_RECORD;
	}
}

static void m_status(struct node *n, struct rpc_req *req)
{
	char hash[2 * TD_HASH_LEN + 1], pk[2 * TD_PUBKEY_LEN + 1], ts[32];
	json_t *vals = json_array(), *evid = json_array();
	uint64_t top = 0;
	uint32_t nevid = 0;
	const struct cons_evidence *ev = cons_evidence(&n->cons, &nevid);

	for (uint32_t i = 0; i < n->genesis.n; i++) {
		td_hex(pk, n->genesis.v[i].pk, TD_PUBKEY_LEN);
		json_array_append_new(vals, json_pack("{s:o, s:s, s:s, s:o}", "index", td_json_uint(i), "name",
						      n->genesis.v[i].name, "pub_key", pk, "missed_proposals",
						      td_json_uint(cons_missed_proposals(&n->cons, i))));
		if (n->peer_height[i] > top)
			top = n->peer_height[i];
	}
	for (uint32_t i = 0; i < nevid; i++) {
		char a[2 * TD_HASH_LEN + 1], b[2 * TD_HASH_LEN + 1];
		td_hex(a, ev[i].a, TD_HASH_LEN);
		td_hex(b, ev[i].b, TD_HASH_LEN);
		json_array_append_new(evid, json_pack("{s:o, s:s, s:o, s:o, s:s, s:s, s:s}", "validator",
						      td_json_uint(ev[i].validator), "name",
						      n->genesis.v[ev[i].validator].name, "height",
						      td_json_uint(ev[i].height), "round", td_json_uint(ev[i].round), "kind",
						      ev[i].kind == CONS_STEP_PROPOSE ? "proposal" :
						      ev[i].kind == CONS_STEP_PREVOTE ? "prevote" : "precommit",
						      "first", ev[i].nil_a ? "nil" : a, "second", ev[i].nil_b ? "nil" : b));
	}
	uint64_t h = chain_height(n->chain);
	td_hex(hash, chain_last_hash(n->chain), TD_HASH_LEN);
	td_hex(pk, n->pk, TD_PUBKEY_LEN);
	td_time_iso(ts, chain_last_time(n->chain));
	json_t *res = json_pack(
		"{s:s, s:s, s:{s:s, s:s, s:b}, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:{s:o, s:o, s:s}, "
		"s:{s:o, s:o, s:o, s:o}}",
		"version", TENDERD_VERSION, "chain_id", n->genesis.chain_id, "node", "name", n->cfg.name, "pub_key", pk,
		"validator", n->my_index >= 0, "height", td_json_uint(h), "last_block_hash", hash, "last_block_time",
		ts, "records", td_json_uint(chain_record_count(n->chain)), "mempool", td_json_uint(mempool_count(n->mp)),
		"mempool_bytes", td_json_uint(mempool_bytes(n->mp)), "peers",
		n->p2p ? p2p_peers_json(n->p2p) : json_array(), "validators", vals, "catching_up",
		n->syncing || top > h + 1, "sync_target", td_json_uint(top > h ? top : h), "consensus", "height",
		td_json_uint(cons_started(&n->cons) ? cons_height(&n->cons) : h + 1), "round",
		td_json_uint(cons_started(&n->cons) ? cons_round(&n->cons) : 0), "step",
		!cons_started(&n->cons) ? "idle" :
		cons_step(&n->cons) == CONS_STEP_PROPOSE ? "propose" :
		cons_step(&n->cons) == CONS_STEP_PREVOTE ? "prevote" : "precommit",
		"p2p", "bytes_sent", td_json_uint(n->p2p ? p2p_bytes_sent(n->p2p) : 0), "bytes_received",
		td_json_uint(n->p2p ? p2p_bytes_received(n->p2p) : 0), "records_received",
		td_json_uint(n->records_received), "records_refused", td_json_uint(n->records_refused));
	json_object_set_new(res, "evidence", evid);
	rpc_reply(req, res);
}

/*
 * Points each amendment of an amendment release at what it amends: the
 * tender's latest committed release (amendsReleaseID) and this release
 * (releaseID), where the agency left them out.
 */
static void link_amendments(struct node *n, json_t *full)
{
	char last[TD_ID_MAX + 1];
	const json_t *ocid = json_object_get(full, "ocid"), *id = json_object_get(full, "id");
	json_t *amends = json_object_get(json_object_get(full, "tender"), "amendments");
	size_t i;
	json_t *a;
	if (!td_json_is_string(ocid) || chain_last_release_id(n->chain, json_string_value(ocid), last) != 0)
		return;
	json_array_foreach(amends, i, a) {
		if (!json_is_object(a))
			continue;
		if (!json_object_get(a, "amendsReleaseID"))
			json_object_set_new(a, "amendsReleaseID", json_string(last));
		if (!json_object_get(a, "releaseID") && td_json_is_string(id))
			json_object_set_new(a, "releaseID", json_string(json_string_value(id)));
	}
}

static void m_publish(struct node *n, struct rpc_req *req, json_t *params)
{
	const json_t *jkind = json_object_get(params, "kind"), *release = json_object_get(params, "release");
	const json_t *jocid = json_object_get(params, "ocid"), *jwait = json_object_get(params, "wait");
	enum td_kind kind = TD_KIND_TENDER;
	struct td_record *rec = NULL;
	json_t *full = NULL;
	char err[TD_ERRMSG_MAX];
	uint64_t now = ledger_now(n);
	int rc;

	if (jkind && (!td_json_is_string(jkind) ||
		      !(kind = td_kind_parse(json_string_value(jkind), json_string_length(jkind))))) {
		rpc_error(req, TD_RPC_INVALID_PARAMS,
			  "kind must be one of tender, tenderAmendment, tenderCancellation, award");
		return;
	}
	if (!json_is_object(release)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "release must be a JSON object (an OCDS release)");
		return;
	}
	if (jocid && !td_json_is_string(jocid)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "ocid must be a string");
		return;
	}
	if (jwait && !json_is_boolean(jwait)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "wait must be true or false");
		return;
	}
	if (n->my_index < 0) {
		rpc_error(req, TD_RPC_RULE, "this node's key is not a validator of chain %s", n->genesis.chain_id);
		return;
	}
	full = td_release_build(release, kind, jocid ? json_string_value(jocid) : NULL, now, n->cfg.name, err,
				sizeof(err));
	if (!full) {
		rpc_error(req, TD_RPC_INVALID_RECORD, "%s", err);
		return;
	}
	if (kind == TD_KIND_AMENDMENT)
		link_amendments(n, full);
	rc = td_record_sign(&rec, kind, full, now, n->genesis.chain_id, n->sk, err, sizeof(err));
	json_decref(full);
	if (rc) {
		rpc_error(req, TD_RPC_INVALID_RECORD, "%s", err);
		return;
	}
	if ((rc = chain_check_record(n->chain, rec, err, sizeof(err))) != 0 ||
	    (rc = mempool_add(n->mp, rec, err, sizeof(err))) != 0) {
		td_record_free(rec);
		rpc_error(req, rpc_code(rc), "%s", err);
		return;
	}
	char hex[2 * TD_HASH_LEN + 1];
	td_hex(hex, rec->id, TD_HASH_LEN);
	log_debug("accepted %s %s for %s (record %s)", td_kind_name(kind), rec->release_id, rec->ocid, hex);
	announce(n, rec->id);
	if (jwait && json_is_true(jwait)) {
		struct waiter *w = td_xcalloc(1, sizeof(*w));
		w->req = req;
		memcpy(w->id, rec->id, TD_HASH_LEN);
		memcpy(w->ocid, rec->ocid, sizeof(w->ocid));
		memcpy(w->release_id, rec->release_id, sizeof(w->release_id));
		w->next = n->waiters;
		n->waiters = w;
	} else {
		rpc_reply(req, publish_result(rec->id, rec->ocid, rec->release_id));
	}
	maybe_start(n, n->cfg.block_delay_ms);
	if (n->awaiting_value)
		drive(n);
}

static bool param_u64(const json_t *params, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(params, key);
	return v && td_json_number_u64(v, out);
}

static void m_get(struct node *n, struct rpc_req *req, json_t *params)
{
	const json_t *ocid = json_object_get(params, "ocid");
	if (!td_json_is_string(ocid)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "ocid must be a string");
		return;
	}
	json_t *res = chain_tender_json(n->chain, json_string_value(ocid));
	if (!res) {
		rpc_error(req, TD_RPC_NOT_FOUND, "no tender with ocid %s", json_string_value(ocid));
		return;
	}
	rpc_reply(req, res);
}

/* Reads an optional string parameter; false (and an error sent) if present but not a string. */
static bool opt_str(struct rpc_req *req, const json_t *params, const char *key, const char **out)
{
	const json_t *v = json_object_get(params, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!td_json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 128) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "%s must be a non-empty string", key);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

/*
 * A date bound for list: YYYY-MM-DD (passed on as it is: the chain takes it
 * as the whole of that UTC day) or a full ISO 8601 time.
 */
static bool date_param(const char *s, char out[static 40])
{
	size_t len = strlen(s);
	if (len == 10) {
		snprintf(out, 40, "%sT00:00:00Z", s);
		if (!td_iso_valid(out, strlen(out)))
			return false;
		memcpy(out, s, len + 1);
		return true;
	}
	if (len >= 40 || !td_iso_valid(s, len))
		return false;
	memcpy(out, s, len + 1);
	return true;
}

static void m_list(struct node *n, struct rpc_req *req, json_t *params)
{
	uint64_t limit = 50;
	const json_t *cursor = json_object_get(params, "cursor");
	struct chain_filter f = { 0 };
	const char *agency, *since, *until;
	uint8_t pk[TD_PUBKEY_LEN];
	char since_buf[40], until_buf[40];

	if (!opt_str(req, params, "agency", &agency) || !opt_str(req, params, "status", &f.status) ||
	    !opt_str(req, params, "category", &f.category) || !opt_str(req, params, "method", &f.method) ||
	    !opt_str(req, params, "since", &since) || !opt_str(req, params, "until", &until))
		return;
	if (agency) {
		int v = -1;
		if (td_unhex(pk, TD_PUBKEY_LEN, agency, strlen(agency)))
			v = td_genesis_find(&n->genesis, pk);
		for (uint32_t i = 0; v < 0 && i < n->genesis.n; i++)
			if (strcmp(n->genesis.v[i].name, agency) == 0)
				v = (int)i;
		if (v < 0) {
			rpc_error(req, TD_RPC_INVALID_PARAMS, "agency \"%s\" is not a validator name or key of this chain",
				  agency);
			return;
		}
		memcpy(pk, n->genesis.v[v].pk, TD_PUBKEY_LEN);
		f.agency = pk;
	}
	if ((since && !date_param(since, since_buf)) || (until && !date_param(until, until_buf))) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "since and until take a date (2020-03-01) or an ISO 8601 time");
		return;
	}
	f.since = since ? since_buf : NULL;
	f.until = until ? until_buf : NULL;
	if (json_object_get(params, "limit") && (!param_u64(params, "limit", &limit) || limit < 1 || limit > 1000)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "limit must be a whole number from 1 to 1000");
		return;
	}
	if (cursor && !json_is_null(cursor) && !td_json_is_string(cursor)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "cursor must be a string from next_cursor");
		return;
	}
	json_t *res = chain_list_json(n->chain, &f, (uint32_t)limit,
				      td_json_is_string(cursor) ? json_string_value(cursor) : NULL);
	if (!res) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "cursor is not a next_cursor from an earlier answer");
		return;
	}
	rpc_reply(req, res);
}

static void m_block(struct node *n, struct rpc_req *req, json_t *params)
{
	uint64_t height;
	if (!param_u64(params, "height", &height)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "height must be a whole number");
		return;
	}
	json_t *res = chain_block_json(n->chain, height);
	if (!res) {
		rpc_error(req, TD_RPC_NOT_FOUND, "no block at height %llu (the chain is at %llu)",
			  (unsigned long long)height, (unsigned long long)chain_height(n->chain));
		return;
	}
	rpc_reply(req, res);
}

static void m_watch(struct node *n, struct rpc_req *req, json_t *params)
{
	uint64_t from = chain_height(n->chain) + 1;
	if (json_object_get(params, "from_height") && (!param_u64(params, "from_height", &from) || from < 1)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "from_height must be a whole number from 1");
		return;
	}
	struct watcher *w = td_xcalloc(1, sizeof(*w));
	w->req = req;
	w->next_height = from;
	w->next = n->watchers;
	n->watchers = w;
	log_debug("watch from height %llu", (unsigned long long)from);
	pump_watchers(n);
}

static void m_export(struct node *n, struct rpc_req *req, json_t *params)
{
	uint64_t from = 1, to = chain_height(n->chain);
	const json_t *records = json_object_get(params, "records");
	char uri[256];
	if ((json_object_get(params, "from") && !param_u64(params, "from", &from)) ||
	    (json_object_get(params, "to") && !param_u64(params, "to", &to)) || (records && !json_is_boolean(records))) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "from and to must be block heights, records true or false");
		return;
	}
	if (from >= 1 && to >= from && to - from >= EXPORT_BLOCKS_MAX) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "export at most %u blocks at a time (from..to)", EXPORT_BLOCKS_MAX);
		return;
	}
	if (from < 1 || from > to || to > chain_height(n->chain)) {
		rpc_error(req, TD_RPC_NOT_FOUND, "no blocks %llu..%llu (the chain is at %llu)", (unsigned long long)from,
			  (unsigned long long)to, (unsigned long long)chain_height(n->chain));
		return;
	}
	snprintf(uri, sizeof(uri), "tenderd://%s/%s?from=%llu&to=%llu", n->genesis.chain_id,
		 json_is_true(records) ? "records" : "releases", (unsigned long long)from, (unsigned long long)to);
	json_t *res = json_is_true(records) ? chain_record_package_json(n->chain, from, to, n->cfg.name, uri) :
					      chain_release_package_json(n->chain, from, to, n->cfg.name, uri);
	if (!res) {
		rpc_error(req, TD_RPC_INTERNAL, "export of blocks %llu..%llu failed", (unsigned long long)from,
			  (unsigned long long)to);
		return;
	}
	if (json_array_size(json_object_get(res, json_is_true(records) ? "records" : "releases")) == 0) {
		/* The OCDS package schemas require at least one release or record. */
		json_decref(res);
		rpc_error(req, TD_RPC_NOT_FOUND, "blocks %llu..%llu hold no releases", (unsigned long long)from,
			  (unsigned long long)to);
		return;
	}
	rpc_reply(req, res);
}

static void on_request(void *ctx, struct rpc_req *req, const char *method, json_t *params)
{
	struct node *n = ctx;
	if (n->stopping) {
		rpc_error(req, TD_RPC_SHUTTING_DOWN, "tenderd is shutting down");
		return;
	}
	if (!json_is_object(params)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "params must be an object");
		return;
	}
	if (strcmp(method, "status") == 0)
		m_status(n, req);
	else if (strcmp(method, "tender.publish") == 0)
		m_publish(n, req, params);
	else if (strcmp(method, "tender.get") == 0)
		m_get(n, req, params);
	else if (strcmp(method, "tender.list") == 0)
		m_list(n, req, params);
	else if (strcmp(method, "block.get") == 0)
		m_block(n, req, params);
	else if (strcmp(method, "tender.watch") == 0)
		m_watch(n, req, params);
	else if (strcmp(method, "ledger.export") == 0)
		m_export(n, req, params);
	else
		rpc_error(req, TD_RPC_METHOD_NOT_FOUND, "unknown method %s", method);
}

/* ---- life cycle ---- */

static void on_sighup(uv_signal_t *s, int signum)
{
	int rc = log_reopen();
	if (rc < 0)
		log_error("SIGHUP: cannot reopen the log file: %s", strerror(-rc));
	else
		log_info("SIGHUP: log file reopened");
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct node *n = s->data;
	log_info("received %s, stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
	node_stop(n);
}

int node_start(struct node **out, uv_loop_t *loop, const struct config *cfg, char *err, size_t errlen)
{
	struct node *n = td_xcalloc(1, sizeof(*n));
	char path[PATH_MAX + 16], pk[2 * TD_PUBKEY_LEN + 1];
	struct cons_sign_state ss;
	int rc;

	*out = NULL;
	n->loop = loop;
	n->cfg = *cfg;
	n->my_index = -1;
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		rc = TD_EIO;
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", cfg->home, KEY_FILE);
	if ((rc = config_key_load(path, n->sk, err, errlen)))
		goto fail;
	memcpy(n->pk, n->sk + crypto_sign_SEEDBYTES, TD_PUBKEY_LEN);
	snprintf(path, sizeof(path), "%s/%s", cfg->home, GENESIS_FILE);
	if ((rc = config_genesis_load(&n->genesis, path, err, errlen)))
		goto fail;
	n->my_index = td_genesis_find(&n->genesis, n->pk);
	td_hex(pk, n->pk, TD_PUBKEY_LEN);
	if (n->my_index < 0) {
		snprintf(err, errlen, "this node's key %s is not a validator in %s", pk, GENESIS_FILE);
		rc = TD_EINVAL;
		goto fail;
	}
	if (strcmp(n->genesis.v[n->my_index].name, cfg->name) != 0)
		log_warn("config name \"%s\" differs from this validator's genesis name \"%s\"", cfg->name,
			 n->genesis.v[n->my_index].name);
	if ((rc = chain_open(&n->chain, cfg->store_path, &n->genesis, err, errlen)))
		goto fail;
	snprintf(n->ss_path, sizeof(n->ss_path), "%s/%s", cfg->home, SIGNSTATE_FILE);
	if ((rc = signstate_load(n->ss_path, &ss, err, errlen)))
		goto fail;
	n->saved_ss = ss;
	struct cons_config cc = {
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
	if ((rc = cons_init(&n->cons, n->genesis.n, n->my_index, chain_height(n->chain) + 1, &cc,
			    ss.any && ss.height >= chain_height(n->chain) + 1 ? &ss : NULL))) {
		snprintf(err, errlen, "consensus: bad validator set or sign state");
		goto fail;
	}
	n->cons_ok = true;
	n->mp = mempool_new(cfg->mempool_max_records, cfg->mempool_max_bytes);
	n->scratch = td_xcalloc(cfg->block_max_records, sizeof(*n->scratch));
	n->seen = td_xcalloc(SEEN_SLOTS, sizeof(*n->seen));
	n->announce = td_xcalloc(ANNOUNCE_BATCH, TD_HASH_LEN);
	n->precommits = td_xcalloc(PRECOMMITS_MAX, sizeof(*n->precommits));
	if ((rc = rpc_start(&n->rpc, loop, cfg->socket_path, on_request, n, err, errlen)))
		goto fail;
	if (n->genesis.n > 1) {
		struct p2p_config pc = { .listen = cfg->p2p_listen, .peers = cfg->p2p_peers, .genesis = &n->genesis,
					 .sk = n->sk };
		struct p2p_callbacks cb = { on_peer_connect, on_peer_message, on_peer_disconnect };
		if ((rc = p2p_start(&n->p2p, loop, &pc, &cb, n, err, errlen)))
			goto fail;
	}
	uv_timer_init(loop, &n->start_timer);
	uv_timer_init(loop, &n->watch_timer);
	uv_timer_init(loop, &n->value_timer);
	n->watch_timer.data = n->value_timer.data = n;
	uv_timer_init(loop, &n->tick_timer);
	uv_check_init(loop, &n->flush_check);
	uv_signal_init(loop, &n->sig_int);
	uv_signal_init(loop, &n->sig_term);
	uv_signal_init(loop, &n->sig_hup);
	n->sig_hup.data = n;
	n->start_timer.data = n->tick_timer.data = n->flush_check.data = n;
	n->sig_int.data = n->sig_term.data = n;
	uv_check_start(&n->flush_check, on_flush_check);
	uv_signal_start(&n->sig_int, on_signal, SIGINT);
	uv_signal_start(&n->sig_term, on_signal, SIGTERM);
	uv_signal_start(&n->sig_hup, on_sighup, SIGHUP);
	if (n->p2p)
		uv_timer_start(&n->tick_timer, on_tick, TICK_MS, TICK_MS);
	n->handles_open = true;

	log_info("tenderd %s: chain %s, ocid prefix %s, %u validator%s", TENDERD_VERSION, n->genesis.chain_id,
		 n->genesis.ocid_prefix, n->genesis.n, n->genesis.n == 1 ? "" : "s");
	log_info("validator %u: %s (%s)", n->my_index, cfg->name, pk);
	log_info("store %s at height %llu with %llu records", cfg->store_path,
		 (unsigned long long)chain_height(n->chain), (unsigned long long)chain_record_count(n->chain));
	log_info("socket %s", cfg->socket_path);
	if (n->p2p)
		log_info("p2p listening on %s, dialing %s", cfg->p2p_listen, cfg->p2p_peers[0] ? cfg->p2p_peers : "none");
	/* A restart in the middle of a height resumes it at once (re-sending what was signed). */
	if (ss.any && ss.height == chain_height(n->chain) + 1) {
		cons_start(&n->cons, ss.height);
		drive(n);
	}
	*out = n;
	return 0;
fail:
	if (n->rpc) {
		rpc_stop(n->rpc);
		n->rpc = NULL;
	}
	node_free(n);
	return rc;
}

void node_stop(struct node *n)
{
	if (n->stopping)
		return;
	n->stopping = true;
	while (n->waiters) {
		struct waiter *w = n->waiters;
		n->waiters = w->next;
		rpc_error(w->req, TD_RPC_SHUTTING_DOWN, "tenderd stopped before the record was committed");
		free(w);
	}
	while (n->watchers) {
		struct watcher *w = n->watchers;
		n->watchers = w->next;
		rpc_error(w->req, TD_RPC_SHUTTING_DOWN, "tenderd is stopping");
		free(w);
	}
	if (mempool_count(n->mp) > 0)
		log_warn("%u pending records were not committed", mempool_count(n->mp));
	rpc_stop(n->rpc);
	n->rpc = NULL;
	p2p_stop(n->p2p);
	n->p2p = NULL;
	for (struct ntimer *t = n->timers, *next; t; t = next) {
		next = t->next;
		uv_close((uv_handle_t *)&t->t, on_cons_timer_closed);
	}
	n->timers = NULL;
	if (n->handles_open) {
		uv_close((uv_handle_t *)&n->start_timer, NULL);
		uv_close((uv_handle_t *)&n->watch_timer, NULL);
		uv_close((uv_handle_t *)&n->value_timer, NULL);
		uv_close((uv_handle_t *)&n->tick_timer, NULL);
		uv_close((uv_handle_t *)&n->flush_check, NULL);
		uv_close((uv_handle_t *)&n->sig_int, NULL);
		uv_close((uv_handle_t *)&n->sig_term, NULL);
		uv_close((uv_handle_t *)&n->sig_hup, NULL);
		n->handles_open = false;
	}
}

void node_free(struct node *n)
{
	if (!n)
		return;
	for (uint32_t i = 0; i < n->nblocks; i++)
		td_block_free(n->blocks[i]);
	for (uint32_t i = 0; i < n->npend; i++)
		pprop_clear(&n->pend[i]);
	for (uint32_t i = 0; i < n->nfuture; i++)
		free(n->future[i].bytes);
	for (uint32_t i = 0; i < RECENT_BLOCKS; i++)
		td_block_free(n->recent[i]);
	cons_free(&n->cons);
	chain_close(n->chain);
	mempool_free(n->mp);
	td_genesis_free(&n->genesis);
	free(n->scratch);
	free(n->seen);
	free(n->announce);
	free(n->precommits);
	sodium_memzero(n->sk, sizeof(n->sk));
	free(n);
}
