/*
 * OCDS 1.1 releases: validation, building a full release from an agency's
 * fragment, compiling releases into a tender's current state, summaries.
 *
 * Trees come from td_json_load (numbers are exact; see tenderd/json.h).
 * Every refusal writes a message naming the field and the reason into err.
 */
#ifndef TENDERD_RELEASE_H
#define TENDERD_RELEASE_H

#include <jansson.h>
#include "tenderd/isotime.h"
#include "tenderd/types.h"

/* What a record does to a tender; each maps to one OCDS release tag. */
enum td_kind {
	TD_KIND_TENDER = 1,       /* tag "tender": a new call for bids */
	TD_KIND_AMENDMENT = 2,    /* tag "tenderAmendment" */
	TD_KIND_CANCELLATION = 3, /* tag "tenderCancellation" */
	TD_KIND_AWARD = 4,        /* tag "award" */
	/* Not OCDS releases: governance records (tenderd/governance.h) */
	TD_KIND_GOV_PROPOSAL = 5, /* "governanceProposal": a change to the chain's parties */
	TD_KIND_GOV_APPROVAL = 6, /* "governanceApproval": a validator's yes to a proposal */
};
#define TD_KIND_MIN TD_KIND_TENDER
#define TD_KIND_MAX TD_KIND_AWARD        /* the OCDS release kinds: MIN..MAX */
#define TD_KIND_ALL_MAX TD_KIND_GOV_APPROVAL /* every record kind: MIN..ALL_MAX */

/* True for the governance kinds. */
static inline bool td_kind_is_gov(enum td_kind kind)
{
	return kind == TD_KIND_GOV_PROPOSAL || kind == TD_KIND_GOV_APPROVAL;
}
/* True if a record of this kind names the previous record of its ocid (amendments, cancellations, awards). */
static inline bool td_kind_has_prev(enum td_kind kind)
{
	return kind == TD_KIND_AMENDMENT || kind == TD_KIND_CANCELLATION || kind == TD_KIND_AWARD;
}

/* The release tag of a kind ("tender", "tenderAmendment", ..., "governanceProposal"). */
const char *td_kind_name(enum td_kind kind);
/* Parses a tag; returns 0 if s names no kind. */
enum td_kind td_kind_parse(const char *s, size_t len);

/*
 * Checks a full release as stored on the ledger: ocid ("ocds-" prefix), id,
 * date (ISO 8601 with offset), tag equal to [td_kind_name(kind)],
 * initiationType "tender", and the OCDS fields present (tender, awards,
 * parties, buyer): ids, closed code lists (tender status, procurementMethod,
 * mainProcurementCategory, award status), dates, currency codes, non-negative
 * exact amounts. Returns 0 or TD_EINVAL with a message in err.
 */
int td_release_validate(const json_t *release, enum td_kind kind, char *err, size_t errlen);
/* td_release_validate, or for a governance kind td_gov_parse (tenderd/governance.h): what a record's body must be. */
int td_record_body_validate(const json_t *body, enum td_kind kind, char *err, size_t errlen);

/*
 * Builds the full release an agency publishes from its fragment (not
 * modified): sets ocid (from ocid if given, else the fragment's; a conflict is
 * refused), id (the fragment's "id" or "<ocid>-<time_ms>"), date (time_ms as
 * UTC ISO 8601, whatever the fragment says), tag, initiationType, a buyer
 * named agency_name when absent, and for a cancellation tender.status
 * "cancelled". Then validates it.
 * Returns a new reference, or NULL with a message in err.
 */
json_t *td_release_build(const json_t *fragment, enum td_kind kind, const char *ocid, uint64_t time_ms,
			 const char *agency_name, char *err, size_t errlen);

/*
 * td_release_build for a release first published elsewhere (an import): the
 * release's "date" is date[0..datelen) instead of time_ms, which still makes
 * the id "<ocid>-<time_ms>" when the fragment has none (the record's time,
 * the ledger's, is the caller's business). date must be an ISO 8601
 * date-time with seconds and a zone, as td_iso_valid checks; otherwise
 * returns NULL with "date: ..." in err. date NULL is td_release_build.
 */
json_t *td_release_build_dated(const json_t *fragment, enum td_kind kind, const char *ocid, uint64_t time_ms,
			       const char *date, size_t datelen, const char *agency_name, char *err, size_t errlen);

/*
 * Merges release into compiled by the OCDS merge routine of tenderd/merge.h
 * (rules from the release schema: identifierMerge, wholeListMerge,
 * omitWhenMerged, null removes), then sets compiled's "id" and "date" to the
 * release's and its tag to ["compiled"]. compiled may be an empty object for
 * the first release. Modifies compiled in place; the release is untouched.
 */
void td_release_merge(json_t *compiled, const json_t *release);

/*
 * A tender summary of a compiled release for listings: ocid, title, status,
 * value, procurementMethod, mainProcurementCategory, tenderPeriod, date.
 * Returns a new reference.
 */
json_t *td_release_summary(const json_t *compiled);

#endif
