"""Push planning (dragonball.registry.plan): which blob is skipped, mounted or uploaded, and where.

Cases are data: images (repository, tag, blob names) and what the registry holds, in; the
expected steps out. Blob "c1" stands for digest "sha256:c1" of size len("c1") * 100.
"""

from __future__ import annotations

import dataclasses

import pytest

from dragonball.registry.plan import (Action, BlobRef, ImageToPush, Observed, blob_checks,
                                      image_to_push, plan_push, select_images, tag_checks)


def image(ref: str, *blobs: str, manifest: str | None = None) -> ImageToPush:
    repository, _, tag = ref.rpartition(":")
    return ImageToPush(ref, repository, tag, BlobRef(f"sha256:{manifest or 'm-' + ref}", 10),
                       tuple(BlobRef(f"sha256:{b}", len(b) * 100) for b in blobs))


def held(*pairs: str) -> frozenset:
    """"repo@blob" strings -> the (repository, digest) pairs a registry holds."""
    return frozenset((p.split("@")[0], "sha256:" + p.split("@")[1]) for p in pairs)


def steps(plan) -> list:
    return [(s.repository, s.digest.split(":")[1], s.action.value, s.source) for s in plan.blobs]


CASES = {
    "empty registry, one image: everything uploaded": dict(
        images=[image("a/web:1", "cw", "base", "w1")], observed=Observed(),
        expected=[("a/web", "cw", "upload", None), ("a/web", "base", "upload", None),
                  ("a/web", "w1", "upload", None)]),
    "a layer shared by two images crosses the wire once, then is mounted": dict(
        images=[image("a/web:1", "cw", "base", "w1"), image("a/api:1", "ca", "base", "a1")],
        observed=Observed(),
        expected=[("a/web", "cw", "upload", None), ("a/web", "base", "upload", None),
                  ("a/web", "w1", "upload", None), ("a/api", "ca", "upload", None),
                  ("a/api", "base", "mount", "a/web"), ("a/api", "a1", "upload", None)]),
    "blobs the target repository holds are skipped": dict(
        images=[image("a/web:1", "cw", "base", "w1")],
        observed=Observed(held("a/web@cw", "a/web@base")),
        expected=[("a/web", "cw", "skip", None), ("a/web", "base", "skip", None),
                  ("a/web", "w1", "upload", None)]),
    "a blob another repository of the push holds already is mounted from it, even a later one": dict(
        images=[image("a/web:1", "cw", "base"), image("a/api:1", "ca", "base")],
        observed=Observed(held("a/api@base")),
        expected=[("a/web", "cw", "upload", None), ("a/web", "base", "mount", "a/api"),
                  ("a/api", "ca", "upload", None), ("a/api", "base", "skip", None)]),
    "two tags of one repository: each blob once per repository": dict(
        images=[image("a/web:1", "cw", "base"), image("a/web:latest", "cw", "base")],
        observed=Observed(),
        expected=[("a/web", "cw", "upload", None), ("a/web", "base", "upload", None)]),
    "the same layer twice in one image is planned once": dict(
        images=[image("a/web:1", "cw", "empty", "w1", "empty")], observed=Observed(),
        expected=[("a/web", "cw", "upload", None), ("a/web", "empty", "upload", None),
                  ("a/web", "w1", "upload", None)]),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_blob_steps(case):
    data = CASES[case]
    assert steps(plan_push(data["images"], data["observed"])) == data["expected"]


def test_everything_present_and_tagged_means_nothing_to_do():
    web = image("a/web:1", "cw", "base")
    observed = Observed(held("a/web@cw", "a/web@base"), {("a/web", "1"): web.manifest.digest})
    plan = plan_push([web], observed)
    assert plan.nothing_to_do
    assert plan.upload_bytes == 0
    assert plan.manifests_to_put == []


def test_manifest_is_put_when_the_tag_names_another_manifest():
    web = image("a/web:1", "cw")
    plan = plan_push([web], Observed(held("a/web@cw"), {("a/web", "1"): "sha256:old"}))
    assert [m.ref for m in plan.manifests_to_put] == ["a/web:1"]
    assert not plan.nothing_to_do


def test_manifest_is_put_again_when_a_blob_had_to_be_sent():
    """A tag naming the right manifest but missing a blob (garbage-collected): repair it."""
    web = image("a/web:1", "cw", "w1")
    plan = plan_push([web], Observed(held("a/web@cw"), {("a/web", "1"): web.manifest.digest}))
    assert [m.ref for m in plan.manifests_to_put] == ["a/web:1"]


def test_upload_bytes_counts_uploads_only():
    images = [image("a/web:1", "cw", "base"), image("a/api:1", "ca", "base")]
    plan = plan_push(images, Observed(held("a/web@cw")))
    assert plan.upload_bytes == (len("base") + len("ca")) * 100
    assert [s.digest for s in plan.steps(Action.MOUNT)] == ["sha256:base"]


def test_checks_are_unique_and_in_push_order():
    images = [image("a/web:1", "cw", "base"), image("a/web:2", "cw", "base", "x"),
              image("a/api:1", "base")]
    assert blob_checks(images) == [("a/web", "sha256:cw"), ("a/web", "sha256:base"),
                                   ("a/web", "sha256:x"), ("a/api", "sha256:base")]
    assert tag_checks(images) == [("a/web", "1"), ("a/web", "2"), ("a/api", "1")]


def test_select_keeps_archive_order_and_reports_unknown_refs():
    images = [image("a/web:1"), image("a/api:1"), image("a/store:1")]
    chosen, unknown = select_images(images, ["a/store:1", "a/web:1", "nope:1", "a/web:1"])
    assert [i.ref for i in chosen] == ["a/web:1", "a/store:1"]
    assert unknown == ["nope:1"]
    assert select_images(images, None) == (images, [])


@dataclasses.dataclass
class Archived:  # the shape of dragonball.release.archive.ArchivedImage
    ref: str
    repository: str
    tag: str
    manifest: dict
    config: dict
    layers: list


def test_image_from_the_archive_index_puts_the_config_first():
    archived = Archived("n/web:0.1.0", "n/web", "0.1.0", {"digest": "sha256:m", "size": 1},
                        {"digest": "sha256:c", "size": 2},
                        [{"digest": "sha256:l1", "size": 3, "diff_id": "sha256:d1"}])
    pushed = image_to_push(archived)
    assert pushed.blobs == (BlobRef("sha256:c", 2), BlobRef("sha256:l1", 3))
    assert pushed.manifest == BlobRef("sha256:m", 1)
