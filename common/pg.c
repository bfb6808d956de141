/*
 * pg.c - the one libpq wrapper (connect, exec, gid commands, rows as JSON text).
 *
 * Invariants:
 *   - Client SQL runs through PQexecParams only (extended protocol: one
 *     statement per call, parameters never interpolated, text format).
 *   - The only SQL text we build is "<verb> '<branch gid>'" for the three 2PC
 *     verbs; the gid must pass branch_gid_parse and is quoted by PQescapeLiteral.
 *     PREPARE TRANSACTION may end a pipeline (pg_exec_pipeline_prepare); COMMIT
 *     PREPARED and ROLLBACK PREPARED are always sent alone (PQexec).
 *   - pg_res is always fully initialised by pg_exec/pg_exec_gid, whatever the
 *     outcome; the caller releases it with pg_res_clear.
 *   - conn_dead is set for a NULL result, CONNECTION_BAD, SQLSTATE class 08 or
 *     57P01..57P03 (server shutting down / terminated us) at a severity other
 *     than ERROR (postgres_fdw/dblink raise class 08 at ERROR on a healthy
 *     session).
 *   - Connections carry connect_timeout, keepalives and tcp_user_timeout
 *     defaults; keywords in the caller's conninfo override ours.
 *   - Rows become JSON objects keyed by column name, every value kept (a
 *     repeated name gets a "_2", "_3", ... key: result_keys). Rows are
 *     written straight to JSON text (pg_value_text), never as a jansson
 *     tree: a client statement's rows (pg_exec_pipeline_rows) as they
 *     arrive, in single-row mode, and never past the caller's byte limit:
 *     past it the statement is cancelled, so such a result is never held
 *     whole.
 */
#include "pg.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gid.h"
#include "jsonutil.h"
#include "log.h"
#include "strbuf.h"

/* Type OIDs (pg_type.dat). */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700
#define OID_JSONB 3802


/* Copy s into dst (size n) without the trailing newline(s) libpq adds. */
static void copy_trimmed(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "");
    size_t len = strlen(dst);
    while (len > 0 && (dst[len - 1] == '\n' || dst[len - 1] == '\r' || dst[len - 1] == ' '))
        dst[--len] = '\0';
}

/* Server notices (NOTICE, WARNING, INFO: a client's RAISE NOTICE, or
 * PostgreSQL's own "there is no transaction in progress") would go to
 * stderr through libpq's default processor as they come: without the log
 * format, any number of lines, text a client chose (a forged log line,
 * say). Logged at debug instead: one line each (log.c replaces CR/LF), cut
 * at 300 bytes, nothing at all at the usual info level. */
static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("PostgreSQL notice: %.300s", message ? message : "");
}

PGconn *pg_connect(const char *conninfo, const char *participant)
{
    return pg_connect_as(conninfo, participant, NULL);
}

PGconn *pg_connect_as(const char *conninfo, const char *participant, const char *application_name)
{
    /* Ours first, the caller's conninfo (expanded from "dbname") next: later
     * wins. client_encoding and a forced application_name come after it, so
     * the conninfo cannot change them: every text in and out is UTF-8 (JSON),
     * and txagent finds its own sessions by their name. */
    const char *keys[] = {
        "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "fallback_application_name", "dbname",
        "client_encoding", "application_name", NULL,
    };
    const char *vals[] = {
        "5", "1", "10", "5", "3", "15000", "txcoord", conninfo ? conninfo : "", "UTF8",
        application_name, NULL,
    };
    if (!application_name)
        keys[ARRAY_LEN(keys) - 2] = NULL; /* end the list before it */
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        txlog_error(NULL, participant, "cannot connect to PostgreSQL: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        copy_trimmed(msg, sizeof(msg), PQerrorMessage(c));
        txlog_error(NULL, participant, "cannot connect to PostgreSQL: %s", msg);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, pg_notice, NULL);
    return c;
}

static void res_init(pg_res *out)
{
    out->res = NULL;
    out->status = PGRES_FATAL_ERROR;
    out->sqlstate[0] = '\0';
    out->message[0] = '\0';
    out->command[0] = '\0';
    out->conn_dead = false;
}

