#!/usr/bin/env bash
# Sets squall up in ./.venv from this repository's own files, then runs the main job.
#   bash ci/bootstrap.sh            set up, then run every conformance scenario against every
#                                   client (the reference client on each dialect and the real
#                                   SDKs from npm), the matrix in reports/
#   bash ci/bootstrap.sh --setup    set up only
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c ci/constraints.txt -e ".[test]"
# The node drivers of the real SDKs (drivers/*/), each from its committed lock file.
for lock in drivers/*/package-lock.json; do
  [ -f "$lock" ] || continue
  dir=$(dirname "$lock")
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done
if [ "${1:-}" != "--setup" ]; then
  exec .venv/bin/squall run scenarios --client all --json reports/index.json --html reports/html
fi
