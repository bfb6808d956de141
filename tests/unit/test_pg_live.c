/*
 * test_pg_live.c - pg.c against a real PostgreSQL, when one is given:
 *   TXCOORD_TEST_PG="host=127.0.0.1 port=7999 dbname=postgres user=postgres"
 * (needs max_prepared_transactions > 0). Without it the test is skipped (77).
 * Invariants checked: text params never become SQL; type mapping of real
 * results (a repeated column name keeps its value; the size estimate of a
 * result's JSON); the 2PC verbs and their command tags (a failed block "votes"
 * ROLLBACK); 42704 on a repeated finish; a terminated backend is conn_dead;
 * pg_exec_pipeline runs a batch in one go, stops at the first error (the rest
 * PGRES_PIPELINE_ABORTED, sqlstate of the real one kept), leaves the
 * connection usable outside pipeline mode, and reports a dead connection;
 * pg_exec_pipeline_prepare ends the batch with PREPARE TRANSACTION (skipped
 * after an error, not answered with its tag outside a block); the caller's
 * conninfo keywords win over our defaults, a forced application_name over
 * both. tests/unit/run_pg_live.sh starts a throwaway PostgreSQL for it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gid.h"
#include "log.h"
#include "pg.h"
#include "unit_util.h"

static const char *conninfo;
static PGconn *conn;

static void setup(void)
{
    log_init("test_pg_live", LOG_INFO);
    conn = pg_connect(conninfo, "pg1");
    ck_assert_ptr_nonnull(conn);
}

static void teardown(void)
{
    PQfinish(conn);
}

static long long h_count(PGconn *c, const char *sql, const char *const *params)
{
    pg_res r;
    ck_assert_msg(pg_exec(c, sql, params ? 1 : 0, params, &r), "%s: %s", sql, r.message);
    long long n = atoll(PQgetvalue(r.res, 0, 0));
    pg_res_clear(&r);
    return n;
}

static void exec_ok(const char *sql)
{
    pg_res r;
    ck_assert_msg(pg_exec(conn, sql, 0, NULL, &r), "%s: %s", sql, r.message);
    pg_res_clear(&r);
}

/* The "rows" of sql's result as pg_result_text writes them (caller frees). */
static char *rows_text(const char *sql)
{
    pg_res r;
    ck_assert_msg(pg_exec(conn, sql, 0, NULL, &r), "%s: %s", sql, r.message);
    size_t len;
    char *all = pg_result_text(r.res, &len);
    ck_assert_uint_eq(len, strlen(all));
    const char *rows = strstr(all, ",\"rows\":");
    ck_assert_ptr_nonnull(rows);
    rows += 8;
    char *s = xstrdup(rows);
    s[strlen(s) - 1] = '\0'; /* without the closing } */
    free(all);
    pg_res_clear(&r);
    return s;
}

