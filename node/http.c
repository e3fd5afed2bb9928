/*
 * The HTTP endpoint (see http.h). Owns the libmicrohttpd daemon, its
 * listening socket, the uv handles that drive it and the endpoint's own
 * counters; reads the node only through node_view() and answers each
 * request within the call libmicrohttpd makes, on the loop thread.
 *
 * A request's state (struct http_req, libmicrohttpd's con_cls) lives from
 * the first call of the access handler to the completion callback, which
 * counts it in the metrics. A streamed page (struct page_stream) belongs to
 * its libmicrohttpd response and is freed with it, at the latest when the
 * daemon stops, which is before the chain closes. A full page's bytes go to
 * the page cache (struct page_entry, reference counted: the cache holds one,
 * each response sent from it another) when its stream has handed them all
 * over; so do the last page's, under a tag that names the tip, until the
 * next version of that page replaces them.
 *
 * Stopping (http_stop) is graceful: the listening socket closes at once,
 * answers under way get HTTP_STOP_GRACE_MS to finish, then the daemon stops
 * and the handles close; the struct goes with the last handle.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "chain.h"
#include "chainjson.h"
#include "consensus.h"
#include "driver.h"
#include "evidence.h"
#include "gossip.h"
#include "hist.h"
#include "http.h"
#include "registry.h"
#include "log.h"
#include "mempool.h"
#include "node.h"
#include "nodeio.h"
#include "rpc.h"
#include "sync.h"
#include "tenderd/isotime.h"
#include "tenderd/json.h"
#include "wal.h"

#define HTTP_LOG_PER_MINUTE 20 /* libmicrohttpd's messages logged a minute; the rest are counted */
#define HTTP_CODES_MAX 16      /* distinct status codes counted per route */

#define CACHE_IMMUTABLE "public, max-age=31536000, immutable"
#define CACHE_REVALIDATE "no-cache"
#define CACHE_NONE "no-store"
#define TYPE_JSON "application/json; charset=utf-8"
#define TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define TYPE_HTML "text/html; charset=utf-8"

/* ---- metrics of the endpoint and of the blocks seen ---- */

enum http_route {
	ROUTE_EXPLORER,
	ROUTE_RELEASES,
	ROUTE_RECORDS,
	ROUTE_TENDERS,
	ROUTE_STATUS,
	ROUTE_BLOCKS,
	ROUTE_VALIDATORS,
	ROUTE_HEALTH,
	ROUTE_METRICS,
	ROUTE_OTHER,
};
#define ROUTES 10
static const char *const route_names[ROUTES] = { "explorer", "releases",   "records", "tenders", "status",
						 "blocks",   "validators", "health",  "metrics", "other" };

static const double interval_le[] = { 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600 };
static const double rounds_le[] = { 1, 2, 3, 4, 6, 8, 16 };
static const double records_le[] = { 0, 1, 4, 16, 64, 256, 1024, 4096 };

struct code_count {
	unsigned code;
	uint64_t n;
};

struct route_stats {
	struct hist latency;
	struct code_count codes[HTTP_CODES_MAX];
	uint32_t ncodes;
};

/* One request, from the access handler's first call to the completion callback. */
struct http_req {
	uint64_t start_ns; /* uv_hrtime */
	enum http_route route;
	unsigned status;
	bool answered; /* the answer is queued */
};

/* A growable text buffer; zero it to start, free(p) unless handed over. */
struct tbuf {
	char *p;
	size_t len, cap;
};

/* A release package streamed from a store snapshot, owned by its response. */
struct page_stream {
	struct http *h;
	struct chain_export *x;
	struct chain_text text; /* what is made and not yet handed over */
	size_t off;             /* bytes of text handed over */
	int rc;                 /* chain_export_next's last answer: 1 more to come, 0 done, < 0 failed */
	uint64_t from, to;
	struct tbuf *copy; /* the bytes handed over so far, for the page cache */
	bool last;         /* the page still filling: its bytes hold until the next block */
	char etag[40];
};

/*
 * A full release page's bytes in the page cache. refs: one for the cache
 * while it holds the entry, one per response being sent from it; the last
 * to let go frees it.
 */
struct page_entry {
	char etag[40];
	uint64_t from; /* the page's first block */
	bool last;     /* the page still filling, kept until a newer version of it */
	char *body;
	size_t len;
	uint32_t refs;
	uint64_t used; /* the cache clock at its last use, for eviction */
	struct page_entry *next;
};

/* A response sent from a page cache entry. */
struct cached_read {
	struct page_entry *e;
};

/* What a handler answers; the dispatcher turns it into a response. */
struct answer {
	unsigned status;
	const char *type;
	char *body; /* malloc'd, or NULL with stream */
	size_t len;
	struct page_stream *stream;
	struct page_entry *cached; /* a reference, instead of body or stream */
	char etag[40];             /* quoted strong tag, or empty */
	const char *cache;         /* Cache-Control */
	bool allow;                /* 405: an Allow header */
	bool csp;                  /* the explorer page: a Content-Security-Policy */
	bool close;                /* close the connection after this answer */
};

struct http {
	uv_loop_t *loop;
	struct node *node;
	struct MHD_Daemon *mhd;
	uv_poll_t poll; /* libmicrohttpd's epoll descriptor */
	uv_timer_t timer;
	int open_handles;       /* handles not yet closed; the struct goes with the last */
	bool stopping;          /* http_stop was called: no new connections, open ones are ending */
	uint64_t stop_deadline; /* uv_now after which the connections left are cut */
	uint32_t inflight;      /* requests begun and not yet completed */
	char addr[160];         /* the address listened on, as logged */
	char public_url[256];
	unsigned max_connections; /* [http] max_connections */
	uint64_t started_ms;
	uint64_t started_mono; /* uv_now when it started */
	/* metrics */
	struct route_stats routes[ROUTES];
	uint64_t requests;
	uint64_t seen_height; /* blocks up to here are in the block histograms */
	uint64_t seen_time_ms;
	struct hist interval, rounds, records;
	const struct rpc *rpc; /* the socket, for its request latencies; NULL: not reported */
	/* release pages, HTTP_PAGE_CACHE_BYTES at most */
	struct page_entry *cache;
	size_t cache_bytes;
	uint64_t cache_clock, cache_hits, cache_misses;
	/* libmicrohttpd's messages, HTTP_LOG_PER_MINUTE at most */
	uint64_t log_window_ms;
	uint32_t log_count, log_dropped;
};

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- pure parts ---- */

int http_page(uint64_t from, uint64_t tip, struct http_page *out)
{
	memset(out, 0, sizeof(*out));
	if (from == 0)
		from = 1;
	if (from > tip)
		return TD_ENOTFOUND;
	if (from > UINT64_MAX - HTTP_PAGE_BLOCKS)
		return TD_EINVAL;
	out->from = from;
	out->next = from + HTTP_PAGE_BLOCKS;
	out->complete = out->next - 1 <= tip;
	out->to = out->complete ? out->next - 1 : tip;
	return 0;
}

bool http_etag_match(const char *inm, const char *etag)
{
	size_t elen = strlen(etag);
	const char *p = inm;

	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		const char *end = p;
		if (*p == '"') {
			end = strchr(p + 1, '"');
			if (!end)
				return false;
			end++;
		} else {
			while (*end && *end != ',')
				end++;
		}
		if ((size_t)(end - p) == elen && memcmp(p, etag, elen) == 0)
			return true;
		p = end;
	}
	return false;
}

