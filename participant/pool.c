/*
 * pool.c - the PostgreSQL connection pool of txagent.
 *
 * Invariants:
 *   - At most `size` connections are open at once (idle + lent); `open`
 *     counts them, including one being connected (the slot is reserved before
 *     pg_connect so the limit holds without holding the lock while connecting).
 *   - The idle stack only holds connections that are CONNECTION_OK and
 *     PQTRANS_IDLE: a connection inside a transaction block, or one that saw a
 *     class-08 error, is never handed to another branch.
 *   - LIFO reuse: the most recently used connection is handed out first, so a
 *     lightly loaded agent keeps few backends warm.
 *   - No lock is held across network I/O.
 *   - A connection released as dead takes the idle ones with it (closed):
 *     after a PostgreSQL restart they are all dead, and a branch must not
 *     spend its reconnect attempts on them one by one.
 *   - A reserve: branches hold at most size - pool_reserve(size) connections
 *     (pool_acquire_session, each until pool_end_session). The rest serve
 *     only short work (COMMIT/ROLLBACK PREPARED, fences, pg_prepared_xacts
 *     and pg_xact_status checks, the sweep): with every connection held by
 *     active branches waiting on the row locks of a prepared one, the
 *     COMMIT PREPARED that releases those locks would otherwise find no
 *     connection until statement timeouts freed one.
 *   - Every session carries application_name "txagent <participant>
 *     <instance>.<n>" (instance: 8 random hex per process; n counts the
 *     connections it opened), and holds the participant's shared advisory
 *     lock (FENCE_LOCK_CLASS, participant_key()) for its whole life: that is
 *     how the next instance finds the sessions of this one, by the name or,
 *     should a statement have renamed the session, by the lock. A lost
 *     session is fenced by pid AND its
 *     backend_start, read once when the connection is opened (starts[]):
 *     a statement can change application_name (even in the middle of the
 *     pipeline whose connection was lost, before its answer came back) but
 *     not backend_start, and a PostgreSQL restart that hands the pid to a
 *     live session of ours cannot get the wrong one terminated.
 *     Should PostgreSQL refuse the lock (another session holds or waits for
 *     the key exclusively) or the read of pg_stat_activity (a hardened
 *     grant), the connection is used all the same and fenced by pid and the
 *     name it was given, as before these existed (logged once).
 *   - starts[] holds one entry per open connection (registered before it is
 *     handed out, removed before PQfinish frees it, so a later connection at
 *     the same address never inherits the entry).
 *   - Fences: no connection is handed out while one is pending. The first
 *     connection of an instance terminates every session of an earlier
 *     instance of this participant on the database, and pool_fence_backend
 *     queues a session this instance lost; pg_terminate_backend waits for
 *     each to exit. A killed agent's backend, or one whose connection was
 *     lost, may still be working through a pipeline that ends in PREPARE
 *     TRANSACTION (blocked on a lock, say); once it is gone, that PREPARE
 *     can no longer land after the agent decided anything about the branch
 *     (branch_ops.c, run_batch).
 */
#include "pool.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* How long pg_terminate_backend waits for a fenced backend to exit. */
#define FENCE_WAIT_MS 5000

/* The advisory lock every session of an agent for participant P holds
 * shared: (FENCE_LOCK_CLASS, participant_key(P)), in pg_locks classid and
 * objid with objsubid 2. 0x74786167 is "txag". */
#define FENCE_LOCK_CLASS "1954046311"

/* FNV-1a of the participant's name, cut to 31 bits (an oid in pg_locks, an
 * int4 for pg_try_advisory_lock_shared). */
static uint32_t participant_key(const char *name)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        h = (h ^ *c) * 16777619u;
    return h & 0x7fffffffu;
}

/* A session's backend_start as an exact integer (extract returns numeric). */
#define BACKEND_START_US_SQL "(extract(epoch FROM backend_start) * 1000000)::bigint"

