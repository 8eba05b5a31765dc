#!/usr/bin/env bash
# Back up the HemaDose PostgreSQL database and prove the copy restores.
#
#   deploy/backup.sh backup DIR      pg_dump (custom format) to DIR/hemadose-YYYYmmddTHHMMSSZ.dump (0600),
#                                    then `check` it; old dumps are kept (prune them with your own policy)
#   deploy/backup.sh check FILE      restore FILE into a scratch database, run `hemadose audit verify` on it
#                                    (the audit's hash chain intact) and count its patients, then drop it
#   deploy/backup.sh restore FILE    restore FILE into HEMADOSE_DB_URL's database (stop the replicas first:
#                                    systemctl stop 'hemadose@*'); refuses a database that has tables
#
# Reads HEMADOSE_DB_URL (postgresql+asyncpg://USER[:PASSWORD]@HOST[:PORT]/DBNAME), e.g. from
# /etc/hemadose/hemadose.env: `set -a; . /etc/hemadose/hemadose.env; set +a`. A daily run as a systemd
# timer or cron, e.g. `15 2 * * * hemadose /opt/hemadose/deploy/backup.sh backup /var/backups/hemadose`.
# pg_dump takes a consistent snapshot while the replicas run. The dump holds health data: keep DIR
# private and encrypted at rest, and copy it off the host.
set -euo pipefail

die() { echo "backup.sh: $*" >&2; exit 1; }

[ -n "${HEMADOSE_DB_URL:-}" ] || die "set HEMADOSE_DB_URL (the replicas' database URL)"
# libpq takes the URL without SQLAlchemy's driver part.
LIBPQ_URL=${HEMADOSE_DB_URL/postgresql+asyncpg:/postgresql:}
case "$LIBPQ_URL" in postgresql://*) ;; *) die "HEMADOSE_DB_URL is not a PostgreSQL URL" ;; esac
HEMADOSE=${HEMADOSE:-$(command -v hemadose || echo /opt/hemadose/.venv/bin/hemadose)}

# The same server, another database name (the URL's last path part replaced).
url_for() { echo "${1%/*}/$2"; }

SCRATCH=""
ADMIN_URL=$(url_for "$LIBPQ_URL" postgres)
drop_scratch() {
    [ -z "$SCRATCH" ] || psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $SCRATCH" >/dev/null 2>&1 || true
    SCRATCH=""
}
trap drop_scratch EXIT

check() {
    local file=$1
    [ -s "$file" ] || die "no dump at $file"
    SCRATCH="hemadose_restore_check_$$"
    psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "CREATE DATABASE $SCRATCH" >/dev/null
    pg_restore --no-owner --exit-on-error --dbname="$(url_for "$LIBPQ_URL" "$SCRATCH")" "$file"
    "$HEMADOSE" audit verify --db "$(url_for "$HEMADOSE_DB_URL" "$SCRATCH")" >&2 \
        || die "restored copy: the audit chain does not verify"
    local patients
    patients=$(psql -X -qtA "$(url_for "$LIBPQ_URL" "$SCRATCH")" -c "SELECT count(*) FROM patients")
    drop_scratch
    echo "backup.sh: $file restores: audit chain intact, $patients patients" >&2
}

backup() {
    local dir=$1
    mkdir -p "$dir"
    chmod 0700 "$dir"
    local file
    file="$dir/hemadose-$(date -u +%Y%m%dT%H%M%SZ).dump"
    (umask 077 && pg_dump --format=custom --no-owner --file="$file.part" "$LIBPQ_URL")
    mv "$file.part" "$file"
    echo "backup.sh: wrote $file ($(stat -c %s "$file") bytes)" >&2
    check "$file"
    echo "$file"
}

restore() {
    local file=$1
    [ -s "$file" ] || die "no dump at $file"
    local tables
    tables=$(psql -X -qtA "$LIBPQ_URL" -c "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
    [ "$tables" = 0 ] || die "the database has $tables tables: restore into an empty one (createdb), then point HEMADOSE_DB_URL at it"
    pg_restore --no-owner --exit-on-error --dbname="$LIBPQ_URL" "$file"
    "$HEMADOSE" audit verify --db "$HEMADOSE_DB_URL" >&2 || die "restored: the audit chain does not verify"
    echo "backup.sh: restored $file" >&2
}

case "${1:-}" in
    backup) [ $# -eq 2 ] || die "usage: $0 backup DIR"; backup "$2" ;;
    check) [ $# -eq 2 ] || die "usage: $0 check FILE"; check "$2" ;;
    restore) [ $# -eq 2 ] || die "usage: $0 restore FILE"; restore "$2" ;;
    *) die "usage: $0 backup DIR | check FILE | restore FILE" ;;
esac
