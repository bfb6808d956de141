/*
 * harness.h - the integration tests' throwaway cluster and their HTTP and SQL helpers.
 *
 * The cluster (3 PostgreSQL servers, 3 agents, 1 coordinator) is started once
 * per test binary by scripts/cluster in a fresh directory under /tmp, from an
 * unchecked fixture (h_cluster_setup), and torn down (down --purge) when the
 * binary ends, also on a failed start, on exit() and on SIGTERM/SIGINT/SIGHUP.
 * Tests run forked (CK_FORK); only the process that started the cluster ever
 * stops it.
 *
 * Environment (set by tests/integration/meson.build):
 *   TXCOORD_SOURCE_ROOT  the checkout (scripts/cluster lives there)
 *   TXCOORD_BUILD_DIR    where txcoord and txagent were built
 *   TXCOORD_IT_BASE_PORT first base port to try (default 7700; the next free
 *                        one of 7700, 7720, ... 7780 is used)
 *   TXCOORD_KEEP_CLUSTER=1  leave the cluster running and its directory in place
 *
 * Ownership: h_resp owns its body and json (h_resp_clear frees them); json_t
 * bodies passed to h_req/h_stmt are stolen.
 */
#ifndef TX_IT_HARNESS_H
#define TX_IT_HARNESS_H

#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#define H_PARTICIPANTS 3

/* ---- cluster ---- */
void h_cluster_setup(void);    /* unchecked fixture setup: start once (idempotent) */
void h_cluster_teardown(void); /* unchecked fixture teardown: nothing (stop is at exit) */
/* Stop and purge the cluster; dump logs first if failed or a sanitizer
 * reported something. Returns false if a daemon log holds a sanitizer report. */
bool h_cluster_stop(bool failed);
/* Run scripts/cluster ARGS... --dir <dir> (NULL-terminated); returns its exit status. */
int h_cluster(const char *arg, ...) __attribute__((sentinel));
/* Checked fixture: make sure every component answers /healthz (restarting
 * agents a previous test killed), then run the test. */
void h_test_setup(void);
/* Checked fixture: no row left in pg_prepared_xacts anywhere (waits up to 20 s). */
void h_test_teardown(void);
/* A TCase on the shared cluster, with both fixtures above and a timeout in seconds. */
TCase *h_tcase(const char *name, double timeout_s);

const char *h_coord_url(void);
/* Does the log of NAME (coordinator, agent1..) hold needle? Asserts it can be read. */
bool h_log_contains(const char *name, const char *needle);
/* How many times needle occurs in NAME.log (which keeps the lines of every
 * start of NAME: count before and after to see one run's). */
size_t h_log_count(const char *name, const char *needle);
/* The same for any file under the cluster's directory (rel to it; binary too). */
bool h_file_contains(const char *rel, const char *needle);
const char *h_agent_url(int i); /* i = 1..H_PARTICIPANTS */
const char *h_conninfo(int i);

/* ---- HTTP ---- */
typedef struct {
    long status;          /* 0 = transport failure, see error */
    char *body;           /* raw body, NUL-terminated, never NULL after a call */
    size_t len;
    size_t cap;           /* bytes allocated at body (grows by doubling) */
    json_t *json;         /* parsed body or NULL */
    char location[256];   /* Location header or "" */
    char content_type[128];
    char error[256];
} h_resp;

/* Any method on a full URL with a raw body (may be NULL). */
h_resp h_http(const char *method, const char *url, const char *body, size_t len);
/* Method on a coordinator path ("/v1/..."); body stolen, may be NULL. */
h_resp h_req(const char *method, const char *path, json_t *body);
/* GET on a coordinator path built with printf. */
h_resp h_get(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void h_resp_clear(h_resp *r);
/* Free this thread's curl handle (call at the end of each extra thread). */
void h_thread_done(void);

/* Borrowed string member of an object, or "" when absent / not a string. */
const char *h_str(const json_t *obj, const char *key);
/* error.code / error.sqlstate of an error answer, or "". */
const char *h_err_code(const h_resp *r);
const char *h_err_sqlstate(const h_resp *r);
/* Short description "STATUS BODY" for assertion messages (static buffer per thread). */
const char *h_desc(const h_resp *r);

/* POST /v1/transactions {"protocol":"2pc","timeout_ms":30000}; asserts 201; caller frees. */
char *h_begin(void);
/* The same with timeout_ms instead of 30000. */
char *h_begin_timeout(int timeout_ms);
/* POST /v1/transactions/{gid}/statements; params stolen (NULL = none). */
h_resp h_stmt(const char *gid, const char *participant, const char *sql, json_t *params);
/* The same, numbered: "seq" (when > 0), the client's number of the call. */
h_resp h_stmt_seq(const char *gid, const char *participant, const char *sql, json_t *params,
                  int seq);
h_resp h_commit(const char *gid);
h_resp h_rollback(const char *gid);
/* Roll gid back (whatever the answer: the test is done with it) and free it. */
void h_discard(char *gid);
/* gid's commit answers 200 (else the test fails, saying what). Frees gid. */
void h_commit_ok(char *gid, const char *what);
/* h_stmt that must answer 200 (asserts). */
void h_stmt_ok(const char *gid, const char *participant, const char *sql, json_t *params);

/* ---- SQL on participant i (libpq through common/pg.h) ---- */
PGconn *h_pg(int i);                 /* asserts; caller PQfinish-es */
/* First column of the first row as an integer (asserts one row, not NULL). */
long long h_conn_ll(PGconn *c, const char *sql);
long long h_sql_ll(int i, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void h_sql(int i, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long long h_balance(int i, int id);
void h_set_balance(int i, int id, long long balance); /* upsert */
long long h_prepared_count(int i);
/* Sessions of agent i waiting on a lock, polled (up to 20 s) until there are
 * at least want; returns the count last seen. */
long long h_lock_waiters(int i, long long want);
long long h_marker_count(int i, const char *transfer_id);

/* Assert an answer's status; the message shows status and body. */
#define H_EXPECT(r, st, what) \
    ck_assert_msg((r).status == (st), "%s: expected HTTP %d, got %s", (what), (int)(st), h_desc(&(r)))

/* ---- the test cases, one constructor per file ---- */
TCase *tc_flows(void);      /* test_flows.c: commit, abort, rollback, one-shot, idempotence, reads */
TCase *tc_errors(void);     /* test_errors.c: every error status */
TCase *tc_rows(void);       /* test_rows.c: rows JSON typing, parameters */
TCase *tc_concurrent(void); /* test_concurrent.c: many clients, sum of balances */
TCase *tc_restart(void);    /* test_restart.c: kill/stop then start at once; GET after a restart */
TCase *tc_races(void);      /* test_races.c: commit, rollback and statements racing on one gid */
TCase *tc_fuzz(void);       /* test_fuzz.c: seeded random requests, every answer well-formed */

#endif
