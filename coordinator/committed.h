/*
 * committed.h - the set of gids known to be committed (every 'C' replayed or
 * written in this run), answering the outcome endpoint after eviction.
 *
 * Invariants: thread-safe; a gid never leaves the set while the process
 * runs; memory is at most one bit per gid of ours (per-epoch chunks of
 * 65536 seqs), and about 32 bytes per 65536 gids where they all committed,
 * 2-4 bytes per gid left out where few were (committed.c).
 */
#ifndef TXCOORD_COMMITTED_H
#define TXCOORD_COMMITTED_H

#include "util.h"

/* coord_id: ours; gids of another coordinator go to a (small) string set. */
void committed_init(const char *coord_id);
void committed_free(void);
void committed_add(const char *gid);
bool committed_has(const char *gid);
/* Bytes held, for metrics. */
size_t committed_bytes(void);
/* The highest epoch with a committed gid in the set (0: none). */
uint64_t committed_max_epoch(void);

/* Snapshot of the whole set as a sequence of compact JSON payloads, each
 * well under WAL_MAX_RECORD: per chunk of our gids {"epoch","full":[C1,C2]},
 * {"epoch","chunk","missing":[...]} or {"epoch","offset","hex":"<bitmap
 * bytes>"} (empty chunks skipped), {"gids":[...]} for foreign ones.
 * fn gets each payload (borrowed for the call). */
typedef void (*committed_chunk_fn)(const char *payload, size_t len, void *arg);
void committed_export(committed_chunk_fn fn, void *arg);
/* Merge one payload made by committed_export. false if malformed (no log). */
bool committed_import(const char *payload, size_t len) MUSTCHECK;

#endif
