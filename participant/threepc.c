/*
 * threepc.c - the agent's durable three-phase-commit state: branches3pc.log
 * (common/wal.h framing, records in tp.h), the registry of unfinished 3PC
 * branches and their timers, replay on start, compaction.
 *
 * Protocol steps of one 3PC branch (PROTOCOL.md "Three-phase commit"):
 *   1. CanCommit: prepare(3pc) runs the statements and PREPARE TRANSACTION
 *      (branch_ops.c).
 *   2. Append {gid, uncertain, peers, timeouts, termination, xid, at_ms} and
 *      fdatasync; arm the uncertain timer (prepared -> uncertain).
 *   3. Answer the yes vote.
 *   3a. A peer's termination reads the branch (GET ?fence=1): append {gid,
 *      uncertain, fenced} and fdatasync before answering "uncertain"; from
 *      then on the coordinator's PreCommit is refused (a peer's is taken).
 *   4. PreCommit: append {gid, precommitted, at_ms} and fdatasync (crash points
 *      3pc-before-precommit-record, 3pc-after-precommit-record); arm the
 *      precommit timer.
 *   5. Answer {"state":"precommitted"}.
 *   6. DoCommit: COMMIT PREPARED, then append {gid, committed} (not forced);
 *      the branch leaves the registry and joins the finished index.
 *   7. Answer committed.
 *   A timer that expires between 3 and 4 or between 5 and 6 hands the branch
 *   to termination.c, which ends it at step 6 with commit or abort.
 * A crash of the agent between:
 *   1 and 2: prepared in PostgreSQL, nothing in the log, no vote sent. The 2PC
 *      sweep asks the coordinator (which never got the yes: aborted or
 *      in_flight); a re-sent prepare finds it in pg_prepared_xacts and goes on
 *      at step 2.
 *   2 and 3: replay re-arms the uncertain timer; the coordinator (vote
 *      missing) aborts; termination aborts too.
 *   3 and 4: uncertain; replay re-arms the timer; the coordinator's next
 *      message or the termination finishes it.
 *   4 and 5, 5 and 6: precommitted; replay re-arms the precommit timer; the
 *      coordinator commits without our ack, or termination commits.
 *   6 and 7: committed in PostgreSQL, the final record may be lost. Replay
 *      sees the branch is not in pg_prepared_xacts and marks it as
 *      pg_xact_status(xid) says, asking no one; a re-sent commit answers
 *      committed (42704 = done).
 *
 * Invariants:
 *   - A yes vote and a precommit ack are sent only after their record is
 *     durable (wal_append sync).
 *   - Appends take the read side of log_lock, compaction the write side: a
 *     compaction never loses a record appended while it runs.
 *   - The registry holds exactly the branches whose last record is uncertain
 *     or precommitted: what a compaction keeps in full, what the timers
 *     watch, and what the 2PC sweep leaves alone (threepc_owns).
 *   - Finished branches are remembered for the retention window R
 *     (--3pc-retain-finished-s, default 3600 s): a branch whose final record
 *     (committed/aborted) is younger than R answers that state to
 *     GET /v1/branches/{gid} (and to re-sent calls) whatever happened
 *     meanwhile. The finished index (gid -> state, at_ms; ~70 bytes each)
 *     holds them: the branch table asks it when a lookup misses (its own
 *     finished entries go after FINISHED_KEEP_MS or FINISHED_KEEP_MAX);
 *     compaction writes {gid, state, at_ms} for each of its entries; replay
 *     puts the final records younger than R into it and forgets older ones.
 *     While the agent runs, an entry's age is counted on the monotonic
 *     clock (fin_add): a wall-clock step forward does not forget it early.
 *     Why: a peer's termination protocol and the coordinator's 3PC recovery
 *     read "unknown" as "never committed" (abort), so forgetting a committed
 *     branch while a peer is still uncertain, or while the coordinator still
 *     holds its 'P', breaks atomicity. R is therefore the longest a peer agent or the coordinator
 *     may stay away (down, partitioned) and still terminate correctly; past
 *     it the answer is "unknown". Losing the unforced final record in a crash
 *     is harmless: the branch's earlier record remains, and replay settles
 *     it from PostgreSQL (pg_xact_status), which has the truth.
 *   - Compaction runs past --3pc-log-compact-bytes, and once done not again
 *     before the log doubled (the retained finished records may keep it near
 *     the threshold).
 *   - Lock order: b->mu, then log_lock, then the registry lock, then the
 *     branch table lock; fin_mu (the finished index) is a leaf taken under
 *     any of them (the table's finder takes it with none). The tick takes
 *     the registry lock, then fin_mu.
 */
