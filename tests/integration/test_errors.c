/*
 * test_errors.c - every error status of the coordinator's REST API, each with
 * the {"error":{"code","message"}} body: 400 malformed JSON and bad fields,
 * 404 unknown gid/path, 422 unknown participant and SQL errors (with
 * sqlstate), 409 wrong state, 413 body too large, 400 transaction_control,
 * 503 participant unreachable. After each error the system must still be
 * consistent: nothing half-applied, nothing left prepared.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "util.h"

/* Poll count_sql on pg i every 100 ms, at most tries times, until it counts
 * 0; the last count. */
static long long count_drops_to_zero(int i, int tries, const char *count_sql)
{
    long long n = 1;
    for (int k = 0; k < tries && n > 0; k++) {
        n = h_sql_ll(i, "%s", count_sql);
        if (n > 0)
            sleep_ms(100, NULL);
    }
    return n;
}

/* An error answer: status, a snake_case code (optionally the given one) and a message. */
static void expect_error(h_resp *r, long status, const char *code, const char *what)
{
    H_EXPECT(*r, status, what);
    json_t *err = r->json ? json_object_get(r->json, "error") : NULL;
    ck_assert_msg(json_is_object(err), "%s: no error object: %s", what, h_desc(r));
    const char *c = h_str(err, "code");
    ck_assert_msg(*c && strspn(c, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(c),
                  "%s: error code not snake_case: %s", what, h_desc(r));
    ck_assert_msg(json_is_string(json_object_get(err, "message")), "%s: no message: %s", what,
                  h_desc(r));
    if (code)
        ck_assert_msg(strcmp(c, code) == 0, "%s: code should be %s: %s", what, code, h_desc(r));
}

static h_resp post_raw(const char *path, const char *body)
{
    char *url = xasprintf("%s%s", h_coord_url(), path);
    h_resp r = h_http("POST", url, body, strlen(body));
    free(url);
    return r;
}

START_TEST(malformed_json)
{
    const char *bodies[] = {"{not json", "{\"protocol\":\"2pc\",}", "[1,2]", "\"2pc\"", "nul"};
    for (size_t k = 0; k < ARRAY_LEN(bodies); k++) {
        h_resp r = post_raw("/v1/transactions", bodies[k]);
        expect_error(&r, 400, "malformed_json", bodies[k]);
        h_resp_clear(&r);
    }
    char *gid = h_begin();
    char *path = xasprintf("/v1/transactions/%s/statements", gid);
    h_resp r = post_raw(path, "{\"participant\":\"pg1\",\"sql\":");
    expect_error(&r, 400, "malformed_json", "truncated statement body");
    h_resp_clear(&r);
    /* well-formed, but a number jansson cannot hold: a field error that
     * says what to do, not "malformed" */
    static const char *const huge[] = {
        "{\"participant\":\"pg1\",\"sql\":\"SELECT $1::numeric\",\"params\":[18446744073709551616]}",
        "{\"participant\":\"pg1\",\"sql\":\"SELECT $1::numeric\",\"params\":[1e999]}"};
    for (size_t k = 0; k < ARRAY_LEN(huge); k++) {
        r = post_raw(path, huge[k]);
        expect_error(&r, 400, "invalid_field", huge[k]);
        ck_assert_msg(strstr(h_str(json_object_get(r.json, "error"), "message"),
                             "number out of range") != NULL, "%s", h_desc(&r));
        h_resp_clear(&r);
    }
    free(path);
    h_discard(gid);
}
END_TEST

START_TEST(bad_fields)
{
    const char *begins[] = {
        "{\"protocol\":\"4pc\"}",
        "{\"protocol\":2}",
        "{\"protocol\":\"2pc\",\"timeout_ms\":\"soon\"}",
        "{\"protocol\":\"2pc\",\"timeout_ms\":-5}",
        "{\"protocol\":\"2pc\",\"commit\":true,\"branches\":\"pg1\"}",
        "{\"protocol\":\"2pc\",\"commit\":true,\"branches\":[{\"participant\":\"pg1\","
        "\"statements\":[{\"params\":[1]}]}]}",
        /* a branch without statements (it would be prepared as unknown: aborted) */
        "{\"protocol\":\"2pc\",\"commit\":true,\"branches\":[{\"participant\":\"pg1\","
        "\"statements\":[]}]}",
        "{\"protocol\":\"2pc\",\"branches\":[{\"participant\":\"pg1\",\"statements\":[{"
        "\"sql\":\"SELECT 1\"}]},{\"participant\":\"pg2\",\"statements\":[]}]}",
        "{\"protocol\":\"2pc\",\"commit\":true,\"branches\":[{\"participant\":\"pg1\","
        "\"statements\":[{\"sql\":\"/* nothing */\"}]}]}",
        /* misspelt fields are refused, not ignored ("comit" would leave the
         * statements' locks held until the timeout, the client thinking it
         * committed) */
        "{\"protocol\":\"2pc\",\"comit\":true,\"branches\":[{\"participant\":\"pg1\","
        "\"statements\":[{\"sql\":\"UPDATE accounts SET balance = 0 WHERE id = 1\"}]}]}",
        "{\"protocol\":\"2pc\",\"commit\":true,\"branches\":[{\"participant\":\"pg1\","
        "\"statement\":[{\"sql\":\"SELECT 1\"}]}]}",
        "{\"protocol\":\"2pc\",\"commit\":true,\"branches\":[{\"participant\":\"pg1\","
        "\"statements\":[{\"sql\":\"SELECT $1::int\",\"param\":[1]}]}]}",
    };
    for (size_t k = 0; k < ARRAY_LEN(begins); k++) {
        h_resp r = post_raw("/v1/transactions", begins[k]);
        /* the first names a protocol we do not have; the others are fields */
        expect_error(&r, 400, k == 0 ? "unsupported_protocol" : "invalid_field", begins[k]);
        h_resp_clear(&r);
    }
    /* the GETs' own inputs: a listing filter we do not have, a string that
     * is not a gid at the outcome endpoint */
    h_resp g = h_get("/v1/transactions?state=bogus");
    expect_error(&g, 400, "invalid_field", "?state=bogus");
    h_resp_clear(&g);
    static const char *const pages[] = {"limit=0", "limit=10001", "limit=two", "limit=",
                                         "limit=5x", "limit=-1"};
    for (size_t k = 0; k < ARRAY_LEN(pages); k++) {
        g = h_get("/v1/transactions?%s", pages[k]);
        expect_error(&g, 400, "invalid_field", pages[k]);
        h_resp_clear(&g);
    }
    g = h_get("/v1/transactions?after=not-a-gid");
    expect_error(&g, 400, "invalid_gid", "?after=not-a-gid");
    h_resp_clear(&g);
    g = h_get("/v1/outcomes/not-a-gid");
    expect_error(&g, 400, "invalid_gid", "/v1/outcomes/not-a-gid");
    h_resp_clear(&g);
    char *gid = h_begin();
    char *path = xasprintf("/v1/transactions/%s/statements", gid);
    const char *stmts[] = {
        "{\"participant\":\"pg1\"}",
        "{\"sql\":\"SELECT 1\"}",
        "{\"participant\":\"pg1\",\"sql\":42}",
        "{\"participant\":7,\"sql\":\"SELECT 1\"}",
        "{\"participant\":\"pg1\",\"sql\":\"SELECT $1::int\",\"params\":5}",
        "{}",
        /* no statement at all: refused here, the transaction stays usable */
        "{\"participant\":\"pg1\",\"sql\":\"\"}",
        "{\"participant\":\"pg2\",\"sql\":\" ; -- nothing\\n\"}",
        "{\"participant\":\"pg1\",\"sql\":\"SELECT $1::int\",\"parameters\":[5]}",
    };
    for (size_t k = 0; k < ARRAY_LEN(stmts); k++) {
        h_resp r = post_raw(path, stmts[k]);
        expect_error(&r, 400, "invalid_field", stmts[k]);
        h_resp_clear(&r);
    }
    h_resp u = post_raw("/v1/transactions", "{\"protocol\":\"2pc\",\"timeout\":5}");
    expect_error(&u, 400, "invalid_field", "timeout");
    ck_assert_ptr_nonnull(strstr(u.body, "unknown field 'timeout'"));
    h_resp_clear(&u);
    /* commit and rollback take no fields: a rollback told to "commit" and a
     * commit with options are refused, and the transaction stays active */
    char *finish = xasprintf("/v1/transactions/%s/rollback", gid);
    u = post_raw(finish, "{\"outcome\":\"commit\"}");
    expect_error(&u, 400, "invalid_field", "rollback with a field");
    h_resp_clear(&u);
    free(finish);
    finish = xasprintf("/v1/transactions/%s/commit", gid);
    u = post_raw(finish, "{\"dry_run\":true}");
    expect_error(&u, 400, "invalid_field", "commit with a field");
    h_resp_clear(&u);
    free(finish);
    /* the transaction survived the refused requests */
    h_stmt_ok(gid, "pg1", "SELECT 1 AS one", NULL);
    h_resp r = h_commit(gid);
    H_EXPECT(r, 200, "commit after 400s");
    h_resp_clear(&r);
    free(path);
    free(gid);
}
END_TEST

START_TEST(unknown_gid_and_path)
{
    const char *gid = "ffffffff-1-999999";
    h_resp r = h_get("/v1/transactions/%s", gid);
    expect_error(&r, 404, "unknown_transaction", "GET unknown gid");
    h_resp_clear(&r);
    r = h_stmt(gid, "pg1", "SELECT 1", NULL);
    expect_error(&r, 404, "unknown_transaction", "statement on unknown gid");
    h_resp_clear(&r);
    r = h_commit(gid);
    expect_error(&r, 404, "unknown_transaction", "commit unknown gid");
    h_resp_clear(&r);
    r = h_rollback(gid);
    expect_error(&r, 404, "unknown_transaction", "rollback unknown gid");
    h_resp_clear(&r);
    r = h_get("/v1/no-such-thing");
    expect_error(&r, 404, "not_found", "unknown path");
    h_resp_clear(&r);
}
END_TEST

START_TEST(unknown_participant)
{
    char *gid = h_begin();
    h_resp r = h_stmt(gid, "pg9", "SELECT 1", NULL);
    expect_error(&r, 422, "unknown_participant", "statement for pg9");
    h_resp_clear(&r);
    h_discard(gid);

    r = h_req("POST", "/v1/transactions",
              json_pack("{s:s,s:b,s:[{s:s,s:[{s:s}]}]}", "protocol", "2pc", "commit", 1,
                        "branches", "participant", "nobody", "statements", "sql", "SELECT 1"));
    expect_error(&r, 422, "unknown_participant", "one-shot for an unknown participant");
    h_resp_clear(&r);
}
END_TEST

START_TEST(sql_error)
{
    h_set_balance(1, 1101, 10);
    char *gid = h_begin();
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1101", NULL);
    h_resp r = h_stmt(gid, "pg2", "SELEC 1", NULL);
    expect_error(&r, 422, "sql_error", "syntax error");
    ck_assert_str_eq(h_err_sqlstate(&r), "42601");
    h_resp_clear(&r);
    r = h_get("/v1/transactions/%s", gid); /* still active, but rollback-only, and why */
    H_EXPECT(r, 200, "GET after a syntax error");
    ck_assert_str_eq(h_str(r.json, "state"), "active");
    ck_assert_msg(strstr(h_str(r.json, "rollback_only_reason"), "42601"), "%s", h_desc(&r));
    h_resp_clear(&r);
    r = h_commit(gid);
    H_EXPECT(r, 409, "commit after a syntax error");
    ck_assert_str_eq(h_str(r.json, "outcome"), "aborted");
    ck_assert_msg(strstr(h_str(r.json, "reason"), "42601"), "%s", h_desc(&r));
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, 1101), 10);
    free(gid);

    gid = h_begin();
    r = h_stmt(gid, "pg3", "SELECT * FROM no_such_table", NULL);
    expect_error(&r, 422, "sql_error", "missing table");
    ck_assert_str_eq(h_err_sqlstate(&r), "42P01");
    h_resp_clear(&r);
    r = h_stmt(gid, "pg1", "SELECT 1/0", NULL);
    /* the transaction is doomed already; a second error or a refusal are both fine */
    ck_assert_msg(r.status == 422 || r.status == 409, "after a failed branch: %s", h_desc(&r));
    h_resp_clear(&r);
    /* Rolled back by the client: the reason is the rollback, and the first
     * failure is still shown. */
    r = h_rollback(gid);
    H_EXPECT(r, 200, "rollback of a failed transaction");
    h_resp_clear(&r);
    r = h_get("/v1/transactions/%s", gid);
    H_EXPECT(r, 200, "GET after the rollback");
    ck_assert_str_eq(h_str(r.json, "state"), "aborted");
    ck_assert_str_eq(h_str(r.json, "reason"), "rollback requested");
    ck_assert_msg(strstr(h_str(r.json, "rollback_only_reason"), "42P01"), "%s", h_desc(&r));
    h_resp_clear(&r);
    free(gid);
}
END_TEST

