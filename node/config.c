/*
 * Config, key and genesis files of a node's home (see config.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <ini.h>
#include <sodium.h>

#include "config.h"
#include "tenderd/json.h"

/* Resolves path under home unless absolute; false if the result does not fit. */
static bool resolve(char *out, size_t cap, const char *home, const char *path)
{
	int n = path[0] == '/' ? snprintf(out, cap, "%s", path) : snprintf(out, cap, "%s/%s", home, path);
	return n >= 0 && (size_t)n < cap;
}

void config_defaults(struct config *cfg, const char *home)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->home, sizeof(cfg->home), "%s", home);
	resolve(cfg->socket_path, sizeof(cfg->socket_path), home, "tenderd.sock");
	resolve(cfg->store_path, sizeof(cfg->store_path), home, "data");
	snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
	snprintf(cfg->log_format, sizeof(cfg->log_format), "text");
	cfg->mempool_max_records = 20000;
	/*
	 * 48 MiB, about 15,000 records of 1 KiB with their parsed JSON. Three bench runs
	 * each (4 nodes on 2 cores): peak RSS 217-251 MB per node against 236-258 MB with
	 * 64 MiB, sustained 2,489-2,950 records/s against 2,843-2,940/s.
	 */
	cfg->mempool_max_bytes = 48u * 1024 * 1024;
	cfg->block_delay_ms = 10;
	cfg->block_max_records = TD_BLOCK_RECORDS_MAX;
	cfg->block_max_bytes = 4u * 1024 * 1024;
	cfg->timeout_propose_ms = 1000;
	cfg->timeout_propose_unreachable_ms = 100;
	cfg->timeout_vote_ms = 500;
	cfg->timeout_max_ms = 5000;
	snprintf(cfg->p2p_listen, sizeof(cfg->p2p_listen), "127.0.0.1:26656");
	cfg->http_max_connections = 256;
	cfg->http_max_connections_per_ip = 64;
	cfg->http_timeout_s = 30;
	cfg->http_request_max_bytes = 32768;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	if (!*s || *s == '-')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/*
 * Whether config.ini can hold value as written by config_write ("key = value" on one line of
 * at most INI_MAX_LINE bytes with its key): inih strips leading and trailing whitespace, ends
 * a line at a newline, takes " ;" (so also a ';' right after "= ") as the start of a comment
 * and splits a longer line, so a
 * value with any of those would load back as something else. On false, says why in err.
 */
static bool ini_holds(const char *value, size_t keylen, char *err, size_t errlen, const char *what)
{
	size_t n = strlen(value);

	if (keylen + 3 + n + 1 >= INI_MAX_LINE) {
		snprintf(err, errlen, "%s: too long for a line of config.ini (%zu bytes, at most %zu)", what, n,
			 (size_t)INI_MAX_LINE - keylen - 5);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c < 0x20 || c == 0x7f) {
			snprintf(err, errlen, "%s: control characters are not allowed", what);
			return false;
		}
		if (c == ';' && (i == 0 || value[i - 1] == ' ')) { /* written after "= " */
			snprintf(err, errlen, "%s: a ';' first or after a space would start a comment in config.ini",
				 what);
			return false;
		}
	}
	if (n && (value[0] == ' ' || value[n - 1] == ' ')) {
		snprintf(err, errlen, "%s: leading or trailing spaces are not allowed", what);
		return false;
	}
	return true;
}

/*
 * Whether config.ini can hold a [p2p] peers value: on the "peers = " line if it fits
 * (ini_holds), else the first entry on that line and each later one on an indented
 * continuation line, which config_load joins with commas again; so each entry must then be
 * non-empty and fit its line (the first one after "peers = ").
 */
static bool peers_hold(const char *value, char *err, size_t errlen, const char *what)
{
	char tmp[TD_ERRMSG_MAX];

	if (ini_holds(value, strlen("peers"), tmp, sizeof(tmp), what))
		return true;
	for (const char *q = value;;) {
		const bool first = q == value;
		const char *end = strchr(q, ',');
		size_t n = end ? (size_t)(end - q) : strlen(q);
		char piece[INI_MAX_LINE + 1];
		if (n == 0 || n >= INI_MAX_LINE - 2) {
			snprintf(
				err, errlen, "%s: %s", what,
				n ? "an entry is too long for a line of config.ini" :
				    "too long for one line of config.ini, and an empty entry cannot go on a line of its own");
			return false;
		}
		memcpy(piece, q, n);
		piece[n] = '\0';
		if (!ini_holds(piece, first ? strlen("peers") : 0, err, errlen, what))
			return false;
		if (piece[0] == '#') { /* a line starting with '#' is a comment */
			snprintf(err, errlen, "%s: an entry starting with '#' cannot go on a line of its own", what);
			return false;
		}
		if (!end)
			return true;
		q = end + 1;
	}
}

bool config_http_listen_valid(const char *s)
{
	char buf[128];
	const char *port = s;
	uint64_t v;

	if (strlen(s) >= sizeof(buf))
		return false;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		struct in6_addr a6;
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(buf))
			return false;
		memcpy(buf, s + 1, (size_t)(end - s - 1));
		buf[end - s - 1] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return false;
		port = end + 2;
	} else if (strchr(s, ':')) {
		const char *colon = strrchr(s, ':');
		struct in_addr a4;
		memcpy(buf, s, (size_t)(colon - s));
		buf[colon - s] = '\0';
		if (inet_pton(AF_INET, buf, &a4) != 1)
			return false;
		port = colon + 1;
	}
	return parse_u64(port, 0, 65535, &v);
}

