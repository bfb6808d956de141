/*
 * branch.c - the in-memory table of branches: global gid -> branch.
 *
 * Invariants:
 *   - One table mutex guards the hash chains, the finished list, refs,
 *     listed and evicted. It is held only for pointer work, never for I/O,
 *     and never while waiting for a branch mutex.
 *   - A branch is freed only when it is out of the table and its last
 *     reference is put. A reference is taken only under the table lock, so an
 *     entry with refs == 0 seen under the lock cannot be reached by anyone else.
 *   - "unknown" entries (created by a lookup that then did nothing, e.g. a
 *     BEGIN that failed) are dropped at their last put: they hold no state.
 *   - Failed, committed and aborted branches stay on the finished list (oldest
 *     first) so that re-sent requests get the same answer, until they are
 *     FINISHED_KEEP_MS old or more than FINISHED_KEEP_MAX are kept.
 *   - A lookup that misses asks the finder (threepc.c: 3PC branches finished
 *     within the retention window, kept compactly after their entry here was
 *     evicted or lost to a restart) without the table lock; what it knows
 *     comes back as a finished entry, listed again for FINISHED_KEEP_MS.
 */
#include "branch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "threepc.h"

struct branch_table {
    pthread_mutex_t mu;
    char *participant;
    branch **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    branch *fhead, *ftail; /* finished list */
    size_t nfinished;
    branch_finder finder;  /* set once before any lookup; may be NULL */
    void *finder_arg;
    int64_t default_timeout_ms; /* a new branch's timeout_ms (--branch-timeout-ms) */
};

static const char *const state_names[BS__COUNT] = {
    [BS_UNKNOWN] = "unknown",     [BS_ACTIVE] = "active",       [BS_FAILED] = "failed",
    [BS_PREPARED] = "prepared",   [BS_COMMITTED] = "committed", [BS_ABORTED] = "aborted",
    [BS_UNCERTAIN] = "uncertain", [BS_PRECOMMITTED] = "precommitted",
};

const char *branch_state_name(branch_state s)
{
    return (s >= 0 && s < BS__COUNT) ? state_names[s] : "invalid";
}

/* Out of line on purpose: inlined atomic loads through snapshot arrays trip a
 * GCC 12 -Wstringop-overflow false positive. */
branch_state branch_state_get(branch *b)
{
    return (branch_state)atomic_load(&b->state);
}

bool branch_lock_within(branch *b, int64_t ms)
{
    struct timespec ts;
    deadline_in(CLOCK_MONOTONIC, ms, &ts);
    return pthread_mutex_clocklock(&b->mu, CLOCK_MONOTONIC, &ts) == 0;
}

