/*
 * Governance record bodies (contract in tenderd/governance.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tenderd/governance.h"
#include "tenderd/isotime.h"
#include "tenderd/json.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return TD_EINVAL;
}

const char *td_gov_action_name(enum td_gov_action a)
{
	switch (a) {
	case TD_GOV_ADD: return "add";
	case TD_GOV_REMOVE: return "remove";
	case TD_GOV_REPLACE_KEY: return "replace-key";
	}
	return NULL;
}

static const char *role_names[] = { "validator", "member", "observer" };

/* The string member key of body, or NULL (then *len is 0). */
static const char *str(const json_t *body, const char *key, size_t *len)
{
	const json_t *v = json_object_get(body, key);
	*len = 0;
	if (!td_json_is_string(v))
		return NULL;
	*len = json_string_length(v);
	return json_string_value(v);
}

static bool hex_member(const json_t *body, const char *key, uint8_t *out, size_t n)
{
	size_t len;
	const char *s = str(body, key, &len);
	return s && td_unhex(out, n, s, len);
}

int td_gov_parse(const json_t *body, enum td_kind kind, struct td_gov *out, char *err, size_t errlen)
{
	const char *allowed[8] = { "ocid", "id", "date" };
	size_t nallowed = 3, len;
	const char *s, *key;
	const json_t *v;

	memset(out, 0, sizeof(*out));
	out->kind = kind;
	if (kind != TD_KIND_GOV_PROPOSAL && kind != TD_KIND_GOV_APPROVAL)
		return fail(err, errlen, "governance: not a governance kind");
	if (!json_is_object(body))
		return fail(err, errlen, "governance: the body must be an object");
	if (!(s = str(body, "ocid", &len)) || len == 0 || len > TD_OCID_MAX || len <= strlen(TD_GOV_OCID_SUFFIX) ||
	    strcmp(s + len - strlen(TD_GOV_OCID_SUFFIX), TD_GOV_OCID_SUFFIX) != 0)
		return fail(err, errlen, "governance: ocid must be the chain's prefix followed by \"%s\"",
			    TD_GOV_OCID_SUFFIX);
	if (!(s = str(body, "id", &len)) || len == 0 || len > TD_ID_MAX)
		return fail(err, errlen, "governance: id must be a string of 1..%d bytes", TD_ID_MAX);
	if (!(s = str(body, "date", &len)) || !td_iso_valid(s, len))
		return fail(err, errlen, "governance: date must be an ISO 8601 date-time with a zone");
	if (kind == TD_KIND_GOV_APPROVAL) {
		allowed[nallowed++] = "proposal";
		if (!hex_member(body, "proposal", out->proposal, TD_HASH_LEN))
			return fail(err, errlen, "governance: proposal must be a record id (%d hex digits)",
				    2 * TD_HASH_LEN);
	} else {
		allowed[nallowed++] = "action";
		allowed[nallowed++] = "pub_key";
		allowed[nallowed++] = "rationale";
		s = str(body, "action", &len);
		for (int a = TD_GOV_ADD; s && a <= TD_GOV_REPLACE_KEY; a++)
			if (strlen(td_gov_action_name((enum td_gov_action)a)) == len &&
			    memcmp(s, td_gov_action_name((enum td_gov_action)a), len) == 0)
				out->action = (enum td_gov_action)a;
		if (out->action == 0)
			return fail(err, errlen, "governance: action must be \"add\", \"remove\" or \"replace-key\"");
		if (!hex_member(body, "pub_key", out->pub_key, TD_PUBKEY_LEN))
			return fail(err, errlen, "governance: pub_key must be %d hex digits", 2 * TD_PUBKEY_LEN);
		v = json_object_get(body, "rationale");
		if (v && (!td_json_is_string(v) || json_string_length(v) > TD_GOV_RATIONALE_MAX))
			return fail(err, errlen, "governance: rationale must be a string of at most %d bytes",
				    TD_GOV_RATIONALE_MAX);
		if (out->action == TD_GOV_ADD) {
			allowed[nallowed++] = "role";
			allowed[nallowed++] = "name";
			s = str(body, "role", &len);
			out->role = (enum td_role) - 1;
			for (int r = 0; s && r < 3; r++)
				if (strlen(role_names[r]) == len && memcmp(s, role_names[r], len) == 0)
					out->role = (enum td_role)r;
			if ((int)out->role < 0)
				return fail(err, errlen,
					    "governance: role must be \"validator\", \"member\" or \"observer\"");
			if (!(s = str(body, "name", &len)) || len == 0 || len > TD_NAME_MAX)
				return fail(err, errlen, "governance: name must be a string of 1..%d bytes",
					    TD_NAME_MAX);
			memcpy(out->name, s, len);
		} else if (out->action == TD_GOV_REPLACE_KEY) {
			allowed[nallowed++] = "new_pub_key";
			if (!hex_member(body, "new_pub_key", out->new_pub_key, TD_PUBKEY_LEN))
				return fail(err, errlen, "governance: new_pub_key must be %d hex digits",
					    2 * TD_PUBKEY_LEN);
			if (memcmp(out->new_pub_key, out->pub_key, TD_PUBKEY_LEN) == 0)
				return fail(err, errlen, "governance: new_pub_key is pub_key");
		}
	}
	json_object_foreach((json_t *)body, key, v) {
		bool ok = false;
		for (size_t i = 0; i < nallowed && !ok; i++)
			ok = strcmp(key, allowed[i]) == 0;
		if (!ok)
			return fail(err, errlen, "governance: unexpected member \"%.40s\"", key);
	}
	return 0;
}

json_t *td_gov_body(const struct td_gov *g, const char *ocid, const char *id, const char *date, const char *rationale)
{
	char hex[2 * TD_HASH_LEN + 1];
	json_t *b = json_pack("{s:s, s:s, s:s}", "ocid", ocid, "id", id, "date", date);

	if (g->kind == TD_KIND_GOV_APPROVAL) {
		td_hex(hex, g->proposal, TD_HASH_LEN);
		json_object_set_new(b, "proposal", json_string(hex));
		return b;
	}
	json_object_set_new(b, "action", json_string(td_gov_action_name(g->action)));
	td_hex(hex, g->pub_key, TD_PUBKEY_LEN);
	json_object_set_new(b, "pub_key", json_string(hex));
	if (g->action == TD_GOV_ADD) {
		json_object_set_new(b, "role", json_string(role_names[g->role]));
		json_object_set_new(b, "name", json_string(g->name));
	} else if (g->action == TD_GOV_REPLACE_KEY) {
		td_hex(hex, g->new_pub_key, TD_PUBKEY_LEN);
		json_object_set_new(b, "new_pub_key", json_string(hex));
	}
	if (rationale)
		json_object_set_new(b, "rationale", json_string(rationale));
	return b;
}
