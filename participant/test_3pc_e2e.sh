#!/usr/bin/env bash
# test_3pc_e2e.sh - end-to-end test of txagent's 3PC half and its shutdown, on
# a throwaway local cluster (scripts/cluster): agents driven directly with
# curl, then one transaction through the coordinator.
#
# Usage: participant/test_3pc_e2e.sh [BASE_PORT]   (default 7580; uses P..P+13; a busy
#   base moves up by 20, at most 10 times)
#   (P+9, unused by a 3-participant cluster, is the black hole of step 12)
# Environment: TXCOORD_BUILD_DIR (binaries), TXCOORD_SOURCE_ROOT (repo), KEEP=1
# (leave the cluster and its logs in place for a look; stop it with
# scripts/cluster down --dir DIR --purge).
#
# Steps (each prints PASS/FAIL; the last line is "N passed, N failed"):
#   1. cluster up (3 participants), accounts loaded
#   2. prepare(3pc) x3, precommit x3, commit x3: all committed, records in branches3pc.log
#   3. termination protocol, all uncertain: everyone aborted
#   4. termination protocol, one precommitted: everyone committed
#  4f. fencing read: once a peer's termination read agent2 uncertain, the
#      coordinator's PreCommit is refused (also after a restart), a peer's is not
#   5. timeout rule, one precommitted: that one commits, the others abort (3PC's known weakness)
#   6. crash point 3pc-after-precommit-record on agent2, restart: everyone committed
#   7. replay: branch finished behind the agent's back while it was down -> marked from PostgreSQL
#  7c. the same with PostgreSQL down at the replay: the branch's state is not
#      told nor acted on (503) until PostgreSQL is back, then reads committed
#  7d. a live uncertain branch committed by hand: a rollback answers 409
#      committed (pg_xact_status), it does not record a rollback
#  7b. branches3pc.log's fdatasync fails (crash point wal-fdatasync=error on
#      agent2): a 3PC prepare votes no and leaves nothing prepared, 2PC still
#      votes yes, and after a restart without the fault 3PC votes yes again
#   8. the 2PC sweep leaves an uncertain branch alone although the coordinator says aborted
#   9. one-shot 3PC transaction through the coordinator: committed everywhere
#  10. finished branches survive compaction and a restart: agent2 with a tiny
#      --3pc-log-compact-bytes commits one branch and aborts another, compacts,
#      is killed and restarted, and still answers committed / aborted (not
#      unknown, which peers would read as "never committed")
#  11. SIGTERM while a statement waits on a lock: the agent exits within 15 s
#  11b. SIGTERM while a call cannot be cancelled (after-commit-prepared=pause):
#      the agent exits after its 8 s grace instead of waiting for the call
#  12. concurrent terminations: four branches on agent1 whose peers sit behind
#      a black hole (a python3 listener that accepts connections and never
#      answers, so each ask waits its whole 2 s timeout; python3 is there
#      wherever meson is) expire together;
#      all four terminations start before any of them has its peers' answers
#      (log order, not wall clock: one worker would alternate start, answers,
#      start, ...), each is decided exactly once, all abort. Then SIGTERM with
#      four more such terminations in flight: the agent exits within 15 s, and
#      after a restart the replay terminates them too
#  13. no prepared transaction left anywhere; after the cluster stops, no
#      sanitizer report in any log
set -uo pipefail

root="${TXCOORD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)}"
export TXCOORD_BUILD_DIR="${TXCOORD_BUILD_DIR:-$root/build}"
# shellcheck source=tests/check.sh
. "$root/tests/check.sh"
# First base port from the one asked for (step 20, at most 10 tries) whose
# P..P+13 all refuse connections: two runs at once (or a cluster a killed run
# left behind) must not make this one fail on "port already in use".
P="${1:-7580}"
for _ in 1 2 3 4 5 6 7 8 9 10; do
    busy=0
    for off in $(seq 0 13); do
        if port_open $((P + off)); then
            busy=1
            break
        fi
    done
    [ "$busy" = 0 ] && break
    echo "base port $P is busy, trying $((P + 20))"
    P=$((P + 20))