#include "threepc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "branch.h"
#include "fault.h"
#include "log.h"
#include "pool.h"
#include "termination.h"
#include "wal.h"

#define LOG_NAME "branches3pc.log"
#define SETTLE_RETRY_MS 60000
#define COMPACT_RETRY_MS 60000

/* One finished branch of the finished index. */
typedef struct fin_rec {
    struct fin_rec *next;  /* FIFO, oldest first (mostly: replay keeps log order) */
    struct fin_rec *hnext; /* hash chain */
    int64_t at_ms;         /* wall clock of its final record (written by compaction) */
    int64_t expire_ms;     /* monotonic now_ms() past which it is forgotten */
    tp_state state;        /* TP_COMMITTED or TP_ABORTED */
    char gid[];
} fin_rec;

struct threepc {
    char *path;
    wal *log;
    pthread_rwlock_t log_lock;
    pthread_mutex_t mu; /* registry */
    branch **reg;       /* counted references */
    size_t nreg, capreg;
    pthread_mutex_t fin_mu; /* leaf: the finished index below */
    fin_rec *fin_head, *fin_tail;
    fin_rec **fin_buckets; /* power of two */
    size_t nfin, nfin_buckets;
    int64_t retain_ms;
    uint64_t compact_bytes;
    uint64_t compact_at; /* compact past this size: compact_bytes, or twice the last result */
    int64_t next_compact_ms;
};

tp_branch *tp_branch_new(const tp_params *p)
{
    tp_branch *tp = xcalloc(1, sizeof(*tp));
    tp->npeers = p->npeers;
    tp->peers = xcalloc(p->npeers ? p->npeers : 1, sizeof(tp_peer));
    if (p->npeers)
        memcpy(tp->peers, p->peers, p->npeers * sizeof(tp_peer));
    tp->uncertain_timeout_ms = p->uncertain_timeout_ms;
    tp->precommit_timeout_ms = p->precommit_timeout_ms;
    tp->termination = p->termination;
    atomic_init(&tp->logged, TP_NONE);
    atomic_init(&tp->at_ms, 0);
    atomic_init(&tp->deadline_ms, INT64_MAX);
    atomic_init(&tp->terminating, false);
    atomic_init(&tp->waits, 0);
    atomic_init(&tp->fenced, false);
    return tp;
}

void tp_branch_free(tp_branch *tp)
{
    if (!tp)
        return;
    free(tp->peers);
    free(tp);
}

/* ---- registry ---- */

static void reg_add(agent *ag, branch *b)
{
    threepc *t = ag->tpc;
    pthread_mutex_lock(&t->mu);
    if (!b->tp->registered) {
        branch *ref = branch_get(ag->table, b->gid, false); /* b itself, one more reference */
        if (ref) {
            if (t->nreg == t->capreg) {
                t->capreg = t->capreg ? t->capreg * 2 : 64;
                t->reg = xrealloc(t->reg, t->capreg * sizeof(branch *));
            }
            t->reg[t->nreg++] = ref;
            b->tp->registered = true;
        }
    }
    pthread_mutex_unlock(&t->mu);
}

static void reg_remove(agent *ag, branch *b)
{
    threepc *t = ag->tpc;
    branch *ref = NULL;
    pthread_mutex_lock(&t->mu);
    if (b->tp->registered) {
        for (size_t i = 0; i < t->nreg; i++) {
            if (t->reg[i] == b) {
                ref = b;
                t->reg[i] = t->reg[--t->nreg];
                break;
            }
        }
        b->tp->registered = false;
    }
    pthread_mutex_unlock(&t->mu);
    branch_put(ag->table, ref);
}

/* ---- finished index ---- */

