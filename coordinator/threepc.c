/*
 * threepc.c - the three-phase commit protocol for one transaction
 * (docs/PROTOCOL.md "Three-phase commit"), and the recovery of a 3PC
 * transaction whose pre-commit decision ('P') was logged without a commit
 * decision ('C').
 *
 * threepc_commit() runs with the transaction's op_mu held:
 *
 *  1. active -> preparing. From here statements get 409 wrong_state.
 *  2. CanCommit: PREPARE every branch in parallel with "protocol":"3pc",
 *     "peers" (every participant of the transaction with its agent URL as
 *     configured here), the three timeouts and the termination rule. A
 *     vote not in within cancommit_timeout_ms counts as no vote (one-shot
 *     form: the statements run inside this call, so it may take up to the
 *     transaction's timeout_ms when that is larger). After a yes vote an
 *     agent is uncertain and its uncertain_timeout_ms timer runs.
 *  3. Any branch not yes/read_only, or 3/4 of uncertain_timeout_ms or more
 *     passed since the earliest moment a yes voter's timer can have started
 *     (vote_timer_start_us: the call's send time plus the vote's
 *     timer_after_ms) (that voter's timer may
 *     fire before its PreCommit arrives, and it would abort on its own; the
 *     one-shot form's statements, run before the vote, do not count):
 *     preparing ->
 *     aborting, ROLLBACK to every branch (2PC step 3). No record: presumed
 *     abort.
 *  4. Every vote read_only: preparing -> committing with no record, as 2PC:
 *     nothing is prepared anywhere, there is nothing to pre-commit.
 *  5. Crash point 3pc-before-precommit-log (every vote in, all yes, no
 *     record yet); preparing -> precommitting: the 'P' record (the
 *     yes-voting branches) is forced first; if that fails the process stops
 *     (as 2PC step 4). Crash point 3pc-after-precommit-log after it.
 *  5a. The 'P' took too long to become durable (a slow disk, or waiting
 *     for a compaction), so that 3/4 of uncertain_timeout_ms has passed
 *     since that earliest timer start, as in step 3: no PreCommit is sent.
 *     precommitting -> aborting, the 'A' record forced first, then
 *     ROLLBACK to every branch, as 6a. Sending them would race the agents'
 *     own timers: one whose termination aborts (asking peers still
 *     uncertain) while another accepts its PreCommit is a mixed outcome
 *     with no crash at all.
 *  6. PreCommit: POST precommit to every prepared branch in parallel, each
 *     call bounded by precommit_timeout_ms (one at a time when the crash
 *     point 3pc-after-first-precommit is armed, crashing after the first
 *     answer was processed). An ack makes the branch precommitted. A 409
 *     wrong_state whose state is aborted (that agent's uncertain timer or
 *     termination protocol aborted its branch before the PreCommit came),
 *     or unknown, active or failed (it never will commit), is a refusal, as
 *     recovery (R2) counts them. Silent ones (no answer, other errors) are
 *     logged; such a branch may or may not have pre-committed. A 409 with
 *     state uncertain and "fenced" (a peer's termination read the branch
 *     uncertain first: the agent takes no PreCommit of ours after that) is
 *     silent too: that termination decides, and only recovery can tell how.
 *  6a. No ack and a refusal: precommitting -> aborting, the 'A' record
 *     forced first (stop on failure), then ROLLBACK to the others, 'E' once
 *     all acknowledged (it ends the 'P' and the 'A'); the client gets
 *     "aborted". This is threepc_recovery_rule's answer to the same states.
 *  6b. No ack and no refusal (every PreCommit unanswered: the agents or the
 *     way to them are down): nothing is known that decides. A silent branch
 *     whose PreCommit landed commits on its own timer; one whose PreCommit
 *     was lost aborts on its own. So nothing is decided here: t stays
 *     precommitting and goes to the resolver, whose recovery rounds (R1-R3
 *     below) ask the agents their states until they tell, the first one
 *     only after uncertain_timeout_ms + precommit_timeout_ms: by then every
 *     running agent has applied or refused a late PreCommit and run its own
 *     timers, so an "uncertain" answer cannot hide a PreCommit still on its
 *     way (which "all uncertain -> abort" would decide under); the client gets
 *     409 wrong_state naming precommitting, and a commit sent again, or a
 *     GET, gives the outcome once it is known.
 *     Acks and refusals both: a pre-committed branch may commit on its own,
 *     so commit, and the refused ones are logged as an atomicity violation
 *     (as recovery does).
 *  7. Crash point 3pc-before-commit-log; precommitting -> committing: the
 *     'C' record is forced (stop on failure, as 2PC).
 *  8. DoCommit: COMMIT to every prepared/precommitted branch through 2PC's
 *     delivery (unacknowledged ones go to the resolver; 'E' once all
 *     acknowledged). The client gets "committed".
 *
 * A crash (coordinator process dies) between steps means:
 *  - before 5 ('P' not durable; 3pc-before-precommit-log): no record; as
 *    2PC before its decision.
 *    Agents that voted yes stay uncertain until their timer: the
 *    termination protocol finds every peer uncertain (or one not voted)
 *    and aborts, the timeout rule aborts; once we are back, /v1/outcomes
 *    says "aborted" (earlier epoch, no 'C') to any agent that asks.
 *  - between 5 and 6 (3pc-after-precommit-log): 'P' without 'C', nobody
 *    pre-committed. Agents abort on their own (all uncertain). Restart:
 *    recovery (below) hears uncertain or aborted everywhere -> abort.
 *  - during 6 (3pc-after-first-precommit): some branches pre-committed.
 *    Agents: a pre-committed one times out and commits (timeout rule), or
 *    its termination protocol pre-commits the uncertain peers and commits
 *    them all. Restart: recovery hears precommitted/committed -> 'C',
 *    commit. Both sides commit (with the timeout rule an uncertain agent
 *    aborts on its own: 3PC's known weakness, logged by recovery).
 *  - between 6 and 7 (3pc-before-commit-log): as during 6, more of them
 *    pre-committed.
 *  - during 6a, before the 'A' is durable: 'P' alone, nothing told to
 *    anyone yet; restart: recovery decides from the agents' states, as it
 *    would have without the crash.
 *  - after 6a's 'A': restart finishes the abort (DLOG_PRECOMMIT_DECIDED_ABORT,
 *    ROLLBACK re-sent), never deciding again: a silent branch found
 *    pre-committed then must not turn the "aborted" the client may have
 *    heard into a commit.
 *  - after 6b: 'P' without 'C', as a restart would find it anyway.
 *  - during 7: the 'C' is durable or not; with it, restart is 2PC recovery
 *    (commit); without it, the recovery of 'P' (a branch is pre-committed
 *    -> commit). Either way commit.
 *  - after 7: as 2PC after its decision.
 *
 * Recovery of 'P' without 'C' (replayed as a transaction in
 * precommitting; the resolver drives it, never a client):
 *  R0. At a restart, the first round waits uncertain + precommit timeout
 *      (the transaction's, from its 'P'; main.c), as step 6b does: a
 *      PreCommit sent before the crash may still be becoming durable at an
 *      agent that reads "uncertain" meanwhile (scenario 11 part C).
 *  R1. GET /v1/branches/{gid} from every branch's agent, except branches
 *      already known read_only.
 *  R2. An answer with "read_only":true (the branch voted read_only: it
 *      committed locally, holds nothing prepared, and its "committed" says
 *      nothing about the transaction) makes the branch read_only: it is not
 *      counted below and gets no PreCommit, DoCommit nor rollback (the 'C'
 *      and branch_needs_outcome only cover prepared branches). A 'P' lists
 *      only yes votes, so this is a defence against a branch whose vote
 *      changed behind our back (e.g. a log written by another version).
 *      threepc_recovery_rule on the others: any committed or precommitted
 *      -> commit; else any aborted / active / failed / unknown -> abort;
 *      else every agent answered uncertain (or every one was read_only) ->
 *      abort; else (uncertain ones and silent ones) wait: a silent agent
 *      may be pre-committed; ask again with backoff (the "-> wait" line is
 *      logged the first time and then at most once a minute per gid). The
 *      outcome endpoint answers in_flight meanwhile.
 *  R3. The decision is taken holding op_mu (its other holders keep it
 *      briefly here) and only if t is still precommitting, so it never races an
 *      operator's heuristic abort: commit = precommitting -> committing
 *      ('C' forced, then the resolver delivers COMMIT); abort =
 *      precommitting -> aborting ('A' forced, then ROLLBACK to all, 'E'
 *      when all acknowledged so replay forgets the 'P'). A failed forced
 *      record stops the process, as in the live path.
 *
 * Known limit (3PC's, not ours): under a partition, or with the agents'
 * timeout rule, agents may decide differently from one another and from us.
 * Recovery then prefers commit when any branch is pre-committed and logs
 * every branch that aborted on its own as an atomicity violation.
 */
