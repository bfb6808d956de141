#!/usr/bin/env bash
# 18-heuristic-commit-branch-back - an operator's heuristic commit gives up a
# participant that was lost, and the participant comes back later with its
# branch still prepared, after the coordinator forgot the transaction.
# Expected: the decision is commit and the given-up branch is that
# transaction's own branch, so the agent's sweep commits it: the outcome
# endpoint never says a gid ended by a heuristic commit was acknowledged by
# every participant, also after a coordinator restart (the 'H' commit is
# replayed). Before, the sweep heard "acknowledged" once the coordinator had
# forgotten the transaction and left the branch in doubt, holding its locks.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 18-heuristic-commit-branch-back 8260

step_cluster3 1

step 2 "commit decided and logged, the coordinator dies before any COMMIT (crash point after-decision-log)"
decided_in_doubt GID

step 3 "participant pg3 is lost: agent3 killed, its branch stays prepared"
kill_component agent3
expect_eq "pg3 holds its branch prepared" "$(prepared_at 3 "$GID")" 1

step 4 "restart the coordinator: recovery commits pg1 and pg2; pg3 does not answer"
cl start coordinator
check "pg1 and pg2 committed (within ${SCEN_WAIT_S}s)" \
    wait_until "$SCEN_WAIT_S" is_eq 0 prepared_at 1 "$GID"
check "pg2 committed" wait_until "$SCEN_WAIT_S" is_eq 0 prepared_at 2 "$GID"
api GET "/v1/transactions/$GID"
expect_eq "the transaction is still committing (pg3 unacknowledged)" "$(jget .state)" committing

step 5 "the operator gives pg3 up: heuristic commit"
api POST "/v1/transactions/$GID/resolve" '{"outcome":"commit"}'
expect_eq "resolve answer" "$API_STATUS $(jget .outcome) $(jget .recorded)" "200 committed true"
check "decision log holds the 'H' record of $GID" dlog_has H "$GID"
check "the transaction ends: END record (within ${SCEN_WAIT_S}s)" \
    wait_until "$SCEN_WAIT_S" dlog_has E "$GID"

step 6 "restart the coordinator: it forgets the transaction (only its log remains)"
cl stop coordinator
cl start coordinator
api GET "/v1/outcomes/$GID?participant=pg3"
expect_eq "outcome for pg3" "$API_STATUS $(jget .outcome) $(jget .acknowledged)" \
    "200 committed false"
api GET "/v1/outcomes/$GID?participant=pg1"
expect_eq "outcome for pg1 (the 'H' ended the commit: none reads acknowledged)" \
    "$API_STATUS $(jget .outcome) $(jget .acknowledged)" "200 committed false"

step 7 "pg3 comes back: its sweep commits the branch"
cl start agent3
check "pg_prepared_xacts empty everywhere (within ${SCEN_WAIT_S}s)" \
    wait_until "$SCEN_WAIT_S" no_prepared_anywhere
all_or_nothing "$GID" committed
check "agent3 counts it resolved committed" \
    wait_until 10 agent_metric_ge 3 'txagent_sweep_resolved_total{outcome="committed"}' 1
