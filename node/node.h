/*
 * The node: one validator's modules wired together, above the seam of
 * nodeio.h. It owns the chain, the mempool, proposals, the consensus
 * driver, block sync, gossip and the socket API, and connects them through
 * callbacks; it dispatches peers' messages, timers and socket requests to
 * them. It touches no socket, clock or timer itself: the daemon (daemon.h)
 * runs it on libuv, a test or a simulator on fakes.
 *
 * Every entry point below is a safe point: consensus actions caused by the
 * event run once it is handled, never inside another module's handler.
 */
#ifndef TENDERD_NODE_H
#define TENDERD_NODE_H

#include <jansson.h>

#include "config.h"
#include "nodeio.h"
#include "rpc.h"

#define NODE_TICK_MS 1000           /* STATUS broadcast and sync checks */
#define NODE_SLOW_LINK_BPS 10000000 /* the slowest link between agencies the default timeouts plan for */
#define NODE_STALL_TICKS 2          /* ticks without a new block before signed messages are sent again */

struct node;
struct wal;

/*
 * Opens the node of validator sk (TD_SECKEY_LEN) in genesis g: the store at
 * cfg->store_path, the sign state in cfg->home. g and io are borrowed
 * until node_free(), cfg is copied. Resumes a height the sign state was in the middle of. Returns
 * 0 or an error with a message.
 */
int node_new(struct node **out, const struct config *cfg, const struct td_genesis *g, const uint8_t *sk,
	     const struct node_io *io, char *err, size_t errlen);
/*
 * Stops taking work: waiting requests are answered with a shutting-down
 * error, no more consensus actions or timers, pending records stay
 * uncommitted (logged).
 */
void node_stop(struct node *n);
/* Closes the store and frees the node; NULL does nothing. */
void node_free(struct node *n);

/* Validator v's connection is up (authenticated). */
void node_on_connect(struct node *n, uint32_t v);
/* Validator v's connection is gone. */
void node_on_disconnect(struct node *n, uint32_t v);
/* One message from validator v; malformed ones cost v its connection. */
void node_on_message(struct node *n, uint32_t v, const uint8_t *msg, size_t len);
/* A timer asked for through io fired. */
void node_on_timer(struct node *n, enum node_timer kind);
/* A socket request (the rpc handler). */
void node_on_request(struct node *n, struct rpc_req *req, const char *method, json_t *params);
/*
 * The one entry of a signed record, the socket's publish included: checked
 * against the chain, pooled, announced, and a height started. Returns 0
 * with rec taken, or an error (TD_EEXIST, TD_ERULE, TD_EPERM, TD_EFULL)
 * with a message and rec still the caller's.
 */
int node_submit(struct node *n, struct td_record *rec, char *err, size_t errlen);
/* End of a loop turn: gossip sends what it gathered. */
void node_flush(struct node *n);

/* The node's chain (borrowed), for tests and the simulator to read. */
struct chain *node_chain(const struct node *n);
struct driver;
/* The node's consensus driver (driver.h). */
const struct driver *node_driver(const struct node *n);
/* The consensus log (wal.h), or NULL; for the simulator, which tears its unsynced tail on a crash. */
const struct wal *node_wal(const struct node *n);
/* The chain's height and the records waiting in the mempool (for logs and tests). */
uint64_t node_height(const struct node *n);
struct registry;
/* The chain's parties and validator sets (registry.h); valid until the next block is applied. */
const struct registry *node_registry(const struct node *n);
uint32_t node_pending(const struct node *n);
/*
 * What a reader outside the node (the HTTP endpoint, http.h) may look at,
 * all borrowed until node_free(); it changes none of it.
 */
struct node_view {
	const struct td_genesis *g;
	const struct config *cfg;
	const struct node_io *io;
	const struct chain *chain;
	const struct mempool *mp;
	const struct driver *driver;
	const struct sync *sync;
	const struct gossip *gossip;
};
void node_view(const struct node *n, struct node_view *out);
/* True once node_stop() was called. */
bool node_stopping(const struct node *n);
/* One line on where consensus stands (height, round, step, lock, valid round), for diagnostics. */
void node_describe(const struct node *n, char *buf, size_t len);

#endif
