/*
 * fault.c - named crash points for fault injection (tests only arm them).
 *
 * Invariants: at most one point is armed, chosen once before threads start;
 * reaching it the N-th time logs "crash point NAME reached" and _exit(137)s
 * with no cleanup; an unarmed point costs one pointer test.
 */
#include "fault.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char *fault_armed;          /* NULL = nothing armed */
static long fault_target = 1;      /* die at this hit */
static atomic_long fault_hits;

bool fault_init(const char *spec, const char *const *known)
{
    free(fault_armed);
    fault_armed = NULL;
    fault_target = 1;
    atomic_store(&fault_hits, 0);
    if (!spec || !*spec)
        return true;
    char *name = xstrdup(spec);
    char *colon = strchr(name, ':');
    if (colon) {
        *colon = '\0';
        char *end;
        errno = 0;
        long n = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || n < 1) {
            log_error("crash point %s: bad count '%s' (want a positive integer)", name,
                      colon + 1);
            free(name);
            return false;
        }
        fault_target = n;
    }
    bool found = false;
    for (size_t i = 0; known && known[i]; i++)
        if (strcmp(known[i], name) == 0)
            found = true;
    if (!found) {
        log_error("unknown crash point '%s'", name);
        free(name);
        return false;
    }
    fault_armed = name;
    log_warn("crash point %s armed (hit %ld)", fault_armed, fault_target);
    return true;
}

void fault_point(const char *name)
{
    if (!fault_armed || strcmp(fault_armed, name) != 0)
        return;
    long hit = atomic_fetch_add(&fault_hits, 1) + 1;
    if (hit == fault_target) {
        log_msg(LOG_FATAL, NULL, NULL, "crash point %s reached", name);
        _exit(137);
    }
}
