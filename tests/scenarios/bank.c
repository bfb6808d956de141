/*
 * bank.c - txbank: the bank workload and its checker for the scenario tests.
 *
 *   txbank setup --accounts N [--balance B] --pg C1 --pg C2 --pg C3
 *   txbank run   --coordinator URL --clients C --duration S --journal FILE --pg C1 --pg C2 --pg C3
 *                [--protocol 2pc|3pc] [--fault-cmd CMD --fault-interval-ms MS] [--until-faults N] ...
 *   txbank check --coordinator URL --journal FILE --wait-s S --pg C1 --pg C2 --pg C3
 *
 * Layout: database i (0..2, the i-th --pg, participant "pg<i+1>") holds the
 * accounts a with a % 3 == i. A transfer moves a small amount between two
 * accounts in different databases, through the coordinator's REST API, and
 * writes a marker row (transfers.id = the transfer's marker) in both.
 *
 * Every transfer uses --protocol (2pc by default; 3pc: the coordinator's 3PC
 * timeouts and termination rule apply). Two forms, chosen at random per transfer:
 *   interactive: POST /v1/transactions -> gid; per database in ascending
 *     order (so interactive transfers cannot deadlock each other) the
 *     statements SET LOCAL lock_timeout, debit-with-guard or credit, marker;
 *     a guarded debit touching 0 rows -> rollback; then commit. Marker = gid.
 *   one-shot: one POST with "commit":true and both branches; the debit has
 *     no guard (the CHECK balance >= 0 makes an overdraft a failing branch,
 *     so the transaction aborts as a whole). The gid is only known from the
 *     answer, so the marker is a client id "b<run>-<client>-<seq>".
 *   Both set lock_timeout: one-shot branches run in parallel and could
 *   otherwise wait on each other across databases forever.
 *
 * Journal (text, one record per line, appended and flushed as it happens):
 *   H <wall_ms> <accounts> <total>     run start, after pg_prepared_xacts was empty
 *   A <id> <balance>                   balances at run start (the check uses the first run's)
 *   T <marker> <I|O> <from> <to> <amount>   written before the transfer can commit
 *   R <marker> <C|A|U> <gid|-> <commit_sent 0|1> <reason>   acknowledged outcome
 *   F <faults> <fault_cmd_failures>    at the end of a run
 * A T without an R (run killed) is an unknown outcome.
 *
 * Outcomes: C = the API answered committed (commit, or GET after a lost commit
 * answer); A = the API answered aborted (409 outcome aborted, rollback 200);
 * U = the answer was lost (transport error, 5xx, unexpected status).
 *
 * Check invariants (each a violation kind):
 *   prepared_left        some 'txc:%' row still in pg_prepared_xacts after --wait-s
 *   total_balance        the sum of all balances differs from the run start's
 *   balance_mismatch     an account differs from start + committed credits - debits
 *   negative_balance     a balance < 0
 *   partial              a marker in one of its two databases only
 *   committed_missing    acknowledged committed, marker absent
 *   aborted_present      acknowledged aborted, marker present
 *   uncommitted_present  commit never sent, marker present
 *   coordinator_mismatch the coordinator's outcome (GET /v1/outcomes; every unknown
 *                        and a sample of the acknowledged) contradicts the rows or the ack
 *   unjournaled_marker   a marker row the journal does not know
 *
 * Every loop is bounded: clients stop at the deadline, each request has a
 * timeout, waits have limits. Exit: 0 ok, 1 violations / failed run, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "auth.h"
#include "httpc.h"
#include "log.h"
#include "pg.h"
#include "util.h"

#define NDB 3
#define MARKER_MAX 80
#define LOCK_TIMEOUT_SQL "SET LOCAL lock_timeout = '2s'"

static const char SQL_DEBIT_GUARDED[] =
    "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1";
static const char SQL_DEBIT[] = "UPDATE accounts SET balance = balance - $1 WHERE id = $2";
static const char SQL_CREDIT[] = "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
static const char SQL_MARKER[] = "INSERT INTO transfers(id, amount) VALUES ($1, $2)";

/* ---- options ---------------------------------------------------------------- */

typedef struct {
    const char *pg[NDB];
    int npg;
    const char *coordinator;
    const char *journal;
    const char *fault_cmd;
    const char *protocol; /* "2pc" or "3pc" */
    long accounts;
    long balance;
    long clients;
    long duration_s;
    long fault_interval_ms;
    long until_faults;
    long wait_s;
    long request_timeout_ms;
    long txn_timeout_ms;
    long max_amount;
    long oneshot_pct;
    uint64_t seed;
} opts;

static atomic_int g_stop; /* set by SIGINT/SIGTERM or the main thread */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage:\n"
            "  txbank setup --accounts N [--balance B] --pg CONNINFO --pg CONNINFO --pg CONNINFO\n"
            "  txbank run --coordinator URL --journal FILE --pg C1 --pg C2 --pg C3\n"
            "             [--clients C] [--duration S] [--fault-cmd CMD --fault-interval-ms MS]\n"
            "             [--until-faults N] [--request-timeout-ms MS] [--txn-timeout-ms MS]\n"
            "             [--max-amount A] [--oneshot-percent P] [--seed N] [--protocol 2pc|3pc]\n"
            "  txbank check --coordinator URL --journal FILE --pg C1 --pg C2 --pg C3 [--wait-s S]\n"
            "\n"
            "Account a lives in database a %% 3 (the (a%%3+1)-th --pg, participant pg<a%%3+1>).\n"
            "run: C clients transfer between accounts of different databases for S seconds\n"
            "(or until N faults were injected, whichever first), half interactive, half one-shot;\n"
            "CMD runs every MS ms from its own thread; it may print 'faults=N' (else 1 counts).\n"
            "check: waits up to S s for pg_prepared_xacts to hold no 'txc:%%' row, then checks\n"
            "balances and marker rows against the journal. Exit 1 on any violation.\n");
}

