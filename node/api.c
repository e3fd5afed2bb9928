/*
 * The socket API (see api.h). Owns the publishes waiting for their record,
 * the watch streams, the exports being streamed and the ring of recently
 * dropped records (their ids and reasons); every answer goes out through
 * rpc.h.
 *
 * An export (ledger.export) is a chain_export (a snapshot of the store taken
 * when the request came) whose text the rpc pulls a turn at a time
 * (rpc_stream_begin): at most API_EXPORT_PIECES_PER_TURN pieces or
 * API_EXPORT_TURN_BYTES bytes per turn, and only while the client reads, so
 * the loop keeps serving other clients and the consensus meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "evidence.h"
#include "log.h"
#include "registry.h"
#include "tenderd/governance.h"
#include "tenderd/json.h"

struct waiter {
	struct rpc_req *req;
	uint8_t id[TD_HASH_LEN];
	char ocid[TD_OCID_MAX + 1];
	char release_id[TD_ID_MAX + 1];
	struct waiter *next;
};

/* A tender.watch subscription: releases of blocks from next_height on are still to be sent. */
struct watcher {
	struct rpc_req *req;
	uint64_t next_height;
	struct watcher *next;
};

/* A ledger.export being streamed. */
struct exporter {
	struct api *a;
	struct rpc_req *req;
	struct chain_export *x; /* owned */
	struct chain_text text; /* one turn's text, reused */
	uint64_t from, to;
	uint64_t bytes; /* written so far */
	bool primed;    /* text holds the first turn's pieces, made before the answer began */
	int rc;         /* chain_export_next's last answer: 1 more to come, 0 done */
	struct exporter *prev, *next;
};

/* A record dropped from the mempool, remembered for record.status. */
struct dropped {
	uint8_t id[TD_HASH_LEN];
	uint64_t time_ms; /* wall clock when it was dropped */
	char *reason;     /* owned */
};

struct api {
	struct api_deps d;
	bool stopping;
	struct waiter *waiters;
	struct watcher *watchers;
	struct exporter *exporters;
	struct dropped *dropped; /* a ring of API_DROPPED_MAX entries, allocated at the first drop */
	uint32_t ndropped;       /* entries in use */
	uint32_t dropped_next;   /* the entry the next new drop takes (the oldest once the ring is full) */
};

struct api *api_new(const struct api_deps *deps)
{
	struct api *a = td_xcalloc(1, sizeof(*a));
	a->d = *deps;
	return a;
}

void api_free(struct api *a)
{
	if (!a)
		return;
	api_stop(a);
	for (uint32_t i = 0; i < a->ndropped; i++)
		free(a->dropped[i].reason);
	free(a->dropped);
	free(a);
}

static void export_free(struct exporter *e);
static void export_turn(void *arg, struct rpc_req *req);

void api_stop(struct api *a)
{
	a->stopping = true;
	while (a->exporters) {
		struct exporter *e = a->exporters;
		rpc_stream_abort(e->req);
		export_free(e);
	}
	while (a->waiters) {
		struct waiter *w = a->waiters;
		a->waiters = w->next;
		rpc_error(w->req, TD_RPC_SHUTTING_DOWN, "tenderd stopped before the record was committed");
		free(w);
	}
	while (a->watchers) {
		struct watcher *w = a->watchers;
		a->watchers = w->next;
		rpc_error(w->req, TD_RPC_SHUTTING_DOWN, "tenderd is stopping");
		free(w);
	}
}

/* The JSON-RPC error code for a TD_E* refusal of a record. */
static int rpc_code(int rc)
{
	switch (rc) {
	case TD_EEXIST: return TD_RPC_DUPLICATE;
	case TD_EPERM:
	case TD_ERULE: return TD_RPC_RULE;
	case TD_EFULL: return TD_RPC_MEMPOOL_FULL;
	case TD_EINVAL:
	case TD_ESIG: return TD_RPC_INVALID_RECORD;
	case TD_ENOTFOUND: return TD_RPC_NOT_FOUND;
	case TD_ENOMEM:
	case TD_EIO:
	case TD_ECORRUPT: return TD_RPC_INTERNAL;
	}
	return TD_RPC_INTERNAL;
}

/*
 * Answers req with TD_RPC_INTERNAL if a chain query failed for the store
 * (TD_EIO, TD_ECORRUPT: the chain has logged it) and returns true; false
 * for TD_ENOTFOUND and TD_EINVAL, which the caller answers as not found and
 * invalid params.
 */
static bool store_error(struct rpc_req *req, int rc)
{
	if (rc == TD_ENOTFOUND || rc == TD_EINVAL)
		return false;
	rpc_error(req, TD_RPC_INTERNAL, "store error: %s (see the node's log)", td_strerror(rc));
	return true;
}

/* ---- waiting publishes ---- */

static json_t *publish_result(const uint8_t id[static TD_HASH_LEN], const char *ocid, const char *release_id)
{
	char hex[2 * TD_HASH_LEN + 1];
	td_hex(hex, id, TD_HASH_LEN);
	return json_pack("{s:s, s:s, s:s}", "id", hex, "ocid", ocid, "release_id", release_id);
}

/* Answers a publish of rec now, or once rec is committed (or dropped) when wait is set. */
static void answer_or_wait(struct api *a, struct rpc_req *req, const struct td_record *rec, bool wait)
{
	if (!wait) {
		rpc_reply(req, publish_result(rec->id, rec->ocid, rec->release_id));
		return;
	}
	struct waiter *w = td_xcalloc(1, sizeof(*w));
	w->req = req;
	memcpy(w->id, rec->id, TD_HASH_LEN);
	memcpy(w->ocid, rec->ocid, sizeof(w->ocid));
	memcpy(w->release_id, rec->release_id, sizeof(w->release_id));
	w->next = a->waiters;
	a->waiters = w;
}

