#!/usr/bin/env bash
# inject-fault.sh CLUSTER_DIR - one fault on a running cluster, then heal it;
# the --fault-cmd of txbank run in 10-bank.sh.
#   - SIGKILL the coordinator, or SIGKILL one agent, or stop one PostgreSQL
#     with pg_ctl -m immediate (a crash: its prepared branches survive);
#   - leave it down 0-1000 ms (random) so requests meet it dead; start it again.
# Which fault: INJECT_MODE=random (default: coordinator 30%, agent 40%,
# PostgreSQL 30%) or cycle (coordinator, agent, PostgreSQL in turn, so a short
# run sees every kind; the turn is kept in CLUSTER_DIR/faults.seq). The agent
# or database is picked at random.
# Heals first: if a component is down (a previous restart failed), it runs
# `scripts/cluster up`, which starts whatever is missing.
# Prints one line saying what it did and "faults=1" (txbank counts those);
# scripts/cluster's own output goes to CLUSTER_DIR/faults.log.
# Exit non-zero if the component could not be started again, after printing
# what scripts/cluster said about it.
set -euo pipefail
dir="$1"
cluster="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)/scripts/cluster"
log="$dir/faults.log"
cl() {
    local from
    # No log yet on the first fault: the failing <"$log" inside the group
    # reports to the group's stderr, already /dev/null (outside a group the
    # < would fail before a 2> after it applied)
    from=$(($({ wc -l <"$log"; } 2>/dev/null || echo 0) + 1))
    echo "$(date -u +%T.%N | cut -c1-12) scripts/cluster $*" >>"$log"
    if ! "$cluster" --dir "$dir" "$@" >>"$log" 2>&1; then
        echo "FAILED: scripts/cluster $* (its output follows)"
        tail -n +"$from" "$log" | tail -n 40 | sed 's/^/  | /'
        return 1
    fi
}

# shellcheck disable=SC1091
. "$dir/cluster.env" # CLUSTER_BASE_PORT
# kill_wait NAME PORT: SIGKILL NAME, then wait (<= 10 s) until its port is
# closed: scripts/cluster kill returns when the process is a zombie, and the
# exiting threads of a multi-threaded one can still hold the listening socket.
kill_wait() {
    cl kill "$1"
    local n=0
    while (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; do
        n=$((n + 1))
        if [ "$n" -ge 100 ]; then
            echo "FAILED: $1 still listens on port $2 10 s after SIGKILL"
            return 1
        fi
        sleep 0.1
    done
    [ "$n" -eq 0 ] || echo "note: $1's port $2 stayed open $((n * 100)) ms after SIGKILL"
}

if ! cl status; then
    echo "heal: something was down, scripts/cluster up"
    cl up
fi
if [ "${INJECT_MODE:-random}" = cycle ]; then
    seq="$(cat "$dir/faults.seq" 2>/dev/null || echo 0)"
    echo $((seq + 1)) >"$dir/faults.seq"
    kind=$((seq % 3))
else
    r=$((RANDOM % 100))
    kind=$((r < 30 ? 0 : r < 70 ? 1 : 2))
fi
down_ms=$((RANDOM % 1000))
i=$((RANDOM % 3 + 1))
case "$kind" in
0)
    what="kill -9 coordinator"
    kill_wait coordinator "$CLUSTER_BASE_PORT"
    sleep "$(printf '0.%03d' "$down_ms")"
    cl start coordinator
    ;;
1)
    what="kill -9 agent$i"
    kill_wait "agent$i" $((CLUSTER_BASE_PORT + i))
    sleep "$(printf '0.%03d' "$down_ms")"
    cl start "agent$i"
    ;;
2)
    what="pg_ctl stop -m immediate pg$i"
    cl stop-pg "$i" --immediate
    sleep "$(printf '0.%03d' "$down_ms")"
    cl start-pg "$i"
    ;;
esac
echo "$(date -u +%T) $what, down ${down_ms} ms"
echo "faults=1"
