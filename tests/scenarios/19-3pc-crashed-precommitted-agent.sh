#!/usr/bin/env bash
# 19-3pc-crashed-precommitted-agent - 3PC without any partition: the
# coordinator dies after the first PreCommit was acknowledged (crash point
# 3pc-after-first-precommit: pg1 pre-committed, pg2 and pg3 uncertain), and
# pg1's agent is killed right after, before pg2's and pg3's timers fire. It
# stays down past them, then comes back. Run once per termination rule:
#   protocol: pg2 and pg3 cannot tell a crashed pg1 from a cut-off one; they
#     skip it as unreachable, read each other uncertain and abort (rule 7).
#     pg1 comes back pre-committed and commits on its own timer (rule 2: it
#     acknowledged PreCommit, so the coordinator may have committed).
#     ATOMICITY IS VIOLATED with no partition at all: the script asserts that
#     it happens (the rule's known weakness, README), it does not hide it.
#   blocking: pg2 and pg3 wait for pg1 instead ("blocking rule, peer pg1
#     unreachable -> wait"), holding their branches for as long as it is
#     down, as 2PC would; when it comes back, everyone commits.
# Each part ends with the coordinator restarted: its recovery of the 'P'
# decides commit (pg1 pre-committed or committed), logging the violation of
# the first part.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 19-3pc-crashed-precommitted-agent 8280

# Long enough that agent1 is surely dead before pg2's and pg3's timers fire
# (they started at their votes, just before the coordinator's crash).
UNCERTAIN_MS=6000
PRECOMMIT_MS=6000
DOWN_S=$((UNCERTAIN_MS / 1000 + 6)) # agent1 stays down this long after the crash
SUMMARY=()

states23() { echo "$(agent_state 2 "$1") $(agent_state 3 "$1")"; }
waits23() { # decided waits of agent2 and agent3, summed
    echo $(($(agent_metric 2 'txagent_3pc_terminations_total{decision="wait"}') +
        $(agent_metric 3 'txagent_3pc_terminations_total{decision="wait"}')))
}
is_ge_1() { [ "$("$@")" -ge 1 ]; }

# precommitted_then_killed N RULE VAR: steps N, N+1: the coordinator dies
# after pg1's PreCommit; agent1 is killed at once. Sets VAR.
precommitted_then_killed() {
    crash_3pc "$1" 3pc-after-first-precommit "$2" "$3"
    local g="${!3}"
    expect_eq "agents' states (pg1 pg2 pg3)" "$(agent_states "$g")" "precommitted uncertain uncertain"
    step $(($1 + 1)) "kill agent1 (pg1 pre-committed) before pg2's and pg3's timers fire; it stays down ${DOWN_S}s"
    kill_component agent1
    for i in 2 3; do
        require "agent$i: no termination of $g ran yet (agent1 died before the timers)" \
            not term_logged "$i" "$g" ""
    done
}

# agent1_back N GID: step N: agent1 is started again once DOWN_S have passed
# since the crash; its replayed pre-committed branch commits (rule 2).
agent1_back() {
    local left=$((DOWN_S - (SECONDS - CRASH_AT)))
    [ "$left" -gt 0 ] && sleep "$left"
    step "$1" "start agent1 again ($((SECONDS - CRASH_AT))s after the crash)"
    cl start agent1
    check "nothing of $2 prepared anywhere (within 30s)" wait_until 30 is_eq 0 prepared_of "$2"
    # pg1's own termination (rule 2), or a waiting peer's that found pg1
    # pre-committed first (rule 4) and pre-committed, then committed, it
    check "a termination found pg1 pre-committed and committed" \
        grep -qE "gid=$2 .*3pc termination: protocol rule, (self|peer pg1) precommitted -> commit" \
        "$CDIR/agent1.log" "$CDIR/agent2.log" "$CDIR/agent3.log"
}

# coordinator_recovers N GID: step N: restart it; recovery of the 'P' decides commit.
coordinator_recovers() {
    step "$1" "restart the coordinator: recovery of the 'P' record of $2"
    cl start coordinator
    check "GET /v1/outcomes/$2 answers committed (within 40s)" wait_until 40 outcome_is "$2" committed
    check "END record of $2 written (within 30s)" wait_until 30 dlog_has E "$2"
}

