/*
 * raw.c - the baseline: the same two-branch transfer done with raw libpq 2PC,
 * no coordinator, no agents, no HTTP. Also the bench's one-off database work
 * (--setup, preflight checks, cleanup of leftover branches).
 *
 * One raw transfer (txbench prints this description with its results):
 *   Each client thread owns one connection to database A and one to B, both
 *   in libpq non-blocking mode, driven by one poll() loop. (--lock-timeout-ms
 *   sets lock_timeout once per session at connect, not per transaction.)
 *   1. Prepare, on A and B at the same time, each side on its own:
 *        round trip 1  BEGIN                                         (PQsendQuery)
 *        round trip 2  UPDATE accounts SET balance = balance -/+ $1
 *                      WHERE id = $2       params '1', id as text    (PQsendQueryParams)
 *        round trip 3  PREPARE TRANSACTION 'bench:<phase>:<thread>:<n>:a|b'
 *      This is the baseline issue 2 describes (one round trip for BEGIN, one
 *      for the statement with its params, one for PREPARE), and the two sides
 *      overlap as the coordinator's parallel prepare calls do. Only the
 *      command tag "PREPARE TRANSACTION" is a yes vote.
 *      With --raw-pipeline ("raw-pipe" in the output) BEGIN, the UPDATE and
 *      PREPARE TRANSACTION go as one libpq pipeline (each via
 *      PQsendQueryParams, then one sync point): the three round trips become
 *      one, as an agent does for a 2PC one-shot branch whose statements write
 *      (participant/branch_ops.c). A failed UPDATE makes PostgreSQL skip the
 *      PREPARE (pipeline aborted): a no vote, as without the pipeline.
 *   2. Both voted yes: COMMIT PREPARED on A and B at the same time (one round
 *      trip each). Otherwise: ROLLBACK PREPARED on a prepared side and
 *      ROLLBACK on a side still inside its block, again in parallel.
 *   No decision record is written anywhere: the baseline is the floor that a
 *   coordinator adds its own costs to.
 *
 * Failures between steps: a side whose connection dies or whose wait times
 *   out (txn_timeout_ms; the query is cancelled first) while its branch is or
 *   may be prepared gets the branch queued with the decided outcome (commit
 *   only if step 2 had begun) and finished with COMMIT/ROLLBACK PREPARED after
 *   reconnecting (42704 = already gone). Whatever is still prepared is rolled
 *   back by raw_cleanup, which txbench runs before, between and after phases.
 *
 * Gids start with "bench:", never "txc:", so the agents' recovery sweep
 * ignores them. The side suffix keeps A's and B's gids distinct even when both
 * databases live in one PostgreSQL cluster (one gid namespace per cluster).
 * raw_cleanup rolls back every 'bench:%' branch: run one txbench at a time
 * against a given pair of databases.
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "pg.h"

#define BENCH_GID_PREFIX "bench:"
#define BENCH_BALANCE "1000000000000" /* ample: 10^12 per account */
#define PENDING_MAX 64

static const char SQL_DEBIT[] = "UPDATE accounts SET balance = balance - $1 WHERE id = $2";
static const char SQL_CREDIT[] = "UPDATE accounts SET balance = balance + $1 WHERE id = $2";

typedef enum { Q_BEGIN, Q_UPDATE, Q_PREPARE, Q_COMMIT_PREPARED, Q_ROLLBACK_PREPARED, Q_ROLLBACK } qkind;

typedef struct {
    qkind kind;
    const char *sql;      /* borrowed (static text or the side's gid_sql) */
    int nparams;
    const char *params[2];
    bool pipe_next;       /* sent with the next query as one libpq pipeline (one round trip) */
} query;

typedef struct {
    char gid[96];
    bool commit;
} pending_branch;

