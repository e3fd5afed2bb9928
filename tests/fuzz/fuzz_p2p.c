/*
 * libFuzzer target for the p2p handshake and framing state machine (node/p2p.c, protocol
 * version 3) in both roles, fed as a byte stream through the real read path: each connection
 * is one end of a socketpair that p2p_fuzz_adopt (a hook compiled only with TENDER_FUZZ)
 * makes an accepted (the node listens) or a dialed (the node dials) connection; the harness
 * holds the other end, writes to it and runs the libuv loop until nothing moves. Every
 * timeout is an hour, so no timer acts, and libsodium's randomness is a generator reset for
 * each input: ephemeral keys and stream headers, hence every byte, replay exactly.
 *
 * The input is a small program (world.h, FZ_P2P_*): it opens connections (up to SLOTS at a
 * time) and, for each, how far the harness goes through a valid handshake, which it computes
 * itself, independently of p2p.c, with the keys of a fixed genesis of NV validators (the node
 * is validator 0; the harness speaks as 1 or 2, or, corrupting a step, as the node itself, a
 * stranger or with the other's key), real X25519 and secretstream state. Once a session
 * stands, frames are sealed with its stream, so fuzzed plaintexts reach the frame parser and
 * on_message; raw bytes can go anywhere.
 *
 * Invariants (fz_check), besides no crash, leak, hang or descriptor left open:
 * - the node's hello, reply and finish verify under its key over the right transcript; the
 *   listener answers only a valid hello, the dialer finishes only after a valid reply, and
 *   neither speaks out of turn;
 * - on_connect fires only on the connection being written, once the harness completed a
 *   valid handshake on it, as the validator it spoke as; at most one peer per validator,
 *   connects and disconnects of a validator alternate; a valid handshake does make a peer,
 *   and of two connections to one validator the rule of p2p.c (point 6) names the one kept;
 * - a valid frame is delivered once and exactly (a message to on_message, a ping answered by
 *   a pong) and the connection stays; a bad one (tampered, replayed, after a withheld one,
 *   another tag, an unknown type or none, a length out of range, a stream header the
 *   harness corrupted) closes the connection and reaches no callback;
 * - every frame the node sends decrypts, in order, to what it was asked to send;
 * - p2p_send answers TD_EFULL only when the send queue overflows, and that peer is dropped;
 * - p2p_peer_count and p2p_peer_find agree with the callbacks; on_disconnect never fires
 *   inside p2p_send, p2p_broadcast or p2p_disconnect; p2p_stop reports every peer before it
 *   returns (also when on_message calls it), no callback fires after it, and the loop ends
 *   with no handle left.
 * Bytes the node cannot parse as the harness meant (raw bytes, a short message, a lying
 * length) taint the connection: no expectation about its later bytes, only the first two
 * kinds of invariants (a tainted handshake is never valid).
 *
 * on_message decodes each message with td_msg_decode as a node does and, per the config byte,
 * drops a peer whose message does not decode (FZ_P2P_CFG_STRICT) or sends a message back
 * (FZ_P2P_CFG_ECHO); on_connect may greet with a STATUS (FZ_P2P_CFG_GREET); on_disconnect may
 * broadcast and on_message stop the node (FZ_P2P_CFG_REENTER); small socket buffers and send
 * queue make slow peers (FZ_P2P_CFG_SMALL).
 *
 * Speed: each input starts a fresh p2p (so the replay cache and peers start empty) and runs
 * real Ed25519 and X25519 on the node's side; the harness's own public-key results are kept
 * by their inputs (the same handshakes recur, since the generator restarts per input).
 *
 * Not covered: timers (handshake and dead-peer timeouts, pings the node starts), the
 * listener's accept-time caps, dialers and their backoff (test_p2p.c runs those over TCP).
 *
 * Seeds: tests/fuzz/corpus/fuzz_p2p (fuzz-corpus-gen: handshakes in both roles followed by
 * frames of real messages, every corruption of every handshake step, every frame flag).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "tenderd/codec.h"
#include "tenderd/msg.h"
#include "log.h"
#include "p2p.h"
#include "world.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NV 3        /* validators in the genesis: 0 is the node */
#define STRANGER NV /* keys[STRANGER]: an identity outside the genesis */
#define SLOTS 4     /* connections at a time */
#define OPS_MAX 64  /* operations run per input */
#define HOUR_MS 3600000u
#define MAGIC "TDP3"
#define MAGIC_LEN 4
#define EPH_LEN crypto_kx_PUBLICKEYBYTES
#define HDR_LEN crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define TAG_MESSAGE crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define HELLO_LEN (MAGIC_LEN + TD_HASH_LEN + TD_PUBKEY_LEN + EPH_LEN + TD_SIG_LEN)
#define REPLY_LEN (MAGIC_LEN + TD_PUBKEY_LEN + EPH_LEN + TD_SIG_LEN + HDR_LEN)
#define FINISH_LEN (TD_SIG_LEN + HDR_LEN)
#define T_LEN (TD_HASH_LEN + 2 * (TD_PUBKEY_LEN + EPH_LEN))
#define LABEL_HELLO "tenderd-p2p-v3 hello"
#define LABEL_LISTENER "tenderd-p2p-v3 listener"
#define LABEL_DIALER "tenderd-p2p-v3 dialer"
#define LABEL_MAX 32
#define CHUNKED_MAX 256      /* bytes of one write that go in pieces when chunking; the rest at once */
#define FILL_MAX (96 * 1024) /* a filled payload: past the 64 KiB read buffer p2p.c keeps */
#define EXPECT_MAX 64        /* messages from the node awaited per connection */
#define PUMP_ROUNDS 4096     /* loop runs without the node falling quiet before it counts as a hang */
#define SPIN_MAX 100000      /* writes refused in a row before the node counts as not reading */
#define SMALL_BUF 4096       /* FZ_P2P_CFG_SMALL: socket buffers */
#define SMALL_QUEUE 8192     /* FZ_P2P_CFG_SMALL: send_queue_max */
#define MSG_STOP 0xc1        /* FZ_P2P_CFG_REENTER: a message starting so makes on_message stop the node */
#define RNG_SEED 0x7464703370327032ull
#define MEMO_SLOTS 1024 /* results of the harness's public-key operations kept */
#define MEMO_KEY_LEN 32

/* Corruptions of the harness's hello (the node listens). */
enum hello_bad {
	HB_NONE,
	HB_MAGIC,        /* "XDP3" */
	HB_VERSION,      /* "TDP2" */
	HB_VERSION_BYTE, /* a version byte that is no digit */
	HB_GENESIS,      /* another genesis hash (signed) */
	HB_STRANGER,     /* an identity outside the genesis (signed by it) */
	HB_SELF,         /* the node's own identity (signed by it) */
	HB_SIG,          /* a signature bit flipped */
	HB_EPH_ZERO,     /* an all-zero ephemeral key (signed) */
	HB_OTHER_KEY,    /* signed by the other validator's key */
	HB_REPLAY,       /* the last hello sent again */
	HB_REFLECT,      /* the node's own hello of an outbound connection */
	HB_SHORT,        /* without its first byte */
	HB_COUNT
};