#include "threepc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "coord.h"
#include "coord_metrics.h"
#include "fault.h"
#include "log.h"
#include "resolver.h"
#include "twopc.h"
#include "txn_fsm.h"

/* The body fields of a 3PC PREPARE besides "protocol" and "statements".
 * Caller holds op_mu (branches are only added by its holder). New reference. */
static json_t *prepare_fields(txn *t, json_t *const *stmts)
{
    json_t *peers = json_array();
    for (size_t i = 0; i < t->nbranches; i++) {
        const branch *b = &t->branches[i];
        if (b->p && !branch_never_begun(t, i, stmts))
            json_array_append_new(peers, json_pack("{s:s, s:s}", "participant", b->participant,
                                                   "url", b->p->url));
    }
    const threepc_settings *s = &t->threepc;
    return json_pack("{s:o, s:I, s:I, s:I, s:s}", "peers", peers, "cancommit_timeout_ms",
                     (json_int_t)s->cancommit_timeout_ms, "precommit_timeout_ms",
                     (json_int_t)s->precommit_timeout_ms, "uncertain_timeout_ms",
                     (json_int_t)s->uncertain_timeout_ms, "termination",
                     termination_rule_name(s->termination));
}

static size_t count_prepared(txn *t)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nbranches; i++)
        if (branch_is_prepared(t->branches[i].state))
            n++;
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* Steps 3 and 5a: has 3/4 of uncertain_timeout_ms passed since the
 * earliest moment a yes voter's timer can have started (first_yes_us,
 * vote_timer_start_us: the call's send time plus what the agent says, not
 * when the vote came back, which a slow answer makes late), at now_us? That voter's timer
 * may then fire before its PreCommit arrives: it would abort on its own
 * (or its termination would, having asked peers still uncertain) while
 * others pre-commit. If so, reason says what came when (logged). */
