"""App-only releases (issue 15): the release file's `app:`, the spec against the release's
images, what an earlier release lets a new one leave out, the .app file checked before
anything is sent, and the push mounting what was left out (or refusing it by name)."""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import tarfile

import pytest

from builder import app_release
from builder.errors import BuildInputInvalid
from builder.release import load_release
from dragonball.registry.client import RegistryInputInvalid
from dragonball.registry.plan import Action, Observed, image_to_push, plan_push
from dragonball.release.app_file import open_app
from dragonball.release.archive import ArchivedImage
from dragonball.release.sections import BinError

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = (ROOT / "examples" / "notes.app.yaml").read_text()
REFS = ["notes/web:0.1.0", "notes/api:0.1.0", "notes/store:0.1.0"]


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def images_tar(images: list | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        add(tar, "index.json", json.dumps({"schema": 1, "images": images or []}).encode())
    return out.getvalue()


def app_file(path: pathlib.Path, spec: str = SPEC, about: dict | None = None,
             tamper: str | None = None, leave_out: str | None = None) -> pathlib.Path:
    images = images_tar()
    base = {"format": 1, "kind": "app", "name": "notes", "version": "0.2.0",
            "spec": "app.yaml", "spec_sha256": hashlib.sha256(spec.encode()).hexdigest(),
            "images": REFS, "images_sha256": hashlib.sha256(images).hexdigest(),
            "left_out": {}}
    with tarfile.open(path, "w") as tar:
        members = {"app.json": json.dumps({**base, **(about or {})}).encode(),
                   "app.yaml": spec.encode() + (b"# changed\n" if tamper == "app.yaml" else b""),
                   "images.tar": images + (b"\0" * 512 if tamper == "images.tar" else b"")}
        for name, data in members.items():
            if name != leave_out:
                add(tar, name, data)
    return path


def test_a_good_app_file_opens_with_its_spec_and_images(tmp_path):
    with open_app(str(app_file(tmp_path / "notes-0.2.0.app"))) as app:
        assert app.label == "notes 0.2.0" and app.spec_text == SPEC
        assert app.archive.images == []


@pytest.mark.parametrize("kwargs, message", [
    ({"tamper": "app.yaml"}, "app.yaml in .* SHA-256"),
    ({"tamper": "images.tar"}, "images.tar in .* SHA-256"),
    ({"leave_out": "images.tar"}, "has no images.tar"),
    ({"about": {"kind": "bin"}}, "not an app-only release"),
    ({"about": {"format": 7}}, "format 7"),
    ({"about": {"name": "Bad Name!"}}, "no valid release name"),
])
def test_a_damaged_or_foreign_app_file_is_refused_before_anything_is_sent(tmp_path, kwargs,
                                                                          message):
    with pytest.raises(BinError, match=message) as refused:
        with open_app(str(app_file(tmp_path / "x.app", **kwargs))):
            pass
    assert refused.value.hint


def test_a_file_that_is_not_a_tar_or_is_cut_short_is_refused(tmp_path):
    junk = tmp_path / "junk.app"
    junk.write_bytes(b"MZ this is not a tar" * 100)
    with pytest.raises(BinError, match="not an app release|has no app.json"):
        with open_app(str(junk)):
            pass
    good = app_file(tmp_path / "good.app").read_bytes()
    cut = tmp_path / "cut.app"
    cut.write_bytes(good[:len(good) // 2])
    with pytest.raises(BinError):
        with open_app(str(cut)):
            pass


def test_the_release_file_names_its_app_and_an_app_release_needs_no_engine(tmp_path):
    (tmp_path / "notes.app.yaml").write_text(SPEC)
    (tmp_path / "r.yaml").write_text("name: notes\nversion: 0.2.0\napp: notes.app.yaml\n"
                                     "modules: [{name: web, path: " +
                                     str(ROOT / "examples" / "web") + "}]\n")
    release = load_release(tmp_path / "r.yaml", need_engine=False)
    assert release.app == tmp_path / "notes.app.yaml"
    with pytest.raises(BuildInputInvalid, match="engine.packages"):
        load_release(tmp_path / "r.yaml")           # a whole .bin needs its engine
    (tmp_path / "r.yaml").write_text("name: notes\nversion: 0.2.0\nmodules: [{name: web, "
                                     f"path: {ROOT / 'examples' / 'web'}}}]\n")
    with pytest.raises(BuildInputInvalid, match="app: an app-only release names its app spec"):
        load_release(tmp_path / "r.yaml", need_engine=False)


def test_the_spec_may_name_only_the_releases_images():
    assert app_release.spec_problems(SPEC, "notes.app.yaml", REFS) == []
    problems = app_release.spec_problems(SPEC, "notes.app.yaml", REFS[:2])
    assert problems == ["store: image notes/store:0.1.0 is not one of the release's "
                        "(notes/web:0.1.0, notes/api:0.1.0)"]
    assert app_release.spec_problems("app: [", "x.yaml", REFS)    # its own problems too


def layer(n: int) -> dict:
    return {"digest": "sha256:" + f"{n:x}" * 64, "size": 100 + n, "diff_id": "sha256:" + "0" * 64}


def image(ref: str, layers: list) -> dict:
    repository, _, tag = ref.rpartition(":")
    return {"ref": ref, "repository": repository, "tag": tag,
            "manifest": {"digest": "sha256:" + "e" * 64, "size": 10},
            "config": {"digest": "sha256:" + "c" * 64, "size": 20}, "layers": layers}


def test_what_an_earlier_release_holds_is_left_out_with_where_it_is(tmp_path):
    earlier = tmp_path / "notes-0.1.0.app"
    images = images_tar([image("dragonball/agent:0.1.0", [layer(1), layer(2)]),
                         image("notes/api:0.1.0", [layer(1), layer(3)])])
    with tarfile.open(earlier, "w") as tar:
        add(tar, "app.json", json.dumps({"kind": "app", "name": "notes",
                                         "version": "0.1.0"}).encode())
        add(tar, "images.tar", images)
    holders, about = app_release.since_blobs(earlier)
    assert about == {"name": "notes", "version": "0.1.0"}
    assert holders[layer(1)["digest"]] == "dragonball/agent"     # the first that holds it
    assert holders[layer(3)["digest"]] == "notes/api"
    with pytest.raises(BuildInputInvalid, match="not a DragonBall release"):
        app_release.since_blobs(tmp_path / "nothing.bin")


def test_a_left_out_layer_is_mounted_from_where_the_earlier_release_put_it():
    new = image_to_push(ArchivedImage(**image("notes/api:0.2.0", [layer(1), layer(4)])))
    elsewhere = {layer(1)["digest"]: "dragonball/agent"}
    observed = Observed(frozenset({("dragonball/agent", layer(1)["digest"])}))
    plan = plan_push([new], observed, elsewhere)
    actions = {s.digest: (s.action, s.source) for s in plan.blobs}
    assert actions[layer(1)["digest"]] == (Action.MOUNT, "dragonball/agent")
    assert actions[layer(4)["digest"]][0] is Action.UPLOAD
    # the registry does not have it after all: planned as an upload, which push refuses
    unseen = plan_push([new], Observed(), elsewhere)
    assert layer(1)["digest"] in {s.digest for s in unseen.steps(Action.UPLOAD)}


def test_push_refuses_a_left_out_layer_the_registry_has_nowhere():
    from dragonball.registry import push as push_mod

    class Archive:
        images = [ArchivedImage(**image("notes/api:0.2.0", [layer(1)]))]

        def digests(self):
            return {"e" * 64, "c" * 64}                  # layer 1 was left out

    class Registry:
        def blob_exists(self, repository, digest):
            return False

        def tag_digest(self, repository, tag):
            return None

    with pytest.raises(RegistryInputInvalid, match="lacks 1 layer"):
        push_mod.push_archive(Archive(), Registry(), elsewhere={layer(1)["digest"]:
                                                                "notes/api"})


def test_release_add_checks_the_file_before_anything_else(tmp_path, capsys):
    """A .bin (or any non-.app) given to `release add` is refused for what it is, exit 2,
    before the registry is even looked for (this machine is no portal)."""
    from dragonball import cli
    junk = tmp_path / "DragonBall-0.1.0.bin"
    junk.write_bytes(b"#!/bin/sh\n# DragonBall self-extracting release\n" + b"x" * 4096)
    assert cli.main(["release", "add", str(junk), "--config", str(tmp_path / "none")]) == 2
    out = capsys.readouterr()
    assert "not an app release" in out.out + out.err
    assert "registry" not in (out.out + out.err).lower()


def test_a_module_built_from_the_built_in_service_needs_no_module_folder(tmp_path):
    """examples/guestbook/web is one Dockerfile, FROM dragonballservice: the Service brings
    its module. A module FROM the base without its folder is still refused, with the fix."""
    (tmp_path / "app.yaml").write_text(SPEC)
    for name, line in (("web", "FROM dragonballservice:bookworm"),
                       ("api", "FROM dragonballbase:bookworm")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text(f"# {name}\n{line}\n")
    (tmp_path / "r.yaml").write_text("name: notes\nversion: 1.0.0\napp: app.yaml\nmodules:\n"
                                     "  - {name: web, path: web}\n")
    assert [m.name for m in load_release(tmp_path / "r.yaml", need_engine=False).modules] == \
        ["web"]
    (tmp_path / "r.yaml").write_text("name: notes\nversion: 1.0.0\napp: app.yaml\nmodules:\n"
                                     "  - {name: web, path: web}\n  - {name: api, path: api}\n")
    with pytest.raises(BuildInputInvalid, match="no module folder .*api.*dragonballservice"):
        load_release(tmp_path / "r.yaml", need_engine=False)


def test_an_app_release_is_an_upgrade_target_known_by_its_own_name(tmp_path):
    """`dragonball upgrade --app FILE.app`: the .app checked whole, then the same upgrade as a
    .bin's with its app alone: its records apart from the .bin's (release/apps/<name>/)."""
    from dragonball.commands.upgrade import app_target
    from dragonball.upgrade.checks import identity_problems, record_root
    with app_target(str(app_file(tmp_path / "notes-0.2.0.app"))) as target:
        assert target.id == {"kind": "app", "name": "notes", "version": "0.2.0"}
        assert target.app_text == SPEC and target.runtime is None
        with target.images() as archive:
            assert archive is not None
        assert [i["ref"] for i in target.manifest["images"]] == REFS
    assert record_root(target.id).endswith("/release/apps/notes")
    assert identity_problems(None, target.id, False) == []          # a new app
    older = {"kind": "app", "name": "notes", "version": "0.3.0"}
    assert "older" in identity_problems(older, target.id, False)[0]