/* Corruptions of the harness's reply (the node dials). */
enum reply_bad {
	RB_NONE,
	RB_MAGIC,
	RB_VERSION,
	RB_VERSION_BYTE,
	RB_SELF,       /* the node's own identity (signed by it) */
	RB_STRANGER,   /* an identity outside the genesis (signed by it) */
	RB_SIG,        /* a signature bit flipped */
	RB_EPH_ZERO,   /* an all-zero ephemeral key (signed) */
	RB_HEADER,     /* a stream header bit flipped: the handshake completes, the frames fail */
	RB_TRANSCRIPT, /* signed over the transcript of another connection */
	RB_OTHER_KEY,  /* signed by the other validator's key */
	RB_SHORT,      /* without its first byte */
	RB_COUNT
};

/* Corruptions of the harness's finish (the node listens). */
enum finish_bad {
	FB_NONE,
	FB_SIG,       /* a signature bit flipped */
	FB_HEADER,    /* a stream header bit flipped: the handshake completes, the frames fail */
	FB_OTHER_KEY, /* signed by the other validator's key */
	FB_LABEL,     /* signed with the listener's label */
	FB_SHORT,     /* without its first byte */
	FB_COUNT
};

enum hs_state {
	HS_FREE,
	HS_IN_START,  /* the node listens; nothing sent */
	HS_IN_HELLO,  /* hello sent, the node's reply awaited */
	HS_IN_REPLY,  /* the node's reply checked, finish not sent */
	HS_OUT_START, /* the node dials; its hello awaited */
	HS_OUT_HELLO, /* its hello checked, reply not sent */
	HS_OUT_REPLY, /* reply sent, the node's finish awaited */
	HS_READY,     /* frames */
};

struct key {
	uint8_t pk[TD_PUBKEY_LEN];
	uint8_t sk[TD_SECKEY_LEN];
};

struct expect {
	uint8_t hash[crypto_generichash_BYTES];
	size_t len;
};

/* The harness's end of one connection. */
struct slot {
	enum hs_state st;
	int fd;                /* -1 once closed */
	bool outbound;         /* the node dialed */
	bool valid;            /* every handshake message sent was the real thing, at the offsets the node reads */
	bool tainted;          /* bytes the node cannot parse as meant went: no expectation about later ones */
	bool hs_done;          /* the harness sent its last handshake message */
	bool eof;              /* the node closed its end */
	bool tx_bad;           /* the node cannot decrypt our next frame (a header flipped, a frame withheld) */
	bool cb_dropped;       /* on_message disconnected the peer */
	int who;               /* the validator the harness speaks as */
	struct p2p_peer *peer; /* from on_connect to on_disconnect */
	uint8_t my_pk[EPH_LEN], my_sk[crypto_kx_SECRETKEYBYTES];
	uint8_t node_eph[EPH_LEN];
	uint8_t tx_key[crypto_kx_SESSIONKEYBYTES], rx_key[crypto_kx_SESSIONKEYBYTES];
	crypto_secretstream_xchacha20poly1305_state tx, rx;
	uint8_t *in; /* bytes from the node not parsed yet */
	size_t inlen, incap;
	uint8_t *last; /* the last frame sent */
	size_t lastlen;
	struct expect exp[EXPECT_MAX]; /* messages the node was asked to send here, in order */
	size_t nexp;
	bool exp_lost; /* more than EXPECT_MAX: no more checks */
	size_t pongs;
	const uint8_t *want; /* the message the frame being written must deliver, or NULL */
	size_t wantlen;
	int delivered;
};

struct harness {
	struct p2p *p;
	uint8_t cfg;
	uint32_t frame_max;
	struct slot s[SLOTS];
	struct slot *cur; /* the connection the harness writes to: the only one with bytes for the node */
	size_t chunk;
	bool in_call; /* inside p2p_send, p2p_broadcast or p2p_disconnect */
	bool stopped; /* p2p_stop returned */
	int connects[NV], disconnects[NV];
	uint8_t last_hello[HELLO_LEN];
	bool last_hello_set;
	uint8_t node_hello[HELLO_LEN];
	bool node_hello_set;
};

struct memo {
	uint8_t key[MEMO_KEY_LEN]; /* BLAKE2b of the operation and its inputs */
	uint8_t out[2 * crypto_kx_SESSIONKEYBYTES];
	bool set;
};

static struct key keys[NV + 1];
static struct memo memo[MEMO_SLOTS];
static struct td_validator vals[NV];
static struct td_genesis gen;
static uv_loop_t loop;
static uint64_t rng_state;

/* ---- libsodium's randomness: a seeded generator (splitmix64), reset per input ---- */

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const char *rng_name(void)
{
	return "fuzz-splitmix64";
}

static uint32_t rng_random(void)
{
	return (uint32_t)rng_next();
}

static void rng_stir(void)
{
}

static void rng_buf(void *const buf, const size_t size)
{
	uint8_t *b = buf;
	for (size_t i = 0; i < size; i += 8) {
		uint64_t v = rng_next();
		memcpy(b + i, &v, size - i < 8 ? size - i : 8);
	}
}

static int rng_close(void)
{
	return 0;
}

static randombytes_implementation rng = {
	.implementation_name = rng_name,
	.random = rng_random,
	.stir = rng_stir,
	.uniform = NULL,
	.buf = rng_buf,
	.close = rng_close,
};

/* ---- input cursor ---- */

struct cur {
	const uint8_t *p;
	size_t n;
};

static uint8_t next_u8(struct cur *c)
{
	if (c->n == 0)
		return 0;
	c->n--;
	return *c->p++;
}

/* Up to want bytes of the input; returns how many (*out points at them). */
static size_t next_bytes(struct cur *c, const uint8_t **out, size_t want)
{
	size_t k = want < c->n ? want : c->n;
	*out = c->p;
	c->p += k;
	c->n -= k;
	return k;
}

/* ---- helpers ---- */

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

static bool allowed(const struct harness *h, int v)
{
	return v >= 1 && v < NV && !(v == 2 && (h->cfg & FZ_P2P_CFG_REFUSE_2));
}

static int key_lookup(void *ctx, const uint8_t pk[static TD_PUBKEY_LEN])
{
	(void)ctx;
	int v = td_genesis_find(&gen, pk);
	return v == 2 ? -1 : v;
}

/*
 * The harness's own public-key operations are kept by their inputs (MEMO_SLOTS, direct-mapped):
 * the generator restarts with every input, so the same handshakes recur and their results are
 * reused. The node's operations are never cached.
 */
static void memo_key(uint8_t key[static MEMO_KEY_LEN], char op, const uint8_t *a, size_t alen, const uint8_t *b,
		     size_t blen)
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, MEMO_KEY_LEN);
	crypto_generichash_update(&st, (const uint8_t *)&op, 1);
	crypto_generichash_update(&st, a, alen);
	crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, key, MEMO_KEY_LEN);
}

/* The kept result of key (len bytes into out), or false. */
static bool memo_get(const uint8_t key[static MEMO_KEY_LEN], uint8_t *out, size_t len)
{
	const struct memo *e = &memo[key[0] | (key[1] & 3) << 8];
	if (!e->set || memcmp(e->key, key, MEMO_KEY_LEN) != 0)
		return false;
	memcpy(out, e->out, len);
	return true;
}

static void memo_put(const uint8_t key[static MEMO_KEY_LEN], const uint8_t *out, size_t len)
{
	struct memo *e = &memo[key[0] | (key[1] & 3) << 8];
	memcpy(e->key, key, MEMO_KEY_LEN);
	memcpy(e->out, out, len);
	e->set = true;
}

