/*
 * Unit tests for proto/release.c: every sample release builds and validates,
 * exact amounts survive, each validation rule refuses with the field's path,
 * OCDS merge rules, summaries, dates and kinds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/release.h"

#define SAMPLES TD_TEST_DATA "/samples/"
#define T0 1583712000000ULL /* 2020-03-09T00:00:00.000Z */
#define AGENCY "Jeju Special Self-Governing Province"

/* ---- helpers -------------------------------------------------------------- */

static json_t *parse(const char *text)
{
	char err[TD_ERRMSG_MAX];
	json_t *v = td_json_load(text, strlen(text), err, sizeof err);

	if (v == NULL)
		fail_msg("bad test JSON: %s", err);
	return v;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static json_t *load_sample(const char *name)
{
	char path[512], err[TD_ERRMSG_MAX];
	size_t len;
	char *buf;
	json_t *v;

	snprintf(path, sizeof path, "%s%s", SAMPLES, name);
	buf = read_all(path, &len);
	v = td_json_load(buf, len, err, sizeof err);
	free(buf);
	if (v == NULL)
		fail_msg("%s: %s", name, err);
	return v;
}

/* Builds a sample as the given kind; fails the test if refused. */
static json_t *build_sample(const char *name, enum td_kind kind, const char *ocid, uint64_t t)
{
	char err[TD_ERRMSG_MAX] = "";
	json_t *frag = load_sample(name);
	json_t *r = td_release_build(frag, kind, ocid, t, AGENCY, err, sizeof err);

	if (r == NULL)
		fail_msg("%s refused: %s", name, err);
	json_decref(frag);
	return r;
}

static const char *str(const json_t *v)
{
	assert_true(td_json_is_string(v));
	return json_string_value(v);
}

static void assert_number_text(const json_t *v, const char *want)
{
	size_t len;
	const char *t = td_json_number_text(v, &len);

	assert_non_null(t);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(t, want, len);
}

/* The value at a dotted path ("tender.value.amount", "awards.0.id"). */
static json_t *at(json_t *v, const char *path)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = strtok_r(buf, ".", &save); p && v; p = strtok_r(NULL, ".", &save)) {
		if (json_is_array(v))
			v = json_array_get(v, strtoul(p, NULL, 10));
		else
			v = json_object_get(v, p);
	}
	return v;
}

/* A valid tender release to break one field at a time. */
static const char *const base_tender =
	"{\"ocid\": \"ocds-kr2020-test-0001\", \"id\": \"r1\", \"date\": \"2020-03-09T09:00:00+09:00\","
	" \"tag\": [\"tender\"], \"initiationType\": \"tender\","
	" \"buyer\": {\"name\": \"Agency\"},"
	" \"parties\": [{\"id\": \"AG\", \"name\": \"Agency\", \"roles\": [\"buyer\", \"procuringEntity\"]}],"
	" \"tender\": {\"id\": \"t1\", \"title\": \"T\", \"status\": \"active\","
	"  \"value\": {\"amount\": 100.25, \"currency\": \"KRW\"},"
	"  \"procurementMethod\": \"open\", \"mainProcurementCategory\": \"works\","
	"  \"tenderPeriod\": {\"startDate\": \"2020-03-09T09:00:00+09:00\", \"endDate\": \"2020-03-27T18:00:00Z\"},"
	"  \"amendments\": [{\"id\": \"a0\", \"date\": \"2020-03-10T09:00:00+09:00\", \"rationale\": \"typo\"}],"
	"  \"items\": [{\"id\": \"1\"}], \"documents\": [{\"id\": \"d1\"}],"
	"  \"submissionMethod\": [\"electronicSubmission\"], \"awardCriteria\": \"priceOnly\"}}";

static const char *const base_award =
	"{\"ocid\": \"ocds-kr2020-test-0001\", \"id\": \"r2\", \"date\": \"2020-04-24T15:00:00.5+09:00\","
	" \"tag\": [\"award\"], \"initiationType\": \"tender\","
	" \"awards\": [{\"id\": \"aw1\", \"status\": \"active\", \"date\": \"2020-04-24T15:00:00+09:00\","
	"  \"value\": {\"amount\": 5, \"currency\": \"USD\"},"
	"  \"suppliers\": [{\"id\": \"S1\", \"name\": \"Supplier One\"}]}]}";

/* Sets the member at a dotted path of parent objects (last component is the key). */
static void set_at(json_t *root, const char *path, json_t *value)
{
	char buf[256];
	char *dot;
	json_t *parent = root;

	snprintf(buf, sizeof buf, "%s", path);
	dot = strrchr(buf, '.');
	if (dot) {
		*dot = '\0';
		parent = at(root, buf);
	}
	assert_non_null(parent);
	if (json_is_array(parent))
		assert_int_equal(json_array_set_new(parent, strtoul(dot + 1, NULL, 10), value), 0);
	else
		assert_int_equal(json_object_set_new(parent, dot ? dot + 1 : buf, value), 0);
}

/* Breaks base at path with value (JSON text; NULL deletes) and expects a refusal mentioning want. */
static void refused(const char *base, enum td_kind kind, const char *path, const char *value, const char *want)
{
	char err[TD_ERRMSG_MAX] = "";
	json_t *r = parse(base);

	assert_int_equal(td_release_validate(r, kind, err, sizeof err), 0);
	if (value) {
		set_at(r, path, parse(value));
	} else {
		char buf[256], *dot;
		snprintf(buf, sizeof buf, "%s", path);
		dot = strrchr(buf, '.');
		if (dot) {
			*dot = '\0';
			assert_int_equal(json_object_del(at(r, buf), dot + 1), 0);
		} else {
			assert_int_equal(json_object_del(r, buf), 0);
		}
	}
	assert_int_equal(td_release_validate(r, kind, err, sizeof err), TD_EINVAL);
	if (strstr(err, want) == NULL)
		fail_msg("breaking %s: message \"%s\" lacks \"%s\"", path, err, want);
	json_decref(r);
}

