"""Certificates and a server's way back (docs/certificates.md).

    dragonball certs renew [--portal] [--registry] [--agents] [--force] [--json]
        on the portal, as root: DragonBall's own certificates issued again from their CA
        and picked up without an outage (installer/renew.py); by default only those ending
        within 30 days; none of --portal/--registry/--agents: all three
    dragonball certs issue NAME --dns D... --ip I... [--days N] [--out DIR] [--json]
        on the portal, as root: a server certificate for an app's Service signed by the
        cluster CA (clients that trust the cluster CA trust it), written as DIR/NAME.crt and
        DIR/NAME.key (0600); then: params set SERVICE tls_cert=@NAME.crt tls_key=@NAME.key
    dragonball rejoin SERVER [--ttl 24h] [--force] [--json]
        on the portal, as root: SERVER's old Swarm node removed, a new one-time code bound
        to it, and the command to run there (portal/rejoin.py)
    DragonBall-<version>.bin rejoin --portal ADDR --code CODE --ca-fingerprint F [--address IP]
        on that server, as root: it joins again as the same device (installer/rejoin.py)

Exit status (dragonball.errors): 0 done, 1 failed, 2 invalid input, 3 no such server,
4 the server need not rejoin (Ready; --force), 5 the portal or the engine does not answer.
"""

from __future__ import annotations

import argparse
import json
import logging

from rich.markup import escape

from dragonball.console import console
from dragonball.errors import ExitStatus, InvalidInput
from dragonball.portal import settings as settings_mod
from dragonball.portal.enrollment import parse_duration
from dragonball.portal.store import DEFAULT_CODE_TTL_S

log = logging.getLogger(__name__)


def register(commands) -> None:
    """Add `certs renew` and `rejoin`."""
    certs = commands.add_parser("certs", help="DragonBall's certificates (on the portal)")
    sub = certs.add_subparsers(dest="certs_command", required=True)
    renew = sub.add_parser("renew", help="issue certificates again from the CA, no outage",
                           description=__doc__.split("\n\n")[1])
    for target in ("portal", "registry", "agents"):
        renew.add_argument(f"--{target}", action="store_true", help=f"renew the {target}'s")
    renew.add_argument("--force", action="store_true",
                       help="renew even what does not end within 30 days")
    renew.add_argument("--json", action="store_true", help="print one JSON document")
    renew.set_defaults(handler=renew_command)
    issue = sub.add_parser("issue", help="a certificate for an app's Service, from the cluster CA",
                           description=__doc__.split("\n\n")[1])
    issue.add_argument("name", help="its name, e.g. the Service: web")
    issue.add_argument("--dns", action="append", default=[], metavar="NAME",
                       help="a DNS name clients use (repeat)")
    issue.add_argument("--ip", action="append", default=[], metavar="IP",
                       help="an address clients use (repeat), e.g. the app's moving address")
    issue.add_argument("--days", type=int, default=825, help="validity (default 825, at most)")
    issue.add_argument("--out", default=".", metavar="DIR", help="where to write (default .)")
    issue.add_argument("--json", action="store_true", help="print one JSON document")
    issue.set_defaults(handler=issue_command)
    rejoin = commands.add_parser(
        "rejoin", help="bring back a server whose Swarm certificate expired (both sides)",
        description="On the portal: 'rejoin SERVER' prints the command to run on SERVER. On "
                    "that server: 'rejoin --portal ADDR --code CODE --ca-fingerprint F'.")
    rejoin.add_argument("server", nargs="?", help="(on the portal) the server's name or id")
    rejoin.add_argument("--ttl", help="(on the portal) the code's lifetime (default 24h)")
    rejoin.add_argument("--force", action="store_true",
                        help="(on the portal) even a server that is Ready")
    rejoin.add_argument("--portal", metavar="HOST[:PORT]", help="(on the server) the portal")
    rejoin.add_argument("--code", help="(on the server) the code 'rejoin SERVER' printed")
    rejoin.add_argument("--ca-fingerprint", metavar="SHA256:...", help="(on the server)")
    rejoin.add_argument("--address", metavar="IP", help="(on the server) its cluster address")
    rejoin.add_argument("--config", default=settings_mod.CONFIG_FILE, metavar="FILE",
                        help=argparse.SUPPRESS)
    rejoin.add_argument("--json", action="store_true", help="print one JSON document")
    rejoin.set_defaults(handler=rejoin_command)


