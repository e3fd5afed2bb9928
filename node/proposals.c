/*
 * Proposals (see proposals.h). Owns this height's blocks, the proposals
 * being rebuilt (holding references to their records), the recently
 * committed blocks and the encoded next-height proposals.
 */
#include <stdlib.h>
#include <string.h>

#include "tenderd/evidence.h"
#include "consensus.h"
#include "gossip.h"
#include "log.h"
#include "proposals.h"

/* A proposal whose block is being rebuilt from records we still lack. */
struct pprop {
	uint32_t from;      /* the proposer: its index in the height's validator set */
	uint32_t from_slot; /* the proposer's party slot: the peer asked again for records */
	uint32_t round;
	int32_t valid_round;
	uint8_t hash[TD_HASH_LEN];
	struct td_block_header hdr;
	uint8_t (*ids)[TD_HASH_LEN];
	struct td_record **recs; /* references, NULL where missing */
	struct td_evidence *ev;  /* hdr.n_evidence items, decoded (checked with the block) */
	uint32_t missing;
	uint64_t asked_ms;
	uint32_t peer; /* who sent it: relayed to everyone else once complete */
	uint8_t *msg;  /* the PROPOSAL message, canonical */
	size_t len;
};

/* A proposal whose signature checked out: the first of each proposer and round, kept to catch a second. */
struct signed_prop {
	uint64_t h;
	uint32_t r, from;
	int32_t valid_round;
	uint8_t hash[TD_HASH_LEN];
	uint8_t sig[TD_SIG_LEN];
};

/* A complete proposal of this height, relayed once and sent again to peers that missed it. */
struct relayed {
	uint32_t round;
	uint8_t hash[TD_HASH_LEN];
	uint8_t *msg;
	size_t len;
};

struct proposals {
	const struct node_io *io;
	const struct td_genesis *g;
	struct mempool *mp;
	struct prop_callbacks cb;
	uint64_t height;
	struct td_block *blocks[PROP_BLOCKS_MAX]; /* complete, at height */
	uint32_t nblocks;
	struct pprop pend[PROP_BLOCKS_MAX];
	uint32_t npend;
	struct relayed relayed[PROP_BLOCKS_MAX]; /* oldest replaced first */
	uint32_t nrelayed, relayed_next;
	struct td_block *recent[PROP_RECENT]; /* last committed, oldest replaced first */
	uint32_t recent_next;
	struct {
		uint8_t *bytes; /* the PROPOSAL message, canonical */
		size_t len;
		uint32_t from; /* the peer that sent it */
	} future[PROP_FUTURE_MAX];
	uint32_t nfuture;
	struct signed_prop seen[PROP_SEEN_MAX]; /* oldest replaced first */
	uint32_t nseen, seen_next;
	struct registry_set gset; /* the genesis validators, when cb.valset is NULL */
};

struct proposals *prop_new(const struct node_io *io, const struct td_genesis *g, struct mempool *mp, uint64_t height,
			   const struct prop_callbacks *cb)
{
	struct proposals *p = td_xcalloc(1, sizeof(*p));
	p->io = io;
	p->g = g;
	p->mp = mp;
	p->cb = *cb;
	p->height = height;
	registry_genesis_set(&p->gset, g);
	return p;
}

/* The validator set signing height h, or NULL if not known yet. */
static const struct registry_set *pset(const struct proposals *p, uint64_t h)
{
	return p->cb.valset ? p->cb.valset(p->cb.ctx, h) : &p->gset;
}

static void pprop_clear(struct pprop *pp)
{
	if (pp->recs)
		for (uint32_t i = 0; i < pp->hdr.n_records; i++)
			td_record_free(pp->recs[i]);
	free(pp->recs);
	free(pp->ids);
	free(pp->ev);
	free(pp->msg);
	memset(pp, 0, sizeof(*pp));
}