struct pg_pool {
    pthread_mutex_t fence_mu; /* held while fencing; guards fenced_start, lost, nlost */
    atomic_bool fenced;       /* no fence pending: connections may be handed out */
    atomic_bool warned_register; /* a refused conn_register query was logged */
    atomic_bool warned_lock;     /* a fence lock not granted was logged */
    bool fenced_start;        /* sessions of earlier instances were terminated */
    pg_backend_id *lost;      /* lost sessions still to terminate, no repeats */
    int nlost, lost_cap;      /* lost_cap: 2 * size + 16 (a branch's session may be
                               * reported lost twice before it is fenced) */
    char app_name[64];        /* "txagent <participant> <instance>." (+ n per connection) */
    struct conn_start {
        PGconn *conn;
        pg_backend_id id;     /* start_us 0 when it could not be read */
    } *starts;                /* size entries, the first nstarts used; mu */
    int nstarts;
    char app_prefix[48];      /* "txagent <participant> " */
    char lock_key[16];        /* participant_key(participant), as text */
    atomic_uint conn_seq;     /* the n of the next connection */
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* signalled when a connection is released or a slot frees */
    char *conninfo;
    char *participant;
    int size;
    int session_max;         /* connections branches may hold at once (size - reserve) */
    int sessions;            /* held by branches now (pool_acquire_session) */
    int open;                /* idle + lent + being connected */
    int nidle;
    PGconn **idle;           /* stack of size entries */
};

pg_pool *pool_create(const char *conninfo, const char *participant, int size)
{
    pg_pool *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    cond_init_monotonic(&p->cv);
    p->conninfo = xstrdup(conninfo);
    p->participant = xstrdup(participant);
    p->size = size;
    p->session_max = size - pool_reserve(size);
    p->idle = xcalloc((size_t)size, sizeof(PGconn *));
    p->starts = xcalloc((size_t)size, sizeof(*p->starts));
    p->lost_cap = 2 * size + 16;
    p->lost = xcalloc((size_t)p->lost_cap, sizeof(pg_backend_id));
    pthread_mutex_init(&p->fence_mu, NULL);
    atomic_init(&p->fenced, false);
    atomic_init(&p->warned_register, false);
    atomic_init(&p->warned_lock, false);
    uint32_t inst;
    if (getrandom(&inst, sizeof(inst), 0) != (ssize_t)sizeof(inst))
        inst = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    snprintf(p->app_prefix, sizeof(p->app_prefix), "txagent %s ", participant);
    snprintf(p->lock_key, sizeof(p->lock_key), "%u", (unsigned)participant_key(participant));
    snprintf(p->app_name, sizeof(p->app_name), "%s%08x.", p->app_prefix, (unsigned)inst);
    atomic_init(&p->conn_seq, 1);
    return p;
}

/* The fences, run on c before it is handed out (fence_mu held):
 *   1. once per instance: terminate every session of an earlier instance of
 *      this participant on this database: named as ours but not this
 *      instance's, or logged in as our role and holding the participant's
 *      advisory lock (granted) under another name (a statement renamed it).
 *      Sessions of this instance are known by name here, as none has been
 *      handed out to run a statement yet;
 *   2. terminate the sessions this instance lost (lost[]).
 * pg_terminate_backend(pid, FENCE_WAIT_MS) returns true once the backend
 * has exited. FENCE_CONN_DEAD when c died meanwhile (nothing is handed out:
 * the caller drops c, and the next acquire tries again); FENCE_PENDING when
 * a backend of either kind did not exit in time (nothing is handed out
 * either, but c is healthy: the caller keeps it idle). A refusal (42501: no
 * right to signal those sessions) is logged and counts as done, as nothing
 * better can be done from here; the recovery sweep still rolls back
 * whatever such a session leaves prepared. Any other error (a
 * statement_timeout, say) keeps the fence pending: taken as done, a session
 * slow to exit could still PREPARE after its branch was rolled back. The
 * queries run with statement_timeout 0 (a role's own would cut the 5 s
 * wait short every time), reset afterwards for the sessions' later work. */
typedef enum { FENCE_DONE, FENCE_CONN_DEAD, FENCE_PENDING } fence_result;

/* A fence query that failed, about what (for the log): FENCE_CONN_DEAD when
 * c died; FENCE_DONE for a refusal (42501), logged, as nothing better can be
 * done from here; FENCE_PENDING for any other error. Clears r. */
