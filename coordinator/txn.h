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
} branch_state;

typedef struct {
    char participant[PARTICIPANT_MAX_LEN + 1];
    const participant *p; /* borrowed from the participant table; NULL if not configured */
    char branch_gid[BRANCH_GID_MAX_LEN + 1];
    branch_state state;   /* guarded by txn->mu */
} branch;

typedef struct txn txn;
struct txn {
    char gid[GID_MAX_LEN + 1];
    txn_protocol protocol;
    int64_t created_wall_ms;
    int64_t created_ms; /* monotonic */
    int64_t timeout_ms;

    pthread_mutex_t op_mu;
    pthread_mutex_t mu;
    atomic_int state;       /* txn_state; written under mu, read anywhere */
    /* guarded by mu: */
    char *reason;           /* why it aborted (owned), set on entering aborting */
    char *fail_reason;      /* why it is rollback-only (owned), NULL if it is not */
    bool decision_logged;   /* a 'C' record exists, so an 'E' must follow */
    bool in_resolver;       /* queued in the resolver */
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

/* New active transaction with a fresh gid; in the table. Returns a reference. */
txn *txn_create(txn_protocol proto, int64_t timeout_ms);
/* Recreate a decided-committed transaction from a 'C' record (state
 * committing, decision_logged). NULL if the gid is already in the table.
 * Returns a reference. Add its branches with txn_restore_branch. */
txn *txn_restore(const char *gid, txn_protocol proto, int64_t created_wall_ms, size_t nbranches);
bool txn_restore_branch(txn *t, const char *participant_name, const char *branch_gid) MUSTCHECK;

/* Reference or NULL. */
txn *txn_lookup(const char *gid);
void txn_ref(txn *t);
void txn_unref(txn *t);

static inline txn_state txn_state_get(txn *t) { return (txn_state)atomic_load(&t->state); }

/* The branch for participant p, created (state active) when absent and
 * create is set. Caller holds op_mu. NULL when absent and !create. */
branch *txn_branch(txn *t, const participant *p, bool create);

/* Mark t rollback-only with reason (first reason wins). */
void txn_set_failed(txn *t, const char *reason);
void txn_set_branch_state(txn *t, branch *b, branch_state s);

/* Called by the FSM driver after every transition; moves a transaction that
 * reached committed/aborted to the finished FIFO. */
void txn_note_transition(txn *t, txn_state from, txn_state to);

/* References to active transactions whose deadline passed; *out is an array
 * the caller frees (after txn_unref of each). Returns the count. */
size_t txn_collect_expired(int64_t now, txn ***out);
/* Drop finished transactions older than retention_ms. Returns how many. */
size_t txn_evict(int64_t now, int64_t retention_ms);

/* {"gid","protocol","state","outcome"?,"reason"?,"created_at","timeout_ms","branches":[...]}. New reference. */
json_t *txn_to_json(txn *t);
/* {"transactions":[...]} of every transaction not finished. New reference. */
json_t *txn_list_json(void);
/* Outcome as the client sees it: "committed", "aborted" or NULL (undecided).
 * When aborted and reason is not NULL, *reason gets a copy (caller frees). */
const char *txn_outcome(txn *t, char **reason);

const char *txn_state_name(txn_state s);
const char *branch_state_name(branch_state s);
const char *txn_protocol_name(txn_protocol p);
bool txn_protocol_parse(const char *name, txn_protocol *out) MUSTCHECK;

/* "2026-11-26T00:12:09.123Z" into buf (>= 32 bytes). */
void format_iso8601(int64_t wall_ms, char *buf, size_t size);

#endif
