/*
 * tenderd-loadgen: the load generator and micro-benchmarks behind
 * scripts/bench.sh. It speaks only JSON-RPC 2.0 over the nodes' Unix
 * sockets (one JSON object per line each way, answers in request order).
 *
 *   publish  publishes generated, distinct tenders through every given socket
 *            (round robin, up to --pipeline requests in flight per socket) at a
 *            fixed offered rate or as fast as the nodes accept them, and
 *            measures when each record is committed on every given node.
 *   crypto   Ed25519 sign and verify cost per call (libsodium, this thread).
 *   query    tender.get and tender.list latency, one request in flight.
 *   wait     waits until a socket answers (start-up time) and, optionally,
 *            until its node holds a number of records (catch-up rate).
 *   status   prints a few numbers from `status` of each socket.
 *
 * How commits are observed (publish): the answer to a tender.publish with
 * "wait": false carries the record id. A monitor connection per node polls
 * `status` every --poll-ms and notes, for every height, the first moment the
 * node reported a height at or above it. Every new block is read once with
 * block.get (blocks are identical on every node once committed), which maps
 * each of our record ids to its height. A record is committed on all nodes at
 * the latest of the nodes' first-seen moments of its block's height; its
 * latency runs from the moment the accepted tender.publish request was
 * written to the socket. The error is at most one poll interval plus one
 * status round trip (late, never early). Publish requests are pipelined and
 * never wait on the commit, so a slow commit cannot hold back the offered
 * load (a "wait": true request would hold back later answers on its
 * connection). "Mempool full" answers are retried after a back-off; the
 * latency of such a record counts from its accepted attempt, and the
 * retries are reported.
 *
 * Committed records/s is sustained throughput: the records of every block
 * after the first one holding our records, divided by the time between
 * that first block and the last one being committed on every node (when
 * one block held them all: all of them, divided by the time from the first
 * publish to that block). With --no-track no blocks are read: the count is
 * the fewest new records any node reports, over the time from the first
 * publish until every node holds them all.
 *
 * Every phase has a deadline (--timeout). Results go to stdout as one
 * "key=value ..." line per subcommand for scripts to parse; progress and
 * diagnostics go to stderr. Exit status: 0 done, 1 incomplete or refused,
 * 2 a socket could not be reached, 3 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LG_NODES_MAX 16
#define LG_LINE_MAX (16u * 1024 * 1024) /* longest answer line we accept */
#define LG_SIZE_MIN 700                 /* smallest record size we can generate */
#define LG_SIZE_MAX 60000               /* stays under the 64 KiB record cap */
/*
 * What the node adds to a release fragment of ours once signed and encoded
 * (ids, date, tag, buyer, agency key, signature), measured on this version:
 * a fragment of --size minus this many bytes makes a record of about --size
 * bytes. The size actually seen is reported as record_bytes (from the
 * nodes' mempool_bytes / mempool).
 */
#define LG_RECORD_OVERHEAD 293

enum lg_req_kind { LG_REQ_PUBLISH, LG_REQ_STATUS, LG_REQ_BLOCK, LG_REQ_GET, LG_REQ_LIST };

struct lg_pend {
	uint64_t id;
	enum lg_req_kind kind;
	uint64_t arg;  /* publish: record index; block: height */
	double t_sent; /* seconds, CLOCK_MONOTONIC */
};

/* One connection to a node's socket, non-blocking, with a FIFO of requests in flight. */
struct lg_conn {
	int fd;
	int node;                /* index into the socket list */
	char *rbuf;              /* bytes read, not yet a whole line */
	size_t rlen, rcap;
	char *wbuf;              /* bytes to write, from woff */
	size_t wlen, woff, wcap;
	struct lg_pend *fifo;    /* ring of requests in flight */
	size_t fcap, fhead, fn;
	uint64_t next_id;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p)
		die("out of memory (%zu x %zu bytes)", n, sz);
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die("out of memory (%zu bytes)", n);
	return q;
}

/* ---- connections ---- */

