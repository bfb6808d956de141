/*
 * txn.c - the transaction table: gid allocation, O(1) lookup, branches,
 * reference counting, timeouts and eviction of finished transactions.
 *
 * Invariants:
 *   - A gid is "<coord_id>-<epoch>-<seq>" with seq from one atomic counter
 *     and epoch bumped durably before serving, so gids never repeat.
 *   - A gid is inserted in the map in the same critical section that
 *     allocates it: no instant exists where a gid was handed out but the
 *     outcome endpoint could not find it.
 *   - Every transaction in the map is on exactly one of: the live list (not
 *     committed/aborted yet) or the finished FIFO (in order of finishing, so
 *     eviction pops from the head only, by age or beyond the count bound;
 *     fin_count is its length).
 *   - The map holds one reference; a transaction is freed when its last
 *     reference goes, never while a handler or the resolver uses it.
 */
#include "txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord.h"
#include "coord_metrics.h"
#include "jsonutil.h"
#include "log.h"
#include "strmap.h"

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static strmap *table;          /* gid -> txn*, keys borrowed from txn->gid */
static txn *live_head;         /* doubly linked, newest first */
static size_t live_count;
static txn *fin_head, *fin_tail;
static size_t fin_count;       /* length of the finished FIFO */
static atomic_uint_fast64_t next_seq = 1;

static const char *const state_names[TXN_STATE_COUNT] = {
    "active", "preparing", "committing", "committed", "aborting", "aborted", "precommitting",
};
static const char *const branch_names[] = {
    "active", "failed",  "unknown", "prepared", "read_only", "committed", "aborted",
    "precommitted", "heuristic",
};
static const char *const protocol_names[PROTO_COUNT] = {"2pc", "3pc"};
static const char *const termination_names[TERMINATION_COUNT] = {"protocol", "timeout",
                                                                  "blocking"};

const char *txn_state_name(txn_state s)
{
    return (unsigned)s < TXN_STATE_COUNT ? state_names[s] : "?";
}

const char *branch_state_name(branch_state s)
{
    return (unsigned)s < ARRAY_LEN(branch_names) ? branch_names[s] : "?";
}

const char *txn_protocol_name(txn_protocol p)
{
    return (unsigned)p < PROTO_COUNT ? protocol_names[p] : "?";
}

