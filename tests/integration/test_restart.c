/*
 * test_restart.c - what survives a process restart, through scripts/cluster:
 * a component killed (SIGKILL) or stopped (SIGTERM) can be started again at
 * once on the same port, and GET /v1/transactions/{gid} of a transaction
 * from before a coordinator restart answers its outcome (from the decision
 * log, or presumed abort), and so do commit, rollback and statements (as the
 * finished transaction would), while a gid never seen stays 404, and an agent
 * killed while its pipelined 'BEGIN; UPDATE; PREPARE TRANSACTION' waits on a
 * row lock leaves nothing behind: its restart terminates that session before
 * it answers anything, so the PREPARE never lands. A clean stop of the
 * coordinator rolls back the transactions still open before it exits.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define CREDIT "UPDATE accounts SET balance = balance + $1 WHERE id = $2"

/* kill or stop NAME, then start it again at once: both must succeed (the
 * port must be free when kill/stop returns), and it must answer. */
static void bounce(const char *how, const char *name)
{
    ck_assert_msg(h_cluster(how, name, NULL) == 0, "scripts/cluster %s %s failed", how, name);
    ck_assert_msg(h_cluster("start", name, NULL) == 0,
                  "scripts/cluster start %s right after %s failed (port still in use?)", name, how);
}

START_TEST(kill_then_start_at_once)
{
    for (int round = 0; round < 3; round++) {
        bounce("kill", "coordinator");
        bounce("kill", "agent2");
    }
    bounce("stop", "coordinator");
    bounce("stop", "agent1");
    h_test_setup(); /* every component answers /healthz */
}
END_TEST

/* The coordinator's identity from /healthz. */
static void coord_identity(char *cid, size_t size, long long *epoch)
{
    h_resp r = h_get("/healthz");
    H_EXPECT(r, 200, "coordinator healthz");
    snprintf(cid, size, "%s", h_str(r.json, "coord_id"));
    *epoch = json_integer_value(json_object_get(r.json, "epoch"));
    h_resp_clear(&r);
}

static void expect_recovered(const char *gid, const char *outcome)
{
    h_resp r = h_get("/v1/transactions/%s", gid);
    H_EXPECT(r, 200, "GET transaction from before the restart");
    ck_assert_str_eq(h_str(r.json, "gid"), gid);
    ck_assert_msg(strcmp(h_str(r.json, "state"), outcome) == 0 &&
                      strcmp(h_str(r.json, "outcome"), outcome) == 0,
                  "GET %s: state and outcome should be %s: %s", gid, outcome, h_desc(&r));
    ck_assert_msg(json_is_true(json_object_get(r.json, "recovered")), "not marked recovered: %s",
                  h_desc(&r));
    ck_assert_msg(json_array_size(json_object_get(r.json, "branches")) == 0 &&
                      json_is_array(json_object_get(r.json, "branches")),
                  "branches should be []: %s", h_desc(&r));
    h_resp_clear(&r);
    /* The outcome endpoint says the same. */
    r = h_get("/v1/outcomes/%s", gid);
    H_EXPECT(r, 200, "outcome");
    ck_assert_str_eq(h_str(r.json, "outcome"), outcome);
    h_resp_clear(&r);
}

static void expect_404(const char *gid, const char *what)
{
    h_resp r = h_get("/v1/transactions/%s", gid);
    H_EXPECT(r, 404, what);
    ck_assert_str_eq(h_err_code(&r), "unknown_transaction");
    h_resp_clear(&r);
}

/* Commit, rollback and a statement on a gid from before the restart answer
 * as the finished transaction did: the outcome with commit's or rollback's
 * status, 409 wrong_state for a statement. */
