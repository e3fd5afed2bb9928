/*
 * The node (see node.h): wiring of the modules and dispatch of events.
 *
 *   socket publish -> record (signed by api) -> submit: chain check -> mempool -> ANNOUNCE
 *   peer ANNOUNCE -> FETCH -> RECORDS -> verify once (gossip) -> mempool -> ANNOUNCE
 *   consensus REQUEST_VALUE -> block from the mempool -> PROPOSAL (header + ids)
 *   peer PROPOSAL -> block rebuilt from the mempool (proposals, FETCH what is missing)
 *     -> driver: VALIDATE (chain_validate) -> votes -> DECIDE -> chain_apply -> api answers
 *   peer STATUS ahead of us -> SYNC_REQ -> SYNC_BLOCKS -> chain_apply (sync)
 *
 * A height is started only when something is pending (a record in the
 * mempool, or a peer's proposal or vote for it): an idle chain makes no
 * blocks and sends only STATUS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <sodium.h>

#include "api.h"
#include "chain.h"
#include "driver.h"
#include "evidence.h"
#include "gossip.h"
#include "log.h"
#include "mempool.h"
#include "node.h"
#include "proposals.h"
#include "signstate.h"
#include "sync.h"
#include "tenderd/msg.h"
#include "wal.h"

struct node {
	struct config cfg;
	const struct td_genesis *g;
	const struct node_io *io;
	uint8_t sk[TD_SECKEY_LEN];
	bool stopping;
	struct chain *chain;
	struct mempool *mp;
	struct proposals *prop;
	struct driver *driver;
	struct sync *sync;
	struct gossip *gossip;
	struct api *api;
	uint64_t last_tick_height;
	uint32_t stalled_ticks;
};

struct chain *node_chain(const struct node *n)
{
	return n->chain;
}

const struct wal *node_wal(const struct node *n)
{
	return driver_wal(n->driver);
}

const struct driver *node_driver(const struct node *n)
{
	return n->driver;
}

const struct registry *node_registry(const struct node *n)
{
	return chain_registry(n->chain);
}

uint64_t node_height(const struct node *n)
{
	return chain_height(n->chain);
}

uint32_t node_pending(const struct node *n)
{
	return mempool_count(n->mp);
}

void node_view(const struct node *n, struct node_view *out)
{
	*out = (struct node_view){ .g = n->g,
				   .cfg = &n->cfg,
				   .io = n->io,
				   .chain = n->chain,
				   .mp = n->mp,
				   .driver = n->driver,
				   .sync = n->sync,
				   .gossip = n->gossip };
}

bool node_stopping(const struct node *n)
{
	return n->stopping;
}

void node_describe(const struct node *n, char *buf, size_t len)
{
	const struct cons *c = driver_cons(n->driver);
	static const char *const steps[] = { "propose", "prevote", "precommit" };
	snprintf(buf, len, "chain %llu, consensus %s height %llu round %u step %s, locked %lld, valid %lld, pending %u",
		 (unsigned long long)chain_height(n->chain), cons_started(c) ? "at" : "idle before",
		 (unsigned long long)cons_height(c), cons_round(c), steps[cons_step(c) % 3],
		 (long long)cons_locked(c, NULL), (long long)cons_valid(c, NULL), mempool_count(n->mp));
	size_t l = strlen(buf);
	if (l + 3 < len) {
		snprintf(buf + l, len - l, "; ");
		cons_describe(c, buf + l + 2, len - l - 2);
	}
}

/* Tells to (NODE_ALL: every peer) our height and last block hash. */
static void send_status(struct node *n, uint32_t to)
{
	struct td_buf b;
	td_buf_init(&b);
	td_msg_status(&b, chain_height(n->chain), chain_last_hash(n->chain));
	nio_send(n->io, to, &b);
	td_buf_free(&b);
}

