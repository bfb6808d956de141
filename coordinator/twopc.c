/*
 * twopc.c - the two-phase commit protocol for one transaction.
 *
 * twopc_commit() runs with the transaction's op_mu held (one commit per
 * transaction at a time; other transactions are not affected):
 *
 *  1. active -> preparing. From here statements get 409 wrong_state.
 *  2. PREPARE every branch, all in parallel (one-shot form: the branch's
 *     statements travel in the same call, marked running so that a
 *     rollback asked for meanwhile has them cancelled: a no vote). Vote yes -> prepared,
 *     read_only -> done, no / non-200 -> failed, no answer -> unknown.
 *     A branch that never began at its agent (its statements were all
 *     refused before running: branch_never_begun) is read_only without a
 *     call.
 *  3. Any branch not yes/read_only: preparing -> aborting (reason names the
 *     participant and sqlstate). ROLLBACK to every branch that may hold
 *     work (not read_only), in parallel, best effort; unacknowledged ones
 *     go to the resolver; all acknowledged: aborting -> aborted. Nothing is
 *     logged: no 'C' record means abort.
 *  4. All yes/read_only: preparing -> committing. If any branch voted yes,
 *     the 'C' record is forced first (crash points before-decision-log and
 *     after-decision-log around it); the commit is decided only once the
 *     append returned. If it fails the process stops: whether the record
 *     reached the disk is unknown, and only the log at restart can say.
 *  5. COMMIT every prepared branch in parallel (one at a time when the
 *     after-first-commit crash point is armed, crashing after the first
 *     answer was processed).
 *  6. All acknowledged: committing -> committed, writing 'E' (not forced;
 *     crash point before-end-record). Otherwise the resolver re-sends and
 *     does it later. The client gets "committed" now either way: after 4
 *     the outcome cannot change.
 *
 * Steps 2 and 5-6 are shared with threepc.c (commit_prepare_all,
 * commit_deliver_outcome).
 *
 * A crash (coordinator process dies) between steps means:
 *  - before 2 / during 2 / between 2 and 4: no 'C'. Branches that were
 *    prepared stay prepared until their agent's recovery sweep asks
 *    /v1/outcomes: the gid has our coord_id and an older epoch and no 'C',
 *    so the answer is aborted (presumed abort) and the agent rolls back.
 *    Active branches are the agents' to roll back.
 *  - during 4: the 'C' write is either durable or not; both are
 *    consistent, as no COMMIT was sent yet.
 *  - between 4 and 5 (after-decision-log): replay finds 'C' without 'E',
 *    the resolver sends COMMIT to every branch; agents asking meanwhile
 *    hear "committed".
 *  - between 5 and 6 (after-first-commit): the same; branches already
 *    committed answer the re-sent COMMIT as done (42704 at the agent).
 *  - after 6 but before 'E' reached the disk (before-end-record): COMMITs
 *    are re-sent once at restart, all answered as done, then 'E' written.
 */
#include "twopc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "coord.h"
#include "coord_metrics.h"
#include "fault.h"
#include "jsonutil.h"
#include "log.h"
#include "resolver.h"

#define RETRY_FIRST_MS 200

/* Steps 5-6 (and 3's rollbacks): deliver the decided outcome once; hand
 * whatever is not acknowledged to the resolver. */
void commit_deliver_outcome(txn *t, bool sequential)
{
    size_t room = t->nbranches;
    httpc_call *calls = xcalloc(room ? room : 1, sizeof(*calls));
    size_t *bidx = xcalloc(room ? room : 1, sizeof(*bidx));
    size_t n = delivery_build(t, calls, bidx, room);
    size_t failed = 0;
    if (sequential && txn_state_get(t) == TXN_COMMITTING) {
        for (size_t i = 0; i < n; i++) {
            (void)httpc_request(&calls[i]); /* status read by delivery_apply */
            failed += delivery_apply(t, &calls[i], &bidx[i], 1, 0);
            if (i == 0)
                fault_point("after-first-commit");
        }
    } else if (n > 0) {
        (void)httpc_perform(calls, n);
        failed = delivery_apply(t, calls, bidx, n, 0);
    }
    for (size_t i = 0; i < n; i++)
        agent_call_free(&calls[i]);
    free(calls);
    free(bidx);

    if (failed == 0 && delivery_done(t) &&
        txn_fsm_advance(t, EV_ACKED, "all branches acknowledged"))
        return;
    resolver_submit(t, RETRY_FIRST_MS);
}

