/*
 * Unit tests for node/registry.c: parties and validator sets changed by
 * governance records voted on chain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry.h"
#include "tenderd/types.h"

#define NV 4

struct fx {
	struct td_genesis g;
	struct registry *r;
	uint8_t key[16][TD_PUBKEY_LEN]; /* 0..3 validators, 4 member, 5 observer, 6.. newcomers */
	uint8_t next_id;
};

static void mkkey(uint8_t out[static TD_PUBKEY_LEN], int i)
{
	memset(out, 0, TD_PUBKEY_LEN);
	out[0] = (uint8_t)(0x40 + i);
	out[31] = (uint8_t)i;
}

static struct fx *fx_new(uint32_t nv)
{
	struct fx *f = calloc(1, sizeof(*f));
	for (int i = 0; i < 16; i++)
		mkkey(f->key[i], i);
	snprintf(f->g.chain_id, sizeof(f->g.chain_id), "reg-test");
	snprintf(f->g.ocid_prefix, sizeof(f->g.ocid_prefix), "ocds-test");
	f->g.n = nv;
	f->g.v = calloc(nv, sizeof(*f->g.v));
	for (uint32_t i = 0; i < nv; i++) {
		snprintf(f->g.v[i].name, sizeof(f->g.v[i].name), "validator-%u", i);
		memcpy(f->g.v[i].pk, f->key[i], TD_PUBKEY_LEN);
	}
	f->g.n_members = f->g.n_observers = 1;
	f->g.others = calloc(2, sizeof(*f->g.others));
	snprintf(f->g.others[0].name, sizeof(f->g.others[0].name), "member");
	memcpy(f->g.others[0].pk, f->key[4], TD_PUBKEY_LEN);
	snprintf(f->g.others[1].name, sizeof(f->g.others[1].name), "observer");
	memcpy(f->g.others[1].pk, f->key[5], TD_PUBKEY_LEN);
	td_genesis_seal(&f->g);
	f->r = registry_new(&f->g);
	return f;
}

static int setup4(void **state)
{
	*state = fx_new(NV);
	return 0;
}

static int setup1(void **state)
{
	*state = fx_new(1);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	registry_free(f->r);
	td_genesis_free(&f->g);
	free(f);
	return 0;
}

/* A proposal record by validator `by`; its id is fresh. */
static struct registry_record proposal(struct fx *f, int by, enum registry_action a, enum td_role role, int key,
				       int new_key)
{
	struct registry_record g = { 0 };
	g.id[0] = ++f->next_id;
	memcpy(g.author, f->key[by], TD_PUBKEY_LEN);
	g.change.action = a;
	g.change.role = role;
	snprintf(g.change.name, sizeof(g.change.name), "party-%d", key);
	memcpy(g.change.key, f->key[key], TD_PUBKEY_LEN);
	if (new_key >= 0)
		memcpy(g.change.new_key, f->key[new_key], TD_PUBKEY_LEN);
	return g;
}

static struct registry_record approval(const struct fx *f, int by, const struct registry_record *p)
{
	struct registry_record g = { .approval = true };
	g.id[0] = 0xa0;
	g.id[1] = (uint8_t)by;
	memcpy(g.author, f->key[by], TD_PUBKEY_LEN);
	memcpy(g.proposal, p->id, TD_HASH_LEN);
	return g;
}

/* Applies the next block with the n records; returns the code and checks the height moved only on success. */
static int block(struct fx *f, const struct registry_record *recs, uint32_t n)
{
	char err[TD_ERRMSG_MAX] = "";
	struct registry *c = registry_clone(f->r);
	uint64_t h = registry_height(f->r) + 1;
	int rc = registry_apply(c, h, recs, n, err, sizeof(err));
	if (rc == 0) {
		registry_free(f->r);
		f->r = c;
		assert_int_equal(registry_height(f->r), h);
	} else {
		assert_true(err[0] != '\0');
		print_message("block %llu refused: %s\n", (unsigned long long)h, err);
		registry_free(c);
		assert_int_equal(registry_height(f->r), h - 1);
	}
	return rc;
}

