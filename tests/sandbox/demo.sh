#!/usr/bin/env bash
# Brings up the sandbox hosts of inventories/sandbox.yaml, makes its secrets (random passwords,
# a DKIM key, a MariaDB TLS CA and certificate) and applies the repository's site to them.
#   tests/sandbox/demo.sh            up + apply      (as root)
#   tests/sandbox/demo.sh down       tear the hosts down
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
state=.infra/sandbox
infra=${INFRA_BIN:-$repo/target/release/infra}
if [ "${1:-}" = down ]; then
  exec tests/sandbox/sandbox.sh down "$state"
fi
[ -x "$infra" ] || cargo build --release --quiet
tests/sandbox/sandbox.sh setup --cache exim4-daemon-light exim4-base exim4-config bsd-mailx >/dev/null
mkdir -p "$state"
secrets=$state/secrets.yaml
if [ ! -f "$secrets" ]; then
  tests/sandbox/make-secrets.sh "$state" > "$secrets.tmp" && mv "$secrets.tmp" "$secrets"
  chmod 600 "$secrets"
fi
mapfile -t hosts < <("$infra" hosts sandbox --out json | python3 -c 'import json,sys; [print(h["name"]+"="+h["address"]) for h in json.load(sys.stdin)]')
tests/sandbox/sandbox.sh up "$state" "${hosts[@]}"
"$infra" apply sandbox --yes
echo
echo "app1 answers: $(curl -s --max-time 5 http://10.213.0.50/)"