/* ---- samples -------------------------------------------------------------- */

static void test_samples_validate(void **state)
{
	char err[TD_ERRMSG_MAX];
	DIR *d = opendir(SAMPLES);
	struct dirent *e;
	int tenders = 0, others = 0;

	(void)state;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		const char *n = e->d_name;
		size_t len = strlen(n);
		enum td_kind kind = TD_KIND_TENDER;
		const char *ocid = NULL;
		json_t *r;

		if (len < 5 || strcmp(n + len - 5, ".json") != 0)
			continue;
		if (strncmp(n, "tender-", 7) == 0) {
			kind = TD_KIND_TENDER;
			tenders++;
		} else if (strcmp(n, "amend-jeju.json") == 0) {
			kind = TD_KIND_AMENDMENT;
			ocid = "ocds-kr2020-jeju-0001";
			others++;
		} else if (strcmp(n, "award-jeju.json") == 0) {
			kind = TD_KIND_AWARD;
			others++;
		} else {
			fail_msg("unknown sample %s", n);
		}
		r = build_sample(n, kind, ocid, T0);
		assert_int_equal(td_release_validate(r, kind, err, sizeof err), 0);
		/* The same release is refused under any other kind's tag. */
		for (int k = TD_KIND_MIN; k <= TD_KIND_MAX; k++) {
			if (k != (int)kind)
				assert_int_equal(td_release_validate(r, (enum td_kind)k, err, sizeof err), TD_EINVAL);
		}
		assert_true(strncmp(str(json_object_get(r, "ocid")), "ocds-kr2020-", 12) == 0);
		json_decref(r);
	}
	closedir(d);
	assert_int_equal(tenders, 5);
	assert_int_equal(others, 2);
}

static void test_exact_amount(void **state)
{
	json_t *r = build_sample("tender-jeju.json", TD_KIND_TENDER, NULL, T0);
	char *text = td_json_dump(r, JSON_COMPACT);

	(void)state;
	assert_non_null(text);
	assert_non_null(strstr(text, "\"amount\":712500000.50,"));
	assert_number_text(at(r, "tender.value.amount"), "712500000.50");
	free(text);
	json_decref(r);
}

/* ---- building ------------------------------------------------------------- */

static void test_build_sets_fields(void **state)
{
	char err[TD_ERRMSG_MAX];
	json_t *frag = load_sample("tender-jeju.json");
	char *before = td_json_dump(frag, JSON_COMPACT);
	json_t *r = td_release_build(frag, TD_KIND_TENDER, "ocds-kr2020-jeju-0001", T0, AGENCY, err, sizeof err);
	char *after = td_json_dump(frag, JSON_COMPACT);
	const char *key;
	json_t *v;
	int i = 0;

	(void)state;
	assert_non_null(r);
	assert_string_equal(before, after); /* the fragment is not modified */
	assert_string_equal(str(json_object_get(r, "ocid")), "ocds-kr2020-jeju-0001");
	assert_string_equal(str(json_object_get(r, "id")), "ocds-kr2020-jeju-0001-1583712000000");
	assert_string_equal(str(json_object_get(r, "date")), "2020-03-09T00:00:00.000Z");
	assert_int_equal(json_array_size(json_object_get(r, "tag")), 1);
	assert_string_equal(str(at(r, "tag.0")), "tender");
	assert_string_equal(str(json_object_get(r, "initiationType")), "tender");
	assert_string_equal(str(at(r, "buyer.name")), AGENCY);
	assert_string_equal(str(at(r, "tender.title")),
			    "Blockchain-based electric vehicle battery life-cycle management system");
	assert_null(json_object_get(r, "parties")); /* only awards list parties */
	/* The node's fields come first. */
	json_object_foreach(r, key, v) {
		static const char *const first[] = { "ocid", "id", "date", "tag", "initiationType" };
		if (i < 5)
			assert_string_equal(key, first[i]);
		i++;
	}
	free(before);
	free(after);
	json_decref(r);
	json_decref(frag);
}

static void test_build_fragment_keys(void **state)
{
	char err[TD_ERRMSG_MAX];
	json_t *frag =
		parse("{\"ocid\": \"ocds-kr2020-x-1\", \"id\": \"my-release\", \"date\": \"1999-01-01T00:00:00Z\","
		      " \"tag\": [\"award\"], \"initiationType\": \"award\", \"buyer\": {\"name\": \"Own Buyer\"},"
		      " \"tender\": {\"id\": \"t\", \"title\": \"T\", \"status\": \"planned\"}}");
	json_t *r = td_release_build(frag, TD_KIND_TENDER, NULL, T0, AGENCY, err, sizeof err);

	(void)state;
	assert_non_null(r);
	assert_string_equal(str(json_object_get(r, "ocid")), "ocds-kr2020-x-1");
	assert_string_equal(str(json_object_get(r, "id")), "my-release");
	assert_string_equal(str(json_object_get(r, "date")), "2020-03-09T00:00:00.000Z");
	assert_string_equal(str(at(r, "tag.0")), "tender");
	assert_string_equal(str(json_object_get(r, "initiationType")), "tender");
	assert_string_equal(str(at(r, "buyer.name")), "Own Buyer");
	json_decref(r);

	/* An ocid argument that disagrees with the fragment's is refused. */
	r = td_release_build(frag, TD_KIND_TENDER, "ocds-kr2020-x-2", T0, AGENCY, err, sizeof err);
	assert_null(r);
	assert_non_null(strstr(err, "ocid"));
	json_decref(frag);

	/* No ocid anywhere. */
	frag = parse("{\"tender\": {\"id\": \"t\", \"title\": \"T\", \"status\": \"active\"}}");
	assert_null(td_release_build(frag, TD_KIND_TENDER, NULL, T0, AGENCY, err, sizeof err));
	assert_non_null(strstr(err, "ocid"));
	/* A valid build without agency name has no buyer. */
	r = td_release_build(frag, TD_KIND_TENDER, "ocds-kr2020-x-3", T0, NULL, err, sizeof err);
	assert_non_null(r);
	assert_null(json_object_get(r, "buyer"));
	json_decref(r);
	json_decref(frag);

	/* A fragment that builds but fails validation: the refusal names the path. */
	frag = parse("{\"tender\": {\"id\": \"t\", \"title\": \"T\", \"status\": \"open\"}}");
	assert_null(td_release_build(frag, TD_KIND_TENDER, "ocds-kr2020-x-3", T0, AGENCY, err, sizeof err));
	assert_string_equal(err, "tender.status: \"open\" is not in the tenderStatus code list");
	json_decref(frag);

	/* Not an object. */
	frag = parse("[1]");
	assert_null(td_release_build(frag, TD_KIND_TENDER, "ocds-kr2020-x-3", T0, AGENCY, err, sizeof err));
	json_decref(frag);
}

