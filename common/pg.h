/*
 * pg.h - the one libpq wrapper: every query of txagent (and of the tests'
 * and bench's checks) goes through it.
 *
 * Invariants:
 *   - Client strings never become SQL text: statements from clients run with
 *     PQexecParams and their parameters as text values.
 *   - The only SQL built by us is PREPARE TRANSACTION / COMMIT PREPARED /
 *     ROLLBACK PREPARED with a branch gid literal; pg_exec_gid and
 *     pg_exec_pipeline_prepare validate the gid (gid.h rules) and quote it
 *     with PQescapeLiteral.
 *   - Every result keeps its SQLSTATE; class 08 (connection exception) other
 *     than at severity ERROR, a NULL result or CONNECTION_BAD mark the
 *     connection dead (conn_dead) and the caller must discard it.
 * Connections get connect_timeout, TCP keepalives and tcp_user_timeout.
 */
#ifndef TX_PG_H
#define TX_PG_H

#include <jansson.h>
#include <libpq-fe.h>
#include "strbuf.h"
#include "util.h"

typedef struct {
    PGresult *res;         /* owned; may be NULL */
    ExecStatusType status; /* PGRES_FATAL_ERROR when res == NULL */
    char sqlstate[6];      /* "" when none */
    char message[512];     /* primary error message, "" when ok */
    char command[64];      /* PQcmdStatus, e.g. "PREPARE TRANSACTION", "ROLLBACK", "UPDATE 1" */
    bool conn_dead;
} pg_res;

/* Connect with conninfo plus our timeouts/keepalives. NULL on failure,
 * logged with the given context (gid/participant may be NULL). */
PGconn *pg_connect(const char *conninfo, const char *participant);
/* pg_connect with application_name forced to the given value (NULL: as
 * pg_connect), whatever conninfo says. */
PGconn *pg_connect_as(const char *conninfo, const char *participant, const char *application_name);

/* Run sql with n text params (NULL entries are SQL NULL). Returns true when
 * the status is PGRES_COMMAND_OK or PGRES_TUPLES_OK. Fills out either way;
 * call pg_res_clear after. Does not log (callers decide: an SQL error in a
 * client statement is not a server failure). */
bool pg_exec(PGconn *c, const char *sql, int nparams, const char *const *params, pg_res *out);

/* Run "<verb> '<branch gid>'" where verb is one of "PREPARE TRANSACTION",
 * "COMMIT PREPARED", "ROLLBACK PREPARED". false if the gid fails validation
 * (out->sqlstate "" and message set) or the command failed. Sent alone
 * (simple protocol). */
bool pg_exec_gid(PGconn *c, const char *verb, const char *branch_gid, pg_res *out);

void pg_res_clear(pg_res *r);

/* One query of a pipeline: sql with nparams text params (borrowed).
 * discard_rows: its rows are not wanted; they are read one at a time (libpq
 * single-row mode) and dropped, so that a statement returning more than
 * memory holds costs no memory (only its command tag is kept). */
typedef struct {
    const char *sql;
    int nparams;
    const char *const *params;
    bool discard_rows;
} pg_query;

/* Run qs[0..n) in ONE round trip with libpq pipeline mode (extended protocol,
 * one Sync at the end), then leave pipeline mode. outs[i] is filled for every
 * i (pg_res_clear each). After the first failure PostgreSQL skips the rest:
 * their outs get status PGRES_PIPELINE_ABORTED and a "not run" message.
 * *first_fail is the index of the first failed query (n when all ran). A lost
 * connection or protocol confusion sets conn_dead on outs[*first_fail]: the
 * caller must discard the connection. Never use it for PREPARE TRANSACTION /
 * COMMIT PREPARED / ROLLBACK PREPARED (pg_exec_pipeline_prepare, pg_exec_gid). */
bool pg_exec_pipeline(PGconn *c, const pg_query *qs, size_t n, pg_res *outs,
                      size_t *first_fail) MUSTCHECK;
/* The rows of one query of a pipeline, written as JSON text as they arrive
 * (libpq single-row mode, no tree built), so that a result too big to
 * return is never held whole, neither by libpq nor as JSON. */
