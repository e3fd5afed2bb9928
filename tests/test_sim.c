/*
 * Deterministic simulator of the consensus core (node/consensus.c).
 *
 * Each seed runs n = 4 or n = 7 cores in one process (odd seeds n = 7) with a
 * virtual clock and one event queue: messages get random delays (so they are
 * reordered), duplicated and lost; partitions split the validators and later
 * heal; validators crash and restart from their persisted sign state,
 * write-ahead log and chain (everything else is lost); in some runs one
 * validator is byzantine and sends conflicting proposals and votes to
 * different peers (sometimes both to the same peer). The PRNG is
 * xoshiro256** seeded with splitmix64 from the seed, so a seed replays
 * exactly.
 *
 * The simulated node is a model, not the real node (node/node.c and the
 * modules it wires), and it does more than the real node does today. Before
 * sending any broadcast it persists the sign state and a write-ahead log of
 * the messages of the current height, which it feeds again after a restart;
 * it answers REQUEST_VALUE and VALIDATE after a delay, runs timers, applies
 * decisions then calls cons_start(h+1), and syncs decided blocks from a
 * correct peer that is ahead. Every second each node gossips: it sends its
 * height (status) and, to each peer at its height, the messages of that
 * height it has seen or sent and the peer has not (as vote-bit exchange does
 * in practice), other validators' proposals and votes included. The paper's
 * liveness needs this relaying: a message one correct process received
 * reaches every correct process after GST. The real node keeps no
 * write-ahead log and relays no other validator's messages: it persists only
 * its sign state and re-sends only what it signed itself (node/consensus.h).
 * So the safety checks below hold the core to account under any such
 * schedule, but the liveness check holds only for a node with this model's
 * log and relaying.
 *
 * Checked after every event: agreement (no two correct validators decide
 * different values at one height), commit validity (> 2/3 distinct signers,
 * increasing, each really sent that PRECOMMIT), decided values are valid, no
 * correct validator ever signs two different messages of one kind for one
 * (h, r) (across restarts too), evidence never names a correct validator.
 * At the end, liveness: after the last fault every correct validator reaches
 * SIM_HEIGHTS within SIM_LIVE_MS of virtual time.
 *
 * TD_SIM_SEEDS=<count> runs seeds 1..count; TD_SIM_SEED=<seed> replays one
 * seed (TD_SIM_VERBOSE=1 traces it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "consensus.h"

#define SIM_MAX_N 7
#define SIM_HEIGHTS 10                  /* every correct validator must reach this many decided heights */
#define SIM_LIVE_MS (300 * 1000)        /* ... within this long after the last fault */
#define SIM_GOSSIP_MS 1000              /* re-send period of own messages and status */
#define SIM_STORE 1024                  /* messages of one height a node keeps for gossip */
#define SIM_TABLE_BITS 16

enum msg_kind { M_PROPOSAL = 0, M_PREVOTE = 1, M_PRECOMMIT = 2, M_STATUS = 3 };

struct msg {
	enum msg_kind kind;
	uint32_t from;
	uint64_t h;
	uint32_t r;
	bool nil;
	int32_t vr;
	uint8_t value[TD_HASH_LEN];
};

enum ev_kind { EV_DELIVER, EV_TIMEOUT, EV_VALUE, EV_VALIDITY, EV_START, EV_CRASH, EV_RESTART, EV_SPLIT, EV_HEAL, EV_GOSSIP };

struct event {
	uint64_t t, seq;
	enum ev_kind kind;
	uint32_t node;
	uint32_t epoch;
	struct msg m;                /* DELIVER; VALUE/VALIDITY use m.h, m.r, m.value */
	enum cons_timeout tkind;
	bool ok;
};

struct simnode {
	bool byz, up;
	uint32_t epoch;
	struct cons c;
	struct cons_sign_state persisted; /* what "fsync" stored */
	uint64_t chain_len;
	uint8_t chain[SIM_HEIGHTS + 1][TD_HASH_LEN];
	int side;
	/* byzantine: (h, r) already acted on */
	uint64_t acted_h[32];
	uint32_t acted_r[32];
	uint32_t nacted;
	uint8_t known[4][TD_HASH_LEN]; /* values seen at height known_h, replayed in other rounds */
	uint32_t nknown;
	uint64_t known_h;
	/*
	 * Messages of height store_h seen or sent (own and relayed), for gossip.
	 * The first wal_len (if wal_h == store_h) are the write-ahead log
	 * persisted with the sign state: they survive a crash, the rest not.
	 */
	uint32_t nstore;
	uint64_t store_h;
	uint32_t wal_len;
	uint64_t wal_h;
	uint64_t ids[2 * SIM_STORE]; /* open-addressing set of message ids, 0 = free (reset at boot) */
	struct msg store[SIM_STORE];
};

struct sent_entry {
	uint32_t gen;
	uint32_t from;
	uint64_t h;
	uint32_t r;
	uint8_t kind;
	uint8_t byz;
	bool nil;
	uint8_t value[TD_HASH_LEN];
};

