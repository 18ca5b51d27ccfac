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
import datetime
import logging
import os
import shutil
import sqlite3
import subprocess
import time

import yaml

import dragonball
from dragonball.errors import DragonBallError, Failed, InvalidInput, ReleaseError, Unavailable
from dragonball.release import installed
from dragonball.shared import app_lock, paths
from dragonball.upgrade import plan as plan_mod
from dragonball.upgrade.state import STATE_DIR, UpgradeState, release_id, upgrade_lock

log = logging.getLogger(__name__)

RUNTIME_DIR = f"{paths.RUNTIME_PARENT}/runtime"
RUNTIME_PREVIOUS = f"{paths.RUNTIME_PARENT}/runtime.previous"
PORTAL_UNIT = "dragonball-portal.service"
UNIT_PATH = f"/etc/systemd/system/{PORTAL_UNIT}"
AGENT_SERVICE = "dragonball-agent"
#: Unpacked images take about this many times their compressed size on a server.
UNPACK_FACTOR = 3
CERT_MARGIN = datetime.timedelta(days=1)


class UpgradeRefused(ReleaseError, InvalidInput):
    """The .bin is not an upgrade of this cluster (another product, older, unsigned)."""


class ClusterNotReady(ReleaseError, Unavailable):
    """A server is down or unreachable, no quorum, no room: nothing was changed."""


class UpgradeFailed(ReleaseError, Failed):
    """A phase failed; what was done is rolled back."""


# --- pure -----------------------------------------------------------------------------------

def identity_problems(current: dict | None, new: dict, allow_downgrade: bool) -> list[str]:
    """Why `new` (a release id) may not replace `current`: another product, older. An app
    release with none before is a new app (DESIGN.md, "Release identity")."""
    if current is None and new.get("kind") == "app":
        return []
    if current is None:
        return ["this server has no installed release on record (/var/lib/dragonball/"
                "release/current.json): run the upgrade on the portal or another manager"]
    if current["name"] != new["name"]:
        return [f"this .bin is release {new['name']!r}, this cluster runs {current['name']!r}: "
                "it is another product"]
    order = plan_mod.compare(new["version"], current["version"])
    if order < 0 and not allow_downgrade:
        return [f"{new['name']} {new['version']} is older than the installed "
                f"{current['version']}: a downgrade (give --allow-downgrade to mean it, or "
                "'dragonball rollback' to go back to the previous release)"]
    return []


def node_problems(nodes) -> list[str]:
    """Servers not Ready, managers without quorum (swarm.model.Node list)."""
    problems = [f"server {n.hostname} is {'down' if not n.ready else n.availability}"
                for n in nodes if not n.ready or n.availability == "drain"]
    managers = [n for n in nodes if n.manager]
    reachable = [n for n in managers if n.reachability == "reachable" or n.leader]
    if managers and len(reachable) <= len(managers) // 2:
        problems.append(f"only {len(reachable)} of {len(managers)} managers are reachable: "
                        "the cluster has no quorum")
    problems += [f"manager {n.hostname} is {n.reachability or 'unreachable'}"
                 for n in managers if n not in reachable and n.ready]
    return problems


def room_problems(free: dict, need: int) -> list[str]:
    """free: hostname -> free bytes (None: unknown); need: bytes each server needs."""
    return [f"server {host} has {bytes_ >> 20} MiB free where its images are, the new "
            f"release needs about {need >> 20} MiB: free some space there"
            for host, bytes_ in sorted(free.items()) if bytes_ is not None and bytes_ < need]


def new_image_bytes(old: dict, new: dict) -> int:
    """The compressed bytes of the new manifest's images whose ID the old one lacks."""
    held = {i.get("image_id") for i in old.get("images") or []}
    return sum(i.get("size", 0) for i in new.get("images") or [] if i.get("image_id") not in held)


#: What the site chose for a service (at deploy, or by editing its spec): where it runs, how
#: many, the moving address of its network. The rest is the release's.
SITE_KEYS = ("placement", "replicas", "address")


