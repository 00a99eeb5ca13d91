#!/usr/bin/env bash
# Creates $PYINFRA_VENV (default /opt/infra-bench/pyinfra-venv) with Debian's python3.11 and
# installs the pinned pyinfra (and its dependencies, pinned by constraints.txt) from PyPI.
# Idempotent: a venv that already has exactly this version is left alone.
# Usage: bench/compare/pyinfra/install.sh
set -euo pipefail
PYINFRA_VERSION=3.10.0
here=$(cd "$(dirname "$0")" && pwd)
venv=${PYINFRA_VENV:-/opt/infra-bench/pyinfra-venv}
python=${PYINFRA_PYTHON:-/usr/bin/python3.11}

have=$("$venv/bin/python" -c 'import pyinfra.version as v; print(v.__version__)' 2>/dev/null || true)
if [ "$have" != "$PYINFRA_VERSION" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || { echo "install.sh: $python not found (apt-get install python3.11-venv)" >&2; exit 1; }
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -c "$here/constraints.txt" "pyinfra==$PYINFRA_VERSION"
fi
"$venv/bin/pyinfra" --version
