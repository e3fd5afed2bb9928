/*
 * tenderd: the daemon's command line.
 *
 *   tenderd init --home DIR --name AGENCY [--chain-id ID] [--ocid-prefix P | --genesis FILE]
 *   tenderd id --home DIR [--address HOST:PORT]
 *   tenderd genesis create --chain-id ID --ocid-prefix P [--genesis-time T] [--member F]... [--observer F]...
 *                          ID_FILE...
 *   tenderd genesis hash FILE
 *   tenderd run --home DIR [--log-level L] [--log-format F] [--socket PATH] [--set SECTION.KEY=VALUE]...
 *   tenderd check --home DIR
 *   tenderd version
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <uv.h>

#include "chain.h"
#include "config.h"
#include "log.h"
#include "daemon.h"
#include "tenderd/isotime.h"
#include "tenderd/json.h"

#define EXIT_USAGE 3

static const char usage_text[] =
	"usage: tenderd COMMAND [OPTIONS]\n"
	"\n"
	"tenderd keeps a shared ledger of signed OCDS procurement releases.\n"
	"\n"
	"commands:\n"
	"  init     create a node home: key (node.key, mode 0600), config.ini, genesis.json\n"
	"  id       print this agency's public identity (name, pub_key, address) as JSON\n"
	"  genesis  create a genesis from the agencies' identity files, or print a genesis hash\n"
	"  run      run the node in the foreground until SIGINT or SIGTERM\n"
	"  check    verify a stopped node's store: blocks, commits, records, indexes\n"
	"  testnet  create the homes of a local multi-node testnet\n"
	"  version  print the version\n"
	"\n"
	"tenderd init --home DIR --name AGENCY [--chain-id ID] [--ocid-prefix PREFIX | --genesis FILE]\n"
	"  --home DIR            node home to create, with missing parents (or $TENDERD_HOME)\n"
	"  --name AGENCY         this agency's name, as validators and buyers see it\n"
	"  --chain-id ID         chain identifier of a new one-validator chain (default tenderd-local)\n"
	"  --ocid-prefix PREFIX  ocid prefix every tender must use (default ocds-kr2020)\n"
	"  --genesis FILE        join the existing chain of this genesis instead\n"
	"\n"
	"tenderd id --home DIR [--address HOST:PORT]\n"
	"  prints {\"name\", \"pub_key\", \"address\"}: what an agency sends the others (never\n"
	"  the key); --address is where the others reach this node (default: [p2p] listen)\n"
	"\n"
	"tenderd genesis create --chain-id ID --ocid-prefix PREFIX [--genesis-time T]\n"
	"                       [--member ID_FILE]... [--observer ID_FILE]... ID_FILE...\n"
	"  prints a genesis of the identity files' agencies (ID_FILE: validators; members\n"
	"  publish but do not vote, observers follow read-only), ordered by public key, on\n"
	"  stdout and its hash on stderr; --genesis-time (UTC, like 2020-03-01T00:00:00Z;\n"
	"  default now) makes the output the same bytes wherever it is run\n"
	"tenderd genesis hash FILE\n"
	"  prints the hash of a genesis file, to compare with the other agencies\n"
	"\n"
	"tenderd testnet --nodes N --out DIR --base-port P [--chain-id ID] [--ocid-prefix PREFIX]\n"
	"  writes DIR/node0 .. DIR/node<N-1> sharing one genesis of N validators;\n"
	"  node i listens on 127.0.0.1:P+i and its socket is DIR/node<i>/tenderd.sock\n"
	"\n"
	"tenderd run --home DIR [OPTIONS]\n"
	"  --home DIR            node home (or $TENDERD_HOME)\n"
	"  --log-level LEVEL     error, warn, info or debug (config log.level)\n"
	"  --log-format FORMAT   text or json (config log.format)\n"
	"  --socket PATH         JSON-RPC socket path (config rpc.socket)\n"
	"  --log-file PATH       append the log to PATH, reopened on SIGHUP (config log.file)\n"
	"  --set SECTION.KEY=VALUE  override any config.ini option; may repeat\n"
	"  --accept-missing-sign-state  start although sign_state.json is missing and the\n"
	"                        store holds blocks (after a restore or a move: see the README)\n"
	"\n"
	"tenderd check --home DIR\n"
	"  verifies the whole store of a node that is not running (after a restore, a crash\n"
	"  or a disk error): every block's hash, previous hash and records root, every\n"
	"  commit's signatures against the genesis validators, every record and every index\n"
	"  entry; prints the first damaged height. A damaged store is recovered by resyncing\n"
	"  from peers: stop the node, move the store directory away, start the node again.\n"
	"\n"
	"exit status: 0 clean stop (check: store intact), 1 error (check: store damaged or\n"
	"unreadable), 3 usage\n";

static int usage(FILE *f, int code)
{
	fputs(usage_text, f);
	return code;
}

static const char *home_arg(const char *opt)
{
	if (opt)
		return opt;
	return getenv("TENDERD_HOME");
}

/* Prints the genesis hash of g as hex into out. */
static void genesis_hex(char out[static 2 * TD_HASH_LEN + 1], const struct td_genesis *g)
{
	uint8_t h[TD_HASH_LEN];
	td_genesis_hash(h, g);
	td_hex(out, h, TD_HASH_LEN);
}

