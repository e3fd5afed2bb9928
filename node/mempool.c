/*
 * Mempool (see mempool.h): a FIFO list of records plus an open hash table
 * keyed by 32-byte hashes, which holds both record ids and the places taken
 * in ocids' chains: the hash of an ocid with a pending tender, the previous
 * record named by a pending amendment, cancellation or award (so two records
 * for one place cannot both wait).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mempool.h"
#include "tenderd/json.h"
#include "tenderd/governance.h"
#include "tenderd/block.h"

struct entry {
	struct td_record *rec;
	uint64_t mem;                  /* what it holds in memory: its bytes, parsed release and bookkeeping */
	uint8_t ocid_key[TD_HASH_LEN]; /* its place: hash of the ocid (tenders) or the previous record */
	struct entry *prev, *next;     /* FIFO order */
	struct entry *hnext;           /* id hash chain */
};

struct okey {
	uint8_t key[TD_HASH_LEN];
	struct okey *hnext;
};

struct mempool {
	uint32_t max_records;
	uint64_t max_bytes;
	uint32_t count;
	uint64_t bytes; /* encoded */
	uint64_t mem;   /* held in memory, parsed JSON included; bounded by max_bytes */
	struct entry *head, *tail;
	size_t nbuckets;    /* power of two; doubles as records come, up to max_buckets */
	size_t max_buckets; /* for max_records: one bucket per record, within 1024..2^22 */
	struct entry **by_id;
	struct okey **by_ocid;
};

static size_t bucket(const struct mempool *mp, const uint8_t key[static TD_HASH_LEN])
{
	uint64_t h;
	memcpy(&h, key, sizeof(h));
	return (size_t)h & (mp->nbuckets - 1);
}

/* What a pending record holds in memory: its encoding, its parsed release, the record and the pool's entries. */
static uint64_t record_mem(const struct td_record *rec)
{
	return (uint64_t)rec->len + td_json_heap(rec->release) + sizeof(*rec) + sizeof(struct entry) +
	       sizeof(struct okey) + 64;
}

struct mempool *mempool_new(uint32_t max_records, uint64_t max_bytes)
{
	struct mempool *mp = td_xcalloc(1, sizeof(*mp));
	mp->max_records = max_records;
	mp->max_bytes = max_bytes;
	mp->nbuckets = 1024;
	mp->max_buckets = 1024;
	while (mp->max_buckets < (size_t)max_records && mp->max_buckets < (1u << 22))
		mp->max_buckets <<= 1;
	mp->by_id = td_xcalloc(mp->nbuckets, sizeof(*mp->by_id));
	mp->by_ocid = td_xcalloc(mp->nbuckets, sizeof(*mp->by_ocid));
	return mp;
}

void mempool_free(struct mempool *mp)
{
	if (!mp)
		return;
	for (struct entry *e = mp->head, *n; e; e = n) {
		n = e->next;
		td_record_free(e->rec);
		free(e);
	}
	for (size_t i = 0; i < mp->nbuckets; i++)
		for (struct okey *o = mp->by_ocid[i], *n; o; o = n) {
			n = o->hnext;
			free(o);
		}
	free(mp->by_id);
	free(mp->by_ocid);
	free(mp);
}

/* Doubles the buckets of both tables (a chain's order is of no consequence: keys are unique). */
static void grow(struct mempool *mp)
{
	size_t nold = mp->nbuckets;
	struct entry **old_id = mp->by_id;
	struct okey **old_ocid = mp->by_ocid;

	mp->nbuckets = 2 * nold;
	mp->by_id = td_xcalloc(mp->nbuckets, sizeof(*mp->by_id));
	mp->by_ocid = td_xcalloc(mp->nbuckets, sizeof(*mp->by_ocid));
	for (size_t i = 0; i < nold; i++) {
		for (struct entry *e = old_id[i], *n; e; e = n) {
			size_t b = bucket(mp, e->rec->id);
			n = e->hnext;
			e->hnext = mp->by_id[b];
			mp->by_id[b] = e;
		}
		for (struct okey *o = old_ocid[i], *n; o; o = n) {
			size_t b = bucket(mp, o->key);
			n = o->hnext;
			o->hnext = mp->by_ocid[b];
			mp->by_ocid[b] = o;
		}
	}
	free(old_id);
	free(old_ocid);
}

static struct entry *find(const struct mempool *mp, const uint8_t id[static TD_HASH_LEN])
{
	for (struct entry *e = mp->by_id[bucket(mp, id)]; e; e = e->hnext)
		if (memcmp(e->rec->id, id, TD_HASH_LEN) == 0)
			return e;
	return NULL;
}

static struct okey **find_ocid(const struct mempool *mp, const uint8_t key[static TD_HASH_LEN])
{
	struct okey **p = &mp->by_ocid[bucket(mp, key)];
	while (*p && memcmp((*p)->key, key, TD_HASH_LEN) != 0)
		p = &(*p)->hnext;
	return p;
}

bool mempool_has(const struct mempool *mp, const uint8_t id[static TD_HASH_LEN])
{
	return find(mp, id) != NULL;
}

struct td_record *mempool_get(const struct mempool *mp, const uint8_t id[static TD_HASH_LEN])
{
	struct entry *e = find(mp, id);
	return e ? e->rec : NULL;
}

