/*
 * The socket API: the JSON-RPC methods an agency calls (status,
 * tender.publish, tender.get, tender.list, block.get, tender.watch,
 * ledger.export, record.status), dispatched from a table, and the requests
 * that wait: publishes with wait=true until their record commits or is
 * dropped, watch streams and exports, paced by how fast their client reads.
 *
 * record.status tells what became of a record: committed (the chain),
 * pending (the mempool), dropped (the reason api_on_dropped was given, kept
 * for the last API_DROPPED_MAX drops since the api was made, the oldest
 * forgotten first), or unknown.
 *
 * The api reads the chain and the modules' state; what it changes goes
 * through the node: a signed record enters through api_deps.submit, the one
 * entry every published record takes.
 */
#ifndef TENDERD_API_H
#define TENDERD_API_H

#include "chain.h"
#include "config.h"
#include "driver.h"
#include "gossip.h"
#include "mempool.h"
#include "nodeio.h"
#include "rpc.h"
#include "sync.h"

#define API_WATCH_QUEUE_MAX (1024 * 1024)  /* bytes queued to a watcher before its replay pauses */
#define API_WATCH_BLOCKS_PER_TURN 64       /* blocks replayed to one watcher per turn */
#define API_EXPORT_BLOCKS_MAX 100000       /* blocks in one ledger.export answer */
#define API_EXPORT_PIECES_PER_TURN 256     /* releases (or parts of records) one export writes per loop turn */
#define API_EXPORT_TURN_BYTES (128 * 1024) /* bytes one export writes per loop turn, about */
#define API_DROPPED_MAX 4096               /* dropped records whose reason record.status remembers */
#define API_EVIDENCE_LIST 1000             /* newest evidence entries evidence.list answers */

struct api;

struct api_deps {
	const struct node_io *io;
	const struct td_genesis *genesis;
	const struct config *cfg;
	const uint8_t *sk, *pk; /* this node's key, TD_SECKEY_LEN and TD_PUBKEY_LEN */
	struct chain *chain;
	struct mempool *mp;
	struct driver *driver;
	struct sync *sync;
	struct gossip *gossip;
	void *ctx;
	/*
	 * Takes a signed record into the node (chain check, mempool, gossip, a
	 * height started). Returns 0 with rec taken, or an error (TD_EEXIST,
	 * TD_ERULE, TD_EPERM, TD_EFULL) with a message and rec still the caller's.
	 */
	int (*submit)(void *ctx, struct td_record *rec, char *err, size_t errlen);
};

/* The api over deps (copied; what it points to is borrowed until api_free). */
struct api *api_new(const struct api_deps *deps);
/* NULL does nothing; answer waiting requests with api_stop() first. */
void api_free(struct api *a);

/* Answers or keeps one request (the rpc handler). */
void api_handle(struct api *a, struct rpc_req *req, const char *method, json_t *params);
/* The socket methods' names (static strings) into out, at most max; returns how many. */
uint32_t api_method_names(const char **out, uint32_t max);
/* The chain grew: answers publishes now committed and feeds the watch streams. */
void api_on_commit(struct api *a);
/*
 * A pending record was dropped: its waiting publish gets the reason, and
 * record.status answers it (msg copied) until API_DROPPED_MAX later drops
 * push it out.
 */
void api_on_dropped(struct api *a, const uint8_t id[static TD_HASH_LEN], const char *msg);
/* Feeds watch streams that are behind (the WATCH timer). */
void api_pump(struct api *a);
/* Ends every waiting request with a shutting-down error; later requests get the same. */
void api_stop(struct api *a);

#endif
