#!/usr/bin/env bash
# Brings up the real services the test suites need (Postgres, PgBouncer in transaction mode in
# front of it, and a Ceph RADOS Gateway) on loopback and writes their env lines to
# $IOBOXX_SERVICES_ENV (default /tmp/ioboxx-services.env), which test/support/services.ts
# reads. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
envFile="${IOBOXX_SERVICES_ENV:-/tmp/ioboxx-services.env}"
tmp="$envFile.tmp.$$"
{
  "$here/postgres.sh" up
  "$here/pgbouncer.sh" up
  "$here/ceph.sh" up
  echo "IOBOXX_TEST_SERVICES_DIR=${IOBOXX_SERVICES_DIR:-/tmp/ioboxx-services}"
} >"$tmp"
mv "$tmp" "$envFile"
echo "up.sh: services up; env written to $envFile" >&2
cat "$envFile"
