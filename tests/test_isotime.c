/*
 * Unit tests for proto/isotime.c: the instants td_iso_parse gives (zones,
 * fractions, leap seconds, the ends of the year range), that it accepts
 * exactly what td_iso_valid accepts, and the genesis time built on it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tenderd/block.h"
#include "tenderd/isotime.h"

#define T0 1583712000000LL /* 2020-03-09T00:00:00.000Z */

/* The instant of s; fails the test if s does not parse. */
static int64_t at(const char *s)
{
	int64_t ms = 12345;

	if (!td_iso_parse(s, strlen(s), &ms))
		fail_msg("does not parse: %s", s);
	return ms;
}

static bool refused(const char *s)
{
	int64_t ms = 12345;
	bool ok = td_iso_parse(s, strlen(s), &ms);

	return !ok && ms == 12345 && !td_iso_valid(s, strlen(s));
}

static void test_instants(void **state)
{
	(void)state;
	assert_int_equal(at("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(at("2020-03-09T00:00:00Z"), T0);
	assert_int_equal(at("2020-03-09T09:00:00+09:00"), T0);
	assert_int_equal(at("2020-03-08T18:30:00-05:30"), T0);
	assert_int_equal(at("2020-03-09T00:00:00+00:00"), T0);
	assert_int_equal(at("2020-03-09T00:00:00-00:00"), T0);
	assert_int_equal(at("2020-02-29T00:00:00.123Z"), 1582934400123LL);
	assert_int_equal(at("1999-12-31T23:59:59.999Z"), 946684799999LL);
	assert_int_equal(at("2038-01-19T03:14:08Z"), 2147483648000LL);
	/* one second before the epoch, and the first instant of year 0 */
	assert_int_equal(at("1969-12-31T23:59:59Z"), -1000);
	assert_int_equal(at("0000-01-01T00:00:00Z"), -62167219200000LL);
	assert_int_equal(at("9999-12-31T23:59:59.999Z"), 253402300799999LL);
	/* a leap second is the first second of the next minute */
	assert_int_equal(at("2016-12-31T23:59:60Z"), at("2017-01-01T00:00:00Z"));
}

static void test_fractions(void **state)
{
	(void)state;
	assert_int_equal(at("2020-03-09T00:00:00.5Z"), T0 + 500);
	assert_int_equal(at("2020-03-09T00:00:00.05Z"), T0 + 50);
	assert_int_equal(at("2020-03-09T00:00:00.005Z"), T0 + 5);
	assert_int_equal(at("2020-03-09T00:00:00.0Z"), T0);
	/* digits past the millisecond are dropped, not rounded */
	assert_int_equal(at("2020-03-09T00:00:00.9999999Z"), T0 + 999);
	assert_int_equal(at("2020-03-09T09:00:00.250+09:00"), T0 + 250);
}

/* What td_iso_valid refuses, td_iso_parse refuses and leaves *ms alone. */
static void test_refusals(void **state)
{
	static const char *const bad[] = {
		"2019-02-29T00:00:00Z",
		"1900-02-29T00:00:00Z",
		"2020-04-31T00:00:00Z",
		"2020-13-01T00:00:00Z",
		"2020-00-01T00:00:00Z",
		"2020-01-00T00:00:00Z",
		"2020-01-01T24:00:00Z",
		"2020-01-01T00:60:00Z",
		"2020-01-01T00:00:61Z",
		"2020-01-01T00:00:00",
		"2020-01-01T00:00Z",
		"2020-01-01",
		"2020-01-01 00:00:00Z",
		"2020-01-01t00:00:00Z",
		"2020-01-01T00:00:00z",
		"2020-01-01T00:00:00.Z",
		"2020-01-01T00:00:00+0900",
		"2020-01-01T00:00:00+09",
		"2020-01-01T00:00:00+24:00",
		"2020-01-01T00:00:00+09:60",
		"2020-01-01T00:00:00Z ",
		"2020-01-01T00:00:00+09:00Z",
		"+2020-01-01T00:00:00Z",
		"2020-1-01T00:00:00Z",
		"",
		"2020-01-01T00:00:00.1",
	};
	int64_t ms = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!refused(bad[i]))
			fail_msg("accepted: \"%s\"", bad[i]);
	/* only len bytes count */
	assert_false(td_iso_parse("2020-01-01T00:00:00Z", 19, &ms));
	assert_int_equal(ms, 7);
	assert_true(td_iso_parse("2020-03-09T00:00:00Zjunk", 20, &ms));
	assert_int_equal(ms, T0);
	assert_false(td_iso_parse(NULL, 20, &ms));
	assert_true(td_iso_parse("2020-03-09T00:00:00Z", 20, NULL));
}

/* The formatter's output parses back to the same instant. */
static void test_roundtrip(void **state)
{
	static const uint64_t t[] = {
		0, 1, 999, 1582934400123ULL, 946684799999ULL, 2147483648000ULL, 253402300799999ULL
	};
	char out[32];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		td_time_iso(out, t[i]);
		assert_int_equal(at(out), (int64_t)t[i]);
	}
}

static int genesis_time(const char *time, uint64_t *ms)
{
	char text[512], err[TD_ERRMSG_MAX];
	struct td_genesis g;
	int rc;

	snprintf(text, sizeof(text),
		 "{\"chain_id\": \"c\", \"ocid_prefix\": \"ocds-x\", \"genesis_time\": \"%s\", \"validators\":"
		 " [{\"name\": \"v\", \"pub_key\": \"%064d\"}]}",
		 time, 0);
	rc = td_genesis_parse(&g, text, strlen(text), err, sizeof(err));
	if (rc == 0) {
		*ms = g.time_ms;
		td_genesis_free(&g);
	}
	return rc;
}

/* The genesis takes UTC times from 1970 on, with at most three fraction digits. */
static void test_genesis_time(void **state)
{
	uint64_t ms = 0;

	(void)state;
	assert_int_equal(genesis_time("2020-03-09T00:00:00Z", &ms), 0);
	assert_true(ms == (uint64_t)T0);
	assert_int_equal(genesis_time("2020-03-09T00:00:00.250Z", &ms), 0);
	assert_true(ms == (uint64_t)T0 + 250);
	assert_int_equal(genesis_time("2020-03-09T00:00:00.5Z", &ms), 0);
	assert_true(ms == (uint64_t)T0 + 500);
	assert_int_equal(genesis_time("2016-12-31T23:59:60Z", &ms), 0);
	assert_true(ms == 1483228800000ULL);
	assert_int_equal(genesis_time("1970-01-01T00:00:00Z", &ms), 0);
	assert_true(ms == 0);
	assert_int_equal(genesis_time("2020-03-09T00:00:00.2500Z", &ms), TD_EINVAL);
	assert_int_equal(genesis_time("2020-03-09T09:00:00+09:00", &ms), TD_EINVAL);
	assert_int_equal(genesis_time("1969-12-31T23:59:59.999Z", &ms), TD_EINVAL);
	assert_int_equal(genesis_time("2020-03-09", &ms), TD_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_instants),  cmocka_unit_test(test_fractions),    cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_genesis_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
