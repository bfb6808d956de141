#!/usr/bin/env bash
# 14-agent-lost-session-fence - agent pg2 loses its PostgreSQL connection while
# its one-shot pipeline 'BEGIN; UPDATE; PREPARE TRANSACTION' waits on a row
# lock. The backend does not notice (PostgreSQL does not read the socket while
# it waits on a lock) and would run the UPDATE and the PREPARE once the lock is
# granted, with nobody left to finish the branch. The branch's first statement
# is SET LOCAL application_name: the backend has renamed itself before the
# answer could reach the agent, so the fence must not look for it by name.
# Expected: the agent terminates that backend (lost-session fence,
# participant/pool.c) as soon as PostgreSQL can be reached again, and before
# it hands out any connection: the backend is gone while the lock is still
# held; the transfer then ends all or nothing and is applied once (the agent
# re-sends the pipeline on a fresh connection: committed when the lock is
# released), and nothing stays prepared.
#
# Then the other side of the same race: the link delays every byte by 600 ms,
# pg2 runs the pipeline's PREPARE, and the link is cut while its answer is
# still on the way. The agent must not re-send the statements onto its own
# prepared rows (they would wait for the whole timeout): it finds the branch
# in pg_prepared_xacts, votes no, and the transfer aborts at once.
#
# Last, a partition only the agent hears about (txproxy `sever`): an
# interactive branch idle in transaction on pg2, holding a row lock; the
# agent's ROLLBACK finds its connection reset, while the backend, which heard
# nothing, would keep the lock for hours (until its keepalives give up). The
# agent must fence that backend too (libpq no longer tells the pid of a lost
# connection: the agent reads it when it takes the connection).
#
# agent2 reaches pg2 through bench/txproxy; `drop` resets the agent's
# connections (RST) and holds new ones until `pass`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 14-agent-lost-session-fence 8180

TXPROXY="$TXCOORD_BUILD_DIR/bench/txproxy"
[ -x "$TXPROXY" ] || scen_abort "$TXPROXY not built"
PX_PORT=$((SCEN_PORT + 19))
PX_CTL="$SCEN_DIR/pg2-link.ctl"
PROXY_PID=""
# waits for its exit (and a sanitizer's leak report) before the logs are checked
stop_proxy() {
    [ -z "$PROXY_PID" ] || { kill -TERM "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null; } || true
}
on_exit stop_proxy
HOLDER_PID=""
stop_holder() { [ -z "$HOLDER_PID" ] || kill -TERM "$HOLDER_PID" 2>/dev/null || true; }
on_exit stop_holder
# The lock holder: a psql session fed through a fifo (fd 9), so that it holds
# the row lock until the script says COMMIT, however slow the steps between.
holder_sql() { echo "$1" >&9; }
# The holder's transaction still holds its row lock (transaction id, granted).
holder_holds_lock() {
    is_eq 1 psql_at 2 "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                       WHERE a.application_name = 'scen14-holder' AND l.locktype = 'transactionid'
                       AND l.granted AND l.mode = 'ExclusiveLock'"
}
set_link() { echo "$1" >"$PX_CTL.tmp" && mv -f "$PX_CTL.tmp" "$PX_CTL"; }

# pid of agent2's backend waiting on a lock on pg2 (under its own name, or
# the one step 3's branch gives it), or nothing
waiting_backend() {
    psql_at 2 "SELECT pid FROM pg_stat_activity WHERE (application_name LIKE 'txagent pg2 %'
               OR application_name = 'scen14-renamed') AND wait_event_type = 'Lock' LIMIT 1"
}
backend_alive() { [ "$(psql_at 2 "SELECT count(*) FROM pg_stat_activity WHERE pid = $1")" = 1 ]; }
backend_gone() { ! backend_alive "$1"; }

# link_up [TXPROXY-ARGS...]: a fresh txproxy link (passing) in front of pg2,
# and agent2 restarted to reach pg2 through it.
link_up() {
    if [ -n "$PROXY_PID" ]; then
        stop_proxy
        PROXY_PID=""
        wait_until 10 not tx_port_open "$PX_PORT" || scen_abort "txproxy did not stop"
    fi
    ! tx_port_open "$PX_PORT" || scen_abort "port $PX_PORT is already in use (a txproxy left by a killed run?)"
    set_link pass
    "$TXPROXY" --listen "127.0.0.1:$PX_PORT" --target "127.0.0.1:$PG2_PORT" --control "$PX_CTL" \
        "$@" >>"$SCEN_DIR/txproxy.log" 2>&1 &
    PROXY_PID=$!
    wait_until 10 tx_port_open "$PX_PORT" || scen_abort "txproxy did not start"
    cl stop agent2
    cl start agent2 -- --pg "host=127.0.0.1 port=$PX_PORT dbname=txdemo user=postgres"
}