def carry_placement(new_text: str, applied_text: str | None) -> str:
    """The new release's app spec with each service's SITE_KEYS as the app runs now (the
    implementer's choices at deploy), everything else the new release's."""
    if not applied_text:
        return new_text
    new, applied = yaml.safe_load(new_text), yaml.safe_load(applied_text)
    if not isinstance(new, dict) or not isinstance(applied, dict):
        return new_text
    for group in ("services", "jobs"):
        running = applied.get(group) or {}
        for name, service in (new.get(group) or {}).items():
            was = running.get(name)
            if not isinstance(was, dict) or not isinstance(service, dict):
                continue
            for key in SITE_KEYS:
                if key in was:
                    service[key] = was[key]
                elif key in service and key != "replicas":
                    service.pop(key)
    return yaml.safe_dump(new, sort_keys=False)


# --- the run ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Options:
    yes: bool = False
    dry_run: bool = False
    allow_downgrade: bool = False
    key: str | None = None
    timeout: float = 600.0


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

    def free_bytes(self, nodes) -> tuple[dict, list[str]]:
        """({hostname: free bytes where its images go, None: unknown}, [servers whose agent
        does not answer]): every server reachable, asked at once."""
        import concurrent.futures

        def ask(node):
            try:
                return node, self.control.agents.volume_report(node.address).get(
                    "free_bytes"), None
            except DragonBallError as e:
                return node, None, e.message
        found, silent = {}, []
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for node, free, error in pool.map(ask, nodes):
                found[node.hostname] = free
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
    cluster_checks(site, app, old_manifest, target.manifest)
    out.plan(release_id(current), target.id, the_plan, resuming)
    if options.dry_run:
        return {"state": "dry-run", "plan": the_plan.rows(), "from": release_id(current),
                "to": target.id}
    if not options.yes and not out.confirm():
        raise UpgradeRefused("the upgrade was not confirmed", "nothing was changed")
    if not resuming:
        state.begin(release_id(current), target.id,
                    {"file": applied[0], "text": applied[1]} if applied else None)
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


def record_root(release: dict) -> str:
    """Where a release's records are: the .bin's in release/, an app-only release's in
    release/apps/<name>/ (an app is known by its own name and version)."""
    if release.get("kind") == "app":
        return os.path.join(installed.RELEASE_DIR, "apps", release["name"])
    return installed.RELEASE_DIR


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


def cluster_checks(site: Site, app: str | None, old: dict, new: dict) -> None:
    """Every server Ready, quorum, room on every server, certificates, no apply running."""
    nodes = site.nodes()
    problems = node_problems(nodes)
    if not problems:
        need = new_image_bytes(old, new) * UNPACK_FACTOR
        free, silent = site.free_bytes(nodes)
        problems += silent + room_problems(free, need)
    problems += cert_problems([site.settings.tls_cert, site.settings.ca_cert,
                               paths.REGISTRY_CERT])
    if problems:
        raise ClusterNotReady("the cluster is not ready for an upgrade: " + "; ".join(problems),
                              "bring every server back (dragonball devices), then run it "
                              "again: nothing was changed")
    if app:
        # a person's apply refuses it at once; the portal's own upkeep is waited for
        app_lock.acquire(app, "the upgrade's check").release()