static void empty_blocks(struct fx *f, int k)
{
	while (k-- > 0)
		assert_int_equal(block(f, NULL, 0), 0);
}

static int set_has(const struct registry_set *s, const uint8_t pk[static TD_PUBKEY_LEN])
{
	for (uint32_t i = 0; i < s->n; i++)
		if (memcmp(s->v[i].pk, pk, TD_PUBKEY_LEN) == 0)
			return (int)i;
	return -1;
}

static void test_genesis_state(void **state)
{
	struct fx *f = *state;
	enum td_role role;
	const struct registry_set *s = registry_set(f->r, 1);

	assert_non_null(s);
	assert_int_equal(s->n, NV);
	assert_memory_equal(s->hash, f->g.validators_hash, TD_HASH_LEN);
	assert_int_equal(registry_slots(f->r), NV + 2);
	assert_int_equal(registry_find(f->r, f->key[4]), NV);
	assert_int_equal(registry_role(f->r, NV, 1, &role), 0);
	assert_int_equal(role, TD_ROLE_MEMBER);
	assert_int_equal(registry_role(f->r, NV + 1, 1, &role), 0);
	assert_int_equal(role, TD_ROLE_OBSERVER);
	assert_int_equal(registry_find(f->r, f->key[9]), -1);
	/* Known sets: up to two heights past the last applied one. */
	assert_non_null(registry_set(f->r, 2));
	assert_null(registry_set(f->r, 3));
	assert_null(registry_set(f->r, 0));
}

/* 4 -> 5: three approvals of four decide; the fifth validator signs from two heights later. */
static void test_add_validator(void **state)
{
	struct fx *f = *state;
	struct registry_record p = proposal(f, 0, REGISTRY_ADD, TD_ROLE_VALIDATOR, 6, -1), a;
	const struct registry_proposal *rp;
	enum td_role role;

	assert_int_equal(block(f, &p, 1), 0); /* h1: 1 of 4 */
	a = approval(f, 1, &p);
	assert_int_equal(block(f, &a, 1), 0); /* h2: 2 of 4 */
	rp = registry_proposal(f->r, p.id);
	assert_non_null(rp);
	assert_int_equal(rp->status, REGISTRY_PENDING);
	a = approval(f, 2, &p);
	assert_int_equal(block(f, &a, 1), 0); /* h3: 3 of 4 > 2/3 */
	rp = registry_proposal(f->r, p.id);
	assert_int_equal(rp->status, REGISTRY_DECIDED);
	assert_int_equal(rp->decided_height, 3);
	assert_int_equal(rp->effect_height, 5);
	assert_true(registry_changes_at(f->r, 5));
	assert_false(registry_changes_at(f->r, 4));
	assert_false(registry_changes_at(f->r, 1)); /* the genesis parties' start is no change */
	assert_int_equal(registry_set(f->r, 4)->n, 4);
	const struct registry_set *s5 = registry_set(f->r, 5);
	assert_int_equal(s5->n, 5);
	assert_int_equal(set_has(s5, f->key[6]), 4); /* appended: last in proposer order */
	assert_memory_not_equal(s5->hash, f->g.validators_hash, TD_HASH_LEN);
	int slot = registry_find(f->r, f->key[6]);
	assert_int_equal(slot, NV + 2);
	assert_int_equal(registry_role(f->r, (uint32_t)slot, 4, &role), -1);
	assert_int_equal(registry_role(f->r, (uint32_t)slot, 5, &role), 0);
	assert_int_equal(role, TD_ROLE_VALIDATOR);
	/* A late approval of a decided proposal is refused. */
	a = approval(f, 3, &p);
	assert_int_equal(block(f, &a, 1), TD_ERULE);
	/* From height 5 on, 4 of 5 approvals decide: three are not enough. */
	empty_blocks(f, 1);
	struct registry_record q = proposal(f, 0, REGISTRY_ADD, TD_ROLE_MEMBER, 7, -1);
	struct registry_record b[2] = { q, approval(f, 1, &q) };
	assert_int_equal(block(f, b, 2), 0);  /* h5 */
	a = approval(f, 6, &q);               /* the new validator approves */
	assert_int_equal(block(f, &a, 1), 0); /* h6: 3 of 5 */
	assert_int_equal(registry_proposal(f->r, q.id)->status, REGISTRY_PENDING);
	a = approval(f, 2, &q);
	assert_int_equal(block(f, &a, 1), 0); /* h7: 4 of 5 */
	assert_int_equal(registry_proposal(f->r, q.id)->status, REGISTRY_DECIDED);
	assert_int_equal(registry_set(f->r, 9)->n, 5); /* a member does not change the set */
	assert_int_equal(registry_role(f->r, (uint32_t)registry_find(f->r, f->key[7]), 9, &role), 0);
	assert_int_equal(role, TD_ROLE_MEMBER);
}

