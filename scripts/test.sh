#!/usr/bin/env bash
# The README's test command: installs what the tests need (npm packages, Debian's Postgres and
# PgBouncer, a single-node Ceph RADOS Gateway), starts the services on loopback, runs the whole suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
bash scripts/services/up.sh >/dev/null
results="$(mktemp -t ioboxx-vitest-XXXXXX.json)"
status=0
npm run build
npx tsc -p tsconfig.json --noEmit
npx vitest run --reporter=default --reporter=json --outputFile="$results" || status=$?
# The plain closing line: counted tests, whatever the runner printed above.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  // A suite (a file or a describe block) whose hook or collection failed fails no test of its own: its tests are only skipped.
  const n = r.numFailedTestSuites;
  const suitesFailed = n ? `; ${n} suite${n === 1 ? "" : "s"} failed` : "";
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : "") + suitesFailed);
' "$results" || true
rm -f "$results"
exit "$status"
