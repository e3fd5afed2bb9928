/*
 * JSON-RPC 2.0 on a Unix socket (see rpc.h for the contract).
 *
 * Ownership and lifetimes:
 * - struct rpc owns the listener, the resume idle handle and a list of
 *   connections. It counts references: one for the open listener, one for the
 *   idle handle, one per connection until its close callback, one per request
 *   (slot or batch entry) until it is answered and freed. rpc_stop() closes
 *   the handles; the rpc is freed when the count reaches zero.
 * - A connection's memory is released only in its close callback, so it stays
 *   valid for the whole of any callback that closes it (a handler may even
 *   call rpc_stop() from inside the read callback that called it).
 * - Each request line becomes a slot (a struct rpc_req) queued on its
 *   connection in arrival order; answers leave in that order, whatever order
 *   the handler gives them in. A slot answered before the ones ahead of it
 *   waits in the queue holding its serialized answer (so a request that stays
 *   pending, like a wait for commit, holds back later answers on its
 *   connection; rpc_notify() writes at once, ahead of queued answers). When a
 *   connection closes, every unanswered slot loses its connection pointer
 *   (rpc_req_alive() turns false) and its later answer is only freed.
 * - A batch line is one slot with a struct rpc_batch; each of its entries is a
 *   struct rpc_req of its own that points to the slot and is not queued. An
 *   entry's answer is serialized at once and appended to the slot's buffer;
 *   when the last entry is answered the buffer becomes the slot's answer line
 *   (or nothing, if no entry had an id) and the slot is answered. The slot
 *   lives until then, even after its connection closed.
 * - Backpressure: pending requests and held answer bytes are counted per
 *   connection (rpc.h). At the cap, reading stops and the bytes already read
 *   but not yet parsed stay in the connection's line buffer; once the counts
 *   fall under half the caps, the idle handle parses them at a safe point of
 *   the loop (never inside a handler's call to rpc_reply) and reading goes on.
 * - Every write is one allocation holding the uv_write_t and the bytes, freed
 *   in the write callback. Bytes waiting in libuv's write queue are capped
 *   (RPC_WRITE_QUEUE_MAX): a client that does not read is disconnected.
 * - Streamed answers (rpc_stream_begin): the slot is queued like any other
 *   and listed in rpc->streams until it ends. Until it reaches the head of
 *   its queue its pieces collect in its out buffer (counted as held); at the
 *   head, that buffer is written and every later piece goes to the socket
 *   at once. The pump (an idle handle) calls each stream's producer while it
 *   has room or its client is gone; it stops itself when no stream has
 *   room, and on_write, conn_flush and conn_close start it again. While a
 *   streamed line is being written, notifications for the connection wait
 *   in its notes buffer (held) and follow the line's end.
 * - A client that closes its side (EOF) is gone: its pending answers are
 *   dropped. Clients keep their socket open until their answers arrive. (A
 *   client whose reading is paused is noticed gone only when a write fails.)
 */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h> /* rpc.h uses bool without including it */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hist.h"
#include "rpc.h"
#include "tenderd/json.h"
#include "tenderd/types.h"

#define RPC_WRITE_QUEUE_MAX (8 * 1024 * 1024) /* unsent answer bytes per connection */
#define RPC_READ_CHUNK (64 * 1024)            /* one read from a socket */
#define RPC_BACKLOG 128
#define RPC_MSG_MAX 1024 /* longest error message we format */

/* Held answers are written all at once when the request ahead of them is answered. */
_Static_assert(RPC_HELD_MAX <= RPC_WRITE_QUEUE_MAX / 2, "a flush of held answers must fit the write queue cap");

struct rpc_conn;

struct rpc {
	uv_loop_t *loop;
	uv_pipe_t listener;
	char *path;              /* socket file, unlinked by rpc_stop */
	dev_t sock_dev;          /* identity of the file we bound, so we never */
	ino_t sock_ino;          /* unlink a socket another process created */
	uv_idle_t resumer;       /* runs conn_resume for paused connections back under their caps */
	uv_timer_t reaper;       /* closes connections idle for RPC_IDLE_MS */
	uv_idle_t pump;          /* calls the producers of streamed answers that have room */
	struct rpc_req *streams; /* streamed answers begun and not yet ended or aborted */
	rpc_handler_fn fn;
	void *ctx;
	struct rpc_conn *conns; /* every connection not yet through its close callback */
	size_t nconns;
	size_t nclosing; /* of nconns, those already closing (they leave room for a newcomer) */
	size_t refs;     /* listener + connections + requests (file comment) */
	bool stopping;
	bool full_logged; /* "too many clients" logged since the count was last below the cap */
	struct rpc_method_stat methods[RPC_METHODS_MAX + 1]; /* the timed methods, then "other" */
	uint32_t nmethods;                                   /* timed methods, "other" not counted */
	char rbuf[RPC_READ_CHUNK]; /* shared: libuv calls alloc then read for one stream at a time */
};

struct rpc_conn {
	uv_pipe_t pipe; /* pipe.data points back here */
	uv_shutdown_t shutdown;
	struct rpc *rpc;
	struct rpc_conn *prev, *next;
	char *line;                      /* partial line carried between reads; while paused, every byte read */
	size_t len, cap;                 /* and not yet parsed (at most RPC_LINE_MAX either way) */
	struct rpc_req *q_head, *q_tail; /* slots in arrival order, not yet written */
	size_t pending;                  /* sum of the queued slots' weight */
	size_t held;                     /* sum of the queued slots' held bytes */
	bool closing;                    /* uv_close called; the close callback frees */
	bool draining;                   /* reading stopped; shut down once the queue is written */
	bool shutting;                   /* uv_shutdown in flight */
	bool paused;                     /* reading stopped at a cap; conn_resume goes on */
	bool resume_due;                 /* back under the caps: the resumer will call conn_resume */
	uint64_t last_active;            /* uv_now of the accept, the last read or the last answer written */
	bool has_cred;                   /* the client's uid and pid (SO_PEERCRED) are known */
	struct wbuf *notes;              /* notifications waiting for a streamed line to end (counted in held) */
	size_t notes_cap;                /* bytes allocated for notes->data */
	uint32_t uid;
	int32_t pid;
};

