# tests/scenarios/lib.sh - helpers for the scenario scripts (tests/scenarios/NN-*.sh).
#
# Source it, then call scen_init NAME BASE_PORT first. It gives a scenario:
#   - a throwaway cluster (scripts/cluster) in its own temp dir on its own ports,
#     always torn down on exit (cluster down --purge), whatever happens;
#   - the tails of every component's log on failure (and on an unexpected exit);
#   - step N "text", check "what" CMD..., expect_eq, wait_until, require;
#   - psql_at I SQL, api METHOD PATH [BODY] (curl, with a timeout), and small
#     queries on markers, prepared branches and balances.
# Exit status of the scenario: 0 when every check passed, 1 otherwise.
#
# Environment:
#   TXCOORD_BUILD_DIR  build tree with coordinator/txcoord, participant/txagent and
#                      tests/scenarios/txbank (default <repo>/build)
#   SCENARIO_KEEP=1    keep the cluster directory (stopped) for a post-mortem
#   SCENARIO_LONG=1 or TXCOORD_LONG=1 (scripts/test --long): long forms
#   API_TIMEOUT        seconds for one REST call (default 30)
#   SCENARIO_WAIT_S    default wait for recovery (default 60)
#   SCENARIO_BASE_PORT start from these 20 ports instead of the scenario's own
#                      (either range moves up by 1000 while a port in it is in use)

# shellcheck shell=bash disable=SC2016,SC2034 # SQL/JSON text with $1; variables for the scripts
# shellcheck source=../../scripts/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)/scripts/lib.sh"

SCEN_SRC_DIR="$TX_REPO_ROOT/tests/scenarios"
CLUSTER_SH="$TX_REPO_ROOT/scripts/cluster"
export TXCOORD_BUILD_DIR="${TXCOORD_BUILD_DIR:-$TX_REPO_ROOT/build}"
TXBANK="${TXBANK:-$TXCOORD_BUILD_DIR/tests/scenarios/txbank}"
SCEN_WAIT_S="${SCENARIO_WAIT_S:-60}"

SCEN_NAME=""
SCEN_DIR=""   # temp dir of this run
CDIR=""       # the cluster's directory (inside SCEN_DIR)
SCEN_PORT=""
SCEN_PASS=0
SCEN_FAIL=0
SCEN_STEP=""
SCEN_CLEANUP=() # commands run (eval) at exit, before the cluster goes down
API_STATUS=""
API_BODY=""

scen_long() { [ "${SCENARIO_LONG:-0}" = 1 ] || [ "${TXCOORD_LONG:-0}" = 1 ]; }

# ---- life cycle ----------------------------------------------------------------

