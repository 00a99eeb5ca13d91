#!/usr/bin/env bash
# Creates $ANSIBLE_VENV (default /opt/infra-bench/ansible-venv) with Debian's python3.11 and
# installs the pinned ansible-core (and its dependencies, pinned by constraints.txt) from PyPI.
# 2.19.x is the newest ansible-core series that runs on a python3.11 controller (2.20 needs
# 3.12). No collections are installed: the playbook uses ansible.builtin only.
# Idempotent (bench/compare/venv-install.sh). Usage: bench/compare/ansible/install.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../venv-install.sh" "${ANSIBLE_VENV:-/opt/infra-bench/ansible-venv}" \
  "${ANSIBLE_PYTHON:-/usr/bin/python3.11}" "$here/constraints.txt" ansible-core 2.19.14 \
  'from ansible.release import __version__ as v; print(v)'