static void test_build_cancellation(void **state)
{
	char err[TD_ERRMSG_MAX];
	json_t *frag = parse("{}");
	json_t *r = td_release_build(frag, TD_KIND_CANCELLATION, "ocds-kr2020-sj-0001", T0, AGENCY, err, sizeof err);

	(void)state;
	assert_non_null(r);
	assert_string_equal(str(at(r, "tender.status")), "cancelled");
	assert_string_equal(str(at(r, "tag.0")), "tenderCancellation");
	json_decref(r);
	json_decref(frag);

	frag = parse("{\"tender\": {\"status\": \"active\", \"description\": \"budget withdrawn\"}}");
	r = td_release_build(frag, TD_KIND_CANCELLATION, "ocds-kr2020-sj-0001", T0, AGENCY, err, sizeof err);
	assert_non_null(r);
	assert_string_equal(str(at(r, "tender.status")), "cancelled");
	assert_string_equal(str(at(r, "tender.description")), "budget withdrawn");
	json_decref(r);
	json_decref(frag);

	frag = parse("{\"tender\": \"cancel it\"}");
	assert_null(td_release_build(frag, TD_KIND_CANCELLATION, "ocds-kr2020-sj-0001", T0, AGENCY, err, sizeof err));
	assert_string_equal(err, "tender: must be an object");
	json_decref(frag);
}

static void test_build_award_parties(void **state)
{
	char err[TD_ERRMSG_MAX];
	json_t *r = build_sample("award-jeju.json", TD_KIND_AWARD, NULL, T0);
	json_t *parties = json_object_get(r, "parties");
	json_t *frag;

	(void)state;
	assert_int_equal(json_array_size(parties), 2);
	assert_string_equal(str(at(parties, "0.id")), "KR-BRN-1078613406");
	assert_string_equal(str(at(parties, "0.name")), "LG CNS");
	assert_string_equal(str(at(parties, "0.roles.0")), "supplier");
	assert_string_equal(str(at(parties, "1.id")), AGENCY);
	assert_string_equal(str(at(parties, "1.roles.0")), "buyer");
	assert_number_text(at(r, "awards.0.value.amount"), "698000000");
	json_decref(r);

	/* Suppliers already listed and a buyer party present: nothing added; a supplier without id uses its name. */
	frag = parse("{\"parties\": [{\"id\": \"S1\", \"name\": \"One\", \"roles\": [\"supplier\", \"tenderer\"]},"
		     " {\"id\": \"B\", \"roles\": [\"buyer\"]}],"
		     " \"awards\": [{\"id\": \"a\", \"suppliers\": [{\"id\": \"S1\", \"name\": \"One\"},"
		     " {\"name\": \"Two\"}, {\"name\": \"Two\"}]}]}");
	r = td_release_build(frag, TD_KIND_AWARD, "ocds-kr2020-x-1", T0, AGENCY, err, sizeof err);
	assert_non_null(r);
	parties = json_object_get(r, "parties");
	assert_int_equal(json_array_size(parties), 3);
	assert_string_equal(str(at(parties, "2.id")), "Two");
	assert_string_equal(str(at(parties, "2.roles.0")), "supplier");
	json_decref(r);
	json_decref(frag);

	/* No supplier and no agency name: no empty "parties" appears. */
	frag = parse("{\"awards\": [{\"id\": \"a\", \"status\": \"pending\"}]}");
	r = td_release_build(frag, TD_KIND_AWARD, "ocds-kr2020-x-1", T0, NULL, err, sizeof err);
	assert_non_null(r);
	assert_null(json_object_get(r, "parties"));
	json_decref(r);
	r = td_release_build(frag, TD_KIND_AWARD, "ocds-kr2020-x-1", T0, AGENCY, err, sizeof err);
	assert_non_null(r);
	assert_int_equal(json_array_size(json_object_get(r, "parties")), 1);
	assert_string_equal(str(at(r, "parties.0.roles.0")), "buyer");
	assert_string_equal(str(at(r, "parties.0.name")), AGENCY);
	json_decref(r);
	json_decref(frag);

	frag = parse("{\"awards\": []}");
	assert_null(td_release_build(frag, TD_KIND_AWARD, "ocds-kr2020-x-1", T0, AGENCY, err, sizeof err));
	assert_string_equal(err, "awards: must not be empty");
	json_decref(frag);
}

/* ---- refusals ------------------------------------------------------------- */

