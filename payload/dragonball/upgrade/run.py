"""The upgrade and the rollback, phase by phase, on a manager (docs/upgrade.md).

    checks      nothing changed: the release's identity (another product refused), no
                downgrade unless asked, the signature when the installed release was
                signed, every server Ready, the managers' quorum, room for the new images
                on every server, certificates valid past the upgrade, no apply running
    backup      the portal's state (its SQLite store), the installed record and the
                app's applied spec, under upgrade/backups/: kept for a rollback
    images      the new release's images into the registry, then onto every server
    dragonball  the runtime here (the previous one kept), the portal restarted; the node
                agents' service on the new agent image (one server at a time), which
                carries the runtime: each agent puts it in place on its server and the
                portal's unit there restarts on it (agent_runtime.py, runtime_watch.py)
    app         the new release's app, with the placement and replica counts it runs with
                now: leaves first, each healthy first (its jobs, migrations, in their
                place), multi-replica services updated one task at a time
    record      the installed release is the new one; the old one is `previous`
    prune       images older than the previous release, off this server's engine

Any failure rolls back what was done, in reverse (app spec, runtime and agent, record),
and ends with exit 1 saying in which phase it failed and the failing task's output. The
state file (upgrade/state.py) survives a kill -9: the same upgrade run again resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os

import yaml

from dragonball.errors import DragonBallError
from dragonball.release import installed
from dragonball.shared import app_lock, paths
from dragonball.upgrade import plan as plan_mod
from dragonball.upgrade.checks import (carry_placement, cert_problems, identity_problems,
                                       new_image_bytes, node_problems, record_root,
                                       room_problems, UNPACK_FACTOR)
from dragonball.upgrade.errors import ClusterNotReady, UpgradeFailed, UpgradeRefused
from dragonball.upgrade.host import RUNTIME_PREVIOUS, restore_runtime, update_agent
from dragonball.upgrade.phases import Phases, set_versions
from dragonball.upgrade.state import UpgradeState, release_id, upgrade_lock

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Options:
    yes: bool = False
    dry_run: bool = False
    allow_downgrade: bool = False
    key: str | None = None
    timeout: float = 600.0
    snapshot: bool = True       # the backup's snapshots of the slots' volumes (--no-snapshot)


class Output:
    """What the upgrade tells the person; the command prints it."""

    def plan(self, source: dict | None, target: dict, plan, resuming: bool) -> None:
        """The plan, before the confirmation."""

    def confirm(self) -> bool:
        return True

    def phase(self, name: str, state: str, detail: str = "") -> None:
        """A phase began ("running"), ended ("done", "skipped") or failed."""

    def event(self, event: dict) -> None:
        """A service's progress in the app phase."""


@dataclasses.dataclass
class Target:
    """The release upgraded to: a .bin's manifest (and this runtime's own .bin), or an .app."""

    kind: str
    manifest: dict
    app_text: str | None
    signed: bool
    images: object            # () -> context manager of the ImageArchive
    runtime: object = None    # () -> context manager of the runtime section (a .bin)

    @property
    def id(self) -> dict:
        return {"kind": self.kind, "name": self.manifest["name"],
                "version": self.manifest["version"]}