def renew_command(args) -> int:
    from dragonball.installer.host import Host
    from dragonball.installer.renew import TARGETS, renew
    targets = [t for t in TARGETS if getattr(args, t)] or list(TARGETS)
    done = renew(Host(), targets, force=args.force,
                 progress=None if args.json else lambda text: console.print(escape(text)))
    if args.json:
        console.print_json(json.dumps({"ok": True, "certificates": done}))
    else:
        for target, state in done.items():
            style = "green" if state == "renewed" else "dim"
            console.print(f"[{style}]{target}: {state}[/{style}]")
    return ExitStatus.OK


def issue_command(args) -> int:
    import pathlib

    from dragonball import pki
    from dragonball.installer.host import Host
    from dragonball.installer.portal import layout
    from dragonball.installer.renew import issue_for_app
    pair = issue_for_app(Host(), args.name, args.dns, args.ip, args.days)
    out = pathlib.Path(args.out)
    cert, key = out / f"{args.name}.crt", out / f"{args.name}.key"
    pki.write_pem_files(pair, cert, key)
    done = {"ok": True, "certificate": str(cert), "key": str(key), "ca": layout.CA_CERT,
            "not_after": pki.not_after(pair.cert_pem).isoformat(),
            "names": [*args.dns, *args.ip]}
    if args.json:
        console.print_json(json.dumps(done))
        return ExitStatus.OK
    console.print(f"[green]issued[/green] {escape(str(cert))} and {escape(str(key))} (0600), "
                  f"valid until {done['not_after'][:10]}, for {escape(', '.join(done['names']))}")
    console.print(f"put it in force: dragonball params set SERVICE "
                  f"tls_cert=@{escape(str(cert))} tls_key=@{escape(str(key))}\n"
                  f"clients trust it with the cluster CA: {layout.CA_CERT}")
    return ExitStatus.OK


def rejoin_command(args) -> int:
    if args.code or args.portal or args.ca_fingerprint:
        return _rejoin_here(args)
    if not args.server:
        raise InvalidInput("rejoin needs SERVER (on the portal) or --portal, --code and "
                           "--ca-fingerprint (on the server)", "docs/certificates.md")
    return _rejoin_on_portal(args)


def _rejoin_on_portal(args) -> int:
    from dragonball.portal.rejoin import rejoin
    from dragonball.portal.statelog import open_store
    from dragonball.swarm import Swarm
    try:
        ttl = parse_duration(args.ttl) if args.ttl else DEFAULT_CODE_TTL_S
    except ValueError as e:
        raise InvalidInput(f"--ttl: {e}", "e.g. --ttl 30m, 24h or 7d") from e
    settings = settings_mod.load(args.config)
    fingerprint = settings_mod.ca_fingerprint(settings)
    store = open_store(settings)
    try:
        info = rejoin(store, Swarm(settings.docker_socket), settings, args.server, ttl,
                      fingerprint, force=args.force, actor="cli")
    finally:
        store.close()
    if args.json:
        console.print_json(json.dumps(info))
        return ExitStatus.OK
    removed = f"its old node {info['removed_node']} removed from the Swarm; " \
        if info["removed_node"] else ""
    console.print(f"{escape(info['server'])}: {removed}one-time code [bold]{info['code']}"
                  f"[/bold] until {info['expires_at']}")
    console.print(f"On {escape(info['server'])}, as root, in the folder holding the .bin:")
    console.print(f"  {escape(info['command_line'])}", soft_wrap=True)
    return ExitStatus.OK


def _rejoin_here(args) -> int:
    from dragonball.installer.rejoin import rejoin
    missing = [f"--{n.replace('_', '-')}" for n in ("portal", "code", "ca_fingerprint")
               if not getattr(args, n)]
    if missing:
        raise InvalidInput(f"rejoin on a server needs {', '.join(missing)}",
                           "run 'dragonball rejoin SERVER' on the portal: it prints them all")
    done = rejoin(args.portal, args.code, args.ca_fingerprint, args.address,
                  progress=None if args.json else _Progress())
    if args.json:
        console.print_json(json.dumps({"ok": True} | done))
    else:
        console.print(f"[green]{escape(done['hostname'])} joined the cluster again[/green] "
                      f"as node {done['node_id']}")
    return ExitStatus.OK


class _Progress:
    def update(self, text: str) -> None:
        console.print(f"… {escape(text)}")

    def warn(self, text: str) -> None:
        console.print(f"[yellow]{escape(text)}[/yellow]")