/* Starts the next height after delay_ms when records are pending and no sync is under way. */
static void maybe_start(struct node *n, uint32_t delay_ms)
{
	/* Members and observers take no part in consensus: they follow by block sync. */
	if (!n->stopping && driver_my_index(n->driver) >= 0 && !sync_busy(n->sync))
		driver_maybe_start(n->driver, delay_ms);
}

static void on_dropped(void *ctx, const uint8_t id[static TD_HASH_LEN], const char *msg);

/*
 * From a height where a party's role changes: the pending records whose
 * agency may no longer publish leave the mempool, reported dropped with the
 * reason (their peers refuse them now, so they could never commit).
 */
static void drop_orphans(struct node *n)
{
	uint32_t k = mempool_count(n->mp);
	if (k == 0 || !registry_changes_at(chain_registry(n->chain), chain_height(n->chain) + 1))
		return;
	struct td_record **recs = td_xcalloc(k, sizeof(*recs));
	k = mempool_peek(n->mp, recs, k, UINT64_MAX);
	for (uint32_t i = 0; i < k; i++) {
		char err[TD_ERRMSG_MAX];
		if (chain_check_record(n->chain, recs[i], err, sizeof(err)) != TD_EPERM)
			continue;
		uint8_t id[TD_HASH_LEN];
		memcpy(id, recs[i]->id, TD_HASH_LEN);
		log_warn("dropping pending record for %s: %s", recs[i]->ocid, err);
		mempool_remove(n->mp, id);
		on_dropped(n, id, err);
	}
	free(recs);
}

/* The chain grew by decision or sync: every module moves to the next height. */
static void height_done(struct node *n)
{
	drop_orphans(n);
	driver_new_height(n->driver);
	n->stalled_ticks = 0;
	prop_new_height(n->prop, chain_height(n->chain) + 1);
	api_on_commit(n->api);
	send_status(n, NODE_ALL);
	maybe_start(n, 0);
}

/* ---- callbacks of the modules ---- */

static void on_commit(void *ctx, const struct td_block *blk)
{
	height_done(ctx);
}

static void on_synced(void *ctx, uint32_t blocks)
{
	height_done(ctx);
}

static void on_dropped(void *ctx, const uint8_t id[static TD_HASH_LEN], const char *msg)
{
	struct node *n = ctx;
	api_on_dropped(n->api, id, msg);
}

static void on_record(void *ctx, struct td_record *rec)
{
	struct node *n = ctx;
	prop_offer(n->prop, rec);
}

static void on_pooled(void *ctx)
{
	struct node *n = ctx;
	maybe_start(n, n->cfg.block_delay_ms);
	driver_on_pooled(n->driver);
}

static struct td_record *find_record(void *ctx, const uint8_t id[static TD_HASH_LEN])
{
	struct node *n = ctx;
	return prop_find_record(n->prop, id);
}

static void on_proposal_complete(void *ctx, uint32_t from, uint64_t h, uint32_t r,
				 const uint8_t hash[static TD_HASH_LEN], int32_t valid_round)
{
	struct node *n = ctx;
	driver_on_proposal(n->driver, from, h, r, hash, valid_round);
}

static void on_proposal_conflict(void *ctx, const struct td_evidence *ev)
{
	struct node *n = ctx;
	driver_on_proposal_conflict(n->driver, ev);
}

static void fetch_for_proposal(void *ctx, uint32_t peer, const uint8_t (*ids)[TD_HASH_LEN], uint32_t k)
{
	struct node *n = ctx;
	gossip_fetch(n->gossip, peer, ids, k);
}

int node_submit(struct node *n, struct td_record *rec, char *err, size_t errlen)
{
	char hex[2 * TD_HASH_LEN + 1];
	int rc;
	if ((rc = chain_check_record(n->chain, rec, err, errlen)) != 0 ||
	    (rc = mempool_add(n->mp, rec, err, errlen)) != 0)
		return rc;
	td_hex(hex, rec->id, TD_HASH_LEN);
	log_debug("accepted %s %s for %s (record %s)", td_kind_name(rec->kind), rec->release_id, rec->ocid, hex);
	gossip_announce(n->gossip, rec->id);
	on_pooled(n);
	return 0;
}

