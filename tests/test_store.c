/*
 * Tests for node/store.c: get/put through batches, atomicity of a batch,
 * persistence across reopen, prefix iteration in both directions and seeks,
 * damage to a table file reported rather than skipped, and LevelDB's
 * background thread running nicer than the thread that opened the store.
 * Each test works in its own temporary directory under /tmp.
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
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "tenderd/types.h"
#include "store.h"

struct fixture {
	char dir[64];
	char path[96];
	struct store *s;
};

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/td-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/db", f->dir);
	assert_int_equal(store_open(&f->s, f->path, err, sizeof(err)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->s);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void reopen(struct fixture *f)
{
	char err[256];

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(&f->s, f->path, err, sizeof(err)), 0);
}

static void put1(struct store *s, const char *k, const char *v)
{
	struct store_batch *b = store_batch_new();
	char err[256];

	store_batch_put(b, k, strlen(k), v, strlen(v));
	assert_int_equal(store_write(s, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
}

static void assert_value(struct store *s, const char *k, const char *want)
{
	uint8_t *v = NULL;
	size_t n = 0;

	assert_int_equal(store_get(s, k, strlen(k), &v, &n), 0);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(v, want, n);
	free(v);
}

static void test_put_get(void **state)
{
	struct fixture *f = *state;
	uint8_t *v = (uint8_t *)"x";
	size_t n = 7;

	assert_int_equal(store_get(f->s, "a", 1, &v, &n), TD_ENOTFOUND);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_false(store_has(f->s, "a", 1));

	put1(f->s, "a", "alpha");
	put1(f->s, "b", "");
	assert_value(f->s, "a", "alpha");
	assert_true(store_has(f->s, "a", 1));
	/* an empty value is present and non-NULL */
	assert_int_equal(store_get(f->s, "b", 1, &v, &n), 0);
	assert_non_null(v);
	assert_int_equal(n, 0);
	free(v);

	/* binary keys with NUL bytes are distinct from their prefixes */
	static const uint8_t k1[3] = { 'k', 0, 1 }, k2[2] = { 'k', 0 };
	struct store_batch *b = store_batch_new();
	char err[256];
	store_batch_put(b, k1, sizeof(k1), "one", 3);
	store_batch_put(b, k2, sizeof(k2), "two", 3);
	assert_int_equal(store_batch_count(b), 2);
	assert_int_equal(store_write(f->s, b, false, err, sizeof(err)), 0);
	store_batch_free(b);
	assert_int_equal(store_get(f->s, k1, sizeof(k1), &v, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "one", 3);
	free(v);
	assert_int_equal(store_get(f->s, k2, sizeof(k2), &v, &n), 0);
	assert_memory_equal(v, "two", 3);
	free(v);
	assert_false(store_has(f->s, "k", 1));

	/* overwrite and delete */
	put1(f->s, "a", "again");
	assert_value(f->s, "a", "again");
	b = store_batch_new();
	store_batch_delete(b, "a", 1);
	assert_int_equal(store_write(f->s, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
	assert_false(store_has(f->s, "a", 1));
}

static void test_batch(void **state)
{
	struct fixture *f = *state;
	struct store_batch *b = store_batch_new();
	char err[256];

	put1(f->s, "gone", "soon");
	store_batch_put(b, "x1", 2, "1", 1);
	store_batch_put(b, "x2", 2, "2", 1);
	store_batch_delete(b, "gone", 4);
	store_batch_put(b, "x1", 2, "one", 3); /* later operations win */
	/* nothing is visible before the write */
	assert_false(store_has(f->s, "x1", 2));
	assert_false(store_has(f->s, "x2", 2));
	assert_true(store_has(f->s, "gone", 4));
	assert_int_equal(store_write(f->s, b, true, err, sizeof(err)), 0);
	assert_value(f->s, "x1", "one");
	assert_value(f->s, "x2", "2");
	assert_false(store_has(f->s, "gone", 4));

	/* a cleared batch writes nothing and can be reused */
	store_batch_clear(b);
	assert_int_equal(store_batch_count(b), 0);
	store_batch_put(b, "x3", 2, "3", 1);
	assert_int_equal(store_write(f->s, b, true, err, sizeof(err)), 0);
	assert_value(f->s, "x3", "3");
	store_batch_free(b);
	store_batch_free(NULL);

	/* an unwritten batch leaves no trace after reopen */
	b = store_batch_new();
	store_batch_put(b, "never", 5, "v", 1);
	store_batch_free(b);
	reopen(f);
	assert_false(store_has(f->s, "never", 5));
	assert_value(f->s, "x1", "one");
}

static void test_reopen(void **state)
{
	struct fixture *f = *state;
	struct store_batch *b = store_batch_new();
	char err[256], k[16], v[16];

	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "key%04d", i);
		snprintf(v, sizeof(v), "val%d", i * 7);
		store_batch_put(b, k, strlen(k), v, strlen(v));
	}
	assert_int_equal(store_write(f->s, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
	reopen(f);
	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "key%04d", i);
		snprintf(v, sizeof(v), "val%d", i * 7);
		assert_value(f->s, k, v);
	}
	/* a second opener of the same directory is refused while it is open */
	struct store *s2 = (struct store *)1;
	assert_int_equal(store_open(&s2, f->path, err, sizeof(err)), TD_EIO);
	assert_null(s2);
	assert_true(strlen(err) > 0);
	store_close(NULL);
}

