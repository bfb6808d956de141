/*
 * stats.c - per-client results (latency samples, outcome counts, first
 * error), their merge into one phase result with percentiles, and the
 * clients' random account choice.
 *
 * Invariants: a transaction counts only if it completed inside the measured
 * window [measure_from_us, measure_to_us); latency samples are kept for
 * committed ones only; percentiles are nearest-rank over all samples.
 */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile sig_atomic_t bench_interrupted;

void samples_push(sample_vec *s, int64_t us)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = us;
}

void samples_free(sample_vec *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

void client_record(bench_client *c, const bench_clock *clk, int64_t start_us, int64_t end_us,
                   txn_outcome o)
{
    if (o == TXN_ERROR)
        c->errors_total++;
    if (end_us < clk->measure_from_us || end_us >= clk->measure_to_us)
        return;
    switch (o) {
    case TXN_COMMITTED:
        c->committed++;
        samples_push(&c->lat, end_us - start_us);
        break;
    case TXN_ABORTED:
        c->aborted++;
        break;
    case TXN_ERROR:
        c->errors++;
        break;
    }
}

void client_error(bench_client *c, const char *fmt, ...)
{
    if (c->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->first_error, sizeof(c->first_error), fmt, ap);
    va_end(ap);
    one_line(c->first_error);
}

void one_line(char *s)
{
    char *w = s;
    bool space = false;
    for (const char *r = s; *r; r++) {
        bool ws = (*r == '\n' || *r == '\r' || *r == '\t' || *r == ' ');
        if (ws) {
            space = true;
            continue;
        }
        if (space && w != s)
            *w++ = ' ';
        space = false;
        *w++ = *r;
    }
    *w = '\0';
}

/* splitmix64: seeds and steps. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t bench_rng_seed(int thread_no)
{
    uint64_t x = (uint64_t)now_us() ^ ((uint64_t)(unsigned)thread_no << 40);
    return splitmix64(&x);
}

long long bench_pick_account(const bench_opts *o, uint64_t *rng)
{
    uint64_t range = (uint64_t)(o->hot > 0 && o->hot < o->accounts ? o->hot : o->accounts);
    return 1 + (long long)(splitmix64(rng) % range);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p% of samples <= it. */
static double percentile_ms(const int64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0.0;
    size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)sorted[rank - 1] / 1000.0;
}

void phase_result_from_clients(phase_result *r, bench_client *clients, int n, double duration_s)
{
    memset(r, 0, sizeof(*r));
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += clients[i].lat.n;
    int64_t *all = xmalloc((total ? total : 1) * sizeof(*all));
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        bench_client *c = &clients[i];
        if (c->lat.n)
            memcpy(all + k, c->lat.v, c->lat.n * sizeof(*all));
        k += c->lat.n;
        r->committed += c->committed;
        r->aborted += c->aborted;
        r->errors += c->errors;
        r->errors_total += c->errors_total;
        if (!r->first_error[0] && c->first_error[0])
            snprintf(r->first_error, sizeof(r->first_error), "%s", c->first_error);
    }
    qsort(all, total, sizeof(*all), cmp_i64);
    r->clients = n;
    r->tps = duration_s > 0 ? (double)r->committed / duration_s : 0.0;
    r->p50_ms = percentile_ms(all, total, 50.0);
    r->p99_ms = percentile_ms(all, total, 99.0);
    r->min_ms = total ? (double)all[0] / 1000.0 : 0.0;
    r->valid = true;
    free(all);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (mean of the two middle ones when n is even); sorts v. */
double stats_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

void phase_result_median(phase_result *out, const phase_result *rounds, int n)
{
    memset(out, 0, sizeof(*out));
    double *tps = xcalloc((size_t)n, sizeof(double));
    double *p50 = xcalloc((size_t)n, sizeof(double));
    double *p99 = xcalloc((size_t)n, sizeof(double));
    double *cpu = xcalloc((size_t)n, sizeof(double));
    double *own = xcalloc((size_t)n, sizeof(double));
    double *mn = xcalloc((size_t)n, sizeof(double));
    int m = 0, ml = 0;
    for (int i = 0; i < n; i++) {
        const phase_result *r = &rounds[i];
        if (!r->valid)
            continue;
        cpu[m] = r->cpu_busy_pct;
        own[m] = r->bench_us_per_txn;
        tps[m] = r->tps;
        m++;
        /* latencies only of rounds that committed something: one that
         * committed nothing has none (its percentiles read 0) */
        if (r->committed > 0) {
            mn[ml] = r->min_ms;
            p50[ml] = r->p50_ms;
            p99[ml] = r->p99_ms;
            ml++;
        }
        out->clients = r->clients;
        out->committed += r->committed;
        out->aborted += r->aborted;
        out->errors += r->errors;
        out->errors_total += r->errors_total;
        if (!out->first_error[0] && r->first_error[0])
            snprintf(out->first_error, sizeof(out->first_error), "%s", r->first_error);
    }
    if (m > 0) {
        out->tps = stats_median(tps, m);
        out->p50_ms = ml ? stats_median(p50, ml) : 0;
        out->p99_ms = ml ? stats_median(p99, ml) : 0;
        out->cpu_busy_pct = stats_median(cpu, m);
        out->bench_us_per_txn = stats_median(own, m);
        out->min_ms = ml ? stats_median(mn, ml) : 0;
        out->valid = true;
    }
    free(cpu);
    free(own);
    free(mn);
    free(tps);
    free(p50);
    free(p99);
}
