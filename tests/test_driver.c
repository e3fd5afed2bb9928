/*
 * Tests for node/driver.c: the consensus driver run over a fake node_io.
 *
 * The fake io records every message sent (decoded with td_msg_decode to
 * check it) and every timer asked for, answers connected() from a table the
 * test sets, and has a clock the test moves; a timer fires only when the
 * test fires it (fire()). Everything else is real: the chain on a temporary
 * store, the mempool, the proposals, the sign state file and the consensus
 * core inside the driver. Validator keys come from fixed seeds, so every run
 * signs the same bytes.
 *
 * Inside the fake send, every proposal and every vote of this validator is
 * checked against the sign state file on disk at that moment: the file must
 * exist and already record that message (the double-sign guard is saved
 * before a signature leaves the node).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "chain.h"
#include "driver.h"
#include "evidence.h"
#include "tenderd/evidence.h"
#include "log.h"
#include "mempool.h"
#include "proposals.h"
#include "signstate.h"
#include "tenderd/block.h"
#include "tenderd/json.h"
#include "tenderd/msg.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "wal.h"

static uint8_t CHAIN[TD_HASH_LEN]; /* the genesis hash of the newest fixture: what signatures bind */
#define CHAIN_ID "tenderd-driver-test"
#define PREFIX "ocds-kr2020"
#define GENESIS_MS 1577836800000ull /* 2020-01-01T00:00:00Z */
#define NVAL_MAX 4
#define SENT_MAX 1024
#define TREQ_MAX 1024
#define COMMITS_MAX 8

#define T_PROPOSE 3000
#define T_VOTE 1000
#define T_MAX 10000
#define T_UNREACHABLE 100

/* One message the driver sent. */
struct sent {
	uint32_t to;
	uint8_t *bytes;
	size_t len;
	uint32_t seq;   /* position in the event log (sends and commit callbacks) */
	bool in_commit; /* sent while on_commit ran */
};

/* One io->timer() call. */
struct treq {
	enum node_timer kind;
	uint64_t delay; /* NODE_TIMER_OFF: cancel */
};

struct env {
	struct td_genesis g;
	uint8_t sk[NVAL_MAX][TD_SECKEY_LEN];
	uint8_t agency_sk[TD_SECKEY_LEN];
	int me;
	char dir[64], store[96], ss_path[128], wal_path[128], ev_path[128];
	uint32_t block_max_records;
	struct chain *chain;
	struct mempool *mp;
	struct proposals *prop;
	struct driver *d;
	struct node_io io;

	/* the fake io */
	bool connected[NVAL_MAX];
	uint64_t wall, mono;
	struct sent sent[SENT_MAX]; /* what this validator signed */
	uint32_t nsent;
	uint32_t relayed[NVAL_MAX]; /* others' votes passed on, by peer */
	uint32_t nrelayed;
	uint32_t disc_peer[16];
	uint32_t ndisc;
	bool pending[NODE_TIMERS];
	uint64_t due[NODE_TIMERS];
	struct treq treq[TREQ_MAX];
	uint32_t ntreq;
	uint32_t seq;

	/* checks made inside send */
	uint32_t signed_sent;
	uint32_t ss_violations;
	char ss_why[256];

	/* driver callbacks */
	uint32_t commits;
	uint64_t commit_height[COMMITS_MAX];
	uint8_t commit_hash[COMMITS_MAX][TD_HASH_LEN];
	uint32_t commit_enter_seq[COMMITS_MAX], commit_exit_seq[COMMITS_MAX];
	uint32_t commit_depth, commit_depth_max;
	bool start_in_commit; /* on_commit starts the next height itself (an attempt to re-enter the drain) */
	uint32_t dropped;
	uint32_t fetches;
	uint32_t next_rec;
};

/* ---- the fake io ------------------------------------------------------------ */

static enum cons_step msg_step(const struct td_msg *m)
{
	if (m->type == TD_MSG_PROPOSAL)
		return CONS_STEP_PROPOSE;
	return m->vote_type == TD_VOTE_PREVOTE ? CONS_STEP_PREVOTE : CONS_STEP_PRECOMMIT;
}

static void violation(struct env *e, const char *why, const struct td_msg *m)
{
	if (e->ss_violations++ == 0)
		snprintf(e->ss_why, sizeof(e->ss_why), "%s (message type %d height %llu round %u)", why, (int)m->type,
			 (unsigned long long)m->height, m->round);
}

/* The sign state on disk must already record m, a proposal or vote of ours about to leave. */
static void check_sign_state(struct env *e, const struct td_msg *m)
{
	struct cons_sign_state ss;
	char err[256];
	enum cons_step step = msg_step(m);

	e->signed_sent++;
	if (access(e->ss_path, F_OK) != 0) {
		violation(e, "signature sent with no sign state file", m);
		return;
	}
	if (signstate_load(e->ss_path, &ss, err, sizeof(err)) != 0 || !ss.any) {
		violation(e, "sign state file unreadable or empty", m);
		return;
	}
	if (ss.height < m->height ||
	    (ss.height == m->height && (ss.round < m->round || (ss.round == m->round && ss.step < step)))) {
		violation(e, "sign state on disk is behind the message sent", m);
		return;
	}
	if (ss.height != m->height)
		return;
	const struct cons_signed *s = step == CONS_STEP_PROPOSE ? &ss.proposal :
				      step == CONS_STEP_PREVOTE ? &ss.prevote :
								  &ss.precommit;
	if (!s->set || s->round < m->round) {
		violation(e, "sign state on disk does not record this kind of message at its round", m);
		return;
	}
	if (s->round > m->round)
		return; /* a later message of that kind is recorded already: the guard covers this one */
	if (step == CONS_STEP_PROPOSE) {
		if (memcmp(s->value, m->hash, TD_HASH_LEN) != 0 || s->valid_round != m->valid_round)
			violation(e, "sign state on disk records another proposal", m);
	} else if (s->nil != m->nil || (!m->nil && memcmp(s->value, m->hash, TD_HASH_LEN) != 0)) {
		violation(e, "sign state on disk records another vote", m);
	}
}

static void f_send(void *ctx, uint32_t to, const uint8_t *msg, size_t len)
{
	struct env *e = ctx;
	struct td_msg m;

	assert_true(e->nsent < SENT_MAX);
	assert_int_equal(td_msg_decode(&m, msg, len), 0);
	if ((m.type == TD_MSG_VOTE && m.validator != (uint32_t)e->me) ||
	    (m.type == TD_MSG_PROPOSAL && memcmp(m.hdr.proposer, e->g.v[e->me].pk, TD_PUBKEY_LEN) != 0)) {
		/* Another validator's message passed on: counted apart from what we signed (a polka goes to all). */
		assert_true(to < NVAL_MAX || to == NODE_ALL);
		assert_true(m.type != TD_MSG_VOTE || to != m.validator);
		if (to < NVAL_MAX)
			e->relayed[to]++;
		e->nrelayed++;
		td_msg_free(&m);
		return;
	}
	if (m.type == TD_MSG_PROPOSAL || (m.type == TD_MSG_VOTE && m.validator == (uint32_t)e->me))
		check_sign_state(e, &m);
	td_msg_free(&m);
	struct sent *s = &e->sent[e->nsent++];
	s->to = to;
	s->bytes = malloc(len);
	memcpy(s->bytes, msg, len);
	s->len = len;
	s->seq = e->seq++;
	s->in_commit = e->commit_depth > 0;
}

static void f_disconnect(void *ctx, uint32_t peer, const char *reason)
{
	struct env *e = ctx;

	assert_non_null(reason);
	assert_true(e->ndisc < 16);
	e->disc_peer[e->ndisc++] = peer;
	if (peer < NVAL_MAX)
		e->connected[peer] = false;
}

static bool f_connected(void *ctx, uint32_t v)
{
	struct env *e = ctx;
	return v < NVAL_MAX && e->connected[v];
}

static uint32_t f_peer_count(void *ctx)
{
	struct env *e = ctx;
	uint32_t k = 0;
	for (uint32_t v = 0; v < e->g.n; v++)
		k += (int)v != e->me && e->connected[v];
	return k;
}

static uint64_t f_wall_ms(void *ctx)
{
	return ((struct env *)ctx)->wall;
}

static uint64_t f_mono_ms(void *ctx)
{
	return ((struct env *)ctx)->mono;
}

static void f_timer(void *ctx, enum node_timer kind, uint64_t delay_ms)
{
	struct env *e = ctx;

	assert_true((int)kind >= 0 && (int)kind < NODE_TIMERS);
	assert_true(e->ntreq < TREQ_MAX);
	e->treq[e->ntreq].kind = kind;
	e->treq[e->ntreq++].delay = delay_ms;
	if (delay_ms == NODE_TIMER_OFF) {
		e->pending[kind] = false;
	} else {
		e->pending[kind] = true;
		e->due[kind] = e->mono + delay_ms;
	}
}

