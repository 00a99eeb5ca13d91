#!/usr/bin/env bash
# Times `infra validate` (which loads, checks and renders every file of every host) on the
# production inventory and on a generated 1,000-host inventory. A benchmark, not a test.
# Usage: bench/render.sh [HOSTS]     (needs hyperfine: apt-get install hyperfine)
set -euo pipefail
hosts=${1:-1000}
repo=$(cd "$(dirname "$0")/.." && pwd)
command -v hyperfine >/dev/null || { echo "bench/render.sh: hyperfine is not installed (apt-get install hyperfine)" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
bin=$repo/target/release/infra
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$repo/roles" "$repo/templates" "$repo/inventories" "$work/"

# A production-like environment with $hosts hosts: the singletons once, then db, sessions and
# app hosts in proportion; every host gets a fixed private IP in 10.30.0.0/16.
gen() {
  local n=$1 i=0 ip
  cat <<YAML
environment: big
domain: big.example.org
internal_domain: big.internal
provider: {type: aws, region: us-east-1, ami: ami-0123456789abcdef0, instance_type: t3.small, key_name: big, vpc_cidr: 10.30.0.0/16, subnet_cidr: 10.30.0.0/16}
ssh: {user: admin, jump_host: salt}
hosts:
YAML
  ip() { printf '10.30.%d.%d' $(( ($1 + 10) / 250 )) $(( ($1 + 10) % 250 + 2 )); }
  for spec in "salt:salt" "source:source" "mail:mail" "db1:db, masterdb" "queue1:queue" "pg1:postgres"; do
    echo "  ${spec%%:*}: {roles: [${spec#*:}], private_ip: $(ip $i)}"; i=$((i + 1))
  done
  local k=0
  while [ $i -lt "$n" ]; do
    k=$((k + 1))
    case $(( k % 10 )) in
      0) echo "  db$((k + 1)): {roles: [db], private_ip: $(ip $i)}" ;;
      1) echo "  sessions$k: {roles: [sessions], private_ip: $(ip $i)}" ;;
      2) echo "  memcache$k: {roles: [memcache], private_ip: $(ip $i)}" ;;
      *) echo "  app$k: {roles: [app], private_ip: $(ip $i)}" ;;
    esac
    i=$((i + 1))
  done
}
gen "$hosts" > "$work/inventories/big.yaml"
for env in production big; do
  "$bin" -C "$work" validate "$env" 2>"$work/validate.log" >/dev/null || { cat "$work/validate.log" >&2; exit 1; }
  echo "$env: $(tail -n 1 "$work/validate.log")" >&2
done
hyperfine --warmup 2 --runs "${RUNS:-10}" --export-markdown "${OUT:-/dev/stdout}" \
  -n "validate production" "$bin -C $work validate production" \
  -n "validate big ($hosts hosts)" "$bin -C $work validate big"
