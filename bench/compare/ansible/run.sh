#!/usr/bin/env bash
# Runs the comparison workload with Ansible (ansible-core, playbook site.yml, role roles/app).
# Usage: bench/compare/ansible/run.sh apply|check STATE
#   STATE/hosts.json  [{"name": "h1", "ip": "10.213.71.2", "port": 22}, ...]
#   STATE/key         ed25519 private key that logs in as root on every host
#   STATE/vars.json   the `bench` dict the templates see
# run.sh writes STATE/ansible/ (ansible.cfg, inventory.json, extra.json, cp/, tmp/,
# known_hosts) and runs ansible-playbook. apply: converge. check: --check (dry run).
# Exit code: ansible-playbook's (0 = success).
#
# Settings, and why (see README.md):
# - ansible-playbook from $ANSIBLE_VENV/bin (default /opt/infra-bench/ansible-venv, made by
#   install.sh: ansible-core 2.19.14 pinned, dependencies pinned by constraints.txt).
# - ANSIBLE_CONFIG=STATE/ansible/ansible.cfg, generated each run; no other config is read.
# - forks = number of hosts in hosts.json: every host at once.
# - strategy = linear (the default): measured against `free`, no-op apply on 3 hosts, runs
#   alternated: linear 21.4-22.3 s, free 22.1-23.0 s (the run is CPU-bound on the hosts'
#   module executions, so letting hosts run ahead gains nothing). ANSIBLE_BENCH_STRATEGY
#   overrides it for experiments.
# - gathering = explicit and `gather_facts: false` in site.yml: no fact gathering at all.
#   The service tasks say `use: service`, so the service action plugin does not run `setup`
#   to find the service manager either.
# - interpreter_python = /usr/bin/python3: no interpreter discovery round trip (and no
#   discovery warning). Debian 12's python3.11 with python3-apt (needed by the apt module).
# - pipelining = True: a module runs as one `ssh ... python3` with the module on stdin (no
#   module file transfer, no chmod). The template action still creates and removes a remote
#   temp dir per file (3 short shell commands), and a changed file is sent there by sftp.
# - ssh_args = -o ControlMaster=auto -o ControlPersist=60s (Ansible's default without -C:
#   no compression on a LAN), plus -o UserKnownHostsFile=STATE/ansible/known_hosts
#   -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes.
#   ControlPath STATE/ansible/cp/%h-%p-%r (falls back to a short dir under /tmp if STATE's
#   path is too long for a unix socket). One master connection per host, shared by every
#   task. OpenSSH's default key exchange and ciphers, like infra.
#   When ansible-playbook exits, run.sh closes those masters (ssh -O exit), so no connection
#   outlives the run, as with infra and pyinfra (the next run logs in afresh).
# - host_key_checking = False: ssh gets StrictHostKeyChecking=no and records unknown keys in
#   STATE/ansible/known_hosts. (With True, Ansible serializes the first connection to each
#   unknown host behind a lock, and a new host would prompt.)
# - retry_files_enabled = False; local_tmp under STATE/ansible/tmp.
# - Output: stdout_callback = default with display_ok_hosts = False and
#   display_skipped_hosts = False: changed and failed results, the task banners they belong
#   to, and the recap (ok=/changed=/failed= per host). No --diff, no -v.
#   deprecation_warnings = False: hides only the notice that jinja2_extensions (below) goes
#   away in ansible-core 2.23.
# - Templates (roles/app/tasks/main.yml): ansible.builtin.template with src
#   ../workload/templates/*.j2 as they are, trim_blocks: false (plain Jinja2, the same bytes
#   infra and pyinfra write), task vars host_name (= inventory_hostname) and program;
#   `bench` is an extra var (STATE/ansible/extra.json = {"bench": <vars.json>, ...}).
#   Two loops over files.json: the notify:true files notify the `reload nginx` handler (runs
#   once per host, at the end of the play, only if one of them changed), the others don't.
# - jinja2_extensions = bench_keep_trailing_newline.KeepTrailingNewline (jinja/, put on
#   PYTHONPATH): sets Jinja2's keep_trailing_newline, which the template module does not
#   expose. Without it Ansible writes one newline fewer than infra/pyinfra at the end of
#   templates ending in `{% endfor %}\n` (hosts.j2, memcached.conf.j2), and the tools would
#   rewrite those files back and forth on shared hosts. Rendering only; no speed effect.
set -uo pipefail
mode=${1:-}
state=${2:-}
case "$mode" in
  apply) flags=() ;;
  check) flags=(--check) ;;
  *) echo "usage: $0 apply|check STATE" >&2; exit 2 ;;