# scen_leftovers: on SCEN_PORT's range, a run killed hard (SIGKILL: no exit
# trap) left its cluster running: stop and remove it. Only when the script
# that made it is gone (its pid in owner.pid); a live one is another run,
# left alone.
scen_leftovers() {
    local old owner
    for old in /tmp/txscen-"${SCEN_PORT}"-*; do
        [ -d "$old" ] || continue
        owner="$(cat "$old/owner.pid" 2>/dev/null || true)"
        if [[ "$owner" =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null; then
            echo "$SCEN_NAME: warning: $old belongs to a live run (pid $owner) on the same ports"
            continue
        fi
        [ "${SCENARIO_KEEP:-0}" = 1 ] && continue
        echo "$SCEN_NAME: removing the leftover of an earlier run: $old"
        if [ -d "$old/cluster" ] && ! "$CLUSTER_SH" --dir "$old/cluster" down --purge >/dev/null 2>&1; then
            echo "$SCEN_NAME: warning: could not stop the cluster in $old; left in place"
            continue
        fi
        rm -rf "$old"
    done
    return 0
}

# scen_init NAME BASE_PORT: temp dir, traps. Ports BASE_PORT..BASE_PORT+19 are
# ours (SCENARIO_BASE_PORT overrides, e.g. to run a second copy alongside; a
# range found in use moves up by 1000).
scen_init() {
    SCEN_NAME="$1"
    SCEN_PORT="${SCENARIO_BASE_PORT:-$2}"
    TX_PROG="$SCEN_NAME"
    # Something else (a CI agent's proxy on 8000 or 8080, a second run) may
    # listen in our range: move by 1000, clear of every scenario's own range
    # (7920..8299), until all 20 ports refuse connections. A leftover of ours
    # on a range is removed first (scen_leftovers).
    local try off busy
    for try in 1 2 3 4; do
        scen_leftovers
        busy=""
        for off in $(seq 0 19); do
            if tx_port_open $((SCEN_PORT + off)); then
                busy=$((SCEN_PORT + off))
                break
            fi
        done
        [ -z "$busy" ] && break
        [ "$try" -lt 4 ] || { echo "$SCEN_NAME: port $busy in use and no free range found" >&2; exit 1; }
        echo "$SCEN_NAME: port $busy is in use: base port $SCEN_PORT -> $((SCEN_PORT + 1000))"
        SCEN_PORT=$((SCEN_PORT + 1000))
    done
    SCEN_DIR="$(mktemp -d "/tmp/txscen-${SCEN_PORT}-XXXXXX")"
    chmod 755 "$SCEN_DIR"
    echo "$$" >"$SCEN_DIR/owner.pid"
    CDIR="$SCEN_DIR/cluster"
    # agents sweep every second (default 5): recovery waits stay short
    export TXAGENT_ARGS="${TXAGENT_ARGS:---resolve-interval-ms 1000}"
    trap scen_exit EXIT
    trap scen_interrupted INT TERM
    printf '### scenario %s (base port %s, dir %s)\n' "$SCEN_NAME" "$SCEN_PORT" "$SCEN_DIR"
    local b
    for b in "$TXCOORD_BUILD_DIR/coordinator/txcoord" "$TXCOORD_BUILD_DIR/participant/txagent"; do
        [ -x "$b" ] || scen_abort "$b not built (set TXCOORD_BUILD_DIR or build first)"
    done
}

# INT/TERM (meson's timeout sends TERM, then KILLs the process group half a
# second later): first start a purge of the cluster in its own session, which
# that KILL cannot reach (the cluster's processes run in their own sessions
# too), then run the scenario's own cleanups (on_exit: iptables rules,
# proxies, helper processes) while there is time, and exit without
# scen_exit: a second `down` would race that purge.
scen_interrupted() {
    trap - EXIT INT TERM
    set +e
    echo "$SCEN_NAME: interrupted" >&2
    if [ -n "${CDIR:-}" ] && [ -d "$CDIR" ] && [ "${SCENARIO_KEEP:-0}" != 1 ]; then
        setsid bash -c '"$1" --dir "$2" down --purge && rm -rf "$3"' _ \
            "$CLUSTER_SH" "$CDIR" "$SCEN_DIR" </dev/null >/dev/null 2>&1 &
    fi
    local c
    for c in "${SCEN_CLEANUP[@]}"; do
        eval "$c" >/dev/null 2>&1
    done
    exit 130
}

# run_tee FILE CMD...: CMD's stdout to stdout and FILE; returns CMD's status
# (pipefail). For long commands: they run in the background and are waited
# for, because bash defers a trap until a FOREGROUND command ends, and meson's
# timeout KILLs the process group half a second after its TERM, before a
# txbank that first finishes its transfers in flight has ended: the TERM trap
# (scen_interrupted, which stops the cluster) would never run. `wait` returns
# at once on a trapped signal.
run_tee() {
    local out="$1"
    shift
    { "$@" | tee "$out"; } &
    wait $!
}

# on_exit CMD: run CMD (eval'd) at exit, before the cluster goes down (LIFO).
on_exit() { SCEN_CLEANUP=("$1" "${SCEN_CLEANUP[@]}"); }

scen_exit() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    local c
    for c in "${SCEN_CLEANUP[@]}"; do
        eval "$c" >/dev/null 2>&1
    done
    if [ "$rc" -ne 0 ] || [ "$SCEN_FAIL" -ne 0 ]; then
        [ -n "$CDIR" ] && [ -d "$CDIR" ] && "$CLUSTER_SH" --dir "$CDIR" status >&2 2>&1
        dump_prepared
    fi
    if [ -n "$CDIR" ] && [ -d "$CDIR" ]; then
        # Stop everything first (SIGTERM): sanitizers report leaks at exit.
        "$CLUSTER_SH" --dir "$CDIR" down >/dev/null 2>&1
        if [ "$rc" -eq 0 ]; then
            check "no sanitizer report in the run's logs" no_sanitizer_reports
        fi
    fi
    if [ "$rc" -ne 0 ] || [ "$SCEN_FAIL" -ne 0 ]; then
        [ "$rc" -ne 0 ] && [ "$SCEN_FAIL" -eq 0 ] &&
            printf 'FAIL: scenario stopped early (exit %s) during step %s\n' "$rc" "${SCEN_STEP:-?}"
        dump_logs
    fi
    if [ -n "$CDIR" ] && [ -d "$CDIR" ]; then
        if [ "${SCENARIO_KEEP:-0}" = 1 ]; then
            echo "$SCEN_NAME: cluster kept (stopped) in $CDIR"
        elif ! "$CLUSTER_SH" --dir "$CDIR" down --purge >/dev/null 2>&1; then
            # Something still runs there: keep the directory, so that the
            # next run's leftover scan finds it and stops it.
            echo "$SCEN_NAME: could not stop the cluster in $CDIR; left in place" >&2
            SCENARIO_KEEP=1
        fi
    fi
    if [ "${SCENARIO_KEEP:-0}" != 1 ] && [ -n "$SCEN_DIR" ]; then
        rm -rf "$SCEN_DIR"
    fi
    if [ "$rc" -eq 0 ] && [ "$SCEN_FAIL" -eq 0 ]; then
        printf '### %s: PASS (%s checks)\n' "$SCEN_NAME" "$SCEN_PASS"
        exit 0
    fi
    printf '### %s: FAIL (%s of %s checks failed%s)\n' "$SCEN_NAME" "$SCEN_FAIL" \
        "$((SCEN_PASS + SCEN_FAIL))" "$([ "$rc" -ne 0 ] && echo ", stopped early")"
    exit 1
}

# scen_abort MSG: a precondition failed; stop here (logs are dumped).
scen_abort() {
    printf 'FAIL: %s\n' "$*"
    SCEN_FAIL=$((SCEN_FAIL + 1))
    exit 1
}

# no_sanitizer_reports: ASan/UBSan/LSan said nothing in any log or output
# file of the run: the coordinator's and agents', and the scenario's own tools'
# (txproxy, txbank: built with the same sanitizers; a scenario waits for them
# to exit first). PostgreSQL's logs are not ours.
no_sanitizer_reports() {
    local hits
    hits="$(find "$SCEN_DIR" \( -name '*.log' -o -name '*.out' \) -not -path '*/pg[0-9]*/*' \
        -exec grep -l -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' {} + 2>/dev/null)"
    [ -z "$hits" ] || {
        echo "    sanitizer reports in: $hits"
        return 1
    }
}

dump_logs() {
    [ -n "$CDIR" ] && [ -d "$CDIR" ] || return 0
    echo "----- logs of $SCEN_NAME (cluster in $CDIR) -----" >&2
    local f
    for f in "$CDIR/coordinator.log" "$CDIR"/agent[1-9].log "$CDIR"/pg[1-9]/postgres.log; do
        [ -f "$f" ] && tx_dump_log "$f" "${SCENARIO_LOG_LINES:-150}"
    done
}

# dump_prepared: what each PostgreSQL still has prepared (while they run).
dump_prepared() {
    [ -n "$CDIR" ] && [ -d "$CDIR" ] || return 0
    local i
    for i in 1 2 3; do
        printf 'pg%s prepared: %s\n' "$i" \
            "$(psql_at "$i" "SELECT string_agg(gid, ' ') FROM pg_prepared_xacts" 2>&1)" >&2
    done
}

# ---- output and checks -----------------------------------------------------------

step() {
    SCEN_STEP="$1"
    shift
    printf '\n== step %s: %s  [t=%ss]\n' "$SCEN_STEP" "$*" "$SECONDS"
}

pass() {
    SCEN_PASS=$((SCEN_PASS + 1))
    printf 'PASS: %s\n' "$*"
}

fail() {
    SCEN_FAIL=$((SCEN_FAIL + 1))
    printf 'FAIL: %s\n' "$*"
}

# check WHAT CMD...: run CMD; PASS or FAIL. Always returns 0 (the scenario goes on).
check() {
    local what="$1"
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
    return 0
}

# require WHAT CMD...: like check, but stop the scenario on failure.
require() {
    local what="$1"
    shift
    if "$@"; then
        pass "$what"
    else
        fail "$what"
        exit 1
    fi
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
    if [ "$2" = "$3" ]; then pass "$1 (= $3)"; else fail "$1: got '$2', expected '$3'"; fi
    return 0
}

# wait_until TIMEOUT_S CMD...: CMD every 0.25 s until it succeeds; 1 after TIMEOUT_S.
wait_until() {
    local timeout="$1"
    shift
    local deadline=$((SECONDS + timeout))
    while true; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            printf '    (gave up after %ss: %s)\n' "$timeout" "$*"
            return 1
        fi
        sleep 0.25
    done
}

# holds_for SECONDS CMD...: CMD keeps succeeding for SECONDS (checked every 0.5 s).
holds_for() {
    local secs="$1"
    shift
    local deadline=$((SECONDS + secs))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! "$@" >/dev/null 2>&1; then
            printf '    (stopped holding after %ss: %s)\n' "$((secs - deadline + SECONDS))" "$*"
            return 1
        fi
        sleep 0.5
    done
    "$@" >/dev/null 2>&1
}

# ---- cluster -------------------------------------------------------------------------

# cl ARGS...: scripts/cluster on our cluster, its output indented.
cl() {
    "$CLUSTER_SH" --dir "$CDIR" "$@" 2>&1 | sed 's/^/    | /'
}

# cluster_up [UP-ARGS...]: start 3 PostgreSQL, 3 agents, 1 coordinator; load
# the cluster's environment (TXCOORD_URL, PG<i>_PORT, ...).
cluster_up() {
    cl up --participants 3 --base-port "$SCEN_PORT" "$@" || scen_abort "scripts/cluster up failed"
    eval "$("$CLUSTER_SH" --dir "$CDIR" env)"
}

# step_cluster3 N: step N, a cluster up, the 3 demo accounts reset.
step_cluster3() {
    step "$1" "start a cluster (3 PostgreSQL, 3 agents, coordinator); account i in pg i, 1000 each"
    cluster_up
    bank3_reset
}

# component_port NAME: the port of coordinator | agent<i>.
component_port() {
    case "$1" in
    coordinator) echo "$SCEN_PORT" ;;
    agent*) echo $((SCEN_PORT + ${1#agent})) ;;
    esac
}

# kill_component NAME: SIGKILL it and wait until its port is closed.
# scripts/cluster kill returns once the process is a zombie, but with several
# threads the leader is a zombie while the others still exit and hold the
# listening socket: a start right after it then fails ("port already in use").
kill_component() {
    cl kill "$1"
    wait_until 10 not tx_port_open "$(component_port "$1")" ||
        fail "$1: port $(component_port "$1") still open 10 s after SIGKILL"
}

# restart_armed COMPONENT POINT: restart coordinator | agent<i> with a crash point armed.
restart_armed() {
    local var=TXCOORD_CRASH_POINT
    [ "$1" = coordinator ] || var=TXAGENT_CRASH_POINT
    echo "    $var=$2 scripts/cluster start $1"
    kill_component "$1"
    env "$var=$2" "$CLUSTER_SH" --dir "$CDIR" start "$1" 2>&1 | sed 's/^/    | /'
}

# commit_crashes GID COMPONENT POINT: commit GID; COMPONENT dies at POINT.
# For the coordinator the answer must be lost; the caller checks agents' answers.
commit_crashes() {
    commit "$1"
    if [ "$3" = before-end-record ]; then
        # every branch committed already: the answer may have gone out before 'E'
        check "commit answer lost, or committed (never aborted): got $API_STATUS" \
            test "$API_STATUS" = 000 -o "$API_STATUS $(jget .outcome)" = "200 committed"
    elif [ "$2" = coordinator ]; then
        expect_eq "commit answer lost (no HTTP answer)" "$API_STATUS" 000
    fi
    check "$2 process is gone" wait_until 10 component_dead "$2"
    check "$2 log: crash point $3 reached" crash_logged "$2" "$3"
}

# decided_in_doubt VAR: commit decided and logged, coordinator dead (crash point
# after-decision-log), all 3 branches prepared: the in-doubt state many
# scenarios start from. Sets VAR to the gid. Leaves the coordinator down.
decided_in_doubt() {
    local __g
    restart_armed coordinator after-decision-log
    begin3 __g
    commit_crashes "$__g" coordinator after-decision-log
    check "decision log holds the commit record of $__g" dlog_has C "$__g"
    expect_eq "branches prepared in pg1, pg2, pg3" "$(prepared_of "$__g")" 3
    printf -v "$1" '%s' "$__g"
}

# component_pid NAME: pid of coordinator | agent<i> if alive (not a zombie).
component_pid() {
    local pid st
    pid="$(cat "$CDIR/$1.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    st="$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" || return 1
    [ -n "$st" ] && [ "$st" != Z ] || return 1
    echo "$pid"
}
component_alive() { component_pid "$1" >/dev/null; }
component_dead() { ! component_alive "$1"; }

# crash_logged NAME POINT: the component's log says the crash point was reached.
crash_logged() { grep -q "crash point $2 reached" "$CDIR/$1.log"; }

# ---- SQL -----------------------------------------------------------------------------

PSQL=""
psql_bin() {
    [ -n "$PSQL" ] || PSQL="$(tx_pg_bindir)/psql"
    echo "$PSQL"
}

# psql_at I SQL: run SQL on database txdemo of PostgreSQL I; prints rows unaligned.
psql_at() {
    local port_var="PG${1}_PORT"
    PGCONNECT_TIMEOUT=5 PGOPTIONS="-c client_min_messages=warning" "$(psql_bin)" -X -q -tA \
        -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${!port_var:-$((SCEN_PORT + 10 + $1))}" \
        -U postgres -d txdemo -c "$2"
}

# pg_sqlstate_at I SQL: run SQL; prints the SQLSTATE of its error, or "ok".
pg_sqlstate_at() {
    local port_var="PG${1}_PORT" out
    out="$(printf '\\set VERBOSITY verbose\n%s;\n' "$2" |
        PGCONNECT_TIMEOUT=5 "$(psql_bin)" -X -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 \
            -p "${!port_var}" -U postgres -d txdemo 2>&1)" && {
        echo ok
        return 0
    }
    printf '%s\n' "$out" | sed -n 's/^ERROR: *\([0-9A-Z]\{5\}\):.*/\1/p' | head -1
}

