/*
 * Signed records (see tenderd/record.h for the encoding).
 *
 * td_record_decode() is the one gate for bytes from outside: size cap first,
 * then msgpack structure, field types, the release's own validity, the
 * envelope agreeing with the release, canonical form (re-encode and
 * compare), and last the signature, the most expensive check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tenderd/codec.h"
#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/sig.h"

void td_hash(uint8_t out[static TD_HASH_LEN], const uint8_t *in, size_t len)
{
	crypto_generichash(out, TD_HASH_LEN, in, len, NULL, 0);
}

/* Writes the first 8 envelope items (no array header). Returns 0 or TD_EINVAL. */
static int encode_fields(struct td_buf *b, const struct td_record *rec)
{
	td_enc_uint(b, TD_FORMAT_VERSION);
	td_enc_cstr(b, td_kind_name(rec->kind));
	td_enc_cstr(b, rec->ocid);
	td_enc_cstr(b, rec->release_id);
	td_enc_bin(b, rec->agency, TD_PUBKEY_LEN);
	td_enc_uint(b, rec->time_ms);
	if (rec->has_prev)
		td_enc_bin(b, rec->prev, TD_HASH_LEN);
	else if (msgpack_pack_nil(&b->pk) != 0)
		abort();
	return td_enc_json(b, rec->release, TD_JSON_DEPTH_MAX);
}

/*
 * The 8 unsigned items, encoded once (the release is the costly part) for
 * both the signing message and the signed encoding below.
 */
static int fields_bytes(const struct td_record *rec, uint8_t **out, size_t *len)
{
	struct td_buf b;
	int rc;

	td_buf_init(&b);
	rc = encode_fields(&b, rec);
	*out = td_buf_take(&b, len);
	td_buf_free(&b);
	return rc;
}

/* The message an agency signs: domain, NUL, genesis hash, the 8 fields as an array of 8. */
static void signing_bytes(const uint8_t chain[static TD_HASH_LEN], const uint8_t *fields, size_t flen, uint8_t **out,
			  size_t *len)
{
	struct td_buf b;

	td_buf_init(&b);
	td_enc_raw(&b, (const uint8_t *)TD_RECORD_DOMAIN, strlen(TD_RECORD_DOMAIN));
	td_enc_raw(&b, (const uint8_t *)"\0", 1);
	td_enc_raw(&b, chain, TD_HASH_LEN);
	td_enc_array(&b, 8);
	td_enc_raw(&b, fields, flen);
	*out = td_buf_take(&b, len);
	td_buf_free(&b);
}

/*
 * The signed encoding: the 8 fields and the signature as an array of 9, in
 * an allocation of exactly *len bytes (a record keeps it for its lifetime,
 * and msgpack's buffer starts at 8 KiB).
 */
static void encode_signed(const struct td_record *rec, const uint8_t *fields, size_t flen, uint8_t **out, size_t *len)
{
	struct td_buf b;

	td_buf_init(&b);
	td_enc_array(&b, 9);
	td_enc_raw(&b, fields, flen);
	td_enc_bin(&b, rec->sig, TD_SIG_LEN);
	*out = td_buf_take(&b, len);
	*out = td_xrealloc(*out, *len);
	td_buf_free(&b);
}

/* Copies the string member key of release into out (cap bytes); false if missing or too long. */
static bool member(const json_t *release, const char *key, char *out, size_t cap)
{
	const json_t *v = json_object_get(release, key);
	if (!td_json_is_string(v) || json_string_length(v) >= cap)
		return false;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return true;
}