static void test_refuse_top_level(void **state)
{
	(void)state;
	refused(base_tender, TD_KIND_TENDER, "ocid", "\"ocd-kr2020-test\"", "ocid: must start with \"ocds-\"");
	refused(base_tender, TD_KIND_TENDER, "ocid", "\"ocds-\"", "ocid:");
	refused(base_tender, TD_KIND_TENDER, "ocid", "\"ocds-kr2020 test\"", "ocid: must be printable ASCII");
	refused(base_tender, TD_KIND_TENDER, "ocid", "12", "ocid: must be a string");
	refused(base_tender, TD_KIND_TENDER, "ocid", NULL, "ocid: is required");
	refused(base_tender, TD_KIND_TENDER, "id", "\"\"", "id: must not be empty");
	refused(base_tender, TD_KIND_TENDER, "id", NULL, "id: is required");
	refused(base_tender, TD_KIND_TENDER, "date", "\"2020-03-09 09:00:00+09:00\"", "date: must be an ISO 8601");
	refused(base_tender, TD_KIND_TENDER, "date", "\"2020-03-09T09:00:00\"", "date:");
	refused(base_tender, TD_KIND_TENDER, "date", "\"2020-02-30T09:00:00Z\"", "date:");
	refused(base_tender, TD_KIND_TENDER, "date", NULL, "date: is required");
	refused(base_tender, TD_KIND_TENDER, "tag", "[\"award\"]", "tag: must be [\"tender\"]");
	refused(base_tender, TD_KIND_TENDER, "tag", "[\"tender\", \"award\"]", "tag:");
	refused(base_tender, TD_KIND_TENDER, "tag", "\"tender\"", "tag:");
	refused(base_tender, TD_KIND_TENDER, "tag", NULL, "tag: is required");
	refused(base_tender, TD_KIND_TENDER, "initiationType", "\"award\"", "initiationType: must be \"tender\"");
	refused(base_tender, TD_KIND_TENDER, "buyer", "{\"id\": \"x\"}", "buyer.name: is required");
	refused(base_tender, TD_KIND_TENDER, "buyer", "\"Agency\"", "buyer: must be an object");
}

static void test_refuse_ocid_too_long(void **state)
{
	char err[TD_ERRMSG_MAX], ocid[TD_OCID_MAX + 2];
	json_t *r = parse(base_tender);

	(void)state;
	memset(ocid, 'a', sizeof ocid - 1);
	memcpy(ocid, "ocds-", 5);
	ocid[TD_OCID_MAX] = '\0';
	json_object_set_new(r, "ocid", json_string(ocid));
	assert_int_equal(td_release_validate(r, TD_KIND_TENDER, err, sizeof err), 0);
	ocid[TD_OCID_MAX] = 'a';
	ocid[TD_OCID_MAX + 1] = '\0';
	json_object_set_new(r, "ocid", json_string(ocid));
	assert_int_equal(td_release_validate(r, TD_KIND_TENDER, err, sizeof err), TD_EINVAL);
	assert_non_null(strstr(err, "ocid: is longer than"));
	json_decref(r);
}

static void test_refuse_code_lists(void **state)
{
	(void)state;
	refused(base_tender, TD_KIND_TENDER, "tender.status", "\"open\"",
		"tender.status: \"open\" is not in the tenderStatus code list");
	refused(base_tender, TD_KIND_TENDER, "tender.procurementMethod", "\"auction\"",
		"tender.procurementMethod: \"auction\" is not in the method code list");
	refused(base_tender, TD_KIND_TENDER, "tender.mainProcurementCategory", "\"food\"",
		"tender.mainProcurementCategory: \"food\" is not in the procurementCategory code list");
	refused(base_tender, TD_KIND_TENDER, "parties.0.roles", "[\"buyer\", \"boss\"]",
		"parties[0].roles[1]: \"boss\" is not in the partyRole code list");
	refused(base_award, TD_KIND_AWARD, "awards.0.status", "\"done\"",
		"awards[0].status: \"done\" is not in the awardStatus code list");
	/* Code lists are case-sensitive and exact. */
	refused(base_tender, TD_KIND_TENDER, "tender.status", "\"Active\"", "tender.status:");
	refused(base_tender, TD_KIND_TENDER, "tender.status", "\"active \"", "tender.status:");
	refused(base_tender, TD_KIND_TENDER, "tender.status", "1", "tender.status: must be a string");
}

static void test_refuse_amounts_and_currency(void **state)
{
	(void)state;
	refused(base_tender, TD_KIND_TENDER, "tender.value.amount", "-5",
		"tender.value.amount: must be a non-negative number");
	refused(base_tender, TD_KIND_TENDER, "tender.value.amount", "-0.0", "tender.value.amount:");
	refused(base_tender, TD_KIND_TENDER, "tender.value.amount", "\"100\"",
		"tender.value.amount: must be a non-negative number");
	refused(base_award, TD_KIND_AWARD, "awards.0.value.amount", "-1", "awards[0].value.amount:");
	refused(base_tender, TD_KIND_TENDER, "tender.value.currency", "\"ABC\"",
		"tender.value.currency: \"ABC\" is not in the currency code list");
	refused(base_tender, TD_KIND_TENDER, "tender.value.currency", "\"krw\"", "tender.value.currency:");
	refused(base_tender, TD_KIND_TENDER, "tender.value.currency", "\"KRWX\"", "tender.value.currency:");
	refused(base_award, TD_KIND_AWARD, "awards.0.value.currency", "7",
		"awards[0].value.currency: must be a string");
}

/* Every code of the OCDS currency list is accepted (the C table matches the CSV). */
static void test_currency_csv(void **state)
{
	char err[TD_ERRMSG_MAX], *buf, *line, *save = NULL;
	size_t len;
	json_t *r = parse(base_tender);
	json_t *value = at(r, "tender.value");
	int n = 0;

	(void)state;
	buf = read_all(TD_TEST_DATA "/ocds/codelists/currency.csv", &len);
	line = strtok_r(buf, "\r\n", &save);
	assert_non_null(line);
	assert_true(strncmp(line, "Code,", 5) == 0);
	while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
		char *comma = strchr(line, ',');
		assert_non_null(comma);
		assert_int_equal(comma - line, 3);
		json_object_set_new(value, "currency", json_stringn(line, 3));
		if (td_release_validate(r, TD_KIND_TENDER, err, sizeof err) != 0)
			fail_msg("currency %.3s refused: %s", line, err);
		n++;
	}
	assert_int_equal(n, 302);
	free(buf);
	json_decref(r);
}

