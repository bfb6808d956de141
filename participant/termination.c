/*
 * termination.c - the 3PC termination protocol: what the agent does on its
 * own when the coordinator stays silent past a branch's timer (PROTOCOL.md
 * "Three-phase commit"; the rule itself is termination_decide in tp.c).
 *
 * Steps for one expired branch (gids queued by the tick, run by a pool of
 * --3pc-termination-workers threads, several branches at once):
 *   1. Under b->mu (waited for at most TERM_LOCK_WAIT_MS, else asked about
 *      again later: lock_or_later, as in 3 and 4): is it still
 *      uncertain/precommitted and past its deadline?
 *      (a coordinator message may have come meanwhile: then nothing to do).
 *      Is it still in pg_prepared_xacts? If not it was finished: mark it as
 *      PostgreSQL says (pg_xact_status) and stop.
 *   2. Without the lock: termination=protocol and =blocking ask every other
 *      peer GET /v1/branches/{gid} in parallel (at its --peer route if it
 *      has one, else at the URL the coordinator sent); termination=timeout
 *      asks no one.
 *   3. Decide. Wait (a peer answered but could not tell yet, e.g.
 *      branch_busy; or, blocking, did not answer): log "3pc termination:
 *      <rule> -> wait", re-arm the timer, backed off (1, 2, 4, 8, then every
 *      WAIT_RETRY_MAX_MS), and stop here.
 *   4. Under b->mu, only if the state is still the one seen in step 1, log
 *      "3pc termination: <rule> -> commit|abort", count it, and act:
 *      commit: COMMIT PREPARED.  abort: ROLLBACK PREPARED.
 *      precommit-then-commit: precommit self (forced) if uncertain, POST
 *        precommit to the uncertain peers, COMMIT PREPARED, POST commit to
 *        the other peers.
 *      abort-all: ROLLBACK PREPARED, POST rollback to the uncertain peers.
 *   PostgreSQL failing in step 1 or 4 re-arms the timer (retried later).
 * A crash of the agent between 1 and 4 changes nothing (replay re-arms the
 * timer); inside 4 after the self precommit the branch is precommitted and
 * the next termination commits it; after COMMIT/ROLLBACK PREPARED the replay
 * settles it from PostgreSQL.
 *
 * Invariants:
 *   - No network I/O with b->mu held: peers run their own termination at the
 *     same time and call us while we call them.
 *   - A branch is acted on only if its state did not change while the peers
 *     were asked; otherwise the message that changed it (coordinator or peer)
 *     is obeyed and this termination ends.
 *   - One termination per branch at a time: tp->terminating is the only
 *     guard. The tick (threepc.c) submits a branch only after setting the
 *     flag from false under its own mutex, and the worker clears it only
 *     after the termination is over, so a branch is never queued twice nor
 *     held by two workers.
 *   - Workers share nothing but the queue: each termination takes b->mu of
 *     its own branch only, its own pooled connection and its own HTTP calls
 *     (httpc keeps one curl handle per thread).
 *   - Stop: workers finish the termination they are in (each call bounded by
 *     PEER_TIMEOUT_MS, PostgreSQL by POOL_WAIT_MS and its own timeouts), take
 *     no new job, and are all joined; queued jobs are dropped (their timers
 *     fire again after a restart's replay).
 */
#include "termination.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "branch.h"
#include "httpc.h"
#include "log.h"
#include "threepc.h"

#define PEER_TIMEOUT_MS 3000
#define SETTLE_RETRY_MS 60000 /* outcome unknown to PostgreSQL: warn once a minute */
#define RETRY_MS 1000         /* an fsm step failed (PostgreSQL error): try again */
#define TERM_LOCK_WAIT_MS 1000 /* a worker's wait for its branch's lock (lock_or_later) */
#define WAIT_RETRY_MAX_MS 10000 /* "wait" again and again: 1, 2, 4, 8, then every 10 s */
#define PG_DOWN_RETRY_MS 3000 /* PostgreSQL cannot even be asked: less log noise */