static int set_str(char *dst, size_t cap, const char *value, char *err, size_t errlen, const char *what)
{
	if (strlen(value) >= cap) {
		snprintf(err, errlen, "%s: value too long", what);
		return TD_EINVAL;
	}
	snprintf(dst, cap, "%s", value);
	return 0;
}

int config_set(struct config *cfg, const char *section, const char *key, const char *value, char *err, size_t errlen)
{
	char what[96];
	uint64_t v;

	snprintf(what, sizeof(what), "%s.%s", section, key);
#define IS(s, k) (strcmp(section, s) == 0 && strcmp(key, k) == 0)
#define UINT(field, lo, hi)                                                                                  \
	do {                                                                                                 \
		if (!parse_u64(value, lo, hi, &v)) {                                                         \
			snprintf(err, errlen, "%s: \"%s\" is not a whole number in %llu..%llu", what, value, \
				 (unsigned long long)(lo), (unsigned long long)(hi));                        \
			return TD_EINVAL;                                                                    \
		}                                                                                            \
		field = v;                                                                                   \
		return 0;                                                                                    \
	} while (0)
	if (IS("node", "name")) {
		if (!*value) {
			snprintf(err, errlen, "%s: must not be empty", what);
			return TD_EINVAL;
		}
		if (!ini_holds(value, strlen("name"), err, errlen, what))
			return TD_EINVAL;
		return set_str(cfg->name, sizeof(cfg->name), value, err, errlen, what);
	}
	if (IS("rpc", "socket") || IS("store", "path")) {
		char *dst = IS("rpc", "socket") ? cfg->socket_path : cfg->store_path;
		/* Unix socket paths are limited to 107 bytes by the kernel. */
		size_t cap = IS("rpc", "socket") ? 108 : sizeof(cfg->store_path);
		if (!*value || !resolve(dst, cap, cfg->home, value)) {
			snprintf(err, errlen, "%s: path empty or too long", what);
			return TD_EINVAL;
		}
		return 0;
	}
	if (IS("log", "level")) {
		if (strcmp(value, "error") && strcmp(value, "warn") && strcmp(value, "info") &&
		    strcmp(value, "debug")) {
			snprintf(err, errlen, "%s: \"%s\" is not one of error, warn, info, debug", what, value);
			return TD_EINVAL;
		}
		return set_str(cfg->log_level, sizeof(cfg->log_level), value, err, errlen, what);
	}
	if (IS("log", "file")) {
		if (!*value) {
			cfg->log_file[0] = '\0';
			return 0;
		}
		if (!resolve(cfg->log_file, sizeof(cfg->log_file), cfg->home, value)) {
			snprintf(err, errlen, "%s: path too long", what);
			return TD_EINVAL;
		}
		return 0;
	}
	if (IS("log", "format")) {
		if (strcmp(value, "text") && strcmp(value, "json")) {
			snprintf(err, errlen, "%s: \"%s\" is not text or json", what, value);
			return TD_EINVAL;
		}
		return set_str(cfg->log_format, sizeof(cfg->log_format), value, err, errlen, what);
	}
	if (IS("mempool", "max_records"))
		UINT(cfg->mempool_max_records, 1, 10000000);
	if (IS("mempool", "max_bytes"))
		UINT(cfg->mempool_max_bytes, TD_RECORD_MAX, 1ull << 40);
	if (IS("consensus", "block_delay_ms"))
		UINT(cfg->block_delay_ms, 0, 60000);
	if (IS("consensus", "block_max_records"))
		UINT(cfg->block_max_records, 1, TD_BLOCK_RECORDS_MAX);
	if (IS("consensus", "block_max_bytes"))
		UINT(cfg->block_max_bytes, TD_RECORD_MAX, TD_BLOCK_MAX - 4096);
	if (IS("consensus", "timeout_propose_ms"))
		UINT(cfg->timeout_propose_ms, 10, 600000);
	if (IS("consensus", "timeout_propose_unreachable_ms"))
		UINT(cfg->timeout_propose_unreachable_ms, 0, 600000);
	if (IS("consensus", "timeout_vote_ms"))
		UINT(cfg->timeout_vote_ms, 10, 600000);
	if (IS("consensus", "timeout_max_ms"))
		UINT(cfg->timeout_max_ms, 10, 3600000);
	if (IS("p2p", "listen")) {
		if (!ini_holds(value, strlen("listen"), err, errlen, what))
			return TD_EINVAL;
		return set_str(cfg->p2p_listen, sizeof(cfg->p2p_listen), value, err, errlen, what);
	}
	if (IS("p2p", "peers")) {
		if (!peers_hold(value, err, errlen, what))
			return TD_EINVAL;
		return set_str(cfg->p2p_peers, sizeof(cfg->p2p_peers), value, err, errlen, what);
	}
	if (IS("http", "listen") || IS("http", "public_url")) {
		bool listen = IS("http", "listen");
		if (!ini_holds(value, strlen(listen ? "listen" : "public_url"), err, errlen, what))
			return TD_EINVAL;
		if (listen && *value && !config_http_listen_valid(value)) {
			snprintf(err, errlen, "%s: \"%s\" is not PORT, IPV4:PORT or [IPV6]:PORT (port 0..65535)", what,
				 value);
			return TD_EINVAL;
		}
		if (!listen && *value && strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0) {
			snprintf(err, errlen, "%s: \"%s\" must start with http:// or https://", what, value);
			return TD_EINVAL;
		}
		if (!listen && *value && value[strlen(value) - 1] == '/') {
			snprintf(err, errlen, "%s: \"%s\" must not end with '/'", what, value);
			return TD_EINVAL;
		}
		return listen ? set_str(cfg->http_listen, sizeof(cfg->http_listen), value, err, errlen, what) :
				set_str(cfg->http_public_url, sizeof(cfg->http_public_url), value, err, errlen, what);
	}
	if (IS("http", "max_connections"))
		UINT(cfg->http_max_connections, 1, 100000);
	if (IS("http", "max_connections_per_ip"))
		UINT(cfg->http_max_connections_per_ip, 0, 100000);
	if (IS("http", "timeout_s"))
		UINT(cfg->http_timeout_s, 1, 3600);
	if (IS("http", "request_max_bytes"))
		UINT(cfg->http_request_max_bytes, 4096, 1048576);
#undef IS
#undef UINT
	snprintf(err, errlen, "unknown option %s", what);
	return TD_EINVAL;
}