void prop_free(struct proposals *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->nblocks; i++)
		td_block_free(p->blocks[i]);
	for (uint32_t i = 0; i < p->npend; i++)
		pprop_clear(&p->pend[i]);
	for (uint32_t i = 0; i < p->nfuture; i++)
		free(p->future[i].bytes);
	for (uint32_t i = 0; i < PROP_RECENT; i++)
		td_block_free(p->recent[i]);
	for (uint32_t i = 0; i < p->nrelayed; i++)
		free(p->relayed[i].msg);
	free(p);
}

struct td_block *prop_block_find(const struct proposals *p, const uint8_t hash[static TD_HASH_LEN])
{
	for (uint32_t i = 0; i < p->nblocks; i++)
		if (memcmp(p->blocks[i]->hash, hash, TD_HASH_LEN) == 0)
			return p->blocks[i];
	return NULL;
}

void prop_keep(struct proposals *p, struct td_block *blk)
{
	if (p->nblocks == PROP_BLOCKS_MAX) {
		td_block_free(p->blocks[0]);
		memmove(p->blocks, p->blocks + 1, (PROP_BLOCKS_MAX - 1) * sizeof(*p->blocks));
		p->nblocks--;
	}
	p->blocks[p->nblocks++] = blk;
}

struct td_block *prop_commit(struct proposals *p, const uint8_t hash[static TD_HASH_LEN])
{
	for (uint32_t i = 0; i < p->nblocks; i++) {
		struct td_block *blk = p->blocks[i];
		if (memcmp(blk->hash, hash, TD_HASH_LEN) != 0)
			continue;
		p->blocks[i] = p->blocks[--p->nblocks];
		td_block_free(p->recent[p->recent_next]);
		p->recent[p->recent_next] = blk;
		p->recent_next = (p->recent_next + 1) % PROP_RECENT;
		return blk;
	}
	return NULL;
}

struct td_record *prop_find_record(const struct proposals *p, const uint8_t id[static TD_HASH_LEN])
{
	for (uint32_t j = 0; j < p->nblocks + PROP_RECENT; j++) {
		const struct td_block *blk = j < p->nblocks ? p->blocks[j] : p->recent[j - p->nblocks];
		for (uint32_t x = 0; blk && x < blk->hdr.n_records; x++)
			if (memcmp(blk->records[x]->id, id, TD_HASH_LEN) == 0)
				return blk->records[x];
	}
	return NULL;
}

uint32_t prop_waiting(const struct proposals *p)
{
	return p->npend;
}

/*
 * Passes a complete proposal on to every peer but the one it came from,
 * once per (round, block): a peer without a link to the proposer still gets
 * it, and fetches its records from us. Keeps a copy for prop_resend.
 */
static void relay(struct proposals *p, uint32_t from_peer, uint32_t round, const uint8_t hash[static TD_HASH_LEN],
		  const uint8_t *msg, size_t len)
{
	for (uint32_t i = 0; i < p->nrelayed; i++)
		if (p->relayed[i].round == round && memcmp(p->relayed[i].hash, hash, TD_HASH_LEN) == 0)
			return;
	struct relayed *r = &p->relayed[p->relayed_next];
	if (p->nrelayed < PROP_BLOCKS_MAX)
		p->nrelayed++;
	else
		free(r->msg);
	p->relayed_next = (p->relayed_next + 1) % PROP_BLOCKS_MAX;
	r->round = round;
	memcpy(r->hash, hash, TD_HASH_LEN);
	r->msg = td_xmalloc(len);
	memcpy(r->msg, msg, len);
	r->len = len;
	const struct registry_set *s = pset(p, p->height);
	if (s)
		nio_relay_slots(p->io, s->slot, s->n, from_peer, NODE_ALL, msg, len);
}

void prop_resend(struct proposals *p, uint32_t to)
{
	for (uint32_t i = 0; i < p->nrelayed; i++)
		p->io->send(p->io->ctx, to, p->relayed[i].msg, p->relayed[i].len);
}

