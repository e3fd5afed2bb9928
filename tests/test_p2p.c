/*
 * p2p transport over real loopback TCP: three nodes on one loop dialing each
 * other (every pair both ways, plus one address listed twice, so duplicate
 * connections must collapse), message exchange (small and 4 MiB), refusals
 * (stranger key, wrong chain id), hostile raw clients (garbage, half-open,
 * oversized length, tampered and replayed frames, a client that does not
 * read, a flood of unauthenticated connects), stop and restart with redial.
 *
 * The genesis has 4 validators: nodes 0..2 run p2p; validator 3 has no node
 * and is the identity a raw client in this file uses to complete a real
 * handshake (implemented here with libsodium, independently of p2p.c).
 * Raw clients use blocking sockets in a thread while the loop runs here.
 * Every wait is bounded by a deadline timer; nothing assumes speed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <uv.h>

#include "log.h"
#include "p2p.h"
#include "tenderd/json.h"

#define NV 4    /* validators in genesis */
#define NN 3    /* nodes running */
#define RAW_V 3 /* the validator the raw client speaks as */
#define PING_MS 200
#define TIMEOUT_MS 3000
#define BIG_LEN (4 * 1024 * 1024)
#define RECS_MAX 256
#define HELLO_LEN 164
#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES

struct rec {
	uint32_t from;
	size_t len;
	uint8_t hash[32];
};

struct tnode {
	struct p2p *p;
	int idx;
	int connected[NV + 1];
	int connects[NV + 1], disconnects[NV + 1];
	struct rec recs[RECS_MAX];
	size_t nrecs;
};

struct world {
	uv_loop_t loop;
	uv_timer_t poll, deadline;
	bool timed_out;
	bool (*pred)(struct world *);
	struct td_genesis g;
	uint8_t pk[NV][crypto_sign_PUBLICKEYBYTES], sk[NV][crypto_sign_SECRETKEYBYTES];
	uint16_t port[NN];
	struct tnode n[NN];
};

/* ---- helpers ---------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void hash_of(uint8_t out[32], const uint8_t *m, size_t len)
{
	crypto_generichash(out, 32, m, len, NULL, 0);
}

static void on_connect(void *ctx, struct p2p_peer *peer)
{
	struct tnode *t = ctx;
	uint32_t v = p2p_peer_validator(peer);
	assert_true(v < NV + 1);
	assert_int_equal(t->connected[v], 0); /* connects and disconnects alternate */
	t->connected[v] = 1;
	t->connects[v]++;
}

static void on_disconnect(void *ctx, struct p2p_peer *peer)
{
	struct tnode *t = ctx;
	uint32_t v = p2p_peer_validator(peer);
	assert_true(v < NV + 1);
	assert_int_equal(t->connected[v], 1);
	t->connected[v] = 0;
	t->disconnects[v]++;
}

static void on_message(void *ctx, struct p2p_peer *peer, const uint8_t *msg, size_t len)
{
	struct tnode *t = ctx;
	assert_true(t->nrecs < RECS_MAX);
	struct rec *r = &t->recs[t->nrecs++];
	r->from = p2p_peer_validator(peer);
	r->len = len;
	hash_of(r->hash, msg, len);
}

static const struct p2p_callbacks cbs = { on_connect, on_message, on_disconnect };

static void on_poll(uv_timer_t *t)
{
	struct world *w = t->data;
	if (w->pred && w->pred(w))
		uv_stop(&w->loop);
}

static void on_deadline(uv_timer_t *t)
{
	struct world *w = t->data;
	w->timed_out = true;
	uv_stop(&w->loop);
}

/* Runs the loop until pred holds (checked every 5 ms) or ms pass; returns whether pred held. */
static bool run_until(struct world *w, bool (*pred)(struct world *), uint64_t ms)
{
	if (pred && pred(w))
		return true;
	w->pred = pred;
	w->timed_out = false;
	uv_timer_start(&w->poll, on_poll, 5, 5);
	uv_timer_start(&w->deadline, on_deadline, ms, 0);
	while (!w->timed_out && !(pred && pred(w)))
		uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&w->poll);
	uv_timer_stop(&w->deadline);
	w->pred = NULL;
	return pred ? pred(w) : true;
}

static void run_for(struct world *w, uint64_t ms)
{
	run_until(w, NULL, ms);
}

