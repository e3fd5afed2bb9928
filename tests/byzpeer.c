/*
 * tenderd-byzpeer: a test-only byzantine validator (tests/e2e_byzantine.sh).
 *
 *   tenderd-byzpeer --home DIR --connect HOST:PORT[,HOST:PORT...] --attack NAME [--seconds S]
 *
 * It loads the key and genesis of a validator's home (whose own daemon must
 * not run), connects to the running nodes with the real transport (node/p2p.c
 * on a libuv loop: the real handshake and sealed frames, listening on an
 * unused port of its own) and signs real messages with the real encoders of
 * proto/, so what it sends passes every signature check and is refused, if at
 * all, only by the rules of the consensus. Attacks (NAME):
 *
 *   precommit-flood        every wave, 2048 signed PRECOMMITs for random block
 *                          hashes at the height being decided and rounds
 *                          0..1023 (two per round), sent to every peer
 *   far-proposals          signed PROPOSALs for this validator's own rounds
 *                          1000 and beyond, naming record ids nobody holds
 *                          (FETCHes for them are never answered)
 *   next-height-proposals  signed PROPOSALs for height + 1, several different
 *                          blocks for each of this validator's rounds
 *   equivocate             every wave, at the round the honest nodes are in
 *                          (and the next one), a different signed PREVOTE and
 *                          PRECOMMIT to each peer: the honest proposal's hash,
 *                          a fresh random hash, nil
 *   replay-hello           no p2p.c: its own client of the handshake (libsodium
 *                          calls only, as p2p.c makes them) to replay a recorded
 *                          hello, a recorded hello and finish on another node,
 *                          a frame recorded on another session, and to send
 *                          garbage, oversized, empty, reordered and unknown
 *                          frames after valid handshakes; every such connection
 *                          must be closed by the node
 *
 * The height being decided is learnt from the peers' STATUS messages (their
 * height + 1), the round from their votes. Waves go out until --seconds
 * (default 10) have passed since every peer connected. The last line on
 * stdout is "byzpeer attack=NAME signed=N frames=M ..." (frames: messages
 * written to peers, one per peer and message); for replay-hello it adds
 * "connections=C closed=K unexpected=U", U counting connections a node kept
 * or answered when it should have closed them. Exit status: 0 done, 1 could
 * not connect, run, or U > 0, 3 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "p2p.h"
#include "tenderd/block.h"
#include "tenderd/codec.h"
#include "tenderd/merkle.h"
#include "tenderd/msg.h"
#include "tenderd/record.h"

#define BYZ_TARGETS_MAX 16
#define BYZ_CONNECT_MS 20000 /* to connect to every target and hear a STATUS */
#define BYZ_TICK_MS 50
#define BYZ_FLOOD_VOTES 2048
#define BYZ_FLOOD_ROUNDS 1024
#define BYZ_FLOOD_WAVE_MS 1000
#define BYZ_WAVE_MS 250
#define BYZ_FAR_ROUND_MIN 1000u
#define BYZ_FAR_PER_WAVE 32
#define BYZ_NEXT_ROUNDS 16   /* of this validator's rounds at height + 1, per wave */
#define BYZ_NEXT_PER_ROUND 4 /* different blocks per round */
#define BYZ_IDS 8            /* record ids per proposal */
#define BYZ_EQ_ROUNDS 2      /* rounds equivocated per height: the honest one and the next */
#define BYZ_RAW_TIMEOUT_S 4  /* replay-hello: how long a node may take to close a connection */

/* The handshake of node/p2p.c (see its file comment), for replay-hello. */
#define MAGIC_LEN 4
#define EPH_LEN crypto_kx_PUBLICKEYBYTES
#define HDR_LEN crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define HELLO_LEN (MAGIC_LEN + TD_HASH_LEN + TD_PUBKEY_LEN + EPH_LEN + TD_SIG_LEN)
#define REPLY_LEN (MAGIC_LEN + TD_PUBKEY_LEN + EPH_LEN + TD_SIG_LEN + HDR_LEN)
#define FINISH_LEN (TD_SIG_LEN + HDR_LEN)
#define TRANSCRIPT_LEN (TD_HASH_LEN + 2 * (TD_PUBKEY_LEN + EPH_LEN))
#define LABEL_HELLO "tenderd-p2p-v3 hello"
#define LABEL_LISTENER "tenderd-p2p-v3 listener"
#define LABEL_DIALER "tenderd-p2p-v3 dialer"
#define LABEL_MAX 32
#define FRAME_APP 0
#define FRAME_PING 1

enum attack {
	ATTACK_PRECOMMIT_FLOOD,
	ATTACK_FAR_PROPOSALS,
	ATTACK_NEXT_HEIGHT,
	ATTACK_EQUIVOCATE,
	ATTACK_REPLAY_HELLO,
};