static const struct registry_set *valset(void *ctx, uint64_t h)
{
	struct node *n = ctx;
	return registry_set(chain_registry(n->chain), h);
}

static int submit(void *ctx, struct td_record *rec, char *err, size_t errlen)
{
	return node_submit(ctx, rec, err, errlen);
}

/* ---- events ---- */

static void tick(struct node *n)
{
	uint64_t h = chain_height(n->chain);
	const struct cons *cons = driver_cons(n->driver);
	sync_tick(n->sync);
	send_status(n, NODE_ALL);
	if (h == n->last_tick_height && cons_started(cons) && cons_height(cons) == h + 1) {
		if (++n->stalled_ticks >= NODE_STALL_TICKS) {
			driver_resend(n->driver, NODE_ALL);
			prop_resend(n->prop, NODE_ALL);
			log_debug("no new block for %u ticks at height %llu: sent our signed messages again",
				  n->stalled_ticks, (unsigned long long)h);
			/* Peers may have refused our records while their mempools were full: offer them again. */
			gossip_offer_pool(n->gossip, NODE_ALL, GOSSIP_ANNOUNCE_BATCH);
		}
	} else {
		n->stalled_ticks = 0;
	}
	n->last_tick_height = h;
	prop_refetch(n->prop);
	maybe_start(n, 0);
	n->io->timer(n->io->ctx, NODE_TIMER_TICK, NODE_TICK_MS);
}

void node_on_timer(struct node *n, enum node_timer kind)
{
	if (n->stopping)
		return;
	driver_hold(n->driver);
	switch (kind) {
	case NODE_TIMER_PROPOSE:
	case NODE_TIMER_PREVOTE:
	case NODE_TIMER_PRECOMMIT:
	case NODE_TIMER_VALUE:
	case NODE_TIMER_START: driver_on_timer(n->driver, kind); break;
	case NODE_TIMER_TICK: tick(n); break;
	case NODE_TIMER_WATCH: api_pump(n->api); break;
	}
	driver_release(n->driver);
}

/* The role of party slot v at the next height, or "removed". */
static const char *peer_role(const struct node *n, uint32_t v)
{
	enum td_role role;
	if (v >= registry_slots(chain_registry(n->chain)))
		return "unknown";
	if (registry_role(chain_registry(n->chain), v, chain_height(n->chain) + 1, &role) != 0)
		return "removed";
	return td_role_name(role);
}

/* The chain's name for party slot v (the transport only reports slots it looked up). */
static const char *peer_name(const struct node *n, uint32_t v)
{
	const struct registry *r = chain_registry(n->chain);
	return v < registry_slots(r) ? registry_party(r, v)->name : "an unknown party";
}

void node_on_connect(struct node *n, uint32_t v)
{
	log_info("peer %s (%s %u) connected", peer_name(n, v), peer_role(n, v), v);
	if (n->stopping)
		return;
	sync_peer_connected(n->sync, v);
	send_status(n, v);
	/* What we signed at this height may have gone out on a connection this one replaces. */
	const struct registry_set *vs = driver_set(n->driver);
	for (uint32_t i = 0; i < vs->n; i++) {
		if (vs->slot[i] == v) {
			driver_resend(n->driver, v);
			prop_resend(n->prop, v);
		}
	}
	/* Tell the newcomer what we hold so it can fetch what it lacks. */
	gossip_offer_pool(n->gossip, v, n->cfg.block_max_records);
}

void node_on_disconnect(struct node *n, uint32_t v)
{
	log_info("peer %s (%s %u) disconnected", peer_name(n, v), peer_role(n, v), v);
	if (!n->stopping)
		driver_peer_lost(n->driver, v);
}

