/*
 * Unit tests of the node's config files (key permissions, INI options,
 * genesis) and the mempool (dedupe, bounds, order, removal).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "config.h"
#include "mempool.h"
#include "tenderd/json.h"
#include "tenderd/record.h"

static char home[64];

static int setup_home(void **state)
{
	(void)state;
	snprintf(home, sizeof(home), "/tmp/td-node-XXXXXX");
	if (!mkdtemp(home))
		return -1;
	return 0;
}

static int teardown_home(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_init_and_load(void **state)
{
	char err[512], path[PATH_MAX + 32];
	struct config cfg;
	struct td_genesis g;
	uint8_t sk[TD_SECKEY_LEN];
	struct stat st;
	(void)state;

	assert_int_equal(config_init_home(home, "Jeju Special Self-Governing Province", "test-chain", "ocds-kr2020",
					  err, sizeof(err)),
			 0);
	/* A second init refuses to overwrite. */
	assert_int_equal(config_init_home(home, "Other", "test-chain", "ocds-kr2020", err, sizeof(err)), TD_EEXIST);

	snprintf(path, sizeof(path), "%s/%s", home, KEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(config_key_load(path, sk, err, sizeof(err)), 0);

	/* Readable by others: refused, and the message says how to fix it. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(config_key_load(path, sk, err, sizeof(err)), TD_EPERM);
	assert_non_null(strstr(err, "chmod 600"));
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(config_key_load(path, sk, err, sizeof(err)), TD_EPERM);
	assert_int_equal(chmod(path, 0600), 0);

	assert_int_equal(config_load(&cfg, home, err, sizeof(err)), 0);
	assert_string_equal(cfg.name, "Jeju Special Self-Governing Province");
	assert_int_equal(cfg.block_delay_ms, 10);

	snprintf(path, sizeof(path), "%s/%s", home, GENESIS_FILE);
	assert_int_equal(config_genesis_load(&g, path, err, sizeof(err)), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.chain_id, "test-chain");
	assert_string_equal(g.ocid_prefix, "ocds-kr2020");
	assert_memory_equal(g.v[0].pk, sk + 32, TD_PUBKEY_LEN);
	td_genesis_free(&g);
}

static void test_config_refusals(void **state)
{
	struct config cfg;
	char err[512];
	(void)state;

	config_defaults(&cfg, "/x");
	assert_string_equal(cfg.socket_path, "/x/tenderd.sock");
	assert_int_equal(config_set(&cfg, "mempool", "max_records", "12", err, sizeof(err)), 0);
	assert_int_equal(cfg.mempool_max_records, 12);
	assert_int_equal(config_set(&cfg, "mempool", "max_records", "-1", err, sizeof(err)), TD_EINVAL);
	assert_non_null(strstr(err, "mempool.max_records"));
	assert_int_equal(config_set(&cfg, "mempool", "max_records", "12x", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "log", "level", "loud", err, sizeof(err)), TD_EINVAL);
	assert_int_equal(config_set(&cfg, "nosuch", "key", "1", err, sizeof(err)), TD_EINVAL);
	assert_non_null(strstr(err, "unknown option nosuch.key"));
	assert_int_equal(config_set(&cfg, "rpc", "socket", "/run/t.sock", err, sizeof(err)), 0);
	assert_string_equal(cfg.socket_path, "/run/t.sock");
}

/* The genesis hash the mempool's records are signed for (the mempool checks no signature). */
static const uint8_t CHAIN[TD_HASH_LEN] = "test-chain";

/* A signed tender record for ocid "ocds-kr2020-mp-<i>" with extra bytes of description. */
static struct td_record *make_record(int i, size_t extra, const uint8_t sk[static TD_SECKEY_LEN])
{
	char text[4096], err[256], desc[2048];
	struct td_record *rec = NULL;
	memset(desc, 'x', extra);
	desc[extra] = '\0';
	snprintf(text, sizeof(text),
		 "{\"ocid\":\"ocds-kr2020-mp-%d\",\"tender\":{\"id\":\"t%d\",\"title\":\"T\",\"status\":\"active\","
		 "\"description\":\"%s\"}}",
		 i, i, desc);
	json_t *frag = td_json_load(text, strlen(text), err, sizeof(err));
	assert_non_null(frag);
	json_t *full = td_release_build(frag, TD_KIND_TENDER, NULL, 1583712000000ull + (uint64_t)i, "Agency", err,
					sizeof(err));
	assert_non_null(full);
	assert_int_equal(td_record_sign(&rec, TD_KIND_TENDER, full, 1583712000000ull + (uint64_t)i, NULL, CHAIN, sk,
					err, sizeof(err)),
			 0);
	json_decref(frag);
	json_decref(full);
	return rec;
}

static void test_mempool(void **state)
{
	uint8_t pk[TD_PUBKEY_LEN], sk[TD_SECKEY_LEN];
	struct td_record *recs[8], *peek[8];
	char err[256];
	(void)state;

	crypto_sign_keypair(pk, sk);
	struct mempool *mp = mempool_new(3, 1 << 20);
	for (int i = 0; i < 3; i++) {
		recs[i] = make_record(i, 10, sk);
		assert_int_equal(mempool_add(mp, recs[i], err, sizeof(err)), 0);
	}
	assert_int_equal(mempool_count(mp), 3);
	/* Full by count: said before a record is built, and refused, caller keeps the record. */
	assert_true(mempool_full(mp, err, sizeof(err)));
	assert_non_null(strstr(err, "mempool full"));
	struct td_record *extra = make_record(3, 10, sk);
	assert_int_equal(mempool_add(mp, extra, err, sizeof(err)), TD_EFULL);
	assert_non_null(strstr(err, "mempool full"));
	/* The same record again: duplicate. */
	struct td_record *again = make_record(0, 10, sk);
	assert_memory_equal(again->id, recs[0]->id, TD_HASH_LEN);
	assert_true(mempool_has(mp, again->id));
	assert_int_equal(mempool_add(mp, again, err, sizeof(err)), TD_EEXIST);
	td_record_free(again);

	/* Arrival order, bounded by count and bytes. */
	assert_int_equal(mempool_peek(mp, peek, 8, 1 << 20), 3);
	assert_ptr_equal(peek[0], recs[0]);
	assert_ptr_equal(peek[2], recs[2]);
	assert_int_equal(mempool_peek(mp, peek, 2, 1 << 20), 2);
	/* Each record costs its bytes plus what a block's encoding adds to it. */
	assert_int_equal(mempool_peek(mp, peek, 8, recs[0]->len + recs[1]->len + 2 * TD_BLOCK_ITEM_OVERHEAD), 2);
	assert_int_equal(mempool_peek(mp, peek, 8, recs[0]->len + recs[1]->len + 2 * TD_BLOCK_ITEM_OVERHEAD - 1), 1);

	/* Removing the middle keeps order; then there is room again. */
	mempool_remove(mp, recs[1]->id);
	assert_int_equal(mempool_count(mp), 2);
	assert_false(mempool_full(mp, err, sizeof(err)));
	assert_int_equal(mempool_peek(mp, peek, 8, 1 << 20), 2);
	assert_ptr_equal(peek[1], recs[2]);
	assert_int_equal(mempool_add(mp, extra, err, sizeof(err)), 0);
	assert_int_equal(mempool_bytes(mp), recs[0]->len + recs[2]->len + extra->len);

	/* A second tender for a pending ocid is refused even with another body. */
	struct td_record *twin = make_record(2, 20, sk);
	assert_int_equal(mempool_add(mp, twin, err, sizeof(err)), TD_EEXIST);
	assert_non_null(strstr(err, "ocds-kr2020-mp-2"));
	td_record_free(twin);
	mempool_free(mp);

	/* Full by memory: a record's parsed release counts, not only its encoding. */
	struct td_record *big1 = make_record(10, 900, sk), *big2 = make_record(11, 900, sk);
	const uint64_t heap = td_json_heap(big1->release);
	assert_true(heap > 900); /* its strings alone hold the 900 bytes */
	mp = mempool_new(100, big1->len + 256);
	assert_int_equal(mempool_add(mp, big1, err, sizeof(err)), TD_EFULL);
	assert_non_null(strstr(err, "in memory"));
	mempool_free(mp);
	mp = mempool_new(100, 2 * (big1->len + heap));
	assert_int_equal(mempool_add(mp, big1, err, sizeof(err)), 0);
	assert_int_equal(mempool_bytes(mp), big1->len);
	assert_true(mempool_mem(mp) >= big1->len + heap);
	assert_int_equal(mempool_add(mp, big2, err, sizeof(err)), TD_EFULL);
	assert_true(mempool_full(mp, err, sizeof(err))); /* another of the same size would not fit */
	mempool_remove(mp, big1->id);
	assert_false(mempool_full(mp, err, sizeof(err)));
	assert_int_equal(mempool_mem(mp), 0);
	assert_int_equal(mempool_add(mp, big2, err, sizeof(err)), 0);
	mempool_free(mp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_and_load, setup_home, teardown_home),
		cmocka_unit_test(test_config_refusals),
		cmocka_unit_test(test_mempool),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
