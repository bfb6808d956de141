/*
 * main.c - txcoord: flags, startup (identity, decision log replay,
 * resolver, HTTP server), the periodic tick, and shutdown.
 *
 * Startup order and why:
 *   1. flags, logging, crash point (flag wins over TXCOORD_CRASH_POINT);
 *   2. participants table (names and URLs each unique);
 *   2b. the port taken (http_listen): a start that cannot take it stops
 *      here, having changed nothing;
 *   3. DIR/coordinator.state: coord_id created once (8 random hex),
 *      epoch + 1, written with durable_write_file BEFORE serving, so no gid
 *      of this run can repeat one of an earlier run. On the first start an
 *      empty decisions.log is made durable before it; later, a state file
 *      whose log is missing refuses the start (the decisions were lost);
 *   4. DIR/decisions.log replayed: every 'C' without 'E' becomes a
 *      committing transaction handed to the resolver; every 3PC 'P'
 *      without 'C' a precommitting one the resolver decides from the
 *      agents' states (or an aborting one after an operator's 'H' abort);
 *   4b. a log that knows a later epoch than the state file (restored alone
 *      from a backup) moves the epoch past it, written as in 3;
 *   4c. an 'N' record naming the epoch is forced into the log: 4b then
 *      also sees an epoch that logged no decision;
 *   5. resolver thread, then the HTTP server on the port taken in 2b.
 * Invariants: the SIGTERM/SIGINT handler only sets a volatile sig_atomic_t;
 * the main thread runs the tick (timeouts, eviction) every TICK_MS and
 * never does network I/O itself (timed-out transactions' rollbacks go to
 * the resolver).
 * Shutdown is bounded: a helper thread (stop_server_and_resolver: its
 * steps there) cuts the resolver's calls at the deadline, stops accepting,
 * rolls back the open transactions not busy, waits for the requests in
 * flight, rolls back the ones that were busy, lets the resolver send the
 * rollbacks until the deadline and stops it; the main thread gives it
 * SHUTDOWN_GRACE_MS. Done in time: log closed, everything freed, exit 0.
 * Not done (a request waits on a row lock at an agent that no rollback of
 * ours frees, say): the
 * process leaves at once with _exit(SHUTDOWN_CUT_EXIT), without freeing or
 * waiting (a supervisor can tell it from a clean stop). That is
 * safe for the same reasons a crash is: a transaction still in flight is
 * not decided, so no 'C' exists for it and presumed abort covers it
 * (agents roll back active branches at their idle timeout and prepared ones
 * when /v1/outcomes says aborted after our restart); one whose 'C' is
 * durable is finished by the next start's replay; and every record already
 * appended has been written (write(2)) and forced as its type requires.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "coord.h"
#include "decision_log.h"
#include "durable.h"
#include "fault.h"
#include "httpc.h"
#include "log.h"
#include "participants.h"
#include "resolver.h"
#include "twopc.h"
#include "txn.h"

#define TICK_MS 100
#define SHUTDOWN_GRACE_MS 2000
#define SHUTDOWN_CUT_EXIT 3 /* the grace ran out: left as a crash would */
#define SHUTDOWN_MARGIN_MS 250 /* of the grace, kept for what follows the rollbacks */

coord_settings g_coord;

static atomic_int stop_requested; /* lock-free: safe to set in a signal handler */

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static const char *const crash_points[] = {
    "before-decision-log",      "after-decision-log",        "after-first-commit",
    "before-end-record",        "3pc-before-precommit-log",  "3pc-after-precommit-log",
    "3pc-after-first-precommit", "3pc-before-commit-log",    "wal-fdatasync=error",
    "3pc-precommit-lost=error", NULL,
};

static char *opt_listen, *opt_listen_unix, *opt_data_dir, *opt_crash_point, *opt_log_level, *opt_token_file;
static str_list opt_participants;
static long long opt_max_body, opt_default_timeout, opt_agent_timeout;
static long long opt_retention, opt_retention_max, opt_max_unfinished;
static long long opt_compact_bytes;
static long long opt_3pc_cancommit, opt_3pc_precommit, opt_3pc_uncertain;
static char *opt_3pc_termination;

