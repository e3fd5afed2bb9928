/*
 * Tests for node/sync.c: block sync over fake node_io instances.
 *
 * Two real chains share one genesis of four validators (keys from fixed
 * seeds): the server's, built block by block with commits signed by three
 * validators, and ours, empty at the start. Our sync (over our chain,
 * mempool and proposals) talks through one fake io, the server's sync
 * through another; each fake records every message sent (with our chain's
 * height at that moment), every disconnect, and has a monotonic clock the
 * test moves. The test carries messages between the two by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "chain.h"
#include "log.h"
#include "mempool.h"
#include "proposals.h"
#include "sync.h"
#include "tenderd/block.h"
#include "tenderd/json.h"
#include "tenderd/msg.h"
#include "tenderd/record.h"
#include "tenderd/release.h"

static uint8_t CHAIN[TD_HASH_LEN]; /* the genesis hash of the newest fixture: what signatures bind */
#define CHAIN_ID "tenderd-sync-test"
#define PREFIX "ocds-kr2020"
#define GENESIS_MS 1577836800000ull /* 2020-01-01T00:00:00Z */
#define NVAL 4
#define SENT_MAX 256
#define BLOCKS_MAX 8

struct sent {
	uint32_t to;
	uint8_t *bytes;
	size_t len;
	uint64_t height_then; /* our chain's height when it was sent */
	bool to_gone;         /* addressed to a peer with no connection (dropped by a real transport) */
};

/* A fake node_io: records sends and disconnects; connected() from a table. */
struct fio {
	struct chain *watch; /* whose height to note with each send */
	bool connected[NVAL];
	uint64_t mono;
	struct sent sent[SENT_MAX];
	uint32_t nsent;
	uint32_t disc[16];
	uint32_t ndisc;
	struct node_io io;
};

struct env {
	struct td_genesis g;
	uint8_t sk[NVAL][TD_SECKEY_LEN];
	uint8_t agency_sk[TD_SECKEY_LEN];
	char dir[64];
	/* ours */
	struct chain *chain;
	struct mempool *mp;
	struct proposals *prop;
	struct sync *s;
	struct fio io;
	uint32_t applied_calls, applied_blocks;
	uint64_t height_at_applied;
	uint32_t fetches;
	/* the server */
	struct chain *srv_chain;
	struct mempool *srv_mp;
	struct proposals *srv_prop;
	struct sync *srv;
	struct fio srv_io;
	struct td_record *recs[BLOCKS_MAX + 1]; /* the record of each server block, by height (references) */
	uint32_t next_rec;
};

/* ---- the fake io ----------------------------------------------------------- */

static void f_send(void *ctx, uint32_t to, const uint8_t *msg, size_t len)
{
	struct fio *f = ctx;
	struct td_msg m;

	assert_true(f->nsent < SENT_MAX);
	assert_int_equal(td_msg_decode(&m, msg, len), 0);
	td_msg_free(&m);
	struct sent *s = &f->sent[f->nsent++];
	s->to = to;
	s->bytes = malloc(len);
	memcpy(s->bytes, msg, len);
	s->len = len;
	s->height_then = f->watch ? chain_height(f->watch) : 0;
	s->to_gone = to != NODE_ALL && (to >= NVAL || !f->connected[to]);
}

static void f_disconnect(void *ctx, uint32_t peer, const char *reason)
{
	struct fio *f = ctx;
	assert_non_null(reason);
	assert_true(f->ndisc < 16);
	f->disc[f->ndisc++] = peer;
	if (peer < NVAL)
		f->connected[peer] = false;
}

static bool f_connected(void *ctx, uint32_t v)
{
	struct fio *f = ctx;
	return v < NVAL && f->connected[v];
}

static uint32_t f_peer_count(void *ctx)
{
	struct fio *f = ctx;
	uint32_t k = 0;
	for (uint32_t v = 0; v < NVAL; v++)
		k += f->connected[v];
	return k;
}

static uint64_t f_wall_ms(void *ctx)
{
	return GENESIS_MS + 3600 * 1000;
}

static uint64_t f_mono_ms(void *ctx)
{
	return ((struct fio *)ctx)->mono;
}

static void f_timer(void *ctx, enum node_timer kind, uint64_t delay_ms)
{
	fail_msg("sync asked for a timer (%d)", (int)kind);
}

static bool f_timer_pending(void *ctx, enum node_timer kind)
{
	return false;
}

static json_t *f_peers_json(void *ctx)
{
	return json_array();
}

static void f_traffic(void *ctx, uint64_t *sent, uint64_t *received)
{
	*sent = *received = 0;
}

static void fio_init(struct fio *f, struct chain *watch)
{
	memset(f, 0, sizeof(*f));
	f->watch = watch;
	/* We are validator 0; the others are connected. */
	for (uint32_t v = 1; v < NVAL; v++)
		f->connected[v] = true;
	f->mono = 500000;
	f->io = (struct node_io){
		.ctx = f,
		.send = f_send,
		.disconnect = f_disconnect,
		.connected = f_connected,
		.peer_count = f_peer_count,
		.wall_ms = f_wall_ms,
		.mono_ms = f_mono_ms,
		.timer = f_timer,
		.timer_pending = f_timer_pending,
		.peers_json = f_peers_json,
		.traffic = f_traffic,
	};
}

