#!/usr/bin/env bash
# A single-node Ceph cluster with a RADOS Gateway (S3 with Object Lock) on loopback, for
# tests and CI. Debian packages ceph-mon ceph-osd radosgw ceph-common.
#
#   scripts/services/ceph.sh up|down|env|status
#   scripts/services/ceph.sh gateway-up NAME PORT     # one more gateway on the same cluster
#   scripts/services/ceph.sh gateway-down NAME        # (fault tests stop and start their own)
#
# One monitor on 127.0.0.1:$IOBOXX_CEPH_MON_PORT (6789), auth none, pool size 1, one
# memstore OSD (data lives in memory: a stopped cluster is rebuilt from scratch), and the
# gateway `beast` frontend on 127.0.0.1:$IOBOXX_S3_PORT (default 17480: below Linux's ephemeral
# range, 32768-60999, where an outgoing connection could hold the port and the gateway then fails
# to bind, as one CI dry run did on 57480). The S3 user has fixed test keys: they guard nothing but
# throwaway test data on loopback.
set -euo pipefail

servicesDir="${IOBOXX_SERVICES_DIR:-/tmp/ioboxx-services}"
cephDir="$servicesDir/ceph"
conf="$cephDir/ceph.conf"
monPort="${IOBOXX_CEPH_MON_PORT:-6789}"
s3Port="${IOBOXX_S3_PORT:-17480}"
accessKey="IOBOXXTESTACCESSKEY0"
secretKey="ioboxxTestSecretKey0000000000000000000000"
region="us-east-1"
user="ioboxx-test"

# shellcheck source=debian-packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-packages.sh"

log() { echo "ceph.sh: $*" >&2; }

