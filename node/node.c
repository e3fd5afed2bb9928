/*
 * The node (see node.h). It owns the loop's handles, the chain, the mempool
 * and the socket; lower modules never call each other through it except by
 * the callbacks set here. Methods on the socket:
 *   status, tender.publish, tender.get, tender.list, block.get
 * Requests published with "wait" stay in a list until their record commits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "chain.h"
#include "log.h"
#include "mempool.h"
#include "node.h"
#include "rpc.h"
#include "tenderd/json.h"

#define TENDERD_VERSION "0.1.0"

struct waiter {
	struct rpc_req *req;
	uint8_t id[TD_HASH_LEN];
	char ocid[TD_OCID_MAX + 1];
	char release_id[TD_ID_MAX + 1];
	struct waiter *next;
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
	uv_timer_t block_timer;
	uv_signal_t sig_int, sig_term;
	struct waiter *waiters;
	struct td_record **scratch; /* cfg.block_max_records slots for building blocks */
	bool handles_open;
	bool stopping;
	uint64_t last_rx_ms;
};

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool sole_validator(const struct node *n)
{
	return n->my_index == 0 && n->genesis.n == 1;
}

/* ---- answering waiting requests ---- */

static json_t *publish_result(const uint8_t id[static TD_HASH_LEN], const char *ocid, const char *release_id)
{
	char hex[2 * TD_HASH_LEN + 1];
	td_hex(hex, id, TD_HASH_LEN);
	return json_pack("{s:s, s:s, s:s}", "id", hex, "ocid", ocid, "release_id", release_id);
}

/* Answers every waiter whose record is committed, or refused with msg (id given). */
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

/* ---- the block producer (one validator) ---- */

/* Refuses a pending record that can no longer be committed. */
static void drop_record(struct node *n, struct td_record *rec, const char *why)
{
	char hex[2 * TD_HASH_LEN + 1];
	uint8_t id[TD_HASH_LEN];
	td_hex(hex, rec->id, TD_HASH_LEN);
	log_warn("dropping pending record %s (%s): %s", hex, rec->ocid, why);
	memcpy(id, rec->id, TD_HASH_LEN);
	mempool_remove(n->mp, id);
	settle_waiters(n, id, TD_RPC_RULE, why);
}

/*
 * Commits one block of pending records at the next height. With want
 * records from the front of the mempool (0: as many as fit). Returns the
 * number of records committed, or -1 if the block was refused.
 */
static int commit_block(struct node *n, uint32_t want)
{
	struct td_record **recs = n->scratch;
	char err[TD_ERRMSG_MAX];
	uint32_t k = mempool_peek(n->mp, recs, want ? want : n->cfg.block_max_records, n->cfg.block_max_bytes);
	uint32_t kept = 0;

	for (uint32_t i = 0; i < k; i++) {
		if (chain_check_record(n->chain, recs[i], err, sizeof(err)) != 0)
			drop_record(n, recs[i], err);
		else
			recs[kept++] = recs[i];
	}
	if (kept == 0)
		return 0;

	uint64_t height = chain_height(n->chain) + 1, now = wall_ms();
	if (now < chain_last_time(n->chain))
		now = chain_last_time(n->chain);
	struct td_record **owned = td_xcalloc(kept, sizeof(*owned));
	memcpy(owned, recs, kept * sizeof(*owned));
	struct td_block *blk = td_block_new(height, chain_last_hash(n->chain), now, n->pk, owned, kept);
	struct td_commit_sig sig = { .validator = (uint32_t)n->my_index };
	struct td_commit commit = { .height = height, .round = 0, .n_sigs = 1, .sigs = &sig };
	memcpy(commit.block_hash, blk->hash, TD_HASH_LEN);
	td_vote_sign(sig.sig, n->genesis.chain_id, TD_VOTE_PRECOMMIT, height, 0, blk->hash, n->sk);

	int rc = chain_apply(n->chain, blk, &commit, err, sizeof(err));
	uint8_t (*ids)[TD_HASH_LEN] = td_xcalloc(kept, TD_HASH_LEN);
	for (uint32_t i = 0; i < kept; i++) {
		memcpy(ids[i], blk->records[i]->id, TD_HASH_LEN);
		blk->records[i] = NULL; /* still owned by the mempool */
	}
	if (rc == 0) {
		char hex[2 * TD_HASH_LEN + 1];
		td_hex(hex, blk->hash, TD_HASH_LEN);
		log_info("committed block %llu (%s) with %u record%s", (unsigned long long)height, hex, kept,
			 kept == 1 ? "" : "s");
		for (uint32_t i = 0; i < kept; i++)
			mempool_remove(n->mp, ids[i]);
		settle_waiters(n, NULL, 0, NULL);
	} else {
		log_error("block %llu refused by the chain: %s", (unsigned long long)height, err);
		if (kept == 1)
			drop_record(n, mempool_get(n->mp, ids[0]), err);
	}
	free(ids);
	td_block_free(blk);
	return rc == 0 ? (int)kept : -1;
}

