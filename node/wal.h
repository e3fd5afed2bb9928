/*
 * The consensus write-ahead log: an append-only file of the messages that
 * moved the consensus core at the height being decided, so that a restart
 * puts the core back where it was (round, step, lock, valid value, the
 * votes it counted, the blocks it can decide) instead of at round 0 with
 * nothing.
 *
 * File: an 8-byte header (WAL_MAGIC), then entries, each
 *   length (4 bytes, big-endian) | BLAKE2b-128 of length and payload | payload.
 * The payload is opaque here (the driver defines it). An entry is written
 * with one write(2); wal_sync() makes everything written so far durable.
 * A crash can leave a torn last entry: wal_replay() stops at the first entry
 * that is short or fails its checksum, cuts the file there and says so in
 * the log; that is never fatal. The driver empties the log with wal_reset()
 * after each committed height.
 */
#ifndef TENDERD_WAL_H
#define TENDERD_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAL_FILE "consensus.wal"
#define WAL_MAGIC "TDWAL02\n"            /* 02: ledger format 2 (TD_FORMAT_VERSION) */
#define WAL_ENTRY_MAX (9u * 1024 * 1024) /* one block with room for the entry's fields */

struct wal;

/*
 * Opens (creating, mode 0600) the log at path. A file that does not start
 * with WAL_MAGIC is refused (TD_ECORRUPT) unless it is shorter than the
 * header, which a crash during creation can leave. Returns 0 or an error
 * with a message.
 */
int wal_open(struct wal **out, const char *path, char *err, size_t errlen);
/* Closes the log; NULL does nothing. Nothing is synced here. */
void wal_close(struct wal *w);

/*
 * Calls fn on each intact entry in order (payload borrowed for the call);
 * fn returning non-zero stops the walk with that value. The walk works on a
 * copy of the file read up front, so fn may append or reset. A torn or
 * corrupt tail is cut off and logged. Returns 0, fn's value, or TD_EIO.
 */
int wal_replay(struct wal *w, int (*fn)(void *ctx, const uint8_t *p, size_t len), void *ctx, char *err, size_t errlen);

/* Appends one entry (len <= WAL_ENTRY_MAX). Returns 0, TD_EINVAL (too long) or TD_EIO. */
int wal_append(struct wal *w, const uint8_t *p, size_t len);
/* Makes every appended entry durable (fdatasync). Returns 0 or TD_EIO. */
int wal_sync(struct wal *w);
/* Drops every entry (not synced: a crash may bring old entries back, which replay must tolerate). */
int wal_reset(struct wal *w);

/* Bytes in the file, and bytes known durable (for the simulator's torn tails). */
uint64_t wal_size(const struct wal *w);
uint64_t wal_synced(const struct wal *w);
struct hist;
/* Seconds each sync of appended entries took (hist.h), for the metrics. */
const struct hist *wal_fsync_hist(const struct wal *w);
const char *wal_path(const struct wal *w);

#endif