/* One write: the request and its bytes in one allocation, freed in on_write. */
struct wbuf {
	uv_write_t w;
	size_t len;
	char data[];
};

/* The answers of a batch, collected in its slot until every entry is answered. */
struct rpc_batch {
	struct wbuf *buf; /* "[" then each answer and a comma; NULL until the first answer */
	size_t cap;       /* bytes allocated for buf->data */
	size_t left;      /* entries not yet answered, plus one while the entries are being handed out */
	bool speaks;      /* some entry has an id (or was refused): the batch will have an answer */
};

/* A slot (a line's place in its connection's queue) or a batch entry (batch set). */
struct rpc_req {
	struct rpc *rpc;
	struct rpc_conn *conn;       /* a slot's connection; NULL once it is closing, and for an entry */
	struct rpc_req *prev, *next; /* in conn's queue (slots only) */
	struct rpc_req *batch;       /* an entry: the slot of its batch, whose conn is the entry's */
	struct rpc_batch *coll;      /* a batch's slot: its answers; NULL for any other */
	json_t *id;                  /* NULL for a notification (and a batch's slot): no answer */
	struct wbuf *out;            /* a slot's answer, once given, until the ones ahead are written */
	size_t weight;               /* a slot's requests in conn->pending: 1, or its batch's entries */
	size_t held;                 /* a slot's bytes in conn->held */
	bool answered;               /* a batch's slot: every entry answered */
	/* a streamed answer (slots only) */
	bool streaming;    /* begun, not yet ended or aborted: in rpc->streams */
	bool at_head;      /* everything ahead of it is written: its pieces go straight out */
	size_t out_cap;    /* bytes allocated for out->data while pieces collect there */
	rpc_stream_fn sfn; /* its producer */
	uint64_t t0;       /* uv_hrtime when handed to the handler; 0: not timed */
	uint32_t mix;      /* its method's entry in rpc->methods */
	void *sarg;
	struct rpc_req *sprev, *snext; /* in rpc->streams */
};