/* Commits what is pending; a refused block is retried record by record. */
static void produce(struct node *n)
{
	if (commit_block(n, 0) < 0)
		while (mempool_count(n->mp) > 0 && commit_block(n, 1) != 0)
			;
}

static void on_block_timer(uv_timer_t *t)
{
	struct node *n = t->data;
	produce(n);
	if (mempool_count(n->mp) > 0 && !n->stopping)
		uv_timer_start(&n->block_timer, on_block_timer, 0, 0);
}

static void schedule_block(struct node *n)
{
	if (!sole_validator(n) || n->stopping || mempool_count(n->mp) == 0 || uv_is_active((uv_handle_t *)&n->block_timer))
		return;
	uv_timer_start(&n->block_timer, on_block_timer, n->cfg.block_delay_ms, 0);
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
	json_t *vals = json_array();

	for (uint32_t i = 0; i < n->genesis.n; i++) {
		td_hex(pk, n->genesis.v[i].pk, TD_PUBKEY_LEN);
		json_array_append_new(vals, json_pack("{s:o, s:s, s:s}", "index", td_json_uint(i), "name",
						      n->genesis.v[i].name, "pub_key", pk));
	}
	td_hex(hash, chain_last_hash(n->chain), TD_HASH_LEN);
	td_hex(pk, n->pk, TD_PUBKEY_LEN);
	td_time_iso(ts, chain_last_time(n->chain));
	json_t *res = json_pack("{s:s, s:s, s:{s:s, s:s, s:b}, s:o, s:s, s:s, s:o, s:o, s:o, s:[], s:o, s:b}",
				"version", TENDERD_VERSION, "chain_id", n->genesis.chain_id, "node", "name",
				n->cfg.name, "pub_key", pk, "validator", n->my_index >= 0, "height",
				td_json_uint(chain_height(n->chain)), "last_block_hash", hash, "last_block_time", ts,
				"records", td_json_uint(chain_record_count(n->chain)), "mempool",
				td_json_uint(mempool_count(n->mp)), "mempool_bytes", td_json_uint(mempool_bytes(n->mp)),
				"peers", "validators", vals, "catching_up", 0);
	rpc_reply(req, res);
}

static void m_publish(struct node *n, struct rpc_req *req, json_t *params)
{
	const json_t *jkind = json_object_get(params, "kind"), *release = json_object_get(params, "release");
	const json_t *jocid = json_object_get(params, "ocid"), *jwait = json_object_get(params, "wait");
	enum td_kind kind = TD_KIND_TENDER;
	struct td_record *rec = NULL;
	json_t *full = NULL;
	char err[TD_ERRMSG_MAX];
	uint64_t now = wall_ms();
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
	if (now < chain_last_time(n->chain))
		now = chain_last_time(n->chain);
	full = td_release_build(release, kind, jocid ? json_string_value(jocid) : NULL, now, n->cfg.name, err,
				sizeof(err));
	if (!full) {
		rpc_error(req, TD_RPC_INVALID_RECORD, "%s", err);
		return;
	}
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
	log_info("accepted %s %s for %s (record %s)", td_kind_name(kind), rec->release_id, rec->ocid, hex);
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
	schedule_block(n);
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

static void m_list(struct node *n, struct rpc_req *req, json_t *params)
{
	uint64_t limit = 50;
	const json_t *cursor = json_object_get(params, "cursor");
	if (json_object_get(params, "limit") && (!param_u64(params, "limit", &limit) || limit < 1 || limit > 1000)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "limit must be a whole number from 1 to 1000");
		return;
	}
	if (cursor && !json_is_null(cursor) && !td_json_is_string(cursor)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "cursor must be a string from next_cursor");
		return;
	}
	json_t *res = chain_list_json(n->chain, (uint32_t)limit, td_json_is_string(cursor) ? json_string_value(cursor) : NULL);
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
	else
		rpc_error(req, TD_RPC_METHOD_NOT_FOUND, "unknown method %s", method);
}