START_TEST(test_types_and_params)
{
    const char *params[] = {"42", "it's; DROP TABLE x", NULL, "{\"a\":[1]}"};
    pg_res r;
    ck_assert(pg_exec(conn,
                      "SELECT $1::int AS i, $2::text AS t, $3::text AS n, $4::jsonb AS j, "
                      "true AS b, 1.5::float8 AS f, 'NaN'::float8 AS nan, 12.30::numeric AS num, "
                      "9223372036854775807::int8 AS big",
                      4, params, &r));
    ck_assert_int_eq(r.status, PGRES_TUPLES_OK);
    ck_assert_str_eq(r.command, "SELECT 1");
    size_t len;
    char *s = pg_result_text(r.res, &len);
    ck_assert_str_eq(s, "{\"command\":\"SELECT 1\",\"row_count\":1,\"rows\":[{\"i\":42,"
                        "\"t\":\"it's; DROP TABLE x\",\"n\":null,\"j\":{\"a\": [1]},\"b\":true,"
                        "\"f\":1.5,\"nan\":\"NaN\",\"num\":\"12.30\",\"big\":9223372036854775807}]}");
    ck_assert_uint_eq(len, strlen(s));
    free(s);
    pg_res_clear(&r);

    /* Repeated column names keep every value: "_2", "_3", ... suffixes that
     * skip the names of real columns; the keys stay in column order. */
    s = rows_text("SELECT 1 AS id, 2 AS id, 3 AS id_2, 4, 5, 6 AS \"?column?_2\", 7 AS id, "
                  "8 AS x, 9 AS x");
    ck_assert_str_eq(s, "[{\"id\":1,\"id_3\":2,\"id_2\":3,\"?column?\":4,\"?column?_3\":5,"
                        "\"?column?_2\":6,\"id_4\":7,\"x\":8,\"x_2\":9}]");
    free(s);

    /* A query without columns still has rows: empty objects. */
    s = rows_text("SELECT FROM generate_series(1, 2)");
    ck_assert_str_eq(s, "[{},{}]");
    free(s);
    s = rows_text("SELECT 1 WHERE false");
    ck_assert_str_eq(s, "[]");
    free(s);

    /* Multi-statement strings are refused by the extended protocol. */
    ck_assert(!pg_exec(conn, "SELECT 1; SELECT 2", 0, NULL, &r));
    ck_assert_str_eq(r.sqlstate, "42601");
    ck_assert(!r.conn_dead);
    pg_res_clear(&r);

    /* SQL error keeps its SQLSTATE and message; connection stays usable. */
    ck_assert(!pg_exec(conn, "SELECT 1/0", 0, NULL, &r));
    ck_assert_str_eq(r.sqlstate, "22012");
    ck_assert_str_eq(r.message, "division by zero");
    ck_assert(!r.conn_dead);
    pg_res_clear(&r);
    exec_ok("SELECT 1");
}
END_TEST

START_TEST(test_two_phase)
{
    exec_ok("DROP TABLE IF EXISTS txc_unit");
    exec_ok("CREATE TABLE txc_unit (id int primary key)");
    char bgid[BRANCH_GID_MAX_LEN + 1];
    ck_assert(branch_gid_make(bgid, sizeof(bgid), "0badf00d-1-1", "pg1"));
    pg_res r;
    /* Clean any leftover from an earlier failed run. */
    ck_assert(pg_exec_gid(conn, "ROLLBACK PREPARED", bgid, &r) || strcmp(r.sqlstate, "42704") == 0);
    pg_res_clear(&r);

    exec_ok("BEGIN");
    exec_ok("INSERT INTO txc_unit VALUES (1)");
    ck_assert(pg_exec_gid(conn, "PREPARE TRANSACTION", bgid, &r));
    ck_assert_str_eq(r.command, "PREPARE TRANSACTION");
    pg_res_clear(&r);
    const char *p[] = {bgid};
    ck_assert(pg_exec(conn, "SELECT gid FROM pg_prepared_xacts WHERE gid = $1", 1, p, &r));
    ck_assert_int_eq(PQntuples(r.res), 1);
    pg_res_clear(&r);
    ck_assert(pg_exec_gid(conn, "COMMIT PREPARED", bgid, &r));
    ck_assert_str_eq(r.command, "COMMIT PREPARED");
    pg_res_clear(&r);
    /* A re-sent finish: 42704, the caller treats it as done. */
    ck_assert(!pg_exec_gid(conn, "COMMIT PREPARED", bgid, &r));
    ck_assert_str_eq(r.sqlstate, "42704");
    ck_assert(!r.conn_dead);
    pg_res_clear(&r);

    /* A failed block answers PREPARE with the tag ROLLBACK: not a yes vote. */
    exec_ok("BEGIN");
    ck_assert(!pg_exec(conn, "INSERT INTO txc_unit VALUES (1)", 0, NULL, &r));
    ck_assert_str_eq(r.sqlstate, "23505");
    pg_res_clear(&r);
    ck_assert(pg_exec_gid(conn, "PREPARE TRANSACTION", bgid, &r));
    ck_assert_str_eq(r.command, "ROLLBACK");
    pg_res_clear(&r);
    exec_ok("DROP TABLE txc_unit");
}
END_TEST

START_TEST(test_dead_connection)
{
    PGconn *victim = pg_connect(conninfo, "pg1");
    ck_assert_ptr_nonnull(victim);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(victim));
    const char *p[] = {pid};
    pg_res r;
    ck_assert(pg_exec(conn, "SELECT pg_terminate_backend($1::int)", 1, p, &r));
    pg_res_clear(&r);
    sleep_ms(200, NULL);
    ck_assert(!pg_exec(victim, "SELECT 1", 0, NULL, &r));
    ck_assert(r.conn_dead);
    pg_res_clear(&r);
    /* And it stays dead. */
    ck_assert(!pg_exec(victim, "SELECT 1", 0, NULL, &r));
    ck_assert(r.conn_dead);
    pg_res_clear(&r);
    PQfinish(victim);
}
END_TEST