bool http_query_escape(char *out, size_t cap, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			    c == '.' || c == '_' || c == '~';
		if (o + (keep ? 1 : 3) >= cap)
			return false;
		if (keep) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= cap)
		return false;
	out[o] = '\0';
	return true;
}

bool http_label_escape(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	for (; *s; s++) {
		const char *rep = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
		size_t n = rep ? 2 : 1;
		if (o + n >= cap)
			return false;
		if (rep) {
			memcpy(out + o, rep, 2);
		} else {
			out[o] = *s;
		}
		o += n;
	}
	if (o >= cap)
		return false;
	out[o] = '\0';
	return true;
}

/* ---- answers ---- */

static void tb_printf(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(struct tbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			abort();
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		b->cap = b->cap * 2 + (size_t)n + 256;
		b->p = td_xrealloc(b->p, b->cap);
	}
}

/* etag = a quoted strong tag of the first 16 bytes of BLAKE2b over the parts given (pointer, length, ... NULL). */
static void etag_of(char out[static 40], ...)
{
	crypto_generichash_state st;
	uint8_t h[16];
	char hex[33];
	va_list ap;

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	va_start(ap, out);
	for (;;) {
		const void *p = va_arg(ap, const void *);
		if (!p)
			break;
		size_t n = va_arg(ap, size_t);
		uint8_t len8[8];
		for (int i = 0; i < 8; i++)
			len8[i] = (uint8_t)((uint64_t)n >> (8 * i));
		crypto_generichash_update(&st, len8, sizeof(len8)); /* parts cannot run into each other */
		crypto_generichash_update(&st, p, n);
	}
	va_end(ap);
	crypto_generichash_final(&st, h, sizeof(h));
	td_hex(hex, h, sizeof(h));
	snprintf(out, 40, "\"%s\"", hex);
}

/* Answers the JSON v (taken), with a strong ETag of its bytes if cache is not CACHE_NONE. */
static void json_answer(struct answer *a, unsigned status, json_t *v, const char *cache)
{
	char *text = td_json_dump(v, JSON_COMPACT);
	json_decref(v);
	if (!text)
		abort();
	a->status = status;
	a->type = TYPE_JSON;
	a->len = strlen(text);
	a->body = text;
	a->cache = cache;
	if (strcmp(cache, CACHE_NONE) != 0)
		etag_of(a->etag, text, a->len, NULL);
}

/* Answers {"error": {"code", "message"}} (with extra's members if not NULL, taken). */
static void error_answer(struct answer *a, unsigned status, json_t *extra, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void error_answer(struct answer *a, unsigned status, json_t *extra, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *v = json_pack("{s:{s:i, s:s}}", "error", "code", (int)status, "message", msg);
	if (extra)
		json_object_update(v, extra);
	json_decref(extra);
	json_answer(a, status, v, CACHE_NONE);
}

/* A chain query failed with rc: 404 with the message for TD_ENOTFOUND, else 500 (the chain logged it). */
static void chain_error(struct answer *a, int rc, const char *notfound)
{
	if (rc == TD_ENOTFOUND)
		error_answer(a, 404, NULL, "%s", notfound);
	else
		error_answer(a, 500, NULL, "store error: %s (see the node's log)", td_strerror(rc));
}

static const char *arg(struct MHD_Connection *conn, const char *name)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
	return v && *v ? v : NULL;
}

/* Parses a whole number of at most 20 digits; false for anything else. */
static bool parse_u64(const char *s, uint64_t *out)
{
	return s && *s && strlen(s) <= 20 && td_parse_u64(s, strlen(s), out);
}

/* ---- streamed release pages ---- */

