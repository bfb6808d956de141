/*
 * ops.h - what each agent API call does to a branch, independent of HTTP.
 *
 * Each op fills an op_result that api.c turns into the HTTP answer.
 * Ownership: op_stmt strings are borrowed for the call; op_result.json is
 * owned by the result (api.c hands it to http_reply_*, which steals it).
 */
#ifndef TXAGENT_OPS_H
#define TXAGENT_OPS_H

#include <jansson.h>

#include "agent.h"

typedef struct {
    unsigned http;     /* 200 or an error status */
    const char *code;  /* error code (static string) when http != 200 */
    char message[512]; /* error message when http != 200 */
    json_t *json;      /* 200: the body; error: extra members of "error" (or NULL) */
} op_result;

typedef struct {
    const char *sql; /* borrowed; already checked by sql_is_transaction_control */
    char **params;   /* from pg_params_from_json; borrowed */
    int nparams;
} op_stmt;

/* POST /v1/branches/{gid}/statements; timeout_ms <= 0 keeps the branch's. */
void op_statement(agent *ag, const char *gid, const op_stmt *st, int64_t timeout_ms,
                  op_result *out);
/* POST .../prepare; n > 0 is the one-shot form. */
void op_prepare(agent *ag, const char *gid, const op_stmt *stmts, size_t n, op_result *out);
/* POST .../commit and .../rollback. */
void op_commit(agent *ag, const char *gid, op_result *out);
void op_rollback(agent *ag, const char *gid, op_result *out);
/* GET /v1/branches/{gid}. */
void op_status(agent *ag, const char *gid, op_result *out);
/* GET /v1/branches. */
void op_list(agent *ag, op_result *out);

/* Recovery sweep: finish a prepared branch as the coordinator decided.
 * true when it is finished (now or before). */
bool op_resolve(agent *ag, const char *gid, bool commit) MUSTCHECK;
/* Is gid held in memory as in progress (active: its prepare not answered yet)? */
bool op_in_progress(agent *ag, const char *gid);

/* Janitor: roll back active branches idle past their timeout. */
void op_expire_idle(agent *ag, int64_t now);
/* Shutdown: roll back every active branch (prepared ones are left prepared). */
void op_rollback_open(agent *ag);

#endif