done
DIR="$(mktemp -d /tmp/tx3pc.XXXXXX)"
chmod 755 "$DIR"
CL="$root/scripts/cluster"
finish() {
    [ -n "${blackhole:-}" ] && kill "$blackhole" 2>/dev/null
    "$CL" down --dir "$DIR" >/dev/null 2>&1 || true
    # after the stop: leak reports are written at exit
    check "no sanitizer report in the agents' and coordinator's logs" \
        bash -c "! grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' '$DIR'/agent[123].log '$DIR'/coordinator.log"
    if [ "$FAILED" -gt 0 ]; then
        for f in "$DIR"/agent[123].log "$DIR"/coordinator.log; do
            [ -f "$f" ] && { say "---- tail $f"; tail -n 25 "$f"; }
        done
    fi
    [ -n "${KEEP:-}" ] || "$CL" down --dir "$DIR" --purge >/dev/null 2>&1 || true
    check_summary
}
# The script's own failure (an error under set -u, an explicit exit 1) wins
# over the summary, which only counts the checks that ran.
trap 'rc=$?; finish; s=$?; [ "$rc" -eq 0 ] || exit "$rc"; exit "$s"' EXIT
# meson's timeout sends TERM, then KILLs the group half a second later: the
# purge runs in a new session, and the EXIT trap is dropped (no second purge).
interrupted() {
    [ -n "${blackhole:-}" ] && kill "$blackhole" 2>/dev/null
    setsid bash -c '"$1" down --dir "$2" --purge' _ "$CL" "$DIR" </dev/null >/dev/null 2>&1 &
    trap - EXIT
    exit "$1"
}
trap 'interrupted 143' TERM
trap 'interrupted 130' INT

agent() { echo "http://127.0.0.1:$((P + $1))"; }
PEERS="[{\"participant\":\"pg1\",\"url\":\"$(agent 1)\"},{\"participant\":\"pg2\",\"url\":\"$(agent 2)\"},{\"participant\":\"pg3\",\"url\":\"$(agent 3)\"}]"
prep() { # prep AGENT GID ROW [EXTRA-JSON]: one-shot 3PC prepare; prints the vote
    curl -s -m 20 -XPOST "$(agent "$1")/v1/branches/$2/prepare" -d "{\"participant\":\"pg$1\",\"protocol\":\"3pc\",\"peers\":$PEERS,\"statements\":[{\"sql\":\"UPDATE accounts SET balance = balance + 1 WHERE id = \$1\",\"params\":[$3]}]${4:-}}" |
        sed -n 's/.*"vote":"\([a-z_]*\)".*/\1/p'
}
post() { curl -s -m 20 -XPOST "$(agent "$1")/v1/branches/$2/$3" -d "{\"participant\":\"pg$1\"}"; }
state() { curl -s -m 5 "$(agent "$1")/v1/branches/$2" | sed -n 's/.*"state":"\([a-z_]*\)".*/\1/p'; }
states() { echo "$(state 1 "$1") $(state 2 "$1") $(state 3 "$1")"; }
wait_eq() { # wait_eq SECONDS EXPECTED CMD...: until CMD prints EXPECTED
    local i secs="$1" want="$2"
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        [ "$("$@")" = "$want" ] && return 0
        sleep 0.2
    done
    say "   $*: '$("$@")', expected '$want'"
    return 1
}
wait_states() { wait_eq "$3" "$2" states "$1"; } # wait_states GID "s1 s2 s3" SECONDS
all_yes() { [ "$(prep 1 "$1" "$2" "${3:-}")$(prep 2 "$1" "$2" "${3:-}")$(prep 3 "$1" "$2" "${3:-}")" = yesyesyes ]; }
waiting() { # waiting AGENT: its txagent_branches_waiting, prepared uncertain precommitted
    curl -s -m 5 "$(agent "$1")/metrics" | awk '$1 ~ /^txagent_branches_waiting[{]/ {printf "%s%s", sep, $2; sep = " "}'
}
psql_n() { "$CL" psql "$1" --dir "$DIR" -Atc "$2"; }

# 1.
say "cluster in $DIR, base port $P"
if ! "$CL" up --dir "$DIR" --base-port "$P" --participants 3 >"$DIR/up.log" 2>&1; then
    cat "$DIR/up.log"
    FAILED=$((FAILED + 1))
    exit 1
fi
for i in 1 2 3; do
    psql_n "$i" "INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 100) g ON CONFLICT DO NOTHING" >/dev/null
done
G="abcdef01-9"

