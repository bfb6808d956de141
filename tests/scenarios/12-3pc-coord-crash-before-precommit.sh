#!/usr/bin/env bash
# 12-3pc-coord-crash-before-precommit - a 3PC commit across 3 agents; every
# agent voted yes (all uncertain) and the coordinator dies before sending any
# PreCommit, then stays down. No branch can have committed anywhere, so the
# agents must abort on their own when their uncertain timers fire, whatever
# the termination rule; nothing may stay prepared, and the restarted
# coordinator must say aborted too.
#   A. crash point 3pc-after-precommit-log ('P' durable, no PreCommit sent),
#      termination protocol: every agent finds its peers uncertain (or
#      already aborted by a peer) and aborts. Restart: recovery of the 'P'
#      asks the agents, hears aborted, decides abort ('E' closes the 'P').
#   B. crash point 3pc-before-precommit-log (votes all in, no record at all),
#      termination timeout: every agent aborts on its own (uncertain ->
#      abort). Restart: no record of the gid, earlier epoch: presumed abort.
#   C. no crash: the coordinator pauses after its 'P' (3pc-after-precommit-log
#      =pause: a slow disk) past the agents' uncertain timers, termination
#      timeout: every agent aborts on its own. Once its 'P' is durable the
#      coordinator sees that 3/4 of the uncertain timeout has passed since
#      the first yes vote, sends no PreCommit (it would race the agents' own
#      decisions), forces an 'A' and answers the client aborted (no 'C').
#   D. no crash, every PreCommit lost on the way (3pc-precommit-lost=error):
#      nothing acknowledged, nothing refused, so nothing decides. The client
#      hears 409 wrong_state (precommitting, with the gid), not committed (a
#      rollback meanwhile hears the same); the
#      resolver's first recovery round, once the agents' timers have run
#      (uncertain + precommit timeout), finds every agent aborted on its own
#      and aborts too ('A', then 'E'); the commit sent again answers aborted.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 12-3pc-coord-crash-before-precommit 8140

UNCERTAIN_MS=4000
PRECOMMIT_MS=4000
DONE_BOUND_S=$((UNCERTAIN_MS / 1000 + 3 * 2 + 5)) # timer + peer calls + slack (see 11)
SUMMARY=()

# crash_before_precommit N POINT RULE VAR: step N: the coordinator dies at
# POINT (after the votes, before any PreCommit). Sets VAR and CRASH_AT.
crash_before_precommit() {
    crash_3pc "$1" "$2" "$3" "$4"
    local g="${!4}"
    expect_eq "agents' states (pg1 pg2 pg3): every vote was yes, no PreCommit" \
        "$(agent_states "$g")" "uncertain uncertain uncertain"
    expect_eq "branches prepared in PostgreSQL" "$(prepared_of "$g")" 3
    check "decision log: no commit record ('C') of $g" not dlog_has C "$g"
}

# agents_abort N GID: step N: coordinator down; every agent aborts its branch
# within DONE_BOUND_S of the crash. Sets TOOK_S.
agents_abort() {
    step "$1" "coordinator stays down: the agents abort $2 on their own (uncertain timer ${UNCERTAIN_MS} ms)"
    settled_alone "$2" "$DONE_BOUND_S"
    expect_eq "agents' states (pg1 pg2 pg3)" "$(agent_states "$2")" "aborted aborted aborted"
    all_or_nothing "$2" aborted
    local i
    for i in 1 2 3; do
        check "agent$i log: no termination of $2 decided commit" not term_logged "$i" "$2" "-> commit"
    done
}

# coordinator_agrees N GID: step N: restart; /v1/outcomes says aborted.
coordinator_agrees() {
    step "$1" "restart the coordinator: its outcome for $2"
    cl start coordinator
    check "GET /v1/outcomes/$2 answers aborted (within 30s)" wait_until 30 outcome_is "$2" aborted
    check "decision log: still no commit record ('C') of $2" not dlog_has C "$2"
    check "no prepared branch anywhere" no_prepared_anywhere
    all_or_nothing "$2" aborted
}

step_cluster3 1