static const opt_def options[] = {
    {"listen", OPT_STRING, NULL, 0, 0, true, "HOST:PORT", "address of the REST API", &opt_listen},
    {"listen-unix", OPT_STRING, NULL, 0, 0, false, "PATH",
     "also serve the REST API on this Unix-domain socket (absolute path, mode 0660); local "
     "clients and agents reach it as unix:PATH",
     &opt_listen_unix},
    {"data-dir", OPT_STRING, NULL, 0, 0, true, "DIR",
     "holds coordinator.state and decisions.log (created if missing)", &opt_data_dir},
    {"participant", OPT_STRING_LIST, NULL, 0, 0, true, "NAME=URL",
     "a participant agent; repeat for each", &opt_participants},
    {"max-body", OPT_INT, "1048576", 1024, 1LL << 30, false, "BYTES",
     "largest accepted request body", &opt_max_body},
    {"default-timeout-ms", OPT_INT, "30000", 1, 24LL * 3600 * 1000, false, "MS",
     "transaction timeout when the client gives none", &opt_default_timeout},
    {"agent-timeout-ms", OPT_INT, "10000", 10, 3600LL * 1000, false, "MS",
     "timeout of each prepare/commit/rollback call to an agent", &opt_agent_timeout},
    {"finished-retention-s", OPT_INT, "600", 0, 30LL * 24 * 3600, false, "S",
     "how long finished transactions are shown in full (their outcomes stay answerable)", &opt_retention},
    {"finished-retention-max", OPT_INT, "100000", 0, 100000000, false, "N",
     "at most this many finished transactions stay queryable (the oldest go first)",
     &opt_retention_max},
    {"max-unfinished", OPT_INT, "100000", 0, 100000000, false, "N",
     "refuse new transactions (503) while this many are not finished (0: no limit): each holds "
     "memory until it ends, up to its timeout", &opt_max_unfinished},
    {"decision-log-compact-bytes", OPT_INT, "67108864", 4096, 1LL << 40, false, "BYTES",
     "rewrite decisions.log with only unfinished decisions when it grows past this",
     &opt_compact_bytes},
    {"3pc-cancommit-timeout-ms", OPT_INT, "5000", 1, 24LL * 3600 * 1000, false, "MS",
     "3pc: wait this long for the votes, then abort (per transaction: cancommit_timeout_ms)",
     &opt_3pc_cancommit},
    {"3pc-precommit-timeout-ms", OPT_INT, "5000", 1, 24LL * 3600 * 1000, false, "MS",
     "3pc: wait this long for PreCommit acks, then commit if one came (none: abort if a "
     "branch refused, else ask the agents); agents: pre-committed this long without DoCommit "
     "-> termination (per transaction: precommit_timeout_ms)",
     &opt_3pc_precommit},
    {"3pc-uncertain-timeout-ms", OPT_INT, "5000", 1, 24LL * 3600 * 1000, false, "MS",
     "3pc agents: voted yes this long without PreCommit -> termination (per transaction: "
     "uncertain_timeout_ms)",
     &opt_3pc_uncertain},
    {"3pc-termination", OPT_STRING, "protocol", 0, 0, false, "RULE",
     "3pc agents' rule when a timer fires: protocol (ask the peers, skip the unreachable), "
     "timeout (uncertain -> abort, pre-committed -> commit) or blocking (ask the peers, wait "
     "for the unreachable) (per transaction: termination)",
     &opt_3pc_termination},
    {"crash-point", OPT_STRING, NULL, 0, 0, false, "NAME[:N][=pause:MS|=error]",
     "fault injection: before-decision-log, after-decision-log, after-first-commit, "
     "before-end-record, 3pc-before-precommit-log, 3pc-after-precommit-log, "
     "3pc-after-first-precommit, 3pc-before-commit-log; _exit at the N-th hit, or with "
     "=pause:MS sleep MS ms at every hit from the N-th on; wal-fdatasync:N=error: the decision "
     "log's fdatasync fails (EIO) from the N-th on (the first is the start's epoch record); 3pc-precommit-lost=error: PreCommits are "
     "not sent, as if lost on the way (also env TXCOORD_CRASH_POINT)",
     &opt_crash_point},
    {"log-level", OPT_STRING, "info", 0, 0, false, "LEVEL", "debug, info, warn or error",
     &opt_log_level},
    {"token-file", OPT_STRING, NULL, 0, 0, false, "FILE",
     "the cluster's shared secret (first line of FILE): every request but GET /healthz must "
     "send Authorization: Bearer <token> (else 401), and calls to the agents send it",
     &opt_token_file},
};