START_TEST(wrong_state)
{
    char *gid = h_begin();
    h_stmt_ok(gid, "pg1", "SELECT 1", NULL);
    h_resp r = h_commit(gid);
    H_EXPECT(r, 200, "commit");
    h_resp_clear(&r);
    r = h_stmt(gid, "pg1", "SELECT 1", NULL);
    expect_error(&r, 409, "wrong_state", "statement after commit");
    h_resp_clear(&r);
    /* The state is answered before the participant or the SQL is looked
     * at, as for a gid no longer in memory (which answers 409 whatever the
     * body names). */
    r = h_stmt(gid, "pg9", "SELECT 1", NULL);
    expect_error(&r, 409, "wrong_state", "statement for an unknown participant after commit");
    h_resp_clear(&r);
    r = h_stmt(gid, "pg1", "COMMIT", NULL);
    expect_error(&r, 409, "wrong_state", "transaction control after commit");
    h_resp_clear(&r);
    free(gid);
}
END_TEST

START_TEST(body_too_large)
{
    /* 8 MiB of valid JSON: far over any sane request limit */
    size_t n = 8u << 20;
    char *big = xmalloc(n + 64);
    int off = snprintf(big, 64, "{\"protocol\":\"2pc\",\"pad\":\"");
    memset(big + off, 'x', n);
    strcpy(big + off + n, "\"}");
    h_resp r = post_raw("/v1/transactions", big);
    expect_error(&r, 413, "body_too_large", "8 MiB begin");
    h_resp_clear(&r);

    char *gid = h_begin();
    char *path = xasprintf("/v1/transactions/%s/statements", gid);
    off = snprintf(big, 64, "{\"participant\":\"pg1\",\"sql\":\"SELECT '");
    memset(big + off, 'y', n);
    strcpy(big + off + n, "'\"}");
    r = post_raw(path, big);
    expect_error(&r, 413, "body_too_large", "8 MiB statement");
    h_resp_clear(&r);
    /* still usable */
    h_stmt_ok(gid, "pg1", "SELECT 1", NULL);
    r = h_commit(gid);
    H_EXPECT(r, 200, "commit after 413");
    h_resp_clear(&r);
    free(path);
    free(gid);
    free(big);
}
END_TEST

