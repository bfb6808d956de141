#!/usr/bin/env bash
# 10-bank - the bank workload under random faults, then the checker.
#
# txbank (bank.c) moves money between accounts spread over the 3 databases
# with concurrent clients through the REST API (interactive and one-shot
# forms), journaling every transfer and its acknowledged outcome. Meanwhile
# inject-fault.sh runs every FAULT_MS: SIGKILL of the coordinator or an
# agent, or pg_ctl stop -m immediate of a PostgreSQL, then a restart.
# Afterwards `txbank check` waits for recovery (pg_prepared_xacts empty) and
# checks: total balance unchanged, every account = start + its committed
# transfers, every transfer's marker rows in both its databases or in neither,
# acknowledged commits present, acknowledged aborts absent, no balance < 0.
#
#   bash tests/scenarios/10-bank.sh           short form (CI): until 6 faults (at most 180 s), a fault every ~3 s
#                                             (coordinator, agent, PostgreSQL in turn)
#   bash tests/scenarios/10-bank.sh --long    (or SCENARIO_LONG=1 / TXCOORD_LONG=1)
#                                             until >= 500 random faults (one every ~1 s +
#                                             restart time: 20-40 minutes), at most 3 hours
# BANK_CLIENTS, BANK_ACCOUNTS, BANK_DURATION_S, BANK_FAULT_MS, BANK_MIN_FAULTS override.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [ "${1:-}" = --long ]; then SCENARIO_LONG=1; fi
scen_init 10-bank 8100

CLIENTS="${BANK_CLIENTS:-8}"
ACCOUNTS="${BANK_ACCOUNTS:-60}"
if scen_long; then
    DURATION="${BANK_DURATION_S:-10800}"
    FAULT_MS="${BANK_FAULT_MS:-1000}"
    MIN_FAULTS="${BANK_MIN_FAULTS:-500}"
    UNTIL=(--until-faults "$MIN_FAULTS")
else
    # Until 6 faults (every kind twice), with room for a slow machine: a
    # fixed run length would make the count a measure of its speed.
    DURATION="${BANK_DURATION_S:-180}"
    FAULT_MS="${BANK_FAULT_MS:-1500}"
    MIN_FAULTS="${BANK_MIN_FAULTS:-6}"
    UNTIL=(--until-faults "$MIN_FAULTS")
    export INJECT_MODE="${INJECT_MODE:-cycle}" # every kind of fault, twice
fi
[ -x "$TXBANK" ] || scen_abort "$TXBANK not built (tests/scenarios/meson.build)"
JOURNAL="$SCEN_DIR/bank.journal"

step 1 "start a cluster (3 PostgreSQL, 3 agents, coordinator)"
cluster_up
PGS=(--pg "$PG1_CONNINFO" --pg "$PG2_CONNINFO" --pg "$PG3_CONNINFO")

step 2 "txbank setup: $ACCOUNTS accounts (account a in database a % 3), 1000 each"
require "txbank setup" "$TXBANK" setup --accounts "$ACCOUNTS" --balance 1000 "${PGS[@]}"

step 3 "warm-up without faults (3 s): every transfer gets an answer"
run_tee "$SCEN_DIR/warmup.out" "$TXBANK" run --coordinator "$TXCOORD_URL" --clients "$CLIENTS" \
    --duration 3 --journal "$JOURNAL" "${PGS[@]}"
committed="$(sed -n 's/.*committed \([0-9]*\), aborted.*/\1/p' "$SCEN_DIR/warmup.out")"
unknown="$(sed -n 's/.*, unknown \([0-9]*\)$/\1/p' "$SCEN_DIR/warmup.out")"
check "warm-up committed transfers (got ${committed:-none})" test "${committed:-0}" -gt 0
expect_eq "warm-up transfers with an unknown outcome" "${unknown:-?}" 0

step 4 "$CLIENTS clients for up to ${DURATION}s, a fault every ${FAULT_MS} ms$(scen_long && echo ", until $MIN_FAULTS faults")"
set +e
run_tee "$SCEN_DIR/run.out" "$TXBANK" run --coordinator "$TXCOORD_URL" --clients "$CLIENTS" \
    --duration "$DURATION" --journal "$JOURNAL" "${PGS[@]}" "${UNTIL[@]}" \
    --fault-cmd "bash '$SCEN_SRC_DIR/inject-fault.sh' '$CDIR'" --fault-interval-ms "$FAULT_MS"
run_rc=$?
set -e
expect_eq "txbank run exit status" "$run_rc" 0
faults="$(sed -n 's/.*faults injected \([0-9]*\).*/\1/p' "$SCEN_DIR/run.out" | tail -1)"
check "faults injected: ${faults:-none} (>= $MIN_FAULTS)" test "${faults:-0}" -ge "$MIN_FAULTS"
fault_failed="$(sed -n 's/.*fault command runs [0-9]*, failed \([0-9]*\)).*/\1/p' "$SCEN_DIR/run.out" | tail -1)"
expect_eq "fault commands that could not restart their component" "${fault_failed:-?}" 0

step 5 "heal: every component up again (scripts/cluster up starts what is down)"
cl up
check "all components up" cl status

step 6 "txbank check: wait for recovery, then the invariants"
set +e
run_tee "$SCEN_DIR/check.out" "$TXBANK" check --coordinator "$TXCOORD_URL" --journal "$JOURNAL" \
    --wait-s 120 "${PGS[@]}"
check_rc=$?
set -e
expect_eq "txbank check exit status (0 = no violation)" "$check_rc" 0
check "txbank check reports 0 violations" grep -q "^  violations 0$" "$SCEN_DIR/check.out"
# The resolver may still be re-sending rollbacks to a just-restarted agent
# (capped backoff): in doubt must drain, not be empty at this very instant.
in_doubt_empty() {
    api GET "/v1/transactions?state=in-doubt"
    [ "$(jget '.transactions | length')" = 0 ]
}
check "coordinator: nothing left in doubt (within 60 s)" wait_until 60 in_doubt_empty

step 7 "the checker itself: remove one side of a committed transfer, txbank check must object"
victim="$(awk '$1 == "R" && $3 == "C" {print $2; exit}' "$JOURNAL")"
from="$(awk -v m="$victim" '$1 == "T" && $2 == m {print $4; exit}' "$JOURNAL")"
if [ -z "$victim" ] || [ -z "$from" ]; then
    fail "no committed transfer in the journal to tamper with"
else
    db=$((from % 3 + 1))
    expect_eq "deleted the marker of $victim in pg$db" \
        "$(psql_at "$db" "DELETE FROM transfers WHERE id = '$victim' RETURNING 1")" 1
    set +e
    "$TXBANK" check --journal "$JOURNAL" --wait-s 10 "${PGS[@]}" >"$SCEN_DIR/tampered.out" 2>&1
    tampered_rc=$?
    set -e
    expect_eq "txbank check exit status on the tampered data" "$tampered_rc" 1
    check "it reports the partial transfer $victim" grep -q "VIOLATION partial: transfer $victim" "$SCEN_DIR/tampered.out"
    check "and the acknowledged commit that is missing" grep -q "VIOLATION committed_missing: transfer $victim" "$SCEN_DIR/tampered.out"
    grep VIOLATION "$SCEN_DIR/tampered.out" | sed 's/^/    /'
fi
