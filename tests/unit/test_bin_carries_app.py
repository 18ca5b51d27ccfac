"""A .bin release carries its app (issue 18): release.yaml's `app:` checked against the
release's images before anything is built, and put in the manifest for the installer."""

from __future__ import annotations

import pathlib

import pytest

import dragonball
from builder import bundle, manifest as manifest_mod
from builder.errors import BuildInputInvalid
from builder.release import app_text, load_release
from dragonball.release import installed
from dragonball.release.sections import BinError

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = (ROOT / "examples" / "notes.app.yaml").read_text()
ENGINE = "engine: {packages: [docker.io]}\n"


def release_file(tmp_path: pathlib.Path, spec: str | None, modules=("web", "api", "store"),
                 version: str = "0.1.0") -> pathlib.Path:
    lines = [f"name: notes\nversion: {version}\n", ENGINE, "modules:\n"]
    lines += [f"  - {{name: {m}, path: {ROOT / 'examples' / m}}}\n" for m in modules]
    if spec is not None:
        (tmp_path / "notes.app.yaml").write_text(spec)
        lines.append("app: notes.app.yaml\n")
    (tmp_path / "release.yaml").write_text("".join(lines))
    return tmp_path / "release.yaml"


def test_the_default_release_carries_the_notes_app_and_it_fits():
    release = load_release(ROOT / "release.yaml")
    assert release.app == ROOT / "examples" / "notes.app.yaml"
    assert app_text(release) == SPEC


def test_a_release_without_app_carries_none(tmp_path):
    assert app_text(load_release(release_file(tmp_path, None))) is None


def test_every_problem_of_the_app_is_listed_with_what_to_do(tmp_path):
    spec = SPEC.replace("notes/web:0.1.0", "notes/web:9.9")
    release = load_release(release_file(tmp_path, spec, modules=("web", "api")))
    with pytest.raises(BuildInputInvalid) as refused:
        app_text(release)
    message = str(refused.value.message)
    assert "2 problem(s)" in message
    assert "web: image notes/web:9.9" in message and "store: image notes/store:0.1.0" in message
    assert "release.yaml's modules" in refused.value.hint


def test_a_spec_with_its_own_problems_is_refused(tmp_path):
    spec = SPEC.replace("listen_port: {type: int, default: 8080}",
                        "listen_port: {type: int, default: eighty}", 1)
    with pytest.raises(BuildInputInvalid, match="listen_port"):
        app_text(load_release(release_file(tmp_path, spec)))


def test_build_bin_refuses_a_bad_app_before_building_anything(tmp_path):
    path = release_file(tmp_path, SPEC, modules=("web",))
    dist = tmp_path / "dist"

    class Untouchable:          # any use of the build environment would be a build started
        def __getattr__(self, name):
            raise AssertionError(f"the build started ({name})")

    with pytest.raises(BuildInputInvalid, match="api: image notes/api:0.1.0"):
        bundle.build_bin(Untouchable(), path, dist)
    assert not dist.exists()


def manifest(app=None) -> dict:
    release = load_release(ROOT / "release.yaml")
    engine = {"packages": [{"name": "docker.io", "version": "1"}]}
    return manifest_mod.make_manifest(release, 0, {"commit": None, "dirty": None},
                                      {"version": "1.0"}, engine, [], {}, app)


def test_the_manifest_carries_the_app_and_the_installer_reads_it_back():
    release = load_release(ROOT / "release.yaml")
    entry = manifest_mod.app_entry(release.app, app_text(release))
    made = manifest(entry)
    assert made["app"]["file"] == "notes.app.yaml"
    assert installed.manifest_app(made) == SPEC
    assert f"app notes.app.yaml sha256 {entry['sha256']}" in manifest_mod.list_lines(made)
    altered = {**made, "app": {**entry, "text": SPEC + "# changed\n"}}
    with pytest.raises(BinError, match="SHA-256"):
        installed.manifest_app(altered)


def test_a_manifest_without_app_has_no_app_key():
    made = manifest(manifest_mod.app_entry(None, None))
    assert "app" not in made and installed.manifest_app(made) is None


def test_the_runtime_info_names_dragonballs_version():
    class Runtime:
        python_version, pyinstaller_version, glibc_floor = "3.11", "6", "2.31"
        size, sha256 = 1, "0" * 64
    info = bundle._runtime_info(Runtime())
    assert info["version"] == dragonball.__version__
    assert installed.bin_record(manifest() | {"runtime": info}, False)["runtime_version"] == \
        dragonball.__version__