START_TEST(transaction_control_refused)
{
    h_set_balance(1, 1201, 0);
    char *gid = h_begin();
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1201", NULL);
    const char *refused[] = {
        "COMMIT",
        "commit;",
        "  ROLLBACK",
        "/* sneaky */ rollback",
        "-- comment\nEND",
        "ABORT",
        "BEGIN",
        "START TRANSACTION",
        "PREPARE TRANSACTION 'x'",
        "COMMIT PREPARED 'x'",
        "ROLLBACK PREPARED 'x'",
        /* PostgreSQL ends a "--" comment at a carriage return: this one runs
         * COMMIT WORK there, committing the branch outside 2PC, if let through */
        "-- x\rCOMMIT\nWORK",
    };
    for (size_t k = 0; k < ARRAY_LEN(refused); k++) {
        h_resp r = h_stmt(gid, "pg1", refused[k], NULL);
        expect_error(&r, 400, "transaction_control", refused[k]);
        h_resp_clear(&r);
    }
    /* the copy protocol: refused too (it took the session out of the
     * pipeline: 503, the branch lost, every idle pooled session closed) */
    const char *copies[] = {"COPY accounts FROM STDIN", "copy (SELECT 1) TO stdout"};
    for (size_t k = 0; k < ARRAY_LEN(copies); k++) {
        h_resp r = h_stmt(gid, "pg1", copies[k], NULL);
        expect_error(&r, 400, "copy_not_supported", copies[k]);
        h_resp_clear(&r);
    }
    /* refused, not run: the branch is intact and commits once */
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1201", NULL);
    h_resp r = h_commit(gid);
    H_EXPECT(r, 200, "commit after refused statements");
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, 1201), 2);
    free(gid);
}
END_TEST

