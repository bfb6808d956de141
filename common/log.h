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

/* Log at FATAL and _exit(1) (safe from any thread: no atexit handlers run). */
void die(const char *fmt, ...) PRINTF_LIKE(1, 2) __attribute__((noreturn));

#endif
