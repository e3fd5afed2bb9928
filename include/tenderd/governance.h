/*
 * Governance records: how the chain's validators change its parties.
 *
 * A governance record is a signed record (tenderd/record.h) of kind
 * TD_KIND_GOV_PROPOSAL or TD_KIND_GOV_APPROVAL whose body, in place of an
 * OCDS release, is one of
 *   {"ocid": O, "id": ID, "date": ISO, "action": "add", "role":
 *    "validator"|"member"|"observer", "name": NAME, "pub_key": HEX}
 *   {"ocid": O, "id": ID, "date": ISO, "action": "remove", "pub_key": HEX}
 *   {"ocid": O, "id": ID, "date": ISO, "action": "replace-key", "pub_key": HEX,
 *    "new_pub_key": HEX}
 * each with an optional "rationale" (a string of at most
 * TD_GOV_RATIONALE_MAX bytes), for a proposal, and
 *   {"ocid": O, "id": ID, "date": ISO, "proposal": HEX (the proposal's record id)}
 * for an approval. O is the chain's ocid prefix followed by
 * TD_GOV_OCID_SUFFIX; no other member is allowed. A governance record names
 * no previous record. What the chain does with them: node/registry.h.
 */
#ifndef TENDERD_GOVERNANCE_H
#define TENDERD_GOVERNANCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tenderd/block.h"
#include "tenderd/release.h"
#include "tenderd/types.h"

#define TD_GOV_OCID_SUFFIX "-governance"
#define TD_GOV_RATIONALE_MAX 1000

enum td_gov_action {
	TD_GOV_ADD = 1,
	TD_GOV_REMOVE = 2,
	TD_GOV_REPLACE_KEY = 3,
};

struct td_gov {
	enum td_kind kind;                  /* TD_KIND_GOV_PROPOSAL or TD_KIND_GOV_APPROVAL */
	enum td_gov_action action;          /* proposal */
	enum td_role role;                  /* proposal, TD_GOV_ADD */
	char name[TD_NAME_MAX + 1];         /* proposal, TD_GOV_ADD */
	uint8_t pub_key[TD_PUBKEY_LEN];     /* proposal: the new party's key (add), else the party's */
	uint8_t new_pub_key[TD_PUBKEY_LEN]; /* proposal, TD_GOV_REPLACE_KEY */
	uint8_t proposal[TD_HASH_LEN];      /* approval */
};

/* "add", "remove", "replace-key"; NULL for another value. */
const char *td_gov_action_name(enum td_gov_action a);

/*
 * Reads and checks the body of a governance record of kind: exactly the
 * members above, of the right types. Returns 0 with *out filled, or
 * TD_EINVAL with a message naming the member.
 */
int td_gov_parse(const json_t *body, enum td_kind kind, struct td_gov *out, char *err, size_t errlen);

/*
 * The body of a governance record for g, with ocid, id and date given (and
 * a rationale, for a proposal, if not NULL): a new reference.
 */
json_t *td_gov_body(const struct td_gov *g, const char *ocid, const char *id, const char *date, const char *rationale);

#endif