/* One queued or running termination. */
typedef struct job {
    struct job *next;  /* queue, oldest first (while queued) */
    char gid[GID_MAX_LEN + 1];
} job;

typedef struct {
    termination *t;
    pthread_t thread;
    int id; /* 1.., for the log */
} worker_slot;

struct termination {
    agent *ag; /* borrowed */
    pthread_mutex_t mu; /* guards head, tail, stop */
    pthread_cond_t cv;  /* a job was queued, or stop */
    job *head, *tail;   /* the queue; jobs owned by it, then by the worker running them */
    bool stop;
    size_t nworkers;    /* started; main thread only (start, stop) */
    worker_slot *slots; /* nworkers; owned; each worker reads only its own slot */
};

/* ---- peers ---- */

typedef struct {
    size_t npeers;                       /* others, self excluded */
    const char *url[TP_MAX_PEERS];       /* base URL: a --peer route, else the coordinator's;
                                            borrowed from ag or b->tp (immutable) */
    const char *name[TP_MAX_PEERS];      /* borrowed from b->tp */
    peer_state st[TP_MAX_PEERS];
} peer_set;

static void peers_of(agent *ag, const tp_branch *tp, peer_set *ps)
{
    ps->npeers = 0;
    for (size_t i = 0; i < tp->npeers && ps->npeers < TP_MAX_PEERS; i++) {
        if (strcmp(tp->peers[i].participant, ag->name) == 0)
            continue;
        ps->url[ps->npeers] = tp_peer_url(ag->peer_routes, ag->npeer_routes, &tp->peers[i]);
        ps->name[ps->npeers] = tp->peers[i].participant;
        ps->st[ps->npeers] = PEER_UNREACHABLE;
        ps->npeers++;
    }
}

/* GET every peer's view of gid in parallel. */
static void ask_peers(const char *gid, peer_set *ps)
{
    size_t n = ps->npeers;
    if (n == 0)
        return;
    httpc_call calls[TP_MAX_PEERS];
    char *urls[TP_MAX_PEERS];
    char *esc = httpc_escape(gid);
    memset(calls, 0, sizeof(calls));
    for (size_t i = 0; i < n; i++) {
        /* fence=1: an uncertain peer records that it was read so before it
         * answers, and refuses the coordinator's PreCommit from then on, so
         * that "all uncertain -> abort" cannot race a late PreCommit */
        urls[i] = xasprintf("%s/v1/branches/%s?fence=1", ps->url[i], esc);
        calls[i].method = "GET";
        calls[i].url = urls[i];
        calls[i].timeout_ms = PEER_TIMEOUT_MS;
    }
    free(esc);
    (void)httpc_perform(calls, n); /* per-call status below */
    for (size_t i = 0; i < n; i++) {
        const char *state = NULL;
        bool ro = false;
        if (calls[i].status == 200 && calls[i].response) {
            state = json_string_value(json_object_get(calls[i].response, "state"));
            ro = json_is_true(json_object_get(calls[i].response, "read_only"));
            /* The answer must be about that peer's branch: a wrong route
             * (another agent's URL) would pass off another branch's state. */
            const char *bgid = json_string_value(json_object_get(calls[i].response, "branch_gid"));
            char g[GID_MAX_LEN + 1], who[PARTICIPANT_MAX_LEN + 1];
            if (!bgid || !branch_gid_parse(bgid, g, who) || strcmp(g, gid) != 0 ||
                strcmp(who, ps->name[i]) != 0) {
                txlog_warn(gid, NULL, "3pc termination: %s answered for branch %s, not its own; "
                           "not counted (check its --peer route)", ps->name[i],
                           bgid ? bgid : "(none)");
                state = NULL;
            }
        }
        ps->st[i] = peer_state_from(state, ro);
        /* 503 (branch_busy, database_unavailable, pool_exhausted): our
         * agent, reachable, cannot tell yet. Other statuses (500, or a
         * proxy's 502/504) say nothing about the branch: unreachable. */
        if (calls[i].status == 503)
            ps->st[i] = PEER_BUSY;
        httpc_call_clear(&calls[i]);
        free(urls[i]);
    }
}