/* Answers every waiter whose record is committed, or the one refused with msg (id given). */
static void settle_waiters(struct api *a, const uint8_t *refused_id, int code, const char *msg)
{
	struct waiter **p = &a->waiters;
	while (*p) {
		struct waiter *w = *p;
		uint64_t height;
		if (refused_id && memcmp(w->id, refused_id, TD_HASH_LEN) == 0) {
			rpc_error(w->req, code, "%s", msg);
		} else if (!refused_id && chain_has_record(a->d.chain, w->id, &height)) {
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

/* The remembered drop of record id, or NULL. */
static struct dropped *find_dropped(const struct api *a, const uint8_t id[static TD_HASH_LEN])
{
	for (uint32_t i = 0; i < a->ndropped; i++)
		if (memcmp(a->dropped[i].id, id, TD_HASH_LEN) == 0)
			return &a->dropped[i];
	return NULL;
}

/*
 * Remembers that record id was dropped for reason msg (copied); a record
 * dropped again (pooled anew from a peer) keeps one entry, with the latest
 * reason. Once API_DROPPED_MAX records are remembered, the oldest is forgotten.
 */
static void remember_dropped(struct api *a, const uint8_t id[static TD_HASH_LEN], const char *msg)
{
	struct dropped *e = NULL;
	if (!a->dropped)
		a->dropped = td_xcalloc(API_DROPPED_MAX, sizeof(*a->dropped));
	else
		e = find_dropped(a, id);
	if (!e) {
		e = &a->dropped[a->dropped_next];
		a->dropped_next = (a->dropped_next + 1) % API_DROPPED_MAX;
		if (a->ndropped < API_DROPPED_MAX)
			a->ndropped++;
		memcpy(e->id, id, TD_HASH_LEN);
	}
	if (!msg || !msg[0])
		msg = "no reason given";
	size_t len = strlen(msg);
	free(e->reason);
	e->reason = td_xmalloc(len + 1);
	memcpy(e->reason, msg, len + 1);
	e->time_ms = a->d.io->wall_ms(a->d.io->ctx);
}

void api_on_dropped(struct api *a, const uint8_t id[static TD_HASH_LEN], const char *msg)
{
	remember_dropped(a, id, msg);
	settle_waiters(a, id, TD_RPC_RULE, msg);
}

/* ---- watch streams ---- */

/*
 * Sends each watcher the releases of the blocks it has not seen, a few
 * blocks per turn and only while its client keeps reading; comes back by
 * timer while any watcher is behind. A watcher whose client left is
 * answered (which frees the request) and forgotten.
 */
void api_pump(struct api *a)
{
	const struct node_io *io = a->d.io;
	uint64_t top = chain_height(a->d.chain);
	bool behind = false, blocked = false;
	struct watcher **p = &a->watchers;
	while (*p) {
		struct watcher *w = *p;
		if (!rpc_req_alive(w->req) || a->stopping) {
			rpc_error(w->req, TD_RPC_SHUTTING_DOWN, "watch ended");
			*p = w->next;
			free(w);
			continue;
		}
		int rc = 0;
		for (int k = 0; k < API_WATCH_BLOCKS_PER_TURN && w->next_height <= top; k++) {
			if (rpc_req_queued(w->req) > API_WATCH_QUEUE_MAX) {
				blocked = true;
				break;
			}
			json_t *rels;
			rc = chain_block_releases_json(a->d.chain, w->next_height, &rels);
			if (rc != 0)
				break;
			size_t i;
			json_t *rel;
			json_array_foreach(rels, i, rel)
				rpc_notify(w->req, "tender.release", json_incref(rel));
			json_decref(rels);
			w->next_height++;
		}
		if (rc != 0) {
			/* a block the chain cannot read: end the watch rather than skip the block */
			rpc_error(w->req, TD_RPC_INTERNAL, "store error: %s reading block %llu (see the node's log)",
				  td_strerror(rc), (unsigned long long)w->next_height);
			*p = w->next;
			free(w);
			continue;
		}
		if (w->next_height <= top)
			behind = true;
		p = &w->next;
	}
	if ((behind || blocked) && !a->stopping && !io->timer_pending(io->ctx, NODE_TIMER_WATCH))
		io->timer(io->ctx, NODE_TIMER_WATCH, blocked ? 20 : 0);
}

void api_on_commit(struct api *a)
{
	settle_waiters(a, NULL, 0, NULL);
	api_pump(a);
}

/* ---- methods ---- */

/* "validator", "member" or "observer": this node's role in the genesis. */
static const char *my_role(const struct api_deps *n)
{
	const struct registry *r = chain_registry(n->chain);
	int i = registry_find(r, n->pk);
	enum td_role role;
	if (i < 0 || registry_role(r, (uint32_t)i, chain_height(n->chain) + 1, &role) != 0)
		return "none";
	return td_role_name(role);
}

/*
 * chain.members: {"height", "validators", "members", "observers"}, each
 * [{"name", "pub_key", "self", "connected"}], the parties with a role at the
 * next height; validators in proposer order.
 */
static void m_members(struct api *a, struct rpc_req *req, json_t *params)
{
	const struct api_deps *n = &a->d;
	const struct registry *r = chain_registry(n->chain);
	uint64_t h = chain_height(n->chain) + 1;
	const struct registry_set *s = registry_set(r, h);
	json_t *lists[3] = { json_array(), json_array(), json_array() };
	char pk[2 * TD_PUBKEY_LEN + 1];

	(void)params;
	for (uint32_t k = 0; k < s->n + registry_slots(r); k++) {
		uint32_t i = k < s->n ? s->slot[k] : k - s->n;
		enum td_role role;
		if (registry_role(r, i, h, &role) != 0 || (k >= s->n && role == TD_ROLE_VALIDATOR))
			continue;
		const struct td_validator *p = registry_party(r, i);
		bool self = memcmp(p->pk, n->pk, TD_PUBKEY_LEN) == 0;
		td_hex(pk, p->pk, TD_PUBKEY_LEN);
		json_array_append_new(lists[role],
				      json_pack("{s:s, s:s, s:b, s:b}", "name", p->name, "pub_key", pk, "self", self,
						"connected", !self && n->io->connected(n->io->ctx, i)));
	}
	rpc_reply(req, json_pack("{s:o, s:o, s:o, s:o}", "height", td_json_uint(h), "validators", lists[0], "members",
				 lists[1], "observers", lists[2]));
}

/* chain.validators {height}: the set that signs height (default the next), with its hash. */
static void m_validators(struct api *a, struct rpc_req *req, json_t *params)
{
	const struct api_deps *n = &a->d;
	const struct registry *r = chain_registry(n->chain);
	uint64_t h = chain_height(n->chain) + 1;
	const json_t *jh = json_object_get(params, "height");
	char pk[2 * TD_PUBKEY_LEN + 1], hash[2 * TD_HASH_LEN + 1];

	if (jh && (!td_json_number_u64(jh, &h) || h == 0)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "height must be a positive integer");
		return;
	}
	const struct registry_set *s = registry_set(r, h);
	if (!s) {
		rpc_error(req, TD_RPC_NOT_FOUND, "the set of height %llu is not known yet (the chain is at %llu)",
			  (unsigned long long)h, (unsigned long long)chain_height(n->chain));
		return;
	}
	json_t *vals = json_array();
	for (uint32_t i = 0; i < s->n; i++) {
		td_hex(pk, s->v[i].pk, TD_PUBKEY_LEN);
		json_array_append_new(vals, json_pack("{s:o, s:s, s:s}", "index", td_json_uint(i), "name", s->v[i].name,
						      "pub_key", pk));
	}
	td_hex(hash, s->hash, TD_HASH_LEN);
	rpc_reply(req, json_pack("{s:o, s:o, s:s, s:o}", "height", td_json_uint(h), "since", td_json_uint(s->from),
				 "hash", hash, "validators", vals));
}

static json_t *proposal_json(const struct registry_proposal *p)
{
	char hex[2 * TD_HASH_LEN + 1];
	json_t *o = json_object(), *ap = json_array();

	td_hex(hex, p->id, TD_HASH_LEN);
	json_object_set_new(o, "id", json_string(hex));
	json_object_set_new(o, "action", json_string(registry_action_name(p->change.action)));
	if (p->change.action == REGISTRY_ADD) {
		json_object_set_new(o, "role", json_string(td_role_name(p->change.role)));
		json_object_set_new(o, "name", json_string(p->change.name));
	}
	td_hex(hex, p->change.key, TD_PUBKEY_LEN);
	json_object_set_new(o, "pub_key", json_string(hex));
	if (p->change.action == REGISTRY_REPLACE_KEY) {
		td_hex(hex, p->change.new_key, TD_PUBKEY_LEN);
		json_object_set_new(o, "new_pub_key", json_string(hex));
	}
	td_hex(hex, p->author, TD_PUBKEY_LEN);
	json_object_set_new(o, "proposed_by", json_string(hex));
	json_object_set_new(o, "height", td_json_uint(p->height));
	json_object_set_new(o, "expires_after", td_json_uint(p->height + REGISTRY_PROPOSAL_TTL));
	json_object_set_new(o, "status", json_string(registry_status_name(p->status)));
	for (uint32_t i = 0; i < p->n_approvals; i++) {
		td_hex(hex, p->approvers[i], TD_PUBKEY_LEN);
		json_array_append_new(ap, json_string(hex));
	}
	json_object_set_new(o, "approvals", ap);
	if (p->status == REGISTRY_DECIDED || p->status == REGISTRY_REJECTED)
		json_object_set_new(o, "decided_height", td_json_uint(p->decided_height));
	if (p->status == REGISTRY_DECIDED)
		json_object_set_new(o, "effect_height", td_json_uint(p->effect_height));
	if (p->status == REGISTRY_REJECTED)
		json_object_set_new(o, "reason", json_string(p->reason));
	return o;
}

/* gov.proposals: every proposal kept, newest first. */
static void m_proposals(struct api *a, struct rpc_req *req, json_t *params)
{
	uint32_t np;
	const struct registry_proposal *p = registry_proposals(chain_registry(a->d.chain), &np);
	json_t *arr = json_array();

	(void)params;
	for (uint32_t i = np; i-- > 0;)
		json_array_append_new(arr, proposal_json(&p[i]));
	rpc_reply(req, json_pack("{s:o}", "proposals", arr));
}

/* Reads a 32-byte hex parameter into out; false (and an error sent) otherwise. */
static bool param_hex32(struct rpc_req *req, const json_t *params, const char *key, uint8_t out[static 32])
{
	const json_t *v = json_object_get(params, key);
	if (!td_json_is_string(v) || !td_unhex(out, 32, json_string_value(v), json_string_length(v))) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "%s must be 64 hex digits", key);
		return false;
	}
	return true;
}

