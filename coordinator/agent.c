/*
 * agent.c - calls from txcoord to participant agents and the reading of
 * their answers.
 *
 * Invariants:
 *   - Every body carries "participant" (agents refuse a mismatch).
 *   - gids are [a-z0-9-] (gid.h), so they go into URLs unescaped.
 *   - A COMMIT or a ROLLBACK is acknowledged only by a 200 whose body names
 *     the branch's new state (agent_acked_state; an agent answers a
 *     ROLLBACK of a branch it never had 200 "aborted": 42704 is done; a 404,
 *     or a bare 200, comes from something that is not our agent, a proxy
 *     with no route, say, and proves nothing). A 409 wrong_state saying the branch is
 *     already finished the other way is a mixed outcome: recorded, logged as
 *     an atomicity violation, counted, never re-sent
 *     (finished_against_decision). Anything else leaves the branch as it
 *     was, so the next delivery re-sends: every delivery is idempotent at the
 *     agent (42704 on a re-sent finish counts as done there).
 *   - Which branches need which outcome (branch_needs_outcome, txn.c):
 *       committing: branches in state prepared, precommitted -> COMMIT
 *       aborting:   active, failed, unknown, prepared, precommitted -> ROLLBACK
 *     read_only, committed, aborted and heuristic ones need nothing.
 *   - Every delivery counts an attempt on its branch and keeps the last
 *     error (the in-doubt view). Once an operator resolved t heuristically,
 *     a branch that does not acknowledge is given up (state heuristic)
 *     instead of being retried.
 *   - Log volume: a branch that keeps failing is logged at its first
 *     failure, then at most once per RETRY_LOG_EVERY_MS (txn_log_due); each
 *     line carries gid= and participant=, the attempt number and how many
 *     failures were not logged since the previous line. The line when it is
 *     finally acknowledged gives the number of attempts; the resolver logs
 *     a periodic summary of what was held back. The in-doubt view
 *     (attempts, last_error) always shows the latest failure.
 */
#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "coord_metrics.h"
#include "jsonutil.h"
#include "log.h"

void agent_call_init(httpc_call *c, const participant *p, const char *gid, const char *verb,
                     json_t *body, long timeout_ms)
{
    memset(c, 0, sizeof(*c));
    if (!body)
        body = json_object();
    json_object_set_new(body, "participant", json_string(p->name));
    c->method = "POST";
    c->url = xasprintf("%s/v1/branches/%s/%s", p->url, gid, verb);
    c->body = body;
    c->timeout_ms = timeout_ms;
}

void agent_call_init_get(httpc_call *c, const participant *p, const char *path, long timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->method = "GET";
    c->url = xasprintf("%s%s", p->url, path);
    c->timeout_ms = timeout_ms;
}

void agent_call_free(httpc_call *c)
{
    free((char *)c->url);
    c->url = NULL;
    json_decref(c->body);
    c->body = NULL;
    httpc_call_clear(c);
}

static const char *agent_error_field(const httpc_call *c, const char *key)
{
    json_t *err = c->response ? json_object_get(c->response, "error") : NULL;
    const char *s = json_string_value(json_object_get(err, key));
    return s ? s : "";
}

const char *agent_wrong_state(const httpc_call *c)
{
    return c->status == 409 && strcmp(agent_error_code(c), "wrong_state") == 0
               ? agent_error_field(c, "state")
               : "";
}

bool agent_says_branch_is(const httpc_call *c, const char *state)
{
    return strcmp(agent_wrong_state(c), state) == 0 && *state;
}

bool agent_acked_state(const httpc_call *c, const char *state)
{
    const char *s =
        c->status == 200 && c->response ? json_string_value(json_object_get(c->response, "state"))
                                        : NULL;
    return s && strcmp(s, state) == 0;
}

const char *agent_error_code(const httpc_call *c)
{
    return agent_error_field(c, "code");
}

bool agent_busy_before_running(const httpc_call *c)
{
    if (c->status != 503)
        return false;
    const char *code = agent_error_code(c);
    return strcmp(code, "pool_exhausted") == 0 || strcmp(code, "shutting_down") == 0;
}

bool agent_refused_link(const httpc_call *c)
{
    if (c->status == 409)
        return strcmp(agent_error_code(c), "participant_mismatch") == 0;
    /* our agents answer 200, 400, 409, 413, 422 or 5xx: any other answer
     * (a 201 or 204 included) comes from something else */
    return c->status > 0 && c->status < 500 && c->status != 200 && c->status != 400 &&
           c->status != 413 && c->status != 422;
}

bool agent_refused_before_running(const httpc_call *c)
{
    return agent_refused_link(c) ||
           (c->status >= 400 && c->status < 500 && c->status != 409 && c->status != 422);
}

const char *agent_error_message(const httpc_call *c)
{
    return agent_error_field(c, "message");
}

const char *agent_error_sqlstate(const httpc_call *c)
{
    const char *s = agent_error_field(c, "sqlstate");
    if (!*s && c->response) /* a vote "no" carries sqlstate at the top level */
        s = json_string_value(json_object_get(c->response, "sqlstate"));
    return s ? s : "";
}

void agent_describe_failure(const httpc_call *c, char *buf, size_t size)
{
    if (c->status == 0) {
        snprintf(buf, size, "unreachable: %s", c->error[0] ? c->error : "no answer");
        return;
    }
    if (c->status == 200) {
        /* 200 without the state an acknowledgement carries */
        snprintf(buf, size, "HTTP 200 without the branch's state (not txagent's answer?)");
        return;
    }
    const char *code = agent_error_code(c);
    const char *msg = agent_error_message(c);
    snprintf(buf, size, "HTTP %ld%s%s%s%s", c->status, *code ? " " : "", code, *msg ? ": " : "",
             msg);
    utf8_trim_partial(buf); /* a long message cut inside a character */
}

