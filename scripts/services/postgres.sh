#!/usr/bin/env bash
# A throwaway Postgres cluster on loopback for tests and CI (Debian's `postgresql`).
#
#   scripts/services/postgres.sh up|down|env|status
#
# Idempotent: `up` on a running cluster only prints its env lines. The cluster lives in
# $IOBOXX_SERVICES_DIR/postgres (default /tmp/ioboxx-services/postgres); its port is
# $IOBOXX_PG_PORT (default 15432: below Linux's ephemeral range, so no outgoing connection holds
# it). Trust auth on 127.0.0.1 only: it holds nothing but test data.
set -euo pipefail

servicesDir="${IOBOXX_SERVICES_DIR:-/tmp/ioboxx-services}"
pgDir="$servicesDir/postgres"
dataDir="$pgDir/data"
port="${IOBOXX_PG_PORT:-15432}"
database="ioboxx"
role="ioboxx"

# shellcheck source=debian-packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-packages.sh"
# shellcheck source=as-postgres-user.sh
source "$(dirname "${BASH_SOURCE[0]}")/as-postgres-user.sh"

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  [[ -n "$dir" && -x "$dir/pg_ctl" ]] && echo "$dir"
}

ensure_installed() {
  # The package's own cluster is not used: ours lives in a directory we own.
  [[ -n "$(find_bin)" ]] || apt_install postgresql
  [[ -n "$(find_bin)" ]] || { log "postgresql installed but no pg_ctl found"; exit 1; }
  command -v openssl >/dev/null || apt_install openssl
}


is_running() {
  local bin; bin="$(find_bin)"
  [[ -f "$dataDir/PG_VERSION" ]] && as_owner "$bin/pg_ctl" -D "$dataDir" status >/dev/null 2>&1
}

print_env() {
  echo "IOBOXX_TEST_DATABASE_URL=postgres://$role@127.0.0.1:$port/$database"
  echo "IOBOXX_TEST_PG_DATA=$dataDir"
  echo "IOBOXX_TEST_PG_PORT=$port"
}

up() {
  ensure_installed
  local bin; bin="$(find_bin)"
  mkdir -p "$pgDir"
  if [[ "$(id -u)" == "0" ]]; then chown postgres: "$pgDir"; chmod 755 "$servicesDir" 2>/dev/null || true; fi
  if [[ ! -f "$dataDir/PG_VERSION" ]]; then
    log "initdb $dataDir"
    # --no-sync: a throwaway cluster; the server itself still fsyncs its commits.
    as_owner "$bin/initdb" -D "$dataDir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  fi
  # A self-signed certificate so clients can test TLS (sslmode=require) as against Supabase;
  # plain connections stay allowed.
  local ssl=()
  if [[ ! -f "$pgDir/server.crt" ]] && command -v openssl >/dev/null; then
    openssl req -new -x509 -days 3650 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$pgDir/server.key" -out "$pgDir/server.crt" >/dev/null 2>&1
    chmod 600 "$pgDir/server.key"
    if [[ "$(id -u)" == "0" ]]; then chown postgres: "$pgDir/server.key" "$pgDir/server.crt"; fi
  fi
  if [[ -f "$pgDir/server.crt" ]]; then
    ssl=(-c ssl=on -c "ssl_cert_file=$pgDir/server.crt" -c "ssl_key_file=$pgDir/server.key")
  fi
  if ! is_running; then
    log "starting on 127.0.0.1:$port"
    as_owner "$bin/pg_ctl" -D "$dataDir" -l "$pgDir/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$pgDir -c max_connections=200 ${ssl[*]}" >/dev/null \
      || { tail -n 20 "$pgDir/server.log" >&2; exit 1; }
  fi
  local psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt)
  if [[ "$(as_owner "${psql[@]}" -c "select 1 from pg_roles where rolname = '$role'")" != "1" ]]; then
    as_owner "${psql[@]}" -c "create role $role login superuser" >/dev/null
  fi
  if [[ "$(as_owner "${psql[@]}" -c "select 1 from pg_database where datname = '$database'")" != "1" ]]; then
    as_owner "${psql[@]}" -c "create database $database owner $role" >/dev/null
  fi
  print_env
}

down() {
  local bin; bin="$(find_bin || true)"
  if [[ -n "$bin" ]] && is_running; then
    log "stopping"
    as_owner "$bin/pg_ctl" -D "$dataDir" -m fast -w stop >/dev/null
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) print_env ;;
  status) if is_running; then echo running; else echo stopped; exit 1; fi ;;
  purge) down; rm -rf "$pgDir" ;;
  *) echo "usage: $0 up|down|env|status|purge" >&2; exit 2 ;;
esac