/* One database side of a client: its connection and the chain being driven. */
typedef struct {
    const char *conninfo; /* borrowed from opts */
    const char *label;    /* "a" / "b", also the gid suffix */
    PGconn *conn;         /* NULL when dead; reconnected at the next transaction */

    /* the current transaction */
    char gid[96];
    char id_text[24];
    char *prepare_sql;    /* owned; "PREPARE TRANSACTION '<gid>'" */
    char *finish_sql;     /* owned; COMMIT/ROLLBACK PREPARED '<gid>' */
    query q[3];
    int nq, pos;          /* q[pos] is the query whose results come next */
    int sent_end;         /* q[pos..sent_end) are sent and not yet answered */
    bool active;          /* a query is in flight */
    bool in_pipeline;     /* q[pos..] were sent as one pipeline; its sync point is pending */
    bool flush_pending;   /* PQflush said 1: wait for POLLOUT */
    bool ok;              /* every query of the chain so far succeeded */
    bool sql_failed;      /* a query failed with a (non class 08) SQLSTATE */
    bool prepare_in_flight;
    bool prepared;
    PGresult *last;       /* owned; last result of the query in flight */
    char err[256];

    pending_branch pending[PENDING_MAX];
    int npending;
} side;

typedef struct {
    const bench_opts *o;
    int thread_no;
    uint64_t seq;
    bool decided_commit;  /* step 2 with COMMIT PREPARED has begun */
    side s[2];
} raw_ctx;

/* --- one side ------------------------------------------------------------ */

