/*
 * Unit tests of the consensus core's rules (node/consensus.c), one rule of
 * Algorithm 1 ("The latest gossip on BFT consensus") at a time: events are
 * fed by hand and the queued actions are checked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "consensus.h"

#define MAXA 64

struct acts {
	struct cons_action a[MAXA];
	int n;
};

static void drain(struct cons *c, struct acts *o)
{
	o->n = 0;
	while (o->n < MAXA && cons_next_action(c, &o->a[o->n]))
		o->n++;
	struct cons_action extra;
	assert_false(cons_next_action(c, &extra));
}

/* The sub-kind is vote type for VOTE, timeout kind for TIMEOUT, ignored otherwise (-1: any). */
static const struct cons_action *find(const struct acts *o, enum cons_action_kind kind, int sub)
{
	for (int i = 0; i < o->n; i++) {
		const struct cons_action *a = &o->a[i];
		if (a->kind != kind)
			continue;
		if (sub >= 0 && kind == CONS_ACT_VOTE && (int)a->vote_type != sub)
			continue;
		if (sub >= 0 && kind == CONS_ACT_TIMEOUT && (int)a->timeout != sub)
			continue;
		return a;
	}
	return NULL;
}

static int count_broadcasts(const struct acts *o)
{
	int k = 0;
	for (int i = 0; i < o->n; i++)
		k += o->a[i].kind == CONS_ACT_VOTE || o->a[i].kind == CONS_ACT_PROPOSAL;
	return k;
}

static void val(uint8_t v[TD_HASH_LEN], uint8_t tag)
{
	memset(v, tag, TD_HASH_LEN);
}

/* Answers every VALIDATE in o with ok and appends the resulting actions to o. */
static void answer_validity(struct cons *c, struct acts *o, bool ok)
{
	int n = o->n;
	for (int i = 0; i < n; i++) {
		if (o->a[i].kind != CONS_ACT_VALIDATE)
			continue;
		assert_int_equal(cons_on_validity(c, o->a[i].value, ok), 0);
		struct acts more;
		drain(c, &more);
		for (int k = 0; k < more.n && o->n < MAXA; k++)
			o->a[o->n++] = more.a[k];
	}
}

static void prevote(struct cons *c, uint32_t from, uint64_t h, uint32_t r, const uint8_t *v)
{
	assert_int_equal(cons_on_vote(c, from, TD_VOTE_PREVOTE, h, r, v), 0);
}

static void precommit(struct cons *c, uint32_t from, uint64_t h, uint32_t r, const uint8_t *v)
{
	assert_int_equal(cons_on_vote(c, from, TD_VOTE_PRECOMMIT, h, r, v), 0);
}

