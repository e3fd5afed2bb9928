/*
 * A node's home: config.ini (INI, every option documented with its
 * default), genesis.json, node.key (Ed25519 key, mode 0600) and the store.
 */
#ifndef TENDERD_CONFIG_H
#define TENDERD_CONFIG_H

#include <limits.h>
#include <jansson.h>
#include "tenderd/block.h"

#define TENDERD_VERSION "0.1.0"

#define CONFIG_FILE "config.ini"
#define GENESIS_FILE "genesis.json"
#define KEY_FILE "node.key"

struct config {
	char home[PATH_MAX];
	char name[TD_NAME_MAX + 1];              /* [node] name: this agency, as in genesis */
	char socket_path[PATH_MAX];              /* [rpc] socket */
	char store_path[PATH_MAX];               /* [store] path */
	char log_level[16];                      /* [log] level */
	char log_format[16];                     /* [log] format: text or json */
	char log_file[PATH_MAX];                 /* [log] file: empty for stderr; reopened on SIGHUP */
	uint32_t mempool_max_records;            /* [mempool] max_records */
	uint64_t mempool_max_bytes;              /* [mempool] max_bytes */
	uint32_t block_delay_ms;                 /* [consensus] block_delay_ms */
	uint32_t block_max_records;              /* [consensus] block_max_records */
	uint32_t block_max_bytes;                /* [consensus] block_max_bytes */
	uint32_t timeout_propose_ms;             /* [consensus] timeout_propose_ms: first round's wait for a proposal */
	uint32_t timeout_propose_unreachable_ms; /* [consensus]: the wait when the proposer is not connected */
	uint32_t timeout_vote_ms;                /* [consensus] timeout_vote_ms: first round's prevote/precommit wait */
	uint32_t timeout_max_ms;                 /* [consensus] timeout_max_ms: cap on any timeout as rounds grow */
	char p2p_listen[128];                    /* [p2p] listen host:port */
	char p2p_peers[8192];                    /* [p2p] peers: comma-separated [PUBKEY@]HOST:PORT (64 keyed entries fit) */
	char http_listen[128];                   /* [http] listen host:port or port; empty: no HTTP endpoint */
	char http_public_url[256];               /* [http] public_url: base of links and package uris */
	uint32_t http_max_connections;           /* [http] max_connections */
	uint32_t http_max_connections_per_ip;    /* [http] max_connections_per_ip */
	uint32_t http_timeout_s;                 /* [http] timeout_s: idle connections are closed after it */
	uint32_t http_request_max_bytes;         /* [http] request_max_bytes: request line and headers */
	bool accept_missing_sign_state;          /* run --accept-missing-sign-state (not in config.ini) */
};

/* Fills cfg with the defaults for home (paths resolved under it). */
void config_defaults(struct config *cfg, const char *home);
/*
 * Loads HOME/config.ini over the defaults. Unknown sections or keys and bad
 * values are refused with the line number. Returns 0 or TD_EINVAL/TD_EIO.
 */
int config_load(struct config *cfg, const char *home, char *err, size_t errlen);
/*
 * Sets one option by "section.key" (for command-line overrides); relative
 * paths resolve under the home. Returns 0 or TD_EINVAL with a message.
 */
int config_set(struct config *cfg, const char *section, const char *key, const char *value, char *err, size_t errlen);
/*
 * Writes a documented config.ini for cfg to path (refuses to overwrite). Returns 0,
 * TD_EINVAL for a value config.ini cannot hold (it would load back as something else),
 * TD_EEXIST if path exists, or TD_EIO, with a message.
 */
int config_write(const struct config *cfg, const char *path, char *err, size_t errlen);

/*
 * Reads an Ed25519 key file; refuses one that group or others can read or
 * write ("chmod 600"). Returns 0 or an error with a message; never logs the key.
 */
int config_key_load(const char *path, uint8_t sk[static TD_SECKEY_LEN], char *err, size_t errlen);
/* Creates a key file (mode 0600, refuses to overwrite) holding sk. */
int config_key_write(const char *path, const uint8_t sk[static TD_SECKEY_LEN], char *err, size_t errlen);

