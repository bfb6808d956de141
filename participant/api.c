/*
 * api.c - the HTTP/JSON API of txagent: routing, request validation, answers.
 *
 * Invariants:
 *   - Everything a request can be refused for without touching PostgreSQL
 *     (gid syntax, participant name, field types, transaction-control SQL,
 *     parameter conversion) is checked here before any branch is looked up,
 *     so a refused request leaves the branch unchanged.
 *   - Every handler answers exactly once; the branch work itself is in
 *     branch_ops.c.
 */
#include "api.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "branch.h"
#include "gid.h"
#include "httpc.h"
#include "httpd.h"
#include "jsonutil.h"
#include "log.h"
#include "ops.h"
#include "pg.h"
#include "pool.h"
#include "strbuf.h"

static void reply(http_request *req, op_result *res)
{
    if (res->http == 200 && res->text)
        http_reply_json_text(req, 200, res->text, res->text_len);
    else if (res->http == 200)
        http_reply_json(req, 200, res->json ? res->json : json_object());
    else
        http_reply_error_extra(req, res->http, res->code, res->json, "%s", res->message);
}

/* The gid path parameter; answers 400 invalid_gid and returns NULL if bad. */
static const char *req_gid(http_request *req)
{
    const char *gid = http_req_param(req, 0);
    if (!gid || !gid_valid(gid)) {
        http_reply_error(req, 400, "invalid_gid", "invalid gid '%s'", gid ? gid : "");
        return NULL;
    }
    return gid;
}

/* Common prelude of every POST: valid gid, a JSON body, our participant name.
 * Answers and returns false on the first problem. */
static bool post_prelude(http_request *req, agent *ag, const char **gid, json_t **body)
{
    char err[JSON_ERR_LEN];
    const char *participant = NULL;
    if (!(*gid = req_gid(req)))
        return false;
    *body = http_req_json(req);
    if (!*body) {
        http_reply_error(req, 400, "invalid_request", "a JSON body is required");
        return false;
    }
    if (!json_field_string(*body, "participant", true, &participant, err, sizeof(err))) {
        http_reply_error(req, 400, "invalid_request", "%s", err);
        return false;
    }
    if (strcmp(participant, ag->name) != 0) {
        http_reply_error_extra(req, 409, "participant_mismatch",
                               json_pack("{s:s}", "participant", ag->name),
                               "this agent is '%s', not '%s'", ag->name, participant);
        return false;
    }
    return true;
}

/* Validate {"sql", "params"?} into st (params owned by st: pg_params_free).
 * Answers and returns false on a problem. */
static bool parse_stmt(http_request *req, json_t *obj, const char *where, op_stmt *st)
{
    char err[JSON_ERR_LEN];
    json_t *params = NULL;
    st->sql = NULL;
    st->params = NULL;
    st->nparams = 0;
    if (!json_field_string(obj, "sql", true, &st->sql, err, sizeof(err)) ||
        !json_field_array(obj, "params", false, &params, err, sizeof(err))) {
        http_reply_error(req, 400, "invalid_request", "%s%s", where, err);
        return false;
    }
    if (sql_is_empty(st->sql)) {
        http_reply_error(req, 400, "invalid_request",
                         "%sfield 'sql' holds no statement (only blanks, ';' or comments)", where);
        return false;
    }
    if (sql_is_transaction_control(st->sql)) {
        http_reply_error(req, 400, "transaction_control",
                         "%stransaction control statements are not allowed in a branch "
                         "(the coordinator ends transactions)", where);
        return false;
    }
    if (sql_is_copy_stream(st->sql)) {
        http_reply_error(req, 400, "copy_not_supported",
                         "%sCOPY FROM STDIN / TO STDOUT is not supported (use INSERT ... "
                         "VALUES or a SELECT)", where);
        return false;
    }
    if (params && !pg_params_from_json(params, &st->params, &st->nparams, err, sizeof(err))) {
        http_reply_error(req, 400, "invalid_params", "%s%s", where, err);
        return false;
    }
    return true;
}

