/*
 * Unit tests for proto/json.c: JSON with exact numbers.
 *
 * Every number must come back out of td_json_load/td_json_dump as the very
 * text that went in (amounts like 712500000.50 are money); strings, including
 * ones that look like numbers or like the internal "\u0000" marker, must be
 * untouched; anything outside JSON's grammar is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tenderd/codec.h" /* TD_NUMBER_MAX */
#include "tenderd/json.h"

/* Loads text, asserting success; the caller decrefs. */
static json_t *load_ok(const char *text)
{
	char err[TD_ERRMSG_MAX] = "";
	json_t *v = td_json_load(text, strlen(text), err, sizeof(err));
	if (!v)
		print_error("td_json_load(%s) failed: %s\n", text, err);
	assert_non_null(v);
	return v;
}

/* Asserts that td_json_load refuses text and says something about it. */
static void load_refused(const char *text)
{
	char err[TD_ERRMSG_MAX] = "";
	json_t *v = td_json_load(text, strlen(text), err, sizeof(err));
	if (v)
		print_error("td_json_load accepted %s\n", text);
	assert_null(v);
	assert_true(err[0] != '\0');
}

/* Loads text and dumps it compactly; asserts the result equals want. */
static void roundtrip(const char *text, const char *want)
{
	json_t *v = load_ok(text);
	char *s = td_json_dump(v, JSON_COMPACT);
	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
	json_decref(v);
}

static const char *const exact_numbers[] = {
	"712500000.50",
	"0",
	"-1",
	"1e10",
	"1.0E+5",
	"6000000000",
	"0.000001",
	"-0",
	"-0.0",
	"1E-7",
	"18446744073709551616",
	"123456789012345678901234567890.000000000000000000001",
};

static void test_numbers_top_level(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(exact_numbers) / sizeof(exact_numbers[0]); i++) {
		json_t *v = load_ok(exact_numbers[i]);
		size_t len = 0;
		const char *t = td_json_number_text(v, &len);
		assert_true(td_json_is_number(v));
		assert_false(td_json_is_string(v));
		assert_non_null(t);
		assert_int_equal(len, strlen(exact_numbers[i]));
		assert_memory_equal(t, exact_numbers[i], len);
		char *s = td_json_dump(v, JSON_COMPACT);
		assert_string_equal(s, exact_numbers[i]);
		free(s);
		json_decref(v);
	}
	/* Whitespace around the top value is allowed and not kept. */
	roundtrip(" \n\t712500000.50 \r\n", "712500000.50");
}

static void test_numbers_in_arrays_and_objects(void **state)
{
	(void)state;
	roundtrip("[712500000.50,0,-1,1e10,1.0E+5,6000000000,0.000001]",
		  "[712500000.50,0,-1,1e10,1.0E+5,6000000000,0.000001]");
	roundtrip("[ 1.50 , [ 2.00, [ 3.000 ] ] ]", "[1.50,[2.00,[3.000]]]");
	roundtrip("{\"value\":{\"amount\":712500000.50,\"currency\":\"KRW\"}}",
		  "{\"value\":{\"amount\":712500000.50,\"currency\":\"KRW\"}}");
	roundtrip("{\"a\":{\"b\":{\"c\":[{\"d\":1.0E+5}]}},\"e\":-0.000001}",
		  "{\"a\":{\"b\":{\"c\":[{\"d\":1.0E+5}]}},\"e\":-0.000001}");
	/* Numbers next to literals and structure without spaces. */
	roundtrip("[true,1,false,2.5,null,3e3]", "[true,1,false,2.5,null,3e3]");

	/* The tree holds number values that the accessors see. */
	json_t *v = load_ok("{\"amount\":712500000.50,\"n\":6000000000,\"s\":\"6000000000\"}");
	size_t len;
	const char *t = td_json_number_text(json_object_get(v, "amount"), &len);
	assert_non_null(t);
	assert_int_equal(len, 12);
	assert_memory_equal(t, "712500000.50", 12);
	uint64_t u = 0;
	assert_true(td_json_number_u64(json_object_get(v, "n"), &u));
	assert_true(u == 6000000000ULL);
	assert_false(td_json_number_u64(json_object_get(v, "s"), &u));
	assert_true(td_json_is_string(json_object_get(v, "s")));
	assert_false(td_json_is_number(json_object_get(v, "s")));
	json_decref(v);
}

