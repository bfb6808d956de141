/*
 * test_branch_fsm.c - unit tests of the agent's branch state machine table
 * (branch_fsm.c), through branch_fsm_transition: no I/O, no database.
 *
 * Invariants checked, for every (state, event) pair:
 *   - at most one row (the table is deterministic: the first match is the
 *     only match);
 *   - a branch that voted yes (prepared, uncertain, precommitted) reaches
 *     aborted only on the coordinator's rollback or when PostgreSQL shows it
 *     already rolled back (found_aborted); a precommitted one never on a
 *     rollback (it acknowledged PreCommit: only commit);
 *   - committed is final; aborted only re-runs its rollback when the sweep
 *     finds it prepared again (a PREPARE that landed late);
 *   - every state but the final ones has a way out;
 *   - the documented paths: 2PC yes and read-only, 3PC uncertain ->
 *     precommitted -> committed, the no-vote and timeout aborts.
 */
#include <check.h>
#include <stdio.h>

#include "branch.h"

static const branch_state all_states[] = {BS_UNKNOWN,   BS_ACTIVE,   BS_FAILED,
                                          BS_PREPARED,  BS_COMMITTED, BS_ABORTED,
                                          BS_UNCERTAIN, BS_PRECOMMITTED};

static bool step(branch_state from, branch_event ev, branch_state *to)
{
    return branch_fsm_transition(from, ev, to);
}

static branch_state must_step(branch_state from, branch_event ev)
{
    branch_state to = BS_UNKNOWN;
    ck_assert_msg(step(from, ev, &to), "no row from %s on event %d", branch_state_name(from),
                  (int)ev);
    return to;
}

START_TEST(documented_paths)
{
    /* 2PC, yes vote, commit */
    ck_assert_int_eq(must_step(BS_UNKNOWN, EV_BEGIN), BS_ACTIVE);
    ck_assert_int_eq(must_step(BS_ACTIVE, EV_PREPARE), BS_PREPARED);
    ck_assert_int_eq(must_step(BS_PREPARED, EV_COMMIT), BS_COMMITTED);
    ck_assert_int_eq(must_step(BS_PREPARED, EV_ROLLBACK), BS_ABORTED);
    /* read-only: committed locally at the vote */
    ck_assert_int_eq(must_step(BS_ACTIVE, EV_READ_ONLY), BS_COMMITTED);
    /* no vote, failure, idle timeout, shutdown */
    ck_assert_int_eq(must_step(BS_ACTIVE, EV_VOTE_NO), BS_ABORTED);
    ck_assert_int_eq(must_step(BS_ACTIVE, EV_FAIL), BS_FAILED);
    ck_assert_int_eq(must_step(BS_FAILED, EV_VOTE_NO), BS_ABORTED);
    ck_assert_int_eq(must_step(BS_ACTIVE, EV_TIMEOUT), BS_ABORTED);
    ck_assert_int_eq(must_step(BS_ACTIVE, EV_SHUTDOWN), BS_ABORTED);
    /* 3PC */
    ck_assert_int_eq(must_step(BS_PREPARED, EV_RECORD), BS_UNCERTAIN);
    ck_assert_int_eq(must_step(BS_UNCERTAIN, EV_PRECOMMIT), BS_PRECOMMITTED);
    ck_assert_int_eq(must_step(BS_PRECOMMITTED, EV_COMMIT), BS_COMMITTED);
    ck_assert_int_eq(must_step(BS_UNCERTAIN, EV_ROLLBACK), BS_ABORTED);
    /* recovery: a prepared branch found in pg_prepared_xacts, finished */
    ck_assert_int_eq(must_step(BS_UNKNOWN, EV_FOUND_PREPARED), BS_PREPARED);
    ck_assert_int_eq(must_step(BS_UNKNOWN, EV_COMMIT), BS_COMMITTED);
    ck_assert_int_eq(must_step(BS_UNKNOWN, EV_ROLLBACK), BS_ABORTED);
}
END_TEST

START_TEST(yes_votes_abort_only_when_told)
{
    const branch_state voted_yes[] = {BS_PREPARED, BS_UNCERTAIN, BS_PRECOMMITTED};
    for (size_t i = 0; i < sizeof(voted_yes) / sizeof(voted_yes[0]); i++) {
        for (int ev = 0; ev < EV__COUNT; ev++) {
            branch_state to;
            if (!step(voted_yes[i], (branch_event)ev, &to) || to != BS_ABORTED)
                continue;
            ck_assert_msg(ev == EV_ROLLBACK || ev == EV_FOUND_ABORTED,
                          "%s -> aborted on event %d: a yes vote aborted without the "
                          "coordinator's rollback",
                          branch_state_name(voted_yes[i]), ev);
        }
    }
    branch_state to;
    ck_assert_msg(!step(BS_PRECOMMITTED, EV_ROLLBACK, &to),
                  "a precommitted branch must not take a rollback");
    ck_assert_msg(!step(BS_PRECOMMITTED, EV_TIMEOUT, &to) && !step(BS_UNCERTAIN, EV_TIMEOUT, &to) &&
                      !step(BS_PREPARED, EV_TIMEOUT, &to),
                  "the idle timeout must never end a branch that voted yes");
    ck_assert_msg(!step(BS_PREPARED, EV_SHUTDOWN, &to) && !step(BS_UNCERTAIN, EV_SHUTDOWN, &to),
                  "a shutdown must leave a branch that voted yes prepared");
}
END_TEST

START_TEST(final_states)
{
    for (int ev = 0; ev < EV__COUNT; ev++) {
        branch_state to;
        ck_assert_msg(!step(BS_COMMITTED, (branch_event)ev, &to),
                      "committed is final, yet event %d leads on", ev);
        if (step(BS_ABORTED, (branch_event)ev, &to))
            ck_assert_msg(ev == EV_FOUND_PREPARED && to == BS_ABORTED,
                          "aborted leads on with event %d", ev);
    }
    for (size_t i = 0; i < sizeof(all_states) / sizeof(all_states[0]); i++) {
        branch_state s = all_states[i];
        if (s == BS_COMMITTED || s == BS_ABORTED)
            continue;
        bool way_out = false;
        for (int ev = 0; ev < EV__COUNT && !way_out; ev++) {
            branch_state to;
            way_out = step(s, (branch_event)ev, &to) && to != s;
        }
        ck_assert_msg(way_out, "%s has no way out", branch_state_name(s));
    }
}
END_TEST

START_TEST(one_row_per_pair)
{
    for (size_t i = 0; i < sizeof(all_states) / sizeof(all_states[0]); i++)
        for (int ev = 0; ev < EV__COUNT; ev++)
            ck_assert_msg(branch_fsm_rows_matching(all_states[i], (branch_event)ev) <= 1,
                          "%zu rows for %s on event %d: only the first is ever taken",
                          branch_fsm_rows_matching(all_states[i], (branch_event)ev),
                          branch_state_name(all_states[i]), ev);
}
END_TEST

START_TEST(names)
{
    for (size_t i = 0; i < sizeof(all_states) / sizeof(all_states[0]); i++) {
        const char *n = branch_state_name(all_states[i]);
        ck_assert_msg(n && *n && n[0] != '?', "state %d has no name", (int)all_states[i]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("branch_fsm");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, documented_paths);
    tcase_add_test(tc, yes_votes_abort_only_when_told);
    tcase_add_test(tc, final_states);
    tcase_add_test(tc, one_row_per_pair);
    tcase_add_test(tc, names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
