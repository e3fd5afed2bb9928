/*
 * Offline checks of a tender's proof (see tenderd/proof.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/merkle.h"
#include "tenderd/proof.h"

/* One block of the proof, checked. */
struct pblock {
	uint64_t height;
	struct td_block_header hdr;
	uint8_t hash[TD_HASH_LEN];
	struct td_commit commit;
};

/* A whole number, as td_json_load reads it (exact text) or as a JSON integer. */
static bool num_u64(const json_t *v, uint64_t *out)
{
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return false;
		*out = (uint64_t)json_integer_value(v);
		return true;
	}
	return td_json_number_u64(v, out);
}

/* True if o is an object with exactly the n members names. */
static bool members_exactly(const json_t *o, const char *const *names, size_t n)
{
	if (!json_is_object(o) || json_object_size(o) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!json_object_get(o, names[i]))
			return false;
	return true;
}

/* The bytes of hex string v into a new buffer (*len bytes); NULL if v is not even lowercase hex of 1..max bytes. */
static uint8_t *hex_bytes(const json_t *v, size_t max, size_t *len)
{
	if (!td_json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) % 2 != 0 ||
	    json_string_length(v) / 2 > max)
		return NULL;
	const char *s = json_string_value(v);
	for (size_t i = 0; i < json_string_length(v); i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return NULL;
	*len = json_string_length(v) / 2;
	uint8_t *out = td_xmalloc(*len);
	if (!td_unhex(out, *len, s, json_string_length(v))) {
		free(out);
		return NULL;
	}
	return out;
}

/* A hex string of exactly TD_HASH_LEN bytes into out. */
static bool hex32(const json_t *v, uint8_t out[static TD_HASH_LEN])
{
	size_t n;
	uint8_t *b = hex_bytes(v, TD_HASH_LEN, &n);
	bool ok = b && n == TD_HASH_LEN;
	if (ok)
		memcpy(out, b, TD_HASH_LEN);
	free(b);
	return ok;
}

static int read_blocks(const json_t *arr, const struct td_genesis *g, struct pblock **out, size_t *nout, char *err,
		       size_t errlen)
{
	static const char *const keys[] = { "height", "header", "commit" };
	size_t n = json_array_size(arr);
	struct pblock *b;
	int rc = TD_EINVAL;

	*out = NULL;
	*nout = 0;
	if (!json_is_array(arr) || n == 0 || n > TD_PROOF_RELEASES_MAX) {
		snprintf(err, errlen, "proof: \"blocks\" must be a non-empty array");
		return TD_EINVAL;
	}
	b = td_xcalloc(n, sizeof(*b));
	for (size_t i = 0; i < n; i++) {
		const json_t *o = json_array_get(arr, i);
		uint8_t *hb = NULL, *cb = NULL;
		size_t hl = 0, cl = 0;
		char e[TD_ERRMSG_MAX];
		if (!members_exactly(o, keys, 3) || !num_u64(json_object_get(o, "height"), &b[i].height) ||
		    (i > 0 && b[i].height <= b[i - 1].height) ||
		    !(hb = hex_bytes(json_object_get(o, "header"), 4096, &hl)) ||
		    !(cb = hex_bytes(json_object_get(o, "commit"), 64 * 1024, &cl))) {
			snprintf(err, errlen,
				 "proof: blocks[%zu] is malformed (height, header and commit in hex, "
				 "heights increasing)",
				 i);
			free(hb);
			free(cb);
			goto out;
		}
		rc = td_header_decode(&b[i].hdr, b[i].hash, hb, hl);
		if (rc == 0 && b[i].hdr.height != b[i].height)
			rc = TD_EINVAL;
		if (rc != 0) {
			snprintf(err, errlen, "proof: blocks[%zu]: the header does not decode as block %llu", i,
				 (unsigned long long)b[i].height);
		} else if ((rc = td_commit_decode(&b[i].commit, cb, cl, e, sizeof(e))) != 0) {
			snprintf(err, errlen, "proof: blocks[%zu]: %s", i, e);
		} else if ((rc = td_commit_verify(&b[i].commit, g, b[i].height, b[i].hash, e, sizeof(e))) != 0) {
			snprintf(err, errlen, "proof: block %llu is not committed by this chain's validators: %s",
				 (unsigned long long)b[i].height, e);
			rc = TD_ESIG;
		}
		free(hb);
		free(cb);
		if (rc != 0)
			goto out;
	}
	*out = b;
	*nout = n;
	return 0;
out:
	for (size_t i = 0; i < n; i++)
		td_commit_clear(&b[i].commit);
	free(b);
	return rc;
}

