/*
 * Peer-to-peer transport (contract in p2p.h).
 *
 * Wire protocol, version 3 (TCP, every integer big-endian). The dialer pays
 * first: a listener does no public-key work for a connection before the
 * dialer's signed hello checks out, and nothing of the handshake counts as a
 * peer or as liveness until both sides proved their identity keys.
 *
 * Let T be the transcript
 *      genesis hash (32, td_genesis_hash) | dialer identity (32) | dialer ephemeral (32) |
 *      listener identity (32) | listener ephemeral (32)
 * where identities are Ed25519 public keys and ephemerals fresh X25519 keys
 * (crypto_kx_keypair, one per connection and side).
 *
 * 1. Dialer hello (HELLO_LEN = 164 bytes, plaintext), sent at connect:
 *      "TDP" 0x33 (magic and version byte, "TDP3") | genesis hash (32) |
 *      dialer identity (32) | dialer ephemeral (32) |
 *      signature (64) by the dialer identity over
 *        "tenderd-p2p-v3 hello" | genesis hash | dialer identity | dialer ephemeral
 *    The listener sends nothing before it holds these 164 bytes. It checks,
 *    cheapest first: magic (another version, such as "TDP2" of ledger format
 *    1, is refused with a log line naming both versions), genesis hash
 *    ("another genesis": a node of another chain, or of a chain with the same
 *    id but another validator set or time, never connects), that the key
 *    may connect (cfg->key_lookup, by default the genesis validators; else
 *    "unknown identity <hex>"), that the dialer ephemeral key was not in a
 *    hello seen recently (REPLAY_CACHE entries: a recorded hello costs no
 *    signature check twice), then the signature.
 * 2. Listener reply (REPLY_LEN = 156 bytes, plaintext), only after step 1:
 *      "TDP3" | listener identity (32) | listener ephemeral (32) |
 *      signature (64) by the listener identity over "tenderd-p2p-v3 listener" | T |
 *      listener secretstream header (24)
 *    The dialer checks the magic, the identity (allowed, not itself) and the
 *    signature. T holds the dialer's fresh ephemeral key, so a recorded reply
 *    fails for any other connection.
 * 3. Dialer finish (FINISH_LEN = 88 bytes):
 *      signature (64) by the dialer identity over "tenderd-p2p-v3 dialer" | T |
 *      dialer secretstream header (24)
 *    T holds the listener's fresh ephemeral key, so a replayed hello (step 1)
 *    cannot be completed without the dialer's secret key.
 *    Session keys: crypto_kx_client_session_keys at the dialer,
 *    crypto_kx_server_session_keys at the listener, over the two ephemerals;
 *    each side init_push-es its stream with its tx key and init_pull-s the
 *    peer's header with its rx key. The dialer's connection is a peer once it
 *    has checked step 2 and sent step 3; the listener's once it has checked
 *    step 3. Any failed check closes the connection.
 * 4. Frames. Every later byte is a frame: a 4-byte length L, then L bytes of
 *    secretstream ciphertext (tag MESSAGE) of a plaintext whose first byte
 *    is the frame type: 0 application message (the rest is the message),
 *    1 ping, 2 pong (no payload). L is checked before any allocation:
 *    1 + ABYTES <= L <= frame_max + 1 + ABYTES, where ABYTES is
 *    crypto_secretstream_xchacha20poly1305_ABYTES (17). A frame that fails
 *    to decrypt (tampered, replayed, reordered or truncated: the stream's
 *    nonce advances with every frame), carries another tag or an unknown
 *    type closes the connection, logged once with the reason. There is no
 *    plaintext mode.
 * 5. Liveness. Each side pings every ping_ms and answers pings with pongs;
 *    only a frame that decrypted refreshes a peer's clock, and a peer from
 *    which no such frame arrived for timeout_ms is dropped. A connection
 *    whose TCP connect is not done within timeout_ms, or whose handshake is
 *    not done within handshake_ms of the TCP connection, is closed.
 * 6. One connection per pair. When a second connection to a validator
 *    completes its handshake, both sides keep the one dialed by the node with
 *    the bytewise smaller identity key; if both were dialed by the same node,
 *    the one whose dialer ephemeral key is smaller. Both sides know all these
 *    keys, so they close the same connection. The rule runs only between
 *    authenticated connections: one still in its handshake is never a peer
 *    and never displaces one.
 * 7. Handshake slots. Inbound connections in their handshake are capped at
 *    P2P_HANDSHAKING_MAX in all and at handshake_per_addr per source address
 *    (IPv4 address, or IPv6 /64); a connection over either cap is closed at
 *    accept, before any read. Outbound connections never count against
 *    these caps, so dials to known peers always find room on this side.
 *
 * Dialing: each address in cfg->peers has a dialer that connects, and after a
 * failure or disconnect waits a backoff (200 ms doubling to 10 s, +-20%
 * jitter) before the next try. An entry written PUBKEY@HOST:PORT names the
 * identity expected at the address: p2p_start refuses a key that may not
 * connect (key_lookup), an entry with this node's own key is never dialed,
 * and a listener that answers with any other identity is dropped at step 2,
 * before its signature is checked, as a failure naming both keys. For an
 * entry written HOST:PORT the identity is learned at handshake. While the
 * validator behind an address is connected (by any connection) the dialer
 * pauses, and it resumes when the connection goes. An address that turns out
 * to be this node is not dialed again. Failures are logged on the first one
 * and then once a minute (debug in between).
 *
 * Ownership and lifetimes:
 * - struct p2p counts references: the listener, the tick timer, each dialer
 *   timer, each connection until its close callback and each getaddrinfo in
 *   flight. p2p_stop closes everything; the last close callback frees it.
 * - A connection (struct p2p_peer) is freed only in its close callback, so it
 *   stays valid through any callback that drops it. conn_drop() marks it
 *   closing and takes it out of the validator table at once; on_disconnect
 *   fires from the close callback (or from p2p_stop, or just before a newer
 *   connection to the same validator is announced, so connects and
 *   disconnects of a validator alternate).
 * - Each write is one allocation holding the uv_write_t and the frame bytes,
 *   freed in the write callback. Bytes waiting in libuv's queue are capped
 *   by send_queue_max: a peer that does not read is dropped.
 * - A connection's read buffer holds at most one frame (or one handshake
 *   message): it grows (doubling) as the bytes of a frame whose length
 *   was checked arrive, never past that frame; buffers over BUF_KEEP are
 *   released after use.
 * - Session keys and ephemeral secrets live only in the connection and are
 *   wiped when it is freed. Only public keys are ever logged.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "p2p.h"
#include "tenderd/json.h"

#define MAGIC_LEN 4
#define MAGIC_PREFIX "TDP" /* then the version byte */
#define PROTO_VERSION '3'
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
#define SRC_LEN 9         /* family byte, then an IPv4 address or the /64 prefix of an IPv6 one */
#define REPLAY_CACHE 1024 /* dialer ephemeral keys of the last hellos that checked out */

#define READ_CHUNK (64 * 1024)
#define BUF_KEEP (64 * 1024) /* read buffers larger than this are freed after their frame */
#define BUF_MIN 4096         /* smallest read buffer allocated */
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define FAIL_LOG_EVERY_MS 60000
#define LISTEN_BACKLOG 128
#define ADDR_MAX 80
#define REASON_MAX 512 /* room for a wrong-key message: two keys in hex and a name */

enum frame_type {
	FRAME_APP = 0,
	FRAME_PING = 1,
	FRAME_PONG = 2,
};

enum conn_state {
	CS_CONNECTING, /* outbound, TCP connect in flight */
	CS_HELLO,      /* inbound, reading the dialer's hello; nothing sent */
	CS_REPLY,      /* outbound, our hello sent, reading the listener's reply */
	CS_FINISH,     /* inbound, our reply sent, reading the dialer's finish */
	CS_READY,      /* both sides proved their keys; reading frames */
};

enum dial_state {
	DS_WAIT,       /* timer armed for the next try */
	DS_RESOLVING,  /* getaddrinfo in flight */
	DS_CONNECTING, /* a connection of ours is connecting or handshaking */
	DS_CONNECTED,  /* our connection is ready */
	DS_PAUSED,     /* the validator behind the address is connected another way */
	DS_SELF,       /* the address is this node: never dialed again */
};

struct p2p;

