/*
 * Merkle trees as in RFC 6962 (section 2.1), with BLAKE2b-256 for the hash
 * and 32-byte leaves (record or evidence ids):
 *   root of no leaves    H()
 *   root of one leaf d   H(0x00 | d)
 *   root of n > 1 leaves H(0x01 | root(first k) | root(rest)), k the largest
 *                        power of two below n.
 * The leaf and node prefixes keep a leaf from passing for an inner node. An
 * inclusion path lists the sibling roots from the leaf up, as in RFC 6962's
 * PATH(m, D[n]); td_merkle_verify checks one as RFC 9162 (2.1.3.2) does.
 */
#ifndef TENDERD_MERKLE_H
#define TENDERD_MERKLE_H

#include <stdbool.h>
#include <stdint.h>

#include "tenderd/types.h"

/* The longest inclusion path: a tree holds fewer than 2^32 leaves. */
#define TD_MERKLE_PATH_MAX 32

/* The root over n leaves. */
void td_merkle_root(uint8_t out[static TD_HASH_LEN], const uint8_t (*leaves)[TD_HASH_LEN], uint32_t n);
/*
 * Writes the inclusion path of leaf index (< n) into path (TD_MERKLE_PATH_MAX
 * entries) and returns its length.
 */
uint32_t td_merkle_path(uint8_t (*path)[TD_HASH_LEN], const uint8_t (*leaves)[TD_HASH_LEN], uint32_t n, uint32_t index);
/* True if path (len entries) proves that leaf is leaf index of a tree of n leaves with this root. */
bool td_merkle_verify(const uint8_t root[static TD_HASH_LEN], const uint8_t leaf[static TD_HASH_LEN], uint32_t index,
		      uint32_t n, const uint8_t (*path)[TD_HASH_LEN], uint32_t len) __attribute__((warn_unused_result));

#endif