/* The block of a complete proposal: checked against its header, kept, reported. */
static void pprop_complete(struct proposals *p, uint32_t idx)
{
	struct pprop pp = p->pend[idx];
	p->pend[idx] = p->pend[--p->npend];
	memset(&p->pend[p->npend], 0, sizeof(p->pend[p->npend]));

	struct td_block *blk = td_block_new(pp.hdr.height, pp.hdr.prev_hash, pp.hdr.time_ms, pp.hdr.proposer,
					    pp.hdr.next_validators, pp.recs, pp.hdr.n_records);
	pp.recs = NULL;
	if (pp.hdr.n_evidence > 0) {
		td_block_set_evidence(blk, pp.ev, pp.hdr.n_evidence);
		pp.ev = NULL;
	}
	if (memcmp(blk->hash, pp.hash, TD_HASH_LEN) != 0) {
		log_warn("proposal for height %llu round %u from validator %u: records do not match its header",
			 (unsigned long long)pp.hdr.height, pp.round, pp.from);
		td_block_free(blk);
		pprop_clear(&pp);
		return;
	}
	if (!prop_block_find(p, blk->hash))
		prop_keep(p, blk);
	else
		td_block_free(blk);
	if (pp.hdr.height == p->height)
		relay(p, pp.peer, pp.round, pp.hash, pp.msg, pp.len);
	if (pp.hdr.height == p->height)
		p->cb.on_complete(p->cb.ctx, pp.from, pp.hdr.height, pp.round, pp.hash, pp.valid_round);
	pprop_clear(&pp);
}

void prop_offer(struct proposals *p, struct td_record *rec)
{
	for (uint32_t i = 0; i < p->npend; i++) {
		struct pprop *pp = &p->pend[i];
		for (uint32_t j = 0; j < pp->hdr.n_records; j++) {
			if (!pp->recs[j] && memcmp(pp->ids[j], rec->id, TD_HASH_LEN) == 0) {
				pp->recs[j] = td_record_ref(rec);
				pp->missing--;
			}
		}
	}
	for (uint32_t i = 0; i < p->npend;) {
		if (p->pend[i].missing == 0)
			pprop_complete(p, i);
		else
			i++;
	}
}

/*
 * Keeps the first verified proposal of each (height, round) by its proposer;
 * a different one for the same (height, round) goes out as evidence.
 */
static void note_signed(struct proposals *p, uint32_t from, const uint8_t pk[static TD_PUBKEY_LEN],
			const struct td_msg *m)
{
	for (uint32_t i = 0; i < p->nseen; i++) {
		const struct signed_prop *s = &p->seen[i];
		if (s->h != m->height || s->r != m->round || s->from != from)
			continue;
		if (s->valid_round == m->valid_round && memcmp(s->hash, m->hash, TD_HASH_LEN) == 0)
			return;
		struct td_evidence ev = { .kind = TD_EVIDENCE_PROPOSALS, .height = m->height, .round = m->round };
		memcpy(ev.pk, pk, TD_PUBKEY_LEN);
		ev.a.valid_round = s->valid_round;
		memcpy(ev.a.value, s->hash, TD_HASH_LEN);
		memcpy(ev.a.sig, s->sig, TD_SIG_LEN);
		ev.b.valid_round = m->valid_round;
		memcpy(ev.b.value, m->hash, TD_HASH_LEN);
		memcpy(ev.b.sig, m->sig, TD_SIG_LEN);
		td_evidence_seal(&ev);
		if (p->cb.on_conflict)
			p->cb.on_conflict(p->cb.ctx, &ev);
		return;
	}
	struct signed_prop *s = &p->seen[p->seen_next];
	p->seen_next = (p->seen_next + 1) % PROP_SEEN_MAX;
	if (p->nseen < PROP_SEEN_MAX)
		p->nseen++;
	*s = (struct signed_prop){ .h = m->height, .r = m->round, .from = from, .valid_round = m->valid_round };
	memcpy(s->hash, m->hash, TD_HASH_LEN);
	memcpy(s->sig, m->sig, TD_SIG_LEN);
}

