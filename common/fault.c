/*
 * fault.c - named fault points for fault injection (tests only arm them).
 *
 * Spec: NAME[:N][=ACTION], ACTION exit (the default), pause:MS or error.
 * Invariants: at most one point is armed, chosen once before threads start;
 * from its N-th hit on (default the first) the action runs at every hit:
 *   exit     log "crash point NAME reached" and _exit(137) with no cleanup
 *            (so the N-th hit is the only one);
 *   pause:MS log "fault point NAME reached: pausing MS ms" and sleep MS ms
 *            in the calling thread, then return: the process lives on, other
 *            threads keep running, and every later hit pauses too;
 *   error    the point is a simulated I/O error (fault_fails, not fault_point):
 *            from the N-th hit on every hit fails, like a device gone bad,
 *            logging "fault point NAME reached: failing (hit K)".
 * An unarmed point costs one pointer test.
 */
#include "fault.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define FAULT_PAUSE_MAX_MS (3600L * 1000)

static char *fault_armed;          /* NULL = nothing armed */
static long fault_target = 1;      /* act from this hit on */
static long fault_pause_ms;        /* 0 = exit, else pause this long */
static bool fault_error;           /* action error: fault_fails answers true */
static atomic_long fault_hits;

/* "N" after the name: a positive integer. */
static bool parse_count(const char *name, const char *s, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || end == s || *end || n < 1) {
        log_error("crash point %s: bad count '%s' (want a positive integer)", name, s);
        return false;
    }
    *out = n;
    return true;
}

/* ACTION after '=': exit, pause:MS (MS in 1..FAULT_PAUSE_MAX_MS) or error. */
static bool parse_action(const char *name, const char *s, long *pause_ms, bool *error)
{
    *pause_ms = 0;
    *error = false;
    if (strcmp(s, "exit") == 0)
        return true;
    if (strcmp(s, "error") == 0) {
        *error = true;
        return true;
    }
    if (strncmp(s, "pause:", 6) == 0) {
        char *end;
        errno = 0;
        long ms = strtol(s + 6, &end, 10);
        if (!errno && end != s + 6 && !*end && ms >= 1 && ms <= FAULT_PAUSE_MAX_MS) {
            *pause_ms = ms;
            return true;
        }
    }
    log_error("crash point %s: bad action '%s' (want exit, error or pause:MS, MS in 1..%ld)", name, s,
              FAULT_PAUSE_MAX_MS);
    return false;
}

bool fault_init(const char *spec, const char *const *known)
{
    free(fault_armed);
    fault_armed = NULL;
    fault_target = 1;
    fault_pause_ms = 0;
    fault_error = false;
    atomic_store(&fault_hits, 0);
    if (!spec || !*spec)
        return true;
    char *name = xstrdup(spec);
    long target = 1, pause_ms = 0;
    bool error = false;
    char *eq = strchr(name, '=');
    if (eq)
        *eq = '\0';
    char *colon = strchr(name, ':');
    if (colon)
        *colon = '\0';
    if ((colon && !parse_count(name, colon + 1, &target)) ||
        (eq && !parse_action(name, eq + 1, &pause_ms, &error))) {
        free(name);
        return false;
    }
    /* known[i] is NAME, or NAME=error for a point read by fault_fails only */
    const char *entry = NULL;
    for (size_t i = 0; known && known[i] && !entry; i++) {
        size_t n = strcspn(known[i], "=");
        if (strlen(name) == n && strncmp(known[i], name, n) == 0)
            entry = known[i];
    }
    if (!entry) {
        log_error("unknown crash point '%s'", name);
        free(name);
        return false;
    }
    bool error_point = strchr(entry, '=') != NULL;
    if (error_point != error) {
        /* armed, it would never act: fault_point ignores an error action,
         * fault_fails anything else */
        log_error(error_point ? "fault point %s simulates an I/O error: arm it as %s=error"
                              : "crash point %s takes exit or pause:MS, not error (%s)",
                  name, error_point ? name : spec);
        free(name);
        return false;
    }
    fault_armed = name;
    fault_target = target;
    fault_pause_ms = pause_ms;
    fault_error = error;
    if (error)
        log_warn("fault point %s armed: fail from hit %ld on", fault_armed, fault_target);
    else if (pause_ms)
        log_warn("fault point %s armed: pause %ld ms from hit %ld on", fault_armed, pause_ms,
                 fault_target);
    else
        log_warn("crash point %s armed (hit %ld)", fault_armed, fault_target);
    return true;
}

const char *fault_armed_name(void)
{
    return fault_armed;
}

void fault_point(const char *name)
{
    if (!fault_armed || fault_error || strcmp(fault_armed, name) != 0)
        return;
    long hit = atomic_fetch_add(&fault_hits, 1) + 1;
    if (hit < fault_target)
        return;
    if (fault_pause_ms) {
        log_warn("fault point %s reached: pausing %ld ms (hit %ld)", name, fault_pause_ms, hit);
        sleep_ms(fault_pause_ms, NULL);
        return;
    }
    if (hit == fault_target) {
        log_msg(LOG_FATAL, NULL, NULL, "crash point %s reached", name);
        _exit(137);
    }
}

bool fault_fails(const char *name)
{
    if (!fault_armed || !fault_error || strcmp(fault_armed, name) != 0)
        return false;
    long hit = atomic_fetch_add(&fault_hits, 1) + 1;
    if (hit < fault_target)
        return false;
    log_warn("fault point %s reached: failing (hit %ld)", name, hit);
    return true;
}