/* POST verb to the peers whose state is in want (bitmask of 1u << peer_state). */
static void tell_peers(agent *ag, const char *gid, const peer_set *ps, unsigned want,
                       const char *verb)
{
    httpc_call calls[TP_MAX_PEERS];
    char *urls[TP_MAX_PEERS];
    size_t idx[TP_MAX_PEERS], n = 0;
    char *esc = httpc_escape(gid);
    memset(calls, 0, sizeof(calls));
    for (size_t i = 0; i < ps->npeers; i++) {
        if (!(want & (1u << ps->st[i])))
            continue;
        urls[n] = xasprintf("%s/v1/branches/%s/%s", ps->url[i], esc, verb);
        calls[n].method = "POST";
        calls[n].url = urls[n];
        /* "from":"peer": a fenced peer takes our PreCommit (ours only comes
         * when some branch is precommitted), not the coordinator's */
        calls[n].body = json_pack("{s:s, s:s}", "participant", ps->name[i], "from", "peer");
        calls[n].timeout_ms = PEER_TIMEOUT_MS;
        idx[n++] = i;
    }
    free(esc);
    if (n > 0)
        (void)httpc_perform(calls, n);
    for (size_t k = 0; k < n; k++) {
        const char *peer = ps->name[idx[k]];
        if (calls[k].status == 200)
            txlog_info(gid, ag->name, "3pc termination: %s sent to %s: done", verb, peer);
        else if (calls[k].status == 0)
            txlog_warn(gid, ag->name, "3pc termination: %s to %s failed: %s", verb, peer,
                       calls[k].error);
        else
            txlog_warn(gid, ag->name, "3pc termination: %s to %s answered HTTP %ld", verb, peer,
                       calls[k].status);
        json_decref(calls[k].body);
        httpc_call_clear(&calls[k]);
        free(urls[k]);
    }
}

#define BIT(s) (1u << (s))

/* ---- one termination ---- */

/* With b->mu held: is the branch still in state s0 (what step 1 saw)? */
static bool unchanged(agent *ag, branch *b, branch_state s0)
{
    branch_state s = branch_state_get(b);
    if (s == s0)
        return true;
    txlog_info(b->gid, ag->name, "3pc termination: branch is %s now (a message came meanwhile); "
               "nothing to do", branch_state_name(s));
    return false;
}

/* With b->mu held: one fsm step, re-arming the timer on failure. */
static bool act(agent *ag, branch *b, branch_event ev)
{
    fsm_ctx ctx = {.ag = ag};
    if (branch_fsm_step(b, ev, "3pc termination", &ctx))
        return true;
    threepc_rearm(b, RETRY_MS);
    return false;
}

/* Lock b within TERM_LOCK_WAIT_MS. A holder that keeps it longer (a
 * COMMIT PREPARED of the branch stalled in PostgreSQL, say) must not keep
 * this worker, one of a few, from every other branch's termination: the
 * branch is asked about again later_ms from now, unless a message that
 * holds it set a later timer meanwhile. */
static bool lock_or_later(agent *ag, branch *b, int64_t later_ms)
{
    if (branch_lock_within(b, TERM_LOCK_WAIT_MS))
        return true;
    int64_t now = now_ms(), due = atomic_load(&b->tp->deadline_ms);
    if (due <= now)
        (void)atomic_compare_exchange_strong(&b->tp->deadline_ms, &due, now + later_ms);
    txlog_info(b->gid, ag->name, "3pc termination: the branch stayed busy %d ms; asking again in "
               "%lld ms", TERM_LOCK_WAIT_MS, (long long)later_ms);
    return false;
}

