/*
 * resolver.c - the recovery sweep: finish prepared branches nobody is
 * finishing, as the coordinator decided (presumed abort).
 *
 * Invariants:
 *   - A prepared branch is committed only if the coordinator's outcome is
 *     "committed" and rolled back only if it is "aborted". in_flight, an
 *     unknown answer or an unreachable coordinator leave it prepared until a
 *     later sweep. The sweep never guesses.
 *   - Branches this agent holds as in progress (active: PREPARE not done or
 *     the vote not yet given) are skipped, and so are 3PC branches whose last
 *     record is uncertain or precommitted (threepc_owns): their timers and
 *     the termination protocol finish them; the coordinator's "aborted" for a
 *     3PC gid it forgot must not roll back a branch a peer may have committed. Prepared branches held in memory
 *     are asked about like the others; the finish itself runs under the
 *     branch mutex (op_resolve), so it serializes with the coordinator's own
 *     commit/rollback call and whichever comes second finds it finished.
 *   - A branch is asked about only once PostgreSQL says it has been prepared
 *     for --resolve-min-age-ms (pg_prepared_xacts.prepared, on the server's
 *     clock): a younger one is one the coordinator is normally finishing right
 *     now, and a sweep that lands in that window would only race it (the
 *     answer is in_flight, or committed and both send COMMIT PREPARED). A
 *     branch "prepared in the future" (the clock went back) is asked about:
 *     no clock step may hide an orphan (resolver_too_young).
 *   - Only branches of our database, with our prefix and our participant name
 *     are touched (one gid namespace per PostgreSQL cluster).
 *   - "Still in doubt" is logged at most once per gid per minute; a branch
 *     the coordinator is still deciding (in_flight) only once it has been
 *     so for a minute (before that it is a branch caught mid-commit).
 *
 * Protocol steps, per sweep:
 *   1. List pg_prepared_xacts (our database, prefix txc:), each with its age.
 *   2. For each of ours old enough and not in progress:
 *      GET <coordinator>/v1/outcomes/{gid}.
 *   3. committed -> COMMIT PREPARED; aborted -> ROLLBACK PREPARED (42704 on
 *      either = finished by someone else meanwhile).
 *   3a. Except committed with our COMMIT acknowledged (the coordinator says
 *      so when asked with ?participant=, also after it forgot the
 *      transaction: its 'C' ended) while the branch is still prepared: a
 *      second PREPARE of the gid landed after our commit; it is left in
 *      doubt (logged, counted), never committed. (A branch an operator's
 *      heuristic commit gave up never reads acknowledged, in memory or
 *      not: if it comes back prepared it is committed.)
 *   4. Open branches: every active branch idle for --resolve-min-age-ms, and
 *      at least OPEN_MIN_IDLE_MS (a client thinking between statements is
 *      not asked about every sweep), is asked about the same way, the
 *      longest idle first, at most OPEN_MAX per sweep, and no more batches
 *      once one found the coordinator unreachable; only
 *      "aborted" acts: the branch is rolled back, if it is still active and
 *      idle (op_abort_open, under its mutex, trylock: one in use is left).
 *      That is a transaction the coordinator will never finish here: it
 *      restarted (presumed abort forgets open transactions) or its rollback
 *      never arrived. Without this the branch would hold its row locks until
 *      its idle timeout, which is the transaction's timeout_ms (up to a day).
 *      "aborted" is final at the coordinator, so nothing can need the
 *      branch afterwards; any other answer leaves it alone.
 *   A crash anywhere is harmless: the next start lists again and asks again;
 *   both finishes are idempotent.
 */
#include "resolver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gid.h"
#include "httpc.h"
#include "log.h"
#include "ops.h"
#include "pool.h"

#define OUTCOME_TIMEOUT_MS 3000
#define OUTCOME_BATCH 32
#define DOUBT_LOG_EVERY_MS 60000
#define LIST_WAIT_MS 1000
#define OPEN_MAX 256 /* open branches asked about per sweep */
#define OPEN_MIN_IDLE_MS 10000 /* floor of the idle time before an open branch is asked about */

typedef struct {
    char gid[GID_MAX_LEN + 1];
    int64_t first_ms;  /* first sweep that left it in doubt */
    int64_t logged_ms;
    int64_t age_ms; /* how long it had been prepared at the latest sweep */
    bool seen; /* still prepared in the latest sweep */
} doubt;

