/*
 * Tests for the in-memory store (node/store_mem.c through store.h).
 *
 * The first test runs a few thousand random operations from a fixed seed
 * against LevelDB (in a temporary directory under /tmp) and against a store
 * in memory side by side, and checks that every answer is the same: gets,
 * prefix iterations both ways with seeks, and iterators kept open across
 * writes (both read the snapshot taken when the iterator was made). Keys are
 * short strings over a few bytes, 0x00 and 0xff among them, so that keys are
 * often prefixes of each other and prefixes of 0xff bytes come up. The other
 * tests cover what only memory has: crashes that lose unsynced writes, sync
 * points, reopening by name, and stores of one world kept apart.
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
#include <ftw.h>
#include <cmocka.h>

#include "tenderd/types.h"
#include "store.h"

#define SEED 0x7e11de5eedULL
#define STEPS 4000
#define LIVE_ITERS 4
#define KEY_MAX 5
#define VAL_MAX 24

/* splitmix64: a fixed sequence from SEED */
static uint64_t rnd_state;

static uint64_t rnd(void)
{
	uint64_t z = (rnd_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

struct key {
	uint8_t b[KEY_MAX];
	size_t n;
};

/* A key of up to max bytes, most of them short, over a small alphabet. */
static struct key rnd_key(size_t max)
{
	static const uint8_t alphabet[] = { 0x00, 0x01, 'a', 'b', 0x7f, 0xfe, 0xff };
	struct key k;

	k.n = rnd_below((unsigned)max + 1);
	for (size_t i = 0; i < k.n; i++)
		k.b[i] = alphabet[rnd_below(sizeof(alphabet))];
	return k;
}

/* A seek key: half the time the prefix and a short tail, else any key. */
static struct key rnd_seek_key(const struct key *prefix)
{
	struct key k = rnd_key(KEY_MAX);

	if (rnd_below(2) == 0 && prefix->n + 2 <= KEY_MAX) {
		struct key tail = rnd_key(2);
		memcpy(k.b, prefix->b, prefix->n);
		memcpy(k.b + prefix->n, tail.b, tail.n);
		k.n = prefix->n + tail.n;
	}
	return k;
}

struct pair {
	char dir[64];
	char path[96];
	struct store_mem_world *w;
	struct store *ldb;
	struct store *mem;
	struct store_iter *live[LIVE_ITERS][2]; /* LevelDB, memory */
	unsigned long entries;                  /* entries the iterators compared */
};

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void pair_open(struct pair *p)
{
	char err[256];

	assert_int_equal(store_open(&p->ldb, p->path, err, sizeof(err)), 0);
	assert_int_equal(store_open_mem(&p->mem, p->w, "node0", err, sizeof(err)), 0);
}

static void pair_close(struct pair *p)
{
	for (int i = 0; i < LIVE_ITERS; i++) {
		store_iter_free(p->live[i][0]);
		store_iter_free(p->live[i][1]);
		p->live[i][0] = p->live[i][1] = NULL;
	}
	store_close(p->ldb);
	store_close(p->mem);
	p->ldb = p->mem = NULL;
}

/* One step of both iterators; returns whether they yielded an entry. */
static bool step_both(struct pair *p, struct store_iter *a, struct store_iter *b)
{
	const uint8_t *ka = NULL, *kb = NULL, *va = NULL, *vb = NULL;
	size_t kna = 0, knb = 0, vna = 0, vnb = 0;
	bool ra = store_iter_next(a, &ka, &kna, &va, &vna);
	bool rb = store_iter_next(b, &kb, &knb, &vb, &vnb);

	assert_int_equal(ra, rb);
	assert_int_equal(store_iter_error(a), 0);
	assert_int_equal(store_iter_error(b), 0);
	if (!ra)
		return false;
	assert_int_equal(kna, knb);
	if (kna)
		assert_memory_equal(ka, kb, kna);
	assert_int_equal(vna, vnb);
	if (vna)
		assert_memory_equal(va, vb, vna);
	p->entries++;
	return true;
}

static void iter_new_both(struct pair *p, struct store_iter **a, struct store_iter **b)
{
	struct key prefix = rnd_key(2);
	bool reverse = rnd_below(2);

	*a = store_iter_new(p->ldb, prefix.b, prefix.n, reverse);
	*b = store_iter_new(p->mem, prefix.b, prefix.n, reverse);
}

static void seek_both(struct store_iter *a, struct store_iter *b, const struct key *k)
{
	store_iter_seek(a, k->b, k->n);
	store_iter_seek(b, k->b, k->n);
}

static void op_batch(struct pair *p, struct store_batch *b)
{
	char err[256];
	unsigned n = 1 + rnd_below(6);
	bool sync = rnd_below(4) == 0;

	store_batch_clear(b);
	for (unsigned i = 0; i < n; i++) {
		struct key k = rnd_key(KEY_MAX);
		if (rnd_below(10) < 7) {
			uint8_t v[VAL_MAX];
			size_t vn = rnd_below(VAL_MAX + 1);
			for (size_t j = 0; j < vn; j++)
				v[j] = (uint8_t)rnd();
			store_batch_put(b, k.b, k.n, v, vn);
		} else {
			store_batch_delete(b, k.b, k.n);
		}
	}
	assert_int_equal(store_write(p->ldb, b, sync, err, sizeof(err)), 0);
	assert_int_equal(store_write(p->mem, b, sync, err, sizeof(err)), 0);
}

static void op_get(struct pair *p)
{
	struct key k = rnd_key(KEY_MAX);
	uint8_t *va, *vb;
	size_t na, nb;
	int ra = store_get(p->ldb, k.b, k.n, &va, &na);
	int rb = store_get(p->mem, k.b, k.n, &vb, &nb);

	assert_int_equal(ra, rb);
	assert_int_equal(na, nb);
	if (ra == 0) {
		assert_non_null(va);
		assert_non_null(vb);
		if (na)
			assert_memory_equal(va, vb, na);
	} else {
		assert_int_equal(ra, TD_ENOTFOUND);
		assert_null(va);
		assert_null(vb);
	}
	free(va);
	free(vb);
	assert_int_equal(store_has(p->ldb, k.b, k.n), store_has(p->mem, k.b, k.n));
}

/* A fresh iterator, maybe seeked (once or twice), read to its end. */
static void op_scan(struct pair *p)
{
	struct store_iter *a, *b;
	struct key prefix = rnd_key(2);
	bool reverse = rnd_below(2);

	a = store_iter_new(p->ldb, prefix.b, prefix.n, reverse);
	b = store_iter_new(p->mem, prefix.b, prefix.n, reverse);
	if (rnd_below(2)) {
		struct key k = rnd_seek_key(&prefix);
		seek_both(a, b, &k);
	}
	for (unsigned stop = rnd_below(4) == 0 ? rnd_below(4) : ~0u; step_both(p, a, b);) {
		if (stop-- == 0) {
			struct key k = rnd_seek_key(&prefix);
			seek_both(a, b, &k);
		}
	}
	/* past the end it stays at the end */
	assert_false(step_both(p, a, b));
	store_iter_free(a);
	store_iter_free(b);
}

/* An iterator kept across other operations: make, step, seek or free it. */
static void op_live(struct pair *p)
{
	struct store_iter **slot = p->live[rnd_below(LIVE_ITERS)];
	unsigned what = rnd_below(10);

	if (!slot[0]) {
		iter_new_both(p, &slot[0], &slot[1]);
	} else if (what < 6) {
		for (unsigned i = 1 + rnd_below(5); i > 0 && step_both(p, slot[0], slot[1]); i--)
			;
	} else if (what < 9) {
		struct key empty = { .n = 0 };
		struct key k = rnd_seek_key(&empty);
		seek_both(slot[0], slot[1], &k);
	} else {
		store_iter_free(slot[0]);
		store_iter_free(slot[1]);
		slot[0] = slot[1] = NULL;
	}
}

static void test_same_as_leveldb(void **state)
{
	struct pair p = { 0 };
	struct store_batch *b = store_batch_new();
	unsigned reopens = 0;

	(void)state;
	rnd_state = SEED;
	snprintf(p.dir, sizeof(p.dir), "/tmp/td-store-mem-XXXXXX");
	assert_non_null(mkdtemp(p.dir));
	snprintf(p.path, sizeof(p.path), "%s/db", p.dir);
	p.w = store_mem_world_new();
	pair_open(&p);

	for (int step = 0; step < STEPS; step++) {
		unsigned r = rnd_below(100);
		if (r < 35) {
			op_batch(&p, b);
		} else if (r < 55) {
			op_get(&p);
		} else if (r < 75) {
			op_scan(&p);
		} else if (r < 99) {
			op_live(&p);
		} else {
			pair_close(&p);
			pair_open(&p);
			reopens++;
		}
	}

	/* the whole store, both ways */
	for (int reverse = 0; reverse < 2; reverse++) {
		struct store_iter *x = store_iter_new(p.ldb, NULL, 0, reverse);
		struct store_iter *y = store_iter_new(p.mem, NULL, 0, reverse);
		unsigned long n = 0;
		while (step_both(&p, x, y))
			n++;
		assert_true(n > 100);
		store_iter_free(x);
		store_iter_free(y);
	}
	/* the test compared something */
	assert_true(reopens > 10);
	assert_true(p.entries > 20000);

	pair_close(&p);
	store_batch_free(b);
	store_mem_world_free(p.w);
	nftw(p.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- what only memory has ------------------------------------------------ */

static void write1(struct store *s, const char *k, const char *v, bool sync)
{
	struct store_batch *b = store_batch_new();
	char err[256];

	if (v)
		store_batch_put(b, k, strlen(k), v, strlen(v));
	else
		store_batch_delete(b, k, strlen(k));
	assert_int_equal(store_write(s, b, sync, err, sizeof(err)), 0);
	store_batch_free(b);
}

static void sync_point(struct store *s)
{
	struct store_batch *b = store_batch_new();
	char err[256];

	assert_int_equal(store_write(s, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
}

static void assert_value(const struct store *s, const char *k, const char *want)
{
	uint8_t *v = NULL;
	size_t n = 0;

	if (!want) {
		assert_int_equal(store_get(s, k, strlen(k), &v, &n), TD_ENOTFOUND);
		assert_false(store_has(s, k, strlen(k)));
		return;
	}
	assert_int_equal(store_get(s, k, strlen(k), &v, &n), 0);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(v, want, n);
	free(v);
}

static struct store *open_mem(struct store_mem_world *w, const char *name)
{
	struct store *s = NULL;
	char err[256];

	assert_int_equal(store_open_mem(&s, w, name, err, sizeof(err)), 0);
	assert_non_null(s);
	return s;
}

/* Closes s (its process dies), crashes it and opens it again. */
static struct store *crash(struct store_mem_world *w, struct store *s, const char *name)
{
	store_close(s);
	assert_int_equal(store_mem_crash(w, name), 0);
	return open_mem(w, name);
}

static void test_crash(void **state)
{
	struct store_mem_world *w = store_mem_world_new();
	struct store *s = open_mem(w, "n");

	(void)state;
	/* unsynced writes, deletes included, are seen at once and lost by a crash */
	write1(s, "a", "1", true);
	write1(s, "b", "2", false);
	write1(s, "a", NULL, false);
	assert_value(s, "a", NULL);
	assert_value(s, "b", "2");
	s = crash(w, s, "n");
	assert_value(s, "a", "1");
	assert_value(s, "b", NULL);

	/* a synced write keeps itself and every write before it */
	write1(s, "c", "3", false);
	write1(s, "a", "one", false);
	write1(s, "d", "4", true);
	s = crash(w, s, "n");
	assert_value(s, "a", "one");
	assert_value(s, "c", "3");
	assert_value(s, "d", "4");

	/* only what came after the last sync goes */
	write1(s, "e", "5", true);
	write1(s, "f", "6", false);
	s = crash(w, s, "n");
	assert_value(s, "e", "5");
	assert_value(s, "f", NULL);

	/* sync points: an empty synced batch, and store_mem_sync() on an open store */
	write1(s, "g", "7", false);
	sync_point(s);
	write1(s, "h", "8", false);
	assert_int_equal(store_mem_sync(w, "n"), 0);
	write1(s, "i", "9", false);
	s = crash(w, s, "n");
	assert_value(s, "g", "7");
	assert_value(s, "h", "8");
	assert_value(s, "i", NULL);

	/* a clean close keeps unsynced writes for the next open; a crash later drops them */
	write1(s, "j", "10", false);
	store_close(s);
	s = open_mem(w, "n");
	assert_value(s, "j", "10");
	s = crash(w, s, "n");
	assert_value(s, "j", NULL);

	/* crashing twice is crashing once */
	write1(s, "k", "11", false);
	store_close(s);
	assert_int_equal(store_mem_crash(w, "n"), 0);
	assert_int_equal(store_mem_crash(w, "n"), 0);
	s = open_mem(w, "n");
	assert_value(s, "k", NULL);
	assert_value(s, "a", "one");

	assert_int_equal(store_mem_crash(w, "nope"), TD_ENOTFOUND);
	assert_int_equal(store_mem_sync(w, "nope"), TD_ENOTFOUND);
	store_close(s);
	store_mem_world_free(w);
}

/* The bytes at off in s's records file are want (NULL: the range is past the end). */
static void assert_file(struct store *s, uint64_t off, const char *want, size_t n)
{
	uint8_t *v = NULL;

	if (!want) {
		assert_int_equal(store_file_read(s, off, n, &v), TD_ECORRUPT);
		assert_null(v);
		return;
	}
	assert_int_equal(store_file_read(s, off, n, &v), 0);
	assert_memory_equal(v, want, n);
	free(v);
}

/* The records file: appends are read at once, kept by a synced write, lost by a crash before one. */
static void test_file_crash(void **state)
{
	struct store_mem_world *w = store_mem_world_new();
	struct store *s = open_mem(w, "n");
	char err[64];
	uint64_t a, b;

	(void)state;
	store_file_append(s, "alpha", 5, &a);
	assert_int_equal(a, 0);
	assert_int_equal(store_file_end(s), 5);
	assert_file(s, 0, "alpha", 5);
	write1(s, "k", "1", true);
	store_file_append(s, "beta", 4, &b);
	assert_int_equal(b, 5);
	assert_file(s, 5, "beta", 4);
	write1(s, "l", "2", false);
	s = crash(w, s, "n");
	assert_int_equal(store_file_end(s), 5);
	assert_file(s, 0, "alpha", 5);
	assert_file(s, 5, NULL, 4);

	/* truncation cuts appended bytes; the next append follows */
	store_file_append(s, "gamma", 5, &b);
	assert_int_equal(store_file_truncate(s, 7, err, sizeof(err)), 0);
	assert_int_equal(store_file_end(s), 7);
	assert_file(s, 5, "ga", 2);
	assert_file(s, 5, NULL, 3);
	store_file_append(s, "x", 1, &b);
	assert_int_equal(b, 7);
	store_close(s);
	store_mem_world_free(w);
}

/* store_mem_version() moves with every change of what reads see, and only then. */
static void test_version(void **state)
{
	struct store_mem_world *w = store_mem_world_new();
	struct store *s = open_mem(w, "n");
	uint64_t v0, v1, v2;

	(void)state;
	assert_int_equal(store_mem_version(w, "nope"), 0);
	v0 = store_mem_version(w, "n");
	write1(s, "a", "1", false);
	v1 = store_mem_version(w, "n");
	assert_true(v1 != v0);
	assert_value(s, "a", "1");
	sync_point(s);
	assert_int_equal(store_mem_sync(w, "n"), 0);
	assert_true(store_mem_version(w, "n") == v1); /* reads and syncs change nothing seen */
	write1(s, "a", NULL, false);
	v2 = store_mem_version(w, "n");
	assert_true(v2 != v1);
	write1(s, "zz", NULL, false); /* deleting what is not there changes nothing */
	assert_true(store_mem_version(w, "n") == v2);
	store_close(s);
	assert_int_equal(store_mem_crash(w, "n"), 0);
	assert_true(store_mem_version(w, "n") != v2); /* "a" is back */
	s = open_mem(w, "n");
	assert_value(s, "a", "1");
	store_close(s);
	store_mem_world_free(w);
}

static void test_reopen_by_name(void **state)
{
	struct store_mem_world *w = store_mem_world_new();
	struct store *s = open_mem(w, "node1");
	struct store_batch *b = store_batch_new();
	char err[256], k[16], v[16];

	(void)state;
	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "key%04d", i);
		snprintf(v, sizeof(v), "val%d", i * 7);
		store_batch_put(b, k, strlen(k), v, strlen(v));
	}
	assert_int_equal(store_write(s, b, true, err, sizeof(err)), 0);
	store_batch_free(b);

	/* a second opener is refused while it is open, as LevelDB's lock does */
	struct store *s2 = (struct store *)1;
	err[0] = '\0';
	assert_int_equal(store_open_mem(&s2, w, "node1", err, sizeof(err)), TD_EIO);
	assert_null(s2);
	assert_true(strlen(err) > 0);

	store_close(s);
	s = open_mem(w, "node1");
	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "key%04d", i);
		snprintf(v, sizeof(v), "val%d", i * 7);
		assert_value(s, k, v);
	}
	/* and in order */
	struct store_iter *it = store_iter_new(s, "key", 3, false);
	const uint8_t *kp;
	size_t kn;
	int i = 0;
	while (store_iter_next(it, &kp, &kn, NULL, NULL)) {
		snprintf(k, sizeof(k), "key%04d", i++);
		assert_int_equal(kn, strlen(k));
		assert_memory_equal(kp, k, kn);
	}
	assert_int_equal(i, 500);
	store_iter_free(it);
	store_close(s);
	store_mem_world_free(w);
	store_mem_world_free(NULL);
}

static void test_independent(void **state)
{
	struct store_mem_world *w = store_mem_world_new(), *w2 = store_mem_world_new();
	struct store *a = open_mem(w, "a"), *b = open_mem(w, "b");

	(void)state;
	write1(a, "k", "from a", true);
	write1(b, "k", "from b", true);
	write1(a, "only-a", "x", false);
	write1(b, "only-b", "y", false);
	assert_value(a, "k", "from a");
	assert_value(b, "k", "from b");
	assert_value(a, "only-b", NULL);
	assert_value(b, "only-a", NULL);
	write1(a, "k", NULL, true);
	assert_value(a, "k", NULL);
	assert_value(b, "k", "from b");

	/* a crash of a leaves b's unsynced writes alone */
	write1(a, "lost", "z", false);
	a = crash(w, a, "a");
	assert_value(a, "lost", NULL);
	assert_value(a, "only-a", "x"); /* the synced delete made it durable */
	assert_value(b, "only-b", "y");

	/* the same name in another world is another store */
	struct store *c = open_mem(w2, "a");
	assert_value(c, "only-a", NULL);
	write1(c, "k", "from w2", false);
	assert_value(a, "k", NULL);

	store_close(a);
	store_close(b);
	store_close(c);
	store_mem_world_free(w);
	store_mem_world_free(w2);
}

/* An iterator reads the store as it was when made, through writes and seeks. */
static void test_snapshot(void **state)
{
	struct store_mem_world *w = store_mem_world_new();
	struct store *s = open_mem(w, "n");
	const uint8_t *k, *v;
	size_t kn, vn;

	(void)state;
	write1(s, "p1", "a", true);
	write1(s, "p2", "b", false);
	struct store_iter *it = store_iter_new(s, "p", 1, false);
	write1(s, "p1", NULL, true);
	write1(s, "p0", "new", false);
	write1(s, "p2", "changed", true);

	assert_true(store_iter_next(it, &k, &kn, &v, &vn));
	assert_memory_equal(k, "p1", 2);
	assert_memory_equal(v, "a", 1);
	assert_true(store_iter_next(it, &k, &kn, &v, &vn));
	assert_memory_equal(k, "p2", 2);
	assert_int_equal(vn, 1);
	assert_memory_equal(v, "b", 1);
	assert_false(store_iter_next(it, &k, &kn, &v, &vn));
	store_iter_seek(it, "p", 1);
	assert_true(store_iter_next(it, &k, &kn, &v, &vn));
	assert_memory_equal(k, "p1", 2);
	store_iter_free(it);

	it = store_iter_new(s, "p", 1, true);
	assert_true(store_iter_next(it, &k, &kn, &v, &vn));
	assert_memory_equal(k, "p2", 2);
	assert_int_equal(vn, 7);
	assert_true(store_iter_next(it, &k, &kn, &v, &vn));
	assert_memory_equal(k, "p0", 2);
	assert_false(store_iter_next(it, &k, &kn, &v, &vn));
	store_iter_free(it);
	store_close(s);
	store_mem_world_free(w);
}

/* Many keys in and out: the tree stays ordered and every value stays right. */
static void test_many(void **state)
{
	struct store_mem_world *w = store_mem_world_new();
	struct store *s = open_mem(w, "n");
	struct store_batch *b = store_batch_new();
	char err[256];
	const uint8_t *k, *v;
	size_t kn, vn;

	(void)state;
	/* 20,000 big-endian keys in a scrambled order, then every third deleted */
	for (uint32_t i = 0; i < 20000; i++) {
		uint32_t x = (i * 7919u) % 20000u;
		uint8_t key[4] = { (uint8_t)(x >> 24), (uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x };
		store_batch_put(b, key, 4, &key[3], 1);
	}
	assert_int_equal(store_write(s, b, false, err, sizeof(err)), 0);
	store_batch_clear(b);
	for (uint32_t x = 0; x < 20000; x += 3) {
		uint8_t key[4] = { (uint8_t)(x >> 24), (uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x };
		store_batch_delete(b, key, 4);
	}
	assert_int_equal(store_write(s, b, true, err, sizeof(err)), 0);
	store_batch_free(b);

	for (int reverse = 0; reverse < 2; reverse++) {
		struct store_iter *it = store_iter_new(s, NULL, 0, reverse);
		int64_t prev = reverse ? 20000 : -1;
		unsigned n = 0;
		while (store_iter_next(it, &k, &kn, &v, &vn)) {
			int64_t x = (int64_t)k[0] << 24 | k[1] << 16 | k[2] << 8 | k[3];
			assert_int_equal(kn, 4);
			assert_true(reverse ? x < prev : x > prev);
			assert_true(x % 3 != 0);
			assert_int_equal(vn, 1);
			assert_int_equal(v[0], k[3]);
			prev = x;
			n++;
		}
		assert_int_equal(n, 20000 - (20000 + 2) / 3);
		store_iter_free(it);
	}
	store_close(s);
	store_mem_world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_as_leveldb), cmocka_unit_test(test_crash),
		cmocka_unit_test(test_file_crash),      cmocka_unit_test(test_version),
		cmocka_unit_test(test_reopen_by_name),  cmocka_unit_test(test_independent),
		cmocka_unit_test(test_snapshot),        cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