int td_record_sign(struct td_record **out, enum td_kind kind, const json_t *release, uint64_t time_ms,
		   const uint8_t *prev, const uint8_t chain[static TD_HASH_LEN], const uint8_t sk[static TD_SECKEY_LEN],
		   char *err, size_t errlen)
{
	struct td_record *rec = td_xcalloc(1, sizeof(*rec));
	rec->refs = 1;
	uint8_t *msg = NULL, *fields = NULL;
	size_t msglen, flen;
	int rc;

	*out = NULL;
	rc = td_record_body_validate(release, kind, err, errlen);
	if (rc)
		goto fail;
	rc = TD_EINVAL;
	if ((prev != NULL) != td_kind_has_prev(kind)) {
		snprintf(err, errlen, "record: a %s %s the id of the ocid's previous record", td_kind_name(kind),
			 td_kind_has_prev(kind) ? "must name" : "names no");
		goto fail;
	}
	rec->kind = kind;
	rec->time_ms = time_ms;
	rec->has_prev = prev != NULL;
	if (prev)
		memcpy(rec->prev, prev, TD_HASH_LEN);
	rec->release = json_deep_copy(release);
	crypto_sign_ed25519_sk_to_pk(rec->agency, sk);
	if (!member(release, "ocid", rec->ocid, sizeof(rec->ocid)) ||
	    !member(release, "id", rec->release_id, sizeof(rec->release_id))) {
		snprintf(err, errlen, "release: ocid or id missing or too long");
		goto fail;
	}
	if (fields_bytes(rec, &fields, &flen)) {
		snprintf(err, errlen, "release: nested deeper than %d levels", TD_JSON_DEPTH_MAX);
		goto fail;
	}
	signing_bytes(chain, fields, flen, &msg, &msglen);
	td_sig_sign(rec->sig, msg, msglen, sk);
	encode_signed(rec, fields, flen, &rec->bytes, &rec->len);
	if (rec->len > TD_RECORD_MAX) {
		snprintf(err, errlen, "record is %zu bytes, over the %d byte limit", rec->len, TD_RECORD_MAX);
		goto fail;
	}
	td_hash(rec->id, rec->bytes, rec->len);
	free(msg);
	free(fields);
	*out = rec;
	return 0;
fail:
	free(msg);
	free(fields);
	td_record_free(rec);
	return rc;
}

/* What decode checks beyond the envelope's shape. */
enum decode_mode {
	DECODE_VERIFY,  /* everything: release, canonical encoding, signature */
	DECODE_TRUSTED, /* all but the signature */
	DECODE_STORED,  /* the shape only: bytes this node committed, read back */
};

static int decode(struct td_record **out, const uint8_t *buf, size_t len, const uint8_t chain[static TD_HASH_LEN],
		  enum decode_mode mode, char *err, size_t errlen)
{
	struct td_record *rec = td_xcalloc(1, sizeof(*rec));
	rec->refs = 1;
	msgpack_unpacked u;
	struct td_rd r = { true };
	const msgpack_object *f;
	uint8_t *again = NULL, *msg = NULL, *fields = NULL;
	size_t againlen, msglen, kindlen, flen;
	const char *kind;
	int rc = TD_EINVAL;

