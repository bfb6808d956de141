#!/usr/bin/env bash
# 13-3pc-partition-bank - the bank workload (txbank) under a symmetric network
# partition {coordinator, agent pg1} | {agent pg2, agent pg3}, cut while
# transactions are caught half-way through their PreCommit phase. 3PC is
# known to be unsafe under partitions; this scenario measures it, once per
# 3PC termination rule, and runs 2PC under the same cut as a control.
#
# Links. Every link goes through its own bench/txproxy (a control file per
# proxy: pass | drop), so each direction between two processes can be cut:
#   coordinator -> agent i   the coordinator's --participant pg<i>=URL
#   agent i -> coordinator   the agent's --coordinator URL
#   agent i -> agent j       the agent's --peer pg<j>=URL (the peer URLs the
#                            coordinator sends are its own routes to the agents)
# The cut sets every link between the two sides to drop (a blackhole: open
# connections are reset, new ones are accepted and never answered); links
# inside a side keep working. The scripts and txbank talk to the coordinator
# and the databases directly: clients sit on the coordinator's side.
#
# The window. The coordinator's fault point pauses instead of crashing
# (--crash-point NAME:N=pause:MS): from the N-th hit on, every transaction
# that reaches it sleeps PAUSE_MS there. For 3PC the point is
# 3pc-after-first-precommit (PreCommits go one at a time: the first branch
# acknowledged it, the second is still uncertain); for 2PC after-first-commit
# (the first branch committed, the second prepared). Once the first pause is
# seen and a few more transactions have piled up, txbank is frozen (SIGSTOP:
# no new transfers), and when every transaction still being decided sits in
# the pause (none voting, none between steps), the cut is made. Those
# transactions are "caught in the window"; each has a first branch b1
# (pre-committed / committed) and a second b2 (uncertain / prepared).
#
# What each one must do (A = {coordinator, pg1}, B = {pg2, pg3}); after the
# pause the coordinator goes on to commit (3PC: it goes on after a PreCommit
# timeout), reaching only A:
#   3PC, b2 in A (b1 in B): b1 pre-committed commits on its timer, b2 gets
#       PreCommit and DoCommit: no violation.
#   3PC, b1 = pg1, b2 in B: b2 is uncertain and reaches no one who knows:
#       the protocol and timeout rules abort it, pg1 commits: VIOLATION
#       (partial).
#   3PC, b1 and b2 in B: protocol rule: b2 asks b1 (same side), sees it
#       pre-committed, commits: no violation. Timeout rule: b2 aborts,
#       b1 commits: VIOLATION (partial).
#   3PC, blocking rule: b2 in B with b1 = pg1 waits for pg1 (unreachable)
#       instead of aborting: no violation, and b2 stays prepared (locks
#       held) until the heal, as 2PC's in-doubt branches; the other shapes
#       as with the protocol rule.
#   2PC: never a violation; b2 in B stays prepared (in doubt, locks held)
#       until the partition heals: 2PC blocks instead.
# The script predicts per transaction, then after healing runs `txbank
# check` and asserts: the transfers it reports as partial are exactly the
# predicted ones, the other violation kinds present are only consequences of
# those (balances, totals, acknowledged commits), and 2PC reports none.
# It prints a table of the numbers per run, with how many of the run's
# transactions the coordinator still lists in doubt after the heal (reported,
# not asserted: after a split, the branch that aborted on its own answers
# COMMIT with 409 wrong_state and the coordinator's resolver keeps retrying).
#
#   bash tests/scenarios/13-3pc-partition-bank.sh
# BANK_CLIENTS, BANK_ACCOUNTS, PART_PAUSE_FROM, PART_PAUSE_MS, PART_TIMER_MS override.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
scen_init 13-3pc-partition-bank 8160