struct ini_ctx {
	struct config *cfg;
	char *err;
	size_t errlen;
	int rc;
	bool peers_seen; /* a later [p2p] peers line (a continuation) appends to the list */
};

static int on_ini_option(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *ctx = user;
	char msg[TD_ERRMSG_MAX];
	if (ctx->rc)
		return 0;
	if (strcmp(section, "p2p") == 0 && strcmp(name, "peers") == 0 && ctx->peers_seen) {
		size_t have = strlen(ctx->cfg->p2p_peers);
		if (have + 1 + strlen(value) >= sizeof(ctx->cfg->p2p_peers)) {
			snprintf(ctx->err, ctx->errlen, "p2p.peers: the list is longer than %zu bytes",
				 sizeof(ctx->cfg->p2p_peers) - 1);
			ctx->rc = TD_EINVAL;
			return 0;
		}
		if (*value)
			snprintf(ctx->cfg->p2p_peers + have, sizeof(ctx->cfg->p2p_peers) - have, "%s%s",
				 have ? "," : "", value);
		return 1;
	}
	if (strcmp(section, "p2p") == 0 && strcmp(name, "peers") == 0)
		ctx->peers_seen = true;
	ctx->rc = config_set(ctx->cfg, section, name, value, msg, sizeof(msg));
	if (ctx->rc)
		snprintf(ctx->err, ctx->errlen, "%s", msg);
	return ctx->rc == 0;
}

int config_load(struct config *cfg, const char *home, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	struct ini_ctx ctx = { cfg, err, errlen, 0, false };

	config_defaults(cfg, home);
	snprintf(path, sizeof(path), "%s/%s", home, CONFIG_FILE);
	int rc = ini_parse(path, on_ini_option, &ctx);
	if (rc == -1) {
		snprintf(err, errlen, "%s: cannot open: %s (run `tenderd init --home %s` first)", path, strerror(errno),
			 home);
		return TD_EIO;
	}
	if (rc != 0) {
		char msg[TD_ERRMSG_MAX];
		snprintf(msg, sizeof(msg), "%s", ctx.rc ? err : "syntax error");
		snprintf(err, errlen, "%s line %d: %s", path, rc, msg);
		return TD_EINVAL;
	}
	if (!cfg->name[0]) {
		snprintf(err, errlen, "%s: [node] name is required", path);
		return TD_EINVAL;
	}
	return 0;
}

/*
 * Creates dir with mode (umask applied) if it does not exist, and its missing parents as
 * `mkdir -p` would (mode 0777 less the umask). An existing dir is left as it is; an
 * existing non-directory is refused. Returns 0 or TD_EIO with a message.
 */
static int make_dirs(const char *dir, mode_t mode, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(path)) {
		snprintf(err, errlen, "%s: path empty or too long", dir);
		return TD_EIO;
	}
	memcpy(path, dir, n + 1);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	for (char *q = path + 1; *q; q++) {
		if (*q != '/' || q[-1] == '/')
			continue;
		*q = '\0';
		if (mkdir(path, 0777) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: cannot create %s: %s", dir, path, strerror(errno));
			return TD_EIO;
		}
		*q = '/';
	}
	if (mkdir(path, mode) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return TD_EIO;
	}
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return TD_EIO;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", dir);
		return TD_EIO;
	}
	return 0;
}

/* Creates path exclusively with mode and writes len bytes, synced. */
static int write_new(const char *path, const char *data, size_t len, mode_t mode, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 errno == EEXIST ? "already exists, refusing to overwrite" : strerror(errno));
		return errno == EEXIST ? TD_EEXIST : TD_EIO;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: write: %s", path, strerror(errno));
			close(fd);
			return TD_EIO;
		}
		off += (size_t)n;
	}
	if (fchmod(fd, mode) != 0 || fsync(fd) != 0 || close(fd) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return TD_EIO;
	}
	return 0;
}

