/*
 * coord_metrics.c - renders txcoord's metrics as Prometheus text.
 *
 * Invariants: no lock is taken; the decision log and resolver figures are
 * read through their modules' thread-safe getters at scrape time.
 */
#include "coord_metrics.h"

#include <stdio.h>

#include "decision_log.h"
#include "resolver.h"

coord_metrics g_metrics;

static void write_per_protocol(strbuf *sb, const char *name, const char *help,
                               const metric_counter *arr)
{
    metric_write_header(sb, name, "counter", help);
    for (int p = 0; p < PROTO_COUNT; p++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "protocol=\"%s\"", txn_protocol_name((txn_protocol)p));
        metric_write_counter(sb, name, labels, &arr[p]);
    }
}

char *coord_metrics_render(void)
{
    strbuf sb;
    strbuf_init(&sb);
    write_per_protocol(&sb, "txcoord_transactions_begun_total", "Transactions begun.",
                       g_metrics.begun);
    write_per_protocol(&sb, "txcoord_transactions_committed_total",
                       "Transactions decided committed.", g_metrics.committed);
    write_per_protocol(&sb, "txcoord_transactions_aborted_total", "Transactions decided aborted.",
                       g_metrics.aborted);
    metric_write_header(&sb, "txcoord_transaction_timeouts_total", "counter",
                        "Active transactions rolled back by their timeout.");
    metric_write_counter(&sb, "txcoord_transaction_timeouts_total", NULL, &g_metrics.timeouts);
    metric_write_header(&sb, "txcoord_commit_latency_seconds", "histogram",
                        "Commit request to answer, committed transactions.");
    metric_write_histogram(&sb, "txcoord_commit_latency_seconds", NULL, &g_metrics.commit_latency);
    metric_write_header(&sb, "txcoord_transactions_in_flight", "gauge",
                        "Transactions not yet committed or aborted.");
    metric_write_gauge(&sb, "txcoord_transactions_in_flight", NULL, &g_metrics.in_flight);

    metric_counter syncs;
    atomic_init(&syncs.v, dlog_syncs());
    metric_write_header(&sb, "txcoord_decision_log_fsyncs_total", "counter",
                        "fdatasync calls on the decision log (group commit shares them).");
    metric_write_counter(&sb, "txcoord_decision_log_fsyncs_total", NULL, &syncs);
    metric_counter recs;
    atomic_init(&recs.v, dlog_commit_records());
    metric_write_header(&sb, "txcoord_decision_log_commit_records_total", "counter",
                        "Commit decisions forced to the decision log.");
    metric_write_counter(&sb, "txcoord_decision_log_commit_records_total", NULL, &recs);
    metric_gauge bytes;
    atomic_init(&bytes.v, (int64_t)dlog_bytes());
    metric_write_header(&sb, "txcoord_decision_log_bytes", "gauge", "Size of the decision log.");
    metric_write_gauge(&sb, "txcoord_decision_log_bytes", NULL, &bytes);
    metric_gauge pending;
    atomic_init(&pending.v, (int64_t)resolver_pending());
    metric_write_header(&sb, "txcoord_resolver_pending", "gauge",
                        "Decided transactions whose branches the resolver is still finishing.");
    metric_write_gauge(&sb, "txcoord_resolver_pending", NULL, &pending);
    return strbuf_take(&sb);
}
