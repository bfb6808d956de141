/*
 * test_concurrent.c - many clients at once: THREADS threads each run
 * TRANSFERS transfers between random accounts spread over the 3 databases,
 * half in the interactive form (begin, statements, commit), half one-shot.
 * Afterwards:
 *   - the sum of all balances is unchanged, and every account holds exactly
 *     its start balance moved by the transfers acknowledged committed,
 *   - every transfer acknowledged committed has its marker row in each of its
 *     databases, every one acknowledged aborted has none,
 *   - no answer was anything but committed/aborted (or a 422 SQL error that
 *     aborts), and nothing is left in pg_prepared_xacts (checked fixture).
 * Deadlocks: interactive transfers lock their rows in (database, id) order,
 * so they cannot deadlock with each other; one-shot branches run in parallel
 * and may, across databases, where PostgreSQL cannot see it, so they carry a
 * lock_timeout and such a cycle ends as an abort.
 * TXCOORD_IT_THREADS / TXCOORD_IT_TRANSFERS override the sizes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "util.h"

#define ACCOUNTS_PER_DB 8
#define FIRST_ID 5000
#define START_BALANCE 1000

enum { OUT_COMMITTED = 1, OUT_ABORTED = 2 };

typedef struct {
    char id[48];
    int db[2], acct[2]; /* from, to */
    long amount;
    int outcome;
} transfer;

typedef struct {
    int index;
    int n;
    unsigned seed;
    transfer *t;
    int unexpected;       /* answers that are neither committed nor aborted */
    char first_error[600];
} worker;

static int env_int(const char *name, int dflt)
{
    const char *s = getenv(name);
    return s && atoi(s) > 0 ? atoi(s) : dflt;
}

static void note_unexpected(worker *w, const char *what, const h_resp *r)
{
    if (w->unexpected++ == 0)
        snprintf(w->first_error, sizeof(w->first_error), "%s: %s", what, h_desc(r));
}

static const char *pname(int db)
{
    static const char *const names[] = {"", "pg1", "pg2", "pg3"};
    return names[db];
}

/* Interactive: statements in (db, id) order, markers, commit. */
static void transfer_interactive(worker *w, transfer *t, long amount)
{
    h_resp r = h_req("POST", "/v1/transactions",
                     json_pack("{s:s,s:i}", "protocol", "2pc", "timeout_ms", 60000));
    if (r.status != 201) {
        note_unexpected(w, "begin", &r);
        h_resp_clear(&r);
        return;
    }
    char gid[128];
    snprintf(gid, sizeof(gid), "%s", h_str(r.json, "gid"));
    h_resp_clear(&r);

    int order[2] = {0, 1};
    if (t->db[1] < t->db[0] || (t->db[1] == t->db[0] && t->acct[1] < t->acct[0])) {
        order[0] = 1;
        order[1] = 0;
    }
    bool failed = false;
    for (int k = 0; k < 2 && !failed; k++) {
        int side = order[k];
        const char *sql = side == 0 ? "UPDATE accounts SET balance = balance - $1 WHERE id = $2"
                                    : "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
        r = h_stmt(gid, pname(t->db[side]), sql, json_pack("[Ii]", (json_int_t)amount, t->acct[side]));
        if (r.status == 422) {
            failed = true; /* overdraft: the transaction is aborted */
        } else if (r.status != 200) {
            note_unexpected(w, "update", &r);
            failed = true;
        }
        h_resp_clear(&r);
    }
    for (int side = 0; side < 2 && !failed; side++) {
        if (side == 1 && t->db[1] == t->db[0])
            break;
        r = h_stmt(gid, pname(t->db[side]), "INSERT INTO transfers (id, amount) VALUES ($1, $2)",
                   json_pack("[sI]", t->id, (json_int_t)amount));
        if (r.status != 200) {
            note_unexpected(w, "marker", &r);
            failed = true;
        }
        h_resp_clear(&r);
    }
    r = h_commit(gid);
    const char *outcome = h_str(r.json, "outcome");
    if (r.status == 200 && strcmp(outcome, "committed") == 0)
        t->outcome = OUT_COMMITTED;
    else if (r.status == 409 && strcmp(outcome, "aborted") == 0)
        t->outcome = OUT_ABORTED;
    else
        note_unexpected(w, "commit", &r);
    if (t->outcome == OUT_COMMITTED && failed)
        note_unexpected(w, "committed although a statement failed", &r);
    h_resp_clear(&r);
}