static const struct {
	const char *name;
	enum attack attack;
} attacks[] = {
	{ "precommit-flood", ATTACK_PRECOMMIT_FLOOD },   { "far-proposals", ATTACK_FAR_PROPOSALS },
	{ "next-height-proposals", ATTACK_NEXT_HEIGHT }, { "equivocate", ATTACK_EQUIVOCATE },
	{ "replay-hello", ATTACK_REPLAY_HELLO },
};

struct byz {
	uv_loop_t *loop;
	struct p2p *p2p;
	struct td_genesis g;
	uint8_t sk[TD_SECKEY_LEN];
	const uint8_t *pk; /* into sk */
	uint32_t me;       /* our index in genesis */
	const char *attack_name;
	enum attack attack;
	uint64_t run_ms;
	char *targets[BYZ_TARGETS_MAX];
	size_t ntargets;
	uint8_t chain_hash[TD_HASH_LEN];

	/* What the honest nodes told us. */
	bool have_status;
	uint64_t height;                /* highest STATUS height: the height being decided is height + 1 */
	uint8_t last_hash[TD_HASH_LEN]; /* of that STATUS */
	uint32_t round;                 /* highest round in an honest vote at height + 1 */
	bool have_prop;                 /* an honest proposal at height + 1 ... */
	uint32_t prop_round;            /* ... for this round ... */
	uint8_t prop_hash[TD_HASH_LEN]; /* ... with this block hash */
	struct p2p_peer *peers[TD_VALIDATORS_MAX];
	uint32_t npeers;

