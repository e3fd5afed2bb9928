/*
 * OCDS 1.1 releases: validation, building, compiling (merge) and summaries.
 *
 * Trees are jansson values from td_json_load(): numbers are NUL-marked
 * strings holding the agency's exact text, so every type test here goes
 * through td_json_is_string()/td_json_is_number(), never json_is_string().
 *
 * Validation walks the known OCDS fields with a path stack (struct vctx) so
 * every refusal reads "<json path>: <reason>", e.g.
 * "awards[0].value.currency: \"XXX\" is not in the currency code list".
 * Unknown fields (OCDS extensions) are accepted as long as the whole tree
 * stays within TD_JSON_DEPTH_MAX levels of nesting.
 *
 * Nothing here keeps state; every function returns new references or
 * modifies only what the caller passes in.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenderd/json.h"
#include "tenderd/merge.h"
#include "tenderd/release.h"
#include "tenderd/governance.h"

/* ---- code lists ---------------------------------------------------------- */

struct codelist {
	const char *name;         /* as in the refusal message: "tenderStatus" */
	const char *const *codes; /* sorted by strcmp when used with bsearch */
	size_t n;
};

#define CODELIST(name, arr)                             \
	{                                               \
		name, arr, sizeof(arr) / sizeof(arr[0]) \
	}

static const char *const tender_status_codes[] = {
	"planning", "planned", "active", "cancelled", "unsuccessful", "complete", "withdrawn",
};
static const char *const method_codes[] = { "open", "selective", "limited", "direct" };
static const char *const category_codes[] = { "goods", "works", "services" };
static const char *const award_status_codes[] = { "pending", "active", "cancelled", "unsuccessful" };
static const char *const party_role_codes[] = {
	"buyer",    "procuringEntity", "supplier", "tenderer",   "funder",
	"enquirer", "payer",           "payee",    "reviewBody", "interestedParty",
};

static const struct codelist tender_status_list = CODELIST("tenderStatus", tender_status_codes);
static const struct codelist method_list = CODELIST("method", method_codes);
static const struct codelist category_list = CODELIST("procurementCategory", category_codes);
static const struct codelist award_status_list = CODELIST("awardStatus", award_status_codes);
static const struct codelist party_role_list = CODELIST("partyRole", party_role_codes);

/*
 * ISO 4217 codes of the OCDS 1.1 currency code list
 * (tests/data/ocds/codelists/currency.csv), historic ones included, sorted
 * for bsearch. test_release checks this table against the CSV.
 */
static const char currency_codes[][4] = {
	"ADP", "AED", "AFA", "AFN", "ALK", "ALL", "AMD", "ANG", "AOA", "AOK", "AON", "AOR", "ARA", "ARP", "ARS", "ARY",
	"ATS", "AUD", "AWG", "AYM", "AZM", "AZN", "BAD", "BAM", "BBD", "BDT", "BEC", "BEF", "BEL", "BGJ", "BGK", "BGL",
	"BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOP", "BOV", "BRB", "BRC", "BRE", "BRL", "BRN", "BRR", "BSD", "BTN",
	"BUK", "BWP", "BYB", "BYN", "BYR", "BZD", "CAD", "CDF", "CHC", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP",
	"COU", "CRC", "CSD", "CSJ", "CSK", "CUC", "CUP", "CVE", "CYP", "CZK", "DDM", "DEM", "DJF", "DKK", "DOP", "DZD",
	"ECS", "ECV", "EEK", "EGP", "ERN", "ESA", "ESB", "ESP", "ETB", "EUR", "FIM", "FJD", "FKP", "FRF", "GBP", "GEK",
	"GEL", "GHC", "GHP", "GHS", "GIP", "GMD", "GNE", "GNF", "GNS", "GQE", "GRD", "GTQ", "GWE", "GWP", "GYD", "HKD",
	"HNL", "HRD", "HRK", "HTG", "HUF", "IDR", "IEP", "ILP", "ILR", "ILS", "INR", "IQD", "IRR", "ISJ", "ISK", "ITL",
	"JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAJ", "LAK", "LBP", "LKR",
	"LRD", "LSL", "LSM", "LTL", "LTT", "LUC", "LUF", "LUL", "LVL", "LVR", "LYD", "MAD", "MDL", "MGA", "MGF", "MKD",
	"MLF", "MMK", "MNT", "MOP", "MRO", "MRU", "MTL", "MTP", "MUR", "MVQ", "MVR", "MWK", "MXN", "MXP", "MXV", "MYR",
	"MZE", "MZM", "MZN", "NAD", "NGN", "NIC", "NIO", "NLG", "NOK", "NPR", "NZD", "OMR", "PAB", "PEH", "PEI", "PEN",
	"PES", "PGK", "PHP", "PKR", "PLN", "PLZ", "PTE", "PYG", "QAR", "RHD", "ROK", "ROL", "RON", "RSD", "RUB", "RUR",
	"RWF", "SAR", "SBD", "SCR", "SDD", "SDG", "SDP", "SEK", "SGD", "SHP", "SIT", "SKK", "SLL", "SOS", "SRD", "SRG",
	"SSP", "STD", "STN", "SUR", "SVC", "SYP", "SZL", "THB", "TJR", "TJS", "TMM", "TMT", "TND", "TOP", "TPE", "TRL",
	"TRY", "TTD", "TWD", "TZS", "UAH", "UAK", "UGS", "UGW", "UGX", "USD", "USN", "USS", "UYI", "UYN", "UYP", "UYU",
	"UYW", "UZS", "VEB", "VEF", "VES", "VNC", "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD",
	"XCD", "XDR", "XEU", "XFO", "XFU", "XOF", "XPD", "XPF", "XPT", "XRE", "XSU", "XTS", "XUA", "XXX", "YDD", "YER",
	"YUD", "YUM", "YUN", "ZAL", "ZAR", "ZMK", "ZMW", "ZRN", "ZRZ", "ZWC", "ZWD", "ZWL", "ZWN", "ZWR",
};

