/*
 * branch_fsm.c - the branch state machine: a table of {from, to, event, fn}
 * rows driven by branch_fsm_step().
 *
 * Invariants:
 *   - The state changes only here, only with b->mu held, and only after the
 *     row's fn returned true. Every transition is logged once as
 *     "from -> to (reason)" with the gid and participant.
 *   - Every fn is safe to re-run: it checks what is already done (a connection
 *     already returned, 42704 "already finished" on COMMIT/ROLLBACK PREPARED,
 *     a branch already in pg_prepared_xacts) before doing it again.
 *   - b->conn is non-NULL exactly while the branch is active (taken by
 *     fn_begin without I/O: b->begin_pending until the first pipeline sent
 *     BEGIN); any fn leaving
 *     the active state gives it back to the pool (or closes it if it is dead,
 *     still inside a transaction block, or its session state was changed by a
 *     client statement, which PREPARE/COMMIT would carry to the next branch).
 *   - No fn ever sends ROLLBACK PREPARED unless its event is a rollback decided
 *     by the coordinator (EV_ROLLBACK) or a no vote for a branch whose PREPARE
 *     outcome is unknown (maybe_prepared): a branch that voted yes is only
 *     ever finished as the coordinator says - or, for 3PC, as the
 *     termination protocol decides (termination.c), or as PostgreSQL shows
 *     it already ended (EV_FOUND_*). There is no precommitted -> aborted row
 *     for a decision.
 *   - 3PC rows append their state to branches3pc.log in the fn (threepc.c):
 *     forced for uncertain/precommitted (before the answer is sent), not
 *     forced for the final state (after COMMIT/ROLLBACK PREPARED).
 */
#include "branch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "log.h"
#include "threepc.h"

typedef bool (*fsm_fn)(branch *b, fsm_ctx *ctx);

typedef struct {
    branch_state from;
    branch_state to;
    branch_event ev;
    fsm_fn fn;
    bool routine; /* the path every committed branch takes: logged at DEBUG */
} fsm_row;

/* Busy retries for COMMIT/ROLLBACK PREPARED racing another backend. */
#define FINISH_BUSY_RETRIES 6

static void ctx_fail(fsm_ctx *ctx, px_status px, const char *sqlstate, const char *msg)
{
    ctx->px = px;
    snprintf(ctx->sqlstate, sizeof(ctx->sqlstate), "%s", sqlstate ? sqlstate : "");
    snprintf(ctx->message, sizeof(ctx->message), "%s", msg ? msg : "");
}

static void ctx_fail_res(fsm_ctx *ctx, px_status px, const pg_res *r)
{
    ctx_fail(ctx, px, r->sqlstate, r->message[0] ? r->message : "unknown error");
}

/* The branch takes c (after BEGIN succeeded). */
static void take_conn(branch *b, fsm_ctx *ctx, PGconn *c)
{
    PGcancel *cancel = PQgetCancel(c); /* no I/O; NULL only on OOM */
    pg_backend_id backend;
    pool_backend_id(ctx->ag->pool, c, &backend);
    pthread_mutex_lock(&b->cancel_mu); /* branch_terminate_running reads it */
    b->backend = backend;
    b->conn = c;
    b->cancel = cancel;
    pthread_mutex_unlock(&b->cancel_mu);
}

/* The branch gives its connection back to the pool (closed if dead or not
 * idle). A connection lost under an open transaction leaves a backend that
 * may still be alive (a partition, not a crash) and hold the branch's row
 * locks until PostgreSQL notices, hours later with default keepalives: it
 * is queued for the fence (terminated before the pool hands out another
 * connection, pool.c), so a retry or the next transaction does not wait on
 * it until its statement_timeout. Queued only: waiting here, under b->mu,
 * could take a connect timeout per call on a partitioned link; the PREPARE
 * paths, which must know the backend is gone, fence and wait themselves. */
