/*
 * fault.h - named fault points for fault injection.
 *
 * A process arms at most one point at start with a spec NAME[:N][=ACTION]:
 *   fault_init("name")            _exit at the first hit
 *   fault_init("name:N")          _exit at the N-th hit
 *   fault_init("name:N=pause:MS") from the N-th hit on, every hit sleeps MS ms
 *                                 in the calling thread ("=exit" is the default)
 *   fault_init("name:N=error")    from the N-th hit on, fault_fails("name")
 *                                 answers true: the caller fails that I/O as if
 *                                 the device had (points made for it only)
 * Exit logs "crash point NAME reached" and calls _exit(137) at once: no atexit
 * handlers, no flushing, like a power cut. Pause logs "fault point NAME
 * reached: pausing MS ms (hit K)" and returns after the sleep (a scenario
 * acts on the world meanwhile, e.g. cuts a link). Points are listed in README;
 * an unknown name or a bad count/action given to fault_init is an error.
 */
#ifndef TX_FAULT_H
#define TX_FAULT_H

#include "util.h"

/* spec may be NULL or "" (nothing armed). known: NULL-terminated list of
 * valid names; an entry NAME=error is a point read by fault_fails only,
 * which must be armed with =error (and the others must not be): a spec
 * that would never act is refused. */
bool fault_init(const char *spec, const char *const *known) MUSTCHECK;
/* The armed point's name (borrowed, valid until the next fault_init), or NULL. */
const char *fault_armed_name(void);
void fault_point(const char *name);
/* For an I/O point: true when it is armed with =error and this hit fails
 * (the caller then behaves as on EIO). */
bool fault_fails(const char *name);

#endif