static bool f_timer_pending(void *ctx, enum node_timer kind)
{
	return ((struct env *)ctx)->pending[kind];
}

static json_t *f_peers_json(void *ctx)
{
	return json_array();
}

static void f_traffic(void *ctx, uint64_t *sent, uint64_t *received)
{
	*sent = *received = 0;
}

/* Moves both clocks forward by ms. */
static void advance(struct env *e, uint64_t ms)
{
	e->mono += ms;
	e->wall += ms;
}

/* Fires the pending timer of kind as the loop would: the clock moves to its time first. */
static void fire(struct env *e, enum node_timer kind)
{
	assert_true(e->pending[kind]);
	if (e->due[kind] > e->mono)
		advance(e, e->due[kind] - e->mono);
	e->pending[kind] = false;
	driver_on_timer(e->d, kind);
}

/* The last io->timer() call for kind, or -1 (none since index `since`). */
static int64_t last_timer_req(const struct env *e, enum node_timer kind, uint32_t since)
{
	int64_t r = -1;
	for (uint32_t i = since; i < e->ntreq; i++)
		if (e->treq[i].kind == kind)
			r = (int64_t)i;
	return r;
}

/* ---- callbacks of the driver and the proposals -------------------------------- */

static void cb_commit(void *ctx, const struct td_block *blk)
{
	struct env *e = ctx;

	assert_true(e->commits < COMMITS_MAX);
	e->commit_enter_seq[e->commits] = e->seq++;
	e->commit_height[e->commits] = blk->hdr.height;
	memcpy(e->commit_hash[e->commits], blk->hash, TD_HASH_LEN);
	if (++e->commit_depth > e->commit_depth_max)
		e->commit_depth_max = e->commit_depth;
	/* As node.c does: every module moves to the next height. */
	driver_new_height(e->d);
	prop_new_height(e->prop, chain_height(e->chain) + 1);
	if (e->start_in_commit && mempool_count(e->mp) > 0)
		driver_on_timer(e->d, NODE_TIMER_START); /* must not run the next height's actions in here */
	else
		driver_maybe_start(e->d, 0);
	e->commit_depth--;
	e->commit_exit_seq[e->commits++] = e->seq++;
}

static void cb_dropped(void *ctx, const uint8_t id[static TD_HASH_LEN], const char *msg)
{
	((struct env *)ctx)->dropped++;
}

static void cb_complete(void *ctx, uint32_t from, uint64_t h, uint32_t r, const uint8_t hash[static TD_HASH_LEN],
			int32_t valid_round)
{
	struct env *e = ctx;
	driver_on_proposal(e->d, from, h, r, hash, valid_round);
}

static void cb_fetch(void *ctx, uint32_t peer, const uint8_t (*ids)[TD_HASH_LEN], uint32_t k)
{
	((struct env *)ctx)->fetches++;
}

/* ---- fixtures ------------------------------------------------------------------ */

