/*
 * tenderctl: the command-line client of tenderd.
 *
 * Speaks only JSON-RPC 2.0 through the node's Unix socket: builds one
 * request from the command line, sends it as one line, reads one answer line
 * and prints its "result" (pretty JSON on stdout) or its error (stderr).
 * Release files are parsed with td_json_load, so amounts keep the exact text
 * the agency wrote all the way to the node. Uses only include/tenderd.
 *
 * Exit codes (tenderd/types.h): TD_EXIT_OK, TD_EXIT_REFUSED (the node
 * answered with an error, or the input file is bad), TD_EXIT_UNREACHABLE (no
 * connection, no answer, or no answer in time), TD_EXIT_USAGE.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tenderd/json.h"
#include "tenderd/types.h"

#define CTL_ANSWER_MAX (64 * 1024 * 1024) /* longest answer line we accept */
#define CTL_FILE_MAX (1024 * 1024)        /* longest release file */
#define CTL_TIMEOUT_DEFAULT 30            /* seconds, for requests that do not --wait */
#define CTL_DEFAULT_SOCKET "./tenderd.sock"

struct command {
	const char *name;
	const char *args;
	const char *help;
};

static const struct command commands[] = {
	{ "status", "", "show the node's status" },
	{ "publish", "tender|award FILE|- [--wait]",
	  "publish a new tender or an award (OCDS release JSON; - is stdin)" },
	{ "amend", "OCID FILE|- [--wait]", "publish an amendment of tender OCID" },
	{ "cancel", "OCID --reason TEXT [--wait]", "cancel tender OCID, giving the reason" },
	{ "get", "OCID", "show tender OCID and its releases" },
	{ "list", "[--limit N] [--cursor C] [--with-cursor]", "list tenders (--with-cursor: with next_cursor)" },
	{ "block", "HEIGHT", "show the committed block at HEIGHT" },
	{ "call", "METHOD [PARAMS_JSON]", "send a raw JSON-RPC request" },
};

static const char options_help[] =
	"Options:\n"
	"  --socket PATH      tenderd's socket (default: $TENDERD_SOCKET, else " CTL_DEFAULT_SOCKET ")\n"
	"  --timeout SECONDS  give up when no answer came in SECONDS (default: 30,\n"
	"                     none with --wait; 0: none)\n"
	"  --wait             return only once the record is committed in a block\n"
	"  -h, --help         show this help; COMMAND --help shows the command's\n"
	"\n"
	"Exit status: 0 ok, 1 refused (by the node, or a bad input file),\n"
	"             2 node unreachable (or no answer in time), 3 usage error.\n";

static void print_help(FILE *f)
{
	fprintf(f, "Usage: tenderctl [--socket PATH] [--timeout SECONDS] COMMAND [ARGS]\n\n"
		   "Talks to a running tenderd through its JSON-RPC socket.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		char left[64];
		snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].args);
		fprintf(f, "  %-46s %s\n", left, commands[i].help);
	}
	fprintf(f, "\n%s", options_help);
}

static void print_command_help(FILE *f, const struct command *c)
{
	fprintf(f, "Usage: tenderctl [--socket PATH] [--timeout SECONDS] %s %s\n\n  %s\n\n%s", c->name, c->args,
		c->help, options_help);
}

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
	va_list ap;
	fputs("tenderctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	print_help(stderr);
	return TD_EXIT_USAGE;
}

/* A plain decimal integer (digits only) that fits uint64. */
static bool parse_u64(const char *s, uint64_t *out)
{
	uint64_t x = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		uint64_t d = (uint64_t)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*out = x;
	return true;
}

/*
 * Reads and parses a release file ("-" is stdin), at most CTL_FILE_MAX bytes.
 * Returns a new tree, or NULL after printing why (exit TD_EXIT_REFUSED).
 */
static json_t *load_file(const char *name)
{
	const char *shown = strcmp(name, "-") == 0 ? "stdin" : name;
	FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
	char *buf = NULL, err[TD_ERRMSG_MAX];
	size_t len = 0;
	json_t *v = NULL;

	if (!f) {
		fprintf(stderr, "tenderctl: %s: %s\n", shown, strerror(errno));
		return NULL;
	}
	buf = td_xmalloc(CTL_FILE_MAX + 1);
	for (;;) {
		size_t n = fread(buf + len, 1, CTL_FILE_MAX + 1 - len, f);
		len += n;
		if (n == 0 || len > CTL_FILE_MAX)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "tenderctl: %s: %s\n", shown, strerror(errno));
		goto out;
	}
	if (len > CTL_FILE_MAX) {
		fprintf(stderr, "tenderctl: %s: larger than %d bytes\n", shown, CTL_FILE_MAX);
		goto out;
	}
	v = td_json_load(buf, len, err, sizeof(err));
	if (!v)
		fprintf(stderr, "tenderctl: %s: invalid JSON: %s\n", shown, err);
