/*
 * JSON with exact numbers.
 *
 * jansson parses and writes JSON but keeps numbers only as doubles or int64,
 * which would turn an amount of 712500000.50 into 712500000.5. tenderd keeps
 * every number as the text the agency wrote: td_json_load() marks each number
 * token before jansson parses the text, and the marked value lives in the tree
 * as a jansson string whose first byte is NUL (a byte no parsed JSON string can
 * hold, since strings with \u0000 are refused). td_json_dump() writes such a
 * value back as the bare number. Use td_json_is_number() and friends, never
 * json_is_number(), on trees from these functions.
 */
#ifndef TENDERD_JSON_H
#define TENDERD_JSON_H

#include <jansson.h>
#include "tenderd/types.h"

/*
 * Parses len bytes of JSON text (one value, nothing after it but whitespace).
 * Object keys must be unique. Returns a new reference, or NULL with a message
 * in err (errlen bytes) naming the line and column.
 */
json_t *td_json_load(const char *buf, size_t len, char *err, size_t errlen);

/*
 * About how many heap bytes the tree v holds (jansson's nodes, object
 * tables, strings and allocator overhead): what a parsed record costs while
 * it waits in the mempool. An estimate from the node layout, not a count of
 * allocations; shared subtrees are counted each time they appear.
 */
size_t td_json_heap(const json_t *v);

/*
 * Serializes v with jansson's flags (JSON_COMPACT, JSON_INDENT(n), ...);
 * numbers made by td_json_load/td_json_number come out as their text.
 * Returns a malloc'd NUL-terminated string the caller frees, or NULL if v
 * holds something JSON cannot (only on memory exhaustion in practice).
 */
char *td_json_dump(const json_t *v, size_t flags);

/* True if s[0..len) is a number in JSON's grammar (RFC 8259, section 6). */
bool td_number_valid(const char *s, size_t len);

/* A new number value with the exact text s[0..len); NULL if not valid. */
json_t *td_json_number(const char *s, size_t len);
/* A new number value for an unsigned integer. */
json_t *td_json_uint(uint64_t v);

/* True if v is a number value from the functions above. */
bool td_json_is_number(const json_t *v);
/* The number's text and its length (not NUL-terminated in general); NULL if v is not a number. */
const char *td_json_number_text(const json_t *v, size_t *len);
/* True if s[0..len) is a plain decimal integer (digits only) that fits uint64; stores it in *out. */
bool td_parse_u64(const char *s, size_t len, uint64_t *out);
/* True if v is a number written as a non-negative integer that fits uint64; stores it in *out. */
bool td_json_number_u64(const json_t *v, uint64_t *out);
/* True if v is a plain string (not a number value). */
bool td_json_is_string(const json_t *v);

#endif