static void test_proposer_schedule(void **state)
{
	(void)state;
	struct cons c;
	assert_int_equal(cons_init(&c, 4, 0, 1, NULL, NULL), 0);
	assert_int_equal(cons_proposer(&c, 0, 0), 0);
	assert_int_equal(cons_proposer(&c, 1, 0), 1);
	assert_int_equal(cons_proposer(&c, 1, 3), 0);
	assert_int_equal(cons_proposer(&c, 7, 2), 1);
	/* no overflow at the edges: (h + r) mod n */
	assert_int_equal(cons_proposer(&c, UINT64_MAX, 1), (uint32_t)(((UINT64_MAX % 4) + 1) % 4));
	assert_int_equal(cons_proposer(&c, UINT64_MAX, UINT32_MAX), (uint32_t)((UINT64_MAX % 4 + UINT32_MAX % 4) % 4));
	cons_free(&c);

	/* the proposer asks for a value (line 18), the others schedule timeoutPropose (line 21) */
	struct acts o;
	assert_int_equal(cons_init(&c, 4, 1, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	drain(&c, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.a[0].kind, CONS_ACT_REQUEST_VALUE);
	assert_int_equal(o.a[0].height, 1);
	assert_int_equal(o.a[0].round, 0);
	uint8_t v[TD_HASH_LEN];
	val(v, 0x11);
	assert_int_equal(cons_on_value(&c, 1, 0, v), 0);
	drain(&c, &o);
	const struct cons_action *p = find(&o, CONS_ACT_PROPOSAL, -1);
	assert_non_null(p);
	assert_memory_equal(p->value, v, TD_HASH_LEN);
	assert_int_equal(p->valid_round, -1);
	/* its own proposal is valid without asking: it prevotes it at once (line 24) */
	const struct cons_action *pv = find(&o, CONS_ACT_VOTE, TD_VOTE_PREVOTE);
	assert_non_null(pv);
	assert_false(pv->nil);
	assert_memory_equal(pv->value, v, TD_HASH_LEN);
	assert_null(find(&o, CONS_ACT_VALIDATE, -1));
	/* a late second answer is ignored */
	assert_int_equal(cons_on_value(&c, 1, 0, v), 0);
	drain(&c, &o);
	assert_int_equal(o.n, 0);
	cons_free(&c);

	assert_int_equal(cons_init(&c, 4, 0, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	drain(&c, &o);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.a[0].kind, CONS_ACT_TIMEOUT);
	assert_int_equal(o.a[0].timeout, CONS_TIMEOUT_PROPOSE);
	cons_free(&c);
}

/* Validator 0 of 4 at height 1 (proposer 1) receives proposal v and prevotes it. */
static void setup_prevoted(struct cons *c, const uint8_t *v)
{
	struct acts o;
	assert_int_equal(cons_init(c, 4, 0, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(c, 1), 0);
	drain(c, &o);
	assert_int_equal(cons_on_proposal(c, 1, 1, 0, v, -1), 0);
	drain(c, &o);
	assert_non_null(find(&o, CONS_ACT_VALIDATE, -1));
	assert_null(find(&o, CONS_ACT_VOTE, -1)); /* waits for valid(v) */
	answer_validity(c, &o, true);
	const struct cons_action *pv = find(&o, CONS_ACT_VOTE, TD_VOTE_PREVOTE);
	assert_non_null(pv);
	assert_false(pv->nil);
	assert_memory_equal(pv->value, v, TD_HASH_LEN);
	assert_int_equal(cons_step(c), CONS_STEP_PREVOTE);
}

static void test_polka_locks_and_precommits(void **state)
{
	(void)state;
	struct cons c;
	struct acts o;
	uint8_t v[TD_HASH_LEN], got[TD_HASH_LEN];
	val(v, 0xa1);
	setup_prevoted(&c, v);
	assert_int_equal(cons_locked(&c, NULL), -1);
	prevote(&c, 1, 1, 0, v);
	drain(&c, &o);
	assert_null(find(&o, CONS_ACT_VOTE, TD_VOTE_PRECOMMIT)); /* 2 of 4: no polka yet */
	prevote(&c, 2, 1, 0, v);
	drain(&c, &o);
	/* lines 36-41: lock v in round 0 and precommit it */
	const struct cons_action *pc = find(&o, CONS_ACT_VOTE, TD_VOTE_PRECOMMIT);
	assert_non_null(pc);
	assert_false(pc->nil);
	assert_memory_equal(pc->value, v, TD_HASH_LEN);
	assert_int_equal(cons_locked(&c, got), 0);
	assert_memory_equal(got, v, TD_HASH_LEN);
	assert_int_equal(cons_valid(&c, got), 0);
	assert_int_equal(cons_step(&c), CONS_STEP_PRECOMMIT);
	/* the sign state recorded the precommit and the lock before the action was queued */
	const struct cons_sign_state *ss = cons_sign_state(&c);
	assert_true(ss->any);
	assert_int_equal(ss->height, 1);
	assert_int_equal(ss->round, 0);
	assert_int_equal(ss->step, CONS_STEP_PRECOMMIT);
	assert_true(ss->locked.set);
	assert_memory_equal(ss->locked.value, v, TD_HASH_LEN);
	/* a fourth prevote changes nothing */
	prevote(&c, 3, 1, 0, v);
	drain(&c, &o);
	assert_int_equal(count_broadcasts(&o), 0);
	cons_free(&c);
}

static void test_lock_blocks_other_value(void **state)
{
	(void)state;
	struct cons c;
	struct acts o;
	uint8_t v[TD_HASH_LEN], w[TD_HASH_LEN];
	val(v, 0xa1);
	val(w, 0xb2);
	setup_prevoted(&c, v);
	prevote(&c, 1, 1, 0, v);
	prevote(&c, 2, 1, 0, v);
	drain(&c, &o); /* locked on v in round 0 */
	precommit(&c, 1, 1, 0, NULL);
	drain(&c, &o);
	assert_null(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PRECOMMIT));
	precommit(&c, 2, 1, 0, NULL);
	drain(&c, &o);
	/* line 47: 2f+1 precommits of any kind schedule timeoutPrecommit */
	const struct cons_action *t = find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PRECOMMIT);
	assert_non_null(t);
	assert_int_equal(t->round, 0);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PRECOMMIT, 1, 0), 0);
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 1); /* line 67 */

	/* round 1, proposer 2 proposes w fresh: the lock on v makes us prevote nil (line 26) */
	assert_int_equal(cons_on_proposal(&c, 2, 1, 1, w, -1), 0);
	drain(&c, &o);
	answer_validity(&c, &o, true);
	const struct cons_action *pv = find(&o, CONS_ACT_VOTE, TD_VOTE_PREVOTE);
	assert_non_null(pv);
	assert_true(pv->nil);
	assert_int_equal(pv->round, 1);

	/* round 1 gets a polka for w although we prevoted nil */
	prevote(&c, 1, 1, 1, w);
	prevote(&c, 2, 1, 1, w);
	prevote(&c, 3, 1, 1, w);
	drain(&c, &o);
	const struct cons_action *pc = find(&o, CONS_ACT_VOTE, TD_VOTE_PRECOMMIT);
	/* line 36 fires in step prevote: we lock w in round 1 (we saw the polka) */
	assert_non_null(pc);
	assert_false(pc->nil);
	assert_memory_equal(pc->value, w, TD_HASH_LEN);
	assert_int_equal(cons_locked(&c, NULL), 1);
	cons_free(&c);
}

