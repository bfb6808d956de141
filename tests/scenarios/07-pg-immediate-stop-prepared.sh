#!/usr/bin/env bash
# 07-pg-immediate-stop-prepared - a participant PostgreSQL crashes (pg_ctl stop
# -m immediate) while the transaction's branches are prepared and the commit
# is decided but not delivered.
# How: the coordinator crash point after-decision-log leaves all 3 branches
# prepared with a durable commit decision; pg2 is stopped immediate; the
# coordinator restarts and delivers COMMIT: pg1 and pg3 commit, pg2 cannot
# (agent2 answers 503, the resolver retries with backoff). PostgreSQL keeps a
# prepared transaction across a crash (WAL / pg_twophase), so once pg2 is
# started again the branch is still there and gets committed.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 07-pg-immediate-stop-prepared 8040

step_cluster3 1

step 2 "with TXCOORD_CRASH_POINT=after-decision-log: 3-branch transfer, commit, the coordinator dies"
decided_in_doubt GID

step 3 "stop pg2 with pg_ctl -m immediate (a crash) while its branch is prepared"
cl stop-pg 2 --immediate
check "pg2 is down" not psql_at 2 "SELECT 1" 2>/dev/null

step 4 "restart the coordinator: pg1 and pg3 commit, pg2 cannot"
cl start coordinator
check "pg1 and pg3 committed: nothing prepared (within 30s)" wait_until 30 is_eq "0 0" prepared_list 1 3
expect_eq "pg1 and pg3 committed: marker rows" "$(markers_list "$GID" 1 3)" "1 1"
api GET "/v1/transactions?state=in-doubt"
check "the coordinator keeps $GID in doubt (pg2 unacknowledged)" grep -q "$GID" <<<"$API_BODY"
check "agent2 stays up while its database is down" component_alive agent2
check "no END record while pg2 is down" not dlog_has E "$GID"

step 5 "start pg2 again: its prepared branch survived the crash and gets committed"
cl start-pg 2
check "pg_prepared_xacts empty everywhere (within ${SCEN_WAIT_S}s)" wait_until "$SCEN_WAIT_S" no_prepared_anywhere
all_or_nothing "$GID" committed
check "END record of $GID written (within 30s)" wait_until 30 dlog_has E "$GID"
check "coordinator: $GID committed" wait_until 10 tx_state_is "$GID" committed
