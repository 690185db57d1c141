#!/usr/bin/env bash
# Sets squall up in ./.venv from this repository's own files, then runs the main job.
#   bash ci/bootstrap.sh            set up, then run every conformance scenario against the
#                                   reference client and the embedded simulator (reports in reports/)
#   bash ci/bootstrap.sh --setup    set up only
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
if [ "${1:-}" != "--setup" ]; then
  exec .venv/bin/squall run scenarios --json reports/index.json --html reports/html
fi