static void expect_finished(const char *gid, const char *outcome)
{
    bool committed = strcmp(outcome, "committed") == 0;
    h_resp r = h_commit(gid);
    H_EXPECT(r, committed ? 200 : 409, "commit again after the restart");
    ck_assert_str_eq(h_str(r.json, "outcome"), outcome);
    if (!committed)
        ck_assert_msg(strstr(h_str(r.json, "reason"), "presumed abort"), "%s", h_desc(&r));
    h_resp_clear(&r);
    r = h_rollback(gid);
    H_EXPECT(r, committed ? 409 : 200, "rollback after the restart");
    ck_assert_str_eq(h_str(r.json, "outcome"), outcome);
    h_resp_clear(&r);
    r = h_stmt(gid, "pg1", "SELECT 1", NULL);
    H_EXPECT(r, 409, "statement after the restart");
    ck_assert_str_eq(h_err_code(&r), "wrong_state");
    h_resp_clear(&r);
}

START_TEST(get_after_coordinator_restart)
{
    h_set_balance(1, 1401, 10);
    h_set_balance(2, 1402, 10);
    char *committed = h_begin();
    h_stmt_ok(committed, "pg1", CREDIT, json_pack("[ii]", 1, 1401));
    h_stmt_ok(committed, "pg2", CREDIT, json_pack("[ii]", 1, 1402));
    h_resp r = h_commit(committed);
    H_EXPECT(r, 200, "commit");
    h_resp_clear(&r);
    char *aborted = h_begin();
    h_stmt_ok(aborted, "pg1", CREDIT, json_pack("[ii]", 1, 1401));
    r = h_rollback(aborted);
    H_EXPECT(r, 200, "rollback");
    h_resp_clear(&r);
    /* Committed with nothing prepared (its only branch read): no decision,
     * but its 'R' record keeps it "committed" after the restart. */
    char *read_only = h_begin();
    h_stmt_ok(read_only, "pg2", "SELECT balance FROM accounts WHERE id = 1402", NULL);
    r = h_commit(read_only);
    H_EXPECT(r, 200, "read-only commit");
    h_resp_clear(&r);
    /* Still active when the coordinator stops: its client's commit, sent
     * again after the restart, learns it aborted. */
    char *active = h_begin();
    h_stmt_ok(active, "pg1", CREDIT, json_pack("[ii]", 1, 1401));

    ck_assert_int_eq(h_cluster("stop", "coordinator", NULL), 0);
    ck_assert_int_eq(h_cluster("start", "coordinator", NULL), 0);
    h_test_setup();

    expect_recovered(committed, "committed"); /* 'C' in the log */
    expect_recovered(aborted, "aborted");     /* earlier epoch, no 'C': presumed abort */
    expect_recovered(read_only, "committed"); /* 'R' in the log */
    expect_finished(committed, "committed");
    expect_finished(read_only, "committed");
    expect_finished(aborted, "aborted");
    expect_finished(active, "aborted");

    /* Never seen: an unissued seq of this epoch, a future epoch, another coordinator. */
    char cid[16], gid[96];
    long long epoch;
    coord_identity(cid, sizeof(cid), &epoch);
    snprintf(gid, sizeof(gid), "%s-%lld-%d", cid, epoch, 999999999);
    expect_404(gid, "GET of a seq not issued yet");
    r = h_commit(gid);
    H_EXPECT(r, 404, "commit of a seq not issued yet");
    h_resp_clear(&r);
    r = h_stmt(gid, "pg1", "SELECT 1", NULL);
    H_EXPECT(r, 404, "statement on a seq not issued yet");
    h_resp_clear(&r);
    snprintf(gid, sizeof(gid), "%s-%lld-%d", cid, epoch + 5, 1);
    expect_404(gid, "GET of a future epoch");
    snprintf(gid, sizeof(gid), "%s", committed);
    gid[0] = gid[0] == '0' ? '1' : '0';
    expect_404(gid, "GET of another coordinator's gid");

    /* A transaction of the new epoch is still shown in full, and its gid is
     * new: same coordinator, a greater epoch than every gid of before. */
    char *fresh = h_begin();
    const char *before[] = {committed, aborted, read_only, active};
    for (size_t i = 0; i < 4; i++) {
        char bcid[16];
        long long bepoch = -1;
        ck_assert_msg(sscanf(before[i], "%15[0-9a-f]-%lld-", bcid, &bepoch) == 2,
                      "gid shape: %s", before[i]);
        ck_assert_str_eq(bcid, cid);
        ck_assert_msg(bepoch < epoch, "gid %s from before the restart has epoch %lld, not below "
                      "the new one (%lld)", before[i], bepoch, epoch);
        ck_assert_str_ne(fresh, before[i]);
    }
    char fcid[16];
    long long fepoch = -1;
    ck_assert_int_eq(sscanf(fresh, "%15[0-9a-f]-%lld-", fcid, &fepoch), 2);
    ck_assert_str_eq(fcid, cid);
    ck_assert_int_eq(fepoch, epoch);
    r = h_get("/v1/transactions/%s", fresh);
    H_EXPECT(r, 200, "GET of a live transaction");
    ck_assert_str_eq(h_str(r.json, "state"), "active");
    ck_assert_ptr_null(json_object_get(r.json, "recovered"));
    h_resp_clear(&r);
    r = h_rollback(fresh);
    h_resp_clear(&r);
    free(fresh);
    free(committed);
    free(aborted);
    free(read_only);
    free(active);
}
END_TEST