/* One-shot: one branch per database, each starting with a lock_timeout. */
static void transfer_one_shot(worker *w, transfer *t, long amount)
{
    json_t *branches = json_array();
    for (int side = 0; side < 2; side++) {
        json_t *branch = NULL;
        for (size_t b = 0; b < json_array_size(branches); b++) {
            if (strcmp(h_str(json_array_get(branches, b), "participant"), pname(t->db[side])) == 0)
                branch = json_array_get(branches, b);
        }
        if (!branch) {
            branch = json_pack("{s:s,s:[{s:s},{s:s,s:[sI]}]}", "participant", pname(t->db[side]),
                               "statements", "sql", "SET LOCAL lock_timeout = '3s'", "sql",
                               "INSERT INTO transfers (id, amount) VALUES ($1, $2)", "params",
                               t->id, (json_int_t)amount);
            json_array_append_new(branches, branch);
        }
        const char *sql = side == 0 ? "UPDATE accounts SET balance = balance - $1 WHERE id = $2"
                                    : "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
        json_array_append_new(json_object_get(branch, "statements"),
                              json_pack("{s:s,s:[Ii]}", "sql", sql, "params", (json_int_t)amount,
                                        t->acct[side]));
    }
    h_resp r = h_req("POST", "/v1/transactions",
                     json_pack("{s:s,s:i,s:b,s:o}", "protocol", "2pc", "timeout_ms", 60000,
                               "commit", 1, "branches", branches));
    const char *outcome = h_str(r.json, "outcome");
    if (r.status == 200 && strcmp(outcome, "committed") == 0)
        t->outcome = OUT_COMMITTED;
    else if (r.status == 409 && strcmp(outcome, "aborted") == 0)
        t->outcome = OUT_ABORTED;
    else
        note_unexpected(w, "one-shot", &r);
    h_resp_clear(&r);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int k = 0; k < w->n; k++) {
        transfer *t = &w->t[k];
        snprintf(t->id, sizeof(t->id), "cc-%d-%d", w->index, k);
        int a = (int)(rand_r(&w->seed) % (3 * ACCOUNTS_PER_DB));
        int b = (int)(rand_r(&w->seed) % (3 * ACCOUNTS_PER_DB - 1));
        if (b >= a)
            b++;
        t->db[0] = 1 + a / ACCOUNTS_PER_DB;
        t->acct[0] = FIRST_ID + a; /* ids are unique across databases */
        t->db[1] = 1 + b / ACCOUNTS_PER_DB;
        t->acct[1] = FIRST_ID + b;
        long amount = 1 + (long)(rand_r(&w->seed) % 400); /* some overdraw: aborts */
        t->amount = amount;
        if ((w->index + k) % 2 == 0)
            transfer_interactive(w, t, amount);
        else
            transfer_one_shot(w, t, amount);
    }
    h_thread_done();
    return NULL;
}

static long long total_balance(void)
{
    long long sum = 0;
    for (int db = 1; db <= 3; db++)
        sum += h_sql_ll(db, "SELECT coalesce(sum(balance), 0) FROM accounts WHERE id >= %d AND id < %d",
                        FIRST_ID, FIRST_ID + 3 * ACCOUNTS_PER_DB);
    return sum;
}