static bool parse_long(const char *name, const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || end == s || v < min || v > max) {
        fprintf(stderr, "txbank: %s must be an integer in %ld..%ld (got '%s')\n", name, min, max,
                s);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_opts(int argc, char **argv, opts *o)
{
    enum {
        O_PG = 1000, O_COORD, O_JOURNAL, O_FAULT_CMD, O_ACCOUNTS, O_BALANCE, O_CLIENTS,
        O_DURATION, O_FAULT_INT, O_UNTIL_FAULTS, O_WAIT, O_REQ_TIMEOUT, O_TXN_TIMEOUT,
        O_MAX_AMOUNT, O_ONESHOT, O_SEED, O_PROTOCOL, O_HELP,
    };
    static const struct option longopts[] = {
        {"pg", required_argument, NULL, O_PG},
        {"coordinator", required_argument, NULL, O_COORD},
        {"journal", required_argument, NULL, O_JOURNAL},
        {"fault-cmd", required_argument, NULL, O_FAULT_CMD},
        {"accounts", required_argument, NULL, O_ACCOUNTS},
        {"balance", required_argument, NULL, O_BALANCE},
        {"clients", required_argument, NULL, O_CLIENTS},
        {"duration", required_argument, NULL, O_DURATION},
        {"fault-interval-ms", required_argument, NULL, O_FAULT_INT},
        {"until-faults", required_argument, NULL, O_UNTIL_FAULTS},
        {"wait-s", required_argument, NULL, O_WAIT},
        {"request-timeout-ms", required_argument, NULL, O_REQ_TIMEOUT},
        {"txn-timeout-ms", required_argument, NULL, O_TXN_TIMEOUT},
        {"max-amount", required_argument, NULL, O_MAX_AMOUNT},
        {"oneshot-percent", required_argument, NULL, O_ONESHOT},
        {"seed", required_argument, NULL, O_SEED},
        {"protocol", required_argument, NULL, O_PROTOCOL},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->accounts = 60;
    o->balance = 1000;
    o->clients = 8;
    o->duration_s = 20;
    o->fault_interval_ms = 2000;
    o->wait_s = 60;
    o->request_timeout_ms = 10000;
    o->txn_timeout_ms = 10000;
    o->max_amount = 10;
    o->oneshot_pct = 50;
    o->protocol = "2pc";
    o->seed = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32);

    optind = 2; /* argv[1] is the command */
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_PG:
            if (o->npg >= NDB) {
                fprintf(stderr, "txbank: exactly %d --pg options are needed\n", NDB);
                return false;
            }
            o->pg[o->npg++] = optarg;
            break;
        case O_COORD: o->coordinator = optarg; break;
        case O_JOURNAL: o->journal = optarg; break;
        case O_FAULT_CMD: o->fault_cmd = optarg; break;
        case O_ACCOUNTS:
            if (!parse_long("--accounts", optarg, NDB * 2, 1000000, &o->accounts)) return false;
            break;
        case O_BALANCE:
            if (!parse_long("--balance", optarg, 0, 1000000000, &o->balance)) return false;
            break;
        case O_CLIENTS:
            if (!parse_long("--clients", optarg, 1, 1024, &o->clients)) return false;
            break;
        case O_DURATION:
            if (!parse_long("--duration", optarg, 1, 7 * 24 * 3600, &o->duration_s)) return false;
            break;
        case O_FAULT_INT:
            if (!parse_long("--fault-interval-ms", optarg, 10, 3600000, &o->fault_interval_ms))
                return false;
            break;
        case O_UNTIL_FAULTS:
            if (!parse_long("--until-faults", optarg, 0, 100000000, &o->until_faults)) return false;
            break;
        case O_WAIT:
            if (!parse_long("--wait-s", optarg, 0, 24 * 3600, &o->wait_s)) return false;
            break;
        case O_REQ_TIMEOUT:
            if (!parse_long("--request-timeout-ms", optarg, 100, 600000, &o->request_timeout_ms))
                return false;
            break;
        case O_TXN_TIMEOUT:
            if (!parse_long("--txn-timeout-ms", optarg, 100, 3600000, &o->txn_timeout_ms))
                return false;
            break;
        case O_MAX_AMOUNT:
            if (!parse_long("--max-amount", optarg, 1, 1000000, &o->max_amount)) return false;
            break;
        case O_ONESHOT:
            if (!parse_long("--oneshot-percent", optarg, 0, 100, &o->oneshot_pct)) return false;
            break;
        case O_SEED:
            if (!parse_long("--seed", optarg, 0, __LONG_MAX__, &v)) return false;
            o->seed = (uint64_t)v;
            break;
        case O_PROTOCOL:
            if (strcmp(optarg, "2pc") != 0 && strcmp(optarg, "3pc") != 0) {
                fprintf(stderr, "txbank: --protocol must be 2pc or 3pc (got '%s')\n", optarg);
                return false;
            }
            o->protocol = optarg;
            break;
        case O_HELP: usage(stdout); exit(0);
        default: return false;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "txbank: unexpected argument '%s'\n", argv[optind]);
        return false;
    }
    if (o->npg != NDB) {
        fprintf(stderr, "txbank: exactly %d --pg options are needed (got %d)\n", NDB, o->npg);
        return false;
    }
    return true;
}

static bool need(const char *what, const void *v)
{
    if (!v)
        fprintf(stderr, "txbank: %s is required for this command\n", what);
    return v != NULL;
}

/* ---- small helpers --------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static long rng_range(uint64_t *s, long n) /* 0..n-1 */
{
    return (long)(rng_next(s) % (uint64_t)n);
}

static int db_of(long account)
{
    return (int)(account % NDB);
}

/* Connect to database i, retrying until deadline_ms (monotonic). NULL on failure. */
static PGconn *db_connect(const opts *o, int i, int64_t deadline_ms)
{
    char name[16];
    snprintf(name, sizeof(name), "pg%d", i + 1);
    for (int attempt = 0;; attempt++) {
        PGconn *c = pg_connect(o->pg[i], name);
        if (c)
            return c;
        if (now_ms() >= deadline_ms || g_stop)
            return NULL;
        sleep_ms(500, &g_stop);
    }
}

/* Run sql (no params) and expect success; logs the failure. */
static bool db_exec(PGconn *c, int i, const char *sql, pg_res *r)
{
    if (pg_exec(c, sql, 0, NULL, r))
        return true;
    log_error("pg%d: %s: %s%s%s", i + 1, sql, r->message, r->sqlstate[0] ? " SQLSTATE " : "",
              r->sqlstate);
    return false;
}

/* Count of our prepared branches in database i's cluster (-1 on error); when
 * list is non-NULL, appends up to a few gids to it. */
static long prepared_count(PGconn *c, int i, char *list, size_t listlen)
{
    pg_res r;
    if (!db_exec(c, i,
                 "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'txc:%' ORDER BY gid", &r)) {
        pg_res_clear(&r);
        return -1;
    }
    long n = PQntuples(r.res);
    if (list) {
        size_t len = strlen(list);
        for (long k = 0; k < n && k < 5; k++) {
            int w = snprintf(list + len, listlen - len, "%s%s", len ? " " : "",
                             PQgetvalue(r.res, (int)k, 0));
            if (w < 0 || (size_t)w >= listlen - len)
                break;
            len += (size_t)w;
        }
    }
    pg_res_clear(&r);
    return n;
}

/* ---- setup -------------------------------------------------------------------------- */

static int cmd_setup(const opts *o)
{
    int64_t deadline = now_ms() + 30000;
    long total = 0;
    for (int i = 0; i < NDB; i++) {
        PGconn *c = db_connect(o, i, deadline);
        if (!c)
            return 1;
        char prep[512] = "";
        long np = prepared_count(c, i, prep, sizeof(prep));
        if (np != 0) {
            if (np > 0)
                log_error("pg%d: %ld prepared branches are still there (%s): resolve them first",
                          i + 1, np, prep);
            PQfinish(c);
            return 1;
        }
        char n_s[32], bal_s[32], db_s[16];
        snprintf(n_s, sizeof(n_s), "%ld", o->accounts);
        snprintf(bal_s, sizeof(bal_s), "%ld", o->balance);
        snprintf(db_s, sizeof(db_s), "%d", i);
        const char *params[] = {n_s, bal_s, db_s};
        pg_res r;
        bool ok = db_exec(c, i, "BEGIN", &r);
        pg_res_clear(&r);
        ok = ok && db_exec(c, i, "SET LOCAL lock_timeout = '10s'", &r);
        pg_res_clear(&r);
        ok = ok && db_exec(c, i, "TRUNCATE transfers", &r);
        pg_res_clear(&r);
        ok = ok && db_exec(c, i, "DELETE FROM accounts", &r);
        pg_res_clear(&r);
        if (ok) {
            ok = pg_exec(c,
                         "INSERT INTO accounts(id, balance) SELECT a, $2::bigint "
                         "FROM generate_series(1, $1::int) a WHERE a % 3 = $3::int",
                         3, params, &r);
            if (!ok)
                log_error("pg%d: inserting accounts: %s", i + 1, r.message);
            else
                total += strtol(PQcmdTuples(r.res), NULL, 10) * o->balance;
            pg_res_clear(&r);
        }
        ok = ok && db_exec(c, i, "COMMIT", &r);
        pg_res_clear(&r);
        PQfinish(c);
        if (!ok)
            return 1;
    }
    printf("txbank setup: %ld accounts over %d databases, balance %ld each, total %ld; "
           "transfers truncated\n",
           o->accounts, NDB, o->balance, total);
    return 0;
}