static bool sqlstate_kills_conn(const char *st)
{
    return strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 ||
           strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0;
}

/* Fill out from res (taking ownership of res). */
static bool res_fill(PGconn *c, PGresult *res, pg_res *out)
{
    out->res = res;
    if (!res) {
        out->status = PGRES_FATAL_ERROR;
        copy_trimmed(out->message, sizeof(out->message),
                     c ? PQerrorMessage(c) : "no connection");
        if (!out->message[0])
            snprintf(out->message, sizeof(out->message), "no result from server");
        out->conn_dead = true;
        return false;
    }
    out->status = PQresultStatus(res);
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(out->sqlstate, sizeof(out->sqlstate), "%s", st ? st : "");
    const char *cmd = PQcmdStatus(res);
    snprintf(out->command, sizeof(out->command), "%s", cmd ? cmd : "");
    bool ok = out->status == PGRES_COMMAND_OK || out->status == PGRES_TUPLES_OK;
    if (!ok) {
        const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        copy_trimmed(out->message, sizeof(out->message), m ? m : PQresultErrorMessage(res));
        if (!out->message[0])
            copy_trimmed(out->message, sizeof(out->message), PQerrorMessage(c));
    }
    /* A class-08 or 57P0x error ends the session only at FATAL/PANIC. At
     * severity ERROR it is a statement error and the session goes on: 08P01
     * for a client's wrong parameter count at Bind, 08001/08006 from
     * postgres_fdw or dblink about *their* remote server, or a RAISE. */
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    bool statement_error_only = sev && strcmp(sev, "ERROR") == 0;
    if (PQstatus(c) == CONNECTION_BAD ||
        (sqlstate_kills_conn(out->sqlstate) && !statement_error_only))
        out->conn_dead = true;
    return ok && !out->conn_dead;
}

bool pg_exec(PGconn *c, const char *sql, int nparams, const char *const *params, pg_res *out)
{
    res_init(out);
    if (!c || PQstatus(c) == CONNECTION_BAD) {
        snprintf(out->message, sizeof(out->message), "connection is not open");
        out->conn_dead = true;
        return false;
    }
    PGresult *res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    return res_fill(c, res, out);
}

/* Mark outs[from..n) as not run (or dead: the connection is gone). */
static void pipeline_mark_rest(PGconn *c, pg_res *outs, size_t from, size_t n, bool dead)
{
    for (size_t i = from; i < n; i++) {
        if (outs[i].res) {
            PQclear(outs[i].res);
            outs[i].res = NULL;
        }
        outs[i].status = PGRES_PIPELINE_ABORTED;
        outs[i].conn_dead = dead;
        if (dead && i == from) {
            copy_trimmed(outs[i].message, sizeof(outs[i].message),
                         c ? PQerrorMessage(c) : "no connection");
            if (!outs[i].message[0])
                snprintf(outs[i].message, sizeof(outs[i].message), "connection lost");
        } else {
            snprintf(outs[i].message, sizeof(outs[i].message),
                     "not run: an earlier statement in the pipeline failed");
        }
    }
}

static PGresult *collect_rows(PGconn *c, PGresult *r, pg_rows *rows);

/* Single-row mode: drop the rows of r and of the results after it, up to
 * the query's last result (its status and command tag, no rows), or an
 * error, or NULL. */
static PGresult *drop_rows(PGconn *c, PGresult *r)
{
    while (r && PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
        PQclear(r);
        r = PQgetResult(c);
    }
    return r;
}

/* The pipeline itself: qs[0..n), then tail (our own SQL, no parameters) as
 * query n when tail is set. n_all = n + (tail != NULL) outs. rows (may be
 * NULL): the query whose rows are written as they arrive (collect_rows). */
