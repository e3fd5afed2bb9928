/*
 * libFuzzer target for tender proofs (td_proof_verify, proto/proof.c): a proof is a file
 * anyone may hand to `tenderctl verify`, so every byte of it is untrusted.
 *
 * The input is JSON text, read as tenderctl reads a file (td_json_load), checked against the
 * fuzz world's genesis. Checks: a proof that verifies names the world's ocid prefix, holds at
 * least one release, and its last release's record id is that of a record committed on the
 * world's chain at the height it names (a proof cannot pass with a record the chain never
 * committed).
 *
 * Seeds: tests/fuzz/corpus/fuzz_proof (fuzz-corpus-gen: the proofs of the world's tenders).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/proof.h"
#include "chain.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_world *w = fz_world();
	struct td_proof_result r;
	char err[TD_ERRMSG_MAX];
	json_t *doc;

	if (size > 1024 * 1024)
		return 0;
	doc = td_json_load((const char *)data, size, err, sizeof(err));
	if (!doc)
		return 0;
	if (td_proof_verify(doc, &w->g, &r, err, sizeof(err)) == 0) {
		uint64_t h = 0;
		fz_check(r.releases >= 1, "a valid proof without releases");
		fz_check(strncmp(r.ocid, FZ_PREFIX, strlen(FZ_PREFIX)) == 0, "a valid proof of another prefix");
		fz_check(chain_has_record(w->c, r.record_id, &h) && h == r.height,
			 "a valid proof of a record the chain did not commit there");
	}
	json_decref(doc);
	return 0;
}