static void side_set_err(side *s, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void side_set_err(side *s, const char *fmt, ...)
{
    if (s->err[0])
        return; /* keep the first */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    one_line(s->err);
}

static void pending_add(side *s, const char *gid, bool commit)
{
    if (s->npending == PENDING_MAX) {
        log_warn("raw %s: too many unfinished branches; %s is left to the cleanup", s->label, gid);
        return;
    }
    pending_branch *p = &s->pending[s->npending++];
    size_t n = strnlen(gid, sizeof(p->gid) - 1);
    memmove(p->gid, gid, n); /* gid may be s->gid: no snprintf onto our own struct */
    p->gid[n] = '\0';
    p->commit = commit;
}

/* The connection is unusable: cancel what runs (on timeout), drop it, and
 * queue the branch if it is or may be prepared. */
static void side_drop(side *s, bool decided_commit, bool cancel, const char *why)
{
    side_set_err(s, "%s: %s", s->label, why);
    if (s->conn && cancel) {
        PGcancel *cn = PQgetCancel(s->conn);
        if (cn) {
            char buf[256];
            (void)PQcancel(cn, buf, (int)sizeof(buf));
            PQfreeCancel(cn);
        }
    }
    if (s->last) {
        PQclear(s->last);
        s->last = NULL;
    }
    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    if (s->prepared || s->prepare_in_flight)
        pending_add(s, s->gid, decided_commit && s->prepared);
    s->prepared = false;
    s->prepare_in_flight = false;
    s->active = false;
    s->in_pipeline = false;
    s->flush_pending = false;
    s->ok = false;
}

/* "<verb> '<gid>'"; caller frees. The gid is ours ([a-z0-9:]) and quoted anyway. */
static char *gid_sql(PGconn *c, const char *verb, const char *gid)
{
    char *lit = PQescapeLiteral(c, gid, strlen(gid));
    if (!lit)
        return NULL;
    char *sql = xasprintf("%s %s", verb, lit);
    PQfreemem(lit);
    return sql;
}

/* Finish queued branches (blocking; only after a failure). Keeps the ones
 * that could not be finished for the next try or the cleanup. */
static void side_resolve_pending(side *s)
{
    int keep = 0;
    for (int i = 0; i < s->npending; i++) {
        pending_branch *p = &s->pending[i];
        char *sql = gid_sql(s->conn, p->commit ? "COMMIT PREPARED" : "ROLLBACK PREPARED", p->gid);
        pg_res r;
        memset(&r, 0, sizeof(r));
        bool done = sql && (pg_exec(s->conn, sql, 0, NULL, &r) || strcmp(r.sqlstate, "42704") == 0);
        if (done)
            log_info("raw %s: finished leftover branch %s (%s)", s->label, p->gid,
                     p->commit ? "commit" : "rollback");
        else
            s->pending[keep++] = *p;
        pg_res_clear(&r);
        free(sql);
    }
    s->npending = keep;
}

static bool side_connect(side *s, long long lock_timeout_ms, bench_client *c)
{
    if (s->conn)
        return true;
    s->conn = pg_connect(s->conninfo, s->label);
    if (!s->conn) {
        client_error(c, "raw: cannot connect to database %s (%s)", s->label, s->conninfo);
        return false;
    }
    if (lock_timeout_ms > 0) {
        /* once per session, outside the measured transactions */
        char ms[24];
        snprintf(ms, sizeof(ms), "%lld", lock_timeout_ms);
        const char *params[1] = {ms};
        pg_res r;
        memset(&r, 0, sizeof(r));
        bool ok = pg_exec(s->conn, "SELECT set_config('lock_timeout', $1, false)", 1, params, &r);
        if (!ok)
            client_error(c, "raw: cannot set lock_timeout on %s: %s", s->label, r.message);
        pg_res_clear(&r);
        if (!ok) {
            PQfinish(s->conn);
            s->conn = NULL;
            return false;
        }
    }
    if (PQsetnonblocking(s->conn, 1) != 0) {
        client_error(c, "raw: PQsetnonblocking on %s: %s", s->label, PQerrorMessage(s->conn));
        PQfinish(s->conn);
        s->conn = NULL;
        return false;
    }
    return true;
}

/* Start a chain of queries (NULL = nothing to do on this side). */
static void side_begin_chain(side *s, int nq)
{
    s->nq = nq;
    s->pos = 0;
    s->ok = true;
    s->sql_failed = false;
    s->err[0] = '\0';
}

/* Send q[pos], or q[pos] and the queries piped with it as one pipeline
 * (PQsendQueryParams each, then a sync point: one round trip). */
static void side_send(side *s, bool decided_commit)
{
    int first = s->pos, last = s->pos;
    while (last + 1 < s->nq && s->q[last].pipe_next)
        last++;
    bool pipe = last > first;
    if (pipe && !PQenterPipelineMode(s->conn)) {
        side_drop(s, decided_commit, false, PQerrorMessage(s->conn));
        return;
    }
    for (int i = first; i <= last; i++) {
        const query *q = &s->q[i];
        /* a pipeline takes the extended protocol only */
        int sent = q->nparams > 0 || pipe ? PQsendQueryParams(s->conn, q->sql, q->nparams, NULL,
                                                              q->params, NULL, NULL, 0)
                                          : PQsendQuery(s->conn, q->sql);
        if (!sent) {
            side_drop(s, decided_commit, false, PQerrorMessage(s->conn));
            return;
        }
        if (q->kind == Q_PREPARE)
            s->prepare_in_flight = true;
    }
    if (pipe && !PQpipelineSync(s->conn)) {
        side_drop(s, decided_commit, false, PQerrorMessage(s->conn));
        return;
    }
    s->sent_end = last + 1;
    s->in_pipeline = pipe;
    s->active = true;
    int f = PQflush(s->conn);
    if (f < 0) {
        side_drop(s, decided_commit, false, PQerrorMessage(s->conn));
        return;
    }
    s->flush_pending = (f == 1);
}

/* Judge q[pos] from its last result. false if it failed; the side is
 * dropped (s->conn == NULL) if the connection is gone. */
static bool side_judge(side *s, bool decided_commit)
{
    const query *q = &s->q[s->pos];
    PGresult *r = s->last;
    s->last = NULL;
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    const char *tag = r ? PQcmdStatus(r) : "";
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    bool good = (st == PGRES_COMMAND_OK);

    switch (q->kind) {
    case Q_PREPARE:
        s->prepare_in_flight = false;
        if (good && strcmp(tag, "PREPARE TRANSACTION") == 0) {
            s->prepared = true;
        } else if (good) {
            good = false; /* a failed block answers ROLLBACK: a no vote */
            s->sql_failed = true;
            side_set_err(s, "%s: voted no (PREPARE TRANSACTION answered %s)", s->label, tag);
        }
        break;
    case Q_UPDATE:
        if (good && strcmp(PQcmdTuples(r), "1") != 0) {
            good = false;
            side_set_err(s, "%s: UPDATE matched %s rows (run txbench --setup)", s->label,
                         PQcmdTuples(r));
        }
        break;
    case Q_COMMIT_PREPARED:
        /* Sent once, right after this transfer's own PREPARE: 42704 here
         * means something else finished the branch (another run's cleanup
         * on the same database), so the transfer is not counted as
         * committed: an error, like any failed COMMIT PREPARED. (Leftovers
         * re-sent after a failure take 42704 as done: side_resolve_pending.) */
        if (!good && state && strcmp(state, "42704") == 0) {
            s->prepared = false; /* nothing left to finish */
            side_set_err(s, "%s: COMMIT PREPARED found no such prepared transaction (42704): "
                         "another run on the same database?", s->label);
        }
        if (good)
            s->prepared = false;
        break;
    case Q_ROLLBACK_PREPARED:
        if (!good && state && strcmp(state, "42704") == 0)
            good = true; /* gone already: an abort either way */
        if (good)
            s->prepared = false;
        break;
    case Q_BEGIN:
    case Q_ROLLBACK:
        break;
    }

    if (!good && !s->err[0])
        side_set_err(s, "%s: %s%s%s", s->label,
                     st == PGRES_PIPELINE_ABORTED ? "pipeline aborted"
                     : r                          ? PQresultErrorMessage(r)
                                                  : PQerrorMessage(s->conn),
                     state ? " SQLSTATE " : "", state ? state : "");
    bool dead = PQstatus(s->conn) == CONNECTION_BAD || !r || (state && strncmp(state, "08", 2) == 0);
    if (r)
        PQclear(r);
    if (dead) {
        side_drop(s, decided_commit, false, "connection lost");
        return false;
    }
    if (!good) {
        if (state)
            s->sql_failed = true;
        s->ok = false;
    }
    return good;
}

/* After a query (or a whole pipeline): send the next one of the chain, or
 * end the chain (at its end or at the first failure). */
static void side_next(side *s, bool decided_commit)
{
    if (s->ok && s->pos < s->nq)
        side_send(s, decided_commit);
    else
        s->active = false;
}

static void side_io(side *s, short revents, bool decided_commit)
{
    if (s->flush_pending && (revents & (POLLOUT | POLLERR | POLLHUP))) {
        int f = PQflush(s->conn);
        if (f < 0) {
            side_drop(s, decided_commit, false, PQerrorMessage(s->conn));
            return;
        }
        s->flush_pending = (f == 1);
    }
    if (!(revents & (POLLIN | POLLERR | POLLHUP)))
        return;
    if (!PQconsumeInput(s->conn)) {
        side_drop(s, decided_commit, false, PQerrorMessage(s->conn));
        return;
    }
    while (s->active && !PQisBusy(s->conn)) {
        PGresult *r = PQgetResult(s->conn);
        if (r && PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            /* the pipeline's sync point: every query of it has answered */
            PQclear(r);
            if (!PQexitPipelineMode(s->conn)) {
                side_drop(s, decided_commit, false, PQerrorMessage(s->conn));
                return;
            }
            s->in_pipeline = false;
            side_next(s, decided_commit);
            continue;
        }
        if (r) {
            if (s->last)
                PQclear(s->last);
            s->last = r;
            continue;
        }
        /* NULL: q[pos] has delivered all its results */
        if (s->pos >= s->sent_end)
            continue; /* nothing is owed but the pipeline's sync point */
        (void)side_judge(s, decided_commit);
        if (!s->conn)
            return;
        s->pos++;
        if (!s->in_pipeline)
            side_next(s, decided_commit); /* may send the next query */
    }
}

/* Drive both sides' chains to their end, in parallel, within timeout_ms. */
static void drive(raw_ctx *x, int64_t timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (int i = 0; i < 2; i++)
        if (x->s[i].conn && x->s[i].nq > 0)
            side_send(&x->s[i], x->decided_commit);
    for (;;) {
        struct pollfd pfd[2];
        side *map[2];
        int n = 0;
        for (int i = 0; i < 2; i++) {
            side *s = &x->s[i];
            if (!s->active)
                continue;
            pfd[n].fd = PQsocket(s->conn);
            pfd[n].events = (short)(POLLIN | (s->flush_pending ? POLLOUT : 0));
            pfd[n].revents = 0;
            map[n++] = s;
        }
        if (n == 0)
            return;
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            for (int i = 0; i < n; i++)
                side_drop(map[i], x->decided_commit, true, "timed out");
            return;
        }
        int rc = poll(pfd, (nfds_t)n, (int)left);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            for (int i = 0; i < n; i++)
                side_drop(map[i], x->decided_commit, true, strerror(errno));
            return;
        }
        for (int i = 0; i < n; i++)
            if (pfd[i].revents)
                side_io(map[i], pfd[i].revents, x->decided_commit);
    }
}

