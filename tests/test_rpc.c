/*
 * Tests for node/rpc.c: the JSON-RPC server on a Unix socket.
 *
 * Each test starts an rpc on its own loop, runs the loop in a second thread
 * and plays the client from the test thread with plain blocking sockets and
 * bounded waits (poll with a deadline), so cmocka's asserts stay in the test
 * thread. The handler runs on the loop thread only; the test thread talks to
 * it only through the socket and a uv_async_t that stops the rpc. Teardown
 * checks that the socket file is gone and that the loop closes with no
 * handle left.
 *
 * Handler methods: "echo" (returns params), "later" ({"ms":N,"value":V}:
 * answers V from a timer), "err" (an rpc_error), "hold" (parks the request),
 * "parked" (how many parked, how many still alive, timers, echoes), "release"
 * (answers the parked requests; returns how many had lost their client),
 * "notify" (two notifications then an answer), "stop" (answers, then
 * rpc_stop), "tender.watch" (a notification, then parks the request and never
 * answers it, like the node's), "stream" ({"n":N,"size":S}: a streamed
 * answer, an array of N strings of S x's, a few per turn, like
 * ledger.export), and the methods of the JSON-RPC 2.0
 * specification's examples (section 7): "subtract" (positional or named),
 * "sum", "get_data", and "update", "notify_hello", "notify_sum" (null).
 * Unknown methods get -32601.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rpc.h"
#include "tenderd/json.h"

#define WAIT_MS 5000 /* longest wait for any single answer */
#define PARK_MAX 8

struct fx {
	uv_loop_t loop;
	uv_async_t stop_async;
	struct rpc *rpc;
	pthread_t thread;
	bool thread_started;
	char dir[64];
	char path[128];
	/* loop thread only until the thread is joined */
	struct rpc_req *parked[PARK_MAX];
	int nparked;
	int later_dead;    /* "later" answers given after the client left */
	int later_active;  /* "later" timers not yet fired */
	int echoes;        /* "echo" requests the handler saw */
	int watches;       /* "tender.watch" requests the handler saw */
	int streams;       /* "stream" answers being streamed */
	int aborts;        /* "stream" answers given up because the client left */
	size_t max_queued; /* most bytes a "stream" producer saw unsent on its connection */
};

/* A "stream" answer being produced. */
struct streamer {
	struct fx *fx;
	int n, size, next;
	char *item; /* ,"xxx...x" */
};

#define STREAM_ITEMS_PER_TURN 16

static void stream_turn(void *arg, struct rpc_req *req)
{
	struct streamer *s = arg;
	size_t q = rpc_req_queued(req);

	if (q > s->fx->max_queued)
		s->fx->max_queued = q;
	if (!rpc_req_alive(req)) {
		s->fx->aborts++;
		s->fx->streams--;
		rpc_stream_abort(req);
		free(s->item);
		free(s);
		return;
	}
	for (int k = 0; k < STREAM_ITEMS_PER_TURN && s->next < s->n && !rpc_stream_full(req); k++, s->next++)
		rpc_stream_write(req, s->item + (s->next == 0), (size_t)s->size + 3 - (s->next == 0));
	if (s->next == s->n) {
		rpc_stream_write(req, "]", 1);
		rpc_stream_end(req);
		s->fx->streams--;
		free(s->item);
		free(s);
	}
}

struct later {
	uv_timer_t timer;
	struct rpc_req *req;
	json_t *value;
	struct fx *fx;
};

static void on_later_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_later(uv_timer_t *t)
{
	struct later *l = t->data;
	if (!rpc_req_alive(l->req))
		l->fx->later_dead++;
	l->fx->later_active--;
	rpc_reply(l->req, l->value);
	uv_close((uv_handle_t *)t, on_later_closed);
}

static void release_parked(struct fx *f, int *dead)
{
	for (int i = 0; i < f->nparked; i++) {
		if (!rpc_req_alive(f->parked[i]))
			(*dead)++;
		rpc_reply(f->parked[i], json_string("released"));
	}
	f->nparked = 0;
}

/* A number param as an integer (the fake arithmetic of the specification's examples). */
static long long param_ll(const json_t *v)
{
	size_t len;
	const char *s = td_json_number_text(v, &len);
	char tmp[32];
	if (!s || len >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return strtoll(tmp, NULL, 10);
}

static json_t *ll_json(long long v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "%lld", v);
	return td_json_number(tmp, (size_t)n);
}

/* The methods of the specification's examples; false if method is none of them. */
static bool spec_method(struct rpc_req *req, const char *method, json_t *params)
{
	if (strcmp(method, "subtract") == 0) {
		long long a, b;
		if (json_is_array(params)) {
			a = param_ll(json_array_get(params, 0));
			b = param_ll(json_array_get(params, 1));
		} else {
			a = param_ll(json_object_get(params, "minuend"));
			b = param_ll(json_object_get(params, "subtrahend"));
		}
		rpc_reply(req, ll_json(a - b));
	} else if (strcmp(method, "sum") == 0) {
		long long t = 0;
		size_t i;
		json_t *v;
		json_array_foreach(params, i, v)
			t += param_ll(v);
		rpc_reply(req, ll_json(t));
	} else if (strcmp(method, "get_data") == 0) {
		json_t *r = json_array();
		json_array_append_new(r, json_string("hello"));
		json_array_append_new(r, ll_json(5));
		rpc_reply(req, r);
	} else if (strcmp(method, "update") == 0 || strcmp(method, "notify_hello") == 0 ||
		   strcmp(method, "notify_sum") == 0) {
		rpc_reply(req, NULL);
	} else {
		return false;
	}
	return true;
}