typedef struct {
    agent *ag;
    doubt *doubts; /* gids left in doubt, for log rate limiting */
    size_t ndoubts, capdoubts;
    int64_t list_error_logged_ms;
} resolver;

static doubt *doubt_find(resolver *r, const char *gid)
{
    for (size_t i = 0; i < r->ndoubts; i++)
        if (strcmp(r->doubts[i].gid, gid) == 0)
            return &r->doubts[i];
    return NULL;
}

/* Log "left in doubt" for gid unless that was done less than a minute ago.
 * A branch whose transaction the coordinator is still deciding (in_flight)
 * past the minimum age is one whose transaction waits on a slow peer or a
 * slow disk, or (with --resolve-min-age-ms 0) any branch caught mid-commit:
 * nothing is logged until it has stayed so for a minute. */
static void note_doubt(resolver *r, const char *gid, int64_t age_ms, const char *why,
                       bool in_flight)
{
    int64_t now = now_ms();
    doubt *d = doubt_find(r, gid);
    if (!d) {
        if (r->ndoubts == r->capdoubts) {
            r->capdoubts = r->capdoubts ? r->capdoubts * 2 : 16;
            r->doubts = xrealloc(r->doubts, r->capdoubts * sizeof(doubt));
        }
        d = &r->doubts[r->ndoubts++];
        snprintf(d->gid, sizeof(d->gid), "%s", gid);
        d->first_ms = now;
        d->logged_ms = now - DOUBT_LOG_EVERY_MS - 1;
    }
    d->seen = true;
    d->age_ms = age_ms;
    if (in_flight && now - d->first_ms < DOUBT_LOG_EVERY_MS) {
        txlog_debug(gid, r->ag->name, "prepared branch: %s", why);
        return;
    }
    if (now - d->logged_ms > DOUBT_LOG_EVERY_MS) {
        d->logged_ms = now;
        txlog_info(gid, r->ag->name, "prepared branch left in doubt: %s (retrying every %lld ms)",
                   why, (long long)r->ag->resolve_interval_ms);
    }
}

/* Forget gids that are no longer in doubt; publish how many are left and
 * the age of the oldest (txagent_branches_in_doubt*). */
static void prune_doubts(resolver *r)
{
    size_t k = 0;
    int64_t oldest_ms = 0;
    for (size_t i = 0; i < r->ndoubts; i++) {
        if (r->doubts[i].seen) {
            r->doubts[i].seen = false;
            if (r->doubts[i].age_ms > oldest_ms)
                oldest_ms = r->doubts[i].age_ms;
            r->doubts[k++] = r->doubts[i];
        }
    }
    r->ndoubts = k;
    gauge_set(&r->ag->metrics.in_doubt, (int64_t)k);
    gauge_set(&r->ag->metrics.in_doubt_oldest_ms, oldest_ms);
}

/* The "outcome" of a 200 answer from /v1/outcomes, or NULL. */
static const char *outcome_of(const httpc_call *c)
{
    json_t *o = c->status == 200 && c->response ? json_object_get(c->response, "outcome") : NULL;
    return json_is_string(o) ? json_string_value(o) : NULL;
}

/* Is gid's branch prepared in PostgreSQL now? 1 yes, 0 no, -1 cannot be
 * told (the query failed: a busy pool, the database away). */
static int prepared_again(agent *ag, const char *gid)
{
    char bgid[BRANCH_GID_MAX_LEN + 1];
    fsm_ctx ctx = {.ag = ag};
    bool found = false;
    if (!branch_gid_make(bgid, sizeof(bgid), gid, ag->name) ||
        !branch_is_prepared_in_pg(ag, bgid, &ctx, &found, NULL))
        return -1;
    return found ? 1 : 0;
}