# 2.
# Long timers: the steps below (G-95's 1.5 s timer among them) run before
# G-1's PreCommits go out, and a slow sanitizer build must not let G-1's
# uncertain timers fire first (they would abort it: all uncertain).
G1_TIMERS=',"uncertain_timeout_ms":60000,"precommit_timeout_ms":60000'
check "happy path: three yes votes" all_yes "$G-1" 1 "$G1_TIMERS"
check "happy path: uncertain everywhere" wait_states "$G-1" "uncertain uncertain uncertain" 2
# The yes vote says when its uncertain timer started after the call came
# (the coordinator's 3/4 check counts from the send time plus this), also
# on a re-sent prepare, which restarts the timer.
timer_after() {
    curl -s -m 20 -XPOST "$(agent 1)/v1/branches/$G-1/prepare" -d "{\"participant\":\"pg1\",\"protocol\":\"3pc\",\"peers\":$PEERS$G1_TIMERS}" |
        sed -n 's/.*"timer_after_ms":\([0-9][0-9]*\).*/\1/p'
}
check "happy path: a re-sent yes vote says when its timer started (timer_after_ms)" \
    test -n "$(timer_after)"
# A first vote's timer_after_ms counts the statements run before it: one
# that sleeps 300 ms puts it at 300 or more, and never past the call's own
# length (a unit slip, ms for us, would show here). The branch is then left
# to its timer: its peers know nothing of it, so it aborts.
first_vote_timer() {
    local out after total_ms
    out="$(curl -s -m 20 -w ' %{time_total}' -XPOST "$(agent 1)/v1/branches/$G-95/prepare" \
        -d "{\"participant\":\"pg1\",\"protocol\":\"3pc\",\"peers\":$PEERS,\"uncertain_timeout_ms\":1500,\"precommit_timeout_ms\":60000,\"statements\":[{\"sql\":\"SELECT pg_sleep(0.3)\"},{\"sql\":\"UPDATE accounts SET balance = balance + 1 WHERE id = 95\"}]}")"
    after="$(sed -n 's/.*"timer_after_ms":\([0-9][0-9]*\).*/\1/p' <<<"$out")"
    total_ms="$(awk '{printf "%d", $NF * 1000}' <<<"$out")"
    say "   first vote: timer_after_ms ${after:-none}, call ${total_ms} ms"
    [ -n "$after" ] && [ "$after" -ge 300 ] && [ "$after" -le "$total_ms" ]
}
check "first 3PC vote: timer_after_ms counts the statements before it, within the call" \
    first_vote_timer
check "first 3PC vote: its branch aborts on its timer" wait_eq 15 aborted state 1 "$G-95"
for a in 1 2 3; do post "$a" "$G-1" precommit >/dev/null; done
check "happy path: precommitted everywhere" wait_states "$G-1" "precommitted precommitted precommitted" 2
for a in 1 2 3; do post "$a" "$G-1" commit >/dev/null; done
check "happy path: committed everywhere" wait_states "$G-1" "committed committed committed" 2
check "happy path: rollback of a committed branch refused" \
    bash -c "curl -s -XPOST $(agent 1)/v1/branches/$G-1/rollback -d '{\"participant\":\"pg1\"}' | grep -q wrong_state"
# Records are framed binary around JSON text: match each record's own text
# (a framing byte may be a newline, so whole "lines" mean nothing here).
states_logged() { # gid agent -> the states of gid's records, in log order
    grep -ao "{\"gid\":\"$1\",\"state\":\"[a-z]*\"" "$DIR/agent$2/branches3pc.log" |
        sed 's/.*"state":"//; s/"$//' | tr '\n' ' '
}
check "branches3pc.log holds uncertain, precommitted, committed" \
    test "$(states_logged "$G-1" 1)" = "uncertain precommitted committed "

# 3.
T=',"uncertain_timeout_ms":1500,"precommit_timeout_ms":60000'
check "all uncertain: three yes votes" all_yes "$G-2" 2 "$T"
check "all uncertain: termination aborts everyone" wait_states "$G-2" "aborted aborted aborted" 10
check "all uncertain: decision logged" grep -q "$G-2 .*3pc termination: protocol rule, all uncertain -> abort" \
    "$DIR/agent1.log" "$DIR/agent2.log" "$DIR/agent3.log"