	*out = NULL;
	msgpack_unpacked_init(&u);
	if (len > TD_RECORD_MAX) {
		snprintf(err, errlen, "record is %zu bytes, over the %d byte limit", len, TD_RECORD_MAX);
		goto fail;
	}
	if (td_unpack(&u, buf, len)) {
		snprintf(err, errlen, "record: malformed msgpack");
		goto fail;
	}
	f = td_get_array(&r, &u.data, 9, 0, NULL);
	if (!f || td_get_uint(&r, &f[0]) != TD_FORMAT_VERSION) {
		snprintf(err, errlen, "record: not a format %d envelope (signed by a node of another version?)",
			 TD_FORMAT_VERSION);
		goto fail;
	}
	kind = td_get_str(&r, &f[1], &kindlen, 32);
	rec->kind = td_kind_parse(kind, kindlen);
	td_get_cstr(&r, &f[2], rec->ocid, sizeof(rec->ocid));
	td_get_cstr(&r, &f[3], rec->release_id, sizeof(rec->release_id));
	td_get_bin_fixed(&r, &f[4], rec->agency, TD_PUBKEY_LEN);
	rec->time_ms = td_get_uint(&r, &f[5]);
	rec->has_prev = r.ok && f[6].type != MSGPACK_OBJECT_NIL;
	if (rec->has_prev)
		td_get_bin_fixed(&r, &f[6], rec->prev, TD_HASH_LEN);
	if (r.ok && f[7].type != MSGPACK_OBJECT_MAP)
		r.ok = false;
	rec->release = td_get_json(&r, &f[7], TD_JSON_DEPTH_MAX);
	td_get_bin_fixed(&r, &f[8], rec->sig, TD_SIG_LEN);
	if (!r.ok || rec->kind == 0) {
		snprintf(err, errlen, "record: envelope field of the wrong type, unknown kind, or non-canonical body");
		goto fail;
	}
	if (rec->has_prev != td_kind_has_prev(rec->kind)) {
		snprintf(err, errlen, "record: a %s %s the id of the ocid's previous record", td_kind_name(rec->kind),
			 td_kind_has_prev(rec->kind) ? "must name" : "names no");
		goto fail;
	}
	if (mode != DECODE_STORED && td_record_body_validate(rec->release, rec->kind, err, errlen))
		goto fail;
	{
		char ocid[TD_OCID_MAX + 1], id[TD_ID_MAX + 1];
		if (!member(rec->release, "ocid", ocid, sizeof(ocid)) || strcmp(ocid, rec->ocid) != 0 ||
		    !member(rec->release, "id", id, sizeof(id)) || strcmp(id, rec->release_id) != 0) {
			snprintf(err, errlen, "record: envelope ocid or release id differs from the release");
			goto fail;
		}
	}
	if (mode == DECODE_STORED) {
		again = td_xmalloc(len);
		memcpy(again, buf, len);
		againlen = len;
		goto keep;
	}
	if (fields_bytes(rec, &fields, &flen)) {
		snprintf(err, errlen, "record: not in canonical encoding");
		goto fail;
	}
	encode_signed(rec, fields, flen, &again, &againlen);
	if (againlen != len || memcmp(again, buf, len) != 0) {
		snprintf(err, errlen, "record: not in canonical encoding");
		goto fail;
	}
	if (mode == DECODE_VERIFY) {
		signing_bytes(chain, fields, flen, &msg, &msglen);
		if (!td_sig_verify(rec->sig, msg, msglen, rec->agency)) {
			snprintf(err, errlen, "record: signature does not verify (for this chain's genesis)");
			rc = TD_ESIG;
			goto fail;
		}
	}
keep:
	rec->bytes = again;
	rec->len = againlen;
	again = NULL;
	td_hash(rec->id, rec->bytes, rec->len);
	*out = rec;
	rc = 0;
	goto done;
fail:
	td_record_free(rec);
done:
	free(again);
	free(msg);
	free(fields);
	msgpack_unpacked_destroy(&u);
	return rc;
}

int td_record_decode(struct td_record **out, const uint8_t *buf, size_t len, const uint8_t chain[static TD_HASH_LEN],
		     char *err, size_t errlen)
{
	return decode(out, buf, len, chain, DECODE_VERIFY, err, errlen);
}

int td_record_decode_trusted(struct td_record **out, const uint8_t *buf, size_t len,
			     const uint8_t chain[static TD_HASH_LEN], char *err, size_t errlen)
{
	return decode(out, buf, len, chain, DECODE_TRUSTED, err, errlen);
}

int td_record_decode_stored(struct td_record **out, const uint8_t *buf, size_t len,
			    const uint8_t chain[static TD_HASH_LEN], char *err, size_t errlen)
{
	return decode(out, buf, len, chain, DECODE_STORED, err, errlen);
}

struct td_record *td_record_ref(struct td_record *rec)
{
	rec->refs++;
	return rec;
}

void td_record_free(struct td_record *rec)
{
	if (!rec || --rec->refs > 0)
		return;
	json_decref(rec->release);
	free(rec->bytes);
	free(rec);
}
