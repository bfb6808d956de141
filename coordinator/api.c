/*
 * api.c - the REST API v1 of txcoord: request validation, dispatch to the
 * transaction machinery, and JSON answers.
 *
 * Invariants:
 *   - Every handler answers exactly once; errors use
 *     {"error":{"code":"snake_case","message":...}} through http_reply_error*.
 *   - A handler that changes a transaction holds its op_mu for the whole
 *     operation (statements on one transaction are serialized, commit and
 *     rollback wait for one in progress); no global lock is held across a
 *     network call. Read-only handlers (GET, outcomes) never take op_mu, so
 *     they answer at once even while a commit is in progress. A rollback
 *     does not wait for a running statement: it has the agent cancel it
 *     first (interrupt_statements), which ends the statement.
 *   - The outcome endpoint never says "aborted" for a gid that is active,
 *     preparing or precommitting here, nor for one with a commit decision.
 *   - What is known of a gid no longer in the table (evicted, or from before
 *     a restart) is decided in one place, outcome_not_in_table: the
 *     committed set, else presumed abort for a gid of ours that was issued
 *     (earlier epoch, or this epoch's seq already handed out). The outcome
 *     endpoint, GET /v1/transactions/{gid}, commit, rollback and statements
 *     all use it (lookup_or_outcome), so a gid answers the same in memory or
 *     not; they answer 404 where it cannot have been issued (future epoch,
 *     unissued seq, another coordinator's gid). "Issued" is read before the
 *     table, so a gid created meanwhile never reads as issued and absent.
 * Ownership: http_req_json bodies are borrowed; json_object_get is borrowed;
 * *_set_new and http_reply_json steal.
 */
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "coord.h"
#include "coord_metrics.h"
#include "decision_log.h"
#include "heuristic.h"
#include "jsonutil.h"
#include "log.h"
#include "pg.h"
#include "protocol.h"
#include "twopc.h"
#include "txn.h"

#define TIMEOUT_MAX_MS (24LL * 3600 * 1000)
#define RETRY_CANCEL_MS 200
#define CANCEL_CALL_MS 1000
#define HEALTH_TIMEOUT_MS 500
#define LIST_LIMIT_DEFAULT 1000 /* GET /v1/transactions: transactions per page */
#define LIST_LIMIT_MAX 10000

/* ---- small helpers ---------------------------------------------------- */

/* 409 wrong_state for a transaction with no outcome yet (3PC
 * precommitting): the gid at the top level, as in an outcome answer, so that
 * a one-shot client learns which transaction to ask about again, and the
 * state in the error. Commit and rollback both answer it. */
static void reply_undecided(http_request *req, txn *t)
{
    txn_state st = txn_state_get(t);
    char msg[400];
    snprintf(msg, sizeof(msg), "transaction %s is %s%s", t->gid, txn_state_name(st),
             st == TXN_PRECOMMITTING
                 ? ": its outcome is not known yet (no PreCommit acknowledged, or a "
                   "restart); the coordinator is asking the agents their states: commit "
                   "again, or GET it, for the outcome"
                 : "");
    json_t *body = json_error_body("wrong_state", msg);
    json_object_set_new(json_object_get(body, "error"), "state", json_string(txn_state_name(st)));
    json_object_set_new(body, "gid", json_string(t->gid));
    http_reply_json(req, 409, body);
}

static void reply_outcome(http_request *req, txn *t)
{
    char *reason = NULL;
    const char *outcome = txn_outcome(t, &reason);
    if (!outcome) {
        reply_undecided(req, t);
        return;
    }
    json_t *o = json_pack("{s:s, s:s}", "gid", t->gid, "outcome", outcome);
    if (reason)
        json_object_set_new(o, "reason", json_string_lossy(reason));
    free(reason);
    http_reply_json(req, outcome[0] == 'c' ? 200 : 409, o);
}

static void set_location(http_request *req, const char *gid)
{
    char loc[GID_MAX_LEN + 32];
    snprintf(loc, sizeof(loc), "/v1/transactions/%s", gid);
    http_reply_header(req, "Location", loc);
}

/* Remaining time of active t, in ms (<= 0: its deadline passed). */
static int64_t remaining_ms(const txn *t)
{
    return t->created_ms + t->timeout_ms - now_ms();
}

/* ---- statements ------------------------------------------------------- */

/* Result of one statement, as the client will see it. */
typedef struct {
    unsigned status;
    json_t *body; /* owned: an error's body; NULL for a 200 */
    char *raw;    /* owned: a 200's body as the agent wrote it, passed on unparsed */
    size_t raw_len;
    bool not_run; /* surely not run at the agent: not sent, or refused before running */
} stmt_answer;

/* Send a statement's answer to the client. Takes a's body or raw. */
static void reply_stmt_answer(http_request *req, stmt_answer *a)
{
    if (a->raw)
        http_reply_json_text(req, a->status, a->raw, a->raw_len);
    else
        http_reply_json(req, a->status, a->body);
    a->raw = NULL;
    a->body = NULL;
}

/* An agent's 200 answer to a statement is an object: {"command",...}. It is
 * kept raw (a big result is passed on as the agent wrote it, never parsed
 * here) and checked only for its outer braces: the agent writes it whole. */
static bool stmt_answer_readable(const httpc_call *c)
{
    return c->raw && c->raw_len >= 2 && c->raw[0] == '{' && c->raw[c->raw_len - 1] == '}';
}

static void stmt_call_init(httpc_call *c, txn *t, branch *b, const char *sql,
                           json_t *params /* borrowed, may be NULL */)
{
    int64_t left = remaining_ms(t);
    if (left < 1)
        left = 1;
    /* "begin": false once a statement reached the agent: if the agent has
     * no branch for the gid then (it restarted, or rolled the branch back
     * and forgot it) it answers 409 branch_lost instead of opening a fresh
     * branch that would commit this statement without the earlier ones. */
    /* "seq": libcurl sends a request again, on a new connection, when a
     * reused one dies before any byte of the answer came back; the agent
     * may have run the first copy. It runs a statement call whose number it
     * has seen on the branch only once (409 duplicate_statement). */
    json_t *body = json_pack("{s:s, s:I, s:b, s:I}", "sql", sql, "timeout_ms", (json_int_t)left,
                             "begin", !b->begun, "seq", (json_int_t)++b->stmt_seq);
    json_object_set_new(body, "params", params ? json_incref(params) : json_array());
    /* The agent enforces timeout_ms on the statement; give it time to answer. */
    agent_call_init(c, b->p, t->gid, "statements", body, (long)(left + g_coord.agent_timeout_ms));
    c->raw_200 = true; /* see stmt_answer_readable */
}

static json_t *error_body_extra(const char *code, const char *message, const char *participant,
                                const char *sqlstate)
{
    json_t *body = json_error_body(code, message);
    json_t *err = json_object_get(body, "error"); /* borrowed */
    json_object_set_new(err, "participant", json_string(participant));
    if (sqlstate && *sqlstate)
        json_object_set_new(err, "sqlstate", json_string(sqlstate));
    return body;
}

/* A statement that ran but whose rows the client cannot be given (why):
 * the client never sees what it did, so the branch fails and the
 * transaction is rollback-only. 422 result_too_large. */
