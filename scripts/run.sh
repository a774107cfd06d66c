#!/usr/bin/env bash
# The run command of the README: install what the data plane needs, build, start the all-in-one
# control plane with the netns drivers, and bring up a demo: a load balancer with an HTTP listener
# in front of two member web servers in their own namespaces. Prints the curl that reaches it and
# keeps running until Ctrl-C, which deletes the load balancer (cascade), stops the control plane
# and removes the member namespaces. The bridges octmgmt0 and octdemo0 and the state under ./var
# stay for the next run (`target/release/octavia --config var/octavia.toml network delete demo-net`
# removes the tenant network and its bridge).
#
# Needs root (namespaces, bridges). Settings: OCTAVIA_PORT (API, default 9876).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
port=${OCTAVIA_PORT:-9876}
var="$root/var"
api="http://127.0.0.1:$port"

[ "$(id -u)" = 0 ] || { echo "run.sh needs root (network namespaces and bridges)" >&2; exit 1; }

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v keepalived >/dev/null 2>&1 || [ -x /usr/sbin/keepalived ] || need+=(keepalived)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v arping >/dev/null 2>&1 || need+=(iputils-arping)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "=== installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "=== building (release)"
cargo build --release --locked -p octavia -p amphora-agent
octavia="$root/target/release/octavia"

