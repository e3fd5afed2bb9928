/*
 * The overlay of a block being checked or applied (struct chain_overlay in
 * chain_int.h): the tenders its records touched so far, its accepted
 * records by id and by (ocid, release id), and the "N" count changes it
 * stages, each behind an htab keyed with the chain's random hash key. It
 * lives for one chain_validate or chain_apply call and owns everything it
 * holds but the records, which it borrows from the block.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain_int.h"

static uint32_t ov_hash(const struct chain_overlay *ov, const void *p, size_t n)
{
	return htab_hash(ov->hkey, p, n);
}

void chain_overlay_init(struct chain_overlay *ov, const struct chain *c, size_t n, bool checking)
{
	memset(ov, 0, sizeof(*ov));
	ov->hkey = c->hkey;
	ov->cap = n ? n : 1;
	ov->t = td_xmalloc(ov->cap * sizeof(*ov->t));
	htab_init(&ov->t_ix, n);
	htab_init(&ov->nd_ix, 16);
	if (checking) {
		ov->recs = td_xcalloc(n ? n : 1, sizeof(*ov->recs));
		htab_init(&ov->id_ix, n);
		htab_init(&ov->pair_ix, n);
	}
}

void chain_overlay_free(struct chain_overlay *ov)
{
	free(ov->t);
	free(ov->recs);
	free(ov->nd);
	htab_free(&ov->t_ix);
	htab_free(&ov->id_ix);
	htab_free(&ov->pair_ix);
	htab_free(&ov->nd_ix);
	memset(ov, 0, sizeof(*ov));
}

static bool eq_ocid(const void *ctx, uint32_t idx, const void *key)
{
	const struct chain_overlay *ov = ctx;

	return strcmp(ov->t[idx].ocid, key) == 0;
}

struct chain_pend *chain_overlay_find(const struct chain_overlay *ov, const char *ocid)
{
	const struct htab_slot *s = htab_find(&ov->t_ix, ov_hash(ov, ocid, strlen(ocid)), eq_ocid, ov, ocid);

	return s->idx1 ? &ov->t[s->idx1 - 1] : NULL;
}

struct chain_pend *chain_overlay_add(struct chain_overlay *ov, const char *ocid)
{
	const uint32_t h = ov_hash(ov, ocid, strlen(ocid));
	struct htab_slot *s = htab_find(&ov->t_ix, h, eq_ocid, ov, ocid);
	struct chain_pend *p;

	if (s->idx1)
		abort(); /* callers look first */
	if (ov->nt == ov->cap) {
		ov->cap *= 2;
		ov->t = td_xrealloc(ov->t, ov->cap * sizeof(*ov->t));
	}
	p = &ov->t[ov->nt];
	memset(p, 0, sizeof(*p));
	snprintf(p->ocid, sizeof(p->ocid), "%s", ocid);
	htab_put(&ov->t_ix, s, h, (uint32_t)ov->nt);
	ov->nt++;
	return p;
}

static bool eq_nd(const void *ctx, uint32_t idx, const void *key)
{
	const struct chain_overlay *ov = ctx;
	const struct ckey *k = key;

	return ov->nd[idx].k.n == k->n && memcmp(ov->nd[idx].k.b, k->b, k->n) == 0;
}

void chain_overlay_count(struct chain_overlay *ov, enum ckey_lix x, const struct ckey_tstate *t, int64_t d)
{
	struct ckey k;
	uint32_t h;
	struct htab_slot *s;

	ckey_lix_count_key(&k, x, ckey_lix_value(x, t));
	h = ov_hash(ov, k.b, k.n);
	s = htab_find(&ov->nd_ix, h, eq_nd, ov, &k);
	if (s->idx1) {
		ov->nd[s->idx1 - 1].d += d;
		return;
	}
	if (ov->nnd == ov->ndcap) {
		ov->ndcap = ov->ndcap ? 2 * ov->ndcap : 8;
		ov->nd = td_xrealloc(ov->nd, ov->ndcap * sizeof(*ov->nd));
	}
	ov->nd[ov->nnd].k = k;
	ov->nd[ov->nnd].d = d;
	htab_put(&ov->nd_ix, s, h, (uint32_t)ov->nnd);
	ov->nnd++;
}

