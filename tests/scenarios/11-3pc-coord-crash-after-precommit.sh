#!/usr/bin/env bash
# 11-3pc-coord-crash-after-precommit - a 3PC commit across 3 agents; the
# coordinator dies after the first PreCommit was acknowledged (crash point
# 3pc-after-first-precommit: PreCommits go one at a time, pg1 first) and
# stays down. pg1 is pre-committed, pg2 and pg3 are uncertain.
# Run once per termination rule (the transaction's "termination" field):
#   protocol: the uncertain agents' timers fire, they ask their peers, find
#     pg1 pre-committed, pre-commit themselves and commit; pg1 commits too.
#     Every branch commits while the coordinator is still down: atomicity
#     kept, no lock held past the timeouts.
#   timeout: no peer is asked: pg1 (pre-committed) commits, pg2 and pg3
#     (uncertain) abort. ATOMICITY IS VIOLATED: the transfer is committed in
#     pg1 only. That is the rule's known weakness; the script asserts that it
#     happens (and prints it), it does not hide it.
# Either way nothing stays prepared, and the restarted coordinator's recovery
# of the 'P' record decides commit (a branch is pre-committed or committed):
# its outcome agrees with the agents under the protocol rule, and with pg1
# only under the timeout rule (it logs the violation).
#   C. (protocol rule) every agent takes SLOW_MS to make its PreCommit
#     durable (3pc-before-precommit-record=pause: a slow disk; the branch
#     reads "uncertain" meanwhile); the coordinator is killed during it and
#     restarted at once. Its recovery must not take those "uncertain" answers
#     as final (all uncertain = abort, while the branches are about to be
#     pre-committed and commit on their own): it waits until the agents'
#     timers have run (the 'P' carries them), then finds them pre-committed
#     or committed and commits.
#   D. (protocol rule) pg1 alone gets a PreCommit, and takes 8 s to make it
#     durable; the coordinator dies meanwhile (3pc-after-first-precommit) and
#     stays down. pg2's and pg3's timers fire while pg1 is still busy: their
#     terminations must not read pg1 as "uncertain" (all uncertain = abort,
#     while pg1 is about to be pre-committed and commit on its own): pg1
#     answers "busy" until its PreCommit is durable, they wait, then find it
#     pre-committed and everyone commits.
#   E. (protocol rule) every PreCommit acknowledged, the coordinator dies
#     before its 'C' (3pc-before-commit-log) and stays down: each agent
#     commits on its precommit timer; the restarted coordinator's recovery
#     reads them committed, forces the 'C' and writes 'E'.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 11-3pc-coord-crash-after-precommit 8120

UNCERTAIN_MS=4000
PRECOMMIT_MS=4000
# An agent finishes within its timer plus its termination's peer calls (ask,
# precommit, commit: 2 s each at most), plus slack for a loaded machine.
DONE_BOUND_S=$((UNCERTAIN_MS / 1000 + 3 * 2 + 5))
SUMMARY=()

# crash_mid_precommit N RULE VAR: step N: the coordinator dies after pg1's
# PreCommit (pg1 pre-committed, pg2 and pg3 uncertain). Sets VAR and CRASH_AT.
crash_mid_precommit() {
    crash_3pc "$1" 3pc-after-first-precommit "$2" "$3"
    local g="${!3}"
    check "decision log: pre-commit record ('P') of $g" dlog_has P "$g"
    check "decision log: no commit record ('C') of $g" not dlog_has C "$g"
    expect_eq "agents' states (pg1 pg2 pg3)" "$(agent_states "$g")" "precommitted uncertain uncertain"
    expect_eq "txagent_branches_waiting on agent 1, 2, 3 (precommitted, uncertain, uncertain)" \
        "$(agent_metric 1 'txagent_branches_waiting{state="precommitted"}') $(agent_metric 2 'txagent_branches_waiting{state="uncertain"}') $(agent_metric 3 'txagent_branches_waiting{state="uncertain"}')" \
        "1 1 1"
    expect_eq "branches prepared in PostgreSQL" "$(prepared_of "$g")" 3
}