static void test_unlock_with_later_polka(void **state)
{
	(void)state;
	struct cons c;
	struct acts o;
	uint8_t v[TD_HASH_LEN], w[TD_HASH_LEN];
	val(v, 0xa1);
	val(w, 0xb2);
	setup_prevoted(&c, v);
	prevote(&c, 1, 1, 0, v);
	prevote(&c, 2, 1, 0, v);
	precommit(&c, 1, 1, 0, NULL);
	precommit(&c, 2, 1, 0, NULL);
	drain(&c, &o);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PRECOMMIT, 1, 0), 0);
	drain(&c, &o);
	/* round 1: we never see its proposal; others prevote w (we miss the polka's proposal) */
	prevote(&c, 1, 1, 1, w);
	prevote(&c, 2, 1, 1, w);
	prevote(&c, 3, 1, 1, w);
	drain(&c, &o);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PROPOSE, 1, 1), 0);
	drain(&c, &o);
	assert_true(find(&o, CONS_ACT_VOTE, TD_VOTE_PREVOTE)->nil);
	precommit(&c, 1, 1, 1, NULL);
	precommit(&c, 2, 1, 1, NULL);
	drain(&c, &o);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PREVOTE, 1, 1), 0);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PRECOMMIT, 1, 1), 0);
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 2);
	assert_int_equal(cons_locked(&c, NULL), 0);
	/* round 2: proposer 3 re-proposes w with valid round 1; lockedRound 0 <= 1: prevote w (lines 28-30) */
	assert_int_equal(cons_on_proposal(&c, 3, 1, 2, w, 1), 0);
	drain(&c, &o);
	answer_validity(&c, &o, true);
	const struct cons_action *pv = find(&o, CONS_ACT_VOTE, TD_VOTE_PREVOTE);
	assert_non_null(pv);
	assert_false(pv->nil);
	assert_memory_equal(pv->value, w, TD_HASH_LEN);
	cons_free(&c);

	/* the same proposal claiming valid round 1 without a polka there is not accepted: timeout, nil */
	uint8_t x[TD_HASH_LEN];
	val(x, 0xc3);
	assert_int_equal(cons_init(&c, 4, 0, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	prevote(&c, 1, 1, 2, NULL);
	prevote(&c, 2, 1, 2, NULL); /* f+1 in round 2: skip there */
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 2);
	assert_int_equal(cons_on_proposal(&c, 3, 1, 2, x, 1), 0);
	drain(&c, &o);
	answer_validity(&c, &o, true);
	assert_null(find(&o, CONS_ACT_VOTE, -1));
	cons_free(&c);
}

static void test_timeout_propose_prevotes_nil(void **state)
{
	(void)state;
	struct cons c;
	struct acts o;
	assert_int_equal(cons_init(&c, 4, 0, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	drain(&c, &o);
	/* stale or foreign timeouts do nothing */
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PROPOSE, 1, 1), 0);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PROPOSE, 2, 0), 0);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PREVOTE, 1, 0), 0);
	drain(&c, &o);
	assert_int_equal(o.n, 0);
	assert_int_equal(cons_step(&c), CONS_STEP_PROPOSE);
	/* lines 57-60 */
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PROPOSE, 1, 0), 0);
	drain(&c, &o);
	const struct cons_action *pv = find(&o, CONS_ACT_VOTE, TD_VOTE_PREVOTE);
	assert_non_null(pv);
	assert_true(pv->nil);
	assert_int_equal(cons_step(&c), CONS_STEP_PREVOTE);
	/* line 34: 2f+1 prevotes of any kind schedule timeoutPrevote, once */
	uint8_t v[TD_HASH_LEN];
	val(v, 0x44);
	prevote(&c, 1, 1, 0, v);
	drain(&c, &o);
	assert_null(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PREVOTE));
	prevote(&c, 2, 1, 0, NULL);
	drain(&c, &o);
	assert_non_null(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PREVOTE));
	prevote(&c, 3, 1, 0, NULL);
	drain(&c, &o);
	/* line 44: 2f+1 nil prevotes: precommit nil */
	const struct cons_action *pc = find(&o, CONS_ACT_VOTE, TD_VOTE_PRECOMMIT);
	assert_non_null(pc);
	assert_true(pc->nil);
	assert_null(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PREVOTE));
	/* the proposer of round 0 missed its proposal once the round ends */
	precommit(&c, 1, 1, 0, NULL);
	drain(&c, &o);
	assert_int_equal(cons_missed_proposals(&c, 1), 0);
	assert_int_equal(cons_round(&c), 0);
	/*
	 * 2f+1 nil precommits (ours, 1 and 2): no value can commit in round 0, so
	 * round 1 starts without waiting for timeoutPrecommit
	 */
	precommit(&c, 2, 1, 0, NULL);
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 1);
	assert_int_equal(cons_step(&c), CONS_STEP_PROPOSE);
	assert_null(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PRECOMMIT));
	assert_non_null(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PROPOSE));
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PRECOMMIT, 1, 0), 0); /* stale now */
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 1);
	assert_int_equal(cons_missed_proposals(&c, 1), 1);
	assert_int_equal(cons_missed_proposals(&c, 0), 0);
	assert_int_equal(cons_missed_proposals(&c, 99), 0);
	cons_free(&c);
}

