/*
 * test_races.c - commands racing on one transaction.
 *
 * For ROUNDS rounds per protocol (2pc, 3pc) a transaction moves 1 from an
 * account on pg1 to one on pg2 (interactive form: begin, two statements).
 * Then RACERS threads, released together by a barrier, each send one of
 * commit, rollback or a statement to that gid. A last commit reads the final
 * outcome. What must hold:
 *   - every commit answer agrees with the final outcome (200 committed or
 *     409 aborted);
 *   - a rollback answers 200 "aborted" only when the final outcome is
 *     aborted, and 409 "committed" only when it is committed;
 *   - a statement answers 200 (it ran before the decision) or 409
 *     wrong_state (it came after), or, when the outcome is aborted, 422
 *     sqlstate 57014: a racing rollback had its agent cancel it (a rollback
 *     does not wait for a running statement);
 *   - nothing else, in particular no 5xx and no transport failure;
 *   - afterwards each account moved by exactly its committed rounds, and
 *     nothing is left in pg_prepared_xacts (checked fixture).
 * The racers' commands are drawn from a fixed seed, so a failure repeats.
 * TXCOORD_IT_RACE_ROUNDS overrides ROUNDS.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define ROUNDS 20
#define RACERS 4
#define ACCOUNTS 4
#define FIRST_ID 7000
#define START_BALANCE 1000

enum cmd { CMD_COMMIT, CMD_ROLLBACK, CMD_STATEMENT };

typedef struct {
    pthread_barrier_t *start;
    const char *gid;
    enum cmd cmd;
    long status;
    char outcome[16];
    char code[32];
    char sqlstate[8];
    char desc[300]; /* for failure messages */
} racer;

static void *racer_main(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->start);
    h_resp resp;
    if (r->cmd == CMD_COMMIT)
        resp = h_commit(r->gid);
    else if (r->cmd == CMD_ROLLBACK)
        resp = h_rollback(r->gid);
    else
        resp = h_stmt(r->gid, "pg1", "SELECT 1", NULL);
    r->status = resp.status;
    snprintf(r->outcome, sizeof(r->outcome), "%s", h_str(resp.json, "outcome"));
    snprintf(r->code, sizeof(r->code), "%s", h_err_code(&resp));
    snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", h_err_sqlstate(&resp));
    snprintf(r->desc, sizeof(r->desc), "%s", h_desc(&resp));
    h_resp_clear(&resp);
    h_thread_done();
    return NULL;
}

static const char *cmd_name(enum cmd c)
{
    return c == CMD_COMMIT ? "commit" : c == CMD_ROLLBACK ? "rollback" : "statement";
}

/* NULL if the racer's answer fits the final outcome, else what is wrong. */
static const char *check_answer(const racer *r, bool committed)
{
    const char *final = committed ? "committed" : "aborted";
    switch (r->cmd) {
    case CMD_COMMIT:
        if (r->status == (committed ? 200 : 409) && strcmp(r->outcome, final) == 0)
            return NULL;
        return "commit answer disagrees with the final outcome";
    case CMD_ROLLBACK:
        if (!committed && r->status == 200 && strcmp(r->outcome, "aborted") == 0)
            return NULL;
        if (committed && r->status == 409 && strcmp(r->outcome, "committed") == 0)
            return NULL;
        return "rollback answer disagrees with the final outcome";
    case CMD_STATEMENT:
        if (r->status == 200 || (r->status == 409 && strcmp(r->code, "wrong_state") == 0))
            return NULL;
        if (!committed && r->status == 422 && strcmp(r->sqlstate, "57014") == 0)
            return NULL;
        return "statement answer is neither 200 nor 409 wrong_state (nor, aborted, 422 57014)";
    }
    return "unknown command";
}

