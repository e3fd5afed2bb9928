/*
 * JSON with exact numbers (see tenderd/json.h for the representation).
 *
 * td_json_load() rewrites each number token of the input as a string whose
 * first byte is NUL before handing the text to jansson, which does all the
 * parsing; td_json_dump() lets jansson write and turns those strings back
 * into bare numbers. The two scans below only track whether they are inside
 * a string; they never interpret JSON structure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/codec.h"
#include "tenderd/json.h"

bool td_number_valid(const char *s, size_t len)
{
	size_t i = 0;

	if (len == 0 || len > TD_NUMBER_MAX)
		return false;
	if (s[i] == '-')
		i++;
	if (i == len)
		return false;
	if (s[i] == '0') {
		i++;
	} else if (s[i] >= '1' && s[i] <= '9') {
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	} else {
		return false;
	}
	if (i < len && s[i] == '.') {
		size_t start = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start)
			return false;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t start = i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start)
			return false;
	}
	return i == len;
}

static bool number_char(char c)
{
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Counts the line and column of offset off in buf, for messages. */
static void position(const char *buf, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

json_t *td_json_load(const char *buf, size_t len, char *err, size_t errlen)
{
	/* Each number grows by 8 bytes ("\u0000" and two quotes); bound the output first. */
	struct {
		char *p;
		size_t len, cap;
	} out = { NULL, 0, 0 };
	bool in_string = false;
	json_t *v = NULL;
	json_error_t jerr;
	int line, col;

	out.cap = len + 64;
	out.p = td_xmalloc(out.cap);
	for (size_t i = 0; i < len;) {
		char c = buf[i];
		if (in_string) {
			if (c == '\\' && i + 1 < len) {
				if (buf[i + 1] == 'u' && i + 5 < len && memcmp(buf + i + 2, "0000", 4) == 0) {
					position(buf, i, &line, &col);
					snprintf(err, errlen, "line %d column %d: \\u0000 is not allowed in strings", line,
						 col);
					goto fail;
				}
				if (out.len + 2 > out.cap)
					out.p = td_xrealloc(out.p, out.cap = out.cap * 2 + 2);
				out.p[out.len++] = c;
				out.p[out.len++] = buf[i + 1];
				i += 2;
				continue;
			}
			if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t start = i;
			while (i < len && number_char(buf[i]))
				i++;
			if (!td_number_valid(buf + start, i - start)) {
				position(buf, start, &line, &col);
				snprintf(err, errlen, "line %d column %d: invalid number '%.*s'", line, col,
					 (int)((i - start) > 40 ? 40 : (i - start)), buf + start);
				goto fail;
			}
			if (out.len + (i - start) + 8 > out.cap)
				out.p = td_xrealloc(out.p, out.cap = out.cap * 2 + (i - start) + 8);
			memcpy(out.p + out.len, "\"\\u0000", 7);
			out.len += 7;
			memcpy(out.p + out.len, buf + start, i - start);
			out.len += i - start;
			out.p[out.len++] = '"';
			continue;
		}
		if (out.len + 1 > out.cap)
			out.p = td_xrealloc(out.p, out.cap = out.cap * 2 + 1);
		out.p[out.len++] = c;
		i++;
	}
	v = json_loadb(out.p, out.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!v)
		snprintf(err, errlen, "line %d: %s", jerr.line, jerr.text);
fail:
	free(out.p);
	return v;
}

char *td_json_dump(const json_t *v, size_t flags)
{
	char *s = json_dumps(v, flags | JSON_ENCODE_ANY);
	if (!s)
		return NULL;
	/* Rewrite "\u0000TEXT" as TEXT in place: the result is never longer. */
	size_t r = 0, w = 0;
	bool in_string = false;
	while (s[r]) {
		char c = s[r];
		if (in_string) {
			s[w++] = c;
			r++;
			if (c == '\\' && s[r]) {
				s[w++] = s[r++];
			} else if (c == '"') {
				in_string = false;
			}
			continue;
		}
		if (c == '"' && strncmp(s + r + 1, "\\u0000", 6) == 0) {
			r += 7;
			while (s[r] && s[r] != '"')
				s[w++] = s[r++];
			if (s[r] == '"')
				r++;
			continue;
		}
		if (c == '"')
			in_string = true;
		s[w++] = c;
		r++;
	}
	s[w] = '\0';
	return s;
}

json_t *td_json_number(const char *s, size_t len)
{
	char tmp[TD_NUMBER_MAX + 1];
	if (!td_number_valid(s, len))
		return NULL;
	tmp[0] = '\0';
	memcpy(tmp + 1, s, len);
	return json_stringn_nocheck(tmp, len + 1);
}

json_t *td_json_uint(uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
	return td_json_number(tmp, (size_t)n);
}

bool td_json_is_number(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) >= 2 && json_string_value(v)[0] == '\0';
}

bool td_json_is_string(const json_t *v)
{
	return json_is_string(v) && !td_json_is_number(v);
}

const char *td_json_number_text(const json_t *v, size_t *len)
{
	if (!td_json_is_number(v))
		return NULL;
	*len = json_string_length(v) - 1;
	return json_string_value(v) + 1;
}

bool td_parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t x = 0;

	if (len == 0 || len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*out = x;
	return true;
}

bool td_json_number_u64(const json_t *v, uint64_t *out)
{
	size_t len;
	const char *s = td_json_number_text(v, &len);
	return s && td_parse_u64(s, len, out);
}

/* jansson 2.14 on 64-bit: a malloc'd block costs its size rounded to 16 plus 16. */
#define HEAP_BLOCK(n) ((((size_t)(n) + 15) & ~(size_t)15) + 16)

size_t td_json_heap(const json_t *v)
{
	size_t n = 0, i, size;
	const char *key;
	json_t *m;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		size = json_object_size(v);
		/* the object, its bucket table (two pointers a bucket, at least 8, about one a member) */
		n = HEAP_BLOCK(96) + HEAP_BLOCK(16 * (size > 8 ? size * 2 : 8));
		json_object_foreach ((json_t *)v, key, m)
			n += HEAP_BLOCK(56 + strlen(key) + 1) + td_json_heap(m);
		return n;
	case JSON_ARRAY:
		size = json_array_size(v);
		n = HEAP_BLOCK(48) + HEAP_BLOCK(8 * (size > 8 ? size * 2 : 8));
		json_array_foreach (v, i, m)
			n += td_json_heap(m);
		return n;
	case JSON_STRING:
		return HEAP_BLOCK(40) + HEAP_BLOCK(json_string_length(v) + 1);
	case JSON_INTEGER:
	case JSON_REAL:
		return HEAP_BLOCK(24);
	default:
		return 0; /* true, false and null are shared */
	}
}