static void submit_gov(struct api *a, struct rpc_req *req, const struct td_gov *g, const char *rationale, bool wait);

/*
 * gov.propose {action: add|remove|replace-key, role, name (add), pub_key,
 * new_pub_key (replace-key), rationale, wait}: a governance proposal signed
 * by this node, a validator.
 */
static void m_propose(struct api *a, struct rpc_req *req, json_t *params)
{
	struct td_gov g = { .kind = TD_KIND_GOV_PROPOSAL };
	const json_t *jaction = json_object_get(params, "action"), *jrole = json_object_get(params, "role");
	const json_t *jname = json_object_get(params, "name"), *jrat = json_object_get(params, "rationale");
	const json_t *jwait = json_object_get(params, "wait");
	static const char *roles[] = { "validator", "member", "observer" };

	for (int k = TD_GOV_ADD; td_json_is_string(jaction) && k <= TD_GOV_REPLACE_KEY; k++)
		if (strcmp(json_string_value(jaction), td_gov_action_name((enum td_gov_action)k)) == 0)
			g.action = (enum td_gov_action)k;
	if (g.action == 0) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "action must be add, remove or replace-key");
		return;
	}
	if (!param_hex32(req, params, "pub_key", g.pub_key))
		return;
	if (g.action == TD_GOV_ADD) {
		int role = -1;
		for (int k = 0; td_json_is_string(jrole) && k < 3; k++)
			if (strcmp(json_string_value(jrole), roles[k]) == 0)
				role = k;
		if (role < 0) {
			rpc_error(req, TD_RPC_INVALID_PARAMS, "role must be validator, member or observer");
			return;
		}
		if (!td_json_is_string(jname) || json_string_length(jname) == 0 ||
		    json_string_length(jname) > TD_NAME_MAX) {
			rpc_error(req, TD_RPC_INVALID_PARAMS, "name must be a string of 1..%d bytes", TD_NAME_MAX);
			return;
		}
		g.role = (enum td_role)role;
		memcpy(g.name, json_string_value(jname), json_string_length(jname));
	}
	if (g.action == TD_GOV_REPLACE_KEY && !param_hex32(req, params, "new_pub_key", g.new_pub_key))
		return;
	if (jrat && (!td_json_is_string(jrat) || json_string_length(jrat) > TD_GOV_RATIONALE_MAX)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "rationale must be a string of at most %d bytes",
			  TD_GOV_RATIONALE_MAX);
		return;
	}
	submit_gov(a, req, &g, jrat ? json_string_value(jrat) : NULL, json_is_true(jwait));
}

