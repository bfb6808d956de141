/*
 * lockbench.c - how long a global transaction keeps a hot row locked, and
 * how long a local session waits for it, under 2PC or 3PC.
 *
 * Client threads (--clients, default 1) run global transactions back to back
 * through the coordinator. Each one updates the hot row on participant A
 *   UPDATE accounts SET balance = balance + 1 WHERE id = $HOT
 * and a row of its own on participant B (id --b-id + client number), so the
 * only contention is the hot row. A prober thread holds one direct libpq
 * session on database A and repeatedly runs
 *   BEGIN; SELECT id FROM accounts WHERE id = $HOT FOR UPDATE; COMMIT
 * with a random pause of --probe-pause-ms..--probe-pause-max-ms between
 * probes, timing the SELECT (sent -> row returned): the time a local
 * transaction is blocked by the global one.
 *
 * Forms (--form):
 *   interactive (default): begin; statement on A (the row lock is taken
 *     here); statement on B; commit. This is how applications use a
 *     coordinator (the statement on B may depend on what A returned), and
 *     it is the case the textbook describes: the lock is held while the
 *     other participant works and for the whole commit protocol. Two more
 *     round trips to the agents fall inside the lock than in the one-shot
 *     form.
 *   oneshot: one POST carrying both branches and "commit":true; the agents
 *     run BEGIN + UPDATE + PREPARE in one call, so the lock covers only the
 *     commit protocol itself: the floor of what the protocol costs.
 *
 * Lock hold, per committed transaction: from sending the statement that
 * takes the lock (interactive: the statement on A; oneshot: the POST) to
 * receiving the commit answer. It is an upper bound on the real hold: it
 * adds the trip of the statement to the agent before the lock is taken and
 * the trip of the COMMIT PREPARED acknowledgement back after it is released
 * (one round trip between coordinator and agent in all), plus the HTTP hop
 * client <-> coordinator. Throughput ceiling of the hot row = 1 / mean hold
 * (a lower bound on the true ceiling, since the hold is an upper bound).
 *
 * Windows: warm-up (--warmup-ms), then the measured window (--duration-ms).
 * A transaction counts if it ended inside the window; a probe if it started
 * inside it (a probe blocked past the end is waited for, bounded by
 * --probe-timeout-ms). Percentiles are nearest-rank.
 *
 * Output: a summary on stdout; --csv FILE appends one row (header when the
 * file is new); --timeline FILE writes every event of the run, warm-up
 * included: t_s (seconds since the start), kind (probe: probe start, ms =
 * wait; probe_timeout; commit: statement sent, ms = hold; abort; error), ms.
 *
 * Invariants: workers only append to their own event vectors; the main
 * thread reads them after joining. Every HTTP wait is bounded by
 * --txn-timeout-ms + --http-slack-ms, every probe by --probe-timeout-ms, so a
 * run always ends. SIGINT/SIGTERM stop the loops and cancel a blocked probe.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "auth.h"
#include "bench.h" /* coord_preflight (coord.c) */
#include "config.h"
#include "httpc.h"
#include "log.h"
#include "pg.h"

static const char SQL_UPDATE[] = "UPDATE accounts SET balance = balance + 1 WHERE id = $1";
static const char SQL_PROBE[] = "SELECT id FROM accounts WHERE id = $1 FOR UPDATE";
static const char SQL_UPSERT[] = "INSERT INTO accounts (id, balance) VALUES ($1, 1000000000000) "
                                 "ON CONFLICT (id) DO NOTHING";
static const char SQL_EXISTS[] = "SELECT count(*) FROM accounts WHERE id = $1";

/* ---- options ---- */