static bool too_late_for_precommit(txn *t, int64_t first_yes_us, int64_t now_us_,
                                   const char *what, char *reason, size_t rsize)
{
    int64_t since_ms = first_yes_us > 0 ? (now_us_ - first_yes_us) / 1000 : 0;
    if (since_ms * 4 < t->threepc.uncertain_timeout_ms * 3)
        return false;
    snprintf(reason, rsize,
             "%s %lld ms after the first yes, too close to the agents' uncertain timeout "
             "(%lld ms): they may abort on their own",
             what, (long long)since_ms, (long long)t->threepc.uncertain_timeout_ms);
    txlog_warn(t->gid, NULL, "3pc: %s", reason);
    return true;
}

/* precommitting -> aborting, the 'A' record forced first (steps 5a, 6a and
 * R3). A failed append stops the process, as a failed 'C' does
 * (commit_decide): the record may or may not be durable, and the restart
 * decides. Caller holds op_mu. */
static void abort_after_precommit(txn *t, const char *reason)
{
    if (!txn_fsm_advance(t, EV_NO_PRECOMMIT, reason))
        die("gid=%s pre-commit abort record write failed: it may or may not be durable; "
            "stopping so that the log and the agents decide at restart",
            t->gid);
}

/* Step 6, one answer: acknowledged (200 saying precommitted, or committed),
 * refused by a branch that will never commit (409 wrong_state, state
 * aborted: its uncertain timer or its termination protocol ran before the
 * PreCommit came; or unknown, active, failed: as recovery's R2 counts them), or silent (anything else: no
 * answer, 5xx, ...). A branch that refuses because a peer's termination read
 * it uncertain (409, state uncertain, "fenced") counts as silent: that
 * termination decides, commit if it found a branch precommitted (ours,
 * whose ack may be lost), abort otherwise, and only the recovery rounds,
 * after the agents' timers, can tell which; the branch stays prepared
 * here, so a commit still sends it DoCommit. */
