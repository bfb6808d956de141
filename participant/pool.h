/*
 * pool.h - a bounded pool of PostgreSQL connections shared by all branches.
 *
 * Ownership: a PGconn handed out by pool_acquire belongs to the caller until it
 * gives it back with pool_release (exactly once); the pool decides whether to
 * keep it (idle, alive) or PQfinish it.
 */
#ifndef TXAGENT_POOL_H
#define TXAGENT_POOL_H

#include <libpq-fe.h>

#include "pg.h"
#include "util.h"

typedef struct pg_pool pg_pool;

/* Outcome of a pool-level operation. */
typedef enum {
    PX_OK = 0,      /* the command succeeded */
    PX_SQL_ERROR,   /* PostgreSQL answered with an error (see pg_res) */
    PX_DB_DOWN,     /* could not connect, or the connection died */
    PX_EXHAUSTED,   /* no connection became free in time */
} px_status;

/* conninfo and participant are copied. No connection is opened yet. */
pg_pool *pool_create(const char *conninfo, const char *participant, int size);
/* Closes every idle connection; all connections must have been released. */
void pool_destroy(pg_pool *p);

/* Get a connection (reused if one is idle, opened if under the limit), waiting
 * at most wait_ms for one to be released. PX_OK, PX_DB_DOWN or PX_EXHAUSTED. */
px_status pool_acquire(pg_pool *p, int64_t wait_ms, PGconn **out) MUSTCHECK;
/* pool_acquire for a branch's session, held until pool_end_session (after
 * the connection itself went back with pool_release or pool_discard).
 * Sessions never take the last pool_reserve(size) connections: those stay
 * for the short work that finishes prepared branches. */
px_status pool_acquire_session(pg_pool *p, int64_t wait_ms, PGconn **out) MUSTCHECK;
void pool_end_session(pg_pool *p);
/* Connections kept from branches: size/16 from 32 up, 2 from 8, 1 from 2. */
int pool_reserve(int size);
/* Give a connection back. It is kept only if !dead, CONNECTION_OK and
 * PQTRANS_IDLE; otherwise it is closed. dead (the caller saw it die) also
 * closes every idle connection: they most likely died with it. */
void pool_release(pg_pool *p, PGconn *c, bool dead);
/* Close a healthy connection that must not be reused (its session state was
 * changed); unlike pool_release(dead) the idle ones are kept. */
void pool_discard(pg_pool *p, PGconn *c);

/* Run one query (not in a transaction block) on a pooled connection. A
 * connection found dead is replaced and the query retried once, so only use
 * this for statements that are safe to repeat. out is filled (pg_res_clear it). */
px_status pool_query(pg_pool *p, int64_t wait_ms, const char *sql, int nparams,
                     const char *const *params, pg_res *out) MUSTCHECK;
/* Same for "COMMIT PREPARED"/"ROLLBACK PREPARED" '<branch_gid>' (both idempotent
 * given that 42704 means "already finished"). */
px_status pool_exec_gid(pg_pool *p, int64_t wait_ms, const char *verb, const char *branch_gid,
                        pg_res *out) MUSTCHECK;

/* Which backend a connection of this pool talks to: its pid and its
 * backend_start. The pair names the session even after PostgreSQL restarted
 * and handed the pid to another session, and whatever application_name a
 * statement set. */
typedef struct {
    int pid;          /* 0: unknown (never connected) */
    int64_t start_us; /* pg_stat_activity.backend_start, microseconds since the epoch;
                       * 0 when it could not be read: then the fence goes by app */
    char app[80];     /* the application_name the pool gave the connection */
} pg_backend_id;

/* Read the identity of c, a connection of p (libpq forgets the pid once the
 * connection is lost, so read it when the connection is taken). No I/O. */
void pool_backend_id(pg_pool *p, PGconn *c, pg_backend_id *out);

/* Make sure that backend, a session of ours whose connection was lost, is
 * gone: queue it for the fence (nothing is handed out until it ran), then,
 * when wait, run the fence now: true when it is gone (or was already); false
 * when that cannot be confirmed yet (logged, with gid). Without wait, true. */
bool pool_fence_backend(pg_pool *p, const pg_backend_id *id, bool wait, const char *gid);

/* Connections open right now (idle + lent). */
int pool_open_count(pg_pool *p);

#endif
