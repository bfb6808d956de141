/*
 * txn_fsm.c - the coordinator's transaction state machine as a table.
 *
 *   active     -> preparing   on commit     (no fn: closes to statements)
 *   active     -> aborting    on rollback / timeout / failed   (decide_abort)
 *   preparing  -> aborting    on vote_no    (decide_abort)
 *   preparing  -> committing  on votes_yes  (decide_commit: forces 'C')
 *   committing -> committed   on acked      (end_commit: writes 'E')
 *   aborting   -> aborted     on acked      (no fn: nothing durable for aborts)
 *
 * Invariants:
 *   - The state changes only here, only along a row, and only after the
 *     row's fn returned true; the change happens under t->mu with a check
 *     that nobody moved t meanwhile.
 *   - Every fn is safe to re-run: decide_abort keeps the first reason,
 *     decide_commit may append a second identical 'C' (replay dedups),
 *     end_commit may append a second 'E'. So recovery re-drives the table:
 *     a replayed 'C' without 'E' becomes a txn in committing that the
 *     resolver finishes with "acked".
 *   - Crash points before-decision-log / after-decision-log surround the
 *     forced 'C' append; before-end-record precedes the 'E' append (both
 *     the first phase-2 attempt and the resolver pass here).
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
} fsm_row;

static bool decide_abort(txn *t, const char *reason);
static bool decide_commit(txn *t, const char *reason);
static bool end_commit(txn *t, const char *reason);

static const fsm_row fsm_table[] = {
    {TXN_ACTIVE, TXN_PREPARING, EV_COMMIT, NULL},
    {TXN_ACTIVE, TXN_ABORTING, EV_ROLLBACK, decide_abort},
    {TXN_ACTIVE, TXN_ABORTING, EV_TIMEOUT, decide_abort},
    {TXN_ACTIVE, TXN_ABORTING, EV_FAILED, decide_abort},
    {TXN_PREPARING, TXN_ABORTING, EV_VOTE_NO, decide_abort},
    {TXN_PREPARING, TXN_COMMITTING, EV_VOTES_YES, decide_commit},
    {TXN_COMMITTING, TXN_COMMITTED, EV_ACKED, end_commit},
    {TXN_ABORTING, TXN_ABORTED, EV_ACKED, NULL},
};

static const char *const event_names[EV_COUNT] = {
    "commit", "rollback", "timeout", "failed", "vote_no", "votes_yes", "acked",
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
    if (first)
        t->reason = xstrdup(reason ? reason : "aborted");
    pthread_mutex_unlock(&t->mu);
    if (first)
        counter_inc(&g_metrics.aborted[t->protocol]);
    return true;
}

/* With at least one prepared branch, force the 'C' record: the decision
 * exists only once it is durable. With none (all read_only or no branch)
 * there is nothing to finish and nothing is logged. */
static bool decide_commit(txn *t, const char *reason)
{
    (void)reason;
    bool any_prepared = false;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nbranches; i++)
        if (t->branches[i].state == BR_PREPARED)
            any_prepared = true;
    bool logged = t->decision_logged;
    pthread_mutex_unlock(&t->mu);
    if (any_prepared && !logged) {
        fault_point("before-decision-log");
        if (!dlog_commit(t))
            return false;
        pthread_mutex_lock(&t->mu);
        t->decision_logged = true;
        pthread_mutex_unlock(&t->mu);
        fault_point("after-decision-log");
    } else if (!any_prepared) {
        dlog_note_committed(t->gid);
    }
    counter_inc(&g_metrics.committed[t->protocol]);
    return true;
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
    txlog_info(t->gid, NULL, ": %s -> %s (%s)", txn_state_name(from), txn_state_name(row->to),
               reason);
    txn_note_transition(t, from, row->to);
    return true;
}
