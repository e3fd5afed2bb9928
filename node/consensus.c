/*
 * The consensus core: Tendermint, Algorithm 1 of "The latest gossip on BFT
 * consensus" (arXiv 1807.04938), as a pure state machine (see consensus.h
 * for the contracts with the node).
 *
 * Every event stores what it brings (a proposal, a vote, a validity answer,
 * a value, a timeout) and then run() evaluates the paper's "upon" rules in a
 * loop until none fires, so the order in which messages arrive never matters
 * beyond what the paper allows. Comments cite the paper's line numbers.
 *
 * Invariants:
 * - per (height, round, type) a validator counts at most once in the
 *   "2f+1 of anything" totals and at most once for any one value; a second,
 *   different vote is recorded as evidence (once) and counts only for its
 *   own value, as the paper counts messages per value (see cons_tally);
 * - every broadcast first passes the double-sign guard (sign_ok) and is
 *   recorded in c->ss before its action is queued;
 * - rules run only while started; after DECIDE the core sits at height + 1
 *   until cons_start().
 * Memory: one allocation (c->mem) for every array sized by n, plus the
 * action queue; both released by cons_free().
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consensus.h"

enum { VC_FREE = 0, VC_PENDING = 1, VC_VALID = 2, VC_INVALID = 3 };

#define VOTE_NONE ((int16_t)-2)
#define VOTE_NIL ((int16_t)-1)

/* 2f+1: more than two thirds of n. */
static uint32_t quorum(const struct cons *c)
{
	return c->n * 2 / 3 + 1;
}

/* f+1 with f = (n-1)/3: at least one correct process among them. */
static uint32_t weak_quorum(const struct cons *c)
{
	return (c->n - 1) / 3 + 1;
}

void cons_config_default(struct cons_config *cfg)
{
	cfg->propose_base = 1000;
	cfg->propose_delta = 500;
	cfg->propose_max = 5000;
	cfg->prevote_base = 500;
	cfg->prevote_delta = 250;
	cfg->prevote_max = 3000;
	cfg->precommit_base = 500;
	cfg->precommit_delta = 250;
	cfg->precommit_max = 3000;
}

static uint32_t grow(uint32_t base, uint32_t delta, uint32_t max, uint32_t r)
{
	uint64_t t = (uint64_t)base + (uint64_t)delta * r;
	return t > max ? max : (uint32_t)t;
}

uint32_t cons_timeout_ms(const struct cons_config *cfg, enum cons_timeout kind, uint32_t r)
{
	switch (kind) {
	case CONS_TIMEOUT_PROPOSE:
		return grow(cfg->propose_base, cfg->propose_delta, cfg->propose_max, r);
	case CONS_TIMEOUT_PREVOTE:
		return grow(cfg->prevote_base, cfg->prevote_delta, cfg->prevote_max, r);
	case CONS_TIMEOUT_PRECOMMIT:
		return grow(cfg->precommit_base, cfg->precommit_delta, cfg->precommit_max, r);
	}
	abort();
}

uint32_t cons_proposer(const struct cons *c, uint64_t h, uint32_t r)
{
	return (uint32_t)((h % c->n + r % c->n) % c->n);
}

/* ---- action queue ---- */

