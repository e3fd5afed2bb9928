/*
 * Blocks, votes, commits and the genesis (see tenderd/block.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tenderd/block.h"
#include "tenderd/codec.h"
#include "tenderd/evidence.h"
#include "tenderd/isotime.h"
#include "tenderd/json.h"
#include "tenderd/merkle.h"
#include "tenderd/sig.h"

/* ---- genesis ---- */

static bool copy_str(const json_t *obj, const char *key, char *out, size_t cap)
{
	const json_t *v = json_object_get(obj, key);
	if (!td_json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap)
		return false;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return true;
}

/*
 * Parses a genesis time into ms since the epoch: a td_iso_parse date-time in
 * UTC ("Z") with at most three fraction digits ("YYYY-MM-DDTHH:MM:SS[.mmm]Z"),
 * not before 1970.
 */
static bool parse_utc(const char *s, uint64_t *out)
{
	const size_t n = strlen(s);
	int64_t ms;

	if (!td_iso_parse(s, n, &ms) || s[n - 1] != 'Z' || (s[19] == '.' && n - 21 > 3) || ms < 0)
		return false;
	*out = (uint64_t)ms;
	return true;
}

/* Reads the parties of one role (key: "validators", "members" or "observers") into out[0..*n). */
static bool parse_parties(const json_t *doc, const char *key, bool required, size_t max, struct td_validator **out,
			  uint32_t *n, char *err, size_t errlen)
{
	const json_t *arr = json_object_get(doc, key);

	*n = 0;
	*out = NULL;
	if (!arr && !required)
		return true;
	if (!json_is_array(arr) || (required && json_array_size(arr) == 0) || json_array_size(arr) > max) {
		snprintf(err, errlen, "genesis: %s must be an array of %d..%zu entries", key, required ? 1 : 0, max);
		return false;
	}
	if (json_array_size(arr) == 0)
		return true;
	*n = (uint32_t)json_array_size(arr);
	*out = td_xcalloc(*n, sizeof(**out));
	for (uint32_t i = 0; i < *n; i++) {
		const json_t *v = json_array_get(arr, i), *pk = json_object_get(v, "pub_key");
		if (!copy_str(v, "name", (*out)[i].name, sizeof((*out)[i].name))) {
			snprintf(err, errlen, "genesis: %s[%u].name must be a string of 1..%d bytes", key, i,
				 TD_NAME_MAX);
			return false;
		}
		if (!td_json_is_string(pk) ||
		    !td_unhex((*out)[i].pk, TD_PUBKEY_LEN, json_string_value(pk), json_string_length(pk))) {
			snprintf(err, errlen, "genesis: %s[%u].pub_key must be %d hex digits", key, i,
				 2 * TD_PUBKEY_LEN);
			return false;
		}
	}
	return true;
}

