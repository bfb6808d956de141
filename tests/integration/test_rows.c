/*
 * test_rows.c - what a statement answers: command tag, row_count, rows as
 * objects keyed by column name with JSON types that fit (integers, booleans,
 * null, numeric as string, json/jsonb embedded, reals in their shortest exact
 * form; a repeated column name gets a "_2" key), and parameters that always
 * travel as values (never as SQL text), a real as the digits the client sent.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "util.h"

static json_t *first_row(h_resp *r)
{
    json_t *rows = json_object_get(r->json, "rows");
    ck_assert_msg(json_is_array(rows) && json_array_size(rows) >= 1, "no rows: %s", h_desc(r));
    json_t *row = json_array_get(rows, 0);
    ck_assert_msg(json_is_object(row), "row is not an object: %s", h_desc(r));
    return row;
}

START_TEST(types)
{
    char *gid = h_begin();
    h_resp r = h_stmt(gid, "pg1",
                      "SELECT 1::int2 AS a, 2::int4 AS b, 9007199254740993::int8 AS c, "
                      "-42::int8 AS neg, true AS t, false AS f, NULL::int AS n, "
                      "12.50::numeric AS num, 123456789012345678901234567890.5::numeric AS bignum, "
                      "'{\"k\":[1,2,null],\"s\":\"v\"}'::jsonb AS jb, '[1,\"x\"]'::json AS js, "
                      "'h\u00e9llo \"q\"'::text AS s, 1.5::float8 AS d, 'NaN'::float8 AS nan, "
                      "NULL::text AS ns, NULL::jsonb AS nj",
                      NULL);
    H_EXPECT(r, 200, "typed select");
    ck_assert_str_eq(h_str(r.json, "command"), "SELECT 1");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "row_count")), 1);
    json_t *row = first_row(&r);
    json_t *v;

    v = json_object_get(row, "a");
    ck_assert_msg(json_is_integer(v) && json_integer_value(v) == 1, "int2: %s", h_desc(&r));
    v = json_object_get(row, "b");
    ck_assert_msg(json_is_integer(v) && json_integer_value(v) == 2, "int4: %s", h_desc(&r));
    v = json_object_get(row, "c");
    ck_assert_msg(json_is_integer(v) && json_integer_value(v) == 9007199254740993LL,
                  "int8 beyond 2^53 must stay exact: %s", h_desc(&r));
    v = json_object_get(row, "neg");
    ck_assert_msg(json_is_integer(v) && json_integer_value(v) == -42, "negative: %s", h_desc(&r));
    ck_assert_msg(json_is_true(json_object_get(row, "t")), "true: %s", h_desc(&r));
    ck_assert_msg(json_is_false(json_object_get(row, "f")), "false: %s", h_desc(&r));
    v = json_object_get(row, "n");
    ck_assert_msg(v && json_is_null(v), "NULL must be present as null: %s", h_desc(&r));
    ck_assert_str_eq(h_str(row, "num"), "12.50");
    ck_assert_str_eq(h_str(row, "bignum"), "123456789012345678901234567890.5");

    v = json_object_get(row, "jb");
    ck_assert_msg(json_is_object(v), "jsonb must be embedded: %s", h_desc(&r));
    json_t *k = json_object_get(v, "k");
    ck_assert_msg(json_is_array(k) && json_array_size(k) == 3 &&
                      json_integer_value(json_array_get(k, 1)) == 2 &&
                      json_is_null(json_array_get(k, 2)),
                  "jsonb content: %s", h_desc(&r));
    ck_assert_str_eq(h_str(v, "s"), "v");
    v = json_object_get(row, "js");
    ck_assert_msg(json_is_array(v) && json_array_size(v) == 2 &&
                      strcmp(json_string_value(json_array_get(v, 1)), "x") == 0,
                  "json must be embedded: %s", h_desc(&r));

    ck_assert_str_eq(h_str(row, "s"), "h\u00e9llo \"q\"");
    v = json_object_get(row, "d");
    ck_assert_msg(json_is_number(v) && fabs(json_number_value(v) - 1.5) < 1e-12, "float8: %s",
                  h_desc(&r));
    ck_assert_str_eq(h_str(row, "nan"), "NaN");
    ck_assert_msg(json_is_null(json_object_get(row, "ns")), "text NULL: %s", h_desc(&r));
    ck_assert_msg(json_is_null(json_object_get(row, "nj")), "jsonb NULL: %s", h_desc(&r));
    h_resp_clear(&r);

    /* several rows, in order, keyed by column name */
    r = h_stmt(gid, "pg2", "SELECT g AS id, g % 2 = 0 AS even FROM generate_series(1, 3) AS g ORDER BY g",
               NULL);
    H_EXPECT(r, 200, "three rows");
    ck_assert_str_eq(h_str(r.json, "command"), "SELECT 3");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "row_count")), 3);
    json_t *rows = json_object_get(r.json, "rows");
    ck_assert_int_eq(json_array_size(rows), 3);
    for (int i = 0; i < 3; i++) {
        json_t *row_i = json_array_get(rows, (size_t)i);
        ck_assert_int_eq(json_integer_value(json_object_get(row_i, "id")), i + 1);
        ck_assert_msg(json_is_boolean(json_object_get(row_i, "even")), "even: %s", h_desc(&r));
    }
    h_resp_clear(&r);

    /* no rows */
    r = h_stmt(gid, "pg3", "SELECT id FROM accounts WHERE false", NULL);
    H_EXPECT(r, 200, "empty select");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "row_count")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "rows")), 0);
    h_resp_clear(&r);

    h_discard(gid);
}
END_TEST