# bank3_reset: account i (balance 1000) in pg i, no transfers, no prepared branch.
bank3_reset() {
    local i
    for i in 1 2 3; do
        psql_at "$i" "TRUNCATE transfers; DELETE FROM accounts;
                      INSERT INTO accounts(id, balance) VALUES ($i, 1000)" >/dev/null ||
            scen_abort "pg$i: cannot reset the accounts"
    done
}

balance_at() { psql_at "$1" "SELECT balance FROM accounts WHERE id = $2"; }
balances() { echo "$(balance_at 1 1) $(balance_at 2 2) $(balance_at 3 3)"; }
marker_at() { psql_at "$1" "SELECT count(*) FROM transfers WHERE id = '$2'"; }
# markers_present ID: in how many of the 3 databases the marker row is.
markers_present() { echo $(($(marker_at 1 "$1") + $(marker_at 2 "$1") + $(marker_at 3 "$1"))); }
# prepared_at I [GID]: our prepared branches in pg I (of GID only if given).
prepared_at() {
    if [ -n "${2:-}" ]; then
        psql_at "$1" "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'txc:$2:%'"
    else
        psql_at "$1" "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'txc:%'"
    fi
}
# prepared_list I... / markers_list GID I...: counts for the listed databases, space-separated.
prepared_list() {
    local i out=()
    for i in "$@"; do out+=("$(prepared_at "$i")"); done
    echo "${out[*]}"
}
markers_list() {
    local gid="$1" i out=()
    shift
    for i in "$@"; do out+=("$(marker_at "$i" "$gid")"); done
    echo "${out[*]}"
}
# prepared_of GID: in how many databases a branch of GID is prepared.
prepared_of() { echo $(($(prepared_at 1 "$1") + $(prepared_at 2 "$1") + $(prepared_at 3 "$1"))); }
no_prepared_anywhere() {
    local i n
    for i in 1 2 3; do
        n="$(psql_at "$i" "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'txc:%'")" || return 1
        [ "$n" = 0 ] || return 1
    done
}
is_eq() { [ "$("${@:2}" 2>/dev/null)" = "$1" ]; } # is_eq VALUE CMD...: CMD prints VALUE
not() { ! "$@"; }