static bool pipeline_run(PGconn *c, const pg_query *qs, size_t n, const char *tail, pg_res *outs,
                         size_t *first_fail, pg_rows *rows)
{
    size_t n_all = n + (tail != NULL);
    for (size_t i = 0; i < n_all; i++)
        res_init(&outs[i]);
    *first_fail = n_all;
    if (n_all == 0)
        return true;
    if (!c || PQstatus(c) == CONNECTION_BAD || !PQenterPipelineMode(c)) {
        *first_fail = 0;
        pipeline_mark_rest(c, outs, 0, n_all, true);
        return false;
    }
    /* 1. Queue every query and the Sync; libpq flushes (and reads while a
     *    write would block, so a large batch cannot deadlock). */
    size_t sent = 0;
    for (; sent < n; sent++)
        if (!PQsendQueryParams(c, qs[sent].sql, qs[sent].nparams, NULL, qs[sent].params, NULL,
                               NULL, 0))
            break;
    if (sent == n && tail && PQsendQueryParams(c, tail, 0, NULL, NULL, NULL, NULL, 0))
        sent++;
    if (sent < n_all || !PQpipelineSync(c)) {
        /* Send failed: the connection is broken (or out of memory); either
         * way it is not trusted again. */
        *first_fail = 0;
        pipeline_mark_rest(c, outs, 0, n_all, true);
        (void)PQexitPipelineMode(c);
        return false;
    }
    size_t nq = n; /* qs[i] for i < nq; the tail has no pg_query */
    n = n_all;     /* from here on, the tail is one query like the others */
    /* 2. One result (then a NULL separator) per query, then the Sync. */
    bool broken = false;
    for (size_t i = 0; i < n && !broken; i++) {
        bool want_rows = rows && i == rows->query;
        bool drop = !want_rows && i < nq && qs[i].discard_rows;
        /* Single-row mode is set per query, before its first PQgetResult;
         * should libpq refuse it, the whole result comes as one. */
        if (want_rows || drop)
            (void)PQsetSingleRowMode(c);
        PGresult *r = PQgetResult(c);
        if (want_rows)
            r = collect_rows(c, r, rows);
        else if (drop)
            r = drop_rows(c, r);
        if (!r) {
            broken = true;
            if (*first_fail == n)
                *first_fail = i;
            pipeline_mark_rest(c, outs, i, n, true);
            break;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            PQclear(r);
            broken = true; /* COPY cannot be driven here: give the connection up */
            if (*first_fail == n)
                *first_fail = i;
            pipeline_mark_rest(c, outs, i, n, true);
            snprintf(outs[i].message, sizeof(outs[i].message), "COPY is not supported");
            break;
        }
        if (st == PGRES_PIPELINE_ABORTED) {
            PQclear(r);
            pipeline_mark_rest(c, outs, i, i + 1, false);
        } else if (!res_fill(c, r, &outs[i]) && *first_fail == n) {
            *first_fail = i;
        }
        if (outs[i].conn_dead) {
            broken = true;
            pipeline_mark_rest(c, outs, i + 1, n, true);
            break;
        }
        /* The NULL that ends this query's results (bounded: a broken
         * connection answers NULL at once). */
        for (int extra = 0; extra < 4; extra++) {
            PGresult *x = PQgetResult(c);
            if (!x)
                break;
            PQclear(x);
        }
    }
    if (!broken) {
        PGresult *sync = PQgetResult(c);
        if (!sync || PQresultStatus(sync) != PGRES_PIPELINE_SYNC)
            broken = true;
        PQclear(sync);
    }
    if (!PQexitPipelineMode(c))
        broken = true;
    if (broken) {
        size_t k = *first_fail < n ? *first_fail : n - 1;
        if (!outs[k].conn_dead) {
            outs[k].conn_dead = true;
            if (*first_fail == n) {
                *first_fail = k;
                snprintf(outs[k].message, sizeof(outs[k].message),
                         "pipeline did not end cleanly: connection given up");
            }
        }
    }
    return *first_fail == n;
}

bool pg_exec_pipeline(PGconn *c, const pg_query *qs, size_t n, pg_res *outs, size_t *first_fail)
{
    return pipeline_run(c, qs, n, NULL, outs, first_fail, NULL);
}

bool pg_exec_pipeline_rows(PGconn *c, const pg_query *qs, size_t n, pg_rows *rows, pg_res *outs,
                           size_t *first_fail)
{
    rows->text = NULL;
    rows->len = 0;
    rows->too_large = false;
    rows->rows = 0;
    rows->bytes = 0;
    return pipeline_run(c, qs, n, NULL, outs, first_fail, rows);
}

