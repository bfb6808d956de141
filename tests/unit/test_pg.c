/*
 * test_pg.c - unit tests for the parts of pg.c that need no server:
 * value mapping (pg_value_text, pg_result_text on NULL), parameter
 * conversion (pg_params_from_json), sql_is_transaction_control, and the
 * refusals of pg_exec_gid (bad verb / bad gid never reach the connection).
 */
#include <check.h>
#include <string.h>

#include "log.h"
#include "pg.h"
#include "unit_util.h"

static void expect_value(Oid type, const char *text, bool isnull, const char *want)
{
    strbuf sb;
    strbuf_init(&sb);
    strbuf_append(&sb, "[");
    pg_value_text(&sb, type, text, text ? strlen(text) : 0, isnull);
    const char *got = sb.data + 1;
    ck_assert_msg(strcmp(got, want) == 0, "oid %u '%s': got %s, want %s", type,
                  text ? text : "(null)", got, want);
    /* What it wrote reads back as JSON. */
    strbuf_append(&sb, "]");
    json_t *back = json_loads(sb.data, JSON_DECODE_INT_AS_REAL, NULL); /* big ints: numbers */
    ck_assert_msg(back != NULL, "oid %u '%s': %s is not JSON", type, text ? text : "(null)", got);
    json_decref(back);
    strbuf_free(&sb);
}

START_TEST(test_value_text)
{
    expect_value(23, "42", false, "42");
    expect_value(21, "-7", false, "-7");
    expect_value(20, "9223372036854775807", false, "9223372036854775807");
    expect_value(20, "-9223372036854775808", false, "-9223372036854775808");
    expect_value(26, "4294967295", false, "4294967295");
    expect_value(16, "t", false, "true");
    expect_value(16, "f", false, "false");
    expect_value(701, "1.5", false, "1.5");
    expect_value(700, "-0.25", false, "-0.25");
    expect_value(701, "NaN", false, "\"NaN\"");
    expect_value(701, "Infinity", false, "\"Infinity\"");
    expect_value(701, "-Infinity", false, "\"-Infinity\"");
    expect_value(1700, "12345678901234567890.123", false, "\"12345678901234567890.123\"");
    expect_value(114, "{\"a\":[1,2]}", false, "{\"a\":[1,2]}");
    expect_value(3802, "[1, \"x\"]", false, "[1, \"x\"]"); /* as PostgreSQL wrote it */
    expect_value(3802, "\"s\"", false, "\"s\"");
    expect_value(3802, "3", false, "3");
    expect_value(25, "hello \"q\"", false, "\"hello \\\"q\\\"\"");
    expect_value(1043, "", false, "\"\"");
    expect_value(1082, "2026-11-26", false, "\"2026-11-26\"");
    expect_value(23, NULL, true, "null");
    expect_value(25, "ignored", true, "null");
    expect_value(3802, NULL, true, "null");
    /* Not valid UTF-8 still yields a string. */
    expect_value(25, "caf\xe9", false, "\"caf?\"");
    expect_value(25, "caf\xc3\xa9", false, "\"caf\xc3\xa9\"");
    expect_value(25, "\xed\xa0\x80", false, "\"???\""); /* a surrogate */
    expect_value(25, "\x01\t\"\\", false, "\"\\u0001\\t\\\"\\\\\"");
    /* Integers past 64 bits, bad booleans, and JSON that is not: strings. */
    expect_value(20, "9223372036854775808", false, "\"9223372036854775808\"");
    expect_value(16, "yes", false, "\"yes\"");
    expect_value(3802, "not json", false, "\"not json\"");
    /* json/jsonb as written: a jsonb numeric keeps every digit, an integer
     * past 64 bits stays a number. */
    expect_value(3802, "{\"amt\": 12345678901234567.89, \"n\": 123456789012345678901}", false,
                 "{\"amt\": 12345678901234567.89, \"n\": 123456789012345678901}");
    /* Reals in their shortest exact form, staying reals. */
    expect_value(701, "5", false, "5.0");
    expect_value(701, "0.1", false, "0.1");
    expect_value(700, "19.99", false, "19.99");
    expect_value(3802, "{\"price\": 19.99, \"q\": [1, 2.50]}", false,
                 "{\"price\": 19.99, \"q\": [1, 2.50]}");
}
END_TEST

START_TEST(test_result_text_null)
{
    size_t len = 99;
    char *s = pg_result_text(NULL, &len);
    ck_assert_str_eq(s, "{\"command\":\"\",\"row_count\":0,\"rows\":[]}");
    ck_assert_uint_eq(len, strlen(s));
    free(s);
}
END_TEST