typedef enum { PC_ACKED, PC_REFUSED, PC_SILENT } precommit_answer;

static precommit_answer precommit_apply(txn *t, branch *b, const httpc_call *c)
{
    /* "committed": already committed there (by a termination that found a
     * peer precommitted) */
    if (agent_acked_state(c, "precommitted") || agent_acked_state(c, "committed")) {
        txn_set_branch_state(t, b, BR_PRECOMMITTED);
        txlog_debug(t->gid, b->participant, "precommit: acknowledged");
        return PC_ACKED;
    }
    char why[512];
    agent_describe_failure(c, why, sizeof(why));
    static const char *const never_commits[] = {"aborted", "unknown", "active", "failed"};
    const char *st = agent_wrong_state(c);
    json_t *err = c->status == 409 && c->response ? json_object_get(c->response, "error") : NULL;
    if (strcmp(st, "uncertain") == 0 && json_is_true(json_object_get(err, "fenced"))) {
        txlog_warn(t->gid, b->participant, "precommit refused: a peer's termination read the "
                   "branch uncertain first; that termination decides it");
        return PC_SILENT;
    }
    for (size_t i = 0; i < ARRAY_LEN(never_commits); i++) {
        if (strcmp(st, never_commits[i]) != 0)
            continue;
        txn_set_branch_state(t, b, i == 0 ? BR_ABORTED : BR_FAILED);
        txlog_warn(t->gid, b->participant, "precommit refused: the branch is %s there (%s)", st,
                   why);
        return PC_REFUSED;
    }
    txlog_warn(t->gid, b->participant, "precommit not acknowledged: %s", why);
    return PC_SILENT;
}

/* Step 6. Counts the acknowledged and the refused PreCommits. */
static void precommit_all(txn *t, bool sequential, size_t *acked, size_t *refused)
{
    size_t room = t->nbranches;
    httpc_call *calls = xcalloc(room ? room : 1, sizeof(*calls));
    branch **brs = xcalloc(room ? room : 1, sizeof(*brs));
    size_t n = 0;
    size_t count[3] = {0, 0, 0};
    for (size_t i = 0; i < room; i++) {
        branch *b = &t->branches[i];
        if (b->state != BR_PREPARED || !b->p) /* op_mu holder: the only writer */
            continue;
        agent_call_init(&calls[n], b->p, t->gid, "precommit", NULL,
                        (long)t->threepc.precommit_timeout_ms);
        brs[n++] = b;
    }
    if (n > 0 && fault_fails("3pc-precommit-lost")) {
        /* Tests: every PreCommit lost on the way (step 6b). */
        for (size_t i = 0; i < n; i++) {
            calls[i].status = 0;
            snprintf(calls[i].error, sizeof(calls[i].error), "%s",
                     "fault injection: PreCommit not sent");
            count[precommit_apply(t, brs[i], &calls[i])]++;
        }
    } else if (sequential) {
        for (size_t i = 0; i < n; i++) {
            (void)httpc_request(&calls[i]); /* status read by precommit_apply */
            count[precommit_apply(t, brs[i], &calls[i])]++;
            if (i == 0)
                fault_point("3pc-after-first-precommit");
        }
    } else if (n > 0) {
        (void)httpc_perform(calls, n); /* per-call status read below */
        for (size_t i = 0; i < n; i++)
            count[precommit_apply(t, brs[i], &calls[i])]++;
    }
    for (size_t i = 0; i < n; i++)
        agent_call_free(&calls[i]);
    free(calls);
    free(brs);
    *acked = count[PC_ACKED];
    *refused = count[PC_REFUSED];
}