/* Opens a non-blocking connection to the Unix socket at path; -1 if it cannot be reached. */
static int lg_dial(const char *path)
{
	struct sockaddr_un sa;
	int fd;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static struct lg_conn *lg_conn_new(const char *path, int node)
{
	int fd = lg_dial(path);
	if (fd < 0)
		return NULL;
	struct lg_conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->node = node;
	c->rcap = 64 * 1024;
	c->rbuf = xmalloc(c->rcap);
	c->wcap = 64 * 1024;
	c->wbuf = xmalloc(c->wcap);
	c->fcap = 256;
	c->fifo = xcalloc(c->fcap, sizeof(*c->fifo));
	c->next_id = 1;
	return c;
}

static void lg_conn_free(struct lg_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	free(c->fifo);
	free(c);
}

/*
 * Queues one request line: {"jsonrpc":"2.0","id":N,"method":method,"params":params}
 * where params is JSON text. Returns the request's pend slot.
 */
static struct lg_pend *lg_send(struct lg_conn *c, enum lg_req_kind kind, uint64_t arg, const char *method,
			       const char *params, size_t plen)
{
	char head[160];
	uint64_t id = c->next_id++;
	int hl = snprintf(head, sizeof(head), "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"%s\",\"params\":", id,
			  method);
	size_t need = (size_t)hl + plen + 2;
	if (c->woff > 0 && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wlen + need > c->wcap) {
		if (c->woff > 0) {
			memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		while (c->wlen + need > c->wcap)
			c->wcap *= 2;
		c->wbuf = xrealloc(c->wbuf, c->wcap);
	}
	memcpy(c->wbuf + c->wlen, head, (size_t)hl);
	c->wlen += (size_t)hl;
	memcpy(c->wbuf + c->wlen, params, plen);
	c->wlen += plen;
	c->wbuf[c->wlen++] = '}';
	c->wbuf[c->wlen++] = '\n';
	if (c->fn == c->fcap) {
		struct lg_pend *nf = xcalloc(c->fcap * 2, sizeof(*nf));
		for (size_t i = 0; i < c->fn; i++)
			nf[i] = c->fifo[(c->fhead + i) % c->fcap];
		free(c->fifo);
		c->fifo = nf;
		c->fhead = 0;
		c->fcap *= 2;
	}
	struct lg_pend *p = &c->fifo[(c->fhead + c->fn) % c->fcap];
	c->fn++;
	p->id = id;
	p->kind = kind;
	p->arg = arg;
	p->t_sent = now_s();
	return p;
}

/* Writes what the socket takes now. Returns false when the connection broke. */
static bool lg_flush(struct lg_conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return true;
			return false;
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	return true;
}

typedef void (*lg_answer_fn)(void *ctx, struct lg_conn *c, const struct lg_pend *p, json_t *msg, double t);

/*
 * Reads what is available and calls fn for each whole answer line, matched
 * with the oldest request in flight. Returns false when the connection
 * closed or sent something that is not an answer to our next request.
 */
static bool lg_read(struct lg_conn *c, lg_answer_fn fn, void *ctx)
{
	for (;;) {
		if (c->rcap - c->rlen < 32 * 1024) {
			if (c->rcap >= LG_LINE_MAX) {
				fprintf(stderr, "loadgen: answer line over %u bytes\n", LG_LINE_MAX);
				return false;
			}
			c->rcap *= 2;
			c->rbuf = xrealloc(c->rbuf, c->rcap);
		}
		ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return false;
		}
		if (n == 0)
			return false;
		size_t old = c->rlen;
		c->rlen += (size_t)n;
		double t = now_s();
		size_t start = 0;
		for (size_t i = old; i < c->rlen; i++) {
			if (c->rbuf[i] != '\n')
				continue;
			json_error_t je;
			json_t *msg = json_loadb(c->rbuf + start, i - start, 0, &je);
			start = i + 1;
			if (!msg) {
				fprintf(stderr, "loadgen: unparsable answer: %s\n", je.text);
				return false;
			}
			json_t *jid = json_object_get(msg, "id");
			if (!jid) { /* a notification: not ours to match */
				json_decref(msg);
				continue;
			}
			if (c->fn == 0 || !json_is_integer(jid) ||
			    (uint64_t)json_integer_value(jid) != c->fifo[c->fhead].id) {
				fprintf(stderr, "loadgen: answer out of order or unexpected\n");
				json_decref(msg);
				return false;
			}
			struct lg_pend p = c->fifo[c->fhead];
			c->fhead = (c->fhead + 1) % c->fcap;
			c->fn--;
			fn(ctx, c, &p, msg, t);
			json_decref(msg);
		}
		if (start > 0) {
			memmove(c->rbuf, c->rbuf + start, c->rlen - start);
			c->rlen -= start;
		}
	}
	return true;
}

/* Error code of an answer, 0 when it holds a result. */
static int lg_errcode(json_t *msg, const char **text)
{
	json_t *e = json_object_get(msg, "error");
	if (!e)
		return 0;
	if (text)
		*text = json_string_value(json_object_get(e, "message"));
	int code = (int)json_integer_value(json_object_get(e, "code"));
	return code ? code : -1;
}

static uint64_t lg_u64(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		return (uint64_t)json_integer_value(v);
	return 0;
}

/* One blocking request/answer on a fresh connection state (used by status, wait, query). */
struct lg_sync {
	json_t *answer;
	double t;
};

static void lg_sync_cb(void *ctx, struct lg_conn *c, const struct lg_pend *p, json_t *msg, double t)
{
	struct lg_sync *s = ctx;
	(void)c;
	(void)p;
	json_decref(s->answer);
	s->answer = json_incref(msg);
	s->t = t;
}

/* Sends one request on c and waits (until deadline) for its answer; NULL on failure. Caller frees. */
static json_t *lg_call(struct lg_conn *c, const char *method, const char *params, double deadline, double *rtt)
{
	struct lg_sync s = {0};
	struct lg_pend *p = lg_send(c, LG_REQ_STATUS, 0, method, params, strlen(params));
	double t0 = p->t_sent;
	while (!s.answer) {
		double now = now_s();
		if (now > deadline)
			return NULL;
		struct pollfd pf = {.fd = c->fd, .events = POLLIN | (c->woff < c->wlen ? POLLOUT : 0)};
		int ms = (int)((deadline - now) * 1000) + 1;
		if (poll(&pf, 1, ms) < 0 && errno != EINTR)
			return NULL;
		if ((pf.revents & POLLOUT) && !lg_flush(c))
			return NULL;
		if ((pf.revents & (POLLIN | POLLHUP | POLLERR)) && !lg_read(c, lg_sync_cb, &s)) {
			json_decref(s.answer);
			return NULL;
		}
	}
	if (rtt)
		*rtt = s.t - t0;
	return s.answer;
}

/* ---- options ---- */

struct lg_opts {
	char *sockets[LG_NODES_MAX];
	int nsockets;
	uint64_t count;
	double rate;       /* records/s offered; 0 = as fast as accepted */
	size_t size;       /* bytes of each encoded record, about */
	unsigned pipeline; /* publish requests in flight per socket */
	const char *run;   /* tag in the ocids */
	uint64_t start;    /* first record index */
	double timeout;    /* seconds for the whole phase */
	double poll_ms;    /* status poll interval */
	bool track;        /* follow blocks for latency (publish) */
	const char *out;   /* per-record CSV */
	uint64_t ops;      /* crypto */
	unsigned nodes;    /* crypto: nodes verifying each record */
	uint64_t records;  /* wait: target record count */
	uint64_t since_ns; /* wait: CLOCK_REALTIME ns when the node was started */
	uint64_t max_index;
	unsigned list_limit;
};

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fputs("usage: tenderd-loadgen COMMAND [OPTIONS]\n"
	      "  publish --sockets S1,S2,... --count N [--rate R] [--size BYTES] [--pipeline K]\n"
	      "          [--run TAG] [--start I] [--timeout SEC] [--poll-ms MS] [--no-track] [--out FILE.csv]\n"
	      "  crypto  [--ops N] [--size BYTES] [--nodes N]\n"
	      "  query   --socket S --run TAG --max-index N [--start I] [--count N] [--limit L] [--timeout SEC]\n"
	      "  wait    --socket S [--records N] [--since-ns T] [--timeout SEC]\n"
	      "  status  --sockets S1,S2,...\n",
	      stderr);
	exit(3);
}

