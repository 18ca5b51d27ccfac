"""The `dragonball` CLI from any machine that reaches the portal, through its REST API
(dragonball.portal_client; docs/portal.md, "The CLI from any machine").

    dragonball login --portal HOST[:PORT][,HOST...] --ca FILE [--user admin]
                     [--password-stdin]
    dragonball logout [--all]
    dragonball status | devices [--json]

Login keeps every manager's portal (GET /api/v1/portals, after the addresses given), and
each later call tries them in order (dragonball.portal_client): a command works while any
manager's portal answers. These always use the API. The app commands (commands/apps.py),
`plan --remote` (commands/spec.py) and `enroll` (commands/portal.py) take either path: on
the portal itself, or through the API with the login kept here (commands/app_access.py
decides, once).

Exit status (dragonball.errors; the one handler of dragonball.cli reports errors): 0 done,
1 failed, 2 invalid input, 5 the portal cannot be reached (or is not the CA's), 6 it refuses
the login, or there is none. The password is read from a terminal (getpass) or with
`--password-stdin`, never from the command line; only the token is kept, 0600.
"""

from __future__ import annotations

import argparse
import collections
import getpass
import json
import os
import sys

from rich.markup import escape
from rich.table import Table

from dragonball.console import console
from dragonball.errors import ClientError, ExitStatus
from dragonball.portal import settings as settings_mod
from dragonball.portal import versions
from dragonball.portal.store import ADMIN
from dragonball.portal_client import PortalAuthError, PortalClient, PortalInvalid
from dragonball.portal_login import (Login, load_login, login_path, portal_urls, save_login,
                                     saved_login)


def register(commands) -> None:
    """Add login, logout, status and devices."""
    login = commands.add_parser(
        "login", help="log in to a portal from this machine (keeps an API token, 0600)",
        description="Ask the admin password, get an API token from the portal and keep it "
                    f"in {login_path()} (0600) with the portal's URL and CA. "
                    "Exit status: 0 done, 2 invalid input, 5 cannot reach, 6 refused.")
    login.add_argument("--portal", required=True, metavar="HOST[:PORT][,HOST...]",
                       help="the portal's address (port 8443 unless given), or several "
                            "managers' separated by commas; the others are learnt from it")
    login.add_argument("--ca", required=True, metavar="FILE",
                       help="the cluster CA (/etc/dragonball/ca.crt on any server of it)")
    login.add_argument("--user", default="admin", help="the portal's admin (default admin)")
    login.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input (scripts)")
    _json_option(login)
    login.set_defaults(handler=login_command)
    logout = commands.add_parser("logout", help="end the API token and forget the login")
    logout.add_argument("--all", action="store_true",
                        help="end every token and browser session of this user, everywhere")
    _json_option(logout)
    logout.set_defaults(handler=logout_command)
    for name, what, handler in (("status", "the cluster at a glance: devices and services",
                                 status_command),
                                ("devices", "every server of the cluster", devices_command)):
        parser = commands.add_parser(name, help=what + " (through the portal's API)")
        _json_option(parser)
        parser.set_defaults(handler=handler)
    actions = parser.add_subparsers(dest="action", metavar="{remove}")
    remove = actions.add_parser(
        "remove", help="take a server out of the cluster for good",
        description="Drain the server (its tasks move), take it out of the Swarm, forget its "
                    "device token and rotate the Swarm's join tokens: it cannot call the "
                    "portal or rejoin without a new code. Refused, changing nothing, for a "
                    "server holding a slot's data (dragonball move it first) or a manager. "
                    "NAME: a hostname, a device ID, or a stranger's node ID. Exit status: 0 "
                    "removed, 2 invalid input, 3 no such server, 4 refused as it is now, 5 cannot "
                    "reach, 6 not logged in.")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--yes", action="store_true",
                        help="do not ask (scripts); without it a terminal is needed to confirm")
    _json_option(remove)
    remove.set_defaults(handler=remove_command)


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


#: The life of the token `dragonball status` (and every command through the API) makes for
#: itself when it runs as root on a portal with no login saved; ended when the command ends.
LOCAL_TOKEN_S = 600.0