static bool codelist_has(const struct codelist *l, const char *s, size_t len)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strlen(l->codes[i]) == len && memcmp(l->codes[i], s, len) == 0)
			return true;
	}
	return false;
}

static int currency_cmp(const void *key, const void *elem)
{
	return strcmp(key, elem);
}

static bool currency_known(const char *s, size_t len)
{
	char key[4];

	if (len != 3)
		return false;
	memcpy(key, s, 3);
	key[3] = '\0';
	return bsearch(key, currency_codes, sizeof currency_codes / sizeof currency_codes[0], sizeof currency_codes[0],
		       currency_cmp) != NULL;
}

/* True if v is a plain string equal to the NUL-terminated s. */
static bool str_is(const json_t *v, const char *s)
{
	size_t len = strlen(s);

	return td_json_is_string(v) && json_string_length(v) == len && memcmp(json_string_value(v), s, len) == 0;
}

/* True if v and w are plain strings with the same bytes. */
static bool str_eq(const json_t *v, const json_t *w)
{
	return td_json_is_string(v) && td_json_is_string(w) && json_string_length(v) == json_string_length(w) &&
	       memcmp(json_string_value(v), json_string_value(w), json_string_length(v)) == 0;
}

/* ---- kinds ---------------------------------------------------------------- */

const char *td_kind_name(enum td_kind kind)
{
	switch (kind) {
	case TD_KIND_TENDER: return "tender";
	case TD_KIND_AMENDMENT: return "tenderAmendment";
	case TD_KIND_CANCELLATION: return "tenderCancellation";
	case TD_KIND_AWARD: return "award";
	case TD_KIND_GOV_PROPOSAL: return "governanceProposal";
	case TD_KIND_GOV_APPROVAL: return "governanceApproval";
	}
	return NULL;
}

enum td_kind td_kind_parse(const char *s, size_t len)
{
	if (s == NULL)
		return 0;
	for (int k = TD_KIND_MIN; k <= TD_KIND_ALL_MAX; k++) {
		const char *name = td_kind_name((enum td_kind)k);
		if (strlen(name) == len && memcmp(name, s, len) == 0)
			return (enum td_kind)k;
	}
	return 0;
}

/* ---- validation ----------------------------------------------------------- */

/* Validation state: where the refusal goes and the JSON path being checked. */
struct vctx {
	char *err;
	size_t errlen;
	enum td_kind kind;
	char path[TD_ERRMSG_MAX]; /* "tender.amendments[0].id"; empty at the top */
	size_t plen;              /* strlen(path) */
};

/* Appends ".key" (or "key" at the top) to the path; returns the mark for path_pop. */
static size_t path_push(struct vctx *c, const char *key)
{
	size_t mark = c->plen;
	int n = snprintf(c->path + mark, sizeof c->path - mark, "%s%s", mark ? "." : "", key);

	if (n > 0)
		c->plen = strlen(c->path);
	return mark;
}