START_TEST(test_class_08_at_error_is_a_statement_error)
{
    /* postgres_fdw and dblink raise 08001/08006 at severity ERROR about their
     * remote server, on a healthy session: a statement error, not a dead
     * connection (which would fence the branch's own backend). */
    pg_res r;
    ck_assert(!pg_exec(conn,
                       "DO $$BEGIN RAISE EXCEPTION 'remote server down' USING ERRCODE = '08006'; "
                       "END$$",
                       0, NULL, &r));
    ck_assert_str_eq(r.sqlstate, "08006");
    ck_assert(!r.conn_dead);
    pg_res_clear(&r);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_OK);
    exec_ok("SELECT 1");
}
END_TEST

START_TEST(test_pipeline)
{
    const char *p1[] = {"7"};
    pg_query q[] = {
        {"BEGIN", 0, NULL, false},
        {"SET LOCAL statement_timeout = 5000", 0, NULL, false},
        {"SELECT $1::int + 1 AS v", 1, p1, false},
        {"SELECT pg_current_xact_id_if_assigned()::text", 0, NULL, false},
    };
    pg_res r[4];
    size_t fail;
    ck_assert(pg_exec_pipeline(conn, q, 4, r, &fail));
    ck_assert_uint_eq(fail, 4);
    ck_assert_str_eq(r[0].command, "BEGIN");
    ck_assert_str_eq(PQgetvalue(r[2].res, 0, 0), "8");
    ck_assert(PQgetisnull(r[3].res, 0, 0)); /* no xid yet: read only */
    ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_INTRANS);
    for (int i = 0; i < 4; i++)
        pg_res_clear(&r[i]);
    exec_ok("ROLLBACK");

    /* Rows nobody wants (discard_rows) are dropped as they come: the result
     * keeps the status and the command tag, not the rows. */
    pg_query qd[] = {
        {"SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g", 0, NULL, true},
        {"SELECT 2 AS kept", 0, NULL, false},
    };
    pg_res rd[2];
    ck_assert(pg_exec_pipeline(conn, qd, 2, rd, &fail));
    ck_assert_uint_eq(fail, 2);
    ck_assert_int_eq(PQresultStatus(rd[0].res), PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(rd[0].res), 0);
    ck_assert_str_eq(rd[0].command, "SELECT 50000");
    ck_assert_str_eq(PQgetvalue(rd[1].res, 0, 0), "2");
    for (int i = 0; i < 2; i++)
        pg_res_clear(&rd[i]);
    /* ... and a failure in the middle of them is still the query's error */
    pg_query qe[] = {
        {"SELECT 1 / (5000 - g) FROM generate_series(1, 10000) g", 0, NULL, true},
    };
    ck_assert(!pg_exec_pipeline(conn, qe, 1, rd, &fail));
    ck_assert_uint_eq(fail, 0);
    ck_assert_str_eq(rd[0].sqlstate, "22012");
    ck_assert(!rd[0].conn_dead);
    pg_res_clear(&rd[0]);

    /* An error in the middle: the rest is skipped, its sqlstate kept. */
    pg_query q2[] = {
        {"BEGIN", 0, NULL, false},
        {"SELECT 1/0", 0, NULL, false},
        {"SELECT 1", 0, NULL, false},
    };
    pg_res r2[3];
    ck_assert(!pg_exec_pipeline(conn, q2, 3, r2, &fail));
    ck_assert_uint_eq(fail, 1);
    ck_assert_str_eq(r2[1].sqlstate, "22012");
    ck_assert(!r2[1].conn_dead);
    ck_assert_int_eq(r2[2].status, PGRES_PIPELINE_ABORTED);
    ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_INERROR);
    for (int i = 0; i < 3; i++)
        pg_res_clear(&r2[i]);
    exec_ok("ROLLBACK");
    exec_ok("SELECT 1"); /* usable again outside pipeline mode */

    /* A dead connection: every entry says so, nothing hangs. */
    PGconn *victim = pg_connect(conninfo, "pg1");
    ck_assert_ptr_nonnull(victim);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(victim));
    const char *pp[] = {pid};
    pg_res k;
    ck_assert(pg_exec(conn, "SELECT pg_terminate_backend($1::int)", 1, pp, &k));
    pg_res_clear(&k);
    sleep_ms(200, NULL);
    ck_assert(!pg_exec_pipeline(victim, q2, 3, r2, &fail));
    ck_assert_uint_eq(fail, 0);
    ck_assert(r2[0].conn_dead);
    for (int i = 0; i < 3; i++)
        pg_res_clear(&r2[i]);
    PQfinish(victim);
}
END_TEST