/* ---- run ---------------------------------------------------------------------------- */

typedef enum { OUT_COMMITTED = 'C', OUT_ABORTED = 'A', OUT_UNKNOWN = 'U' } outcome;

typedef struct {
    long *ids[NDB];       /* account ids per database, owned */
    long long *bal[NDB];  /* their balances when loaded, owned */
    long nids[NDB];
} accounts_t;

typedef struct {
    const opts *o;
    const accounts_t *acc;
    FILE *journal;
    pthread_mutex_t mu; /* journal, counters below */
    char run_id[24];
    int64_t deadline_ms;
    /* counters */
    long attempted, committed, aborted, unknown, begin_failed;
    long interactive, oneshot;
    long abort_insufficient, abort_conflict, abort_other;
    long unknown_resolved_by_get, unknown_no_commit;
    long faults, fault_failures, fault_runs;
    long logged_unexpected;
} run_state;

typedef struct {
    run_state *rs;
    int no;
    uint64_t rng;
    long seq;
    char *base_url; /* coordinator + "/v1/transactions", owned */
} client_t;

static void journal_printf(run_state *rs, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void journal_printf(run_state *rs, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&rs->mu);
    va_start(ap, fmt);
    vfprintf(rs->journal, fmt, ap);
    va_end(ap);
    fflush(rs->journal);
    pthread_mutex_unlock(&rs->mu);
}

/* One HTTP call; the response is owned by call (httpc_call_clear). */
static void api_call(client_t *cl, httpc_call *call, const char *method, const char *url,
                     json_t *body)
{
    memset(call, 0, sizeof(*call));
    call->method = method;
    call->url = url;
    call->body = body;
    call->timeout_ms = cl->rs->o->request_timeout_ms;
    (void)httpc_request(call); /* status/error are filled either way */
}

static const char *resp_str(const httpc_call *call, const char *key)
{
    return call->response ? json_string_value(json_object_get(call->response, key)) : NULL;
}

static const char *resp_error_code(const httpc_call *call)
{
    json_t *err = call->response ? json_object_get(call->response, "error") : NULL;
    return err ? json_string_value(json_object_get(err, "code")) : NULL;
}

/* Log the first few unexpected answers (they are what explains a run). */
static void note_unexpected(client_t *cl, const char *what, const char *gid, const httpc_call *call)
{
    run_state *rs = cl->rs;
    pthread_mutex_lock(&rs->mu);
    bool log_it = rs->logged_unexpected++ < 20;
    pthread_mutex_unlock(&rs->mu);
    if (!log_it)
        return;
    if (call->status == 0) {
        txlog_warn(gid, NULL, "client %d: %s: transport error: %s", cl->no, what, call->error);
    } else {
        char *body = call->response ? json_dumps(call->response, JSON_COMPACT) : NULL;
        txlog_warn(gid, NULL, "client %d: %s: HTTP %ld %s", cl->no, what, call->status,
                   body ? body : "(no JSON body)");
        free(body);
    }
}

/* One GET with a 3 s timeout; the response is owned by call (httpc_call_clear). */
static void http_get(httpc_call *call, const char *url)
{
    memset(call, 0, sizeof(*call));
    call->method = "GET";
    call->url = url;
    call->timeout_ms = 3000;
    (void)httpc_request(call); /* status/error are filled either way */
}

/* Ask GET /v1/transactions/{gid} up to attempts times (again only while it
 * is unreachable or still deciding); C or A if the coordinator says so, U
 * otherwise. */
static outcome ask_outcome(const opts *o, const char *gid, int attempts)
{
    char *url = xasprintf("%s/v1/transactions/%s", o->coordinator, gid);
    outcome res = OUT_UNKNOWN;
    for (int attempt = 0; attempt < attempts; attempt++) {
        httpc_call call;
        http_get(&call, url);
        const char *oc = resp_str(&call, "outcome");
        const char *st = resp_str(&call, "state");
        bool retry = call.status == 0 || call.status >= 500;
        if (call.status == 200) {
            if ((oc && strcmp(oc, "committed") == 0) ||
                (st && (strcmp(st, "committed") == 0 || strcmp(st, "committing") == 0)))
                res = OUT_COMMITTED;
            else if ((oc && strcmp(oc, "aborted") == 0) ||
                     (st && (strcmp(st, "aborted") == 0 || strcmp(st, "aborting") == 0)))
                res = OUT_ABORTED;
            else
                retry = true; /* active / preparing: still deciding */
        }
        httpc_call_clear(&call);
        if (!retry || res != OUT_UNKNOWN || attempt + 1 == attempts)
            break;
        sleep_ms(300, NULL);
    }
    free(url);
    return res;
}

/* GET /v1/outcomes/{gid} once: the coordinator's durable decision. C, A, or
 * U (in_flight, no answer, unexpected). */
static outcome ask_decision(const opts *o, const char *gid)
{
    char *url = xasprintf("%s/v1/outcomes/%s", o->coordinator, gid);
    httpc_call call;
    http_get(&call, url);
    const char *oc = resp_str(&call, "outcome");
    outcome res = OUT_UNKNOWN;
    if (call.status == 200 && oc && strcmp(oc, "committed") == 0)
        res = OUT_COMMITTED;
    else if (call.status == 200 && oc && strcmp(oc, "aborted") == 0)
        res = OUT_ABORTED;
    httpc_call_clear(&call);
    free(url);
    return res;
}

/* Commit / one-shot answer -> outcome; sets *reason (static string). */
static outcome outcome_of_commit(const httpc_call *call, const char **reason)
{
    const char *oc = resp_str(call, "outcome");
    if (call->status == 200 && oc && strcmp(oc, "committed") == 0) {
        *reason = "ok";
        return OUT_COMMITTED;
    }
    if (call->status >= 400 && call->status < 500 && oc && strcmp(oc, "aborted") == 0) {
        /* the failing branch's SQLSTATE says why: overdraft, lock timeout, deadlock */
        char *txt = json_dumps(call->response, JSON_COMPACT);
        if (txt && strstr(txt, "23514"))
            *reason = "insufficient";
        else if (txt && (strstr(txt, "55P03") || strstr(txt, "40P01") || strstr(txt, "40001")))
            *reason = "conflict";
        else
            *reason = "aborted";
        free(txt);
        return OUT_ABORTED;
    }
    *reason = call->status == 0 ? "transport" : call->status >= 500 ? "5xx" : "unexpected";
    return OUT_UNKNOWN;
}

/* A commit answered 409 wrong_state: a 3PC transaction with no PreCommit
 * answered, which the coordinator is still settling with the agents
 * (threepc.c step 6b). Not an outcome: ask for it. */
static bool commit_deciding(const httpc_call *call)
{
    const json_t *err = call->response ? json_object_get(call->response, "error") : NULL;
    const char *code = err ? json_string_value(json_object_get(err, "code")) : NULL;
    return call->status == 409 && code && strcmp(code, "wrong_state") == 0;
}

static json_t *stmt_new(const char *sql, json_t *params /* stolen */)
{
    return json_pack("{s:s, s:o}", "sql", sql, "params", params);
}

