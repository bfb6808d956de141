/*
 * branch_ops.c - the agent API calls as steps on one branch (HTTP-free).
 *
 * Invariants:
 *   - Every op on a branch runs with its mutex held from lookup to answer, so
 *     calls for one branch are serialized; different branches never wait for
 *     each other (the table lock is only held for lookups). A call waits for
 *     that mutex at most FINISH_LOCK_WAIT_MS (status reads
 *     STATUS_LOCK_WAIT_MS), then answers 503 branch_busy: a holder stuck in
 *     PostgreSQL (a COMMIT PREPARED on a lost synchronous standby) must not
 *     park one more thread per re-sent call.
 *   - State changes go through branch_fsm_step only.
 *   - A yes vote is only given for a branch that is prepared in PostgreSQL
 *     (PREPARE TRANSACTION answered its own tag, or pg_prepared_xacts lists
 *     it). After a no vote or a failure the branch never votes yes and never
 *     commits.
 *   - Nothing here rolls back a prepared branch except a rollback call (the
 *     coordinator's decision) or op_resolve(commit=false) (the coordinator's
 *     outcome "aborted"); for 3PC also termination.c's decision. A
 *     precommitted branch is never rolled back.
 *   - PostgreSQL round trips: everything before PREPARE TRANSACTION travels in
 *     one pipeline (run_batch: BEGIN, SET LOCAL statement_timeout, the
 *     statements, the xid check). A 2PC one-shot prepare whose statements
 *     write puts PREPARE TRANSACTION at the end of that same pipeline (one
 *     round trip for the whole prepare; run_batch says why that is as safe);
 *     otherwise PREPARE is sent alone. COMMIT PREPARED and ROLLBACK PREPARED
 *     are always sent alone, outside pipeline mode.
 *
 * Protocol steps, prepare (one-shot form: all of them in one call):
 *   1. [unknown gid, one-shot only] look for the branch gid in
 *      pg_prepared_xacts: a re-sent one-shot prepare after a restart must not
 *      run its statements again (they would wait forever on the locks of the
 *      prepared original); found -> vote yes. Skipped (it costs a view scan
 *      per transaction) when the startup listing shows that no earlier run
 *      left this gid prepared.
 *   2. Take a pooled connection (unknown -> active); no I/O yet.
 *   3. One round trip: BEGIN, [SET LOCAL statement_timeout], the statements,
 *      then either PREPARE TRANSACTION '<branch gid>' (2PC, a statement looks
 *      like a write or rows were written: step 4 is skipped, step 5 needs no
 *      round trip of its own), or [SELECT pg_current_xact_id_if_assigned()]
 *      (3PC always; 2PC unless rows were written, which proves the xid). The
 *      first failure skips the rest (PREPARE included): vote no with its
 *      sqlstate, the failed block rolled back before the connection goes back
 *      to the pool.
 *   4. No xid -> COMMIT, vote read_only (active -> committed).
 *   5. PREPARE TRANSACTION '<branch gid>' alone (unless it ran in 3);
 *      connection back to the pool (active -> prepared).
 *   6. Crash point after-prepare. 3PC: record uncertain, forced
 *      (prepared -> uncertain; threepc.c); cannot -> ROLLBACK PREPARED, vote
 *      no. Answer yes.
 *   Crash between 3..5: PostgreSQL rolls back the open transaction when our
 *   connection drops; a re-sent prepare (without statements) finds nothing in
 *   pg_prepared_xacts and votes no (with PREPARE in the step-3 pipeline, a
 *   crash after PostgreSQL ran it is the crash between 5 and 6 below). Crash
 *   between 4 and the answer: the read-only branch is committed but a re-send
 *   votes no, so the transaction aborts, which is harmless: the branch
 *   changed nothing. Crash between 5 and
 *   6: the branch is prepared with its locks; a re-sent prepare votes yes again
 *   (step 1 or the no-statements path) and the recovery sweep finishes it as
 *   the coordinator decides.
 *
 * Protocol steps, commit:
 *   1. COMMIT PREPARED '<branch gid>' on any pooled connection (prepared ->
 *      committed). "is busy" (another backend is finishing it) -> retry.
 *   2. Crash point after-commit-prepared; answer committed.
 *   Crash between 1 and 2: the coordinator re-sends; COMMIT PREPARED answers
 *   42704, which counts as done (logged at WARN).
 *
 * Protocol steps, precommit (3PC):
 *   1. uncertain: append {gid, precommitted} and fdatasync (uncertain ->
 *      precommitted); crash point 3pc-after-precommit-record.
 *   2. Answer precommitted. A crash between 1 and 2: replay finds it
 *      precommitted; the coordinator commits without the ack, or the timer's
 *      termination commits (threepc.c).
 *
 * Shutdown: new branches are refused (503 shutting_down) and the statements
 * running on active branches are cancelled (op_cancel_running), so no call
 * stays blocked on a lock; main.c then rolls the active branches back.
 *
 * Protocol steps, rollback:
 *   1. active/failed: ROLLBACK on the branch's connection; prepared/unknown:
 *      ROLLBACK PREPARED on any pooled connection (42704 = done).
 *   2. Answer aborted. A crash between 1 and 2 is harmless: a re-send finds
 *      nothing left and answers aborted again.
 */
#include "ops.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "branch.h"
#include "fault.h"
#include "jsonutil.h"
#include "log.h"
#include "pool.h"
#include "threepc.h"

/* ---- results ---- */

static void res_ok(op_result *out, json_t *body)
{
    out->http = 200;
    out->code = NULL;
    out->message[0] = '\0';
    out->json = body;
}

/* 200 with a body already written as JSON text (taken). */
static void res_ok_text(op_result *out, char *text, size_t len)
{
    res_ok(out, NULL);
    out->text = text;
    out->text_len = len;
}

static void PRINTF_LIKE(5, 6)
    res_err(op_result *out, unsigned http, const char *code, json_t *extra, const char *fmt, ...)
{
    out->http = http;
    out->code = code;
    out->json = extra;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
}

static void res_wrong_state(op_result *out, branch *b, const char *what)
{
    branch_state s = branch_state_get(b);
    res_err(out, 409, "wrong_state", json_pack("{s:s}", "state", branch_state_name(s)),
            "cannot %s: branch is %s", what, branch_state_name(s));
}

/* 503 for an unavailable database or an exhausted pool, 500 for anything else. */
static void res_infra(op_result *out, const fsm_ctx *ctx, const char *what)
{
    if (ctx->px == PX_EXHAUSTED)
        res_err(out, 503, "pool_exhausted", NULL, "%s: no database connection free", what);
    else if (ctx->px == PX_DB_DOWN)
        res_err(out, 503, "database_unavailable", NULL, "%s: %s", what, ctx->message);
    else
        res_err(out, 500, "database_error",
                ctx->sqlstate[0] ? json_pack("{s:s}", "sqlstate", ctx->sqlstate) : NULL, "%s: %s",
                what, ctx->message);
}

static void set_reason(branch *b, const char *sqlstate, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void set_reason(branch *b, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->reason, sizeof(b->reason), fmt, ap);
    va_end(ap);
    utf8_trim_partial(b->reason); /* cut inside a character: keep it valid JSON text */
    snprintf(b->sqlstate, sizeof(b->sqlstate), "%s", sqlstate ? sqlstate : "");
}

/* For steps whose failure needs no handling beyond the fsm's own log line. */
static void step_best_effort(branch *b, branch_event ev, const char *reason, fsm_ctx *ctx)
{
    if (!branch_fsm_step(b, ev, reason, ctx)) {
        /* logged by branch_fsm_step */
    }
}

static void touch(branch *b)
{
    atomic_store(&b->last_activity_ms, now_ms());
}

static bool lock_to_finish(agent *ag, branch *b, const char *what, op_result *out);

/* Look up (creating) and lock, waiting for the lock as a finish does
 * (lock_to_finish): a PreCommit, prepare or statement re-sent while a
 * COMMIT PREPARED of the branch stalls in PostgreSQL must not park one
 * more thread for as long as the stall lasts (the peers' terminations and
 * the coordinator's recovery re-send PreCommits every round). NULL: out
 * holds the answer, 400 for an invalid gid (callers validated), 503
 * branch_busy for a lock that stayed held. */
static branch *lock_branch(agent *ag, const char *gid, const char *what, op_result *out)
{
    branch *b = branch_get(ag->table, gid, true);
    if (!b) {
        res_err(out, 400, "invalid_gid", NULL, "invalid gid");
        return NULL;
    }
    return lock_to_finish(ag, b, what, out) ? b : NULL;
}

static void unlock_branch(agent *ag, branch *b)
{
    touch(b);
    pthread_mutex_unlock(&b->mu);
    branch_put(ag->table, b);
}

/* ---- statements ---- */

typedef enum {
    STMT_OK,
    STMT_SQL_ERROR,
    STMT_TXN_ENDED,
    STMT_DB_DOWN,
    STMT_RESULT_TOO_LARGE /* ran, but its rows exceed --max-result-bytes */
} stmt_status;

