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
#include "threepc.h"

typedef struct {
    unsigned http;     /* 200 or an error status */
    const char *code;  /* error code (static string) when http != 200 */
    char message[512]; /* error message when http != 200 */
    json_t *json;      /* 200: the body; error: extra members of "error" (or NULL) */
    char *text;        /* 200: the body as JSON text instead of json, when set (owned) */
    size_t text_len;
} op_result;

typedef struct {
    const char *sql; /* borrowed; already checked by sql_is_transaction_control */
    char **params;   /* from pg_params_from_json; borrowed */
    int nparams;
} op_stmt;

/* POST /v1/branches/{gid}/statements; timeout_ms <= 0 keeps the branch's.
 * may_begin false ("begin":false: the coordinator's branch already began
 * here) refuses a gid this agent has no branch for with 409 branch_lost
 * instead of opening a fresh one: its earlier statements died with a restart
 * (or the branch was rolled back and forgotten), and a fresh branch would
 * commit the later statements without them. seq > 0 (the coordinator
 * numbers its statement calls per branch): a call whose number is not above
 * the highest one run on the branch is a re-sent copy (libcurl re-sends a
 * request whose reused connection died before the answer) and is refused
 * with 409 duplicate_statement, not run again; 0: not checked. */
void op_statement(agent *ag, const char *gid, const op_stmt *st, int64_t timeout_ms,
                  bool may_begin, int64_t seq, op_result *out);
typedef struct {
    const op_stmt *stmts; /* n > 0: the one-shot form */
    size_t n;
    int64_t timeout_ms;   /* > 0: statement_timeout of the statements (SET LOCAL) */
    const tp_params *tp;  /* "protocol":"3pc": peers, timers; NULL for 2PC */
} op_prepare_req;

/* POST .../prepare. */
void op_prepare(agent *ag, const char *gid, const op_prepare_req *req, op_result *out);
/* POST .../precommit (3PC). from_peer: sent by a peer's termination
 * ("from":"peer"), which a fenced branch takes; the coordinator's it refuses. */
void op_precommit(agent *ag, const char *gid, bool from_peer, op_result *out);
/* POST .../commit and .../rollback. xid (NULL or "": none): the branch's
 * xid8 as its yes vote gave it to the coordinator, for a branch this agent
 * no longer knows the xid of (forgotten after it finished, or never asked):
 * a COMMIT/ROLLBACK PREPARED that finds nothing prepared (42704) then asks
 * PostgreSQL how that xid ended, and answers 409 wrong_state (state of the
 * other outcome) if it ended the other way, instead of "done". */
void op_commit(agent *ag, const char *gid, const char *xid, op_result *out);
void op_rollback(agent *ag, const char *gid, const char *xid, op_result *out);
/* POST .../cancel: cancel the statement running on an active branch, if
 * any; nothing else changes. */
void op_cancel(agent *ag, const char *gid, op_result *out);
/* GET /v1/branches/{gid}. fence (?fence=1, a peer's termination read): an
 * uncertain 3PC branch records durably that it was read so before answering,
 * and refuses the coordinator's PreCommit from then on. */
void op_status(agent *ag, const char *gid, bool fence, op_result *out);
/* GET /v1/branches. */
void op_list(agent *ag, op_result *out);

/* Recovery sweep: finish a prepared branch as the coordinator decided.
 * true when it is finished (now or before). */
bool op_resolve(agent *ag, const char *gid, bool commit) MUSTCHECK;
/* Recovery sweep, open branches: copies into gids (at most max) the gids of
 * active branches idle for min_idle_ms or more; returns how many. */
size_t op_idle_open(agent *ag, int64_t min_idle_ms, char (*gids)[GID_MAX_LEN + 1], size_t max);
/* The coordinator says gid's transaction aborted: roll its branch back if it
 * is still active and idle for min_idle_ms (one in use, busy or newer is left
 * alone). true when it was rolled back here. */
bool op_abort_open(agent *ag, const char *gid, int64_t min_idle_ms);
/* Must the recovery sweep leave gid alone? True while it is active (its
 * prepare not answered yet) and for 3PC branches that are prepared, uncertain
 * or precommitted: their own timers and termination finish them. */
bool op_in_progress(agent *ag, const char *gid);

/* Janitor: roll back active branches idle past their timeout. */
void op_expire_idle(agent *ag, int64_t now);
/* Shutdown: roll back every active branch (prepared ones are left prepared). */
void op_rollback_open(agent *ag);
/* Shutdown: cancel the statement running on every active branch (PQcancel),
 * so that no request stays blocked on a lock. */
void op_cancel_running(agent *ag);

#endif
