#!/usr/bin/env bash
# Stops what up.sh started (the throwaway Postgres cluster, its PgBouncer and the Ceph daemons).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/ceph.sh" down
"$here/pgbouncer.sh" down
"$here/postgres.sh" down
rm -f "${IOBOXX_SERVICES_ENV:-/tmp/ioboxx-services.env}"
