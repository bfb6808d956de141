#!/usr/bin/env bash
# 08-coord-down-locks-held - the coordinator is down for a while after the
# commit decision: 2PC blocks, honestly.
# Expected: for as long as the coordinator is down, every branch stays
# prepared and keeps its row locks (SELECT ... FOR UPDATE NOWAIT on the
# transferred rows fails with 55P03 lock_not_available), the agents' sweeps do
# not guess an outcome, and new transactions cannot start (connection
# refused). After the restart the branches commit and the locks are released.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 08-coord-down-locks-held 8060
DOWN_S=6

nowait_all() { # prints the FOR UPDATE NOWAIT result on account i of pg i, i = 1..3
    echo "$(pg_sqlstate_at 1 "SELECT id FROM accounts WHERE id = 1 FOR UPDATE NOWAIT")" \
        "$(pg_sqlstate_at 2 "SELECT id FROM accounts WHERE id = 2 FOR UPDATE NOWAIT")" \
        "$(pg_sqlstate_at 3 "SELECT id FROM accounts WHERE id = 3 FOR UPDATE NOWAIT")"
}

step_cluster3 1

step 2 "with TXCOORD_CRASH_POINT=after-decision-log: 3-branch transfer, commit, the coordinator dies"
decided_in_doubt GID

step 3 "coordinator down for ${DOWN_S}s: branches stay prepared and hold their locks"
check "prepared everywhere for ${DOWN_S}s (agents sweep every 1 s)" holds_for "$DOWN_S" is_eq 3 prepared_of "$GID"
expect_eq "SELECT ... FOR UPDATE NOWAIT on accounts 1, 2, 3 (pg1, pg2, pg3)" "$(nowait_all)" "55P03 55P03 55P03"
check "a plain read is not blocked and sees the old balances" is_eq "1000 1000 1000" balances
for i in 1 2 3; do check "agent$i still up" component_alive "agent$i"; done
for i in 1 2 3; do
    check "agent$i txagent_branches_in_doubt is 1" \
        wait_until 10 is_eq 1 agent_metric "$i" txagent_branches_in_doubt
    expect_eq "agent$i txagent_branches_waiting{state=\"prepared\"}" \
        "$(agent_metric "$i" 'txagent_branches_waiting{state="prepared"}')" 1
    check "agent$i txagent_branches_in_doubt_oldest_seconds grows past $DOWN_S (within 10 s)" \
        wait_until 10 agent_metric_ge "$i" txagent_branches_in_doubt_oldest_seconds "$DOWN_S"
done
api POST /v1/transactions '{"protocol":"2pc"}'
expect_eq "a new transaction cannot begin (no coordinator)" "$API_STATUS" 000

step 4 "restart the coordinator: the branches commit and the locks go away"
cl start coordinator
check "pg_prepared_xacts empty everywhere (within ${SCEN_WAIT_S}s)" wait_until "$SCEN_WAIT_S" no_prepared_anywhere
all_or_nothing "$GID" committed
expect_eq "SELECT ... FOR UPDATE NOWAIT on accounts 1, 2, 3 (pg1, pg2, pg3)" "$(nowait_all)" "ok ok ok"
for i in 1 2 3; do
    check "agent$i txagent_branches_waiting{state=\"prepared\"} back to 0" \
        wait_until 5 is_eq 0 agent_metric "$i" 'txagent_branches_waiting{state="prepared"}'
done
