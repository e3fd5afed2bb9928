/*
 * The mempool: verified records waiting for a block, in arrival order.
 *
 * A record enters once (deduplicated by record id; a second tender for an
 * ocid already pending is refused), is bounded by count and by the memory
 * its records hold, parsed JSON included (full: TD_EFULL, never a silent
 * drop), and leaves only through mempool_remove:
 * when a block holding it commits (decided here or applied from sync), or
 * when the chain refuses it alone in a block, so it can never commit (the
 * node then tells the publisher's waiters why).
 */
#ifndef TENDERD_MEMPOOL_H
#define TENDERD_MEMPOOL_H

#include "tenderd/record.h"

struct mempool;

struct mempool *mempool_new(uint32_t max_records, uint64_t max_bytes);
/* Frees the pool and every record in it; NULL does nothing. */
void mempool_free(struct mempool *mp);

/*
 * Adds rec, taking ownership on success. Returns 0, TD_EEXIST (same record
 * id pending, a tender for an ocid with a tender pending, or a record naming
 * the same previous record as one pending) or TD_EFULL,
 * with a message in err; on failure the caller still owns rec.
 */
int mempool_add(struct mempool *mp, struct td_record *rec, char *err, size_t errlen);
/* True if a record with this id is pending. */
bool mempool_has(const struct mempool *mp, const uint8_t id[static TD_HASH_LEN]);
/* The pending record with this id, or NULL (borrowed). */
struct td_record *mempool_get(const struct mempool *mp, const uint8_t id[static TD_HASH_LEN]);
uint32_t mempool_count(const struct mempool *mp);
/* Encoded bytes of the pending records. */
uint64_t mempool_bytes(const struct mempool *mp);
/*
 * What the pending records hold in memory: encoding, parsed release
 * (td_json_heap) and bookkeeping. max_bytes bounds this, not the encoding.
 */
uint64_t mempool_mem(const struct mempool *mp);
/*
 * True, with mempool_add's message in err, when a record of the pending
 * records' average size would not fit: lets a publisher be turned away
 * before its record is built and signed (mempool_add still decides).
 */
bool mempool_full(const struct mempool *mp, char *err, size_t errlen);

/*
 * Copies into out (room for max) the oldest pending records that fit
 * max_bytes in total, counting TD_BLOCK_ITEM_OVERHEAD per record (what a
 * block's encoding adds), without removing them; returns how many. The
 * pointers are borrowed and valid until the records leave the pool.
 */
uint32_t mempool_peek(const struct mempool *mp, struct td_record **out, uint32_t max, uint64_t max_bytes);

/* Removes and frees the record with this id if pending (it was committed or refused). */
void mempool_remove(struct mempool *mp, const uint8_t id[static TD_HASH_LEN]);

#endif
