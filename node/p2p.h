/*
 * Peer-to-peer transport between the nodes of a chain's parties (validators,
 * members and observers): TCP (libuv), mutually authenticated with the
 * parties' Ed25519 keys from genesis (a handshake
 * in which each side signs both ephemeral keys and both identities; the
 * dialer signs first), every frame encrypted and authenticated (libsodium
 * secretstream). It moves opaque
 * message bytes and knows nothing of their contents; the protocol is
 * described at the top of p2p.c.
 *
 * Contracts common to every function here:
 * - Everything runs on the loop given to p2p_start, from one thread.
 * - A struct p2p_peer is a connection that completed the handshake: both
 *   sides proved their identity keys. Its
 *   pointer is valid from on_connect until on_disconnect returns; there is at
 *   most one connected peer per party at a time (peers are named by party
 *   index, td_genesis_party), and for a given party on_connect and
 *   on_disconnect strictly alternate. No callback
 *   fires for a peer after its on_disconnect.
 * - on_disconnect is called from the loop, never from inside p2p_send,
 *   p2p_broadcast or p2p_disconnect; p2p_stop calls it, before returning, for
 *   every peer still connected. No callback fires after p2p_stop returns.
 * - Callbacks may call any function here, p2p_stop included.
 */
#ifndef TENDERD_P2P_H
#define TENDERD_P2P_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "tenderd/block.h"
#include "tenderd/types.h"

#define P2P_SEND_QUEUE_DEFAULT (32u * 1024 * 1024)
#define P2P_PING_MS_DEFAULT 2000u
#define P2P_TIMEOUT_MS_DEFAULT 10000u
#define P2P_FRAME_MAX_DEFAULT ((uint32_t)TD_BLOCK_MAX + 1024u * 1024)
#define P2P_HANDSHAKE_MS_DEFAULT 3000u
#define P2P_DROP_LOGS_PER_MIN 20u           /* inbound drops of each kind logged one by one per minute (p2p.c) */
#define P2P_HANDSHAKING_MAX 64              /* unauthenticated inbound connections at once; more are closed at accept */
#define P2P_HANDSHAKING_PER_ADDR_DEFAULT 4u /* the same, per source address (IPv4, or IPv6 /64) */
#define P2P_DIALERS_MAX 256                 /* addresses in cfg->peers */

struct p2p;
struct p2p_peer;

struct p2p_config {
	const char *listen; /* "host:port" (IPv6: "[::1]:port"); port 0 picks one, see p2p_listen_port */
	/*
	 * Comma-separated list to dial, each "host:port" or "PUBKEY@host:port" (PUBKEY: the peer's
	 * pub_key in hex; only that identity may answer there, see p2p.c); NULL or "" dials nothing.
	 */
	const char *peers;
	const struct td_genesis *genesis; /* borrowed until p2p_stop: chain id and the party keys allowed in */
	const uint8_t *sk;            /* this node's Ed25519 secret key (TD_SECKEY_LEN); copied, must be a party's */
	size_t send_queue_max;        /* bytes queued per peer before it is dropped; 0: default 32 MiB */
	uint32_t ping_ms, timeout_ms; /* keepalive, and dead-peer and TCP connect timeout; 0: 2000 and 10000 */
	uint32_t frame_max;           /* largest message accepted or sent; 0: TD_BLOCK_MAX + 1 MiB */
	uint32_t handshake_ms;        /* handshake deadline from the TCP connection; 0: 3000 */
	uint32_t handshake_per_addr;  /* inbound connections in their handshake per source address; 0: 4 */
	/*
	 * Who may connect: the party index in genesis of the peer with identity
	 * pk, or -1 to refuse it (any value >= td_genesis_parties is an internal
	 * error). Called before any signature is checked. NULL: every party of
	 * the genesis (td_genesis_find_party). This node's own key is never
	 * looked up.
	 */
	int (*key_lookup)(void *ctx, const uint8_t pk[static TD_PUBKEY_LEN]);
	void *key_lookup_ctx;
	/*
	 * With key_lookup: the name and key of party slot (a value key_lookup
	 * answered) and, if role is not NULL, its role now ("validator", ...,
	 * NULL once removed); called with key_lookup_ctx. NULL: the genesis
	 * parties. With a key_lookup, this node's own key may be unknown (a
	 * node waiting for the chain to name it).
	 */
	const struct td_validator *(*party)(void *ctx, uint32_t slot, const char **role);
};