int config_write(const struct config *cfg, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;

	/* Refuse a file that would load back as another config (a name or address from argv). */
	if (!ini_holds(cfg->name, strlen("name"), err, errlen, "node.name") ||
	    !ini_holds(cfg->p2p_listen, strlen("listen"), err, errlen, "p2p.listen") ||
	    !peers_hold(cfg->p2p_peers, err, errlen, "p2p.peers") ||
	    !ini_holds(cfg->http_listen, strlen("listen"), err, errlen, "http.listen") ||
	    !ini_holds(cfg->http_public_url, strlen("public_url"), err, errlen, "http.public_url"))
		return TD_EINVAL;
	/* A list too long for one line: one entry per indented continuation line. */
	char *peers = td_xstrndup(cfg->p2p_peers, strlen(cfg->p2p_peers)), why[TD_ERRMSG_MAX];
	if (!ini_holds(peers, strlen("peers"), why, sizeof(why), "p2p.peers")) {
		size_t n = strlen(cfg->p2p_peers), commas = 0;
		for (size_t i = 0; i < n; i++)
			commas += cfg->p2p_peers[i] == ',';
		free(peers);
		peers = td_xmalloc(n + 2 * commas + 1);
		char *o = peers;
		for (size_t i = 0; i < n; i++) {
			if (cfg->p2p_peers[i] == ',') {
				memcpy(o, "\n\t", 2);
				o += 2;
			} else {
				*o++ = cfg->p2p_peers[i];
			}
		}
		*o = '\0';
	}
	FILE *f = open_memstream(&text, &len);
	if (!f)
		abort();
	fprintf(f,
		"# tenderd node configuration.\n"
		"# Every option is listed with its default; relative paths are under the node's home.\n"
		"# Any option can be overridden on the command line: tenderd run --set section.key=value\n"
		"\n"
		"[node]\n"
		"# This agency's name; it must match this node's validator entry in genesis.json.\n"
		"name = %s\n"
		"\n"
		"[rpc]\n"
		"# Unix socket for tenderctl and the agency's systems (mode 0660: owner and group only).\n"
		"socket = tenderd.sock\n"
		"\n"
		"[store]\n"
		"# LevelDB directory holding the chain.\n"
		"path = data\n"
		"\n"
		"[log]\n"
		"# error, warn, info or debug.\n"
		"level = info\n"
		"# text, or json for log shippers (one JSON object per line).\n"
		"format = text\n"
		"# A file to append the log to (relative to the home), reopened on SIGHUP for\n"
		"# log rotation; empty: standard error.\n"
		"file =\n"
		"\n"
		"[mempool]\n"
		"# Pending records, and the memory they hold (encoded and parsed), before publishing is\n"
		"# refused with \"mempool full\".\n"
		"max_records = 20000\n"
		"max_bytes = 50331648\n"
		"\n"
		"[consensus]\n"
		"# How long the first pending record waits for others to join its block, in ms.\n"
		"# No block is made while nothing is pending.\n"
		"block_delay_ms = 10\n"
		"# Caps on one block.\n"
		"block_max_records = %d\n"
		"block_max_bytes = 4194304\n"
		"# Round timeouts: a round waits timeout_propose_ms for its proposal and\n"
		"# timeout_vote_ms for votes, each growing by half per further round of a\n"
		"# height, capped at timeout_max_ms, and back to the start at each height.\n"
		"timeout_propose_ms = 1000\n"
		"# The wait for a proposal whose proposer has no connection to this node\n"
		"# (it cannot arrive): the turn of a validator that is down costs this much.\n"
		"timeout_propose_unreachable_ms = 100\n"
		"timeout_vote_ms = 500\n"
		"timeout_max_ms = 5000\n"
		"\n"
		"[p2p]\n"
		"# Address the peer-to-peer transport listens on.\n"
		"listen = %s\n"
		"# Comma-separated addresses of the other validators' nodes, each PUBKEY@HOST:PORT\n"
		"# (PUBKEY: the pub_key of its identity file; only that key may answer there) or HOST:PORT.\n"
		"# A line holds at most 200 bytes: a longer list goes on indented lines below this one,\n"
		"# one or more entries each (the lines are joined with commas).\n"
		"peers = %s\n"
		"\n"
		"[http]\n"
		"# The read-only HTTP endpoint (OCDS API, /metrics, /health, the explorer page):\n"
		"# PORT (on 127.0.0.1), IPV4:PORT or [IPV6]:PORT; empty: no HTTP endpoint.\n"
		"# Put a reverse proxy with TLS in front of it to publish to the world.\n"
		"listen = %s\n"
		"# The URL the public reaches this endpoint at (the proxy's), used in links\n"
		"# and package uris; empty: http://LISTEN.\n"
		"public_url = %s\n"
		"# Connections at once, from one IP address (0: no limit), and the idle\n"
		"# seconds after which a connection is closed.\n"
		"max_connections = 256\n"
		"max_connections_per_ip = 64\n"
		"timeout_s = 30\n"
		"# Bytes of a request's line and headers; a larger request is refused.\n"
		"request_max_bytes = 32768\n",
		cfg->name, TD_BLOCK_RECORDS_MAX, cfg->p2p_listen, peers, cfg->http_listen, cfg->http_public_url);
	fclose(f);
	free(peers);
	int rc = write_new(path, text, len, 0644, err, errlen);
	free(text);
	return rc;
}

int config_read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0;
	int rc = TD_EIO;

	*out = NULL;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return TD_EIO;
	}
	buf = td_xmalloc(max + 1);
	n = fread(buf, 1, max + 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read: %s", path, strerror(errno));
		goto out;
	}
	if (n > max) {
		snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
		rc = TD_EINVAL;
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	fclose(f);
	return rc;
}

