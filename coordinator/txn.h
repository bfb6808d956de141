/*
 * txn.h - the coordinator's transactions: the table (gid -> txn), gid
 * allocation, branches, reference counting and the JSON views of them.
 *
 * Locks (order: table lock, then txn->mu; never the reverse):
 *   - the table lock guards the hash map, the live list and the finished
 *     FIFO; it is held only for O(1) steps (and list walks of live
 *     transactions), never across a network call or an fsync;
 *   - txn->op_mu serializes client operations on one transaction
 *     (statements, commit, rollback, timeout) and is held across their
 *     network calls; different transactions never share it;
 *   - txn->mu is short and guards the mutable fields marked below.
 * Ownership: the table holds one reference; txn_create / txn_lookup /
 * txn_restore return one more that the caller drops with txn_unref.
 */
#ifndef TXCOORD_TXN_H
#define TXCOORD_TXN_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "coord.h"
#include "gid.h"
#include "participants.h"

typedef enum { PROTO_2PC = 0, PROTO_3PC, PROTO_COUNT } txn_protocol;

typedef enum {
    TXN_ACTIVE = 0,
    TXN_PREPARING,
    TXN_COMMITTING, /* commit decided (logged if any branch voted yes); phase 2 in progress */
    TXN_COMMITTED,  /* every branch acknowledged */
    TXN_ABORTING,   /* abort decided; rollbacks in progress */
    TXN_ABORTED,    /* every branch acknowledged */
    TXN_PRECOMMITTING, /* 3PC: 'P' logged (every vote yes), no 'C' yet: PreCommit, or recovery */
    TXN_STATE_COUNT
} txn_state;

typedef enum {
    BR_ACTIVE = 0, /* statements may run there */
    BR_FAILED,     /* a statement failed or it voted no */
    BR_UNKNOWN,    /* a call got no answer: may be active or prepared there */
    BR_PREPARED,   /* voted yes (or recovered from a 'C' record) */
    BR_READ_ONLY,  /* voted read_only: committed locally, needs no phase 2 */
    BR_COMMITTED,
    BR_ABORTED,
    BR_PRECOMMITTED, /* 3PC: prepared, and acknowledged PreCommit (or said so at recovery) */
    BR_HEURISTIC,    /* given up by an operator's heuristic resolve: finished without an ack */
} branch_state;

/* Rate limit of a line that a retry repeats (a delivery or a 3PC recovery
 * round that keeps failing): the first occurrence is logged, then at most one
 * per RETRY_LOG_EVERY_MS; the ones in between are counted and the next line
 * says how many. Guarded by txn->mu; reset when the retry succeeds. */
#define RETRY_LOG_EVERY_MS 60000
typedef struct {
    int64_t last_ms;  /* monotonic time of the last line; 0 = none since the reset */
    unsigned skipped; /* occurrences not logged since that line */
} log_limit;

typedef struct {
    char participant[PARTICIPANT_MAX_LEN + 1];
    const participant *p; /* borrowed from the participant table; NULL if not configured */
    char branch_gid[BRANCH_GID_MAX_LEN + 1];
    char xid[XID8_TEXT_MAX + 1]; /* the xid8 its yes vote gave ("" if none), kept in the
                           * decision record and sent back with COMMIT/ROLLBACK (an
                           * agent that forgot the branch checks a 42704 against
                           * it); txn->mu */
    branch_state state;   /* guarded by txn->mu */
    int attempts;         /* phase-2 / recovery calls made to it; guarded by txn->mu */
    char *last_error;     /* why the last such call failed (owned), NULL if none; txn->mu */
    log_limit retry_log;  /* its "not acknowledged" lines; txn->mu */
    bool begun;           /* a statement call reached the agent (not refused before running);
                           * written by the op_mu holder; read by it, and by the abort's
                           * delivery once no statement can run any more */
    bool stmt_running;    /* a statement call to it is in flight (api.c, for a rollback that
                           * interrupts it); set by the op_mu holder, guarded by txn->mu */
    int64_t stmt_seq;     /* statement calls made to it so far, each numbered ("seq") so
                           * that the agent runs a re-sent copy only once; written and
                           * read by the op_mu holder */
} branch;

