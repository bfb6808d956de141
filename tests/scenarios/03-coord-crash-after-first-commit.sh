#!/usr/bin/env bash
# 03-coord-crash-after-first-commit - the coordinator dies after the first of
# three COMMIT PREPARED was answered (phase 2 runs one branch at a time when
# this point is armed).
# Expected: the commit answer is lost; exactly one branch is committed (its
# marker visible) and two are prepared. After a restart, recovery re-sends
# COMMIT to every branch (the committed one answers "done": its agent knows
# it, or gets 42704), the other two commit, the END record is written.
# Agents sweep pg_prepared_xacts every second but ask only about branches
# prepared --resolve-min-age-ms (1 s) ago or more: the branches here are
# milliseconds old when the coordinator dies, so no sweep finishes them before
# the restart (a sweep landing between the decision and the crash would).
# Steps 5-6 hold that window open: the fault point pauses 5 s instead of
# crashing, agents sweep every 100 ms with a 10 s minimum age, and the two
# branches must stay prepared for the coordinator to finish.
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

step 5 "agents sweep every 100 ms, minimum age 10 s; coordinator pauses 5 s after the first COMMIT PREPARED"
bank3_reset
for i in 1 2 3; do
    cl stop "agent$i"
    cl start "agent$i" -- --resolve-interval-ms 100 --resolve-min-age-ms 10000
done
restart_armed coordinator after-first-commit=pause:5000

step 6 "commit a 3-branch transfer: while the coordinator pauses, no sweep finishes the 2 prepared branches"
begin3 GID2
commit "$GID2" >"$SCEN_DIR/commit2.out" 2>&1 &
COMMIT_PID=$!
on_exit "kill $COMMIT_PID 2>/dev/null"
check "coordinator log: paused after the first COMMIT PREPARED" \
    wait_until 10 grep -q "fault point after-first-commit reached: pausing" "$CDIR/coordinator.log"
check "2 branches stay prepared through the pause (sweeps every 100 ms leave them)" \
    holds_for 2 is_eq 2 prepared_of "$GID2"
check "the commit answer arrives after the pause" wait "$COMMIT_PID"
check "... and says committed" grep -q "POST /v1/transactions/$GID2/commit -> 200 .*committed" "$SCEN_DIR/commit2.out"
check "pg_prepared_xacts empty everywhere" wait_until 10 no_prepared_anywhere
all_or_nothing "$GID2" committed
check "no agent resolved $GID2 by its sweep" \
    not grep -q "$GID2.*coordinator outcome" "$CDIR/agent1.log" "$CDIR/agent2.log" "$CDIR/agent3.log"