/* `tenderd init --genesis FILE`: a new home on an existing chain. */
static int init_join(const char *home, const char *name, const char *genesis)
{
	char err[1024], path[PATH_MAX + 32], hex[2 * TD_HASH_LEN + 1], pk[2 * TD_PUBKEY_LEN + 1];
	struct td_genesis g = { 0 };
	struct config_identity id;
	int v;

	if (config_join_home(home, name, genesis, &v, err, sizeof(err)) != 0) {
		fprintf(stderr, "tenderd init: %s\n", err);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s", home, GENESIS_FILE);
	if (config_genesis_load(&g, path, err, sizeof(err)) != 0 ||
	    config_identity_load(&id, home, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "tenderd init: %s\n", err);
		td_genesis_free(&g);
		return 1;
	}
	genesis_hex(hex, &g);
	td_hex(pk, id.pk, TD_PUBKEY_LEN);
	printf("initialised node \"%s\" in %s\n", name, home);
	printf("  key      %s/%s (mode 0600; keep it secret)\n", home, KEY_FILE);
	printf("  config   %s/%s\n", home, CONFIG_FILE);
	printf("  genesis  %s/%s (chain %s, %u validator%s, genesis hash %s)\n", home, GENESIS_FILE, g.chain_id, g.n,
	       g.n == 1 ? "" : "s", hex);
	if (v >= 0) {
		printf("this key is validator %d of chain %s (\"%s\" in the genesis)\n", v, g.chain_id, g.v[v].name);
		printf("start it with: tenderd run --home %s\n", home);
	} else {
		fprintf(stderr,
			"tenderd init: note: this node's key %s is not a validator, member or observer of chain %s, "
			"so the node cannot run on that chain yet. Send the output of `tenderd id --home %s` to the "
			"chain's agencies.\n",
			pk, g.chain_id, home);
	}
	td_genesis_free(&g);
	return 0;
}

static int cmd_id(int argc, char **argv)
{
	static const struct option opts[] = { { "home", required_argument, NULL, 'h' },
					      { "address", required_argument, NULL, 'a' },
					      { "help", no_argument, NULL, 'H' },
					      { NULL, 0, NULL, 0 } };
	const char *home = NULL, *address = NULL;
	struct config_identity id;
	char err[1024];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h': home = optarg; break;
		case 'a': address = optarg; break;
		case 'H': return usage(stdout, 0);
		default: return usage(stderr, EXIT_USAGE);
		}
	}
	home = home_arg(home);
	if (!home || optind != argc) {
		fprintf(stderr, "tenderd id: --home is required\n");
		return usage(stderr, EXIT_USAGE);
	}
	if (address && !config_hostport_valid(address)) {
		fprintf(stderr, "tenderd id: --address \"%s\" is not HOST:PORT (an IPv6 host in brackets)\n", address);
		return EXIT_USAGE;
	}
	if (config_identity_load(&id, home, address, err, sizeof(err)) != 0) {
		fprintf(stderr, "tenderd id: %s\n", err);
		return 1;
	}
	json_t *doc = config_identity_json(&id);
	char *text = td_json_dump(doc, JSON_INDENT(2));
	json_decref(doc);
	if (!text)
		abort();
	printf("%s\n", text);
	free(text);
	if (!address && (strncmp(id.address, "0.0.0.0:", 8) == 0 || strncmp(id.address, "[::]:", 5) == 0 ||
			 strncmp(id.address, "127.", 4) == 0 || strncmp(id.address, "localhost:", 10) == 0 ||
			 strncmp(id.address, "[::1]:", 6) == 0))
		fprintf(stderr,
			"tenderd id: note: the address is this node's listen address %s, which other machines "
			"cannot dial; pass --address HOST:PORT with the address they reach it at\n",
			id.address);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int genesis_create(int argc, char **argv)
{
	static const struct option opts[] = { { "chain-id", required_argument, NULL, 'c' },
					      { "ocid-prefix", required_argument, NULL, 'o' },
					      { "genesis-time", required_argument, NULL, 't' },
					      { "member", required_argument, NULL, 'm' },
					      { "observer", required_argument, NULL, 'b' },
					      { "help", no_argument, NULL, 'H' },
					      { NULL, 0, NULL, 0 } };
	const char *chain_id = NULL, *prefix = NULL, *gtime = NULL;
	const char **files = td_xcalloc((size_t)argc, sizeof(*files));
	enum td_role *roles = td_xcalloc((size_t)argc, sizeof(*roles));
	struct config_identity *ids = NULL;
	struct td_genesis g = { 0 };
	char err[1024], hex[2 * TD_HASH_LEN + 1];
	uint64_t time_ms = (uint64_t)time(NULL) * 1000;
	uint32_t n = 0, nv = 0;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c': chain_id = optarg; break;
		case 'o': prefix = optarg; break;
		case 't': gtime = optarg; break;
		case 'm':
			roles[n] = TD_ROLE_MEMBER;
			files[n++] = optarg;
			break;
		case 'b':
			roles[n] = TD_ROLE_OBSERVER;
			files[n++] = optarg;
			break;
		case 'H': rc = usage(stdout, 0); goto out;
		default: rc = usage(stderr, EXIT_USAGE); goto out;
		}
	}
	for (int i = optind; i < argc; i++, nv++) {
		roles[n] = TD_ROLE_VALIDATOR;
		files[n++] = argv[i];
	}
	if (!chain_id || !prefix || nv == 0) {
		fprintf(stderr,
			"tenderd genesis create: --chain-id, --ocid-prefix and at least one validator's ID_FILE "
			"are required\n");
		rc = usage(stderr, EXIT_USAGE);
		goto out;
	}
	if (gtime) {
		int64_t ms;
		size_t len = strlen(gtime);
		if (!td_iso_parse(gtime, len, &ms) || gtime[len - 1] != 'Z' || ms < 0) {
			fprintf(stderr, "tenderd genesis create: --genesis-time must be a UTC time like "
					"2020-03-01T00:00:00Z\n");
			rc = EXIT_USAGE;
			goto out;
		}
		time_ms = (uint64_t)ms;
	}
	if (nv > TD_VALIDATORS_MAX || n > TD_PARTIES_MAX) {
		fprintf(stderr,
			"tenderd genesis create: at most %d validators' identity files and %d identity files in all\n",
			TD_VALIDATORS_MAX, TD_PARTIES_MAX);
		rc = EXIT_USAGE;
		goto out;
	}
	ids = td_xcalloc(n, sizeof(*ids));
	for (uint32_t i = 0; i < n; i++) {
		char *text, msg[512];
		size_t len;
		if (config_read_file(files[i], 64 * 1024, &text, &len, err, sizeof(err)) != 0) {
			fprintf(stderr, "tenderd genesis create: %s\n", err);
			goto out;
		}
		int prc = config_identity_parse(&ids[i], text, len, msg, sizeof(msg));
		free(text);
		if (prc != 0) {
			fprintf(stderr, "tenderd genesis create: %s: %s\n", files[i], msg);
			goto out;
		}
	}
	int grc = config_genesis_create(&g, ids, files, roles, n, chain_id, prefix, time_ms, err, sizeof(err));
	if (grc != 0) {
		fprintf(stderr, "tenderd genesis create: %s\n", err);
		rc = grc == TD_EINVAL ? EXIT_USAGE : 1; /* a bad --chain-id or --ocid-prefix; else duplicates */
		goto out;
	}
	size_t len;
	char *text = config_genesis_text(&g, &len);
	genesis_hex(hex, &g);
	int wrc = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 1;
	free(text);
	if (wrc) {
		fprintf(stderr, "tenderd genesis create: cannot write the genesis to stdout\n");
		goto out;
	}
	fprintf(stderr, "genesis hash: %s\n", hex);
	rc = 0;