struct sim {
	uint64_t seed;
	uint32_t n;
	uint64_t rng[4];
	uint64_t now, seq;
	struct event *heap;
	size_t nheap, capheap;
	struct cons_config cfg;
	/* network */
	uint64_t chaos_end;
	uint32_t p_loss, p_dup;      /* per mille */
	uint32_t max_delay, stable_delay;
	int byz;                     /* index or -1 */
	/* checks */
	bool decided[SIM_HEIGHTS + 1];
	uint8_t decision[SIM_HEIGHTS + 1][TD_HASH_LEN];
	char fail[256];
	bool verbose;
	/* stats */
	uint64_t decisions, max_round, evidence, events, syncs, done_at;
	struct simnode node[SIM_MAX_N]; /* last: only the head of each is cleared per run */
};

static struct sent_entry *g_table;
static uint32_t g_gen;

/* ---- PRNG: xoshiro256** seeded by splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rnd64(struct sim *s)
{
	uint64_t *st = s->rng;
	uint64_t result = rotl(st[1] * 5, 7) * 9;
	uint64_t t = st[1] << 17;
	st[2] ^= st[0];
	st[3] ^= st[1];
	st[1] ^= st[2];
	st[0] ^= st[3];
	st[2] ^= t;
	st[3] = rotl(st[3], 45);
	return result;
}

/* Uniform-enough in [0, n) for small n; n == 0 gives 0. */
static uint32_t rnd(struct sim *s, uint32_t n)
{
	return n ? (uint32_t)(rnd64(s) % n) : 0;
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct sim *s, const char *fmt, ...)
{
	if (!s->verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("[%8llu] ", (unsigned long long)s->now);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static void failf(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct sim *s, const char *fmt, ...)
{
	if (s->fail[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->fail, sizeof(s->fail), fmt, ap);
	va_end(ap);
}

/* ---- values ---- */

#define INVALID_MARK 0xBA

static void make_value(struct sim *s, uint8_t out[TD_HASH_LEN], uint64_t h, uint32_t r, uint32_t p, uint32_t variant,
		       bool invalid)
{
	uint64_t x = s->seed ^ (h * 1000003u) ^ ((uint64_t)r << 20) ^ ((uint64_t)p << 40) ^ ((uint64_t)variant << 48);
	for (int i = 0; i < 4; i++) {
		uint64_t w = splitmix64(&x);
		memcpy(out + 8 * i, &w, 8);
	}
	memcpy(out, &h, 8);
	memcpy(out + 8, &r, 4);
	out[12] = (uint8_t)p;
	out[13] = (uint8_t)variant;
	out[15] = invalid ? INVALID_MARK : 0;
}

static bool value_ok(const uint8_t v[TD_HASH_LEN])
{
	return v[15] != INVALID_MARK;
}

/* ---- event heap ---- */

static bool ev_less(const struct event *a, const struct event *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void push(struct sim *s, struct event *e)
{
	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? s->capheap * 2 : 1024;
		s->heap = realloc(s->heap, s->capheap * sizeof(*s->heap));
		if (!s->heap)
			abort();
	}
	e->seq = s->seq++;
	size_t i = s->nheap++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!ev_less(e, &s->heap[p]))
			break;
		s->heap[i] = s->heap[p];
		i = p;
	}
	s->heap[i] = *e;
}

static bool pop(struct sim *s, struct event *out)
{
	if (!s->nheap)
		return false;
	*out = s->heap[0];
	struct event last = s->heap[--s->nheap];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l >= s->nheap)
			break;
		m = l;
		if (l + 1 < s->nheap && ev_less(&s->heap[l + 1], &s->heap[l]))
			m = l + 1;
		if (!ev_less(&s->heap[m], &last))
			break;
		s->heap[i] = s->heap[m];
		i = m;
	}
	if (s->nheap)
		s->heap[i] = last;
	return true;
}

static void schedule(struct sim *s, uint64_t at, enum ev_kind kind, uint32_t node)
{
	struct event e;
	memset(&e, 0, sizeof(e));
	e.t = at;
	e.kind = kind;
	e.node = node;
	e.epoch = s->node[node].epoch;
	push(s, &e);
}

/* ---- record of every signed message (double signing, commit checks) ---- */

static struct sent_entry *table_slot(uint32_t from, uint64_t h, uint32_t r, uint8_t kind, uint8_t byz, const struct msg *m)
{
	uint64_t x = from * 0x9e3779b97f4a7c15ULL ^ h * 0xbf58476d1ce4e5b9ULL ^ (uint64_t)r * 0x94d049bb133111ebULL ^
		     (uint64_t)kind << 3 ^ byz;
	if (byz && m) {
		uint64_t w;
		memcpy(&w, m->value + 16, 8);
		x ^= m->nil ? 1 : w;
	}
	x = splitmix64(&x);
	uint32_t mask = (1u << SIM_TABLE_BITS) - 1;
	for (uint32_t i = (uint32_t)x & mask, probes = 0; probes <= mask; i = (i + 1) & mask, probes++) {
		struct sent_entry *e = &g_table[i];
		if (e->gen != g_gen)
			return e;
		if (e->from == from && e->h == h && e->r == r && e->kind == kind && e->byz == byz &&
		    (!byz || !m || (e->nil == m->nil && (m->nil || memcmp(e->value, m->value, TD_HASH_LEN) == 0))))
			return e;
	}
	abort(); /* table full: raise SIM_TABLE_BITS */
}

