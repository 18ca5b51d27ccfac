"""The image archive of a release: registry-ready blobs, each stored once (docs/bin-format.md).

Layers come out of ``docker save`` uncompressed; each is hashed (its diff_id)
and gzip-compressed once, deterministically, into a cache keyed by diff_id, so
a rebuild compresses only the layers that changed. When every layer and
config of the release is cached already, ``docker save`` is skipped entirely.
Manifests are written here, byte for byte what the site uploads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import tarfile
import tempfile
import zlib

from dragonball.errors import BuildError

from builder import detar

log = logging.getLogger(__name__)

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CHUNK = 1 << 20
DEFAULT_LEVEL = 9
INDEX_SCHEMA = 1


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """An image in the build engine (`source`) and the name it has in the release (`ref`)."""

    source: str
    ref: str

    @property
    def repository(self) -> str:
        return self.ref.rpartition(":")[0]

    @property
    def tag(self) -> str:
        return self.ref.rpartition(":")[2]


@dataclasses.dataclass(frozen=True)
class Blob:
    digest: str
    size: int


class BlobCache:
    """Compressed layers and configs by digest, plus diff_id -> gzip blob, on disk."""

    def __init__(self, root: pathlib.Path, level: int = DEFAULT_LEVEL) -> None:
        self.root = root
        self.level = level
        for sub in ("blobs", "layers", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> pathlib.Path:
        return self.root / "blobs" / digest.replace(":", "-")

    def layer(self, diff_id: str) -> Blob | None:
        """The gzip blob of the layer `diff_id` at this level, if it was made before."""
        try:
            digest, size = self._layer_key(diff_id).read_text().split()
        except FileNotFoundError:
            return None
        return Blob(digest, int(size)) if self.path(digest).is_file() else None

    def config(self, digest: str) -> Blob | None:
        path = self.path(digest)
        return Blob(digest, path.stat().st_size) if path.is_file() else None

    def put_bytes(self, data: bytes) -> Blob:
        blob = Blob("sha256:" + hashlib.sha256(data).hexdigest(), len(data))
        _write_atomic(self.path(blob.digest), data, self.root / "tmp")
        return blob

    def put_layer(self, stream) -> tuple[str, Blob]:
        """Hash one uncompressed layer stream; compress it unless that layer is cached.

        The layer is spooled to disk while hashed (its diff_id is known only at
        the end of the stream), so an unchanged 170 MB base layer costs a copy,
        not a recompression.
        """
        raw = hashlib.sha256()
        with tempfile.TemporaryFile(dir=self.root / "tmp") as spool:
            while chunk := stream.read(CHUNK):
                raw.update(chunk)
                spool.write(chunk)
            diff_id = "sha256:" + raw.hexdigest()
            cached = self.layer(diff_id)
            if cached:
                return diff_id, cached
            spool.seek(0)
            blob = self._compress(spool)
        self._layer_key(diff_id).write_text(f"{blob.digest} {blob.size}\n")
        return diff_id, blob

    def _compress(self, source) -> Blob:
        packed = hashlib.sha256()
        zip_ = zlib.compressobj(self.level, zlib.DEFLATED, 31)  # 31: gzip, mtime 0, no name
        with tempfile.NamedTemporaryFile(dir=self.root / "tmp", delete=False) as out:
            while chunk := source.read(CHUNK):
                data = zip_.compress(chunk)
                packed.update(data)
                out.write(data)
            data = zip_.flush()
            packed.update(data)
            out.write(data)
            size = out.tell()
        blob = Blob("sha256:" + packed.hexdigest(), size)
        os.replace(out.name, self.path(blob.digest))
        return blob

    def _layer_key(self, diff_id: str) -> pathlib.Path:
        return self.root / "layers" / f"{diff_id.replace(':', '-')}.gz{self.level}"


def _write_atomic(path: pathlib.Path, data: bytes, tmp_dir: pathlib.Path) -> None:
    with tempfile.NamedTemporaryFile(dir=tmp_dir, delete=False) as out:
        out.write(data)
    os.replace(out.name, path)


def manifest_bytes(config: Blob, layers: list[Blob]) -> bytes:
    """The Docker v2 schema 2 manifest of an image (pure; exact bytes are uploaded)."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "size": config.size, "digest": config.digest},
        "layers": [{"mediaType": LAYER_TYPE, "size": b.size, "digest": b.digest}
                   for b in layers],
    }, indent=3).encode()


def cached_image(cache: BlobCache, inspect: dict) -> tuple[Blob, list] | None:
    """(config, [(diff_id, blob)]) when everything of an image is cached, else None."""
    config = cache.config(inspect["Id"])
    layers = [(diff_id, cache.layer(diff_id)) for diff_id in inspect["RootFS"]["Layers"]]
    if config is None or any(blob is None for _, blob in layers):
        return None
    return config, layers


def read_saved(stream, cache: BlobCache, on_layer) -> dict:
    """Consume a ``docker save`` stream into the cache; image ID -> (config, layers)."""
    layer_of, configs, manifest = {}, {}, None
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.name.endswith("/layer.tar"):
                layer_of[member.name] = cache.put_layer(tar.extractfile(member))
                on_layer(member.name, member.size, layer_of[member.name][1])
            elif member.name == "manifest.json":
                manifest = json.load(tar.extractfile(member))
            elif member.name.endswith(".json") and "/" not in member.name:
                configs[member.name] = cache.put_bytes(tar.extractfile(member).read())
    if manifest is None:
        raise BuildError("'docker save' gave no manifest.json", "check the engine's version")
    return {configs[entry["Config"]].digest: (configs[entry["Config"]],
                                               [layer_of[path] for path in entry["Layers"]])
            for entry in manifest}


def export_images(engine, sources: list[ImageSource], cache: BlobCache, out: pathlib.Path,
                  mtime: int, on_layer=lambda name, size, blob: None,
                  skip: set = frozenset()) -> dict:
    """Write images.tar for `sources` at `out`; return its index (the index.json data).
    Blobs in `skip` (digests an earlier release holds: `build.py app --since`) are listed in
    the index but left out of the archive; image manifests are always in it."""
    inspected = {s.source: engine.inspect_image(s.source) for s in sources}
    found = {i["Id"]: cached_image(cache, i) for i in inspected.values()}
    missing = sorted({s.source for s in sources if found[inspected[s.source]["Id"]] is None})
    if missing:
        with engine.save(missing) as stream:
            found.update(read_saved(stream, cache, on_layer))
    images, blobs = [], {}
    for source in sources:
        config, layers = found[inspected[source.source]["Id"]]
        manifest = cache.put_bytes(manifest_bytes(config, [blob for _, blob in layers]))
        for blob in (manifest, config, *(blob for _, blob in layers)):
            blobs[blob.digest] = blob
        images.append(_index_entry(source, manifest, config, layers))
    index = {"schema": INDEX_SCHEMA, "images": images}
    entries = [("index.json", json.dumps(index, indent=1, sort_keys=True).encode(), 0o644)]
    manifests = {i["manifest"]["digest"] for i in images}
    entries += [(f"blobs/sha256/{d.split(':')[1]}", cache.path(d), 0o644) for d in blobs
                if d not in skip or d in manifests]
    detar.write_tar(out, entries, mtime)
    return index


def _index_entry(source: ImageSource, manifest: Blob, config: Blob, layers: list) -> dict:
    return {"ref": source.ref, "repository": source.repository, "tag": source.tag,
            "manifest": dataclasses.asdict(manifest), "config": dataclasses.asdict(config),
            "layers": [{"digest": b.digest, "size": b.size, "diff_id": d} for d, b in layers]}