/* The one place rpc.c logs; to be routed to the daemon's log module. Never logs request contents. */
static void rpc_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void rpc_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("tenderd: rpc: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void rpc_unref(struct rpc *r)
{
	if (r->refs == 0) {
		rpc_log("internal error: reference count underflow");
		abort();
	}
	if (--r->refs == 0 && r->stopping) {
		free(r->path);
		free(r);
	}
}

/* ---- writing ---------------------------------------------------------- */

static void conn_close(struct rpc_conn *c);
static void conn_flush(struct rpc_conn *c);

/* A write of the n bytes at s followed by a newline. */
static struct wbuf *wbuf_line(const char *s, size_t n)
{
	struct wbuf *wb = td_xmalloc(sizeof(*wb) + n + 1);
	memcpy(wb->data, s, n);
	wb->data[n] = '\n';
	wb->len = n + 1;
	return wb;
}

/* Appends n bytes at s to *wb (allocated as needed; *cap is its room), returning how many were added. */
static size_t wbuf_append(struct wbuf **wb, size_t *cap, const char *s, size_t n)
{
	size_t len = *wb ? (*wb)->len : 0;

	if (len + n > *cap) {
		size_t c = *cap ? *cap : 4096;
		while (c < len + n)
			c *= 2;
		*wb = td_xrealloc(*wb, sizeof(**wb) + c);
		(*wb)->len = len;
		*cap = c;
	}
	memcpy((*wb)->data + len, s, n);
	(*wb)->len = len + n;
	return n;
}

/* Serializes msg (reference stolen) as one line; NULL if jansson cannot. */
static struct wbuf *wbuf_from_json(json_t *msg)
{
	char *s = td_json_dump(msg, JSON_COMPACT);
	json_decref(msg);
	if (!s)
		return NULL;
	struct wbuf *wb = wbuf_line(s, strlen(s));
	free(s);
	return wb;
}

static void pump_kick(struct rpc *r);

static void on_write(uv_write_t *w, int status)
{
	struct wbuf *wb = (struct wbuf *)w;
	struct rpc_conn *c = w->handle->data;

	free(wb);
	if (status < 0 && !c->closing)
		conn_close(c);
	if (c->closing)
		return;
	c->last_active = uv_now(c->rpc->loop);
	if (c->q_head && c->q_head->streaming)
		pump_kick(c->rpc); /* the queue drained a little: the stream may have room again */
}

/* Hands wb to libuv (ownership passes); closes c if the client is not keeping up or the write fails. */
static void conn_write(struct rpc_conn *c, struct wbuf *wb)
{
	uv_stream_t *s = (uv_stream_t *)&c->pipe;
	size_t queued = uv_stream_get_write_queue_size(s);

	if (c->closing) {
		free(wb);
		return;
	}
	if (queued > 0 && queued + wb->len > RPC_WRITE_QUEUE_MAX) {
		rpc_log("client not reading its answers (%zu bytes queued); disconnecting", queued);
		free(wb);
		conn_close(c);
		return;
	}
	uv_buf_t b = uv_buf_init(wb->data, (unsigned int)wb->len);
	int rc = uv_write(&wb->w, s, &b, 1, on_write);
	if (rc < 0) {
		free(wb);
		conn_close(c);
	}
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct rpc_conn *c = req->handle->data;
	conn_close(c);
}

/* ---- caps and backpressure -------------------------------------------- */

static void on_resume(uv_idle_t *h);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* At a cap: stop reading from c. */
static bool conn_full(const struct rpc_conn *c)
{
	return c->pending >= RPC_PENDING_MAX || c->held >= RPC_HELD_MAX;
}

/* Far enough under the caps to read again. */
static bool conn_roomy(const struct rpc_conn *c)
{
	return c->pending <= RPC_PENDING_MAX / 2 && c->held <= RPC_HELD_MAX / 2;
}

/* Has the resumer call conn_resume(c) at its next turn if c is paused and back under its caps. */
static void conn_maybe_resume(struct rpc_conn *c)
{
	struct rpc *r = c->rpc;

	if (!c->paused || c->resume_due || c->closing || c->draining || r->stopping || !conn_roomy(c))
		return;
	c->resume_due = true;
	uv_idle_start(&r->resumer, on_resume);
}

/* Adds n held bytes to slot q and its connection. */
static void slot_hold(struct rpc_req *q, size_t n)
{
	q->held += n;
	if (q->conn)
		q->conn->held += n;
}

static void conn_unlink_req(struct rpc_conn *c, struct rpc_req *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		c->q_head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		c->q_tail = q->prev;
	q->prev = q->next = NULL;
	c->pending -= q->weight;
	c->held -= q->held;
	conn_maybe_resume(c);
}

static void req_free(struct rpc_req *q)
{
	struct rpc *r = q->rpc;
	json_decref(q->id);
	free(q->out);
	if (q->coll) {
		free(q->coll->buf);
		free(q->coll);
	}
	free(q);
	rpc_unref(r);
}

/* Whether slot q, once answered, writes a line (so that an unanswered q holds back the ones behind it). */
static bool slot_speaks(const struct rpc_req *q)
{
	return q->coll ? q->coll->speaks : q->id != NULL;
}

/*
 * Writes the answers at the head of c's queue that are ready, stopping at the
 * first slot that will answer and is still unanswered (unanswered
 * notifications are passed over: they never produce an answer). A draining
 * connection is shut down once nothing is left to write.
 */
/* A streamed line is being written on c: nothing else may go out until it ends. */
static bool conn_mid_line(const struct rpc_conn *c)
{
	return c->q_head && c->q_head->streaming && c->q_head->at_head;
}

/* Writes the notifications that waited for a streamed line to end, once it has. */
static void conn_flush_notes(struct rpc_conn *c)
{
	struct wbuf *wb = c->notes;

	if (!wb || c->closing || conn_mid_line(c))
		return;
	c->notes = NULL;
	c->notes_cap = 0;
	c->held -= wb->len;
	conn_write(c, wb);
}

/* Streamed slot q reached the head of c's queue: its held pieces go out, and later ones at once. */
static void stream_reach_head(struct rpc_conn *c, struct rpc_req *q)
{
	struct wbuf *wb = q->out;

	if (q->at_head)
		return;
	q->at_head = true;
	q->out = NULL;
	q->out_cap = 0;
	c->held -= q->held;
	q->held = 0;
	if (wb)
		conn_write(c, wb);
	pump_kick(c->rpc);
}

static void conn_flush(struct rpc_conn *c)
{
	struct rpc_req *q, *next;
	bool blocked = false;

	for (q = c->q_head; q && !c->closing; q = next) {
		next = q->next;
		conn_flush_notes(c);
		if (!q->answered) {
			if (q->streaming) {
				stream_reach_head(c, q);
				blocked = true;
				break;
			}
			if (slot_speaks(q)) {
				blocked = true;
				break;
			}
			continue;
		}
		struct wbuf *wb = q->out;
		q->out = NULL;
		conn_unlink_req(c, q);
		req_free(q);
		if (wb)
			conn_write(c, wb);
	}
	conn_flush_notes(c);
	if (c->closing || blocked || !c->draining || c->shutting)
		return;
	c->shutting = true;
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, on_shutdown) < 0)
		conn_close(c);
}

/* ---- requests --------------------------------------------------------- */

/* A new slot at the tail of c's queue, counting weight requests against c's cap. */
static struct rpc_req *slot_new(struct rpc_conn *c, size_t weight)
{
	struct rpc_req *q = td_xcalloc(1, sizeof(*q));
	q->rpc = c->rpc;
	q->conn = c;
	q->weight = weight;
	c->rpc->refs++;
	c->pending += weight;
	q->prev = c->q_tail;
	if (c->q_tail)
		c->q_tail->next = q;
	else
		c->q_head = q;
	c->q_tail = q;
	return q;
}

/* A new entry of the batch whose slot is p. */
static struct rpc_req *entry_new(struct rpc_req *p)
{
	struct rpc_req *e = td_xcalloc(1, sizeof(*e));
	e->rpc = p->rpc;
	e->batch = p;
	p->rpc->refs++;
	p->coll->left++;
	return e;
}

/* The connection q's answer goes to: its own, or its batch's; NULL once gone. */
static struct rpc_conn *req_conn(const struct rpc_req *q)
{
	return q->batch ? q->batch->conn : q->conn;
}

/*
 * The answer to id as one line of compact JSON without the newline (member
 * is "result" or "error", val stolen), in a malloc'd string of *len bytes;
 * an internal error in its place if val cannot be encoded; NULL if not even
 * that can.
 */
