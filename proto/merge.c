/*
 * The OCDS 1.1 merge routine: compiled and versioned releases (see
 * tenderd/merge.h for the rules).
 *
 * The merge walks a release and the generated rule table (td_merge_rules,
 * from the release schema) side by side: `rule` is the table entry of the
 * field being merged, or -1 once the path leaves the table, where no field
 * has a rule and the value's shape decides. Recursion follows the release,
 * whose depth td_json_load bounds (TD_JSON_DEPTH_MAX).
 *
 * Trees come from td_json_load: numbers are NUL-marked strings, so the type
 * tests here are json_is_object/json_is_array/json_is_null only, and values
 * compare with values_equal (numbers by their value: 1.50 is 1.5, while the
 * text kept is always the release's own).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/isotime.h"
#include "tenderd/json.h"
#include "tenderd/merge.h"

/* How a value merges. */
enum shape {
	SHAPE_LITERAL, /* replaces (compiled) or is versioned as a whole */
	SHAPE_OBJECT,  /* merges property by property */
	SHAPE_IDS,     /* an array of objects: merges by id */
};

/* The entry of the child name of entry rule; -1 if it has none (or rule is -1). */
static int rule_child(int rule, const char *name)
{
	if (rule < 0)
		return -1;
	const struct td_merge_rule *r = &td_merge_rules[rule];
	for (unsigned i = r->first; i < (unsigned)r->first + r->count; i++)
		if (strcmp(td_merge_rules[i].name, name) == 0)
			return (int)i;
	return -1;
}

static unsigned rule_flags(int rule)
{
	return rule < 0 ? 0 : td_merge_rules[rule].flags;
}

unsigned td_merge_path_flags(const char *path)
{
	int rule = 0;
	char name[256];

	while (*path && rule >= 0) {
		size_t n = strcspn(path, "/");
		if (n >= sizeof(name))
			return 0;
		memcpy(name, path, n);
		name[n] = '\0';
		rule = rule_child(rule, name);
		path += n + (path[n] == '/');
	}
	return rule_flags(rule);
}

static enum shape shape_of(const json_t *v, int rule)
{
	const json_t *e;
	size_t i;

	if (rule_flags(rule) & TD_MERGE_WHOLE)
		return SHAPE_LITERAL;
	if (json_is_object(v))
		return SHAPE_OBJECT;
	if (!json_is_array(v))
		return SHAPE_LITERAL;
	json_array_foreach(v, i, e) {
		if (!json_is_object(e))
			return SHAPE_LITERAL;
	}
	return SHAPE_IDS;
}

/* A number's value as sign, significant digits (no leading or trailing zeros) and exponent. */
struct decimal {
	bool negative;
	const char *digits; /* the first significant digit, in the text (a '.' may follow some) */
	size_t ndigits;     /* significant digits; 0 for zero */
	long long exp;      /* value = 0.digits * 10^exp */
};

/* Reads a number's text (JSON grammar, as td_json_load checked it) into d. */
static void decimal_read(const char *s, size_t len, struct decimal *d)
{
	const char *end = s + len, *p = s, *first = NULL, *last = NULL;
	long long before_point = 0, zeros_after_point = 0, e = 0;
	bool point = false, eneg = false;

	memset(d, 0, sizeof(*d));
	if (p < end && *p == '-') {
		d->negative = true;
		p++;
	}
	for (; p < end && *p != 'e' && *p != 'E'; p++) {
		if (*p == '.') {
			point = true;
			continue;
		}
		if (*p == '0' && !first && point)
			zeros_after_point++;
		if (*p != '0' && !first)
			first = p;
		if (first && *p != '0')
			last = p;
		if (!point && first)
			before_point++;
	}
	if (p < end) { /* the exponent, saturated far beyond any difference that matters */
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		for (; p < end; p++)
			if (e < 1000000000LL)
				e = e * 10 + (*p - '0');
	}
	if (!first) {
		d->negative = false; /* -0 is 0 */
		return;
	}
	d->digits = first;
	for (const char *q = first; q <= last; q++)
		d->ndigits += *q != '.';
	d->exp = before_point - zeros_after_point + (eneg ? -e : e);
}

/* True if the number texts a and b have the same value ("1.50" and "1.5e0" do). */
static bool numbers_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	struct decimal x, y;
	const char *p, *q;
	size_t i;

	decimal_read(a, alen, &x);
	decimal_read(b, blen, &y);
	if (x.negative != y.negative || x.ndigits != y.ndigits || x.exp != y.exp)
		return false;
	for (i = 0, p = x.digits, q = y.digits; i < x.ndigits; i++, p++, q++) {
		if (*p == '.')
			p++;
		if (*q == '.')
			q++;
		if (*p != *q)
			return false;
	}
	return true;
}

