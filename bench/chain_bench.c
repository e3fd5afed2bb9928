/*
 * chain_bench: a micro-benchmark of node/chain.c on big blocks, without the
 * network: what one node spends on a block between proposal and commit.
 *
 *   chain_bench [--blocks N] [--records R] [--amend PCT] [--size BYTES]
 *               [--validate V] [--dir DIR] [--dump FILE]
 *
 * For each block, signs its records (new tenders of about --size bytes, like
 * bench/loadgen.c; with --amend, PCT percent of each block are instead
 * amendments of tenders published in earlier blocks or earlier in the same
 * block; not timed), then runs what a validator does: chain_validate V
 * times (default 2: building the block, validating the proposal) and
 * chain_apply once. Prints the time of each phase per block, records/s over
 * all blocks, and the resident memory (VmRSS, VmHWM) at the end, and again
 * after reopening the chain and reading 2,000 tenders, and the time of
 * up to 200 list pages of 100 tenders (chain_list_json). The
 * store lives in a temporary directory (removed at the end) under --dir
 * (default /tmp). Keys and times are fixed, so every run makes the same
 * blocks: --dump writes every key and value of the store at the end as hex
 * lines, to compare the stores two builds write. With CB_TRIM set in the
 * environment, malloc_trim(0) runs after each block (and its time is shown),
 * to tell memory the heap keeps from memory in use.
 *
 * Build (not part of ctest):
 *   gcc -O2 -g -std=gnu11 -Iinclude -Inode bench/chain_bench.c \
 *       build-release/libtdnode.a build-release/libtdproto.a \
 *       $(pkg-config --cflags --libs libuv libsodium msgpack jansson inih) -lleveldb -lm -o /tmp/chain_bench
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <malloc.h>

#include <sodium.h>

#include "tenderd/block.h"
#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "chain.h"
#include "store.h"

static uint8_t CHAIN[TD_HASH_LEN]; /* the genesis hash: what signatures bind */
#define CHAIN_ID "tenderd-bench"
#define PREFIX "ocds-kr2020"
#define GENESIS_MS 1577836800000ull

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg)
{
	fprintf(stderr, "chain_bench: %s: %s\n", what, msg);
	exit(1);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static const char words[] = "construction of a regional public service platform including design development "
			    "security audits data migration and integration with existing civil complaint systems ";

/* Signs text as kind after the ocid's record prev (NULL for a tender). */
static struct td_record *sign(enum td_kind kind, const char *text, uint64_t ms, const uint8_t *prev, const uint8_t *sk)
{
	char err[256];
	json_t *frag = td_json_load(text, strlen(text), err, sizeof(err)), *rel;
	struct td_record *rec = NULL;

	if (!frag)
		die("fragment", err);
	rel = td_release_build(frag, kind, NULL, ms, "Bench agency", err, sizeof(err));
	if (!rel)
		die("build", err);
	if (td_record_sign(&rec, kind, rel, ms, prev, CHAIN, sk, err, sizeof(err)) != 0)
		die("sign", err);
	json_decref(rel);
	json_decref(frag);
	return rec;
}

/* The kB of a line of /proc/self/status ("VmRSS", "VmHWM"); 0 if absent. */
static long proc_kb(const char *name)
{
	char line[256];
	long v = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, strlen(name)) && line[strlen(name)] == ':')
			v = atol(line + strlen(name) + 1);
	fclose(f);
	return v;
}

struct gen {
	uint8_t sk[TD_SECKEY_LEN];
	uint64_t ms, n_tenders;
	uint8_t (*last)[TD_HASH_LEN]; /* per tender: the id of its latest record (what the next one names) */
	uint64_t cap;
	unsigned amend;
	size_t size;
};

/* The records of block b (0-based), records of them. */
static struct td_record **gen_block(struct gen *gn, unsigned b, unsigned records)
{
	struct td_record **recs = calloc(records, sizeof(*recs));
	char text[8192];