static void handler(void *ctx, struct rpc_req *req, const char *method, json_t *params)
{
	struct fx *f = ctx;

	if (spec_method(req, method, params))
		return;
	if (strcmp(method, "echo") == 0) {
		f->echoes++;
		rpc_reply(req, json_incref(params));
	} else if (strcmp(method, "later") == 0) {
		uint64_t ms = 0;
		if (!td_json_number_u64(json_object_get(params, "ms"), &ms)) {
			rpc_error(req, TD_RPC_INVALID_PARAMS, "ms missing");
			return;
		}
		struct later *l = calloc(1, sizeof(*l));
		l->req = req;
		l->fx = f;
		l->value = json_incref(json_object_get(params, "value"));
		uv_timer_init(&f->loop, &l->timer);
		l->timer.data = l;
		uv_timer_start(&l->timer, on_later, ms, 0);
		f->later_active++;
	} else if (strcmp(method, "err") == 0) {
		rpc_error(req, TD_RPC_RULE, "refused: %s", "because");
	} else if (strcmp(method, "whoami") == 0) {
		uint32_t uid;
		int32_t pid;
		if (!rpc_req_peer(req, &uid, &pid)) {
			rpc_error(req, TD_RPC_RULE, "no peer credentials");
			return;
		}
		rpc_reply(req, json_pack("{s:o, s:o}", "uid", td_json_uint(uid), "pid", td_json_uint((uint64_t)pid)));
	} else if (strcmp(method, "hold") == 0) {
		if (f->nparked == PARK_MAX) {
			rpc_error(req, TD_RPC_MEMPOOL_FULL, "too many held");
			return;
		}
		f->parked[f->nparked++] = req;
	} else if (strcmp(method, "parked") == 0) {
		int alive = 0;
		for (int i = 0; i < f->nparked; i++)
			alive += rpc_req_alive(f->parked[i]);
		json_t *r = json_object();
		json_object_set_new(r, "total", td_json_uint((uint64_t)f->nparked));
		json_object_set_new(r, "alive", td_json_uint((uint64_t)alive));
		json_object_set_new(r, "timers", td_json_uint((uint64_t)f->later_active));
		json_object_set_new(r, "echoes", td_json_uint((uint64_t)f->echoes));
		json_object_set_new(r, "watches", td_json_uint((uint64_t)f->watches));
		json_object_set_new(r, "streams", td_json_uint((uint64_t)f->streams));
		json_object_set_new(r, "aborts", td_json_uint((uint64_t)f->aborts));
		json_object_set_new(r, "max_queued", td_json_uint((uint64_t)f->max_queued));
		rpc_reply(req, r);
	} else if (strcmp(method, "release") == 0) {
		int dead = 0;
		release_parked(f, &dead);
		rpc_reply(req, td_json_uint((uint64_t)dead));
	} else if (strcmp(method, "notify") == 0) {
		bool a = rpc_notify(req, "tick", td_json_uint(1));
		bool b = rpc_notify(req, "tick", td_json_uint(2));
		rpc_reply(req, json_boolean(a && b));
	} else if (strcmp(method, "tender.watch") == 0) {
		f->watches++;
		rpc_notify(req, "tender.release", json_object());
		if (f->nparked == PARK_MAX) {
			rpc_error(req, TD_RPC_MEMPOOL_FULL, "too many held");
			return;
		}
		f->parked[f->nparked++] = req;
	} else if (strcmp(method, "stream") == 0) {
		uint64_t n = 0, size = 0;
		if (!td_json_number_u64(json_object_get(params, "n"), &n) ||
		    !td_json_number_u64(json_object_get(params, "size"), &size) || size > 4096) {
			rpc_error(req, TD_RPC_INVALID_PARAMS, "n and size");
			return;
		}
		struct streamer *s = calloc(1, sizeof(*s));
		s->fx = f;
		s->n = (int)n;
		s->size = (int)size;
		s->item = malloc(size + 3);
		s->item[0] = ',';
		s->item[1] = '"';
		memset(s->item + 2, 'x', size);
		s->item[size + 2] = '"';
		if (!rpc_stream_begin(req, stream_turn, s)) {
			free(s->item);
			free(s);
			rpc_reply(req, NULL);
			return;
		}
		f->streams++;
		rpc_stream_write(req, "[", 1);
		if (n == 0) {
			rpc_stream_write(req, "]", 1);
			rpc_stream_end(req);
			f->streams--;
			free(s->item);
			free(s);
		}
	} else if (strcmp(method, "stop") == 0) {
		rpc_reply(req, json_true());
		rpc_stop(f->rpc);
		f->rpc = NULL; /* freed once its handles are closed */
	} else {
		rpc_error(req, TD_RPC_METHOD_NOT_FOUND, "unknown method %s", method);
	}
}

/* Stops the rpc from the loop thread; parked requests are answered after the stop. */
static void on_stop_async(uv_async_t *a)
{
	struct fx *f = a->data;
	int dead = 0;
	rpc_stop(f->rpc);
	release_parked(f, &dead);
	uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
	struct fx *f = arg;
	uv_run(&f->loop, UV_RUN_DEFAULT);
	return NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	strcpy(f->dir, "/tmp/td_rpc_XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/tenderd.sock", f->dir);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(uv_async_init(&f->loop, &f->stop_async, on_stop_async), 0);
	f->stop_async.data = f;
	int rc = rpc_start(&f->rpc, &f->loop, f->path, handler, f, err, sizeof(err));
	if (rc != 0)
		fail_msg("rpc_start: %s", err);
	assert_int_equal(pthread_create(&f->thread, NULL, loop_main, f), 0);
	f->thread_started = true;
	*state = f;
	return 0;
}

/* Stops the rpc and waits (bounded) for the loop thread to end. */
static void stop_and_join(struct fx *f)
{
	struct timespec ts;

	if (!f->thread_started)
		return;
	assert_int_equal(uv_async_send(&f->stop_async), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	int rc = pthread_timedjoin_np(f->thread, NULL, &ts);
	if (rc != 0) {
		fprintf(stderr, "loop thread did not finish: handles left open\n");
		abort(); /* cannot continue safely with the loop still running */
	}
	f->thread_started = false;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct stat st;

	stop_and_join(f);
	assert_int_equal(lstat(f->path, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

/* ---- a small blocking client ------------------------------------------ */

struct client {
	int fd;
	char *buf;
	size_t len, cap;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fill_addr(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	assert_true(n < sizeof(sa->sun_path));
	memcpy(sa->sun_path, path, n + 1);
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	fill_addr(&sa, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static struct client *client_new(const char *path)
{
	struct client *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->fd = raw_connect(path);
	assert_true(c->fd >= 0);
	return c;
}

static void client_free(struct client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

/* Sends all of s; returns false if the server closed the connection first. */
static bool client_send_n(struct client *c, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		s += k;
		n -= (size_t)k;
	}
	return true;
}

static void client_send(struct client *c, const char *s)
{
	assert_true(client_send_n(c, s, strlen(s)));
}

/*
 * Reads one line (returned NUL-terminated without its newline, valid until
 * the next read) within WAIT_MS; NULL on EOF or connection reset. Fails the
 * test on timeout.
 */
static char *client_line(struct client *c)
{
	int64_t deadline = now_ms() + WAIT_MS;
	static char *line;
	static size_t linecap;

	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			if (n + 1 > linecap) {
				free(line);
				linecap = n + 1;
				line = malloc(linecap);
				assert_non_null(line);
			}
			memcpy(line, c->buf, n);
			line[n] = '\0';
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return line;
		}
		int64_t left = deadline - now_ms();
		if (left <= 0)
			fail_msg("no answer within %d ms", WAIT_MS);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int rc = poll(&p, 1, (int)left);
		if (rc <= 0)
			continue;
		if (c->cap - c->len < 65536) {
			c->cap = c->cap * 2 + 65536;
			c->buf = realloc(c->buf, c->cap);
			assert_non_null(c->buf);
		}
		ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == ECONNRESET)
			return NULL;
		assert_true(k >= 0);
		if (k == 0)
			return NULL;
		c->len += (size_t)k;
	}
}

/* Reads one line and parses it. */
static json_t *client_json(struct client *c)
{
	char err[256];
	char *line = client_line(c);
	assert_non_null(line);
	json_t *v = td_json_load(line, strlen(line), err, sizeof(err));
	if (!v)
		fail_msg("answer is not JSON (%s): %.200s", err, line);
	return v;
}

/* Sends one request line and returns the parsed answer. */
static json_t *roundtrip(struct client *c, const char *line)
{
	client_send(c, line);
	return client_json(c);
}

static int64_t num(const json_t *v)
{
	size_t len;
	const char *s = td_json_number_text(v, &len);
	assert_non_null(s);
	char tmp[32];
	assert_true(len < sizeof(tmp));
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return strtoll(tmp, NULL, 10);
}

/* Checks that ans is an error with code and a message containing needle; returns its id. */
static const json_t *expect_error(const json_t *ans, int code, const char *needle)
{
	const json_t *e = json_object_get(ans, "error");
	assert_non_null(e);
	assert_null(json_object_get(ans, "result"));
	assert_string_equal(json_string_value(json_object_get(ans, "jsonrpc")), "2.0");
	assert_int_equal(num(json_object_get(e, "code")), code);
	const char *msg = json_string_value(json_object_get(e, "message"));
	assert_non_null(msg);
	if (!strstr(msg, needle))
		fail_msg("message '%s' lacks '%s'", msg, needle);
	return json_object_get(ans, "id");
}

/* Asks "parked" until total, alive (and timers, unless negative) match, within WAIT_MS. */
static void wait_state(struct client *c, int64_t total, int64_t alive, int64_t timers)
{
	int64_t deadline = now_ms() + WAIT_MS;
	for (;;) {
		json_t *a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"parked\"}\n");
		json_t *r = json_object_get(a, "result");
		bool ok = num(json_object_get(r, "total")) == total && num(json_object_get(r, "alive")) == alive &&
			  (timers < 0 || num(json_object_get(r, "timers")) == timers);
		json_decref(a);
		if (ok)
			return;
		if (now_ms() > deadline)
			fail_msg("parked never reached total %lld alive %lld", (long long)total, (long long)alive);
		usleep(5000);
	}
}

static void wait_parked(struct client *c, int64_t total, int64_t alive)
{
	wait_state(c, total, alive, -1);
}

/* ---- tests ------------------------------------------------------------ */

static void test_socket_mode(void **state)
{
	struct fx *f = *state;
	struct stat st;
	char err[256];
	struct rpc *r = NULL;
	uv_loop_t loop;
	char path[160];

	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);

	/* With an empty umask bind would make 0777: the mode must come from rpc_start itself. */
	snprintf(path, sizeof(path), "%s/second.sock", f->dir);
	mode_t old = umask(0);
	assert_int_equal(uv_loop_init(&loop), 0);
	int rc = rpc_start(&r, &loop, path, handler, f, err, sizeof(err));
	umask(old);
	assert_int_equal(rc, 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	rpc_stop(r);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_echo_exact(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);

	/* Exact numbers survive the round trip byte for byte. */
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"echo\",\"params\":"
		       "{\"amount\":712500000.50,\"big\":123456789012345678901234567890,\"e\":1.0E+2}}\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":"
					    "{\"amount\":712500000.50,\"big\":123456789012345678901234567890,"
					    "\"e\":1.0E+2}}");
	/* String, exact-number and null ids come back unchanged; absent params become {}. */
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"echo\"}\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":{}}");
	client_send(c, "{\"id\":1.50,\"method\":\"echo\",\"params\":[1,\"x\"],\"jsonrpc\":\"2.0\"}\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":1.50,\"result\":[1,\"x\"]}");
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"echo\",\"params\":[]}\r\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":[]}");
	/* Handler errors carry code and message. */
	json_t *a = roundtrip(c, "\n\n{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"err\"}\n");
	assert_int_equal(num(expect_error(a, TD_RPC_RULE, "refused: because")), 9);
	json_decref(a);
	/* Notifications sent on a request's connection come before its answer. */
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"notify\"}\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"method\":\"tick\",\"params\":1}");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"method\":\"tick\",\"params\":2}");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":10,\"result\":true}");
	client_free(c);
}

