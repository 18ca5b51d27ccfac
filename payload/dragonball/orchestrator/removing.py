"""Taking an app away (`dragonball remove APP`, issue 15): everything its applies made.

Before, `stop` scaled to 0 and an empty spec was refused: an app's services stayed at 0/0,
its network, its volumes, its parameter folders on every server and its record on the
portal (after which `dragonball services` failed for the other app's operators: "several
apps are applied"). `AppRemoval.run` takes away, in this order, each step going on where
a server does not answer and saying so:

1. its Swarm services (every one labelled with the app: services, slots, moving addresses,
   one-shot jobs);
2. its overlay network, once no task is attached (asked again for up to `WAIT_S`);
3. its parameter folders on every ready server;
4. its volumes on every ready server, only when `purge_data` (its data: the app's name typed
   again, `purges`), each once no container uses it (asked again for up to `WAIT_S`);
   else they are kept, and the answer lists each by server and name;
5. the network's copy on every ready server: Swarm lets the network go once its tasks are
   shut down, but each server keeps its own copy until the task's container there is
   removed (seconds later, more behind a backend's drain). Each server's agent is asked
   until its copy is gone (for up to `WAIT_S`), so that "the network went" is true on
   every server when the command returns, and a copy that stays is named;
6. its placement labels on the servers, then its record on the portal: spec, states,
   notifications, slot pins, jobs' runs; its parameters, shared ones too, are emptied
   (their revision keeps growing, so a server that was down keeps refusing the old
   folder's values if the app comes back).

The audit log records `app.removed` with what went and what stayed.

Data is kept unless asked for twice (issue 15): a removal is easy to type and a volume is
the one thing it cannot give back, so `purges` lets it go only when the app's name is typed
again (`dragonball remove notes --purge-data notes`, the API's `purge_data=notes`).
"""

from __future__ import annotations

import logging
import time

from dragonball.app.model import SHARED
from dragonball.errors import AppError, DragonBallError, InvalidInput
from dragonball.orchestrator import naming

log = logging.getLogger(__name__)

WAIT_S = 60.0   # tasks take this long at most to go once their service is removed
RETRY_S = 1.0


class PurgeRefused(AppError, InvalidInput):
    """An app's data asked to go without its name typed again (or with another): nothing
    is changed."""


def purges(app: str, typed: str | None) -> bool:
    """Whether `app`'s data (its volumes) goes: only when `typed` (`--purge-data`'s value,
    the API's `purge_data`) is its name again; None keeps it. PurgeRefused for any other
    text: a slip of the keyboard must not delete data."""
    if typed is None:
        return False
    if typed != app:
        raise PurgeRefused(
            f"the name typed to delete the data of app {app!r} is {typed!r}, not {app!r}: "
            "nothing was changed",
            f"type its name exactly: dragonball remove {app} --purge-data {app} (or leave "
            "--purge-data out: its volumes are kept)")
    return True