static void table_fill(struct sent_entry *e, uint32_t from, const struct msg *m, uint8_t byz)
{
	e->gen = g_gen;
	e->from = from;
	e->h = m->h;
	e->r = m->r;
	e->kind = (uint8_t)m->kind;
	e->byz = byz;
	e->nil = m->nil;
	memcpy(e->value, m->value, TD_HASH_LEN);
}

/* A correct validator signs m: it must never have signed a different one for (h, r, kind). */
static void record_correct(struct sim *s, const struct msg *m)
{
	struct sent_entry *e = table_slot(m->from, m->h, m->r, (uint8_t)m->kind, 0, NULL);
	if (e->gen != g_gen) {
		table_fill(e, m->from, m, 0);
		return;
	}
	if (e->nil != m->nil || (!m->nil && memcmp(e->value, m->value, TD_HASH_LEN) != 0))
		failf(s, "double sign: validator %u kind %d h=%llu r=%u", m->from, (int)m->kind,
		      (unsigned long long)m->h, m->r);
}

static void record_byz(const struct msg *m)
{
	struct sent_entry *e = table_slot(m->from, m->h, m->r, (uint8_t)m->kind, 1, m);
	if (e->gen != g_gen)
		table_fill(e, m->from, m, 1);
}

/* Did validator v sign PRECOMMIT(h, r, value)? */
static bool signed_precommit(struct sim *s, uint32_t v, uint64_t h, uint32_t r, const uint8_t *value)
{
	struct msg m;
	memset(&m, 0, sizeof(m));
	m.kind = M_PRECOMMIT;
	m.from = v;
	m.h = h;
	m.r = r;
	memcpy(m.value, value, TD_HASH_LEN);
	uint8_t byz = s->node[v].byz;
	struct sent_entry *e = table_slot(v, h, r, M_PRECOMMIT, byz, &m);
	return e->gen == g_gen && !e->nil && memcmp(e->value, value, TD_HASH_LEN) == 0;
}

/* ---- network ---- */

static bool chaos(const struct sim *s)
{
	return s->now < s->chaos_end;
}

/* Sends m (signed by m->from) from node `via` to node `to` through the faulty network. */
static void net_send_via(struct sim *s, uint32_t via, uint32_t to, const struct msg *m)
{
	if (to == via)
		return;
	if (s->node[via].side != s->node[to].side)
		return;
	if (chaos(s) && rnd(s, 1000) < s->p_loss)
		return;
	int copies = rnd(s, 1000) < s->p_dup ? 2 : 1;
	for (int i = 0; i < copies; i++) {
		struct event e;
		memset(&e, 0, sizeof(e));
		e.kind = EV_DELIVER;
		e.node = to;
		e.m = *m;
		e.t = s->now + 1 + rnd(s, chaos(s) ? s->max_delay : s->stable_delay);
		push(s, &e);
	}
}

static void net_send(struct sim *s, uint32_t to, const struct msg *m)
{
	net_send_via(s, m->from, to, m);
}

static void broadcast(struct sim *s, const struct msg *m)
{
	for (uint32_t i = 0; i < s->n; i++)
		net_send(s, i, m);
}

/* ---- correct nodes ---- */

static uint64_t msg_id(const struct msg *m)
{
	uint64_t x = (uint64_t)m->kind ^ (uint64_t)m->from << 8 ^ m->h << 16 ^ (uint64_t)m->r << 40 ^
		     (uint64_t)m->nil << 63 ^ (uint64_t)(uint32_t)m->vr * 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < 4; i++) {
		uint64_t w;
		memcpy(&w, m->value + 8 * i, 8);
		x = splitmix64(&x) ^ w;
	}
	x = splitmix64(&x);
	return x ? x : 1;
}

static bool store_has(const struct simnode *nd, uint64_t id)
{
	const uint32_t mask = 2 * SIM_STORE - 1;
	for (uint32_t i = (uint32_t)id & mask;; i = (i + 1) & mask) {
		if (nd->ids[i] == id)
			return true;
		if (nd->ids[i] == 0)
			return false;
	}
}

static void ids_insert(struct simnode *nd, uint64_t id)
{
	const uint32_t mask = 2 * SIM_STORE - 1;
	uint32_t i = (uint32_t)id & mask;
	while (nd->ids[i])
		i = (i + 1) & mask;
	nd->ids[i] = id;
}

/*
 * Keeps m (of the node's height or the next) for gossip. A new height drops
 * what is older and the write-ahead log (persisted again at the next
 * signature).
 */
