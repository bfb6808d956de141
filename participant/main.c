/*
 * main.c - txagent: flags, signals, startup, the janitor tick and shutdown.
 *
 * Invariants:
 *   - Signal handlers only set a lock-free atomic flag; the main loop
 *     notices it within one tick.
 *   - Periodic housekeeping (eviction of finished branches) runs from
 *     tick() on the main thread only. Idle-branch timeouts have their own
 *     thread (idle_main): each is a ROLLBACK on the branch's connection,
 *     which a silently dead connection holds for tcp_user_timeout and then
 *     a fence, and the 3PC timers in tick() must not wait behind that. The
 *     recovery sweep has its own thread too (resolver.c): it waits on the
 *     network.
 *   - Periodic 3PC work (timers, log compaction) also runs from tick();
 *     the terminations themselves run on termination.c's worker threads
 *     (--3pc-termination-workers).
 *   - Shutdown order: refuse new branches (503 shutting_down), cancel the
 *     statements running on active branches and keep cancelling while the
 *     HTTP server stops (it waits for in-flight calls, which a statement
 *     blocked on a lock would otherwise hold forever; a call that cancelling
 *     cannot end, such as COMMIT PREPARED behind a synchronous standby,
 *     makes the process _exit after SHUTDOWN_GRACE_MS, which is as safe as a
 *     crash), stop the idle-timeout thread, the sweep and the
 *     termination workers (each finishes its current termination, every
 *     call of which is bounded), roll back open (unprepared) branches (these
 *     steps under the same SHUTDOWN_GRACE_MS bound, then _exit), close
 *     connections. Prepared branches stay prepared: they are the
 *     coordinator's (or, for 3PC, their timers') to decide.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "api.h"
#include "auth.h"
#include "branch.h"
#include "config.h"
#include "durable.h"
#include "fault.h"
#include "gid.h"
#include "httpc.h"
#include "log.h"
#include "ops.h"
#include "pool.h"
#include "resolver.h"
#include "termination.h"
#include "threepc.h"
#include "tp.h"

#define TICK_MS 100
#define IDLE_CHECK_EVERY_MS 1000
#define SHUTDOWN_CANCEL_EVERY_MS 200
#define SHUTDOWN_GRACE_MS 8000 /* in-flight API calls, then _exit */
#define SHUTDOWN_CUT_EXIT 3      /* a grace ran out: left as a crash would */

static atomic_int stop_requested; /* lock-free: safe to set in a signal handler */

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* PostgreSQL refuses every PREPARE TRANSACTION while max_prepared_transactions
 * is 0 (its default), and some under load while it is below the pool size:
 * said once at start, where the operator looks, rather than as a no vote on
 * every commit. Not fatal: the setting may be changed with a restart of
 * PostgreSQL alone. */
static void check_max_prepared(PGconn *c, long long pool_size)
{
    pg_res r;
    if (!pg_exec(c, "SELECT pg_catalog.current_setting('max_prepared_transactions')", 0, NULL,
                 &r) ||
        !r.res || PQntuples(r.res) != 1) {
        log_warn("cannot read max_prepared_transactions (%s)", r.message);
        pg_res_clear(&r);
        return;
    }
    long long n = atoll(PQgetvalue(r.res, 0, 0));
    pg_res_clear(&r);
    if (n == 0)
        log_error("PostgreSQL has max_prepared_transactions = 0: every PREPARE TRANSACTION will "
                  "fail and every transaction abort; set it to at least %lld (--pool-size) and "
                  "restart PostgreSQL",
                  pool_size);
    else if (n < pool_size)
        log_warn("PostgreSQL has max_prepared_transactions = %lld, below --pool-size %lld: "
                 "prepares beyond it fail under load (no votes)",
                 n, pool_size);
}

static const char *const crash_points[] = {"after-prepare", "after-commit-prepared",
                                           "before-overdue-cancel",
                                           "3pc-before-precommit-record", "3pc-after-precommit-record",
                                           "wal-fdatasync=error", NULL};

typedef struct {
    char *listen, *listen_unix, *name, *pg, *coordinator, *data_dir, *crash_point, *log_level;
    char *tp_termination;
    str_list peers;
    long long pool_size, resolve_interval_ms, resolve_min_age_ms;
    long long max_body, branch_timeout_ms, max_result;
    char *token_file;
    long long tp_uncertain_ms, tp_precommit_ms, tp_compact_bytes, tp_retain_finished_s;
    long long tp_termination_workers;
} agent_opts;

