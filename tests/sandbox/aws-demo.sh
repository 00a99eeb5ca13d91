#!/usr/bin/env bash
# The whole AWS path on this machine: moto stands in for EC2 and Route53, `infra apply
# aws-sandbox` creates the VPC, groups, instances, volumes, Elastic IPs and DNS names there, and
# while it waits for SSH on the new machines, this script boots a sandbox host at each
# instance's private IP and plugs a loop device in where each EBS volume is attached. infra then
# reaches the hosts through the salt jump host and configures them.
#   tests/sandbox/aws-demo.sh          moto + sandbox + infra apply     (as root)
#   tests/sandbox/aws-demo.sh down     stop moto, tear the hosts down, free the loop devices
# Environment: INFRA_SITE (site dir, default the repo), INFRA_BIN (infra binary),
# INFRA_MOTO_PYTHON (a python with moto[server]), INFRA_MOTO_PORT (default 5055).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
site=$(cd "${INFRA_SITE:-$repo}" && pwd)
env=aws-sandbox
state=$site/.infra/$env
infra=${INFRA_BIN:-$repo/target/release/infra}
python=${INFRA_MOTO_PYTHON:-/opt/infra-ci/moto/bin/python}
port=${INFRA_MOTO_PORT:-5055}
sandbox=$repo/tests/sandbox/sandbox.sh
export INFRA_SANDBOX_SUBNET=10.213.50.0/24

down() {
  if [ -f "$state/moto.pid" ]; then
    kill "$(cat "$state/moto.pid")" 2>/dev/null || true
    rm -f "$state/moto.pid"
  fi
  "$sandbox" down "$state" 2>/dev/null || true
  for img in "$state"/volumes/*.img; do
    [ -e "$img" ] || continue
    losetup -j "$img" -O NAME -n | xargs -r -n1 losetup -d
    rm -f "$img"
  done
}
if [ "${1:-}" = down ]; then down; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "run as root: sandbox hosts are Linux namespaces"; exit 1; }

if [ -z "${INFRA_BIN:-}" ]; then
  # shellcheck source=tests/sandbox/toolchain.sh
  . "$repo/tests/sandbox/toolchain.sh"
  cargo_build "$repo" build --release --locked --workspace --quiet || exit 1
fi
if ! "$python" -c 'import moto' 2>/dev/null; then
  python=$state/moto-venv/bin/python
  [ -x "$python" ] || { python3 -m venv "$state/moto-venv" && "$python" -m pip install -q 'moto[server]==5.2.5'; }
fi
"$sandbox" setup --cache exim4-daemon-light exim4-base exim4-config bsd-mailx > /dev/null
# The application role app deploys (inventories/aws-sandbox.yaml names it), made before any
# host is up: the hosts see it through their overlay root.
"$repo/tests/sandbox/demo-repo.sh" > /dev/null
mkdir -p "$state/volumes"
if [ ! -f "$state/secrets.yaml" ] || ! grep -q '^site_tls_cert:' "$state/secrets.yaml"; then
  "$repo/tests/sandbox/make-secrets.sh" "$state" > "$state/secrets.tmp" && mv "$state/secrets.tmp" "$state/secrets.yaml"
  chmod 600 "$state/secrets.yaml"
fi

# moto, on loopback, with the reverse-DNS calls it lacks and console output that carries the
# booted hosts' SSH keys, as cloud-init prints them (tests/aws/moto_server.py).
mkdir -p "$state/console"
export INFRA_MOTO_CONSOLE_DIR=$state/console
if ! curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/"; then
  "$python" "$repo/tests/aws/moto_server.py" -H 127.0.0.1 -p "$port" > "$state/moto.log" 2>&1 &
  echo $! > "$state/moto.pid"
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/" && break; sleep 0.1; done
fi
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=moto AWS_SECRET_ACCESS_KEY=moto
export AWS_DEFAULT_REGION=us-east-1 AWS_MAX_ATTEMPTS=1

"$infra" -C "$site" apply "$env" --yes &
apply=$!

# The machines "boot": a sandbox host at each running instance's private IP, SSH only from the
# jump host (salt); a block device at each attached volume's device name.
wanted=$("$infra" -C "$site" hosts "$env" --out json | "$python" -c 'import json,sys; print(len(json.load(sys.stdin)))')
booted=0
declare -A plugged=()
while kill -0 "$apply" 2>/dev/null; do
  cloud=$(AWS_DEFAULT_REGION=us-east-1 "$python" "$repo/tests/aws/moto_state.py" "$env" 2>/dev/null) || { sleep 1; continue; }
  if [ "$booted" = 0 ]; then
    mapfile -t hosts < <(printf '%s' "$cloud" | "$python" -c '
import json, sys
for i in json.load(sys.stdin)["instances"]:
    if i["state"] == "running" and i["private_ip"]:
        print(i["host"] + "=" + i["private_ip"])')
    if [ "${#hosts[@]}" = "$wanted" ]; then
      "$sandbox" up "$state" "${hosts[@]}"
      # cloud-init prints the new machine's host keys on its console: infra pins them from there.
      for h in "${hosts[@]}"; do
        { echo "-----BEGIN SSH HOST KEY KEYS-----"
          "$sandbox" exec "$state" "${h%%=*}" -- cat /etc/ssh/ssh_host_ecdsa_key.pub /etc/ssh/ssh_host_ed25519_key.pub
          echo "-----END SSH HOST KEY KEYS-----"; } > "$state/console/${h#*=}.tmp"
        mv "$state/console/${h#*=}.tmp" "$state/console/${h#*=}"
      done
      salt_ip=$(printf '%s\n' "${hosts[@]}" | sed -n 's/^salt=//p')
      for h in "${hosts[@]}"; do
        name=${h%%=*}
        [ "$name" = salt ] || "$sandbox" firewall "$state" "$name" "$salt_ip" reject
      done
      booted=1
    fi
  fi
  if [ "$booted" = 1 ]; then
    while read -r id host device; do
      [ -n "$id" ] && [ -z "${plugged[$id]:-}" ] || continue
      img=$state/volumes/$id.img
      truncate -s 1G "$img"
      loop=$(losetup -f --show "$img")
      read -r major minor < <(stat -c '%t %T' "$loop")
      "$sandbox" exec "$state" "$host" -- mknod "$device" b $((16#$major)) $((16#$minor))
      plugged[$id]=1
      echo "aws-demo: volume $id of $host plugged in at $device ($loop)" >&2
    done < <(printf '%s' "$cloud" | "$python" -c '
import json, sys
for v in json.load(sys.stdin)["volumes"]:
    if v["attached_to_host"] and v["device"]:
        print(v["id"], v["attached_to_host"], v["device"])')
  fi
  sleep 1
done
rc=0
wait "$apply" || rc=$?
app1=$("$python" "$repo/tests/aws/moto_state.py" "$env" 2>/dev/null | "$python" -c '
import json, sys
print(next(i["private_ip"] for i in json.load(sys.stdin)["instances"] if i["host"] == "app1" and i["state"] == "running"))' 2>/dev/null || true)
echo
echo "infra apply exited $rc"
# https with the sandbox CA's certificate (make-secrets.sh); http redirects there.
[ -n "$app1" ] && echo "app1 ($app1) answers: $(curl -s --max-time 5 --cacert "$state/keys/ca.pem" --resolve "www.aws-sandbox.test:443:$app1" https://www.aws-sandbox.test/ || true)"
echo "tear down with: $0 down"
exit "$rc"