# ---- REST --------------------------------------------------------------------------------

# metric_at URL SAMPLE: the value of SAMPLE (name with its labels, as printed,
# e.g. 'txagent_sweep_resolved_total{outcome="aborted"}') on URL/metrics.
# Sends the token of API_TOKEN_FILE if set.
metric_at() {
    local args=(-s --max-time 5)
    [ -n "${API_TOKEN_FILE:-}" ] && args+=(-H "Authorization: Bearer $(head -n 1 "$API_TOKEN_FILE")")
    curl "${args[@]}" "$1/metrics" | awk -v n="$2" '$1 == n {print $2}'
}
# agent_metric I SAMPLE: metric_at on agent I.
agent_metric() {
    local var="AGENT${1}_URL"
    metric_at "${!var}" "$2"
}
# agent_metric_ge I SAMPLE MIN: SAMPLE >= MIN (numbers, decimals allowed).
agent_metric_ge() {
    local v
    v="$(agent_metric "$1" "$2")"
    [ -n "$v" ] && awk -v v="$v" -v m="$3" 'BEGIN { exit !(v + 0 >= m + 0) }'
}

# api METHOD PATH [BODY]: call the coordinator; sets API_STATUS (000 = no answer)
# and API_BODY, prints one trace line. Sends the token of API_TOKEN_FILE if set.
api() {
    local method="$1" path="$2" body="${3:-}" out
    local args=(-sS -X "$method" --max-time "${API_TIMEOUT:-30}" -H 'Content-Type: application/json'
        -w '\n%{http_code}')
    [ -n "$body" ] && args+=(-d "$body")
    [ -n "${API_TOKEN_FILE:-}" ] && args+=(-H "Authorization: Bearer $(head -n 1 "$API_TOKEN_FILE")")
    out="$(curl "${args[@]}" "$TXCOORD_URL$path" 2>/dev/null)" || true
    if [[ "$out" == *$'\n'* ]]; then
        API_STATUS="${out##*$'\n'}"
        API_BODY="${out%$'\n'*}"
    else
        API_STATUS="${out:-000}"
        API_BODY=""
    fi
    printf '    %s %s -> %s %s\n' "$method" "$path" "$API_STATUS" "$(printf '%s' "$API_BODY" | head -c 300)"
}