/* gov.approve {proposal: record id, wait}: this validator's approval. */
static void m_approve(struct api *a, struct rpc_req *req, json_t *params)
{
	struct td_gov g = { .kind = TD_KIND_GOV_APPROVAL };
	if (!param_hex32(req, params, "proposal", g.proposal))
		return;
	submit_gov(a, req, &g, NULL, json_is_true(json_object_get(params, "wait")));
}

static void m_status(struct api *a, struct rpc_req *req, json_t *params)
{
	char hash[2 * TD_HASH_LEN + 1], pk[2 * TD_PUBKEY_LEN + 1], ts[32];
	json_t *vals = json_array(), *evid = json_array();
	uint32_t nevid = 0;
	const struct api_deps *n = &a->d;
	const struct cons *cons = driver_cons(n->driver);
	const struct cons_evidence *ev = cons_evidence(cons, &nevid);
	uint64_t top = sync_top(n->sync), sent, received;

	for (uint32_t i = 0; i < n->genesis->n; i++) {
		td_hex(pk, n->genesis->v[i].pk, TD_PUBKEY_LEN);
		json_array_append_new(vals, json_pack("{s:o, s:s, s:s, s:o}", "index", td_json_uint(i), "name",
						      n->genesis->v[i].name, "pub_key", pk, "missed_proposals",
						      td_json_uint(cons_missed_proposals(cons, i))));
	}
	for (uint32_t i = 0; i < nevid; i++) {
		char ha[2 * TD_HASH_LEN + 1], hb[2 * TD_HASH_LEN + 1];
		td_hex(ha, ev[i].a, TD_HASH_LEN);
		td_hex(hb, ev[i].b, TD_HASH_LEN);
		json_array_append_new(evid,
				      json_pack("{s:o, s:s, s:o, s:o, s:s, s:s, s:s}", "validator",
						td_json_uint(ev[i].validator), "name",
						n->genesis->v[ev[i].validator].name, "height",
						td_json_uint(ev[i].height), "round", td_json_uint(ev[i].round), "kind",
						ev[i].kind == CONS_STEP_PROPOSE ? "proposal" :
						ev[i].kind == CONS_STEP_PREVOTE ? "prevote" :
										  "precommit",
						"first", ev[i].nil_a ? "nil" : ha, "second", ev[i].nil_b ? "nil" : hb));
	}
	uint64_t h = chain_height(n->chain);
	n->io->traffic(n->io->ctx, &sent, &received);
	td_hex(hash, chain_last_hash(n->chain), TD_HASH_LEN);
	td_hex(pk, n->pk, TD_PUBKEY_LEN);
	td_time_iso(ts, chain_last_time(n->chain));
	json_t *res = json_pack(
		"{s:s, s:s, s:{s:s, s:s, s:b, s:s}, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:{s:o, s:o, s:s}, "
		"s:{s:o, s:o, s:o, s:o}}",
		"version", TENDERD_VERSION, "chain_id", n->genesis->chain_id, "node", "name", n->cfg->name, "pub_key",
		pk, "validator", driver_my_index(n->driver) >= 0, "role", my_role(n), "height", td_json_uint(h),
		"last_block_hash", hash, "last_block_time", ts, "records", td_json_uint(chain_record_count(n->chain)),
		"mempool", td_json_uint(mempool_count(n->mp)), "mempool_bytes", td_json_uint(mempool_bytes(n->mp)),
		"peers", n->io->peers_json(n->io->ctx), "validators", vals, "catching_up",
		sync_busy(n->sync) || top > h + 1, "sync_target", td_json_uint(top > h ? top : h), "consensus",
		"height", td_json_uint(cons_started(cons) ? cons_height(cons) : h + 1), "round",
		td_json_uint(cons_started(cons) ? cons_round(cons) : 0), "step",
		!cons_started(cons)                  ? "idle" :
		cons_step(cons) == CONS_STEP_PROPOSE ? "propose" :
		cons_step(cons) == CONS_STEP_PREVOTE ? "prevote" :
						       "precommit",
		"p2p", "bytes_sent", td_json_uint(sent), "bytes_received", td_json_uint(received), "records_received",
		td_json_uint(gossip_records_received(n->gossip)), "records_refused",
		td_json_uint(gossip_records_refused(n->gossip)));
	json_object_set_new(res, "evidence", evid);
	json_object_set_new(res, "mempool_memory", td_json_uint(mempool_mem(n->mp)));
	{
		char gh[2 * TD_HASH_LEN + 1];
		td_hex(gh, n->genesis->hash, TD_HASH_LEN);
		json_object_set_new(res, "ocid_prefix", json_string(n->genesis->ocid_prefix));
		json_object_set_new(res, "genesis_hash", json_string(gh));
		json_object_set_new(res, "format", json_integer(TD_FORMAT_VERSION));
	}
	rpc_reply(req, res);
}