static void test_timeout_prevote_precommits_nil(void **state)
{
	(void)state;
	struct cons c;
	struct acts o;
	uint8_t v[TD_HASH_LEN], w[TD_HASH_LEN];
	val(v, 0x51);
	val(w, 0x52);
	setup_prevoted(&c, v);
	prevote(&c, 1, 1, 0, w);
	prevote(&c, 2, 1, 0, NULL);
	drain(&c, &o);
	assert_non_null(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PREVOTE));
	assert_null(find(&o, CONS_ACT_VOTE, TD_VOTE_PRECOMMIT));
	/* lines 61-64 */
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PREVOTE, 1, 0), 0);
	drain(&c, &o);
	const struct cons_action *pc = find(&o, CONS_ACT_VOTE, TD_VOTE_PRECOMMIT);
	assert_non_null(pc);
	assert_true(pc->nil);
	assert_int_equal(cons_locked(&c, NULL), -1);
	cons_free(&c);
}

static void test_round_skip(void **state)
{
	(void)state;
	struct cons c;
	struct acts o;
	uint8_t v[TD_HASH_LEN];
	val(v, 0x61);
	assert_int_equal(cons_init(&c, 4, 0, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	drain(&c, &o);
	/* one message from round 5 is not enough (f+1 = 2) */
	prevote(&c, 2, 1, 5, v);
	prevote(&c, 2, 1, 5, v); /* a duplicate is still one sender */
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 0);
	/* a second sender, here with a precommit: line 55, StartRound(5) */
	precommit(&c, 3, 1, 5, NULL);
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 5);
	assert_int_equal(cons_step(&c), CONS_STEP_PROPOSE);
	/* proposer(1, 5) = 2 is someone else: timeoutPropose(5) = 1000 + 5 * 500 */
	const struct cons_action *t = find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PROPOSE);
	assert_non_null(t);
	assert_int_equal(t->round, 5);
	assert_int_equal(t->duration_ms, 3500);
	/* messages from lower rounds never move us back */
	prevote(&c, 1, 1, 3, v);
	prevote(&c, 2, 1, 3, v);
	prevote(&c, 3, 1, 3, v);
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 5);
	cons_free(&c);

	/* n = 7: f + 1 = 3 senders needed */
	assert_int_equal(cons_init(&c, 7, 0, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	prevote(&c, 1, 1, 2, v);
	assert_int_equal(cons_on_proposal(&c, cons_proposer(&c, 1, 2), 1, 2, v, -1), 0);
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 0);
	precommit(&c, 5, 1, 2, v);
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 2);
	cons_free(&c);
}