static double parse_num(const char *opt, const char *v)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || *end || d < 0 || !isfinite(d)) {
		fprintf(stderr, "loadgen: %s needs a non-negative number, not '%s'\n", opt, v);
		exit(3);
	}
	return d;
}

static void parse_opts(struct lg_opts *o, int argc, char **argv)
{
	memset(o, 0, sizeof(*o));
	o->size = 1024;
	o->pipeline = 64;
	o->run = "r";
	o->timeout = 300;
	o->poll_ms = 5;
	o->track = true;
	o->ops = 20000;
	o->nodes = 4;
	o->count = 1000;
	o->list_limit = 100;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                              \
	do {                                                                 \
		if (!v) {                                                    \
			fprintf(stderr, "loadgen: %s needs a value\n", a); \
			exit(3);                                             \
		}                                                            \
		i++;                                                         \
	} while (0)
		if (!strcmp(a, "--sockets") || !strcmp(a, "--socket")) {
			NEEDV();
			char *s = strdup(v), *save = NULL;
			for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				if (o->nsockets == LG_NODES_MAX)
					die("at most %d sockets", LG_NODES_MAX);
				o->sockets[o->nsockets++] = strdup(t);
			}
			free(s);
		} else if (!strcmp(a, "--count")) {
			NEEDV();
			o->count = (uint64_t)parse_num(a, v);
		} else if (!strcmp(a, "--rate")) {
			NEEDV();
			o->rate = parse_num(a, v);
		} else if (!strcmp(a, "--size")) {
			NEEDV();
			o->size = (size_t)parse_num(a, v);
		} else if (!strcmp(a, "--pipeline")) {
			NEEDV();
			o->pipeline = (unsigned)parse_num(a, v);
		} else if (!strcmp(a, "--run")) {
			NEEDV();
			o->run = v;
		} else if (!strcmp(a, "--start")) {
			NEEDV();
			o->start = (uint64_t)parse_num(a, v);
		} else if (!strcmp(a, "--timeout")) {
			NEEDV();
			o->timeout = parse_num(a, v);
		} else if (!strcmp(a, "--poll-ms")) {
			NEEDV();
			o->poll_ms = parse_num(a, v);
		} else if (!strcmp(a, "--no-track")) {
			o->track = false;
		} else if (!strcmp(a, "--out")) {
			NEEDV();
			o->out = v;
		} else if (!strcmp(a, "--ops")) {
			NEEDV();
			o->ops = (uint64_t)parse_num(a, v);
		} else if (!strcmp(a, "--nodes")) {
			NEEDV();
			o->nodes = (unsigned)parse_num(a, v);
		} else if (!strcmp(a, "--records")) {
			NEEDV();
			o->records = (uint64_t)parse_num(a, v);
		} else if (!strcmp(a, "--since-ns")) {
			NEEDV();
			o->since_ns = strtoull(v, NULL, 10);
		} else if (!strcmp(a, "--max-index")) {
			NEEDV();
			o->max_index = (uint64_t)parse_num(a, v);
		} else if (!strcmp(a, "--limit")) {
			NEEDV();
			o->list_limit = (unsigned)parse_num(a, v);
		} else {
			fprintf(stderr, "loadgen: unknown option '%s'\n", a);
			usage();
		}
#undef NEEDV
	}
	if (o->size < LG_SIZE_MIN || o->size > LG_SIZE_MAX) {
		fprintf(stderr, "loadgen: --size must be from %d to %d\n", LG_SIZE_MIN, LG_SIZE_MAX);
		exit(3);
	}
	if (o->pipeline < 1)
		o->pipeline = 1;
	if (o->poll_ms < 0.5)
		o->poll_ms = 0.5;
}

/* ---- generated tenders ---- */

static const char lg_words[] =
	"procurement of cloud ledger services for regional agencies including maintenance training "
	"security audits data migration and integration with existing civil complaint systems ";

/*
 * Writes the params of a tender.publish for record i into buf (cap bytes):
 * {"kind":"tender","wait":false,"release":{...}} where the release fragment
 * is `size` bytes of JSON (padded in tender.description). Returns the length.
 */