START_TEST(participant_unreachable)
{
    h_set_balance(1, 1301, 10);
    ck_assert_int_eq(h_cluster("kill", "agent3", NULL), 0);
    char *gid = h_begin();
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1301", NULL);
    h_resp r = h_stmt(gid, "pg3", "SELECT 1", NULL);
    expect_error(&r, 503, "participant_unreachable", "statement for a dead agent");
    h_resp_clear(&r);
    h_discard(gid);

    /* one-shot touching the dead agent: aborted, nothing applied */
    r = h_req("POST", "/v1/transactions",
              json_pack("{s:s,s:b,s:[{s:s,s:[{s:s}]},{s:s,s:[{s:s}]}]}", "protocol", "2pc",
                        "commit", 1, "branches", "participant", "pg1", "statements", "sql",
                        "UPDATE accounts SET balance = balance + 1 WHERE id = 1301",
                        "participant", "pg3", "statements", "sql", "SELECT 1"));
    ck_assert_msg(r.status == 503 || r.status == 409, "one-shot with a dead agent: %s",
                  h_desc(&r));
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, 1301), 10);

    ck_assert_int_eq(h_cluster("start", "agent3", NULL), 0);
    h_test_setup(); /* waits until agent3 answers /healthz */
    gid = h_begin();
    h_stmt_ok(gid, "pg3", "SELECT 1", NULL);
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1301", NULL);
    r = h_commit(gid);
    H_EXPECT(r, 200, "commit after agent3 came back");
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, 1301), 11);
    free(gid);
}
END_TEST

/* A statement the agent refuses before running it (here 413: agent2 restarted
 * with a --max-body below the forwarded body) is the client's to correct: the
 * transaction stays usable. When it was the first statement for that
 * participant, the branch never began at the agent, so the commit must leave
 * it out instead of asking the agent to prepare a gid it never saw (which
 * votes no: "unknown branch"). Too many params are refused by the coordinator
 * itself, before any branch is opened. */
/* A statement for which agent pg2 cannot begin a branch (its one branch
 * connection is held: 503 pool_exhausted after its 5 s wait) did nothing
 * there, and its answer says "ask again": the client may, with the same
 * "seq" (the number of a call that did not run is not used up), and the
 * transaction stays usable and commits. Before, the same answer made the
 * transaction rollback-only. */