/* Room for "<verb> '<branch gid>'": the longest verb, and the gid quoted
 * (PQescapeLiteral doubles quotes and backslashes at most). */
#define GID_SQL_SIZE (sizeof("ROLLBACK PREPARED ") + 2 * BRANCH_GID_MAX_LEN + 4)

/* "<verb> '<branch gid>'" for one of the three 2PC verbs, quoted for c, into
 * sql (GID_SQL_SIZE; no allocation kept). false with out filled (and logged)
 * when the verb or the gid is refused or c is not usable. */
static bool gid_sql(PGconn *c, const char *verb, const char *branch_gid, char *sql, pg_res *out)
{
    static const char *const verbs[] = {"PREPARE TRANSACTION", "COMMIT PREPARED",
                                        "ROLLBACK PREPARED"};
    bool verb_ok = false;
    for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
        if (verb && strcmp(verb, verbs[i]) == 0)
            verb_ok = true;
    if (!verb_ok) {
        snprintf(out->message, sizeof(out->message), "unsupported verb");
        log_error("pg_exec_gid: refusing unsupported verb '%.40s'", verb ? verb : "(null)");
        return false;
    }
    char gid[GID_MAX_LEN + 1], part[PARTICIPANT_MAX_LEN + 1];
    if (!branch_gid_parse(branch_gid, gid, part)) {
        snprintf(out->message, sizeof(out->message), "invalid branch gid");
        log_error("pg_exec_gid: refusing %s with invalid branch gid '%.80s'", verb,
                  branch_gid ? branch_gid : "(null)");
        return false;
    }
    if (!c || PQstatus(c) == CONNECTION_BAD) {
        snprintf(out->message, sizeof(out->message), "connection is not open");
        out->conn_dead = true;
        return false;
    }
    char *lit = PQescapeLiteral(c, branch_gid, strlen(branch_gid));
    if (!lit) {
        copy_trimmed(out->message, sizeof(out->message), PQerrorMessage(c));
        txlog_error(gid, part, "%s: cannot quote branch gid: %s", verb, out->message);
        return false;
    }
    int len = snprintf(sql, GID_SQL_SIZE, "%s %s", verb, lit);
    PQfreemem(lit);
    if (len < 0 || (size_t)len >= GID_SQL_SIZE) { /* cannot happen: the gid is bounded */
        snprintf(out->message, sizeof(out->message), "branch gid too long");
        return false;
    }
    return true;
}

bool pg_exec_pipeline_prepare(PGconn *c, const pg_query *qs, size_t n, const char *branch_gid,
                              pg_res *outs, size_t *first_fail)
{
    for (size_t i = 0; i <= n; i++)
        res_init(&outs[i]);
    char prepare[GID_SQL_SIZE];
    if (!gid_sql(c, "PREPARE TRANSACTION", branch_gid, prepare, &outs[0])) {
        /* Nothing was sent: the refusal is the failure of the first query. */
        pipeline_mark_rest(c, outs, 1, n + 1, false);
        *first_fail = 0;
        return false;
    }
    return pipeline_run(c, qs, n, prepare, outs, first_fail, NULL);
}

bool pg_exec_gid(PGconn *c, const char *verb, const char *branch_gid, pg_res *out)
{
    res_init(out);
    char sql[GID_SQL_SIZE];
    if (!gid_sql(c, verb, branch_gid, sql, out))
        return false;
    PGresult *res = PQexec(c, sql); /* simple protocol: alone, not in a pipeline */
    return res_fill(c, res, out);
}

void pg_res_clear(pg_res *r)
{
    if (!r)
        return;
    if (r->res)
        PQclear(r->res);
    res_init(r);
}

/* Is text[0..len) one JSON value jansson can read (valid UTF-8 included;
 * integers past 64 bits read as reals, only to check the syntax)? */
static bool json_text_is_json(const char *text, size_t len)
{
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    json_decref(v);
    return v != NULL;
}