/* --- the workload -------------------------------------------------------- */

static void *raw_open(const bench_opts *o, int thread_no, bench_client *c)
{
    raw_ctx *x = xcalloc(1, sizeof(*x));
    x->o = o;
    x->thread_no = thread_no;
    x->s[0].conninfo = o->pg_a;
    x->s[0].label = "a";
    x->s[1].conninfo = o->pg_b;
    x->s[1].label = "b";
    for (int i = 0; i < 2; i++) {
        if (!side_connect(&x->s[i], o->lock_timeout_ms, c)) {
            for (int j = 0; j < i; j++)
                PQfinish(x->s[j].conn);
            free(x);
            return NULL;
        }
    }
    return x;
}

static void raw_close(void *vctx)
{
    raw_ctx *x = vctx;
    if (!x)
        return;
    for (int i = 0; i < 2; i++) {
        side *s = &x->s[i];
        if (s->conn && s->npending > 0)
            side_resolve_pending(s);
        if (s->npending > 0)
            log_warn("raw %s: %d branch(es) left for the cleanup", s->label, s->npending);
        if (s->conn)
            PQfinish(s->conn);
        free(s->prepare_sql);
        free(s->finish_sql);
    }
    free(x);
}

/* Build side s's step-1 chain for account id and the gid of this transaction. */
static bool side_prepare_chain(side *s, const bench_clock *clk, int thread_no, uint64_t seq,
                               const char *update_sql, long long id, bool pipeline)
{
    snprintf(s->gid, sizeof(s->gid), BENCH_GID_PREFIX "%d:%d:%llu:%s", clk->phase_no, thread_no,
             (unsigned long long)seq, s->label);
    snprintf(s->id_text, sizeof(s->id_text), "%lld", id);
    free(s->prepare_sql);
    s->prepare_sql = gid_sql(s->conn, "PREPARE TRANSACTION", s->gid);
    if (!s->prepare_sql)
        return false;
    s->q[0] = (query){.kind = Q_BEGIN, .sql = "BEGIN", .pipe_next = pipeline};
    s->q[1] = (query){.kind = Q_UPDATE, .sql = update_sql, .nparams = 2,
                      .params = {"1", s->id_text}, .pipe_next = pipeline};
    s->q[2] = (query){.kind = Q_PREPARE, .sql = s->prepare_sql};
    side_begin_chain(s, 3);
    return true;
}

