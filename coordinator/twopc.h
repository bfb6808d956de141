/*
 * twopc.h - two-phase commit of one coordinator transaction, and the abort
 * path shared by rollback, timeout and failed transactions.
 */
#ifndef TXCOORD_TWOPC_H
#define TXCOORD_TWOPC_H

#include "txn.h"
#include "txn_fsm.h"

/* Drive active t to a decision and attempt phase 2 once (steps in twopc.c).
 * Caller holds t->op_mu. stmts: for the one-shot form, stmts[i] is the
 * statements array (borrowed) sent with branch i's PREPARE; NULL otherwise.
 * On return t is committing/committed or aborting/aborted. */
void twopc_commit(txn *t, json_t *const *stmts);

/* Decide abort of active t (ev: EV_ROLLBACK, EV_TIMEOUT or EV_FAILED) and
 * send ROLLBACK to its branches: now when wait (unacknowledged ones go to
 * the resolver), or all through the resolver when !wait (the tick must not
 * block on the network). Caller holds t->op_mu. false if t was not active. */
bool txn_abort(txn *t, txn_event ev, const char *reason, bool wait);

#endif