out:
	td_genesis_free(&g);
	free(ids);
	free(files);
	free(roles);
	return rc;
}

static int cmd_genesis(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "create") == 0) {
		optind = 1;
		return genesis_create(argc - 1, argv + 1);
	}
	if (argc >= 2 && strcmp(argv[1], "hash") == 0) {
		struct td_genesis g = { 0 };
		char err[1024], hex[2 * TD_HASH_LEN + 1];
		if (argc != 3 || argv[2][0] == '-') {
			fprintf(stderr, "usage: tenderd genesis hash FILE\n");
			return EXIT_USAGE;
		}
		if (config_genesis_load(&g, argv[2], err, sizeof(err)) != 0) {
			fprintf(stderr, "tenderd genesis hash: %s\n", err);
			return 1;
		}
		genesis_hex(hex, &g);
		printf("%s\n", hex);
		td_genesis_free(&g);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return usage(stdout, 0);
	fprintf(stderr, "tenderd genesis: expected create or hash\n");
	return usage(stderr, EXIT_USAGE);
}

static int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = { { "home", required_argument, NULL, 'h' },
					      { "name", required_argument, NULL, 'n' },
					      { "chain-id", required_argument, NULL, 'c' },
					      { "ocid-prefix", required_argument, NULL, 'o' },
					      { "genesis", required_argument, NULL, 'g' },
					      { "help", no_argument, NULL, 'H' },
					      { NULL, 0, NULL, 0 } };
	const char *home = NULL, *name = NULL, *chain_id = "tenderd-local", *prefix = "ocds-kr2020", *genesis = NULL;
	bool chain_opts = false;
	char err[512];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h': home = optarg; break;
		case 'n': name = optarg; break;
		case 'c':
			chain_id = optarg;
			chain_opts = true;
			break;
		case 'o':
			prefix = optarg;
			chain_opts = true;
			break;
		case 'g': genesis = optarg; break;
		case 'H': return usage(stdout, 0);
		default: return usage(stderr, EXIT_USAGE);
		}
	}
	home = home_arg(home);
	if (!home || !name || optind != argc) {
		fprintf(stderr, "tenderd init: --home and --name are required\n");
		return usage(stderr, EXIT_USAGE);
	}
	if (genesis && chain_opts) {
		fprintf(stderr, "tenderd init: --genesis takes the chain id and ocid prefix from the genesis; "
				"--chain-id and --ocid-prefix do not go with it\n");
		return EXIT_USAGE;
	}
	if (genesis)
		return init_join(home, name, genesis);
	if (config_init_home(home, name, chain_id, prefix, err, sizeof(err)) != 0) {
		fprintf(stderr, "tenderd init: %s\n", err);
		return 1;
	}
	printf("initialised node \"%s\" in %s\n", name, home);
	printf("  key      %s/%s (mode 0600; keep it secret)\n", home, KEY_FILE);
	printf("  config   %s/%s\n", home, CONFIG_FILE);
	printf("  genesis  %s/%s (chain %s, one validator)\n", home, GENESIS_FILE, chain_id);
	printf("start it with: tenderd run --home %s\n", home);
	return 0;
}