void threepc_commit(txn *t, json_t *const *stmts)
{
    /* 1 */
    if (!commit_begin(t))
        return;
    /* 2 */
    int64_t t0 = now_us(), first_yes = 0;
    json_t *fields = prepare_fields(t, stmts);
    char reason[1024];
    bool all_yes = commit_prepare_all(t, stmts, fields, (long)t->threepc.cancommit_timeout_ms,
                                      reason, sizeof(reason), &first_yes);
    json_decref(fields);
    int64_t t1 = now_us();
    size_t nprepared = count_prepared(t);
    if (all_yes && nprepared > 0 &&
        too_late_for_precommit(t, first_yes, t1, "the last vote came", reason, sizeof(reason)))
        all_yes = false;
    if (!all_yes) {
        /* 3 */
        if (txn_fsm_advance(t, EV_VOTE_NO, reason))
            commit_deliver_outcome(t, false);
        return;
    }
    if (nprepared == 0) {
        /* 4 */
        commit_decide(t, EV_VOTES_YES, reason);
        commit_deliver_outcome(t, false);
        return;
    }
    /* 5 */
    fault_point("3pc-before-precommit-log");
    if (!txn_fsm_advance(t, EV_VOTES_YES_3PC, reason))
        die("gid=%s pre-commit record write failed: it may or may not be durable; stopping so "
            "that the log and the agents decide at restart",
            t->gid);
    int64_t t2 = now_us();
    /* 5a */
    if (too_late_for_precommit(t, first_yes, t2, "the pre-commit record was durable", reason,
                               sizeof(reason))) {
        abort_after_precommit(t, reason);
        commit_deliver_outcome(t, false);
        return;
    }
    /* 6 */
    size_t acked, refused;
    precommit_all(t, g_coord.sequential_precommit, &acked, &refused);
    int64_t t3 = now_us();
    char why[160];
    snprintf(why, sizeof(why), "%zu of %zu pre-commits acknowledged, %zu refused (aborted there)",
             acked, nprepared, refused);
    if (acked == 0 && refused > 0) {
        /* 6a: nobody pre-committed and a branch aborted on its own: the
         * transaction can only abort (recovery's rule, threepc_recovery_rule). */
        abort_after_precommit(t, why);
        commit_deliver_outcome(t, false);
        return;
    }
    if (acked == 0) {
        /* 6b: every PreCommit unanswered: undecidable here. The first
         * recovery round waits until every agent's own timers have run (a
         * PreCommit we gave up on may still be applied at a slow agent, and
         * an "uncertain" read before that would decide abort under it). */
        int64_t settle_ms = t->threepc.uncertain_timeout_ms + t->threepc.precommit_timeout_ms;
        txlog_warn(t->gid, NULL, "3pc: %s: not deciding; the resolver asks the agents their "
                   "states in %lld ms, once their own timers have run (recovery rounds)",
                   why, (long long)settle_ms);
        resolver_submit(t, settle_ms);
        return;
    }
    if (refused > 0) {
        /* Those branches aborted on their own and get no DoCommit (they are
         * aborted here): counted as the mixed outcomes they are, as
         * delivery counts a 409 aborted to a COMMIT. */
        counter_add(&g_metrics.mixed_outcomes, refused);
        txlog_error(t->gid, NULL,
                    "3pc: %s: a branch is pre-committed and may commit on its own, so the "
                    "decision is commit; atomicity is violated for the refused ones",
                    why);
    }
    /* 7 */
    fault_point("3pc-before-commit-log");
    commit_decide(t, EV_PRECOMMITTED, why);
    int64_t t4 = now_us();
    /* 8 */
    commit_deliver_outcome(t, g_coord.sequential_phase2);
    txlog_debug(t->gid, NULL,
                "timing: cancommit %lld us, pre-commit decision %lld us, precommit %lld us, "
                "decision %lld us, docommit %lld us",
                (long long)(t1 - t0), (long long)(t2 - t1), (long long)(t3 - t2),
                (long long)(t4 - t3), (long long)(now_us() - t4));
}

