#!/usr/bin/env bash
# Run every test tier (unit, integration, e2e) on this machine, as root.
# Sets up what the tests need first (scripts/setup.sh: packages, .venv, a Docker engine).
# Extra arguments go to pytest, e.g.: sudo bash scripts/test.sh -m unit -x
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "== building the base image (cached when unchanged)"
.venv/bin/python build.py base
echo "== checking the layers (import-linter contracts in pyproject.toml)"
.venv/bin/lint-imports
echo "== running the tests"
status=0
.venv/bin/python -m pytest -p no:cacheprovider "$@" tests || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no test: check the arguments or the tests/ folder" >&2
fi
exit "$status"
