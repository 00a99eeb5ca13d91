#!/usr/bin/env bash
# Brings up the sandbox hosts of inventories/sandbox.yaml, makes its secrets (random passwords,
# a DKIM key, a MariaDB TLS CA and certificate) and the demo application's git repository
# (tests/sandbox/demo-repo.sh), and applies the repository's site to them.
#   tests/sandbox/demo.sh            up + apply      (as root)
#   tests/sandbox/demo.sh down       tear the hosts down
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
state=.infra/sandbox
infra=${INFRA_BIN:-$repo/target/release/infra}
if [ "${1:-}" = down ]; then
  tests/sandbox/sandbox.sh down "$state"
  # The next `up` makes new hosts with new host keys: forget the old ones.
  rm -f .infra/known_hosts/sandbox
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0): sandbox hosts are Linux namespaces" >&2; exit 1; }
if [ -z "${INFRA_BIN:-}" ]; then
  # shellcheck source=tests/sandbox/toolchain.sh
  . tests/sandbox/toolchain.sh
  cargo_build "$repo" build --release --locked --quiet || exit 1
fi
# The hosts have no network: every package the site installs must be in the shared apt cache
# (on a fresh machine none is installed yet; exim4 is always cached: it conflicts with postfix).
mapfile -t packages < <("$infra" hosts sandbox --out json | python3 -c 'import json,sys; print("\n".join(sorted({p for h in json.load(sys.stdin) for p in h["packages"]})))')
tests/sandbox/sandbox.sh setup --cache exim4-daemon-light exim4-base exim4-config bsd-mailx "${packages[@]}" >/dev/null
mkdir -p "$state"
secrets=$state/secrets.yaml
# (made again when it predates a secret the site now needs: the web roles' certificate)
if [ ! -f "$secrets" ] || ! grep -q '^site_tls_cert:' "$secrets"; then
  tests/sandbox/make-secrets.sh "$state" > "$secrets.tmp" && mv "$secrets.tmp" "$secrets"
  chmod 600 "$secrets"
fi
mapfile -t hosts < <("$infra" hosts sandbox --out json | python3 -c 'import json,sys; [print(h["name"]+"="+h["address"]) for h in json.load(sys.stdin)]')
# The application role app deploys (inventories/sandbox.yaml names it), made before the hosts
# are up: they see it through their overlay root and fetch it as any git repository.
tests/sandbox/demo-repo.sh > /dev/null
tests/sandbox/sandbox.sh up "$state" "${hosts[@]}"
"$infra" apply sandbox --yes
echo
# app1 serves https with the sandbox CA's certificate (make-secrets.sh); http redirects there.
echo "app1 answers: $(curl -s --max-time 5 --cacert "$state/keys/ca.pem" --resolve www.sandbox.test:443:10.213.0.50 https://www.sandbox.test/)"