static stmt_answer result_too_large(txn *t, branch *b, const char *why)
{
    stmt_answer a = {422, NULL, NULL, 0, false};
    char reason[512];
    snprintf(reason, sizeof(reason), "participant %s failed: %s", b->participant, why);
    txn_set_branch_state(t, b, BR_FAILED);
    txn_set_failed(t, reason);
    txlog_warn(t->gid, b->participant, "statement: %s; transaction is rollback-only", why);
    a.body = error_body_extra("result_too_large", reason, b->participant, NULL);
    return a;
}

/* Interpret the agent's answer to a statement: update branch and
 * transaction (rollback-only on failure) and build the client's answer
 * (a 200's raw body is taken from c). Caller holds op_mu. */
static stmt_answer stmt_call_finish(txn *t, branch *b, httpc_call *c)
{
    stmt_answer a = {0, NULL, NULL, 0, false};
    char reason[1024], desc[512];
    const char *code = agent_error_code(c);
    /* Our agents answer a statement 200, 400, 409, 413, 422 or 5xx. Any
     * other status (401: the agent has another token; 404/405: the
     * participant's URL is not an agent's; a 3xx from a proxy), and 409
     * participant_mismatch (the URL is another participant's agent), is
     * about the link, not the client's request: nothing ran there, and
     * passing it on would tell a client whose token was accepted that it
     * is wrong. */
    bool link_error = agent_refused_link(c);
    /* A 4xx other than 409 and 422 is a refusal before anything ran (400
     * invalid_params, 413, ...): it leaves the branch as it was, and a branch
     * whose statements were all refused never began at the agent. So is a
     * busy agent's 503 on a branch that has not begun there (no connection
     * free, shutting down: agent_busy_before_running): the client may ask
     * again, and the transaction stays usable. Anything else may have
     * reached its session. */
    bool refused = agent_refused_before_running(c) ||
                   (!b->begun && agent_busy_before_running(c));
    if (!refused)
        b->begun = true;
    a.not_run = refused; /* link errors are refusals too (agent_refused_link) */
    if (c->status == 200 && stmt_answer_readable(c)) {
        a.status = 200;
        a.raw = c->raw;
        a.raw_len = c->raw_len;
        c->raw = NULL;
        return a;
    }
    if (c->status == 200) {
        /* The statement ran, but what it did cannot be read: as for a
         * result too large, the client never sees it and the branch fails. */
        txn_set_branch_state(t, b, BR_FAILED);
        snprintf(reason, sizeof(reason), "participant %s failed: its answer is not a JSON object",
                 b->participant);
        txn_set_failed(t, reason);
        txlog_warn(t->gid, b->participant, "statement: answer is not a JSON object; "
                   "transaction is rollback-only");
        a.status = 502;
        a.body = error_body_extra("agent_error", reason, b->participant, NULL);
        return a;
    }
    agent_describe_failure(c, desc, sizeof(desc));
    if (link_error) {
        snprintf(reason, sizeof(reason),
                 "participant %s answered HTTP %ld: check the coordinator's URL and token for it",
                 b->participant, c->status);
        txlog_warn(t->gid, b->participant, "statement not run: %s", desc);
        a.status = 502;
        a.body = error_body_extra("agent_error", reason, b->participant, NULL);
        json_object_set_new(json_object_get(a.body, "error"), "agent_status",
                            json_integer(c->status));
        return a;
    }
    if (c->status == 0 && c->too_large) {
        /* The agent answered, with more than we take (HTTPC_MAX_RESPONSE;
         * our agents stop at 63 MiB of rows, so only a foreign one). */
        char why[96];
        snprintf(why, sizeof(why), "its answer passed the coordinator's limit of %u bytes",
                 HTTPC_MAX_RESPONSE);
        return result_too_large(t, b, why);
    }
    if (c->status == 0) {
        txn_set_branch_state(t, b, BR_UNKNOWN);
        snprintf(reason, sizeof(reason), "participant %s unreachable: %s", b->participant,
                 c->error);
        txn_set_failed(t, reason);
        txlog_warn(t->gid, b->participant, "statement: %s; transaction is rollback-only", desc);
        a.status = 503;
        a.body = error_body_extra("participant_unreachable", reason, b->participant, NULL);
        return a;
    }
    if (c->status == 422) {
        const char *ss = agent_error_sqlstate(c);
        const char *msg = agent_error_message(c);
        txn_set_branch_state(t, b, BR_FAILED);
        /* sql_error carries a sqlstate; result_too_large, transaction_ended do not */
        snprintf(reason, sizeof(reason), "participant %s failed: %s%s%s%s", b->participant,
                 *ss ? "sqlstate " : "", ss, *ss ? ": " : "", msg);
        txn_set_failed(t, reason);
        txlog_info(t->gid, b->participant, "statement failed: %s%s%s%s; transaction is "
                   "rollback-only", *ss ? "sqlstate " : "", ss, *ss ? ": " : "", msg);
        a.status = 422;
        a.body = error_body_extra(*code ? code : "sql_error", msg, b->participant, ss);
        return a;
    }
    if (!refused && (c->status == 409 || c->status >= 500)) {
        /* The agent's branch is not in the state we think, or its database
         * went away mid-transaction: the work done there is lost or unknown. */
        txn_set_branch_state(t, b, c->status >= 500 ? BR_UNKNOWN : BR_FAILED);
        snprintf(reason, sizeof(reason), "participant %s failed: %s", b->participant, desc);
        txn_set_failed(t, reason);
        txlog_warn(t->gid, b->participant, "statement: %s; transaction is rollback-only", desc);
    } else {
        /* Other 4xx (e.g. transaction_control), or a busy agent's 503 on a
         * branch not begun: refused before running. */
        txlog_info(t->gid, b->participant, "statement refused: %s%s", desc,
                   b->begun ? "" : " (the branch has not begun there)");
    }
    a.status = (unsigned)c->status;
    if (c->status == 409 && strcmp(code, "duplicate_statement") == 0) {
        /* the agent's, about our own call reaching it twice: not to be
         * taken for the client's duplicate_statement (its own "seq"),
         * which leaves the transaction usable */
        a.body = error_body_extra("statement_answer_lost",
                                  "the statement reached the participant twice (the "
                                  "coordinator's connection died before its answer): it ran "
                                  "once, its answer was lost; the transaction is rollback-only",
                                  b->participant, NULL);
    } else if (c->response && json_object_get(c->response, "error")) {
        a.body = json_incref(c->response);
        json_t *err = json_object_get(a.body, "error");
        json_object_set_new(err, "participant", json_string(b->participant));
        const char *msg = json_string_value(json_object_get(err, "message"));
        if (!refused && c->status >= 500 && msg) {
            /* an agent's 503 says "ask again" to its own caller; to the
             * client it is final for this transaction */
            char *m = xasprintf("%s (the transaction is rollback-only now: roll it back)", msg);
            json_object_set_new(err, "message", json_string(m));
            free(m);
        }
    } else {
        a.body = error_body_extra(c->status >= 500 ? "participant_unreachable" : "agent_error",
                                  desc, b->participant, NULL);
    }
    return a;
}