int td_genesis_parse(struct td_genesis *g, const char *text, size_t len, char *err, size_t errlen)
{
	json_t *doc = td_json_load(text, len, err, errlen);
	struct td_validator *mem = NULL, *obs = NULL;
	char ts[40];
	int rc = TD_EINVAL;

	memset(g, 0, sizeof(*g));
	if (!doc)
		return TD_EINVAL;
	if (!copy_str(doc, "chain_id", g->chain_id, sizeof(g->chain_id))) {
		snprintf(err, errlen, "genesis: chain_id must be a string of 1..%d bytes", TD_CHAIN_ID_MAX);
		goto out;
	}
	if (!copy_str(doc, "ocid_prefix", g->ocid_prefix, sizeof(g->ocid_prefix)) ||
	    strncmp(g->ocid_prefix, "ocds-", 5) != 0) {
		snprintf(err, errlen, "genesis: ocid_prefix must be a string starting with \"ocds-\"");
		goto out;
	}
	if (!copy_str(doc, "genesis_time", ts, sizeof(ts)) || !parse_utc(ts, &g->time_ms)) {
		snprintf(err, errlen, "genesis: genesis_time must be a UTC time like 2020-03-01T00:00:00Z");
		goto out;
	}
	if (!parse_parties(doc, "validators", true, TD_VALIDATORS_MAX, &g->v, &g->n, err, errlen) ||
	    !parse_parties(doc, "members", false, TD_PARTIES_MAX, &mem, &g->n_members, err, errlen) ||
	    !parse_parties(doc, "observers", false, TD_PARTIES_MAX, &obs, &g->n_observers, err, errlen))
		goto out;
	if (td_genesis_parties(g) > TD_PARTIES_MAX) {
		snprintf(err, errlen, "genesis: %u validators, members and observers in all; at most %d",
			 td_genesis_parties(g), TD_PARTIES_MAX);
		goto out;
	}
	if (g->n_members + g->n_observers > 0) {
		g->others = td_xcalloc(g->n_members + g->n_observers, sizeof(*g->others));
		if (g->n_members)
			memcpy(g->others, mem, g->n_members * sizeof(*mem));
		if (g->n_observers)
			memcpy(g->others + g->n_members, obs, g->n_observers * sizeof(*obs));
	}
	for (uint32_t i = 1; i < td_genesis_parties(g); i++) {
		const struct td_validator *pi = td_genesis_party(g, i);
		for (uint32_t j = 0; j < i; j++) {
			const struct td_validator *pj = td_genesis_party(g, j);
			if (memcmp(pj->pk, pi->pk, TD_PUBKEY_LEN) == 0) {
				snprintf(err, errlen, "genesis: %s \"%s\" repeats the key of %s \"%s\"",
					 td_role_name(td_genesis_role(g, i)), pi->name,
					 td_role_name(td_genesis_role(g, j)), pj->name);
				goto out;
			}
		}
	}
	td_genesis_seal(g);
	rc = 0;
out:
	free(mem);
	free(obs);
	json_decref(doc);
	if (rc)
		td_genesis_free(g);
	return rc;
}

static json_t *parties_json(const struct td_validator *v, uint32_t n)
{
	json_t *arr = json_array();
	char hex[2 * TD_PUBKEY_LEN + 1];

	for (uint32_t i = 0; i < n; i++) {
		td_hex(hex, v[i].pk, TD_PUBKEY_LEN);
		json_array_append_new(arr, json_pack("{s:s, s:s}", "name", v[i].name, "pub_key", hex));
	}
	return arr;
}

json_t *td_genesis_json(const struct td_genesis *g)
{
	json_t *doc = json_object();
	char ts[32];

	td_time_iso(ts, g->time_ms);
	json_object_set_new(doc, "chain_id", json_string(g->chain_id));
	json_object_set_new(doc, "ocid_prefix", json_string(g->ocid_prefix));
	json_object_set_new(doc, "genesis_time", json_string(ts));
	json_object_set_new(doc, "validators", parties_json(g->v, g->n));
	if (g->n_members)
		json_object_set_new(doc, "members", parties_json(g->others, g->n_members));
	if (g->n_observers)
		json_object_set_new(doc, "observers", parties_json(g->others + g->n_members, g->n_observers));
	return doc;
}

void td_genesis_free(struct td_genesis *g)
{
	if (!g)
		return;
	free(g->v);
	free(g->others);
	g->v = g->others = NULL;
	g->n = g->n_members = g->n_observers = 0;
}

int td_genesis_find(const struct td_genesis *g, const uint8_t pk[static TD_PUBKEY_LEN])
{
	for (uint32_t i = 0; i < g->n; i++)
		if (memcmp(g->v[i].pk, pk, TD_PUBKEY_LEN) == 0)
			return (int)i;
	return -1;
}

