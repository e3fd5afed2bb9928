/*
 * Gossip of records: ANNOUNCE ids, FETCH what we lack, answer FETCHes with
 * RECORDS, verify each record once and pool it.
 *
 * A record id seen recently (asked for, or refused) is not asked for again
 * within GOSSIP_FETCH_RETRY_MS; a refused record is never taken again while
 * it stays in the seen set. Ids to announce are gathered and sent in one
 * ANNOUNCE per gossip_flush(). Everything goes through the node's io; what
 * gossip learns goes up through its callbacks.
 */
#ifndef TENDERD_GOSSIP_H
#define TENDERD_GOSSIP_H

#include "chain.h"
#include "mempool.h"
#include "nodeio.h"
#include "tenderd/msg.h"

#define GOSSIP_SEEN_SLOTS 65536    /* recently requested or refused record ids */
#define GOSSIP_FETCH_RETRY_MS 2000 /* ask again for a record after this long */
#define GOSSIP_ANNOUNCE_BATCH 1024 /* ids in one ANNOUNCE */

struct gossip;

struct gossip_callbacks {
	void *ctx;
	/* A verified record arrived from a peer (new, or already pooled); borrowed for the call. */
	void (*on_record)(void *ctx, struct td_record *rec);
	/* One or more records from a peer entered the mempool. */
	void (*on_pooled)(void *ctx);
	/* A record that left the mempool but may still be asked for (proposals, recent blocks); NULL if none. */
	struct td_record *(*find)(void *ctx, const uint8_t id[static TD_HASH_LEN]);
};

/* A gossip over io for chain, mp and the genesis hash ghash (32 bytes), all borrowed until gossip_free(). */
struct gossip *gossip_new(const struct node_io *io, struct chain *chain, struct mempool *mp, const uint8_t *ghash,
			  const struct gossip_callbacks *cb);
/* NULL does nothing. */
void gossip_free(struct gossip *g);

/* Adds id to the next ANNOUNCE (sent at once when the batch is full). */
void gossip_announce(struct gossip *g, const uint8_t id[static TD_HASH_LEN]);
/* Sends the gathered ids in one ANNOUNCE to every peer (or drops them with no peer). */
void gossip_flush(struct gossip *g);
/* Asks peer for the k records in ids. */
void gossip_fetch(struct gossip *g, uint32_t peer, const uint8_t (*ids)[TD_HASH_LEN], uint32_t k);
/* Announces up to max pending records: to one peer, or to all (NODE_ALL, through the batch). */
void gossip_offer_pool(struct gossip *g, uint32_t to, uint32_t max);

/* Messages from peer (decoded, of the type named). */
void gossip_on_announce(struct gossip *g, uint32_t peer, const struct td_msg *m);
void gossip_on_fetch(struct gossip *g, uint32_t peer, const struct td_msg *m);
void gossip_on_records(struct gossip *g, uint32_t peer, const struct td_msg *m);

/* Records from peers that we decoded, and how many of those failed verification. */
uint64_t gossip_records_received(const struct gossip *g);
uint64_t gossip_records_refused(const struct gossip *g);

#endif