static bool all_meshed(struct world *w)
{
	for (int i = 0; i < NN; i++) {
		if (!w->n[i].p || p2p_peer_count(w->n[i].p) != NN - 1)
			return false;
		for (int j = 0; j < NN; j++)
			if (j != i && !w->n[i].connected[j])
				return false;
	}
	return true;
}

static void node_start(struct world *w, int i, const char *peers)
{
	char listen[64], err[256];
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)w->port[i]);
	struct p2p_config cfg = {
		.listen = listen,
		.peers = peers,
		.genesis = &w->g,
		.sk = w->sk[i],
		.send_queue_max = 16 * 1024 * 1024,
		.ping_ms = PING_MS,
		.timeout_ms = TIMEOUT_MS,
	};
	w->n[i].idx = i;
	int rc = p2p_start(&w->n[i].p, &w->loop, &cfg, &cbs, &w->n[i], err, sizeof(err));
	if (rc != 0)
		fail_msg("p2p_start node %d: %s", i, err);
	assert_int_equal(p2p_listen_port(w->n[i].p), w->port[i]);
}

/* Ports from the kernel's ephemeral range, held open together so they differ. */
static void pick_ports(uint16_t *ports, int n)
{
	int fds[8];
	for (int i = 0; i < n; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t sl = sizeof(sa);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fds[i] >= 0);
		assert_int_equal(bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(getsockname(fds[i], (struct sockaddr *)&sa, &sl), 0);
		ports[i] = ntohs(sa.sin_port);
	}
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

static void clear_recs(struct world *w)
{
	for (int i = 0; i < NN; i++)
		w->n[i].nrecs = 0;
}

/* How many records at node t came from validator `from` with these bytes. */
static size_t count_recs(const struct tnode *t, uint32_t from, const uint8_t *m, size_t len)
{
	uint8_t h[32];
	size_t k = 0;
	hash_of(h, m, len);
	for (size_t i = 0; i < t->nrecs; i++)
		if (t->recs[i].from == from && t->recs[i].len == len && memcmp(t->recs[i].hash, h, 32) == 0)
			k++;
	return k;
}

static size_t expect_total;
static bool got_expected(struct world *w)
{
	size_t n = 0;
	for (int i = 0; i < NN; i++)
		n += w->n[i].nrecs;
	return n >= expect_total;
}

/* Each node broadcasts one small message tagged with tag; each arrives exactly once at each other node. */
static void exchange_small(struct world *w, const char *tag)
{
	char msg[NN][64];
	clear_recs(w);
	for (int i = 0; i < NN; i++) {
		snprintf(msg[i], sizeof(msg[i]), "%s from %d", tag, i);
		p2p_broadcast(w->n[i].p, (const uint8_t *)msg[i], strlen(msg[i]), NULL);
	}
	expect_total = NN * (NN - 1);
	assert_true(run_until(w, got_expected, 10000));
	run_for(w, 200); /* room for duplicates to show up */
	for (int j = 0; j < NN; j++) {
		assert_int_equal(w->n[j].nrecs, NN - 1);
		for (int i = 0; i < NN; i++)
			assert_int_equal(count_recs(&w->n[j], (uint32_t)i, (const uint8_t *)msg[i], strlen(msg[i])),
					 i == j ? 0 : 1);
	}
}

/* ---- a raw client speaking the protocol with libsodium ----------------- */

enum raw_mode {
	RAW_GARBAGE,  /* bytes that are no hello */
	RAW_SILENT,   /* connect and send nothing */
	RAW_OVERSIZE, /* handshake, then a length prefix over the cap */
	RAW_TAMPER,   /* handshake, a valid frame, then one with a flipped byte */
	RAW_REPLAY,   /* handshake, a valid frame, then the same bytes again */
	RAW_NOREAD,   /* handshake, then stop reading until released */
};

struct raw {
	enum raw_mode mode;
	uint16_t port;
	const uint8_t *sk; /* Ed25519 identity */
	const char *chain_id;
	pthread_t th;
	atomic_int handshaken;
	atomic_int release;
	atomic_int done;
	int closed;            /* the node closed the connection */
	uint64_t closed_after; /* ms from the last bytes we sent to the close */
};

static bool write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

static bool read_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = read(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

/* Reads until the peer closes (1) or 15 s pass with nothing (0). */
static int wait_closed(int fd)
{
	uint8_t buf[4096];
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k == 0 || (k < 0 && errno == ECONNRESET))
			return 1;
		if (k < 0 && errno != EINTR)
			return 0;
	}
}