void pg_value_text(strbuf *sb, Oid type, const char *text, size_t len, bool isnull)
{
    if (isnull || !text) {
        strbuf_appendn(sb, "null", 4);
        return;
    }
    switch (type) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno == 0 && end != text && *end == '\0') {
            strbuf_appendf(sb, "%lld", v);
            return;
        }
        break;
    }
    case OID_BOOL:
        if (strcmp(text, "t") == 0 || strcmp(text, "true") == 0) {
            strbuf_appendn(sb, "true", 4);
            return;
        }
        if (strcmp(text, "f") == 0 || strcmp(text, "false") == 0) {
            strbuf_appendn(sb, "false", 5);
            return;
        }
        break;
    case OID_FLOAT4:
    case OID_FLOAT8: {
        char *end;
        double d = strtod(text, &end);
        if (end != text && *end == '\0' && isfinite(d)) {
            json_text_real(sb, d);
            return;
        }
        break; /* NaN, Infinity, -Infinity */
    }
    case OID_JSON:
    case OID_JSONB:
        /* Embedded as PostgreSQL wrote it, once jansson has checked that it
         * is JSON: re-encoded by jansson, numbers were cut to doubles (a
         * jsonb numeric is exact), integers past 64 bits made the whole value
         * come back as a string, and a json's duplicate keys merged. */
        if (json_text_is_json(text, len)) {
            strbuf_appendn(sb, text, len);
            return;
        }
        break;
    default: /* numeric (a string, to keep every digit) and all other types */
        break;
    }
    json_text_string_lossy(sb, text, len);
}

/* The keys of a result's row objects, one per column, in column order.
 * A column's key is its name (utf8_lossy_dup). A name an earlier column
 * already took (SELECT a.id, b.id; SELECT 1, 2 gives two "?column?") gets
 * the first of "_2", "_3", ... that is neither taken nor any column's own
 * name: no value is dropped, and a real column called "id_2" keeps its name.
 * Caller frees with keys_free. */
static char **result_keys(const PGresult *res, int nf)
{
    char **keys = xcalloc(nf > 0 ? (size_t)nf : 1, sizeof(char *));
    for (int f = 0; f < nf; f++) {
        const char *name = PQfname(res, f);
        keys[f] = utf8_lossy_dup(name ? name : "?column?");
    }
    if (nf < 2)
        return keys;
    json_t *names = json_object(), *used = json_object();
    for (int f = 0; f < nf; f++)
        json_object_set_new_nocheck(names, keys[f], json_true());
    for (int f = 0; f < nf; f++) {
        for (unsigned k = 2; json_object_get(used, keys[f]); k++) {
            char *alt = xasprintf("%s_%u", keys[f], k);
            if (!json_object_get(used, alt) && !json_object_get(names, alt)) {
                free(keys[f]);
                keys[f] = alt;
            } else {
                free(alt);
            }
        }
        json_object_set_new_nocheck(used, keys[f], json_true());
    }
    json_decref(names);
    json_decref(used);
    return keys;
}

/* What a row object writes before each value: {"k0": then ,"k1": ... with
 * the keys of result_keys, escaped once for all rows. */
typedef struct {
    int nf;
    strbuf *prefix; /* nf entries */
} row_frame;

static void frame_init(row_frame *fr, const PGresult *res)
{
    fr->nf = PQnfields(res);
    fr->prefix = xcalloc(fr->nf > 0 ? (size_t)fr->nf : 1, sizeof(strbuf));
    char **keys = result_keys(res, fr->nf);
    for (int f = 0; f < fr->nf; f++) {
        strbuf_init(&fr->prefix[f]);
        strbuf_appendn(&fr->prefix[f], f == 0 ? "{" : ",", 1);
        json_text_string(&fr->prefix[f], keys[f], strlen(keys[f]));
        strbuf_appendn(&fr->prefix[f], ":", 1);
        free(keys[f]);
    }
    free(keys);
}

static void frame_free(row_frame *fr)
{
    for (int f = 0; f < fr->nf; f++)
        strbuf_free(&fr->prefix[f]);
    free(fr->prefix);
    fr->prefix = NULL;
    fr->nf = 0;
}