/* Does DIR/decisions.log exist? false also when that cannot be told (logged). */
/* The decision log's size into *size, -1 if there is none. false (logged)
 * when that cannot be told. */
static bool decision_log_size(const char *log, off_t *size)
{
    struct stat st;
    if (stat(log, &st) == 0) {
        *size = st.st_size;
        return true;
    }
    if (errno == ENOENT) {
        *size = -1;
        return true;
    }
    log_error("cannot stat %s: %s", log, strerror(errno));
    return false;
}

/* Step 3: read, create or bump DIR/coordinator.state. The decision log is
 * created (empty, durably) before a first identity is written, so an
 * identity whose log is missing means the log was lost (a partial copy, a
 * file moved aside): starting would answer "aborted" (presumed abort) for
 * every earlier gid, and agents would roll back branches of transactions
 * whose other branches committed. That start is refused, and so is a new
 * identity over a log that holds records (the state file was lost). */
/* Write DIR/coordinator.state with g_coord's id and `epoch` (durably:
 * tmp, fsync, rename, directory fsync) and make it g_coord's. */
static bool write_identity(const char *dir, uint64_t epoch)
{
    char *path = xasprintf("%s/coordinator.state", dir);
    json_t *st = json_pack("{s:s, s:I}", "coord_id", g_coord.coord_id, "epoch", (json_int_t)epoch);
    char *text = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    bool ok = durable_write_file(path, text, strlen(text));
    free(text);
    free(path);
    if (ok) {
        g_coord.epoch = epoch;
        log_info("coordinator %s epoch %llu", g_coord.coord_id, (unsigned long long)epoch);
    }
    return ok;
}

static bool load_identity(const char *dir)
{
    char *path = xasprintf("%s/coordinator.state", dir);
    char *log = xasprintf("%s/decisions.log", dir);
    char *data = NULL;
    size_t len = 0;
    bool missing = false, ok = false;
    uint64_t epoch = 0;
    off_t log_size;
    if (!decision_log_size(log, &log_size))
        goto out;
    if (read_whole_file(path, &data, &len, &missing)) {
        json_error_t jerr;
        json_t *st = json_loadb(data, len, 0, &jerr);
        free(data);
        const char *cid = json_string_value(json_object_get(st, "coord_id"));
        json_t *ep = json_object_get(st, "epoch");
        if (!cid || !coord_id_valid(cid) || !json_is_integer(ep) || json_integer_value(ep) < 0) {
            log_error("%s is unreadable or invalid (%s); refusing to start with a new identity",
                      path, st ? "bad coord_id or epoch" : jerr.text);
            json_decref(st);
            goto out;
        }
        snprintf(g_coord.coord_id, sizeof(g_coord.coord_id), "%s", cid);
        epoch = (uint64_t)json_integer_value(ep);
        json_decref(st);
        if (log_size < 0) {
            log_error("%s is missing, but %s says coordinator %s ran before (epoch %llu): its "
                      "commit decisions are lost, and starting would answer \"aborted\" for "
                      "transactions that committed. Put the log back; or, to start anyway as a "
                      "new coordinator, move %s aside (the old one's prepared branches then "
                      "stay in doubt at the agents, for an operator)",
                      log, path, g_coord.coord_id, (unsigned long long)epoch, path);
            goto out;
        }
    } else if (missing) {
        if (log_size > 0) {
            /* Records exist only once an identity did: the state was lost.
             * A new identity would read the log's committed set (its
             * snapshots carry epochs, not the id) as its own. */
            log_error("%s is missing, but %s holds records of an earlier run: refusing to "
                      "start as a new coordinator over another one's decisions. Put the "
                      "state file back; or move both aside to start afresh",
                      path, log);
            goto out;
        }
        if (log_size < 0 && !durable_write_file(log, "", 0))
            goto out; /* logged */
        unsigned char rnd[4];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
            log_error("getrandom failed: %s", strerror(errno));
            goto out;
        }
        snprintf(g_coord.coord_id, sizeof(g_coord.coord_id), "%02x%02x%02x%02x", rnd[0], rnd[1],
                 rnd[2], rnd[3]);
        log_info("new coordinator identity %s", g_coord.coord_id);
    } else {
        goto out; /* logged by read_whole_file */
    }
    ok = write_identity(dir, epoch + 1);