/* A join's repeated column names (a.id, b.id) and unnamed columns keep every
 * value: the later ones get "_2", "_3", ... keys (README, "Rows"). */
START_TEST(repeated_column_names)
{
    char *gid = h_begin();
    h_set_balance(1, 3001, 7);
    h_set_balance(1, 3002, 8);
    h_resp r = h_stmt(gid, "pg1",
                      "SELECT a.id, a.balance, b.id, b.balance, 1, 2 FROM accounts a "
                      "JOIN accounts b ON b.id = a.id + 1 WHERE a.id = $1",
                      json_pack("[i]", 3001));
    H_EXPECT(r, 200, "join with repeated names");
    json_t *row = first_row(&r);
    ck_assert_int_eq(json_object_size(row), 6);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "id")), 3001);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "balance")), 7);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "id_2")), 3002);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "balance_2")), 8);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "?column?")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "?column?_2")), 2);
    h_resp_clear(&r);
    h_discard(gid);
}
END_TEST

/* A result too big to return (the agent's --max-result-bytes, 32 MiB by
 * default) is refused with 422 result_too_large: the statement is cancelled
 * once its rows pass the limit, nothing is returned, the branch is failed,
 * so the commit aborts, and the agent serves the next transaction. */
static h_resp megabyte_rows(const char *gid, int n)
{
    return h_stmt(gid, "pg1", "SELECT g, repeat('x', 1000000) AS pad FROM generate_series(1, $1) g",
                  json_pack("[i]", n));
}

/* r (cleared here) is pg1's 422 result_too_large whose message names
 * `why`; then gid's commit aborts for that reason. Frees gid. */
static void expect_result_refused(h_resp *r, char *gid, const char *why)
{
    H_EXPECT(*r, 422, "a result too large");
    json_t *err = json_object_get(r->json, "error");
    ck_assert_str_eq(h_str(err, "code"), "result_too_large");
    ck_assert_str_eq(h_str(err, "participant"), "pg1");
    ck_assert_msg(strstr(h_str(err, "message"), why), "%s", h_desc(r));
    h_resp_clear(r);
    *r = h_commit(gid);
    H_EXPECT(*r, 409, "commit after a refused result");
    ck_assert_str_eq(h_str(r->json, "outcome"), "aborted");
    ck_assert_msg(strstr(h_str(r->json, "reason"), "pg1 failed"), "%s", h_desc(r));
    h_resp_clear(r);
    free(gid);
}

START_TEST(result_too_large)
{
    char *gid = h_begin();
    h_resp r = megabyte_rows(gid, 40);
    expect_result_refused(&r, gid, "--max-result-bytes");
    char *url = xasprintf("%s/metrics", h_agent_url(1));
    r = h_http("GET", url, NULL, 0);
    free(url);
    H_EXPECT(r, 200, "agent metrics");
    const char *m = strstr(r.body, "\ntxagent_results_too_large_total ");
    ck_assert_msg(m && atoll(m + strlen("\ntxagent_results_too_large_total ")) >= 1,
                  "no txagent_results_too_large_total >= 1 in:\n%s", r.body);
    h_resp_clear(&r);

    /* 4 MB is returned whole. */
    gid = h_begin();
    r = megabyte_rows(gid, 4);
    H_EXPECT(r, 200, "4 MB result");
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "rows")), 4);
    ck_assert_int_eq(strlen(h_str(first_row(&r), "pad")), 1000000);
    h_resp_clear(&r);
    h_commit_ok(gid, "commit");
}
END_TEST

/* The agent's --max-result-bytes counts the rows' JSON text, escapes
 * included: 12 MB of control characters are 72 MB as JSON (\u0001), over
 * the 32 MiB default, so the agent refuses them (422 result_too_large), the
 * branch fails, the commit aborts, and the agent serves the next statement. */
