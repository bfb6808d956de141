/*
 * branch.h - one transaction branch of this agent, the table that holds them,
 * and the branch state machine (see PROTOCOL.md "State machines"):
 *
 *   unknown -> active -> prepared -> committed | aborted
 *   active -> failed -> aborted,  active -> aborted,  active -> committed (read-only)
 *   unknown -> prepared | committed | aborted  (re-sent calls after a restart)
 * Three-phase commit (b->tp set; threepc.c):
 *   prepared -> uncertain (record forced, then the yes vote)
 *   uncertain -> precommitted -> committed,  uncertain -> committed | aborted
 *   uncertain | precommitted -> committed | aborted  (found finished in PostgreSQL)
 *   A precommitted branch is never rolled back by a decision: only committed
 *   (or marked aborted if PostgreSQL shows it was rolled back by someone else).
 *
 * "unknown" is the state of an entry just created by a lookup: it has done
 * nothing in PostgreSQL yet; GET shows it as "unknown".
 *
 * Ownership and locking:
 *   - branch_get returns a counted reference; give it back with branch_put.
 *   - Everything in a branch except the atomics is read and written only with
 *     b->mu held. state and last_activity_ms are also readable without it (for
 *     listings and the janitor); they are only written with b->mu held.
 *   - Lock order: b->mu, then b->cancel_mu or the table lock; never two
 *     branch mutexes.
 */
#ifndef TXAGENT_BRANCH_H
#define TXAGENT_BRANCH_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>

#include "agent.h"
#include "gid.h"
#include "pool.h"

/* A statement batch (or a PREPARE or COMMIT sent alone) still running this
 * long after its bound is cancelled by the idle thread (branch_ops.c). */
#define BATCH_GRACE_MS 2000

typedef enum {
    BS_UNKNOWN = 0,
    BS_ACTIVE,
    BS_FAILED,
    BS_PREPARED,
    BS_COMMITTED,
    BS_ABORTED,
    BS_UNCERTAIN,    /* 3PC: prepared, voted yes, recorded; waiting for PreCommit */
    BS_PRECOMMITTED, /* 3PC: PreCommit recorded; waiting for DoCommit */
    BS__COUNT
} branch_state;

typedef enum { VOTE_NONE = 0, VOTE_YES, VOTE_NO, VOTE_READ_ONLY } branch_vote;

typedef enum {
    EV_BEGIN,          /* unknown -> active: BEGIN on a pooled connection */
    EV_FOUND_PREPARED, /* unknown -> prepared: it is in pg_prepared_xacts */
    EV_PREPARE,        /* active -> prepared: PREPARE TRANSACTION said so */
    EV_READ_ONLY,      /* active -> committed: no xid, COMMIT locally */
    EV_FAIL,           /* active -> failed: ROLLBACK now, keep the reason */
    EV_VOTE_NO,        /* unknown|active|failed -> aborted */
    EV_COMMIT,         /* prepared|unknown -> committed: COMMIT PREPARED */
    EV_ROLLBACK,       /* active|failed -> aborted: ROLLBACK; prepared|unknown: ROLLBACK PREPARED */
    EV_TIMEOUT,        /* active -> aborted: idle too long */
    EV_SHUTDOWN,       /* active -> aborted: agent stopping */
    EV_RECORD,         /* prepared -> uncertain: 3PC state record forced */
    EV_PRECOMMIT,      /* uncertain -> precommitted: record forced */
    EV_FOUND_COMMITTED, /* uncertain|precommitted -> committed: not prepared any more,
                           PostgreSQL says the xid committed */
    EV_FOUND_ABORTED,  /* uncertain|precommitted -> aborted: same, rolled back */
    EV__COUNT
} branch_event;

typedef struct tp_branch tp_branch;