static void seed_keypair(uint8_t pk[static TD_PUBKEY_LEN], uint8_t sk[static TD_SECKEY_LEN], uint8_t byte)
{
	uint8_t seed[crypto_sign_SEEDBYTES];
	memset(seed, byte, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
}

static void env_driver(struct env *e);

static struct env *env_new(uint32_t n, int me, uint32_t block_max_records)
{
	struct env *e = calloc(1, sizeof(*e));
	uint8_t pk[TD_PUBKEY_LEN];
	char err[256];

	assert_true(sodium_init() >= 0);
	log_set_level(LOG_ERROR);
	snprintf(e->g.chain_id, sizeof(e->g.chain_id), CHAIN_ID);
	snprintf(e->g.ocid_prefix, sizeof(e->g.ocid_prefix), PREFIX);
	e->g.time_ms = GENESIS_MS;
	e->g.n = n;
	e->g.v = calloc(n, sizeof(*e->g.v));
	for (uint32_t i = 0; i < n; i++) {
		snprintf(e->g.v[i].name, sizeof(e->g.v[i].name), "agency-%u", i);
		seed_keypair(e->g.v[i].pk, e->sk[i], (uint8_t)(0x21 + i));
	}
	seed_keypair(pk, e->agency_sk, 0x5a);
	/* The agency that signs the test records is a member: only validators and members publish. */
	e->g.n_members = 1;
	e->g.others = calloc(1, sizeof(*e->g.others));
	snprintf(e->g.others[0].name, sizeof(e->g.others[0].name), "Test agency");
	memcpy(e->g.others[0].pk, pk, TD_PUBKEY_LEN);
	td_genesis_seal(&e->g);
	memcpy(CHAIN, e->g.hash, TD_HASH_LEN);
	e->me = me;
	for (uint32_t i = 0; i < NVAL_MAX; i++)
		e->connected[i] = i < n && (int)i != me;
	e->wall = GENESIS_MS + 3600 * 1000;
	e->mono = 1000000;

	snprintf(e->dir, sizeof(e->dir), "/tmp/td-driver-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->store, sizeof(e->store), "%s/store", e->dir);
	snprintf(e->ss_path, sizeof(e->ss_path), "%s/%s", e->dir, SIGNSTATE_FILE);

	e->io = (struct node_io){
		.ctx = e,
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
	assert_int_equal(chain_open(&e->chain, e->store, &e->g, err, sizeof(err)), 0);
	snprintf(e->wal_path, sizeof(e->wal_path), "%s/%s", e->dir, WAL_FILE);
	snprintf(e->ev_path, sizeof(e->ev_path), "%s/%s", e->dir, EVIDENCE_FILE);
	e->block_max_records = block_max_records;
	env_driver(e);
	return e;
}

/* The mempool, proposals and driver over e's chain, as a node starting up builds them. */
static void env_driver(struct env *e)
{
	char err[256];
	e->mp = mempool_new(10000, 64u << 20);
	struct prop_callbacks pcb = { e, cb_complete, cb_fetch, NULL, NULL };
	e->prop = prop_new(&e->io, &e->g, e->mp, chain_height(e->chain) + 1, &pcb);
	struct driver_config dc = {
		.sign_state_path = e->ss_path,
		.wal_path = e->wal_path,
		.evidence_path = e->ev_path,
		.sk = e->sk[e->me],
		.block_max_records = e->block_max_records,
		.block_max_bytes = 4u << 20,
		.timeout_propose_ms = T_PROPOSE,
		.timeout_vote_ms = T_VOTE,
		.timeout_max_ms = T_MAX,
		.timeout_propose_unreachable_ms = T_UNREACHABLE,
	};
	struct driver_callbacks dcb = { e, cb_commit, cb_dropped };
	if (driver_new(&e->d, &e->io, &e->g, e->chain, e->mp, e->prop, &dc, &dcb, err, sizeof(err)) != 0)
		fail_msg("driver_new: %s", err);
}

/*
 * kill -9 and a restart: the driver, its proposals and the mempool are gone
 * with everything they held in memory; the chain, the sign state and the
 * consensus log stay. The new driver resumes from them.
 */
static void env_crash_restart(struct env *e)
{
	char err[256];
	driver_free(e->d);
	prop_free(e->prop);
	mempool_free(e->mp);
	for (int k = 0; k < NODE_TIMERS; k++)
		e->pending[k] = false;
	env_driver(e);
	if (driver_resume(e->d, err, sizeof(err)) != 0)
		fail_msg("driver_resume: %s", err);
}

static int setup1(void **state)
{
	*state = env_new(1, 0, 1000);
	return 0;
}

/* One validator that puts one record in each block. */
static int setup1_one(void **state)
{
	*state = env_new(1, 0, 1);
	return 0;
}

/* Four validators, this node is validator 0 (not the proposer of height 1, round 0). */
static int setup4(void **state)
{
	*state = env_new(4, 0, 1000);
	return 0;
}

/* Four validators, this node is validator 1 (the proposer of height 1, round 0). */
static int setup4_proposer(void **state)
{
	*state = env_new(4, 1, 1000);
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	driver_free(e->d);
	prop_free(e->prop);
	mempool_free(e->mp);
	chain_close(e->chain);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	if (system(cmd) != 0)
		return -1;
	for (uint32_t i = 0; i < e->nsent; i++)
		free(e->sent[i].bytes);
	free(e->g.v);
	free(e->g.others);
	free(e);
	return 0;
}

/* ---- records, blocks, votes ---------------------------------------------------- */

/* A new signed tender (its own ocid), put in the mempool; its id goes to id (may be NULL). */
static void pool_record(struct env *e, uint8_t *id)
{
	char text[512], err[256];
	struct td_record *rec = NULL;
	uint32_t i = e->next_rec++;
	uint64_t ms = GENESIS_MS + 1000 * (uint64_t)(i + 1);

	snprintf(text, sizeof(text),
		 "{\"ocid\":\"" PREFIX "-drv-%u\",\"tender\":{\"id\":\"t%u\",\"title\":\"Road repair %u\","
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
	assert_int_equal(chain_check_record(e->chain, rec, err, sizeof(err)), 0);
	if (id)
		memcpy(id, rec->id, TD_HASH_LEN);
	assert_int_equal(mempool_add(e->mp, rec, err, sizeof(err)), 0);
}

/* A block at the next height over every pending record, proposed by validator proposer. */
static struct td_block *block_of_pool(struct env *e, uint32_t proposer)
{
	uint32_t k = mempool_count(e->mp);
	struct td_record **peek = calloc(k ? k : 1, sizeof(*peek)), **recs = calloc(k ? k : 1, sizeof(*recs));

	assert_int_equal(mempool_peek(e->mp, peek, k, UINT64_MAX), k);
	for (uint32_t i = 0; i < k; i++)
		recs[i] = td_record_ref(peek[i]);
	free(peek);
	return td_block_new(chain_height(e->chain) + 1, chain_last_hash(e->chain), e->wall - 1000, e->g.v[proposer].pk,
			    e->g.validators_hash, recs, k);
}

/* A VOTE from validator v signed with its key (hash NULL: nil). */
static void mkvote(struct env *e, struct td_msg *m, uint32_t v, enum td_vote_type type, uint64_t h, uint32_t r,
		   const uint8_t *hash)
{
	memset(m, 0, sizeof(*m));
	m->type = TD_MSG_VOTE;
	m->vote_type = type;
	m->height = h;
	m->round = r;
	m->nil = hash == NULL;
	if (hash)
		memcpy(m->hash, hash, TD_HASH_LEN);
	m->validator = v;
	td_vote_sign(m->sig, CHAIN, type, h, r, hash, e->sk[v]);
}

static void vote(struct env *e, uint32_t v, enum td_vote_type type, uint64_t h, uint32_t r, const uint8_t *hash)
{
	struct td_msg m;
	mkvote(e, &m, v, type, h, r, hash);
	driver_on_vote(e->d, v, &m);
}

/* ---- reading what was sent ---------------------------------------------------- */

static void sent_decode(const struct env *e, uint32_t i, struct td_msg *m)
{
	assert_true(i < e->nsent);
	assert_int_equal(td_msg_decode(m, e->sent[i].bytes, e->sent[i].len), 0);
}

/*
 * Index of the first sent message from `since` that is a vote of ours of this
 * type at (h, r) for hash (NULL: nil), or -1.
 */
static int find_vote(const struct env *e, uint32_t since, enum td_vote_type type, uint64_t h, uint32_t r,
		     const uint8_t *hash)
{
	for (uint32_t i = since; i < e->nsent; i++) {
		struct td_msg m;
		sent_decode(e, i, &m);
		bool hit = m.type == TD_MSG_VOTE && m.validator == (uint32_t)e->me && m.vote_type == type &&
			   m.height == h && m.round == r && m.nil == (hash == NULL) &&
			   (!hash || memcmp(m.hash, hash, TD_HASH_LEN) == 0);
		if (hit) {
			assert_true(td_vote_verify(m.sig, CHAIN, type, h, r, hash, e->g.v[e->me].pk));
		}
		td_msg_free(&m);
		if (hit)
			return (int)i;
	}
	return -1;
}

/* Index of the first PROPOSAL sent from `since` at (h, r), or -1; its block hash goes to hash. */
static int find_proposal(const struct env *e, uint32_t since, uint64_t h, uint32_t r, uint8_t hash[TD_HASH_LEN])
{
	for (uint32_t i = since; i < e->nsent; i++) {
		struct td_msg m;
		sent_decode(e, i, &m);
		bool hit = m.type == TD_MSG_PROPOSAL && m.height == h && m.round == r;
		if (hit) {
			assert_true(td_proposal_verify(m.sig, CHAIN, h, r, m.valid_round, m.hash, e->g.v[e->me].pk));
			memcpy(hash, m.hash, TD_HASH_LEN);
		}
		td_msg_free(&m);
		if (hit)
			return (int)i;
	}
	return -1;
}

/* The commit stored with block h, decoded and checked against the genesis. */
static void stored_commit(struct env *e, uint64_t h, struct td_commit *cm)
{
	uint8_t *braw, *craw;
	size_t blen, clen;
	char err[256];
	struct td_block *blk;

	assert_int_equal(chain_block_raw(e->chain, h, &braw, &blen, &craw, &clen), 0);
	assert_int_equal(td_block_decode(&blk, braw, blen, CHAIN, false, err, sizeof(err)), 0);
	assert_int_equal(td_commit_decode(cm, craw, clen, err, sizeof(err)), 0);
	assert_int_equal(td_commit_verify(cm, &e->g, h, blk->hash, err, sizeof(err)), 0);
	td_block_free(blk);
	free(braw);
	free(craw);
}

static void assert_sign_state_ok(const struct env *e)
{
	if (e->ss_violations)
		fail_msg("%u signed message(s) left before the sign state recorded them; first: %s", e->ss_violations,
			 e->ss_why);
}

/* ---- one validator ------------------------------------------------------------- */

/*
 * A record pending, driver_maybe_start and the START timer: the single
 * validator proposes, votes and decides; the block is applied with its own
 * precommit as the commit, on_commit fires once, and each of the three
 * signed messages left only after the sign state on disk recorded it.
 */
static void test_single_validator_commits(void **state)
{
	struct env *e = *state;
	uint8_t id[TD_HASH_LEN], hash[TD_HASH_LEN];
	struct td_commit cm;
	struct cons_sign_state ss;
	char err[256];

	/* Nothing pending: no height is started. */
	driver_maybe_start(e->d, 0);
	assert_int_equal(e->ntreq, 0);
	assert_false(access(e->ss_path, F_OK) == 0);

	pool_record(e, id);
	driver_maybe_start(e->d, 0);
	assert_int_equal(e->ntreq, 1);
	assert_int_equal(e->treq[0].kind, NODE_TIMER_START);
	assert_int_equal(e->treq[0].delay, 0);
	assert_int_equal(e->nsent, 0);
	assert_int_equal(chain_height(e->chain), 0);

	fire(e, NODE_TIMER_START);

	assert_int_equal(chain_height(e->chain), 1);
	assert_true(chain_has_record(e->chain, id, NULL));
	assert_int_equal(mempool_count(e->mp), 0);
	assert_int_equal(e->commits, 1);
	assert_int_equal(e->commit_height[0], 1);
	assert_memory_equal(e->commit_hash[0], chain_last_hash(e->chain), TD_HASH_LEN);

	/* Exactly a proposal, a prevote and a precommit, to every peer, for the block applied. */
	assert_int_equal(e->nsent, 3);
	assert_int_equal(find_proposal(e, 0, 1, 0, hash), 0);
	assert_memory_equal(hash, chain_last_hash(e->chain), TD_HASH_LEN);
	assert_int_equal(find_vote(e, 0, TD_VOTE_PREVOTE, 1, 0, hash), 1);
	assert_int_equal(find_vote(e, 0, TD_VOTE_PRECOMMIT, 1, 0, hash), 2);
	for (uint32_t i = 0; i < e->nsent; i++)
		assert_int_equal(e->sent[i].to, NODE_ALL);
	assert_int_equal(e->signed_sent, 3);
	assert_sign_state_ok(e);

	/* The file holds the last signed message. */
	assert_int_equal(signstate_load(e->ss_path, &ss, err, sizeof(err)), 0);
	assert_true(ss.any);
	assert_int_equal(ss.height, 1);
	assert_int_equal(ss.round, 0);
	assert_int_equal(ss.step, CONS_STEP_PRECOMMIT);
	assert_true(ss.precommit.set);
	assert_memory_equal(ss.precommit.value, hash, TD_HASH_LEN);

	/* The commit is this validator's precommit. */
	stored_commit(e, 1, &cm);
	assert_int_equal(cm.n_sigs, 1);
	assert_int_equal(cm.sigs[0].validator, 0);
	assert_int_equal(cm.round, 0);
	td_commit_clear(&cm);

	/* Idle afterwards: the core waits at height 2, nothing pending, no start asked. */
	assert_false(cons_started(driver_cons(e->d)));
	assert_int_equal(cons_height(driver_cons(e->d)), 2);
	assert_false(e->pending[NODE_TIMER_START]);
	assert_false(e->pending[NODE_TIMER_VALUE]);
}

/*
 * Holds defer every action to the release of the outermost one, and an event
 * raised while actions run (on_commit starting the next height) only queues:
 * nothing is sent from inside on_commit, on_commit never nests, and the
 * same drain then carries height 2 through after on_commit returned.
 */
static void test_single_hold_and_no_reentry(void **state)
{
	struct env *e = *state;
	uint8_t id1[TD_HASH_LEN], id2[TD_HASH_LEN], hash[TD_HASH_LEN];

	e->start_in_commit = true;
	pool_record(e, id1);
	pool_record(e, id2);

	driver_hold(e->d);
	driver_maybe_start(e->d, 0);
	fire(e, NODE_TIMER_START);
	driver_hold(e->d);
	driver_on_pooled(e->d);
	driver_release(e->d);
	/* Still held by the outer hold: nothing ran. */
	assert_int_equal(e->nsent, 0);
	assert_int_equal(chain_height(e->chain), 0);
	assert_int_equal(e->commits, 0);
	assert_false(access(e->ss_path, F_OK) == 0);

	driver_release(e->d);

	assert_int_equal(chain_height(e->chain), 2);
	assert_true(chain_has_record(e->chain, id1, NULL));
	assert_true(chain_has_record(e->chain, id2, NULL));
	assert_int_equal(e->commits, 2);
	assert_int_equal(e->commit_height[0], 1);
	assert_int_equal(e->commit_height[1], 2);
	assert_int_equal(e->commit_depth_max, 1);
	for (uint32_t i = 0; i < e->nsent; i++)
		if (e->sent[i].in_commit)
			fail_msg("message %u was sent from inside on_commit", i);

	/* Height 1's messages before the first on_commit, height 2's after it returned. */
	int p1 = find_proposal(e, 0, 1, 0, hash);
	int c1 = find_vote(e, 0, TD_VOTE_PRECOMMIT, 1, 0, hash);
	assert_true(p1 >= 0 && c1 > p1);
	assert_true(e->sent[c1].seq < e->commit_enter_seq[0]);
	int p2 = find_proposal(e, 0, 2, 0, hash);
	int c2 = find_vote(e, 0, TD_VOTE_PRECOMMIT, 2, 0, hash);
	assert_true(p2 > c1 && c2 > p2);
	assert_true(e->sent[p2].seq > e->commit_exit_seq[0]);
	assert_true(e->sent[c2].seq < e->commit_enter_seq[1]);
	assert_int_equal(e->signed_sent, 6);
	assert_sign_state_ok(e);
}

/* ---- four validators ------------------------------------------------------------ */

/*
 * A proposal from validator 1 (its block kept first), prevotes and
 * precommits from validators 1 and 2: this validator prevotes and precommits
 * the block, and decides it with a commit of three signatures once the
 * third precommit (its own included) arrives, not before.
 */
static void test_four_decide_with_votes(void **state)
{
	struct env *e = *state;
	uint8_t id[TD_HASH_LEN], hash[TD_HASH_LEN];
	struct td_commit cm;

	pool_record(e, id);
	struct td_block *blk = block_of_pool(e, 1);
	memcpy(hash, blk->hash, TD_HASH_LEN);
	prop_keep(e->prop, blk);

	driver_on_proposal(e->d, 1, 1, 0, hash, -1);
	assert_true(cons_started(driver_cons(e->d)));
	assert_int_equal(e->nsent, 1);
	assert_int_equal(find_vote(e, 0, TD_VOTE_PREVOTE, 1, 0, hash), 0);
	assert_int_equal(e->sent[0].to, NODE_ALL);
	int64_t t = last_timer_req(e, NODE_TIMER_PROPOSE, 0);
	assert_true(t >= 0);
	assert_int_equal(e->treq[t].delay, T_PROPOSE);

	vote(e, 1, TD_VOTE_PREVOTE, 1, 0, hash);
	assert_int_equal(e->nsent, 1);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, hash);
	assert_int_equal(e->nsent, 2);
	assert_int_equal(find_vote(e, 1, TD_VOTE_PRECOMMIT, 1, 0, hash), 1);
	vote(e, 3, TD_VOTE_PREVOTE, 1, 0, hash);
	assert_int_equal(e->nsent, 2);

	vote(e, 1, TD_VOTE_PRECOMMIT, 1, 0, hash);
	assert_int_equal(chain_height(e->chain), 0);
	assert_int_equal(e->commits, 0);
	vote(e, 2, TD_VOTE_PRECOMMIT, 1, 0, hash);

	assert_int_equal(chain_height(e->chain), 1);
	assert_memory_equal(chain_last_hash(e->chain), hash, TD_HASH_LEN);
	assert_true(chain_has_record(e->chain, id, NULL));
	assert_int_equal(mempool_count(e->mp), 0);
	assert_int_equal(e->commits, 1);
	assert_memory_equal(e->commit_hash[0], hash, TD_HASH_LEN);
	assert_int_equal(e->ndisc, 0);

	stored_commit(e, 1, &cm);
	assert_true(cm.n_sigs >= 3);
	assert_int_equal(cm.round, 0);
	assert_memory_equal(cm.block_hash, hash, TD_HASH_LEN);
	assert_int_equal(cm.sigs[0].validator, 0);
	assert_int_equal(cm.sigs[1].validator, 1);
	assert_int_equal(cm.sigs[2].validator, 2);
	td_commit_clear(&cm);

	/* A late precommit of the decided height changes nothing. */
	uint32_t before = e->nsent;
	vote(e, 3, TD_VOTE_PRECOMMIT, 1, 0, hash);
	assert_int_equal(e->nsent, before);
	assert_int_equal(chain_height(e->chain), 1);
	assert_int_equal(e->commits, 1);
	assert_int_equal(e->signed_sent, 2);
	assert_sign_state_ok(e);
}

/*
 * A vote whose signature does not verify costs its sender the connection
 * and changes nothing: no height started, nothing sent, no timer, and the
 * same vote correctly signed is then taken.
 */
static void test_bad_signature_disconnects(void **state)
{
	struct env *e = *state;
	uint8_t hash[TD_HASH_LEN];
	struct td_msg m;

	memset(hash, 0xab, sizeof(hash));
	/* Signed by validator 3's key but claiming validator 2. */
	mkvote(e, &m, 2, TD_VOTE_PREVOTE, 1, 0, hash);
	td_vote_sign(m.sig, CHAIN, TD_VOTE_PREVOTE, 1, 0, hash, e->sk[3]);
	driver_on_vote(e->d, 2, &m);
	assert_int_equal(e->ndisc, 1);
	assert_int_equal(e->disc_peer[0], 2);

	/* A flipped bit in a precommit's signature. */
	mkvote(e, &m, 3, TD_VOTE_PRECOMMIT, 1, 0, hash);
	m.sig[10] ^= 0x01;
	driver_on_vote(e->d, 3, &m);
	assert_int_equal(e->ndisc, 2);
	assert_int_equal(e->disc_peer[1], 3);

	/* A signature over another height, relayed by peer 1. */
	mkvote(e, &m, 3, TD_VOTE_PREVOTE, 2, 0, NULL);
	m.height = 1;
	driver_on_vote(e->d, 1, &m);
	assert_int_equal(e->ndisc, 3);
	assert_int_equal(e->disc_peer[2], 1);

	assert_int_equal(e->nsent, 0);
	assert_int_equal(e->ntreq, 0);
	assert_false(cons_started(driver_cons(e->d)));
	assert_int_equal(cons_height(driver_cons(e->d)), 1);
	assert_false(access(e->ss_path, F_OK) == 0);

	/* The same vote, correctly signed: taken (the height starts), no disconnect. */
	mkvote(e, &m, 2, TD_VOTE_PREVOTE, 1, 0, hash);
	driver_on_vote(e->d, 2, &m);
	assert_int_equal(e->ndisc, 3);
	assert_true(cons_started(driver_cons(e->d)));
}

/*
 * A vote naming a validator index outside the genesis is refused (its
 * sender disconnected) before any signature check or table; votes for
 * heights other than this one and the next are ignored without cost.
 */
static void test_unknown_validator_refused(void **state)
{
	struct env *e = *state;
	uint8_t hash[TD_HASH_LEN];
	struct td_msg m;

	memset(hash, 0x5c, sizeof(hash));
	mkvote(e, &m, 0, TD_VOTE_PREVOTE, 1, 0, hash);
	m.validator = 4;
	driver_on_vote(e->d, 1, &m);
	assert_int_equal(e->ndisc, 1);
	assert_int_equal(e->disc_peer[0], 1);

	mkvote(e, &m, 1, TD_VOTE_PRECOMMIT, 1, 0, hash);
	m.validator = UINT32_MAX;
	driver_on_vote(e->d, 2, &m);
	assert_int_equal(e->ndisc, 2);
	assert_int_equal(e->disc_peer[1], 2);

	assert_int_equal(e->nsent, 0);
	assert_int_equal(e->ntreq, 0);
	assert_false(cons_started(driver_cons(e->d)));

	/* Correctly signed votes for height 3 (two ahead) and round past the limit: ignored, no cost. */
	vote(e, 3, TD_VOTE_PREVOTE, 3, 0, hash);
	vote(e, 3, TD_VOTE_PREVOTE, 1, CONS_ROUND_MAX + 1, hash);
	assert_int_equal(e->ndisc, 2);
	assert_int_equal(e->nsent, 0);
	assert_false(cons_started(driver_cons(e->d)));
}

/*
 * The three consensus timeouts go out through io->timer with the configured
 * durations and, when fired, reach the core: propose timeout -> prevote nil;
 * prevote timeout (2f+1 mixed prevotes) -> precommit nil; precommit timeout
 * (2f+1 mixed precommits) -> round 1, whose propose timeout has grown by the
 * delta. A timer fired when none is armed does nothing.
 */
static void test_timeouts_fire_into_core(void **state)
{
	struct env *e = *state;
	uint8_t x[TD_HASH_LEN];
	const struct cons *c = driver_cons(e->d);
	int64_t t;

	memset(x, 0x77, sizeof(x));
	pool_record(e, NULL);
	driver_maybe_start(e->d, 0);
	fire(e, NODE_TIMER_START);
	assert_true(cons_started(c));
	assert_int_equal(e->nsent, 0);
	t = last_timer_req(e, NODE_TIMER_PROPOSE, 0);
	assert_true(t >= 0);
	assert_int_equal(e->treq[t].delay, T_PROPOSE);

	/* No proposal comes: the propose timeout makes us prevote nil. */
	uint64_t t0 = e->mono;
	fire(e, NODE_TIMER_PROPOSE);
	assert_int_equal(e->mono, t0 + T_PROPOSE);
	assert_int_equal(e->nsent, 1);
	assert_int_equal(find_vote(e, 0, TD_VOTE_PREVOTE, 1, 0, NULL), 0);
	assert_int_equal(cons_step(c), CONS_STEP_PREVOTE);

	/* 2f+1 prevotes but no 2f+1 for one value: the prevote timeout is asked for. */
	uint32_t mark = e->ntreq;
	vote(e, 1, TD_VOTE_PREVOTE, 1, 0, NULL);
	assert_int_equal(last_timer_req(e, NODE_TIMER_PREVOTE, mark), -1);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, x);
	t = last_timer_req(e, NODE_TIMER_PREVOTE, mark);
	assert_true(t >= 0);
	assert_int_equal(e->treq[t].delay, T_VOTE);
	assert_int_equal(e->nsent, 1);
	fire(e, NODE_TIMER_PREVOTE);
	assert_int_equal(e->nsent, 2);
	assert_int_equal(find_vote(e, 1, TD_VOTE_PRECOMMIT, 1, 0, NULL), 1);
	assert_int_equal(cons_step(c), CONS_STEP_PRECOMMIT);

	/* 2f+1 precommits, split: the precommit timeout, then round 1. */
	mark = e->ntreq;
	vote(e, 1, TD_VOTE_PRECOMMIT, 1, 0, NULL);
	vote(e, 2, TD_VOTE_PRECOMMIT, 1, 0, x);
	t = last_timer_req(e, NODE_TIMER_PRECOMMIT, mark);
	assert_true(t >= 0);
	assert_int_equal(e->treq[t].delay, T_VOTE);
	assert_int_equal(cons_round(c), 0);
	mark = e->ntreq;
	fire(e, NODE_TIMER_PRECOMMIT);
	assert_int_equal(cons_round(c), 1);
	assert_int_equal(cons_step(c), CONS_STEP_PROPOSE);
	assert_int_equal(cons_height(c), 1);
	t = last_timer_req(e, NODE_TIMER_PROPOSE, mark);
	assert_true(t >= 0);
	assert_int_equal(e->treq[t].delay, T_PROPOSE + T_PROPOSE / 2);
	assert_int_equal(chain_height(e->chain), 0);

	/* A stale wake-up (nothing armed of that kind) changes nothing. */
	uint32_t sent = e->nsent;
	driver_on_timer(e->d, NODE_TIMER_PRECOMMIT);
	driver_on_timer(e->d, NODE_TIMER_PREVOTE);
	assert_int_equal(cons_round(c), 1);
	assert_int_equal(e->nsent, sent);
	assert_int_equal(e->signed_sent, 2);
	assert_sign_state_ok(e);
}

/*
 * No proposal at height 1 round 0: after the propose timeout everyone
 * prevotes nil, then precommits nil, and the round advances at once.
 */
static void test_propose_timeout_advances_round(void **state)
{
	struct env *e = *state;
	const struct cons *c = driver_cons(e->d);

	pool_record(e, NULL);
	driver_maybe_start(e->d, 0);
	fire(e, NODE_TIMER_START);
	fire(e, NODE_TIMER_PROPOSE);
	assert_int_equal(find_vote(e, 0, TD_VOTE_PREVOTE, 1, 0, NULL), 0);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, NULL);
	vote(e, 3, TD_VOTE_PREVOTE, 1, 0, NULL);
	assert_true(find_vote(e, 1, TD_VOTE_PRECOMMIT, 1, 0, NULL) > 0);
	assert_int_equal(cons_round(c), 0);
	vote(e, 2, TD_VOTE_PRECOMMIT, 1, 0, NULL);
	vote(e, 3, TD_VOTE_PRECOMMIT, 1, 0, NULL);
	assert_int_equal(cons_round(c), 1);
	/* Round 1's proposer (validator 2) is connected: the full, grown propose timeout. */
	assert_true(e->pending[NODE_TIMER_PROPOSE]);
	assert_int_equal(e->due[NODE_TIMER_PROPOSE], e->mono + T_PROPOSE + T_PROPOSE / 2);
	assert_int_equal(chain_height(e->chain), 0);
	assert_sign_state_ok(e);
}

/*
 * driver_peer_lost(proposer) cuts an armed propose timer to the unreachable
 * timeout; another validator's loss, or a timer already due sooner, leaves
 * it. A round whose proposer is not connected gets the short timeout from
 * the start.
 */
static void test_peer_lost_shortens_propose(void **state)
{
	struct env *e = *state;
	const struct cons *c = driver_cons(e->d);

	pool_record(e, NULL);
	driver_maybe_start(e->d, 0);
	fire(e, NODE_TIMER_START);
	assert_true(e->pending[NODE_TIMER_PROPOSE]);
	uint64_t due = e->due[NODE_TIMER_PROPOSE];
	assert_int_equal(due, e->mono + T_PROPOSE);

	/* Validator 2 is not the proposer of round 0. */
	uint32_t mark = e->ntreq;
	driver_peer_lost(e->d, 2);
	assert_int_equal(e->ntreq, mark);

	advance(e, 1000);
	e->connected[1] = false;
	driver_peer_lost(e->d, 1);
	assert_int_equal(e->ntreq, mark + 1);
	assert_int_equal(e->treq[mark].kind, NODE_TIMER_PROPOSE);
	assert_int_equal(e->treq[mark].delay, T_UNREACHABLE);
	assert_int_equal(e->due[NODE_TIMER_PROPOSE], e->mono + T_UNREACHABLE);

	/* Already due within the cap: left alone. */
	advance(e, 50);
	driver_peer_lost(e->d, 1);
	assert_int_equal(e->ntreq, mark + 1);

	/* It fires into the core like any propose timeout. */
	fire(e, NODE_TIMER_PROPOSE);
	assert_int_equal(find_vote(e, 0, TD_VOTE_PREVOTE, 1, 0, NULL), 0);

	/* Round 1's proposer (validator 2) is gone before the round starts: short timeout at once. */
	e->connected[2] = false;
	vote(e, 1, TD_VOTE_PREVOTE, 1, 0, NULL);
	vote(e, 3, TD_VOTE_PREVOTE, 1, 0, NULL);
	vote(e, 1, TD_VOTE_PRECOMMIT, 1, 0, NULL);
	mark = e->ntreq;
	vote(e, 3, TD_VOTE_PRECOMMIT, 1, 0, NULL);
	assert_int_equal(cons_round(c), 1);
	int64_t t = last_timer_req(e, NODE_TIMER_PROPOSE, mark);
	assert_true(t >= 0);
	assert_int_equal(e->treq[t].delay, T_UNREACHABLE);
	assert_sign_state_ok(e);
}

/*
 * As proposer of height 1, after proposing, prevoting and precommitting:
 * driver_resend sends those three messages again, byte for byte, to the
 * peer asked (or to all), signs nothing new and leaves the sign state as it
 * was; once the height is decided it has nothing to re-send.
 */
static void test_resend_identical(void **state)
{
	struct env *e = *state;
	uint8_t hash[TD_HASH_LEN];
	struct cons_sign_state before, after;
	char err[256];

	/* Nothing signed yet: nothing to re-send. */
	driver_resend(e->d, NODE_ALL);
	assert_int_equal(e->nsent, 0);

	pool_record(e, NULL);
	driver_maybe_start(e->d, 0);
	fire(e, NODE_TIMER_START);
	assert_int_equal(e->nsent, 2);
	assert_int_equal(find_proposal(e, 0, 1, 0, hash), 0);
	assert_int_equal(find_vote(e, 0, TD_VOTE_PREVOTE, 1, 0, hash), 1);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, hash);
	vote(e, 3, TD_VOTE_PREVOTE, 1, 0, hash);
	assert_int_equal(e->nsent, 3);
	assert_int_equal(find_vote(e, 2, TD_VOTE_PRECOMMIT, 1, 0, hash), 2);
	assert_int_equal(signstate_load(e->ss_path, &before, err, sizeof(err)), 0);

	uint32_t treqs = e->ntreq;
	driver_resend(e->d, 2);
	assert_int_equal(e->nsent, 6);
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(e->sent[3 + i].to, 2);
		assert_int_equal(e->sent[3 + i].len, e->sent[i].len);
		assert_memory_equal(e->sent[3 + i].bytes, e->sent[i].bytes, e->sent[i].len);
	}
	driver_resend(e->d, NODE_ALL);
	assert_int_equal(e->nsent, 9);
	for (uint32_t i = 0; i < 3; i++) {
		assert_int_equal(e->sent[6 + i].to, NODE_ALL);
		assert_memory_equal(e->sent[6 + i].bytes, e->sent[i].bytes, e->sent[i].len);
	}
	assert_int_equal(e->ntreq, treqs);
	assert_int_equal(signstate_load(e->ss_path, &after, err, sizeof(err)), 0);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(chain_height(e->chain), 0);

	/* Decided: the height moved on, nothing of the new one was signed. */
	vote(e, 2, TD_VOTE_PRECOMMIT, 1, 0, hash);
	vote(e, 3, TD_VOTE_PRECOMMIT, 1, 0, hash);
	assert_int_equal(chain_height(e->chain), 1);
	uint32_t sent = e->nsent;
	driver_resend(e->d, NODE_ALL);
	assert_int_equal(e->nsent, sent);
	assert_sign_state_ok(e);
}

