#!/usr/bin/env bash
# The run command of the README: build, start the all-in-one control plane, create a demo
# load balancer through the REST API, show its status tree, then keep running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

echo "=== building (release)"
cargo build --release --locked -p octavia

mkdir -p "$root/var"
config="$root/var/octavia.toml"
cat > "$config" <<TOML
[api_settings]
bind_host = "127.0.0.1"
bind_port = ${OCTAVIA_PORT:-9876}
[database]
connection = "sqlite://$root/var/octavia.db"
TOML
api="http://127.0.0.1:${OCTAVIA_PORT:-9876}"

echo "=== starting octavia (all-in-one) with $config"
"$root/target/release/octavia" --config "$config" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM

for _ in $(seq 1 100); do
  curl -fsS "$api/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$api/" >/dev/null

H=(-H "Content-Type: application/json" -H "X-Project-Id: demo")
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
wait_active() { # path key
  for _ in $(seq 1 300); do
    s=$(curl -fsS "${H[@]}" "$api$1" | json "['$2']['provisioning_status']")
    [ "$s" = ACTIVE ] && return 0
    [ "$s" = ERROR ] && { echo "$1 went to ERROR" >&2; return 1; }
    sleep 0.05
  done
  echo "$1 not ACTIVE in time" >&2; return 1
}
post() { curl -fsS "${H[@]}" -X POST "$api$1" -d "$2"; }

echo "=== creating the demo load balancer"
lb=$(post /v2/lbaas/loadbalancers '{"loadbalancer":{"name":"demo-lb","vip_subnet_id":"5e1e4bd9-3fb4-4fbb-9c43-1b2d36a7c4a1"}}' | json "['loadbalancer']['id']")
wait_active "/v2/lbaas/loadbalancers/$lb" loadbalancer
li=$(post /v2/lbaas/listeners "{\"listener\":{\"name\":\"demo-http\",\"loadbalancer_id\":\"$lb\",\"protocol\":\"HTTP\",\"protocol_port\":80}}" | json "['listener']['id']")
wait_active "/v2/lbaas/listeners/$li" listener
pool=$(post /v2/lbaas/pools "{\"pool\":{\"name\":\"demo-pool\",\"listener_id\":\"$li\",\"protocol\":\"HTTP\",\"lb_algorithm\":\"ROUND_ROBIN\"}}" | json "['pool']['id']")
wait_active "/v2/lbaas/pools/$pool" pool
for addr in 192.0.2.10 192.0.2.11; do
  m=$(post "/v2/lbaas/pools/$pool/members" "{\"member\":{\"address\":\"$addr\",\"protocol_port\":8080}}" | json "['member']['id']")
  wait_active "/v2/lbaas/pools/$pool/members/$m" member
done
hm=$(post /v2/lbaas/healthmonitors "{\"healthmonitor\":{\"pool_id\":\"$pool\",\"type\":\"HTTP\",\"delay\":5,\"timeout\":3,\"max_retries\":3}}" | json "['healthmonitor']['id']")
wait_active "/v2/lbaas/healthmonitors/$hm" healthmonitor

echo "=== status tree of demo-lb"
curl -fsS "${H[@]}" "$api/v2/lbaas/loadbalancers/$lb/status" | python3 -m json.tool
cat <<MSG

The control plane is running at $api (Ctrl-C stops it). Try:
  curl -s -H 'X-Project-Id: demo' $api/v2/lbaas/loadbalancers | python3 -m json.tool
  OS_AUTH_TYPE=none OS_ENDPOINT=$api openstack loadbalancer list   # with python-octaviaclient
(The noop drivers build no amphorae yet: this load balancer exists in the control plane only.)
MSG
wait $pid