/*
 * Points each amendment of an amendment release at what it amends: the
 * tender's latest committed release (amendsReleaseID) and this release
 * (releaseID), where the agency left them out.
 */
static void link_amendments(struct api *a, json_t *full)
{
	char last[TD_ID_MAX + 1];
	const json_t *ocid = json_object_get(full, "ocid"), *id = json_object_get(full, "id");
	json_t *amends = json_object_get(json_object_get(full, "tender"), "amendments");
	size_t i;
	json_t *am;
	if (!td_json_is_string(ocid) || chain_last_release_id(a->d.chain, json_string_value(ocid), last) != 0)
		return;
	json_array_foreach(amends, i, am) {
		if (!json_is_object(am))
			continue;
		if (!json_object_get(am, "amendsReleaseID"))
			json_object_set_new(am, "amendsReleaseID", json_string(last));
		if (!json_object_get(am, "releaseID") && td_json_is_string(id))
			json_object_set_new(am, "releaseID", json_string(json_string_value(id)));
	}
}

static void m_publish(struct api *a, struct rpc_req *req, json_t *params)
{
	const json_t *jkind = json_object_get(params, "kind"), *release = json_object_get(params, "release");
	const json_t *jocid = json_object_get(params, "ocid"), *jwait = json_object_get(params, "wait");
	const json_t *jdate = json_object_get(params, "date"); /* an imported release keeps its own date */
	enum td_kind kind = TD_KIND_TENDER;
	struct td_record *rec = NULL;
	json_t *full = NULL;
	char err[TD_ERRMSG_MAX];
	const struct api_deps *n = &a->d;
	uint64_t now = driver_ledger_now(n->driver);
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
	if (jdate &&
	    (!td_json_is_string(jdate) || !td_iso_valid(json_string_value(jdate), json_string_length(jdate)))) {
		rpc_error(req, TD_RPC_INVALID_PARAMS,
			  "date must be an ISO 8601 date-time with seconds and a zone (2020-03-09T09:00:00+09:00)");
		return;
	}
	const char *role = my_role(n);
	if (strcmp(role, "validator") != 0 && strcmp(role, "member") != 0) {
		if (strcmp(role, "observer") == 0)
			rpc_error(req, TD_RPC_RULE,
				  "this node is an observer of chain %s: it follows the chain read-only; publish on a "
				  "validator's or member's node",
				  n->genesis->chain_id);
		else
			rpc_error(req, TD_RPC_RULE,
				  "this node's key is no validator or member of chain %s now: only they publish",
				  n->genesis->chain_id);
		return;
	}
	/* a full pool is said before the release is built and signed: publishers retry at once under load */
	if (mempool_full(n->mp, err, sizeof(err))) {
		rpc_error(req, rpc_code(TD_EFULL), "%s", err);
		return;
	}
	full = td_release_build_dated(release, kind, jocid ? json_string_value(jocid) : NULL, now,
				      jdate ? json_string_value(jdate) : NULL, jdate ? json_string_length(jdate) : 0,
				      n->cfg->name, err, sizeof(err));
	if (!full) {
		rpc_error(req, TD_RPC_INVALID_RECORD, "%s", err);
		return;
	}
	if (kind == TD_KIND_AMENDMENT)
		link_amendments(a, full);
	/* Chained after the tender's latest committed record; with no such tender the lifecycle check refuses it. */
	uint8_t prev[TD_HASH_LEN] = { 0 };
	if (kind != TD_KIND_TENDER) {
		rc = chain_tender_last(n->chain, json_string_value(json_object_get(full, "ocid")), prev);
		if (rc != 0 && rc != TD_ENOTFOUND) {
			rpc_error(req, TD_RPC_INTERNAL, "cannot read the tender's state: %s", td_strerror(rc));
			json_decref(full);
			return;
		}
	}
	rc = td_record_sign(&rec, kind, full, now, kind == TD_KIND_TENDER ? NULL : prev, n->genesis->hash, n->sk, err,
			    sizeof(err));
	json_decref(full);
	if (rc) {
		rpc_error(req, TD_RPC_INVALID_RECORD, "%s", err);
		return;
	}
	if ((rc = n->submit(n->ctx, rec, err, sizeof(err))) != 0) {
		td_record_free(rec);
		rpc_error(req, rpc_code(rc), "%s", err);
		return;
	}
	char hex[2 * TD_HASH_LEN + 1];
	uint32_t uid;
	int32_t pid;
	td_hex(hex, rec->id, TD_HASH_LEN);
	/* Who published what, for the agency's own audit: the socket client's uid and pid. */
	if (rpc_req_peer(req, &uid, &pid))
		log_info("published %s %s for %s (record %s) from uid %u pid %d", td_kind_name(kind), rec->release_id,
			 rec->ocid, hex, uid, pid);
	else
		log_info("published %s %s for %s (record %s) from an unknown client", td_kind_name(kind),
			 rec->release_id, rec->ocid, hex);
	answer_or_wait(a, req, rec, jwait && json_is_true(jwait));
}