out:
	free(buf);
	if (f != stdin)
		fclose(f);
	return v;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline_ms (negative: forever); 0 ready, -1 error, -2 timeout. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int timeout = -1;
		if (deadline_ms >= 0) {
			int64_t left = deadline_ms - now_ms();
			if (left <= 0)
				return -2;
			timeout = left > 1000000 ? 1000000 : (int)left;
		}
		int rc = poll(&p, 1, timeout);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

struct conn {
	const char *path;
	unsigned timeout_s;  /* 0: none */
	int64_t deadline_ms; /* -1: none */
	int fd;
};

static int unreachable(const struct conn *c, const char *why)
{
	fprintf(stderr, "tenderctl: cannot reach tenderd at %s: %s\n", c->path, why);
	return TD_EXIT_UNREACHABLE;
}

static int timed_out(const struct conn *c)
{
	fprintf(stderr, "tenderctl: no answer from tenderd at %s within %u s\n", c->path, c->timeout_s);
	return TD_EXIT_UNREACHABLE;
}

static int ctl_connect(struct conn *c)
{
	struct sockaddr_un sa;
	size_t plen = strlen(c->path);

	if (plen >= sizeof(sa.sun_path))
		return unreachable(c, strerror(ENAMETOOLONG));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, c->path, plen + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return unreachable(c, strerror(errno));
	if (c->timeout_s) {
		/* Bounds a connect that waits for room in a busy node's backlog. */
		struct timeval tv = { .tv_sec = (time_t)c->timeout_s };
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (connect(c->fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EAGAIN || errno == EINPROGRESS)
			return timed_out(c);
		return unreachable(c, strerror(errno));
	}
	return TD_EXIT_OK;
}

static int ctl_send(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		int w = wait_fd(c->fd, POLLOUT, c->deadline_ms);
		if (w == -2)
			return timed_out(c);
		if (w < 0)
			return unreachable(c, strerror(errno));
		ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			return unreachable(c, strerror(errno));
		}
		p += k;
		n -= (size_t)k;
	}
	return TD_EXIT_OK;
}

/* Reads one line (without its newline) into a malloc'd *out. */
static int ctl_read_line(struct conn *c, char **out, size_t *outlen)
{
	size_t len = 0, cap = 64 * 1024;
	char *buf = td_xmalloc(cap);
	int rc;

	for (;;) {
		int w = wait_fd(c->fd, POLLIN, c->deadline_ms);
		if (w == -2) {
			rc = timed_out(c);
			goto fail;
		}
		if (w < 0) {
			rc = unreachable(c, strerror(errno));
			goto fail;
		}
		if (len == cap) {
			if (cap >= CTL_ANSWER_MAX + 1) {
				rc = unreachable(c, "answer too large");
				goto fail;
			}
			cap = cap * 2 > CTL_ANSWER_MAX + 1 ? CTL_ANSWER_MAX + 1 : cap * 2;
			buf = td_xrealloc(buf, cap);
		}
		ssize_t k = recv(c->fd, buf + len, cap - len, MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			rc = unreachable(c, strerror(errno));
			goto fail;
		}
		if (k == 0) {
			rc = unreachable(c, "connection closed before an answer");
			goto fail;
		}
		char *nl = memchr(buf + len, '\n', (size_t)k);
		len += (size_t)k;
		if (nl) {
			/* One request, one answer: bytes after the newline can only be a notification; dropped. */
			*outlen = (size_t)(nl - buf);
			*nl = '\0';
			*out = buf;
			return TD_EXIT_OK;
		}
	}
fail:
	free(buf);
	return rc;
}

/* Prints v as indented JSON on stdout. */
static int print_json(const json_t *v)
{
	char *s = td_json_dump(v, JSON_INDENT(2));
	if (!s) {
		fprintf(stderr, "tenderctl: cannot print the answer\n");
		return TD_EXIT_UNREACHABLE;
	}
	printf("%s\n", s);
	free(s);
	return TD_EXIT_OK;
}

enum output { OUT_RESULT, OUT_LIST };

