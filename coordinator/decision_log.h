/*
 * decision_log.h - the coordinator's durable decisions, over common/wal.h.
 *
 * Records (payload compact JSON, docs/PROTOCOL.md):
 *   'C' commit decision, forced:  {"gid","protocol","branches":[{"participant","branch_gid"}],"at_ms"}
 *   'P' 3PC pre-commit decision (every vote yes), forced: as 'C', plus
 *       "threepc":{"cancommit_timeout_ms","precommit_timeout_ms","uncertain_timeout_ms","termination"}
 *   'A' abort decided after a 'P', forced: {"gid","at_ms"}
 *   'E' end, not forced:          {"gid"}   (ends a 'C', or a 'P' whose transaction aborted)
 *   'H' heuristic (operator) decision, forced: {"gid","outcome":"commit"|"abort","at_ms"}
 *   'R' commit with nothing prepared, not forced: {"gid"}
 *   'S' committed-set snapshot, written by compaction only
 * Also feeds the committed set (committed.h) that answers the outcome
 * endpoint, and compacts the log when it grows past a threshold.
 */
#ifndef TXCOORD_DECISION_LOG_H
#define TXCOORD_DECISION_LOG_H

#include <jansson.h>

#include "txn.h"

/* What replay left unfinished for one gid. */
typedef enum {
    DLOG_COMMIT,            /* 'C' without 'E' (nor heuristic commit): finish the commit */
    DLOG_PRECOMMIT,         /* 'P' without 'C' or 'E': ask the agents (3PC recovery) */
    DLOG_PRECOMMIT_ABORTED, /* 'P' then a heuristic abort, no 'E': finish the abort */
    DLOG_PRECOMMIT_DECIDED_ABORT, /* 'P' then 'A' (3PC aborted after its 'P'), no 'E':
                                   * finish the abort, as decided */
} dlog_pending_kind;

/* Called once per unfinished gid after replay. branches is borrowed:
 * [{"participant","branch_gid"}]; at_ms is the time of the 'C' or 'P'; tps
 * (borrowed, valid during the call) the transaction's 3PC settings from its
 * 'P' (the --3pc-* flags' defaults for a 'C' or an older 'P'). */
typedef void (*dlog_unfinished_fn)(const char *gid, dlog_pending_kind kind, txn_protocol proto,
                                   int64_t at_ms, json_t *branches, const threepc_settings *tps,
                                   void *arg);

/* Open (create) the log at path and replay it. compact_bytes: compact when
 * the file grows past this. false on error (logged). */
bool dlog_open(const char *path, uint64_t compact_bytes, dlog_unfinished_fn fn, void *arg)
    MUSTCHECK;
void dlog_close(void);

/* Force a 'C' record listing t's prepared (and pre-committed) branches,
 * then add t->gid to the committed set. The commit decision exists only
 * once this returned true. *at_ms gets the record's time. */
bool dlog_commit(txn *t, int64_t *at_ms) MUSTCHECK;
/* Force a 'P' record (3PC: every vote was yes) listing t's prepared branches. */
bool dlog_precommit(txn *t, int64_t *at_ms) MUSTCHECK;
/* Force an 'A' record: the 3PC transaction t, whose 'P' is logged, is
 * decided abort (no branch pre-committed and one refused, or recovery's
 * rule). Written before any ROLLBACK or answer, so that a restart finishes
 * the abort instead of deciding again from the agents (which could then
 * find a silent branch pre-committed and commit what the client was told
 * aborted). */
bool dlog_precommit_abort(txn *t) MUSTCHECK;
/* Force an 'H' record: an operator decided gid's outcome. A heuristic commit
 * (only ever for a gid with a 'C') ends its 'C' like an 'E' does; a
 * heuristic abort (only for a gid without 'C') turns a pending 'P' into an
 * abort to finish. The caller checked the contradiction rules. *applied:
 * false when the record changed nothing (a heuristic commit written after
 * the 'C' had ended: every branch acknowledged, nothing given up; or one the
 * log refused, logged), so the caller does not report it as taken. */
bool dlog_heuristic(const char *gid, bool commit, bool *applied) MUSTCHECK;
/* 'c' / 'a' when an 'H' for gid was written or replayed (since the last
 * compaction, which keeps only those of pending 'P's), else 0. */
char dlog_heuristic_outcome(const char *gid);
/* The highest epoch of any gid the log holds (records replayed by dlog_open,
 * and the committed set's snapshots); 0 for an empty log. */
uint64_t dlog_max_epoch(void);
/* Append an 'E' record (not forced). */
bool dlog_end(const char *gid) MUSTCHECK;
/* Record a commit that needed no decision (no branch voted yes): an 'R'
 * record, not forced, and the committed set. Nothing is prepared anywhere,
 * so nothing waits for it; it keeps a re-sent commit answering "committed"
 * after a restart. A failed append is logged and changes nothing else. */
void dlog_note_committed(const char *gid);

/* If the log is past its threshold, rewrite it with the 'S' snapshot, the
 * heuristic commits' 'H', and only the unfinished 'C' and 'P' (+ its 'A' and
 * 'H') records. Called from the tick; blocks appends for the rewrite only. */
void dlog_maybe_compact(void);
/* Force an 'N' record naming this run's epoch (once per start, before the
 * first gid is issued): a later start whose coordinator.state is older than
 * the log (restored alone from a backup) then moves past this epoch even if
 * it logged no decision (dlog_max_epoch). Compaction keeps it. false,
 * logged, if the append failed. */
bool dlog_note_epoch(const char *coord_id, uint64_t epoch) MUSTCHECK;

bool dlog_is_committed(const char *gid);
/* Committed, and every branch acknowledged its COMMIT: its 'C' ended with
 * 'E', or nothing was prepared ('R'). Not when an operator's heuristic
 * commit ended the 'C' (the branches it gave up never acknowledged), in
 * memory, after compactions and after restarts alike. */
bool dlog_commit_ended(const char *gid);
uint64_t dlog_syncs(void);
uint64_t dlog_bytes(void);
uint64_t dlog_commit_records(void);
uint64_t dlog_compactions(void);

#endif