static char *o_coordinator, *o_pg_a, *o_pg_b, *o_part_a, *o_part_b, *o_protocol, *o_form;
static char *o_termination, *o_fault, *o_csv, *o_timeline, *o_log_level;
static long long o_hot, o_b_id, o_clients, o_duration_ms, o_warmup_ms, o_pause_ms, o_pause_max_ms;
static long long o_probe_timeout_ms, o_txn_timeout_ms, o_http_slack_ms, o_retry_ms, o_rtt_ms;
static long long o_cancommit_ms, o_precommit_ms, o_uncertain_ms;
static bool o_setup;

static const opt_def options[] = {
    {"coordinator", OPT_STRING, "http://127.0.0.1:7400", 0, 0, false, "URL",
     "coordinator base URL (or unix:PATH, its --listen-unix socket)", &o_coordinator},
    {"pg-a", OPT_STRING, NULL, 0, 0, true, "CONNINFO",
     "database of participant A (the prober's session, --setup)", &o_pg_a},
    {"pg-b", OPT_STRING, NULL, 0, 0, true, "CONNINFO",
     "database of participant B (row check, --setup)", &o_pg_b},
    {"participant-a", OPT_STRING, "pg1", 0, 0, false, "NAME", "coordinator name of A",
     &o_part_a},
    {"participant-b", OPT_STRING, "pg2", 0, 0, false, "NAME", "coordinator name of B",
     &o_part_b},
    {"protocol", OPT_STRING, "2pc", 0, 0, false, "2pc|3pc", "commit protocol", &o_protocol},
    {"form", OPT_STRING, "interactive", 0, 0, false, "interactive|oneshot",
     "interactive: begin, stmt A, stmt B, commit; oneshot: one POST with both branches",
     &o_form},
    {"hot", OPT_INT, "1", 1, 2147483647, false, "ID", "the hot row's id on A", &o_hot},
    {"b-id", OPT_INT, "1000", 1, 2147483000, false, "ID",
     "client i updates row ID+i on B (no contention on B)", &o_b_id},
    {"clients", OPT_INT, "1", 1, 256, false, "N", "client threads running global transactions",
     &o_clients},
    {"duration-ms", OPT_INT, "10000", 100, 86400000, false, "MS", "measured window", &o_duration_ms},
    {"warmup-ms", OPT_INT, "1000", 0, 3600000, false, "MS", "not measured, before the window",
     &o_warmup_ms},
    {"probe-pause-ms", OPT_INT, "1", 0, 60000, false, "MS", "shortest pause between probes",
     &o_pause_ms},
    {"probe-pause-max-ms", OPT_INT, "5", 0, 60000, false, "MS",
     "longest pause between probes (uniform in between)", &o_pause_max_ms},
    {"probe-timeout-ms", OPT_INT, "120000", 100, 3600000, false, "MS",
     "statement_timeout of the probe session", &o_probe_timeout_ms},
    {"txn-timeout-ms", OPT_INT, "10000", 100, 3600000, false, "MS",
     "timeout_ms of each global transaction", &o_txn_timeout_ms},
    {"http-slack-ms", OPT_INT, "15000", 0, 3600000, false, "MS",
     "an HTTP call may take txn-timeout-ms plus this", &o_http_slack_ms},
    {"retry-pause-ms", OPT_INT, "100", 0, 60000, false, "MS",
     "pause after a failed transaction before the next", &o_retry_ms},
    {"cancommit-timeout-ms", OPT_INT, "0", 0, 86400000, false, "MS",
     "3pc: per-transaction cancommit_timeout_ms (0: coordinator default)", &o_cancommit_ms},
    {"precommit-timeout-ms", OPT_INT, "0", 0, 86400000, false, "MS",
     "3pc: per-transaction precommit_timeout_ms (0: coordinator default)", &o_precommit_ms},
    {"uncertain-timeout-ms", OPT_INT, "0", 0, 86400000, false, "MS",
     "3pc: per-transaction uncertain_timeout_ms (0: coordinator default)", &o_uncertain_ms},
    {"termination", OPT_STRING, NULL, 0, 0, false, "protocol|timeout|blocking",
     "3pc: per-transaction termination rule (default: coordinator's)", &o_termination},
    {"setup", OPT_BOOL, NULL, 0, 0, false, NULL,
     "insert the hot row on A and the clients' rows on B when missing", &o_setup},
    {"rtt-ms", OPT_INT, "0", 0, 3600000, false, "MS",
     "label: simulated round trip coordinator <-> agents (for the CSV)", &o_rtt_ms},
    {"fault", OPT_STRING, "none", 0, 0, false, "LABEL", "label: fault injected during the run",
     &o_fault},
    {"csv", OPT_STRING, NULL, 0, 0, false, "FILE", "append the summary row here", &o_csv},
    {"timeline", OPT_STRING, NULL, 0, 0, false, "FILE", "write every probe and transaction here",
     &o_timeline},
    {"log-level", OPT_STRING, "info", 0, 0, false, "LEVEL", "debug, info, warn or error",
     &o_log_level},
};