static void store_add(struct simnode *nd, uint64_t height, const struct msg *m)
{
	if (nd->store_h != height) {
		uint32_t k = 0;
		memset(nd->ids, 0, sizeof(nd->ids));
		for (uint32_t j = 0; j < nd->nstore; j++) {
			if (nd->store[j].h < height)
				continue;
			nd->store[k] = nd->store[j];
			ids_insert(nd, msg_id(&nd->store[k]));
			k++;
		}
		nd->nstore = k;
		nd->store_h = height;
		nd->wal_h = 0;
		nd->wal_len = 0;
	}
	if ((m->h != height && m->h != height + 1) || nd->nstore == SIM_STORE)
		return;
	uint64_t id = msg_id(m);
	if (store_has(nd, id))
		return;
	ids_insert(nd, id);
	nd->store[nd->nstore++] = *m;
}

static void check_decision(struct sim *s, uint32_t i, const struct cons_action *a)
{
	uint64_t h = a->height;
	if (h >= 1 && h <= SIM_HEIGHTS) {
		if (s->decided[h] && memcmp(s->decision[h], a->value, TD_HASH_LEN) != 0)
			failf(s, "agreement: validator %u decided a different value at h=%llu", i,
			      (unsigned long long)h);
		if (!s->decided[h]) {
			s->decided[h] = true;
			memcpy(s->decision[h], a->value, TD_HASH_LEN);
		}
	}
	if (!value_ok(a->value))
		failf(s, "validator %u decided an invalid value at h=%llu", i, (unsigned long long)h);
	if (a->n_signers * 3 <= s->n * 2)
		failf(s, "validator %u decided h=%llu with only %u signers", i, (unsigned long long)h, a->n_signers);
	for (uint32_t k = 0; k < a->n_signers; k++) {
		if (k > 0 && a->signers[k] <= a->signers[k - 1])
			failf(s, "validator %u: commit signers not increasing at h=%llu", i, (unsigned long long)h);
		if (a->signers[k] >= s->n || !signed_precommit(s, a->signers[k], h, a->round, a->value))
			failf(s, "validator %u: commit for h=%llu r=%u names %u which did not precommit it", i,
			      (unsigned long long)h, a->round, a->signers[k]);
	}
}

static void drain(struct sim *s, uint32_t i)
{
	struct simnode *nd = &s->node[i];
	struct cons_action a;
	while (cons_next_action(&nd->c, &a)) {
		struct msg m;
		memset(&m, 0, sizeof(m));
		m.from = i;
		m.h = a.height;
		m.r = a.round;
		switch (a.kind) {
		case CONS_ACT_PROPOSAL:
		case CONS_ACT_VOTE:
			/* "fsync" the sign state and the write-ahead log before signing */
			nd->persisted = *cons_sign_state(&nd->c);
			nd->wal_h = nd->store_h;
			nd->wal_len = nd->nstore;
			m.kind = a.kind == CONS_ACT_PROPOSAL ? M_PROPOSAL
				 : a.vote_type == TD_VOTE_PREVOTE ? M_PREVOTE
								  : M_PRECOMMIT;
			m.nil = a.nil;
			m.vr = a.valid_round;
			memcpy(m.value, a.value, TD_HASH_LEN);
			record_correct(s, &m);
			store_add(nd, nd->chain_len + 1, &m);
			trace(s, "v%u sends %s h=%llu r=%u %s%02x%02x vr=%d%s", i,
			      m.kind == M_PROPOSAL ? "PROPOSAL" : m.kind == M_PREVOTE ? "PREVOTE" : "PRECOMMIT",
			      (unsigned long long)m.h, m.r, m.nil ? "nil " : "", m.value[16], m.value[17], m.vr,
			      a.resend ? " (resend)" : "");
			broadcast(s, &m);
			break;
		case CONS_ACT_TIMEOUT: {
			struct event e;
			memset(&e, 0, sizeof(e));
			e.kind = EV_TIMEOUT;
			e.node = i;
			e.epoch = nd->epoch;
			e.tkind = a.timeout;
			e.m.h = a.height;
			e.m.r = a.round;
			e.t = s->now + a.duration_ms;
			push(s, &e);
			break;
		}
		case CONS_ACT_REQUEST_VALUE: {
			struct event e;
			memset(&e, 0, sizeof(e));
			e.kind = EV_VALUE;
			e.node = i;
			e.epoch = nd->epoch;
			e.m.h = a.height;
			e.m.r = a.round;
			e.t = s->now + (rnd(s, 20) == 0 ? rnd(s, 3000) : rnd(s, 30));
			push(s, &e);
			break;
		}
		case CONS_ACT_VALIDATE: {
			struct event e;
			memset(&e, 0, sizeof(e));
			e.kind = EV_VALIDITY;
			e.node = i;
			e.epoch = nd->epoch;
			memcpy(e.m.value, a.value, TD_HASH_LEN);
			e.t = s->now + rnd(s, 20);
			push(s, &e);
			break;
		}
		case CONS_ACT_DECIDE:
			trace(s, "v%u DECIDES h=%llu r=%u %02x%02x signers=%u", i, (unsigned long long)a.height, a.round,
			      a.value[16], a.value[17], a.n_signers);
			check_decision(s, i, &a);
			if (a.height > nd->chain_len + 1)
				failf(s, "validator %u decided h=%llu at chain length %llu", i,
				      (unsigned long long)a.height, (unsigned long long)nd->chain_len);
			else if (a.height <= nd->chain_len) {
				/* already synced that block: it must be the same */
				if (memcmp(nd->chain[a.height], a.value, TD_HASH_LEN) != 0)
					failf(s, "validator %u decided h=%llu unlike the block it synced", i,
					      (unsigned long long)a.height);
			} else if (nd->chain_len < SIM_HEIGHTS) {
				nd->chain_len++;
				memcpy(nd->chain[nd->chain_len], a.value, TD_HASH_LEN);
				s->decisions++;
				if (a.round > s->max_round)
					s->max_round = a.round;
				schedule(s, s->now + rnd(s, 10), EV_START, i);
			}
			break;
		}
	}
	uint32_t ne;
	const struct cons_evidence *ev = cons_evidence(&nd->c, &ne);
	for (uint32_t k = 0; k < ne; k++)
		if (!s->node[ev[k].validator].byz)
			failf(s, "validator %u holds evidence against correct validator %u", i, ev[k].validator);
	s->evidence += ne;
	cons_evidence_clear(&nd->c);
}

