#!/usr/bin/env bash
# Creates $PYINFRA_VENV (default /opt/infra-bench/pyinfra-venv) with Debian's python3.11 and
# installs the pinned pyinfra (and its dependencies, pinned by constraints.txt) from PyPI.
# Idempotent (bench/compare/venv-install.sh). Usage: bench/compare/pyinfra/install.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../venv-install.sh" "${PYINFRA_VENV:-/opt/infra-bench/pyinfra-venv}" \
  "${PYINFRA_PYTHON:-/usr/bin/python3.11}" "$here/constraints.txt" pyinfra 3.10.0 \
  'import pyinfra.version as v; print(v.__version__)'
