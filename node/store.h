/*
 * store: an ordered key-value store, LevelDB on disk or a named store in
 * memory for the simulator, behind one API.
 *
 * Keys and values are byte strings compared bytewise, so big-endian integers
 * in keys sort numerically. Writes go through a batch (store_batch) that is
 * applied atomically; with sync the write is on disk before store_write()
 * returns, so a crash leaves either the whole batch or none of it. Reads
 * return copies the caller frees. Iterators walk the keys that start with a
 * prefix, forward or in reverse, optionally from a given key; an iterator
 * sees the store as it was when the iterator was made (later writes do not
 * show), and the pointers it hands out stay valid until its next step or
 * its free.
 *
 * store_open() opens LevelDB; the store owns the handle and its options, and
 * one process may have a database open at a time (LevelDB's LOCK file
 * refuses a second opener). store_open_mem() opens a store held in a
 * store_mem_world (see below); everything else behaves the same on both,
 * and callers above the store do not know which one they use.
 */
#ifndef TENDERD_STORE_H
#define TENDERD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_batch;
struct store_iter;
struct store_mem_world;

/* LevelDB's flushes and compactions run this much nicer than the thread that first opens a store (at most 19). */
#define STORE_COMPACTION_NICE 5

/*
 * Opens the LevelDB database at path, creating it if missing, and its records
 * file (see below). Returns 0 and the store in *out, or TD_EIO with
 * LevelDB's or the system's message in err.
 */
int store_open(struct store **out, const char *path, char *err, size_t errlen);
/*
 * Opens the in-memory store called name in world w, creating it empty if the
 * world has none of that name, and returns 0 and the store in *out. Returns
 * TD_EIO with a message in err (and NULL in *out) if that store is already
 * open, as LevelDB refuses a second opener. The world must outlive the store.
 */
int store_open_mem(struct store **out, struct store_mem_world *w, const char *name, char *err, size_t errlen);
/*
 * Closes the store; NULL does nothing. Iterators must be freed first. An
 * in-memory store stays in its world, unsynced writes included, to be
 * reopened by name (or lost by store_mem_crash()).
 */
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
 * the log is fsync'ed before returning, which makes this write and every
 * earlier one durable; without, the write is visible to reads at once but a
 * crash may lose it. Returns 0 or TD_EIO with a message (never for a store
 * in memory).
 */
int store_write(struct store *s, const struct store_batch *b, bool sync, char *err, size_t errlen);

/*
 * The records file: an append-only file beside the keys (RECORDS_FILE in
 * LevelDB's directory; a byte array in a store in memory) for values written
 * once and never rewritten, so they skip LevelDB's compactions. A value there
 * is named by its offset and length, which callers keep under a key.
 * store_file_append() only buffers; the next store_write() writes the buffer
 * first and, with sync, makes the file durable before the batch, so a
 * durable batch never names bytes a crash can take. A crash can leave bytes
 * after the last ones a batch names: the owner of the store truncates them
 * at open with store_file_truncate().
 */
#define STORE_RECORDS_FILE "records.dat"
/* Appends len bytes; their offset in *off. Never fails: the write is store_write()'s. */
void store_file_append(struct store *s, const void *data, size_t len, uint64_t *off);
/* The file's length, buffered appends included. */
uint64_t store_file_end(const struct store *s);
/*
 * Reads len bytes at off into a malloc'd *out (the caller frees it).
 * Returns 0, TD_ECORRUPT if the range runs past the end, or TD_EIO.
 */
int store_file_read(const struct store *s, uint64_t off, size_t len, uint8_t **out);
/* Drops every byte after end (buffered ones too); TD_EIO with a message. */
int store_file_truncate(struct store *s, uint64_t end, char *err, size_t errlen);

/*
 * An iterator over the keys starting with prefix[0..plen) (plen 0: every key),
 * in ascending order, or descending with reverse. It starts at the first
 * (last) such key; store_iter_seek() moves the start. The prefix is copied.
 * It reads a snapshot of the store taken here: writes made after this call
 * are not seen, whatever the seeks.
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
 * error (see store_iter_error), a damaged table block included: the walk
 * stops there rather than stepping over the block's keys. The pointers stay
 * valid until the next call.
 */
bool store_iter_next(struct store_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val, size_t *vlen);
/* 0, or TD_EIO if the iteration stopped on a read error. */
int store_iter_error(const struct store_iter *it);
/* Frees the iterator; NULL does nothing. */
void store_iter_free(struct store_iter *it);

/*
 * In-memory stores, for the simulator.
 *
 * A world holds named stores; its owner (one simulation) creates it, opens
 * stores in it with store_open_mem() and frees it after closing them all. A
 * store outlives its handles, so a simulated process can close, crash and
 * reopen it by name. Each store has a live version, which reads and new
 * iterators see, and a durable one, which is what a crash leaves. As with
 * LevelDB, a synced write makes itself and every earlier write durable; an
 * unsynced write is visible at once and is lost by store_mem_crash() unless
 * a later synced write or store_mem_sync() came first. Closing a store
 * neither syncs nor loses anything.
 *
 * Nothing depends on time, addresses or randomness, so a seeded simulation
 * replays byte for byte; there is no background work. Order, prefixes, seeks
 * and snapshots are those of LevelDB (tests/test_store_mem.c runs both side
 * by side). A world and its stores belong to one thread.
 */

/* An empty world. */
struct store_mem_world *store_mem_world_new(void);
/*
 * Frees the world and every store in it; NULL does nothing. Every store
 * opened from it must be closed first (an open one aborts).
 */
void store_mem_world_free(struct store_mem_world *w);
/*
 * A power loss or kill -9 of the process owning store name: its contents go
 * back to what the last synced write (or store_mem_sync()) left. The store
 * must be closed, as its process is gone (an open one aborts). Returns 0, or
 * TD_ENOTFOUND if w has no store of that name.
 */
int store_mem_crash(struct store_mem_world *w, const char *name);
/*
 * A sync point: makes every write to store name so far durable, as a synced
 * write would (say, the kernel writing its cache back). The store may be
 * open. Returns 0, or TD_ENOTFOUND if w has no store of that name.
 */
int store_mem_sync(struct store_mem_world *w, const char *name);
/*
 * A count that changes whenever what reads of store name see may have
 * changed (a write, a delete, a crash); equal counts mean equal contents.
 * 0 if w has no store of that name. For callers that cache what they read.
 */
uint64_t store_mem_version(const struct store_mem_world *w, const char *name);

#endif
