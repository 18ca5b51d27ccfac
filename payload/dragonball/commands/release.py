"""`dragonball release verify --key PUB`: check the signature inside the .bin it came from.

Exit status (README.md, "Exit statuses"): 0 signed and intact, 2 not run from a signed .bin
or an unusable key, 6 the signature or the sections do not match: do not install it."""

from __future__ import annotations

import argparse
import json
import os

from dragonball.console import console
from dragonball.errors import ExitStatus
from dragonball.release import signing
from dragonball.release.sections import BinError, bin_sections, open_section


def register(commands) -> None:
    release = commands.add_parser("release", help="the DragonBall.bin this runtime came from")
    sub = release.add_subparsers(dest="release_command", required=True)
    verify = sub.add_parser("verify", help="check the release's signature against a public key")
    verify.add_argument("--key", required=True, help="the release engineer's public key (PEM)")
    verify.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    path, sections = bin_sections(dict(os.environ))
    if "signature" not in sections:
        raise BinError(f"{path} is not signed",
                       "ask for a signed build (python build.py --sign-key KEY)")
    try:
        with open(args.key, "rb") as f:
            public = signing.load_public(f.read(), args.key)
    except OSError as e:
        raise signing.KeyInvalid(f"cannot read {args.key}: {e.strerror}",
                                 "give the path of the .pub file") from e
    with open(path, "rb") as f:
        manifest = open_section(f, sections["manifest"], verify=True).read()
        signature = open_section(f, sections["signature"], verify=True).read()
    signing.verify(public, signature, manifest, f"{path} (manifest)")
    listed = json.loads(manifest)["sections"]
    mismatch = [n for n, s in listed.items() if sections[n].sha256 != s["sha256"]]
    if mismatch:
        raise signing.SignatureError(f"the signed manifest does not describe sections "
                                     f"{', '.join(mismatch)}",
                                     "the release was altered: do not install it")
    console.print(f"[green]ok[/green] {path}: signed by {signing.fingerprint(public)}; "
                  "every section matches the signed manifest")
    return ExitStatus.OK