/* Re-encodes a decoded proposal (decoding made sure it is canonical, so the bytes are the same). */
static void encode_again(struct td_buf *b, const struct td_msg *m)
{
	td_msg_encode(b, m);
}

void prop_on_proposal(struct proposals *p, uint32_t peer, const struct td_msg *m)
{
	uint8_t hash[TD_HASH_LEN];
	struct td_buf b;

	log_debug("proposal for height %llu round %u with %u records", (unsigned long long)m->height, m->round,
		  m->n_ids);
	if (m->round > CONS_ROUND_MAX || (m->height != p->height && m->height != p->height + 1))
		return;
	struct td_evidence ev[TD_BLOCK_EVIDENCE_MAX];
	for (uint32_t i = 0; i < m->n_items; i++) {
		if (td_evidence_decode(&ev[i], m->items[i].p, m->items[i].len) != 0) {
			p->io->disconnect(p->io->ctx, peer, "sent a proposal with malformed evidence");
			return;
		}
	}
	const struct registry_set *s = pset(p, m->height);
	if (!s)
		return;
	uint32_t from = (uint32_t)((m->height + m->round) % s->n);
	memcpy(hash, m->hash, TD_HASH_LEN); /* the decoder hashed the header */
	if (!td_proposal_verify(m->sig, p->g->hash, m->height, m->round, m->valid_round, hash, s->v[from].pk)) {
		p->io->disconnect(p->io->ctx, peer, "sent a proposal with a bad signature");
		return;
	}
	note_signed(p, from, s->v[from].pk, m);
	if (m->height == p->height + 1) {
		/* The next height's proposer may be ahead of us by one commit: keep it for then. */
		if (p->nfuture == PROP_FUTURE_MAX)
			return;
		td_buf_init(&b);
		encode_again(&b, m);
		p->future[p->nfuture].bytes = td_buf_take(&b, &p->future[p->nfuture].len);
		td_buf_free(&b);
		p->future[p->nfuture++].from = peer;
		return;
	}
	if (prop_block_find(p, hash)) {
		td_buf_init(&b);
		encode_again(&b, m);
		relay(p, peer, m->round, hash, (const uint8_t *)b.sb.data, b.sb.size);
		td_buf_free(&b);
		p->cb.on_complete(p->cb.ctx, from, m->height, m->round, hash, m->valid_round);
		return;
	}
	uint32_t mine = 0, lowest = UINT32_MAX;
	for (uint32_t i = 0; i < p->npend; i++) {
		if (memcmp(p->pend[i].hash, hash, TD_HASH_LEN) == 0 && p->pend[i].round == m->round)
			return;
		if (p->pend[i].from == from) {
			mine++;
			if (lowest == UINT32_MAX || p->pend[i].round < p->pend[lowest].round)
				lowest = i;
		}
	}
	/* Each proposer has PROP_PENDING_PER_PROPOSER slots: its newest round replaces its oldest. */
	if (mine >= PROP_PENDING_PER_PROPOSER) {
		if (m->round <= p->pend[lowest].round)
			return;
		pprop_clear(&p->pend[lowest]);
		p->pend[lowest] = p->pend[--p->npend];
		memset(&p->pend[p->npend], 0, sizeof(p->pend[p->npend]));
	}
	if (p->npend == PROP_BLOCKS_MAX)
		return;
	struct pprop *pp = &p->pend[p->npend++];
	memset(pp, 0, sizeof(*pp));
	pp->peer = peer;
	td_buf_init(&b);
	encode_again(&b, m);
	pp->msg = td_buf_take(&b, &pp->len);
	td_buf_free(&b);
	pp->from = from;
	pp->from_slot = s->slot[from];
	pp->round = m->round;
	pp->valid_round = m->valid_round;
	memcpy(pp->hash, hash, TD_HASH_LEN);
	pp->hdr = m->hdr;
	pp->ids = td_xcalloc(m->n_ids ? m->n_ids : 1, TD_HASH_LEN);
	pp->recs = td_xcalloc(m->n_ids ? m->n_ids : 1, sizeof(*pp->recs));
	memcpy(pp->ids, m->ids, (size_t)m->n_ids * TD_HASH_LEN);
	if (m->n_items > 0) {
		pp->ev = td_xcalloc(m->n_items, sizeof(*pp->ev));
		memcpy(pp->ev, ev, (size_t)m->n_items * sizeof(*ev));
	}
	uint8_t(*want)[TD_HASH_LEN] = td_xcalloc(m->n_ids ? m->n_ids : 1, TD_HASH_LEN);
	for (uint32_t i = 0; i < m->n_ids; i++) {
		struct td_record *rec = mempool_get(p->mp, m->ids[i]);
		if (rec)
			pp->recs[i] = td_record_ref(rec);
		else
			memcpy(want[pp->missing++], m->ids[i], TD_HASH_LEN);
	}
	pp->asked_ms = p->io->mono_ms(p->io->ctx);
	if (pp->missing == 0)
		pprop_complete(p, p->npend - 1);
	else
		p->cb.fetch(p->cb.ctx, peer, (const uint8_t(*)[TD_HASH_LEN])want, pp->missing);
	free(want);
}

