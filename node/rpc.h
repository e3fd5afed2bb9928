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
 *
 * Streamed answers: a handler whose answer is too large to build at once
 * (ledger.export) writes it a piece at a time (rpc_stream_begin). The
 * answer keeps its place in the connection's order: while answers ahead of
 * it are still due, its pieces are held (at most about RPC_STREAM_HOLD_MAX
 * bytes); at the head, they go to the socket as they come, while its write
 * queue stays under RPC_STREAM_QUEUE_MAX. The rpc asks the producer for
 * more only when there is room, from a turn of the loop of its own, so a
 * client that reads slowly (or not at all) slows the producer down instead
 * of filling memory; one that stops reading for RPC_IDLE_MS is closed.
 * Notifications for the same connection wait until the streamed line ends.
 * Methods that stream cannot be part of a batch (-32600).
 */
#ifndef TENDERD_RPC_H
#define TENDERD_RPC_H

#include <stdbool.h>
#include <uv.h>
#include <jansson.h>

#include "hist.h"

#define RPC_LINE_MAX (1024 * 1024)        /* longest request line, bytes */
#define RPC_CLIENTS_MAX 256               /* connections served at once; see RPC_EVICT_IDLE_MS */
#define RPC_IDLE_MS (5 * 60 * 1000)       /* a connection with nothing queued and nothing read this long is closed */
#define RPC_EVICT_IDLE_MS 1000            /* with the table full, the longest idle for this long makes room */
#define RPC_REAP_MS (10 * 1000)           /* how often idle connections are looked for */
#define RPC_BATCH_MAX 1000                /* requests in one batch; more get one -32600 error */
#define RPC_PENDING_MAX 1024              /* pending requests per client before reading from it stops */
#define RPC_HELD_MAX (4 * 1024 * 1024)    /* answer bytes held per client before reading from it stops */
#define RPC_STREAM_HOLD_MAX (64 * 1024)   /* bytes of a streamed answer held behind earlier answers */
#define RPC_STREAM_QUEUE_MAX (512 * 1024) /* a streamed answer at the head waits while this much is unsent */

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
/*
 * Producer of a streamed answer: called from a turn of the loop (never from
 * inside an rpc_* call) whenever the stream has room, or once its client is
 * gone (rpc_req_alive false: it must then call rpc_stream_abort). It writes
 * a bounded amount with rpc_stream_write (checking rpc_stream_full) and
 * returns; it ends the stream with rpc_stream_end or rpc_stream_abort.
 */
typedef void (*rpc_stream_fn)(void *arg, struct rpc_req *req);

/*
 * Starts streaming the result of req, a single request (never a batch
 * entry: those abort): queues {"jsonrpc":"2.0","id":ID,"result": and from
 * then on calls fn(arg, req) as said above. Returns false, starting
 * nothing, if req has no id (a notification) or its client is gone: req is
 * then still to be answered with rpc_reply or rpc_error, which free it.
 */
bool rpc_stream_begin(struct rpc_req *req, rpc_stream_fn fn, void *arg);
/* Appends n bytes of the result's JSON text (dropped if the client is gone). */
void rpc_stream_write(struct rpc_req *req, const char *s, size_t n);
/* True when the producer should stop writing for this turn (no room, or the client is gone). */
bool rpc_stream_full(const struct rpc_req *req);
/* Closes the answer (the object's brace and the newline) and frees req. */
void rpc_stream_end(struct rpc_req *req);
/*
 * Gives up on a streamed answer whose text cannot be completed: the
 * connection is closed (the client sees the line cut short, never a broken
 * line followed by more answers), and req is freed.
 */
void rpc_stream_abort(struct rpc_req *req);

/* Bytes waiting to be written to req's client (0 once it is gone): lets a streamer pace itself. */
size_t rpc_req_queued(const struct rpc_req *req);

/*
 * Time from a request's arrival to its answer, per method, for the metrics.
 * Only the n methods named here (borrowed, at most RPC_METHODS_MAX) get a
 * histogram of their own; any other name counts as "other", so clients
 * cannot grow the table. A streamed answer is not timed.
 */
#define RPC_METHODS_MAX 16
struct rpc_method_stat {
	const char *name;
	struct hist latency;
};
void rpc_time_methods(struct rpc *r, const char *const *names, uint32_t n);
/* The per-method histograms: *n entries, the last one "other". */
const struct rpc_method_stat *rpc_method_stats(const struct rpc *r, uint32_t *n);
/* False once the client of req has disconnected. */
bool rpc_req_alive(const struct rpc_req *req);
/* The uid and pid of the client behind req (SO_PEERCRED); false if unknown or gone. */
bool rpc_req_peer(const struct rpc_req *req, uint32_t *uid, int32_t *pid);

#endif
