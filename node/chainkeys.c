/*
 * The chain's store schema: key builders and value encodings (see
 * chainkeys.h, which documents the layout). Pure: no store, no allocation.
 */
#include <stdlib.h>
#include <string.h>

#include "tenderd/evidence.h"
#include "tenderd/isotime.h"
#include "chainkeys.h"

/* ---- integers ------------------------------------------------------------- */

void ckey_put_u64(uint8_t p[static 8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

void ckey_put_u32(uint8_t p[static 4], uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint64_t ckey_get_u64(const uint8_t p[static 8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

uint32_t ckey_get_u32(const uint8_t p[static 4])
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- building keys ---------------------------------------------------------- */

static void key_tag(struct ckey *k, char tag)
{
	k->b[0] = (uint8_t)tag;
	k->n = 1;
}

void ckey_bytes(struct ckey *k, const void *p, size_t n)
{
	if (k->n + n > sizeof(k->b))
		abort();
	memcpy(k->b + k->n, p, n);
	k->n += n;
}

static void key_byte(struct ckey *k, uint8_t c)
{
	ckey_bytes(k, &c, 1);
}

void ckey_u64(struct ckey *k, uint64_t v)
{
	uint8_t b[8];
	ckey_put_u64(b, v);
	ckey_bytes(k, b, 8);
}

static void key_u32(struct ckey *k, uint32_t v)
{
	uint8_t b[4];
	ckey_put_u32(b, v);
	ckey_bytes(k, b, 4);
}

static void key_str(struct ckey *k, const char *s)
{
	ckey_bytes(k, s, strlen(s));
}

static void key_height(struct ckey *k, char tag, uint64_t h)
{
	key_tag(k, tag);
	ckey_u64(k, h);
}

static void key_ocid(struct ckey *k, char tag, const char *ocid)
{
	key_tag(k, tag);
	key_str(k, ocid);
}

void ckey_schema(struct ckey *k)
{
	key_tag(k, 'S');
}

void ckey_chain_id(struct ckey *k)
{
	key_tag(k, 'I');
}

void ckey_genesis(struct ckey *k)
{
	key_tag(k, 'G');
}

void ckey_tip(struct ckey *k)
{
	key_tag(k, 'M');
}

void ckey_block(struct ckey *k, uint64_t height)
{
	key_height(k, 'B', height);
}

void ckey_records(struct ckey *k, uint64_t height)
{
	key_height(k, 'D', height);
}

void ckey_record(struct ckey *k, uint64_t height, uint32_t index)
{
	key_height(k, 'D', height);
	key_u32(k, index);
}

void ckey_evidence(struct ckey *k, const uint8_t *evkey)
{
	key_tag(k, 'X');
	ckey_bytes(k, evkey, TD_EVIDENCE_KEY_LEN);
}

void ckey_gov(struct ckey *k, uint64_t height)
{
	key_height(k, 'V', height);
}

void ckey_commit(struct ckey *k, uint64_t height)
{
	key_height(k, 'C', height);
}

void ckey_record_loc(struct ckey *k, const uint8_t id[static TD_HASH_LEN])
{
	key_tag(k, 'R');
	ckey_bytes(k, id, TD_HASH_LEN);
}

void ckey_tender(struct ckey *k, const char *ocid)
{
	key_ocid(k, 'T', ocid);
}

void ckey_releases(struct ckey *k, const char *ocid)
{
	key_ocid(k, 'E', ocid);
	key_byte(k, 0);
}

void ckey_release(struct ckey *k, const char *ocid, uint32_t seq)
{
	ckey_releases(k, ocid);
	key_u32(k, seq);
}

void ckey_release_id(struct ckey *k, const char *ocid, const char *release_id)
{
	key_ocid(k, 'U', ocid);
	key_byte(k, 0);
	key_str(k, release_id);
}

/* ---- values ----------------------------------------------------------------- */

void ckey_tip_encode(const struct ckey_tipval *t, uint8_t out[static CKEY_TIP_LEN])
{
	ckey_put_u64(out, t->height);
	memcpy(out + 8, t->hash, TD_HASH_LEN);
	ckey_put_u64(out + 8 + TD_HASH_LEN, t->time_ms);
	ckey_put_u64(out + 16 + TD_HASH_LEN, t->n_records);
	ckey_put_u64(out + 24 + TD_HASH_LEN, t->file_end);
}

bool ckey_tip_decode(struct ckey_tipval *t, const uint8_t *p, size_t n)
{
	if (n != CKEY_TIP_LEN)
		return false;
	t->height = ckey_get_u64(p);
	memcpy(t->hash, p + 8, TD_HASH_LEN);
	t->time_ms = ckey_get_u64(p + 8 + TD_HASH_LEN);
	t->n_records = ckey_get_u64(p + 16 + TD_HASH_LEN);
	t->file_end = ckey_get_u64(p + 24 + TD_HASH_LEN);
	return true;
}

void ckey_ref_encode(uint8_t out[static CKEY_REF_LEN], uint64_t off, uint32_t len)
{
	ckey_put_u64(out, off);
	ckey_put_u32(out + 8, len);
}

bool ckey_ref_decode(const uint8_t *p, size_t n, uint64_t *off, uint32_t *len)
{
	if (n != CKEY_REF_LEN)
		return false;
	*off = ckey_get_u64(p);
	*len = ckey_get_u32(p + 8);
	return true;
}

void ckey_loc_encode(uint8_t out[static CKEY_LOC_LEN], uint64_t height, uint32_t index)
{
	ckey_put_u64(out, height);
	ckey_put_u32(out + 8, index);
}

bool ckey_loc_decode(const uint8_t *p, size_t n, uint64_t *height, uint32_t *index)
{
	if (n != CKEY_LOC_LEN)
		return false;
	if (height)
		*height = ckey_get_u64(p);
	if (index)
		*index = ckey_get_u32(p + 8);
	return true;
}

static uint8_t *put_field(uint8_t *p, const char *s)
{
	size_t n = strlen(s);

	*p++ = (uint8_t)n;
	memcpy(p, s, n);
	return p + n;
}

void ckey_tstate_encode(const struct ckey_tstate *t, uint8_t out[static CKEY_TSTATE_MAX], size_t *len)
{
	uint8_t *p = out;

	memcpy(p, t->owner, TD_PUBKEY_LEN);
	p += TD_PUBKEY_LEN;
	*p++ = t->flags;
	ckey_put_u64(p, t->first_height);
	p += 8;
	ckey_put_u32(p, t->first_index);
	p += 4;
	ckey_put_u32(p, t->n_releases);
	p += 4;
	ckey_put_u64(p, t->last_height);
	p += 8;
	ckey_put_u64(p, t->first_date);
	p += 8;
	ckey_put_u64(p, t->date);
	p += 8;
	memcpy(p, t->last_id, TD_HASH_LEN);
	p += TD_HASH_LEN;
	p = put_field(p, t->status);
	p = put_field(p, t->category);
	p = put_field(p, t->method);
	p = put_field(p, t->last_release);
	*len = (size_t)(p - out);
}

/* Reads a length-prefixed string of at most max bytes into out (max + 1 bytes); false if malformed. */
static bool get_field(const uint8_t **p, const uint8_t *end, char *out, size_t max)
{
	size_t n;

	if (*p >= end)
		return false;
	n = **p;
	if (n > max || (size_t)(end - *p - 1) < n || memchr(*p + 1, 0, n))
		return false;
	memcpy(out, *p + 1, n);
	out[n] = '\0';
	*p += 1 + n;
	return true;
}

bool ckey_tstate_decode(struct ckey_tstate *t, const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;

	if (len < CKEY_TSTATE_FIXED)
		return false;
	memcpy(t->owner, p, TD_PUBKEY_LEN);
	p += TD_PUBKEY_LEN;
	t->flags = *p++;
	t->first_height = ckey_get_u64(p);
	p += 8;
	t->first_index = ckey_get_u32(p);
	p += 4;
	t->n_releases = ckey_get_u32(p);
	p += 4;
	t->last_height = ckey_get_u64(p);
	p += 8;
	t->first_date = ckey_get_u64(p);
	p += 8;
	t->date = ckey_get_u64(p);
	p += 8;
	memcpy(t->last_id, p, TD_HASH_LEN);
	p += TD_HASH_LEN;
	return get_field(&p, end, t->status, CKEY_FIELD_MAX) && get_field(&p, end, t->category, CKEY_FIELD_MAX) &&
	       get_field(&p, end, t->method, CKEY_FIELD_MAX) && get_field(&p, end, t->last_release, TD_ID_MAX) &&
	       p == end;
}

void ckey_block_meta_encode(struct td_buf *v, const struct td_block *blk)
{
	const size_t start = v->sb.size;
	uint8_t hl[4] = { 0 };

	td_enc_raw(v, hl, sizeof(hl));
	td_header_encode(v, &blk->hdr);
	ckey_put_u32((uint8_t *)v->sb.data + start, (uint32_t)(v->sb.size - start - sizeof(hl)));
	for (uint32_t i = 0; i < blk->hdr.n_records; i++)
		td_enc_raw(v, blk->records[i]->id, TD_HASH_LEN);
	for (uint32_t i = 0; i < blk->hdr.n_evidence; i++) {
		const size_t at = v->sb.size;
		uint8_t el[2] = { 0 };
		td_enc_raw(v, el, sizeof(el));
		td_evidence_encode(v, &blk->evidence[i]);
		const size_t n = v->sb.size - at - sizeof(el);
		((uint8_t *)v->sb.data)[at] = (uint8_t)(n >> 8);
		((uint8_t *)v->sb.data)[at + 1] = (uint8_t)n;
	}
}

bool ckey_block_meta_decode(struct ckey_block_meta *m, const uint8_t *p, size_t n, uint64_t height)
{
	if (n < 4)
		return false;
	m->hlen = ckey_get_u32(p);
	if (m->hlen > n - 4)
		return false;
	m->hdr = p + 4;
	m->ids = m->hdr + m->hlen;
	if (td_header_decode(&m->h, m->hash, m->hdr, m->hlen) != 0 || m->h.height != height ||
	    n - 4 - m->hlen < (size_t)m->h.n_records * TD_HASH_LEN)
		return false;
	m->ev = m->ids + (size_t)m->h.n_records * TD_HASH_LEN;
	m->evlen = (size_t)(p + n - m->ev);
	const uint8_t *q = m->ev, *end = p + n;
	for (uint32_t i = 0; i < m->h.n_evidence; i++) {
		if (end - q < 2)
			return false;
		size_t el = (size_t)q[0] << 8 | q[1];
		if ((size_t)(end - q - 2) < el)
			return false;
		q += 2 + el;
	}
	return q == end;
}

/* ---- dates ------------------------------------------------------------------ */

bool ckey_date(const char *s, size_t len, uint64_t *out)
{
	int64_t ms;

	if (!td_iso_parse(s, len, &ms))
		return false;
	*out = (uint64_t)ms + CKEY_DATE_BIAS;
	return true;
}

uint64_t ckey_date_ms(uint64_t ms)
{
	return ms + CKEY_DATE_BIAS;
}

/* ---- list indexes ----------------------------------------------------------- */

void ckey_lix_prefix(struct ckey *k, enum ckey_lix x, const void *v)
{
	key_tag(k, 'L');
	switch (x) {
	case CKEY_LIX_ALL: key_byte(k, 0); break;
	case CKEY_LIX_AGENCY:
		key_byte(k, 'a');
		ckey_bytes(k, v, TD_PUBKEY_LEN);
		break;
	case CKEY_LIX_STATUS:
	case CKEY_LIX_CATEGORY:
	case CKEY_LIX_METHOD:
		key_byte(k, x == CKEY_LIX_STATUS ? 's' : x == CKEY_LIX_CATEGORY ? 'c' : 'm');
		key_str(k, v);
		key_byte(k, 0);
		break;
	case CKEY_LIX_DATE: key_byte(k, 'd'); break;
	}
}

size_t ckey_lix_tail(enum ckey_lix x)
{
	return x == CKEY_LIX_DATE ? 8 + 8 + 4 : 8 + 4;
}

const void *ckey_lix_value(enum ckey_lix x, const struct ckey_tstate *t)
{
	switch (x) {
	case CKEY_LIX_ALL: return NULL;
	case CKEY_LIX_AGENCY: return t->owner;
	case CKEY_LIX_STATUS: return t->status;
	case CKEY_LIX_CATEGORY: return t->category;
	case CKEY_LIX_METHOD: return t->method;
	case CKEY_LIX_DATE: return NULL;
	}
	return NULL;
}

bool ckey_lix_has(enum ckey_lix x, const struct ckey_tstate *t)
{
	switch (x) {
	case CKEY_LIX_ALL:
	case CKEY_LIX_AGENCY:
	case CKEY_LIX_DATE: return true;
	case CKEY_LIX_STATUS:
	case CKEY_LIX_CATEGORY:
	case CKEY_LIX_METHOD: return *(const char *)ckey_lix_value(x, t) != '\0';
	}
	return false;
}

void ckey_lix_key(struct ckey *k, enum ckey_lix x, const struct ckey_tstate *t)
{
	ckey_lix_prefix(k, x, ckey_lix_value(x, t));
	if (x == CKEY_LIX_DATE)
		ckey_u64(k, t->date);
	ckey_u64(k, t->first_height);
	key_u32(k, t->first_index);
}

bool ckey_lix_counted(enum ckey_lix x)
{
	return x != CKEY_LIX_ALL && x != CKEY_LIX_DATE;
}

void ckey_lix_count_key(struct ckey *k, enum ckey_lix x, const void *v)
{
	ckey_lix_prefix(k, x, v);
	k->b[0] = 'N';
}