static char *answer_text(json_t *id, const char *member, json_t *val, size_t *len)
{
	json_t *msg = json_object();
	json_object_set_new(msg, "jsonrpc", json_string("2.0"));
	json_object_set(msg, "id", id);
	json_object_set_new(msg, member, val ? val : json_null());
	char *s = td_json_dump(msg, JSON_COMPACT);
	json_decref(msg);
	if (!s) {
		rpc_log("cannot encode an answer");
		msg = json_object();
		json_object_set_new(msg, "jsonrpc", json_string("2.0"));
		json_object_set(msg, "id", id);
		json_t *e = json_object();
		json_object_set_new(e, "code", td_json_number("-32603", 6));
		json_object_set_new(e, "message", json_string("internal error: cannot encode the answer"));
		json_object_set_new(msg, "error", e);
		s = td_json_dump(msg, JSON_COMPACT);
		json_decref(msg);
	}
	*len = s ? strlen(s) : 0;
	return s;
}

/* Appends the n bytes of one answer and a comma to the answers of batch slot p. */
static void batch_append(struct rpc_req *p, const char *s, size_t n)
{
	struct rpc_batch *b = p->coll;
	size_t len = b->buf ? b->buf->len : 1; /* "[" comes first */
	size_t need = len + n + 2;             /* the comma, and room for the final newline */

	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < need)
			cap *= 2;
		bool first = !b->buf;
		b->buf = td_xrealloc(b->buf, sizeof(*b->buf) + cap);
		b->cap = cap;
		if (first) {
			b->buf->data[0] = '[';
			b->buf->len = 1;
			slot_hold(p, 1);
		}
	}
	memcpy(b->buf->data + b->buf->len, s, n);
	b->buf->data[b->buf->len + n] = ',';
	b->buf->len += n + 1;
	slot_hold(p, n + 1);
}

/*
 * Counts one answered entry (or the end of handing entries out) of batch
 * slot p. After the last, p is answered with the collected array (or
 * nothing) and queued for conn_flush, or freed if its connection is gone.
 */
static void batch_settle(struct rpc_req *p)
{
	struct rpc_batch *b = p->coll;
	struct rpc_conn *c = p->conn;

	if (--b->left > 0)
		return;
	if (!c) {
		req_free(p);
		return;
	}
	if (b->buf) {
		b->buf->data[b->buf->len - 1] = ']'; /* in place of the last comma */
		b->buf->data[b->buf->len++] = '\n';
		slot_hold(p, 1);
		p->out = b->buf;
		b->buf = NULL;
	}
	p->answered = true;
	conn_flush(c);
}

/*
 * Gives q its answer: member is "result" or "error", val is stolen. A slot
 * is freed now if the answer goes nowhere, else left queued for conn_flush;
 * a batch entry adds its answer to its batch and is freed.
 */
static void req_answer(struct rpc_req *q, const char *member, json_t *val)
{
	struct rpc_conn *c = req_conn(q);
	size_t n;

	if (q->t0) {
		hist_observe(&q->rpc->methods[q->mix].latency, (double)(uv_hrtime() - q->t0) / 1e9);
		q->t0 = 0;
	}
	if (q->answered) {
		rpc_log("internal error: request answered twice");
		abort();
	}
	if (q->batch) {
		struct rpc_req *p = q->batch;
		if (c && q->id) {
			char *s = answer_text(q->id, member, val, &n);
			if (s)
				batch_append(p, s, n);
			free(s);
		} else {
			json_decref(val);
		}
		req_free(q);
		batch_settle(p);
		return;
	}
	if (!c || !q->id) {
		json_decref(val);
		if (c)
			conn_unlink_req(c, q);
		req_free(q);
		if (c)
			conn_flush(c); /* a notification may have been all that was left before draining */
		return;
	}
	char *s = answer_text(q->id, member, val, &n);
	if (s) {
		q->out = wbuf_line(s, n);
		slot_hold(q, q->out->len);
		free(s);
	}
	q->answered = true;
	conn_flush(c);
}

static json_t *error_object(int code, const char *msg)
{
	char num[16];
	int n = snprintf(num, sizeof(num), "%d", code);
	json_t *e = json_object();
	json_object_set_new(e, "code", td_json_number(num, (size_t)n));
	/* json_string refuses invalid UTF-8; a message quoting client bytes may hold some. */
	json_t *m = json_string(msg);
	if (!m) {
		char clean[RPC_MSG_MAX];
		size_t i;
		for (i = 0; msg[i] && i + 1 < sizeof(clean); i++)
			clean[i] = (unsigned char)msg[i] < 0x80 ? msg[i] : '?';
		clean[i] = '\0';
		m = json_string(clean);
	}
	json_object_set_new(e, "message", m);
	return e;
}

void rpc_reply(struct rpc_req *req, json_t *result)
{
	req_answer(req, "result", result ? result : json_null());
}