static void test_indented_dump(void **state)
{
	(void)state;
	json_t *v = load_ok("{\"a\":[1.50,\"x\"]}");
	char *s = td_json_dump(v, JSON_INDENT(2));
	assert_string_equal(s, "{\n  \"a\": [\n    1.50,\n    \"x\"\n  ]\n}");
	free(s);
	/* ENSURE_ASCII and sorted keys do not disturb numbers. */
	json_object_set_new(v, "0", td_json_number("-2.0e-3", 7));
	s = td_json_dump(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	assert_string_equal(s, "{\"0\":-2.0e-3,\"a\":[1.50,\"x\"]}");
	free(s);
	json_decref(v);
}

static void test_strings_untouched(void **state)
{
	(void)state;
	/* Digits, signs and exponents inside strings are text, not numbers. */
	roundtrip("[\"a-1.5e3\",\"12\",\"-\",\"01\",\"1.\",\"\"]", "[\"a-1.5e3\",\"12\",\"-\",\"01\",\"1.\",\"\"]");
	/* Escaped quotes and backslashes followed by digits. */
	roundtrip("[\"\\\\\\\"12\\\"\"]", "[\"\\\\\\\"12\\\"\"]");
	roundtrip("{\"k\\\"1\":\"\\\\\",\"x\":\"\\\\1\"}", "{\"k\\\"1\":\"\\\\\",\"x\":\"\\\\1\"}");
	/* A string that spells the internal marker stays a string. */
	{
		json_t *v = load_ok("\"\\\\u0000123\"");
		assert_true(td_json_is_string(v));
		assert_false(td_json_is_number(v));
		assert_string_equal(json_string_value(v), "\\u0000123");
		char *s = td_json_dump(v, JSON_COMPACT);
		assert_string_equal(s, "\"\\\\u0000123\"");
		free(s);
		json_decref(v);
	}
	/* Unicode: escapes are decoded, raw UTF-8 kept, a surrogate pair joined. */
	{
		json_t *v = load_ok("[\"\\u00e9\\u4e2d\",\"\xec\xa0\x9c\xec\xa3\xbc\",\"\\ud83d\\ude00\",\"\\u0001\"]");
		assert_string_equal(json_string_value(json_array_get(v, 0)), "\xc3\xa9\xe4\xb8\xad");
		assert_string_equal(json_string_value(json_array_get(v, 1)), "\xec\xa0\x9c\xec\xa3\xbc");
		assert_string_equal(json_string_value(json_array_get(v, 2)), "\xf0\x9f\x98\x80");
		assert_int_equal(json_string_length(json_array_get(v, 3)), 1);
		assert_true(td_json_is_string(json_array_get(v, 3)));
		char *s = td_json_dump(v, JSON_COMPACT);
		assert_string_equal(s, "[\"\xc3\xa9\xe4\xb8\xad\",\"\xec\xa0\x9c\xec\xa3\xbc\",\"\xf0\x9f\x98\x80\","
				       "\"\\u0001\"]");
		free(s);
		json_decref(v);
	}
	/* Other escapes. */
	roundtrip("\"\\t\\n\\r\\b\\f\\/\"", "\"\\t\\n\\r\\b\\f/\"");
}

static void test_invalid_numbers_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"01",   "1.",   ".5",         "+1",   "-",   "1e",    "1e+",   "NaN",   "Infinity", "-Infinity",
		"[01]", "[1.]", "{\"a\":.5}", "[+1]", "[-]", "[1e]",  "[NaN]", "[1,-]", "00",       "-01",
		"1.e5", "1..2", "1e5.5",      "0x10", "1-2", "[1 2]", "--1",   "1E+-2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		load_refused(bad[i]);
	/* A number longer than TD_NUMBER_MAX is refused, not truncated. */
	char longnum[TD_NUMBER_MAX + 2];
	memset(longnum, '1', sizeof(longnum) - 1);
	longnum[sizeof(longnum) - 1] = '\0';
	load_refused(longnum);
	longnum[TD_NUMBER_MAX] = '\0';
	json_t *v = load_ok(longnum);
	size_t len;
	assert_non_null(td_json_number_text(v, &len));
	assert_int_equal(len, TD_NUMBER_MAX);
	json_decref(v);
}