/* Did a statement with this command tag surely assign an xid? True for
 * INSERT/UPDATE/DELETE/MERGE that touched rows (a heap write needs an xid).
 * False means "cannot tell" (the xid check query decides). A wrong true would
 * only turn a read_only vote into a yes, never the reverse. */
static bool tag_wrote_rows(const char *tag)
{
    static const char *const verbs[] = {"INSERT ", "UPDATE ", "DELETE ", "MERGE "};
    for (size_t i = 0; i < ARRAY_LEN(verbs); i++) {
        if (strncmp(tag, verbs[i], strlen(verbs[i])) == 0) {
            const char *count = strrchr(tag, ' ');
            return count && strtoll(count + 1, NULL, 10) > 0;
        }
    }
    return false;
}

/* Does sql contain word, ignoring case? (A hint from the text: it may be in
 * a string or a comment, which only errs on the safe side where used.) */
static bool sql_mentions(const char *sql, const char *word)
{
    return strcasestr(sql, word) != NULL;
}

/* Does the statement take or drop a session-level advisory lock (the pool's
 * own fence lock included, pool.c)? Neither is undone by a rollback. */
static bool touches_advisory_locks(const char *sql)
{
    return sql_mentions(sql, "advisory_lock") || sql_mentions(sql, "advisory_unlock");
}

/* Would a statement with this tag leave session state behind that outlives
 * its transaction (and so would leak into the next branch on the pooled
 * connection)? SET LOCAL is transaction-scoped and fine. A session-level
 * advisory lock (pg_advisory_lock, pg_try_advisory_lock, their _shared forms;
 * not the _xact_ ones) outlives COMMIT, ROLLBACK and PREPARE TRANSACTION
 * alike, and an unlock may drop the pool's own (pool.c): found by name in the
 * text, and so is set_config() (its session form, also what an UPDATE of
 * pg_settings does,
 * set_config(..., false), outlives the transaction; the local form costs
 * only a new connection). */
static bool changes_session(const char *tag, const char *sql)
{
    /* DO and CALL run procedural code, which may SET ROLE, search_path or
     * anything else at session level where no tag shows it: the session
     * is not pooled again (a function called from a SELECT is not seen). */
    static const char *const tags[] = {"RESET", "PREPARE", "LISTEN", "DECLARE CURSOR", "LOAD",
                                       "DO", "CALL"};
    for (size_t i = 0; i < ARRAY_LEN(tags); i++)
        if (strcmp(tag, tags[i]) == 0)
            return true;
    if (touches_advisory_locks(sql) || sql_mentions(sql, "set_config") ||
        sql_mentions(sql, "pg_settings"))
        return true;
    if (strcmp(tag, "SET") != 0)
        return false;
    while (isspace((unsigned char)*sql))
        sql++;
    if (strncasecmp(sql, "SET", 3) != 0 || !isspace((unsigned char)sql[3]))
        return true;
    sql += 3;
    while (isspace((unsigned char)*sql))
        sql++;
    return !(strncasecmp(sql, "LOCAL", 5) == 0 && isspace((unsigned char)sql[5]));
}

/* Does the statement begin with DO or CALL (procedural code, whose session
 * changes no tag or text shows)? For a failed statement, which has no tag. */
static bool runs_procedural_code(const char *sql)
{
    char kw[8];
    sql_first_keyword(sql, kw, sizeof(kw));
    return strcmp(kw, "DO") == 0 || strcmp(kw, "CALL") == 0;
}

/* Does the statement name a role change (SET [LOCAL] ROLE, set_config('role',
 * ...), SET SESSION AUTHORIZATION, an UPDATE of pg_settings)? By its text and
 * its parameters' (set_config($1, $2, true) with "role"), as broadly as that:
 * a false positive costs one SET before the PREPARE. */
static bool may_set_role(const char *sql, int nparams, char *const *params)
{
    if (sql_mentions(sql, "role") || sql_mentions(sql, "authorization"))
        return true;
    for (int i = 0; i < nparams; i++)
        if (params[i] && (sql_mentions(params[i], "role") ||
                          sql_mentions(params[i], "authorization")))
            return true;
    return false;
}

/* Did this statement (its command tag, its text) end (or start) a
 * transaction block? The refusal in api.c (sql_is_transaction_control) keeps
 * such statements out; this is the check after the fact. ROLLBACK TO
 * SAVEPOINT answers the tag ROLLBACK too, and stays inside the block: the
 * text tells them apart, as it does for the refusal. */
static bool tag_ends_transaction(const char *tag, const char *sql)
{
    if (strcmp(tag, "ROLLBACK") == 0)
        return sql_is_transaction_control(sql);
    static const char *const tags[] = {"COMMIT", "ROLLBACK", "PREPARE TRANSACTION",
                                       "COMMIT PREPARED", "ROLLBACK PREPARED", "BEGIN",
                                       "START TRANSACTION"};
    for (size_t i = 0; i < ARRAY_LEN(tags); i++)
        if (strcmp(tag, tags[i]) == 0)
            return true;
    return false;
}

/* Batch limits: BEGIN + SET LOCAL + xid check + role reset + PREPARE + the client statements. */
#define BATCH_FIXED 5
#define BEGIN_ATTEMPTS 3

/*
 * Run, on an active branch and in ONE round trip (pipeline mode):
 *   [BEGIN]                                  while b->begin_pending
 *   SET LOCAL statement_timeout = T          T: timeout_ms, or b->timeout_ms when 0
 *   st[0..n)                                 the client's statements
 *   [SELECT pg_current_xact_id_if_assigned()] when want_xid (sets b->xid)
 *   [PREPARE TRANSACTION '<branch gid>']     when prepare (2PC one-shot)
 * The first failure makes PostgreSQL skip the rest; it is mapped like a
 * single statement's failure (sql error with its sqlstate, lost connection,
 * statement that ended the transaction). A pooled connection found dead
 * before BEGIN ran is replaced and the batch re-sent (see below for a batch
 * that carries PREPARE). On success *result (may be NULL) gets the answer
 * of the last client statement as JSON text (pg_result_text; *result_len its
 * length), written as its rows arrive (a result over ag->max_result_bytes of
 * JSON text is cancelled and not returned, and the branch
 * fails, as the client cannot see what it did); with prepare the branch is
 * prepared in PostgreSQL and its connection idle, and the caller's next
 * step must be EV_PREPARE (b->prepared_in_batch tells fn_prepare that
 * nothing is left to send; b->maybe_prepared stays set until then, so any
 * other path that ends the branch instead sends ROLLBACK PREPARED). On
 * failure the branch is failed (rolled back, connection given back) with
 * b->reason/b->sqlstate set.
 *
 * PREPARE in the same pipeline as the statements is as safe as PREPARE sent
 * alone after checking that the transaction is still open:
 *   - nothing in the batch can end the block without an error: api.c refused
 *     transaction-control statements before anything was sent, the extended
 *     protocol runs one statement per query (no "...; COMMIT"), and COMMIT or
 *     ROLLBACK inside CALL/DO fails in an explicit block (2D000);
 *   - a statement that fails makes PostgreSQL skip everything up to the Sync,
 *     PREPARE included (PGRES_PIPELINE_ABORTED): the vote is no with that
 *     statement's sqlstate, and EV_FAIL rolls the aborted block back before
 *     the connection goes back to the pool;
 *   - PostgreSQL answers the tag "PREPARE TRANSACTION" only for an open
 *     explicit block (without one: a warning and the tag "ROLLBACK"), and only
 *     that tag counts;
 *   - the check after the fact stays: a statement whose tag shows it ended or
 *     began a transaction fails the branch, and as its PREPARE may have
 *     prepared the rest, b->maybe_prepared makes the no vote ROLLBACK
 *     PREPARED it.
 * A lost connection leaves unknown whether PREPARE ran before it went, and
 * the backend may still be alive, working through the pipeline it received
 * (blocked on a row lock, say): its PREPARE could land after our rollback
 * answered 42704, and stay prepared with its locks. So the backend is
 * terminated first, waiting for it to exit (pool_fence_backend), and
 * b->maybe_prepared is set, so the no vote (or a later rollback) also sends
 * ROLLBACK PREPARED (42704 = nothing there). An agent killed mid-pipeline
 * leaves the same kind of backend: the next instance terminates every
 * session of its predecessor before it hands out a connection (pool.c,
 * fence). Should either fence fail (PostgreSQL unreachable, or no right to
 * signal), a late PREPARE is rolled back by the recovery sweep, which asks
 * the coordinator (aborted: no yes vote was ever given for it). A batch
 * whose connection died before any answer came back (BEGIN's included: the
 * server flushes nothing before the Sync) is re-sent on a fresh connection,
 * which comes through the fence, so the old backend is gone by then; when
 * the lost pipeline's PREPARE turns out to have run (the gid is in
 * pg_prepared_xacts), nothing is re-sent (its statements would wait on
 * those prepared rows until statement_timeout): the vote is no and the no
 * vote rolls the original back. Should the check be wrong (fencing refused),
 * the re-send stays safe: its PREPARE fails (42710, the gid is taken) or its
 * statements wait as said; either way the vote is no. A PREPARE that
 * succeeds proves no earlier one holds the gid.
 */