static void record(client_t *cl, const char *marker, const char *gid, outcome oc, bool commit_sent,
                   const char *reason)
{
    run_state *rs = cl->rs;
    journal_printf(rs, "R %s %c %s %d %s\n", marker, (char)oc, gid && *gid ? gid : "-",
                   commit_sent ? 1 : 0, reason);
    pthread_mutex_lock(&rs->mu);
    switch (oc) {
    case OUT_COMMITTED: rs->committed++; break;
    case OUT_ABORTED:
        rs->aborted++;
        if (strcmp(reason, "insufficient") == 0)
            rs->abort_insufficient++;
        else if (strcmp(reason, "conflict") == 0)
            rs->abort_conflict++;
        else
            rs->abort_other++;
        break;
    case OUT_UNKNOWN:
        rs->unknown++;
        if (!commit_sent)
            rs->unknown_no_commit++;
        break;
    }
    pthread_mutex_unlock(&rs->mu);
}

/* Rollback an interactive transfer that will not be committed. */
static outcome rollback(client_t *cl, const char *gid)
{
    char *url = xasprintf("%s/%s/rollback", cl->base_url, gid);
    httpc_call call;
    api_call(cl, &call, "POST", url, NULL);
    const char *oc = resp_str(&call, "outcome");
    outcome res = OUT_UNKNOWN;
    if ((call.status == 200 || call.status == 409) && oc && strcmp(oc, "aborted") == 0)
        res = OUT_ABORTED;
    else if (call.status == 409 && oc && strcmp(oc, "committed") == 0)
        /* must never happen: commit was not sent. Left unknown with
         * commit_sent 0, so the check flags it if its rows exist. */
        txlog_error(gid, NULL, "client %d: rollback answered committed, commit was never sent",
                    cl->no);
    else
        note_unexpected(cl, "rollback", gid, &call);
    httpc_call_clear(&call);
    free(url);
    return res;
}

static void transfer_interactive(client_t *cl, long from, long to, long amount)
{
    run_state *rs = cl->rs;
    const opts *o = rs->o;
    httpc_call call;

    json_t *body = json_pack("{s:s, s:I}", "protocol", o->protocol, "timeout_ms",
                             (json_int_t)o->txn_timeout_ms);
    api_call(cl, &call, "POST", cl->base_url, body);
    json_decref(body);
    const char *g = resp_str(&call, "gid");
    if (call.status != 201 || !g || strlen(g) >= MARKER_MAX) {
        note_unexpected(cl, "begin", NULL, &call);
        httpc_call_clear(&call);
        pthread_mutex_lock(&rs->mu);
        rs->begin_failed++;
        pthread_mutex_unlock(&rs->mu);
        sleep_ms(100 + rng_range(&cl->rng, 100), &g_stop);
        return;
    }
    char gid[MARKER_MAX];
    snprintf(gid, sizeof(gid), "%s", g);
    httpc_call_clear(&call);

    journal_printf(rs, "T %s I %ld %ld %ld\n", gid, from, to, amount);
    pthread_mutex_lock(&rs->mu);
    rs->attempted++;
    rs->interactive++;
    pthread_mutex_unlock(&rs->mu);

    char *stmt_url = xasprintf("%s/%s/statements", cl->base_url, gid);
    int first = db_of(from) < db_of(to) ? 0 : 1;
    const char *fail_reason = NULL;
    for (int k = 0; k < 2 && !fail_reason; k++) {
        bool debit = (k == 0) == (first == 0);
        long acct = debit ? from : to;
        char participant[16];
        snprintf(participant, sizeof(participant), "pg%d", db_of(acct) + 1);
        for (int s = 0; s < 3 && !fail_reason; s++) {
            json_t *req;
            if (s == 0)
                req = json_pack("{s:s, s:s, s:[]}", "participant", participant, "sql",
                                LOCK_TIMEOUT_SQL, "params");
            else if (s == 1)
                req = json_pack("{s:s, s:s, s:[I, I]}", "participant", participant, "sql",
                                debit ? SQL_DEBIT_GUARDED : SQL_CREDIT, "params",
                                (json_int_t)amount, (json_int_t)acct);
            else
                req = json_pack("{s:s, s:s, s:[s, I]}", "participant", participant, "sql",
                                SQL_MARKER, "params", gid, (json_int_t)amount);
            /* numbered: httpc (libcurl) re-sends a call whose reused
             * connection died before the answer; txcoord runs a number once */
            json_object_set_new(req, "seq", json_integer(k * 3 + s + 1));
            api_call(cl, &call, "POST", stmt_url, req);
            json_decref(req);
            if (call.status == 200) {
                json_t *rc = call.response ? json_object_get(call.response, "row_count") : NULL;
                if (s == 1 && debit && json_is_integer(rc) && json_integer_value(rc) == 0)
                    fail_reason = "insufficient";
                else if (s == 1 && !json_is_integer(rc)) {
                    note_unexpected(cl, "statement without row_count", gid, &call);
                    fail_reason = "unexpected";
                }
            } else {
                const char *code = resp_error_code(&call);
                const char *st = call.response
                                     ? json_string_value(json_object_get(
                                           json_object_get(call.response, "error"), "sqlstate"))
                                     : NULL;
                if (st && (strcmp(st, "55P03") == 0 || strcmp(st, "40P01") == 0 ||
                           strcmp(st, "40001") == 0))
                    fail_reason = "conflict";
                else if (code && strcmp(code, "duplicate_statement") == 0) {
                    fail_reason = "statement_lost"; /* ran once; its answer was lost */
                } else {
                    if (call.status != 503 && call.status != 0)
                        note_unexpected(cl, "statement", gid, &call);
                    fail_reason = code ? "statement_failed" : "statement_lost";
                }
            }
            httpc_call_clear(&call);
        }
    }
    free(stmt_url);

    if (fail_reason) {
        outcome oc = rollback(cl, gid);
        record(cl, gid, gid, oc, false, oc == OUT_UNKNOWN ? "rollback_lost" : fail_reason);
        return;
    }

    char *commit_url = xasprintf("%s/%s/commit", cl->base_url, gid);
    api_call(cl, &call, "POST", commit_url, NULL);
    free(commit_url);
    const char *reason;
    outcome oc = outcome_of_commit(&call, &reason);
    bool deciding = commit_deciding(&call);
    bool lost = call.status == 0 || call.status >= 500 || deciding;
    if (oc == OUT_UNKNOWN && !deciding)
        note_unexpected(cl, "commit", gid, &call);
    httpc_call_clear(&call);
    if (oc == OUT_UNKNOWN && lost) {
        oc = ask_outcome(o, gid, deciding ? 100 : 10);
        if (oc != OUT_UNKNOWN) {
            reason = "get_after_lost_commit";
            pthread_mutex_lock(&rs->mu);
            rs->unknown_resolved_by_get++;
            pthread_mutex_unlock(&rs->mu);
        }
    }
    record(cl, gid, gid, oc, true, reason);
}

