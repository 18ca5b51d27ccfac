"""The push executor (dragonball.registry.push) against an in-memory registry: order, streaming, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import threading

import pytest

from dragonball.registry import PushProgress, RegistryError, push_archive
from dragonball.registry.plan import Action
from dragonball.release.sections import SectionFile


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclasses.dataclass
class Image:
    ref: str
    repository: str
    tag: str
    manifest: dict
    config: dict
    layers: list


class MemoryArchive:
    """An ImageArchive's interface over blobs laid end to end in one file object."""

    def __init__(self, images: dict) -> None:
        self.raw, self.offsets, self.images = io.BytesIO(), {}, []
        for ref, blobs in images.items():
            refs = [self._add(b) for b in blobs]
            manifest = self._add(f"manifest of {ref}: {[r['digest'] for r in refs]}".encode())
            repository, _, tag = ref.rpartition(":")
            self.images.append(Image(ref, repository, tag, manifest, refs[0], refs[1:]))
        self.file = io.BufferedReader(io.BytesIO(self.raw.getvalue()))

    def _add(self, data: bytes) -> dict:
        d = digest(data)
        if d not in self.offsets:
            self.offsets[d] = (self.raw.tell(), len(data))
            self.raw.write(data)
        return {"digest": d, "size": len(data)}

    def blob(self, d: str) -> SectionFile:
        return SectionFile(self.file, *self.offsets[d])

    def blob_bytes(self, d: str) -> bytes:
        return self.blob(d).read()


class MemoryRegistry:
    """The client interface push_archive uses, keeping blobs per repository; records calls."""

    def __init__(self, fail_upload_of: str | None = None, refuse_mounts: bool = False,
                 read_size: int = 16384) -> None:
        self.blobs, self.tags, self.calls, self.read_size = {}, {}, [], read_size
        self.reads: list[int] = []
        self.fail_upload_of, self.refuse_mounts = fail_upload_of, refuse_mounts
        self.lock = threading.Lock()

    def _call(self, *call) -> None:
        with self.lock:
            self.calls.append(call)

    def blob_exists(self, repository, d):
        return d in self.blobs.get(repository, {})

    def tag_digest(self, repository, tag):
        return self.tags.get((repository, tag), (None,))[0]

    def start_upload(self, repository):
        return f"upload:{repository}"

    def finish_upload(self, location, d, body, size):
        if d == self.fail_upload_of:
            raise RegistryError(f"upload of {d} refused", "test")
        assert len(body) == size
        data = bytearray()
        while chunk := body.read(self.read_size):
            self.reads.append(len(chunk))
            data += chunk
        assert digest(data) == d and len(data) == size
        repository = location.split(":", 1)[1]
        self._call("upload", repository, d)
        self.blobs.setdefault(repository, {})[d] = data

    def mount_blob(self, repository, d, source):
        if self.refuse_mounts:
            return f"upload:{repository}"
        assert d in self.blobs[source], "a mount ran before its source was uploaded"
        self._call("mount", repository, d)
        self.blobs.setdefault(repository, {})[d] = self.blobs[source][d]
        return None

    def put_manifest(self, repository, tag, data):
        image_blobs = [b for b in self.blobs.get(repository, {})]
        assert image_blobs, "a manifest went before its blobs"
        self._call("manifest", repository, tag)
        self.tags[(repository, tag)] = (digest(data), data)
        return digest(data)


@pytest.fixture
def archive():
    base = b"B" * (3 << 20)  # 3 MiB: more than one read of the archive
    return MemoryArchive({"n/web:1": [b"web config", base, b"web layer"],
                          "n/api:1": [b"api config", base, b"api layer"]})


class Recorder(PushProgress):
    def __init__(self):
        self.bytes, self.blobs, self.manifests, self.plan = 0, [], [], None
        self.lock = threading.Lock()

    def planned(self, plan):
        self.plan = plan

    def advanced(self, n):
        with self.lock:
            self.bytes += n

    def blob_done(self, step):
        self.blobs.append(step)

    def manifest_done(self, step):
        self.manifests.append(step.ref)


def test_push_uploads_once_mounts_shared_layer_then_manifests(archive):
    registry, progress = MemoryRegistry(), Recorder()
    result = push_archive(archive, registry, progress=progress)
    kinds = [c[0] for c in registry.calls]
    assert kinds.count("upload") == 5 and kinds.count("mount") == 1
    assert kinds[-2:] == ["manifest", "manifest"]
    assert max(i for i, k in enumerate(kinds) if k == "upload") < kinds.index("mount")
    assert progress.bytes == result.plan.upload_bytes == sum(
        s.size for s in result.plan.steps(Action.UPLOAD))
    assert sorted(progress.manifests) == ["n/api:1", "n/web:1"]
    for image in archive.images:
        assert registry.tags[(image.repository, image.tag)][1] == \
            archive.blob_bytes(image.manifest["digest"])


def test_bodies_are_streamed_in_the_sizes_asked_for(archive):
    registry = MemoryRegistry(read_size=1000)
    push_archive(archive, registry, workers=4)
    assert max(registry.reads) == 1000


def test_second_push_sends_nothing(archive):
    registry = MemoryRegistry()
    push_archive(archive, registry)
    registry.calls.clear()
    result = push_archive(archive, registry)
    assert registry.calls == []
    assert result.plan.nothing_to_do


def test_only_the_refs_asked_for(archive):
    registry = MemoryRegistry()
    push_archive(archive, registry, refs=["n/api:1"])
    assert set(registry.blobs) == {"n/api"}


def test_an_unknown_ref_is_refused_before_anything_is_sent(archive):
    registry = MemoryRegistry()
    with pytest.raises(RegistryError, match="no image n/nope:1"):
        push_archive(archive, registry, refs=["n/nope:1"])
    assert registry.calls == []


def test_a_declined_mount_falls_back_to_an_upload(archive):
    registry = MemoryRegistry(refuse_mounts=True)
    push_archive(archive, registry)
    assert [c[0] for c in registry.calls].count("upload") == 6


def test_a_failed_upload_is_the_error_raised_and_no_manifest_is_put(archive):
    failing = archive.images[0].layers[1]["digest"]
    registry = MemoryRegistry(fail_upload_of=failing)
    with pytest.raises(RegistryError, match="refused"):
        push_archive(archive, registry, workers=2)
    assert "manifest" not in [c[0] for c in registry.calls]


def test_a_plain_callable_gets_the_byte_counts(archive):
    counts = []
    result = push_archive(archive, MemoryRegistry(), progress=counts.append)
    assert sum(counts) == result.plan.upload_bytes > 0