START_TEST(busy_agent_before_a_branch_begins_leaves_the_transaction_usable)
{
    h_set_balance(1, 1461, 10);
    h_set_balance(2, 1462, 10);
    ck_assert_int_eq(h_cluster("stop", "agent2", NULL), 0);
    ck_assert_int_eq(h_cluster("start", "agent2", "--", "--pool-size", "2", NULL), 0);
    char *holder = h_begin();
    h_stmt_ok(holder, "pg2", "SELECT 1", NULL); /* takes the one branch connection */
    char *gid = h_begin();
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1461", NULL);
    static const char credit[] = "UPDATE accounts SET balance = balance + 1 WHERE id = 1462";
    h_resp r = h_stmt_seq(gid, "pg2", credit, NULL, 1);
    expect_error(&r, 503, "pool_exhausted", "a statement whose branch finds no connection");
    h_resp_clear(&r);
    h_commit_ok(holder, "commit of the transaction holding the connection");
    r = h_stmt_seq(gid, "pg2", credit, NULL, 1);
    H_EXPECT(r, 200, "the statement asked again (same seq) once a connection is free");
    h_resp_clear(&r);
    h_commit_ok(gid, "commit after the busy answer");
    ck_assert_int_eq(h_balance(1, 1461), 11);
    ck_assert_int_eq(h_balance(2, 1462), 11);
    ck_assert_int_eq(h_cluster("stop", "agent2", NULL), 0);
    ck_assert_int_eq(h_cluster("start", "agent2", NULL), 0);
    h_test_setup();
}
END_TEST

START_TEST(refused_first_statement_leaves_no_branch)
{
    h_set_balance(1, 1451, 10);
    char *gid = h_begin();
    json_t *many = json_array();
    for (int i = 0; i < 65536; i++)
        json_array_append_new(many, json_integer(0));
    h_resp r = h_stmt(gid, "pg1", "SELECT 1", many);
    expect_error(&r, 400, "invalid_field", "65536 params");
    h_resp_clear(&r);

    ck_assert_int_eq(h_cluster("stop", "agent2", NULL), 0);
    ck_assert_int_eq(h_cluster("start", "agent2", "--", "--max-body", "1024", NULL), 0);
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1451", NULL);
    char big[2048];
    memset(big, 'x', sizeof(big));
    memcpy(big, "SELECT 1 /* ", 12);
    memcpy(big + sizeof(big) - 4, " */", 4);
    r = h_stmt(gid, "pg2", big, NULL);
    expect_error(&r, 413, "body_too_large", "a statement over agent2's --max-body");
    h_resp_clear(&r);
    r = h_commit(gid);
    H_EXPECT(r, 200, "commit after pg2's only statement was refused");
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, 1451), 11);
    r = h_get("/v1/transactions/%s", gid);
    H_EXPECT(r, 200, "status of the committed transaction");
    json_t *brs = json_object_get(r.json, "branches");
    size_t i;
    json_t *b;
    bool seen = false;
    json_array_foreach(brs, i, b) {
        if (strcmp(h_str(b, "participant"), "pg2") == 0) {
            ck_assert_str_eq(h_str(b, "state"), "read_only");
            seen = true;
        }
    }
    ck_assert_msg(seen, "no pg2 branch in %s", h_desc(&r));
    h_resp_clear(&r);
    free(gid);

    /* After a statement ran on pg2, a refused one leaves that branch as it
     * was: it is prepared and committed with the rest. */
    h_set_balance(2, 1452, 10);
    gid = h_begin();
    h_stmt_ok(gid, "pg2", "UPDATE accounts SET balance = balance + 1 WHERE id = 1452", NULL);
    r = h_stmt(gid, "pg2", big, NULL);
    expect_error(&r, 413, "body_too_large", "a refused statement after one that ran");
    h_resp_clear(&r);
    r = h_commit(gid);
    H_EXPECT(r, 200, "commit after a refused statement on a begun branch");
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(2, 1452), 11);
    free(gid);

    ck_assert_int_eq(h_cluster("stop", "agent2", NULL), 0);
    ck_assert_int_eq(h_cluster("start", "agent2", NULL), 0);
    h_test_setup();
}
END_TEST

/* An agent that accepts the connection and never answers (stopped with
 * SIGSTOP): the statement gives up after the transaction's time plus the
 * agent timeout (2 s + 10 s here) with 503 participant_unreachable, the
 * transaction aborts, and once the agent runs again nothing of it is left. */
START_TEST(participant_hangs)
{
    h_set_balance(1, 1311, 10);
    char *gid = h_begin_timeout(2000);
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1311", NULL);
    ck_assert_int_eq(h_cluster("pause", "agent3", NULL), 0);
    h_resp r = h_stmt(gid, "pg3", "SELECT 1", NULL);
    ck_assert_int_eq(h_cluster("resume", "agent3", NULL), 0);
    expect_error(&r, 503, "participant_unreachable", "statement for a stopped agent");
    ck_assert_str_eq(h_str(json_object_get(r.json, "error"), "participant"), "pg3");
    h_resp_clear(&r);
    r = h_commit(gid);
    H_EXPECT(r, 409, "commit after the agent did not answer");
    ck_assert_str_eq(h_str(r.json, "outcome"), "aborted");
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, 1311), 10);
    /* the statement agent3 received while stopped may have opened a branch
     * there: the coordinator's rollback (resolver) or its idle timeout ends it */
    long long open = count_drops_to_zero(3, 300, "SELECT count(*) FROM pg_stat_activity WHERE "
                                                 "application_name LIKE 'txagent pg3 %' AND "
                                                 "state LIKE 'idle in transaction%'");
    ck_assert_msg(open == 0, "agent3 still holds an open transaction 30 s after resuming");
    free(gid);
}
END_TEST

