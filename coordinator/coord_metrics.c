/*
 * coord_metrics.c - renders txcoord's metrics as Prometheus text.
 *
 * Invariants: no lock is taken here; the decision log, committed set and
 * resolver figures come from their modules' thread-safe getters at scrape
 * time.
 */
#include "coord_metrics.h"

#include <stdio.h>

#include "committed.h"
#include "decision_log.h"
#include "httpd.h"
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
    metric_write_header(&sb, "txcoord_heuristic_decisions_total", "counter",
                        "Operator resolves of in-doubt transactions (heuristic records).");
    metric_write_counter(&sb, "txcoord_heuristic_decisions_total", "outcome=\"commit\"",
                         &g_metrics.heuristic_commits);
    metric_write_counter(&sb, "txcoord_heuristic_decisions_total", "outcome=\"abort\"",
                         &g_metrics.heuristic_aborts);
    metric_write_header(&sb, "txcoord_mixed_outcome_branches_total", "counter",
                        "Branches found finished against the decision (a 3PC branch that "
                        "terminated on its own across a partition, or a prepared branch "
                        "finished by hand): atomicity violations.");
    metric_write_counter(&sb, "txcoord_mixed_outcome_branches_total", NULL,
                         &g_metrics.mixed_outcomes);
    metric_write_header(&sb, "txcoord_commit_latency_seconds", "histogram",
                        "Commit request to answer, committed transactions.");
    for (int p = 0; p < PROTO_COUNT; p++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "protocol=\"%s\"", txn_protocol_name((txn_protocol)p));
        metric_write_histogram(&sb, "txcoord_commit_latency_seconds", labels,
                               &g_metrics.commit_latency[p]);
    }
    metric_write_header(&sb, "txcoord_transactions_in_flight", "gauge",
                        "Transactions not yet committed or aborted.");
    metric_write_gauge(&sb, "txcoord_transactions_in_flight", NULL, &g_metrics.in_flight);

    metric_write_value(&sb, "txcoord_transactions_retained", "gauge",
                       "Finished transactions still held in full for GET "
                       "(--finished-retention-s, --finished-retention-max).",
                       txn_retained_count());
    metric_write_value(&sb, "txcoord_decision_log_fsyncs_total", "counter",
                       "fdatasync calls on the decision log (group commit shares them).",
                       dlog_syncs());
    metric_write_value(&sb, "txcoord_decision_log_commit_records_total", "counter",
                       "Commit decisions forced to the decision log.", dlog_commit_records());
    metric_write_value(&sb, "txcoord_decision_log_compactions_total", "counter",
                       "Rewrites of the decision log keeping only unfinished decisions.",
                       dlog_compactions());
    metric_write_value(&sb, "txcoord_decision_log_bytes", "gauge", "Size of the decision log.",
                       dlog_bytes());
    metric_write_value(&sb, "txcoord_committed_set_bytes", "gauge",
                       "Memory of the set of committed gids (outcome endpoint).",
                       committed_bytes());
    metric_write_value(&sb, "txcoord_http_unauthorized_total", "counter",
                       "Requests refused with 401: no or wrong token (--token-file).",
                       http_unauthorized_count());
    metric_write_value(&sb, "txcoord_resolver_pending", "gauge",
                       "Decided transactions whose branches the resolver is still finishing.",
                       resolver_pending());
    return strbuf_take(&sb);
}
