/*
 * twopc.h - two-phase commit of one coordinator transaction, and the abort
 * path shared by rollback, timeout and failed transactions.
 */
#ifndef TXCOORD_TWOPC_H
#define TXCOORD_TWOPC_H

#include "httpc.h"
#include "txn.h"
#include "txn_fsm.h"

/* Drive active t to a decision and attempt phase 2 once (steps in twopc.c).
 * Caller holds t->op_mu. stmts: for the one-shot form, stmts[i] is the
 * statements array (borrowed) sent with branch i's PREPARE; NULL otherwise.
 * On return t is committing/committed or aborting/aborted. */
void twopc_commit(txn *t, json_t *const *stmts);

/* Shared with threepc.c. */

/* Step 1: active -> preparing; a rollback-only t is aborted instead (its
 * rollbacks delivered). True when t is now preparing. Caller holds op_mu. */
bool commit_begin(txn *t);

/* PREPARE every branch of t in parallel (twopc.c step 2). body_extra
 * (borrowed, may be NULL) is merged into every body ("protocol" is set from
 * t); stmts as for twopc_commit; each call gets timeout_ms, or t's timeout
 * when larger and statements travel with it. Sets the branches' states from
 * the votes. True when every vote was yes or read_only; otherwise reason
 * names the first failing participant. first_yes_us (may be NULL) gets the
 * earliest vote_timer_start_us of the yes votes (0 if none): 3PC's agents
 * start their uncertain timers as they vote. Caller holds op_mu. */
bool commit_prepare_all(txn *t, json_t *const *stmts, json_t *body_extra, long timeout_ms,
                        char *reason, size_t rsize, int64_t *first_yes_us);
/* For a yes vote: the now_us() time before which its agent's uncertain
 * timer cannot have started. The call was sent at or after c->start_us and
 * the agent says its timer started "timer_after_ms" after the call reached
 * it: their sum. Without that field (or with a value past the call's own
 * length), c->done_us, when the vote came back: later than the truth by
 * the answer's way back, which a slow answer makes unsafe. */
int64_t vote_timer_start_us(const httpc_call *c);
/* Branch i of t never began at its agent: every statement sent to it was
 * refused before running (b->begun unset) and no one-shot statements travel
 * with its PREPARE. It holds nothing there: commit_prepare_all counts it as
 * read_only without a call (the agent, not knowing the gid, would vote no),
 * and it is no 3PC peer. Caller holds op_mu. */
bool branch_never_begun(const txn *t, size_t i, json_t *const *stmts);
/* Step 4: the transition ev into committing, whose fn forces the 'C'. If
 * that fails the process stops: whether the record reached the disk is
 * unknown, and only the log at restart can say. */
void commit_decide(txn *t, txn_event ev, const char *reason);
/* Deliver t's decided outcome once (COMMIT when committing, ROLLBACK when
 * aborting), one branch at a time when sequential; all acknowledged ->
 * "acked", else hand t to the resolver. */
void commit_deliver_outcome(txn *t, bool sequential);

/* Decide abort of active t (ev: EV_ROLLBACK, EV_TIMEOUT or EV_FAILED) and
 * send ROLLBACK to its branches: now when wait (unacknowledged ones go to
 * the resolver), or all through the resolver when !wait (the tick must not
 * block on the network). Caller holds t->op_mu. false if t was not active. */
bool txn_abort(txn *t, txn_event ev, const char *reason, bool wait);

#endif
