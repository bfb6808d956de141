/*
 * decision_log.h - the coordinator's durable decisions, over common/wal.h.
 *
 * Records (payload compact JSON, docs/PROTOCOL.md):
 *   'C' commit decision, forced:  {"gid","protocol","branches":[{"participant","branch_gid"}],"at_ms"}
 *   'E' end, not forced:          {"gid"}
 * Also feeds the committed set (committed.h) that answers the outcome
 * endpoint, and compacts the log when it grows past a threshold.
 */
#ifndef TXCOORD_DECISION_LOG_H
#define TXCOORD_DECISION_LOG_H

#include <jansson.h>

#include "txn.h"

/* Called once per 'C' record without a later 'E', after replay. branches
 * is borrowed: [{"participant","branch_gid"}]. */
typedef void (*dlog_unfinished_fn)(const char *gid, txn_protocol proto, int64_t at_ms,
                                   json_t *branches, void *arg);

/* Open (create) the log at path and replay it. compact_bytes: compact when
 * the file grows past this. false on error (logged). */
bool dlog_open(const char *path, uint64_t compact_bytes, dlog_unfinished_fn fn, void *arg)
    MUSTCHECK;
void dlog_close(void);

/* Force a 'C' record listing t's prepared branches, then add t->gid to the
 * committed set. The commit decision exists only once this returned true. */
bool dlog_commit(txn *t) MUSTCHECK;
/* Append an 'E' record (not forced). */
bool dlog_end(const char *gid) MUSTCHECK;
/* Remember a commit that needed no record (no branch voted yes): nothing is
 * prepared anywhere, so after a restart presumed abort is harmless; within
 * this run the outcome endpoint still says "committed". */
void dlog_note_committed(const char *gid);

/* If the log is past its threshold, rewrite it with only the unfinished
 * 'C' records. Called from the tick; blocks appends for the rewrite only. */
void dlog_maybe_compact(void);

bool dlog_is_committed(const char *gid);
uint64_t dlog_syncs(void);
uint64_t dlog_bytes(void);
uint64_t dlog_commit_records(void);
uint64_t dlog_compactions(void);

#endif