static size_t path_index(struct vctx *c, size_t i)
{
	size_t mark = c->plen;
	int n = snprintf(c->path + mark, sizeof c->path - mark, "[%zu]", i);

	if (n > 0)
		c->plen = strlen(c->path);
	return mark;
}

static void path_pop(struct vctx *c, size_t mark)
{
	c->plen = mark;
	c->path[mark] = '\0';
}

/* Writes "<path>: <reason>" into err; returns TD_EINVAL. */
__attribute__((format(printf, 2, 3))) static int fail(struct vctx *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->err == NULL || c->errlen == 0)
		return TD_EINVAL;
	n = snprintf(c->err, c->errlen, "%s: ", c->plen ? c->path : "release");
	if (n < 0 || (size_t)n >= c->errlen)
		return TD_EINVAL;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return TD_EINVAL;
}

/* A printable excerpt of an outside string for a refusal message. */
static void excerpt(char out[40], const char *s, size_t len)
{
	size_t n = len > 32 ? 32 : len;

	for (size_t i = 0; i < n; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\' ? s[i] : '?';
	if (len > n) {
		memcpy(out + n, "...", 4);
	} else {
		out[n] = '\0';
	}
}

/* Checks a value whose path is pushed: a string, non-empty if asked, at most maxlen bytes (0: no cap). */
static int check_string(struct vctx *c, const json_t *v, bool nonempty, size_t maxlen)
{
	if (!td_json_is_string(v))
		return fail(c, "must be a string");
	if (nonempty && json_string_length(v) == 0)
		return fail(c, "must not be empty");
	if (maxlen && json_string_length(v) > maxlen)
		return fail(c, "is longer than %zu bytes", maxlen);
	return 0;
}

/* obj[key] must be a string when present (and present when required). */
static int f_string(struct vctx *c, const json_t *obj, const char *key, bool required, bool nonempty, size_t maxlen)
{
	const json_t *v = json_object_get(obj, key);
	size_t mark;
	int rc = 0;

	if (v == NULL && !required)
		return 0;
	mark = path_push(c, key);
	if (v == NULL)
		rc = fail(c, "is required");
	else
		rc = check_string(c, v, nonempty, maxlen);
	path_pop(c, mark);
	return rc;
}

/* obj[key], when present, must be an ISO 8601 date-time with a zone. */
static int f_date(struct vctx *c, const json_t *obj, const char *key, bool required)
{
	const json_t *v = json_object_get(obj, key);
	size_t mark;
	int rc = 0;

	if (v == NULL && !required)
		return 0;
	mark = path_push(c, key);
	if (v == NULL)
		rc = fail(c, "is required");
	else if (!td_json_is_string(v))
		rc = fail(c, "must be a string");
	else if (!td_iso_valid(json_string_value(v), json_string_length(v)))
		rc = fail(c, "must be an ISO 8601 date-time with seconds and a zone (2020-03-09T09:00:00+09:00)");
	path_pop(c, mark);
	return rc;
}

/* A value (path pushed) must be a string from the code list. */
static int check_code(struct vctx *c, const json_t *v, const struct codelist *l)
{
	char ex[40];

	if (!td_json_is_string(v))
		return fail(c, "must be a string");
	if (codelist_has(l, json_string_value(v), json_string_length(v)))
		return 0;
	excerpt(ex, json_string_value(v), json_string_length(v));
	return fail(c, "\"%s\" is not in the %s code list", ex, l->name);
}

static int f_code(struct vctx *c, const json_t *obj, const char *key, const struct codelist *l)
{
	const json_t *v = json_object_get(obj, key);
	size_t mark;
	int rc;

	if (v == NULL)
		return 0;
	mark = path_push(c, key);
	rc = check_code(c, v, l);
	path_pop(c, mark);
	return rc;
}

/* obj[key], when present, must be an array of strings (from the code list if l). */
static int f_strings(struct vctx *c, const json_t *obj, const char *key, const struct codelist *l)
{
	const json_t *v = json_object_get(obj, key);
	size_t mark, i;
	const json_t *e;
	int rc = 0;

	if (v == NULL)
		return 0;
	mark = path_push(c, key);
	if (!json_is_array(v)) {
		rc = fail(c, "must be an array of strings");
		goto out;
	}
	json_array_foreach(v, i, e) {
		size_t m = path_index(c, i);
		rc = l ? check_code(c, e, l) : check_string(c, e, false, 0);
		path_pop(c, m);
		if (rc)
			break;
	}
out:
	path_pop(c, mark);
	return rc;
}

typedef int (*object_check)(struct vctx *c, const json_t *obj);

/* obj[key] must be an object when present (and present when required); fn checks its fields. */
static int f_object(struct vctx *c, const json_t *obj, const char *key, bool required, object_check fn)
{
	const json_t *v = json_object_get(obj, key);
	size_t mark;
	int rc = 0;

	if (v == NULL && !required)
		return 0;
	mark = path_push(c, key);
	if (v == NULL)
		rc = fail(c, "is required");
	else if (!json_is_object(v))
		rc = fail(c, "must be an object");
	else if (fn)
		rc = fn(c, v);
	path_pop(c, mark);
	return rc;
}

/* obj[key] must be an array of objects when present (non-empty when required); fn checks each. */
static int f_objects(struct vctx *c, const json_t *obj, const char *key, bool required, object_check fn)
{
	const json_t *v = json_object_get(obj, key);
	size_t mark, i;
	const json_t *e;
	int rc = 0;

	if (v == NULL && !required)
		return 0;
	mark = path_push(c, key);
	if (v == NULL) {
		rc = fail(c, "is required");
		goto out;
	}
	if (!json_is_array(v)) {
		rc = fail(c, "must be an array of objects");
		goto out;
	}
	if (required && json_array_size(v) == 0) {
		rc = fail(c, "must not be empty");
		goto out;
	}
	json_array_foreach(v, i, e) {
		size_t m = path_index(c, i);
		if (!json_is_object(e))
			rc = fail(c, "must be an object");
		else
			rc = fn(c, e);
		path_pop(c, m);
		if (rc)
			break;
	}
out:
	path_pop(c, mark);
	return rc;
}

/* OCDS Value: {amount: exact non-negative number, currency: ISO 4217}. */
static int check_value(struct vctx *c, const json_t *obj)
{
	const json_t *amount = json_object_get(obj, "amount");
	const json_t *currency = json_object_get(obj, "currency");
	size_t mark;
	int rc = 0;

	if (amount) {
		size_t len;
		const char *text = td_json_number_text(amount, &len);
		mark = path_push(c, "amount");
		if (text == NULL || len == 0 || text[0] == '-')
			rc = fail(c, "must be a non-negative number");
		path_pop(c, mark);
		if (rc)
			return rc;
	}
	if (currency) {
		mark = path_push(c, "currency");
		if (!td_json_is_string(currency)) {
			rc = fail(c, "must be a string");
		} else if (!currency_known(json_string_value(currency), json_string_length(currency))) {
			char ex[40];
			excerpt(ex, json_string_value(currency), json_string_length(currency));
			rc = fail(c, "\"%s\" is not in the currency code list", ex);
		}
		path_pop(c, mark);
	}
	return rc;
}

static int check_period(struct vctx *c, const json_t *obj)
{
	int rc;

	if ((rc = f_date(c, obj, "startDate", false)) || (rc = f_date(c, obj, "endDate", false)) ||
	    (rc = f_date(c, obj, "maxExtentDate", false)))
		return rc;
	return 0;
}

/* An object whose only checked field is a required string "id". */
static int check_has_id(struct vctx *c, const json_t *obj)
{
	return f_string(c, obj, "id", true, true, 0);
}

static int check_amendment(struct vctx *c, const json_t *obj)
{
	int rc;

	if ((rc = f_string(c, obj, "id", true, true, 0)) || (rc = f_date(c, obj, "date", false)) ||
	    (rc = f_string(c, obj, "rationale", c->kind == TD_KIND_AMENDMENT, false, 0)) ||
	    (rc = f_string(c, obj, "description", false, false, 0)))
		return rc;
	return 0;
}

static int check_tender(struct vctx *c, const json_t *t)
{
	static const char *const periods[] = { "tenderPeriod", "enquiryPeriod", "awardPeriod", "contractPeriod" };
	bool is_tender = c->kind == TD_KIND_TENDER;
	const json_t *status;
	int rc;

	if ((rc = f_string(c, t, "id", is_tender, true, TD_ID_MAX)) ||
	    (rc = f_string(c, t, "title", is_tender, false, 0)) ||
	    (rc = f_string(c, t, "description", false, false, 0)))
		return rc;
	status = json_object_get(t, "status");
	if (status == NULL && (is_tender || c->kind == TD_KIND_CANCELLATION)) {
		size_t mark = path_push(c, "status");
		rc = fail(c, "is required");
		path_pop(c, mark);
		return rc;
	}
	if ((rc = f_code(c, t, "status", &tender_status_list)))
		return rc;
	if (status) {
		bool cancelled = str_is(status, "cancelled");
		size_t mark = path_push(c, "status");
		if (is_tender && cancelled)
			rc = fail(c, "a new tender cannot be \"cancelled\"");
		else if (c->kind == TD_KIND_CANCELLATION && !cancelled)
			rc = fail(c, "must be \"cancelled\" in a tenderCancellation release");
		path_pop(c, mark);
		if (rc)
			return rc;
	}
	if ((rc = f_code(c, t, "procurementMethod", &method_list)) ||
	    (rc = f_code(c, t, "mainProcurementCategory", &category_list)) ||
	    (rc = f_object(c, t, "value", false, check_value)) ||
	    (rc = f_string(c, t, "awardCriteria", false, false, 0)) || (rc = f_strings(c, t, "submissionMethod", NULL)))
		return rc;
	for (size_t i = 0; i < sizeof periods / sizeof periods[0]; i++) {
		if ((rc = f_object(c, t, periods[i], false, check_period)))
			return rc;
	}
	if ((rc = f_objects(c, t, "amendments", c->kind == TD_KIND_AMENDMENT, check_amendment)) ||
	    (rc = f_objects(c, t, "items", false, check_has_id)) ||
	    (rc = f_objects(c, t, "documents", false, check_has_id)))
		return rc;
	return 0;
}

static int check_supplier(struct vctx *c, const json_t *s)
{
	int rc;

	if ((rc = f_string(c, s, "name", true, true, 0)) || (rc = f_string(c, s, "id", false, true, 0)))
		return rc;
	return 0;
}

static int check_award(struct vctx *c, const json_t *a)
{
	int rc;

	if ((rc = f_string(c, a, "id", true, true, TD_ID_MAX)) || (rc = f_string(c, a, "title", false, false, 0)) ||
	    (rc = f_code(c, a, "status", &award_status_list)) || (rc = f_date(c, a, "date", false)) ||
	    (rc = f_object(c, a, "value", false, check_value)) ||
	    (rc = f_objects(c, a, "suppliers", false, check_supplier)) ||
	    (rc = f_objects(c, a, "items", false, check_has_id)) ||
	    (rc = f_objects(c, a, "documents", false, check_has_id)) ||
	    (rc = f_object(c, a, "contractPeriod", false, check_period)))
		return rc;
	return 0;
}

static int check_party(struct vctx *c, const json_t *p)
{
	int rc;

	if ((rc = f_string(c, p, "id", true, true, 0)) || (rc = f_string(c, p, "name", false, false, 0)) ||
	    (rc = f_strings(c, p, "roles", &party_role_list)))
		return rc;
	return 0;
}

static int check_buyer(struct vctx *c, const json_t *b)
{
	int rc;

	if ((rc = f_string(c, b, "name", true, true, 0)) || (rc = f_string(c, b, "id", false, true, 0)))
		return rc;
	return 0;
}

/*
 * Any value (path pushed), known field or extension: containers nest at most
 * TD_JSON_DEPTH_MAX levels (depth counts v's level, the release is 1),
 * numbers are exact (no jansson integer or real) and strings hold no NUL,
 * so that whatever passes here can be encoded (td_enc_json).
 */
static int check_json(struct vctx *c, const json_t *v, int depth)
{
	const char *key;
	const json_t *e;
	size_t i;
	int rc = 0;

	switch (json_typeof(v)) {
	case JSON_NULL:
	case JSON_TRUE:
	case JSON_FALSE: return 0;
	case JSON_INTEGER:
	case JSON_REAL: return fail(c, "must be an exact number (a tree from td_json_load)");
	case JSON_STRING:
		if (!td_json_is_number(v) && memchr(json_string_value(v), '\0', json_string_length(v)))
			return fail(c, "must not contain a NUL character");
		return 0;
	case JSON_OBJECT:
		if (depth > TD_JSON_DEPTH_MAX)
			return fail(c, "nested deeper than %d levels", TD_JSON_DEPTH_MAX);
		json_object_foreach((json_t *)v, key, e) {
			size_t m = path_push(c, key);
			rc = check_json(c, e, depth + 1);
			path_pop(c, m);
			if (rc)
				return rc;
		}
		return 0;
	case JSON_ARRAY:
		if (depth > TD_JSON_DEPTH_MAX)
			return fail(c, "nested deeper than %d levels", TD_JSON_DEPTH_MAX);
		json_array_foreach(v, i, e) {
			size_t m = path_index(c, i);
			rc = check_json(c, e, depth + 1);
			path_pop(c, m);
			if (rc)
				return rc;
		}
		return 0;
	}
	return fail(c, "is not a JSON value");
}

static int check_ocid(struct vctx *c, const json_t *r)
{
	const json_t *v = json_object_get(r, "ocid");
	size_t mark = path_push(c, "ocid");
	int rc = 0;

	if (v == NULL) {
		rc = fail(c, "is required");
	} else if (!td_json_is_string(v)) {
		rc = fail(c, "must be a string");
	} else {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);
		if (len <= 5 || memcmp(s, "ocds-", 5) != 0)
			rc = fail(c, "must start with \"ocds-\" and a prefix");
		else if (len > TD_OCID_MAX)
			rc = fail(c, "is longer than %d bytes", TD_OCID_MAX);
		for (size_t i = 0; rc == 0 && i < len; i++) {
			if (s[i] <= 0x20 || s[i] >= 0x7f)
				rc = fail(c, "must be printable ASCII without spaces");
		}
	}
	path_pop(c, mark);
	return rc;
}