static void test_refuse_types(void **state)
{
	(void)state;
	refused(base_tender, TD_KIND_TENDER, "tender", "\"a tender\"", "tender: must be an object");
	refused(base_tender, TD_KIND_TENDER, "tender.value", "100", "tender.value: must be an object");
	refused(base_tender, TD_KIND_TENDER, "tender.tenderPeriod", "\"2020-03-09T09:00:00Z\"",
		"tender.tenderPeriod: must be an object");
	refused(base_tender, TD_KIND_TENDER, "tender.tenderPeriod.endDate", "\"next week\"",
		"tender.tenderPeriod.endDate: must be an ISO 8601");
	refused(base_tender, TD_KIND_TENDER, "tender.enquiryPeriod", "{\"startDate\": \"2020-13-01T00:00:00Z\"}",
		"tender.enquiryPeriod.startDate:");
	refused(base_tender, TD_KIND_TENDER, "tender.title", "[\"T\"]", "tender.title: must be a string");
	refused(base_tender, TD_KIND_TENDER, "tender.description", "{}", "tender.description: must be a string");
	refused(base_tender, TD_KIND_TENDER, "tender.items", "{\"id\": \"1\"}", "tender.items: must be an array");
	refused(base_tender, TD_KIND_TENDER, "tender.items.0", "\"1\"", "tender.items[0]: must be an object");
	refused(base_tender, TD_KIND_TENDER, "tender.documents.0", "{\"title\": \"x\"}",
		"tender.documents[0].id: is required");
	refused(base_tender, TD_KIND_TENDER, "tender.amendments.0.date", "\"yesterday\"", "tender.amendments[0].date:");
	refused(base_tender, TD_KIND_TENDER, "tender.amendments.0.id", "3",
		"tender.amendments[0].id: must be a string");
	refused(base_tender, TD_KIND_TENDER, "tender.submissionMethod", "[\"electronicSubmission\", 3]",
		"tender.submissionMethod[1]: must be a string");
	refused(base_tender, TD_KIND_TENDER, "tender.awardCriteria", "false", "tender.awardCriteria: must be a string");
	refused(base_tender, TD_KIND_TENDER, "parties", "{}", "parties: must be an array");
	refused(base_tender, TD_KIND_TENDER, "parties.0", "{\"name\": \"x\"}", "parties[0].id: is required");
	refused(base_tender, TD_KIND_TENDER, "parties.0.roles", "\"buyer\"", "parties[0].roles: must be an array");
	refused(base_award, TD_KIND_AWARD, "awards", "{\"id\": \"aw1\"}", "awards: must be an array");
	refused(base_award, TD_KIND_AWARD, "awards.0.id", NULL, "awards[0].id: is required");
	refused(base_award, TD_KIND_AWARD, "awards.0.date", "\"2020-04-24\"", "awards[0].date:");
	refused(base_award, TD_KIND_AWARD, "awards.0.suppliers.0", "\"LG CNS\"",
		"awards[0].suppliers[0]: must be an object");
	refused(base_award, TD_KIND_AWARD, "awards.0.suppliers.0.name", NULL,
		"awards[0].suppliers[0].name: is required");
}

static void test_refuse_kind_rules(void **state)
{
	char err[TD_ERRMSG_MAX];
	json_t *r;

	(void)state;
	refused(base_tender, TD_KIND_TENDER, "tender.id", NULL, "tender.id: is required");
	refused(base_tender, TD_KIND_TENDER, "tender.title", NULL, "tender.title: is required");
	refused(base_tender, TD_KIND_TENDER, "tender.status", NULL, "tender.status: is required");
	refused(base_tender, TD_KIND_TENDER, "tender.status", "\"cancelled\"", "tender.status:");
	refused(base_tender, TD_KIND_TENDER, "tender", NULL, "tender: is required");
	refused(base_award, TD_KIND_AWARD, "awards", NULL, "awards: is required");
	refused(base_award, TD_KIND_AWARD, "awards", "[]", "awards: must not be empty");

	/* Amendment: tender.amendments with id and rationale each. */
	r = parse(base_tender);
	json_object_set_new(r, "tag", json_pack("[s]", "tenderAmendment"));
	json_object_del(at(r, "tender"), "id");
	json_object_del(at(r, "tender"), "title");
	json_object_del(at(r, "tender"), "status");
	assert_int_equal(td_release_validate(r, TD_KIND_AMENDMENT, err, sizeof err), 0);
	json_object_del(at(r, "tender.amendments.0"), "rationale");
	assert_int_equal(td_release_validate(r, TD_KIND_AMENDMENT, err, sizeof err), TD_EINVAL);
	assert_string_equal(err, "tender.amendments[0].rationale: is required");
	json_object_set_new(at(r, "tender"), "amendments", json_array());
	assert_int_equal(td_release_validate(r, TD_KIND_AMENDMENT, err, sizeof err), TD_EINVAL);
	assert_string_equal(err, "tender.amendments: must not be empty");
	json_object_del(at(r, "tender"), "amendments");
	assert_int_equal(td_release_validate(r, TD_KIND_AMENDMENT, err, sizeof err), TD_EINVAL);
	assert_string_equal(err, "tender.amendments: is required");

	/* Cancellation: tender.status must be "cancelled". */
	json_object_set_new(r, "tag", json_pack("[s]", "tenderCancellation"));
	assert_int_equal(td_release_validate(r, TD_KIND_CANCELLATION, err, sizeof err), TD_EINVAL);
	assert_string_equal(err, "tender.status: is required");
	json_object_set_new(at(r, "tender"), "status", json_string("active"));
	assert_int_equal(td_release_validate(r, TD_KIND_CANCELLATION, err, sizeof err), TD_EINVAL);
	assert_non_null(strstr(err, "tender.status:"));
	json_object_set_new(at(r, "tender"), "status", json_string("cancelled"));
	assert_int_equal(td_release_validate(r, TD_KIND_CANCELLATION, err, sizeof err), 0);
	json_decref(r);

	/* Unknown kinds and non-objects. */
	r = parse(base_tender);
	assert_int_equal(td_release_validate(r, (enum td_kind)0, err, sizeof err), TD_EINVAL);
	assert_int_equal(td_release_validate(r, (enum td_kind)5, err, sizeof err), TD_EINVAL);
	json_decref(r);
	r = parse("[]");
	assert_int_equal(td_release_validate(r, TD_KIND_TENDER, err, sizeof err), TD_EINVAL);
	assert_string_equal(err, "release: must be an object");
	json_decref(r);
	assert_int_equal(td_release_validate(NULL, TD_KIND_TENDER, err, sizeof err), TD_EINVAL);
}