/* PREPARE TRANSACTION at the end of the statements' pipeline: one round
 * trip; skipped after a failing statement; "ROLLBACK" without an open block;
 * the pg_exec_gid PREPARE right after it answers it without sending it again,
 * and only then. */
/* pg_exec_pipeline_rows: rows written as they arrive give what
 * pg_result_text gives for the whole result, and rows.bytes is their text;
 * past max_bytes the query is cancelled early (not read to its end),
 * nothing is returned, and the session stays usable. */
START_TEST(test_pipeline_rows)
{
    const char *sql = "SELECT g AS id, g AS id, 'r' || g AS s, NULL::int AS n FROM "
                      "generate_series(1, 500) g";
    pg_res whole;
    ck_assert(pg_exec(conn, sql, 0, NULL, &whole));
    size_t want_len;
    char *want = pg_result_text(whole.res, &want_len);
    pg_res_clear(&whole);

    pg_query q[] = {
        {"BEGIN", 0, NULL, false},
        {sql, 0, NULL, false},
        {"SELECT 1 AS after", 0, NULL, false},
    };
    pg_res r[3];
    size_t fail;
    pg_rows rows = {.query = 1, .max_bytes = 1 << 20};
    ck_assert(pg_exec_pipeline_rows(conn, q, 3, &rows, r, &fail));
    ck_assert_uint_eq(fail, 3);
    ck_assert(!rows.too_large);
    ck_assert_int_eq(rows.rows, 500);
    ck_assert_str_eq(rows.text, want);
    ck_assert_uint_eq(rows.len, want_len);
    /* bytes counts the rows' text: all of it but {"command":"SELECT 500",
     * "row_count":500,"rows":[ and ]} */
    ck_assert_uint_eq(rows.bytes, want_len - strlen("{\"command\":\"SELECT 500\","
                                                    "\"row_count\":500,\"rows\":[]}"));
    ck_assert_str_eq(r[1].command, "SELECT 500");
    ck_assert_str_eq(PQgetvalue(r[2].res, 0, 0), "1");
    free(rows.text);
    free(want);
    for (int i = 0; i < 3; i++)
        pg_res_clear(&r[i]);
    exec_ok("ROLLBACK");

    /* 20 million rows against a 64 KiB limit: cancelled after a few. */
    pg_query big[] = {
        {"BEGIN", 0, NULL, false},
        {"SELECT g, repeat('x', 50) AS pad FROM generate_series(1, 20000000) g", 0, NULL, false},
    };
    rows = (pg_rows){.query = 1, .max_bytes = 64 << 10};
    bool ok = pg_exec_pipeline_rows(conn, big, 2, &rows, r, &fail);
    ck_assert(rows.too_large);
    ck_assert_ptr_null(rows.text);
    ck_assert_msg(rows.bytes > 64 << 10 && rows.bytes < (64 << 10) + 200, "stopped at %zu bytes",
                  rows.bytes);
    ck_assert_msg(rows.rows < 20000000, "read to the end: %lld rows", rows.rows);
    ck_assert_msg(!ok && fail == 1 && strcmp(r[1].sqlstate, "57014") == 0,
                  "expected the query cancelled: ok %d fail %zu sqlstate %s", ok, fail,
                  r[1].sqlstate);
    ck_assert(!r[1].conn_dead);
    for (int i = 0; i < 2; i++)
        pg_res_clear(&r[i]);
    ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_INERROR);
    exec_ok("ROLLBACK");
    exec_ok("SELECT 1");
}
END_TEST