esac
[ -n "$state" ] && [ -f "$state/hosts.json" ] && [ -f "$state/key" ] && [ -f "$state/vars.json" ] \
  || { echo "run.sh: STATE must hold hosts.json, key and vars.json" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
state=$(cd "$state" && pwd)
venv=${ANSIBLE_VENV:-/opt/infra-bench/ansible-venv}
[ -x "$venv/bin/ansible-playbook" ] || { echo "run.sh: no ansible-playbook in $venv (run $here/install.sh)" >&2; exit 2; }

dir=$state/ansible
mkdir -p "$dir/cp" "$dir/tmp"
cp_dir=$dir/cp
# sun_path holds 107 bytes; ssh first binds "<ControlPath>.<16 random chars>", and
# %h-%p-%r is at most 15+1+5+1+4 bytes for an IPv4 address and root.
if [ $((${#cp_dir} + 1 + 26 + 17)) -gt 107 ]; then
  cp_dir=$(mktemp -d /tmp/ansible-cp.XXXXXX)
  trap 'rm -rf "$cp_dir"' EXIT
fi

"$venv/bin/python" - "$state" "$here" "$cp_dir" "${ANSIBLE_BENCH_STRATEGY:-linear}" <<'PY' || exit 2
import json, os, sys
state, here, cp_dir, strategy = sys.argv[1:]
d = os.path.join(state, "ansible")
hosts = json.load(open(os.path.join(state, "hosts.json")))
if not hosts:
    sys.exit("run.sh: hosts.json lists no host")
inventory = {"all": {"hosts": {h["name"]: {"ansible_host": h["ip"], "ansible_port": int(h["port"])}
                               for h in hosts}}}
with open(os.path.join(d, "inventory.json"), "w") as f:
    json.dump(inventory, f, indent=1)
extra = {"bench": json.load(open(os.path.join(state, "vars.json"))),
         "bench_workload": os.path.normpath(os.path.join(here, "..", "workload"))}
with open(os.path.join(d, "extra.json"), "w") as f:
    json.dump(extra, f, indent=1)
cfg = f"""# Generated by bench/compare/ansible/run.sh: see the comment block there.
[defaults]
inventory = {d}/inventory.json
remote_user = root
private_key_file = {state}/key
forks = {len(hosts)}
strategy = {strategy}
gathering = explicit
interpreter_python = /usr/bin/python3
host_key_checking = False
retry_files_enabled = False
local_tmp = {d}/tmp
stdout_callback = default
display_ok_hosts = False
display_skipped_hosts = False
nocows = True
jinja2_extensions = bench_keep_trailing_newline.KeepTrailingNewline
deprecation_warnings = False

[inventory]
enable_plugins = yaml

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={d}/known_hosts -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes
control_path_dir = {cp_dir}
control_path = %(directory)s/%%h-%%p-%%r
"""
with open(os.path.join(d, "ansible.cfg"), "w") as f:
    f.write(cfg)
PY

export ANSIBLE_CONFIG=$dir/ansible.cfg
export PYTHONPATH=$here/jinja${PYTHONPATH:+:$PYTHONPATH}
"$venv/bin/ansible-playbook" "${flags[@]}" -e "@$dir/extra.json" "$here/site.yml"
rc=$?

# Close the ControlPersist masters: no connection is kept between runs.
for s in "$cp_dir"/*; do
  [ -S "$s" ] && ssh -o ControlPath="$s" -O exit bench-host >/dev/null 2>&1 &
done
wait
exit "$rc"
