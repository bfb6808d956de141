/*
 * txn_fsm.c - the coordinator's transaction state machine as a table.
 *
 *   active        -> preparing     on commit     (no fn: closes to statements)
 *   active        -> aborting      on rollback / timeout / failed   (decide_abort)
 *   active        -> aborting      on heuristic_abort (heuristic_abort: forces 'H')
 *   preparing     -> aborting      on vote_no    (decide_abort)
 *   preparing     -> committing    on votes_yes  (decide_commit: forces 'C')
 *   preparing     -> precommitting on votes_yes_3pc (decide_precommit: forces 'P')
 *   precommitting -> committing    on precommitted  (decide_commit: forces 'C')
 *   precommitting -> aborting      on no_precommit  (decide_abort_precommitted:
 *                                  forces 'A'; recovery, or threepc.c step 6a:
 *                                  no ack and a refusal)
 *   precommitting -> aborting      on heuristic_abort (heuristic_abort; recovery, or a
 *                                  live transaction in threepc.c step 6b)
 *   committing    -> committed     on acked      (end_commit: writes 'E')
 *   committing    -> committing    on heuristic_commit (heuristic_commit: forces 'H')
 *   aborting      -> aborted       on acked      (end_abort: 'E' if a 'P' was logged)
 *   aborting      -> aborting      on heuristic_abort (heuristic_abort: forces 'H')
 *
 * Invariants:
 *   - The state changes only here, only along a row, and only after the
 *     row's fn returned true; the change happens under t->mu with a check
 *     that nobody moved t meanwhile.
 *   - Every fn is safe to re-run: decide_abort keeps the first reason,
 *     decide_commit may append a second identical 'C' (replay dedups),
 *     decide_precommit a second 'P', the heuristic fns a second 'H',
 *     end_commit / end_abort a second 'E'. So recovery re-drives the table:
 *     a replayed 'C' without 'E' becomes a txn in committing that the
 *     resolver finishes with "acked"; a replayed 'P' without 'C' one in
 *     precommitting that the resolver decides from the agents' states.
 *   - No row leaves a commit decision for an abort or the reverse (the
 *     heuristic rows out of committing/aborting stay there). Every row out
 *     of precommitting is taken by an op_mu holder (threepc.c's driver and
 *     recovery, heuristic.c), so a 'C' and an 'H' abort are never both
 *     written for one gid.
 *   - Crash points before-decision-log / after-decision-log surround the
 *     forced 'C' append (2PC and 3PC); 3pc-after-precommit-log follows the
 *     'P' append; before-end-record precedes the 'E' append of a commit
 *     (both the first phase-2 attempt and the resolver pass here).
 *   - t->decided_wall_ms is set by the fn that decides (the 'C'/'P' time,
 *     or now for aborts), for the in-doubt view's age.
 */
#include "txn_fsm.h"

#include <stdlib.h>

#include "coord_metrics.h"
#include "decision_log.h"
#include "fault.h"
#include "log.h"

typedef bool (*fsm_fn)(txn *t, const char *reason);

typedef struct {
    txn_state from;
    txn_state to;
    txn_event event;
    fsm_fn fn;
    bool routine; /* the commit path every transaction takes: logged at DEBUG */
} fsm_row;

static bool decide_abort(txn *t, const char *reason);
static bool decide_commit(txn *t, const char *reason);
static bool decide_precommit(txn *t, const char *reason);
static bool decide_abort_precommitted(txn *t, const char *reason);
static bool end_commit(txn *t, const char *reason);
static bool end_abort(txn *t, const char *reason);
static bool heuristic_commit(txn *t, const char *reason);
static bool heuristic_abort(txn *t, const char *reason);

