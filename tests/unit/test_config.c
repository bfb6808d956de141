/*
 * test_config.c - unit tests for config.c (option table), jsonutil.c,
 * metrics.c (Prometheus text), log.c (line format), fault.c (exit and pause
 * actions) and util.c.
 * Invariants checked: defaults then argv; every bad input is one stderr line
 * and false; rendering is cumulative and stable.
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "config.h"
#include "fault.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "strbuf.h"
#include "unit_util.h"

static char *dir;
static char *o_listen, *o_name, *o_data;
static long long o_port, o_timeout;
static bool o_verbose, o_sync;
static str_list o_parts;

static const opt_def defs[] = {
    {"listen", OPT_STRING, NULL, 0, 0, true, "HOST:PORT", "address to listen on", &o_listen},
    {"name", OPT_STRING, "pg1", 0, 0, false, "NAME", "participant name", &o_name},
    {"data-dir", OPT_STRING, NULL, 0, 0, false, "DIR", "data directory", &o_data},
    {"port", OPT_INT, "7400", 1, 65535, false, "PORT", "base port", &o_port},
    {"timeout-ms", OPT_INT, "-5", -10, 10, false, NULL, "a signed int", &o_timeout},
    {"verbose", OPT_BOOL, NULL, 0, 0, false, NULL, "log more", &o_verbose},
    {"sync", OPT_BOOL, "true", 0, 0, false, NULL, "fsync", &o_sync},
    {"participant", OPT_STRING_LIST, NULL, 0, 0, false, "NAME=URL", "an agent", &o_parts},
};

static void setup(void)
{
    dir = unit_tmpdir();
    o_listen = o_name = o_data = NULL;
    memset(&o_parts, 0, sizeof(o_parts));
}

static void teardown(void)
{
    free(o_listen);
    free(o_name);
    free(o_data);
    str_list_free(&o_parts);
    unit_rm_rf(dir);
    free(dir);
}

/* Parse argv (NULL-terminated list); returns the result and the stderr text. */
static bool parse(char **err_out, const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"txtest";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    free(o_listen);
    free(o_name);
    free(o_data);
    str_list_free(&o_parts);
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    bool ok = opts_parse(defs, ARRAY_LEN(defs), argc, argv, "txtest", "a test program");
    char *err = unit_capture_end(&cap);
    if (err_out)
        *err_out = err;
    else
        free(err);
    return ok;
}

START_TEST(test_defaults)
{
    char *err;
    ck_assert(parse(&err, "--listen", "127.0.0.1:7400", NULL));
    ck_assert_str_eq(err, "");
    free(err);
    ck_assert_str_eq(o_listen, "127.0.0.1:7400");
    ck_assert_str_eq(o_name, "pg1");
    ck_assert_ptr_null(o_data);
    ck_assert_int_eq(o_port, 7400);
    ck_assert_int_eq(o_timeout, -5);
    ck_assert(!o_verbose);
    ck_assert(o_sync);
    ck_assert_uint_eq(o_parts.n, 0);
}
END_TEST

START_TEST(test_values_and_forms)
{
    ck_assert(parse(NULL, "--listen=0.0.0.0:1", "--name", "pg2", "--port=80", "--timeout-ms",
                    "10", "--verbose", "--sync=false", "--data-dir=/x=y", NULL));
    ck_assert_str_eq(o_listen, "0.0.0.0:1");
    ck_assert_str_eq(o_name, "pg2");
    ck_assert_str_eq(o_data, "/x=y");
    ck_assert_int_eq(o_port, 80);
    ck_assert_int_eq(o_timeout, 10);
    ck_assert(o_verbose);
    ck_assert(!o_sync);
    /* Last one wins for scalars. */
    ck_assert(parse(NULL, "--listen", "a:1", "--listen", "b:2", "--port", "1", "--port",
                    "65535", NULL));
    ck_assert_str_eq(o_listen, "b:2");
    ck_assert_int_eq(o_port, 65535);
}
END_TEST