def client(args) -> PortalClient:
    """The saved login's client; on a portal, as root, with none saved: a token of root's
    own (`local_client`), so the portal's operator needs no password there, as with apply."""
    try:
        return saved_login().client()
    except PortalAuthError:
        local = local_client(getattr(args, "config", None) or settings_mod.CONFIG_FILE)
        if local is None:
            raise
        return local


class LocalClient(PortalClient):
    """A PortalClient with a token made in the portal's own store (root reads its settings
    and its replicated state, as `apply` does there); the token ends with the client."""

    def __init__(self, store, secret: str, settings) -> None:
        super().__init__(settings.url, settings.ca_cert, token=secret)
        self.store, self.secret = store, secret

    def __exit__(self, *exc) -> None:
        try:
            super().__exit__(*exc)
            self.store.end_session(self.secret, LOCAL_CLIENT)
        finally:
            self.store.close()


LOCAL_CLIENT = "root on the portal"


def local_client(config: str) -> LocalClient | None:
    """The portal's own client when this is a portal (its settings readable) and we are
    root; None otherwise. The token is the admin's, made for LOCAL_TOKEN_S, in the audit
    log as made by 'root on the portal'."""
    if os.geteuid() != 0 or not os.access(config, os.R_OK):
        return None
    from dragonball.portal.statelog import open_store
    settings = settings_mod.load(config)
    store = open_store(settings)
    try:
        secret, _ = store.create_session(ADMIN, "token", LOCAL_TOKEN_S, LOCAL_TOKEN_S,
                                         LOCAL_CLIENT)
        return LocalClient(store, secret, settings)
    except BaseException:
        store.close()
        raise


def read_password(args, stdin=None, ask=None) -> str:
    """The password from stdin (--password-stdin) or a terminal; never from argv."""
    stdin, ask = stdin or sys.stdin, ask or getpass.getpass
    if args.password_stdin:
        password = stdin.readline().rstrip("\r\n")
    elif stdin.isatty():
        password = ask(f"password of {args.user} on the portal: ")
    else:
        raise PortalInvalid("no terminal to ask the password on",
                            "pipe it in with --password-stdin, e.g. from a file readable "
                            "only by you: dragonball login ... --password-stdin < FILE")
    if not password:
        raise PortalInvalid("the password is empty", "give the portal admin's password")
    return password


def login_command(args) -> int:
    given = portal_urls(args.portal)
    ca = os.path.abspath(args.ca)
    if not os.access(ca, os.R_OK):
        raise PortalInvalid(f"cannot read the CA file {ca}",
                            "copy /etc/dragonball/ca.crt from any server of the cluster")
    password = read_password(args)
    with PortalClient(given, ca, basic=(args.user, password)) as portal:
        answer = portal.create_token()
        url = portal.url
    portals, note = every_portal(url, given, ca, answer["token"])
    path = login_path()
    _end_previous(path)
    save_login(Login(url, ca, answer["token"], args.user, answer.get("expires_at", ""),
                     tuple(portals)), path)
    if args.json:
        console.print_json(json.dumps({"ok": True, "portal": url, "portals": portals, "ca": ca,
                                       "user": args.user, "expires_at": answer.get("expires_at"),
                                       "saved": str(path)} | ({"note": note} if note else {})))
    else:
        console.print(f"[green]logged in[/green] to {url} as {escape(args.user)} until "
                      f"{answer.get('expires_at', '?')} (token kept in {path}, 0600)")
        console.print(f"portals, tried in this order: {', '.join(portals)}")
        if note:
            console.print(f"note: {escape(note)}")
    return ExitStatus.OK


def every_portal(url: str, given: list[str], ca: str, token: str) -> tuple[list[str], str]:
    """The portals a login keeps: the one that answered, every manager's it lists, then the
    ones given; with a note when the list could not be had (an older portal)."""
    try:
        with PortalClient(url, ca, token=token) as portal:
            listed = portal.portals()
    except PortalAuthError:
        raise
    except ClientError as e:
        return list(dict.fromkeys([url, *given])), \
            f"the portal did not list the other managers ({e.message}): only {url} is kept " \
            "with the addresses given"
    return list(dict.fromkeys([url, *listed, *given])), ""