static stmt_status run_batch(agent *ag, branch *b, const op_stmt *st, size_t n,
                             int64_t timeout_ms, bool want_xid, bool prepare, char **result,
                             size_t *result_len)
{
    fsm_ctx ctx = {.ag = ag};
    char set_timeout[64];
    pg_query qbuf[BATCH_FIXED + 8];
    pg_res rbuf[BATCH_FIXED + 8];
    size_t cap = BATCH_FIXED + n;
    pg_query *q = cap <= ARRAY_LEN(qbuf) ? qbuf : xcalloc(cap, sizeof(pg_query));
    pg_res *r = cap <= ARRAY_LEN(rbuf) ? rbuf : xcalloc(cap, sizeof(pg_res));
    stmt_status s = STMT_OK;
    size_t nq = 0, nr = 0, first_stmt = 0, xid_at = 0, fail = 0;
    bool sent_begin = false;
    /* The rows of the last statement, when the caller wants them: written as
     * they arrive, up to --max-result-bytes (pg_rows). */
    pg_rows rows = {.max_bytes = ag->max_result_bytes};
    for (int attempt = 0;; attempt++) {
        nq = 0;
        sent_begin = b->begin_pending;
        if (sent_begin)
            q[nq++] = (pg_query){"BEGIN", 0, NULL, false};
        /* Every statement is bounded: by the request's timeout_ms, else by
         * the branch's (the last one a request named, or --branch-timeout-ms;
         * always > 0). */
        int64_t bound = timeout_ms > 0 ? timeout_ms : b->timeout_ms;
        snprintf(set_timeout, sizeof(set_timeout), "SET LOCAL statement_timeout = %lld",
                 (long long)bound);
        /* The same bound for the whole batch, kept by the idle thread
         * (op_expire_idle): a statement may lift its own statement_timeout. */
        branch_batch_begins(b, now_ms() + bound + BATCH_GRACE_MS);
        q[nq++] = (pg_query){set_timeout, 0, NULL, false};
        first_stmt = nq;
        for (size_t i = 0; i < n; i++) {
            /* rows nobody reads (all but the last statement's when the
             * caller wants that one's): dropped as they come, never held
             * (a one-shot commit returns no rows at all) */
            bool wanted = result && i + 1 == n;
            q[nq++] = (pg_query){st[i].sql, st[i].nparams, (const char *const *)st[i].params,
                                 !wanted};
            if (may_set_role(st[i].sql, st[i].nparams, st[i].params))
                b->role_maybe_set = true;
        }
        xid_at = nq;
        if (want_xid)
            /* qualified: it runs after the client's statements, whose
             * SET LOCAL search_path could name a same-named function first
             * (a NULL would vote read_only and commit the branch alone) */
            q[nq++] = (pg_query){"SELECT pg_catalog.pg_current_xact_id_if_assigned()"
                                 "::pg_catalog.text",
                                 0, NULL, false};
        if (prepare && b->role_maybe_set)
            q[nq++] = (pg_query){BRANCH_RESET_ROLE_SQL, 0, NULL, false};
        nr = nq + (prepare ? 1 : 0); /* r[nq]: the PREPARE */
        pg_backend_id backend = b->backend;
        rows.query = first_stmt + n - 1;
        free(rows.text); /* from a lost attempt */
        rows.text = NULL;
        bool ok = prepare  ? pg_exec_pipeline_prepare(b->conn, q, nq, b->branch_gid, r, &fail)
                  : result && n > 0 ? pg_exec_pipeline_rows(b->conn, q, nq, &rows, r, &fail)
                                    : pg_exec_pipeline(b->conn, q, nq, r, &fail);
        atomic_store(&b->batch_overdue_ms, 0);
        if (ok)
            break;
        if (prepare && r[fail].conn_dead) {
            /* It may have run before the connection went, or may still run:
             * the backend can be alive, working through the pipeline it
             * already received (waiting on a lock, say). Terminate it first,
             * so that what the rollback finds is final. */
            b->maybe_prepared = true;
            (void)pool_fence_backend(ag->pool, &backend, true, b->gid);
        }
        /* Nothing ran when BEGIN itself found the connection dead: retry on a
         * fresh one (a pooled connection may have died with a PG restart).
         * With PREPARE in the batch, maybe_prepared covers the rare case
         * where it ran all the same (see above). */
        bool retry = sent_begin && fail == 0 && r[0].conn_dead && attempt + 1 < BEGIN_ATTEMPTS;
        if (!retry)
            break;
        for (size_t i = 0; i < nr; i++)
            pg_res_clear(&r[i]);
        if (!branch_reconnect(b, &ctx)) {
            set_reason(b, "", "database connection lost: %s", ctx.message);
            s = STMT_DB_DOWN;
            nr = 0;
            goto failed;
        }
        /* The lost pipeline's PREPARE may have run before the connection
         * went (its backend is gone now: the new connection came through the
         * fence). Re-sent, the statements would wait on that prepared
         * transaction's row locks until statement_timeout: look first, and
         * if it is there, do not re-send (the no vote rolls it back). */
        bool found = false;
        if (prepare && b->maybe_prepared &&
            (!branch_is_prepared_in_pg(ag, b->branch_gid, &ctx, &found, NULL) || found)) {
            if (found)
                set_reason(b, "", "database connection lost after PREPARE TRANSACTION ran");
            else
                set_reason(b, "", "database connection lost: %s", ctx.message);
            s = STMT_DB_DOWN;
            nr = 0;
            goto failed;
        }
    }
    if (sent_begin && (fail > 0 || fail == nr))
        b->begin_pending = false; /* BEGIN ran */
    /* Session state a rollback does not undo (a named PREPARE, LOAD) counts
     * even when the batch failed after it: the connection must not go back
     * to the pool with it. */
    for (size_t i = first_stmt; i < first_stmt + n && i < fail && i < nr && !b->session_dirty; i++)
        if (changes_session(r[i].command, st[i - first_stmt].sql))
            b->session_dirty = true;
    /* The failed (or cancelled) statement itself: a session-level advisory
     * lock it took, or the pool's that it dropped, before failing stays so
     * after the rollback too; so does whatever a DO or CALL did at session
     * level before it raised (it has no tag to show it, nor its body in the
     * text). */
    if (!b->session_dirty && fail >= first_stmt && fail < first_stmt + n &&
        (touches_advisory_locks(st[fail - first_stmt].sql) ||
         runs_procedural_code(st[fail - first_stmt].sql)))
        b->session_dirty = true;
    if (rows.too_large && (fail == nr || !r[fail].conn_dead)) {
        /* Cancelled (57014) or just done: either way not returned. */
        s = STMT_RESULT_TOO_LARGE;
        counter_inc(&ag->metrics.results_too_large);
        set_reason(b, "",
                   "result passed this agent's limit of %zu bytes as JSON (--max-result-bytes) "
                   "after %lld rows; the statement was cancelled",
                   ag->max_result_bytes, rows.rows);
        goto failed;
    }
    if (fail < nr) {
        pg_res *e = &r[fail];
        const char *what = fail < first_stmt ? (sent_begin && fail == 0 ? "BEGIN: " : "SET: ")
                           : fail == nq         ? "PREPARE TRANSACTION: "
                           : fail >= xid_at && want_xid ? "xid check: "
                                                         : "";
        if (e->conn_dead) {
            s = STMT_DB_DOWN;
            set_reason(b, e->sqlstate, "database connection lost: %s%s", what, e->message);
        } else {
            s = STMT_SQL_ERROR;
            set_reason(b, e->sqlstate, "%s%s", what, e->message);
        }
        goto failed;
    }
    for (size_t i = first_stmt; i < first_stmt + n; i++) {
        if (tag_ends_transaction(r[i].command, st[i - first_stmt].sql)) {
            s = STMT_TXN_ENDED;
            set_reason(b, "", "statement ended the transaction (%s)", r[i].command);
            if (prepare)
                b->maybe_prepared = true; /* what followed it may be prepared: undo */
            goto failed;
        }
        /* NOTIFY takes its xid only at commit, so the xid check would call
         * the branch read-only and commit it (delivering the notification)
         * before the global decision. Counted as a write instead: PREPARE
         * TRANSACTION then refuses it (0A000), and the branch votes no. */
        if (!b->wrote && (tag_wrote_rows(r[i].command) || strcmp(r[i].command, "NOTIFY") == 0 ||
                          sql_mentions(st[i - first_stmt].sql, "pg_notify")))
            b->wrote = true;
    }
    if (prepare && strcmp(r[nq].command, "PREPARE TRANSACTION") != 0) {
        s = STMT_SQL_ERROR;
        set_reason(b, "", "transaction block had failed (PREPARE TRANSACTION answered %s)",
                   r[nq].command);
        goto failed;
    }
    /* Without PREPARE the block must still be open; after it, closed. */
    if (PQtransactionStatus(b->conn) != (prepare ? PQTRANS_IDLE : PQTRANS_INTRANS)) {
        s = STMT_TXN_ENDED;
        set_reason(b, "", "statement ended the transaction (%s)",
                   n ? r[first_stmt + n - 1].command : "?");
        if (prepare)
            b->maybe_prepared = true;
        goto failed;
    }
    if (prepare) {
        /* This PREPARE took the gid (nothing else holds it) and the branch is
         * prepared: until fn_prepare records it, an abort must undo it. */
        b->maybe_prepared = true;
        b->prepared_in_batch = true;
    }
    if (want_xid) {
        const PGresult *xr = r[xid_at].res;
        bool has = xr && PQntuples(xr) == 1 && !PQgetisnull(xr, 0, 0);
        snprintf(b->xid, sizeof(b->xid), "%s", has ? PQgetvalue(xr, 0, 0) : "");
    }
    if (result && n > 0) {
        *result = rows.text; /* set: the query succeeded and fit */
        *result_len = rows.len;
        rows.text = NULL;
    }
    goto out;

failed:;
    char why[320];
    snprintf(why, sizeof(why), "%s%s%s", s == STMT_SQL_ERROR ? "sql error " : "", b->sqlstate,
             b->sqlstate[0] ? ": " : "");
    strncat(why, b->reason, sizeof(why) - strlen(why) - 1);
    step_best_effort(b, EV_FAIL, why, &ctx); /* fn_release cannot fail */
out:
    free(rows.text); /* not handed over: the batch failed after the rows came */
    for (size_t i = 0; i < nr; i++)
        pg_res_clear(&r[i]);
    if (q != qbuf)
        free(q);
    if (r != rbuf)
        free(r);
    return s;
}