static int cmd_testnet(int argc, char **argv)
{
	static const struct option opts[] = { { "nodes", required_argument, NULL, 'n' },
					      { "out", required_argument, NULL, 'o' },
					      { "base-port", required_argument, NULL, 'p' },
					      { "chain-id", required_argument, NULL, 'c' },
					      { "ocid-prefix", required_argument, NULL, 'x' },
					      { "help", no_argument, NULL, 'H' },
					      { NULL, 0, NULL, 0 } };
	const char *out = NULL, *chain_id = "tenderd-testnet", *prefix = "ocds-kr2020";
	long nodes = 4, port = 26656;
	char err[512], *end;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			nodes = strtol(optarg, &end, 10);
			if (*end || nodes < 1 || nodes > 64) {
				fprintf(stderr, "tenderd testnet: --nodes takes 1..64\n");
				return EXIT_USAGE;
			}
			break;
		case 'o': out = optarg; break;
		case 'p':
			port = strtol(optarg, &end, 10);
			if (*end || port < 1024 || port > 65000) {
				fprintf(stderr, "tenderd testnet: --base-port takes 1024..65000\n");
				return EXIT_USAGE;
			}
			break;
		case 'c': chain_id = optarg; break;
		case 'x': prefix = optarg; break;
		case 'H': return usage(stdout, 0);
		default: return usage(stderr, EXIT_USAGE);
		}
	}
	if (!out || optind != argc) {
		fprintf(stderr, "tenderd testnet: --out is required\n");
		return usage(stderr, EXIT_USAGE);
	}
	if (config_testnet(out, (uint32_t)nodes, (uint32_t)port, chain_id, prefix, err, sizeof(err)) != 0) {
		fprintf(stderr, "tenderd testnet: %s\n", err);
		return 1;
	}
	printf("testnet of %ld nodes in %s (chain %s)\n", nodes, out, chain_id);
	for (long i = 0; i < nodes; i++)
		printf("  node%ld: p2p 127.0.0.1:%ld, socket %s/node%ld/tenderd.sock\n", i, port + i, out, i);
	printf("start each with: tenderd run --home %s/nodeI\n", out);
	return 0;
}

