"""The volume calls of the agent (docs/agent.md, "Volumes"): the application's volumes on this
node, and a volume's copy to another node through the portal: exported here as a staged
tar, read from an offset, written on the other node piece by piece, checked (sha256 and its
members) and extracted into a new volume there. The agent acts on volumes labelled
io.dragonball.app only, and never on one a running container uses, but for an upgrade's
backup, which asks for its users to be paused while it is packed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time

import agent_transfers as transfers
from agent_api import ApiError, Download, Upload, one
from agent_config import say
from agent_engine import DockerError, Engine
from agent_transfers import APP_LABEL, Staging

SWARM_TASK_LABEL = "com.docker.swarm.task.id"


def engine_answers(call):
    """`call` with the engine's errors as answers: 502 (the engine failed, or could not be
    reached), or the engine's own status when it refused (409 a volume in use...)."""
    def guarded(query: dict, body) -> tuple:
        try:
            return call(query, body)
        except DockerError as e:
            status = e.status if e.status in (404, 409, 503) else 502
            raise ApiError(status, f"the Docker engine: {e.message}") from e
    return guarded


def users_of(containers: list[dict]) -> dict:
    """{volume name: [{"id", "name", "running", "task"}]}, from the engine's container list
    (`task`: a Swarm task's container, which Swarm keeps a while after the task ended)."""
    found: dict = {}
    for c in containers:
        names = [n.lstrip("/") for n in c.get("Names") or []]
        user = {"id": c["Id"], "name": names[0] if names else c["Id"][:12],
                "running": c.get("State") == "running",
                "task": bool((c.get("Labels") or {}).get(SWARM_TASK_LABEL))}
        for mount in c.get("Mounts") or []:
            if mount.get("Type") == "volume" and mount.get("Name"):
                found.setdefault(mount["Name"], []).append(user)
    return found


def volume_entry(volume: dict, users: list[dict], sizes: dict | None) -> dict:
    """One volume as GET /v1/volumes lists it."""
    labels = volume.get("Labels") or {}
    return {"name": volume["Name"], "labels": labels, "app": labels.get(APP_LABEL),
            "service": labels.get("io.dragonball.service"),
            "slot": labels.get("io.dragonball.slot"), "created": volume.get("CreatedAt"),
            "containers": sorted(users, key=lambda u: u["name"]),
            "in_use": any(u["running"] for u in users),
            "size": None if sizes is None else sizes.get(volume["Name"])}