/* Step 2. Returns true when every branch voted yes or read_only; otherwise
 * reason names the first failing participant. */
bool branch_never_begun(const txn *t, size_t i, json_t *const *stmts)
{
    const branch *b = &t->branches[i];
    return b->state == BR_ACTIVE && !b->begun && !(stmts && stmts[i]);
}

int64_t vote_timer_start_us(const httpc_call *c)
{
    json_t *after = json_object_get(c->response, "timer_after_ms");
    if (json_is_integer(after) && json_integer_value(after) >= 0 &&
        json_integer_value(after) <= (c->done_us - c->start_us) / 1000)
        return c->start_us + (int64_t)json_integer_value(after) * 1000;
    return c->done_us; /* an agent that does not say: when its vote came */
}

bool commit_prepare_all(txn *t, json_t *const *stmts, json_t *body_extra, long timeout_ms,
                        char *reason, size_t rsize, int64_t *first_yes_us)
{
    int64_t first_yes = 0;
    size_t nb = t->nbranches, n = 0, nyes = 0, nro = 0;
    httpc_call *calls = xcalloc(nb ? nb : 1, sizeof(*calls));
    size_t *bidx = xcalloc(nb ? nb : 1, sizeof(*bidx));
    for (size_t i = 0; i < nb; i++) {
        if (branch_never_begun(t, i, stmts)) {
            txn_set_branch_state(t, &t->branches[i], BR_READ_ONLY);
            txlog_info(t->gid, t->branches[i].participant,
                       "prepare: not sent, the branch never began there (its statements were "
                       "refused before running); read_only");
            nro++;
            continue;
        }
        json_t *body = json_pack("{s:s}", "protocol", txn_protocol_name(t->protocol));
        if (body_extra)
            json_object_update(body, body_extra); /* values shared, not stolen */
        long timeout = timeout_ms;
        if (stmts && stmts[i]) {
            json_object_set(body, "statements", stmts[i]); /* borrowed: set takes its own ref */
            /* The statements run inside this call: the agent bounds them with
             * what is left of the transaction's time (statement_timeout, in
             * the same round trip), and the call waits that long plus the
             * usual agent time for the PREPARE. */
            int64_t left = (int64_t)t->created_ms + (int64_t)t->timeout_ms - now_ms();
            if (left < 1)
                left = 1;
            json_object_set_new(body, "timeout_ms", json_integer((json_int_t)left));
            timeout = (long)(left + timeout_ms);
        }
        agent_call_init(&calls[n], t->branches[i].p, t->gid, "prepare", body, timeout);
        bidx[n++] = i;
    }
    /* One-shot: the statements run inside these calls, and may wait on a
     * lock for the rest of the transaction's time; a rollback asked for
     * meanwhile has their agents cancel them (they then vote no). */
    branch **running = stmts ? xcalloc(n ? n : 1, sizeof(*running)) : NULL;
    size_t nrunning = 0;
    for (size_t i = 0; stmts && i < n; i++)
        if (stmts[bidx[i]])
            running[nrunning++] = &t->branches[bidx[i]];
    if (nrunning > 0)
        txn_mark_statements_running(t, running, nrunning, true);
    if (n > 0)
        (void)httpc_perform(calls, n); /* per-call status read below */
    if (nrunning > 0)
        txn_mark_statements_running(t, running, nrunning, false);
    free(running);

    bool all_yes = true;
    reason[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        branch *b = &t->branches[bidx[i]];
        const httpc_call *c = &calls[i];
        const char *vote = c->status == 200
                               ? json_string_value(json_object_get(c->response, "vote"))
                               : NULL;
        branch_state bs;
        char why[768];
        why[0] = '\0';
        if (vote && strcmp(vote, "yes") == 0) {
            bs = BR_PREPARED;
            nyes++;
            const char *xid = json_string_value(json_object_get(c->response, "xid"));
            if (xid && xid8_text_valid(xid)) {
                pthread_mutex_lock(&t->mu);
                snprintf(b->xid, sizeof(b->xid), "%s", xid);
                pthread_mutex_unlock(&t->mu);
            }
            int64_t timer_us = vote_timer_start_us(c);
            if (first_yes == 0 || timer_us < first_yes)
                first_yes = timer_us;
        } else if (vote && strcmp(vote, "read_only") == 0) {
            bs = BR_READ_ONLY;
            nro++;
        } else if (vote && strcmp(vote, "no") == 0) {
            bs = BR_FAILED;
            const char *r = json_string_value(json_object_get(c->response, "reason"));
            const char *ss = agent_error_sqlstate(c);
            snprintf(why, sizeof(why), "participant %s voted no%s%s%s%s", b->participant,
                     *ss ? ": sqlstate " : "", ss, r ? ": " : "", r ? r : "");
        } else if (c->status == 200) {
            bs = BR_UNKNOWN;
            snprintf(why, sizeof(why), "participant %s gave no valid vote", b->participant);
        } else {
            /* No answer or 5xx: the PREPARE may have happened there. A
             * one-shot branch (no statement call made before: !begun) whose
             * call was refused before running (400, 413, or the link:
             * agent_refused_link) has nothing there to roll back; anything
             * else that failed is rolled back. */
            bool refused = !b->begun && agent_refused_before_running(c);
            bs = (c->status == 0 || c->status >= 500) ? BR_UNKNOWN
                 : refused                            ? BR_ABORTED
                                                      : BR_FAILED;
            char desc[512];
            agent_describe_failure(c, desc, sizeof(desc));
            const char *ss = agent_error_sqlstate(c);
            snprintf(why, sizeof(why), "participant %s could not prepare%s%s: %s", b->participant,
                     *ss ? ": sqlstate " : "", ss, desc);
        }
        txn_set_branch_state(t, b, bs);
        if (why[0]) {
            utf8_trim_partial(why); /* agents' messages may be cut inside a character */
            txlog_warn(t->gid, b->participant, "prepare: %s", why);
            if (all_yes) {
                snprintf(reason, rsize, "%s", why);
                utf8_trim_partial(reason);
            }
            all_yes = false;
        } else {
            txlog_debug(t->gid, b->participant, "prepare: voted %s", vote);
        }
    }
    for (size_t i = 0; i < n; i++)
        agent_call_free(&calls[i]);
    free(calls);
    free(bidx);
    if (all_yes)
        snprintf(reason, rsize, "%zu yes, %zu read_only", nyes, nro);
    if (first_yes_us)
        *first_yes_us = first_yes;
    return all_yes;
}

