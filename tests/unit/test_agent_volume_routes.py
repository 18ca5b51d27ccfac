"""The agent's volume calls without an engine: the checks of names, ids, offsets and labels,
the tar members refused before an extraction, the staging folder (offsets, the lock, the
limit, the sweep); and through the server in this process with the engine played, the
portal's copy (dragonball.volume_copy) with a broken connection, a wrong sha256, an archive
that climbs out, a volume in use. The real engine: tests/integration/test_agent_volumes.py."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tarfile
import time

import pytest

from dragonball import volume_copy
from dragonball.agent_client import AgentError
from support import ROOT
from test_agent_server import agentd, client, pem, settings_of  # noqa: F401 (fixtures)

MODULE = ROOT / "base_images" / "agent" / "agent" / "module"
VOLUME = "notes_store_storage.1"
LABELS = {"io.dragonball.app": "notes", "io.dragonball.service": "store",
          "io.dragonball.slot": "store-1"}


@pytest.fixture(scope="module")
def mods():
    sys.path.insert(0, str(MODULE))
    try:
        import agent_api
        import agent_transfers
        yield agent_transfers, agent_api.ApiError
    finally:
        sys.path.remove(str(MODULE))


def tar_of(*members) -> bytes:
    """A tar of (name, type, data or linkname) members."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data
            tar.addfile(info)
    return out.getvalue()


GOOD = tar_of((".", tarfile.DIRTYPE, None), ("./a.txt", tarfile.REGTYPE, b"hello"),
              ("./sub", tarfile.DIRTYPE, None), ("./sub/b", tarfile.REGTYPE, b"x" * 3000),
              ("./l", tarfile.SYMTYPE, "/etc/passwd"), ("./h", tarfile.LNKTYPE, "./a.txt"))


# --- checks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, ok", [
    ("notes_store_storage.1", True), ("a", True), ("A9_-.", True), ("x" * 128, True),
    ("x" * 129, False), ("", False), (".hidden", False), ("-x", False), ("a/b", False),
    ("../a", False), ("a b", False), ("a\n", False), (None, False), ("é", False)])
def test_volume_names(mods, name, ok):
    transfers, ApiError = mods
    if ok:
        assert transfers.volume_name(name) == name
    else:
        with pytest.raises(ApiError) as refused:
            transfers.volume_name(name)
        assert refused.value.status == 400


@pytest.mark.parametrize("value, ok", [("0" * 32, True), ("ab" * 16, True), ("AB" * 16, False),
                                       ("0" * 31, False), ("0" * 33, False), ("../x", False)])
def test_transfer_ids_are_32_lowercase_hex_digits(mods, value, ok):
    transfers, ApiError = mods
    if ok:
        assert transfers.transfer_id(value) == value
    else:
        with pytest.raises(ApiError):
            transfers.transfer_id(value)


@pytest.mark.parametrize("value, ok", [("0", True), ("5242880", True), ("-1", False),
                                       ("+1", False), (" 1", False), ("1e3", False),
                                       ("١", False), ("9" * 19, False), ("", False)])
def test_offsets_are_plain_numbers(mods, value, ok):
    transfers, ApiError = mods
    if ok:
        assert transfers.offset_of(value) == int(value)
    else:
        with pytest.raises(ApiError):
            transfers.offset_of(value)
    assert transfers.offset_of(None, 0) == 0


def test_labels_need_the_app_and_every_problem_is_listed(mods):
    transfers, ApiError = mods
    assert transfers.volume_labels({"labels": LABELS}) == LABELS
    with pytest.raises(ApiError) as refused:
        transfers.volume_labels({"labels": {"bad key": "x", "io.dragonball.service": 3}})
    assert len(refused.value.extra["problems"]) == 3
    with pytest.raises(ApiError):
        transfers.volume_labels({"labels": ["io.dragonball.app"]})


# --- tar members ----------------------------------------------------------------------------

def test_a_volumes_tar_as_the_engine_writes_it_passes(mods):
    transfers, _ = mods
    assert transfers.tar_problems(io.BytesIO(GOOD)) == []


