/*
 * Unit tests for proto/merkle.c: RFC 6962 Merkle trees over BLAKE2b-256
 * (tenderd/merkle.h), the records root and evidence root of every block.
 *
 * The reference below is written from RFC 6962 section 2.1 as plainly as
 * possible (MTH and PATH by recursion over slices), independently of
 * proto/merkle.c; the roots must agree for every small tree. A few roots are
 * also pinned: they were computed outside tenderd (Python's hashlib.blake2b
 * with the same recursion) and must never drift, since they are in every
 * stored block header. Leaf i is BLAKE2b-256 of i as 4 little-endian bytes,
 * so all leaves differ.
 *
 * Inclusion paths: for every index of every tree of 1..33 leaves,
 * td_merkle_path must give the RFC's PATH and td_merkle_verify must accept
 * it, and refuse it after any single-bit change of the root, the leaf or a
 * path entry, for any other index, with an entry missing or added, and for
 * another tree size unless that size gives the very same path shape (an
 * inclusion proof does not commit to the tree size: the size comes from
 * elsewhere, here the block header's count, which the block hash binds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "tenderd/codec.h"
#include "tenderd/merkle.h"

#define N_MAX 33 /* trees of 1..N_MAX leaves are checked exhaustively */
#define N_LEAVES 1100

/* Pinned roots over leaves 0..n-1 (computed outside tenderd, see the top). */
static const struct {
	uint32_t n;
	const char *root;
} pinned[] = {
	{ 0, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8" }, /* H() */
	{ 1, "83c2570d0502725866fd9531934c3e2d5987ed0825768184aec4ba75b2a590d5" },
	{ 2, "c82eed9a5e9e9ff6e588e4c86bf4e525784dd5ff3238b12f240561d35d06224c" },
	{ 3, "de1d1ab9ecd4b4cf07e1049d4c7239559aab85165d0b5c0b8642e518d6d4e798" },
	{ 4, "091656a7857154c7a8eb47d4976b695e9a7d2a50b79a980c63a10d50cc00e557" },
	{ 5, "d44c662be9d50b009b54138a2dff4cbd440f7ba5a276bd6b57b5f7ae503a7282" },
	{ 7, "df494dbeef560e9bd84b46dfa8a87323904323dfb04cbd9a1cbce136a5c3f950" },
	{ 8, "fb4d8958b44313a99c6c323f1848ea7a8d6e520e0c81beff41ab7e0b8322688f" },
	{ 16, "543f09abe90c1f9da3cfcb6df11cd7c019287c59dcadc232fe0707d14c603fbd" },
	{ 17, "43d253a0626bcbaf67ce2e19d53d083c9eee54934f95bec897e30c635bb51f35" },
	{ 33, "0043db7401b0e4f2a8c1ac92ac375ed2d67e3f22fbf42b7c632ece29a2404cb0" },
};

static uint8_t leaves[N_LEAVES][TD_HASH_LEN];

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	for (uint32_t i = 0; i < N_LEAVES; i++) {
		uint8_t le[4] = { (uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16), (uint8_t)(i >> 24) };
		crypto_generichash(leaves[i], TD_HASH_LEN, le, sizeof(le), NULL, 0);
	}
	return 0;
}

#define LEAVES ((const uint8_t(*)[TD_HASH_LEN])leaves)

/* ---- the reference, from RFC 6962 section 2.1 ---- */

/* BLAKE2b-256 of prefix (if not negative) followed by a and b (each if not NULL). */
static void h(uint8_t out[static TD_HASH_LEN], int prefix, const uint8_t *a, const uint8_t *b)
{
	crypto_generichash_state st;
	uint8_t p = (uint8_t)prefix;
	crypto_generichash_init(&st, NULL, 0, TD_HASH_LEN);
	if (prefix >= 0)
		crypto_generichash_update(&st, &p, 1);
	if (a)
		crypto_generichash_update(&st, a, TD_HASH_LEN);
	if (b)
		crypto_generichash_update(&st, b, TD_HASH_LEN);
	crypto_generichash_final(&st, out, TD_HASH_LEN);
}

/* k: the largest power of two smaller than n (n > 1). */
static uint32_t ref_split(uint32_t n)
{
	uint32_t k = 1;
	while (2 * k < n)
		k *= 2;
	return k;
}

/*
 * MTH({})      = HASH()
 * MTH({d(0)})  = HASH(0x00 || d(0))
 * MTH(D[n])    = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
 */