/*
 * The proposer with nothing pending waits for records (VALUE timer, a
 * propose timeout long); a record arriving makes it propose at once, and
 * the timer is cancelled.
 */
static void test_proposer_waits_for_records(void **state)
{
	struct env *e = *state;
	uint8_t id[TD_HASH_LEN], hash[TD_HASH_LEN];
	struct td_msg m;

	/* A peer's vote starts the height; we are its proposer with an empty mempool. */
	mkvote(e, &m, 2, TD_VOTE_PREVOTE, 1, 0, NULL);
	driver_on_vote(e->d, 2, &m);
	assert_true(cons_started(driver_cons(e->d)));
	assert_true(e->pending[NODE_TIMER_VALUE]);
	assert_int_equal(e->due[NODE_TIMER_VALUE], e->mono + T_PROPOSE);
	assert_int_equal(e->nsent, 0);

	pool_record(e, id);
	driver_on_pooled(e->d);
	assert_false(e->pending[NODE_TIMER_VALUE]);
	assert_int_equal(find_proposal(e, 0, 1, 0, hash), 0);
	const struct td_block *blk = prop_block_find(e->prop, hash);
	assert_non_null(blk);
	assert_int_equal(blk->hdr.n_records, 1);
	assert_memory_equal(blk->records[0]->id, id, TD_HASH_LEN);
	assert_sign_state_ok(e);
}