static void node_start_height(struct sim *s, uint32_t i)
{
	struct simnode *nd = &s->node[i];
	uint64_t h = nd->chain_len + 1;
	if (nd->chain_len >= SIM_HEIGHTS || (cons_started(&nd->c) && cons_height(&nd->c) == h))
		return;
	if (cons_start(&nd->c, h) != 0)
		failf(s, "validator %u: cons_start(%llu) refused", i, (unsigned long long)h);
	drain(s, i);
}

/* Block sync from a correct peer that decided more heights. */
static void sync_from(struct sim *s, uint32_t i, uint32_t from)
{
	struct simnode *nd = &s->node[i], *src = &s->node[from];
	if (src->byz || src->chain_len <= nd->chain_len)
		return;
	while (nd->chain_len < src->chain_len) {
		nd->chain_len++;
		memcpy(nd->chain[nd->chain_len], src->chain[nd->chain_len], TD_HASH_LEN);
		if (!s->decided[nd->chain_len] || memcmp(s->decision[nd->chain_len], nd->chain[nd->chain_len], TD_HASH_LEN))
			failf(s, "sync: h=%llu differs from the decision", (unsigned long long)nd->chain_len);
	}
	s->syncs++;
	trace(s, "v%u syncs to %llu from v%u", i, (unsigned long long)nd->chain_len, from);
	node_start_height(s, i);
}

static void node_feed(struct sim *s, uint32_t i, const struct msg *m);

static void node_deliver(struct sim *s, uint32_t i, const struct msg *m)
{
	struct simnode *nd = &s->node[i];
	if (m->kind == M_STATUS || m->h > nd->chain_len + 2) {
		if (m->h > nd->chain_len + 1)
			sync_from(s, i, m->from);
		if (m->kind == M_STATUS)
			return;
	}
	store_add(nd, nd->chain_len + 1, m);
	node_feed(s, i, m);
}

/* Gives m to the core and runs what it asks. */
static void node_feed(struct sim *s, uint32_t i, const struct msg *m)
{
	struct simnode *nd = &s->node[i];
	const uint8_t *v = m->nil ? NULL : m->value;
	switch (m->kind) {
	case M_PROPOSAL:
		(void)cons_on_proposal(&nd->c, m->from, m->h, m->r, m->value, m->vr);
		break;
	case M_PREVOTE:
		(void)cons_on_vote(&nd->c, m->from, TD_VOTE_PREVOTE, m->h, m->r, v);
		break;
	case M_PRECOMMIT:
		(void)cons_on_vote(&nd->c, m->from, TD_VOTE_PRECOMMIT, m->h, m->r, v);
		break;
	case M_STATUS:
		break;
	}
	drain(s, i);
}

static void node_boot(struct sim *s, uint32_t i)
{
	struct simnode *nd = &s->node[i];
	nd->epoch++;
	nd->up = true;
	/* what survived on disk: the write-ahead log of the current height */
	uint32_t keep = nd->wal_h == nd->chain_len + 1 && nd->store_h == nd->wal_h ? nd->wal_len : 0;
	memset(nd->ids, 0, sizeof(nd->ids));
	nd->nstore = keep;
	for (uint32_t k = 0; k < keep; k++)
		ids_insert(nd, msg_id(&nd->store[k]));
	if (cons_init(&nd->c, s->n, (int32_t)i, nd->chain_len + 1, &s->cfg, &nd->persisted) != 0) {
		failf(s, "validator %u: cons_init refused", i);
		return;
	}
	node_start_height(s, i);
	for (uint32_t k = 0; k < keep && nd->up; k++)
		node_feed(s, i, &nd->store[k]);
}

