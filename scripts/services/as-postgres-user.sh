# Sourced by postgres.sh and pgbouncer.sh: initdb, postgres and pgbouncer refuse to run as root,
# so as root they run as the `postgres` user of Debian's package; otherwise as the caller.
as_owner() {
  if [[ "$(id -u)" == "0" ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