/* A rollback that finds op_mu held does not wait for a statement running
 * under it: that statement may wait on a lock for the rest of the
 * transaction's time (two transactions that lock rows in two databases in
 * opposite orders deadlock where neither PostgreSQL can see it). Without
 * op_mu it asks the agents of the running statements to cancel them
 * (POST .../cancel); the statement then fails as on its statement_timeout
 * (422, sqlstate 57014), its branch fails, and the call gives op_mu up to
 * the rollback. Only a cancel, never a rollback, is sent without op_mu: a
 * rollback that arrived late (the statement done, and a commit since
 * prepared the branch under op_mu) would undo a prepared branch behind a
 * commit decision; a late cancel finds nothing running, or fails that
 * PREPARE (a no vote: the abort the rollback asked for). When the holder
 * is a commit, only a one-shot commit's PREPARE calls carry statements
 * (commit_prepare_all marks them): those are cancelled the same way, and
 * their branches vote no; an interactive commit's PREPAREs are waited for.
 * Returns how many
 * cancels were sent; logs them only when first (the repeats are quiet). */
static size_t interrupt_statements(txn *t, bool first)
{
    /* about one round per RETRY_CANCEL_MS per transaction, whatever the
     * number of rollbacks waiting (each cancel is a connection PostgreSQL
     * forks a process for, and a line in the agent's log); half of it here,
     * so that a lone rollback's own retries are never skipped */
    int64_t now = now_ms(), last = atomic_load(&t->last_cancel_ms);
    if ((last != 0 && now - last < RETRY_CANCEL_MS / 2) ||
        !atomic_compare_exchange_strong(&t->last_cancel_ms, &last, now))
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    size_t room = t->maxbranches ? t->maxbranches : 1;
    const participant **ps = xcalloc(room, sizeof(*ps));
    for (size_t i = 0; i < t->nbranches; i++)
        if (t->branches[i].stmt_running && t->branches[i].p)
            ps[n++] = t->branches[i].p;
    pthread_mutex_unlock(&t->mu);
    httpc_call *calls = xcalloc(room, sizeof(*calls));
    for (size_t i = 0; i < n; i++) {
        if (first)
            txlog_info(t->gid, ps[i]->name, "rollback: a statement is running there; asking "
                       "its agent to cancel it");
        /* short: the loop retries, and must not sit in a call to a silent
         * agent while op_mu has come free */
        agent_call_init(&calls[i], ps[i], t->gid, "cancel", NULL, CANCEL_CALL_MS);
    }
    if (n > 0)
        (void)httpc_perform(calls, n); /* on failure the rollback waits, as before */
    for (size_t i = 0; i < n; i++) {
        if (calls[i].status != 200 && first) {
            char desc[512];
            agent_describe_failure(&calls[i], desc, sizeof(desc));
            txlog_warn(t->gid, ps[i]->name, "cancel of the running statement: %s; the rollback "
                       "waits for it", desc);
        }
        agent_call_free(&calls[i]);
    }
    free(calls);
    free(ps);
    return n;
}

/* With op_mu held: has a client's rollback been asked for while this
 * request waited for op_mu? Then a statement answers 409 and a commit
 * aborts: the rollback goes next instead of waiting behind them. */
static bool rollback_pending(const txn *t)
{
    return atomic_load(&t->rollback_requested);
}

/* Run one statement on t's branch for p. Caller holds op_mu and checked t
 * is active. */
static stmt_answer run_statement(txn *t, const participant *p, const char *sql, json_t *params)
{
    stmt_answer a = {0, NULL, NULL, 0, true}; /* not run until the call is made */
    branch *b = txn_branch(t, p, true);
    if (!b) { /* cannot happen: one branch per participant fits */
        a.status = 500;
        a.body = json_error_body("internal", "no room for another branch");
        return a;
    }
    if (b->state != BR_ACTIVE) {
        a.status = 409;
        a.body = error_body_extra("wrong_state", "the branch on this participant is not active",
                                  p->name, NULL);
        return a;
    }
    httpc_call c;
    stmt_call_init(&c, t, b, sql, params);
    txn_mark_statements_running(t, &b, 1, true);
    (void)httpc_request(&c); /* status read below */
    txn_mark_statements_running(t, &b, 1, false);
    a = stmt_call_finish(t, b, &c);
    agent_call_free(&c);
    return a;
}

/* A statement must be one (not only blanks and comments, which PostgreSQL
 * answers without a message), must not end the transaction itself, and may
 * have at most PG_MAX_PARAMS params. The agent checks too; checking here
 * refuses it before a branch is opened and without failing the transaction. */
static bool check_statement(http_request *req, const char *sql, const json_t *params)
{
    if (params && json_array_size(params) > PG_MAX_PARAMS) {
        http_reply_error(req, 400, "invalid_field", "field 'params' has %zu entries (at most %d)",
                         json_array_size(params), PG_MAX_PARAMS);
        return false;
    }
    if (sql_is_empty(sql)) {
        http_reply_error(req, 400, "invalid_field",
                         "field 'sql' holds no statement (only blanks, ';' or comments)");
        return false;
    }
    if (sql_is_copy_stream(sql)) {
        http_reply_error(req, 400, "copy_not_supported",
                         "COPY FROM STDIN / TO STDOUT is not supported (use INSERT ... VALUES or "
                         "a SELECT)");
        return false;
    }
    if (!sql_is_transaction_control(sql))
        return true;
    http_reply_error(req, 400, "transaction_control",
                     "statements may not begin or end transactions; use commit/rollback");
    return false;
}

/* If t's deadline passed but the tick has not rolled it back yet, do it
 * now. Caller holds op_mu. Returns true if t is (still) active. */
static bool still_active(txn *t)
{
    if (txn_state_get(t) != TXN_ACTIVE)
        return false;
    if (remaining_ms(t) > 0)
        return true;
    (void)txn_abort(t, EV_TIMEOUT, "timeout", true);
    return false;
}

/* ---- POST /v1/transactions -------------------------------------------- */

typedef struct {
    const participant *p;
    json_t *statements; /* borrowed from the request */
} oneshot_branch;

/* Validate "branches" of the one-shot form. Replies and returns false on error. */
static bool parse_branches(http_request *req, json_t *branches, oneshot_branch *out, size_t *n)
{
    char err[JSON_ERR_LEN];
    size_t i;
    json_t *item;
    *n = 0;
    if (json_array_size(branches) > participants_count()) {
        http_reply_error(req, 400, "invalid_field",
                         "field 'branches' has more entries than there are participants");
        return false;
    }
    json_array_foreach(branches, i, item) {
        const char *name = NULL;
        json_t *stmts = NULL;
        if (!json_is_object(item)) {
            http_reply_error(req, 400, "invalid_field", "field 'branches[%zu]' must be an object", i);
            return false;
        }
        static const char *const branch_fields[] = {"participant", "statements", NULL};
        if (!json_fields_known(item, branch_fields, err, sizeof(err)) ||
            !json_field_string(item, "participant", true, &name, err, sizeof(err)) ||
            !json_field_array(item, "statements", true, &stmts, err, sizeof(err))) {
            http_reply_error(req, 400, "invalid_field", "branches[%zu]: %s", i, err);
            return false;
        }
        /* A branch exists at its agent from its first statement on: one
         * without any would be prepared there as unknown, a "no" vote. */
        if (json_array_size(stmts) == 0) {
            http_reply_error(req, 400, "invalid_field",
                             "field 'branches[%zu].statements' is empty: a branch needs at "
                             "least one statement (leave the participant out instead)", i);
            return false;
        }
        const participant *p = participant_find(name);
        if (!p) {
            http_reply_error(req, 422, "unknown_participant", "unknown participant '%s'", name);
            return false;
        }
        for (size_t k = 0; k < *n; k++) {
            if (out[k].p == p) {
                http_reply_error(req, 400, "invalid_field",
                                 "field 'branches' names participant '%s' twice", name);
                return false;
            }
        }
        size_t j;
        json_t *st;
        json_array_foreach(stmts, j, st) {
            const char *sql = NULL;
            json_t *params = NULL;
            if (!json_is_object(st)) {
                http_reply_error(req, 400, "invalid_field",
                                 "field 'branches[%zu].statements[%zu]' must be an object", i, j);
                return false;
            }
            static const char *const stmt_fields[] = {"sql", "params", NULL};
            if (!json_fields_known(st, stmt_fields, err, sizeof(err)) ||
                !json_field_string(st, "sql", true, &sql, err, sizeof(err)) ||
                !json_field_array(st, "params", false, &params, err, sizeof(err))) {
                http_reply_error(req, 400, "invalid_field", "branches[%zu].statements[%zu]: %s", i,
                                 j, err);
                return false;
            }
            if (!check_statement(req, sql, params))
                return false;
        }
        out[*n].p = p;
        out[*n].statements = stmts;
        (*n)++;
    }
    return true;
}