static void stream_fill(struct page_stream *s)
{
	for (int k = 0; k < 256 && s->text.len < HTTP_STREAM_TURN_BYTES && s->rc == 1; k++)
		s->rc = chain_export_next(s->x, &s->text);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct page_stream *s = cls;

	while (s->off == s->text.len) {
		if (s->rc == 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		s->text.len = 0;
		s->off = 0;
		stream_fill(s);
		if (s->rc < 0) {
			log_error("http: page of blocks %llu..%llu: store error: %s; the answer is cut short",
				  (unsigned long long)s->from, (unsigned long long)s->to, td_strerror(s->rc));
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
	size_t n = s->text.len - s->off;
	if (n > max)
		n = max;
	memcpy(buf, s->text.p + s->off, n);
	s->off += n;
	if (s->copy && s->copy->len + n > HTTP_PAGE_CACHE_ENTRY_MAX) {
		free(s->copy->p);
		free(s->copy);
		s->copy = NULL; /* too large to keep */
	}
	if (s->copy) {
		if (s->copy->len + n > s->copy->cap) {
			s->copy->cap = 2 * (s->copy->len + n);
			s->copy->p = td_xrealloc(s->copy->p, s->copy->cap);
		}
		memcpy(s->copy->p + s->copy->len, buf, n);
		s->copy->len += n;
	}
	return (ssize_t)n;
}

static void entry_unref(struct page_entry *e)
{
	if (e && --e->refs == 0) {
		free(e->body);
		free(e);
	}
}

/* Drops the least recently used entry of the page cache. */
static void cache_evict(struct http *h)
{
	struct page_entry **p, **lru = NULL;
	for (p = &h->cache; *p; p = &(*p)->next)
		if (!lru || (*p)->used < (*lru)->used)
			lru = p;
	if (!lru)
		return;
	struct page_entry *e = *lru;
	*lru = e->next;
	h->cache_bytes -= e->len;
	entry_unref(e);
}

/* The cached page with this tag (a new reference), or NULL. */
static struct page_entry *cache_get(struct http *h, const char *etag)
{
	for (struct page_entry *e = h->cache; e; e = e->next) {
		if (strcmp(e->etag, etag) == 0) {
			e->used = ++h->cache_clock;
			e->refs++;
			return e;
		}
	}
	return NULL;
}

/*
 * Keeps a page's bytes (taken) under its tag, evicting the least recently
 * used; a version of the last page replaces the older ones of that page.
 */
static void cache_put(struct http *h, const char *etag, uint64_t from, bool last, char *body, size_t len)
{
	struct page_entry *e = cache_get(h, etag);
	if (e || len > HTTP_PAGE_CACHE_ENTRY_MAX) { /* another request made it meanwhile */
		entry_unref(e);
		free(body);
		return;
	}
	for (struct page_entry **p = &h->cache; *p;) {
		if ((*p)->last && (*p)->from == from) {
			e = *p;
			*p = e->next;
			h->cache_bytes -= e->len;
			entry_unref(e);
		} else {
			p = &(*p)->next;
		}
	}
	while (h->cache && h->cache_bytes + len > HTTP_PAGE_CACHE_BYTES)
		cache_evict(h);
	e = td_xcalloc(1, sizeof(*e));
	snprintf(e->etag, sizeof(e->etag), "%s", etag);
	e->from = from;
	e->last = last;
	e->body = body;
	e->len = len;
	e->refs = 1;
	e->used = ++h->cache_clock;
	e->next = h->cache;
	h->cache = e;
	h->cache_bytes += len;
}

static void stream_free(void *cls)
{
	struct page_stream *s = cls;
	if (!s)
		return;
	if (s->copy && s->rc == 0 && s->off == s->text.len && s->h)
		cache_put(s->h, s->etag, s->from, s->last, s->copy->p, s->copy->len); /* all handed over */
	else if (s->copy)
		free(s->copy->p);
	free(s->copy);
	chain_export_free(s->x);
	free(s->text.p);
	free(s);
}

static ssize_t cached_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	const struct cached_read *c = cls;
	if (pos >= c->e->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	size_t n = c->e->len - (size_t)pos;
	if (n > max)
		n = max;
	memcpy(buf, c->e->body + pos, n);
	return (ssize_t)n;
}

static void cached_free(void *cls)
{
	struct cached_read *c = cls;
	entry_unref(c->e);
	free(c);
}

/* ---- handlers ---- */

static void h_releases(struct http *h, const struct node_view *v, struct MHD_Connection *conn, struct answer *a)
{
	const char *fs = arg(conn, "from_height");
	uint64_t from = 1, tip = chain_height(v->chain);
	struct http_page pg;
	struct chain_block_info last;
	char uri[400], next[400];
	int rc;

	if (fs && !parse_u64(fs, &from)) {
		error_answer(a, 400, NULL, "from_height must be a block height (a whole number from 1)");
		return;
	}
	if ((rc = http_page(from, tip, &pg)) != 0) {
		error_answer(a, rc == TD_ENOTFOUND ? 404 : 400, NULL, "no block %llu yet (the chain is at height %llu)",
			     (unsigned long long)from, (unsigned long long)tip);
		return;
	}
	snprintf(uri, sizeof(uri), "%s/api/releases?from_height=%llu", h->public_url, (unsigned long long)pg.from);
	snprintf(next, sizeof(next), "%s/api/releases?from_height=%llu", h->public_url, (unsigned long long)pg.next);
	if ((rc = chain_block_info(v->chain, pg.to, false, &last)) != 0) {
		chain_error(a, rc, "no such block");
		return;
	}
	/* The bytes of a page follow from its range, its last block (whose hash covers every
	 * block before it), the publisher and the uri: so does its tag. */
	uint64_t range[2] = { pg.from, pg.to };
	etag_of(a->etag, "release-page-1", (size_t)14, range, sizeof(range), last.hash, (size_t)TD_HASH_LEN,
		v->cfg->name, strlen(v->cfg->name), uri, strlen(uri), NULL);
	a->cache = pg.complete ? CACHE_IMMUTABLE : CACHE_REVALIDATE;
	a->status = 200;
	a->type = TYPE_JSON;
	/* the dispatcher answers 304 without making the page when the tag matches */
	const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm && http_etag_match(inm, a->etag))
		return;

	if ((a->cached = cache_get(h, a->etag)) != NULL) {
		h->cache_hits++;
		return;
	}
	struct chain_export *x;
	if ((rc = chain_export_new(&x, v->chain, pg.from, pg.to, false, v->cfg->name, uri)) != 0) {
		a->etag[0] = '\0';
		chain_error(a, rc, "no such blocks");
		return;
	}
	if (chain_export_empty(x)) {
		/* the package schema wants at least one release: say so, and where to go on */
		chain_export_free(x);
		a->etag[0] = '\0';
		error_answer(a, 404, pg.complete ? json_pack("{s:{s:s}}", "links", "next", next) : NULL,
			     "blocks %llu..%llu hold no releases", (unsigned long long)pg.from,
			     (unsigned long long)pg.to);
		return;
	}
	struct page_stream *s = td_xcalloc(1, sizeof(*s));
	s->h = h;
	s->x = x;
	s->rc = 1;
	s->from = pg.from;
	s->to = pg.to;
	/* the first pieces are made now, so a store error still gets an error answer */
	stream_fill(s);
	if (s->rc < 0 || s->text.len == 0 || s->text.p[0] != '{') {
		rc = s->rc < 0 ? s->rc : TD_ECORRUPT;
		stream_free(s);
		a->etag[0] = '\0';
		chain_error(a, rc, "no such blocks");
		return;
	}
	if (pg.complete) {
		/* links.next goes first in the package object (the 1.1 package schema allows "links") */
		json_t *l = json_pack("{s:{s:s}}", "links", "next", next);
		char *lt = json_dumps(l, JSON_COMPACT);
		json_decref(l);
		if (!lt)
			abort();
		size_t ll = strlen(lt) - 1; /* without its closing '}' */
		struct chain_text t = { 0 };
		t.cap = ll + 1 + s->text.len;
		t.p = td_xmalloc(t.cap);
		memcpy(t.p, lt, ll);
		t.p[ll] = ',';
		memcpy(t.p + ll + 1, s->text.p + 1, s->text.len - 1);
		t.len = ll + s->text.len;
		free(lt);
		free(s->text.p);
		s->text = t;
	}
	h->cache_misses++;
	s->copy = td_xcalloc(1, sizeof(*s->copy));
	s->last = !pg.complete;
	memcpy(s->etag, a->etag, sizeof(s->etag));
	a->stream = s;
}

static void h_records(struct http *h, const struct node_view *v, const char *ocid, struct answer *a)
{
	char uri[sizeof(((struct http *)0)->public_url) + 3 * TD_OCID_MAX + 32], esc[3 * TD_OCID_MAX + 1];
	json_t *pkg;
	int rc;

	if (!*ocid || strlen(ocid) > TD_OCID_MAX || !http_query_escape(esc, sizeof(esc), ocid)) {
		error_answer(a, 404, NULL, "no tender with this ocid");
		return;
	}
	snprintf(uri, sizeof(uri), "%s/api/records/%s", h->public_url, esc);
	if ((rc = chain_tender_package_json(v->chain, ocid, v->cfg->name, uri, &pkg)) != 0) {
		chain_error(a, rc, "no tender with this ocid");
		return;
	}
	json_answer(a, 200, pkg, CACHE_REVALIDATE);
}

/* A date bound of the tender list: YYYY-MM-DD (the whole UTC day) or a full ISO 8601 time. */
static bool date_ok(const char *s)
{
	char tmp[40];
	size_t len = strlen(s);
	if (len == 10) {
		snprintf(tmp, sizeof(tmp), "%sT00:00:00Z", s);
		return td_iso_valid(tmp, strlen(tmp));
	}
	return len < 40 && td_iso_valid(s, len);
}

static void h_tenders(struct http *h, const struct node_view *v, struct MHD_Connection *conn, struct answer *a)
{
	static const char *const names[] = { "agency", "status", "category", "method", "since", "until" };
	const char *val[6], *cursor = arg(conn, "cursor"), *ls = arg(conn, "limit");
	struct chain_filter f = { 0 };
	uint8_t pk[TD_PUBKEY_LEN];
	uint64_t limit = 50;
	struct tbuf next = { 0 };
	char esc[3 * 256 + 1];
	json_t *res;
	int rc;

	for (size_t i = 0; i < 6; i++) {
		val[i] = arg(conn, names[i]);
		if (val[i] && strlen(val[i]) > 128) {
			error_answer(a, 400, NULL, "%s is longer than 128 bytes", names[i]);
			return;
		}
	}
	if (val[0]) {
		const struct registry *r = chain_registry(v->chain);
		int k = -1;
		if (td_unhex(pk, TD_PUBKEY_LEN, val[0], strlen(val[0])))
			k = registry_find(r, pk);
		for (uint32_t i = 0; k < 0 && i < registry_slots(r); i++)
			if (strcmp(registry_party(r, i)->name, val[0]) == 0)
				k = (int)i;
		if (k < 0) {
			error_answer(a, 400, NULL, "agency \"%s\" is not the name or key of a party of this chain",
				     val[0]);
			return;
		}
		memcpy(pk, registry_party(r, (uint32_t)k)->pk, TD_PUBKEY_LEN);
		f.agency = pk;
	}
	f.status = val[1];
	f.category = val[2];
	f.method = val[3];
	if ((val[4] && !date_ok(val[4])) || (val[5] && !date_ok(val[5]))) {
		error_answer(a, 400, NULL, "since and until take a date (2020-03-01) or an ISO 8601 time");
		return;
	}
	f.since = val[4];
	f.until = val[5];
	if (ls && (!parse_u64(ls, &limit) || limit < 1 || limit > 1000)) {
		error_answer(a, 400, NULL, "limit must be a whole number from 1 to 1000");
		return;
	}
	if (cursor && strlen(cursor) > 1024) {
		error_answer(a, 400, NULL, "cursor is not a next_cursor from an earlier answer");
		return;
	}
	rc = chain_list_json(v->chain, &f, (uint32_t)limit, cursor, &res);
	if (rc == TD_EINVAL) {
		error_answer(a, 400, NULL, "cursor is not a next_cursor from an earlier answer");
		return;
	}
	if (rc != 0) {
		chain_error(a, rc, "not found");
		return;
	}
	const json_t *nc = json_object_get(res, "next_cursor");
	if (td_json_is_string(nc)) {
		tb_printf(&next, "%s/api/tenders?", h->public_url);
		for (size_t i = 0; i < 6; i++)
			if (val[i] && http_query_escape(esc, sizeof(esc), val[i]))
				tb_printf(&next, "%s=%s&", names[i], esc);
		tb_printf(&next, "limit=%llu&cursor=", (unsigned long long)limit);
		if (http_query_escape(esc, sizeof(esc), json_string_value(nc))) {
			tb_printf(&next, "%s", esc);
			json_object_set_new(res, "links", json_pack("{s:s}", "next", next.p));
		}
		free(next.p);
	}
	json_answer(a, 200, res, CACHE_REVALIDATE);
}

static void h_tender(const struct node_view *v, const char *ocid, struct answer *a)
{
	json_t *res;
	int rc = chain_tender_json(v->chain, ocid, &res);
	if (rc != 0) {
		chain_error(a, rc, "no tender with this ocid");
		return;
	}
	json_answer(a, 200, res, CACHE_REVALIDATE);
}

static const char *step_name(const struct cons *cons)
{
	if (!cons_started(cons))
		return "idle";
	switch (cons_step(cons)) {
	case CONS_STEP_PROPOSE: return "propose";
	case CONS_STEP_PREVOTE: return "prevote";
	case CONS_STEP_PRECOMMIT: return "precommit";
	}
	return "unknown";
}

/* True and the reason in why if the node is not following the chain with peers. */
static bool unhealthy(const struct http *h, const struct node_view *v, char *why, size_t len)
{
	char err[TD_ERRMSG_MAX];
	uint64_t height = chain_height(v->chain), top = sync_top(v->sync);

	if (node_stopping(h->node)) {
		snprintf(why, len, "stopping");
		return true;
	}
	if (chain_failed(v->chain, err, sizeof(err)) != 0) {
		snprintf(why, len, "stopped for an error: %s", err);
		return true;
	}
	if (sync_busy(v->sync) || top > height + 1) {
		snprintf(why, len, "catching up: at height %llu, peers report %llu", (unsigned long long)height,
			 (unsigned long long)top);
		return true;
	}
	const struct registry_set *vs = driver_set(v->driver);
	bool alone = vs->n == 1 && driver_my_index(v->driver) == 0;
	if (!alone && v->io->peer_count(v->io->ctx) == 0) {
		snprintf(why, len, "no peers connected (0 of %u other validators)",
			 vs->n - (driver_my_index(v->driver) >= 0));
		return true;
	}
	/* a node that just started may be connected before any peer told it its height */
	if (!alone && top == 0 && uv_now(h->loop) - h->started_mono < HTTP_HEALTH_SETTLE_MS) {
		snprintf(why, len, "starting: the peers' heights are not known yet");
		return true;
	}
	return false;
}

static json_t *validators_json(const struct node_view *v)
{
	const struct cons *cons = driver_cons(v->driver);
	json_t *vals = json_array();
	char pk[2 * TD_PUBKEY_LEN + 1];

	const struct registry_set *vs = driver_set(v->driver);
	for (uint32_t i = 0; i < vs->n; i++) {
		bool self = (int)i == driver_my_index(v->driver);
		td_hex(pk, vs->v[i].pk, TD_PUBKEY_LEN);
		json_array_append_new(vals, json_pack("{s:o, s:s, s:s, s:o, s:b, s:b}", "index", td_json_uint(i),
						      "name", vs->v[i].name, "pub_key", pk, "missed_proposals",
						      td_json_uint(cons_missed_proposals(cons, i)), "connected",
						      self || v->io->connected(v->io->ctx, vs->slot[i]), "self", self));
	}
	return vals;
}

static void h_status(struct http *h, const struct node_view *v, struct answer *a)
{
	const struct cons *cons = driver_cons(v->driver);
	char hash[2 * TD_HASH_LEN + 1], ts[32], why[TD_ERRMSG_MAX + 64];
	uint64_t height = chain_height(v->chain), top = sync_top(v->sync);
	bool bad = unhealthy(h, v, why, sizeof(why));

	td_hex(hash, chain_last_hash(v->chain), TD_HASH_LEN);
	td_time_iso(ts, chain_last_time(v->chain));
	json_t *res = json_pack(
		"{s:s, s:s, s:s, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:{s:o, s:o, s:s}, s:s, s:s?}",
		"version", TENDERD_VERSION, "chain_id", v->g->chain_id, "node", v->cfg->name, "height",
		td_json_uint(height), "last_block_hash", hash, "last_block_time", ts, "records",
		td_json_uint(chain_record_count(v->chain)), "mempool", td_json_uint(mempool_count(v->mp)),
		"mempool_bytes", td_json_uint(mempool_bytes(v->mp)), "peers_connected",
		td_json_uint(v->io->peer_count(v->io->ctx)), "validators", td_json_uint(driver_set(v->driver)->n),
		"catching_up", sync_busy(v->sync) || top > height + 1, "sync_target",
		td_json_uint(top > height ? top : height), "consensus", "height",
		td_json_uint(cons_started(cons) ? cons_height(cons) : height + 1), "round",
		td_json_uint(cons_started(cons) ? cons_round(cons) : 0), "step", step_name(cons), "health",
		bad ? "unavailable" : "ok", "health_reason", bad ? why : NULL);
	json_answer(a, 200, res, CACHE_NONE);
}

static void h_blocks(const struct node_view *v, const char *hs, struct answer *a)
{
	uint64_t height;
	json_t *blk, *rels;
	int rc;

	if (!parse_u64(hs, &height)) {
		error_answer(a, 400, NULL, "a block height is a whole number from 1");
		return;
	}
	if ((rc = chain_block_json(v->chain, height, &blk)) != 0) {
		if (rc == TD_ENOTFOUND)
			error_answer(a, 404, NULL, "no block at height %llu (the chain is at %llu)",
				     (unsigned long long)height, (unsigned long long)chain_height(v->chain));
		else
			chain_error(a, rc, "");
		return;
	}
	if ((rc = chain_block_releases_json(v->chain, height, &rels)) != 0) {
		json_decref(blk);
		chain_error(a, rc, "no such block");
		return;
	}
	json_object_set_new(blk, "releases", rels);
	/* a committed block never changes */
	json_answer(a, 200, blk, CACHE_IMMUTABLE);
}

static void h_validators(const struct node_view *v, struct answer *a)
{
	char gh[2 * TD_HASH_LEN + 1];
	uint8_t hash[TD_HASH_LEN];
	td_genesis_hash(hash, v->g);
	td_hex(gh, hash, TD_HASH_LEN);
	json_answer(a, 200,
		    json_pack("{s:s, s:s, s:o}", "chain_id", v->g->chain_id, "genesis_hash", gh, "validators",
			      validators_json(v)),
		    CACHE_REVALIDATE);
}

static void h_health(struct http *h, const struct node_view *v, struct answer *a)
{
	char why[TD_ERRMSG_MAX + 64];
	bool bad = unhealthy(h, v, why, sizeof(why));
	json_t *res = json_pack("{s:s, s:o, s:o}", "status", bad ? "unavailable" : "ok", "height",
				td_json_uint(chain_height(v->chain)), "peers_connected",
				td_json_uint(v->io->peer_count(v->io->ctx)));
	if (bad)
		json_object_set_new(res, "reason", json_string(why));
	json_answer(a, bad ? 503 : 200, res, CACHE_NONE);
}

/* ---- /metrics ---- */

static void m_head(struct tbuf *b, const char *name, const char *type, const char *help)
{
	tb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void m_u64(struct tbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
	m_head(b, name, type, help);
	tb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* One histogram's series; labels is "" or `key="value",` (with the trailing comma). */
static void m_hist(struct tbuf *b, const char *name, const char *labels, const struct hist *h)
{
	uint64_t cum = 0;
	size_t ll = strlen(labels);
	for (uint32_t i = 0; i < h->n; i++) {
		cum += h->buckets[i];
		tb_printf(b, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, h->le[i], (unsigned long long)cum);
	}
	tb_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)h->count);
	if (ll) {
		tb_printf(b, "%s_sum{%.*s} %.9g\n", name, (int)(ll - 1), labels, h->sum);
		tb_printf(b, "%s_count{%.*s} %llu\n", name, (int)(ll - 1), labels, (unsigned long long)h->count);
	} else {
		tb_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
	}
}

/* Puts the blocks committed since the last scrape (the last HTTP_METRICS_BLOCKS at most) into the histograms. */
static void ingest_blocks(struct http *h, const struct node_view *v)
{
	uint64_t tip = chain_height(v->chain), from = h->seen_height + 1;
	struct chain_block_info bi;

	if (from > tip)
		return;
	if (tip - h->seen_height > HTTP_METRICS_BLOCKS) {
		from = tip - HTTP_METRICS_BLOCKS + 1;
		h->seen_time_ms = 0;
		if (from > 1 && chain_block_info(v->chain, from - 1, false, &bi) == 0)
			h->seen_time_ms = bi.time_ms;
	}
	for (uint64_t height = from; height <= tip; height++) {
		if (chain_block_info(v->chain, height, true, &bi) != 0)
			break; /* logged by the chain; tried again at the next scrape */
		if (h->seen_time_ms && bi.time_ms >= h->seen_time_ms)
			hist_observe(&h->interval, (double)(bi.time_ms - h->seen_time_ms) / 1000.0);
		hist_observe(&h->rounds, bi.round + 1.0);
		hist_observe(&h->records, bi.n_records);
		h->seen_height = height;
		h->seen_time_ms = bi.time_ms;
	}
}

static void h_metrics(struct http *h, const struct node_view *v, struct answer *a)
{
	const struct cons *cons = driver_cons(v->driver);
	const struct wal *wal = driver_wal(v->driver);
	const struct evidence *ev = driver_evidence(v->driver);
	uint64_t height = chain_height(v->chain), top = sync_top(v->sync), sent = 0, received = 0;
	char name[3 * TD_NAME_MAX + 8], chain_id[3 * TD_CHAIN_ID_MAX + 8], err[TD_ERRMSG_MAX];
	struct tbuf b = { 0 };

	ingest_blocks(h, v);
	v->io->traffic(v->io->ctx, &sent, &received);
	if (!http_label_escape(chain_id, sizeof(chain_id), v->g->chain_id))
		chain_id[0] = '\0';

	m_head(&b, "tenderd_build_info", "gauge", "The running tenderd: its version and chain.");
	tb_printf(&b, "tenderd_build_info{version=\"%s\",chain_id=\"%s\"} 1\n", TENDERD_VERSION, chain_id);
	m_u64(&b, "tenderd_start_time_seconds", "gauge", "When this tenderd started serving HTTP, in Unix seconds.",
	      h->started_ms / 1000);
	m_u64(&b, "tenderd_height", "gauge", "Height of the last committed block.", height);
	m_u64(&b, "tenderd_last_block_timestamp_seconds", "gauge", "Ledger time of the last committed block.",
	      chain_last_time(v->chain) / 1000);
	m_u64(&b, "tenderd_records_committed_total", "counter", "Records committed on the ledger.",
	      chain_record_count(v->chain));
	m_u64(&b, "tenderd_mempool_records", "gauge", "Records waiting in the mempool.", mempool_count(v->mp));
	m_u64(&b, "tenderd_mempool_bytes", "gauge", "Bytes of the records waiting in the mempool.",
	      mempool_bytes(v->mp));
	m_u64(&b, "tenderd_mempool_memory_bytes", "gauge",
	      "Memory the records waiting in the mempool hold, parsed JSON included (bounded by max_bytes).",
	      mempool_mem(v->mp));
	m_u64(&b, "tenderd_mempool_max_records", "gauge", "Records the mempool holds at most.",
	      v->cfg->mempool_max_records);
	m_u64(&b, "tenderd_mempool_max_bytes", "gauge", "Memory the mempool's records hold at most.",
	      v->cfg->mempool_max_bytes);
	const struct registry_set *vs = driver_set(v->driver);
	m_u64(&b, "tenderd_validators", "gauge", "Validators of the chain.", vs->n);
	m_u64(&b, "tenderd_peers_connected", "gauge", "Other validators connected to this node.",
	      v->io->peer_count(v->io->ctx));
	m_head(&b, "tenderd_peer_up", "gauge", "1 if the validator is connected to this node (or is this node).");
	for (uint32_t i = 0; i < vs->n; i++) {
		if (!http_label_escape(name, sizeof(name), vs->v[i].name))
			continue;
		bool up = (int)i == driver_my_index(v->driver) || v->io->connected(v->io->ctx, vs->slot[i]);
		tb_printf(&b, "tenderd_peer_up{validator=\"%s\"} %d\n", name, up ? 1 : 0);
	}
	m_u64(&b, "tenderd_p2p_sent_bytes_total", "counter", "Bytes sent to peers.", sent);
	m_u64(&b, "tenderd_p2p_received_bytes_total", "counter", "Bytes received from peers.", received);
	m_u64(&b, "tenderd_gossip_records_received_total", "counter", "Records received from peers by gossip.",
	      gossip_records_received(v->gossip));
	m_u64(&b, "tenderd_gossip_records_refused_total", "counter", "Records from peers that this node refused.",
	      gossip_records_refused(v->gossip));
	m_head(&b, "tenderd_missed_proposals_total", "counter",
	       "Rounds in which the validator was the proposer and no proposal arrived in time, seen by this node.");
	for (uint32_t i = 0; i < vs->n; i++) {
		if (!http_label_escape(name, sizeof(name), vs->v[i].name))
			continue;
		tb_printf(&b, "tenderd_missed_proposals_total{validator=\"%s\"} %llu\n", name,
			  (unsigned long long)cons_missed_proposals(cons, i));
	}
	m_u64(&b, "tenderd_catching_up", "gauge", "1 while the node is syncing blocks from peers that are ahead.",
	      sync_busy(v->sync) || top > height + 1);
	m_u64(&b, "tenderd_sync_target_height", "gauge", "The highest height peers reported.",
	      top > height ? top : height);
	m_u64(&b, "tenderd_consensus_height", "gauge", "The height consensus is deciding.",
	      cons_started(cons) ? cons_height(cons) : height + 1);
	m_u64(&b, "tenderd_consensus_round", "gauge", "The round of the height being decided.",
	      cons_started(cons) ? cons_round(cons) : 0);
	m_u64(&b, "tenderd_evidence", "gauge", "Equivocations this node keeps evidence of.",
	      ev ? evidence_count(ev) : 0);
	m_u64(&b, "tenderd_wal_bytes", "gauge", "Size of the consensus log.", wal ? wal_size(wal) : 0);
	m_u64(&b, "tenderd_store_failed", "gauge", "1 once a store write failed (the node commits nothing more).",
	      chain_failed(v->chain, err, sizeof(err)) != 0);

	m_head(&b, "tenderd_block_interval_seconds", "histogram",
	       "Ledger time between consecutive blocks (blocks committed while this node ran, and the last few before).");
	m_hist(&b, "tenderd_block_interval_seconds", "", &h->interval);
	m_head(&b, "tenderd_block_rounds", "histogram", "Rounds each block took to commit (its commit's round + 1).");
	m_hist(&b, "tenderd_block_rounds", "", &h->rounds);
	m_head(&b, "tenderd_block_records", "histogram", "Records in each block.");
	m_hist(&b, "tenderd_block_records", "", &h->records);

	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	m_u64(&b, "tenderd_http_connections", "gauge", "Open connections to the HTTP endpoint.",
	      di ? di->num_connections : 0);
	m_u64(&b, "tenderd_http_page_cache_bytes", "gauge", "Bytes of release pages kept in memory.", h->cache_bytes);
	m_u64(&b, "tenderd_http_page_cache_hits_total", "counter", "Release pages answered from memory.",
	      h->cache_hits);
	m_u64(&b, "tenderd_http_page_cache_misses_total", "counter", "Release pages made from the store.",
	      h->cache_misses);
	m_head(&b, "tenderd_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
	for (int r = 0; r < ROUTES; r++)
		for (uint32_t i = 0; i < h->routes[r].ncodes; i++)
			tb_printf(&b, "tenderd_http_requests_total{route=\"%s\",code=\"%u\"} %llu\n", route_names[r],
				  h->routes[r].codes[i].code, (unsigned long long)h->routes[r].codes[i].n);
	m_head(&b, "tenderd_chain_apply_seconds", "histogram",
	       "Time each committed block took to apply (checks, indexes and the synced store write).");
	m_hist(&b, "tenderd_chain_apply_seconds", "", chain_apply_hist(v->chain));
	m_head(&b, "tenderd_store_write_seconds", "histogram",
	       "Time the synced store write of each committed block took (LevelDB and the records file).");
	m_hist(&b, "tenderd_store_write_seconds", "", chain_write_hist(v->chain));
	m_head(&b, "tenderd_wal_fsync_seconds", "histogram", "Time each sync of the consensus log took.");
	if (wal)
		m_hist(&b, "tenderd_wal_fsync_seconds", "", wal_fsync_hist(wal));
	if (h->rpc) {
		uint32_t nm;
		const struct rpc_method_stat *ms = rpc_method_stats(h->rpc, &nm);
		m_head(&b, "tenderd_rpc_request_duration_seconds", "histogram",
		       "Time from a socket request's arrival to its answer, by method (streamed answers not timed).");
		for (uint32_t i = 0; i < nm; i++) {
			char labels[64];
			snprintf(labels, sizeof(labels), "method=\"%s\",", ms[i].name);
			m_hist(&b, "tenderd_rpc_request_duration_seconds", labels, &ms[i].latency);
		}
	}
	m_head(&b, "tenderd_http_request_duration_seconds", "histogram",
	       "Time from a request's arrival to the end of its answer, by route.");
	for (int r = 0; r < ROUTES; r++) {
		char labels[64];
		snprintf(labels, sizeof(labels), "route=\"%s\",", route_names[r]);
		m_hist(&b, "tenderd_http_request_duration_seconds", labels, &h->routes[r].latency);
	}
	a->status = 200;
	a->type = TYPE_METRICS;
	a->body = b.p;
	a->len = b.len;
	a->cache = CACHE_NONE;
}

/* ---- dispatch ---- */

static void route(struct http *h, struct http_req *r, struct MHD_Connection *conn, const char *url, struct answer *a)
{
	struct node_view v;

	node_view(h->node, &v);
	if (strcmp(url, "/api/releases") == 0) {
		r->route = ROUTE_RELEASES;
		h_releases(h, &v, conn, a);
	} else if (strncmp(url, "/api/records/", 13) == 0) {
		r->route = ROUTE_RECORDS;
		h_records(h, &v, url + 13, a);
	} else if (strcmp(url, "/api/tenders") == 0) {
		r->route = ROUTE_TENDERS;
		h_tenders(h, &v, conn, a);
	} else if (strncmp(url, "/api/tenders/", 13) == 0) {
		r->route = ROUTE_TENDERS;
		h_tender(&v, url + 13, a);
	} else if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) {
		r->route = ROUTE_EXPLORER;
		a->status = 200;
		a->type = TYPE_HTML;
		a->len = http_explorer_html_len;
		a->body = td_xmalloc(a->len);
		memcpy(a->body, http_explorer_html, a->len);
		a->cache = CACHE_REVALIDATE;
		a->csp = true;
		etag_of(a->etag, a->body, a->len, NULL);
	} else if (strcmp(url, "/api/status") == 0) {
		r->route = ROUTE_STATUS;
		h_status(h, &v, a);
	} else if (strncmp(url, "/api/blocks/", 12) == 0) {
		r->route = ROUTE_BLOCKS;
		h_blocks(&v, url + 12, a);
	} else if (strcmp(url, "/api/validators") == 0) {
		r->route = ROUTE_VALIDATORS;
		h_validators(&v, a);
	} else if (strcmp(url, "/health") == 0) {
		r->route = ROUTE_HEALTH;
		h_health(h, &v, a);
	} else if (strcmp(url, "/metrics") == 0) {
		r->route = ROUTE_METRICS;
		h_metrics(h, &v, a);
	} else {
		r->route = ROUTE_OTHER;
		error_answer(a, 404, NULL, "no such path: %.200s (see /api/status, /api/releases, /metrics, /health)",
			     url);
	}
}

static enum MHD_Result queue(struct MHD_Connection *conn, struct http_req *r, struct answer *a)
{
	struct MHD_Response *resp;
	enum MHD_Result ok;
	const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);

	if (a->status == 200 && a->etag[0] && inm && http_etag_match(inm, a->etag)) {
		free(a->body);
		stream_free(a->stream);
		entry_unref(a->cached);
		a->body = NULL;
		a->stream = NULL;
		a->cached = NULL;
		a->status = 304;
	}
	if (a->cached) {
		struct cached_read *c = td_xcalloc(1, sizeof(*c));
		c->e = a->cached;
		a->cached = NULL;
		resp = MHD_create_response_from_callback(c->e->len, 64 * 1024, cached_read, c, cached_free);
		if (!resp)
			cached_free(c);
	} else if (a->stream)
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_read, a->stream,
							 stream_free);
	else
		resp = MHD_create_response_from_buffer(a->body ? a->len : 0, a->body ? a->body : (char *)"",
						       a->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(a->body);
		stream_free(a->stream);
		return MHD_NO;
	}
	if (a->status != 304)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
	if (a->etag[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, a->cache ? a->cache : CACHE_NONE);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, "*");
	if (a->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (a->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (a->csp)
		MHD_add_response_header(resp, "Content-Security-Policy",
					"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
					"connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'");
	r->status = a->status;
	ok = MHD_queue_response(conn, a->status, resp);
	MHD_destroy_response(resp);
	return ok;
}

/*
 * libmicrohttpd's access handler: called once the headers are in (the request
 * state is made then) and, for a request without a body, once more at its
 * end, when the answer is queued and the connection can serve the next
 * request. None of ours takes a body: a request announcing one is answered
 * at the first call, which closes its connection after the answer.
 */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				 const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http *h = cls;
	struct http_req *r = *con_cls;
	struct answer a = { 0 };
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	const char *clen = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	bool body = (clen && strcmp(clen, "0") != 0) ||
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

	if (!r) {
		r = td_xcalloc(1, sizeof(*r));
		r->start_ns = uv_hrtime();
		r->route = ROUTE_OTHER;
		*con_cls = r;
		h->requests++;
		h->inflight++;
		if (!body)
			return MHD_YES; /* answered at the end of the request */
	}
	if (r->answered) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	r->answered = true;
	int nheaders = MHD_get_connection_values(conn, MHD_HEADER_KIND, NULL, NULL);
	if (h->stopping) {
		error_answer(&a, 503, NULL, "tenderd is stopping");
		a.close = true;
	} else if (!get) {
		error_answer(&a, 405, NULL, "%s is not allowed: this endpoint is read-only (GET, HEAD)", method);
		a.allow = true;
	} else if (nheaders > HTTP_HEADERS_MAX) {
		error_answer(&a, 431, NULL, "%d request headers, at most %d", nheaders, HTTP_HEADERS_MAX);
	} else if (body) {
		error_answer(&a, 413, NULL, "a %s request takes no body", method);
	} else {
		route(h, r, conn, url, &a);
	}
	return queue(conn, r, &a);
}

static void count_code(struct route_stats *rs, unsigned code)
{
	for (uint32_t i = 0; i < rs->ncodes; i++) {
		if (rs->codes[i].code == code) {
			rs->codes[i].n++;
			return;
		}
	}
	if (rs->ncodes < HTTP_CODES_MAX)
		rs->codes[rs->ncodes++] = (struct code_count){ code, 1 };
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode why)
{
	struct http *h = cls;
	struct http_req *r = *con_cls;

	if (!r)
		return;
	h->inflight--;
	if (!r->answered) { /* the client left before the end of its request */
		free(r);
		*con_cls = NULL;
		return;
	}
	double secs = (double)(uv_hrtime() - r->start_ns) / 1e9;
	struct route_stats *rs = &h->routes[r->route];
	hist_observe(&rs->latency, secs);
	count_code(rs, r->status);
	if (log_enabled(LOG_DEBUG)) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		char ip[INET6_ADDRSTRLEN] = "?";
		if (ci && ci->client_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, ip, sizeof(ip));
		else if (ci && ci->client_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, ip, sizeof(ip));
		log_debug("http %s %u in %.3f ms from %s%s", route_names[r->route], r->status, secs * 1000, ip,
			  why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (cut short)");
	}
	free(r);
	*con_cls = NULL;
}

/* libmicrohttpd's own messages (connection limits, malformed requests): a few a minute. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http *h = cls;
	char msg[512];
	uint64_t now = wall_ms();

	if (now - h->log_window_ms >= 60000) {
		if (h->log_dropped)
			log_warn("http: %u more libmicrohttpd messages in the last minute were not logged",
				 h->log_dropped);
		h->log_window_ms = now;
		h->log_count = h->log_dropped = 0;
	}
	if (h->log_count >= HTTP_LOG_PER_MINUTE) {
		h->log_dropped++;
		return;
	}
	h->log_count++;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_warn("http: %s", msg);
}

/* ---- the loop ---- */

static void on_timer(uv_timer_t *t);
static void finish(struct http *h);

static unsigned connections(const struct http *h)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return di ? di->num_connections : 0;
}