static void submit_gov(struct api *a, struct rpc_req *req, const struct td_gov *g, const char *rationale, bool wait)
{
	const struct api_deps *n = &a->d;
	uint64_t now = driver_ledger_now(n->driver);
	char ocid[TD_OCID_MAX + sizeof(TD_GOV_OCID_SUFFIX)], id[TD_ID_MAX + 1], date[40], err[TD_ERRMSG_MAX];
	struct td_record *rec = NULL;
	int rc;

	if (driver_my_index(n->driver) < 0) {
		rpc_error(req, TD_RPC_RULE, "only a validator proposes or approves changes to the chain's parties");
		return;
	}
	snprintf(ocid, sizeof(ocid), "%s%s", n->genesis->ocid_prefix, TD_GOV_OCID_SUFFIX);
	snprintf(id, sizeof(id), "%s-%llu", g->kind == TD_KIND_GOV_PROPOSAL ? "proposal" : "approval",
		 (unsigned long long)now);
	td_time_iso(date, now);
	json_t *body = td_gov_body(g, ocid, id, date, rationale);
	rc = td_record_sign(&rec, g->kind, body, now, NULL, n->genesis->hash, n->sk, err, sizeof(err));
	json_decref(body);
	if (rc) {
		rpc_error(req, TD_RPC_INVALID_RECORD, "%s", err);
		return;
	}
	if ((rc = n->submit(n->ctx, rec, err, sizeof(err))) != 0) {
		td_record_free(rec);
		rpc_error(req, rpc_code(rc), "%s", err);
		return;
	}
	char hex[2 * TD_HASH_LEN + 1];
	td_hex(hex, rec->id, TD_HASH_LEN);
	log_info("governance: %s %s (record %s)", td_kind_name(g->kind),
		 g->kind == TD_KIND_GOV_PROPOSAL ? td_gov_action_name(g->action) : "", hex);
	answer_or_wait(a, req, rec, wait);
}

static bool param_u64(const json_t *params, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(params, key);
	return v && td_json_number_u64(v, out);
}

static void m_get(struct api *a, struct rpc_req *req, json_t *params)
{
	const struct api_deps *n = &a->d;
	const json_t *ocid = json_object_get(params, "ocid");
	if (!td_json_is_string(ocid)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "ocid must be a string");
		return;
	}
	json_t *res;
	int rc = chain_tender_json(n->chain, json_string_value(ocid), &res);
	if (rc != 0) {
		if (!store_error(req, rc))
			rpc_error(req, TD_RPC_NOT_FOUND, "no tender with ocid %s", json_string_value(ocid));
		return;
	}
	rpc_reply(req, res);
}

/* Reads an optional string parameter; false (and an error sent) if present but not a string. */
static bool opt_str(struct rpc_req *req, const json_t *params, const char *key, const char **out)
{
	const json_t *v = json_object_get(params, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!td_json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 128) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "%s must be a non-empty string", key);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

/*
 * A date bound for list: YYYY-MM-DD (passed on as it is: the chain takes it
 * as the whole of that UTC day) or a full ISO 8601 time.
 */
static bool date_param(const char *s, char out[static 40])
{
	size_t len = strlen(s);
	if (len == 10) {
		snprintf(out, 40, "%sT00:00:00Z", s);
		if (!td_iso_valid(out, strlen(out)))
			return false;
		memcpy(out, s, len + 1);
		return true;
	}
	if (len >= 40 || !td_iso_valid(s, len))
		return false;
	memcpy(out, s, len + 1);
	return true;
}

static void m_list(struct api *a, struct rpc_req *req, json_t *params)
{
	const struct api_deps *n = &a->d;
	uint64_t limit = 50;
	const json_t *cursor = json_object_get(params, "cursor");
	struct chain_filter f = { 0 };
	const char *agency, *since, *until;
	uint8_t pk[TD_PUBKEY_LEN];
	char since_buf[40], until_buf[40];

	if (!opt_str(req, params, "agency", &agency) || !opt_str(req, params, "status", &f.status) ||
	    !opt_str(req, params, "category", &f.category) || !opt_str(req, params, "method", &f.method) ||
	    !opt_str(req, params, "since", &since) || !opt_str(req, params, "until", &until))
		return;
	if (agency) {
		int v = -1;
		if (td_unhex(pk, TD_PUBKEY_LEN, agency, strlen(agency)))
			v = td_genesis_find_party(n->genesis, pk);
		for (uint32_t i = 0; v < 0 && i < td_genesis_parties(n->genesis); i++)
			if (strcmp(td_genesis_party(n->genesis, i)->name, agency) == 0)
				v = (int)i;
		if (v < 0) {
			rpc_error(req, TD_RPC_INVALID_PARAMS,
				  "agency \"%s\" is not the name or key of a validator or member of this chain",
				  agency);
			return;
		}
		memcpy(pk, td_genesis_party(n->genesis, (uint32_t)v)->pk, TD_PUBKEY_LEN);
		f.agency = pk;
	}
	if ((since && !date_param(since, since_buf)) || (until && !date_param(until, until_buf))) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "since and until take a date (2020-03-01) or an ISO 8601 time");
		return;
	}
	f.since = since ? since_buf : NULL;
	f.until = until ? until_buf : NULL;
	if (json_object_get(params, "limit") && (!param_u64(params, "limit", &limit) || limit < 1 || limit > 1000)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "limit must be a whole number from 1 to 1000");
		return;
	}
	if (cursor && !json_is_null(cursor) && !td_json_is_string(cursor)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "cursor must be a string from next_cursor");
		return;
	}
	json_t *res;
	int rc = chain_list_json(n->chain, &f, (uint32_t)limit,
				 td_json_is_string(cursor) ? json_string_value(cursor) : NULL, &res);
	if (rc != 0) {
		if (!store_error(req, rc))
			rpc_error(req, TD_RPC_INVALID_PARAMS, "cursor is not a next_cursor from an earlier answer");
		return;
	}
	rpc_reply(req, res);
}