out:
    free(path);
    free(log);
    return ok;
}

/* Step 4: an unfinished decision -> a transaction for the resolver. */
static void recover_unfinished(const char *gid, dlog_pending_kind kind, txn_protocol proto,
                               int64_t at_ms, json_t *branches, const threepc_settings *tps,
                               void *arg)
{
    (void)arg;
    size_t n = json_array_size(branches);
    txn_state st = kind == DLOG_COMMIT     ? TXN_COMMITTING
                   : kind == DLOG_PRECOMMIT ? TXN_PRECOMMITTING
                                            : TXN_ABORTING;
    txn *t = txn_restore(gid, proto, st, kind == DLOG_PRECOMMIT_ABORTED, at_ms, tps, n);
    if (!t)
        return;
    size_t i;
    json_t *b;
    json_array_foreach(branches, i, b) {
        const char *name = json_string_value(json_object_get(b, "participant"));
        const char *bgid = json_string_value(json_object_get(b, "branch_gid"));
        const char *xid = json_string_value(json_object_get(b, "xid")); /* may be absent */
        /* dlog_open checked every branch (branches_restorable): one that
         * still cannot be restored must not be dropped, or the decision
         * would be finished without it */
        if (!name || !bgid || !txn_restore_branch(t, name, bgid, xid))
            die("gid=%s participant=%s: decision record has a branch that cannot be restored; "
                "refusing to start", gid, name ? name : "?");
    }
    if (kind == DLOG_COMMIT)
        txlog_info(gid, NULL, "recovered: commit decided, %zu branches to finish", n);
    else if (kind == DLOG_PRECOMMIT)
        txlog_info(gid, NULL, "recovered: 3pc pre-commit decided without commit decision, %zu "
                   "branches: asking their agents", n);
    else if (kind == DLOG_PRECOMMIT_DECIDED_ABORT)
        txlog_info(gid, NULL, "recovered: 3pc pre-commit then abort decision, %zu branches to "
                   "roll back", n);
    else
        txlog_info(gid, NULL, "recovered: 3pc pre-commit then heuristic abort, %zu branches to "
                   "roll back", n);
    /* A 'P' alone: PreCommits may have been on their way when we died, and
     * one still being made durable at a slow agent reads "uncertain" there;
     * all uncertain decides abort, under a branch that is about to be
     * pre-committed (and commit on its own). So the first round waits as
     * threepc.c's step 6b does, until every agent's own timers have run. We
     * cannot know how long we were down, so the wait is whole. */
    int64_t settle_ms = kind == DLOG_PRECOMMIT
                            ? t->threepc.uncertain_timeout_ms + t->threepc.precommit_timeout_ms
                            : 0;
    if (settle_ms > 0)
        txlog_info(gid, NULL, "3pc recovery: asking the agents their states in %lld ms, once "
                   "their own timers have run", (long long)settle_ms);
    resolver_submit(t, settle_ms);
    txn_unref(t);
}

/* Roll back the active transactions whose deadline passed by expired_by
 * (INT64_MAX: every one), their ROLLBACKs sent by the resolver; returns how
 * many. A busy one (a request of its own runs under op_mu: a statement
 * waiting on a lock, say) is skipped, for the caller's next pass; so is
 * everything once stop_by (now_ms clock) has passed. Never blocks on the
 * network. Nothing is written: an abort needs no record. */
static size_t abort_active(int64_t expired_by, txn_event ev, const char *reason, int64_t stop_by)
{
    txn **open = NULL;
    size_t n = txn_collect_expired(expired_by, &open), done = 0;
    for (size_t i = 0; i < n; i++) {
        txn *t = open[i];
        if (now_ms() < stop_by && pthread_mutex_trylock(&t->op_mu) == 0) {
            if (txn_state_get(t) == TXN_ACTIVE && txn_abort(t, ev, reason, false))
                done++;
            pthread_mutex_unlock(&t->op_mu);
        }
        txn_unref(t);
    }
    free(open);
    return done;
}

/* The periodic work: roll back expired active transactions (busy ones are
 * looked at again next tick), evict old finished ones, compact the
 * decision log when it grew too large. Never blocks on a busy transaction
 * (trylock) or on the network (rollbacks go through the resolver). */