/* Lets libmicrohttpd do what is ready, then sets the timer to its next deadline. */
static void run(struct http *h)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (!h->mhd)
		return;
	/*
	 * At max_connections libmicrohttpd takes its listening socket out of its
	 * epoll set and puts it back only at a later run once a connection has
	 * closed: a connection waiting to be accepted then wakes nothing, so
	 * run again at once when a run freed a place.
	 */
	bool full = connections(h) >= h->max_connections;
	MHD_run(h->mhd);
	if (full && connections(h) < h->max_connections)
		MHD_run(h->mhd);
	if (h->stopping && (h->inflight == 0 || uv_now(h->loop) >= h->stop_deadline)) {
		finish(h);
		return;
	}
	if (MHD_get_timeout(h->mhd, &ms) != MHD_YES)
		ms = UINT64_MAX;
	if (h->stopping && ms > h->stop_deadline - uv_now(h->loop))
		ms = h->stop_deadline - uv_now(h->loop);
	if (ms != UINT64_MAX)
		uv_timer_start(&h->timer, on_timer, ms, 0);
	else
		uv_timer_stop(&h->timer);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct http *h = p->data;
	if (status < 0)
		log_warn("http: polling libmicrohttpd: %s", uv_strerror(status));
	run(h);
}

static void on_timer(uv_timer_t *t)
{
	run(t->data);
}

