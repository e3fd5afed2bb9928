/*
 * Canonical msgpack on top of msgpack-c.
 *
 * One value has exactly one encoding: msgpack-c's packer already writes the
 * shortest header for every length and integer; on top of it, map keys are
 * strings in strictly ascending bytewise order and JSON numbers are ext type
 * TD_EXT_NUMBER holding the number's exact text. Decoders check canonical
 * form by encoding what they decoded and comparing the bytes, so any other
 * encoding of the same value is refused.
 *
 * Readers take a msgpack_object from td_unpack() and a td_rd whose first
 * failure poisons every later read, so a caller checks r.ok once at the end.
 */
#ifndef TENDERD_CODEC_H
#define TENDERD_CODEC_H

#include <jansson.h>
#include <msgpack.h>
#include "tenderd/types.h"

#define TD_EXT_NUMBER 1 /* msgpack ext type for a JSON number's text */
#define TD_NUMBER_MAX 64 /* longest number text accepted */

/* A growable output buffer with a msgpack packer writing into it. */
struct td_buf {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

void td_buf_init(struct td_buf *b);
void td_buf_free(struct td_buf *b);
/* Gives the bytes to the caller (free() them) and leaves b empty and usable. */
uint8_t *td_buf_take(struct td_buf *b, size_t *len);

void td_enc_uint(struct td_buf *b, uint64_t v);
void td_enc_str(struct td_buf *b, const char *s, size_t len);
void td_enc_cstr(struct td_buf *b, const char *s);
void td_enc_bin(struct td_buf *b, const uint8_t *p, size_t len);
void td_enc_array(struct td_buf *b, uint32_t n);
void td_enc_map(struct td_buf *b, uint32_t n);
void td_enc_raw(struct td_buf *b, const uint8_t *p, size_t len);
/*
 * Writes a JSON tree (from td_json_load) canonically: object keys sorted,
 * numbers as TD_EXT_NUMBER. Returns 0, or TD_EINVAL if the tree is deeper
 * than max_depth or holds a jansson real or integer (trees use exact numbers).
 */
int td_enc_json(struct td_buf *b, const json_t *v, int max_depth);

/*
 * Unpacks exactly one value spanning all len bytes into u (which the caller
 * has msgpack_unpacked_init'ed and later msgpack_unpacked_destroy's).
 * Returns 0, or TD_EINVAL on malformed, truncated or trailing bytes.
 */
int td_unpack(msgpack_unpacked *u, const uint8_t *p, size_t len);

struct td_rd {
	bool ok;
};

uint64_t td_get_uint(struct td_rd *r, const msgpack_object *o);
/* A string of at most max bytes, valid UTF-8, no NUL; pointer into the input. */
const char *td_get_str(struct td_rd *r, const msgpack_object *o, size_t *len, size_t max);
/* Copies a string into out (outlen bytes with room for the NUL). */
void td_get_cstr(struct td_rd *r, const msgpack_object *o, char *out, size_t outlen);
void td_get_bin_fixed(struct td_rd *r, const msgpack_object *o, uint8_t *out, size_t len);
/* An array of exactly n items (n == UINT32_MAX: any count up to max, stored in *count). */
const msgpack_object *td_get_array(struct td_rd *r, const msgpack_object *o, uint32_t n, uint32_t max,
				   uint32_t *count);
/*
 * Reads a value as a JSON tree; refuses types JSON cannot hold, non-string,
 * unsorted or duplicate keys, invalid number text, strings with NUL or invalid
 * UTF-8, and nesting deeper than max_depth. Returns a new reference or NULL.
 */
json_t *td_get_json(struct td_rd *r, const msgpack_object *o, int max_depth);

/* True if s[0..len) is valid UTF-8 without NUL bytes. */
bool td_utf8_valid(const char *s, size_t len);

#endif