START_TEST(concurrent_transfers)
{
    int nthreads = env_int("TXCOORD_IT_THREADS", 32);
    int per = env_int("TXCOORD_IT_TRANSFERS", 15);
    for (int a = 0; a < 3 * ACCOUNTS_PER_DB; a++)
        h_set_balance(1 + a / ACCOUNTS_PER_DB, FIRST_ID + a, START_BALANCE);
    for (int db = 1; db <= 3; db++)
        h_sql(db, "DELETE FROM transfers WHERE id LIKE 'cc-%%'");
    long long before = total_balance();
    ck_assert_int_eq(before, 3LL * ACCOUNTS_PER_DB * START_BALANCE);

    worker *w = xcalloc((size_t)nthreads, sizeof(*w));
    pthread_t *th = xcalloc((size_t)nthreads, sizeof(*th));
    for (int i = 0; i < nthreads; i++) {
        w[i].index = i;
        w[i].n = per;
        w[i].seed = 0x5eed0000u + (unsigned)i;
        w[i].t = xcalloc((size_t)per, sizeof(transfer));
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);

    int committed = 0, aborted = 0, unexpected = 0;
    const char *first = NULL;
    for (int i = 0; i < nthreads; i++) {
        for (int k = 0; k < per; k++) {
            committed += w[i].t[k].outcome == OUT_COMMITTED;
            aborted += w[i].t[k].outcome == OUT_ABORTED;
        }
        unexpected += w[i].unexpected;
        if (w[i].unexpected && !first)
            first = w[i].first_error;
    }
    fprintf(stderr, "concurrent: %d threads x %d transfers: %d committed, %d aborted, %d unexpected\n",
            nthreads, per, committed, aborted, unexpected);
    ck_assert_msg(unexpected == 0, "%d unexpected answers, first: %s", unexpected, first);
    ck_assert_msg(committed > 0, "no transfer committed");

    long long after = total_balance();
    ck_assert_msg(after == before, "sum of balances changed: %lld -> %lld", before, after);
    /* The ledger: each account is its start balance moved by exactly the
     * transfers acknowledged committed (an aborted one left no trace). */
    long long expect[3 * ACCOUNTS_PER_DB];
    for (int a = 0; a < 3 * ACCOUNTS_PER_DB; a++)
        expect[a] = START_BALANCE;
    for (int i = 0; i < nthreads; i++) {
        for (int k = 0; k < per; k++) {
            const transfer *t = &w[i].t[k];
            if (t->outcome != OUT_COMMITTED)
                continue;
            expect[t->acct[0] - FIRST_ID] -= t->amount;
            expect[t->acct[1] - FIRST_ID] += t->amount;
        }
    }
    int wrong = 0;
    for (int a = 0; a < 3 * ACCOUNTS_PER_DB; a++) {
        long long got = h_balance(1 + a / ACCOUNTS_PER_DB, FIRST_ID + a);
        if (got != expect[a] && wrong++ < 5)
            fprintf(stderr, "concurrent: account %d on pg%d holds %lld, the committed transfers "
                    "say %lld\n", FIRST_ID + a, 1 + a / ACCOUNTS_PER_DB, got, expect[a]);
    }
    ck_assert_msg(wrong == 0, "%d accounts disagree with the committed transfers", wrong);

    /* markers: all-or-nothing per acknowledged outcome */
    PGconn *conn[4] = {NULL, h_pg(1), h_pg(2), h_pg(3)};
    int violations = 0;
    for (int i = 0; i < nthreads; i++) {
        for (int k = 0; k < per; k++) {
            transfer *t = &w[i].t[k];
            for (int side = 0; side < 2; side++) {
                char sql[128];
                snprintf(sql, sizeof(sql), "SELECT count(*) FROM transfers WHERE id = '%s'", t->id);
                long long n = h_conn_ll(conn[t->db[side]], sql);
                long long want = t->outcome == OUT_COMMITTED ? 1 : 0;
                if (n != want && violations++ < 5)
                    fprintf(stderr, "concurrent: %s on pg%d: %lld marker rows, expected %lld\n",
                            t->id, t->db[side], n, want);
            }
        }
    }
    for (int db = 1; db <= 3; db++)
        PQfinish(conn[db]);
    ck_assert_msg(violations == 0, "%d marker violations", violations);

    for (int i = 0; i < nthreads; i++)
        free(w[i].t);
    free(w);
    free(th);
}
END_TEST

TCase *tc_concurrent(void)
{
    TCase *tc = h_tcase("concurrent", 400);
    tcase_add_test(tc, concurrent_transfers);
    return tc;
}
