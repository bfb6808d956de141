/*
 * resolver.c - finishes decided transactions in the background: re-sends
 * COMMIT (committing) or ROLLBACK (aborting) to each branch until it
 * answers, then drives the "acked" transition (which writes 'E' for commits).
 * Also runs the recovery rounds of 3PC transactions in precommitting ('P'
 * without 'C': replayed at a start, or live after threepc.c step 6b, no
 * PreCommit answered): ask every agent its branch state, let threepc.c
 * decide, then deliver.
 *
 * Invariants:
 *   - The resolver never decides anything itself: it delivers the outcome
 *     already in t's state (so it can run any number of times), and a 3PC
 *     recovery decision is threepc.c's, taken under t's op_mu.
 *   - A transaction is queued at most once (t->in_resolver) and the queue
 *     holds a reference to it.
 *   - One thread; the jobs due at the same time are delivered in one
 *     parallel httpc_perform, up to RESOLVER_MAX_BATCH of them, earliest due
 *     first (the rest go in the next round at once), so an unreachable agent
 *     delays a round by at most one agent timeout, not one per transaction.
 *   - Backoff per job: backoff_ms(attempt, 200 ms, 30 s), jittered. A kick
 *     (resolver_kick) makes a queued job due now; one that lands while the
 *     job is in the running round sets t->resolver_kicked, read when the
 *     round requeues it. Lock order: mu, then t->mu.
 *   - No lock is held across the network calls.
 *   - Shutdown (resolver_cut_at, resolver_drain, resolver_stop): from the
 *     cut on, a round's calls still waiting fail at once (the round running
 *     when it is set included); the jobs submitted without delay get their
 *     first round until then; what is unacknowledged is dropped at the stop,
 *     as at a crash.
 *   - Log volume: a retry that fails again is not logged each time (agent.c,
 *     threepc.c: first failure, then one line per branch per minute); when
 *     lines were held back, one summary line per RESOLVER_SUMMARY_MS says how
 *     many transactions are unfinished and how many failures went unlogged.
 */
#include "resolver.h"

#include <string.h>
#include <time.h>
#include <stdlib.h>

#include "agent.h"
#include "log.h"
#include "threepc.h"
#include "txn_fsm.h"

#define RESOLVER_BASE_MS 200
#define RESOLVER_CAP_MS 30000
#define RESOLVER_IDLE_MS 1000
/* Transactions per delivery round: thousands timing out at once (their
 * rollbacks) would otherwise go out as one burst of as many connections,
 * past an agent's connection limit and our own descriptors; the rest follow
 * in the next rounds, at once. */
#define RESOLVER_MAX_BATCH 128
#define RESOLVER_SUMMARY_MS RETRY_LOG_EVERY_MS

typedef struct job {
    struct job *next;
    txn *t; /* reference owned by the job */
    int attempt;
    int64_t due_ms;
} job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv; /* monotonic clock: initialised by cv_ready() */
static pthread_once_t cv_once = PTHREAD_ONCE_INIT;

static void cv_init(void)
{
    cond_init_monotonic(&cv);
}

/* Before any use of cv: submits come before resolver_start (replay). */
static void cv_ready(void)
{
    pthread_once(&cv_once, cv_init);
}
static job *queue;
static size_t nqueue;
static bool stopping;
static bool running;
static bool round_running;     /* a batch is out of the queue, being delivered */
static atomic_llong cut_at_ms; /* 0, or (resolver_cut_at): no round's call outlives it */
static pthread_t thread;
/* Resolver thread only: the periodic summary. */
static uint64_t failed_deliveries; /* branches not acknowledged, all rounds */
static uint64_t summary_failed, summary_skipped;
static int64_t summary_ms;

void resolver_submit(txn *t, int64_t delay_ms)
{
    cv_ready();
    pthread_mutex_lock(&t->mu);
    bool already = t->in_resolver;
    t->in_resolver = true;
    pthread_mutex_unlock(&t->mu);
    if (already)
        return;
    txn_ref(t);
    job *j = xcalloc(1, sizeof(*j));
    j->t = t;
    j->attempt = delay_ms > 0 ? 1 : 0; /* a delayed submit follows a failed first attempt */
    j->due_ms = now_ms() + delay_ms;
    pthread_mutex_lock(&mu);
    j->next = queue;
    queue = j;
    nqueue++;
    pthread_cond_broadcast(&cv); /* resolver_drain waits on cv too */
    pthread_mutex_unlock(&mu);
    txn_state st = txn_state_get(t);
    txlog_info(t->gid, NULL, "handed to the resolver (%s)",
               st == TXN_COMMITTING     ? "commit"
               : st == TXN_PRECOMMITTING ? "3pc recovery"
                                         : "rollback");
}