/* Act on one coordinator answer. */
static void handle_outcome(resolver *r, const char *gid, int64_t age_ms, httpc_call *c)
{
    char why[320];
    if (c->status == 0) {
        snprintf(why, sizeof(why), "coordinator unreachable: %s", c->error);
        note_doubt(r, gid, age_ms, why, false);
        return;
    }
    const char *outcome = outcome_of(c);
    bool acked = c->status == 200 && outcome && strcmp(outcome, "committed") == 0 &&
                 json_is_true(json_object_get(c->response, "acknowledged"));
    int again = acked ? prepared_again(r->ag, gid) : 0;
    if (again < 0) {
        /* Never commit what may be a second PREPARE: ask again next sweep. */
        note_doubt(r, gid, age_ms, "committed and acknowledged, and whether it is prepared "
                   "again cannot be checked now", false);
    } else if (again > 0) {
        /* 3a: we acknowledged its COMMIT, and it is prepared (still, now
         * that the coordinator had that ack): a second PREPARE of the gid,
         * whose commit would apply its statements twice. */
        txlog_error(gid, r->ag->name,
                    "branch prepared again after its commit was acknowledged: a second PREPARE "
                    "of the gid (a session no fence stopped); left prepared for an operator "
                    "(ROLLBACK PREPARED it if it is that copy)");
        note_doubt(r, gid, age_ms, "prepared again after its commit was acknowledged", false);
    } else if (c->status == 200 && outcome && strcmp(outcome, "committed") == 0) {
        if (!op_resolve(r->ag, gid, true))
            note_doubt(r, gid, age_ms, "COMMIT PREPARED failed (see above)", false);
    } else if (c->status == 200 && outcome && strcmp(outcome, "aborted") == 0) {
        if (!op_resolve(r->ag, gid, false))
            note_doubt(r, gid, age_ms, "ROLLBACK PREPARED failed (see above)", false);
    } else if (c->status == 200) {
        snprintf(why, sizeof(why), "coordinator says %s", outcome ? outcome : "(no outcome)");
        note_doubt(r, gid, age_ms, why, outcome && strcmp(outcome, "in_flight") == 0);
    } else {
        json_t *e = c->response ? json_object_get(c->response, "error") : NULL;
        json_t *code = e ? json_object_get(e, "code") : NULL;
        snprintf(why, sizeof(why), "coordinator answered HTTP %ld %s", c->status,
                 json_is_string(code) ? json_string_value(code) : "");
        note_doubt(r, gid, age_ms, why, false);
    }
}

/* GET <coordinator>/v1/outcomes/{gid} for gids[0..n) (n <= OUTCOME_BATCH),
 * in parallel; calls[i] carries each answer, urls[i] its URL (owned: free
 * after clearing the call). */
static void ask_outcomes(agent *ag, char (*gids)[GID_MAX_LEN + 1], size_t n, httpc_call *calls,
                         char **urls)
{
    memset(calls, 0, n * sizeof(*calls));
    for (size_t i = 0; i < n; i++) {
        char *esc = httpc_escape(gids[i]);
        /* participant: the answer says whether our COMMIT of it was
         * acknowledged (step 3a) */
        urls[i] = xasprintf("%s/v1/outcomes/%s?participant=%s", ag->coordinator, esc, ag->name);
        free(esc);
        calls[i].method = "GET";
        calls[i].url = urls[i];
        calls[i].timeout_ms = OUTCOME_TIMEOUT_MS;
    }
    (void)httpc_perform(calls, n); /* each call carries its own status */
}

/* Ask the coordinator about gids[0..n) (prepared ages_ms[i] ago) in parallel,
 * then act on each answer. */
static void resolve_batch(resolver *r, char (*gids)[GID_MAX_LEN + 1], const int64_t *ages_ms,
                          size_t n)
{
    httpc_call calls[OUTCOME_BATCH];
    char *urls[OUTCOME_BATCH];
    ask_outcomes(r->ag, gids, n, calls, urls);
    for (size_t i = 0; i < n; i++) {
        if (!r->ag->resolver_stop)
            handle_outcome(r, gids[i], ages_ms[i], &calls[i]);
        httpc_call_clear(&calls[i]);
        free(urls[i]);
    }
}

/* Step 4: the open branches idle long enough; roll back those whose
 * transaction the coordinator says aborted. */