/* ---- events ---- */

typedef enum { EV_PROBE, EV_PROBE_TIMEOUT, EV_COMMIT, EV_ABORT, EV_ERROR } ev_kind;
static const char *const ev_names[] = {"probe", "probe_timeout", "commit", "abort", "error"};

typedef struct {
    int64_t t_us; /* probe: sent; transaction: lock statement sent; relative to run start */
    int64_t v_us; /* probe: wait; commit: hold; abort/error: time until the failure */
    ev_kind kind;
} event;

typedef struct {
    event *v;
    size_t n, cap;
} event_vec;

static void ev_push(event_vec *e, int64_t t, int64_t v, ev_kind k)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 1024;
        e->v = xrealloc(e->v, e->cap * sizeof(*e->v));
    }
    e->v[e->n++] = (event){t, v, k};
}

/* ---- shared run state ---- */

static volatile sig_atomic_t interrupted;
static int64_t run_start_us, measure_from_us, measure_to_us;
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static char first_error[300];
static PGcancel *probe_cancel; /* under err_mu */

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void note_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void note_error(const char *fmt, ...)
{
    pthread_mutex_lock(&err_mu);
    if (!first_error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(first_error, sizeof(first_error), fmt, ap);
        va_end(ap);
        for (char *p = first_error; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
    }
    pthread_mutex_unlock(&err_mu);
}

static bool running(void) { return !interrupted && now_us() < measure_to_us; }

static void pause_ms(long long ms)
{
    if (ms > 0)
        sleep_ms(ms, NULL);
}

/* ---- HTTP ---- */

/* POST url body; fills call (caller clears). */
static void post(httpc_call *call, const char *url, json_t *body)
{
    memset(call, 0, sizeof(*call));
    call->method = "POST";
    call->url = url;
    call->body = body;
    call->timeout_ms = (long)(o_txn_timeout_ms + o_http_slack_ms);
    (void)httpc_request(call); /* status/error filled either way */
}

/* "HTTP 503 participant_unreachable: ..." or the transport error. */
static void describe(const httpc_call *call, const char *what, char *buf, size_t len)
{
    if (call->status == 0) {
        snprintf(buf, len, "%s: transport: %.200s", what, call->error);
        return;
    }
    json_t *err = json_object_get(call->response, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    const char *reason = json_string_value(json_object_get(call->response, "reason"));
    snprintf(buf, len, "%s: HTTP %ld %s%s%s%s%s", what, call->status, code ? code : "",
             msg ? ": " : "", msg ? msg : "", reason ? " reason: " : "", reason ? reason : "");
}

static bool is_committed(const httpc_call *call)
{
    const char *oc = json_string_value(json_object_get(call->response, "outcome"));
    return call->status == 200 && oc && strcmp(oc, "committed") == 0;
}

/* Add the protocol and its per-transaction settings to a begin body. */
static void add_protocol(json_t *body)
{
    json_object_set_new(body, "protocol", json_string(o_protocol));
    json_object_set_new(body, "timeout_ms", json_integer(o_txn_timeout_ms));
    if (strcmp(o_protocol, "3pc") != 0)
        return;
    if (o_cancommit_ms > 0)
        json_object_set_new(body, "cancommit_timeout_ms", json_integer(o_cancommit_ms));
    if (o_precommit_ms > 0)
        json_object_set_new(body, "precommit_timeout_ms", json_integer(o_precommit_ms));
    if (o_uncertain_ms > 0)
        json_object_set_new(body, "uncertain_timeout_ms", json_integer(o_uncertain_ms));
    if (o_termination)
        json_object_set_new(body, "termination", json_string(o_termination));
}

/* {"participant":p,"sql":UPDATE,"params":[id]}. New reference. */
static json_t *stmt_body(const char *participant, long long id)
{
    return json_pack("{s:s, s:s, s:[I]}", "participant", participant, "sql", SQL_UPDATE, "params",
                     (json_int_t)id);
}

/* ---- client ---- */

typedef struct {
    int no;
    long long b_row;
    event_vec ev;
    pthread_t th;
} client;

/* The statement answered 200 with exactly one row updated. */
static bool stmt_ok(const httpc_call *call)
{
    json_t *rc = json_object_get(call->response, "row_count");
    return call->status == 200 && json_is_integer(rc) && json_integer_value(rc) == 1;
}

/* One interactive transaction. Returns its kind; *t0 = lock statement sent. */
static ev_kind txn_interactive(client *c, int64_t *t0)
{
    char *url_begin = xasprintf("%s/v1/transactions", o_coordinator);
    json_t *body = json_object();
    add_protocol(body);
    httpc_call call;
    post(&call, url_begin, body);
    json_decref(body);
    free(url_begin);
    *t0 = now_us();
    const char *gid = json_string_value(json_object_get(call.response, "gid"));
    if (call.status != 201 || !gid) {
        char why[300];
        describe(&call, "begin", why, sizeof(why));
        note_error("%s", why);
        httpc_call_clear(&call);
        return EV_ERROR;
    }
    char *eg = httpc_escape(gid);
    httpc_call_clear(&call);
    char *url_stmt = xasprintf("%s/v1/transactions/%s/statements", o_coordinator, eg);
    char *url_commit = xasprintf("%s/v1/transactions/%s/commit", o_coordinator, eg);
    char *url_rollback = xasprintf("%s/v1/transactions/%s/rollback", o_coordinator, eg);
    free(eg);

    ev_kind k = EV_ERROR;
    char why[300];
    *t0 = now_us();
    json_t *sa = stmt_body(o_part_a, o_hot);
    post(&call, url_stmt, sa);
    json_decref(sa);
    bool ok = stmt_ok(&call);
    if (!ok)
        describe(&call, "statement on A", why, sizeof(why));
    httpc_call_clear(&call);
    if (ok) {
        json_t *sb = stmt_body(o_part_b, c->b_row);
        post(&call, url_stmt, sb);
        json_decref(sb);
        ok = stmt_ok(&call);
        if (!ok)
            describe(&call, "statement on B", why, sizeof(why));
        httpc_call_clear(&call);
    }
    if (ok) {
        post(&call, url_commit, NULL);
        if (is_committed(&call)) {
            k = EV_COMMIT;
        } else {
            describe(&call, "commit", why, sizeof(why));
            k = call.status == 409 ? EV_ABORT : EV_ERROR;
        }
        httpc_call_clear(&call);
    } else {
        post(&call, url_rollback, NULL); /* best effort; the coordinator's timeout is the net */
        httpc_call_clear(&call);
    }
    if (k != EV_COMMIT)
        note_error("%s", why);
    free(url_stmt);
    free(url_commit);
    free(url_rollback);
    return k;
}

/* One one-shot transaction: both branches and the commit in one POST. */
static ev_kind txn_oneshot(client *c, int64_t *t0)
{
    char *url = xasprintf("%s/v1/transactions", o_coordinator);
    json_t *body = json_object();
    add_protocol(body);
    json_object_set_new(body, "commit", json_true());
    json_object_set_new(
        body, "branches",
        json_pack("[{s:s, s:[{s:s, s:[I]}]}, {s:s, s:[{s:s, s:[I]}]}]", "participant", o_part_a,
                  "statements", "sql", SQL_UPDATE, "params", (json_int_t)o_hot, "participant",
                  o_part_b, "statements", "sql", SQL_UPDATE, "params", (json_int_t)c->b_row));
    httpc_call call;
    *t0 = now_us();
    post(&call, url, body);
    json_decref(body);
    free(url);
    ev_kind k = EV_COMMIT;
    if (!is_committed(&call)) {
        char why[300];
        describe(&call, "one-shot commit", why, sizeof(why));
        note_error("%s", why);
        k = call.status == 409 ? EV_ABORT : EV_ERROR;
    }
    httpc_call_clear(&call);
    return k;
}

static void *client_main(void *arg)
{
    client *c = arg;
    bool oneshot = strcmp(o_form, "oneshot") == 0;
    while (running()) {
        int64_t t0 = 0;
        ev_kind k = oneshot ? txn_oneshot(c, &t0) : txn_interactive(c, &t0);
        int64_t t1 = now_us();
        ev_push(&c->ev, t0 - run_start_us, t1 - t0, k);
        if (k != EV_COMMIT)
            pause_ms(o_retry_ms);
    }
    return NULL;
}

/* ---- prober ---- */

typedef struct {
    event_vec ev;
    uint64_t rng;
    pthread_t th;
} prober;

static PGconn *probe_connect(void)
{
    PGconn *c = pg_connect(o_pg_a, "prober");
    if (!c)
        return NULL;
    char tmo[32];
    snprintf(tmo, sizeof(tmo), "%lld", o_probe_timeout_ms);
    const char *p[] = {tmo};
    pg_res r;
    bool ok = pg_exec(c, "SELECT set_config('statement_timeout', $1, false)", 1, p, &r);
    pg_res_clear(&r);
    if (!ok) {
        log_error("prober: cannot set statement_timeout");
        PQfinish(c);
        return NULL;
    }
    pthread_mutex_lock(&err_mu);
    probe_cancel = PQgetCancel(c);
    pthread_mutex_unlock(&err_mu);
    return c;
}

static void probe_disconnect(PGconn *c)
{
    pthread_mutex_lock(&err_mu);
    if (probe_cancel)
        PQfreeCancel(probe_cancel);
    probe_cancel = NULL;
    pthread_mutex_unlock(&err_mu);
    PQfinish(c);
}

static void *prober_main(void *arg)
{
    prober *pr = arg;
    char hot[32];
    snprintf(hot, sizeof(hot), "%lld", o_hot);
    const char *params[] = {hot};
    PGconn *c = NULL;
    while (running()) {
        if (!c && !(c = probe_connect())) {
            pause_ms(200);
            continue;
        }
        pg_res r;
        bool ok = pg_exec(c, "BEGIN", 0, NULL, &r);
        bool dead = r.conn_dead;
        pg_res_clear(&r);
        if (ok) {
            int64_t t0 = now_us();
            ok = pg_exec(c, SQL_PROBE, 1, params, &r);
            int64_t t1 = now_us();
            dead = r.conn_dead;
            bool timeout = strcmp(r.sqlstate, "57014") == 0; /* query_canceled */
            if (!ok && !timeout)
                note_error("probe: %s %s", r.sqlstate, r.message);
            pg_res_clear(&r);
            if (ok || timeout)
                ev_push(&pr->ev, t0 - run_start_us, t1 - t0, ok ? EV_PROBE : EV_PROBE_TIMEOUT);
            if (!dead) {
                (void)pg_exec(c, ok ? "COMMIT" : "ROLLBACK", 0, NULL, &r);
                dead = r.conn_dead;
                pg_res_clear(&r);
            }
        }
        if (dead) {
            probe_disconnect(c);
            c = NULL;
            continue;
        }
        long long span = o_pause_max_ms > o_pause_ms ? o_pause_max_ms - o_pause_ms : 0;
        pr->rng = pr->rng * 6364136223846793005ULL + 1442695040888963407ULL;
        pause_ms(o_pause_ms + (span ? (long long)((pr->rng >> 33) % (uint64_t)(span + 1)) : 0));
    }
    if (c)
        probe_disconnect(c);
    return NULL;
}

/* ---- setup and checks ---- */

/* Upsert (setup) or check the rows on one database. */
static bool rows_ready(const char *conninfo, const char *what, long long first, long long n)
{
    PGconn *c = pg_connect(conninfo, what);
    if (!c)
        return false;
    bool ok = true;
    for (long long id = first; ok && id < first + n; id++) {
        char s[32];
        snprintf(s, sizeof(s), "%lld", id);
        const char *p[] = {s};
        pg_res r;
        if (o_setup) {
            ok = pg_exec(c, SQL_UPSERT, 1, p, &r);
            if (!ok)
                log_error("%s: cannot insert row %lld: %s", what, id, r.message);
        } else {
            ok = pg_exec(c, SQL_EXISTS, 1, p, &r) && PQntuples(r.res) == 1 &&
                 strcmp(PQgetvalue(r.res, 0, 0), "1") == 0;
            if (!ok)
                log_error("%s: row %lld missing from accounts (run with --setup) %s", what, id,
                          r.message);
        }
        pg_res_clear(&r);
    }
    PQfinish(c);
    return ok;
}

/* ---- statistics ---- */

typedef struct {
    size_t n;
    double p50, p99, max, mean; /* ms */
} dist;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentiles of v[0..n) (microseconds; sorted in place), in ms. */
static dist dist_of(int64_t *v, size_t n)
{
    dist d = {0};
    d.n = n;
    if (n == 0)
        return d;
    qsort(v, n, sizeof(*v), cmp_i64);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)v[i];
    size_t r50 = (size_t)((50.0 * (double)n + 99.0) / 100.0);
    size_t r99 = (size_t)((99.0 * (double)n + 99.0) / 100.0);
    d.p50 = (double)v[(r50 ? r50 : 1) - 1] / 1000.0;
    d.p99 = (double)v[(r99 ? r99 : 1) - 1] / 1000.0;
    d.max = (double)v[n - 1] / 1000.0;
    d.mean = sum / (double)n / 1000.0;
    return d;
}

/* 1-minute load average from /proc/loadavg (-1 if unreadable): the machine is
 * shared, and at small round trips the results follow the CPU left to us. */
static double load1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static bool file_is_empty(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 || st.st_size == 0;
}

static void write_timeline(client *cl, int nc, prober *pr)
{
    FILE *f = fopen(o_timeline, "w");
    if (!f) {
        log_error("--timeline %s: %s", o_timeline, strerror(errno));
        return;
    }
    fprintf(f, "t_s,kind,ms\n");
    for (size_t i = 0; i < pr->ev.n; i++)
        fprintf(f, "%.4f,%s,%.3f\n", (double)pr->ev.v[i].t_us / 1e6,
                ev_names[pr->ev.v[i].kind], (double)pr->ev.v[i].v_us / 1000.0);
    for (int j = 0; j < nc; j++)
        for (size_t i = 0; i < cl[j].ev.n; i++)
            fprintf(f, "%.4f,%s,%.3f\n", (double)cl[j].ev.v[i].t_us / 1e6,
                    ev_names[cl[j].ev.v[i].kind], (double)cl[j].ev.v[i].v_us / 1000.0);
    if (fclose(f) != 0)
        log_error("--timeline %s: %s", o_timeline, strerror(errno));
}

int main(int argc, char **argv)
{
    log_init("lockbench", LOG_INFO);
    if (!opts_parse(options, ARRAY_LEN(options), argc, argv, "lockbench",
                    "hot-row lock hold and blocking under 2PC/3PC (see bench/lockbench.c)"))
        return 2;
    log_level lvl;
    if (!log_level_parse(o_log_level, &lvl)) {
        fprintf(stderr, "lockbench: --log-level: unknown level '%s'\n", o_log_level);
        return 2;
    }
    log_init("lockbench", lvl);
    if (strcmp(o_protocol, "2pc") != 0 && strcmp(o_protocol, "3pc") != 0) {
        fprintf(stderr, "lockbench: --protocol: expected 2pc or 3pc, got '%s'\n", o_protocol);
        return 2;
    }
    if (!coord_url_option("lockbench", &o_coordinator))
        return 2;
    if (strcmp(o_form, "interactive") != 0 && strcmp(o_form, "oneshot") != 0) {
        fprintf(stderr, "lockbench: --form: expected interactive or oneshot, got '%s'\n", o_form);
        return 2;
    }
    if (o_pause_max_ms < o_pause_ms)
        o_pause_max_ms = o_pause_ms;

    if (!auth_load_env()) /* $TXCOORD_TOKEN_FILE: the cluster's token, if it has one */
        return 2;
    httpc_global_init();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!rows_ready(o_pg_a, "A", o_hot, 1) || !rows_ready(o_pg_b, "B", o_b_id, o_clients) ||
        !coord_preflight(&(bench_opts){.coordinator = o_coordinator}))
        return 1;

    int nc = (int)o_clients;
    client *cl = xcalloc((size_t)nc, sizeof(*cl));
    prober pr;
    memset(&pr, 0, sizeof(pr));
    pr.rng = (uint64_t)now_us();
    int64_t start_wall_ms = wall_ms();
    run_start_us = now_us();
    measure_from_us = run_start_us + o_warmup_ms * 1000;
    measure_to_us = measure_from_us + o_duration_ms * 1000;
    if (pthread_create(&pr.th, NULL, prober_main, &pr) != 0)
        die("pthread_create failed");
    for (int i = 0; i < nc; i++) {
        cl[i].no = i;
        cl[i].b_row = o_b_id + i;
        if (pthread_create(&cl[i].th, NULL, client_main, &cl[i]) != 0)
            die("pthread_create failed");
    }
    for (int i = 0; i < nc; i++)
        pthread_join(cl[i].th, NULL);
    if (interrupted) {
        pthread_mutex_lock(&err_mu);
        char eb[128];
        if (probe_cancel)
            (void)PQcancel(probe_cancel, eb, sizeof(eb));
        pthread_mutex_unlock(&err_mu);
    }
    pthread_join(pr.th, NULL);
    double window_s = (double)o_duration_ms / 1000.0;
    if (interrupted) {
        int64_t ran = now_us() - measure_from_us;
        window_s = ran > 0 ? (double)ran / 1e6 : 0.001;
        if (window_s > (double)o_duration_ms / 1000.0)
            window_s = (double)o_duration_ms / 1000.0;
    }

    /* merge */
    size_t cap = 0;
    for (int i = 0; i < nc; i++)
        cap += cl[i].ev.n;
    int64_t *holds = xcalloc(cap + 1, sizeof(int64_t));
    size_t nh = 0;
    uint64_t committed = 0, aborted = 0, errors = 0;
    int64_t from = measure_from_us - run_start_us, to = measure_to_us - run_start_us;
    for (int i = 0; i < nc; i++) {
        for (size_t j = 0; j < cl[i].ev.n; j++) {
            const event *e = &cl[i].ev.v[j];
            int64_t end = e->t_us + e->v_us;
            if (end < from || end >= to)
                continue;
            if (e->kind == EV_COMMIT) {
                committed++;
                holds[nh++] = e->v_us;
            } else if (e->kind == EV_ABORT) {
                aborted++;
            } else {
                errors++;
            }
        }
    }
    int64_t *waits = xcalloc(pr.ev.n + 1, sizeof(int64_t));
    size_t nw = 0, blocked = 0, ptimeouts = 0;
    for (size_t j = 0; j < pr.ev.n; j++) {
        const event *e = &pr.ev.v[j];
        if (e->t_us < from || e->t_us >= to)
            continue;
        waits[nw++] = e->v_us;
        if (e->v_us > 1000)
            blocked++;
        if (e->kind == EV_PROBE_TIMEOUT)
            ptimeouts++;
    }
    dist h = dist_of(holds, nh), w = dist_of(waits, nw);
    double tps = (double)committed / window_s;
    double ceiling = h.mean > 0 ? 1000.0 / h.mean : 0;
    double blocked_pct = nw ? 100.0 * (double)blocked / (double)nw : 0;

    printf("lockbench: protocol %s, form %s, rtt %lld ms, fault %s, %d client%s, window %.1f s%s\n",
           o_protocol, o_form, o_rtt_ms, o_fault, nc, nc == 1 ? "" : "s", window_s,
           interrupted ? " (interrupted)" : "");
    printf("  transactions  committed %llu (%.1f tx/s), aborted %llu, errors %llu\n",
           (unsigned long long)committed, tps, (unsigned long long)aborted,
           (unsigned long long)errors);
    printf("  lock hold     p50 %.1f ms  p99 %.1f ms  max %.1f ms  mean %.1f ms  (upper bound: "
           "lock statement sent -> commit answer)\n",
           h.p50, h.p99, h.max, h.mean);
    printf("  ceiling       %.1f tx/s on the hot row (1 / mean hold)\n", ceiling);
    printf("  probe wait    p50 %.2f ms  p99 %.1f ms  max %.1f ms  mean %.1f ms  (%zu probes, "
           "%.0f%% blocked > 1 ms, %zu timed out)\n",
           w.p50, w.p99, w.max, w.mean, nw, blocked_pct, ptimeouts);
    double load = load1();
    printf("  machine       1-minute load average %.2f at the end\n", load);
    if (first_error[0])
        printf("  first failure %s\n", first_error);
    fflush(stdout);

    if (o_csv) {
        bool header = file_is_empty(o_csv);
        FILE *f = fopen(o_csv, "a");
        if (!f) {
            log_error("--csv %s: %s", o_csv, strerror(errno));
        } else {
            if (header)
                fprintf(f, "protocol,form,rtt_ms,fault,clients,window_s,committed,aborted,errors,"
                           "tps,hold_p50_ms,hold_p99_ms,hold_max_ms,hold_mean_ms,ceiling_tps,"
                           "probes,probe_p50_ms,probe_p99_ms,probe_max_ms,probe_mean_ms,"
                           "probe_blocked_pct,probe_timeouts,load1,start_wall_ms\n");
            fprintf(f,
                    "%s,%s,%lld,%s,%d,%.2f,%llu,%llu,%llu,%.2f,%.3f,%.3f,%.3f,%.3f,%.2f,%zu,"
                    "%.3f,%.3f,%.3f,%.3f,%.1f,%zu,%.2f,%lld\n",
                    o_protocol, o_form, o_rtt_ms, o_fault, nc, window_s,
                    (unsigned long long)committed, (unsigned long long)aborted,
                    (unsigned long long)errors, tps, h.p50, h.p99, h.max, h.mean, ceiling, nw,
                    w.p50, w.p99, w.max, w.mean, blocked_pct, ptimeouts, load,
                    (long long)start_wall_ms);
            if (fclose(f) != 0)
                log_error("--csv %s: %s", o_csv, strerror(errno));
        }
    }
    if (o_timeline)
        write_timeline(cl, nc, &pr);

    for (int i = 0; i < nc; i++)
        free(cl[i].ev.v);
    free(cl);
    free(pr.ev.v);
    free(holds);
    free(waits);
    httpc_global_cleanup();
    return interrupted ? 130 : 0;
}
