"""README's upgrade after the demo: build the next release and upgrade the demo cluster to it.

    python -m tests.lab.demo_upgrade [--version 0.2.0] [--dry-run]

Builds the variant release `--version` of the default one (tests/releases.py: 0.2.0 changes
the api module and adds its parameter `motd`), copies its .bin to the demo lab's portal (s1)
and runs `DragonBall-<version>.bin upgrade --yes` there, its output shown as it goes; then
`dragonball release show`. The demo lab must be up (`sudo bash scripts/demo.sh`).
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

from tests.lab.demo import NAME, say
from tests.lab.errors import LabError
from tests.lab.install import TARGET
from tests.lab.lab import Lab

WORK = pathlib.Path("/var/lib/dragonball-demo/releases")


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.demo_upgrade",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="0.2.0", help="the variant (tests/releases.py)")
    parser.add_argument("--dry-run", action="store_true", help="checks and the plan only")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/: support
    from tests.releases import VARIANTS, build_variant
    if args.version not in VARIANTS:
        raise LabError(f"no variant {args.version}", f"one of {', '.join(VARIANTS)}")
    try:
        lab = Lab.attach(NAME)
    except LabError as e:
        raise LabError(f"no demo lab: {e.message}", "bring it up: sudo bash scripts/demo.sh")
    say(f"building release {args.version} (tests/releases.py; cached parts are quick)")
    WORK.mkdir(parents=True, exist_ok=True)
    bin_path, _ = build_variant(WORK, args.version)
    say(f"copying {bin_path.name} to s1")
    remote = lab.copy_in("s1", bin_path, TARGET)
    command = [remote, "--target", TARGET, "upgrade", "--yes"] + (["--dry-run"]
                                                                   if args.dry_run else [])
    say("on s1: " + " ".join(command))
    status = subprocess.run(lab.exec_argv("s1", command)).returncode
    subprocess.run(lab.exec_argv("s1", ["dragonball", "release", "show"]))
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LabError as e:
        print(f"error: {e.message}\nhint: {e.hint}", file=sys.stderr)
        sys.exit(2)
