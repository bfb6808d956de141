#!/usr/bin/env bash
# 15-coord-decision-log-io-error - the disk fails the commit decision: the
# fdatasync of the 'C' record returns EIO (fault point wal-fdatasync:2=error, the
# first sync being the start's epoch record ('N'):
# the record was written, its sync reports an error, as a failing device does).
# Expected: the coordinator neither answers "committed" nor sends any COMMIT
# PREPARED; it poisons its log and stops, because whether the record reached
# the disk is unknown and only the log at restart can say (twopc.c, step 4).
# All 3 branches stay prepared while it is down. After a restart without the
# fault, the log decides: here the record's bytes were in the file (only the
# sync failed), so recovery commits every branch. Had the device lost them,
# recovery would find no 'C' and roll back: either way all or nothing, since no
# branch heard an outcome before the process stopped.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 15-coord-decision-log-io-error 8200

step_cluster3 1

step 2 "restart the coordinator with TXCOORD_CRASH_POINT=wal-fdatasync:2=error (every log sync fails after the start's epoch record)"
restart_armed coordinator wal-fdatasync:2=error

step 3 "3-branch transfer (interactive), then commit: the decision's fdatasync fails"
begin3 GID
commit "$GID"
expect_eq "commit answer lost (no HTTP answer, never \"committed\")" "$API_STATUS" 000
check "coordinator process is gone" wait_until 10 component_dead coordinator
check "coordinator log: the sync failed and poisoned the log" \
    grep -q "fdatasync failed: Input/output error (log poisoned)" "$CDIR/coordinator.log"
check "coordinator log: it stopped on the decision of $GID" \
    grep -q "FATAL gid=$GID decision log write failed" "$CDIR/coordinator.log"
expect_eq "branches prepared in pg1, pg2, pg3 (no COMMIT PREPARED sent)" "$(prepared_of "$GID")" 3
expect_eq "no marker row visible" "$(markers_present "$GID")" 0

step 4 "agents keep the branches while the coordinator is down"
check "still prepared everywhere after 3 s" holds_for 3 is_eq 3 prepared_of "$GID"

step 5 "restart the coordinator without the fault: the log decides (the record is in the file)"
cl start coordinator
check "decision log holds the commit record of $GID" dlog_has C "$GID"
check "pg_prepared_xacts empty everywhere (within ${SCEN_WAIT_S}s)" wait_until "$SCEN_WAIT_S" no_prepared_anywhere
all_or_nothing "$GID" committed
check "END record of $GID written after the restart" wait_until 10 dlog_has E "$GID"
api GET "/v1/outcomes/$GID"
expect_eq "GET /v1/outcomes/$GID" "$API_STATUS $(jget .outcome)" "200 committed"