static void fio_clear(struct fio *f)
{
	for (uint32_t i = 0; i < f->nsent; i++)
		free(f->sent[i].bytes);
	f->nsent = 0;
}

/* The sent message i decoded (td_msg_free after). */
static void sent_decode(const struct fio *f, uint32_t i, struct td_msg *m)
{
	assert_true(i < f->nsent);
	assert_int_equal(td_msg_decode(m, f->sent[i].bytes, f->sent[i].len), 0);
}

/* Sent message i must be a SYNC_REQ to `to` from height `from` for TD_SYNC_BATCH blocks. */
static void assert_sync_req(const struct fio *f, uint32_t i, uint32_t to, uint64_t from)
{
	struct td_msg m;
	sent_decode(f, i, &m);
	assert_int_equal(m.type, TD_MSG_SYNC_REQ);
	assert_int_equal(f->sent[i].to, to);
	assert_int_equal(m.height, from);
	assert_int_equal(m.count, TD_SYNC_BATCH);
	td_msg_free(&m);
}

/* ---- callbacks ------------------------------------------------------------- */

static void cb_applied(void *ctx, uint32_t blocks)
{
	struct env *e = ctx;
	e->applied_calls++;
	e->applied_blocks += blocks;
	e->height_at_applied = chain_height(e->chain);
}

static void cb_srv_applied(void *ctx, uint32_t blocks)
{
	fail_msg("the server applied blocks");
}

static void cb_complete(void *ctx, uint32_t from, uint64_t h, uint32_t r, const uint8_t hash[static TD_HASH_LEN],
			int32_t valid_round)
{
}

static void cb_fetch(void *ctx, uint32_t peer, const uint8_t (*ids)[TD_HASH_LEN], uint32_t k)
{
	((struct env *)ctx)->fetches++;
}

/* ---- fixtures -------------------------------------------------------------- */