static size_t raw_frame(crypto_secretstream_xchacha20poly1305_state *st, uint8_t *out, const char *msg)
{
	size_t len = strlen(msg);
	uint8_t pt[256];
	pt[0] = 0; /* application message */
	memcpy(pt + 1, msg, len);
	uint32_t ct = (uint32_t)(1 + len + ABYTES);
	out[0] = (uint8_t)(ct >> 24);
	out[1] = (uint8_t)(ct >> 16);
	out[2] = (uint8_t)(ct >> 8);
	out[3] = (uint8_t)ct;
	crypto_secretstream_xchacha20poly1305_push(st, out + 4, NULL, pt, 1 + len, NULL, 0,
						   crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
	return 4 + ct;
}

static void *raw_main(void *arg)
{
	struct raw *r = arg;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(r->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 15 };
	uint8_t hello[HELLO_LEN], peer_hello[HELLO_LEN], header[24], peer_header[24];
	uint8_t eph_pk[crypto_kx_PUBLICKEYBYTES], eph_sk[crypto_kx_SECRETKEYBYTES];
	uint8_t rx[32], tx[32], m[14 + 32 + 32 + 1], chain_hash[32];
	uint8_t frame[512];
	crypto_secretstream_xchacha20poly1305_state st;
	uint64_t sent_at = now_ms();

	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		goto out;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out_fd;
	sent_at = now_ms();
	if (r->mode == RAW_GARBAGE) {
		uint8_t junk[300];
		randombytes_buf(junk, sizeof(junk));
		junk[0] = 'X';
		write_all(fd, junk, sizeof(junk));
		sent_at = now_ms();
		goto wait;
	}
	if (r->mode == RAW_SILENT)
		goto wait;

	crypto_generichash(chain_hash, 32, (const uint8_t *)r->chain_id, strlen(r->chain_id), NULL, 0);
	crypto_kx_keypair(eph_pk, eph_sk);
	memcpy(hello, "TDP1", 4);
	memcpy(hello + 4, chain_hash, 32);
	memcpy(hello + 36, r->sk + 32, 32);
	memcpy(hello + 68, eph_pk, 32);
	memcpy(m, "tenderd-p2p-v1", 14);
	memcpy(m + 14, chain_hash, 32);
	memcpy(m + 46, eph_pk, 32);
	m[78] = 1; /* dialer */
	crypto_sign_detached(hello + 100, NULL, m, sizeof(m), r->sk);
	if (!write_all(fd, hello, sizeof(hello)) || !read_all(fd, peer_hello, sizeof(peer_hello)))
		goto wait;
	if (crypto_kx_client_session_keys(rx, tx, eph_pk, eph_sk, peer_hello + 68) != 0)
		goto wait;
	crypto_secretstream_xchacha20poly1305_init_push(&st, header, tx);
	if (!write_all(fd, header, sizeof(header)) || !read_all(fd, peer_header, sizeof(peer_header)))
		goto wait;
	atomic_store(&r->handshaken, 1);

	switch (r->mode) {
	case RAW_GARBAGE:
	case RAW_SILENT: break;
	case RAW_OVERSIZE: {
		uint8_t len[4] = { 0xff, 0xff, 0xff, 0xf0 };
		write_all(fd, len, sizeof(len));
		break;
	}
	case RAW_TAMPER:
	case RAW_REPLAY: {
		size_t n = raw_frame(&st, frame, "raw-1");
		write_all(fd, frame, n);
		if (r->mode == RAW_TAMPER) {
			n = raw_frame(&st, frame, "raw-2");
			frame[4 + 3] ^= 0x01;
		}
		write_all(fd, frame, n);
		break;
	}
	case RAW_NOREAD:
		while (!atomic_load(&r->release))
			usleep(1000);
		break;
	}
	sent_at = now_ms();
wait:
	r->closed = wait_closed(fd);
	r->closed_after = now_ms() - sent_at;
out_fd:
	close(fd);
out:
	atomic_store(&r->done, 1);
	return NULL;
}

static struct raw *cur_raw;
static bool raw_done(struct world *w)
{
	return atomic_load(&cur_raw->done) != 0;
}

/* Runs a raw client against node i and waits until it has finished. */
static void raw_run(struct world *w, struct raw *r, int i)
{
	r->port = w->port[i];
	if (!r->sk)
		r->sk = w->sk[RAW_V];
	if (!r->chain_id)
		r->chain_id = w->g.chain_id;
	assert_int_equal(pthread_create(&r->th, NULL, raw_main, r), 0);
	cur_raw = r;
	bool ok = run_until(w, raw_done, 20000);
	pthread_join(r->th, NULL);
	assert_true(ok);
}

/* ---- setup and teardown ----------------------------------------------- */

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	char peers[NN][256];

	if (sodium_init() < 0)
		return -1;
	log_set_level(getenv("P2P_TEST_DEBUG") ? LOG_DEBUG : LOG_WARN);
	assert_int_equal(uv_loop_init(&w->loop), 0);
	uv_timer_init(&w->loop, &w->poll);
	uv_timer_init(&w->loop, &w->deadline);
	w->poll.data = w->deadline.data = w;
	snprintf(w->g.chain_id, sizeof(w->g.chain_id), "tenderd-p2p-test");
	w->g.n = NV;
	w->g.v = calloc(NV, sizeof(*w->g.v));
	for (int i = 0; i < NV; i++) {
		crypto_sign_keypair(w->pk[i], w->sk[i]);
		memcpy(w->g.v[i].pk, w->pk[i], 32);
		snprintf(w->g.v[i].name, sizeof(w->g.v[i].name), "agency-%d", i);
	}
	pick_ports(w->port, NN);
	/* Everyone dials everyone (and itself, which must be noticed); node 0 lists node 1 twice. */
	for (int i = 0; i < NN; i++)
		snprintf(peers[i], sizeof(peers[i]), "127.0.0.1:%u, 127.0.0.1:%u,127.0.0.1:%u", w->port[0], w->port[1],
			 w->port[2]);
	size_t len = strlen(peers[0]);
	snprintf(peers[0] + len, sizeof(peers[0]) - len, ",127.0.0.1:%u", w->port[1]);
	for (int i = 0; i < NN; i++)
		node_start(w, i, peers[i]);
	*state = w;
	return 0;
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static int teardown(void **state)
{
	struct world *w = *state;
	for (int i = 0; i < NN; i++) {
		p2p_stop(w->n[i].p);
		w->n[i].p = NULL;
	}
	uv_close((uv_handle_t *)&w->poll, NULL);
	uv_close((uv_handle_t *)&w->deadline, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&w->loop);
	if (rc != 0) {
		uv_walk(&w->loop, on_walk_close, NULL);
		uv_run(&w->loop, UV_RUN_DEFAULT);
		uv_loop_close(&w->loop);
	}
	td_genesis_free(&w->g);
	free(w);
	assert_int_equal(rc, 0); /* no handle left behind */
	return 0;
}

/* ---- tests ------------------------------------------------------------ */

/* The nodes find each other; duplicate connections collapse to one per pair and stay so. */
static void test_mesh(void **state)
{
	struct world *w = *state;

	assert_true(run_until(w, all_meshed, 10000));
	run_for(w, 1000); /* any duplicate still in flight settles */
	assert_true(all_meshed(w));
	int connects[NN][NV];
	for (int i = 0; i < NN; i++)
		memcpy(connects[i], w->n[i].connects, sizeof(connects[i]));
	run_for(w, 1000);
	for (int i = 0; i < NN; i++) {
		assert_memory_equal(connects[i], w->n[i].connects, sizeof(connects[i])); /* no flapping */
		assert_int_equal(w->n[i].connected[i], 0);
		assert_int_equal(w->n[i].connected[RAW_V], 0);
		/* The JSON view: exactly the two peers, connected; no dialer still trying. */
		json_t *arr = p2p_peers_json(w->n[i].p);
		assert_int_equal(json_array_size(arr), NN - 1);
		size_t k;
		json_t *o;
		json_array_foreach(arr, k, o) {
			assert_string_equal(json_string_value(json_object_get(o, "state")), "connected");
			uint64_t v;
			assert_true(td_json_number_u64(json_object_get(o, "validator"), &v));
			assert_true(v < NN && v != (uint64_t)i);
			char hex[65];
			td_hex(hex, w->pk[v], 32);
			assert_string_equal(json_string_value(json_object_get(o, "pub_key")), hex);
		}
		json_decref(arr);
		assert_true(p2p_peer_find(w->n[i].p, (uint32_t)i) == NULL);
		assert_true(p2p_bytes_sent(w->n[i].p) > 0);
		assert_true(p2p_bytes_received(w->n[i].p) > 0);
	}
}

static bool big_arrived(struct world *w)
{
	return w->n[1].nrecs >= 2 && w->n[2].nrecs >= 1;
}

static void test_messages(void **state)
{
	struct world *w = *state;

	exchange_small(w, "hello");

	/* A 4 MiB broadcast from node 0 and a directed send from node 1 to node 2. */
	uint8_t *big = malloc(BIG_LEN);
	randombytes_buf(big, BIG_LEN);
	clear_recs(w);
	uint64_t sent0 = p2p_bytes_sent(w->n[0].p);
	p2p_broadcast(w->n[0].p, big, BIG_LEN, NULL);
	struct p2p_peer *to2 = p2p_peer_find(w->n[1].p, 2);
	assert_non_null(to2);
	assert_int_equal(p2p_peer_validator(to2), 2);
	assert_int_equal(p2p_send(to2, (const uint8_t *)"direct", 6), 0);
	struct p2p_peer *to1 = p2p_peer_find(w->n[2].p, 1);
	assert_non_null(to1);
	assert_int_equal(p2p_send(to1, (const uint8_t *)"back", 4), 0);
	assert_true(run_until(w, big_arrived, 15000));
	run_for(w, 200);
	assert_int_equal(w->n[0].nrecs, 0);
	assert_int_equal(w->n[1].nrecs, 2);
	assert_int_equal(w->n[2].nrecs, 2);
	assert_int_equal(count_recs(&w->n[1], 0, big, BIG_LEN), 1);
	assert_int_equal(count_recs(&w->n[2], 0, big, BIG_LEN), 1);
	assert_int_equal(count_recs(&w->n[2], 1, (const uint8_t *)"direct", 6), 1);
	assert_int_equal(count_recs(&w->n[1], 2, (const uint8_t *)"back", 4), 1);
	assert_true(p2p_bytes_sent(w->n[0].p) - sent0 >= 2ull * BIG_LEN);
	/* Over frame_max: refused without dropping anyone. */
	uint8_t *huge = calloc(1, P2P_FRAME_MAX_DEFAULT + 1);
	assert_int_equal(p2p_send(to2, huge, P2P_FRAME_MAX_DEFAULT + 1), TD_EINVAL);
	free(huge);
	free(big);
	/* An empty message is a message too. */
	clear_recs(w);
	assert_int_equal(p2p_send(to2, (const uint8_t *)"", 0), 0);
	expect_total = 1;
	assert_true(run_until(w, got_expected, 10000));
	assert_int_equal(count_recs(&w->n[2], 1, (const uint8_t *)"", 0), 1);
	assert_true(all_meshed(w));
}

static struct tnode outsider[2];
static bool outsiders_refused(struct world *w)
{
	/* Both have tried, failed and gone back to backoff more than once. */
	for (int k = 0; k < 2; k++) {
		json_t *arr = p2p_peers_json(outsider[k].p);
		json_t *o = json_array_get(arr, 0);
		uint64_t fails = 0;
		bool ok = o && td_json_number_u64(json_object_get(o, "failures"), &fails) && fails >= 2;
		json_decref(arr);
		if (!ok)
			return false;
	}
	return true;
}

/* A key outside genesis, and a genesis validator on another chain, are refused and never connect. */
static void test_stranger_and_wrong_chain(void **state)
{
	struct world *w = *state;
	uint8_t spk[32], ssk[64];
	struct td_genesis g2 = w->g, g3 = w->g;
	struct td_validator v2[NV + 1];
	char listen[2][32], peers[2][32], err[256];
	uint16_t ports[2];
	int before[NN][NV];

	for (int i = 0; i < NN; i++)
		memcpy(before[i], w->n[i].connects, sizeof(before[i]));
	crypto_sign_keypair(spk, ssk);
	/* The stranger's own genesis lists it (so it will start); ours does not. */
	memcpy(v2, w->g.v, NV * sizeof(*v2));
	memcpy(v2[NV].pk, spk, 32);
	snprintf(v2[NV].name, sizeof(v2[NV].name), "stranger");
	g2.v = v2;
	g2.n = NV + 1;
	snprintf(g3.chain_id, sizeof(g3.chain_id), "another-chain");
	pick_ports(ports, 2);
	memset(outsider, 0, sizeof(outsider));
	for (int k = 0; k < 2; k++) {
		snprintf(listen[k], sizeof(listen[k]), "127.0.0.1:%u", (unsigned)ports[k]);
		snprintf(peers[k], sizeof(peers[k]), "127.0.0.1:%u", (unsigned)w->port[k]);
		struct p2p_config cfg = {
			.listen = listen[k],
			.peers = peers[k],
			.genesis = k == 0 ? &g2 : &g3,
			.sk = k == 0 ? ssk : w->sk[RAW_V],
			.ping_ms = PING_MS,
			.timeout_ms = TIMEOUT_MS,
		};
		assert_int_equal(p2p_start(&outsider[k].p, &w->loop, &cfg, &cbs, &outsider[k], err, sizeof(err)), 0);
	}
	assert_true(run_until(w, outsiders_refused, 10000));
	for (int k = 0; k < 2; k++) {
		for (int v = 0; v <= NV; v++)
			assert_int_equal(outsider[k].connects[v], 0);
		json_t *arr = p2p_peers_json(outsider[k].p);
		json_t *o = json_array_get(arr, 0);
		assert_non_null(o);
		const char *st = json_string_value(json_object_get(o, "state"));
		assert_true(strcmp(st, "backoff") == 0 || strcmp(st, "connecting") == 0);
		assert_non_null(json_object_get(o, "retry_in_ms"));
		json_decref(arr);
		p2p_stop(outsider[k].p);
		outsider[k].p = NULL;
	}
	for (int i = 0; i < NN; i++)
		assert_memory_equal(before[i], w->n[i].connects, sizeof(before[i]));
	assert_true(all_meshed(w));
	/* A key that is not a validator cannot even start. */
	struct p2p *bad = NULL;
	struct p2p_config cfg = { .listen = "127.0.0.1:0", .genesis = &w->g, .sk = ssk };
	assert_int_equal(p2p_start(&bad, &w->loop, &cfg, &cbs, NULL, err, sizeof(err)), TD_EINVAL);
	assert_null(bad);
	cfg.sk = w->sk[RAW_V];
	cfg.peers = "nonsense";
	assert_int_equal(p2p_start(&bad, &w->loop, &cfg, &cbs, NULL, err, sizeof(err)), TD_EINVAL);
	assert_null(bad);
}

static void test_garbage_and_half_open(void **state)
{
	struct world *w = *state;
	struct raw r;

	memset(&r, 0, sizeof(r));
	r.mode = RAW_GARBAGE;
	raw_run(w, &r, 0);
	assert_int_equal(r.closed, 1);
	assert_true(r.closed_after < TIMEOUT_MS / 2); /* closed for the bytes, not for silence */

	memset(&r, 0, sizeof(r));
	r.mode = RAW_SILENT;
	raw_run(w, &r, 1);
	assert_int_equal(r.closed, 1);
	assert_true(r.closed_after >= TIMEOUT_MS / 2); /* the handshake deadline, not earlier */

	memset(&r, 0, sizeof(r));
	r.mode = RAW_OVERSIZE;
	raw_run(w, &r, 2);
	assert_int_equal(atomic_load(&r.handshaken), 1);
	assert_int_equal(r.closed, 1);
	assert_true(r.closed_after < TIMEOUT_MS / 2);
	assert_int_equal(w->n[2].connects[RAW_V], 1);
	assert_int_equal(w->n[2].disconnects[RAW_V], 1);

	for (int i = 0; i < NN; i++)
		assert_int_equal(w->n[i].nrecs == 0 || w->n[i].recs[0].from != RAW_V, 1);
	assert_true(all_meshed(w));
	exchange_small(w, "after garbage");
}

/* A client with a genesis key completes the handshake; a tampered or a replayed frame gets it dropped. */
static void test_tamper_and_replay(void **state)
{
	struct world *w = *state;
	static const enum raw_mode modes[2] = { RAW_TAMPER, RAW_REPLAY };

	for (int k = 0; k < 2; k++) {
		struct raw r;
		memset(&r, 0, sizeof(r));
		r.mode = modes[k];
		int c0 = w->n[0].connects[RAW_V], d0 = w->n[0].disconnects[RAW_V];
		clear_recs(w);
		raw_run(w, &r, 0);
		assert_int_equal(atomic_load(&r.handshaken), 1);
		assert_int_equal(r.closed, 1);
		assert_true(r.closed_after < TIMEOUT_MS / 2);
		/* on_disconnect comes from the close callback: let the loop run it. */
		for (int tries = 0; tries < 100 && w->n[0].disconnects[RAW_V] == d0; tries++)
			run_for(w, 20);
		assert_int_equal(w->n[0].connects[RAW_V], c0 + 1);
		assert_int_equal(w->n[0].disconnects[RAW_V], d0 + 1);
		assert_int_equal(w->n[0].connected[RAW_V], 0);
		/* The valid first frame arrived exactly once; nothing else from the client. */
		assert_int_equal(w->n[0].nrecs, 1);
		assert_int_equal(count_recs(&w->n[0], RAW_V, (const uint8_t *)"raw-1", 5), 1);
	}
	assert_true(all_meshed(w));
	exchange_small(w, "after tamper");
}

static struct raw *noread;
static bool noread_connected(struct world *w)
{
	return w->n[1].connected[RAW_V] == 1 && atomic_load(&noread->handshaken);
}

/* A peer that does not read is dropped once its send queue passes the cap. */
static void test_send_queue_full(void **state)
{
	struct world *w = *state;
	struct raw r;
	uint8_t *big = calloc(1, BIG_LEN);

	memset(&r, 0, sizeof(r));
	r.mode = RAW_NOREAD;
	r.port = w->port[1];
	r.sk = w->sk[RAW_V];
	r.chain_id = w->g.chain_id;
	noread = &r;
	assert_int_equal(pthread_create(&r.th, NULL, raw_main, &r), 0);
	bool up = run_until(w, noread_connected, 10000);
	int rc = 0, sends = 0;
	if (up) {
		struct p2p_peer *peer = p2p_peer_find(w->n[1].p, RAW_V);
		assert_non_null(peer);
		while (rc == 0 && sends < 64) {
			rc = p2p_send(peer, big, BIG_LEN);
			sends++;
		}
		assert_true(p2p_peer_find(w->n[1].p, RAW_V) == NULL); /* out of the table at once */
		assert_int_equal(w->n[1].connected[RAW_V], 1);        /* on_disconnect comes later, from the loop */
		assert_int_equal(p2p_send(peer, big, 1), TD_EFULL);   /* still valid, refused */
	}
	atomic_store(&r.release, 1);
	cur_raw = &r;
	bool done = run_until(w, raw_done, 20000);
	pthread_join(r.th, NULL);
	free(big);
	assert_true(up && done);
	assert_int_equal(rc, TD_EFULL);
	assert_true(sends >= 4 && sends < 64); /* 16 MiB of queue holds at least 3 of these */
	assert_int_equal(r.closed, 1);
	for (int tries = 0; tries < 100 && w->n[1].connected[RAW_V]; tries++)
		run_for(w, 20);
	assert_int_equal(w->n[1].connected[RAW_V], 0);
	assert_true(all_meshed(w));
}

/* More unauthenticated connections than the cap: the extra ones are closed at once. */
struct flood {
	uint16_t port;
	int n, closed_early;
	atomic_int done;
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	int fds[P2P_HANDSHAKING_MAX + 16];
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(f->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	for (int i = 0; i < f->n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] >= 0 && connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			close(fds[i]);
			fds[i] = -1;
		}
	}
	/* Within 1.5 s (half the handshake timeout), count connections the node closed. */
	uint64_t end = now_ms() + TIMEOUT_MS / 2;
	int closed[P2P_HANDSHAKING_MAX + 16] = { 0 };
	while (now_ms() < end) {
		struct pollfd pf[P2P_HANDSHAKING_MAX + 16];
		for (int i = 0; i < f->n; i++) {
			pf[i].fd = closed[i] ? -1 : fds[i];
			pf[i].events = POLLIN;
			pf[i].revents = 0;
		}
		if (poll(pf, (nfds_t)f->n, 50) <= 0)
			continue;
		for (int i = 0; i < f->n; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			uint8_t buf[512];
			ssize_t k = read(fds[i], buf, sizeof(buf));
			if (k == 0 || (k < 0 && errno == ECONNRESET))
				closed[i] = 1;
		}
	}
	for (int i = 0; i < f->n; i++) {
		f->closed_early += closed[i];
		if (fds[i] >= 0)
			close(fds[i]);
	}
	atomic_store(&f->done, 1);
	return NULL;
}

