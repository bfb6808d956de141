#!/usr/bin/env bash
# test_cluster_kill.sh - scripts/cluster kill/stop return only once the
# component's port refuses connections, so that a start right after them
# cannot fail with "port already in use"; and they fail clearly (bounded)
# when the port stays open.
#
# No PostgreSQL and no real daemon: a stand-in "txagent" (python3) serves
# /healthz and forks a helper that keeps the listening socket open for a
# while after the stand-in died, as the other threads of a SIGKILLed
# multi-threaded txagent do while they are torn down.
#
# Usage: tests/unit/test_cluster_kill.sh [FIRST_BASE_PORT]  (default 8400;
# the first free one of FIRST, FIRST+10, ... below FIRST+50 is used)
# Steps (PASS/FAIL each; last line "N passed, N failed"):
#   1. start; kill; the port is closed when kill returns; start again at once
#   2. the same with stop (SIGTERM)
#   3. a port that stays open: kill fails within CLUSTER_PORT_WAIT_S, naming the port
set -uo pipefail

root="${TXCOORD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}"
CL="$root/scripts/cluster"
T="$(mktemp -d /tmp/txc-killtest.XXXXXX)"
CHECK_OUT="$T/check.out"
# shellcheck source=tests/check.sh
. "$root/tests/check.sh"
port_closed() { ! port_open "$1"; }

finish() {
    # the stand-ins and their helpers, by the pids they wrote
    local f
    for f in "$T"/*.pid "$T"/helper.*; do
        [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
    done
    rm -rf "$T"
    check_summary
}
command -v python3 >/dev/null 2>&1 || { say "SKIP: no python3"; rm -rf "$T"; exit 77; }
# The script's own failure (an error under set -u, an explicit exit 1) wins
# over the summary, which only counts the checks that ran.
trap 'rc=$?; finish; s=$?; [ "$rc" -eq 0 ] || exit "$rc"; exit "$s"' EXIT

first="${1:-8400}"
P=""
for ((b = first; b < first + 50; b += 10)); do
    if port_closed "$b" && port_closed "$((b + 1))"; then
        P="$b"
        break
    fi
done
[ -n "$P" ] || { FAILED=$((FAILED + 1)); say "FAIL: no free base port from $first"; exit 1; }
APORT=$((P + 1))

# The stand-in binary, where scripts/cluster looks for txagent.
mkdir -p "$T/build/participant" "$T/build/coordinator"
cat >"$T/build/participant/txagent" <<'EOF'
#!/usr/bin/env python3
# Stand-in txagent: answers any HTTP request 200 on --listen; a forked helper
# keeps the listening socket for HOLD_S seconds after this process died.
import os, socket, sys, time
listen = sys.argv[sys.argv.index("--listen") + 1]
host, port = listen.rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen(64)
hold = float(os.environ.get("HOLD_S", "1.5"))
parent = os.getpid()
if os.fork() == 0:
    with open(os.environ["HELPER_PIDFILE"], "w") as f:
        f.write(str(os.getpid()))
    while os.getppid() == parent:
        time.sleep(0.01)
    time.sleep(hold)
    os._exit(0)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    c.close()
EOF
chmod +x "$T/build/participant/txagent"
printf 'CLUSTER_PARTICIPANTS=1\nCLUSTER_BASE_PORT=%s\nCLUSTER_SOCK_ROOT=%s\n' "$P" "$T" >"$T/cluster.env"
export TXCOORD_BUILD_DIR="$T/build" CLUSTER_WAIT_S=10
say "stand-in agent on port $APORT, dir $T"

start() { HELPER_PIDFILE="$T/helper.$1" "$CL" start agent1 --dir "$T"; }

# 1.
check "kill: stand-in started" start 1
check "kill: returns" "$CL" kill agent1 --dir "$T"
check "kill: port closed when kill returned" port_closed "$APORT"
check "kill: start right after kill" start 2

# 2.
check "stop: returns" "$CL" stop agent1 --dir "$T"
check "stop: port closed when stop returned" port_closed "$APORT"
check "stop: start right after stop" start 3

# 3.
"$CL" kill agent1 --dir "$T" >/dev/null 2>&1
start 4 >/dev/null 2>&1
[ -f "$T/helper.4" ] && kill -STOP "$(cat "$T/helper.4")" # the helper never lets go
t0=$SECONDS
CLUSTER_PORT_WAIT_S=2 "$CL" kill agent1 --dir "$T" >"$T/kill.out" 2>&1
rc=$?
check "port held: kill fails" test "$rc" -ne 0
check "port held: within the bound" test $((SECONDS - t0)) -le 8
check "port held: the error names the port" grep -q "port $APORT still accepts connections" "$T/kill.out"
[ -f "$T/helper.4" ] && kill -KILL "$(cat "$T/helper.4")" 2>/dev/null || true