/* ---- life cycle ---- */

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
	if (n->my_index < 0)
		log_warn("this node's key %s is not a validator in %s; it cannot publish", pk, GENESIS_FILE);
	else if (strcmp(n->genesis.v[n->my_index].name, cfg->name) != 0)
		log_warn("config name \"%s\" differs from this validator's genesis name \"%s\"", cfg->name,
			 n->genesis.v[n->my_index].name);
	if ((rc = chain_open(&n->chain, cfg->store_path, &n->genesis, err, errlen)))
		goto fail;
	n->mp = mempool_new(cfg->mempool_max_records, cfg->mempool_max_bytes);
	n->scratch = td_xcalloc(cfg->block_max_records, sizeof(*n->scratch));
	if ((rc = rpc_start(&n->rpc, loop, cfg->socket_path, on_request, n, err, errlen)))
		goto fail;
	uv_timer_init(loop, &n->block_timer);
	n->block_timer.data = n;
	uv_signal_init(loop, &n->sig_int);
	uv_signal_init(loop, &n->sig_term);
	n->sig_int.data = n->sig_term.data = n;
	uv_signal_start(&n->sig_int, on_signal, SIGINT);
	uv_signal_start(&n->sig_term, on_signal, SIGTERM);
	n->handles_open = true;

	log_info("tenderd %s: chain %s, ocid prefix %s, %u validator%s", TENDERD_VERSION, n->genesis.chain_id,
		 n->genesis.ocid_prefix, n->genesis.n, n->genesis.n == 1 ? "" : "s");
	log_info("validator %s (%s)%s", cfg->name, pk, n->my_index >= 0 ? "" : " [not in genesis]");
	log_info("store %s at height %llu with %llu records", cfg->store_path,
		 (unsigned long long)chain_height(n->chain), (unsigned long long)chain_record_count(n->chain));
	log_info("listening on %s", cfg->socket_path);
	if (n->genesis.n > 1)
		log_warn("genesis has %u validators: this build commits only on one-validator chains", n->genesis.n);
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
	/* A sole validator commits what it acknowledged before it goes. */
	if (sole_validator(n)) {
		while (mempool_count(n->mp) > 0) {
			uint32_t before = mempool_count(n->mp);
			produce(n);
			if (mempool_count(n->mp) >= before)
				break;
		}
	}
	while (n->waiters) {
		struct waiter *w = n->waiters;
		n->waiters = w->next;
		rpc_error(w->req, TD_RPC_SHUTTING_DOWN, "tenderd stopped before the record was committed");
		free(w);
	}
	if (mempool_count(n->mp) > 0)
		log_warn("%u pending records were not committed", mempool_count(n->mp));
	rpc_stop(n->rpc);
	n->rpc = NULL;
	if (n->handles_open) {
		uv_timer_stop(&n->block_timer);
		uv_close((uv_handle_t *)&n->block_timer, NULL);
		uv_close((uv_handle_t *)&n->sig_int, NULL);
		uv_close((uv_handle_t *)&n->sig_term, NULL);
		n->handles_open = false;
	}
}

void node_free(struct node *n)
{
	if (!n)
		return;
	if (n->rpc)
		rpc_stop(n->rpc);
	chain_close(n->chain);
	mempool_free(n->mp);
	td_genesis_free(&n->genesis);
	free(n->scratch);
	sodium_memzero(n->sk, sizeof(n->sk));
	free(n);
}