struct dialer {
	struct p2p *p;
	char *addr;   /* host:port as configured (without the PUBKEY@ of a keyed entry), owned */
	char *host;   /* owned */
	char port[8]; /* decimal */
	bool numeric; /* sa holds the address; else resolve each try */
	struct sockaddr_storage sa;
	uv_timer_t timer;
	uv_getaddrinfo_t gai;
	enum dial_state state;
	struct p2p_peer *conn; /* our connection while DS_CONNECTING/DS_CONNECTED */
	int validator;         /* identity behind the address once known, else -1 */
	bool keyed;            /* PUBKEY@HOST:PORT: only expect_pk may answer (validator known from the start) */
	uint32_t backoff_ms;   /* wait before the next try after a failure (before jitter) */
	uint64_t attempts;     /* tries since start */
	uint64_t fails;        /* failures since the last success */
	uint64_t next_at;      /* loop time of the next try in DS_WAIT */
	uint64_t last_log;     /* loop time of the last failure logged at info or above */
	char last_error[REASON_MAX];
	uint8_t expect_pk[TD_PUBKEY_LEN]; /* keyed: the identity the entry names */
};

struct p2p {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t tick;
	const struct td_genesis *g;
	uint8_t sk[TD_SECKEY_LEN];
	uint8_t chain_hash[TD_HASH_LEN];
	int self; /* our index in g */
	size_t send_queue_max;
	uint32_t ping_ms, timeout_ms, frame_max, handshake_ms, per_addr;
	int (*key_lookup)(void *ctx, const uint8_t pk[static TD_PUBKEY_LEN]);
	void *key_lookup_ctx;
	const struct td_validator *(*party_fn)(void *ctx, uint32_t slot, const char **role);
	struct p2p_callbacks cb;
	void *ctx;
	struct p2p_peer *conns;         /* every connection not yet through its close callback */
	struct p2p_peer **by_validator; /* one per party (td_genesis_parties): the ready, non-closing connection */
	size_t npeers;                  /* non-NULL entries of by_validator */
	size_t nhandshaking;            /* inbound connections counted against P2P_HANDSHAKING_MAX */
	bool hs_full_logged;
	uint64_t addr_full_logged;              /* loop time of the last per-address refusal logged at warn */
	uint64_t drop_window;                   /* loop time the current minute of inbound drop logs began */
	uint32_t drop_logged[2], drop_quiet[2]; /* that minute, [0] unauthenticated [1] validators: logged, not */
	uint8_t (*replay)[EPH_LEN];             /* REPLAY_CACHE dialer ephemeral keys, a ring */
	size_t replay_next;
	bool replay_full; /* the ring wrapped: every entry holds a key */
	struct dialer *dialers;
	size_t ndialers;
	uint16_t port;
	size_t refs;
	bool stopping;
	uint64_t bytes_sent, bytes_received;
	uint8_t rbuf[READ_CHUNK]; /* shared: libuv calls alloc then read for one stream at a time */
};

struct p2p_peer {
	uv_tcp_t tcp; /* tcp.data points back here */
	uv_connect_t connect;
	struct p2p *p;
	struct p2p_peer *prev, *next;
	struct dialer *d; /* the dialer that made this outbound connection, until it closes */
	bool outbound;
	bool closing;   /* uv_close called; the close callback frees */
	bool announced; /* on_connect was called and on_disconnect not yet */
	bool counted;   /* counted in p->nhandshaking */
	bool was_ready; /* got through the handshake and the duplicate check */
	bool dup;       /* closed as the duplicate of another connection */
	int reason_level;
	enum conn_state state;
	int validator; /* -1 until the hello is verified */
	char addr[ADDR_MAX];
	uint8_t src[SRC_LEN];    /* inbound: the source as counted per address (see source_key) */
	char reason[REASON_MAX]; /* why it was closed */
	uint8_t eph_pk[EPH_LEN], eph_sk[crypto_kx_SECRETKEYBYTES];
	uint8_t peer_id[TD_PUBKEY_LEN];            /* the other side's identity, once its hello or reply checked out */
	uint8_t peer_eph[EPH_LEN];                 /* the other side's ephemeral public key, likewise */
	uint8_t dialer_eph[EPH_LEN];               /* the dialer's ephemeral public key, for the duplicate rule */
	uint8_t rx_key[crypto_kx_SESSIONKEYBYTES]; /* listener, between its reply and the dialer's finish */
	crypto_secretstream_xchacha20poly1305_state tx, rx;
	uint8_t *buf; /* the unit being read: hello, header or frame (length prefix included) */
	size_t have, need, cap;
	uint64_t created;  /* loop time the connection was made (outbound: the connect started) */
	uint64_t hs_start; /* loop time the TCP connection was up: the handshake deadline counts from here */
	uint64_t last_rx;  /* loop time of the last frame that decrypted (READY only) */
	uint64_t last_ping, connected_at;
	uint64_t sent, received;
};

/* One write: the request and its bytes in one allocation, freed in on_write. */
struct wreq {
	uv_write_t w;
	size_t len;
	uint8_t data[];
};

static void conn_drop(struct p2p_peer *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void dial_schedule(struct dialer *d, uint32_t delay_ms);
static void conn_ready(struct p2p_peer *c);

/* ---- helpers ---------------------------------------------------------- */

static void p2p_unref(struct p2p *p)
{
	if (p->refs == 0) {
		log_error("p2p: internal error: reference count underflow");
		abort();
	}
	if (--p->refs > 0 || !p->stopping)
		return;
	for (size_t i = 0; i < p->ndialers; i++) {
		free(p->dialers[i].addr);
		free(p->dialers[i].host);
	}
	free(p->dialers);
	free(p->by_validator);
	free(p->replay);
	sodium_memzero(p->sk, sizeof(p->sk));
	free(p);
}

/* Party v of the genesis: a validator, member or observer. */
static const struct td_validator *party(const struct p2p *p, uint32_t v)
{
	return p->party_fn ? p->party_fn(p->key_lookup_ctx, v, NULL) : td_genesis_party(p->g, v);
}

/* The name of party slot v; v < 0: a key the chain does not name (yet), such as this node's own while it waits. */
static const char *pname(const struct p2p *p, int v)
{
	return v < 0 ? "a key the chain does not name" : party(p, (uint32_t)v)->name;
}

static const uint8_t *self_pk(const struct p2p *p)
{
	return p->sk + TD_SECKEY_LEN - TD_PUBKEY_LEN;
}

static uint32_t jitter(uint32_t ms)
{
	uint32_t span = ms / 5 * 2;
	return ms - ms / 5 + randombytes_uniform(span + 1);
}

static void put_be32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static void format_sockaddr(char *out, size_t outlen, const struct sockaddr *sa)
{
	char ip[64];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uv_ip4_name(in, ip, sizeof(ip));
		snprintf(out, outlen, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		uv_ip6_name(in6, ip, sizeof(ip));
		snprintf(out, outlen, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
	} else {
		snprintf(out, outlen, "?");
	}
}

/*
 * Splits "host:port" or "[v6]:port" (len bytes) into host (NUL-terminated,
 * hostlen bytes) and a decimal port of 0..65535. Returns false if malformed.
 */
static bool split_hostport(const char *s, size_t len, char *host, size_t hostlen, char port[static 8])
{
	const char *colon;
	size_t hl;

	if (len == 0)
		return false;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close || (size_t)(close - s) + 1 >= len || close[1] != ':')
			return false;
		hl = (size_t)(close - s) - 1;
		memcpy(host, s + 1, hl < hostlen ? hl : 0);
		colon = close + 1;
	} else {
		colon = NULL;
		for (size_t i = 0; i < len; i++)
			if (s[i] == ':') {
				if (colon)
					return false; /* bare IPv6 needs brackets */
				colon = s + i;
			}
		if (!colon)
			return false;
		hl = (size_t)(colon - s);
		memcpy(host, s, hl < hostlen ? hl : 0);
	}
	if (hl == 0 || hl >= hostlen)
		return false;
	host[hl] = '\0';
	size_t pl = len - (size_t)(colon + 1 - s);
	if (pl == 0 || pl > 5)
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < pl; i++) {
		char ch = colon[1 + i];
		if (ch < '0' || ch > '9')
			return false;
		v = v * 10 + (unsigned)(ch - '0');
	}
	if (v > 65535)
		return false;
	snprintf(port, 8, "%u", v);
	return true;
}

/* The key inbound connections are counted under: the IPv4 address (also when v4-mapped), or an IPv6 /64. */
static void source_key(uint8_t out[static SRC_LEN], const struct sockaddr *sa)
{
	memset(out, 0, SRC_LEN);
	if (sa->sa_family == AF_INET) {
		out[0] = 4;
		memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
			out[0] = 4;
			memcpy(out + 1, a + 12, 4);
		} else {
			out[0] = 6;
			memcpy(out + 1, a, 8);
		}
	}
}