START_TEST(escaped_rows_count_as_json)
{
    char *gid = h_begin();
    h_resp r = h_stmt(gid, "pg1", "SELECT repeat(chr(1), 12 * 1024 * 1024) AS x", NULL);
    expect_result_refused(&r, gid, "--max-result-bytes");
    gid = h_begin();
    h_stmt_ok(gid, "pg1", "SELECT 1 AS one", NULL); /* the agent serves the next one */
    h_commit_ok(gid, "commit");
}
END_TEST

/* A result of many rows comes back whole and in order, with every value
 * mapped as for one row (escapes, reals, jsonb), and the branch goes on. */
START_TEST(many_rows)
{
    enum { N = 50000 };
    char *gid = h_begin();
    h_resp r = h_stmt(gid, "pg1",
                      "SELECT g AS id, E'r\\t\"' || g AS s, g / 4.0::float8 AS f, "
                      "jsonb_build_object('g', g, 'half', g / 2.0::float8) AS j "
                      "FROM generate_series(1, $1) g",
                      json_pack("[i]", N));
    H_EXPECT(r, 200, "many rows");
    ck_assert_str_eq(h_str(r.json, "command"), "SELECT 50000");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "row_count")), N);
    json_t *rows = json_object_get(r.json, "rows");
    ck_assert_int_eq(json_array_size(rows), N);
    for (size_t i = 0; i < N; i++) {
        json_t *row = json_array_get(rows, i);
        long long g = (long long)i + 1;
        ck_assert_msg(json_integer_value(json_object_get(row, "id")) == g, "row %zu out of order",
                      i);
        char want[32];
        snprintf(want, sizeof(want), "r\t\"%lld", g);
        ck_assert_str_eq(h_str(row, "s"), want);
        ck_assert(json_real_value(json_object_get(row, "f")) == (double)g / 4.0);
        json_t *j = json_object_get(row, "j");
        ck_assert(json_integer_value(json_object_get(j, "g")) == g);
        ck_assert(json_number_value(json_object_get(j, "half")) == (double)g / 2.0);
    }
    /* As the agent wrote it: compact, keys in column order, jsonb as
     * PostgreSQL writes it. */
    const char *head = "{\"command\":\"SELECT 50000\",\"row_count\":50000,\"rows\":[{\"id\":1,"
                       "\"s\":\"r\\t\\\"1\",\"f\":0.25,\"j\":{\"g\": 1, \"half\": 0.5}},{\"id\":2,";
    ck_assert_msg(strncmp(r.body, head, strlen(head)) == 0, "%.200s", r.body);
    h_resp_clear(&r);
    h_stmt_ok(gid, "pg1", "SELECT 1 AS one", NULL);
    h_commit_ok(gid, "commit");
}
END_TEST

START_TEST(params)
{
    char *gid = h_begin();
    h_resp r = h_stmt(gid, "pg1",
                      "SELECT $1::int + 1 AS x, $2::text AS s, $3::bool AS b, $4::int IS NULL AS isnull, "
                      "$5::jsonb AS j, $6::numeric * 2 AS num, $7::float8 AS d",
                      json_pack("[isbno s f]", 41, "it's; DROP TABLE accounts; --", 1,
                                json_pack("{s:[i,i]}", "a", 1, 2), "0.25", 2.5));
    H_EXPECT(r, 200, "parameters");
    json_t *row = first_row(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "x")), 42);
    ck_assert_str_eq(h_str(row, "s"), "it's; DROP TABLE accounts; --");
    ck_assert_msg(json_is_true(json_object_get(row, "b")), "bool param: %s", h_desc(&r));
    ck_assert_msg(json_is_true(json_object_get(row, "isnull")), "null param: %s", h_desc(&r));
    json_t *j = json_object_get(row, "j");
    ck_assert_msg(json_is_object(j) && json_array_size(json_object_get(j, "a")) == 2,
                  "object param as jsonb: %s", h_desc(&r));
    ck_assert_str_eq(h_str(row, "num"), "0.50");
    ck_assert_msg(fabs(json_number_value(json_object_get(row, "d")) - 2.5) < 1e-12, "float: %s",
                  h_desc(&r));
    h_resp_clear(&r);

    /* DML answers: command tag and affected rows, RETURNING rows */
    h_set_balance(2, 2001, 5);
    h_set_balance(2, 2002, 5);
    r = h_stmt(gid, "pg2",
               "UPDATE accounts SET balance = balance + $1 WHERE id = ANY($2::int[]) "
               "RETURNING id, balance",
               json_pack("[is]", 10, "{2001,2002}"));
    H_EXPECT(r, 200, "update returning");
    ck_assert_str_eq(h_str(r.json, "command"), "UPDATE 2");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "row_count")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(first_row(&r), "balance")), 15);
    h_resp_clear(&r);

    /* wrong parameter count is an SQL error */
    r = h_stmt(gid, "pg3", "SELECT $1::int AS x", json_pack("[ii]", 1, 2));
    ck_assert_msg(r.status == 422 || r.status == 400, "too many params: %s", h_desc(&r));
    h_resp_clear(&r);

    r = h_rollback(gid);
    h_resp_clear(&r);
    ck_assert_int_eq(h_balance(2, 2001), 5);
    free(gid);
}
END_TEST

