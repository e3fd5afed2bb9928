/*
 * Signed records: one OCDS release in an envelope signed by an agency.
 *
 * Encoding (canonical msgpack, see tenderd/codec.h), an array of 9:
 *   [2 (TD_FORMAT_VERSION), kind tag, ocid, release id, agency public key
 *    (bin 32), time (ms since epoch), previous record id (bin 32) or nil,
 *    release (map), signature (bin 64)]
 * The previous record id chains the releases of one ocid: nil for the
 * tender that opens it, else the id of the ocid's latest record before this
 * one (the chain checks it), so a record's id covers the ocid's whole
 * history up to it. The signature is Ed25519 over TD_RECORD_DOMAIN, a NUL,
 * the genesis hash of the chain (32 bytes), and the canonical encoding of
 * the first 8 items as an array of 8. The record id
 * is BLAKE2b-256 of the whole encoding. A record is at most TD_RECORD_MAX bytes.
 */
#ifndef TENDERD_RECORD_H
#define TENDERD_RECORD_H

#include <jansson.h>
#include "tenderd/types.h"
#include "tenderd/release.h"

#define TD_RECORD_DOMAIN "tenderd-record-v2"

struct td_record {
	enum td_kind kind;
	char ocid[TD_OCID_MAX + 1];
	char release_id[TD_ID_MAX + 1];
	uint8_t agency[TD_PUBKEY_LEN];
	uint64_t time_ms;
	bool has_prev;             /* false for a tender: it opens its ocid */
	uint8_t prev[TD_HASH_LEN]; /* the id of the ocid's record before this one */
	json_t *release;           /* owned reference; its ocid and id match the fields above */
	uint8_t sig[TD_SIG_LEN];
	uint8_t id[TD_HASH_LEN]; /* BLAKE2b-256 of bytes */
	uint8_t *bytes;          /* owned canonical encoding */
	size_t len;
	uint32_t refs; /* td_record_ref() adds one, td_record_free() drops one */
};

/*
 * Signs a release (a full one, from td_release_build) as the agency whose
 * Ed25519 secret key is sk, after the ocid's record prev (TD_HASH_LEN bytes;
 * NULL for a tender, required for every other kind). Takes no ownership of
 * release. Returns 0 and a new record in *out, or TD_EINVAL (err says why:
 * invalid release, too big, prev missing or not allowed).
 */
int td_record_sign(struct td_record **out, enum td_kind kind, const json_t *release, uint64_t time_ms,
		   const uint8_t *prev, const uint8_t chain[static TD_HASH_LEN], const uint8_t sk[static TD_SECKEY_LEN],
		   char *err, size_t errlen);

/*
 * Decodes and checks a record from the wire or the store: size, canonical
 * form, envelope fields agreeing with the release, release validity and the
 * signature for the chain whose genesis hash is chain. Returns 0 and a new
 * record in *out, TD_EINVAL or TD_ESIG with a message in err.
 */
__attribute__((warn_unused_result)) int td_record_decode(struct td_record **out, const uint8_t *buf, size_t len,
							 const uint8_t chain[static TD_HASH_LEN], char *err,
							 size_t errlen);

/* Decodes a record already verified once (from this node's own store): no signature check. */
int td_record_decode_trusted(struct td_record **out, const uint8_t *buf, size_t len,
			     const uint8_t chain[static TD_HASH_LEN], char *err, size_t errlen);

/*
 * Decodes a record this node committed, read back from its own store to be
 * shown: the envelope's shape and its agreement with the release only; no
 * signature, no release validation, no canonical re-encoding. Its id is the
 * hash of buf, so damaged bytes that still parse get another id than the
 * committed record: callers that know the id compare.
 */
int td_record_decode_stored(struct td_record **out, const uint8_t *buf, size_t len,
			    const uint8_t chain[static TD_HASH_LEN], char *err, size_t errlen);

/* Adds a reference to rec (shared by the mempool and a proposed block); returns rec. */
struct td_record *td_record_ref(struct td_record *rec);
/* Drops a reference; the record is freed with the last one. NULL does nothing. */
void td_record_free(struct td_record *rec);

/* BLAKE2b-256 of len bytes. */
void td_hash(uint8_t out[static TD_HASH_LEN], const uint8_t *in, size_t len);

#endif