static void opts_free(agent_opts *o)
{
    free(o->listen);
    free(o->listen_unix);
    free(o->name);
    free(o->pg);
    free(o->coordinator);
    free(o->data_dir);
    free(o->crash_point);
    free(o->log_level);
    free(o->tp_termination);
    free(o->token_file);
    str_list_free(&o->peers);
}

/* --peer NAME=URL, repeatable: the routes to peers (tp_peer_url). On success
 * *out (caller frees) holds n routes; one stderr line and false otherwise. */
static bool parse_peer_routes(const str_list *specs, const char *self, tp_peer **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (specs->n == 0)
        return true;
    tp_peer *routes = xcalloc(specs->n, sizeof(*routes));
    for (size_t i = 0; i < specs->n; i++) {
        char err[512];
        if (!tp_peer_route_parse(specs->items[i], &routes[i], err, sizeof(err))) {
            fprintf(stderr, "txagent: --peer: %s\n", err);
            free(routes);
            return false;
        }
        const char *why = strcmp(routes[i].participant, self) == 0 ? "is this agent's own name"
                                                                  : NULL;
        for (size_t k = 0; k < i && !why; k++)
            if (strcmp(routes[k].participant, routes[i].participant) == 0)
                why = "is given twice";
        if (why) {
            fprintf(stderr, "txagent: --peer: '%s': %s %s\n", specs->items[i],
                    routes[i].participant, why);
            free(routes);
            return false;
        }
    }
    *out = routes;
    *n = specs->n;
    return true;
}

static bool install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return false;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL) == 0;
}

static void tick(agent *ag)
{
    int64_t now = now_ms();
    branch_table_evict(ag->table, now);
    threepc_tick(ag, now);
}

/* The idle-branch timeouts (see the invariants above). */
typedef struct {
    agent *ag;
    atomic_int stop;
} idle_expirer;

static void *idle_main(void *arg)
{
    idle_expirer *x = arg;
    while (!x->stop) {
        sleep_ms(IDLE_CHECK_EVERY_MS, &x->stop);
        if (!x->stop)
            op_expire_idle(x->ag, now_ms());
    }
    return NULL;
}

/* Shutdown helper thread: cancels running statements until told to stop, so
 * that http_server_stop (which waits for in-flight calls) cannot hang behind
 * a statement blocked on a lock, nor behind one that started just after a
 * single round of cancels. */
typedef struct {
    agent *ag;
    atomic_int stop;
} canceller;

static void stop_api(void *srv)
{
    http_server_stop(srv);
}

/* The workers left once the API has stopped: each may be inside a call
 * that cancelling cannot end (a resolver's COMMIT PREPARED behind a stalled
 * synchronous standby, a termination's peer call, a ROLLBACK on a dead
 * connection), so main runs this under the same bound as stop_api. */
typedef struct {
    agent *ag;
    idle_expirer *idle;
    pthread_t idle_thread, resolver_thread;
    canceller *cn; /* NULL when its thread did not start */
    pthread_t cancel_thread;
} workers;

static void stop_workers(void *arg)
{
    workers *w = arg;
    if (w->cn) { /* its PQcancel may wait on a host that does not answer */
        w->cn->stop = 1;
        pthread_join(w->cancel_thread, NULL);
    }
    w->idle->stop = 1;
    pthread_join(w->idle_thread, NULL);
    resolver_stop(w->ag, w->resolver_thread);
    termination_stop(w->ag);
    op_rollback_open(w->ag);
}