static void h_statements(http_request *req, void *app)
{
    agent *ag = app;
    const char *gid;
    json_t *body;
    char err[JSON_ERR_LEN];
    long long timeout_ms = 0, seq = 0;
    bool may_begin = true; /* absent: as before the field existed */
    if (!post_prelude(req, ag, &gid, &body))
        return;
    if (!json_field_int(body, "timeout_ms", false, 1, 24LL * 3600 * 1000, &timeout_ms, err,
                        sizeof(err)) ||
        !json_field_int(body, "seq", false, 1, INT64_MAX, &seq, err, sizeof(err)) ||
        !json_field_bool(body, "begin", false, &may_begin, err, sizeof(err))) {
        http_reply_error(req, 400, "invalid_request", "%s", err);
        return;
    }
    op_stmt st;
    if (!parse_stmt(req, body, "", &st))
        return;
    op_result res = {0};
    op_statement(ag, gid, &st, timeout_ms, may_begin, seq, &res);
    if (st.params)
        pg_params_free(st.params, st.nparams);
    reply(req, &res);
}

#define TIMEOUT_MAX_MS (24LL * 3600 * 1000)

/* A peer's URL as the coordinator sends it (its --participant URL:
 * http(s), or http+unix for an agent on the coordinator's host) into out
 * (TP_URL_MAX bytes), as httpc_url_normalize makes it. false if it is none. */
static bool peer_url(const char *url, char *out)
{
    char err[400];
    char *u = strlen(url) < TP_URL_MAX && strncmp(url, "unix:", 5) != 0
                  ? httpc_url_normalize(url, err, sizeof(err))
                  : NULL;
    bool ok = u && strlen(u) < TP_URL_MAX;
    if (ok)
        snprintf(out, TP_URL_MAX, "%s", u);
    free(u);
    return ok;
}

/* The 3PC members of a prepare body into tp (peers owned by the caller:
 * *peers_out, free it). Answers and returns false on a problem. */
static bool parse_3pc(http_request *req, agent *ag, json_t *body, tp_params *tp,
                      tp_peer **peers_out)
{
    char err[JSON_ERR_LEN];
    json_t *peers = NULL;
    long long ut = ag->tp_uncertain_timeout_ms, pt = ag->tp_precommit_timeout_ms;
    const char *term = NULL;
    *peers_out = NULL;
    if (!json_field_array(body, "peers", true, &peers, err, sizeof(err)) ||
        !json_field_int(body, "uncertain_timeout_ms", false, 1, TIMEOUT_MAX_MS, &ut, err,
                        sizeof(err)) ||
        !json_field_int(body, "precommit_timeout_ms", false, 1, TIMEOUT_MAX_MS, &pt, err,
                        sizeof(err)) ||
        !json_field_string(body, "termination", false, &term, err, sizeof(err))) {
        http_reply_error(req, 400, "invalid_request", "%s", err);
        return false;
    }
    tp->termination = (tp_termination)ag->tp_termination;
    if (term && !tp_termination_parse(term, &tp->termination)) {
        http_reply_error(req, 400, "invalid_request",
                         "field 'termination' must be \"protocol\", \"timeout\" or \"blocking\"");
        return false;
    }
    size_t n = json_array_size(peers);
    if (n == 0 || n > TP_MAX_PEERS) {
        http_reply_error(req, 400, "invalid_request", "field 'peers' must list 1..%d participants",
                         TP_MAX_PEERS);
        return false;
    }
    tp_peer *ps = xcalloc(n, sizeof(tp_peer));
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(peers, i); /* borrowed */
        const char *name = NULL, *url = NULL;
        if (!json_is_object(item) ||
            !json_field_string(item, "participant", true, &name, err, sizeof(err)) ||
            !json_field_string(item, "url", true, &url, err, sizeof(err)) ||
            !participant_name_valid(name) || !peer_url(url, ps[i].url)) {
            http_reply_error(req, 400, "invalid_request",
                             "peers[%zu]: needs a valid \"participant\" and an http(s) or "
                             "http+unix \"url\" shorter than %d bytes",
                             i, TP_URL_MAX);
            free(ps);
            return false;
        }
        snprintf(ps[i].participant, sizeof(ps[i].participant), "%s", name);
    }
    tp->peers = ps;
    tp->npeers = n;
    tp->uncertain_timeout_ms = ut;
    tp->precommit_timeout_ms = pt;
    *peers_out = ps;
    return true;
}

