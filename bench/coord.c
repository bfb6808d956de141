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
 * Outcomes: 200 with "outcome":"committed" = committed; a 409 whose reason
 * is a branch's no vote (" voted no") = aborted, as raw counts a no vote;
 * anything else (transport failure, another 409, another status, a 200
 * without the committed outcome) = error.
 *
 * The interactive form (coord_interactive_workload, --interactive): the same
 * transfer as a client that talks to the coordinator step by step, 4 calls
 * in sequence: POST /v1/transactions {"protocol":"2pc"} (201, gid), then
 * POST .../{gid}/statements with the debit on A, the same with the credit on
 * B, then POST .../{gid}/commit. A statement that fails ends the transfer
 * with a rollback: aborted for a 4xx, error otherwise.
 *
 * Invariants: each client thread builds its one-shot body once and only
 * changes the two ids (the interactive form builds its small bodies per call); httpc keeps one keep-alive connection per thread, so after the
 * first call no connection set-up is timed. Each call is bounded by
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
    char *base;      /* owned: {coordinator}/v1/transactions */
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
    x->base = xasprintf("%s/v1/transactions", o->coordinator);
    json_t *ba = branch_new(o->participant_a, SQL_DEBIT, &x->id_a);
    json_t *bb = branch_new(o->participant_b, SQL_CREDIT, &x->id_b);
    if (ba && bb)
        x->body = json_pack("{s:s, s:b, s:[o, o]}", "protocol", "2pc", "commit", 1, "branches",
                            ba, bb); /* steals ba, bb */
    if (!x->body) {
        client_error(c, "coordinator: cannot build the request body");
        free(x->base);
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
    free(x->base);
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

/* One POST of body (borrowed, may be NULL) to url; the caller clears call. */
static void post(const coord_ctx *x, httpc_call *call, const char *url, json_t *body)
{
    memset(call, 0, sizeof(*call));
    call->method = "POST";
    call->url = url;
    call->body = body;
    call->timeout_ms = (long)x->o->txn_timeout_ms;
    (void)httpc_request(call); /* status/error are filled either way */
}

/* A 409 "aborted" answer to a commit: aborted on SQL grounds (a branch voted
 * no: its statement failed, or its block did), as raw counts a no vote, or
 * an error (a participant that could not prepare or did not answer, a
 * timeout), as raw counts a lost connection or a timeout. */
static txn_outcome commit_409_kind(const httpc_call *call)
{
    const char *reason =
        call->response ? json_string_value(json_object_get(call->response, "reason")) : NULL;
    return reason && strstr(reason, " voted no") ? TXN_ABORTED : TXN_ERROR;
}

/* The interactive transfer: begin, debit on A, credit on B, commit. */
static txn_outcome interactive_txn(void *vctx, const bench_clock *clk, bench_client *c,
                                   uint64_t *rng)
{
    (void)clk;
    coord_ctx *x = vctx;
    httpc_call call;
    char why[200];
    json_t *begin = json_pack("{s:s}", "protocol", "2pc");
    post(x, &call, x->base, begin);
    json_decref(begin);
    const char *g = call.response ? json_string_value(json_object_get(call.response, "gid")) : NULL;
    if (call.status != 201 || !g) {
        describe_failure(&call, why, sizeof(why));
        client_error(c, "coordinator: begin: %s", why);
        httpc_call_clear(&call);
        return TXN_ERROR;
    }
    char *gid = xstrdup(g);
    httpc_call_clear(&call);
    char *stmt_url = xasprintf("%s/%s/statements", x->base, gid);
    const char *parts[2] = {x->o->participant_a, x->o->participant_b};
    const char *sqls[2] = {SQL_DEBIT, SQL_CREDIT};
    txn_outcome o = TXN_COMMITTED;
    for (int side = 0; side < 2 && o == TXN_COMMITTED; side++) {
        json_t *st = json_pack("{s:s, s:s, s:[i, I]}", "participant", parts[side], "sql",
                               sqls[side], "params", 1, (json_int_t)bench_pick_account(x->o, rng));
        post(x, &call, stmt_url, st);
        json_decref(st);
        if (call.status != 200) {
            /* 422: the statement failed (SQL grounds); anything else (the
             * transaction timed out, an agent did not answer) is an error */
            o = call.status == 422 ? TXN_ABORTED : TXN_ERROR;
            describe_failure(&call, why, sizeof(why));
            if (o == TXN_ERROR)
                client_error(c, "coordinator: statement: %s", why);
        }
        httpc_call_clear(&call);
    }
    char *end_url = xasprintf("%s/%s/%s", x->base, gid, o == TXN_COMMITTED ? "commit" : "rollback");
    post(x, &call, end_url, NULL);
    const char *outcome =
        call.response ? json_string_value(json_object_get(call.response, "outcome")) : NULL;
    if (o == TXN_COMMITTED) {
        if (call.status == 409 && commit_409_kind(&call) == TXN_ABORTED) {
            o = TXN_ABORTED;
        } else if (call.status != 200 || !outcome || strcmp(outcome, "committed") != 0) {
            o = TXN_ERROR;
            describe_failure(&call, why, sizeof(why));
            client_error(c, "coordinator: commit: %s", why);
        }
    }
    httpc_call_clear(&call);
    free(end_url);
    free(stmt_url);
    free(gid);
    return o;
}

static txn_outcome coord_txn(void *vctx, const bench_clock *clk, bench_client *c, uint64_t *rng)
{
    (void)clk;
    coord_ctx *x = vctx;
    json_integer_set(x->id_a, bench_pick_account(x->o, rng));
    json_integer_set(x->id_b, bench_pick_account(x->o, rng));
    httpc_call call;
    post(x, &call, x->base, x->body);

    txn_outcome o = TXN_ERROR;
    const char *outcome =
        call.response ? json_string_value(json_object_get(call.response, "outcome")) : NULL;
    if (call.status == 200 && outcome && strcmp(outcome, "committed") == 0) {
        o = TXN_COMMITTED;
    } else if (call.status == 409 && commit_409_kind(&call) == TXN_ABORTED) {
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

const bench_workload coord_interactive_workload = {
    .name = "coord-inter",
    .open = coord_open,
    .txn = interactive_txn,
    .close = coord_close,
};

bool coord_url_option(const char *prog, char **url)
{
    char err[400];
    char *u = httpc_url_normalize(*url, err, sizeof(err));
    if (!u) {
        fprintf(stderr, "%s: --coordinator: %s\n", prog, err);
        return false;
    }
    free(*url);
    *url = u;
    return true;
}

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