void rpc_error(struct rpc_req *req, int code, const char *fmt, ...)
{
	char msg[RPC_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	req_answer(req, "error", error_object(code, msg));
}

bool rpc_notify(struct rpc_req *req, const char *method, json_t *params)
{
	struct rpc_conn *c = req_conn(req);

	if (!c || c->closing) {
		json_decref(params);
		return false;
	}
	json_t *msg = json_object();
	json_object_set_new(msg, "jsonrpc", json_string("2.0"));
	json_object_set_new(msg, "method", json_string(method));
	json_object_set_new(msg, "params", params ? params : json_object());
	struct wbuf *wb = wbuf_from_json(msg);
	if (!wb)
		return false;
	if (conn_mid_line(c) || c->notes) {
		/* not inside a streamed line: after it, in order */
		c->held += wbuf_append(&c->notes, &c->notes_cap, wb->data, wb->len);
		free(wb);
		return true;
	}
	conn_write(c, wb);
	return !c->closing;
}

size_t rpc_req_queued(const struct rpc_req *req)
{
	const struct rpc_conn *c = req_conn(req);
	if (!c || c->closing)
		return 0;
	return uv_stream_get_write_queue_size((const uv_stream_t *)&c->pipe) + (c->notes ? c->notes->len : 0);
}

/* ---- streamed answers ------------------------------------------------- */

static void on_pump(uv_idle_t *h);

/* Has the pump run at the next turn (if any stream is open). */
static void pump_kick(struct rpc *r)
{
	if (r->streams && !r->stopping)
		uv_idle_start(&r->pump, on_pump);
}

static void stream_unlist(struct rpc_req *q)
{
	struct rpc *r = q->rpc;

	if (q->sprev)
		q->sprev->snext = q->snext;
	else
		r->streams = q->snext;
	if (q->snext)
		q->snext->sprev = q->sprev;
	q->sprev = q->snext = NULL;
	q->streaming = false;
}

bool rpc_stream_begin(struct rpc_req *req, rpc_stream_fn fn, void *arg)
{
	struct rpc_conn *c = req->conn;
	struct rpc *r = req->rpc;
	size_t n;

	if (req->batch || req->coll) {
		rpc_log("internal error: a streamed answer inside a batch");
		abort();
	}
	if (!c || c->closing || !req->id || req->answered || req->streaming)
		return false;
	/* the answer as rpc_reply would write it, up to its result */
	char *s = answer_text(req->id, "result", json_null(), &n);
	if (!s || n < 5 || memcmp(s + n - 5, "null}", 5) != 0) {
		free(s);
		return false;
	}
	req->streaming = true;
	req->sfn = fn;
	req->sarg = arg;
	req->snext = r->streams;
	if (r->streams)
		r->streams->sprev = req;
	r->streams = req;
	rpc_stream_write(req, s, n - 5);
	free(s);
	conn_flush(c); /* at the head already? */
	pump_kick(r);
	return true;
}

void rpc_stream_write(struct rpc_req *req, const char *s, size_t n)
{
	struct rpc_conn *c = req->conn;

	if (!req->streaming) {
		rpc_log("internal error: a write to an answer that is not streaming");
		abort();
	}
	if (!c || c->closing || n == 0)
		return;
	if (req->at_head) {
		struct wbuf *wb = td_xmalloc(sizeof(*wb) + n);
		memcpy(wb->data, s, n);
		wb->len = n;
		conn_write(c, wb);
		return;
	}
	slot_hold(req, wbuf_append(&req->out, &req->out_cap, s, n));
}

bool rpc_stream_full(const struct rpc_req *req)
{
	const struct rpc_conn *c = req->conn;

	if (!c || c->closing)
		return true;
	if (req->at_head)
		return uv_stream_get_write_queue_size((const uv_stream_t *)&c->pipe) >= RPC_STREAM_QUEUE_MAX;
	return req->held >= RPC_STREAM_HOLD_MAX;
}

void rpc_stream_end(struct rpc_req *req)
{
	struct rpc_conn *c = req->conn;

	rpc_stream_write(req, "}\n", 2);
	stream_unlist(req);
	if (!c) {
		req_free(req);
		return;
	}
	req->answered = true;
	conn_flush(c);
}

void rpc_stream_abort(struct rpc_req *req)
{
	struct rpc_conn *c = req->conn;

	if (!req->streaming) {
		rpc_log("internal error: abort of an answer that is not streaming");
		abort();
	}
	stream_unlist(req);
	if (c && !c->closing) {
		rpc_log("a streamed answer could not be completed; closing the connection");
		conn_close(c); /* detaches req, which is not answered */
	}
	req_free(req);
}

/*
 * Calls the producer of each stream that has room, or whose client is gone;
 * stops when none has. A producer may end or abort its own stream only.
 */
static void on_pump(uv_idle_t *h)
{
	struct rpc *r = h->data;
	struct rpc_req *q, *next;
	bool called = false;

	for (q = r->streams; q && !r->stopping; q = next) {
		next = q->snext;
		if (q->conn && rpc_stream_full(q))
			continue;
		called = true;
		q->sfn(q->sarg, q);
	}
	if (!called || r->stopping)
		uv_idle_stop(h);
}

bool rpc_req_alive(const struct rpc_req *req)
{
	return req_conn(req) != NULL;
}

/* Sets q's id (a new reference; NULL for none); an entry with an id makes its batch answer. */
static void req_set_id(struct rpc_req *q, json_t *id)
{
	q->id = json_incref(id);
	if (q->id && q->batch)
		q->batch->coll->speaks = true;
}

/* Answers a malformed request (its id, or null when there is no usable one) with an error. */
static void req_refuse(struct rpc_req *q, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void req_refuse(struct rpc_req *q, int code, const char *fmt, ...)
{
	char msg[RPC_MSG_MAX];
	va_list ap;

	if (!q->id)
		req_set_id(q, json_null());
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	req_answer(q, "error", error_object(code, msg));
}

static bool valid_id(const json_t *id)
{
	return json_is_null(id) || td_json_is_string(id) || td_json_is_number(id);
}

/*
 * Methods refused inside a batch: they stream notifications on their request
 * and never answer it, while a batch is answered once every entry is.
 */
static const struct {
	const char *method;
	const char *why;
} unbatchable[] = {
	{ "tender.watch", "streams notifications and is never answered" },
	{ "ledger.export", "streams its answer, which is too large to collect with others" },
};

/* Why method cannot be part of a batch, or NULL if it can. */
static const char *batch_refuses(const char *method)
{
	for (size_t i = 0; i < sizeof(unbatchable) / sizeof(unbatchable[0]); i++)
		if (strcmp(unbatchable[i].method, method) == 0)
			return unbatchable[i].why;
	return NULL;
}

/* Checks one request (a line's value, or a batch entry), then answers it or hands it to the handler. */
static void req_dispatch(struct rpc *r, struct rpc_req *q, json_t *root)
{
	if (!json_is_object(root)) {
		req_refuse(q, TD_RPC_INVALID_REQUEST, "invalid request: a request must be a JSON object%s",
			   q->batch ? " (a batch holds requests, not batches)" : "");
		return;
	}
	json_t *id = json_object_get(root, "id");
	if (id && !valid_id(id)) {
		req_refuse(q, TD_RPC_INVALID_REQUEST, "invalid request: \"id\" must be a string, a number or null");
		return;
	}
	if (id)
		req_set_id(q, id);
	json_t *ver = json_object_get(root, "jsonrpc");
	if (!td_json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0) {
		req_refuse(q, TD_RPC_INVALID_REQUEST, "invalid request: \"jsonrpc\" must be \"2.0\"");
		return;
	}
	json_t *method = json_object_get(root, "method");
	if (!td_json_is_string(method)) {
		req_refuse(q, TD_RPC_INVALID_REQUEST, "invalid request: \"method\" must be a string");
		return;
	}
	const char *why = q->batch ? batch_refuses(json_string_value(method)) : NULL;
	if (why) {
		req_refuse(q, TD_RPC_INVALID_REQUEST,
			   "invalid request: %s %s, so it cannot be part of a batch; send it on its own line",
			   json_string_value(method), why);
		return;
	}
	json_t *params = json_object_get(root, "params");
	if (params && !json_is_object(params) && !json_is_array(params)) {
		req_refuse(q, TD_RPC_INVALID_PARAMS, "invalid params: \"params\" must be an object or an array");
		return;
	}
	if (params)
		json_incref(params);
	else
		params = json_object();
	q->mix = r->nmethods;
	for (uint32_t i = 0; i < r->nmethods; i++)
		if (strcmp(r->methods[i].name, json_string_value(method)) == 0)
			q->mix = i;
	q->t0 = uv_hrtime();
	r->fn(r->ctx, q, json_string_value(method), params);
	json_decref(params);
}

void rpc_time_methods(struct rpc *r, const char *const *names, uint32_t n)
{
	if (n > RPC_METHODS_MAX)
		n = RPC_METHODS_MAX;
	for (uint32_t i = 0; i < n; i++) {
		r->methods[i].name = names[i];
		hist_init(&r->methods[i].latency, hist_latency_le, HIST_LATENCY_N);
	}
	r->nmethods = n;
	r->methods[n].name = "other";
	hist_init(&r->methods[n].latency, hist_latency_le, HIST_LATENCY_N);
}

const struct rpc_method_stat *rpc_method_stats(const struct rpc *r, uint32_t *n)
{
	*n = r->nmethods + 1;
	return r->methods;
}

/*
 * Hands out the entries of the batch array root: one slot for the whole
 * batch, one request per entry. An empty or oversized array is refused whole.
 * Stops handing out if the connection closes meanwhile (a handler may stop
 * the rpc).
 */
static void conn_batch(struct rpc_conn *c, json_t *root)
{
	size_t n = json_array_size(root);

	if (n == 0) {
		req_refuse(slot_new(c, 1), TD_RPC_INVALID_REQUEST, "invalid request: an empty batch");
		return;
	}
	if (n > RPC_BATCH_MAX) {
		req_refuse(slot_new(c, 1), TD_RPC_INVALID_REQUEST,
			   "invalid request: a batch of %zu requests (at most %d)", n, RPC_BATCH_MAX);
		return;
	}
	struct rpc_req *p = slot_new(c, n);
	p->coll = td_xcalloc(1, sizeof(*p->coll));
	p->coll->left = 1; /* held until every entry is handed out, so p cannot finish early */
	for (size_t i = 0; i < n && p->conn; i++)
		req_dispatch(c->rpc, entry_new(p), json_array_get(root, i));
	batch_settle(p);
}

/* Parses one line, then answers it, hands it to the handler or hands out its batch. */
static void conn_line(struct rpc_conn *c, const char *line, size_t len)
{
	char err[TD_ERRMSG_MAX];

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len)
		return; /* blank lines are ignored */

	json_t *root = td_json_load(line, len, err, sizeof(err));
	if (!root) {
		req_refuse(slot_new(c, 1), TD_RPC_PARSE_ERROR, "parse error: %s", err);
		return;
	}
	if (json_is_array(root))
		conn_batch(c, root);
	else
		req_dispatch(c->rpc, slot_new(c, 1), root);
	json_decref(root);
}

/* ---- reading ---------------------------------------------------------- */

static void conn_too_large(struct rpc_conn *c)
{
	uv_read_stop((uv_stream_t *)&c->pipe);
	free(c->line);
	c->line = NULL;
	c->len = c->cap = 0;
	c->draining = true;
	rpc_log("request line over %d bytes; closing the connection", RPC_LINE_MAX);
	req_refuse(slot_new(c, 1), TD_RPC_INVALID_REQUEST, "request too large (over %d bytes)", RPC_LINE_MAX);
}

/* Appends n bytes to c's line buffer (a partial line, or unparsed bytes while paused). */
static void conn_append(struct rpc_conn *c, const char *p, size_t n)
{
	size_t need = c->len + n;

	if (need > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < need)
			cap *= 2;
		if (cap > RPC_LINE_MAX && need <= RPC_LINE_MAX)
			cap = RPC_LINE_MAX;
		c->line = td_xrealloc(c->line, cap);
		c->cap = cap;
	}
	memcpy(c->line + c->len, p, n);
	c->len += n;
}

