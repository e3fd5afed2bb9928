/*
 * The daemon: a node run as a process on a libuv loop. It loads the key
 * (refused if others can read it) and genesis, starts the p2p transport and
 * the socket, wires the node's io (nodeio.h) to them, to libuv timers and
 * to the system clock, and handles SIGINT/SIGTERM (graceful stop) and
 * SIGHUP (reopen the log file).
 */
#ifndef TENDERD_DAEMON_H
#define TENDERD_DAEMON_H

#include <uv.h>

#include "config.h"

struct daemon;

/*
 * Starts the node described by cfg on loop. Returns 0 or an error with a
 * message; either way *out is set, and after uv_run returns the caller
 * frees it with daemon_free (on an error the loop only closes handles).
 */
int daemon_start(struct daemon **out, uv_loop_t *loop, const struct config *cfg, char *err, size_t errlen);
/*
 * Begins a graceful stop: no new requests, waiting requests answered with
 * a shutting-down error, pending records left uncommitted (logged), socket
 * removed. The loop ends once every handle is closed; then daemon_free.
 */
void daemon_stop(struct daemon *d);
/* Closes the store and frees everything (after uv_run returned); NULL does nothing. */
void daemon_free(struct daemon *d);

#endif
