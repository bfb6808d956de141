/*
 * fault.h - named crash points for fault injection.
 *
 * A process arms at most one point at start: fault_init("name") or
 * fault_init("name:N") (die at the N-th time the point is reached). When an
 * armed point is reached the process logs "crash point NAME reached" and
 * calls _exit(137) at once: no atexit handlers, no flushing, like a power cut.
 * Points are listed in README; an unknown name given to fault_init is an error.
 */
#ifndef TX_FAULT_H
#define TX_FAULT_H

#include "util.h"

/* spec may be NULL or "" (nothing armed). known: NULL-terminated list of valid names. */
bool fault_init(const char *spec, const char *const *known) MUSTCHECK;
void fault_point(const char *name);

#endif