static void transfer_oneshot(client_t *cl, long from, long to, long amount)
{
    run_state *rs = cl->rs;
    const opts *o = rs->o;
    char marker[MARKER_MAX];
    snprintf(marker, sizeof(marker), "b%s-%d-%ld", rs->run_id, cl->no, ++cl->seq);
    char pa[16], pb[16];
    snprintf(pa, sizeof(pa), "pg%d", db_of(from) + 1);
    snprintf(pb, sizeof(pb), "pg%d", db_of(to) + 1);

    json_t *ba = json_pack("{s:s, s:[o, o, o]}", "participant", pa, "statements",
                           stmt_new(LOCK_TIMEOUT_SQL, json_array()),
                           stmt_new(SQL_DEBIT, json_pack("[I, I]", (json_int_t)amount,
                                                         (json_int_t)from)),
                           stmt_new(SQL_MARKER, json_pack("[s, I]", marker, (json_int_t)amount)));
    json_t *bb = json_pack("{s:s, s:[o, o, o]}", "participant", pb, "statements",
                           stmt_new(LOCK_TIMEOUT_SQL, json_array()),
                           stmt_new(SQL_CREDIT, json_pack("[I, I]", (json_int_t)amount,
                                                          (json_int_t)to)),
                           stmt_new(SQL_MARKER, json_pack("[s, I]", marker, (json_int_t)amount)));
    json_t *body = json_pack("{s:s, s:I, s:b, s:[o, o]}", "protocol", o->protocol, "timeout_ms",
                             (json_int_t)o->txn_timeout_ms, "commit", 1, "branches", ba, bb);
    if (!body)
        die("cannot build the one-shot request body");

    journal_printf(rs, "T %s O %ld %ld %ld\n", marker, from, to, amount);
    pthread_mutex_lock(&rs->mu);
    rs->attempted++;
    rs->oneshot++;
    pthread_mutex_unlock(&rs->mu);

    httpc_call call;
    api_call(cl, &call, "POST", cl->base_url, body);
    json_decref(body);
    const char *reason;
    outcome oc = outcome_of_commit(&call, &reason);
    char gid[MARKER_MAX] = "";
    const char *g = resp_str(&call, "gid");
    if (g && strlen(g) < sizeof(gid))
        snprintf(gid, sizeof(gid), "%s", g);
    bool deciding = commit_deciding(&call);
    bool lost = call.status == 0 || call.status >= 500 || deciding;
    if (oc == OUT_UNKNOWN && call.status != 0 && call.status != 503 && !deciding)
        note_unexpected(cl, "one-shot", gid[0] ? gid : marker, &call);
    httpc_call_clear(&call);
    if (oc == OUT_UNKNOWN && lost && gid[0]) {
        oc = ask_outcome(o, gid, deciding ? 100 : 10);
        if (oc != OUT_UNKNOWN) {
            reason = "get_after_lost_commit";
            pthread_mutex_lock(&rs->mu);
            rs->unknown_resolved_by_get++;
            pthread_mutex_unlock(&rs->mu);
        }
    }
    record(cl, marker, gid, oc, true, reason);
    if (oc == OUT_UNKNOWN)
        sleep_ms(50 + rng_range(&cl->rng, 100), &g_stop); /* the coordinator may be down */
}

static void *client_main(void *arg)
{
    client_t *cl = arg;
    run_state *rs = cl->rs;
    const accounts_t *acc = rs->acc;
    while (!g_stop && now_ms() < rs->deadline_ms) {
        int da = (int)rng_range(&cl->rng, NDB);
        int db = (da + 1 + (int)rng_range(&cl->rng, NDB - 1)) % NDB;
        long from = acc->ids[da][rng_range(&cl->rng, acc->nids[da])];
        long to = acc->ids[db][rng_range(&cl->rng, acc->nids[db])];
        long amount = 1 + rng_range(&cl->rng, rs->o->max_amount);
        if (rng_range(&cl->rng, 100) < rs->o->oneshot_pct)
            transfer_oneshot(cl, from, to, amount);
        else
            transfer_interactive(cl, from, to, amount);
    }
    return NULL;
}

/* The fault thread: every interval, run the command; count what it says. */
static void *fault_main(void *arg)
{
    run_state *rs = arg;
    const opts *o = rs->o;
    while (!g_stop && now_ms() < rs->deadline_ms) {
        sleep_ms(o->fault_interval_ms, &g_stop);
        if (g_stop || now_ms() >= rs->deadline_ms)
            break;
        FILE *p = popen(o->fault_cmd, "r");
        if (!p) {
            log_error("fault command: popen failed: %s", strerror(errno));
            pthread_mutex_lock(&rs->mu);
            rs->fault_failures++;
            pthread_mutex_unlock(&rs->mu);
            continue;
        }
        char line[512];
        long said = -1;
        while (fgets(line, sizeof(line), p)) {
            line[strcspn(line, "\r\n")] = '\0';
            long n;
            char tail;
            if (sscanf(line, "faults=%ld%c", &n, &tail) == 1 && n >= 0)
                said = (said < 0 ? 0 : said) + n;
            else if (line[0])
                log_info("fault: %s", line);
        }
        int st = pclose(p);
        bool ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
        pthread_mutex_lock(&rs->mu);
        rs->fault_runs++;
        if (!ok) {
            rs->fault_failures++;
            log_warn("fault command failed (status %d)", st);
        }
        rs->faults += said >= 0 ? said : (ok ? 1 : 0);
        pthread_mutex_unlock(&rs->mu);
    }
    return NULL;
}

/* Load accounts (ids and balances) from all databases into acc; *total gets
 * the sum. */
static bool load_accounts(PGconn *const *conns, accounts_t *acc, long long *total,
                          long *naccounts)
{
    *total = 0;
    *naccounts = 0;
    for (int i = 0; i < NDB; i++) {
        pg_res r;
        if (!db_exec(conns[i], i, "SELECT id, balance FROM accounts ORDER BY id", &r)) {
            pg_res_clear(&r);
            return false;
        }
        int n = PQntuples(r.res);
        acc->ids[i] = xcalloc((size_t)n + 1, sizeof(long));
        acc->bal[i] = xcalloc((size_t)n + 1, sizeof(long long));
        acc->nids[i] = n;
        for (int k = 0; k < n; k++) {
            long id = strtol(PQgetvalue(r.res, k, 0), NULL, 10);
            long long bal = strtoll(PQgetvalue(r.res, k, 1), NULL, 10);
            if (db_of(id) != i) {
                log_error("pg%d: account %ld belongs in pg%d (a %% 3): run txbank setup", i + 1,
                          id, db_of(id) + 1);
                pg_res_clear(&r);
                return false;
            }
            acc->ids[i][k] = id;
            acc->bal[i][k] = bal;
            *total += bal;
        }
        *naccounts += n;
        pg_res_clear(&r);
        if (n == 0) {
            log_error("pg%d holds no accounts: run txbank setup first", i + 1);
            return false;
        }
    }
    return true;
}

/* Wait until no database has a 'txc:%' prepared branch; false at the deadline. */
static bool wait_no_prepared(const opts *o, PGconn **conns, int64_t deadline_ms, char *left,
                             size_t leftlen)
{
    for (;;) {
        long total = 0;
        left[0] = '\0';
        for (int i = 0; i < NDB; i++) {
            if (!conns[i] || PQstatus(conns[i]) != CONNECTION_OK) {
                if (conns[i])
                    PQfinish(conns[i]);
                conns[i] = db_connect(o, i, now_ms()); /* one try */
            }
            long n = conns[i] ? prepared_count(conns[i], i, left, leftlen) : -1;
            if (n < 0) {
                if (conns[i]) {
                    PQfinish(conns[i]);
                    conns[i] = NULL;
                }
                total += 1000000; /* unknown: the database is down */
                snprintf(left + strlen(left), leftlen - strlen(left), " (pg%d unreachable)",
                         i + 1);
            } else {
                total += n;
            }
        }
        if (total == 0)
            return true;
        if (now_ms() >= deadline_ms || g_stop)
            return false;
        sleep_ms(500, &g_stop);
    }
}

