#!/usr/bin/env bash
# run_pg_live.sh - run test_pg_live against a throwaway PostgreSQL.
#
# Usage: tests/unit/run_pg_live.sh TEST_BINARY [FIRST_BASE_PORT]
# With TXCOORD_TEST_PG set, that server is used and nothing is started.
# Otherwise `scripts/cluster up --pg-only --participants 1` starts one server
# (max_prepared_transactions set by the script) in a temporary directory, on
# the first free port of FIRST+11, FIRST+21, ... (default FIRST 7870); it is
# stopped and deleted on exit, whatever happens.
set -uo pipefail

bin="$1"
first="${2:-7870}"
root="${TXCOORD_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}"
if [ -n "${TXCOORD_TEST_PG:-}" ]; then
    exec "$bin"
fi
# The same search as scripts/cluster (PG_BINDIR, /usr/lib/postgresql/15/bin,
# pg_config --bindir), in a subshell: tx_die exits.
# shellcheck source=scripts/lib.sh
(. "$root/scripts/lib.sh" && tx_pg_bindir >/dev/null 2>&1) ||
    { echo "SKIP: no PostgreSQL server binaries"; exit 77; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
P=""
for ((b = first; b < first + 40; b += 10)); do # ports first+11..first+41: no other test's
    if ! port_open "$((b + 11))"; then
        P="$b"
        break
    fi
done
[ -n "$P" ] || { echo "FAIL: no free port from $((first + 11))"; exit 1; }

T="$(mktemp -d /tmp/txc-pglive.XXXXXX)"
chmod 755 "$T"
cleanup() {
    "$root/scripts/cluster" down --purge --dir "$T/cluster" >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
# meson's timeout sends TERM, then KILLs the group half a second later: the
# purge runs in a new session, and the EXIT trap is dropped (no second purge).
interrupted() {
    setsid bash -c '"$1" down --purge --dir "$2"; rm -rf "$3"' _ \
        "$root/scripts/cluster" "$T/cluster" "$T" </dev/null >/dev/null 2>&1 &
    trap - EXIT
    exit "$1"
}
trap 'interrupted 143' TERM
trap 'interrupted 130' INT
if ! "$root/scripts/cluster" up --pg-only --participants 1 --dir "$T/cluster" --base-port "$P" \
    >"$T/up.log" 2>&1; then
    echo "FAIL: could not start PostgreSQL:"
    cat "$T/up.log"
    exit 1
fi
TXCOORD_TEST_PG="host=127.0.0.1 port=$((P + 11)) dbname=txdemo user=postgres" "$bin"