/* A validator voted out: the set shrinks two heights after, and its later approvals are refused. */
static void test_remove_validator(void **state)
{
	struct fx *f = *state;
	struct registry_record p = proposal(f, 0, REGISTRY_REMOVE, 0, 3, -1);
	struct registry_record b[3] = { p, approval(f, 1, &p), approval(f, 2, &p) };
	enum td_role role;

	assert_int_equal(block(f, b, 3), 0); /* h1: decided at once */
	assert_int_equal(registry_proposal(f->r, p.id)->effect_height, 3);
	assert_int_equal(registry_set(f->r, 2)->n, 4);
	assert_int_equal(registry_set(f->r, 3)->n, 3);
	assert_int_equal(set_has(registry_set(f->r, 3), f->key[3]), -1);
	assert_int_equal(registry_role(f->r, 3, 2, &role), 0);
	assert_int_equal(registry_role(f->r, 3, 3, &role), -1);
	/* At height 2 it still signs; from 3 on its records are refused. */
	struct registry_record q = proposal(f, 3, REGISTRY_ADD, TD_ROLE_OBSERVER, 8, -1);
	assert_int_equal(block(f, &q, 1), 0); /* h2 */
	struct registry_record a = approval(f, 0, &q);
	a.author[0] = f->key[3][0]; /* validator 3 signs: no longer in the set at height 3 */
	assert_int_equal(block(f, &a, 1), TD_EPERM);
	struct registry_record r = proposal(f, 3, REGISTRY_ADD, TD_ROLE_OBSERVER, 9, -1);
	assert_int_equal(block(f, &r, 1), TD_EPERM);
	/* Three validators left: removing one more is a third, refused at once. */
	struct registry_record s = proposal(f, 0, REGISTRY_REMOVE, 0, 2, -1);
	empty_blocks(f, 1);
	assert_int_equal(block(f, &s, 1), TD_ERULE);
	/* Removing the member is fine with any number of validators. */
	s = proposal(f, 0, REGISTRY_REMOVE, 0, 4, -1);
	struct registry_record c[3] = { s, approval(f, 1, &s), approval(f, 2, &s) };
	assert_int_equal(block(f, c, 3), 0);
	assert_int_equal(registry_proposal(f->r, s.id)->status, REGISTRY_DECIDED);
}