/*
 * Stops reading from c at a cap, keeping the n bytes at p (read, not yet
 * parsed) after any partial line for conn_resume.
 */
static void conn_pause(struct rpc_conn *c, const char *p, size_t n)
{
	uv_read_stop((uv_stream_t *)&c->pipe);
	c->paused = true;
	if (n)
		conn_append(c, p, n);
}

/*
 * Splits n bytes read from c into lines; stops when c starts closing or
 * draining, or pauses it when it reaches a cap.
 */
static void conn_feed(struct rpc_conn *c, const char *p, size_t n)
{
	while (n > 0 && !c->closing && !c->draining) {
		if (conn_full(c)) {
			conn_pause(c, p, n);
			return;
		}
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (take > RPC_LINE_MAX - c->len) {
			conn_too_large(c);
			return;
		}
		if (nl && c->len == 0) {
			conn_line(c, p, take);
		} else {
			conn_append(c, p, take);
			if (nl) {
				conn_line(c, c->line, c->len); /* c->line is not freed while it is parsed */
				c->len = 0;
			}
		}
		if (!nl)
			break;
		p += take + 1;
		n -= take + 1;
	}
	if (!c->closing && !c->draining && conn_full(c))
		conn_pause(c, NULL, 0);
}

/* Parses what paused c kept, then reads on unless that reached a cap again. Called only by the resumer. */
static void conn_resume(struct rpc_conn *c)
{
	if (!c->paused || c->closing || c->draining)
		return;
	c->paused = false;
	char *buf = c->line;
	size_t n = c->len;
	c->line = NULL;
	c->len = c->cap = 0;
	conn_feed(c, buf, n);
	free(buf);
	if (c->paused || c->closing || c->draining)
		return;
	if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
		conn_close(c);
}