/* Sends method(params) (params stolen), waits for the answer and prints it; returns the exit code. */
static int call(struct conn *c, const char *method, json_t *params, enum output out)
{
	json_t *req = json_object(), *ans = NULL;
	char *line = NULL, *ansline = NULL, err[TD_ERRMSG_MAX];
	size_t anslen = 0;
	int rc;

	json_object_set_new(req, "jsonrpc", json_string("2.0"));
	json_object_set_new(req, "id", td_json_uint(1));
	json_object_set_new(req, "method", json_string(method));
	json_object_set_new(req, "params", params);
	line = td_json_dump(req, JSON_COMPACT);
	json_decref(req);
	if (!line) {
		fprintf(stderr, "tenderctl: cannot encode the request\n");
		return TD_EXIT_USAGE;
	}
	c->deadline_ms = c->timeout_s ? now_ms() + (int64_t)c->timeout_s * 1000 : -1;
	rc = ctl_connect(c);
	if (rc != TD_EXIT_OK)
		goto out;
	size_t n = strlen(line);
	line = td_xrealloc(line, n + 2);
	line[n] = '\n';
	line[n + 1] = '\0';
	rc = ctl_send(c, line, n + 1);
	if (rc != TD_EXIT_OK)
		goto out;
	for (;;) {
		rc = ctl_read_line(c, &ansline, &anslen);
		if (rc != TD_EXIT_OK)
			goto out;
		ans = td_json_load(ansline, anslen, err, sizeof(err));
		free(ansline);
		ansline = NULL;
		if (!ans || !json_is_object(ans)) {
			fprintf(stderr, "tenderctl: tenderd at %s sent a malformed answer%s%s\n", c->path,
				ans ? "" : ": ", ans ? "" : err);
			rc = TD_EXIT_UNREACHABLE;
			goto out;
		}
		/* A notification (method, no id) may come before the answer; skip it. */
		if (json_object_get(ans, "method") && !json_object_get(ans, "id")) {
			json_decref(ans);
			ans = NULL;
			continue;
		}
		break;
	}
	json_t *e = json_object_get(ans, "error");
	json_t *result = json_object_get(ans, "result");
	if (json_is_object(e)) {
		json_t *msg = json_object_get(e, "message");
		size_t codelen = 0;
		const char *code = td_json_number_text(json_object_get(e, "code"), &codelen);
		fprintf(stderr, "tenderctl: %s (code %.*s)\n",
			td_json_is_string(msg) ? json_string_value(msg) : "error without a message",
			code ? (int)codelen : 1, code ? code : "?");
		rc = TD_EXIT_REFUSED;
		goto out;
	}
	if (!result) {
		fprintf(stderr, "tenderctl: tenderd at %s sent an answer with neither result nor error\n", c->path);
		rc = TD_EXIT_UNREACHABLE;
		goto out;
	}
	if (out == OUT_LIST && json_is_object(result)) {
		json_t *next = json_object_get(result, "next_cursor");
		if (json_object_get(result, "tenders"))
			result = json_object_get(result, "tenders");
		if (td_json_is_string(next))
			fprintf(stderr, "tenderctl: more tenders follow: --cursor %s\n", json_string_value(next));
	}
	rc = print_json(result);
out:
	json_decref(ans);
	free(line);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	return rc;
}

/* Command arguments after the command name: positionals and the options commands take. */
struct args {
	const char *pos[3];
	int npos;
	bool wait, with_cursor, help;
	const char *reason, *limit, *cursor;
	const char *socket, *timeout; /* global options may also follow the command */
};

static int parse_args(int argc, char **argv, const struct command *cmd, struct args *a)
{
	bool opts = true;

	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		const char **val = NULL;
		if (opts && strcmp(s, "--") == 0) {
			opts = false;
			continue;
		}
		if (opts && (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0)) {
			a->help = true;
			continue;
		}
		if (opts && strcmp(s, "--wait") == 0) {
			a->wait = true;
			continue;
		}
		if (opts && strcmp(s, "--with-cursor") == 0) {
			a->with_cursor = true;
			continue;
		}
		if (opts && strcmp(s, "--reason") == 0)
			val = &a->reason;
		else if (opts && strcmp(s, "--limit") == 0)
			val = &a->limit;
		else if (opts && strcmp(s, "--cursor") == 0)
			val = &a->cursor;
		else if (opts && strcmp(s, "--socket") == 0)
			val = &a->socket;
		else if (opts && strcmp(s, "--timeout") == 0)
			val = &a->timeout;
		if (val) {
			if (i + 1 >= argc)
				return usage("%s: %s needs a value", cmd->name, s);
			*val = argv[++i];
			continue;
		}
		if (opts && s[0] == '-' && s[1] != '\0')
			return usage("%s: unknown option %s", cmd->name, s);
		if (a->npos == (int)(sizeof(a->pos) / sizeof(a->pos[0])))
			return usage("%s: too many arguments", cmd->name);
		a->pos[a->npos++] = s;
	}
	return TD_EXIT_OK;
}