static bool numeric_addr(const char *host, const char *port, struct sockaddr_storage *sa)
{
	int pn = atoi(port);
	if (uv_ip4_addr(host, pn, (struct sockaddr_in *)sa) == 0)
		return true;
	return uv_ip6_addr(host, pn, (struct sockaddr_in6 *)sa) == 0;
}

/* ---- connections: writing --------------------------------------------- */

static void on_write(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct p2p_peer *c = w->handle->data;
	struct p2p *p = c->p;

	if (status == 0) {
		p->bytes_sent += wr->len;
		c->sent += wr->len;
	}
	free(wr);
	if (status < 0 && !c->closing)
		conn_drop(c, LOG_INFO, "write failed: %s", uv_strerror(status));
}

/* Hands wr (len bytes filled) to libuv; ownership passes. Drops c if the write cannot start. */
static void conn_write(struct p2p_peer *c, struct wreq *wr)
{
	if (c->closing) {
		free(wr);
		return;
	}
	uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned int)wr->len);
	int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc < 0) {
		free(wr);
		conn_drop(c, LOG_INFO, "write failed: %s", uv_strerror(rc));
	}
}

static void conn_write_raw(struct p2p_peer *c, const uint8_t *data, size_t len)
{
	struct wreq *wr = td_xmalloc(sizeof(*wr) + len);
	memcpy(wr->data, data, len);
	wr->len = len;
	conn_write(c, wr);
}

/*
 * Seals one plaintext (type byte first) into a frame and queues it on a
 * ready connection. Returns 0, or TD_EFULL after dropping c when its send
 * queue would pass send_queue_max (or c is already closing).
 */