static void terminate_branch(agent *ag, branch *b, int worker_id)
{
    /* 1. */
    if (!b->tp || !lock_or_later(ag, b, RETRY_MS))
        return;
    branch_state s0 = branch_state_get(b);
    tp_branch *tp = b->tp;
    if (!tp || (s0 != BS_UNCERTAIN && s0 != BS_PRECOMMITTED) ||
        now_ms() < atomic_load(&tp->deadline_ms)) {
        pthread_mutex_unlock(&b->mu);
        return;
    }
    fsm_ctx ctx = {.ag = ag};
    bool found;
    if (!branch_is_prepared_in_pg(ag, b->branch_gid, &ctx, &found, NULL)) {
        txlog_warn(b->gid, ag->name, "3pc termination postponed: cannot read "
                   "pg_prepared_xacts: %s", ctx.message);
        threepc_rearm(b, PG_DOWN_RETRY_MS);
        pthread_mutex_unlock(&b->mu);
        return;
    }
    if (!found) {
        if (!threepc_settle_from_pg(ag, b))
            threepc_rearm(b, SETTLE_RETRY_MS);
        else
            atomic_store(&tp->unverified, false);
        pthread_mutex_unlock(&b->mu);
        return;
    }
    atomic_store(&tp->unverified, false); /* still prepared: the replayed state holds */
    tp_state self = s0 == BS_PRECOMMITTED ? TP_PRECOMMITTED : TP_UNCERTAIN;
    pthread_mutex_unlock(&b->mu);
    txlog_info(b->gid, ag->name, "3pc termination: started on worker %d (self %s, %s rule)",
               worker_id, tp_state_name(self), tp_termination_name(tp->termination));

    /* 2. */
    peer_set ps;
    peers_of(ag, tp, &ps);
    if (tp->termination != TP_TERM_TIMEOUT)
        ask_peers(b->gid, &ps);

    /* 3. */
    char rule[160];
    term_decision d = termination_decide(tp->termination, self, ps.st, ps.name, ps.npeers, rule,
                                         sizeof(rule));
    bool commit = term_decision_commits(d);
    if (tp->termination != TP_TERM_TIMEOUT) {
        char seen[512];
        size_t off = 0;
        seen[0] = '\0';
        for (size_t i = 0; i < ps.npeers && off < sizeof(seen); i++)
            off += (size_t)snprintf(seen + off, sizeof(seen) - off, "%s%s=%s", i ? " " : "",
                                    ps.name[i], peer_state_name(ps.st[i]));
        txlog_info(b->gid, ag->name, "3pc termination: self %s, peers: %s", tp_state_name(self),
                   ps.npeers ? seen : "(none)");
    }
    if (d == TERM_WAIT) {
        /* Backed off: a peer that stays unreachable (the blocking rule, for
         * a whole partition) or busy must not keep a worker, each attempt
         * up to PEER_TIMEOUT_MS per silent peer, from the other branches. */
        counter_inc(&ag->metrics.term_wait);
        int n = atomic_fetch_add(&tp->waits, 1);
        int64_t again = n >= 4 ? WAIT_RETRY_MAX_MS : (int64_t)RETRY_MS << n;
        if (again > WAIT_RETRY_MAX_MS)
            again = WAIT_RETRY_MAX_MS;
        txlog_info(b->gid, ag->name, "3pc termination: %s -> wait (asking again in %lld ms)",
                   rule, (long long)again);
        if (!lock_or_later(ag, b, again))
            return;
        if (branch_state_get(b) == s0) /* a message that came meanwhile set its own timer */
            threepc_rearm(b, again);
        pthread_mutex_unlock(&b->mu);
        return;
    }

    /* 4. (logged and counted once it is acted on: under the lock, unchanged) */
    const unsigned uncertain = BIT(PEER_UNCERTAIN) | BIT(PEER_PREPARED);
    if (!lock_or_later(ag, b, RETRY_MS))
        return;
    if (!unchanged(ag, b, s0)) {
        pthread_mutex_unlock(&b->mu);
        return;
    }
    atomic_store(&tp->waits, 0); /* decided: a later wait backs off from the start */
    txlog_info(b->gid, ag->name, "3pc termination: %s -> %s", rule, commit ? "commit" : "abort");
    counter_inc(commit ? &ag->metrics.term_commit : &ag->metrics.term_abort);
    switch (d) {
    case TERM_COMMIT:
        (void)act(ag, b, EV_COMMIT);
        pthread_mutex_unlock(&b->mu);
        break;
    case TERM_ABORT:
        (void)act(ag, b, EV_ROLLBACK);
        pthread_mutex_unlock(&b->mu);
        break;
    case TERM_ABORT_ALL: {
        bool ok = act(ag, b, EV_ROLLBACK);
        pthread_mutex_unlock(&b->mu);
        if (ok)
            tell_peers(ag, b->gid, &ps, uncertain, "rollback");
        break;
    }
    case TERM_WAIT: /* handled above */
        pthread_mutex_unlock(&b->mu);
        break;
    case TERM_PRECOMMIT_COMMIT: {
        if (s0 == BS_UNCERTAIN && !act(ag, b, EV_PRECOMMIT)) {
            pthread_mutex_unlock(&b->mu);
            break;
        }
        pthread_mutex_unlock(&b->mu);
        tell_peers(ag, b->gid, &ps, uncertain, "precommit");
        if (!lock_or_later(ag, b, RETRY_MS)) /* precommitted: the next commits it (rule 2) */
            break;
        bool ok = unchanged(ag, b, BS_PRECOMMITTED) && act(ag, b, EV_COMMIT);
        pthread_mutex_unlock(&b->mu);
        if (ok)
            tell_peers(ag, b->gid, &ps,
                       uncertain | BIT(PEER_PRECOMMITTED) | BIT(PEER_UNREACHABLE) | BIT(PEER_BUSY),
                       "commit");
        break;
    }
    }
}

