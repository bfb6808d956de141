# shellcheck shell=bash disable=SC2034
# lib.sh - shell helpers shared by scripts/cluster, scripts/demo, scripts/test
# and tests/scenarios/*: messages, apt dependencies, running PostgreSQL as the
# postgres user when we are root, wait-until loops, log dumps.
#
# Source it; it defines functions and a few variables and runs nothing else:
#   TX_REPO_ROOT   absolute path of the checkout (parent of scripts/)
#   TX_APT_PACKAGES the Debian packages every script may need
# Every function returns non-zero (or dies) on failure with one message on
# stderr; callers add nothing.

if [ -n "${TX_LIB_SH_LOADED:-}" ]; then
    return 0
fi
TX_LIB_SH_LOADED=1

# runuser, iptables and friends live in /usr/sbin: root reached by `su`
# without `-`, cron or a CI agent may not have it on PATH.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH="$PATH:/usr/sbin:/sbin" ;;
esac

# Everything here talks to 127.0.0.1: never through an http_proxy the machine
# sets for its downloads (curl would send even loopback requests there). The
# meson tests inherit this from scripts/test.
case ",${no_proxy:-}," in
*,127.0.0.1,*) ;;
*) export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" ;;
esac
export NO_PROXY="$no_proxy"

TX_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TX_PROG="$(basename "$0")"

TX_APT_PACKAGES=(
    build-essential meson ninja-build pkg-config
    libpq-dev libmicrohttpd-dev libjansson-dev check libsubunit-dev libcurl4-openssl-dev
    postgresql-15 postgresql-client-15 curl jq
)

# ---- messages ---------------------------------------------------------------

tx_info() { printf '%s: %s\n' "$TX_PROG" "$*"; }
tx_warn() { printf '%s: warning: %s\n' "$TX_PROG" "$*" >&2; }
tx_die() {
    printf '%s: error: %s\n' "$TX_PROG" "$*" >&2
    exit 1
}

# tx_dump_log FILE [LINES]: print the tail of a log file on stderr, framed.
tx_dump_log() {
    local f="$1" n="${2:-80}"
    if [ -f "$f" ]; then
        printf -- '----- last %s lines of %s -----\n' "$n" "$f" >&2
        tail -n "$n" "$f" >&2 || true
        printf -- '----- end of %s -----\n' "$f" >&2
    else
        printf -- '----- %s: no such log -----\n' "$f" >&2
    fi
}

# ---- privileges -------------------------------------------------------------

tx_is_root() { [ "$(id -u)" -eq 0 ]; }

# tx_sudo CMD...: run CMD as root (directly when we are root, else via sudo).
tx_sudo() {
    if tx_is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        tx_die "need root for: $* (run as root or install sudo)"
    fi
}

# tx_as_pg CMD...: run a PostgreSQL server command (initdb, pg_ctl, postgres)
# as the postgres user when we are root (PostgreSQL refuses to run as root),
# directly otherwise. Runs from / so that an unreadable cwd does not matter.
tx_as_pg() {
    if tx_is_root; then
        id postgres >/dev/null 2>&1 ||
            tx_die "running as root but there is no 'postgres' user (install postgresql-15 or create the user)"
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# tx_pg_owns PATH...: give PATHs to the postgres user when we are root.
tx_pg_owns() {
    if tx_is_root; then
        chown -R postgres: "$@"
    fi
}

# tx_pg_can_reach DIR: make sure the user running PostgreSQL can traverse
# every directory from / down to DIR. As root, adds o+x where it is missing
# (and says so); dies with a clear message if that is not possible.
tx_pg_can_reach() {
    local dir="$1" p
    tx_is_root || return 0
    if (cd / && runuser -u postgres -- test -x "$dir") 2>/dev/null; then
        return 0
    fi
    p="$dir"
    local chain=()
    while [ "$p" != "/" ] && [ -n "$p" ]; do
        chain=("$p" "${chain[@]}")
        p="$(dirname "$p")"
    done
    for p in "${chain[@]}"; do
        if ! (cd / && runuser -u postgres -- test -x "$p") 2>/dev/null; then
            tx_info "chmod o+x $p (the postgres user must traverse it to reach $dir)"
            chmod o+x "$p" 2>/dev/null ||
                tx_die "the postgres user cannot traverse $p and chmod o+x failed; use --dir under a path it can reach (e.g. /tmp/...)"
        fi
    done
    (cd / && runuser -u postgres -- test -x "$dir") 2>/dev/null ||
        tx_die "the postgres user still cannot reach $dir (ACLs? mount options?); use --dir under /tmp"
}

# ---- PostgreSQL binaries ----------------------------------------------------

# tx_pg_bindir: prints the directory holding initdb/pg_ctl: $PG_BINDIR, else
# /usr/lib/postgresql/15/bin, else `pg_config --bindir` if it has initdb.
tx_pg_bindir() {
    local d
    for d in "${PG_BINDIR:-}" /usr/lib/postgresql/15/bin; do
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            printf '%s\n' "$d"
            return 0
        fi
    done
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [ -n "$d" ] && [ -x "$d/initdb" ]; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    tx_die "PostgreSQL server binaries not found (set PG_BINDIR, or install postgresql-15)"
}

# ---- apt dependencies -------------------------------------------------------

# tx_install_deps [PKG...]: install the missing ones of TX_APT_PACKAGES plus
# PKG...; `apt-get update` once, only if something is missing.
tx_install_deps() {
    local pkgs=("${TX_APT_PACKAGES[@]}" "$@") missing=() p
    for p in "${pkgs[@]}"; do
        # installed, not merely known (a removed package keeps state "rc")
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
            missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        tx_die "missing packages ${missing[*]} and no apt-get: install them by hand"
    tx_info "installing: ${missing[*]}"
    # A fresh VM's apt-daily may hold apt's locks for a while: wait for them
    # (DPkg::Lock::Timeout covers dpkg's; `update` takes the lists lock, which
    # it does not wait for, hence the retries).
    local try
    for try in $(seq 1 12); do
        tx_sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q && break
        [ "$try" -lt 12 ] || tx_die "apt-get update failed"
        tx_warn "apt-get update failed (attempt $try of 12; apt busy?); again in 10 s"
        sleep 10
    done
    tx_sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y -q --no-install-recommends "${missing[@]}" ||
        tx_die "apt-get install ${missing[*]} failed"
    # The Debian package starts a "main" cluster on port 5432 we do not use;
    # leave it alone (it does not collide with our ports).
}

# ---- waiting ----------------------------------------------------------------

# tx_wait_until TIMEOUT_S WHAT CMD...: run CMD every 0.2 s until it succeeds;
# returns 1 (after a message naming WHAT) when TIMEOUT_S passes first.
tx_wait_until() {
    local timeout="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + timeout))
    while true; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            printf '%s: timed out after %ss waiting for %s\n' "$TX_PROG" "$timeout" "$what" >&2
            return 1
        fi
        sleep 0.2
    done
}

# tx_http_ok URL: the URL answers 2xx.
tx_http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

# tx_http_answers URL: the URL answers with any HTTP status.
tx_http_answers() {
    local code
    code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true)"
    [ -n "$code" ] && [ "$code" != "000" ]
}

# tx_port_open PORT: something listens on 127.0.0.1:PORT.
tx_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