/* Wait (up to 10 s) for gid to reach state; false if it did not. */
static bool reaches_state(const char *gid, const char *state)
{
    for (int k = 0; k < 100; k++) {
        h_resp r = h_get("/v1/transactions/%s", gid);
        bool there = r.status == 200 && strcmp(h_str(r.json, "state"), state) == 0;
        h_resp_clear(&r);
        if (there)
            return true;
        sleep_ms(100, NULL);
    }
    return false;
}

/* --max-unfinished: the transaction past the limit is refused with 503
 * too_many_transactions, in both forms, and nothing of it runs; once one of
 * the unfinished ones is rolled back, a begin works again. */
START_TEST(too_many_unfinished_transactions)
{
    ck_assert_int_eq(h_cluster("stop", "coordinator", NULL), 0);
    ck_assert_int_eq(h_cluster("start", "coordinator", "--", "--max-unfinished", "2", NULL), 0);
    h_set_balance(1, 1811, 10);
    char *a = h_begin(), *b = h_begin();
    h_resp r = h_req("POST", "/v1/transactions", json_pack("{s:s}", "protocol", "2pc"));
    expect_error(&r, 503, "too_many_transactions", "a third begin with --max-unfinished 2");
    ck_assert_msg(strstr(h_str(json_object_get(r.json, "error"), "message"), "--max-unfinished"),
                  "%s", h_desc(&r));
    h_resp_clear(&r);
    r = h_req("POST", "/v1/transactions",
              json_pack("{s:s, s:b, s:[{s:s, s:[{s:s}]}]}", "protocol", "2pc", "commit", 1,
                        "branches", "participant", "pg1", "statements", "sql",
                        "UPDATE accounts SET balance = balance + 1 WHERE id = 1811"));
    expect_error(&r, 503, "too_many_transactions", "a one-shot commit past the limit");
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(1, 1811), 10);
    h_discard(a);
    char *c = h_begin(); /* asserts 201 */
    h_discard(b);
    h_discard(c);
}
END_TEST

/* PostgreSQL down behind its agent: a statement there answers 503
 * database_unavailable naming the participant (the agent's own error, passed
 * on), the transaction is rollback-only, and its commit aborts. pg3 is
 * started again before anything is asserted, so that a failure here leaves
 * the next tests a whole cluster. */
START_TEST(database_down_behind_its_agent)
{
    h_set_balance(1, 1821, 10);
    char *gid = h_begin();
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1821", NULL);
    ck_assert_int_eq(h_cluster("stop", "pg3", NULL), 0);
    h_resp st = h_stmt(gid, "pg3", "SELECT 1", NULL);
    h_resp cm = h_commit(gid);
    int started = h_cluster("start", "pg3", NULL);
    ck_assert_int_eq(started, 0);
    expect_error(&st, 503, "database_unavailable", "a statement while pg3 is down");
    ck_assert_str_eq(h_str(json_object_get(st.json, "error"), "participant"), "pg3");
    H_EXPECT(cm, 409, "commit after pg3's statement failed");
    ck_assert_str_eq(h_str(cm.json, "outcome"), "aborted");
    ck_assert_msg(strstr(h_str(cm.json, "reason"), "pg3"), "%s", h_desc(&cm));
    h_resp_clear(&st);
    h_resp_clear(&cm);
    ck_assert_int_eq(h_balance(1, 1821), 10);
    free(gid);
}
END_TEST

/* What a client's statement makes PostgreSQL say (RAISE NOTICE, WARNING)
 * never reaches the agent's log as it is: libpq's default notice processor
 * wrote it raw to stderr, so a client could write any lines it liked there
 * (a forged log line), as many as it liked. */
START_TEST(client_notices_stay_out_of_the_log)
{
    char *gid = h_begin();
    h_stmt_ok(gid, "pg1",
              "DO $$BEGIN RAISE NOTICE 'txcoord-notice-%', 1; "
              "RAISE WARNING E'txcoord-warning-%\\n2026-01-01T00:00:00.000Z txagent[1] ERROR forged', 2; END$$",
              NULL);
    h_resp r = h_commit(gid);
    H_EXPECT(r, 200, "commit");
    h_resp_clear(&r);
    ck_assert_msg(!h_log_contains("agent1", "txcoord-notice-1"), "a client's NOTICE is in agent1.log");
    ck_assert_msg(!h_log_contains("agent1", "txcoord-warning-2"), "a client's WARNING is in agent1.log");
    ck_assert_msg(!h_log_contains("agent1", "ERROR forged"), "a forged line is in agent1.log");
    free(gid);
}
END_TEST

/* The last_error of participant's branch of gid in the in-doubt view
 * (copied into buf; "" when none). */