static void test_extensions(void **state)
{
	char err[TD_ERRMSG_MAX];
	json_t *r = parse(base_tender);
	json_t *deep;

	(void)state;
	/* Unknown fields are allowed. */
	set_at(r, "x_extension", parse("{\"a\": [1, 2.5, {\"b\": null}], \"c\": true}"));
	set_at(r, "tender.x_lots", parse("[{\"id\": \"lot1\"}]"));
	assert_int_equal(td_release_validate(r, TD_KIND_TENDER, err, sizeof err), 0);

	/* But they must stay encodable: no jansson integers, no NUL, bounded nesting. */
	set_at(r, "x_extension.c", json_integer(3));
	assert_int_equal(td_release_validate(r, TD_KIND_TENDER, err, sizeof err), TD_EINVAL);
	assert_non_null(strstr(err, "x_extension.c:"));
	set_at(r, "x_extension.c", json_stringn("a\0b", 3));
	assert_int_equal(td_release_validate(r, TD_KIND_TENDER, err, sizeof err), TD_EINVAL);
	assert_non_null(strstr(err, "x_extension.c:"));
	set_at(r, "x_extension.c", json_true());

	deep = json_array();
	set_at(r, "x_deep", deep);
	for (int i = 2; i < TD_JSON_DEPTH_MAX; i++) { /* the release is level 1, x_deep level 2 */
		json_t *next = json_array();
		json_array_append_new(deep, next);
		deep = next;
	}
	assert_int_equal(td_release_validate(r, TD_KIND_TENDER, err, sizeof err), 0);
	json_array_append_new(deep, json_array());
	assert_int_equal(td_release_validate(r, TD_KIND_TENDER, err, sizeof err), TD_EINVAL);
	assert_non_null(strstr(err, "x_deep[0]"));
	assert_non_null(strstr(err, "nested deeper"));
	json_decref(r);
}

/* ---- merging -------------------------------------------------------------- */

static void test_merge_amendment(void **state)
{
	json_t *tender = build_sample("tender-jeju.json", TD_KIND_TENDER, NULL, T0);
	json_t *amend = build_sample("amend-jeju.json", TD_KIND_AMENDMENT, "ocds-kr2020-jeju-0001", T0 + 1000);
	json_t *compiled = json_object();

	(void)state;
	td_release_merge(compiled, tender);
	assert_string_equal(str(at(compiled, "tender.tenderPeriod.endDate")), "2020-03-27T18:00:00+09:00");
	assert_string_equal(str(at(compiled, "tag.0")), "compiled");
	td_release_merge(compiled, amend);
	assert_string_equal(str(at(compiled, "tender.tenderPeriod.endDate")), "2020-04-10T18:00:00+09:00");
	assert_string_equal(str(at(compiled, "tender.tenderPeriod.startDate")), "2020-03-09T09:00:00+09:00");
	assert_int_equal(json_array_size(at(compiled, "tender.amendments")), 1);
	assert_string_equal(str(at(compiled, "tender.amendments.0.id")), "amend-1");
	assert_string_equal(str(at(compiled, "tender.title")),
			    "Blockchain-based electric vehicle battery life-cycle management system");
	assert_number_text(at(compiled, "tender.value.amount"), "712500000.50");
	assert_int_equal(json_array_size(json_object_get(compiled, "tag")), 1);
	assert_string_equal(str(at(compiled, "tag.0")), "compiled");
	assert_string_equal(str(json_object_get(compiled, "id")), str(json_object_get(amend, "id")));
	assert_string_equal(str(json_object_get(compiled, "date")), "2020-03-09T00:00:01.000Z");
	/* The releases themselves are untouched. */
	assert_string_equal(str(at(tender, "tender.tenderPeriod.endDate")), "2020-03-27T18:00:00+09:00");
	assert_string_equal(str(at(amend, "tag.0")), "tenderAmendment");
	json_decref(compiled);
	json_decref(tender);
	json_decref(amend);
}

static void test_merge_award(void **state)
{
	json_t *tender = build_sample("tender-jeju.json", TD_KIND_TENDER, NULL, T0);
	json_t *award = build_sample("award-jeju.json", TD_KIND_AWARD, NULL, T0 + 2000);
	json_t *compiled = json_object();

	(void)state;
	td_release_merge(compiled, tender);
	assert_null(json_object_get(compiled, "awards"));
	td_release_merge(compiled, award);
	assert_int_equal(json_array_size(json_object_get(compiled, "awards")), 1);
	assert_string_equal(str(at(compiled, "awards.0.id")), "jeju-2020-0001-a1");
	assert_string_equal(str(at(compiled, "awards.0.suppliers.0.name")), "LG CNS");
	assert_number_text(at(compiled, "awards.0.value.amount"), "698000000");
	assert_int_equal(json_array_size(json_object_get(compiled, "parties")), 2);
	assert_string_equal(str(at(compiled, "tender.status")), "active");
	/* Merging the same award again changes nothing. */
	td_release_merge(compiled, award);
	assert_int_equal(json_array_size(json_object_get(compiled, "awards")), 1);
	assert_int_equal(json_array_size(json_object_get(compiled, "parties")), 2);
	json_decref(compiled);
	json_decref(tender);
	json_decref(award);
}

