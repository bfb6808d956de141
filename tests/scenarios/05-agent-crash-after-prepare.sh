#!/usr/bin/env bash
# 05-agent-crash-after-prepare - agent pg2 dies after PREPARE TRANSACTION, before
# its yes vote is sent.
# Expected: the coordinator sees no vote from pg2 (transport failure) and
# aborts: 409 outcome aborted, pg1 and pg3 rolled back at once. pg2's branch
# stays prepared in PostgreSQL while its agent is down. The restarted agent's
# recovery sweep finds it, asks /v1/outcomes (aborted) and rolls it back (or the
# coordinator's resolver re-sends ROLLBACK first): nothing of the transfer
# remains, and the coordinator's transaction ends aborted.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 05-agent-crash-after-prepare 8000

step_cluster3 1

step 2 "restart agent2 with TXAGENT_CRASH_POINT=after-prepare"
restart_armed agent2 after-prepare

step 3 "3-branch transfer (interactive), then commit: agent2 dies after PREPARE"
begin3 GID
commit_crashes "$GID" agent2 after-prepare
expect_eq "commit answer" "$API_STATUS $(jget .outcome)" "409 aborted"
echo "    abort reason: $(jget .reason)"
check "coordinator process still running" component_alive coordinator
expect_eq "pg2 holds the prepared branch txc:$GID:pg2" "$(prepared_at 2 "$GID")" 1
check "pg1 and pg3 rolled back (nothing prepared)" wait_until 10 is_eq "0 0" prepared_list 1 3
api GET "/v1/outcomes/$GID"
expect_eq "GET /v1/outcomes/$GID (what the agent will hear)" "$API_STATUS $(jget .outcome)" "200 aborted"

step 4 "while agent2 is down its branch stays prepared (PostgreSQL keeps it)"
check "pg2 branch still prepared after 2 s" holds_for 2 is_eq 1 prepared_at 2 "$GID"

step 5 "restart agent2 without a crash point: the branch is rolled back"
cl start agent2
check "pg_prepared_xacts empty everywhere (within ${SCEN_WAIT_S}s)" wait_until "$SCEN_WAIT_S" no_prepared_anywhere
all_or_nothing "$GID" aborted
check "agent2 log names $GID after the restart (sweep or re-sent rollback)" \
    grep -q "$GID.*\(aborted\|rollback\|ROLLBACK\)" "$CDIR/agent2.log"
api GET "/v1/transactions/$GID"
expect_eq "GET /v1/transactions/$GID outcome" "$(jget .outcome)" aborted
check "the coordinator finishes its rollback bookkeeping: state aborted (within 30s)" \
    wait_until 30 tx_state_is "$GID" aborted
