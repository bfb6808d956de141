/*
 * agent.h - every call txcoord makes to a participant agent: building the
 * request (URL, body with "participant"), and reading the answer into
 * branch states. The wire format is docs/PROTOCOL.md "Agent API".
 *
 * Ownership: agent_call_init makes the httpc_call own its URL and body
 * (body is stolen); agent_call_free releases them and the response.
 */
#ifndef TXCOORD_AGENT_H
#define TXCOORD_AGENT_H

#include "httpc.h"
#include "txn.h"

/* POST {p->url}/v1/branches/{gid}/{verb}; body (stolen, may be NULL = {})
 * gets "participant" set. */
void agent_call_init(httpc_call *c, const participant *p, const char *gid, const char *verb,
                     json_t *body, long timeout_ms);
/* GET {p->url}{path}. */
void agent_call_init_get(httpc_call *c, const participant *p, const char *path, long timeout_ms);
void agent_call_free(httpc_call *c);

/* Borrowed strings from an agent's error body, "" when absent. */
const char *agent_error_code(const httpc_call *c);
const char *agent_error_message(const httpc_call *c);
/* Was c refused for the link rather than the request: the participant's URL
 * is not an agent's (a 2xx other than 200, 3xx, 404, 405), or an agent with
 * another token (401, 403) or another name (409 participant_mismatch)?
 * Nothing ran there. */
bool agent_refused_link(const httpc_call *c);
/* Was c refused before anything ran at the agent: by the link, or by the
 * agent itself (400 invalid request or params, 413 too large; not 409 nor
 * 422, which answer for a branch that may have run)? */
bool agent_refused_before_running(const httpc_call *c);
/* A 503 that an agent gives a statement only before its branch begins there:
 * pool_exhausted (no connection to begin it on) or shutting_down (no new
 * branch). For a branch that has not begun there, nothing was done: the call
 * can be made again. Not branch_busy: the branch's lock held means another
 * call on the gid runs there, which may have begun the branch (a copy of
 * this very statement, re-sent by libcurl on a reused connection that died
 * before its answer, say). */
bool agent_busy_before_running(const httpc_call *c);
const char *agent_error_sqlstate(const httpc_call *c);
/* The agent answered 409 wrong_state naming its branch's state as `state`
 * (e.g. "aborted": it finished the branch on its own). */
bool agent_says_branch_is(const httpc_call *c, const char *state);
/* 200 whose body says {"state": state}: an agent's acknowledgement of a
 * commit ("committed"), rollback ("aborted") or PreCommit. A bare 200 (a
 * proxy, or another service behind a wrong --participant URL) is none. */
bool agent_acked_state(const httpc_call *c, const char *state);
/* The "state" of a 409 wrong_state answer (borrowed), or "" for any other. */
const char *agent_wrong_state(const httpc_call *c);
/* One line for logs and abort reasons: "unreachable: <curl error>" or
 * "HTTP 503 database_unavailable: <message>". */
void agent_describe_failure(const httpc_call *c, char *buf, size_t size);

/*
 * Phase-2 delivery of a decided outcome (commit when t is committing,
 * rollback when aborting) - used by twopc for the first attempt and by the
 * resolver for re-sends.
 */
/* Append one call per branch of t that still needs the outcome; bidx[i] is
 * the branch index of calls[i]. room >= t->nbranches. Returns the count.
 * Branches whose participant is not configured are skipped (logged). */
size_t delivery_build(txn *t, httpc_call *calls, size_t *bidx, size_t room);
/* Read the answers into branch states; logs unacknowledged ones (rate
 * limited per branch, agent.c). Returns how many were not acknowledged. */
size_t delivery_apply(txn *t, httpc_call *calls, const size_t *bidx, size_t n, int attempt);
/* True when no branch of t still needs the outcome. */
bool delivery_done(txn *t);

#endif