	/* The attack. */
	uv_timer_t timer;
	uint64_t begin_ms, start_ms, next_wave_ms;
	bool attacking, done;
	uint32_t far_next;                       /* next far round offset */
	uint64_t sig_count, frames, waves, lost; /* lost: sends refused (a peer dropped) */
	int rc;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* proposer(h, r) = validators[(h + r) mod n]: is it us? */
static bool our_turn(const struct byz *b, uint64_t h, uint32_t r)
{
	return (h + r) % b->g.n == b->me;
}

/* ---- sending through p2p.c -------------------------------------------- */

static void send_to(struct byz *b, struct p2p_peer *peer, const struct td_buf *m)
{
	if (p2p_send(peer, (const uint8_t *)m->sb.data, m->sb.size) == 0)
		b->frames++;
	else
		b->lost++;
}

static void send_all(struct byz *b, const struct td_buf *m)
{
	for (uint32_t v = 0; v < b->g.n; v++)
		if (b->peers[v])
			send_to(b, b->peers[v], m);
}

static void vote_msg(struct byz *b, struct td_buf *m, enum td_vote_type type, uint64_t h, uint32_t r,
		     const uint8_t *hash)
{
	uint8_t sig[TD_SIG_LEN];
	td_vote_sign(sig, b->g.hash, type, h, r, hash, b->sk);
	b->sig_count++;
	td_buf_init(m);
	td_msg_vote(m, type, h, r, hash, b->me, sig);
}

/*
 * A signed PROPOSAL of ours for (h, r) whose block names BYZ_IDS random
 * record ids (that no node holds) on top of prev.
 */
static void proposal_msg(struct byz *b, struct td_buf *m, uint64_t h, uint32_t r, const uint8_t prev[TD_HASH_LEN])
{
	struct td_record recs[BYZ_IDS];
	struct td_record *ptrs[BYZ_IDS];
	struct td_block blk;
	struct td_buf hb;
	uint8_t sig[TD_SIG_LEN];

	memset(recs, 0, sizeof(recs));
	for (size_t i = 0; i < BYZ_IDS; i++) {
		randombytes_buf(recs[i].id, TD_HASH_LEN);
		ptrs[i] = &recs[i];
	}
	memset(&blk, 0, sizeof(blk));
	blk.hdr.height = h;
	memcpy(blk.hdr.prev_hash, prev, TD_HASH_LEN);
	blk.hdr.time_ms = wall_ms();
	memcpy(blk.hdr.proposer, b->pk, TD_PUBKEY_LEN);
	td_records_root(blk.hdr.records_root, ptrs, BYZ_IDS);
	blk.hdr.n_records = BYZ_IDS;
	td_merkle_root(blk.hdr.evidence_root, NULL, 0);
	memcpy(blk.hdr.next_validators, b->g.validators_hash, TD_HASH_LEN);
	blk.records = ptrs;
	td_buf_init(&hb);
	td_header_encode(&hb, &blk.hdr);
	td_hash(blk.hash, (const uint8_t *)hb.sb.data, hb.sb.size);
	td_buf_free(&hb);
	td_proposal_sign(sig, b->g.hash, h, r, -1, blk.hash, b->sk);
	b->sig_count++;
	td_buf_init(m);
	td_msg_proposal(m, &blk, r, -1, sig);
}

/* ---- the attacks over p2p.c (one wave each call) ------------------------ */

static void wave_flood(struct byz *b)
{
	uint64_t h = b->height + 1;
	for (uint32_t i = 0; i < BYZ_FLOOD_VOTES; i++) {
		uint8_t hash[TD_HASH_LEN];
		struct td_buf m;
		randombytes_buf(hash, sizeof(hash));
		vote_msg(b, &m, TD_VOTE_PRECOMMIT, h, i % BYZ_FLOOD_ROUNDS, hash);
		send_all(b, &m);
		td_buf_free(&m);
	}
}

static void wave_far(struct byz *b)
{
	uint64_t h = b->height + 1;
	for (int k = 0; k < BYZ_FAR_PER_WAVE; k++) {
		uint32_t r = BYZ_FAR_ROUND_MIN + b->far_next;
		while (!our_turn(b, h, r))
			r++;
		b->far_next = r - BYZ_FAR_ROUND_MIN + 1;
		struct td_buf m;
		proposal_msg(b, &m, h, r, b->last_hash);
		send_all(b, &m);
		td_buf_free(&m);
	}
}

static void wave_next(struct byz *b)
{
	uint64_t h = b->height + 2;
	uint32_t r = 0;
	for (int k = 0; k < BYZ_NEXT_ROUNDS; k++, r++) {
		while (!our_turn(b, h, r))
			r++;
		for (int j = 0; j < BYZ_NEXT_PER_ROUND; j++) {
			uint8_t prev[TD_HASH_LEN];
			struct td_buf m;
			randombytes_buf(prev, sizeof(prev)); /* the block at height + 1 is not decided yet */
			proposal_msg(b, &m, h, r, prev);
			send_all(b, &m);
			td_buf_free(&m);
		}
	}
}

/*
 * To the k-th peer, a PREVOTE and a PRECOMMIT for the round the honest nodes
 * are in and the next one: the honest proposal's hash (or a random one), a
 * fresh random hash, nil, in turn. Every wave signs new random hashes, so the
 * conflicting votes of one key keep coming.
 */
static void wave_equivocate(struct byz *b)
{
	uint64_t h = b->height + 1;
	for (uint32_t r = b->round; r < b->round + BYZ_EQ_ROUNDS; r++) {
		uint32_t k = 0;
		for (uint32_t v = 0; v < b->g.n; v++) {
			if (!b->peers[v])
				continue;
			uint8_t hash[TD_HASH_LEN];
			const uint8_t *hp = hash;
			switch (k++ % 3) {
			case 0:
				if (b->have_prop && b->prop_round == r)
					memcpy(hash, b->prop_hash, TD_HASH_LEN);
				else
					randombytes_buf(hash, sizeof(hash));
				break;
			case 1: randombytes_buf(hash, sizeof(hash)); break;
			case 2: hp = NULL; break;
			}
			for (int t = TD_VOTE_PREVOTE; t <= TD_VOTE_PRECOMMIT; t++) {
				struct td_buf m;
				vote_msg(b, &m, (enum td_vote_type)t, h, r, hp);
				send_to(b, b->peers[v], &m);
				td_buf_free(&m);
			}
		}
	}
}

static void finish(struct byz *b)
{
	if (b->done)
		return;
	b->done = true;
	uv_timer_stop(&b->timer);
	uv_close((uv_handle_t *)&b->timer, NULL);
	p2p_stop(b->p2p);
	b->p2p = NULL;
}

static void on_tick(uv_timer_t *t)
{
	struct byz *b = t->data;
	uint64_t now = mono_ms();

	if (!b->attacking) {
		if (b->npeers == b->ntargets && b->have_status) {
			b->attacking = true;
			b->start_ms = b->next_wave_ms = now;
			fprintf(stderr, "byzpeer: %u peers connected, height %" PRIu64 ": %s for %" PRIu64 " ms\n",
				b->npeers, b->height + 1, b->attack_name, b->run_ms);
		} else if (now - b->begin_ms > BYZ_CONNECT_MS) {
			fprintf(stderr, "byzpeer: only %u of %zu peers connected (status %s) after %d ms\n", b->npeers,
				b->ntargets, b->have_status ? "heard" : "never heard", BYZ_CONNECT_MS);
			b->rc = 1;
			finish(b);
		}
		return;
	}
	if (now - b->start_ms >= b->run_ms) {
		finish(b);
		return;
	}
	if (now < b->next_wave_ms)
		return;
	b->waves++;
	switch (b->attack) {
	case ATTACK_PRECOMMIT_FLOOD:
		wave_flood(b);
		b->next_wave_ms = now + BYZ_FLOOD_WAVE_MS;
		return;
	case ATTACK_FAR_PROPOSALS: wave_far(b); break;
	case ATTACK_NEXT_HEIGHT: wave_next(b); break;
	case ATTACK_EQUIVOCATE: wave_equivocate(b); break;
	case ATTACK_REPLAY_HELLO: break; /* not run over p2p.c */
	}
	b->next_wave_ms = now + BYZ_WAVE_MS;
}

static void on_connect(void *ctx, struct p2p_peer *peer)
{
	struct byz *b = ctx;
	uint32_t v = p2p_peer_validator(peer);
	if (!b->peers[v])
		b->npeers++;
	b->peers[v] = peer;
}

static void on_disconnect(void *ctx, struct p2p_peer *peer)
{
	struct byz *b = ctx;
	uint32_t v = p2p_peer_validator(peer);
	if (b->peers[v] == peer) {
		b->peers[v] = NULL;
		b->npeers--;
		if (b->attacking && !b->done)
			fprintf(stderr, "byzpeer: %s dropped us\n", b->g.v[v].name);
	}
}

static void on_message(void *ctx, struct p2p_peer *peer, const uint8_t *msg, size_t len)
{
	struct byz *b = ctx;
	struct td_msg m;
	if (td_msg_decode(&m, msg, len) != 0) {
		fprintf(stderr, "byzpeer: a malformed message from %s\n", b->g.v[p2p_peer_validator(peer)].name);
		return;
	}
	switch (m.type) {
	case TD_MSG_STATUS:
		if (!b->have_status || m.height > b->height) {
			b->have_status = true;
			b->height = m.height;
			memcpy(b->last_hash, m.hash, TD_HASH_LEN);
			b->round = 0;
			b->have_prop = false;
		}
		break;
	case TD_MSG_VOTE:
		if (b->have_status && m.height == b->height + 1 && m.validator != b->me && m.round > b->round)
			b->round = m.round;
		break;
	case TD_MSG_PROPOSAL:
		if (b->have_status && m.height == b->height + 1 && memcmp(m.hdr.proposer, b->pk, TD_PUBKEY_LEN) != 0) {
			b->have_prop = true;
			b->prop_round = m.round;
			memcpy(b->prop_hash, m.hash, TD_HASH_LEN);
		}
		break;
	case TD_MSG_ANNOUNCE:
	case TD_MSG_FETCH: /* never answered: the records of our proposals do not exist */
	case TD_MSG_RECORDS:
	case TD_MSG_SYNC_REQ:
	case TD_MSG_SYNC_BLOCKS:
	case TD_MSG_EVIDENCE: break;
	}
	td_msg_free(&m);
}

static int run_p2p(struct byz *b)
{
	char err[TD_ERRMSG_MAX], peers[BYZ_TARGETS_MAX * 128] = "";
	uv_loop_t loop;
	int rc;

	for (size_t i = 0; i < b->ntargets; i++) {
		if (i)
			strcat(peers, ",");
		strncat(peers, b->targets[i], 127);
	}
	struct p2p_config cfg = {
		.listen = "127.0.0.1:0",
		.peers = peers,
		.genesis = &b->g,
		.sk = b->sk,
	};
	struct p2p_callbacks cb = { .on_connect = on_connect,
				    .on_message = on_message,
				    .on_disconnect = on_disconnect };
	uv_loop_init(&loop);
	b->loop = &loop;
	rc = p2p_start(&b->p2p, &loop, &cfg, &cb, b, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "byzpeer: %s\n", err);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		return 1;
	}
	uv_timer_init(&loop, &b->timer);
	b->timer.data = b;
	b->begin_ms = mono_ms();
	uv_timer_start(&b->timer, on_tick, BYZ_TICK_MS, BYZ_TICK_MS);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0) {
		fprintf(stderr, "byzpeer: internal error: handles left on the loop\n");
		abort();
	}
	double secs = b->attacking ? (double)(mono_ms() - b->start_ms) / 1000.0 : 0.0;
	printf("byzpeer attack=%s signed=%" PRIu64 " frames=%" PRIu64 " lost=%" PRIu64 " waves=%" PRIu64
	       " height=%" PRIu64 " seconds=%.1f\n",
	       b->attack_name, b->sig_count, b->frames, b->lost, b->waves, b->height + 1, secs);
	return b->rc;
}

