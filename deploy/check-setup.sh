#!/usr/bin/env bash
# Proves the set-up path works where uv is not on PATH and pip installs it somewhere that
# nothing predicted (issue 10: the Makefile once guessed ~/.local/bin/uv before installing).
#
# A throw-away venv stands for "a Python whose pip puts scripts in a directory not on PATH";
# PATH is stripped of every directory holding a `uv`. deploy/uv.sh must then install uv and
# run it on its first call. The wheel comes from pip's cache after the first run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
clean_path=""
IFS=: read -r -a dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  [ -n "$d" ] && [ ! -x "$d/uv" ] && clean_path="${clean_path:+$clean_path:}$d"
done
if PATH=$clean_path command -v uv >/dev/null 2>&1; then
  echo "check-setup: could not hide uv from PATH" >&2; exit 1
fi
if "$work/venv/bin/python" -m uv --version >/dev/null 2>&1; then
  echo "check-setup: the fresh venv already has uv; the check would prove nothing" >&2; exit 1
fi
out=$(PATH=$clean_path PYTHON="$work/venv/bin/python" "$root/deploy/uv.sh" --version 2>&1) || {
  echo "check-setup: deploy/uv.sh failed on a machine without uv:" >&2; echo "$out" >&2; exit 1; }
case "$out" in
  *"uv "[0-9]*) echo "check-setup: ok — first call without uv on PATH installed and ran it ($(tail -n1 <<<"$out"))" ;;
  *) echo "check-setup: unexpected output: $out" >&2; exit 1 ;;
esac