static void tick(void)
{
    int64_t now = now_ms();
    (void)abort_active(now, EV_TIMEOUT, "timeout", INT64_MAX);
    size_t evicted = txn_evict(now, g_coord.retention_s * 1000, (size_t)g_coord.retention_max);
    if (evicted)
        log_debug("evicted %zu finished transactions", evicted);
    dlog_maybe_compact();
}

typedef struct {
    http_server *srv;
    int64_t deadline_ms; /* now_ms() clock: the rollbacks' last moment */
} stop_args;

/* Shutdown steps 3 and 5: the transactions still open (begun, no commit
 * asked) are rolled back, as their timeout would. The next start forgets
 * them anyway (presumed abort: no record is written for a begin), and
 * without this their branches would hold their row locks until their idle
 * timeout (the transaction's timeout_ms) or, after a restart, until the
 * agents' sweeps asked about them. Their clients hear "aborted" from the
 * next start (GET, commit: 409). */
static size_t roll_back_open(int64_t deadline_ms)
{
    return abort_active(INT64_MAX, EV_ROLLBACK,
                        "the coordinator stopped while the transaction was open", deadline_ms);
}

/* Shutdown, bounded (run_within):
 *  1. the resolver's calls get their cut (deadline_ms): none outlives it;
 *  2. the HTTP server stops accepting (a request that finishes arriving is
 *     answered 503 shutting_down);
 *  3. the open transactions not busy are rolled back, their ROLLBACKs sent
 *     by the resolver: a request in flight may be a statement waiting on
 *     one of their row locks, which 4 would otherwise wait for until the
 *     grace ran out;
 *  4. the requests in flight finish, the server stops;
 *  5. the open transactions that were busy in 3 are rolled back;
 *  6. the resolver gives every ROLLBACK its first attempt, until the cut
 *     (one not acknowledged by then is left to the agents: idle timeout,
 *     or their sweeps after our restart), and stops.
 * If that takes more than SHUTDOWN_GRACE_MS the caller leaves without
 * waiting. */
static void stop_server_and_resolver(void *arg)
{
    stop_args *a = arg;
    resolver_cut_at(a->deadline_ms);                  /* 1 */
    http_server_quiesce(a->srv);                      /* 2 */
    size_t n = roll_back_open(a->deadline_ms);        /* 3 */
    http_server_stop(a->srv);                         /* 4 */
    n += roll_back_open(a->deadline_ms);              /* 5 */
    if (n > 0) {
        log_info("shutdown: rolling back %zu open transactions", n);
        resolver_drain(a->deadline_ms);               /* 6 */
    }
    resolver_stop();
}

static bool arm_crash_point(void)
{
    const char *spec = opt_crash_point ? opt_crash_point : getenv("TXCOORD_CRASH_POINT");
    if (!fault_init(spec, crash_points))
        return false;
    const char *armed = fault_armed_name();
    if (armed) {
        g_coord.sequential_phase2 = strcmp(armed, "after-first-commit") == 0;
        g_coord.sequential_precommit = strcmp(armed, "3pc-after-first-precommit") == 0;
    }
    return true;
}