/* Index of name in names[0..n), or -1. */
static int name_index(const char *const *names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

bool txn_protocol_parse(const char *name, txn_protocol *out)
{
    int i = name_index(protocol_names, PROTO_COUNT, name);
    if (i >= 0)
        *out = (txn_protocol)i;
    return i >= 0;
}

const char *termination_rule_name(termination_rule r)
{
    return (unsigned)r < TERMINATION_COUNT ? termination_names[r] : "?";
}

bool termination_rule_parse(const char *name, termination_rule *out)
{
    int i = name_index(termination_names, TERMINATION_COUNT, name);
    if (i >= 0)
        *out = (termination_rule)i;
    return i >= 0;
}

void format_iso8601(int64_t wall, char *buf, size_t size)
{
    time_t secs = (time_t)(wall / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    if (strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        base[0] = '\0';
    snprintf(buf, size, "%s.%03dZ", base, (int)(wall % 1000));
}

void txn_table_init(void)
{
    table = strmap_new(false);
}

static void txn_free(txn *t)
{
    pthread_mutex_destroy(&t->op_mu);
    pthread_mutex_destroy(&t->mu);
    for (size_t i = 0; i < t->nbranches; i++)
        free(t->branches[i].last_error);
    free(t->reason);
    free(t->fail_reason);
    free(t->branches);
    free(t);
}

static void unref_value(void *v)
{
    txn_unref(v);
}

void txn_table_shutdown(void)
{
    pthread_mutex_lock(&table_mu);
    strmap *m = table;
    table = NULL;
    live_head = NULL;
    fin_head = fin_tail = NULL;
    fin_count = 0;
    live_count = 0;
    pthread_mutex_unlock(&table_mu);
    strmap_free(m, unref_value);
}

static txn *txn_alloc(txn_protocol proto, size_t maxbranches)
{
    txn *t = xcalloc(1, sizeof(*t));
    t->protocol = proto;
    pthread_mutex_init(&t->op_mu, NULL);
    pthread_mutex_init(&t->mu, NULL);
    atomic_init(&t->state, TXN_ACTIVE);
    atomic_init(&t->refs, 2); /* the table's and the caller's */
    t->maxbranches = maxbranches;
    t->branches = xcalloc(maxbranches ? maxbranches : 1, sizeof(branch));
    return t;
}

/* Table lock held. */
static void live_push(txn *t)
{
    t->live = true;
    t->live_prev = NULL;
    t->live_next = live_head;
    if (live_head)
        live_head->live_prev = t;
    live_head = t;
    live_count++;
}

/* Table lock held. */
static void live_unlink(txn *t)
{
    if (!t->live)
        return;
    if (t->live_prev)
        t->live_prev->live_next = t->live_next;
    else
        live_head = t->live_next;
    if (t->live_next)
        t->live_next->live_prev = t->live_prev;
    t->live_prev = t->live_next = NULL;
    t->live = false;
    live_count--;
}

static txn *create(txn_protocol proto, int64_t timeout_ms, const threepc_settings *threepc,
                   bool lock_op)
{
    txn *t = txn_alloc(proto, participants_count());
    if (lock_op)
        pthread_mutex_lock(&t->op_mu); /* before the gid is in the table */
    t->created_wall_ms = wall_ms();
    t->created_ms = now_ms();
    t->timeout_ms = timeout_ms;
    t->threepc = threepc ? *threepc : g_coord.threepc;
    pthread_mutex_lock(&table_mu); /* seq issued and gid in the map together */
    if (g_coord.max_unfinished > 0 && live_count >= (size_t)g_coord.max_unfinished) {
        pthread_mutex_unlock(&table_mu);
        if (lock_op)
            pthread_mutex_unlock(&t->op_mu);
        txn_free(t); /* never published: no other reference */
        return NULL;
    }
    uint64_t seq = atomic_fetch_add(&next_seq, 1);
    gid_format(t->gid, sizeof(t->gid), g_coord.coord_id, g_coord.epoch, seq);
    t->epoch = g_coord.epoch;
    t->seq = seq;
    bool fresh = strmap_put(table, t->gid, t);
    live_push(t);
    pthread_mutex_unlock(&table_mu);
    if (!fresh) /* cannot happen: seq is unique within the epoch */
        die("gid %s allocated twice", t->gid);
    counter_inc(&g_metrics.begun[proto]);
    gauge_add(&g_metrics.in_flight, 1);
    return t;
}

txn *txn_create(txn_protocol proto, int64_t timeout_ms, const threepc_settings *threepc)
{
    return create(proto, timeout_ms, threepc, false);
}

txn *txn_create_locked(txn_protocol proto, int64_t timeout_ms, const threepc_settings *threepc)
{
    return create(proto, timeout_ms, threepc, true);
}

txn *txn_restore(const char *gid, txn_protocol proto, txn_state state, bool heuristic,
                 int64_t decided_wall_ms, const threepc_settings *tps, size_t nbranches)
{
    txn *t = txn_alloc(proto, nbranches);
    snprintf(t->gid, sizeof(t->gid), "%s", gid);
    if (!gid_parse(gid, NULL, &t->epoch, &t->seq)) /* replay checked it; else listed first */
        t->epoch = t->seq = 0;
    t->created_wall_ms = decided_wall_ms;
    t->decided_wall_ms = decided_wall_ms;
    t->created_ms = now_ms();
    t->timeout_ms = g_coord.default_timeout_ms;
    t->threepc = tps ? *tps : g_coord.threepc;
    t->recovered = true;
    atomic_store(&t->state, state);
    if (state == TXN_COMMITTING) {
        t->decision_logged = true;
    } else {
        t->precommit_logged = true;
        if (state == TXN_ABORTING && heuristic) {
            t->heuristic = 'a';
            t->reason = xstrdup("heuristic abort by operator (replayed)");
        } else if (state == TXN_ABORTING) {
            t->reason = xstrdup("3pc: aborted after its pre-commit decision (replayed)");
        }
    }
    pthread_mutex_lock(&table_mu);
    bool fresh = strmap_put(table, t->gid, t);
    if (fresh)
        live_push(t);
    pthread_mutex_unlock(&table_mu);
    if (!fresh) {
        txn_free(t);
        return NULL;
    }
    gauge_add(&g_metrics.in_flight, 1);
    return t;
}

bool txn_restore_branch(txn *t, const char *participant_name, const char *branch_gid,
                        const char *xid)
{
    if (t->nbranches >= t->maxbranches || !participant_name_valid(participant_name) ||
        strlen(branch_gid) > BRANCH_GID_MAX_LEN) {
        txlog_error(t->gid, participant_name, "bad branch in decision record");
        return false;
    }
    branch *b = &t->branches[t->nbranches];
    snprintf(b->participant, sizeof(b->participant), "%s", participant_name);
    snprintf(b->branch_gid, sizeof(b->branch_gid), "%s", branch_gid);
    if (xid && xid8_text_valid(xid))
        snprintf(b->xid, sizeof(b->xid), "%s", xid);
    b->p = participant_find(participant_name);
    b->state = BR_PREPARED;
    pthread_mutex_lock(&t->mu);
    t->nbranches++;
    pthread_mutex_unlock(&t->mu);
    if (!b->p)
        txlog_error(t->gid, participant_name,
                    "participant is not configured (--participant); its branch cannot be finished "
                    "until it is");
    return true;
}

txn *txn_lookup(const char *gid)
{
    pthread_mutex_lock(&table_mu);
    txn *t = table ? strmap_get(table, gid) : NULL;
    if (t)
        atomic_fetch_add(&t->refs, 1);
    pthread_mutex_unlock(&table_mu);
    return t;
}

bool txn_seq_issued(uint64_t seq)
{
    return seq > 0 && seq < atomic_load(&next_seq);
}

void txn_ref(txn *t)
{
    atomic_fetch_add(&t->refs, 1);
}

void txn_unref(txn *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1)
        txn_free(t);
}

branch *txn_branch(txn *t, const participant *p, bool create)
{
    for (size_t i = 0; i < t->nbranches; i++)
        if (t->branches[i].p == p)
            return &t->branches[i];
    if (!create || t->nbranches >= t->maxbranches)
        return NULL;
    branch *b = &t->branches[t->nbranches];
    memcpy(b->participant, p->name, sizeof(b->participant));
    b->p = p;
    if (!branch_gid_make(b->branch_gid, sizeof(b->branch_gid), t->gid, p->name))
        die("cannot build the branch gid of %s for %s", t->gid, p->name);
    b->state = BR_ACTIVE;
    /* Publish under mu: readers (GET) walk branches[0..nbranches) under mu. */
    pthread_mutex_lock(&t->mu);
    t->nbranches++;
    pthread_mutex_unlock(&t->mu);
    return b;
}

void txn_set_failed(txn *t, const char *reason)
{
    pthread_mutex_lock(&t->mu);
    if (!t->fail_reason)
        t->fail_reason = xstrdup(reason);
    pthread_mutex_unlock(&t->mu);
}

void txn_set_branch_state(txn *t, branch *b, branch_state s)
{
    pthread_mutex_lock(&t->mu);
    b->state = s;
    pthread_mutex_unlock(&t->mu);
}

void txn_mark_statements_running(txn *t, branch *const *brs, size_t n, bool on)
{
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < n; i++)
        brs[i]->stmt_running = on;
    pthread_mutex_unlock(&t->mu);
}

void txn_branch_attempt(txn *t, branch *b, bool acked, branch_state s, bool set_state,
                        const char *error)
{
    char *old = NULL, *copy = (!acked && error) ? xstrdup(error) : NULL;
    pthread_mutex_lock(&t->mu);
    b->attempts++;
    if (acked || set_state)
        b->state = s;
    if (acked || copy) {
        old = b->last_error;
        b->last_error = copy;
    }
    pthread_mutex_unlock(&t->mu);
    free(old);
}

static atomic_uint_fast64_t retry_lines_skipped;

bool txn_log_due(txn *t, log_limit *l, unsigned *skipped)
{
    int64_t now = now_ms();
    pthread_mutex_lock(&t->mu);
    bool due = l->last_ms == 0 || now - l->last_ms >= RETRY_LOG_EVERY_MS;
    if (due) {
        *skipped = l->skipped;
        l->skipped = 0;
        l->last_ms = now;
    } else {
        l->skipped++;
        *skipped = 0;
    }
    pthread_mutex_unlock(&t->mu);
    if (!due)
        atomic_fetch_add(&retry_lines_skipped, 1);
    return due;
}

void txn_log_reset(txn *t, log_limit *l)
{
    pthread_mutex_lock(&t->mu);
    l->last_ms = 0;
    l->skipped = 0;
    pthread_mutex_unlock(&t->mu);
}

uint64_t txn_retry_log_skipped(void)
{
    return atomic_load(&retry_lines_skipped);
}

bool branch_needs_outcome(txn_state st, branch_state bs)
{
    if (st == TXN_COMMITTING)
        return branch_is_prepared(bs);
    if (st == TXN_ABORTING)
        return bs == BR_ACTIVE || bs == BR_FAILED || bs == BR_UNKNOWN || branch_is_prepared(bs);
    return false;
}

void txn_note_transition(txn *t, txn_state from, txn_state to)
{
    (void)from;
    if (to != TXN_COMMITTED && to != TXN_ABORTED)
        return;
    gauge_add(&g_metrics.in_flight, -1);
    pthread_mutex_lock(&table_mu);
    if (table && t->live) {
        live_unlink(t);
        t->finished_ms = now_ms();
        t->fin_next = NULL;
        if (fin_tail)
            fin_tail->fin_next = t;
        else
            fin_head = t;
        fin_tail = t;
        fin_count++;
    }
    pthread_mutex_unlock(&table_mu);
}

size_t txn_collect_expired(int64_t now, txn ***out)
{
    size_t n = 0, cap = 0;
    txn **arr = NULL;
    pthread_mutex_lock(&table_mu);
    for (txn *t = live_head; t; t = t->live_next) {
        if (txn_state_get(t) != TXN_ACTIVE || now < t->created_ms + t->timeout_ms)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            arr = xrealloc(arr, cap * sizeof(*arr));
        }
        atomic_fetch_add(&t->refs, 1);
        arr[n++] = t;
    }
    pthread_mutex_unlock(&table_mu);
    *out = arr;
    return n;
}

