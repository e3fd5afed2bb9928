/*
 * JSON-RPC 2.0 on a Unix socket: one JSON object per line each way.
 *
 * rpc.c only moves requests and answers: it accepts many clients, frames
 * lines (a line over RPC_LINE_MAX gets an error and the connection is
 * closed), parses each line with exact numbers (tenderd/json.h), answers
 * malformed requests itself, and hands each valid request to the handler set
 * at start. The handler answers now or later with exactly one rpc_reply() or
 * rpc_error(); a request whose client went away stays valid until then and
 * its answer is dropped. Answers go out in the order they are given.
 */
#ifndef TENDERD_RPC_H
#define TENDERD_RPC_H

#include <stdbool.h>
#include <uv.h>
#include <jansson.h>

#define RPC_LINE_MAX (1024 * 1024) /* longest request line, bytes */
#define RPC_CLIENTS_MAX 256        /* connections served at once; more are closed at accept */

struct rpc;
struct rpc_req;

/* Called for each valid request; params is an object or array (borrowed), never NULL. */
typedef void (*rpc_handler_fn)(void *ctx, struct rpc_req *req, const char *method, json_t *params);

/*
 * Listens on the Unix socket at path (mode 0660: owner and group only). A
 * stale socket file left by a crash is replaced; a live one (a daemon
 * answers) is refused. Returns 0 or an error with a message.
 */
int rpc_start(struct rpc **out, uv_loop_t *loop, const char *path, rpc_handler_fn fn, void *ctx, char *err,
	      size_t errlen);

/*
 * Stops accepting, closes every connection and removes the socket file.
 * Requests still unanswered stay valid for their rpc_reply/rpc_error, which
 * then only free them. The rpc itself is freed once every handle is closed
 * and every request is answered. NULL does nothing.
 */
void rpc_stop(struct rpc *r);

/* Answers req with result (reference stolen) and frees req. */
void rpc_reply(struct rpc_req *req, json_t *result);
/* Answers req with a JSON-RPC error and frees req. */
void rpc_error(struct rpc_req *req, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/*
 * Sends a notification {"jsonrpc":"2.0","method":method,"params":params}
 * (params stolen) on req's connection without answering req; for
 * subscriptions. Returns false if the client is gone.
 */
bool rpc_notify(struct rpc_req *req, const char *method, json_t *params);
/* Bytes waiting to be written to req's client (0 once it is gone): lets a streamer pace itself. */
size_t rpc_req_queued(const struct rpc_req *req);
/* False once the client of req has disconnected. */
bool rpc_req_alive(const struct rpc_req *req);

#endif