static void test_merge_rules(void **state)
{
	json_t *compiled =
		parse("{\"id\": \"r1\", \"tag\": [\"tender\"],"
		      " \"items\": [{\"id\": \"1\", \"q\": 1, \"unit\": \"each\"}, {\"id\": \"2\", \"q\": 2}],"
		      " \"numbered\": [{\"id\": 7, \"v\": \"a\"}],"
		      " \"methods\": [\"a\", \"b\"],"
		      " \"mixed\": [{\"id\": \"x\"}, {\"id\": \"y\"}],"
		      " \"tender\": {\"title\": \"T\", \"description\": \"D\", \"value\": {\"amount\": 1}},"
		      " \"gone\": 1}");
	json_t *release = parse("{\"id\": \"r2\", \"tag\": [\"tenderAmendment\"],"
				" \"items\": [{\"id\": \"2\", \"q\": 5}, {\"id\": \"3\", \"q\": 3, \"note\": null}],"
				" \"numbered\": [{\"id\": 7, \"w\": \"b\"}],"
				" \"methods\": [\"c\"],"
				" \"mixed\": [{\"id\": \"z\"}, {\"noid\": true}],"
				" \"tender\": {\"description\": null, \"value\": {\"currency\": \"KRW\"}},"
				" \"gone\": null, \"fresh\": {\"a\": null, \"b\": [1]}}");

	(void)state;
	td_release_merge(compiled, release);
	/* Arrays of objects with ids merge by id, new ids appended in order. */
	assert_int_equal(json_array_size(json_object_get(compiled, "items")), 3);
	assert_string_equal(str(at(compiled, "items.0.id")), "1");
	assert_number_text(at(compiled, "items.0.q"), "1");
	assert_string_equal(str(at(compiled, "items.1.id")), "2");
	assert_number_text(at(compiled, "items.1.q"), "5");
	assert_string_equal(str(at(compiled, "items.2.id")), "3");
	assert_null(at(compiled, "items.2.note"));
	assert_int_equal(json_object_size(at(compiled, "items.2")), 2);
	/* Number ids match by their text. */
	assert_int_equal(json_array_size(json_object_get(compiled, "numbered")), 1);
	assert_string_equal(str(at(compiled, "numbered.0.v")), "a");
	assert_string_equal(str(at(compiled, "numbered.0.w")), "b");
	/* Other arrays are replaced. */
	assert_int_equal(json_array_size(json_object_get(compiled, "methods")), 1);
	assert_string_equal(str(at(compiled, "methods.0")), "c");
	/* An array of objects merges by id, and an object without one is appended (OCDS identifierMerge). */
	assert_int_equal(json_array_size(json_object_get(compiled, "mixed")), 4);
	assert_string_equal(str(at(compiled, "mixed.2.id")), "z");
	assert_true(json_is_true(at(compiled, "mixed.3.noid")));
	/* Objects merge recursively; null removes a field. */
	assert_string_equal(str(at(compiled, "tender.title")), "T");
	assert_null(at(compiled, "tender.description"));
	assert_number_text(at(compiled, "tender.value.amount"), "1");
	assert_string_equal(str(at(compiled, "tender.value.currency")), "KRW");
	assert_null(json_object_get(compiled, "gone"));
	assert_null(at(compiled, "fresh.a"));
	assert_int_equal(json_object_size(json_object_get(compiled, "fresh")), 1);
	/* id follows the release, tag becomes ["compiled"]. */
	assert_string_equal(str(json_object_get(compiled, "id")), "r2");
	assert_int_equal(json_array_size(json_object_get(compiled, "tag")), 1);
	assert_string_equal(str(at(compiled, "tag.0")), "compiled");
	json_decref(compiled);
	json_decref(release);
}

/* ---- summaries ------------------------------------------------------------ */

static void test_summary(void **state)
{
	json_t *tender = build_sample("tender-jeju.json", TD_KIND_TENDER, NULL, T0);
	json_t *compiled = json_object();
	json_t *s;

	(void)state;
	td_release_merge(compiled, tender);
	s = td_release_summary(compiled);
	assert_string_equal(str(json_object_get(s, "ocid")), "ocds-kr2020-jeju-0001");
	assert_string_equal(str(json_object_get(s, "title")),
			    "Blockchain-based electric vehicle battery life-cycle management system");
	assert_string_equal(str(json_object_get(s, "status")), "active");
	assert_number_text(at(s, "value.amount"), "712500000.50");
	assert_string_equal(str(at(s, "value.currency")), "KRW");
	assert_string_equal(str(json_object_get(s, "procurementMethod")), "open");
	assert_string_equal(str(json_object_get(s, "mainProcurementCategory")), "services");
	assert_string_equal(str(at(s, "tenderPeriod.endDate")), "2020-03-27T18:00:00+09:00");
	assert_string_equal(str(json_object_get(s, "date")), "2020-03-09T00:00:00.000Z");
	assert_int_equal(json_object_size(s), 8);
	json_decref(s);
	json_decref(compiled);
	json_decref(tender);

	/* Missing fields are simply absent. */
	compiled = parse("{\"ocid\": \"ocds-kr2020-x\", \"tender\": {\"status\": \"cancelled\"}}");
	s = td_release_summary(compiled);
	assert_int_equal(json_object_size(s), 2);
	assert_string_equal(str(json_object_get(s, "status")), "cancelled");
	json_decref(s);
	json_decref(compiled);
}

