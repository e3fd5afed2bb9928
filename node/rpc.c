/*
 * JSON-RPC 2.0 on a Unix socket (see rpc.h for the contract).
 *
 * Ownership and lifetimes:
 * - struct rpc owns the listener and a list of connections. It counts
 *   references: one for the open listener, one per connection until its close
 *   callback, one per request until it is answered and freed. rpc_stop()
 *   closes the handles; the rpc is freed when the count reaches zero.
 * - A connection's memory is released only in its close callback, so it stays
 *   valid for the whole of any callback that closes it (a handler may even
 *   call rpc_stop() from inside the read callback that called it).
 * - Each request line becomes a struct rpc_req queued on its connection in
 *   arrival order; answers leave in that order, whatever order the handler
 *   gives them in. A request answered before the ones ahead of it waits in
 *   the queue holding its serialized answer (so a request that stays pending,
 *   like a wait for commit, holds back later answers on its connection;
 *   rpc_notify() writes at once, ahead of queued answers). When a connection
 *   closes, every unanswered request loses its connection pointer
 *   (rpc_req_alive() turns false) and its later answer is only freed.
 * - Every write is one allocation holding the uv_write_t and the bytes, freed
 *   in the write callback. Bytes waiting in libuv's write queue are capped
 *   (RPC_WRITE_QUEUE_MAX): a client that does not read is disconnected.
 * - A client that closes its side (EOF) is gone: its pending answers are
 *   dropped. Clients keep their socket open until their answers arrive.
 */
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

#include "rpc.h"
#include "tenderd/json.h"
#include "tenderd/types.h"

#define RPC_WRITE_QUEUE_MAX (8 * 1024 * 1024) /* unsent answer bytes per connection */
#define RPC_READ_CHUNK (64 * 1024)            /* one read from a socket */
#define RPC_BACKLOG 128
#define RPC_MSG_MAX 1024 /* longest error message we format */

struct rpc_conn;

struct rpc {
	uv_loop_t *loop;
	uv_pipe_t listener;
	char *path;     /* socket file, unlinked by rpc_stop */
	dev_t sock_dev; /* identity of the file we bound, so we never */
	ino_t sock_ino; /* unlink a socket another process created */
	rpc_handler_fn fn;
	void *ctx;
	struct rpc_conn *conns; /* every connection not yet through its close callback */
	size_t nconns;
	size_t refs; /* listener + connections + requests (file comment) */
	bool stopping;
	bool full_logged;          /* "too many clients" logged since the count was last below the cap */
	char rbuf[RPC_READ_CHUNK]; /* shared: libuv calls alloc then read for one stream at a time */
};

struct rpc_conn {
	uv_pipe_t pipe; /* pipe.data points back here */
	uv_shutdown_t shutdown;
	struct rpc *rpc;
	struct rpc_conn *prev, *next;
	char *line;                      /* partial line carried between reads */
	size_t len, cap;                 /* cap never exceeds RPC_LINE_MAX */
	struct rpc_req *q_head, *q_tail; /* requests in arrival order, not yet written */
	bool closing;                    /* uv_close called; the close callback frees */
	bool draining;                   /* reading stopped; shut down once the queue is written */
	bool shutting;                   /* uv_shutdown in flight */
};

/* One write: the request and its bytes in one allocation, freed in on_write. */
struct wbuf {
	uv_write_t w;
	size_t len;
	char data[];
};