ensure_installed() {
  if ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null || ! command -v radosgw >/dev/null \
    || ! command -v radosgw-admin >/dev/null || ! command -v monmaptool >/dev/null; then
    apt_install ceph-mon ceph-osd radosgw ceph-common
  fi
  command -v curl >/dev/null || apt_install curl
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# A command the monitor refuses with "Error EPERM: problem getting command descriptions from mon"
# (its log: "handle_command on fsid 0000...", the client asked before it had the monitor's map) did
# nothing: it is sent again, at most cephCmdAttemptsMax times. A CI dry run's set-up failed on one.
cephCmdAttemptsMax=5
ceph_cmd() {
  local attempt out status errFile
  errFile="$(mktemp)"
  for ((attempt = 1; attempt <= cephCmdAttemptsMax; attempt++)); do
    status=0
    out="$(timeout 30 ceph -c "$conf" "$@" 2>"$errFile")" || status=$?
    if ((status == 0)) || ! grep -q 'problem getting command descriptions' "$errFile"; then break; fi
    sleep 0.5
  done
  cat "$errFile" >&2
  rm -f "$errFile"
  if [[ -n "$out" ]]; then printf '%s\n' "$out"; fi
  return "$status"
}

# The monitor daemonizes before it serves commands: a command sent while it still settles (its
# election and first maps; seconds on a loaded machine) is refused as above. Asked until it
# answers, for at most monAnswerWaitS.
monAnswerWaitS=60
wait_for_mon() {
  local deadline=$((SECONDS + monAnswerWaitS))
  until timeout 10 ceph -c "$conf" --connect-timeout 5 mon stat >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "monitor did not answer on 127.0.0.1:$monPort within ${monAnswerWaitS} s"
      tail -n 30 "$cephDir/log/mon.a.log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

write_conf() {
  local fsid; fsid="$(cat /proc/sys/kernel/random/uuid)"
  mkdir -p "$cephDir"/{run,log,mon,osd,rgw}
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$monPort
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
ms bind ipv6 = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd objectstore = memstore
# The OSD's own crush update at start can race its first monmap ("wrong fsid") and make it
# exit: this script places it in the crush map itself instead.
osd crush update on start = false
osd class update on start = false
memstore device bytes = 4294967296
run dir = $cephDir/run
pid file = $cephDir/run/\$name.pid
admin socket = $cephDir/run/\$name.asok
log file = $cephDir/log/\$name.log
keyring = $cephDir/keyring
mon data = $cephDir/mon/\$cluster-\$id
osd data = $cephDir/osd/\$cluster-\$id
rgw data = $cephDir/rgw/\$cluster-\$id
rgw enable usage log = false
rgw lc debug interval = -1
EOF
}

start_gateway() {
  local name="$1" port="$2"
  local pidFile="$cephDir/run/client.rgw.$name.pid"
  if pid_alive "$pidFile"; then return; fi
  mkdir -p "$cephDir/rgw/ceph-rgw.$name"
  radosgw -c "$conf" -n "client.rgw.$name" \
    --rgw-frontends "beast endpoint=127.0.0.1:$port" \
    --pid-file "$pidFile" --log-file "$cephDir/log/client.rgw.$name.log" >&2
  # Ready when it answers HTTP: an anonymous GET / gives an S3 XML reply.
  local i
  for i in $(seq 1 600); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then return; fi
    sleep 0.1
  done
  log "gateway $name did not answer on 127.0.0.1:$port"; tail -n 30 "$cephDir/log/client.rgw.$name.log" >&2; exit 1
}

stop_daemon() {
  local pidFile="$1" pid
  pid_alive "$pidFile" || return 0
  pid="$(cat "$pidFile")"
  kill "$pid" 2>/dev/null || true
  # radosgw takes ~10 s to finish a clean shutdown; nothing here needs one (memstore, tests).
  local i
  for i in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

print_env() {
  echo "IOBOXX_TEST_S3_ENDPOINT=http://127.0.0.1:$s3Port"
  echo "IOBOXX_TEST_S3_REGION=$region"
  echo "IOBOXX_TEST_S3_ACCESS_KEY_ID=$accessKey"
  echo "IOBOXX_TEST_S3_SECRET_ACCESS_KEY=$secretKey"
  echo "IOBOXX_TEST_CEPH_CONF=$conf"
}

up() {
  ensure_installed
  local monPid="$cephDir/run/mon.a.pid" osdPid="$cephDir/run/osd.0.pid"
  if ! pid_alive "$monPid" || ! pid_alive "$osdPid"; then
    # memstore keeps objects in the OSD's memory: a cluster that is not whole is rebuilt.
    down
    rm -rf "$cephDir"
    write_conf
    local fsid; fsid="$(sed -n 's/^fsid = //p' "$conf")"
    log "monitor on 127.0.0.1:$monPort"
    monmaptool --create --clobber --fsid "$fsid" --addv a "[v1:127.0.0.1:$monPort]" "$cephDir/monmap" >/dev/null
    ceph-mon -c "$conf" --mkfs -i a --monmap "$cephDir/monmap" >&2
    ceph-mon -c "$conf" -i a >&2
    wait_for_mon
    log "osd (memstore)"
    local id; id="$(ceph_cmd osd create)"
    ceph_cmd osd crush add-bucket localhost host >/dev/null 2>&1
    ceph_cmd osd crush move localhost root=default >/dev/null 2>&1
    ceph_cmd osd crush add "osd.$id" 1.0 host=localhost >/dev/null 2>&1
    mkdir -p "$cephDir/osd/ceph-$id"
    ceph-osd -c "$conf" -i "$id" --mkfs >/dev/null 2>&1
    ceph-osd -c "$conf" -i "$id" 2>/dev/null
    local i
    for i in $(seq 1 300); do
      if ceph_cmd osd stat 2>/dev/null | grep -q '1 up'; then break; fi
      sleep 0.2
    done
    ceph_cmd osd stat | grep -q '1 up' || { log "osd did not come up"; exit 1; }
  fi
  log "gateway on 127.0.0.1:$s3Port"
  start_gateway gw "$s3Port"
  if ! timeout 60 radosgw-admin -c "$conf" user info --uid "$user" >/dev/null 2>&1; then
    timeout 60 radosgw-admin -c "$conf" user create --uid "$user" --display-name "ioboxx test" \
      --access-key "$accessKey" --secret "$secretKey" >/dev/null
  fi
  print_env
}

down() {
  local pidFile
  for pidFile in "$cephDir"/run/client.rgw.*.pid; do [[ -e "$pidFile" ]] && stop_daemon "$pidFile"; done
  stop_daemon "$cephDir/run/osd.0.pid"
  stop_daemon "$cephDir/run/mon.a.pid"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) print_env ;;
  status)
    if pid_alive "$cephDir/run/client.rgw.gw.pid" && pid_alive "$cephDir/run/osd.0.pid"; then echo running; else echo stopped; exit 1; fi ;;
  gateway-up) [[ $# -eq 3 ]] || { echo "usage: $0 gateway-up NAME PORT" >&2; exit 2; }; start_gateway "$2" "$3" ;;
  gateway-down) [[ $# -eq 2 ]] || { echo "usage: $0 gateway-down NAME" >&2; exit 2; }; stop_daemon "$cephDir/run/client.rgw.$2.pid" ;;
  *) echo "usage: $0 up|down|env|status|gateway-up NAME PORT|gateway-down NAME" >&2; exit 2 ;;
esac
