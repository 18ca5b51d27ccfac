#!/usr/bin/env bash
# After README's first command: build the next release (0.2.0: a changed api module and a new
# parameter) and upgrade the demo cluster to it with `DragonBall-0.2.0.bin upgrade --yes` on s1.
#
#   sudo bash scripts/demo-upgrade.sh              upgrade the demo lab to 0.2.0
#   sudo bash scripts/demo-upgrade.sh --dry-run    the checks and the plan only
#   sudo bash scripts/demo-upgrade.sh --version 0.4.0
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m tests.lab.demo_upgrade "$@"