static void res_statement_failure(op_result *out, branch *b, stmt_status s)
{
    switch (s) {
    case STMT_SQL_ERROR:
        res_err(out, 422, "sql_error", json_pack("{s:s}", "sqlstate", b->sqlstate), "%s",
                b->reason);
        break;
    case STMT_TXN_ENDED:
        res_err(out, 422, "transaction_ended", NULL, "%s", b->reason);
        break;
    case STMT_RESULT_TOO_LARGE:
        res_err(out, 422, "result_too_large", NULL, "%s", b->reason);
        break;
    default:
        res_err(out, 503, "database_unavailable", NULL, "%s", b->reason);
        break;
    }
}

/* unknown -> active. false with out filled on failure (branch unchanged). */
static bool begin_branch(agent *ag, branch *b, op_result *out)
{
    fsm_ctx ctx = {.ag = ag};
    if (branch_fsm_step(b, EV_BEGIN, "begin", &ctx))
        return true;
    res_infra(out, &ctx, "cannot begin branch");
    return false;
}

void op_statement(agent *ag, const char *gid, const op_stmt *st, int64_t timeout_ms,
                  bool may_begin, int64_t seq, op_result *out)
{
    branch *b = lock_branch(ag, gid, "statement", out);
    if (!b)
        return;
    if (branch_state_get(b) == BS_UNKNOWN && !may_begin) {
        txlog_warn(gid, ag->name, "statement for a branch this agent does not have (restarted "
                   "or forgotten since its last statement): refused, the transaction must abort");
        res_err(out, 409, "branch_lost", NULL,
                "no branch for this transaction here: its earlier statements were lost (agent "
                "restarted, or the branch was rolled back and forgotten)");
        goto done;
    }
    if (seq > 0 && seq <= b->last_stmt_seq && branch_state_get(b) != BS_UNKNOWN) {
        txlog_warn(gid, ag->name, "statement call %lld arrived again (a re-sent copy; the "
                   "branch ran up to %lld): not run again, refused",
                   (long long)seq, (long long)b->last_stmt_seq);
        res_err(out, 409, "duplicate_statement", NULL,
                "statement call %lld of this transaction already reached this participant (a "
                "copy re-sent after a lost connection): not run again; what the first copy "
                "did was not answered, so the transaction can only roll back",
                (long long)seq);
        goto done;
    }
    if (branch_state_get(b) == BS_UNKNOWN && atomic_load(&ag->stopping)) {
        res_err(out, 503, "shutting_down", NULL, "agent is shutting down");
        goto done;
    }
    if (branch_state_get(b) == BS_UNKNOWN && !begin_branch(ag, b, out))
        goto done;
    if (branch_state_get(b) != BS_ACTIVE) {
        res_wrong_state(out, b, "run a statement");
        goto done;
    }
    if (timeout_ms > 0)
        b->timeout_ms = timeout_ms;
    if (seq > b->last_stmt_seq)
        b->last_stmt_seq = seq; /* before it runs: a copy must not run it too, even if it fails */
    char *result = NULL;
    size_t result_len = 0;
    stmt_status s = run_batch(ag, b, st, 1, timeout_ms, false, false, &result, &result_len);
    if (s == STMT_OK)
        res_ok_text(out, result, result_len);
    else
        res_statement_failure(out, b, s);
done:
    unlock_branch(ag, b);
}

/* ---- prepare ---- */

static void res_vote(agent *ag, op_result *out, branch *b, branch_vote vote)
{
    json_t *body = json_pack("{s:s, s:s}", "vote",
                             vote == VOTE_YES ? "yes" : vote == VOTE_NO ? "no" : "read_only",
                             "branch_gid", b->branch_gid);
    if (vote == VOTE_NO) {
        json_object_set_new(body, "reason",
                            json_string_lossy(b->reason[0] ? b->reason : "branch was rolled back"));
        if (b->sqlstate[0])
            json_object_set_new(body, "sqlstate", json_string(b->sqlstate));
        counter_inc(&ag->metrics.vote_no);
    } else if (vote == VOTE_YES) {
        /* Kept by the coordinator and sent back with the outcome: should
         * this agent forget the branch (or restart without a record of it)
         * before that, a 42704 is checked against PostgreSQL's word on the
         * xid instead of taken as done (ops.h, op_commit). */
        if (b->xid[0])
            json_object_set_new(body, "xid", json_string(b->xid));
        counter_inc(&ag->metrics.vote_yes);
    } else {
        counter_inc(&ag->metrics.vote_read_only);
    }
    b->vote = vote;
    res_ok(out, body);
}

/* The branch cannot be prepared: roll back what is left and vote no. The vote
 * is no even if the rollback fails now (then the branch stays failed and the
 * rollback call or the sweep finishes it). */
static void vote_no(agent *ag, branch *b, op_result *out)
{
    fsm_ctx ctx = {.ag = ag};
    char why[300];
    snprintf(why, sizeof(why), "vote no: %s", b->reason[0] ? b->reason : "branch was rolled back");
    branch_state s = branch_state_get(b);
    if (s == BS_UNKNOWN || s == BS_ACTIVE || s == BS_FAILED) {
        if (!branch_fsm_step(b, EV_VOTE_NO, why, &ctx) && s == BS_ACTIVE)
            step_best_effort(b, EV_FAIL, why, &ctx); /* at least give the connection back */
    } else {
        txlog_info(b->gid, ag->name, "%s (branch already %s)", why, branch_state_name(s));
    }
    res_vote(ag, out, b, VOTE_NO);
}

/* Does sql start (after whitespace) with INSERT, UPDATE, DELETE or MERGE?
 * Only a hint: yes sends PREPARE with the statements (2PC), no sends the xid
 * check instead (a read_only vote stays possible); anything else (WITH,
 * comments, SELECT) says no. */
static bool looks_like_write(const char *sql)
{
    static const char *const verbs[] = {"INSERT", "UPDATE", "DELETE", "MERGE"};
    while (isspace((unsigned char)*sql))
        sql++;
    for (size_t i = 0; i < ARRAY_LEN(verbs); i++) {
        size_t l = strlen(verbs[i]);
        if (strncasecmp(sql, verbs[i], l) == 0 && (isspace((unsigned char)sql[l]) || !sql[l]))
            return true;
    }
    return false;
}

static bool any_looks_like_write(const op_stmt *st, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (looks_like_write(st[i].sql))
            return true;
    return false;
}

/* Prepared branch: for 3PC record the uncertain state durably first (a yes
 * vote must survive a crash of this agent); then vote yes. A branch that
 * cannot be recorded is rolled back and votes no (no yes was ever given). */
static void vote_yes(agent *ag, branch *b, op_result *out)
{
    fsm_ctx ctx = {.ag = ag};
    if (b->tp && branch_state_get(b) == BS_PREPARED) {
        if (!b->xid[0]) {
            bool found; /* re-sent after a restart: learn the xid from PostgreSQL */
            if (!branch_is_prepared_in_pg(ag, b->branch_gid, &ctx, &found, b->xid))
                b->xid[0] = '\0';
        }
        if (!branch_fsm_step(b, EV_RECORD, "vote yes", &ctx)) {
            set_reason(b, "", "%s", ctx.message);
            step_best_effort(b, EV_ROLLBACK, "3pc state not recorded", &ctx);
            vote_no(ag, b, out);
            return;
        }
    }
    res_vote(ag, out, b, VOTE_YES);
}

/* Active branch. 2PC one-shot whose statements write: BEGIN, the
 * statements and PREPARE TRANSACTION in one round trip. Otherwise: the
 * statements (BEGIN, statement_timeout and the xid check in the same round
 * trip), then PREPARE TRANSACTION alone, or COMMIT for a read-only branch. */
