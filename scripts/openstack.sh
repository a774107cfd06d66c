# OpenStack pieces the tests use, from PyPI, in throwaway venvs under target/ (sourced by
# scripts/test.sh; by hand: `source scripts/openstack.sh && keystone_start`, run the tests
# in that shell, then `keystone_stop`).
#
# * pinned_venv DIR PACKAGE...: a venv with PACKAGE... installed under the versions of
#   scripts/openstack-pins.txt, rebuilt when missing or when the pins or packages change;
# * keystone_start: a real Keystone (SQLite, one gunicorn worker, 127.0.0.1 on a free port),
#   bootstrapped, with the test variables exported (below);
# * keystone_stop: stops it (the caller traps EXIT with it, so it stops on failure too).
#
# Exported by keystone_start:
#   OCTAVIA_TEST_KEYSTONE_URL               http://127.0.0.1:PORT (the v3 API is under /v3)
#   OCTAVIA_TEST_KEYSTONE_ADMIN_PASSWORD    user `admin`, project `admin`, domain `Default`
#   OCTAVIA_TEST_KEYSTONE_SERVICE_USER      `octavia`, with roles `service` and `admin` in
#   OCTAVIA_TEST_KEYSTONE_SERVICE_PASSWORD  the project `service` (what the API validates
#   OCTAVIA_TEST_KEYSTONE_SERVICE_PROJECT   tokens as)

openstack_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
openstack_pins="$openstack_root/scripts/openstack-pins.txt"
keystone_venv="$openstack_root/target/keystone-venv"
keystone_run="$openstack_root/target/keystone-run"

openstack_log() { printf '\n=== %s\n' "$*"; }

# Seconds since the epoch, with fractions (for the timings printed).
openstack_now() { date +%s.%N; }
openstack_since() { awk -v a="$1" -v b="$(openstack_now)" 'BEGIN { printf "%.1f", b - a }'; }

pinned_venv() {
  local dir=$1
  shift
  local want
  want="$* $(sha256sum <"$openstack_pins" | cut -d' ' -f1)"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.pins" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  openstack_log "installing $* into $dir (versions: scripts/openstack-pins.txt)"
  local t0
  t0=$(openstack_now)
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check -c "$openstack_pins" "$@"
  printf '%s' "$want" >"$dir/.pins"
  echo "installed in $(openstack_since "$t0")s"
}

