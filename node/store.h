/*
 * store: a thin layer over LevelDB's C API.
 *
 * Keys and values are byte strings compared bytewise, so big-endian integers
 * in keys sort numerically. Writes go through a batch (store_batch) that is
 * applied atomically; with sync the write is on disk before store_write()
 * returns, so a crash leaves either the whole batch or none of it. Reads
 * return copies the caller frees. Iterators walk the keys that start with a
 * prefix, forward or in reverse, optionally from a given key; the pointers an
 * iterator hands out stay valid until its next step or its free.
 *
 * The store owns the LevelDB handle and its options; one process may have a
 * store open at a time (LevelDB's LOCK file refuses a second opener).
 */
#ifndef TENDERD_STORE_H
#define TENDERD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_batch;
struct store_iter;

/*
 * Opens the LevelDB database at path, creating it if missing. Returns 0 and
 * the store in *out, or TD_EIO with LevelDB's message in err.
 */
int store_open(struct store **out, const char *path, char *err, size_t errlen);
/* Closes the database; NULL does nothing. Iterators must be freed first. */
void store_close(struct store *s);

/*
 * Reads key. Returns 0 with a malloc'd copy of the value in *val (the caller
 * frees it; never NULL, even for an empty value) and its length in *vlen,
 * TD_ENOTFOUND, or TD_EIO.
 */
int store_get(const struct store *s, const void *key, size_t klen, uint8_t **val, size_t *vlen);
/* True if key is present (false also on a read error). */
bool store_has(const struct store *s, const void *key, size_t klen);

/* A batch of puts and deletes, applied in order by store_write(). */
struct store_batch *store_batch_new(void);
/* Frees the batch; NULL does nothing. */
void store_batch_free(struct store_batch *b);
/* Empties the batch so it can be reused. */
void store_batch_clear(struct store_batch *b);
/* Adds a put (the bytes are copied). */
void store_batch_put(struct store_batch *b, const void *key, size_t klen, const void *val, size_t vlen);
/* Adds a delete. */
void store_batch_delete(struct store_batch *b, const void *key, size_t klen);
/* Operations added since creation or the last clear. */
size_t store_batch_count(const struct store_batch *b);

/*
 * Applies every operation of b atomically (b is left as it was). With sync
 * the log is fsync'ed before returning. Returns 0 or TD_EIO with a message.
 */
int store_write(struct store *s, const struct store_batch *b, bool sync, char *err, size_t errlen);

/*
 * An iterator over the keys starting with prefix[0..plen) (plen 0: every key),
 * in ascending order, or descending with reverse. It starts at the first
 * (last) such key; store_iter_seek() moves the start. The prefix is copied.
 */
struct store_iter *store_iter_new(const struct store *s, const void *prefix, size_t plen, bool reverse);
/*
 * Restarts the iteration at key: forward, at the first key >= key; reverse,
 * at the last key <= key. A key outside the prefix range leaves nothing or
 * the whole range, as the order says.
 */
void store_iter_seek(struct store_iter *it, const void *key, size_t klen);
/*
 * Steps to the next entry in the iterator's direction (the first call yields
 * the starting entry). Returns false at the end of the prefix range or on an
 * error (see store_iter_error). The pointers stay valid until the next call.
 */
bool store_iter_next(struct store_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val, size_t *vlen);
/* 0, or TD_EIO if the iteration stopped on a read error. */
int store_iter_error(const struct store_iter *it);
/* Frees the iterator; NULL does nothing. */
void store_iter_free(struct store_iter *it);

#endif