/* One branch's part of the one-shot answer without commit, as JSON text. */
typedef struct {
    strbuf results;  /* the answers so far, comma-separated (each as the agent wrote it) */
    size_t nresults;
    json_t *error;   /* the first failure's "error" object, or NULL */
    unsigned status; /* its HTTP status */
} oneshot_part;

/* The results of one one-shot answer, all branches together, are kept in
 * memory until it is sent: they may not pass what a single agent answer may
 * (HTTPC_MAX_RESPONSE), or one request could ask for any amount. */
#define ONESHOT_MAX_RESULTS HTTPC_MAX_RESPONSE

/* One-shot without commit: run each branch's statements (branches in
 * parallel, statements of one branch in order, a branch stops at its first
 * error) and leave t active. Returns the answer's "branches" array as JSON
 * text, in request order: {"participant","results":[...]} plus "error" and
 * "status" for a branch that stopped. The statements' answers are put in as
 * the agents wrote them (never parsed here). Caller holds op_mu, frees. */
static char *run_oneshot_statements(txn *t, const oneshot_branch *obs, size_t nb)
{
    size_t total = 0; /* result bytes kept so far, all branches */
    branch **brs = xcalloc(nb ? nb : 1, sizeof(*brs));
    oneshot_part *parts = xcalloc(nb ? nb : 1, sizeof(*parts));
    httpc_call *calls = xcalloc(nb ? nb : 1, sizeof(*calls));
    size_t *which = xcalloc(nb ? nb : 1, sizeof(*which));
    for (size_t i = 0; i < nb; i++) {
        brs[i] = txn_branch(t, obs[i].p, true);
        strbuf_init(&parts[i].results);
    }
    for (size_t k = 0;; k++) {
        size_t n = 0;
        if (rollback_pending(t)) {
            /* A rollback waits: the statements not run yet are not run,
             * and each branch that had some left says so. */
            for (size_t i = 0; i < nb; i++) {
                if (parts[i].error || k >= json_array_size(obs[i].statements))
                    continue;
                json_t *e = json_error_body("wrong_state", "not run: the transaction is being "
                                                           "rolled back");
                parts[i].error = json_incref(json_object_get(e, "error"));
                parts[i].status = 409;
                json_decref(e);
            }
            break;
        }
        for (size_t i = 0; i < nb; i++) {
            if (parts[i].error || k >= json_array_size(obs[i].statements))
                continue;
            json_t *st = json_array_get(obs[i].statements, k);
            stmt_call_init(&calls[n], t, brs[i], json_string_value(json_object_get(st, "sql")),
                           json_object_get(st, "params"));
            which[n++] = i;
        }
        if (n == 0)
            break;
        for (size_t c = 0; c < n; c++)
            txn_mark_statements_running(t, &brs[which[c]], 1, true);
        (void)httpc_perform(calls, n); /* per-call status read below */
        txn_mark_statements_running(t, brs, nb, false);
        for (size_t c = 0; c < n; c++) {
            oneshot_part *part = &parts[which[c]];
            stmt_answer a = stmt_call_finish(t, brs[which[c]], &calls[c]);
            if (a.status == 200 && a.raw_len > ONESHOT_MAX_RESULTS - total) {
                free(a.raw);
                char why[96];
                snprintf(why, sizeof(why), "the one-shot answer's results passed %u bytes",
                         ONESHOT_MAX_RESULTS);
                a = result_too_large(t, brs[which[c]], why);
            }
            if (a.status == 200) {
                total += a.raw_len;
                if (part->nresults++ > 0)
                    strbuf_appendn(&part->results, ",", 1);
                strbuf_appendn(&part->results, a.raw, a.raw_len);
            } else {
                part->error = json_incref(json_object_get(a.body, "error"));
                part->status = a.status;
                /* The branch stopped short of the statements the client sent
                 * as one unit: committing what ran would apply part of it.
                 * A failure already made the transaction rollback-only; a
                 * statement refused before running (400, 413, the link) does
                 * so here. */
                const char *code = json_string_value(json_object_get(part->error, "code"));
                char reason[512];
                snprintf(reason, sizeof(reason),
                         "participant %s: a statement of the one-shot was refused (%s); the "
                         "statements after it did not run",
                         brs[which[c]]->participant, code ? code : "no code");
                txn_set_failed(t, reason);
            }
            free(a.raw);
            json_decref(a.body);
            agent_call_free(&calls[c]);
        }
    }
    strbuf out;
    strbuf_init(&out);
    strbuf_appendn(&out, "[", 1);
    for (size_t i = 0; i < nb; i++) {
        oneshot_part *part = &parts[i];
        strbuf_append(&out, i > 0 ? ",{\"participant\":" : "{\"participant\":");
        json_text_string(&out, obs[i].p->name, strlen(obs[i].p->name));
        strbuf_append(&out, ",\"results\":[");
        strbuf_appendn(&out, part->results.data ? part->results.data : "", part->results.len);
        strbuf_appendn(&out, "]", 1);
        if (part->error) {
            strbuf_append(&out, ",\"error\":");
            json_text_value(&out, part->error);
            strbuf_appendf(&out, ",\"status\":%u", part->status);
            json_decref(part->error);
        }
        strbuf_appendn(&out, "}", 1);
        strbuf_free(&part->results);
    }
    strbuf_appendn(&out, "]", 1);
    free(brs);
    free(parts);
    free(calls);
    free(which);
    return strbuf_take(&out);
}

/* The 3PC fields of POST /v1/transactions into *s (defaults from flags).
 * Replies and returns false on error; they are refused for 2pc. */