START_TEST(test_list_option)
{
    ck_assert(parse(NULL, "--listen", "x:1", "--participant", "pg1=http://127.0.0.1:7401",
                    "--participant=pg2=http://127.0.0.1:7402", NULL));
    ck_assert_uint_eq(o_parts.n, 2);
    ck_assert_str_eq(o_parts.items[0], "pg1=http://127.0.0.1:7401");
    ck_assert_str_eq(o_parts.items[1], "pg2=http://127.0.0.1:7402");
}
END_TEST

static void expect_error(const char *line, const char *a1, const char *a2, const char *a3)
{
    char *err;
    ck_assert(!parse(&err, a1, a2, a3, NULL));
    ck_assert_msg(strcmp(err, line) == 0, "stderr was '%s', wanted '%s'", err, line);
    free(err);
}

START_TEST(test_errors)
{
    expect_error("txtest: --listen: required\n", "--port", "10", NULL);
    expect_error("txtest: --port: 70000 is out of range [1, 65535]\n", "--listen=x:1",
                 "--port=70000", NULL);
    expect_error("txtest: --port: 0 is out of range [1, 65535]\n", "--listen=x:1", "--port=0",
                 NULL);
    expect_error("txtest: --port: 'abc' is not an integer\n", "--listen=x:1", "--port", "abc");
    expect_error("txtest: --port: '12x' is not an integer\n", "--listen=x:1", "--port=12x",
                 NULL);
    expect_error("txtest: --port: '' is not an integer\n", "--listen=x:1", "--port=", NULL);
    expect_error("txtest: --bogus: unknown option (see --help)\n", "--listen=x:1", "--bogus",
                 NULL);
    expect_error("txtest: --port: requires a value\n", "--listen=x:1", "--port", NULL);
    expect_error("txtest: --verbose: 'maybe' is not a boolean (true/false)\n", "--listen=x:1",
                 "--verbose=maybe", NULL);
    expect_error("txtest: 'stray': unexpected argument (see --help)\n", "--listen=x:1",
                 "stray", NULL);
    expect_error("txtest: --port: '99999999999999999999' is not an integer\n", "--listen=x:1",
                 "--port=99999999999999999999", NULL);
}
END_TEST

