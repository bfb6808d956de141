#!/usr/bin/env bash
# 04-coord-crash-before-end-record - the coordinator dies after every branch
# acknowledged COMMIT PREPARED, before the END record is written.
# Expected: every branch is committed already (nothing prepared, markers in
# all 3 databases); the decision log has 'C' and no 'E'. After a restart,
# replay finds 'C' without 'E', re-sends COMMIT once (each agent answers done:
# 42704), and writes the END record. Nothing is ever rolled back.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 04-coord-crash-before-end-record 7980

step_cluster3 1

step 2 "restart the coordinator with TXCOORD_CRASH_POINT=before-end-record"
restart_armed coordinator before-end-record

step 3 "3-branch transfer (interactive), then commit: the coordinator dies before 'E'"
begin3 GID
commit_crashes "$GID" coordinator before-end-record
check "decision log holds the commit record of $GID" dlog_has C "$GID"
check "decision log holds no END record of $GID" not dlog_has E "$GID"
expect_eq "branches prepared" "$(prepared_of "$GID")" 0
all_or_nothing "$GID" committed

step 4 "restart the coordinator without a crash point: the END record is written"
cl start coordinator
check "END record of $GID written after the restart (within ${SCEN_WAIT_S}s)" wait_until "$SCEN_WAIT_S" dlog_has E "$GID"
check "pg_prepared_xacts empty everywhere" no_prepared_anywhere
all_or_nothing "$GID" committed
api GET "/v1/transactions/$GID"
expect_eq "GET /v1/transactions/$GID outcome" "$(jget .outcome)" committed
api GET "/v1/transactions?state=in-doubt"
expect_eq "in-doubt list answered" "$API_STATUS" 200
check "in-doubt list does not name $GID" not grep -q "$GID" <<<"$API_BODY"