/* Two removals both pending: the second decided would leave the set too small and is rejected. */
static void test_rules_at_decision(void **state)
{
	struct fx *f = *state;
	struct registry_record p = proposal(f, 0, REGISTRY_REMOVE, 0, 3, -1);
	struct registry_record q = proposal(f, 1, REGISTRY_REMOVE, 0, 2, -1);
	struct registry_record b[2] = { p, q };
	struct registry_record c[4] = { approval(f, 1, &p), approval(f, 2, &p), approval(f, 0, &q),
					approval(f, 3, &q) };

	assert_int_equal(block(f, b, 2), 0);
	assert_int_equal(block(f, c, 4), 0);
	assert_int_equal(registry_proposal(f->r, p.id)->status, REGISTRY_DECIDED);
	const struct registry_proposal *rq = registry_proposal(f->r, q.id);
	assert_int_equal(rq->status, REGISTRY_REJECTED);
	assert_non_null(strstr(rq->reason, "a third or more"));
	assert_int_equal(registry_set(f->r, 4)->n, 3);
	/* Two proposals adding one key: the second decided is rejected. */
	struct registry_record x = proposal(f, 0, REGISTRY_ADD, TD_ROLE_MEMBER, 10, -1);
	struct registry_record y = proposal(f, 1, REGISTRY_ADD, TD_ROLE_OBSERVER, 10, -1);
	struct registry_record d[2] = { x, y };
	assert_int_equal(block(f, d, 2), 0);
	struct registry_record e[4] = { approval(f, 1, &x), approval(f, 2, &x), approval(f, 0, &y),
					approval(f, 2, &y) };
	assert_int_equal(block(f, e, 4), 0);
	assert_int_equal(registry_proposal(f->r, x.id)->status, REGISTRY_DECIDED);
	assert_int_equal(registry_proposal(f->r, y.id)->status, REGISTRY_REJECTED);
	assert_non_null(strstr(registry_proposal(f->r, y.id)->reason, "held by"));
}

/* A key replaced: same place in the set, new hash, the old key without a role from the effect on. */
static void test_replace_key(void **state)
{
	struct fx *f = *state;
	struct registry_record p = proposal(f, 1, REGISTRY_REPLACE_KEY, 0, 2, 11);
	struct registry_record b[3] = { p, approval(f, 0, &p), approval(f, 3, &p) };
	enum td_role role;

	assert_int_equal(block(f, b, 3), 0);
	const struct registry_set *s = registry_set(f->r, 3);
	assert_int_equal(s->n, 4);
	assert_int_equal(set_has(s, f->key[11]), 2);
	assert_int_equal(set_has(s, f->key[2]), -1);
	assert_string_equal(s->v[2].name, "validator-2");
	assert_memory_not_equal(s->hash, registry_set(f->r, 2)->hash, TD_HASH_LEN);
	assert_int_equal(registry_role(f->r, 2, 3, &role), -1);
	int ns = registry_find(f->r, f->key[11]);
	assert_true(ns >= 0);
	assert_int_equal(registry_role(f->r, (uint32_t)ns, 3, &role), 0);
	assert_int_equal(role, TD_ROLE_VALIDATOR);
	/* The old key cannot come back, nor can a key in use be taken. */
	struct registry_record q = proposal(f, 0, REGISTRY_ADD, TD_ROLE_MEMBER, 2, -1);
	assert_int_equal(block(f, &q, 1), TD_ERULE);
	q = proposal(f, 0, REGISTRY_REPLACE_KEY, 0, 1, 4);
	assert_int_equal(block(f, &q, 1), TD_ERULE);
}