static fence_result fence_query_failed(pg_pool *p, pg_res *r, const char *what)
{
    fence_result f = r->conn_dead                         ? FENCE_CONN_DEAD
                     : strcmp(r->sqlstate, "42501") == 0 ? FENCE_DONE
                                                           : FENCE_PENDING;
    if (f == FENCE_DONE)
        txlog_error(NULL, p->participant,
                    "fence: cannot terminate %s (%s %s); its statements may still run until "
                    "PostgreSQL notices it is gone",
                    what, r->sqlstate, r->message);
    else if (f == FENCE_PENDING)
        txlog_error(NULL, p->participant,
                    "fence: terminating %s failed (%s %s); trying again (no connection is "
                    "handed out until it worked)",
                    what, r->sqlstate, r->message);
    pg_res_clear(r);
    return f;
}

static fence_result fence_run_queries(pg_pool *p, PGconn *c)
{
    char wait[24];
    snprintf(wait, sizeof(wait), "%d", FENCE_WAIT_MS);
    pg_res r;
    if (!p->fenced_start) {
        const char *params[] = {p->app_prefix, p->app_name, wait, p->lock_key};
        /* A listed session that exits on its own before its terminate runs
         * answers false too (no such backend any more): a second listing, a
         * new snapshot, leaves those out, and only what is still there
         * keeps the fence pending. */
        for (int attempt = 0;; attempt++) {
            bool ok = pg_exec(c,
                              "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $3::bigint)), "
                              "count(*) FROM pg_stat_activity WHERE datname = current_database() "
                              "AND left(application_name, length($2)) <> $2 "
                              "AND pid <> pg_backend_pid() "
                              "AND (left(application_name, length($1)) = $1 OR "
                              "(usesysid = (SELECT usesysid FROM pg_stat_activity "
                              "WHERE pid = pg_backend_pid()) AND pid IN ("
                              "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                              "WHERE d.datname = current_database() AND l.locktype = 'advisory' "
                              "AND l.classid = " FENCE_LOCK_CLASS " AND l.objid = $4::oid "
                              "AND l.objsubid = 2 AND l.granted)))",
                              4, params, &r);
            if (!ok) {
                fence_result f =
                    fence_query_failed(p, &r, "the sessions of an earlier instance");
                if (f != FENCE_DONE)
                    return f;
                break;
            }
            long done = atol(PQgetvalue(r.res, 0, 0)), found = atol(PQgetvalue(r.res, 0, 1));
            if (found > 0)
                txlog_info(NULL, p->participant,
                           "fence: terminated %ld of %ld sessions left by an earlier instance",
                           done, found);
            if (done == found)
                break;
            pg_res_clear(&r);
            if (attempt == 0)
                continue;
            /* Not done: such a session may still PREPARE a gid that a
             * re-sent prepare commits first (applied twice). Nothing is
             * handed out until every one of them is gone. */
            txlog_error(NULL, p->participant,
                        "fence: %ld sessions of an earlier instance did not exit within %d ms; "
                        "trying again (no connection is handed out until they have)",
                        found - done, FENCE_WAIT_MS);
            return FENCE_PENDING;
        }
        pg_res_clear(&r);
        p->fenced_start = true;
    }
    while (p->nlost > 0) {
        const pg_backend_id *id = &p->lost[p->nlost - 1];
        int pid = id->pid;
        char spid[16], sstart[24];
        snprintf(spid, sizeof(spid), "%d", pid);
        snprintf(sstart, sizeof(sstart), "%lld", (long long)id->start_us);
        const char *params[] = {spid, sstart, wait, id->app};
        /* by backend_start; by the name given at connect when that was not
         * known (conn_register) */
        bool ok = pg_exec(c,
                          "SELECT pg_terminate_backend(pid, $3::bigint) FROM pg_stat_activity "
                          "WHERE pid = $1::int AND CASE WHEN $2::bigint > 0 THEN "
                          BACKEND_START_US_SQL " = $2::bigint ELSE application_name = $4 END",
                          4, params, &r);
        if (!ok) {
            char what[40];
            snprintf(what, sizeof(what), "lost session %d", pid);
            fence_result f = fence_query_failed(p, &r, what);
            if (f != FENCE_DONE)
                return f;
        } else if (PQntuples(r.res) > 0 && strcmp(PQgetvalue(r.res, 0, 0), "t") != 0) {
            txlog_warn(NULL, p->participant,
                       "fence: lost session %d did not exit within %d ms; trying again", pid,
                       FENCE_WAIT_MS);
            pg_res_clear(&r);
            return FENCE_PENDING;
        } else if (PQntuples(r.res) > 0)
            txlog_info(NULL, p->participant, "fence: terminated lost session %d", pid);
        pg_res_clear(&r);
        p->nlost--;
    }
    return FENCE_DONE;
}

