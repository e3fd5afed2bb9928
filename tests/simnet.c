/*
 * tenderd-sim: a deterministic simulator of whole tenderd nodes.
 *
 * It runs the node that ships: node/node.c with its gossip, proposals,
 * consensus driver, block sync, chain and mempool, linked from the same
 * objects as the daemon. Only the seam of node/nodeio.h is simulated: one
 * seed drives a virtual clock, the timers, a network of links between n
 * validators (latency, reordering, loss, duplication, cut and flapping
 * links, partitions, connections that drop the messages queued on them, as
 * TCP does), clock skew, and crashes and restarts of nodes at any step.
 * Records enter through node_submit, the function the socket's publish uses.
 *
 * Checked after every event:
 * - agreement: every node holds the same block bytes at every height;
 * - commit validity: every block's commit is signed by more than two thirds
 *   of the validators (chain_apply checks the signatures);
 * - no acknowledged record lost: a record reported committed at height h
 *   (as a publish with wait=true would be answered) is at height h on every
 *   node that reached h, restarts included.
 * Up to f validators may be byzantine: each runs the real node behind an io
 * that equivocates, floods far-round votes, withholds proposals and
 * records, proposes for its own far rounds, lies in STATUS, or proposes a
 * block that validates but is over the store's cap.
 *
 * With governance (0x8000) the last node is in no genesis: an honest
 * validator proposes it as a validator and every honest validator approves
 * (records lost to crashes are offered again); once that is in force, a
 * genesis validator is voted out the same way. The newcomer gets no
 * connection until a peer's chain names it (as p2p refuses unknown keys),
 * commits are checked against the set of their height, and both changes
 * must take effect for the run to end.
 *
 * Liveness: after the faults end and the network heals (every link up, or
 * with stars only the links of one hub: connected through it), every
 * honest node must
 * commit every record published since, and every record committed anywhere,
 * within a bound of virtual time. A record accepted into the mempool of a
 * node that crashed before passing it on may be lost: only a commit is an
 * acknowledgement.
 *
 * A failing seed prints the command that replays it with a trace.
 */
#define _GNU_SOURCE /* nftw */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "chain.h"
#include "chain_int.h"
#include "config.h"
#include "driver.h"
#include "log.h"
#include "node.h"
#include "registry.h"
#include "store.h"
#include "tenderd/evidence.h"
#include "tenderd/governance.h"
#include "tenderd/json.h"
#include "tenderd/merkle.h"
#include "tenderd/msg.h"
#include "tenderd/record.h"
#include "tenderd/release.h"
#include "wal.h"

#define SIM_NODES_MAX 7
#define SIM_EPOCH_MS 1600000000000ull /* the virtual wall clock starts here (2020-09-13) */
#define SIM_GENESIS_MS (SIM_EPOCH_MS - 1000)

/* Fault classes a run may draw from (bit flags). */
enum sim_fault {
	SIM_F_DELAY = 1u << 0,     /* latency up to 200 ms, so messages reorder across links */
	SIM_F_DUP = 1u << 1,       /* a message delivered twice */
	SIM_F_PARTITION = 1u << 2, /* symmetric partitions that heal, whole connections dropped */
	SIM_F_FLAP = 1u << 3,      /* single links cut and restored, queued messages lost */
	SIM_F_STAR = 1u << 4,      /* only links through one hub are up */
	SIM_F_CRASH = 1u << 5,     /* kill -9 and restart at any step */
	SIM_F_SKEW = 1u << 6,      /* node clocks up to 2 s apart */
	/* Byzantine validators (f of them, running the real node with a hostile io): */
	SIM_F_EQUIVOCATE = 1u << 7, /* conflicting votes and proposals to different peers */
	SIM_F_FLOOD = 1u << 8,      /* bursts of validly signed votes for far rounds */
	SIM_F_WITHHOLD = 1u << 9,   /* proposals and records withheld from some peers */
	SIM_F_FARPROP = 1u << 10,   /* proposals for its own far rounds naming records that do not exist */
	SIM_F_LIE = 1u << 11,       /* a STATUS claiming height 2^64 - 1 */
	SIM_F_BIGBLOCK = 1u << 12,  /* a block that validates but is over the store's cap (~10 MB) */
	SIM_F_ASYM = 1u << 13,      /* one direction of a connection silently loses everything */
	SIM_F_EDGECLOCK =
		1u << 14, /* byzantine clocks at the edge of the timely window: some find its proposals timely */
	SIM_F_GOVERN =
		1u << 15, /* the last node starts unknown to the chain: voted in as a validator, then one voted out */
};
#define SIM_F_BYZANTINE \
	(SIM_F_EQUIVOCATE | SIM_F_FLOOD | SIM_F_WITHHOLD | SIM_F_FARPROP | SIM_F_LIE | SIM_F_BIGBLOCK | SIM_F_EDGECLOCK)

/* Every fault. */
#define SIM_MIX_ALL                                                                                       \
	(SIM_F_DELAY | SIM_F_DUP | SIM_F_SKEW | SIM_F_PARTITION | SIM_F_FLAP | SIM_F_STAR | SIM_F_CRASH | \
	 SIM_F_BYZANTINE | SIM_F_ASYM)
/* The mix every CI seed runs: every fault but the oversized block, which makes a seed ~100 times slower. */
#define SIM_MIX_DEFAULT (SIM_MIX_ALL & ~SIM_F_BIGBLOCK)

enum ev_kind { EV_DELIVER, EV_TIMER, EV_PUBLISH, EV_CRASH, EV_RESTART, EV_LINKS, EV_REDIAL, EV_BIG, EV_GOV };

struct ev {
	uint64_t t, seq;
	enum ev_kind kind;
	uint32_t node, from;
	uint32_t gen; /* TIMER: the arming it belongs to; DELIVER: the connection epoch */
	enum node_timer timer;
	uint8_t *msg;
	size_t len;
};

struct simnode {
	struct sim *s;
	uint32_t idx;
	char store[16];    /* its store's name in s->disks */
	struct node *node; /* NULL while crashed */
	struct node_io io;
	struct config cfg;
	int64_t skew_ms;
	bool byzantine;
	uint32_t timer_gen[NODE_TIMERS];
	bool timer_on[NODE_TIMERS];
	uint64_t checked; /* heights checked for agreement */
	/*
	 * The acknowledged records were last checked against this node's store at
	 * version acks_ver, chain height acks_top and s->ack_gen acks_gen: while
	 * all three stay, checking again finds the same.
	 */
	bool acks_valid;
	uint64_t acks_ver, acks_top;
	uint64_t acks_gen;
};

struct ack {
	uint8_t id[TD_HASH_LEN];
	uint64_t height; /* 0 until committed somewhere */
	bool must;       /* published after the heal: must commit */
};

