/*
 * The registry of parties and validator sets (contract in registry.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "tenderd/codec.h"
#include "tenderd/types.h"

#define NO_END UINT64_MAX

struct slot {
	struct td_validator p;
	enum td_role role;
	uint64_t from, until; /* the role holds at heights from..until-1 */
};

struct registry {
	uint64_t height;
	uint32_t nslots;
	struct slot slots[TD_PARTIES_MAX];
	uint32_t nsets;
	struct registry_set *sets; /* by increasing from */
	uint32_t nprops, cap;
	struct registry_proposal *props; /* oldest first, cap entries (at most REGISTRY_PROPOSALS_MAX) */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void set_seal(struct registry_set *s)
{
	td_validators_hash(s->hash, s->v, s->n);
}

void registry_genesis_set(struct registry_set *s, const struct td_genesis *g)
{
	memset(s, 0, sizeof(*s));
	s->from = 1;
	s->n = g->n;
	for (uint32_t i = 0; i < g->n; i++) {
		s->slot[i] = i;
		s->v[i] = g->v[i];
	}
	set_seal(s);
}

int registry_set_find(const struct registry_set *s, const uint8_t pk[static TD_PUBKEY_LEN])
{
	for (uint32_t i = 0; i < s->n; i++)
		if (memcmp(s->v[i].pk, pk, TD_PUBKEY_LEN) == 0)
			return (int)i;
	return -1;
}

struct registry *registry_new(const struct td_genesis *g)
{
	struct registry *r = td_xcalloc(1, sizeof(*r));
	struct registry_set *s;

	r->nslots = td_genesis_parties(g);
	for (uint32_t i = 0; i < r->nslots; i++) {
		r->slots[i].p = *td_genesis_party(g, i);
		r->slots[i].role = td_genesis_role(g, i);
		r->slots[i].from = 1;
		r->slots[i].until = NO_END;
	}
	r->sets = td_xcalloc(1, sizeof(*r->sets));
	r->nsets = 1;
	s = &r->sets[0];
	registry_genesis_set(s, g);
	r->props = NULL;
	return r;
}

struct registry *registry_clone(const struct registry *r)
{
	struct registry *c = td_xcalloc(1, sizeof(*c));

