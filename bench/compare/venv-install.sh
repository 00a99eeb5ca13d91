#!/usr/bin/env bash
# Makes VENV with PYTHON (Debian's python3.11 unless given) and installs one pinned package
# from PyPI, its dependencies pinned by CONSTRAINTS. Idempotent: a venv whose VERSION_CMD
# (run with the venv's python, -c) already prints VERSION is left alone. Used by
# bench/compare/{ansible,pyinfra}/install.sh, which hold the pins.
#   venv-install.sh VENV PYTHON CONSTRAINTS PACKAGE VERSION VERSION_CMD
set -euo pipefail
[ $# = 6 ] || { echo "usage: venv-install.sh VENV PYTHON CONSTRAINTS PACKAGE VERSION VERSION_CMD" >&2; exit 2; }
venv=$1 python=$2 constraints=$3 package=$4 version=$5 version_cmd=$6

have=$("$venv/bin/python" -c "$version_cmd" 2>/dev/null || true)
if [ "$have" != "$version" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || { echo "venv-install.sh: $python not found (apt-get install python3.11-venv)" >&2; exit 1; }
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check -c "$constraints" "$package==$version"
  have=$("$venv/bin/python" -c "$version_cmd")
  [ "$have" = "$version" ] || { echo "venv-install.sh: $package in $venv is $have, not $version" >&2; exit 1; }
fi
echo "$package $have"
