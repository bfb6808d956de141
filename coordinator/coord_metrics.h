/*
 * coord_metrics.h - txcoord's Prometheus metrics.
 *
 * Invariants: every metric is a lock-free atomic (common/metrics.h), updated
 * on the transaction paths without locks; rendering reads them as they are.
 */
#ifndef TXCOORD_COORD_METRICS_H
#define TXCOORD_COORD_METRICS_H

#include "metrics.h"
#include "txn.h"

typedef struct {
    metric_counter begun[PROTO_COUNT];
    metric_counter committed[PROTO_COUNT]; /* counted when the commit is decided */
    metric_counter aborted[PROTO_COUNT];   /* counted when the abort is decided */
    metric_counter timeouts;
    metric_counter heuristic_commits;      /* operator resolves ('H' records) */
    metric_counter heuristic_aborts;
    metric_counter mixed_outcomes;         /* branches found finished against the decision */
    metric_histogram commit_latency[PROTO_COUNT]; /* commit request -> answered, committed ones */
    metric_gauge in_flight;                /* transactions not yet committed/aborted */
} coord_metrics;

extern coord_metrics g_metrics;

/* Prometheus text. Caller frees. */
char *coord_metrics_render(void);

#endif