static void on_resume(uv_idle_t *h)
{
	struct rpc *r = h->data;

	uv_idle_stop(h);
	for (struct rpc_conn *c = r->conns; c; c = c->next) {
		if (!c->resume_due)
			continue;
		c->resume_due = false;
		conn_resume(c);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct rpc_conn *c = h->data;
	buf->base = c->rpc->rbuf;
	buf->len = sizeof(c->rpc->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct rpc_conn *c = s->data;
	c->last_active = uv_now(c->rpc->loop);

	if (n < 0) {
		conn_close(c); /* EOF or error: the client is gone */
		return;
	}
	if (n > 0 && !c->closing && !c->draining)
		conn_feed(c, buf->base, (size_t)n);
}

/* ---- connections ------------------------------------------------------ */

static void on_conn_closed(uv_handle_t *h)
{
	struct rpc_conn *c = h->data;
	struct rpc *r = c->rpc;

	if (c->prev)
		c->prev->next = c->next;
	else
		r->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	r->nconns--;
	r->nclosing--;
	if (r->nconns < RPC_CLIENTS_MAX)
		r->full_logged = false;
	free(c->line);
	free(c);
	rpc_unref(r);
}

/* Starts closing c (idempotent): pending requests are detached, answered ones freed. */
static void conn_close(struct rpc_conn *c)
{
	struct rpc_req *q, *next;

	if (c->closing)
		return;
	c->closing = true;
	c->rpc->nclosing++;
	for (q = c->q_head; q; q = next) {
		next = q->next;
		q->prev = q->next = NULL;
		q->conn = NULL;
		if (q->answered)
			req_free(q);
	}
	c->q_head = c->q_tail = NULL;
	free(c->notes);
	c->notes = NULL;
	uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
	pump_kick(c->rpc); /* a stream of c is now told its client is gone */
}

/* Records the client's uid and pid (SO_PEERCRED), for the log of who published what. */
static void conn_peer(struct rpc_conn *c)
{
	uv_os_fd_t fd;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	    len == sizeof(cred)) {
		c->has_cred = true;
		c->uid = (uint32_t)cred.uid;
		c->pid = (int32_t)cred.pid;
	}
}

/* Idle: nothing queued (no request waiting, no watch) and nothing read for a while. */
static bool conn_idle(const struct rpc_conn *c, uint64_t now, uint64_t ms)
{
	return !c->closing && !c->draining && !c->q_head && now - c->last_active >= ms;
}

/*
 * The table is full: closes the connection idle the longest (at least
 * RPC_EVICT_IDLE_MS) to make room for the newcomer. Returns false when
 * every other connection is busy or just active.
 */
static bool evict_idle(struct rpc *r, const struct rpc_conn *newcomer)
{
	uint64_t now = uv_now(r->loop);
	struct rpc_conn *victim = NULL;
	for (struct rpc_conn *c = r->conns; c; c = c->next)
		if (c != newcomer && conn_idle(c, now, RPC_EVICT_IDLE_MS) &&
		    (!victim || c->last_active < victim->last_active))
			victim = c;
	if (!victim)
		return false;
	rpc_log("client table full (%d): closing the client idle longest (%llu s)", RPC_CLIENTS_MAX,
		(unsigned long long)((now - victim->last_active) / 1000));
	conn_close(victim);
	return true;
}

/* A streamed answer is being written and the client has read none of it for ms. */
static bool conn_stalled(const struct rpc_conn *c, uint64_t now, uint64_t ms)
{
	return !c->closing && conn_mid_line(c) && uv_stream_get_write_queue_size((const uv_stream_t *)&c->pipe) > 0 &&
	       now - c->last_active >= ms;
}

static void on_reap(uv_timer_t *t)
{
	struct rpc *r = t->data;
	uint64_t now = uv_now(r->loop);
	for (struct rpc_conn *c = r->conns; c; c = c->next) {
		if (conn_stalled(c, now, RPC_IDLE_MS))
			rpc_log("client stopped reading a streamed answer; disconnecting");
		if (conn_idle(c, now, RPC_IDLE_MS) || conn_stalled(c, now, RPC_IDLE_MS))
			conn_close(c);
	}
}

bool rpc_req_peer(const struct rpc_req *req, uint32_t *uid, int32_t *pid)
{
	const struct rpc_conn *c = req->batch ? req->batch->conn : req->conn;
	if (!c || !c->has_cred)
		return false;
	*uid = c->uid;
	*pid = c->pid;
	return true;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct rpc *r = server->data;

	if (status < 0) {
		rpc_log("accept failed: %s", uv_strerror(status));
		return;
	}
	if (r->stopping)
		return;
	struct rpc_conn *c = td_xcalloc(1, sizeof(*c));
	c->rpc = r;
	uv_pipe_init(r->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->next = r->conns;
	if (r->conns)
		r->conns->prev = c;
	r->conns = c;
	r->nconns++;
	r->refs++;
	int rc = uv_accept(server, (uv_stream_t *)&c->pipe);
	if (rc < 0) {
		rpc_log("accept failed: %s", uv_strerror(rc));
		conn_close(c);
		return;
	}
	c->last_active = uv_now(r->loop);
	conn_peer(c);
	if (r->nconns - r->nclosing > RPC_CLIENTS_MAX && !evict_idle(r, c)) {
		if (!r->full_logged)
			rpc_log("too many clients (%d), all busy; refusing new connections", RPC_CLIENTS_MAX);
		r->full_logged = true;
		conn_close(c);
		return;
	}
	rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	if (rc < 0)
		conn_close(c);
}

/* ---- start and stop --------------------------------------------------- */

/*
 * Makes path free for bind: refuses a live socket (something accepts a
 * connection) or a file that is not a socket, and removes a stale socket.
 */
static int claim_path(const char *path, const struct sockaddr_un *sa, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot check %s: %s", path, strerror(errno));
		return TD_EIO;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return TD_EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return TD_EIO;
	}
	int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
		snprintf(err, errlen, "another tenderd is running on %s", path);
		return TD_EEXIST;
	}
	if (e != ECONNREFUSED && e != ENOENT) {
		snprintf(err, errlen, "cannot check %s: %s", path, strerror(e));
		return TD_EIO;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(errno));
		return TD_EIO;
	}
	rpc_log("removed stale socket %s", path);
	return 0;
}