/* Append res's rows to sb as row objects, a comma before each when sb
 * already holds rows (*written counts them). Stops after the row that takes
 * sb past max bytes (a whole result, when single-row mode was refused, is
 * not written out to the end): returns false then. */
static bool append_rows(strbuf *sb, const PGresult *res, const row_frame *fr, long long *written,
                        size_t max)
{
    for (int r = 0, nt = PQntuples(res); r < nt && sb->len <= max; r++) {
        if ((*written)++ > 0)
            strbuf_appendn(sb, ",", 1);
        if (fr->nf == 0)
            strbuf_appendn(sb, "{}", 2);
        for (int f = 0; f < fr->nf; f++) {
            strbuf_appendn(sb, fr->prefix[f].data, fr->prefix[f].len);
            pg_value_text(sb, PQftype(res, f), PQgetvalue(res, r, f),
                          (size_t)PQgetlength(res, r, f), PQgetisnull(res, r, f));
        }
        if (fr->nf > 0)
            strbuf_appendn(sb, "}", 1);
    }
    return sb->len <= max;
}

/* rows holds the rows' objects, comma-separated. Wrap them, in place, into
 * {"command":...,"row_count":N,"rows":[...]} with the command tag of the
 * query's final result (res may be NULL), nrows when the tag carries no
 * count. Returns the text (caller frees); rows is left empty. */
static char *result_text(const PGresult *res, strbuf *rows, long long nrows, size_t *len)
{
    strbuf head;
    strbuf_init(&head);
    const char *cmd = res ? PQcmdStatus((PGresult *)res) : "";
    const char *ct = res ? PQcmdTuples((PGresult *)res) : "";
    strbuf_append(&head, "{\"command\":");
    json_text_string_lossy(&head, cmd ? cmd : "", cmd ? strlen(cmd) : 0);
    strbuf_appendf(&head, ",\"row_count\":%lld,\"rows\":[", (ct && *ct) ? atoll(ct) : nrows);
    strbuf_insert(rows, 0, head.data, head.len);
    strbuf_appendn(rows, "]}", 2);
    strbuf_free(&head);
    *len = rows->len;
    return strbuf_take(rows);
}

char *pg_result_text(const PGresult *res, size_t *len)
{
    strbuf rows;
    strbuf_init(&rows);
    long long n = 0;
    if (res) {
        row_frame fr;
        frame_init(&fr, res);
        (void)append_rows(&rows, res, &fr, &n, SIZE_MAX);
        frame_free(&fr);
    }
    return result_text(res, &rows, n, len);
}

/* Ask the server to cancel c's running query (PQcancel: a separate
 * connection; blocks until the server took the request). A query already
 * done is not affected: a cancel that reaches an idle session is ignored. */
static void cancel_query(PGconn *c)
{
    PGcancel *cn = PQgetCancel(c);
    if (!cn)
        return;
    char err[256];
    (void)PQcancel(cn, err, sizeof(err)); /* on failure the rows are drained instead */
    PQfreeCancel(cn);
}

/* pipeline_run's rows->query: r is its first result. Writes rows as JSON
 * text as they arrive (single-row mode: one PGresult per row, then a
 * zero-row PGRES_TUPLES_OK; or one whole PGRES_TUPLES_OK when the mode could
 * not be set) and stops once the text passes rows->max_bytes: then the query
 * is cancelled, and what still arrives is read and dropped. Returns the
 * query's final result (TUPLES_OK/COMMAND_OK, an error, or NULL for a lost
 * connection), which pipeline_run handles as any other. */
static PGresult *collect_rows(PGconn *c, PGresult *r, pg_rows *rows)
{
    strbuf text;
    strbuf_init(&text);
    row_frame fr = {0, NULL}; /* the columns are the same in every result */
    long long n = 0, written = 0;
    for (;;) {
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK)
            break;
        if (PQntuples(r) > 0 && !rows->too_large) {
            if (!fr.prefix)
                frame_init(&fr, r);
            bool fit = append_rows(&text, r, &fr, &written, rows->max_bytes);
            rows->bytes = text.len;
            if (!fit) {
                rows->too_large = true;
                strbuf_free(&text);
                if (st == PGRES_SINGLE_TUPLE)
                    cancel_query(c);
            }
        }
        n += PQntuples(r);
        if (st == PGRES_TUPLES_OK)
            break; /* the final result: the caller takes it */
        PQclear(r);
        r = PQgetResult(c);
    }
    rows->rows = n;
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (!rows->too_large && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK))
        rows->text = result_text(r, &text, n, &rows->len);
    strbuf_free(&text);
    frame_free(&fr);
    return r;
}

