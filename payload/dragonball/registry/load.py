"""Feed images of the archive to `docker load`, streamed: how the registry image itself
reaches the portal's engine before any registry exists.

`docker load` reads the `docker save` layout (manifest.json, the config, one file per
layer) and decompresses each layer file itself, so the archive's gzip blobs go in as they
are: nothing is extracted or recompressed, and the loaded image has the archive's image ID
(its config digest). Measured here: notes/web from the .bin into an empty engine, same ID.
"""

from __future__ import annotations

import io
import json
import tarfile
import typing
from collections.abc import Iterable


def load_manifest(images: Iterable) -> list[dict]:
    """The `docker save` manifest.json entries for archive images (pure)."""
    return [{"Config": _config_name(i), "RepoTags": [i.ref],
             "Layers": [_layer_name(l) for l in i.layers]} for i in images]


def write_load_tar(archive, images: list, out: typing.BinaryIO) -> None:
    """Write a `docker load` stream of `images` (ArchivedImage) to `out`, a pipe or file."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        manifest = json.dumps(load_manifest(images)).encode()
        _add(tar, "manifest.json", io.BytesIO(manifest), len(manifest))
        written = set()
        for image in images:
            for name, blob in [(_config_name(image), image.config),
                               *((_layer_name(l), l) for l in image.layers)]:
                if name not in written:
                    written.add(name)
                    _add(tar, name, archive.blob(blob["digest"]), blob["size"])


def _config_name(image) -> str:
    return image.config["digest"].split(":", 1)[1] + ".json"


def _layer_name(layer: dict) -> str:
    return layer["digest"].split(":", 1)[1] + "/layer.tar"


def _add(tar: tarfile.TarFile, name: str, data, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    tar.addfile(info, data)
