/*
 * Unit tests for td_release_build_dated (proto/release.c), the build of an
 * imported release: it keeps the date it was first published with, the id
 * comes from the fragment (or the time given), and a date that is not an
 * ISO 8601 date-time with seconds and a zone is refused before anything is
 * built. Without a date it is td_release_build, byte for byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/release.h"

#define T0 1583712000000ULL /* 2020-03-09T00:00:00.000Z, the ledger's time in these tests */
#define AGENCY "Jeju Special Self-Governing Province"
#define TENDER_FRAGMENT                                                                                           \
	"{\"ocid\": \"ocds-kr2020-imp-1\", \"id\": \"orig-7\", \"date\": \"1999-01-01T00:00:00Z\","               \
	" \"tag\": [\"tender\"], \"tender\": {\"id\": \"t1\", \"title\": \"Old tender\", \"status\": \"active\"," \
	" \"value\": {\"amount\": 1000.50, \"currency\": \"KRW\"}}}"

static json_t *parse(const char *text)
{
	char err[TD_ERRMSG_MAX];
	json_t *v = td_json_load(text, strlen(text), err, sizeof err);

	if (v == NULL)
		fail_msg("bad test JSON: %s", err);
	return v;
}

static const char *str_of(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	assert_true(json_is_string(v));
	return json_string_value(v);
}

static json_t *build(const json_t *frag, enum td_kind kind, const char *date, char *err, size_t errlen)
{
	return td_release_build_dated(frag, kind, NULL, T0, date, date ? strlen(date) : 0, AGENCY, err, errlen);
}

/* The date given is kept as written (zone and fraction included); the fragment's own is not. */
static void test_keeps_date(void **state)
{
	static const char *const dates[] = { "2019-05-02T09:30:00+09:00", "2019-05-02T00:30:00Z",
					     "2018-12-31T23:59:60.25-03:30" };
	char err[TD_ERRMSG_MAX];
	json_t *frag = parse(TENDER_FRAGMENT);

	(void)state;
	for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		json_t *r = build(frag, TD_KIND_TENDER, dates[i], err, sizeof err);
		if (r == NULL)
			fail_msg("%s refused: %s", dates[i], err);
		assert_string_equal(str_of(r, "date"), dates[i]);
		assert_string_equal(str_of(r, "id"), "orig-7");
		assert_string_equal(str_of(r, "ocid"), "ocds-kr2020-imp-1");
		assert_int_equal(td_release_validate(r, TD_KIND_TENDER, err, sizeof err), 0);
		json_decref(r);
	}
	json_decref(frag);
}

/* Without an id in the fragment, the id is made from the time given, not from the kept date. */
static void test_id_from_time(void **state)
{
	char err[TD_ERRMSG_MAX];
	json_t *frag = parse(
		"{\"ocid\": \"ocds-kr2020-imp-2\", \"tender\": {\"id\": \"t\", \"title\": \"T\", \"status\": \"active\"}}");
	json_t *r = build(frag, TD_KIND_TENDER, "2019-05-02T09:30:00+09:00", err, sizeof err);

	(void)state;
	assert_non_null(r);
	assert_string_equal(str_of(r, "id"), "ocds-kr2020-imp-2-1583712000000");
	assert_string_equal(str_of(r, "date"), "2019-05-02T09:30:00+09:00");
	json_decref(r);
	json_decref(frag);
}

/* Every kind keeps the date; a cancellation still gets tender.status "cancelled". */
static void test_every_kind(void **state)
{
	char err[TD_ERRMSG_MAX];
	json_t *frag =
		parse("{\"ocid\": \"ocds-kr2020-imp-3\", \"id\": \"r\", \"tender\": {\"id\": \"t\", \"title\": \"T\","
		      " \"status\": \"active\", \"amendments\": [{\"id\": \"am1\", \"rationale\": \"R\"}]},"
		      " \"awards\": [{\"id\": \"a1\", \"status\": \"active\","
		      " \"suppliers\": [{\"name\": \"Supplier Co\"}]}]}");

	(void)state;
	for (int k = TD_KIND_MIN; k <= TD_KIND_MAX; k++) {
		json_t *r = build(frag, (enum td_kind)k, "2019-06-01T00:00:00Z", err, sizeof err);
		if (r == NULL)
			fail_msg("%s refused: %s", td_kind_name((enum td_kind)k), err);
		assert_string_equal(str_of(r, "date"), "2019-06-01T00:00:00Z");
		assert_string_equal(json_string_value(json_array_get(json_object_get(r, "tag"), 0)),
				    td_kind_name((enum td_kind)k));
		if (k == TD_KIND_CANCELLATION)
			assert_string_equal(str_of(json_object_get(r, "tender"), "status"), "cancelled");
		json_decref(r);
	}
	json_decref(frag);
}

/* A date that validation would refuse is refused, naming "date", and nothing is returned. */
static void test_refuses_bad_dates(void **state)
{
	static const char *const bad[] = { "2019-05-02",
					   "2019-05-02T09:30:00",
					   "2019-05-02T09:30Z",
					   "2019-02-29T00:00:00Z",
					   "2019-05-02t09:30:00Z",
					   "2019-05-02T09:30:00+9:00",
					   "2019-05-02T09:30:00Z ",
					   "",
					   "yesterday" };
	char err[TD_ERRMSG_MAX];
	json_t *frag = parse(TENDER_FRAGMENT);

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		json_t *r = build(frag, TD_KIND_TENDER, bad[i], err, sizeof err);
		if (r != NULL)
			fail_msg("\"%s\" was accepted", bad[i]);
		assert_true(strncmp(err, "date: ", 6) == 0);
	}
	/* The length is the date's: a valid date followed by bytes outside it is still that date. */
	json_t *r = td_release_build_dated(frag, TD_KIND_TENDER, NULL, T0, "2019-05-02T09:30:00Zjunk", 20, AGENCY, err,
					   sizeof err);
	assert_non_null(r);
	assert_string_equal(str_of(r, "date"), "2019-05-02T09:30:00Z");
	json_decref(r);
	json_decref(frag);
}

/* With date NULL the release is td_release_build's, byte for byte: the date is the time given. */
static void test_null_is_build(void **state)
{
	char err[TD_ERRMSG_MAX];
	json_t *frag = parse(TENDER_FRAGMENT);
	json_t *a = build(frag, TD_KIND_TENDER, NULL, err, sizeof err);
	json_t *b = td_release_build(frag, TD_KIND_TENDER, NULL, T0, AGENCY, err, sizeof err);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	char *sa = td_json_dump(a, JSON_COMPACT), *sb = td_json_dump(b, JSON_COMPACT);
	assert_string_equal(sa, sb);
	assert_string_equal(str_of(a, "date"), "2020-03-09T00:00:00.000Z");
	free(sa);
	free(sb);
	json_decref(a);
	json_decref(b);
	json_decref(frag);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keeps_date),    cmocka_unit_test(test_id_from_time),
		cmocka_unit_test(test_every_kind),    cmocka_unit_test(test_refuses_bad_dates),
		cmocka_unit_test(test_null_is_build),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