static int override(struct config *cfg, const char *section, const char *key, const char *value)
{
	char err[512];
	if (config_set(cfg, section, key, value, err, sizeof(err)) != 0) {
		fprintf(stderr, "tenderd run: %s\n", err);
		return -1;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = { { "home", required_argument, NULL, 'h' },
					      { "log-level", required_argument, NULL, 'l' },
					      { "log-format", required_argument, NULL, 'f' },
					      { "socket", required_argument, NULL, 's' },
					      { "log-file", required_argument, NULL, 'L' },
					      { "set", required_argument, NULL, 'S' },
					      { "accept-missing-sign-state", no_argument, NULL, 'A' },
					      { "help", no_argument, NULL, 'H' },
					      { NULL, 0, NULL, 0 } };
	bool accept_missing = false;
	struct {
		char section[32], key[64];
		const char *value;
	} sets[64];
	int nsets = 0, c;
	const char *home = NULL, *level = NULL, *format = NULL, *sock = NULL, *logfile = NULL;
	struct config cfg;
	struct daemon *dm = NULL;
	uv_loop_t loop;
	char err[1024];

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h': home = optarg; break;
		case 'l': level = optarg; break;
		case 'f': format = optarg; break;
		case 's': sock = optarg; break;
		case 'L': logfile = optarg; break;
		case 'A': accept_missing = true; break;
		case 'S': {
			const char *dot = strchr(optarg, '.'), *eq = strchr(optarg, '=');
			if (nsets == 64 || !dot || !eq || dot > eq || dot - optarg >= 32 || eq - dot - 1 >= 64) {
				fprintf(stderr, "tenderd run: --set takes SECTION.KEY=VALUE\n");
				return EXIT_USAGE;
			}
			snprintf(sets[nsets].section, sizeof(sets[nsets].section), "%.*s", (int)(dot - optarg), optarg);
			snprintf(sets[nsets].key, sizeof(sets[nsets].key), "%.*s", (int)(eq - dot - 1), dot + 1);
			sets[nsets++].value = eq + 1;
			break;
		}
		case 'H': return usage(stdout, 0);
		default: return usage(stderr, EXIT_USAGE);
		}
	}
	home = home_arg(home);
	if (!home || optind != argc) {
		fprintf(stderr, "tenderd run: --home is required\n");
		return usage(stderr, EXIT_USAGE);
	}
	if (config_load(&cfg, home, err, sizeof(err)) != 0) {
		fprintf(stderr, "tenderd run: %s\n", err);
		return 1;
	}
	for (int i = 0; i < nsets; i++)
		if (override(&cfg, sets[i].section, sets[i].key, sets[i].value))
			return EXIT_USAGE;
	if ((level && override(&cfg, "log", "level", level)) || (format && override(&cfg, "log", "format", format)) ||
	    (sock && override(&cfg, "rpc", "socket", sock)) || (logfile && override(&cfg, "log", "file", logfile)))
		return EXIT_USAGE;
	cfg.accept_missing_sign_state = accept_missing;
	if (cfg.log_file[0]) {
		int lrc = log_set_file(cfg.log_file);
		if (lrc < 0) {
			fprintf(stderr, "tenderd run: cannot open log file %s: %s\n", cfg.log_file, strerror(-lrc));
			return 1;
		}
	}
	log_set_level((enum log_level)log_parse_level(cfg.log_level));
	log_set_json(strcmp(cfg.log_format, "json") == 0);

	{
		struct td_genesis g = { 0 };
		char path[PATH_MAX + 32], hex[2 * TD_HASH_LEN + 1];
		snprintf(path, sizeof(path), "%s/%s", home, GENESIS_FILE);
		if (config_genesis_load(&g, path, err, sizeof(err)) == 0) { /* else daemon_start says why */
			genesis_hex(hex, &g);
			log_info("genesis %s: hash %s", path, hex);
			td_genesis_free(&g);
		}
	}
	signal(SIGPIPE, SIG_IGN);
	/* The loop is single-threaded; LevelDB's compaction thread needs no arena of its own either. */
	mallopt(M_ARENA_MAX, 2);
	uv_loop_init(&loop);
	if (daemon_start(&dm, &loop, &cfg, err, sizeof(err)) != 0) {
		log_error("cannot start: %s", err);
		uv_run(&loop, UV_RUN_DEFAULT);
		daemon_free(dm);
		uv_loop_close(&loop);
		return 1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	daemon_free(dm);
	int rc = uv_loop_close(&loop);
	if (rc != 0)
		log_warn("event loop closed with handles open: %s", uv_strerror(rc));
	log_info("stopped");
	return 0;
}