typedef struct txn txn;
struct txn {
    char gid[GID_MAX_LEN + 1];
    uint64_t epoch, seq; /* the gid's: the order gids were issued in (listing) */
    txn_protocol protocol;
    int64_t created_wall_ms;
    int64_t created_ms; /* monotonic */
    int64_t timeout_ms;
    threepc_settings threepc; /* meaningful for PROTO_3PC only; fixed at creation */
    bool recovered;           /* recreated from the decision log at start (resolver-driven) */

    pthread_mutex_t op_mu;
    int64_t client_seq; /* highest "seq" a client's statement call gave (h_statements); op_mu */
    pthread_mutex_t mu;
    atomic_int state;       /* txn_state; written under mu, read anywhere */
    atomic_llong last_cancel_ms;    /* now_ms() of the last cancel round (api.c): the
                                     * rollbacks waiting for op_mu share one round per
                                     * RETRY_CANCEL_MS, however many there are */
    atomic_bool rollback_requested; /* a client's rollback waits for op_mu: the holder's
                                     * successors run no statement and no commit (api.c) */
    /* guarded by mu: */
    char *reason;           /* why it aborted (owned), set on entering aborting */
    char *fail_reason;      /* why it is rollback-only (owned), NULL if it is not */
    bool decision_logged;   /* a 'C' record exists, so an 'E' must follow */
    bool precommit_logged;  /* a 'P' record exists, so an 'E' must follow whatever the outcome */
    char heuristic;         /* 'c' / 'a' once an operator resolved it (an 'H' record), else 0 */
    int64_t decided_wall_ms; /* when commit/abort was decided ('P' time while precommitting) */
    log_limit wait_log;     /* 3PC recovery's "-> wait" lines */
    bool in_resolver;       /* queued in the resolver */
    bool resolver_kicked;   /* kicked while in the resolver's running round: its retry is due
                             * at once, not after the backoff (resolver.c) */
    branch *branches;       /* capacity maxbranches, never moved: pointers stay valid */
    size_t nbranches, maxbranches;

    /* guarded by the table lock: */
    txn *live_prev, *live_next; /* while not finished */
    txn *fin_next;              /* FIFO of finished ones, for eviction */
    bool live;
    int64_t finished_ms;

    atomic_int refs;
};

void txn_table_init(void);
/* Drops the table's references; call after every other user stopped. */
void txn_table_shutdown(void);

/* New active transaction with a fresh gid; in the table. Returns a reference.
 * threepc: its 3PC settings (copied; NULL = the --3pc-* defaults). NULL
 * (nothing created, no gid used) while g_coord.max_unfinished transactions
 * are unfinished. */
txn *txn_create(txn_protocol proto, int64_t timeout_ms, const threepc_settings *threepc);
/* The same, returned with op_mu held (the caller unlocks): taken before the
 * gid can be found, so no other request (a commit or statement naming the
 * next gid) runs on the transaction before its creator's first step. */
txn *txn_create_locked(txn_protocol proto, int64_t timeout_ms, const threepc_settings *threepc);
/* Recreate a transaction from the decision log, marked recovered:
 *   committing    from a 'C' without 'E' (decision_logged);
 *   precommitting from a 'P' without 'C' (precommit_logged);
 *   aborting      from a 'P' followed by a heuristic abort (heuristic set) or
 *                 by an 'A' (not heuristic); precommit_logged.
 * decided_wall_ms is the record's time. NULL if the gid is already in the
 * table. Returns a reference. Add its branches with txn_restore_branch. */
txn *txn_restore(const char *gid, txn_protocol proto, txn_state state, bool heuristic,
                 int64_t decided_wall_ms, const threepc_settings *tps, size_t nbranches);
/* xid: the branch's xid8 from the decision record, NULL or "" if none. */
bool txn_restore_branch(txn *t, const char *participant_name, const char *branch_gid,
                        const char *xid) MUSTCHECK;

/* Reference or NULL. */
txn *txn_lookup(const char *gid);
/* Was seq handed out in this epoch (by txn_create)? */
bool txn_seq_issued(uint64_t seq);
void txn_ref(txn *t);
void txn_unref(txn *t);

static inline txn_state txn_state_get(txn *t) { return (txn_state)atomic_load(&t->state); }

/* The branch for participant p, created (state active) when absent and
 * create is set. Caller holds op_mu. NULL when absent and !create. */
branch *txn_branch(txn *t, const participant *p, bool create);

