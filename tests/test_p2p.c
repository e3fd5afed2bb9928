/*
 * p2p transport over real loopback TCP: three nodes on one loop dialing each
 * other (every pair both ways, plus one address listed twice, so duplicate
 * connections must collapse), message exchange (small and 4 MiB), refusals
 * (stranger key, another genesis), peers written PUBKEY@HOST:PORT (the named
 * key connects, another key at that address is dropped), hostile raw clients (garbage, half-open,
 * a hello trickled byte by byte, oversized length, tampered and replayed
 * frames, a client that does not read, floods of unauthenticated connects
 * from one address and from many), a recorded handshake replayed by a client
 * with no keys (it never becomes a peer and never displaces the real one),
 * bytes that never decrypt (they do not keep a peer alive), stop and restart
 * with redial.
 *
 * The genesis has 4 validators: nodes 0..2 run p2p; validator 3 has no node
 * of the world and is the identity a raw client in this file uses to
 * complete a real handshake (implemented here with libsodium, independently
 * of p2p.c); some tests run a fourth p2p node with its key, through a
 * recording TCP proxy. Raw clients and the proxy use blocking sockets in a
 * thread while the loop runs here; unauthenticated floods come from other
 * loopback addresses (127.0.0.2 and up) than the nodes (127.0.0.1). Every
 * wait is bounded by a deadline timer; nothing assumes speed.
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
#include <signal.h>
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
#define HANDSHAKE_MS 1000
#define BIG_LEN (4 * 1024 * 1024)
#define RECS_MAX 256
#define HELLO_LEN 164
#define REPLY_LEN 156
#define FINISH_LEN 88
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
		.handshake_ms = HANDSHAKE_MS,
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
	RAW_SLOW,     /* a valid hello, one byte every 50 ms */
	RAW_BYTES,    /* send the bytes given (a recording), then wait */
};

struct raw {
	enum raw_mode mode;
	uint16_t port;
	const uint8_t *sk;    /* Ed25519 identity */
	const uint8_t *chain; /* the genesis hash the hello names */
	pthread_t th;
	atomic_int handshaken;
	atomic_int release;
	atomic_int done;
	const uint8_t *bytes; /* RAW_BYTES */
	size_t nbytes;
	int closed;             /* the node closed the connection */
	uint64_t closed_after;  /* ms from the last bytes we sent to the close (RAW_SLOW: from the connect) */
	size_t rx_before_hello; /* bytes the node sent before our hello was complete */
	size_t rx_total;        /* bytes the node sent after the handshake part (wait_closed) */
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

/* Reads until the peer closes (1) or 15 s pass with nothing (0); counts the bytes in *total. */
static int wait_closed(int fd, size_t *total)
{
	uint8_t buf[4096];
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k == 0 || (k < 0 && errno == ECONNRESET))
			return 1;
		if (k < 0 && errno != EINTR)
			return 0;
		if (k > 0)
			*total += (size_t)k;
	}
}

/* Bytes readable on fd right now (without blocking), or -1 once the peer closed. */
static ssize_t drain_now(int fd)
{
	uint8_t buf[4096];
	ssize_t got = 0;
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 0) <= 0)
			return got;
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k == 0 || (k < 0 && errno != EINTR))
			return -1;
		if (k > 0)
			got += k;
	}
}