static void prepare_active(agent *ag, branch *b, const op_prepare_req *req, op_result *out)
{
    fsm_ctx ctx = {.ag = ag};
    /* The request's bound is the branch's from here, as for a statement
     * call: the PREPARE or COMMIT sent alone below is bounded by it too
     * (arm_overdue), not by an older or default one. */
    if (req->timeout_ms > 0)
        b->timeout_ms = req->timeout_ms;
    /* PREPARE rides with the statements only where the xid check is not
     * needed before it: PREPARE assigns an xid itself, so a branch prepared
     * that way can no longer vote read_only. So 2PC only (3PC records the
     * xid, and always asks for it), and only when the branch surely writes
     * (rows written already) or a statement looks like a write; should such a
     * write touch no row, the branch votes yes instead of read_only, which is
     * always safe. */
    bool pipelined =
        !b->tp && req->n > 0 && (b->wrote || any_looks_like_write(req->stmts, req->n));
    if (pipelined) {
        if (run_batch(ag, b, req->stmts, req->n, req->timeout_ms, false, true, NULL, NULL) != STMT_OK) {
            vote_no(ag, b, out);
            return;
        }
        /* Prepared in PostgreSQL. Should the step below fail, the no vote
         * must roll it back. */
        b->maybe_prepared = true;
    } else {
        /* Does the transaction have an xid (read_only vote if not)? 2PC: rows
         * written say yes; else the check travels in the statements' round
         * trip. 3PC keeps the xid itself (replay asks pg_xact_status about
         * it): always asked. */
        bool batch_xid = b->tp || !b->wrote;
        if ((req->n > 0 || b->begin_pending || batch_xid) &&
            run_batch(ag, b, req->stmts, req->n, req->timeout_ms, batch_xid, false, NULL, NULL) !=
                STMT_OK) {
            vote_no(ag, b, out);
            return;
        }
        bool has_xid = b->xid[0] != '\0' || b->wrote;
        if (!has_xid) {
            /* The vote before the state: GET /v1/branches/{gid} reads both
             * without b->mu, and a 3PC peer's termination protocol must never
             * see "committed" without "read_only" (a read-only commit says
             * nothing about the transaction; a plain one would make that
             * peer commit). */
            b->vote = VOTE_READ_ONLY;
            if (branch_fsm_step(b, EV_READ_ONLY, "vote read_only", &ctx)) {
                res_vote(ag, out, b, VOTE_READ_ONLY);
                return;
            }
            b->vote = VOTE_NONE;
            set_reason(b, ctx.sqlstate, "%s", ctx.message);
            vote_no(ag, b, out);
            return;
        }
    }
    /* Pipelined: fn_prepare finds b->prepared_in_batch and sends nothing;
     * else it sends PREPARE alone now. */
    if (branch_fsm_step(b, EV_PREPARE, b->tp ? "prepared, recording 3pc state" : "vote yes",
                        &ctx)) {
        b->maybe_prepared = false;
        fault_point("after-prepare");
        vote_yes(ag, b, out);
        return;
    }
    set_reason(b, ctx.sqlstate, "%s", ctx.message);
    if (ctx.px == PX_DB_DOWN)
        step_best_effort(b, EV_FAIL, b->reason, &ctx);
    vote_no(ag, b, out);
}

static int cmp_gid(const void *key, const void *elem)
{
    return strcmp(key, *(char *const *)elem);
}

/* Could an earlier run of this agent have left gid prepared? (agent.h) */
static bool maybe_prepared_before_start(agent *ag, const char *gid)
{
    if (!atomic_load_explicit(&ag->prepared_at_start_listed, memory_order_acquire))
        return true; /* not listed yet: cannot tell */
    return bsearch(gid, ag->prepared_at_start, ag->nprepared_at_start, sizeof(char *),
                   cmp_gid) != NULL;
}

void op_prepare(agent *ag, const char *gid, const op_prepare_req *req, op_result *out)
{
    int64_t t0 = now_us();
    fsm_ctx ctx = {.ag = ag};
    size_t n = req->n;
    branch *b = lock_branch(ag, gid, "prepare", out);
    if (!b)
        return;
    branch_state s0 = branch_state_get(b);
    if (req->tp && !b->tp && (s0 == BS_UNKNOWN || s0 == BS_ACTIVE || s0 == BS_PREPARED))
        b->tp = tp_branch_new(req->tp);
    switch (s0) {
    case BS_UNKNOWN:
        if (atomic_load(&ag->stopping)) {
            res_err(out, 503, "shutting_down", NULL, "agent is shutting down");
            break;
        }
        /* Not in memory: a re-send after a restart, or a new one-shot branch
         * (which only needs the look-up if an earlier run may have prepared it). */
        if (n > 0 && !maybe_prepared_before_start(ag, gid)) {
            if (begin_branch(ag, b, out))
                prepare_active(ag, b, req, out);
            break;
        }
        if (branch_fsm_step(b, EV_FOUND_PREPARED, "found in pg_prepared_xacts", &ctx)) {
            txlog_info(b->gid, ag->name, "vote yes (re-sent, branch found in pg_prepared_xacts)");
            vote_yes(ag, b, out);
            break;
        }
        if (ctx.px != PX_OK) {
            res_infra(out, &ctx, "cannot look up branch");
            break;
        }
        if (n == 0) {
            set_reason(b, "", "unknown branch (agent restarted?)");
            vote_no(ag, b, out);
            break;
        }
        if (!begin_branch(ag, b, out))
            break;
        prepare_active(ag, b, req, out);
        break;
    case BS_ACTIVE:
        prepare_active(ag, b, req, out);
        break;
    case BS_PREPARED:
        txlog_info(b->gid, ag->name, "vote yes (re-sent, branch already prepared)");
        vote_yes(ag, b, out);
        break;
    case BS_UNCERTAIN:
    case BS_PRECOMMITTED:
        txlog_info(b->gid, ag->name, "vote yes (re-sent, branch already %s)",
                   branch_state_name(s0));
        if (s0 == BS_UNCERTAIN) /* the coordinator is alive: restart the wait */
            threepc_rearm(b, b->tp->uncertain_timeout_ms);
        res_vote(ag, out, b, VOTE_YES);
        break;
    case BS_COMMITTED:
        txlog_info(b->gid, ag->name, "vote %s (re-sent, branch committed)",
                   b->vote == VOTE_READ_ONLY ? "read_only" : "yes");
        res_vote(ag, out, b, b->vote == VOTE_READ_ONLY ? VOTE_READ_ONLY : VOTE_YES);
        break;
    case BS_FAILED:
    case BS_ABORTED:
    default:
        vote_no(ag, b, out);
        break;
    }
    if (out->http == 200 && out->json && b->vote == VOTE_YES && b->tp &&
        atomic_load(&b->tp->logged) == TP_UNCERTAIN) {
        /* 3PC: how long after this call reached us the uncertain timer
         * (re)started. The coordinator adds it to the time it sent the call
         * for the earliest moment the timer can have started, and so when it
         * can fire at the soonest; the time the vote came back would be too
         * late by however long the answer took (threepc.c, 3/4 check). */
        int64_t armed_ms = (int64_t)atomic_load(&b->tp->deadline_ms) - b->tp->uncertain_timeout_ms;
        int64_t after_ms = armed_ms - t0 / 1000 - 1; /* - 1: both read in whole ms */
        json_object_set_new(out->json, "timer_after_ms", json_integer(after_ms > 0 ? after_ms : 0));
    }
    if (out->http == 200)
        histogram_observe_us(&ag->metrics.prepare_latency, now_us() - t0);
    unlock_branch(ag, b);
}

/* ---- commit / rollback ---- */

/* How long a status read waits for a 3PC branch's lock: well below the
 * peers' 3 s call timeout (termination.c), so that the asker hears "busy",
 * not silence, even when the answer itself is slow to get there (a silent
 * peer counts as unreachable, and that can lead to an abort). */
#define STATUS_LOCK_WAIT_MS 1000

/* 503 branch_busy: its lock stayed held (STATUS_LOCK_WAIT_MS, or
 * FINISH_LOCK_WAIT_MS for the calls that change it). */
static void res_busy(op_result *out, const branch *b)
{
    res_err(out, 503, "branch_busy", NULL,
            "branch %s is busy (a PreCommit, a finish or another call in progress); ask again",
            b->branch_gid);
}

/* How long a call that changes a branch (commit, rollback, prepare,
 * precommit, statement: lock_branch) waits for its branch's lock. The holder
 * may be a COMMIT/ROLLBACK PREPARED that PostgreSQL keeps waiting (on a
 * synchronous standby that is gone, on a stalled disk): there is no bound
 * on those, as there is none on PostgreSQL's own commit. Without this one,
 * every re-send of the coordinator (one per resolver round) would park one
 * more agent thread behind that lock, for as long as the stall lasts. After
 * it: 503 branch_busy, which the coordinator takes as "not acknowledged"
 * and re-sends later (agent.c). Below the coordinator's default
 * --agent-timeout-ms (10 s), so that it reads "busy", not a timeout. */
#define FINISH_LOCK_WAIT_MS 5000