	*c = *r;
	c->sets = td_xcalloc(r->nsets, sizeof(*c->sets));
	memcpy(c->sets, r->sets, r->nsets * sizeof(*c->sets));
	c->cap = r->nprops;
	c->props = r->nprops ? td_xcalloc(r->nprops, sizeof(*c->props)) : NULL;
	if (r->nprops)
		memcpy(c->props, r->props, r->nprops * sizeof(*c->props));
	return c;
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	free(r->sets);
	free(r->props);
	free(r);
}

uint64_t registry_height(const struct registry *r)
{
	return r->height;
}

const struct registry_set *registry_set(const struct registry *r, uint64_t h)
{
	if (h < 1 || h > r->height + REGISTRY_EFFECT_DELAY)
		return NULL;
	for (uint32_t i = r->nsets; i-- > 0;)
		if (r->sets[i].from <= h)
			return &r->sets[i];
	return NULL; /* not reached: the first set starts at 1 */
}

uint32_t registry_slots(const struct registry *r)
{
	return r->nslots;
}

int registry_find(const struct registry *r, const uint8_t pk[static TD_PUBKEY_LEN])
{
	for (uint32_t i = 0; i < r->nslots; i++)
		if (memcmp(r->slots[i].p.pk, pk, TD_PUBKEY_LEN) == 0)
			return (int)i;
	return -1;
}

const struct td_validator *registry_party(const struct registry *r, uint32_t slot)
{
	return &r->slots[slot].p;
}

int registry_role(const struct registry *r, uint32_t slot, uint64_t h, enum td_role *role)
{
	const struct slot *s;

	if (slot >= r->nslots)
		return -1;
	s = &r->slots[slot];
	if (h < s->from || h >= s->until)
		return -1;
	*role = s->role;
	return 0;
}

bool registry_changes_at(const struct registry *r, uint64_t h)
{
	for (uint32_t i = 0; i < r->nslots; i++)
		if ((r->slots[i].from == h && h > 1) || r->slots[i].until == h)
			return true;
	return false;
}

const struct registry_proposal *registry_proposals(const struct registry *r, uint32_t *n)
{
	*n = r->nprops;
	return r->props;
}

static struct registry_proposal *find_proposal(const struct registry *r, const uint8_t id[static TD_HASH_LEN])
{
	for (uint32_t i = 0; i < r->nprops; i++)
		if (memcmp(r->props[i].id, id, TD_HASH_LEN) == 0)
			return &r->props[i];
	return NULL;
}

const struct registry_proposal *registry_proposal(const struct registry *r, const uint8_t id[static TD_HASH_LEN])
{
	return find_proposal(r, id);
}

const char *registry_action_name(enum registry_action a)
{
	switch (a) {
	case REGISTRY_ADD: return "add";
	case REGISTRY_REMOVE: return "remove";
	case REGISTRY_REPLACE_KEY: return "replace-key";
	}
	return "unknown";
}

const char *registry_status_name(enum registry_status s)
{
	switch (s) {
	case REGISTRY_PENDING: return "pending";
	case REGISTRY_DECIDED: return "decided";
	case REGISTRY_REJECTED: return "rejected";
	case REGISTRY_EXPIRED: return "expired";
	}
	return "unknown";
}

/* Index of pk in set s, or -1. */
static int set_find(const struct registry_set *s, const uint8_t pk[static TD_PUBKEY_LEN])
{
	for (uint32_t i = 0; i < s->n; i++)
		if (memcmp(s->v[i].pk, pk, TD_PUBKEY_LEN) == 0)
			return (int)i;
	return -1;
}

/* The slot holding pk with a role that has not ended (a live party), or -1. */
static int live_slot(const struct registry *r, const uint8_t pk[static TD_PUBKEY_LEN])
{
	int i = registry_find(r, pk);
	return i >= 0 && r->slots[i].until == NO_END ? i : -1;
}

/* The set that takes effect at height e, made (as a copy of the one in force there) if needed. */
static struct registry_set *set_from(struct registry *r, uint64_t e)
{
	struct registry_set *last = &r->sets[r->nsets - 1];
	if (last->from == e)
		return last;
	r->sets = td_xrealloc(r->sets, (r->nsets + 1) * sizeof(*r->sets));
	last = &r->sets[r->nsets - 1];
	r->sets[r->nsets] = *last;
	r->sets[r->nsets].from = e;
	return &r->sets[r->nsets++];
}

/* Is the change still possible on the parties as every decided change leaves them? 0 or TD_ERULE with why. */
static int change_possible(const struct registry *r, const struct registry_change *c, char *why, size_t len)
{
	const struct registry_set *s = &r->sets[r->nsets - 1];
	char hex[2 * TD_PUBKEY_LEN + 1];
	int slot;

	td_hex(hex, c->key, TD_PUBKEY_LEN);
	switch (c->action) {
	case REGISTRY_ADD:
		if ((slot = registry_find(r, c->key)) >= 0) {
			seterr(why, len, "key %s is (or was) held by \"%s\"", hex, r->slots[slot].p.name);
			return TD_ERULE;
		}
		if (r->nslots >= TD_PARTIES_MAX) {
			seterr(why, len, "the chain has named %d parties, its most", TD_PARTIES_MAX);
			return TD_ERULE;
		}
		if (c->role == TD_ROLE_VALIDATOR && s->n >= TD_VALIDATORS_MAX) {
			seterr(why, len, "the set has %d validators, its most", TD_VALIDATORS_MAX);
			return TD_ERULE;
		}
		return 0;
	case REGISTRY_REMOVE:
		if ((slot = live_slot(r, c->key)) < 0) {
			seterr(why, len, "key %s is no party of the chain", hex);
			return TD_ERULE;
		}
		if (r->slots[slot].role == TD_ROLE_VALIDATOR && 3 >= s->n) {
			seterr(why, len, "removing \"%s\" would remove a third or more of the %u validators",
			       r->slots[slot].p.name, s->n);
			return TD_ERULE;
		}
		return 0;
	case REGISTRY_REPLACE_KEY:
		if ((slot = live_slot(r, c->key)) < 0) {
			seterr(why, len, "key %s is no party of the chain", hex);
			return TD_ERULE;
		}
		if ((slot = registry_find(r, c->new_key)) >= 0) {
			td_hex(hex, c->new_key, TD_PUBKEY_LEN);
			seterr(why, len, "new key %s is (or was) held by \"%s\"", hex, r->slots[slot].p.name);
			return TD_ERULE;
		}
		if (r->nslots >= TD_PARTIES_MAX) {
			seterr(why, len, "the chain has named %d parties, its most", TD_PARTIES_MAX);
			return TD_ERULE;
		}
		return 0;
	}
	seterr(why, len, "unknown action");
	return TD_EINVAL;
}

/* Applies a decided, possible change from height e on. */
static void change_apply(struct registry *r, const struct registry_change *c, uint64_t e)
{
	struct slot *old;
	uint32_t ns;

	switch (c->action) {
	case REGISTRY_ADD:
		ns = r->nslots++;
		memset(&r->slots[ns], 0, sizeof(r->slots[ns]));
		snprintf(r->slots[ns].p.name, sizeof(r->slots[ns].p.name), "%s", c->name);
		memcpy(r->slots[ns].p.pk, c->key, TD_PUBKEY_LEN);
		r->slots[ns].role = c->role;
		r->slots[ns].from = e;
		r->slots[ns].until = NO_END;
		if (c->role == TD_ROLE_VALIDATOR) {
			struct registry_set *s = set_from(r, e);
			s->slot[s->n] = ns;
			s->v[s->n++] = r->slots[ns].p;
			set_seal(s);
		}
		return;
	case REGISTRY_REMOVE:
		old = &r->slots[live_slot(r, c->key)];
		old->until = e;
		if (old->role == TD_ROLE_VALIDATOR) {
			struct registry_set *s = set_from(r, e);
			int k = set_find(s, c->key);
			memmove(&s->v[k], &s->v[k + 1], (s->n - (uint32_t)k - 1) * sizeof(s->v[0]));
			memmove(&s->slot[k], &s->slot[k + 1], (s->n - (uint32_t)k - 1) * sizeof(s->slot[0]));
			s->n--;
			set_seal(s);
		}
		return;
	case REGISTRY_REPLACE_KEY:
		old = &r->slots[live_slot(r, c->key)];
		old->until = e;
		ns = r->nslots++;
		r->slots[ns] = *old;
		memcpy(r->slots[ns].p.pk, c->new_key, TD_PUBKEY_LEN);
		r->slots[ns].from = e;
		r->slots[ns].until = NO_END;
		if (old->role == TD_ROLE_VALIDATOR) {
			struct registry_set *s = set_from(r, e);
			int k = set_find(s, c->key);
			s->slot[k] = ns;
			s->v[k] = r->slots[ns].p;
			set_seal(s);
		}
		return;
	}
}

/* Decides p if its approvals from the set signing h pass two thirds. */
static void maybe_decide(struct registry *r, struct registry_proposal *p, uint64_t h)
{
	const struct registry_set *s = registry_set(r, h);
	uint32_t yes = 0;

	for (uint32_t i = 0; i < p->n_approvals; i++)
		if (set_find(s, p->approvers[i]) >= 0)
			yes++;
	if (3 * (uint64_t)yes <= 2 * (uint64_t)s->n)
		return;
	p->decided_height = h;
	if (change_possible(r, &p->change, p->reason, sizeof(p->reason)) != 0) {
		p->status = REGISTRY_REJECTED;
		return;
	}
	p->status = REGISTRY_DECIDED;
	p->effect_height = h + REGISTRY_EFFECT_DELAY;
	change_apply(r, &p->change, p->effect_height);
}

/* Room for one more proposal: drops the oldest finished one if the table is full. */
static bool make_room(struct registry *r)
{
	if (r->nprops < REGISTRY_PROPOSALS_MAX)
		return true;
	for (uint32_t i = 0; i < r->nprops; i++) {
		if (r->props[i].status != REGISTRY_PENDING) {
			memmove(&r->props[i], &r->props[i + 1], (r->nprops - i - 1) * sizeof(r->props[0]));
			r->nprops--;
			return true;
		}
	}
	return false;
}

/* Whether a table of proposals has room for one more (a finished one can give way). */
static bool has_room(const struct registry *r)
{
	if (r->nprops < REGISTRY_PROPOSALS_MAX)
		return true;
	for (uint32_t i = 0; i < r->nprops; i++)
		if (r->props[i].status != REGISTRY_PENDING)
			return true;
	return false;
}

/* The checks of a new proposal that change nothing: 0 or a code with a message. */
static int proposal_ok(const struct registry *r, const struct registry_record *g, char *err, size_t errlen)
{
	const struct registry_change *c = &g->change;
	char why[160];
	int rc;

	if (find_proposal(r, g->id)) {
		seterr(err, errlen, "the proposal is already on the ledger");
		return TD_EEXIST;
	}
	if (c->action == REGISTRY_ADD &&
	    (c->role < TD_ROLE_VALIDATOR || c->role > TD_ROLE_OBSERVER || c->name[0] == '\0')) {
		seterr(err, errlen, "a proposal to add a party needs a role and a name");
		return TD_EINVAL;
	}
	if ((rc = change_possible(r, c, why, sizeof(why))) != 0) {
		seterr(err, errlen, "a proposal to %s: %s", registry_action_name(c->action), why);
		return rc;
	}
	if (!has_room(r)) {
		seterr(err, errlen, "%d proposals are pending; one must be decided or expire first",
		       REGISTRY_PROPOSALS_MAX);
		return TD_ERULE;
	}
	return 0;
}

static int apply_proposal(struct registry *r, uint64_t h, const struct registry_record *g, char *err, size_t errlen)
{
	const struct registry_change *c = &g->change;
	int rc;

	if ((rc = proposal_ok(r, g, err, errlen)) != 0)
		return rc;
	make_room(r);
	if (r->nprops == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 4;
		r->props = td_xrealloc(r->props, r->cap * sizeof(*r->props));
	}
	struct registry_proposal *p = &r->props[r->nprops++];
	memset(p, 0, sizeof(*p));
	memcpy(p->id, g->id, TD_HASH_LEN);
	memcpy(p->author, g->author, TD_PUBKEY_LEN);
	p->change = *c;
	p->height = h;
	p->status = REGISTRY_PENDING;
	memcpy(p->approvers[p->n_approvals++], g->author, TD_PUBKEY_LEN);
	maybe_decide(r, p, h);
	return 0;
}

static int apply_approval(struct registry *r, uint64_t h, const struct registry_record *g, char *err, size_t errlen)
{
	struct registry_proposal *p = find_proposal(r, g->proposal);

	if (!p) {
		seterr(err, errlen, "no proposal with that id is on the ledger");
		return TD_ERULE;
	}
	if (p->status != REGISTRY_PENDING) {
		seterr(err, errlen, "the proposal is %s", registry_status_name(p->status));
		return TD_ERULE;
	}
	for (uint32_t i = 0; i < p->n_approvals; i++) {
		if (memcmp(p->approvers[i], g->author, TD_PUBKEY_LEN) == 0) {
			seterr(err, errlen, "this validator already approved the proposal");
			return TD_EEXIST;
		}
	}
	if (p->n_approvals >= TD_VALIDATORS_MAX) {
		seterr(err, errlen, "the proposal has %d approvals, its most", TD_VALIDATORS_MAX);
		return TD_ERULE;
	}
	memcpy(p->approvers[p->n_approvals++], g->author, TD_PUBKEY_LEN);
	maybe_decide(r, p, h);
	return 0;
}

static void expire(struct registry *r, uint64_t h)
{
	for (uint32_t i = 0; i < r->nprops; i++)
		if (r->props[i].status == REGISTRY_PENDING && h > r->props[i].height + REGISTRY_PROPOSAL_TTL)
			r->props[i].status = REGISTRY_EXPIRED;
}

void registry_advance(struct registry *r, uint64_t h)
{
	if (h <= r->height)
		return;
	expire(r, h);
	r->height = h;
}

int registry_check(const struct registry *r, uint64_t h, const struct registry_record *g, char *err, size_t errlen)
{
	const struct registry_set *s = registry_set(r, h);
	const struct registry_proposal *p;

	if (!s || h != r->height + 1) {
		seterr(err, errlen, "registry: height %llu checked after %llu", (unsigned long long)h,
		       (unsigned long long)r->height);
		return TD_EINVAL;
	}
	if (set_find(s, g->author) < 0) {
		seterr(err, errlen, "only a validator of height %llu's set may sign a governance record",
		       (unsigned long long)h);
		return TD_EPERM;
	}
	if (!g->approval)
		return proposal_ok(r, g, err, errlen);
	if (!(p = find_proposal(r, g->proposal))) {
		seterr(err, errlen, "no proposal with that id is on the ledger");
		return TD_ERULE;
	}
	if (p->status != REGISTRY_PENDING || h > p->height + REGISTRY_PROPOSAL_TTL) {
		seterr(err, errlen, "the proposal is %s",
		       registry_status_name(p->status == REGISTRY_PENDING ? REGISTRY_EXPIRED : p->status));
		return TD_ERULE;
	}
	for (uint32_t i = 0; i < p->n_approvals; i++) {
		if (memcmp(p->approvers[i], g->author, TD_PUBKEY_LEN) == 0) {
			seterr(err, errlen, "this validator already approved the proposal");
			return TD_EEXIST;
		}
	}
	return 0;
}

int registry_apply(struct registry *r, uint64_t h, const struct registry_record *recs, uint32_t n, char *err,
		   size_t errlen)
{
	char why[TD_ERRMSG_MAX];
	int rc;

	if (h != r->height + 1) {
		seterr(err, errlen, "registry: height %llu applied after %llu", (unsigned long long)h,
		       (unsigned long long)r->height);
		return TD_EINVAL;
	}
	expire(r, h);
	for (uint32_t i = 0; i < n; i++) {
		/* Fetched again for each record: a decision may grow the list of sets (a realloc). */
		const struct registry_set *s = registry_set(r, h);
		if (set_find(s, recs[i].author) < 0) {
			seterr(err, errlen, "governance record %u: only a validator of height %llu's set may sign it",
			       i, (unsigned long long)h);
			return TD_EPERM;
		}
		rc = recs[i].approval ? apply_approval(r, h, &recs[i], why, sizeof(why)) :
					apply_proposal(r, h, &recs[i], why, sizeof(why));
		if (rc != 0) {
			seterr(err, errlen, "governance record %u (%s): %s", i,
			       recs[i].approval ? "approval" : "proposal", why);
			return rc;
		}
	}
	r->height = h;
	return 0;
}