/* pg2's branch renames its session first: the restarted agent must find the
 * old one by more than its name. */
static void *one_shot_main(void *arg)
{
    h_resp *out = arg;
    json_t *body = json_pack(
        "{s:s, s:b, s:i, s:[{s:s, s:[{s:s, s:[ii]}]}, {s:s, s:[{s:s}, {s:s, s:[ii]}]}]}",
        "protocol", "2pc", "commit", 1, "timeout_ms", 60000, "branches", "participant", "pg1",
        "statements", "sql", CREDIT, "params", -1, 1501, "participant", "pg2", "statements", "sql",
        "SET LOCAL application_name = 'it-renamed'", "sql", CREDIT, "params", 1, 1502);
    *out = h_req("POST", "/v1/transactions", body);
    h_thread_done();
    return NULL;
}

/* Backends of agent pg2 waiting on a lock, under the name one_shot_main's
 * branch gave it: the pid of one, or 0. */
static long long pg2_agent_waiting(PGconn *c)
{
    return h_conn_ll(c, "SELECT coalesce(min(pid), 0) FROM pg_stat_activity "
                        "WHERE application_name = 'it-renamed' AND wait_event_type = 'Lock'");
}

START_TEST(killed_agent_pipeline_does_not_prepare_late)
{
    h_set_balance(1, 1501, 10);
    h_set_balance(2, 1502, 10);
    /* Hold row 1502's lock, so pg2's one-shot pipeline waits on it. */
    PGconn *holder = h_pg(2);
    PQclear(PQexec(holder, "BEGIN"));
    PGresult *res = PQexec(holder, "UPDATE accounts SET balance = balance WHERE id = 1502");
    ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PGconn *probe = h_pg(2);

    h_resp answer = {0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, one_shot_main, &answer), 0);
    long long victim = 0;
    for (int i = 0; i < 200 && victim == 0; i++) {
        victim = pg2_agent_waiting(probe);
        if (victim == 0)
            sleep_ms(50, NULL);
    }
    ck_assert_msg(victim > 0, "agent pg2's session never waited on the row lock");

    /* SIGKILL, then start again: the new instance's first connection
     * terminates the old session before /healthz answers. */
    ck_assert_int_eq(h_cluster("kill", "agent2", NULL), 0);
    ck_assert_int_eq(h_cluster("start", "agent2", NULL), 0);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld", victim);
    ck_assert_msg(h_conn_ll(probe, sql) == 0,
                  "the killed agent's session %lld is still alive after the restart", victim);

    /* Release the lock: nothing may get prepared now, and the transfer aborts. */
    PQclear(PQexec(holder, "COMMIT"));
    pthread_join(th, NULL);
    H_EXPECT(answer, 409, "one-shot whose agent was killed mid-prepare");
    ck_assert_str_eq(h_str(answer.json, "outcome"), "aborted");
    h_resp_clear(&answer);
    for (int i = 0; i < 10; i++) {
        ck_assert_msg(h_conn_ll(probe, "SELECT count(*) FROM pg_prepared_xacts") == 0,
                      "a branch got prepared after its agent was killed");
        sleep_ms(100, NULL);
    }
    ck_assert_int_eq(h_balance(1, 1501), 10);
    ck_assert_int_eq(h_balance(2, 1502), 10);
    PQfinish(probe);
    PQfinish(holder);
}
END_TEST

