/*
 * JSON-RPC 2.0 on a Unix socket: one JSON value per line each way.
 *
 * rpc.c only moves requests and answers: it accepts many clients, frames
 * lines (a line over RPC_LINE_MAX gets an error and the connection is
 * closed), parses each line with exact numbers (tenderd/json.h), answers
 * malformed requests itself, and hands each valid request to the handler set
 * at start. The handler answers now or later with exactly one rpc_reply() or
 * rpc_error(); a request whose client went away stays valid until then and
 * its answer is dropped. Answers go out in the order their lines came in.
 *
 * Batches (JSON-RPC 2.0 section 6): a line holding an array of up to
 * RPC_BATCH_MAX requests. Each entry is checked and handed to the handler
 * like a single request; the answers of the entries that have an id are
 * collected until every entry is answered, then sent as one array line. An
 * empty or oversized array gets one -32600 error object, a batch of
 * notifications only gets nothing. Methods that stream notifications on
 * their request and never answer it (tender.watch) are refused inside a
 * batch with -32600 before the handler sees them.
 *
 * Per-client caps: a client's pending requests (read, not yet answered and
 * written; each batch entry counts one) and the answer bytes held for it
 * (behind an earlier unanswered request, or collected for an unfinished
 * batch). Once either reaches its cap (RPC_PENDING_MAX, RPC_HELD_MAX) the
 * server stops reading from that client, and reads on once it is back under
 * half of both: a client holds at most RPC_PENDING_MAX - 1 + RPC_BATCH_MAX
 * pending requests. Its unsent bytes in the socket's write queue have a cap
 * of their own, over which it is disconnected.
 */
#ifndef TENDERD_RPC_H
#define TENDERD_RPC_H

#include <stdbool.h>
#include <uv.h>
#include <jansson.h>

#define RPC_LINE_MAX (1024 * 1024)     /* longest request line, bytes */
#define RPC_CLIENTS_MAX 256            /* connections served at once; see RPC_EVICT_IDLE_MS */
#define RPC_IDLE_MS (5 * 60 * 1000)    /* a connection with nothing queued and nothing read this long is closed */
#define RPC_EVICT_IDLE_MS 1000         /* with the table full, the longest idle for this long makes room */
#define RPC_REAP_MS (10 * 1000)        /* how often idle connections are looked for */
#define RPC_BATCH_MAX 1000             /* requests in one batch; more get one -32600 error */
#define RPC_PENDING_MAX 1024           /* pending requests per client before reading from it stops */
#define RPC_HELD_MAX (4 * 1024 * 1024) /* answer bytes held per client before reading from it stops */

struct rpc;
struct rpc_req;

/*
 * Called for each valid request, single or batch entry alike (the contract is
 * the same); params is an object or array (borrowed), never NULL.
 */
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
/* The uid and pid of the client behind req (SO_PEERCRED); false if unknown or gone. */
bool rpc_req_peer(const struct rpc_req *req, uint32_t *uid, int32_t *pid);

#endif