static bool eq_id(const void *ctx, uint32_t idx, const void *key)
{
	const struct chain_overlay *ov = ctx;

	return memcmp(ov->recs[idx]->id, key, TD_HASH_LEN) == 0;
}

/* An (ocid, release id) pair as a key. */
struct pair {
	const char *ocid;
	const char *release_id;
};

static bool eq_pair(const void *ctx, uint32_t idx, const void *key)
{
	const struct chain_overlay *ov = ctx;
	const struct pair *k = key;

	return strcmp(ov->recs[idx]->ocid, k->ocid) == 0 && strcmp(ov->recs[idx]->release_id, k->release_id) == 0;
}

/* The hash of a pair: of the ocid, a NUL and the release id (each at most TD_ID_MAX bytes). */
static uint32_t pair_hash(const struct chain_overlay *ov, const struct pair *k)
{
	char buf[TD_OCID_MAX + 1 + TD_ID_MAX + 1];
	size_t a = strnlen(k->ocid, TD_OCID_MAX), b = strnlen(k->release_id, TD_ID_MAX);

	memcpy(buf, k->ocid, a);
	buf[a] = '\0';
	memcpy(buf + a + 1, k->release_id, b);
	return ov_hash(ov, buf, a + 1 + b);
}

bool chain_overlay_has_id(const struct chain_overlay *ov, const uint8_t id[static TD_HASH_LEN])
{
	if (!ov || !ov->recs)
		return false;
	return htab_find(&ov->id_ix, ov_hash(ov, id, TD_HASH_LEN), eq_id, ov, id)->idx1 != 0;
}

bool chain_overlay_has_pair(const struct chain_overlay *ov, const char *ocid, const char *release_id)
{
	const struct pair k = { ocid, release_id };

	if (!ov || !ov->recs)
		return false;
	return htab_find(&ov->pair_ix, pair_hash(ov, &k), eq_pair, ov, &k)->idx1 != 0;
}

static bool eq_rec_ocid(const void *ctx, uint32_t idx, const void *key)
{
	const struct chain_overlay *ov = ctx;

	return strcmp(ov->block_recs[idx]->ocid, key) == 0;
}

void chain_overlay_last_touch(struct chain_overlay *ov, struct td_record *const *recs, uint32_t n, bool *last)
{
	struct htab ix;
	uint32_t *latest = td_xcalloc(n ? n : 1, sizeof(*latest)); /* by first record of an ocid: its last */

	htab_init(&ix, n);
	ov->block_recs = recs;
	for (uint32_t i = 0; i < n; i++) {
		const char *ocid = recs[i]->ocid;
		const uint32_t h = ov_hash(ov, ocid, strlen(ocid));
		struct htab_slot *s = htab_find(&ix, h, eq_rec_ocid, ov, ocid);
		uint32_t first;
		if (s->idx1 == 0) {
			first = i;
			htab_put(&ix, s, h, i);
		} else {
			first = s->idx1 - 1;
			last[latest[first]] = false;
		}
		latest[first] = i;
		last[i] = true;
	}
	htab_free(&ix);
	free(latest);
}

void chain_overlay_accept(struct chain_overlay *ov, const struct td_record *rec)
{
	const struct pair k = { rec->ocid, rec->release_id };
	const uint32_t hi = ov_hash(ov, rec->id, TD_HASH_LEN), hp = pair_hash(ov, &k);
	const uint32_t idx = (uint32_t)ov->nrecs;
	struct htab_slot *s;

	ov->recs[ov->nrecs++] = rec;
	s = htab_find(&ov->id_ix, hi, eq_id, ov, rec->id);
	if (s->idx1 == 0)
		htab_put(&ov->id_ix, s, hi, idx);
	s = htab_find(&ov->pair_ix, hp, eq_pair, ov, &k);
	if (s->idx1 == 0)
		htab_put(&ov->pair_ix, s, hp, idx);
}