size_t txn_evict(int64_t now, int64_t retention_ms, size_t retention_max)
{
    size_t n = 0;
    txn *victims = NULL;
    pthread_mutex_lock(&table_mu);
    /* The FIFO is in order of finishing: the oldest go first, whichever
     * bound (age or count) drops them. */
    while (table && fin_head &&
           (fin_head->finished_ms + retention_ms <= now || fin_count > retention_max)) {
        txn *t = fin_head;
        fin_head = t->fin_next;
        if (!fin_head)
            fin_tail = NULL;
        fin_count--;
        strmap_remove(table, t->gid);
        t->fin_next = victims; /* reuse the link for the unref pass below */
        victims = t;
        n++;
    }
    pthread_mutex_unlock(&table_mu);
    while (victims) {
        txn *t = victims;
        victims = t->fin_next;
        txn_unref(t);
    }
    return n;
}

size_t txn_retained_count(void)
{
    pthread_mutex_lock(&table_mu);
    size_t n = fin_count;
    pthread_mutex_unlock(&table_mu);
    return n;
}

/* Caller holds t->mu. */
static const char *outcome_locked(txn *t)
{
    switch (txn_state_get(t)) {
    case TXN_COMMITTING:
    case TXN_COMMITTED:
        return "committed";
    case TXN_ABORTING:
    case TXN_ABORTED:
        return "aborted";
    default:
        return NULL;
    }
}

