#!/usr/bin/env bash
# 06-agent-crash-after-commit-prepared - agent pg2 dies after COMMIT PREPARED,
# before it answers.
# Expected: the decision was commit (logged), so the client hears 200
# committed (phase-2 failures never block the client); pg2's branch is in fact
# committed. The coordinator keeps the transaction in doubt and its resolver
# re-sends COMMIT; once agent2 is back it answers done (COMMIT PREPARED gives
# 42704: already finished), the END record is written, everything committed.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 06-agent-crash-after-commit-prepared 8020

step_cluster3 1

step 2 "restart agent2 with TXAGENT_CRASH_POINT=after-commit-prepared"
restart_armed agent2 after-commit-prepared

step 3 "3-branch transfer (interactive), then commit: agent2 dies after COMMIT PREPARED"
begin3 GID
commit_crashes "$GID" agent2 after-commit-prepared
expect_eq "commit answer (decision was commit)" "$API_STATUS $(jget .outcome)" "200 committed"
expect_eq "branches prepared (pg2's is committed, the others acknowledged)" "$(prepared_of "$GID")" 0
all_or_nothing "$GID" committed

step 4 "the coordinator still has $GID in doubt (pg2 never acknowledged)"
api GET "/v1/transactions?state=in-doubt"
check "in-doubt list names $GID" grep -q "$GID" <<<"$API_BODY"
check "no END record yet" not dlog_has E "$GID"

step 5 "restart agent2: the resolver's re-sent COMMIT is answered as done (42704)"
cl start agent2
check "END record of $GID written (within ${SCEN_WAIT_S}s)" wait_until "$SCEN_WAIT_S" dlog_has E "$GID"
check "agent2 log: COMMIT PREPARED found nothing (42704), counted as done" \
    grep -q "$GID.*42704" "$CDIR/agent2.log"
api GET "/v1/transactions?state=in-doubt"
expect_eq "in-doubt list answered" "$API_STATUS" 200
check "in-doubt list no longer names $GID" not grep -q "$GID" <<<"$API_BODY"
check "pg_prepared_xacts empty everywhere" no_prepared_anywhere
all_or_nothing "$GID" committed