static void on_close(uv_handle_t *hd)
{
	struct http *h = hd->data;
	if (--h->open_handles > 0)
		return;
	while (h->cache)
		cache_evict(h);
	free(h);
}

/* ---- life cycle ---- */

/*
 * Parses listen (PORT, IPV4:PORT, [IPV6]:PORT) into sa; false if it is none
 * of those (config_http_listen_valid).
 */
static bool listen_addr(const char *listen, struct sockaddr_storage *sa)
{
	char host[128];
	const char *port;
	uint64_t p;

	memset(sa, 0, sizeof(*sa));
	if (!config_http_listen_valid(listen))
		return false;
	if (listen[0] == '[') {
		const char *end = strchr(listen, ']');
		snprintf(host, sizeof(host), "%.*s", (int)(end - listen - 1), listen + 1);
		port = end + 2;
	} else if (strrchr(listen, ':')) {
		const char *colon = strrchr(listen, ':');
		snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
		port = colon + 1;
	} else {
		snprintf(host, sizeof(host), "127.0.0.1");
		port = listen;
	}
	if (!td_parse_u64(port, strlen(port), &p) || p > 65535)
		return false;
	if (listen[0] == '[')
		return uv_ip6_addr(host, (int)p, (struct sockaddr_in6 *)sa) == 0;
	return uv_ip4_addr(host, (int)p, (struct sockaddr_in *)sa) == 0;
}