# 4. (4 s of uncertainty: the three prepares and agent1's precommit must all
# come before any timer fires, even on a loaded machine)
T4=',"uncertain_timeout_ms":4000,"precommit_timeout_ms":60000'
check "one precommitted: three yes votes" all_yes "$G-3" 3 "$T4"
post 1 "$G-3" precommit >/dev/null
check "one precommitted: termination commits everyone" wait_states "$G-3" "committed committed committed" 15
check "one precommitted: decision logged" grep -q "$G-3 .*3pc termination: protocol rule, peer pg1 precommitted -> commit" \
    "$DIR/agent2.log" "$DIR/agent3.log"

# 4f. fencing read: a peer's termination reads agent2 uncertain (?fence=1);
# from then on agent2 refuses the coordinator's PreCommit (a late one would
# race that termination's "all uncertain -> abort"), also after a restart,
# but takes a peer's (sent only when some branch is precommitted: commit)
TF=',"uncertain_timeout_ms":60000,"precommit_timeout_ms":60000'
says() { grep -q -- "$1" <<<"$2"; } # says TEXT ANSWER
fence_read() { says '"state":"uncertain"' "$(curl -s -m 5 "$(agent 2)/v1/branches/$G-90?fence=1")"; }
refused_fenced() { says '"fenced":true' "$(post "$1" "$G-90" precommit)"; }
takes_precommit() { says precommitted "$(post "$1" "$G-90" precommit)"; }
takes_peer_precommit() {
    says precommitted "$(curl -s -m 20 -XPOST "$(agent 2)/v1/branches/$G-90/precommit" \
        -d '{"participant":"pg2","from":"peer"}')"
}
check "fencing read: three yes votes" all_yes "$G-90" 5 "$TF"
check "fencing read: agent2 answers uncertain" fence_read
check "fencing read: the coordinator's PreCommit is refused" refused_fenced 2
check "fencing read: an unfenced branch still takes it" takes_precommit 1
"$CL" kill agent2 --dir "$DIR" >/dev/null 2>&1
"$CL" start agent2 --dir "$DIR" >/dev/null 2>&1
check "fencing read: still refused after a restart" refused_fenced 2
check "fencing read: a peer's PreCommit is taken" takes_peer_precommit
for a in 1 2 3; do post "$a" "$G-90" commit >/dev/null; done
check "fencing read: committed everywhere" wait_states "$G-90" "committed committed committed" 5

# 5.
TT=',"uncertain_timeout_ms":4000,"precommit_timeout_ms":1500,"termination":"timeout"'
check "timeout rule: three yes votes" all_yes "$G-4" 4 "$TT"
post 1 "$G-4" precommit >/dev/null
check "timeout rule: precommitted commits, uncertain ones abort" wait_states "$G-4" "committed aborted aborted" 15
check "timeout rule: decisions logged" grep -q "$G-4 .*3pc termination: timeout rule, uncertain -> abort" "$DIR/agent2.log"

# 6.
"$CL" stop agent2 --dir "$DIR" >/dev/null 2>&1
TXAGENT_CRASH_POINT=3pc-after-precommit-record "$CL" start agent2 --dir "$DIR" >/dev/null 2>&1
T3=',"uncertain_timeout_ms":3000,"precommit_timeout_ms":3000'
check "crash after precommit record: three yes votes" all_yes "$G-5" 5 "$T3"
post 1 "$G-5" precommit >/dev/null
post 2 "$G-5" precommit >/dev/null
# Its port closes once the process is gone: only then can it start again.
for _ in $(seq 1 100); do port_open $((P + 2)) || break; sleep 0.1; done
check "crash after precommit record: agent2 crashed at the point" grep -q "crash point 3pc-after-precommit-record reached" "$DIR/agent2.log"
check "crash after precommit record: agent2's port is closed" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$((P + 2))) 2>/dev/null"
"$CL" start agent2 --dir "$DIR" >/dev/null 2>&1
check "crash after precommit record: agent2 replays it precommitted" \
    grep -q "$G-5 .*3pc: replayed as precommitted" "$DIR/agent2.log"
check "crash after precommit record: everyone committed" wait_states "$G-5" "committed committed committed" 15
# The replayed branch counted as waiting, then not: -1 if the replay did not count it.
check "crash after precommit record: agent2 waits on nothing (txagent_branches_waiting)" \
    wait_eq 5 "0 0 0" waiting 2