static void give_back_conn(branch *b, fsm_ctx *ctx, bool dead)
{
    pthread_mutex_lock(&b->cancel_mu);
    PGconn *c = b->conn;
    pg_backend_id backend = {0};
    /* its backend is being terminated (branch_terminate_running): closed,
     * never lent again, whatever the batch made of it meanwhile (discarded
     * alone: the pool's other connections are fine) */
    bool discard = b->terminating;
    b->terminating = false;
    if (c && dead) /* not PQbackendPID(c): 0 once libpq saw the connection lost */
        backend = b->backend;
    b->backend = (pg_backend_id){0};
    PGcancel *cancel = b->cancel;
    b->conn = NULL;
    b->cancel = NULL;
    pthread_mutex_unlock(&b->cancel_mu);
    b->begin_pending = false;
    if (cancel)
        PQfreeCancel(cancel);
    if (b->session_dirty && !dead)
        txlog_info(b->gid, ctx->ag->name,
                   "closing its connection: a statement changed session state");
    if ((b->session_dirty || discard) && !dead)
        pool_discard(ctx->ag->pool, c);
    else
        pool_release(ctx->ag->pool, c, dead);
    if (c)
        pool_end_session(ctx->ag->pool);
    if (backend.pid > 0)
        (void)pool_fence_backend(ctx->ag->pool, &backend, false, b->gid);
}

/* Under cancel_mu, b->cancel set: send the cancel request. 1 sent, -1 not
 * (logged). */
static int send_cancel_locked(branch *b)
{
    char err[256];
    if (PQcancel(b->cancel, err, sizeof(err)))
        return 1;
    log_warn("cannot cancel the statement of branch %s: %s", b->gid, err);
    return -1;
}

bool branch_cancel_running(branch *b)
{
    pthread_mutex_lock(&b->cancel_mu);
    bool sent = !b->cancel || send_cancel_locked(b) > 0;
    pthread_mutex_unlock(&b->cancel_mu);
    return sent;
}

int branch_cancel_batch(branch *b, int64_t batch)
{
    int sent = 0;
    pthread_mutex_lock(&b->cancel_mu);
    if (atomic_load(&b->batch_overdue_ms) == batch && b->cancel) {
        sent = send_cancel_locked(b);
    } else if (atomic_load(&b->batch_overdue_ms) == batch && b->conn) {
        /* no cancel object (PQgetCancel ran out of memory): as if sent, so
         * that the batch is terminated if it still runs after the grace */
        sent = 1;
    }
    pthread_mutex_unlock(&b->cancel_mu);
    return sent;
}

void branch_batch_begins(branch *b, int64_t overdue_at)
{
    atomic_store(&b->batch_overdue_ms, overdue_at);
    pthread_mutex_lock(&b->cancel_mu); /* a cancel or termination being decided */
    pthread_mutex_unlock(&b->cancel_mu);
}

bool branch_terminate_running(agent *ag, branch *b, int64_t batch)
{
    pthread_mutex_lock(&b->cancel_mu);
    pg_backend_id backend = b->conn && atomic_load(&b->batch_overdue_ms) == batch
                                ? b->backend
                                : (pg_backend_id){0};
    /* The batch may end before the termination lands (it caught the cancel
     * and went on): its connection must then not go back to the pool,
     * where another branch (or the fence query itself) would get the
     * session being terminated. */
    if (backend.pid != 0)
        b->terminating = true;
    pthread_mutex_unlock(&b->cancel_mu);
    if (backend.pid == 0)
        return true; /* no connection (any more), or the batch ended: nothing runs */
    txlog_warn(b->gid, ag->name, "a statement batch still runs %d ms after its cancel (it "
               "catches query_canceled?): terminating its backend (pid %d)",
               BATCH_GRACE_MS, (int)backend.pid);
    return pool_fence_backend(ag->pool, &backend, true, b->gid);
}

/* ---- fns ---- */

static bool fn_none(branch *b, fsm_ctx *ctx)
{
    (void)b;
    (void)ctx;
    return true;
}

/* Take a pooled connection for the branch. No I/O here: BEGIN travels in
 * the same pipeline as the branch's first statements (branch_ops.c), which
 * also replaces a pooled connection found dead (branch_reconnect). */
static bool fn_begin(branch *b, fsm_ctx *ctx)
{
    if (b->conn)
        return true;
    PGconn *c;
    px_status ps = pool_acquire_session(ctx->ag->pool, POOL_WAIT_MS, &c);
    if (ps != PX_OK) {
        ctx_fail(ctx, ps, "",
                 ps == PX_EXHAUSTED ? "connection pool exhausted" : "cannot connect to PostgreSQL");
        return false;
    }
    take_conn(b, ctx, c);
    b->begin_pending = true;
    return true;
}