void node_on_message(struct node *n, uint32_t v, const uint8_t *msg, size_t len)
{
	struct td_msg m;
	if (n->stopping)
		return;
	if (td_msg_decode(&m, msg, len) != 0) {
		n->io->disconnect(n->io->ctx, v, "sent a malformed message");
		return;
	}
	driver_hold(n->driver);
	switch (m.type) {
	case TD_MSG_STATUS: sync_on_status(n->sync, v, &m); break;
	case TD_MSG_ANNOUNCE: gossip_on_announce(n->gossip, v, &m); break;
	case TD_MSG_FETCH: gossip_on_fetch(n->gossip, v, &m); break;
	case TD_MSG_RECORDS: gossip_on_records(n->gossip, v, &m); break;
	case TD_MSG_PROPOSAL: prop_on_proposal(n->prop, v, &m); break;
	case TD_MSG_VOTE: driver_on_vote(n->driver, v, &m); break;
	case TD_MSG_SYNC_REQ: sync_on_request(n->sync, v, &m); break;
	case TD_MSG_SYNC_BLOCKS: sync_on_blocks(n->sync, v, &m); break;
	case TD_MSG_EVIDENCE: driver_on_evidence(n->driver, v, &m); break;
	}
	driver_release(n->driver);
	td_msg_free(&m);
}

void node_on_request(struct node *n, struct rpc_req *req, const char *method, json_t *params)
{
	driver_hold(n->driver);
	api_handle(n->api, req, method, params);
	driver_release(n->driver);
}

void node_flush(struct node *n)
{
	gossip_flush(n->gossip);
}

/* ---- life cycle ---- */

/*
 * The sign state file is written when a store is first opened empty, so a
 * missing one next to a store that holds blocks means it was lost (a
 * restored backup, a home moved without it): this key may have signed at
 * the height being decided, and an empty guard could sign it again.
 */
static int sign_state_present(const char *path, uint64_t height, bool accept, char *err, size_t errlen)
{
	struct cons_sign_state empty = { 0 };
	if (access(path, F_OK) == 0)
		return 0;
	if (height > 0 && !accept) {
		snprintf(err, errlen,
			 "%s is missing but the store holds %llu blocks: this validator may have signed at the "
			 "height being decided and could sign it twice; if no other node uses this key, start once "
			 "with --accept-missing-sign-state (see the README)",
			 path, (unsigned long long)height);
		return TD_EINVAL;
	}
	if (height > 0)
		log_warn("%s was missing: starting with an empty sign state as --accept-missing-sign-state asks", path);
	return signstate_save(path, &empty, err, errlen);
}