# 7.
TL=',"uncertain_timeout_ms":60000,"precommit_timeout_ms":60000'
check "replay: prepared on agent2" test "$(prep 2 "$G-6" 6 "$TL")" = yes
"$CL" kill agent2 --dir "$DIR" >/dev/null 2>&1
psql_n 2 "COMMIT PREPARED 'txc:$G-6:pg2'" >/dev/null
"$CL" start agent2 --dir "$DIR" >/dev/null 2>&1
check "replay: finished branch marked committed from pg_xact_status" test "$(state 2 "$G-6")" = committed
check "replay: logged" grep -q "$G-6 .*uncertain -> committed (not prepared any more; PostgreSQL says" "$DIR/agent2.log"

# 7c. The same, but PostgreSQL is down when agent2 replays: it cannot tell
# whether the branch is still prepared (its final record may be what was
# lost), so it must not answer "uncertain" to a peer (which would count it for
# "all uncertain -> abort") nor act on a message, until PostgreSQL confirms.
http_code() { curl -s -m 10 -o /dev/null -w '%{http_code}' "$@"; }
check "replay, PostgreSQL down: prepared on agent2" test "$(prep 2 "$G-61" 7 "$TL")" = yes
"$CL" kill agent2 --dir "$DIR" >/dev/null 2>&1
psql_n 2 "COMMIT PREPARED 'txc:$G-61:pg2'" >/dev/null
"$CL" stop-pg 2 --dir "$DIR" >/dev/null 2>&1
"$CL" start agent2 --dir "$DIR" >/dev/null 2>&1
check "replay, PostgreSQL down: its state is not told (503), not 'uncertain'" \
    test "$(http_code "$(agent 2)/v1/branches/$G-61")" = 503
check "replay, PostgreSQL down: a peer's rollback is not acted on (503)" \
    test "$(http_code -XPOST "$(agent 2)/v1/branches/$G-61/rollback" -d '{"participant":"pg2"}')" = 503
"$CL" start-pg 2 --dir "$DIR" >/dev/null 2>&1
check "replay, PostgreSQL back: the branch reads committed (pg_xact_status)" \
    wait_eq 10 committed state 2 "$G-61"
check "replay, PostgreSQL back: a rollback is refused, the branch committed" \
    bash -c "curl -s -XPOST $(agent 2)/v1/branches/$G-61/rollback -d '{\"participant\":\"pg2\"}' | grep -q '\"state\":\"committed\"'"
check "replay, PostgreSQL back: logged" grep -q "$G-61 .*replayed state checked with PostgreSQL: committed" "$DIR/agent2.log"

# 7d. A live uncertain branch finished behind the agent's back (COMMIT
# PREPARED by hand): a peer's rollback finds it gone (42704) and must answer
# how PostgreSQL ended it, not record the rollback it was asked for.
check "gone branch: prepared on agent2" test "$(prep 2 "$G-62" 8 "$TL")" = yes
psql_n 2 "COMMIT PREPARED 'txc:$G-62:pg2'" >/dev/null
check "gone branch: a rollback answers 409, committed" \
    bash -c "curl -s -XPOST $(agent 2)/v1/branches/$G-62/rollback -d '{\"participant\":\"pg2\"}' | grep -q 'wrong_state.*\"state\":\"committed\"\|\"state\":\"committed\".*wrong_state'"
check "gone branch: it reads committed" test "$(state 2 "$G-62")" = committed

# 7b. branches3pc.log's disk fails (wal-fdatasync=error: EIO after the write).
# A branch whose uncertain record is not durable must not vote yes: it is
# rolled back and votes no; 2PC on the same agent is unaffected; after a
# restart without the fault 3PC votes yes again.
"$CL" stop agent2 --dir "$DIR" >/dev/null 2>&1
TXAGENT_CRASH_POINT=wal-fdatasync=error "$CL" start agent2 --dir "$DIR" >/dev/null 2>&1
check "log disk failing: the 3PC vote is no" test "$(prep 2 "$G-71" 7 "$TL")" = no
check "log disk failing: the sync failed and poisoned the log" \
    grep -q "branches3pc.log: fdatasync failed: Input/output error (log poisoned)" "$DIR/agent2.log"
check "log disk failing: the branch is not left prepared" \
    test "$(psql_n 2 "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'txc:$G-71:pg2'")" = 0
vote2pc="$(curl -s -m 20 -XPOST "$(agent 2)/v1/branches/$G-72/prepare" \
    -d '{"participant":"pg2","protocol":"2pc","statements":[{"sql":"UPDATE accounts SET balance = balance + 1 WHERE id = 7"}]}' |
    sed -n 's/.*"vote":"\([a-z_]*\)".*/\1/p')"