START_TEST(test_pipeline_prepare)
{
    exec_ok("DROP TABLE IF EXISTS txc_unit_pp");
    exec_ok("CREATE TABLE txc_unit_pp (id int primary key)");
    char bgid[BRANCH_GID_MAX_LEN + 1], bgid2[BRANCH_GID_MAX_LEN + 1];
    ck_assert(branch_gid_make(bgid, sizeof(bgid), "0badf00d-1-2", "pg1"));
    ck_assert(branch_gid_make(bgid2, sizeof(bgid2), "0badf00d-1-3", "pg1"));
    pg_res r[6], x;
    size_t fail;
    const char *gids[] = {bgid, bgid2};
    for (int i = 0; i < 2; i++) { /* leftovers of an earlier failed run */
        ck_assert(pg_exec_gid(conn, "ROLLBACK PREPARED", gids[i], &x) ||
                  strcmp(x.sqlstate, "42704") == 0);
        pg_res_clear(&x);
    }

    const char *p1[] = {"1"};
    pg_query q[] = {
        {"BEGIN", 0, NULL, false},
        {"INSERT INTO txc_unit_pp VALUES ($1::int)", 1, p1, false},
    };
    ck_assert(pg_exec_pipeline_prepare(conn, q, 2, bgid, r, &fail));
    ck_assert_uint_eq(fail, 3);
    ck_assert_str_eq(r[1].command, "INSERT 0 1");
    ck_assert_str_eq(r[2].command, "PREPARE TRANSACTION");
    ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
    for (int i = 0; i < 3; i++)
        pg_res_clear(&r[i]);
    /* A second PREPARE finds nothing to prepare (ROLLBACK tag): the agent
     * must not send one after the pipeline (branch->prepared_in_batch). */
    ck_assert(pg_exec_gid(conn, "PREPARE TRANSACTION", bgid, &x));
    ck_assert_str_eq(x.command, "ROLLBACK");
    pg_res_clear(&x);
    const char *pg[] = {bgid};
    ck_assert_int_eq(h_count(conn, "SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1", pg), 1);
    ck_assert(pg_exec_gid(conn, "COMMIT PREPARED", bgid, &x));
    pg_res_clear(&x);

    /* A failing statement: PREPARE is skipped, the block is left failed. */
    ck_assert(!pg_exec_pipeline_prepare(conn, q, 2, bgid, r, &fail)); /* id 1 exists */
    ck_assert_uint_eq(fail, 1);
    ck_assert_str_eq(r[1].sqlstate, "23505");
    ck_assert(!r[1].conn_dead);
    ck_assert_int_eq(r[2].status, PGRES_PIPELINE_ABORTED);
    ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_INERROR);
    for (int i = 0; i < 3; i++)
        pg_res_clear(&r[i]);
    ck_assert(pg_exec_gid(conn, "PREPARE TRANSACTION", bgid, &x)); /* the failed block */
    ck_assert_str_eq(x.command, "ROLLBACK");
    pg_res_clear(&x);
    ck_assert_int_eq(h_count(conn, "SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1", pg), 0);

    /* No open block (no BEGIN): PostgreSQL does not answer PREPARE's tag. */
    const char *p2[] = {"2"};
    pg_query q3[] = {{"INSERT INTO txc_unit_pp VALUES ($1::int)", 1, p2, false}};
    bool ok = pg_exec_pipeline_prepare(conn, q3, 1, bgid, r, &fail);
    ck_assert_str_ne(r[1].command, "PREPARE TRANSACTION");
    (void)ok;
    for (int i = 0; i < 2; i++)
        pg_res_clear(&r[i]);
    ck_assert_int_eq(h_count(conn, "SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1", pg), 0);
    exec_ok("ROLLBACK"); /* whatever is left (a warning if nothing) */

    /* Why the agent still checks the statements' tags (api.c refuses such
     * statements; this is PostgreSQL's side): a block ended and begun again
     * inside the pipeline is prepared all the same, with only what followed. */
    const char *p3[] = {"3"}, *p4[] = {"4"};
    pg_query q4[] = {
        {"BEGIN", 0, NULL, false},
        {"INSERT INTO txc_unit_pp VALUES ($1::int)", 1, p3, false},
        {"COMMIT", 0, NULL, false},
        {"BEGIN", 0, NULL, false},
        {"INSERT INTO txc_unit_pp VALUES ($1::int)", 1, p4, false},
    };
    ck_assert(pg_exec_pipeline_prepare(conn, q4, 5, bgid, r, &fail));
    ck_assert_str_eq(r[2].command, "COMMIT");
    ck_assert_str_eq(r[5].command, "PREPARE TRANSACTION");
    for (int i = 0; i < 6; i++)
        pg_res_clear(&r[i]);
    exec_ok("SELECT 1"); /* forgets it */
    ck_assert(pg_exec_gid(conn, "ROLLBACK PREPARED", bgid, &x));
    pg_res_clear(&x);

    /* An invalid gid: nothing sent. */
    ck_assert(!pg_exec_pipeline_prepare(conn, q, 2, "txc:x'; DROP TABLE t; --:pg1", r, &fail));
    ck_assert_uint_eq(fail, 0);
    ck_assert_int_eq(PQtransactionStatus(conn), PQTRANS_IDLE);
    for (int i = 0; i < 3; i++)
        pg_res_clear(&r[i]);
    exec_ok("DROP TABLE txc_unit_pp");
}
END_TEST

