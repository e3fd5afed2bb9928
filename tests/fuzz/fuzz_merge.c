/*
 * libFuzzer target for the OCDS merge routine (proto/merge.c): td_merge_records over any
 * JSON, compiled and versioned.
 *
 * Input: JSON text; an array is taken as releases, an object as a release package (its
 * "releases"). Checks: the input is left as it was; a refusal leaves no records and says
 * why; otherwise there is one record per distinct ocid, each with as many releases as the
 * input has of that ocid, and its compiledRelease (tag ["compiled"], the id
 * "<ocid>-<date>") or versionedRelease (the ocid as it is); compiling twice gives the same
 * records; every result serializes.
 *
 * Seeds: tests/fuzz/corpus/fuzz_merge (the sample lifecycles' release packages and small
 * cases of each merge rule).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/merge.h"
#include "world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_records(const json_t *releases, bool versioned)
{
	char err[TD_ERRMSG_MAX] = "";
	json_t *records = td_merge_records(releases, versioned, err, sizeof(err));
	json_t *again, *ocids, *r;
	size_t i;

	if (!records) {
		fz_check(err[0] != '\0', "a refusal without a reason");
		return;
	}
	ocids = json_object();
	json_array_foreach(releases, i, r) {
		const char *ocid = json_string_value(json_object_get(r, "ocid"));
		json_t *n = json_object_get(ocids, ocid);
		json_object_set_new(ocids, ocid, json_integer(n ? json_integer_value(n) + 1 : 1));
	}
	fz_check(json_array_size(records) == json_object_size(ocids), "not one record per ocid");
	json_array_foreach(records, i, r) {
		const char *ocid = json_string_value(json_object_get(r, "ocid"));
		const json_t *merged = json_object_get(r, versioned ? "versionedRelease" : "compiledRelease");
		fz_check(ocid && json_object_get(ocids, ocid), "a record of an ocid not in the input");
		fz_check(json_array_size(json_object_get(r, "releases")) ==
				 (size_t)json_integer_value(json_object_get(ocids, ocid)),
			 "a record without all its releases");
		fz_check(json_is_object(merged), "a record without its merged release");
		fz_check(strcmp(json_string_value(json_object_get(merged, "ocid")), ocid) == 0,
			 "a merged release of another ocid");
		if (!versioned) {
			const json_t *tag = json_object_get(merged, "tag");
			const char *id = json_string_value(json_object_get(merged, "id"));
			const char *date = json_string_value(json_object_get(merged, "date"));
			fz_check(json_array_size(tag) == 1 &&
					 strcmp(json_string_value(json_array_get(tag, 0)), "compiled") == 0,
				 "a compiled release not tagged compiled");
			fz_check(id && date && strncmp(id, ocid, strlen(ocid)) == 0 && id[strlen(ocid)] == '-' &&
					 strcmp(id + strlen(ocid) + 1, date) == 0,
				 "a compiled release's id is not <ocid>-<date>");
		}
	}
	again = td_merge_records(releases, versioned, err, sizeof(err));
	fz_check(again && json_equal(again, records), "compiling twice gives other records");
	char *text = td_json_dump(records, JSON_COMPACT);
	fz_check(text != NULL, "records that do not serialize");
	free(text);
	json_decref(again);
	json_decref(ocids);
	json_decref(records);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[TD_ERRMSG_MAX];
	json_t *doc = td_json_load((const char *)data, size, err, sizeof(err));
	const json_t *releases;
	json_t *copy;

	if (!doc)
		return 0;
	releases = json_is_object(doc) ? json_object_get(doc, "releases") : doc;
	if (json_is_array(releases)) {
		copy = json_deep_copy(doc);
		check_records(releases, false);
		check_records(releases, true);
		fz_check(json_equal(copy, doc), "merging modified its input");
		json_decref(copy);
	}
	json_decref(doc);
	return 0;
}