static const fsm_row fsm_table[] = {
    {TXN_ACTIVE, TXN_PREPARING, EV_COMMIT, NULL, true},
    {TXN_ACTIVE, TXN_ABORTING, EV_ROLLBACK, decide_abort, false},
    {TXN_ACTIVE, TXN_ABORTING, EV_TIMEOUT, decide_abort, false},
    {TXN_ACTIVE, TXN_ABORTING, EV_FAILED, decide_abort, false},
    {TXN_ACTIVE, TXN_ABORTING, EV_HEURISTIC_ABORT, heuristic_abort, false},
    {TXN_PREPARING, TXN_ABORTING, EV_VOTE_NO, decide_abort, false},
    {TXN_PREPARING, TXN_COMMITTING, EV_VOTES_YES, decide_commit, true},
    {TXN_PREPARING, TXN_PRECOMMITTING, EV_VOTES_YES_3PC, decide_precommit, true},
    {TXN_PRECOMMITTING, TXN_COMMITTING, EV_PRECOMMITTED, decide_commit, true},
    {TXN_PRECOMMITTING, TXN_ABORTING, EV_NO_PRECOMMIT, decide_abort_precommitted, false},
    {TXN_PRECOMMITTING, TXN_ABORTING, EV_HEURISTIC_ABORT, heuristic_abort, false},
    {TXN_COMMITTING, TXN_COMMITTED, EV_ACKED, end_commit, true},
    {TXN_COMMITTING, TXN_COMMITTING, EV_HEURISTIC_COMMIT, heuristic_commit, false},
    {TXN_ABORTING, TXN_ABORTED, EV_ACKED, end_abort, false},
    {TXN_ABORTING, TXN_ABORTING, EV_HEURISTIC_ABORT, heuristic_abort, false},
};

static const char *const event_names[EV_COUNT] = {
    "commit",        "rollback",        "timeout",         "failed",
    "vote_no",       "votes_yes",       "acked",           "votes_yes_3pc",
    "precommitted",  "no_precommit",    "heuristic_commit", "heuristic_abort",
};

const char *txn_event_name(txn_event ev)
{
    return (unsigned)ev < EV_COUNT ? event_names[ev] : "?";
}

/* Record why (first reason wins) and count the decision once. */
static bool decide_abort(txn *t, const char *reason)
{
    pthread_mutex_lock(&t->mu);
    bool first = t->reason == NULL;
    if (first) {
        t->reason = xstrdup(reason ? reason : "aborted");
        t->decided_wall_ms = wall_ms();
    }
    pthread_mutex_unlock(&t->mu);
    if (first)
        counter_inc(&g_metrics.aborted[t->protocol]);
    return true;
}

/* With at least one prepared branch, force the 'C' record: the decision
 * exists only once it is durable. A 3PC transaction whose 'P' is in the log
 * forces 'C' too, even when every branch already committed on its own
 * (termination protocol, seen by recovery): otherwise the log would keep a
 * bare 'P' and, once the agents forget the branches, recovery could answer
 * aborted for a transaction that committed. With none of these (all
 * read_only or no branch) there is nothing to finish and nothing is logged. */
static bool decide_commit(txn *t, const char *reason)
{
    (void)reason;
    bool any_prepared = false;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nbranches; i++)
        if (branch_is_prepared(t->branches[i].state))
            any_prepared = true;
    bool must_log = any_prepared || t->precommit_logged;
    bool logged = t->decision_logged;
    pthread_mutex_unlock(&t->mu);
    if (must_log && !logged) {
        fault_point("before-decision-log");
        int64_t at = 0;
        if (!dlog_commit(t, &at))
            return false;
        pthread_mutex_lock(&t->mu);
        t->decision_logged = true;
        t->decided_wall_ms = at;
        pthread_mutex_unlock(&t->mu);
        fault_point("after-decision-log");
    } else if (!must_log) {
        dlog_note_committed(t->gid);
        pthread_mutex_lock(&t->mu);
        t->decided_wall_ms = wall_ms(); /* read-only: no record, nothing in doubt */
        pthread_mutex_unlock(&t->mu);
    }
    counter_inc(&g_metrics.committed[t->protocol]);
    return true;
}

/* 3PC: every vote yes. Force the 'P' record listing the prepared branches:
 * no PreCommit may be sent before it is durable. */
static bool decide_precommit(txn *t, const char *reason)
{
    (void)reason;
    if (t->protocol != PROTO_3PC) {
        txlog_error(t->gid, NULL, "pre-commit decision asked of a %s transaction",
                    txn_protocol_name(t->protocol));
        return false;
    }
    pthread_mutex_lock(&t->mu);
    bool logged = t->precommit_logged;
    pthread_mutex_unlock(&t->mu);
    if (!logged) {
        int64_t at = 0;
        if (!dlog_precommit(t, &at))
            return false;
        pthread_mutex_lock(&t->mu);
        t->precommit_logged = true;
        t->decided_wall_ms = at;
        pthread_mutex_unlock(&t->mu);
        fault_point("3pc-after-precommit-log");
    }
    return true;
}