static bool parse_threepc(http_request *req, json_t *body, txn_protocol proto,
                          threepc_settings *s)
{
    static const char *const fields[] = {"cancommit_timeout_ms", "precommit_timeout_ms",
                                         "uncertain_timeout_ms", "termination"};
    *s = g_coord.threepc;
    if (!body)
        return true;
    if (proto != PROTO_3PC) {
        for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
            if (json_object_get(body, fields[i])) {
                http_reply_error(req, 400, "invalid_field",
                                 "field '%s' applies to protocol 3pc only", fields[i]);
                return false;
            }
        }
        return true;
    }
    char err[JSON_ERR_LEN];
    long long cc = s->cancommit_timeout_ms, pc = s->precommit_timeout_ms,
              un = s->uncertain_timeout_ms;
    const char *term = NULL;
    if (!json_field_int(body, fields[0], false, 1, TIMEOUT_MAX_MS, &cc, err, sizeof(err)) ||
        !json_field_int(body, fields[1], false, 1, TIMEOUT_MAX_MS, &pc, err, sizeof(err)) ||
        !json_field_int(body, fields[2], false, 1, TIMEOUT_MAX_MS, &un, err, sizeof(err)) ||
        !json_field_string(body, fields[3], false, &term, err, sizeof(err))) {
        http_reply_error(req, 400, "invalid_field", "%s", err);
        return false;
    }
    if (term && !termination_rule_parse(term, &s->termination)) {
        http_reply_error(req, 400, "invalid_field",
                         "field 'termination' must be \"protocol\", \"timeout\" or \"blocking\"");
        return false;
    }
    s->cancommit_timeout_ms = cc;
    s->precommit_timeout_ms = pc;
    s->uncertain_timeout_ms = un;
    return true;
}

static void h_begin(http_request *req, void *app)
{
    (void)app;
    json_t *body = http_req_json(req); /* borrowed, NULL when empty */
    const char *proto_name = "2pc";
    long long timeout = g_coord.default_timeout_ms;
    json_t *branches = NULL;
    bool commit = false;
    char err[JSON_ERR_LEN];
    static const char *const begin_fields[] = {
        "protocol", "timeout_ms", "branches", "commit", "cancommit_timeout_ms",
        "precommit_timeout_ms", "uncertain_timeout_ms", "termination", NULL};
    if (body &&
        (!json_fields_known(body, begin_fields, err, sizeof(err)) ||
         !json_field_string(body, "protocol", false, &proto_name, err, sizeof(err)) ||
         !json_field_int(body, "timeout_ms", false, 1, TIMEOUT_MAX_MS, &timeout, err, sizeof(err)) ||
         !json_field_array(body, "branches", false, &branches, err, sizeof(err)) ||
         !json_field_bool(body, "commit", false, &commit, err, sizeof(err)))) {
        http_reply_error(req, 400, "invalid_field", "%s", err);
        return;
    }
    txn_protocol proto;
    if (!txn_protocol_parse(proto_name, &proto)) {
        http_reply_error(req, 400, "unsupported_protocol", "unknown protocol '%s'", proto_name);
        return;
    }
    const protocol_ops *ops = protocol_get(proto);
    if (!ops->supported) {
        http_reply_error(req, 400, "unsupported_protocol", "protocol '%s' is not supported yet",
                         proto_name);
        return;
    }
    threepc_settings threepc;
    if (!parse_threepc(req, body, proto, &threepc))
        return;
    if (commit && !branches) {
        http_reply_error(req, 400, "invalid_field", "field 'commit' requires field 'branches'");
        return;
    }
    oneshot_branch *obs = NULL;
    size_t nb = 0;
    if (branches) {
        obs = xcalloc(json_array_size(branches) + 1, sizeof(*obs));
        if (!parse_branches(req, branches, obs, &nb)) {
            free(obs);
            return;
        }
    }

    /* The one-shot form holds op_mu from before its gid can be found: a
     * commit or a statement naming that gid (gids are sequential) must not
     * run on it before its own branches exist. */
    txn *t = branches ? txn_create_locked(proto, timeout, &threepc)
                      : txn_create(proto, timeout, &threepc);
    if (!t) {
        free(obs);
        http_reply_error(req, 503, "too_many_transactions",
                         "%lld transactions are not finished (--max-unfinished): finish or roll "
                         "back some, or wait for their timeouts",
                         g_coord.max_unfinished);
        return;
    }
    txlog_debug(t->gid, NULL, "begun (%s, timeout %lld ms)", proto_name, timeout);
    set_location(req, t->gid);
    if (!branches) {
        http_reply_json(req, 201, json_pack("{s:s, s:s, s:s}", "gid", t->gid, "protocol",
                                            proto_name, "state", "active"));
        txn_unref(t);
        return;
    }

    if (commit && !still_active(t)) {
        /* Its timeout passed before anything ran (a timeout_ms of a few ms):
         * aborted, with no branch opened. */
        reply_outcome(req, t);
    } else if (commit) {
        /* One call per branch: statements + PREPARE. stmts[] is aligned
         * with t->branches (created here in request order). */
        json_t **stmts = xcalloc(nb + 1, sizeof(*stmts));
        for (size_t i = 0; i < nb; i++) {
            (void)txn_branch(t, obs[i].p, true);
            stmts[i] = obs[i].statements;
        }
        int64_t t0 = now_us();
        if (rollback_pending(t)) /* asked for while the branches were set up: it wins */
            (void)txn_abort(t, EV_ROLLBACK, "rollback requested", true);
        else
            ops->commit(t, stmts);
        if (txn_state_get(t) == TXN_COMMITTING || txn_state_get(t) == TXN_COMMITTED)
            histogram_observe_us(&g_metrics.commit_latency[proto], now_us() - t0);
        free(stmts);
        reply_outcome(req, t);
    } else if (!still_active(t)) {
        /* Its timeout passed before anything ran (a timeout_ms of a few ms):
         * no branch is opened on a transaction nobody will finish. */
        http_reply_error(req, 409, "wrong_state", "transaction %s is %s (timeout) before its "
                         "statements ran", t->gid, txn_state_name(txn_state_get(t)));
    } else {
        char *branches_text = run_oneshot_statements(t, obs, nb);
        /* {"gid","protocol","state","rollback_only_reason"?,"branches"}, the
         * branches' text put in whole. */
        const char *state = txn_state_name(txn_state_get(t));
        strbuf out;
        strbuf_init(&out);
        strbuf_append(&out, "{\"gid\":");
        json_text_string(&out, t->gid, strlen(t->gid));
        strbuf_append(&out, ",\"protocol\":");
        json_text_string(&out, proto_name, strlen(proto_name));
        strbuf_append(&out, ",\"state\":");
        json_text_string(&out, state, strlen(state));
        pthread_mutex_lock(&t->mu); /* fail_reason, as the GET view reads it */
        if (t->fail_reason) {
            strbuf_append(&out, ",\"rollback_only_reason\":");
            json_text_string_lossy(&out, t->fail_reason, strlen(t->fail_reason));
        }
        pthread_mutex_unlock(&t->mu);
        strbuf_append(&out, ",\"branches\":");
        strbuf_append(&out, branches_text);
        strbuf_appendn(&out, "}", 1);
        free(branches_text);
        size_t len = out.len;
        http_reply_json_text(req, 201, strbuf_take(&out), len);
    }
    pthread_mutex_unlock(&t->op_mu);
    free(obs);
    txn_unref(t);
}

/* ---- gids no longer in the table ---------------------------------------- */

static bool future_epoch_log_due(void)
{
    static log_throttle lim = LOG_THROTTLE_INIT(1, 60000);
    unsigned held;
    return log_throttle_due(&lim, &held);
}