bool branch_reconnect(branch *b, fsm_ctx *ctx)
{
    give_back_conn(b, ctx, true);
    if (fn_begin(b, ctx))
        return true;
    return false;
}

/* Give the branch's connection back, rolling back what is open on it. Never
 * fails: a connection that cannot be cleaned is closed instead. */
static bool fn_release(branch *b, fsm_ctx *ctx)
{
    PGconn *c = b->conn;
    if (!c)
        return true;
    bool dead = PQstatus(c) != CONNECTION_OK;
    if (!dead && PQtransactionStatus(c) != PQTRANS_IDLE) {
        pg_res r;
        (void)pg_exec(c, "ROLLBACK", 0, NULL, &r);
        dead = r.conn_dead;
        pg_res_clear(&r);
    }
    give_back_conn(b, ctx, dead);
    return true;
}

/* COMMIT/ROLLBACK PREPARED with retries on "busy". 42704 (no such prepared
 * transaction) sets *gone when gone is not NULL (the caller finds out how it
 * ended); otherwise it counts as done, unless the branch's xid is known
 * (b->xid: asked by its statements' batch, found in pg_prepared_xacts, or
 * handed back by the coordinator for a branch this agent forgot) and
 * PostgreSQL says that xid ended the other way: then it fails with
 * ctx->found_other_way, and branch_fsm_step records the outcome found (the
 * coordinator hears 409 wrong_state, a mixed outcome it reports, instead of
 * an acknowledgement of what did not happen: a branch finished by hand, or a
 * 3PC branch its agent aborted on its own and forgot since). */
static bool finish_prepared_check(branch *b, fsm_ctx *ctx, const char *verb, bool *gone,
                                  bool check_xid);

/* 42704 = done, whatever the xid says: for the callers in states that have
 * no row to record an outcome found the other way (fn_abort's rollback of a
 * PREPARE that may have run; the sweep's second rollback of an aborted
 * branch found prepared again). */
static bool finish_prepared(branch *b, fsm_ctx *ctx, const char *verb)
{
    return finish_prepared_check(b, ctx, verb, NULL, false);
}

/* After a failed pg_xact_status: will asking again never tell more? Only for
 * 22023 (the xid is "in the future": a server restored or failed over to a
 * point before the PREPARE, or an xid that was never this server's). Any
 * other failure (the server down, a statement_timeout, out of memory, an
 * I/O error reading the clog) may pass: the caller fails and the message is
 * re-sent. */
static bool xact_status_unknowable(const fsm_ctx *ctx)
{
    return ctx->px == PX_SQL_ERROR && strcmp(ctx->sqlstate, "22023") == 0;
}

static bool finish_prepared_gone(branch *b, fsm_ctx *ctx, const char *verb, bool *gone)
{
    return finish_prepared_check(b, ctx, verb, gone, false);
}

static bool finish_prepared_check(branch *b, fsm_ctx *ctx, const char *verb, bool *gone,
                                  bool check_xid)
{
    bool commit = strcmp(verb, "COMMIT PREPARED") == 0;
    for (int attempt = 0;; attempt++) {
        pg_res r;
        px_status ps = pool_exec_gid(ctx->ag->pool, POOL_WAIT_MS, verb, b->branch_gid, &r);
        if (ps == PX_OK) {
            pg_res_clear(&r);
            return true;
        }
        if (ps == PX_SQL_ERROR && strcmp(r.sqlstate, "42704") == 0) {
            if (gone) {
                *gone = true;
                pg_res_clear(&r);
                return true; /* the caller finds out how it ended */
            }
            pg_res_clear(&r);
            char st[16] = "";
            if (check_xid && b->xid[0] && !threepc_xact_status(ctx->ag, b->xid, ctx, st)) {
                if (!xact_status_unknowable(ctx))
                    return false; /* asked again with the next message */
                txlog_warn(b->gid, ctx->ag->name, "%s: cannot read the status of xid %s: %s",
                           verb, b->xid, ctx->message);
                st[0] = '\0';
            }
            bool ended_commit = strcmp(st, "committed") == 0;
            if (strcmp(st, "committed") == 0 || strcmp(st, "aborted") == 0) {
                if (ended_commit != commit) {
                    ctx_fail(ctx, PX_SQL_ERROR, "42704", "");
                    snprintf(ctx->message, sizeof(ctx->message),
                             "%s: branch %s is not prepared any more and PostgreSQL says xid %s "
                             "%s",
                             verb, b->branch_gid, b->xid, st);
                    ctx->found_other_way = true;
                    ctx->found_committed = ended_commit;
                    return false;
                }
                txlog_info(b->gid, ctx->ag->name,
                           "%s: branch %s not found (42704): PostgreSQL says xid %s %s: done",
                           verb, b->branch_gid, b->xid, st);
            } else if (commit) {
                txlog_warn(b->gid, ctx->ag->name,
                           "COMMIT PREPARED: branch %s not found (42704): already finished, "
                           "answering committed%s",
                           b->branch_gid, b->xid[0] ? "" : " (its xid is not known here)");
            } else {
                txlog_info(b->gid, ctx->ag->name,
                           "ROLLBACK PREPARED: branch %s not found (42704): nothing to roll back",
                           b->branch_gid);
            }
            return true;
        }
        /* 55000 from COMMIT/ROLLBACK PREPARED is only "prepared transaction
         * ... is busy" (twophase.c, LockGXact); the message is not read, as
         * lc_messages may translate it. */
        bool busy = ps == PX_SQL_ERROR && strcmp(r.sqlstate, "55000") == 0;
        if (busy && attempt < FINISH_BUSY_RETRIES) {
            pg_res_clear(&r);
            sleep_ms(backoff_ms(attempt, 5, 200), NULL);
            continue;
        }
        ctx_fail_res(ctx, ps, &r);
        pg_res_clear(&r);
        return false;
    }
}

