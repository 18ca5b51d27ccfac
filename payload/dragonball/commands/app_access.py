"""How the app commands reach the application layer: one interface, `Apps`, and two
transports, chosen once per command by `open_apps`.

    with open_apps(args) as apps:      # LocalApps on the portal, RemoteApps elsewhere
        rows = apps.services("notes")

`LocalApps` (commands/apps_local.py) works on the portal's own engine, store, agents and
registry (as root, and while the portal service is down); `RemoteApps`
(commands/apps_remote.py) goes through the portal's REST API with the login that
`dragonball login` saved. Both answer with the API's JSON documents (the contract:
portal/apps_api.py, whose answers orchestrator/answers.py shapes for both) and raise
DragonBallErrors of the same category for the same failure, so a command written once
against `Apps` (commands/apps.py) prints the same, and ends with the same exit status, on
either path.

Which one (`use_remote`): `--remote`; else `plan` stays local (a pure check of the spec);
else an explicit `--config FILE`, or portal settings readable here, mean local; else remote
when a login exists, local otherwise (which then says what is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from typing import Callable, Protocol

from dragonball.commands import apps_local, apps_remote
from dragonball.portal import settings as settings_mod
from dragonball.portal_login import login_path

#: A job's progress event: {"service", "state", "detail", "t"} (seconds since it began).
OnEvent = Callable[[dict], None]


class Apps(Protocol):
    """The operations of the app commands; each answers what the REST API answers."""

    def apps(self) -> list[str]:
        """The names of the apps applied."""

    def services(self, app: str) -> list[dict]:
        """A status row per service, leaves first: {service, kind, image, needs, deployed,
        desired, healthy, state, tasks: [{slot, server, state}]}."""

    def notifications(self, app: str, limit: int) -> list[dict]:
        """The latest notifications, newest first: {seq, to, payload, created, delivered,
        attempts, last_error}."""

    def params(self, app: str, service: str) -> dict:
        """{app, service, revision, parameters: {key: {value, default, type, secret, set}}},
        secrets masked."""

    def set_params(self, app: str, service: str, values: dict, unset: list,
                   spec: tuple[str, str] | None = None) -> dict:
        """Set typed values, unset keys (ParamsInvalid: nothing stored); deliver them to
        every task: {ok, tasks: [{service, task, server, ok, detail, refused}], restored}.
        `spec` ((text, file)): an app not applied yet, checked against it and kept."""

    def remove(self, app: str, purge_data: str | None, on_event) -> dict:
        """Take the app away: services, network, parameter folders, labels, its record; its
        volumes only when `purge_data` is the app's name typed again (PurgeRefused for
        another; None keeps them): {app, services, network, params, volumes, kept,
        purge_data, problems}, each volume {server, name}."""

    def logs(self, app: str, service: str, tail: int) -> list[dict]:
        """The last `tail` lines of each running task: [{task, server, lines, error?}]."""

    def plan(self, text: str, file: str) -> dict:
        """What applying the spec text would do against the cluster: Plan.to_dict."""

    def apply(self, text: str, file: str, on_event: OnEvent) -> dict:
        """Apply the spec text, its events given as they come: {app, plan, applied}."""

    def act(self, action: str, app: str, service: str, on_event: OnEvent) -> dict:
        """start|stop|restart `service` with its subtree, its events given as they come:
        {app, service, <action>: [names], notes?}."""

    def move(self, app: str, slot: str, server: str, on_event: OnEvent,
             data_lost: bool = False) -> dict:
        """Move a slot's data (`store.2`) to `server`, its events given as they come:
        {app, slot, from, to, volumes: [{name, size, sha256, seconds}], kept, data_lost}
        (`data_lost`: its server is gone for good; it starts empty on `server`)."""

    def volumes(self) -> list[dict]:
        """Every application volume: [{server, name, app, size, in_use, owner, why}]."""

    def image_holdings(self) -> list[dict]:
        """Per server, the applied apps' images it holds and lacks: [{server, address,
        ready, total, held, missing, error}]."""

    def remove_volume(self, server: str, name: str) -> dict:
        """Remove an app volume no slot owns (with the ended tasks' containers holding
        it): {name, removed}."""

    def close(self) -> None:
        """Let go of what was opened (the store, the HTTP session)."""


def transport_options(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` and `--remote`, on every command that has both transports."""
    parser.add_argument("--config", default=settings_mod.CONFIG_FILE, metavar="FILE",
                        help="the portal's settings, to work on the portal itself "
                             f"(default {settings_mod.CONFIG_FILE})")
    parser.add_argument("--remote", action="store_true",
                        help="through the portal's API with the saved login (dragonball "
                             "login); the default when logged in and no portal settings "
                             "are here")


def use_remote(args, environ=os.environ) -> bool:
    """The one rule: --remote; --config FILE or readable settings local; else remote when
    a login exists."""
    if getattr(args, "remote", False):
        return True
    config = getattr(args, "config", None) or settings_mod.CONFIG_FILE
    if config != settings_mod.CONFIG_FILE or os.access(config, os.R_OK):
        return False
    return login_path(environ).exists()


def reaches_a_cluster(args, environ=os.environ) -> bool:
    """Whether a portal is at hand: --remote, the portal's settings readable here (root on
    the portal), or a login saved."""
    config = getattr(args, "config", None) or settings_mod.CONFIG_FILE
    return bool(getattr(args, "remote", False)) or os.access(config, os.R_OK) or \
        login_path(environ).exists()


@contextlib.contextmanager
def open_apps(args) -> Iterator[Apps]:
    """The implementation `use_remote` chooses, closed at the end."""
    apps = apps_remote.open_remote(args) if use_remote(args) else apps_local.open_local(args)
    try:
        yield apps
    finally:
        apps.close()