static void test_other_refusals(void **state)
{
	(void)state;
	/* "\u0000" would forge a number value. */
	load_refused("\"\\u0000\"");
	load_refused("\"\\u0000123\"");
	load_refused("[\"abc\\u0000\"]");
	load_refused("{\"\\u00001\":1}");
	/* Duplicate keys at any level. */
	load_refused("{\"a\":1,\"a\":2}");
	load_refused("{\"x\":{\"a\":1,\"b\":2,\"a\":1}}");
	/* Trailing garbage and two values. */
	load_refused("{} x");
	load_refused("{}{}");
	load_refused("1 2");
	load_refused("[1]]");
	load_refused("\"a\" \"b\"");
	/* Not JSON at all, or cut short. */
	load_refused("");
	load_refused("   ");
	load_refused("[1,");
	load_refused("{\"a\":");
	load_refused("\"abc");
	load_refused("[1,]");
	load_refused("tru");
	/* Invalid UTF-8 and a raw control character in a string. */
	load_refused("\"\xc3\x28\"");
	load_refused("\"\xed\xa0\x80\"");
	load_refused("\"a\nb\"");
	/* An embedded NUL byte in the text. */
	load_refused("[1,\0 2]");
	{
		char err[TD_ERRMSG_MAX] = "";
		static const char text[] = { '[', '1', ']', '\0' };
		assert_null(td_json_load(text, sizeof(text), err, sizeof(err)));
	}
	/* A raw NUL byte inside a string (the text given with its length). */
	{
		char err[TD_ERRMSG_MAX] = "";
		static const char text[] = { '"', 'a', '\0', 'b', '"' };
		assert_null(td_json_load(text, sizeof(text), err, sizeof(err)));
	}
	/* The message names the position of a bad number. */
	{
		char err[TD_ERRMSG_MAX] = "";
		const char *text = "{\n  \"a\": 01\n}";
		assert_null(td_json_load(text, strlen(text), err, sizeof(err)));
		assert_non_null(strstr(err, "line 2"));
	}
}

static void test_len_is_respected(void **state)
{
	(void)state;
	char err[TD_ERRMSG_MAX];
	/* Only len bytes are read: the "9" after them is not part of the number. */
	json_t *v = td_json_load("[12]9", 4, err, sizeof(err));
	assert_non_null(v);
	size_t len;
	const char *t = td_json_number_text(json_array_get(v, 0), &len);
	assert_int_equal(len, 2);
	assert_memory_equal(t, "12", 2);
	json_decref(v);
	v = td_json_load("123", 2, err, sizeof(err));
	assert_non_null(v);
	t = td_json_number_text(v, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(t, "12", 2);
	json_decref(v);
}

static void test_number_valid_table(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool ok;
	} table[] = {
		{ "0", true },    { "-0", true },           { "1", true },      { "-1", true },
		{ "10", true },   { "0.5", true },          { "-0.5", true },   { "1e5", true },
		{ "1E5", true },  { "1e+5", true },         { "1e-5", true },   { "1.5e05", true },
		{ "0e0", true },  { "712500000.50", true }, { "1.0E+5", true }, { "0.000001", true },
		{ "", false },    { "-", false },           { "+1", false },    { "01", false },
		{ "-01", false }, { "00", false },          { "1.", false },    { ".5", false },
		{ "-.5", false }, { "1e", false },          { "1e+", false },   { "1e-", false },
		{ "e5", false },  { "1.5.5", false },       { "1e5e5", false }, { " 1", false },
		{ "1 ", false },  { "0x1", false },         { "NaN", false },   { "Infinity", false },
		{ "1,5", false }, { "--1", false },         { "1.e5", false },  { "\xd9\xa1", false },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		bool got = td_number_valid(table[i].s, strlen(table[i].s));
		if (got != table[i].ok)
			print_error("td_number_valid(\"%s\") = %d\n", table[i].s, got);
		assert_true(got == table[i].ok);
	}
	/* Only len bytes count. */
	assert_true(td_number_valid("12x", 2));
	assert_false(td_number_valid("12x", 3));
	/* The length cap. */
	char buf[TD_NUMBER_MAX + 1];
	memset(buf, '9', sizeof(buf));
	assert_true(td_number_valid(buf, TD_NUMBER_MAX));
	assert_false(td_number_valid(buf, TD_NUMBER_MAX + 1));
}

static void test_number_constructors(void **state)
{
	(void)state;
	json_t *v = td_json_number("1.50", 4);
	size_t len;
	assert_non_null(v);
	assert_true(td_json_is_number(v));
	assert_memory_equal(td_json_number_text(v, &len), "1.50", 4);
	assert_int_equal(len, 4);
	json_decref(v);
	assert_null(td_json_number("1.", 2));
	assert_null(td_json_number("", 0));
	assert_null(td_json_number("abc", 3));

	v = td_json_uint(UINT64_MAX);
	assert_true(td_json_is_number(v));
	assert_memory_equal(td_json_number_text(v, &len), "18446744073709551615", 20);
	assert_int_equal(len, 20);
	json_decref(v);
	v = td_json_uint(0);
	assert_memory_equal(td_json_number_text(v, &len), "0", 1);
	assert_int_equal(len, 1);
	char *s = td_json_dump(v, JSON_COMPACT);
	assert_string_equal(s, "0");
	free(s);
	json_decref(v);
}