static void test_decide_later_round(void **state)
{
	(void)state;
	struct cons c;
	struct acts o;
	uint8_t v[TD_HASH_LEN];
	val(v, 0x71);
	assert_int_equal(cons_init(&c, 4, 0, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	drain(&c, &o);
	/* precommits of round 3 arrive while we are in round 0 (they also make us skip) */
	precommit(&c, 1, 1, 3, v);
	precommit(&c, 2, 1, 3, v);
	precommit(&c, 3, 1, 3, v);
	drain(&c, &o);
	assert_null(find(&o, CONS_ACT_DECIDE, -1)); /* no proposal yet */
	assert_int_equal(cons_round(&c), 3);
	/* the proposal of round 3 from proposer(1, 3) = 0... which is us: use round 4 instead */
	cons_free(&c);

	/* validator 3 in round 0 gets round 3's precommits and proposal (proposer(1, 3) = 0) */
	assert_int_equal(cons_init(&c, 4, 3, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	drain(&c, &o);
	precommit(&c, 0, 1, 3, v);
	precommit(&c, 1, 1, 3, v);
	precommit(&c, 2, 1, 3, v);
	drain(&c, &o);
	assert_null(find(&o, CONS_ACT_DECIDE, -1));
	assert_int_equal(cons_on_proposal(&c, 0, 1, 3, v, -1), 0);
	drain(&c, &o);
	assert_null(find(&o, CONS_ACT_DECIDE, -1)); /* line 50: waits for valid(v) */
	answer_validity(&c, &o, true);
	/* line 49: proposal + 2f+1 precommits of round 3 */
	const struct cons_action *d = find(&o, CONS_ACT_DECIDE, -1);
	assert_non_null(d);
	assert_int_equal(d->height, 1);
	assert_int_equal(d->round, 3);
	assert_memory_equal(d->value, v, TD_HASH_LEN);
	assert_int_equal(d->n_signers, 3);
	assert_int_equal(d->signers[0], 0);
	assert_int_equal(d->signers[1], 1);
	assert_int_equal(d->signers[2], 2);
	/* then height 2, idle until cons_start(2) */
	assert_int_equal(cons_height(&c), 2);
	assert_false(cons_started(&c));
	assert_int_equal(cons_start(&c, 1), TD_EINVAL);
	assert_int_equal(cons_start(&c, 2), 0);
	assert_int_equal(cons_start(&c, 2), TD_EINVAL);
	assert_int_equal(cons_round(&c), 0);
	cons_free(&c);

	/* and from an earlier round: in round 3, round 0's proposal and precommits decide */
	assert_int_equal(cons_init(&c, 4, 3, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	prevote(&c, 0, 1, 3, NULL);
	prevote(&c, 1, 1, 3, NULL);
	drain(&c, &o);
	assert_int_equal(cons_round(&c), 3);
	assert_int_equal(cons_on_proposal(&c, 1, 1, 0, v, -1), 0);
	precommit(&c, 0, 1, 0, v);
	precommit(&c, 1, 1, 0, v);
	drain(&c, &o);
	answer_validity(&c, &o, true);
	assert_null(find(&o, CONS_ACT_DECIDE, -1));
	precommit(&c, 2, 1, 0, v);
	drain(&c, &o);
	d = find(&o, CONS_ACT_DECIDE, -1);
	assert_non_null(d);
	assert_int_equal(d->round, 0);
	cons_free(&c);

	/* an invalid value is never decided */
	assert_int_equal(cons_init(&c, 4, 3, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	assert_int_equal(cons_on_proposal(&c, 1, 1, 0, v, -1), 0);
	precommit(&c, 0, 1, 0, v);
	precommit(&c, 1, 1, 0, v);
	precommit(&c, 2, 1, 0, v);
	drain(&c, &o);
	answer_validity(&c, &o, false);
	assert_null(find(&o, CONS_ACT_DECIDE, -1));
	assert_int_equal(cons_height(&c), 1);
	cons_free(&c);
}

static void test_equivocation(void **state)
{
	(void)state;
	struct cons c;
	struct acts o;
	uint8_t v[TD_HASH_LEN], w[TD_HASH_LEN], x[TD_HASH_LEN];
	val(v, 0x81);
	val(w, 0x82);
	val(x, 0x83);
	/* validator 3 of 4 prevotes the proposal v of validator 1 */
	assert_int_equal(cons_init(&c, 4, 3, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	assert_int_equal(cons_on_proposal(&c, 1, 1, 0, v, -1), 0);
	drain(&c, &o);
	answer_validity(&c, &o, true);
	assert_non_null(find(&o, CONS_ACT_VOTE, TD_VOTE_PREVOTE));
	/* validator 1 prevotes v, then w, then x, then v again */
	prevote(&c, 1, 1, 0, v);
	assert_int_equal(cons_on_vote(&c, 1, TD_VOTE_PREVOTE, 1, 0, w), TD_ERULE);
	assert_int_equal(cons_on_vote(&c, 1, TD_VOTE_PREVOTE, 1, 0, x), TD_ERULE);
	prevote(&c, 1, 1, 0, v);
	assert_int_equal(cons_on_vote(&c, 1, TD_VOTE_PREVOTE, 1, 0, NULL), TD_ERULE);
	drain(&c, &o);
	/* recorded once, with the counted vote first */
	uint32_t ne;
	const struct cons_evidence *ev = cons_evidence(&c, &ne);
	assert_int_equal(ne, 1);
	assert_int_equal(ev[0].validator, 1);
	assert_int_equal(ev[0].height, 1);
	assert_int_equal(ev[0].round, 0);
	assert_int_equal(ev[0].kind, CONS_STEP_PREVOTE);
	assert_false(ev[0].nil_a);
	assert_memory_equal(ev[0].a, v, TD_HASH_LEN);
	assert_memory_equal(ev[0].b, w, TD_HASH_LEN);
	/* not double counted: validator 1 and us are 2 senders, v has 2 votes, no timeout, no polka */
	assert_null(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PREVOTE));
	assert_null(find(&o, CONS_ACT_VOTE, TD_VOTE_PRECOMMIT));
	/* a third validator's vote makes the polka (3 distinct for v) */
	prevote(&c, 2, 1, 0, v);
	drain(&c, &o);
	const struct cons_action *pc = find(&o, CONS_ACT_VOTE, TD_VOTE_PRECOMMIT);
	assert_non_null(pc);
	assert_memory_equal(pc->value, v, TD_HASH_LEN);
	cons_evidence_clear(&c);
	cons_evidence(&c, &ne);
	assert_int_equal(ne, 0);

	/* equivocating precommits: one evidence, counted once in the 2f+1 of any kind */
	precommit(&c, 0, 1, 0, w);
	assert_int_equal(cons_on_vote(&c, 0, TD_VOTE_PRECOMMIT, 1, 0, x), TD_ERULE);
	drain(&c, &o);
	assert_null(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PRECOMMIT)); /* us + 0: two senders */
	cons_evidence(&c, &ne);
	assert_int_equal(ne, 1);

	/* conflicting proposals from the proposer are evidence too */
	assert_int_equal(cons_on_proposal(&c, 1, 1, 0, w, -1), TD_ERULE);
	ev = cons_evidence(&c, &ne);
	assert_int_equal(ne, 2);
	assert_int_equal(ev[1].kind, CONS_STEP_PROPOSE);
	assert_int_equal(ev[1].validator, 1);
	cons_free(&c);
}

static void test_double_sign_guard(void **state)
{
	(void)state;
	struct cons c;
	struct acts o;
	uint8_t v[TD_HASH_LEN], w[TD_HASH_LEN];
	val(v, 0x91);
	val(w, 0x92);
	setup_prevoted(&c, v);
	prevote(&c, 1, 1, 0, v);
	prevote(&c, 2, 1, 0, v);
	drain(&c, &o); /* precommit v, locked */
	struct cons_sign_state ss = *cons_sign_state(&c);
	cons_free(&c);

	/* restart with the persisted sign state: same height, round 0, after the precommit */
	assert_int_equal(cons_init(&c, 4, 0, 1, NULL, &ss), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	drain(&c, &o);
	/* it re-sends exactly what it signed, flagged, and nothing else */
	assert_int_equal(count_broadcasts(&o), 2);
	for (int i = 0; i < o.n; i++) {
		if (o.a[i].kind != CONS_ACT_VOTE)
			continue;
		assert_true(o.a[i].resend);
		assert_false(o.a[i].nil);
		assert_memory_equal(o.a[i].value, v, TD_HASH_LEN);
		assert_int_equal(o.a[i].round, 0);
	}
	assert_int_equal(cons_round(&c), 0);
	assert_int_equal(cons_step(&c), CONS_STEP_PRECOMMIT);
	assert_int_equal(cons_locked(&c, NULL), 0); /* the lock survived */
	/* nothing new for steps already signed: proposal w, timeouts, polka for w */
	assert_int_equal(cons_on_proposal(&c, 1, 1, 0, w, -1), 0);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PROPOSE, 1, 0), 0);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PREVOTE, 1, 0), 0);
	prevote(&c, 1, 1, 0, w);
	prevote(&c, 2, 1, 0, w);
	prevote(&c, 3, 1, 0, w);
	drain(&c, &o);
	answer_validity(&c, &o, true);
	assert_int_equal(count_broadcasts(&o), 0);
	/* in round 1 the lock (restored from the precommit) still holds: w gets nil */
	precommit(&c, 1, 1, 0, NULL);
	precommit(&c, 2, 1, 0, NULL);
	drain(&c, &o);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PRECOMMIT, 1, 0), 0);
	assert_int_equal(cons_on_proposal(&c, 2, 1, 1, w, -1), 0);
	drain(&c, &o);
	answer_validity(&c, &o, true);
	const struct cons_action *pv = find(&o, CONS_ACT_VOTE, TD_VOTE_PREVOTE);
	assert_non_null(pv);
	assert_false(pv->resend);
	assert_true(pv->nil);
	cons_free(&c);

	/* a sign state from a later height: this validator signs nothing at height 1 */
	memset(&ss, 0, sizeof(ss));
	ss.any = true;
	ss.height = 5;
	ss.step = CONS_STEP_PREVOTE;
	assert_int_equal(cons_init(&c, 4, 1, 1, NULL, &ss), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	drain(&c, &o);
	assert_null(find(&o, CONS_ACT_REQUEST_VALUE, -1)); /* proposer of (1, 0) but may not sign */
	assert_non_null(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PROPOSE));
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PROPOSE, 1, 0), 0);
	drain(&c, &o);
	assert_int_equal(count_broadcasts(&o), 0);
	assert_int_equal(cons_step(&c), CONS_STEP_PREVOTE);
	cons_free(&c);

	/* a non-validator never signs */
	assert_int_equal(cons_init(&c, 4, -1, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PROPOSE, 1, 0), 0);
	drain(&c, &o);
	assert_int_equal(count_broadcasts(&o), 0);
	assert_false(cons_sign_state(&c)->any);
	cons_free(&c);
}

static void test_timeouts(void **state)
{
	(void)state;
	struct cons_config cfg;
	cons_config_default(&cfg);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PROPOSE, 0), 1000);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PROPOSE, 1), 1500);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PROPOSE, 7), 4500);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PROPOSE, 8), 5000);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PROPOSE, 9), 5000);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PROPOSE, UINT32_MAX), 5000);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PREVOTE, 0), 500);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PREVOTE, 4), 1500);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PREVOTE, 10), 3000);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PRECOMMIT, 2), 1000);
	assert_int_equal(cons_timeout_ms(&cfg, CONS_TIMEOUT_PRECOMMIT, 1000), 3000);

	/* configurable, and used by the core per round; reset at a new height */
	cfg.propose_base = 100;
	cfg.propose_delta = 10;
	cfg.propose_max = 125;
	struct cons c;
	struct acts o;
	assert_int_equal(cons_init(&c, 4, 0, 1, &cfg, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	drain(&c, &o);
	assert_int_equal(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PROPOSE)->duration_ms, 100);
	uint32_t expect[] = {0, 110, 120, 125, 125};
	uint8_t x[TD_HASH_LEN];
	val(x, 0x55);
	for (uint32_t r = 1; r <= 4; r++) {
		/* walk through round r-1 by timeouts (one precommit for x: no nil quorum) */
		assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PROPOSE, 1, r - 1), 0);
		prevote(&c, 1, 1, r - 1, NULL);
		prevote(&c, 2, 1, r - 1, NULL);
		precommit(&c, 1, 1, r - 1, NULL);
		precommit(&c, 2, 1, r - 1, x);
		drain(&c, &o);
		const struct cons_action *t = find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PRECOMMIT);
		assert_non_null(t);
		assert_int_equal(t->duration_ms, cons_timeout_ms(&cfg, CONS_TIMEOUT_PRECOMMIT, r - 1));
		assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PRECOMMIT, 1, r - 1), 0);
		drain(&c, &o);
		assert_int_equal(cons_round(&c), r);
		t = find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PROPOSE);
		if (cons_proposer(&c, 1, r) == 0) {
			assert_non_null(find(&o, CONS_ACT_REQUEST_VALUE, -1));
			continue;
		}
		assert_non_null(t);
		assert_int_equal(t->duration_ms, expect[r]);
	}
	/* decide in round 4 (we are validator 0, proposer(1, 4) = 1) */
	uint8_t v[TD_HASH_LEN];
	val(v, 0x99);
	assert_int_equal(cons_on_proposal(&c, 1, 1, 4, v, -1), 0);
	precommit(&c, 1, 1, 4, v);
	precommit(&c, 2, 1, 4, v);
	precommit(&c, 3, 1, 4, v);
	drain(&c, &o);
	answer_validity(&c, &o, true);
	assert_non_null(find(&o, CONS_ACT_DECIDE, -1));
	assert_int_equal(cons_start(&c, 2), 0);
	drain(&c, &o);
	assert_int_equal(find(&o, CONS_ACT_TIMEOUT, CONS_TIMEOUT_PROPOSE)->duration_ms, 100);
	cons_free(&c);
}