/* With nothing arriving, the VALUE timer makes the waiting proposer propose an empty block. */
static void test_proposer_empty_block_on_value_timer(void **state)
{
	struct env *e = *state;
	uint8_t hash[TD_HASH_LEN];

	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, NULL);
	assert_true(e->pending[NODE_TIMER_VALUE]);
	fire(e, NODE_TIMER_VALUE);
	assert_int_equal(find_proposal(e, 0, 1, 0, hash), 0);
	const struct td_block *blk = prop_block_find(e->prop, hash);
	assert_non_null(blk);
	assert_int_equal(blk->hdr.n_records, 0);
	assert_int_equal(find_vote(e, 1, TD_VOTE_PREVOTE, 1, 0, hash), 1);
	assert_sign_state_ok(e);
}

/*
 * Regression (node/driver.c, precommit_keep): the precommits kept to build
 * commits lived in one table of 2,048 entries shared by every validator,
 * height and round, and a full table dropped new precommits silently. One
 * validator alone filled it with validly signed precommits for far rounds of
 * the current height; afterwards the honest precommits of the deciding round
 * were not kept, decide() built a commit without them and the chain refused
 * the decided block: the height stalled. Each validator now has its own
 * DRIVER_VOTES_PER_VALIDATOR slots, the rounds nearest the core's kept.
 */