static int conn_push(struct p2p_peer *c, const uint8_t *pt, size_t ptlen)
{
	struct p2p *p = c->p;
	size_t ctlen = ptlen + ABYTES;
	size_t n = 4 + ctlen;

	if (c->closing || c->state != CS_READY)
		return TD_EFULL;
	size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
	if (queued > 0 && queued + n > p->send_queue_max) {
		conn_drop(c, LOG_WARN, "send queue full (%zu bytes queued); dropping the peer", queued);
		return TD_EFULL;
	}
	struct wreq *wr = td_xmalloc(sizeof(*wr) + n);
	put_be32(wr->data, (uint32_t)ctlen);
	crypto_secretstream_xchacha20poly1305_push(&c->tx, wr->data + 4, NULL, pt, ptlen, NULL, 0,
						   crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
	wr->len = n;
	conn_write(c, wr);
	return c->closing ? TD_EFULL : 0;
}

static void conn_push_control(struct p2p_peer *c, enum frame_type type)
{
	uint8_t b = (uint8_t)type;
	(void)conn_push(c, &b, 1);
}

/* ---- connections: life cycle ------------------------------------------ */

static const char *conn_who(const struct p2p_peer *c)
{
	return c->validator >= 0 ? pname(c->p, c->validator) : "unknown peer";
}

static void on_conn_closed(uv_handle_t *h)
{
	struct p2p_peer *c = h->data;
	struct p2p *p = c->p;

	if (c->announced) {
		c->announced = false;
		if (p->cb.on_disconnect)
			p->cb.on_disconnect(p->ctx, c);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->buf);
	sodium_memzero(c->eph_sk, sizeof(c->eph_sk));
	sodium_memzero(c->rx_key, sizeof(c->rx_key));
	sodium_memzero(&c->tx, sizeof(c->tx));
	sodium_memzero(&c->rx, sizeof(c->rx));
	free(c);
	p2p_unref(p);
}

static struct p2p_peer *conn_new(struct p2p *p, bool outbound)
{
	struct p2p_peer *c = td_xcalloc(1, sizeof(*c));
	c->p = p;
	c->outbound = outbound;
	c->validator = -1;
	c->state = CS_CONNECTING;
	c->created = c->hs_start = c->last_rx = uv_now(p->loop);
	uv_tcp_init(p->loop, &c->tcp);
	c->tcp.data = c;
	c->connect.data = c;
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	p->refs++;
	return c;
}

/* Starts the next try of a dialer whose validator lost its connection. */
static void wake_dialers(struct p2p *p, int validator)
{
	for (size_t i = 0; i < p->ndialers; i++) {
		struct dialer *d = &p->dialers[i];
		if (d->validator == validator && d->state == DS_PAUSED) {
			d->backoff_ms = BACKOFF_MIN_MS;
			dial_schedule(d, jitter(BACKOFF_MIN_MS));
		}
	}
}

static void dial_failed(struct dialer *d, int level, const char *reason)
{
	struct p2p *p = d->p;
	uint64_t now = uv_now(p->loop);
	uint32_t delay = jitter(d->backoff_ms);

	d->fails++;
	snprintf(d->last_error, sizeof(d->last_error), "%s", reason);
	if (level >= 0 && (d->fails == 1 || now - d->last_log >= FAIL_LOG_EVERY_MS)) {
		log_msg(level < LOG_INFO ? (enum log_level)level : LOG_INFO,
			"p2p: cannot connect to %s: %s (failure %" PRIu64 "; retrying with backoff, next in %u ms)",
			d->addr, reason, d->fails, delay);
		d->last_log = now;
	} else {
		log_debug("p2p: cannot connect to %s: %s (failure %" PRIu64 ", next try in %u ms)", d->addr, reason,
			  d->fails, delay);
	}
	d->backoff_ms = d->backoff_ms >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : d->backoff_ms * 2;
	dial_schedule(d, delay);
}

/* A dialer's connection closed: decide when to try again. */
static void dial_after_close(struct dialer *d, const struct p2p_peer *c)
{
	if (d->state == DS_SELF)
		return;
	if (c->was_ready) {
		d->backoff_ms = BACKOFF_MIN_MS;
		d->fails = 0;
		dial_schedule(d, jitter(BACKOFF_MIN_MS));
	} else if (c->dup) {
		dial_schedule(d, jitter(d->backoff_ms)); /* will pause while the other connection lives */
	} else {
		dial_failed(d, c->reason_level, c->reason);
	}
}

/*
 * Whether the drop of an inbound connection may be logged: anyone who
 * reaches the port can make those that never authenticate, and a faulty
 * validator can make its own reconnect and send garbage without end, so
 * each kind gets at most P2P_DROP_LOGS_PER_MIN lines a minute, then one
 * line with the count.
 */
static bool drop_log_ok(struct p2p *p, bool authenticated)
{
	static const char *const what[2] = { "connections that never authenticated",
					     "connections of validators that broke the protocol" };
	uint64_t now = uv_now(p->loop);
	int k = authenticated ? 1 : 0;
	if (now - p->drop_window >= 60000) {
		for (int i = 0; i < 2; i++)
			if (p->drop_quiet[i] > 0)
				log_warn("p2p: %" PRIu32
					 " more %s were dropped in the last minute (not logged one by one)",
					 p->drop_quiet[i], what[i]);
		p->drop_window = now;
		memset(p->drop_logged, 0, sizeof(p->drop_logged));
		memset(p->drop_quiet, 0, sizeof(p->drop_quiet));
	}
	if (p->drop_logged[k] < P2P_DROP_LOGS_PER_MIN) {
		p->drop_logged[k]++;
		return true;
	}
	p->drop_quiet[k]++;
	return false;
}

/*
 * Starts closing c (idempotent) for the reason given, logged at level
 * (negative: not logged here; a dialer's failures are logged by the dialer).
 * c stays allocated until its close callback.
 */
static void conn_drop(struct p2p_peer *c, int level, const char *fmt, ...)
{
	struct p2p *p = c->p;
	va_list ap;

	if (c->closing)
		return;
	c->closing = true;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	c->reason_level = level;
	if (level >= 0 && !(c->d && !c->was_ready) && (c->outbound || drop_log_ok(p, c->was_ready)))
		log_msg((enum log_level)level, "p2p: %s (%s, %s): %s", conn_who(c), c->addr, c->outbound ? "out" : "in",
			c->reason);
	if (c->counted) {
		c->counted = false;
		if (--p->nhandshaking < P2P_HANDSHAKING_MAX)
			p->hs_full_logged = false;
	}
	bool was_peer = c->validator >= 0 && p->by_validator[c->validator] == c;
	if (was_peer) {
		p->by_validator[c->validator] = NULL;
		p->npeers--;
	}
	if (c->d) {
		struct dialer *d = c->d;
		c->d = NULL;
		d->conn = NULL;
		if (!p->stopping)
			dial_after_close(d, c);
	}
	if (was_peer && !p->stopping)
		wake_dialers(p, c->validator);
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- connections: handshake ------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct p2p_peer *c = h->data;
	buf->base = (char *)c->p->rbuf;
	buf->len = sizeof(c->p->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* label | body into out; returns the length. */
static size_t signed_bytes(uint8_t out[static LABEL_MAX + TRANSCRIPT_LEN], const char *label, const uint8_t *body,
			   size_t bodylen)
{
	size_t ll = strlen(label);
	memcpy(out, label, ll);
	memcpy(out + ll, body, bodylen);
	return ll + bodylen;
}

/* T of the file comment. */
static void transcript(uint8_t t[static TRANSCRIPT_LEN], const struct p2p *p,
		       const uint8_t dialer_id[static TD_PUBKEY_LEN], const uint8_t dialer_eph[static EPH_LEN],
		       const uint8_t listener_id[static TD_PUBKEY_LEN], const uint8_t listener_eph[static EPH_LEN])
{
	memcpy(t, p->chain_hash, TD_HASH_LEN);
	t += TD_HASH_LEN;
	memcpy(t, dialer_id, TD_PUBKEY_LEN);
	memcpy(t + TD_PUBKEY_LEN, dialer_eph, EPH_LEN);
	t += TD_PUBKEY_LEN + EPH_LEN;
	memcpy(t, listener_id, TD_PUBKEY_LEN);
	memcpy(t + TD_PUBKEY_LEN, listener_eph, EPH_LEN);
}

/* Index of the key among the peers allowed in, or -1. */
static int lookup_key(const struct p2p *p, const uint8_t pk[static TD_PUBKEY_LEN])
{
	int v = p->key_lookup ? p->key_lookup(p->key_lookup_ctx, pk) : td_genesis_find_party(p->g, pk);
	if (v >= TD_PARTIES_MAX) {
		log_error("p2p: internal error: key lookup answered %d, over %d parties", v, TD_PARTIES_MAX);
		abort();
	}
	return v < 0 ? -1 : v;
}

/* Checks the magic and version of a hello or reply; drops c (and returns false) if they are not ours. */
static bool check_magic(struct p2p_peer *c, const uint8_t m[static MAGIC_LEN])
{
	if (memcmp(m, MAGIC_PREFIX, MAGIC_LEN - 1) != 0) {
		conn_drop(c, LOG_WARN, "not a tenderd peer (bad hello magic)");
		return false;
	}
	if (m[MAGIC_LEN - 1] != PROTO_VERSION) {
		if (m[MAGIC_LEN - 1] >= '0' && m[MAGIC_LEN - 1] <= '9')
			conn_drop(c, LOG_WARN,
				  "peer speaks p2p protocol version %c, this node version %c: refused (run one "
				  "tenderd version on every node)",
				  m[MAGIC_LEN - 1], PROTO_VERSION);
		else
			conn_drop(c, LOG_WARN, "unknown p2p protocol version byte 0x%02x (this node speaks version %c)",
				  (unsigned)m[MAGIC_LEN - 1], PROTO_VERSION);
		return false;
	}
	return true;
}

/* Looks the peer's identity up; drops c (and returns -1) if it may not connect. Not for this node's key. */
static int check_identity(struct p2p_peer *c, const uint8_t id[static TD_PUBKEY_LEN])
{
	int v = lookup_key(c->p, id);
	if (v < 0) {
		char hex[2 * TD_PUBKEY_LEN + 1];
		td_hex(hex, id, TD_PUBKEY_LEN);
		conn_drop(c, LOG_WARN, "unknown identity %s", hex);
	}
	return v;
}

static bool replay_seen(const struct p2p *p, const uint8_t eph[static EPH_LEN])
{
	size_t n = p->replay_next < REPLAY_CACHE && !p->replay_full ? p->replay_next : REPLAY_CACHE;
	for (size_t i = 0; i < n; i++)
		if (memcmp(p->replay[i], eph, EPH_LEN) == 0)
			return true;
	return false;
}

static void replay_add(struct p2p *p, const uint8_t eph[static EPH_LEN])
{
	memcpy(p->replay[p->replay_next], eph, EPH_LEN);
	if (++p->replay_next == REPLAY_CACHE) {
		p->replay_next = 0;
		p->replay_full = true;
	}
}

/*
 * The TCP connection is up. A dialer sends its hello (step 1) and reads the
 * reply; a listener only starts reading the dialer's hello.
 */
static void conn_begin(struct p2p_peer *c)
{
	struct p2p *p = c->p;

	uv_tcp_nodelay(&c->tcp, 1);
	c->hs_start = uv_now(p->loop);
	c->have = 0;
	if (c->outbound) {
		uint8_t hello[HELLO_LEN], m[LABEL_MAX + TRANSCRIPT_LEN];
		uint8_t *q = hello;
		crypto_kx_keypair(c->eph_pk, c->eph_sk);
		memcpy(q, MAGIC_PREFIX, MAGIC_LEN - 1);
		q[MAGIC_LEN - 1] = PROTO_VERSION;
		q += MAGIC_LEN;
		memcpy(q, p->chain_hash, TD_HASH_LEN);
		memcpy(q + TD_HASH_LEN, self_pk(p), TD_PUBKEY_LEN);
		memcpy(q + TD_HASH_LEN + TD_PUBKEY_LEN, c->eph_pk, EPH_LEN);
		size_t mlen = signed_bytes(m, LABEL_HELLO, q, TD_HASH_LEN + TD_PUBKEY_LEN + EPH_LEN);
		crypto_sign_detached(hello + HELLO_LEN - TD_SIG_LEN, NULL, m, mlen, p->sk);
		c->state = CS_REPLY;
		c->need = REPLY_LEN;
		conn_write_raw(c, hello, sizeof(hello));
		if (c->closing)
			return;
	} else {
		c->state = CS_HELLO;
		c->need = HELLO_LEN;
	}
	int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	if (rc < 0)
		conn_drop(c, LOG_INFO, "cannot read: %s", uv_strerror(rc));
}

/*
 * The listener got a hello claiming this node's own identity. If it is the
 * hello of one of our own dials (same ephemeral key), that dialer's address
 * is this node: it is not dialed again.
 */
static void conn_hello_self(struct p2p_peer *c, const uint8_t eph[static EPH_LEN])
{
	struct p2p *p = c->p;

	for (struct p2p_peer *o = p->conns; o; o = o->next) {
		if (!o->outbound || o->closing || o->state != CS_REPLY || !o->d ||
		    sodium_memcmp(o->eph_pk, eph, EPH_LEN) != 0)
			continue;
		o->d->state = DS_SELF;
		log_info("p2p: %s is this node; not dialing it", o->d->addr);
		conn_drop(o, -1, "connection to itself");
		conn_drop(c, -1, "connection to itself");
		return;
	}
	conn_drop(c, LOG_WARN, "hello with this node's own identity from another process");
}

/* Listener: checks the dialer's hello (step 1) in c->buf, then sends the reply (step 2). */
static void conn_hello(struct p2p_peer *c)
{
	struct p2p *p = c->p;
	const uint8_t *body = c->buf + MAGIC_LEN;
	const uint8_t *chain = body;
	const uint8_t *id = chain + TD_HASH_LEN;
	const uint8_t *eph = id + TD_PUBKEY_LEN;
	const uint8_t *sig = eph + EPH_LEN;
	uint8_t m[LABEL_MAX + TRANSCRIPT_LEN], t[TRANSCRIPT_LEN], reply[REPLY_LEN];
	uint8_t tx[crypto_kx_SESSIONKEYBYTES];
	size_t mlen;

	if (!check_magic(c, c->buf))
		return;
	if (memcmp(chain, p->chain_hash, TD_HASH_LEN) != 0) {
		conn_drop(c, LOG_WARN,
			  "another genesis (a node of another chain, or of another genesis of this chain id)");
		return;
	}
	bool self = sodium_memcmp(id, self_pk(p), TD_PUBKEY_LEN) == 0;
	int v = self ? p->self : check_identity(c, id);
	if (v < 0)
		return;
	if (replay_seen(p, eph)) {
		conn_drop(c, LOG_WARN, "replayed hello of %s (ephemeral key seen before)", pname(p, v));
		return;
	}
	mlen = signed_bytes(m, LABEL_HELLO, chain, TD_HASH_LEN + TD_PUBKEY_LEN + EPH_LEN);
	if (crypto_sign_verify_detached(sig, m, mlen, id) != 0) {
		conn_drop(c, LOG_WARN, "bad hello signature from %s", pname(p, v));
		return;
	}
	replay_add(p, eph);
	if (self) {
		conn_hello_self(c, eph);
		return;
	}
	/* The dialer paid: our ephemeral key, the session keys, our signature over T. */
	c->validator = v;
	memcpy(c->peer_id, id, TD_PUBKEY_LEN);
	memcpy(c->peer_eph, eph, EPH_LEN);
	memcpy(c->dialer_eph, eph, EPH_LEN);
	crypto_kx_keypair(c->eph_pk, c->eph_sk);
	int rc = crypto_kx_server_session_keys(c->rx_key, tx, c->eph_pk, c->eph_sk, eph);
	sodium_memzero(c->eph_sk, sizeof(c->eph_sk));
	if (rc != 0) {
		conn_drop(c, LOG_WARN, "unusable ephemeral key from %s", pname(p, v));
		goto out;
	}
	transcript(t, p, id, eph, self_pk(p), c->eph_pk);
	mlen = signed_bytes(m, LABEL_LISTENER, t, sizeof(t));
	uint8_t *q = reply;
	memcpy(q, MAGIC_PREFIX, MAGIC_LEN - 1);
	q[MAGIC_LEN - 1] = PROTO_VERSION;
	q += MAGIC_LEN;
	memcpy(q, self_pk(p), TD_PUBKEY_LEN);
	q += TD_PUBKEY_LEN;
	memcpy(q, c->eph_pk, EPH_LEN);
	q += EPH_LEN;
	crypto_sign_detached(q, NULL, m, mlen, p->sk);
	q += TD_SIG_LEN;
	crypto_secretstream_xchacha20poly1305_init_push(&c->tx, q, tx);
	c->state = CS_FINISH;
	c->need = FINISH_LEN;
	c->have = 0;
	conn_write_raw(c, reply, sizeof(reply));
out:
	sodium_memzero(tx, sizeof(tx));
}

/* Dialer: checks the listener's reply (step 2) in c->buf, sends the finish (step 3); c is then a peer. */
static void conn_reply(struct p2p_peer *c)
{
	struct p2p *p = c->p;
	const uint8_t *id = c->buf + MAGIC_LEN;
	const uint8_t *eph = id + TD_PUBKEY_LEN;
	const uint8_t *sig = eph + EPH_LEN;
	const uint8_t *header = sig + TD_SIG_LEN;
	uint8_t m[LABEL_MAX + TRANSCRIPT_LEN], t[TRANSCRIPT_LEN], finish[FINISH_LEN];
	uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
	size_t mlen;

	if (!check_magic(c, c->buf))
		return;
	if (sodium_memcmp(id, self_pk(p), TD_PUBKEY_LEN) == 0) {
		conn_drop(c, LOG_WARN, "the listener at %s answers with this node's own identity", c->addr);
		return;
	}
	if (c->d && c->d->keyed && sodium_memcmp(id, c->d->expect_pk, TD_PUBKEY_LEN) != 0) {
		char want[2 * TD_PUBKEY_LEN + 1], got[2 * TD_PUBKEY_LEN + 1];
		int other = lookup_key(p, id);
		td_hex(want, c->d->expect_pk, TD_PUBKEY_LEN);
		td_hex(got, id, TD_PUBKEY_LEN);
		conn_drop(c, LOG_WARN,
			  "wrong key: the peer entry names %s (%s) but the node there answered as %s (%s); dropped",
			  want, pname(p, c->d->validator), got,
			  other >= 0 ? pname(p, other) : "no party of this chain");
		return;
	}
	int v = check_identity(c, id);
	if (v < 0)
		return;
	transcript(t, p, self_pk(p), c->eph_pk, id, eph);
	mlen = signed_bytes(m, LABEL_LISTENER, t, sizeof(t));
	if (crypto_sign_verify_detached(sig, m, mlen, id) != 0) {
		conn_drop(c, LOG_WARN, "bad reply signature from %s", pname(p, v));
		return;
	}
	int rc = crypto_kx_client_session_keys(rx, tx, c->eph_pk, c->eph_sk, eph);
	sodium_memzero(c->eph_sk, sizeof(c->eph_sk));
	if (rc != 0) {
		conn_drop(c, LOG_WARN, "unusable ephemeral key from %s", pname(p, v));
		goto out;
	}
	if (crypto_secretstream_xchacha20poly1305_init_pull(&c->rx, header, rx) != 0) {
		conn_drop(c, LOG_WARN, "bad stream header from %s", pname(p, v));
		goto out;
	}
	mlen = signed_bytes(m, LABEL_DIALER, t, sizeof(t));
	crypto_sign_detached(finish, NULL, m, mlen, p->sk);
	crypto_secretstream_xchacha20poly1305_init_push(&c->tx, finish + TD_SIG_LEN, tx);
	c->validator = v;
	memcpy(c->peer_id, id, TD_PUBKEY_LEN);
	memcpy(c->peer_eph, eph, EPH_LEN);
	memcpy(c->dialer_eph, c->eph_pk, EPH_LEN);
	if (c->d)
		c->d->validator = v;
	conn_write_raw(c, finish, sizeof(finish));
	if (!c->closing)
		conn_ready(c);
out:
	sodium_memzero(rx, sizeof(rx));
	sodium_memzero(tx, sizeof(tx));
}

/* Listener: checks the dialer's finish (step 3) in c->buf; c is then a peer. */
static void conn_finish(struct p2p_peer *c)
{
	struct p2p *p = c->p;
	uint8_t m[LABEL_MAX + TRANSCRIPT_LEN], t[TRANSCRIPT_LEN];

	transcript(t, p, c->peer_id, c->peer_eph, self_pk(p), c->eph_pk);
	size_t mlen = signed_bytes(m, LABEL_DIALER, t, sizeof(t));
	if (crypto_sign_verify_detached(c->buf, m, mlen, c->peer_id) != 0) {
		conn_drop(c, LOG_WARN, "bad finish signature (a replayed hello?) claiming to be %s",
			  pname(p, c->validator));
		return;
	}
	int rc = crypto_secretstream_xchacha20poly1305_init_pull(&c->rx, c->buf + TD_SIG_LEN, c->rx_key);
	sodium_memzero(c->rx_key, sizeof(c->rx_key));
	if (rc != 0) {
		conn_drop(c, LOG_WARN, "bad stream header from %s", pname(p, c->validator));
		return;
	}
	conn_ready(c);
}

/*
 * The duplicate rule (file comment, point 6): true if the new connection nw
 * wins over old, both to the same validator.
 */
static bool keep_new(const struct p2p *p, const struct p2p_peer *old, const struct p2p_peer *nw)
{
	if (old->outbound == nw->outbound)
		return memcmp(nw->dialer_eph, old->dialer_eph, EPH_LEN) < 0;
	bool self_smaller = memcmp(self_pk(p), party(p, (uint32_t)nw->validator)->pk, TD_PUBKEY_LEN) < 0;
	return nw->outbound == self_smaller;
}

/* The handshake is done: apply the duplicate rule, then announce c. */
static void conn_ready(struct p2p_peer *c)
{
	struct p2p *p = c->p;
	int v = c->validator;
	struct p2p_peer *old = p->by_validator[v];
	uint64_t now = uv_now(p->loop);

	if (c->counted) {
		c->counted = false;
		if (--p->nhandshaking < P2P_HANDSHAKING_MAX)
			p->hs_full_logged = false;
	}
	if (old) {
		if (!keep_new(p, old, c)) {
			c->dup = true;
			conn_drop(c, LOG_DEBUG, "duplicate connection; keeping the other one");
			return;
		}
		old->dup = true;
		conn_drop(old, LOG_DEBUG, "duplicate connection; keeping the newer one");
	}
	/* Connects and disconnects of one validator alternate: report the closing ones first. */
	for (struct p2p_peer *q = p->conns; q; q = q->next) {
		if (q == c || !q->announced || q->validator != v)
			continue;
		q->announced = false;
		if (p->cb.on_disconnect)
			p->cb.on_disconnect(p->ctx, q);
		if (c->closing)
			return;
	}
	c->state = CS_READY;
	c->was_ready = true;
	c->need = 4;
	c->have = 0;
	c->connected_at = c->last_ping = c->last_rx = now;
	p->by_validator[v] = c;
	p->npeers++;
	if (c->d) {
		struct dialer *d = c->d;
		d->state = DS_CONNECTED;
		d->backoff_ms = BACKOFF_MIN_MS;
		d->fails = 0;
		d->last_error[0] = '\0';
	}
	log_info("p2p: connected to %s (%s, %s)", pname(p, v), c->addr, c->outbound ? "out" : "in");
	c->announced = true;
	if (p->cb.on_connect)
		p->cb.on_connect(p->ctx, c);
}

/* ---- connections: reading --------------------------------------------- */

/* One whole frame of ctlen bytes (length already checked). */
static void conn_frame(struct p2p_peer *c, const uint8_t *ct, size_t ctlen)
{
	struct p2p *p = c->p;
	size_t ptlen = ctlen - ABYTES;
	unsigned long long outlen = 0;
	unsigned char tag = 0;
	uint8_t *pt = td_xmalloc(ptlen);

	if (crypto_secretstream_xchacha20poly1305_pull(&c->rx, pt, &outlen, &tag, ct, ctlen, NULL, 0) != 0) {
		conn_drop(c, LOG_WARN, "frame fails to decrypt (tampered, replayed, reordered or truncated)");
		goto out;
	}
	if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE || outlen != ptlen || ptlen < 1) {
		conn_drop(c, LOG_WARN, "unexpected frame (stream tag %u)", (unsigned)tag);
		goto out;
	}
	c->last_rx = uv_now(p->loop); /* only a frame that decrypted counts as liveness */
	switch (pt[0]) {
	case FRAME_APP:
		if (p->cb.on_message)
			p->cb.on_message(p->ctx, c, pt + 1, ptlen - 1);
		break;
	case FRAME_PING: conn_push_control(c, FRAME_PONG); break;
	case FRAME_PONG: break;
	default: /* a byte from the peer, not an enum */
		conn_drop(c, LOG_WARN, "unknown frame type %u", (unsigned)pt[0]);
		break;
	}
out:
	free(pt);
}

/* c->buf holds c->need bytes: act on them according to the state. */
static void conn_unit(struct p2p_peer *c)
{
	struct p2p *p = c->p;

	switch (c->state) {
	case CS_CONNECTING: log_error("p2p: internal error: bytes before connect"); abort();
	case CS_HELLO: conn_hello(c); return;
	case CS_REPLY: conn_reply(c); return;
	case CS_FINISH: conn_finish(c); return;
	case CS_READY: break;
	}
	if (c->need == 4) {
		uint32_t len = get_be32(c->buf);
		if (len < 1 + ABYTES || len > (uint64_t)p->frame_max + 1 + ABYTES) {
			conn_drop(c, LOG_WARN, "frame length %" PRIu32 " out of range (at most %" PRIu32 " + %u)", len,
				  p->frame_max, 1 + (unsigned)ABYTES);
			return;
		}
		c->need = 4 + (size_t)len;
		return;
	}
	conn_frame(c, c->buf + 4, c->need - 4);
	c->need = 4;
	c->have = 0;
	if (c->cap > BUF_KEEP) {
		free(c->buf);
		c->buf = NULL;
		c->cap = 0;
	}
}

/* Splits n bytes read from c into units; stops when c starts closing. */
static void conn_feed(struct p2p_peer *c, const uint8_t *in, size_t n)
{
	while (n > 0 && !c->closing) {
		size_t take = c->need - c->have;
		if (take > n)
			take = n;
		if (c->cap < c->have + take) {
			/* Grow with the bytes that arrived (doubling), never past the unit being read. */
			size_t cap = c->cap < BUF_MIN ? BUF_MIN : c->cap * 2;
			if (cap < c->have + take)
				cap = c->have + take;
			if (cap > c->need && c->need > BUF_MIN)
				cap = c->need;
			c->buf = td_xrealloc(c->buf, cap);
			c->cap = cap;
		}
		memcpy(c->buf + c->have, in, take);
		c->have += take;
		in += take;
		n -= take;
		if (c->have == c->need)
			conn_unit(c);
	}
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct p2p_peer *c = s->data;
	struct p2p *p = c->p;

	if (c->closing)
		return;
	if (n < 0) {
		conn_drop(c, c->was_ready ? LOG_INFO : LOG_DEBUG, "%s",
			  n == UV_EOF ? "connection closed by the peer" : uv_strerror((int)n));
		return;
	}
	p->bytes_received += (uint64_t)n;
	c->received += (uint64_t)n;
	conn_feed(c, (const uint8_t *)buf->base, (size_t)n);
}

/* ---- dialing ---------------------------------------------------------- */

static void on_connected(uv_connect_t *req, int status)
{
	struct p2p_peer *c = req->data;

	if (c->closing)
		return;
	if (status < 0) {
		conn_drop(c, LOG_INFO, "%s", uv_strerror(status));
		return;
	}
	conn_begin(c);
}

static void dial_connect(struct dialer *d, const struct sockaddr *sa)
{
	struct p2p_peer *c = conn_new(d->p, true);
	c->d = d;
	d->conn = c;
	d->state = DS_CONNECTING;
	snprintf(c->addr, sizeof(c->addr), "%s", d->addr);
	int rc = uv_tcp_connect(&c->connect, &c->tcp, sa, on_connected);
	if (rc < 0)
		conn_drop(c, LOG_INFO, "%s", uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct dialer *d = req->data;
	struct p2p *p = d->p;

	if (!p->stopping) {
		if (status < 0 || !res) {
			char reason[REASON_MAX];
			snprintf(reason, sizeof(reason), "cannot resolve %s: %s", d->host,
				 status < 0 ? uv_strerror(status) : "no address");
			dial_failed(d, LOG_INFO, reason);
		} else {
			dial_connect(d, res->ai_addr);
		}
	}
	uv_freeaddrinfo(res);
	p2p_unref(p);
}

static void on_dial_timer(uv_timer_t *t)
{
	struct dialer *d = t->data;
	struct p2p *p = d->p;

	if (p->stopping || d->state != DS_WAIT)
		return;
	if (d->validator >= 0 && p->by_validator[d->validator]) {
		d->state = DS_PAUSED;
		return;
	}
	d->attempts++;
	if (d->numeric) {
		dial_connect(d, (const struct sockaddr *)&d->sa);
		return;
	}
	struct addrinfo hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	d->state = DS_RESOLVING;
	int rc = uv_getaddrinfo(p->loop, &d->gai, on_resolved, d->host, d->port, &hints);
	if (rc < 0) {
		d->state = DS_WAIT;
		dial_failed(d, LOG_INFO, uv_strerror(rc));
		return;
	}
	p->refs++;
}

static void dial_schedule(struct dialer *d, uint32_t delay_ms)
{
	d->state = DS_WAIT;
	d->next_at = uv_now(d->p->loop) + delay_ms;
	uv_timer_start(&d->timer, on_dial_timer, delay_ms, 0);
}

/* ---- listening and the tick ------------------------------------------- */

static void on_connection(uv_stream_t *server, int status)
{
	struct p2p *p = server->data;

	if (status < 0) {
		log_warn("p2p: accept failed: %s", uv_strerror(status));
		return;
	}
	if (p->stopping)
		return;
	struct p2p_peer *c = conn_new(p, false);
	int rc = uv_accept(server, (uv_stream_t *)&c->tcp);
	if (rc < 0) {
		conn_drop(c, LOG_DEBUG, "accept failed: %s", uv_strerror(rc));
		return;
	}
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
		format_sockaddr(c->addr, sizeof(c->addr), (struct sockaddr *)&ss);
		source_key(c->src, (const struct sockaddr *)&ss);
	} else {
		snprintf(c->addr, sizeof(c->addr), "?");
	}
	if (p->nhandshaking >= P2P_HANDSHAKING_MAX) {
		if (!p->hs_full_logged)
			log_warn("p2p: %d connections already in their handshake; refusing more", P2P_HANDSHAKING_MAX);
		p->hs_full_logged = true;
		conn_drop(c, LOG_DEBUG, "too many connections in their handshake");
		return;
	}
	uint32_t same = 0;
	for (const struct p2p_peer *o = p->conns; o; o = o->next)
		if (o->counted && memcmp(o->src, c->src, SRC_LEN) == 0)
			same++;
	if (same >= p->per_addr) {
		uint64_t now = uv_now(p->loop);
		if (p->addr_full_logged == 0 || now - p->addr_full_logged >= FAIL_LOG_EVERY_MS) {
			log_warn("p2p: %" PRIu32 " connections from the address of %s already in their handshake; "
				 "refusing more from it (logged once a minute)",
				 same, c->addr);
			p->addr_full_logged = now ? now : 1;
		}
		conn_drop(c, LOG_DEBUG, "too many connections from one address in their handshake");
		return;
	}
	c->counted = true;
	p->nhandshaking++;
	conn_begin(c);
}

#ifdef TENDER_FUZZ
/* Fuzzing only (p2p.h): fd becomes a connection as on_connection or on_connected would make it. */
int p2p_fuzz_adopt(struct p2p *p, int fd, int outbound)
{
	struct p2p_peer *c = conn_new(p, outbound != 0);
	int rc = uv_tcp_open(&c->tcp, fd);
	if (rc < 0) {
		close(fd);
		conn_drop(c, -1, "fuzz: cannot adopt the socket: %s", uv_strerror(rc));
		return TD_EIO;
	}
	snprintf(c->addr, sizeof(c->addr), "fuzz:%d", fd);
	if (!c->outbound) {
		c->counted = true;
		p->nhandshaking++;
	}
	conn_begin(c);
	return 0;
}
#endif

static void on_tick(uv_timer_t *t)
{
	struct p2p *p = t->data;
	uint64_t now = uv_now(p->loop);
	struct p2p_peer *c, *next;

	for (c = p->conns; c; c = next) {
		next = c->next;
		if (c->closing)
			continue;
		if (c->state == CS_CONNECTING) {
			if (now - c->created >= p->timeout_ms)
				conn_drop(c, LOG_INFO, "connect not done within %" PRIu32 " ms", p->timeout_ms);
			continue;
		}
		if (c->state != CS_READY) {
			if (now - c->hs_start >= p->handshake_ms)
				conn_drop(c, c->outbound ? LOG_INFO : LOG_DEBUG,
					  "handshake not done within %" PRIu32 " ms", p->handshake_ms);
			continue;
		}
		if (now - c->last_rx >= p->timeout_ms) {
			conn_drop(c, LOG_WARN, "no frame that decrypts for %" PRIu64 " ms; dropping the peer",
				  now - c->last_rx);
			continue;
		}
		if (now - c->last_ping >= p->ping_ms) {
			c->last_ping = now;
			conn_push_control(c, FRAME_PING);
		}
	}
}

static void on_handle_closed(uv_handle_t *h)
{
	p2p_unref(h->data);
}

static void on_dial_timer_closed(uv_handle_t *h)
{
	struct dialer *d = h->data;
	p2p_unref(d->p);
}

/* ---- start and stop --------------------------------------------------- */

/* Parses cfg->peers into dialers (not yet started). Returns 0 or TD_EINVAL with a message. */
static int parse_peers(struct p2p *p, const char *peers, char *err, size_t errlen)
{
	size_t n = 0;
	const char *s = peers ? peers : "";

	for (const char *q = s; *q; q++)
		if (*q == ',')
			n++;
	p->dialers = td_xcalloc(n + 1, sizeof(*p->dialers));
	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		const char *a = s;
		s += len + (end ? 1 : 0);
		while (len > 0 && (*a == ' ' || *a == '\t')) {
			a++;
			len--;
		}
		while (len > 0 && (a[len - 1] == ' ' || a[len - 1] == '\t'))
			len--;
		if (len == 0)
			continue;
		if (p->ndialers >= P2P_DIALERS_MAX) {
			snprintf(err, errlen, "too many peer addresses (at most %d)", P2P_DIALERS_MAX);
			return TD_EINVAL;
		}
		struct dialer *d = &p->dialers[p->ndialers];
		const char *at = memchr(a, '@', len);
		char host[256];
		d->validator = -1;
		if (at) {
			int v;
			if (!td_unhex(d->expect_pk, TD_PUBKEY_LEN, a, (size_t)(at - a))) {
				snprintf(
					err, errlen,
					"peer \"%.*s\": the part before '@' must be the peer's pub_key (%d hex digits)",
					(int)(len > 160 ? 160 : len), a, 2 * TD_PUBKEY_LEN);
				return TD_EINVAL;
			}
			if (sodium_memcmp(d->expect_pk, self_pk(p), TD_PUBKEY_LEN) == 0) {
				d->state = DS_SELF;
			} else if ((v = lookup_key(p, d->expect_pk)) < 0 && !p->party_fn) {
				snprintf(err, errlen,
					 "peer \"%.*s\": that key is not a validator, member or observer of chain %s",
					 (int)(len > 160 ? 160 : len), a, p->g->chain_id);
				return TD_EINVAL;
			} else if (v < 0) {
				/* The chain may name it later (a party voted in): dialed, and let in once it does. */
				log_warn("p2p: peer \"%.*s\": that key is no party of chain %s (yet); it is refused "
					 "until the chain names it",
					 (int)(len > 160 ? 160 : len), a, p->g->chain_id);
			} else {
				d->validator = v;
			}
			d->keyed = true;
			len -= (size_t)(at + 1 - a);
			a = at + 1;
		}
		if (!split_hostport(a, len, host, sizeof(host), d->port)) {
			snprintf(err, errlen, "peer address \"%.*s\" is not host:port or PUBKEY@HOST:PORT",
				 (int)(len > 100 ? 100 : len), a);
			return TD_EINVAL;
		}
		d->p = p;
		d->addr = td_xstrndup(a, len);
		d->host = td_xstrndup(host, strlen(host));
		d->numeric = numeric_addr(host, d->port, &d->sa);
		d->backoff_ms = BACKOFF_MIN_MS;
		if (d->state == DS_SELF)
			log_info("p2p: peer %s names this node's own key; not dialing it", d->addr);
		p->ndialers++;
	}
	return 0;
}

/* Opens a listening socket for cfg->listen with plain syscalls. Returns the fd or -1 with a message. */
static int open_listener(const char *listen_addr, char *err, size_t errlen)
{
	char host[256], port[8];
	struct addrinfo hints, *res = NULL;
	int fd, one = 1;

	if (!split_hostport(listen_addr, strlen(listen_addr), host, sizeof(host), port)) {
		snprintf(err, errlen, "listen address \"%s\" is not host:port", listen_addr);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "cannot resolve listen address %s: %s", listen_addr, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail_res;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", listen_addr, strerror(errno));
		goto fail_fd;
	}
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", listen_addr, strerror(errno));
		goto fail_fd;
	}
	freeaddrinfo(res);
	return fd;

fail_fd:
	close(fd);
fail_res:
	freeaddrinfo(res);
	return -1;
}

