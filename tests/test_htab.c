/*
 * Unit tests for node/htab.c: entries are found by key after many inserts
 * and growth, misses land on an empty slot, colliding hashes still tell keys
 * apart, and the hash is keyed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "htab.h"

#define N 5000

struct names {
	char name[N][16];
	uint32_t n;
};

static bool eq_name(const void *ctx, uint32_t idx, const void *key)
{
	const struct names *t = ctx;

	return strcmp(t->name[idx], key) == 0;
}

static const uint8_t hkey[HTAB_KEYBYTES] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

/* hash(): the real hash; flat: every key has hash 7, so all of them collide. */
static uint32_t hash_of(const char *s, bool flat)
{
	return flat ? 7 : htab_hash(hkey, s, strlen(s));
}

/* Adds "k<i>" for i < n unless present; returns how many were new. */
static uint32_t add_all(struct htab *t, struct names *e, uint32_t n, bool flat)
{
	uint32_t added = 0;

	for (uint32_t i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%u", i);
		const uint32_t h = hash_of(k, flat);
		struct htab_slot *s = htab_find(t, h, eq_name, e, k);
		if (s->idx1)
			continue;
		snprintf(e->name[e->n], sizeof(e->name[0]), "%s", k);
		htab_put(t, s, h, e->n++);
		added++;
	}
	return added;
}

static void check_all(const struct htab *t, const struct names *e, uint32_t n, bool flat)
{
	for (uint32_t i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%u", i);
		const struct htab_slot *s = htab_find(t, hash_of(k, flat), eq_name, e, k);
		assert_int_not_equal(s->idx1, 0);
		assert_string_equal(e->name[s->idx1 - 1], k);
	}
	for (uint32_t i = n; i < n + 100; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%u", i);
		assert_int_equal(htab_find(t, hash_of(k, flat), eq_name, e, k)->idx1, 0);
	}
}

static void run(bool flat, uint32_t n)
{
	static struct names e;
	struct htab t;

	memset(&e, 0, sizeof(e));
	htab_init(&t, 0);
	assert_int_equal(t.mask + 1, 16);
	assert_int_equal(add_all(&t, &e, n, flat), n);
	assert_int_equal(add_all(&t, &e, n, flat), 0); /* every key found again */
	assert_int_equal(t.n, n);
	assert_true(2 * t.n <= t.mask + 1); /* at most half full */
	check_all(&t, &e, n, flat);
	htab_free(&t);
	assert_null(t.s);
	assert_int_equal(t.n, 0);
}

static void test_grows(void **state)
{
	(void)state;
	run(false, N);
}

static void test_collisions(void **state)
{
	(void)state;
	run(true, 300);
}

static void test_init_sizes(void **state)
{
	struct htab t, z;

	(void)state;
	htab_init(&t, 100);
	assert_int_equal(t.mask + 1, 256);
	htab_free(&t);
	htab_init(&t, 8);
	assert_int_equal(t.mask + 1, 16);
	htab_free(&t);
	memset(&z, 0, sizeof(z));
	htab_free(&z); /* a zeroed index frees */
}

static void test_hash_keyed(void **state)
{
	uint8_t other[HTAB_KEYBYTES] = { 0 };
	int same = 0;

	(void)state;
	assert_int_equal(htab_hash(hkey, "abc", 3), htab_hash(hkey, "abc", 3));
	for (int i = 0; i < 8; i++) {
		char k[8];
		snprintf(k, sizeof(k), "x%d", i);
		same += htab_hash(hkey, k, strlen(k)) == htab_hash(other, k, strlen(k));
	}
	assert_true(same < 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows),
		cmocka_unit_test(test_collisions),
		cmocka_unit_test(test_init_sizes),
		cmocka_unit_test(test_hash_keyed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