int config_key_load(const char *path, uint8_t sk[static TD_SECKEY_LEN], char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	size_t len;
	json_t *doc = NULL;
	uint8_t seed[crypto_sign_SEEDBYTES], pk[TD_PUBKEY_LEN], want[TD_PUBKEY_LEN];
	int rc = TD_EINVAL;

	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return TD_EIO;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s: key file is accessible by group or others (mode %03o); run chmod 600 %s",
			 path, (unsigned)(st.st_mode & 0777), path);
		return TD_EPERM;
	}
	if ((rc = config_read_file(path, 4096, &text, &len, err, errlen)))
		return rc;
	rc = TD_EINVAL;
	doc = td_json_load(text, len, err, errlen);
	const json_t *s = json_object_get(doc, "secret_seed"), *p = json_object_get(doc, "pub_key");
	if (!td_json_is_string(s) || !td_json_is_string(p) ||
	    !td_unhex(seed, sizeof(seed), json_string_value(s), json_string_length(s)) ||
	    !td_unhex(want, sizeof(want), json_string_value(p), json_string_length(p))) {
		snprintf(err, errlen, "%s: not a tenderd key file (secret_seed and pub_key in hex)", path);
		goto out;
	}
	crypto_sign_seed_keypair(pk, sk, seed);
	if (memcmp(pk, want, sizeof(pk)) != 0) {
		snprintf(err, errlen, "%s: pub_key does not match secret_seed", path);
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(seed, sizeof(seed));
	if (text) {
		sodium_memzero(text, len);
		free(text);
	}
	json_decref(doc);
	return rc;
}

int config_key_write(const char *path, const uint8_t sk[static TD_SECKEY_LEN], char *err, size_t errlen)
{
	char seed[2 * crypto_sign_SEEDBYTES + 1], pk[2 * TD_PUBKEY_LEN + 1], text[512];
	td_hex(seed, sk, crypto_sign_SEEDBYTES);
	td_hex(pk, sk + crypto_sign_SEEDBYTES, TD_PUBKEY_LEN);
	int n = snprintf(text, sizeof(text),
			 "{\n  \"type\": \"ed25519\",\n  \"pub_key\": \"%s\",\n  \"secret_seed\": \"%s\"\n}\n", pk,
			 seed);
	int rc = write_new(path, text, (size_t)n, 0600, err, errlen);
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(text, sizeof(text));
	return rc;
}

int config_genesis_load(struct td_genesis *g, const char *path, char *err, size_t errlen)
{
	char *text;
	size_t len;
	char msg[TD_ERRMSG_MAX];
	int rc = config_read_file(path, 1024 * 1024, &text, &len, err, errlen);
	if (rc)
		return rc;
	rc = td_genesis_parse(g, text, len, msg, sizeof(msg));
	if (rc)
		snprintf(err, errlen, "%s: %s", path, msg);
	free(text);
	return rc;
}

char *config_genesis_text(const struct td_genesis *g, size_t *len)
{
	json_t *doc = td_genesis_json(g);
	char *text = td_json_dump(doc, JSON_INDENT(2));
	json_decref(doc);
	if (!text)
		abort();
	size_t n = strlen(text);
	text = td_xrealloc(text, n + 2);
	text[n++] = '\n';
	text[n] = '\0';
	*len = n;
	return text;
}

int config_genesis_write(const struct td_genesis *g, const char *path, char *err, size_t errlen)
{
	size_t len;
	char *text = config_genesis_text(g, &len);
	int rc = write_new(path, text, len, 0644, err, errlen);
	free(text);
	return rc;
}

int config_init_home(const char *home, const char *name, const char *chain_id, const char *ocid_prefix, char *err,
		     size_t errlen)
{
	char kpath[PATH_MAX + 16], cpath[PATH_MAX + 16], gpath[PATH_MAX + 16];
	uint8_t pk[TD_PUBKEY_LEN], sk[TD_SECKEY_LEN];
	struct td_genesis g = { 0 };
	struct td_validator v;
	struct config cfg;
	int rc;

	if (strlen(name) == 0 || strlen(name) > TD_NAME_MAX) {
		snprintf(err, errlen, "--name must be 1..%d bytes", TD_NAME_MAX);
		return TD_EINVAL;
	}
	if (strlen(chain_id) == 0 || strlen(chain_id) > TD_CHAIN_ID_MAX) {
		snprintf(err, errlen, "--chain-id must be 1..%d bytes", TD_CHAIN_ID_MAX);
		return TD_EINVAL;
	}
	if (strncmp(ocid_prefix, "ocds-", 5) != 0 || strlen(ocid_prefix) > TD_OCID_MAX / 2) {
		snprintf(err, errlen, "--ocid-prefix must start with \"ocds-\" (for example ocds-kr2020)");
		return TD_EINVAL;
	}
	if ((rc = make_dirs(home, 0700, err, errlen)))
		return rc;
	snprintf(kpath, sizeof(kpath), "%s/%s", home, KEY_FILE);
	snprintf(cpath, sizeof(cpath), "%s/%s", home, CONFIG_FILE);
	snprintf(gpath, sizeof(gpath), "%s/%s", home, GENESIS_FILE);
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0 || access(gpath, F_OK) == 0) {
		snprintf(err, errlen, "%s already holds a node (%s, %s or %s exists); refusing to overwrite", home,
			 KEY_FILE, CONFIG_FILE, GENESIS_FILE);
		return TD_EEXIST;
	}
	crypto_sign_keypair(pk, sk);
	if ((rc = config_key_write(kpath, sk, err, errlen)))
		goto out;
	config_defaults(&cfg, home);
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	if ((rc = config_write(&cfg, cpath, err, errlen)))
		goto out;
	snprintf(g.chain_id, sizeof(g.chain_id), "%s", chain_id);
	snprintf(g.ocid_prefix, sizeof(g.ocid_prefix), "%s", ocid_prefix);
	g.time_ms = (uint64_t)time(NULL) * 1000;
	snprintf(v.name, sizeof(v.name), "%s", name);
	memcpy(v.pk, pk, sizeof(pk));
	g.n = 1;
	g.v = &v;
	rc = config_genesis_write(&g, gpath, err, errlen);
