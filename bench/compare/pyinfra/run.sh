#!/usr/bin/env bash
# Runs the comparison workload with pyinfra.
# Usage: bench/compare/pyinfra/run.sh apply|dry STATE
#   STATE/hosts.json  [{"name": "h1", "ip": "10.213.72.2", "port": 22}, ...]
#   STATE/key         ed25519 private key that logs in as root on every host
#   STATE/vars.json   the `bench` dict the templates see
# Exit code: pyinfra's (0 = success).
#
# Settings, and why (see README.md):
# - pyinfra $PYINFRA_VENV/bin/pyinfra (default /opt/infra-bench/pyinfra-venv, made by
#   install.sh: pyinfra 3.10.0 pinned, dependencies pinned by constraints.txt).
# - apply: `--yes` (execute at once; no "proposed changes" pass first, so each operation
#   is generated and its facts fetched once). dry: `--dry` (one pass that fetches the facts
#   and prints the proposed changes; nothing is executed).
# - `--parallel N` with N = number of hosts in hosts.json: every host at once.
# - Default lock-step order (pyinfra waits for all hosts between operations); no --no-wait,
#   no --serial. PYI_BENCH_EXTRA_ARGS adds flags (e.g. --no-wait) for experiments.
# - Default verbosity (no -v, no --diff, no --debug): one line per operation plus a line per
#   host per operation, all on stderr (stdout stays empty). The caller redirects it.
# - No fact gathering up front: pyinfra 3 fetches only the facts each operation needs
#   (File + Sha1File per template, Directory per directory, DebPackages, InitdStatus and
#   FindLinks per service, LinuxDistribution only when update-rc.d would run).
# - SSH (inventory.py): paramiko, user root, key STATE/key only (no agent, no key probing,
#   ssh_config /dev/null), port and address from hosts.json. Host keys: accept-new with
#   known_hosts STATE/pyinfra-known_hosts (the first run records the keys, with one warning
#   per host; later runs check them; a host re-created with new keys behind the same
#   address:port fails until that file is deleted). No prompt ever.
#   One SSH connection per host for the whole run (pyinfra keeps it open).
# - Operations (deploy.py): files.directory, apt.packages (present, no update),
#   files.template (src = workload/templates/*.j2 as they are, variables bench, program,
#   host_name; owner root:root, mode from files.json; create_remote_dir=False),
#   sysvinit.service (running + enabled) for nginx and supervisor, and a final
#   sysvinit.service reloaded=True with _if=any_changed(<the notify files>).
#   server.service is not used: /usr/bin/systemctl exists on the hosts but systemd does not
#   run, so server.service picks systemd and fails.
set -euo pipefail
mode=${1:-}
state=${2:-}
case "$mode" in
  apply) flag=--yes ;;
  dry) flag=--dry ;;
  *) echo "usage: $0 apply|dry STATE" >&2; exit 2 ;;
esac
if [ -z "$state" ] || [ ! -f "$state/hosts.json" ] || [ ! -f "$state/key" ] || [ ! -f "$state/vars.json" ]; then
  echo "run.sh: STATE must hold hosts.json, key and vars.json" >&2; exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
venv=${PYINFRA_VENV:-/opt/infra-bench/pyinfra-venv}
[ -x "$venv/bin/pyinfra" ] || { echo "run.sh: no pyinfra in $venv (run $here/install.sh)" >&2; exit 2; }

PYI_BENCH_STATE=$(cd "$state" && pwd)
PYI_BENCH_WORKLOAD=$(cd "$here/../workload" && pwd)
export PYI_BENCH_STATE PYI_BENCH_WORKLOAD
n=$("$venv/bin/python" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$state/hosts.json")
[ "$n" -ge 1 ] || { echo "run.sh: hosts.json lists no host" >&2; exit 2; }

# Run from STATE: pyinfra writes pyinfra-debug.log into the working directory on a crash.
cd "$PYI_BENCH_STATE"
touch pyinfra-known_hosts
# shellcheck disable=SC2086
exec "$venv/bin/pyinfra" "$flag" --parallel "$n" ${PYI_BENCH_EXTRA_ARGS:-} "$here/inventory.py" "$here/deploy.py"
