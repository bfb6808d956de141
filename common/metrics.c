/*
 * metrics.c - Prometheus text exposition (0.0.4) of counters, gauges and
 * latency histograms.
 *
 * Invariants: updates are single relaxed-enough atomic adds (no locks); the
 * stored histogram buckets are per-bucket (not cumulative) and rendering makes
 * them cumulative, ending with le="+Inf" equal to _count as read in the same
 * pass; _sum is in seconds. hist_bounds is strictly increasing.
 */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

const double hist_bounds[HIST_BUCKETS] = {
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
    0.05,   0.1,    0.2,    0.5,   1,     2,     5,     10,
};

/* Same bounds in microseconds, so observing needs no floating point. */
static const int64_t hist_bounds_us[HIST_BUCKETS] = {
    100,    200,    500,    1000,    2000,    5000,    10000,   20000,
    50000, 100000, 200000, 500000, 1000000, 2000000, 5000000, 10000000,
};

void histogram_observe_us(metric_histogram *h, int64_t us)
{
    if (us < 0)
        us = 0;
    size_t i = 0;
    while (i < HIST_BUCKETS && us > hist_bounds_us[i])
        i++;
    atomic_fetch_add(&h->buckets[i], 1);
    atomic_fetch_add(&h->sum_ns, (uint_fast64_t)us * 1000u);
    atomic_fetch_add(&h->count, 1);
}

void metric_write_header(strbuf *sb, const char *name, const char *type, const char *help)
{
    strbuf_appendf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help ? help : "", name, type);
}

static void write_name(strbuf *sb, const char *name, const char *suffix, const char *labels,
                       const char *extra)
{
    strbuf_append(sb, name);
    if (suffix)
        strbuf_append(sb, suffix);
    bool has_labels = labels && *labels;
    if (has_labels || extra) {
        strbuf_append(sb, "{");
        if (has_labels)
            strbuf_append(sb, labels);
        if (has_labels && extra)
            strbuf_append(sb, ",");
        if (extra)
            strbuf_append(sb, extra);
        strbuf_append(sb, "}");
    }
    strbuf_append(sb, " ");
}

void metric_write_counter(strbuf *sb, const char *name, const char *labels, const metric_counter *c)
{
    write_name(sb, name, NULL, labels, NULL);
    strbuf_appendf(sb, "%llu\n", (unsigned long long)atomic_load(&((metric_counter *)c)->v));
}

void metric_write_gauge(strbuf *sb, const char *name, const char *labels, const metric_gauge *g)
{
    write_name(sb, name, NULL, labels, NULL);
    strbuf_appendf(sb, "%lld\n", (long long)atomic_load(&((metric_gauge *)g)->v));
}

void metric_write_histogram(strbuf *sb, const char *name, const char *labels,
                            const metric_histogram *hc)
{
    metric_histogram *h = (metric_histogram *)hc; /* atomic_load needs non-const on some libcs */
    unsigned long long cum = 0;
    char le[48];
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        cum += (unsigned long long)atomic_load(&h->buckets[i]);
        snprintf(le, sizeof(le), "le=\"%g\"", hist_bounds[i]);
        write_name(sb, name, "_bucket", labels, le);
        strbuf_appendf(sb, "%llu\n", cum);
    }
    cum += (unsigned long long)atomic_load(&h->buckets[HIST_BUCKETS]);
    write_name(sb, name, "_bucket", labels, "le=\"+Inf\"");
    strbuf_appendf(sb, "%llu\n", cum);
    write_name(sb, name, "_sum", labels, NULL);
    strbuf_appendf(sb, "%.9g\n", (double)atomic_load(&h->sum_ns) / 1e9);
    /* _count equals the +Inf bucket of this rendering, even under concurrent updates. */
    write_name(sb, name, "_count", labels, NULL);
    strbuf_appendf(sb, "%llu\n", cum);
}

void metric_write_value(strbuf *sb, const char *name, const char *type, const char *help,
                        uint64_t v)
{
    metric_write_header(sb, name, type, help);
    write_name(sb, name, NULL, NULL, NULL);
    if (strcmp(type, "counter") == 0)
        strbuf_appendf(sb, "%llu\n", (unsigned long long)v);
    else
        strbuf_appendf(sb, "%lld\n", (long long)(int64_t)v);
}