@pytest.mark.parametrize("members, problem", [
    ([("../x", tarfile.REGTYPE, b"1")], "climbs out"),
    ([("./a/../../x", tarfile.REGTYPE, b"1")], "climbs out"),
    ([("/etc/cron.d/x", tarfile.REGTYPE, b"1")], "absolute"),
    ([("./dev", tarfile.CHRTYPE, None)], "device"),
    ([("./disk", tarfile.BLKTYPE, None)], "device"),
    ([("./fifo", tarfile.FIFOTYPE, None)], "FIFO"),
    ([("./l", tarfile.SYMTYPE, "/etc"), ("./l/passwd", tarfile.REGTYPE, b"1")],
     "through a symbolic link"),
    ([("./h", tarfile.LNKTYPE, "../../etc/shadow")], "hard link out"),
    ([("./h", tarfile.LNKTYPE, "/etc/shadow")], "hard link out"),
])
def test_members_that_would_land_outside_the_volume_are_refused(mods, members, problem):
    transfers, _ = mods
    found = transfers.tar_problems(io.BytesIO(tar_of((".", tarfile.DIRTYPE, None), *members)))
    assert len(found) == 1 and problem in found[0], found


def test_bytes_that_are_no_tar_are_a_problem(mods):
    transfers, _ = mods
    assert "not a tar" in transfers.tar_problems(io.BytesIO(b"\x01" * 2048))[0]


# --- the staging folder -----------------------------------------------------------------------

@pytest.fixture
def staging(mods, tmp_path):
    transfers, _ = mods
    clock = [1_000_000.0]
    found = transfers.Staging(str(tmp_path), clock=lambda: clock[0])
    found.clock_value = clock
    return found


def test_writes_go_at_the_staged_size_only_and_a_second_writer_waits(mods, staging):
    _, ApiError = mods
    tid = staging.create()
    with staging.writer(tid, 0) as w:
        w.write(b"abc")
        with pytest.raises(ApiError) as busy:
            staging.writer(tid, 3)
        assert busy.value.status == 409 and busy.value.extra == {"busy": True}
        assert w.finish() == (200, {"id": tid, "size": 3})
    for offset in (0, 2, 4):
        with pytest.raises(ApiError) as refused:
            staging.writer(tid, offset)
        assert refused.value.status == 409 and refused.value.extra == {"size": 3}
    with staging.writer(tid, 3) as w:
        w.write(b"def")
    chunks, count = staging.reader(tid, 2, 3)
    assert count == 3 and b"".join(chunks) == b"cde"
    assert b"".join(staging.reader(tid, 6, None)[0]) == b""
    with pytest.raises(ApiError) as past:
        staging.reader(tid, 7, None)
    assert past.value.status == 416
    assert staging.sha256(tid) == hashlib.sha256(b"abcdef").hexdigest()


def test_one_write_is_bounded_and_what_arrived_stays(mods, staging):
    _, ApiError = mods
    tid = staging.create()
    with staging.writer(tid, 0, limit=4) as w:
        w.write(b"abc")
        with pytest.raises(ApiError) as big:
            w.write(b"de")
    assert big.value.status == 413 and staging.size(tid) == 3


def test_unknown_transfers_are_404_and_old_files_are_swept(mods, staging):
    _, ApiError = mods
    with pytest.raises(ApiError) as missing:
        staging.writer("0" * 32, 0)
    assert missing.value.status == 404
    old, new = staging.create(), staging.create()
    os.utime(staging.path(old), (0, staging.clock_value[0] - 25 * 3600))
    assert staging.sweep() == [f"{old}.tar"]
    assert staging.size(new) == 0 and not staging.delete(old) and staging.delete(new)


# --- through the server, the engine played --------------------------------------------------