static void test_precommit_flood_from_one_validator(void **state)
{
	struct env *e = *state;
	uint8_t id[TD_HASH_LEN], hash[TD_HASH_LEN], junk[TD_HASH_LEN];

	pool_record(e, id);
	/* Byzantine validator 3: one precommit per far round, each correctly signed, as many as the table holds. */
	for (uint32_t r = 0; r < DRIVER_VOTES_MAX; r++) {
		memset(junk, 0, sizeof(junk));
		memcpy(junk, &r, sizeof(r));
		vote(e, 3, TD_VOTE_PRECOMMIT, 1, 1000 + r, junk);
	}
	assert_int_equal(e->ndisc, 0);

	struct td_block *blk = block_of_pool(e, 1);
	memcpy(hash, blk->hash, TD_HASH_LEN);
	prop_keep(e->prop, blk);
	driver_on_proposal(e->d, 1, 1, 0, hash, -1);
	vote(e, 1, TD_VOTE_PREVOTE, 1, 0, hash);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, hash);
	assert_true(find_vote(e, 0, TD_VOTE_PRECOMMIT, 1, 0, hash) >= 0);
	vote(e, 1, TD_VOTE_PRECOMMIT, 1, 0, hash);
	vote(e, 2, TD_VOTE_PRECOMMIT, 1, 0, hash);

	/* Three honest precommits for the block: it must be applied. */
	assert_int_equal(chain_height(e->chain), 1);
	assert_int_equal(e->commits, 1);
	assert_true(chain_has_record(e->chain, id, NULL));
}

/*
 * Relay: a verified vote of another validator is passed on once to every
 * connected peer but the one it came from and the voter; the same vote
 * again is not; a re-send to a new peer carries everyone's votes of the
 * height, and the commit can still be built from relayed precommits.
 */
static void test_votes_relayed_once(void **state)
{
	struct env *e = *state;
	struct td_msg m;
	uint8_t hash[TD_HASH_LEN];

	memset(hash, 0x5a, sizeof(hash));
	/* Validator 2's prevote arrives through peer 1. */
	mkvote(e, &m, 2, TD_VOTE_PREVOTE, 1, 0, hash);
	driver_on_vote(e->d, 1, &m);
	assert_int_equal(e->nrelayed, 1);
	assert_int_equal(e->relayed[3], 1); /* not back to 1, not to the voter 2, not to us */
	assert_int_equal(e->relayed[1] + e->relayed[2], 0);
	/* The same vote again, from another peer: nothing more. */
	driver_on_vote(e->d, 3, &m);
	assert_int_equal(e->nrelayed, 1);
	/* Peer 3 disconnected: a new vote goes only to peer 1. */
	e->connected[3] = false;
	mkvote(e, &m, 2, TD_VOTE_PRECOMMIT, 1, 0, hash);
	driver_on_vote(e->d, 2, &m);
	assert_int_equal(e->relayed[1], 1);
	assert_int_equal(e->nrelayed, 2);
	/* A re-send to peer 3 carries validator 2's two votes of this height (and nothing of ours: we signed nothing). */
	uint32_t before = e->nrelayed;
	e->connected[3] = true;
	driver_resend(e->d, 3);
	assert_int_equal(e->nrelayed - before, 2);
	assert_int_equal(e->relayed[3], 3);
}

/*
 * A validator killed after it locked: its proposals and mempool are gone,
 * but the consensus log gives the core back the block, the votes it
 * counted and its lock, so one more precommit decides the block, with a
 * commit that holds the precommit received before the crash.
 */
