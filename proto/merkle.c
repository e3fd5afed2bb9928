/*
 * RFC 6962 Merkle trees over BLAKE2b-256 (see tenderd/merkle.h).
 */
#include <string.h>

#include <sodium.h>

#include "tenderd/merkle.h"

static void leaf_hash(uint8_t out[static TD_HASH_LEN], const uint8_t leaf[static TD_HASH_LEN])
{
	static const uint8_t prefix = 0x00;
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, TD_HASH_LEN);
	crypto_generichash_update(&st, &prefix, 1);
	crypto_generichash_update(&st, leaf, TD_HASH_LEN);
	crypto_generichash_final(&st, out, TD_HASH_LEN);
}

static void node_hash(uint8_t out[static TD_HASH_LEN], const uint8_t left[static TD_HASH_LEN],
		      const uint8_t right[static TD_HASH_LEN])
{
	static const uint8_t prefix = 0x01;
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, TD_HASH_LEN);
	crypto_generichash_update(&st, &prefix, 1);
	crypto_generichash_update(&st, left, TD_HASH_LEN);
	crypto_generichash_update(&st, right, TD_HASH_LEN);
	crypto_generichash_final(&st, out, TD_HASH_LEN);
}

/* The largest power of two below n (n > 1). */
static uint32_t split(uint32_t n)
{
	uint32_t k = 1;
	while (k < n - k)
		k <<= 1;
	return k;
}

/* The root of n >= 1 leaves. */
static void subtree(uint8_t out[static TD_HASH_LEN], const uint8_t (*leaves)[TD_HASH_LEN], uint32_t n)
{
	uint8_t l[TD_HASH_LEN], r[TD_HASH_LEN];
	uint32_t k;

	if (n == 1) {
		leaf_hash(out, leaves[0]);
		return;
	}
	k = split(n);
	subtree(l, leaves, k);
	subtree(r, leaves + k, n - k);
	node_hash(out, l, r);
}

void td_merkle_root(uint8_t out[static TD_HASH_LEN], const uint8_t (*leaves)[TD_HASH_LEN], uint32_t n)
{
	if (n == 0) {
		crypto_generichash(out, TD_HASH_LEN, NULL, 0, NULL, 0);
		return;
	}
	subtree(out, leaves, n);
}

uint32_t td_merkle_path(uint8_t (*path)[TD_HASH_LEN], const uint8_t (*leaves)[TD_HASH_LEN], uint32_t n, uint32_t index)
{
	uint8_t stack[TD_MERKLE_PATH_MAX][TD_HASH_LEN];
	uint32_t depth = 0;

	/* Walk down from the root, noting the sibling at each level; the path lists them leaf first. */
	while (n > 1 && depth < TD_MERKLE_PATH_MAX) {
		uint32_t k = split(n);
		if (index < k) {
			subtree(stack[depth++], leaves + k, n - k);
			n = k;
		} else {
			subtree(stack[depth++], leaves, k);
			leaves += k;
			index -= k;
			n -= k;
		}
	}
	for (uint32_t i = 0; i < depth; i++)
		memcpy(path[i], stack[depth - 1 - i], TD_HASH_LEN);
	return depth;
}

bool td_merkle_verify(const uint8_t root[static TD_HASH_LEN], const uint8_t leaf[static TD_HASH_LEN], uint32_t index,
		      uint32_t n, const uint8_t (*path)[TD_HASH_LEN], uint32_t len)
{
	uint8_t r[TD_HASH_LEN];
	uint32_t fn = index, sn;

	if (index >= n || len > TD_MERKLE_PATH_MAX)
		return false;
	sn = n - 1;
	leaf_hash(r, leaf);
	for (uint32_t i = 0; i < len; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			node_hash(r, path[i], r);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			node_hash(r, r, path[i]);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && sodium_memcmp(r, root, TD_HASH_LEN) == 0;
}