/* An agent restarted between two statements of one branch lost the first
 * one (its session died with it): the second must not open a fresh branch
 * there, or the commit would apply it without the first. The agent answers
 * 409 branch_lost, the transaction is rollback-only, and nothing changes. */
START_TEST(agent_restart_between_statements_aborts)
{
    h_set_balance(1, 1601, 10);
    h_set_balance(2, 1602, 10);
    char *gid = h_begin();
    h_stmt_ok(gid, "pg1", CREDIT, json_pack("[ii]", 5, 1601));
    h_stmt_ok(gid, "pg2", CREDIT, json_pack("[ii]", 5, 1602));
    bounce("kill", "agent1");
    h_test_setup(); /* agent1 answers again */

    h_resp r = h_stmt(gid, "pg1", CREDIT, json_pack("[ii]", 7, 1601));
    H_EXPECT(r, 409, "statement after its agent restarted");
    ck_assert_str_eq(h_err_code(&r), "branch_lost");
    ck_assert_str_eq(h_str(json_object_get(r.json, "error"), "participant"), "pg1");
    h_resp_clear(&r);

    r = h_commit(gid);
    H_EXPECT(r, 409, "commit of a transaction whose branch was lost");
    ck_assert_str_eq(h_str(r.json, "outcome"), "aborted");
    ck_assert_msg(strstr(h_str(r.json, "reason"), "pg1"), "%s", h_desc(&r));
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, 1601), 10);
    ck_assert_int_eq(h_balance(2, 1602), 10);
    ck_assert_int_eq(h_prepared_count(1), 0);
    ck_assert_int_eq(h_prepared_count(2), 0);
    free(gid);
}
END_TEST

/* The state agent i gives its branch of gid ("" if it does not answer). */
static char *agent_branch_state(int i, const char *gid)
{
    char *url = xasprintf("%s/v1/branches/%s", h_agent_url(i), gid);
    h_resp r = h_http("GET", url, NULL, 0);
    char *st = xstrdup(r.status == 200 ? h_str(r.json, "state") : "");
    h_resp_clear(&r);
    free(url);
    return st;
}

/* Agent i has rolled gid's branch back (what: for the message). */
static void branch_is_aborted(int i, const char *gid, const char *what)
{
    char *st = agent_branch_state(i, gid);
    ck_assert_msg(strcmp(st, "aborted") == 0, "agent%d: %s branch (%s) is '%s'", i, what, gid, st);
    free(st);
}

/* POST commit of gid answers 409 with outcome aborted. */
static void commit_answers_aborted(const char *gid, const char *what)
{
    h_resp r = h_commit(gid);
    H_EXPECT(r, 409, what);
    ck_assert_str_eq(h_str(r.json, "outcome"), "aborted");
    h_resp_clear(&r);
}

/* The coordinator restarted while a transaction was open: presumed abort
 * forgets it, so no rollback will ever reach its branches. The agent's sweep
 * asks about its idle open branch, hears "aborted" and rolls it back, so its
 * row lock goes long before the transaction's 120 s timeout. */