/* JSON equality, numbers by their value (jansson's json_equal would compare their text). */
static bool values_equal(const json_t *a, const json_t *b)
{
	const char *key, *at, *bt;
	size_t alen, blen, i;
	json_t *v;

	at = td_json_number_text(a, &alen);
	bt = td_json_number_text(b, &blen);
	if (at || bt)
		return at && bt && numbers_equal(at, alen, bt, blen);
	if (json_is_object(a) && json_is_object(b)) {
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_foreach((json_t *)a, key, v) {
			const json_t *w = json_object_get(b, key);
			if (!w || !values_equal(v, w))
				return false;
		}
		return true;
	}
	if (json_is_array(a) && json_is_array(b)) {
		if (json_array_size(a) != json_array_size(b))
			return false;
		json_array_foreach(a, i, v) {
			if (!values_equal(v, json_array_get(b, i)))
				return false;
		}
		return true;
	}
	return json_equal((json_t *)a, (json_t *)b);
}

/* The object of the array arr whose "id" equals id; NULL if none (or id is absent or null). */
static json_t *find_id(const json_t *arr, const json_t *id)
{
	json_t *e;
	size_t i;

	if (!id || json_is_null(id))
		return NULL;
	json_array_foreach(arr, i, e) {
		const json_t *eid = json_object_get(e, "id");
		if (json_is_object(e) && eid && values_equal(eid, id))
			return e;
	}
	return NULL;
}

/* dst[key] if it is an object (array when want_array), else a new empty one put there. */
static json_t *child_of(json_t *dst, const char *key, bool want_array, bool *created)
{
	json_t *cur = json_object_get(dst, key);

	*created = false;
	if (want_array ? json_is_array(cur) : json_is_object(cur))
		return cur;
	cur = want_array ? json_array() : json_object();
	json_object_set_new(dst, key, cur);
	*created = true;
	return cur;
}

/* ---- compiled ------------------------------------------------------------- */

static void compiled_object(json_t *dst, const json_t *src, int rule);

static void compiled_member(json_t *dst, const char *key, const json_t *v, int rule)
{
	const json_t *e;
	json_t *cur;
	bool created;
	size_t i;

	if (rule_flags(rule) & TD_MERGE_OMIT)
		return;
	switch (shape_of(v, rule)) {
	case SHAPE_LITERAL:
		if (json_is_null(v))
			json_object_del(dst, key);
		else
			json_object_set_new(dst, key, json_deep_copy(v));
		break;
	case SHAPE_OBJECT:
		if (json_object_size(v) == 0)
			break;
		compiled_object(child_of(dst, key, false, &created), v, rule);
		break;
	case SHAPE_IDS:
		if (json_array_size(v) == 0)
			break;
		cur = child_of(dst, key, true, &created);
		json_array_foreach(v, i, e) {
			json_t *match = find_id(cur, json_object_get(e, "id"));
			if (!match) {
				match = json_object();
				json_array_append_new(cur, match);
			}
			compiled_object(match, e, rule);
		}
		break;
	}
}

static void compiled_object(json_t *dst, const json_t *src, int rule)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)src, key, v)
		compiled_member(dst, key, v, rule_child(rule, key));
}

void td_merge_field(json_t *compiled, const char *key, const json_t *value)
{
	if (json_is_object(compiled))
		compiled_member(compiled, key, value, rule_child(0, key));
}

void td_merge_compiled(json_t *compiled, const json_t *release)
{
	if (json_is_object(compiled) && json_is_object(release))
		compiled_object(compiled, release, 0);
}

/* ---- versioned ------------------------------------------------------------ */

/* The release's metadata that each versioned value carries. */
struct version_meta {
	const json_t *id, *date, *tag; /* the release's; NULL when absent */
};

static json_t *meta_value(const json_t *v)
{
	return v ? json_deep_copy(v) : json_null();
}

static void versioned_object(json_t *dst, const json_t *src, int rule, const struct version_meta *m, bool in_array);

static void versioned_member(json_t *dst, const char *key, const json_t *v, int rule, const struct version_meta *m)
{
	const json_t *e;
	json_t *cur, *last;
	bool created;
	size_t i;

	if (rule_flags(rule) & TD_MERGE_OMIT)
		return;
	switch (shape_of(v, rule)) {
	case SHAPE_LITERAL:
		cur = child_of(dst, key, true, &created);
		last = json_array_get(cur, json_array_size(cur) - 1);
		if (last && values_equal(json_object_get(last, "value"), v))
			break;
		json_array_append_new(cur, json_pack("{s:o, s:o, s:o, s:o}", "releaseID", meta_value(m->id),
						     "releaseDate", meta_value(m->date), "releaseTag",
						     meta_value(m->tag), "value", json_deep_copy(v)));
		break;
	case SHAPE_OBJECT:
		if (json_object_size(v) == 0)
			break;
		cur = child_of(dst, key, false, &created);
		versioned_object(cur, v, rule, m, false);
		if (created && json_object_size(cur) == 0)
			json_object_del(dst, key);
		break;
	case SHAPE_IDS:
		if (json_array_size(v) == 0)
			break;
		cur = child_of(dst, key, true, &created);
		json_array_foreach(v, i, e) {
			const json_t *id = json_object_get(e, "id");
			json_t *match = find_id(cur, id);
			if (!match) {
				match = json_object();
				if (id && !json_is_null(id))
					json_object_set_new(match, "id", json_deep_copy(id));
				json_array_append_new(cur, match);
			}
			versioned_object(match, e, rule, m, true);
		}
		break;
	}
}

