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
 */
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct pg_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* signalled when a connection is released or a slot frees */
    char *conninfo;
    char *participant;
    int size;
    int open;                /* idle + lent + being connected */
    int nidle;
    PGconn **idle;           /* stack of size entries */
};

pg_pool *pool_create(const char *conninfo, const char *participant, int size)
{
    pg_pool *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->conninfo = xstrdup(conninfo);
    p->participant = xstrdup(participant);
    p->size = size;
    p->idle = xcalloc((size_t)size, sizeof(PGconn *));
    return p;
}

void pool_destroy(pg_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nidle; i++)
        PQfinish(p->idle[i]);
    if (p->open != p->nidle)
        log_warn("connection pool closed with %d connection(s) still lent", p->open - p->nidle);
    free(p->idle);
    free(p->conninfo);
    free(p->participant);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void deadline_ts(struct timespec *ts, int64_t wait_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += wait_ms / 1000;
    ts->tv_nsec += (wait_ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

px_status pool_acquire(pg_pool *p, int64_t wait_ms, PGconn **out)
{
    struct timespec deadline;
    bool have_deadline = false;
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->nidle > 0) {
            *out = p->idle[--p->nidle];
            pthread_mutex_unlock(&p->mu);
            return PX_OK;
        }
        if (p->open < p->size) {
            p->open++; /* reserve the slot, connect without the lock */
            pthread_mutex_unlock(&p->mu);
            PGconn *c = pg_connect(p->conninfo, p->participant);
            if (c) {
                *out = c;
                return PX_OK;
            }
            pthread_mutex_lock(&p->mu);
            p->open--;
            pthread_cond_signal(&p->cv);
            pthread_mutex_unlock(&p->mu);
            return PX_DB_DOWN;
        }
        if (!have_deadline) {
            deadline_ts(&deadline, wait_ms);
            have_deadline = true;
        }
        int rc = pthread_cond_timedwait(&p->cv, &p->mu, &deadline);
        if (rc == ETIMEDOUT && p->nidle == 0 && p->open >= p->size) {
            pthread_mutex_unlock(&p->mu);
            return PX_EXHAUSTED;
        }
    }
}

void pool_release(pg_pool *p, PGconn *c, bool dead)
{
    if (!c)
        return;
    bool keep = !dead && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
    if (!keep)
        PQfinish(c); /* outside the lock: may write a Terminate message */
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