/* ---- replay-hello: a client of the handshake of its own ---------------- */

struct raw {
	int fd;
	uint8_t eph_pk[EPH_LEN], eph_sk[crypto_kx_SECRETKEYBYTES];
	uint8_t hello[HELLO_LEN];
	uint8_t finish[FINISH_LEN];
	crypto_secretstream_xchacha20poly1305_state tx, rx;
};

struct replay {
	uint64_t conns, closed, unexpected, frames;
	bool have_rec;
	uint8_t rec_hello[HELLO_LEN], rec_finish[FINISH_LEN];
	size_t rec_target;
	uint8_t rec_frame[4 + 1 + ABYTES];
};

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static size_t signed_bytes(uint8_t out[static LABEL_MAX + TRANSCRIPT_LEN], const char *label, const uint8_t *body,
			   size_t bodylen)
{
	size_t ll = strlen(label);
	memcpy(out, label, ll);
	memcpy(out + ll, body, bodylen);
	return ll + bodylen;
}

/* A TCP connection to "host:port" with BYZ_RAW_TIMEOUT_S on reads and writes; -1 on failure. */
static int raw_dial(const char *target)
{
	char host[128], *colon;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
	snprintf(host, sizeof(host), "%s", target);
	colon = strrchr(host, ':');
	if (!colon)
		return -1;
	*colon = '\0';
	char *h = host;
	if (h[0] == '[' && colon > h && colon[-1] == ']') {
		h++;
		colon[-1] = '\0';
	}
	if (getaddrinfo(h, colon + 1, &hints, &res) != 0)
		return -1;
	int fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (fd >= 0) {
		struct timeval tv = { .tv_sec = BYZ_RAW_TIMEOUT_S };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

static bool raw_write(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Reads exactly n bytes; false on EOF, error or timeout. */
static bool raw_read(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = recv(fd, p, n, 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return false;
		}
		p += r;
		n -= (size_t)r;
	}
	return true;
}

/*
 * Waits for the node to close fd, discarding what it sends; true if it did
 * within BYZ_RAW_TIMEOUT_S (each read), with *got the bytes it sent first.
 */
static bool raw_closed(int fd, size_t *got)
{
	uint8_t buf[4096];
	uint64_t until = mono_ms() + 2 * BYZ_RAW_TIMEOUT_S * 1000;
	*got = 0;
	while (mono_ms() < until) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r == 0)
			return true;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == ECONNRESET || errno == EPIPE;
		}
		*got += (size_t)r;
	}
	return false;
}