mkdir -p "$var"
config="$var/octavia.toml"
key_file="$var/heartbeat.key"
[ -s "$key_file" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$key_file"
cat > "$config" <<TOML
[api_settings]
bind_host = "127.0.0.1"
bind_port = $port

[database]
connection = "sqlite://$var/octavia.db"

[controller_worker]
compute_driver = "netns"
network_driver = "netns"
amphora_driver = "agent"

[task_flow]
poll_interval = "200ms"

[health_manager]
bind_ip = "172.31.0.1"
heartbeat_key = "$(cat "$key_file")"

[certificates]
ca_dir = "$var/certs"

[netns]
state_dir = "$var/netns"
image_dir = "$var/images"
management_bridge = "octmgmt0"
management_cidr = "172.31.0.0/24"
management_host_address = "172.31.0.1"
hosts = ["host-1", "host-2"]
TOML
oc() { "$octavia" --config "$config" "$@"; }

echo "=== amphora image and tenant network"
image=$(oc image register --tag amphora "$root/target/release/amphora-agent")
echo "registered amphora image $image"
if ! oc network show demo-net >/dev/null 2>&1; then
  oc network create demo-net --cidr 10.77.0.0/24 --gateway 10.77.0.1 --bridge octdemo0
fi
subnet=$(oc network list | awk '$2 == "demo-net" {print $3}')

echo "=== member web servers (namespaces demo-web1, demo-web2)"
web_pids=()
members=()
for i in 1 2; do
  ns="demo-web$i"
  { ip netns pids "$ns" 2>/dev/null || true; } | xargs -r kill -9
  ip netns del "$ns" 2>/dev/null || true
  ip link del "demoweb$i" 2>/dev/null || true
  addr=$(oc network reserve-address demo-net --description "$ns" | awk '{print $1}')
  ip netns add "$ns"
  ip link add "demoweb$i" type veth peer name eth0 netns "$ns"
  ip link set "demoweb$i" master octdemo0 up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip addr add "$addr/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  ip netns exec "$ns" ip route add default via 10.77.0.1
  mkdir -p "$var/www$i"
  echo "hello from demo-web$i ($addr)" > "$var/www$i/index.html"
  ip netns exec "$ns" python3 -m http.server 8080 --bind "$addr" --directory "$var/www$i" >/dev/null 2>&1 &
  web_pids+=($!)
  members+=("$addr")
done
for addr in "${members[@]}"; do # the host reaches the members through the bridge's gateway
  for _ in $(seq 1 100); do
    curl -fsS --max-time 1 "http://$addr:8080/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS --max-time 2 "http://$addr:8080/" >/dev/null || { echo "member $addr does not answer" >&2; exit 1; }
done

echo "=== starting octavia (all-in-one), log in $var/octavia.log"
"$octavia" --config "$config" 2>"$var/octavia.log" &
pid=$!
# Requests act for the project "demo" (noauth: the X-Project-Id header names the project).
H=(-H "Content-Type: application/json" -H "X-Project-Id: demo")
cleanup() {
  [ -z "${cleaned:-}" ] || return 0
  cleaned=1
  echo
  echo "=== stopping"
  if [ -n "${lb:-}" ] && kill -0 "$pid" 2>/dev/null; then
    curl -fsS "${H[@]}" -X DELETE "$api/v2/lbaas/loadbalancers/$lb?cascade=true" >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do
      s=$(curl -fsS "${H[@]}" "$api/v2/lbaas/loadbalancers/$lb" 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['loadbalancer']['provisioning_status'])" 2>/dev/null || echo gone)
      [ "$s" = gone ] || [ "$s" = DELETED ] && break
      sleep 0.1
    done
  fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  for p in "${web_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for i in 1 2; do
    ip netns del "demo-web$i" 2>/dev/null || true
    oc network release-address "$(oc network show demo-net 2>/dev/null | grep "demo-web$i" | python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['id'])" 2>/dev/null)" >/dev/null 2>&1 || true
  done
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fsS "$api/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$api/" >/dev/null

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
wait_active() { # path key
  for _ in $(seq 1 600); do
    s=$(curl -fsS "${H[@]}" "$api$1" | json "['$2']['provisioning_status']")
    [ "$s" = ACTIVE ] && return 0
    [ "$s" = ERROR ] && { echo "$1 went to ERROR; see $var/octavia.log" >&2; return 1; }
    sleep 0.1
  done
  echo "$1 not ACTIVE in time; see $var/octavia.log" >&2; return 1
}
post() { curl -fsS "${H[@]}" -X POST "$api$1" -d "$2"; }

echo "=== creating the demo load balancer"
t0=$(date +%s.%N)
lb=$(post /v2/lbaas/loadbalancers "{\"loadbalancer\":{\"name\":\"demo-lb\",\"vip_subnet_id\":\"$subnet\"}}" | json "['loadbalancer']['id']")
wait_active "/v2/lbaas/loadbalancers/$lb" loadbalancer
li=$(post /v2/lbaas/listeners "{\"listener\":{\"name\":\"demo-http\",\"loadbalancer_id\":\"$lb\",\"protocol\":\"HTTP\",\"protocol_port\":80}}" | json "['listener']['id']")
wait_active "/v2/lbaas/loadbalancers/$lb" loadbalancer
pool=$(post /v2/lbaas/pools "{\"pool\":{\"name\":\"demo-pool\",\"listener_id\":\"$li\",\"protocol\":\"HTTP\",\"lb_algorithm\":\"ROUND_ROBIN\"}}" | json "['pool']['id']")
wait_active "/v2/lbaas/loadbalancers/$lb" loadbalancer
for addr in "${members[@]}"; do
  post "/v2/lbaas/pools/$pool/members" "{\"member\":{\"address\":\"$addr\",\"protocol_port\":8080,\"subnet_id\":\"$subnet\"}}" >/dev/null
  wait_active "/v2/lbaas/loadbalancers/$lb" loadbalancer
done
post /v2/lbaas/healthmonitors "{\"healthmonitor\":{\"pool_id\":\"$pool\",\"type\":\"HTTP\",\"delay\":2,\"timeout\":1,\"max_retries\":2,\"url_path\":\"/\"}}" >/dev/null
wait_active "/v2/lbaas/loadbalancers/$lb" loadbalancer
vip=$(curl -fsS "${H[@]}" "$api/v2/lbaas/loadbalancers/$lb" | json "['loadbalancer']['vip_address']")
t1=$(date +%s.%N)

echo "=== demo-lb is ACTIVE at $vip ($(python3 -c "print(round($t1-$t0,2))") s); four requests:"
for _ in 1 2 3 4; do curl -sS --max-time 5 "http://$vip/"; done
echo "=== status tree (members go ONLINE with the first heartbeats)"
for _ in $(seq 1 100); do
  s=$(curl -fsS "${H[@]}" "$api/v2/lbaas/loadbalancers/$lb" | json "['loadbalancer']['operating_status']")
  [ "$s" = ONLINE ] && break
  sleep 0.1
done
curl -fsS "${H[@]}" "$api/v2/lbaas/loadbalancers/$lb/status" | python3 -m json.tool
cat <<MSG

The load balancer serves at:   curl http://$vip/
The control plane runs at $api (Ctrl-C stops it and removes the demo). Try:
  curl -s -H 'X-Project-Id: demo' $api/v2/lbaas/loadbalancers | python3 -m json.tool
  OS_AUTH_TYPE=none OS_ENDPOINT=$api openstack loadbalancer list   # with python-octaviaclient
  kill ${web_pids[0]}   # stops demo-web1's server: its member goes ERROR, the pool DEGRADED
MSG
wait $pid