static void test_pipelined_order(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);

	/*
	 * The first answer comes last from the handler, the notification (no id)
	 * never answers: answers must still leave in request order 1, 2, 3, 4.
	 */
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"later\",\"params\":{\"ms\":80,\"value\":\"a\"}}\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"later\",\"params\":{\"ms\":5,\"value\":\"b\"}}\n"
		       "{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"notification\"]}\n"
		       "{\"jsonrpc\":\"2.0\",\"method\":\"hold\"}\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\",\"params\":[\"c\"]}\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"later\",\"params\":{\"ms\":0,\"value\":\"d\"}}\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"a\"}");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":\"b\"}");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":[\"c\"]}");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":\"d\"}");
	/* The held notification is still pending and alive; releasing it writes nothing. */
	wait_parked(c, 1, 1);
	json_t *a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"release\"}\n");
	assert_int_equal(num(json_object_get(a, "result")), 0);
	assert_int_equal(num(json_object_get(a, "id")), 5);
	json_decref(a);
	client_free(c);
}

static void test_malformed(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);
	json_t *a;

	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\n");
	assert_true(json_is_null(expect_error(a, TD_RPC_PARSE_ERROR, "parse error")));
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"amount\":01}\n");
	assert_true(json_is_null(expect_error(a, TD_RPC_PARSE_ERROR, "invalid number")));
	json_decref(a);
	/* The connection still works after a parse error. */
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\",\"params\":[2]}\n");
	assert_int_equal(num(json_object_get(a, "id")), 2);
	assert_non_null(json_object_get(a, "result"));
	json_decref(a);
	/* An array is a batch (test_spec_examples and the tests after it). */
	client_send(c, "[{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\"}]\n");
	assert_string_equal(client_line(c), "[{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}]");
	a = roundtrip(c, "\"echo\"\n");
	assert_true(json_is_null(expect_error(a, TD_RPC_INVALID_REQUEST, "must be a JSON object")));
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":4}\n");
	assert_int_equal(num(expect_error(a, TD_RPC_INVALID_REQUEST, "\"method\" must be a string")), 4);
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":5}\n");
	assert_int_equal(num(expect_error(a, TD_RPC_INVALID_REQUEST, "\"method\" must be a string")), 5);
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":\"1.0\",\"id\":6,\"method\":\"echo\"}\n");
	assert_int_equal(num(expect_error(a, TD_RPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"")), 6);
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":2.0,\"id\":7,\"method\":\"echo\"}\n");
	assert_int_equal(num(expect_error(a, TD_RPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"")), 7);
	json_decref(a);
	/* A request without id that is malformed is still answered, with id null. */
	a = roundtrip(c, "{\"id\":null,\"method\":\"echo\"}\n");
	assert_true(json_is_null(expect_error(a, TD_RPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"")));
	json_decref(a);
	a = roundtrip(c, "{\"method\":\"echo\"}\n");
	assert_true(json_is_null(expect_error(a, TD_RPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"")));
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":{\"x\":1},\"method\":\"echo\"}\n");
	assert_true(json_is_null(expect_error(a, TD_RPC_INVALID_REQUEST, "\"id\" must be")));
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"echo\",\"params\":\"x\"}\n");
	assert_int_equal(num(expect_error(a, TD_RPC_INVALID_PARAMS, "\"params\" must be")), 8);
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"echo\",\"params\":null}\n");
	assert_int_equal(num(expect_error(a, TD_RPC_INVALID_PARAMS, "\"params\" must be")), 9);
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"echo\",\"id\":11}\n");
	assert_true(json_is_null(expect_error(a, TD_RPC_PARSE_ERROR, "duplicate")));
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"nope\"}\n");
	assert_int_equal(num(expect_error(a, TD_RPC_METHOD_NOT_FOUND, "unknown method nope")), 12);
	json_decref(a);
	/* Still alive at the end. */
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"echo\",\"params\":{\"ok\":true}}\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":13,\"result\":{\"ok\":true}}");
	client_free(c);
}

/* A request line of exactly len bytes (without newline): an echo of one long string. */
static char *long_request(size_t len)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"";
	static const char tail[] = "\"]}";
	char *s = malloc(len + 2);
	assert_non_null(s);
	size_t h = sizeof(head) - 1, t = sizeof(tail) - 1;
	memcpy(s, head, h);
	memset(s + h, 'a', len - h - t);
	memcpy(s + len - t, tail, t);
	s[len] = '\n';
	s[len + 1] = '\0';
	return s;
}