bool pg_params_from_json(const json_t *arr, char ***out, int *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!arr || json_is_null(arr))
        return true;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "field 'params' must be an array");
        return false;
    }
    size_t cnt = json_array_size(arr);
    if (cnt > PG_MAX_PARAMS) {
        snprintf(err, errlen, "field 'params' has %zu entries (at most %d)", cnt, PG_MAX_PARAMS);
        return false;
    }
    char **p = xcalloc(cnt ? cnt : 1, sizeof(char *));
    for (size_t i = 0; i < cnt; i++) {
        json_t *v = json_array_get(arr, i);
        switch (json_typeof(v)) {
        case JSON_NULL:
            p[i] = NULL;
            break;
        case JSON_TRUE:
            p[i] = xstrdup("true");
            break;
        case JSON_FALSE:
            p[i] = xstrdup("false");
            break;
        case JSON_INTEGER:
            p[i] = xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
            break;
        case JSON_REAL: {
            char buf[JSON_REAL_BUF];
            json_real_format(json_real_value(v), buf);
            p[i] = xstrdup(buf);
            break;
        }
        case JSON_STRING: {
            size_t len = json_string_length(v);
            const char *s = json_string_value(v);
            if (memchr(s, '\0', len)) {
                snprintf(err, errlen, "params[%zu]: string contains a NUL character", i);
                pg_params_free(p, (int)cnt);
                return false;
            }
            p[i] = xstrdup(s);
            break;
        }
        case JSON_OBJECT:
        case JSON_ARRAY: {
            p[i] = json_dump_text(v);
            break;
        }
        }
    }
    *out = p;
    *n = (int)cnt;
    return true;
}

void pg_params_free(char **params, int n)
{
    if (!params)
        return;
    for (int i = 0; i < n; i++)
        free(params[i]);
    free(params);
}

/* Skip whitespace, ';', "--" line comments and (nested) block comments, as
 * PostgreSQL's lexer (scan.l) reads them: a "--" comment ends at '\n' OR '\r'
 * (its "newline [\n\r]"). Stopping only at '\n' would let "-- x\rCOMMIT\nWORK"
 * through as WORK while the server runs COMMIT WORK. */
static const char *skip_noise(const char *s)
{
    for (;;) {
        while (*s && (isspace((unsigned char)*s) || *s == ';'))
            s++;
        if (s[0] == '-' && s[1] == '-') {
            while (*s && *s != '\n' && *s != '\r')
                s++;
            continue;
        }
        if (s[0] == '/' && s[1] == '*') {
            int depth = 0;
            while (*s) {
                if (s[0] == '/' && s[1] == '*') {
                    depth++;
                    s += 2;
                } else if (s[0] == '*' && s[1] == '/') {
                    s += 2;
                    if (--depth == 0)
                        break;
                } else {
                    s++;
                }
            }
            continue;
        }
        return s;
    }
}

/* Copy the word at p (letters and '_', and digits when digits) uppercased
 * into w (cut to size); returns what follows it. */
static const char *read_upper(const char *p, char *w, size_t size, bool digits)
{
    size_t n = 0;
    while (*p && (isalpha((unsigned char)*p) || *p == '_' ||
                  (digits && isdigit((unsigned char)*p)))) {
        if (n + 1 < size)
            w[n++] = (char)toupper((unsigned char)*p);
        p++;
    }
    w[n] = '\0';
    return p;
}

/* Read the next keyword (letters/underscore) at *s into kw; advances *s. */
static void next_keyword(const char **s, char *kw, size_t size)
{
    *s = read_upper(skip_noise(*s), kw, size, false);
}

void sql_first_keyword(const char *sql, char *kw, size_t size)
{
    next_keyword(&sql, kw, size);
}

