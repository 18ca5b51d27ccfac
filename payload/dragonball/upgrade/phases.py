"""The upgrade's phases and their rollback, recorded in the upgrade's state as they go
(dragonball.upgrade.run has the order and what each does)."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time

import dragonball
from dragonball.errors import DragonBallError
from dragonball.release import installed
from dragonball.upgrade import plan as plan_mod
from dragonball.upgrade import snapshots
from dragonball.upgrade.checks import record_root
from dragonball.upgrade.host import (prune_local, restart_portal, restore_runtime,
                                     swap_runtime, update_agent)
from dragonball.upgrade.state import STATE_DIR, prune_backups, release_id

log = logging.getLogger(__name__)


class Phases:
    """The upgrade's phases and their rollback, recorded in `state` as they go."""

    def __init__(self, site, target, new_text: str | None, app: str | None, the_plan,
                 state, out, current: dict | None) -> None:
        """`site` (run.Site): the portal's parts; `target` (run.Target, None for a rollback
        of a stopped upgrade); `state` (state.UpgradeState); `out` (run.Output)."""
        self.site, self.target, self.new_text, self.app = site, target, new_text, app
        self.plan, self.state, self.out, self.current = the_plan, state, out, current
        self.rollback_errors: list[str] = []

    def run_all(self) -> None:
        for phase in PHASE_ORDER:
            if self.state.is_done(phase):
                self.out.phase(phase, "skipped", "done in an earlier run")
                continue
            self.state.start_phase(phase)
            self.out.phase(phase, "running")
            began = time.monotonic()
            detail = getattr(self, "phase_" + phase)() or ""
            self.state.phase_done(phase)
            self.out.phase(phase, "done", f"{detail} ({time.monotonic() - began:.1f} s)".strip())
            self.audit("phase_done", phase=phase, detail={"detail": detail})

    # -- phases ------------------------------------------------------------------------------
    def phase_backup(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        source = release_id(self.current)
        folder = os.path.join(STATE_DIR, "backups",
                              f"{source['version'] if source else 'none'}-{stamp}")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        copy = self.site.control.store.store.copy()
        target = sqlite3.connect(os.path.join(folder, "portal.sqlite"))
        try:
            copy.backup(target)
        finally:
            target.close()
            copy.close()
        os.chmod(os.path.join(folder, "portal.sqlite"), 0o600)
        for name in (installed.CURRENT, installed.PREVIOUS):
            path = os.path.join(installed.RELEASE_DIR, name)
            if os.path.exists(path):
                shutil.copy2(path, os.path.join(folder, name))
        skipped = bool(self.state.data.get("no_snapshot"))
        taken = snapshots.take(self.site.control.agents, self.site.nodes(),
                               None if skipped else self.app, folder,
                               lambda text: self.out.phase("backup", "snapshot", text))
        self.state.data["backup"] = folder
        self.state.data["snapshots"] = len(taken)
        self.audit("started", detail={"changes": len(self.plan.changes),
                                      "snapshots": len(taken)})
        if skipped:
            return f"{folder}: the portal's store (no volume snapshot: --no-snapshot)"
        paused = max((t["paused_s"] for t in taken), default=0.0)
        return (f"{folder}: the portal's store and {len(taken)} volume snapshot(s), "
                f"{sum(t['size'] for t in taken) / 1e6:.1f} MB"
                + (f" (writes paused {paused:.1f} s at most)" if taken else ""))

    def phase_images(self) -> str:
        from dragonball.registry.client import RegistryClient
        from dragonball.registry.push import push_archive
        settings, control = self.site.settings, self.site.control
        username, password = _push_credentials(settings)
        with self.target.images() as archive, \
                RegistryClient(settings.registry, settings.ca_cert, username, password) as c:
            c.ping()
            result = push_archive(archive, c, None, 4, None,
                                  elsewhere=self.target.manifest.get("left_out") or {})
        sent = result.plan.upload_bytes
        needs, nodes = list(self._platform_images()), None
        if self.new_text:
            prepared = control.prepare_text(self.new_text, self._spec_file())
            nodes = prepared.observation.ready_nodes()
            needs += list(prepared.deployment.images)
        supply = control.executor().supply
        if needs and supply is not None:
            if nodes is None:
                nodes = [n for n in self.site.nodes() if n.ready]
            supply.ensure(needs, nodes)
        return (f"{sent >> 20} MiB sent to the registry; {len(needs)} image(s) on "
                f"{len(nodes or [])} server(s)")

    def _platform_images(self):
        """DragonBall's own images the upgrade switches to on every server (the agents',
        the moving addresses'), pinned by ID with the registry reference to pull."""
        from dragonball.orchestrator.images import ReleaseImage
        wanted = {c.name for c in self.plan.changes if c.part in ("agent", "keepalived")}
        refs = [i["ref"] for i in self.target.manifest.get("images") or []
                if i["ref"].rsplit(":", 1)[0] in wanted]
        if not refs:
            return []
        pinned, pulls = self.site.control.observer.pin(refs)
        return [ReleaseImage(ref, pinned[ref], pulls.get(ref, "")) for ref in refs
                if ref in pinned]

    def phase_dragonball(self) -> str:
        done = []
        if self.target.runtime is not None and "runtime" in self.plan.parts():
            want = ((self.target.manifest.get("sections") or {}).get("runtime")
                    or {}).get("sha256", "")
            self.state.data["runtime_swapped"] = want    # before: a kill then rolls it back
            self.state.save()
            if swap_runtime(self.target.runtime, want):
                restart_portal()
            done.append("runtime and portal on this server")
        agent = next((c for c in self.plan.changes if c.part == "agent"), None)
        if agent is not None:
            new_id = plan_mod.by_repository(plan_mod.image_ids(self.target.manifest),
                                             plan_mod.PLATFORM["agent"])
            old_id = plan_mod.by_repository(
                plan_mod.image_ids((self.current or {}).get("manifest") or {}),
                plan_mod.PLATFORM["agent"])
            self.state.data["agent_image"] = old_id
            self.state.save()
            update_agent(new_id)
            done.append("node agents")
        return ", ".join(done) or "no change"

    def phase_app(self) -> str:
        if not self.new_text:
            return "the release carries no app"
        self.site.apps.apply(self.new_text, self._spec_file(), self.out.event)
        return f"app {self.app}"

    def phase_record(self) -> str:
        spec_path = None
        if self.target.app_text:
            spec_path = installed.keep_app_spec(self.target.id["name"],
                                                self.target.id["version"],
                                                self.target.app_text)
        entry = (installed.bin_record(self.target.manifest, self.target.signed, spec_path)
                 if self.target.kind == "bin" else
                 {**installed.bin_record(self.target.manifest, False, spec_path),
                  "kind": "app"})
        installed.record(entry, record_root(self.target.id))
        if self.target.kind == "bin":
            set_versions(self.site, self.target.id, self.target.manifest)
        return f"{self.target.id['name']} {self.target.id['version']}"

    def phase_prune(self) -> str:
        previous = installed.read(installed.PREVIOUS)
        keep = {i["ref"] for i in self.target.manifest.get("images") or []}
        keep |= {i["ref"] for i in ((previous or {}).get("manifest") or {}).get("images") or []}
        pruned = prune_local(keep, self.target.id["name"])
        gone = prune_backups(self.state.data.get("backup"))
        return pruned + (f"; {len(gone)} older backup(s) removed" if gone else "")

    # -- rollback ----------------------------------------------------------------------------
    def roll_back(self) -> bool:
        """Undo in reverse what the phases did; whether all of it went back."""
        done = set(self.state.data.get("done", [])) | {self.state.data.get("phase")}
        if "record" in done and self.state.is_done("record"):
            self._try("record", lambda: installed.restore_previous(
                record_root(self.state.data.get("to") or {})))
        if "app" in done:
            previous = self.state.data.get("previous_app")
            if previous:
                self._try("app", lambda: self.site.apps.apply(previous["text"],
                                                              previous["file"],
                                                              self.out.event))
        if "dragonball" in done:
            swapped = self.state.data.get("runtime_swapped")
            if swapped:
                self._try("runtime", lambda: restore_runtime(
                    swapped if isinstance(swapped, str) else ""))
            if self.state.data.get("agent_image"):
                self._try("agent", lambda: update_agent(self.state.data["agent_image"]))
        self.audit("rollback_failed" if self.rollback_errors else "rolled_back",
                   error="; ".join(self.rollback_errors) or None)
        return not self.rollback_errors

    def _try(self, what: str, call) -> None:
        self.out.phase(f"rollback {what}", "running")
        try:
            call()
        except Exception as e:  # noqa: BLE001 - every part is tried; each failure is said
            message = e.message if isinstance(e, DragonBallError) else str(e)
            self.rollback_errors.append(f"{what}: {message}")
            self.out.phase(f"rollback {what}", "failed", message)
            return
        self.out.phase(f"rollback {what}", "done")

    def _spec_file(self) -> str:
        return f"{self.target.id['name']}-{self.target.id['version']}.app.yaml"

    def audit(self, step: str, phase: str | None = None, error: str | None = None,
              detail: dict | None = None) -> None:
        """One step in the portal's audit log (portal/upgrade_audit.py); an upgrade goes on
        without its history when the store cannot take it (said in the log)."""
        from dragonball.portal.upgrade_audit import record_upgrade
        try:
            record_upgrade(self.site.control.store.store, step, release_id(self.current),
                           self.target.id if self.target else self.state.data.get("to"),
                           phase=phase, error=error, detail=detail)
        except DragonBallError as e:
            log.warning("audit log: %s", e)


PHASE_ORDER = ("backup", "images", "dragonball", "app", "record", "prune")


def _push_credentials(settings) -> tuple[str, str]:
    from dragonball.portal.settings import read_registry_credentials
    return read_registry_credentials(settings.registry_credentials)


def set_versions(site, release: dict | None, manifest: dict | None = None) -> None:
    """Each server's DragonBall version and release in its node labels (`dragonball
    devices`); the upgrade goes on when the Swarm refuses (said in the log)."""
    from dragonball.shared import node_labels
    if not release:
        return
    version = ((manifest or {}).get("runtime") or {}).get("version") or dragonball.__version__
    try:
        node_labels.set_versions(site.control.engine, [n.id for n in site.nodes()], version,
                                 {"name": release["name"], "version": release["version"]})
    except DragonBallError as e:
        log.warning("versions not set on the nodes: %s", e)