CLIENTS="${BANK_CLIENTS:-8}"
ACCOUNTS="${BANK_ACCOUNTS:-60}"
PAUSE_FROM="${PART_PAUSE_FROM:-40}" # the fault point pauses from this hit on
PAUSE_MS="${PART_PAUSE_MS:-10000}"  # long enough to freeze, quiesce and cut
# 3PC uncertain and pre-commit timeouts: the agents' timers must not fire
# before the cut, nor before a paused transaction's next PreCommit reaches
# side A (> PAUSE_MS); the coordinator waits this long for a PreCommit ack.
TIMER_MS="${PART_TIMER_MS:-15000}"
AGENT_TIMEOUT_MS=3000 # coordinator's per-call bound (2PC commit, 3PC DoCommit)
PILE_S=1              # after the first pause, let more transactions reach it
QUIESCE_S=5           # then at most this long for the rest to settle
TXPROXY="$TXCOORD_BUILD_DIR/bench/txproxy"
[ -x "$TXPROXY" ] || scen_abort "$TXPROXY not built (bench/meson.build)"
[ -x "$TXBANK" ] || scen_abort "$TXBANK not built (tests/scenarios/meson.build)"
P="$SCEN_PORT"
PROXY_DIR="$SCEN_DIR/proxies"
mkdir -p "$PROXY_DIR"

# ---- links ---------------------------------------------------------------------------
# LINK[name] = "listen_port target_port"; name FROM-TO with coord, pg1, pg2, pg3.
# Ports: the cluster uses P (coordinator), P+1..3 (agents), P+11..13 (PostgreSQL).
declare -A LINK
for i in 1 2 3; do
    LINK[coord-pg$i]="$((P + 3 + i)) $((P + i))"
    LINK[pg$i-coord]="$((P + 6 + i)) $P"