out:
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

/* Checks name for a home; refuses a home that already holds a node. */
static int home_check(const char *home, const char *name, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	static const char *const files[] = { KEY_FILE, CONFIG_FILE, GENESIS_FILE };

	if (strlen(name) == 0 || strlen(name) > TD_NAME_MAX) {
		snprintf(err, errlen, "--name must be 1..%d bytes", TD_NAME_MAX);
		return TD_EINVAL;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", home, files[i]);
		if (access(path, F_OK) == 0) {
			snprintf(err, errlen, "%s already holds a node (%s, %s or %s exists); refusing to overwrite",
				 home, KEY_FILE, CONFIG_FILE, GENESIS_FILE);
			return TD_EEXIST;
		}
	}
	return 0;
}

int config_join_home(const char *home, const char *name, const char *genesis_path, int *validator, char *err,
		     size_t errlen)
{
	char kpath[PATH_MAX + 16], cpath[PATH_MAX + 16], gpath[PATH_MAX + 16];
	uint8_t pk[TD_PUBKEY_LEN], sk[TD_SECKEY_LEN];
	struct td_genesis g = { 0 };
	struct config cfg;
	int rc;

	*validator = -1;
	if ((rc = home_check(home, name, err, errlen)))
		return rc;
	if ((rc = config_genesis_load(&g, genesis_path, err, errlen)))
		return rc;
	config_defaults(&cfg, home);
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	if (!ini_holds(cfg.name, strlen("name"), err, errlen, "--name")) {
		rc = TD_EINVAL;
		goto out;
	}
	if ((rc = make_dirs(home, 0700, err, errlen)))
		goto out;
	snprintf(kpath, sizeof(kpath), "%s/%s", home, KEY_FILE);
	snprintf(cpath, sizeof(cpath), "%s/%s", home, CONFIG_FILE);
	snprintf(gpath, sizeof(gpath), "%s/%s", home, GENESIS_FILE);
	crypto_sign_keypair(pk, sk);
	if ((rc = config_key_write(kpath, sk, err, errlen)) || (rc = config_write(&cfg, cpath, err, errlen)) ||
	    (rc = config_genesis_write(&g, gpath, err, errlen)))
		goto out;
	*validator = td_genesis_find(&g, pk);
out:
	sodium_memzero(sk, sizeof(sk));
	td_genesis_free(&g);
	return rc;
}

bool config_hostport_valid(const char *s)
{
	const char *colon = strrchr(s, ':'), *host_end;
	char *end;

	if (!colon || colon == s || strpbrk(s, " \t,@;#"))
		return false;
	if (s[0] == '[') {
		host_end = strchr(s, ']');
		if (!host_end || host_end + 1 != colon || host_end == s + 1)
			return false;
	} else if (memchr(s, ':', (size_t)(colon - s))) {
		return false; /* a bare IPv6 address needs brackets */
	}
	for (const char *q = s; *q; q++)
		if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e)
			return false;
	if (!colon[1] || colon[1] == '-' || colon[1] == '+')
		return false;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	return !errno && !*end && port >= 1 && port <= 65535;
}

int config_identity_load(struct config_identity *id, const char *home, const char *address, char *err, size_t errlen)
{
	struct config cfg;
	uint8_t sk[TD_SECKEY_LEN];
	char path[PATH_MAX + 16];
	int rc;

	memset(id, 0, sizeof(*id));
	if ((rc = config_load(&cfg, home, err, errlen)))
		return rc;
	snprintf(path, sizeof(path), "%s/%s", home, KEY_FILE);
	rc = config_key_load(path, sk, err, errlen);
	memcpy(id->pk, sk + crypto_sign_SEEDBYTES, TD_PUBKEY_LEN);
	sodium_memzero(sk, sizeof(sk));
	if (rc)
		return rc;
	if (strlen(cfg.name) > TD_NAME_MAX) {
		snprintf(err, errlen, "[node] name \"%s\" is longer than %d bytes, too long for a genesis", cfg.name,
			 TD_NAME_MAX);
		return TD_EINVAL;
	}
	snprintf(id->name, sizeof(id->name), "%s", cfg.name);
	if (!address)
		address = cfg.p2p_listen;
	if (strlen(address) >= sizeof(id->address) || !config_hostport_valid(address)) {
		snprintf(err, errlen, "address \"%.100s\" is not HOST:PORT (an IPv6 host in brackets)", address);
		return TD_EINVAL;
	}
	snprintf(id->address, sizeof(id->address), "%s", address);
	return 0;
}

json_t *config_identity_json(const struct config_identity *id)
{
	char hex[2 * TD_PUBKEY_LEN + 1];
	td_hex(hex, id->pk, TD_PUBKEY_LEN);
	return json_pack("{s:s, s:s, s:s}", "name", id->name, "pub_key", hex, "address", id->address);
}