	for (unsigned i = 0; i < records; i++) {
		bool am = gn->n_tenders > 0 && (uint64_t)(b * records + i) * 7919 % 100 < gn->amend;
		uint64_t t;
		int n;
		gn->ms += 1;
		if (am) {
			t = (uint64_t)(b * records + i) * 104729 % gn->n_tenders;
			n = snprintf(text, sizeof(text),
				     "{\"ocid\":\"" PREFIX "-bench-%" PRIu64 "\",\"id\":\"r-%" PRIu64
				     "\",\"tender\":{\"status\":\"active\",\"tenderPeriod\":{\"endDate\":"
				     "\"2020-04-10T18:00:00+09:00\"},\"amendments\":[{\"id\":\"a-%" PRIu64
				     "\",\"amendsReleaseID\":\"r-%" PRIu64 "\",\"rationale\":\"",
				     t, gn->ms, gn->ms, t);
		} else {
			t = gn->n_tenders++;
			if (t == gn->cap) {
				gn->cap = gn->cap ? 2 * gn->cap : 1024;
				gn->last = realloc(gn->last, gn->cap * TD_HASH_LEN);
				if (!gn->last)
					die("memory", "out of memory");
			}
			n = snprintf(text, sizeof(text),
				     "{\"ocid\":\"" PREFIX "-bench-%" PRIu64 "\",\"id\":\"r-%" PRIu64
				     "\",\"tender\":{\"id\":\"t-%" PRIu64 "\",\"title\":\"Benchmark tender %" PRIu64
				     "\",\"status\":\"active\",\"value\":{\"amount\":%" PRIu64
				     ".50,\"currency\":\"KRW\"},\"procurementMethod\":\"open\","
				     "\"mainProcurementCategory\":\"services\",\"tenderPeriod\":{\"startDate\":"
				     "\"2020-03-09T09:00:00+09:00\",\"endDate\":\"2020-03-27T18:00:00+09:00\"},"
				     "\"description\":\"",
				     t, t, t, t, 1000000 + t * 37);
		}
		for (size_t w = 0; (size_t)n + 3 < gn->size && (size_t)n < sizeof(text) - 8; w++)
			text[n++] = words[w % (sizeof(words) - 1)];
		snprintf(text + n, sizeof(text) - (size_t)n, am ? "\"}]}}" : "\"}}");
		recs[i] = sign(am ? TD_KIND_AMENDMENT : TD_KIND_TENDER, text, gn->ms, am ? gn->last[t] : NULL, gn->sk);
		memcpy(gn->last[t], recs[i]->id, TD_HASH_LEN);
	}
	return recs;
}

static void dump_store(const char *path, const char *file)
{
	struct store *st;
	struct store_iter *it;
	const uint8_t *k, *v;
	size_t kn, vn;
	char err[256];
	FILE *f = fopen(file, "w");

	if (!f || store_open(&st, path, err, sizeof(err)) != 0)
		die(file, "cannot dump");
	it = store_iter_new(st, NULL, 0, false);
	while (store_iter_next(it, &k, &kn, &v, &vn)) {
		for (size_t j = 0; j < kn; j++)
			fprintf(f, "%02x", k[j]);
		fputc('=', f);
		for (size_t j = 0; j < vn; j++)
			fprintf(f, "%02x", v[j]);
		fputc('\n', f);
	}
	store_iter_free(it);
	store_close(st);
	fclose(f);
}

