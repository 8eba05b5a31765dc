#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback, for the tests (CI and developers alike).
#
#   .ci/postgres.sh start DIR [PORT]   initdb in DIR/data (trust auth, 127.0.0.1 only), start it, create the
#                                      database 'hemadose'; prints the URL for HEMADOSE_TEST_DB_URL
#   .ci/postgres.sh stop DIR           stop the cluster and delete DIR
#
# PostgreSQL comes from the Debian packages: when no server binaries are found and we are root with apt-get,
# `apt-get install -y postgresql` installs them; otherwise the script fails saying so. initdb and the server
# refuse to run as root, so as root they run as the 'postgres' user (created when missing).
# The cluster trades durability for speed (fsync=off): it is thrown away after the tests.
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

bindir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$found" ] && command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
        found=$(dirname "$(command -v pg_ctl)")
    fi
    echo "$found"
}

install_postgres() {
    [ "$(id -u)" = 0 ] || die "PostgreSQL server binaries not found, and installing them needs root (apt-get install postgresql)"
    command -v apt-get >/dev/null || die "PostgreSQL server binaries not found and apt-get is unavailable: install PostgreSQL"
    echo "postgres.sh: installing PostgreSQL from the Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
}

as_owner() {  # run a server command as a non-root user (initdb and postgres refuse root)
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local dir=$1 port=${2:-}
    local bin
    bin=$(bindir)
    if [ -z "$bin" ]; then
        install_postgres
        bin=$(bindir)
        [ -n "$bin" ] || die "PostgreSQL installed but no server binaries found under /usr/lib/postgresql"
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres || die "cannot create the user postgres"
    fi
    [ -n "$port" ] || port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    # A linguistic collation (ICU English, PostgreSQL 15+), as a hospital's server is likely to have, so that
    # text ordering the tests see is not the bytes' order by luck (the C locale would hide that).
    local locale=(--locale=C)
    if "$bin/initdb" --help | grep -q -- --icu-locale; then
        locale=(--locale=C.UTF-8 --locale-provider=icu --icu-locale=en)
    fi
    as_owner "$bin/initdb" -D "$dir/data" -U hemadose -A trust -E UTF8 "${locale[@]}" --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null || { cat "$dir/server.log" >&2; die "the server did not start"; }
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U hemadose hemadose || die "createdb failed"
    echo "$bin" >"$dir/bindir"
    echo "postgresql+asyncpg://hemadose@127.0.0.1:$port/hemadose"
}

stop() {
    local dir=$1
    if [ -f "$dir/bindir" ] && [ -d "$dir/data" ]; then
        as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) [ $# -ge 2 ] || die "usage: $0 start DIR [PORT]"; start "$2" "${3:-}" ;;
    stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) die "usage: $0 start DIR [PORT] | stop DIR" ;;
esac