uint64_t branch_hash_gid(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

branch_table *branch_table_new(const char *participant, int64_t default_timeout_ms)
{
    branch_table *t = xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    t->participant = xstrdup(participant);
    t->default_timeout_ms = default_timeout_ms > 0 ? default_timeout_ms : BRANCH_DEFAULT_TIMEOUT_MS;
    t->nbuckets = 1024;
    t->buckets = xcalloc(t->nbuckets, sizeof(branch *));
    return t;
}

static void branch_free(branch *b)
{
    if (b->cancel)
        PQfreeCancel(b->cancel);
    tp_branch_free(b->tp);
    pthread_mutex_destroy(&b->cancel_mu);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void branch_table_free(branch_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        branch *b = t->buckets[i];
        while (b) {
            branch *next = b->hnext;
            if (b->conn)
                log_warn("branch %s freed while holding a connection", b->gid);
            branch_free(b);
            b = next;
        }
    }
    free(t->buckets);
    free(t->participant);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void grow(branch_table *t)
{
    size_t n = t->nbuckets * 2;
    branch **nb = xcalloc(n, sizeof(branch *));
    for (size_t i = 0; i < t->nbuckets; i++) {
        branch *b = t->buckets[i];
        while (b) {
            branch *next = b->hnext;
            size_t k = branch_hash_gid(b->gid) & (n - 1);
            b->hnext = nb[k];
            nb[k] = b;
            b = next;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->nbuckets = n;
}

/* Under the table lock. */
static void unlink_hash(branch_table *t, branch *b)
{
    branch **pp = &t->buckets[branch_hash_gid(b->gid) & (t->nbuckets - 1)];
    while (*pp && *pp != b)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = b->hnext;
        t->count--;
    }
    b->hnext = NULL;
}

void branch_table_set_finder(branch_table *t, branch_finder fn, void *arg)
{
    pthread_mutex_lock(&t->mu);
    t->finder = fn;
    t->finder_arg = arg;
    pthread_mutex_unlock(&t->mu);
}

/* A new "unknown" entry for gid, not in the table yet; NULL if its branch
 * gid cannot be built (logged). */
static branch *branch_new(branch_table *t, const char *gid)
{
    branch *b = xcalloc(1, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->cancel_mu, NULL);
    snprintf(b->gid, sizeof(b->gid), "%s", gid);
    if (!branch_gid_make(b->branch_gid, sizeof(b->branch_gid), gid, t->participant)) {
        /* callers validate gid first; this is a programming error */
        log_error("cannot build branch gid for %s", gid);
        branch_free(b);
        return NULL;
    }
    atomic_init(&b->state, BS_UNKNOWN);
    b->created_ms = now_ms();
    atomic_init(&b->last_activity_ms, b->created_ms);
    b->timeout_ms = t->default_timeout_ms;
    return b;
}

/* Under the table lock. */
static branch *find(branch_table *t, const char *gid)
{
    branch *b = t->buckets[branch_hash_gid(gid) & (t->nbuckets - 1)];
    while (b && strcmp(b->gid, gid) != 0)
        b = b->hnext;
    return b;
}

/* Under the table lock: b (not in the table) goes in. */
static void insert(branch_table *t, branch *b)
{
    size_t k = branch_hash_gid(b->gid) & (t->nbuckets - 1);
    b->hnext = t->buckets[k];
    t->buckets[k] = b;
    if (++t->count > t->nbuckets * 2)
        grow(t);
}

/* Under the table lock. */
static void list_finished(branch_table *t, branch *b)
{
    if (b->listed || b->evicted)
        return;
    b->listed = true;
    b->finished_ms = now_ms();
    b->fnext = NULL;
    if (t->ftail)
        t->ftail->fnext = b;
    else
        t->fhead = b;
    t->ftail = b;
    t->nfinished++;
}

branch *branch_get(branch_table *t, const char *gid, bool create)
{
    branch *spare = NULL;
    pthread_mutex_lock(&t->mu);
    branch *b = find(t, gid);
    if (!b && t->finder) {
        /* Ask the finder without the table lock (it takes its own). */
        pthread_mutex_unlock(&t->mu);
        spare = branch_new(t, gid);
        bool finished = spare && t->finder(t->finder_arg, spare);
        pthread_mutex_lock(&t->mu);
        b = find(t, gid); /* created meanwhile by another lookup? */
        if (!b && spare && (finished || create)) {
            insert(t, spare);
            if (finished)
                list_finished(t, spare);
            b = spare;
            spare = NULL;
        }
    } else if (!b && create) {
        b = branch_new(t, gid);
        if (b)
            insert(t, b);
    }
    if (b)
        b->refs++;
    pthread_mutex_unlock(&t->mu);
    if (spare)
        branch_free(spare);
    return b;
}

void branch_put(branch_table *t, branch *b)
{
    if (!b)
        return;
    bool do_free = false;
    pthread_mutex_lock(&t->mu);
    if (--b->refs == 0) {
        if (b->evicted) {
            do_free = true;
        } else if (branch_state_get(b) == BS_UNKNOWN) {
            unlink_hash(t, b);
            do_free = true;
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (do_free)
        branch_free(b);
}

void branch_table_finished(branch_table *t, branch *b)
{
    pthread_mutex_lock(&t->mu);
    list_finished(t, b);
    pthread_mutex_unlock(&t->mu);
}

void branch_table_evict(branch_table *t, int64_t now)
{
    branch *to_free = NULL;
    pthread_mutex_lock(&t->mu);
    while (t->fhead &&
           (t->nfinished > FINISHED_KEEP_MAX || now - t->fhead->finished_ms > FINISHED_KEEP_MS)) {
        branch *b = t->fhead;
        t->fhead = b->fnext;
        if (!t->fhead)
            t->ftail = NULL;
        t->nfinished--;
        b->listed = false;
        b->fnext = NULL;
        unlink_hash(t, b);
        b->evicted = true;
        if (b->refs == 0) {
            b->hnext = to_free; /* reuse the chain pointer for the free list */
            to_free = b;
        }
    }
    pthread_mutex_unlock(&t->mu);
    while (to_free) {
        branch *next = to_free->hnext;
        branch_free(to_free);
        to_free = next;
    }
}

branch **branch_table_snapshot(branch_table *t, size_t *n, bool active_only)
{
    pthread_mutex_lock(&t->mu);
    size_t cap = active_only ? 16 : (t->count ? t->count : 1);
    branch **arr = xmalloc(cap * sizeof(branch *));
    size_t k = 0;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (branch *b = t->buckets[i]; b; b = b->hnext) {
            if (active_only && branch_state_get(b) != BS_ACTIVE)
                continue;
            if (k == cap) {
                cap *= 2;
                arr = xrealloc(arr, cap * sizeof(branch *));
            }
            b->refs++;
            arr[k++] = b;
        }
    }
    pthread_mutex_unlock(&t->mu);
    *n = k;
    return arr;
}

void branch_restore(branch_table *t, branch *b, branch_state s)
{
    atomic_store(&b->state, (int)s);
    atomic_store(&b->last_activity_ms, now_ms());
    if (s == BS_FAILED || s == BS_COMMITTED || s == BS_ABORTED)
        branch_table_finished(t, b);
}

size_t branch_table_size(branch_table *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->count;
    pthread_mutex_unlock(&t->mu);
    return n;
}