int node_new(struct node **out, const struct config *cfg, const struct td_genesis *g, const uint8_t *sk,
	     const struct node_io *io, char *err, size_t errlen)
{
	struct node *n = td_xcalloc(1, sizeof(*n));
	char ss_path[PATH_MAX + 32], wal_path[PATH_MAX + 32], ev_path[PATH_MAX + 32];
	int rc;

	*out = NULL;
	n->cfg = *cfg;
	n->g = g;
	n->io = io;
	memcpy(n->sk, sk, TD_SECKEY_LEN);
	struct store *st;
	if ((rc = io->open_store(io->ctx, &st, cfg->store_path, err, errlen)) ||
	    (rc = chain_open_store(&n->chain, st, cfg->store_path, g, err, errlen)))
		goto fail;
	snprintf(ss_path, sizeof(ss_path), "%s/%s", cfg->home, SIGNSTATE_FILE);
	snprintf(wal_path, sizeof(wal_path), "%s/%s", cfg->home, WAL_FILE);
	if (chain_genesis_adopted(n->chain)) {
		/* Signatures bind the genesis hash: nothing signed for the old genesis can conflict on the new one. */
		struct cons_sign_state empty = { 0 };
		if ((rc = signstate_save(ss_path, &empty, err, errlen)))
			goto fail;
		if (unlink(wal_path) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", wal_path, strerror(errno));
			rc = TD_EIO;
			goto fail;
		}
		log_info("new genesis: the sign state and the consensus log of the old one are cleared");
	}
	if ((rc = sign_state_present(ss_path, chain_height(n->chain), cfg->accept_missing_sign_state, err, errlen)))
		goto fail;
	n->mp = mempool_new(cfg->mempool_max_records, cfg->mempool_max_bytes);
	struct prop_callbacks pcb = { n, on_proposal_complete, fetch_for_proposal, on_proposal_conflict, valset };
	n->prop = prop_new(io, g, n->mp, chain_height(n->chain) + 1, &pcb);
	snprintf(ev_path, sizeof(ev_path), "%s/%s", cfg->home, EVIDENCE_FILE);
	struct driver_config dc = {
		.sign_state_path = ss_path,
		.wal_path = wal_path,
		.evidence_path = ev_path,
		.sk = n->sk,
		.block_max_records = cfg->block_max_records,
		.block_max_bytes = cfg->block_max_bytes,
		.timeout_propose_ms = cfg->timeout_propose_ms,
		.timeout_vote_ms = cfg->timeout_vote_ms,
		.timeout_max_ms = cfg->timeout_max_ms,
		.timeout_propose_unreachable_ms = cfg->timeout_propose_unreachable_ms,
	};
	struct driver_callbacks dcb = { n, on_commit, on_dropped };
	if ((rc = driver_new(&n->driver, io, g, n->chain, n->mp, n->prop, &dc, &dcb, err, errlen)))
		goto fail;
	struct sync_callbacks scb = { n, on_synced };
	n->sync = sync_new(io, g, n->chain, n->mp, n->prop, &scb);
	struct gossip_callbacks gcb = { n, on_record, on_pooled, find_record };
	n->gossip = gossip_new(io, n->chain, n->mp, g->hash, &gcb);
	struct api_deps ad = {
		.io = io,
		.genesis = g,
		.cfg = &n->cfg,
		.sk = n->sk,
		.pk = n->sk + crypto_sign_SEEDBYTES,
		.chain = n->chain,
		.mp = n->mp,
		.driver = n->driver,
		.sync = n->sync,
		.gossip = n->gossip,
		.ctx = n,
		.submit = submit,
	};
	n->api = api_new(&ad);
	log_info("store %s at height %llu with %llu records", cfg->store_path,
		 (unsigned long long)chain_height(n->chain), (unsigned long long)chain_record_count(n->chain));
	if (td_genesis_parties(g) > 1) {
		io->timer(io->ctx, NODE_TIMER_TICK, NODE_TICK_MS);
		/* A round must outlast fetching one block's records over the slowest link planned for. */
		uint64_t need = (uint64_t)cfg->block_max_bytes * 8 * 1000 / NODE_SLOW_LINK_BPS + 1000;
		if (cfg->timeout_max_ms < need)
			log_warn("timeout_max_ms %u is less than the %llu ms a block of block_max_bytes %u needs on a "
				 "%u Mbit/s link; rounds may time out before a large block arrives",
				 cfg->timeout_max_ms, (unsigned long long)need, cfg->block_max_bytes,
				 NODE_SLOW_LINK_BPS / 1000000);
	}
	/* A restart in the middle of a height resumes it at once, from the consensus log. */
	if ((rc = driver_resume(n->driver, err, errlen)))
		goto fail;
	*out = n;
	return 0;
fail:
	node_free(n);
	return rc;
}

void node_stop(struct node *n)
{
	if (n->stopping)
		return;
	n->stopping = true;
	api_stop(n->api);
	driver_stop(n->driver);
	n->io->timer(n->io->ctx, NODE_TIMER_TICK, NODE_TIMER_OFF);
	n->io->timer(n->io->ctx, NODE_TIMER_WATCH, NODE_TIMER_OFF);
	if (mempool_count(n->mp) > 0)
		log_warn("%u pending records were not committed", mempool_count(n->mp));
}

void node_free(struct node *n)
{
	if (!n)
		return;
	api_free(n->api);
	gossip_free(n->gossip);
	sync_free(n->sync);
	driver_free(n->driver);
	prop_free(n->prop);
	mempool_free(n->mp);
	chain_close(n->chain);
	sodium_memzero(n->sk, sizeof(n->sk));
	free(n);
}