static void h_prepare(http_request *req, void *app)
{
    agent *ag = app;
    const char *gid;
    json_t *body;
    char err[JSON_ERR_LEN];
    const char *protocol = "2pc";
    json_t *arr = NULL;
    long long timeout_ms = 0;
    if (!post_prelude(req, ag, &gid, &body))
        return;
    if (!json_field_string(body, "protocol", false, &protocol, err, sizeof(err)) ||
        !json_field_array(body, "statements", false, &arr, err, sizeof(err)) ||
        !json_field_int(body, "timeout_ms", false, 1, TIMEOUT_MAX_MS, &timeout_ms, err,
                        sizeof(err))) {
        http_reply_error(req, 400, "invalid_request", "%s", err);
        return;
    }
    if (arr && json_array_size(arr) == 0) { /* else prepared as an unknown branch: "no" */
        http_reply_error(req, 400, "invalid_request",
                         "field 'statements' is empty: a one-shot branch needs a statement");
        return;
    }
    bool three = strcmp(protocol, "3pc") == 0;
    if (!three && strcmp(protocol, "2pc") != 0) {
        http_reply_error(req, 400, "unsupported_protocol", "protocol '%s' is not supported",
                         protocol);
        return;
    }
    if (three && !ag->tpc) {
        http_reply_error(req, 400, "no_data_dir",
                         "3pc needs durable branch state: this agent runs without --data-dir");
        return;
    }
    tp_params tp = {0};
    tp_peer *peers = NULL;
    if (three && !parse_3pc(req, ag, body, &tp, &peers))
        return;
    size_t n = arr ? json_array_size(arr) : 0;
    op_stmt stmts_buf[4];
    op_stmt *stmts = n <= ARRAY_LEN(stmts_buf) ? stmts_buf : xcalloc(n, sizeof(op_stmt));
    size_t parsed = 0;
    bool ok = true;
    for (; parsed < n && ok; parsed++) {
        char where[64];
        snprintf(where, sizeof(where), "statements[%zu]: ", parsed);
        json_t *item = json_array_get(arr, parsed); /* borrowed */
        if (!json_is_object(item)) {
            http_reply_error(req, 400, "invalid_request", "%smust be an object", where);
            ok = false;
            break;
        }
        ok = parse_stmt(req, item, where, &stmts[parsed]);
        if (!ok)
            break;
    }
    if (ok) {
        op_result res = {0};
        op_prepare_req pr = {.stmts = stmts, .n = n, .timeout_ms = timeout_ms,
                             .tp = three ? &tp : NULL};
        op_prepare(ag, gid, &pr, &res);
        reply(req, &res);
    }
    for (size_t i = 0; i < parsed && i < n; i++)
        if (stmts[i].params)
            pg_params_free(stmts[i].params, stmts[i].nparams);
    if (stmts != stmts_buf)
        free(stmts);
    free(peers);
}

/* The finishing calls (precommit, commit, rollback) take no body fields
 * beyond the participant check: one shape, three ops. */
typedef void (*gid_op_fn)(agent *ag, const char *gid, op_result *res);

static void run_gid_op(http_request *req, void *app, gid_op_fn op)
{
    agent *ag = app;
    const char *gid;
    json_t *body;
    if (!post_prelude(req, ag, &gid, &body))
        return;
    op_result res = {0};
    op(ag, gid, &res);
    reply(req, &res);
}

static void h_precommit(http_request *req, void *app)
{
    agent *ag = app;
    const char *gid;
    json_t *body;
    if (!post_prelude(req, ag, &gid, &body))
        return;
    const char *from = json_string_value(json_object_get(body, "from"));
    op_result res = {0};
    op_precommit(ag, gid, from && strcmp(from, "peer") == 0, &res);
    reply(req, &res);
}
/* commit and rollback: an optional "xid" (ops.h), digits only. */
static void run_finish(http_request *req, void *app, bool commit)
{
    agent *ag = app;
    const char *gid, *xid = NULL;
    json_t *body;
    char err[JSON_ERR_LEN];
    if (!post_prelude(req, ag, &gid, &body))
        return;
    if (!json_field_string(body, "xid", false, &xid, err, sizeof(err))) {
        http_reply_error(req, 400, "invalid_field", "%s", err);
        return;
    }
    if (xid && !xid8_text_valid(xid)) {
        http_reply_error(req, 400, "invalid_field", "xid: not a transaction's xid8 (digits, no leading zero, 3 to 2^64 - 1)");
        return;
    }
    op_result res = {0};
    if (commit)
        op_commit(ag, gid, xid, &res);
    else
        op_rollback(ag, gid, xid, &res);
    reply(req, &res);
}