/* Lock b (a reference the caller holds) within FINISH_LOCK_WAIT_MS. Else:
 * log, answer 503 branch_busy (when out is given: the sweep has none, it
 * leaves the branch for its next round), give the reference back, false. */
static bool lock_to_finish(agent *ag, branch *b, const char *what, op_result *out)
{
    if (branch_lock_within(b, FINISH_LOCK_WAIT_MS)) {
        touch(b);
        return true;
    }
    txlog_warn(b->gid, ag->name, "%s: the branch stayed busy %d ms (a COMMIT or ROLLBACK "
               "PREPARED still waiting in PostgreSQL, or another call on it?): %s", what,
               FINISH_LOCK_WAIT_MS,
               out ? "answering busy" : "left for the next sweep");
    if (out)
        res_busy(out, b);
    branch_put(ag->table, b);
    return false;
}

/* The coordinator's copy of the branch's xid, for a branch that has none
 * (forgotten, or never asked): finish_prepared checks a 42704 against it. */
static void adopt_xid(branch *b, const char *xid)
{
    if (xid && *xid && !b->xid[0])
        snprintf(b->xid, sizeof(b->xid), "%s", xid);
}

void op_commit(agent *ag, const char *gid, const char *xid, op_result *out)
{
    fsm_ctx ctx = {.ag = ag};
    branch *b = branch_get(ag->table, gid, true);
    if (!b) {
        res_err(out, 400, "invalid_gid", NULL, "invalid gid");
        return;
    }
    if (!lock_to_finish(ag, b, "commit", out))
        return;
    adopt_xid(b, xid);
    if (!threepc_verify(ag, b, &ctx)) {
        res_infra(out, &ctx, "commit");
        unlock_branch(ag, b);
        return;
    }
    switch (branch_state_get(b)) {
    case BS_UNKNOWN:
    case BS_PREPARED:
    case BS_UNCERTAIN:
    case BS_PRECOMMITTED:
        if (!branch_fsm_step(b, EV_COMMIT, "commit", &ctx)) {
            if (ctx.found_other_way) /* it had aborted (branch_fsm.c, finish_prepared) */
                res_wrong_state(out, b, "commit");
            else
                res_infra(out, &ctx, "COMMIT PREPARED failed");
            break;
        }
        fault_point("after-commit-prepared");
        res_ok(out, json_pack("{s:s}", "state", "committed"));
        break;
    case BS_COMMITTED:
        txlog_info(b->gid, ag->name, "commit re-sent: already committed");
        res_ok(out, json_pack("{s:s}", "state", "committed"));
        break;
    default:
        res_wrong_state(out, b, "commit");
        break;
    }
    unlock_branch(ag, b);
}

/* A statement cancelled for a rollback (op_rollback, op_cancel): its batch
 * is overdue from now on, so that should it survive the cancel, the idle
 * thread cancels it again and then terminates it (cancel_if_overdue), 2 s
 * later rather than at its own bound. */
static void overdue_now(branch *b)
{
    int64_t due = atomic_load(&b->batch_overdue_ms), now = now_ms();
    if (due > now)
        (void)atomic_compare_exchange_strong(&b->batch_overdue_ms, &due, now);
}

void op_rollback(agent *ag, const char *gid, const char *xid, op_result *out)
{
    fsm_ctx ctx = {.ag = ag};
    branch *b = branch_get(ag->table, gid, true);
    if (!b) {
        res_err(out, 400, "invalid_gid", NULL, "invalid gid");
        return;
    }
    if (pthread_mutex_trylock(&b->mu) != 0) {
        /* A statement is running (maybe waiting on a lock forever): cancel it;
         * it then fails the branch and gives the mutex up. */
        if (branch_state_get(b) == BS_ACTIVE) {
            txlog_info(b->gid, ag->name, "rollback: cancelling the running statement");
            branch_cancel_running(b);
            overdue_now(b);
        }
        if (!lock_to_finish(ag, b, "rollback", out))
            return;
    }
    touch(b);
    adopt_xid(b, xid);
    if (!threepc_verify(ag, b, &ctx)) {
        res_infra(out, &ctx, "rollback");
        unlock_branch(ag, b);
        return;
    }
    switch (branch_state_get(b)) {
    case BS_UNKNOWN:
    case BS_PREPARED:
    case BS_ACTIVE:
    case BS_FAILED:
    case BS_UNCERTAIN:
        if (!branch_fsm_step(b, EV_ROLLBACK, "rollback", &ctx)) {
            if (ctx.found_other_way) /* it had committed (branch_fsm.c, finish_prepared) */
                res_wrong_state(out, b, "roll back");
            else
                res_infra(out, &ctx, "rollback failed");
            break;
        }
        res_ok(out, json_pack("{s:s}", "state", "aborted"));
        break;
    case BS_ABORTED:
        res_ok(out, json_pack("{s:s}", "state", "aborted"));
        break;
    case BS_COMMITTED:
    default:
        if (b->vote == VOTE_READ_ONLY) { /* changed nothing: as good as aborted */
            res_ok(out, json_pack("{s:s}", "state", "aborted"));
            break;
        }
        res_wrong_state(out, b, "roll back");
        break;
    }
    unlock_branch(ag, b);
}

/* The coordinator's rollback does not wait for a statement that may wait on
 * a lock for the rest of its transaction's time: it asks for this first.
 * Only what runs on an active branch's session is cancelled (a statement,
 * or the PREPARE TRANSACTION of a prepare call), exactly as its
 * statement_timeout would: it fails, the branch fails and can only vote no.
 * Nothing is rolled back here, so a cancel that arrives late (the branch
 * since prepared, or finished) changes nothing, and one that lands on a
 * PREPARE makes the branch vote no, which the rollback that sent it wants
 * anyway: unlike a rollback, it can never undo a prepared branch behind a
 * commit decision. "cancelled" says the branch was busy, not what ran.
 * Without b->mu: the running statement holds it. */
void op_cancel(agent *ag, const char *gid, op_result *out)
{
    branch *b = branch_get(ag->table, gid, false); /* gid checked by the API */
    bool sent = false;
    if (b && branch_state_get(b) == BS_ACTIVE) {
        if (pthread_mutex_trylock(&b->mu) == 0) {
            pthread_mutex_unlock(&b->mu); /* nothing runs */
        } else {
            txlog_info(b->gid, ag->name, "cancel: cancelling the running statement (the "
                       "coordinator rolls the transaction back)");
            branch_cancel_running(b);
            overdue_now(b);
            sent = true;
        }
    }
    if (b)
        branch_put(ag->table, b);
    res_ok(out, json_pack("{s:b}", "cancelled", sent));
}

void op_precommit(agent *ag, const char *gid, bool from_peer, op_result *out)
{
    fsm_ctx ctx = {.ag = ag};
    branch *b = lock_branch(ag, gid, "precommit", out);
    if (!b)
        return;
    if (!threepc_verify(ag, b, &ctx)) {
        res_infra(out, &ctx, "precommit");
        unlock_branch(ag, b);
        return;
    }
    switch (branch_state_get(b)) {
    case BS_UNCERTAIN:
        if (!from_peer && b->tp && atomic_load(&b->tp->fenced)) {
            /* A peer's termination read us uncertain and may have decided
             * abort on it (all uncertain): the coordinator's PreCommit
             * cannot be taken any more. A peer's PreCommit still can: a peer
             * sends one only when some branch is precommitted, i.e. commit. */
            txlog_warn(b->gid, ag->name, "precommit refused: a peer's termination read this "
                       "branch uncertain (fenced)");
            res_err(out, 409, "wrong_state",
                    json_pack("{s:s, s:b}", "state", "uncertain", "fenced", 1),
                    "cannot precommit: a peer's termination read this branch uncertain");
            break;
        }
        if (!branch_fsm_step(b, EV_PRECOMMIT, "precommit", &ctx)) {
            res_err(out, 500, "precommit_failed", NULL, "%s", ctx.message);
            break;
        }
        res_ok(out, json_pack("{s:s}", "state", "precommitted"));
        break;
    case BS_PRECOMMITTED:
        txlog_info(b->gid, ag->name, "precommit re-sent: already precommitted");
        threepc_rearm(b, b->tp->precommit_timeout_ms);
        res_ok(out, json_pack("{s:s}", "state", "precommitted"));
        break;
    case BS_COMMITTED:
        if (b->tp && b->vote != VOTE_READ_ONLY) { /* further along: as good as an ack */
            txlog_info(b->gid, ag->name, "precommit: branch already committed");
            res_ok(out, json_pack("{s:s}", "state", "committed"));
            break;
        }
        res_wrong_state(out, b, "precommit");
        break;
    default:
        res_wrong_state(out, b, "precommit");
        break;
    }
    unlock_branch(ag, b);
}

/* ---- reads ---- */

static json_t *branch_json(const char *gid, const char *bgid, const char *state)
{
    return json_pack("{s:s, s:s, s:s}", "gid", gid, "branch_gid", bgid, "state", state);
}

/* The answer for a branch held in memory (peers of a 3PC branch read
 * "read_only" to skip a branch that committed without a vote that counts). */