step_cluster3 1

# ---- A: protocol rule: the crash splits the transaction ------------------------------
precommitted_then_killed 2 protocol GID_A
step 4 "pg2 and pg3 decide on their own while agent1 is down"
check "pg2 and pg3 aborted (within $((UNCERTAIN_MS / 1000 + 10))s)" \
    wait_until $((UNCERTAIN_MS / 1000 + 10)) is_eq "aborted aborted" states23 "$GID_A"
check "a termination skipped pg1 and aborted: all uncertain" \
    grep -qE "gid=$GID_A .*3pc termination: protocol rule, all uncertain -> abort" \
    "$CDIR/agent2.log" "$CDIR/agent3.log"
grep -h "gid=$GID_A .*3pc termination: self" "$CDIR"/agent[23].log | sed 's/^/    /'
expect_eq "pg1's branch still prepared (its agent is down)" "$(prepared_at 1 "$GID_A")" 1
agent1_back 5 "$GID_A"
check "agent1 log: protocol rule, self precommitted -> commit (its peers aborted)" \
    term_logged 1 "$GID_A" "self precommitted -> commit"
expect_eq "agents' states (pg1 pg2 pg3)" "$(agent_states "$GID_A")" "committed aborted aborted"
expect_eq "ATOMICITY VIOLATED without a partition: marker rows of $GID_A (pg1 pg2 pg3)" \
    "$(markers_list "$GID_A" 1 2 3)" "1 0 0"
expect_eq "balances (account 1, 2, 3): the debit committed, the credits did not" "$(balances)" "900 1000 1000"
coordinator_recovers 6 "$GID_A"
check "coordinator log: recovery reports the violation for pg2 and pg3" \
    grep -q "gid=$GID_A .*pre-committed but pg2=aborted pg3=aborted: committing, atomicity is violated" \
    "$CDIR/coordinator.log"
SUMMARY+=("| protocol | $(agent_states "$GID_A" | sed 's/ / | /g') | **VIOLATED**: marker in $(markers_present "$GID_A") of 3 databases |")

# ---- B: blocking rule: the uncertain agents wait for pg1 ------------------------------
step 7 "reset the accounts"
bank3_reset
precommitted_then_killed 8 blocking GID_B
step 10 "pg2 and pg3 wait for pg1 while it is down"
check "a termination waited for pg1 (within $((UNCERTAIN_MS / 1000 + 10))s)" \
    wait_until $((UNCERTAIN_MS / 1000 + 10)) grep -qE \
    "gid=$GID_B .*3pc termination: blocking rule, peer pg1 unreachable -> wait" \
    "$CDIR/agent2.log" "$CDIR/agent3.log"
check "pg2 and pg3 stay uncertain, prepared, while agent1 is down (3s)" \
    holds_for 3 is_eq "uncertain uncertain" states23 "$GID_B"
check "txagent_3pc_terminations_total{decision=\"wait\"} counts it (agent2 or agent3)" \
    is_ge_1 waits23
expect_eq "branches of $GID_B prepared in PostgreSQL (pg1 pg2 pg3)" \
    "$(prepared_at 1 "$GID_B") $(prepared_at 2 "$GID_B") $(prepared_at 3 "$GID_B")" "1 1 1"
for i in 2 3; do
    check "agent$i log: no termination of $GID_B decided abort" not term_logged "$i" "$GID_B" "-> abort"
done
agent1_back 11 "$GID_B"
expect_eq "agents' states (pg1 pg2 pg3)" "$(agent_states "$GID_B")" "committed committed committed"
all_or_nothing "$GID_B" committed
coordinator_recovers 12 "$GID_B"
check "coordinator log: no violation reported for $GID_B" \
    not grep -q "gid=$GID_B .*atomicity is violated" "$CDIR/coordinator.log"
SUMMARY+=("| blocking | $(agent_states "$GID_B" | sed 's/ / | /g') | kept: marker in $(markers_present "$GID_B") of 3 databases; pg2 and pg3 held their rows while agent1 was down |")

step 13 "summary: 3PC, coordinator killed after pg1's PreCommit, agent1 killed at once and down ${DOWN_S}s"
echo "| termination | pg1 | pg2 | pg3 | atomicity |"
echo "|---|---|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