static const struct pblock *find_block(const struct pblock *b, size_t n, uint64_t height)
{
	for (size_t i = 0; i < n; i++)
		if (b[i].height == height)
			return &b[i];
	return NULL;
}

int td_proof_verify(const json_t *proof, const struct td_genesis *g, struct td_proof_result *out, char *err,
		    size_t errlen)
{
	static const char *const keys[] = {
		"proof", "version", "chain_id", "genesis_hash", "ocid", "releases", "blocks"
	};
	static const char *const rkeys[] = { "height", "index", "record", "path" };
	const char *name = json_string_value(json_object_get(proof, "proof"));
	const char *cid = json_string_value(json_object_get(proof, "chain_id"));
	const char *ocid = json_string_value(json_object_get(proof, "ocid"));
	const json_t *rels = json_object_get(proof, "releases");
	uint8_t gh[TD_HASH_LEN], prev[TD_HASH_LEN];
	struct pblock *blocks = NULL;
	size_t nblocks = 0, nrel;
	uint64_t version, last_h = 0, last_i = 0;
	bool *used = NULL;
	int rc = TD_EINVAL;

	memset(out, 0, sizeof(*out));
	if (!members_exactly(proof, keys, sizeof(keys) / sizeof(keys[0])) || !name ||
	    strcmp(name, TD_PROOF_NAME) != 0 || !num_u64(json_object_get(proof, "version"), &version) ||
	    version != TD_PROOF_VERSION || !cid || !ocid || strlen(ocid) > TD_OCID_MAX ||
	    !hex32(json_object_get(proof, "genesis_hash"), gh)) {
		snprintf(err, errlen,
			 "not a tender proof of version %d (members proof, version, chain_id, "
			 "genesis_hash, ocid, releases, blocks)",
			 TD_PROOF_VERSION);
		return TD_EINVAL;
	}
	if (strcmp(cid, g->chain_id) != 0 || memcmp(gh, g->hash, TD_HASH_LEN) != 0) {
		snprintf(err, errlen, "the proof is for chain \"%.64s\" of another genesis than this one (%s)", cid,
			 g->chain_id);
		return TD_EINVAL;
	}
	nrel = json_array_size(rels);
	if (!json_is_array(rels) || nrel == 0 || nrel > TD_PROOF_RELEASES_MAX) {
		snprintf(err, errlen, "proof: \"releases\" must be a non-empty array");
		return TD_EINVAL;
	}
	if ((rc = read_blocks(json_object_get(proof, "blocks"), g, &blocks, &nblocks, err, errlen)) != 0)
		return rc;
	used = td_xcalloc(nblocks, sizeof(*used));
	rc = TD_EINVAL;
	for (size_t k = 0; k < nrel; k++) {
		const json_t *o = json_array_get(rels, k), *path = json_object_get(o, "path");
		uint8_t(*p)[TD_HASH_LEN] = NULL;
		uint8_t *bytes = NULL;
		size_t len = 0, np;
		uint64_t h, idx;
		struct td_record *rec = NULL;
		char e[TD_ERRMSG_MAX];

		if (!members_exactly(o, rkeys, 4) || !num_u64(json_object_get(o, "height"), &h) ||
		    !num_u64(json_object_get(o, "index"), &idx) || !json_is_array(path) ||
		    json_array_size(path) > TD_MERKLE_PATH_MAX ||
		    !(bytes = hex_bytes(json_object_get(o, "record"), TD_RECORD_MAX, &len))) {
			snprintf(err, errlen, "proof: releases[%zu] is malformed (height, index, record, path)", k);
			goto out;
		}
		const struct pblock *b = find_block(blocks, nblocks, h);
		if (!b || idx >= b->hdr.n_records || (k > 0 && (h < last_h || (h == last_h && idx <= last_i)))) {
			snprintf(err, errlen, "proof: releases[%zu] is not at a place of the proof's blocks, in order",
				 k);
			free(bytes);
			goto out;
		}
		used[b - blocks] = true;
		np = json_array_size(path);
		p = td_xcalloc(np ? np : 1, TD_HASH_LEN);
		for (size_t i = 0; i < np; i++) {
			if (!hex32(json_array_get(path, i), p[i])) {
				snprintf(err, errlen, "proof: releases[%zu].path[%zu] is not a 32-byte hash", k, i);
				free(p);
				free(bytes);
				goto out;
			}
		}
		rc = td_record_decode(&rec, bytes, len, g->hash, e, sizeof(e));
		free(bytes);
		if (rc != 0) {
			snprintf(err, errlen, "proof: releases[%zu]: %s", k, e);
			free(p);
			goto out;
		}
		rc = TD_EINVAL;
		bool in = td_merkle_verify(b->hdr.records_root, rec->id, (uint32_t)idx, b->hdr.n_records,
					   (const uint8_t(*)[TD_HASH_LEN])p, (uint32_t)np);
		free(p);
		if (!in) {
			snprintf(err, errlen,
				 "proof: releases[%zu] is not record %llu of block %llu (its path does not "
				 "lead to the block's records root)",
				 k, (unsigned long long)idx, (unsigned long long)h);
			td_record_free(rec);
			rc = TD_ESIG;
			goto out;
		}
		if (strcmp(rec->ocid, ocid) != 0) {
			snprintf(err, errlen, "proof: releases[%zu] is of ocid %s, not %s", k, rec->ocid, ocid);
			td_record_free(rec);
			goto out;
		}
		if (k == 0 ? rec->kind != TD_KIND_TENDER || rec->has_prev :
			     !rec->has_prev || memcmp(rec->prev, prev, TD_HASH_LEN) != 0) {
			if (k == 0)
				snprintf(err, errlen, "proof: releases[0] is not the tender that opens ocid %s", ocid);
			else
				snprintf(
					err, errlen,
					"proof: releases[%zu] does not follow releases[%zu] (a release left out, or out "
					"of order)",
					k, k - 1);
			td_record_free(rec);
			goto out;
		}
		memcpy(prev, rec->id, TD_HASH_LEN);
		last_h = h;
		last_i = idx;
		if (k + 1 == nrel) {
			snprintf(out->ocid, sizeof(out->ocid), "%s", ocid);
			snprintf(out->release_id, sizeof(out->release_id), "%s", rec->release_id);
			out->kind = rec->kind;
			memcpy(out->agency, rec->agency, TD_PUBKEY_LEN);
			memcpy(out->record_id, rec->id, TD_HASH_LEN);
			out->height = h;
			out->time_ms = b->hdr.time_ms;
			out->signers = b->commit.n_sigs;
			for (uint32_t i = 0; i < b->commit.n_sigs && i < TD_VALIDATORS_MAX; i++)
				out->signer_index[i] = b->commit.sigs[i].validator;
		}
		td_record_free(rec);
	}
	for (size_t i = 0; i < nblocks; i++) {
		if (!used[i]) {
			snprintf(err, errlen, "proof: block %llu holds none of its releases",
				 (unsigned long long)blocks[i].height);
			goto out;
		}
	}
	out->releases = (uint32_t)nrel;
	rc = 0;
out:
	free(used);
	for (size_t i = 0; i < nblocks; i++)
		td_commit_clear(&blocks[i].commit);
	free(blocks);
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	return rc;
}