static void ref_mth(uint8_t out[static TD_HASH_LEN], const uint8_t (*d)[TD_HASH_LEN], uint32_t n)
{
	if (n == 0) {
		h(out, -1, NULL, NULL);
		return;
	}
	if (n == 1) {
		h(out, 0x00, d[0], NULL);
		return;
	}
	uint32_t k = ref_split(n);
	uint8_t l[TD_HASH_LEN], r[TD_HASH_LEN];
	ref_mth(l, d, k);
	ref_mth(r, d + k, n - k);
	h(out, 0x01, l, r);
}

/*
 * PATH(m, {d(0)}) = {}
 * PATH(m, D[n])   = PATH(m, D[0:k]) : MTH(D[k:n])    for m < k
 * PATH(m, D[n])   = PATH(m - k, D[k:n]) : MTH(D[0:k]) for m >= k
 * Appends to path from *len on; the leaf's sibling comes first.
 */
static void ref_path(uint8_t (*path)[TD_HASH_LEN], uint32_t *len, uint32_t m, const uint8_t (*d)[TD_HASH_LEN],
		     uint32_t n)
{
	if (n == 1)
		return;
	uint32_t k = ref_split(n);
	if (m < k) {
		ref_path(path, len, m, d, k);
		ref_mth(path[(*len)++], d + k, n - k);
	} else {
		ref_path(path, len, m - k, d + k, n - k);
		ref_mth(path[(*len)++], d, k);
	}
}

/* The shape of PATH(m, D[n]): bit i set if entry i is a left sibling; *len entries. */
static uint64_t ref_shape(uint32_t m, uint32_t n, uint32_t *len)
{
	if (n == 1) {
		*len = 0;
		return 0;
	}
	uint32_t k = ref_split(n);
	uint64_t s;
	if (m < k) {
		s = ref_shape(m, k, len);
	} else {
		s = ref_shape(m - k, n - k, len);
		s |= 1ULL << *len;
	}
	(*len)++;
	return s;
}

static void expect_hex(const uint8_t hash[static TD_HASH_LEN], const char *hex)
{
	char got[2 * TD_HASH_LEN + 1];
	td_hex(got, hash, TD_HASH_LEN);
	assert_string_equal(got, hex);
}

/* ---- roots ---- */

static void test_roots_match_reference(void **state)
{
	(void)state;
	uint8_t got[TD_HASH_LEN], want[TD_HASH_LEN];
	for (uint32_t n = 0; n <= 17; n++) {
		td_merkle_root(got, LEAVES, n);
		ref_mth(want, LEAVES, n);
		if (memcmp(got, want, TD_HASH_LEN) != 0)
			print_error("root of %u leaves differs from RFC 6962's\n", n);
		assert_memory_equal(got, want, TD_HASH_LEN);
	}
	/* and a few larger trees, around powers of two */
	static const uint32_t sizes[] = { 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 1000, 1024, 1025 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		td_merkle_root(got, LEAVES, sizes[i]);
		ref_mth(want, LEAVES, sizes[i]);
		assert_memory_equal(got, want, TD_HASH_LEN);
	}
}

static void test_pinned_roots(void **state)
{
	(void)state;
	uint8_t root[TD_HASH_LEN];
	for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++) {
		td_merkle_root(root, LEAVES, pinned[i].n);
		expect_hex(root, pinned[i].root);
		ref_mth(root, LEAVES, pinned[i].n);
		expect_hex(root, pinned[i].root);
	}
	/* The root of no leaves reads none of them. */
	td_merkle_root(root, NULL, 0);
	expect_hex(root, pinned[0].root);
}

/* The prefixes at work: one leaf's root is not the leaf, two leaves' root is not the hash of their concatenation. */
static void test_domain_separation(void **state)
{
	(void)state;
	uint8_t root[TD_HASH_LEN], plain[TD_HASH_LEN], cat[2 * TD_HASH_LEN];
	td_merkle_root(root, LEAVES, 1);
	assert_memory_not_equal(root, leaves[0], TD_HASH_LEN);
	crypto_generichash(plain, TD_HASH_LEN, leaves[0], TD_HASH_LEN, NULL, 0);
	assert_memory_not_equal(root, plain, TD_HASH_LEN);
	td_merkle_root(root, LEAVES, 2);
	memcpy(cat, leaves[0], TD_HASH_LEN);
	memcpy(cat + TD_HASH_LEN, leaves[1], TD_HASH_LEN);
	crypto_generichash(plain, TD_HASH_LEN, cat, sizeof(cat), NULL, 0);
	assert_memory_not_equal(root, plain, TD_HASH_LEN);
	/* An inner node does not pass for a leaf: the root of 2 leaves is not the root of 1 leaf holding H(1|l0|l1). */
	uint8_t l0[TD_HASH_LEN], l1[TD_HASH_LEN], node[1][TD_HASH_LEN], other[TD_HASH_LEN];
	h(l0, 0x00, leaves[0], NULL);
	h(l1, 0x00, leaves[1], NULL);
	h(node[0], 0x01, l0, l1);
	assert_memory_equal(root, node[0], TD_HASH_LEN);
	td_merkle_root(other, (const uint8_t(*)[TD_HASH_LEN])node, 1);
	assert_memory_not_equal(other, root, TD_HASH_LEN);
	/* Order counts; a repeated leaf counts. */
	uint8_t swapped[2][TD_HASH_LEN];
	memcpy(swapped[0], leaves[1], TD_HASH_LEN);
	memcpy(swapped[1], leaves[0], TD_HASH_LEN);
	td_merkle_root(other, (const uint8_t(*)[TD_HASH_LEN])swapped, 2);
	assert_memory_not_equal(other, root, TD_HASH_LEN);
	uint8_t three[3][TD_HASH_LEN];
	memcpy(three, leaves, 2 * TD_HASH_LEN);
	memcpy(three[2], leaves[1], TD_HASH_LEN);
	td_merkle_root(other, (const uint8_t(*)[TD_HASH_LEN])three, 3);
	assert_memory_not_equal(other, root, TD_HASH_LEN);
}