step_cluster3 1

step 2 "agent2 reaches pg2 through a txproxy link"
link_up
check "agent2's sessions come through the link" \
    wait_until 10 is_eq 1 psql_at 2 "SELECT least(count(*), 1) FROM pg_stat_activity
                                     WHERE application_name LIKE 'txagent pg2 %'"

step 3 "hold account 2's row lock on pg2 (until step 6); a one-shot transfer into it, whose pg2 branch renames its session first, waits"
mkfifo "$SCEN_DIR/holder.fifo"
PGAPPNAME=scen14-holder "$(psql_bin)" -X -q -h 127.0.0.1 -p "$PG2_PORT" -U postgres -d txdemo \
    <"$SCEN_DIR/holder.fifo" >/dev/null 2>&1 &
HOLDER_PID=$!
exec 9>"$SCEN_DIR/holder.fifo"
holder_sql "BEGIN; UPDATE accounts SET balance = balance WHERE id = 2;"
wait_until 10 holder_holds_lock || scen_abort "the lock holder did not start"
ONE_SHOT='{"protocol":"2pc","commit":true,"timeout_ms":60000,"branches":[
  {"participant":"pg1","statements":[{"sql":"UPDATE accounts SET balance = balance - $1 WHERE id = $2","params":[100,1]}]},
  {"participant":"pg2","statements":[{"sql":"UPDATE accounts SET balance = balance + $1 WHERE id = $2","params":[100,2]}]}]}'
ONE_SHOT_RENAMED='{"protocol":"2pc","commit":true,"timeout_ms":60000,"branches":[
  {"participant":"pg1","statements":[{"sql":"UPDATE accounts SET balance = balance - $1 WHERE id = $2","params":[100,1]}]},
  {"participant":"pg2","statements":[{"sql":"SET LOCAL application_name = '"'scen14-renamed'"'"},
                                     {"sql":"UPDATE accounts SET balance = balance + $1 WHERE id = $2","params":[100,2]}]}]}'
curl -sS -X POST --max-time 60 -H 'Content-Type: application/json' -d "$ONE_SHOT_RENAMED" \
    -w '\n%{http_code}' "$TXCOORD_URL/v1/transactions" >"$SCEN_DIR/one-shot.out" 2>&1 &
CURL_PID=$!
check "agent2's pipeline waits on the lock, under the name its branch gave it (within 10s)" \
    wait_until 10 is_eq 1 psql_at 2 "SELECT count(*) FROM pg_stat_activity
                                     WHERE application_name = 'scen14-renamed' AND wait_event_type = 'Lock'"
VICTIM="$(waiting_backend)"
echo "    agent2's waiting backend: $VICTIM"

step 4 "cut the link (connections reset, new ones held) for 2 s, then heal it"
set_link drop
sleep 2
check "the backend is still there while the link is down (it waits on the lock)" backend_alive "$VICTIM"
set_link pass

step 5 "the agent terminates the lost backend while the lock is still held"
check "backend $VICTIM gone (within 8s)" wait_until 8 backend_gone "$VICTIM"
check "the lock holder still holds the row lock (so the fence, not the lock, ended the backend)" \
    holder_holds_lock
check "agent2 logged the fence" \
    wait_until 5 grep -q "terminated lost session $VICTIM" "$CDIR/agent2.log"

step 6 "the transfer ends all or nothing, applied once; nothing left prepared"
# The agent re-sends the pipeline on a fresh connection once the old session
# is gone (BEGIN had not answered), so the transfer usually commits when the
# lock is released; if the new connection fails instead, it aborts. Without
# the fence the old session would have applied the UPDATE too, or held the
# gid prepared.
holder_sql "COMMIT;"
exec 9>&-
wait "$HOLDER_PID" || true
HOLDER_PID=""
wait "$CURL_PID" || true
ANSWER="$(tail -n 1 "$SCEN_DIR/one-shot.out")"
echo "    one-shot answer: $(head -c 300 "$SCEN_DIR/one-shot.out" | tr '\n' ' ')"
check "nothing prepared anywhere for 3 s after the lock is released" holds_for 3 no_prepared_anywhere
case "$ANSWER" in
200) expect_eq "committed once: balances" "$(balances)" "900 1100 1000" ;;
409) expect_eq "aborted: balances unchanged" "$(balances)" "1000 1000 1000" ;;
*) fail "one-shot answer status: got '$ANSWER', expected 200 or 409" ;;
esac
BAL6="$(balances)" # what the later steps must leave unchanged, whichever way step 6 went

