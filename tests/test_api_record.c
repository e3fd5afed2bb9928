/*
 * Tests for record.status in node/api.c: what became of a record, asked
 * through the socket as an agency asks it.
 *
 * One validator's modules as node.c wires them: the chain on a temporary
 * store, the mempool, the proposals, the consensus driver and the api, over
 * a fake node_io whose timers fire only when the test fires them, and the
 * real rpc server on a libuv loop. The test is the client: it writes a
 * request line on a blocking socket and turns the loop (UV_RUN_NOWAIT) until
 * the answer line arrives, all in one thread. Records are published with
 * tender.publish (the answer's id is what record.status is asked about),
 * committed by the driver, and dropped by the driver when the chain refuses
 * them (a conflicting tender committed meanwhile, as block sync applies it);
 * a restart opens the same store under a new api. Teardown checks that the
 * loop closes with no handle left.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "api.h"
#include "chain.h"
#include "driver.h"
#include "log.h"
#include "mempool.h"
#include "proposals.h"
#include "rpc.h"
#include "signstate.h"
#include "tenderd/block.h"
#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "wal.h"

static uint8_t CHAIN[TD_HASH_LEN]; /* the genesis hash of the newest fixture: what signatures bind */
#define CHAIN_ID "tenderd-api-test"
#define PREFIX "ocds-kr2020"
#define GENESIS_MS 1577836800000ull /* 2020-01-01T00:00:00Z */
#define WAIT_MS 5000                /* longest wait for one answer */

struct env {
	struct td_genesis g;
	uint8_t sk[TD_SECKEY_LEN];
	struct config cfg;
	struct node_io io;
	uint64_t wall, mono;
	bool pending[NODE_TIMERS];
	char dir[64], store[96], ss_path[128], wal_path[128], sock[128];
	/* the node's modules */
	struct chain *chain;
	struct mempool *mp;
	struct proposals *prop;
	struct driver *d;
	struct api *api;
	/* the socket */
	uv_loop_t loop;
	struct rpc *rpc;
	int fd;
	char buf[1 << 16];
	size_t len;
	int next_id;
	uint32_t dropped; /* on_dropped calls of the driver */
	char last_drop[TD_ERRMSG_MAX + 128];
};

/* ---- fake io ---- */

static void f_send(void *ctx, uint32_t to, const uint8_t *msg, size_t len)
{
}

static void f_disconnect(void *ctx, uint32_t peer, const char *reason)
{
}

static bool f_connected(void *ctx, uint32_t v)
{
	return false;
}