# jget FILTER: jq -r FILTER on API_BODY ("" when not JSON).
jget() { printf '%s' "$API_BODY" | jq -r "$1" 2>/dev/null || true; }

# begin3 VAR [BODY]: an interactive transfer touching all 3 databases, not
# committed: 100 out of account 1 (pg1), 50 into account 2 (pg2) and 50 into
# account 3 (pg3), and the marker row id = gid everywhere. Sets VAR to the gid.
# BODY is the begin request (default 2PC, 60 s timeout), e.g. a 3PC one.
# The branches are added in the order pg1, pg2, pg3.
begin3() {
    local __var="$1" __body="${2:-}" gid i
    [ -n "$__body" ] || __body='{"protocol":"2pc","timeout_ms":60000}'
    api POST /v1/transactions "$__body"
    [ "$API_STATUS" = 201 ] || scen_abort "begin: HTTP $API_STATUS"
    gid="$(jget .gid)"
    if [ -z "$gid" ] || [ "$gid" = null ]; then scen_abort "begin: no gid in the answer"; fi
    api POST "/v1/transactions/$gid/statements" \
        '{"participant":"pg1","sql":"UPDATE accounts SET balance = balance - $1 WHERE id = $2","params":[100,1]}'
    [ "$API_STATUS" = 200 ] || scen_abort "debit on pg1: HTTP $API_STATUS"
    for i in 2 3; do
        api POST "/v1/transactions/$gid/statements" \
            '{"participant":"pg'"$i"'","sql":"UPDATE accounts SET balance = balance + $1 WHERE id = $2","params":[50,'"$i"']}'
        [ "$API_STATUS" = 200 ] || scen_abort "credit on pg$i: HTTP $API_STATUS"
    done
    for i in 1 2 3; do
        api POST "/v1/transactions/$gid/statements" \
            '{"participant":"pg'"$i"'","sql":"INSERT INTO transfers(id, amount) VALUES ($1, $2)","params":["'"$gid"'",100]}'
        [ "$API_STATUS" = 200 ] || scen_abort "marker on pg$i: HTTP $API_STATUS"
    done
    printf -v "$__var" '%s' "$gid"
}