step 7 "the link now delays every byte by 600 ms; a one-shot's PREPARE runs on pg2 and the link is cut before its answer gets back"
link_up --delay-ms 600
T0=$SECONDS
curl -sS -X POST --max-time 90 -H 'Content-Type: application/json' -d "$ONE_SHOT" \
    -w '\n%{http_code}' "$TXCOORD_URL/v1/transactions" >"$SCEN_DIR/one-shot2.out" 2>&1 &
CURL_PID=$!
# The PREPARE's answer spends 600 ms on the link: poll much faster than
# wait_until does (psql itself takes a few tens of ms, txproxy reads its
# control file every 50 ms), so that the cut comes well before it arrives.
prepared_on_pg2() { is_eq 1 psql_at 2 "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'txc:%'"; }
# The cut goes in the loop, the moment the PREPARE is seen; the check after.
for _ in $(seq 1 400); do
    if prepared_on_pg2 >/dev/null 2>&1; then
        set_link drop
        break
    fi
    sleep 0.02
done
require "pg2's branch is prepared (its answer is still on the delayed link)" prepared_on_pg2
sleep 1
set_link pass

step 8 "the agent does not re-send onto its own prepared rows: the transfer aborts at once"
wait "$CURL_PID" || true
ELAPSED=$((SECONDS - T0))
echo "    one-shot answer after ${ELAPSED}s: $(head -c 300 "$SCEN_DIR/one-shot2.out" | tr '\n' ' ')"
expect_eq "one-shot answer status" "$(tail -n 1 "$SCEN_DIR/one-shot2.out")" 409
check "answered within 40 s (a re-send would wait on the prepared rows for the 60 s timeout)" \
    test "$ELAPSED" -lt 40
check "agent2 saw that the lost pipeline's PREPARE had run" \
    grep -q "connection lost after PREPARE TRANSACTION ran" "$CDIR/agent2.log"
check "nothing prepared anywhere (within 15s)" wait_until 15 no_prepared_anywhere
expect_eq "balances as before the transfer" "$(balances)" "$BAL6"

step 9 "an interactive branch on pg2 holds account 2's row lock (idle in transaction); the link is severed: the agent hears a reset, PostgreSQL hears nothing"
link_up
api POST /v1/transactions '{"protocol":"2pc","timeout_ms":60000}'
GID_S="$(jget .gid)"
api POST "/v1/transactions/$GID_S/statements" \
    '{"participant":"pg2","sql":"UPDATE accounts SET balance = balance + $1 WHERE id = $2","params":[1,2]}'
require "the statement ran on pg2" test "$API_STATUS" = 200
idle_backend() {
    psql_at 2 "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'txagent pg2 %'
               AND state = 'idle in transaction' LIMIT 1"
}
ORPHAN="$(idle_backend)"
require "agent2's backend is idle in transaction" test -n "$ORPHAN"
echo "    agent2's backend holding the row lock: $ORPHAN"
set_link sever
sleep 0.3
api POST "/v1/transactions/$GID_S/rollback"
expect_eq "rollback answered" "$API_STATUS $(jget .outcome)" "200 aborted"
check "PostgreSQL still has the backend (it heard nothing)" backend_alive "$ORPHAN"

step 10 "the link heals: the agent terminates the lost backend, and the row lock it held is free"
set_link pass
# Any connection the agent hands out now comes through the fence first.
api POST /v1/transactions '{"protocol":"2pc","commit":true,"branches":[{"participant":"pg2","statements":[{"sql":"SELECT 1"}]}]}'
check "backend $ORPHAN gone (within 10s)" wait_until 10 backend_gone "$ORPHAN"
check "agent2 logged the fence" \
    wait_until 5 grep -q "terminated lost session $ORPHAN" "$CDIR/agent2.log"
check "account 2's row lock is free (an UPDATE with lock_timeout 2 s goes through)" \
    psql_at 2 "SET lock_timeout = 2000; UPDATE accounts SET balance = balance WHERE id = 2"
expect_eq "balances as before the rolled-back statement" "$(balances)" "$BAL6"
