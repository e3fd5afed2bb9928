/*
 * Gossip of records (see gossip.h). Owns the seen set and the ANNOUNCE
 * batch; records it pools belong to the mempool.
 */
#include <stdlib.h>
#include <string.h>

#include "gossip.h"
#include "log.h"

#define RECORDS_FRAME_BYTES (TD_BLOCK_MAX / 2) /* records bytes in one RECORDS message */
#define SEEN_PAGE 256                          /* slots of the seen set allocated at once */
#define SEEN_PAGES (GOSSIP_SEEN_SLOTS / SEEN_PAGE)

struct seen {
	uint8_t id[TD_HASH_LEN];
	uint64_t ms;
	bool refused;
};

struct gossip {
	const struct node_io *io;
	struct chain *chain;
	struct mempool *mp;
	const uint8_t *ghash; /* genesis hash, which record signatures bind */
	struct gossip_callbacks cb;
	/*
	 * GOSSIP_SEEN_SLOTS, indexed by the id's first bytes, in pages of
	 * SEEN_PAGE allocated at their first mark (a node that restarts often
	 * sees few records); a missing page reads as zeroed slots.
	 */
	struct seen *seen[SEEN_PAGES];
	uint8_t (*announce)[TD_HASH_LEN]; /* GOSSIP_ANNOUNCE_BATCH ids waiting for gossip_flush */
	uint32_t nannounce;
	struct td_record **scratch; /* GOSSIP_ANNOUNCE_BATCH slots for mempool_peek */
	uint64_t received, refused;
};

struct gossip *gossip_new(const struct node_io *io, struct chain *chain, struct mempool *mp, const uint8_t *ghash,
			  const struct gossip_callbacks *cb)
{
	struct gossip *g = td_xcalloc(1, sizeof(*g));
	g->io = io;
	g->chain = chain;
	g->mp = mp;
	g->ghash = ghash;
	g->cb = *cb;
	g->announce = td_xcalloc(GOSSIP_ANNOUNCE_BATCH, TD_HASH_LEN);
	g->scratch = td_xcalloc(GOSSIP_ANNOUNCE_BATCH, sizeof(*g->scratch));
	return g;
}

void gossip_free(struct gossip *g)
{
	if (!g)
		return;
	for (uint32_t i = 0; i < SEEN_PAGES; i++)
		free(g->seen[i]);
	free(g->announce);
	free(g->scratch);
	free(g);
}

static uint32_t seen_index(const uint8_t id[static TD_HASH_LEN])
{
	uint32_t h;
	memcpy(&h, id, sizeof(h));
	return h & (GOSSIP_SEEN_SLOTS - 1);
}

/* The slot of id as it reads: a zeroed one when its page was never written. */
static const struct seen *seen_peek(const struct gossip *g, const uint8_t id[static TD_HASH_LEN])
{
	static const struct seen zero;
	uint32_t i = seen_index(id);
	const struct seen *page = g->seen[i / SEEN_PAGE];
	return page ? &page[i % SEEN_PAGE] : &zero;
}

/* The slot of id, to write; allocates its page. */
static struct seen *seen_slot(struct gossip *g, const uint8_t id[static TD_HASH_LEN])
{
	uint32_t i = seen_index(id);
	struct seen **page = &g->seen[i / SEEN_PAGE];
	if (!*page)
		*page = td_xcalloc(SEEN_PAGE, sizeof(**page));
	return &(*page)[i % SEEN_PAGE];
}

/* True if id was refused, or asked for less than GOSSIP_FETCH_RETRY_MS ago; *refused tells which. */
static bool seen_recent(struct gossip *g, const uint8_t id[static TD_HASH_LEN], uint64_t now, bool *refused)
{
	const struct seen *s = seen_peek(g, id);
	if (memcmp(s->id, id, TD_HASH_LEN) != 0)
		return false;
	*refused = s->refused;
	return s->refused || now - s->ms < GOSSIP_FETCH_RETRY_MS;
}

static void seen_mark(struct gossip *g, const uint8_t id[static TD_HASH_LEN], uint64_t now, bool refused)
{
	struct seen *s = seen_slot(g, id);
	memcpy(s->id, id, TD_HASH_LEN);
	s->ms = now;
	s->refused = refused;
}

void gossip_flush(struct gossip *g)
{
	if (g->nannounce == 0)
		return;
	if (g->io->peer_count(g->io->ctx) > 0) {
		struct td_buf b;
		td_buf_init(&b);
		td_msg_ids(&b, TD_MSG_ANNOUNCE, (const uint8_t(*)[TD_HASH_LEN])g->announce, g->nannounce);
		nio_send(g->io, NODE_ALL, &b);
		td_buf_free(&b);
	}
	g->nannounce = 0;
}

void gossip_announce(struct gossip *g, const uint8_t id[static TD_HASH_LEN])
{
	memcpy(g->announce[g->nannounce++], id, TD_HASH_LEN);
	if (g->nannounce == GOSSIP_ANNOUNCE_BATCH)
		gossip_flush(g);
}

void gossip_fetch(struct gossip *g, uint32_t peer, const uint8_t (*ids)[TD_HASH_LEN], uint32_t k)
{
	if (k == 0)
		return;
	struct td_buf b;
	td_buf_init(&b);
	td_msg_ids(&b, TD_MSG_FETCH, ids, k);
	nio_send(g->io, peer, &b);
	td_buf_free(&b);
}