# ---- A: 'P' logged, no PreCommit sent; termination protocol -------------------------------
crash_before_precommit 2 3pc-after-precommit-log protocol GID_A
check "decision log: pre-commit record ('P') of $GID_A" dlog_has P "$GID_A"
agents_abort 3 "$GID_A"
check "the termination protocol decided abort: all peers uncertain (or one already aborted)" \
    grep -qE "gid=$GID_A .*3pc termination: protocol rule, (all uncertain|peer pg[123] aborted) -> abort" \
    "$CDIR/agent1.log" "$CDIR/agent2.log" "$CDIR/agent3.log"
grep -h "gid=$GID_A .*3pc termination: .* -> " "$CDIR"/agent[123].log | sed 's/^/    /'
took_a=$TOOK_S
coordinator_agrees 4 "$GID_A"
check "coordinator log: recovery of the 'P' decided abort" \
    grep -q "gid=$GID_A .*-> aborting" "$CDIR/coordinator.log"
check "END record of $GID_A written (the 'P' is closed, within 30s)" wait_until 30 dlog_has E "$GID_A"
SUMMARY+=("| A | 3pc-after-precommit-log ('P' logged) | protocol | $(agent_states "$GID_A" | sed 's/ / | /g') | ${took_a} s | aborted (recovery of 'P') |")

# ---- B: no record at all; timeout rule -----------------------------------------------------
step 5 "reset the accounts"
bank3_reset
crash_before_precommit 6 3pc-before-precommit-log timeout GID_B
check "decision log: no pre-commit record ('P') of $GID_B" not dlog_has P "$GID_B"
agents_abort 7 "$GID_B"
for i in 1 2 3; do
    check "agent$i log: timeout rule, uncertain -> abort" term_logged "$i" "$GID_B" "timeout rule, uncertain -> abort"
done
took_b=$TOOK_S
coordinator_agrees 8 "$GID_B"
check "decision log: still no record of $GID_B at all" not dlog_has P "$GID_B"
SUMMARY+=("| B | 3pc-before-precommit-log (no record) | timeout | $(agent_states "$GID_B" | sed 's/ / | /g') | ${took_b} s | aborted (presumed abort) |")

# ---- C: no crash, PreCommit arrives after every agent aborted on its own -------------------
step 9 "reset the accounts"
bank3_reset
PAUSE_MS=$((UNCERTAIN_MS + 4000))
step 10 "termination=timeout: 3PC transfer; the coordinator pauses ${PAUSE_MS} ms after its 'P', past the agents' uncertain timers"
precommits() { # the agents' txagent_branches_precommitted_total, summed
    local i v n=0
    for i in 1 2 3; do
        v=$(agent_metric "$i" txagent_branches_precommitted_total)
        [[ "$v" =~ ^[0-9]+$ ]] || return 1
        n=$((n + v))
    done
    echo "$n"
}
PRECOMMITS_BEFORE_C=$(precommits) || fail "cannot read the agents' precommit counters"
restart_armed coordinator "3pc-after-precommit-log=pause:$PAUSE_MS"
begin3 GID_C "$(body_3pc timeout)"
commit "$GID_C"
expect_eq "commit answer: too late for PreCommits, so aborted" "$API_STATUS $(jget .outcome)" "409 aborted"
check "coordinator log: the 'P' became durable too close to the agents' timers" \
    grep -q "gid=$GID_C .*the pre-commit record was durable [0-9]* ms after the first yes, too close" \
    "$CDIR/coordinator.log"
# "precommit: acknowledged" is a debug line, not in an info-level log: the
# agents' counters show an acknowledged PreCommit, the log a refused one.
check "no agent precommitted a branch (txagent_branches_precommitted_total unchanged)" \
    is_eq "$PRECOMMITS_BEFORE_C" precommits
check "coordinator log: no PreCommit was refused" \
    not grep -q "gid=$GID_C .*precommit refused" "$CDIR/coordinator.log"
check "decision log: the abort after 'P' was forced ('A')" dlog_has A "$GID_C"
for i in 1 2 3; do
    check "agent$i log: timeout rule, uncertain -> abort" term_logged "$i" "$GID_C" "timeout rule, uncertain -> abort"
