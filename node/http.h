/*
 * The HTTP endpoint: a read-only window on the node for the public and for
 * monitoring, served by libmicrohttpd on the node's own loop thread.
 *
 *   GET /api/releases?from_height=H  OCDS release package of blocks H..H+HTTP_PAGE_BLOCKS-1
 *   GET /api/records/{ocid}           OCDS record package of one tender (compiled release)
 *   GET /api/tenders?...              tender list: the socket's tender.list filters and cursor
 *   GET /api/tenders/{ocid}           a tender as tender.get answers it (releases with their heights)
 *   GET /api/status                   height, mempool, peers, consensus
 *   GET /api/blocks/{height}          a committed block, its commit and its releases
 *   GET /api/validators               the chain's validators
 *   GET /health                       200 following the chain with peers, else 503 with a reason
 *   GET /metrics                      Prometheus text format
 *   GET /                             the tender explorer page
 *
 * libmicrohttpd runs in external-select mode with epoll: libuv polls its
 * epoll descriptor (uv_poll_t) and a uv_timer_t follows MHD_get_timeout, and
 * both call MHD_run, so every request is answered on the loop thread, between
 * the node's events (the chain's caches are not thread-safe). HTTP parsing is
 * libmicrohttpd's; connections, connections per address, request bytes,
 * header count and idle time are capped ([http] in config.ini).
 *
 * A page of committed blocks never changes: its answer carries a strong ETag
 * (from the range, the hash of its last block and the publisher) and a year's
 * Cache-Control; the page still being filled is revalidated (no-cache).
 * Packages are streamed from a store snapshot (chain_export), so a page's
 * memory is bounded whatever its size; the last HTTP_PAGE_CACHE_BYTES of pages
 * served are kept in memory and served from there (a full page never
 * changes; the last one is kept until a block changes it).
 */
#ifndef TENDERD_HTTP_H
#define TENDERD_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"

#define HTTP_PAGE_BLOCKS 100                 /* blocks in one /api/releases page */
#define HTTP_HEADERS_MAX 64                  /* request headers; more: 431 */
#define HTTP_LISTEN_BACKLOG 128              /* pending connections the kernel keeps */
#define HTTP_METRICS_BLOCKS 256              /* new blocks one /metrics scrape reads for the block histograms */
#define HTTP_HEALTH_SETTLE_MS 2000           /* after the start, /health waits this long for a peer's height */
#define HTTP_STOP_GRACE_MS 3000              /* answers under way may finish this long after http_stop */
#define HTTP_PAGE_CACHE_BYTES (64u << 20)    /* release pages kept in memory */
#define HTTP_PAGE_CACHE_ENTRY_MAX (8u << 20) /* larger pages are always made from the store */
#define HTTP_STREAM_TURN_BYTES (64 * 1024)   /* package text made per write of a streamed page, about */

struct http;
struct node;

/*
 * Listens on cfg->http_listen (PORT alone binds 127.0.0.1) and serves the
 * node n (borrowed until http_stop) on loop. Returns 0 with *out set, or an
 * error with a message naming the address (TD_EIO: in use, not available,
 * refused by libmicrohttpd; TD_EINVAL: not an address); *out NULL then.
 */
int http_start(struct http **out, uv_loop_t *loop, const struct config *cfg, struct node *n, char *err, size_t errlen);
struct rpc;
/* The socket whose request latencies /metrics reports (borrowed until http_stop); none by default. */
void http_set_rpc(struct http *h, const struct rpc *rpc);
/*
 * Stops listening at once; answers under way may finish for
 * HTTP_STOP_GRACE_MS (a request arriving meanwhile on an open connection gets
 * 503 and the connection is closed), then the connections left are cut and
 * the handles closed; the memory goes when the loop has closed them. The
 * node must stay readable until then (the daemon frees it after the loop
 * ends). NULL does nothing.
 */
void http_stop(struct http *h);

/* The explorer page (http_explorer.c): http_explorer_html_len bytes of HTML. */
extern const char http_explorer_html[];
extern const size_t http_explorer_html_len;

/* ---- pure parts, for tests ---- */

/* The blocks a /api/releases page covers. */
struct http_page {
	uint64_t from, to; /* to: clamped to the tip */
	bool complete;     /* the page's last block is committed: it will never change */
	uint64_t next;     /* from_height of the following page */
};
/*
 * The page starting at block from (1 for 0) on a chain at height tip: 0, or
 * TD_ENOTFOUND if from is past the tip, or TD_EINVAL if the page would end
 * past UINT64_MAX.
 */
int http_page(uint64_t from, uint64_t tip, struct http_page *out);

/*
 * True if an If-None-Match value (a comma-separated list of entity tags,
 * weak or strong, or "*") matches etag (a quoted strong tag), by the weak
 * comparison RFC 9110 asks of If-None-Match.
 */
bool http_etag_match(const char *if_none_match, const char *etag);

/*
 * Writes into out (cap bytes, NUL-terminated) s percent-encoded for a URL
 * query value (unreserved characters kept). False if it does not fit.
 */
bool http_query_escape(char *out, size_t cap, const char *s);

/* Writes s into out as a Prometheus label value (\\, \" and \n escaped); false if it does not fit. */
bool http_label_escape(char *out, size_t cap, const char *s);

#endif
