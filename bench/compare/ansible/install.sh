#!/usr/bin/env bash
# Creates $ANSIBLE_VENV (default /opt/infra-bench/ansible-venv) with Debian's python3.11 and
# installs the pinned ansible-core (and its dependencies, pinned by constraints.txt) from PyPI.
# 2.19.x is the newest ansible-core series that runs on a python3.11 controller (2.20 needs
# 3.12). No collections are installed: the playbook uses ansible.builtin only.
# Idempotent: a venv that already has exactly this version is left alone.
# Usage: bench/compare/ansible/install.sh
set -euo pipefail
ANSIBLE_CORE_VERSION=2.19.14
here=$(cd "$(dirname "$0")" && pwd)
venv=${ANSIBLE_VENV:-/opt/infra-bench/ansible-venv}
python=${ANSIBLE_PYTHON:-/usr/bin/python3.11}

have=$("$venv/bin/python" -c 'from ansible.release import __version__ as v; print(v)' 2>/dev/null || true)
if [ "$have" != "$ANSIBLE_CORE_VERSION" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || { echo "install.sh: $python not found (apt-get install python3.11-venv)" >&2; exit 1; }
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -c "$here/constraints.txt" "ansible-core==$ANSIBLE_CORE_VERSION"
fi
"$venv/bin/python" -c 'from ansible.release import __version__ as v; print("ansible-core", v)'