/* One round: returns true if the transaction committed. */
static bool race_round(const char *protocol, int round, unsigned *seed, int from, int to)
{
    h_resp b = h_req("POST", "/v1/transactions",
                     json_pack("{s:s,s:i}", "protocol", protocol, "timeout_ms", 30000));
    H_EXPECT(b, 201, "begin");
    char *gid = xstrdup(h_str(b.json, "gid"));
    h_resp_clear(&b);
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance - 1 WHERE id = $1",
              json_pack("[i]", from));
    h_stmt_ok(gid, "pg2", "UPDATE accounts SET balance = balance + 1 WHERE id = $1",
              json_pack("[i]", to));

    pthread_barrier_t start;
    ck_assert_int_eq(pthread_barrier_init(&start, NULL, RACERS), 0);
    racer rs[RACERS];
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) {
        memset(&rs[i], 0, sizeof(rs[i]));
        rs[i].start = &start;
        rs[i].gid = gid;
        /* commit twice as often as either of the others */
        int pick = (int)(rand_r(seed) % 4);
        rs[i].cmd = pick < 2 ? CMD_COMMIT : pick == 2 ? CMD_ROLLBACK : CMD_STATEMENT;
        ck_assert_int_eq(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);

    h_resp fin = h_commit(gid);
    ck_assert_msg(fin.status == 200 || fin.status == 409, "%s round %d: final commit: %s",
                  protocol, round, h_desc(&fin));
    bool committed = fin.status == 200;
    ck_assert_str_eq(h_str(fin.json, "outcome"), committed ? "committed" : "aborted");
    h_resp_clear(&fin);

    for (int i = 0; i < RACERS; i++) {
        const char *wrong = check_answer(&rs[i], committed);
        ck_assert_msg(wrong == NULL, "%s round %d (%s), racer %d %s: %s; got %s", protocol,
                      round, gid, i, cmd_name(rs[i].cmd), wrong, rs[i].desc);
    }
    free(gid);
    return committed;
}

/* A rollback does not wait for a statement that waits on a lock: the
 * statement of gid on pg1 waits for a row another transaction (holder) has
 * updated, with 10 minutes left on its clock; the rollback has its agent
 * cancel it. The statement answers 422 57014 "due to user request" (the
 * cancel, not its statement_timeout), the rollback 200 aborted, and the
 * holder's row is untouched by gid. A second statement of gid, queued
 * behind the first, does not run before the rollback: 409. Before, the
 * rollback waited for the statement, i.e. for the transaction's whole
 * timeout, and the queued statement could run (and wait) next. */
typedef struct {
    const char *gid;
    const char *participant;
    const char *sql;
    int id;
    h_resp r;
} waiter;

/* POST rollback of gid while a statement of it runs: 200 aborted. */
static void rollback_aborts(const char *gid, const char *what)
{
    h_resp r = h_rollback(gid);
    H_EXPECT(r, 200, what);
    ck_assert_str_eq(h_str(r.json, "outcome"), "aborted");
    h_resp_clear(&r);
}

static void *waiting_statement(void *arg)
{
    waiter *w = arg;
    w->r = h_stmt(w->gid, w->participant, w->sql, w->id ? json_pack("[i]", w->id) : NULL);
    h_thread_done();
    return NULL;
}

typedef struct {
    char *url;
    const char *body;
    h_resp r;
} agent_call;

static void *agent_call_main(void *arg)
{
    agent_call *c = arg;
    c->r = h_http("POST", c->url, c->body, strlen(c->body));
    h_thread_done();
    return NULL;
}

/* A call that changes a branch (here a statement) waits for the branch's
 * lock as a commit does, at most 5 s, then answers 503 branch_busy. Before,
 * it waited for whatever held the lock, however long: with a COMMIT
 * PREPARED stalled in PostgreSQL every re-sent PreCommit parked one more
 * agent thread. The holder here: the branch's own one-shot prepare running
 * pg_sleep(8). */
