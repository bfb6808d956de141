/*
 * test_fuzz.c - seeded random requests against the coordinator and the agents.
 *
 * REQUESTS requests drawn from a fixed seed (TXCOORD_IT_FUZZ_REQUESTS and
 * TXCOORD_IT_FUZZ_SEED override both): begin and one-shot bodies with values
 * of every JSON type in every field, statements from a list that mixes
 * ordinary SQL, SQL errors and transaction control, commit and rollback of
 * known and unknown gids, malformed bodies, unknown paths and methods, and
 * junk sent straight to the agents' branch endpoints. For every answer:
 *   - it arrives (no transport failure; the harness bounds each call);
 *   - its status is below 500, or 503;
 *   - an error status carries a JSON object with error.code, or, for commit
 *     and rollback, an "outcome";
 * every 50 requests and at the end the coordinator and each agent answer
 * /healthz with 200. Afterwards every transaction begun is rolled back, so
 * nothing stays prepared (checked fixture), and a sanitizer report in a
 * daemon's log fails the run (harness).
 * Agents get only bodies or gids they must refuse: a valid branch made
 * behind the coordinator's back would stay open until --branch-timeout-ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "util.h"

#define REQUESTS 600
#define MAX_GIDS 256

static const char *const sqls[] = {
    "UPDATE accounts SET balance = balance - $1 WHERE id = $2",
    "SELECT * FROM accounts WHERE id = $1",
    "SELECT 1",
    "SELECT $1::int",
    "SELECT $1::jsonb",
    "SELECT $1::numeric",
    "SELECT $1::bool",
    "SELECT $1::text[]",
    "COMMIT",
    "ROLLBACK",
    "PREPARE TRANSACTION 'x'",
    "BEGIN",
    "SAVEPOINT a",
    "ROLLBACK TO a",
    "SELECT 1; SELECT 2",
    "COMMIT; BEGIN",
    "SET statement_timeout = 1",
    "INSERT INTO accounts(id, balance) VALUES ($1, 0)",
    "SELECT 1/0",
    "LISTEN x",
    "COPY accounts TO STDOUT",
    "DISCARD ALL",
    "END",
    "ABORT",
    "SELECT repeat('x', 100000)",
    "SELECT generate_series(1, 3000)",
    "",
    " ;",
    "RESET ALL",
    "SELECT $2",
    "SELECT * FROM nope",
    "DO $$BEGIN COMMIT; END$$",
    "SELECT 'NaN'::numeric, NULL::int, '{\"a\":[1]}'::json",
};

static const char *const strings[] = {
    "",     "a", "pg1", "pg2", "pg9", "2pc", "3pc", "'; DROP TABLE accounts; --", "../..",
    "%00",  "é", "\xe2\x82\xac", "txc:1-1:pg1", "-1", "99999999999999999999", "a b",
};

static unsigned g_seed;

static int rnd(int n) { return (int)(rand_r(&g_seed) % (unsigned)n); }

static json_t *rnd_value(int depth)
{
    switch (rnd(depth < 3 ? 9 : 6)) {
    case 0: return json_null();
    case 1: return json_boolean(rnd(2));
    case 2: {
        static const json_int_t ints[] = {0, -1, 1, 2147483648LL, 9223372036854775807LL, -5};
        return json_integer(ints[rnd(6)]);
    }
    case 3: return json_real(rnd(2) ? 0.5 : 1e300);
    case 4:
    case 5: return json_string(strings[rnd((int)ARRAY_LEN(strings))]);
    case 6:
    case 7: {
        json_t *a = json_array();
        for (int i = rnd(4); i > 0; i--)
            json_array_append_new(a, rnd_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = rnd(3); i > 0; i--)
            json_object_set_new(o, strings[rnd((int)ARRAY_LEN(strings))], rnd_value(depth + 1));
        return o;
    }
    }
}

/* Usually the right type, sometimes anything. */
static json_t *maybe(json_t *good)
{
    if (rnd(5) == 0) {
        json_decref(good);
        return rnd_value(0);
    }
    return good;
}

static json_t *rnd_params(void)
{
    json_t *p = json_array();
    int n = rnd(4);
    for (int i = 0; i < n; i++)
        json_array_append_new(p, rnd(2) ? json_integer(1 + rnd(20)) : rnd_value(1));
    return maybe(p);
}

static json_t *rnd_statement(void)
{
    json_t *s = json_object();
    json_object_set_new(s, "sql", maybe(json_string(sqls[rnd((int)ARRAY_LEN(sqls))])));
    if (rnd(4))
        json_object_set_new(s, "params", rnd_params());
    return maybe(s);
}

