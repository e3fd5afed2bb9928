/*
 * Block sync: a node behind its peers fetches committed blocks with their
 * commits (SYNC_REQ / SYNC_BLOCKS) and applies them; it answers the same
 * requests from others.
 *
 * A peer's height comes from its STATUS. A sync starts when a peer is two
 * or more blocks ahead, or one ahead while a proposal of ours waits for
 * records or on a peer's new connection (votes sent on the one it replaced
 * may be lost), or when the chain made no progress for a tick while a peer
 * is ahead. One request is outstanding at a time; it is given up after
 * SYNC_TIMEOUT_MS, and then the height that peer claimed no longer counts
 * (until its next STATUS), nor does it when its answer holds no block:
 * a peer that lies about its height cannot hold sync. Peers ahead are asked
 * in turn. Only an answer from the peer asked ends a request. Requests are
 * pipelined: the next goes out before the blocks of an answer are applied.
 */
#ifndef TENDERD_SYNC_H
#define TENDERD_SYNC_H

#include "chain.h"
#include "mempool.h"
#include "nodeio.h"
#include "proposals.h"

#define SYNC_TIMEOUT_MS 5000 /* a sync request unanswered this long is given up */

struct sync;

struct sync_callbacks {
	void *ctx;
	/* Blocks from sync were applied; the chain is at a new height. */
	void (*on_applied)(void *ctx, uint32_t blocks);
};

/* Sync over io for genesis g, chain, mp and prop (all borrowed). */
struct sync *sync_new(const struct node_io *io, const struct td_genesis *g, struct chain *chain, struct mempool *mp,
		      const struct proposals *prop, const struct sync_callbacks *cb);
/* NULL does nothing. */
void sync_free(struct sync *s);

/* Peer v connected: its first STATUS may start a sync even one block ahead. */
void sync_peer_connected(struct sync *s, uint32_t v);
void sync_on_status(struct sync *s, uint32_t peer, const struct td_msg *m);
void sync_on_request(struct sync *s, uint32_t peer, const struct td_msg *m);
void sync_on_blocks(struct sync *s, uint32_t peer, const struct td_msg *m);
/* Once a tick: ends an overdue request; syncs from a peer ahead if the chain did not grow since the last tick. */
void sync_tick(struct sync *s);

/* True while a request is outstanding. */
bool sync_busy(const struct sync *s);
/* The highest height a peer claimed (0 with none). */
uint64_t sync_top(const struct sync *s);

#endif
