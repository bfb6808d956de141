/*
 * wal.h - append-only record log with CRC32C per record and group commit.
 *
 * On-disk record (little-endian):
 *   u32 len       payload length in bytes
 *   u32 crc       crc32c over (type byte, payload)
 *   u8  type      caller-defined, never 0
 *   u8  payload[len]
 * Invariants:
 *   - A record is acted upon only after wal_append(.., sync=true) returned
 *     true: it is then on stable storage (fdatasync).
 *   - Concurrent sync appends share one fdatasync (group commit): a writer
 *     that finds a flush in progress waits for it and the next flush covers
 *     its record.
 *   - Replay stops at the first incomplete or bad record if it is the tail
 *     (torn write; the file is truncated there and a WARN is logged). A bad
 *     record followed by further data is corruption: wal_open fails (but see
 *     wal_open_unforced for the hole a power cut can leave).
 */
#ifndef TX_WAL_H
#define TX_WAL_H

#include "util.h"

#define WAL_MAX_RECORD (1u << 20)

typedef struct wal wal;

/* Called once per valid record during wal_open, in order. payload is borrowed.
 * Return false to abort the open (wal_open then fails). */
typedef bool (*wal_replay_fn)(uint8_t type, const void *payload, size_t len, void *arg);

/* Open or create the log at path, replaying it through fn (may be NULL).
 * Returns NULL on error (logged). Caller owns the handle (wal_close). */
wal *wal_open(const char *path, wal_replay_fn fn, void *arg);
/* wal_open for a log that may be cut at an unwritten hole: a zeroed sector
 * followed by records is the trace of a power cut that wrote later sectors
 * before an earlier one; nothing from the hole on was acknowledged (an
 * acknowledged record's fdatasync covered every byte before it), so it is cut
 * as a torn tail instead of refusing to open (see wal.c, unwritten_hole).
 * `unforced` (a string of type bytes): the types never appended with
 * sync=true, so that the warning can say how many forced records (decisions
 * whose fdatasync never returned) were cut. NULL: a hole is corruption
 * (wal_open). */
wal *wal_open_unforced(const char *path, wal_replay_fn fn, void *arg, const char *unforced);

/* Append one record. sync=true: return only when it is durable (group commit).
 * sync=false: buffered into the file (write(2)), durable with a later sync. Thread-safe. */
bool wal_append(wal *w, uint8_t type, const void *payload, size_t len, bool sync) MUSTCHECK;

/* Replace the whole log with the given records (compaction): written to a temp
 * file, fsync'd, renamed, directory fsync'd. Appends wait while it runs.
 * types/payloads/lens are arrays of n. */
bool wal_rewrite(wal *w, size_t n, const uint8_t *types, const void *const *payloads,
                 const size_t *lens) MUSTCHECK;

uint64_t wal_bytes(wal *w);      /* current size of the log file */
uint64_t wal_syncs(wal *w);      /* fdatasync calls so far (for group-commit stats) */
void wal_close(wal *w);

#endif