static void test_line_limit(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);

	/* A line of exactly RPC_LINE_MAX bytes is served. */
	char *req = long_request(RPC_LINE_MAX);
	assert_true(client_send_n(c, req, RPC_LINE_MAX + 1));
	char *line = client_line(c);
	assert_non_null(line);
	assert_int_equal(strlen(line), RPC_LINE_MAX -
					       strlen("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":") +
					       strlen("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":"));
	free(req);

	/* One byte more: an error, then the server closes the connection. */
	req = long_request(RPC_LINE_MAX + 1);
	client_send_n(c, req, RPC_LINE_MAX + 1); /* no newline; the server may close before all is sent */
	free(req);
	json_t *a = client_json(c);
	assert_true(json_is_null(expect_error(a, TD_RPC_INVALID_REQUEST, "request too large")));
	json_decref(a);
	assert_null(client_line(c));
	client_free(c);

	/* Other clients are unaffected. */
	c = client_new(f->path);
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}\n");
	assert_non_null(json_object_get(a, "result"));
	json_decref(a);
	client_free(c);
}

static void test_many_clients(void **state)
{
	struct fx *f = *state;
	enum { N = 50 };
	struct client *c[N];
	char buf[256];

	for (int i = 0; i < N; i++)
		c[i] = client_new(f->path);
	/* All send before any reads; half of the answers come from timers. */
	for (int i = 0; i < N; i++) {
		if (i % 2)
			snprintf(
				buf, sizeof(buf),
				"{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"later\",\"params\":{\"ms\":%d,\"value\":%d}}\n",
				i, (N - i) % 7, i * 10);
		else
			snprintf(buf, sizeof(buf),
				 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"echo\",\"params\":[%d]}\n", i, i * 10);
		client_send(c[i], buf);
	}
	for (int i = N - 1; i >= 0; i--) {
		if (i % 2)
			snprintf(buf, sizeof(buf), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":%d}", i, i * 10);
		else
			snprintf(buf, sizeof(buf), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":[%d]}", i, i * 10);
		assert_string_equal(client_line(c[i]), buf);
	}
	for (int i = 0; i < N; i++)
		client_free(c[i]);
}

static void test_clients_max(void **state)
{
	struct fx *f = *state;
	struct client *c[RPC_CLIENTS_MAX];
	json_t *a;

	for (int i = 0; i < RPC_CLIENTS_MAX; i++)
		c[i] = client_new(f->path);
	/* Connections are accepted in order: once the last of the cap answers, all are in. */
	a = roundtrip(c[RPC_CLIENTS_MAX - 1], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}\n");
	assert_non_null(json_object_get(a, "result"));
	json_decref(a);
	/* One more is closed at accept. */
	struct client *extra = client_new(f->path);
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}\n";
	client_send_n(extra, req, strlen(req)); /* may fail: the server closes at accept */
	assert_null(client_line(extra));
	client_free(extra);
	/* The first one still works. */
	a = roundtrip(c[0], "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}\n");
	assert_int_equal(num(json_object_get(a, "id")), 2);
	json_decref(a);
	for (int i = 0; i < RPC_CLIENTS_MAX; i++)
		client_free(c[i]);
}

/* With the table full, a newcomer takes the place of the client idle the longest; the others stay. */
static void test_full_table_evicts_idle(void **state)
{
	struct fx *f = *state;
	struct client *c[RPC_CLIENTS_MAX];
	json_t *a;

	for (int i = 0; i < RPC_CLIENTS_MAX; i++)
		c[i] = client_new(f->path);
	a = roundtrip(c[RPC_CLIENTS_MAX - 1], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}\n");
	json_decref(a);
	usleep((RPC_EVICT_IDLE_MS + 300) * 1000);
	struct client *extra = client_new(f->path);
	a = roundtrip(extra, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"echo\"}\n");
	assert_non_null(a);
	assert_int_equal(num(json_object_get(a, "id")), 7);
	json_decref(a);
	int closed = 0;
	for (int i = 0; i < RPC_CLIENTS_MAX; i++) {
		const char *req = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\"}\n";
		client_send_n(c[i], req, strlen(req)); /* may fail on the closed one */
		closed += client_line(c[i]) == NULL;
	}
	assert_int_equal(closed, 1);
	client_free(extra);
	for (int i = 0; i < RPC_CLIENTS_MAX; i++)
		client_free(c[i]);
}

/* The uid and pid of the process behind a request, for the log of who published. */
static void test_peer_credentials(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);
	json_t *a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"whoami\"}\n");
	json_t *r = json_object_get(a, "result");
	assert_non_null(r);
	assert_int_equal(num(json_object_get(r, "uid")), (int64_t)getuid());
	assert_int_equal(num(json_object_get(r, "pid")), (int64_t)getpid());
	json_decref(a);
	client_free(c);
}

static void test_disconnect_pending(void **state)
{
	struct fx *f = *state;
	struct client *ctl = client_new(f->path);
	struct client *a = client_new(f->path), *b = client_new(f->path);

	/* a and b each leave a request pending; a also has an answered one queued behind it. */
	client_send(a, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hold\"}\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\",\"params\":[\"queued\"]}\n");
	client_send(b, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hold\"}\n");
	wait_parked(ctl, 2, 2);
	client_free(a);
	wait_parked(ctl, 2, 1);
	/* The handler answers both: a's answer is dropped, b's arrives. */
	json_t *ans = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"release\"}\n");
	assert_int_equal(num(json_object_get(ans, "result")), 1);
	json_decref(ans);
	assert_string_equal(client_line(b), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"released\"}");
	client_free(b);

	/* A client that leaves while a timer is about to answer it. */
	struct client *d = client_new(f->path);
	client_send(d, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"later\",\"params\":{\"ms\":300,\"value\":1}}\n");
	wait_state(ctl, 0, 0, 1);
	client_free(d);
	client_free(ctl);
	stop_and_join(f);
	assert_int_equal(f->later_dead, 1);
}

static void test_stop_with_pending(void **state)
{
	struct fx *f = *state;
	struct client *ctl = client_new(f->path);
	struct client *a = client_new(f->path);
	struct stat st;

	client_send(a, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hold\"}\n");
	wait_parked(ctl, 1, 1);
	/* Stopping closes every connection; the held request is answered after the stop. */
	stop_and_join(f);
	assert_null(client_line(a));
	assert_null(client_line(ctl));
	assert_int_equal(lstat(f->path, &st), -1);
	assert_int_equal(raw_connect(f->path), -1);
	client_free(a);
	client_free(ctl);
}

static void test_stop_from_handler(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);
	struct stat st;

	/* rpc_stop inside the read callback that called the handler, with more lines behind it. */
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"stop\"}\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":true}");
	assert_null(client_line(c));
	int64_t deadline = now_ms() + WAIT_MS;
	while (lstat(f->path, &st) == 0 && now_ms() < deadline)
		usleep(1000);
	assert_int_equal(lstat(f->path, &st), -1);
	client_free(c);
}

static void test_slow_reader(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);
	enum { REQS = 12 };
	size_t len = 1000 * 1000;
	char *req = long_request(len);
	bool cut = false;

	/* About 12 MB of answers that the client never reads: over the 8 MiB write cap. */
	for (int i = 0; i < REQS && !cut; i++)
		cut = !client_send_n(c, req, len + 1);
	free(req);
	usleep(200000);
	/* Drain: the server must have closed the connection before sending everything. */
	size_t total = 0;
	int64_t deadline = now_ms() + WAIT_MS;
	char *buf = malloc(1 << 20);
	assert_non_null(buf);
	for (;;) {
		assert_true(now_ms() < deadline);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t k = recv(c->fd, buf, 1 << 20, 0);
		if (k <= 0)
			break;
		total += (size_t)k;
	}
	free(buf);
	assert_true(total < (size_t)REQS * len);
	client_free(c);

	/* The server is still serving others. */
	c = client_new(f->path);
	json_t *a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}\n");
	assert_non_null(json_object_get(a, "result"));
	json_decref(a);
	client_free(c);
}

/* ---- streamed answers ------------------------------------------------- */

/* The "parked" state member key as a number. */
static int64_t state_num(struct client *c, const char *key)
{
	json_t *a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"parked\"}\n");
	int64_t v = num(json_object_get(json_object_get(a, "result"), key));
	json_decref(a);
	return v;
}

/* Waits until the "parked" state member key is want. */
static void wait_num(struct client *c, const char *key, int64_t want)
{
	int64_t deadline = now_ms() + WAIT_MS;
	while (state_num(c, key) != want) {
		if (now_ms() > deadline)
			fail_msg("%s never reached %lld", key, (long long)want);
		usleep(5000);
	}
}