typedef enum {
    OUT_COMMITTED,    /* 'C' logged (committed set) */
    OUT_ABORTED,      /* ours, issued, no 'C': presumed abort */
    OUT_NOT_ISSUED,   /* this epoch, seq not handed out yet: never seen */
    OUT_FUTURE_EPOCH, /* an epoch after ours: never issued by any incarnation we know */
} outcome_known;

/* What the decision log says of gid (valid, ours: cid == our coord_id),
 * which is not in the table. issued: txn_seq_issued(seq), read BEFORE the
 * lookup that missed. A seq is handed out and its transaction inserted in
 * one table_mu section (txn.c), so a seq issued before a missed lookup is
 * one whose transaction was evicted; read after it, a gid created in
 * between would read as issued and absent: presumed aborted while active. */
static outcome_known outcome_not_in_table(const char *gid, uint64_t epoch, bool issued)
{
    if (dlog_is_committed(gid))
        return OUT_COMMITTED;
    if (epoch > g_coord.epoch)
        return OUT_FUTURE_EPOCH;
    if (epoch == g_coord.epoch && !issued)
        return OUT_NOT_ISSUED;
    /* Earlier epoch without 'C': presumed abort. This epoch, issued, not in
     * memory and not committed: finished aborted and evicted. */
    return OUT_ABORTED;
}

/* The transaction named by any gid string (a reference: txn_unref it), or
 * NULL with *absent set: outcome_not_in_table, or OUT_NOT_ISSUED for a
 * string that is not a valid gid of ours. */
static txn *lookup_or_outcome(const char *gid, outcome_known *absent)
{
    char cid[16];
    uint64_t epoch = 0, seq = 0;
    bool ours =
        gid_valid(gid) && gid_parse(gid, cid, &epoch, &seq) && strcmp(cid, g_coord.coord_id) == 0;
    bool issued = ours && txn_seq_issued(seq); /* before the lookup: see outcome_not_in_table */
    txn *t = txn_lookup(gid);
    if (!t)
        *absent = ours ? outcome_not_in_table(gid, epoch, issued) : OUT_NOT_ISSUED;
    return t;
}

#define PRESUMED_ABORT_REASON "no commit decision logged (presumed abort)"

/* ---- /v1/transactions/{gid}/... --------------------------------------- */

static void h_statements(http_request *req, void *app)
{
    (void)app;
    const char *gid = http_req_param(req, 0);
    json_t *body = http_req_json(req);
    const char *name = NULL, *sql = NULL;
    json_t *params = NULL;
    long long seq = 0;
    char err[JSON_ERR_LEN];
    static const char *const fields[] = {"participant", "sql", "params", "seq", NULL};
    if (!json_fields_known(body, fields, err, sizeof(err)) ||
        !json_field_string(body, "participant", true, &name, err, sizeof(err)) ||
        !json_field_string(body, "sql", true, &sql, err, sizeof(err)) ||
        !json_field_array(body, "params", false, &params, err, sizeof(err)) ||
        !json_field_int(body, "seq", false, 1, INT64_MAX, &seq, err, sizeof(err))) {
        http_reply_error(req, 400, "invalid_field", "%s", err);
        return;
    }
    outcome_known k;
    txn *t = lookup_or_outcome(gid, &k);
    if (!t) {
        if (k == OUT_COMMITTED || k == OUT_ABORTED)
            http_reply_error(req, 409, "wrong_state", "transaction %s is %s", gid,
                             k == OUT_COMMITTED ? "committed" : "aborted");
        else
            http_reply_error(req, 404, "unknown_transaction", "no transaction %s", gid);
        return;
    }
    /* Before the participant and the statement are looked at: a finished
     * transaction answers 409 whatever they are, as it does once evicted
     * (above); also the fast answer while a commit runs. */
    if (txn_state_get(t) != TXN_ACTIVE) {
        http_reply_error(req, 409, "wrong_state", "transaction %s is %s", t->gid,
                         txn_state_name(txn_state_get(t)));
        goto out;
    }
    const participant *p = participant_find(name);
    if (!p) {
        http_reply_error(req, 422, "unknown_participant", "unknown participant '%s'", name);
        goto out;
    }
    if (!check_statement(req, sql, params))
        goto out;
    pthread_mutex_lock(&t->op_mu);
    if (!still_active(t) || rollback_pending(t)) {
        pthread_mutex_unlock(&t->op_mu);
        http_reply_error(req, 409, "wrong_state", "transaction %s is %s", t->gid,
                         rollback_pending(t) && txn_state_get(t) == TXN_ACTIVE
                             ? "being rolled back"
                             : txn_state_name(txn_state_get(t)));
        goto out;
    }
    /* "seq": the client's own numbering of its statement calls (1, 2, ...):
     * an HTTP library re-sends a request whose reused connection died
     * before the answer (libcurl does), and a copy must not run again. */
    if (seq > 0 && seq <= t->client_seq) {
        int64_t last = t->client_seq;
        pthread_mutex_unlock(&t->op_mu);
        txlog_warn(t->gid, name, "statement call seq %lld arrived again (the transaction's "
                   "calls ran up to %lld): not run again", seq, (long long)last);
        http_reply_error(req, 409, "duplicate_statement",
                         "statement call %lld of transaction %s already arrived (a copy re-sent "
                         "after a lost connection?): not run again; its answer was lost",
                         seq, t->gid);
        goto out;
    }
    stmt_answer a = run_statement(t, p, sql, params);
    /* Recorded once it may have run (still under op_mu, so a copy waiting
     * behind it sees it): a call answered "not run, ask again" (a busy
     * agent's 503 before its branch began, a link error, a refusal) may be
     * asked again with its number. */
    if (seq > 0 && !a.not_run)
        t->client_seq = seq;
    pthread_mutex_unlock(&t->op_mu);
    reply_stmt_answer(req, &a);
out:
    txn_unref(t);
}

/* Rollback takes no body fields (commit only "branches", h_commit): a body
 * with any (a client thinking it can pass options, e.g. {"outcome":"commit"}
 * to a rollback) gets 400 invalid_field before anything happens, as every
 * other request with a field it does not know. Replies and returns false
 * then. */
static bool no_fields(http_request *req)
{
    static const char *const none[] = {NULL};
    char err[JSON_ERR_LEN];
    if (json_fields_known(http_req_json(req), none, err, sizeof(err)))
        return true;
    http_reply_error(req, 400, "invalid_field", "%s", err);
    return false;
}

/* The transaction named in the path, for commit/rollback. If it is no
 * longer in the table (finished and evicted, or from before a restart),
 * replies its outcome as the finished transaction would have:
 * {"gid","outcome":"committed"} with committed_status, or
 * {"gid","outcome":"aborted"(,"reason")} with aborted_status (the reason
 * when that status is an error); 404 for a gid never issued here. */
static txn *lookup_to_finish(http_request *req, unsigned committed_status, unsigned aborted_status)
{
    const char *gid = http_req_param(req, 0);
    outcome_known k;
    txn *t = lookup_or_outcome(gid, &k);
    if (t)
        return t;
    switch (k) {
    case OUT_COMMITTED:
        http_reply_json(req, committed_status,
                        json_pack("{s:s, s:s}", "gid", gid, "outcome", "committed"));
        break;
    case OUT_ABORTED: {
        json_t *o = json_pack("{s:s, s:s}", "gid", gid, "outcome", "aborted");
        if (aborted_status >= 400)
            json_object_set_new(o, "reason", json_string(PRESUMED_ABORT_REASON));
        http_reply_json(req, aborted_status, o);
        break;
    }
    default:
        http_reply_error(req, 404, "unknown_transaction", "no transaction %s", gid);
        break;
    }
    return NULL;
}

