/*
 * An open-addressing hash index over the caller's entries (see htab.h).
 * Owns only its slot array.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tenderd/types.h"
#include "htab.h"

_Static_assert(HTAB_KEYBYTES == crypto_shorthash_KEYBYTES, "htab key size");

void htab_init(struct htab *t, size_t want)
{
	size_t slots = 16;

	while (slots < 2 * want)
		slots *= 2;
	t->s = td_xcalloc(slots, sizeof(*t->s));
	t->mask = (uint32_t)(slots - 1);
	t->n = 0;
}

void htab_free(struct htab *t)
{
	free(t->s);
	memset(t, 0, sizeof(*t));
}

uint32_t htab_hash(const uint8_t key[static HTAB_KEYBYTES], const void *p, size_t n)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint32_t h = 0;

	crypto_shorthash(out, p, n, key);
	for (int i = 0; i < 4; i++)
		h = h << 8 | out[i];
	return h;
}

struct htab_slot *htab_find(const struct htab *t, uint32_t h, htab_eq eq, const void *ctx, const void *key)
{
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		struct htab_slot *s = &t->s[i];
		if (s->idx1 == 0 || (s->h == h && eq(ctx, s->idx1 - 1, key)))
			return s;
	}
}

void htab_put(struct htab *t, struct htab_slot *at, uint32_t h, uint32_t idx)
{
	struct htab_slot *old = t->s;
	const uint32_t nold = t->mask + 1;

	at->idx1 = idx + 1;
	at->h = h;
	if (++t->n * 2 <= nold)
		return;
	if (nold > UINT32_MAX / 2)
		abort(); /* 2^31 entries: no caller holds that many */
	t->s = td_xcalloc((size_t)nold * 2, sizeof(*t->s));
	t->mask = nold * 2 - 1;
	for (uint32_t i = 0; i < nold; i++) {
		uint32_t j;
		if (old[i].idx1 == 0)
			continue;
		for (j = old[i].h & t->mask; t->s[j].idx1 != 0; j = (j + 1) & t->mask)
			;
		t->s[j] = old[i];
	}
	free(old);
}
