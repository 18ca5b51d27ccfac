"""`dragonball images list|push|where`: the image archive of a release, its way into a
registry, and which servers hold the applied apps' images.

    dragonball images list [--archive FILE] [--json]
    dragonball images where [--json] [--remote]
    dragonball images push [--archive FILE] [--only REF ...] [--workers N]
                           [--registry HOST:PORT --ca FILE --username U --password-file FILE]

On the portal, as root, `images push` needs no registry options: the portal's registry,
its CA and its push account come from the portal's settings (issue 15: shipping an app to
a running cluster is `dragonball images push --archive app.bin` there, then `apply`).

Without --archive both read the images section of the .bin they were started from
(the stub passes DRAGONBALL_BIN and DRAGONBALL_BIN_SECTIONS), in place.
Exit status (README.md, "Exit statuses"): 0 done; 1 the registry refused a request;
2 the command line or the archive is wrong (a missing or empty password file or CA file, an
unknown --only ref, no .bin or not an image archive); 5 no registry answers; 6 the registry
refuses the credentials.
"""

from __future__ import annotations

import argparse
import json

from rich.markup import escape
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                           TimeRemainingColumn, TransferSpeedColumn)
from rich.table import Table

from dragonball.commands.app_access import open_apps, transport_options
from dragonball.console import console
from dragonball.errors import DragonBallError, ExitStatus
from dragonball.registry.client import RegistryClient, RegistryInputInvalid
from dragonball.registry.plan import Action, image_to_push, select_images
from dragonball.registry.push import PushProgress, push_archive
from dragonball.release.archive import open_archive


def add_images_commands(commands) -> None:
    """Register `images list` and `images push` under the `dragonball` subcommands."""
    images = commands.add_parser("images", help="the images of a release: list, push to a registry")
    sub = images.add_subparsers(dest="images_command", required=True)
    listing = sub.add_parser("list", help="list the images in the archive")
    _archive_option(listing)
    listing.add_argument("--json", action="store_true", help="print the archive's index as JSON")
    listing.set_defaults(handler=images_list)
    push = sub.add_parser("push", help="push the archive's images to a registry, as they are")
    push.add_argument("--registry", metavar="HOST:PORT",
                      help="e.g. 10.0.0.5:5000 (default on the portal: its own registry)")
    push.add_argument("--ca", metavar="FILE", help="the CA that signed its certificate")
    push.add_argument("--username", metavar="USER")
    push.add_argument("--password-file", metavar="FILE",
                      help="a file holding the password (never given on the command line)")
    push.add_argument("--config", default=None, metavar="FILE", help=argparse.SUPPRESS)
    push.add_argument("--only", nargs="+", metavar="REF", help="push only these images")
    push.add_argument("--workers", type=int, default=4, help="parallel uploads (default 4)")
    _archive_option(push)
    push.set_defaults(handler=images_push)
    where = sub.add_parser("where", help="per server, which images of the applied apps it "
                                         "holds (a task starts only where its image is)")
    where.add_argument("--json", action="store_true", help="print one JSON document")
    where.add_argument("--timeout", type=float, default=300.0, help=argparse.SUPPRESS)
    transport_options(where)
    where.set_defaults(handler=images_where)


def images_where(args: argparse.Namespace) -> int:
    with open_apps(args) as apps:
        rows = apps.image_holdings()
    if args.json:
        console.print_json(json.dumps({"servers": rows}))
        return ExitStatus.OK
    table = Table(title="app images per server", title_justify="left")
    for column in ("server", "holds", "missing"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(escape(row["server"]), *holding_cells(row))
    console.print(table)
    return ExitStatus.OK


def holding_cells(row: dict) -> tuple[str, str]:
    """(holds, missing) of one server's row, marked up (pure)."""
    if row.get("error"):
        return "?", f"[yellow]{escape(row['error'])}[/yellow]"
    held, total = len(row.get("held", [])), row.get("total", 0)
    style = "green" if held == total else "yellow"
    return (f"[{style}]{held}/{total}[/{style}]",
            escape(", ".join(row.get("missing", []))) or "none")


def _archive_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", metavar="FILE",
                        help="an images.tar (default: the images section of this .bin)")