typedef struct {
    size_t query;     /* in: index in qs of the query whose rows are wanted */
    size_t max_bytes; /* in: the most JSON text its rows may take */
    char *text;       /* out: as pg_result_text, when the query succeeded and fit;
                       * else NULL. The caller frees it */
    size_t len;       /* out: strlen(text) */
    bool too_large;   /* out: its rows passed max_bytes: not returned, the query was
                       * cancelled (it fails with 57014, unless it had just ended) */
    long long rows;   /* out: rows received */
    size_t bytes;     /* out: the JSON text of its rows, up to the row past max_bytes */
} pg_rows;

/* pg_exec_pipeline, with the rows of qs[rows->query] written into rows->text
 * (see pg_rows); outs[rows->query] keeps only the query's final status and
 * command tag. */
bool pg_exec_pipeline_rows(PGconn *c, const pg_query *qs, size_t n, pg_rows *rows, pg_res *outs,
                           size_t *first_fail) MUSTCHECK;

/* pg_exec_pipeline of qs[0..n) followed, in the same pipeline (same round
 * trip, before the Sync), by PREPARE TRANSACTION '<branch_gid>' as query n:
 * outs has n + 1 entries. PostgreSQL skips the PREPARE when an earlier query
 * failed (outs[n] PGRES_PIPELINE_ABORTED). The caller still checks outs[n]:
 * only the command "PREPARE TRANSACTION" means prepared (a failed block
 * answers "ROLLBACK"). A lost connection (conn_dead anywhere) leaves it
 * unknown whether the PREPARE ran. An invalid gid sends nothing (outs[0]
 * says why, *first_fail 0). Meant for qs that start with BEGIN. */
bool pg_exec_pipeline_prepare(PGconn *c, const pg_query *qs, size_t n, const char *branch_gid,
                              pg_res *outs, size_t *first_fail) MUSTCHECK;

/* A PGresult as the JSON text {"command":..., "row_count":N, "rows":[{col:
 * value,...}]} (compact, as json_dump_text writes). Keys are the column names
 * in column order; a repeated name gets the first free "_2", "_3", ...
 * suffix (see result_keys in pg.c). res may be NULL (no rows, command "").
 * Caller frees; *len gets strlen. */
char *pg_result_text(const PGresult *res, size_t *len);
/* Append one value of the given type OID, from its text form (len bytes),
 * as JSON: int2/int4/int8/oid -> integer, bool -> true/false,
 * float4/float8 -> real (NaN/Infinity as string), numeric -> string (every
 * digit kept), json/jsonb -> embedded JSON, NULL -> null, everything else ->
 * string (json_text_string_lossy). */
void pg_value_text(strbuf *sb, Oid type, const char *text, size_t len, bool isnull);

/* The most parameters one statement may have (the protocol's 16-bit count). */
#define PG_MAX_PARAMS 65535

/* Convert a JSON params array to text params: integer -> decimal, real ->
 * "%.17g", true/false -> "true"/"false", string -> as is, null -> NULL,
 * object/array -> compact JSON text. On success *out is an array of n
 * strings (entries may be NULL) that the caller frees with pg_params_free. */
bool pg_params_from_json(const json_t *arr, char ***out, int *n, char *err, size_t errlen) MUSTCHECK;
void pg_params_free(char **params, int n);

/* True if sql's first keyword (after whitespace and comments) would end or
 * start a transaction block: BEGIN, START, COMMIT, END, ROLLBACK, ABORT,
 * PREPARE TRANSACTION, also COMMIT/ROLLBACK PREPARED. Case-insensitive. */
bool sql_is_transaction_control(const char *sql);
/* True for COPY ... FROM STDIN / TO STDOUT: the copy protocol, which a
 * branch's session cannot carry (statements are refused before running;
 * COPY from or to a server file runs as any statement). */
bool sql_is_copy_stream(const char *sql);
/* The first keyword of sql (letters and '_', uppercased, at most size - 1
 * of them) after blanks, ';' and comments; "" if none. */
void sql_first_keyword(const char *sql, char *kw, size_t size);
/* True when sql holds no statement: only whitespace, ';' and comments
 * (PostgreSQL answers it with an empty result and no message). */
bool sql_is_empty(const char *sql);

#endif
