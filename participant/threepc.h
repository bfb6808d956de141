/*
 * threepc.h - the agent's durable three-phase-commit state: branches3pc.log,
 * per-branch timers, replay on start and compaction (steps in threepc.c).
 *
 * Ownership: a tp_branch belongs to its branch (freed with it). The registry
 * of unfinished 3PC branches holds a counted reference on each branch.
 * Locking: threepc_record_* run with b->mu held; the registry and the log
 * have their own locks (taken after b->mu, never the other way round).
 */
#ifndef TXAGENT_THREEPC_H
#define TXAGENT_THREEPC_H

#include <stdatomic.h>

#include "agent.h"
#include "branch.h" /* fsm_ctx */
#include "tp.h"

typedef struct branch branch;
typedef struct tp_branch tp_branch;

/* What a 3PC prepare request asked for (api.c fills it; strings borrowed). */
typedef struct {
    const tp_peer *peers;
    size_t npeers;
    int64_t uncertain_timeout_ms;
    int64_t precommit_timeout_ms;
    tp_termination termination;
} tp_params;

struct tp_branch {
    tp_peer *peers; /* owned; every participant, self included */
    size_t npeers;
    int64_t uncertain_timeout_ms, precommit_timeout_ms;
    tp_termination termination;
    atomic_int logged;         /* tp_state of the last record appended */
    atomic_llong at_ms;        /* wall clock of that record */
    atomic_llong deadline_ms;  /* monotonic now_ms() when the timer fires */
    atomic_bool terminating;   /* queued for / inside termination.c */
    atomic_int waits;          /* terminations that decided "wait" since the last decision
                                * (termination.c: their backoff) */
    atomic_bool fenced;        /* a peer's termination read it uncertain (durable): the
                                * coordinator's PreCommit is refused from then on */
    atomic_bool unverified;    /* replayed from the log while PostgreSQL could not say whether
                                * it is still prepared (its final record may have been lost):
                                * its state is not to be told or acted on before
                                * threepc_verify */
    bool registered;           /* in the registry (registry lock) */
};

tp_branch *tp_branch_new(const tp_params *p);
void tp_branch_free(tp_branch *tp);

/* Start: open <data_dir>/branches3pc.log, rebuild the 3PC branches it holds
 * into ag->table, settle the ones PostgreSQL no longer has prepared, arm the
 * timers of the others. Before the API and the sweep start. false = fatal. */
bool threepc_open(agent *ag) MUSTCHECK;
void threepc_close(agent *ag);

/* With b->mu held. Append the record and make it durable (fdatasync) before
 * returning true; arm the timer. false: nothing may be promised (logged). */
bool threepc_record_uncertain(agent *ag, branch *b) MUSTCHECK;
bool threepc_record_precommitted(agent *ag, branch *b) MUSTCHECK;
/* With b->mu held, uncertain branch: record that a peer's termination read it
 * uncertain, durably, before that answer goes out (PROTOCOL.md, fencing
 * read); sets b->tp->fenced. false: the answer must not be given (logged). */
bool threepc_record_fenced(agent *ag, branch *b) MUSTCHECK;
/* Final state, appended without fdatasync; the branch leaves the registry.
 * A failure is logged only: PostgreSQL has the truth (replay settles it). */
void threepc_record_final(agent *ag, branch *b, bool committed);

/* The timer fires delay_ms from now (uncertain/precommitted branches). */
void threepc_rearm(branch *b, int64_t delay_ms);

/* With b->mu held, 3PC branch that PostgreSQL no longer has prepared: mark it
 * committed or aborted as pg_xact_status(xid) says. false if that cannot be
 * told now (logged). */
bool threepc_settle_from_pg(agent *ag, branch *b) MUSTCHECK;

/* pg_xact_status(xid) on a pooled connection. false when PostgreSQL cannot be
 * asked (ctx filled); else status is "committed", "aborted", "in progress",
 * or "" (too old to tell). */
bool threepc_xact_status(agent *ag, const char *xid, fsm_ctx *ctx, char status[16]) MUSTCHECK;

/* With b->mu held, before a replayed branch's state is told (GET) or acted
 * on (precommit, commit, rollback): if it is unverified, ask PostgreSQL
 * whether it is still prepared and settle it from pg_xact_status if not.
 * true when its state can be trusted now; false (ctx filled, as for an
 * unreachable database) when PostgreSQL cannot tell yet. */
bool threepc_verify(agent *ag, branch *b, fsm_ctx *ctx) MUSTCHECK;

/* Tick (main thread): hand expired timers to termination.c, compact the log
 * when it has grown past its threshold. */
void threepc_tick(agent *ag, int64_t now);

/* Does the 3PC machinery own this branch (so the 2PC sweep must leave it)?
 * True for a 3PC branch that is prepared, uncertain or precommitted. */
bool threepc_owns(branch *b);

#endif
