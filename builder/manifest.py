"""The release's manifest.json, SHA256SUMS and the stub's --list text (pure)."""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
import time

FORMAT = 1
# What the frozen runtime and the engine need of a target server; preflight checks them.
KERNEL_FLOOR = "4.19"


def build_time(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def app_entry(path, text: str | None) -> dict | None:
    """The manifest's `app`: the app spec the release carries (None when it carries none)."""
    if text is None:
        return None
    return {"file": pathlib.PurePath(path).name, "text": text,
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def make_manifest(release, epoch: int, git: dict, runtime: dict, engine: dict,
                  images: list, sections: dict, app: dict | None = None) -> dict:
    """Everything a person or the installer wants to know of one .bin.

    `sections` maps runtime/engine/images to {"size", "sha256"}; the manifest
    cannot hold its own hash, and the stub's table holds it. `app` (app_entry) is the app
    spec the release carries: the installer keeps it (dragonball/release/installed.py).
    """
    manifest = {
        "format": FORMAT, "name": release.name, "version": release.version,
        "build_time": build_time(epoch), "source_date_epoch": epoch,
        "git": git,
        "floor": {"glibc": runtime.get("glibc_floor"), "kernel": KERNEL_FLOOR,
                  "arch": "x86_64"},
        "runtime": runtime,
        "engine": engine,
        "images": [{"ref": i["ref"], "image_id": i["config"]["digest"],
                    "manifest_digest": i["manifest"]["digest"],
                    "size": i["config"]["size"] + sum(l["size"] for l in i["layers"]),
                    "layers": len(i["layers"])} for i in images],
        "sections": sections,
    }
    if app is not None:
        manifest["app"] = app
    return manifest


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def list_lines(manifest: dict) -> list:
    """What `--list` prints after the sections: images and engine packages."""
    lines = [f"image {i['ref']} {i['size']} bytes, {i['layers']} layers"
             for i in manifest["images"]]
    lines += [f"package {p['name']} {p['version']}" for p in manifest["engine"]["packages"]]
    if manifest.get("app"):
        name = manifest["app"]["file"]       # the stub lists plain names only (binfile)
        name = name if re.fullmatch(r"[A-Za-z0-9._-]+", name) else "spec"
        lines.append(f"app {name} sha256 {manifest['app']['sha256']}")
    return lines


def sha256sums(entries: dict) -> str:
    """SHA256SUMS text, the format `sha256sum -c` reads: file name -> hex digest."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(entries.items()))