typedef struct branch {
    pthread_mutex_t mu;
    char gid[GID_MAX_LEN + 1];
    char branch_gid[BRANCH_GID_MAX_LEN + 1];
    atomic_int state;              /* branch_state */
    atomic_llong last_activity_ms; /* now_ms() of the last call that touched it */
    atomic_llong batch_overdue_ms; /* while a statement batch runs, or the PREPARE or
                                    * local COMMIT sent alone (deferred triggers run
                                    * there): now_ms() past which it is overdue (its
                                    * bound plus BATCH_GRACE_MS: a client's own SET
                                    * statement_timeout undid the bound, or the
                                    * batch's statements added up); 0 otherwise;
                                    * -1 and below: cancelled (branch_ops.c,
                                    * cancel_if_overdue) */
    PGconn *conn;                  /* lent by the pool while active, else NULL */
    pthread_mutex_t cancel_mu;     /* guards cancel, conn's pointer, backend and
                                    * terminating: usable without b->mu */
    bool terminating;              /* branch_terminate_running picked conn's backend:
                                    * the connection is closed, never pooled again */
    PGcancel *cancel;              /* for conn, while active; owned */
    pg_backend_id backend;         /* conn's backend, read when taken (to fence it once
                                    * lost: libpq forgets the pid of a lost connection) */
    _Atomic branch_vote vote;      /* what prepare answered (re-sends answer the same);
                                    * atomic: status reads look at it without b->mu */
    bool maybe_prepared;           /* the connection died during PREPARE TRANSACTION */
    bool prepared_in_batch;        /* run_batch's pipeline ended with this branch's PREPARE
                                    * (tag checked): fn_prepare has nothing left to send */
    bool wrote;                    /* a statement surely assigned an xid (rows written) */
    bool session_dirty;            /* a statement changed session state: close conn at the end */
    bool role_maybe_set;           /* a statement's text names a role or session authorization
                                    * (SET LOCAL ROLE x): PREPARE is preceded by a reset of the
                                    * role to the session's default (the one the pool's sessions
                                    * finish prepared transactions with), or the prepared
                                    * transaction would belong to x, and only x (or a superuser)
                                    * could ever finish it. A function that sets the role is not
                                    * seen. */
#define BRANCH_RESET_ROLE_SQL "SET LOCAL role TO DEFAULT"
    bool begin_pending;            /* conn taken, BEGIN not sent yet: the first batch carries it */
    int64_t last_stmt_seq;         /* highest "seq" of a statement call run on it (op_statement):
                                    * a re-sent copy of a call is not run again */
    char xid[24];                  /* xid8 of the prepared transaction ("" unknown) */
    _Atomic(tp_branch *) tp;       /* 3PC state (threepc.h), NULL for 2PC; owned, set once
                                    * under b->mu after it is built; atomic: status reads,
                                    * and the sweep (threepc_owns), look without b->mu */
    char reason[256];              /* why it failed / voted no */
    char sqlstate[6];              /* SQLSTATE of that failure, "" if none */
    int64_t created_ms;
    int64_t timeout_ms;            /* idle limit while active; statement_timeout of requests
                                      that name none */
    /* owned by branch.c, under the table lock */
    int refs;
    bool listed;                   /* on the finished list */
    bool evicted;                  /* out of the table, freed at the last put */
    int64_t finished_ms;
    struct branch *hnext;          /* hash chain */
    struct branch *fnext;          /* finished list, oldest first */
} branch;

/* ---- table (branch.c) ---- */
/* default_timeout_ms: a new branch's timeout_ms until a request names one
 * (<= 0: BRANCH_DEFAULT_TIMEOUT_MS). */
branch_table *branch_table_new(const char *participant, int64_t default_timeout_ms);
void branch_table_free(branch_table *t);
/* Find gid (valid) and take a reference. When absent, ask the finder (if
 * any): it knows the gid -> a finished entry as it says; else create an
 * "unknown" entry if create is set, or return NULL. */
branch *branch_get(branch_table *t, const char *gid, bool create);
/* Who knows finished branches the table no longer holds: called with a new
 * "unknown" b (gid, branch_gid set; not in the table, no lock held); if it
 * knows b->gid it fills b (state committed/aborted, vote, tp) and returns
 * true, and b enters the table as finished. Set once, before the API
 * starts (threepc.c). */
typedef bool (*branch_finder)(void *arg, branch *b);
void branch_table_set_finder(branch_table *t, branch_finder fn, void *arg);
/* FNV-1a of a gid (the table's hash; threepc.c's finished index uses it too). */
uint64_t branch_hash_gid(const char *gid);
void branch_put(branch_table *t, branch *b);
/* Called by the state machine when b enters failed/committed/aborted. */
void branch_table_finished(branch_table *t, branch *b);
/* References to every branch, or only to the active ones (their state at
 * the time of the call: re-check under b->mu). Caller puts each, frees the
 * array. The janitor and shutdown ask for active ones only, so that the
 * thousands of finished branches kept for re-sent calls cost them nothing. */
branch **branch_table_snapshot(branch_table *t, size_t *n, bool active_only);
/* Forget finished branches older than FINISHED_KEEP_MS or beyond FINISHED_KEEP_MAX. */
void branch_table_evict(branch_table *t, int64_t now);
size_t branch_table_size(branch_table *t);
/* Replay (threepc.c, before any request): set the state of a branch rebuilt
 * from the 3PC log without a transition; a finished state joins the finished list. */
void branch_restore(branch_table *t, branch *b, branch_state s);