char txn_heuristic(txn *t)
{
    pthread_mutex_lock(&t->mu);
    char h = t->heuristic;
    pthread_mutex_unlock(&t->mu);
    return h;
}

const char *txn_outcome(txn *t, char **reason)
{
    pthread_mutex_lock(&t->mu);
    const char *o = outcome_locked(t);
    if (reason)
        *reason = (o && o[0] == 'a' && t->reason) ? xstrdup(t->reason) : NULL;
    pthread_mutex_unlock(&t->mu);
    return o;
}

/* detail: the in-doubt view (per-branch pending, attempts, last_error,
 * age_ms since the decision). */
static json_t *txn_json(txn *t, bool detail)
{
    char created[40];
    format_iso8601(t->created_wall_ms, created, sizeof(created));
    json_t *o = json_object();
    json_object_set_new(o, "gid", json_string(t->gid));
    json_object_set_new(o, "protocol", json_string(txn_protocol_name(t->protocol)));
    pthread_mutex_lock(&t->mu);
    txn_state st = txn_state_get(t);
    json_object_set_new(o, "state", json_string(txn_state_name(st)));
    const char *outcome = outcome_locked(t);
    if (outcome)
        json_object_set_new(o, "outcome", json_string(outcome));
    const char *reason = outcome && outcome[0] == 'a' ? t->reason : NULL;
    if (reason)
        json_object_set_new(o, "reason", json_string_lossy(reason));
    /* Why it could no longer commit, also once it aborted for another reason
     * (its timeout, a rollback): the first failure is the one to look at. */
    if (t->fail_reason && (!reason || strcmp(reason, t->fail_reason) != 0))
        json_object_set_new(o, "rollback_only_reason", json_string_lossy(t->fail_reason));
    if (t->heuristic)
        json_object_set_new(o, "heuristic", json_string(t->heuristic == 'c' ? "commit" : "abort"));
    json_object_set_new(o, "created_at", json_string(created));
    json_object_set_new(o, "timeout_ms", json_integer(t->timeout_ms));
    if (t->protocol == PROTO_3PC) {
        json_object_set_new(o, "cancommit_timeout_ms", json_integer(t->threepc.cancommit_timeout_ms));
        json_object_set_new(o, "precommit_timeout_ms", json_integer(t->threepc.precommit_timeout_ms));
        json_object_set_new(o, "uncertain_timeout_ms", json_integer(t->threepc.uncertain_timeout_ms));
        json_object_set_new(o, "termination",
                            json_string(termination_rule_name(t->threepc.termination)));
    }
    int64_t age = -1;
    if (detail) {
        char decided[40];
        format_iso8601(t->decided_wall_ms, decided, sizeof(decided));
        age = wall_ms() - t->decided_wall_ms;
        if (age < 0)
            age = 0;
        json_object_set_new(o, "decided_at", json_string(decided));
        json_object_set_new(o, "age_ms", json_integer(age));
        json_object_set_new(o, "recovered", json_boolean(t->recovered));
    }
    json_t *brs = json_array();
    for (size_t i = 0; i < t->nbranches; i++) {
        const branch *b = &t->branches[i];
        json_t *bo = json_object();
        json_object_set_new(bo, "participant", json_string(b->participant));
        json_object_set_new(bo, "branch_gid", json_string(b->branch_gid));
        json_object_set_new(bo, "state", json_string(branch_state_name(b->state)));
        if (detail) {
            bool pending = st == TXN_PRECOMMITTING ? branch_is_prepared(b->state)
                                                   : branch_needs_outcome(st, b->state);
            json_object_set_new(bo, "pending", json_boolean(pending));
            json_object_set_new(bo, "attempts", json_integer(b->attempts));
            json_object_set_new(bo, "last_error",
                                b->last_error ? json_string_lossy(b->last_error) : json_null());
            json_object_set_new(bo, "age_ms", json_integer(age));
        }
        json_array_append_new(brs, bo);
    }
    pthread_mutex_unlock(&t->mu);
    json_object_set_new(o, "branches", brs);
    return o;
}