int main(int argc, char **argv)
{
    log_init("txcoord", LOG_INFO);
    if (!opts_parse(options, ARRAY_LEN(options), argc, argv, "txcoord",
                    "distributed transaction coordinator for PostgreSQL"))
        return 2;
    log_level lvl;
    if (!log_level_parse(opt_log_level, &lvl)) {
        fprintf(stderr, "txcoord: --log-level: unknown level '%s'\n", opt_log_level);
        return 2;
    }
    log_init("txcoord", lvl);
    char *host = NULL;
    int port = 0;
    if (!parse_host_port(opt_listen, &host, &port)) {
        fprintf(stderr, "txcoord: --listen: expected HOST:PORT, got '%s'\n", opt_listen);
        return 2;
    }
    if ((opt_token_file && !auth_load_token_file(opt_token_file)) || !arm_crash_point() ||
        !participants_init(&opt_participants)) {
        free(host);
        return 2;
    }
    g_coord.default_timeout_ms = opt_default_timeout;
    g_coord.agent_timeout_ms = opt_agent_timeout;
    g_coord.retention_s = opt_retention;
    g_coord.retention_max = opt_retention_max;
    g_coord.max_unfinished = opt_max_unfinished;
    g_coord.threepc.cancommit_timeout_ms = opt_3pc_cancommit;
    g_coord.threepc.precommit_timeout_ms = opt_3pc_precommit;
    g_coord.threepc.uncertain_timeout_ms = opt_3pc_uncertain;
    if (!termination_rule_parse(opt_3pc_termination, &g_coord.threepc.termination)) {
        fprintf(stderr,
                "txcoord: --3pc-termination: expected protocol, timeout or blocking, got '%s'\n",
                opt_3pc_termination);
        free(host);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The port first: a start that cannot take it changes nothing (no
     * epoch bumped, no log opened). */
    http_listener listener, listener_unix = {.fd = -1};
    if (!http_listen(host, port, &listener))
        die("cannot listen on %s (see above)", opt_listen);
    if (opt_listen_unix && !http_listen_unix(opt_listen_unix, &listener_unix))
        die("cannot listen on unix:%s (see above)", opt_listen_unix);
    if (!mkdir_p(opt_data_dir) || !dir_lock(opt_data_dir, "txcoord") ||
        !load_identity(opt_data_dir))
        die("cannot set up the data directory %s (see above)", opt_data_dir);

    httpc_global_init();
    txn_table_init();
    char *log_path = xasprintf("%s/decisions.log", opt_data_dir);
    if (!dlog_open(log_path, (uint64_t)opt_compact_bytes, recover_unfinished, NULL))
        die("cannot open the decision log %s (see above)", log_path);
    free(log_path);
    /* Step 4b: the log may know a later epoch than coordinator.state (the
     * state file restored from an older backup, the log not): issuing from
     * the state's epoch would hand out gids again that the log holds,
     * committed ones included. Nothing has been issued yet, nothing is
     * served (connections wait in the listen backlog): move past them. */
    uint64_t seen = dlog_max_epoch();
    if (seen >= g_coord.epoch) {
        log_warn("decisions.log holds gids of epoch %llu, and coordinator.state said %llu: "
                 "the state file is older than the log (restored from a backup?); starting at "
                 "epoch %llu, so that no gid is issued twice",
                 (unsigned long long)seen, (unsigned long long)g_coord.epoch - 1,
                 (unsigned long long)seen + 1);
        if (!write_identity(opt_data_dir, seen + 1))
            die("cannot write %s/coordinator.state (see above)", opt_data_dir);
    }
    /* Step 4c: the epoch in the log too, before any gid of it is issued. */
    if (!dlog_note_epoch(g_coord.coord_id, g_coord.epoch))
        die("cannot record the epoch in the decision log (see above)");
    dlog_maybe_compact();
    if (!resolver_start())
        die("cannot start the resolver (see above)");
    http_server *srv = api_start(&listener, host, (size_t)opt_max_body);
    if (!srv)
        die("cannot listen on %s (see above)", opt_listen);
    if (opt_listen_unix && !http_server_serve_also(srv, &listener_unix))
        die("cannot serve on unix:%s (see above)", opt_listen_unix);
    log_info("txcoord %s epoch %llu listening on %s with %zu participants", g_coord.coord_id,
             (unsigned long long)g_coord.epoch, opt_listen, participants_count());

    while (!stop_requested) {
        sleep_ms(TICK_MS, &stop_requested);
        tick();
    }

    log_info("shutting down: no new connections; in-flight requests get %d ms",
             SHUTDOWN_GRACE_MS);
    stop_args stop = {srv, now_ms() + SHUTDOWN_GRACE_MS - SHUTDOWN_MARGIN_MS};
    if (!run_within(stop_server_and_resolver, &stop, SHUTDOWN_GRACE_MS)) {
        log_warn("shutdown: requests or agent calls still in flight after %d ms; exiting now "
                 "(undecided transactions end aborted by presumed abort, decided ones are "
                 "finished at the next start)",
                 SHUTDOWN_GRACE_MS);
        _exit(SHUTDOWN_CUT_EXIT);
    }
    dlog_close();
    txn_table_shutdown();
    participants_free();
    httpc_global_cleanup();
    auth_reset();
    str_list_free(&opt_participants);
    free(host);
    log_info("stopped");
    return 0;
}
