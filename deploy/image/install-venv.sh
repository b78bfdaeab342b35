#!/usr/bin/env bash
# Installs rdqc into a virtual environment. `make setup` (editable, with the dev extra) and the
# container image (`.`, the service alone) both run this script, so the image is installed by the
# same commands as the environment the tests ran in.
# Usage: install-venv.sh VENV_DIR PIP_TARGET...   (a new venv uses $PYTHON, default python3)
set -euo pipefail

if (( $# < 2 )); then
  echo "usage: $0 VENV_DIR PIP_TARGET..." >&2
  exit 2
fi
venv_dir=$1
shift

test -x "$venv_dir/bin/python" || "${PYTHON:-python3}" -m venv "$venv_dir"
"$venv_dir/bin/pip" install --quiet --upgrade pip
"$venv_dir/bin/pip" install --quiet "$@"
