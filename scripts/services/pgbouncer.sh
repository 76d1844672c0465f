#!/usr/bin/env bash
# PgBouncer in transaction mode in front of the throwaway Postgres (postgres.sh), on loopback:
# the shape of Supabase's transaction-mode pooler, which hands each transaction whatever server
# connection is free and keeps no session state. Debian's PgBouncer (1.18) does not carry
# prepared statements across transactions either, so a client that relies on session state
# (named prepared statements, session locks, SET) breaks here as it would there.
#
#   scripts/services/pgbouncer.sh up|down|env|status|purge
#
# Idempotent. Needs postgres.sh up first (same IOBOXX_SERVICES_DIR and IOBOXX_PG_PORT). Listens
# on $IOBOXX_PGBOUNCER_PORT (default 16432: below Linux's ephemeral range); every database name is
# passed through to Postgres.
# TLS from clients with Postgres's self-signed certificate (sslmode=require, as Supabase is
# reached); plain connections stay allowed. Trust auth on 127.0.0.1 only, as for Postgres.
set -euo pipefail

servicesDir="${IOBOXX_SERVICES_DIR:-/tmp/ioboxx-services}"
pgDir="$servicesDir/postgres"
dir="$servicesDir/pgbouncer"
pgPort="${IOBOXX_PG_PORT:-15432}"
port="${IOBOXX_PGBOUNCER_PORT:-16432}"
database="ioboxx"
role="ioboxx"

# shellcheck source=debian-packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-packages.sh"
# shellcheck source=as-postgres-user.sh
source "$(dirname "${BASH_SOURCE[0]}")/as-postgres-user.sh"

log() { echo "pgbouncer.sh: $*" >&2; }

ensure_installed() {
  command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]] || apt_install pgbouncer
}

bin() {
  command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer
}


is_running() {
  [[ -f "$dir/pgbouncer.pid" ]] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null
}

print_env() {
  echo "IOBOXX_TEST_POOLER_URL=postgres://$role@127.0.0.1:$port/$database"
}

write_config() {
  local tls=""
  if [[ -f "$pgDir/server.crt" ]]; then
    tls="client_tls_sslmode = allow
client_tls_key_file = $pgDir/server.key
client_tls_cert_file = $pgDir/server.crt"
  fi
  # Users PgBouncer accepts (trust still needs the name listed); Postgres trusts them on loopback.
  printf '"postgres" ""\n"%s" ""\n' "$role" >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$pgPort

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
; Idle server connections in turn, not the last one used: a client's next transaction lands on
; another connection whenever there are several, so lost session state shows at once.
server_round_robin = 1
server_reset_query =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
$tls
EOF
}

up() {
  ensure_installed
  mkdir -p "$dir"
  write_config
  if [[ "$(id -u)" == "0" ]]; then chown -R postgres: "$dir"; fi
  if ! is_running; then
    log "starting on 127.0.0.1:$port (transaction pooling, Postgres at 127.0.0.1:$pgPort)"
    as_owner "$(bin)" -d "$dir/pgbouncer.ini" || { tail -n 20 "$dir/pgbouncer.log" >&2; exit 1; }
    # Up to 30 s: it daemonizes before it listens, and a loaded machine (a CI set-up) is slow.
    for _ in $(seq 1 300); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { log "not listening on $port"; tail -n 20 "$dir/pgbouncer.log" >&2; exit 1; }
  fi
  print_env
}

down() {
  if is_running; then
    log "stopping"
    local pid; pid="$(cat "$dir/pgbouncer.pid")"
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) print_env ;;
  status) if is_running; then echo running; else echo stopped; exit 1; fi ;;
  purge) down; rm -rf "$dir" ;;
  *) echo "usage: $0 up|down|env|status|purge" >&2; exit 2 ;;
esac