START_TEST(test_conninfo_overrides)
{
    /* The caller's keywords win over our defaults. */
    char *ci = xasprintf("%s connect_timeout=7 application_name=unit", conninfo);
    PGconn *c = pg_connect(ci, "pg1");
    free(ci);
    ck_assert_ptr_nonnull(c);
    pg_res r;
    ck_assert(pg_exec(c, "SELECT current_setting('application_name')", 0, NULL, &r));
    ck_assert_str_eq(PQgetvalue(r.res, 0, 0), "unit");
    pg_res_clear(&r);
    PQconninfoOption *opts = PQconninfo(c);
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "connect_timeout") == 0)
            ck_assert_str_eq(o->val, "7");
        if (strcmp(o->keyword, "tcp_user_timeout") == 0)
            ck_assert_str_eq(o->val, "15000");
        if (strcmp(o->keyword, "keepalives_idle") == 0)
            ck_assert_str_eq(o->val, "10");
    }
    PQconninfoFree(opts);
    PQfinish(c);
}
END_TEST

START_TEST(test_forced_application_name)
{
    /* pg_connect_as: the forced application_name wins over the conninfo's
     * (txagent finds its own sessions by it, pool.c fences). */
    char *ci = xasprintf("%s application_name=unit", conninfo);
    PGconn *c = pg_connect_as(ci, "pg1", "txagent pg1 0123abcd");
    free(ci);
    ck_assert_ptr_nonnull(c);
    pg_res r;
    ck_assert(pg_exec(c, "SELECT current_setting('application_name')", 0, NULL, &r));
    ck_assert_str_eq(PQgetvalue(r.res, 0, 0), "txagent pg1 0123abcd");
    pg_res_clear(&r);
    PQfinish(c);
    /* NULL: as pg_connect (the conninfo's, else our fallback). */
    c = pg_connect_as(conninfo, "pg1", NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert(pg_exec(c, "SELECT current_setting('application_name')", 0, NULL, &r));
    ck_assert_str_ne(PQgetvalue(r.res, 0, 0), "txagent pg1 0123abcd");
    pg_res_clear(&r);
    PQfinish(c);
}
END_TEST

int main(void)
{
    conninfo = getenv("TXCOORD_TEST_PG");
    if (!conninfo || !*conninfo) {
        printf("TXCOORD_TEST_PG not set: skipped\n");
        return 77;
    }
    Suite *s = suite_create("pg_live");
    TCase *tc = tcase_create("pg_live");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_types_and_params);
    tcase_add_test(tc, test_two_phase);
    tcase_add_test(tc, test_dead_connection);
    tcase_add_test(tc, test_class_08_at_error_is_a_statement_error);
    tcase_add_test(tc, test_pipeline);
    tcase_add_test(tc, test_pipeline_rows);
    tcase_add_test(tc, test_pipeline_prepare);
    tcase_add_test(tc, test_conninfo_overrides);
    tcase_add_test(tc, test_forced_application_name);
    suite_add_tcase(s, tc);
    return unit_run(s);
}