/* Step 2 (or the abort): one query per side that needs one. */
static void side_finish_chain(side *s, bool commit)
{
    s->nq = 0;
    if (!s->conn)
        return;
    if (s->prepared) {
        free(s->finish_sql);
        s->finish_sql = gid_sql(s->conn, commit ? "COMMIT PREPARED" : "ROLLBACK PREPARED", s->gid);
        if (!s->finish_sql) {
            pending_add(s, s->gid, commit);
            return;
        }
        s->q[0] = (query){.kind = commit ? Q_COMMIT_PREPARED : Q_ROLLBACK_PREPARED,
                          .sql = s->finish_sql};
        side_begin_chain(s, 1);
    } else if (PQtransactionStatus(s->conn) == PQTRANS_INTRANS ||
               PQtransactionStatus(s->conn) == PQTRANS_INERROR) {
        s->q[0] = (query){.kind = Q_ROLLBACK, .sql = "ROLLBACK"};
        side_begin_chain(s, 1);
    }
}

static txn_outcome raw_txn(void *vctx, const bench_clock *clk, bench_client *c, uint64_t *rng)
{
    raw_ctx *x = vctx;
    side *a = &x->s[0], *b = &x->s[1];
    for (int i = 0; i < 2; i++) {
        if (!side_connect(&x->s[i], x->o->lock_timeout_ms, c))
            return TXN_ERROR;
        if (x->s[i].npending > 0)
            side_resolve_pending(&x->s[i]);
        x->s[i].prepared = false;
        x->s[i].prepare_in_flight = false;
    }
    x->decided_commit = false;
    x->seq++;
    long long ida = bench_pick_account(x->o, rng);
    long long idb = bench_pick_account(x->o, rng);
    if (!side_prepare_chain(a, clk, x->thread_no, x->seq, SQL_DEBIT, ida, x->o->raw_pipeline) ||
        !side_prepare_chain(b, clk, x->thread_no, x->seq, SQL_CREDIT, idb, x->o->raw_pipeline)) {
        client_error(c, "raw: PQescapeLiteral failed");
        return TXN_ERROR;
    }

    /* step 1: BEGIN; UPDATE; PREPARE TRANSACTION on both, in parallel
     * (--raw-pipeline: all three as one pipeline) */
    drive(x, x->o->txn_timeout_ms);
    bool yes = a->ok && a->prepared && b->ok && b->prepared;

    char step1_err[sizeof(((side *)0)->err) * 2 + 4];
    snprintf(step1_err, sizeof(step1_err), "%s%s%s", a->err, a->err[0] && b->err[0] ? "; " : "",
             b->err);
    bool sql_no = a->sql_failed || b->sql_failed;

    /* step 2: COMMIT PREPARED on both, or undo what step 1 left */
    x->decided_commit = yes;
    side_finish_chain(a, yes);
    side_finish_chain(b, yes);
    drive(x, x->o->txn_timeout_ms);
    bool finished = (a->nq == 0 || a->ok) && (b->nq == 0 || b->ok);
    for (int i = 0; i < 2; i++)
        if (x->s[i].conn && x->s[i].prepared) /* the finish failed: retry it later */
            pending_add(&x->s[i], x->s[i].gid, yes);

    if (yes && finished)
        return TXN_COMMITTED;
    if (yes) {
        client_error(c, "raw: COMMIT PREPARED failed: %s%s%s", a->err,
                     a->err[0] && b->err[0] ? "; " : "", b->err);
        return TXN_ERROR;
    }
    if (!finished)
        client_error(c, "raw: abort after a failed prepare step failed: %s%s%s", a->err,
                     a->err[0] && b->err[0] ? "; " : "", b->err);
    /* a no vote or an SQL error is an abort (like the coordinator's 409);
     * lost connections, timeouts and missing accounts are errors */
    if (sql_no && finished && a->conn && b->conn)
        return TXN_ABORTED;
    client_error(c, "raw: %s", step1_err);
    return TXN_ERROR;
}