check "log disk failing: a 2PC branch on the same agent still votes yes" test "$vote2pc" = yes
post 2 "$G-72" rollback >/dev/null
"$CL" stop agent2 --dir "$DIR" >/dev/null 2>&1
"$CL" start agent2 --dir "$DIR" >/dev/null 2>&1
check "log disk mended, agent restarted: the 3PC vote is yes again" test "$(prep 2 "$G-73" 7 "$TL")" = yes
post 2 "$G-73" rollback >/dev/null

# 8. Two gids of this coordinator's epoch whose sequence numbers were never
# handed out: the coordinator answers "aborted" for both. A plain 2PC branch
# of one is the sweep's to roll back; when it has, a sweep has run since the
# 3PC branch of the other was prepared, and that one must still be uncertain.
HZ="$(curl -s "http://127.0.0.1:$P/healthz")"
CID="$(sed -n 's/.*"coord_id":"\([0-9a-f]*\)".*/\1/p' <<<"$HZ")"
EPOCH="$(sed -n 's/.*"epoch":\([0-9]*\).*/\1/p' <<<"$HZ")"
GS="$CID-$EPOCH-999999"
G2="$CID-$EPOCH-999998"
outcome_of() { curl -s -m 5 "http://127.0.0.1:$P/v1/outcomes/$1" | sed -n 's/.*"outcome":"\([a-z_]*\)".*/\1/p'; }
check "sweep: the coordinator calls $GS aborted" test "$(outcome_of "$GS")" = aborted
check "sweep: the coordinator calls $G2 aborted" test "$(outcome_of "$G2")" = aborted
check "sweep: uncertain branch of a gid the coordinator calls aborted" test "$(prep 3 "$GS" 7 "$TL")" = yes
vote_g2="$(curl -s -m 20 -XPOST "$(agent 3)/v1/branches/$G2/prepare" \
    -d '{"participant":"pg3","protocol":"2pc","statements":[{"sql":"UPDATE accounts SET balance = balance + 1 WHERE id = 9"}]}' |
    sed -n 's/.*"vote":"\([a-z_]*\)".*/\1/p')"
check "sweep: a 2PC branch of another such gid votes yes" test "$vote_g2" = yes
# The agent forgets G2's vote once the sweep rolled it back: wait for
# PostgreSQL to lose the prepared branch (sweep every 5 s, minimum age 1 s).
check "sweep: the 2PC branch is rolled back by a sweep (within 20 s)" \
    wait_eq 20 0 psql_n 3 "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'txc:$G2:pg3'"
check "sweep: the 3PC branch is still uncertain after that sweep" test "$(state 3 "$GS")" = uncertain
check "sweep: ... and still prepared in PostgreSQL" \
    test "$(psql_n 3 "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'txc:$GS:pg3'")" = 1
post 3 "$GS" rollback >/dev/null

# 9.
body='{"protocol":"3pc","commit":true,"branches":[{"participant":"pg1","statements":[{"sql":"UPDATE accounts SET balance = balance - 1 WHERE id = 8"}]},{"participant":"pg2","statements":[{"sql":"UPDATE accounts SET balance = balance + 1 WHERE id = 8"}]}]}'
check "coordinator: one-shot 3pc transaction committed" \
    bash -c "curl -s -m 30 -XPOST http://127.0.0.1:$P/v1/transactions -d '$body' | grep -q '\"outcome\":\"committed\"'"

# 10.
"$CL" stop agent2 --dir "$DIR" >/dev/null 2>&1
"$CL" start agent2 --dir "$DIR" -- --3pc-log-compact-bytes 4096 >/dev/null 2>&1
ncompact() { grep -c "branches3pc.log compacted" "$DIR/agent2.log"; }
check "retention: branch to commit voted yes" test "$(prep 2 "$G-8" 8 "$TL")" = yes
post 2 "$G-8" precommit >/dev/null
post 2 "$G-8" commit >/dev/null
check "retention: branch to abort voted yes" test "$(prep 2 "$G-9" 9 "$TL")" = yes
post 2 "$G-9" rollback >/dev/null
check "retention: committed and aborted" test "$(state 2 "$G-8") $(state 2 "$G-9")" = "committed aborted"
before="$(ncompact)"
for k in $(seq 1 40); do # each adds ~0.5 KB to agent2's log
    [ "$(ncompact)" -gt "$before" ] && break
    prep 2 "$G-$((100 + k))" $((20 + k)) "$TL" >/dev/null
    post 2 "$G-$((100 + k))" rollback >/dev/null
    sleep 0.2 # the tick compacts