/* Refuses options that cmd does not take. */
static int only_options(const struct command *cmd, const struct args *a, bool wait, bool reason, bool list)
{
	if (a->wait && !wait)
		return usage("%s does not take --wait", cmd->name);
	if (a->reason && !reason)
		return usage("%s does not take --reason", cmd->name);
	if ((a->limit || a->cursor || a->with_cursor) && !list)
		return usage("%s does not take --limit, --cursor or --with-cursor", cmd->name);
	return TD_EXIT_OK;
}

static json_t *publish_params(const char *kind, const char *ocid, json_t *release, bool wait)
{
	json_t *p = json_object();
	json_object_set_new(p, "kind", json_string(kind));
	if (ocid)
		json_object_set_new(p, "ocid", json_string(ocid));
	json_object_set_new(p, "release", release);
	json_object_set_new(p, "wait", json_boolean(wait));
	return p;
}

/* Makes a JSON string from a command-line argument, which must be UTF-8. */
static json_t *arg_string(const char *what, const char *s, int *rc)
{
	json_t *v = json_string(s);
	if (!v)
		*rc = usage("%s is not valid UTF-8", what);
	return v;
}

static int run(struct conn *c, const struct command *cmd, const struct args *a, bool timeout_set)
{
	const char *name = cmd->name;
	json_t *params = NULL, *v;
	const char *method = NULL;
	enum output out = OUT_RESULT;
	int rc = TD_EXIT_OK;
	uint64_t num;

	if (strcmp(name, "status") == 0) {
		if ((rc = only_options(cmd, a, false, false, false)) != TD_EXIT_OK)
			return rc;
		if (a->npos != 0)
			return usage("status takes no arguments");
		method = "status";
		params = json_object();
	} else if (strcmp(name, "publish") == 0) {
		if ((rc = only_options(cmd, a, true, false, false)) != TD_EXIT_OK)
			return rc;
		if (a->npos != 2 || (strcmp(a->pos[0], "tender") != 0 && strcmp(a->pos[0], "award") != 0))
			return usage("usage: publish tender|award FILE|- [--wait]");
		json_t *rel = load_file(a->pos[1]);
		if (!rel)
			return TD_EXIT_REFUSED;
		method = "tender.publish";
		params = publish_params(a->pos[0], NULL, rel, a->wait);
	} else if (strcmp(name, "amend") == 0) {
		if ((rc = only_options(cmd, a, true, false, false)) != TD_EXIT_OK)
			return rc;
		if (a->npos != 2 || !a->pos[0][0])
			return usage("usage: amend OCID FILE|- [--wait]");
		if (!(v = arg_string("OCID", a->pos[0], &rc)))
			return rc;
		json_decref(v);
		json_t *rel = load_file(a->pos[1]);
		if (!rel)
			return TD_EXIT_REFUSED;
		method = "tender.publish";
		params = publish_params("tenderAmendment", a->pos[0], rel, a->wait);
	} else if (strcmp(name, "cancel") == 0) {
		if ((rc = only_options(cmd, a, true, true, false)) != TD_EXIT_OK)
			return rc;
		if (a->npos != 1 || !a->pos[0][0] || !a->reason || !a->reason[0])
			return usage("usage: cancel OCID --reason TEXT [--wait]");
		if (!(v = arg_string("OCID", a->pos[0], &rc)))
			return rc;
		json_decref(v);
		json_t *why = arg_string("--reason", a->reason, &rc);
		if (!why)
			return rc;
		json_t *tender = json_object();
		json_object_set_new(tender, "status", json_string("cancelled"));
		json_object_set_new(tender, "statusDetails", why);
		json_t *rel = json_object();
		json_object_set_new(rel, "tender", tender);
		method = "tender.publish";
		params = publish_params("tenderCancellation", a->pos[0], rel, a->wait);
	} else if (strcmp(name, "get") == 0) {
		if ((rc = only_options(cmd, a, false, false, false)) != TD_EXIT_OK)
			return rc;
		if (a->npos != 1 || !a->pos[0][0])
			return usage("usage: get OCID");
		if (!(v = arg_string("OCID", a->pos[0], &rc)))
			return rc;
		method = "tender.get";
		params = json_object();
		json_object_set_new(params, "ocid", v);
	} else if (strcmp(name, "list") == 0) {
		if ((rc = only_options(cmd, a, false, false, true)) != TD_EXIT_OK)
			return rc;
		if (a->npos != 0)
			return usage("usage: list [--limit N] [--cursor C] [--with-cursor]");
		params = json_object();
		if (a->limit) {
			if (!parse_u64(a->limit, &num)) {
				json_decref(params);
				return usage("list: --limit must be a decimal integer, not '%s'", a->limit);
			}
			json_object_set_new(params, "limit", td_json_uint(num));
		}
		if (a->cursor) {
			if (!(v = arg_string("--cursor", a->cursor, &rc))) {
				json_decref(params);
				return rc;
			}
			json_object_set_new(params, "cursor", v);
		}
		method = "tender.list";
		out = a->with_cursor ? OUT_RESULT : OUT_LIST;
	} else if (strcmp(name, "block") == 0) {
		if ((rc = only_options(cmd, a, false, false, false)) != TD_EXIT_OK)
			return rc;
		if (a->npos != 1)
			return usage("usage: block HEIGHT");
		if (!parse_u64(a->pos[0], &num))
			return usage("block: HEIGHT must be a decimal integer, not '%s'", a->pos[0]);
		method = "block.get";
		params = json_object();
		json_object_set_new(params, "height", td_json_uint(num));
	} else if (strcmp(name, "call") == 0) {
		char err[TD_ERRMSG_MAX];
		if ((rc = only_options(cmd, a, false, false, false)) != TD_EXIT_OK)
			return rc;
		if (a->npos < 1 || a->npos > 2 || !a->pos[0][0])
			return usage("usage: call METHOD [PARAMS_JSON]");
		if (!(v = arg_string("METHOD", a->pos[0], &rc)))
			return rc;
		json_decref(v);
		if (a->npos == 2) {
			params = td_json_load(a->pos[1], strlen(a->pos[1]), err, sizeof(err));
			if (!params)
				return usage("call: PARAMS_JSON is not valid JSON: %s", err);
			if (!json_is_object(params) && !json_is_array(params)) {
				json_decref(params);
				return usage("call: PARAMS_JSON must be an object or an array");
			}
		} else {
			params = json_object();
		}
		method = a->pos[0];
	} else {
		return usage("unknown command '%s'", name); /* not reached: main checked the name */
	}
	/* A --wait request returns when its record is committed: no default deadline. */
	if (!timeout_set)
		c->timeout_s = a->wait ? 0 : CTL_TIMEOUT_DEFAULT;
	return call(c, method, params, out);
}

