/*
 * htab: an open-addressing hash index over entries kept in an array
 * elsewhere. A slot holds an entry's index + 1 (0: empty) and the entry's
 * 32-bit hash, so growing never rehashes keys and needs no callback; the
 * table is kept at most half full, with linear probing.
 *
 * The caller owns the entries and their keys: it hashes a key (htab_hash,
 * SipHash under a key of its own, so keys an attacker picks cannot make
 * probes long), and htab_find compares candidates through the caller's eq
 * function. Entries cannot be removed; the index lives as long as the
 * entries it points at. Not thread safe.
 */
#ifndef TENDERD_HTAB_H
#define TENDERD_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTAB_KEYBYTES 16 /* crypto_shorthash_KEYBYTES */

struct htab_slot {
	uint32_t idx1; /* the entry's index + 1; 0: empty */
	uint32_t h;    /* the entry's hash */
};

struct htab {
	struct htab_slot *s; /* owned */
	uint32_t mask;       /* slots - 1; slots a power of two */
	uint32_t n;          /* entries */
};

/* True if entry idx of ctx (the caller's array) has key. */
typedef bool (*htab_eq)(const void *ctx, uint32_t idx, const void *key);

/* An empty index with room for want entries before it grows (at least 16 slots). */
void htab_init(struct htab *t, size_t want);
/* Frees the slots and zeroes *t; a zeroed (never initialised) index is fine. */
void htab_free(struct htab *t);

/* The hash of p[0..n) under key (SipHash-2-4, the first 4 bytes big-endian). */
uint32_t htab_hash(const uint8_t key[static HTAB_KEYBYTES], const void *p, size_t n);

/*
 * The slot of the entry with hash h whose key equals key by eq(ctx, idx,
 * key) (its idx1 != 0), or else the empty slot where such an entry belongs
 * (idx1 == 0). The pointer is valid until the next htab_put.
 */
struct htab_slot *htab_find(const struct htab *t, uint32_t h, htab_eq eq, const void *ctx, const void *key);

/*
 * Fills the empty slot at (from htab_find, with no htab_put since) with
 * entry idx of hash h, growing the table past half full. Aborts beyond 2^31
 * slots.
 */
void htab_put(struct htab *t, struct htab_slot *at, uint32_t h, uint32_t idx);

#endif