struct sim {
	uint64_t seed;
	uint64_t rng;
	unsigned faults;
	bool trace;
	uint64_t now, seq;
	uint32_t n;
	char dir[256];
	struct td_genesis g;
	struct store_mem_world *disks; /* every node's store, in memory */
	uint8_t sk[SIM_NODES_MAX][TD_SECKEY_LEN];
	struct simnode nodes[SIM_NODES_MAX];
	bool link[SIM_NODES_MAX][SIM_NODES_MAX];      /* [i][j], symmetric */
	bool mute[SIM_NODES_MAX][SIM_NODES_MAX];      /* [from][to]: connected, but what from sends is lost */
	uint32_t epoch[SIM_NODES_MAX][SIM_NODES_MAX]; /* bumped when a connection drops */
	struct ev *heap;
	size_t nheap, capheap;
	uint8_t (*block_hash)[TD_HASH_LEN]; /* first block bytes' hash seen per height */
	uint64_t nblock_hash;
	struct ack *acks;
	uint32_t nacks, capacks;
	uint64_t ack_gen; /* bumped when an ack is added or gets its height */
	uint32_t published;
	json_t *fragment;
	uint64_t heal_at, deadline;
	char failure[512];
	bool halted; /* the failure is a halt (liveness), not a broken rule */
	uint64_t events;
	/* SIM_F_GOVERN: node n-1 (the newcomer) is in no genesis; two changes are voted through. */
	bool govern;
	uint32_t nv;                              /* genesis validators: n, or n - 1 with govern */
	uint32_t stage;                           /* 0: adding the newcomer, 1: removing validator nv - 1, 2: done */
	struct td_record *prop[2];                /* the proposal of each stage, once made */
	struct td_record *appr[2][SIM_NODES_MAX]; /* each node's approval of it */
	bool gov_conn[SIM_NODES_MAX];             /* node i and the newcomer were announced connected */
};

/* ---- randomness (splitmix64) ---- */

