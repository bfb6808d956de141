/*
 * agent.h - the txagent process: its configuration, shared context and metrics.
 *
 * Invariants:
 *   - One agent value per process, built by main.c before any thread starts and
 *     read-only afterwards (except the atomic metrics and the stop flags).
 *   - Every module gets the agent by pointer ("borrowed"); nothing frees it but main.c.
 */
#ifndef TXAGENT_AGENT_H
#define TXAGENT_AGENT_H

#include <stdatomic.h>

#include "metrics.h"
#include "tp.h"
#include "util.h"

typedef struct pg_pool pg_pool;
typedef struct branch_table branch_table;
typedef struct threepc threepc;
typedef struct termination termination;

/* Default of --branch-timeout-ms: for a branch whose requests did not say
 * "timeout_ms", the idle time after which the agent rolls it back while it is
 * active (unprepared), and the statement_timeout of its statements. */
#define BRANCH_DEFAULT_TIMEOUT_MS 60000
/* How long a request waits for a free pooled connection before 503 pool_exhausted. */
#define POOL_WAIT_MS 5000
/* Finished (failed/committed/aborted) branches are remembered this long, at most this many. */
#define FINISHED_KEEP_MS (10 * 60 * 1000)
#define FINISHED_KEEP_MAX 10000
/* Finished 3PC branches are remembered (a compact index in memory, and
 * branches3pc.log across compactions and restarts) this long by default
 * (--3pc-retain-finished-s): peers and the coordinator's 3PC recovery take
 * "unknown" for "never committed" (threepc.c). */
#define TP_RETAIN_FINISHED_DEFAULT_MS (3600LL * 1000)
/* Threads running 3PC terminations (--3pc-termination-workers): each one
 * may wait up to a peer timeout, so after a partition with many branches in
 * flight they are decided this many at a time (termination.c). */
#define TP_TERMINATION_WORKERS_DEFAULT 4

typedef struct {
    metric_counter begun;     /* unknown -> active */
    metric_counter prepared;  /* -> prepared */
    metric_counter committed; /* -> committed (incl. read-only) */
    metric_counter aborted;   /* -> aborted */
    metric_counter vote_yes, vote_no, vote_read_only;
    metric_gauge in_progress; /* branches currently active */
    /* branches in memory waiting for the coordinator, holding their locks */
    metric_gauge waiting_prepared;     /* 2PC: voted yes, awaiting COMMIT/ROLLBACK */
    metric_gauge waiting_uncertain;    /* 3PC: awaiting PreCommit */
    metric_gauge waiting_precommitted; /* 3PC: awaiting DoCommit */
    metric_histogram prepare_latency; /* whole prepare call, statements included */
    metric_counter precommitted;      /* 3PC: -> precommitted */
    metric_counter term_commit, term_abort, term_wait; /* 3PC terminations by decision */
    metric_counter results_too_large;       /* statements cancelled past --max-result-bytes */
    /* recovery sweep (resolver.c, op_resolve) */
    metric_counter sweep_committed, sweep_aborted; /* prepared branches it finished */
    metric_counter sweep_open_aborted; /* open branches rolled back: coordinator says aborted */
    metric_gauge in_doubt;           /* branches the last sweep asked about and left prepared */
    metric_gauge in_doubt_oldest_ms; /* how long the oldest of them has been prepared (0: none) */
} agent_metrics;

typedef struct agent {
    const char *name;         /* --name; borrowed from the config strings */
    char *coordinator;        /* --coordinator without trailing '/'; owned */
    int64_t resolve_interval_ms;
    int64_t resolve_min_age_ms; /* sweep leaves branches prepared more recently alone */
    size_t max_result_bytes;  /* --max-result-bytes: largest statement result mapped to JSON */
    char *data_dir;           /* --data-dir or NULL; owned */
    pg_pool *pool;            /* owned */
    branch_table *table;      /* owned */
    agent_metrics metrics;
    atomic_int resolver_stop;   /* set by main at shutdown; polled by resolver.c */
    atomic_bool stopping;     /* shutdown began: new branch work is refused (503) */
    /* 3PC (threepc.c, termination.c): NULL without --data-dir. */
    threepc *tpc;
    termination *term;
    int64_t tp_uncertain_timeout_ms; /* defaults when a prepare names none */
    int64_t tp_precommit_timeout_ms;
    int tp_termination;              /* tp_termination */
    int tp_termination_workers;      /* termination.c's threads; 0 = TP_TERMINATION_WORKERS_DEFAULT */
    uint64_t tp_compact_bytes;       /* compact branches3pc.log past this size */
    int64_t tp_retain_finished_ms;   /* keep finished 3PC branches this long (threepc.c);
                                        0 = TP_RETAIN_FINISHED_DEFAULT_MS */
    tp_peer *peer_routes;            /* --peer NAME=URL (tp_peer_url); owned, may be NULL */
    size_t npeer_routes;
    /* Our branch gids that were prepared in PostgreSQL when the first sweep
     * listed them (sorted global gids; published once by resolver.c with
     * release semantics, then read-only). Any branch prepared by an earlier
     * run of this agent and still prepared is in it, so a one-shot prepare
     * for a gid neither in memory nor here needs no pg_prepared_xacts look-up. */
    char **prepared_at_start;
    size_t nprepared_at_start;
    atomic_bool prepared_at_start_listed;
} agent;

#endif