static json_t *rnd_begin(void)
{
    json_t *b = json_object();
    static const char *const protos[] = {"2pc", "3pc", "2PC", "xa", ""};
    if (rnd(5))
        json_object_set_new(b, "protocol", maybe(json_string(protos[rnd(5)])));
    /* short timeouts: a random statement may hold locks until then */
    if (rnd(5))
        json_object_set_new(b, "timeout_ms", maybe(json_integer(rnd(2) ? 2000 : 1 + rnd(3000))));
    if (rnd(2)) {
        json_t *branches = json_array();
        for (int i = rnd(3); i > 0; i--) {
            json_t *br = json_object();
            json_object_set_new(br, "participant", maybe(json_string(strings[2 + rnd(3)])));
            json_t *st = json_array();
            for (int k = rnd(3); k > 0; k--)
                json_array_append_new(st, rnd_statement());
            json_object_set_new(br, "statements", maybe(st));
            json_array_append_new(branches, maybe(br));
        }
        json_object_set_new(b, "branches", maybe(branches));
        if (rnd(3))
            json_object_set_new(b, "commit", maybe(json_true()));
    }
    if (rnd(6) == 0)
        json_object_set_new(b, strings[rnd((int)ARRAY_LEN(strings))], rnd_value(0));
    return b;
}

static const char *const malformed[] = {
    "{", "[]", "null", "\"x\"", "{\"protocol\":", "\xff\xfe", "{\"a\":1}{}", "{{{{{{{{", " ",
    "{\"sql\":\"SELECT 1\\u0000\"}", "{\"protocol\":\"2pc\",\"timeout_ms\":1e999}",
    "{\"participant\":\"pg1\",\"sql\":\"SELECT 1\",\"params\":[1,[2,[3]]]}",
};

typedef struct {
    char *gids[MAX_GIDS];
    int n;
    int checked;
} fuzz_state;

static const char *pick_gid(fuzz_state *fs)
{
    static const char *const bad[] = {"nope", "0badc0de-1-1", "a'b", "%2e%2e", "x%20y",
                                      "00000000-0-0"};
    if (fs->n > 0 && rnd(5))
        return fs->gids[rnd(fs->n)];
    return bad[rnd((int)ARRAY_LEN(bad))];
}

/* The checks every answer must pass. */
static void check_answer(fuzz_state *fs, const char *what, const char *body, const h_resp *r)
{
    fs->checked++;
    ck_assert_msg(r->status != 0, "%s: no answer (%s); request body: %.300s", what, r->error,
                  body ? body : "");
    ck_assert_msg(r->status < 500 || r->status == 503, "%s: %s; request body: %.300s", what,
                  h_desc(r), body ? body : "");
    if (r->status >= 400) {
        bool ok = json_is_object(r->json) &&
                  (h_err_code(r)[0] != '\0' || json_is_string(json_object_get(r->json, "outcome")));
        ck_assert_msg(ok, "%s: error answer without error.code: %s; request body: %.300s", what,
                      h_desc(r), body ? body : "");
    }
}

static void send_json(fuzz_state *fs, const char *method, const char *url, json_t *body,
                      h_resp *out)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    h_resp r = h_http(method, url, text, text ? strlen(text) : 0);
    check_answer(fs, url, text, &r);
    free(text);
    json_decref(body);
    if (out)
        *out = r;
    else
        h_resp_clear(&r);
}

static void healthy(fuzz_state *fs)
{
    for (int i = 0; i <= H_PARTICIPANTS; i++) {
        char *url = xasprintf("%s/healthz", i == 0 ? h_coord_url() : h_agent_url(i));
        h_resp r = h_http("GET", url, NULL, 0);
        ck_assert_msg(r.status == 200, "after %d requests: %s: %s", fs->checked, url, h_desc(&r));
        h_resp_clear(&r);
        free(url);
    }
}