def images_list(args: argparse.Namespace) -> int:
    with open_archive(args.archive) as archive:
        if args.json:
            console.print_json(json.dumps({"images": [
                {"ref": i.ref, "repository": i.repository, "tag": i.tag, "manifest": i.manifest,
                 "config": i.config, "layers": i.layers, "size": i.size}
                for i in archive.images]}))
            return ExitStatus.OK
        table = Table(title=f"{len(archive.images)} image(s)", title_justify="left")
        for column, justify in (("image", "left"), ("layers", "right"), ("size", "right"),
                                ("image ID", "left")):
            table.add_column(column, justify=justify)
        for i in archive.images:
            table.add_row(escape(i.ref), str(len(i.layers)), _mb(i.size),
                          i.config["digest"].split(":")[1][:12])
        console.print(table)
        unique = sum(int(b["size"]) for b in _unique_blobs(archive.images).values())
        console.print(f"{_mb(unique)} of blobs stored once (layers shared between images count once)")
    return ExitStatus.OK


def _unique_blobs(images) -> dict:
    return {b["digest"]: b for i in images for b in (i.manifest, i.config, *i.layers)}


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def read_password(path: str) -> str:
    """The password in `path` (one line; the newline is not part of it)."""
    try:
        with open(path, encoding="utf-8") as f:
            password = f.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise RegistryInputInvalid(f"cannot read the password file {path}: {e}") from e
    if not password or "\n" in password:
        raise RegistryInputInvalid(f"{path} must hold the password on one line")
    return password


REGISTRY_OPTIONS = ("registry", "ca", "username", "password_file")


def push_target(args: argparse.Namespace) -> tuple[str, str, str, str]:
    """(registry, CA file, user, password): all four options, or none of them on a portal
    (its settings readable: root there), which gives its own registry and push account."""
    given = [o for o in REGISTRY_OPTIONS if getattr(args, o)]
    if given:
        missing = [o for o in REGISTRY_OPTIONS if not getattr(args, o)]
        if missing:
            raise RegistryInputInvalid(
                "give --registry, --ca, --username and --password-file together (missing: "
                + ", ".join("--" + m.replace("_", "-") for m in missing) + ")",
                "or none of them, as root on the portal: its own registry is used")
        return args.registry, args.ca, args.username, read_password(args.password_file)
    from dragonball.portal import settings as settings_mod
    config = args.config or settings_mod.CONFIG_FILE
    try:
        settings = settings_mod.load(config)
        username, password = settings_mod.read_registry_credentials(
            settings.registry_credentials)
    except DragonBallError as e:
        raise RegistryInputInvalid(
            f"no registry given, and this is not a portal (root) whose settings say which: "
            f"{e.message}", "on the portal, as root, no option is needed; elsewhere give "
            "--registry, --ca, --username and --password-file") from e
    return settings.registry, settings.ca_cert, username, password


def images_push(args: argparse.Namespace) -> int:
    registry, ca, username, password = push_target(args)
    with open_archive(args.archive) as archive:
        _, unknown = select_images([image_to_push(i) for i in archive.images], args.only)
        if unknown:  # before any connection
            raise RegistryInputInvalid(f"the archive holds no image {', '.join(unknown)}",
                                       "'dragonball images list' shows them")
        with RegistryClient(registry, ca, username, password) as client, \
                RichProgress() as progress:
            client.ping()
            result = push_archive(archive, client, args.only, args.workers, progress)
    print_push_summary(registry, result)
    return ExitStatus.OK


class RichProgress(PushProgress):
    """A bar of bytes uploaded, and a line per image once it can be pulled."""

    def __init__(self) -> None:
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                             transient=False)
        self._task = None

    def __enter__(self) -> "RichProgress":
        self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.stop()

    def planned(self, plan) -> None:
        mounts, skips = len(plan.steps(Action.MOUNT)), len(plan.steps(Action.SKIP))
        self._bar.console.print(f"{len(plan.steps(Action.UPLOAD))} blob(s) to upload "
                                f"({_mb(plan.upload_bytes)}), {mounts} to mount, "
                                f"{skips} already there")
        if plan.upload_bytes:
            self._task = self._bar.add_task("upload", total=plan.upload_bytes)

    def advanced(self, nbytes: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, nbytes)

    def manifest_done(self, step) -> None:
        self._bar.console.print(f"[green]✓[/green] {escape(step.ref)}")


def print_push_summary(registry: str, result) -> None:
    plan = result.plan
    if plan.nothing_to_do:
        console.print(f"every image was in {escape(registry)} already: nothing sent "
                      f"({result.seconds:.1f} s)")
        return
    console.print(f"pushed {len(plan.manifests_to_put)} image(s) to {escape(registry)} in "
                  f"{result.seconds:.1f} s: {_mb(plan.upload_bytes)} uploaded, "
                  f"{len(plan.steps(Action.MOUNT))} blob(s) mounted, "
                  f"{len(plan.steps(Action.SKIP))} already there")
