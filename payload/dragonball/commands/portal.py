"""`dragonball portal serve` and `dragonball enroll`, on the portal server (as root).

    dragonball portal serve [--config FILE]
    dragonball portal standby [--config FILE] [--data-dir DIR]
    dragonball enroll [--ttl DURATION] [--json] [--config FILE] [--remote]

`enroll` writes a new one-time code into the local store (no HTTP call: it works while
the portal service is down) and prints it once, with the CA fingerprint and the exact
command to run on the new server. From a machine logged in to the portal (or with
`--remote`: commands/app_access.use_remote decides) the portal makes the code
(`POST /api/v1/codes`) and the same is printed. Exit status: 0 done, 1 failed, 2 wrong usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os


from dragonball.commands.app_access import transport_options, use_remote
from dragonball.console import console
from dragonball.errors import ExitStatus, InvalidInput
from dragonball.portal import settings as settings_mod
from dragonball.portal.enrollment import join_instructions, parse_duration, print_instructions
from dragonball.portal.portals import join_arguments
from dragonball.portal.statelog import open_store
from dragonball.portal.store import DEFAULT_CODE_TTL_S
from dragonball.portal_login import saved_login
from dragonball.shared import paths


def register(commands) -> None:
    """Add `portal serve` and `enroll` to the `dragonball` subcommands."""
    portal = commands.add_parser("portal", help="the portal service (on the portal server)")
    sub = portal.add_subparsers(dest="portal_command", required=True)
    serve = sub.add_parser("serve", help="run the portal's HTTPS API in the foreground",
                           description="Run the portal (what dragonball-portal.service runs).")
    _config_option(serve)
    serve.set_defaults(handler=serve_command)
    standby = sub.add_parser(
        "standby", help="wait until this server is a Swarm manager, then run its portal",
        description="What dragonball-portal.service runs on a device: every 10 s, once this "
                    "server is a Swarm manager without portal settings, fetch its manager "
                    "bundle from a portal, start its etcd member, then serve as "
                    "'portal serve' does (docs/portal.md, 'On every manager').")
    _config_option(standby)
    standby.add_argument("--data-dir", default=paths.DATA_DIR, metavar="DIR",
                         help=f"this server's data folder (default {paths.DATA_DIR})")
    standby.set_defaults(handler=standby_command)
    enroll = commands.add_parser(
        "enroll", help="make a one-time enrollment code for a new server (on the portal)",
        description="Make a one-time enrollment code and print the command that adds a new "
                    "server. Exit status: 0 done, 2 wrong usage (README.md, 'Exit statuses').")
    enroll.add_argument("--ttl", default="24h", metavar="DURATION",
                        help="how long the code stays valid: 30m, 24h, 7d (default 24h)")
    enroll.add_argument("--json", action="store_true", help="print one JSON document")
    transport_options(enroll)
    enroll.set_defaults(handler=enroll_command)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=settings_mod.CONFIG_FILE, metavar="FILE",
                        help=f"the portal's settings (default {settings_mod.CONFIG_FILE})")


def enroll_command(args: argparse.Namespace) -> int:
    try:
        ttl = parse_duration(args.ttl) if args.ttl else DEFAULT_CODE_TTL_S
    except ValueError as e:
        raise InvalidInput(f"--ttl: {e}", "e.g. --ttl 30m, 24h or 7d") from e
    info = _remote_code(args) if use_remote(args) else _local_code(args, ttl)
    if args.json:
        console.print_json(json.dumps(info))
    else:
        print_instructions(console, info, ttl)
    return ExitStatus.OK


def _remote_code(args: argparse.Namespace) -> dict:
    """A code the portal makes, through its API with the saved login."""
    with saved_login().client() as portal:
        return portal.new_code(args.ttl)


def _local_code(args: argparse.Namespace, ttl: float) -> dict:
    """A code written into the portal's own store, with the join instructions."""
    settings = settings_mod.load(args.config)
    fingerprint = settings_mod.ca_fingerprint(settings)
    store = open_store(settings)
    try:
        code, record = store.create_code(ttl, actor=f"cli ({_user()})")
    finally:
        store.close()
    return join_instructions(settings, code, record.expires, fingerprint,
                             join_arguments(settings))


def _user() -> str:
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def standby_command(args: argparse.Namespace) -> int:
    from dragonball.installer import standby  # the portal's serving stack: only here
    from dragonball.portal import runtime_watch
    runtime_watch.watch()     # a new runtime in place: systemd starts us again on it
    standby.run(args.config, args.data_dir)
    return ExitStatus.OK


def serve_command(args: argparse.Namespace) -> int:
    from dragonball.portal import runtime_watch
    from dragonball.portal.serve import serve  # uvicorn, fastapi: only when serving
    runtime_watch.watch()     # a new runtime in place: systemd starts us again on it
    serve(settings_mod.load(args.config))
    return ExitStatus.OK