/* label | body, signed by keys[signer] into sig. */
static void sign_with(uint8_t sig[static TD_SIG_LEN], int signer, const char *label, const uint8_t *body, size_t len)
{
	uint8_t m[LABEL_MAX + T_LEN], key[MEMO_KEY_LEN];
	size_t ll = strlen(label);
	memcpy(m, label, ll);
	memcpy(m + ll, body, len);
	memo_key(key, 's', keys[signer].pk, TD_PUBKEY_LEN, m, ll + len);
	if (memo_get(key, sig, TD_SIG_LEN))
		return;
	crypto_sign_detached(sig, NULL, m, ll + len, keys[signer].sk);
	memo_put(key, sig, TD_SIG_LEN);
}

static bool verify_with(const uint8_t sig[static TD_SIG_LEN], const uint8_t pk[static TD_PUBKEY_LEN], const char *label,
			const uint8_t *body, size_t len)
{
	uint8_t m[TD_SIG_LEN + TD_PUBKEY_LEN + LABEL_MAX + T_LEN], key[MEMO_KEY_LEN], ok = 0;
	size_t ll = strlen(label);
	memcpy(m, sig, TD_SIG_LEN);
	memcpy(m + TD_SIG_LEN, pk, TD_PUBKEY_LEN);
	memcpy(m + TD_SIG_LEN + TD_PUBKEY_LEN, label, ll);
	memcpy(m + TD_SIG_LEN + TD_PUBKEY_LEN + ll, body, len);
	memo_key(key, 'v', m, TD_SIG_LEN + TD_PUBKEY_LEN + ll + len, NULL, 0);
	if (memo_get(key, &ok, 1))
		return ok;
	ok = crypto_sign_verify_detached(sig, m + TD_SIG_LEN + TD_PUBKEY_LEN, ll + len, pk) == 0;
	memo_put(key, &ok, 1);
	return ok;
}

/* A fresh X25519 key pair of the harness (crypto_kx_keypair, its scalar from the generator). */
static void eph_keypair(uint8_t pk[static EPH_LEN], uint8_t sk[static crypto_kx_SECRETKEYBYTES])
{
	uint8_t key[MEMO_KEY_LEN];
	randombytes_buf(sk, crypto_kx_SECRETKEYBYTES);
	memo_key(key, 'k', sk, crypto_kx_SECRETKEYBYTES, NULL, 0);
	if (memo_get(key, pk, EPH_LEN))
		return;
	crypto_scalarmult_base(pk, sk);
	memo_put(key, pk, EPH_LEN);
}

/* crypto_kx session keys of the harness, as client (it dials) or server; false if peer is unusable. */
static bool session_keys(bool client, uint8_t rx[static crypto_kx_SESSIONKEYBYTES],
			 uint8_t tx[static crypto_kx_SESSIONKEYBYTES], const uint8_t pk[static EPH_LEN],
			 const uint8_t sk[static crypto_kx_SECRETKEYBYTES], const uint8_t peer[static EPH_LEN])
{
	uint8_t key[MEMO_KEY_LEN], both[2 * crypto_kx_SESSIONKEYBYTES];
	memo_key(key, client ? 'c' : 'S', sk, crypto_kx_SECRETKEYBYTES, peer, EPH_LEN);
	if (!memo_get(key, both, sizeof(both))) {
		int rc = client ? crypto_kx_client_session_keys(both, both + crypto_kx_SESSIONKEYBYTES, pk, sk, peer) :
				  crypto_kx_server_session_keys(both, both + crypto_kx_SESSIONKEYBYTES, pk, sk, peer);
		if (rc != 0)
			return false;
		memo_put(key, both, sizeof(both));
	}
	memcpy(rx, both, crypto_kx_SESSIONKEYBYTES);
	memcpy(tx, both + crypto_kx_SESSIONKEYBYTES, crypto_kx_SESSIONKEYBYTES);
	return true;
}

static void transcript(uint8_t t[static T_LEN], const uint8_t *dialer_id, const uint8_t *dialer_eph,
		       const uint8_t *listener_id, const uint8_t *listener_eph)
{
	memcpy(t, gen.hash, TD_HASH_LEN);
	memcpy(t + TD_HASH_LEN, dialer_id, TD_PUBKEY_LEN);
	memcpy(t + TD_HASH_LEN + TD_PUBKEY_LEN, dialer_eph, EPH_LEN);
	memcpy(t + TD_HASH_LEN + TD_PUBKEY_LEN + EPH_LEN, listener_id, TD_PUBKEY_LEN);
	memcpy(t + TD_HASH_LEN + 2 * TD_PUBKEY_LEN + EPH_LEN, listener_eph, EPH_LEN);
}

static void expect_push(struct slot *s, const uint8_t *msg, size_t len)
{
	if (s->nexp == EXPECT_MAX) {
		s->exp_lost = true;
		return;
	}
	crypto_generichash(s->exp[s->nexp].hash, sizeof(s->exp[0].hash), msg, len, NULL, 0);
	s->exp[s->nexp].len = len;
	s->nexp++;
}

static struct slot *slot_of(struct harness *h, const struct p2p_peer *peer)
{
	for (int i = 0; i < SLOTS; i++)
		if (h->s[i].peer == peer)
			return &h->s[i];
	return NULL;
}

/* The slot other than except holding the peer of validator v, or NULL. */
static struct slot *peer_slot(struct harness *h, int v, const struct slot *except)
{
	for (int i = 0; i < SLOTS; i++)
		if (&h->s[i] != except && h->s[i].peer && (int)p2p_peer_validator(h->s[i].peer) == v)
			return &h->s[i];
	return NULL;
}

/* ---- what the node sends ---- */

static void check_node_hello(struct harness *h, struct slot *s)
{
	const uint8_t *b = s->in;
	fz_check(memcmp(b, MAGIC, MAGIC_LEN) == 0, "the node's hello has another magic");
	fz_check(memcmp(b + MAGIC_LEN, gen.hash, TD_HASH_LEN) == 0, "the node's hello names another genesis");
	fz_check(memcmp(b + MAGIC_LEN + TD_HASH_LEN, keys[0].pk, TD_PUBKEY_LEN) == 0,
		 "the node's hello names another identity");
	fz_check(verify_with(b + HELLO_LEN - TD_SIG_LEN, keys[0].pk, LABEL_HELLO, b + MAGIC_LEN,
			     TD_HASH_LEN + TD_PUBKEY_LEN + EPH_LEN),
		 "the node's hello does not verify");
	memcpy(s->node_eph, b + MAGIC_LEN + TD_HASH_LEN + TD_PUBKEY_LEN, EPH_LEN);
	memcpy(h->node_hello, b, HELLO_LEN);
	h->node_hello_set = true;
}

