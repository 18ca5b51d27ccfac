"""Which blob goes where when an image archive is pushed to a registry (pure).

The executor (`dragonball.registry.push`) first asks the registry what it holds
(`Observed`: HEAD of every blob in every target repository, HEAD of every tag),
then `plan_push` decides, with no I/O:

- a blob the target repository holds already is skipped;
- a blob some other repository of this push holds (already there, or uploaded
  earlier in this plan) is mounted from it: a layer shared by several images
  crosses the wire once;
- any other blob is uploaded, streamed from the archive.

A manifest is put unless its tag already names exactly that manifest and every
blob of the image was skipped.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class BlobRef:
    digest: str
    size: int


@dataclasses.dataclass(frozen=True)
class ImageToPush:
    """One image: where it goes, its manifest, and its blobs (config first, then layers)."""

    ref: str
    repository: str
    tag: str
    manifest: BlobRef
    blobs: tuple[BlobRef, ...]


def image_to_push(archived) -> ImageToPush:
    """From an `ArchivedImage` (dragonball.release.archive) or anything shaped like it."""
    blobs = [archived.config, *archived.layers]
    return ImageToPush(archived.ref, archived.repository, archived.tag,
                       BlobRef(archived.manifest["digest"], archived.manifest["size"]),
                       tuple(BlobRef(b["digest"], b["size"]) for b in blobs))


def select_images(images: list[ImageToPush], refs: Iterable[str] | None):
    """(the images named by `refs`, in archive order; refs the archive does not hold)."""
    if refs is None:
        return list(images), []
    wanted = list(dict.fromkeys(refs))
    known = {image.ref for image in images}
    return [i for i in images if i.ref in wanted], [r for r in wanted if r not in known]


def blob_checks(images: Iterable[ImageToPush]) -> list[tuple[str, str]]:
    """Every (repository, digest) to HEAD, once each, in push order."""
    return list(dict.fromkeys((i.repository, b.digest) for i in images for b in i.blobs))


def tag_checks(images: Iterable[ImageToPush]) -> list[tuple[str, str]]:
    """Every (repository, tag) whose current manifest digest to ask for."""
    return list(dict.fromkeys((i.repository, i.tag) for i in images))


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the registry held before the push."""

    blobs: frozenset = frozenset()  # {(repository, digest)} answered 200 to HEAD
    tags: dict = dataclasses.field(default_factory=dict)  # (repository, tag) -> manifest digest


class Action(enum.Enum):
    SKIP = "skip"
    MOUNT = "mount"
    UPLOAD = "upload"


@dataclasses.dataclass(frozen=True)
class BlobStep:
    repository: str
    digest: str
    size: int
    action: Action
    source: str | None = None  # the repository a MOUNT comes from


@dataclasses.dataclass(frozen=True)
class ManifestStep:
    ref: str
    repository: str
    tag: str
    digest: str
    size: int
    put: bool


@dataclasses.dataclass(frozen=True)
class PushPlan:
    blobs: tuple[BlobStep, ...]
    manifests: tuple[ManifestStep, ...]

    def steps(self, action: Action) -> list[BlobStep]:
        return [s for s in self.blobs if s.action is action]

    @property
    def upload_bytes(self) -> int:
        return sum(s.size for s in self.steps(Action.UPLOAD))

    @property
    def manifests_to_put(self) -> list[ManifestStep]:
        return [m for m in self.manifests if m.put]

    @property
    def nothing_to_do(self) -> bool:
        return not self.manifests_to_put and len(self.steps(Action.SKIP)) == len(self.blobs)


def plan_push(images: list[ImageToPush], observed: Observed,
              elsewhere: dict | None = None) -> PushPlan:
    """Skip, mount or upload each blob once per repository; put the manifests that changed.
    `elsewhere` ({digest: repository}): where an earlier release put a blob this archive
    left out (an app-only release built --since it); mounted from there when observed."""
    home: dict[str, str] = {d: r for d, r in (elsewhere or {}).items()
                            if (r, d) in observed.blobs}
    for repository, digest in blob_checks(images):
        if (repository, digest) in observed.blobs:
            home.setdefault(digest, repository)
    sizes = {b.digest: b.size for i in images for b in i.blobs}
    steps: list[BlobStep] = []
    for repository, digest in blob_checks(images):
        size = sizes[digest]
        if (repository, digest) in observed.blobs:
            steps.append(BlobStep(repository, digest, size, Action.SKIP))
        elif digest in home:
            steps.append(BlobStep(repository, digest, size, Action.MOUNT, home[digest]))
        else:
            steps.append(BlobStep(repository, digest, size, Action.UPLOAD))
            home[digest] = repository
    changed = {(s.repository, s.digest) for s in steps if s.action is not Action.SKIP}
    manifests = tuple(
        ManifestStep(i.ref, i.repository, i.tag, i.manifest.digest, i.manifest.size,
                     put=observed.tags.get((i.repository, i.tag)) != i.manifest.digest
                     or any((i.repository, b.digest) in changed for b in i.blobs))
        for i in images)
    return PushPlan(tuple(steps), manifests)
