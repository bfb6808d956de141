/*
 * util.h - small helpers shared by every txcoord binary.
 *
 * Invariants: nothing here allocates behind the caller's back except where a
 * function says "caller frees"; every bool-returning function logs its own
 * failure once (see log.h) so callers add nothing.
 */
#ifndef TX_UTIL_H
#define TX_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define MUSTCHECK __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Monotonic clock in milliseconds / microseconds. */
int64_t now_ms(void);
int64_t now_us(void);
/* Wall clock in milliseconds since the epoch (for records shown to humans). */
int64_t wall_ms(void);

/* strdup that aborts on OOM. Caller frees. */
char *xstrdup(const char *s);
/* malloc/calloc/realloc that abort on OOM. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
/* asprintf that aborts on OOM. Caller frees. */
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* *out = now on clock + ms: an absolute deadline for the timed waits
 * (pthread_cond_timedwait: CLOCK_REALTIME unless the condvar says otherwise;
 * pthread_mutex_clocklock: the clock given). */
void deadline_in(clockid_t clock, int64_t ms, struct timespec *out);
/* pthread_cond_init with CLOCK_MONOTONIC for its timed waits (deadlines
 * from deadline_in(CLOCK_MONOTONIC, ...)): a wall-clock step (NTP) neither
 * stretches nor cuts a wait. */
void cond_init_monotonic(pthread_cond_t *cv);

/* Sleep for ms milliseconds (restarts on EINTR unless *stop becomes set). */
void sleep_ms(int64_t ms, atomic_int *stop);

/* Run fn(arg) on a helper thread and wait at most ms for it. True when it
 * returned in time (the thread is joined). False when it did not (or no
 * thread could be started; logged): the thread is left running, detached,
 * with arg, and the caller is expected to _exit (shutdown paths). */
bool run_within(void (*fn)(void *), void *arg, int64_t ms) MUSTCHECK;

/* Capped, jittered exponential backoff: attempt 0 -> ~base, doubling up to cap. */
int64_t backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);

#endif