/* The node listens: its reply to our hello; sets up our receiving stream. */
static void check_node_reply(struct slot *s)
{
	const uint8_t *b = s->in;
	uint8_t t[T_LEN], rx[crypto_kx_SESSIONKEYBYTES];

	fz_check(s->valid, "the listener answered a hello that was not valid");
	fz_check(memcmp(b, MAGIC, MAGIC_LEN) == 0, "the node's reply has another magic");
	fz_check(memcmp(b + MAGIC_LEN, keys[0].pk, TD_PUBKEY_LEN) == 0, "the node's reply names another identity");
	memcpy(s->node_eph, b + MAGIC_LEN + TD_PUBKEY_LEN, EPH_LEN);
	transcript(t, keys[s->who].pk, s->my_pk, keys[0].pk, s->node_eph);
	fz_check(verify_with(b + MAGIC_LEN + TD_PUBKEY_LEN + EPH_LEN, keys[0].pk, LABEL_LISTENER, t, T_LEN),
		 "the node's reply does not verify over the transcript");
	fz_check(session_keys(true, rx, s->tx_key, s->my_pk, s->my_sk, s->node_eph),
		 "the node's ephemeral key is unusable");
	crypto_secretstream_xchacha20poly1305_init_pull(&s->rx, b + REPLY_LEN - HDR_LEN, rx);
}

/* The node dials: its finish after our reply; sets up our receiving stream. */
static void check_node_finish(struct slot *s)
{
	const uint8_t *b = s->in;
	uint8_t t[T_LEN];

	fz_check(s->valid, "the dialer finished after a reply that was not valid");
	transcript(t, keys[0].pk, s->node_eph, keys[s->who].pk, s->my_pk);
	fz_check(verify_with(b, keys[0].pk, LABEL_DIALER, t, T_LEN), "the node's finish does not verify");
	crypto_secretstream_xchacha20poly1305_init_pull(&s->rx, b + TD_SIG_LEN, s->rx_key);
}

/* One whole frame of the node at s->in (length already checked). */
static void check_node_frame(struct slot *s, uint32_t ctlen)
{
	uint8_t *pt = malloc(ctlen);
	unsigned long long ptlen = 0;
	unsigned char tag = 0;

	fz_check(pt != NULL, "out of memory");
	fz_check(crypto_secretstream_xchacha20poly1305_pull(&s->rx, pt, &ptlen, &tag, s->in + 4, ctlen, NULL, 0) == 0,
		 "a frame of the node does not decrypt");
	fz_check(tag == TAG_MESSAGE && ptlen >= 1 && pt[0] <= 2, "the node sent a frame of another tag or type");
	if (pt[0] == 2) {
		s->pongs++;
	} else if (pt[0] == 0 && !s->exp_lost) {
		uint8_t hash[crypto_generichash_BYTES];
		crypto_generichash(hash, sizeof(hash), pt + 1, (size_t)ptlen - 1, NULL, 0);
		fz_check(s->nexp > 0, "the node sent a message it was not asked to send");
		fz_check(s->exp[0].len == ptlen - 1 && memcmp(s->exp[0].hash, hash, sizeof(hash)) == 0,
			 "the node sent another message than asked, or out of order");
		memmove(s->exp, s->exp + 1, (s->nexp - 1) * sizeof(s->exp[0]));
		s->nexp--;
	}
	free(pt);
}

static void consume(struct slot *s, size_t n)
{
	memmove(s->in, s->in + n, s->inlen - n);
	s->inlen -= n;
}

/* Acts on what the node sent on s, as far as whole messages go. */
static void parse(struct harness *h, struct slot *s)
{
	for (;;) {
		switch (s->st) {
		case HS_FREE:
		case HS_IN_START:
		case HS_IN_REPLY:
		case HS_OUT_HELLO: fz_check(s->inlen == 0, "the node spoke out of turn in the handshake"); return;
		case HS_IN_HELLO:
			fz_check(s->inlen == 0 || s->valid, "the listener answered a hello that was not valid");
			if (s->inlen < REPLY_LEN)
				return;
			check_node_reply(s);
			consume(s, REPLY_LEN);
			s->st = HS_IN_REPLY;
			break;
		case HS_OUT_START:
			if (s->inlen < HELLO_LEN)
				return;
			check_node_hello(h, s);
			consume(s, HELLO_LEN);
			s->st = HS_OUT_HELLO;
			break;
		case HS_OUT_REPLY:
			fz_check(s->inlen == 0 || s->valid, "the dialer answered a reply that was not valid");
			if (s->inlen < FINISH_LEN)
				return;
			check_node_finish(s);
			consume(s, FINISH_LEN);
			s->st = HS_READY;
			break;
		case HS_READY: {
			if (s->inlen < 4)
				return;
			uint32_t len = get_be32(s->in);
			fz_check(len >= 1 + ABYTES && len <= (uint64_t)h->frame_max + 1 + ABYTES,
				 "the node sent a frame length out of range");
			if (s->inlen < 4 + (size_t)len)
				return;
			check_node_frame(s, len);
			consume(s, 4 + (size_t)len);
			break;
		}
		}
	}
}

/* Reads what the node sent on every open connection; returns how many bytes and closes it saw. */
static size_t drain(struct harness *h)
{
	size_t got = 0;

	for (int i = 0; i < SLOTS; i++) {
		struct slot *s = &h->s[i];
		while (s->fd >= 0 && !s->eof) {
			if (s->incap - s->inlen < 4096) {
				s->incap = s->incap ? s->incap * 2 : 8192;
				s->in = realloc(s->in, s->incap);
				fz_check(s->in != NULL, "out of memory");
			}
			ssize_t k = recv(s->fd, s->in + s->inlen, s->incap - s->inlen, MSG_DONTWAIT);
			if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (k <= 0) {
				s->eof = true; /* closed (or reset) by the node */
				got++;
				break;
			}
			s->inlen += (size_t)k;
			got += (size_t)k;
		}
		parse(h, s);
	}
	return got;
}

/* The node's view of its peers agrees with the callbacks. */
static void check_peers(struct harness *h)
{
	size_t n = 0;
	for (int i = 0; i < SLOTS; i++)
		n += h->s[i].peer != NULL;
	fz_check(p2p_peer_count(h->p) == n, "p2p_peer_count disagrees with on_connect and on_disconnect");
	for (int v = 0; v < NV; v++) {
		const struct slot *s = peer_slot(h, v, NULL);
		fz_check(p2p_peer_find(h->p, (uint32_t)v) == (s ? s->peer : NULL), "p2p_peer_find disagrees");
	}
}

/* Runs the loop and reads the node's bytes until it falls quiet. */
static void pump(struct harness *h)
{
	for (int round = 0;; round++) {
		fz_check(round < PUMP_ROUNDS, "the node never falls quiet");
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_run(&loop, UV_RUN_NOWAIT);
		if (drain(h) == 0)
			break;
	}
}

/* pump, then the node's view of its peers must agree with the callbacks (after each operation). */
static void settle(struct harness *h)
{
	pump(h);
	if (!h->stopped)
		check_peers(h);
}

/*
 * Writes len bytes to the node on s (the first CHUNKED_MAX in pieces of h->chunk when set),
 * running the loop after each piece; stops if the node closed.
 */
static void put_bytes(struct harness *h, struct slot *s, const uint8_t *b, size_t len)
{
	size_t off = 0;
	int spins = 0;

	h->cur = s;
	while (off < len && s->fd >= 0 && !s->eof) {
		size_t n = len - off;
		if (h->chunk && off < CHUNKED_MAX && n > h->chunk)
			n = h->chunk;
		ssize_t k = send(s->fd, b + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			fz_check(++spins < SPIN_MAX, "the node stopped reading");
			pump(h);
			continue;
		}
		if (k < 0)
			break; /* EPIPE: the node closed; drain sees it */
		spins = 0;
		off += (size_t)k;
		pump(h);
	}
	settle(h);
}

