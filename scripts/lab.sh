#!/usr/bin/env bash
# The lab of local servers by hand (docs/lab.md). Run as root from anywhere:
#
#   sudo bash scripts/lab.sh up N [--internal] [--subnet CIDR] [--name LAB]
#   sudo bash scripts/lab.sh status | down | shell s1       [--name LAB]
#   sudo bash scripts/lab.sh bench 1 3 10 [--internal]      (times up and down)
#
# The default lab is "dblab": containers dblab-s1..sN, network dblab-net.
# Exit status: 0 done · 1 the lab failed (see the message) · 2 bad usage or setup missing
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON="$REPO/.venv/bin/python"

if [ "$(id -u)" -ne 0 ]; then
    echo "lab: error: run it as root (it starts containers and changes the host firewall)" >&2
    echo "  sudo bash scripts/lab.sh $*" >&2
    exit 2
fi
if [ ! -x "$PYTHON" ]; then
    echo "lab: error: $PYTHON is missing" >&2
    echo "  set up the machine first: sudo bash scripts/setup.sh" >&2
    exit 2
fi
# Debian's docker client first: some machines have an older one in /usr/local/bin.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
# From the repository root, so 'tests.lab' imports.
cd "$REPO"
exec "$PYTHON" -m tests.lab "$@"
