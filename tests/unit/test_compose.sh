#!/usr/bin/env bash
# test_compose.sh - docker-compose.yml as docker-compose reads it (no Docker
# engine runs on our machines, so it is never brought up): the file is valid
# (`docker-compose config`), and every option its services pass to txcoord
# and txagent is one the binary built from this tree lists in --help, with
# the required ones present. scripts/test installs docker-compose; without
# it (a hand run) the test is skipped (exit 77).
# Usage: tests/unit/test_compose.sh SOURCE_ROOT TXCOORD TXAGENT
set -uo pipefail
root="$1" txcoord="$2" txagent="$3"
if ! command -v docker-compose >/dev/null 2>&1; then
    echo "SKIP: docker-compose is not installed (scripts/test installs it)"
    exit 77
fi
pass=0 failed=0
ok() { echo "PASS: $1"; pass=$((pass + 1)); }
ko() { echo "FAIL: $1"; failed=$((failed + 1)); }

cfg="$(docker-compose -f "$root/docker-compose.yml" --project-directory "$root" config 2>&1)" &&
    ok "docker-compose config accepts the file" || ko "docker-compose config: $cfg"

# One line per (service, binary, option) from the resolved configuration,
# read by the Python that docker-compose itself runs on (its package pulls in
# python3-yaml there; another python3 on PATH may lack it).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
opts="$("$py" -c '
import sys, yaml
cfg = yaml.safe_load(sys.stdin)
for name, svc in sorted(cfg["services"].items()):
    cmd = svc.get("command") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    if not cmd or cmd[0] not in ("txcoord", "txagent"):
        continue
    print(name, cmd[0], "-")  # the service runs one of ours
    for a in cmd[1:]:
        if a.startswith("--"):
            print(name, cmd[0], a.split("=", 1)[0])
' <<<"$cfg")" || ko "reading the services' commands"

nsvc=0
while read -r svc bin opt; do
    [ -n "$opt" ] || continue
    exe="$txcoord"
    [ "$bin" = txagent ] && exe="$txagent"
    if [ "$opt" = - ]; then
        nsvc=$((nsvc + 1))
        continue
    fi
    if "$exe" --help 2>&1 | grep -qE "^  $opt( |\$)"; then
        ok "$svc: $bin knows $opt"
    else
        ko "$svc: $bin --help does not list $opt"
    fi
done <<<"$opts"
[ "$nsvc" -eq 4 ] && ok "4 services run txcoord or txagent" || ko "$nsvc services run txcoord or txagent, not 4"
for need in "coordinator txcoord --listen" "coordinator txcoord --data-dir" "coordinator txcoord --participant" \
    "agent1 txagent --pg" "agent2 txagent --name" "agent3 txagent --coordinator"; do
    grep -qxF "$need" <<<"$opts" && ok "passes $need" || ko "does not pass $need"
done

echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
