/*
 * The node: owns the event loop and every module, and wires them together.
 *
 * Data flows one way: the socket (rpc) hands a release to the node, which
 * builds and signs a record (proto), checks it against the chain and puts it
 * in the mempool; the block producer takes pending records into a block,
 * commits it (chain), and answers the requests waiting for those records.
 * With one validator the producer is the degenerate case of round-robin
 * consensus: this validator proposes every block and its own PRECOMMIT
 * signature is the commit.
 */
#ifndef TENDERD_NODE_H
#define TENDERD_NODE_H

#include <uv.h>

#include "config.h"

struct node;

/*
 * Opens the node described by cfg on loop: loads the key (refused if others
 * can read it) and genesis, opens the store, starts the socket and signal
 * handlers. Returns 0 or an error with a message.
 */
int node_start(struct node **out, uv_loop_t *loop, const struct config *cfg, char *err, size_t errlen);
/*
 * Begins a graceful stop: no new requests, pending records committed when
 * this node can commit alone, waiting requests answered, socket removed.
 * The loop ends once everything is closed; then call node_free.
 */
void node_stop(struct node *n);
/* Closes the store and frees the node (after uv_run returned); NULL does nothing. */
void node_free(struct node *n);

#endif