static void *cancel_main(void *arg)
{
    canceller *c = arg;
    while (!c->stop) {
        op_cancel_running(c->ag);
        sleep_ms(SHUTDOWN_CANCEL_EVERY_MS, &c->stop);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    agent_opts o = {0};
    const opt_def defs[] = {
        {"listen", OPT_STRING, NULL, 0, 0, true, "HOST:PORT", "address to serve the agent API on",
         &o.listen},
        {"listen-unix", OPT_STRING, NULL, 0, 0, false, "PATH",
         "also serve the agent API on this Unix-domain socket (absolute path, mode 0660): a "
         "coordinator on this host reaches it as --participant NAME=unix:PATH",
         &o.listen_unix},
        {"name", OPT_STRING, NULL, 0, 0, true, "NAME",
         "participant name ([a-z][a-z0-9_-]{0,31}); must match the coordinator's", &o.name},
        {"pg", OPT_STRING, NULL, 0, 0, true, "CONNINFO", "libpq connection string of the database",
         &o.pg},
        {"coordinator", OPT_STRING, NULL, 0, 0, true, "URL",
         "coordinator base URL, asked for outcomes by the recovery sweep", &o.coordinator},
        {"data-dir", OPT_STRING, NULL, 0, 0, false, "DIR", "state directory (created if missing)",
         &o.data_dir},
        {"pool-size", OPT_INT, "64", 1, 10000, false, "N",
         "max PostgreSQL connections; active branches hold all but a reserve (size/16 from 32, 2 from "
         "8, 1 from 2) kept for finishing prepared branches and recovery", &o.pool_size},
        {"resolve-interval-ms", OPT_INT, "5000", 100, 3600000, false, "MS",
         "recovery sweep period", &o.resolve_interval_ms},
        {"resolve-min-age-ms", OPT_INT, "1000", 0, 3600000, false, "MS",
         "the sweep asks about a prepared branch only once it is this old (younger ones are "
         "being finished by the coordinator)",
         &o.resolve_min_age_ms},
        {"max-body", OPT_INT, "2097152", 1024, 1LL << 30, false, "BYTES",
         "largest request body accepted; keep it above txcoord's --max-body (a statement "
         "txcoord forwards grows a little on the way)",
         &o.max_body},
        {"token-file", OPT_STRING, NULL, 0, 0, false, "FILE",
         "the cluster's shared secret (first line of FILE): every request but GET /healthz "
         "must send Authorization: Bearer <token> (else 401), and calls to the coordinator and "
         "to 3PC peers send it",
         &o.token_file},
        {"max-result-bytes", OPT_INT, "33554432", 1024, 63LL << 20, false, "BYTES",
         "largest statement result returned (the JSON text of its rows); a bigger one fails the "
         "branch with 422 result_too_large. At most 63 MiB, so that an answer stays under the "
         "coordinator's 64 MiB",
         &o.max_result},
        {"branch-timeout-ms", OPT_INT, "60000", 100, 86400000, false, "MS",
         "for a branch whose requests name no timeout_ms: statement_timeout of its statements "
         "and how long it may stay idle before it is rolled back",
         &o.branch_timeout_ms},
        {"3pc-uncertain-timeout-ms", OPT_INT, "5000", 1, 86400000, false, "MS",
         "3PC: wait in uncertain (voted yes, no PreCommit) before termination, when the "
         "coordinator sends none", &o.tp_uncertain_ms},
        {"3pc-precommit-timeout-ms", OPT_INT, "5000", 1, 86400000, false, "MS",
         "3PC: wait in precommitted (no DoCommit) before termination, when the coordinator "
         "sends none", &o.tp_precommit_ms},
        {"3pc-termination", OPT_STRING, "protocol", 0, 0, false, "protocol|timeout|blocking",
         "3PC: termination rule when the prepare names none (protocol: ask the peers, skip "
         "the unreachable; timeout: uncertain aborts, precommitted commits; blocking: ask the "
         "peers, wait for the unreachable)", &o.tp_termination},
        {"3pc-termination-workers", OPT_INT, "4", 1, 64, false, "N",
         "3PC: threads running terminations, so this many at a time (one waits up to 3 s on "
         "unreachable peers)",
         &o.tp_termination_workers},
        {"peer", OPT_STRING_LIST, NULL, 0, 0, false, "NAME=URL",
         "3PC: reach peer NAME at URL (its agent API) instead of the URL the coordinator "
         "sends (NAT, another route, a proxy); repeat for each peer", &o.peers},
        {"3pc-log-compact-bytes", OPT_INT, "4194304", 4096, 1LL << 40, false, "BYTES",
         "3PC: rewrite branches3pc.log past this size, keeping unfinished branches and "
         "finished ones within --3pc-retain-finished-s",
         &o.tp_compact_bytes},
        {"3pc-retain-finished-s", OPT_INT, "3600", 1, 30LL * 86400, false, "S",
         "3PC: remember finished branches this long (memory, and branches3pc.log across "
         "compactions and restarts); peers and the coordinator's recovery read a forgotten "
         "branch as not committed",
         &o.tp_retain_finished_s},
        {"crash-point", OPT_STRING, NULL, 0, 0, false, "NAME[:N][=pause:MS|=error]",
         "testing: _exit at a crash point (after-prepare, after-commit-prepared, "
         "3pc-before-precommit-record, 3pc-after-precommit-record), at its N-th hit; =pause:MS sleeps MS ms at every hit "
         "from the N-th on instead; wal-fdatasync=error: branches3pc.log's fdatasync fails "
         "(EIO) from the N-th on; env TXAGENT_CRASH_POINT too",
         &o.crash_point},
        {"log-level", OPT_STRING, "info", 0, 0, false, "LEVEL", "debug, info, warn or error",
         &o.log_level},
    };
    const char *summary = "txagent: participant agent of txcoord; runs transaction branches on "
                          "one PostgreSQL database and votes in two- and three-phase commit "
                          "(3PC needs --data-dir).";
    if (!opts_parse(defs, ARRAY_LEN(defs), argc, argv, "txagent", summary)) {
        opts_free(&o);
        return 2;
    }
    log_level lvl;
    if (!log_level_parse(o.log_level, &lvl)) {
        fprintf(stderr, "txagent: --log-level: '%s' is not debug, info, warn or error\n",
                o.log_level);
        opts_free(&o);
        return 2;
    }
    log_init("txagent", lvl);
    char *host = NULL;
    int port = 0;
    if (!parse_host_port(o.listen, &host, &port)) {
        fprintf(stderr, "txagent: --listen: '%s' is not HOST:PORT\n", o.listen);
        opts_free(&o);
        return 2;
    }
    if (!participant_name_valid(o.name)) {
        fprintf(stderr, "txagent: --name: '%s' is not a valid participant name\n", o.name);
        free(host);
        opts_free(&o);
        return 2;
    }
    char url_err[400];
    char *coordinator_url = httpc_url_normalize(o.coordinator, url_err, sizeof(url_err));
    if (!coordinator_url) {
        fprintf(stderr, "txagent: --coordinator: %s\n", url_err);
        free(host);
        opts_free(&o);
        return 2;
    }
    free(o.coordinator);
    o.coordinator = coordinator_url; /* the form calls use */
    tp_termination term_rule;
    if (!tp_termination_parse(o.tp_termination, &term_rule)) {
        fprintf(stderr, "txagent: --3pc-termination: '%s' is not protocol, timeout or blocking\n",
                o.tp_termination);
        free(host);
        opts_free(&o);
        return 2;
    }
    tp_peer *routes = NULL;
    size_t nroutes = 0;
    if (!parse_peer_routes(&o.peers, o.name, &routes, &nroutes)) {
        free(host);
        opts_free(&o);
        return 2;
    }
    const char *crash = o.crash_point ? o.crash_point : getenv("TXAGENT_CRASH_POINT");
    if ((o.token_file && !auth_load_token_file(o.token_file)) || !fault_init(crash, crash_points)) {
        free(routes);
        free(host);
        opts_free(&o);
        return 2;
    }
    if (o.data_dir && (!mkdir_p(o.data_dir) || !dir_lock(o.data_dir, "txagent"))) {
        free(routes);
        free(host);
        opts_free(&o);
        return 1;
    }
    /* The port before anything touches PostgreSQL: the pool's first
     * connection terminates every session of an earlier instance of this
     * participant (pool.c, fence), which a second instance started by
     * mistake would do to the live one before failing on its port. */
    http_listener listener, listener_unix = {.fd = -1};
    if (!http_listen(host, port, &listener))
        die("cannot listen on %s (see above); nothing done", o.listen);
    if (o.listen_unix && !http_listen_unix(o.listen_unix, &listener_unix))
        die("cannot listen on unix:%s (see above); nothing done", o.listen_unix);
    if (!install_signals())
        die("cannot install signal handlers");

    agent *ag = xcalloc(1, sizeof(*ag));
    ag->name = o.name;
    ag->coordinator = xstrdup(o.coordinator);
    ag->resolve_interval_ms = o.resolve_interval_ms;
    ag->resolve_min_age_ms = o.resolve_min_age_ms;
    ag->data_dir = o.data_dir ? xstrdup(o.data_dir) : NULL;
    ag->tp_uncertain_timeout_ms = o.tp_uncertain_ms;
    ag->tp_precommit_timeout_ms = o.tp_precommit_ms;
    ag->tp_termination = (int)term_rule;
    ag->tp_termination_workers = (int)o.tp_termination_workers;
    ag->tp_compact_bytes = (uint64_t)o.tp_compact_bytes;
    ag->tp_retain_finished_ms = o.tp_retain_finished_s * 1000;
    ag->peer_routes = routes;
    ag->npeer_routes = nroutes;
    for (size_t i = 0; i < nroutes; i++)
        log_info("peer %s reached at %s (--peer), whatever URL the coordinator sends",
                 routes[i].participant, routes[i].url);
    atomic_init(&ag->stopping, false);
    ag->max_result_bytes = (size_t)o.max_result;
    ag->pool = pool_create(o.pg, o.name, (int)o.pool_size);
    ag->table = branch_table_new(o.name, o.branch_timeout_ms);

    httpc_global_init();
    /* Warm one connection so a bad --pg shows at once (not fatal: PG may come later). */
    PGconn *c;
    if (pool_acquire(ag->pool, 0, &c) == PX_OK) {
        check_max_prepared(c, o.pool_size);
        pool_release(ag->pool, c, false);
    } else {
        log_warn("PostgreSQL is not reachable yet; will retry on demand");
    }

    /* 3PC state before anything can ask about a branch. */
    if (ag->data_dir) {
        if (!threepc_open(ag))
            die("cannot open the 3pc branch log in %s", ag->data_dir);
        if (!termination_start(ag))
            die("cannot start the 3pc termination workers");
    } else {
        log_info("no --data-dir: 3pc prepares will be refused (no_data_dir)");
    }

    http_server *srv = api_start(ag, &listener, host, (size_t)o.max_body);
    if (!srv)
        die("cannot serve on %s", o.listen);
    if (o.listen_unix && !http_server_serve_also(srv, &listener_unix))
        die("cannot serve on unix:%s (see above)", o.listen_unix);
    pthread_t resolver_thread;
    if (!resolver_start(ag, &resolver_thread))
        die("cannot start the recovery sweep");
    log_info("txagent %s listening on %s (pool %lld, sweep every %lld ms of branches prepared "
             "%lld ms ago or more, coordinator %s)",
             o.name, o.listen, o.pool_size, o.resolve_interval_ms, o.resolve_min_age_ms,
             ag->coordinator);

    idle_expirer idle = {.ag = ag, .stop = 0};
    pthread_t idle_thread;
    if (pthread_create(&idle_thread, NULL, idle_main, &idle) != 0)
        die("cannot start the idle-branch timeout thread");
    while (!stop_requested) {
        tick(ag);
        sleep_ms(TICK_MS, &stop_requested);
    }

    log_info("shutting down: cancelling running statements, stopping the API");
    atomic_store(&ag->stopping, true);
    canceller cn = {.ag = ag, .stop = 0};
    pthread_t cancel_thread;
    memset(&cancel_thread, 0, sizeof(cancel_thread)); /* read only if it started */
    bool cancelling = pthread_create(&cancel_thread, NULL, cancel_main, &cn) == 0;
    if (!cancelling)
        op_cancel_running(ag); /* once, at least */
    if (!run_within(stop_api, srv, SHUTDOWN_GRACE_MS)) {
        /* A call that cancelling cannot end (COMMIT PREPARED waiting on a
         * synchronous standby, a dead connection): leave as a crash would.
         * Prepared branches stay prepared for the coordinator and the next
         * sweep; open ones die with their sessions; 3PC states are on disk. */
        log_warn("shutdown: API calls still in flight after %d ms; exiting now (as after a "
                 "crash: prepared branches stay prepared, open ones roll back with their "
                 "sessions)",
                 SHUTDOWN_GRACE_MS);
        _exit(SHUTDOWN_CUT_EXIT);
    }
    workers wk = {.ag = ag, .idle = &idle, .idle_thread = idle_thread,
                  .resolver_thread = resolver_thread, .cn = cancelling ? &cn : NULL,
                  .cancel_thread = cancel_thread};
    if (!run_within(stop_workers, &wk, SHUTDOWN_GRACE_MS)) {
        log_warn("shutdown: the sweep, a 3PC termination or the idle timeouts still busy after "
                 "%d ms; exiting now (as after a crash)",
                 SHUTDOWN_GRACE_MS);
        _exit(SHUTDOWN_CUT_EXIT);
    }
    threepc_close(ag);
    branch_table_free(ag->table);
    pool_destroy(ag->pool);
    httpc_global_cleanup();
    auth_reset();
    log_info("txagent %s stopped", o.name);
    for (size_t i = 0; i < ag->nprepared_at_start; i++)
        free(ag->prepared_at_start[i]);
    free(ag->prepared_at_start);
    free(ag->coordinator);
    free(ag->data_dir);
    free(ag->peer_routes);
    free(ag);
    free(host);
    opts_free(&o);
    return 0;
}