static void accounts_free(accounts_t *acc)
{
    for (int i = 0; i < NDB; i++) {
        free(acc->ids[i]);
        free(acc->bal[i]);
    }
}

static int cmd_run(const opts *o)
{
    if (!need("--coordinator", o->coordinator) || !need("--journal", o->journal))
        return 2;
    if (o->until_faults > 0 && !o->fault_cmd) {
        fprintf(stderr, "txbank: --until-faults needs --fault-cmd\n");
        return 2;
    }
    PGconn *conns[NDB] = {NULL, NULL, NULL};
    accounts_t acc;
    memset(&acc, 0, sizeof(acc));
    int rc = 1;
    FILE *jr = NULL;
    char left[512];
    if (!wait_no_prepared(o, conns, now_ms() + 30000, left, sizeof(left))) {
        log_error("run: prepared branches left from before (%s): resolve them first", left);
        goto out;
    }
    jr = fopen(o->journal, "a");
    if (!jr) {
        log_error("run: cannot open journal %s: %s", o->journal, strerror(errno));
        goto out;
    }
    long long total;
    long naccounts;
    int64_t start_wall = wall_ms();
    fprintf(jr, "# txbank run started at %" PRId64 " ms\n", start_wall);
    if (!load_accounts(conns, &acc, &total, &naccounts))
        goto out;
    fprintf(jr, "H %" PRId64 " %ld %lld\n", start_wall, naccounts, total);
    for (int i = 0; i < NDB; i++)
        for (long k = 0; k < acc.nids[i]; k++)
            fprintf(jr, "A %ld %lld\n", acc.ids[i][k], acc.bal[i][k]);
    fflush(jr);
    for (int i = 0; i < NDB; i++) {
        PQfinish(conns[i]);
        conns[i] = NULL;
    }

    run_state rs;
    memset(&rs, 0, sizeof(rs));
    rs.o = o;
    rs.acc = &acc;
    rs.journal = jr;
    pthread_mutex_init(&rs.mu, NULL);
    snprintf(rs.run_id, sizeof(rs.run_id), "%" PRIx64, (uint64_t)(start_wall % 0xffffffffffLL));
    int64_t t0 = now_ms();
    rs.deadline_ms = t0 + o->duration_s * 1000;

    char until[64] = "";
    if (o->until_faults > 0)
        snprintf(until, sizeof(until), " max, until %ld faults", o->until_faults);
    printf("txbank run: %ld clients, %lds%s, %s, %ld accounts, total %lld, coordinator %s%s%s\n",
           o->clients, o->duration_s, until, o->protocol, naccounts, total, o->coordinator,
           o->fault_cmd ? ", faults: " : "", o->fault_cmd ? o->fault_cmd : "");
    fflush(stdout);

    client_t *cls = xcalloc((size_t)o->clients, sizeof(*cls));
    pthread_t *th = xcalloc((size_t)o->clients, sizeof(*th));
    pthread_t fth;
    bool fault_started = false;
    uint64_t seed = o->seed;
    long started = 0;
    for (long k = 0; k < o->clients; k++) {
        cls[k].rs = &rs;
        cls[k].no = (int)k;
        cls[k].rng = rng_next(&seed) | 1;
        cls[k].base_url = xasprintf("%s/v1/transactions", o->coordinator);
        if (pthread_create(&th[k], NULL, client_main, &cls[k]) != 0) {
            log_error("run: cannot start client thread %ld", k);
            g_stop = 1;
            break;
        }
        started++;
    }
    if (o->fault_cmd && !g_stop) {
        if (pthread_create(&fth, NULL, fault_main, &rs) != 0)
            log_error("run: cannot start the fault thread");
        else
            fault_started = true;
    }
    int64_t next_report = t0 + 10000;
    while (!g_stop && now_ms() < rs.deadline_ms) {
        sleep_ms(100, &g_stop);
        pthread_mutex_lock(&rs.mu);
        long faults = rs.faults;
        long att = rs.attempted, com = rs.committed, ab = rs.aborted, un = rs.unknown;
        pthread_mutex_unlock(&rs.mu);
        if (o->until_faults > 0 && faults >= o->until_faults)
            break;
        if (now_ms() >= next_report) {
            next_report += 10000;
            printf("txbank run: %4llds: %ld transfers (%ld committed, %ld aborted, %ld unknown), "
                   "%ld faults\n",
                   (long long)((now_ms() - t0) / 1000), att, com, ab, un, faults);
            fflush(stdout);
        }
    }
    bool interrupted = g_stop != 0;
    g_stop = 1;
    for (long k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    if (fault_started)
        pthread_join(fth, NULL); /* lets a running fault command finish (restart) */
    double secs = (double)(now_ms() - t0) / 1000.0;
    fprintf(jr, "F %ld %ld\n", rs.faults, rs.fault_failures);
    fflush(jr);

    printf("txbank run: %.1fs%s\n"
           "  transfers attempted %ld (interactive %ld, one-shot %ld), %.1f/s\n"
           "  committed %ld, aborted %ld (insufficient %ld, conflict %ld, other %ld), "
           "unknown %ld\n"
           "  unknown without a commit request %ld, lost commit answers resolved by GET %ld, "
           "begins failed %ld\n"
           "  faults injected %ld (fault command runs %ld, failed %ld)\n",
           secs, interrupted ? " (interrupted)" : "", rs.attempted, rs.interactive, rs.oneshot,
           secs > 0 ? (double)rs.attempted / secs : 0.0, rs.committed, rs.aborted,
           rs.abort_insufficient, rs.abort_conflict, rs.abort_other, rs.unknown,
           rs.unknown_no_commit, rs.unknown_resolved_by_get, rs.begin_failed, rs.faults, rs.fault_runs,
           rs.fault_failures);
    fflush(stdout);
    rc = rs.attempted > 0 ? 0 : 1;
    if (rs.attempted == 0)
        log_error("run: no transfer was attempted (is the coordinator up at %s?)",
                  o->coordinator);
    for (long k = 0; k < o->clients; k++)
        free(cls[k].base_url);
    free(cls);
    free(th);
    pthread_mutex_destroy(&rs.mu);
out:
    if (jr)
        fclose(jr);
    for (int i = 0; i < NDB; i++)
        if (conns[i])
            PQfinish(conns[i]);
    accounts_free(&acc);
    return rc;
}

/* ---- check -------------------------------------------------------------------------- */

typedef struct {
    char *marker; /* owned */
    char gid[MARKER_MAX];
    char form;
    long from, to, amount;
    char outcome; /* C, A, U; 0 = no R line (counted as U) */
    bool commit_sent;
    bool present[2]; /* in db_of(from), db_of(to) */
} jtransfer;

typedef struct {
    long id;
    long long start_balance;
    long long expected;
    long long actual;
    bool seen;
} jaccount;

typedef struct {
    jtransfer *t;
    size_t n, cap;
    jaccount *a;
    size_t na, acap;
    bool have_header;
    bool accounts_done; /* A lines of the first run only */
    long long start_total;
    long faults, fault_failures;
} journal_t;

static int cmp_transfer(const void *a, const void *b)
{
    return strcmp(((const jtransfer *)a)->marker, ((const jtransfer *)b)->marker);
}

static int cmp_account(const void *a, const void *b)
{
    long x = ((const jaccount *)a)->id, y = ((const jaccount *)b)->id;
    return x < y ? -1 : x > y;
}

static jtransfer *find_transfer(journal_t *j, const char *marker)
{
    jtransfer key;
    key.marker = (char *)marker;
    return bsearch(&key, j->t, j->n, sizeof(*j->t), cmp_transfer);
}

static jaccount *find_account(journal_t *j, long id)
{
    jaccount key;
    key.id = id;
    return bsearch(&key, j->a, j->na, sizeof(*j->a), cmp_account);
}

static bool journal_load(const char *path, journal_t *j)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        log_error("check: cannot open journal %s: %s", path, strerror(errno));
        return false;
    }
    memset(j, 0, sizeof(*j));
    char line[512];
    long lineno = 0;
    bool in_accounts = false;
    bool ok = true;
    /* R lines may only be matched after sorting: keep them aside. */
    typedef struct {
        char marker[MARKER_MAX], gid[MARKER_MAX];
        char oc;
        int sent;
    } rline;
    rline *rs = NULL;
    size_t nr = 0, rcap = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strcspn(line, "\n");
        bool complete = line[len] == '\n';
        line[len] = '\0';
        if (!complete && !feof(f)) {
            log_error("check: %s:%ld: line too long", path, lineno);
            ok = false;
            break;
        }
        if (!complete)
            break; /* torn last line (run killed while writing): ignore it */
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char m[MARKER_MAX], g[MARKER_MAX], form, oc;
        long a, b, c;
        long long ll, ll2;
        int sent;
        if (line[0] == 'H' && sscanf(line, "H %lld %ld %lld", &ll2, &a, &ll) == 3) {
            in_accounts = !j->have_header;
            if (!j->have_header) {
                j->have_header = true;
                j->start_total = ll;
            } else {
                j->accounts_done = true;
            }
        } else if (line[0] == 'A' && sscanf(line, "A %ld %lld", &a, &ll) == 2) {
            if (in_accounts && !j->accounts_done) {
                if (j->na == j->acap) {
                    j->acap = j->acap ? j->acap * 2 : 256;
                    j->a = xrealloc(j->a, j->acap * sizeof(*j->a));
                }
                j->a[j->na++] = (jaccount){.id = a, .start_balance = ll, .expected = ll};
            }
        } else if (line[0] == 'T' &&
                   sscanf(line, "T %79s %c %ld %ld %ld", m, &form, &a, &b, &c) == 5) {
            in_accounts = false;
            if (j->n == j->cap) {
                j->cap = j->cap ? j->cap * 2 : 4096;
                j->t = xrealloc(j->t, j->cap * sizeof(*j->t));
            }
            jtransfer *t = &j->t[j->n++];
            memset(t, 0, sizeof(*t));
            t->marker = xstrdup(m);
            t->form = form;
            t->from = a;
            t->to = b;
            t->amount = c;
            if (form == 'I')
                snprintf(t->gid, sizeof(t->gid), "%s", m);
        } else if (line[0] == 'R' &&
                   sscanf(line, "R %79s %c %79s %d", m, &oc, g, &sent) == 4) {
            if (nr == rcap) {
                rcap = rcap ? rcap * 2 : 4096;
                rs = xrealloc(rs, rcap * sizeof(*rs));
            }
            snprintf(rs[nr].marker, sizeof(rs[nr].marker), "%s", m);
            snprintf(rs[nr].gid, sizeof(rs[nr].gid), "%s", strcmp(g, "-") ? g : "");
            rs[nr].oc = oc;
            rs[nr].sent = sent;
            nr++;
        } else if (line[0] == 'F' && sscanf(line, "F %ld %ld", &a, &b) == 2) {
            j->faults += a;
            j->fault_failures += b;
        } else {
            log_error("check: %s:%ld: unreadable line '%s'", path, lineno, line);
            ok = false;
            break;
        }
    }
    fclose(f);
    if (ok && !j->have_header) {
        log_error("check: %s has no H line: was it written by txbank run?", path);
        ok = false;
    }
    if (ok) {
        qsort(j->t, j->n, sizeof(*j->t), cmp_transfer);
        qsort(j->a, j->na, sizeof(*j->a), cmp_account);
        for (size_t k = 1; k < j->n; k++)
            if (strcmp(j->t[k - 1].marker, j->t[k].marker) == 0) {
                log_error("check: transfer %s appears twice in the journal", j->t[k].marker);
                ok = false;
                break;
            }
        for (size_t k = 0; ok && k < nr; k++) {
            jtransfer *t = find_transfer(j, rs[k].marker);
            if (!t) {
                log_error("check: result for unknown transfer %s", rs[k].marker);
                ok = false;
                break;
            }
            t->outcome = rs[k].oc;
            t->commit_sent = rs[k].sent != 0;
            if (rs[k].gid[0])
                snprintf(t->gid, sizeof(t->gid), "%s", rs[k].gid);
        }
    }
    free(rs);
    return ok;
}

