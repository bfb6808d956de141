#!/usr/bin/env bash
# 03-coord-crash-after-first-commit - the coordinator dies after the first of
# three COMMIT PREPARED was answered (phase 2 runs one branch at a time when
# this point is armed).
# Expected: the commit answer is lost; exactly one branch is committed (its
# marker visible) and two are prepared. After a restart, recovery re-sends
# COMMIT to every branch (the committed one answers "done": its agent knows
# it, or gets 42704), the other two commit, the END record is written.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 03-coord-crash-after-first-commit 7960

step_cluster3 1

step 2 "restart the coordinator with TXCOORD_CRASH_POINT=after-first-commit"
restart_armed coordinator after-first-commit

step 3 "3-branch transfer (interactive), then commit: the coordinator dies mid phase 2"
begin3 GID
commit_crashes "$GID" coordinator after-first-commit
check "decision log holds the commit record of $GID" dlog_has C "$GID"
expect_eq "branches still prepared" "$(prepared_of "$GID")" 2
expect_eq "databases where the branch is committed (marker visible)" "$(markers_present "$GID")" 1

step 4 "restart the coordinator without a crash point: recovery commits the other two"
cl start coordinator
check "pg_prepared_xacts empty everywhere (within ${SCEN_WAIT_S}s)" wait_until "$SCEN_WAIT_S" no_prepared_anywhere
all_or_nothing "$GID" committed
check "END record of $GID written after the restart" wait_until 10 dlog_has E "$GID"
check "an agent log: the re-sent COMMIT of the committed branch counted as done" \
    grep -q "$GID.*\(already committed\|42704\)" "$CDIR/agent1.log" "$CDIR/agent2.log" "$CDIR/agent3.log"
api GET "/v1/transactions/$GID"
expect_eq "GET /v1/transactions/$GID outcome" "$(jget .outcome)" committed