static fence_result fence_run(pg_pool *p, PGconn *c)
{
    pg_res r;
    if (!pg_exec(c, "SET statement_timeout = 0", 0, NULL, &r)) {
        bool dead = r.conn_dead;
        txlog_warn(NULL, p->participant, "fence: cannot lift statement_timeout (%s %s)",
                   r.sqlstate, r.message);
        pg_res_clear(&r);
        return dead ? FENCE_CONN_DEAD : FENCE_PENDING;
    }
    pg_res_clear(&r);
    fence_result f = fence_run_queries(p, c);
    if (f != FENCE_CONN_DEAD && !pg_exec(c, "RESET statement_timeout", 0, NULL, &r))
        f = FENCE_CONN_DEAD; /* c is not handed out with the fence's setting */
    pg_res_clear(&r);
    return f;
}

/* Run the pending fences on c; FENCE_DONE when nothing is pending any more. */
static fence_result fence_check(pg_pool *p, PGconn *c)
{
    if (atomic_load(&p->fenced))
        return FENCE_DONE;
    pthread_mutex_lock(&p->fence_mu);
    fence_result f = atomic_load(&p->fenced) ? FENCE_DONE : fence_run(p, c);
    if (f == FENCE_DONE)
        atomic_store(&p->fenced, true);
    pthread_mutex_unlock(&p->fence_mu);
    return f;
}

void pool_backend_id(pg_pool *p, PGconn *c, pg_backend_id *out)
{
    *out = (pg_backend_id){0};
    if (!c)
        return;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nstarts; i++)
        if (p->starts[i].conn == c) {
            *out = p->starts[i].id;
            break;
        }
    pthread_mutex_unlock(&p->mu);
}

/* Caller holds p->mu. */
static void conn_forget_locked(pg_pool *p, PGconn *c)
{
    for (int i = 0; i < p->nstarts; i++)
        if (p->starts[i].conn == c) {
            p->starts[i] = p->starts[--p->nstarts];
            return;
        }
}

static void conn_forget(pg_pool *p, PGconn *c)
{
    pthread_mutex_lock(&p->mu);
    conn_forget_locked(p, c);
    pthread_mutex_unlock(&p->mu);
}

/* One query of conn_register; false only when c died. A refusal is logged
 * (once per pool: it would repeat for every connection) and leaves *r
 * without a result. */
static bool register_query(pg_pool *p, PGconn *c, const char *sql, int nparams,
                           const char *const *params, const char *what, pg_res *r)
{
    if (pg_exec(c, sql, nparams, params, r) && PQntuples(r->res) == 1)
        return true;
    if (r->conn_dead)
        return false;
    if (!atomic_exchange(&p->warned_register, true))
        txlog_warn(NULL, p->participant,
                   "new connection: %s failed (%s %s); the fences fall back to the session's "
                   "name for such connections (docs/PROTOCOL.md, fences)",
                   what, r->sqlstate, r->message[0] ? r->message : "no row");
    pg_res_clear(r); /* r->res NULL: no result */
    return true;
}

/* Register the new connection c (named app) for the fences: take the
 * participant's advisory lock (shared), read its backend_start, and enter
 * both in starts[]. Either may be refused (an exclusive request for the key
 * waiting, no right to read pg_stat_activity): logged, and c is used all the
 * same, known by its name only as before. false when c died. */
