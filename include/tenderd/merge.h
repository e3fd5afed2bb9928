/*
 * The OCDS 1.1 merge routine (standard, schema/merging): releases of one
 * contracting process into a compiled release (each field's latest value) or
 * a versioned release (each field's history of versioned values, with
 * releaseID, releaseDate and releaseTag).
 *
 * The rules come from the release schema, turned into the table
 * td_merge_rules at build time by tools/ocds_merge_rules.py: fields marked
 * omitWhenMerged are left out (the release's id, date and tag), arrays marked
 * wholeListMerge (or arrays of non-objects, or of objects without an "id" in
 * the schema) are replaced as a whole. Everything else follows the shape of
 * the value: objects merge property by property, arrays of objects merge by
 * "id" (identifierMerge: an object whose id matches is merged into, any other
 * is appended), anything else replaces the earlier value; in a compiled
 * release null removes the field; an empty object or identifierMerge array
 * changes nothing. Ids match, and a versioned value is unchanged, when they
 * are the same JSON value: numbers by value (1.50 is 1.5), but the string
 * "1" is not the number 1. Merged values keep the release's exact text.
 *
 * Trees come from td_json_load (numbers are exact; see tenderd/json.h).
 * Nothing here keeps state; the input releases are never modified.
 */
#ifndef TENDERD_MERGE_H
#define TENDERD_MERGE_H

#include <jansson.h>
#include <stdint.h>
#include "tenderd/types.h"

#define TD_MERGE_OMIT 1u  /* "omitWhenMerged": the field is left out */
#define TD_MERGE_WHOLE 2u /* "wholeListMerge": the array is replaced as a whole */

/*
 * One entry of the generated rule table: a field on the path from the release
 * down to a rule. Entry 0 is the release itself; the children of an entry are
 * the entries [first, first + count). A path leaves out array positions
 * ("tender/items/additionalClassifications").
 */
struct td_merge_rule {
	const char *name; /* the property name ("" for the release) */
	unsigned flags;   /* TD_MERGE_* */
	uint16_t first;   /* first child entry (0 when count is 0) */
	uint16_t count;   /* number of child entries */
};

extern const struct td_merge_rule td_merge_rules[];
extern const size_t td_merge_rules_len;

/* The TD_MERGE_* flags of the field at path ("tender/items/unit", no leading "/"); 0 if it has no rule. */
unsigned td_merge_path_flags(const char *path);

/*
 * Merges the top-level field key with value (of a release) into compiled,
 * as the merge routine does for each field of a release: nothing for an
 * omitWhenMerged field (id, date, tag). compiled must be an object.
 */
void td_merge_field(json_t *compiled, const char *key, const json_t *value);

/*
 * Merges the release into compiled (an object; {} before the first release)
 * field by field with td_merge_field. Sets no id, date or tag: a compiled
 * release's own metadata is the caller's (td_merge_records sets them).
 */
void td_merge_compiled(json_t *compiled, const json_t *release);

/*
 * Merges the release into versioned (an object; {} before the first
 * release): ocid is kept as it is, every other field becomes an array of
 * versioned values {releaseID, releaseDate, releaseTag, value} taken from the
 * release's id, date and tag (null where the release has none), a new one
 * only when the value differs from the latest; the id of an object in an
 * identifierMerge array is kept as it is.
 */
void td_merge_versioned(json_t *versioned, const json_t *release);

/*
 * Compiles releases (an array of release objects of any ocids) into records:
 * returns a new array with one {ocid, releases, compiledRelease} per ocid (or
 * versionedRelease when versioned), ocids in the order they first appear,
 * releases ordered by date (earliest first; equal dates keep their input
 * order; the date's zone offset is applied). A compiled release has tag
 * ["compiled"], the date of the latest release and the id "<ocid>-<date>",
 * as in the standard's note and its reference implementation. Returns NULL
 * with a message in err when a release is not an object or lacks a string
 * ocid or a date-time date.
 */
json_t *td_merge_records(const json_t *releases, bool versioned, char *err, size_t errlen);

#endif