class PlayedVolumes:
    """agent_engine.Engine's volume calls over dicts: a volume's files are a tar's bytes."""

    def __init__(self) -> None:
        self.labels = {VOLUME: LABELS, "portainer_data": {}}
        self.files = {VOLUME: GOOD, "portainer_data": b""}
        self.users = [{"Id": "c" * 64, "Names": ["/notes_store.1.k3"], "State": "exited",
                       "Mounts": [{"Type": "volume", "Name": VOLUME}]}]
        self.holders: dict = {}
        self.log: list = []             # (pause|unpause, container, during a read?)
        self.unpause_fails = None       # a DockerError the unpause raises
        self.read_fails = None          # a DockerError reading the archive raises

    def volumes(self, label):
        return [self.volume(n) for n, labels in self.labels.items() if label in labels]

    def volume(self, name):
        return {"Name": name, "Labels": self.labels[name],
                "CreatedAt": "2026-12-05T06:00:00Z"} if name in self.labels else None

    def container_list(self):
        return self.users

    def networks(self, label):
        found = [{"Name": "notes_net", "Id": "n" * 25, "Scope": "swarm",
                  "Labels": {"io.dragonball.app": "notes"}, "Containers": {"c" * 64: {}}},
                 {"Name": "bridge", "Id": "b" * 64, "Scope": "local", "Labels": {}}]
        return [n for n in found if label in n["Labels"]]

    def volume_sizes(self):
        return {name: len(data) for name, data in self.files.items()}

    def create_volume(self, name, labels):
        self.labels[name], self.files[name] = labels, b""

    def remove_volume(self, name):
        del self.labels[name], self.files[name]

    def remove_container(self, container_id):
        self.users = [u for u in self.users if u["Id"] != container_id]

    def pause_container(self, container_id):
        self.log.append(("pause", container_id, bool(self.holders)))
        self._user(container_id)["State"] = "paused"

    def unpause_container(self, container_id):
        self.log.append(("unpause", container_id, bool(self.holders)))
        self._user(container_id)["State"] = "running"
        if self.unpause_fails:
            raise self.unpause_fails

    def _user(self, container_id):
        return next(u for u in self.users if u["Id"] == container_id)

    @contextlib.contextmanager
    def volume_holder(self, volume, read_only, transfer_id):
        self.holders[transfer_id] = volume
        yield transfer_id
        del self.holders[transfer_id]

    def read_archive(self, holder, chunk_size):
        self.log.append(("read", holder, [u["State"] for u in self.users]))
        if self.read_fails:
            raise self.read_fails
        data = self.files[self.holders[holder]]
        yield from (data[i:i + chunk_size] for i in range(0, len(data), chunk_size))

    def first_entries(self, holder, count):
        data = self.files[self.holders[holder]]
        if not data:
            return ["."]
        return [m.name for m in tarfile.open(fileobj=io.BytesIO(data)).getmembers()][:count]

    def write_archive(self, holder, tar_file):
        self.files[self.holders[holder]] = tar_file.read()


@pytest.fixture
def volume_agent(agentd, pem, tmp_path):  # noqa: F811 (fixtures)
    (tmp_path / "transfers").mkdir()
    engine = PlayedVolumes()
    server = agentd.agent_server.Agent(
        settings_of(agentd, pem, tmp_path, transfers_dir=str(tmp_path / "transfers")),
        engine=engine).start()
    server.engine, server.staged = engine, tmp_path / "transfers"
    yield server
    server.stop()


def test_the_volumes_are_listed_with_who_uses_them(volume_agent, pem):  # noqa: F811
    with client(pem, volume_agent.port) as agents:
        listed = agents.volumes("127.0.0.1", sizes=True)
        assert [v["name"] for v in listed] == [VOLUME]  # portainer_data: not the app's
        assert listed[0]["app"] == "notes" and listed[0]["slot"] == "store-1"
        assert listed[0]["containers"] == [{"id": "c" * 64, "name": "notes_store.1.k3",
                                            "running": False, "task": False}]
        assert listed[0]["in_use"] is False and listed[0]["size"] == len(GOOD)
        assert agents.volumes("127.0.0.1")[0]["size"] is None