static void h_commit(http_request *req, void *app) { run_finish(req, app, true); }
static void h_rollback(http_request *req, void *app) { run_finish(req, app, false); }
static void h_cancel(http_request *req, void *app) { run_gid_op(req, app, op_cancel); }

static void h_branch(http_request *req, void *app)
{
    const char *gid = req_gid(req);
    if (!gid)
        return;
    const char *fence = http_req_query(req, "fence");
    op_result res = {0};
    op_status(app, gid, fence && strcmp(fence, "1") == 0, &res);
    reply(req, &res);
}

static void h_branches(http_request *req, void *app)
{
    op_result res = {0};
    op_list(app, &res);
    reply(req, &res);
}

/* /healthz needs no token, so anyone may call it in a loop: PostgreSQL is
 * asked at most once per HEALTH_CACHE_MS (the probe holds health_mu, later
 * callers take its answer), and the probe never waits for a connection that
 * COMMIT/ROLLBACK PREPARED need. */
#define HEALTH_CACHE_MS 500
static pthread_mutex_t health_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t health_at_ms = -HEALTH_CACHE_MS; /* health_mu */
static px_status health_ps;                     /* health_mu */
static char health_msg[sizeof(((pg_res *)0)->message)]; /* health_mu */

static void h_healthz(http_request *req, void *app)
{
    agent *ag = app;
    pthread_mutex_lock(&health_mu);
    if (now_ms() - health_at_ms >= HEALTH_CACHE_MS) {
        pg_res r;
        health_ps = pool_query(ag->pool, 0, "SELECT 1", 0, NULL, &r);
        snprintf(health_msg, sizeof(health_msg), "%s", r.message);
        pg_res_clear(&r);
        health_at_ms = now_ms();
    }
    px_status ps = health_ps;
    char msg[sizeof(health_msg)];
    snprintf(msg, sizeof(msg), "%s", health_msg);
    pthread_mutex_unlock(&health_mu);
    if (ps == PX_OK)
        http_reply_json(req, 200, json_pack("{s:s, s:s}", "status", "ok", "participant", ag->name));
    else if (ps == PX_EXHAUSTED) /* every connection is busy working: PostgreSQL answers */
        http_reply_json(req, 200, json_pack("{s:s, s:s, s:s}", "status", "ok", "participant",
                                            ag->name, "pool", "exhausted"));
    else
        http_reply_error(req, 503, "database_unavailable", "PostgreSQL check failed: %s", msg);
}

