#!/usr/bin/env bash
# 16-token-auth - a cluster whose processes share a token (--token-file on
# txcoord and every txagent; common/auth.h).
# Expected: coordinator and agents answer 401 unauthorized (JSON body,
# WWW-Authenticate: Bearer) to a call without the token or with a wrong one,
# before running anything; GET /healthz stays open for probes. With the token
# a 3-branch transfer commits, so the coordinator's calls to the agents carry
# it. A coordinator killed before its decision leaves 3 prepared branches;
# after its restart the agents' sweeps ask /v1/outcomes and roll them back,
# so the agents' calls to the coordinator carry it too. In a 3PC commit cut
# after pg1's PreCommit, pg2 and pg3 ask their peers and commit, so the
# agents' calls to each other carry it as well. Last, an agent with
# another token: the coordinator's statement there gets 401, and the client
# (whose own token was fine) gets 502 agent_error with agent_status 401.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 16-token-auth 8220

TOKEN_FILE="$SCEN_DIR/token"
(umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE")
printf 'not-the-cluster-token-0000\n' >"$SCEN_DIR/wrong-token"
export TXCOORD_ARGS="--token-file $TOKEN_FILE" TXAGENT_ARGS="--token-file $TOKEN_FILE"

step_cluster3 1

step 2 "calls without the token, or with a wrong one, get 401 before anything runs"
API_TOKEN_FILE="" api GET /v1/participants
expect_eq "coordinator, no token" "$API_STATUS $(jget .error.code)" "401 unauthorized"
API_TOKEN_FILE="$SCEN_DIR/wrong-token" api POST /v1/transactions '{"protocol":"2pc"}'
expect_eq "coordinator, wrong token" "$API_STATUS $(jget .error.code)" "401 unauthorized"
API_TOKEN_FILE="" api GET /metrics
expect_eq "coordinator /metrics, no token" "$API_STATUS" 401
hdrs="$(curl -s -D - -o /dev/null "$TXCOORD_URL/v1/transactions")"
check "401 carries WWW-Authenticate: Bearer" grep -qi '^WWW-Authenticate: Bearer' <<<"$hdrs"
agent1_status="$(curl -s -o /dev/null -w '%{http_code}' -X POST "$AGENT1_URL/v1/branches/x-1-1/statements" \
    -d '{"participant":"pg1","sql":"UPDATE accounts SET balance = 0"}')"
expect_eq "agent1 statement, no token" "$agent1_status" 401
expect_eq "balance of account 1 untouched" "$(balance_at 1 1)" 1000
expect_eq "coordinator /healthz, no token" "$(curl -s -o /dev/null -w '%{http_code}' "$TXCOORD_URL/healthz")" 200
expect_eq "agent1 /healthz, no token" "$(curl -s -o /dev/null -w '%{http_code}' "$AGENT1_URL/healthz")" 200
metric() { API_TOKEN_FILE="$TOKEN_FILE" metric_at "$@"; } # read with the token
expect_eq "txcoord_http_unauthorized_total (4 refused above)" \
    "$(metric "$TXCOORD_URL" txcoord_http_unauthorized_total)" 4
expect_eq "txagent_http_unauthorized_total on agent1" "$(metric "$AGENT1_URL" txagent_http_unauthorized_total)" 1

step 3 "with the token: a 3-branch transfer commits (coordinator -> agents carry it)"
export API_TOKEN_FILE="$TOKEN_FILE"
begin3 G1
commit "$G1"
expect_eq "commit of $G1" "$API_STATUS $(jget .outcome)" "200 committed"
all_or_nothing "$G1" committed
expect_eq "txctl with TXCOORD_TOKEN_FILE" \
    "$(TXCOORD_URL="$TXCOORD_URL" TXCOORD_TOKEN_FILE="$TOKEN_FILE" "$TXCOORD_BUILD_DIR/coordinator/txctl" outcome "$G1" | jq -r .outcome)" committed
check "txctl without a token is refused (exit 1)" \
    not env TXCOORD_URL="$TXCOORD_URL" TXCOORD_TOKEN_FILE= "$TXCOORD_BUILD_DIR/coordinator/txctl" outcome "$G1"

step 4 "coordinator killed before its decision; after its restart the agents' sweeps (agents -> coordinator) roll back"
bank3_reset
restart_armed coordinator before-decision-log
begin3 G2
commit_crashes "$G2" coordinator before-decision-log
expect_eq "branches prepared in pg1, pg2, pg3" "$(prepared_of "$G2")" 3
cl start coordinator
check "pg_prepared_xacts empty everywhere (within ${SCEN_WAIT_S}s)" wait_until "$SCEN_WAIT_S" no_prepared_anywhere
all_or_nothing "$G2" aborted
for i in 1 2 3; do
    check "agent$i log: its branch of $G2 rolled back by the sweep" \
        wait_until 5 grep -q "$G2.*resolved prepared branch: aborted" "$CDIR/agent$i.log"
done
check "no 401 in the agents' or coordinator's logs" \
    not grep -q ' 401\b' "$CDIR/coordinator.log" "$CDIR/agent1.log" "$CDIR/agent2.log" "$CDIR/agent3.log"

step 5 "accounts reset; the coordinator started again for a 3PC run"
bank3_reset
cl start coordinator
UNCERTAIN_MS=3000 PRECOMMIT_MS=3000
crash_3pc 6 3pc-after-first-precommit protocol G3
expect_eq "agents' states (pg1 pg2 pg3)" "$(agent_states "$G3")" "precommitted uncertain uncertain"
# The termination protocol settles it while the coordinator is down: the
# agents' calls to each other carry the token.
settled_alone "$G3" 25
all_or_nothing "$G3" committed
# Whichever agent's timer fires first runs the termination: it asks its peers
# and sends them PreCommit/Commit; each such call answered is a peer call that
# carried the token.
peer_calls_done() { grep -h "gid=$G3 .*3pc termination: .* sent to pg[1-3]: done" \
    "$CDIR/agent1.log" "$CDIR/agent2.log" "$CDIR/agent3.log" | grep -q .; }
check "a termination's calls to its peers were answered" peer_calls_done
check "still no 401 anywhere" \
    not grep -q ' 401\b' "$CDIR/coordinator.log" "$CDIR/agent1.log" "$CDIR/agent2.log" "$CDIR/agent3.log"

step 7 "agent3 restarted with another token: the coordinator's statement there gets 401, which the client sees as the link's fault (502 agent_error), not its own"
bank3_reset
kill_component agent3
TXAGENT_ARGS="--token-file $SCEN_DIR/wrong-token" cl start agent3
cl start coordinator
api POST /v1/transactions '{"protocol":"2pc","timeout_ms":60000}'
G4="$(jget .gid)"
api POST "/v1/transactions/$G4/statements" \
    '{"participant":"pg3","sql":"UPDATE accounts SET balance = balance + $1 WHERE id = $2","params":[50,3]}'
expect_eq "statement on pg3" "$API_STATUS $(jget .error.code) $(jget .error.agent_status) $(jget .error.participant)" \
    "502 agent_error 401 pg3"
api POST "/v1/transactions/$G4/statements" \
    '{"participant":"pg1","sql":"UPDATE accounts SET balance = balance - $1 WHERE id = $2","params":[50,1]}'
expect_eq "statement on pg1: the transaction goes on" "$API_STATUS" 200
commit "$G4"
expect_eq "commit (nothing ran on pg3)" "$API_STATUS $(jget .outcome)" "200 committed"
expect_eq "balances (account 1, 2, 3)" "$(balances)" "950 1000 1000"