/* Checks that line is the whole streamed answer to id: an array of n strings of size x's. */
static void expect_stream(const char *line, int id, int n, int size)
{
	char head[64];
	snprintf(head, sizeof(head), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":[", id);
	assert_non_null(line);
	assert_int_equal(strncmp(line, head, strlen(head)), 0);
	assert_int_equal(strlen(line), strlen(head) + (size_t)n * ((size_t)size + 3) - (n ? 1 : 0) + 2);
	char err[256];
	json_t *a = td_json_load(line, strlen(line), err, sizeof(err));
	if (!a)
		fail_msg("streamed answer is not JSON: %s", err);
	assert_int_equal(json_array_size(json_object_get(a, "result")), (size_t)n);
	json_decref(a);
}

/*
 * A streamed answer keeps its place: behind a held request it waits (holding
 * a bounded buffer), then comes whole, then the answers behind it; a
 * notification sent meanwhile never lands inside its line; a batch refuses
 * ledger.export.
 */
static void test_stream_order(void **state)
{
	struct fx *f = *state;
	struct client *ctl = client_new(f->path);
	struct client *c = client_new(f->path);

	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hold\"}\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"stream\",\"params\":{\"n\":3000,\"size\":100}}\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\",\"params\":[\"after\"]}\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"stream\",\"params\":{\"n\":0,\"size\":1}}\n");
	wait_parked(ctl, 1, 1);
	wait_num(ctl, "streams", 1);
	usleep(100000);
	/* held behind request 1: at most RPC_STREAM_HOLD_MAX and one turn, far from the 300 KB answer */
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 0);
	json_t *a = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"release\"}\n");
	json_decref(a);
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"released\"}");
	expect_stream(client_line(c), 2, 3000, 100);
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":[\"after\"]}");
	expect_stream(client_line(c), 4, 0, 1);
	wait_num(ctl, "streams", 0);

	/* a notification (here from a watch) while a streamed line is being written waits for its end */
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"stream\",\"params\":{\"n\":20000,\"size\":100}}\n");
	wait_num(ctl, "streams", 1);
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tender.watch\"}\n");
	expect_stream(client_line(c), 5, 20000, 100);
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"method\":\"tender.release\",\"params\":{}}");

	/* ledger.export streams its answer: never inside a batch */
	client_free(c);
	c = client_new(f->path);
	client_send(c, "[{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ledger.export\"}]\n");
	char *line = client_line(c);
	assert_non_null(line);
	assert_non_null(strstr(line, "-32600"));
	assert_non_null(strstr(line, "ledger.export"));
	client_free(c);
	client_free(ctl);
}

/* A client that leaves in the middle of a streamed answer ends it: the producer is told and frees it. */
static void test_stream_disconnect(void **state)
{
	struct fx *f = *state;
	struct client *ctl = client_new(f->path);

	for (int round = 0; round < 2; round++) {
		struct client *c = client_new(f->path);
		client_send(
			c,
			"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"stream\",\"params\":{\"n\":200000,\"size\":100}}\n");
		wait_num(ctl, "streams", 1);
		if (round == 1) {
			/* read some of it first */
			char buf[65536];
			assert_true(recv(c->fd, buf, sizeof(buf), 0) > 0);
		}
		client_free(c);
		wait_num(ctl, "streams", 0);
		wait_num(ctl, "aborts", round + 1);
	}
	/* the server goes on serving */
	json_t *a = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}\n");
	assert_non_null(json_object_get(a, "result"));
	json_decref(a);
	client_free(ctl);
}

/*
 * A client that reads a 20 MB streamed answer slowly is neither cut off nor
 * buffered for: the producer waits while the write queue is full (it never
 * sees much more than RPC_STREAM_QUEUE_MAX unsent), and the answer arrives
 * whole. Other clients are served meanwhile.
 */
static void test_stream_slow_reader(void **state)
{
	struct fx *f = *state;
	struct client *ctl = client_new(f->path);
	struct client *c = client_new(f->path);
	enum { N = 200000, SIZE = 100 };

	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"stream\",\"params\":{\"n\":200000,\"size\":100}}\n");
	wait_num(ctl, "streams", 1);
	usleep(300000);
	assert_int_equal(state_num(ctl, "streams"), 1); /* paused, not finished, not cut */
	assert_true(state_num(ctl, "max_queued") <= RPC_STREAM_QUEUE_MAX + 64 * 1024);
	/* read slowly: 64 KiB every few ms at first */
	char *buf = malloc(64 * 1024);
	size_t total = 0;
	for (int i = 0; i < 20; i++) {
		ssize_t k = recv(c->fd, buf, 64 * 1024, 0);
		assert_true(k > 0);
		total += (size_t)k;
		usleep(5000);
	}
	free(buf);
	json_t *a = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}\n");
	json_decref(a);
	/* the rest of the line, from wherever the reads left it */
	int64_t deadline = now_ms() + WAIT_MS;
	char *rest = malloc(1 << 20);
	bool nl = false;
	while (!nl) {
		assert_true(now_ms() < deadline);
		ssize_t k = recv(c->fd, rest, 1 << 20, 0);
		assert_true(k > 0);
		total += (size_t)k;
		nl = rest[k - 1] == '\n';
	}
	free(rest);
	size_t want = strlen("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[") + (size_t)N * (SIZE + 3) - 1 + 2 + 1;
	assert_int_equal(total, want);
	wait_num(ctl, "streams", 0);
	assert_true(state_num(ctl, "max_queued") <= RPC_STREAM_QUEUE_MAX + 64 * 1024);
	client_free(c);
	client_free(ctl);
}

/* ---- batches ---------------------------------------------------------- */