/* The nice value of thread tid of this process, from /proc (field 19 of its stat line). */
static int thread_nice(const char *tid)
{
	char path[64], line[1024], *p;
	FILE *f;
	int nice = 0, field = 2;

	snprintf(path, sizeof(path), "/proc/self/task/%s/stat", tid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	p = strrchr(line, ')'); /* the name may hold spaces; the fields after it do not */
	assert_non_null(p);
	for (p = strtok(p + 1, " "); p; p = strtok(NULL, " "))
		if (++field == 19) {
			nice = atoi(p);
			break;
		}
	assert_int_equal(field, 19);
	return nice;
}

/*
 * After an open, the process has a thread besides this one, LevelDB's
 * background thread (flushes and compactions), STORE_COMPACTION_NICE nicer
 * than this thread (at most 19); this thread's own nice value is unchanged.
 * Writing enough to fill several memtables then works as before (the
 * thread flushes them).
 */
static void test_background_nice(void **state)
{
	struct fixture *f = *state;
	const int self = (int)gettid();
	int mine, want, found = 0, others = 0;
	struct dirent *e;
	DIR *d;

	errno = 0;
	mine = getpriority(PRIO_PROCESS, (id_t)self);
	assert_int_equal(errno, 0);
	want = mine + STORE_COMPACTION_NICE > 19 ? 19 : mine + STORE_COMPACTION_NICE;
	d = opendir("/proc/self/task");
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (atoi(e->d_name) == self) {
			assert_int_equal(thread_nice(e->d_name), mine);
			continue;
		}
		others++;
		if (thread_nice(e->d_name) == want)
			found++;
	}
	closedir(d);
	assert_true(others >= 1);
	assert_int_equal(found, 1);

	/* 40 MiB through 16 MiB memtables: flushed by that thread, all readable after a reopen */
	struct store_batch *b = store_batch_new();
	char err[256], k[32], v[1024];
	memset(v, 'x', sizeof(v));
	for (int i = 0; i < 40 * 1024; i++) {
		snprintf(k, sizeof(k), "k%08d", i);
		store_batch_put(b, k, strlen(k), v, sizeof(v));
		if (i % 1024 == 1023) {
			assert_int_equal(store_write(f->s, b, false, err, sizeof(err)), 0);
			store_batch_clear(b);
		}
	}
	store_batch_free(b);
	reopen(f);
	for (int i = 0; i < 40 * 1024; i += 997) {
		uint8_t *got = NULL;
		size_t n = 0;
		snprintf(k, sizeof(k), "k%08d", i);
		assert_int_equal(store_get(f->s, k, strlen(k), &got, &n), 0);
		assert_int_equal(n, sizeof(v));
		assert_memory_equal(got, v, n);
		free(got);
	}
}

/* Collects the keys an iterator yields, joined by ',' (keys here are text). */
static void collect(struct store_iter *it, char *out, size_t cap)
{
	const uint8_t *k, *v;
	size_t kn, vn;

	out[0] = '\0';
	while (store_iter_next(it, &k, &kn, &v, &vn)) {
		size_t n = strlen(out);
		assert_true(n + kn + 2 < cap);
		if (n)
			out[n++] = ',';
		memcpy(out + n, k, kn);
		out[n + kn] = '\0';
		/* values were written as the key in upper case */
		for (size_t i = 0; i < kn; i++)
			assert_int_equal(v[i], (k[i] >= 'a' && k[i] <= 'z') ? k[i] - 32 : k[i]);
		assert_int_equal(vn, kn);
	}
	assert_int_equal(store_iter_error(it), 0);
}