/* A fresh signed hello in r->hello (new ephemeral key). */
static void raw_hello(const struct byz *b, struct raw *r)
{
	uint8_t m[LABEL_MAX + TRANSCRIPT_LEN];
	uint8_t *q = r->hello + MAGIC_LEN;
	crypto_kx_keypair(r->eph_pk, r->eph_sk);
	memcpy(r->hello, "TDP3", MAGIC_LEN);
	memcpy(q, b->chain_hash, TD_HASH_LEN);
	memcpy(q + TD_HASH_LEN, b->pk, TD_PUBKEY_LEN);
	memcpy(q + TD_HASH_LEN + TD_PUBKEY_LEN, r->eph_pk, EPH_LEN);
	size_t mlen = signed_bytes(m, LABEL_HELLO, q, TD_HASH_LEN + TD_PUBKEY_LEN + EPH_LEN);
	crypto_sign_detached(r->hello + HELLO_LEN - TD_SIG_LEN, NULL, m, mlen, b->sk);
}

/*
 * Dials target and runs the dialer's side of the handshake (hello, reply
 * checked, finish). Returns true with r->fd open and both streams set up;
 * on false r->fd is closed.
 */
static bool raw_handshake(const struct byz *b, struct raw *r, const char *target)
{
	uint8_t reply[REPLY_LEN], t[TRANSCRIPT_LEN], m[LABEL_MAX + TRANSCRIPT_LEN];
	uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
	bool ok = false;

	r->fd = raw_dial(target);
	if (r->fd < 0)
		return false;
	raw_hello(b, r);
	if (!raw_write(r->fd, r->hello, HELLO_LEN) || !raw_read(r->fd, reply, REPLY_LEN))
		goto out;
	const uint8_t *id = reply + MAGIC_LEN, *eph = id + TD_PUBKEY_LEN, *sig = eph + EPH_LEN,
		      *header = sig + TD_SIG_LEN;
	if (memcmp(reply, "TDP3", MAGIC_LEN) != 0 || td_genesis_find(&b->g, id) < 0)
		goto out;
	memcpy(t, b->chain_hash, TD_HASH_LEN);
	memcpy(t + TD_HASH_LEN, b->pk, TD_PUBKEY_LEN);
	memcpy(t + TD_HASH_LEN + TD_PUBKEY_LEN, r->eph_pk, EPH_LEN);
	memcpy(t + TD_HASH_LEN + TD_PUBKEY_LEN + EPH_LEN, id, TD_PUBKEY_LEN);
	memcpy(t + TD_HASH_LEN + 2 * TD_PUBKEY_LEN + EPH_LEN, eph, EPH_LEN);
	size_t mlen = signed_bytes(m, LABEL_LISTENER, t, sizeof(t));
	if (crypto_sign_verify_detached(sig, m, mlen, id) != 0 ||
	    crypto_kx_client_session_keys(rx, tx, r->eph_pk, r->eph_sk, eph) != 0 ||
	    crypto_secretstream_xchacha20poly1305_init_pull(&r->rx, header, rx) != 0)
		goto out;
	mlen = signed_bytes(m, LABEL_DIALER, t, sizeof(t));
	crypto_sign_detached(r->finish, NULL, m, mlen, b->sk);
	crypto_secretstream_xchacha20poly1305_init_push(&r->tx, r->finish + TD_SIG_LEN, tx);
	ok = raw_write(r->fd, r->finish, FINISH_LEN);
out:
	sodium_memzero(rx, sizeof(rx));
	sodium_memzero(tx, sizeof(tx));
	sodium_memzero(r->eph_sk, sizeof(r->eph_sk));
	if (!ok) {
		close(r->fd);
		r->fd = -1;
	}
	return ok;
}