/* ---- recovery of 'P' without 'C' ---------------------------------------- */

threepc_recovery_decision threepc_recovery_rule(size_t n_precommitted, size_t n_refused,
                                                size_t n_uncertain, size_t n_unreachable)
{
    (void)n_uncertain;
    if (n_precommitted > 0)
        return RECOVERY_COMMIT; /* all voted yes ('P'), and a branch may commit on its own */
    if (n_refused > 0)
        return RECOVERY_ABORT; /* that branch will never commit */
    if (n_unreachable == 0)
        return RECOVERY_ABORT; /* all uncertain: nobody can have committed */
    return RECOVERY_WAIT;      /* a silent one may be pre-committed */
}

size_t threepc_recovery_build(txn *t, httpc_call *calls, size_t *bidx, size_t room)
{
    size_t n = 0;
    /* A fencing read, as the peers' terminations make: an uncertain branch
     * durably refuses our PreCommit from then on. The settle wait before
     * the first round (step 6b) does not bound a PreCommit still queued at
     * a slow agent behind the branch's lock; without the fence it could
     * land after an "all uncertain: abort" here and commit on its timer.
     * We send no PreCommit once recovery runs, so the fence costs nothing. */
    char path[GID_MAX_LEN + 32];
    snprintf(path, sizeof(path), "/v1/branches/%s?fence=1", t->gid);
    for (size_t i = 0; i < t->nbranches && n < room; i++) {
        const branch *b = &t->branches[i];
        pthread_mutex_lock(&t->mu);
        bool read_only = b->state == BR_READ_ONLY;
        pthread_mutex_unlock(&t->mu);
        if (read_only)
            continue; /* R2: known from an earlier round; never asked again */
        if (!b->p) {
            unsigned skipped;
            if (txn_log_due(t, &t->branches[i].retry_log, &skipped))
                txlog_error(t->gid, b->participant,
                            "3pc recovery: cannot ask the branch state: participant is not "
                            "configured (--participant)");
            continue;
        }
        agent_call_init_get(&calls[n], b->p, path, (long)g_coord.agent_timeout_ms);
        bidx[n++] = i;
    }
    return n;
}

