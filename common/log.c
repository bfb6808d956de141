/*
 * log.c - timestamped, leveled log lines to stderr.
 *
 * Invariants: each line is formatted into one buffer and emitted with a single
 * write(2), so concurrent lines never interleave; a line longer than the buffer
 * is truncated and ends with "..."; timestamps are UTC ISO-8601 with ms.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static char log_prog[64] = "txcoord";
static log_level log_min = LOG_INFO;
static long log_pid; /* cached at log_init (our daemons never fork after it) */

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "FATAL"};

void log_init(const char *progname, log_level min_level)
{
    if (progname) {
        const char *slash = strrchr(progname, '/');
        snprintf(log_prog, sizeof(log_prog), "%s", slash ? slash + 1 : progname);
    }
    log_min = min_level;
    log_pid = (long)getpid();
}

bool log_level_parse(const char *s, log_level *out)
{
    static const struct { const char *name; log_level lvl; } tab[] = {
        {"debug", LOG_DEBUG}, {"info", LOG_INFO}, {"warn", LOG_WARN},
        {"warning", LOG_WARN}, {"error", LOG_ERROR},
    };
    if (!s)
        return false;
    for (size_t i = 0; i < ARRAY_LEN(tab); i++) {
        if (strcasecmp(s, tab[i].name) == 0) {
            *out = tab[i].lvl;
            return true;
        }
    }
    return false;
}

static void log_vmsg(log_level lvl, const char *gid, const char *participant, const char *fmt,
                     va_list ap)
{
    if (lvl < log_min && lvl != LOG_FATAL)
        return;
    char line[LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t pos = 0;
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, log_prog, log_pid ? log_pid : (long)getpid(),
                     level_names[lvl]);
    pos = (size_t)n;
    if (gid && pos < sizeof(line)) {
        n = snprintf(line + pos, sizeof(line) - pos, "gid=%s ", gid);
        pos += (size_t)n;
    }
    if (participant && pos < sizeof(line)) {
        n = snprintf(line + pos, sizeof(line) - pos, "participant=%s ", participant);
        pos += (size_t)n;
    }
    if (pos < sizeof(line)) {
        n = vsnprintf(line + pos, sizeof(line) - pos, fmt, ap);
        if (n > 0)
            pos += (size_t)n;
    }
    /* Reserve room for the newline; mark truncation. */
    if (pos >= sizeof(line) - 1) {
        pos = sizeof(line) - 1;
        memcpy(line + pos - 3, "...", 3);
    }
    /* Never let an embedded newline split our one-line format. */
    for (size_t i = 0; i < pos; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[pos++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w;
}

void log_msg(log_level lvl, const char *gid, const char *participant, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lvl, gid, participant, fmt, ap);
    va_end(ap);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_FATAL, NULL, NULL, fmt, ap);
    va_end(ap);
    /* _exit, not exit: die is called from worker threads too (a decision
     * record that may or may not be durable), and exit's atexit handlers
     * (libcurl's, OpenSSL's) must not run while other threads are inside
     * them. The log line is already written (write(2), unbuffered); the
     * restart decides from the logs. */
    _exit(1);
}

bool log_throttle_due(log_throttle *l, unsigned *held)
{
    int64_t now = now_ms();
    *held = 0;
    pthread_mutex_lock(&l->mu);
    if (l->window_start == 0 || now - l->window_start >= l->window_ms) {
        *held = l->held;
        l->window_start = now;
        l->in_window = 0;
        l->held = 0;
    }
    bool due = l->in_window < l->burst;
    if (due)
        l->in_window++;
    else
        l->held++;
    pthread_mutex_unlock(&l->mu);
    return due;
}