const char *branch_state_name(branch_state s);
/* Readable without b->mu (a snapshot: authoritative only with b->mu held). */
branch_state branch_state_get(branch *b);
/* Lock b->mu, waiting at most ms (monotonic: a clock step must not make
 * the wait outlast the asker's timeout). */
bool branch_lock_within(branch *b, int64_t ms) MUSTCHECK;

/* ---- state machine (branch_fsm.c) ---- */
typedef struct {
    agent *ag;               /* borrowed */
    px_status px;            /* how the last fn ended: PX_OK unless it failed */
    char sqlstate[6];        /* of a failing fn, "" if none */
    char message[512];       /* of a failing fn */
    /* Set by a 3PC finish that found its branch already finished the other
     * way in PostgreSQL (42704, and pg_xact_status of its xid says so):
     * branch_fsm_step then takes EV_FOUND_COMMITTED / EV_FOUND_ABORTED
     * instead of the event asked for, and still returns false. */
    bool found_other_way;
    bool found_committed;
} fsm_ctx;

/* With b->mu held: run the row {state(b), ev} -> fn; advance to its target only
 * if fn succeeded; log "from -> to (reason)". false if no row matches (logged)
 * or fn failed (ctx says why). */
bool branch_fsm_step(branch *b, branch_event ev, const char *reason, fsm_ctx *ctx) MUSTCHECK;
/* The table alone (tests): the state event ev leads to from `from`, or
 * false when there is no such row. */
bool branch_fsm_transition(branch_state from, branch_event ev, branch_state *to);
/* The table alone (tests): how many rows match {from, ev}. Steps take the
 * first; more than one is a dead row. */
size_t branch_fsm_rows_matching(branch_state from, branch_event ev);
/* The gauge counting branches in state s (prepared, uncertain, precommitted),
 * or NULL for the other states. branch_fsm_step keeps them; a branch rebuilt
 * in one of those states without a transition (branch_restore) is counted by
 * its caller. */
metric_gauge *branch_waiting_gauge(agent_metrics *m, branch_state s);

/* Without b->mu: cancel the statement running on the branch, if any (a
 * rollback must not wait behind a statement stuck on a lock). false when
 * the cancel request could not be sent (logged). */
bool branch_cancel_running(branch *b);
/* The same for the idle thread's cancel of one overdue batch: sent only if
 * batch_overdue_ms still reads `batch` (the value its caller claimed the
 * batch with) once cancel_mu is held; otherwise that batch ended, and the
 * cancel, which PostgreSQL applies to whatever its backend runs when it
 * arrives, would hit the branch's next statement. 1 sent, 0 not needed, -1
 * could not be sent (logged). */
int branch_cancel_batch(branch *b, int64_t batch);
/* Under b->mu, before a batch (or a PREPARE or COMMIT sent alone) goes to
 * PostgreSQL: batch_overdue_ms = overdue_at, then wait for a cancel that the
 * idle thread decided for the previous batch while it still ran
 * (branch_cancel_batch holds cancel_mu from its check until the request is
 * out). A cancel that reaches an idle backend is dropped by PostgreSQL, so
 * once this returns none meant for an earlier batch can reach this one. A
 * termination is not waited for: once branch_terminate_running picked the
 * backend (the earlier batch still ran), the session is lost whatever runs
 * on it next, and that fails as on a lost connection. */
void branch_batch_begins(branch *b, int64_t overdue_at);
/* Without b->mu: terminate the backend of the branch's connection, if it has
 * one, and wait until it is gone (pool_fence_backend): for a statement that
 * survives its cancels (a PL/pgSQL handler can catch query_canceled; it
 * cannot catch the FATAL of a termination). The statement then fails as on
 * a lost connection, which every path already handles (a PREPARE it
 * carried: maybe_prepared). Only if batch_overdue_ms still reads `batch`
 * once cancel_mu is held (as branch_cancel_batch); true then too. Logs the
 * termination. false when it could not be confirmed (logged). */
bool branch_terminate_running(agent *ag, branch *b, int64_t batch);

/* Is branch_gid in pg_prepared_xacts of our database? false on failure (ctx
 * filled). xid (size >= 24, may be NULL) gets its xid8 in decimal when found. */
bool branch_is_prepared_in_pg(agent *ag, const char *branch_gid, fsm_ctx *ctx, bool *found,
                              char *xid) MUSTCHECK;
/* With b->mu held, active branch whose BEGIN is still pending: give back its
 * (dead) connection and take a fresh one. false on failure (ctx filled). */
bool branch_reconnect(branch *b, fsm_ctx *ctx) MUSTCHECK;

#endif