static size_t lg_tender(char *buf, size_t cap, const char *run, uint64_t i, size_t size)
{
	char rel[LG_SIZE_MAX + 512];
	int n = snprintf(rel, sizeof(rel),
			 "{\"ocid\":\"ocds-kr2020-bench-%s-%" PRIu64 "\",\"tender\":{\"id\":\"bench-%s-%" PRIu64
			 "\",\"title\":\"Benchmark tender %" PRIu64 " of run %s\",\"status\":\"active\","
			 "\"value\":{\"amount\":%" PRIu64 ".%02u,\"currency\":\"KRW\"},\"procurementMethod\":\"open\","
			 "\"mainProcurementCategory\":\"services\",\"tenderPeriod\":{\"startDate\":"
			 "\"2020-03-09T09:00:00+09:00\",\"endDate\":\"2020-03-27T18:00:00+09:00\"},"
			 "\"description\":\"",
			 run, i, run, i, i, run, 1000000 + i * 37, (unsigned)(i % 100));
	size_t len = (size_t)n, tail = 3; /* "}} */
	size_t w = 0, wl = sizeof(lg_words) - 1;
	while (len + tail < size && len < sizeof(rel) - tail - 1)
		rel[len++] = lg_words[w++ % wl];
	memcpy(rel + len, "\"}}", tail);
	len += tail;
	int m = snprintf(buf, cap, "{\"kind\":\"tender\",\"wait\":false,\"release\":%.*s}", (int)len, rel);
	if (m < 0 || (size_t)m >= cap)
		die("tender buffer too small");
	return (size_t)m;
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Percentile q (0..1) of sorted v[n] (nearest rank). */
static double pct(const double *v, size_t n, double q)
{
	if (n == 0)
		return NAN;
	size_t k = (size_t)ceil(q * (double)n);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

/* ---- publish ---- */

struct lg_rec {
	uint64_t key;    /* first 8 bytes of the record id */
	double t_sent;   /* accepted publish request written */
	double t_all;    /* committed on every node, 0 until then */
	uint64_t height; /* block holding it, 0 until known */
	uint32_t tries;
	uint8_t state;   /* 0 to send, 1 in flight, 2 accepted, 3 refused */
};

struct lg_heights {       /* per node: first moment each height was seen */
	double *t;        /* t[h - base] */
	uint64_t cap;
	uint64_t seen;    /* highest height reported */
};

struct lg_pub {
	const struct lg_opts *o;
	int n;                           /* nodes */
	struct lg_conn *pub[LG_NODES_MAX];
	struct lg_conn *mon[LG_NODES_MAX];
	struct lg_heights hs[LG_NODES_MAX];
	uint64_t base;                   /* height before we started */
	double next_poll[LG_NODES_MAX];
	uint64_t fetched;                /* blocks read up to this height */
	uint64_t fetching;               /* block.get requested up to this height */
	struct lg_rec *recs;
	uint64_t *table;                 /* open addressing: idx+1, keyed by lg_rec.key */
	uint64_t tmask;
	uint64_t *retry;                 /* ring of indexes to send again */
	double *retry_at;
	uint64_t rhead, rn, rcap;
	uint64_t next_new;               /* next index never sent */
	uint64_t accepted, refused, full, committed;
	uint64_t *blk_n;                 /* our records per height (h - base) */
	uint8_t *blk_read;               /* block.get answered, per height (h - base) */
	uint64_t blk_cap;
	double t_first_send, t_last_accept;
	uint64_t max_records[LG_NODES_MAX];
	uint64_t base_records[LG_NODES_MAX]; /* records before we started */
	uint64_t settled;                /* heights counted into committed */
	double t_level;                  /* --no-track: every node held every record */
	uint64_t rec_bytes_sum, rec_bytes_n;
	bool broken;
	char first_err[256];
};

static uint64_t hex_key(const char *hex)
{
	uint64_t k = 0;
	for (int i = 0; i < 16 && hex[i]; i++) {
		char ch = hex[i];
		unsigned d = ch >= '0' && ch <= '9' ? (unsigned)(ch - '0') :
			     ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10) :
			     ch >= 'A' && ch <= 'F' ? (unsigned)(ch - 'A' + 10) : 0;
		k = k << 4 | d;
	}
	return k;
}

static void table_put(struct lg_pub *s, uint64_t key, uint64_t idx)
{
	uint64_t h = (key * 0x9e3779b97f4a7c15ull) & s->tmask;
	while (s->table[h])
		h = (h + 1) & s->tmask;
	s->table[h] = idx + 1;
}

static int64_t table_get(const struct lg_pub *s, uint64_t key)
{
	uint64_t h = (key * 0x9e3779b97f4a7c15ull) & s->tmask;
	while (s->table[h]) {
		uint64_t idx = s->table[h] - 1;
		if (s->recs[idx].key == key)
			return (int64_t)idx;
		h = (h + 1) & s->tmask;
	}
	return -1;
}

static void heights_note(struct lg_heights *hs, uint64_t base, uint64_t height, double t)
{
	if (height <= hs->seen)
		return;
	if (height - base >= hs->cap) {
		uint64_t nc = hs->cap ? hs->cap : 1024;
		while (height - base >= nc)
			nc *= 2;
		hs->t = xrealloc(hs->t, nc * sizeof(double));
		hs->cap = nc;
	}
	for (uint64_t h = hs->seen + 1; h <= height; h++)
		hs->t[h - base] = t;
	hs->seen = height;
}

static void retry_push(struct lg_pub *s, uint64_t idx, double at)
{
	if (s->rn == s->rcap) {
		uint64_t nc = s->rcap ? s->rcap * 2 : 1024;
		uint64_t *nr = xmalloc(nc * sizeof(*nr));
		double *na = xmalloc(nc * sizeof(*na));
		for (uint64_t i = 0; i < s->rn; i++) {
			nr[i] = s->retry[(s->rhead + i) % s->rcap];
			na[i] = s->retry_at[(s->rhead + i) % s->rcap];
		}
		free(s->retry);
		free(s->retry_at);
		s->retry = nr;
		s->retry_at = na;
		s->rhead = 0;
		s->rcap = nc;
	}
	s->retry[(s->rhead + s->rn) % s->rcap] = idx;
	s->retry_at[(s->rhead + s->rn) % s->rcap] = at;
	s->rn++;
}

static void pub_answer(void *ctx, struct lg_conn *c, const struct lg_pend *p, json_t *msg, double t)
{
	struct lg_pub *s = ctx;
	const char *etext = NULL;
	int code = lg_errcode(msg, &etext);
	json_t *res = json_object_get(msg, "result");

	switch (p->kind) {
	case LG_REQ_PUBLISH: {
		struct lg_rec *r = &s->recs[p->arg];
		if (code == -32004) { /* mempool full: back off and send again */
			s->full++;
			r->state = 0;
			double back = 0.005 * (double)(1u << (r->tries < 6 ? r->tries : 6));
			retry_push(s, p->arg, t + back);
			return;
		}
		if (code) {
			r->state = 3;
			s->refused++;
			if (!s->first_err[0])
				snprintf(s->first_err, sizeof(s->first_err), "%d %s", code, etext ? etext : "");
			return;
		}
		const char *id = json_string_value(json_object_get(res, "id"));
		if (!id) {
			r->state = 3;
			s->refused++;
			return;
		}
		r->state = 2;
		r->t_sent = p->t_sent;
		r->key = hex_key(id);
		table_put(s, r->key, p->arg);
		s->accepted++;
		s->t_last_accept = t;
		return;
	}
	case LG_REQ_STATUS: {
		if (code || !res) {
			s->broken = true;
			return;
		}
		uint64_t h = lg_u64(res, "height"), recs = lg_u64(res, "records");
		uint64_t mp = lg_u64(res, "mempool"), mpb = lg_u64(res, "mempool_bytes");
		heights_note(&s->hs[c->node], s->base, h, t);
		if (recs > s->max_records[c->node])
			s->max_records[c->node] = recs;
		if (mp > 0 && s->rec_bytes_n < 100000) {
			s->rec_bytes_sum += mpb / mp;
			s->rec_bytes_n++;
		}
		return;
	}
	case LG_REQ_BLOCK: {
		uint64_t h = p->arg;
		if (code || !res) {
			fprintf(stderr, "loadgen: block.get %" PRIu64 " failed: %s\n", h, etext ? etext : "?");
			s->broken = true;
			return;
		}
		json_t *ids = json_object_get(res, "records");
		size_t i;
		json_t *v;
		if (h - s->base >= s->blk_cap) {
			uint64_t nc = s->blk_cap ? s->blk_cap * 2 : 1024;
			while (h - s->base >= nc)
				nc *= 2;
			s->blk_n = xrealloc(s->blk_n, nc * sizeof(*s->blk_n));
			memset(s->blk_n + s->blk_cap, 0, (nc - s->blk_cap) * sizeof(*s->blk_n));
			s->blk_read = xrealloc(s->blk_read, nc);
			memset(s->blk_read + s->blk_cap, 0, nc - s->blk_cap);
			s->blk_cap = nc;
		}
		json_array_foreach(ids, i, v)
		{
			const char *hex = json_string_value(v);
			if (!hex)
				continue;
			int64_t idx = table_get(s, hex_key(hex));
			if (idx < 0 || s->recs[idx].height)
				continue;
			s->recs[idx].height = h;
			s->blk_n[h - s->base]++;
		}
		s->blk_read[h - s->base] = 1;
		while (s->fetched + 1 - s->base < s->blk_cap && s->blk_read[s->fetched + 1 - s->base])
			s->fetched++;
		return;
	}
	case LG_REQ_GET:
	case LG_REQ_LIST:
		return;
	}
}

/* The earliest moment height h was seen on every node, or 0 when some node has not reached it. */
static double all_time(const struct lg_pub *s, uint64_t h)
{
	double t = 0;
	for (int k = 0; k < s->n; k++) {
		if (s->hs[k].seen < h)
			return 0;
		if (s->hs[k].t[h - s->base] > t)
			t = s->hs[k].t[h - s->base];
	}
	return t;
}

/*
 * publish: sends o->count tenders (indexes o->start ..) through every socket
 * and follows their commits (see the file header). Prints one "publish ..."
 * line. Returns 0 when every record was accepted and seen committed on every
 * node before the deadline, 1 otherwise, 2 when a socket cannot be reached.
 */
static int cmd_publish(const struct lg_opts *o)
{
	struct lg_pub s;
	int rc = 1;
	memset(&s, 0, sizeof(s));
	s.o = o;
	s.n = o->nsockets;
	if (s.n < 1 || o->count < 1)
		usage();
	double t0 = now_s(), deadline = t0 + o->timeout;

	for (int k = 0; k < s.n; k++) {
		s.pub[k] = lg_conn_new(o->sockets[k], k);
		s.mon[k] = lg_conn_new(o->sockets[k], k);
		if (!s.pub[k] || !s.mon[k]) {
			fprintf(stderr, "loadgen: cannot connect to %s: %s\n", o->sockets[k], strerror(errno));
			for (int j = 0; j <= k; j++) {
				lg_conn_free(s.pub[j]);
				lg_conn_free(s.mon[j]);
			}
			return 2;
		}
	}
	/* Heights before we start: blocks at or below base hold none of our records. */
	s.base = UINT64_MAX;
	for (int k = 0; k < s.n; k++) {
		json_t *a = lg_call(s.mon[k], "status", "{}", deadline, NULL);
		if (!a || lg_errcode(a, NULL))
			die("status on %s failed", o->sockets[k]);
		uint64_t h = lg_u64(json_object_get(a, "result"), "height");
		s.base_records[k] = s.max_records[k] = lg_u64(json_object_get(a, "result"), "records");
		json_decref(a);
		if (h < s.base)
			s.base = h;
	}
	for (int k = 0; k < s.n; k++)
		s.hs[k].seen = s.base;
	s.fetched = s.fetching = s.settled = s.base;

	s.recs = xcalloc(o->count, sizeof(*s.recs));
	uint64_t tsize = 1024;
	while (tsize < o->count * 2)
		tsize *= 2;
	s.table = xcalloc(tsize, sizeof(*s.table));
	s.tmask = tsize - 1;

	size_t pcap = o->size + 1024;
	char *pbuf = xmalloc(pcap);
	struct pollfd pfd[2 * LG_NODES_MAX];
	bool status_busy[LG_NODES_MAX] = {false};
	int rr = 0;
	double t_start = now_s();
	s.t_first_send = t_start;
	uint64_t sent_sched = 0; /* publish requests written, for the rate */
	double last_report = t_start;

	for (;;) {
		double now = now_s();
		if (now > deadline) {
			fprintf(stderr, "loadgen: deadline of %.0f s reached\n", o->timeout);
			break;
		}
		if (s.broken)
			break;
		bool all_sent = s.next_new >= o->count && s.rn == 0;
		bool in_flight = false;
		for (int k = 0; k < s.n; k++)
			if (s.pub[k]->fn > 0)
				in_flight = true;
		if (all_sent && !in_flight && s.committed >= s.accepted)
			break;

		/* publishes: as many as the rate and the windows allow */
		bool windows_full = false;
		for (;;) {
			if (o->rate > 0 && (double)sent_sched >= (now - t_start) * o->rate)
				break;
			uint64_t idx;
			bool from_retry = false;
			if (s.rn > 0 && s.retry_at[s.rhead] <= now) {
				idx = s.retry[s.rhead];
				from_retry = true;
			} else if (s.next_new < o->count) {
				idx = s.next_new;
			} else {
				break;
			}
			int pick = -1;
			for (int j = 0; j < s.n; j++) {
				int k = (rr + j) % s.n;
				if (s.pub[k]->fn < o->pipeline) {
					pick = k;
					break;
				}
			}
			if (pick < 0) { /* wait for answers, not for the clock */
				windows_full = true;
				break;
			}
			rr = (pick + 1) % s.n;
			if (from_retry) {
				s.rhead = (s.rhead + 1) % s.rcap;
				s.rn--;
			} else {
				s.next_new++;
			}
			size_t plen = lg_tender(pbuf, pcap, o->run, o->start + idx, o->size - LG_RECORD_OVERHEAD);
			lg_send(s.pub[pick], LG_REQ_PUBLISH, idx, "tender.publish", pbuf, plen);
			s.recs[idx].state = 1;
			s.recs[idx].tries++;
			sent_sched++;
		}

		/* monitors: status polls, and block reads on the first node that has the block */
		double poll_every = (o->track ? o->poll_ms : 200.0) / 1000.0;
		for (int k = 0; k < s.n; k++) {
			status_busy[k] = false;
			for (size_t f = 0; f < s.mon[k]->fn; f++)
				if (s.mon[k]->fifo[(s.mon[k]->fhead + f) % s.mon[k]->fcap].kind == LG_REQ_STATUS)
					status_busy[k] = true;
			if (!status_busy[k] && now >= s.next_poll[k]) {
				status_busy[k] = true;
				lg_send(s.mon[k], LG_REQ_STATUS, 0, "status", "{}", 2);
				s.next_poll[k] = now + poll_every;
			}
		}
		if (o->track) {
			uint64_t top = 0;
			int src = 0;
			for (int k = 0; k < s.n; k++)
				if (s.hs[k].seen > top) {
					top = s.hs[k].seen;
					src = k;
				}
			while (s.fetching < top && s.fetching - s.fetched < 16) {
				char prm[48];
				s.fetching++;
				int pl = snprintf(prm, sizeof(prm), "{\"height\":%" PRIu64 "}", s.fetching);
				lg_send(s.mon[src], LG_REQ_BLOCK, s.fetching, "block.get", prm, (size_t)pl);
			}
		}

		/* poll the sockets */
		int np = 0;
		for (int k = 0; k < s.n; k++) {
			pfd[np].fd = s.pub[k]->fd;
			pfd[np].events = POLLIN | (s.pub[k]->woff < s.pub[k]->wlen ? POLLOUT : 0);
			np++;
			pfd[np].fd = s.mon[k]->fd;
			pfd[np].events = POLLIN | (s.mon[k]->woff < s.mon[k]->wlen ? POLLOUT : 0);
			np++;
		}
		/* write first, then wait at most until the next poll or the next due publish */
		for (int k = 0; k < s.n; k++) {
			if (!lg_flush(s.pub[k]) || !lg_flush(s.mon[k])) {
				fprintf(stderr, "loadgen: write to node %d failed\n", k);
				s.broken = true;
			}
		}
		/* a poll still unanswered is waited for on its socket, not by spinning */
		double wait_s = 0.05;
		for (int k = 0; k < s.n; k++)
			if (!status_busy[k] && s.next_poll[k] - now < wait_s)
				wait_s = s.next_poll[k] - now;
		if (!windows_full && o->rate > 0 && s.next_new < o->count) {
			double due = t_start + (double)sent_sched / o->rate - now;
			if (due < wait_s)
				wait_s = due;
		}
		if (!windows_full && s.rn > 0 && s.retry_at[s.rhead] - now < wait_s)
			wait_s = s.retry_at[s.rhead] - now;
		int ms = wait_s <= 0 ? 0 : (int)ceil(wait_s * 1000);
		if (poll(pfd, (nfds_t)np, ms) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (int k = 0; k < s.n; k++) {
			short pr = pfd[2 * k].revents, mr = pfd[2 * k + 1].revents;
			if ((pr & POLLOUT) && !lg_flush(s.pub[k]))
				s.broken = true;
			if ((mr & POLLOUT) && !lg_flush(s.mon[k]))
				s.broken = true;
			if ((pr & (POLLIN | POLLHUP | POLLERR)) && !lg_read(s.pub[k], pub_answer, &s))
				s.broken = true;
			if ((mr & (POLLIN | POLLHUP | POLLERR)) && !lg_read(s.mon[k], pub_answer, &s))
				s.broken = true;
			if (s.broken) {
				fprintf(stderr, "loadgen: connection to %s broke\n", o->sockets[k]);
				break;
			}
		}

		/* settle: records in blocks read and seen on every node */
		now = now_s();
		if (o->track) {
			while (s.settled < s.fetched) {
				if (all_time(&s, s.settled + 1) == 0)
					break;
				s.settled++;
				if (s.settled - s.base < s.blk_cap)
					s.committed += s.blk_n[s.settled - s.base];
			}
		} else {
			/* without tracking: the fewest new records any node holds */
			uint64_t lo = UINT64_MAX;
			for (int k = 0; k < s.n; k++)
				if (s.max_records[k] - s.base_records[k] < lo)
					lo = s.max_records[k] - s.base_records[k];
			if (lo > s.committed) {
				s.committed = lo;
				s.t_level = now;
			}
		}
		if (now - last_report >= 5.0) {
			last_report = now;
			fprintf(stderr, "loadgen: %.0f s: sent %" PRIu64 " accepted %" PRIu64 " committed %" PRIu64
					" full %" PRIu64 " height %" PRIu64 "\n",
				now - t_start, sent_sched, s.accepted, s.committed, s.full, s.hs[0].seen);
		}
	}

	/* results */
	uint64_t ncommit = 0;
	double t_first_all = 0, t_last_all = 0;
	uint64_t first_h = 0, last_h = 0;
	double *lat = xmalloc(o->count * sizeof(double));
	for (uint64_t i = 0; i < o->count; i++) {
		struct lg_rec *r = &s.recs[i];
		if (r->state != 2 || !r->height)
			continue;
		double ta = all_time(&s, r->height);
		if (ta == 0)
			continue;
		r->t_all = ta;
		lat[ncommit++] = (ta - r->t_sent) * 1000.0;
		if (!first_h || r->height < first_h) {
			first_h = r->height;
			t_first_all = ta;
		}
		if (r->height > last_h) {
			last_h = r->height;
			t_last_all = ta;
		}
	}
	uint64_t in_first = first_h ? s.blk_n[first_h - s.base] : 0;
	double span = t_last_all - t_first_all;
	double rps = span > 0 ? (double)(ncommit - in_first) / span : 0;
	if (ncommit > 0 && span <= 0) {
		/* one block held everything: count from the first publish instead */
		span = t_last_all - t_start;
		rps = span > 0 ? (double)ncommit / span : 0;
	}
	double pub_span = s.t_last_accept - s.t_first_send;
	double pub_rps = pub_span > 0 ? (double)s.accepted / pub_span : 0;
	qsort(lat, ncommit, sizeof(double), cmp_double);

	if (o->out) {
		FILE *f = fopen(o->out, "w");
		if (!f)
			die("cannot write %s: %s", o->out, strerror(errno));
		fprintf(f, "index,ocid,tries,sent_ms,height,committed_all_ms,latency_ms\n");
		for (uint64_t i = 0; i < o->count; i++) {
			const struct lg_rec *r = &s.recs[i];
			fprintf(f, "%" PRIu64 ",ocds-kr2020-bench-%s-%" PRIu64 ",%u,%.3f,%" PRIu64 ",%.3f,%.3f\n",
				o->start + i, o->run, o->start + i, r->tries, (r->t_sent - t_start) * 1000, r->height,
				r->t_all ? (r->t_all - t_start) * 1000 : -1.0,
				r->t_all ? (r->t_all - r->t_sent) * 1000 : -1.0);
		}
		fclose(f);
	}

	uint64_t nlat = ncommit;
	if (!o->track) { /* no latencies; throughput from the first send to every node level */
		nlat = 0;
		ncommit = s.committed;
		span = s.t_level - t_start;
		rps = span > 0 ? (double)ncommit / span : 0;
	}
	bool complete = s.accepted == o->count && ncommit >= s.accepted;
	printf("publish count=%" PRIu64 " accepted=%" PRIu64 " refused=%" PRIu64 " full_retries=%" PRIu64
	       " committed=%" PRIu64 " committed_rps=%.1f span_s=%.3f blocks=%" PRIu64 " publish_rps=%.1f"
	       " p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f rate=%.1f record_bytes=%.0f elapsed_s=%.2f"
	       " complete=%d\n",
	       o->count, s.accepted, s.refused, s.full, ncommit, rps, span, first_h ? last_h - first_h + 1 : 0,
	       pub_rps, pct(lat, nlat, 0.50), pct(lat, nlat, 0.90), pct(lat, nlat, 0.99), nlat ? lat[nlat - 1] : NAN,
	       o->rate,
	       s.rec_bytes_n ? (double)s.rec_bytes_sum / (double)s.rec_bytes_n : NAN, now_s() - t_start, complete);
	if (s.first_err[0])
		fprintf(stderr, "loadgen: first refusal: %s\n", s.first_err);
	rc = complete ? 0 : 1;

	free(lat);
	free(pbuf);
	for (int k = 0; k < s.n; k++) {
		lg_conn_free(s.pub[k]);
		lg_conn_free(s.mon[k]);
		free(s.hs[k].t);
	}
	free(s.recs);
	free(s.table);
	free(s.retry);
	free(s.retry_at);
	free(s.blk_n);
	free(s.blk_read);
	return rc;
}

/* ---- crypto ---- */

static int cmd_crypto(const struct lg_opts *o)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	unsigned char sig[crypto_sign_BYTES];
	uint64_t ops = o->ops ? o->ops : 1;
	unsigned char *msg = xmalloc(o->size);
	volatile unsigned sink = 0;

	randombytes_buf(msg, o->size);
	crypto_sign_keypair(pk, sk);
	for (int i = 0; i < 200; i++) /* warm up */
		crypto_sign_detached(sig, NULL, msg, o->size, sk);
	double t0 = now_s();
	for (uint64_t i = 0; i < ops; i++) {
		msg[i % o->size] ^= 1;
		crypto_sign_detached(sig, NULL, msg, o->size, sk);
		sink += sig[0];
	}
	double t_sign = (now_s() - t0) / (double)ops;
	crypto_sign_detached(sig, NULL, msg, o->size, sk);
	uint64_t bad = 0;
	t0 = now_s();
	for (uint64_t i = 0; i < ops; i++)
		if (crypto_sign_verify_detached(sig, msg, o->size, pk) != 0)
			bad++;
	double t_verify = (now_s() - t0) / (double)ops;
	(void)sink;
	free(msg);
	if (bad)
		die("%" PRIu64 " verifications of a good signature failed", bad);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (cores < 1)
		cores = 1;
	double bound = (double)cores / (t_sign + (double)o->nodes * t_verify);
	printf("crypto ops=%" PRIu64 " size=%zu sign_us=%.2f verify_us=%.2f cores=%ld nodes=%u verify_bound_rps=%.0f\n",
	       ops, o->size, t_sign * 1e6, t_verify * 1e6, cores, o->nodes, bound);
	return 0;
}

/* ---- query ---- */

static int cmd_query(const struct lg_opts *o)
{
	if (o->nsockets != 1 || o->max_index < 1)
		usage();
	double deadline = now_s() + o->timeout;
	struct lg_conn *c = lg_conn_new(o->sockets[0], 0);
	if (!c) {
		fprintf(stderr, "loadgen: cannot connect to %s\n", o->sockets[0]);
		return 2;
	}
	uint64_t n = o->count ? o->count : 1;
	uint64_t nlist = n / 10 > 0 ? n / 10 : 1;
	double *get = xmalloc(n * sizeof(double)), *list = xmalloc(nlist * sizeof(double));
	uint64_t ng = 0, nl = 0, errs = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	char prm[256];
	for (uint64_t i = 0; i < n && now_s() < deadline; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		uint64_t k = o->start + rng % o->max_index;
		snprintf(prm, sizeof(prm), "{\"ocid\":\"ocds-kr2020-bench-%s-%" PRIu64 "\"}", o->run, k);
		double rtt;
		json_t *a = lg_call(c, "tender.get", prm, deadline, &rtt);
		if (!a)
			break;
		if (lg_errcode(a, NULL) || !json_object_get(json_object_get(a, "result"), "compiled"))
			errs++;
		else
			get[ng++] = rtt * 1000;
		json_decref(a);
	}
	snprintf(prm, sizeof(prm), "{\"limit\":%u}", o->list_limit);
	for (uint64_t i = 0; i < nlist && now_s() < deadline; i++) {
		double rtt;
		json_t *a = lg_call(c, "tender.list", prm, deadline, &rtt);
		if (!a)
			break;
		json_t *t = json_object_get(json_object_get(a, "result"), "tenders");
		if (lg_errcode(a, NULL) || json_array_size(t) != o->list_limit)
			errs++;
		else
			list[nl++] = rtt * 1000;
		json_decref(a);
	}
	lg_conn_free(c);
	qsort(get, ng, sizeof(double), cmp_double);
	qsort(list, nl, sizeof(double), cmp_double);
	printf("query gets=%" PRIu64 " get_p50_ms=%.3f get_p99_ms=%.3f lists=%" PRIu64 " list_limit=%u"
	       " list_p50_ms=%.3f list_p99_ms=%.3f errors=%" PRIu64 "\n",
	       ng, pct(get, ng, 0.5), pct(get, ng, 0.99), nl, o->list_limit, pct(list, nl, 0.5), pct(list, nl, 0.99),
	       errs);
	free(get);
	free(list);
	return (errs || ng < n || nl < nlist) ? 1 : 0;
}

/* ---- wait ---- */

static int cmd_wait(const struct lg_opts *o)
{
	if (o->nsockets != 1)
		usage();
	uint64_t since = o->since_ns ? o->since_ns : wall_ns();
	double deadline = now_s() + o->timeout;
	struct lg_conn *c = NULL;
	double ready_ms = -1, level_ms = -1;
	uint64_t recs = 0, first_recs = 0;
	bool first = true;

	while (now_s() < deadline) {
		if (!c) {
			c = lg_conn_new(o->sockets[0], 0);
			if (!c) {
				usleep(2000);
				continue;
			}
		}
		json_t *a = lg_call(c, "status", "{}", deadline, NULL);
		if (!a) {
			lg_conn_free(c);
			c = NULL;
			usleep(2000);
			continue;
		}
		recs = lg_u64(json_object_get(a, "result"), "records");
		json_decref(a);
		if (first) {
			ready_ms = (double)(wall_ns() - since) / 1e6;
			first_recs = recs;
			first = false;
		}
		if (recs >= o->records) {
			level_ms = (double)(wall_ns() - since) / 1e6;
			break;
		}
		usleep(20000);
	}
	lg_conn_free(c);
	double rps = level_ms > 0 ? (double)recs / (level_ms / 1000.0) : 0;
	printf("wait ready_ms=%.1f level_ms=%.1f records=%" PRIu64 " first_records=%" PRIu64 " rps=%.1f complete=%d\n",
	       ready_ms, level_ms, recs, first_recs, rps, level_ms >= 0);
	return level_ms >= 0 ? 0 : 1;
}

/* ---- status ---- */

static int cmd_status(const struct lg_opts *o)
{
	int rc = 0;
	for (int k = 0; k < o->nsockets; k++) {
		struct lg_conn *c = lg_conn_new(o->sockets[k], k);
		json_t *a = c ? lg_call(c, "status", "{}", now_s() + 10, NULL) : NULL;
		json_t *r = a ? json_object_get(a, "result") : NULL;
		if (!r) {
			printf("status node=%d reachable=0\n", k);
			rc = 2;
		} else {
			printf("status node=%d reachable=1 height=%" PRIu64 " records=%" PRIu64 " mempool=%" PRIu64
			       " bytes_sent=%" PRIu64 " bytes_received=%" PRIu64 "\n",
			       k, lg_u64(r, "height"), lg_u64(r, "records"), lg_u64(r, "mempool"),
			       lg_u64(json_object_get(r, "p2p"), "bytes_sent"),
			       lg_u64(json_object_get(r, "p2p"), "bytes_received"));
		}
		json_decref(a);
		lg_conn_free(c);
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct lg_opts o;
	if (argc < 2)
		usage();
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sodium_init() < 0)
		die("sodium_init failed");
	parse_opts(&o, argc, argv);
	const char *cmd = argv[1];
	int rc = 3;
	if (!strcmp(cmd, "publish"))
		rc = cmd_publish(&o);
	else if (!strcmp(cmd, "crypto"))
		rc = cmd_crypto(&o);
	else if (!strcmp(cmd, "query"))
		rc = cmd_query(&o);
	else if (!strcmp(cmd, "wait"))
		rc = cmd_wait(&o);
	else if (!strcmp(cmd, "status"))
		rc = cmd_status(&o);
	else
		usage();
	for (int k = 0; k < o.nsockets; k++)
		free(o.sockets[k]);
	return rc;
}