uint32_t mempool_count(const struct mempool *mp)
{
	return mp->count;
}

uint64_t mempool_bytes(const struct mempool *mp)
{
	return mp->bytes;
}

uint64_t mempool_mem(const struct mempool *mp)
{
	return mp->mem;
}

/* True, with the message in err, if one more record holding mem bytes would pass a bound. */
static bool no_room(const struct mempool *mp, uint64_t mem, char *err, size_t errlen)
{
	if (mp->count < mp->max_records && mp->mem + mem <= mp->max_bytes)
		return false;
	snprintf(err, errlen, "mempool full (%u records, %llu bytes pending, %llu bytes in memory); try again shortly",
		 mp->count, (unsigned long long)mp->bytes, (unsigned long long)mp->mem);
	return true;
}

bool mempool_full(const struct mempool *mp, char *err, size_t errlen)
{
	return no_room(mp, mp->count ? mp->mem / mp->count : 0, err, errlen);
}

int mempool_add(struct mempool *mp, struct td_record *rec, char *err, size_t errlen)
{
	uint8_t okey[TD_HASH_LEN];

	if (find(mp, rec->id)) {
		snprintf(err, errlen, "record is already pending");
		return TD_EEXIST;
	}
	/*
	 * One pending record per place in an ocid's chain: the tender that opens
	 * it (keyed by the ocid), or the record after a given one (keyed by its
	 * prev, which no ocid's hash can equal).
	 */
	struct td_gov g;
	if (rec->kind == TD_KIND_TENDER) {
		td_hash(okey, (const uint8_t *)rec->ocid, strlen(rec->ocid));
	} else if (rec->kind == TD_KIND_GOV_APPROVAL && td_gov_parse(rec->release, rec->kind, &g, NULL, 0) == 0) {
		/* One pending approval per (proposal, validator). */
		uint8_t both[TD_HASH_LEN + TD_PUBKEY_LEN];
		memcpy(both, g.proposal, TD_HASH_LEN);
		memcpy(both + TD_HASH_LEN, rec->agency, TD_PUBKEY_LEN);
		td_hash(okey, both, sizeof(both));
	} else if (td_kind_is_gov(rec->kind)) {
		memcpy(okey, rec->id, TD_HASH_LEN);
	} else {
		memcpy(okey, rec->prev, TD_HASH_LEN);
	}
	if (*find_ocid(mp, okey)) {
		if (rec->kind == TD_KIND_GOV_APPROVAL)
			snprintf(err, errlen, "this validator's approval of that proposal is already pending");
		else if (rec->kind == TD_KIND_TENDER)
			snprintf(err, errlen, "a tender with ocid %s is already pending", rec->ocid);
		else
			snprintf(err, errlen,
				 "another release of tender %s is waiting to be committed; publish this one once it "
				 "is (tender.publish with wait, or tenderctl --wait)",
				 rec->ocid);
		return TD_EEXIST;
	}
	const uint64_t mem = record_mem(rec);
	if (no_room(mp, mem, err, errlen))
		return TD_EFULL;
	struct entry *e = td_xcalloc(1, sizeof(*e));
	e->rec = rec;
	e->mem = mem;
	{
		struct okey *o = td_xcalloc(1, sizeof(*o));
		memcpy(o->key, okey, TD_HASH_LEN);
		memcpy(e->ocid_key, okey, TD_HASH_LEN);
		size_t b = bucket(mp, okey);
		o->hnext = mp->by_ocid[b];
		mp->by_ocid[b] = o;
	}
	size_t b = bucket(mp, rec->id);
	e->hnext = mp->by_id[b];
	mp->by_id[b] = e;
	e->prev = mp->tail;
	if (mp->tail)
		mp->tail->next = e;
	else
		mp->head = e;
	mp->tail = e;
	mp->count++;
	mp->bytes += rec->len;
	mp->mem += mem;
	if (mp->count > mp->nbuckets && mp->nbuckets < mp->max_buckets)
		grow(mp);
	return 0;
}

uint32_t mempool_peek(const struct mempool *mp, struct td_record **out, uint32_t max, uint64_t max_bytes)
{
	uint32_t n = 0;
	uint64_t bytes = 0;
	for (struct entry *e = mp->head; e && n < max; e = e->next) {
		uint64_t cost = (uint64_t)e->rec->len + TD_BLOCK_ITEM_OVERHEAD;
		if (bytes + cost > max_bytes)
			break;
		bytes += cost;
		out[n++] = e->rec;
	}
	return n;
}

void mempool_remove(struct mempool *mp, const uint8_t id[static TD_HASH_LEN])
{
	struct entry **p = &mp->by_id[bucket(mp, id)];
	while (*p && memcmp((*p)->rec->id, id, TD_HASH_LEN) != 0)
		p = &(*p)->hnext;
	struct entry *e = *p;
	if (!e)
		return;
	*p = e->hnext;
	{
		struct okey **o = find_ocid(mp, e->ocid_key);
		struct okey *dead = *o;
		if (dead) {
			*o = dead->hnext;
			free(dead);
		}
	}
	if (e->prev)
		e->prev->next = e->next;
	else
		mp->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		mp->tail = e->prev;
	mp->count--;
	mp->bytes -= e->rec->len;
	mp->mem -= e->mem;
	td_record_free(e->rec);
	free(e);
}