static void seed_keypair(uint8_t pk[static TD_PUBKEY_LEN], uint8_t sk[static TD_SECKEY_LEN], uint8_t byte)
{
	uint8_t seed[crypto_sign_SEEDBYTES];
	memset(seed, byte, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	uint8_t pk[TD_PUBKEY_LEN];
	char err[256], path[128];

	assert_true(sodium_init() >= 0);
	log_set_level(LOG_ERROR);
	snprintf(e->g.chain_id, sizeof(e->g.chain_id), CHAIN_ID);
	snprintf(e->g.ocid_prefix, sizeof(e->g.ocid_prefix), PREFIX);
	e->g.time_ms = GENESIS_MS;
	e->g.n = NVAL;
	e->g.v = calloc(NVAL, sizeof(*e->g.v));
	for (uint32_t i = 0; i < NVAL; i++) {
		snprintf(e->g.v[i].name, sizeof(e->g.v[i].name), "agency-%u", i);
		seed_keypair(e->g.v[i].pk, e->sk[i], (uint8_t)(0x31 + i));
	}
	seed_keypair(pk, e->agency_sk, 0x6b);
	/* The agency that signs the test records is a member: only validators and members publish. */
	e->g.n_members = 1;
	e->g.others = calloc(1, sizeof(*e->g.others));
	snprintf(e->g.others[0].name, sizeof(e->g.others[0].name), "Test agency");
	memcpy(e->g.others[0].pk, pk, TD_PUBKEY_LEN);
	td_genesis_seal(&e->g);
	memcpy(CHAIN, e->g.hash, TD_HASH_LEN);
	snprintf(e->dir, sizeof(e->dir), "/tmp/td-sync-XXXXXX");
	assert_non_null(mkdtemp(e->dir));

	snprintf(path, sizeof(path), "%s/ours", e->dir);
	assert_int_equal(chain_open(&e->chain, path, &e->g, err, sizeof(err)), 0);
	fio_init(&e->io, e->chain);
	e->mp = mempool_new(1000, 16u << 20);
	struct prop_callbacks pcb = { e, cb_complete, cb_fetch, NULL, NULL };
	e->prop = prop_new(&e->io.io, &e->g, e->mp, 1, &pcb);
	struct sync_callbacks scb = { e, cb_applied };
	e->s = sync_new(&e->io.io, &e->g, e->chain, e->mp, e->prop, &scb);

	snprintf(path, sizeof(path), "%s/server", e->dir);
	assert_int_equal(chain_open(&e->srv_chain, path, &e->g, err, sizeof(err)), 0);
	fio_init(&e->srv_io, NULL);
	e->srv_mp = mempool_new(1000, 16u << 20);
	e->srv_prop = prop_new(&e->srv_io.io, &e->g, e->srv_mp, 1, &pcb);
	struct sync_callbacks sscb = { e, cb_srv_applied };
	e->srv = sync_new(&e->srv_io.io, &e->g, e->srv_chain, e->srv_mp, e->srv_prop, &sscb);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	sync_free(e->s);
	prop_free(e->prop);
	mempool_free(e->mp);
	chain_close(e->chain);
	sync_free(e->srv);
	prop_free(e->srv_prop);
	mempool_free(e->srv_mp);
	chain_close(e->srv_chain);
	for (uint32_t i = 0; i <= BLOCKS_MAX; i++)
		td_record_free(e->recs[i]);
	fio_clear(&e->io);
	fio_clear(&e->srv_io);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	if (system(cmd) != 0)
		return -1;
	free(e->g.v);
	free(e->g.others);
	free(e);
	return 0;
}

/* ---- records, blocks, commits ---------------------------------------------- */

static struct td_record *mkrec(struct env *e)
{
	char text[512], err[256];
	struct td_record *rec = NULL;
	uint32_t i = e->next_rec++;
	uint64_t ms = GENESIS_MS + 1000 * (uint64_t)(i + 1);

	snprintf(text, sizeof(text),
		 "{\"ocid\":\"" PREFIX "-sync-%u\",\"tender\":{\"id\":\"s%u\",\"title\":\"Bridge survey %u\","
		 "\"status\":\"active\"}}",
		 i, i, i);
	json_t *frag = td_json_load(text, strlen(text), err, sizeof(err));
	assert_non_null(frag);
	json_t *full = td_release_build(frag, TD_KIND_TENDER, NULL, ms, "Test agency", err, sizeof(err));
	if (!full)
		fail_msg("build: %s", err);
	if (td_record_sign(&rec, TD_KIND_TENDER, full, ms, NULL, CHAIN, e->agency_sk, err, sizeof(err)) != 0)
		fail_msg("sign: %s", err);
	json_decref(frag);
	json_decref(full);
	return rec;
}

/* A commit for (height, hash) with the precommits of the validators in mask, signed with keys[i]. */
static void mkcommit(struct env *e, struct td_commit *cm, uint64_t height, const uint8_t hash[static TD_HASH_LEN],
		     uint32_t mask, const uint8_t (*keys)[TD_SECKEY_LEN])
{
	memset(cm, 0, sizeof(*cm));
	cm->height = height;
	cm->round = 0;
	memcpy(cm->block_hash, hash, TD_HASH_LEN);
	cm->sigs = calloc(NVAL, sizeof(*cm->sigs));
	for (uint32_t i = 0; i < NVAL; i++) {
		if (!(mask & (1u << i)))
			continue;
		cm->sigs[cm->n_sigs].validator = i;
		td_vote_sign(cm->sigs[cm->n_sigs].sig, CHAIN, TD_VOTE_PRECOMMIT, height, 0, hash, keys[i]);
		cm->n_sigs++;
	}
}

/* The next block of chain c over one new record (kept in e->recs by height). */
static struct td_block *next_block(struct env *e, struct chain *c)
{
	uint64_t h = chain_height(c) + 1;
	struct td_record **recs = calloc(1, sizeof(*recs));

	assert_true(h <= BLOCKS_MAX);
	if (!e->recs[h])
		e->recs[h] = mkrec(e);
	recs[0] = td_record_ref(e->recs[h]);
	return td_block_new(h, chain_last_hash(c), chain_last_time(c) + 1000, e->g.v[h % NVAL].pk, e->g.validators_hash,
			    recs, 1);
}

/* Grows the server's chain to `height` blocks, each committed by validators 0, 1 and 2. */
static void server_grow(struct env *e, uint64_t height)
{
	char err[256];
	while (chain_height(e->srv_chain) < height) {
		struct td_block *blk = next_block(e, e->srv_chain);
		struct td_commit cm;
		mkcommit(e, &cm, blk->hdr.height, blk->hash, 0x7, (const uint8_t(*)[TD_SECKEY_LEN])e->sk);
		if (chain_apply(e->srv_chain, blk, &cm, err, sizeof(err)) != 0)
			fail_msg("server apply: %s", err);
		td_commit_clear(&cm);
		td_block_free(blk);
	}
}

/* ---- messages between the two ---------------------------------------------- */

static void status(struct env *e, uint32_t peer, uint64_t height)
{
	struct td_msg m;
	memset(&m, 0, sizeof(m));
	m.type = TD_MSG_STATUS;
	m.height = height;
	sync_on_status(e->s, peer, &m);
}

/*
 * The server's answer to SYNC_REQ(from, count) from validator 0: the bytes
 * of the SYNC_BLOCKS it sent (caller frees).
 */
static uint8_t *serve(struct env *e, uint64_t from, uint32_t count, size_t *len)
{
	struct td_buf b;
	struct td_msg m;
	uint8_t *req;
	size_t rlen;

	td_buf_init(&b);
	td_msg_sync_req(&b, from, count);
	req = td_buf_take(&b, &rlen);
	td_buf_free(&b);
	assert_int_equal(td_msg_decode(&m, req, rlen), 0);
	uint32_t before = e->srv_io.nsent;
	sync_on_request(e->srv, 0, &m);
	td_msg_free(&m);
	free(req);
	assert_int_equal(e->srv_io.nsent, before + 1);
	const struct sent *s = &e->srv_io.sent[before];
	assert_int_equal(s->to, 0);
	uint8_t *out = malloc(s->len);
	memcpy(out, s->bytes, s->len);
	*len = s->len;
	return out;
}

/* Hands SYNC_BLOCKS bytes from peer to our sync. */
static void feed_blocks(struct env *e, uint32_t peer, const uint8_t *bytes, size_t len)
{
	struct td_msg m;
	assert_int_equal(td_msg_decode(&m, bytes, len), 0);
	assert_int_equal(m.type, TD_MSG_SYNC_BLOCKS);
	sync_on_blocks(e->s, peer, &m);
	td_msg_free(&m);
}

/* A SYNC_BLOCKS of n (block, commit) pairs given as bytes (caller frees). */
static uint8_t *blocks_msg(uint32_t n, uint8_t *const *blks, const size_t *blens, uint8_t *const *cms,
			   const size_t *clens, size_t *len)
{
	struct td_buf b;
	td_buf_init(&b);
	td_msg_items_begin(&b, TD_MSG_SYNC_BLOCKS, n);
	for (uint32_t i = 0; i < n; i++) {
		td_enc_array(&b, 2);
		td_enc_bin(&b, blks[i], blens[i]);
		td_enc_bin(&b, cms[i], clens[i]);
	}
	uint8_t *out = td_buf_take(&b, len);
	td_buf_free(&b);
	return out;
}

/* Our chain's next block encoded, with a commit of the validators in mask signed by keys. */
static void next_block_raw(struct env *e, uint32_t mask, const uint8_t (*keys)[TD_SECKEY_LEN], uint8_t **blk,
			   size_t *blen, uint8_t **cm, size_t *clen, uint8_t hash[TD_HASH_LEN])
{
	struct td_block *b = next_block(e, e->chain);
	struct td_commit c;
	mkcommit(e, &c, b->hdr.height, b->hash, mask, keys);
	td_block_encode(b, blk, blen);
	td_commit_encode(&c, cm, clen);
	if (hash)
		memcpy(hash, b->hash, TD_HASH_LEN);
	td_commit_clear(&c);
	td_block_free(b);
}

/* A signed PROPOSAL for height 1 round 0 (from validator 1) over one record we do not hold. */
static void waiting_proposal(struct env *e)
{
	struct td_record *rec = mkrec(e);
	struct td_record **recs = calloc(1, sizeof(*recs));
	uint8_t sig[TD_SIG_LEN];
	struct td_buf b;
	struct td_msg m;
	uint8_t *bytes;
	size_t len;

	recs[0] = rec;
	struct td_block *blk = td_block_new(1, chain_last_hash(e->chain), GENESIS_MS + 5000, e->g.v[1].pk,
					    e->g.validators_hash, recs, 1);
	td_proposal_sign(sig, CHAIN, 1, 0, -1, blk->hash, e->sk[1]);
	td_buf_init(&b);
	td_msg_proposal(&b, blk, 0, -1, sig);
	bytes = td_buf_take(&b, &len);
	td_buf_free(&b);
	td_block_free(blk);
	assert_int_equal(td_msg_decode(&m, bytes, len), 0);
	prop_on_proposal(e->prop, 1, &m);
	td_msg_free(&m);
	free(bytes);
}

/* ---- tests ------------------------------------------------------------------ */

/*
 * A peer two blocks ahead: exactly one SYNC_REQ to it from our height + 1;
 * while that request is outstanding no STATUS causes another.
 */
static void test_status_two_ahead_requests_once(void **state)
{
	struct env *e = *state;

	assert_false(sync_busy(e->s));
	assert_int_equal(sync_top(e->s), 0);
	status(e, 2, 2);
	assert_int_equal(e->io.nsent, 1);
	assert_sync_req(&e->io, 0, 2, 1);
	assert_true(sync_busy(e->s));
	assert_int_equal(sync_top(e->s), 2);

	status(e, 3, 5);
	status(e, 2, 3);
	status(e, 1, 9);
	assert_int_equal(e->io.nsent, 1);
	assert_true(sync_busy(e->s));
	assert_int_equal(sync_top(e->s), 9);
	assert_int_equal(e->io.ndisc, 0);
}

/* From a non-zero height the request starts at our height + 1. */
static void test_status_request_starts_after_our_tip(void **state)
{
	struct env *e = *state;
	char err[256];
	uint8_t *braw, *craw;
	size_t blen, clen;
	struct td_block *blk;
	struct td_commit cm;

	server_grow(e, 2);
	for (uint64_t h = 1; h <= 2; h++) {
		assert_int_equal(chain_block_raw(e->srv_chain, h, &braw, &blen, &craw, &clen), 0);
		assert_int_equal(td_block_decode(&blk, braw, blen, CHAIN, false, err, sizeof(err)), 0);
		assert_int_equal(td_commit_decode(&cm, craw, clen, err, sizeof(err)), 0);
		assert_int_equal(chain_apply(e->chain, blk, &cm, err, sizeof(err)), 0);
		td_commit_clear(&cm);
		td_block_free(blk);
		free(braw);
		free(craw);
	}
	status(e, 3, 3);
	assert_int_equal(e->io.nsent, 0);
	status(e, 3, 4);
	assert_int_equal(e->io.nsent, 1);
	assert_sync_req(&e->io, 0, 3, 3);
}

/*
 * One block ahead: no sync from a peer already known, but yes from a peer
 * whose first STATUS this is since it connected (once), and yes while a
 * proposal of ours waits for records. Not ahead: never.
 */
static void test_status_one_ahead(void **state)
{
	struct env *e = *state;
	uint8_t *ans;
	size_t len;

	status(e, 1, 1);
	status(e, 2, 0);
	assert_int_equal(e->io.nsent, 0);
	assert_false(sync_busy(e->s));

	/* A fresh peer at our height: nothing, and its freshness is spent. */
	sync_peer_connected(e->s, 3);
	status(e, 3, 0);
	status(e, 3, 1);
	assert_int_equal(e->io.nsent, 0);

	/* A fresh peer one ahead. */
	sync_peer_connected(e->s, 2);
	status(e, 2, 1);
	assert_int_equal(e->io.nsent, 1);
	assert_sync_req(&e->io, 0, 2, 1);
	assert_true(sync_busy(e->s));

	/* Its (empty) answer ends the request; the same peer, no longer fresh, one ahead: nothing. */
	ans = serve(e, 1, 64, &len);
	feed_blocks(e, 2, ans, len);
	free(ans);
	assert_false(sync_busy(e->s));
	assert_int_equal(e->io.nsent, 1);
	status(e, 2, 1);
	assert_int_equal(e->io.nsent, 1);

	/* A proposal waiting for records: one ahead is enough. */
	waiting_proposal(e);
	assert_int_equal(prop_waiting(e->prop), 1);
	assert_int_equal(e->fetches, 1);
	status(e, 1, 1);
	assert_int_equal(e->io.nsent, 2);
	assert_sync_req(&e->io, 1, 1, 1);
	assert_int_equal(e->io.ndisc, 0);
}

/*
 * sync_on_request answers from the store: the stored bytes of each block and
 * its commit, from the height asked, at most the count asked, nothing past
 * the tip or for height 0.
 */
static void test_serve_request(void **state)
{
	struct env *e = *state;
	uint8_t *ans, *braw, *craw;
	size_t len, blen, clen;
	struct td_msg m;
	char err[256];

	server_grow(e, 3);

	ans = serve(e, 1, 64, &len);
	assert_int_equal(td_msg_decode(&m, ans, len), 0);
	assert_int_equal(m.type, TD_MSG_SYNC_BLOCKS);
	assert_int_equal(m.n_items, 6);
	for (uint64_t h = 1; h <= 3; h++) {
		const struct td_bytes *bi = &m.items[2 * (h - 1)], *ci = &m.items[2 * (h - 1) + 1];
		assert_int_equal(chain_block_raw(e->srv_chain, h, &braw, &blen, &craw, &clen), 0);
		assert_int_equal(bi->len, blen);
		assert_memory_equal(bi->p, braw, blen);
		assert_int_equal(ci->len, clen);
		assert_memory_equal(ci->p, craw, clen);
		struct td_block *blk;
		struct td_commit cm;
		assert_int_equal(td_block_decode(&blk, bi->p, bi->len, CHAIN, false, err, sizeof(err)), 0);
		assert_int_equal(blk->hdr.height, h);
		assert_int_equal(td_commit_decode(&cm, ci->p, ci->len, err, sizeof(err)), 0);
		assert_int_equal(td_commit_verify(&cm, &e->g, h, blk->hash, err, sizeof(err)), 0);
		td_commit_clear(&cm);
		td_block_free(blk);
		free(braw);
		free(craw);
	}
	td_msg_free(&m);
	free(ans);

	/* From 2, one block. */
	ans = serve(e, 2, 1, &len);
	assert_int_equal(td_msg_decode(&m, ans, len), 0);
	assert_int_equal(m.n_items, 2);
	assert_int_equal(chain_block_raw(e->srv_chain, 2, &braw, &blen, &craw, &clen), 0);
	assert_int_equal(m.items[0].len, blen);
	assert_memory_equal(m.items[0].p, braw, blen);
	free(braw);
	free(craw);
	td_msg_free(&m);
	free(ans);

	/* Past the tip, from 0, or none asked for: an empty answer. */
	const uint64_t froms[3] = { 4, 0, 1 };
	const uint32_t counts[3] = { 64, 64, 0 };
	for (int i = 0; i < 3; i++) {
		ans = serve(e, froms[i], counts[i], &len);
		assert_int_equal(td_msg_decode(&m, ans, len), 0);
		assert_int_equal(m.type, TD_MSG_SYNC_BLOCKS);
		assert_int_equal(m.n_items, 0);
		td_msg_free(&m);
		free(ans);
	}
	assert_int_equal(chain_height(e->srv_chain), 3);
}

/*
 * An answer with every block the peer has: applied in order, on_applied
 * told once with the count, their records leave our mempool, the request
 * is over and no other is sent.
 */
static void test_apply_blocks(void **state)
{
	struct env *e = *state;
	uint8_t *ans;
	size_t len;
	char err[256];

	server_grow(e, 3);
	/* The record of block 2 is pending here too. */
	assert_int_equal(mempool_add(e->mp, td_record_ref(e->recs[2]), err, sizeof(err)), 0);
	assert_int_equal(mempool_count(e->mp), 1);

	status(e, 1, 3);
	assert_int_equal(e->io.nsent, 1);
	assert_sync_req(&e->io, 0, 1, 1);
	ans = serve(e, 1, TD_SYNC_BATCH, &len);
	feed_blocks(e, 1, ans, len);
	free(ans);

	assert_int_equal(chain_height(e->chain), 3);
	assert_memory_equal(chain_last_hash(e->chain), chain_last_hash(e->srv_chain), TD_HASH_LEN);
	for (uint64_t h = 1; h <= 3; h++)
		assert_true(chain_has_record(e->chain, e->recs[h]->id, NULL));
	assert_int_equal(e->applied_calls, 1);
	assert_int_equal(e->applied_blocks, 3);
	assert_int_equal(e->height_at_applied, 3);
	assert_int_equal(mempool_count(e->mp), 0);
	assert_false(sync_busy(e->s));
	assert_int_equal(e->io.nsent, 1);
	assert_int_equal(e->io.ndisc, 0);

	/* The same answer again (late duplicate): nothing applied twice, nobody punished. */
	ans = serve(e, 1, TD_SYNC_BATCH, &len);
	feed_blocks(e, 1, ans, len);
	free(ans);
	assert_int_equal(chain_height(e->chain), 3);
	assert_int_equal(e->applied_calls, 1);
	assert_int_equal(e->io.ndisc, 0);
	assert_int_equal(e->io.nsent, 1);
}

/*
 * A peer that claims more than an answer holds: the next request goes out
 * as soon as the answer's blocks decode, before they are applied, and the
 * sync stays busy until the last answer.
 */
static void test_pipelined_request(void **state)
{
	struct env *e = *state;
	uint8_t *ans;
	size_t len;

	server_grow(e, 5);
	status(e, 1, 5);
	assert_int_equal(e->io.nsent, 1);
	assert_sync_req(&e->io, 0, 1, 1);

	ans = serve(e, 1, 2, &len);
	feed_blocks(e, 1, ans, len);
	free(ans);
	assert_int_equal(chain_height(e->chain), 2);
	assert_int_equal(e->applied_calls, 1);
	assert_int_equal(e->applied_blocks, 2);
	assert_int_equal(e->io.nsent, 2);
	assert_sync_req(&e->io, 1, 1, 3);
	assert_int_equal(e->io.sent[1].height_then, 0); /* sent before blocks 1 and 2 were applied */
	assert_true(sync_busy(e->s));

	/* Busy: another STATUS ahead asks nothing more. */
	status(e, 2, 5);
	assert_int_equal(e->io.nsent, 2);

	ans = serve(e, 3, TD_SYNC_BATCH, &len);
	feed_blocks(e, 1, ans, len);
	free(ans);
	assert_int_equal(chain_height(e->chain), 5);
	assert_memory_equal(chain_last_hash(e->chain), chain_last_hash(e->srv_chain), TD_HASH_LEN);
	assert_int_equal(e->applied_calls, 2);
	assert_int_equal(e->applied_blocks, 5);
	assert_int_equal(e->io.nsent, 2);
	assert_false(sync_busy(e->s));
	assert_int_equal(e->io.ndisc, 0);
}

/* A block that fails to decode costs the peer its connection; nothing is applied, the request is over. */
static void test_bad_block_disconnects(void **state)
{
	struct env *e = *state;
	uint8_t *blk, *cm, *msg;
	size_t blen, clen, len;
	static uint8_t garbage[] = { 0x93, 0x01, 0x02, 0x03 };

	status(e, 2, 3);
	assert_true(sync_busy(e->s));

	/* Not a block at all. */
	next_block_raw(e, 0x7, (const uint8_t(*)[TD_SECKEY_LEN])e->sk, &blk, &blen, &cm, &clen, NULL);
	uint8_t *gp = garbage;
	size_t glen = sizeof(garbage);
	msg = blocks_msg(1, &gp, &glen, &cm, &clen, &len);
	feed_blocks(e, 2, msg, len);
	free(msg);
	assert_int_equal(e->io.ndisc, 1);
	assert_int_equal(e->io.disc[0], 2);
	assert_int_equal(chain_height(e->chain), 0);
	assert_int_equal(e->applied_calls, 0);
	assert_false(sync_busy(e->s));
	assert_int_equal(e->io.nsent, 1);

	/* A real block with one byte of a record changed (records root no longer matches). */
	blk[blen - 80] ^= 0x20;
	e->io.connected[3] = true;
	msg = blocks_msg(1, &blk, &blen, &cm, &clen, &len);
	feed_blocks(e, 3, msg, len);
	free(msg);
	assert_int_equal(e->io.ndisc, 2);
	assert_int_equal(e->io.disc[1], 3);
	assert_int_equal(chain_height(e->chain), 0);
	assert_int_equal(e->applied_calls, 0);
	assert_false(sync_busy(e->s));
	assert_int_equal(e->io.nsent, 1);
	free(blk);
	free(cm);
}

/*
 * A valid block whose commit the chain refuses (signatures by the wrong
 * keys, too few signers, or bytes that are no commit) costs the peer its
 * connection and applies nothing.
 */
static void test_bad_commit_disconnects(void **state)
{
	struct env *e = *state;
	uint8_t *blk, *cm, *msg;
	size_t blen, clen, len;
	uint8_t wrong[NVAL][TD_SECKEY_LEN], pk[TD_PUBKEY_LEN];
	static uint8_t not_commit[] = { 0xc0 };

	for (uint32_t i = 0; i < NVAL; i++)
		seed_keypair(pk, wrong[i], (uint8_t)(0x91 + i));

	struct {
		uint32_t mask;
		const uint8_t (*keys)[TD_SECKEY_LEN];
		bool garbage;
	} cases[3] = {
		{ 0xf, (const uint8_t(*)[TD_SECKEY_LEN])wrong, false },
		{ 0x3, (const uint8_t(*)[TD_SECKEY_LEN])e->sk, false },
		{ 0x7, (const uint8_t(*)[TD_SECKEY_LEN])e->sk, true },
	};
	for (uint32_t c = 0; c < 3; c++) {
		uint32_t peer = 1 + c;
		e->io.connected[peer] = true;
		status(e, peer, 2);
		assert_true(sync_busy(e->s));
		next_block_raw(e, cases[c].mask, cases[c].keys, &blk, &blen, &cm, &clen, NULL);
		if (cases[c].garbage) {
			uint8_t *np = not_commit;
			size_t nlen = sizeof(not_commit);
			msg = blocks_msg(1, &blk, &blen, &np, &nlen, &len);
		} else {
			msg = blocks_msg(1, &blk, &blen, &cm, &clen, &len);
		}
		feed_blocks(e, peer, msg, len);
		free(msg);
		free(blk);
		free(cm);
		assert_int_equal(e->io.ndisc, c + 1);
		assert_int_equal(e->io.disc[c], peer);
		assert_int_equal(chain_height(e->chain), 0);
		assert_int_equal(e->applied_calls, 0);
		assert_false(sync_busy(e->s));
	}

	/* The same block with a good commit from the next peer: applied. */
	next_block_raw(e, 0xe, (const uint8_t(*)[TD_SECKEY_LEN])e->sk, &blk, &blen, &cm, &clen, NULL);
	msg = blocks_msg(1, &blk, &blen, &cm, &clen, &len);
	e->io.connected[1] = true;
	feed_blocks(e, 1, msg, len);
	free(msg);
	free(blk);
	free(cm);
	assert_int_equal(chain_height(e->chain), 1);
	assert_int_equal(e->applied_calls, 1);
	assert_int_equal(e->io.ndisc, 3);
}

/*
 * Regression (node/sync.c, sync_on_blocks): an answer whose first block
 * applied and whose second was refused disconnected the peer, then, because
 * one block was applied and the peer had claimed more, sent a new SYNC_REQ
 * to that same peer and stayed busy for SYNC_TIMEOUT_MS waiting on a
 * connection that was gone, so no other peer was asked in the meantime.
 */
static void test_no_request_to_peer_just_dropped(void **state)
{
	struct env *e = *state;
	uint8_t *blk[2], *cm[2], *msg, hash[TD_HASH_LEN];
	size_t blen[2], clen[2], len;
	char err[256];
	struct td_block *b;
	struct td_commit c;

	status(e, 2, 4);
	assert_int_equal(e->io.nsent, 1);
	assert_sync_req(&e->io, 0, 2, 1);

	/* Block 1 good; block 2 (built on it) with a commit of two signers only. */
	next_block_raw(e, 0x7, (const uint8_t(*)[TD_SECKEY_LEN])e->sk, &blk[0], &blen[0], &cm[0], &clen[0], hash);
	assert_int_equal(td_block_decode(&b, blk[0], blen[0], CHAIN, false, err, sizeof(err)), 0);
	assert_int_equal(td_commit_decode(&c, cm[0], clen[0], err, sizeof(err)), 0);
	struct td_record **recs = calloc(1, sizeof(*recs));
	e->recs[2] = mkrec(e);
	recs[0] = td_record_ref(e->recs[2]);
	struct td_block *b2 =
		td_block_new(2, b->hash, b->hdr.time_ms + 1000, e->g.v[2].pk, e->g.validators_hash, recs, 1);
	struct td_commit c2;
	mkcommit(e, &c2, 2, b2->hash, 0x3, (const uint8_t(*)[TD_SECKEY_LEN])e->sk);
	td_block_encode(b2, &blk[1], &blen[1]);
	td_commit_encode(&c2, &cm[1], &clen[1]);
	td_commit_clear(&c2);
	td_block_free(b2);
	td_commit_clear(&c);
	td_block_free(b);

	msg = blocks_msg(2, blk, blen, cm, clen, &len);
	feed_blocks(e, 2, msg, len);
	free(msg);
	for (int i = 0; i < 2; i++) {
		free(blk[i]);
		free(cm[i]);
	}
	assert_int_equal(chain_height(e->chain), 1);
	assert_int_equal(e->applied_calls, 1);
	assert_int_equal(e->io.ndisc, 1);
	assert_int_equal(e->io.disc[0], 2);

	/* The request for 3.. went out before the blocks were applied, while peer 2 was connected. */
	assert_true(e->io.nsent >= 2);
	assert_sync_req(&e->io, 1, 2, 3);
	assert_false(e->io.sent[1].to_gone);
	/* Anything sent to peer 2 after it was dropped is lost; the sync must be free to ask another. */
	for (uint32_t i = 0; i < e->io.nsent; i++) {
		struct td_msg m;
		sent_decode(&e->io, i, &m);
		uint64_t from = m.height;
		td_msg_free(&m);
		if (e->io.sent[i].to_gone)
			fail_msg("SYNC_REQ from %llu sent to peer %u after it was disconnected",
				 (unsigned long long)from, e->io.sent[i].to);
	}
	assert_false(sync_busy(e->s));
}

/*
 * sync_tick: an unanswered request is given up only after SYNC_TIMEOUT_MS;
 * then, with the chain still where it was, a connected peer that is ahead
 * is asked (not the one that went away, not one that is not ahead).
 */
static void test_tick_gives_up_and_asks_another(void **state)
{
	struct env *e = *state;

	sync_tick(e->s); /* nothing known: nothing to do */
	assert_int_equal(e->io.nsent, 0);

	uint64_t t0 = e->io.mono;
	status(e, 2, 3);
	assert_int_equal(e->io.nsent, 1);
	status(e, 3, 3);
	status(e, 1, 0);
	assert_int_equal(e->io.nsent, 1);

	e->io.mono = t0 + 1000;
	sync_tick(e->s);
	assert_true(sync_busy(e->s));
	e->io.mono = t0 + SYNC_TIMEOUT_MS;
	sync_tick(e->s);
	assert_true(sync_busy(e->s));
	assert_int_equal(e->io.nsent, 1);

	/* Peer 2 went away; past the deadline the request is given up and peer 3 is asked. */
	e->io.connected[2] = false;
	e->io.mono = t0 + SYNC_TIMEOUT_MS + 1;
	sync_tick(e->s);
	assert_int_equal(e->io.nsent, 2);
	assert_sync_req(&e->io, 1, 3, 1);
	assert_true(sync_busy(e->s));

	/* That one times out too and nobody connected is ahead any more: the sync goes idle. */
	e->io.connected[3] = false;
	e->io.mono += SYNC_TIMEOUT_MS + 1;
	sync_tick(e->s);
	assert_false(sync_busy(e->s));
	assert_int_equal(e->io.nsent, 2);
	assert_int_equal(e->io.ndisc, 0);
}

/*
 * A peer that claims height 2^64 - 1 and never answers cannot hold sync:
 * past the deadline its claim is dropped and the honest peer ahead is
 * asked, even though the liar stays connected; an answer with no block
 * drops a claim at once; answers from a peer not asked do not end a request.
 */
static void test_lying_status_cannot_capture_sync(void **state)
{
	struct env *e = *state;
	uint64_t t0 = e->io.mono;

	status(e, 2, UINT64_MAX);
	assert_int_equal(e->io.nsent, 1);
	assert_sync_req(&e->io, 0, 2, 1);
	status(e, 3, 2);
	assert_int_equal(e->io.nsent, 1);

	/* Peer 3 answers unasked with nothing: the request to peer 2 stays outstanding, peer 3's claim is dropped. */
	uint8_t *msg;
	size_t len;
	msg = blocks_msg(0, NULL, NULL, NULL, NULL, &len);
	feed_blocks(e, 3, msg, len);
	free(msg);
	assert_true(sync_busy(e->s));
	status(e, 3, 2); /* its next STATUS claims again */

	/* Peer 2 never answers. Past the deadline the next peer ahead, 3, is asked, and 2 no more. */
	e->io.mono = t0 + SYNC_TIMEOUT_MS + 1;
	sync_tick(e->s);
	assert_int_equal(e->io.nsent, 2);
	assert_sync_req(&e->io, 1, 3, 1);
	e->io.mono += SYNC_TIMEOUT_MS + 1;
	sync_tick(e->s);
	assert_int_equal(e->io.nsent, 2); /* 3 timed out too; 2's claim was dropped: nobody left ahead */
	assert_false(sync_busy(e->s));
	assert_int_equal(e->io.ndisc, 0);
}

/* sync_tick asks a peer ahead only when the chain made no progress since the last tick. */
static void test_tick_waits_while_chain_grows(void **state)
{
	struct env *e = *state;
	uint8_t *braw, *craw;
	size_t blen, clen;
	struct td_block *blk;
	struct td_commit cm;
	char err[256];

	server_grow(e, 3);
	status(e, 1, 1); /* one ahead, not fresh: no sync by STATUS */
	assert_int_equal(e->io.nsent, 0);
	sync_tick(e->s); /* the first tick sees height 0, as at the start: no progress */
	assert_int_equal(e->io.nsent, 1);
	assert_sync_req(&e->io, 0, 1, 1);
	e->io.mono += SYNC_TIMEOUT_MS + 1;

	/* Consensus applied a block meanwhile: the tick gives the request up but asks nothing. */
	assert_int_equal(chain_block_raw(e->srv_chain, 1, &braw, &blen, &craw, &clen), 0);
	assert_int_equal(td_block_decode(&blk, braw, blen, CHAIN, false, err, sizeof(err)), 0);
	assert_int_equal(td_commit_decode(&cm, craw, clen, err, sizeof(err)), 0);
	assert_int_equal(chain_apply(e->chain, blk, &cm, err, sizeof(err)), 0);
	td_commit_clear(&cm);
	td_block_free(blk);
	free(braw);
	free(craw);
	status(e, 3, 3);
	assert_int_equal(e->io.nsent, 1); /* busy still: the deadline passed but no tick ran yet */
	sync_tick(e->s);
	assert_false(sync_busy(e->s));
	assert_int_equal(e->io.nsent, 1);

	/* A tick without progress: peer 1 (at 1) is not ahead, peer 3 (at 3) is. */
	sync_tick(e->s);
	assert_int_equal(e->io.nsent, 2);
	assert_sync_req(&e->io, 1, 3, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_two_ahead_requests_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_request_starts_after_our_tip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_one_ahead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serve_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_block_disconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_commit_disconnects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_request_to_peer_just_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tick_gives_up_and_asks_another, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lying_status_cannot_capture_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tick_waits_while_chain_grows, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
