/*
 * coord.h - process-wide settings of txcoord, fixed at startup.
 *
 * Invariants: g_coord is written only by main.c before the first thread
 * starts (HTTP server, resolver) and is read-only afterwards, so readers
 * take no lock.
 */
#ifndef TXCOORD_COORD_H
#define TXCOORD_COORD_H

#include "util.h"

/* What a 3PC agent does when its uncertain / pre-committed timer fires
 * (docs/PROTOCOL.md "Three-phase commit"). */
typedef enum {
    TERMINATION_PROTOCOL = 0,
    TERMINATION_TIMEOUT,
    TERMINATION_BLOCKING, /* agents wait for unreachable peers (participant/tp.h) */
    TERMINATION_COUNT
} termination_rule;

/* Per-transaction 3PC settings: from POST /v1/transactions, defaults from flags. */
typedef struct {
    int64_t cancommit_timeout_ms;  /* coordinator waiting for votes -> abort */
    int64_t precommit_timeout_ms;  /* coordinator waiting for PreCommit acks -> go on; agents' too */
    int64_t uncertain_timeout_ms;  /* agent voted yes, no PreCommit -> termination */
    termination_rule termination;
} threepc_settings;

typedef struct {
    char coord_id[9];             /* 8 lowercase hex + NUL */
    uint64_t epoch;               /* incremented durably at each start */
    long long default_timeout_ms; /* transaction timeout when the client gives none */
    long long agent_timeout_ms;   /* per agent call: prepare, commit, rollback */
    long long retention_s;        /* finished transactions stay queryable this long */
    long long retention_max;      /* ... and at most this many of them */
    long long max_unfinished;     /* begins refused (503) while this many are unfinished; 0: no limit */
    bool sequential_phase2;       /* after-first-commit armed: COMMIT one branch at a time */
    bool sequential_precommit;    /* 3pc-after-first-precommit armed: PreCommit one at a time */
    threepc_settings threepc;     /* defaults for 3PC transactions (--3pc-* flags) */
} coord_settings;

extern coord_settings g_coord;

#endif