done
LINK[pg1-pg2]="$((P + 10)) $((P + 2))"
LINK[pg1-pg3]="$((P + 14)) $((P + 3))"
LINK[pg2-pg1]="$((P + 15)) $((P + 1))"
LINK[pg2-pg3]="$((P + 16)) $((P + 3))"
LINK[pg3-pg1]="$((P + 17)) $((P + 1))"
LINK[pg3-pg2]="$((P + 18)) $((P + 2))"
link_url() { echo "http://127.0.0.1:${LINK[$1]%% *}"; }
side() { case "$1" in coord | pg1) echo A ;; *) echo B ;; esac }
crosses() { [ "$(side "${1%%-*}")" != "$(side "${1#*-}")" ]; }

PROXY_PIDS=()
stop_proxies() {
    local pid
    for pid in "${PROXY_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    # their exit (and a sanitizer's leak report) before the logs are checked
    for pid in "${PROXY_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    PROXY_PIDS=()
}
on_exit stop_proxies

start_proxies() {
    local name l t
    for name in "${!LINK[@]}"; do
        read -r l t <<<"${LINK[$name]}"
        ! tx_port_open "$l" ||
            scen_abort "port $l ($name) is already in use: a txproxy left by a killed run? (pgrep -a txproxy)"
        echo pass >"$PROXY_DIR/$name.ctl"
        "$TXPROXY" --listen "127.0.0.1:$l" --target "127.0.0.1:$t" --control "$PROXY_DIR/$name.ctl" \
            >>"$PROXY_DIR/$name.log" 2>&1 &
        PROXY_PIDS+=("$!")
    done
    for name in "${!LINK[@]}"; do
        wait_until 10 tx_port_open "${LINK[$name]%% *}" || scen_abort "txproxy $name did not start"
    done
}

# set_links MODE all|crossing: write MODE (pass, drop) to those proxies'
# control files; they re-read them every 50 ms.
set_links() {
    local name n=0
    for name in "${!LINK[@]}"; do
        if [ "$2" = all ] || crosses "$name"; then
            echo "$1" >"$PROXY_DIR/$name.ctl.tmp" && mv -f "$PROXY_DIR/$name.ctl.tmp" "$PROXY_DIR/$name.ctl"
            n=$((n + 1))
        fi
    done
    sleep 0.3
    echo "    $n links set to $1"
}

# ---- coordinator (started here: its --participant URLs are proxies) -------------------
COORD_LOG_LINES=0
coord_start() { # coord_start PROTOCOL TERMINATION FAULT_SPEC
    local args=(--listen "127.0.0.1:$P" --data-dir "$CDIR/coordinator"
        --agent-timeout-ms "$AGENT_TIMEOUT_MS" --3pc-termination "$2"
        --3pc-uncertain-timeout-ms "$TIMER_MS" --3pc-precommit-timeout-ms "$TIMER_MS"
        --crash-point "$3")
    local i
    for i in 1 2 3; do args+=(--participant "pg$i=$(link_url "coord-pg$i")"); done
    mkdir -p "$CDIR/coordinator"
    COORD_LOG_LINES="$(wc -l <"$CDIR/coordinator.log" 2>/dev/null || echo 0)"
    printf '%s %s: starting txcoord %s\n' "$(date -u +%FT%TZ)" "$SCEN_NAME" "${args[*]}" >>"$CDIR/coordinator.log"
    echo "    txcoord ${args[*]}"
    # shellcheck disable=SC2016 # $$ and $0 belong to the inner shell
    setsid nohup bash -c 'echo $$ > "$0"; exec "$@"' "$CDIR/coordinator.pid" \
        "$TXCOORD_BUILD_DIR/coordinator/txcoord" "${args[@]}" </dev/null >>"$CDIR/coordinator.log" 2>&1 &
    wait_until 30 tx_http_ok "$TXCOORD_URL/healthz" || scen_abort "the coordinator did not come up"
    # gids of this run: <coord_id>-<epoch>-<seq> (a restart bumps the epoch)
    RUN_PREFIX="$(curl -s --max-time 5 "$TXCOORD_URL/healthz" | jq -r '"\(.coord_id)-\(.epoch)-"')"
}
# pauses_seen POINT: "fault point POINT reached: pausing" lines of this coordinator run.
pauses_seen() {
    tail -n "+$((COORD_LOG_LINES + 1))" "$CDIR/coordinator.log" | grep -c "fault point $1 reached: pausing" || true
}
# coord_list: GET /v1/transactions, only this run's transactions (earlier
# runs' split 3PC transactions stay listed: see the report at the end).
coord_list() {
    curl -s --max-time 5 "$TXCOORD_URL/v1/transactions${1:+?state=$1}" |
        jq -c --arg p "$RUN_PREFIX" '.transactions |= map(select(.gid | startswith($p)))'
}

# ---- txbank ------------------------------------------------------------------------------
BANK_PID=""
bank_stop() {
    [ -n "$BANK_PID" ] || return 0
    kill -TERM "$BANK_PID" 2>/dev/null
    kill -CONT "$BANK_PID" 2>/dev/null
}
on_exit bank_stop

# ---- one run ---------------------------------------------------------------------------------
# run_partition N PROTOCOL TERMINATION: steps N..N+4. Appends to TABLE.
TABLE=()
FAILED_RUNS=0
run_partition() {
    local n="$1" proto="$2" rule="$3" point first_state label doubt
    local rd="$SCEN_DIR/run-$proto-$rule"
    mkdir -p "$rd"
    if [ "$proto" = 3pc ]; then
        point=3pc-after-first-precommit
        WIN_STATE=precommitting
        first_state=precommitted
        label="3PC, termination=$rule"
    else
        point=after-first-commit
        WIN_STATE=committing
        first_state=committed
        label="2PC (control)"
    fi

    step "$n" "$label: coordinator with --crash-point $point:$PAUSE_FROM=pause:$PAUSE_MS; fresh accounts"
    cl stop coordinator
    set_links pass all
    coord_start "$proto" "$rule" "$point:$PAUSE_FROM=pause:$PAUSE_MS"
    require "txbank setup" "$TXBANK" setup --accounts "$ACCOUNTS" --balance 1000 "${PGS[@]}"

    step "$((n + 1))" "$label: $CLIENTS clients; wait for the first pause, let more pile up, freeze txbank"
    "$TXBANK" run --coordinator "$TXCOORD_URL" --protocol "$proto" --clients "$CLIENTS" \
        --duration 600 --request-timeout-ms 120000 --journal "$rd/journal" "${PGS[@]}" \
        >"$rd/run.out" 2>&1 &
    BANK_PID=$!
    if ! wait_until 90 is_ge_1 pauses_seen "$point"; then
        fail "$label: no transaction reached $point $PAUSE_FROM times within 90 s"
        tail -5 "$rd/run.out"
        FAILED_RUNS=$((FAILED_RUNS + 1))
        bank_stop
        wait "$BANK_PID" 2>/dev/null || true
        BANK_PID=""
        return 0
    fi
    local t_first=$SECONDS
    sleep "$PILE_S"
    kill -STOP "$BANK_PID"
    echo "    txbank (pid $BANK_PID) frozen $((SECONDS - t_first))s after the first pause"
    check "every transaction being decided sits in the pause (within ${QUIESCE_S}s)" \
        wait_until "$QUIESCE_S" window_quiet "$point" "$first_state"

    step "$((n + 2))" "$label: cut {coordinator, pg1} | {pg2, pg3} while they are paused"
    window_parse "$first_state" "$(coord_list)" >"$rd/window.before"
    set_links drop crossing
    local t_cut=$SECONDS
    window_parse "$first_state" "$(coord_list)" >"$rd/window"
    check "the window held across the cut (same transactions, still paused; $((t_cut - t_first))s after the first pause)" \
        cmp -s "$rd/window.before" "$rd/window"
    local caught
    caught="$(wc -l <"$rd/window")"
    check "transactions caught in the window: $caught (>= 1)" test "$caught" -ge 1
    # predictions
    local gid b1 b2 expect_viol=0 expect_block=0
    : >"$rd/predicted"
    while read -r gid b1 b2 <&3; do
        local v=no why
        if [ "$proto" = 2pc ]; then
            why="2PC"
            if [ "$(side "$b2")" = B ]; then
                expect_block=$((expect_block + 1))
                why="2PC, $b2 in doubt until the heal"
            fi
        elif [ "$(side "$b2")" = A ]; then
            why="$b2 reachable: gets PreCommit and DoCommit; $b1 commits on its timer"
        elif [ "$(side "$b1")" = A ] && [ "$rule" = blocking ]; then
            expect_block=$((expect_block + 1))
            why="$b2 uncertain, cut off from $b1 and the coordinator: waits for $b1 until the heal"
        elif [ "$(side "$b1")" = A ]; then
            v=yes why="$b2 uncertain, cut off from $b1 and the coordinator: aborts; $b1 commits"
        elif [ "$rule" = protocol ] || [ "$rule" = blocking ]; then
            why="$b2 asks $b1 (same side), sees it pre-committed: commits"
        else
            v=yes why="timeout rule: $b2 uncertain aborts; $b1 pre-committed commits"
        fi
        local mark=""
        if [ "$v" = yes ]; then
            expect_viol=$((expect_viol + 1))
            echo "$gid" >>"$rd/predicted"
            mark="  => VIOLATION"
        fi
        printf '    %-18s %s=%s first, %s second: %s%s\n' "$gid" "$b1" "$first_state" "$b2" "$why" "$mark"
    done 3<"$rd/window"
    sort -o "$rd/predicted" "$rd/predicted"

    step "$((n + 3))" "$label: the partition lasts; each side acts on its own"
    if [ "$rule" = blocking ]; then
        # after the timers and the terminations that can decide (bounded as
        # below), side B holds exactly the branches cut off from pg1
        local bound=$(((PAUSE_MS + TIMER_MS) / 1000 + 6 * caught + 10))
        if [ "$expect_block" -gt 0 ]; then
            check "side B agents wait for pg1 (blocking rule, within ${bound}s of the cut)" \
                wait_until $((bound - (SECONDS - t_cut))) grep -qF \
                "3pc termination: blocking rule, peer pg1 unreachable -> wait" \
                "$CDIR/agent2.log" "$CDIR/agent3.log"
        fi
        check "side B left with the branches that wait for pg1: $expect_block (within ${bound}s of the cut)" \
            wait_until $((bound - (SECONDS - t_cut))) is_eq "$expect_block" sum_prepared_b
        if [ "$expect_block" -gt 0 ]; then
            check "they stay prepared while the partition lasts (3 s more)" \
                holds_for 3 is_eq "$expect_block" sum_prepared_b
        fi
        BLOCKED="$(sum_prepared_b)"
        echo "    side B: $BLOCKED branches waiting $((SECONDS - t_cut))s after the cut, the partition still on"
    elif [ "$proto" = 3pc ]; then
        # timers (<= pause + timer after the cut), then each agent runs its
        # terminations on a few workers (--3pc-termination-workers), up to 3 s
        # to ask an unreachable peer and 3 s to tell it; bounded as if they
        # ran one at a time: up to 6 s per caught branch it holds
        local bound=$(((PAUSE_MS + TIMER_MS) / 1000 + 6 * caught + 10))
        check "pg2 and pg3 finished every caught branch on their own (nothing prepared there within ${bound}s of the cut)" \
            wait_until $((bound - (SECONDS - t_cut))) is_eq "0 0" prepared_list 2 3
        echo "    pg2/pg3 settled $((SECONDS - t_cut))s after the cut, the partition still on"
        while read -r gid b1 b2 <&3; do
            local i want
            for i in "$b1" "$b2"; do
                [ "$(side "$i")" = B ] || continue
                want=committed
                if [ "$i" = "$b2" ] && grep -qx "$gid" "$rd/predicted"; then want=aborted; fi
                expect_eq "$gid: $i (side B) decided alone" "$(agent_state "${i#pg}" "$gid")" "$want"
            done
        done 3<"$rd/window"
        BLOCKED="-"
    else
        # every pause ends, the coordinator's COMMIT to side B times out
        local left=$(((PAUSE_MS + AGENT_TIMEOUT_MS) / 1000 + 2 - (SECONDS - t_cut)))
        [ "$left" -le 0 ] || sleep "$left"
        BLOCKED="$(($(prepared_at 2) + $(prepared_at 3)))"
        expect_eq "side B branches left prepared (in doubt, holding their locks) $((SECONDS - t_cut))s after the cut" \
            "$BLOCKED" "$expect_block"
        check "they stay prepared while the partition lasts (3 s more)" \
            holds_for 3 is_eq "$expect_block" sum_prepared_b
    fi

    step "$((n + 4))" "$label: heal, stop txbank, wait for recovery, txbank check"
    set_links pass all
    bank_stop
    local waited=0
    while kill -0 "$BANK_PID" 2>/dev/null && [ "$waited" -lt 180 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    wait "$BANK_PID" 2>/dev/null || true
    BANK_PID=""
    tail -5 "$rd/run.out" | sed 's/^/    /'
    check "coordinator: nothing left being decided (within 60s)" wait_until 60 nothing_deciding
    set +e
    "$TXBANK" check --coordinator "$TXCOORD_URL" --journal "$rd/journal" --wait-s 60 "${PGS[@]}" \
        >"$rd/check.out" 2>&1
    local check_rc=$?
    set -e
    sed 's/^/    /' "$rd/check.out" | tail -12
    local attempted committed nviol partial others
    attempted="$(sed -n 's/^  transfers attempted \([0-9]*\).*/\1/p' "$rd/check.out")"
    committed="$(sed -n 's/^  committed \([0-9]*\),.*/\1/p' "$rd/check.out")"
    nviol="$(sed -n 's/^  violations \([0-9]*\).*/\1/p' "$rd/check.out")"
    sed -n 's/^VIOLATION partial: transfer [^ ]* (\([^,]*\),.*/\1/p' "$rd/check.out" | sort >"$rd/partial"
    partial="$(wc -l <"$rd/partial")"
    # "violations N (kind n, kind n, ...)" -> "kind n, kind n, ..."
    others="$(sed -n 's/^  violations [0-9]* (\(.*\))$/\1/p' "$rd/check.out")"
    # The coordinator must close the split transactions too: a branch that
    # terminated the other way is recorded as a mixed outcome (logged as an
    # atomicity violation), not retried forever.
    check "coordinator: nothing left in doubt after the heal (within 60s)" wait_until 60 nothing_in_doubt
    doubt="$(coord_list in-doubt | jq '.transactions | length')"
    echo "    coordinator: ${doubt:-?} transactions of this run still in doubt after the heal"
    if [ "${doubt:-0}" -gt 0 ]; then
        { grep -h "commit refused" "$CDIR/coordinator.log" | grep -F "gid=$RUN_PREFIX" | tail -2 |
            sed 's/^/    /'; } || true
    fi
    local mixed
    mixed="$(grep "atomicity violated: the decision is" "$CDIR/coordinator.log" | grep -cF "gid=$RUN_PREFIX" || true)"
    echo "    coordinator: ${mixed:-0} mixed-outcome branches logged (atomicity violated)"
    if [ "$proto" = 2pc ]; then
        expect_eq "$label: txbank check exit status (0 = no violation)" "$check_rc" 0
        expect_eq "$label: violations" "${nviol:-?}" 0
    else
        expect_eq "$label: partial transfers reported by the checker = predicted" "$partial" "$expect_viol"
        check "$label: and they are exactly the predicted transactions (all caught in the window)" \
            cmp -s "$rd/partial" "$rd/predicted"
        if ! cmp -s "$rd/partial" "$rd/predicted"; then
            { diff "$rd/predicted" "$rd/partial" | sed 's/^/    predicted < > reported: /'; } || true
        fi
        check "$label: no violation of a kind a split decision does not explain" \
            only_split_kinds "$rd/check.out"
        if [ "$expect_viol" -gt 0 ]; then
            expect_eq "$label: txbank check exit status (1 = violations)" "$check_rc" 1
        elif [ "$rule" = blocking ]; then
            expect_eq "$label: txbank check exit status (0 = no violation)" "$check_rc" 0
            if [ "$expect_block" -gt 0 ]; then
                echo "    ($expect_block caught transactions of the shape the protocol rule splits waited for the heal instead)"
            else
                echo "    (INCONCLUSIVE for the blocking rule: no caught transaction had pg1 first and its second branch across the cut)"
            fi
        else
            echo "    (no caught transaction had the shape that breaks under this rule: nothing to violate)"
        fi
    fi
    TABLE+=("| $label | ${attempted:-?} | ${committed:-?} | $caught | $expect_viol | $partial | ${nviol:-?}${others:+ ($others)} | $BLOCKED | ${doubt:-?} |")
}

is_ge_1() { [ "$("$@")" -ge 1 ]; }
sum_prepared_b() { echo $(($(prepared_at 2) + $(prepared_at 3))); }

# window_quiet POINT FIRST_STATE: nothing is voting, and every transaction in
# WIN_STATE is paused at POINT: one branch FIRST_STATE, the others prepared,
# as many as the pauses logged.
window_quiet() {
    local js voting inwin paused pauses
    js="$(coord_list)" || return 1
    voting="$(jq '[.transactions[] | select(.state == "preparing")] | length' <<<"$js")"
    inwin="$(jq --arg w "$WIN_STATE" '[.transactions[] | select(.state == $w)] | length' <<<"$js")"
    paused="$(window_parse "$2" "$js" | wc -l)"
    pauses="$(pauses_seen "$1")"
    [ "$voting" = 0 ] && [ "$inwin" = "$paused" ] && [ "$paused" = "$pauses" ]
}
# window_parse FIRST_STATE JSON: from a GET /v1/transactions answer, "gid b1
# b2" per transaction paused at the fault point (state WIN_STATE, branch b1
# FIRST_STATE, b2 prepared), sorted.
window_parse() {
    jq -r --arg w "$WIN_STATE" --arg f "$1" '.transactions[] | select(.state == $w)
        | select(([.branches[] | select(.state == $f)] | length) == 1)
        | select(([.branches[] | select(.state == "prepared")] | length) == (.branches | length) - 1)
        | [.gid, ([.branches[] | select(.state == $f)][0].participant),
           ([.branches[] | select(.state == "prepared")][0].participant)] | join(" ")' <<<"$2" | sort
}
nothing_in_doubt() {
    local js
    js="$(coord_list in-doubt)" || return 1
    [ "$(jq '.transactions | length' <<<"$js")" = 0 ]
}
nothing_deciding() {
    local js
    js="$(coord_list)" || return 1
    [ "$(jq '[.transactions[] | select(.state == "active" or .state == "preparing" or .state == "precommitting")] | length' <<<"$js")" = 0 ]
}
# only_split_kinds CHECK_OUT: every violation kind is partial or one that a
# transfer committed on one side only entails: the balance of the account on
# that side, the total, the acknowledged commit, the coordinator's outcome.
only_split_kinds() {
    local kinds
    kinds="$(sed -n 's/^VIOLATION \([a-z_]*\):.*/\1/p' "$1" | sort -u)"
    echo "    violation kinds: ${kinds:-none}" | paste -sd' ' -
    ! grep -qvxE 'partial|balance_mismatch|total_balance|committed_missing|coordinator_mismatch' <<<"${kinds:-partial}"
}

# ---- the scenario ----------------------------------------------------------------------------
step 1 "PostgreSQL x3, 12 txproxy links (every direction between coordinator and agents, and between agents), agents routed through them"
cl up --pg-only --participants 3 --base-port "$P" || scen_abort "scripts/cluster up --pg-only failed"
eval "$("$CLUSTER_SH" --dir "$CDIR" env)"
PGS=(--pg "$PG1_CONNINFO" --pg "$PG2_CONNINFO" --pg "$PG3_CONNINFO")
start_proxies
# The agents' 2PC recovery sweep runs at start and then once an hour instead
# of every second: during the pause the coordinator is still reachable, and a
# sweep would learn the decision of a prepared 2PC branch before the cut. This
# way a 2PC branch caught in the window learns it only from COMMIT and blocks
# for the whole partition, as one whose sweep came too late does (across the
# cut a sweep cannot reach the coordinator anyway). 3PC branches are never
# swept; after the heal the coordinator's resolver re-sends COMMIT.
for i in 1 2 3; do
    extra=(--resolve-interval-ms 3600000 --coordinator "$(link_url "pg$i-coord")")
    for j in 1 2 3; do
        [ "$i" = "$j" ] || extra+=(--peer "pg$j=$(link_url "pg$i-pg$j")")
    done
    cl start "agent$i" -- "${extra[@]}"
done
for name in $(printf '%s\n' "${!LINK[@]}" | sort); do
    printf '    %-9s 127.0.0.1:%s -> :%s  %s\n' "$name" "${LINK[$name]%% *}" "${LINK[$name]#* }" \
        "$(crosses "$name" && echo "(crosses the cut)" || echo "")"
done

run_partition 2 3pc protocol
run_partition 7 3pc timeout
run_partition 12 3pc blocking
run_partition 17 2pc protocol

step 22 "summary: {coordinator, pg1} | {pg2, pg3} cut while transactions were paused after their first PreCommit (3PC) / COMMIT (2PC)"
echo "| run | transfers | committed | caught in the window | predicted violations | partial (checker) | violations (checker, all kinds) | side-B branches blocked during the cut | coordinator: left in doubt after the heal |"
echo "|---|--:|--:|--:|--:|--:|---|--:|--:|"
printf '%s\n' "${TABLE[@]}"
expect_eq "runs that could not catch a transaction" "$FAILED_RUNS" 0
