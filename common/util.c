/*
 * util.c - clocks, OOM-aborting allocators, sleeps, backoff and bounded runs.
 *
 * Invariants: the x* allocators never return NULL (they abort on OOM after
 * writing one line to stderr); clocks never fail (CLOCK_MONOTONIC is assumed).
 */
#include "util.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
    static const char msg[] = "txcoord: out of memory\n";
    (void)n;
    ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)r;
    abort();
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom(strlen(s));
    return p;
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        oom(n * sz);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        oom(0);
    return s;
}

/* Sleeps in slices of at most 50 ms so that a set *stop is noticed promptly. */
void sleep_ms(int64_t ms, atomic_int *stop)
{
    int64_t deadline = now_ms() + ms;
    for (;;) {
        if (stop && *stop)
            return;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return;
        if (stop && left > 50)
            left = 50;
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            if (stop && *stop)
                return;
        }
    }
}

/* Full jitter in [d/2, d] where d = min(cap, base * 2^attempt). */
int64_t backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
    if (base_ms < 1)
        base_ms = 1;
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    int64_t d = base_ms;
    for (int i = 0; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    static _Thread_local unsigned int seed;
    if (seed == 0)
        seed = (unsigned int)(now_us() ^ (int64_t)getpid() ^ (int64_t)(uintptr_t)&seed);
    int64_t half = d / 2;
    int64_t span = d - half + 1;
    return half + (int64_t)(rand_r(&seed) % span);
}

/* run_within's shared state: freed by whichever side is last (the waiter on
 * time, never when the thread is left behind: the caller exits). */
typedef struct {
    void (*fn)(void *);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} bounded_run;

static void *bounded_main(void *p)
{
    bounded_run *b = p;
    b->fn(b->arg);
    pthread_mutex_lock(&b->mu);
    b->done = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

bool run_within(void (*fn)(void *), void *arg, int64_t ms)
{
    bounded_run *b = xcalloc(1, sizeof(*b));
    b->fn = fn;
    b->arg = arg;
    pthread_mutex_init(&b->mu, NULL);
    cond_init_monotonic(&b->cv);
    pthread_t th;
    int rc = pthread_create(&th, NULL, bounded_main, b);
    if (rc != 0) {
        log_error("cannot start a helper thread: %s", strerror(rc));
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return false;
    }
    struct timespec deadline;
    deadline_in(CLOCK_MONOTONIC, ms, &deadline);
    pthread_mutex_lock(&b->mu);
    while (!b->done && pthread_cond_timedwait(&b->cv, &b->mu, &deadline) != ETIMEDOUT)
        ;
    bool done = b->done;
    pthread_mutex_unlock(&b->mu);
    if (!done) {
        pthread_detach(th);
        return false;
    }
    pthread_join(th, NULL);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
    return true;
}

void deadline_in(clockid_t clock, int64_t ms, struct timespec *out)
{
    clock_gettime(clock, out);
    out->tv_sec += ms / 1000;
    out->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}