int config_identity_parse(struct config_identity *id, const char *text, size_t len, char *err, size_t errlen)
{
	char msg[TD_ERRMSG_MAX];
	json_t *doc = td_json_load(text, len, msg, sizeof(msg));
	const json_t *name, *pk, *addr;
	int rc = TD_EINVAL;

	memset(id, 0, sizeof(*id));
	if (!doc) {
		snprintf(err, errlen, "not JSON: %s", msg);
		return TD_EINVAL;
	}
	name = json_object_get(doc, "name");
	pk = json_object_get(doc, "pub_key");
	addr = json_object_get(doc, "address");
	if (!json_is_object(doc) || json_object_get(doc, "secret_seed")) {
		snprintf(err, errlen, "not an identity file (an object with name, pub_key and address)%s",
			 json_object_get(doc, "secret_seed") ? "; this is a key file: never send it to anyone" : "");
		goto out;
	}
	if (!td_json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > TD_NAME_MAX) {
		snprintf(err, errlen, "name must be a string of 1..%d bytes", TD_NAME_MAX);
		goto out;
	}
	if (!td_json_is_string(pk) || !td_unhex(id->pk, TD_PUBKEY_LEN, json_string_value(pk), json_string_length(pk))) {
		snprintf(err, errlen, "pub_key must be %d hex digits", 2 * TD_PUBKEY_LEN);
		goto out;
	}
	if (addr && (!td_json_is_string(addr) || json_string_length(addr) >= sizeof(id->address) ||
		     !config_hostport_valid(json_string_value(addr)))) {
		snprintf(err, errlen, "address must be HOST:PORT");
		goto out;
	}
	snprintf(id->name, sizeof(id->name), "%s", json_string_value(name));
	if (addr)
		snprintf(id->address, sizeof(id->address), "%s", json_string_value(addr));
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

static int cmp_validator_pk(const void *a, const void *b)
{
	return memcmp(((const struct td_validator *)a)->pk, ((const struct td_validator *)b)->pk, TD_PUBKEY_LEN);
}

int config_genesis_create(struct td_genesis *g, const struct config_identity *ids, const char *const *labels,
			  const enum td_role *roles, uint32_t n, const char *chain_id, const char *ocid_prefix,
			  uint64_t time_ms, char *err, size_t errlen)
{
	char hex[2 * TD_PUBKEY_LEN + 1];
	uint32_t count[3] = { 0 };

	memset(g, 0, sizeof(*g));
	if (strlen(chain_id) == 0 || strlen(chain_id) > TD_CHAIN_ID_MAX) {
		snprintf(err, errlen, "--chain-id must be 1..%d bytes", TD_CHAIN_ID_MAX);
		return TD_EINVAL;
	}
	if (strncmp(ocid_prefix, "ocds-", 5) != 0 || strlen(ocid_prefix) > TD_OCID_MAX / 2) {
		snprintf(err, errlen, "--ocid-prefix must start with \"ocds-\" (for example ocds-kr2020)");
		return TD_EINVAL;
	}
	for (uint32_t i = 0; i < n; i++)
		count[roles ? roles[i] : TD_ROLE_VALIDATOR]++;
	if (count[TD_ROLE_VALIDATOR] == 0 || count[TD_ROLE_VALIDATOR] > TD_VALIDATORS_MAX) {
		snprintf(err, errlen, "a genesis needs 1..%d validators' identity files, not %u", TD_VALIDATORS_MAX,
			 count[TD_ROLE_VALIDATOR]);
		return TD_EINVAL;
	}
	if (n > TD_PARTIES_MAX) {
		snprintf(err, errlen,
			 "a genesis holds at most %d identities (validators, members and observers), not %u",
			 TD_PARTIES_MAX, n);
		return TD_EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < i; j++) {
			if (memcmp(ids[i].pk, ids[j].pk, TD_PUBKEY_LEN) == 0) {
				td_hex(hex, ids[i].pk, TD_PUBKEY_LEN);
				if (labels)
					snprintf(err, errlen,
						 "duplicate key: %s (\"%s\") and %s (\"%s\") have the same pub_key %s; "
						 "each agency needs its own key",
						 labels[j], ids[j].name, labels[i], ids[i].name, hex);
				else
					snprintf(err, errlen,
						 "duplicate key: \"%s\" and \"%s\" have the same pub_key %s",
						 ids[j].name, ids[i].name, hex);
				return TD_EEXIST;
			}
			if (strcmp(ids[i].name, ids[j].name) == 0) {
				if (labels)
					snprintf(
						err, errlen,
						"duplicate name: %s and %s are both named \"%s\"; each agency needs its "
						"own name",
						labels[j], labels[i], ids[i].name);
				else
					snprintf(err, errlen, "duplicate name: two identities are named \"%s\"",
						 ids[i].name);
				return TD_EEXIST;
			}
		}
	}
	snprintf(g->chain_id, sizeof(g->chain_id), "%s", chain_id);
	snprintf(g->ocid_prefix, sizeof(g->ocid_prefix), "%s", ocid_prefix);
	g->time_ms = time_ms;
	g->n = count[TD_ROLE_VALIDATOR];
	g->n_members = count[TD_ROLE_MEMBER];
	g->n_observers = count[TD_ROLE_OBSERVER];
	g->v = td_xcalloc(g->n, sizeof(*g->v));
	if (g->n_members + g->n_observers)
		g->others = td_xcalloc(g->n_members + g->n_observers, sizeof(*g->others));
	/* Each role's entries are ordered by key, so any order of the files gives the same genesis. */
	uint32_t at[3] = { 0, 0, 0 };
	struct td_validator *dst[3] = { g->v, g->others, g->others ? g->others + g->n_members : NULL };
	for (uint32_t i = 0; i < n; i++) {
		enum td_role r = roles ? roles[i] : TD_ROLE_VALIDATOR;
		struct td_validator *d = &dst[r][at[r]++];
		snprintf(d->name, sizeof(d->name), "%s", ids[i].name);
		memcpy(d->pk, ids[i].pk, TD_PUBKEY_LEN);
	}
	for (int r = 0; r < 3; r++)
		if (count[r] > 1)
			qsort(dst[r], count[r], sizeof(*dst[r]), cmp_validator_pk);
	td_genesis_seal(g);
	return 0;
}