done
check "retention: branches3pc.log compacted after they finished" test "$(ncompact)" -gt "$before"
check "retention: compaction kept the finished branches" \
    bash -c "grep 'branches3pc.log compacted' '$DIR/agent2.log' | tail -n 1 | grep -Eq ', [1-9][0-9]* finished within [0-9]+ s kept'"
"$CL" kill agent2 --dir "$DIR" >/dev/null 2>&1
"$CL" start agent2 --dir "$DIR" >/dev/null 2>&1
check "retention: after compaction and restart, still committed" test "$(state 2 "$G-8")" = committed
check "retention: after compaction and restart, still aborted" test "$(state 2 "$G-9")" = aborted

# 11.
"$CL" psql 3 --dir "$DIR" -qc "BEGIN; UPDATE accounts SET balance = balance WHERE id = 50; SELECT pg_sleep(30); COMMIT;" >/dev/null 2>&1 &
locker=$!
check "shutdown: the lock holder holds row 50" wait_eq 10 1 psql_n 3 \
    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()"
curl -s -m 40 -XPOST "$(agent 3)/v1/branches/$G-7/statements" \
    -d '{"participant":"pg3","sql":"UPDATE accounts SET balance = balance + 1 WHERE id = 50"}' >/dev/null 2>&1 &
blocked=$!
check "shutdown: the agent's statement waits on the lock" wait_eq 10 1 psql_n 3 \
    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'txagent pg3 %' AND wait_event_type = 'Lock'"
pid3="$(cat "$DIR/agent3.pid")"
kill -TERM "$pid3"
# Liveness, not speed: 15 s, where the lock is held for 30 (an ASan build's
# exit, with its leak check, takes its time on a loaded machine).
gone() { for _ in $(seq 1 150); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
check "shutdown: agent exits within 15 s while a statement waits 30 s on a lock" gone "$pid3"
check "shutdown: the blocked statement was cancelled" grep -q "$G-7 .*canceling statement due to user request" "$DIR/agent3.log"
kill "$locker" "$blocked" 2>/dev/null
wait "$locker" "$blocked" 2>/dev/null
"$CL" start agent3 --dir "$DIR" >/dev/null 2>&1

# 11b. A call that cancelling cannot end (here COMMIT PREPARED done, then the
# handler held by a 60 s pause, standing in for a synchronous standby that
# never answers): SIGTERM exits after the 8 s grace, as a crash would, and
# the branch is committed in PostgreSQL.
"$CL" stop agent3 --dir "$DIR" >/dev/null 2>&1
TXAGENT_CRASH_POINT=after-commit-prepared=pause:60000 "$CL" start agent3 --dir "$DIR" >/dev/null 2>&1
vote_11b="$(curl -s -m 20 -XPOST "$(agent 3)/v1/branches/$G-11/prepare" \
    -d '{"participant":"pg3","protocol":"2pc","statements":[{"sql":"UPDATE accounts SET balance = balance + 1 WHERE id = 51"}]}' |
    sed -n 's/.*"vote":"\([a-z_]*\)".*/\1/p')"
check "shutdown grace: a 2PC branch votes yes" test "$vote_11b" = yes
curl -s -m 90 -XPOST "$(agent 3)/v1/branches/$G-11/commit" -d '{"participant":"pg3"}' >/dev/null 2>&1 &
held=$!
check "shutdown grace: COMMIT PREPARED ran, the handler is held" \
    wait_eq 10 yes bash -c "grep -q 'fault point after-commit-prepared reached: pausing' '$DIR/agent3.log' && echo yes"
