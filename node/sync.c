/*
 * Block sync (see sync.h). Owns the peers' claimed heights and the state of
 * the one outstanding request.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sync.h"

struct sync {
	const struct node_io *io;
	const struct td_genesis *g;
	struct chain *chain;
	struct mempool *mp;
	const struct proposals *prop;
	struct sync_callbacks cb;
	uint64_t peer_height[TD_PARTIES_MAX];
	bool peer_fresh[TD_PARTIES_MAX]; /* connected, its first STATUS not yet seen */
	bool busy;
	uint32_t asked;    /* the peer of the outstanding request */
	uint64_t deadline; /* io mono_ms */
	uint64_t height_at_last_tick;
	uint32_t next; /* where the next search for a peer ahead starts: peers are asked in turn */
};

struct sync *sync_new(const struct node_io *io, const struct td_genesis *g, struct chain *chain, struct mempool *mp,
		      const struct proposals *prop, const struct sync_callbacks *cb)
{
	struct sync *s = td_xcalloc(1, sizeof(*s));
	s->io = io;
	s->g = g;
	s->chain = chain;
	s->mp = mp;
	s->prop = prop;
	s->cb = *cb;
	return s;
}

void sync_free(struct sync *s)
{
	free(s);
}

bool sync_busy(const struct sync *s)
{
	return s->busy;
}

uint64_t sync_top(const struct sync *s)
{
	uint64_t top = 0;
	for (uint32_t i = 0; i < TD_PARTIES_MAX; i++)
		if (s->peer_height[i] > top)
			top = s->peer_height[i];
	return top;
}

/* Asks peer for the blocks from height `from` on. */
static void request_from(struct sync *s, uint32_t peer, uint64_t from)
{
	struct td_buf b;
	s->busy = true;
	s->asked = peer;
	s->deadline = s->io->mono_ms(s->io->ctx) + SYNC_TIMEOUT_MS;
	td_buf_init(&b);
	td_msg_sync_req(&b, from, TD_SYNC_BATCH);
	nio_send(s->io, peer, &b);
	td_buf_free(&b);
}

static void request(struct sync *s, uint32_t peer)
{
	request_from(s, peer, chain_height(s->chain) + 1);
}

void sync_peer_connected(struct sync *s, uint32_t v)
{
	s->peer_fresh[v] = true;
}

void sync_on_status(struct sync *s, uint32_t peer, const struct td_msg *m)
{
	bool fresh = s->peer_fresh[peer];
	uint64_t h = chain_height(s->chain);
	s->peer_height[peer] = m->height;
	s->peer_fresh[peer] = false;
	if (!s->busy && (m->height >= h + 2 || (m->height == h + 1 && (prop_waiting(s->prop) > 0 || fresh))))
		request(s, peer);
}