static void branch_last_error(const char *gid, const char *participant, char *buf, size_t size)
{
    buf[0] = '\0';
    h_resp r = h_get("/v1/transactions?state=in-doubt");
    size_t i, j;
    json_t *t, *b;
    json_array_foreach(json_object_get(r.json, "transactions"), i, t) {
        if (strcmp(h_str(t, "gid"), gid) != 0)
            continue;
        json_array_foreach(json_object_get(t, "branches"), j, b) {
            if (strcmp(h_str(b, "participant"), participant) == 0)
                snprintf(buf, size, "%s", h_str(b, "last_error"));
        }
    }
    h_resp_clear(&r);
}

/* A COMMIT PREPARED that PostgreSQL keeps waiting: pg3 gets a synchronous
 * standby that does not exist after its branch prepared (the branch set
 * synchronous_commit = local for itself, so its PREPARE did not wait). The
 * decision is durable, so the client hears committed; pg3's COMMIT
 * PREPARED waits, holding its branch. The coordinator's re-sends must hear
 * 503 branch_busy from the agent within its call timeout, not park one more
 * agent thread each behind that branch (they used to: every re-send ended
 * in the coordinator's timeout). Once the standby setting is gone, the
 * waiting COMMIT PREPARED returns and the next re-send finishes the
 * transaction. */
START_TEST(commit_prepared_held_by_postgresql)
{
    ck_assert_int_eq(h_cluster("stop", "coordinator", NULL), 0);
    ck_assert_int_eq(h_cluster("start", "coordinator", "--", "--agent-timeout-ms", "7000", NULL), 0);
    h_set_balance(1, 1831, 10);
    h_set_balance(3, 1833, 10);
    char *gid = h_begin();
    h_stmt_ok(gid, "pg1", "UPDATE accounts SET balance = balance + 1 WHERE id = 1831", NULL);
    h_stmt_ok(gid, "pg3", "SET LOCAL synchronous_commit = local", NULL);
    h_stmt_ok(gid, "pg3", "UPDATE accounts SET balance = balance + 1 WHERE id = 1833", NULL);
    h_sql(3, "ALTER SYSTEM SET synchronous_standby_names = 'txcoord_no_such_standby'");
    h_sql(3, "SELECT pg_reload_conf()");
    h_resp cm = h_commit(gid); /* returns after pg3's first COMMIT times out (7 s) */
    char last[512] = "";
    for (int k = 0; k < 300 && !strstr(last, "branch_busy"); k++) {
        sleep_ms(100, NULL);
        branch_last_error(gid, "pg3", last, sizeof(last));
    }
    h_sql(3, "ALTER SYSTEM RESET synchronous_standby_names");
    h_sql(3, "SELECT pg_reload_conf()");
    H_EXPECT(cm, 200, "commit with pg3's COMMIT PREPARED held");
    ck_assert_str_eq(h_str(cm.json, "outcome"), "committed");
    h_resp_clear(&cm);
    ck_assert_msg(strstr(last, "branch_busy"), "pg3's re-sent COMMITs never heard busy; last "
                  "error: %s", last);
    bool committed = false; /* the resolver's backoff may have grown to ~13 s by now */
    for (int k = 0; k < 4 && !committed; k++)
        committed = reaches_state(gid, "committed");
    ck_assert_msg(committed, "%s: never committed once the standby setting was gone", gid);
    ck_assert_int_eq(h_balance(1, 1831), 11);
    ck_assert_int_eq(h_balance(3, 1833), 11);
    free(gid);
}
END_TEST

/* A participant whose URL is no agent (here: the coordinator itself, 404
 * for every agent path). Nothing can run there, so: a statement is 502
 * agent_error; a rollback, a timeout or an aborted commit ends the
 * transaction instead of re-sending a ROLLBACK that the same URL refuses for
 * ever (it stayed "aborting", held against --max-unfinished); a one-shot
 * branch stopped there makes the transaction rollback-only (its commit
 * would have applied pg1's branch alone). */
