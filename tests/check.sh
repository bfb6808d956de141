# tests/check.sh - PASS/FAIL counting for the shell tests outside the
# scenario suite (unit-cluster-kill, unit-cluster-rebuilt, agent-3pc-e2e).
# Source it, then:
#   check "what" CMD...   run CMD; print "PASS: what" or "FAIL: what" and count.
#                         CMD's output goes to $CHECK_OUT (default /dev/null);
#                         when that is a file, a failing check prints it indented.
#   check_summary         print "N passed, N failed"; status 0 iff none failed
#   say TEXT...           one line on stdout
#   port_open PORT        something accepts connections on 127.0.0.1:PORT
# shellcheck shell=bash
PASSED=0
FAILED=0
CHECK_OUT="${CHECK_OUT:-/dev/null}"

say() { printf '%s\n' "$*"; }

check() {
    local what="$1"
    shift
    if "$@" >"$CHECK_OUT" 2>&1; then
        PASSED=$((PASSED + 1))
        say "PASS: $what"
    else
        FAILED=$((FAILED + 1))
        say "FAIL: $what"
        [ -f "$CHECK_OUT" ] && sed 's/^/    /' "$CHECK_OUT"
    fi
    return 0
}

check_summary() {
    say "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