static void free_unstarted(struct p2p *p)
{
	p->stopping = true;
	p->refs = 1;
	p2p_unref(p);
}

int p2p_start(struct p2p **out, uv_loop_t *loop, const struct p2p_config *cfg, const struct p2p_callbacks *cb,
	      void *ctx, char *err, size_t errlen)
{
	struct p2p *p;
	int fd, rc;

	*out = NULL;
	if (!cfg || !cfg->genesis || !cfg->sk || !cfg->listen || cfg->genesis->n == 0) {
		snprintf(err, errlen, "p2p: listen address, genesis and key are required");
		return TD_EINVAL;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "p2p: libsodium cannot start");
		return TD_EIO;
	}
	const uint8_t *own = cfg->sk + TD_SECKEY_LEN - TD_PUBKEY_LEN;
	int self =
		cfg->key_lookup ? cfg->key_lookup(cfg->key_lookup_ctx, own) : td_genesis_find_party(cfg->genesis, own);
	if (self < 0 && !cfg->key_lookup) {
		snprintf(err, errlen, "p2p: this node's key is not a validator, member or observer in genesis");
		return TD_EINVAL;
	}

	p = td_xcalloc(1, sizeof(*p));
	p->loop = loop;
	p->g = cfg->genesis;
	memcpy(p->sk, cfg->sk, TD_SECKEY_LEN);
	p->self = self;
	memcpy(p->chain_hash, cfg->genesis->hash, TD_HASH_LEN);
	p->send_queue_max = cfg->send_queue_max ? cfg->send_queue_max : P2P_SEND_QUEUE_DEFAULT;
	p->ping_ms = cfg->ping_ms ? cfg->ping_ms : P2P_PING_MS_DEFAULT;
	p->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : P2P_TIMEOUT_MS_DEFAULT;
	p->frame_max = cfg->frame_max ? cfg->frame_max : P2P_FRAME_MAX_DEFAULT;
	p->handshake_ms = cfg->handshake_ms ? cfg->handshake_ms : P2P_HANDSHAKE_MS_DEFAULT;
	p->per_addr = cfg->handshake_per_addr ? cfg->handshake_per_addr : P2P_HANDSHAKING_PER_ADDR_DEFAULT;
	p->key_lookup = cfg->key_lookup;
	p->key_lookup_ctx = cfg->key_lookup_ctx;
	p->party_fn = cfg->party;
	p->replay = td_xcalloc(REPLAY_CACHE, EPH_LEN);
	if (p->frame_max > UINT32_MAX - 1 - ABYTES) {
		snprintf(err, errlen, "p2p: frame_max too large");
		free_unstarted(p);
		return TD_EINVAL;
	}
	if (cb)
		p->cb = *cb;
	p->ctx = ctx;
	p->by_validator = td_xcalloc(TD_PARTIES_MAX, sizeof(*p->by_validator));
	rc = parse_peers(p, cfg->peers, err, errlen);
	if (rc < 0) {
		free_unstarted(p);
		return rc;
	}
	fd = open_listener(cfg->listen, err, errlen);
	if (fd < 0) {
		free_unstarted(p);
		return TD_EIO;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		p->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
							   ((struct sockaddr_in *)&ss)->sin_port);

	/* From here on the handles own p: failures go through p2p_stop. */
	uv_tcp_init(loop, &p->listener);
	p->listener.data = p;
	p->refs++;
	rc = uv_tcp_open(&p->listener, fd);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&p->listener, LISTEN_BACKLOG, on_connection);
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, uv_strerror(rc));
		if (uv_fileno((uv_handle_t *)&p->listener, &(uv_os_fd_t){ 0 }) != 0)
			close(fd); /* uv_tcp_open failed: the handle does not own fd */
		p->stopping = true;
		uv_close((uv_handle_t *)&p->listener, on_handle_closed);
		return TD_EIO;
	}
	uv_timer_init(loop, &p->tick);
	p->tick.data = p;
	p->refs++;
	uint32_t tick = p->ping_ms < p->timeout_ms ? p->ping_ms : p->timeout_ms;
	tick = (tick < p->handshake_ms ? tick : p->handshake_ms) / 4;
	tick = tick < 10 ? 10 : tick > 1000 ? 1000 : tick;
	uv_timer_start(&p->tick, on_tick, tick, tick);
	for (size_t i = 0; i < p->ndialers; i++) {
		struct dialer *d = &p->dialers[i];
		uv_timer_init(loop, &d->timer);
		d->timer.data = d;
		d->gai.data = d;
		p->refs++;
		if (d->state != DS_SELF)
			dial_schedule(d, 0);
	}
	log_info("p2p: listening on %s (port %u), %zu peer address(es) to dial", cfg->listen, (unsigned)p->port,
		 p->ndialers);
	*out = p;
	return 0;
}