START_TEST(participant_that_is_no_agent)
{
    char arg[200];
    snprintf(arg, sizeof(arg), "pgx=%s", h_coord_url());
    ck_assert_int_eq(h_cluster("stop", "coordinator", NULL), 0);
    ck_assert_int_eq(h_cluster("start", "coordinator", "--", "--participant", arg, NULL), 0);
    h_set_balance(1, 1801, 10);
    const char *credit = "UPDATE accounts SET balance = balance + $1 WHERE id = $2";

    char *gid = h_begin();
    h_stmt_ok(gid, "pg1", credit, json_pack("[ii]", 1, 1801));
    h_resp r = h_stmt(gid, "pgx", "SELECT 1", NULL);
    expect_error(&r, 502, "agent_error", "statement to a participant that is no agent");
    h_resp_clear(&r);
    r = h_rollback(gid);
    H_EXPECT(r, 200, "rollback");
    h_resp_clear(&r);
    ck_assert_msg(reaches_state(gid, "aborted"), "%s: rolled back, but never aborted", gid);
    free(gid);

    for (int commit = 0; commit < 2; commit++) {
        json_t *body = json_pack("{s:s, s:b, s:[{s:s, s:[{s:s, s:[ii]}]}, {s:s, s:[{s:s}]}]}",
                                 "protocol", "2pc", "commit", commit, "branches", "participant",
                                 "pg1", "statements", "sql", credit, "params", 1, 1801,
                                 "participant", "pgx", "statements", "sql", "SELECT 1");
        r = h_req("POST", "/v1/transactions", body);
        if (commit) {
            H_EXPECT(r, 409, "one-shot commit with a branch on pgx");
            ck_assert_str_eq(h_str(r.json, "outcome"), "aborted");
        } else {
            H_EXPECT(r, 201, "one-shot without commit, a branch on pgx");
            ck_assert_msg(strstr(h_str(r.json, "rollback_only_reason"), "pgx"), "%s",
                          h_desc(&r));
        }
        gid = xstrdup(h_str(r.json, "gid"));
        h_resp_clear(&r);
        if (!commit) {
            r = h_commit(gid);
            H_EXPECT(r, 409, "commit of the one-shot stopped on pgx");
            ck_assert_str_eq(h_str(r.json, "outcome"), "aborted");
            h_resp_clear(&r);
        }
        ck_assert_msg(reaches_state(gid, "aborted"), "%s: never aborted", gid);
        free(gid);
    }
    ck_assert_int_eq(h_balance(1, 1801), 10);
    ck_assert_int_eq(h_prepared_count(1), 0);
    ck_assert_int_eq(h_cluster("stop", "coordinator", NULL), 0);
    ck_assert_int_eq(h_cluster("start", "coordinator", NULL), 0);
    h_test_setup();
}
END_TEST

/* Deferred triggers run at PREPARE TRANSACTION, which the agent sends alone
 * for an interactive branch: one that waits (here a sleep; a lock does the
 * same) after the branch lifted its statement_timeout is cancelled 2 s past
 * the branch's bound, as a statement batch would be, and the commit aborts
 * with nothing left running or prepared. */
START_TEST(prepare_bounded_by_branch_timeout)
{
    h_sql(1, "CREATE TABLE IF NOT EXISTS deferred_sleep (x int)");
    h_sql(1, "CREATE OR REPLACE FUNCTION deferred_sleep_fn() RETURNS trigger LANGUAGE plpgsql "
             "AS $$BEGIN PERFORM pg_sleep(30); RETURN NULL; END$$");
    h_sql(1, "DROP TRIGGER IF EXISTS deferred_sleep_tr ON deferred_sleep");
    h_sql(1, "CREATE CONSTRAINT TRIGGER deferred_sleep_tr AFTER INSERT ON deferred_sleep "
             "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION deferred_sleep_fn()");
    char *gid = h_begin_timeout(3000);
    h_stmt_ok(gid, "pg1", "SET LOCAL statement_timeout = 0", NULL);
    h_stmt_ok(gid, "pg1", "INSERT INTO deferred_sleep VALUES (1)", NULL);
    int64_t t0 = now_ms();
    h_resp r = h_commit(gid);
    H_EXPECT(r, 409, "commit whose PREPARE sleeps in a deferred trigger");
    ck_assert_str_eq(h_str(r.json, "outcome"), "aborted");
    /* the agent cancelled it (a no vote, 57014), before the coordinator's
     * call to it timed out (--agent-timeout-ms, 10 s) */
    ck_assert_msg(strstr(h_str(r.json, "reason"), "57014"), "%s", h_desc(&r));
    h_resp_clear(&r);
    long long sleeping = count_drops_to_zero(1, 30, "SELECT count(*) FROM pg_stat_activity WHERE "
                                                    "wait_event = 'PgSleep' AND application_name "
                                                    "LIKE 'txagent pg1 %'");
    ck_assert_msg(sleeping == 0, "the PREPARE still sleeps %lld ms after the commit began",
                  (long long)(now_ms() - t0));
    ck_assert_int_eq(h_sql_ll(1, "SELECT count(*) FROM deferred_sleep"), 0);
    ck_assert_int_eq(h_prepared_count(1), 0);
    free(gid);
}
END_TEST

TCase *tc_errors(void)
{
    TCase *tc = h_tcase("errors", 180);
    tcase_add_test(tc, malformed_json);
    tcase_add_test(tc, bad_fields);
    tcase_add_test(tc, unknown_gid_and_path);
    tcase_add_test(tc, unknown_participant);
    tcase_add_test(tc, sql_error);
    tcase_add_test(tc, wrong_state);
    tcase_add_test(tc, body_too_large);
    tcase_add_test(tc, transaction_control_refused);
    tcase_add_test(tc, participant_unreachable);
    tcase_add_test(tc, participant_hangs);
    tcase_add_test(tc, refused_first_statement_leaves_no_branch);
    tcase_add_test(tc, busy_agent_before_a_branch_begins_leaves_the_transaction_usable);
    tcase_add_test(tc, participant_that_is_no_agent);
    tcase_add_test(tc, too_many_unfinished_transactions);
    tcase_add_test(tc, database_down_behind_its_agent);
    tcase_add_test(tc, commit_prepared_held_by_postgresql);
    tcase_add_test(tc, client_notices_stay_out_of_the_log);
    tcase_add_test(tc, prepare_bounded_by_branch_timeout);
    return tc;
}