static void sweep_open(resolver *r)
{
    agent *ag = r->ag;
    char(*gids)[GID_MAX_LEN + 1] = xcalloc(OPEN_MAX, GID_MAX_LEN + 1);
    int64_t min_idle =
        ag->resolve_min_age_ms > OPEN_MIN_IDLE_MS ? ag->resolve_min_age_ms : OPEN_MIN_IDLE_MS;
    size_t n = op_idle_open(ag, min_idle, gids, OPEN_MAX);
    bool reachable = true;
    httpc_call calls[OUTCOME_BATCH];
    char *urls[OUTCOME_BATCH];
    for (size_t at = 0; at < n && reachable && !ag->resolver_stop; at += OUTCOME_BATCH) {
        size_t m = n - at < OUTCOME_BATCH ? n - at : OUTCOME_BATCH;
        ask_outcomes(ag, gids + at, m, calls, urls);
        reachable = false;
        for (size_t i = 0; i < m; i++) {
            if (calls[i].status != 0)
                reachable = true;
            const char *o = outcome_of(&calls[i]);
            if (!ag->resolver_stop && o && strcmp(o, "aborted") == 0)
                (void)op_abort_open(ag, gids[at + i], min_idle);
            httpc_call_clear(&calls[i]);
            free(urls[i]);
        }
    }
    free(gids);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* First successful listing: publish our prepared gids (see agent.h). */
static void publish_prepared_at_start(agent *ag, PGresult *res)
{
    int rows = PQntuples(res);
    char **gids = xcalloc((size_t)rows + 1, sizeof(char *));
    size_t n = 0;
    for (int i = 0; i < rows; i++) {
        char gid[GID_MAX_LEN + 1], part[PARTICIPANT_MAX_LEN + 1];
        if (branch_gid_parse(PQgetvalue(res, i, 0), gid, part) && strcmp(part, ag->name) == 0)
            gids[n++] = xstrdup(gid);
    }
    qsort(gids, n, sizeof(char *), cmp_str);
    ag->prepared_at_start = gids;
    ag->nprepared_at_start = n;
    atomic_store_explicit(&ag->prepared_at_start_listed, true, memory_order_release);
    log_info("recovery sweep: %zu prepared branch(es) of ours found at start", n);
}

static void sweep(resolver *r)
{
    agent *ag = r->ag;
    pg_res res;
    px_status ps = pool_query(ag->pool, LIST_WAIT_MS,
                              "SELECT gid, floor(1000 * extract(epoch FROM "
                              "clock_timestamp() - prepared))::bigint "
                              "FROM pg_prepared_xacts WHERE database = "
                              "current_database() AND starts_with(gid, 'txc:')",
                              0, NULL, &res);
    if (ps != PX_OK || !res.res) {
        int64_t now = now_ms();
        if (now - r->list_error_logged_ms > DOUBT_LOG_EVERY_MS || r->list_error_logged_ms == 0) {
            r->list_error_logged_ms = now;
            log_warn("recovery sweep: cannot list prepared transactions: %s", res.message);
        }
        pg_res_clear(&res);
        return;
    }
    if (!atomic_load_explicit(&ag->prepared_at_start_listed, memory_order_acquire))
        publish_prepared_at_start(ag, res.res);
    int rows = PQntuples(res.res);
    char(*batch)[GID_MAX_LEN + 1] = xcalloc(OUTCOME_BATCH, GID_MAX_LEN + 1);
    int64_t ages[OUTCOME_BATCH];
    size_t nb = 0;
    for (int i = 0; i < rows && !ag->resolver_stop; i++) {
        char gid[GID_MAX_LEN + 1], part[PARTICIPANT_MAX_LEN + 1];
        if (!branch_gid_parse(PQgetvalue(res.res, i, 0), gid, part) ||
            strcmp(part, ag->name) != 0)
            continue; /* another participant's branch sharing this cluster */
        int64_t age_ms = strtoll(PQgetvalue(res.res, i, 1), NULL, 10);
        if (resolver_too_young(age_ms, ag->resolve_min_age_ms))
            continue; /* prepared just now: the coordinator is finishing it */
        if (op_in_progress(ag, gid))
            continue;
        ages[nb] = age_ms;
        memcpy(batch[nb++], gid, sizeof(gid));
        if (nb == OUTCOME_BATCH) {
            resolve_batch(r, batch, ages, nb);
            nb = 0;
        }
    }
    if (nb > 0 && !ag->resolver_stop)
        resolve_batch(r, batch, ages, nb);
    free(batch);
    pg_res_clear(&res);
    prune_doubts(r);
    if (!ag->resolver_stop)
        sweep_open(r);
}

static void *resolver_main(void *arg)
{
    resolver r = {.ag = arg};
    while (!r.ag->resolver_stop) {
        sweep(&r);
        sleep_ms(r.ag->resolve_interval_ms, &r.ag->resolver_stop);
    }
    free(r.doubts);
    return NULL;
}

bool resolver_start(agent *ag, pthread_t *thread)
{
    ag->resolver_stop = 0;
    int rc = pthread_create(thread, NULL, resolver_main, ag);
    if (rc != 0) {
        log_error("cannot start the recovery sweep thread: %s", strerror(rc));
        return false;
    }
    return true;
}

void resolver_stop(agent *ag, pthread_t thread)
{
    ag->resolver_stop = 1;
    pthread_join(thread, NULL);
}