START_TEST(call_behind_a_held_branch_answers_busy)
{
    char *gid = h_begin();
    agent_call held = {.url = xasprintf("%s/v1/branches/%s/prepare", h_agent_url(1), gid),
                       .body = "{\"participant\":\"pg1\",\"protocol\":\"2pc\",\"timeout_ms\":"
                               "30000,\"statements\":[{\"sql\":\"SELECT pg_sleep(8)\"}]}"};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, agent_call_main, &held), 0);
    long long running = 0;
    for (int i = 0; i < 200 && running == 0; i++) {
        running = h_sql_ll(1, "SELECT count(*) FROM pg_stat_activity WHERE query = "
                              "'SELECT pg_sleep(8)' AND state = 'active'");
        if (running == 0)
            usleep(50 * 1000);
    }
    ck_assert_int_eq(running, 1);
    char *url = xasprintf("%s/v1/branches/%s/statements", h_agent_url(1), gid);
    const char *stmt = "{\"participant\":\"pg1\",\"sql\":\"SELECT 1\",\"begin\":false}";
    h_resp r = h_http("POST", url, stmt, strlen(stmt));
    H_EXPECT(r, 503, "a statement while the branch's prepare holds it");
    ck_assert_str_eq(h_err_code(&r), "branch_busy");
    h_resp_clear(&r);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    H_EXPECT(held.r, 200, "the prepare that held the branch");
    ck_assert_str_eq(h_str(held.r.json, "vote"), "read_only");
    h_resp_clear(&held.r);
    free(held.url);
    free(url);
    h_discard(gid);
}
END_TEST

START_TEST(rollback_cancels_a_waiting_statement)
{
    const int id = FIRST_ID + 100;
    h_set_balance(1, id, START_BALANCE);
    char *holder = h_begin();
    h_stmt_ok(holder, "pg1", "UPDATE accounts SET balance = balance - 5 WHERE id = $1",
              json_pack("[i]", id));
    char *gid = h_begin_timeout(600000);
    h_stmt_ok(gid, "pg2", "SELECT 1", NULL); /* a second branch, not running anything */
    waiter w = {.gid = gid, .participant = "pg1", .id = id,
                .sql = "UPDATE accounts SET balance = balance + 1 WHERE id = $1"};
    waiter queued = {.gid = gid, .participant = "pg2", .sql = "SELECT 1"};
    pthread_t th, thq;
    ck_assert_int_eq(pthread_create(&th, NULL, waiting_statement, &w), 0);
    ck_assert_msg(h_lock_waiters(1, 1) == 1, "the statement never waited on the row lock");
    /* queued behind the first for op_mu (if it came after the rollback, it
     * gets the same 409) */
    ck_assert_int_eq(pthread_create(&thq, NULL, waiting_statement, &queued), 0);
    usleep(300 * 1000);

    rollback_aborts(gid, "rollback while its statement waits on a lock");
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    H_EXPECT(w.r, 422, "the waiting statement, cancelled");
    ck_assert_str_eq(h_err_sqlstate(&w.r), "57014");
    const json_t *err = json_object_get(w.r.json, "error");
    ck_assert_msg(strstr(h_str(err, "message"), "user request") != NULL,
                  "cancelled by the rollback, not by its statement_timeout: %s", h_desc(&w.r));
    h_resp_clear(&w.r);
    ck_assert_int_eq(pthread_join(thq, NULL), 0);
    H_EXPECT(queued.r, 409, "a statement queued behind the cancelled one");
    h_resp_clear(&queued.r);
    h_resp r = h_commit(gid);
    H_EXPECT(r, 409, "commit after the rollback");
    h_resp_clear(&r);

    r = h_commit(holder);
    H_EXPECT(r, 200, "the holder commits");
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, id), START_BALANCE - 5);
    free(holder);
    free(gid);
}
END_TEST

/* The same for a one-shot commit, whose statements run inside its PREPARE
 * calls: its UPDATE on pg1 waits for the holder's row with 10 minutes left
 * on its clock; a rollback of its gid (found with ?state=preparing) has the
 * agent cancel it. The branch votes no, the one-shot answers 409 aborted,
 * the rollback 200 aborted, and neither database keeps any of its work.
 * Before, the rollback waited for the PREPARE call, i.e. for the
 * transaction's whole timeout (the harness's call gave up first). */
typedef struct {
    int id;
    h_resp r;
} one_shot_waiter;