/* A client's 19.99 is stored as 19.99 in numeric and jsonb columns and
 * reads back as 19.99 (jansson alone printed every double with 17 digits:
 * 19.989999999999998, which a numeric column kept). The body is sent as
 * the client's own text and the answer checked as text. */
START_TEST(real_params_keep_their_digits)
{
    char *gid = h_begin();
    char *url = xasprintf("%s/v1/transactions/%s/statements", h_coord_url(), gid);
    const char *body =
        "{\"participant\":\"pg1\",\"sql\":\"SELECT $1::numeric AS n, $2::text AS t, "
        "$3::jsonb AS j, $4::float8 AS f, 19.99::float4 AS f4, 0.1::float8 + 0.2 AS f17, "
        "5::float8 AS five, $5::int AS i\",\"params\":[19.99, 0.1, {\"price\":19.99}, 0.1, 5.0]}";
    h_resp r = h_http("POST", url, body, strlen(body));
    H_EXPECT(r, 200, "real parameters");
    ck_assert_msg(strstr(r.body, "\"n\":\"19.99\",\"t\":\"0.1\",\"j\":{\"price\": 19.99},"
                                 "\"f\":0.1,\"f4\":19.99,\"f17\":0.30000000000000004,"
                                 "\"five\":5.0,\"i\":5}") != NULL,
                  "row text: %s", r.body);
    h_resp_clear(&r);
    /* a jsonb number is exact (numeric): every digit comes back, and an
     * integer past 64 bits stays a number */
    r = h_stmt(gid, "pg1", "SELECT '{\"amt\": 12345678901234567.89, \"n\": "
                           "123456789012345678901}'::jsonb AS j", NULL);
    H_EXPECT(r, 200, "exact jsonb numbers");
    ck_assert_msg(strstr(r.body, "\"amt\": 12345678901234567.89") &&
                      strstr(r.body, "\"n\": 123456789012345678901"),
                  "row text: %s", r.body);
    h_resp_clear(&r);
    free(url);
    r = h_rollback(gid);
    h_resp_clear(&r);
    free(gid);
}
END_TEST

/* A one-shot answer (without commit) holds every statement's rows until it
 * is sent: their sum is capped like one agent answer (64 MiB). Three results
 * of 30 MB each: the third no longer fits, its branch fails with 422
 * result_too_large, and the transaction cannot commit. */
START_TEST(one_shot_results_capped_in_all)
{
    json_t *stmts = json_array();
    for (int i = 0; i < 3; i++)
        json_array_append_new(stmts, json_pack("{s:s}", "sql", "SELECT repeat('x', 30000000) AS pad"));
    h_resp r = h_req("POST", "/v1/transactions",
                     json_pack("{s:s,s:i,s:[{s:s,s:o}]}", "protocol", "2pc", "timeout_ms", 60000,
                               "branches", "participant", "pg1", "statements", stmts));
    H_EXPECT(r, 201, "one-shot without commit, 90 MB of results");
    json_t *b0 = json_array_get(json_object_get(r.json, "branches"), 0);
    ck_assert_uint_eq(json_array_size(json_object_get(b0, "results")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(b0, "status")), 422);
    ck_assert_str_eq(h_str(json_object_get(b0, "error"), "code"), "result_too_large");
    char *gid = xstrdup(h_str(r.json, "gid"));
    h_resp_clear(&r);
    r = h_commit(gid);
    H_EXPECT(r, 409, "commit after a result that could not be returned");
    ck_assert_str_eq(h_str(r.json, "outcome"), "aborted");
    h_resp_clear(&r);
    free(gid);
}
END_TEST

TCase *tc_rows(void)
{
    TCase *tc = h_tcase("rows", 120);
    tcase_add_test(tc, types);
    tcase_add_test(tc, params);
    tcase_add_test(tc, real_params_keep_their_digits);
    tcase_add_test(tc, repeated_column_names);
    tcase_add_test(tc, result_too_large);
    tcase_add_test(tc, escaped_rows_count_as_json);
    tcase_add_test(tc, many_rows);
    tcase_add_test(tc, one_shot_results_capped_in_all);
    return tc;
}