void sync_on_request(struct sync *s, uint32_t peer, const struct td_msg *m)
{
	struct td_buf b;
	uint64_t top = chain_height(s->chain);
	uint32_t count = 0;
	size_t bytes = 0;
	uint8_t *blks[TD_SYNC_BATCH], *commits[TD_SYNC_BATCH];
	size_t blens[TD_SYNC_BATCH], clens[TD_SYNC_BATCH];
	uint32_t want = m->count < TD_SYNC_BATCH ? m->count : TD_SYNC_BATCH;

	/* As many blocks as fit one frame: a block is at most TD_BLOCK_MAX, the frame a little more. */
	for (uint64_t h = m->height; h >= 1 && h <= top && count < want; h++) {
		if (chain_block_raw(s->chain, h, &blks[count], &blens[count], &commits[count], &clens[count]) != 0)
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
	nio_send(s->io, peer, &b);
	td_buf_free(&b);
}

/*
 * Applies the blocks of a SYNC_BLOCKS answer. The request for the blocks
 * after them goes out before they are applied, so the peer reads and sends
 * the next batch while we apply this one; it is sent once the answer's
 * blocks have decoded, and one more request is never outstanding.
 */
void sync_on_blocks(struct sync *s, uint32_t peer, const struct td_msg *m)
{
	char err[TD_ERRMSG_MAX];
	uint32_t applied = 0, nb = 0;
	bool asked = false, dropped = false;
	bool ours = s->busy && peer == s->asked; /* else a late or unasked answer: its blocks still count */
	struct td_block **blks = td_xcalloc(m->n_items / 2 + 1, sizeof(*blks));

	/*
	 * Records of a synced block are not verified one by one: chain_apply
	 * checks the block's commit, and more than two thirds of the validators
	 * verified every record before they signed it.
	 */
	for (uint32_t i = 0; i + 1 < m->n_items; i += 2, nb++) {
		if (td_block_decode(&blks[nb], m->items[i].p, m->items[i].len, s->g->hash, true, err, sizeof(err)) !=
		    0) {
			s->io->disconnect(s->io->ctx, peer, "sent a block that fails verification");
			goto out;
		}
	}
	if (nb == 0 && s->peer_height[peer] > chain_height(s->chain)) {
		/* It claimed blocks it does not send: its claim is dropped until its next STATUS. */
		log_debug("peer %u claimed height %llu but sent no block", peer,
			  (unsigned long long)s->peer_height[peer]);
		s->peer_height[peer] = chain_height(s->chain);
	}
	if ((ours || !s->busy) && nb > 0 && blks[nb - 1]->hdr.height >= chain_height(s->chain) + 1 &&
	    s->peer_height[peer] > blks[nb - 1]->hdr.height) {
		request_from(s, peer, blks[nb - 1]->hdr.height + 1);
		asked = true;
	}
	for (uint32_t i = 0; i < nb; i++) {
		struct td_block *blk = blks[i];
		struct td_commit commit;
		if (blk->hdr.height != chain_height(s->chain) + 1)
			continue;
		if (td_commit_decode(&commit, m->items[2 * i + 1].p, m->items[2 * i + 1].len, err, sizeof(err)) != 0 ||
		    chain_apply(s->chain, blk, &commit, err, sizeof(err)) != 0) {
			log_warn("block %llu from sync refused: %s", (unsigned long long)blk->hdr.height, err);
			td_commit_clear(&commit);
			s->io->disconnect(s->io->ctx, peer, "sent a block the chain refuses");
			asked = false;
			dropped = true;
			break;
		}
		for (uint32_t j = 0; j < blk->hdr.n_records; j++)
			mempool_remove(s->mp, blk->records[j]->id);
		td_commit_clear(&commit);
		applied++;
	}
out:
	for (uint32_t i = 0; i < nb; i++)
		td_block_free(blks[i]);
	free(blks);
	if (!asked && ours)
		s->busy = false; /* else the answer to the request sent above is on its way */
	if (applied) {
		log_info("block sync: applied %u block%s, now at height %llu", applied, applied == 1 ? "" : "s",
			 (unsigned long long)chain_height(s->chain));
		s->cb.on_applied(s->cb.ctx, applied);
		if (!asked && !dropped && !s->busy && s->peer_height[peer] > chain_height(s->chain))
			request(s, peer);
	}
}

void sync_tick(struct sync *s)
{
	uint64_t h = chain_height(s->chain);
	if (s->busy && s->io->mono_ms(s->io->ctx) > s->deadline) {
		/* Unanswered: that peer's claim no longer counts, and the next peer is asked. */
		s->busy = false;
		if (s->peer_height[s->asked] > h)
			s->peer_height[s->asked] = h;
	}
	/* A peer ahead of us while we made no progress for a tick: catch up by sync, asking peers in turn. */
	if (!s->busy && h == s->height_at_last_tick) {
		for (uint32_t k = 0; k < TD_PARTIES_MAX; k++) {
			uint32_t v = (s->next + k) % TD_PARTIES_MAX;
			if (s->io->connected(s->io->ctx, v) && s->peer_height[v] > h) {
				request(s, v);
				s->next = (v + 1) % TD_PARTIES_MAX;
				break;
			}
		}
	}
	s->height_at_last_tick = h;
}