/* ---- callbacks ---- */

static void on_connect(void *ctx, struct p2p_peer *peer)
{
	struct harness *h = ctx;
	struct slot *s = h->cur;

	fz_check(!h->stopped, "a callback after p2p_stop");
	fz_check(s != NULL && s->hs_done && s->valid, "a peer appeared without a complete valid handshake");
	int v = (int)p2p_peer_validator(peer);
	fz_check(v == s->who, "the peer is announced as another validator");
	fz_check(s->peer == NULL && slot_of(h, peer) == NULL, "on_connect twice");
	fz_check(peer_slot(h, v, s) == NULL, "two peers of one validator at once");
	fz_check(h->connects[v] == h->disconnects[v], "connects and disconnects of a validator do not alternate");
	h->connects[v]++;
	s->peer = peer;
	if (h->cfg & FZ_P2P_CFG_GREET) {
		struct td_buf b;
		uint8_t hash[TD_HASH_LEN];
		memset(hash, 0x47, sizeof(hash));
		td_buf_init(&b);
		td_msg_status(&b, 7, hash);
		h->in_call = true;
		int rc = p2p_send(peer, (const uint8_t *)b.sb.data, b.sb.size);
		h->in_call = false;
		fz_check(rc == 0 || (rc == TD_EINVAL && b.sb.size > h->frame_max), "p2p_send from on_connect failed");
		if (rc == 0)
			expect_push(s, (const uint8_t *)b.sb.data, b.sb.size);
		td_buf_free(&b);
	}
}

static void on_message(void *ctx, struct p2p_peer *peer, const uint8_t *msg, size_t len)
{
	struct harness *h = ctx;
	struct slot *s = slot_of(h, peer);
	struct td_msg m;

	fz_check(!h->stopped, "a callback after p2p_stop");
	fz_check(s != NULL, "a message from a peer that is not announced");
	fz_check(s == h->cur, "a message on a connection the harness did not write to");
	if (!s->tainted) {
		fz_check(s->want != NULL, "a message from a frame that was not valid");
		fz_check(s->delivered == 0 && len == s->wantlen && memcmp(msg, s->want, len) == 0,
			 "a frame delivered other than sealed");
	}
	s->delivered++;
	bool ok = td_msg_decode(&m, msg, len) == 0;
	if (ok)
		td_msg_free(&m);
	if ((h->cfg & FZ_P2P_CFG_REENTER) && len > 0 && msg[0] == MSG_STOP) {
		p2p_stop(h->p); /* on_disconnect for every peer, this one included, before it returns */
		h->stopped = true;
		for (int i = 0; i < SLOTS; i++)
			fz_check(h->s[i].peer == NULL, "p2p_stop returned before reporting every peer");
	} else if (!ok && (h->cfg & FZ_P2P_CFG_STRICT)) {
		h->in_call = true;
		p2p_disconnect(peer, "message does not decode");
		h->in_call = false;
		s->cb_dropped = true;
	} else if (ok && (h->cfg & FZ_P2P_CFG_ECHO)) {
		h->in_call = true;
		int rc = p2p_send(peer, msg, len);
		h->in_call = false;
		fz_check(rc == 0 || rc == TD_EFULL, "p2p_send of a message received failed");
		if (rc == 0)
			expect_push(s, msg, len);
	}
}

static void on_disconnect(void *ctx, struct p2p_peer *peer)
{
	struct harness *h = ctx;
	struct slot *s = slot_of(h, peer);

	fz_check(!h->stopped, "a callback after p2p_stop");
	fz_check(!h->in_call, "on_disconnect inside p2p_send, p2p_broadcast or p2p_disconnect");
	fz_check(s != NULL, "on_disconnect for a peer never announced");
	h->disconnects[p2p_peer_validator(peer)]++;
	s->peer = NULL;
	if (h->cfg & FZ_P2P_CFG_REENTER) { /* tell the others, as a gossip layer might */
		struct td_buf b;
		uint8_t hash[TD_HASH_LEN];
		memset(hash, 0x44, sizeof(hash));
		td_buf_init(&b);
		td_msg_status(&b, 9, hash);
		bool was = h->in_call;
		h->in_call = true;
		p2p_broadcast(h->p, (const uint8_t *)b.sb.data, b.sb.size, NULL);
		h->in_call = was;
		for (int i = 0; i < SLOTS; i++)
			if (h->s[i].peer && b.sb.size <= h->frame_max)
				expect_push(&h->s[i], (const uint8_t *)b.sb.data, b.sb.size);
		td_buf_free(&b);
	}
}

/* ---- handshake steps of the harness ---- */

/* After the last handshake message of s: a valid one made a peer, the duplicate rule kept the right one. */
static void check_kept(struct harness *h, struct slot *s, struct slot *old)
{
	bool keep = true;

	if (!s->valid)
		return;
	if (old) {
		const uint8_t *ne = s->outbound ? s->node_eph : s->my_pk;
		const uint8_t *oe = old->outbound ? old->node_eph : old->my_pk;
		if (old->outbound == s->outbound)
			keep = memcmp(ne, oe, EPH_LEN) < 0;
		else
			keep = s->outbound == (memcmp(keys[0].pk, keys[s->who].pk, TD_PUBKEY_LEN) < 0);
	}
	if (keep) {
		fz_check(s->peer != NULL && !s->eof, "a valid handshake did not make a peer");
		if (old)
			fz_check(old->peer == NULL && old->eof, "the duplicate kept is not the one the rule names");
	} else {
		fz_check(s->peer == NULL && s->eof && old->peer != NULL,
			 "the duplicate dropped is not the one the rule names");
	}
}

/* Sends msg (len bytes), then checks the node closed the connection if it must. */
static void put_checked(struct harness *h, struct slot *s, const uint8_t *msg, size_t len, bool must_close)
{
	bool judged = !s->tainted && !s->eof;
	put_bytes(h, s, msg, len);
	if (judged && must_close)
		fz_check(s->eof && s->peer == NULL, "the node kept a connection after a bad handshake message");
}