def _end_previous(path) -> None:
    """A login replaced ends its old token, if the portal can be told (best effort)."""
    try:
        old = load_login(path)
        if old is not None:
            with old.client(timeout=5) as portal:
                portal.end_token()
    except ClientError:
        pass


def logout_command(args) -> int:
    path = login_path()
    found = load_login(path)
    ended, why = False, "not logged in"
    if found is not None:
        try:
            with found.client() as portal:
                ended = bool(portal.end_all_tokens().get("ended") if args.all
                             else portal.end_token().get("ended"))
            why = ""
        except ClientError as e:
            why = f"the portal was not told ({e.message}); the token ends by itself " \
                  f"at {found.expires_at or 'its expiry'}"
        path.unlink(missing_ok=True)
    if args.json:
        console.print_json(json.dumps({"ok": True, "was_logged_in": found is not None,
                                       "token_ended": ended, "note": why}))
    else:
        console.print(f"logged out of {', '.join(found.urls())}" if found else "not logged in")
        if why and found:
            console.print(f"note: {escape(why)}")
    return ExitStatus.OK


def ask_yes(yes: bool, question: str, refusal: str, hint: str, stdin=None, ask=None) -> bool:
    """`yes` (--yes), or 'yes' typed on a terminal to `question`; PortalInvalid (exit 2)
    with `refusal` and `hint` when there is neither."""
    stdin, ask = stdin or sys.stdin, ask or input
    if yes:
        return True
    if not stdin.isatty():
        raise PortalInvalid(refusal, hint)
    return ask(question).strip() == "yes"


def confirm(args, stdin=None, ask=None) -> bool:
    """--yes, or a 'yes' typed on a terminal; PortalInvalid without either."""
    return ask_yes(args.yes, f"remove {args.name} from the cluster for good? type yes: ",
                   "no terminal to confirm the removal on",
                   f"add --yes: dragonball devices remove {args.name} --yes", stdin, ask)


def remove_command(args) -> int:
    if not confirm(args):
        console.print("nothing removed")
        return ExitStatus.OK
    with client(args) as portal:
        done = portal.remove_device(args.name)
    if args.json:
        console.print_json(json.dumps(done))
        return ExitStatus.OK
    removed = done["removed"]
    console.print(f"[green]removed[/green] {escape(str(removed['name']))} (node "
                  f"{removed.get('node_id') or 'none'}): "
                  + ("its tasks moved first" if done.get("drained") else
                     "its tasks did not all move in time; Swarm starts them elsewhere"))
    if not done.get("tokens_rotated"):
        console.print("[yellow]warning[/yellow]: the Swarm's join tokens were not rotated: "
                      "run 'docker swarm join-token --rotate worker' on a manager")
    if "demoted" in done:   # it was a manager (portal/demotion.py)
        promoted = done.get("promoted") or []
        console.print("it was a manager: demoted, its etcd member "
                      + ("removed" if done.get("etcd_member_removed") else "already gone")
                      + ("; promoted in its place: " + ", ".join(map(escape, promoted))
                         if promoted else "; no enrolled worker to promote in its place "
                         "(add a server: it is promoted when it joins)"))
        console.print(f"[yellow]warning[/yellow]: {escape(done.get('warning') or '')}")
    return ExitStatus.OK


def _print_strangers(strangers: list[dict]) -> None:
    for n in strangers:
        console.print(f"[red]stranger[/red]: node {escape(n['node_id'])} "
                      f"({escape(n.get('hostname') or '?')}, {n.get('address') or '?'}) is in "
                      "the Swarm but no device the portal enrolled: it is drained; remove "
                      f"it with 'dragonball devices remove {escape(n['node_id'])}'")