static void node_crash(struct sim *s, uint32_t i)
{
	struct simnode *nd = &s->node[i];
	if (!nd->up || nd->byz)
		return;
	trace(s, "v%u crashes", i);
	cons_free(&nd->c);
	nd->up = false;
	nd->epoch++;
}

static void node_gossip(struct sim *s, uint32_t i)
{
	struct simnode *nd = &s->node[i];
	struct msg st;
	memset(&st, 0, sizeof(st));
	st.kind = M_STATUS;
	st.from = i;
	st.h = nd->chain_len + 1;
	broadcast(s, &st);
	if (nd->store_h != st.h)
		return;
	for (uint32_t p = 0; p < s->n; p++) {
		const struct simnode *peer = &s->node[p];
		if (p == i || !peer->up || peer->byz || peer->chain_len + 1 != st.h)
			continue;
		for (uint32_t k = 0; k < nd->nstore; k++) {
			const struct msg *m = &nd->store[k];
			if (m->h == st.h && m->from != p && !store_has(peer, msg_id(m)))
				net_send_via(s, i, p, m);
		}
	}
}

/* ---- the byzantine validator ---- */

static void byz_send(struct sim *s, uint32_t b, uint32_t to, struct msg *m)
{
	record_byz(m);
	net_send(s, to, m);
	(void)b;
}

static void byz_act(struct sim *s, uint32_t b, const struct msg *seen)
{
	struct simnode *nd = &s->node[b];
	uint64_t h = seen->h;
	uint32_t r = seen->r;
	for (uint32_t k = 0; k < nd->nacted && k < 32; k++)
		if (nd->acted_h[k] == h && nd->acted_r[k] == r)
			return;
	nd->acted_h[nd->nacted % 32] = h;
	nd->acted_r[nd->nacted % 32] = r;
	nd->nacted++;

	uint8_t cand[4][TD_HASH_LEN];
	make_value(s, cand[0], h, r, b, 1, rnd(s, 4) == 0);
	if (nd->known_h == h && nd->nknown && rnd(s, 2))
		memcpy(cand[1], nd->known[rnd(s, nd->nknown < 4 ? nd->nknown : 4)], TD_HASH_LEN);
	else
		make_value(s, cand[1], h, r, b, 2, rnd(s, 4) == 0);
	memcpy(cand[2], seen->value, TD_HASH_LEN);
	bool seen_nil = seen->kind == M_STATUS || seen->nil;
	for (uint32_t to = 0; to < s->n; to++) {
		if (to == b)
			continue;
		int copies = rnd(s, 3) == 0 ? 2 : 1; /* sometimes both versions to one peer */
		for (int c = 0; c < copies; c++) {
			struct msg m;
			memset(&m, 0, sizeof(m));
			m.from = b;
			m.h = h;
			m.r = r;
			if ((h % s->n + r % s->n) % s->n == b) {
				m.kind = M_PROPOSAL;
				memcpy(m.value, cand[(to + (uint32_t)c) % 2], TD_HASH_LEN);
				m.vr = (r > 0 && rnd(s, 2) == 0) ? (int32_t)rnd(s, r) : -1;
				byz_send(s, b, to, &m);
			}
			for (int k = M_PREVOTE; k <= M_PRECOMMIT; k++) {
				m.kind = (enum msg_kind)k;
				m.vr = -1;
				uint32_t pick = rnd(s, 4);
				m.nil = pick == 3 || (pick == 2 && seen_nil);
				memcpy(m.value, cand[pick == 3 ? 0 : pick], TD_HASH_LEN);
				if (m.nil)
					memset(m.value, 0, TD_HASH_LEN);
				byz_send(s, b, to, &m);
			}
		}
	}
}

/* ---- one run ---- */

static void run_event(struct sim *s, const struct event *e)
{
	struct simnode *nd = &s->node[e->node];
	switch (e->kind) {
	case EV_DELIVER:
		if (!nd->up)
			return;
		if (nd->byz) {
			if (e->m.kind == M_STATUS || s->node[e->m.from].byz)
				return;
			if (nd->known_h != e->m.h) {
				nd->known_h = e->m.h;
				nd->nknown = 0;
			}
			if (!e->m.nil)
				memcpy(nd->known[nd->nknown++ % 4], e->m.value, TD_HASH_LEN);
			byz_act(s, e->node, &e->m);
			return;
		}
		node_deliver(s, e->node, &e->m);
		return;
	case EV_TIMEOUT:
		if (!nd->up || e->epoch != nd->epoch)
			return;
		(void)cons_on_timeout(&nd->c, e->tkind, e->m.h, e->m.r);
		drain(s, e->node);
		return;
	case EV_VALUE: {
		if (!nd->up || e->epoch != nd->epoch)
			return;
		uint8_t v[TD_HASH_LEN];
		make_value(s, v, e->m.h, e->m.r, e->node, 0, false);
		(void)cons_on_value(&nd->c, e->m.h, e->m.r, v);
		drain(s, e->node);
		return;
	}
	case EV_VALIDITY:
		if (!nd->up || e->epoch != nd->epoch)
			return;
		(void)cons_on_validity(&nd->c, e->m.value, value_ok(e->m.value));
		drain(s, e->node);
		return;
	case EV_START:
		if (!nd->up || e->epoch != nd->epoch)
			return;
		node_start_height(s, e->node);
		return;
	case EV_CRASH:
		node_crash(s, e->node);
		return;
	case EV_RESTART:
		if (nd->up || nd->byz)
			return;
		trace(s, "v%u restarts at h=%llu", e->node, (unsigned long long)nd->chain_len + 1);
		node_boot(s, e->node);
		return;
	case EV_SPLIT:
		for (uint32_t i = 0; i < s->n; i++)
			s->node[i].side = (int)rnd(s, 2);
		trace(s, "partition");
		return;
	case EV_HEAL:
		for (uint32_t i = 0; i < s->n; i++) {
			s->node[i].side = 0;
			if (!s->node[i].up && !s->node[i].byz)
				node_boot(s, i);
		}
		trace(s, "heal");
		return;
	case EV_GOSSIP:
		if (nd->up && !nd->byz)
			node_gossip(s, e->node);
		schedule(s, s->now + SIM_GOSSIP_MS, EV_GOSSIP, e->node);
		return;
	}
}

