#!/usr/bin/env bash
# README's first command: build DragonBall.bin, then install a demo cluster from it on a lab of
# local servers (bare Debian 12 containers running systemd, on an internal network: no way out),
# and print the portal's address.
#
#   sudo bash scripts/demo.sh              set up, build the .bin, lab of 3: s1 portal, s2 s3 join
#   sudo bash scripts/demo.sh --servers 5  a bigger lab
#   sudo bash scripts/demo.sh --down       remove the demo lab
#
# Runs as root with no input; idempotent (a previous demo lab is removed first).
# The example app on this machine alone, without the installer: scripts/demo-app.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

case ${1-} in
    --down) exec .venv/bin/python -m tests.lab.demo down ;;
    --help|-h) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
esac

bash scripts/setup.sh
.venv/bin/python build.py          # dist/DragonBall-<version>.bin (cached when unchanged)
.venv/bin/python build.py bare     # the lab's bare server image (cached)
exec .venv/bin/python -m tests.lab.demo up "$@"
