/*
 * The daemon (see daemon.h). Owns the loop's handles, the p2p transport,
 * the socket, the key and the genesis; the node owns everything else.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "api.h"
#include "daemon.h"
#include "http.h"
#include "log.h"
#include "node.h"
#include "registry.h"
#include "p2p.h"
#include "rpc.h"
#include "store.h"

struct dtimer {
	uv_timer_t t;
	struct daemon *d;
	enum node_timer kind;
};

struct daemon {
	uv_loop_t *loop;
	struct config cfg;
	struct td_genesis genesis;
	uint8_t sk[TD_SECKEY_LEN];
	struct node_io io;
	struct node *node;
	struct rpc *rpc;
	struct p2p *p2p;
	struct http *http; /* NULL without [http] listen */
	struct dtimer timers[NODE_TIMERS];
	uv_check_t flush_check;
	uv_signal_t sig_int, sig_term, sig_hup;
	bool handles_open;
	bool stopping;
};

/* ---- the node's io ---- */

static void io_send(void *ctx, uint32_t to, const uint8_t *msg, size_t len)
{
	struct daemon *d = ctx;
	if (!d->p2p)
		return;
	if (to == NODE_ALL) {
		p2p_broadcast(d->p2p, msg, len, NULL);
		return;
	}
	struct p2p_peer *peer = p2p_peer_find(d->p2p, to);
	if (peer)
		p2p_send(peer, msg, len);
}

static void io_disconnect(void *ctx, uint32_t v, const char *reason)
{
	struct daemon *d = ctx;
	struct p2p_peer *peer = d->p2p ? p2p_peer_find(d->p2p, v) : NULL;
	if (peer)
		p2p_disconnect(peer, reason);
}

static bool io_connected(void *ctx, uint32_t v)
{
	struct daemon *d = ctx;
	return d->p2p && p2p_peer_find(d->p2p, v) != NULL;
}

static uint32_t io_peer_count(void *ctx)
{
	struct daemon *d = ctx;
	return d->p2p ? (uint32_t)p2p_peer_count(d->p2p) : 0;
}

static uint64_t io_wall_ms(void *ctx)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t io_mono_ms(void *ctx)
{
	struct daemon *d = ctx;
	return uv_now(d->loop);
}

static void on_timer(uv_timer_t *t)
{
	struct dtimer *dt = t->data;
	if (dt->d->node && !dt->d->stopping)
		node_on_timer(dt->d->node, dt->kind);
}

static void io_timer(void *ctx, enum node_timer kind, uint64_t delay_ms)
{
	struct daemon *d = ctx;
	if (!d->handles_open)
		return;
	if (delay_ms == NODE_TIMER_OFF)
		uv_timer_stop(&d->timers[kind].t);
	else
		uv_timer_start(&d->timers[kind].t, on_timer, delay_ms, 0);
}

static bool io_timer_pending(void *ctx, enum node_timer kind)
{
	struct daemon *d = ctx;
	return d->handles_open && uv_is_active((uv_handle_t *)&d->timers[kind].t);
}

static json_t *io_peers_json(void *ctx)
{
	struct daemon *d = ctx;
	return d->p2p ? p2p_peers_json(d->p2p) : json_array();
}

static void io_traffic(void *ctx, uint64_t *sent, uint64_t *received)
{
	struct daemon *d = ctx;
	*sent = d->p2p ? p2p_bytes_sent(d->p2p) : 0;
	*received = d->p2p ? p2p_bytes_received(d->p2p) : 0;
}

static int io_open_store(void *ctx, struct store **out, const char *path, char *err, size_t errlen)
{
	return store_open(out, path, err, errlen);
}

/* ---- p2p, socket and loop callbacks ---- */

static void on_peer_connect(void *ctx, struct p2p_peer *peer)
{
	struct daemon *d = ctx;
	if (d->node)
		node_on_connect(d->node, p2p_peer_validator(peer));
}

static void on_peer_disconnect(void *ctx, struct p2p_peer *peer)
{
	struct daemon *d = ctx;
	if (d->node)
		node_on_disconnect(d->node, p2p_peer_validator(peer));
}

static void on_peer_message(void *ctx, struct p2p_peer *peer, const uint8_t *msg, size_t len)
{
	struct daemon *d = ctx;
	if (d->node && !d->stopping)
		node_on_message(d->node, p2p_peer_validator(peer), msg, len);
}

