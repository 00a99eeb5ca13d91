#!/usr/bin/env bash
# The benchmark workload (bench/compare/workload) as an infra site, run against STATE's hosts.
#   run.sh apply STATE     infra apply --yes          (converge)
#   run.sh plan STATE      infra plan --detailed-exitcode  (exit 0: no changes, 2: changes)
# STATE holds hosts.json ([{name, ip, port}]), key (root's private key) and vars.json (the
# `bench` variables). The site is generated into STATE/infra-site when those change (not timed
# on later runs, as a checked-in site would not be regenerated either).
# Settings: --parallel = number of hosts (all at once), the OpenSSH defaults otherwise; one
# connection per host per run, closed at its end (no connection kept between runs), unless
# INFRA_BENCH_KEEP is set (the `infra-kept` tool of compare.py): then the inventory says
# `ssh.control_persist: $INFRA_BENCH_KEEP` and a run takes up the connections the previous
# run kept. StrictHostKeyChecking accept-new with a known_hosts file under STATE.
set -euo pipefail
mode=$1 state=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
workload=$here/../workload
infra=${INFRA_BIN:-$here/../../../target/release/infra}
site=$state/infra-site
python=${PYTHON:-python3}

keep=${INFRA_BENCH_KEEP:-} kept=
[ -f "$site/.keep" ] && read -r kept < "$site/.keep" || true
if [ ! -f "$site/.stamp" ] || [ "$state/vars.json" -nt "$site/.stamp" ] || [ "$state/hosts.json" -nt "$site/.stamp" ] ||
  [ "$keep" != "$kept" ] ||
  [ -n "$(find "$workload" "$0" -newer "$site/.stamp" -print -quit)" ]; then
  rm -rf "$site"
  mkdir -p "$site/roles" "$site/inventories" "$site/templates/app"
  # The shared templates speak of `bench`, `program` and `host_name`; in infra they are
  # vars.bench, vars.program (a per-file variable) and host.name.
  for t in "$workload"/templates/*.j2; do
    sed -e 's/\bbench\./vars.bench./g' -e 's/\bprogram\./vars.program./g' -e 's/\bhost_name\b/host.name/g' \
      "$t" > "$site/templates/app/$(basename "$t")"
  done
  "$python" - "$workload/files.json" "$state" "$site" "$keep" <<'PY'
import json, sys
files, state, site, keep = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
hosts = json.load(open(f"{state}/hosts.json"))
bench = json.load(open(f"{state}/vars.json"))
ports = {h["port"] for h in hosts}
if len(ports) != 1:
    sys.exit("infra/run.sh: every host must use the same ssh port")
role = {
    "name": "app",
    "description": "the benchmark workload: the app role's files, packages and services",
    "packages": ["nginx", "supervisor"],
    "dirs": [{"path": "/etc/app", "mode": "0755"}, {"path": "/var/log/app", "mode": "0755"}],
    "files": [],
    "services": [{"name": "nginx", "on_change": "reload"}, {"name": "supervisor"}],
}
for f in files:
    entry = {"template": "app/" + f["template"], "dest": f["dest"], "mode": f["mode"]}
    if f.get("notify"):
        entry["notify"] = ["nginx"]
    if "program" in f:
        entry["vars"] = {"program": f["program"]}
    role["files"].append(entry)
inventory = {
    "environment": "bench",
    "domain": bench["domain"],
    "internal_domain": "bench.internal",
    "provider": {"type": "static"},
    "ssh": {"user": "root", "port": ports.pop(), "identity_file": f"{state}/key",
            "known_hosts_file": f"{state}/infra-known_hosts"},
    "vars": {"bench": bench},
    "hosts": {h["name"]: {"roles": ["app"], "address": h["ip"]} for h in hosts},
}
if keep:
    inventory["ssh"]["control_persist"] = keep
# JSON is YAML: no YAML library needed.
json.dump(role, open(f"{site}/roles/app.yaml", "w"), indent=1)
json.dump(inventory, open(f"{site}/inventories/bench.yaml", "w"), indent=1)
PY
  "$python" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$state/hosts.json" > "$site/.hosts"
  printf '%s\n' "$keep" > "$site/.keep"
  touch "$site/.stamp"
fi
n=$(<"$site/.hosts")
case $mode in
  apply) exec "$infra" -C "$site" apply bench --yes --parallel "$n" ;;
  plan) exec "$infra" -C "$site" plan bench --detailed-exitcode --parallel "$n" ;;
  *) echo "usage: $0 apply|plan STATE" >&2; exit 1 ;;
esac