START_TEST(open_branch_of_a_restarted_coordinator_is_rolled_back)
{
    h_set_balance(1, 1701, 10);
    char *gid = h_begin_timeout(120000);
    h_stmt_ok(gid, "pg1", CREDIT, json_pack("[ii]", 5, 1701));
    char *st = agent_branch_state(1, gid);
    ck_assert_str_eq(st, "active");
    free(st);
    bounce("kill", "coordinator");
    h_test_setup();

    /* sweeps every 5 s, open branches idle for 10 s or more: within 30 s */
    bool rolled_back = false;
    for (int k = 0; k < 300 && !rolled_back; k++) {
        st = agent_branch_state(1, gid);
        rolled_back = strcmp(st, "aborted") == 0;
        free(st);
        if (!rolled_back)
            sleep_ms(100, NULL);
    }
    ck_assert_msg(rolled_back, "agent1 still holds the open branch of %s 30 s after the "
                  "coordinator restarted", gid);
    ck_assert_int_eq(h_sql_ll(1, "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                                 "LIKE 'txagent pg1 %%' AND state LIKE 'idle in transaction%%'"),
                     0);
    ck_assert_int_eq(h_balance(1, 1701), 10);
    commit_answers_aborted(gid, "commit after the coordinator forgot the transaction");
    free(gid);
}
END_TEST

/* scripts/cluster stop coordinator (SIGTERM), which must end in a clean
 * exit: its "stopped" line, no grace run out. coordinator.log keeps every
 * start's lines: this run's are counted. */
static void stop_coordinator_cleanly(void)
{
    size_t cut = h_log_count("coordinator", "still in flight after");
    size_t stopped = h_log_count("coordinator", "INFO stopped\n");
    ck_assert_msg(h_cluster("stop", "coordinator", NULL) == 0, "scripts/cluster stop coordinator");
    ck_assert_uint_eq(h_log_count("coordinator", "still in flight after"), cut);
    ck_assert_uint_eq(h_log_count("coordinator", "INFO stopped\n"), stopped + 1);
}

/* A clean stop (SIGTERM) rolls back the transactions still open before it
 * exits: their row locks go with the coordinator, not at their timeout (120 s
 * here) nor at the agents' sweeps after a restart, and the next start
 * answers them aborted. Read right after the stop returned, before any
 * restart. Before, both branches stayed active, holding their rows. */
START_TEST(stop_rolls_back_open_transactions)
{
    h_set_balance(1, 1711, 10);
    h_set_balance(2, 1712, 10);
    char *gid = h_begin_timeout(120000);
    h_stmt_ok(gid, "pg1", CREDIT, json_pack("[ii]", 5, 1711));
    h_stmt_ok(gid, "pg2", CREDIT, json_pack("[ii]", 5, 1712));
    size_t rolled = h_log_count("coordinator", "shutdown: rolling back");
    stop_coordinator_cleanly();
    for (int i = 1; i <= 2; i++)
        branch_is_aborted(i, gid, "after the coordinator stopped, the");
    ck_assert_int_eq(h_sql_ll(1, "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING "
                                 "(pid) WHERE a.application_name LIKE 'txagent pg1 %%' AND "
                                 "a.state LIKE 'idle in transaction%%'"),
                     0);
    ck_assert_uint_eq(h_log_count("coordinator", "shutdown: rolling back"), rolled + 1);
    ck_assert_msg(h_cluster("start", "coordinator", NULL) == 0, "scripts/cluster start coordinator");
    h_test_setup();
    ck_assert_int_eq(h_balance(1, 1711), 10);
    ck_assert_int_eq(h_balance(2, 1712), 10);
    commit_answers_aborted(gid, "commit of a transaction the stop rolled back");
    free(gid);
}
END_TEST

typedef struct {
    const char *gid;
    int id;
    h_resp r;
} lock_waiter;

static void *stmt_waiting_on_lock(void *arg)
{
    lock_waiter *w = arg;
    w->r = h_stmt(w->gid, "pg1", CREDIT, json_pack("[ii]", 1, w->id));
    h_thread_done();
    return NULL;
}

/* The stop while a statement request waits on a row lock of another open
 * transaction: the stop rolls back the idle holder first, so the waiting
 * statement gets its lock and its answer, and the stop is a clean one
 * (before, the server's wait for that request ran out the grace: exit 3,
 * both transactions left holding their rows). Then the waiter's
 * transaction is rolled back too. */
START_TEST(stop_unblocks_a_statement_waiting_on_an_open_transaction)
{
    h_set_balance(1, 1721, 10);
    char *holder = h_begin_timeout(120000);
    h_stmt_ok(holder, "pg1", CREDIT, json_pack("[ii]", 5, 1721));
    char *waiter_gid = h_begin_timeout(120000);
    lock_waiter w = {.gid = waiter_gid, .id = 1721};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, stmt_waiting_on_lock, &w), 0);
    ck_assert_msg(h_lock_waiters(1, 1) == 1, "the statement never waited on the row lock");
    stop_coordinator_cleanly();
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    H_EXPECT(w.r, 200, "the statement that waited on the holder's row lock");
    h_resp_clear(&w.r);
    branch_is_aborted(1, holder, "after the stop, the holder's");
    branch_is_aborted(1, waiter_gid, "after the stop, the waiter's");
    ck_assert_msg(h_cluster("start", "coordinator", NULL) == 0, "scripts/cluster start coordinator");
    h_test_setup();
    ck_assert_int_eq(h_balance(1, 1721), 10);
    free(holder);
    free(waiter_gid);
}
END_TEST

