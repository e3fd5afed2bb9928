/*
 * Tests for node/config.c. The first two were found by the fuzz target
 * tests/fuzz/fuzz_config.c: a value that config_set accepts or config_write writes must load
 * back from config.ini as itself (their input is kept in
 * tests/fuzz/corpus/fuzz_config/regress-set-value-config-ini-cannot-hold). The others cover
 * forming a chain across machines: homes created with their parents, identity files,
 * genesis creation and joining a home to an existing genesis.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <ini.h>
#include <sodium.h>

#include "tenderd/json.h"
#include "tenderd/types.h"
#include "chain.h"
#include "chainkeys.h"
#include "config.h"
#include "log.h"
#include "store.h"

/*
 * Bug: --set p2p.listen (or node.name, p2p.peers) took a value that config.ini cannot hold
 * (trailing spaces, a newline, " ;" or a ';' first, a line over inih's 200 bytes), so config_write wrote a
 * file that loaded back as another value or not at all. They are refused now.
 */
static void set_value_config_ini_cannot_hold(void **state)
{
	struct config cfg;
	char err[TD_ERRMSG_MAX], peers[300];

	(void)state;
	config_defaults(&cfg, "/tmp");
	assert_int_equal(config_set(&cfg, "p2p", "listen", "0.0.0.0:26656  ", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "p2p", "listen", " 0.0.0.0:26656", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "node", "name", "Jeju\n[p2p]", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "p2p", "peers", "127.0.0.1:1 ;x", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "node", "name", "; c/;ment", err, sizeof(err)), TD_EINVAL);
	memset(peers, 'a', sizeof(peers) - 1);
	peers[sizeof(peers) - 1] = '\0';
	assert_int_equal(config_set(&cfg, "p2p", "peers", peers, err, sizeof(err)), TD_EINVAL);
	assert_string_equal(cfg.p2p_listen, "127.0.0.1:26656");

	/* Ordinary values still go through. */
	assert_int_equal(config_set(&cfg, "p2p", "listen", "0.0.0.0:26656", err, sizeof(err)), 0);
	assert_int_equal(config_set(&cfg, "p2p", "peers", "127.0.0.1:1,127.0.0.1:2", err, sizeof(err)), 0);
	assert_int_equal(config_set(&cfg, "node", "name", "Jeju Special Self-Governing Province", err, sizeof(err)), 0);
	assert_int_equal(config_set(&cfg, "node", "name", "a;b", err, sizeof(err)), 0);
}

