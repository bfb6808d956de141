#!/usr/bin/env bash
# test_txctl_args.sh - txctl's argument checks, without a coordinator: an
# argument that is not UTF-8 (a Latin-1 'é') is refused with exit 2 and a
# message naming it, instead of being dropped from the request (jansson
# refuses such strings, and the request went out without it: later params
# shifted, or an empty body); a bad option is exit 2 (a global option after
# the command is named as such); a coordinator that cannot be reached is
# exit 3 (no answer: not the 1 of a refusal, so a script can tell an
# unknown commit outcome from an aborted one).
# Usage: tests/unit/test_txctl_args.sh TXCTL
set -uo pipefail
txctl="$1"
pass=0 failed=0
ok() { echo "PASS: $1"; pass=$((pass + 1)); }
ko() { echo "FAIL: $1"; failed=$((failed + 1)); }
# expect NAME RC PATTERN CMD...: CMD exits RC and its stderr matches PATTERN
expect() {
    local name="$1" rc="$2" pat="$3" err got
    shift 3
    err="$("$@" 2>&1 >/dev/null)"
    got=$?
    if [ "$got" = "$rc" ] && grep -qE -- "$pat" <<<"$err"; then ok "$name"; else ko "$name (exit $got: $err)"; fi
}
export TXCOORD_URL=http://127.0.0.1:1 # nothing listens there
expect "exec: a Latin-1 parameter is refused" 2 "argument 'caf\?' is not valid UTF-8" \
    "$txctl" exec g pg1 'SELECT $1::text, $2::text' $'caf\xe9' x
expect "exec: a Latin-1 statement is refused" 2 "not valid UTF-8" \
    "$txctl" exec g pg1 $'SELECT \'\xe9\''
expect "begin: a Latin-1 option value is refused" 2 "not valid UTF-8" \
    "$txctl" begin --termination $'\xff'
expect "an unknown option" 2 "unknown option" "$txctl" --nope list
expect "UTF-8 arguments go out (and find no coordinator: exit 3)" 3 "POST .*statements" \
    "$txctl" exec g pg1 'SELECT $1::text' 'café'
expect "begin: --option=value is taken" 3 "POST .*transactions" \
    "$txctl" begin --timeout-ms=5000 --protocol=2pc
expect "--url without a value" 2 "--url requires a value" "$txctl" --url
expect "--url= (empty)" 2 "--url requires a value" "$txctl" --url= list
expect "a global option after the command is named" 2 "--url goes before the command" \
    "$txctl" list --url http://127.0.0.1:1
expect "--call-timeout-ms must be positive" 2 "positive integer" "$txctl" --call-timeout-ms 0 list
expect "--call-timeout-ms=N is taken" 3 "GET .*transactions" "$txctl" --call-timeout-ms=500 list
expect "begin: a timeout past the integer range is a usage error" 2 "positive integer" \
    "$txctl" begin --timeout-ms 99999999999999999999
if "$txctl" -h 2>/dev/null | grep -q "^Usage\|usage"; then ok "-h prints the usage, exit 0"; else ko "-h: exit $?"; fi
echo "$pass passed, $failed failed"
[ "$failed" = 0 ]