static void send_hello(struct harness *h, struct slot *s, int who, enum hello_bad bad)
{
	uint8_t hello[HELLO_LEN], chain[TD_HASH_LEN], eph[EPH_LEN];
	int id = who, signer = who;
	bool must_close = !allowed(h, who);

	eph_keypair(s->my_pk, s->my_sk);
	memcpy(eph, s->my_pk, EPH_LEN);
	memcpy(chain, gen.hash, TD_HASH_LEN);
	switch (bad) {
	case HB_NONE:
	case HB_MAGIC:
	case HB_VERSION:
	case HB_VERSION_BYTE:
	case HB_SIG:
	case HB_REPLAY:
	case HB_REFLECT:
	case HB_SHORT: break;
	case HB_GENESIS: chain[7] ^= 0x10; break;
	case HB_STRANGER: id = signer = STRANGER; break;
	case HB_SELF: id = signer = 0; break;
	case HB_EPH_ZERO: memset(eph, 0, EPH_LEN); break;
	case HB_OTHER_KEY: signer = 3 - who; break;
	case HB_COUNT: abort();
	}
	memcpy(hello, MAGIC, MAGIC_LEN);
	memcpy(hello + MAGIC_LEN, chain, TD_HASH_LEN);
	memcpy(hello + MAGIC_LEN + TD_HASH_LEN, keys[id].pk, TD_PUBKEY_LEN);
	memcpy(hello + MAGIC_LEN + TD_HASH_LEN + TD_PUBKEY_LEN, eph, EPH_LEN);
	sign_with(hello + HELLO_LEN - TD_SIG_LEN, signer, LABEL_HELLO, hello + MAGIC_LEN,
		  TD_HASH_LEN + TD_PUBKEY_LEN + EPH_LEN);
	switch (bad) {
	case HB_MAGIC: hello[0] = 'X'; break;
	case HB_VERSION: hello[3] = '2'; break;
	case HB_VERSION_BYTE: hello[3] = 0xfe; break;
	case HB_SIG: hello[HELLO_LEN - 9] ^= 0x04; break;
	case HB_REPLAY:
		if (h->last_hello_set)
			memcpy(hello, h->last_hello, HELLO_LEN);
		else
			bad = HB_NONE;
		break;
	case HB_REFLECT:
		if (h->node_hello_set) {
			memcpy(hello, h->node_hello, HELLO_LEN);
		} else {
			memcpy(hello + MAGIC_LEN + TD_HASH_LEN, keys[0].pk, TD_PUBKEY_LEN);
			sign_with(hello + HELLO_LEN - TD_SIG_LEN, 0, LABEL_HELLO, hello + MAGIC_LEN,
				  TD_HASH_LEN + TD_PUBKEY_LEN + EPH_LEN);
		}
		break;
	case HB_NONE:
	case HB_GENESIS:
	case HB_STRANGER:
	case HB_SELF:
	case HB_EPH_ZERO:
	case HB_OTHER_KEY:
	case HB_SHORT: break;
	case HB_COUNT: abort();
	}
	s->who = who;
	s->st = HS_IN_HELLO;
	if (bad == HB_SHORT) {
		s->valid = false;
		s->tainted = true;
		put_bytes(h, s, hello + 1, HELLO_LEN - 1);
		return;
	}
	if (bad != HB_NONE) {
		s->valid = false;
		must_close = true;
	}
	s->valid = s->valid && !must_close;
	if (!s->tainted) {
		memcpy(h->last_hello, hello, HELLO_LEN);
		h->last_hello_set = true;
	}
	bool judged = s->valid;
	put_checked(h, s, hello, HELLO_LEN, must_close);
	if (judged)
		fz_check(s->st == HS_IN_REPLY && !s->eof, "the listener did not answer a valid hello");
}

static void send_reply(struct harness *h, struct slot *s, int who, enum reply_bad bad)
{
	uint8_t reply[REPLY_LEN], t[T_LEN], eph[EPH_LEN], node_eph[EPH_LEN];
	int id = who, signer = who;
	bool must_close = !allowed(h, who);

	eph_keypair(s->my_pk, s->my_sk);
	fz_check(session_keys(false, s->rx_key, s->tx_key, s->my_pk, s->my_sk, s->node_eph),
		 "the node's ephemeral key is unusable");
	memcpy(eph, s->my_pk, EPH_LEN);
	memcpy(node_eph, s->node_eph, EPH_LEN);
	switch (bad) {
	case RB_NONE:
	case RB_MAGIC:
	case RB_VERSION:
	case RB_VERSION_BYTE:
	case RB_SIG:
	case RB_HEADER:
	case RB_SHORT: break;
	case RB_SELF: id = signer = 0; break;
	case RB_STRANGER: id = signer = STRANGER; break;
	case RB_EPH_ZERO: memset(eph, 0, EPH_LEN); break;
	case RB_TRANSCRIPT: node_eph[0] ^= 0x01; break;
	case RB_OTHER_KEY: signer = 3 - who; break;
	case RB_COUNT: abort();
	}
	transcript(t, keys[0].pk, node_eph, keys[id].pk, eph);
	memcpy(reply, MAGIC, MAGIC_LEN);
	memcpy(reply + MAGIC_LEN, keys[id].pk, TD_PUBKEY_LEN);
	memcpy(reply + MAGIC_LEN + TD_PUBKEY_LEN, eph, EPH_LEN);
	sign_with(reply + MAGIC_LEN + TD_PUBKEY_LEN + EPH_LEN, signer, LABEL_LISTENER, t, T_LEN);
	crypto_secretstream_xchacha20poly1305_init_push(&s->tx, reply + REPLY_LEN - HDR_LEN, s->tx_key);
	switch (bad) {
	case RB_MAGIC: reply[1] = 'X'; break;
	case RB_VERSION: reply[3] = '2'; break;
	case RB_VERSION_BYTE: reply[3] = 0x00; break;
	case RB_SIG: reply[MAGIC_LEN + TD_PUBKEY_LEN + EPH_LEN + 3] ^= 0x80; break;
	case RB_HEADER:
		reply[REPLY_LEN - 5] ^= 0x20;
		s->tx_bad = true;
		break;
	case RB_NONE:
	case RB_SELF:
	case RB_STRANGER:
	case RB_EPH_ZERO:
	case RB_TRANSCRIPT:
	case RB_OTHER_KEY:
	case RB_SHORT: break;
	case RB_COUNT: abort();
	}
	s->who = who;
	s->st = HS_OUT_REPLY;
	s->hs_done = true;
	if (bad == RB_SHORT) {
		s->valid = false;
		s->tainted = true;
		put_bytes(h, s, reply + 1, REPLY_LEN - 1);
		return;
	}
	if (bad != RB_NONE && bad != RB_HEADER)
		must_close = true;
	s->valid = s->valid && !must_close;
	struct slot *old = peer_slot(h, who, s);
	put_checked(h, s, reply, REPLY_LEN, must_close);
	check_kept(h, s, old);
	if (s->valid && !s->eof)
		fz_check(s->st == HS_READY, "the dialer did not finish after a valid reply");
}

static void send_finish(struct harness *h, struct slot *s, enum finish_bad bad)
{
	uint8_t finish[FINISH_LEN], t[T_LEN];
	int signer = s->who;
	const char *label = LABEL_DIALER;
	bool must_close = false;

	switch (bad) {
	case FB_NONE:
	case FB_SIG:
	case FB_HEADER:
	case FB_SHORT: break;
	case FB_OTHER_KEY: signer = 3 - s->who; break;
	case FB_LABEL: label = LABEL_LISTENER; break;
	case FB_COUNT: abort();
	}
	transcript(t, keys[s->who].pk, s->my_pk, keys[0].pk, s->node_eph);
	sign_with(finish, signer, label, t, T_LEN);
	crypto_secretstream_xchacha20poly1305_init_push(&s->tx, finish + TD_SIG_LEN, s->tx_key);
	switch (bad) {
	case FB_SIG: finish[20] ^= 0x02; break;
	case FB_HEADER:
		finish[FINISH_LEN - 1] ^= 0x01;
		s->tx_bad = true;
		break;
	case FB_NONE:
	case FB_OTHER_KEY:
	case FB_LABEL:
	case FB_SHORT: break;
	case FB_COUNT: abort();
	}
	s->st = HS_READY;
	s->hs_done = true;
	if (bad == FB_SHORT) {
		s->valid = false;
		s->tainted = true;
		put_bytes(h, s, finish + 1, FINISH_LEN - 1);
		return;
	}
	if (bad != FB_NONE && bad != FB_HEADER)
		must_close = true;
	s->valid = s->valid && !must_close;
	struct slot *old = peer_slot(h, s->who, s);
	put_checked(h, s, finish, FINISH_LEN, must_close);
	check_kept(h, s, old);
}

