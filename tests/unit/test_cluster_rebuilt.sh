#!/usr/bin/env bash
# test_cluster_rebuilt.sh - `scripts/cluster up` on a running cluster restarts
# a coordinator or agent whose binary a build replaced since it started (its
# /proc/PID/exe reads "... (deleted)"), and leaves the others alone.
#
# Copies of the built txcoord and txagent go to a directory of this test, so
# that "rebuilding" them (a new file renamed over the old one, as a linker
# does) touches nothing else. One participant, one throwaway PostgreSQL.
#
# Usage: tests/unit/test_cluster_rebuilt.sh [FIRST_BASE_PORT]  (default 8300;
# the first free one of FIRST, FIRST+20, ... below FIRST+100 is used)
# Environment: TXCOORD_BUILD_DIR (where txcoord/txagent were built).
# Steps (PASS/FAIL each; last line "N passed, N failed"):
#   1. up: coordinator and agent1 running
#   2. up again, nothing rebuilt: same pids
#   3. the agent's binary replaced: up restarts agent1 only, saying why
#   4. both replaced: up restarts both; they answer /healthz
set -uo pipefail

root="${TXCOORD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}"
CL="$root/scripts/cluster"
BUILD="${TXCOORD_BUILD_DIR:-$root/build}"
T="$(mktemp -d /tmp/txc-rebuilt.XXXXXX)"
chmod 755 "$T"
CHECK_OUT="$T/check.out"
# shellcheck source=tests/check.sh
. "$root/tests/check.sh"
finish() {
    "$CL" down --dir "$T/c" --purge >/dev/null 2>&1
    rm -rf "$T"
    check_summary
}
# The script's own failure (an error under set -u, an explicit exit 1) wins
# over the summary, which only counts the checks that ran.
trap 'rc=$?; finish; s=$?; [ "$rc" -eq 0 ] || exit "$rc"; exit "$s"' EXIT
# meson's timeout sends TERM, then KILLs the group half a second later: the
# purge runs in a new session, and the EXIT trap is dropped (no second purge).
interrupted() {
    setsid bash -c '"$1" down --dir "$2" --purge; rm -rf "$3"' _ "$CL" "$T/c" "$T" \
        </dev/null >/dev/null 2>&1 &
    trap - EXIT
    exit "$1"
}
trap 'interrupted 143' TERM
trap 'interrupted 130' INT

first="${1:-8300}"
P=""
for ((b = first; b < first + 100; b += 20)); do
    if ! port_open "$b" && ! port_open "$((b + 1))" && ! port_open "$((b + 11))"; then
        P="$b"
        break
    fi
done
[ -n "$P" ] || { FAILED=$((FAILED + 1)); say "FAIL: no free base port from $first"; exit 1; }

mkdir -p "$T/build/coordinator" "$T/build/participant"
install_copy() { # install_copy REL: a new file with BUILD/REL's bytes, renamed over T/build/REL
    cp "$BUILD/$1" "$T/build/$1.new" && mv -f "$T/build/$1.new" "$T/build/$1"
}
install_copy coordinator/txcoord
install_copy participant/txagent
export TXCOORD_BUILD_DIR="$T/build"
up() { "$CL" up --dir "$T/c" --participants 1 --base-port "$P" >"$T/up.out" 2>&1; }
pid_of() { cat "$T/c/$1.pid" 2>/dev/null; }

# 1.
check "up: cluster started (base port $P)" up
c1="$(pid_of coordinator)" a1="$(pid_of agent1)"
check "up: coordinator and agent1 have pids" test -n "$c1" -a -n "$a1"

# 2.
check "up again: succeeds" up
check "up again, nothing rebuilt: same coordinator" test "$(pid_of coordinator)" = "$c1"
check "up again, nothing rebuilt: same agent1" test "$(pid_of agent1)" = "$a1"
check "up again: no restart said" bash -c "! grep -q 'was rebuilt' '$T/up.out'"

# 3.
install_copy participant/txagent
check "agent rebuilt: up succeeds" up
check "agent rebuilt: agent1 restarted" test "$(pid_of agent1)" != "$a1"
check "agent rebuilt: coordinator left alone" test "$(pid_of coordinator)" = "$c1"
check "agent rebuilt: up says why" grep -q "agent1 (pid $a1) runs a binary that was rebuilt" "$T/up.out"
a2="$(pid_of agent1)"

# 4.
install_copy coordinator/txcoord
install_copy participant/txagent
check "both rebuilt: up succeeds" up
check "both rebuilt: coordinator restarted" test "$(pid_of coordinator)" != "$c1"
check "both rebuilt: agent1 restarted" test "$(pid_of agent1)" != "$a2"
check "both rebuilt: coordinator answers /healthz" curl -fsS -m 5 "http://127.0.0.1:$P/healthz"
check "both rebuilt: agent1 answers /healthz" curl -fsS -m 5 "http://127.0.0.1:$((P + 1))/healthz"
check "both rebuilt: they run the new files" \
    bash -c "! readlink /proc/$(pid_of coordinator)/exe /proc/$(pid_of agent1)/exe | grep -q deleted"