static void test_restart_resumes_from_log(void **state)
{
	struct env *e = *state;
	uint8_t id[TD_HASH_LEN], hash[TD_HASH_LEN], got[TD_HASH_LEN];
	struct td_commit cm;

	pool_record(e, id);
	struct td_block *blk = block_of_pool(e, 1);
	memcpy(hash, blk->hash, TD_HASH_LEN);
	prop_keep(e->prop, blk);
	driver_on_proposal(e->d, 1, 1, 0, hash, -1);
	vote(e, 1, TD_VOTE_PREVOTE, 1, 0, hash);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, hash);
	assert_true(find_vote(e, 1, TD_VOTE_PRECOMMIT, 1, 0, hash) >= 0);
	vote(e, 1, TD_VOTE_PRECOMMIT, 1, 0, hash);
	assert_int_equal(cons_locked(driver_cons(e->d), got), 0);
	assert_int_equal(chain_height(e->chain), 0);

	env_crash_restart(e);
	const struct cons *c = driver_cons(e->d);
	assert_true(cons_started(c));
	assert_int_equal(cons_height(c), 1);
	assert_int_equal(cons_round(c), 0);
	assert_int_equal(cons_step(c), CONS_STEP_PRECOMMIT);
	assert_int_equal(cons_locked(c, got), 0);
	assert_memory_equal(got, hash, TD_HASH_LEN);
	assert_int_equal(cons_valid(c, got), 0);
	assert_non_null(prop_block_find(e->prop, hash)); /* from the log */
	assert_true(mempool_has(e->mp, id));             /* the block's record is pending again */

	vote(e, 2, TD_VOTE_PRECOMMIT, 1, 0, hash);
	assert_int_equal(chain_height(e->chain), 1);
	assert_memory_equal(chain_last_hash(e->chain), hash, TD_HASH_LEN);
	assert_true(chain_has_record(e->chain, id, NULL));
	assert_int_equal(mempool_count(e->mp), 0);
	stored_commit(e, 1, &cm);
	assert_int_equal(cm.n_sigs, 3);
	assert_int_equal(cm.sigs[0].validator, 0);
	assert_int_equal(cm.sigs[1].validator, 1); /* received before the crash */
	assert_int_equal(cm.sigs[2].validator, 2);
	td_commit_clear(&cm);
	assert_sign_state_ok(e);

	/* The commit emptied the log; a restart now starts height 2 from nothing. */
	struct wal *w;
	char err[256];
	assert_int_equal(wal_open(&w, e->wal_path, err, sizeof(err)), 0);
	assert_int_equal(wal_size(w), strlen(WAL_MAGIC));
	wal_close(w);
	env_crash_restart(e);
	assert_false(cons_started(driver_cons(e->d)));
	assert_int_equal(cons_height(driver_cons(e->d)), 2);
}

/* A torn last entry costs that entry only: the earlier prevotes still count after the restart. */
static void test_restart_with_torn_log(void **state)
{
	struct env *e = *state;
	uint8_t id[TD_HASH_LEN], hash[TD_HASH_LEN];
	struct stat st;

	pool_record(e, id);
	struct td_block *blk = block_of_pool(e, 1);
	memcpy(hash, blk->hash, TD_HASH_LEN);
	prop_keep(e->prop, blk);
	driver_on_proposal(e->d, 1, 1, 0, hash, -1);
	vote(e, 1, TD_VOTE_PREVOTE, 1, 0, hash);
	vote(e, 3, TD_VOTE_PRECOMMIT, 1, 0, NULL); /* the last entry: torn below */
	assert_int_equal(stat(e->wal_path, &st), 0);
	assert_int_equal(truncate(e->wal_path, st.st_size - 7), 0);

	env_crash_restart(e);
	/* Our prevote and validator 1's are back: validator 2's prevote makes the polka. */
	uint32_t before = e->nsent;
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, hash);
	assert_true(find_vote(e, before, TD_VOTE_PRECOMMIT, 1, 0, hash) >= 0);
	/* Validator 3's nil precommit was lost with the tail: sent again, it counts anew. */
	vote(e, 3, TD_VOTE_PRECOMMIT, 1, 0, NULL);
	vote(e, 1, TD_VOTE_PRECOMMIT, 1, 0, hash);
	assert_int_equal(chain_height(e->chain), 0);
	vote(e, 2, TD_VOTE_PRECOMMIT, 1, 0, hash);
	assert_int_equal(chain_height(e->chain), 1);
	assert_memory_equal(chain_last_hash(e->chain), hash, TD_HASH_LEN);
}

/*
 * Proposer-based timestamps: a fresh proposal whose block time is more than
 * DRIVER_CLOCK_PRECISION_MS ahead of our clock is never given to the core
 * (no prevote, not logged); one within it is.
 */
static void test_untimely_proposal_ignored(void **state)
{
	struct env *e = *state;
	uint8_t id[TD_HASH_LEN];
	struct stat st;

	pool_record(e, id);
	struct td_record *rec = td_record_ref(mempool_get(e->mp, id));
	struct td_record **one = calloc(1, sizeof(*one));
	one[0] = rec;
	struct td_block *ahead = td_block_new(1, chain_last_hash(e->chain), e->wall + DRIVER_CLOCK_PRECISION_MS + 1000,
					      e->g.v[1].pk, e->g.validators_hash, one, 1);
	prop_keep(e->prop, ahead);
	driver_on_proposal(e->d, 1, 1, 0, ahead->hash, -1);
	assert_int_equal(e->nsent, 0);
	assert_int_equal(stat(e->wal_path, &st), 0);
	assert_int_equal(st.st_size, strlen(WAL_MAGIC));

	struct td_block *now = block_of_pool(e, 1);
	uint8_t hash[TD_HASH_LEN];
	memcpy(hash, now->hash, TD_HASH_LEN);
	prop_keep(e->prop, now);
	driver_on_proposal(e->d, 1, 1, 0, hash, -1);
	assert_int_equal(find_vote(e, 0, TD_VOTE_PREVOTE, 1, 0, hash), 0);
}

/*
 * A proposal that names a polka of a long-gone round is accepted with it.
 * Rounds 0-23 pass with nil votes from validators 1-3, more than their
 * vote slots hold; then round 24's proposer (validator 1) proposes again
 * the block validators 1-3 prevoted in round 2, and their round 2
 * prevotes arrive after the proposal (relayed through a hub, say). They
 * are the farthest votes from the core's round, yet they must be kept and
 * counted: otherwise a validator locked on that block in round 2 could
 * never be joined by the others, and the chain would halt for good.
 */
static void test_old_polka_of_proposal_kept(void **state)
{
	struct env *e = *state;
	const struct cons *c = driver_cons(e->d);
	uint8_t hash[TD_HASH_LEN];
	const uint32_t R = 24, VR = 2;

	pool_record(e, NULL);
	for (uint32_t r = 0; r < R; r++)
		for (uint32_t v = 1; v <= 3; v++) {
			vote(e, v, TD_VOTE_PREVOTE, 1, r, NULL);
			vote(e, v, TD_VOTE_PRECOMMIT, 1, r, NULL);
		}
	assert_true((size_t)R * 2 > DRIVER_VOTES_PER_VALIDATOR);
	assert_int_equal(cons_round(c), R);
	assert_int_equal(cons_proposer(c, 1, R), 1);

	struct td_block *blk = block_of_pool(e, cons_proposer(c, 1, VR));
	memcpy(hash, blk->hash, TD_HASH_LEN);
	prop_keep(e->prop, blk);
	uint32_t since = e->nsent;
	driver_on_proposal(e->d, 1, 1, R, hash, (int32_t)VR);
	assert_int_equal(find_vote(e, since, TD_VOTE_PREVOTE, 1, R, hash), -1);
	for (uint32_t v = 1; v <= 3; v++)
		vote(e, v, TD_VOTE_PREVOTE, 1, VR, hash);
	assert_true(find_vote(e, since, TD_VOTE_PREVOTE, 1, R, hash) >= 0);
	assert_int_equal(find_vote(e, since, TD_VOTE_PREVOTE, 1, R, NULL), -1);
	assert_sign_state_ok(e);
}

/*
 * The core keeps CONS_ROUND_SLOTS rounds, the driver the polka a proposal of
 * the core's round named. Round R's proposal names round VR's polka after
 * this node prevoted nil (its propose timer fired); the polka comes, then
 * more rounds than the core holds pass with nil votes, so the core forgets
 * VR. When the proposer of round R2 names VR again, the driver gives the
 * core the kept prevotes: no peer has to send them back for the node to
 * prevote the block.
 */
static void test_forgotten_polka_fed_again(void **state)
{
	struct env *e = *state;
	const struct cons *c = driver_cons(e->d);
	uint8_t hash[TD_HASH_LEN];
	const uint32_t R = 4, VR = 2, R2 = R + 4 * (CONS_ROUND_SLOTS / 4 + 1);

	pool_record(e, NULL);
	for (uint32_t r = 0; r < R; r++)
		for (uint32_t v = 1; v <= 3; v++) {
			vote(e, v, TD_VOTE_PREVOTE, 1, r, NULL);
			vote(e, v, TD_VOTE_PRECOMMIT, 1, r, NULL);
		}
	assert_int_equal(cons_round(c), R);
	assert_int_equal(cons_proposer(c, 1, R), 1);
	assert_int_equal(cons_proposer(c, 1, R2), 1);
	fire(e, NODE_TIMER_PROPOSE);
	assert_int_equal(cons_step(c), CONS_STEP_PREVOTE);

	struct td_block *blk = block_of_pool(e, cons_proposer(c, 1, VR));
	memcpy(hash, blk->hash, TD_HASH_LEN);
	prop_keep(e->prop, blk);
	driver_on_proposal(e->d, 1, 1, R, hash, (int32_t)VR);
	for (uint32_t v = 1; v <= 3; v++)
		vote(e, v, TD_VOTE_PREVOTE, 1, VR, hash);
	uint32_t since = e->nsent;
	for (uint32_t r = R; r < R2; r++)
		for (uint32_t v = 1; v <= 3; v++) {
			vote(e, v, TD_VOTE_PREVOTE, 1, r, NULL);
			vote(e, v, TD_VOTE_PRECOMMIT, 1, r, NULL);
		}
	assert_int_equal(cons_round(c), R2);
	assert_true(R2 - VR > CONS_ROUND_SLOTS);
	assert_int_equal(find_vote(e, since, TD_VOTE_PREVOTE, 1, R2, hash), -1);

	since = e->nsent;
	driver_on_proposal(e->d, 1, 1, R2, hash, (int32_t)VR);
	assert_true(find_vote(e, since, TD_VOTE_PREVOTE, 1, R2, hash) >= 0);
	assert_int_equal(find_vote(e, since, TD_VOTE_PREVOTE, 1, R2, NULL), -1);
	assert_sign_state_ok(e);
}

