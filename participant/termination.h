/*
 * termination.h - the 3PC termination protocol of txagent: a worker thread
 * that ends branches whose uncertain/precommitted timer expired (termination.c).
 */
#ifndef TXAGENT_TERMINATION_H
#define TXAGENT_TERMINATION_H

#include "agent.h"

/* Start the worker (ag->term). false on failure (logged). */
bool termination_start(agent *ag) MUSTCHECK;
/* Stop and join it; a termination in progress finishes its current step. */
void termination_stop(agent *ag);
/* Queue gid (its tp->terminating is already set by the caller). */
void termination_submit(agent *ag, const char *gid);

#endif