static void fill(struct store *s)
{
	static const char *keys[] = { "a", "b1", "b2", "b3", "ba", "c", "bz", "b" };
	struct store_batch *b = store_batch_new();
	char err[256];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char up[8];
		size_t n = strlen(keys[i]);
		for (size_t j = 0; j <= n; j++)
			up[j] = (keys[i][j] >= 'a' && keys[i][j] <= 'z') ? keys[i][j] - 32 : keys[i][j];
		store_batch_put(b, keys[i], n, up, n);
	}
	assert_int_equal(store_write(s, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
}

/* The records file on disk: appends are read from the buffer, then from the file, and kept across a reopen. */
static void test_file(void **state)
{
	struct fixture *f = *state;
	char big[100000], err[256];
	uint64_t a, b;
	uint8_t *v;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 31 + 7);
	store_file_append(f->s, "head", 4, &a);
	store_file_append(f->s, big, sizeof(big), &b);
	assert_int_equal(a, 0);
	assert_int_equal(b, 4);
	assert_int_equal(store_file_end(f->s), 4 + sizeof(big));
	assert_int_equal(store_file_read(f->s, 2, 10, &v), 0); /* across the two, from the buffer */
	assert_memory_equal(v, "ad", 2);
	assert_memory_equal(v + 2, big, 8);
	free(v);
	put1(f->s, "k", "v"); /* writes the buffer first */
	assert_int_equal(store_file_read(f->s, b, sizeof(big), &v), 0);
	assert_memory_equal(v, big, sizeof(big));
	free(v);
	assert_int_equal(store_file_read(f->s, b, sizeof(big) + 1, &v), TD_ECORRUPT);
	assert_null(v);
	reopen(f);
	assert_int_equal(store_file_end(f->s), 4 + sizeof(big));
	assert_int_equal(store_file_read(f->s, 0, 4, &v), 0);
	assert_memory_equal(v, "head", 4);
	free(v);
	/* a tail cut at open, then appends follow it */
	assert_int_equal(store_file_truncate(f->s, 104, err, sizeof(err)), 0);
	reopen(f);
	assert_int_equal(store_file_end(f->s), 104);
	store_file_append(f->s, "tail", 4, &a);
	assert_int_equal(a, 104);
	put1(f->s, "k", "w");
	assert_int_equal(store_file_read(f->s, 100, 8, &v), 0);
	assert_memory_equal(v, big + 96, 4);
	assert_memory_equal(v + 4, "tail", 4);
	free(v);
}

static void test_iter_forward(void **state)
{
	struct fixture *f = *state;
	struct store_iter *it;
	char got[256];

	fill(f->s);
	it = store_iter_new(f->s, "b", 1, false);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "b,b1,b2,b3,ba,bz");
	/* seek inside the range: first key >= "b2" */
	store_iter_seek(it, "b2", 2);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "b2,b3,ba,bz");
	store_iter_seek(it, "b25", 3);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "b3,ba,bz");
	/* before the range: all of it; after: nothing */
	store_iter_seek(it, "a", 1);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "b,b1,b2,b3,ba,bz");
	store_iter_seek(it, "c", 1);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "");
	store_iter_free(it);

	it = store_iter_new(f->s, NULL, 0, false);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "a,b,b1,b2,b3,ba,bz,c");
	store_iter_free(it);

	it = store_iter_new(f->s, "d", 1, false);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "");
	store_iter_free(it);
	store_iter_free(NULL);
}

static void test_iter_reverse(void **state)
{
	struct fixture *f = *state;
	struct store_iter *it;
	char got[256];

	fill(f->s);
	it = store_iter_new(f->s, "b", 1, true);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "bz,ba,b3,b2,b1,b");
	/* seek: last key <= the key */
	store_iter_seek(it, "b2", 2);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "b2,b1,b");
	store_iter_seek(it, "b25", 3);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "b2,b1,b");
	/* after the range: all of it; before: nothing */
	store_iter_seek(it, "c", 1);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "bz,ba,b3,b2,b1,b");
	store_iter_seek(it, "a", 1);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "");
	store_iter_free(it);

	/* the last prefix in the database and the whole database */
	it = store_iter_new(f->s, "c", 1, true);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "c");
	store_iter_free(it);
	it = store_iter_new(f->s, NULL, 0, true);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "c,bz,ba,b3,b2,b1,b,a");
	store_iter_free(it);
	it = store_iter_new(f->s, "0", 1, true);
	collect(it, got, sizeof(got));
	assert_string_equal(got, "");
	store_iter_free(it);
}

