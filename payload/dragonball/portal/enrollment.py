"""Adding a server to the cluster, the portal's side (pure): how long a code lives, and
everything a person needs to run on the new server (docs/enrollment.md)."""

from __future__ import annotations

import datetime
import re
import shlex

from rich.markup import escape

from dragonball.portal import settings as settings_mod

MIN_TTL_S, MAX_TTL_S = 60, 30 * 24 * 3600
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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


def join_instructions(settings: settings_mod.Settings, code: str, expires: float,
                      fingerprint: str, portals: list[str] | None = None) -> dict:
    """Everything a person needs to add a server (pure): the command and the answers.

    `portals`: every manager's portal, this one first (portal.portals.join_arguments); the
    new server tries them in order, so a join does not depend on one of them. None: this
    portal alone."""
    portal = ",".join(portals or [settings.portal_argument])
    # no --code: a command line is read by every user of the server while it runs (ps);
    # the installer asks the code (or takes --code-file FILE, or an answers file)
    argv = ["sudo", f"./{settings.bin_name}", "install", "--role", "device",
            "--portal", portal, "--ca-fingerprint", fingerprint]
    answers = {"role": "device", "portal": portal,
               "enrollment_code": code, "ca_fingerprint": fingerprint}
    return {"code": code, "expires": expires,
            "expires_at": datetime.datetime.fromtimestamp(
                expires, datetime.timezone.utc).isoformat(timespec="seconds"),
            "ca_fingerprint": fingerprint, "portal": portal,
            "portal_url": settings.url, "command": argv, "command_line": shlex.join(argv),
            "answers": answers}


def print_instructions(out, info: dict, ttl_s: float) -> None:
    expires = info["expires_at"].replace("T", " ").replace("+00:00", " UTC")
    out.print(f"Enrollment code: [bold]{info['code']}[/bold]  (one-time, valid "
              f"{_human(ttl_s)}, until {expires})")
    out.print(f"CA fingerprint:  {info['ca_fingerprint']}")
    out.print("On the new server, as root, in the folder holding the .bin (it asks the code):")
    out.print(f"  {escape(info['command_line'])}", soft_wrap=True)
    out.print("or put these answers in a file for 'install --answers FILE':")
    for key, value in info["answers"].items():
        out.print(f"  {key}: {value}")


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= max(size, 120 if unit == "m" else 2 * size) and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"