void resolver_kick(txn *t)
{
    cv_ready();
    bool found = false, in_round = false;
    pthread_mutex_lock(&mu);
    for (job *j = queue; j; j = j->next) {
        if (j->t == t) {
            j->due_ms = now_ms();
            found = true;
            pthread_cond_broadcast(&cv); /* resolver_drain waits on cv too */
            break;
        }
    }
    if (!found) {
        /* In the resolver but not queued: in the round running now, which
         * may have read t before the change that kicks it (an operator's
         * resolve): mark it, so that its requeue (under mu, after this)
         * makes it due at once instead of after its backoff. */
        pthread_mutex_lock(&t->mu);
        in_round = t->in_resolver;
        if (in_round)
            t->resolver_kicked = true;
        pthread_mutex_unlock(&t->mu);
    }
    pthread_mutex_unlock(&mu);
    txn_state st = txn_state_get(t);
    if (!found && !in_round && st != TXN_COMMITTED && st != TXN_ABORTED)
        resolver_submit(t, 0);
}

size_t resolver_pending(void)
{
    pthread_mutex_lock(&mu);
    size_t n = nqueue;
    pthread_mutex_unlock(&mu);
    return n;
}

static void job_release(job *j)
{
    pthread_mutex_lock(&j->t->mu);
    j->t->in_resolver = false;
    pthread_mutex_unlock(&j->t->mu);
    txn_unref(j->t);
    free(j);
}

/* Deliver the outcome of every job in the batch in one parallel round.
 * Returns the jobs still unfinished (linked). */
static job *run_round(job *batch)
{
    size_t ncalls = 0;
    for (job *j = batch; j; j = j->next)
        ncalls += j->t->nbranches;
    httpc_call *calls = xcalloc(ncalls ? ncalls : 1, sizeof(*calls));
    size_t *bidx = xcalloc(ncalls ? ncalls : 1, sizeof(*bidx));
    size_t *start = NULL, *count = NULL, njobs = 0;
    bool *query = NULL;
    for (job *j = batch; j; j = j->next)
        njobs++;
    start = xcalloc(njobs, sizeof(*start));
    count = xcalloc(njobs, sizeof(*count));
    query = xcalloc(njobs, sizeof(*query));
    size_t pos = 0, k = 0;
    for (job *j = batch; j; j = j->next, k++) {
        start[k] = pos;
        query[k] = txn_state_get(j->t) == TXN_PRECOMMITTING;
        count[k] = query[k] ? threepc_recovery_build(j->t, calls + pos, bidx + pos, ncalls - pos)
                            : delivery_build(j->t, calls + pos, bidx + pos, ncalls - pos);
        pos += count[k];
    }
    /* At a shutdown's cut a call still waiting fails: one not acknowledged,
     * left to the next start (replay, or the agents' sweeps) as any failure
     * is. */
    if (pos > 0)
        (void)httpc_perform_until(calls, pos, &cut_at_ms); /* per-call status read below */

    job *left = NULL;
    k = 0;
    for (job *j = batch, *next; j; j = next, k++) {
        next = j->next;
        if (query[k]) {
            if (threepc_recovery_apply(j->t, calls + start[k], bidx + start[k], count[k])) {
                j->attempt = 0; /* decided: deliver the outcome at once */
                j->due_ms = now_ms();
                j->next = left;
                left = j;
                continue;
            }
        } else if (txn_state_get(j->t) == TXN_COMMITTED || txn_state_get(j->t) == TXN_ABORTED) {
            /* Finished meanwhile (e.g. submitted again by a kick that raced
             * the round that finished it): nothing left to deliver. */
            job_release(j);
            continue;
        } else {
            size_t failed =
                delivery_apply(j->t, calls + start[k], bidx + start[k], count[k], j->attempt);
            failed_deliveries += failed;
            bool finished = failed == 0 && delivery_done(j->t) &&
                            txn_fsm_advance(j->t, EV_ACKED, "resolver: all branches acknowledged");
            if (finished) {
                job_release(j);
                continue;
            }
        }
        j->attempt++;
        int64_t wait = backoff_ms(j->attempt, RESOLVER_BASE_MS, RESOLVER_CAP_MS);
        j->due_ms = now_ms() + wait;
        txlog_debug(j->t->gid, NULL, "resolver: retry %d in %lld ms", j->attempt, (long long)wait);
        j->next = left;
        left = j;
    }
    for (size_t i = 0; i < pos; i++)
        agent_call_free(&calls[i]);
    free(calls);
    free(bidx);
    free(start);
    free(count);
    free(query);
    return left;
}

/* One line per RESOLVER_SUMMARY_MS when retry lines were held back since
 * the last one. Resolver thread, without mu. */