/* ---- workers ---- */

static void *worker(void *arg)
{
    worker_slot *w = arg;
    termination *t = w->t;
    agent *ag = t->ag;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->stop && !t->head)
            pthread_cond_wait(&t->cv, &t->mu);
        if (t->stop)
            break;
        job *j = t->head;
        t->head = j->next;
        if (!t->head)
            t->tail = NULL;
        pthread_mutex_unlock(&t->mu);

        branch *b = branch_get(ag->table, j->gid, false);
        if (b)
            terminate_branch(ag, b, w->id);

        free(j);
        if (b) {
            if (b->tp) /* set before the branch was registered: the tick's handoff orders it */
                atomic_store(&b->tp->terminating, false);
            branch_put(ag->table, b);
        }
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void free_queue(termination *t)
{
    while (t->head) {
        job *j = t->head;
        t->head = j->next;
        free(j);
    }
    t->tail = NULL;
}

/* Stop the workers that started and free t (ag->term cleared). */
static void stop_and_free(agent *ag, termination *t)
{
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < t->nworkers; i++)
        pthread_join(t->slots[i].thread, NULL);
    free_queue(t); /* no worker left: only queued jobs remain */
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t);
    ag->term = NULL;
}

bool termination_start(agent *ag)
{
    size_t want = ag->tp_termination_workers > 0 ? (size_t)ag->tp_termination_workers
                                                 : TP_TERMINATION_WORKERS_DEFAULT;
    termination *t = xcalloc(1, sizeof(*t));
    t->ag = ag;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->slots = xcalloc(want, sizeof(*t->slots));
    ag->term = t;
    for (size_t i = 0; i < want; i++) {
        t->slots[i].t = t;
        t->slots[i].id = (int)i + 1;
        int rc = pthread_create(&t->slots[i].thread, NULL, worker, &t->slots[i]);
        if (rc != 0) {
            log_error("cannot start 3pc termination worker %zu of %zu: %s", i + 1, want,
                      strerror(rc));
            stop_and_free(ag, t);
            return false;
        }
        t->nworkers++;
    }
    log_info("3pc: %zu termination worker(s)", want);
    return true;
}

void termination_stop(agent *ag)
{
    if (ag->term)
        stop_and_free(ag, ag->term);
}

void termination_submit(agent *ag, const char *gid)
{
    termination *t = ag->term;
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    if (t->stop) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    job *j = xcalloc(1, sizeof(*j));
    snprintf(j->gid, sizeof(j->gid), "%s", gid);
    if (t->tail)
        t->tail->next = j;
    else
        t->head = j;
    t->tail = j;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}