static struct flood *cur_flood;
static bool flood_done(struct world *w)
{
	return atomic_load(&cur_flood->done) != 0;
}

static void test_handshake_flood(void **state)
{
	struct world *w = *state;
	struct flood f;
	pthread_t th;

	memset(&f, 0, sizeof(f));
	f.port = w->port[2];
	f.n = P2P_HANDSHAKING_MAX + 10;
	cur_flood = &f;
	assert_int_equal(pthread_create(&th, NULL, flood_main, &f), 0);
	bool ok = run_until(w, flood_done, 20000);
	pthread_join(th, NULL);
	assert_true(ok);
	assert_int_equal(f.closed_early, 10);
	assert_true(all_meshed(w));
}

static int disc_before[2];
static bool pair01_dropped(struct world *w)
{
	return w->n[0].disconnects[1] > disc_before[0] && w->n[1].disconnects[0] > disc_before[1];
}

/* p2p_disconnect drops a peer: both sides see on_disconnect (from the loop), then the dialers reconnect. */
static void test_disconnect_reconnects(void **state)
{
	struct world *w = *state;
	struct p2p_peer *peer = p2p_peer_find(w->n[0].p, 1);

	assert_non_null(peer);
	disc_before[0] = w->n[0].disconnects[1];
	disc_before[1] = w->n[1].disconnects[0];
	p2p_disconnect(peer, "test says so");
	p2p_disconnect(peer, "a second time does nothing");
	assert_null(p2p_peer_find(w->n[0].p, 1));
	assert_int_equal(p2p_peer_count(w->n[0].p), NN - 2);
	assert_int_equal(w->n[0].connected[1], 1); /* not from inside p2p_disconnect */
	assert_int_equal(p2p_send(peer, (const uint8_t *)"late", 4), TD_EFULL);
	assert_true(run_until(w, pair01_dropped, 10000));
	assert_true(run_until(w, all_meshed, 15000));
	exchange_small(w, "after disconnect");
}