bool sql_is_empty(const char *sql)
{
    return !sql || *skip_noise(sql) == '\0';
}

static bool is_ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Length of the dollar-quote opener at p ("$$", "$tag$"), 0 if none ($1 is
 * a parameter). */
static size_t dollar_tag_len(const char *p)
{
    if (*p != '$' || isdigit((unsigned char)p[1]))
        return 0;
    size_t n = 1;
    while (is_ident_char(p[n]) || (unsigned char)p[n] >= 0x80)
        n++;
    return p[n] == '$' ? n + 1 : 0;
}

/* The next word (letters, digits, '_', uppercased) after *s, skipping
 * noise, punctuation and quoted strings or identifiers ('...', E'...' with
 * its backslash escapes, "...", $tag$...$tag$); "" at the end. sql is
 * the whole text *s points into (to see an E before a quote). Advances
 * *s. */
static void next_word(const char *sql, const char **s, char *w, size_t size)
{
    const char *p = *s;
    for (;;) {
        p = skip_noise(p);
        /* a '$' inside an identifier (a$b$c) opens nothing */
        size_t tag = (p > sql && (is_ident_char(p[-1]) || p[-1] == '$')) ? 0 : dollar_tag_len(p);
        if (tag > 0) {
            const char *end = p + tag;
            while (*end && strncmp(end, p, tag) != 0)
                end++;
            p = *end ? end + tag : end;
        } else if (*p == '\'' || *p == '"') {
            bool escapes = *p == '\'' && p > sql && (p[-1] == 'E' || p[-1] == 'e') &&
                           (p - 1 == sql || !is_ident_char(p[-2]));
            char q = *p++;
            while (*p) {
                if (*p == q && p[1] == q) { /* doubled: the quote itself */
                    p += 2;
                    continue;
                }
                if (*p == q)
                    break;
                if (escapes && *p == '\\' && p[1])
                    p++;
                p++;
            }
            if (*p)
                p++;
        } else if (*p && !isalnum((unsigned char)*p) && *p != '_') {
            p++;
        } else {
            break;
        }
    }
    *s = read_upper(p, w, size, true);
}

bool sql_is_copy_stream(const char *sql)
{
    if (!sql)
        return false;
    const char *p = sql;
    char w[64], prev[64] = "";
    next_word(sql, &p, w, sizeof(w));
    if (strcmp(w, "COPY") != 0)
        return false;
    /* FROM STDIN or TO STDOUT as words, anywhere after (a subquery's own
     * FROM is followed by a table, a file's name is a quoted string) */
    for (next_word(sql, &p, w, sizeof(w)); *w; next_word(sql, &p, w, sizeof(w))) {
        if ((strcmp(prev, "FROM") == 0 && strcmp(w, "STDIN") == 0) ||
            (strcmp(prev, "TO") == 0 && strcmp(w, "STDOUT") == 0))
            return true;
        snprintf(prev, sizeof(prev), "%s", w);
    }
    return false;
}

bool sql_is_transaction_control(const char *sql)
{
    if (!sql)
        return false;
    const char *p = sql;
    char kw[32], kw2[32], kw3[32];
    next_keyword(&p, kw, sizeof(kw));
    if (strcmp(kw, "BEGIN") == 0 || strcmp(kw, "START") == 0 || strcmp(kw, "COMMIT") == 0 ||
        strcmp(kw, "END") == 0 || strcmp(kw, "ABORT") == 0)
        return true;
    if (strcmp(kw, "ROLLBACK") == 0) {
        /* ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] x stays inside the block. */
        next_keyword(&p, kw2, sizeof(kw2));
        if (strcmp(kw2, "WORK") == 0 || strcmp(kw2, "TRANSACTION") == 0)
            next_keyword(&p, kw3, sizeof(kw3));
        else
            memcpy(kw3, kw2, sizeof(kw3));
        return strcmp(kw3, "TO") != 0;
    }
    if (strcmp(kw, "PREPARE") == 0) {
        next_keyword(&p, kw2, sizeof(kw2));
        return strcmp(kw2, "TRANSACTION") == 0;
    }
    return false;
}