static void *waiting_one_shot(void *arg)
{
    one_shot_waiter *w = arg;
    json_t *body = json_pack(
        "{s:s, s:i, s:b, s:[{s:s, s:[{s:s, s:[i]}]}, {s:s, s:[{s:s, s:[i]}]}]}", "protocol",
        "2pc", "timeout_ms", 600000, "commit", 1, "branches", "participant", "pg1",
        "statements", "sql", "UPDATE accounts SET balance = balance + 1 WHERE id = $1", "params",
        w->id, "participant", "pg2", "statements", "sql",
        "UPDATE accounts SET balance = balance - 1 WHERE id = $1", "params", w->id);
    w->r = h_req("POST", "/v1/transactions", body);
    h_thread_done();
    return NULL;
}

START_TEST(rollback_cancels_a_one_shot_commit)
{
    const int id = FIRST_ID + 101;
    h_set_balance(1, id, START_BALANCE);
    h_set_balance(2, id, START_BALANCE);
    char *holder = h_begin();
    h_stmt_ok(holder, "pg1", "UPDATE accounts SET balance = balance - 5 WHERE id = $1",
              json_pack("[i]", id));
    one_shot_waiter w = {.id = id};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, waiting_one_shot, &w), 0);
    ck_assert_msg(h_lock_waiters(1, 1) == 1, "the one-shot never waited on the row lock");

    h_resp l = h_get("/v1/transactions?state=preparing");
    H_EXPECT(l, 200, "list the preparing transactions");
    json_t *list = json_object_get(l.json, "transactions");
    ck_assert_msg(json_array_size(list) == 1, "one transaction preparing: %s", h_desc(&l));
    char *gid = xstrdup(h_str(json_array_get(list, 0), "gid"));
    h_resp_clear(&l);

    rollback_aborts(gid, "rollback while its one-shot commit waits on a lock");
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    H_EXPECT(w.r, 409, "the one-shot commit, its statement cancelled");
    ck_assert_str_eq(h_str(w.r.json, "outcome"), "aborted");
    ck_assert_msg(strstr(h_str(w.r.json, "reason"), "57014") != NULL,
                  "aborted by the cancel (a no vote with 57014): %s", h_desc(&w.r));
    h_resp_clear(&w.r);

    h_resp r = h_commit(holder);
    H_EXPECT(r, 200, "the holder commits");
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, id), START_BALANCE - 5);
    ck_assert_int_eq(h_balance(2, id), START_BALANCE);
    free(holder);
    free(gid);
}
END_TEST

START_TEST(racing_commands_one_gid)
{
    const char *env = getenv("TXCOORD_IT_RACE_ROUNDS");
    int rounds = env && atoi(env) > 0 ? atoi(env) : ROUNDS;
    for (int a = 0; a < ACCOUNTS; a++) {
        h_set_balance(1, FIRST_ID + a, START_BALANCE);
        h_set_balance(2, FIRST_ID + a, START_BALANCE);
    }
    long long moved[2][ACCOUNTS] = {{0}}; /* [0] = debited on pg1, [1] = credited on pg2 */
    int committed = 0, total = 0;
    unsigned seed = 0x7ace0001u;
    static const char *const protocols[] = {"2pc", "3pc"};
    for (int p = 0; p < 2; p++) {
        for (int round = 0; round < rounds; round++) {
            int from = (int)(rand_r(&seed) % ACCOUNTS), to = (int)(rand_r(&seed) % ACCOUNTS);
            if (race_round(protocols[p], round, &seed, FIRST_ID + from, FIRST_ID + to)) {
                moved[0][from]++;
                moved[1][to]++;
                committed++;
            }
            total++;
        }
    }
    fprintf(stderr, "races: %d rounds of %d racers: %d committed, %d aborted\n", total, RACERS,
            committed, total - committed);
    for (int a = 0; a < ACCOUNTS; a++) {
        ck_assert_int_eq(h_balance(1, FIRST_ID + a), START_BALANCE - moved[0][a]);
        ck_assert_int_eq(h_balance(2, FIRST_ID + a), START_BALANCE + moved[1][a]);
    }
}
END_TEST

TCase *tc_races(void)
{
    TCase *tc = h_tcase("races", 300);
    tcase_add_test(tc, racing_commands_one_gid);
    tcase_add_test(tc, rollback_cancels_a_waiting_statement);
    tcase_add_test(tc, rollback_cancels_a_one_shot_commit);
    tcase_add_test(tc, call_behind_a_held_branch_answers_busy);
    return tc;
}