# waiting_of I: agent I's txagent_branches_waiting, prepared uncertain precommitted.
waiting_of() {
    local s out=()
    for s in prepared uncertain precommitted; do
        out+=("$(agent_metric "$1" "txagent_branches_waiting{state=\"$s\"}")")
    done
    echo "${out[*]}"
}

# agents_finish N GID: step N: with the coordinator down, every branch is
# finished by its agent within DONE_BOUND_S of the crash. Sets TOOK_S.
agents_finish() {
    step "$1" "coordinator stays down: the agents finish $2 on their own (timers ${UNCERTAIN_MS}/${PRECOMMIT_MS} ms)"
    settled_alone "$2" "$DONE_BOUND_S"
    local i
    for i in 1 2 3; do
        check "agent$i waits on nothing (txagent_branches_waiting all 0)" \
            wait_until 5 is_eq "0 0 0" waiting_of "$i"
    done
}

# coordinator_recovers N GID: step N: restart it; its recovery of the 'P'
# decides commit; /v1/outcomes says so.
coordinator_recovers() {
    step "$1" "restart the coordinator: recovery of the 'P' record of $2"
    cl start coordinator
    check "GET /v1/outcomes/$2 answers committed (within 30s)" wait_until 30 outcome_is "$2" committed
    check "decision log: commit record ('C') of $2 forced by recovery" dlog_has C "$2"
    check "no prepared branch anywhere" no_prepared_anywhere
}

step_cluster3 1

# ---- A: termination protocol ---------------------------------------------------------
crash_mid_precommit 2 protocol GID_A
agents_finish 3 "$GID_A"
expect_eq "agents' states (pg1 pg2 pg3)" "$(agent_states "$GID_A")" "committed committed committed"
all_or_nothing "$GID_A" committed
# Whose timer fires first decides who runs the protocol: pg2/pg3 (uncertain
# since their votes) find pg1 pre-committed (rule 4), or pg1 (pre-committed a
# moment later) finds itself pre-committed (rule 2). Both pre-commit the
# uncertain peers first, then commit everyone.
check "the termination protocol decided pre-commit-then-commit (pg1's pre-commit seen)" \
    grep -qE "gid=$GID_A .*3pc termination: protocol rule, (peer pg1 precommitted|self precommitted) -> commit" \
    "$CDIR/agent1.log" "$CDIR/agent2.log" "$CDIR/agent3.log"
grep -h "gid=$GID_A .*3pc termination" "$CDIR"/agent[123].log | sed 's/^/    /'
for i in 1 2 3; do
    check "agent$i log: no termination of $GID_A decided abort" not term_logged "$i" "$GID_A" "-> abort"
done
took_a=$TOOK_S
coordinator_recovers 4 "$GID_A"
check "END record of $GID_A written (every branch acknowledged, within 30s)" wait_until 30 dlog_has E "$GID_A"
all_or_nothing "$GID_A" committed
SUMMARY+=("| protocol | $(agent_states "$GID_A" | sed 's/ / | /g') | ${took_a} s | $(jget .outcome) | kept: marker in $(markers_present "$GID_A") of 3 databases |")

# ---- B: timeout rule -----------------------------------------------------------------------
step 5 "reset the accounts"
bank3_reset
crash_mid_precommit 6 timeout GID_B
agents_finish 7 "$GID_B"
expect_eq "agents' states (pg1 pg2 pg3): pre-committed commits, uncertain abort" \
    "$(agent_states "$GID_B")" "committed aborted aborted"
check "agent1 log: timeout rule, precommitted -> commit" term_logged 1 "$GID_B" "timeout rule, precommitted -> commit"
for i in 2 3; do
    check "agent$i log: timeout rule, uncertain -> abort" term_logged "$i" "$GID_B" "timeout rule, uncertain -> abort"
done
expect_eq "ATOMICITY VIOLATED as the timeout rule allows: marker rows of $GID_B (pg1 pg2 pg3)" \
    "$(markers_list "$GID_B" 1 2 3)" "1 0 0"
expect_eq "balances (account 1, 2, 3): the debit committed, the credits did not" "$(balances)" "900 1000 1000"
took_b=$TOOK_S
coordinator_recovers 8 "$GID_B"
check "coordinator log: recovery reports the violation for pg2 and pg3" \
    grep -q "gid=$GID_B .*pre-committed but pg2=aborted pg3=aborted: committing, atomicity is violated" \
    "$CDIR/coordinator.log"
expect_eq "markers still in pg1 only after recovery (aborted branches cannot be redone)" \
    "$(markers_list "$GID_B" 1 2 3)" "1 0 0"
check "END record of $GID_B written (the aborted branches are not retried, within 30s)" \
    wait_until 30 dlog_has E "$GID_B"
api GET "/v1/transactions/$GID_B"
echo "    coordinator's view: state $(jget .state), branches $(jget '[.branches[] | .participant + "=" + .state] | join(" ")')"
SUMMARY+=("| timeout | $(agent_states "$GID_B" | sed 's/ / | /g') | ${took_b} s | $(jget .outcome) | **VIOLATED**: marker in $(markers_present "$GID_B") of 3 databases |")

# ---- C: restarted while PreCommits are still being made durable -----------------------
SLOW_MS=6000
step 9 "termination=protocol: every agent takes ${SLOW_MS} ms to make a PreCommit durable; the coordinator is killed meanwhile and restarted at once"
bank3_reset
for i in 1 2 3; do restart_armed "agent$i" "3pc-before-precommit-record=pause:$SLOW_MS"; done
begin3 GID_C "$(body_3pc protocol)"
commit "$GID_C" >/dev/null 2>&1 &
COMMIT_PID=$!
slow_precommits() {
    local i
    for i in 1 2 3; do
        grep -q "fault point 3pc-before-precommit-record reached" "$CDIR/agent$i.log" || return 1
    done
}
require "every agent is making its PreCommit durable (within 10s)" wait_until 10 slow_precommits
# agent_busy I GID: agent I's GET /v1/branches/GID error code (branch_busy
# while a PreCommit holds the branch: never "uncertain").
agent_busy() {
    local url_var="AGENT${1}_URL"
    curl -s --max-time 5 "${!url_var}/v1/branches/$2" | jq -r '.error.code // .state // empty' 2>/dev/null
}
expect_eq "agent1 answers branch_busy meanwhile, not uncertain" "$(agent_busy 1 "$GID_C")" branch_busy
kill_component coordinator
cl start coordinator
wait "$COMMIT_PID" || true
check "coordinator log: recovery of $GID_C waits out the agents' timers (the 'P' carries them)" \
    grep -q "gid=$GID_C .*3pc recovery: asking the agents their states in $((UNCERTAIN_MS + PRECOMMIT_MS)) ms" \
    "$CDIR/coordinator.log"
check "GET /v1/outcomes/$GID_C answers committed (within 40s)" wait_until 40 outcome_is "$GID_C" committed
check "decision log: no abort record ('A') of $GID_C" not dlog_has A "$GID_C"
check "no prepared branch anywhere (within 30s)" wait_until 30 no_prepared_anywhere
all_or_nothing "$GID_C" committed
for i in 1 2 3; do
    check "agent$i log: no termination of $GID_C decided abort" not term_logged "$i" "$GID_C" "-> abort"
done
SUMMARY+=("| protocol, PreCommits slow to become durable, coordinator restarted at once | $(agent_states "$GID_C" | sed 's/ / | /g') | - | $(outcome_is "$GID_C" committed && echo committed || jget .outcome) | kept: marker in $(markers_present "$GID_C") of 3 databases |")

# ---- D: peers ask a branch whose PreCommit is still being made durable ---------------
step 10 "termination=protocol: pg1 takes 8 s to make its PreCommit durable; the coordinator dies after sending it (pg2, pg3 never get one)"
bank3_reset
restart_armed agent1 "3pc-before-precommit-record=pause:8000"
for i in 2 3; do
    kill_component "agent$i"
    cl start "agent$i"
done
crash_3pc 11 3pc-after-first-precommit protocol GID_D
step 12 "the coordinator stays down: pg2's and pg3's terminations wait for pg1, then everyone commits"
check "nothing of $GID_D prepared anywhere (within 40s)" wait_until 40 is_eq 0 prepared_of "$GID_D"
expect_eq "agents' states (pg1 pg2 pg3)" "$(agent_states "$GID_D")" "committed committed committed"
all_or_nothing "$GID_D" committed
check "a termination waited for pg1 (busy while its PreCommit was being made durable)" \
    grep -qE "gid=$GID_D .*3pc termination: protocol rule, peer pg1 busy -> wait" \
    "$CDIR/agent2.log" "$CDIR/agent3.log"
for i in 1 2 3; do
    check "agent$i log: no termination of $GID_D decided abort" not term_logged "$i" "$GID_D" "-> abort"
done
coordinator_recovers 13 "$GID_D"
SUMMARY+=("| protocol, pg1's PreCommit slow, coordinator left down | $(agent_states "$GID_D" | sed 's/ / | /g') | - | $(jget .outcome) | kept: marker in $(markers_present "$GID_D") of 3 databases |")

# ---- E: every branch pre-committed, the coordinator dies before its 'C' ------------
step 14 "agent1 restarted without its pause; reset the accounts"
kill_component agent1
cl start agent1
bank3_reset
crash_3pc 15 3pc-before-commit-log protocol GID_E
check "decision log: pre-commit record ('P') of $GID_E" dlog_has P "$GID_E"
check "decision log: no commit record ('C') of $GID_E" not dlog_has C "$GID_E"
expect_eq "agents' states (pg1 pg2 pg3)" "$(agent_states "$GID_E")" \
    "precommitted precommitted precommitted"
agents_finish 16 "$GID_E"
expect_eq "agents' states (pg1 pg2 pg3): each commits on its own precommit timer" \
    "$(agent_states "$GID_E")" "committed committed committed"
all_or_nothing "$GID_E" committed
coordinator_recovers 17 "$GID_E"
check "END record of $GID_E written (every branch acknowledged, within 30s)" \
    wait_until 30 dlog_has E "$GID_E"
SUMMARY+=("| protocol, every branch pre-committed, coordinator killed before its 'C' | $(agent_states "$GID_E" | sed 's/ / | /g') | - | $(outcome_is "$GID_E" committed && echo committed || jget .outcome) | kept: marker in $(markers_present "$GID_E") of 3 databases |")

step 18 "summary: 3PC, coordinator killed after pg1's PreCommit and left down (C: killed during slow PreCommits, restarted at once; D: pg1's PreCommit slow, peers' terminations; E: killed before its 'C', every branch pre-committed)"
echo "| termination | pg1 | pg2 | pg3 | agents done after the crash | coordinator's outcome after restart | atomicity |"
echo "|---|---|---|---|--:|---|---|"
printf '%s\n' "${SUMMARY[@]}"