/* From unknown or prepared, which have EV_FOUND_* rows: a 42704 is checked
 * against the xid (finish_prepared_check). */
static bool fn_commit_prepared(branch *b, fsm_ctx *ctx)
{
    return finish_prepared_check(b, ctx, "COMMIT PREPARED", NULL, true);
}

static bool fn_rollback_prepared(branch *b, fsm_ctx *ctx)
{
    return finish_prepared_check(b, ctx, "ROLLBACK PREPARED", NULL, true);
}

/* The sweep's second rollback of an aborted branch found prepared again:
 * 42704 is done (aborted is final: nothing else could be recorded). */
static bool fn_rollback_prepared_again(branch *b, fsm_ctx *ctx)
{
    return finish_prepared(b, ctx, "ROLLBACK PREPARED");
}

/* Roll back whatever the branch has: its open transaction, and a prepared
 * transaction if PREPARE's outcome is unknown. */
static bool fn_abort(branch *b, fsm_ctx *ctx)
{
    (void)fn_release(b, ctx);
    if (b->maybe_prepared) {
        if (!finish_prepared(b, ctx, "ROLLBACK PREPARED"))
            return false;
        b->maybe_prepared = false;
    }
    return true;
}

static bool fn_find_prepared(branch *b, fsm_ctx *ctx)
{
    bool found;
    if (!branch_is_prepared_in_pg(ctx->ag, b->branch_gid, ctx, &found, b->xid))
        return false;
    if (!found)
        ctx_fail(ctx, PX_OK, "", "unknown branch (agent restarted?)");
    return found;
}

/* Deferred triggers run at PREPARE TRANSACTION and at a read-only branch's
 * COMMIT, and may wait on a lock past a statement_timeout a statement
 * lifted: while one is sent alone, the idle thread cancels it as it does a
 * batch (branch_ops.c, cancel_if_overdue). The caller resets
 * batch_overdue_ms to 0 once it is answered. */
static void arm_overdue(branch *b)
{
    branch_batch_begins(b, now_ms() + b->timeout_ms + BATCH_GRACE_MS);
}

/* fn_prepare's PREPARE TRANSACTION on b->conn, with the role reset before it
 * when a statement may have set the role. Only the command tag "PREPARE
 * TRANSACTION" is a yes (a failed block answers "ROLLBACK" with
 * PGRES_COMMAND_OK). */