/* Seals type | body into a frame at out (4 + 1 + len + ABYTES bytes). */
static size_t raw_seal(struct raw *r, uint8_t *out, uint8_t type, const uint8_t *body, size_t len)
{
	uint8_t pt[256];
	pt[0] = type;
	if (len > 0) /* body may be NULL for an empty frame */
		memcpy(pt + 1, body, len);
	put_be32(out, (uint32_t)(1 + len + ABYTES));
	crypto_secretstream_xchacha20poly1305_push(&r->tx, out + 4, NULL, pt, 1 + len, NULL, 0,
						   crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
	return 4 + 1 + len + ABYTES;
}

/* After sending something the node must refuse: counts whether it closed fd (and sent nothing if quiet). */
static void expect_close(struct replay *st, int fd, bool quiet, const char *target, const char *what)
{
	size_t got;
	bool closed = raw_closed(fd, &got);
	close(fd);
	if (closed && (!quiet || got == 0)) {
		st->closed++;
		return;
	}
	st->unexpected++;
	fprintf(stderr, "byzpeer: UNEXPECTED: %s: %s %s (%zu bytes back)\n", target, what,
		closed ? "was answered" : "kept the connection open", got);
}

enum raw_case {
	RAW_GARBAGE_FRAME, /* valid handshake and PING, then a frame of random bytes; records them */
	RAW_REPLAY_HELLO,  /* the recorded hello again, to the node that saw it */
	RAW_REPLAY_OTHER,  /* the recorded hello and finish, to another node */
	RAW_REPLAY_FRAME,  /* valid handshake, then the frame recorded on another session */
	RAW_LEN_HUGE,      /* valid handshake, then a length over any cap */
	RAW_LEN_ZERO,      /* valid handshake, then a length of 0 */
	RAW_REORDER,       /* valid handshake, then two frames in the wrong order */
	RAW_BAD_TYPE,      /* valid handshake, then a frame of unknown type */
	RAW_BAD_MSG,       /* valid handshake, then an application message that is not msgpack */
	RAW_BAD_SIG,       /* a hello with a flipped signature bit */
	RAW_OLD_VERSION,   /* a hello of protocol version 1 */
	RAW_NOISE,         /* HELLO_LEN random bytes */
	RAW_CASES
};

static const char *const raw_names[RAW_CASES] = {
	"garbage frame after a valid handshake",
	"replayed hello to the same node",
	"recorded hello and finish replayed to another node",
	"frame recorded on another session",
	"frame length over the cap",
	"frame length 0",
	"frames reordered",
	"unknown frame type",
	"malformed application message",
	"hello with a bad signature",
	"version 1 hello",
	"random bytes instead of a hello",
};

static void raw_case(const struct byz *b, struct replay *st, enum raw_case c, size_t ti)
{
	const char *target = b->targets[ti];
	struct raw r;
	uint8_t buf[512], ping = 0;
	size_t n;
	bool quiet = false; /* the node must close without answering */

	memset(&r, 0, sizeof(r));
	r.fd = -1;
	switch (c) {
	case RAW_GARBAGE_FRAME:
	case RAW_REPLAY_FRAME:
	case RAW_LEN_HUGE:
	case RAW_LEN_ZERO:
	case RAW_REORDER:
	case RAW_BAD_TYPE:
	case RAW_BAD_MSG:
		if (!raw_handshake(b, &r, target)) {
			fprintf(stderr, "byzpeer: handshake with %s failed\n", target);
			st->unexpected++;
			return;
		}
		st->conns++;
		break;
	case RAW_REPLAY_HELLO:
	case RAW_REPLAY_OTHER:
		if (!st->have_rec)
			return;
		if (c == RAW_REPLAY_HELLO)
			target = b->targets[st->rec_target];
		else if (b->ntargets > 1)
			target = b->targets[(st->rec_target + 1) % b->ntargets];
		else
			return;
		/* fall through */
	case RAW_BAD_SIG:
	case RAW_OLD_VERSION:
	case RAW_NOISE:
		r.fd = raw_dial(target);
		if (r.fd < 0) {
			fprintf(stderr, "byzpeer: cannot dial %s\n", target);
			st->unexpected++;
			return;
		}
		st->conns++;
		break;
	case RAW_CASES: abort();
	}
	switch (c) {
	case RAW_GARBAGE_FRAME:
		n = raw_seal(&r, buf, FRAME_PING, NULL, 0);
		raw_write(r.fd, buf, n);
		if (!st->have_rec || randombytes_uniform(4) == 0) {
			memcpy(st->rec_hello, r.hello, HELLO_LEN);
			memcpy(st->rec_finish, r.finish, FINISH_LEN);
			memcpy(st->rec_frame, buf, n);
			st->rec_target = ti;
			st->have_rec = true;
		}
		put_be32(buf, 64);
		randombytes_buf(buf + 4, 64);
		raw_write(r.fd, buf, 4 + 64);
		st->frames += 2;
		break;
	case RAW_REPLAY_HELLO:
		raw_write(r.fd, st->rec_hello, HELLO_LEN);
		quiet = true;
		break;
	case RAW_REPLAY_OTHER:
		raw_write(r.fd, st->rec_hello, HELLO_LEN);
		if (raw_read(r.fd, buf, REPLY_LEN))
			raw_write(r.fd, st->rec_finish, FINISH_LEN);
		break;
	case RAW_REPLAY_FRAME:
		if (!st->have_rec) {
			n = raw_seal(&r, buf, FRAME_PING, NULL, 0);
			raw_write(r.fd, buf, n);
			randombytes_buf(buf + 4, n - 4);
			raw_write(r.fd, buf, n);
		} else {
			raw_write(r.fd, st->rec_frame, sizeof(st->rec_frame));
		}
		st->frames++;
		break;
	case RAW_LEN_HUGE:
		put_be32(buf, UINT32_MAX);
		memset(buf + 4, 0xa5, 64);
		raw_write(r.fd, buf, 4 + 64);
		st->frames++;
		break;
	case RAW_LEN_ZERO:
		put_be32(buf, 0);
		raw_write(r.fd, buf, 4);
		st->frames++;
		break;
	case RAW_REORDER: {
		uint8_t second[64];
		n = raw_seal(&r, buf, FRAME_PING, NULL, 0);
		size_t n2 = raw_seal(&r, second, FRAME_PING, NULL, 0);
		raw_write(r.fd, second, n2);
		raw_write(r.fd, buf, n);
		st->frames += 2;
		break;
	}
	case RAW_BAD_TYPE:
		ping = 7;
		n = raw_seal(&r, buf, ping, NULL, 0);
		raw_write(r.fd, buf, n);
		st->frames++;
		break;
	case RAW_BAD_MSG: {
		uint8_t junk[48];
		randombytes_buf(junk, sizeof(junk));
		junk[0] = 0xc1; /* never used in msgpack */
		n = raw_seal(&r, buf, FRAME_APP, junk, sizeof(junk));
		raw_write(r.fd, buf, n);
		st->frames++;
		break;
	}
	case RAW_BAD_SIG:
		raw_hello(b, &r);
		r.hello[HELLO_LEN - 1] ^= 0x01;
		raw_write(r.fd, r.hello, HELLO_LEN);
		quiet = true;
		break;
	case RAW_OLD_VERSION:
		raw_hello(b, &r);
		r.hello[MAGIC_LEN - 1] = '1';
		raw_write(r.fd, r.hello, HELLO_LEN);
		quiet = true;
		break;
	case RAW_NOISE:
		randombytes_buf(buf, HELLO_LEN);
		raw_write(r.fd, buf, HELLO_LEN);
		quiet = true;
		break;
	case RAW_CASES: abort();
	}
	expect_close(st, r.fd, quiet, target, raw_names[c]);
	sodium_memzero(&r, sizeof(r));
}

static int run_replay(struct byz *b)
{
	struct replay st;
	uint64_t start = mono_ms(), rounds = 0;

	memset(&st, 0, sizeof(st));
	while (mono_ms() - start < b->run_ms) {
		for (int c = 0; c < RAW_CASES && mono_ms() - start < b->run_ms; c++)
			raw_case(b, &st, (enum raw_case)c, rounds % b->ntargets);
		rounds++;
	}
	printf("byzpeer attack=%s signed=%" PRIu64 " frames=%" PRIu64 " connections=%" PRIu64 " closed=%" PRIu64
	       " unexpected=%" PRIu64 " seconds=%.1f\n",
	       b->attack_name, st.conns, st.conns + st.frames, st.conns, st.closed, st.unexpected,
	       (double)(mono_ms() - start) / 1000.0);
	return st.unexpected ? 1 : 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: tenderd-byzpeer --home DIR --connect HOST:PORT[,HOST:PORT...] --attack NAME "
		   "[--seconds S]\nattacks:");
	for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++)
		fprintf(f, " %s", attacks[i].name);
	fprintf(f, "\n");
}