bool commit_begin(txn *t)
{
    pthread_mutex_lock(&t->mu);
    char *fail = t->fail_reason ? xstrdup(t->fail_reason) : NULL;
    pthread_mutex_unlock(&t->mu);
    if (fail) {
        /* A statement failed earlier: the transaction is rollback-only. */
        (void)txn_abort(t, EV_FAILED, fail, true);
        free(fail);
        return false;
    }
    return txn_fsm_advance(t, EV_COMMIT, "commit requested");
}

void commit_decide(txn *t, txn_event ev, const char *reason)
{
    if (!txn_fsm_advance(t, ev, reason))
        die("gid=%s decision log write failed: the commit decision may or may not be durable; "
            "stopping so that the log decides at restart",
            t->gid);
}

void twopc_commit(txn *t, json_t *const *stmts)
{
    /* 1 */
    if (!commit_begin(t))
        return;
    /* 2 */
    int64_t t0 = now_us();
    char reason[1024];
    if (!commit_prepare_all(t, stmts, NULL, (long)g_coord.agent_timeout_ms, reason,
                            sizeof(reason), NULL)) {
        /* 3 */
        if (txn_fsm_advance(t, EV_VOTE_NO, reason))
            commit_deliver_outcome(t, false);
        return;
    }
    int64_t t1 = now_us();
    /* 4 */
    commit_decide(t, EV_VOTES_YES, reason);
    int64_t t2 = now_us();
    /* 5, 6 */
    commit_deliver_outcome(t, g_coord.sequential_phase2);
    txlog_debug(t->gid, NULL, "timing: prepare %lld us, decision %lld us, commit %lld us",
                (long long)(t1 - t0), (long long)(t2 - t1), (long long)(now_us() - t2));
}

bool txn_abort(txn *t, txn_event ev, const char *reason, bool wait)
{
    if (!txn_fsm_advance(t, ev, reason))
        return false;
    if (ev == EV_TIMEOUT)
        counter_inc(&g_metrics.timeouts);
    if (wait)
        commit_deliver_outcome(t, false);
    else
        resolver_submit(t, 0);
    return true;
}