static bool prepare_on_conn(branch *b, fsm_ctx *ctx)
{
    pg_res r;
    if (b->role_maybe_set) {
        /* A statement may have set the current role: the prepared
         * transaction would belong to it, and the agent's role could not
         * finish it (branch.h). Nothing is prepared if this fails. */
        bool set = pg_exec(b->conn, BRANCH_RESET_ROLE_SQL, 0, NULL, &r);
        if (!set) {
            bool dead = r.conn_dead;
            ctx_fail_res(ctx, dead ? PX_DB_DOWN : PX_SQL_ERROR, &r);
            pg_res_clear(&r);
            if (dead)
                give_back_conn(b, ctx, true);
            return false;
        }
        pg_res_clear(&r);
    }
    bool ok = pg_exec_gid(b->conn, "PREPARE TRANSACTION", b->branch_gid, &r);
    if (ok && strcmp(r.command, "PREPARE TRANSACTION") == 0) {
        pg_res_clear(&r);
        give_back_conn(b, ctx, false);
        return true;
    }
    if (r.conn_dead) {
        /* PREPARE may or may not have happened, and its backend may still
         * be running it: make sure it is gone (pool.c, fences), so that a
         * later no vote or rollback, which also tries ROLLBACK PREPARED,
         * finds what is final. */
        b->maybe_prepared = true;
        ctx_fail(ctx, PX_DB_DOWN, r.sqlstate, "connection lost during PREPARE TRANSACTION");
        pg_backend_id backend = b->backend;
        give_back_conn(b, ctx, true);
        (void)pool_fence_backend(ctx->ag->pool, &backend, true, b->gid);
    } else if (ok) {
        ctx_fail(ctx, PX_SQL_ERROR, "",
                 "transaction block had failed (PREPARE TRANSACTION answered ROLLBACK)");
    } else {
        ctx_fail_res(ctx, PX_SQL_ERROR, &r);
    }
    pg_res_clear(&r);
    return false;
}

static bool fn_prepare(branch *b, fsm_ctx *ctx)
{
    if (!b->conn) /* re-run after the connection was given back */
        return fn_find_prepared(b, ctx);
    if (b->prepared_in_batch) {
        /* run_batch sent PREPARE at the end of the statements' pipeline and
         * checked its tag (branch_ops.c): nothing left to send. */
        b->prepared_in_batch = false;
        b->maybe_prepared = false;
        give_back_conn(b, ctx, false);
        return true;
    }
    arm_overdue(b);
    bool ok = prepare_on_conn(b, ctx);
    atomic_store(&b->batch_overdue_ms, 0);
    return ok;
}

/* Read-only branch: a plain COMMIT ends it, no phase 2. */
static bool fn_commit_local(branch *b, fsm_ctx *ctx)
{
    if (!b->conn) {
        ctx_fail(ctx, PX_DB_DOWN, "", "branch has no connection");
        return false;
    }
    if (b->begin_pending) { /* nothing was ever sent: nothing to commit */
        give_back_conn(b, ctx, false);
        return true;
    }
    pg_res r;
    arm_overdue(b);
    bool ok = pg_exec(b->conn, "COMMIT", 0, NULL, &r);
    atomic_store(&b->batch_overdue_ms, 0);
    if (ok && strcmp(r.command, "COMMIT") == 0) {
        pg_res_clear(&r);
        give_back_conn(b, ctx, false);
        return true;
    }
    if (ok)
        ctx_fail(ctx, PX_SQL_ERROR, "", "transaction block had failed (COMMIT answered ROLLBACK)");
    else
        ctx_fail_res(ctx, r.conn_dead ? PX_DB_DOWN : PX_SQL_ERROR, &r);
    if (r.conn_dead) {
        give_back_conn(b, ctx, true);
    }
    pg_res_clear(&r);
    return false;
}

/* ---- three-phase commit (threepc.c keeps the records) ---- */

static bool fn_record_uncertain(branch *b, fsm_ctx *ctx)
{
    if (!threepc_record_uncertain(ctx->ag, b)) {
        ctx_fail(ctx, PX_OK, "", "cannot record the 3pc state durably (see above)");
        return false;
    }
    return true;
}

static bool fn_record_precommit(branch *b, fsm_ctx *ctx)
{
    fault_point("3pc-before-precommit-record"); /* =pause: a slow disk, the branch locked */
    if (!threepc_record_precommitted(ctx->ag, b)) {
        ctx_fail(ctx, PX_OK, "", "cannot record the precommitted state durably (see above)");
        return false;
    }
    return true;
}

/* A 3PC branch that is no longer prepared (42704) may have been finished
 * either way before a crash lost its final record (or by a peer's message
 * the agent acted on then): which way is PostgreSQL's to say, from the
 * branch's xid. Answering as asked would record, and tell peers and the
 * coordinator, an outcome the database did not have. */