int td_genesis_find_party(const struct td_genesis *g, const uint8_t pk[static TD_PUBKEY_LEN])
{
	int i = td_genesis_find(g, pk);
	if (i >= 0)
		return i;
	for (uint32_t k = 0; k < g->n_members + g->n_observers; k++)
		if (memcmp(g->others[k].pk, pk, TD_PUBKEY_LEN) == 0)
			return (int)(g->n + k);
	return -1;
}

const struct td_validator *td_genesis_party(const struct td_genesis *g, uint32_t i)
{
	return i < g->n ? &g->v[i] : &g->others[i - g->n];
}

enum td_role td_genesis_role(const struct td_genesis *g, uint32_t i)
{
	return i < g->n ? TD_ROLE_VALIDATOR : i < g->n + g->n_members ? TD_ROLE_MEMBER : TD_ROLE_OBSERVER;
}

const char *td_role_name(enum td_role role)
{
	switch (role) {
	case TD_ROLE_VALIDATOR: return "validator";
	case TD_ROLE_MEMBER: return "member";
	case TD_ROLE_OBSERVER: return "observer";
	}
	return "unknown";
}

bool td_genesis_may_publish(const struct td_genesis *g, const uint8_t pk[static TD_PUBKEY_LEN])
{
	int i = td_genesis_find_party(g, pk);
	return i >= 0 && td_genesis_role(g, (uint32_t)i) != TD_ROLE_OBSERVER;
}

static void encode_parties(struct td_buf *b, const struct td_validator *v, uint32_t n)
{
	td_enc_array(b, n);
	for (uint32_t i = 0; i < n; i++) {
		td_enc_array(b, 2);
		td_enc_cstr(b, v[i].name);
		td_enc_bin(b, v[i].pk, TD_PUBKEY_LEN);
	}
}

void td_genesis_encode(struct td_buf *b, const struct td_genesis *g)
{
	const bool roles = g->n_members + g->n_observers > 0;

	td_enc_array(b, roles ? 7 : 5);
	td_enc_uint(b, 1);
	td_enc_cstr(b, g->chain_id);
	td_enc_cstr(b, g->ocid_prefix);
	td_enc_uint(b, g->time_ms);
	encode_parties(b, g->v, g->n);
	if (roles) {
		encode_parties(b, g->others, g->n_members);
		encode_parties(b, g->others + g->n_members, g->n_observers);
	}
}