int main(int argc, char **argv)
{
	struct byz b;
	const char *home = NULL, *connect_list = NULL;
	char path[PATH_MAX + 32], err[TD_ERRMSG_MAX];
	char *list = NULL;
	double seconds = 10;
	int rc = 1;

	memset(&b, 0, sizeof(b));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			usage(stderr);
			return 3;
		}
		i++;
		if (!strcmp(a, "--home")) {
			home = v;
		} else if (!strcmp(a, "--connect")) {
			connect_list = v;
		} else if (!strcmp(a, "--seconds")) {
			char *end;
			seconds = strtod(v, &end);
			if (*end || !(seconds > 0 && seconds <= 3600)) {
				fprintf(stderr, "byzpeer: --seconds: a number of seconds in (0, 3600]\n");
				return 3;
			}
		} else if (!strcmp(a, "--attack")) {
			b.attack_name = v;
		} else {
			usage(stderr);
			return 3;
		}
	}
	bool found = false;
	for (size_t i = 0; b.attack_name && i < sizeof(attacks) / sizeof(attacks[0]); i++) {
		if (!strcmp(b.attack_name, attacks[i].name)) {
			b.attack = attacks[i].attack;
			found = true;
		}
	}
	if (!home || !connect_list || !found) {
		usage(stderr);
		return 3;
	}
	b.run_ms = (uint64_t)(seconds * 1000);
	if (sodium_init() < 0) {
		fprintf(stderr, "byzpeer: libsodium cannot start\n");
		return 1;
	}
	log_set_level(getenv("BYZ_VERBOSE") ? LOG_INFO : LOG_WARN);

	list = td_xstrndup(connect_list, strlen(connect_list));
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (b.ntargets == BYZ_TARGETS_MAX || strlen(tok) >= 128) {
			fprintf(stderr, "byzpeer: at most %d addresses of under 128 bytes\n", BYZ_TARGETS_MAX);
			rc = 3;
			goto out_list;
		}
		b.targets[b.ntargets++] = tok;
	}
	if (b.ntargets == 0) {
		usage(stderr);
		rc = 3;
		goto out_list;
	}
	snprintf(path, sizeof(path), "%s/%s", home, KEY_FILE);
	if (config_key_load(path, b.sk, err, sizeof(err)) != 0) {
		fprintf(stderr, "byzpeer: %s\n", err);
		goto out_list;
	}
	snprintf(path, sizeof(path), "%s/%s", home, GENESIS_FILE);
	if (config_genesis_load(&b.g, path, err, sizeof(err)) != 0) {
		fprintf(stderr, "byzpeer: %s\n", err);
		goto out_key;
	}
	b.pk = b.sk + TD_SECKEY_LEN - TD_PUBKEY_LEN;
	int me = td_genesis_find(&b.g, b.pk);
	if (me < 0) {
		fprintf(stderr, "byzpeer: the key of %s is not a validator of chain %s\n", home, b.g.chain_id);
		goto out_genesis;
	}
	b.me = (uint32_t)me;
	memcpy(b.chain_hash, b.g.hash, TD_HASH_LEN);
	fprintf(stderr, "byzpeer: validator %u (%s) of chain %s, attack %s against %zu node(s)\n", b.me,
		b.g.v[b.me].name, b.g.chain_id, b.attack_name, b.ntargets);
	rc = b.attack == ATTACK_REPLAY_HELLO ? run_replay(&b) : run_p2p(&b);
	fflush(stdout);
out_genesis:
	td_genesis_free(&b.g);
out_key:
	sodium_memzero(b.sk, sizeof(b.sk));
out_list:
	free(list);
	return rc;
}
