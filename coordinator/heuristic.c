/*
 * heuristic.c - an operator's decision for an in-doubt transaction: the
 * contradiction rules, and applying a decision through the state machine.
 *
 * Rules (heuristic_rule), for a requested commit / abort:
 *   unknown     (not in memory, no 'C', no 'H')   404            / 404
 *   undecided   (active, preparing, precommitting) 409 wrong_state / abort it
 *   committing  ('C', branches unacknowledged)     give up silent / 409 contradicts
 *   committed   (finished, or known committed)      200 no-op      / 409 contradicts
 *   aborting    (rollbacks unacknowledged)          409 contradicts / give up silent
 *   aborted     (finished, or an 'H' abort known)   409 contradicts / 200 no-op
 * A heuristic commit needs a logged commit decision: the coordinator alone
 * decides commits, from votes. A heuristic abort of an undecided
 * transaction is an abort decision like a rollback (presumed abort holds:
 * no 'C' will ever be written for it); of a precommitting 3PC one it may
 * not be the outcome (a branch whose PreCommit landed commits on its own
 * timer): applied, as the operator asked, with a "warning" in the answer.
 *
 * Invariants:
 *   - Applied holding the transaction's op_mu: never concurrently with a
 *     client's statement or commit, nor with the 3PC recovery's decision
 *     (which takes op_mu too), so the state checked is the state changed.
 *   - The 'H' record is forced by the txn_fsm row's fn before the state
 *     changes.
 *   - Giving up is not done here: t->heuristic makes the next delivery
 *     (the resolver, kicked now) mark each branch that still does not
 *     acknowledge as heuristic instead of retrying it. Every branch gets
 *     that one more try. The transaction then ends as usual: 'E' after a
 *     commit, or after an abort that had a 'P'.
 */
#include "heuristic.h"

#include <stdio.h>
#include <string.h>

#include "decision_log.h"
#include "jsonutil.h"
#include "log.h"
#include "resolver.h"
#include "txn_fsm.h"

static const char *const knowledge_names[] = {
    "unknown", "undecided", "committing", "committed", "aborting", "aborted",
};

const char *gid_knowledge_name(gid_knowledge k)
{
    return (unsigned)k < ARRAY_LEN(knowledge_names) ? knowledge_names[k] : "?";
}

/* [knowledge][commit] */
static const heuristic_verdict rules[][2] = {
    [GK_UNKNOWN] = {HV_UNKNOWN, HV_UNKNOWN},
    [GK_UNDECIDED] = {HV_APPLY, HV_UNDECIDED},
    [GK_COMMITTING] = {HV_CONTRADICTS, HV_APPLY},
    [GK_COMMITTED] = {HV_CONTRADICTS, HV_NOOP},
    [GK_ABORTING] = {HV_APPLY, HV_CONTRADICTS},
    [GK_ABORTED] = {HV_NOOP, HV_CONTRADICTS},
};

heuristic_verdict heuristic_rule(gid_knowledge k, bool commit)
{
    if ((unsigned)k >= ARRAY_LEN(rules))
        return HV_UNKNOWN;
    return rules[k][commit ? 1 : 0];
}

static gid_knowledge knowledge_of(txn *t)
{
    switch (txn_state_get(t)) {
    case TXN_COMMITTING:
        return GK_COMMITTING;
    case TXN_COMMITTED:
        return GK_COMMITTED;
    case TXN_ABORTING:
        return GK_ABORTING;
    case TXN_ABORTED:
        return GK_ABORTED;
    default:
        return GK_UNDECIDED;
    }
}

/* Not in memory: what the log says. */
static gid_knowledge knowledge_of_gid(const char *gid)
{
    if (!gid_valid(gid))
        return GK_UNKNOWN;
    if (dlog_is_committed(gid))
        return GK_COMMITTED;
    if (dlog_heuristic_outcome(gid) == 'a')
        return GK_ABORTED;
    return GK_UNKNOWN;
}

static json_t *answer(const char *gid, const char *outcome, bool commit, bool recorded, txn *t)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "gid", gid, "outcome", outcome, "heuristic",
                          commit ? "commit" : "abort", "recorded", recorded);
    if (t)
        json_object_set_new(o, "transaction", txn_to_json(t));
    return o;
}