done
check "decision log: no commit record ('C') of $GID_C" not dlog_has C "$GID_C"
check "END record of $GID_C written (the 'P' is closed, within 30s)" wait_until 30 dlog_has E "$GID_C"
check "GET /v1/outcomes/$GID_C answers aborted" outcome_is "$GID_C" aborted
check "coordinator log: no atomicity violation for $GID_C" \
    not grep -qE "gid=$GID_C .*atomicity (is )?violated" "$CDIR/coordinator.log"
check "coordinator: no mixed-outcome branch counted" is_eq 0 metric_at "$TXCOORD_URL" txcoord_mixed_outcome_branches_total
expect_eq "agents' states (pg1 pg2 pg3)" "$(agent_states "$GID_C")" "aborted aborted aborted"
check "no prepared branch anywhere" no_prepared_anywhere
all_or_nothing "$GID_C" aborted
SUMMARY+=("| C | 3pc-after-precommit-log=pause:$PAUSE_MS (no crash) | timeout | $(agent_states "$GID_C" | sed 's/ / | /g') | - | aborted (too late for PreCommits) |")

# ---- D: no crash, every PreCommit lost: nothing decides, the resolver asks the agents -------
step 11 "reset the accounts"
bank3_reset
step 12 "termination=timeout: 3PC transfer; every PreCommit is lost on the way (3pc-precommit-lost=error)"
restart_armed coordinator "3pc-precommit-lost=error"
begin3 GID_D "$(body_3pc timeout)"
commit "$GID_D"
expect_eq "commit answer: nothing acknowledged nor refused, so no outcome yet" \
    "$API_STATUS $(jget .error.code)" "409 wrong_state"
check "... naming precommitting" grep -q precommitting <<<"$(jget .error.message)"
expect_eq "... with the gid and the state in the body" "$(jget .gid) $(jget .error.state)" \
    "$GID_D precommitting"
api POST "/v1/transactions/$GID_D/rollback"
expect_eq "a rollback meanwhile: the same 409, with the gid and the state" \
    "$API_STATUS $(jget .error.code) $(jget .gid) $(jget .error.state)" \
    "409 wrong_state $GID_D precommitting"
check "coordinator log: the first recovery round waits for the agents' timers" \
    grep -q "gid=$GID_D .*asks the agents their states in 8000 ms" "$CDIR/coordinator.log"
api GET "/v1/transactions?state=in-doubt"
check "the operator's in-doubt list names $GID_D meanwhile" grep -q "$GID_D" <<<"$API_BODY"
check "decision log: pre-commit record ('P') of $GID_D" dlog_has P "$GID_D"
check "coordinator log: not decided, handed to the resolver" \
    grep -q "gid=$GID_D .*not deciding; the resolver asks the agents" "$CDIR/coordinator.log"
check "the resolver's recovery decides abort (within 30s)" wait_until 30 tx_state_is "$GID_D" aborted
check "decision log: no commit record ('C') of $GID_D" not dlog_has C "$GID_D"
check "decision log: the abort after 'P' was forced ('A')" dlog_has A "$GID_D"
check "END record of $GID_D written (within 30s)" wait_until 30 dlog_has E "$GID_D"
commit "$GID_D"
expect_eq "commit sent again: the outcome" "$API_STATUS $(jget .outcome)" "409 aborted"
check "GET /v1/outcomes/$GID_D answers aborted" outcome_is "$GID_D" aborted
check "no prepared branch anywhere" wait_until 10 no_prepared_anywhere
all_or_nothing "$GID_D" aborted
check "coordinator: no mixed-outcome branch counted" is_eq 0 metric_at "$TXCOORD_URL" txcoord_mixed_outcome_branches_total
SUMMARY+=("| D | 3pc-precommit-lost=error (no crash) | timeout | $(agent_states "$GID_D" | sed 's/ / | /g') | - | aborted (recovery round after the agents' timers) |")

step 13 "summary: 3PC, coordinator killed (A, B) or stalled (C) after the votes and before any PreCommit, or its PreCommits lost (D)"
echo "| part | crash point | termination | pg1 | pg2 | pg3 | agents done after the crash | coordinator after restart |"
echo "|---|---|---|---|---|---|--:|---|"
printf '%s\n' "${SUMMARY[@]}"