static bool conn_register(pg_pool *p, PGconn *c, const char *app)
{
    pg_res r;
    const char *params[] = {p->lock_key};
    if (!register_query(p, c,
                        "SELECT pg_try_advisory_lock_shared(" FENCE_LOCK_CLASS ", $1::int)", 1,
                        params, "taking the fence lock", &r))
        goto dead;
    if (r.res && strcmp(PQgetvalue(r.res, 0, 0), "t") != 0 &&
        !atomic_exchange(&p->warned_lock, true))
        txlog_warn(NULL, p->participant,
                   "new connection: advisory lock (%s, %s) not granted (another session holds "
                   "or waits for it exclusively); the start fence finds such a session by name only",
                   FENCE_LOCK_CLASS, p->lock_key);
    pg_res_clear(&r);
    if (!register_query(p, c,
                        "SELECT " BACKEND_START_US_SQL
                        " FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                        0, NULL, "reading backend_start", &r))
        goto dead;
    pg_backend_id id = {.pid = PQbackendPID(c),
                        .start_us = r.res ? strtoll(PQgetvalue(r.res, 0, 0), NULL, 10) : 0};
    snprintf(id.app, sizeof(id.app), "%s", app);
    pg_res_clear(&r);
    pthread_mutex_lock(&p->mu);
    p->starts[p->nstarts++] = (struct conn_start){c, id}; /* nstarts <= open <= size */
    pthread_mutex_unlock(&p->mu);
    return true;
dead:
    txlog_warn(NULL, p->participant, "new connection lost while registering it: %s", r.message);
    pg_res_clear(&r);
    return false;
}

bool pool_fence_backend(pg_pool *p, const pg_backend_id *id, bool wait, const char *gid)
{
    if (id->pid <= 0)
        return true; /* never connected: no session to fence */
    int pid = id->pid;
    pthread_mutex_lock(&p->fence_mu);
    bool queued = false;
    for (int i = 0; i < p->nlost && !queued; i++)
        queued = p->lost[i].pid == pid && p->lost[i].start_us == id->start_us &&
                 strcmp(p->lost[i].app, id->app) == 0;
    /* A session may be reported twice (the PREPARE paths and give_back_conn):
     * queued once. */
    if (!queued && p->nlost < p->lost_cap)
        p->lost[p->nlost++] = *id;
    else if (!queued)
        txlog_error(gid, p->participant, "fence: too many lost sessions pending; %d not fenced",
                    pid);
    atomic_store(&p->fenced, false);
    pthread_mutex_unlock(&p->fence_mu);
    if (!wait)
        return true;
    /* Fence now if PostgreSQL can be reached; else the next acquire does,
     * and nothing is handed out before it has. */
    PGconn *c;
    if (pool_acquire(p, FENCE_WAIT_MS, &c) != PX_OK) {
        txlog_warn(gid, p->participant,
                   "fence: lost session %d not terminated yet (no connection); pending", pid);
        return false;
    }
    pool_release(p, c, false);
    return true;
}

void pool_destroy(pg_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nidle; i++)
        PQfinish(p->idle[i]);
    free(p->starts);
    if (p->open != p->nidle)
        log_warn("connection pool closed with %d connection(s) still lent", p->open - p->nidle);
    free(p->idle);
    free(p->lost);
    free(p->conninfo);
    free(p->participant);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->fence_mu);
    free(p);
}

int pool_reserve(int size)
{
    if (size >= 32)
        return size / 16;
    return size >= 8 ? 2 : size >= 2 ? 1 : 0;
}

px_status pool_acquire(pg_pool *p, int64_t wait_ms, PGconn **out)
{
    struct timespec deadline;
    bool have_deadline = false;
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->nidle > 0) {
            PGconn *c = p->idle[--p->nidle];
            pthread_mutex_unlock(&p->mu);
            fence_result f = fence_check(p, c);
            if (f != FENCE_DONE) {
                /* A dead c most likely means the others died too (release
                 * closes the idle ones); a pending fence leaves c healthy. */
                pool_release(p, c, f == FENCE_CONN_DEAD);
                return PX_DB_DOWN;
            }
            *out = c;
            return PX_OK;
        }
        if (p->open < p->size) {
            p->open++; /* reserve the slot, connect without the lock */
            pthread_mutex_unlock(&p->mu);
            char app[80];
            snprintf(app, sizeof(app), "%s%u", p->app_name, atomic_fetch_add(&p->conn_seq, 1));
            PGconn *c = pg_connect_as(p->conninfo, p->participant, app);
            if (c && !conn_register(p, c, app)) {
                PQfinish(c);
                c = NULL;
            }
            fence_result f = c ? fence_check(p, c) : FENCE_CONN_DEAD;
            if (f == FENCE_DONE) {
                *out = c;
                return PX_OK;
            }
            if (f == FENCE_PENDING) {
                pool_release(p, c, false); /* healthy: idle for the next try */
                return PX_DB_DOWN;
            }
            if (c) {
                conn_forget(p, c);
                PQfinish(c);
            }
            pthread_mutex_lock(&p->mu);
            p->open--;
            pthread_cond_signal(&p->cv);
            pthread_mutex_unlock(&p->mu);
            return PX_DB_DOWN;
        }
        if (!have_deadline) {
            deadline_in(CLOCK_MONOTONIC, wait_ms, &deadline);
            have_deadline = true;
        }
        int rc = pthread_cond_timedwait(&p->cv, &p->mu, &deadline);
        if (rc == ETIMEDOUT && p->nidle == 0 && p->open >= p->size) {
            pthread_mutex_unlock(&p->mu);
            return PX_EXHAUSTED;
        }
    }
}