def test_the_app_networks_are_listed_with_their_containers(volume_agent, pem):  # noqa: F811
    with client(pem, volume_agent.port) as agents:
        assert agents.networks("127.0.0.1") == [{"name": "notes_net", "id": "n" * 25,
                                                 "app": "notes", "scope": "swarm",
                                                 "containers": 1}]


def test_a_copy_survives_a_broken_connection_and_cleans_up(
        volume_agent, pem, monkeypatch):  # noqa: F811
    with client(pem, volume_agent.port) as agents:
        read, calls = agents.read_transfer, []

        def breaking(address, tid, offset, length=None):
            calls.append((offset, length))
            for i, chunk in enumerate(read(address, tid, offset, length)):
                yield chunk
                if len(calls) == 1:
                    raise AgentError("the connection broke (played)")
        monkeypatch.setattr(agents, "read_transfer", breaking)
        monkeypatch.setattr(agents, "_streamed", lambda answer, a, p:
                            answer.iter_content(1024))  # small chunks: a break mid-way
        seen = []
        done = volume_copy.copy_volume(agents, "127.0.0.1", "127.0.0.1", VOLUME, LABELS,
                                       lambda d, t: seen.append(d), target_name="copy.1",
                                       pause=lambda s: time.sleep(min(s, 0.2)))
    assert volume_agent.engine.files["copy.1"] == GOOD
    assert volume_agent.engine.labels["copy.1"] == LABELS
    assert done["sha256"] == hashlib.sha256(GOOD).hexdigest() and done["size"] == len(GOOD)
    assert calls[0] == (0, len(GOOD)) and len(calls) >= 2 and seen[-1] == len(GOOD)
    assert list(volume_agent.staged.iterdir()) == []  # both staged files removed


def test_a_wrong_sha256_or_members_out_of_the_volume_change_nothing(
        volume_agent, pem):  # noqa: F811
    engine = volume_agent.engine
    with client(pem, volume_agent.port) as agents:
        for data, status in ((GOOD, "sha"), (tar_of(("../escape", tarfile.REGTYPE, b"x")),
                                              "members")):
            tid = agents.new_transfer("127.0.0.1")
            agents.write_transfer("127.0.0.1", tid, 0, [data])
            sha = "0" * 64 if status == "sha" else hashlib.sha256(data).hexdigest()
            with pytest.raises(AgentError) as refused:
                agents.import_volume("127.0.0.1", "copy.2", tid, sha, LABELS)
            assert refused.value.status == 422 and "copy.2" not in engine.labels
            assert list(volume_agent.staged.iterdir()) == []  # removed: copy again
        assert "climbs out" in refused.value.body["problems"][0]


def test_export_import_and_delete_refuse_a_volume_in_use(volume_agent, pem):  # noqa: F811
    engine = volume_agent.engine
    with client(pem, volume_agent.port) as agents:
        engine.users[0]["State"] = "running"
        with pytest.raises(volume_copy.VolumeCopyFailed) as busy:
            volume_copy.copy_volume(agents, "127.0.0.1", "127.0.0.1", VOLUME, LABELS)
        assert busy.value.stage == "export" and busy.value.status == 409
        assert "Stop the slot" in busy.value.hint and "untouched" in busy.value.hint
        with pytest.raises(AgentError) as used:
            agents.delete_volume("127.0.0.1", VOLUME)
        assert used.value.status == 409
        with pytest.raises(AgentError) as foreign:
            agents.export_volume("127.0.0.1", "portainer_data")
        assert foreign.value.status == 403
        tid = agents.new_transfer("127.0.0.1")
        agents.write_transfer("127.0.0.1", tid, 0, [GOOD])
        with pytest.raises(AgentError) as exists:  # it has data: never overwritten
            agents.import_volume("127.0.0.1", VOLUME, tid, hashlib.sha256(GOOD).hexdigest(),
                                 LABELS)
        assert exists.value.status == 409
        engine.users[0]["State"] = "exited"   # someone's own stopped container: kept
        with pytest.raises(AgentError) as held:
            agents.delete_volume("127.0.0.1", VOLUME)
        assert held.value.status == 409 and VOLUME in engine.labels
        # an ended Swarm task's container (Swarm's history) goes with the volume
        engine.users[0]["Labels"] = {"com.docker.swarm.task.id": "k3"}
        assert agents.delete_volume("127.0.0.1", VOLUME)["removed"] is True
        assert engine.users == [] and VOLUME not in engine.labels
        assert agents.delete_transfer("127.0.0.1", tid)["removed"] is True


