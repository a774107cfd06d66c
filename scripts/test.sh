#!/usr/bin/env bash
# The test command of the README: installs and starts what the tests need, then runs
# formatting, lints and every test (both store engines, the real openstack CLI, a real
# Keystone).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\n=== %s\n' "$*"; }

# --- system packages --------------------------------------------------------------
need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v keepalived >/dev/null 2>&1 || [ -x /usr/sbin/keepalived ] || need+=(keepalived)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v arping >/dev/null 2>&1 || need+=(iputils-arping)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# Debian's python3 makes venvs only with python3-venv (ensurepip).
python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# promtool and a Prometheus for the monitoring test, without the exporters it recommends and
# without starting its service (the test runs its own on loopback).
if ! command -v promtool >/dev/null 2>&1; then
  log "installing prometheus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  policy=/usr/sbin/policy-rc.d
  if [ -e "$policy" ]; then
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null || { rm -f "$policy"; exit 1; }
    rm -f "$policy"
  fi
fi

# --- PostgreSQL -------------------------------------------------------------------
log "starting PostgreSQL"
cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
  pg_createcluster 15 main >/dev/null
  cluster="15 main"
fi
# shellcheck disable=SC2086
pg_ctlcluster $cluster start 2>/dev/null || true
port=$(pg_lsclusters --no-header | awk 'NR==1 {print $3}')
for _ in $(seq 1 60); do
  if su postgres -c "psql -p $port -Atqc 'select 1'" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
su postgres -c "psql -p $port -Atqc \"select 1 from pg_roles where rolname='octavia'\"" | grep -q 1 ||
  su postgres -c "psql -p $port -qc \"CREATE ROLE octavia LOGIN SUPERUSER PASSWORD 'octavia'\""
export OCTAVIA_TEST_PG_URL="postgres://octavia:octavia@127.0.0.1:$port/postgres"

# --- OpenStack from PyPI, in throwaway venvs under target/ (scripts/openstack.sh) ---------
# shellcheck source=scripts/openstack.sh
source scripts/openstack.sh
# The real OpenStack client (and openstacksdk, which it depends on, for Python test scripts).
pinned_venv "$root/target/openstack-cli-venv" python-openstackclient python-octaviaclient
export OCTAVIA_TEST_OPENSTACK="$root/target/openstack-cli-venv/bin/openstack"
export OCTAVIA_TEST_OPENSTACK_PYTHON="$root/target/openstack-cli-venv/bin/python"
"$OCTAVIA_TEST_OPENSTACK_PYTHON" -c 'import openstack'
# A real Keystone, once for the whole run (nextest runs each test in its own process), stopped
# when this script exits, whichever way.
trap keystone_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
keystone_start

# --- checks and tests -------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "building the amphora agent (the data-plane tests boot amphorae from it)"
cargo build -p amphora-agent --locked
log "cargo nextest (SQLite and PostgreSQL)"
cargo nextest run --workspace --locked --no-fail-fast