int main(int argc, char **argv)
{
	unsigned blocks = 4, records = 4096, validate = 2;
	const char *base = "/tmp", *dump = NULL;
	char dir[256], path[300], err[256];
	struct td_genesis g = { 0 };
	struct gen gn = { .ms = GENESIS_MS + 1000, .size = 1024 };
	struct chain *c;
	double t_val = 0, t_app = 0, t_sign = 0, t_trim = 0, t0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--blocks"))
			blocks = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--records"))
			records = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--amend"))
			gn.amend = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--size"))
			gn.size = (size_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--validate"))
			validate = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--dump"))
			dump = argv[i + 1];
		else if (!strcmp(argv[i], "--dir"))
			base = argv[i + 1];
		else
			die("usage", "see the comment at the top of bench/chain_bench.c");
	}
	if (sodium_init() < 0 || records == 0 || records > TD_BLOCK_RECORDS_MAX || gn.amend > 100 || gn.size > 4096)
		die("usage", "bad arguments");
	snprintf(g.chain_id, sizeof(g.chain_id), CHAIN_ID);
	snprintf(g.ocid_prefix, sizeof(g.ocid_prefix), PREFIX);
	g.time_ms = GENESIS_MS;
	g.n = 1;
	g.v = calloc(1, sizeof(*g.v));
	snprintf(g.v[0].name, sizeof(g.v[0].name), "bench");
	{
		uint8_t seed[crypto_sign_SEEDBYTES] = { 0 };
		crypto_sign_seed_keypair(g.v[0].pk, gn.sk, seed);
	}
	td_genesis_seal(&g);
	memcpy(CHAIN, g.hash, TD_HASH_LEN);

	snprintf(dir, sizeof(dir), "%s/td-chainbench-XXXXXX", base);
	if (!mkdtemp(dir))
		die(dir, "mkdtemp");
	snprintf(path, sizeof(path), "%s/chain", dir);
	if (chain_open(&c, path, &g, err, sizeof(err)) != 0)
		die("open", err);

	for (unsigned b = 0; b < blocks; b++) {
		struct td_record **arr;
		struct td_block *blk;
		struct td_commit cm = { 0 };
		struct td_commit_sig sig;
		double t1, t2, t3;

		t0 = now_s();
		arr = gen_block(&gn, b, records);
		t_sign += now_s() - t0;
		blk = td_block_new(chain_height(c) + 1, chain_last_hash(c), chain_last_time(c) + 1000, g.v[0].pk,
				   g.validators_hash, arr, records);
		cm.height = blk->hdr.height;
		memcpy(cm.block_hash, blk->hash, TD_HASH_LEN);
		cm.n_sigs = 1;
		cm.sigs = &sig;
		sig.validator = 0;
		td_vote_sign(sig.sig, CHAIN, TD_VOTE_PRECOMMIT, cm.height, 0, blk->hash, gn.sk);

		t1 = now_s();
		for (unsigned v = 0; v < validate; v++)
			if (chain_validate(c, blk, err, sizeof(err)) != 0)
				die("validate", err);
		t2 = now_s();
		if (chain_apply(c, blk, &cm, err, sizeof(err)) != 0)
			die("apply", err);
		t3 = now_s();
		t_val += t2 - t1;
		t_app += t3 - t2;
		if (blocks <= 16 || b % (blocks / 16) == 0)
			printf("block %u: %ux validate %.1f ms, apply %.1f ms\n", b + 1, validate, (t2 - t1) * 1e3,
			       (t3 - t2) * 1e3);
		td_block_free(blk);
		if (getenv("CB_TRIM")) {
			double tt = now_s();
			malloc_trim(0);
			t_trim += now_s() - tt;
		}
	}
	{
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		printf("total: %u records (signed in %.1f s), validate %.2f s, apply %.2f s, %.0f records/s "
		       "(%ux validate + apply); process CPU %.2f s (all threads, signing included); "
		       "VmRSS %ld MB, VmHWM %ld MB\n",
		       blocks * records, t_sign, t_val, t_app, blocks * records / (t_val + t_app), validate,
		       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
		       proc_kb("VmRSS") / 1024, proc_kb("VmHWM") / 1024);
	}
	if (getenv("CB_TRIM"))
		printf("malloc_trim after each block: %.1f ms in all\n", t_trim * 1e3);
	chain_close(c);
	{
		struct mallinfo2 mi = mallinfo2();
		printf("closed: VmRSS %ld MB; malloc: %zu MB in use, %zu MB free in the heap, %zu MB mmapped\n",
		       proc_kb("VmRSS") / 1024, mi.uordblks >> 20, mi.fordblks >> 20, mi.hblkhd >> 20);
	}

	t0 = now_s();
	if (chain_open(&c, path, &g, err, sizeof(err)) != 0)
		die("reopen", err);
	printf("reopened in %.1f ms: VmRSS %ld MB\n", (now_s() - t0) * 1e3, proc_kb("VmRSS") / 1024);
	t0 = now_s();
	for (unsigned i = 0; i < 2000 && gn.n_tenders; i++) {
		char ocid[64];
		json_t *j;
		snprintf(ocid, sizeof(ocid), PREFIX "-bench-%" PRIu64, (uint64_t)i * 7919 % gn.n_tenders);
		if (chain_tender_json(c, ocid, &j) != 0)
			die(ocid, "no such tender");
		json_decref(j);
	}
	{
		struct mallinfo2 mi = mallinfo2();
		printf("2000 tender reads in %.1f ms: VmRSS %ld MB; malloc: %zu MB in use, %zu MB free, %zu MB mmapped\n",
		       (now_s() - t0) * 1e3, proc_kb("VmRSS") / 1024, mi.uordblks >> 20, mi.fordblks >> 20,
		       mi.hblkhd >> 20);
	}
	{
		char cursor[1024] = "";
		unsigned pages = 0;
		size_t listed = 0;
		t0 = now_s();
		while (pages < 200) {
			json_t *j, *next;
			if (chain_list_json(c, NULL, 100, cursor[0] ? cursor : NULL, &j) != 0)
				die("list", "a list page failed");
			listed += json_array_size(json_object_get(j, "tenders"));
			next = json_object_get(j, "next_cursor");
			pages++;
			if (!json_is_string(next)) {
				json_decref(j);
				break;
			}
			snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
			json_decref(j);
		}
		printf("%u list pages of up to 100 (%zu tenders, newest first) in %.1f ms: %.2f ms a page\n", pages,
		       listed, (now_s() - t0) * 1e3, pages ? (now_s() - t0) * 1e3 / pages : 0.0);
	}
	chain_close(c);

	if (dump)
		dump_store(path, dump);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(g.v);
	return 0;
}
