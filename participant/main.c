/*
 * main.c - txagent: flags, signals, startup, the janitor tick and shutdown.
 *
 * Invariants:
 *   - Signal handlers only set a volatile sig_atomic_t flag; the main loop
 *     notices it within one tick.
 *   - Periodic housekeeping (idle-branch timeouts, eviction of finished
 *     branches) runs from tick() on the main thread only; the recovery sweep
 *     has its own thread (resolver.c) because it waits on the network.
 *   - Shutdown order: stop the HTTP server (waits for in-flight calls), stop
 *     the sweep, roll back open (unprepared) branches, close connections.
 *     Prepared branches stay prepared: they are the coordinator's to decide.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "api.h"
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

#define TICK_MS 100
#define IDLE_CHECK_EVERY_MS 1000

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static const char *const crash_points[] = {"after-prepare", "after-commit-prepared", NULL};

typedef struct {
    char *listen, *name, *pg, *coordinator, *data_dir, *crash_point, *log_level;
    long long pool_size, resolve_interval_ms, max_body;
} agent_opts;

static void opts_free(agent_opts *o)
{
    free(o->listen);
    free(o->name);
    free(o->pg);
    free(o->coordinator);
    free(o->data_dir);
    free(o->crash_point);
    free(o->log_level);
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

static void tick(agent *ag, int64_t *next_idle_check)
{
    int64_t now = now_ms();
    branch_table_evict(ag->table, now);
    if (now >= *next_idle_check) {
        op_expire_idle(ag, now);
        *next_idle_check = now + IDLE_CHECK_EVERY_MS;
    }
}

int main(int argc, char **argv)
{
    agent_opts o = {0};
    const opt_def defs[] = {
        {"listen", OPT_STRING, NULL, 0, 0, true, "HOST:PORT", "address to serve the agent API on",
         &o.listen},
        {"name", OPT_STRING, NULL, 0, 0, true, "NAME",
         "participant name ([a-z][a-z0-9_-]{0,31}); must match the coordinator's", &o.name},
        {"pg", OPT_STRING, NULL, 0, 0, true, "CONNINFO", "libpq connection string of the database",
         &o.pg},
        {"coordinator", OPT_STRING, NULL, 0, 0, true, "URL",
         "coordinator base URL, asked for outcomes by the recovery sweep", &o.coordinator},
        {"data-dir", OPT_STRING, NULL, 0, 0, false, "DIR", "state directory (created if missing)",
         &o.data_dir},
        {"pool-size", OPT_INT, "64", 1, 10000, false, "N",
         "max PostgreSQL connections (= max concurrently active branches)", &o.pool_size},
        {"resolve-interval-ms", OPT_INT, "5000", 100, 3600000, false, "MS",
         "recovery sweep period", &o.resolve_interval_ms},
        {"max-body", OPT_INT, "1048576", 1024, 1LL << 30, false, "BYTES",
         "largest request body accepted", &o.max_body},
        {"crash-point", OPT_STRING, NULL, 0, 0, false, "NAME[:N]",
         "testing: _exit at a crash point (after-prepare, after-commit-prepared); "
         "env TXAGENT_CRASH_POINT too",
         &o.crash_point},
        {"log-level", OPT_STRING, "info", 0, 0, false, "LEVEL", "debug, info, warn or error",
         &o.log_level},
    };
    const char *summary = "txagent: participant agent of txcoord; runs transaction branches on "
                          "one PostgreSQL database and votes in two-phase commit.";
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
    if (strncmp(o.coordinator, "http://", 7) != 0 && strncmp(o.coordinator, "https://", 8) != 0) {
        fprintf(stderr, "txagent: --coordinator: '%s' is not an http(s) URL\n", o.coordinator);
        free(host);
        opts_free(&o);
        return 2;
    }
    const char *crash = o.crash_point ? o.crash_point : getenv("TXAGENT_CRASH_POINT");
    if (!fault_init(crash, crash_points)) {
        free(host);
        opts_free(&o);
        return 2;
    }
    if (o.data_dir && !mkdir_p(o.data_dir)) {
        free(host);
        opts_free(&o);
        return 1;
    }
    if (!install_signals())
        die("cannot install signal handlers");

    agent *ag = xcalloc(1, sizeof(*ag));
    ag->name = o.name;
    ag->coordinator = xstrdup(o.coordinator);
    for (size_t l = strlen(ag->coordinator); l > 0 && ag->coordinator[l - 1] == '/'; l--)
        ag->coordinator[l - 1] = '\0';
    ag->resolve_interval_ms = o.resolve_interval_ms;
    ag->pool = pool_create(o.pg, o.name, (int)o.pool_size);
    ag->table = branch_table_new(o.name);

    httpc_global_init();
    /* Warm one connection so a bad --pg shows at once (not fatal: PG may come later). */
    PGconn *c;
    if (pool_acquire(ag->pool, 0, &c) == PX_OK)
        pool_release(ag->pool, c, false);
    else
        log_warn("PostgreSQL is not reachable yet; will retry on demand");

    http_server *srv = api_start(ag, host, port, (size_t)o.max_body);
    if (!srv)
        die("cannot serve on %s", o.listen);
    pthread_t resolver_thread;
    if (!resolver_start(ag, &resolver_thread))
        die("cannot start the recovery sweep");
    log_info("txagent %s listening on %s (pool %lld, sweep every %lld ms, coordinator %s)",
             o.name, o.listen, o.pool_size, o.resolve_interval_ms, ag->coordinator);

    int64_t next_idle_check = now_ms() + IDLE_CHECK_EVERY_MS;
    while (!stop_requested) {
        tick(ag, &next_idle_check);
        sleep_ms(TICK_MS, &stop_requested);
    }

    log_info("shutting down: stopping the API");
    http_server_stop(srv);
    resolver_stop(ag, resolver_thread);
    op_rollback_open(ag);
    branch_table_free(ag->table);
    pool_destroy(ag->pool);
    httpc_global_cleanup();
    log_info("txagent %s stopped", o.name);
    for (size_t i = 0; i < ag->nprepared_at_start; i++)
        free(ag->prepared_at_start[i]);
    free(ag->prepared_at_start);
    free(ag->coordinator);
    free(ag);
    free(host);
    opts_free(&o);
    return 0;
}