/*
 * POST /v1/transactions/{gid}/commit [{"branches":[...]}]. With "branches"
 * (as in the one-shot form: each participant's statements), on a
 * transaction that has no branch yet: its branches run in parallel, each
 * with its PREPARE, then the decision, as the one-shot form does. The gid is
 * the client's before anything runs, so a commit whose answer was lost is
 * simply sent again: the repeat waits for the first (op_mu) or answers the
 * outcome it reached, also after the transaction left memory; a first one
 * that never arrived runs then. Nothing runs twice.
 */
static void h_commit(http_request *req, void *app)
{
    (void)app;
    json_t *body = http_req_json(req); /* borrowed, NULL when empty */
    json_t *branches = NULL;
    char err[JSON_ERR_LEN];
    static const char *const commit_fields[] = {"branches", NULL};
    if (body && (!json_fields_known(body, commit_fields, err, sizeof(err)) ||
                 !json_field_array(body, "branches", false, &branches, err, sizeof(err)))) {
        http_reply_error(req, 400, "invalid_field", "%s", err);
        return;
    }
    /* The outcome first: a repeat of a commit that finished answers it, even
     * if its branches would no longer parse (a participant removed from the
     * configuration since, say). */
    txn *t = lookup_to_finish(req, 200, 409);
    if (!t)
        return;
    oneshot_branch *obs = NULL;
    size_t nb = 0;
    if (branches && txn_state_get(t) == TXN_ACTIVE) {
        obs = xcalloc(json_array_size(branches) + 1, sizeof(*obs));
        if (!parse_branches(req, branches, obs, &nb)) {
            free(obs);
            txn_unref(t);
            return;
        }
    }
    int64_t t0 = now_us();
    pthread_mutex_lock(&t->op_mu); /* waits for a commit of t in progress */
    pthread_mutex_lock(&t->mu);
    size_t had = t->nbranches;
    pthread_mutex_unlock(&t->mu);
    /* A commit arriving after the deadline (before the tick noticed) gets
     * the same answer as one arriving after the tick: aborted, "timeout". */
    if (still_active(t) && rollback_pending(t)) {
        /* A rollback asked first and waits for op_mu: it wins. */
        (void)txn_abort(t, EV_ROLLBACK, "rollback requested", true);
    } else if (txn_state_get(t) == TXN_ACTIVE && branches && had > 0) {
        /* Its statements would join branches whose sessions hold other
         * work: not the one-shot form. Nothing is done; t stays usable. */
        pthread_mutex_unlock(&t->op_mu);
        http_reply_error(req, 409, "wrong_state",
                         "transaction %s already has branches: 'branches' in a commit is for a "
                         "transaction with none yet (run the statements with /statements, then "
                         "commit without a body)",
                         t->gid);
        free(obs);
        txn_unref(t);
        return;
    } else if (txn_state_get(t) == TXN_ACTIVE) {
        /* stmts[] aligned with t->branches, created here in request order */
        json_t **stmts = NULL;
        if (branches) {
            stmts = xcalloc(nb + 1, sizeof(*stmts));
            for (size_t i = 0; i < nb; i++) {
                (void)txn_branch(t, obs[i].p, true);
                stmts[i] = obs[i].statements;
            }
        }
        protocol_get(t->protocol)->commit(t, stmts);
        free(stmts);
        txn_state st = txn_state_get(t);
        if (st == TXN_COMMITTING || st == TXN_COMMITTED)
            histogram_observe_us(&g_metrics.commit_latency[t->protocol], now_us() - t0);
    }
    pthread_mutex_unlock(&t->op_mu);
    reply_outcome(req, t);
    free(obs);
    txn_unref(t);
}

static void h_rollback(http_request *req, void *app)
{
    (void)app;
    if (!no_fields(req))
        return;
    txn *t = lookup_to_finish(req, 409, 200);
    if (!t)
        return;
    /* A statement running under op_mu is cancelled, again every
     * RETRY_CANCEL_MS while one runs (a cancel may arrive before its
     * statement has begun at the agent); the flag keeps the requests queued
     * behind op_mu from starting another one (or a commit) first. */
    atomic_store(&t->rollback_requested, true);
    for (bool sent = false; pthread_mutex_trylock(&t->op_mu) != 0;) {
        if (interrupt_statements(t, !sent) > 0)
            sent = true;
        struct timespec until;
        deadline_in(CLOCK_MONOTONIC, RETRY_CANCEL_MS, &until);
        if (pthread_mutex_clocklock(&t->op_mu, CLOCK_MONOTONIC, &until) == 0)
            break;
    }
    if (txn_state_get(t) == TXN_ACTIVE)
        (void)txn_abort(t, EV_ROLLBACK, "rollback requested", true);
    pthread_mutex_unlock(&t->op_mu);
    const char *outcome = txn_outcome(t, NULL);
    if (outcome && outcome[0] == 'a')
        http_reply_json(req, 200, json_pack("{s:s, s:s}", "gid", t->gid, "outcome", "aborted"));
    else if (outcome)
        http_reply_json(req, 409, json_pack("{s:s, s:s}", "gid", t->gid, "outcome", "committed"));
    else
        reply_undecided(req, t);
    txn_unref(t);
}

static void h_get(http_request *req, void *app)
{
    (void)app;
    const char *gid = http_req_param(req, 0);
    outcome_known k;
    txn *t = lookup_or_outcome(gid, &k);
    if (t) {
        http_reply_json(req, 200, txn_to_json(t));
        txn_unref(t);
        return;
    }
    /* Evicted, or from before a restart: its outcome only, from the log. */
    if (k != OUT_COMMITTED && k != OUT_ABORTED) {
        http_reply_error(req, 404, "unknown_transaction", "no transaction %s", gid);
        return;
    }
    const char *outcome = k == OUT_COMMITTED ? "committed" : "aborted";
    json_t *o = json_pack("{s:s, s:s, s:s, s:[], s:b}", "gid", gid, "state", outcome, "outcome",
                          outcome, "branches", "recovered", 1);
    if (k == OUT_ABORTED)
        json_object_set_new(o, "reason", json_string(PRESUMED_ABORT_REASON));
    http_reply_json(req, 200, o);
}

/* GET /v1/transactions[?state=S][&limit=N][&after=GID]: one page of the
 * unfinished transactions (txn_list_json); a page is bounded so that a
 * coordinator holding --max-unfinished of them answers in pieces. */