static void one_request(fuzz_state *fs)
{
    const char *coord = h_coord_url();
    char *url = NULL;
    int kind = rnd(100);
    if (kind < 30) {
        url = xasprintf("%s/v1/transactions", coord);
        h_resp r;
        send_json(fs, "POST", url, rnd_begin(), &r);
        if (r.status == 201 && fs->n < MAX_GIDS)
            fs->gids[fs->n++] = xstrdup(h_str(r.json, "gid"));
        h_resp_clear(&r);
    } else if (kind < 55) {
        url = xasprintf("%s/v1/transactions/%s/statements", coord, pick_gid(fs));
        json_t *b = rnd_statement();
        if (json_is_object(b)) {
            json_object_set_new(b, "participant", maybe(json_string(strings[2 + rnd(3)])));
            if (rnd(6) == 0)
                json_object_del(b, "sql");
        }
        send_json(fs, "POST", url, b, NULL);
    } else if (kind < 67) {
        static const char *const verbs[] = {"commit", "rollback", "abort", ""};
        url = xasprintf("%s/v1/transactions/%s/%s", coord, pick_gid(fs), verbs[rnd(4)]);
        send_json(fs, "POST", url, rnd(2) ? NULL : rnd_value(0), NULL);
    } else if (kind < 75) {
        static const char *const methods[] = {"GET", "DELETE", "PUT", "PATCH", "POST"};
        static const char *const paths[] = {"/v1/transactions", "/v1/participants", "/healthz",
                                            "/metrics", "/", "/v1", "/v1/transactions/%s",
                                            "/v1/transactions/%s/commit/x"};
        const char *p = paths[rnd((int)ARRAY_LEN(paths))];
        char *path = xasprintf(p, pick_gid(fs)); /* extra argument ignored without %s */
        url = xasprintf("%s%s", coord, path);
        free(path);
        const char *m = methods[rnd(5)];
        send_json(fs, m, url, strcmp(m, "GET") == 0 ? NULL : rnd_value(0), NULL);
    } else if (kind < 88) {
        static const char *const paths[] = {"/v1/transactions", "/v1/transactions/%s/statements",
                                            "/v1/transactions/%s/commit"};
        char *path = xasprintf(paths[rnd(3)], pick_gid(fs));
        url = xasprintf("%s%s", coord, path);
        free(path);
        const char *body = malformed[rnd((int)ARRAY_LEN(malformed))];
        h_resp r = h_http("POST", url, body, strlen(body));
        check_answer(fs, url, body, &r);
        h_resp_clear(&r);
    } else {
        /* straight to an agent, with something it must refuse */
        static const char *const verbs[] = {"prepare", "commit", "rollback", "statements",
                                            "precommit", ""};
        static const char *const bad_gids[] = {"nope", "a'b", "x%20y", "1-1", "-"};
        int agent = 1 + rnd(H_PARTICIPANTS);
        bool good_gid = rnd(2) && fs->n > 0;
        const char *gid = good_gid ? fs->gids[rnd(fs->n)] : bad_gids[rnd(5)];
        url = xasprintf("%s/v1/branches/%s/%s", h_agent_url(agent), gid, verbs[rnd(6)]);
        json_t *b;
        if (good_gid) {
            /* a known gid: only bodies that cannot start a branch */
            b = json_object();
            json_object_set_new(b, "participant", json_string(rnd(2) ? "pg9" : ""));
            json_object_set_new(b, "statements", rnd_value(1));
        } else {
            b = rnd(2) ? rnd_begin() : rnd_statement();
        }
        h_resp r;
        send_json(fs, "POST", url, b, &r);
        /* a bad gid, another participant's name or no verb: refused (4xx)
         * before anything reaches a session */
        ck_assert_msg(r.status >= 400 && r.status < 500, "%s: must be refused: %s", url,
                      h_desc(&r));
        h_resp_clear(&r);
    }
    free(url);
}

START_TEST(random_requests)
{
    const char *env = getenv("TXCOORD_IT_FUZZ_REQUESTS");
    int n = env && atoi(env) > 0 ? atoi(env) : REQUESTS;
    env = getenv("TXCOORD_IT_FUZZ_SEED");
    g_seed = env && *env ? (unsigned)strtoul(env, NULL, 0) : 0xf0220001u;
    fprintf(stderr, "fuzz: %d requests, seed 0x%x\n", n, g_seed);
    fuzz_state fs = {0};
    for (int i = 0; i < n; i++) {
        one_request(&fs);
        if (i % 50 == 49)
            healthy(&fs);
    }
    healthy(&fs);
    /* leave nothing behind: roll back what is still open */
    for (int i = 0; i < fs.n; i++) {
        h_resp r = h_rollback(fs.gids[i]);
        ck_assert_msg(r.status == 200 || r.status == 409, "rollback %s: %s", fs.gids[i], h_desc(&r));
        h_resp_clear(&r);
        free(fs.gids[i]);
    }
    fprintf(stderr, "fuzz: %d answers checked, %d transactions begun\n", fs.checked, fs.n);
}
END_TEST

TCase *tc_fuzz(void)
{
    TCase *tc = h_tcase("fuzz", 300);
    tcase_add_test(tc, random_requests);
    return tc;
}