/* ---- operations ---- */

/* The harness closes its end of s; the node must notice and report its peer gone. */
static void slot_close(struct harness *h, struct slot *s)
{
	if (s->st == HS_FREE)
		return;
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
		h->cur = s;
		settle(h);
	}
	fz_check(s->peer == NULL, "the node kept a peer whose connection closed");
	free(s->in);
	free(s->last);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->st = HS_FREE;
}

static void op_open(struct harness *h, uint8_t a)
{
	struct slot *s = &h->s[a & 3];
	int sv[2];

	slot_close(h, s);
	fz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	if (h->cfg & FZ_P2P_CFG_SMALL) {
		int sz = SMALL_BUF;
		for (int i = 0; i < 2; i++)
			fz_check(setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)) == 0, "SO_SNDBUF");
	}
	s->fd = sv[1];
	s->outbound = (a & 4) != 0;
	s->st = s->outbound ? HS_OUT_START : HS_IN_START;
	s->valid = true;
	h->cur = s;
	fz_check(p2p_fuzz_adopt(h->p, sv[0], s->outbound) == 0, "p2p_fuzz_adopt");
	settle(h);
	fz_check(!s->outbound || s->st == HS_OUT_HELLO, "the dialer sent no hello");
}

static void op_hs(struct harness *h, uint8_t a)
{
	struct slot *s = &h->s[a & 3];
	int who = 1 + ((a >> 2) & 1);
	unsigned bad = a >> 3u;

	switch (s->st) {
	case HS_IN_START: send_hello(h, s, who, (enum hello_bad)(bad % HB_COUNT)); break;
	case HS_IN_REPLY: send_finish(h, s, (enum finish_bad)(bad % FB_COUNT)); break;
	case HS_OUT_HELLO: send_reply(h, s, who, (enum reply_bad)(bad % RB_COUNT)); break;
	case HS_FREE:
	case HS_IN_HELLO:
	case HS_OUT_START:
	case HS_OUT_REPLY:
	case HS_READY: break;
	}
}

/*
 * A payload of up to n bytes of the input (with fill: those repeated to 16 n, at most FILL_MAX),
 * in a new buffer after room bytes; *len is its length.
 */
static uint8_t *payload(struct cur *in, size_t n, bool fill, size_t room, size_t *len)
{
	const uint8_t *src;
	size_t got = next_bytes(in, &src, n);
	size_t plen = fill ? (16 * n < FILL_MAX ? 16 * n : FILL_MAX) : got;
	uint8_t *b = calloc(1, room + plen + 1);

	fz_check(b != NULL, "out of memory");
	if (got > 0) { /* the bytes, then copies of what is filled, doubling */
		size_t have = got < plen ? got : plen;
		memcpy(b + room, src, have);
		while (have < plen) {
			size_t k = have < plen - have ? have : plen - have;
			memcpy(b + room + have, b + room, k);
			have += k;
		}
	}
	*len = plen;
	return b;
}

static void op_frame(struct harness *h, struct cur *in)
{
	uint8_t a = next_u8(in), f = next_u8(in);
	size_t n = (size_t)next_u8(in) << 8;
	n |= next_u8(in);
	struct slot *s = &h->s[a & 3];
	unsigned type = a >> 2u;
	bool typed = type != FZ_P2P_TYPE_NONE;
	size_t plen;
	uint8_t *pt = payload(in, n, (f & FZ_P2P_F_FILL) != 0, 1, &plen);
	size_t ptlen = plen + typed;
	const uint8_t *ptp = typed ? pt : pt + 1;
	uint8_t *frame = NULL;
	size_t flen = 0;

	pt[0] = (uint8_t)type;
	if (s->st == HS_FREE)
		goto out;
	if (s->st != HS_READY) { /* no session yet: the plaintext goes raw */
		if (ptlen > 0) {
			s->valid = false;
			s->tainted = true;
		}
		put_bytes(h, s, ptp, ptlen);
		goto out;
	}
	fz_check(s->tainted || s->eof || s->peer != NULL, "a connection through its handshake is open but no peer");
	unsigned tagn = f & FZ_P2P_F_TAG;
	static const unsigned char tags[4] = { crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
					       crypto_secretstream_xchacha20poly1305_TAG_PUSH,
					       crypto_secretstream_xchacha20poly1305_TAG_REKEY,
					       crypto_secretstream_xchacha20poly1305_TAG_FINAL };
	size_t ctlen = ptlen + ABYTES;
	bool bad = s->tx_bad || tagn != 0 || (f & FZ_P2P_F_FLIP) || ptlen == 0 || ptp[0] > 2 ||
		   ctlen > (uint64_t)h->frame_max + 1 + ABYTES;
	if (f & FZ_P2P_F_REPLAY) {
		if (!s->last)
			goto out;
		flen = s->lastlen;
		frame = malloc(flen);
		fz_check(frame != NULL, "out of memory");
		memcpy(frame, s->last, flen);
		bad = true;
	} else {
		flen = 4 + ctlen;
		frame = malloc(flen);
		fz_check(frame != NULL, "out of memory");
		put_be32(frame, (uint32_t)ctlen);
		crypto_secretstream_xchacha20poly1305_push(&s->tx, frame + 4, NULL, ptp, ptlen, NULL, 0, tags[tagn]);
		if (f & FZ_P2P_F_WITHHOLD) {
			s->tx_bad = true;
			goto out;
		}
		if (f & FZ_P2P_F_FLIP)
			frame[4 + (ptlen * 7 + 3) % ctlen] ^= 0x40;
		if (f & FZ_P2P_F_LIE) {
			put_be32(frame, (uint32_t)((f & FZ_P2P_F_MORE) ? ctlen + 1 : ctlen - 1));
			s->tainted = true;
		}
		free(s->last);
		s->last = malloc(flen);
		fz_check(s->last != NULL, "out of memory");
		memcpy(s->last, frame, flen);
		s->lastlen = flen;
	}
	bool judged = !s->tainted && !s->eof;
	size_t pongs = s->pongs;
	s->want = !bad && ptp[0] == 0 ? ptp + 1 : NULL;
	s->wantlen = ptlen - 1;
	s->delivered = 0;
	s->cb_dropped = false;
	put_bytes(h, s, frame, flen);
	judged = judged && !h->stopped;
	if (judged && bad) {
		fz_check(s->eof && s->peer == NULL, "a connection that received a bad frame is still open");
	} else if (judged) {
		fz_check(!s->eof || s->cb_dropped, "a valid frame closed the connection");
		if (ptp[0] == 0)
			fz_check(s->delivered == 1, "a valid message was not delivered once");
		if (ptp[0] == 1)
			fz_check(s->pongs == pongs + 1, "a ping got no pong");
		fz_check(s->eof || s->exp_lost || s->nexp == 0, "a message the node sent did not arrive");
	}
	s->want = NULL;
out:
	free(frame);
	free(pt);
}

