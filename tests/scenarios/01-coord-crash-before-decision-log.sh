#!/usr/bin/env bash
# 01-coord-crash-before-decision-log - the coordinator dies after every branch
# voted yes, before the commit decision is logged.
# Expected: the commit answer is lost, all 3 branches are prepared and no 'C'
# record exists. The agents do not roll back while the coordinator is down
# (unreachable = wait). After a restart the gid has no decision and an older
# epoch: /v1/outcomes says aborted (presumed abort), each agent's recovery
# sweep rolls its branch back, and nothing of the transfer remains. The client,
# sending its lost commit again, is told it aborted.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 01-coord-crash-before-decision-log 7920

step_cluster3 1

step 2 "restart the coordinator with TXCOORD_CRASH_POINT=before-decision-log"
restart_armed coordinator before-decision-log

step 3 "3-branch transfer (interactive), then commit: the coordinator dies"
begin3 GID
commit_crashes "$GID" coordinator before-decision-log
check "decision log holds no commit record of $GID" not dlog_has C "$GID"
expect_eq "branches prepared in pg1, pg2, pg3" "$(prepared_of "$GID")" 3

step 4 "agents keep the prepared branches while the coordinator is unreachable"
check "still prepared everywhere after 3 s (sweep runs every 1 s)" holds_for 3 is_eq 3 prepared_of "$GID"
for i in 1 2 3; do
    check "agent$i txagent_branches_in_doubt is 1 (coordinator unreachable)" \
        wait_until 10 is_eq 1 agent_metric "$i" txagent_branches_in_doubt
    check "agent$i txagent_branches_in_doubt_oldest_seconds grows past 4 (within 10 s)" \
        wait_until 10 agent_metric_ge "$i" txagent_branches_in_doubt_oldest_seconds 4
done

step 5 "restart the coordinator without a crash point: presumed abort, the agents roll back"
cl start coordinator
api GET "/v1/outcomes/$GID"
expect_eq "GET /v1/outcomes/$GID" "$API_STATUS $(jget .outcome)" "200 aborted"
check "pg_prepared_xacts empty everywhere (within ${SCEN_WAIT_S}s)" wait_until "$SCEN_WAIT_S" no_prepared_anywhere
all_or_nothing "$GID" aborted
for i in 1 2 3; do
    # PostgreSQL loses the branch before the agent logs and counts it: wait.
    check "agent$i log: its branch of $GID rolled back by the sweep" \
        wait_until 5 grep -q "$GID.*resolved prepared branch: aborted" "$CDIR/agent$i.log"
    check "agent$i txagent_sweep_resolved_total{outcome=\"aborted\"} = 1" \
        wait_until 5 is_eq 1 agent_metric "$i" 'txagent_sweep_resolved_total{outcome="aborted"}'
    check "agent$i txagent_branches_in_doubt back to 0 (next sweep)" \
        wait_until 5 is_eq 0 agent_metric "$i" txagent_branches_in_doubt
    check "agent$i txagent_branches_in_doubt_oldest_seconds back to 0" \
        wait_until 5 is_eq 0.000 agent_metric "$i" txagent_branches_in_doubt_oldest_seconds
done
check "decision log still holds no commit record of $GID" not dlog_has C "$GID"

step 6 "the client sends its lost commit again: it learns the abort"
api POST "/v1/transactions/$GID/commit"
expect_eq "POST /v1/transactions/$GID/commit" "$API_STATUS $(jget .outcome)" "409 aborted"
api POST "/v1/transactions/$GID/rollback"
expect_eq "POST /v1/transactions/$GID/rollback" "$API_STATUS $(jget .outcome)" "200 aborted"
