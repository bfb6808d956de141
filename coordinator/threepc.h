/*
 * threepc.h - three-phase commit of one coordinator transaction, and the
 * recovery of a 3PC transaction logged 'P' without 'C'.
 */
#ifndef TXCOORD_THREEPC_H
#define TXCOORD_THREEPC_H

#include "httpc.h"
#include "txn.h"

/* Drive active 3PC t to its outcome (steps in threepc.c). Caller holds
 * t->op_mu. stmts: as for twopc_commit. On return t is
 * committing/committed or aborting/aborted. */
void threepc_commit(txn *t, json_t *const *stmts);

/* What recovery does with a 'P' without 'C', from the agents' answers:
 * how many branches are committed or pre-committed, how many say they
 * never will be (aborted, active, failed, unknown), how many are uncertain
 * (voted yes, nothing more; "prepared" counts here) and how many did not
 * answer. */
typedef enum { RECOVERY_WAIT = 0, RECOVERY_COMMIT, RECOVERY_ABORT } threepc_recovery_decision;
threepc_recovery_decision threepc_recovery_rule(size_t n_precommitted, size_t n_refused,
                                                size_t n_uncertain, size_t n_unreachable);

/* Recovery steps for a transaction in precommitting, run by the resolver:
 * build one GET /v1/branches/{gid} per branch (bidx as delivery_build;
 * room >= t->nbranches), then read the answers and decide. Returns true
 * when t is no longer precommitting (decided here or by an operator): its
 * outcome is to be delivered now; false: ask again later. */
size_t threepc_recovery_build(txn *t, httpc_call *calls, size_t *bidx, size_t room);
bool threepc_recovery_apply(txn *t, httpc_call *calls, const size_t *bidx, size_t n);

#endif
