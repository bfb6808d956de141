/*
 * bench.h - what txbench's parts share: options, the phase clock, per-client
 * results, and the two workloads (raw libpq 2PC and the coordinator).
 *
 * Invariants:
 *   - A phase = N client threads running one workload. Every client connects
 *     first, then all start together; transactions that complete inside
 *     [measure_from_us, measure_to_us) are the ones counted and timed
 *     (CLOCK_MONOTONIC, microseconds). No client starts a transaction at or
 *     after measure_to_us, and every wait inside a transaction is bounded by
 *     txn_timeout_ms, so a phase ends by itself.
 *   - Workers only read the phase and the options; each writes only its own
 *     bench_client. The main thread reads the results after joining.
 */
#ifndef TX_BENCH_H
#define TX_BENCH_H

#include <signal.h>
#include <stdint.h>

#include "util.h"

/* Options, after parsing (txbench.c owns the storage). */
typedef struct {
    const char *coordinator;   /* base URL, no trailing '/' */
    const char *pg_a, *pg_b;   /* conninfo of the two databases (raw baseline, --setup) */
    const char *participant_a; /* coordinator participant names of the same databases */
    const char *participant_b;
    long long accounts;        /* ids 1..accounts exist on both sides */
    long long hot;             /* > 0: draw ids from 1..hot only (contention) */
    long long txn_timeout_ms;  /* bound on one transaction's waits */
    long long lock_timeout_ms; /* > 0: raw sessions SET lock_timeout (at connect) */
    bool raw_pipeline;         /* raw: BEGIN + UPDATE + PREPARE as one pipeline (1 round trip, not 3) */
} bench_opts;

/* The phase clock, written by the main thread before the start barrier. */
typedef struct {
    int64_t measure_from_us;   /* end of warm-up */
    int64_t measure_to_us;     /* end of the measured window; nothing starts after it */
    int phase_no;              /* unique per phase of this run (raw gids carry it) */
} bench_clock;

typedef enum { TXN_COMMITTED, TXN_ABORTED, TXN_ERROR } txn_outcome;

/* Latency samples of one client, microseconds. */
typedef struct {
    int64_t *v;
    size_t n, cap;
} sample_vec;

void samples_push(sample_vec *s, int64_t us);
void samples_free(sample_vec *s);

/* One client thread's results for one phase. */
typedef struct {
    int thread_no;
    sample_vec lat;             /* committed transactions inside the window */
    uint64_t committed, aborted, errors; /* inside the window */
    uint64_t errors_total;      /* any time, warm-up included */
    char first_error[256];      /* "" if none */
} bench_client;

/* Record one finished transaction (start/end in us) against the window. */
void client_record(bench_client *c, const bench_clock *clk, int64_t start_us, int64_t end_us,
                   txn_outcome o);
/* Keep the first error text of this client (printf-style), on one line. */
void client_error(bench_client *c, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* One phase (or the median of several rounds of it), for the report. */
typedef struct {
    bool valid;                 /* the phase ran */
    int clients;
    double tps;                 /* committed / measured seconds */
    double p50_ms, p99_ms;      /* committed transactions' latency */
    double min_ms;              /* the fastest one: the path length with no queueing (CSV only) */
    uint64_t committed, aborted, errors; /* inside the window (medians: sums over rounds) */
    uint64_t errors_total;      /* warm-up included */
    double cpu_busy_pct;        /* whole machine during the window, 100 = every core busy */
    double bench_us_per_txn;    /* txbench's own CPU time per finished transaction */
    char first_error[256];
} phase_result;

/* stats.c: merge the clients' samples and counts; percentiles over all samples. */
void phase_result_from_clients(phase_result *r, bench_client *clients, int n, double duration_s);
/* Median of tps, p50, p99 and the CPU figures over the valid rounds; counts are summed. */
void phase_result_median(phase_result *out, const phase_result *rounds, int n);
/* Median of v[0..n) (mean of the two middle ones when n is even); sorts v. */
double stats_median(double *v, int n);

/* Fold newlines/tabs (libpq messages span lines) into single spaces, trim the end. */
void one_line(char *s);

/* Set by SIGINT/SIGTERM: workers stop starting transactions. */
extern volatile sig_atomic_t bench_interrupted;

/* Per-thread random account id in 1..(hot ? hot : accounts). */
long long bench_pick_account(const bench_opts *o, uint64_t *rng);
uint64_t bench_rng_seed(int thread_no);

/*
 * A workload. Each client thread calls, in order:
 *   ctx = open(opts, thread_no, client)   connect; NULL on failure (error kept in client)
 *   txn(ctx, clock, client, &rng)         one transfer; returns its outcome
 *   close(ctx)
 * The driver (txbench.c) owns the loop, the clock and the recording.
 */
typedef struct {
    const char *name;   /* "raw", "raw-pipe", "coordinator" or "coord-inter" */
    void *(*open)(const bench_opts *o, int thread_no, bench_client *c);
    txn_outcome (*txn)(void *ctx, const bench_clock *clk, bench_client *c, uint64_t *rng);
    void (*close)(void *ctx);
} bench_workload;

extern const bench_workload raw_workload;      /* raw.c: 3 round trips to prepare */
extern const bench_workload raw_pipe_workload; /* raw.c: the same with --raw-pipeline (1 round trip) */
extern const bench_workload coord_workload; /* coord.c: one-shot, 1 call */
extern const bench_workload coord_interactive_workload; /* coord.c: --interactive, 4 calls */

/* raw.c: one-off database work (blocking, through pg.h). Each logs its own failure. */
/* Create accounts if missing and upsert ids 1..accounts with an ample balance. */
bool raw_setup(const bench_opts *o) MUSTCHECK;
/* Check ids 1..accounts exist and max_prepared_transactions >= clients. */
bool raw_preflight(const bench_opts *o, int max_clients) MUSTCHECK;
/* ROLLBACK PREPARED every 'bench:%' branch left on either database; returns how many. */
int raw_cleanup(const bench_opts *o);

/* coord.c: GET {coordinator}/healthz answers 200. Logs on failure. */
bool coord_preflight(const bench_opts *o) MUSTCHECK;
/* coord.c: *url, a --coordinator as given, replaced (the old string freed)
 * by the base URL calls use: httpc_url_normalize's form (unix:PATH as
 * http+unix://...; no trailing '/'). false, with "PROG: --coordinator: why"
 * on stderr, for one httpc cannot use (*url then unchanged). */
bool coord_url_option(const char *prog, char **url) MUSTCHECK;

#endif