/* ---- dates and kinds ------------------------------------------------------ */

static bool iso(const char *s)
{
	return td_iso_valid(s, strlen(s));
}

static void test_iso_valid(void **state)
{
	(void)state;
	assert_true(iso("2020-03-09T09:00:00+09:00"));
	assert_true(iso("2020-03-09T09:00:00-05:30"));
	assert_true(iso("2020-03-09T09:00:00Z"));
	assert_true(iso("2020-03-09T09:00:00.123Z"));
	assert_true(iso("2020-03-09T09:00:00.1+00:00"));
	assert_true(iso("2020-02-29T00:00:00Z")); /* leap year */
	assert_true(iso("2000-02-29T00:00:00Z")); /* divisible by 400 */
	assert_true(iso("2016-12-31T23:59:60Z")); /* leap second */
	assert_true(iso("2020-04-30T00:00:00Z"));
	assert_false(iso("2019-02-29T00:00:00Z")); /* not a leap year */
	assert_false(iso("1900-02-29T00:00:00Z")); /* divisible by 100 */
	assert_false(iso("2020-04-31T00:00:00Z"));
	assert_false(iso("2020-13-01T00:00:00Z"));
	assert_false(iso("2020-00-01T00:00:00Z"));
	assert_false(iso("2020-01-00T00:00:00Z"));
	assert_false(iso("2020-01-01T24:00:00Z"));
	assert_false(iso("2020-01-01T00:60:00Z"));
	assert_false(iso("2020-01-01T00:00:61Z"));
	assert_false(iso("2020-01-01T00:00:00")); /* no zone */
	assert_false(iso("2020-01-01T00:00Z"));   /* no seconds */
	assert_false(iso("2020-01-01"));
	assert_false(iso("2020-01-01 00:00:00Z"));
	assert_false(iso("2020-01-01t00:00:00Z"));
	assert_false(iso("2020-01-01T00:00:00z"));
	assert_false(iso("2020-01-01T00:00:00.Z"));
	assert_false(iso("2020-01-01T00:00:00+0900"));
	assert_false(iso("2020-01-01T00:00:00+09"));
	assert_false(iso("2020-01-01T00:00:00+24:00"));
	assert_false(iso("2020-01-01T00:00:00+09:60"));
	assert_false(iso("2020-01-01T00:00:00Z "));
	assert_false(iso("2020-01-01T00:00:00+09:00Z"));
	assert_false(iso("+2020-01-01T00:00:00Z"));
	assert_false(iso("2020-1-01T00:00:00Z"));
	assert_false(iso(""));
	/* Only len bytes count. */
	assert_false(td_iso_valid("2020-01-01T00:00:00Z", 19));
	assert_true(td_iso_valid("2020-01-01T00:00:00Zjunk", 20));
}

static void test_time_iso(void **state)
{
	char out[32];

	(void)state;
	td_time_iso(out, 0);
	assert_string_equal(out, "1970-01-01T00:00:00.000Z");
	td_time_iso(out, 1582934400123ULL);
	assert_string_equal(out, "2020-02-29T00:00:00.123Z");
	td_time_iso(out, 946684799999ULL);
	assert_string_equal(out, "1999-12-31T23:59:59.999Z");
	td_time_iso(out, 2147483648000ULL);
	assert_string_equal(out, "2038-01-19T03:14:08.000Z");
	assert_true(iso(out));
	td_time_iso(out, UINT64_MAX); /* far beyond 9999: still fits, still ends in the milliseconds */
	assert_true(strlen(out) < 32);
	assert_non_null(strstr(out, ".615Z"));
}

static void test_kinds(void **state)
{
	(void)state;
	assert_string_equal(td_kind_name(TD_KIND_TENDER), "tender");
	assert_string_equal(td_kind_name(TD_KIND_AMENDMENT), "tenderAmendment");
	assert_string_equal(td_kind_name(TD_KIND_CANCELLATION), "tenderCancellation");
	assert_string_equal(td_kind_name(TD_KIND_AWARD), "award");
	assert_null(td_kind_name((enum td_kind)0));
	for (int k = TD_KIND_MIN; k <= TD_KIND_MAX; k++) {
		const char *n = td_kind_name((enum td_kind)k);
		assert_int_equal(td_kind_parse(n, strlen(n)), k);
	}
	assert_int_equal(td_kind_parse("tenderX", 7), 0);
	assert_int_equal(td_kind_parse("tenderAmendment", 6), TD_KIND_TENDER); /* only len bytes */
	assert_int_equal(td_kind_parse("Tender", 6), 0);
	assert_int_equal(td_kind_parse("", 0), 0);
	assert_int_equal(td_kind_parse("compiled", 8), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples_validate),
		cmocka_unit_test(test_exact_amount),
		cmocka_unit_test(test_build_sets_fields),
		cmocka_unit_test(test_build_fragment_keys),
		cmocka_unit_test(test_build_cancellation),
		cmocka_unit_test(test_build_award_parties),
		cmocka_unit_test(test_refuse_top_level),
		cmocka_unit_test(test_refuse_ocid_too_long),
		cmocka_unit_test(test_refuse_code_lists),
		cmocka_unit_test(test_refuse_amounts_and_currency),
		cmocka_unit_test(test_currency_csv),
		cmocka_unit_test(test_refuse_types),
		cmocka_unit_test(test_refuse_kind_rules),
		cmocka_unit_test(test_extensions),
		cmocka_unit_test(test_merge_amendment),
		cmocka_unit_test(test_merge_award),
		cmocka_unit_test(test_merge_rules),
		cmocka_unit_test(test_summary),
		cmocka_unit_test(test_iso_valid),
		cmocka_unit_test(test_time_iso),
		cmocka_unit_test(test_kinds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
