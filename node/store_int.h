/*
 * store_int: what store.c asks of the in-memory backend in store_mem.c.
 * Nothing outside those two files includes it.
 *
 * A store_mem_db is one named store of a world; store.c keeps a pointer to
 * it in an open struct store. A store_mem_cursor walks a snapshot of one
 * with LevelDB's iterator steps (seek, seek to last, next, prev), so the
 * prefix and direction logic of store.c runs unchanged over either backend.
 */
#ifndef TENDERD_STORE_INT_H
#define TENDERD_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct store_mem_db;
struct store_mem_cursor;

/*
 * Finds or creates store name in w and marks it open. Returns 0 and it in
 * *out, or TD_EIO with a message in err if it is open already.
 */
int store_mem_attach(struct store_mem_db **out, struct store_mem_world *w, const char *name, char *err, size_t errlen);
/* Marks db closed; it stays in its world. Aborts if a cursor is still live. */
void store_mem_detach(struct store_mem_db *db);

/* As store_get(): a malloc'd copy of the value, or TD_ENOTFOUND. */
int store_mem_get(const struct store_mem_db *db, const void *key, size_t klen, uint8_t **val, size_t *vlen);
/* One put or delete of a write, visible at once; the bytes are copied. */
void store_mem_put(struct store_mem_db *db, const void *key, size_t klen, const void *val, size_t vlen);
void store_mem_delete(struct store_mem_db *db, const void *key, size_t klen);
/* Ends a write: with sync, everything written so far becomes durable. */
void store_mem_written(struct store_mem_db *db, bool sync);

/* The records file of db (see store.h): appends are visible at once, durable with the next synced write. */
void store_mem_file_append(struct store_mem_db *db, const void *data, size_t len, uint64_t *off);
uint64_t store_mem_file_end(const struct store_mem_db *db);
int store_mem_file_read(const struct store_mem_db *db, uint64_t off, size_t len, uint8_t **out);
void store_mem_file_truncate(struct store_mem_db *db, uint64_t end);

/*
 * A cursor over a snapshot of db's live version, not yet positioned (not
 * valid). It counts against db until freed; NULL frees nothing.
 */
struct store_mem_cursor *store_mem_cursor_new(struct store_mem_db *db);
void store_mem_cursor_free(struct store_mem_cursor *c);
/* Positions c at the first key >= key, or makes it not valid if none. */
void store_mem_cursor_seek(struct store_mem_cursor *c, const void *key, size_t klen);
/* Positions c at the last key, or makes it not valid if the store is empty. */
void store_mem_cursor_seek_last(struct store_mem_cursor *c);
bool store_mem_cursor_valid(const struct store_mem_cursor *c);
/* Steps a valid cursor to the next (previous) key; past the end it is not valid. */
void store_mem_cursor_next(struct store_mem_cursor *c);
void store_mem_cursor_prev(struct store_mem_cursor *c);
/* The key and value under a valid cursor, owned by its snapshot. */
const uint8_t *store_mem_cursor_key(const struct store_mem_cursor *c, size_t *n);
const uint8_t *store_mem_cursor_value(const struct store_mem_cursor *c, size_t *n);

#endif