px_status pool_acquire_session(pg_pool *p, int64_t wait_ms, PGconn **out)
{
    struct timespec deadline;
    deadline_in(CLOCK_MONOTONIC, wait_ms, &deadline);
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    while (p->sessions >= p->session_max) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT &&
            p->sessions >= p->session_max) {
            pthread_mutex_unlock(&p->mu);
            return PX_EXHAUSTED;
        }
    }
    p->sessions++;
    pthread_mutex_unlock(&p->mu);
    px_status ps = pool_acquire(p, wait_ms, out);
    if (ps != PX_OK)
        pool_end_session(p);
    return ps;
}

void pool_end_session(pg_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->sessions--;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void pool_release(pg_pool *p, PGconn *c, bool dead)
{
    if (!c)
        return;
    bool keep = !dead && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
    if (!keep) {
        conn_forget(p, c);
        PQfinish(c); /* outside the lock: may write a Terminate message */
    }
    PGconn *stale[64];
    int nstale = 0;
    pthread_mutex_lock(&p->mu);
    if (keep) {
        p->idle[p->nidle++] = c;
    } else {
        p->open--;
        /* A connection that died (PostgreSQL restarted, or killed us): the
         * idle ones most likely died with it; close them rather than hand
         * each to a branch that would find out the hard way. */
        while (dead && p->nidle > 0 && nstale < (int)ARRAY_LEN(stale)) {
            stale[nstale++] = p->idle[--p->nidle];
            conn_forget_locked(p, stale[nstale - 1]);
            p->open--;
        }
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < nstale; i++)
        PQfinish(stale[i]);
}

void pool_discard(pg_pool *p, PGconn *c)
{
    if (!c)
        return;
    conn_forget(p, c);
    PQfinish(c);
    pthread_mutex_lock(&p->mu);
    p->open--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int pool_open_count(pg_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->open;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Shared body of pool_query / pool_exec_gid: one retry on a dead connection
 * (an idle pooled connection may have died while PostgreSQL restarted). */
static px_status pool_run(pg_pool *p, int64_t wait_ms, const char *sql, int nparams,
                          const char *const *params, const char *verb, const char *bgid,
                          pg_res *out)
{
    memset(out, 0, sizeof(*out));
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c;
        px_status ps = pool_acquire(p, wait_ms, &c);
        if (ps != PX_OK) {
            snprintf(out->message, sizeof(out->message), "%s",
                     ps == PX_EXHAUSTED ? "connection pool exhausted"
                                        : "cannot connect to PostgreSQL");
            return ps;
        }
        pg_res_clear(out);
        memset(out, 0, sizeof(*out));
        bool ok = verb ? pg_exec_gid(c, verb, bgid, out)
                       : pg_exec(c, sql, nparams, params, out);
        pool_release(p, c, out->conn_dead);
        if (ok)
            return PX_OK;
        if (!out->conn_dead)
            return PX_SQL_ERROR;
    }
    return PX_DB_DOWN;
}

px_status pool_query(pg_pool *p, int64_t wait_ms, const char *sql, int nparams,
                     const char *const *params, pg_res *out)
{
    return pool_run(p, wait_ms, sql, nparams, params, NULL, NULL, out);
}

px_status pool_exec_gid(pg_pool *p, int64_t wait_ms, const char *verb, const char *branch_gid,
                        pg_res *out)
{
    return pool_run(p, wait_ms, NULL, 0, NULL, verb, branch_gid, out);
}