struct rpc_req {
	struct rpc *rpc;
	struct rpc_conn *conn;       /* NULL once the connection is closing */
	struct rpc_req *prev, *next; /* in conn's queue */
	json_t *id;                  /* NULL for a notification: the answer is dropped */
	struct wbuf *out;            /* the answer, once given, until the ones ahead are written */
	bool answered;
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

/* Serializes msg (reference stolen) as one line; NULL if jansson cannot. */
static struct wbuf *wbuf_from_json(json_t *msg)
{
	char *s = td_json_dump(msg, JSON_COMPACT);
	json_decref(msg);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	struct wbuf *wb = td_xmalloc(sizeof(*wb) + n + 1);
	memcpy(wb->data, s, n);
	wb->data[n] = '\n';
	wb->len = n + 1;
	free(s);
	return wb;
}

static void on_write(uv_write_t *w, int status)
{
	struct wbuf *wb = (struct wbuf *)w;
	struct rpc_conn *c = w->handle->data;

	free(wb);
	if (status < 0 && !c->closing)
		conn_close(c);
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
}

static void req_free(struct rpc_req *q)
{
	struct rpc *r = q->rpc;
	json_decref(q->id);
	free(q->out);
	free(q);
	rpc_unref(r);
}

/*
 * Writes the answers at the head of c's queue that are ready, stopping at the
 * first request with an id that is still unanswered (unanswered notifications
 * are passed over: they never produce an answer). A draining connection is
 * shut down once nothing is left to write.
 */
static void conn_flush(struct rpc_conn *c)
{
	struct rpc_req *q, *next;
	bool blocked = false;

	for (q = c->q_head; q && !c->closing; q = next) {
		next = q->next;
		if (!q->answered) {
			if (q->id) {
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
	if (c->closing || blocked || !c->draining || c->shutting)
		return;
	c->shutting = true;
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, on_shutdown) < 0)
		conn_close(c);
}

/* ---- requests --------------------------------------------------------- */

static struct rpc_req *req_new(struct rpc_conn *c)
{
	struct rpc_req *q = td_xcalloc(1, sizeof(*q));
	q->rpc = c->rpc;
	q->conn = c;
	c->rpc->refs++;
	q->prev = c->q_tail;
	if (c->q_tail)
		c->q_tail->next = q;
	else
		c->q_head = q;
	c->q_tail = q;
	return q;
}

/*
 * Gives q its answer: member is "result" or "error", val is stolen. Frees q
 * now if the answer goes nowhere, else leaves it queued for conn_flush.
 */
static void req_answer(struct rpc_req *q, const char *member, json_t *val)
{
	struct rpc_conn *c = q->conn;

	if (q->answered) {
		rpc_log("internal error: request answered twice");
		abort();
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
	json_t *msg = json_object();
	json_object_set_new(msg, "jsonrpc", json_string("2.0"));
	json_object_set(msg, "id", q->id);
	json_object_set_new(msg, member, val ? val : json_null());
	q->out = wbuf_from_json(msg);
	if (!q->out) {
		rpc_log("cannot encode an answer");
		msg = json_object();
		json_object_set_new(msg, "jsonrpc", json_string("2.0"));
		json_object_set(msg, "id", q->id);
		json_t *e = json_object();
		json_object_set_new(e, "code", td_json_number("-32603", 6));
		json_object_set_new(e, "message", json_string("internal error: cannot encode the answer"));
		json_object_set_new(msg, "error", e);
		q->out = wbuf_from_json(msg);
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
	struct rpc_conn *c = req->conn;

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
	conn_write(c, wb);
	return !c->closing;
}

size_t rpc_req_queued(const struct rpc_req *req)
{
	if (!req->conn || req->conn->closing)
		return 0;
	return uv_stream_get_write_queue_size((const uv_stream_t *)&req->conn->pipe);
}

bool rpc_req_alive(const struct rpc_req *req)
{
	return req->conn != NULL;
}

/* Answers a malformed request (its id, or null when there is no usable one) with an error. */
static void req_refuse(struct rpc_req *q, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void req_refuse(struct rpc_req *q, int code, const char *fmt, ...)
{
	char msg[RPC_MSG_MAX];
	va_list ap;

	if (!q->id)
		q->id = json_null();
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	req_answer(q, "error", error_object(code, msg));
}

static bool valid_id(const json_t *id)
{
	return json_is_null(id) || td_json_is_string(id) || td_json_is_number(id);
}

/* Parses and checks one request line, then answers it or hands it to the handler. */
static void conn_line(struct rpc_conn *c, const char *line, size_t len)
{
	struct rpc *r = c->rpc;
	char err[TD_ERRMSG_MAX];

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len)
		return; /* blank lines are ignored */

	struct rpc_req *q = req_new(c);
	json_t *root = td_json_load(line, len, err, sizeof(err));
	if (!root) {
		req_refuse(q, TD_RPC_PARSE_ERROR, "parse error: %s", err);
		return;
	}
	if (!json_is_object(root)) {
		req_refuse(q, TD_RPC_INVALID_REQUEST, "invalid request: a request must be a JSON object%s",
			   json_is_array(root) ? " (batches are not supported)" : "");
		goto out;
	}
	json_t *id = json_object_get(root, "id");
	if (id && !valid_id(id)) {
		req_refuse(q, TD_RPC_INVALID_REQUEST, "invalid request: \"id\" must be a string, a number or null");
		goto out;
	}
	if (id)
		q->id = json_incref(id);
	json_t *ver = json_object_get(root, "jsonrpc");
	if (!td_json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0) {
		req_refuse(q, TD_RPC_INVALID_REQUEST, "invalid request: \"jsonrpc\" must be \"2.0\"");
		goto out;
	}
	json_t *method = json_object_get(root, "method");
	if (!td_json_is_string(method)) {
		req_refuse(q, TD_RPC_INVALID_REQUEST, "invalid request: \"method\" must be a string");
		goto out;
	}
	json_t *params = json_object_get(root, "params");
	if (params && !json_is_object(params) && !json_is_array(params)) {
		req_refuse(q, TD_RPC_INVALID_PARAMS, "invalid params: \"params\" must be an object or an array");
		goto out;
	}
	if (params)
		json_incref(params);
	else
		params = json_object();
	r->fn(r->ctx, q, json_string_value(method), params);
	json_decref(params);
out:
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
	req_refuse(req_new(c), TD_RPC_INVALID_REQUEST, "request too large (over %d bytes)", RPC_LINE_MAX);
}

/* Appends n bytes to c's partial line; the caller has checked the cap. */
static void conn_append(struct rpc_conn *c, const char *p, size_t n)
{
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < c->len + n)
			cap *= 2;
		if (cap > RPC_LINE_MAX)
			cap = RPC_LINE_MAX;
		c->line = td_xrealloc(c->line, cap);
		c->cap = cap;
	}
	memcpy(c->line + c->len, p, n);
	c->len += n;
}

/* Splits n bytes read from c into lines; stops when c starts closing or draining. */
static void conn_feed(struct rpc_conn *c, const char *p, size_t n)
{
	while (n > 0 && !c->closing && !c->draining) {
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
				conn_line(c, c->line, c->len); /* c->line is freed only in the close callback */
				c->len = 0;
			}
		}
		if (!nl)
			return;
		p += take + 1;
		n -= take + 1;
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
	for (q = c->q_head; q; q = next) {
		next = q->next;
		q->prev = q->next = NULL;
		q->conn = NULL;
		if (q->answered)
			req_free(q);
	}
	c->q_head = c->q_tail = NULL;
	uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
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
	if (r->nconns > RPC_CLIENTS_MAX) {
		if (!r->full_logged)
			rpc_log("too many clients (%d); refusing new connections", RPC_CLIENTS_MAX);
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

static void on_listener_closed(uv_handle_t *h)
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
	uv_close((uv_handle_t *)&r->listener, on_listener_closed);
	for (struct rpc_conn *c = r->conns; c; c = c->next)
		conn_close(c);
	if (lstat(r->path, &st) == 0 && st.st_dev == r->sock_dev && st.st_ino == r->sock_ino)
		unlink(r->path);
}