# agent_state I GID: the state agent I reports for its branch of GID
# (GET /v1/branches/GID: uncertain, precommitted, committed, aborted, ...).
agent_state() {
    local url_var="AGENT${1}_URL" auth=()
    [ -n "${API_TOKEN_FILE:-}" ] && auth=(-H "Authorization: Bearer $(head -n 1 "$API_TOKEN_FILE")")
    curl -s --max-time 5 "${auth[@]}" "${!url_var:-http://127.0.0.1:$((SCEN_PORT + $1))}/v1/branches/$2" |
        jq -r '.state // empty' 2>/dev/null
}
# agent_states GID: the three agents' states, space-separated.
agent_states() { echo "$(agent_state 1 "$1") $(agent_state 2 "$1") $(agent_state 3 "$1")"; }

# ---- 3PC crash scenarios --------------------------------------------------------------

# body_3pc RULE: a 3PC begin request with termination RULE and the agents'
# timers UNCERTAIN_MS / PRECOMMIT_MS (default 4000 ms each).
body_3pc() {
    printf '{"protocol":"3pc","timeout_ms":60000,"uncertain_timeout_ms":%d,"precommit_timeout_ms":%d,"termination":"%s"}' \
        "${UNCERTAIN_MS:-4000}" "${PRECOMMIT_MS:-4000}" "$1"
}

