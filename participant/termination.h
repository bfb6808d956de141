/*
 * termination.h - the 3PC termination protocol of txagent: a pool of worker
 * threads (ag->tp_termination_workers) that end branches whose
 * uncertain/precommitted timer expired, several at once, one termination per
 * branch at a time (termination.c).
 */
#ifndef TXAGENT_TERMINATION_H
#define TXAGENT_TERMINATION_H

#include "agent.h"

/* Start the workers (ag->term). false on failure (logged; none left running). */
bool termination_start(agent *ag) MUSTCHECK;
/* Stop and join every worker; a termination in progress finishes (each of its
 * calls is bounded), queued ones are dropped. */
void termination_stop(agent *ag);
/* Queue gid (its tp->terminating is already set by the caller; cleared by the
 * worker when done). A gid already queued or running is not queued again. */
void termination_submit(agent *ag, const char *gid);

#endif