/* Mark t rollback-only with reason (first reason wins). */
void txn_set_failed(txn *t, const char *reason);
void txn_set_branch_state(txn *t, branch *b, branch_state s);
/* Marks the statement calls to brs[0..n) in flight (on) or over: a rollback
 * that finds op_mu held has their agents cancel them (api.c,
 * interrupt_statements). Caller holds op_mu. */
void txn_mark_statements_running(txn *t, branch *const *brs, size_t n, bool on);
/* Count one phase-2 (or recovery) call to b: when acked, b goes to state s
 * and its last error is cleared; otherwise error (copied) becomes its last
 * error and, if set_state, b still goes to s. */
void txn_branch_attempt(txn *t, branch *b, bool acked, branch_state s, bool set_state,
                        const char *error);

/* Should the repeated line limited by l (a field of t or of one of its
 * branches) be logged now? *skipped gets how many were not logged since the
 * last one (counted in txn_retry_log_skipped when this returns false). */
bool txn_log_due(txn *t, log_limit *l, unsigned *skipped);
/* The retry succeeded: the next failure is logged again at once. */
void txn_log_reset(txn *t, log_limit *l);
/* Process-wide count of lines held back by txn_log_due (for the resolver's
 * summary line). */
uint64_t txn_retry_log_skipped(void);

/* Does a branch in state bs still need the outcome of a transaction in st
 * (committing: COMMIT; aborting: ROLLBACK)? */
bool branch_needs_outcome(txn_state st, branch_state bs);
/* A prepared branch (voted yes; 3PC: maybe also pre-committed). */
static inline bool branch_is_prepared(branch_state bs)
{
    return bs == BR_PREPARED || bs == BR_PRECOMMITTED;
}

/* Called by the FSM driver after every transition; moves a transaction that
 * reached committed/aborted to the finished FIFO. */
void txn_note_transition(txn *t, txn_state from, txn_state to);

/* References to active transactions whose deadline passed by now
 * (INT64_MAX: every active one, as a shutdown wants); *out is an array
 * the caller frees (after txn_unref of each). Returns the count. */
size_t txn_collect_expired(int64_t now, txn ***out);
/* Drop finished transactions older than retention_ms, and the oldest ones
 * beyond the newest retention_max. Returns how many. Dropped ones answer
 * GET with their outcome only (from the decision log's committed set). */
size_t txn_evict(int64_t now, int64_t retention_ms, size_t retention_max);
/* Finished transactions still held in full (the finished FIFO). */
size_t txn_retained_count(void);

/* {"gid","protocol","state","outcome"?,"reason"?,"created_at","timeout_ms","branches":[...]}. New reference. */
json_t *txn_to_json(txn *t);
/* {"transactions":[...]}, in the order their gids were issued (epoch, then
 * sequence number: oldest first), of the transactions not finished that
 * pass the filter: NULL = all; a live state name (active, preparing,
 * precommitting, committing, aborting); or "in-doubt" = decided but not
 * finished (committing/aborting with a branch still unacknowledged, and
 * recovered 3PC ones still precommitting), shown with per-branch attempts,
 * last_error and age_ms since the decision. A page: only gids issued after
 * `after` (NULL: from the first), at most limit (>= 1) of them; when more
 * pass the filter, "next_after" holds the last gid listed (the next page's
 * `after`). New reference; NULL when the filter is not one of these or
 * after is not a valid gid. */
json_t *txn_list_json(const char *filter, const char *after, size_t limit);
/* Outcome as the client sees it: "committed", "aborted" or NULL (undecided).
 * When aborted and reason is not NULL, *reason gets a copy (caller frees). */
const char *txn_outcome(txn *t, char **reason);
/* t's operator decision: 'c' heuristic commit, 'a' heuristic abort, 0 none. */
char txn_heuristic(txn *t);

const char *txn_state_name(txn_state s);
const char *branch_state_name(branch_state s);
const char *txn_protocol_name(txn_protocol p);
bool txn_protocol_parse(const char *name, txn_protocol *out) MUSTCHECK;
const char *termination_rule_name(termination_rule r);
bool termination_rule_parse(const char *name, termination_rule *out) MUSTCHECK;

/* "2026-11-26T00:12:09.123Z" into buf (>= 32 bytes). */
void format_iso8601(int64_t wall_ms, char *buf, size_t size);

#endif