static bool node2_gone(struct world *w)
{
	return !w->n[0].connected[2] && !w->n[1].connected[2] && p2p_peer_count(w->n[0].p) == 1 &&
	       p2p_peer_count(w->n[1].p) == 1;
}

/* A stopped node is reported gone; when it comes back (without dialing anyone) the others redial it. */
static void test_stop_and_redial(void **state)
{
	struct world *w = *state;

	p2p_stop(w->n[2].p);
	w->n[2].p = NULL;
	/* p2p_stop reported its own peers gone before returning. */
	assert_int_equal(w->n[2].connected[0], 0);
	assert_int_equal(w->n[2].connected[1], 0);
	assert_true(run_until(w, node2_gone, 10000));
	run_for(w, 600); /* the dialers for node 2 fail a few times */
	json_t *arr = p2p_peers_json(w->n[0].p);
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)w->port[2]);
	bool seen = false;
	size_t k;
	json_t *o;
	json_array_foreach(arr, k, o) {
		const char *a = json_string_value(json_object_get(o, "address"));
		if (a && strcmp(a, addr) == 0 && strcmp(json_string_value(json_object_get(o, "state")), "connected")) {
			seen = true;
			assert_string_equal(json_string_value(json_object_get(o, "name")), "agency-2");
			uint64_t attempts;
			assert_true(td_json_number_u64(json_object_get(o, "attempts"), &attempts));
			assert_true(attempts >= 2);
		}
	}
	json_decref(arr);
	assert_true(seen);

	node_start(w, 2, "");
	assert_true(run_until(w, all_meshed, 15000));
	exchange_small(w, "after restart");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mesh),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_stranger_and_wrong_chain),
		cmocka_unit_test(test_garbage_and_half_open),
		cmocka_unit_test(test_tamper_and_replay),
		cmocka_unit_test(test_send_queue_full),
		cmocka_unit_test(test_handshake_flood),
		cmocka_unit_test(test_disconnect_reconnects),
		cmocka_unit_test(test_stop_and_redial),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