static bool finish_3pc(branch *b, fsm_ctx *ctx, bool commit)
{
    const char *verb = commit ? "COMMIT PREPARED" : "ROLLBACK PREPARED";
    bool gone = false;
    if (!finish_prepared_gone(b, ctx, verb, &gone))
        return false;
    if (gone) {
        char st = 0, s[16] = "";
        if (b->xid[0] && !threepc_xact_status(ctx->ag, b->xid, ctx, s)) {
            if (!xact_status_unknowable(ctx))
                return false; /* asked again with the next message */
            /* an answer that will not change: as for a status PostgreSQL no
             * longer has, below, and as 2PC does (finish_prepared_check);
             * re-asking would fail every re-send for ever */
            txlog_error(b->gid, ctx->ag->name, "%s: cannot read the status of xid %s: %s", verb,
                        b->xid, ctx->message);
            s[0] = '\0';
        }
        st = strcmp(s, "committed") == 0 ? 'c' : strcmp(s, "aborted") == 0 ? 'a' : 0;
        if (st && (st == 'c') != commit) {
            ctx_fail(ctx, PX_SQL_ERROR, "42704", "");
            snprintf(ctx->message, sizeof(ctx->message),
                     "%s: branch %s is not prepared any more and PostgreSQL says xid %s %s",
                     verb, b->branch_gid, b->xid, st == 'c' ? "committed" : "aborted");
            ctx->found_other_way = true;
            ctx->found_committed = st == 'c';
            return false;
        }
        txlog_info(b->gid, ctx->ag->name, "%s: branch %s not found (42704): %s", verb,
                   b->branch_gid,
                   st ? "PostgreSQL says its xid ended the same way: done"
                      : "its xid's status is unknown here; taken as done");
    }
    threepc_record_final(ctx->ag, b, commit);
    return true;
}

static bool fn_commit_3pc(branch *b, fsm_ctx *ctx)
{
    return finish_3pc(b, ctx, true);
}

static bool fn_rollback_3pc(branch *b, fsm_ctx *ctx)
{
    return finish_3pc(b, ctx, false);
}

static bool fn_found_committed(branch *b, fsm_ctx *ctx)
{
    threepc_record_final(ctx->ag, b, true);
    return true;
}

static bool fn_found_aborted(branch *b, fsm_ctx *ctx)
{
    threepc_record_final(ctx->ag, b, false);
    return true;
}

/* ---- the table ---- */

