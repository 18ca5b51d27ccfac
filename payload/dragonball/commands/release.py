"""`dragonball release verify --key PUB`: check the signature inside the .bin it came from.
`dragonball release add FILE.app [--apply]`: an app-only release onto this cluster.

verify's exit status (README.md, "Exit statuses"): 0 signed and intact, 2 not run from a
signed .bin or an unusable key, 6 the signature or the sections do not match: do not install.

`release add` (issue 15), on a manager as root: the .app checked whole first (release/
app_file.py: its members' SHA-256s, its spec against its images), nothing sent before; its
images pushed to the portal's registry with the portal's own push account (found, not
typed: `images push`'s defaults), the layers it left out mounted from where the earlier
release put them (refused, naming them, when the registry has them nowhere); its spec kept
in /var/lib/dragonball/releases/<name>/<version>/app.yaml; with --apply, applied."""

from __future__ import annotations

import argparse
import json
import os

from dragonball.console import console
from dragonball.errors import ExitStatus
from dragonball.release import signing


def register(commands) -> None:
    release = commands.add_parser("release", help="the DragonBall.bin this runtime came from")
    sub = release.add_subparsers(dest="release_command", required=True)
    verify = sub.add_parser("verify", help="check the release's signature against a public key")
    verify.add_argument("--key", required=True, help="the release engineer's public key (PEM)")
    verify.set_defaults(handler=_verify)
    add = sub.add_parser("add", help="add an app-only release (.app) to this cluster: its "
                                     "images to the registry, its spec kept (on a manager)")
    add.add_argument("file", metavar="FILE.app", help="the .app that build.py app wrote")
    add.add_argument("--apply", action="store_true",
                     help="then apply its app spec (dragonball apply)")
    add.add_argument("--workers", type=int, default=4, help="parallel uploads (default 4)")
    for hidden in ("--registry", "--ca", "--username", "--password-file", "--config"):
        add.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    add.set_defaults(handler=_add)
    show = sub.add_parser("show", help="the installed release, the previous one and the last "
                                       "upgrade's state (on any server)")
    show.add_argument("--json", action="store_true", help="a JSON document")
    show.set_defaults(handler=_show)


def _verify(args: argparse.Namespace) -> int:
    public, path = signing.verify_bin(dict(os.environ), args.key)
    console.print(f"[green]ok[/green] {path}: signed by {signing.fingerprint(public)}; "
                  "every section matches the signed manifest")
    return ExitStatus.OK


def _show(args: argparse.Namespace) -> int:
    from dragonball.release import installed
    from dragonball.upgrade.state import UpgradeState
    document = {"current": installed.read(), "previous": installed.read(installed.PREVIOUS),
                "upgrade": UpgradeState().summary()}
    for key in ("current", "previous"):
        if document[key]:
            document[key] = {k: v for k, v in document[key].items() if k != "manifest"}
    if args.json:
        console.print_json(json.dumps(document))
        return ExitStatus.OK
    for key in ("current", "previous"):
        found = document[key]
        console.print(f"{key}: " + (f"{found['name']} {found['version']} (DragonBall "
                                    f"{found.get('runtime_version')})" if found else "none"))
    upgrade = document["upgrade"]
    if upgrade:
        target = upgrade.get("to") or {}
        console.print(f"last upgrade: to {target.get('name')} {target.get('version')}: "
                      f"{upgrade['state']} (phase {upgrade.get('phase')})"
                      + (f": {upgrade['error']}" if upgrade.get("error") else ""))
        if upgrade.get("backup"):
            console.print(f"its backup: {upgrade['backup']} (the portal's store and "
                          f"{upgrade.get('snapshots') or 0} volume snapshot(s); "
                          "docs/upgrade.md, \"The backup\")")
    return ExitStatus.OK


def _add(args: argparse.Namespace) -> int:
    from dragonball.app import spec as spec_mod
    from dragonball.commands.images import RichProgress, print_push_summary, push_target
    from dragonball.registry.client import RegistryClient
    from dragonball.registry.push import push_archive
    from dragonball.release.app_file import open_app
    with open_app(args.file) as app:   # the whole file checked before anything else
        spec = spec_mod.load(app.spec_text, f"{args.file} (app.yaml)")
        registry, ca, username, password = push_target(args)
        console.print(f"{app.label}: app {spec.app}, {len(app.archive.images)} image(s), "
                      f"{len(app.about.get('left_out') or {})} layer(s) from the cluster")
        with RegistryClient(registry, ca, username, password) as client, \
                RichProgress() as progress:
            client.ping()
            result = push_archive(app.archive, client, None, args.workers, progress,
                                  elsewhere=app.about.get("left_out") or {})
        print_push_summary(registry, result)
        kept = _keep_spec(app)
    console.print(f"the app spec is kept as {kept}")
    if not args.apply:
        console.print(f"apply it with: dragonball apply {kept}")
        return ExitStatus.OK
    return _apply(kept)


def _apply(spec_path: str) -> int:
    """`dragonball apply SPEC` as the apps commands parse it (the same options, defaults)."""
    from dragonball.commands import apps as apps_commands
    parser = argparse.ArgumentParser(prog="dragonball")
    apps_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["apply", spec_path])
    return args.handler(args)


def _keep_spec(app) -> str:
    """releases/<name>/<version>/app.yaml (release/installed.py), and app.json beside it."""
    from dragonball.release import installed
    kept = installed.keep_app_spec(app.about["name"], app.about["version"], app.spec_text)
    installed.keep_file(os.path.join(os.path.dirname(kept), "app.json"),
                        json.dumps(app.about, indent=1).encode())
    return kept