# Polls `$@` every 0.1 s until it succeeds; fails after $KEYSTONE_WAIT seconds (default 60)
# or as soon as the Keystone server has exited.
keystone_wait() {
  local what=$1
  shift
  local deadline=$((SECONDS + ${KEYSTONE_WAIT:-60}))
  until "$@"; do
    if ! kill -0 "$(cat "$keystone_run/pid")" 2>/dev/null; then
      echo "Keystone exited while waiting for $what; its log:" >&2
      tail -n 50 "$keystone_run/keystone.log" >&2
      return 1
    fi
    if [ $SECONDS -ge "$deadline" ]; then
      echo "timed out waiting for $what; Keystone's log:" >&2
      tail -n 50 "$keystone_run/keystone.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

keystone_manage() {
  if ! PYTHONWARNINGS=ignore "$keystone_venv/bin/keystone-manage" \
    --config-file "$keystone_run/keystone.conf" "$@" >>"$keystone_run/manage.log" 2>&1; then
    echo "keystone-manage $1 failed:" >&2
    tail -n 50 "$keystone_run/manage.log" >&2
    return 1
  fi
}

keystone_start() {
  pinned_venv "$keystone_venv" keystone gunicorn
  openstack_log "starting Keystone (SQLite, 127.0.0.1)"
  local t0
  t0=$(openstack_now)
  keystone_stop
  rm -rf "$keystone_run"
  mkdir -p "$keystone_run"
  local run=$keystone_run
  cat >"$run/keystone.conf" <<EOF
[DEFAULT]
use_stderr = true

[database]
connection = sqlite:///$run/keystone.db
# A throwaway database: no fsync per commit.
sqlite_synchronous = false

[token]
provider = fernet

[fernet_tokens]
key_repository = $run/fernet-keys

[fernet_receipts]
key_repository = $run/fernet-receipts

[credential]
key_repository = $run/credential-keys

[identity]
# bcrypt's minimum: the tests create and log in many users; these passwords protect nothing.
password_hash_rounds = 4
EOF
  # Keystone parses sys.argv with oslo.config, so gunicorn takes no argument: everything is
  # in ./gunicorn.conf.py, read from the working directory. Port 0: the kernel picks a free
  # one, which when_ready writes to ./port. One worker with one thread: SQLite answers
  # concurrent writers with "database is locked" (a 500); requests wait their turn instead.
  # Idle connections are kept longer than clients keep them (reqwest: 90 s), so a client
  # never sends on a connection the server is closing.
  cat >"$run/gunicorn.conf.py" <<EOF
import os

wsgi_app = "keystone.wsgi.api:application"
bind = "127.0.0.1:0"
workers = 1
worker_class = "gthread"
threads = 1
keepalive = 300
timeout = 120
graceful_timeout = 5
control_socket_disable = True
raw_env = ["OS_KEYSTONE_CONFIG_FILES=$run/keystone.conf", "PYTHONWARNINGS=ignore"]


def when_ready(server):
    port = server.LISTENERS[0].sock.getsockname()[1]
    with open("$run/port.tmp", "w") as f:
        f.write(str(port))
    os.rename("$run/port.tmp", "$run/port")
EOF
  keystone_manage db_sync
  keystone_manage fernet_setup --keystone-user root --keystone-group root
  keystone_manage credential_setup --keystone-user root --keystone-group root
  # Its own session and process group, so that keystone_stop can end the whole server.
  (cd "$run" && exec setsid "$keystone_venv/bin/gunicorn" >"$run/keystone.log" 2>&1 </dev/null) &
  echo $! >"$run/pid"
  keystone_wait "Keystone's port" test -s "$run/port"
  local url
  url="http://127.0.0.1:$(cat "$run/port")"
  keystone_wait "Keystone at $url" curl -sf -o /dev/null "$url/v3"
  local admin_pw service_pw
  admin_pw=$(python3 -c 'import secrets; print(secrets.token_hex(18))')
  service_pw=$(python3 -c 'import secrets; print(secrets.token_hex(18))')
  keystone_manage bootstrap --bootstrap-username admin --bootstrap-password "$admin_pw" \
    --bootstrap-project-name admin --bootstrap-role-name admin \
    --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
    --bootstrap-admin-url "$url/v3" --bootstrap-public-url "$url/v3" \
    --bootstrap-internal-url "$url/v3"
  # The roles the tests grant (bootstrap made reader, member, manager, admin and service),
  # and Octavia's service user.
  "$keystone_venv/bin/python" - "$url/v3" "$admin_pw" "$service_pw" <<'EOF'
import json
import sys
import urllib.request

v3, admin_pw, service_pw = sys.argv[1:]


def call(method, path, body=None, token=None):
    req = urllib.request.Request(v3 + path, method=method)
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(req) as resp:
        data = resp.read()
        return resp.headers, (json.loads(data) if data else None)


default = {"id": "default"}
headers, _ = call("POST", "/auth/tokens", {"auth": {
    "identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": default, "password": admin_pw}}},
    "scope": {"project": {"name": "admin", "domain": default}}}})
token = headers["X-Subject-Token"]

roles = {r["name"]: r["id"] for r in call("GET", "/roles", token=token)[1]["roles"]}
for name in ["load-balancer_observer", "load-balancer_global_observer",
             "load-balancer_member", "load-balancer_quota_admin", "load-balancer_admin"]:
    if name not in roles:
        roles[name] = call("POST", "/roles", {"role": {"name": name}}, token)[1]["role"]["id"]

project = call("POST", "/projects", {"project": {
    "name": "service", "domain_id": "default"}}, token)[1]["project"]["id"]
user = call("POST", "/users", {"user": {
    "name": "octavia", "domain_id": "default", "password": service_pw,
    "default_project_id": project}}, token)[1]["user"]["id"]
for role in ["service", "admin"]:
    call("PUT", f"/projects/{project}/users/{user}/roles/{roles[role]}", token=token)
EOF
  export OCTAVIA_TEST_KEYSTONE_URL="$url"
  export OCTAVIA_TEST_KEYSTONE_ADMIN_PASSWORD="$admin_pw"
  export OCTAVIA_TEST_KEYSTONE_SERVICE_USER=octavia
  export OCTAVIA_TEST_KEYSTONE_SERVICE_PASSWORD="$service_pw"
  export OCTAVIA_TEST_KEYSTONE_SERVICE_PROJECT=service
  echo "Keystone ready at $url in $(openstack_since "$t0")s (log: $run/keystone.log)"
}

# Stops the Keystone that keystone_start started (the pid it wrote), if it still runs.
keystone_stop() {
  local pidfile="$keystone_run/pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  # Only that server: its working directory is the run directory.
  if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$keystone_run" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