START_TEST(test_params_from_json)
{
    json_t *arr = json_loads("[1, -2, 1.5, true, false, \"s'; DROP\", null, {\"a\":1}, [1,2],"
                             "9223372036854775807, 0.1, 19.99, 5.0, {\"price\":19.99,\"q\":[0.1]}]",
                             0, NULL);
    ck_assert_ptr_nonnull(arr);
    char **p = NULL;
    int n = -1;
    char err[256] = "";
    ck_assert(pg_params_from_json(arr, &p, &n, err, sizeof(err)));
    ck_assert_int_eq(n, 14);
    ck_assert_str_eq(p[0], "1");
    ck_assert_str_eq(p[1], "-2");
    ck_assert_str_eq(p[2], "1.5");
    ck_assert_str_eq(p[3], "true");
    ck_assert_str_eq(p[4], "false");
    ck_assert_str_eq(p[5], "s'; DROP");
    ck_assert_ptr_null(p[6]);
    ck_assert_str_eq(p[7], "{\"a\":1}");
    ck_assert_str_eq(p[8], "[1,2]");
    ck_assert_str_eq(p[9], "9223372036854775807");
    /* Reals as the client wrote them (a numeric or jsonb column stores this
     * text: %.17g made 19.99 into 19.989999999999998). */
    ck_assert_str_eq(p[10], "0.1");
    ck_assert_str_eq(p[11], "19.99");
    ck_assert_str_eq(p[12], "5"); /* an integer column accepts it */
    ck_assert_str_eq(p[13], "{\"price\":19.99,\"q\":[0.1]}");
    pg_params_free(p, n);
    json_decref(arr);

    /* Absent / empty. */
    ck_assert(pg_params_from_json(NULL, &p, &n, err, sizeof(err)));
    ck_assert_int_eq(n, 0);
    pg_params_free(p, n);
    arr = json_array();
    ck_assert(pg_params_from_json(arr, &p, &n, err, sizeof(err)));
    ck_assert_int_eq(n, 0);
    pg_params_free(p, n);
    json_decref(arr);

    /* Not an array. */
    json_t *obj = json_object();
    ck_assert(!pg_params_from_json(obj, &p, &n, err, sizeof(err)));
    ck_assert_str_eq(err, "field 'params' must be an array");
    json_decref(obj);

    /* Embedded NUL cannot be a text parameter. */
    arr = json_array();
    json_array_append_new(arr, json_stringn("a\0b", 3));
    ck_assert(!pg_params_from_json(arr, &p, &n, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "params[0]"));
    json_decref(arr);
}
END_TEST

/* The copy protocol is recognised by FROM STDIN / TO STDOUT as words, not by
 * the letters anywhere: a column or file of that name is a server-side COPY. */
START_TEST(test_copy_stream)
{
    const char *stream[] = {"COPY accounts FROM STDIN", "copy t (a, b) from stdin with (format csv)",
                            "COPY (SELECT a FROM t) TO STDOUT", "/* c */ COPY t TO stdout",
                            "COPY t(\"x\") FROM STDIN",
                            /* quotes that are not a plain '...' */
                            "COPY (SELECT $$'$$) TO STDOUT", "COPY (SELECT $q$'$q$) TO STDOUT",
                            "COPY (SELECT E'\\'') TO STDOUT", "COPY (SELECT $1::text) TO STDOUT",
                            "COPY (SELECT E'a''\\'') TO STDOUT", "COPY a$b$c FROM STDIN",
                            "COPY (SELECT 'it''s') TO STDOUT"};
    for (size_t i = 0; i < sizeof(stream) / sizeof(stream[0]); i++)
        ck_assert_msg(sql_is_copy_stream(stream[i]), "%s", stream[i]);
    const char *not_stream[] = {"COPY t(stdin_bytes) FROM '/srv/x.csv'",
                                "COPY t TO '/tmp/stdout.csv'",
                                "COPY t TO PROGRAM 'cat >/dev/stdout'",
                                "COPY t FROM PROGRAM 'gzip -dc /x.gz'",
                                "SELECT 'COPY t FROM STDIN'",
                                "COPY \"stdin\" FROM '/x'",
                                "COPY t FROM $$/srv/ FROM STDIN$$",
                                "COPY t TO E'/tmp/\\' TO STDOUT'",
                                NULL};
    for (size_t i = 0; not_stream[i]; i++)
        ck_assert_msg(!sql_is_copy_stream(not_stream[i]), "%s", not_stream[i]);
    ck_assert(!sql_is_copy_stream(NULL));
}
END_TEST

