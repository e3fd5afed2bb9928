/*
 * Unit tests of the OCDS merge routine (proto/merge.c, tenderd/merge.h): the
 * rule table generated from the release schema, each rule of the standard's
 * merging specification on small releases of our own (compiled and
 * versioned), the node's compiled release (td_release_merge) of every sample
 * lifecycle against the output the node gave before the merge followed the
 * schema (tests/data/merge/<name>-node-compiled.json), and the compiled and
 * versioned releases of the sample release packages
 * (tests/data/merge/<name>-releases.json) against the expected records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tenderd/json.h"
#include "tenderd/merge.h"
#include "tenderd/release.h"

#define SAMPLES TD_TEST_DATA "/samples/"
#define MERGE TD_TEST_DATA "/merge/"
#define T0 1583712000000ULL /* 2020-03-09T00:00:00.000Z */
#define DAY_MS 86400000ULL

/* ---- helpers -------------------------------------------------------------- */

static json_t *parse(const char *text)
{
	char err[TD_ERRMSG_MAX];
	json_t *v = td_json_load(text, strlen(text), err, sizeof err);

	if (v == NULL)
		fail_msg("bad test JSON: %s: %s", err, text);
	return v;
}

static json_t *load(const char *path)
{
	char err[TD_ERRMSG_MAX];
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;
	json_t *v;

	if (f == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	v = td_json_load(buf, (size_t)n, err, sizeof err);
	free(buf);
	if (v == NULL)
		fail_msg("%s: %s", path, err);
	return v;
}

/* Fails unless got equals the JSON text want (objects in any key order, numbers by their text). */
static void check_json(const json_t *got, const char *want)
{
	json_t *w = parse(want);

	if (!json_equal((json_t *)got, w)) {
		char *g = td_json_dump(got, JSON_COMPACT | JSON_SORT_KEYS);
		char *e = td_json_dump(w, JSON_COMPACT | JSON_SORT_KEYS);
		print_error("got  %s\nwant %s\n", g, e);
		free(g);
		free(e);
		fail();
	}
	json_decref(w);
}

/* The records of the releases in text (a JSON array); fails if refused. */
static json_t *records_of(const char *text, bool versioned)
{
	char err[TD_ERRMSG_MAX] = "";
	json_t *rels = parse(text);
	json_t *records = td_merge_records(rels, versioned, err, sizeof err);

	if (records == NULL)
		fail_msg("refused: %s", err);
	json_decref(rels);
	return records;
}

/* The compiled release of the one ocid of the releases in text. */
static json_t *compile1(const char *text)
{
	json_t *records = records_of(text, false);
	json_t *c;

	assert_int_equal(json_array_size(records), 1);
	c = json_incref(json_object_get(json_array_get(records, 0), "compiledRelease"));
	json_decref(records);
	return c;
}

static json_t *versioned1(const char *text)
{
	json_t *records = records_of(text, true);
	json_t *v;

	assert_int_equal(json_array_size(records), 1);
	v = json_incref(json_object_get(json_array_get(records, 0), "versionedRelease"));
	json_decref(records);
	return v;
}

#define R(id, date) "\"ocid\": \"ocds-a-1\", \"id\": \"" id "\", \"date\": \"" date "\""
#define META(id, date) \
	"\"ocid\": \"ocds-a-1\", \"id\": \"ocds-a-1-" date "\", \"date\": \"" date "\", \"tag\": [\"compiled\"]"
#define V(id, date, tag, value) \
	"{\"releaseID\": \"" id "\", \"releaseDate\": \"" date "\", \"releaseTag\": " tag ", \"value\": " value "}"

/* ---- the rule table ------------------------------------------------------- */

static void test_rules_from_schema(void **state)
{
	(void)state;
	assert_true(td_merge_rules_len > 10);
	assert_string_equal(td_merge_rules[0].name, "");
	/* omitWhenMerged: the release's metadata. */
	assert_int_equal(td_merge_path_flags("id"), TD_MERGE_OMIT);
	assert_int_equal(td_merge_path_flags("date"), TD_MERGE_OMIT);
	assert_int_equal(td_merge_path_flags("tag"), TD_MERGE_OMIT);
	/* wholeListMerge, declared... */
	assert_int_equal(td_merge_path_flags("tender/items/additionalClassifications"), TD_MERGE_WHOLE);
	assert_int_equal(td_merge_path_flags("parties/additionalIdentifiers"), TD_MERGE_WHOLE);
	assert_int_equal(td_merge_path_flags("awards/suppliers/additionalIdentifiers"), TD_MERGE_WHOLE);
	assert_int_equal(td_merge_path_flags("contracts/implementation/transactions/payee/additionalIdentifiers"),
			 TD_MERGE_WHOLE);
	/* ... or implied: arrays of strings, arrays of objects without an id. */
	assert_int_equal(td_merge_path_flags("parties/roles"), TD_MERGE_WHOLE);
	assert_int_equal(td_merge_path_flags("tender/submissionMethod"), TD_MERGE_WHOLE);
	assert_int_equal(td_merge_path_flags("tender/amendments/changes"), TD_MERGE_WHOLE);
	/* Everything else has no rule: merged by the shape of its value. */
	assert_int_equal(td_merge_path_flags("ocid"), 0);
	assert_int_equal(td_merge_path_flags("tender"), 0);
	assert_int_equal(td_merge_path_flags("tender/title"), 0);
	assert_int_equal(td_merge_path_flags("awards"), 0);
	assert_int_equal(td_merge_path_flags("tender/id"), 0);
	assert_int_equal(td_merge_path_flags("x_extension/additionalClassifications"), 0);
	/* Each entry's children lie inside the table. */
	for (size_t i = 0; i < td_merge_rules_len; i++)
		assert_true((size_t)td_merge_rules[i].first + td_merge_rules[i].count <= td_merge_rules_len);
}

/* ---- compiled releases ---------------------------------------------------- */

static void test_order_by_date(void **state)
{
	/* Given out of order; +09:00 is applied (10:00+09:00 is 01:00Z); equal instants keep input order. */
	json_t *c = compile1("[{" R(
		"r3",
		"2020-01-02T00:00:00Z") ", \"tender\": {\"title\": \"third\"}},"
					" {" R("r1",
					       "2020-01-01T10:00:00+09:00") ", \"tender\": {\"title\": \"first\"}},"
									    " {" R("r2",
										   "2020-01-01T02:00:00Z") ", \"tender\": {\"title\": \"second\"}},"
													   " {" R("r2b",
														  "2020-01-01T02:00:00.000Z") ", \"tender\": {\"title\": \"second b\"}}]");

	(void)state;
	check_json(c, "{" META("", "2020-01-02T00:00:00Z") ", \"tender\": {\"title\": \"third\"}}");
	json_decref(c);
	c = compile1("[{" R(
		"r2",
		"2020-01-01T02:00:00Z") ", \"tender\": {\"title\": \"second\"}},"
					" {" R("r2b",
					       "2020-01-01T02:00:00.000Z") ", \"tender\": {\"title\": \"second b\"}},"
									   " {" R("r1",
										  "2020-01-01T10:00:00+09:00") ", \"tender\": {\"title\": \"first\"}}]");
	check_json(c, "{" META("", "2020-01-01T02:00:00.000Z") ", \"tender\": {\"title\": \"second b\"}}");
	json_decref(c);
}

static void test_objects_merge_by_property(void **state)
{
	json_t *c = compile1("[{" R(
		"r1",
		"2020-01-01T00:00:00Z") ", \"tender\": {\"title\": \"T\", \"value\": {\"amount\": 1.50},"
					" \"tenderPeriod\": {\"startDate\": \"2020-01-01T00:00:00Z\"}}, \"x_ext\": {\"a\": {\"b\": 1}}},"
					" {" R("r2",
					       "2020-01-02T00:00:00Z") ", \"tender\": {\"value\": {\"currency\": \"KRW\"},"
								       " \"tenderPeriod\": {\"endDate\": \"2020-02-01T00:00:00Z\"}}, \"x_ext\": {\"a\": {\"c\": 2}}}]");

	(void)state;
	check_json(
		c,
		"{" META(
			"",
			"2020-01-02T00:00:00Z") ", \"tender\": {\"title\": \"T\","
						" \"value\": {\"amount\": 1.50, \"currency\": \"KRW\"},"
						" \"tenderPeriod\": {\"startDate\": \"2020-01-01T00:00:00Z\", \"endDate\": \"2020-02-01T00:00:00Z\"}},"
						" \"x_ext\": {\"a\": {\"b\": 1, \"c\": 2}}}");
	json_decref(c);
}

static void test_identifier_merge(void **state)
{
	json_t *c = compile1("[{" R(
		"r1",
		"2020-01-01T00:00:00Z") ", \"awards\": [{\"id\": \"a1\", \"status\": \"pending\","
					" \"title\": \"A1\"}, {\"id\": 1, \"title\": \"number one\"}]},"
					" {" R("r2",
					       "2020-01-02T00:00:00Z") ", \"awards\": [{\"id\": \"a2\", \"title\": \"A2\"},"
								       " {\"id\": \"a1\", \"status\": \"active\"}, {\"id\": \"1\", \"title\": \"string one\"},"
								       " {\"title\": \"no id\"}, {\"id\": 1, \"status\": \"active\"}]},"
								       " {" R("r3",
									      "2020-01-03T00:00:00Z") ", \"awards\": [{\"title\": \"no id\"}],"
												      " \"tender\": {\"items\": [{\"id\": \"i1\", \"quantity\": 2, \"unit\": {\"name\": \"each\"}}]}},"
												      " {" R("r4",
													     "2020-01-04T00:00:00Z") ", \"awards\": [],"
																     " \"tender\": {\"items\": [{\"id\": \"i1\", \"unit\": {\"value\": {\"amount\": 3}}}]}}]");

	(void)state;
	/* Matching ids merge in place; new ids and objects without an id are appended; "1" is not 1;
	   an empty identifierMerge array changes nothing; nested objects of matched items merge too. */
	check_json(
		c,
		"{" META(
			"",
			"2020-01-04T00:00:00Z") ", \"awards\": ["
						" {\"id\": \"a1\", \"status\": \"active\", \"title\": \"A1\"},"
						" {\"id\": 1, \"title\": \"number one\", \"status\": \"active\"},"
						" {\"id\": \"a2\", \"title\": \"A2\"}, {\"id\": \"1\", \"title\": \"string one\"},"
						" {\"title\": \"no id\"}, {\"title\": \"no id\"}],"
						" \"tender\": {\"items\": [{\"id\": \"i1\", \"quantity\": 2,"
						" \"unit\": {\"name\": \"each\", \"value\": {\"amount\": 3}}}]}}");
	json_decref(c);
}

static void test_whole_list_merge(void **state)
{
	json_t *c = compile1("[{" R(
		"r1",
		"2020-01-01T00:00:00Z") ", \"tender\": {\"items\": [{\"id\": \"i1\","
					" \"additionalClassifications\": [{\"id\": \"c1\", \"scheme\": \"CPV\"}, {\"id\": \"c2\", \"scheme\": \"CPV\"}]}],"
					" \"submissionMethod\": [\"electronicSubmission\", \"inPerson\"]},"
					" \"parties\": [{\"id\": \"p1\", \"roles\": [\"buyer\", \"payer\"],"
					" \"additionalIdentifiers\": [{\"id\": \"x\", \"scheme\": \"S\"}]}],"
					" \"x_list\": [\"a\", \"b\"], \"x_mixed\": [{\"id\": \"o\"}, \"s\"]},"
					" {" R("r2",
					       "2020-01-02T00:00:00Z") ", \"tender\": {\"items\": [{\"id\": \"i1\","
								       " \"additionalClassifications\": [{\"id\": \"c2\", \"description\": \"replaces\"}]}],"
								       " \"submissionMethod\": [\"written\"]},"
								       " \"parties\": [{\"id\": \"p1\", \"roles\": [], \"additionalIdentifiers\": []}],"
								       " \"x_list\": [\"c\"], \"x_mixed\": [{\"id\": \"o2\"}, 1]}]");

	(void)state;
	/* Marked wholeListMerge (even with ids inside), strings, or a mix: the later array replaces the
	   earlier one as it is, even when empty. */
	check_json(
		c,
		"{" META(
			"",
			"2020-01-02T00:00:00Z") ", \"tender\": {\"items\": [{\"id\": \"i1\","
						" \"additionalClassifications\": [{\"id\": \"c2\", \"description\": \"replaces\"}]}],"
						" \"submissionMethod\": [\"written\"]},"
						" \"parties\": [{\"id\": \"p1\", \"roles\": [], \"additionalIdentifiers\": []}],"
						" \"x_list\": [\"c\"], \"x_mixed\": [{\"id\": \"o2\"}, 1]}");
	json_decref(c);
}

static void test_omit_when_merged(void **state)
{
	json_t *c = compile1("[{" R(
		"r1",
		"2020-01-01T00:00:00Z") ", \"tag\": [\"tender\"], \"initiationType\": \"tender\"},"
					" {" R("r2",
					       "2020-01-05T00:00:00+01:00") ", \"tag\": [\"award\", \"tenderUpdate\"]}]");

	(void)state;
	/* id, date and tag of the releases are not merged: the compiled release has its own. */
	check_json(
		c,
		"{\"ocid\": \"ocds-a-1\", \"id\": \"ocds-a-1-2020-01-05T00:00:00+01:00\","
		" \"date\": \"2020-01-05T00:00:00+01:00\", \"tag\": [\"compiled\"], \"initiationType\": \"tender\"}");
	json_decref(c);
}

static void test_null_removes(void **state)
{
	json_t *c = compile1("[{" R(
		"r1",
		"2020-01-01T00:00:00Z") ", \"tender\": {\"title\": \"T\", \"description\": \"D\","
					" \"value\": {\"amount\": 1}, \"items\": [{\"id\": \"i1\", \"description\": \"x\", \"quantity\": 1}]},"
					" \"planning\": {\"rationale\": \"R\"}, \"x_gone\": [1, 2]},"
					" {" R("r2",
					       "2020-01-02T00:00:00Z") ", \"tender\": {\"description\": null, \"value\": null,"
								       " \"items\": [{\"id\": \"i1\", \"description\": null}, {\"id\": \"i2\", \"quantity\": null,"
								       " \"unit\": {\"name\": null}}]}, \"planning\": {}, \"x_gone\": null, \"x_new\": {\"a\": null}}]");

	(void)state;
	/* null removes a literal, an object or an array; inside a new object it is left out; an empty
	   object changes nothing. */
	check_json(
		c,
		"{" META(
			"",
			"2020-01-02T00:00:00Z") ", \"tender\": {\"title\": \"T\","
						" \"items\": [{\"id\": \"i1\", \"quantity\": 1}, {\"id\": \"i2\", \"unit\": {}}]},"
						" \"planning\": {\"rationale\": \"R\"}, \"x_new\": {}}");
	json_decref(c);
}

static void test_several_ocids(void **state)
{
	json_t *records =
		records_of("[{\"ocid\": \"ocds-b-2\", \"id\": \"1\", \"date\": \"2020-01-03T00:00:00Z\", \"x\": 1},"
			   " {\"ocid\": \"ocds-a-1\", \"id\": \"1\", \"date\": \"2020-01-01T00:00:00Z\", \"x\": 2},"
			   " {\"ocid\": \"ocds-b-2\", \"id\": \"2\", \"date\": \"2020-01-02T00:00:00Z\", \"x\": 3}]",
			   false);

	(void)state;
	/* One record per ocid, in order of first appearance; its releases by date. */
	check_json(records, "[{\"ocid\": \"ocds-b-2\", \"releases\": ["
			    "  {\"ocid\": \"ocds-b-2\", \"id\": \"2\", \"date\": \"2020-01-02T00:00:00Z\", \"x\": 3},"
			    "  {\"ocid\": \"ocds-b-2\", \"id\": \"1\", \"date\": \"2020-01-03T00:00:00Z\", \"x\": 1}],"
			    "  \"compiledRelease\": {\"ocid\": \"ocds-b-2\", \"id\": \"ocds-b-2-2020-01-03T00:00:00Z\","
			    "  \"date\": \"2020-01-03T00:00:00Z\", \"tag\": [\"compiled\"], \"x\": 1}},"
			    " {\"ocid\": \"ocds-a-1\", \"releases\": ["
			    "  {\"ocid\": \"ocds-a-1\", \"id\": \"1\", \"date\": \"2020-01-01T00:00:00Z\", \"x\": 2}],"
			    "  \"compiledRelease\": {\"ocid\": \"ocds-a-1\", \"id\": \"ocds-a-1-2020-01-01T00:00:00Z\","
			    "  \"date\": \"2020-01-01T00:00:00Z\", \"tag\": [\"compiled\"], \"x\": 2}}]");
	json_decref(records);
}

static void test_refusals(void **state)
{
	static const struct {
		const char *releases, *message;
	} cases[] = {
		{ "[{\"ocid\": \"ocds-a-1\", \"id\": \"1\"}]", "release 0 (ocid ocds-a-1): no date" },
		{ "[{\"ocid\": \"ocds-a-1\", \"date\": \"2020-01-01T00:00:00Z\"}, {\"ocid\": \"ocds-a-1\", \"date\": \"yesterday\"}]",
		  "release 1 (ocid ocds-a-1): no date" },
		{ "[{\"ocid\": \"ocds-a-1\", \"date\": \"2020-01-01\"}]", "no date" },
		{ "[{\"id\": \"1\", \"date\": \"2020-01-01T00:00:00Z\"}]", "release 0: no ocid" },
		{ "[{\"ocid\": 5, \"date\": \"2020-01-01T00:00:00Z\"}]", "release 0: no ocid" },
		{ "[{\"ocid\": \"ocds-a-1\", \"date\": \"2020-01-01T00:00:00Z\"}, []]", "release 1: not an object" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[TD_ERRMSG_MAX] = "";
		json_t *rels = parse(cases[i].releases);
		assert_null(td_merge_records(rels, false, err, sizeof err));
		assert_null(td_merge_records(rels, true, err, sizeof err));
		if (strstr(err, cases[i].message) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].message);
		json_decref(rels);
	}
	/* No releases, no records. */
	json_t *none = records_of("[]", false);
	assert_int_equal(json_array_size(none), 0);
	json_decref(none);
}

static void test_inputs_untouched(void **state)
{
	const char *text = "[{" R(
		"r2",
		"2020-01-02T00:00:00Z") ", \"tender\": {\"title\": null}},"
					" {" R("r1",
					       "2020-01-01T00:00:00Z") ", \"tender\": {\"title\": \"T\", \"items\": [{\"id\": \"1\"}]}}]";
	json_t *rels = parse(text), *copy = json_deep_copy(rels);
	char err[TD_ERRMSG_MAX];
	json_t *a = td_merge_records(rels, false, err, sizeof err), *b = td_merge_records(rels, true, err, sizeof err);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_true(json_equal(rels, copy));
	json_decref(a);
	json_decref(b);
	json_decref(rels);
	json_decref(copy);
}

/* ---- versioned releases --------------------------------------------------- */

static void test_versioned(void **state)
{
	json_t *v = versioned1("[{" R(
		"r1",
		"2020-01-01T00:00:00Z") ", \"tag\": [\"tender\"], \"tender\": {\"title\": \"T\","
					" \"value\": {\"amount\": 1.0}, \"submissionMethod\": [\"written\"], \"x_empty\": {},"
					" \"items\": [{\"id\": \"i1\", \"quantity\": 1}]}},"
					" {" R("r2",
					       "2020-01-02T00:00:00Z") ", \"tag\": [\"tenderAmendment\"], \"tender\": {\"title\": \"T\","
								       " \"value\": {\"amount\": 1.00}, \"submissionMethod\": [\"written\"],"
								       " \"items\": [{\"id\": \"i1\", \"quantity\": 2}, {\"id\": \"i2\", \"quantity\": null}, {\"quantity\": 3}]}},"
								       " {" R("r3",
									      "2020-01-03T00:00:00Z") ", \"tender\": {\"title\": null, \"value\": {\"amount\": 10e-1},"
												      " \"submissionMethod\": [\"written\", \"inPerson\"]}},"
												      " {" R("r4",
													     "2020-01-04T00:00:00Z") ", \"tag\": [\"tenderUpdate\"], \"tender\": {\"value\": {\"amount\": 1.5}}}]");

	(void)state;
	/* ocid is not versioned; id, date and tag become releaseID, releaseDate, releaseTag (null without a
	   tag); a value gets a new version only when it differs from the latest (1.0, 1.00 and 10e-1 are
	   one number);
	   null is a version; a whole list is one value; an item's id is kept as it is; an empty object
	   leaves nothing. */
	check_json(
		v,
		"{\"ocid\": \"ocds-a-1\", \"tender\": {"
		" \"title\": [" V("r1", "2020-01-01T00:00:00Z", "[\"tender\"]", "\"T\"") "," V(
			"r3", "2020-01-03T00:00:00Z", "null",
			"null") "],"
				" \"value\": {\"amount\": [" V("r1", "2020-01-01T00:00:00Z", "[\"tender\"]", "1.0") "," V(
					"r4", "2020-01-04T00:00:00Z", "[\"tenderUpdate\"]",
					"1.5") "]},"
					       " \"submissionMethod\": [" V("r1", "2020-01-01T00:00:00Z", "[\"tender\"]", "[\"written\"]") "," V(
						       "r3", "2020-01-03T00:00:00Z", "null",
						       "[\"written\", \"inPerson\"]") "],"
										      " \"items\": [{\"id\": \"i1\", \"quantity\": [" V(
											      "r1",
											      "2020-01-01T00:00:00Z",
											      "[\"tender\"]",
											      "1") "," V("r2",
													 "2020-01-02T00:00:00Z",
													 "[\"tenderAmendment\"]",
													 "2") "]},"
													      " {\"id\": \"i2\", \"quantity\": [" V(
														      "r2",
														      "2020-01-02T00:00:00Z",
														      "[\"tenderAmendment\"]",
														      "null") "]},"
															      " {\"quantity\": [" V(
																      "r2",
																      "2020-01-02T00:00:00Z",
																      "[\"tenderAmendment\"]",
																      "3") "]}]}}");
	json_decref(v);
}

/* ---- the sample lifecycles ------------------------------------------------- */

/* One lifecycle of tests/data/samples as the node builds it: tests/data/merge/<name>-*.json. */
struct lifecycle {
	const char *name, *agency;
	struct {
		const char *file; /* a sample fragment, or NULL for a cancellation */
		enum td_kind kind;
		const char *ocid;
		uint64_t time_ms;
	} steps[3];
	size_t n;
};

static const struct lifecycle lifecycles[] = {
	{ "jeju",
	  "Jeju Special Self-Governing Province",
	  { { "tender-jeju.json", TD_KIND_TENDER, NULL, T0 },
	    { "amend-jeju.json", TD_KIND_AMENDMENT, "ocds-kr2020-jeju-0001", T0 + 11 * DAY_MS },
	    { "award-jeju.json", TD_KIND_AWARD, NULL, T0 + 46 * DAY_MS } },
	  3 },
	{ "kisa",
	  "Korea Internet & Security Agency",
	  { { "tender-kisa.json", TD_KIND_TENDER, NULL, T0 - 20 * DAY_MS } },
	  1 },
	{ "private",
	  "Korea Internet & Security Agency",
	  { { "tender-private.json", TD_KIND_TENDER, NULL, T0 - 19 * DAY_MS } },
	  1 },
	{ "gangwon", "Gangwon Province", { { "tender-gangwon.json", TD_KIND_TENDER, NULL, T0 + 3 * DAY_MS } }, 1 },
	{ "sejong",
	  "Sejong Special Self-Governing City",
	  { { "tender-sejong.json", TD_KIND_TENDER, NULL, T0 + 6 * DAY_MS },
	    { NULL, TD_KIND_CANCELLATION, "ocds-kr2020-sj-0001", T0 + 30 * DAY_MS } },
	  2 },
};

static json_t *load_merge(const char *name, const char *suffix)
{
	char path[512];

	snprintf(path, sizeof path, "%s%s-%s.json", MERGE, name, suffix);
	return load(path);
}

/* The node's compiled release of every lifecycle, built from the samples, is what it was before. */
static void test_node_compiled_samples(void **state)
{
	(void)state;
	for (size_t l = 0; l < sizeof(lifecycles) / sizeof(lifecycles[0]); l++) {
		const struct lifecycle *lc = &lifecycles[l];
		json_t *compiled = json_object(), *want = load_merge(lc->name, "node-compiled");
		for (size_t i = 0; i < lc->n; i++) {
			char path[512], err[TD_ERRMSG_MAX] = "";
			json_t *frag, *rel;
			if (lc->steps[i].file) {
				snprintf(path, sizeof path, "%s%s", SAMPLES, lc->steps[i].file);
				frag = load(path);
			} else {
				frag = parse("{\"tender\": {\"statusDetails\": \"Merged into the national food-safety "
					     "pilot of the Ministry of Food and Drug Safety\"}}");
			}
			rel = td_release_build(frag, lc->steps[i].kind, lc->steps[i].ocid, lc->steps[i].time_ms,
					       lc->agency, err, sizeof err);
			if (!rel)
				fail_msg("%s step %zu refused: %s", lc->name, i, err);
			td_release_merge(compiled, rel);
			json_decref(rel);
			json_decref(frag);
		}
		/* The same bytes, key order included. */
		char *g = td_json_dump(compiled, JSON_INDENT(2)), *w = td_json_dump(want, JSON_INDENT(2));
		if (strcmp(g, w) != 0)
			fail_msg("%s: the node's compiled release changed:\n%s\nwas\n%s", lc->name, g, w);
		free(g);
		free(w);
		json_decref(compiled);
		json_decref(want);
	}
}

/* Compiling a lifecycle's release package gives the node's compiled release but for its id, and the record. */
static void test_compile_samples(void **state)
{
	(void)state;
	for (size_t l = 0; l < sizeof(lifecycles) / sizeof(lifecycles[0]); l++) {
		const char *name = lifecycles[l].name;
		json_t *pkg = load_merge(name, "releases"), *node = load_merge(name, "node-compiled");
		json_t *want = load_merge(name, "record");
		char err[TD_ERRMSG_MAX] = "", id[256];
		json_t *records = td_merge_records(json_object_get(pkg, "releases"), false, err, sizeof err);
		json_t *compiled;

		if (!records)
			fail_msg("%s: %s", name, err);
		assert_int_equal(json_array_size(records), 1);
		compiled = json_object_get(json_array_get(records, 0), "compiledRelease");
		assert_true(json_equal(records, json_object_get(want, "records")));
		snprintf(id, sizeof id, "%s-%s", json_string_value(json_object_get(node, "ocid")),
			 json_string_value(json_object_get(node, "date")));
		assert_string_equal(json_string_value(json_object_get(compiled, "id")), id);
		json_object_set(node, "id", json_object_get(compiled, "id"));
		assert_true(json_equal(compiled, node));
		json_decref(records);
		json_decref(want);
		json_decref(node);
		json_decref(pkg);
	}
}

static void test_jeju_versioned(void **state)
{
	json_t *pkg = load_merge("jeju", "releases"), *want = load_merge("jeju", "versioned-record");
	char err[TD_ERRMSG_MAX] = "";
	json_t *records = td_merge_records(json_object_get(pkg, "releases"), true, err, sizeof err);
	const json_t *v;

	(void)state;
	assert_non_null(records);
	assert_true(json_equal(records, json_object_get(want, "records")));
	v = json_object_get(json_array_get(records, 0), "versionedRelease");
	/* Spot checks of the expected file itself: the amendment's new deadline is a second version. */
	check_json(json_object_get(json_object_get(json_object_get(v, "tender"), "tenderPeriod"), "endDate"),
		   "[" V("ocds-kr2020-jeju-0001-1583712000000", "2020-03-09T00:00:00.000Z", "[\"tender\"]",
			 "\"2020-03-27T18:00:00+09:00\"") "," V("ocds-kr2020-jeju-0001-1584662400000",
								"2020-03-20T00:00:00.000Z", "[\"tenderAmendment\"]",
								"\"2020-04-10T18:00:00+09:00\"") "]");
	check_json(json_object_get(json_object_get(json_object_get(v, "tender"), "value"), "amount"),
		   "[" V("ocds-kr2020-jeju-0001-1583712000000", "2020-03-09T00:00:00.000Z", "[\"tender\"]",
			 "712500000.50") "]");
	check_json(json_object_get(json_array_get(json_object_get(v, "parties"), 1), "roles"),
		   "[" V("ocds-kr2020-jeju-0001-1587686400000", "2020-04-24T00:00:00.000Z", "[\"award\"]",
			 "[\"buyer\"]") "]");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(v, "awards"), 0), "id")),
			    "jeju-2020-0001-a1");
	assert_string_equal(json_string_value(json_object_get(v, "ocid")), "ocds-kr2020-jeju-0001");
	assert_null(json_object_get(v, "id"));
	assert_null(json_object_get(v, "date"));
	assert_null(json_object_get(v, "tag"));
	json_decref(records);
	json_decref(want);
	json_decref(pkg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_from_schema),
		cmocka_unit_test(test_order_by_date),
		cmocka_unit_test(test_objects_merge_by_property),
		cmocka_unit_test(test_identifier_merge),
		cmocka_unit_test(test_whole_list_merge),
		cmocka_unit_test(test_omit_when_merged),
		cmocka_unit_test(test_null_removes),
		cmocka_unit_test(test_several_ocids),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_inputs_untouched),
		cmocka_unit_test(test_versioned),
		cmocka_unit_test(test_node_compiled_samples),
		cmocka_unit_test(test_compile_samples),
		cmocka_unit_test(test_jeju_versioned),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