void p2p_stop(struct p2p *p)
{
	struct p2p_peer *c;

	if (!p || p->stopping)
		return;
	p->stopping = true;
	for (c = p->conns; c; c = c->next) {
		if (!c->announced)
			continue;
		c->announced = false;
		if (p->cb.on_disconnect)
			p->cb.on_disconnect(p->ctx, c);
	}
	uv_close((uv_handle_t *)&p->listener, on_handle_closed);
	uv_close((uv_handle_t *)&p->tick, on_handle_closed);
	for (size_t i = 0; i < p->ndialers; i++) {
		struct dialer *d = &p->dialers[i];
		if (d->state == DS_RESOLVING)
			uv_cancel((uv_req_t *)&d->gai); /* on_resolved still runs and drops its reference */
		uv_close((uv_handle_t *)&d->timer, on_dial_timer_closed);
	}
	for (c = p->conns; c; c = c->next)
		conn_drop(c, -1, "stopping");
	log_info("p2p: stopped");
}

/* ---- sending and queries ---------------------------------------------- */

int p2p_send(struct p2p_peer *peer, const uint8_t *msg, size_t len)
{
	struct p2p *p = peer->p;

	if (len > p->frame_max)
		return TD_EINVAL;
	if (peer->closing || peer->state != CS_READY)
		return TD_EFULL;
	uint8_t *pt = td_xmalloc(len + 1);
	pt[0] = FRAME_APP;
	if (len)
		memcpy(pt + 1, msg, len);
	int rc = conn_push(peer, pt, len + 1);
	free(pt);
	return rc;
}