/*
 * Two different signed prevotes of one validator for one round: both go to
 * the evidence file once, and the entry checks out as a third party would
 * check it; changed in one byte, it does not.
 */
static void test_equivocation_evidence(void **state)
{
	struct env *e = *state;
	uint8_t a[TD_HASH_LEN], b[TD_HASH_LEN];
	char err[256];

	memset(a, 0xaa, sizeof(a));
	memset(b, 0xbb, sizeof(b));
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, a);
	assert_int_equal(evidence_count(driver_evidence(e->d)), 0);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, b);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, NULL); /* a third value: the same (validator, height, round, type) */
	assert_int_equal(evidence_count(driver_evidence(e->d)), 1);
	assert_int_equal(e->ndisc, 0);

	json_t *list = evidence_list(driver_evidence(e->d), 100);
	assert_int_equal(json_array_size(list), 1);
	json_t *ev = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(ev, "type")), "prevote");
	assert_string_equal(json_string_value(json_object_get(ev, "name")), "agency-2");
	if (evidence_check(ev, &e->g, err, sizeof(err)) != 0)
		fail_msg("evidence_check: %s", err);
	/* One changed signature byte, or the same vote twice, is refused. */
	json_t *bad = json_deep_copy(ev);
	char sig[2 * TD_SIG_LEN + 1];
	snprintf(sig, sizeof(sig), "%s", json_string_value(json_object_get(json_object_get(bad, "b"), "signature")));
	sig[0] = sig[0] == '0' ? '1' : '0';
	json_object_set_new(json_object_get(bad, "b"), "signature", json_string(sig));
	assert_int_equal(evidence_check(bad, &e->g, err, sizeof(err)), TD_EINVAL);
	json_object_set(bad, "b", json_object_get(ev, "a"));
	assert_int_equal(evidence_check(bad, &e->g, err, sizeof(err)), TD_EINVAL);
	json_decref(bad);
	json_decref(list);

	/* Kept across a restart, and not recorded twice. */
	env_crash_restart(e);
	assert_int_equal(evidence_count(driver_evidence(e->d)), 1);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, a);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, b);
	assert_int_equal(evidence_count(driver_evidence(e->d)), 1);
}

/* Evidence from a peer: kept, passed on to the other peers (not back), once; forged evidence costs the peer. */
static void test_evidence_gossip(void **state)
{
	struct env *e = *state;
	struct td_evidence ev = { .kind = TD_EVIDENCE_VOTES, .height = 1, .round = 0, .vote_type = TD_VOTE_PREVOTE };
	struct td_buf eb, mb;
	struct td_msg m;
	uint32_t since, evsent = 0;

	memcpy(ev.pk, e->g.v[2].pk, TD_PUBKEY_LEN);
	ev.a.valid_round = ev.b.valid_round = -1;
	memset(ev.a.value, 0xa1, TD_HASH_LEN);
	memset(ev.b.value, 0xb2, TD_HASH_LEN);
	td_vote_sign(ev.a.sig, CHAIN, TD_VOTE_PREVOTE, 1, 0, ev.a.value, e->sk[2]);
	td_vote_sign(ev.b.sig, CHAIN, TD_VOTE_PREVOTE, 1, 0, ev.b.value, e->sk[2]);
	td_evidence_seal(&ev);
	td_buf_init(&eb);
	td_evidence_encode(&eb, &ev);
	td_buf_init(&mb);
	td_msg_items_begin(&mb, TD_MSG_EVIDENCE, 1);
	td_enc_bin(&mb, (const uint8_t *)eb.sb.data, eb.sb.size);

	for (int round = 0; round < 2; round++) {
		since = e->nsent;
		assert_int_equal(td_msg_decode(&m, (const uint8_t *)mb.sb.data, mb.sb.size), 0);
		driver_on_evidence(e->d, 1, &m); /* an offence at the height being decided is news too */
		td_msg_free(&m);
		assert_int_equal(evidence_count(driver_evidence(e->d)), 1);
		assert_int_equal(e->ndisc, 0);
		evsent = 0;
		for (uint32_t i = since; i < e->nsent; i++) {
			struct td_msg s;
			sent_decode(e, i, &s);
			if (s.type == TD_MSG_EVIDENCE) {
				assert_int_not_equal(e->sent[i].to, 1);
				evsent++;
			}
			td_msg_free(&s);
		}
		/* the first time to the two other peers, then never again */
		assert_int_equal(evsent, round == 0 ? 2 : 0);
	}

	/* a new offence with one changed signature byte: the peer is dropped (a known one costs no check) */
	ev.round = 1;
	td_vote_sign(ev.a.sig, CHAIN, TD_VOTE_PREVOTE, 1, 1, ev.a.value, e->sk[2]);
	td_vote_sign(ev.b.sig, CHAIN, TD_VOTE_PREVOTE, 1, 1, ev.b.value, e->sk[2]);
	ev.b.sig[0] ^= 1;
	td_evidence_seal(&ev);
	td_buf_free(&eb);
	td_buf_free(&mb);
	td_buf_init(&eb);
	td_evidence_encode(&eb, &ev);
	td_buf_init(&mb);
	td_msg_items_begin(&mb, TD_MSG_EVIDENCE, 1);
	td_enc_bin(&mb, (const uint8_t *)eb.sb.data, eb.sb.size);
	assert_int_equal(td_msg_decode(&m, (const uint8_t *)mb.sb.data, mb.sb.size), 0);
	driver_on_evidence(e->d, 3, &m);
	td_msg_free(&m);
	assert_int_equal(e->ndisc, 1);
	assert_int_equal(e->disc_peer[0], 3);
	td_buf_free(&eb);
	td_buf_free(&mb);
}

/*
 * A crash after our proposal reached the consensus log but before the sign
 * state named it: the proposal never left. After the restart it must not
 * count as ours: a new proposal for the same round is no equivocation, and
 * the logged block's record is pending again.
 */
static void test_unsent_own_proposal_not_replayed(void **state)
{
	struct env *e = *state;
	uint8_t id[TD_HASH_LEN], p1[TD_HASH_LEN], p2[TD_HASH_LEN];
	uint32_t nev;

	pool_record(e, id);
	vote(e, 2, TD_VOTE_PREVOTE, 1, 0, NULL); /* starts height 1; we propose round 0 */
	assert_int_equal(find_proposal(e, 0, 1, 0, p1), 0);
	/* The sign state as it was before that proposal: none. */
	assert_int_equal(unlink(e->ss_path), 0);

	e->wall += 5000; /* the new block gets another time, so another hash */
	uint32_t before = e->nsent;
	env_crash_restart(e); /* validator 2's prevote, replayed, starts the height again: we propose at once */
	assert_true(find_proposal(e, before, 1, 0, p2) >= 0);
	assert_memory_not_equal(p1, p2, TD_HASH_LEN);
	(void)cons_evidence(driver_cons(e->d), &nev);
	assert_int_equal(nev, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_single_validator_commits, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_single_hold_and_no_reentry, setup1_one, teardown),
		cmocka_unit_test_setup_teardown(test_four_decide_with_votes, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_bad_signature_disconnects, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_validator_refused, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_timeouts_fire_into_core, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_propose_timeout_advances_round, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_peer_lost_shortens_propose, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_resend_identical, setup4_proposer, teardown),
		cmocka_unit_test_setup_teardown(test_proposer_waits_for_records, setup4_proposer, teardown),
		cmocka_unit_test_setup_teardown(test_proposer_empty_block_on_value_timer, setup4_proposer, teardown),
		cmocka_unit_test_setup_teardown(test_precommit_flood_from_one_validator, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_votes_relayed_once, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_restart_resumes_from_log, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_restart_with_torn_log, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_untimely_proposal_ignored, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_old_polka_of_proposal_kept, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_forgotten_polka_fed_again, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_equivocation_evidence, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_evidence_gossip, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_unsent_own_proposal_not_replayed, setup4_proposer, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