def devices_command(args) -> int:
    with client(args) as portal:
        listing = portal.device_list()
    devices, strangers = listing["devices"], listing.get("strangers") or []
    for d in devices:  # an older portal's list: its servers' versions are not known
        d.setdefault("version", None)
        d.setdefault("release", None)
    if args.json:
        console.print_json(json.dumps({"devices": devices, "strangers": strangers}))
        return ExitStatus.OK
    table = Table(title=f"{len(devices)} device(s)", title_justify="left")
    for column in ("id", "hostname", "address", "role", "state", "version", "release", "node",
                   "labels"):
        table.add_column(column, overflow="fold")
    for d in devices:
        labels = ", ".join(f"{k}={v}" for k, v in (d.get("labels") or {}).items())
        style = "green" if d.get("state") == "joined" else "yellow"
        table.add_row(str(d.get("id")), escape(str(d.get("hostname"))), str(d.get("address")),
                      str(d.get("role")), f"[{style}]{d.get('state')}[/{style}]",
                      *(escape(cell) for cell in versions.version_text(d)),
                      str(d.get("node_id") or ""), escape(labels))
    console.print(table)
    _print_strangers(strangers)
    return ExitStatus.OK


def status_command(args) -> int:
    """Devices by state, per app services by state, and certificates ending soon."""
    with client(args) as portal:
        listing = portal.device_list()
        devices, strangers = listing["devices"], listing.get("strangers") or []
        apps, note = {}, ""
        try:
            for app in portal.apps():
                apps[app] = portal.services(app)["services"]
        except PortalAuthError:
            raise
        except ClientError as e:  # an older portal, an engine that does not answer
            note = e.message
        certs = _certificates(portal)
    summary = status_summary(devices, apps) | {"certificates": certs,
                                               "strangers": strangers}
    if args.json:
        console.print_json(json.dumps(summary | ({"note": note} if note else {})))
        return ExitStatus.OK
    _print_certificates(certs)
    counts = ", ".join(f"{n} {s}" for s, n in summary["devices"]["by_state"].items())
    console.print(f"[bold]devices[/bold]: {summary['devices']['total']} ({counts or 'none'})")
    _print_strangers(strangers)
    for app, found in summary["apps"].items():
        states = ", ".join(f"{n} {s}" for s, n in found["by_state"].items())
        console.print(f"[bold]app {escape(app)}[/bold]: {found['total']} service(s) "
                      f"({states or 'none'})")
        for row in found["not_healthy"]:
            waits = (f": waits for {escape(row['waiting'])}, which is down (its data is there)"
                     if row.get("waiting") else "")
            console.print(f"  [yellow]{escape(row['service'])}[/yellow] {row['state']} "
                          f"{row['healthy']}/{row['desired']}{waits}")
    if not summary["apps"]:
        console.print(f"no app applied{f' ({escape(note)})' if note else ''}")
    return ExitStatus.OK


def _certificates(portal) -> dict:
    """The portal's certificate report; an older portal's absence of one, said."""
    try:
        return portal.certificates()
    except PortalAuthError:
        raise
    except ClientError as e:
        return {"certificates": [], "warnings": [], "note": e.message}


def _print_certificates(certs: dict) -> None:
    warnings = certs.get("warnings") or []
    if not warnings:
        console.print(f"[bold]certificates[/bold]: {len(certs.get('certificates') or [])} "
                      "watched, none ends within its warning time")
    for w in warnings:
        style = "red" if w["level"] == "error" else "yellow"
        console.print(f"[{style}]{w['level']}[/{style}] certificate {escape(w['subject'])}: "
                      f"{escape(w['text'])}\n  hint: {escape(w['hint'])}")
    if certs.get("note"):
        console.print(f"  note: {escape(certs['note'])}")


def status_summary(devices: list[dict], apps: dict) -> dict:
    """Pure: the counts `status` prints."""
    by_state = collections.Counter(d.get("state", "?") for d in devices)
    out = {"devices": {"total": len(devices), "by_state": dict(sorted(by_state.items()))},
           "apps": {}}
    for app, rows in apps.items():
        states = collections.Counter(r.get("state", "?") for r in rows)
        out["apps"][app] = {
            "total": len(rows), "by_state": dict(sorted(states.items())),
            "not_healthy": [{k: r.get(k) for k in ("service", "state", "healthy", "desired",
                                                   "waiting") if k != "waiting" or r.get(k)}
                            for r in rows if r.get("state") not in ("healthy", "stopped")]}
    return out