@pytest.mark.parametrize("path", ["/v1/transfers/../x", "/v1/transfers/ABC",
                                  "/v1/volumes/export?name=../x", "/v1/transfers/" + "0" * 32])
def test_bad_names_and_ids_are_refused(volume_agent, pem, path):  # noqa: F811
    with client(pem, volume_agent.port) as agents:
        method = "POST" if "export" in path else "GET"
        answer = agents.session.request(method, agents.url("127.0.0.1", path), timeout=5)
    assert answer.status_code in (400, 404) and "error" in answer.json()


def test_a_backup_export_pauses_its_users_while_it_reads_and_resumes_them(
        volume_agent, pem, agentd):  # noqa: F811
    """An upgrade's snapshot (?pause=1): the running containers using the volume are paused
    only while its files are read (the helper container made before), then resumed, even
    when the read fails; without pause=1 the same export is refused (409)."""
    engine = volume_agent.engine
    engine.users[0]["State"] = "running"
    with client(pem, volume_agent.port) as agents:
        with pytest.raises(AgentError) as busy:
            agents.export_volume("127.0.0.1", VOLUME)
        assert busy.value.status == 409 and engine.log == []
        done = agents.export_volume("127.0.0.1", VOLUME, pause=True)
        assert done["paused"] == ["notes_store.1.k3"] and done["paused_s"] >= 0
        assert done["sha256"] == hashlib.sha256(GOOD).hexdigest()
        assert [e[0] for e in engine.log] == ["pause", "read", "unpause"]
        assert engine.log[1][2] == ["paused"] and engine.log[0][2] is True  # holder first
        assert engine.users[0]["State"] == "running"
        agents.delete_transfer("127.0.0.1", done["id"])
        engine.log.clear()
        engine.unpause_fails = agentd.agent_engine.DockerError(500, "played")
        again = agents.export_volume("127.0.0.1", VOLUME, pause=True)  # said in the log
        assert again["paused"] == ["notes_store.1.k3"]
        engine.unpause_fails, engine.log[:] = None, []
        agents.delete_transfer("127.0.0.1", again["id"])
        engine.read_fails = agentd.agent_engine.DockerError(500, "the read broke (played)")
        with pytest.raises(AgentError) as broke:
            agents.export_volume("127.0.0.1", VOLUME, pause=True)
        assert broke.value.status == 502
        assert [e[0] for e in engine.log] == ["pause", "read", "unpause"]
        assert engine.users[0]["State"] == "running"
    assert list(volume_agent.staged.iterdir()) == []     # the broken one's file removed


def test_containers_a_killed_export_left_paused_are_resumed_at_the_agent_s_start(
        volume_agent):
    """Only an export pauses an app's containers; an agent killed in the middle of one
    leaves its store frozen: the next agent resumes it when it starts (agent_daemon.serve),
    and leaves alone a paused container that is not an application's."""
    engine = volume_agent.engine
    engine.users = [
        {"Id": "a" * 64, "Names": ["/notes_store.1.k3"], "State": "paused",
         "Labels": {"io.dragonball.app": "notes"}, "Mounts": []},
        {"Id": "b" * 64, "Names": ["/someone_s"], "State": "paused", "Labels": {},
         "Mounts": []},
        {"Id": "c" * 64, "Names": ["/notes_api.1.x"], "State": "running",
         "Labels": {"io.dragonball.app": "notes"}, "Mounts": []}]
    assert volume_agent.volumes.resume_left_paused() == ["notes_store.1.k3"]
    assert [u["State"] for u in engine.users] == ["running", "paused", "running"]
    assert volume_agent.volumes.resume_left_paused() == []