size_t delivery_build(txn *t, httpc_call *calls, size_t *bidx, size_t room)
{
    txn_state st = txn_state_get(t);
    const char *verb = st == TXN_COMMITTING ? "commit" : "rollback";
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    size_t nb = t->nbranches;
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < nb && n < room; i++) {
        branch *b = &t->branches[i];
        char xid[sizeof(b->xid)];
        pthread_mutex_lock(&t->mu);
        branch_state bs = b->state;
        memcpy(xid, b->xid, sizeof(xid)); /* agent.h: for an agent that forgot the branch */
        pthread_mutex_unlock(&t->mu);
        if (!branch_needs_outcome(st, bs))
            continue;
        if (st != TXN_COMMITTING && bs == BR_ACTIVE && !b->begun) {
            /* Every statement sent there was refused before running (by
             * the agent, or the link: api.c): no session to roll back, and
             * a URL or token that is wrong would refuse the rollback too,
             * for ever. Commit treats the branch the same way (read_only,
             * branch_never_begun). */
            txn_set_branch_state(t, b, BR_ABORTED);
            txlog_info(t->gid, b->participant,
                       "rollback not sent: the branch never began there");
            continue;
        }
        if (!b->p) {
            /* Nothing can be sent. After an operator's heuristic decision
             * (for a participant lost for good, removed from the
             * configuration) the branch is given up, as one that does not
             * answer is, so that the transaction can end. */
            if (txn_heuristic(t)) {
                txn_branch_attempt(t, b, false, BR_HEURISTIC, true,
                                   "participant is not configured (--participant)");
                txlog_warn(t->gid, b->participant, "%s not sent (participant is not "
                           "configured); given up: heuristic decision by operator", verb);
                continue;
            }
            unsigned skipped;
            if (txn_log_due(t, &b->retry_log, &skipped))
                txlog_error(t->gid, b->participant,
                            "cannot send %s: participant is not configured (--participant)", verb);
            continue;
        }
        json_t *body = xid[0] ? json_pack("{s:s}", "xid", xid) : NULL;
        agent_call_init(&calls[n], b->p, t->gid, verb, body, (long)g_coord.agent_timeout_ms);
        bidx[n++] = i;
    }
    return n;
}

/* The agent answered 409 wrong_state and its branch is already finished the
 * other way: a 3PC branch whose agent terminated on its own while it could
 * not reach us (the timeout rule, or the protocol rule on the far side of a
 * partition), or a prepared branch someone finished by hand. Re-sending can
 * never succeed, so the branch is recorded as it is, the mixed outcome is
 * logged once as the atomicity violation it is and counted, and delivery
 * goes on (the transaction ends with 'E'; its outcome stays the decision). */
static bool finished_against_decision(txn *t, branch *b, const httpc_call *c, bool commit)
{
    const char *there = commit ? "aborted" : "committed";
    if (!agent_says_branch_is(c, there))
        return false;
    txn_branch_attempt(t, b, true, commit ? BR_ABORTED : BR_COMMITTED, false, NULL);
    txn_log_reset(t, &b->retry_log);
    counter_inc(&g_metrics.mixed_outcomes);
    txlog_error(t->gid, b->participant,
                "atomicity violated: the decision is %s but the branch is already %s there "
                "(%s); recorded, not re-sent",
                commit ? "commit" : "abort", there,
                t->protocol == PROTO_3PC ? "its agent terminated 3PC on its own"
                                         : "finished outside the coordinator");
    return true;
}

size_t delivery_apply(txn *t, httpc_call *calls, const size_t *bidx, size_t n, int attempt)
{
    bool commit = txn_state_get(t) == TXN_COMMITTING;
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        branch *b = &t->branches[bidx[i]];
        const httpc_call *c = &calls[i];
        bool acked = agent_acked_state(c, commit ? "committed" : "aborted");
        if (acked) {
            txn_branch_attempt(t, b, true, commit ? BR_COMMITTED : BR_ABORTED, false, NULL);
            txn_log_reset(t, &b->retry_log);
            if (attempt > 0)
                txlog_info(t->gid, b->participant, "%s acknowledged after %d retries",
                           commit ? "commit" : "rollback", attempt);
            continue;
        }
        if (finished_against_decision(t, b, c, commit))
            continue;
        char why[512];
        agent_describe_failure(c, why, sizeof(why));
        bool give_up = txn_heuristic(t) != 0;
        txn_branch_attempt(t, b, false, BR_HEURISTIC, give_up, why);
        if (give_up) {
            txlog_warn(t->gid, b->participant,
                       "%s not acknowledged (%s); given up: heuristic %s by operator",
                       commit ? "commit" : "rollback", why, commit ? "commit" : "abort");
            continue;
        }
        failed++;
        unsigned skipped;
        if (!txn_log_due(t, &b->retry_log, &skipped))
            continue; /* counted; the next line or the resolver's summary says so */
        char more[96] = "";
        if (skipped > 0)
            snprintf(more, sizeof(more), " (%u failed attempts not logged since the last line)",
                     skipped);
        if (c->status == 409 && commit)
            txlog_error(t->gid, b->participant,
                        "commit refused: %s (branch not prepared there?); will retry%s", why, more);
        else
            txlog_warn(t->gid, b->participant, "%s not acknowledged (attempt %d): %s%s",
                       commit ? "commit" : "rollback", attempt + 1, why, more);
    }
    return failed;
}

bool delivery_done(txn *t)
{
    txn_state st = txn_state_get(t);
    bool done = true;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nbranches && done; i++)
        if (branch_needs_outcome(st, t->branches[i].state))
            done = false;
    pthread_mutex_unlock(&t->mu);
    return done;
}