static bool all_done(const struct sim *s)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (!s->node[i].byz && s->node[i].chain_len < SIM_HEIGHTS)
			return false;
	return true;
}

/* Runs one seed; returns true when every check passed (else s->fail says why). */
static bool sim_run(struct sim *s, uint64_t seed, bool verbose)
{
	struct event *heap = s->heap;
	size_t capheap = s->capheap;
	memset(s, 0, offsetof(struct sim, node));
	s->heap = heap; /* kept across runs */
	s->capheap = capheap;
	for (uint32_t i = 0; i < SIM_MAX_N; i++)
		memset(&s->node[i], 0, offsetof(struct simnode, ids));
	if (++g_gen == 0)
		g_gen = 1;
	s->seed = seed;
	s->verbose = verbose;
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	s->n = (seed & 1) ? 7 : 4;
	cons_config_default(&s->cfg);

	/* faults: a chaos period, then a network that delivers */
	uint32_t mode = rnd(s, 8);
	s->chaos_end = mode == 0 ? 0 : 1000 + rnd(s, 25000);
	s->p_loss = rnd(s, 300);
	s->p_dup = rnd(s, 200);
	s->max_delay = 1 + rnd(s, mode >= 6 ? 2500 : 400);
	s->stable_delay = 1 + rnd(s, 100);
	s->byz = (s->n >= 4 && rnd(s, 3) == 0) ? (int)rnd(s, s->n) : -1;
	for (uint32_t i = 0; i < s->n; i++) {
		s->node[i].byz = (int)i == s->byz;
		s->node[i].up = true;
	}
	if (s->chaos_end) {
		uint32_t crashes = rnd(s, 4);
		for (uint32_t k = 0; k < crashes; k++) {
			uint32_t v = rnd(s, s->n);
			uint64_t t = rnd(s, (uint32_t)s->chaos_end);
			schedule(s, t, EV_CRASH, v);
			uint64_t back = t + 1 + rnd(s, 8000);
			if (back < s->chaos_end)
				schedule(s, back, EV_RESTART, v);
		}
		uint32_t splits = rnd(s, 3);
		for (uint32_t k = 0; k < splits; k++)
			schedule(s, rnd(s, (uint32_t)s->chaos_end), EV_SPLIT, 0);
		if (splits && rnd(s, 2))
			schedule(s, rnd(s, (uint32_t)s->chaos_end), EV_HEAL, 0);
		schedule(s, s->chaos_end, EV_HEAL, 0);
	}
	for (uint32_t i = 0; i < s->n; i++)
		if (!s->node[i].byz)
			node_boot(s, i);
	for (uint32_t i = 0; i < s->n; i++)
		schedule(s, SIM_GOSSIP_MS + rnd(s, SIM_GOSSIP_MS), EV_GOSSIP, i);

	struct event e;
	while (!s->fail[0] && pop(s, &e)) {
		s->now = e.t;
		s->events++;
		if (s->now > s->chaos_end + SIM_LIVE_MS) {
			failf(s, "liveness: not every correct validator reached %d heights %d s after the last fault",
			      SIM_HEIGHTS, SIM_LIVE_MS / 1000);
			break;
		}
		run_event(s, &e);
		if (s->now >= s->chaos_end && all_done(s)) {
			s->done_at = s->now - s->chaos_end;
			break;
		}
	}
	if (!s->fail[0] && !all_done(s))
		failf(s, "liveness: event queue ran dry");
	for (uint32_t i = 0; i < s->n; i++)
		if (s->node[i].up && !s->node[i].byz)
			cons_free(&s->node[i].c);
	return !s->fail[0];
}

