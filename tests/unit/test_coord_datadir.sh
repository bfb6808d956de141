#!/usr/bin/env bash
# test_coord_datadir.sh - txcoord's data directory at start, without agents:
#   - a first start creates coordinator.state (epoch 1) and decisions.log;
#   - a restart bumps the epoch and keeps the coordinator id;
#   - with coordinator.state present and decisions.log missing (lost, moved
#     aside) the start is refused, exit non-zero, naming the log: starting
#     would answer "aborted" for every earlier transaction, committed ones
#     included, and agents would roll their branches back;
#   - moving coordinator.state aside as the message says starts a new
#     coordinator (another id);
#   - coordinator.state missing next to a decisions.log that holds records
#     (the state was lost) is refused too: a new id would take the log's
#     committed set for its own;
#   - coordinator.state older than decisions.log (restored alone from a
#     backup): the start moves past the log's last epoch (one that logged no
#     decision included: each start's 'N' record names it) instead of issuing
#     its gids again;
#   - a start whose port is taken stops before it changes anything (no epoch
#     bumped).
# Usage: tests/unit/test_coord_datadir.sh TXCOORD
set -uo pipefail
txcoord="$1"
work="$(mktemp -d /tmp/txc-datadir.XXXXXX)"
trap 'rm -rf "$work"' EXIT
dir="$work/data"
pass=0 failed=0
ok() { echo "PASS: $1"; pass=$((pass + 1)); }
ko() { echo "FAIL: $1"; failed=$((failed + 1)); }

# run_once LOG: start txcoord, wait for it to listen (or exit), stop it;
# returns txcoord's exit status (0 after a clean SIGTERM).
run_once() {
    local log="$1" pid rc i
    "$txcoord" --listen 127.0.0.1:0 --data-dir "$dir" --participant pg1=http://127.0.0.1:1 \
        >"$log" 2>&1 &
    pid=$!
    for i in $(seq 1 100); do
        grep -q "listening on" "$log" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    return "$rc"
}
state_field() { sed -n "s/.*\"$1\": *\"\\{0,1\\}\\([0-9a-f]*\\).*/\\1/p" "$dir/coordinator.state"; }

run_once "$work/1.log" && grep -q "listening on" "$work/1.log" && ok "first start" || ko "first start: $(cat "$work/1.log")"
[ -f "$dir/decisions.log" ] && ok "decisions.log created" || ko "no decisions.log after the first start"
[ "$(state_field epoch)" = 1 ] && ok "epoch 1" || ko "epoch after the first start: $(cat "$dir/coordinator.state")"
id1="$(state_field coord_id)"

run_once "$work/2.log" && ok "restart" || ko "restart: $(cat "$work/2.log")"
[ "$(state_field epoch)" = 2 ] && ok "epoch 2 after a restart" || ko "epoch after a restart: $(cat "$dir/coordinator.state")"
[ "$(state_field coord_id)" = "$id1" ] && ok "same coordinator id" || ko "coordinator id changed"

mv "$dir/decisions.log" "$work/decisions.log.aside"
if run_once "$work/3.log"; then
    ko "started with coordinator.state but no decisions.log: $(cat "$work/3.log")"
else
    ok "refused to start without its decision log"
fi
grep -q "decisions.log is missing" "$work/3.log" && ok "... naming the missing log" || ko "message: $(cat "$work/3.log")"
grep -q "listening on" "$work/3.log" && ko "it listened all the same" || ok "... and never listened"
[ ! -e "$dir/decisions.log" ] && ok "... and created no empty log" || ko "an empty log was created"
[ "$(state_field epoch)" = 2 ] && ok "... and left the epoch alone" || ko "epoch moved: $(cat "$dir/coordinator.state")"

mv "$dir/coordinator.state" "$work/coordinator.state.aside"
run_once "$work/4.log" && ok "starts as a new coordinator once the state is moved aside" || ko "new start: $(cat "$work/4.log")"
id2="$(state_field coord_id)"
[ -n "$id2" ] && [ "$id2" != "$id1" ] && ok "with a new id" || ko "id $id2 (old $id1)"

rm -f "$dir/coordinator.state"
printf 'records of an earlier run' >"$dir/decisions.log"
if run_once "$work/5.log"; then
    ko "started as a new coordinator over a log with records: $(cat "$work/5.log")"
else
    ok "refused a new identity over a log with records"
fi
grep -q "coordinator.state is missing, but .*decisions.log holds records" "$work/5.log" &&
    ok "... naming both files" || ko "message: $(cat "$work/5.log")"