/* Opens, binds and listens on sa; the address as people write it into name. Returns the socket or -errno. */
static int listen_socket(const struct sockaddr_storage *sa, char *name, size_t namelen)
{
	socklen_t len = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	struct sockaddr_storage got;
	socklen_t glen = sizeof(got);
	char ip[INET6_ADDRSTRLEN];
	int one = 1, fd, e;

	fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)sa, len) != 0 || listen(fd, HTTP_LISTEN_BACKLOG) != 0 ||
	    getsockname(fd, (struct sockaddr *)&got, &glen) != 0) {
		e = errno;
		close(fd);
		return -e;
	}
	if (got.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&got)->sin6_addr, ip, sizeof(ip));
		snprintf(name, namelen, "[%s]:%u", ip, ntohs(((struct sockaddr_in6 *)&got)->sin6_port));
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&got)->sin_addr, ip, sizeof(ip));
		snprintf(name, namelen, "%s:%u", ip, ntohs(((struct sockaddr_in *)&got)->sin_port));
	}
	return fd;
}

void http_set_rpc(struct http *h, const struct rpc *rpc)
{
	h->rpc = rpc;
}

int http_start(struct http **out, uv_loop_t *loop, const struct config *cfg, struct node *n, char *err, size_t errlen)
{
	struct http *h = td_xcalloc(1, sizeof(*h));
	struct sockaddr_storage sa;
	const union MHD_DaemonInfo *di;
	int fd = -1, rc;

	*out = NULL;
	h->loop = loop;
	h->node = n;
	h->started_ms = wall_ms();
	h->started_mono = uv_now(loop);
	h->max_connections = cfg->http_max_connections;
	for (int r = 0; r < ROUTES; r++)
		hist_init(&h->routes[r].latency, hist_latency_le, HIST_LATENCY_N);
	hist_init(&h->interval, interval_le, sizeof(interval_le) / sizeof(interval_le[0]));
	hist_init(&h->rounds, rounds_le, sizeof(rounds_le) / sizeof(rounds_le[0]));
	hist_init(&h->records, records_le, sizeof(records_le) / sizeof(records_le[0]));
	if (!listen_addr(cfg->http_listen, &sa)) {
		snprintf(err, errlen, "http.listen \"%s\" is not PORT, IPV4:PORT or [IPV6]:PORT", cfg->http_listen);
		rc = TD_EINVAL;
		goto fail;
	}
	fd = listen_socket(&sa, h->addr, sizeof(h->addr));
	if (fd < 0) {
		snprintf(err, errlen, "http.listen %s: cannot listen: %s", cfg->http_listen, strerror(-fd));
		rc = TD_EIO;
		goto fail;
	}
	if (cfg->http_public_url[0])
		snprintf(h->public_url, sizeof(h->public_url), "%s", cfg->http_public_url);
	else
		snprintf(h->public_url, sizeof(h->public_url), "http://%s", h->addr);

	h->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0,
				  NULL, NULL, on_access, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
				  MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
				  (unsigned int)cfg->http_max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				  (unsigned int)cfg->http_max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
				  (unsigned int)cfg->http_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
				  (size_t)cfg->http_request_max_bytes, MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
	if (!h->mhd) {
		snprintf(err, errlen, "http.listen %s: libmicrohttpd could not start (see the log above)", h->addr);
		rc = TD_EIO;
		goto fail;
	}
	fd = -1; /* the daemon's now */
	di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di) {
		snprintf(err, errlen, "http.listen %s: libmicrohttpd has no epoll descriptor", h->addr);
		rc = TD_EIO;
		goto fail;
	}
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	h->open_handles++;
	if ((rc = uv_poll_init(loop, &h->poll, di->epoll_fd)) != 0) {
		snprintf(err, errlen, "http.listen %s: cannot poll libmicrohttpd: %s", h->addr, uv_strerror(rc));
		rc = TD_EIO;
		goto fail;
	}
	h->poll.data = h;
	h->open_handles++;
	uv_poll_start(&h->poll, UV_READABLE, on_poll);
	run(h);
	log_info("http listening on %s (public url %s; at most %u connections, %u per address)", h->addr, h->public_url,
		 cfg->http_max_connections, cfg->http_max_connections_per_ip);
	*out = h;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (h->open_handles) {
		http_stop(h); /* the handles close on the loop, then h goes */
		return rc;
	}
	if (h->mhd)
		MHD_stop_daemon(h->mhd);
	free(h);
	return rc;
}