static const fsm_row fsm_rows[] = {
    {BS_UNKNOWN, BS_ACTIVE, EV_BEGIN, fn_begin, true},
    {BS_UNKNOWN, BS_PREPARED, EV_FOUND_PREPARED, fn_find_prepared, false},
    {BS_UNKNOWN, BS_ABORTED, EV_VOTE_NO, fn_none, false},
    {BS_UNKNOWN, BS_COMMITTED, EV_COMMIT, fn_commit_prepared, false},
    {BS_UNKNOWN, BS_ABORTED, EV_ROLLBACK, fn_rollback_prepared, false},
    /* finish_prepared found it ended the other way (a forgotten branch whose
     * xid the coordinator handed back) */
    {BS_UNKNOWN, BS_COMMITTED, EV_FOUND_COMMITTED, fn_none, false},
    {BS_UNKNOWN, BS_ABORTED, EV_FOUND_ABORTED, fn_none, false},

    {BS_ACTIVE, BS_PREPARED, EV_PREPARE, fn_prepare, true},
    {BS_ACTIVE, BS_COMMITTED, EV_READ_ONLY, fn_commit_local, true},
    {BS_ACTIVE, BS_FAILED, EV_FAIL, fn_release, false},
    {BS_ACTIVE, BS_ABORTED, EV_VOTE_NO, fn_abort, false},
    {BS_ACTIVE, BS_ABORTED, EV_ROLLBACK, fn_abort, false},
    {BS_ACTIVE, BS_ABORTED, EV_TIMEOUT, fn_abort, false},
    {BS_ACTIVE, BS_ABORTED, EV_SHUTDOWN, fn_abort, false},

    /* The sweep found an aborted branch prepared in PostgreSQL (a PREPARE
     * that landed after the rollback): roll it back again. */
    {BS_ABORTED, BS_ABORTED, EV_FOUND_PREPARED, fn_rollback_prepared_again, false},

    {BS_FAILED, BS_ABORTED, EV_VOTE_NO, fn_abort, false},
    {BS_FAILED, BS_ABORTED, EV_ROLLBACK, fn_abort, false},

    {BS_PREPARED, BS_COMMITTED, EV_COMMIT, fn_commit_prepared, true},
    {BS_PREPARED, BS_ABORTED, EV_ROLLBACK, fn_rollback_prepared, false},
    {BS_PREPARED, BS_UNCERTAIN, EV_RECORD, fn_record_uncertain, true},
    /* finish_prepared found it ended the other way (finished by hand) */
    {BS_PREPARED, BS_COMMITTED, EV_FOUND_COMMITTED, fn_none, false},
    {BS_PREPARED, BS_ABORTED, EV_FOUND_ABORTED, fn_none, false},

    {BS_UNCERTAIN, BS_PRECOMMITTED, EV_PRECOMMIT, fn_record_precommit, true},
    {BS_UNCERTAIN, BS_COMMITTED, EV_COMMIT, fn_commit_3pc, false},
    {BS_UNCERTAIN, BS_ABORTED, EV_ROLLBACK, fn_rollback_3pc, false},
    {BS_UNCERTAIN, BS_COMMITTED, EV_FOUND_COMMITTED, fn_found_committed, false},
    {BS_UNCERTAIN, BS_ABORTED, EV_FOUND_ABORTED, fn_found_aborted, false},

    {BS_PRECOMMITTED, BS_COMMITTED, EV_COMMIT, fn_commit_3pc, true},
    {BS_PRECOMMITTED, BS_COMMITTED, EV_FOUND_COMMITTED, fn_found_committed, false},
    {BS_PRECOMMITTED, BS_ABORTED, EV_FOUND_ABORTED, fn_found_aborted, false},
};

static const char *const event_names[] = {
    [EV_BEGIN] = "begin",       [EV_FOUND_PREPARED] = "found_prepared",
    [EV_PREPARE] = "prepare",   [EV_READ_ONLY] = "read_only",
    [EV_FAIL] = "fail",         [EV_VOTE_NO] = "vote_no",
    [EV_COMMIT] = "commit",     [EV_ROLLBACK] = "rollback",
    [EV_TIMEOUT] = "timeout",   [EV_SHUTDOWN] = "shutdown",
    [EV_RECORD] = "record",     [EV_PRECOMMIT] = "precommit",
    [EV_FOUND_COMMITTED] = "found_committed", [EV_FOUND_ABORTED] = "found_aborted",
};

/* The gauge of branches waiting in state s, or NULL for a state not counted
 * so (txagent_branches_waiting). */
metric_gauge *branch_waiting_gauge(agent_metrics *m, branch_state s)
{
    switch (s) {
    case BS_PREPARED: return &m->waiting_prepared;
    case BS_UNCERTAIN: return &m->waiting_uncertain;
    case BS_PRECOMMITTED: return &m->waiting_precommitted;
    default: return NULL;
    }
}

static void count_transition(agent_metrics *m, branch_state from, branch_state to)
{
    if (from == to)
        return; /* e.g. aborted -> aborted (a late PREPARE rolled back): counted once */
    if (from == BS_ACTIVE)
        gauge_add(&m->in_progress, -1);
    metric_gauge *g = branch_waiting_gauge(m, from);
    if (g)
        gauge_add(g, -1);
    g = branch_waiting_gauge(m, to);
    if (g)
        gauge_add(g, 1);
    switch (to) {
    case BS_ACTIVE:
        counter_inc(&m->begun);
        gauge_add(&m->in_progress, 1);
        break;
    case BS_PREPARED: counter_inc(&m->prepared); break;
    case BS_COMMITTED: counter_inc(&m->committed); break;
    case BS_ABORTED: counter_inc(&m->aborted); break;
    case BS_PRECOMMITTED: counter_inc(&m->precommitted); break;
    default: break;
    }
}

bool branch_fsm_transition(branch_state from, branch_event ev, branch_state *to)
{
    for (size_t i = 0; i < ARRAY_LEN(fsm_rows); i++) {
        if (fsm_rows[i].from == from && fsm_rows[i].ev == ev) {
            *to = fsm_rows[i].to;
            return true;
        }
    }
    return false;
}