def cert_problems(files: list[str], now: datetime.datetime | None = None) -> list[str]:
    from cryptography import x509
    now = now or datetime.datetime.now(datetime.timezone.utc)
    problems = []
    for path in files:
        try:
            with open(path, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
        except (OSError, ValueError):
            continue
        if cert.not_valid_after_utc < now + CERT_MARGIN:
            problems.append(f"{path} ends {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: renew "
                            "it first (dragonball certs renew)")
    return problems


class Phases:
    """The upgrade's phases and their rollback, recorded in `state` as they go."""

    def __init__(self, site: Site, target: Target, new_text: str | None, app: str | None,
                 the_plan, state: UpgradeState, out: Output, current: dict | None) -> None:
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
        self.state.data["backup"] = folder
        self.audit("started", detail={"changes": len(self.plan.changes)})
        return folder

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
            swap_runtime(self.target.runtime)
            self.state.data["runtime_swapped"] = True
            self.state.save()
            restart_portal()
            done.append("runtime and portal on this server")
        agent = next((c for c in self.plan.changes if c.part == "agent"), None)
        if agent is not None:
            new_id = plan_mod._by_repository(plan_mod.image_ids(self.target.manifest),
                                             plan_mod.PLATFORM["agent"])
            old_id = plan_mod._by_repository(
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
        return prune_local(keep, self.target.id["name"])

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
            if self.state.data.get("runtime_swapped"):
                self._try("runtime", restore_runtime)
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


def swap_runtime(open_runtime) -> None:
    """The new runtime into /opt/dragonball/runtime; the one it replaces kept beside it."""
    from dragonball.installer.portal.service import unpack_runtime
    if os.path.isdir(RUNTIME_DIR):
        if os.path.lexists(RUNTIME_PREVIOUS):
            shutil.rmtree(RUNTIME_PREVIOUS)
        shutil.copytree(RUNTIME_DIR, RUNTIME_PREVIOUS, symlinks=True)
    with open_runtime() as stream:
        unpack_runtime(stream, paths.RUNTIME_PARENT, RUNTIME_DIR)


def restore_runtime() -> None:
    if not os.path.isdir(RUNTIME_PREVIOUS):
        return
    aside = RUNTIME_DIR + ".failed"
    if os.path.lexists(aside):
        shutil.rmtree(aside)
    if os.path.lexists(RUNTIME_DIR):
        os.rename(RUNTIME_DIR, aside)
    shutil.copytree(RUNTIME_PREVIOUS, RUNTIME_DIR, symlinks=True)
    shutil.rmtree(aside, ignore_errors=True)
    restart_portal()


def restart_portal() -> None:
    """The portal's unit restarted on the new runtime (systemd); without systemd the portal
    is a detached process the next install re-run restarts."""
    if not os.path.exists(UNIT_PATH):
        return
    _run_tool(["systemctl", "restart", PORTAL_UNIT], "restart the portal")


def update_agent(image_id: str | None) -> None:
    if not image_id:
        return
    from dragonball.installer.agent import RUNTIME_MOUNT_ARG
    # the mount of /opt/dragonball: an agent installed before it carried runtimes lacks it
    try:
        _run_tool(["docker", "service", "update", "--detach=false", "--quiet", "--image",
                   image_id, "--no-resolve-image", "--mount-add", RUNTIME_MOUNT_ARG,
                   AGENT_SERVICE], "update the node agents", timeout=900)
    except UpgradeFailed as e:
        tasks = _run_tool(["docker", "service", "ps", "--no-trunc", "--format",
                           "{{.Node}} {{.CurrentState}} {{.Error}}", AGENT_SERVICE],
                          "list the agents' tasks", check=False)
        failed = [line for line in tasks.splitlines() if line.split(" ", 1)[-1].strip()
                  and ("Failed" in line or "Rejected" in line)][:5]
        raise UpgradeFailed(e.message + ("\n" + "\n".join(f"    {t}" for t in failed)
                                         if failed else ""), e.hint) from e


def prune_local(keep: set, release: str) -> str:
    """Images of `release` on this server's engine that neither the new nor the previous
    release names: removed (an image a container still uses is left)."""
    found = _run_tool(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                       f"--filter=reference={release}/*"], "list the images", check=False)
    old = [ref for ref in found.splitlines() if ref and ref not in keep]
    for ref in old:
        _run_tool(["docker", "image", "rm", ref], f"remove {ref}", check=False)
    return f"{len(old)} old image(s) removed here" if old else "nothing older to remove"


def set_versions(site: Site, release: dict | None, manifest: dict | None = None) -> None:
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


def _run_tool(argv: list[str], what: str, check: bool = True, timeout: float = 120) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UpgradeFailed(f"cannot {what}: {e}", "see the portal's log") from e
    if check and done.returncode != 0:
        raise UpgradeFailed(f"cannot {what}: {done.stderr.strip()[-2000:]}",
                            f"see: {' '.join(argv)}")
    return done.stdout


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
        restore_runtime()
        out.phase("dragonball", "done")
    agent = plan_mod.PLATFORM["agent"]
    old_agent = plan_mod._by_repository(plan_mod.image_ids((current or {}).get("manifest")
                                                           or {}), agent)
    new_agent = plan_mod._by_repository(plan_mod.image_ids(previous.get("manifest") or {}),
                                        agent)
    if new_agent and old_agent != new_agent:
        update_agent(new_agent)
    installed.restore_previous()
    set_versions(site, release_id(previous), previous.get("manifest"))
    state.end("rolled-back")
    Phases(site, None, None, None, plan_mod.Plan(()), state, out, current).audit("rolled_back")
    return {"state": "rolled-back", "from": release_id(current), "to": release_id(previous)}