static uint32_t f_peer_count(void *ctx)
{
	return 0;
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
	((struct env *)ctx)->pending[kind] = delay_ms != NODE_TIMER_OFF;
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

/* ---- the node's wiring (as node.c) ---- */

static void cb_commit(void *ctx, const struct td_block *blk)
{
	struct env *e = ctx;
	driver_new_height(e->d);
	prop_new_height(e->prop, chain_height(e->chain) + 1);
	api_on_commit(e->api);
	driver_maybe_start(e->d, 0);
}

static void cb_dropped(void *ctx, const uint8_t id[static TD_HASH_LEN], const char *msg)
{
	struct env *e = ctx;
	e->dropped++;
	snprintf(e->last_drop, sizeof(e->last_drop), "%s", msg);
	api_on_dropped(e->api, id, msg);
}

static void cb_complete(void *ctx, uint32_t from, uint64_t h, uint32_t r, const uint8_t hash[static TD_HASH_LEN],
			int32_t valid_round)
{
	struct env *e = ctx;
	driver_on_proposal(e->d, from, h, r, hash, valid_round);
}

static void cb_fetch(void *ctx, uint32_t peer, const uint8_t (*ids)[TD_HASH_LEN], uint32_t k)
{
}

/* node_submit without gossip: the chain's check, the mempool, a height started. */
static int submit(void *ctx, struct td_record *rec, char *err, size_t errlen)
{
	struct env *e = ctx;
	int rc;
	if ((rc = chain_check_record(e->chain, rec, err, errlen)) != 0 ||
	    (rc = mempool_add(e->mp, rec, err, errlen)) != 0)
		return rc;
	driver_maybe_start(e->d, 0);
	return 0;
}

static void handler(void *ctx, struct rpc_req *req, const char *method, json_t *params)
{
	api_handle(((struct env *)ctx)->api, req, method, params);
}

/* Opens the store and builds the modules over it, as a node starting up does. */
static void modules_open(struct env *e)
{
	char err[256];
	assert_int_equal(chain_open(&e->chain, e->store, &e->g, err, sizeof(err)), 0);
	e->mp = mempool_new(10000, 64u << 20);
	struct prop_callbacks pcb = { e, cb_complete, cb_fetch, NULL, NULL };
	e->prop = prop_new(&e->io, &e->g, e->mp, chain_height(e->chain) + 1, &pcb);
	struct driver_config dc = {
		.sign_state_path = e->ss_path,
		.wal_path = e->wal_path,
		.sk = e->sk,
		.block_max_records = 1000,
		.block_max_bytes = 4u << 20,
		.timeout_propose_ms = 3000,
		.timeout_vote_ms = 1000,
		.timeout_max_ms = 10000,
		.timeout_propose_unreachable_ms = 100,
	};
	struct driver_callbacks dcb = { e, cb_commit, cb_dropped };
	if (driver_new(&e->d, &e->io, &e->g, e->chain, e->mp, e->prop, &dc, &dcb, err, sizeof(err)) != 0)
		fail_msg("driver_new: %s", err);
	if (driver_resume(e->d, err, sizeof(err)) != 0)
		fail_msg("driver_resume: %s", err);
	struct api_deps deps = {
		.io = &e->io,
		.genesis = &e->g,
		.cfg = &e->cfg,
		.sk = e->sk,
		.pk = e->g.v[0].pk,
		.chain = e->chain,
		.mp = e->mp,
		.driver = e->d,
		.sync = NULL,
		.gossip = NULL,
		.ctx = e,
		.submit = submit,
	};
	e->api = api_new(&deps);
	for (int k = 0; k < NODE_TIMERS; k++)
		e->pending[k] = false;
}

static void modules_close(struct env *e)
{
	api_free(e->api);
	driver_free(e->d);
	prop_free(e->prop);
	mempool_free(e->mp);
	chain_close(e->chain);
	e->api = NULL;
	e->d = NULL;
	e->prop = NULL;
	e->mp = NULL;
	e->chain = NULL;
}

/* Fires a pending timer as node_on_timer does. */
static void fire(struct env *e, enum node_timer kind)
{
	assert_true(e->pending[kind]);
	e->pending[kind] = false;
	driver_hold(e->d);
	driver_on_timer(e->d, kind);
	driver_release(e->d);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	uint8_t seed[32];
	char err[256];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	assert_true(sodium_init() >= 0);
	log_set_level(LOG_ERROR);
	snprintf(e->g.chain_id, sizeof(e->g.chain_id), CHAIN_ID);
	snprintf(e->g.ocid_prefix, sizeof(e->g.ocid_prefix), PREFIX);
	e->g.time_ms = GENESIS_MS;
	e->g.n = 1;
	e->g.v = calloc(1, sizeof(*e->g.v));
	snprintf(e->g.v[0].name, sizeof(e->g.v[0].name), "Seoul Procurement Service");
	memset(seed, 0x31, sizeof(seed));
	crypto_sign_seed_keypair(e->g.v[0].pk, e->sk, seed);
	td_genesis_seal(&e->g);
	memcpy(CHAIN, e->g.hash, TD_HASH_LEN);
	snprintf(e->cfg.name, sizeof(e->cfg.name), "%s", e->g.v[0].name);
	e->wall = GENESIS_MS + 3600 * 1000;
	e->mono = 1000000;
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
	snprintf(e->dir, sizeof(e->dir), "/tmp/td-apirec-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->store, sizeof(e->store), "%s/store", e->dir);
	snprintf(e->ss_path, sizeof(e->ss_path), "%s/%s", e->dir, SIGNSTATE_FILE);
	snprintf(e->wal_path, sizeof(e->wal_path), "%s/%s", e->dir, WAL_FILE);
	snprintf(e->sock, sizeof(e->sock), "%s/tenderd.sock", e->dir);
	modules_open(e);

	assert_int_equal(uv_loop_init(&e->loop), 0);
	if (rpc_start(&e->rpc, &e->loop, e->sock, handler, e, err, sizeof(err)) != 0)
		fail_msg("rpc_start: %s", err);
	e->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(e->fd >= 0);
	memcpy(sa.sun_path, e->sock, strlen(e->sock) + 1);
	assert_int_equal(connect(e->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];
	close(e->fd);
	api_stop(e->api);
	rpc_stop(e->rpc);
	for (int i = 0; i < 1000 && uv_run(&e->loop, UV_RUN_NOWAIT) != 0; i++)
		;
	assert_int_equal(uv_loop_close(&e->loop), 0);
	modules_close(e);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e->g.v);
	free(e);
	return 0;
}

/* ---- the client ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends {"method": method, "params": params (stolen; NULL: none)} with the next id. */
static void send_req(struct env *e, const char *method, json_t *params)
{
	json_t *req = json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id", ++e->next_id, "method", method);
	if (params)
		json_object_set_new(req, "params", params);
	char *line = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	size_t n = strlen(line);
	line[n] = '\n'; /* json_dumps leaves room for its NUL, which becomes the newline */
	assert_int_equal(send(e->fd, line, n + 1, MSG_NOSIGNAL), (ssize_t)(n + 1));
	free(line);
}

/* Turns the loop until one answer line arrives and returns it parsed. */
static json_t *read_answer(struct env *e, const char *method)
{
	char err[256];
	int64_t deadline = now_ms() + WAIT_MS;
	char *nl;
	while (!(nl = e->len ? memchr(e->buf, '\n', e->len) : NULL)) {
		if (now_ms() > deadline)
			fail_msg("no answer to %s within %d ms", method, WAIT_MS);
		uv_run(&e->loop, UV_RUN_NOWAIT);
		struct pollfd p = { .fd = e->fd, .events = POLLIN };
		if (poll(&p, 1, 5) <= 0)
			continue;
		assert_true(e->len < sizeof(e->buf));
		ssize_t k = recv(e->fd, e->buf + e->len, sizeof(e->buf) - e->len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		assert_true(k > 0);
		e->len += (size_t)k;
	}
	size_t ln = (size_t)(nl - e->buf);
	json_t *ans = td_json_load(e->buf, ln, err, sizeof(err));
	if (!ans)
		fail_msg("answer is not JSON (%s): %.*s", err, (int)ln, e->buf);
	memmove(e->buf, nl + 1, e->len - ln - 1);
	e->len -= ln + 1;
	return ans;
}

/* Sends a request and returns the whole answer object. */
static json_t *call(struct env *e, const char *method, json_t *params)
{
	send_req(e, method, params);
	return read_answer(e, method);
}

static int64_t num(const json_t *v)
{
	size_t len;
	const char *s = td_json_number_text(v, &len);
	char tmp[32];
	assert_non_null(s);
	assert_true(len < sizeof(tmp));
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return strtoll(tmp, NULL, 10);
}

/* The result of a call that must succeed (a new reference). */
static json_t *ok(struct env *e, const char *method, json_t *params)
{
	json_t *ans = call(e, method, params);
	json_t *res = json_object_get(ans, "result");
	if (!res)
		fail_msg("%s failed: %s", method, json_dumps(ans, JSON_COMPACT));
	assert_int_equal(num(json_object_get(ans, "id")), e->next_id);
	json_incref(res);
	json_decref(ans);
	return res;
}

/* ans must answer request want_id with an error code and a message containing needle (ans is freed). */
static void expect_error(json_t *ans, const char *method, int want_id, int code, const char *needle)
{
	const json_t *err = json_object_get(ans, "error");
	if (!err)
		fail_msg("%s did not fail: %s", method, json_dumps(ans, JSON_COMPACT));
	assert_null(json_object_get(ans, "result"));
	assert_int_equal(num(json_object_get(ans, "id")), want_id);
	assert_int_equal(num(json_object_get(err, "code")), code);
	const char *msg = json_string_value(json_object_get(err, "message"));
	assert_non_null(msg);
	if (!strstr(msg, needle))
		fail_msg("message '%s' lacks '%s'", msg, needle);
	json_decref(ans);
}

/* A call that must fail with code and a message containing needle. */
static void refused(struct env *e, const char *method, json_t *params, int code, const char *needle)
{
	json_t *ans = call(e, method, params);
	expect_error(ans, method, e->next_id, code, needle);
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s)
		fail_msg("no string %s in %s", key, json_dumps(o, JSON_COMPACT));
	return s;
}

/* record.status of hex id; the result (a new reference), whose id must be hex in lowercase. */
static json_t *status_of(struct env *e, const char *hex)
{
	char lower[2 * TD_HASH_LEN + 1];
	json_t *res = ok(e, "record.status", json_pack("{s:s}", "id", hex));
	for (size_t i = 0; i <= 2 * TD_HASH_LEN; i++)
		lower[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
	assert_string_equal(str(res, "id"), lower);
	return res;
}

static void expect_status(struct env *e, const char *hex, const char *status)
{
	json_t *res = status_of(e, hex);
	assert_string_equal(str(res, "status"), status);
	json_decref(res);
}

/* Publishes tender ocid through tender.publish; the record id it answers goes to hex. */
static void publish(struct env *e, const char *ocid, const char *title, char hex[static 2 * TD_HASH_LEN + 1])
{
	json_t *rel = json_pack("{s:{s:s, s:s, s:s}}", "tender", "id", "t1", "title", title, "status", "active");
	json_t *res =
		ok(e, "tender.publish", json_pack("{s:s, s:s, s:o}", "kind", "tender", "ocid", ocid, "release", rel));
	uint8_t id[TD_HASH_LEN];
	const char *s = str(res, "id");
	assert_int_equal(strlen(s), 2 * TD_HASH_LEN);
	assert_true(td_unhex(id, TD_HASH_LEN, s, strlen(s)));
	assert_true(mempool_has(e->mp, id)); /* the id answered is the record's */
	assert_string_equal(str(res, "ocid"), ocid);
	assert_non_null(json_object_get(res, "release_id"));
	assert_null(json_object_get(res, "height"));
	memcpy(hex, s, 2 * TD_HASH_LEN + 1);
	json_decref(res);
}

/*
 * Commits a tender for ocid that this node never pooled, as block sync
 * applies a block decided without it, and moves the modules to the next
 * height as node.c does.
 */
static void commit_behind(struct env *e, const char *ocid)
{
	char err[256];
	struct td_record *rec = NULL;
	struct td_commit cm = { 0 };
	struct td_commit_sig sig;
	json_t *frag = json_pack("{s:{s:s, s:s, s:s}}", "tender", "id", "t9", "title", "Another agency's bridge",
				 "status", "active");
	uint64_t ms = e->wall;
	json_t *full = td_release_build(frag, TD_KIND_TENDER, ocid, ms, e->cfg.name, err, sizeof(err));
	if (!full)
		fail_msg("build: %s", err);
	if (td_record_sign(&rec, TD_KIND_TENDER, full, ms, NULL, CHAIN, e->sk, err, sizeof(err)) != 0)
		fail_msg("sign: %s", err);
	json_decref(frag);
	json_decref(full);
	struct td_record **recs = calloc(1, sizeof(*recs));
	recs[0] = rec;
	struct td_block *blk = td_block_new(chain_height(e->chain) + 1, chain_last_hash(e->chain), e->wall,
					    e->g.v[0].pk, e->g.validators_hash, recs, 1);
	cm.height = blk->hdr.height;
	memcpy(cm.block_hash, blk->hash, TD_HASH_LEN);
	sig.validator = 0;
	td_vote_sign(sig.sig, CHAIN, TD_VOTE_PRECOMMIT, cm.height, 0, blk->hash, e->sk);
	cm.sigs = &sig;
	cm.n_sigs = 1;
	if (chain_apply(e->chain, blk, &cm, err, sizeof(err)) != 0)
		fail_msg("apply: %s", err);
	td_block_free(blk);
	driver_new_height(e->d);
	prop_new_height(e->prop, chain_height(e->chain) + 1);
	api_on_commit(e->api);
}

/* ---- tests ---- */

/*
 * A record's life: pending after tender.publish, committed with its height
 * once the driver commits it, dropped with the chain's reason when a
 * conflicting tender commits first, and after a restart still committed
 * (the chain) while the drop is forgotten (unknown, saying why).
 */
static void test_fates(void **state)
{
	struct env *e = *state;
	char a[2 * TD_HASH_LEN + 1], b[2 * TD_HASH_LEN + 1], c[2 * TD_HASH_LEN + 1];
	json_t *res;

	/* Pending: accepted, no block yet. */
	publish(e, PREFIX "-rec-1", "Road repair", a);
	assert_int_equal(mempool_count(e->mp), 1);
	res = status_of(e, a);
	assert_string_equal(str(res, "status"), "pending");
	assert_null(json_object_get(res, "height"));
	assert_null(json_object_get(res, "reason"));
	json_decref(res);

	/* Committed at height 1 by the driver. */
	fire(e, NODE_TIMER_START);
	assert_int_equal(chain_height(e->chain), 1);
	assert_int_equal(mempool_count(e->mp), 0);
	res = status_of(e, a);
	assert_string_equal(str(res, "status"), "committed");
	assert_int_equal(num(json_object_get(res, "height")), 1);
	json_decref(res);

	/* A second record committed at height 2: the height is the record's block, not the tip. */
	publish(e, PREFIX "-rec-2", "School roof", c);
	e->wall += 1000;
	fire(e, NODE_TIMER_START);
	assert_int_equal(chain_height(e->chain), 2);
	res = status_of(e, c);
	assert_string_equal(str(res, "status"), "committed");
	assert_int_equal(num(json_object_get(res, "height")), 2);
	json_decref(res);
	res = status_of(e, a);
	assert_int_equal(num(json_object_get(res, "height")), 1);
	json_decref(res);

	/* Dropped: tender rec-3 pending here, another tender for rec-3 commits first (block 3). */
	e->wall += 1000;
	publish(e, PREFIX "-rec-3", "Bridge", b);
	expect_status(e, b, "pending");
	e->wall += 1000;
	commit_behind(e, PREFIX "-rec-3");
	assert_int_equal(chain_height(e->chain), 3);
	assert_true(mempool_count(e->mp) == 1);
	expect_status(e, b, "pending"); /* still in the mempool until a block is built */
	assert_int_equal(e->dropped, 0);
	e->wall += 1000;
	driver_maybe_start(e->d, 0);
	fire(e, NODE_TIMER_START);
	assert_int_equal(e->dropped, 1);
	assert_int_equal(mempool_count(e->mp), 0);
	res = status_of(e, b);
	assert_string_equal(str(res, "status"), "dropped");
	assert_string_equal(str(res, "reason"), e->last_drop); /* the driver's own message */
	assert_non_null(strstr(str(res, "reason"), "tender " PREFIX "-rec-3 already exists"));
	assert_string_equal(str(res, "dropped_at"), "2020-01-01T01:00:04.000Z");
	assert_null(json_object_get(res, "height"));
	json_decref(res);

	/* Unknown: an id nobody published, in capitals (answered in lowercase). */
	res = status_of(e, "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff");
	assert_string_equal(str(res, "status"), "unknown");
	assert_non_null(strstr(str(res, "message"), "never seen here"));
	json_decref(res);

	/* Restart: the same store under new modules. */
	modules_close(e);
	modules_open(e);
	res = status_of(e, a);
	assert_string_equal(str(res, "status"), "committed");
	assert_int_equal(num(json_object_get(res, "height")), 1);
	json_decref(res);
	res = status_of(e, c);
	assert_int_equal(num(json_object_get(res, "height")), 2);
	json_decref(res);
	res = status_of(e, b);
	assert_string_equal(str(res, "status"), "unknown");
	assert_non_null(strstr(str(res, "message"), "dropped before its last restart"));
	json_decref(res);
}

/*
 * A publish waiting for its commit gets the drop's reason as its error, and
 * record.status the same reason.
 */
static void test_drop_answers_waiter_and_status(void **state)
{
	struct env *e = *state;
	uint8_t id[TD_HASH_LEN];
	char hex[2 * TD_HASH_LEN + 1];
	struct td_record *rec;
	json_t *rel =
		json_pack("{s:{s:s, s:s, s:s}}", "tender", "id", "t1", "title", "Park lighting", "status", "active");

	int publish_id = e->next_id + 1;
	send_req(e, "tender.publish",
		 json_pack("{s:s, s:s, s:o, s:b}", "kind", "tender", "ocid", PREFIX "-rec-7", "release", rel, "wait",
			   1));
	for (int64_t deadline = now_ms() + WAIT_MS; mempool_count(e->mp) == 0;) {
		assert_true(now_ms() < deadline);
		uv_run(&e->loop, UV_RUN_NOWAIT);
	}
	assert_int_equal(mempool_peek(e->mp, &rec, 1, UINT64_MAX), 1);
	memcpy(id, rec->id, TD_HASH_LEN);
	td_hex(hex, id, TD_HASH_LEN);
	assert_true(mempool_has(e->mp, id));
	/* (record.status is not asked here: answers keep their connection's order, behind the publish) */
	/* As driver.c's halt() does: out of the mempool, then the reason to the api. */
	mempool_remove(e->mp, id);
	e->wall += 250;
	api_on_dropped(e->api, id, "consensus stopped: decided block 1 cannot be applied: disk full");
	expect_error(read_answer(e, "tender.publish"), "tender.publish", publish_id, TD_RPC_RULE, "disk full");
	json_t *res = status_of(e, hex);
	assert_string_equal(str(res, "status"), "dropped");
	assert_string_equal(str(res, "reason"), "consensus stopped: decided block 1 cannot be applied: disk full");
	assert_string_equal(str(res, "dropped_at"), "2020-01-01T01:00:00.250Z");
	json_decref(res);
	/* Dropped again (pooled anew from a peer, refused again): one entry, the latest reason. */
	api_on_dropped(e->api, id, "");
	res = status_of(e, hex);
	assert_string_equal(str(res, "reason"), "no reason given");
	json_decref(res);
}

/* The table keeps the last API_DROPPED_MAX drops: the oldest is forgotten first. */
static void test_dropped_table_bounded(void **state)
{
	struct env *e = *state;
	uint8_t id[TD_HASH_LEN] = { 0 };
	char hex[2 * TD_HASH_LEN + 1], why[64];
	json_t *res;

	for (uint32_t i = 0; i <= API_DROPPED_MAX; i++) {
		id[0] = (uint8_t)(i >> 8);
		id[1] = (uint8_t)i;
		snprintf(why, sizeof(why), "drop %u", i);
		api_on_dropped(e->api, id, why);
	}
	/* Drop 0 was pushed out by drop API_DROPPED_MAX; drop 1 is the oldest kept. */
	memset(id, 0, sizeof(id));
	td_hex(hex, id, TD_HASH_LEN);
	res = status_of(e, hex);
	assert_string_equal(str(res, "status"), "unknown");
	json_decref(res);
	id[1] = 1;
	td_hex(hex, id, TD_HASH_LEN);
	res = status_of(e, hex);
	assert_string_equal(str(res, "status"), "dropped");
	assert_string_equal(str(res, "reason"), "drop 1");
	json_decref(res);
	id[0] = (uint8_t)(API_DROPPED_MAX >> 8);
	id[1] = (uint8_t)API_DROPPED_MAX;
	td_hex(hex, id, TD_HASH_LEN);
	res = status_of(e, hex);
	assert_string_equal(str(res, "status"), "dropped");
	snprintf(why, sizeof(why), "drop %u", API_DROPPED_MAX);
	assert_string_equal(str(res, "reason"), why);
	json_decref(res);
}

static void test_bad_params(void **state)
{
	struct env *e = *state;
	const char *hex63 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeef";

	refused(e, "record.status", json_object(), TD_RPC_INVALID_PARAMS, "id is missing");
	refused(e, "record.status", NULL, TD_RPC_INVALID_PARAMS, "id is missing");
	refused(e, "record.status", json_array(), TD_RPC_INVALID_PARAMS, "params must be an object");
	refused(e, "record.status", json_pack("{s:s}", "id", hex63), TD_RPC_INVALID_PARAMS, "64 hex digits");
	refused(e, "record.status", json_pack("{s:s}", "id", ""), TD_RPC_INVALID_PARAMS, "64 hex digits");
	refused(e, "record.status",
		json_pack("{s:s}", "id", "g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
		TD_RPC_INVALID_PARAMS, "64 hex digits");
	refused(e, "record.status",
		json_pack("{s:s}", "id", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0"),
		TD_RPC_INVALID_PARAMS, "64 hex digits");
	refused(e, "record.status", json_pack("{s:i}", "id", 12), TD_RPC_INVALID_PARAMS, "64 hex digits");
	refused(e, "record.status", json_pack("{s:n}", "id"), TD_RPC_INVALID_PARAMS, "64 hex digits");
	/* The connection stays usable. */
	expect_status(e, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_answers_waiter_and_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dropped_table_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_params, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