class AppRemoval:
    """One app's removal over the Control's collaborators."""

    def __init__(self, engine, store, agents, clock=time.monotonic, sleep=time.sleep) -> None:
        self.engine, self.store, self.agents = engine, store, agents
        self.clock, self.sleep = clock, sleep

    def run(self, app: str, services: list[str], purge_data: bool = False) -> dict:
        """Remove `app` (its spec's `services`); {app, services, network, params, volumes,
        kept, purge_data, problems}: `volumes` deleted (with `purge_data`) or `kept`, each
        {server, name}."""
        removed = self._services(app)
        problems: list[str] = []
        network = self._retried(lambda: self.engine.remove_network(naming.network(app)),
                                f"the network {naming.network(app)}", problems)
        nodes = [n for n in self.engine.nodes() if n.ready]
        down = [n.hostname for n in self.engine.nodes() if not n.ready]
        if down:
            problems.append(f"{', '.join(down)} down: its parameter folders and volumes of "
                            f"{app} stay there until removed by hand")
        params = self._params(app, services, nodes, problems)
        volumes, kept = (self._volumes(app, nodes, problems), []) if purge_data else \
            ([], self._app_volumes(app, nodes, problems))
        if network:
            network = self._copies_gone(naming.network(app), nodes, problems)
        self._labels(app)
        self.store.forget_app(app)
        self.store.set_pins(app, {})
        for name in [*services, SHARED]:     # the values forgotten, the revisions kept
            if self.store.params(app, name)[0]:
                self.store.set_params(app, name, {})
        found = {"app": app, "services": removed, "network": network, "params": params,
                 "volumes": volumes, "kept": kept, "purge_data": purge_data,
                 "problems": problems}
        self.store.store.record("app.removed", "admin", None, {
            "app": app, "services": removed, "volumes": len(volumes), "kept": len(kept),
            "purge_data": purge_data, "problems": problems})
        return found

    def _services(self, app: str) -> list[str]:
        names = sorted(s.name for s in self.engine.services({naming.APP_LABEL: app}))
        for name in names:
            self.engine.remove_service(name)
        return names

    def _retried(self, call, what: str, problems: list[str]) -> bool:
        """`call` until it works (its tasks may still be going) or WAIT_S pass."""
        deadline = self.clock() + WAIT_S
        while True:
            try:
                call()
                return True
            except DragonBallError as e:
                if self.clock() >= deadline:
                    problems.append(f"{what} stays: {e.message}")
                    return False
            self.sleep(RETRY_S)

    def _copies_gone(self, network: str, nodes, problems: list[str]) -> bool:
        """Whether no server's engine holds `network` any more (asked again, for up to
        WAIT_S in all, where a copy stays); a server still holding it, or whose agent does
        not say, is a problem."""
        deadline = self.clock() + WAIT_S
        waiting = {node.hostname: node for node in nodes}
        while True:
            said: dict[str, str] = {}
            for name, node in list(waiting.items()):
                try:
                    held = [n for n in self.agents.networks(node.address)
                            if n.get("name") == network]
                except DragonBallError as e:
                    said[name] = f"its agent did not say whether it holds it: {e.message}"
                    continue
                if not held:
                    del waiting[name]
                    continue
                said[name] = (f"a copy is still there ({held[0].get('containers', 0)} "
                              "container(s) attached)")
            if not waiting:
                return True
            if self.clock() >= deadline:
                problems.extend(f"the network {network} stays on {name}: {why}"
                                for name, why in sorted(said.items()))
                return False
            self.sleep(RETRY_S)

    def _params(self, app: str, services: list[str], nodes, problems: list[str]) -> list:
        taken = []
        for node in nodes:
            for name in services:
                try:
                    self.agents.delete_params(node.address, app, name)
                    taken.append(f"{node.hostname}:{name}")
                except DragonBallError as e:
                    problems.append(f"the parameters of {name} stay on {node.hostname}: "
                                    f"{e.message}")
        return taken

    def _listed(self, app: str, node, problems: list[str]) -> list[str] | None:
        """The names of `app`'s volumes on `node`; None (and a problem) when its agent
        does not say."""
        try:
            return [v["name"] for v in self.agents.volumes(node.address)
                    if v.get("app") == app]
        except DragonBallError as e:
            problems.append(f"the volumes on {node.hostname} could not be listed (any of "
                            f"{app} there stay): {e.message}")
            return None

    def _app_volumes(self, app: str, nodes, problems: list[str]) -> list[dict]:
        """The app's volumes, kept: {server, name} each."""
        return [{"server": node.hostname, "name": name} for node in nodes
                for name in self._listed(app, node, problems) or []]

    def _volumes(self, app: str, nodes, problems: list[str]) -> list[dict]:
        """The app's volumes, deleted: {server, name} each (one in use is asked again)."""
        removed = []
        for node in nodes:
            for name in self._listed(app, node, problems) or []:
                if self._retried(lambda: self.agents.delete_volume(node.address, name),
                                 f"the volume {name} on {node.hostname}", problems):
                    removed.append({"server": node.hostname, "name": name})
        return removed

    def _labels(self, app: str) -> None:
        prefix = f"{naming.PLACEMENT_LABEL}.{app}."
        for node in self.engine.nodes():
            stale = {k: None for k in node.labels if k.startswith(prefix)}
            if stale:
                try:
                    self.engine.update_node(node.id, labels=stale)
                except DragonBallError as e:
                    log.warning("the placement labels of %s stay on %s: %s", app,
                                node.hostname, e.message)
