#!/usr/bin/env bash
# infra against Ansible and pyinfra on the same sandbox hosts, in the same run. As root:
#   bench/compare.sh                       N = 10 and 50, added RTT 0 and 25 ms, 3 runs (the slow
#                                          peers fewer: compare.py --runs-for), about 2 h
#   bench/compare.sh --hosts 10 --rtt 0 --runs 5 --tools infra,pyinfra --cases noop,check
# On a fresh Debian 12 machine it installs what it needs itself: the workload's packages (nginx,
# supervisor: the hosts see this machine's packages through their overlay root, and have no
# network to fetch them), the sandbox's tools, and the peers, pinned, in venvs
# (bench/compare/{ansible,pyinfra}/install.sh); it builds infra in release mode, brings the
# hosts up with tests/sandbox/sandbox.sh (10.213.130.0/24),
# and writes bench/results-compare.md: the machine, the versions, then the table
# (bench/compare/compare.py says how each figure is measured). A benchmark, not a test.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$repo/bench/results-compare.md}
[ "$(id -u)" = 0 ] || { echo "bench/compare.sh: run as root (the hosts are namespaces)" >&2; exit 1; }
# The workload's packages and what the driver uses; no daemon may start on this machine.
need=()
for p in nginx supervisor python3-venv python3-apt openssh-client git procps; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "bench/compare.sh: apt-get install ${need[*]}" >&2
  policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    --no-install-recommends "${need[@]}" < /dev/null >&2
  [ "$policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
fi
bash "$repo/bench/compare/ansible/install.sh" >&2
bash "$repo/bench/compare/pyinfra/install.sh" >&2
(cd "$repo" && cargo build --release --locked --quiet -p infra)
"$repo/tests/sandbox/sandbox.sh" setup > /dev/null
table=$(mktemp)
trap 'rm -f "$table"' EXIT
start=$(date -u '+%Y-%m-%d %H:%M UTC')
python3 "$repo/bench/compare/compare.py" --out "$table" "$@"
{
  echo "## bench/compare.sh $*"
  echo
  echo "$start; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), load at end $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Versions: infra $(git -C "$repo" rev-parse --short HEAD) ($("$repo/target/release/infra" --version)),"\
    "$("${ANSIBLE_VENV:-/opt/infra-bench/ansible-venv}/bin/ansible-playbook" --version | head -1),"\
    "pyinfra $("${PYINFRA_VENV:-/opt/infra-bench/pyinfra-venv}/bin/python" -c 'import importlib.metadata as m; print(m.version("pyinfra"))'),"\
    "$(ssh -V 2>&1), $(python3 --version)."
  echo
  cat "$table"
} > "$out"
cat "$out"
