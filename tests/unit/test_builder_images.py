"""What goes into the base image's build context, and which example images get built."""

from __future__ import annotations

import os
import stat

import pytest

from builder import REPO_ROOT, images, pipeline

PAYLOAD = [
    "dragonball/__init__.py", "dragonball/errors.py", "dragonball/cli.py",
    "dragonball/console.py", "dragonball/module/__init__.py", "dragonball/module/spec.py",
    "dragonball/module/__pycache__/spec.cpython-311.pyc",
    "dragonball/supervisor/__init__.py", "dragonball/supervisor/__main__.py",
    "dragonball/supervisor/deep/x.py", "dragonball/supervisor/README.md",
    "dragonball/portal/app.py",
]


def test_library_is_the_stdlib_part_only():
    assert images.library_files(PAYLOAD) == [
        "dragonball/__init__.py", "dragonball/errors.py",
        "dragonball/module/__init__.py", "dragonball/module/spec.py",
        "dragonball/supervisor/__init__.py", "dragonball/supervisor/__main__.py",
        "dragonball/supervisor/deep/x.py",
    ]


def test_library_works_before_the_supervisor_exists():
    assert images.library_files(["dragonball/__init__.py", "dragonball/errors.py"]) == [
        "dragonball/__init__.py", "dragonball/errors.py"]


def test_base_context_file_list():
    plan = images.base_context(["dragonball/errors.py", "dragonball/__init__.py"])
    assert [(f.source, f.dest, oct(f.mode)) for f in plan] == [
        ("base_images/dragonballbase/Dockerfile", "Dockerfile", "0o644"),
        ("base_images/dragonballbase/bin/apt-install", "bin/apt-install", "0o755"),
        ("base_images/dragonballbase/bin/run.sh", "bin/run.sh", "0o755"),
        ("base_images/dragonballbase/bin/params", "bin/params", "0o755"),
        ("payload/dragonball/__init__.py", "lib/dragonball/__init__.py", "0o644"),
        ("payload/dragonball/errors.py", "lib/dragonball/errors.py", "0o644"),
    ]


def test_names():
    assert images.base_image_name("bookworm") == "dragonballbase:bookworm"
    assert images.rootfs_tag("5473ecec6c0c0bf4a444") == "5473ecec6c0c"
    assert images.base_build_args("t", "http://m/debian", "0.1.0") == {
        "ROOTFS_TAG": "t", "DEBIAN_MIRROR": "http://m/debian", "VERSION": "0.1.0"}


def test_example_builds_in_name_order():
    builds = images.example_builds(["web", "api"])
    assert [(b.name, b.context, b.tag) for b in builds] == [
        ("api", "examples/api", "dragonball-example/api:latest"),
        ("web", "examples/web", "dragonball-example/web:latest"),
    ]


@pytest.mark.parametrize("name, ok", [
    ("api", True), ("my_service", True), ("my-svc2", True), ("a.b", True),
    ("Api", False), ("-x", False), ("x_", False), ("a b", False),
])
def test_example_names_must_make_image_names(name, ok):
    assert (images.example_problems([name]) == []) is ok


def test_the_committed_base_files_exist():
    for item in images.base_context([]):
        assert (REPO_ROOT / item.source).is_file(), item.source


def test_scripts_are_posix_sh_and_executable():
    for name in ("apt-install", "run.sh"):
        path = REPO_ROOT / images.BASE_DIR / "bin" / name
        assert path.read_text().startswith("#!/bin/sh\n")
        assert os.access(path, os.X_OK)


def test_assemble_context_copies_with_planned_modes(tmp_path):
    root, context = tmp_path / "repo", tmp_path / "ctx"
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "deep" / "a.py").write_text("A")
    (root / "src" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "src" / "run.sh", 0o600)
    context.mkdir()
    old_umask = os.umask(0o077)
    try:
        pipeline.assemble_context([images.ContextFile("src/deep/a.py", "lib/x/a.py", 0o644),
                                   images.ContextFile("src/run.sh", "bin/run.sh", 0o755)],
                                  root, context)
    finally:
        os.umask(old_umask)
    assert (context / "lib" / "x" / "a.py").read_text() == "A"
    assert stat.S_IMODE((context / "bin" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((context / "lib" / "x").stat().st_mode) == 0o755
    assert stat.S_IMODE((context / "lib").stat().st_mode) == 0o755


def test_payload_and_example_discovery(tmp_path):
    (tmp_path / "payload" / "dragonball" / "module").mkdir(parents=True)
    (tmp_path / "payload" / "dragonball" / "module" / "spec.py").write_text("")
    for name, dockerfile in (("web", True), ("notes", False)):
        (tmp_path / "examples" / name).mkdir(parents=True)
        if dockerfile:
            (tmp_path / "examples" / name / "Dockerfile").write_text("FROM x\n")
    assert pipeline.payload_paths(tmp_path) == ["dragonball/module/spec.py"]
    assert pipeline.example_names(tmp_path) == ["web"]
    assert pipeline.example_names(tmp_path / "nowhere") == []