static void test_next_height_buffered(void **state)
{
	(void)state;
	struct cons c;
	struct acts o;
	uint8_t v[TD_HASH_LEN], w[TD_HASH_LEN];
	val(v, 0xd1);
	val(w, 0xd2);
	assert_int_equal(cons_init(&c, 4, 3, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	/* height 2 arrives early: proposal from proposer(2, 0) = 2, and prevotes */
	assert_int_equal(cons_on_proposal(&c, 2, 2, 0, w, -1), 0);
	prevote(&c, 0, 2, 0, w);
	prevote(&c, 1, 2, 0, w);
	/* height 4 is dropped, height 0 ignored */
	prevote(&c, 1, 4, 0, w);
	prevote(&c, 1, 0, 0, w);
	drain(&c, &o);
	assert_null(find(&o, CONS_ACT_VOTE, -1));
	/* decide height 1 */
	assert_int_equal(cons_on_proposal(&c, 1, 1, 0, v, -1), 0);
	precommit(&c, 0, 1, 0, v);
	precommit(&c, 1, 1, 0, v);
	precommit(&c, 2, 1, 0, v);
	drain(&c, &o);
	answer_validity(&c, &o, true);
	assert_non_null(find(&o, CONS_ACT_DECIDE, -1));
	/* the buffered proposal is being validated; start height 2 */
	const struct cons_action *va = NULL;
	for (int i = 0; i < o.n; i++)
		if (o.a[i].kind == CONS_ACT_VALIDATE && memcmp(o.a[i].value, w, TD_HASH_LEN) == 0)
			va = &o.a[i];
	assert_non_null(va);
	assert_int_equal(cons_start(&c, 2), 0);
	drain(&c, &o);
	assert_null(find(&o, CONS_ACT_VOTE, -1));
	assert_int_equal(cons_on_validity(&c, w, true), 0);
	drain(&c, &o);
	/* we prevote w, and with the buffered prevotes reach a polka: precommit w */
	const struct cons_action *pv = find(&o, CONS_ACT_VOTE, TD_VOTE_PREVOTE);
	assert_non_null(pv);
	assert_memory_equal(pv->value, w, TD_HASH_LEN);
	const struct cons_action *pc = find(&o, CONS_ACT_VOTE, TD_VOTE_PRECOMMIT);
	assert_non_null(pc);
	assert_memory_equal(pc->value, w, TD_HASH_LEN);
	cons_free(&c);

	/* per-sender cap on buffered messages: a flood from one sender keeps only the first few */
	assert_int_equal(cons_init(&c, 4, 3, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	for (uint32_t r = 0; r < 100; r++)
		prevote(&c, 1, 2, r, w);
	assert_int_equal(c.nbuf, CONS_BUFFER_PER_VALIDATOR);
	cons_free(&c);
}

static void test_bad_input(void **state)
{
	(void)state;
	struct cons c;
	uint8_t v[TD_HASH_LEN];
	val(v, 0xe1);
	assert_int_equal(cons_init(&c, 0, 0, 1, NULL, NULL), TD_EINVAL);
	assert_int_equal(cons_init(&c, 4, 4, 1, NULL, NULL), TD_EINVAL);
	assert_int_equal(cons_init(&c, 4, -2, 1, NULL, NULL), TD_EINVAL);
	assert_int_equal(cons_init(&c, TD_VALIDATORS_MAX + 1, 0, 1, NULL, NULL), TD_EINVAL);
	cons_free(&c); /* a failed init leaves nothing to free */
	assert_int_equal(cons_init(&c, TD_VALIDATORS_MAX, 0, 1, NULL, NULL), 0);
	cons_free(&c);
	assert_int_equal(cons_init(&c, 4, 0, 1, NULL, NULL), 0);
	assert_int_equal(cons_start(&c, 1), 0);
	assert_int_equal(cons_on_vote(&c, 4, TD_VOTE_PREVOTE, 1, 0, v), TD_EINVAL);
	assert_int_equal(cons_on_vote(&c, 1, (enum td_vote_type)7, 1, 0, v), TD_EINVAL);
	assert_int_equal(cons_on_vote(&c, 1, TD_VOTE_PREVOTE, 1, CONS_ROUND_MAX + 1, v), TD_EINVAL);
	assert_int_equal(cons_on_proposal(&c, 2, 1, 0, v, -1), TD_EPERM); /* proposer is 1 */
	assert_int_equal(cons_on_proposal(&c, 1, 1, 0, v, 0), TD_EINVAL); /* valid round >= round */
	assert_int_equal(cons_on_proposal(&c, 1, 1, 0, v, -2), TD_EINVAL);
	assert_int_equal(cons_on_proposal(&c, 9, 1, 0, v, -1), TD_EINVAL);
	assert_int_equal(cons_on_timeout(&c, (enum cons_timeout)9, 1, 0), TD_EINVAL);
	/* a byzantine flood of rounds cannot take the current round's slot */
	for (uint32_t r = 1; r < 200; r++)
		prevote(&c, 2, 1, 1000 + r, v);
	assert_int_equal(cons_round(&c), 0);
	assert_int_equal(cons_on_timeout(&c, CONS_TIMEOUT_PROPOSE, 1, 0), 0);
	struct acts o;
	drain(&c, &o);
	assert_non_null(find(&o, CONS_ACT_VOTE, TD_VOTE_PREVOTE));
	prevote(&c, 1, 1, 0, NULL);
	prevote(&c, 3, 1, 0, NULL);
	drain(&c, &o);
	assert_non_null(find(&o, CONS_ACT_VOTE, TD_VOTE_PRECOMMIT));
	cons_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proposer_schedule),
		cmocka_unit_test(test_polka_locks_and_precommits),
		cmocka_unit_test(test_lock_blocks_other_value),
		cmocka_unit_test(test_unlock_with_later_polka),
		cmocka_unit_test(test_timeout_propose_prevotes_nil),
		cmocka_unit_test(test_timeout_prevote_precommits_nil),
		cmocka_unit_test(test_round_skip),
		cmocka_unit_test(test_decide_later_round),
		cmocka_unit_test(test_equivocation),
		cmocka_unit_test(test_double_sign_guard),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_next_height_buffered),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