static int check_tag(struct vctx *c, const json_t *r)
{
	const json_t *v = json_object_get(r, "tag");
	const char *name = td_kind_name(c->kind);
	size_t mark = path_push(c, "tag");
	int rc = 0;

	if (v == NULL) {
		rc = fail(c, "is required");
	} else if (!json_is_array(v) || json_array_size(v) != 1 || !td_json_is_string(json_array_get(v, 0)) ||
		   json_string_length(json_array_get(v, 0)) != strlen(name) ||
		   memcmp(json_string_value(json_array_get(v, 0)), name, strlen(name)) != 0) {
		rc = fail(c, "must be [\"%s\"]", name);
	}
	path_pop(c, mark);
	return rc;
}

int td_record_body_validate(const json_t *body, enum td_kind kind, char *err, size_t errlen)
{
	struct td_gov g;

	if (td_kind_is_gov(kind))
		return td_gov_parse(body, kind, &g, err, errlen);
	return td_release_validate(body, kind, err, errlen);
}

int td_release_validate(const json_t *release, enum td_kind kind, char *err, size_t errlen)
{
	struct vctx c = { .err = err, .errlen = errlen, .kind = kind };
	const json_t *v;
	size_t mark;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (td_kind_name(kind) == NULL || td_kind_is_gov(kind)) {
		mark = path_push(&c, "tag");
		rc = fail(&c, "unknown release kind %d", (int)kind);
		path_pop(&c, mark);
		return rc;
	}
	if (!json_is_object(release))
		return fail(&c, "must be an object");
	if ((rc = check_json(&c, release, 1)) || (rc = check_ocid(&c, release)) ||
	    (rc = f_string(&c, release, "id", true, true, TD_ID_MAX)) || (rc = f_date(&c, release, "date", true)) ||
	    (rc = check_tag(&c, release)))
		return rc;
	v = json_object_get(release, "initiationType");
	mark = path_push(&c, "initiationType");
	if (v == NULL)
		rc = fail(&c, "is required");
	else if (!str_is(v, "tender"))
		rc = fail(&c, "must be \"tender\"");
	path_pop(&c, mark);
	if (rc)
		return rc;
	if ((rc = f_object(&c, release, "tender",
			   kind == TD_KIND_TENDER || kind == TD_KIND_AMENDMENT || kind == TD_KIND_CANCELLATION,
			   check_tender)) ||
	    (rc = f_objects(&c, release, "awards", kind == TD_KIND_AWARD, check_award)) ||
	    (rc = f_objects(&c, release, "parties", false, check_party)) ||
	    (rc = f_object(&c, release, "buyer", false, check_buyer)))
		return rc;
	return 0;
}