START_TEST(test_help_exits_zero)
{
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        char *argv[] = {(char *)"txtest", (char *)"--help", NULL};
        bool ok = opts_parse(defs, ARRAY_LEN(defs), 2, argv, "txtest", "a test program");
        (void)ok;
        _exit(3); /* not reached */
    }
    close(pfd[1]);
    char buf[8192];
    size_t n = 0;
    ssize_t r;
    while ((r = read(pfd[0], buf + n, sizeof(buf) - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(pfd[0]);
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_ptr_nonnull(strstr(buf, "Usage: txtest"));
    ck_assert_ptr_nonnull(strstr(buf, "--listen HOST:PORT"));
    ck_assert_ptr_nonnull(strstr(buf, "address to listen on (required)"));
    ck_assert_ptr_nonnull(strstr(buf, "(default: 7400)"));
    ck_assert_ptr_nonnull(strstr(buf, "--participant NAME=URL"));
    ck_assert_ptr_nonnull(strstr(buf, "--help"));
}
END_TEST

START_TEST(test_host_port)
{
    char *h = NULL;
    int p = -1;
    ck_assert(parse_host_port("127.0.0.1:7400", &h, &p));
    ck_assert_str_eq(h, "127.0.0.1");
    ck_assert_int_eq(p, 7400);
    free(h);
    ck_assert(parse_host_port("localhost:0", &h, &p));
    ck_assert_str_eq(h, "localhost");
    ck_assert_int_eq(p, 0);
    free(h);
    ck_assert(parse_host_port("[::1]:65535", &h, &p));
    ck_assert_str_eq(h, "::1");
    ck_assert_int_eq(p, 65535);
    free(h);
    static const char *const bad[] = {"x", ":80", "h:", "h:99999", "h:12a", "h:-1",
                                      "::1:80", "[::1]80", "", "h:1234567"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        ck_assert_msg(!parse_host_port(bad[i], &h, &p), "should fail: %s", bad[i]);
}
END_TEST

/* ---- jsonutil --------------------------------------------------------- */

START_TEST(test_jsonutil)
{
    json_t *o = json_loads("{\"s\":\"v\",\"i\":42,\"b\":true,\"a\":[1],\"o\":{},\"n\":null,"
                           "\"r\":1.5}", 0, NULL);
    ck_assert_ptr_nonnull(o);
    char err[JSON_ERR_LEN] = "";
    const char *s = "untouched";
    ck_assert(json_field_string(o, "s", true, &s, err, sizeof(err)));
    ck_assert_str_eq(s, "v");
    s = "untouched";
    ck_assert(json_field_string(o, "missing", false, &s, err, sizeof(err)));
    ck_assert_str_eq(s, "untouched");
    ck_assert(!json_field_string(o, "missing", true, &s, err, sizeof(err)));
    ck_assert_str_eq(err, "field 'missing' is required");
    ck_assert(!json_field_string(o, "i", true, &s, err, sizeof(err)));
    ck_assert_str_eq(err, "field 'i' must be a string");
    ck_assert(!json_field_string(o, "n", false, &s, err, sizeof(err)));

    long long i = -1;
    ck_assert(json_field_int(o, "i", true, 0, 100, &i, err, sizeof(err)));
    ck_assert_int_eq(i, 42);
    ck_assert(!json_field_int(o, "i", true, 0, 10, &i, err, sizeof(err)));
    ck_assert_str_eq(err, "field 'i' must be between 0 and 10");
    ck_assert(!json_field_int(o, "r", true, 0, 10, &i, err, sizeof(err)));
    ck_assert_str_eq(err, "field 'r' must be an integer");
    i = 7;
    ck_assert(json_field_int(o, "zz", false, 0, 10, &i, err, sizeof(err)));
    ck_assert_int_eq(i, 7);

    bool b = false;
    ck_assert(json_field_bool(o, "b", true, &b, err, sizeof(err)));
    ck_assert(b);
    ck_assert(!json_field_bool(o, "s", true, &b, err, sizeof(err)));
    ck_assert_str_eq(err, "field 's' must be a boolean");

    json_t *a = NULL, *ob = NULL;
    ck_assert(json_field_array(o, "a", true, &a, err, sizeof(err)));
    ck_assert_uint_eq(json_array_size(a), 1);
    ck_assert(!json_field_array(o, "o", true, &a, err, sizeof(err)));
    ck_assert_str_eq(err, "field 'o' must be an array");
    ck_assert(json_field_object(o, "o", true, &ob, err, sizeof(err)));
    ck_assert(json_is_object(ob));
    ck_assert(!json_field_object(o, "a", true, &ob, err, sizeof(err)));
    ck_assert_str_eq(err, "field 'a' must be an object");
    /* Not an object at all. */
    json_t *arr = json_array();
    ck_assert(!json_field_string(arr, "s", true, &s, err, sizeof(err)));
    json_decref(arr);
    json_decref(o);

    json_t *e = json_error_body("not_found", "no such \xff thing");
    char *txt = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(txt, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such ? thing\"}}");
    free(txt);
    json_decref(e);
}
END_TEST

/* ---- metrics ---------------------------------------------------------- */

/* json_real_format: the shortest of %.15g/%.16g/%.17g that reads back. */
START_TEST(test_real_format)
{
    char buf[JSON_REAL_BUF];
    const struct {
        double d;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},       {19.99, "19.99"},   {5.0, "5"},
        {-0.0, "-0"},       {1e21, "1e+21"},    {1e-7, "1e-07"},
        {123456.789, "123456.789"},
        {0.1 + 0.2, "0.30000000000000004"}, /* needs 17 digits */
        {1.0 / 3.0, "0.3333333333333333"},  /* 16: the 15-digit one is another double */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_real_format(cases[i].d, buf);
        ck_assert_msg(strcmp(buf, cases[i].text) == 0, "%.17g: got %s, want %s", cases[i].d, buf,
                      cases[i].text);
    }
    /* Every finite double reads back exactly (bit patterns from an LCG). */
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 200000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        double d;
        memcpy(&d, &x, sizeof(d));
        if (!isfinite(d))
            continue;
        size_t n = json_real_format(d, buf);
        ck_assert_uint_eq(n, strlen(buf));
        ck_assert_msg(strtod(buf, NULL) == d, "%a printed as %s", d, buf);
    }
}
END_TEST

/* json_dump_text: jansson's compact text, with reals in the shortest form. */
START_TEST(test_dump_text)
{
    /* Without reals it is byte for byte what jansson writes. */
    json_t *v = json_pack("{s:s, s:i, s:b, s:n, s:[s, {s:s}], s:{}, s:[]}", "a\"b\\c", "x\n\t\x01/\xc3\xa9",
                          "n", -42, "t", 1, "z", "arr", "\b\f\r", "k\x1f", "\x7f", "o", "e");
    ck_assert_ptr_nonnull(v);
    json_object_set_new(v, "nul", json_stringn("a\0b", 3));
    json_object_set_new(v, "big", json_integer(INT64_MIN));
    char *mine = json_dump_text(v);
    char *theirs = json_dumps(v, JSON_COMPACT);
    ck_assert_str_eq(mine, theirs);
    free(mine);
    free(theirs);
    char *compact = json_dumps(v, JSON_COMPACT);
    for (int indent = 1; indent <= 4; indent++) { /* txctl's layout */
        mine = json_dump_text_indent(v, indent);
        theirs = json_dumps(v, JSON_INDENT(indent));
        ck_assert_str_eq(mine, theirs);
        free(mine);
        /* the same layout from the text, parsed or not, compact or not */
        mine = json_text_reindent(compact, strlen(compact), indent);
        ck_assert_str_eq(mine, theirs);
        free(mine);
        mine = json_text_reindent(theirs, strlen(theirs), indent);
        ck_assert_str_eq(mine, theirs);
        free(mine);
        free(theirs);
    }
    free(compact);
    /* numbers no parser here could hold keep every digit */
    static const char big[] = "{\"rows\":[{\"j\":123456789012345678901234567890.000000001,"
                              "\"s\":\"a,\\\"[b]\\\\\"}],\"e\":[]}";
    mine = json_text_reindent(big, strlen(big), 2);
    ck_assert_str_eq(mine, "{\n  \"rows\": [\n    {\n      \"j\": "
                           "123456789012345678901234567890.000000001,\n      \"s\": "
                           "\"a,\\\"[b]\\\\\"\n    }\n  ],\n  \"e\": []\n}");
    free(mine);
    json_decref(v);
    for (const char *s = "\"plain\"\0" "17\0" "null\0" "[]\0"; *s; s += strlen(s) + 1) {
        v = json_loads(s, JSON_DECODE_ANY, NULL);
        mine = json_dump_text(v);
        ck_assert_str_eq(mine, s);
        free(mine);
        json_decref(v);
    }

    /* Reals: shortest, and still reals when read back. */
    v = json_loads("{\"price\":19.99,\"n\":5.0,\"l\":[0.1,1e300,-0.0,2.5e-8,0.30000000000000004]}", 0,
                   NULL);
    ck_assert_ptr_nonnull(v);
    mine = json_dump_text(v);
    ck_assert_str_eq(mine,
                     "{\"price\":19.99,\"n\":5.0,\"l\":[0.1,1e+300,-0.0,2.5e-08,0.30000000000000004]}");
    json_t *back = json_loads(mine, 0, NULL);
    ck_assert(json_equal(back, v));
    ck_assert(json_is_real(json_object_get(back, "n")));
    json_decref(back);
    free(mine);
    json_decref(v);
    ck_assert_ptr_null(json_dump_text(NULL));
}
END_TEST

/* utf8_valid is jansson's rule: on random bytes it accepts exactly what
 * json_stringn accepts (NUL aside: ours refuses it, text from PostgreSQL
 * has none); and json_text_string_lossy writes what json_string_lossy
 * holds. */
START_TEST(test_utf8_trim_partial)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"abc", "abc"},
        {"a\xC3\xA9", "a\xC3\xA9"},             /* é, whole */
        {"a\xC3", "a"},                          /* é cut after its lead byte */
        {"x\xE2\x82\xAC", "x\xE2\x82\xAC"},       /* €, whole */
        {"x\xE2\x82", "x"},                      /* € cut after 2 of 3 bytes */
        {"x\xE2", "x"},
        {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"}, /* U+1F600, whole */
        {"\xF0\x9F\x98", ""},
        {"ok \xC3\xA9\xC3", "ok \xC3\xA9"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%s", cases[i].in);
        utf8_trim_partial(buf);
        ck_assert_str_eq(buf, cases[i].out);
        ck_assert(utf8_valid(buf, strlen(buf)));
    }
    /* What the agent did with a long non-ASCII PostgreSQL message: a 256-byte
     * buffer cut it inside a character, and json_string gave NULL. */
    char msg[600] = "invalid input syntax for type integer: \"";
    for (int i = 0; i < 200; i++)
        strcat(msg, "\xC3\xA9");
    char reason[256];
    snprintf(reason, sizeof(reason), "%s", msg);
    ck_assert(!utf8_valid(reason, strlen(reason)));
    utf8_trim_partial(reason);
    ck_assert(utf8_valid(reason, strlen(reason)));
    json_t *j = json_string(reason);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
}
END_TEST

