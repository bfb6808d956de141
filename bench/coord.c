/*
 * coord.c - the coordinator workload: one-shot two-branch transfers through
 * POST {coordinator}/v1/transactions (common/httpc.h).
 *
 * One transfer = one HTTP call with the body
 *   {"protocol":"2pc","commit":true,"branches":[
 *     {"participant":A,"statements":[{"sql":"UPDATE accounts SET balance = balance - $1
 *                                            WHERE id = $2","params":[1,X]}]},
 *     {"participant":B,"statements":[{"sql":"UPDATE accounts SET balance = balance + $1
 *                                            WHERE id = $2","params":[1,Y]}]}]}
 * Outcomes: 200 with "outcome":"committed" = committed; 409 = aborted (a
 * branch voted no or failed); anything else (transport failure, another
 * status, a 200 without the committed outcome) = error.
 *
 * Invariants: each client thread builds its body once and only changes the
 * two ids; httpc keeps one keep-alive connection per thread, so after the
 * first call no connection set-up is timed. The call is bounded by
 * txn_timeout_ms.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "httpc.h"
#include "log.h"

static const char SQL_DEBIT[] = "UPDATE accounts SET balance = balance - $1 WHERE id = $2";
static const char SQL_CREDIT[] = "UPDATE accounts SET balance = balance + $1 WHERE id = $2";

typedef struct {
    const bench_opts *o;
    char *url;       /* owned */
    json_t *body;    /* owned */
    json_t *id_a;    /* borrowed from body: the debited account id */
    json_t *id_b;    /* borrowed from body: the credited account id */
    bool abort_logged;
} coord_ctx;

/* {"participant":p,"statements":[{"sql":sql,"params":[1,<id>]}]}; *id_out borrowed. */
static json_t *branch_new(const char *participant, const char *sql, json_t **id_out)
{
    json_t *id = json_integer(1);
    json_t *b = json_pack("{s:s, s:[{s:s, s:[i, o]}]}", "participant", participant, "statements",
                          "sql", sql, "params", 1, id); /* "o" steals id */
    if (!b)
        return NULL;
    *id_out = id;
    return b;
}

static void *coord_open(const bench_opts *o, int thread_no, bench_client *c)
{
    (void)thread_no;
    coord_ctx *x = xcalloc(1, sizeof(*x));
    x->o = o;
    x->url = xasprintf("%s/v1/transactions", o->coordinator);
    json_t *ba = branch_new(o->participant_a, SQL_DEBIT, &x->id_a);
    json_t *bb = branch_new(o->participant_b, SQL_CREDIT, &x->id_b);
    if (ba && bb)
        x->body = json_pack("{s:s, s:b, s:[o, o]}", "protocol", "2pc", "commit", 1, "branches",
                            ba, bb); /* steals ba, bb */
    if (!x->body) {
        client_error(c, "coordinator: cannot build the request body");
        free(x->url);
        free(x);
        return NULL;
    }
    return x;
}

static void coord_close(void *vctx)
{
    coord_ctx *x = vctx;
    if (!x)
        return;
    json_decref(x->body);
    free(x->url);
    free(x);
}

/* "<status> <error.code>: <error.message>" or the transport error. */
static void describe_failure(const httpc_call *call, char *buf, size_t len)
{
    if (call->status == 0) {
        snprintf(buf, len, "transport: %.180s", call->error);
        return;
    }
    json_t *err = call->response ? json_object_get(call->response, "error") : NULL;
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    const char *outcome = call->response
                              ? json_string_value(json_object_get(call->response, "outcome"))
                              : NULL;
    snprintf(buf, len, "HTTP %ld%s%s%s%s%s%s", call->status, code ? " " : "", code ? code : "",
             msg ? ": " : "", msg ? msg : "", outcome ? " outcome " : "", outcome ? outcome : "");
}

static txn_outcome coord_txn(void *vctx, const bench_clock *clk, bench_client *c, uint64_t *rng)
{
    (void)clk;
    coord_ctx *x = vctx;
    json_integer_set(x->id_a, bench_pick_account(x->o, rng));
    json_integer_set(x->id_b, bench_pick_account(x->o, rng));
    httpc_call call;
    memset(&call, 0, sizeof(call));
    call.method = "POST";
    call.url = x->url;
    call.body = x->body;
    call.timeout_ms = (long)x->o->txn_timeout_ms;
    (void)httpc_request(&call); /* status/error are filled either way */

    txn_outcome o = TXN_ERROR;
    const char *outcome =
        call.response ? json_string_value(json_object_get(call.response, "outcome")) : NULL;
    if (call.status == 200 && outcome && strcmp(outcome, "committed") == 0) {
        o = TXN_COMMITTED;
    } else if (call.status == 409) {
        o = TXN_ABORTED;
        if (!x->abort_logged) {
            /* say why this client's first abort happened; aborts are not errors */
            x->abort_logged = true;
            char why[200];
            describe_failure(&call, why, sizeof(why));
            const char *reason =
                call.response ? json_string_value(json_object_get(call.response, "reason")) : NULL;
            log_info("coordinator: first abort of client %d: %s%s%s", c->thread_no, why,
                     reason ? " reason: " : "", reason ? reason : "");
        }
    } else {
        char why[200];
        describe_failure(&call, why, sizeof(why));
        client_error(c, "coordinator: %s", why);
    }
    httpc_call_clear(&call);
    return o;
}

const bench_workload coord_workload = {
    .name = "coordinator",
    .open = coord_open,
    .txn = coord_txn,
    .close = coord_close,
};

bool coord_preflight(const bench_opts *o)
{
    char *url = xasprintf("%s/healthz", o->coordinator);
    httpc_call call;
    memset(&call, 0, sizeof(call));
    call.method = "GET";
    call.url = url;
    call.timeout_ms = 5000;
    (void)httpc_request(&call);
    bool ok = call.status == 200;
    if (!ok) {
        char why[200];
        describe_failure(&call, why, sizeof(why));
        log_error("coordinator %s is not healthy: %s", url, why);
    }
    httpc_call_clear(&call);
    free(url);
    return ok;
}