/* ---- building ------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

/* The party in the array parties whose "id" is the string id, or NULL. */
static json_t *party_find(json_t *parties, const json_t *id)
{
	size_t i;
	json_t *p;

	json_array_foreach(parties, i, p) {
		if (json_is_object(p) && str_eq(json_object_get(p, "id"), id))
			return p;
	}
	return NULL;
}

/* True if some party in the array lists role among its roles. */
static bool party_role_taken(json_t *parties, const char *role)
{
	size_t i, j;
	json_t *p, *r;

	json_array_foreach(parties, i, p) {
		json_array_foreach(json_object_get(p, "roles"), j, r) {
			if (str_is(r, role))
				return true;
		}
	}
	return false;
}

static json_t *party_new(json_t *id, json_t *name, const char *role)
{
	json_t *p = json_object();

	json_object_set_new(p, "id", json_deep_copy(id));
	if (name)
		json_object_set_new(p, "name", json_deep_copy(name));
	json_object_set_new(p, "roles", json_pack("[s]", role));
	return p;
}

/*
 * For an award: lists every supplier named in awards[].suppliers[] in
 * "parties" with role "supplier" (id: the supplier's id, else its name),
 * and the buyer with role "buyer" when no party has that role. Leaves a
 * "parties" that is not an array alone for validation to refuse.
 */