bool threepc_recovery_apply(txn *t, httpc_call *calls, const size_t *bidx, size_t n)
{
    size_t npre = 0, nrefused = 0, nuncertain = 0, nsilent = 0;
    char summary[512] = "", violators[256] = "";
    size_t slen = 0, vlen = 0;
    for (size_t i = 0; i < n; i++) {
        branch *b = &t->branches[bidx[i]];
        const httpc_call *c = &calls[i];
        const char *st = c->status == 200
                             ? json_string_value(json_object_get(c->response, "state"))
                             : NULL;
        /* An answer about another branch (the participant's URL now leads to
         * another participant's agent): it says nothing of ours, which that
         * read did not fence either. Silent, as the peers' terminations
         * count one (termination.c). */
        const char *bgid = st ? json_string_value(json_object_get(c->response, "branch_gid"))
                              : NULL;
        if (st && (!bgid || strcmp(bgid, b->branch_gid) != 0)) {
            txlog_error(t->gid, b->participant,
                        "3pc recovery: the agent at %s answered about branch %s, not %s: "
                        "counted silent (is --participant %s's URL right?)",
                        b->p ? b->p->url : "?", bgid ? bgid : "(none)", b->branch_gid,
                        b->participant);
            txn_branch_attempt(t, b, false, b->state, false, "answered about another branch");
            nsilent++;
            st = "wrong_agent";
        } else if (!st) {
            char why[512];
            agent_describe_failure(c, why, sizeof(why));
            txn_branch_attempt(t, b, false, b->state, false, why);
            nsilent++;
            st = "unreachable";
        } else if (json_is_true(json_object_get(c->response, "read_only"))) {
            /* R2: nothing prepared there; not counted, nothing sent. */
            txn_branch_attempt(t, b, true, BR_READ_ONLY, false, NULL);
            st = "read_only";
        } else if (strcmp(st, "committed") == 0 || strcmp(st, "precommitted") == 0) {
            txn_branch_attempt(t, b, true, st[0] == 'c' ? BR_COMMITTED : BR_PRECOMMITTED, false,
                               NULL);
            npre++;
        } else if (strcmp(st, "uncertain") == 0 || strcmp(st, "prepared") == 0) {
            txn_branch_attempt(t, b, true, BR_PREPARED, false, NULL);
            nuncertain++;
        } else {
            /* aborted, active, failed, unknown: it has not committed and will
             * not. Failed, not prepared, as step 6 records a refusal: a
             * commit decision sends it no COMMIT (an unknown branch would
             * answer 42704 as "committed", an active or failed one 409 for
             * ever), an abort still sends its ROLLBACK. */
            txn_branch_attempt(t, b, true, strcmp(st, "aborted") == 0 ? BR_ABORTED : BR_FAILED,
                               false, NULL);
            nrefused++;
            if (vlen < sizeof(violators))
                vlen += (size_t)snprintf(violators + vlen, sizeof(violators) - vlen, "%s%s=%s",
                                         vlen ? " " : "", b->participant, st);
        }
        if (slen < sizeof(summary))
            slen += (size_t)snprintf(summary + slen, sizeof(summary) - slen, "%s%s=%s",
                                     slen ? " " : "", b->participant, st);
    }
    for (size_t i = 0; i < t->nbranches; i++) {
        if (t->branches[i].p)
            continue;
        nsilent++; /* not configured here (logged by the build step): cannot be asked */
        if (slen < sizeof(summary))
            slen += (size_t)snprintf(summary + slen, sizeof(summary) - slen, "%s%s=unconfigured",
                                     slen ? " " : "", t->branches[i].participant);
    }
    threepc_recovery_decision d = threepc_recovery_rule(npre, nrefused, nuncertain, nsilent);
    if (d == RECOVERY_WAIT) {
        unsigned skipped;
        if (txn_log_due(t, &t->wait_log, &skipped)) {
            char more[64] = "";
            if (skipped > 0)
                snprintf(more, sizeof(more), "; %u rounds not logged since the last line",
                         skipped);
            txlog_info(t->gid, NULL,
                       "3pc recovery: %s -> wait (a silent agent may be pre-committed%s)",
                       summary, more);
        }
        return txn_state_get(t) != TXN_PRECOMMITTING;
    }
    /* Its other holders (an operator's resolve, a client's commit/rollback
     * finding t decided) hold it briefly. */
    pthread_mutex_lock(&t->op_mu);
    if (txn_state_get(t) == TXN_PRECOMMITTING) {
        char reason[640];
        snprintf(reason, sizeof(reason), "3pc recovery: %s", summary);
        if (d == RECOVERY_COMMIT) {
            if (nrefused > 0) {
                txlog_error(t->gid, NULL,
                            "3pc recovery: a branch is pre-committed but %s: committing, "
                            "atomicity is violated for those",
                            violators);
                counter_add(&g_metrics.mixed_outcomes, nrefused);
            }
            commit_decide(t, EV_PRECOMMITTED, reason);
        } else {
            abort_after_precommit(t, reason);
        }
    }
    pthread_mutex_unlock(&t->op_mu);
    return txn_state_get(t) != TXN_PRECOMMITTING;
}