/* Big-endian binary keys, a 0xff prefix (no successor) and reverse order. */
static void test_iter_binary(void **state)
{
	struct fixture *f = *state;
	struct store_batch *b = store_batch_new();
	char err[256];
	const uint8_t *k;
	size_t kn;

	for (uint32_t i = 0; i < 300; i += 7) {
		uint8_t key[5] = { 0xff, (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };
		store_batch_put(b, key, sizeof(key), "", 0);
		key[0] = 0xfe;
		store_batch_put(b, key, sizeof(key), "", 0);
	}
	assert_int_equal(store_write(f->s, b, true, err, sizeof(err)), 0);
	store_batch_free(b);

	static const uint8_t pff = 0xff, pfe = 0xfe;
	struct store_iter *it = store_iter_new(f->s, &pff, 1, true);
	int64_t prev = 1 << 30, count = 0;
	while (store_iter_next(it, &k, &kn, NULL, NULL)) {
		assert_int_equal(kn, 5);
		assert_int_equal(k[0], 0xff);
		int64_t v = (int64_t)k[1] << 24 | k[2] << 16 | k[3] << 8 | k[4];
		assert_true(v < prev);
		prev = v;
		count++;
	}
	assert_int_equal(prev, 0);
	assert_int_equal(count, (300 + 6) / 7);
	store_iter_free(it);

	it = store_iter_new(f->s, &pfe, 1, true);
	count = 0;
	prev = 1 << 30;
	while (store_iter_next(it, &k, &kn, NULL, NULL)) {
		assert_int_equal(k[0], 0xfe);
		int64_t v = (int64_t)k[1] << 24 | k[2] << 16 | k[3] << 8 | k[4];
		assert_true(v < prev);
		prev = v;
		count++;
	}
	assert_int_equal(count, (300 + 6) / 7);
	store_iter_free(it);
}

/* Flips n bytes at the middle of the one table file (.ldb) of the store at path. */
static void damage_table(const char *path, size_t n)
{
	char name[512] = "";
	struct dirent *e;
	DIR *d = opendir(path);
	FILE *fp;
	long size;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".ldb"))
			snprintf(name, sizeof(name), "%s/%s", path, e->d_name);
	closedir(d);
	assert_true(name[0] != '\0');
	fp = fopen(name, "r+b");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	size = ftell(fp);
	assert_true(size > (long)(4 * n));
	for (long off = size / 2; off < size / 2 + (long)n; off++) {
		int ch;
		assert_int_equal(fseek(fp, off, SEEK_SET), 0);
		ch = fgetc(fp);
		assert_int_equal(fseek(fp, off, SEEK_SET), 0);
		fputc(ch ^ 0xff, fp);
	}
	fclose(fp);
}

/*
 * 64 bytes flipped in a table file: a walk over the damaged prefix either
 * yields every key or reports the error, never a short walk that looks
 * complete (LevelDB's iterator steps over a block that fails its checksum),
 * and a get of a key in the damaged block fails rather than answering.
 */
static void test_damaged_table(void **state)
{
	struct fixture *f = *state;
	struct store_batch *b = store_batch_new();
	char err[256];
	const unsigned n = 2000;
	uint32_t x = 12345;
	unsigned got = 0, failed_gets = 0;

	for (unsigned i = 0; i < n + 10; i++) {
		char key[16];
		uint8_t val[200];
		for (size_t j = 0; j < sizeof(val); j++) {
			x = x * 1103515245u + 12345u; /* incompressible values */
			val[j] = (uint8_t)(x >> 24);
		}
		snprintf(key, sizeof(key), "%c%08u", i < n ? 'a' : 'b', i);
		store_batch_put(b, key, strlen(key), val, sizeof(val));
	}
	assert_int_equal(store_write(f->s, b, true, err, sizeof(err)), 0);
	store_batch_free(b);
	reopen(f); /* the log becomes a table file */
	store_close(f->s);
	f->s = NULL;
	damage_table(f->path, 64);
	assert_int_equal(store_open(&f->s, f->path, err, sizeof(err)), 0);

	struct store_iter *it = store_iter_new(f->s, "a", 1, false);
	const uint8_t *k, *v;
	size_t kl, vl;
	while (store_iter_next(it, &k, &kl, &v, &vl))
		got++;
	assert_true(got < n); /* the damage is in the "a" keys */
	assert_int_equal(store_iter_error(it), TD_EIO);
	store_iter_free(it);

	for (unsigned i = 0; i < n; i++) {
		char key[16];
		uint8_t *val;
		size_t len;
		snprintf(key, sizeof(key), "a%08u", i);
		int rc = store_get(f->s, key, strlen(key), &val, &len);
		if (rc == 0)
			free(val);
		else
			failed_gets++;
		assert_true(rc == 0 || rc == TD_EIO);
	}
	assert_true(failed_gets > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iter_forward, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iter_reverse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iter_binary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_background_nice, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