/* ---- inclusion paths ---- */

/* True if td_merkle_verify accepts. */
static bool verifies(const uint8_t root[static TD_HASH_LEN], const uint8_t leaf[static TD_HASH_LEN], uint32_t index,
		     uint32_t n, const uint8_t (*path)[TD_HASH_LEN], uint32_t len)
{
	return td_merkle_verify(root, leaf, index, n, path, len);
}

static void test_paths(void **state)
{
	(void)state;
	uint8_t path[TD_MERKLE_PATH_MAX + 1][TD_HASH_LEN], want[TD_MERKLE_PATH_MAX][TD_HASH_LEN];
	uint8_t root[TD_HASH_LEN];
	for (uint32_t n = 1; n <= N_MAX; n++) {
		ref_mth(root, LEAVES, n);
		for (uint32_t m = 0; m < n; m++) {
			memset(path, 0xee, sizeof(path));
			uint32_t len = td_merkle_path(path, LEAVES, n, m), wlen = 0;
			ref_path(want, &wlen, m, LEAVES, n);
			if (len != wlen || memcmp(path, want, (size_t)len * TD_HASH_LEN) != 0)
				print_error("PATH(%u, D[%u]) differs from RFC 6962's\n", m, n);
			assert_int_equal(len, wlen);
			assert_memory_equal(path, want, (size_t)len * TD_HASH_LEN);
			/* nothing written past the path */
			for (size_t i = 0; i < TD_HASH_LEN; i++)
				assert_int_equal(path[len][i], 0xee);
			assert_true(verifies(root, leaves[m], m, n, (const uint8_t(*)[TD_HASH_LEN])path, len));
		}
	}
}

static void test_path_refusals(void **state)
{
	(void)state;
	uint8_t path[TD_MERKLE_PATH_MAX + 1][TD_HASH_LEN], root[TD_HASH_LEN], leaf[TD_HASH_LEN];
	const uint8_t(*p)[TD_HASH_LEN] = (const uint8_t(*)[TD_HASH_LEN])path;
	for (uint32_t n = 1; n <= N_MAX; n++) {
		ref_mth(root, LEAVES, n);
		for (uint32_t m = 0; m < n; m++) {
			uint32_t len = td_merkle_path(path, LEAVES, n, m);
			memcpy(leaf, leaves[m], TD_HASH_LEN);
			assert_true(verifies(root, leaf, m, n, p, len));
			/* every single bit of the root, the leaf and each path entry */
			for (size_t bit = 0; bit < 8 * TD_HASH_LEN; bit++) {
				const uint8_t mask = (uint8_t)(1u << (bit % 8));
				root[bit / 8] ^= mask;
				assert_false(verifies(root, leaf, m, n, p, len));
				root[bit / 8] ^= mask;
				leaf[bit / 8] ^= mask;
				assert_false(verifies(root, leaf, m, n, p, len));
				leaf[bit / 8] ^= mask;
				for (uint32_t e = 0; e < len; e++) {
					path[e][bit / 8] ^= mask;
					assert_false(verifies(root, leaf, m, n, p, len));
					path[e][bit / 8] ^= mask;
				}
			}
			/* every other index, in the tree and past it */
			for (uint32_t j = 0; j < n + 2; j++)
				if (j != m)
					assert_false(verifies(root, leaf, j, n, p, len));
			assert_false(verifies(root, leaf, UINT32_MAX, n, p, len));
			/* another leaf of the tree at this index */
			if (n > 1)
				assert_false(verifies(root, leaves[(m + 1) % n], m, n, p, len));
			/* an entry missing, an entry added (the root again, or zeros) */
			if (len > 0) {
				assert_false(verifies(root, leaf, m, n, p, len - 1));
				assert_false(verifies(root, leaf, m, n, p + 1, len - 1));
			}
			memcpy(path[len], root, TD_HASH_LEN);
			assert_false(verifies(root, leaf, m, n, p, len + 1));
			memset(path[len], 0, TD_HASH_LEN);
			assert_false(verifies(root, leaf, m, n, p, len + 1));
			/*
			 * Another tree size: refused unless its path for index m has
			 * the same shape (same length, siblings on the same sides), in
			 * which case the very same hashes are computed. n = 0 never.
			 */
			uint32_t slen;
			const uint64_t shape = ref_shape(m, n, &slen);
			assert_int_equal(slen, len);
			assert_false(verifies(root, leaf, m, 0, p, len));
			for (uint32_t n2 = m + 1; n2 <= 2 * N_MAX + 2; n2++) {
				if (n2 == n)
					continue;
				uint32_t len2;
				const bool same = ref_shape(m, n2, &len2) == shape && len2 == len;
				const bool ok = verifies(root, leaf, m, n2, p, len);
				if (ok != same)
					print_error("PATH(%u, D[%u]) %s for n = %u\n", m, n,
						    ok ? "accepted" : "refused", n2);
				assert_int_equal(ok, same);
			}
			assert_false(verifies(root, leaf, m, UINT32_MAX, p, len));
		}
	}
}