json_t *txn_to_json(txn *t)
{
    return txn_json(t, false);
}

/* Decided (or, recovered 3PC, deciding from the agents' states) but some
 * branch has not acknowledged. */
static bool in_doubt(txn *t)
{
    txn_state st = txn_state_get(t);
    if (st == TXN_PRECOMMITTING) {
        /* recovered, or live after step 6b (no PreCommit answered): the
         * resolver asks the agents; a live one between 'P' and 'C' is not */
        pthread_mutex_lock(&t->mu);
        bool asking = t->recovered || t->in_resolver;
        pthread_mutex_unlock(&t->mu);
        return asking;
    }
    if (st != TXN_COMMITTING && st != TXN_ABORTING)
        return false;
    bool pending = false;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nbranches && !pending; i++)
        pending = branch_needs_outcome(st, t->branches[i].state);
    pthread_mutex_unlock(&t->mu);
    return pending;
}

typedef struct {
    txn *t;
    uint64_t epoch, seq; /* the gid's: the order gids were issued in */
} listed;

static int cmp_listed(const void *a, const void *b)
{
    const listed *x = a, *y = b;
    if (x->epoch != y->epoch)
        return x->epoch < y->epoch ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

json_t *txn_list_json(const char *filter, const char *after, size_t limit)
{
    bool doubt = filter && strcmp(filter, "in-doubt") == 0;
    int want = -1;
    if (filter && !doubt) {
        want = name_index(state_names, TXN_STATE_COUNT, filter);
        if (want < 0 || want == TXN_COMMITTED || want == TXN_ABORTED)
            return NULL; /* finished ones are not listed */
    }
    uint64_t after_epoch = 0, after_seq = 0;
    if (after && !gid_parse(after, NULL, &after_epoch, &after_seq))
        return NULL;
    /* Take references under the table lock, build JSON outside it. */
    size_t n = 0;
    pthread_mutex_lock(&table_mu);
    listed *arr = xmalloc((live_count ? live_count : 1) * sizeof(*arr));
    for (txn *t = live_head; t; t = t->live_next) {
        if (after && (t->epoch < after_epoch || (t->epoch == after_epoch && t->seq <= after_seq)))
            continue;
        atomic_fetch_add(&t->refs, 1);
        arr[n++] = (listed){t, t->epoch, t->seq};
    }
    pthread_mutex_unlock(&table_mu);
    qsort(arr, n, sizeof(*arr), cmp_listed);
    json_t *list = json_array();
    const char *last = NULL; /* the last gid listed (borrowed: refs dropped below) */
    bool more = false;
    for (size_t i = 0; i < n; i++) {
        txn *t = arr[i].t;
        if (!more && (doubt ? in_doubt(t) : (want < 0 || (int)txn_state_get(t) == want))) {
            if (json_array_size(list) == limit)
                more = true;
            else {
                json_array_append_new(list, txn_json(t, doubt));
                last = t->gid;
            }
        }
    }
    json_t *o = json_object();
    json_object_set_new(o, "transactions", list);
    if (more && last)
        json_object_set_new(o, "next_after", json_string(last));
    for (size_t i = 0; i < n; i++)
        txn_unref(arr[i].t);
    free(arr);
    return o;
}