/* A second txagent started by mistake for a live participant (same name,
 * its port taken) stops on the port before it touches PostgreSQL: the live
 * agent's sessions survive. Before, its start-up fence terminated every
 * session of "an earlier instance of pg1" (the live one's), its open
 * branches lost, and only then did it fail on the port. */
START_TEST(second_agent_on_a_taken_port_changes_nothing)
{
    h_set_balance(1, 1871, 100);
    char *gid = h_begin();
    h_stmt_ok(gid, "pg1", CREDIT, json_pack("[ii]", 5, 1871));
    char *bin = xasprintf("%s/participant/txagent", getenv("TXCOORD_BUILD_DIR"));
    const char *listen = h_agent_url(1) + strlen("http://");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 1);
        dup2(nul, 2);
        execl(bin, bin, "--listen", listen, "--name", "pg1", "--pg", h_conninfo(1),
              "--coordinator", h_coord_url(), (char *)NULL);
        _exit(127);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 127,
                  "the second txagent did not stop on its taken port (status %d)", st);
    free(bin);
    /* the live branch's session is intact: it runs another statement and
     * commits */
    h_stmt_ok(gid, "pg1", CREDIT, json_pack("[ii]", 5, 1871));
    h_resp r = h_commit(gid);
    ck_assert_msg(r.status == 200 && strcmp(h_str(r.json, "outcome"), "committed") == 0, "%s",
                  h_desc(&r));
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, 1871), 110);
    free(gid);
}
END_TEST

TCase *tc_restart(void)
{
    TCase *tc = h_tcase("restart", 240);
    tcase_add_test(tc, kill_then_start_at_once);
    tcase_add_test(tc, second_agent_on_a_taken_port_changes_nothing);
    tcase_add_test(tc, get_after_coordinator_restart);
    tcase_add_test(tc, killed_agent_pipeline_does_not_prepare_late);
    tcase_add_test(tc, agent_restart_between_statements_aborts);
    tcase_add_test(tc, open_branch_of_a_restarted_coordinator_is_rolled_back);
    tcase_add_test(tc, stop_rolls_back_open_transactions);
    tcase_add_test(tc, stop_unblocks_a_statement_waiting_on_an_open_transaction);
    return tc;
}