/* Closes every connection left, the daemon and the handles; h goes once the loop has closed them. */
static void finish(struct http *h)
{
	uint32_t left = h->inflight;

	/* the poll handle leaves the loop before libmicrohttpd closes the descriptor it watches */
	if (!uv_is_closing((uv_handle_t *)&h->poll) && h->open_handles == 2)
		uv_close((uv_handle_t *)&h->poll, on_close);
	if (h->mhd) {
		MHD_stop_daemon(h->mhd);
		h->mhd = NULL;
		log_info("http endpoint on %s stopped after %llu requests%s", h->addr, (unsigned long long)h->requests,
			 left ? " (answers still under way were cut)" : "");
	}
	if (!uv_is_closing((uv_handle_t *)&h->timer))
		uv_close((uv_handle_t *)&h->timer, on_close);
}

void http_stop(struct http *h)
{
	int fd;

	if (!h || h->stopping)
		return;
	h->stopping = true;
	if (!h->mhd || h->open_handles < 2) {
		finish(h);
		return;
	}
	/* no new connections; answers under way may end, for HTTP_STOP_GRACE_MS at most */
	fd = MHD_quiesce_daemon(h->mhd);
	if (fd >= 0)
		close(fd);
	h->stop_deadline = uv_now(h->loop) + HTTP_STOP_GRACE_MS;
	if (h->inflight > 0)
		log_info("http endpoint on %s closing: %u answers under way may finish within %d ms", h->addr,
			 h->inflight, HTTP_STOP_GRACE_MS);
	run(h);
}
