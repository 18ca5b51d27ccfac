"""The app operations on the portal itself, as root (the `Apps` interface of
commands/app_access.py): a `Control` over the portal's engine, store, agents and registry
(portal.wiring), every answer shaped as the REST API shapes it (orchestrator.answers), every
error the Control's own. Works while the portal service is down. A command that changes an
app holds the app's lock (shared.app_lock) as the portal's jobs do: while one of them, or
another such command, changes the app, it is refused at once (exit 4)."""

from __future__ import annotations

import contextlib
import time
from typing import Callable

from dragonball.orchestrator import answers, removing
from dragonball.orchestrator.control import Control
from dragonball.portal import settings as settings_mod
from dragonball.portal import wiring
from dragonball.portal.statelog import open_store
from dragonball.shared import app_lock


def open_local(args) -> LocalApps:
    """LocalApps over the portal's settings (`--config`), waiting `--timeout` seconds for a
    service to be healthy."""
    settings = settings_mod.load(args.config or settings_mod.CONFIG_FILE)
    store = open_store(settings)
    try:
        control = wiring.control(settings, store=store, wait_s=getattr(args, "timeout", 300.0))
    except BaseException:
        store.close()
        raise
    return LocalApps(control, close=store.close)


class LocalApps:
    """`Apps` over one Control. An operation's progress reaches `on_event` as the API's
    job events would: {service, state, detail, t} with t the seconds since it began."""

    def __init__(self, control: Control, close: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic,
                 lock_dir: str | None = app_lock.LOCK_DIR) -> None:
        """`lock_dir`: where the apps' locks are (None: none taken, for tests)."""
        self.control, self._close, self.clock = control, close, clock
        self.lock_dir = lock_dir

    def _locked(self, app: str, what: str):
        if self.lock_dir is None:
            return contextlib.nullcontext()
        return app_lock.app_lock(app, f"'dragonball {what}' on the portal", self.lock_dir)

    def close(self) -> None:
        self._close()

    def apps(self) -> list[str]:
        return self.control.store.apps()

    def services(self, app: str) -> list[dict]:
        return self.control.status(app)

    def notifications(self, app: str, limit: int) -> list[dict]:
        return self.control.notifications(app, limit)

    def params(self, app: str, service: str) -> dict:
        return answers.params(self.control, app, service)

    def set_params(self, app: str, service: str, values: dict, unset: list,
                   spec: tuple[str, str] | None = None) -> dict:
        with self._locked(app, "params set"):
            return answers.set_values(self.control, app, service, values, unset, spec)

    def logs(self, app: str, service: str, tail: int) -> list[dict]:
        return self.control.logs(app, service, tail)

    def plan(self, text: str, file: str) -> dict:
        return answers.plan(self.control, text, file)

    def apply(self, text: str, file: str, on_event) -> dict:
        prepared = self.control.prepare_text(text, file)  # read, observed, planned once
        self._report_to(on_event)
        with self._locked(prepared.spec.app, "apply"):
            return answers.apply(self.control, prepared, file)

    def act(self, action: str, app: str, service: str, on_event) -> dict:
        answers.known_service(self.control, app, service)
        self._report_to(on_event)
        with self._locked(app, action):
            return answers.act(self.control, action, app, service)

    def move(self, app: str, slot: str, server: str, on_event, data_lost: bool = False) -> dict:
        self._report_to(on_event)
        with self._locked(app, "move"):
            return answers.move(self.control, app, slot, server, data_lost)

    def remove(self, app: str, purge_data: str | None, on_event) -> dict:
        self.control.spec_of(app)     # an unknown app first (as the API: 404 before 422)
        purge = removing.purges(app, purge_data)
        self._report_to(on_event)
        with self._locked(app, "remove"):
            return answers.remove(self.control, app, purge)

    def volumes(self) -> list[dict]:
        return answers.volumes(self.control)["volumes"]

    def image_holdings(self) -> list[dict]:
        return answers.image_holdings(self.control)["servers"]

    def remove_volume(self, server: str, name: str) -> dict:
        return answers.remove_volume(self.control, server, name)

    def _report_to(self, on_event) -> None:
        """The Control's progress as events, timed from now (as a job's from its start)."""
        began = self.clock()

        def progress(service: str, state: str, detail: str) -> None:
            on_event({"service": service, "state": state, "detail": detail,
                      "t": round(self.clock() - began, 2)})
        self.control.progress = progress
