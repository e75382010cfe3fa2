#!/usr/bin/env bash
# Run uv, installing it first when this machine has none.
#
# Resolved on every call, after any install, never before: pip may put the `uv` executable in
# the user site, the system site, a pyenv shim or a venv, none of which is known in advance.
# `python3 -m uv` finds the binary that the wheel installed wherever that was.
set -euo pipefail
PY=${PYTHON:-python3}
if command -v uv >/dev/null 2>&1; then
  exec uv "$@"
fi
if ! "$PY" -m uv --version >/dev/null 2>&1; then
  echo "uv: not found; installing it with pip" >&2
  "$PY" -m pip install -q uv >&2
fi
exec "$PY" -m uv "$@"