pid3="$(cat "$DIR/agent3.pid")"
kill -TERM "$pid3"
gone_within() { for _ in $(seq 1 $(($1 * 10))); do kill -0 "$2" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
check "shutdown grace: the agent exits after its 8 s grace, not after the 60 s call" gone_within 20 "$pid3"
check "shutdown grace: it said why" grep -q "API calls still in flight after 8000 ms; exiting now" "$DIR/agent3.log"
check "shutdown grace: the branch is committed, not left prepared" \
    test "$(psql_n 3 "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'txc:$G-11:pg3'")" = 0
kill "$held" 2>/dev/null
wait "$held" 2>/dev/null
"$CL" start agent3 --dir "$DIR" >/dev/null 2>&1

# 12.
BH="127.0.0.1:$((P + 9))"
python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
held = []
while True:
    held.append(s.accept()[0])  # held open, never read nor answered
' "$((P + 9))" >"$DIR/blackhole.log" 2>&1 &
blackhole=$!
listening() { for _ in $(seq 1 50); do (: <"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
check "concurrent terminations: black hole listening on $BH" listening "$BH"
BHPEERS="[{\"participant\":\"pg1\",\"url\":\"$(agent 1)\"},{\"participant\":\"pg2\",\"url\":\"http://$BH\"},{\"participant\":\"pg3\",\"url\":\"http://$BH\"}]"
prep_unreachable() { # prep_unreachable GID...: prepare each on agent1 at once, peers behind the black hole
    local g k=0 pids=()
    for g in "$@"; do
        k=$((k + 1))
        (PEERS="$BHPEERS" prep 1 "$g" $((70 + k)) "$T" >"$DIR/vote.$g") &
        pids+=($!)
    done
    wait "${pids[@]}"
    for g in "$@"; do [ "$(cat "$DIR/vote.$g")" = yes ] || return 1; done
}
term_lines() { # term_lines GID...: agent1's start and peers-answered lines of their terminations, in log order
    local re
    re="$(printf '%s|' "$@")"
    grep -E "gid=(${re%|}) .*3pc termination: (started on worker|self uncertain, peers:)" "$DIR/agent1.log"
}
overlapped() { # the first N such lines are the N start lines
    [ "$(term_lines "$@" | head -n $# | grep -c 'started on worker')" -eq $# ]
}
decided_once() {
    local g
    for g in "$@"; do
        [ "$(grep -c "gid=$g .*3pc termination: protocol rule, no peer reachable, self uncertain -> abort" "$DIR/agent1.log")" -eq 1 ] || return 1
    done
}
all_aborted_on_1() { # all_aborted_on_1 GID...
    local g
    for g in "$@"; do [ "$(state 1 "$g")" = aborted ] || return 1; done
}
aborted_on_1() { # aborted_on_1 SECONDS GID...
    local i n="$1"
    shift
    for ((i = 0; i < n * 5; i++)); do
        all_aborted_on_1 "$@" && return 0
        sleep 0.2
    done
    return 1
}
CT=("$G-31" "$G-32" "$G-33" "$G-34")
check "concurrent terminations: four yes votes, peers unreachable" prep_unreachable "${CT[@]}"
check "concurrent terminations: all four aborted" aborted_on_1 15 "${CT[@]}"
term_lines "${CT[@]}" | sed 's/^/   /'
check "concurrent terminations: all four started before any got its peers' answers" overlapped "${CT[@]}"
check "concurrent terminations: each decided exactly once" decided_once "${CT[@]}"

CS=("$G-35" "$G-36" "$G-37" "$G-38")
check "shutdown with terminations in flight: four yes votes" prep_unreachable "${CS[@]}"
started() { for _ in $(seq 1 50); do [ "$(term_lines "$@" | grep -c 'started on worker')" -ge $# ] && return 0; sleep 0.1; done; return 1; }
check "shutdown with terminations in flight: all four started" started "${CS[@]}"
pid1="$(cat "$DIR/agent1.pid")"
kill -TERM "$pid1"
check "shutdown with terminations in flight: agent exits within 15 s" gone "$pid1"
check "shutdown with terminations in flight: clean stop" grep -q "txagent pg1 stopped" "$DIR/agent1.log"
"$CL" start agent1 --dir "$DIR" >/dev/null 2>&1
check "shutdown with terminations in flight: all four aborted (before the exit or after the restart)" \
    aborted_on_1 20 "${CS[@]}"
kill "$blackhole" 2>/dev/null
wait "$blackhole" 2>/dev/null

# 13.
sleep 1
check "no prepared transaction left" \
    test "$(psql_n 1 'SELECT count(*) FROM pg_prepared_xacts')$(psql_n 2 'SELECT count(*) FROM pg_prepared_xacts')$(psql_n 3 'SELECT count(*) FROM pg_prepared_xacts')" = 000
