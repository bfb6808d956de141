/*
 * resolver.h - the recovery sweep thread of txagent (see resolver.c).
 */
#ifndef TXAGENT_RESOLVER_H
#define TXAGENT_RESOLVER_H

#include <pthread.h>

#include "agent.h"

/* Whether the sweep leaves a branch prepared age_ms ago (by PostgreSQL's
 * clock) to the coordinator: 0 <= age < min_age_ms. A negative age (the
 * server's clock went back since the PREPARE) counts as old enough, so a
 * clock step never hides an orphaned branch from the sweep. */
static inline bool resolver_too_young(int64_t age_ms, int64_t min_age_ms)
{
    return age_ms >= 0 && age_ms < min_age_ms;
}

/* Start the sweep thread: one sweep at once, then every ag->resolve_interval_ms. */
bool resolver_start(agent *ag, pthread_t *thread) MUSTCHECK;
/* Set ag->resolver_stop and join; returns within about one HTTP timeout. */
void resolver_stop(agent *ag, pthread_t thread);

#endif
