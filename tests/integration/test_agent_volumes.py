"""A volume's copy through the real agent image on this engine (docs/agent.md, "Volumes"): an
application's volume with a few files (one of 5 MiB of random bytes, a symlink, a file of
another owner) exported, streamed by the portal's client into a second volume with the
connection broken half way (resumed from what the target held), the files byte for byte the
same; a wrong sha256 and an archive with `../` refused with nothing changed; an export
refused while a running container uses the volume. One agent plays both servers. And the
application networks this engine holds, as `dragonball remove` asks for them.

Everything made here carries support.LABELS (the volumes too) and is removed on leaving."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import time

import docker
import pytest

from agent_lab import agent_container, answering_client, labelled_container, write_agent_pem
from dragonball.agent_client import AgentError
from dragonball.volume_copy import VolumeCopyFailed, copy_volume
from support import LABELS, RUN_ID, TEST_LABEL

APP = f"dbtest-vol-{RUN_ID}"
SOURCE = f"{APP}_store_storage.1"
VOLUME_LABELS = {**LABELS, "io.dragonball.app": APP, "io.dragonball.service": "store",
                 "io.dragonball.slot": "store-1"}
FILL = ("mkdir -p /v/sub && head -c 5242880 /dev/urandom > /v/random.bin && "
        "echo hello > /v/sub/a.txt && ln -s sub/a.txt /v/link && "
        "echo secret > /v/owned && chown 999:999 /v/owned && chmod 600 /v/owned")
#: every entry's path, type, size, mode, owner and link, and each file's sha256
DESCRIBE = ("cd /v && find . -printf '%p %y %s %m %u:%g %l\\n' | sort && "
            "find . -type f -exec sha256sum {} + | sort -k 2")


@pytest.fixture(scope="module")
def volumes(docker_client):
    """The names of the volumes made here, all removed at the end (and whoever uses them)."""
    made: list[str] = []
    yield made
    for name in made + [f"dbtest-transfers-{RUN_ID}"]:
        for c in docker_client.containers.list(all=True, filters={"volume": name}):
            c.remove(force=True)
        try:
            docker_client.volumes.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture(scope="module")
def agents(docker_client, agent_image, volumes, tmp_path_factory):
    pem = write_agent_pem(tmp_path_factory.mktemp("agent-volumes"))
    staging = docker_client.volumes.create(f"dbtest-transfers-{RUN_ID}", labels=LABELS)
    with agent_container(docker_client, agent_image, pem, f"dbtest-agent-vol-{RUN_ID}",
                         {staging.name: {"bind": "/host/transfers", "mode": "rw"}}) as c, \
            answering_client(pem, c, timeout=10) as client:
        client.staging = staging.name
        yield client


@pytest.fixture(scope="module")
def source(docker_client, base_image, volumes):
    docker_client.volumes.create(SOURCE, labels=VOLUME_LABELS)
    volumes.append(SOURCE)
    run(docker_client, base_image, FILL, {SOURCE: "/v"})
    return SOURCE


def run(docker_client, image: str, script: str, mounts: dict) -> str:
    out = docker_client.containers.run(
        image, ["-c", script], entrypoint=["sh"], remove=True, labels=LABELS,
        network_disabled=True, volumes={n: {"bind": d, "mode": "rw"} for n, d in mounts.items()})
    return out.decode()


def describe(docker_client, image: str, name: str) -> str:
    return run(docker_client, image, DESCRIBE, {name: "/v"})


def staged_files(docker_client, image: str, staging: str) -> str:
    return run(docker_client, image, "ls /s", {staging: "/s"}).strip()


def test_a_copy_survives_a_broken_connection_and_is_byte_for_byte_the_same(
        agents, source, volumes, docker_client, base_image, monkeypatch):
    target = f"{APP}_store_storage.2"
    volumes.append(target)
    read, calls = agents.read_transfer, []

    def breaking(address, tid, offset, length=None):  # the first read breaks after 2.5 MB
        calls.append(offset)
        got = 0
        for chunk in read(address, tid, offset, length):
            yield chunk
            got += len(chunk)
            if len(calls) == 1 and got >= 2_500_000:
                raise AgentError("the connection broke (played)")
    monkeypatch.setattr(agents, "read_transfer", breaking)
    seen: list = []
    done = copy_volume(agents, "127.0.0.1", "127.0.0.1", source, VOLUME_LABELS,
                       lambda d, t: seen.append((d, t)), target_name=target,
                       pause=lambda s: time.sleep(min(s, 0.2)))
    # resumed from what the target holds (at most what was read before the break), not from 0
    assert len(calls) == 2 and 0 < calls[1] <= 2_500_000 + 1_048_576 and calls[1] < done["size"]
    assert seen[-1] == (done["size"], done["size"])
    before, after = describe(docker_client, base_image, source), \
        describe(docker_client, base_image, target)
    assert after == before and "./random.bin f 5242880" in after
    assert "./owned f 7 600 999:999" in after and "./link l 9 777 root:root sub/a.txt" in after
    assert docker_client.volumes.get(target).attrs["Labels"] == VOLUME_LABELS
    assert staged_files(docker_client, base_image, agents.staging) == ""  # both removed
    listed = {v["name"]: v for v in agents.volumes("127.0.0.1", sizes=True)}
    assert listed[target]["slot"] == "store-1" and listed[target]["containers"] == []
    assert listed[target]["size"] >= 5242880 and listed[source]["in_use"] is False


def test_the_copy_rate_of_5_mib(agents, source, volumes, docker_client, base_image):
    target = f"{APP}_store_storage.3"
    volumes.append(target)
    started = time.monotonic()
    done = copy_volume(agents, "127.0.0.1", "127.0.0.1", source, VOLUME_LABELS,
                       target_name=target)
    seconds = time.monotonic() - started
    print(f"\ncopied {done['size']} bytes in {seconds:.2f} s: "
          f"{done['size'] / seconds / 1e6:.1f} MB/s (export, stream, check, extract)")
    assert agents.delete_volume("127.0.0.1", target)["removed"] is True
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(target)


def staged_copy(agents, data: bytes) -> str:
    tid = agents.new_transfer("127.0.0.1")
    agents.write_transfer("127.0.0.1", tid, 0, [data])
    return tid


def test_a_wrong_sha256_or_a_tar_that_climbs_out_changes_nothing(agents, source, volumes,
                                                                 docker_client, base_image):
    target = f"{APP}_store_storage.4"
    volumes.append(target)
    exported = agents.export_volume("127.0.0.1", source)
    data = b"".join(agents.read_transfer("127.0.0.1", exported["id"]))
    agents.delete_transfer("127.0.0.1", exported["id"])
    assert hashlib.sha256(data).hexdigest() == exported["sha256"]
    tid = staged_copy(agents, data)
    with pytest.raises(AgentError) as wrong:
        agents.import_volume("127.0.0.1", target, tid, "0" * 64, VOLUME_LABELS)
    assert wrong.value.status == 422 and "copy again" in wrong.value.message
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("../../../../escape")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    tid = staged_copy(agents, out.getvalue())
    with pytest.raises(AgentError) as climbing:
        agents.import_volume("127.0.0.1", target, tid, hashlib.sha256(out.getvalue())
                             .hexdigest(), VOLUME_LABELS)
    assert climbing.value.status == 422 and "climbs out" in climbing.value.message
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(target)
    assert staged_files(docker_client, base_image, agents.staging) == ""


def test_export_is_refused_while_a_running_container_uses_the_volume(
        agents, source, docker_client, base_image, volumes):
    with labelled_container(docker_client, base_image, entrypoint=["sleep"],
                            command=["300"], network_disabled=True,
                            volumes={source: {"bind": "/v", "mode": "rw"}}) as user:
        with pytest.raises(VolumeCopyFailed) as busy:
            copy_volume(agents, "127.0.0.1", "127.0.0.1", source, VOLUME_LABELS,
                        target_name=f"{APP}_store_storage.5")
        assert busy.value.stage == "export" and busy.value.status == 409
        assert user.name in busy.value.message and "untouched" in busy.value.hint
        listed = {v["name"]: v for v in agents.volumes("127.0.0.1")}
        assert listed[source]["in_use"] is True
        with pytest.raises(AgentError) as used:
            agents.delete_volume("127.0.0.1", source)
        assert used.value.status == 409
    assert staged_files(docker_client, base_image, agents.staging) == ""


def test_an_upgrade_s_snapshot_pauses_the_running_user_and_resumes_it(
        agents, source, docker_client, base_image, volumes):
    """?pause=1 (the upgrade's backup, upgrade/snapshots.py): the running container using
    the volume is frozen while the files are read, running again after, and the copy is
    the volume's, byte for byte."""
    with labelled_container(docker_client, base_image, entrypoint=["sleep"],
                            command=["300"], network_disabled=True,
                            volumes={source: {"bind": "/v", "mode": "rw"}}) as user:
        done = agents.export_volume("127.0.0.1", source, pause=True)
        try:
            assert done["paused"] == [user.name] and 0 <= done["paused_s"] < 60
            user.reload()
            assert user.status == "running", user.status
            data = b"".join(agents.read_transfer("127.0.0.1", done["id"]))
        finally:
            agents.delete_transfer("127.0.0.1", done["id"])
    assert hashlib.sha256(data).hexdigest() == done["sha256"] and len(data) == done["size"]
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "./random.bin" in names and "./sub/a.txt" in names, names[:10]
    # put back as docs/upgrade.md ("The backup") says, over a volume with other files
    target = f"{APP}_store_storage.7"
    docker_client.volumes.create(target, labels=VOLUME_LABELS)
    volumes.append(target)
    run(docker_client, base_image, "echo stale > /v/stale && mkdir /v/sub", {target: "/v"})
    restore = subprocess.run(
        ["/usr/bin/docker", "run", "--rm", "-i", "--label", f"{TEST_LABEL}={RUN_ID}",
         "--network", "none", "-v", f"{target}:/v", "--entrypoint", "sh", base_image, "-c",
         "find /v -mindepth 1 -delete && tar -x --numeric-owner -C /v"],
        input=data, capture_output=True)
    assert restore.returncode == 0, restore.stderr.decode()
    assert describe(docker_client, base_image, target) == describe(docker_client, base_image,
                                                                  source)


def test_the_app_networks_held_here_are_listed_with_their_containers(
        agents, docker_client, base_image):
    """GET /v1/networks: the labelled networks only, with how many containers are attached
    (what `dragonball remove` waits on, on every server, before it says the network went)."""
    mine = docker_client.networks.create(f"{APP}_net", labels={**LABELS,
                                                                "io.dragonball.app": APP})
    other = docker_client.networks.create(f"dbtest-plain-{RUN_ID}", labels=LABELS)
    try:
        with labelled_container(docker_client, base_image, entrypoint=["sleep"],
                                command=["300"], network=mine.name):
            listed = {n["name"]: n for n in agents.networks("127.0.0.1")}
            assert listed[mine.name]["app"] == APP and listed[mine.name]["containers"] == 1
            assert listed[mine.name]["id"] == mine.id and other.name not in listed
        assert {n["name"]: n for n in agents.networks("127.0.0.1")}[mine.name][
            "containers"] == 0
        mine.remove()
        assert mine.name not in [n["name"] for n in agents.networks("127.0.0.1")]
    finally:
        for network in (mine, other):
            try:
                network.remove()
            except docker.errors.NotFound:
                pass