/* The same bug through config_write: a file that would not load back as cfg is not written. */
static void write_value_config_ini_cannot_hold(void **state)
{
	struct config cfg, back;
	char dir[] = "/tmp/td-config-XXXXXX", path[64], err[TD_ERRMSG_MAX];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CONFIG_FILE);
	config_defaults(&cfg, dir);
	snprintf(cfg.name, sizeof(cfg.name), "Jeju ");
	assert_int_equal(config_write(&cfg, path, err, sizeof(err)), TD_EINVAL);
	assert_int_equal(access(path, F_OK), -1);

	snprintf(cfg.name, sizeof(cfg.name), "Jeju");
	snprintf(cfg.p2p_peers, sizeof(cfg.p2p_peers), "127.0.0.1:26657,127.0.0.1:26658");
	assert_int_equal(config_write(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(config_load(&back, dir, err, sizeof(err)), 0);
	assert_string_equal(back.name, cfg.name);
	assert_string_equal(back.p2p_peers, cfg.p2p_peers);
	unlink(path);
	rmdir(dir);
}

/* Removes a tree made by a test (paths are under /tmp/td-config-*). */
static void rm_tree(const char *dir)
{
	char cmd[PATH_MAX + 32];
	assert_int_equal(strncmp(dir, "/tmp/td-config-", 15), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* Bug: `tenderd init --home /a/b/c` failed with "No such file or directory" when /a/b did not exist. */
static void init_home_creates_parents(void **state)
{
	char dir[] = "/tmp/td-config-XXXXXX", home[128], path[160], err[TD_ERRMSG_MAX];
	struct stat st;
	mode_t old = umask(022);

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(home, sizeof(home), "%s/a/b/c/", dir);
	assert_int_equal(config_init_home(home, "Jeju", "tenderd-local", "ocds-kr2020", err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700); /* the home: owner only */
	snprintf(path, sizeof(path), "%s/a/b", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755); /* parents as mkdir -p makes them */
	snprintf(path, sizeof(path), "%s/a/b/c/%s", dir, KEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/a/b/c/%s", dir, GENESIS_FILE);
	assert_int_equal(access(path, R_OK), 0);
	/* A second init refuses; the home is left as it was. */
	assert_int_equal(config_init_home(home, "Jeju", "tenderd-local", "ocds-kr2020", err, sizeof(err)), TD_EEXIST);
	/* A file where a parent should be is an error, not a crash. */
	snprintf(path, sizeof(path), "%s/file", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(home, sizeof(home), "%s/file/x", dir);
	assert_int_equal(config_init_home(home, "Jeju", "tenderd-local", "ocds-kr2020", err, sizeof(err)), TD_EIO);
	assert_non_null(strstr(err, "Not a directory"));
	/* An existing home directory (made by a package, say) keeps its mode. */
	snprintf(home, sizeof(home), "%s/pkg", dir);
	assert_int_equal(mkdir(home, 0750), 0);
	assert_int_equal(config_init_home(home, "Jeju", "tenderd-local", "ocds-kr2020", err, sizeof(err)), 0);
	assert_int_equal(stat(home, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	umask(old);
	rm_tree(dir);
}

/* A genesis of n validators named "agency-i" with pk[i] all bytes i+1, chain "c", prefix "ocds-x", time 1000. */
static void small_genesis(struct td_genesis *g, struct td_validator *v, uint32_t n)
{
	memset(g, 0, sizeof(*g));
	snprintf(g->chain_id, sizeof(g->chain_id), "c");
	snprintf(g->ocid_prefix, sizeof(g->ocid_prefix), "ocds-x");
	g->time_ms = 1000;
	for (uint32_t i = 0; i < n; i++) {
		memset(&v[i], 0, sizeof(v[i]));
		snprintf(v[i].name, sizeof(v[i].name), "agency-%u", i);
		memset(v[i].pk, (int)i + 1, TD_PUBKEY_LEN);
	}
	g->n = n;
	g->v = v;
}

/* The genesis hash: BLAKE2b-256 of fixed canonical bytes, whatever the JSON layout. */
static void genesis_hash_canonical(void **state)
{
	struct td_genesis g, a, b;
	struct td_validator v[2];
	struct td_buf buf;
	uint8_t want[64], h[TD_HASH_LEN], hw[TD_HASH_LEN], ha[TD_HASH_LEN], hb[TD_HASH_LEN];
	size_t n = 0;
	char err[TD_ERRMSG_MAX];

	(void)state;
	small_genesis(&g, v, 1);
	v[0].name[0] = 'A';
	v[0].name[1] = '\0';
	/* [1, "c", "ocds-x", 1000, [["A", bin 32 of 0x01]]] */
	const uint8_t head[] = { 0x95, 0x01, 0xa1, 'c',  0xa6, 'o',  'c',  'd', 's',  '-',
				 'x',  0xcd, 0x03, 0xe8, 0x91, 0x92, 0xa1, 'A', 0xc4, 0x20 };
	memcpy(want, head, sizeof(head));
	n = sizeof(head);
	memset(want + n, 1, TD_PUBKEY_LEN);
	n += TD_PUBKEY_LEN;
	td_buf_init(&buf);
	td_genesis_encode(&buf, &g);
	assert_int_equal(buf.sb.size, n);
	assert_memory_equal(buf.sb.data, want, n);
	td_buf_free(&buf);
	crypto_generichash(hw, sizeof(hw), want, n, NULL, 0);
	td_genesis_hash(h, &g);
	assert_memory_equal(h, hw, TD_HASH_LEN);

	/* Two layouts of one genesis hash alike; another validator order does not. */
	const char *k1 = "0101010101010101010101010101010101010101010101010101010101010101";
	const char *k2 = "0202020202020202020202020202020202020202020202020202020202020202";
	char t1[512], t2[512], t3[512];
	snprintf(t1, sizeof(t1),
		 "{\"chain_id\":\"c\",\"ocid_prefix\":\"ocds-x\",\"genesis_time\":\"1970-01-01T00:00:01Z\","
		 "\"validators\":[{\"name\":\"A\",\"pub_key\":\"%s\"},{\"name\":\"B\",\"pub_key\":\"%s\"}]}",
		 k1, k2);
	snprintf(t2, sizeof(t2),
		 "{\n  \"validators\": [ {\"pub_key\": \"%s\", \"name\": \"A\"},\n {\"pub_key\": \"%s\", \"name\": "
		 "\"B\"} ],\n  \"genesis_time\": \"1970-01-01T00:00:01.000Z\", \"ocid_prefix\": \"ocds-x\", "
		 "\"chain_id\": \"c\"\n}\n",
		 k1, k2);
	snprintf(t3, sizeof(t3),
		 "{\"chain_id\":\"c\",\"ocid_prefix\":\"ocds-x\",\"genesis_time\":\"1970-01-01T00:00:01Z\","
		 "\"validators\":[{\"name\":\"B\",\"pub_key\":\"%s\"},{\"name\":\"A\",\"pub_key\":\"%s\"}]}",
		 k2, k1);
	assert_int_equal(td_genesis_parse(&a, t1, strlen(t1), err, sizeof(err)), 0);
	assert_int_equal(td_genesis_parse(&b, t2, strlen(t2), err, sizeof(err)), 0);
	td_genesis_hash(ha, &a);
	td_genesis_hash(hb, &b);
	assert_memory_equal(ha, hb, TD_HASH_LEN);
	td_genesis_free(&b);
	assert_int_equal(td_genesis_parse(&b, t3, strlen(t3), err, sizeof(err)), 0);
	td_genesis_hash(hb, &b);
	assert_memory_not_equal(ha, hb, TD_HASH_LEN);
	td_genesis_free(&a);
	td_genesis_free(&b);
}

static void hostport(void **state)
{
	(void)state;
	assert_true(config_hostport_valid("127.0.0.1:26656"));
	assert_true(config_hostport_valid("node.jeju.go.kr:1"));
	assert_true(config_hostport_valid("[2001:db8::1]:65535"));
	assert_false(config_hostport_valid("127.0.0.1"));
	assert_false(config_hostport_valid("127.0.0.1:0"));
	assert_false(config_hostport_valid("127.0.0.1:65536"));
	assert_false(config_hostport_valid("127.0.0.1:-1"));
	assert_false(config_hostport_valid(":26656"));
	assert_false(config_hostport_valid("2001:db8::1:26656"));
	assert_false(config_hostport_valid("a b:1"));
	assert_false(config_hostport_valid("a,b:1"));
	assert_false(config_hostport_valid("key@a:1"));
	assert_false(config_hostport_valid("[]:1"));
}

/* `tenderd id`: name, public key and address of a home, never the key; its JSON parses back. */
static void identity_of_home(void **state)
{
	char dir[] = "/tmp/td-config-XXXXXX", err[TD_ERRMSG_MAX], path[160];
	struct config_identity id, back;
	uint8_t sk[TD_SECKEY_LEN];

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(config_init_home(dir, "Sejong City", "c", "ocds-x", err, sizeof(err)), 0);
	assert_int_equal(config_identity_load(&id, dir, NULL, err, sizeof(err)), 0);
	assert_string_equal(id.name, "Sejong City");
	assert_string_equal(id.address, "127.0.0.1:26656"); /* [p2p] listen */
	snprintf(path, sizeof(path), "%s/%s", dir, KEY_FILE);
	assert_int_equal(config_key_load(path, sk, err, sizeof(err)), 0);
	assert_memory_equal(id.pk, sk + crypto_sign_SEEDBYTES, TD_PUBKEY_LEN);
	assert_int_equal(config_identity_load(&id, dir, "10.0.0.7:26656", err, sizeof(err)), 0);
	assert_string_equal(id.address, "10.0.0.7:26656");
	assert_int_equal(config_identity_load(&back, dir, "10.0.0.7", err, sizeof(err)), TD_EINVAL);

	json_t *doc = config_identity_json(&id);
	char *text = td_json_dump(doc, JSON_INDENT(2));
	assert_int_equal(json_object_size(doc), 3);
	char seed[2 * crypto_sign_SEEDBYTES + 1];
	td_hex(seed, sk, crypto_sign_SEEDBYTES);
	assert_null(strstr(text, seed)); /* the secret never shows */
	assert_int_equal(config_identity_parse(&back, text, strlen(text), err, sizeof(err)), 0);
	assert_memory_equal(&back, &id, sizeof(id));
	free(text);
	json_decref(doc);
	sodium_memzero(sk, sizeof(sk));

	/* Not identities: the key file itself, a bad key, a bad address, no name. */
	char *key;
	size_t klen;
	assert_int_equal(config_read_file(path, 4096, &key, &klen, err, sizeof(err)), 0);
	assert_int_equal(config_identity_parse(&back, key, klen, err, sizeof(err)), TD_EINVAL);
	assert_non_null(strstr(err, "key file"));
	free(key);
	const char *bad[] = {
		"{\"name\":\"A\",\"pub_key\":\"01\"}",
		"{\"name\":\"A\",\"pub_key\":\"0101010101010101010101010101010101010101010101010101010101010101\","
		"\"address\":\"nowhere\"}",
		"{\"pub_key\":\"0101010101010101010101010101010101010101010101010101010101010101\"}",
		"[1]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(config_identity_parse(&back, bad[i], strlen(bad[i]), err, sizeof(err)), TD_EINVAL);
	rm_tree(dir);
}

/* `tenderd genesis create`: ordered by key, the same bytes from any order; duplicates refused. */
static void genesis_create_ordered(void **state)
{
	struct config_identity ids[3], rev[3];
	const char *labels[3] = { "a.json", "b.json", "c.json" };
	struct td_genesis g1, g2;
	char err[TD_ERRMSG_MAX];
	size_t l1, l2;

	(void)state;
	memset(ids, 0, sizeof(ids));
	for (int i = 0; i < 3; i++) {
		snprintf(ids[i].name, sizeof(ids[i].name), "agency-%d", i);
		memset(ids[i].pk, 0x30 - 0x10 * i, TD_PUBKEY_LEN); /* keys in descending order */
		rev[2 - i] = ids[i];
	}
	assert_int_equal(
		config_genesis_create(&g1, ids, labels, NULL, 3, "cons", "ocds-x", 1600000000000ull, err, sizeof(err)),
		0);
	assert_int_equal(
		config_genesis_create(&g2, rev, NULL, NULL, 3, "cons", "ocds-x", 1600000000000ull, err, sizeof(err)),
		0);
	for (uint32_t i = 0; i < 3; i++) {
		assert_string_equal(g1.v[i].name, ids[2 - i].name);
		if (i > 0)
			assert_true(memcmp(g1.v[i - 1].pk, g1.v[i].pk, TD_PUBKEY_LEN) < 0);
	}
	char *t1 = config_genesis_text(&g1, &l1), *t2 = config_genesis_text(&g2, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(t1, t2, l1);
	assert_int_equal(t1[l1 - 1], '\n');
	/* The text parses back to the same genesis. */
	struct td_genesis back;
	uint8_t h1[TD_HASH_LEN], hb[TD_HASH_LEN];
	assert_int_equal(td_genesis_parse(&back, t1, l1, err, sizeof(err)), 0);
	td_genesis_hash(h1, &g1);
	td_genesis_hash(hb, &back);
	assert_memory_equal(h1, hb, TD_HASH_LEN);
	td_genesis_free(&back);
	free(t1);
	free(t2);
	td_genesis_free(&g1);
	td_genesis_free(&g2);

	/* One key twice; one name twice; bad chain id, prefix, no identities. */
	ids[2].pk[0] = ids[0].pk[0];
	memcpy(ids[2].pk, ids[0].pk, TD_PUBKEY_LEN);
	assert_int_equal(config_genesis_create(&g1, ids, labels, NULL, 3, "cons", "ocds-x", 0, err, sizeof(err)),
			 TD_EEXIST);
	assert_non_null(strstr(err, "duplicate key"));
	assert_non_null(strstr(err, "a.json"));
	assert_non_null(strstr(err, "c.json"));
	memset(ids[2].pk, 0x77, TD_PUBKEY_LEN);
	snprintf(ids[2].name, sizeof(ids[2].name), "agency-1");
	assert_int_equal(config_genesis_create(&g1, ids, labels, NULL, 3, "cons", "ocds-x", 0, err, sizeof(err)),
			 TD_EEXIST);
	assert_non_null(strstr(err, "duplicate name"));
	assert_non_null(strstr(err, "b.json and c.json"));
	snprintf(ids[2].name, sizeof(ids[2].name), "agency-2");
	assert_int_equal(config_genesis_create(&g1, ids, NULL, NULL, 3, "", "ocds-x", 0, err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_genesis_create(&g1, ids, NULL, NULL, 3, "cons", "kr", 0, err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_genesis_create(&g1, ids, NULL, NULL, 0, "cons", "ocds-x", 0, err, sizeof(err)),
			 TD_EINVAL);
	assert_int_equal(config_genesis_create(&g1, ids, NULL, NULL, 3, "cons", "ocds-x", 0, err, sizeof(err)), 0);
	td_genesis_free(&g1);

	/* Roles: each role's list on its own, ordered by key; at least one validator. */
	enum td_role roles[3] = { TD_ROLE_OBSERVER, TD_ROLE_VALIDATOR, TD_ROLE_MEMBER };
	assert_int_equal(config_genesis_create(&g1, ids, NULL, roles, 3, "cons", "ocds-x", 0, err, sizeof(err)), 0);
	assert_int_equal(g1.n, 1);
	assert_int_equal(g1.n_members, 1);
	assert_int_equal(g1.n_observers, 1);
	assert_memory_equal(g1.v[0].pk, ids[1].pk, TD_PUBKEY_LEN);
	assert_int_equal(td_genesis_find_party(&g1, ids[2].pk), 1);
	assert_int_equal(td_genesis_role(&g1, 1), TD_ROLE_MEMBER);
	assert_int_equal(td_genesis_find_party(&g1, ids[0].pk), 2);
	assert_int_equal(td_genesis_role(&g1, 2), TD_ROLE_OBSERVER);
	td_genesis_free(&g1);
	roles[1] = TD_ROLE_MEMBER;
	assert_int_equal(config_genesis_create(&g1, ids, NULL, roles, 3, "cons", "ocds-x", 0, err, sizeof(err)),
			 TD_EINVAL);
	assert_non_null(strstr(err, "validators"));
}

/* `tenderd init --genesis FILE`: a new home on that genesis (same hash); its new key is no validator. */
static void join_home(void **state)
{
	char dir[] = "/tmp/td-config-XXXXXX", home[96], gpath[96], path[128], err[TD_ERRMSG_MAX];
	struct td_genesis g, back;
	struct td_validator v[3];
	uint8_t h[TD_HASH_LEN], hb[TD_HASH_LEN];
	int validator = 7;

	(void)state;
	assert_non_null(mkdtemp(dir));
	small_genesis(&g, v, 3);
	snprintf(gpath, sizeof(gpath), "%s/agreed.json", dir);
	assert_int_equal(config_genesis_write(&g, gpath, err, sizeof(err)), 0);
	snprintf(home, sizeof(home), "%s/srv/tenderd", dir);
	assert_int_equal(config_join_home(home, "Late Agency", gpath, &validator, err, sizeof(err)), 0);
	assert_int_equal(validator, -1);
	snprintf(path, sizeof(path), "%s/%s", home, GENESIS_FILE);
	assert_int_equal(config_genesis_load(&back, path, err, sizeof(err)), 0);
	td_genesis_hash(h, &g);
	td_genesis_hash(hb, &back);
	assert_memory_equal(h, hb, TD_HASH_LEN);
	td_genesis_free(&back);
	struct config cfg;
	assert_int_equal(config_load(&cfg, home, err, sizeof(err)), 0);
	assert_string_equal(cfg.name, "Late Agency");
	/* Refused: a home that holds a node; a file that is no genesis (and then no home is made). */
	assert_int_equal(config_join_home(home, "Late Agency", gpath, &validator, err, sizeof(err)), TD_EEXIST);
	snprintf(home, sizeof(home), "%s/other", dir);
	snprintf(path, sizeof(path), "%s/%s", dir, "nothing.json");
	assert_int_equal(config_join_home(home, "X", path, &validator, err, sizeof(err)), TD_EIO);
	assert_int_equal(access(home, F_OK), -1);
	assert_int_equal(config_join_home(home, "X", home, &validator, err, sizeof(err)), TD_EIO);
	rm_tree(dir);
}

/* Reopens store "n" of world w as a chain on g; returns chain_open_store's code (chain closed again). */
static int reopen(struct store_mem_world *w, const struct td_genesis *g, uint64_t *height, char *err, size_t errlen)
{
	struct store *st;
	struct chain *c;
	assert_int_equal(store_open_mem(&st, w, "n", err, errlen), 0);
	int rc = chain_open_store(&c, st, "n", g, err, errlen);
	if (rc == 0) {
		if (height)
			*height = chain_height(c);
		chain_close(c);
	}
	return rc;
}

/* Raw edits of store "n": with height, a tip at that height and a block key there; without hash, "G" deleted. */
static void doctor(struct store_mem_world *w, uint64_t height, bool drop_hash)
{
	struct store *st;
	char err[TD_ERRMSG_MAX];
	struct store_batch *b = store_batch_new();
	struct ckey k;
	assert_int_equal(store_open_mem(&st, w, "n", err, sizeof(err)), 0);
	if (height) {
		struct ckey_tipval t = { .height = height, .time_ms = 5000, .n_records = 0 };
		uint8_t tip[CKEY_TIP_LEN];
		memset(t.hash, 0xab, sizeof(t.hash));
		ckey_tip_encode(&t, tip);
		ckey_tip(&k);
		store_batch_put(b, k.b, k.n, tip, sizeof(tip));
		ckey_block(&k, height);
		store_batch_put(b, k.b, k.n, "x", 1);
	}
	if (drop_hash) {
		ckey_genesis(&k);
		store_batch_delete(b, k.b, k.n);
	}
	assert_int_equal(store_write(st, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
	store_close(st);
}

/* The genesis hash a store holds (asserts it has one). */
static void stored_hash(struct store_mem_world *w, uint8_t out[static TD_HASH_LEN])
{
	struct store *st;
	char err[TD_ERRMSG_MAX];
	struct ckey k;
	uint8_t *v;
	size_t n;
	assert_int_equal(store_open_mem(&st, w, "n", err, sizeof(err)), 0);
	ckey_genesis(&k);
	assert_int_equal(store_get(st, k.b, k.n, &v, &n), 0);
	assert_int_equal(n, TD_HASH_LEN);
	memcpy(out, v, TD_HASH_LEN);
	free(v);
	store_close(st);
}

/*
 * A store records its genesis hash and refuses any other genesis, naming both hashes (a store
 * without blocks says it can be removed); a store from before genesis hashes gets the hash at its
 * first open, if the chain id is its own.
 */
static void store_keeps_its_genesis(void **state)
{
	struct store_mem_world *w = store_mem_world_new();
	struct td_genesis g1, g2, g3;
	struct td_validator v1[1], v2[3], v3[3];
	uint8_t h1[TD_HASH_LEN], h2[TD_HASH_LEN], got[TD_HASH_LEN];
	char err[1024], hex1[2 * TD_HASH_LEN + 1], hex2[2 * TD_HASH_LEN + 1];
	uint64_t height = 99;

	(void)state;
	log_set_level(LOG_ERROR);
	small_genesis(&g1, v1, 1); /* a one-validator chain from `tenderd init` */
	small_genesis(&g2, v2, 3); /* the agreed genesis, same chain id */
	small_genesis(&g3, v3, 3);
	snprintf(g3.chain_id, sizeof(g3.chain_id), "other");
	td_genesis_hash(h1, &g1);
	td_genesis_hash(h2, &g2);
	td_hex(hex1, h1, TD_HASH_LEN);
	td_hex(hex2, h2, TD_HASH_LEN);

	assert_int_equal(reopen(w, &g2, &height, err, sizeof(err)), 0);
	assert_int_equal(height, 0);
	stored_hash(w, got);
	assert_memory_equal(got, h2, TD_HASH_LEN);
	assert_int_equal(reopen(w, &g2, NULL, err, sizeof(err)), 0);
	/* No block yet: another genesis is taken, and the store records it. */
	assert_int_equal(reopen(w, &g1, &height, err, sizeof(err)), 0);
	assert_int_equal(height, 0);
	stored_hash(w, got);
	assert_memory_equal(got, h1, TD_HASH_LEN);
	assert_int_equal(reopen(w, &g2, NULL, err, sizeof(err)), 0);
	stored_hash(w, got);
	assert_memory_equal(got, h2, TD_HASH_LEN);

	/* With blocks: another genesis is refused, with or without the same chain id. */
	doctor(w, 3, false);
	assert_int_equal(reopen(w, &g2, &height, err, sizeof(err)), 0);
	assert_int_equal(height, 3);
	assert_int_equal(reopen(w, &g1, NULL, err, sizeof(err)), TD_EINVAL);
	assert_non_null(strstr(err, "cannot change its genesis"));
	assert_non_null(strstr(err, "3 blocks"));
	assert_non_null(strstr(err, hex1));
	assert_non_null(strstr(err, hex2));
	assert_int_equal(reopen(w, &g3, NULL, err, sizeof(err)), TD_EINVAL);
	assert_non_null(strstr(err, "chain \"c\""));
	assert_non_null(strstr(err, "chain \"other\""));
	stored_hash(w, got);
	assert_memory_equal(got, h2, TD_HASH_LEN); /* nothing was changed */

	/* A store from before genesis hashes (chain id only): the first open records the hash. */
	doctor(w, 0, true);
	assert_int_equal(reopen(w, &g1, &height, err, sizeof(err)), 0);
	assert_int_equal(height, 3);
	stored_hash(w, got);
	assert_memory_equal(got, h1, TD_HASH_LEN);
	assert_int_equal(reopen(w, &g2, NULL, err, sizeof(err)), TD_EINVAL);
	/* ... but not under another chain id. */
	doctor(w, 0, true);
	assert_int_equal(reopen(w, &g3, NULL, err, sizeof(err)), TD_EINVAL);
	assert_non_null(strstr(err, "cannot change its genesis"));
	assert_non_null(strstr(err, "(not recorded)"));
	store_mem_world_free(w);
}

/*
 * Bug: three peers written PUBKEY@HOST:PORT (80 bytes each) did not fit inih's 200-byte line,
 * so such a list could not be set at all. A long list now goes on indented continuation lines,
 * one entry each, and loads back as the same list.
 */
static void long_peer_list_across_lines(void **state)
{
	struct config cfg, back;
	char dir[] = "/tmp/td-config-XXXXXX", path[64], err[TD_ERRMSG_MAX], peers[1024], text[4096];
	const char *k = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CONFIG_FILE);
	snprintf(peers, sizeof(peers), "%s@10.0.0.1:26656,%s@10.0.0.2:26656,%s@[2001:db8::3]:26656,10.0.0.4:26656", k,
		 k, k);
	config_defaults(&cfg, dir);
	snprintf(cfg.name, sizeof(cfg.name), "Jeju");
	assert_int_equal(config_set(&cfg, "p2p", "peers", peers, err, sizeof(err)), 0);
	assert_int_equal(config_write(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(config_load(&back, dir, err, sizeof(err)), 0);
	assert_string_equal(back.p2p_peers, peers);
	FILE *f = fopen(path, "r");
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_non_null(strstr(text, "\n\t10.0.0.4:26656\n")); /* one entry per continuation line */
	unlink(path);
	/* Written by hand: entries on continuation lines, some with trailing commas. */
	f = fopen(path, "w");
	fprintf(f, "[node]\nname = Jeju\n[p2p]\npeers = %s@10.0.0.1:1,\n  %s@10.0.0.2:2\n  10.0.0.3:3\n", k, k);
	fclose(f);
	assert_int_equal(config_load(&back, dir, err, sizeof(err)), 0);
	snprintf(peers, sizeof(peers), "%s@10.0.0.1:1,,%s@10.0.0.2:2,10.0.0.3:3", k, k);
	assert_string_equal(back.p2p_peers, peers); /* the empty entry is skipped by p2p */
	unlink(path);
	/* Refused: a long list with an empty entry, or an entry with a space at its end. */
	snprintf(peers, sizeof(peers), "%s@10.0.0.1:1,,%s@10.0.0.2:2,%s@10.0.0.3:3", k, k, k);
	assert_int_equal(config_set(&cfg, "p2p", "peers", peers, err, sizeof(err)), TD_EINVAL);
	snprintf(peers, sizeof(peers), "%s@10.0.0.1:1 ,%s@10.0.0.2:2,%s@10.0.0.3:3", k, k, k);
	assert_int_equal(config_set(&cfg, "p2p", "peers", peers, err, sizeof(err)), TD_EINVAL);
	rmdir(dir);
}

/*
 * Bug (fuzz_config, regress-long-first-peer*): the first entry of a list too long for one line
 * stays on the "peers = " line, but was checked as if it had a continuation line of its own,
 * so an entry of 191..195 bytes was written on a line over inih's limit and the file did not
 * load back. The first entry must fit after "peers = "; later ones their own lines.
 */
static void long_first_peer_entry(void **state)
{
	struct config cfg, back;
	char dir[] = "/tmp/td-config-XXXXXX", path[64], err[TD_ERRMSG_MAX], peers[1024], host[256];
	const size_t fits = INI_MAX_LINE - strlen("peers = ") - 1 - 1; /* the line's NUL, the newline */

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, CONFIG_FILE);
	config_defaults(&cfg, dir);
	snprintf(cfg.name, sizeof(cfg.name), "Jeju");
	for (size_t first = fits - 4; first <= fits + 4; first++) {
		memset(host, 'h', first - 5);
		snprintf(host + first - 5, sizeof(host) - (first - 5), ":1234"); /* first bytes in all */
		snprintf(peers, sizeof(peers), "%s,10.0.0.2:26656", host);
		int rc = config_set(&cfg, "p2p", "peers", peers, err, sizeof(err));
		if (rc != 0) {
			assert_true(first > fits);
			assert_non_null(strstr(err, "too long"));
			continue;
		}
		assert_true(first <= fits);
		assert_int_equal(config_write(&cfg, path, err, sizeof(err)), 0);
		if (config_load(&back, dir, err, sizeof(err)) != 0)
			fail_msg("an entry of %zu bytes first: written, then %s", first, err);
		assert_string_equal(back.p2p_peers, peers);
		unlink(path);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(set_value_config_ini_cannot_hold),
		cmocka_unit_test(write_value_config_ini_cannot_hold),
		cmocka_unit_test(init_home_creates_parents),
		cmocka_unit_test(long_peer_list_across_lines),
		cmocka_unit_test(long_first_peer_entry),
		cmocka_unit_test(genesis_hash_canonical),
		cmocka_unit_test(hostport),
		cmocka_unit_test(identity_of_home),
		cmocka_unit_test(genesis_create_ordered),
		cmocka_unit_test(join_home),
		cmocka_unit_test(store_keeps_its_genesis),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