START_TEST(test_utf8_valid)
{
    static const unsigned char pick[] = {'a', '"', '\\', 0x01, 0x7f, 0x80, 0xbf, 0xc0, 0xc2,
                                         0xc3, 0xa9, 0xdf, 0xe0, 0xa0, 0xed, 0x9f, 0xef, 0xf0,
                                         0x90, 0xf4, 0x8f, 0xf5, 0xff};
    unsigned seed = 20261126;
    size_t valid = 0;
    for (int k = 0; k < 200000; k++) {
        char buf[8];
        size_t len = (size_t)(rand_r(&seed) % 7);
        for (size_t j = 0; j < len; j++)
            buf[j] = (char)pick[rand_r(&seed) % sizeof(pick)];
        buf[len] = '\0';
        json_t *j = json_stringn(buf, len);
        bool mine = utf8_valid(buf, len);
        ck_assert_msg(mine == (j != NULL), "case %d (%zu bytes): utf8_valid %d, jansson %d", k,
                      len, mine, j != NULL);
        valid += mine;
        json_t *lossy = json_string_lossy(buf);
        char *want = json_dumps(lossy, JSON_COMPACT | JSON_ENCODE_ANY);
        strbuf sb;
        strbuf_init(&sb);
        json_text_string_lossy(&sb, buf, len);
        ck_assert_str_eq(sb.data, want);
        strbuf_free(&sb);
        free(want);
        json_decref(lossy);
        json_decref(j);
    }
    ck_assert_msg(valid > 10000 && valid < 190000, "%zu valid: the cases do not mix", valid);
    ck_assert(!utf8_valid("a\0b", 3));
    ck_assert(utf8_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    ck_assert(!utf8_valid("\xf4\x90\x80\x80", 4)); /* past it */
    ck_assert(!utf8_valid("\xe0\x9f\xbf", 3));      /* overlong */
    ck_assert(!utf8_valid("\xed\xa0\x80", 3));      /* a surrogate */
    ck_assert(!utf8_valid("\xc3", 1));              /* cut short */
}
END_TEST

START_TEST(test_metrics_text)
{
    for (int i = 1; i < HIST_BUCKETS; i++)
        ck_assert(hist_bounds[i] > hist_bounds[i - 1]);
    ck_assert(fabs(hist_bounds[HIST_BUCKETS - 1] - 10.0) < 1e-9);

    metric_counter c = {0};
    metric_gauge g = {0};
    metric_histogram h;
    memset(&h, 0, sizeof(h));
    counter_inc(&c);
    counter_inc(&c);
    gauge_add(&g, 5);
    gauge_add(&g, -7);
    histogram_observe_us(&h, 50);       /* <= 0.0001 */
    histogram_observe_us(&h, 1000);     /* exactly 0.001 */
    histogram_observe_us(&h, 1500);     /* 0.002 */
    histogram_observe_us(&h, 60000000); /* +Inf */
    strbuf sb;
    strbuf_init(&sb);
    metric_write_header(&sb, "txcoord_commits_total", "counter", "Commits.");
    metric_write_counter(&sb, "txcoord_commits_total", "protocol=\"2pc\"", &c);
    metric_write_header(&sb, "txcoord_inflight", "gauge", "In flight.");
    metric_write_gauge(&sb, "txcoord_inflight", NULL, &g);
    metric_write_header(&sb, "txcoord_latency_seconds", "histogram", "Latency.");
    metric_write_histogram(&sb, "txcoord_latency_seconds", "op=\"commit\"", &h);
    const char *t = sb.data;
    ck_assert_ptr_nonnull(strstr(t, "# HELP txcoord_commits_total Commits.\n"
                                    "# TYPE txcoord_commits_total counter\n"
                                    "txcoord_commits_total{protocol=\"2pc\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(t, "\ntxcoord_inflight -2\n"));
    ck_assert_ptr_nonnull(strstr(t, "txcoord_latency_seconds_bucket{op=\"commit\",le=\"0.0001\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(t, "txcoord_latency_seconds_bucket{op=\"commit\",le=\"0.0005\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(t, "txcoord_latency_seconds_bucket{op=\"commit\",le=\"0.001\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(t, "txcoord_latency_seconds_bucket{op=\"commit\",le=\"0.002\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(t, "txcoord_latency_seconds_bucket{op=\"commit\",le=\"10\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(t, "txcoord_latency_seconds_bucket{op=\"commit\",le=\"+Inf\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(t, "txcoord_latency_seconds_sum{op=\"commit\"} 60.00255\n"));
    ck_assert_ptr_nonnull(strstr(t, "txcoord_latency_seconds_count{op=\"commit\"} 4\n"));
    /* Without labels: no braces except le. */
    strbuf_reset(&sb);
    metric_write_histogram(&sb, "x", NULL, &h);
    ck_assert_ptr_nonnull(strstr(sb.data, "x_bucket{le=\"+Inf\"} 4\nx_sum 60.00255\nx_count 4\n"));
    /* Every line is "name{...} value" or a comment: 16 + 1 buckets + sum + count. */
    int lines = 0;
    for (const char *p = sb.data; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, HIST_BUCKETS + 3);
    strbuf_free(&sb);
}
END_TEST

/* ---- strbuf / log / util / fault ------------------------------------- */

START_TEST(test_strbuf)
{
    strbuf sb;
    strbuf_init(&sb);
    ck_assert_ptr_null(sb.data);
    strbuf_append(&sb, "ab");
    strbuf_appendn(&sb, "cdef", 2);
    strbuf_appendf(&sb, "-%d-", 42);
    ck_assert_str_eq(sb.data, "abcd-42-");
    char big[1000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    strbuf_appendf(&sb, "%s!", big);
    ck_assert_uint_eq(sb.len, 8 + 999 + 1);
    ck_assert_int_eq(sb.data[sb.len], '\0');
    strbuf_reset(&sb);
    strbuf_insert(&sb, 0, "cd", 2);
    strbuf_insert(&sb, 0, "ab", 2);
    strbuf_insert(&sb, 2, "-", 1);
    strbuf_insert(&sb, 99, "!", 1); /* past the end: appended */
    ck_assert_str_eq(sb.data, "ab-cd!");
    ck_assert_uint_eq(sb.len, 6);
    strbuf_insert(&sb, 1, big, 999);
    ck_assert_uint_eq(sb.len, 6 + 999);
    ck_assert_int_eq(sb.data[1000], 'b');
    ck_assert_int_eq(sb.data[sb.len], '\0');
    strbuf_reset(&sb);
    ck_assert_str_eq(sb.data, "");
    char *taken = strbuf_take(&sb);
    ck_assert_str_eq(taken, "");
    ck_assert_ptr_null(sb.data);
    free(taken);
    taken = strbuf_take(&sb); /* empty strbuf still yields a string */
    ck_assert_str_eq(taken, "");
    free(taken);
    strbuf_free(&sb);
}
END_TEST

START_TEST(test_log_format)
{
    log_level lvl;
    ck_assert(log_level_parse("debug", &lvl) && lvl == LOG_DEBUG);
    ck_assert(log_level_parse("WARN", &lvl) && lvl == LOG_WARN);
    ck_assert(!log_level_parse("loud", &lvl));
    log_init("/usr/bin/txcoord", LOG_INFO);
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    txlog_info("3fa2b01c-4-17", "pg1", "prepared (%d ms)", 5);
    log_debug("hidden");
    log_warn("multi\nline");
    txlog_error("3fa2b01c-4-17", NULL, "only gid");
    char *out = unit_capture_end(&cap);
    int y, mo, d, hh, mm, ss, ms, pid;
    char rest[256];
    ck_assert_int_eq(sscanf(out, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ txcoord[%d] %255[^\n]", &y, &mo,
                            &d, &hh, &mm, &ss, &ms, &pid, rest), 9);
    ck_assert_int_eq(pid, (int)getpid());
    ck_assert_str_eq(rest, "INFO gid=3fa2b01c-4-17 participant=pg1 prepared (5 ms)");
    ck_assert_ptr_null(strstr(out, "hidden"));
    ck_assert_ptr_nonnull(strstr(out, " WARN multi line\n"));
    ck_assert_ptr_nonnull(strstr(out, " ERROR gid=3fa2b01c-4-17 only gid\n"));
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 3);
    free(out);
    /* Over-long lines are truncated, still one line. */
    char *huge = xmalloc(10000);
    memset(huge, 'z', 9999);
    huge[9999] = '\0';
    unit_capture_begin(&cap, dir);
    log_info("%s", huge);
    out = unit_capture_end(&cap);
    ck_assert_ptr_nonnull(strstr(out, "...\n"));
    ck_assert_int_lt((int)strlen(out), 4097);
    free(out);
    free(huge);
}
END_TEST

START_TEST(test_util)
{
    int64_t a = now_ms(), b = now_ms();
    ck_assert(b >= a);
    ck_assert(now_us() > 0);
    ck_assert(wall_ms() > 1600000000000LL);
    for (int att = 0; att < 20; att++) {
        int64_t d = backoff_ms(att, 100, 5000);
        ck_assert(d >= 50 && d <= 5000);
    }
    ck_assert(backoff_ms(0, 100, 5000) <= 100);
    char *s = xasprintf("%s-%d", "x", 3);
    ck_assert_str_eq(s, "x-3");
    free(s);
    atomic_int stop = 1;
    sleep_ms(100000, &stop); /* returns at once when stop is set */
    sleep_ms(1, NULL);
}
END_TEST

static const char *const points[] = {"before-decision-log", "after-decision-log",
                                     "disk-write=error", NULL};

START_TEST(test_fault_init)
{
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    ck_assert(fault_init(NULL, points));
    ck_assert(fault_init("", points));
    ck_assert(!fault_init("no-such-point", points));
    ck_assert(!fault_init("after-decision-log:0", points));
    ck_assert(!fault_init("after-decision-log:x", points));
    /* actions: exit (default) or pause:MS */
    ck_assert(!fault_init("after-decision-log=pause", points));
    ck_assert(!fault_init("after-decision-log=pause:", points));
    ck_assert(!fault_init("after-decision-log=pause:0", points));
    ck_assert(!fault_init("after-decision-log=pause:5x", points));
    ck_assert(!fault_init("after-decision-log=sleep:5", points));
    ck_assert(!fault_init("after-decision-log:0=pause:5", points));
    ck_assert(!fault_init("no-such-point=pause:5", points));
    ck_assert(fault_init("after-decision-log=exit", points));
    ck_assert_str_eq(fault_armed_name(), "after-decision-log");
    ck_assert(fault_init("after-decision-log:2=pause:5", points));
    ck_assert_str_eq(fault_armed_name(), "after-decision-log");
    ck_assert(fault_init("after-decision-log:3", points));
    fault_point("before-decision-log"); /* other point: nothing */
    fault_point("after-decision-log");  /* 1st */
    fault_point("after-decision-log");  /* 2nd */
    ck_assert(fault_init(NULL, points)); /* disarm */
    ck_assert_ptr_null(fault_armed_name());
    fault_point("after-decision-log");
    free(unit_capture_end(&cap));
}
END_TEST

/* error: fault_fails is false before the N-th hit and true from it on;
 * fault_point ignores an error point (it never exits for one). */
START_TEST(test_fault_error)
{
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    ck_assert(!fault_init("disk-write=errors", points));
    /* a spec that would never act is refused: an error point armed to
     * exit or pause, a crash point armed to fail */
    ck_assert(!fault_init("disk-write", points));
    ck_assert(!fault_init("disk-write:3", points));
    ck_assert(!fault_init("disk-write=pause:100", points));
    ck_assert(!fault_init("after-decision-log=error", points));
    ck_assert(fault_init("disk-write:2=error", points));
    ck_assert(!fault_fails("before-decision-log"));
    ck_assert(!fault_fails("disk-write")); /* 1st */
    ck_assert(fault_fails("disk-write"));  /* 2nd */
    fault_point("disk-write");             /* not an exit point: returns */
    ck_assert(fault_fails("disk-write"));  /* every later hit fails too */
    ck_assert(fault_init(NULL, points));
    ck_assert(!fault_fails("disk-write"));
    char *out = unit_capture_end(&cap);
    ck_assert_ptr_nonnull(strstr(out, "fault point disk-write armed: fail from hit 2 on"));
    ck_assert_ptr_nonnull(strstr(out, "fault point disk-write reached: failing (hit 2)"));
    ck_assert_ptr_nonnull(strstr(out, "arm it as disk-write=error"));
    free(out);
}
END_TEST

/* pause: nothing before the N-th hit; from it on every hit sleeps and returns. */
START_TEST(test_fault_pause)
{
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    ck_assert(fault_init("after-decision-log:2=pause:150", points));
    fault_point("after-decision-log"); /* 1st: no pause (no "(hit 1)" line below) */
    fault_point("before-decision-log"); /* another point: nothing */
    int64_t t1 = now_ms();
    fault_point("after-decision-log"); /* 2nd: pauses */
    int64_t t2 = now_ms();
    fault_point("after-decision-log"); /* 3rd: pauses too */
    int64_t t3 = now_ms();
    ck_assert(fault_init(NULL, points));
    char *out = unit_capture_end(&cap);
    ck_assert_int_ge(t2 - t1, 150); /* lower bounds only: a pause is at least its length */
    ck_assert_int_ge(t3 - t2, 150);
    ck_assert_ptr_nonnull(strstr(out, "fault point after-decision-log armed: pause 150 ms from hit 2"));
    ck_assert_ptr_nonnull(strstr(out, "fault point after-decision-log reached: pausing 150 ms (hit 2)"));
    ck_assert_ptr_nonnull(strstr(out, "fault point after-decision-log reached: pausing 150 ms (hit 3)"));
    ck_assert_ptr_null(strstr(out, "(hit 1)"));
    ck_assert_ptr_null(strstr(out, "crash point after-decision-log reached"));
    free(out);
}
END_TEST

START_TEST(test_fault_fires)
{
    unit_capture cap;
    unit_capture_begin(&cap, dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!fault_init("after-decision-log:2", points))
            _exit(3);
        fault_point("after-decision-log");
        fault_point("after-decision-log");
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    char *out = unit_capture_end(&cap);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 137);
    ck_assert_ptr_nonnull(strstr(out, "crash point after-decision-log reached"));
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_values_and_forms);
    tcase_add_test(tc, test_list_option);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_help_exits_zero);
    tcase_add_test(tc, test_host_port);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("misc");
    tcase_add_checked_fixture(tm, setup, teardown);
    tcase_add_test(tm, test_jsonutil);
    tcase_add_test(tm, test_real_format);
    tcase_add_test(tm, test_dump_text);
    tcase_add_test(tm, test_utf8_valid);
    tcase_add_test(tm, test_utf8_trim_partial);
    tcase_add_test(tm, test_metrics_text);
    tcase_add_test(tm, test_strbuf);
    tcase_add_test(tm, test_log_format);
    tcase_add_test(tm, test_util);
    tcase_add_test(tm, test_fault_init);
    tcase_add_test(tm, test_fault_fires);
    tcase_add_test(tm, test_fault_error);
    tcase_add_test(tm, test_fault_pause);
    suite_add_tcase(s, tm);
    return unit_run(s);
}