static void on_request(void *ctx, struct rpc_req *req, const char *method, json_t *params)
{
	struct daemon *d = ctx;
	if (d->stopping || !d->node) {
		rpc_error(req, TD_RPC_SHUTTING_DOWN, "tenderd is shutting down");
		return;
	}
	node_on_request(d->node, req, method, params);
}

/* Runs after each loop iteration's I/O: one ANNOUNCE carries all ids gathered. */
static void on_flush_check(uv_check_t *c)
{
	struct daemon *d = c->data;
	if (d->node && !d->stopping)
		node_flush(d->node);
}

static void on_sighup(uv_signal_t *s, int signum)
{
	int rc = log_reopen();
	if (rc < 0)
		log_error("SIGHUP: cannot reopen the log file: %s", strerror(-rc));
	else
		log_info("SIGHUP: log file reopened");
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	log_info("received %s, stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
	daemon_stop(d);
}

/* ---- life cycle ---- */

/*
 * Who may connect: a party the chain names with a role at the next height
 * or the one after (a party voted in may dial a little early); its slot.
 */
static int key_lookup(void *ctx, const uint8_t pk[static TD_PUBKEY_LEN])
{
	struct daemon *d = ctx;
	const struct registry *r = node_registry(d->node);
	uint64_t h = node_height(d->node) + 1;
	enum td_role role;
	int slot = registry_find(r, pk);
	if (slot < 0 ||
	    (registry_role(r, (uint32_t)slot, h, &role) != 0 && registry_role(r, (uint32_t)slot, h + 1, &role) != 0))
		return -1;
	return slot;
}

static const struct td_validator *party_of(void *ctx, uint32_t slot, const char **role)
{
	struct daemon *d = ctx;
	const struct registry *r = node_registry(d->node);
	enum td_role ro;
	if (role)
		*role = registry_role(r, slot, node_height(d->node) + 1, &ro) == 0 ? td_role_name(ro) : NULL;
	return registry_party(r, slot);
}

/* Logs who this node is on the chain now, as the registry says. */
static void log_identity(struct daemon *d, const char *pk)
{
	const struct registry *r = node_registry(d->node);
	uint64_t h = node_height(d->node) + 1;
	int slot = registry_find(r, d->sk + crypto_sign_SEEDBYTES);
	enum td_role role;

	if (slot < 0 || registry_role(r, (uint32_t)slot, h, &role) != 0) {
		log_warn("this node's key %s is no validator, member or observer of chain %s at height %llu: the "
			 "others refuse its connections until the chain names it (by their vote: tenderctl propose "
			 "on a validator); send them the output of tenderd id",
			 pk, d->genesis.chain_id, (unsigned long long)h);
		return;
	}
	if (strcmp(registry_party(r, (uint32_t)slot)->name, d->cfg.name) != 0)
		log_warn("config name \"%s\" differs from this %s's name on the chain \"%s\"", d->cfg.name,
			 td_role_name(role), registry_party(r, (uint32_t)slot)->name);
	log_info("%s: %s (%s): %s", td_role_name(role), d->cfg.name, pk,
		 role == TD_ROLE_VALIDATOR ? "votes and proposes" :
		 role == TD_ROLE_MEMBER    ? "publishes records, does not vote" :
					     "follows the chain read-only");
}

int daemon_start(struct daemon **out, uv_loop_t *loop, const struct config *cfg, char *err, size_t errlen)
{
	struct daemon *d = td_xcalloc(1, sizeof(*d));
	char path[PATH_MAX + 16], pk[2 * TD_PUBKEY_LEN + 1];
	const uint8_t *mypk = d->sk + crypto_sign_SEEDBYTES;
	int rc;

	*out = NULL;
	d->loop = loop;
	d->cfg = *cfg;
	d->io = (struct node_io){ d,          io_send,  io_disconnect,    io_connected,  io_peer_count, io_wall_ms,
				  io_mono_ms, io_timer, io_timer_pending, io_peers_json, io_traffic,    io_open_store };
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		rc = TD_EIO;
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", cfg->home, KEY_FILE);
	if ((rc = config_key_load(path, d->sk, err, errlen)))
		goto fail;
	snprintf(path, sizeof(path), "%s/%s", cfg->home, GENESIS_FILE);
	if ((rc = config_genesis_load(&d->genesis, path, err, errlen)))
		goto fail;
	td_hex(pk, mypk, TD_PUBKEY_LEN);
	log_info("tenderd %s: chain %s, ocid prefix %s; genesis: %u validator%s, %u member%s, %u observer%s",
		 TENDERD_VERSION, d->genesis.chain_id, d->genesis.ocid_prefix, d->genesis.n,
		 d->genesis.n == 1 ? "" : "s", d->genesis.n_members, d->genesis.n_members == 1 ? "" : "s",
		 d->genesis.n_observers, d->genesis.n_observers == 1 ? "" : "s");
	for (int k = 0; k < NODE_TIMERS; k++) {
		uv_timer_init(loop, &d->timers[k].t);
		d->timers[k].t.data = &d->timers[k];
		d->timers[k].d = d;
		d->timers[k].kind = (enum node_timer)k;
	}
	uv_check_init(loop, &d->flush_check);
	uv_signal_init(loop, &d->sig_int);
	uv_signal_init(loop, &d->sig_term);
	uv_signal_init(loop, &d->sig_hup);
	d->flush_check.data = d->sig_int.data = d->sig_term.data = d->sig_hup.data = d;
	d->handles_open = true;
	if ((rc = node_new(&d->node, cfg, &d->genesis, d->sk, &d->io, err, errlen)))
		goto fail;
	log_identity(d, pk);
	if ((rc = rpc_start(&d->rpc, loop, cfg->socket_path, on_request, d, err, errlen)))
		goto fail;
	{
		const char *names[RPC_METHODS_MAX];
		rpc_time_methods(d->rpc, names, api_method_names(names, RPC_METHODS_MAX));
	}
	if (td_genesis_parties(&d->genesis) > 1 || registry_slots(node_registry(d->node)) > 1) {
		struct p2p_config pc = { .listen = cfg->p2p_listen,
					 .peers = cfg->p2p_peers,
					 .genesis = &d->genesis,
					 .sk = d->sk,
					 .key_lookup = key_lookup,
					 .key_lookup_ctx = d,
					 .party = party_of };
		struct p2p_callbacks cb = { on_peer_connect, on_peer_message, on_peer_disconnect };
		if ((rc = p2p_start(&d->p2p, loop, &pc, &cb, d, err, errlen)))
			goto fail;
	}
	if (cfg->http_listen[0] && (rc = http_start(&d->http, loop, cfg, d->node, err, errlen)))
		goto fail;
	if (d->http)
		http_set_rpc(d->http, d->rpc);
	uv_check_start(&d->flush_check, on_flush_check);
	uv_signal_start(&d->sig_int, on_signal, SIGINT);
	uv_signal_start(&d->sig_term, on_signal, SIGTERM);
	uv_signal_start(&d->sig_hup, on_sighup, SIGHUP);

	log_info("socket %s", cfg->socket_path);
	if (d->p2p)
		log_info("p2p listening on %s, dialing %s", cfg->p2p_listen,
			 cfg->p2p_peers[0] ? cfg->p2p_peers : "none");
	*out = d;
	return 0;
fail:
	daemon_stop(d);
	*out = d; /* its handles close when the loop runs; then daemon_free */
	return rc;
}

void daemon_stop(struct daemon *d)
{
	if (d->stopping)
		return;
	d->stopping = true;
	http_stop(d->http); /* before the node stops: no request reads it afterwards */
	d->http = NULL;
	if (d->node)
		node_stop(d->node);
	rpc_stop(d->rpc);
	d->rpc = NULL;
	p2p_stop(d->p2p);
	d->p2p = NULL;
	if (d->handles_open) {
		for (int k = 0; k < NODE_TIMERS; k++)
			uv_close((uv_handle_t *)&d->timers[k].t, NULL);
		uv_close((uv_handle_t *)&d->flush_check, NULL);
		uv_close((uv_handle_t *)&d->sig_int, NULL);
		uv_close((uv_handle_t *)&d->sig_term, NULL);
		uv_close((uv_handle_t *)&d->sig_hup, NULL);
		d->handles_open = false;
	}
}

void daemon_free(struct daemon *d)
{
	if (!d)
		return;
	node_free(d->node);
	td_genesis_free(&d->genesis);
	sodium_memzero(d->sk, sizeof(d->sk));
	free(d);
}
