#!/usr/bin/env bash
# 17-bench-smoke - txbench, the load tool of bench/ whose figures the README
# reports, run briefly against a throwaway cluster in each of its forms: the
# raw libpq baseline (3 round trips to prepare, then as one pipeline with
# --raw-pipeline) beside the coordinator's one-shot form, then beside its
# interactive form (--interactive), 2 clients, 1 s each. The cluster runs as
# bench/run's does: `--links unix`, txbench reaching txcoord and txcoord its
# agents through their Unix sockets (--listen-unix, unix:PATH URLs); an agent
# killed with SIGKILL leaves its socket file, which its next start replaces.
# Expected: txbench exits 0; in its CSV every phase committed transfers and
# had no error; the money adds up (every transfer takes 1 from an account in
# pg1 and gives 1 to one in pg2, so pg1's total falls by what pg2's rises, at
# least by the transfers counted); nothing is left prepared, neither the
# baseline's 'bench:' branches nor the coordinator's.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 17-bench-smoke 8240

TXBENCH="$TXCOORD_BUILD_DIR/bench/txbench"
[ -x "$TXBENCH" ] || scen_abort "$TXBENCH not built"

step 1 "start a cluster with --links unix (3 PostgreSQL, 3 agents, coordinator); account i in pg i, 1000 each"
cluster_up --links unix
bank3_reset
api GET /v1/participants
check "the coordinator reaches its agents through their Unix sockets, all reachable" \
    jq -e 'length == 3 and all(.[]; (.url | startswith("http+unix://")) and .reachable)' <<<"$API_BODY"
check "txctl over the coordinator's Unix socket" "$TXCOORD_BUILD_DIR/coordinator/txctl" \
    --url "$TXCOORD_UNIX_URL" list
bench() {
    "$TXBENCH" --coordinator "$TXCOORD_UNIX_URL" --participant-a pg1 --participant-b pg2 \
        --pg-a "host=127.0.0.1 port=$PG1_PORT dbname=txdemo user=postgres" \
        --pg-b "host=127.0.0.1 port=$PG2_PORT dbname=txdemo user=postgres" \
        --clients 2 --duration 1 --warmup 0 "$@"
}
total_at() { psql_at "$1" "SELECT sum(balance) FROM accounts"; }

# phases_ok CSV: every median row committed something and had no error
# (columns: mode,clients,round,tps,p50_ms,p99_ms,committed,aborted,errors,...).
phases_ok() {
    awk -F, '$3 == "median" { n++; if ($7 + 0 < 1 || $9 + 0 != 0) bad++ }
             END { exit !(n == 2 && bad == 0) }' "$1"
}
# committed_in CSV: the transfers counted in its median rows.
committed_in() { awk -F, '$3 == "median" { s += $7 } END { print s + 0 }' "$1"; }

step 2 "txbench --setup, then raw beside the coordinator's one-shot form"
require "txbench --setup runs" bench --setup --mode raw --csv "$SCEN_DIR/setup.csv"
a0="$(total_at 1)"
b0="$(total_at 2)"
check "raw and coordinator phases" bench --csv "$SCEN_DIR/one-shot.csv"
check "both phases committed, without errors" phases_ok "$SCEN_DIR/one-shot.csv"

step 3 "raw-pipe beside the coordinator's interactive form"
check "raw-pipe and coord-inter phases" bench --raw-pipeline --interactive --csv "$SCEN_DIR/inter.csv"
check "both phases committed, without errors" phases_ok "$SCEN_DIR/inter.csv"
expect_eq "its rows" "$(awk -F, '$3 == "median" { print $1 }' "$SCEN_DIR/inter.csv" | sort | xargs)" \
    "coord-inter raw-pipe"

step 4 "agent1 killed (SIGKILL leaves its socket file), started again: the file is replaced, transfers go on"
cl kill agent1
check "agent1's socket file is still there" test -S "$(dirname "${TXCOORD_UNIX_URL#unix:}")/agent1.sock"
cl start agent1
check "agent1 replaced it" grep -q "removed the socket a stopped process left" "$CDIR/agent1.log"
check "transfers through the restarted agent" bench --mode coordinator --csv "$SCEN_DIR/after-kill.csv"
expect_eq "they committed, without errors" \
    "$(awk -F, '$3 == "median" && $7 + 0 > 0 && $9 + 0 == 0 { n++ } END { print n + 0 }' "$SCEN_DIR/after-kill.csv")" 1

step 5 "the money adds up, nothing is left prepared"
counted=$(($(committed_in "$SCEN_DIR/one-shot.csv") + $(committed_in "$SCEN_DIR/inter.csv") +
    $(committed_in "$SCEN_DIR/after-kill.csv")))
a1="$(total_at 1)"
b1="$(total_at 2)"
expect_eq "pg1's total fell by what pg2's rose" "$((a0 - a1))" "$((b1 - b0))"
check "at least by the $counted transfers counted (a1 $a1, b1 $b1)" test "$((b1 - b0))" -ge "$counted"
for i in 1 2; do
    expect_eq "no branch left prepared in pg$i" "$(psql_at "$i" "SELECT count(*) FROM pg_prepared_xacts")" 0
done