class Site:
    """The portal's parts the upgrade drives: settings, store, Control (portal.wiring)."""

    def __init__(self, open_apps, timeout: float) -> None:
        """`open_apps(timeout)`: the portal's apps as root on it (commands/apps_local.py's
        LocalApps: its Control, the apps' locks)."""
        self.apps = open_apps(timeout)
        self.control = self.apps.control
        from dragonball.portal import settings as settings_mod
        self.settings = settings_mod.load(settings_mod.CONFIG_FILE)

    def close(self) -> None:
        self.apps.close()

    def applied(self, app: str | None) -> tuple[str, str] | None:
        if not app or app not in self.control.store.apps():
            return None
        return self.control.applied_text(app)

    def nodes(self):
        return self.control.engine.nodes()

    def volume_reports(self, nodes, sizes: bool = False) -> tuple[dict, list[str]]:
        """({hostname: its agent's volume report (`free_bytes` where its images go, its app
        volumes, with their sizes when `sizes`), None when it does not answer}, [servers
        whose agent does not answer]): every server asked at once, once."""
        import concurrent.futures

        def ask(node):
            try:
                return node, self.control.agents.volume_report(node.address, sizes), None
            except DragonBallError as e:
                return node, None, e.message
        found, silent = {}, []
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for node, report, error in pool.map(ask, nodes):
                found[node.hostname] = report
                if error:
                    silent.append(f"server {node.hostname} does not answer ({error})")
        return found, silent


def spec_of(text: str | None, file: str):
    if not text:
        return None
    from dragonball.app import spec as spec_mod
    return spec_mod.load(text, file)


def app_name(text: str | None) -> str | None:
    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    return data.get("app") if isinstance(data, dict) else None


def upgrade(target: Target, options: Options, out: Output, open_apps) -> dict:
    """Check, plan, confirm, then run the phases; the final state's summary."""
    root = record_root(target.id)
    current = installed.read(installed.CURRENT, root)
    with upgrade_lock(f"upgrade to {target.id['name']} {target.id['version']}"):
        state = UpgradeState()
        resuming = state.running and state.same_target(target.id)
        if state.running and not resuming:
            stopped = state.data.get("to") or {}
            raise UpgradeRefused(
                f"an upgrade to {stopped.get('name')} {stopped.get('version')} stopped in "
                f"phase {state.data.get('phase')} (its process ended)",
                "run that release's upgrade again to finish it, or 'dragonball rollback' "
                "to go back; then this one")
        if not resuming:
            problems = identity_problems(release_id(current), target.id, options.allow_downgrade)
            if problems:
                raise UpgradeRefused("; ".join(problems), "nothing was changed")
            check_signature(current, target, options.key)
        site = Site(open_apps, options.timeout)
        try:
            return _run(site, current, target, options, out, state, resuming)
        finally:
            site.close()


def _run(site: Site, current, target: Target, options: Options, out: Output,
         state: UpgradeState, resuming: bool) -> dict:
    app = app_name(target.app_text)
    applied = site.applied(app)
    if resuming and state.data.get("previous_app"):
        previous_app = state.data["previous_app"]
        applied = (previous_app["file"], previous_app["text"])
    new_text = carry_placement(target.app_text, applied[1]) if target.app_text else None
    old_manifest = (current or {}).get("manifest") or {}
    the_plan = plan_mod.make_plan(old_manifest, target.manifest,
                                  spec_of(applied[1], applied[0]) if applied else None,
                                  spec_of(new_text, "the new release's app spec"))
    if release_id(current) == target.id and not resuming:
        out.plan(release_id(current), target.id, the_plan, resuming)
        return {"state": "nothing to do", "plan": the_plan.rows(),
                "from": release_id(current), "to": target.id}
    done_or_off = resuming and (state.data.get("no_snapshot") or state.is_done("backup"))
    cluster_checks(site, app, old_manifest, target.manifest,
                   options.snapshot and not done_or_off)
    out.plan(release_id(current), target.id, the_plan, resuming)
    if options.dry_run:
        return {"state": "dry-run", "plan": the_plan.rows(), "from": release_id(current),
                "to": target.id}
    if not options.yes and not out.confirm():
        raise UpgradeRefused("the upgrade was not confirmed", "nothing was changed")
    if not resuming:
        state.begin(release_id(current), target.id,
                    {"file": applied[0], "text": applied[1]} if applied else None)
    if not options.snapshot:
        state.data["no_snapshot"] = True    # a resumed run's backup skips them too
    runner = Phases(site, target, new_text, app, the_plan, state, out, current)
    with holding_app(site, app, f"the upgrade to {_label(target.id)}"):
        return _phases(runner, state, target, current, the_plan)


