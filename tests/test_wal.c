/*
 * Unit tests for node/wal.c: entries come back in order after a reopen; a
 * tail cut at every byte offset of the last entry, or a flipped byte in it,
 * loses that entry only (and the file is cut so later appends follow the
 * intact ones); a foreign file is refused; reset keeps the header only; the
 * synced length follows wal_sync.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "tenderd/types.h"
#include "wal.h"

struct seen {
	uint32_t n;
	size_t len[16];
	uint8_t first[16];
};

static int collect(void *ctx, const uint8_t *p, size_t len)
{
	struct seen *s = ctx;
	if (s->n < 16) {
		s->len[s->n] = len;
		s->first[s->n] = len ? p[0] : 0;
	}
	s->n++;
	return 0;
}

static void tmp_path(char *out, size_t cap)
{
	snprintf(out, cap, "/tmp/test_wal.%d.%u", (int)getpid(), randombytes_random());
}

/* Writes entries of lengths 10, 0, 3000 and 77 filled with their index + 1. */
static void write_four(const char *path, uint64_t *end_of_third)
{
	static const size_t lens[4] = { 10, 0, 3000, 77 };
	struct wal *w;
	char err[TD_ERRMSG_MAX];
	uint8_t buf[3000];
	assert_int_equal(wal_open(&w, path, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++) {
		memset(buf, i + 1, sizeof(buf));
		assert_int_equal(wal_append(w, buf, lens[i]), 0);
		if (i == 2)
			*end_of_third = wal_size(w);
	}
	assert_true(wal_synced(w) < wal_size(w));
	assert_int_equal(wal_sync(w), 0);
	assert_int_equal(wal_synced(w), wal_size(w));
	wal_close(w);
}

static void test_roundtrip(void **state)
{
	char path[128], err[TD_ERRMSG_MAX];
	uint64_t third;
	struct wal *w;
	struct seen s = { 0 };
	tmp_path(path, sizeof(path));
	write_four(path, &third);
	assert_int_equal(wal_open(&w, path, err, sizeof(err)), 0);
	assert_int_equal(wal_replay(w, collect, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.len[0], 10);
	assert_int_equal(s.len[1], 0);
	assert_int_equal(s.len[2], 3000);
	assert_int_equal(s.first[2], 3);
	assert_int_equal(s.first[3], 4);
	/* Reset keeps only the header; appends after it replay alone. */
	assert_int_equal(wal_reset(w), 0);
	assert_int_equal(wal_size(w), strlen(WAL_MAGIC));
	uint8_t one = 9;
	assert_int_equal(wal_append(w, &one, 1), 0);
	wal_close(w);
	assert_int_equal(wal_open(&w, path, err, sizeof(err)), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(wal_replay(w, collect, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.first[0], 9);
	wal_close(w);
	unlink(path);
}

/* Every cut inside the last entry loses exactly that entry, and appending continues after the third. */
static void test_torn_tail(void **state)
{
	char path[128], err[TD_ERRMSG_MAX];
	uint64_t third, full;
	struct stat st;
	tmp_path(path, sizeof(path));
	write_four(path, &third);
	assert_int_equal(stat(path, &st), 0);
	full = (uint64_t)st.st_size;
	log_set_level(LOG_ERROR);
	for (uint64_t cut = third; cut < full; cut++) {
		struct wal *w;
		struct seen s = { 0 };
		unlink(path);
		write_four(path, &third);
		assert_int_equal(truncate(path, (off_t)cut), 0);
		assert_int_equal(wal_open(&w, path, err, sizeof(err)), 0);
		assert_int_equal(wal_replay(w, collect, &s, err, sizeof(err)), 0);
		assert_int_equal(s.n, 3);
		assert_int_equal(wal_size(w), third);
		uint8_t x[5] = { 5, 5, 5, 5, 5 };
		assert_int_equal(wal_append(w, x, sizeof(x)), 0);
		wal_close(w);
		assert_int_equal(wal_open(&w, path, err, sizeof(err)), 0);
		memset(&s, 0, sizeof(s));
		assert_int_equal(wal_replay(w, collect, &s, err, sizeof(err)), 0);
		assert_int_equal(s.n, 4);
		assert_int_equal(s.len[3], 5);
		wal_close(w);
		unlink(path);
	}
}

/* A flipped byte anywhere in the third entry loses the third and fourth entries, nothing before. */
static void test_corrupt_entry(void **state)
{
	char path[128], err[TD_ERRMSG_MAX];
	uint64_t third;
	tmp_path(path, sizeof(path));
	write_four(path, &third);
	uint64_t start = third - 3000 - 20;
	for (uint64_t at = start; at < third; at += 97) {
		struct wal *w;
		struct seen s = { 0 };
		uint8_t c;
		unlink(path);
		write_four(path, &third);
		int fd = open(path, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, &c, 1, (off_t)at), 1);
		c ^= 0x40;
		assert_int_equal(pwrite(fd, &c, 1, (off_t)at), 1);
		close(fd);
		assert_int_equal(wal_open(&w, path, err, sizeof(err)), 0);
		assert_int_equal(wal_replay(w, collect, &s, err, sizeof(err)), 0);
		assert_int_equal(s.n, 2);
		assert_int_equal(wal_size(w), start);
		wal_close(w);
		unlink(path);
	}
}

static void test_foreign_file(void **state)
{
	char path[128], err[TD_ERRMSG_MAX] = "";
	struct wal *w = NULL;
	tmp_path(path, sizeof(path));
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"not\": \"a log\"}\n", f);
	fclose(f);
	assert_int_equal(wal_open(&w, path, err, sizeof(err)), TD_ECORRUPT);
	assert_null(w);
	assert_non_null(strstr(err, "not a tenderd consensus log"));
	/* A file shorter than the header (a crash while creating it) starts afresh. */
	assert_int_equal(truncate(path, 3), 0);
	assert_int_equal(wal_open(&w, path, err, sizeof(err)), 0);
	assert_int_equal(wal_size(w), strlen(WAL_MAGIC));
	wal_close(w);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	unlink(path);
	/* A new log is private to the node. */
	assert_int_equal(wal_open(&w, path, err, sizeof(err)), 0);
	wal_close(w);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);
	unlink(path);
}

static int stop_at_second(void *ctx, const uint8_t *p, size_t len)
{
	int *n = ctx;
	return ++*n == 2 ? 42 : 0;
}

static void test_callback_stops(void **state)
{
	char path[128], err[TD_ERRMSG_MAX];
	uint64_t third;
	struct wal *w;
	int n = 0;
	tmp_path(path, sizeof(path));
	write_four(path, &third);
	assert_int_equal(wal_open(&w, path, err, sizeof(err)), 0);
	assert_int_equal(wal_replay(w, stop_at_second, &n, err, sizeof(err)), 42);
	assert_int_equal(n, 2);
	uint8_t big = 0;
	assert_int_equal(wal_append(w, &big, (size_t)WAL_ENTRY_MAX + 1), TD_EINVAL);
	wal_close(w);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),      cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_corrupt_entry),  cmocka_unit_test(test_foreign_file),
		cmocka_unit_test(test_callback_stops),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