class VolumesApi:
    """GET and DELETE /v1/volumes, POST /v1/volumes/export and /v1/volumes/import, POST
    /v1/transfers, GET, PUT, DELETE /v1/transfers/{id} and GET /v1/transfers/{id}/size."""

    def __init__(self, engine: Engine, staging: Staging) -> None:
        self.engine, self.staging = engine, staging
        self.importing = threading.Lock()  # one import at a time: exists? then create

    def routes(self) -> dict:
        calls = {("GET", "/v1/volumes"): self.volumes,
                 ("DELETE", "/v1/volumes"): self.delete_volume,
                 ("POST", "/v1/volumes/export"): self.export,
                 ("POST", "/v1/volumes/import"): self.import_,
                 ("POST", "/v1/transfers"): self.new_transfer,
                 ("GET", "/v1/transfers/{id}"): self.read,
                 ("GET", "/v1/transfers/{id}/size"): self.size,
                 ("DELETE", "/v1/transfers/{id}"): self.delete_transfer}
        return {**{key: engine_answers(call) for key, call in calls.items()},
                ("PUT", "/v1/transfers/{id}"): Upload(self.writer, transfers.PUT_LIMIT_BYTES)}

    # --- the volumes ---------------------------------------------------------------------------

    def volumes(self, query: dict, body) -> tuple:
        """?size=1 adds each volume's size (from docker system df: slow on large hosts)."""
        found = self.engine.volumes(APP_LABEL)
        users = users_of(self.engine.container_list())
        sizes = self.engine.volume_sizes() if one(query, "size") == "1" else None
        return 200, {"volumes": sorted((volume_entry(v, users.get(v["Name"], []), sizes)
                                        for v in found), key=lambda v: v["name"]),
                     "free_bytes": self.staging.free_bytes()}

    def app_volume(self, name: str) -> dict:
        """The inspected volume: 404 when there is none, 403 when it is not the app's."""
        volume = self.engine.volume(name)
        if volume is None:
            raise ApiError(404, f"no volume {name} on this node")
        if APP_LABEL not in (volume.get("Labels") or {}):
            raise ApiError(403, f"volume {name} is not an application's (no {APP_LABEL} "
                                "label): the agent acts on those only")
        return volume

    def users(self, name: str) -> list[dict]:
        return users_of(self.engine.container_list()).get(name, [])

    def delete_volume(self, query: dict, body) -> tuple:
        """An admin's explicit removal: refused while a container runs with it, or while a
        stopped container that is not an ended Swarm task's holds it; the ended tasks'
        containers (kept by Swarm as history) are removed with it."""
        name = transfers.volume_name(one(query, "name"))
        self.app_volume(name)
        users = self.users(name)
        holding = [u for u in users if u["running"] or not u["task"]]
        if holding:
            raise ApiError(409, f"volume {name} is used by "
                                f"{', '.join(u['name'] for u in holding)}: stop or remove them "
                                "first", containers=holding)
        for ended in users:
            self.engine.remove_container(ended["id"])
            say(f"removed {ended['name']} (an ended task's container) holding {name}")
        self.engine.remove_volume(name)
        say(f"removed volume {name}")
        return 200, {"name": name, "removed": True}

    # --- export ----------------------------------------------------------------------------------

    def quiescent(self, name: str, paused_ids: frozenset | set = frozenset()) -> None:
        """409 while a running container (other than those in `paused_ids`) uses it."""
        running = [u["name"] for u in self.users(name)
                   if u["running"] and u["id"] not in paused_ids]
        if running:
            raise ApiError(409, f"volume {name} is in use by running container(s) "
                                f"{', '.join(running)}: stop them first (the copy must see "
                                "data at rest)", containers=running)

    def export(self, query: dict, body) -> tuple:
        """The volume's files as a staged tar: {"id", "name", "size", "sha256", "paused",
        "paused_s"}. `?pause=1` (an upgrade's backup): the running containers using it are
        paused (the cgroup freezer) while it is packed, and resumed after, however the
        packing ended: a copy of one instant, with nothing lost that they had written;
        without it, one such container is refused (409)."""
        name = transfers.volume_name(one(query, "name"))
        pausing = one(query, "pause") == "1"
        self.app_volume(name)
        if not pausing:
            self.quiescent(name)
        tid = self._staging(self.staging.create)
        paused: list[dict] = []
        timed = {"paused_s": 0.0}
        try:
            size, sha256 = self._pack(name, tid, lambda: self._paused(name, pausing, paused,
                                                                     timed))
            # a container started during the export (not paused): not a copy of one instant
            self.quiescent(name, {u["id"] for u in paused})
        except BaseException:
            self.staging.delete(tid)
            raise
        paused_s = round(timed["paused_s"], 3)
        say(f"exported volume {name}: {size} bytes, transfer {tid}"
            + (f", {len(paused)} container(s) paused {paused_s:.2f} s" if paused else ""))
        return 200, {"id": tid, "name": name, "size": size, "sha256": sha256,
                     "paused": [u["name"] for u in paused], "paused_s": paused_s}

    @contextlib.contextmanager
    def _paused(self, name: str, pausing: bool, paused: list[dict], timed: dict):
        """With `pausing`, the running containers using volume `name` paused (each added to
        `paused` once it is) for the block, then resumed: every one, whatever happened;
        timed["paused_s"]: how long the first was paused."""
        began = time.monotonic()
        try:
            if pausing:
                for user in self.users(name):
                    if user["running"]:
                        self.engine.pause_container(user["id"])
                        paused.append(user)
            yield
        finally:
            if paused:
                timed["paused_s"] = time.monotonic() - began
            for user in paused:
                try:
                    self.engine.unpause_container(user["id"])
                except DockerError as e:
                    say(f"could not resume {user['name']} after packing {name}: {e.message}")

    def resume_left_paused(self) -> list[str]:
        """The application's containers an export left paused (its agent was killed in the
        middle of one: only an export pauses them), resumed: run once at the agent's start,
        so a store frozen by a killed agent is back without anyone. Their names."""
        resumed = []
        for c in self.engine.container_list():
            if c.get("State") == "paused" and APP_LABEL in (c.get("Labels") or {}):
                name = ([n.lstrip("/") for n in c.get("Names") or []] or [c["Id"][:12]])[0]
                self.engine.unpause_container(c["Id"])
                say(f"resumed {name}: an export that did not finish had paused it")
                resumed.append(name)
        return resumed

    def _pack(self, name: str, tid: str, around_read=contextlib.nullcontext) -> tuple:
        """The volume's tar into the staged file `tid`: (bytes, sha256). `around_read()`
        (a context) holds while the files are read, and only then (the helper container
        is made before and removed after)."""
        digest, size = hashlib.sha256(), 0
        try:
            with open(self.staging.path(tid), "wb") as f, \
                    self.engine.volume_holder(name, True, tid) as holder, around_read():
                for chunk in self.engine.read_archive(holder, transfers.CHUNK_BYTES):
                    f.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        except OSError as e:  # the disk is full, most likely
            raise ApiError(507, f"cannot stage volume {name}: {e}") from e
        return size, digest.hexdigest()

    def _staging(self, call):
        try:
            return call()
        except OSError as e:
            raise ApiError(500, f"the staging folder {self.staging.folder}: {e}") from e

    # --- the staged files ------------------------------------------------------------------------

    def new_transfer(self, query: dict, body) -> tuple:
        """An empty staged file, for a copy to write into: {"id"}."""
        return 200, {"id": self._staging(self.staging.create)}

    def read(self, query: dict, body) -> tuple:
        """?offset=N (0) &length=L (to the end): the staged bytes from N."""
        tid = transfers.transfer_id(one(query, "id"))
        offset = transfers.offset_of(one(query, "offset"), 0)
        length = one(query, "length")
        length = None if length is None else transfers.offset_of(length)
        chunks, count = self.staging.reader(tid, offset, length)
        size = self.staging.size(tid)
        return 200, Download(chunks, count, {"X-Transfer-Size": str(size)})

    def size(self, query: dict, body) -> tuple:
        """How many bytes the staged file holds, and whether a write still holds it (a
        broken one ends when the server sees its connection gone): where a copy goes on
        from, once it is not busy."""
        tid = transfers.transfer_id(one(query, "id"))
        busy = self.staging.busy(tid)
        return 200, {"id": tid, "size": self.staging.size(tid), "busy": busy}

    def writer(self, query: dict):
        tid = transfers.transfer_id(one(query, "id"))
        return self.staging.writer(tid, transfers.offset_of(one(query, "offset")))

    def delete_transfer(self, query: dict, body) -> tuple:
        tid = transfers.transfer_id(one(query, "id"))
        return 200, {"id": tid, "removed": self.staging.delete(tid)}

    # --- import ----------------------------------------------------------------------------------

    def import_(self, query: dict, body) -> tuple:
        """?name=V&id=I&sha256=H, {"labels"}: the staged tar, checked, into a new volume V (or
        an empty one). A sha256 that differs or a member that would land outside the volume
        removes the staged file (422: copy again); nothing else changes then."""
        name = transfers.volume_name(one(query, "name"))
        tid = transfers.transfer_id(one(query, "id"))
        expected = transfers.sha256_hex(one(query, "sha256"))
        labels = transfers.volume_labels(body)
        with self.importing, self.staging.writer(tid, self.staging.size(tid)) as staged:
            self._check(tid, expected)
            created = self._target(name, labels)
            try:
                with open(self.staging.path(tid), "rb") as tar, \
                        self.engine.volume_holder(name, False, tid) as holder:
                    self.engine.write_archive(holder, tar)
            except BaseException:
                if created:
                    self.engine.remove_volume(name)
                raise
            size = staged.size
        self.staging.delete(tid)
        say(f"imported volume {name}: {size} bytes from transfer {tid}")
        return 200, {"name": name, "sha256": expected, "size": size}

    def _check(self, tid: str, expected: str) -> None:
        got = self._staging(lambda: self.staging.sha256(tid))
        if got != expected:
            self.staging.delete(tid)
            raise ApiError(422, f"the staged file's sha256 is {got}, not {expected}: it was "
                                "removed; copy again", sha256=got)
        with open(self.staging.path(tid), "rb") as f:
            problems = transfers.tar_problems(f)
        if problems:
            self.staging.delete(tid)
            raise ApiError(422, "the archive has members that do not belong in a volume "
                                "(it was removed): " + "; ".join(problems), problems=problems)

    def _target(self, name: str, labels: dict) -> bool:
        """Make the volume (True), or use an existing empty one no container uses (False)."""
        if self.engine.volume(name) is None:
            self.engine.create_volume(name, labels)
            return True
        users = self.users(name)
        if users:
            raise ApiError(409, f"volume {name} exists and is used by "
                                f"{', '.join(u['name'] for u in users)}", containers=users)
        with self.engine.volume_holder(name, True, "check") as holder:
            entries = self.engine.first_entries(holder, 2)
        if [e for e in entries if e not in (".", "./")]:
            raise ApiError(409, f"volume {name} exists and is not empty: remove it first "
                                "(DELETE /v1/volumes) or import under another name")
        return False


def staging_folder(settings) -> Staging:
    """The staging folder of the settings; its old files removed now."""
    staging = Staging(settings.transfers_dir)
    if os.path.isdir(staging.folder):
        for name in staging.sweep():
            say(f"removed the staged file {name} (older than a day)")
    return staging
