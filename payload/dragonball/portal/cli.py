"""`dragonball portal serve` and `dragonball enroll`, on the portal server (as root).

    dragonball portal serve [--config FILE]
    dragonball enroll [--ttl DURATION] [--json] [--config FILE]

`enroll` writes a new one-time code into the local store (no HTTP call: it works while
the portal service is down) and prints it once, with the CA fingerprint and the exact
command to run on the new server. Exit status (README.md, "Exit statuses"): 0 done, 2 wrong
usage or no portal settings here, 5 the portal's database does not answer.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import json
import os
import re
import shlex

from rich.markup import escape

from dragonball import pki
from dragonball.console import console
from dragonball.errors import ExitStatus
from dragonball.portal import settings as settings_mod
from dragonball.portal.errors import RequestInvalid
from dragonball.portal.store import DEFAULT_CODE_TTL_S, Store
MIN_TTL_S, MAX_TTL_S = 60, 30 * 24 * 3600
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(commands) -> None:
    """Add `portal serve` and `enroll` to the `dragonball` subcommands."""
    portal = commands.add_parser("portal", help="the portal service (on the portal server)")
    sub = portal.add_subparsers(dest="portal_command", required=True)
    serve = sub.add_parser("serve", help="run the portal's HTTPS API in the foreground",
                           description="Run the portal (what dragonball-portal.service runs).")
    _config_option(serve)
    serve.set_defaults(handler=serve_command)
    enroll = commands.add_parser(
        "enroll", help="make a one-time enrollment code for a new server (on the portal)",
        description="Make a one-time enrollment code and print the command that adds a new "
                    "server. Exit status: 0 done, 2 wrong usage (README.md, 'Exit statuses').")
    enroll.add_argument("--ttl", default="24h", metavar="DURATION",
                        help="how long the code stays valid: 30m, 24h, 7d (default 24h)")
    enroll.add_argument("--json", action="store_true", help="print one JSON document")
    _config_option(enroll)
    enroll.set_defaults(handler=enroll_command)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=settings_mod.CONFIG_FILE, metavar="FILE",
                        help=f"the portal's settings (default {settings_mod.CONFIG_FILE})")


def parse_duration(text: str) -> int:
    """Seconds of ``90s``, ``30m``, ``24h``, ``7d`` or a bare number of seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration: give a number and a unit, like 30m, "
                         "24h or 7d")
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not MIN_TTL_S <= seconds <= MAX_TTL_S:
        raise ValueError(f"{text} is out of range: a code lives from 1 minute to 30 days")
    return seconds


def display_fingerprint(ca_pem: bytes) -> str:
    """``SHA256:<hex>``: what a joining server is given and compares (docs/enrollment.md)."""
    return "SHA256:" + pki.fingerprint(ca_pem)


def join_instructions(settings: settings_mod.Settings, code: str, expires: float,
                      fingerprint: str) -> dict:
    """Everything a person needs to add a server (pure): the command and the answers."""
    argv = ["sudo", f"./{settings.bin_name}", "install", "--role", "device",
            "--portal", settings.portal_argument, "--code", code,
            "--ca-fingerprint", fingerprint]
    answers = {"role": "device", "portal": settings.portal_argument,
               "enrollment_code": code, "ca_fingerprint": fingerprint}
    return {"code": code, "expires": expires,
            "expires_at": datetime.datetime.fromtimestamp(
                expires, datetime.timezone.utc).isoformat(timespec="seconds"),
            "ca_fingerprint": fingerprint, "portal": settings.portal_argument,
            "portal_url": settings.url, "command": argv, "command_line": shlex.join(argv),
            "answers": answers}


def print_instructions(out, info: dict, ttl_s: float) -> None:
    expires = info["expires_at"].replace("T", " ").replace("+00:00", " UTC")
    out.print(f"Enrollment code: [bold]{info['code']}[/bold]  (one-time, valid "
              f"{_human(ttl_s)}, until {expires})")
    out.print(f"CA fingerprint:  {info['ca_fingerprint']}")
    out.print("On the new server, as root, in the folder holding the .bin:")
    out.print(f"  {escape(info['command_line'])}", soft_wrap=True)
    out.print("or put these answers in a file for 'install --answers FILE':")
    for key, value in info["answers"].items():
        out.print(f"  {key}: {value}")


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= max(size, 120 if unit == "m" else 2 * size) and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def enroll_command(args: argparse.Namespace) -> int:
    try:
        ttl = parse_duration(args.ttl) if args.ttl else DEFAULT_CODE_TTL_S
    except ValueError as e:
        raise RequestInvalid(f"--ttl: {e}") from e
    settings = settings_mod.load(args.config)
    try:
        with open(settings.ca_cert, "rb") as f:
            fingerprint = display_fingerprint(f.read())
    except OSError as e:
        raise settings_mod.SettingsError(f"cannot read the cluster CA {settings.ca_cert}: "
                                         f"{e.strerror}", "run this as root on the portal") from e
    store = Store.open(settings.db_path)
    try:
        code, record = store.create_code(ttl, actor=f"cli ({_user()})")
    finally:
        store.close()
    info = join_instructions(settings, code, record.expires, fingerprint)
    if args.json:
        console.print_json(json.dumps(info))
    else:
        print_instructions(console, info, ttl)
    return ExitStatus.OK


def _user() -> str:
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def serve_command(args: argparse.Namespace) -> int:
    from dragonball.portal.serve import serve  # uvicorn, fastapi: only when serving
    serve(settings_mod.load(args.config))
    return ExitStatus.OK