static unsigned refuse(heuristic_verdict v, gid_knowledge k, const char *gid, bool commit,
                       json_t **body)
{
    char msg[512];
    const char *want = commit ? "commit" : "abort";
    switch (v) {
    case HV_UNKNOWN:
        snprintf(msg, sizeof(msg), "no transaction %s here (no decision record either: if it is "
                 "ours it is aborted by presumed abort)", gid);
        *body = json_error_body("unknown_transaction", msg);
        return 404;
    case HV_UNDECIDED:
        snprintf(msg, sizeof(msg), "transaction %s is %s: a heuristic commit needs a logged "
                 "commit decision; resolve it with abort, or wait", gid, gid_knowledge_name(k));
        *body = json_error_body("wrong_state", msg);
        return 409;
    default:
        snprintf(msg, sizeof(msg), "heuristic %s of %s contradicts its logged decision (%s)",
                 want, gid, gid_knowledge_name(k));
        *body = json_error_body("contradicts_decision", msg);
        json_object_set_new(json_object_get(*body, "error"), "state",
                            json_string(gid_knowledge_name(k)));
        return 409;
    }
}

unsigned heuristic_resolve(const char *gid, bool commit, json_t **body)
{
    txn *t = txn_lookup(gid);
    if (!t) {
        gid_knowledge k = knowledge_of_gid(gid);
        heuristic_verdict v = heuristic_rule(k, commit);
        if (v == HV_NOOP) {
            *body = answer(gid, commit ? "committed" : "aborted", commit, false, NULL);
            return 200;
        }
        return refuse(v == HV_APPLY ? HV_UNKNOWN : v, k, gid, commit, body);
    }
    unsigned status = 200;
    pthread_mutex_lock(&t->op_mu); /* waits for a statement, commit or recovery step */
    gid_knowledge k = knowledge_of(t);
    heuristic_verdict v = heuristic_rule(k, commit);
    if (v == HV_APPLY && txn_heuristic(t) == (commit ? 'c' : 'a'))
        v = HV_NOOP; /* the same decision asked again: recorded once, counted once */
    txlog_warn(t->gid, NULL, "operator asks heuristic %s; transaction is %s: %s",
               commit ? "commit" : "abort", txn_state_name(txn_state_get(t)),
               v == HV_APPLY ? "applying" : v == HV_NOOP ? "nothing to do" : "refused");
    bool was_precommitting = txn_state_get(t) == TXN_PRECOMMITTING;
    if (v == HV_APPLY) {
        bool moved = txn_fsm_advance(t, commit ? EV_HEURISTIC_COMMIT : EV_HEURISTIC_ABORT,
                                     commit ? "heuristic commit by operator"
                                            : "heuristic abort by operator");
        /* Not moved: the resolver finished t meanwhile (then it ended as
         * asked anyway, and the 'H' may have been written before the state
         * check lost that race: t->heuristic says whether it was). A failed
         * 'H' append does not return: the process stops (txn_fsm.c). */
        txn_state st = txn_state_get(t);
        bool as_asked = commit ? st == TXN_COMMITTED : st == TXN_ABORTED;
        /* t's mark, not "moved": a heuristic commit can move t (committing
         * to committing) and still change nothing, its 'H' having come after
         * the 'E' (txn_fsm.c, log_heuristic) */
        bool recorded = txn_heuristic(t) == (commit ? 'c' : 'a');
        if (moved || as_asked) {
            /* One more delivery now; whatever stays silent is given up. */
            if (moved)
                resolver_kick(t);
            *body = answer(t->gid, commit ? "committed" : "aborted", commit, recorded, t);
            if (!commit && was_precommitting)
                /* 3PC: unlike presumed abort, a branch whose PreCommit
                 * landed (its ack lost) commits on its own timer */
                json_object_set_new(*body, "warning",
                                    json_string("3PC: a branch that pre-committed commits on its "
                                                "own timer whatever this abort says; check each "
                                                "participant's branch (GET /v1/branches/{gid} on "
                                                "its agent)"));
        } else {
            status = 500;
            /* not expected: the resolver ended t otherwise than asked */
            *body = json_error_body("internal", "the heuristic decision was not taken; see the "
                                                "coordinator log");
        }
    } else if (v == HV_NOOP) {
        *body = answer(t->gid, commit ? "committed" : "aborted", commit, false, t);
    } else {
        status = refuse(v, k, t->gid, commit, body);
    }
    pthread_mutex_unlock(&t->op_mu);
    txn_unref(t);
    return status;
}