static void test_expiry_and_refusals(void **state)
{
	struct fx *f = *state;
	struct registry_record p = proposal(f, 0, REGISTRY_ADD, TD_ROLE_MEMBER, 12, -1), a;

	assert_int_equal(block(f, &p, 1), 0); /* h1 */
	/* The same proposal twice, an unknown proposal, a double approval, a member's approval. */
	assert_int_equal(block(f, &p, 1), TD_EEXIST);
	struct registry_record ghost = proposal(f, 0, REGISTRY_ADD, TD_ROLE_MEMBER, 13, -1);
	a = approval(f, 1, &ghost);
	assert_int_equal(block(f, &a, 1), TD_ERULE);
	a = approval(f, 0, &p);
	assert_int_equal(block(f, &a, 1), TD_EEXIST);
	a = approval(f, 4, &p);
	assert_int_equal(block(f, &a, 1), TD_EPERM);
	/* A proposal by a member or to remove a stranger; one to add without a name. */
	struct registry_record m = proposal(f, 4, REGISTRY_ADD, TD_ROLE_MEMBER, 13, -1);
	assert_int_equal(block(f, &m, 1), TD_EPERM);
	m = proposal(f, 0, REGISTRY_REMOVE, 0, 14, -1);
	assert_int_equal(block(f, &m, 1), TD_ERULE);
	m = proposal(f, 0, REGISTRY_ADD, TD_ROLE_MEMBER, 13, -1);
	m.change.name[0] = '\0';
	assert_int_equal(block(f, &m, 1), TD_EINVAL);
	/* A refused record leaves a block of good records unapplied as a whole. */
	struct registry_record both[2] = { approval(f, 1, &p), ghost };
	both[1].approval = true;
	memcpy(both[1].proposal, ghost.id, TD_HASH_LEN);
	assert_int_equal(block(f, both, 2), TD_ERULE);
	assert_int_equal(registry_proposal(f->r, p.id)->n_approvals, 1);
	/* After REGISTRY_PROPOSAL_TTL heights it expires, and approvals are refused. */
	empty_blocks(f, (int)REGISTRY_PROPOSAL_TTL - 1); /* heights 2..TTL */
	assert_int_equal(registry_proposal(f->r, p.id)->status, REGISTRY_PENDING);
	struct registry *last = registry_clone(f->r);
	a = approval(f, 1, &p);
	assert_int_equal(registry_apply(last, REGISTRY_PROPOSAL_TTL + 1, &a, 1, NULL, 0), 0); /* its last height */
	registry_free(last);
	empty_blocks(f, 1);
	assert_int_equal(block(f, &a, 1), TD_ERULE);
	empty_blocks(f, 1);
	assert_int_equal(registry_proposal(f->r, p.id)->status, REGISTRY_EXPIRED);
	assert_int_equal(registry_find(f->r, f->key[12]), -1);
}

/* One validator: its proposal alone decides; it cannot remove itself. */
static void test_single_validator(void **state)
{
	struct fx *f = *state;
	struct registry_record p = proposal(f, 0, REGISTRY_ADD, TD_ROLE_VALIDATOR, 6, -1);

	assert_int_equal(block(f, &p, 1), 0);
	assert_int_equal(registry_proposal(f->r, p.id)->status, REGISTRY_DECIDED);
	assert_int_equal(registry_set(f->r, 3)->n, 2);
	struct registry_record q = proposal(f, 0, REGISTRY_REMOVE, 0, 0, -1);
	assert_int_equal(block(f, &q, 1), TD_ERULE);
}

/* Two registries fed the same blocks agree on every set; a clone is independent of its source. */
static void test_deterministic_and_clone(void **state)
{
	struct fx *f = *state, *g = fx_new(NV);
	struct registry_record p = proposal(f, 0, REGISTRY_ADD, TD_ROLE_VALIDATOR, 6, -1);
	struct registry_record b[3] = { p, approval(f, 1, &p), approval(f, 2, &p) };
	char err[TD_ERRMSG_MAX];

	struct registry *c = registry_clone(f->r);
	assert_int_equal(registry_apply(f->r, 1, b, 3, err, sizeof(err)), 0);
	assert_int_equal(registry_apply(g->r, 1, b, 3, err, sizeof(err)), 0);
	for (uint64_t h = 1; h <= 3; h++)
		assert_memory_equal(registry_set(f->r, h)->hash, registry_set(g->r, h)->hash, TD_HASH_LEN);
	assert_int_equal(registry_height(c), 0);
	assert_int_equal(registry_set(c, 2)->n, NV);
	assert_int_equal(registry_set(f->r, 3)->n, NV + 1);
	/* A height out of order is refused. */
	assert_int_equal(registry_apply(c, 2, NULL, 0, err, sizeof(err)), TD_EINVAL);
	registry_free(c);
	registry_free(g->r);
	td_genesis_free(&g->g);
	free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_genesis_state, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_add_validator, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_remove_validator, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_rules_at_decision, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_replace_key, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_and_refusals, setup4, teardown),
		cmocka_unit_test_setup_teardown(test_single_validator, setup1, teardown),
		cmocka_unit_test_setup_teardown(test_deterministic_and_clone, setup4, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