static void op_raw(struct harness *h, struct cur *in)
{
	uint8_t a = next_u8(in);
	const uint8_t *b;
	size_t n = next_bytes(in, &b, next_u8(in));
	struct slot *s = &h->s[a & 3];

	if (s->st == HS_FREE)
		return;
	if (n > 0) {
		s->valid = false;
		s->tainted = true;
	}
	put_bytes(h, s, b, n);
}

/*
 * The node sends (SEND) or broadcasts (BCAST) a payload, 1 to 8 times; each peer must get every
 * copy accepted, in order, and a peer whose send queue overflowed must be dropped.
 */
static void op_send(struct harness *h, struct cur *in, bool broadcast)
{
	uint8_t a = next_u8(in);
	size_t n = (size_t)next_u8(in) << 8;
	n |= next_u8(in);
	size_t len;
	uint8_t *msg = payload(in, n, false, 0, &len);
	struct slot *s = &h->s[a & 3];
	int times = 1 + ((a >> 3) & 7);
	bool full = false;

	for (int k = 0; k < times; k++) {
		if (!broadcast) {
			if (!s->peer)
				break;
			h->in_call = true;
			int rc = p2p_send(s->peer, msg, len);
			h->in_call = false;
			if (len > h->frame_max)
				fz_check(rc == TD_EINVAL, "p2p_send took a message over frame_max");
			else if (rc == TD_EFULL)
				full = true;
			else
				fz_check(rc == 0, "p2p_send refused a message to a live peer");
			fz_check(rc != TD_EFULL || (h->cfg & FZ_P2P_CFG_SMALL), "a send queue overflowed");
			if (rc == 0)
				expect_push(s, msg, len);
		} else {
			const struct p2p_peer *except = (a & 4) ? s->peer : NULL;
			h->in_call = true;
			p2p_broadcast(h->p, msg, len, except);
			h->in_call = false;
			for (int i = 0; i < SLOTS; i++)
				if (h->s[i].peer && h->s[i].peer != except && len <= h->frame_max)
					expect_push(&h->s[i], msg, len);
		}
	}
	h->cur = NULL;
	settle(h);
	if (full)
		fz_check(s->peer == NULL && s->eof, "a peer whose send queue overflowed stays");
	for (int i = 0; i < SLOTS; i++) {
		const struct slot *o = &h->s[i];
		fz_check(o->fd < 0 || o->eof || o->exp_lost || o->nexp == 0, "a message the node sent did not arrive");
	}
	free(msg);
}

static void op_disc(struct harness *h, uint8_t a)
{
	struct slot *s = &h->s[a & 3];

	if (!s->peer)
		return;
	h->in_call = true;
	p2p_disconnect(s->peer, "fuzz");
	h->in_call = false;
	h->cur = NULL;
	settle(h);
	fz_check(s->peer == NULL && s->eof, "a peer dropped with p2p_disconnect stays");
}

/* ---- the target ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_check(randombytes_set_implementation(&rng) == 0, "randombytes_set_implementation");
	fz_check(sodium_init() >= 0, "sodium_init");
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	for (int i = 0; i <= NV; i++) {
		uint8_t seed[crypto_sign_SEEDBYTES];
		memset(seed, 0x30 + i, sizeof(seed));
		crypto_sign_seed_keypair(keys[i].pk, keys[i].sk, seed);
	}
	snprintf(gen.chain_id, sizeof(gen.chain_id), "tenderd-test-p2p");
	snprintf(gen.ocid_prefix, sizeof(gen.ocid_prefix), FZ_PREFIX);
	gen.time_ms = FZ_GENESIS_MS;
	gen.n = NV;
	gen.v = vals;
	for (int i = 0; i < NV; i++) {
		snprintf(vals[i].name, sizeof(vals[i].name), "agency-%d", i);
		memcpy(vals[i].pk, keys[i].pk, TD_PUBKEY_LEN);
	}
	td_genesis_seal(&gen);
	fz_check(uv_loop_init(&loop) == 0, "uv_loop_init");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t frame_max[4] = { 0, 64, 1024, 70000 };
	struct harness *h = calloc(1, sizeof(*h));
	struct cur in = { data, size };
	struct p2p_config cfg;
	struct p2p_callbacks cb = { on_connect, on_message, on_disconnect };
	char err[256];

	fz_check(h != NULL, "out of memory");
	int fd_probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(fd_probe);
	rng_state = RNG_SEED;
	for (int i = 0; i < SLOTS; i++)
		h->s[i].fd = -1;
	h->cfg = next_u8(&in);
	memset(&cfg, 0, sizeof(cfg));
	cfg.listen = "127.0.0.1:0";
	cfg.genesis = &gen;
	cfg.sk = keys[0].sk;
	cfg.ping_ms = cfg.timeout_ms = cfg.handshake_ms = HOUR_MS;
	cfg.frame_max = frame_max[h->cfg & FZ_P2P_CFG_FRAME_MAX];
	cfg.send_queue_max = (h->cfg & FZ_P2P_CFG_SMALL) ? SMALL_QUEUE : 0;
	if (h->cfg & FZ_P2P_CFG_REFUSE_2)
		cfg.key_lookup = key_lookup;
	h->frame_max = cfg.frame_max ? cfg.frame_max : P2P_FRAME_MAX_DEFAULT;
	fz_check(p2p_start(&h->p, &loop, &cfg, &cb, h, err, sizeof(err)) == 0, "p2p_start");

	for (int ops = 0; in.n > 0 && ops < OPS_MAX && !h->stopped; ops++) {
		uint8_t op = next_u8(&in) % FZ_P2P_OPS;
		switch ((enum fz_p2p_op)op) {
		case FZ_P2P_OPEN: op_open(h, next_u8(&in)); break;
		case FZ_P2P_HS: op_hs(h, next_u8(&in)); break;
		case FZ_P2P_FRAME: op_frame(h, &in); break;
		case FZ_P2P_RAW: op_raw(h, &in); break;
		case FZ_P2P_CHUNK: h->chunk = next_u8(&in); break;
		case FZ_P2P_SEND: op_send(h, &in, false); break;
		case FZ_P2P_BCAST: op_send(h, &in, true); break;
		case FZ_P2P_DISC: op_disc(h, next_u8(&in)); break;
		case FZ_P2P_CLOSE: slot_close(h, &h->s[next_u8(&in) & 3]); break;
		case FZ_P2P_OPS: abort();
		}
	}

	if (!h->stopped) {
		json_t *peers = p2p_peers_json(h->p);
		size_t npeers = p2p_peer_count(h->p);
		fz_check(json_array_size(peers) == npeers, "p2p_peers_json lists another number of peers");
		json_decref(peers);
		p2p_stop(h->p);
		h->stopped = true;
	}
	for (int i = 0; i < SLOTS; i++)
		fz_check(h->s[i].peer == NULL, "p2p_stop returned before reporting every peer");
	uv_run(&loop, UV_RUN_DEFAULT);
	fz_check(!uv_loop_alive(&loop), "handles left after p2p_stop");
	for (int i = 0; i < SLOTS; i++) {
		if (h->s[i].fd >= 0)
			close(h->s[i].fd);
		free(h->s[i].in);
		free(h->s[i].last);
	}
	for (int v = 0; v < NV; v++)
		fz_check(h->connects[v] == h->disconnects[v], "a validator connected more often than it disconnected");
	free(h);
	int fd_after = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(fd_after);
	fz_check(fd_after == fd_probe, "a descriptor was left open");
	return 0;
}
