/*
 * libFuzzer target for release building, merging and amendment linking (proto/release.c):
 * td_release_build over an agency's fragment, td_release_validate, td_release_merge into a
 * compiled release and td_release_summary; then the record signed from a built release is
 * checked against the fuzz world's ledger (chain_check_record: the lifecycle rules and
 * amendsReleaseID linking to a committed release of the Jeju tender).
 *
 * Input: one byte of options (bits 0-1: the first kind; bit 2: build for the Jeju tender's
 * ocid; bit 3: check the signed record against the ledger), then JSON text. A JSON array is
 * a sequence of fragments built one after another (the kind advancing by one each), each
 * merged into one compiled release; anything else is one fragment.
 *
 * Checks: what td_release_build returns validates for its kind and carries the tag, ocid,
 * id and date it set; merging the same release twice changes nothing the second time (unless
 * an array of objects holds one without an id, which OCDS merging appends again); a summary
 * is an object.
 *
 * Seeds: tests/fuzz/corpus/fuzz_release (fuzz-corpus-gen: the samples with each kind).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "chain.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FRAGMENTS_MAX 8

/* True if v holds an array of objects (only objects) one of which has no "id" or a null one. */
static bool has_object_without_id(const json_t *v)
{
	const char *key;
	json_t *e;
	size_t i;
	bool all_objects = true, idless = false;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, e) {
			if (has_object_without_id(e))
				return true;
		}
		return false;
	}
	if (!json_is_array(v))
		return false;
	json_array_foreach(v, i, e) {
		const json_t *id = json_object_get(e, "id");
		all_objects = all_objects && json_is_object(e);
		idless = idless || (json_is_object(e) && (!id || json_is_null(id)));
		if (has_object_without_id(e))
			return true;
	}
	return all_objects && idless;
}

static void one(json_t *compiled, const json_t *frag, enum td_kind kind, const char *ocid, bool ledger, uint64_t ms)
{
	char err[TD_ERRMSG_MAX];
	json_t *rel = td_release_build(frag, kind, ocid, ms, "Test agency", err, sizeof(err));
	if (!rel)
		return;
	fz_check(td_release_validate(rel, kind, err, sizeof(err)) == 0, "a built release does not validate");
	const json_t *tag = json_object_get(rel, "tag");
	fz_check(json_array_size(tag) == 1 && td_json_is_string(json_array_get(tag, 0)) &&
			 strcmp(json_string_value(json_array_get(tag, 0)), td_kind_name(kind)) == 0,
		 "a built release has another tag");
	if (ocid) {
		const json_t *o = json_object_get(rel, "ocid");
		fz_check(td_json_is_string(o) && strcmp(json_string_value(o), ocid) == 0,
			 "a built release has another ocid");
	}
	fz_check(json_object_get(rel, "id") && json_object_get(rel, "date"), "a built release lacks id or date");

	td_release_merge(compiled, rel);
	json_t *once = json_deep_copy(compiled);
	td_release_merge(compiled, rel);
	/* OCDS identifierMerge appends an object without an id each time (standard, schema/merging). */
	if (!has_object_without_id(rel))
		fz_check(json_equal(once, compiled), "merging a release twice changes the compiled release");
	json_decref(once);
	json_t *sum = td_release_summary(compiled);
	fz_check(json_is_object(sum), "a summary is not an object");
	json_decref(sum);

	if (ledger) {
		struct td_record *rec = fz_sign(rel, kind, ms);
		if (rec) {
			(void)chain_check_record(fz_world()->c, rec, err, sizeof(err));
			td_record_free(rec);
		}
	}
	json_decref(rel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[TD_ERRMSG_MAX];

	if (size < 1)
		return 0;
	struct fz_world *w = fz_world();
	uint8_t opt = data[0];
	json_t *doc = td_json_load((const char *)data + 1, size - 1, err, sizeof(err));
	if (!doc)
		return 0;
	const char *ocid = (opt & 4) ? "ocds-kr2020-jeju-0001" : NULL;
	json_t *compiled = json_object();
	uint64_t ms = w->clock_ms + 1000;
	if (json_is_array(doc)) {
		size_t i;
		json_t *frag;
		json_array_foreach(doc, i, frag) {
			if (i >= FRAGMENTS_MAX)
				break;
			one(compiled, frag, (enum td_kind)(TD_KIND_MIN + (opt + i) % 4), ocid, opt & 8, ms + i * 1000);
		}
	} else {
		one(compiled, doc, (enum td_kind)(TD_KIND_MIN + opt % 4), ocid, opt & 8, ms);
	}
	json_decref(compiled);
	json_decref(doc);
	return 0;
}