struct p2p_callbacks {
	/* The peer is authenticated and ready for p2p_send. */
	void (*on_connect)(void *ctx, struct p2p_peer *peer);
	/* One application message; msg is valid only during the call. */
	void (*on_message)(void *ctx, struct p2p_peer *peer, const uint8_t *msg, size_t len);
	/* Only for peers that got on_connect; the peer pointer is invalid after the call returns. */
	void (*on_disconnect)(void *ctx, struct p2p_peer *peer);
};

/*
 * Listens on cfg->listen and starts dialing every address in cfg->peers
 * (redialing with backoff). cb and its members may be NULL; cb is copied.
 * Returns 0 with *out set, or TD_EINVAL (bad config, this node's key or a
 * PUBKEY@ of cfg->peers not a genesis validator) / TD_EIO (cannot listen)
 * with a message in err. On failure
 * *out is NULL and nothing is left to free (if libuv refuses the socket
 * after it was bound, the handle made for it is closed and freed once the
 * loop runs).
 */
int p2p_start(struct p2p **out, uv_loop_t *loop, const struct p2p_config *cfg, const struct p2p_callbacks *cb,
	      void *ctx, char *err, size_t errlen);
/*
 * Closes the listener, every connection and dialer; on_disconnect is called
 * for every connected peer before this returns, and no callback after. The
 * memory is freed once libuv has closed every handle (keep running the
 * loop). NULL or a second call does nothing.
 */
void p2p_stop(struct p2p *p);

/*
 * Queues one message (len <= frame_max) to peer. Returns 0; TD_EINVAL if len
 * is over frame_max (nothing sent, peer kept); TD_EFULL if the message was
 * not queued because the peer's send queue would pass send_queue_max or the
 * peer is already being dropped: the peer is then dropped (on_disconnect
 * follows from the loop).
 */
int p2p_send(struct p2p_peer *peer, const uint8_t *msg, size_t len);
/*
 * p2p_send to every connected peer but except (NULL: all); encrypts once per
 * peer. A peer whose queue is full is dropped; a message over frame_max is
 * not sent (and logged as an internal error).
 */
void p2p_broadcast(struct p2p *p, const uint8_t *msg, size_t len, const struct p2p_peer *except);
/*
 * Drops peer (for a peer that sent bad bytes); reason is logged once, at
 * warn. Later calls for the same peer do nothing. on_disconnect follows from
 * the loop.
 */
void p2p_disconnect(struct p2p_peer *peer, const char *reason);

/* The peer's party index in genesis (td_genesis_party: validators first). */
uint32_t p2p_peer_validator(const struct p2p_peer *peer);
/* The connected peer for a party index, or NULL. */
struct p2p_peer *p2p_peer_find(struct p2p *p, uint32_t validator);
/* Connected peers (handshake done, not being dropped). */
size_t p2p_peer_count(const struct p2p *p);
/* The port the listener is bound to (useful after listening on port 0). */
uint16_t p2p_listen_port(const struct p2p *p);

/*
 * A new JSON array describing the connections: one entry per connected peer
 *   {"name","pub_key","validator","address","direction":"in"|"out","state":"connected",
 *    "connected_ms","bytes_sent","bytes_received"}
 * and one per configured address not connected at the moment
 *   {"address","direction":"out","state":"connecting"|"backoff","attempts","failures",
 *    "retry_in_ms","last_error"?, "name"?, "pub_key"? (the last two once the identity behind it is known)}.
 * Numbers are td_json_uint values.
 */
json_t *p2p_peers_json(const struct p2p *p);

/* Bytes written to / read from the wire, all connections, handshakes and framing included. */
uint64_t p2p_bytes_sent(const struct p2p *p);
uint64_t p2p_bytes_received(const struct p2p *p);

#ifdef TENDER_FUZZ
/*
 * Fuzzing only (tests/fuzz/fuzz_p2p.c; compiled with -DTENDER_FUZZ, absent
 * from the daemon): makes fd, one end of a connected stream socket pair, a
 * connection of p and starts its handshake. outbound 0: as if the listener
 * accepted it (counted as handshaking; the accept-time caps are not
 * applied); outbound 1: as if dialed, TCP connection up, with no dialer
 * behind it (the hello is sent at once). p owns fd from the call on, also
 * on failure. Returns 0, or TD_EIO if libuv refuses fd.
 */
int p2p_fuzz_adopt(struct p2p *p, int fd, int outbound);
#endif

#endif