/* Dumps v compactly into a static buffer (for comparing and messages). */
static const char *dump(const json_t *v)
{
	static char buf[4096];
	char *s = v ? td_json_dump(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	snprintf(buf, sizeof(buf), "%s", s ? s : "(none)");
	free(s);
	return buf;
}

/* True if a and b serialize to the same compact JSON (exact numbers compare by their text). */
static bool same_json(const json_t *a, const json_t *b)
{
	char *sa = a ? td_json_dump(a, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	char *sb = b ? td_json_dump(b, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	bool same = sa && sb && strcmp(sa, sb) == 0;
	free(sa);
	free(sb);
	return same;
}

/*
 * Checks one answer against one expected object of the specification: same
 * jsonrpc and id; the same result, or an error with the same code (messages
 * are the server's own). Returns false on a mismatch.
 */
static bool answer_matches(const json_t *got, const json_t *want)
{
	if (!json_is_object(got) || json_object_size(got) != 3)
		return false;
	if (!td_json_is_string(json_object_get(got, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(got, "jsonrpc")), "2.0") != 0)
		return false;
	if (!same_json(json_object_get(got, "id"), json_object_get(want, "id")))
		return false;
	const json_t *e = json_object_get(want, "error");
	if (e) {
		const json_t *ge = json_object_get(got, "error");
		return json_is_object(ge) && num(json_object_get(ge, "code")) == num(json_object_get(e, "code")) &&
		       td_json_is_string(json_object_get(ge, "message"));
	}
	return same_json(json_object_get(got, "result"), json_object_get(want, "result"));
}

/*
 * Checks the answer line got against the specification's answer want (JSON
 * text): one object, or an array holding the same answers in any order.
 */
static void expect_spec(const char *got_line, const char *want_text)
{
	char err[256];
	json_t *got = td_json_load(got_line, strlen(got_line), err, sizeof(err));
	json_t *want = td_json_load(want_text, strlen(want_text), err, sizeof(err));
	assert_non_null(want);
	if (!got)
		fail_msg("answer is not JSON (%s): %.300s", err, got_line);
	if (json_is_object(want)) {
		if (!answer_matches(got, want))
			fail_msg("answer %.300s, expected %.300s", got_line, want_text);
	} else {
		size_t n = json_array_size(want);
		bool used[64] = { false };
		assert_true(n <= 64);
		if (!json_is_array(got) || json_array_size(got) != n)
			fail_msg("answer %.300s, expected an array of %zu: %.300s", got_line, n, want_text);
		for (size_t i = 0; i < n; i++) {
			bool found = false;
			for (size_t k = 0; k < n && !found; k++)
				if (!used[k] && answer_matches(json_array_get(got, k), json_array_get(want, i)))
					used[k] = found = true;
			if (!found)
				fail_msg("answer %.300s lacks %s", got_line, dump(json_array_get(want, i)));
		}
	}
	json_decref(got);
	json_decref(want);
}

/* Sends line (with its newline) and checks the next answer line against the specification's. */
static void spec(struct client *c, const char *line, const char *want)
{
	client_send(c, line);
	expect_spec(client_line(c), want);
}

/* The end of the answers to what came before: an echo of a marker, answered in order. */
static void expect_nothing_before(struct client *c, int marker)
{
	char req[128], want[128];
	snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"echo\",\"params\":[\"end\"]}\n",
		 marker);
	snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":[\"end\"]}", marker);
	client_send(c, req);
	assert_string_equal(client_line(c), want);
}

/* Every example of the JSON-RPC 2.0 specification, section 7, answered as it gives them. */
static void test_spec_examples(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);

	/* rpc call with positional parameters */
	spec(c, "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": [42, 23], \"id\": 1}\n",
	     "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": 1}");
	spec(c, "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": [23, 42], \"id\": 2}\n",
	     "{\"jsonrpc\": \"2.0\", \"result\": -19, \"id\": 2}");
	/* rpc call with named parameters */
	spec(c,
	     "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": {\"subtrahend\": 23, \"minuend\": 42}, "
	     "\"id\": 3}\n",
	     "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": 3}");
	spec(c,
	     "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": {\"minuend\": 42, \"subtrahend\": 23}, "
	     "\"id\": 4}\n",
	     "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": 4}");
	/* a Notification */
	client_send(c, "{\"jsonrpc\": \"2.0\", \"method\": \"update\", \"params\": [1,2,3,4,5]}\n");
	client_send(c, "{\"jsonrpc\": \"2.0\", \"method\": \"foobar\"}\n");
	expect_nothing_before(c, 100);
	/* rpc call of non-existent method */
	spec(c, "{\"jsonrpc\": \"2.0\", \"method\": \"foobar\", \"id\": \"1\"}\n",
	     "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32601, \"message\": \"Method not found\"}, \"id\": \"1\"}");
	/* rpc call with invalid JSON */
	spec(c, "{\"jsonrpc\": \"2.0\", \"method\": \"foobar, \"params\": \"bar\", \"baz]\n",
	     "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32700, \"message\": \"Parse error\"}, \"id\": null}");
	/* rpc call with invalid Request object */
	spec(c, "{\"jsonrpc\": \"2.0\", \"method\": 1, \"params\": \"bar\"}\n",
	     "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null}");
	/* rpc call Batch, invalid JSON (on one line: the socket frames by lines) */
	spec(c,
	     "[{\"jsonrpc\": \"2.0\", \"method\": \"sum\", \"params\": [1,2,4], \"id\": \"1\"},"
	     "{\"jsonrpc\": \"2.0\", \"method\"]\n",
	     "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32700, \"message\": \"Parse error\"}, \"id\": null}");
	/* rpc call with an empty Array */
	spec(c, "[]\n",
	     "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null}");
	/* rpc call with an invalid Batch (but not empty) */
	spec(c, "[1]\n",
	     "[{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null}]");
	/* rpc call with invalid Batch */
	spec(c, "[1,2,3]\n",
	     "[{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null},"
	     "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null},"
	     "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null}]");
	/* rpc call Batch */
	spec(c,
	     "[{\"jsonrpc\": \"2.0\", \"method\": \"sum\", \"params\": [1,2,4], \"id\": \"1\"},"
	     "{\"jsonrpc\": \"2.0\", \"method\": \"notify_hello\", \"params\": [7]},"
	     "{\"jsonrpc\": \"2.0\", \"method\": \"subtract\", \"params\": [42,23], \"id\": \"2\"},"
	     "{\"foo\": \"boo\"},"
	     "{\"jsonrpc\": \"2.0\", \"method\": \"foo.get\", \"params\": {\"name\": \"myself\"}, \"id\": \"5\"},"
	     "{\"jsonrpc\": \"2.0\", \"method\": \"get_data\", \"id\": \"9\"}]\n",
	     "[{\"jsonrpc\": \"2.0\", \"result\": 7, \"id\": \"1\"},"
	     "{\"jsonrpc\": \"2.0\", \"result\": 19, \"id\": \"2\"},"
	     "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32600, \"message\": \"Invalid Request\"}, \"id\": null},"
	     "{\"jsonrpc\": \"2.0\", \"error\": {\"code\": -32601, \"message\": \"Method not found\"}, \"id\": \"5\"},"
	     "{\"jsonrpc\": \"2.0\", \"result\": [\"hello\", 5], \"id\": \"9\"}]");
	/* rpc call Batch (all notifications): nothing is returned */
	client_send(c, "[{\"jsonrpc\": \"2.0\", \"method\": \"notify_sum\", \"params\": [1,2,4]},"
		       "{\"jsonrpc\": \"2.0\", \"method\": \"notify_hello\", \"params\": [7]}]\n");
	expect_nothing_before(c, 101);
	client_free(c);
}

/* Batch answers wait for every entry, leave as one line, and keep their place among the lines. */
static void test_batch_deferred(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);

	/* Entries answered by timers in another order than sent: one array once the last is in. */
	client_send(c, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"later\",\"params\":{\"ms\":60,\"value\":\"a\"}},"
		       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"later\",\"params\":{\"ms\":5,\"value\":\"b\"}},"
		       "{\"jsonrpc\":\"2.0\",\"method\":\"later\",\"params\":{\"ms\":30,\"value\":\"n\"}},"
		       "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\",\"params\":[\"c\"]}]\n");
	expect_spec(client_line(c), "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"a\"},"
				    "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":\"b\"},"
				    "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":[\"c\"]}]");
	wait_state(c, 0, 0, 0);

	/* A batch between pipelined lines keeps its place: 10, the batch, 13. */
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"later\",\"params\":{\"ms\":60,\"value\":10}}\n"
		       "[{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"later\",\"params\":{\"ms\":20,\"value\":11}},"
		       "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"echo\",\"params\":[12]}]\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"echo\",\"params\":[13]}\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":10,\"result\":10}");
	assert_string_equal(client_line(c), "[{\"jsonrpc\":\"2.0\",\"id\":12,\"result\":[12]},"
					    "{\"jsonrpc\":\"2.0\",\"id\":11,\"result\":11}]");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":13,\"result\":[13]}");

	/* A held entry holds back its batch and the lines after it, until answered. */
	client_send(c, "[{\"jsonrpc\":\"2.0\",\"id\":20,\"method\":\"hold\"},"
		       "{\"jsonrpc\":\"2.0\",\"id\":21,\"method\":\"echo\",\"params\":[21]}]\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":22,\"method\":\"echo\",\"params\":[22]}\n");
	struct client *ctl = client_new(f->path);
	wait_parked(ctl, 1, 1);
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 100), 0);
	json_t *a = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"release\"}\n");
	assert_int_equal(num(json_object_get(a, "result")), 0);
	json_decref(a);
	assert_string_equal(client_line(c), "[{\"jsonrpc\":\"2.0\",\"id\":21,\"result\":[21]},"
					    "{\"jsonrpc\":\"2.0\",\"id\":20,\"result\":\"released\"}]");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":22,\"result\":[22]}");

	/* Notifications sent on an entry's connection come at once, before the batch's answer. */
	client_send(c, "[{\"jsonrpc\":\"2.0\",\"id\":30,\"method\":\"notify\"}]\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"method\":\"tick\",\"params\":1}");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"method\":\"tick\",\"params\":2}");
	assert_string_equal(client_line(c), "[{\"jsonrpc\":\"2.0\",\"id\":30,\"result\":true}]");

	/* A batch of notifications only answers nothing and holds nothing back, even while held. */
	client_send(c, "[{\"jsonrpc\":\"2.0\",\"method\":\"hold\"},{\"jsonrpc\":\"2.0\",\"method\":\"echo\"}]\n");
	wait_parked(ctl, 1, 1);
	expect_nothing_before(c, 23);
	a = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"release\"}\n");
	assert_int_equal(num(json_object_get(a, "result")), 0);
	json_decref(a);
	expect_nothing_before(c, 24);
	client_free(ctl);
	client_free(c);
}

