"""The `docker load` stream of archive images (dragonball.registry.load): layout, each file once."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile

from dragonball.registry.load import load_manifest, write_load_tar


@dataclasses.dataclass
class Image:
    ref: str
    config: dict
    layers: list


def blob(data: bytes) -> dict:
    return {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data), "data": data}


class Archive:
    def __init__(self, *blobs):
        self.blobs = {b["digest"]: b["data"] for b in blobs}

    def blob(self, digest):
        return io.BytesIO(self.blobs[digest])


def test_two_images_sharing_a_layer_write_it_once():
    base, web, api = blob(b"base layer"), blob(b"web layer"), blob(b"api layer")
    cw, ca = blob(b'{"w": 1}'), blob(b'{"a": 1}')
    images = [Image("n/web:1", cw, [base, web]), Image("n/api:1", ca, [base, api])]
    out = io.BytesIO()
    write_load_tar(Archive(base, web, api, cw, ca), images, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        assert tar.extractfile(manifest[0]["Layers"][0]).read() == b"base layer"
        assert tar.extractfile(manifest[1]["Config"]).read() == b'{"a": 1}'
    assert names[0] == "manifest.json"
    assert len(names) == len(set(names)) == 6  # manifest, 2 configs, 3 layers
    assert manifest == load_manifest(images)
    assert manifest[0]["RepoTags"] == ["n/web:1"]
    assert manifest[0]["Config"] == cw["digest"].split(":")[1] + ".json"