static uint64_t env_u64(const char *name, uint64_t dflt, bool *set)
{
	const char *v = getenv(name);
	if (set)
		*set = v && *v;
	if (!v || !*v)
		return dflt;
	return strtoull(v, NULL, 10);
}

#if defined(__SANITIZE_ADDRESS__)
#define SIM_DEFAULT_SEEDS 3000
#else
#define SIM_DEFAULT_SEEDS 5000
#endif

static void test_sim_seeds(void **state)
{
	(void)state;
	static struct sim s;
	g_table = calloc((size_t)1 << SIM_TABLE_BITS, sizeof(*g_table));
	assert_non_null(g_table);
	bool one;
	uint64_t seed = env_u64("TD_SIM_SEED", 0, &one);
	uint64_t count = env_u64("TD_SIM_SEEDS", SIM_DEFAULT_SEEDS, NULL);
	bool verbose = env_u64("TD_SIM_VERBOSE", 0, NULL) != 0;
	uint64_t ran = 0, failures = 0, heights = 0, max_round = 0, evidence = 0, events = 0, syncs = 0, max_done = 0;
	uint64_t first = one ? seed : 1, last = one ? seed : count;
	for (uint64_t sd = first; sd <= last; sd++) {
		ran++;
		if (!sim_run(&s, sd, verbose)) {
			failures++;
			printf("sim: FAILED seed=%llu n=%u: %s (t=%llu ms)\n", (unsigned long long)sd, s.n, s.fail,
			       (unsigned long long)s.now);
			printf("sim: replay with TD_SIM_SEED=%llu TD_SIM_VERBOSE=1 build/tests/test_sim\n",
			       (unsigned long long)sd);
			if (failures >= 10)
				break;
		}
		heights += s.decisions;
		evidence += s.evidence;
		events += s.events;
		syncs += s.syncs;
		if (s.max_round > max_round)
			max_round = s.max_round;
		if (s.done_at > max_done)
			max_done = s.done_at;
	}
	printf("sim: %llu seeds, %llu failures, heights decided=%llu, max rounds=%llu, evidence=%llu, syncs=%llu, "
	       "events=%llu, slowest finish after last fault=%llu ms\n",
	       (unsigned long long)ran, (unsigned long long)failures, (unsigned long long)heights,
	       (unsigned long long)max_round, (unsigned long long)evidence, (unsigned long long)syncs,
	       (unsigned long long)events, (unsigned long long)max_done);
	free(g_table);
	g_table = NULL;
	free(s.heap);
	s.heap = NULL;
	s.capheap = 0;
	assert_int_equal(failures, 0);
}

/* The checks themselves catch what they claim to (a simulator that cannot fail proves nothing). */
static void test_sim_checks(void **state)
{
	(void)state;
	static struct sim s;
	g_table = calloc((size_t)1 << SIM_TABLE_BITS, sizeof(*g_table));
	assert_non_null(g_table);
	memset(&s, 0, offsetof(struct sim, node));
	g_gen++;
	s.n = 4;
	s.seed = 1;
	struct cons_action a;
	memset(&a, 0, sizeof(a));
	a.kind = CONS_ACT_DECIDE;
	a.height = 1;
	a.round = 0;
	make_value(&s, a.value, 1, 0, 1, 0, false);
	/* three signers, but nobody sent those precommits */
	a.n_signers = 3;
	a.signers[0] = 0;
	a.signers[1] = 1;
	a.signers[2] = 2;
	check_decision(&s, 0, &a);
	assert_non_null(strstr(s.fail, "did not precommit"));
	/* now they did: the decision passes */
	s.fail[0] = 0;
	for (uint32_t v = 0; v < 3; v++) {
		struct msg m;
		memset(&m, 0, sizeof(m));
		m.kind = M_PRECOMMIT;
		m.from = v;
		m.h = 1;
		memcpy(m.value, a.value, TD_HASH_LEN);
		record_correct(&s, &m);
	}
	check_decision(&s, 0, &a);
	assert_string_equal(s.fail, "");
	/* two signers are not more than two thirds of 4 */
	a.n_signers = 2;
	check_decision(&s, 1, &a);
	assert_non_null(strstr(s.fail, "only 2 signers"));
	/* another value at the same height breaks agreement */
	s.fail[0] = 0;
	a.n_signers = 3;
	a.value[20] ^= 1;
	check_decision(&s, 2, &a);
	assert_non_null(strstr(s.fail, "agreement"));
	/* a correct validator signing two precommits for one (h, r) is caught */
	s.fail[0] = 0;
	struct msg m;
	memset(&m, 0, sizeof(m));
	m.kind = M_PRECOMMIT;
	m.from = 0;
	m.h = 1;
	m.nil = true;
	record_correct(&s, &m);
	assert_non_null(strstr(s.fail, "double sign"));
	/* an invalid value is refused */
	s.fail[0] = 0;
	a.value[15] = INVALID_MARK;
	a.height = 2;
	check_decision(&s, 3, &a);
	assert_non_null(strstr(s.fail, "invalid value"));
	free(g_table);
	g_table = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sim_checks),
		cmocka_unit_test(test_sim_seeds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