/* A batch of n echo requests with ids from id0, as one line with its newline (malloc'd). */
static char *echo_batch(size_t n, int id0)
{
	size_t cap = n * 64 + 4, len = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	s[len++] = '[';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"echo\"}",
					i ? "," : "", id0 + (int)i);
	len += (size_t)snprintf(s + len, cap - len, "]\n");
	return s;
}

static void test_batch_refusals(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);
	json_t *a;

	/* The largest batch is served; one entry more is refused whole with one error object. */
	char *req = echo_batch(RPC_BATCH_MAX, 1);
	client_send(c, req);
	free(req);
	a = client_json(c);
	assert_true(json_is_array(a));
	assert_int_equal(json_array_size(a), RPC_BATCH_MAX);
	for (size_t i = 0; i < RPC_BATCH_MAX; i++) {
		assert_int_equal(num(json_object_get(json_array_get(a, i), "id")), (int64_t)i + 1);
		assert_string_equal(dump(json_object_get(json_array_get(a, i), "result")), "{}");
	}
	json_decref(a);
	req = echo_batch(RPC_BATCH_MAX + 1, 1);
	client_send(c, req);
	free(req);
	a = client_json(c);
	assert_true(json_is_null(expect_error(a, TD_RPC_INVALID_REQUEST, "at most 1000")));
	json_decref(a);

	/* Empty: one error object. Nested batches and malformed entries: one error each, with their ids. */
	a = roundtrip(c, " [ ] \n");
	assert_true(json_is_null(expect_error(a, TD_RPC_INVALID_REQUEST, "empty batch")));
	json_decref(a);
	client_send(c, "[[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}],"
		       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":7},"
		       "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\",\"params\":\"x\"},"
		       "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"echo\"},"
		       "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"err\"}]\n");
	a = client_json(c);
	assert_int_equal(json_array_size(a), 5);
	assert_true(json_is_null(expect_error(json_array_get(a, 0), TD_RPC_INVALID_REQUEST, "not batches")));
	assert_int_equal(num(expect_error(json_array_get(a, 1), TD_RPC_INVALID_REQUEST, "\"method\"")), 2);
	assert_int_equal(num(expect_error(json_array_get(a, 2), TD_RPC_INVALID_PARAMS, "\"params\"")), 3);
	assert_true(json_is_null(expect_error(json_array_get(a, 3), TD_RPC_INVALID_REQUEST, "\"id\"")));
	assert_int_equal(num(expect_error(json_array_get(a, 4), TD_RPC_RULE, "refused")), 5);
	json_decref(a);

	/* tender.watch streams and never answers: refused inside a batch before the handler sees it. */
	client_send(c, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tender.watch\",\"params\":{}},"
		       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\",\"params\":[2]}]\n");
	a = client_json(c);
	assert_int_equal(json_array_size(a), 2);
	assert_int_equal(
		num(expect_error(json_array_get(a, 0), TD_RPC_INVALID_REQUEST, "tender.watch streams notifications")),
		1);
	assert_string_equal(dump(json_object_get(json_array_get(a, 1), "result")), "[2]");
	json_decref(a);
	/* Even as a notification, with id null, since the client must learn it was not started. */
	client_send(c, "[{\"jsonrpc\":\"2.0\",\"method\":\"tender.watch\"}]\n");
	a = client_json(c);
	assert_int_equal(json_array_size(a), 1);
	assert_true(json_is_null(expect_error(json_array_get(a, 0), TD_RPC_INVALID_REQUEST, "cannot be part")));
	json_decref(a);
	a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"parked\"}\n");
	assert_int_equal(num(json_object_get(json_object_get(a, "result"), "watches")), 0);
	json_decref(a);
	/* On its own line it reaches the handler and streams. */
	client_send(c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tender.watch\"}\n");
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"method\":\"tender.release\",\"params\":{}}");
	struct client *ctl = client_new(f->path);
	wait_parked(ctl, 1, 1);
	client_free(ctl);
	client_free(c);
}

/* Batches whose client leaves, or whose rpc stops, before their entries are answered. */
static void test_batch_disconnect(void **state)
{
	struct fx *f = *state;
	struct client *ctl = client_new(f->path);
	struct client *a = client_new(f->path), *b = client_new(f->path);

	/* a leaves with a held entry and an answered one collected; b's batch is answered. */
	client_send(a, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hold\"},"
		       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\",\"params\":[\"collected\"]},"
		       "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"later\",\"params\":{\"ms\":300,\"value\":3}}]\n");
	client_send(b, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hold\"}]\n");
	wait_parked(ctl, 2, 2);
	client_free(a);
	wait_parked(ctl, 2, 1);
	json_t *ans = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"release\"}\n");
	assert_int_equal(num(json_object_get(ans, "result")), 1);
	json_decref(ans);
	assert_string_equal(client_line(b), "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"released\"}]");
	/* The timer of a's last entry fires after a left: its answer is dropped, the batch freed. */
	wait_state(ctl, 0, 0, 0);
	assert_int_equal(f->later_dead, 1);

	/* b leaves a held batch behind; the rpc stops; the handler answers it after the stop. */
	client_send(b,
		    "[{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"hold\"},{\"jsonrpc\":\"2.0\",\"method\":\"hold\"}]\n");
	wait_parked(ctl, 2, 2);
	stop_and_join(f);
	assert_null(client_line(b));
	client_free(b);
	client_free(ctl);
}

static void test_stop_from_batch(void **state)
{
	struct fx *f = *state;
	struct client *c = client_new(f->path);
	struct stat st;

	/* rpc_stop from an entry's handler: the entries after it are not handed out, nothing leaks. */
	client_send(c, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"later\",\"params\":{\"ms\":50,\"value\":1}},"
		       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"stop\"},"
		       "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\"}]\n"
		       "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"echo\"}\n");
	assert_null(client_line(c));
	int64_t deadline = now_ms() + WAIT_MS;
	while (lstat(f->path, &st) == 0 && now_ms() < deadline)
		usleep(1000);
	assert_int_equal(lstat(f->path, &st), -1);
	client_free(c);
	stop_and_join(f);
	assert_int_equal(f->echoes, 0);
	assert_int_equal(f->later_dead, 1);
}

/* Sends a buffer from a thread of its own (the server may stop reading until the test answers). */
struct sender {
	pthread_t thread;
	int fd;
	const char *buf;
	size_t len;
	bool ok;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	const char *p = s->buf;
	size_t n = s->len;
	s->ok = true;
	while (n > 0) {
		ssize_t k = send(s->fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			s->ok = false;
			break;
		}
		p += k;
		n -= (size_t)k;
	}
	return NULL;
}

