/*
 * log.h - one line per event, to stderr, stable wording (tests grep it).
 *
 * Line format:
 *   2026-11-26T00:12:09.123Z txcoord[1234] INFO gid=... participant=... msg
 * Every call site that concerns a transaction passes its gid and participant
 * through the tx_log* macros so that they always appear in the same place.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef TX_LOG_H
#define TX_LOG_H

#include <pthread.h>

#include "util.h"

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL } log_level;

/* Set the program name shown in every line and the minimum level. */
void log_init(const char *progname, log_level min_level);
/* Parse "debug|info|warn|error"; false if unknown. */
bool log_level_parse(const char *s, log_level *out) MUSTCHECK;

/* gid / participant may be NULL (then the field is omitted). */
void log_msg(log_level lvl, const char *gid, const char *participant, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

#define log_debug(...) log_msg(LOG_DEBUG, NULL, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, NULL, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, NULL, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, NULL, NULL, __VA_ARGS__)
/* Transaction-scoped variants: gid and participant (either may be NULL). */
#define txlog_debug(g, p, ...) log_msg(LOG_DEBUG, (g), (p), __VA_ARGS__)
#define txlog_info(g, p, ...) log_msg(LOG_INFO, (g), (p), __VA_ARGS__)
#define txlog_warn(g, p, ...) log_msg(LOG_WARN, (g), (p), __VA_ARGS__)
#define txlog_error(g, p, ...) log_msg(LOG_ERROR, (g), (p), __VA_ARGS__)

/* A limit on lines a caller cannot bound itself (anyone who can connect can
 * cause them): at most `burst` per window of `window_ms`. Static storage:
 *   static log_throttle lim = LOG_THROTTLE_INIT(10, 60000);
 *   unsigned held;
 *   if (log_throttle_due(&lim, &held)) log_warn(...);
 * *held: lines refused in the window that just ended (0 otherwise), for one
 * "N more not logged" line. (A transaction's retry lines have their own,
 * lock-free under txn->mu: coordinator/txn.h, log_limit.) */
typedef struct {
    pthread_mutex_t mu;
    int64_t window_start;
    unsigned in_window, held;
    unsigned burst;
    int64_t window_ms;
} log_throttle;
#define LOG_THROTTLE_INIT(burst, window_ms)                                                  \
    {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, (burst), (window_ms)}
bool log_throttle_due(log_throttle *l, unsigned *held);

/* Log at FATAL and _exit(1) (safe from any thread: no atexit handlers run). */
void die(const char *fmt, ...) PRINTF_LIKE(1, 2) __attribute__((noreturn));

#endif