static void m_block(struct api *a, struct rpc_req *req, json_t *params)
{
	const struct api_deps *n = &a->d;
	uint64_t height;
	if (!param_u64(params, "height", &height)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "height must be a whole number");
		return;
	}
	json_t *res;
	int rc = chain_block_json(n->chain, height, &res);
	if (rc != 0) {
		if (!store_error(req, rc))
			rpc_error(req, TD_RPC_NOT_FOUND, "no block at height %llu (the chain is at %llu)",
				  (unsigned long long)height, (unsigned long long)chain_height(n->chain));
		return;
	}
	rpc_reply(req, res);
}

/* A tender's proof (tenderd/proof.h): everything needed to check its history offline. */
static void m_proof(struct api *a, struct rpc_req *req, json_t *params)
{
	const json_t *ocid = json_object_get(params, "ocid");
	json_t *res;
	if (!td_json_is_string(ocid)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "ocid must be a string");
		return;
	}
	int rc = chain_proof_json(a->d.chain, json_string_value(ocid), &res);
	if (rc == TD_ERULE) {
		rpc_error(req, TD_RPC_RULE,
			  "tender %s has releases in blocks signed by a validator set other than the genesis one; "
			  "proofs do not carry validator set changes yet",
			  json_string_value(ocid));
		return;
	}
	if (rc != 0) {
		if (!store_error(req, rc))
			rpc_error(req, TD_RPC_NOT_FOUND, "no tender %s on the ledger", json_string_value(ocid));
		return;
	}
	rpc_reply(req, res);
}

static void m_watch(struct api *a, struct rpc_req *req, json_t *params)
{
	const struct api_deps *n = &a->d;
	uint64_t from = chain_height(n->chain) + 1;
	if (json_object_get(params, "from_height") && (!param_u64(params, "from_height", &from) || from < 1)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "from_height must be a whole number from 1");
		return;
	}
	struct watcher *w = td_xcalloc(1, sizeof(*w));
	w->req = req;
	w->next_height = from;
	w->next = a->watchers;
	a->watchers = w;
	log_debug("watch from height %llu", (unsigned long long)from);
	api_pump(a);
}

static void m_export(struct api *a, struct rpc_req *req, json_t *params)
{
	const struct api_deps *n = &a->d;
	uint64_t from = 1, to = chain_height(n->chain);
	const json_t *records = json_object_get(params, "records");
	char uri[256];
	if ((json_object_get(params, "from") && !param_u64(params, "from", &from)) ||
	    (json_object_get(params, "to") && !param_u64(params, "to", &to)) ||
	    (records && !json_is_boolean(records))) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "from and to must be block heights, records true or false");
		return;
	}
	if (from >= 1 && to >= from && to - from >= API_EXPORT_BLOCKS_MAX) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "export at most %u blocks at a time (from..to)",
			  API_EXPORT_BLOCKS_MAX);
		return;
	}
	if (from < 1 || from > to || to > chain_height(n->chain)) {
		rpc_error(req, TD_RPC_NOT_FOUND, "no blocks %llu..%llu (the chain is at %llu)",
			  (unsigned long long)from, (unsigned long long)to, (unsigned long long)chain_height(n->chain));
		return;
	}
	snprintf(uri, sizeof(uri), "tenderd://%s/%s?from=%llu&to=%llu", n->genesis->chain_id,
		 json_is_true(records) ? "records" : "releases", (unsigned long long)from, (unsigned long long)to);
	struct chain_export *x;
	int rc = chain_export_new(&x, n->chain, from, to, json_is_true(records), n->cfg->name, uri);
	if (rc != 0) {
		if (!store_error(req, rc))
			rpc_error(req, TD_RPC_NOT_FOUND, "no blocks %llu..%llu (the chain is at %llu)",
				  (unsigned long long)from, (unsigned long long)to,
				  (unsigned long long)chain_height(n->chain));
		return;
	}
	if (chain_export_empty(x)) {
		/* The OCDS package schemas require at least one release or record. */
		chain_export_free(x);
		rpc_error(req, TD_RPC_NOT_FOUND, "blocks %llu..%llu hold no releases", (unsigned long long)from,
			  (unsigned long long)to);
		return;
	}
	struct exporter *e = td_xcalloc(1, sizeof(*e));
	e->a = a;
	e->req = req;
	e->x = x;
	e->from = from;
	e->to = to;
	/*
	 * The first turn's pieces are made before the answer begins: a store
	 * error there (a damaged first block) still gets an error answer
	 * instead of a line cut short.
	 */
	e->rc = 1;
	for (int k = 0; k < API_EXPORT_PIECES_PER_TURN && e->text.len < API_EXPORT_TURN_BYTES && e->rc == 1; k++)
		e->rc = chain_export_next(e->x, &e->text);
	if (e->rc < 0) {
		log_error("export of blocks %llu..%llu: store error: %s", (unsigned long long)from,
			  (unsigned long long)to, td_strerror(e->rc));
		if (!store_error(req, e->rc))
			rpc_error(req, TD_RPC_INTERNAL, "export failed: %s", td_strerror(e->rc));
		chain_export_free(x);
		free(e->text.p);
		free(e);
		return;
	}
	e->primed = true;
	e->next = a->exporters;
	if (a->exporters)
		a->exporters->prev = e;
	a->exporters = e;
	if (!rpc_stream_begin(req, export_turn, e)) {
		/* a notification, or the client is gone: nobody to send it to */
		export_free(e);
		rpc_reply(req, NULL);
		return;
	}
	log_debug("export of blocks %llu..%llu started", (unsigned long long)from, (unsigned long long)to);
}

/* Unlinks and frees e (its request already ended or aborted). */
static void export_free(struct exporter *e)
{
	struct api *a = e->a;

	if (e->prev)
		e->prev->next = e->next;
	else
		a->exporters = e->next;
	if (e->next)
		e->next->prev = e->prev;
	chain_export_free(e->x);
	free(e->text.p);
	free(e);
}

/*
 * The producer of an export (rpc_stream_fn): writes the next pieces of the
 * package, ends the answer after the last, or gives up when the client has
 * gone or the store fails (the client then sees its line cut short).
 */