/* The version-3 hello of identity sk with ephemeral key eph_pk (see p2p.c). */
static void make_hello(uint8_t hello[static HELLO_LEN], const uint8_t *sk, const uint8_t chain_hash[32],
		       const uint8_t eph_pk[32])
{
	uint8_t m[20 + 96];
	memcpy(hello, "TDP3", 4);
	memcpy(hello + 4, chain_hash, 32);
	memcpy(hello + 36, sk + 32, 32);
	memcpy(hello + 68, eph_pk, 32);
	memcpy(m, "tenderd-p2p-v3 hello", 20);
	memcpy(m + 20, hello + 4, 96);
	crypto_sign_detached(hello + 100, NULL, m, sizeof(m), sk);
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
	uint8_t hello[HELLO_LEN], reply[REPLY_LEN], finish[FINISH_LEN];
	uint8_t eph_pk[crypto_kx_PUBLICKEYBYTES], eph_sk[crypto_kx_SECRETKEYBYTES];
	uint8_t rx[32], tx[32], t[160], m[32 + 160], chain_hash[32];
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

	if (r->mode == RAW_BYTES) {
		write_all(fd, r->bytes, r->nbytes);
		sent_at = now_ms();
		goto wait;
	}
	memcpy(chain_hash, r->chain, 32);
	crypto_kx_keypair(eph_pk, eph_sk);
	make_hello(hello, r->sk, chain_hash, eph_pk);
	if (r->mode == RAW_SLOW) {
		for (size_t i = 0; i < sizeof(hello); i++) {
			ssize_t k = drain_now(fd);
			if (k < 0) {
				r->closed = 1;
				break;
			}
			r->rx_before_hello += (size_t)k;
			if (!write_all(fd, hello + i, 1)) {
				r->closed = 1;
				break;
			}
			usleep(50 * 1000);
		}
		if (!r->closed)
			r->closed = wait_closed(fd, &r->rx_total);
		r->closed_after = now_ms() - sent_at;
		goto out_fd;
	}
	/* The node sends nothing before our hello is complete. */
	if (!write_all(fd, hello, sizeof(hello) - 1))
		goto wait;
	usleep(100 * 1000);
	ssize_t early = drain_now(fd);
	r->rx_before_hello = early > 0 ? (size_t)early : 0;
	if (early < 0 || !write_all(fd, hello + sizeof(hello) - 1, 1) || !read_all(fd, reply, sizeof(reply)))
		goto wait;
	/* The reply: "TDP3" | identity | ephemeral | signature over T | stream header. */
	if (memcmp(reply, "TDP3", 4) != 0)
		goto wait;
	memcpy(t, chain_hash, 32);
	memcpy(t + 32, r->sk + 32, 32);
	memcpy(t + 64, eph_pk, 32);
	memcpy(t + 96, reply + 4, 64);
	memcpy(m, "tenderd-p2p-v3 listener", 23);
	memcpy(m + 23, t, sizeof(t));
	if (crypto_sign_verify_detached(reply + 68, m, 23 + sizeof(t), reply + 4) != 0)
		goto wait;
	if (crypto_kx_client_session_keys(rx, tx, eph_pk, eph_sk, reply + 36) != 0)
		goto wait;
	memcpy(m, "tenderd-p2p-v3 dialer", 21);
	memcpy(m + 21, t, sizeof(t));
	crypto_sign_detached(finish, NULL, m, 21 + sizeof(t), r->sk);
	crypto_secretstream_xchacha20poly1305_init_push(&st, finish + 64, tx);
	if (!write_all(fd, finish, sizeof(finish)))
		goto wait;
	atomic_store(&r->handshaken, 1);

	switch (r->mode) {
	case RAW_GARBAGE:
	case RAW_SILENT:
	case RAW_SLOW:
	case RAW_BYTES: break;
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
	r->closed = wait_closed(fd, &r->rx_total);
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
	if (!r->chain)
		r->chain = w->g.hash;
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
	signal(SIGPIPE, SIG_IGN);
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
	td_genesis_seal(&w->g);
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
	td_genesis_seal(&g2);
	td_genesis_seal(&g3);
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

static struct tnode keyed;
static uint16_t keyed_wrong_port;
static bool keyed_settled(struct world *w)
{
	bool failed = false;
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)keyed_wrong_port);
	json_t *arr = p2p_peers_json(keyed.p);
	size_t k;
	json_t *o;
	json_array_foreach(arr, k, o) {
		uint64_t fails = 0;
		const char *a = json_string_value(json_object_get(o, "address"));
		if (a && strcmp(a, addr) == 0 && td_json_number_u64(json_object_get(o, "failures"), &fails) &&
		    fails >= 2)
			failed = true;
	}
	json_decref(arr);
	return failed && keyed.connected[0] && w->n[0].connected[RAW_V];
}

