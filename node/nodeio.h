/*
 * The node's effects on the world, behind one narrow interface.
 *
 * The modules of a node (gossip, proposals, driver, sync, api) never touch a
 * socket, a clock or a timer themselves: they send, read the time and ask
 * for wake-ups through a struct node_io. The daemon (daemon.c) wires it to
 * the p2p transport, libuv timers and the system clock; a test or a
 * simulator wires it to fakes it controls. Peers are named by their
 * validator index: there is at most one connection per validator.
 */
#ifndef TENDERD_NODEIO_H
#define TENDERD_NODEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tenderd/codec.h"

struct store;

#define NODE_ALL UINT32_MAX       /* send: every connected peer */
#define NODE_TIMER_OFF UINT64_MAX /* timer: cancel */

/* The one-shot wake-ups a node asks for; each kind has one pending time at most. */
enum node_timer {
	NODE_TIMER_PROPOSE = 0, /* consensus timeouts, one per kind (cons_timeout order) */
	NODE_TIMER_PREVOTE = 1,
	NODE_TIMER_PRECOMMIT = 2,
	NODE_TIMER_VALUE = 3, /* a proposer with nothing pending stops waiting for records */
	NODE_TIMER_START = 4, /* start consensus on the next height */
	NODE_TIMER_TICK = 5,  /* STATUS, sync checks, re-sends */
	NODE_TIMER_WATCH = 6, /* tender.watch streams that are behind */
};
#define NODE_TIMERS 7

struct node_io {
	void *ctx;
	/* Queues msg for validator to's connection (NODE_ALL: every peer); no connection: dropped. */
	void (*send)(void *ctx, uint32_t to, const uint8_t *msg, size_t len);
	/* Drops the connection of validator peer, which misbehaved; reason is logged. */
	void (*disconnect)(void *ctx, uint32_t peer, const char *reason);
	/* True if validator v has a connection to us. */
	bool (*connected)(void *ctx, uint32_t v);
	/* Connected peers. */
	uint32_t (*peer_count)(void *ctx);
	/* Wall clock, milliseconds since the Unix epoch (block and record times). */
	uint64_t (*wall_ms)(void *ctx);
	/* Monotonic milliseconds (retries, deadlines). */
	uint64_t (*mono_ms)(void *ctx);
	/* Calls node_on_timer(kind) after delay_ms, replacing any pending time of that kind; NODE_TIMER_OFF cancels. */
	void (*timer)(void *ctx, enum node_timer kind, uint64_t delay_ms);
	/* True while a timer of that kind is pending. */
	bool (*timer_pending)(void *ctx, enum node_timer kind);
	/* The connections, for status: a JSON array (new reference). */
	json_t *(*peers_json)(void *ctx);
	/* Bytes sent to and received from peers so far. */
	void (*traffic)(void *ctx, uint64_t *sent, uint64_t *received);
	/* Opens the node's store at path (store.h: LevelDB in the daemon). Returns 0 or an error with a message. */
	int (*open_store)(void *ctx, struct store **out, const char *path, char *err, size_t errlen);
};

/*
 * Passes msg on to every connected validator of the n but skip_a and skip_b
 * (the one it came from, the one who signed it); NODE_ALL skips none.
 */
static inline void nio_relay(const struct node_io *io, uint32_t n, uint32_t skip_a, uint32_t skip_b, const uint8_t *msg,
			     size_t len)
{
	for (uint32_t v = 0; v < n; v++)
		if (v != skip_a && v != skip_b && io->connected(io->ctx, v))
			io->send(io->ctx, v, msg, len);
}

/*
 * Passes msg on to every connected peer of the n party slots (a validator
 * set's slot list) but skip_a and skip_b (slots; NODE_ALL skips none).
 */
static inline void nio_relay_slots(const struct node_io *io, const uint32_t *slots, uint32_t n, uint32_t skip_a,
				   uint32_t skip_b, const uint8_t *msg, size_t len)
{
	for (uint32_t i = 0; i < n; i++)
		if (slots[i] != skip_a && slots[i] != skip_b && io->connected(io->ctx, slots[i]))
			io->send(io->ctx, slots[i], msg, len);
}

/* Sends the bytes of b through io (to: a peer or NODE_ALL). */
static inline void nio_send(const struct node_io *io, uint32_t to, const struct td_buf *b)
{
	io->send(io->ctx, to, (const uint8_t *)b->sb.data, b->sb.size);
}

#endif