/* 3PC with its 'P' logged, decided abort: force the 'A' record before any
 * ROLLBACK goes out or the client hears "aborted", so that a restart
 * finishes this abort instead of deciding again from the agents' states. */
static bool decide_abort_precommitted(txn *t, const char *reason)
{
    pthread_mutex_lock(&t->mu);
    bool logged = t->precommit_logged;
    pthread_mutex_unlock(&t->mu);
    if (logged && !dlog_precommit_abort(t))
        return false;
    return decide_abort(t, reason);
}

/* Force the operator's 'H' record and flag t: from now on its deliveries
 * give up the branches that do not acknowledge (agent.c). A failed append
 * stops the process, as for 'C', 'P' and 'A': the record may have reached
 * the disk all the same (a failed fdatasync leaves it written), and the
 * next start would then apply a decision this process had refused. */
static bool log_heuristic(txn *t, bool commit)
{
    bool applied;
    if (!dlog_heuristic(t->gid, commit, &applied))
        die("gid=%s heuristic decision record write failed: it may or may not be durable; "
            "stopping so that the log decides at restart",
            t->gid);
    /* Not applied: a heuristic commit that lost the race with the
     * resolver's 'E' (every branch acknowledged, nothing to give up). t then
     * carries no heuristic mark, as replay would not, and the operator is
     * told it was not recorded (heuristic.c). */
    if (!applied)
        return true;
    pthread_mutex_lock(&t->mu);
    t->heuristic = commit ? 'c' : 'a';
    pthread_mutex_unlock(&t->mu);
    counter_inc(commit ? &g_metrics.heuristic_commits : &g_metrics.heuristic_aborts);
    return true;
}

/* Operator: stop retrying the branches of a commit that do not answer. */
static bool heuristic_commit(txn *t, const char *reason)
{
    (void)reason;
    return log_heuristic(t, true);
}

/* Operator: abort (decided now if it was not), and stop retrying the
 * branches that do not answer the rollback. */
static bool heuristic_abort(txn *t, const char *reason)
{
    return log_heuristic(t, false) && decide_abort(t, reason);
}

/* An abort whose 'P' is in the log ends with 'E', so replay forgets it. */
static bool end_abort(txn *t, const char *reason)
{
    (void)reason;
    pthread_mutex_lock(&t->mu);
    bool logged = t->precommit_logged;
    pthread_mutex_unlock(&t->mu);
    return !logged || dlog_end(t->gid);
}

static bool end_commit(txn *t, const char *reason)
{
    (void)reason;
    pthread_mutex_lock(&t->mu);
    bool logged = t->decision_logged;
    pthread_mutex_unlock(&t->mu);
    if (!logged)
        return true;
    fault_point("before-end-record");
    return dlog_end(t->gid);
}

size_t txn_fsm_rows_matching(txn_state from, txn_event ev)
{
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(fsm_table); i++)
        n += fsm_table[i].from == from && fsm_table[i].event == ev;
    return n;
}

bool txn_fsm_advance(txn *t, txn_event ev, const char *reason)
{
    txn_state from = txn_state_get(t);
    const fsm_row *row = NULL;
    for (size_t i = 0; i < ARRAY_LEN(fsm_table); i++) {
        if (fsm_table[i].from == from && fsm_table[i].event == ev) {
            row = &fsm_table[i];
            break;
        }
    }
    if (!row) {
        txlog_warn(t->gid, NULL, ": no transition from %s on %s", txn_state_name(from),
                   txn_event_name(ev));
        return false;
    }
    if (row->fn && !row->fn(t, reason)) {
        txlog_error(t->gid, NULL, ": %s -> %s (%s) not taken: its step failed, stays %s",
                    txn_state_name(from), txn_state_name(row->to), reason, txn_state_name(from));
        return false;
    }
    pthread_mutex_lock(&t->mu);
    bool moved = txn_state_get(t) == from;
    if (moved)
        atomic_store(&t->state, row->to);
    pthread_mutex_unlock(&t->mu);
    if (!moved) {
        txlog_error(t->gid, NULL, ": %s -> %s (%s) lost a race: now %s", txn_state_name(from),
                    txn_state_name(row->to), reason, txn_state_name(txn_state_get(t)));
        return false;
    }
    log_msg(row->routine ? LOG_DEBUG : LOG_INFO, t->gid, NULL, ": %s -> %s (%s)",
            txn_state_name(from), txn_state_name(row->to), reason);
    txn_note_transition(t, from, row->to);
    return true;
}