static json_t *branch_json_of(branch *b, branch_state s)
{
    json_t *o = branch_json(b->gid, b->branch_gid, branch_state_name(s));
    if (b->tp)
        json_object_set_new(o, "protocol", json_string("3pc"));
    if (s == BS_COMMITTED && b->vote == VOTE_READ_ONLY)
        json_object_set_new(o, "read_only", json_true());
    return o;
}

/* GET /v1/branches/{gid}. Peers' terminations and the coordinator's 3PC
 * recovery decide on this answer, and "uncertain" everywhere means abort:
 * a 3PC branch read as prepared or uncertain is read again under its lock,
 * because a PreCommit may be in the middle of being made durable (state
 * still uncertain, lock held). Busy past STATUS_LOCK_WAIT_MS: 503
 * branch_busy, which the asker takes as "cannot tell yet", never as
 * uncertain. */
void op_status(agent *ag, const char *gid, bool fence, op_result *out)
{
    branch *b = branch_get(ag->table, gid, false);
    if (b && b->tp && atomic_load(&b->tp->unverified)) {
        /* Replayed while PostgreSQL was down: peers decide on this answer.
         * Busy (the lock held past the wait) is answered as a failed
         * verification is. */
        fsm_ctx vctx = {.ag = ag};
        bool ok = false, busy = !branch_lock_within(b, STATUS_LOCK_WAIT_MS);
        if (!busy) {
            ok = threepc_verify(ag, b, &vctx);
            pthread_mutex_unlock(&b->mu);
        }
        if (!ok) {
            /* Still precommitted, or committed with its final record lost:
             * either way the answer that counts is "precommitted" (commit). */
            if (atomic_load(&b->tp->logged) == TP_PRECOMMITTED)
                res_ok(out, branch_json(gid, b->branch_gid, "precommitted"));
            else if (busy)
                res_busy(out, b);
            else /* 503 whatever failed: "cannot tell yet", never unreachable */
                res_err(out, 503, "branch_unverified", NULL,
                        "branch %s: its state is not verified against PostgreSQL yet (%s); ask "
                        "again",
                        b->branch_gid, vctx.message);
            branch_put(ag->table, b);
            return;
        }
    }
    branch_state s = b ? branch_state_get(b) : BS_UNKNOWN;
    if (b && b->tp && (s == BS_PREPARED || s == BS_UNCERTAIN)) {
        if (!branch_lock_within(b, STATUS_LOCK_WAIT_MS)) {
            res_busy(out, b);
            branch_put(ag->table, b);
            return;
        }
        s = branch_state_get(b);
        if (fence && s == BS_UNCERTAIN && !atomic_load(&b->tp->fenced) &&
            !threepc_record_fenced(ag, b)) {
            /* Not durable: the asker must not decide on this answer. */
            pthread_mutex_unlock(&b->mu);
            res_busy(out, b);
            branch_put(ag->table, b);
            return;
        }
        pthread_mutex_unlock(&b->mu);
    }
    if (s != BS_UNKNOWN) {
        res_ok(out, branch_json_of(b, s));
        branch_put(ag->table, b);
        return;
    }
    branch_put(ag->table, b);
    char bgid[BRANCH_GID_MAX_LEN + 1];
    if (!branch_gid_make(bgid, sizeof(bgid), gid, ag->name)) {
        res_err(out, 400, "invalid_gid", NULL, "invalid gid");
        return;
    }
    fsm_ctx ctx = {.ag = ag};
    bool found;
    if (!branch_is_prepared_in_pg(ag, bgid, &ctx, &found, NULL)) {
        res_infra(out, &ctx, "cannot look up branch");
        return;
    }
    res_ok(out, branch_json(gid, bgid, found ? "prepared" : "unknown"));
}

void op_list(agent *ag, op_result *out)
{
    json_t *arr = json_array();
    size_t n;
    branch **bs = branch_table_snapshot(ag->table, &n, false);
    for (size_t i = 0; i < n; i++) {
        branch_state s = branch_state_get(bs[i]);
        if (s != BS_UNKNOWN)
            json_array_append_new(arr, branch_json_of(bs[i], s));
    }
    /* Prepared branches PostgreSQL has that memory does not (after a restart). */
    pg_res r;
    px_status ps = pool_query(ag->pool, POOL_WAIT_MS,
                              "SELECT gid FROM pg_prepared_xacts WHERE database = "
                              "current_database() AND starts_with(gid, 'txc:') ORDER BY gid",
                              0, NULL, &r);
    bool db_ok = ps == PX_OK && r.res;
    for (int row = 0; db_ok && row < PQntuples(r.res); row++) {
        const char *bgid = PQgetvalue(r.res, row, 0);
        char gid[GID_MAX_LEN + 1], part[PARTICIPANT_MAX_LEN + 1];
        if (!branch_gid_parse(bgid, gid, part) || strcmp(part, ag->name) != 0)
            continue;
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = branch_state_get(bs[i]) != BS_UNKNOWN && strcmp(bs[i]->gid, gid) == 0;
        if (!known)
            json_array_append_new(arr, branch_json(gid, bgid, "prepared"));
    }
    pg_res_clear(&r);
    for (size_t i = 0; i < n; i++)
        branch_put(ag->table, bs[i]);
    free(bs);
    json_t *body = json_pack("{s:o}", "branches", arr);
    if (!db_ok)
        json_object_set_new(body, "database", json_string("unavailable"));
    res_ok(out, body);
}

/* ---- recovery and housekeeping ---- */

bool op_in_progress(agent *ag, const char *gid)
{
    branch *b = branch_get(ag->table, gid, false);
    bool skip = b && (branch_state_get(b) == BS_ACTIVE || threepc_owns(b));
    branch_put(ag->table, b);
    return skip;
}

typedef struct {
    int64_t last_ms;
    branch *b;
} idle_entry;

static int cmp_idle_oldest(const void *x, const void *y)
{
    const idle_entry *a = x, *b = y;
    return a->last_ms < b->last_ms ? -1 : a->last_ms > b->last_ms;
}

size_t op_idle_open(agent *ag, int64_t min_idle_ms, char (*gids)[GID_MAX_LEN + 1], size_t max)
{
    size_t n, k = 0;
    int64_t now = now_ms();
    branch **bs = branch_table_snapshot(ag->table, &n, true);
    idle_entry *idle = xcalloc(n ? n : 1, sizeof(*idle));
    for (size_t i = 0; i < n; i++) {
        int64_t last = atomic_load(&bs[i]->last_activity_ms);
        if (branch_state_get(bs[i]) == BS_ACTIVE && now - last >= min_idle_ms)
            idle[k++] = (idle_entry){last, bs[i]};
    }
    /* The longest idle first: with more than max of them, every sweep asks
     * about the likeliest orphans, not the same first max of the table. */
    qsort(idle, k, sizeof(*idle), cmp_idle_oldest);
    if (k > max)
        k = max;
    for (size_t i = 0; i < k; i++)
        snprintf(gids[i], GID_MAX_LEN + 1, "%s", idle[i].b->gid);
    for (size_t i = 0; i < n; i++)
        branch_put(ag->table, bs[i]);
    free(idle);
    free(bs);
    return k;
}

/* Lock b if it is active and idle for more than limit_ms (< 0: its own
 * timeout_ms, read under the lock): the idle time, with b->mu held; -1, not
 * locked, otherwise. trylock: a branch whose mutex is held is in use. */
static int64_t lock_if_idle(branch *b, int64_t now, int64_t limit_ms)
{
    if (branch_state_get(b) != BS_ACTIVE || pthread_mutex_trylock(&b->mu) != 0)
        return -1;
    int64_t idle = now - atomic_load(&b->last_activity_ms);
    if (branch_state_get(b) == BS_ACTIVE && idle > (limit_ms < 0 ? b->timeout_ms : limit_ms))
        return idle;
    pthread_mutex_unlock(&b->mu);
    return -1;
}

bool op_abort_open(agent *ag, const char *gid, int64_t min_idle_ms)
{
    branch *b = branch_get(ag->table, gid, false);
    if (!b)
        return false;
    bool done = false;
    int64_t idle = lock_if_idle(b, now_ms(), min_idle_ms);
    if (idle >= 0) {
        fsm_ctx ctx = {.ag = ag};
        set_reason(b, "", "rolled back by the agent: the coordinator says the transaction "
                   "aborted (it restarted, or its rollback never arrived)");
        done = branch_fsm_step(b, EV_ROLLBACK, "coordinator says aborted", &ctx);
        if (done) {
            txlog_info(b->gid, ag->name, "open branch rolled back: the coordinator says its "
                       "transaction aborted (idle %lld ms)", (long long)idle);
            counter_inc(&ag->metrics.sweep_open_aborted);
        }
        pthread_mutex_unlock(&b->mu);
    }
    branch_put(ag->table, b);
    return done;
}