void p2p_broadcast(struct p2p *p, const uint8_t *msg, size_t len, const struct p2p_peer *except)
{
	if (len > p->frame_max) {
		log_error("p2p: internal error: broadcast of %zu bytes is over frame_max (%" PRIu32 "); not sent", len,
			  p->frame_max);
		return;
	}
	if (p->stopping || p->npeers == 0)
		return;
	uint8_t *pt = td_xmalloc(len + 1);
	pt[0] = FRAME_APP;
	if (len)
		memcpy(pt + 1, msg, len);
	for (struct p2p_peer *c = p->conns; c; c = c->next)
		if (c != except && !c->closing && c->state == CS_READY && c->announced)
			(void)conn_push(c, pt, len + 1);
	free(pt);
}

void p2p_disconnect(struct p2p_peer *peer, const char *reason)
{
	conn_drop(peer, LOG_WARN, "disconnecting: %s", reason ? reason : "no reason given");
}

uint32_t p2p_peer_validator(const struct p2p_peer *peer)
{
	return (uint32_t)peer->validator;
}

struct p2p_peer *p2p_peer_find(struct p2p *p, uint32_t validator)
{
	if (p->stopping || validator >= TD_PARTIES_MAX)
		return NULL;
	return p->by_validator[validator];
}

size_t p2p_peer_count(const struct p2p *p)
{
	return p->stopping ? 0 : p->npeers;
}

