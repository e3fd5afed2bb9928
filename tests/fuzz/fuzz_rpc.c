/*
 * libFuzzer target for JSON-RPC on the Unix socket (node/rpc.c): line splitting across reads,
 * blank lines and CRLF, batches, and the checks of a request before a handler sees it.
 *
 * A real rpc listens on a socket in a temporary directory with its own libuv loop; each input
 * is one client connection in this process. The first byte chooses how the rest is written:
 * in one piece, or in chunks of 1..128 bytes with the loop run between them, so lines are
 * split across reads. The handler echoes params, answers an error, sends a notification, or
 * (methods "defer" and "tender.watch") keeps the request to answer after the whole input was
 * read, in reverse order, so answers are held behind earlier ones. Then the client closes.
 *
 * Checks: every line the server writes is a JSON object or a non-empty array of objects, each
 * with "jsonrpc": "2.0"; no more answer lines than request lines; no leak, no crash, every
 * request freed (rpc.c aborts on a reference count underflow or a double answer).
 *
 * Seeds: tests/fuzz/corpus/fuzz_rpc (fuzz-corpus-gen).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "tenderd/json.h"
#include "tenderd/types.h"
#include "rpc.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEFER_MAX 4096

static uv_loop_t loop;
static struct rpc *server;
static struct sockaddr_un addr;
static struct rpc_req *deferred[DEFER_MAX];
static size_t n_deferred;
static char *out;
static size_t out_len, out_cap;

static void handler(void *ctx, struct rpc_req *req, const char *method, json_t *params)
{
	fz_check(params && (json_is_object(params) || json_is_array(params)), "params neither object nor array");
	if ((strcmp(method, "defer") == 0 || strcmp(method, "tender.watch") == 0) && n_deferred < DEFER_MAX) {
		if (strcmp(method, "tender.watch") == 0)
			rpc_notify(req, "tender.event", json_incref(params));
		deferred[n_deferred++] = req;
		return;
	}
	if (strcmp(method, "error") == 0) {
		rpc_error(req, -32000, "refused: %s", method);
		return;
	}
	if (strcmp(method, "notify") == 0)
		rpc_notify(req, "note", json_object());
	rpc_reply(req, json_deep_copy(params));
}

static void setup(void)
{
	char err[TD_ERRMSG_MAX];

	fz_check(uv_loop_init(&loop) == 0, "uv_loop_init");
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/rpc.sock", fz_tmpdir());
	if (rpc_start(&server, &loop, addr.sun_path, handler, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "rpc_start: %s\n", err);
		abort();
	}
}

/* Reads what the server wrote so far; returns whether anything came. */
static bool drain(int fd)
{
	bool got = false;
	for (;;) {
		if (out_cap - out_len < 65536) {
			out_cap = out_cap ? out_cap * 2 : 131072;
			out = realloc(out, out_cap);
		}
		ssize_t n = recv(fd, out + out_len, out_cap - out_len, 0);
		if (n <= 0)
			return got;
		out_len += (size_t)n;
		got = true;
	}
}

static void pump(int fd)
{
	for (int quiet = 0; quiet < 3;) {
		uv_run(&loop, UV_RUN_NOWAIT);
		quiet = drain(fd) ? 0 : quiet + 1;
	}
}

static void check_answer(const json_t *o)
{
	fz_check(json_is_object(o), "an answer is not an object");
	const json_t *v = json_object_get(o, "jsonrpc");
	fz_check(td_json_is_string(v) && strcmp(json_string_value(v), "2.0") == 0, "an answer lacks jsonrpc 2.0");
}

/* Every line written is an answer, a batch of answers or a notification; returns how many lines. */
static size_t check_output(void)
{
	char err[TD_ERRMSG_MAX];
	size_t lines = 0, i = 0;

	fz_check(out_len == 0 || out[out_len - 1] == '\n', "the server's output does not end with a newline");
	while (i < out_len) {
		char *nl = memchr(out + i, '\n', out_len - i);
		size_t len = (size_t)(nl - (out + i));
		json_t *v = td_json_load(out + i, len, err, sizeof(err));
		fz_check(v != NULL, "the server wrote a line that is not JSON");
		if (json_is_array(v)) {
			size_t k;
			json_t *e;
			fz_check(json_array_size(v) > 0, "the server wrote an empty batch answer");
			json_array_foreach(v, k, e) check_answer(e);
		} else {
			check_answer(v);
			if (!json_object_get(v, "method"))
				lines++;
		}
		if (json_is_array(v))
			lines++;
		json_decref(v);
		i += len + 1;
	}
	return lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!server)
		setup();
	if (size == 0)
		return 0;
	size_t chunk = (data[0] & 0x80) ? (size_t)(data[0] & 0x7f) + 1 : size;
	data++;
	size--;

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fz_check(fd >= 0, "socket");
	fz_check(connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) == 0, "connect");
	fz_check(fcntl(fd, F_SETFL, O_NONBLOCK) == 0, "fcntl");
	out_len = 0;
	n_deferred = 0;
	pump(fd);

	size_t off = 0;
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		ssize_t w = send(fd, data + off, n, MSG_NOSIGNAL);
		if (w < 0) {
			fz_check(errno == EAGAIN || errno == EWOULDBLOCK || errno == EPIPE || errno == ECONNRESET,
				 "send failed");
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				break; /* the server closed (a refused line ends the connection) */
			pump(fd);
			continue;
		}
		off += (size_t)w;
		pump(fd);
	}
	pump(fd);
	while (n_deferred > 0) {
		struct rpc_req *q = deferred[--n_deferred];
		if (n_deferred % 2)
			rpc_reply(q, json_string("later"));
		else
			rpc_error(q, -32001, "later");
		pump(fd);
	}
	size_t lines = 1;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	fz_check(check_output() <= lines, "more answers than request lines");
	close(fd);
	for (int i = 0; i < 4; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	return 0;
}