static void add_award_parties(json_t *r, const char *agency_name)
{
	json_t *parties = json_object_get(r, "parties");
	json_t *awards = json_object_get(r, "awards");
	json_t *buyer = json_object_get(r, "buyer");
	json_t *award, *supplier;
	bool created = false;
	size_t i, j;

	if (parties == NULL) {
		created = true;
		parties = json_array();
		json_object_set_new(r, "parties", parties);
	}
	if (!json_is_array(parties))
		return;
	json_array_foreach(awards, i, award) {
		json_array_foreach(json_object_get(award, "suppliers"), j, supplier) {
			json_t *name = json_object_get(supplier, "name");
			json_t *id = json_object_get(supplier, "id");
			if (!td_json_is_string(id))
				id = name;
			if (!td_json_is_string(id) || party_find(parties, id))
				continue;
			json_array_append_new(parties,
					      party_new(id, td_json_is_string(name) ? name : NULL, "supplier"));
		}
	}
	if (agency_name && !party_role_taken(parties, "buyer")) {
		json_t *id = json_string(agency_name);
		json_t *name = json_object_get(buyer, "name");
		if (id && party_find(parties, id) == NULL)
			json_array_append_new(parties, party_new(id, td_json_is_string(name) ? name : id, "buyer"));
		json_decref(id);
	}
	if (created && json_array_size(parties) == 0)
		json_object_del(r, "parties");
}