size_t branch_fsm_rows_matching(branch_state from, branch_event ev)
{
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(fsm_rows); i++)
        n += fsm_rows[i].from == from && fsm_rows[i].ev == ev;
    return n;
}

bool branch_fsm_step(branch *b, branch_event ev, const char *reason, fsm_ctx *ctx)
{
    branch_state from = branch_state_get(b);
    const fsm_row *row = NULL;
    for (size_t i = 0; i < ARRAY_LEN(fsm_rows); i++) {
        if (fsm_rows[i].from == from && fsm_rows[i].ev == ev) {
            row = &fsm_rows[i];
            break;
        }
    }
    ctx_fail(ctx, PX_OK, "", "");
    ctx->found_other_way = false;
    if (!row) {
        snprintf(ctx->message, sizeof(ctx->message), "no transition from %s on event %s",
                 branch_state_name(from), event_names[ev]);
        txlog_error(b->gid, ctx->ag->name, "%s", ctx->message);
        return false;
    }
    if (!row->fn(b, ctx)) {
        /* No arrow and no reason here: tests grep "-> state" and "vote ..." for
         * transitions that happened. */
        log_msg(ctx->px == PX_OK ? LOG_DEBUG : LOG_WARN, b->gid, ctx->ag->name,
                "event %s: cannot go from %s to %s: %s%s%s", event_names[ev],
                branch_state_name(from), branch_state_name(row->to), ctx->message,
                ctx->sqlstate[0] ? " sqlstate=" : "", ctx->sqlstate);
        if (ctx->found_other_way) {
            /* Record what PostgreSQL says happened (fsm_ctx). */
            char why[600];
            snprintf(why, sizeof(why), "%s", ctx->message);
            fsm_ctx found = {.ag = ctx->ag};
            if (branch_fsm_step(b, ctx->found_committed ? EV_FOUND_COMMITTED : EV_FOUND_ABORTED,
                                why, &found))
                txlog_error(b->gid, ctx->ag->name,
                            "asked to %s a branch that had already %s: answered as it is",
                            ev == EV_COMMIT ? "commit" : "roll back",
                            ctx->found_committed ? "committed" : "aborted");
        }
        return false;
    }
    atomic_store(&b->state, (int)row->to);
    atomic_store(&b->last_activity_ms, now_ms());
    count_transition(&ctx->ag->metrics, from, row->to);
    log_msg(row->routine ? LOG_DEBUG : LOG_INFO, b->gid, ctx->ag->name, "%s -> %s (%s)",
            branch_state_name(from), branch_state_name(row->to), reason);
    if (row->to == BS_FAILED || row->to == BS_COMMITTED || row->to == BS_ABORTED)
        branch_table_finished(ctx->ag->table, b);
    return true;
}

/* ---- queries used by the callers to choose an event ---- */

/* The xid8 of a prepared transaction from its 32-bit xid and
 * pg_snapshot_xmax of a current snapshot. xmax is the last COMPLETED xid + 1,
 * so the prepared one may be older or newer (two prepared, nothing completed
 * since): xid8_near takes the signed distance. */
static void xid8_of(const char *x32s, const char *xmaxs, char *out)
{
    unsigned long long x32 = strtoull(x32s, NULL, 10), xmax = strtoull(xmaxs, NULL, 10);
    snprintf(out, 24, "%llu", (unsigned long long)xid8_near((uint32_t)x32, (uint64_t)xmax));
}

bool branch_is_prepared_in_pg(agent *ag, const char *branch_gid, fsm_ctx *ctx, bool *found,
                              char *xid)
{
    const char *params[1] = {branch_gid};
    pg_res r;
    px_status ps = pool_query(ag->pool, POOL_WAIT_MS,
                              "SELECT transaction::text, "
                              "pg_snapshot_xmax(pg_current_snapshot())::text "
                              "FROM pg_prepared_xacts "
                              "WHERE database = current_database() AND gid = $1",
                              1, params, &r);
    if (ps != PX_OK) {
        ctx_fail_res(ctx, ps, &r);
        pg_res_clear(&r);
        return false;
    }
    *found = r.res && PQntuples(r.res) > 0;
    if (*found && xid)
        xid8_of(PQgetvalue(r.res, 0, 0), PQgetvalue(r.res, 0, 1), xid);
    pg_res_clear(&r);
    return true;
}