const bench_workload raw_workload = {
    .name = "raw",
    .open = raw_open,
    .txn = raw_txn,
    .close = raw_close,
};

const bench_workload raw_pipe_workload = {
    .name = "raw-pipe",
    .open = raw_open,
    .txn = raw_txn,
    .close = raw_close,
};

/* --- one-off database work ---------------------------------------------- */

static PGconn *setup_connect(const char *conninfo, const char *label)
{
    PGconn *c = pg_connect(conninfo, label);
    if (!c)
        log_error("cannot connect to database %s (%s)", label, conninfo);
    return c;
}

static bool exec_logged(PGconn *c, const char *label, const char *sql, int n,
                        const char *const *params, pg_res *r)
{
    memset(r, 0, sizeof(*r));
    if (pg_exec(c, sql, n, params, r))
        return true;
    log_error("database %s: %s: %s (SQLSTATE %s)", label, sql, r->message,
              r->sqlstate[0] ? r->sqlstate : "none");
    return false;
}

bool raw_setup(const bench_opts *o)
{
    const char *conninfo[2] = {o->pg_a, o->pg_b};
    const char *label[2] = {"a", "b"};
    char n_text[24];
    snprintf(n_text, sizeof(n_text), "%lld", o->accounts);
    const char *params[2] = {n_text, BENCH_BALANCE};
    for (int i = 0; i < 2; i++) {
        PGconn *c = setup_connect(conninfo[i], label[i]);
        if (!c)
            return false;
        pg_res r;
        bool ok = exec_logged(c, label[i], "SET client_min_messages = warning", 0, NULL, &r);
        pg_res_clear(&r);
        ok = ok && exec_logged(c, label[i],
                               "CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, "
                               "balance bigint NOT NULL CHECK (balance >= 0))",
                               0, NULL, &r);
        pg_res_clear(&r);
        ok = ok && exec_logged(c, label[i],
                               "INSERT INTO accounts (id, balance) "
                               "SELECT g, $2::bigint FROM generate_series(1, $1::int) AS g "
                               "ON CONFLICT (id) DO UPDATE "
                               "SET balance = GREATEST(accounts.balance, EXCLUDED.balance)",
                               2, params, &r);
        pg_res_clear(&r);
        ok = ok && exec_logged(c, label[i], "VACUUM ANALYZE accounts", 0, NULL, &r);
        pg_res_clear(&r);
        PQfinish(c);
        if (!ok)
            return false;
        log_info("setup: database %s has accounts 1..%lld with balance >= %s", label[i],
                 o->accounts, BENCH_BALANCE);
    }
    return true;
}