[ ! -e "$dir/coordinator.state" ] && ok "... and wrote no identity" || ko "an identity was written"

# A state file older than the log: one start at epoch 1 commits a transaction
# (nothing prepared: an 'R' record and the committed set); then the state is
# put back to what it said before that start (epoch 0).
rm -rf "$dir"
port=""
for p in $(seq 7391 7399); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { port="$p"; break; }
done
if [ -z "$port" ]; then
    ko "no free port in 7391..7399"
else
    "$txcoord" --listen "127.0.0.1:$port" --data-dir "$dir" --participant pg1=http://127.0.0.1:1 \
        >"$work/6.log" 2>&1 &
    pid=$!
    for i in $(seq 1 100); do
        grep -q "listening on" "$work/6.log" && break
        sleep 0.1
    done
    gid="$(curl -s -m 5 -X POST "http://127.0.0.1:$port/v1/transactions" -d '{}' |
        sed -n 's/.*"gid":"\([^"]*\)".*/\1/p')"
    out="$(curl -s -m 5 -X POST "http://127.0.0.1:$port/v1/transactions/$gid/commit")"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    grep -q '"committed"' <<<"$out" && ok "a transaction of epoch 1 committed ($gid)" ||
        ko "commit of $gid: $out"
    printf '{"coord_id":"%s","epoch":0}' "$(state_field coord_id)" >"$dir/coordinator.state"
    run_once "$work/7.log" && ok "restart with the older state file" || ko "restart: $(cat "$work/7.log")"
    [ "$(state_field epoch)" = 2 ] && ok "... moved past the log's epoch 1 (epoch 2, not 1 again)" ||
        ko "epoch after the restart: $(cat "$dir/coordinator.state")"
    grep -q "decisions.log holds gids of epoch 1, and coordinator.state said 0" "$work/7.log" &&
        ok "... and said why" || ko "message: $(cat "$work/7.log")"
    # That start (epoch 2) logged no decision, only its epoch record ('N'):
    # a state file put back to epoch 1 must still move past epoch 2.
    printf '{"coord_id":"%s","epoch":1}' "$(state_field coord_id)" >"$dir/coordinator.state"
    run_once "$work/7b.log" && ok "restart with a state file older than an epoch that logged no decision" ||
        ko "restart: $(cat "$work/7b.log")"
    [ "$(state_field epoch)" = 3 ] && ok "... moved past epoch 2, known from its epoch record (epoch 3)" ||
        ko "epoch after the restart: $(cat "$dir/coordinator.state")"

    # A start whose port is taken changes nothing: no epoch bumped.
    python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(30)' "$port" &
    holder=$!
    for i in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    if "$txcoord" --listen "127.0.0.1:$port" --data-dir "$dir" \
        --participant pg1=http://127.0.0.1:1 >"$work/8.log" 2>&1; then
        ko "started on a taken port: $(cat "$work/8.log")"
    else
        ok "refused a taken port"
    fi
    kill "$holder" 2>/dev/null
    wait "$holder" 2>/dev/null
    grep -q "cannot listen on 127.0.0.1:$port: Address already in use" "$work/8.log" &&
        ok "... saying so" || ko "message: $(cat "$work/8.log")"
    [ "$(state_field epoch)" = 3 ] && ok "... and bumped no epoch" ||
        ko "epoch after a start on a taken port: $(cat "$dir/coordinator.state")"
fi

# Two participants at one URL: refused at start (one agent serves one
# participant; it would show only at the first statement).
"$txcoord" --listen 127.0.0.1:0 --data-dir "$work/dup" --participant pg1=http://127.0.0.1:1/ \
    --participant pg2=http://127.0.0.1:1 >"$work/9.log" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q "URL http://127.0.0.1:1 is already participant pg1's" "$work/9.log" &&
    ok "a URL given to two participants is refused (exit 2)" || ko "exit $rc: $(cat "$work/9.log")"

# A start whose epoch record cannot be made durable (its fdatasync fails)
# stops before it serves.
rc=0
TXCOORD_CRASH_POINT=wal-fdatasync=error "$txcoord" --listen 127.0.0.1:0 --data-dir "$work/nosync" \
    --participant pg1=http://127.0.0.1:1 >"$work/10.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q "cannot record the epoch" "$work/10.log" &&
    ! grep -q "listening on" "$work/10.log" &&
    ok "a start whose epoch record fails to sync stops before serving (exit $rc)" ||
    ko "exit $rc: $(cat "$work/10.log")"

echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