void prop_refetch(struct proposals *p)
{
	uint64_t now = p->io->mono_ms(p->io->ctx);
	for (uint32_t i = 0; i < p->npend; i++) {
		struct pprop *pp = &p->pend[i];
		if (now - pp->asked_ms < GOSSIP_FETCH_RETRY_MS)
			continue;
		uint8_t(*want)[TD_HASH_LEN] = td_xcalloc(pp->missing, TD_HASH_LEN);
		uint32_t k = 0;
		for (uint32_t j = 0; j < pp->hdr.n_records; j++)
			if (!pp->recs[j])
				memcpy(want[k++], pp->ids[j], TD_HASH_LEN);
		p->cb.fetch(p->cb.ctx, pp->from_slot, (const uint8_t(*)[TD_HASH_LEN])want, k);
		pp->asked_ms = now;
		free(want);
	}
}

void prop_new_height(struct proposals *p, uint64_t h)
{
	for (uint32_t i = 0; i < p->nblocks; i++)
		td_block_free(p->blocks[i]);
	p->nblocks = 0;
	for (uint32_t i = 0; i < p->npend; i++)
		pprop_clear(&p->pend[i]);
	p->npend = 0;
	for (uint32_t i = 0; i < p->nrelayed; i++)
		free(p->relayed[i].msg);
	p->nrelayed = p->relayed_next = 0;
	p->height = h;
	/* Proposals that arrived one height early (taken out first: replaying may keep new ones). */
	uint32_t nf = p->nfuture;
	uint8_t *bytes[PROP_FUTURE_MAX];
	size_t lens[PROP_FUTURE_MAX];
	uint32_t from[PROP_FUTURE_MAX];
	for (uint32_t i = 0; i < nf; i++) {
		bytes[i] = p->future[i].bytes;
		lens[i] = p->future[i].len;
		from[i] = p->future[i].from;
	}
	p->nfuture = 0;
	for (uint32_t i = 0; i < nf; i++) {
		struct td_msg m;
		if (p->io->connected(p->io->ctx, from[i]) && td_msg_decode(&m, bytes[i], lens[i]) == 0) {
			if (m.height == h)
				prop_on_proposal(p, from[i], &m);
			td_msg_free(&m);
		}
		free(bytes[i]);
	}
}
