/*
 * metrics.h - lock-free counters, gauges and latency histograms rendered as
 * Prometheus text exposition format (version 0.0.4).
 */
#ifndef TX_METRICS_H
#define TX_METRICS_H

#include <stdatomic.h>
#include "strbuf.h"

typedef struct { atomic_uint_fast64_t v; } metric_counter;
typedef struct { atomic_int_fast64_t v; } metric_gauge;

#define HIST_BUCKETS 16
/* Upper bounds in seconds: 0.0001, 0.0002, 0.0005, 0.001 .. 10 (1-2-5 steps), then +Inf. */
extern const double hist_bounds[HIST_BUCKETS];

typedef struct {
    atomic_uint_fast64_t buckets[HIST_BUCKETS + 1]; /* last = +Inf; not cumulative */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_ns;
} metric_histogram;

static inline void counter_inc(metric_counter *c) { atomic_fetch_add(&c->v, 1); }
static inline void counter_add(metric_counter *c, uint64_t n) { atomic_fetch_add(&c->v, n); }
static inline void gauge_add(metric_gauge *g, int64_t d) { atomic_fetch_add(&g->v, d); }
static inline void gauge_set(metric_gauge *g, int64_t v) { atomic_store(&g->v, v); }
void histogram_observe_us(metric_histogram *h, int64_t us);

/* Append "# HELP", "# TYPE" once per family via these helpers. labels may be
 * NULL or like "protocol=\"2pc\"". */
void metric_write_header(strbuf *sb, const char *name, const char *type, const char *help);
void metric_write_counter(strbuf *sb, const char *name, const char *labels, const metric_counter *c);
void metric_write_gauge(strbuf *sb, const char *name, const char *labels, const metric_gauge *g);
void metric_write_histogram(strbuf *sb, const char *name, const char *labels,
                            const metric_histogram *h);
/* A whole family of one unlabelled sample whose value is read at scrape time
 * from elsewhere (a module's own count): header, then the value. type is
 * "counter" or "gauge". */
void metric_write_value(strbuf *sb, const char *name, const char *type, const char *help,
                        uint64_t v);

#endif