@contextlib.contextmanager
def holding_app(site: Site, app: str | None, holder: str, folder: str = app_lock.LOCK_DIR):
    """The app's lock for the whole upgrade or rollback: no apply, start, stop or params set
    of a person (or the portal's jobs) comes between its phases; its own applies then take
    none (they run inside it)."""
    if not app:
        yield
        return
    with app_lock.app_lock(app, holder, folder):
        before, site.apps.lock_dir = site.apps.lock_dir, None
        try:
            yield
        finally:
            site.apps.lock_dir = before


def _phases(runner, state: UpgradeState, target: Target, current, the_plan) -> dict:
    try:
        runner.run_all()
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            state.end("failed", "interrupted")
            raise
        phase = state.data.get("phase")
        message = e.message if isinstance(e, DragonBallError) else f"{type(e).__name__}: {e}"
        output = getattr(e, "output", "") or ""
        log.warning("upgrade failed in phase %s: %s", phase, message)
        log.debug("upgrade failed in phase %s", phase, exc_info=True)
        state.data["error"] = message
        runner.audit("phase_failed", phase=phase, error=(message + "\n" + output).strip())
        rolled = runner.roll_back()
        state.end("rolled-back" if rolled else "failed", message)
        raise UpgradeFailed(
            f"the upgrade to {target.id['name']} {target.id['version']} failed in phase "
            f"{phase}: {message}" + (f"\n{output}" if output and output not in message else "")
            + ("\nrolled back to " + _label(release_id(current)) if rolled else
               "\nthe rollback did not finish: " + "; ".join(runner.rollback_errors)),
            "fix the cause (the failing task's output is above), then run the upgrade again"
        ) from e
    state.end("done")
    runner.audit("finished")
    return {"state": "done", "plan": the_plan.rows(), "from": release_id(current),
            "to": target.id}


def _label(release: dict | None) -> str:
    return f"{release['name']} {release['version']}" if release else "nothing"


def check_signature(current: dict | None, target: Target, key: str | None) -> None:
    """The installed release was signed: the new one must be, by the key given (or the one
    kept at /etc/dragonball/release.pub)."""
    if not current or not current.get("signed"):
        return
    if not target.signed:
        raise UpgradeRefused("the installed release was signed, this .bin is not",
                             "ask the release engineer for the signed build")
    key = key or (paths.ETC + "/release.pub" if os.path.exists(paths.ETC + "/release.pub")
                  else None)
    if key is None:
        raise UpgradeRefused("the installed release was signed: give the release engineer's "
                             "public key", "run it again with --key release.pub")
    from dragonball.release.signing import verify_bin
    verify_bin(dict(os.environ), key)


def cluster_checks(site: Site, app: str | None, old: dict, new: dict,
                   snapshot: bool = True) -> None:
    """Every server Ready, quorum, room on every server, certificates, no apply running;
    with `snapshot`, no slot volume too big to snapshot paused (upgrade/snapshots.py)."""
    nodes = site.nodes()
    problems, reports = node_problems(nodes), {}
    if not problems:
        need = new_image_bytes(old, new) * UNPACK_FACTOR
        reports, silent = site.volume_reports(nodes, sizes=bool(app and snapshot))
        free = {host: (report or {}).get("free_bytes") for host, report in reports.items()}
        problems += silent + room_problems(free, need)
    problems += cert_problems([site.settings.tls_cert, site.settings.ca_cert,
                               paths.REGISTRY_CERT])
    if problems:
        raise ClusterNotReady("the cluster is not ready for an upgrade: " + "; ".join(problems),
                              "bring every server back (dragonball devices), then run it "
                              "again: nothing was changed")
    if app and snapshot:
        from dragonball.upgrade import snapshots
        big = snapshots.size_problems({host: report.get("volumes") or []
                                       for host, report in reports.items() if report}, app)
        if big:
            raise UpgradeRefused(
                "the backup cannot take a snapshot of every store: " + "; ".join(big),
                "back the store's data up its own way, then upgrade with --no-snapshot: "
                "nothing was changed")
    if app:
        # a person's apply refuses it at once; the portal's own upkeep is waited for
        app_lock.acquire(app, "the upgrade's check").release()