static struct cons_action *q_push(struct cons *c, enum cons_action_kind kind, uint32_t round)
{
	if (c->q_tail == c->q_cap) {
		if (c->q_head > 0) {
			memmove(c->q, c->q + c->q_head, (c->q_tail - c->q_head) * sizeof(*c->q));
			c->q_tail -= c->q_head;
			c->q_head = 0;
		} else {
			c->q_cap = c->q_cap ? c->q_cap * 2 : 16;
			c->q = td_xrealloc(c->q, c->q_cap * sizeof(*c->q));
		}
	}
	struct cons_action *a = &c->q[c->q_tail++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->height = c->height;
	a->round = round;
	a->valid_round = -1;
	return a;
}

bool cons_next_action(struct cons *c, struct cons_action *out)
{
	if (c->q_head == c->q_tail) {
		c->q_head = c->q_tail = 0;
		return false;
	}
	*out = c->q[c->q_head++];
	return true;
}

static void emit_timeout(struct cons *c, enum cons_timeout kind, uint32_t r)
{
	struct cons_action *a = q_push(c, CONS_ACT_TIMEOUT, r);
	a->timeout = kind;
	a->duration_ms = cons_timeout_ms(&c->cfg, kind, r);
}

/* ---- rounds of votes ---- */

static void tally_reset(struct cons_tally *t, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		t->first[i] = VOTE_NONE;
	memset(t->evid, 0, n);
	memset(t->nil_voters, 0, sizeof(t->nil_voters));
	t->nval = t->nextra = t->nnil = t->total = 0;
}

static bool bit_get(const uint8_t *bits, uint32_t i)
{
	return bits[i / 8] & (1u << (i % 8));
}

static void bit_set(uint8_t *bits, uint32_t i)
{
	bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

static void slot_reset(struct cons *c, struct cons_round *s)
{
	s->round = -1;
	tally_reset(&s->tally[0], c->n);
	tally_reset(&s->tally[1], c->n);
	memset(s->sent, 0, c->n);
	s->nsenders = 0;
	s->nprop = 0;
	s->prop_evid = false;
	s->done34 = s->done36 = s->done47 = false;
}

static struct cons_round *slot_find(struct cons *c, int64_t r)
{
	for (int i = 0; i < CONS_ROUND_SLOTS; i++)
		if (c->slots[i].round == r)
			return &c->slots[i];
	return NULL;
}

static bool slot_protected(const struct cons *c, int64_t r)
{
	return r == c->round || (c->locked && r == c->locked_round) || (c->valid && r == c->valid_round);
}

/*
 * The slot of round r, taking a free one or forgetting the round with the
 * fewest senders (then the farthest from round_p); the current, locked and
 * valid rounds are never forgotten. NULL only if every slot were protected,
 * impossible with more than 3 slots.
 */
static struct cons_round *slot_get(struct cons *c, uint32_t r)
{
	struct cons_round *s = slot_find(c, r), *victim = NULL;
	if (s)
		return s;
	for (int i = 0; i < CONS_ROUND_SLOTS; i++) {
		s = &c->slots[i];
		if (s->round < 0) {
			victim = s;
			break;
		}
		if (slot_protected(c, s->round))
			continue;
		if (!victim || s->nsenders < victim->nsenders ||
		    (s->nsenders == victim->nsenders &&
		     llabs(s->round - (int64_t)c->round) > llabs(victim->round - (int64_t)c->round)))
			victim = s;
	}
	if (!victim)
		return NULL;
	slot_reset(c, victim);
	victim->round = r;
	return victim;
}

static int tally_find(const struct cons_tally *t, const uint8_t *v)
{
	for (int i = 0; i < t->nval; i++)
		if (memcmp(t->val[i], v, TD_HASH_LEN) == 0)
			return i;
	return -1;
}

/* Votes for v in t (0 when none). */
static uint32_t tally_count(const struct cons_tally *t, const uint8_t *v)
{
	int i = tally_find(t, v);
	return i < 0 ? 0 : t->cnt[i];
}

static void add_evidence(struct cons *c, uint32_t from, uint32_t r, enum cons_step kind, const uint8_t *a,
			 const uint8_t *b)
{
	if (c->nevidence == CONS_EVIDENCE_MAX) {
		c->evidence_dropped++;
		return;
	}
	struct cons_evidence *e = &c->evidence[c->nevidence++];
	memset(e, 0, sizeof(*e));
	e->validator = from;
	e->height = c->height;
	e->round = r;
	e->kind = kind;
	e->nil_a = a == NULL;
	e->nil_b = b == NULL;
	if (a)
		memcpy(e->a, a, TD_HASH_LEN);
	if (b)
		memcpy(e->b, b, TD_HASH_LEN);
}

static void mark_sent(struct cons_round *s, uint32_t from)
{
	if (!s->sent[from]) {
		s->sent[from] = 1;
		s->nsenders++;
	}
}

/* ---- valid(v): answers from the node ---- */

static struct cons_vcache_entry *vc_find(struct cons *c, const uint8_t *v)
{
	for (int i = 0; i < CONS_VCACHE; i++)
		if (c->vcache[i].state != VC_FREE && memcmp(c->vcache[i].value, v, TD_HASH_LEN) == 0)
			return &c->vcache[i];
	return NULL;
}

static bool value_live(struct cons *c, const uint8_t *v)
{
	for (int i = 0; i < CONS_ROUND_SLOTS; i++) {
		const struct cons_round *s = &c->slots[i];
		if (s->round < 0)
			continue;
		for (int j = 0; j < s->nprop; j++)
			if (memcmp(s->prop[j].value, v, TD_HASH_LEN) == 0)
				return true;
	}
	return false;
}

/*
 * Records the validity of v. The cache holds more entries than there can be
 * stored proposals, so an entry still needed is never forgotten.
 */
static void vc_set(struct cons *c, const uint8_t *v, uint8_t state)
{
	struct cons_vcache_entry *e = vc_find(c, v);
	if (!e) {
		for (int i = 0; i < CONS_VCACHE && !e; i++)
			if (c->vcache[i].state == VC_FREE)
				e = &c->vcache[i];
		for (int i = 0; i < CONS_VCACHE && !e; i++) {
			uint32_t k = (c->vcache_next + (uint32_t)i) % CONS_VCACHE;
			if (!value_live(c, c->vcache[k].value))
				e = &c->vcache[k];
		}
		if (!e)
			abort(); /* more live values than the cache holds: impossible */
		c->vcache_next = (uint32_t)(e - c->vcache + 1) % CONS_VCACHE;
		memcpy(e->value, v, TD_HASH_LEN);
	}
	e->state = state;
}

/* valid(v): VC_VALID, VC_INVALID or VC_PENDING (asking the node if never asked). */
static uint8_t valid_state(struct cons *c, const uint8_t *v)
{
	struct cons_vcache_entry *e = vc_find(c, v);
	if (e)
		return e->state;
	vc_set(c, v, VC_PENDING);
	struct cons_action *a = q_push(c, CONS_ACT_VALIDATE, c->round);
	memcpy(a->value, v, TD_HASH_LEN);
	return VC_PENDING;
}

/* ---- storing messages of the current height ---- */

static int store_proposal(struct cons *c, uint32_t from, uint32_t r, const uint8_t *v, int32_t vr)
{
	struct cons_round *s = slot_get(c, r);
	if (!s)
		return 0;
	mark_sent(s, from);
	for (int i = 0; i < s->nprop; i++)
		if (memcmp(s->prop[i].value, v, TD_HASH_LEN) == 0)
			return 0; /* duplicate (a different valid_round for the same value changes nothing) */
	int rc = 0;
	if (s->nprop > 0) {
		if (!s->prop_evid) {
			s->prop_evid = true;
			add_evidence(c, from, r, CONS_STEP_PROPOSE, s->prop[0].value, v);
		}
		rc = TD_ERULE;
	}
	if (s->nprop == CONS_PROPOSALS_PER_ROUND)
		return rc;
	memcpy(s->prop[s->nprop].value, v, TD_HASH_LEN);
	s->prop[s->nprop].valid_round = vr;
	s->nprop++;
	(void)valid_state(c, v);
	return rc;
}

/* Counts from's vote for v (NULL: nil) unless already counted; false when there is no room. */
static bool tally_count_vote(struct cons *c, struct cons_tally *t, uint32_t from, const uint8_t *v, bool first)
{
	if (!v) {
		if (bit_get(t->nil_voters, from))
			return true;
		bit_set(t->nil_voters, from);
		t->nnil++;
		if (first)
			t->first[from] = VOTE_NIL;
		return true;
	}
	int i = tally_find(t, v);
	if (i < 0) {
		if (!first && t->nextra >= c->n)
			return false;
		i = t->nval++;
		t->nextra += !first;
		memcpy(t->val[i], v, TD_HASH_LEN);
		memset(t->voters[i], 0, CONS_VOTER_BYTES);
		t->cnt[i] = 0;
	}
	if (first)
		t->first[from] = (int16_t)i;
	if (!bit_get(t->voters[i], from)) {
		bit_set(t->voters[i], from);
		t->cnt[i]++;
	}
	return true;
}

static int store_vote(struct cons *c, uint32_t from, enum cons_step kind, uint32_t r, const uint8_t *v)
{
	struct cons_round *s = slot_get(c, r);
	if (!s)
		return 0;
	mark_sent(s, from);
	struct cons_tally *t = &s->tally[kind == CONS_STEP_PRECOMMIT];
	int16_t cur = t->first[from];
	if (cur == VOTE_NONE) {
		(void)tally_count_vote(c, t, from, v, true);
		t->total++;
		return 0;
	}
	const uint8_t *first = cur == VOTE_NIL ? NULL : t->val[cur];
	if ((!first && !v) || (first && v && memcmp(first, v, TD_HASH_LEN) == 0))
		return 0; /* duplicate */
	if (!t->evid[from]) {
		t->evid[from] = 1;
		add_evidence(c, from, r, kind, first, v);
	}
	(void)tally_count_vote(c, t, from, v, false);
	return TD_ERULE;
}

/* Validators who voted for v in t, increasing, into out; returns how many. */
static uint32_t tally_voters(const struct cons *c, const struct cons_tally *t, const uint8_t *v, uint16_t *out)
{
	int idx = tally_find(t, v);
	uint32_t k = 0;
	for (uint32_t i = 0; idx >= 0 && i < c->n; i++)
		if (bit_get(t->voters[idx], i))
			out[k++] = (uint16_t)i;
	return k;
}

static void buffer_add(struct cons *c, enum cons_step kind, uint32_t from, uint32_t r, const uint8_t *v, int32_t vr)
{
	if (c->buf_count[from] >= CONS_BUFFER_PER_VALIDATOR)
		return;
	struct cons_buffered *b = &c->buf[c->nbuf++];
	c->buf_count[from]++;
	memset(b, 0, sizeof(*b));
	b->kind = kind;
	b->from = from;
	b->round = r;
	b->nil = v == NULL;
	if (v)
		memcpy(b->value, v, TD_HASH_LEN);
	b->valid_round = vr;
}

/* ---- signing ---- */

/* Double-sign guard: only strictly after the last signed (height, round, step). */
static bool sign_ok(const struct cons *c, uint32_t r, enum cons_step step)
{
	if (c->me < 0)
		return false;
	const struct cons_sign_state *ss = &c->ss;
	if (!ss->any)
		return true;
	if (c->height != ss->height)
		return c->height > ss->height;
	if (r != ss->round)
		return r > ss->round;
	return step > ss->step;
}

static void ss_record(struct cons *c, uint32_t r, enum cons_step step, const uint8_t *v, int32_t vr)
{
	struct cons_sign_state *ss = &c->ss;
	if (!ss->any || ss->height != c->height) {
		memset(ss, 0, sizeof(*ss));
		ss->any = true;
		ss->height = c->height;
	}
	ss->round = r;
	ss->step = step;
	struct cons_signed *m = step == CONS_STEP_PROPOSE ? &ss->proposal
				: step == CONS_STEP_PREVOTE ? &ss->prevote
							    : &ss->precommit;
	memset(m, 0, sizeof(*m));
	m->set = true;
	m->round = r;
	m->nil = v == NULL;
	if (v)
		memcpy(m->value, v, TD_HASH_LEN);
	m->valid_round = vr;
	if (step == CONS_STEP_PRECOMMIT && v)
		ss->locked = *m;
}

static void queue_proposal(struct cons *c, uint32_t r, const uint8_t *v, int32_t vr, bool resend)
{
	struct cons_action *a = q_push(c, CONS_ACT_PROPOSAL, r);
	memcpy(a->value, v, TD_HASH_LEN);
	a->valid_round = vr;
	a->resend = resend;
	(void)store_proposal(c, (uint32_t)c->me, r, v, vr);
}

static void queue_vote(struct cons *c, enum cons_step kind, uint32_t r, const uint8_t *v, bool resend)
{
	struct cons_action *a = q_push(c, CONS_ACT_VOTE, r);
	a->vote_type = kind == CONS_STEP_PRECOMMIT ? TD_VOTE_PRECOMMIT : TD_VOTE_PREVOTE;
	a->nil = v == NULL;
	if (v)
		memcpy(a->value, v, TD_HASH_LEN);
	a->resend = resend;
	(void)store_vote(c, (uint32_t)c->me, kind, r, v);
}

/* broadcast <PROPOSAL, h_p, round_p, v, vr>, if the guard allows. */
static void broadcast_proposal(struct cons *c, const uint8_t *v, int32_t vr)
{
	if (!sign_ok(c, c->round, CONS_STEP_PROPOSE))
		return;
	vc_set(c, v, VC_VALID); /* our own value */
	ss_record(c, c->round, CONS_STEP_PROPOSE, v, vr);
	queue_proposal(c, c->round, v, vr, false);
}

/* broadcast <PREVOTE|PRECOMMIT, h_p, round_p, v or nil>, if the guard allows. */
static void broadcast_vote(struct cons *c, enum cons_step kind, const uint8_t *v)
{
	if (!sign_ok(c, c->round, kind))
		return;
	ss_record(c, c->round, kind, v, -1);
	queue_vote(c, kind, c->round, v, false);
}

/* ---- rounds and heights ---- */

/* lines 11-21: StartRound(round). */
static void start_round(struct cons *c, uint32_t r)
{
	if (r > c->round) {
		/* the round we leave: did its proposer get a valid proposal to us? */
		struct cons_round *old = slot_find(c, c->round);
		bool ok = false;
		for (int i = 0; old && i < old->nprop && !ok; i++) {
			struct cons_vcache_entry *e = vc_find(c, old->prop[i].value);
			ok = e && e->state == VC_VALID;
		}
		if (!ok)
			c->missed[cons_proposer(c, c->height, c->round)]++;
	}
	c->round = r;                /* line 12 */
	c->step = CONS_STEP_PROPOSE; /* line 13 */
	c->awaiting_value = false;
	(void)slot_get(c, r);
	if (c->me >= 0 && cons_proposer(c, c->height, r) == (uint32_t)c->me && sign_ok(c, r, CONS_STEP_PROPOSE)) {
		if (c->valid) {
			/* lines 15-16, 19: re-propose validValue with validRound */
			broadcast_proposal(c, c->valid_value, (int32_t)c->valid_round);
		} else {
			/* line 18: getValue(), answered by cons_on_value() */
			c->awaiting_value = true;
			(void)q_push(c, CONS_ACT_REQUEST_VALUE, r);
		}
	} else {
		/*
		 * line 21. A proposer that may not sign (it signed this round
		 * before a restart) waits like the others.
		 */
		emit_timeout(c, CONS_TIMEOUT_PROPOSE, r);
	}
}

/* Moves to height h with a fresh state (line 53), replaying messages buffered for it. */
static void reset_height(struct cons *c, uint64_t h)
{
	bool replay = h == c->height + 1;
	c->height = h;
	c->round = 0;
	c->step = CONS_STEP_PROPOSE;
	c->started = false;
	c->awaiting_value = false;
	c->locked = c->valid = false;
	c->locked_round = c->valid_round = 0;
	for (int i = 0; i < CONS_ROUND_SLOTS; i++)
		slot_reset(c, &c->slots[i]);
	memset(c->vcache, 0, sizeof(c->vcache));
	c->vcache_next = 0;
	for (uint32_t i = 0; replay && i < c->nbuf; i++) {
		const struct cons_buffered *b = &c->buf[i];
		const uint8_t *v = b->nil ? NULL : b->value;
		if (b->kind == CONS_STEP_PROPOSE)
			(void)store_proposal(c, b->from, b->round, v, b->valid_round);
		else
			(void)store_vote(c, b->from, b->kind, b->round, v);
	}
	c->nbuf = 0;
	memset(c->buf_count, 0, c->n);
}

/* lines 49-54: decide v in round s->round, then move to the next height (idle until cons_start). */
static void decide(struct cons *c, struct cons_round *s, const uint8_t *v)
{
	struct cons_action *a = q_push(c, CONS_ACT_DECIDE, (uint32_t)s->round);
	memcpy(a->value, v, TD_HASH_LEN);
	a->n_signers = tally_voters(c, &s->tally[1], v, a->signers);
	reset_height(c, c->height + 1); /* lines 52-53 */
}

/* ---- the upon rules ---- */

/* line 49: <PROPOSAL, h_p, r, v, *> from proposer(h_p, r) AND 2f+1 <PRECOMMIT, h_p, r, id(v)>, any r */
static bool rule_decide(struct cons *c)
{
	for (int i = 0; i < CONS_ROUND_SLOTS; i++) {
		struct cons_round *s = &c->slots[i];
		if (s->round < 0 || s->tally[1].total < quorum(c))
			continue;
		for (int j = 0; j < s->nprop; j++) {
			const uint8_t *v = s->prop[j].value;
			if (tally_count(&s->tally[1], v) < quorum(c))
				continue;
			/* line 50: if valid(v); wait for the node's answer */
			if (valid_state(c, v) != VC_VALID)
				continue;
			uint8_t val[TD_HASH_LEN];
			memcpy(val, v, TD_HASH_LEN);
			decide(c, s, val);
			return true;
		}
	}
	return false;
}

/* line 55: f+1 <*, h_p, round, *, *> with round > round_p: StartRound(round) */
static bool rule_skip(struct cons *c)
{
	int64_t best = -1;
	for (int i = 0; i < CONS_ROUND_SLOTS; i++) {
		const struct cons_round *s = &c->slots[i];
		if (s->round > (int64_t)c->round && s->nsenders >= weak_quorum(c) && s->round > best)
			best = s->round;
	}
	if (best < 0)
		return false;
	start_round(c, (uint32_t)best);
	return true;
}

/* lines 22-33: a proposal for round_p while step = propose */
static bool rule_proposal(struct cons *c)
{
	if (c->step != CONS_STEP_PROPOSE)
		return false;
	struct cons_round *s = slot_find(c, c->round);
	for (int i = 0; s && i < s->nprop; i++) {
		const struct cons_prop *p = &s->prop[i];
		bool ok;
		if (p->valid_round < 0) {
			/* line 22: <PROPOSAL, h_p, round_p, v, -1> */
			uint8_t st = valid_state(c, p->value);
			if (st == VC_PENDING)
				continue;
			/* line 23: valid(v) and (lockedRound = -1 or lockedValue = v) */
			ok = st == VC_VALID &&
			     (!c->locked || memcmp(c->locked_value, p->value, TD_HASH_LEN) == 0);
		} else {
			/* line 28: ... AND 2f+1 <PREVOTE, h_p, vr, id(v)>, 0 <= vr < round_p */
			struct cons_round *vs = slot_find(c, p->valid_round);
			if (!vs || tally_count(&vs->tally[0], p->value) < quorum(c))
				continue;
			uint8_t st = valid_state(c, p->value);
			if (st == VC_PENDING)
				continue;
			/* line 29: valid(v) and (lockedRound <= vr or lockedValue = v) */
			ok = st == VC_VALID && (!c->locked || c->locked_round <= (uint32_t)p->valid_round ||
						memcmp(c->locked_value, p->value, TD_HASH_LEN) == 0);
		}
		uint8_t v[TD_HASH_LEN];
		memcpy(v, p->value, TD_HASH_LEN);
		/* lines 24/30: prevote id(v); lines 26/32: prevote nil */
		broadcast_vote(c, CONS_STEP_PREVOTE, ok ? v : NULL);
		c->step = CONS_STEP_PREVOTE; /* lines 27/33 */
		return true;
	}
	return false;
}

/* lines 34-35: 2f+1 <PREVOTE, h_p, round_p, *> while step = prevote, first time */
static bool rule_prevote_any(struct cons *c)
{
	struct cons_round *s = slot_find(c, c->round);
	if (c->step != CONS_STEP_PREVOTE || !s || s->done34 || s->tally[0].total < quorum(c))
		return false;
	s->done34 = true;
	emit_timeout(c, CONS_TIMEOUT_PREVOTE, c->round);
	return true;
}

/* lines 36-43: proposal v AND 2f+1 <PREVOTE, h_p, round_p, id(v)> while valid(v), step >= prevote, first time */
static bool rule_polka(struct cons *c)
{
	struct cons_round *s = slot_find(c, c->round);
	if (c->step < CONS_STEP_PREVOTE || !s || s->done36)
		return false;
	for (int i = 0; i < s->nprop; i++) {
		uint8_t v[TD_HASH_LEN];
		memcpy(v, s->prop[i].value, TD_HASH_LEN);
		if (tally_count(&s->tally[0], v) < quorum(c) || valid_state(c, v) != VC_VALID)
			continue;
		s->done36 = true;
		if (c->step == CONS_STEP_PREVOTE) {
			/* lines 37-41 */
			c->locked = true;
			memcpy(c->locked_value, v, TD_HASH_LEN);
			c->locked_round = c->round;
			broadcast_vote(c, CONS_STEP_PRECOMMIT, v);
			c->step = CONS_STEP_PRECOMMIT;
		}
		/* lines 42-43 */
		c->valid = true;
		memcpy(c->valid_value, v, TD_HASH_LEN);
		c->valid_round = c->round;
		return true;
	}
	return false;
}

/* lines 44-46: 2f+1 <PREVOTE, h_p, round_p, nil> while step = prevote */
static bool rule_polka_nil(struct cons *c)
{
	struct cons_round *s = slot_find(c, c->round);
	if (c->step != CONS_STEP_PREVOTE || !s || s->tally[0].nnil < quorum(c))
		return false;
	broadcast_vote(c, CONS_STEP_PRECOMMIT, NULL);
	c->step = CONS_STEP_PRECOMMIT;
	return true;
}

/* lines 47-48: 2f+1 <PRECOMMIT, h_p, round_p, *> for the first time */
static bool rule_precommit_any(struct cons *c)
{
	struct cons_round *s = slot_find(c, c->round);
	if (!s || s->done47 || s->tally[1].total < quorum(c))
		return false;
	s->done47 = true;
	emit_timeout(c, CONS_TIMEOUT_PRECOMMIT, c->round);
	return true;
}

/*
 * Not in the paper: 2f+1 <PRECOMMIT, h_p, round_p, nil>. At most f of
 * those senders can also precommit a value, so no value can gather 2f+1
 * precommits in round_p; timeoutPrecommit (lines 47, 65-67) would only
 * delay round_p + 1, so it starts at once. Timeouts bear on liveness only.
 */
static bool rule_precommit_nil(struct cons *c)
{
	struct cons_round *s = slot_find(c, c->round);
	if (!s || s->tally[1].nnil < quorum(c) || c->round >= CONS_ROUND_MAX)
		return false;
	start_round(c, c->round + 1);
	return true;
}

/* Evaluates the upon rules until none fires. */
static void run(struct cons *c)
{
	while (c->started) {
		if (rule_decide(c) || rule_skip(c) || rule_proposal(c) || rule_polka(c) || rule_polka_nil(c) ||
		    rule_prevote_any(c) || rule_precommit_nil(c) || rule_precommit_any(c))
			continue;
		break;
	}
}

/* After a restart at the height of the sign state: resume where signing stopped. */
static void resume(struct cons *c)
{
	const struct cons_sign_state *ss = &c->ss;
	c->round = ss->round;
	c->step = ss->step;
	c->awaiting_value = false;
	if (ss->locked.set) {
		/* the lock is the latest non-nil precommit (line 38); validValue >= lock */
		c->locked = c->valid = true;
		c->locked_round = c->valid_round = ss->locked.round;
		memcpy(c->locked_value, ss->locked.value, TD_HASH_LEN);
		memcpy(c->valid_value, ss->locked.value, TD_HASH_LEN);
	}
	(void)slot_get(c, c->round);
	if (c->step == CONS_STEP_PROPOSE)
		emit_timeout(c, CONS_TIMEOUT_PROPOSE, c->round); /* in case our proposal went missing */
	if (ss->proposal.set) {
		vc_set(c, ss->proposal.value, VC_VALID);
		queue_proposal(c, ss->proposal.round, ss->proposal.value, ss->proposal.valid_round, true);
	}
	if (ss->prevote.set)
		queue_vote(c, CONS_STEP_PREVOTE, ss->prevote.round, ss->prevote.nil ? NULL : ss->prevote.value, true);
	if (ss->precommit.set)
		queue_vote(c, CONS_STEP_PRECOMMIT, ss->precommit.round,
			   ss->precommit.nil ? NULL : ss->precommit.value, true);
}

/* ---- public ---- */

static size_t al8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* Carves n bytes (8-aligned) out of the block at *p. */
static void *bump(uint8_t **p, size_t n)
{
	void *r = *p;
	*p += al8(n);
	return r;
}

int cons_init(struct cons *c, uint32_t n, int32_t me, uint64_t height, const struct cons_config *cfg,
	      const struct cons_sign_state *ss)
{
	memset(c, 0, sizeof(*c));
	if (n == 0 || n > TD_VALIDATORS_MAX || me < -1 || me >= (int32_t)n)
		return TD_EINVAL;
	if (ss && ss->any &&
	    (ss->step > CONS_STEP_PRECOMMIT || ss->round > CONS_ROUND_MAX))
		return TD_EINVAL;
	c->n = n;
	c->me = me;
	if (cfg)
		c->cfg = *cfg;
	else
		cons_config_default(&c->cfg);
	c->height = height;
	if (ss && me >= 0)
		c->ss = *ss;

	size_t tally = al8(n * sizeof(int16_t)) + al8(n) + al8(2 * n * (size_t)TD_HASH_LEN) +
		       al8(2 * n * (size_t)CONS_VOTER_BYTES) + al8(2 * n * sizeof(uint16_t));
	size_t per_slot = 2 * tally + al8(n);
	size_t total = CONS_ROUND_SLOTS * per_slot + al8(n * CONS_BUFFER_PER_VALIDATOR * sizeof(struct cons_buffered)) +
		       al8(n) + al8(n * sizeof(uint64_t));
	c->mem = td_xcalloc(1, total);
	uint8_t *p = c->mem;
	for (int i = 0; i < CONS_ROUND_SLOTS; i++) {
		struct cons_round *s = &c->slots[i];
		for (int t = 0; t < 2; t++) {
			s->tally[t].first = bump(&p, n * sizeof(int16_t));
			s->tally[t].evid = bump(&p, n);
			s->tally[t].val = bump(&p, 2 * n * (size_t)TD_HASH_LEN);
			s->tally[t].voters = bump(&p, 2 * n * (size_t)CONS_VOTER_BYTES);
			s->tally[t].cnt = bump(&p, 2 * n * sizeof(uint16_t));
		}
		s->sent = bump(&p, n);
		slot_reset(c, s);
	}
	c->buf = bump(&p, n * CONS_BUFFER_PER_VALIDATOR * sizeof(struct cons_buffered));
	c->buf_count = bump(&p, n);
	c->missed = bump(&p, n * sizeof(uint64_t));
	if ((size_t)(p - (uint8_t *)c->mem) > total)
		abort();
	return 0;
}

void cons_free(struct cons *c)
{
	free(c->mem);
	free(c->q);
	c->mem = NULL;
	c->q = NULL;
	c->q_cap = c->q_head = c->q_tail = 0;
}

int cons_start(struct cons *c, uint64_t h)
{
	if (h < c->height || (c->started && h == c->height))
		return TD_EINVAL;
	if (h != c->height)
		reset_height(c, h);
	c->started = true;
	if (c->me >= 0 && c->ss.any && c->ss.height == h)
		resume(c);
	else
		start_round(c, 0); /* line 10 */
	run(c);
	return 0;
}

int cons_on_proposal(struct cons *c, uint32_t from, uint64_t h, uint32_t r, const uint8_t value[static TD_HASH_LEN],
		     int32_t valid_round)
{
	if (from >= c->n || r > CONS_ROUND_MAX || valid_round < -1 || (int64_t)valid_round >= (int64_t)r)
		return TD_EINVAL;
	if (from != cons_proposer(c, h, r))
		return TD_EPERM;
	if (h == c->height + 1) {
		buffer_add(c, CONS_STEP_PROPOSE, from, r, value, valid_round);
		return 0;
	}
	if (h != c->height)
		return 0;
	int rc = store_proposal(c, from, r, value, valid_round);
	run(c);
	return rc;
}

int cons_on_vote(struct cons *c, uint32_t from, enum td_vote_type type, uint64_t h, uint32_t r, const uint8_t *value)
{
	if (from >= c->n || r > CONS_ROUND_MAX || (type != TD_VOTE_PREVOTE && type != TD_VOTE_PRECOMMIT))
		return TD_EINVAL;
	enum cons_step kind = type == TD_VOTE_PREVOTE ? CONS_STEP_PREVOTE : CONS_STEP_PRECOMMIT;
	if (h == c->height + 1) {
		buffer_add(c, kind, from, r, value, -1);
		return 0;
	}
	if (h != c->height)
		return 0;
	int rc = store_vote(c, from, kind, r, value);
	run(c);
	return rc;
}

int cons_on_timeout(struct cons *c, enum cons_timeout kind, uint64_t h, uint32_t r)
{
	if ((unsigned)kind > CONS_TIMEOUT_PRECOMMIT)
		return TD_EINVAL;
	if (!c->started || h != c->height || r != c->round)
		return 0;
	switch (kind) {
	case CONS_TIMEOUT_PROPOSE:
		/* lines 57-60 */
		if (c->step == CONS_STEP_PROPOSE) {
			broadcast_vote(c, CONS_STEP_PREVOTE, NULL);
			c->step = CONS_STEP_PREVOTE;
		}
		break;
	case CONS_TIMEOUT_PREVOTE:
		/* lines 61-64 */
		if (c->step == CONS_STEP_PREVOTE) {
			broadcast_vote(c, CONS_STEP_PRECOMMIT, NULL);
			c->step = CONS_STEP_PRECOMMIT;
		}
		break;
	case CONS_TIMEOUT_PRECOMMIT:
		/* lines 65-67 */
		if (c->round < CONS_ROUND_MAX)
			start_round(c, c->round + 1);
		break;
	}
	run(c);
	return 0;
}

int cons_on_value(struct cons *c, uint64_t h, uint32_t r, const uint8_t value[static TD_HASH_LEN])
{
	if (!c->started || !c->awaiting_value || h != c->height || r != c->round || c->step != CONS_STEP_PROPOSE)
		return 0;
	c->awaiting_value = false;
	broadcast_proposal(c, value, -1); /* line 19, validRound_p = -1 here */
	run(c);
	return 0;
}

int cons_on_validity(struct cons *c, const uint8_t value[static TD_HASH_LEN], bool ok)
{
	vc_set(c, value, ok ? VC_VALID : VC_INVALID);
	run(c);
	return 0;
}

const struct cons_sign_state *cons_sign_state(const struct cons *c)
{
	return &c->ss;
}

const struct cons_evidence *cons_evidence(const struct cons *c, uint32_t *count)
{
	*count = c->nevidence;
	return c->evidence;
}

void cons_evidence_clear(struct cons *c)
{
	c->nevidence = 0;
}

uint64_t cons_missed_proposals(const struct cons *c, uint32_t v)
{
	return v < c->n ? c->missed[v] : 0;
}

uint64_t cons_height(const struct cons *c)
{
	return c->height;
}

bool cons_started(const struct cons *c)
{
	return c->started;
}

uint32_t cons_round(const struct cons *c)
{
	return c->round;
}

enum cons_step cons_step(const struct cons *c)
{
	return c->step;
}

int64_t cons_locked(const struct cons *c, uint8_t out[TD_HASH_LEN])
{
	if (!c->locked)
		return -1;
	if (out)
		memcpy(out, c->locked_value, TD_HASH_LEN);
	return c->locked_round;
}

int64_t cons_valid(const struct cons *c, uint8_t out[TD_HASH_LEN])
{
	if (!c->valid)
		return -1;
	if (out)
		memcpy(out, c->valid_value, TD_HASH_LEN);
	return c->valid_round;
}

/* Appends to buf (NUL-terminated, len bytes) what fits. */
static void put(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(char *buf, size_t len, const char *fmt, ...)
{
	size_t l = strlen(buf);
	va_list ap;
	if (l + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + l, len - l, fmt, ap);
	va_end(ap);
}

void cons_describe(const struct cons *c, char *buf, size_t len)
{
	if (len == 0)
		return;
	buf[0] = 0;
	for (int64_t r = 0, seen = 0; seen < CONS_ROUND_SLOTS && r <= (int64_t)c->round + CONS_ROUND_SLOTS; r++) {
		const struct cons_round *s = slot_find((struct cons *)c, r);
		if (!s)
			continue;
		seen++;
		put(buf, len, "%sr%lld%s", buf[0] ? " | " : "", (long long)r, s->nprop ? " proposal" : "");
		for (int t = 0; t < 2; t++) {
			const struct cons_tally *y = &s->tally[t];
			put(buf, len, " %s %u (nil %u", t ? "precommits" : "prevotes", y->total, y->nnil);
			for (int k = 0; k < y->nval; k++)
				put(buf, len, ", %02x..:%u", y->val[k][0], y->cnt[k]);
			put(buf, len, ")");
		}
	}
}
