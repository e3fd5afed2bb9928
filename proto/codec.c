/*
 * Canonical msgpack on top of msgpack-c (see tenderd/codec.h).
 *
 * msgpack-c's packer writes the shortest form of every header, so canonical
 * form only needs sorted map keys and exact-number ext values here; readers
 * refuse what the writers would not produce, and record/block decoders
 * finish with an encode-and-compare to catch anything else.
 */
#include <stdlib.h>
#include <string.h>

#include "tenderd/codec.h"
#include "tenderd/json.h"

/*
 * A buffer's first allocation. msgpack-c would start at 8 KiB, past what
 * malloc keeps in its fast per-thread caches, for messages mostly far
 * smaller (a vote is some 150 bytes); it doubles from here as it fills.
 */
#define BUF_FIRST 256

void td_buf_init(struct td_buf *b)
{
	msgpack_sbuffer_init(&b->sb);
	b->sb.data = td_xmalloc(BUF_FIRST);
	b->sb.alloc = BUF_FIRST;
	msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

void td_buf_free(struct td_buf *b)
{
	msgpack_sbuffer_destroy(&b->sb);
}

uint8_t *td_buf_take(struct td_buf *b, size_t *len)
{
	*len = b->sb.size;
	uint8_t *p = (uint8_t *)msgpack_sbuffer_release(&b->sb);
	if (!p)
		p = td_xmalloc(1);
	return p;
}

/* msgpack-c's sbuffer only fails on allocation failure: abort like td_xmalloc. */
static void check(int rc)
{
	if (rc != 0)
		abort();
}

void td_enc_uint(struct td_buf *b, uint64_t v)
{
	check(msgpack_pack_uint64(&b->pk, v));
}

void td_enc_str(struct td_buf *b, const char *s, size_t len)
{
	check(msgpack_pack_str_with_body(&b->pk, s, len));
}

void td_enc_cstr(struct td_buf *b, const char *s)
{
	td_enc_str(b, s, strlen(s));
}

void td_enc_bin(struct td_buf *b, const uint8_t *p, size_t len)
{
	check(msgpack_pack_bin_with_body(&b->pk, p, len));
}

void td_enc_array(struct td_buf *b, uint32_t n)
{
	check(msgpack_pack_array(&b->pk, n));
}

void td_enc_map(struct td_buf *b, uint32_t n)
{
	check(msgpack_pack_map(&b->pk, n));
}

void td_enc_raw(struct td_buf *b, const uint8_t *p, size_t len)
{
	check(msgpack_sbuffer_write(&b->sb, (const char *)p, len));
}

struct key {
	const char *s;
	size_t len;
	json_t *v;
};

static int key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	if (c)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

int td_enc_json(struct td_buf *b, const json_t *v, int max_depth)
{
	size_t len;
	const char *text;

	if (max_depth < 0)
		return TD_EINVAL;
	switch (json_typeof(v)) {
	case JSON_NULL:
		check(msgpack_pack_nil(&b->pk));
		return 0;
	case JSON_TRUE:
		check(msgpack_pack_true(&b->pk));
		return 0;
	case JSON_FALSE:
		check(msgpack_pack_false(&b->pk));
		return 0;
	case JSON_INTEGER:
	case JSON_REAL:
		return TD_EINVAL;
	case JSON_STRING:
		if ((text = td_json_number_text(v, &len))) {
			check(msgpack_pack_ext_with_body(&b->pk, text, len, TD_EXT_NUMBER));
			return 0;
		}
		if (memchr(json_string_value(v), '\0', json_string_length(v)))
			return TD_EINVAL;
		td_enc_str(b, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_ARRAY: {
		size_t n = json_array_size(v);
		if (n > UINT32_MAX)
			return TD_EINVAL;
		td_enc_array(b, (uint32_t)n);
		for (size_t i = 0; i < n; i++) {
			int rc = td_enc_json(b, json_array_get(v, i), max_depth - 1);
			if (rc)
				return rc;
		}
		return 0;
	}
	case JSON_OBJECT: {
		size_t n = json_object_size(v), i = 0;
		const char *k;
		json_t *item;
		int rc = 0;
		if (n > UINT32_MAX)
			return TD_EINVAL;
		struct key *keys = td_xcalloc(n, sizeof(*keys));
		for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
			k = json_object_iter_key(it);
			item = json_object_iter_value(it);
			keys[i].s = k;
			keys[i].len = json_object_iter_key_len(it);
			keys[i].v = item;
			if (memchr(k, '\0', keys[i].len)) {
				free(keys);
				return TD_EINVAL;
			}
			i++;
		}
		qsort(keys, n, sizeof(*keys), key_cmp);
		td_enc_map(b, (uint32_t)n);
		for (i = 0; i < n && rc == 0; i++) {
			td_enc_str(b, keys[i].s, keys[i].len);
			rc = td_enc_json(b, keys[i].v, max_depth - 1);
		}
		free(keys);
		return rc;
	}
	}
	return TD_EINVAL;
}

/* Reads a w-byte big-endian length at p[*i]. */
static bool read_be(const uint8_t *p, size_t len, size_t *i, int w, uint64_t *out)
{
	if (len - *i < (size_t)w)
		return false;
	*out = 0;
	for (int k = 0; k < w; k++)
		*out = *out << 8 | p[(*i)++];
	return true;
}

#define UNPACK_SMALL 1024     /* inputs shorter than this ... */
#define UNPACK_ZONE_SMALL 512 /* ... start with a zone this large (it grows as needed) */

/*
 * Checks that every array and map header in the value at p[*i] counts no
 * more items than bytes remain: msgpack-c allocates a container's whole
 * count before reading its items, so a 5-byte input could otherwise ask
 * for gigabytes. Skips string, bin and ext bodies without looking inside.
 */
static bool counts_fit(const uint8_t *p, size_t len, size_t *i, int depth)
{
	uint64_t items = 0, skip = 0, n;
	if (depth > 64 || *i >= len)
		return false;
	uint8_t c = p[(*i)++];
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
		return true;
	if (c >= 0x80 && c <= 0x8f)
		items = 2 * (uint64_t)(c & 0x0f);
	else if (c >= 0x90 && c <= 0x9f)
		items = c & 0x0f;
	else if (c >= 0xa0 && c <= 0xbf)
		skip = c & 0x1f;
	else if (c >= 0xd4 && c <= 0xd8)
		skip = 1 + (1u << (c - 0xd4));
	else if (c == 0xc4 || c == 0xd9 || c == 0xc5 || c == 0xda || c == 0xc6 || c == 0xdb) {
		if (!read_be(p, len, i, (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4, &skip))
			return false;
	} else if (c >= 0xc7 && c <= 0xc9) {
		if (!read_be(p, len, i, c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4, &skip))
			return false;
		skip += 1;
	} else if (c >= 0xca && c <= 0xd3) {
		static const uint8_t sizes[] = { 4, 8, 1, 2, 4, 8, 1, 2, 4, 8 };
		skip = sizes[c - 0xca];
	} else if (c >= 0xdc && c <= 0xdf) {
		if (!read_be(p, len, i, (c == 0xdc || c == 0xde) ? 2 : 4, &n))
			return false;
		items = c >= 0xde ? 2 * n : n;
	} else {
		return false; /* 0xc1 is never used */
	}
	if (items > len - *i || skip > len - *i)
		return false;
	*i += skip;
	for (uint64_t k = 0; k < items; k++)
		if (!counts_fit(p, len, i, depth + 1))
			return false;
	return true;
}

int td_unpack(msgpack_unpacked *u, const uint8_t *p, size_t len)
{
	size_t at = 0;
	if (!counts_fit(p, len, &at, 0) || at != len)
		return TD_EINVAL;

	/*
	 * What msgpack_unpack_next() does, with a zone sized for the input: it
	 * would take 8 KiB (past malloc's per-thread caches) for every value, but
	 * the zone holds only containers' item arrays (strings and bins point
	 * into p), and most values are messages of a few hundred bytes.
	 */
	size_t off = 0;
	msgpack_unpacked_destroy(u);
	msgpack_zone *z = msgpack_zone_new(len < UNPACK_SMALL ? UNPACK_ZONE_SMALL : MSGPACK_ZONE_CHUNK_SIZE);
	if (!z)
		abort();
	msgpack_unpack_return rc = msgpack_unpack((const char *)p, len, &off, z, &u->data);
	if (rc != MSGPACK_UNPACK_SUCCESS || off != len) {
		msgpack_zone_free(z);
		return TD_EINVAL;
	}
	u->zone = z;
	return 0;
}

bool td_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned c = p[i];
		size_t n;
		uint32_t cp;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

uint64_t td_get_uint(struct td_rd *r, const msgpack_object *o)
{
	if (!r->ok || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		r->ok = false;
		return 0;
	}
	return o->via.u64;
}

const char *td_get_str(struct td_rd *r, const msgpack_object *o, size_t *len, size_t max)
{
	*len = 0;
	if (!r->ok || o->type != MSGPACK_OBJECT_STR || o->via.str.size > max ||
	    !td_utf8_valid(o->via.str.ptr, o->via.str.size)) {
		r->ok = false;
		return "";
	}
	*len = o->via.str.size;
	return o->via.str.size ? o->via.str.ptr : ""; /* msgpack-c gives NULL for some empty strings */
}

void td_get_cstr(struct td_rd *r, const msgpack_object *o, char *out, size_t outlen)
{
	size_t len;
	const char *s = td_get_str(r, o, &len, outlen - 1);
	memcpy(out, s, len);
	out[len] = '\0';
}

void td_get_bin_fixed(struct td_rd *r, const msgpack_object *o, uint8_t *out, size_t len)
{
	if (!r->ok || o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != len) {
		r->ok = false;
		memset(out, 0, len);
		return;
	}
	memcpy(out, o->via.bin.ptr, len);
}

const msgpack_object *td_get_array(struct td_rd *r, const msgpack_object *o, uint32_t n, uint32_t max,
				   uint32_t *count)
{
	if (count)
		*count = 0;
	if (!r->ok || o->type != MSGPACK_OBJECT_ARRAY) {
		r->ok = false;
		return NULL;
	}
	if (n == UINT32_MAX) {
		if (o->via.array.size > max) {
			r->ok = false;
			return NULL;
		}
	} else if (o->via.array.size != n) {
		r->ok = false;
		return NULL;
	}
	if (count)
		*count = o->via.array.size;
	return o->via.array.ptr;
}

static bool str_less(const msgpack_object_str *a, const msgpack_object_str *b)
{
	size_t n = a->size < b->size ? a->size : b->size;
	int c = n ? memcmp(a->ptr, b->ptr, n) : 0;
	return c < 0 || (c == 0 && a->size < b->size);
}

json_t *td_get_json(struct td_rd *r, const msgpack_object *o, int max_depth)
{
	json_t *v = NULL;

	if (!r->ok || max_depth < 0)
		goto fail;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_STR:
		if (!td_utf8_valid(o->via.str.ptr, o->via.str.size))
			goto fail;
		v = json_stringn(o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
		if (!v)
			goto fail;
		return v;
	case MSGPACK_OBJECT_EXT:
		if (o->via.ext.type != TD_EXT_NUMBER)
			goto fail;
		v = td_json_number(o->via.ext.ptr, o->via.ext.size);
		if (!v)
			goto fail;
		return v;
	case MSGPACK_OBJECT_ARRAY:
		v = json_array();
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			json_t *item = td_get_json(r, &o->via.array.ptr[i], max_depth - 1);
			if (!item)
				goto fail;
			json_array_append_new(v, item);
		}
		return v;
	case MSGPACK_OBJECT_MAP:
		v = json_object();
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR || !td_utf8_valid(kv->key.via.str.ptr, kv->key.via.str.size))
				goto fail;
			if (i > 0 && !str_less(&o->via.map.ptr[i - 1].key.via.str, &kv->key.via.str))
				goto fail;
			json_t *item = td_get_json(r, &kv->val, max_depth - 1);
			if (!item)
				goto fail;
			if (json_object_setn_new_nocheck(v, kv->key.via.str.size ? kv->key.via.str.ptr : "",
							 kv->key.via.str.size, item) != 0)
				goto fail;
		}
		return v;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
	case MSGPACK_OBJECT_BIN:
		goto fail;
	}
fail:
	json_decref(v);
	r->ok = false;
	return NULL;
}