static void export_turn(void *arg, struct rpc_req *req)
{
	struct exporter *e = arg;
	int rc = 1;

	if (!rpc_req_alive(req)) {
		log_info("export of blocks %llu..%llu: the client left after %llu bytes", (unsigned long long)e->from,
			 (unsigned long long)e->to, (unsigned long long)e->bytes);
		rpc_stream_abort(req);
		export_free(e);
		return;
	}
	if (e->primed) {
		e->primed = false; /* the first turn's text is ready */
		rc = e->rc;
	} else {
		e->text.len = 0;
		for (int k = 0; k < API_EXPORT_PIECES_PER_TURN && e->text.len < API_EXPORT_TURN_BYTES && rc == 1; k++)
			rc = chain_export_next(e->x, &e->text);
	}
	if (rc < 0) {
		log_error("export of blocks %llu..%llu: store error after %llu bytes: %s; closing the connection",
			  (unsigned long long)e->from, (unsigned long long)e->to, (unsigned long long)e->bytes,
			  td_strerror(rc));
		rpc_stream_abort(req);
		export_free(e);
		return;
	}
	rpc_stream_write(req, e->text.p, e->text.len);
	e->bytes += e->text.len;
	if (rc == 0) {
		log_debug("export of blocks %llu..%llu: %llu bytes", (unsigned long long)e->from,
			  (unsigned long long)e->to, (unsigned long long)e->bytes);
		rpc_stream_end(req);
		export_free(e);
	}
}

/*
 * record.status {"id"}: what became of the record with this id, as far as
 * this node knows: committed (with its block height: the chain, so also
 * after a restart), pending (in the mempool), dropped (with the reason, for
 * the last API_DROPPED_MAX drops while the node runs) or unknown.
 */
/* The evidence this node keeps (evidence.h), newest last: at most the last API_EVIDENCE_LIST. */
static void m_evidence(struct api *a, struct rpc_req *req, json_t *params)
{
	const struct evidence *ev = driver_evidence(a->d.driver);
	json_t *list = ev ? evidence_list(ev, API_EVIDENCE_LIST) : json_array();
	if (!list) {
		rpc_error(req, TD_RPC_INTERNAL, "cannot read the evidence file");
		return;
	}
	rpc_reply(req, json_pack("{s:o, s:o}", "count", td_json_uint(ev ? evidence_count(ev) : 0), "evidence", list));
}

static void m_record(struct api *a, struct rpc_req *req, json_t *params)
{
	const struct api_deps *n = &a->d;
	const json_t *jid = json_object_get(params, "id");
	uint8_t id[TD_HASH_LEN];
	char hex[2 * TD_HASH_LEN + 1], ts[32], text[256];
	uint64_t height;
	const struct dropped *e;
	json_t *res;

	if (!jid) {
		rpc_error(req, TD_RPC_INVALID_PARAMS,
			  "id is missing: give the record id, %d hex digits (the id tender.publish answered)",
			  2 * TD_HASH_LEN);
		return;
	}
	if (!td_json_is_string(jid) || !td_unhex(id, TD_HASH_LEN, json_string_value(jid), json_string_length(jid))) {
		rpc_error(req, TD_RPC_INVALID_PARAMS,
			  "id must be a record id: a string of %d hex digits (the id tender.publish answered)",
			  2 * TD_HASH_LEN);
		return;
	}
	td_hex(hex, id, TD_HASH_LEN);
	if (chain_has_record(n->chain, id, &height)) {
		res = json_pack("{s:s, s:s, s:o}", "id", hex, "status", "committed", "height", td_json_uint(height));
	} else if (mempool_has(n->mp, id)) {
		res = json_pack("{s:s, s:s}", "id", hex, "status", "pending");
	} else if ((e = find_dropped(a, id)) != NULL) {
		td_time_iso(ts, e->time_ms);
		res = json_pack("{s:s, s:s, s:s, s:s}", "id", hex, "status", "dropped", "reason", e->reason,
				"dropped_at", ts);
	} else {
		snprintf(text, sizeof(text),
			 "this node knows no record with this id: not committed, not pending, and not among "
			 "the last %d records dropped since it started (never seen here, or dropped before "
			 "its last restart or longer ago)",
			 API_DROPPED_MAX);
		res = json_pack("{s:s, s:s, s:s}", "id", hex, "status", "unknown", "message", text);
	}
	rpc_reply(req, res);
}

typedef void (*method_fn)(struct api *a, struct rpc_req *req, json_t *params);

static const struct method {
	const char *name;
	method_fn fn;
} methods[] = {
	{ "status", m_status },           { "tender.publish", m_publish }, { "tender.get", m_get },
	{ "tender.list", m_list },        { "block.get", m_block },        { "tender.watch", m_watch },
	{ "ledger.export", m_export },    { "record.status", m_record },   { "evidence.list", m_evidence },
	{ "proof.get", m_proof },         { "chain.members", m_members },  { "chain.validators", m_validators },
	{ "gov.proposals", m_proposals }, { "gov.propose", m_propose },    { "gov.approve", m_approve },
};

uint32_t api_method_names(const char **out, uint32_t max)
{
	uint32_t n = 0;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]) && n < max; i++)
		out[n++] = methods[i].name;
	return n;
}

void api_handle(struct api *a, struct rpc_req *req, const char *method, json_t *params)
{
	if (a->stopping) {
		rpc_error(req, TD_RPC_SHUTTING_DOWN, "tenderd is shutting down");
		return;
	}
	if (!json_is_object(params)) {
		rpc_error(req, TD_RPC_INVALID_PARAMS, "params must be an object");
		return;
	}
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(methods[i].name, method) == 0) {
			methods[i].fn(a, req, params);
			return;
		}
	}
	rpc_error(req, TD_RPC_METHOD_NOT_FOUND, "unknown method %s", method);
}