/* With fin_mu held. */
static fin_rec **fin_slot(threepc *t, const char *gid)
{
    fin_rec **pp = &t->fin_buckets[branch_hash_gid(gid) & (t->nfin_buckets - 1)];
    while (*pp && strcmp((*pp)->gid, gid) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

/* With fin_mu held. */
static void fin_grow(threepc *t)
{
    size_t n = t->nfin_buckets ? t->nfin_buckets * 2 : 1024;
    fin_rec **nb = xcalloc(n, sizeof(*nb));
    for (size_t i = 0; i < t->nfin_buckets; i++) {
        for (fin_rec *f = t->fin_buckets[i], *next; f; f = next) {
            next = f->hnext;
            size_t k = branch_hash_gid(f->gid) & (n - 1);
            f->hnext = nb[k];
            nb[k] = f;
        }
    }
    free(t->fin_buckets);
    t->fin_buckets = nb;
    t->nfin_buckets = n;
}

/* The window is measured on the monotonic clock once the entry is here: a
 * wall-clock step (NTP, a VM resumed) must not forget finished branches
 * early, which peers and the coordinator would read as "never committed".
 * Only the age it already had when added (a replayed record) comes from the
 * wall clock, which is all a restart has. */
static void fin_add(threepc *t, const char *gid, tp_state st, int64_t at_ms)
{
    size_t len = strlen(gid);
    fin_rec *f = xmalloc(sizeof(*f) + len + 1);
    int64_t left = t->retain_ms - (wall_ms() - at_ms);
    if (left > t->retain_ms)
        left = t->retain_ms; /* the clock went back since the record */
    f->next = NULL;
    f->at_ms = at_ms;
    f->expire_ms = now_ms() + (left > 0 ? left : 0);
    f->state = st;
    memcpy(f->gid, gid, len + 1);
    pthread_mutex_lock(&t->fin_mu);
    if (t->nfin >= t->nfin_buckets * 2)
        fin_grow(t);
    fin_rec **slot = fin_slot(t, gid);
    if (*slot) { /* already there (e.g. replayed twice): the latest wins */
        (*slot)->state = st;
        (*slot)->at_ms = at_ms;
        (*slot)->expire_ms = f->expire_ms;
        pthread_mutex_unlock(&t->fin_mu);
        free(f);
        return;
    }
    f->hnext = NULL;
    *slot = f;
    if (t->fin_tail)
        t->fin_tail->next = f;
    else
        t->fin_head = f;
    t->fin_tail = f;
    t->nfin++;
    pthread_mutex_unlock(&t->fin_mu);
}

/* Forget entries past the retention window, now being now_ms() (from the
 * head; an entry replayed out of order waits for those before it, so it is
 * at worst kept a little longer). */
static void fin_prune(threepc *t, int64_t now)
{
    pthread_mutex_lock(&t->fin_mu);
    while (t->fin_head && now > t->fin_head->expire_ms) {
        fin_rec *f = t->fin_head;
        t->fin_head = f->next;
        if (!t->fin_head)
            t->fin_tail = NULL;
        fin_rec **slot = fin_slot(t, f->gid);
        if (*slot == f)
            *slot = f->hnext;
        t->nfin--;
        free(f);
    }
    pthread_mutex_unlock(&t->fin_mu);
}

/* branch_finder (branch.h): fill b from the finished index. */
static bool fin_find(void *arg, branch *b)
{
    threepc *t = arg;
    pthread_mutex_lock(&t->fin_mu);
    const fin_rec *f = t->nfin_buckets ? *fin_slot(t, b->gid) : NULL;
    tp_state st = f ? f->state : TP_NONE;
    int64_t at = f ? f->at_ms : 0;
    pthread_mutex_unlock(&t->fin_mu);
    if (!f)
        return false;
    tp_params none = {0};
    b->tp = tp_branch_new(&none);
    atomic_store(&b->tp->logged, st);
    atomic_store(&b->tp->at_ms, at);
    b->vote = VOTE_YES;
    atomic_store(&b->state, st == TP_COMMITTED ? BS_COMMITTED : BS_ABORTED);
    return true;
}

/* ---- records ---- */

static void fill_full(branch *b, tp_state st, int64_t at, tp_record *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->gid, sizeof(r->gid), "%s", b->gid);
    r->state = st;
    r->has = TP_HAS_PEERS | TP_HAS_TIMEOUTS | TP_HAS_TERMINATION | TP_HAS_XID | TP_HAS_AT;
    r->peers = b->tp->peers; /* borrowed: never freed through r */
    r->npeers = b->tp->npeers;
    r->uncertain_timeout_ms = b->tp->uncertain_timeout_ms;
    r->precommit_timeout_ms = b->tp->precommit_timeout_ms;
    r->termination = b->tp->termination;
    snprintf(r->xid, sizeof(r->xid), "%s", b->xid);
    r->at_ms = at;
    if (atomic_load(&b->tp->fenced)) {
        r->has |= TP_HAS_FENCED;
        r->fenced = true;
    }
}

/* With the read side of log_lock held. */
static bool append(agent *ag, const tp_record *r, bool sync)
{
    size_t len;
    char *payload = tp_record_encode(r, &len);
    bool final = r->state == TP_COMMITTED || r->state == TP_ABORTED;
    bool ok = wal_append(ag->tpc->log, final ? TP_FINAL_TYPE : TP_RECORD_TYPE, payload, len, sync);
    free(payload);
    return ok;
}

static bool no_log(agent *ag, branch *b)
{
    if (ag->tpc && b->tp)
        return false;
    txlog_error(b->gid, ag->name, "3pc: no %s (agent has no --data-dir)", LOG_NAME);
    return true;
}

bool threepc_record_uncertain(agent *ag, branch *b)
{
    if (no_log(ag, b))
        return false;
    tp_record r;
    int64_t at = wall_ms();
    fill_full(b, TP_UNCERTAIN, at, &r);
    pthread_rwlock_rdlock(&ag->tpc->log_lock);
    bool ok = append(ag, &r, true);
    if (ok) {
        atomic_store(&b->tp->logged, TP_UNCERTAIN);
        atomic_store(&b->tp->at_ms, at);
        atomic_store(&b->tp->deadline_ms, now_ms() + b->tp->uncertain_timeout_ms);
        reg_add(ag, b);
    }
    pthread_rwlock_unlock(&ag->tpc->log_lock);
    return ok;
}

bool threepc_record_fenced(agent *ag, branch *b)
{
    if (no_log(ag, b))
        return false;
    /* No at_ms: the uncertain timer keeps counting from the vote. */
    tp_record r = {.state = TP_UNCERTAIN, .has = TP_HAS_FENCED, .fenced = true};
    snprintf(r.gid, sizeof(r.gid), "%s", b->gid);
    pthread_rwlock_rdlock(&ag->tpc->log_lock);
    bool ok = append(ag, &r, true);
    if (ok)
        atomic_store(&b->tp->fenced, true);
    pthread_rwlock_unlock(&ag->tpc->log_lock);
    return ok;
}

bool threepc_record_precommitted(agent *ag, branch *b)
{
    if (no_log(ag, b))
        return false;
    tp_record r = {.state = TP_PRECOMMITTED, .has = TP_HAS_AT, .at_ms = wall_ms()};
    snprintf(r.gid, sizeof(r.gid), "%s", b->gid);
    pthread_rwlock_rdlock(&ag->tpc->log_lock);
    bool ok = append(ag, &r, true);
    if (ok) {
        atomic_store(&b->tp->logged, TP_PRECOMMITTED);
        atomic_store(&b->tp->at_ms, r.at_ms);
        atomic_store(&b->tp->deadline_ms, now_ms() + b->tp->precommit_timeout_ms);
        reg_add(ag, b); /* already there unless replay left it out */
    }
    pthread_rwlock_unlock(&ag->tpc->log_lock);
    if (ok)
        fault_point("3pc-after-precommit-record");
    return ok;
}

void threepc_record_final(agent *ag, branch *b, bool committed)
{
    if (no_log(ag, b))
        return;
    tp_record r = {.state = committed ? TP_COMMITTED : TP_ABORTED, .has = TP_HAS_AT,
                   .at_ms = wall_ms()};
    snprintf(r.gid, sizeof(r.gid), "%s", b->gid);
    pthread_rwlock_rdlock(&ag->tpc->log_lock);
    if (!append(ag, &r, false))
        txlog_error(b->gid, ag->name,
                    "3pc: cannot append the final state (%s); replay will settle it from "
                    "PostgreSQL",
                    tp_state_name(r.state));
    atomic_store(&b->tp->logged, r.state);
    atomic_store(&b->tp->at_ms, r.at_ms);
    atomic_store(&b->tp->deadline_ms, INT64_MAX);
    reg_remove(ag, b);
    /* Kept for the retention window, even if the append failed: memory
     * knows the outcome, the next compaction writes it. */
    fin_add(ag->tpc, b->gid, r.state, r.at_ms);
    pthread_rwlock_unlock(&ag->tpc->log_lock);
}

void threepc_rearm(branch *b, int64_t delay_ms)
{
    if (b->tp)
        atomic_store(&b->tp->deadline_ms, now_ms() + delay_ms);
}

bool threepc_owns(branch *b)
{
    if (!b->tp)
        return false;
    int lg = atomic_load(&b->tp->logged);
    return lg == TP_UNCERTAIN || lg == TP_PRECOMMITTED;
}

bool threepc_xact_status(agent *ag, const char *xid, fsm_ctx *ctx, char status[16])
{
    const char *params[1] = {xid};
    pg_res r;
    px_status ps = pool_query(ag->pool, POOL_WAIT_MS, "SELECT pg_xact_status($1::xid8)", 1,
                              params, &r);
    status[0] = '\0';
    if (ps != PX_OK) {
        ctx->px = ps;
        snprintf(ctx->sqlstate, sizeof(ctx->sqlstate), "%s", r.sqlstate);
        snprintf(ctx->message, sizeof(ctx->message), "%s", r.message);
        pg_res_clear(&r);
        return false;
    }
    if (r.res && PQntuples(r.res) == 1 && !PQgetisnull(r.res, 0, 0))
        snprintf(status, 16, "%s", PQgetvalue(r.res, 0, 0));
    pg_res_clear(&r);
    return true;
}

bool threepc_verify(agent *ag, branch *b, fsm_ctx *ctx)
{
    if (!b->tp || !atomic_load(&b->tp->unverified))
        return true;
    bool found;
    if (!branch_is_prepared_in_pg(ag, b->branch_gid, ctx, &found, NULL))
        return false;
    if (!found && !threepc_settle_from_pg(ag, b)) {
        ctx->px = PX_DB_DOWN;
        snprintf(ctx->message, sizeof(ctx->message),
                 "3pc branch replayed while PostgreSQL was unreachable is no longer prepared, "
                 "and its outcome cannot be told yet");
        return false;
    }
    atomic_store(&b->tp->unverified, false);
    txlog_info(b->gid, ag->name, "3pc: replayed state checked with PostgreSQL: %s",
               branch_state_name(branch_state_get(b)));
    return true;
}

bool threepc_settle_from_pg(agent *ag, branch *b)
{
    if (!b->xid[0]) {
        txlog_warn(b->gid, ag->name,
                   "3pc: branch is no longer in pg_prepared_xacts and its xid is unknown: "
                   "PostgreSQL cannot tell its outcome; left %s",
                   branch_state_name(branch_state_get(b)));
        return false;
    }
    fsm_ctx qctx = {.ag = ag};
    char status[16];
    bool asked = threepc_xact_status(ag, b->xid, &qctx, status);
    const char *st = asked && status[0] ? status : NULL;
    bool done = false;
    if (st && (strcmp(st, "committed") == 0 || strcmp(st, "aborted") == 0)) {
        bool committed = strcmp(st, "committed") == 0;
        char why[128];
        snprintf(why, sizeof(why), "not prepared any more; PostgreSQL says xid %s %s", b->xid,
                 st);
        fsm_ctx ctx = {.ag = ag};
        b->vote = VOTE_YES;
        done = branch_fsm_step(b, committed ? EV_FOUND_COMMITTED : EV_FOUND_ABORTED, why, &ctx);
    } else if (!asked) {
        txlog_warn(b->gid, ag->name, "3pc: cannot ask PostgreSQL about xid %s: %s", b->xid,
                   qctx.message);
    } else {
        txlog_warn(b->gid, ag->name,
                   "3pc: branch is no longer in pg_prepared_xacts but PostgreSQL says xid %s "
                   "is '%s'; left %s",
                   b->xid, st ? st : "(unknown: too old)", branch_state_name(branch_state_get(b)));
    }
    return done;
}

/* ---- replay ---- */

typedef struct {
    agent *ag;
    branch **bs; /* one reference each, in first-seen order */
    size_t n, cap;
} replay_ctx;

static bool replay_one(uint8_t type, const void *payload, size_t len, void *arg)
{
    replay_ctx *rc = arg;
    agent *ag = rc->ag;
    if (type != TP_RECORD_TYPE && type != TP_FINAL_TYPE) {
        log_error("3pc: %s: unknown record type %u", LOG_NAME, (unsigned)type);
        return false;
    }
    tp_record r;
    char err[128];
    if (!tp_record_decode(payload, len, &r, err, sizeof(err))) {
        log_error("3pc: %s: bad record: %s", LOG_NAME, err);
        return false;
    }
    branch *b = branch_get(ag->table, r.gid, false);
    if (b) {
        branch_put(ag->table, b); /* rc->bs holds a reference already */
    } else {
        b = branch_get(ag->table, r.gid, true);
        if (!b) {
            tp_record_free(&r);
            return false;
        }
        if (rc->n == rc->cap) {
            rc->cap = rc->cap ? rc->cap * 2 : 64;
            rc->bs = xrealloc(rc->bs, rc->cap * sizeof(branch *));
        }
        rc->bs[rc->n++] = b;
        tp_params defaults = {
            .uncertain_timeout_ms = ag->tp_uncertain_timeout_ms,
            .precommit_timeout_ms = ag->tp_precommit_timeout_ms,
            .termination = (tp_termination)ag->tp_termination,
        };
        b->tp = tp_branch_new(&defaults);
    }
    tp_branch *tp = b->tp;
    if (r.has & TP_HAS_PEERS) {
        free(tp->peers);
        tp->peers = r.peers; /* taken over */
        tp->npeers = r.npeers;
        r.peers = NULL;
        r.npeers = 0;
    }
    if (r.has & TP_HAS_TIMEOUTS) {
        tp->uncertain_timeout_ms = r.uncertain_timeout_ms;
        tp->precommit_timeout_ms = r.precommit_timeout_ms;
    }
    if (r.has & TP_HAS_TERMINATION)
        tp->termination = r.termination;
    if (r.has & TP_HAS_XID)
        snprintf(b->xid, sizeof(b->xid), "%s", r.xid);
    if (r.has & TP_HAS_AT)
        atomic_store(&tp->at_ms, r.at_ms);
    if (r.has & TP_HAS_FENCED)
        atomic_store(&tp->fenced, r.fenced);
    atomic_store(&tp->logged, r.state);
    tp_record_free(&r);
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Our prepared branch gids, sorted (caller frees each and the array); NULL
 * when PostgreSQL cannot be asked now. */
static char **list_prepared(agent *ag, size_t *n)
{
    pg_res r;
    px_status ps = pool_query(ag->pool, POOL_WAIT_MS,
                              "SELECT gid FROM pg_prepared_xacts WHERE database = "
                              "current_database() AND starts_with(gid, 'txc:')",
                              0, NULL, &r);
    if (ps != PX_OK || !r.res) {
        log_warn("3pc: cannot list prepared transactions at start (%s); branches of %s are "
                 "checked when their timers fire",
                 r.message, LOG_NAME);
        pg_res_clear(&r);
        return NULL;
    }
    int rows = PQntuples(r.res);
    char **gids = xcalloc((size_t)rows + 1, sizeof(char *));
    for (int i = 0; i < rows; i++)
        gids[i] = xstrdup(PQgetvalue(r.res, i, 0));
    qsort(gids, (size_t)rows, sizeof(char *), cmp_str);
    *n = (size_t)rows;
    pg_res_clear(&r);
    return gids;
}

/* Rebuild the branches of the log; settle or arm each unfinished one.
 * Finished ones go to the finished index when within the retention window
 * (the table asks it on demand), else are forgotten; their entries stay
 * unknown here and are freed with their last reference. */
static void restore_all(agent *ag, replay_ctx *rc)
{
    size_t nprep = 0, nunc = 0, npre = 0, nfin = 0, nexpired = 0, nsettled = 0;
    char **prep = list_prepared(ag, &nprep);
    int64_t wall = wall_ms();
    for (size_t i = 0; i < rc->n; i++) {
        branch *b = rc->bs[i];
        tp_branch *tp = b->tp;
        int lg = atomic_load(&tp->logged);
        b->vote = VOTE_YES;
        if (lg == TP_COMMITTED || lg == TP_ABORTED) {
            int64_t at = atomic_load(&tp->at_ms);
            int64_t age = wall - at;
            if (age > ag->tpc->retain_ms) {
                nexpired++;
                continue;
            }
            fin_add(ag->tpc, b->gid, (tp_state)lg, at);
            nfin++;
            continue;
        }
        bool pre = lg == TP_PRECOMMITTED;
        branch_restore(ag->table, b, pre ? BS_PRECOMMITTED : BS_UNCERTAIN);
        gauge_add(branch_waiting_gauge(&ag->metrics, pre ? BS_PRECOMMITTED : BS_UNCERTAIN), 1);
        reg_add(ag, b);
        int64_t timeout = pre ? tp->precommit_timeout_ms : tp->uncertain_timeout_ms;
        int64_t left = timeout - (wall - atomic_load(&tp->at_ms));
        if (left < 0)
            left = 0;
        if (left > timeout)
            left = timeout;
        atomic_store(&tp->deadline_ms, now_ms() + left);
        const char *bg = b->branch_gid;
        if (!prep) {
            /* PostgreSQL could not be asked: its final record may have been
             * lost, so neither peers nor the coordinator hear this state
             * before PostgreSQL confirms it (threepc_verify). */
            atomic_store(&tp->unverified, true);
        } else if (!bsearch(&bg, prep, nprep, sizeof(char *), cmp_str)) {
            /* Finished before the crash (its final record was lost): PostgreSQL
             * alone says how; nobody else is asked. */
            pthread_mutex_lock(&b->mu);
            if (threepc_settle_from_pg(ag, b)) {
                nsettled++;
            } else {
                atomic_store(&tp->unverified, true);
                threepc_rearm(b, SETTLE_RETRY_MS);
            }
            pthread_mutex_unlock(&b->mu);
            continue;
        }
        txlog_info(b->gid, ag->name, "3pc: replayed as %s; timer fires in %lld ms (%s rule)",
                   pre ? "precommitted" : "uncertain", (long long)left,
                   tp_termination_name(tp->termination));
        if (pre)
            npre++;
        else
            nunc++;
    }
    for (size_t i = 0; prep && i < nprep; i++)
        free(prep[i]);
    free(prep);
    log_info("3pc: %s replayed: %zu uncertain, %zu precommitted, %zu finished (kept %lld s), "
             "%zu finished longer ago (forgotten), %zu settled from PostgreSQL",
             LOG_NAME, nunc, npre, nfin, (long long)(ag->tpc->retain_ms / 1000), nexpired,
             nsettled);
}

bool threepc_open(agent *ag)
{
    threepc *t = xcalloc(1, sizeof(*t));
    t->path = xasprintf("%s/%s", ag->data_dir, LOG_NAME);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Compaction (the tick, which also fires the 3PC timers) must not starve
     * behind appends that overlap without end under load. Nothing takes the
     * read side twice, so writer preference cannot deadlock. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&t->log_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&t->mu, NULL);
    t->compact_bytes = t->compact_at = ag->tp_compact_bytes;
    t->retain_ms = ag->tp_retain_finished_ms > 0 ? ag->tp_retain_finished_ms
                                                 : TP_RETAIN_FINISHED_DEFAULT_MS;
    pthread_mutex_init(&t->fin_mu, NULL);
    ag->tpc = t;
    replay_ctx rc = {.ag = ag};
    /* cut at a power cut's unwritten hole (wal.c, unwritten_hole): an
     * uncertain or precommitted record after it was never acknowledged (its
     * vote or ack not sent), so the branch is as it was before it */
    t->log = wal_open_unforced(t->path, replay_one, &rc, (const char[]){TP_FINAL_TYPE, 0});
    if (!t->log) {
        for (size_t i = 0; i < rc.n; i++)
            branch_put(ag->table, rc.bs[i]);
        free(rc.bs);
        log_error("3pc: cannot open %s (see above)", t->path);
        threepc_close(ag);
        return false;
    }
    restore_all(ag, &rc);
    for (size_t i = 0; i < rc.n; i++)
        branch_put(ag->table, rc.bs[i]);
    free(rc.bs);
    branch_table_set_finder(ag->table, fin_find, t);
    return true;
}

void threepc_close(agent *ag)
{
    threepc *t = ag->tpc;
    if (!t)
        return;
    branch_table_set_finder(ag->table, NULL, NULL);
    for (size_t i = 0; i < t->nreg; i++) {
        t->reg[i]->tp->registered = false;
        branch_put(ag->table, t->reg[i]);
    }
    free(t->reg);
    while (t->fin_head) {
        fin_rec *f = t->fin_head;
        t->fin_head = f->next;
        free(f);
    }
    free(t->fin_buckets);
    pthread_mutex_destroy(&t->fin_mu);
    if (t->log)
        wal_close(t->log);
    pthread_rwlock_destroy(&t->log_lock);
    pthread_mutex_destroy(&t->mu);
    free(t->path);
    free(t);
    ag->tpc = NULL;
}

/* ---- tick: timers and compaction ---- */

/* Rewrite the log: the final record of every finished branch within the
 * retention window, then one full record per registered branch. */
static void compact(agent *ag)
{
    threepc *t = ag->tpc;
    pthread_rwlock_wrlock(&t->log_lock);
    pthread_mutex_lock(&t->mu);
    fin_prune(t, now_ms());
    pthread_mutex_lock(&t->fin_mu);
    size_t n = 0, cap = t->nfin + t->nreg + 1;
    uint8_t *types = xcalloc(cap, 1);
    char **payloads = xcalloc(cap, sizeof(char *));
    size_t *lens = xcalloc(cap, sizeof(size_t));
    for (const fin_rec *f = t->fin_head; f; f = f->next) {
        tp_record r = {.state = f->state, .has = TP_HAS_AT, .at_ms = f->at_ms};
        snprintf(r.gid, sizeof(r.gid), "%s", f->gid);
        types[n] = TP_FINAL_TYPE;
        payloads[n] = tp_record_encode(&r, &lens[n]);
        n++;
    }
    pthread_mutex_unlock(&t->fin_mu);
    size_t nfinished = n;
    for (size_t i = 0; i < t->nreg; i++) {
        branch *b = t->reg[i];
        int lg = atomic_load(&b->tp->logged);
        if (lg != TP_UNCERTAIN && lg != TP_PRECOMMITTED)
            continue;
        tp_record r;
        fill_full(b, (tp_state)lg, atomic_load(&b->tp->at_ms), &r);
        types[n] = TP_RECORD_TYPE;
        payloads[n] = tp_record_encode(&r, &lens[n]);
        n++;
    }
    pthread_mutex_unlock(&t->mu);
    uint64_t before = wal_bytes(t->log);
    bool ok = wal_rewrite(t->log, n, types, (const void *const *)payloads, lens);
    uint64_t after = wal_bytes(t->log);
    pthread_rwlock_unlock(&t->log_lock);
    if (ok) {
        t->compact_at = after * 2 > t->compact_bytes ? after * 2 : t->compact_bytes;
        log_info("3pc: %s compacted: %llu -> %llu bytes, %zu unfinished branch(es) kept, %zu "
                 "finished within %lld s kept; next compaction past %llu bytes",
                 LOG_NAME, (unsigned long long)before, (unsigned long long)after, n - nfinished,
                 nfinished, (long long)(t->retain_ms / 1000), (unsigned long long)t->compact_at);
    } else {
        t->next_compact_ms = now_ms() + COMPACT_RETRY_MS; /* logged by wal_rewrite */
    }
    for (size_t i = 0; i < n; i++)
        free(payloads[i]);
    free(payloads);
    free(types);
    free(lens);
}

void threepc_tick(agent *ag, int64_t now)
{
    threepc *t = ag->tpc;
    if (!t)
        return;
    char (*due)[GID_MAX_LEN + 1] = NULL;
    size_t ndue = 0, capdue = 0;
    pthread_mutex_lock(&t->mu);
    fin_prune(t, now);
    for (size_t i = 0; i < t->nreg; i++) {
        branch *b = t->reg[i];
        branch_state s = branch_state_get(b);
        if ((s != BS_UNCERTAIN && s != BS_PRECOMMITTED) || atomic_load(&b->tp->terminating) ||
            now < atomic_load(&b->tp->deadline_ms))
            continue;
        atomic_store(&b->tp->terminating, true);
        if (ndue == capdue) {
            capdue = capdue ? capdue * 2 : 8;
            due = xrealloc(due, capdue * sizeof(*due));
        }
        memcpy(due[ndue++], b->gid, sizeof(b->gid));
    }
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < ndue; i++)
        termination_submit(ag, due[i]);
    free(due);
    if (wal_bytes(t->log) > t->compact_at && now >= t->next_compact_ms)
        compact(ag);
}