bool op_resolve(agent *ag, const char *gid, bool commit)
{
    const char *outcome = commit ? "committed" : "aborted";
    fsm_ctx ctx = {.ag = ag};
    branch *b = branch_get(ag->table, gid, true);
    if (!b)
        return false;
    /* The sweep is one thread: a branch held by a finish PostgreSQL keeps
     * waiting must not stop it for every other one (FINISH_LOCK_WAIT_MS). */
    if (!lock_to_finish(ag, b, "sweep", NULL))
        return false;
    bool done;
    branch_state s = branch_state_get(b);
    if (s == BS_UNKNOWN || s == BS_PREPARED) {
        done = branch_fsm_step(b, commit ? EV_COMMIT : EV_ROLLBACK, "coordinator outcome", &ctx);
        if (done) {
            txlog_info(b->gid, ag->name, "resolved prepared branch: %s (coordinator outcome)",
                       outcome);
            counter_inc(commit ? &ag->metrics.sweep_committed : &ag->metrics.sweep_aborted);
        }
    } else if (s == BS_FAILED && !commit) {
        /* PREPARE's outcome was unknown (connection lost), or a late orphan
         * of ours holds the gid: the sweep found it in pg_prepared_xacts, so
         * ROLLBACK PREPARED now, even if this branch never saw its PREPARE
         * succeed (the rollback sends it only when maybe_prepared). */
        b->maybe_prepared = true;
        done = branch_fsm_step(b, EV_ROLLBACK, "coordinator outcome", &ctx);
        if (done)
            counter_inc(&ag->metrics.sweep_aborted);
    } else if (s == BS_ABORTED && !commit) {
        /* The sweep found it in pg_prepared_xacts although it was rolled back
         * (a PREPARE that reached PostgreSQL after the rollback, or the
         * coordinator's rollback finished it since the listing): ROLLBACK
         * PREPARED again; 42704 means the latter, done either way. */
        done = branch_fsm_step(b, EV_FOUND_PREPARED, "prepared again after its rollback", &ctx);
        if (done) {
            txlog_info(b->gid, ag->name,
                       "resolved prepared branch: aborted (found prepared after its rollback)");
            counter_inc(&ag->metrics.sweep_aborted);
        }
    } else {
        /* Finished meanwhile by the coordinator's own call (or never prepared). */
        done = s == (commit ? BS_COMMITTED : BS_ABORTED);
        bool found = false;
        if (done && commit &&
            branch_is_prepared_in_pg(ag, b->branch_gid, &ctx, &found, NULL) && found) {
            /* Committed here, and still (again) prepared: a second PREPARE
             * of the gid landed after our COMMIT PREPARED (a session no fence
             * stopped). Committing it would apply its statements twice;
             * rolling it back is not ours to decide either. Left in doubt,
             * for an operator. Only while the branch is remembered here
             * (FINISHED_KEEP_MS, or until a restart): after that the sweep
             * would take the copy for a branch whose commit never came, and
             * commit it; the fences (pool.c) are what keeps such a copy
             * from being made. */
            done = false;
            txlog_error(b->gid, ag->name,
                        "branch committed here is prepared again: a second PREPARE of the "
                        "gid, whose commit would apply its statements twice; left prepared "
                        "for an operator (ROLLBACK PREPARED '%s' if it is that copy)",
                        b->branch_gid);
        } else if (!done)
            txlog_warn(b->gid, ag->name,
                        "coordinator outcome is %s but the branch is %s: left alone", outcome,
                        branch_state_name(s));
    }
    unlock_branch(ag, b);
    return done;
}

/* A batch running past its bound (run_batch's batch_overdue_ms) is
 * cancelled, once: the statement fails with 57014 as on its own
 * statement_timeout, and the branch can only vote no. Without this, a
 * client's SET LOCAL statement_timeout = 0 before a statement that waits on
 * a lock would hold the branch (and its locks) until someone rolls it back,
 * and with the coordinator gone no one would. Without b->mu (the batch
 * holds it): the cancel is what breaks the wait. One still running
 * BATCH_GRACE_MS after its cancel (PL/pgSQL can catch query_canceled, and
 * statement_timeout's too) has its backend terminated: it held the branch's
 * session, its row locks and b->mu for good, and the pool runs dry as such
 * statements add up. A rollback that finds a statement running makes its
 * batch overdue at once (op_rollback), so the same applies to it. */
#define CANCEL_SENDING (-1) /* batch_overdue_ms while cancel_if_overdue sends one */
/* batch_overdue_ms < CANCEL_SENDING: -T, the batch was cancelled and is
 * terminated if it still runs at T (a statement may catch query_canceled) */

static void cancel_if_overdue(agent *ag, branch *b, int64_t now)
{
    int64_t overdue = atomic_load(&b->batch_overdue_ms);
    if (overdue < CANCEL_SENDING && now >= -overdue && branch_state_get(b) == BS_ACTIVE) {
        /* cancelled BATCH_GRACE_MS ago and still running: it ignores
         * cancels. Terminated, it fails as on a lost connection. */
        if (!atomic_compare_exchange_strong(&b->batch_overdue_ms, &overdue, CANCEL_SENDING))
            return; /* it ended (0), or another batch began, meanwhile */
        bool gone = branch_terminate_running(ag, b, CANCEL_SENDING); /* logs */
        int64_t sending = CANCEL_SENDING;
        (void)atomic_compare_exchange_strong(&b->batch_overdue_ms, &sending,
                                             gone ? 0 : -(now + BATCH_GRACE_MS));
        return;
    }
    if (overdue <= 0 || now < overdue || branch_state_get(b) != BS_ACTIVE)
        return;
    /* CANCEL_SENDING while the cancel goes out: a batch that ends meanwhile
     * stores 0 over it, one that begins its own bound, and either makes the
     * CAS below fail, so a retry is armed only for the batch it was meant for */
    if (!atomic_compare_exchange_strong(&b->batch_overdue_ms, &overdue, CANCEL_SENDING))
        return; /* the batch ended, or another batch began, meanwhile */
    /* A pause here (fault point) lets the batch end and the branch's next
     * one begin before the cancel goes out: branch_cancel_batch then sends
     * nothing (before, the next statement failed with 57014). */
    fault_point("before-overdue-cancel");
    int sent = branch_cancel_batch(b, CANCEL_SENDING);
    int64_t sending = CANCEL_SENDING;
    /* not needed (the batch ended, or the branch has no connection): 0
     * unless another batch began; not sent (PostgreSQL unreachable for the
     * cancel connection): again in BATCH_GRACE_MS; sent: terminated if it
     * still runs then */
    (void)atomic_compare_exchange_strong(&b->batch_overdue_ms, &sending,
                                         sent == 0  ? 0
                                         : sent > 0 ? -(now + BATCH_GRACE_MS)
                                                    : now + BATCH_GRACE_MS);
    if (sent == 0)
        txlog_info(b->gid, ag->name, "a statement batch ran past its bound but ended before "
                   "its cancel went out: nothing cancelled");
    if (sent <= 0)
        return;
    txlog_warn(b->gid, ag->name, "a statement batch (or the PREPARE or COMMIT that ends the "
               "branch) ran %lld ms past its bound (its statement_timeout, lifted by a "
               "statement?): cancelled it",
               (long long)(now - overdue + BATCH_GRACE_MS));
}

void op_expire_idle(agent *ag, int64_t now)
{
    size_t n;
    branch **bs = branch_table_snapshot(ag->table, &n, true);
    for (size_t i = 0; i < n; i++) {
        branch *b = bs[i];
        cancel_if_overdue(ag, b, now);
        /* Shutting down: stop here (each rollback may wait on a dead
         * connection); the shutdown rolls back what is left. */
        int64_t idle = atomic_load(&ag->stopping) ? -1 : lock_if_idle(b, now, -1);
        if (idle >= 0) {
            fsm_ctx ctx = {.ag = ag};
            char why[128];
            set_reason(b, "", "branch rolled back by the agent after %lld ms idle",
                       (long long)idle);
            snprintf(why, sizeof(why), "idle timeout %lld ms", (long long)b->timeout_ms);
            step_best_effort(b, EV_TIMEOUT, why, &ctx);
            pthread_mutex_unlock(&b->mu);
        }
        branch_put(ag->table, b);
    }
    free(bs);
}

void op_rollback_open(agent *ag)
{
    size_t n;
    branch **bs = branch_table_snapshot(ag->table, &n, true);
    for (size_t i = 0; i < n; i++) {
        branch *b = bs[i];
        pthread_mutex_lock(&b->mu);
        if (branch_state_get(b) == BS_ACTIVE) {
            fsm_ctx ctx = {.ag = ag};
            set_reason(b, "", "agent shut down before prepare");
            step_best_effort(b, EV_SHUTDOWN, "agent shutdown", &ctx);
        }
        pthread_mutex_unlock(&b->mu);
        branch_put(ag->table, b);
    }
    free(bs);
}

void op_cancel_running(agent *ag)
{
    size_t n;
    branch **bs = branch_table_snapshot(ag->table, &n, true);
    for (size_t i = 0; i < n; i++) {
        /* only a batch in flight: a PQcancel opens a connection, one to an
         * idle session every SHUTDOWN_CANCEL_EVERY_MS would be waste */
        if (branch_state_get(bs[i]) == BS_ACTIVE && atomic_load(&bs[i]->batch_overdue_ms) != 0)
            branch_cancel_running(bs[i]);
        branch_put(ag->table, bs[i]);
    }
    free(bs);
}