bool raw_preflight(const bench_opts *o, int max_clients)
{
    const char *conninfo[2] = {o->pg_a, o->pg_b};
    const char *label[2] = {"a", "b"};
    char n_text[24];
    snprintf(n_text, sizeof(n_text), "%lld", o->accounts);
    const char *params[1] = {n_text};
    for (int i = 0; i < 2; i++) {
        PGconn *c = setup_connect(conninfo[i], label[i]);
        if (!c)
            return false;
        pg_res r;
        bool ok = exec_logged(c, label[i],
                              "SELECT (SELECT count(*) FROM accounts WHERE id BETWEEN 1 AND $1::int), "
                              "current_setting('max_prepared_transactions')::int",
                              1, params, &r);
        if (ok) {
            long long have = atoll(PQgetvalue(r.res, 0, 0));
            int mpx = atoi(PQgetvalue(r.res, 0, 1));
            if (have != o->accounts) {
                log_error("database %s: %lld of accounts 1..%lld exist: run txbench --setup",
                          label[i], have, o->accounts);
                ok = false;
            } else if (mpx == 0) {
                log_error("database %s: max_prepared_transactions is 0: 2PC is disabled", label[i]);
                ok = false;
            } else if (mpx < max_clients) {
                log_warn("database %s: max_prepared_transactions = %d < %d clients: expect "
                         "errors", label[i], mpx, max_clients);
            }
        }
        pg_res_clear(&r);
        PQfinish(c);
        if (!ok)
            return false;
    }
    return true;
}

int raw_cleanup(const bench_opts *o)
{
    const char *conninfo[2] = {o->pg_a, o->pg_b};
    const char *label[2] = {"a", "b"};
    int total = 0;
    for (int i = 0; i < 2; i++) {
        PGconn *c = setup_connect(conninfo[i], label[i]);
        if (!c)
            continue;
        pg_res r;
        if (exec_logged(c, label[i],
                        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
                        "AND gid LIKE 'bench:%'",
                        0, NULL, &r)) {
            for (int row = 0; row < PQntuples(r.res); row++) {
                const char *gid = PQgetvalue(r.res, row, 0);
                char *sql = gid_sql(c, "ROLLBACK PREPARED", gid);
                pg_res rr;
                memset(&rr, 0, sizeof(rr));
                if (sql && (pg_exec(c, sql, 0, NULL, &rr) || strcmp(rr.sqlstate, "42704") == 0)) {
                    total++;
                    log_info("cleanup: database %s: rolled back leftover branch %s", label[i], gid);
                } else {
                    log_warn("cleanup: database %s: ROLLBACK PREPARED %s failed: %s", label[i], gid,
                             rr.message);
                }
                pg_res_clear(&rr);
                free(sql);
            }
        }
        pg_res_clear(&r);
        PQfinish(c);
    }
    return total;
}