static void h_list(http_request *req, void *app)
{
    (void)app;
    const char *filter = http_req_query(req, "state");
    const char *after = http_req_query(req, "after");
    const char *limit_s = http_req_query(req, "limit");
    long long limit = LIST_LIMIT_DEFAULT;
    if (limit_s) {
        char *end = NULL;
        errno = 0;
        limit = strtoll(limit_s, &end, 10);
        if (!*limit_s || *end || errno || limit < 1 || limit > LIST_LIMIT_MAX) {
            http_reply_error(req, 400, "invalid_field",
                             "query parameter 'limit' must be an integer from 1 to %d",
                             LIST_LIMIT_MAX);
            return;
        }
    }
    if (after && !gid_parse(after, NULL, NULL, NULL)) {
        http_reply_error(req, 400, "invalid_gid",
                         "query parameter 'after' must be a gid (the \"next_after\" of the "
                         "page before)");
        return;
    }
    json_t *list = txn_list_json(filter, after, (size_t)limit);
    if (!list) {
        http_reply_error(req, 400, "invalid_field",
                         "query parameter 'state' must be in-doubt, active, preparing, "
                         "precommitting, committing or aborting");
        return;
    }
    http_reply_json(req, 200, list);
}

/* POST /v1/transactions/{gid}/resolve {"outcome":"commit"|"abort"}: an
 * operator's heuristic decision (rules in heuristic.c). */
static void h_resolve(http_request *req, void *app)
{
    (void)app;
    json_t *body = http_req_json(req);
    const char *outcome = NULL;
    char err[JSON_ERR_LEN];
    if (!body) {
        http_reply_error(req, 400, "invalid_field",
                         "a body {\"outcome\":\"commit\"|\"abort\"} is required");
        return;
    }
    static const char *const fields[] = {"outcome", NULL};
    if (!json_fields_known(body, fields, err, sizeof(err)) ||
        !json_field_string(body, "outcome", true, &outcome, err, sizeof(err))) {
        http_reply_error(req, 400, "invalid_field", "%s", err);
        return;
    }
    bool commit = strcmp(outcome, "commit") == 0;
    if (!commit && strcmp(outcome, "abort") != 0) {
        http_reply_error(req, 400, "invalid_field",
                         "field 'outcome' must be \"commit\" or \"abort\"");
        return;
    }
    json_t *answer = NULL;
    unsigned status = heuristic_resolve(http_req_param(req, 0), commit, &answer);
    http_reply_json(req, status, answer);
}

/* ---- outcomes, participants, health, metrics ------------------------- */

static void h_outcome(http_request *req, void *app)
{
    (void)app;
    const char *gid = http_req_param(req, 0);
    char cid[16];
    uint64_t epoch = 0, seq = 0;
    if (!gid_valid(gid) || !gid_parse(gid, cid, &epoch, &seq)) {
        http_reply_error(req, 400, "invalid_gid", "'%s' is not a valid global gid", gid);
        return;
    }
    if (strcmp(cid, g_coord.coord_id) != 0) {
        http_reply_error(req, 404, "unknown_coordinator",
                         "gid %s belongs to coordinator %s, this is %s", gid, cid,
                         g_coord.coord_id);
        return;
    }
    const char *outcome;
    /* ?participant=NAME (an agent's sweep): whether that participant's
     * COMMIT was acknowledged. A branch of it found prepared after that is
     * a second PREPARE of the gid, not one waiting for its commit. */
    const char *who = http_req_query(req, "participant");
    bool acknowledged = false;
    outcome_known k;
    txn *t = lookup_or_outcome(gid, &k);
    if (t) {
        switch (txn_state_get(t)) {
        case TXN_ACTIVE:
        case TXN_PREPARING:
        case TXN_PRECOMMITTING: /* 3PC 'P' without 'C': deciding (maybe from the agents) */
            outcome = "in_flight";
            break;
        case TXN_COMMITTING:
        case TXN_COMMITTED:
            outcome = "committed";
            /* A participant with no branch here has none the decision
             * covers: it voted read_only (a 'C' lists only the prepared
             * branches, so a restored transaction has no branch for it) or
             * was never in it. A branch of the gid found prepared there is
             * then no branch to commit: as acknowledged, live and restored
             * alike. */
            acknowledged = who != NULL;
            pthread_mutex_lock(&t->mu);
            for (size_t i = 0; who && i < t->nbranches; i++)
                if (strcmp(t->branches[i].participant, who) == 0)
                    acknowledged = t->branches[i].state == BR_COMMITTED ||
                                   t->branches[i].state == BR_READ_ONLY;
            pthread_mutex_unlock(&t->mu);
            break;
        default:
            outcome = "aborted";
            break;
        }
        txn_unref(t);
    } else {
        switch (k) {
        case OUT_COMMITTED:
            outcome = "committed";
            acknowledged = who && dlog_commit_ended(gid);
            break;
        case OUT_FUTURE_EPOCH:
            /* Not issued by this incarnation or any earlier one we know of:
             * our data dir may have been restored from a backup. Never guess.
             * Logged at most once a minute: anyone can ask (healthz tells the
             * epoch), and agents ask again every sweep. */
            if (future_epoch_log_due())
                txlog_warn(gid, NULL,
                           "outcome asked for a gid of a future epoch (ours is %llu; logged "
                           "at most once a minute)",
                           (unsigned long long)g_coord.epoch);
            outcome = "in_flight";
            break;
        case OUT_NOT_ISSUED: /* no branch of it can exist: nothing can commit it */
        case OUT_ABORTED:
        default:
            outcome = "aborted";
            break;
        }
    }
    json_t *body = json_pack("{s:s, s:s}", "gid", gid, "outcome", outcome);
    if (who && strcmp(outcome, "committed") == 0)
        json_object_set_new(body, "acknowledged", json_boolean(acknowledged));
    http_reply_json(req, 200, body);
}

static void h_participants(http_request *req, void *app)
{
    (void)app;
    size_t n = participants_count();
    httpc_call *calls = xcalloc(n ? n : 1, sizeof(*calls));
    for (size_t i = 0; i < n; i++)
        agent_call_init_get(&calls[i], participant_at(i), "/healthz", HEALTH_TIMEOUT_MS);
    if (n > 0)
        (void)httpc_perform(calls, n); /* status read below */
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const participant *p = participant_at(i);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:b}", "name", p->name, "url", p->url,
                                             "reachable", calls[i].status == 200));
        agent_call_free(&calls[i]);
    }
    free(calls);
    http_reply_json(req, 200, arr);
}

static void h_healthz(http_request *req, void *app)
{
    (void)app;
    http_reply_json(req, 200, json_pack("{s:s, s:s, s:I}", "status", "ok", "coord_id",
                                        g_coord.coord_id, "epoch", (json_int_t)g_coord.epoch));
}

static void h_metrics(http_request *req, void *app)
{
    (void)app;
    char *text = coord_metrics_render();
    http_reply_text(req, 200, "text/plain; version=0.0.4", text);
    free(text);
}

static const http_route routes[] = {
    {"POST", "/v1/transactions", h_begin},
    {"GET", "/v1/transactions", h_list},
    {"GET", "/v1/transactions/{gid}", h_get},
    {"POST", "/v1/transactions/{gid}/statements", h_statements},
    {"POST", "/v1/transactions/{gid}/commit", h_commit},
    {"POST", "/v1/transactions/{gid}/rollback", h_rollback},
    {"POST", "/v1/transactions/{gid}/resolve", h_resolve},
    {"GET", "/v1/outcomes/{gid}", h_outcome},
    {"GET", "/v1/participants", h_participants},
    {"GET", "/healthz", h_healthz},
    {"GET", "/metrics", h_metrics},
};

http_server *api_start(http_listener *l, const char *host, size_t max_body)
{
    return http_server_start_on(l, host, routes, ARRAY_LEN(routes), NULL, max_body);
}
