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

typedef struct {
    char coord_id[9];             /* 8 lowercase hex + NUL */
    uint64_t epoch;               /* incremented durably at each start */
    long long default_timeout_ms; /* transaction timeout when the client gives none */
    long long agent_timeout_ms;   /* per agent call: prepare, commit, rollback */
    long long retention_s;        /* finished transactions stay queryable this long */
    bool sequential_phase2;       /* after-first-commit armed: COMMIT one branch at a time */
} coord_settings;

extern coord_settings g_coord;

#endif