uint16_t p2p_listen_port(const struct p2p *p)
{
	return p->port;
}

uint64_t p2p_bytes_sent(const struct p2p *p)
{
	return p->bytes_sent;
}

uint64_t p2p_bytes_received(const struct p2p *p)
{
	return p->bytes_received;
}

static void json_set_identity(json_t *o, const struct p2p *p, int v)
{
	char hex[2 * TD_PUBKEY_LEN + 1];
	td_hex(hex, party(p, (uint32_t)v)->pk, TD_PUBKEY_LEN);
	json_object_set_new(o, "name", json_string(pname(p, v)));
	json_object_set_new(o, "pub_key", json_string(hex));
	const char *role = NULL;
	if (p->party_fn)
		p->party_fn(p->key_lookup_ctx, (uint32_t)v, &role);
	else
		role = td_role_name(td_genesis_role(p->g, (uint32_t)v));
	json_object_set_new(o, "role", json_string(role ? role : "removed"));
}

json_t *p2p_peers_json(const struct p2p *p)
{
	json_t *arr = json_array();
	uint64_t now = uv_now(p->loop);

	if (p->stopping)
		return arr;
	for (uint32_t v = 0; v < TD_PARTIES_MAX; v++) {
		const struct p2p_peer *c = p->by_validator[v];
		if (!c)
			continue;
		json_t *o = json_object();
		json_set_identity(o, p, (int)v);
		json_object_set_new(o, "validator", td_json_uint(v));
		json_object_set_new(o, "address", json_string(c->addr));
		json_object_set_new(o, "direction", json_string(c->outbound ? "out" : "in"));
		json_object_set_new(o, "state", json_string("connected"));
		json_object_set_new(o, "connected_ms", td_json_uint(now - c->connected_at));
		json_object_set_new(o, "bytes_sent", td_json_uint(c->sent));
		json_object_set_new(o, "bytes_received", td_json_uint(c->received));
		json_array_append_new(arr, o);
	}
	for (size_t i = 0; i < p->ndialers; i++) {
		const struct dialer *d = &p->dialers[i];
		const char *state = NULL;
		switch (d->state) {
		case DS_WAIT: state = "backoff"; break;
		case DS_RESOLVING:
		case DS_CONNECTING: state = "connecting"; break;
		case DS_CONNECTED:
		case DS_PAUSED:
		case DS_SELF: break;
		}
		if (!state)
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "address", json_string(d->addr));
		json_object_set_new(o, "direction", json_string("out"));
		json_object_set_new(o, "state", json_string(state));
		json_object_set_new(o, "attempts", td_json_uint(d->attempts));
		json_object_set_new(o, "failures", td_json_uint(d->fails));
		json_object_set_new(o, "retry_in_ms",
				    td_json_uint(d->state == DS_WAIT && d->next_at > now ? d->next_at - now : 0));
		if (d->last_error[0])
			json_object_set_new(o, "last_error", json_string(d->last_error));
		if (d->validator >= 0)
			json_set_identity(o, p, d->validator);
		json_array_append_new(arr, o);
	}
	return arr;
}