# outcome_is GID OUTCOME: GET /v1/outcomes/GID answers OUTCOME.
outcome_is() {
    api GET "/v1/outcomes/$1" >/dev/null
    [ "$(jget .outcome)" = "$2" ]
}

# term_logged I GID TEXT: agent I logged a 3PC termination line of GID containing TEXT.
term_logged() { grep -q "gid=$2 .*3pc termination: .*$3" "$CDIR/agent$1.log"; }

# crash_3pc N POINT RULE VAR: step N: the coordinator restarted with POINT
# armed, a 3-branch 3PC transfer (termination RULE; branches pg1, pg2, pg3 in
# that order), commit: the coordinator dies at POINT and stays down. Sets VAR
# to the gid and CRASH_AT to $SECONDS at the crash.
crash_3pc() {
    local __g
    step "$1" "termination=$3: 3PC transfer over pg1, pg2, pg3; commit; the coordinator dies at $2"
    restart_armed coordinator "$2"
    begin3 __g "$(body_3pc "$3")"
    commit_crashes "$__g" coordinator "$2"
    CRASH_AT=$SECONDS
    printf -v "$4" '%s' "$__g"
}

# settled_alone GID BOUND_S: no branch of GID is prepared anywhere within
# BOUND_S seconds of CRASH_AT, the coordinator still down. Sets TOOK_S.
settled_alone() {
    check "nothing of $1 prepared anywhere within ${2}s of the crash" \
        wait_until $(($2 - (SECONDS - CRASH_AT))) is_eq 0 prepared_of "$1"
    TOOK_S=$((SECONDS - CRASH_AT))
    echo "    all branches finished ${TOOK_S}s after the crash"
    check "coordinator still down meanwhile" component_dead coordinator
}

# tx_state_is GID STATE: GET /v1/transactions/GID answers that state.
tx_state_is() {
    api GET "/v1/transactions/$1" >/dev/null
    [ "$(jget .state)" = "$2" ]
}

# commit GID: POST commit (API_STATUS/API_BODY set).
commit() { api POST "/v1/transactions/$1/commit"; }

# all_or_nothing GID EXPECT: EXPECT = committed (marker in 3 databases, balances
# 900/1050/1050) or aborted (in none, balances 1000 each).
all_or_nothing() {
    local gid="$1" expect="$2"
    if [ "$expect" = committed ]; then
        expect_eq "marker rows of $gid in all 3 databases" "$(markers_present "$gid")" 3
        expect_eq "balances moved (account 1, 2, 3)" "$(balances)" "900 1050 1050"
    else
        expect_eq "marker rows of $gid in none of the 3 databases" "$(markers_present "$gid")" 0
        expect_eq "balances unchanged (account 1, 2, 3)" "$(balances)" "1000 1000 1000"
    fi
    expect_eq "total balance" "$(($(balance_at 1 1) + $(balance_at 2 2) + $(balance_at 3 3)))" 3000
}

# dlog_has TYPE GID: the coordinator's decision log holds a TYPE record of GID
# (C commit, P 3PC pre-commit, A 3PC abort after 'P', H heuristic:
# TYPE{"gid":GID,... ; E end: E{"gid":GID}).
# Reads the raw file: the type byte comes right before the JSON payload.
dlog_has() {
    local f="$CDIR/coordinator/decisions.log"
    case "$1" in
    C | P | H | A) grep -aqF "$1{\"gid\":\"$2\",\"" "$f" ;;
    E) grep -aqF "E{\"gid\":\"$2\"}" "$f" ;;
    *) return 2 ;;
    esac
}