void gossip_offer_pool(struct gossip *g, uint32_t to, uint32_t max)
{
	if (max > GOSSIP_ANNOUNCE_BATCH)
		max = GOSSIP_ANNOUNCE_BATCH;
	uint32_t k = mempool_peek(g->mp, g->scratch, max, UINT64_MAX);
	if (to == NODE_ALL) {
		for (uint32_t i = 0; i < k; i++)
			gossip_announce(g, g->scratch[i]->id);
		return;
	}
	if (k == 0)
		return;
	uint8_t(*ids)[TD_HASH_LEN] = td_xcalloc(k, TD_HASH_LEN);
	for (uint32_t i = 0; i < k; i++)
		memcpy(ids[i], g->scratch[i]->id, TD_HASH_LEN);
	struct td_buf b;
	td_buf_init(&b);
	td_msg_ids(&b, TD_MSG_ANNOUNCE, (const uint8_t(*)[TD_HASH_LEN])ids, k);
	nio_send(g->io, to, &b);
	td_buf_free(&b);
	free(ids);
}

void gossip_on_announce(struct gossip *g, uint32_t peer, const struct td_msg *m)
{
	uint8_t(*want)[TD_HASH_LEN] = td_xcalloc(m->n_ids ? m->n_ids : 1, TD_HASH_LEN);
	uint32_t k = 0;
	uint64_t now = g->io->mono_ms(g->io->ctx);
	bool refused;
	for (uint32_t i = 0; i < m->n_ids; i++) {
		if (mempool_has(g->mp, m->ids[i]) || seen_recent(g, m->ids[i], now, &refused) ||
		    chain_has_record(g->chain, m->ids[i], NULL))
			continue;
		seen_mark(g, m->ids[i], now, false);
		memcpy(want[k++], m->ids[i], TD_HASH_LEN);
	}
	gossip_fetch(g, peer, (const uint8_t(*)[TD_HASH_LEN])want, k);
	free(want);
}

/* Answers FETCH with the records we hold, in messages of at most RECORDS_FRAME_BYTES of records. */
void gossip_on_fetch(struct gossip *g, uint32_t peer, const struct td_msg *m)
{
	struct td_record **found = td_xcalloc(m->n_ids ? m->n_ids : 1, sizeof(*found));
	uint32_t k = 0;
	for (uint32_t i = 0; i < m->n_ids; i++) {
		struct td_record *rec = mempool_get(g->mp, m->ids[i]);
		/* A slower peer may ask for records of a block we have already committed. */
		if (!rec && g->cb.find)
			rec = g->cb.find(g->cb.ctx, m->ids[i]);
		if (rec)
			found[k++] = rec;
	}
	for (uint32_t i = 0; i < k;) {
		uint32_t j = i;
		size_t bytes = 0;
		while (j < k && bytes + found[j]->len < RECORDS_FRAME_BYTES)
			bytes += found[j++]->len;
		struct td_buf b;
		td_buf_init(&b);
		td_msg_items_begin(&b, TD_MSG_RECORDS, j - i);
		for (uint32_t x = i; x < j; x++)
			td_enc_bin(&b, found[x]->bytes, found[x]->len);
		nio_send(g->io, peer, &b);
		td_buf_free(&b);
		i = j;
	}
	free(found);
}

/* Records from a peer (each at most TD_RECORD_MAX, as decoded): verified once, pooled, passed on. */
void gossip_on_records(struct gossip *g, uint32_t peer, const struct td_msg *m)
{
	char err[TD_ERRMSG_MAX];
	uint64_t now = g->io->mono_ms(g->io->ctx);
	bool added = false;
	for (uint32_t i = 0; i < m->n_items; i++) {
		uint8_t id[TD_HASH_LEN];
		bool refused = false;
		struct td_record *rec = NULL;
		td_hash(id, m->items[i].p, m->items[i].len);
		if ((rec = mempool_get(g->mp, id))) {
			g->cb.on_record(g->cb.ctx, rec);
			continue;
		}
		if ((seen_recent(g, id, now, &refused) && refused) || chain_has_record(g->chain, id, NULL))
			continue;
		g->received++;
		int rc = td_record_decode(&rec, m->items[i].p, m->items[i].len, g->ghash, err, sizeof(err));
		if (rc) {
			g->refused++;
			seen_mark(g, id, now, true);
			g->io->disconnect(g->io->ctx, peer, "sent a record that fails verification");
			break;
		}
		g->cb.on_record(g->cb.ctx, rec);
		if (chain_check_record(g->chain, rec, err, sizeof(err)) != 0 ||
		    mempool_add(g->mp, rec, err, sizeof(err)) != 0) {
			log_debug("record from peer not pooled: %s", err);
			td_record_free(rec);
			continue;
		}
		added = true;
		gossip_announce(g, id);
	}
	if (added)
		g->cb.on_pooled(g->cb.ctx);
}

uint64_t gossip_records_received(const struct gossip *g)
{
	return g->received;
}

uint64_t gossip_records_refused(const struct gossip *g)
{
	return g->refused;
}