START_TEST(test_transaction_control)
{
    static const char *const yes[] = {
        "BEGIN", "begin", "  BEGIN;", "begin transaction isolation level serializable",
        "START TRANSACTION", "start transaction read only", "COMMIT", "commit;", "COMMIT WORK",
        "END", "end transaction", "ROLLBACK", "rollback;", "ROLLBACK WORK", "ABORT",
        "PREPARE TRANSACTION 'x'", "prepare   transaction 'txc:3fa2b01c-4-17:pg1'",
        "COMMIT PREPARED 'x'", "ROLLBACK PREPARED 'x'", "-- hi\nCOMMIT",
        "/* c */ COMMIT", "/* a /* nested */ still */ BEGIN", "\n\t  /* x */ -- y\n  end",
        ";COMMIT", " ; ; rollback", "Commit", "ROLLBACK AND CHAIN", "COMMIT AND CHAIN",
        "PREPARE/**/TRANSACTION 'x'",
        /* PostgreSQL ends a "--" comment at '\r' too (scan.l: newline [\n\r]) */
        "-- x\rCOMMIT\nWORK", "-- x\rCOMMIT\nAND NO CHAIN", "--\rEND\nTRANSACTION",
        "-- x\rPREPARE\nTRANSACTION 'foo'", "--\r\n--\rROLLBACK", "\f\rCOMMIT",
    };
    for (size_t i = 0; i < ARRAY_LEN(yes); i++)
        ck_assert_msg(sql_is_transaction_control(yes[i]), "should be control: %s", yes[i]);
    static const char *const no[] = {
        "SELECT 1", "UPDATE t SET x = 1", "INSERT INTO commits VALUES (1)", "SAVEPOINT s1",
        "RELEASE SAVEPOINT s1", "RELEASE s1", "ROLLBACK TO SAVEPOINT s1", "rollback to s1",
        "ROLLBACK WORK TO SAVEPOINT s1", "PREPARE stmt AS SELECT 1",
        "prepare stmt (int) as select $1", "-- COMMIT\nSELECT 1", "/* BEGIN */ SELECT 1",
        "", "   ", "-- only a comment", "/* unterminated COMMIT", "SELECT 'COMMIT'",
        "WITH x AS (SELECT 1) SELECT * FROM x", "beginning", "committed", "ended",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "abortive",
    };
    for (size_t i = 0; i < ARRAY_LEN(no); i++)
        ck_assert_msg(!sql_is_transaction_control(no[i]), "should be allowed: %s", no[i]);
    ck_assert(!sql_is_transaction_control(NULL));
}
END_TEST

START_TEST(test_sql_is_empty)
{
    static const char *const empty[] = {
        "", "   ", ";", " ; ;\n", "-- only a comment", "/* c */", "/* a /* nested */ b */ ;",
        "\t-- x\n /* y */ -- z", "/* unterminated SELECT 1",
    };
    for (size_t i = 0; i < ARRAY_LEN(empty); i++)
        ck_assert_msg(sql_is_empty(empty[i]), "should be empty: %s", empty[i]);
    static const char *const some[] = {
        "SELECT 1", " ;SELECT 1", "-- c\nSELECT 1", "-- c\rSELECT 1", "/* c */ x", "COMMIT", "'", "(",
    };
    for (size_t i = 0; i < ARRAY_LEN(some); i++)
        ck_assert_msg(!sql_is_empty(some[i]), "should not be empty: %s", some[i]);
    ck_assert(sql_is_empty(NULL));
}
END_TEST

START_TEST(test_exec_gid_refusals)
{
    char *dir = unit_tmpdir();
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    pg_res r;
    memset(&r, 0xab, sizeof(r)); /* must be fully initialised by the call */
    ck_assert(!pg_exec_gid(NULL, "DROP TABLE", "txc:3fa2b01c-4-17:pg1", &r));
    ck_assert_ptr_null(r.res);
    ck_assert_str_eq(r.sqlstate, "");
    ck_assert_str_eq(r.message, "unsupported verb");
    ck_assert(!r.conn_dead);
    pg_res_clear(&r);
    ck_assert(!pg_exec_gid(NULL, "COMMIT PREPARED", "txc:3fa2b01c-4-17:pg1'; DROP TABLE t; --",
                           &r));
    ck_assert_str_eq(r.message, "invalid branch gid");
    ck_assert_str_eq(r.sqlstate, "");
    pg_res_clear(&r);
    ck_assert(!pg_exec_gid(NULL, "COMMIT PREPARED", "3fa2b01c-4-17", &r)); /* not a branch gid */
    pg_res_clear(&r);
    /* A valid request on no connection is a dead connection, not a crash. */
    ck_assert(!pg_exec_gid(NULL, "ROLLBACK PREPARED", "txc:3fa2b01c-4-17:pg1", &r));
    ck_assert(r.conn_dead);
    pg_res_clear(&r);
    ck_assert(!pg_exec(NULL, "SELECT 1", 0, NULL, &r));
    ck_assert(r.conn_dead);
    ck_assert_int_eq(r.status, PGRES_FATAL_ERROR);
    pg_res_clear(&r);
    char *out = unit_capture_end(&cap);
    ck_assert_ptr_nonnull(strstr(out, "invalid branch gid"));
    free(out);
    unit_rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_connect_failure)
{
    char *dir = unit_tmpdir();
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    /* Port 1 on loopback: refused at once. */
    PGconn *c = pg_connect("host=127.0.0.1 port=1 dbname=x connect_timeout=2", "pg1");
    char *out = unit_capture_end(&cap);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(out, "ERROR participant=pg1 cannot connect to PostgreSQL:"));
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 1);
    free(out);
    unit_rm_rf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    log_init("test_pg", LOG_INFO);
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("pg");
    tcase_add_test(tc, test_value_text);
    tcase_add_test(tc, test_result_text_null);
    tcase_add_test(tc, test_params_from_json);
    tcase_add_test(tc, test_transaction_control);
    tcase_add_test(tc, test_copy_stream);
    tcase_add_test(tc, test_sql_is_empty);
    tcase_add_test(tc, test_exec_gid_refusals);
    tcase_add_test(tc, test_connect_failure);
    suite_add_tcase(s, tc);
    return unit_run(s);
}