/* in_array: src is an object of an identifierMerge array, whose id is kept as it is, not versioned. */
static void versioned_object(json_t *dst, const json_t *src, int rule, const struct version_meta *m, bool in_array)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)src, key, v) {
		if (!(in_array && strcmp(key, "id") == 0))
			versioned_member(dst, key, v, rule_child(rule, key), m);
	}
}

void td_merge_versioned(json_t *versioned, const json_t *release)
{
	const struct version_meta m = {
		.id = json_object_get(release, "id"),
		.date = json_object_get(release, "date"),
		.tag = json_object_get(release, "tag"),
	};
	const char *key;
	json_t *v;

	if (!json_is_object(versioned) || !json_is_object(release))
		return;
	json_object_foreach((json_t *)release, key, v) {
		if (strcmp(key, "ocid") == 0)
			json_object_set_new(versioned, key, json_deep_copy(v)); /* not versioned */
		else
			versioned_member(versioned, key, v, rule_child(0, key), &m);
	}
}

/* ---- records -------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A release and where it sorts: by ocid (in order of first appearance), instant, input position. */
struct dated {
	size_t group;
	int64_t ms;
	size_t pos;
	const json_t *release;
};

static int dated_cmp(const void *a, const void *b)
{
	const struct dated *x = a, *y = b;

	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	if (x->ms != y->ms)
		return x->ms < y->ms ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The record of the releases d[0..n) (one ocid, sorted; n > 0). */
static json_t *make_record(const struct dated *d, size_t n, bool versioned)
{
	json_t *record = json_object(), *rels = json_array(), *merged = json_object();
	const json_t *ocid = json_object_get(d[0].release, "ocid");
	const json_t *date = json_object_get(d[n - 1].release, "date");

	json_object_set_new(record, "ocid", json_deep_copy(ocid));
	json_object_set_new(record, "releases", rels);
	if (!versioned) {
		size_t len = json_string_length(ocid) + 1 + json_string_length(date) + 1;
		char *id = td_xmalloc(len);
		snprintf(id, len, "%s-%s", json_string_value(ocid), json_string_value(date));
		json_object_set_new(merged, "ocid", json_deep_copy(ocid));
		json_object_set_new(merged, "id", json_string(id));
		json_object_set_new(merged, "date", json_deep_copy(date));
		json_object_set_new(merged, "tag", json_pack("[s]", "compiled"));
		free(id);
	}
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(rels, json_deep_copy(d[i].release));
		if (versioned)
			td_merge_versioned(merged, d[i].release);
		else
			td_merge_compiled(merged, d[i].release);
	}
	json_object_set_new(record, versioned ? "versionedRelease" : "compiledRelease", merged);
	return record;
}

json_t *td_merge_records(const json_t *releases, bool versioned, char *err, size_t errlen)
{
	size_t n = json_array_size(releases), i, start;
	struct dated *d = td_xmalloc((n ? n : 1) * sizeof(*d));
	json_t *groups = json_object(), *records = NULL;
	const json_t *r;

	json_array_foreach(releases, i, r) {
		const json_t *ocid = json_object_get(r, "ocid"), *date = json_object_get(r, "date");
		json_t *g;
		if (!json_is_object(r)) {
			set_err(err, errlen, "release %zu: not an object", i);
			goto out;
		}
		if (!td_json_is_string(ocid) || json_string_length(ocid) == 0) {
			set_err(err, errlen, "release %zu: no ocid (a non-empty string)", i);
			goto out;
		}
		if (!td_json_is_string(date) ||
		    !td_iso_parse(json_string_value(date), json_string_length(date), &d[i].ms)) {
			set_err(err, errlen, "release %zu (ocid %s): no date (an RFC 3339 date-time)", i,
				json_string_value(ocid));
			goto out;
		}
		g = json_object_get(groups, json_string_value(ocid));
		if (!g) {
			g = json_integer((json_int_t)json_object_size(groups));
			json_object_set_new(groups, json_string_value(ocid), g);
		}
		d[i].group = (size_t)json_integer_value(g);
		d[i].pos = i;
		d[i].release = r;
	}
	qsort(d, n, sizeof(*d), dated_cmp);
	records = json_array();
	for (start = 0, i = 1; i <= n; i++) {
		if (i == n || d[i].group != d[start].group) {
			json_array_append_new(records, make_record(d + start, i - start, versioned));
			start = i;
		}
	}
out:
	free(d);
	json_decref(groups);
	return records;
}