static void journal_free(journal_t *j)
{
    for (size_t k = 0; k < j->n; k++)
        free(j->t[k].marker);
    free(j->t);
    free(j->a);
}

enum {
    V_PREPARED_LEFT, V_TOTAL, V_BALANCE_MISMATCH, V_NEGATIVE, V_PARTIAL, V_COMMITTED_MISSING,
    V_ABORTED_PRESENT, V_UNCOMMITTED_PRESENT, V_COORD_MISMATCH, V_UNJOURNALED, V_NKINDS,
};
static const char *const violation_names[V_NKINDS] = {
    "prepared_left",   "total_balance",       "balance_mismatch",     "negative_balance",
    "partial",         "committed_missing",   "aborted_present",      "uncommitted_present",
    "coordinator_mismatch", "unjournaled_marker",
};
static long violations[V_NKINDS];

static void violation(int kind, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void violation(int kind, const char *fmt, ...)
{
    if (violations[kind]++ >= 10) {
        if (violations[kind] == 11)
            printf("VIOLATION %s: (more not shown)\n", violation_names[kind]);
        return;
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    printf("VIOLATION %s: %s\n", violation_names[kind], buf);
}

static int cmd_check(const opts *o)
{
    if (!need("--journal", o->journal))
        return 2;
    journal_t j;
    if (!journal_load(o->journal, &j))
        return 2;

    PGconn *conns[NDB] = {NULL, NULL, NULL};
    char left[512];
    int64_t t0 = now_ms();
    bool drained = wait_no_prepared(o, conns, t0 + o->wait_s * 1000, left, sizeof(left));
    printf("txbank check: pg_prepared_xacts %s after %.1fs\n",
           drained ? "holds no txc: branch" : "still holds txc: branches",
           (double)(now_ms() - t0) / 1000.0);
    if (!drained)
        violation(V_PREPARED_LEFT, "after %lds: %s", o->wait_s, left);
    int rc = 1;
    for (int i = 0; i < NDB; i++) {
        if (!conns[i]) {
            log_error("check: pg%d is unreachable: cannot check", i + 1);
            goto out;
        }
    }

    /* markers, per database */
    long unjournaled = 0;
    for (int i = 0; i < NDB; i++) {
        pg_res r;
        if (!db_exec(conns[i], i, "SELECT id FROM transfers", &r)) {
            pg_res_clear(&r);
            goto out;
        }
        int n = PQntuples(r.res);
        for (int k = 0; k < n; k++) {
            const char *id = PQgetvalue(r.res, k, 0);
            jtransfer *t = find_transfer(&j, id);
            if (!t) {
                unjournaled++;
                violation(V_UNJOURNALED, "pg%d has transfer %s that no journal line names", i + 1,
                          id);
                continue;
            }
            if (db_of(t->from) == i)
                t->present[0] = true;
            else if (db_of(t->to) == i)
                t->present[1] = true;
            else
                violation(V_UNJOURNALED, "pg%d has transfer %s between accounts %ld and %ld",
                          i + 1, id, t->from, t->to);
        }
        pg_res_clear(&r);
    }

    /* balances */
    long long total = 0;
    long naccounts = 0;
    for (int i = 0; i < NDB; i++) {
        pg_res r;
        if (!db_exec(conns[i], i, "SELECT id, balance FROM accounts", &r)) {
            pg_res_clear(&r);
            goto out;
        }
        int n = PQntuples(r.res);
        for (int k = 0; k < n; k++) {
            long id = strtol(PQgetvalue(r.res, k, 0), NULL, 10);
            long long bal = strtoll(PQgetvalue(r.res, k, 1), NULL, 10);
            total += bal;
            naccounts++;
            if (bal < 0)
                violation(V_NEGATIVE, "account %ld (pg%d) has balance %lld", id, i + 1, bal);
            jaccount *a = find_account(&j, id);
            if (a) {
                a->actual = bal;
                a->seen = true;
            } else {
                violation(V_BALANCE_MISMATCH, "account %ld (pg%d) was not there at run start", id,
                          i + 1);
            }
        }
        pg_res_clear(&r);
    }
    if (total != j.start_total)
        violation(V_TOTAL, "total balance %lld, at run start %lld (difference %lld)", total,
                  j.start_total, total - j.start_total);

    /* per transfer */
    long committed = 0, aborted = 0, unknown = 0, unknown_present = 0, unknown_absent = 0;
    long interactive = 0, oneshot = 0, never_committed = 0;
    for (size_t k = 0; k < j.n; k++) {
        jtransfer *t = &j.t[k];
        bool both = t->present[0] && t->present[1];
        bool none = !t->present[0] && !t->present[1];
        if (t->form == 'I')
            interactive++;
        else
            oneshot++;
        if (!both && !none)
            violation(V_PARTIAL,
                      "transfer %s (%s, %ld from %ld to %ld, outcome %c): marker in pg%d only",
                      t->marker, t->gid[0] ? t->gid : "gid unknown", t->amount, t->from, t->to,
                      t->outcome ? t->outcome : '?',
                      t->present[0] ? db_of(t->from) + 1 : db_of(t->to) + 1);
        if (both) {
            jaccount *af = find_account(&j, t->from), *at = find_account(&j, t->to);
            if (af)
                af->expected -= t->amount;
            if (at)
                at->expected += t->amount;
        }
        switch (t->outcome) {
        case 'C':
            committed++;
            if (!both)
                violation(V_COMMITTED_MISSING, "transfer %s acknowledged committed: marker %s",
                          t->marker, none ? "absent" : "partial");
            break;
        case 'A':
            aborted++;
            if (!none)
                violation(V_ABORTED_PRESENT, "transfer %s acknowledged aborted: marker present",
                          t->marker);
            break;
        default:
            unknown++;
            if (both)
                unknown_present++;
            else if (none)
                unknown_absent++;
            if (t->outcome == 'U' && !t->commit_sent) {
                never_committed++;
                if (!none)
                    violation(V_UNCOMMITTED_PRESENT,
                              "transfer %s: commit was never sent, marker present", t->marker);
            }
            break;
        }
    }
    for (size_t k = 0; k < j.na; k++) {
        jaccount *a = &j.a[k];
        if (!a->seen)
            violation(V_BALANCE_MISMATCH, "account %ld is gone", a->id);
        else if (a->actual != a->expected)
            violation(V_BALANCE_MISMATCH,
                      "account %ld: balance %lld, expected %lld (start %lld + committed transfers)",
                      a->id, a->actual, a->expected, a->start_balance);
    }

    /* What the coordinator's decision says (GET /v1/outcomes, answerable
     * forever): for every unknown with a known gid, and for a sample of the
     * acknowledged ones, it must agree with the rows. Bounded. */
    long asked = 0, coord_committed = 0, coord_aborted = 0, coord_other = 0;
    size_t nacked = 0;
    for (size_t k = 0; k < j.n; k++)
        if (j.t[k].gid[0] && (j.t[k].outcome == 'C' || j.t[k].outcome == 'A'))
            nacked++;
    size_t sample_every = nacked / 200 + 1;
    size_t nth_acked = 0;
    for (size_t k = 0; o->coordinator && k < j.n && asked < 5000; k++) {
        jtransfer *t = &j.t[k];
        if (!t->gid[0])
            continue;
        bool acked = t->outcome == 'C' || t->outcome == 'A';
        if (acked && nth_acked++ % sample_every != 0)
            continue;
        outcome oc = ask_decision(o, t->gid);
        asked++;
        bool both = t->present[0] && t->present[1];
        bool none = !t->present[0] && !t->present[1];
        if (oc == OUT_COMMITTED) {
            coord_committed++;
            if (!both || t->outcome == 'A')
                violation(V_COORD_MISMATCH, "%s: the coordinator's outcome is committed, "
                          "acknowledged %c, markers %s", t->gid, t->outcome ? t->outcome : '?',
                          both ? "present" : none ? "absent" : "partial");
        } else if (oc == OUT_ABORTED) {
            coord_aborted++;
            if (!none || t->outcome == 'C')
                violation(V_COORD_MISMATCH, "%s: the coordinator's outcome is aborted, "
                          "acknowledged %c, markers %s", t->gid, t->outcome ? t->outcome : '?',
                          both ? "present" : "partial");
        } else {
            coord_other++;
        }
    }

    long nviol = 0;
    for (int k = 0; k < V_NKINDS; k++)
        nviol += violations[k];
    printf("txbank check: %s\n"
           "  transfers attempted %zu (interactive %ld, one-shot %ld)\n"
           "  committed %ld, aborted %ld, unknown %ld (present %ld, absent %ld; "
           "commit never sent %ld)\n"
           "  coordinator outcomes asked: %ld (committed %ld, aborted %ld, no answer %ld)\n"
           "  faults injected %ld (fault command failures %ld)\n"
           "  accounts %ld, total balance %lld (at start %lld), unjournaled markers %ld\n"
           "  violations %ld",
           nviol ? "FAILED" : "OK", j.n, interactive, oneshot, committed, aborted, unknown,
           unknown_present, unknown_absent, never_committed, asked, coord_committed,
           coord_aborted, coord_other, j.faults, j.fault_failures, naccounts, total, j.start_total,
           unjournaled, nviol);
    const char *sep = " (";
    for (int k = 0; k < V_NKINDS; k++)
        if (violations[k]) {
            printf("%s%s %ld", sep, violation_names[k], violations[k]);
            sep = ", ";
        }
    printf("%s\n", nviol ? ")" : "");
    rc = nviol ? 1 : 0;
out:
    for (int i = 0; i < NDB; i++)
        if (conns[i])
            PQfinish(conns[i]);
    journal_free(&j);
    return rc;
}

int main(int argc, char **argv)
{
    log_init("txbank", LOG_INFO);
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    opts o;
    if (!parse_opts(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!auth_load_env()) /* $TXCOORD_TOKEN_FILE: the cluster's token, if it has one */
        return 2;
    httpc_global_init();
    int rc;
    if (strcmp(argv[1], "setup") == 0) {
        rc = cmd_setup(&o);
    } else if (strcmp(argv[1], "run") == 0) {
        rc = cmd_run(&o);
    } else if (strcmp(argv[1], "check") == 0) {
        rc = cmd_check(&o);
    } else {
        fprintf(stderr, "txbank: unknown command '%s'\n", argv[1]);
        usage(stderr);
        rc = 2;
    }
    httpc_global_cleanup();
    return rc;
}