static void sender_start(struct sender *s, int fd, const char *buf, size_t len)
{
	s->fd = fd;
	s->buf = buf;
	s->len = len;
	assert_int_equal(pthread_create(&s->thread, NULL, sender_main, s), 0);
}

static void sender_join(struct sender *s)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_MS / 1000;
	if (pthread_timedjoin_np(s->thread, NULL, &ts) != 0) {
		fprintf(stderr, "sender thread did not finish\n");
		abort();
	}
	assert_true(s->ok);
}

/* Waits until the handler has seen exactly want echoes and stays there (reading paused). */
static void wait_echoes(struct client *ctl, int64_t want)
{
	int64_t deadline = now_ms() + WAIT_MS, got = -1;
	for (int still = 0; still < 20;) {
		json_t *a = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"parked\"}\n");
		int64_t n = num(json_object_get(json_object_get(a, "result"), "echoes"));
		json_decref(a);
		if (n > want)
			fail_msg("the handler saw %lld echoes, more than %lld: the cap did not stop reading",
				 (long long)n, (long long)want);
		still = n == got ? still + 1 : 0;
		got = n;
		if (now_ms() > deadline)
			fail_msg("the handler saw %lld echoes, expected %lld", (long long)got, (long long)want);
		usleep(5000);
	}
	if (got != want)
		fail_msg("the handler saw %lld echoes, expected %lld", (long long)got, (long long)want);
}

/* Behind a held request, reading stops at RPC_PENDING_MAX pending requests and goes on after. */
static void test_pending_cap(void **state)
{
	struct fx *f = *state;
	enum { N = RPC_PENDING_MAX + 200 };
	struct client *ctl = client_new(f->path), *c = client_new(f->path);
	size_t cap = (size_t)N * 64 + 64, len = 0;
	char *buf = malloc(cap);
	struct sender snd;

	assert_non_null(buf);
	len += (size_t)snprintf(buf + len, cap - len, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"hold\"}\n");
	for (int i = 1; i <= N; i++)
		len += (size_t)snprintf(buf + len, cap - len, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"echo\"}\n",
					i);
	sender_start(&snd, c->fd, buf, len);
	wait_echoes(ctl, RPC_PENDING_MAX - 1);
	json_t *a = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"release\"}\n");
	json_decref(a);
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":\"released\"}");
	char want[96];
	for (int i = 1; i <= N; i++) {
		snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"result\":{}}", i);
		assert_string_equal(client_line(c), want);
	}
	sender_join(&snd);
	assert_int_equal(f->echoes, N);
	free(buf);
	client_free(c);
	client_free(ctl);
}

/* A batch's entries count against the pending cap: each batch is read whole, then reading stops. */
static void test_batch_counts_against_cap(void **state)
{
	struct fx *f = *state;
	enum { B = 600, NB = 3 };
	struct client *ctl = client_new(f->path), *c = client_new(f->path);
	size_t cap = (size_t)NB * B * 64 + 64, len = 0;
	char *buf = malloc(cap);
	struct sender snd;

	assert_non_null(buf);
	len += (size_t)snprintf(buf + len, cap - len, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"hold\"}\n");
	for (int k = 0; k < NB; k++) {
		char *b = echo_batch(B, k * B);
		len += (size_t)snprintf(buf + len, cap - len, "%s", b);
		free(b);
	}
	sender_start(&snd, c->fd, buf, len);
	/* 1 + 600 pending is under 1024: the second batch is read; 1201 is over: the third waits. */
	wait_echoes(ctl, 2 * B);
	json_t *a = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"release\"}\n");
	json_decref(a);
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":\"released\"}");
	for (int k = 0; k < NB; k++) {
		a = client_json(c);
		assert_int_equal(json_array_size(a), B);
		assert_int_equal(num(json_object_get(json_array_get(a, 0), "id")), k * B);
		json_decref(a);
	}
	sender_join(&snd);
	assert_int_equal(f->echoes, NB * B);
	free(buf);
	client_free(c);
	client_free(ctl);
}

/* Behind a held request, reading stops once RPC_HELD_MAX answer bytes are held, and goes on after. */
static void test_held_cap(void **state)
{
	struct fx *f = *state;
	enum { N = 60 };
	const size_t len = 100 * 1000;
	struct client *ctl = client_new(f->path), *c = client_new(f->path);
	char *one = long_request(len);
	char *buf = malloc(N * (len + 1) + 64);
	size_t blen = 0;
	struct sender snd;

	assert_non_null(buf);
	blen += (size_t)sprintf(buf, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"hold\"}\n");
	for (int i = 0; i < N; i++) {
		memcpy(buf + blen, one, len + 1);
		blen += len + 1;
	}
	free(one);
	sender_start(&snd, c->fd, buf, blen);
	/* Each answer line: the request with its head changed, and a newline. */
	size_t ans = len - strlen("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":") +
		     strlen("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":") + 1;
	int64_t want = (int64_t)((RPC_HELD_MAX + ans - 1) / ans);
	assert_true(want < N);
	wait_echoes(ctl, want);
	json_t *a = roundtrip(ctl, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"release\"}\n");
	json_decref(a);
	assert_string_equal(client_line(c), "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":\"released\"}");
	for (int i = 0; i < N; i++) {
		char *line = client_line(c);
		assert_non_null(line);
		assert_int_equal(strlen(line) + 1, ans);
	}
	sender_join(&snd);
	free(buf);
	client_free(c);
	client_free(ctl);
}

static void test_second_start_refused(void **state)
{
	struct fx *f = *state;
	uv_loop_t loop;
	struct rpc *r = NULL;
	char err[256] = "";

	assert_int_equal(uv_loop_init(&loop), 0);
	assert_true(rpc_start(&r, &loop, f->path, handler, f, err, sizeof(err)) < 0);
	assert_null(r);
	assert_non_null(strstr(err, "another tenderd is running"));
	assert_int_equal(uv_loop_close(&loop), 0);

	/* The first server is untouched. */
	struct client *c = client_new(f->path);
	json_t *a = roundtrip(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}\n");
	assert_non_null(json_object_get(a, "result"));
	json_decref(a);
	client_free(c);
}

static void test_stale_and_foreign_files(void **state)
{
	struct fx *f = *state;
	uv_loop_t loop;
	struct rpc *r = NULL;
	char err[256] = "", path[160];
	struct stat st;

	/* A socket file nobody listens on (a crashed daemon's) is replaced. */
	snprintf(path, sizeof(path), "%s/stale.sock", f->dir);
	struct sockaddr_un sa;
	fill_addr(&sa, path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(lstat(path, &st), 0);

	assert_int_equal(uv_loop_init(&loop), 0);
	if (rpc_start(&r, &loop, path, handler, f, err, sizeof(err)) != 0)
		fail_msg("stale socket not replaced: %s", err);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	rpc_stop(r);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(lstat(path, &st), -1);

	/* A regular file at the path is left alone and refused. */
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("precious", fp);
	fclose(fp);
	r = NULL;
	assert_true(rpc_start(&r, &loop, path, handler, f, err, sizeof(err)) < 0);
	assert_null(r);
	assert_non_null(strstr(err, "not a socket"));
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_size, 8);
	assert_int_equal(unlink(path), 0);

	/* A path too long for a socket address is refused. */
	char longpath[200];
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_true(rpc_start(&r, &loop, longpath, handler, f, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "too long"));
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_socket_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_echo_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clients_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_table_evicts_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_from_handler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_disconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_slow_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spec_examples, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_disconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_from_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_counts_against_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_start_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_and_foreign_files, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