void td_genesis_hash(uint8_t out[static TD_HASH_LEN], const struct td_genesis *g)
{
	struct td_buf b;
	td_buf_init(&b);
	td_genesis_encode(&b, g);
	td_hash(out, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
}

void td_genesis_seal(struct td_genesis *g)
{
	td_genesis_hash(g->hash, g);
	td_validators_hash(g->validators_hash, g->v, g->n);
}

void td_validators_hash(uint8_t out[static TD_HASH_LEN], const struct td_validator *v, uint32_t n)
{
	struct td_buf b;
	td_buf_init(&b);
	td_enc_array(&b, 2);
	td_enc_uint(&b, 1);
	td_enc_array(&b, n);
	for (uint32_t i = 0; i < n; i++)
		td_enc_bin(&b, v[i].pk, TD_PUBKEY_LEN);
	td_hash(out, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
}

/* ---- blocks ---- */

void td_header_encode(struct td_buf *b, const struct td_block_header *h)
{
	td_enc_array(b, 10);
	td_enc_uint(b, TD_FORMAT_VERSION);
	td_enc_uint(b, h->height);
	td_enc_bin(b, h->prev_hash, TD_HASH_LEN);
	td_enc_uint(b, h->time_ms);
	td_enc_bin(b, h->proposer, TD_PUBKEY_LEN);
	td_enc_bin(b, h->records_root, TD_HASH_LEN);
	td_enc_uint(b, h->n_records);
	td_enc_bin(b, h->evidence_root, TD_HASH_LEN);
	td_enc_uint(b, h->n_evidence);
	td_enc_bin(b, h->next_validators, TD_HASH_LEN);
}

bool td_header_read(struct td_rd *r, const msgpack_object *o, struct td_block_header *hdr)
{
	const msgpack_object *h = td_get_array(r, o, 10, 0, NULL);
	if (!h || td_get_uint(r, &h[0]) != TD_FORMAT_VERSION) {
		r->ok = false;
		return false;
	}
	hdr->height = td_get_uint(r, &h[1]);
	td_get_bin_fixed(r, &h[2], hdr->prev_hash, TD_HASH_LEN);
	hdr->time_ms = td_get_uint(r, &h[3]);
	td_get_bin_fixed(r, &h[4], hdr->proposer, TD_PUBKEY_LEN);
	td_get_bin_fixed(r, &h[5], hdr->records_root, TD_HASH_LEN);
	uint64_t count = td_get_uint(r, &h[6]);
	td_get_bin_fixed(r, &h[7], hdr->evidence_root, TD_HASH_LEN);
	uint64_t nev = td_get_uint(r, &h[8]);
	td_get_bin_fixed(r, &h[9], hdr->next_validators, TD_HASH_LEN);
	if (count > TD_BLOCK_RECORDS_MAX || nev > TD_BLOCK_EVIDENCE_MAX)
		r->ok = false;
	hdr->n_records = (uint32_t)(r->ok ? count : 0);
	hdr->n_evidence = (uint32_t)(r->ok ? nev : 0);
	return r->ok;
}

int td_header_decode(struct td_block_header *h, uint8_t hash[static TD_HASH_LEN], const uint8_t *buf, size_t len)
{
	msgpack_unpacked u;
	struct td_rd r = { true };
	struct td_buf again;
	int rc = TD_EINVAL;

	msgpack_unpacked_init(&u);
	td_buf_init(&again);
	if (td_unpack(&u, buf, len) != 0 || !td_header_read(&r, &u.data, h))
		goto out;
	td_header_encode(&again, h);
	if (again.sb.size != len || memcmp(again.sb.data, buf, len) != 0)
		goto out;
	td_hash(hash, buf, len);
	rc = 0;
out:
	td_buf_free(&again);
	msgpack_unpacked_destroy(&u);
	return rc;
}

static void header_hash(uint8_t out[static TD_HASH_LEN], const struct td_block_header *h)
{
	struct td_buf b;
	td_buf_init(&b);
	td_header_encode(&b, h);
	td_hash(out, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
}

void td_records_root(uint8_t out[static TD_HASH_LEN], struct td_record *const *records, uint32_t n)
{
	uint8_t(*ids)[TD_HASH_LEN] = td_xmalloc((size_t)(n ? n : 1) * TD_HASH_LEN);
	for (uint32_t i = 0; i < n; i++)
		memcpy(ids[i], records[i]->id, TD_HASH_LEN);
	td_merkle_root(out, (const uint8_t(*)[TD_HASH_LEN])ids, n);
	free(ids);
}

static void evidence_root(uint8_t out[static TD_HASH_LEN], const struct td_evidence *ev, uint32_t n)
{
	uint8_t ids[TD_BLOCK_EVIDENCE_MAX][TD_HASH_LEN];
	for (uint32_t i = 0; i < n && i < TD_BLOCK_EVIDENCE_MAX; i++)
		memcpy(ids[i], ev[i].id, TD_HASH_LEN);
	td_merkle_root(out, (const uint8_t(*)[TD_HASH_LEN])ids, n < TD_BLOCK_EVIDENCE_MAX ? n : TD_BLOCK_EVIDENCE_MAX);
}

struct td_block *td_block_new(uint64_t height, const uint8_t prev[static TD_HASH_LEN], uint64_t time_ms,
			      const uint8_t proposer[static TD_PUBKEY_LEN],
			      const uint8_t next_validators[static TD_HASH_LEN], struct td_record **records, uint32_t n)
{
	struct td_block *blk = td_xcalloc(1, sizeof(*blk));
	blk->hdr.height = height;
	memcpy(blk->hdr.prev_hash, prev, TD_HASH_LEN);
	blk->hdr.time_ms = time_ms;
	memcpy(blk->hdr.proposer, proposer, TD_PUBKEY_LEN);
	blk->hdr.n_records = n;
	memcpy(blk->hdr.next_validators, next_validators, TD_HASH_LEN);
	blk->records = records;
	td_records_root(blk->hdr.records_root, records, n);
	evidence_root(blk->hdr.evidence_root, NULL, 0);
	header_hash(blk->hash, &blk->hdr);
	return blk;
}

void td_block_set_evidence(struct td_block *blk, struct td_evidence *ev, uint32_t n)
{
	if (n > TD_BLOCK_EVIDENCE_MAX)
		abort(); /* a caller's bug: the format holds no more */
	free(blk->evidence);
	blk->evidence = ev;
	blk->hdr.n_evidence = n;
	evidence_root(blk->hdr.evidence_root, ev, n);
	header_hash(blk->hash, &blk->hdr);
}

void td_block_encode(const struct td_block *blk, uint8_t **out, size_t *len)
{
	struct td_buf b;
	td_buf_init(&b);
	td_enc_array(&b, 3);
	td_header_encode(&b, &blk->hdr);
	td_enc_array(&b, blk->hdr.n_records);
	for (uint32_t i = 0; i < blk->hdr.n_records; i++)
		td_enc_bin(&b, blk->records[i]->bytes, blk->records[i]->len);
	td_enc_array(&b, blk->hdr.n_evidence);
	for (uint32_t i = 0; i < blk->hdr.n_evidence; i++) {
		struct td_buf eb;
		td_buf_init(&eb);
		td_evidence_encode(&eb, &blk->evidence[i]);
		td_enc_bin(&b, (const uint8_t *)eb.sb.data, eb.sb.size);
		td_buf_free(&eb);
	}
	*out = td_buf_take(&b, len);
	td_buf_free(&b);
}

/* msgpack's shortest headers, as msgpack-c writes them: bin 8/16/32, fixarray/array 16/32 */
static size_t bin_len(size_t n)
{
	return n + (n < 256 ? 2 : n < 65536 ? 3 : 5);
}

static size_t arr_len(size_t n)
{
	return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

size_t td_block_encoded_len(const struct td_block *blk)
{
	struct td_buf hb;
	size_t len;

	td_buf_init(&hb);
	td_header_encode(&hb, &blk->hdr);
	len = arr_len(3) + hb.sb.size + arr_len(blk->hdr.n_records) + arr_len(blk->hdr.n_evidence);
	for (uint32_t i = 0; i < blk->hdr.n_records; i++)
		len += bin_len(blk->records[i]->len);
	for (uint32_t i = 0; i < blk->hdr.n_evidence; i++) {
		hb.sb.size = 0;
		td_evidence_encode(&hb, &blk->evidence[i]);
		len += bin_len(hb.sb.size);
	}
	td_buf_free(&hb);
	return len;
}

/* Decodes (and unless trusted verifies) the evidence items of blk from their array. */
static int evidence_read(struct td_block *blk, struct td_rd *r, const msgpack_object *o,
			 const uint8_t chain[static TD_HASH_LEN], bool trusted, char *err, size_t errlen)
{
	uint32_t n = 0;
	const msgpack_object *items = td_get_array(r, o, UINT32_MAX, TD_BLOCK_EVIDENCE_MAX, &n);
	uint8_t root[TD_HASH_LEN];

	if (!r->ok || n != blk->hdr.n_evidence) {
		snprintf(err, errlen, "block: evidence count mismatch");
		return TD_EINVAL;
	}
	blk->evidence = td_xcalloc(n ? n : 1, sizeof(*blk->evidence));
	for (uint32_t i = 0; i < n; i++) {
		char eerr[TD_ERRMSG_MAX];
		uint8_t ki[TD_EVIDENCE_KEY_LEN], kj[TD_EVIDENCE_KEY_LEN];
		if (items[i].type != MSGPACK_OBJECT_BIN ||
		    td_evidence_decode(&blk->evidence[i], (const uint8_t *)items[i].via.bin.ptr,
				       items[i].via.bin.size) != 0) {
			snprintf(err, errlen, "block: evidence %u is malformed", i);
			return TD_EINVAL;
		}
		if (!trusted && td_evidence_verify(&blk->evidence[i], chain, eerr, sizeof(eerr)) != 0) {
			snprintf(err, errlen, "block: evidence %u: %s", i, eerr);
			return TD_ESIG;
		}
		td_evidence_key(ki, &blk->evidence[i]);
		for (uint32_t j = 0; j < i; j++) {
			td_evidence_key(kj, &blk->evidence[j]);
			if (memcmp(ki, kj, sizeof(ki)) == 0) {
				snprintf(err, errlen, "block: evidence %u repeats the offence of evidence %u", i, j);
				return TD_EINVAL;
			}
		}
	}
	evidence_root(root, blk->evidence, n);
	if (memcmp(root, blk->hdr.evidence_root, TD_HASH_LEN) != 0) {
		snprintf(err, errlen, "block: evidence root does not match its evidence");
		return TD_EINVAL;
	}
	return 0;
}

int td_block_decode(struct td_block **out, const uint8_t *buf, size_t len, const uint8_t chain[static TD_HASH_LEN],
		    bool trusted, char *err, size_t errlen)
{
	struct td_block *blk = td_xcalloc(1, sizeof(*blk));
	msgpack_unpacked u;
	struct td_rd r = { true };
	const msgpack_object *top, *recs;
	uint8_t root[TD_HASH_LEN], *again = NULL;
	size_t againlen;
	uint32_t n = 0;
	int rc = TD_EINVAL;

	*out = NULL;
	msgpack_unpacked_init(&u);
	if (len > TD_BLOCK_MAX) {
		snprintf(err, errlen, "block is %zu bytes, over the %d byte limit", len, TD_BLOCK_MAX);
		goto fail;
	}
	if (td_unpack(&u, buf, len)) {
		snprintf(err, errlen, "block: malformed msgpack");
		goto fail;
	}
	top = td_get_array(&r, &u.data, 3, 0, NULL);
	if (!top || !td_header_read(&r, &top[0], &blk->hdr)) {
		snprintf(err, errlen, "block: not a format %d block (a node of another version made it?)",
			 TD_FORMAT_VERSION);
		goto fail;
	}
	recs = td_get_array(&r, &top[1], UINT32_MAX, TD_BLOCK_RECORDS_MAX, &n);
	if (!r.ok || blk->hdr.n_records != n) {
		snprintf(err, errlen, "block: header field of the wrong type or record count mismatch");
		goto fail;
	}
	blk->hdr.n_records = n;
	blk->records = td_xcalloc(n ? n : 1, sizeof(*blk->records));
	for (uint32_t i = 0; i < n; i++) {
		char rerr[TD_ERRMSG_MAX];
		if (recs[i].type != MSGPACK_OBJECT_BIN) {
			snprintf(err, errlen, "block: record %u is not a byte string", i);
			goto fail;
		}
		const uint8_t *p = (const uint8_t *)recs[i].via.bin.ptr;
		rc = trusted ? td_record_decode_stored(&blk->records[i], p, recs[i].via.bin.size, chain, rerr,
						       sizeof(rerr)) :
			       td_record_decode(&blk->records[i], p, recs[i].via.bin.size, chain, rerr, sizeof(rerr));
		if (rc) {
			snprintf(err, errlen, "block: record %u: %s", i, rerr);
			goto fail;
		}
		rc = TD_EINVAL;
	}
	td_records_root(root, blk->records, n);
	if (memcmp(root, blk->hdr.records_root, TD_HASH_LEN) != 0) {
		snprintf(err, errlen, "block: records root does not match its records");
		goto fail;
	}
	if ((rc = evidence_read(blk, &r, &top[2], chain, trusted, err, errlen)) != 0)
		goto fail;
	rc = TD_EINVAL;
	header_hash(blk->hash, &blk->hdr);
	td_block_encode(blk, &again, &againlen);
	if (againlen != len || memcmp(again, buf, len) != 0) {
		snprintf(err, errlen, "block: not in canonical encoding");
		goto fail;
	}
	free(again);
	msgpack_unpacked_destroy(&u);
	*out = blk;
	return 0;
fail:
	free(again);
	msgpack_unpacked_destroy(&u);
	td_block_free(blk);
	return rc;
}

void td_block_free(struct td_block *blk)
{
	if (!blk)
		return;
	if (blk->records)
		for (uint32_t i = 0; i < blk->hdr.n_records; i++)
			td_record_free(blk->records[i]);
	free(blk->records);
	free(blk->evidence);
	free(blk);
}

/* ---- votes and commits ---- */

void td_vote_sign_bytes(uint8_t **out, size_t *len, const uint8_t chain[static TD_HASH_LEN], enum td_vote_type type,
			uint64_t height, uint32_t round, const uint8_t *hash)
{
	struct td_buf b;
	td_buf_init(&b);
	td_enc_raw(&b, (const uint8_t *)TD_VOTE_DOMAIN, strlen(TD_VOTE_DOMAIN));
	td_enc_raw(&b, (const uint8_t *)"\0", 1);
	td_enc_raw(&b, chain, TD_HASH_LEN);
	td_enc_array(&b, 4);
	td_enc_uint(&b, (uint64_t)type);
	td_enc_uint(&b, height);
	td_enc_uint(&b, round);
	if (hash)
		td_enc_bin(&b, hash, TD_HASH_LEN);
	else
		msgpack_pack_nil(&b.pk);
	*out = td_buf_take(&b, len);
	td_buf_free(&b);
}

void td_vote_sign(uint8_t sig[static TD_SIG_LEN], const uint8_t chain[static TD_HASH_LEN], enum td_vote_type type,
		  uint64_t height, uint32_t round, const uint8_t *hash, const uint8_t sk[static TD_SECKEY_LEN])
{
	uint8_t *msg;
	size_t len;
	td_vote_sign_bytes(&msg, &len, chain, type, height, round, hash);
	td_sig_sign(sig, msg, len, sk);
	free(msg);
}

bool td_vote_verify(const uint8_t sig[static TD_SIG_LEN], const uint8_t chain[static TD_HASH_LEN],
		    enum td_vote_type type, uint64_t height, uint32_t round, const uint8_t *hash,
		    const uint8_t pk[static TD_PUBKEY_LEN])
{
	uint8_t *msg;
	size_t len;
	td_vote_sign_bytes(&msg, &len, chain, type, height, round, hash);
	bool ok = td_sig_verify(sig, msg, len, pk);
	free(msg);
	return ok;
}

void td_commit_encode(const struct td_commit *c, uint8_t **out, size_t *len)
{
	struct td_buf b;
	td_buf_init(&b);
	td_enc_array(&b, 4);
	td_enc_uint(&b, c->height);
	td_enc_uint(&b, c->round);
	td_enc_bin(&b, c->block_hash, TD_HASH_LEN);
	td_enc_array(&b, c->n_sigs);
	for (uint32_t i = 0; i < c->n_sigs; i++) {
		td_enc_array(&b, 2);
		td_enc_uint(&b, c->sigs[i].validator);
		td_enc_bin(&b, c->sigs[i].sig, TD_SIG_LEN);
	}
	*out = td_buf_take(&b, len);
	td_buf_free(&b);
}

int td_commit_decode(struct td_commit *c, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	msgpack_unpacked u;
	struct td_rd r = { true };
	const msgpack_object *top, *sigs;
	uint8_t *again = NULL;
	size_t againlen;
	uint32_t n = 0;
	uint64_t round;
	int rc = TD_EINVAL;

	memset(c, 0, sizeof(*c));
	msgpack_unpacked_init(&u);
	if (len > 64 * 1024 || td_unpack(&u, buf, len)) {
		snprintf(err, errlen, "commit: malformed or too large");
		goto out;
	}
	top = td_get_array(&r, &u.data, 4, 0, NULL);
	if (!top)
		goto bad;
	c->height = td_get_uint(&r, &top[0]);
	round = td_get_uint(&r, &top[1]);
	td_get_bin_fixed(&r, &top[2], c->block_hash, TD_HASH_LEN);
	sigs = td_get_array(&r, &top[3], UINT32_MAX, TD_VALIDATORS_MAX, &n);
	if (!r.ok || round > UINT32_MAX)
		goto bad;
	c->round = (uint32_t)round;
	c->n_sigs = n;
	c->sigs = td_xcalloc(n, sizeof(*c->sigs));
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *s = td_get_array(&r, &sigs[i], 2, 0, NULL);
		if (!s)
			goto bad;
		uint64_t idx = td_get_uint(&r, &s[0]);
		c->sigs[i].validator = idx > UINT32_MAX ? UINT32_MAX : (uint32_t)idx;
		td_get_bin_fixed(&r, &s[1], c->sigs[i].sig, TD_SIG_LEN);
		if (i > 0 && c->sigs[i].validator <= c->sigs[i - 1].validator)
			goto bad; /* one signature per validator, in index order */
	}
	if (!r.ok)
		goto bad;
	td_commit_encode(c, &again, &againlen);
	if (againlen != len || memcmp(again, buf, len) != 0)
		goto bad;
	rc = 0;
	goto out;
bad:
	snprintf(err, errlen, "commit: malformed or not in canonical encoding");
	td_commit_clear(c);
out:
	free(again);
	msgpack_unpacked_destroy(&u);
	return rc;
}

int td_commit_verify(const struct td_commit *c, const struct td_genesis *g, uint64_t height,
		     const uint8_t hash[static TD_HASH_LEN], char *err, size_t errlen)
{
	return td_commit_verify_set(c, g->hash, g->v, g->n, height, hash, err, errlen);
}

int td_commit_verify_set(const struct td_commit *c, const uint8_t chain[static TD_HASH_LEN],
			 const struct td_validator *v, uint32_t n, uint64_t height, const uint8_t hash[static TD_HASH_LEN],
			 char *err, size_t errlen)
{
	if (c->height != height || memcmp(c->block_hash, hash, TD_HASH_LEN) != 0) {
		snprintf(err, errlen, "commit: for another block (height %llu)", (unsigned long long)c->height);
		return TD_EINVAL;
	}
	for (uint32_t i = 0; i < c->n_sigs; i++) {
		uint32_t k = c->sigs[i].validator;
		if (k >= n || (i > 0 && k <= c->sigs[i - 1].validator)) {
			snprintf(err, errlen, "commit: validator index %u unknown or out of order", k);
			return TD_EINVAL;
		}
		if (!td_vote_verify(c->sigs[i].sig, chain, TD_VOTE_PRECOMMIT, c->height, c->round, c->block_hash,
				    v[k].pk)) {
			snprintf(err, errlen, "commit: signature of validator %u (%s) does not verify", k, v[k].name);
			return TD_ESIG;
		}
	}
	if ((uint64_t)c->n_sigs * 3 <= (uint64_t)n * 2) {
		snprintf(err, errlen, "commit: %u of %u validators signed, more than two thirds needed", c->n_sigs, n);
		return TD_ESIG;
	}
	return 0;
}

void td_commit_clear(struct td_commit *c)
{
	if (!c)
		return;
	free(c->sigs);
	c->sigs = NULL;
	c->n_sigs = 0;
}
