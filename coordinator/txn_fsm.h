/*
 * txn_fsm.h - the coordinator's per-transaction state machine (PROTOCOL.md
 * "State machines"), as a table driven by one function.
 */
#ifndef TXCOORD_TXN_FSM_H
#define TXCOORD_TXN_FSM_H

#include "txn.h"

typedef enum {
    EV_COMMIT = 0, /* client asked to commit: no more statements */
    EV_ROLLBACK,   /* client asked to roll back */
    EV_TIMEOUT,    /* deadline passed while active */
    EV_FAILED,     /* commit asked of a rollback-only transaction */
    EV_VOTE_NO,    /* a branch voted no or did not answer its PREPARE */
    EV_VOTES_YES,  /* every branch voted yes or read_only */
    EV_ACKED,      /* every branch acknowledged the decided outcome */
    EV_VOTES_YES_3PC,    /* 3pc: every vote yes, at least one prepared: log 'P' */
    EV_PRECOMMITTED,     /* 3pc: PreCommit acks in (or timed out), or recovery found a
                            pre-committed/committed branch: log 'C' */
    EV_NO_PRECOMMIT,     /* 3pc: no branch pre-committed or committed and one refused (live,
                          * step 6a) or none could have (recovery): abort */
    EV_HEURISTIC_COMMIT, /* operator: give up unacknowledged branches of a commit */
    EV_HEURISTIC_ABORT,  /* operator: abort an undecided transaction, or give up the
                            unacknowledged branches of an abort */
    EV_COUNT
} txn_event;

/* Find the row {state, ev}, run its fn, and only if fn succeeded move t to
 * the row's target state, logging "<from> -> <to> (<reason>)". false when no
 * row matches (logged) or fn failed (logged by fn). The caller must be the
 * transaction's current driver (op_mu holder while active/preparing, the
 * phase-2 owner while committing/aborting). */
bool txn_fsm_advance(txn *t, txn_event ev, const char *reason) MUSTCHECK;

const char *txn_event_name(txn_event ev);
/* The table alone (tests): how many rows match {from, ev}. txn_fsm_advance
 * takes the first; more than one is a dead row. */
size_t txn_fsm_rows_matching(txn_state from, txn_event ev);

#endif