/* Reads and parses a genesis file. */
int config_genesis_load(struct td_genesis *g, const char *path, char *err, size_t errlen);
/* Writes g as JSON to path (refuses to overwrite): the bytes of config_genesis_text. */
int config_genesis_write(const struct td_genesis *g, const char *path, char *err, size_t errlen);
/*
 * The genesis file's text for g (malloc'd, NUL-terminated, *len bytes): JSON
 * indented by two, with a final newline. The same g always gives the same bytes.
 */
char *config_genesis_text(const struct td_genesis *g, size_t *len);

/*
 * `tenderd init`: creates home (if needed) with a new key, config.ini and a
 * one-validator genesis.json. Refuses a home that already has any of them.
 */
int config_init_home(const char *home, const char *name, const char *chain_id, const char *ocid_prefix, char *err,
		     size_t errlen);

/*
 * `tenderd init --genesis FILE`: creates home (if needed) with a new key and
 * config.ini, and a copy of the genesis in FILE (parsed and written back, so
 * its hash is FILE's). Refuses a home that already holds a node and a FILE
 * that is no genesis. *validator is this key's index in the genesis, or -1
 * (a new key is a validator of no existing chain yet).
 */
int config_join_home(const char *home, const char *name, const char *genesis_path, int *validator, char *err,
		     size_t errlen);

/*
 * An agency's public identity, as `tenderd id` prints it and `tenderd
 * genesis create` reads it: {"name", "pub_key" (hex), "address"}.
 */
struct config_identity {
	char name[TD_NAME_MAX + 1];
	uint8_t pk[TD_PUBKEY_LEN];
	char address[128]; /* host:port the other nodes dial (empty if unknown) */
};

/*
 * The identity of the node in home: its name (config.ini), its public key
 * (node.key, whose secret part is wiped at once) and address, or if that is
 * NULL the [p2p] listen address. Returns 0 or an error with a message.
 */
int config_identity_load(struct config_identity *id, const char *home, const char *address, char *err, size_t errlen);
/* The identity as a JSON object (new reference). */
json_t *config_identity_json(const struct config_identity *id);
/*
 * Parses an identity file's text: an object with "name" (1..TD_NAME_MAX
 * bytes), "pub_key" (hex) and optionally "address" (host:port). Returns 0 or
 * TD_EINVAL with a message.
 */
int config_identity_parse(struct config_identity *id, const char *text, size_t len, char *err, size_t errlen);
/* True if s is a host:port (IPv6 host in brackets) with a port of 1..65535 and no space, ',' or '@'. */
bool config_hostport_valid(const char *s);
/*
 * True if s is an [http] listen address: PORT (meaning 127.0.0.1:PORT),
 * IPV4:PORT or [IPV6]:PORT with numeric addresses and a port of 0..65535
 * (0: any free port, logged at startup).
 */
bool config_http_listen_valid(const char *s);

/*
 * `tenderd genesis create`: a genesis in g of the n identities, identity i
 * in the role roles[i] (NULL: all validators), each role's list ordered by
 * public key (so the same identities in any order give the same genesis),
 * with the chain id, ocid prefix and time given. Refuses two identities with
 * one key or one name (TD_EEXIST, naming them by labels[i] if labels is not
 * NULL), no validator or more than TD_VALIDATORS_MAX, more than
 * TD_PARTIES_MAX in all, and a bad chain id or prefix (TD_EINVAL). On
 * success the caller frees g with td_genesis_free.
 */
int config_genesis_create(struct td_genesis *g, const struct config_identity *ids, const char *const *labels,
			  const enum td_role *roles, uint32_t n, const char *chain_id, const char *ocid_prefix,
			  uint64_t time_ms, char *err, size_t errlen);

/*
 * `tenderd testnet`: creates out/node0 .. out/node<n-1>, each a home with its
 * own key and config, sharing one genesis of n validators; node i listens on
 * 127.0.0.1:base_port+i and dials every other node. Refuses an out directory
 * that already holds node homes.
 */
int config_testnet(const char *out, uint32_t nodes, uint32_t base_port, const char *chain_id, const char *ocid_prefix,
		   char *err, size_t errlen);

/* Reads a whole file (at most max bytes) into a malloc'd NUL-terminated buffer. */
int config_read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);

#endif