/*
 * Fragment keys: "ocid" and "id" are kept (an "ocid" must agree with the
 * ocid argument); "date", "tag" and "initiationType" are always set by the
 * node, whatever the fragment says. Everything else is deep-copied in its
 * order after those five keys. With agency_name NULL no buyer is added.
 */
json_t *td_release_build(const json_t *fragment, enum td_kind kind, const char *ocid, uint64_t time_ms,
			 const char *agency_name, char *err, size_t errlen)
{
	return td_release_build_dated(fragment, kind, ocid, time_ms, NULL, 0, agency_name, err, errlen);
}

/*
 * With date NULL the release's "date" is time_ms as UTC ISO 8601; else it is
 * date[0..datelen), checked here as f_date checks dates so that the refusal
 * names the parameter rather than the release's field.
 */
json_t *td_release_build_dated(const json_t *fragment, enum td_kind kind, const char *ocid, uint64_t time_ms,
			       const char *date, size_t datelen, const char *agency_name, char *err, size_t errlen)
{
	const json_t *frag_ocid, *frag_id, *v;
	json_t *r = NULL, *ocid_v = NULL;
	char now[32];
	const char *key;

	if (err && errlen)
		err[0] = '\0';
	if (date && !td_iso_valid(date, datelen)) {
		set_err(err, errlen,
			"date: must be an ISO 8601 date-time with seconds and a zone (2020-03-09T09:00:00+09:00)");
		return NULL;
	}
	if (td_kind_name(kind) == NULL) {
		set_err(err, errlen, "tag: unknown release kind");
		return NULL;
	}
	if (!json_is_object(fragment)) {
		set_err(err, errlen, "release: must be an object");
		return NULL;
	}
	frag_ocid = json_object_get(fragment, "ocid");
	frag_id = json_object_get(fragment, "id");
	if (frag_ocid && !td_json_is_string(frag_ocid)) {
		set_err(err, errlen, "ocid: must be a string");
		return NULL;
	}
	if (ocid) {
		ocid_v = json_string(ocid);
		if (ocid_v == NULL) {
			set_err(err, errlen, "ocid: must be UTF-8");
			return NULL;
		}
		if (frag_ocid && !str_eq(frag_ocid, ocid_v)) {
			set_err(err, errlen, "ocid: the release's ocid does not match the ocid given");
			goto fail;
		}
	} else if (frag_ocid) {
		ocid_v = json_deep_copy(frag_ocid);
	} else {
		set_err(err, errlen, "ocid: is required");
		return NULL;
	}

	r = json_object();
	json_object_set(r, "ocid", ocid_v);
	if (frag_id) {
		json_object_set_new(r, "id", json_deep_copy(frag_id));
	} else {
		size_t olen = json_string_length(ocid_v);
		char tail[24];
		int n = snprintf(tail, sizeof tail, "-%llu", (unsigned long long)time_ms);
		char *id = td_xmalloc(olen + (size_t)n + 1);
		memcpy(id, json_string_value(ocid_v), olen);
		memcpy(id + olen, tail, (size_t)n + 1);
		json_object_set_new(r, "id", json_stringn(id, olen + (size_t)n));
		free(id);
	}
	if (date) {
		json_object_set_new(r, "date", json_stringn(date, datelen));
	} else {
		td_time_iso(now, time_ms);
		json_object_set_new(r, "date", json_string(now));
	}
	json_object_set_new(r, "tag", json_pack("[s]", td_kind_name(kind)));
	json_object_set_new(r, "initiationType", json_string("tender"));
	json_object_foreach((json_t *)fragment, key, v) {
		if (json_object_get(r, key))
			continue;
		json_t *copy = json_deep_copy(v);
		if (copy == NULL) {
			set_err(err, errlen, "release: out of memory or too deeply nested");
			goto fail;
		}
		json_object_set_new(r, key, copy);
	}
	if (agency_name && json_object_get(r, "buyer") == NULL)
		json_object_set_new(r, "buyer", json_pack("{s:s}", "name", agency_name));
	if (kind == TD_KIND_CANCELLATION) {
		json_t *tender = json_object_get(r, "tender");
		if (tender == NULL) {
			tender = json_object();
			json_object_set_new(r, "tender", tender);
		}
		if (json_is_object(tender))
			json_object_set_new(tender, "status", json_string("cancelled"));
	}
	if (kind == TD_KIND_AWARD)
		add_award_parties(r, agency_name);
	if (td_release_validate(r, kind, err, errlen) != 0)
		goto fail;
	json_decref(ocid_v);
	return r;
fail:
	json_decref(r);
	json_decref(ocid_v);
	return NULL;
}

