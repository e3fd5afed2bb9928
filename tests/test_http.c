/*
 * Tests for the pure parts of node/http.c (release page ranges, If-None-Match,
 * escaping for URLs and Prometheus labels) and the [http] section of
 * node/config.c. The endpoint itself is tested over HTTP by tests/e2e_http.sh.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tenderd/types.h"
#include "config.h"
#include "http.h"

/* Pages are fixed ranges of HTTP_PAGE_BLOCKS blocks from any start; the last is clamped and not complete. */
static void page_ranges(void **state)
{
	struct http_page p;

	(void)state;
	assert_int_equal(http_page(0, 250, &p), 0); /* no from_height: block 1 */
	assert_int_equal(p.from, 1);
	assert_int_equal(p.to, HTTP_PAGE_BLOCKS);
	assert_true(p.complete);
	assert_int_equal(p.next, HTTP_PAGE_BLOCKS + 1);

	assert_int_equal(http_page(101, 250, &p), 0);
	assert_int_equal(p.to, 200);
	assert_true(p.complete);
	assert_int_equal(p.next, 201);

	assert_int_equal(http_page(201, 250, &p), 0); /* the last page: up to the tip, still filling */
	assert_int_equal(p.from, 201);
	assert_int_equal(p.to, 250);
	assert_false(p.complete);
	assert_int_equal(p.next, 301);

	assert_int_equal(http_page(201, 300, &p), 0); /* full once its last block is committed */
	assert_true(p.complete);
	assert_int_equal(p.to, 300);

	assert_int_equal(http_page(7, 250, &p), 0); /* any start: blocks 7..106 */
	assert_int_equal(p.to, 106);
	assert_int_equal(p.next, 107);

	assert_int_equal(http_page(251, 250, &p), TD_ENOTFOUND);
	assert_int_equal(http_page(1, 0, &p), TD_ENOTFOUND); /* an empty chain */
	assert_int_equal(http_page(UINT64_MAX - 1, UINT64_MAX, &p), TD_EINVAL);
}

static void etag_matching(void **state)
{
	const char *tag = "\"0123abcd\"";

	(void)state;
	assert_true(http_etag_match("\"0123abcd\"", tag));
	assert_true(http_etag_match("W/\"0123abcd\"", tag)); /* If-None-Match compares weakly */
	assert_true(http_etag_match("\"x\", \"0123abcd\"", tag));
	assert_true(http_etag_match("\"x\",W/\"0123abcd\" ", tag));
	assert_true(http_etag_match("*", tag));
	assert_false(http_etag_match("\"0123abc\"", tag));
	assert_false(http_etag_match("\"0123abcd", tag)); /* unterminated */
	assert_false(http_etag_match("0123abcd", tag));   /* unquoted */
	assert_false(http_etag_match("", tag));
	assert_false(http_etag_match("\"x\", \"y\"", tag));
}

static void escaping(void **state)
{
	char out[64];

	(void)state;
	assert_true(http_query_escape(out, sizeof(out), "Korea Internet & Security Agency"));
	assert_string_equal(out, "Korea%20Internet%20%26%20Security%20Agency");
	assert_true(http_query_escape(out, sizeof(out), "a-b_c.d~e"));
	assert_string_equal(out, "a-b_c.d~e");
	assert_true(http_query_escape(out, sizeof(out), "\xec\xa0\x9c\xec\xa3\xbc")); /* UTF-8 bytes */
	assert_string_equal(out, "%EC%A0%9C%EC%A3%BC");
	assert_false(http_query_escape(out, 4, "abcd"));  /* no room for the NUL */
	assert_false(http_query_escape(out, 5, "ab cd")); /* no room for %20 */

	assert_true(http_label_escape(out, sizeof(out), "Jeju \"Province\"\\\n"));
	assert_string_equal(out, "Jeju \\\"Province\\\"\\\\\\n");
	assert_false(http_label_escape(out, 3, "abc"));
}

/* [http] listen: accepted forms, refused ones, off by default, and written to config.ini so it loads back. */
static void config_http(void **state)
{
	struct config cfg, back;
	char dir[] = "/tmp/td-http-XXXXXX", path[64], err[TD_ERRMSG_MAX];
	static const char *const good[] = { "8080", "0", "127.0.0.1:8080", "0.0.0.0:80", "[::1]:8080", "" };
	static const char *const bad[] = { "localhost:8080", "127.0.0.1:", "127.0.0.1:65536",
					   "[::1]8080",      "::1:8080",   "1.2.3:80",
					   "8080 ",          "-1",         "127.0.0.1:80x" };

	(void)state;
	config_defaults(&cfg, "/tmp");
	assert_string_equal(cfg.http_listen, "");
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(config_set(&cfg, "http", "listen", good[i], err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(config_set(&cfg, "http", "listen", bad[i], err, sizeof(err)), TD_EINVAL);
		assert_non_null(strstr(err, "http.listen"));
	}
	assert_int_equal(config_set(&cfg, "http", "public_url", "ftp://x", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "http", "public_url", "https://ledger.example/", err, sizeof(err)),
			 TD_EINVAL);
	assert_int_equal(config_set(&cfg, "http", "max_connections", "0", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "http", "request_max_bytes", "100", err, sizeof(err)), TD_EINVAL);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CONFIG_FILE);
	config_defaults(&cfg, dir);
	snprintf(cfg.name, sizeof(cfg.name), "Jeju");
	assert_int_equal(config_write(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(config_load(&back, dir, err, sizeof(err)), 0);
	assert_string_equal(back.http_listen, ""); /* a new home: off */
	assert_int_equal(back.http_max_connections, 256);
	unlink(path);

	assert_int_equal(config_set(&cfg, "http", "listen", "[::1]:8080", err, sizeof(err)), 0);
	assert_int_equal(config_set(&cfg, "http", "public_url", "https://ledger.example", err, sizeof(err)), 0);
	assert_int_equal(config_write(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(config_load(&back, dir, err, sizeof(err)), 0);
	assert_string_equal(back.http_listen, "[::1]:8080");
	assert_string_equal(back.http_public_url, "https://ledger.example");
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(page_ranges),
		cmocka_unit_test(etag_matching),
		cmocka_unit_test(escaping),
		cmocka_unit_test(config_http),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
