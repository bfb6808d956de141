/*
 * heuristic.h - an operator's decision for an in-doubt transaction
 * (POST /v1/transactions/{gid}/resolve, txctl resolve).
 */
#ifndef TXCOORD_HEURISTIC_H
#define TXCOORD_HEURISTIC_H

#include <jansson.h>

#include "txn.h"

/* What this coordinator knows of a gid. */
typedef enum {
    GK_UNKNOWN = 0, /* not in memory, no 'C', no 'H': 404 */
    GK_UNDECIDED,   /* active, preparing, or 3PC precommitting ('P' without 'C') */
    GK_COMMITTING,  /* 'C' logged, some branch not acknowledged */
    GK_COMMITTED,   /* committed and finished (or evicted, known from the committed set) */
    GK_ABORTING,    /* abort decided, some branch not acknowledged */
    GK_ABORTED,     /* aborted and finished (or a heuristic abort replayed) */
} gid_knowledge;

typedef enum {
    HV_APPLY = 0,   /* write 'H' and act on it */
    HV_NOOP,        /* already that outcome and finished: nothing to do (200) */
    HV_UNDECIDED,   /* heuristic commit without a commit decision: 409 wrong_state */
    HV_CONTRADICTS, /* against a logged decision: 409 contradicts_decision */
    HV_UNKNOWN,     /* 404 unknown_transaction */
} heuristic_verdict;

/* The contradiction rules (table in heuristic.c). Pure. */
heuristic_verdict heuristic_rule(gid_knowledge k, bool commit);
const char *gid_knowledge_name(gid_knowledge k);

/* Apply an operator's decision (commit or abort) to gid. Returns the HTTP
 * status and sets *body (new reference): the answer
 * {"gid","outcome","heuristic","recorded","transaction"?} or an error body. */
unsigned heuristic_resolve(const char *gid, bool commit, json_t **body);

#endif
