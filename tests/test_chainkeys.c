/*
 * Golden bytes of the chain's store schema (node/chainkeys.c): every key
 * kind, the tip, "R" and "T" values and date keys for fixed inputs, written
 * out here by hand from the layout in chainkeys.h. A change to any of them
 * is a schema change: it needs a new CKEY_SCHEMA_VERSION, not a new golden.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/codec.h"
#include "chainkeys.h"

#define H 0x0102030405060708ull /* a height */
#define IX 0x0a0b0c0du          /* an index in a block */
#define OCID "ocds-kr2020-jeju-0001"
#define RID "ocds-kr2020-jeju-0001-r1"
#define T0 1583712000000ull /* 2020-03-09T00:00:00.000Z */

static const char *hex(const uint8_t *p, size_t n)
{
	static char buf[2 * 512 + 1];

	assert_true(n <= 512);
	td_hex(buf, p, n);
	return buf;
}

#define assert_key(k, want) assert_string_equal(hex((k)->b, (k)->n), want)

static void id32(uint8_t id[TD_HASH_LEN])
{
	for (int i = 0; i < TD_HASH_LEN; i++)
		id[i] = (uint8_t)i;
}

static void test_store_keys(void **state)
{
	struct ckey k;
	uint8_t id[TD_HASH_LEN];

	(void)state;
	id32(id);
	ckey_schema(&k);
	assert_key(&k, "53");
	ckey_chain_id(&k);
	assert_key(&k, "49");
	ckey_tip(&k);
	assert_key(&k, "4d");
	ckey_block(&k, H);
	assert_key(&k, "420102030405060708");
	ckey_records(&k, H);
	assert_key(&k, "440102030405060708");
	ckey_record(&k, H, IX);
	assert_key(&k, "4401020304050607080a0b0c0d");
	ckey_commit(&k, H);
	assert_key(&k, "430102030405060708");
	ckey_record_loc(&k, id);
	assert_key(&k, "52000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
	ckey_tender(&k, OCID);
	assert_key(&k, "546f6364732d6b72323032302d6a656a752d30303031");
	ckey_releases(&k, OCID);
	assert_key(&k, "456f6364732d6b72323032302d6a656a752d3030303100");
	ckey_release(&k, OCID, 7);
	assert_key(&k, "456f6364732d6b72323032302d6a656a752d303030310000000007");
	ckey_release_id(&k, OCID, RID);
	assert_key(&k,
		   "556f6364732d6b72323032302d6a656a752d30303031006f6364732d6b72323032302d6a656a752d303030312d7231");
}

/* The longest key of each ocid kind fits CKEY_MAX. */
static void test_longest_keys(void **state)
{
	char ocid[TD_OCID_MAX + 1], rid[TD_ID_MAX + 1];
	struct ckey k;

	(void)state;
	memset(ocid, 'o', TD_OCID_MAX);
	ocid[TD_OCID_MAX] = '\0';
	memset(rid, 'r', TD_ID_MAX);
	rid[TD_ID_MAX] = '\0';
	ckey_release_id(&k, ocid, rid);
	assert_int_equal(k.n, 1 + TD_OCID_MAX + 1 + TD_ID_MAX);
	ckey_release(&k, ocid, UINT32_MAX);
	assert_int_equal(k.n, 1 + TD_OCID_MAX + 1 + 4);
	assert_true(1 + TD_OCID_MAX + 1 + TD_ID_MAX <= CKEY_MAX);
}

static void tstate_fixture(struct ckey_tstate *t)
{
	memset(t, 0, sizeof(*t));
	memset(t->owner, 0xaa, TD_PUBKEY_LEN);
	t->flags = CKEY_FLAG_CANCELLED;
	t->first_height = H;
	t->first_index = IX;
	t->n_releases = 3;
	t->last_height = 0x1122334455667788ull;
	t->first_date = 0x8000017f00000000ull;
	t->date = 0x8000017f12345678ull;
	snprintf(t->status, sizeof(t->status), "active");
	snprintf(t->category, sizeof(t->category), "works");
	snprintf(t->method, sizeof(t->method), "open");
	snprintf(t->last_release, sizeof(t->last_release), RID);
	memset(t->last_id, 0x5c, TD_HASH_LEN);
}

static const char *const tstate_golden =
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* owner */
	"01"                                                               /* flags: cancelled */
	"0102030405060708"                                                 /* first height */
	"0a0b0c0d"                                                         /* first index */
	"00000003"                                                         /* releases */
	"1122334455667788"                                                 /* last height */
	"8000017f00000000"                                                 /* first release date */
	"8000017f12345678"                                                 /* tender date */
	"5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c" /* last record id */
	"06616374697665"                                                   /* "active" */
	"05776f726b73"                                                     /* "works" */
	"046f70656e"                                                       /* "open" */
	"186f6364732d6b72323032302d6a656a752d303030312d7231";              /* last release id */

static void test_tstate(void **state)
{
	struct ckey_tstate t, back;
	uint8_t v[CKEY_TSTATE_MAX], bad[CKEY_TSTATE_MAX + 1];
	size_t n;

	(void)state;
	tstate_fixture(&t);
	ckey_tstate_encode(&t, v, &n);
	assert_int_equal(n, 148);
	assert_string_equal(hex(v, n), tstate_golden);
	memset(&back, 0, sizeof(back));
	assert_true(ckey_tstate_decode(&back, v, n));
	assert_memory_equal(&back, &t, sizeof(t));

	/* truncated anywhere, or with a byte more: refused */
	for (size_t i = 0; i < n; i++)
		assert_false(ckey_tstate_decode(&back, v, i));
	memcpy(bad, v, n);
	bad[n] = 0;
	assert_false(ckey_tstate_decode(&back, bad, n + 1));
	/* a NUL inside a string */
	memcpy(bad, v, n);
	bad[CKEY_TSTATE_FIXED + 3] = 0;
	assert_false(ckey_tstate_decode(&back, bad, n));
	/* a status longer than CKEY_FIELD_MAX */
	memcpy(bad, v, n);
	bad[CKEY_TSTATE_FIXED] = CKEY_FIELD_MAX + 1;
	assert_false(ckey_tstate_decode(&back, bad, n));

	/* the longest state fits CKEY_TSTATE_MAX */
	memset(t.status, 's', CKEY_FIELD_MAX);
	memset(t.category, 'c', CKEY_FIELD_MAX);
	memset(t.method, 'm', CKEY_FIELD_MAX);
	memset(t.last_release, 'r', TD_ID_MAX);
	ckey_tstate_encode(&t, v, &n);
	assert_int_equal(n, CKEY_TSTATE_MAX);
	memset(&back, 0, sizeof(back));
	assert_true(ckey_tstate_decode(&back, v, n));
	assert_memory_equal(&back, &t, sizeof(t));
}

static void test_tip_and_loc(void **state)
{
	struct ckey_tipval t = { .height = H, .time_ms = T0, .n_records = 4096, .file_end = 0x123456789 }, back = { 0 };
	uint8_t v[CKEY_TIP_LEN], loc[CKEY_LOC_LEN];
	uint64_t h = 0;
	uint32_t i = 0;

	(void)state;
	id32(t.hash);
	ckey_tip_encode(&t, v);
	assert_string_equal(hex(v, sizeof(v)), "0102030405060708"
					       "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
					       "00000170bc975800"
					       "0000000000001000"
					       "0000000123456789");
	assert_true(ckey_tip_decode(&back, v, sizeof(v)));
	assert_memory_equal(&back, &t, sizeof(t));
	assert_false(ckey_tip_decode(&back, v, sizeof(v) - 1));

	uint8_t ref[CKEY_REF_LEN];
	uint64_t off = 0;
	uint32_t len = 0;
	ckey_ref_encode(ref, 0x10203040506ull, 1036);
	assert_string_equal(hex(ref, sizeof(ref)), "0000010203040506"
						   "0000040c");
	assert_true(ckey_ref_decode(ref, sizeof(ref), &off, &len));
	assert_true(off == 0x10203040506ull && len == 1036);
	assert_false(ckey_ref_decode(ref, sizeof(ref) + 1, &off, &len));

	ckey_loc_encode(loc, H, IX);
	assert_string_equal(hex(loc, sizeof(loc)), "01020304050607080a0b0c0d");
	assert_true(ckey_loc_decode(loc, sizeof(loc), &h, &i));
	assert_true(h == H);
	assert_int_equal(i, IX);
	assert_true(ckey_loc_decode(loc, sizeof(loc), NULL, NULL));
	assert_false(ckey_loc_decode(loc, sizeof(loc) - 1, &h, &i));
}

static void test_list_keys(void **state)
{
	struct ckey_tstate t;
	struct ckey k;

	(void)state;
	tstate_fixture(&t);
	ckey_lix_key(&k, CKEY_LIX_ALL, &t);
	assert_key(&k, "4c0001020304050607080a0b0c0d");
	ckey_lix_key(&k, CKEY_LIX_AGENCY, &t);
	assert_key(&k, "4c61aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01020304050607080a0b0c0d");
	ckey_lix_key(&k, CKEY_LIX_STATUS, &t);
	assert_key(&k, "4c736163746976650001020304050607080a0b0c0d");
	ckey_lix_key(&k, CKEY_LIX_CATEGORY, &t);
	assert_key(&k, "4c63776f726b730001020304050607080a0b0c0d");
	ckey_lix_key(&k, CKEY_LIX_METHOD, &t);
	assert_key(&k, "4c6d6f70656e0001020304050607080a0b0c0d");
	ckey_lix_key(&k, CKEY_LIX_DATE, &t);
	assert_key(&k, "4c648000017f1234567801020304050607080a0b0c0d");

	ckey_lix_count_key(&k, CKEY_LIX_AGENCY, t.owner);
	assert_key(&k, "4e61aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	ckey_lix_count_key(&k, CKEY_LIX_STATUS, "active");
	assert_key(&k, "4e7361637469766500");
	ckey_lix_count_key(&k, CKEY_LIX_CATEGORY, "works");
	assert_key(&k, "4e63776f726b7300");
	ckey_lix_count_key(&k, CKEY_LIX_METHOD, "open");
	assert_key(&k, "4e6d6f70656e00");

	/* every key of an index is its prefix and lix_tail more bytes */
	for (int i = 0; i < CKEY_LIX_COUNT; i++) {
		const enum ckey_lix x = (enum ckey_lix)i;
		struct ckey pre;
		ckey_lix_prefix(&pre, x, ckey_lix_value(x, &t));
		ckey_lix_key(&k, x, &t);
		assert_int_equal(k.n, pre.n + ckey_lix_tail(x));
		assert_memory_equal(k.b, pre.b, pre.n);
		assert_true(ckey_lix_has(x, &t));
	}
	assert_false(ckey_lix_counted(CKEY_LIX_ALL));
	assert_false(ckey_lix_counted(CKEY_LIX_DATE));
	assert_true(ckey_lix_counted(CKEY_LIX_AGENCY) && ckey_lix_counted(CKEY_LIX_STATUS) &&
		    ckey_lix_counted(CKEY_LIX_CATEGORY) && ckey_lix_counted(CKEY_LIX_METHOD));
	/* an empty status, category or method has no key */
	t.status[0] = t.category[0] = t.method[0] = '\0';
	assert_false(ckey_lix_has(CKEY_LIX_STATUS, &t));
	assert_false(ckey_lix_has(CKEY_LIX_CATEGORY, &t));
	assert_false(ckey_lix_has(CKEY_LIX_METHOD, &t));
}

static uint64_t date(const char *s)
{
	uint64_t v = 0;

	if (!ckey_date(s, strlen(s), &v))
		fail_msg("not a date: %s", s);
	return v;
}

static void test_date_keys(void **state)
{
	uint64_t v = 42;

	(void)state;
	assert_true(date("2020-03-09T00:00:00Z") == 0x80000170bc975800ull);
	assert_true(date("2020-03-09T09:00:00+09:00") == 0x80000170bc975800ull);
	assert_true(date("2020-03-09T00:00:00.123456Z") == 0x80000170bc975800ull + 123);
	assert_true(date("1970-01-01T00:00:00Z") == 0x8000000000000000ull);
	assert_true(date("1969-12-31T23:59:59Z") == 0x7ffffffffffffc18ull);
	assert_true(ckey_date_ms(T0) == 0x80000170bc975800ull);
	assert_false(ckey_date("2020-03-09", 10, &v));
	assert_int_equal(v, 42);
	/* u64 order is time order across the epoch and across zones */
	assert_true(date("1969-12-31T23:59:59Z") < date("1970-01-01T00:00:00Z"));
	assert_true(date("2020-03-09T08:59:59+09:00") < date("2020-03-09T00:00:00Z"));
}

/* "B": header length, the header as td_header_encode, the record ids; decoded back. */
static void test_block_meta(void **state)
{
	struct td_record r[2];
	struct td_record *recs[2] = { &r[0], &r[1] };
	struct td_block blk;
	struct td_buf v, hb;
	struct ckey_block_meta m;
	uint8_t *bytes;
	size_t n, hlen;

	(void)state;
	memset(&blk, 0, sizeof(blk));
	memset(r, 0, sizeof(r));
	blk.hdr.height = 5;
	blk.hdr.time_ms = T0;
	blk.hdr.n_records = 2;
	memset(blk.hdr.prev_hash, 0x11, TD_HASH_LEN);
	memset(blk.hdr.proposer, 0x22, TD_PUBKEY_LEN);
	memset(blk.hdr.records_root, 0x33, TD_HASH_LEN);
	memset(r[0].id, 0x44, TD_HASH_LEN);
	memset(r[1].id, 0x55, TD_HASH_LEN);
	blk.records = recs;

	td_buf_init(&hb);
	td_header_encode(&hb, &blk.hdr);
	hlen = hb.sb.size;
	td_buf_init(&v);
	ckey_block_meta_encode(&v, &blk);
	bytes = (uint8_t *)v.sb.data;
	n = v.sb.size;
	assert_int_equal(n, 4 + hlen + 2 * TD_HASH_LEN);
	assert_true(ckey_get_u32(bytes) == hlen);
	assert_memory_equal(bytes + 4, hb.sb.data, hlen);
	assert_memory_equal(bytes + 4 + hlen, r[0].id, TD_HASH_LEN);
	assert_memory_equal(bytes + 4 + hlen + TD_HASH_LEN, r[1].id, TD_HASH_LEN);

	assert_true(ckey_block_meta_decode(&m, bytes, n, 5));
	assert_true(m.h.height == 5 && m.h.time_ms == T0 && m.h.n_records == 2);
	assert_int_equal(m.hlen, hlen);
	assert_ptr_equal(m.ids, bytes + 4 + hlen);
	/* another height, a missing id, a header length past the end */
	assert_false(ckey_block_meta_decode(&m, bytes, n, 6));
	assert_false(ckey_block_meta_decode(&m, bytes, n - 1, 5));
	assert_false(ckey_block_meta_decode(&m, bytes, 3, 5));
	ckey_put_u32(bytes, (uint32_t)n);
	assert_false(ckey_block_meta_decode(&m, bytes, n, 5));
	td_buf_free(&v);
	td_buf_free(&hb);
}

static void test_integers(void **state)
{
	uint8_t b[8];

	(void)state;
	ckey_put_u64(b, 0x0102030405060708ull);
	assert_string_equal(hex(b, 8), "0102030405060708");
	assert_true(ckey_get_u64(b) == 0x0102030405060708ull);
	ckey_put_u32(b, 0xdeadbeefu);
	assert_string_equal(hex(b, 4), "deadbeef");
	assert_true(ckey_get_u32(b) == 0xdeadbeefu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_keys), cmocka_unit_test(test_longest_keys),
		cmocka_unit_test(test_tstate),     cmocka_unit_test(test_tip_and_loc),
		cmocka_unit_test(test_list_keys),  cmocka_unit_test(test_date_keys),
		cmocka_unit_test(test_block_meta), cmocka_unit_test(test_integers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