static void check_progress(void *ctx, uint64_t height)
{
	(void)ctx;
	fprintf(stderr, "tenderd check: block %llu...\n", (unsigned long long)height);
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = { { "home", required_argument, NULL, 'h' },
					      { "help", no_argument, NULL, 'H' },
					      { NULL, 0, NULL, 0 } };
	const char *home = NULL;
	struct td_genesis g = { 0 };
	struct chain *ch = NULL;
	struct config cfg;
	char err[1024], path[PATH_MAX + 32];
	uint64_t bad = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h': home = optarg; break;
		case 'H': return usage(stdout, 0);
		default: return usage(stderr, EXIT_USAGE);
		}
	}
	home = home_arg(home);
	if (!home || optind != argc) {
		fprintf(stderr, "tenderd check: --home is required\n");
		return usage(stderr, EXIT_USAGE);
	}
	if (config_load(&cfg, home, err, sizeof(err)) != 0) {
		fprintf(stderr, "tenderd check: %s\n", err);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s", home, GENESIS_FILE);
	if (config_genesis_load(&g, path, err, sizeof(err)) != 0) {
		fprintf(stderr, "tenderd check: %s\n", err);
		return 1;
	}
	if (chain_open(&ch, cfg.store_path, &g, err, sizeof(err)) != 0) {
		fprintf(stderr, "tenderd check: cannot open the store: %s\n", err);
		td_genesis_free(&g);
		return 1;
	}
	printf("checking %s: %llu blocks, %llu records\n", cfg.store_path, (unsigned long long)chain_height(ch),
	       (unsigned long long)chain_record_count(ch));
	fflush(stdout);
	rc = chain_check_all(ch, &bad, err, sizeof(err), check_progress, NULL);
	if (rc == 0) {
		printf("store intact: %llu blocks, %llu records\n", (unsigned long long)chain_height(ch),
		       (unsigned long long)chain_record_count(ch));
	} else {
		if (bad)
			printf("store damaged: first bad height %llu: %s\n", (unsigned long long)bad, err);
		else
			printf("store damaged: %s\n", err);
		printf("recover by resyncing from peers: move %s away and start the node again\n", cfg.store_path);
	}
	chain_close(ch);
	td_genesis_free(&g);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr, EXIT_USAGE);
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
		return usage(stdout, 0);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("tenderd %s\n", TENDERD_VERSION);
		return 0;
	}
	optind = 1;
	if (strcmp(cmd, "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (strcmp(cmd, "testnet") == 0)
		return cmd_testnet(argc - 1, argv + 1);
	if (strcmp(cmd, "id") == 0)
		return cmd_id(argc - 1, argv + 1);
	if (strcmp(cmd, "genesis") == 0)
		return cmd_genesis(argc - 1, argv + 1);
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	fprintf(stderr, "tenderd: unknown command \"%s\"\n", cmd);
	return usage(stderr, EXIT_USAGE);
}