/* Close callback of the listener and of the resumer. */
static void on_handle_closed(uv_handle_t *h)
{
	rpc_unref(h->data);
}

static void on_listener_failed(uv_handle_t *h)
{
	struct rpc *r = h->data;
	free(r->path);
	free(r);
}

int rpc_start(struct rpc **out, uv_loop_t *loop, const char *path, rpc_handler_fn fn, void *ctx, char *err,
	      size_t errlen)
{
	struct sockaddr_un sa;
	struct stat st;
	struct rpc *r;
	size_t plen = strlen(path);
	int fd = -1, rc;

	*out = NULL;
	if (plen == 0 || plen >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path %s (%zu bytes, at most %zu)", plen ? "too long" : "empty", plen,
			 sizeof(sa.sun_path) - 1);
		return TD_EINVAL;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen + 1);

	rc = claim_path(path, &sa, err, errlen);
	if (rc < 0)
		return rc;
	/* Plain syscalls until every step that can fail is done, so failure leaves no handle behind. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return TD_EIO;
	}
	if (bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "cannot bind %s: %s", path, strerror(errno));
		goto fail_fd;
	}
	/* Before listen: nobody can connect while the mode still follows the umask. */
	if (chmod(path, 0660) < 0) {
		snprintf(err, errlen, "cannot chmod %s: %s", path, strerror(errno));
		goto fail_bound;
	}
	if (lstat(path, &st) < 0) {
		snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
		goto fail_bound;
	}
	if (listen(fd, RPC_BACKLOG) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		goto fail_bound;
	}

	r = td_xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->path = td_xstrndup(path, plen);
	r->sock_dev = st.st_dev;
	r->sock_ino = st.st_ino;
	r->fn = fn;
	rpc_time_methods(r, NULL, 0);
	r->ctx = ctx;
	r->refs = 1; /* the listener */
	uv_pipe_init(loop, &r->listener, 0);
	r->listener.data = r;
	rc = uv_pipe_open(&r->listener, fd);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&r->listener, RPC_BACKLOG, on_connection);
	if (rc < 0) {
		/* Not expected after the checks above; the handle frees r once the loop runs. */
		snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(rc));
		unlink(path);
		uv_close((uv_handle_t *)&r->listener, on_listener_failed);
		return TD_EIO;
	}
	uv_idle_init(loop, &r->resumer);
	r->resumer.data = r;
	r->refs++; /* the resumer */
	uv_timer_init(loop, &r->reaper);
	r->reaper.data = r;
	r->refs++; /* the reaper */
	uv_idle_init(loop, &r->pump);
	r->pump.data = r;
	r->refs++; /* the pump */
	uv_timer_start(&r->reaper, on_reap, RPC_REAP_MS, RPC_REAP_MS);
	uv_unref((uv_handle_t *)&r->reaper); /* never keeps the loop alive by itself */
	*out = r;
	return 0;

fail_bound:
	unlink(path);
fail_fd:
	close(fd);
	return TD_EIO;
}

void rpc_stop(struct rpc *r)
{
	struct stat st;

	if (!r || r->stopping)
		return;
	r->stopping = true;
	uv_close((uv_handle_t *)&r->listener, on_handle_closed);
	uv_close((uv_handle_t *)&r->resumer, on_handle_closed);
	uv_close((uv_handle_t *)&r->reaper, on_handle_closed);
	uv_close((uv_handle_t *)&r->pump, on_handle_closed);
	for (struct rpc_conn *c = r->conns; c; c = c->next)
		conn_close(c);
	if (lstat(r->path, &st) == 0 && st.st_dev == r->sock_dev && st.st_ino == r->sock_ino)
		unlink(r->path);
}