static void h_metrics(http_request *req, void *app)
{
    agent *ag = app;
    agent_metrics *m = &ag->metrics;
    strbuf sb;
    strbuf_init(&sb);
    const struct {
        const char *name, *help;
        const metric_counter *c;
    } counters[] = {
        {"txagent_branches_begun_total", "Branches begun (BEGIN sent).", &m->begun},
        {"txagent_branches_prepared_total", "Branches prepared.", &m->prepared},
        {"txagent_branches_committed_total", "Branches committed (incl. read-only).",
         &m->committed},
        {"txagent_branches_aborted_total", "Branches aborted.", &m->aborted},
        {"txagent_branches_precommitted_total", "3PC branches precommitted.", &m->precommitted},
        {"txagent_results_too_large_total",
         "Statements cancelled: their rows passed --max-result-bytes (422 result_too_large).",
         &m->results_too_large},
    };
    for (size_t i = 0; i < ARRAY_LEN(counters); i++) {
        metric_write_header(&sb, counters[i].name, "counter", counters[i].help);
        metric_write_counter(&sb, counters[i].name, NULL, counters[i].c);
    }
    metric_write_header(&sb, "txagent_votes_total", "counter", "Prepare answers by vote.");
    metric_write_counter(&sb, "txagent_votes_total", "vote=\"yes\"", &m->vote_yes);
    metric_write_counter(&sb, "txagent_votes_total", "vote=\"no\"", &m->vote_no);
    metric_write_counter(&sb, "txagent_votes_total", "vote=\"read_only\"", &m->vote_read_only);
    metric_write_header(&sb, "txagent_3pc_terminations_total", "counter",
                        "3PC terminations run by this agent, by decision.");
    metric_write_counter(&sb, "txagent_3pc_terminations_total", "decision=\"commit\"",
                         &m->term_commit);
    metric_write_counter(&sb, "txagent_3pc_terminations_total", "decision=\"abort\"",
                         &m->term_abort);
    metric_write_counter(&sb, "txagent_3pc_terminations_total", "decision=\"wait\"",
                         &m->term_wait);
    metric_write_header(&sb, "txagent_sweep_resolved_total", "counter",
                        "Prepared branches the recovery sweep finished with the coordinator's "
                        "outcome.");
    metric_write_counter(&sb, "txagent_sweep_resolved_total", "outcome=\"committed\"",
                         &m->sweep_committed);
    metric_write_counter(&sb, "txagent_sweep_resolved_total", "outcome=\"aborted\"",
                         &m->sweep_aborted);
    metric_write_header(&sb, "txagent_sweep_open_rolled_back_total", "counter",
                        "Open (unprepared) branches the recovery sweep rolled back because the "
                        "coordinator says their transaction aborted (it restarted, or its "
                        "rollback never arrived).");
    metric_write_counter(&sb, "txagent_sweep_open_rolled_back_total", NULL,
                         &m->sweep_open_aborted);
    metric_write_header(&sb, "txagent_branches_in_doubt", "gauge",
                        "Prepared branches the last recovery sweep asked the coordinator about "
                        "and left prepared (no decision, coordinator unreachable, or not ours).");
    metric_write_gauge(&sb, "txagent_branches_in_doubt", NULL, &m->in_doubt);
    metric_write_header(&sb, "txagent_branches_in_doubt_oldest_seconds", "gauge",
                        "How long the oldest of them had been prepared (0: none).");
    strbuf_appendf(&sb, "txagent_branches_in_doubt_oldest_seconds %.3f\n",
                   (double)atomic_load(&m->in_doubt_oldest_ms.v) / 1000.0);
    metric_write_value(&sb, "txagent_http_unauthorized_total", "counter",
                       "Requests refused with 401: no or wrong token (--token-file).",
                       http_unauthorized_count());
    metric_write_header(&sb, "txagent_branches_in_progress", "gauge", "Branches active now.");
    metric_write_gauge(&sb, "txagent_branches_in_progress", NULL, &m->in_progress);
    metric_write_header(&sb, "txagent_branches_waiting", "gauge",
                        "Branches held in memory waiting for the coordinator, with their locks: "
                        "prepared (2PC: voted yes), uncertain (3PC: awaiting PreCommit), "
                        "precommitted (3PC: awaiting DoCommit).");
    metric_write_gauge(&sb, "txagent_branches_waiting", "state=\"prepared\"",
                       &m->waiting_prepared);
    metric_write_gauge(&sb, "txagent_branches_waiting", "state=\"uncertain\"",
                       &m->waiting_uncertain);
    metric_write_gauge(&sb, "txagent_branches_waiting", "state=\"precommitted\"",
                       &m->waiting_precommitted);
    metric_write_header(&sb, "txagent_prepare_seconds", "histogram",
                        "Prepare call latency, statements of the one-shot form included.");
    metric_write_histogram(&sb, "txagent_prepare_seconds", NULL, &m->prepare_latency);
    metric_write_value(&sb, "txagent_pool_connections", "gauge", "PostgreSQL connections open.",
                       (uint64_t)pool_open_count(ag->pool));
    metric_write_value(&sb, "txagent_branches_in_memory", "gauge",
                       "Branches held in memory (finished ones are kept a while).",
                       (uint64_t)branch_table_size(ag->table));
    http_reply_text(req, 200, "text/plain; version=0.0.4", sb.data ? sb.data : "");
    strbuf_free(&sb);
}

static const http_route routes[] = {
    {"POST", "/v1/branches/{gid}/statements", h_statements},
    {"POST", "/v1/branches/{gid}/prepare", h_prepare},
    {"POST", "/v1/branches/{gid}/precommit", h_precommit},
    {"POST", "/v1/branches/{gid}/commit", h_commit},
    {"POST", "/v1/branches/{gid}/rollback", h_rollback},
    {"POST", "/v1/branches/{gid}/cancel", h_cancel},
    {"GET", "/v1/branches/{gid}", h_branch},
    {"GET", "/v1/branches", h_branches},
    {"GET", "/healthz", h_healthz},
    {"GET", "/metrics", h_metrics},
};

http_server *api_start(agent *ag, http_listener *l, const char *host, size_t max_body)
{
    return http_server_start_on(l, host, routes, ARRAY_LEN(routes), ag, max_body);
}