static int set_socket(struct conn *c, const char *val)
{
	if (!*val)
		return usage("--socket needs a path");
	c->path = val;
	return TD_EXIT_OK;
}

static int set_timeout(struct conn *c, const char *val, bool *timeout_set)
{
	uint64_t num;
	if (!parse_u64(val, &num) || num > 86400 * 365)
		return usage("--timeout must be a decimal number of seconds, not '%s'", val);
	c->timeout_s = (unsigned)num;
	*timeout_set = true;
	return TD_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct conn c = { .fd = -1 };
	bool timeout_set = false;
	const char *env = getenv("TENDERD_SOCKET");
	int i;

	c.path = env && *env ? env : CTL_DEFAULT_SOCKET;
	for (i = 1; i < argc; i++) {
		const char *s = argv[i], *val = NULL;
		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			print_help(stdout);
			return TD_EXIT_OK;
		}
		if (strcmp(s, "--socket") == 0 || strcmp(s, "--timeout") == 0) {
			if (i + 1 >= argc)
				return usage("%s needs a value", s);
			val = argv[++i];
		} else if (strncmp(s, "--socket=", 9) == 0 || strncmp(s, "--timeout=", 10) == 0) {
			val = strchr(s, '=') + 1;
		} else if (s[0] == '-' && s[1] != '\0') {
			return usage("unknown option %s", s);
		} else {
			break;
		}
		int rc = strncmp(s, "--socket", 8) == 0 ? set_socket(&c, val) : set_timeout(&c, val, &timeout_set);
		if (rc != TD_EXIT_OK)
			return rc;
	}
	if (i >= argc)
		return usage("no command given");
	const struct command *cmd = NULL;
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			cmd = &commands[k];
	if (!cmd)
		return usage("unknown command '%s'", argv[i]);
	struct args a;
	int rc = parse_args(argc - i - 1, argv + i + 1, cmd, &a);
	if (rc != TD_EXIT_OK)
		return rc;
	if (a.socket && (rc = set_socket(&c, a.socket)) != TD_EXIT_OK)
		return rc;
	if (a.timeout && (rc = set_timeout(&c, a.timeout, &timeout_set)) != TD_EXIT_OK)
		return rc;
	if (a.help) {
		print_command_help(stdout, cmd);
		return TD_EXIT_OK;
	}
	return run(&c, cmd, &a, timeout_set);
}
