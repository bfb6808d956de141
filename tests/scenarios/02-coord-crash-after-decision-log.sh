#!/usr/bin/env bash
# 02-coord-crash-after-decision-log - the coordinator dies right after the
# commit decision is durable, before any COMMIT PREPARED is sent.
# Expected: the commit answer is lost, all 3 branches stay prepared, the 'C'
# record is in decisions.log and no 'E'; the agents' sweeps cannot learn the
# outcome and leave the branches alone; after a restart (no crash point)
# recovery commits every branch and writes the END record, and the client's
# commit, sent again, answers committed.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 02-coord-crash-after-decision-log 7940

step_cluster3 1

step 2 "with TXCOORD_CRASH_POINT=after-decision-log: 3-branch transfer, commit, the coordinator dies"
decided_in_doubt GID
check "decision log holds no END record of $GID" not dlog_has E "$GID"
expect_eq "no marker row visible yet" "$(markers_present "$GID")" 0

step 3 "agents keep the branches while the coordinator is down (their sweep cannot learn the outcome)"
check "still prepared everywhere after 3 s" holds_for 3 is_eq 3 prepared_of "$GID"

step 4 "restart the coordinator without a crash point: recovery commits"
cl start coordinator
check "pg_prepared_xacts empty everywhere (within ${SCEN_WAIT_S}s)" wait_until "$SCEN_WAIT_S" no_prepared_anywhere
all_or_nothing "$GID" committed
check "END record of $GID written after the restart" wait_until 10 dlog_has E "$GID"
api GET "/v1/transactions/$GID"
expect_eq "GET /v1/transactions/$GID outcome" "$(jget .outcome)" committed
api POST "/v1/transactions/$GID/commit"
expect_eq "the client's lost commit, sent again" "$API_STATUS $(jget .outcome)" "200 committed"