static bool keyed_gone(struct world *w)
{
	return !w->n[0].connected[RAW_V];
}

/*
 * Peers written PUBKEY@HOST:PORT: the expected key connects; an entry naming another
 * validator's key at an address is dropped at the handshake with a reason naming both keys
 * (and retried with backoff), never a peer on either side; an entry with this node's own key
 * is never dialed; a malformed key or one that is not a validator refuses to start.
 */
static void test_keyed_peers(void **state)
{
	struct world *w = *state;
	char listen[32], peers[512], err[256], hex[NV][65], want_addr[2][32];
	uint16_t port;
	int before1 = w->n[1].connects[RAW_V];

	for (int v = 0; v < NV; v++)
		td_hex(hex[v], w->pk[v], 32);
	pick_ports(&port, 1);
	keyed_wrong_port = w->port[1];
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)port);
	/* Node 0 under its own key; node 1's address under node 2's key; this node's own key. */
	snprintf(peers, sizeof(peers), "%s@127.0.0.1:%u, %s@127.0.0.1:%u,%s@127.0.0.1:1", hex[0], (unsigned)w->port[0],
		 hex[2], (unsigned)w->port[1], hex[RAW_V]);
	memset(&keyed, 0, sizeof(keyed));
	struct p2p_config cfg = {
		.listen = listen,
		.peers = peers,
		.genesis = &w->g,
		.sk = w->sk[RAW_V],
		.ping_ms = PING_MS,
		.timeout_ms = TIMEOUT_MS,
	};
	assert_int_equal(p2p_start(&keyed.p, &w->loop, &cfg, &cbs, &keyed, err, sizeof(err)), 0);
	assert_true(run_until(w, keyed_settled, 10000));
	assert_int_equal(keyed.connects[1], 0);
	assert_int_equal(keyed.connects[2], 0);
	assert_int_equal(w->n[1].connects[RAW_V], before1);
	assert_int_equal(w->n[1].connected[RAW_V], 0);
	assert_int_equal(p2p_peer_count(keyed.p), 1);

	snprintf(want_addr[0], sizeof(want_addr[0]), "127.0.0.1:%u", (unsigned)w->port[0]);
	snprintf(want_addr[1], sizeof(want_addr[1]), "127.0.0.1:%u", (unsigned)w->port[1]);
	json_t *arr = p2p_peers_json(keyed.p);
	size_t k;
	json_t *o;
	int seen_ok = 0, seen_wrong = 0;
	json_array_foreach(arr, k, o) {
		const char *a = json_string_value(json_object_get(o, "address"));
		const char *st = json_string_value(json_object_get(o, "state"));
		assert_non_null(a);
		assert_string_not_equal(a, "127.0.0.1:1"); /* the entry with our own key is never dialed */
		assert_null(strchr(a, '@'));               /* addresses are shown without the key */
		if (strcmp(st, "connected") == 0) {
			seen_ok++;
			assert_string_equal(a, want_addr[0]);
			assert_string_equal(json_string_value(json_object_get(o, "pub_key")), hex[0]);
			continue;
		}
		assert_string_equal(a, want_addr[1]);
		seen_wrong++;
		/* The identity shown is the one the entry names, known before any handshake. */
		assert_string_equal(json_string_value(json_object_get(o, "pub_key")), hex[2]);
		assert_string_equal(json_string_value(json_object_get(o, "name")), "agency-2");
		const char *e = json_string_value(json_object_get(o, "last_error"));
		assert_non_null(e);
		assert_non_null(strstr(e, "wrong key"));
		assert_non_null(strstr(e, hex[2]));
		assert_non_null(strstr(e, hex[1]));
		assert_non_null(strstr(e, "agency-1"));
	}
	json_decref(arr);
	assert_int_equal(seen_ok, 1);
	assert_int_equal(seen_wrong, 1);
	p2p_stop(keyed.p);
	keyed.p = NULL;
	assert_true(run_until(w, keyed_gone, 10000));

	/* Refused at start: a key that is not hex, one that is no validator, an empty address. */
	uint8_t spk[32], ssk[64];
	struct p2p *bad = NULL;
	crypto_sign_keypair(spk, ssk);
	char shex[65];
	td_hex(shex, spk, 32);
	const char *bad_peers[3] = { "nothex@127.0.0.1:1", NULL, NULL };
	char stranger[128], noaddr[128];
	snprintf(stranger, sizeof(stranger), "%s@127.0.0.1:1", shex);
	snprintf(noaddr, sizeof(noaddr), "%s@", hex[0]);
	bad_peers[1] = stranger;
	bad_peers[2] = noaddr;
	for (int i = 0; i < 3; i++) {
		struct p2p_config bc = {
			.listen = "127.0.0.1:0", .genesis = &w->g, .sk = w->sk[RAW_V], .peers = bad_peers[i]
		};
		err[0] = '\0';
		assert_int_equal(p2p_start(&bad, &w->loop, &bc, &cbs, NULL, err, sizeof(err)), TD_EINVAL);
		assert_null(bad);
		if (i == 1)
			assert_non_null(strstr(err, "not a validator"));
	}
	assert_true(all_meshed(w));
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
	assert_true(r.closed_after >= HANDSHAKE_MS / 2); /* the handshake deadline, not earlier */
	assert_true(r.closed_after < TIMEOUT_MS);
	assert_int_equal(r.rx_total, 0); /* the listener sent nothing, signed nothing */

	/* A hello trickled one byte every 50 ms: bytes before authentication keep nothing alive. */
	memset(&r, 0, sizeof(r));
	r.mode = RAW_SLOW;
	raw_run(w, &r, 1);
	assert_int_equal(r.closed, 1);
	assert_true(r.closed_after >= HANDSHAKE_MS / 2 && r.closed_after < 2 * HANDSHAKE_MS + 1000);
	assert_int_equal(r.rx_before_hello, 0);
	assert_int_equal(w->n[1].connects[RAW_V], 0);

	memset(&r, 0, sizeof(r));
	r.mode = RAW_OVERSIZE;
	raw_run(w, &r, 2);
	assert_int_equal(atomic_load(&r.handshaken), 1);
	assert_int_equal(r.rx_before_hello, 0); /* the listener waited for the whole hello */
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
	r.chain = w->g.hash;
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