/* A tree of one leaf: the empty path proves it, anything else does not. */
static void test_single_leaf(void **state)
{
	(void)state;
	uint8_t root[TD_HASH_LEN], path[1][TD_HASH_LEN];
	td_merkle_root(root, LEAVES, 1);
	assert_int_equal(td_merkle_path(path, LEAVES, 1, 0), 0);
	assert_true(verifies(root, leaves[0], 0, 1, NULL, 0));
	memcpy(path[0], leaves[0], TD_HASH_LEN);
	assert_false(verifies(root, leaves[0], 0, 1, (const uint8_t(*)[TD_HASH_LEN])path, 1));
	/* the root of one leaf is no leaf of a one-leaf tree */
	assert_false(verifies(root, root, 0, 1, NULL, 0));
	/* nor does a leaf prove a tree of nothing */
	uint8_t empty[TD_HASH_LEN];
	td_merkle_root(empty, LEAVES, 0);
	assert_false(verifies(empty, leaves[0], 0, 0, NULL, 0));
}

/* Larger trees: some indexes, path lengths, and the length limit. */
static void test_large_trees(void **state)
{
	(void)state;
	uint8_t path[TD_MERKLE_PATH_MAX + 1][TD_HASH_LEN], want[TD_MERKLE_PATH_MAX][TD_HASH_LEN], root[TD_HASH_LEN];
	static const uint32_t sizes[] = { 64, 65, 127, 1000, 1024, 1025, N_LEAVES };
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		const uint32_t n = sizes[s];
		td_merkle_root(root, LEAVES, n);
		const uint32_t idx[] = { 0, 1, n / 2, n - 2, n - 1 };
		for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
			uint32_t len = td_merkle_path(path, LEAVES, n, idx[i]), wlen = 0;
			ref_path(want, &wlen, idx[i], LEAVES, n);
			assert_int_equal(len, wlen);
			assert_memory_equal(path, want, (size_t)len * TD_HASH_LEN);
			/* ceil(log2(n)) at most */
			assert_true(len >= 1 && (1ULL << len) < 2ULL * n);
			assert_true(
				verifies(root, leaves[idx[i]], idx[i], n, (const uint8_t(*)[TD_HASH_LEN])path, len));
			assert_false(verifies(root, leaves[idx[i]], idx[i] ^ 1, n, (const uint8_t(*)[TD_HASH_LEN])path,
					      len));
		}
	}
	/* A path longer than any tree can need is refused without reading it. */
	memset(path, 0, sizeof(path));
	assert_false(
		verifies(root, leaves[0], 0, UINT32_MAX, (const uint8_t(*)[TD_HASH_LEN])path, TD_MERKLE_PATH_MAX + 1));
	assert_false(verifies(root, leaves[0], 0, UINT32_MAX, (const uint8_t(*)[TD_HASH_LEN])path, UINT32_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roots_match_reference), cmocka_unit_test(test_pinned_roots),
		cmocka_unit_test(test_domain_separation),     cmocka_unit_test(test_paths),
		cmocka_unit_test(test_path_refusals),         cmocka_unit_test(test_single_leaf),
		cmocka_unit_test(test_large_trees),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
