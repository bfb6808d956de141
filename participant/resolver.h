/*
 * resolver.h - the recovery sweep thread of txagent (see resolver.c).
 */
#ifndef TXAGENT_RESOLVER_H
#define TXAGENT_RESOLVER_H

#include <pthread.h>

#include "agent.h"

/* Start the sweep thread: one sweep at once, then every ag->resolve_interval_ms. */
bool resolver_start(agent *ag, pthread_t *thread) MUSTCHECK;
/* Set ag->resolver_stop and join; returns within about one HTTP timeout. */
void resolver_stop(agent *ag, pthread_t thread);

#endif