/*
 * Unauthenticated connections over the caps are closed at once: from naddr
 * source addresses 127.0.0.2.., per connections each.
 */
#define FLOOD_MAX (P2P_HANDSHAKING_MAX + 16)
struct flood {
	uint16_t port;
	int naddr, per, n, opened, closed_early;
	atomic_int done;
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	int fds[FLOOD_MAX];
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(f->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	f->n = f->naddr * f->per;
	for (int i = 0; i < f->n; i++) {
		struct sockaddr_in src = { .sin_family = AF_INET,
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + (uint32_t)(i / f->per)) };
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] >= 0 && (bind(fds[i], (struct sockaddr *)&src, sizeof(src)) < 0 ||
				    connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0)) {
			close(fds[i]);
			fds[i] = -1;
		}
		f->opened += fds[i] >= 0;
	}
	/* Within half the handshake deadline, count connections the node closed. */
	uint64_t end = now_ms() + HANDSHAKE_MS / 2;
	int closed[FLOOD_MAX] = { 0 };
	while (now_ms() < end) {
		struct pollfd pf[FLOOD_MAX];
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

static void flood_run(struct world *w, struct flood *f, int node)
{
	pthread_t th;

	f->port = w->port[node];
	cur_flood = f;
	assert_int_equal(pthread_create(&th, NULL, flood_main, f), 0);
	bool ok = run_until(w, flood_done, 20000);
	pthread_join(th, NULL);
	assert_true(ok);
	assert_int_equal(f->opened, f->n);
}

static void test_handshake_flood(void **state)
{
	struct world *w = *state;
	struct flood f;

	/* One address: all but P2P_HANDSHAKING_PER_ADDR_DEFAULT closed at once. */
	memset(&f, 0, sizeof(f));
	f.naddr = 1;
	f.per = 20;
	flood_run(w, &f, 2);
	assert_int_equal(f.closed_early, 20 - (int)P2P_HANDSHAKING_PER_ADDR_DEFAULT);
	assert_true(all_meshed(w));

	/* Many addresses, each under its cap: the overall cap. */
	memset(&f, 0, sizeof(f));
	f.per = (int)P2P_HANDSHAKING_PER_ADDR_DEFAULT;
	f.naddr = P2P_HANDSHAKING_MAX / f.per + 1;
	flood_run(w, &f, 2);
	assert_int_equal(f.closed_early, f.n - P2P_HANDSHAKING_MAX);
	assert_true(all_meshed(w));
	exchange_small(w, "after floods");
}

/* ---- a fourth node with validator 3's key, behind a recording proxy ---- */

/*
 * A TCP proxy in a thread: accepts one connection (the fourth node dialing)
 * and forwards it to a node of the world both ways, keeping the first bytes
 * the dialer sent (its side of the handshake). Once cut is set it stops
 * forwarding the dialer's bytes and instead trickles, every 50 ms, one byte
 * of a frame that never completes: bytes that arrive but never decrypt.
 */
struct proxy {
	int lfd;
	uint16_t port, to_port;
	pthread_t th;
	atomic_int cut, stop, done;
	atomic_int server_closed; /* the node closed its side */
	uint8_t rec[4096];        /* the dialer's first bytes, within REC_MS of the connect */
	size_t nrec;              /* read after done */
};
#define REC_MS 500

static void *proxy_main(void *arg)
{
	struct proxy *x = arg;
	int cfd = -1, sfd = -1;
	bool trickling = false;
	uint64_t t0 = 0, last = 0;
	uint8_t buf[65536];

	while (!atomic_load(&x->stop)) {
		struct pollfd pf = { .fd = x->lfd, .events = POLLIN };
		if (poll(&pf, 1, 20) > 0) {
			cfd = accept(x->lfd, NULL, NULL);
			break;
		}
	}
	if (cfd < 0)
		goto out;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(x->to_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	sfd = socket(AF_INET, SOCK_STREAM, 0);
	if (sfd < 0 || connect(sfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	t0 = now_ms();
	while (!atomic_load(&x->stop)) {
		struct pollfd pf[2] = { { .fd = cfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		int k = poll(pf, 2, 20);
		uint64_t now = now_ms();
		if (atomic_load(&x->cut) && !trickling) {
			static const uint8_t len[4] = { 0, 0, 0x10, 0 }; /* a 4096-byte frame */
			write_all(sfd, len, sizeof(len));
			trickling = true;
			last = now;
		}
		if (trickling && now - last >= 50) {
			write_all(sfd, (const uint8_t *)"Z", 1);
			last = now;
		}
		if (k <= 0)
			continue;
		if (pf[0].revents) {
			ssize_t n = read(cfd, buf, sizeof(buf));
			if (n <= 0)
				break;
			if (now - t0 < REC_MS && x->nrec + (size_t)n <= sizeof(x->rec)) {
				memcpy(x->rec + x->nrec, buf, (size_t)n);
				x->nrec += (size_t)n;
			}
			if (!atomic_load(&x->cut))
				write_all(sfd, buf, (size_t)n);
		}
		if (pf[1].revents) {
			ssize_t n = read(sfd, buf, sizeof(buf));
			if (n <= 0) {
				atomic_store(&x->server_closed, 1);
				break;
			}
			write_all(cfd, buf, (size_t)n);
		}
	}
out:
	if (cfd >= 0)
		close(cfd);
	if (sfd >= 0)
		close(sfd);
	atomic_store(&x->done, 1);
	return NULL;
}

static void proxy_start(struct world *w, struct proxy *x, int to)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	memset(x, 0, sizeof(*x));
	x->to_port = w->port[to];
	x->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(x->lfd >= 0);
	assert_int_equal(bind(x->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(x->lfd, 4), 0);
	assert_int_equal(getsockname(x->lfd, (struct sockaddr *)&sa, &sl), 0);
	x->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&x->th, NULL, proxy_main, x), 0);
}

static void proxy_stop(struct proxy *x)
{
	atomic_store(&x->stop, 1);
	pthread_join(x->th, NULL);
	close(x->lfd);
}

static struct tnode n3; /* validator 3 running p2p */

/* Starts validator 3's node, dialing only the address peers. */
static void n3_start(struct world *w, const char *peers)
{
	char listen[64], err[256];
	uint16_t port;

	pick_ports(&port, 1);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)port);
	struct p2p_config cfg = {
		.listen = listen,
		.peers = peers,
		.genesis = &w->g,
		.sk = w->sk[RAW_V],
		.ping_ms = PING_MS,
		.timeout_ms = TIMEOUT_MS,
		.handshake_ms = HANDSHAKE_MS,
	};
	memset(&n3, 0, sizeof(n3));
	n3.idx = RAW_V;
	if (p2p_start(&n3.p, &w->loop, &cfg, &cbs, &n3, err, sizeof(err)) != 0)
		fail_msg("p2p_start of validator 3: %s", err);
}

static int watch_node; /* the node of the world the next predicate looks at */
static bool n3_linked(struct world *w)
{
	return w->n[watch_node].connected[RAW_V] && n3.connected[watch_node];
}
static bool n3_unlinked(struct world *w)
{
	return !w->n[watch_node].connected[RAW_V];
}

static void n3_stop(struct world *w)
{
	p2p_stop(n3.p);
	n3.p = NULL;
	for (int i = 0; i < NN; i++) {
		watch_node = i;
		assert_true(run_until(w, n3_unlinked, 10000));
	}
}

/* Replays rec to node i from a client with no keys; returns how the node answered. */
static void replay_to(struct world *w, int i, const uint8_t *rec, size_t n, struct raw *r)
{
	memset(r, 0, sizeof(*r));
	r->mode = RAW_BYTES;
	r->bytes = rec;
	r->nbytes = n;
	raw_run(w, r, i);
}

/* The view in p2p_peers_json: whether validator v shows as connected. */
static bool json_shows(struct p2p *p, uint32_t v)
{
	json_t *arr = p2p_peers_json(p);
	size_t k;
	json_t *o;
	bool seen = false;
	json_array_foreach(arr, k, o) {
		uint64_t x;
		if (td_json_number_u64(json_object_get(o, "validator"), &x) && x == v &&
		    strcmp(json_string_value(json_object_get(o, "state")), "connected") == 0)
			seen = true;
	}
	json_decref(arr);
	return seen;
}

/*
 * Validator 3 connects to node 1 through the proxy, which records what it
 * sent. With validator 3 down, a client with no keys replays the recording
 * to node 1 (which saw that hello) and to node 0 (which did not): neither
 * shows validator 3 connected, at any moment. With validator 3 up and linked
 * to node 0, replays do not displace that link.
 */
static void test_replayed_handshake(void **state)
{
	struct world *w = *state;
	struct proxy x;
	char peers[64];
	struct raw r;
	uint8_t rec[sizeof(x.rec)];
	size_t nrec;

	proxy_start(w, &x, 1);
	snprintf(peers, sizeof(peers), "127.0.0.1:%u", (unsigned)x.port);
	n3_start(w, peers);
	watch_node = 1;
	assert_true(run_until(w, n3_linked, 10000));
	run_for(w, REC_MS + 100);
	n3_stop(w);
	proxy_stop(&x);
	nrec = x.nrec;
	memcpy(rec, x.rec, nrec);
	assert_true(nrec >= HELLO_LEN);

	int c0 = w->n[0].connects[RAW_V];
	for (int i = 1; i >= 0; i--) {
		int ci = w->n[i].connects[RAW_V];
		replay_to(w, i, rec, nrec, &r);
		assert_int_equal(w->n[i].connects[RAW_V], ci); /* never announced, not even for a moment */
		assert_int_equal(r.closed, 1);
		assert_int_equal(w->n[i].connected[RAW_V], 0);
		assert_false(json_shows(w->n[i].p, RAW_V));
		/* Only the hello alone, held open: no peer either, closed by the handshake deadline. */
		replay_to(w, i, rec, HELLO_LEN, &r);
		assert_int_equal(w->n[i].connects[RAW_V], ci);
		assert_int_equal(r.closed, 1);
		assert_true(r.closed_after < TIMEOUT_MS);
	}

	/* The real validator 3, linked to node 0: replays do not touch that link. */
	snprintf(peers, sizeof(peers), "127.0.0.1:%u", (unsigned)w->port[0]);
	n3_start(w, peers);
	watch_node = 0;
	assert_true(run_until(w, n3_linked, 10000));
	struct p2p_peer *real = p2p_peer_find(w->n[0].p, RAW_V);
	assert_non_null(real);
	c0 = w->n[0].connects[RAW_V];
	int d0 = w->n[0].disconnects[RAW_V];
	for (int k = 0; k < 3; k++) {
		replay_to(w, 0, rec, k == 1 ? HELLO_LEN : nrec, &r);
		assert_int_equal(r.closed, 1);
	}
	run_for(w, 300);
	assert_ptr_equal(p2p_peer_find(w->n[0].p, RAW_V), real);
	assert_int_equal(w->n[0].connects[RAW_V], c0);
	assert_int_equal(w->n[0].disconnects[RAW_V], d0);
	assert_int_equal(n3.disconnects[0], 0);
	assert_true(json_shows(w->n[0].p, RAW_V));
	n3_stop(w);
	assert_true(all_meshed(w));
}

/*
 * Validator 3 links to node 2 through the proxy; then the proxy stops
 * forwarding and trickles bytes of a frame that never completes. Node 2
 * drops the peer after timeout_ms of no frame that decrypted, although
 * bytes keep coming.
 */
static void test_liveness_needs_frames(void **state)
{
	struct world *w = *state;
	struct proxy x;
	char peers[64];

	proxy_start(w, &x, 2);
	snprintf(peers, sizeof(peers), "127.0.0.1:%u", (unsigned)x.port);
	n3_start(w, peers);
	watch_node = 2;
	assert_true(run_until(w, n3_linked, 10000));
	run_for(w, 3 * PING_MS);
	uint64_t rx0 = p2p_bytes_received(w->n[2].p);
	atomic_store(&x.cut, 1);
	uint64_t t0 = now_ms();
	bool dropped = run_until(w, n3_unlinked, 3 * TIMEOUT_MS);
	uint64_t took = now_ms() - t0;
	bool trickled = p2p_bytes_received(w->n[2].p) > rx0; /* bytes did arrive meanwhile */
	proxy_stop(&x);
	n3_stop(w);
	assert_true(dropped);
	assert_true(trickled);
	assert_true(took < 2 * TIMEOUT_MS);
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
		cmocka_unit_test(test_keyed_peers),
		cmocka_unit_test(test_garbage_and_half_open),
		cmocka_unit_test(test_tamper_and_replay),
		cmocka_unit_test(test_send_queue_full),
		cmocka_unit_test(test_handshake_flood),
		cmocka_unit_test(test_replayed_handshake),
		cmocka_unit_test(test_liveness_needs_frames),
		cmocka_unit_test(test_disconnect_reconnects),
		cmocka_unit_test(test_stop_and_redial),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