static uint64_t rnd(struct sim *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(struct sim *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

static bool chance(struct sim *s, uint32_t pct)
{
	return rnd_below(s, 100) < pct;
}

static void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	if (s->failure[0])
		return;
	va_start(ap, fmt);
	vsnprintf(s->failure, sizeof(s->failure), fmt, ap);
	va_end(ap);
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	if (!s->trace)
		return;
	fprintf(stderr, "[%8llu] ", (unsigned long long)s->now);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- the event queue: a binary heap by (time, sequence) ---- */

static bool ev_before(const struct ev *a, const struct ev *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void ev_push(struct sim *s, struct ev e)
{
	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? 2 * s->capheap : 1024;
		s->heap = realloc(s->heap, s->capheap * sizeof(*s->heap));
		if (!s->heap)
			abort();
	}
	e.seq = s->seq++;
	size_t i = s->nheap++;
	while (i > 0 && ev_before(&e, &s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = e;
}

static struct ev ev_pop(struct sim *s)
{
	struct ev top = s->heap[0], last = s->heap[--s->nheap];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->nheap)
			break;
		if (c + 1 < s->nheap && ev_before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!ev_before(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nheap)
		s->heap[i] = last;
	return top;
}

/* ---- the network ---- */

static bool linked(const struct sim *s, uint32_t a, uint32_t b)
{
	if (a == b || !s->link[a][b] || !s->nodes[a].node || !s->nodes[b].node)
		return false;
	/* A key the chain does not name gets no connection (p2p refuses it at the handshake). */
	if (s->govern && (a == s->n - 1 || b == s->n - 1)) {
		uint32_t other = a == s->n - 1 ? b : a;
		return registry_slots(node_registry(s->nodes[other].node)) > s->n - 1;
	}
	return true;
}

static void net_send(struct sim *s, uint32_t from, uint32_t to, const uint8_t *msg, size_t len)
{
	if (!linked(s, from, to) || s->mute[from][to])
		return;
	uint32_t copies = (s->faults & SIM_F_DUP) && chance(s, 2) ? 2 : 1;
	for (uint32_t c = 0; c < copies; c++) {
		uint64_t lat = 1 + rnd_below(s, 5);
		if (s->faults & SIM_F_DELAY)
			lat += rnd_below(s, chance(s, 10) ? 200 : 20);
		struct ev e = { .t = s->now + lat,
				.kind = EV_DELIVER,
				.node = to,
				.from = from,
				.gen = s->epoch[from][to],
				.len = len };
		e.msg = malloc(len ? len : 1);
		if (!e.msg)
			abort();
		memcpy(e.msg, msg, len);
		ev_push(s, e);
	}
}

static uint64_t io_wall_ms(void *ctx);

/* ---- byzantine validators: the real node behind a hostile io ---- */

static void byz_vote(struct simnode *sn, uint32_t to, enum td_vote_type type, uint64_t h, uint32_t r,
		     const uint8_t *hash)
{
	struct sim *s = sn->s;
	uint8_t sig[TD_SIG_LEN];
	struct td_buf b;
	td_vote_sign(sig, s->g.hash, type, h, r, hash, s->sk[sn->idx]);
	td_buf_init(&b);
	td_msg_vote(&b, type, h, r, hash, sn->idx, sig);
	net_send(s, sn->idx, to, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
}

/* A proposal for one of its own rounds far ahead, naming two records nobody has. */
static void byz_far_proposal(struct simnode *sn, uint32_t to)
{
	struct sim *s = sn->s;
	struct chain *c = node_chain(sn->node);
	struct td_record fake[2];
	struct td_record *ptrs[2] = { &fake[0], &fake[1] };
	struct td_block blk;
	uint8_t sig[TD_SIG_LEN];
	struct td_buf b;
	uint64_t h = chain_height(c) + 1;
	uint32_t r = 1000 + (uint32_t)rnd_below(s, 100000);
	r += (uint32_t)((sn->idx + s->n - (h + r) % s->n) % s->n);
	memset(fake, 0, sizeof(fake));
	memset(&blk, 0, sizeof(blk));
	for (int k = 0; k < 2; k++)
		for (size_t j = 0; j < TD_HASH_LEN; j += 8) {
			uint64_t x = rnd(s);
			memcpy(fake[k].id + j, &x, 8);
		}
	blk.hdr.height = h;
	memcpy(blk.hdr.prev_hash, chain_last_hash(c), TD_HASH_LEN);
	blk.hdr.time_ms = io_wall_ms(sn);
	memcpy(blk.hdr.proposer, s->g.v[sn->idx].pk, TD_PUBKEY_LEN);
	blk.hdr.n_records = 2;
	td_records_root(blk.hdr.records_root, ptrs, 2);
	td_merkle_root(blk.hdr.evidence_root, NULL, 0);
	memcpy(blk.hdr.next_validators, s->g.validators_hash, TD_HASH_LEN);
	blk.records = ptrs;
	td_buf_init(&b);
	td_header_encode(&b, &blk.hdr);
	td_hash(blk.hash, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
	td_proposal_sign(sig, s->g.hash, h, r, -1, blk.hash, s->sk[sn->idx]);
	td_buf_init(&b);
	td_msg_proposal(&b, &blk, r, -1, sig);
	net_send(s, sn->idx, to, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
}

/*
 * A twin of its own proposal m: the same records and evidence, a block time
 * 1 ms later, so another block hash, signed for the same height and round.
 */
static void byz_twin_proposal(struct simnode *sn, uint32_t to, const struct td_msg *m)
{
	struct sim *s = sn->s;
	struct td_block blk = { .hdr = m->hdr };
	struct td_record *fake = td_xcalloc(m->n_ids ? m->n_ids : 1, sizeof(*fake));
	struct td_record **ptrs = td_xcalloc(m->n_ids ? m->n_ids : 1, sizeof(*ptrs));
	struct td_evidence ev[TD_BLOCK_EVIDENCE_MAX];
	uint8_t sig[TD_SIG_LEN];
	struct td_buf b;

	for (uint32_t i = 0; i < m->n_ids; i++) {
		memcpy(fake[i].id, m->ids[i], TD_HASH_LEN);
		ptrs[i] = &fake[i];
	}
	for (uint32_t i = 0; i < m->n_items; i++)
		if (td_evidence_decode(&ev[i], m->items[i].p, m->items[i].len) != 0)
			goto out;
	blk.records = ptrs;
	blk.evidence = ev;
	blk.hdr.time_ms++;
	td_buf_init(&b);
	td_header_encode(&b, &blk.hdr);
	td_hash(blk.hash, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
	td_proposal_sign(sig, s->g.hash, m->height, m->round, m->valid_round, blk.hash, s->sk[sn->idx]);
	td_buf_init(&b);
	td_msg_proposal(&b, &blk, m->round, m->valid_round, sig);
	net_send(s, sn->idx, to, (const uint8_t *)b.sb.data, b.sb.size);
	td_buf_free(&b);
out:
	free(ptrs);
	free(fake);
}

/* What a byzantine node sends in place of msg to one peer. */
static void byz_send_one(struct simnode *sn, uint32_t to, const uint8_t *msg, size_t len, const struct td_msg *m)
{
	struct sim *s = sn->s;
	unsigned f = s->faults;
	if (!linked(s, sn->idx, to))
		return;
	if ((f & SIM_F_FLOOD) && chance(s, 2)) {
		enum td_vote_type type = chance(s, 50) ? TD_VOTE_PREVOTE : TD_VOTE_PRECOMMIT;
		uint64_t h = chain_height(node_chain(sn->node)) + 1;
		for (int k = 0; k < 64; k++) {
			uint8_t hash[TD_HASH_LEN];
			memset(hash, 0, sizeof(hash));
			uint64_t x = rnd(s);
			memcpy(hash, &x, sizeof(x));
			byz_vote(sn, to, type, h, 100 + (uint32_t)rnd_below(s, 1000000), hash);
		}
	}
	if ((f & SIM_F_FARPROP) && chance(s, 2))
		for (int k = 0; k < 20; k++)
			byz_far_proposal(sn, to);
	if ((f & SIM_F_LIE) && m && m->type == TD_MSG_STATUS) {
		struct td_buf b;
		td_buf_init(&b);
		td_msg_status(&b, UINT64_MAX, m->hash);
		net_send(s, sn->idx, to, (const uint8_t *)b.sb.data, b.sb.size);
		td_buf_free(&b);
		return;
	}
	if ((f & SIM_F_WITHHOLD) && m && (m->type == TD_MSG_PROPOSAL || m->type == TD_MSG_RECORDS) && chance(s, 50))
		return;
	if ((f & SIM_F_EQUIVOCATE) && m && m->type == TD_MSG_PROPOSAL && (m->height + m->round) % s->n == sn->idx &&
	    chance(s, 50)) {
		byz_twin_proposal(sn, to, m);
		return;
	}
	if ((f & SIM_F_EQUIVOCATE) && m && m->type == TD_MSG_VOTE && chance(s, 50)) {
		uint8_t other[TD_HASH_LEN];
		memset(other, 0, sizeof(other));
		uint64_t x = rnd(s);
		memcpy(other, &x, sizeof(x));
		byz_vote(sn, to, m->vote_type, m->height, m->round, chance(s, 30) ? NULL : other);
		return;
	}
	net_send(s, sn->idx, to, msg, len);
}

static void byz_send(struct simnode *sn, uint32_t to, const uint8_t *msg, size_t len)
{
	struct td_msg m;
	bool ok = td_msg_decode(&m, msg, len) == 0;
	for (uint32_t v = 0; v < sn->s->n; v++)
		if (v != sn->idx && (to == NODE_ALL || to == v))
			byz_send_one(sn, v, msg, len, ok ? &m : NULL);
	if (ok)
		td_msg_free(&m);
}

/* ---- the io of one simulated node ---- */

static void byz_send(struct simnode *sn, uint32_t to, const uint8_t *msg, size_t len);

static void io_send(void *ctx, uint32_t to, const uint8_t *msg, size_t len)
{
	struct simnode *sn = ctx;
	struct sim *s = sn->s;
	if (sn->byzantine) {
		byz_send(sn, to, msg, len);
		return;
	}
	if ((s->faults & SIM_F_CRASH) && s->now < s->heal_at && len > 1 && msg[1] == TD_MSG_VOTE && chance(s, 3)) {
		/* Crash right after a vote leaves, before what follows it (the block's write) happens. */
		struct td_msg m;
		if (td_msg_decode(&m, msg, len) == 0) {
			if (m.vote_type == TD_VOTE_PRECOMMIT && !m.nil) {
				ev_push(s, (struct ev){ .t = s->now, .kind = EV_CRASH, .node = sn->idx });
				ev_push(s, (struct ev){ .t = s->now + 20 + rnd_below(s, 800),
							.kind = EV_RESTART,
							.node = sn->idx });
			}
			td_msg_free(&m);
		}
	}
	if (to != NODE_ALL) {
		net_send(s, sn->idx, to, msg, len);
		return;
	}
	for (uint32_t v = 0; v < s->n; v++)
		net_send(s, sn->idx, v, msg, len);
}

static void link_drop(struct sim *s, uint32_t a, uint32_t b);

static void io_disconnect(void *ctx, uint32_t v, const char *reason)
{
	struct simnode *sn = ctx;
	struct sim *s = sn->s;
	trace(s, "node %u drops its connection to %u: %s", sn->idx, v, reason);
	if (!s->nodes[v].byzantine && !sn->byzantine) {
		fail(s, "node %u dropped honest peer %u: %s", sn->idx, v, reason);
		return;
	}
	/* The transport redials after a backoff. */
	link_drop(s, sn->idx, v);
	ev_push(s, (struct ev){ .t = s->now + 1000, .kind = EV_REDIAL, .node = sn->idx, .from = v });
}

static void link_up(struct sim *s, uint32_t a, uint32_t b);

static bool io_connected(void *ctx, uint32_t v)
{
	struct simnode *sn = ctx;
	return v < sn->s->n && linked(sn->s, sn->idx, v);
}

static uint32_t io_peer_count(void *ctx)
{
	struct simnode *sn = ctx;
	uint32_t k = 0;
	for (uint32_t v = 0; v < sn->s->n; v++)
		k += linked(sn->s, sn->idx, v);
	return k;
}

static uint64_t io_wall_ms(void *ctx)
{
	struct simnode *sn = ctx;
	return (uint64_t)((int64_t)(SIM_EPOCH_MS + sn->s->now) + sn->skew_ms);
}

static uint64_t io_mono_ms(void *ctx)
{
	struct simnode *sn = ctx;
	return sn->s->now;
}

static void io_timer(void *ctx, enum node_timer kind, uint64_t delay_ms)
{
	struct simnode *sn = ctx;
	sn->timer_gen[kind]++;
	sn->timer_on[kind] = delay_ms != NODE_TIMER_OFF;
	if (!sn->timer_on[kind])
		return;
	struct ev e = {
		.t = sn->s->now + delay_ms, .kind = EV_TIMER, .node = sn->idx, .gen = sn->timer_gen[kind], .timer = kind
	};
	ev_push(sn->s, e);
}

static bool io_timer_pending(void *ctx, enum node_timer kind)
{
	struct simnode *sn = ctx;
	return sn->timer_on[kind];
}

static json_t *io_peers_json(void *ctx)
{
	return json_array();
}

static void io_traffic(void *ctx, uint64_t *sent, uint64_t *received)
{
	*sent = *received = 0;
}

static int io_open_store(void *ctx, struct store **out, const char *path, char *err, size_t errlen)
{
	struct simnode *sn = ctx;
	return store_open_mem(out, sn->s->disks, sn->store, err, errlen);
}

/* ---- nodes: start, crash, links ---- */

/* The node other than the newcomer of a pair that holds it, or NODE_ALL. */
static uint32_t newcomer_pair(const struct sim *s, uint32_t a, uint32_t b)
{
	if (!s->govern)
		return NODE_ALL;
	return a == s->n - 1 ? b : b == s->n - 1 ? a : NODE_ALL;
}

/* True if both nodes were told of the connection between a and b (node_on_connect). */
static bool announced(const struct sim *s, uint32_t a, uint32_t b)
{
	uint32_t o = newcomer_pair(s, a, b);
	return o == NODE_ALL ? linked(s, a, b) : s->gov_conn[o];
}

/* Records that a and b were told of their connection (or its end). */
static void set_announced(struct sim *s, uint32_t a, uint32_t b, bool on)
{
	uint32_t o = newcomer_pair(s, a, b);
	if (o != NODE_ALL)
		s->gov_conn[o] = on;
}

static void link_drop(struct sim *s, uint32_t a, uint32_t b)
{
	bool was = announced(s, a, b);
	s->link[a][b] = s->link[b][a] = false;
	s->epoch[a][b]++;
	s->epoch[b][a]++;
	if (was) {
		node_on_disconnect(s->nodes[a].node, b);
		node_on_disconnect(s->nodes[b].node, a);
	}
	set_announced(s, a, b, false);
}

static void link_up(struct sim *s, uint32_t a, uint32_t b)
{
	if (a == b || s->link[a][b])
		return;
	s->link[a][b] = s->link[b][a] = true;
	s->epoch[a][b]++;
	s->epoch[b][a]++;
	if (linked(s, a, b)) {
		node_on_connect(s->nodes[a].node, b);
		node_on_connect(s->nodes[b].node, a);
		set_announced(s, a, b, true);
	}
}

static void node_boot(struct sim *s, uint32_t i)
{
	struct simnode *sn = &s->nodes[i];
	char err[TD_ERRMSG_MAX];
	sn->acks_valid = false;
	for (int k = 0; k < NODE_TIMERS; k++) {
		sn->timer_gen[k]++;
		sn->timer_on[k] = false;
	}
	if (node_new(&sn->node, &sn->cfg, &s->g, s->sk[i], &sn->io, err, sizeof(err)) != 0) {
		fail(s, "node %u cannot start: %s", i, err);
		return;
	}
	trace(s, "node %u up at height %llu", i, (unsigned long long)node_height(sn->node));
	for (uint32_t v = 0; v < s->n; v++) {
		if (linked(s, i, v)) {
			s->epoch[i][v]++;
			s->epoch[v][i]++;
			node_on_connect(sn->node, v);
			node_on_connect(s->nodes[v].node, i);
			set_announced(s, i, v, true);
		}
	}
}

/* kill -9: the process and its connections are gone; what it synced to disk stays. */
static void node_crash(struct sim *s, uint32_t i)
{
	struct simnode *sn = &s->nodes[i];
	if (!sn->node)
		return;
	trace(s, "node %u crashes at height %llu", i, (unsigned long long)node_height(sn->node));
	for (uint32_t v = 0; v < s->n; v++) {
		if (announced(s, i, v)) {
			s->epoch[i][v]++;
			s->epoch[v][i]++;
			node_on_disconnect(s->nodes[v].node, i);
		}
		set_announced(s, i, v, false);
	}
	struct node *dead = sn->node;
	const struct wal *w = node_wal(dead);
	char wpath[PATH_MAX];
	uint64_t synced = w ? wal_synced(w) : 0, size = w ? wal_size(w) : 0;
	snprintf(wpath, sizeof(wpath), "%s", w ? wal_path(w) : "");
	sn->node = NULL;
	node_stop(dead);
	node_free(dead);
	if (size > synced) {
		/* What was written to the consensus log but not synced may be lost, up to a torn last entry. */
		uint64_t keep = synced + rnd_below(s, size - synced + 1);
		trace(s, "node %u: consensus log torn at %llu of %llu bytes (%llu synced)", i, (unsigned long long)keep,
		      (unsigned long long)size, (unsigned long long)synced);
		if (truncate(wpath, (off_t)keep) != 0)
			fail(s, "node %u: cannot tear the consensus log: %s", i, strerror(errno));
	}
	if (store_mem_crash(s->disks, sn->store) != 0)
		fail(s, "node %u: no store to crash", i);
	for (int k = 0; k < NODE_TIMERS; k++) {
		sn->timer_gen[k]++;
		sn->timer_on[k] = false;
	}
}

/* ---- records ---- */

static void publish_one(struct sim *s, uint32_t i, const json_t *fragment);

static void publish(struct sim *s, uint32_t i)
{
	/*
	 * What must commit enters through an honest node, and with governance
	 * not through the validator to be voted out: its pending records can
	 * never commit once its removal takes effect.
	 */
	while (s->now >= s->heal_at && (s->nodes[i].byzantine || (s->govern && i == s->nv - 1)))
		i = (i + 1) % s->n;
	publish_one(s, i, s->fragment);
}

/*
 * A byzantine validator's own records, each near the record cap, enough for
 * one block over the store's cap; its node proposes them all at once.
 */
static void publish_big(struct sim *s, uint32_t i)
{
	char *text = td_xcalloc(1, 60001);
	memset(text, 'x', 60000);
	json_t *fragment = json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:s}}", "tender", "id", "sim-big", "title", "Big",
				     "description", text, "status", "active", "procurementMethod", "open",
				     "mainProcurementCategory", "services");
	free(text);
	for (int k = 0; k < 170; k++)
		publish_one(s, i, fragment);
	json_decref(fragment);
}

static void publish_one(struct sim *s, uint32_t i, const json_t *fragment)
{
	struct simnode *sn = &s->nodes[i];
	char err[TD_ERRMSG_MAX], ocid[TD_OCID_MAX + 32];
	struct td_record *rec = NULL;
	if (!sn->node)
		return;
	uint64_t now = io_wall_ms(sn);
	snprintf(ocid, sizeof(ocid), "%s-sim-%u", s->g.ocid_prefix, s->published);
	json_t *full = td_release_build(fragment, TD_KIND_TENDER, ocid, now, sn->cfg.name, err, sizeof(err));
	if (!full ||
	    td_record_sign(&rec, TD_KIND_TENDER, full, now, NULL, s->g.hash, s->sk[i], err, sizeof(err)) != 0) {
		fail(s, "cannot build a record: %s", err);
		json_decref(full);
		return;
	}
	json_decref(full);
	uint8_t id[TD_HASH_LEN];
	memcpy(id, rec->id, TD_HASH_LEN);
	int rc = node_submit(sn->node, rec, err, sizeof(err));
	if (rc != 0) {
		trace(s, "publish on node %u refused: %s", i, err);
		td_record_free(rec);
		return;
	}
	s->published++;
	if (s->nacks == s->capacks) {
		s->capacks = s->capacks ? 2 * s->capacks : 64;
		s->acks = realloc(s->acks, s->capacks * sizeof(*s->acks));
		if (!s->acks)
			abort();
	}
	memcpy(s->acks[s->nacks].id, id, TD_HASH_LEN);
	s->acks[s->nacks].must = s->now >= s->heal_at;
	s->acks[s->nacks++].height = 0;
	s->ack_gen++;
	trace(s, "published record %u on node %u", s->published - 1, i);
}

/* ---- governance (SIM_F_GOVERN) ---- */

/* A governance record of g signed by node i, or NULL. */
static struct td_record *gov_record(struct sim *s, uint32_t i, const struct td_gov *g)
{
	char err[TD_ERRMSG_MAX], ocid[TD_OCID_MAX + sizeof(TD_GOV_OCID_SUFFIX)], id[32], date[40];
	struct td_record *rec = NULL;
	uint64_t now = io_wall_ms(&s->nodes[i]);
	snprintf(ocid, sizeof(ocid), "%s%s", s->g.ocid_prefix, TD_GOV_OCID_SUFFIX);
	snprintf(id, sizeof(id), "gov-%u-%u", s->stage, i);
	td_time_iso(date, now);
	json_t *body = td_gov_body(g, ocid, id, date, NULL);
	if (td_record_sign(&rec, g->kind, body, now, NULL, s->g.hash, s->sk[i], err, sizeof(err)) != 0)
		fail(s, "cannot sign a governance record: %s", err);
	json_decref(body);
	return rec;
}

/* Offers rec (a reference kept by the sim) to node i's mempool, as tenderctl propose/approve would. */
static void gov_submit(struct sim *s, uint32_t i, struct td_record *rec)
{
	char err[TD_ERRMSG_MAX];
	struct simnode *sn = &s->nodes[i];
	if (!sn->node || !rec || chain_has_record(node_chain(sn->node), rec->id, NULL))
		return;
	if (node_submit(sn->node, td_record_ref(rec), err, sizeof(err)) != 0) {
		td_record_free(rec); /* a refused record stays the caller's: the reference given back */
		trace(s, "governance record refused by node %u: %s", i, err);
	} else {
		trace(s, "governance record (stage %u) submitted on node %u", s->stage, i);
	}
}

/* The status of stage k's proposal on node i's chain, or -1 if the node is down or does not hold it. */
static int gov_status(const struct sim *s, uint32_t i, uint32_t k)
{
	const struct simnode *sn = &s->nodes[i];
	if (!sn->node || !s->prop[k])
		return -1;
	const struct registry_proposal *p = registry_proposal(node_registry(sn->node), s->prop[k]->id);
	return p ? (int)p->status : -1;
}

/*
 * One step of the two changes, every 300-800 ms until both took effect:
 * stage 0 adds the newcomer as a validator, stage 1 removes genesis
 * validator nv - 1. An honest validator proposes; every honest validator of
 * the set approves once it holds the proposal; records lost to a crash are
 * offered again.
 */
static void govern_step(struct sim *s)
{
	uint32_t k = s->stage, nc = s->n - 1, victim = s->nv - 1;
	if (k >= 2)
		return;
	/* Whoever is up and honest and a validator now (of the current height's set) acts. */
	for (uint32_t i = 0; i < s->n; i++) {
		struct simnode *sn = &s->nodes[i];
		if (!sn->node || sn->byzantine || driver_my_index(node_driver(sn->node)) < 0)
			continue;
		if (!s->prop[k]) {
			struct td_gov g = { .kind = TD_KIND_GOV_PROPOSAL,
					    .action = k == 0 ? TD_GOV_ADD : TD_GOV_REMOVE,
					    .role = TD_ROLE_VALIDATOR };
			snprintf(g.name, sizeof(g.name), "Agency %u", nc);
			memcpy(g.pub_key, k == 0 ? s->sk[nc] + 32 : s->sk[victim] + 32, TD_PUBKEY_LEN);
			s->prop[k] = gov_record(s, i, &g);
			trace(s, "node %u proposes %s", i, k == 0 ? "adding the newcomer" : "removing a validator");
		}
		int st = gov_status(s, i, k);
		if (st < 0) {
			gov_submit(s, i, s->prop[k]);
			continue;
		}
		if (st != REGISTRY_PENDING)
			continue;
		if (!s->appr[k][i]) {
			struct td_gov a = { .kind = TD_KIND_GOV_APPROVAL };
			memcpy(a.proposal, s->prop[k]->id, TD_HASH_LEN);
			s->appr[k][i] = gov_record(s, i, &a);
		}
		gov_submit(s, i, s->appr[k][i]);
	}
	/* The stage is over once a node holds its change in force. */
	for (uint32_t i = 0; i < s->n; i++) {
		const struct simnode *sn = &s->nodes[i];
		const struct registry_proposal *p =
			sn->node && s->prop[k] ? registry_proposal(node_registry(sn->node), s->prop[k]->id) : NULL;
		if (p && p->status == REGISTRY_DECIDED && node_height(sn->node) >= p->effect_height) {
			trace(s, "governance stage %u in force from height %llu", k,
			      (unsigned long long)p->effect_height);
			s->stage++;
			break;
		}
		if (p && p->status == REGISTRY_DECIDED && !sn->byzantine) {
			/* A change takes effect two heights on: records keep coming, so an idle chain moves. */
			publish(s, i);
			break;
		}
		if (p && p->status != REGISTRY_PENDING && p->status != REGISTRY_DECIDED)
			fail(s, "governance proposal of stage %u ended %s", k, registry_status_name(p->status));
	}
	ev_push(s, (struct ev){ .t = s->now + 300 + rnd_below(s, 500), .kind = EV_GOV });
}

/* ---- checks ---- */

/* Evidence items in the blocks of every seed run (counted at the first node to hold each block). */
static uint64_t evidence_total, evidence_proposals;

static void check_node(struct sim *s, uint32_t i)
{
	struct simnode *sn = &s->nodes[i];
	if (!sn->node)
		return;
	struct chain *c = node_chain(sn->node);
	uint64_t top = chain_height(c);
	for (uint64_t h = sn->checked + 1; h <= top; h++) {
		uint8_t *blk, *commit, hash[TD_HASH_LEN];
		size_t blen, clen;
		if (chain_block_raw(c, h, &blk, &blen, &commit, &clen) != 0) {
			fail(s, "node %u cannot read its block %llu", i, (unsigned long long)h);
			return;
		}
		td_hash(hash, blk, blen);
		struct td_commit cm;
		char err[TD_ERRMSG_MAX];
		const struct registry_set *vs = registry_set(chain_registry(c), h);
		if (td_commit_decode(&cm, commit, clen, err, sizeof(err)) != 0 || !vs || 3 * cm.n_sigs <= 2 * vs->n)
			fail(s, "node %u: block %llu has a commit of too few signatures", i, (unsigned long long)h);
		else
			td_commit_clear(&cm);
		free(blk);
		free(commit);
		if (h > s->nblock_hash) {
			s->block_hash = realloc(s->block_hash, (size_t)h * TD_HASH_LEN);
			if (!s->block_hash)
				abort();
			s->nblock_hash = h;
			memcpy(s->block_hash[h - 1], hash, TD_HASH_LEN);
			struct td_block *b = NULL;
			if (chain_load_block(c, h, &b) == 0) {
				evidence_total += b->hdr.n_evidence;
				for (uint32_t x = 0; x < b->hdr.n_evidence; x++)
					evidence_proposals += b->evidence[x].kind == TD_EVIDENCE_PROPOSALS;
			}
			td_block_free(b);
		} else if (memcmp(s->block_hash[h - 1], hash, TD_HASH_LEN) != 0) {
			fail(s, "fork: node %u holds another block at height %llu", i, (unsigned long long)h);
			return;
		}
	}
	sn->checked = top;
	uint64_t ver = store_mem_version(s->disks, sn->store);
	if (sn->acks_valid && sn->acks_ver == ver && sn->acks_top == top && sn->acks_gen == s->ack_gen)
		return;
	for (uint32_t k = 0; k < s->nacks; k++) {
		uint64_t h;
		struct ack *a = &s->acks[k];
		bool has = chain_has_record(c, a->id, &h);
		if (has && a->height == 0) {
			a->height = h;
			s->ack_gen++;
		} else if (a->height && a->height <= top && (!has || h != a->height))
			fail(s, "acknowledged record %u (height %llu) missing on node %u", k,
			     (unsigned long long)a->height, i);
	}
	/* What set a height here finds it again: a second pass changes nothing. */
	sn->acks_valid = true;
	sn->acks_ver = ver;
	sn->acks_top = top;
	sn->acks_gen = s->ack_gen;
}

static bool all_committed(struct sim *s)
{
	if (s->govern && s->stage < 2)
		return false; /* both changes must take effect too */
	for (uint32_t i = 0; i < s->n; i++) {
		if (s->nodes[i].byzantine)
			continue;
		if (!s->nodes[i].node)
			return false;
		struct chain *c = node_chain(s->nodes[i].node);
		for (uint32_t k = 0; k < s->nacks; k++)
			if ((s->acks[k].must || s->acks[k].height) && !chain_has_record(c, s->acks[k].id, NULL))
				return false;
	}
	return true;
}

/* ---- the fault schedule ---- */

/* Sets the links of the whole network: all up, a partition, or a star around a hub. */
static void links_reshape(struct sim *s)
{
	uint32_t n = s->n;
	uint32_t pick = (uint32_t)rnd_below(s, 4);
	bool want[SIM_NODES_MAX][SIM_NODES_MAX];
	uint32_t side[SIM_NODES_MAX], hub = (uint32_t)rnd_below(s, n);
	for (uint32_t i = 0; i < n; i++)
		side[i] = (uint32_t)rnd_below(s, 2);
	for (uint32_t a = 0; a < n; a++) {
		for (uint32_t b = 0; b < n; b++) {
			bool up = true;
			if (pick == 1 && (s->faults & SIM_F_PARTITION))
				up = side[a] == side[b];
			else if (pick == 2 && (s->faults & SIM_F_STAR))
				up = a == hub || b == hub;
			want[a][b] = up;
		}
	}
	for (uint32_t a = 0; a < n; a++)
		for (uint32_t b = a + 1; b < n; b++)
			if (!want[a][b] && s->link[a][b])
				link_drop(s, a, b);
	for (uint32_t a = 0; a < n; a++)
		for (uint32_t b = a + 1; b < n; b++)
			if (want[a][b] && !s->link[a][b])
				link_up(s, a, b);
	if (pick == 3 && (s->faults & SIM_F_FLAP)) {
		uint32_t a = (uint32_t)rnd_below(s, n), b = (uint32_t)rnd_below(s, n);
		if (a != b)
			link_drop(s, a, b);
	}
	memset(s->mute, 0, sizeof(s->mute));
	if ((s->faults & SIM_F_ASYM) && chance(s, 50)) {
		uint32_t a = (uint32_t)rnd_below(s, n), b = (uint32_t)rnd_below(s, n);
		s->mute[a][b] = a != b;
	}
	trace(s, "links reshaped (%u)", pick);
}

static void schedule(struct sim *s)
{
	uint64_t t = 0;
	/* Publishes throughout, on random nodes. */
	for (uint32_t k = 0; k < 24; k++) {
		t += 50 + rnd_below(s, 400);
		ev_push(s, (struct ev){ .t = t, .kind = EV_PUBLISH, .node = (uint32_t)rnd_below(s, s->n) });
	}
	s->heal_at = t + 500;
	/* Network changes and crashes during the fault phase. */
	for (uint64_t u = 100 + rnd_below(s, 500); u < s->heal_at; u += 200 + rnd_below(s, 1500))
		ev_push(s, (struct ev){ .t = u, .kind = EV_LINKS });
	if (s->faults & SIM_F_CRASH) {
		for (uint64_t u = rnd_below(s, 2000); u < s->heal_at; u += 300 + rnd_below(s, 2500)) {
			uint32_t i = (uint32_t)rnd_below(s, s->n);
			ev_push(s, (struct ev){ .t = u, .kind = EV_CRASH, .node = i });
			ev_push(s, (struct ev){ .t = u + 50 + rnd_below(s, 1500), .kind = EV_RESTART, .node = i });
		}
	}
	if (s->faults & SIM_F_BIGBLOCK)
		for (uint32_t i = 0; i < s->n; i++)
			if (s->nodes[i].byzantine)
				ev_push(s, (struct ev){ .t = rnd_below(s, s->heal_at), .kind = EV_BIG, .node = i });
	if (s->govern)
		ev_push(s, (struct ev){ .t = rnd_below(s, s->heal_at), .kind = EV_GOV });
	/* Heal: every link up, every node up, then a few more records. */
	ev_push(s, (struct ev){ .t = s->heal_at, .kind = EV_LINKS, .gen = 1 });
	for (uint32_t k = 0; k < 3; k++)
		ev_push(s, (struct ev){ .t = s->heal_at + 100 + 300 * k,
					.kind = EV_PUBLISH,
					.node = (uint32_t)rnd_below(s, s->n) });
}

static void handle(struct sim *s, struct ev *e)
{
	struct simnode *sn = &s->nodes[e->node];
	switch (e->kind) {
	case EV_DELIVER:
		if (linked(s, e->from, e->node) && e->gen == s->epoch[e->from][e->node])
			node_on_message(sn->node, e->from, e->msg, e->len);
		break;
	case EV_TIMER:
		if (sn->node && sn->timer_on[e->timer] && e->gen == sn->timer_gen[e->timer]) {
			sn->timer_on[e->timer] = false;
			node_on_timer(sn->node, e->timer);
		}
		break;
	case EV_PUBLISH: publish(s, e->node); break;
	case EV_CRASH: node_crash(s, e->node); break;
	case EV_RESTART:
		if (!sn->node)
			node_boot(s, e->node);
		break;
	case EV_REDIAL: link_up(s, e->node, e->from); break;
	case EV_BIG:
		if (sn->node)
			publish_big(s, e->node);
		break;
	case EV_GOV: govern_step(s); break;
	case EV_LINKS:
		if (e->gen == 1) {
			/*
			 * Every node up; every link, or with stars only those of one hub: still
			 * connected. The hub is a correct validator: a byzantine hub could censor
			 * everything, and correct validators connected only through a faulty one
			 * are not connected.
			 */
			uint32_t hub =
				(s->faults & SIM_F_STAR) && chance(s, 50) ? (uint32_t)rnd_below(s, s->n) : NODE_ALL;
			/* Nor the newcomer nor the validator voted out, whose links the chain may refuse. */
			while (hub != NODE_ALL &&
			       (s->nodes[hub].byzantine || (s->govern && (hub == s->n - 1 || hub == s->nv - 1))))
				hub = (hub + 1) % s->n;
			trace(s, hub == NODE_ALL ? "heal" : "heal to a star around node %u", hub);
			memset(s->mute, 0, sizeof(s->mute));
			for (uint32_t i = 0; i < s->n; i++)
				if (!s->nodes[i].node)
					node_boot(s, i);
			for (uint32_t a = 0; a < s->n; a++) {
				for (uint32_t b = a + 1; b < s->n; b++) {
					if (hub == NODE_ALL || a == hub || b == hub)
						link_up(s, a, b);
					else
						link_drop(s, a, b);
				}
			}
		} else {
			links_reshape(s);
		}
		break;
	}
	/* The newcomer's connections open once the other side's chain names it (p2p lets it in). */
	for (uint32_t i = 0; s->govern && i + 1 < s->n; i++) {
		uint32_t nc = s->n - 1;
		if (!s->gov_conn[i] && linked(s, i, nc)) {
			s->epoch[i][nc]++;
			s->epoch[nc][i]++;
			node_on_connect(s->nodes[i].node, nc);
			node_on_connect(s->nodes[nc].node, i);
			s->gov_conn[i] = true;
		}
	}
	/* A node's send queue is flushed at the end of each loop turn. */
	for (uint32_t i = 0; i < s->n; i++)
		if (s->nodes[i].node)
			node_flush(s->nodes[i].node);
}

/* ---- one seed ---- */

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf path, without a process per call (it runs twice a seed); a missing path is fine. */
static int rm_tree(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 || errno == ENOENT ? 0 : -1;
}

static int sim_run(uint64_t seed, uint32_t n, unsigned faults, bool trace_on, const char *base, json_t *fragment,
		   uint64_t *decided)
{
	struct sim *s = td_xcalloc(1, sizeof(*s));
	int rc = 0;
	s->seed = seed;
	s->rng = seed * 0x2545f4914f6cdd1dull + n;
	s->faults = faults;
	s->trace = trace_on;
	s->n = n;
	s->fragment = fragment;
	snprintf(s->dir, sizeof(s->dir), "%s/seed-%llu", base, (unsigned long long)seed);
	rm_tree(s->dir);
	if (mkdir(s->dir, 0700) != 0) {
		fprintf(stderr, "tenderd-sim: cannot create %s: %s\n", s->dir, strerror(errno));
		free(s);
		return 2;
	}
	s->disks = store_mem_world_new();
	snprintf(s->g.chain_id, sizeof(s->g.chain_id), "sim-%llu", (unsigned long long)seed);
	snprintf(s->g.ocid_prefix, sizeof(s->g.ocid_prefix), "ocds-sim001");
	s->g.time_ms = SIM_GENESIS_MS;
	s->govern = (faults & SIM_F_GOVERN) && n >= 4;
	s->nv = s->govern ? n - 1 : n;
	s->g.n = s->nv;
	s->g.v = td_xcalloc(n, sizeof(*s->g.v));
	for (uint32_t i = 0; i < n; i++) {
		uint8_t keyseed[crypto_sign_SEEDBYTES] = { 0 }, pk[TD_PUBKEY_LEN];
		memcpy(keyseed, &seed, sizeof(seed));
		keyseed[sizeof(seed)] = (uint8_t)i;
		crypto_sign_seed_keypair(pk, s->sk[i], keyseed);
		if (i < s->nv) {
			memcpy(s->g.v[i].pk, pk, TD_PUBKEY_LEN);
			snprintf(s->g.v[i].name, sizeof(s->g.v[i].name), "Agency %u", i);
		}
	}
	td_genesis_seal(&s->g);
	for (uint32_t i = 0; i < n; i++) {
		struct simnode *sn = &s->nodes[i];
		char home[300];
		snprintf(home, sizeof(home), "%s/node%u", s->dir, i);
		mkdir(home, 0700);
		sn->s = s;
		sn->idx = i;
		snprintf(sn->store, sizeof(sn->store), "node%u", i);
		config_defaults(&sn->cfg, home);
		snprintf(sn->cfg.name, sizeof(sn->cfg.name), "Agency %u", i);
		sn->cfg.block_delay_ms = 5;
		sn->cfg.mempool_max_bytes = 64u << 20;
		if (faults & SIM_F_SKEW)
			sn->skew_ms = (int64_t)rnd_below(s, 2000) - 1000;
		sn->io = (struct node_io){ sn,         io_send,      io_disconnect, io_connected,     io_peer_count,
					   io_wall_ms, io_mono_ms,   io_timer,      io_timer_pending, io_peers_json,
					   io_traffic, io_open_store };
		for (uint32_t v = 0; v < n; v++)
			s->link[i][v] = i != v;
	}
	if (faults & SIM_F_BYZANTINE) {
		/* f of the genesis validators: the newcomer joins as an honest one. */
		uint32_t f = (s->nv - 1) / 3, start = (uint32_t)rnd_below(s, s->nv);
		for (uint32_t k = 0; k < f; k++) {
			struct simnode *b = &s->nodes[(start + k) % s->nv];
			b->byzantine = true;
			if (faults & SIM_F_BIGBLOCK) {
				b->cfg.block_max_bytes = 16u << 20; /* its node proposes past the cap */
				b->cfg.block_max_records = 10000;
			}
			if (faults & SIM_F_EDGECLOCK)
				b->skew_ms = DRIVER_CLOCK_PRECISION_MS + (int64_t)rnd_below(s, 2000) - 1000;
		}
	}
	for (uint32_t i = 0; i < n && !s->failure[0]; i++)
		node_boot(s, i);
	schedule(s);
	s->deadline = s->heal_at + 60000;
	while (!s->failure[0] && s->nheap > 0) {
		struct ev e = ev_pop(s);
		s->now = e.t;
		s->events++;
		handle(s, &e);
		free(e.msg);
		if (e.kind != EV_DELIVER || e.node < n)
			check_node(s, e.node);
		if (s->now >= s->heal_at + 1000 && all_committed(s))
			break;
		if (s->now > s->deadline) {
			fail(s, "no progress: records not committed on every node %llu ms after the heal",
			     (unsigned long long)(s->now - s->heal_at));
			s->halted = true;
			break;
		}
	}
	if (!s->failure[0] && !all_committed(s)) {
		fail(s, "the run ended with records not committed on every node");
		s->halted = true;
	}
	for (uint32_t i = 0; i < n; i++)
		check_node(s, i);
	if (s->failure[0]) {
		rc = s->halted ? 1 : 4;
		for (uint32_t i = 0; i < n && s->trace; i++) {
			char line[4096] = "crashed";
			if (s->nodes[i].node)
				node_describe(s->nodes[i].node, line, sizeof(line));
			trace(s, "node %u: %s", i, line);
		}
		fprintf(stderr,
			"seed %llu (n=%u, faults 0x%x): %s\n  replay: tenderd-sim --seed %llu --nodes %u --faults 0x%x --trace\n",
			(unsigned long long)seed, n, faults, s->failure, (unsigned long long)seed, n, faults);
	}
	*decided = s->nblock_hash;
	for (uint32_t i = 0; i < n; i++) {
		if (s->nodes[i].node) {
			node_stop(s->nodes[i].node);
			node_free(s->nodes[i].node);
		}
	}
	while (s->nheap)
		free(ev_pop(s).msg);
	for (uint32_t k = 0; k < 2; k++) {
		td_record_free(s->prop[k]);
		for (uint32_t i = 0; i < SIM_NODES_MAX; i++)
			td_record_free(s->appr[k][i]);
	}
	free(s->heap);
	free(s->acks);
	free(s->block_hash);
	td_genesis_free(&s->g);
	store_mem_world_free(s->disks);
	if (rc == 0)
		rm_tree(s->dir);
	free(s);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tenderd-sim [--seeds N] [--first S | --seed S] [--nodes N | --nodes A-B] [--faults MASK]\n"
		"                   [--expect-halt] [--dir DIR] [--trace]\n"
		"  runs whole tenderd nodes under a seeded schedule of faults; exits 1 on the first failure\n"
		"  faults: 0x01 delay 0x02 dup 0x04 partition 0x08 flap 0x10 star 0x20 crash 0x40 skew\n"
		"          byzantine (f validators): 0x80 equivocate 0x100 far-round vote flood\n"
		"          0x200 withhold proposals and records 0x400 far-round proposals 0x800 lying STATUS\n"
		"          0x1000 a block over the store's cap 0x4000 a clock at the edge of the timely window;\n"
		"          network: 0x2000 one-way loss on a connection\n"
		"          0x8000 governance: the last node is voted in as a validator, then one is voted out\n"
		"          default 0x%x (all but the big block, which is slow); 0x%x all\n"
		"  --expect-halt: succeed only if every seed halts (for faults the node is known not to\n"
		"          survive); a broken rule (fork, lost record, honest peer dropped) fails either way\n",
		SIM_MIX_DEFAULT, SIM_MIX_ALL);
}

int main(int argc, char **argv)
{
	uint64_t seeds = 1, first = 1, decided_total = 0;
	uint32_t nmin = 4, nmax = 4;
	unsigned faults = SIM_MIX_DEFAULT;
	bool trace_on = false, expect_halt = false;
	const char *base = NULL;
	char basebuf[128], *end;
	static const struct option opts[] = {
		{ "seeds", required_argument, NULL, 's' },  { "first", required_argument, NULL, 'f' },
		{ "seed", required_argument, NULL, 'S' },   { "nodes", required_argument, NULL, 'n' },
		{ "faults", required_argument, NULL, 'F' }, { "trace", no_argument, NULL, 't' },
		{ "dir", required_argument, NULL, 'd' },    { "expect-halt", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },         { NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': seeds = strtoull(optarg, NULL, 10); break;
		case 'f': first = strtoull(optarg, NULL, 10); break;
		case 'S':
			first = strtoull(optarg, NULL, 10);
			seeds = 1;
			break;
		case 'n':
			nmin = (uint32_t)strtoul(optarg, &end, 10);
			nmax = *end == '-' ? (uint32_t)strtoul(end + 1, NULL, 10) : nmin;
			break;
		case 'F': faults = (unsigned)strtoul(optarg, NULL, 0); break;
		case 't': trace_on = true; break;
		case 'd': base = optarg; break;
		case 'H': expect_halt = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 3;
		}
	}
	if (nmin < 1 || nmax > SIM_NODES_MAX || nmin > nmax || seeds == 0) {
		usage(stderr);
		return 3;
	}
	if (sodium_init() < 0)
		return 2;
	log_set_level(trace_on ? LOG_DEBUG : LOG_ERROR);
	if (!base) {
		snprintf(basebuf, sizeof(basebuf), "%s/tenderd-sim-%d",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
		base = basebuf;
	}
	mkdir(base, 0700);
	json_error_t jerr;
	json_t *fragment = json_pack_ex(&jerr, 0, "{s:{s:s, s:s, s:s, s:s, s:s}}", "tender", "id", "sim-tender",
					"title", "Simulated tender", "status", "active", "procurementMethod", "open",
					"mainProcurementCategory", "services");
	if (!fragment) {
		fprintf(stderr, "tenderd-sim: %s\n", jerr.text);
		return 2;
	}
	uint64_t failed = 0, ran = 0;
	for (uint64_t k = 0; k < seeds; k++) {
		uint64_t seed = first + k, decided = 0;
		uint32_t n = nmin + (uint32_t)(seed % (nmax - nmin + 1));
		int rc = sim_run(seed, n, faults, trace_on, base, fragment, &decided);
		ran++;
		decided_total += decided;
		if (rc == 2)
			return 2;
		if (rc == 4) {
			fprintf(stderr, "tenderd-sim: seed %llu broke a rule (not a halt)\n", (unsigned long long)seed);
			return 1;
		}
		if (rc != 0) {
			failed++;
			if (!expect_halt)
				break;
		}
	}
	json_decref(fragment);
	rm_tree(base);
	printf("tenderd-sim: %llu seeds from %llu, n=%u..%u, faults 0x%x: %llu failed, %llu heights decided, "
	       "%llu evidence items committed (%llu of double proposals)\n",
	       (unsigned long long)ran, (unsigned long long)first, nmin, nmax, faults, (unsigned long long)failed,
	       (unsigned long long)decided_total, (unsigned long long)evidence_total,
	       (unsigned long long)evidence_proposals);
	if (expect_halt)
		return failed == ran ? 0 : 1;
	return failed ? 1 : 0;
}