static void test_number_u64(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool ok;
		uint64_t want;
	} table[] = {
		{ "0", true, 0 },
		{ "1", true, 1 },
		{ "6000000000", true, 6000000000ULL },
		{ "18446744073709551615", true, UINT64_MAX },
		{ "18446744073709551616", false, 0 },
		{ "18446744073709551620", false, 0 },
		{ "99999999999999999999", false, 0 },
		{ "100000000000000000000", false, 0 },
		{ "1.0", false, 0 },
		{ "1e3", false, 0 },
		{ "-1", false, 0 },
		{ "-0", false, 0 },
		{ "0.0", false, 0 },
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		json_t *v = td_json_number(table[i].s, strlen(table[i].s));
		uint64_t got = 12345;
		assert_non_null(v);
		bool ok = td_json_number_u64(v, &got);
		if (ok != table[i].ok)
			print_error("td_json_number_u64(%s) = %d\n", table[i].s, ok);
		assert_true(ok == table[i].ok);
		if (ok)
			assert_true(got == table[i].want);
		else
			assert_true(got == 12345); /* untouched on refusal */
		json_decref(v);
	}
	/* Not numbers at all. */
	uint64_t got;
	json_t *s = json_string("12");
	assert_false(td_json_number_u64(s, &got));
	json_decref(s);
	json_t *i = json_integer(12);
	assert_false(td_json_number_u64(i, &got));
	json_decref(i);
	assert_false(td_json_number_u64(NULL, &got));
}

static void test_is_number_vs_is_string(void **state)
{
	(void)state;
	json_t *v = load_ok("[1,\"1\",\"\",null,true,{},[],-2.5]");
	assert_true(td_json_is_number(json_array_get(v, 0)));
	assert_false(td_json_is_string(json_array_get(v, 0)));
	assert_false(td_json_is_number(json_array_get(v, 1)));
	assert_true(td_json_is_string(json_array_get(v, 1)));
	assert_false(td_json_is_number(json_array_get(v, 2)));
	assert_true(td_json_is_string(json_array_get(v, 2)));
	for (size_t k = 3; k < 7; k++) {
		assert_false(td_json_is_number(json_array_get(v, k)));
		assert_false(td_json_is_string(json_array_get(v, k)));
	}
	assert_true(td_json_is_number(json_array_get(v, 7)));
	/* The jansson view of a number value is a string; that is why callers must not use it. */
	assert_true(json_is_string(json_array_get(v, 0)));
	assert_false(json_is_number(json_array_get(v, 0)));
	json_decref(v);

	/* jansson's own numbers are neither. */
	json_t *ji = json_integer(5), *jr = json_real(1.5);
	assert_false(td_json_is_number(ji));
	assert_false(td_json_is_string(ji));
	assert_false(td_json_is_number(jr));
	assert_false(td_json_is_number(NULL));
	assert_false(td_json_is_string(NULL));
	size_t len;
	assert_null(td_json_number_text(ji, &len));
	json_decref(ji);
	json_decref(jr);
}

static void test_samples_roundtrip(void **state)
{
	(void)state;
	/* Each sample loads, dumps and reloads to an equal dump; its amounts survive as text. */
	static const char *const names[] = { "tender-jeju.json",    "tender-kisa.json", "tender-private.json",
					     "tender-gangwon.json", "amend-jeju.json",  "award-jeju.json",
					     "tender-sejong.json" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/samples/%s", TD_TEST_DATA, names[i]);
		FILE *f = fopen(path, "rb");
		assert_non_null(f);
		char *buf = malloc(1 << 20);
		size_t n = fread(buf, 1, 1 << 20, f);
		fclose(f);
		json_t *v = td_json_load(buf, n, NULL, 0);
		assert_non_null(v);
		char *s1 = td_json_dump(v, JSON_COMPACT);
		json_t *w = td_json_load(s1, strlen(s1), NULL, 0);
		assert_non_null(w);
		char *s2 = td_json_dump(w, JSON_COMPACT);
		assert_string_equal(s1, s2);
		if (strcmp(names[i], "tender-jeju.json") == 0)
			assert_non_null(strstr(s1, "\"amount\":712500000.50"));
		free(s1);
		free(s2);
		json_decref(v);
		json_decref(w);
		free(buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numbers_top_level),       cmocka_unit_test(test_numbers_in_arrays_and_objects),
		cmocka_unit_test(test_indented_dump),           cmocka_unit_test(test_strings_untouched),
		cmocka_unit_test(test_invalid_numbers_refused), cmocka_unit_test(test_other_refusals),
		cmocka_unit_test(test_len_is_respected),        cmocka_unit_test(test_number_valid_table),
		cmocka_unit_test(test_number_constructors),     cmocka_unit_test(test_number_u64),
		cmocka_unit_test(test_is_number_vs_is_string),  cmocka_unit_test(test_samples_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