/* Names for testnet validators: agencies of the 2020 pilots first, then numbered ones. */
static void testnet_name(char *out, size_t cap, uint32_t i)
{
	static const char *const names[] = { "Korea Internet & Security Agency", "Jeju Special Self-Governing Province",
					     "Gangwon-do Provincial Government", "Sejong Special Self-Governing City" };
	if (i < sizeof(names) / sizeof(names[0]))
		snprintf(out, cap, "%s", names[i]);
	else
		snprintf(out, cap, "Agency %u", i + 1);
}

int config_testnet(const char *out, uint32_t nodes, uint32_t base_port, const char *chain_id, const char *ocid_prefix,
		   char *err, size_t errlen)
{
	struct td_genesis g = { 0 };
	uint8_t(*sks)[TD_SECKEY_LEN] = NULL;
	char home[PATH_MAX], path[PATH_MAX + 32];
	int rc = TD_EINVAL;

	if (nodes < 1 || nodes > 64) {
		snprintf(err, errlen, "--nodes must be 1..64");
		return TD_EINVAL;
	}
	if (base_port < 1024 || base_port + nodes > 65535) {
		snprintf(err, errlen, "--base-port must leave room for %u ports between 1024 and 65535", nodes);
		return TD_EINVAL;
	}
	if (strlen(chain_id) == 0 || strlen(chain_id) > TD_CHAIN_ID_MAX || strncmp(ocid_prefix, "ocds-", 5) != 0) {
		snprintf(err, errlen, "bad chain id or ocid prefix");
		return TD_EINVAL;
	}
	if ((rc = make_dirs(out, 0750, err, errlen)))
		return rc;
	snprintf(g.chain_id, sizeof(g.chain_id), "%s", chain_id);
	snprintf(g.ocid_prefix, sizeof(g.ocid_prefix), "%s", ocid_prefix);
	g.time_ms = (uint64_t)time(NULL) * 1000;
	g.n = nodes;
	g.v = td_xcalloc(nodes, sizeof(*g.v));
	sks = td_xcalloc(nodes, TD_SECKEY_LEN);
	for (uint32_t i = 0; i < nodes; i++) {
		snprintf(home, sizeof(home), "%s/node%u", out, i);
		snprintf(path, sizeof(path), "%s/%s", home, KEY_FILE);
		if (access(path, F_OK) == 0) {
			snprintf(err, errlen, "%s already holds a node; remove %s first", home, out);
			rc = TD_EEXIST;
			goto out;
		}
		testnet_name(g.v[i].name, sizeof(g.v[i].name), i);
		crypto_sign_keypair(g.v[i].pk, sks[i]);
	}
	for (uint32_t i = 0; i < nodes; i++) {
		struct config cfg;
		size_t used = 0;
		snprintf(home, sizeof(home), "%s/node%u", out, i);
		if (mkdir(home, 0750) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", home, strerror(errno));
			rc = TD_EIO;
			goto out;
		}
		config_defaults(&cfg, home);
		snprintf(cfg.name, sizeof(cfg.name), "%s", g.v[i].name);
		snprintf(cfg.p2p_listen, sizeof(cfg.p2p_listen), "127.0.0.1:%u", base_port + i);
		for (uint32_t j = 0; j < nodes; j++) {
			if (j == i)
				continue;
			/* PUBKEY@HOST:PORT: the dialer checks that the node there holds that key. */
			char pk[2 * TD_PUBKEY_LEN + 1];
			td_hex(pk, g.v[j].pk, TD_PUBKEY_LEN);
			int k = snprintf(cfg.p2p_peers + used, sizeof(cfg.p2p_peers) - used, "%s%s@127.0.0.1:%u",
					 used ? "," : "", pk, base_port + j);
			if (k < 0 || (size_t)k >= sizeof(cfg.p2p_peers) - used)
				break;
			used += (size_t)k;
		}
		snprintf(path, sizeof(path), "%s/%s", home, KEY_FILE);
		if ((rc = config_key_write(path, sks[i], err, errlen)))
			goto out;
		snprintf(path, sizeof(path), "%s/%s", home, CONFIG_FILE);
		if ((rc = config_write(&cfg, path, err, errlen)))
			goto out;
		snprintf(path, sizeof(path), "%s/%s", home, GENESIS_FILE);
		if ((rc = config_genesis_write(&g, path, err, errlen)))
			goto out;
	}
	rc = 0;
out:
	sodium_memzero(sks, (size_t)nodes * TD_SECKEY_LEN);
	free(sks);
	td_genesis_free(&g);
	return rc;
}