def rollback(options: Options, out: Output, open_apps) -> dict:
    """`dragonball rollback`: an upgrade that stopped half-way is undone from its state;
    otherwise back to the previous release (its app spec with today's placement, its
    runtime and agent, its record)."""
    with upgrade_lock("rollback"):
        state = UpgradeState()
        current, previous = installed.read(), installed.read(installed.PREVIOUS)
        site = Site(open_apps, options.timeout)
        try:
            if state.running:
                runner = Phases(site, None, None, None, plan_mod.Plan(()), state, out,
                                current)
                app = app_name((state.data.get("previous_app") or {}).get("text"))
                with holding_app(site, app, "the rollback"):
                    rolled = runner.roll_back()
                state.end("rolled-back" if rolled else "failed",
                          "; ".join(runner.rollback_errors) or state.data.get("error"))
                if not rolled:
                    raise UpgradeFailed("the rollback did not finish: "
                                        + "; ".join(runner.rollback_errors),
                                        "fix the cause, then run 'dragonball rollback' again")
                return {"state": "rolled-back", "to": state.data.get("from")}
            if previous is None:
                raise UpgradeRefused("there is no previous release to go back to",
                                     "a rollback follows an upgrade")
            return _back_to(site, current, previous, options, out, state)
        finally:
            site.close()


def _back_to(site: Site, current: dict | None, previous: dict, options: Options,
             out: Output, state: UpgradeState) -> dict:
    cluster_checks(site, None, {}, {})
    text = None
    if previous.get("app_spec") and os.path.exists(previous["app_spec"]):
        with open(previous["app_spec"], encoding="utf-8") as f:
            text = f.read()
    app = app_name(text)
    applied = site.applied(app)
    if not options.yes and not out.confirm():
        raise UpgradeRefused("the rollback was not confirmed", "nothing was changed")
    state.begin(release_id(current), release_id(previous),
                {"file": applied[0], "text": applied[1]} if applied else None)
    state.data["rollback"] = True
    if text:
        out.phase("app", "running")
        with holding_app(site, app, "the rollback"):
            site.apps.apply(carry_placement(text, applied[1] if applied else None),
                            f"{previous['name']}-{previous['version']}.app.yaml", out.event)
        out.phase("app", "done")
    old_rt = ((current or {}).get("manifest") or {}).get("runtime") or {}
    new_rt = (previous.get("manifest") or {}).get("runtime") or {}
    if old_rt.get("sha256") != new_rt.get("sha256") and os.path.isdir(RUNTIME_PREVIOUS):
        out.phase("dragonball", "running")
        restore_runtime(((current or {}).get("manifest") or {}).get("sections", {})
                        .get("runtime", {}).get("sha256", ""))
        out.phase("dragonball", "done")
    agent = plan_mod.PLATFORM["agent"]
    old_agent = plan_mod.by_repository(plan_mod.image_ids((current or {}).get("manifest")
                                                           or {}), agent)
    new_agent = plan_mod.by_repository(plan_mod.image_ids(previous.get("manifest") or {}),
                                        agent)
    if new_agent and old_agent != new_agent:
        update_agent(new_agent)
    installed.restore_previous()
    set_versions(site, release_id(previous), previous.get("manifest"))
    state.end("rolled-back")
    Phases(site, None, None, None, plan_mod.Plan(()), state, out, current).audit("rolled_back")
    return {"state": "rolled-back", "from": release_id(current), "to": release_id(previous)}
