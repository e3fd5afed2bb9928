/*
 * A tender's proof (tenderd/proof.h) from the committed ledger: every record
 * of the ocid with its Merkle path, and the header and commit of each block
 * that holds one.
 */
#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/merkle.h"
#include "tenderd/proof.h"
#include "chain_int.h"

static json_t *hex_json(const uint8_t *p, size_t n)
{
	char *s = td_xmalloc(2 * n + 1);
	td_hex(s, p, n);
	json_t *v = json_string(s);
	free(s);
	return v;
}

/* The value of key k (which the ledger implies) into *val; a missing one is corruption. */
static int get(const struct chain *c, const struct ckey *k, uint8_t **val, size_t *len)
{
	int rc = store_get(c->st, k->b, k->n, val, len);
	return rc == TD_ENOTFOUND ? TD_ECORRUPT : rc;
}

int chain_proof_json(const struct chain *c, const char *ocid, json_t **out)
{
	struct ckey_tstate st;
	struct ckey k;
	json_t *rels = NULL, *blocks = NULL;
	uint64_t last_block = 0;
	int rc;

	*out = NULL;
	if (!ocid || strlen(ocid) > TD_OCID_MAX)
		return TD_ENOTFOUND;
	if ((rc = chain_tstate_load(c, ocid, &st)) != 0)
		return rc;
	rels = json_array();
	blocks = json_array();
	for (uint32_t seq = 0; seq < st.n_releases; seq++) {
		uint8_t *id = NULL, *loc = NULL, *rb = NULL, *mval = NULL, *cb = NULL;
		size_t idn = 0, locn = 0, rbn = 0, cbn = 0;
		uint64_t h = 0;
		uint32_t ix = 0;
		struct ckey_block_meta m;
		uint8_t path[TD_MERKLE_PATH_MAX][TD_HASH_LEN];

		ckey_release(&k, ocid, seq);
		if ((rc = get(c, &k, &id, &idn)) == 0 && idn != TD_HASH_LEN)
			rc = TD_ECORRUPT;
		if (rc == 0) {
			ckey_record_loc(&k, id);
			if ((rc = get(c, &k, &loc, &locn)) == 0 && !ckey_loc_decode(loc, locn, &h, &ix))
				rc = TD_ECORRUPT;
		}
		if (rc == 0)
			rc = chain_block_meta_load(c, h, &m, &mval);
		if (rc == 0 && (ix >= m.h.n_records || memcmp(m.ids + (size_t)ix * TD_HASH_LEN, id, TD_HASH_LEN) != 0))
			rc = TD_ECORRUPT;
		if (rc == 0 && (rc = chain_record_get(c, h, ix, &rb, &rbn)) == TD_ENOTFOUND)
			rc = TD_ECORRUPT;
		if (rc == 0 && h != last_block &&
		    memcmp(registry_set(c->reg, h)->hash, c->g->validators_hash, TD_HASH_LEN) != 0)
			rc = TD_ERULE; /* a third party checks commits against the genesis validators only */
		if (rc == 0 && h != last_block) {
			ckey_commit(&k, h);
			if ((rc = get(c, &k, &cb, &cbn)) == 0) {
				json_array_append_new(blocks,
						      json_pack("{s:o, s:o, s:o}", "height", td_json_uint(h), "header",
								hex_json(m.hdr, m.hlen), "commit", hex_json(cb, cbn)));
				last_block = h;
			}
		}
		if (rc == 0) {
			uint32_t np = td_merkle_path(path, (const uint8_t(*)[TD_HASH_LEN])m.ids, m.h.n_records, ix);
			json_t *p = json_array();
			for (uint32_t i = 0; i < np; i++)
				json_array_append_new(p, hex_json(path[i], TD_HASH_LEN));
			json_array_append_new(rels,
					      json_pack("{s:o, s:o, s:o, s:o}", "height", td_json_uint(h), "index",
							td_json_uint(ix), "record", hex_json(rb, rbn), "path", p));
		}
		free(id);
		free(loc);
		free(rb);
		free(mval);
		free(cb);
		if (rc != 0) {
			json_decref(rels);
			json_decref(blocks);
			return rc == TD_ERULE ? rc : chain_read_error(rc, "tender %s: release %u of its proof", ocid, seq);
		}
	}
	*out = json_pack("{s:s, s:o, s:s, s:o, s:s, s:o, s:o}", "proof", TD_PROOF_NAME, "version",
			 td_json_uint(TD_PROOF_VERSION), "chain_id", c->g->chain_id, "genesis_hash",
			 hex_json(c->g->hash, TD_HASH_LEN), "ocid", ocid, "releases", rels, "blocks", blocks);
	return 0;
}