/* ---- merging -------------------------------------------------------------- */

/*
 * The OCDS merge of tenderd/merge.h, field by field in the release's order.
 * The compiled release takes the latest release's "id" and "date" (the
 * fields the schema marks omitWhenMerged, which the node's compiled release
 * keeps as its own metadata) and the tag ["compiled"].
 */
void td_release_merge(json_t *compiled, const json_t *release)
{
	const char *key;
	json_t *v;

	if (!json_is_object(compiled) || !json_is_object(release))
		return;
	json_object_foreach((json_t *)release, key, v) {
		if (strcmp(key, "id") == 0 || strcmp(key, "date") == 0)
			json_object_set_new(compiled, key, json_deep_copy(v));
		else
			td_merge_field(compiled, key, v);
	}
	json_object_set_new(compiled, "tag", json_pack("[s]", "compiled"));
}

/* ---- summaries ------------------------------------------------------------ */

static void summary_take(json_t *out, const char *name, const json_t *from, const char *key)
{
	const json_t *v = json_object_get(from, key);

	if (v && !json_is_null(v))
		json_object_set_new(out, name, json_deep_copy(v));
}

json_t *td_release_summary(const json_t *compiled)
{
	json_t *out = json_object();
	const json_t *tender = json_object_get(compiled, "tender");

	summary_take(out, "ocid", compiled, "ocid");
	summary_take(out, "title", tender, "title");
	summary_take(out, "status", tender, "status");
	summary_take(out, "value", tender, "value");
	summary_take(out, "procurementMethod", tender, "procurementMethod");
	summary_take(out, "mainProcurementCategory", tender, "mainProcurementCategory");
	summary_take(out, "tenderPeriod", tender, "tenderPeriod");
	summary_take(out, "date", compiled, "date");
	return out;
}
