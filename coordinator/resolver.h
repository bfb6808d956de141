/*
 * resolver.h - background finisher of decided transactions.
 */
#ifndef TXCOORD_RESOLVER_H
#define TXCOORD_RESOLVER_H

#include "txn.h"

bool resolver_start(void) MUSTCHECK;
/* Stop the thread; queued work is dropped (a restart re-derives it: 'C'
 * without 'E' from the log, aborts from the agents' sweeps). */
void resolver_stop(void);
/* Shutdown, first: no call of a round (the one running included) lasts
 * past deadline_ms (now_ms clock): then it fails as unanswered. */
void resolver_cut_at(int64_t deadline_ms);
/* Shutdown, before resolver_stop: wait until every job submitted without
 * delay (resolver_submit(t, 0), e.g. the rollbacks of the open
 * transactions a stop ends) has had its first round, or until deadline_ms.
 * Retries due later are not waited for. */
void resolver_drain(int64_t deadline_ms);

/* Hand t (state committing or aborting) over: the resolver re-sends the
 * decided outcome to every branch that still needs it, with capped,
 * jittered backoff, until all acknowledged, then drives "acked". A 3PC t in
 * precommitting (recovered 'P' without 'C') is first decided from the
 * agents' branch states (threepc.c), then delivered. Takes its own
 * reference. delay_ms 0 = first attempt at once (recovery, timeouts);
 * > 0 = after a failed first attempt. Queuing t twice is a no-op. */
void resolver_submit(txn *t, int64_t delay_ms);
/* Like resolver_submit(t, 0), but when t is already queued, make its next
 * attempt due now (an operator's resolve must not wait out a backoff). */
void resolver_kick(txn *t);
size_t resolver_pending(void);
/* A round's choice among n queued jobs (due[i]: when job i is due; exposed
 * for the unit tests): take[i] set for at most max of those due by now, the
 * earliest due first (of those due exactly at the last time taken, the
 * first in the array). Returns how many were taken. */
size_t resolver_pick_due(const int64_t *due, size_t n, int64_t now, size_t max, bool *take);

#endif