static void maybe_summary(void)
{
    int64_t now = now_ms();
    if (summary_ms == 0) {
        summary_ms = now;
        return;
    }
    if (now - summary_ms < RESOLVER_SUMMARY_MS)
        return;
    uint64_t skipped = txn_retry_log_skipped();
    if (skipped != summary_skipped)
        log_warn("resolver: %zu transactions unfinished; %llu phase-2 deliveries failed and %llu "
                 "retry lines were not logged in the last %lld s (each gid and participant is "
                 "logged at its first failure, then once a minute)",
                 resolver_pending(), (unsigned long long)(failed_deliveries - summary_failed),
                 (unsigned long long)(skipped - summary_skipped),
                 (long long)((now - summary_ms) / 1000));
    summary_ms = now;
    summary_failed = failed_deliveries;
    summary_skipped = skipped;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

size_t resolver_pick_due(const int64_t *due, size_t n, int64_t now, size_t max, bool *take)
{
    size_t ndue = 0;
    for (size_t i = 0; i < n; i++)
        ndue += due[i] <= now;
    if (ndue <= max) {
        for (size_t i = 0; i < n; i++)
            take[i] = due[i] <= now;
        return ndue;
    }
    /* The max-th earliest due time is the cut: every job due before it is
     * taken, and as many of those due exactly at it as there is room for. */
    int64_t *sorted = xmalloc(ndue * sizeof(*sorted));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (due[i] <= now)
            sorted[k++] = due[i];
    qsort(sorted, ndue, sizeof(*sorted), cmp_i64);
    int64_t cut = sorted[max - 1];
    size_t before = 0;
    while (sorted[before] < cut)
        before++;
    size_t ties = max - before;
    free(sorted);
    for (size_t i = 0; i < n; i++) {
        take[i] = due[i] < cut || (due[i] == cut && ties > 0);
        if (due[i] == cut && take[i])
            ties--;
    }
    return max;
}

static void *resolver_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        pthread_mutex_unlock(&mu);
        maybe_summary();
        pthread_mutex_lock(&mu);
        if (stopping)
            break;
        int64_t now = now_ms();
        int64_t next_due = now + RESOLVER_IDLE_MS;
        /* More due than a round takes: the earliest due go first (the queue
         * is pushed at its head, so taking from the head would starve the
         * older ones behind retries and new jobs). */
        size_t n = 0;
        for (job *j = queue; j; j = j->next)
            n++;
        int64_t *due = xmalloc((n ? n : 1) * sizeof(*due));
        bool *take = xmalloc((n ? n : 1) * sizeof(*take));
        size_t k = 0;
        for (job *j = queue; j; j = j->next)
            due[k++] = j->due_ms;
        (void)resolver_pick_due(due, n, now, RESOLVER_MAX_BATCH, take);
        job *batch = NULL, **pp = &queue;
        for (k = 0; *pp; k++) {
            job *j = *pp;
            if (take[k]) {
                *pp = j->next;
                j->next = batch;
                batch = j;
                nqueue--;
            } else {
                if (j->due_ms <= now)
                    next_due = now; /* due, left for the next round (at once) */
                else if (j->due_ms < next_due)
                    next_due = j->due_ms;
                pp = &j->next;
            }
        }
        free(due);
        free(take);
        if (!batch) {
            struct timespec ts;
            deadline_in(CLOCK_MONOTONIC, next_due - now, &ts);
            int rc = pthread_cond_timedwait(&cv, &mu, &ts);
            (void)rc; /* timeout or signal: re-scan either way */
            continue;
        }
        round_running = true;
        pthread_mutex_unlock(&mu);
        job *left = run_round(batch);
        pthread_mutex_lock(&mu);
        round_running = false;
        pthread_cond_broadcast(&cv); /* resolver_drain waits for rounds to end */
        while (left) {
            job *j = left;
            left = j->next;
            pthread_mutex_lock(&j->t->mu); /* mu -> t->mu, as in resolver_kick */
            if (j->t->resolver_kicked) {
                j->t->resolver_kicked = false;
                j->due_ms = now_ms();
            }
            pthread_mutex_unlock(&j->t->mu);
            j->next = queue;
            queue = j;
            nqueue++;
        }
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

bool resolver_start(void)
{
    cv_ready();
    stopping = false;
    int rc = pthread_create(&thread, NULL, resolver_main, NULL);
    if (rc != 0) {
        log_error("cannot start the resolver thread: %s", strerror(rc));
        return false;
    }
    running = true;
    return true;
}

/* Every job due now that has had no attempt yet (attempt 0: submitted
 * without delay) or a round still running: what resolver_drain waits for.
 * Caller holds mu. */
static bool first_attempts_pending(int64_t now)
{
    if (round_running)
        return true;
    for (job *j = queue; j; j = j->next)
        if (j->attempt == 0 && j->due_ms <= now)
            return true;
    return false;
}

void resolver_cut_at(int64_t deadline_ms)
{
    atomic_store(&cut_at_ms, deadline_ms);
}

void resolver_drain(int64_t deadline_ms)
{
    if (!running)
        return;
    pthread_mutex_lock(&mu);
    for (;;) {
        int64_t now = now_ms();
        if (now >= deadline_ms || !first_attempts_pending(now))
            break;
        struct timespec ts;
        deadline_in(CLOCK_MONOTONIC, deadline_ms - now, &ts);
        (void)pthread_cond_timedwait(&cv, &mu, &ts); /* re-checked either way */
    }
    pthread_mutex_unlock(&mu);
}

void resolver_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(thread, NULL);
    running = false;
    size_t dropped = 0;
    while (queue) {
        job *j = queue;
        queue = j->next;
        job_release(j);
        dropped++;
    }
    nqueue = 0;
    if (dropped)
        log_info("resolver stopped with %zu transactions unfinished (finished at next start or "
                 "by the agents' sweeps)",
                 dropped);
}
