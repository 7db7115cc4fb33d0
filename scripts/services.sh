#!/usr/bin/env bash
# Make sure local PostgreSQL (127.0.0.1:5432, trust auth, database `test`) and/or Redis (127.0.0.1:6379) answer:
# install them from Debian's packages when missing, start them when not running. Needs root for both.
#   bash scripts/services.sh postgresql redis
# .ci/run sources this file for the functions.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { echo "== services: $*"; }

APT_UPDATED=${APT_UPDATED:-0}
# ensure_installed COMMAND PACKAGE...: apt-get install the packages when COMMAND is not on PATH.
ensure_installed() {
  local cmd=$1; shift
  if command -v "$cmd" >/dev/null 2>&1; then return 0; fi
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  log "installing $* (no $cmd)"
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# wait_for DESCRIPTION SECONDS COMMAND...: retry COMMAND until it succeeds or the time is up.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$what did not come up within ${seconds}s"; return 1
    fi
    sleep 0.5
  done
}

pg() { psql -h 127.0.0.1 -p 5432 -U postgres -w -v ON_ERROR_STOP=1 -tAq "$@"; }

ensure_postgresql() {
  ensure_installed pg_ctlcluster postgresql
  ensure_installed pg_isready postgresql-client
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  wait_for "PostgreSQL" 60 pg_isready -q -h 127.0.0.1 -p 5432
  if ! pg -d postgres -c 'select 1' >/dev/null 2>&1; then
    # A fresh Debian cluster asks for passwords on TCP: trust local TCP connections, as the CI services do.
    local hba=/etc/postgresql/$version/main/pg_hba.conf
    log "enabling trust auth for 127.0.0.1 and ::1 in $hba"
    { printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n'; cat "$hba"; } > "$hba.new"
    mv "$hba.new" "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    wait_for "PostgreSQL trust auth" 30 pg -d postgres -c 'select 1'
  fi
  if [ "$(pg -d postgres -c "select 1 from pg_database where datname = 'test'")" != 1 ]; then
    log "creating database test"
    pg -d postgres -c 'create database test'
  fi
}

ensure_redis() {
  ensure_installed redis-server redis-server
  ensure_installed redis-cli redis-tools
  if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" != PONG ]; then
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
  wait_for "Redis" 30 bash -c '[ "$(redis-cli -h 127.0.0.1 -p 6379 ping)" = PONG ]'
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  for service in "$@"; do
    case "$service" in
      postgresql) ensure_postgresql ;;
      redis) ensure_redis ;;
      *) echo "unknown service: $service (postgresql, redis)" >&2; exit 2 ;;
    esac
  done
fi
