"""The release manifest (release.yaml): what goes into one DragonBall.bin.

Loaded and checked whole before any long work: every problem is reported at
once, with the file and what to fix, including each module folder's own
problems against the module spec.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import yaml

from dragonball.app import spec as spec_mod
from dragonball.errors import DragonBallError
from dragonball.module import scan, validate

from builder.errors import BuildInputInvalid

NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}\Z")
VERSION_RE = re.compile(r"[0-9][0-9A-Za-z.+~-]{0,63}\Z")
TOP_KEYS = {"name", "version", "modules", "engine", "app"}
MODULE_KEYS = {"name", "path"}
ENGINE_KEYS = {"suite", "packages"}


@dataclasses.dataclass(frozen=True)
class ModuleImage:
    name: str
    context: pathlib.Path  # holds Dockerfile and the module folder <name>/
    ref: str  # <release>/<module>:<version>


@dataclasses.dataclass(frozen=True)
class Release:
    path: pathlib.Path
    name: str
    version: str
    modules: tuple
    engine_suite: str
    engine_packages: tuple
    app: pathlib.Path | None = None   # the app spec the release carries (`app:`), if any


def load_release(path: pathlib.Path, need_engine: bool = True) -> Release:
    """Read and check release.yaml; BuildInputInvalid listing every problem. An app-only
    release (`build.py app`) needs no `engine:` (`need_engine` False) but an `app:`."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise BuildInputInvalid(f"no release manifest at {path}", "give one with --release "
                                "FILE (release.yaml is the default)") from None
    except yaml.YAMLError as e:
        raise BuildInputInvalid(f"{path} is not valid YAML: {e}", "fix the line it names") from e
    problems = []
    release = _parse(path, data if isinstance(data, dict) else {}, problems, need_engine)
    if not isinstance(data, dict):
        problems.insert(0, "the file must hold a mapping (name:, version:, modules:, engine:)")
    if problems:
        raise BuildInputInvalid(f"{path} has {len(problems)} problem(s):\n" +
                                "\n".join(f"  - {p}" for p in problems),
                                "fix them all, then run build.py again")
    return release


def app_text(release: Release) -> str | None:
    """The app spec text the release carries (`app:`), checked against its images; None when
    it names none. BuildInputInvalid listing every problem, before anything is built."""
    if release.app is None:
        return None
    try:
        text = release.app.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BuildInputInvalid(f"cannot read the app spec {release.app}: {e}",
                                f"fix app: in {release.path}") from e
    problems = spec_problems(text, str(release.app), [m.ref for m in release.modules])
    if problems:
        raise BuildInputInvalid(f"{release.app} does not fit the release {release.name} "
                                f"{release.version}: {len(problems)} problem(s):\n" +
                                "\n".join(f"  - {p}" for p in problems),
                                "name only the release's images (release.yaml's modules), "
                                "or add the module to the release; fix them all, then "
                                "run build.py again")
    return text


def spec_problems(text: str, file: str, refs: list[str]) -> list[str]:
    """What makes the spec unfit for a release of images `refs` (pure, but for the spec's own
    checks): its own problems, and each image it names that the release does not build."""
    try:
        app = spec_mod.load(text, file)
    except DragonBallError as e:
        return [e.message]
    members = app.members() if hasattr(app, "members") else app.services
    return [f"{kind_name}: image {member.image} is not one of the release's ({', '.join(refs)})"
            for kind_name, member in sorted(members.items()) if member.image not in refs]


def _parse(path: pathlib.Path, data: dict, problems: list, need_engine: bool = True) -> Release:
    problems += [f"unknown key {k!r} (known: {', '.join(sorted(TOP_KEYS))})"
                 for k in data if k not in TOP_KEYS]
    name, version = str(data.get("name", "")), str(data.get("version", ""))
    if not NAME_RE.match(name):
        problems.append(f"name {name!r} must be a lower-case letter then up to 62 of a-z 0-9 _ -")
    if not VERSION_RE.match(version):
        problems.append(f"version {version!r} must start with a digit (e.g. 1.2.0)")
    modules = _modules(path.parent, data.get("modules"), name, version, problems)
    engine = data.get("engine") if isinstance(data.get("engine"), dict) else {}
    problems += [f"engine: unknown key {k!r}" for k in engine if k not in ENGINE_KEYS]
    packages = engine.get("packages") or []
    if need_engine and (not packages or not all(isinstance(p, str) for p in packages)):
        problems.append("engine.packages must list the Debian packages of the engine")
    app = None
    if data.get("app") is not None:
        app = path.parent / str(data["app"])
        if not app.is_file():
            problems.append(f"app: no app spec at {app}")
    elif not need_engine:
        problems.append("app: an app-only release names its app spec (app: notes.app.yaml)")
    return Release(path, name, version, tuple(modules), str(engine.get("suite", "bookworm")),
                   tuple(str(p) for p in packages), app)


def _modules(root: pathlib.Path, raw, release: str, version: str, problems: list) -> list:
    if not isinstance(raw, list) or not raw:
        problems.append("modules must list at least one {name:, path:}")
        return []
    modules, seen = [], set()
    for n, entry in enumerate(raw, 1):
        entry = entry if isinstance(entry, dict) else {}
        where = f"modules[{n}] ({entry.get('name', '?')})"
        problems += [f"{where}: unknown key {k!r}" for k in entry if k not in MODULE_KEYS]
        name, context = str(entry.get("name", "")), root / str(entry.get("path", ""))
        if not NAME_RE.match(name):
            problems.append(f"{where}: name {name!r} is not a valid module name")
        elif name in seen:
            problems.append(f"{where}: the name {name} is used twice")
        seen.add(name)
        problems += _context_problems(where, context, name)
        modules.append(ModuleImage(name, context, f"{release}/{name}:{version}"))
    return modules


def uses_builtin_service(dockerfile: pathlib.Path) -> bool:
    """Whether the Dockerfile's last stage is built FROM the built-in Service's image."""
    froms = re.findall(r"^\s*FROM\s+(\S+)", dockerfile.read_text(encoding="utf-8",
                                                                 errors="replace"),
                       re.M | re.I)
    return bool(froms) and froms[-1].split(":")[0].split("@")[0] == "dragonballservice"


def _context_problems(where: str, context: pathlib.Path, name: str) -> list:
    if not (context / "Dockerfile").is_file():
        return [f"{where}: no Dockerfile in {context}"]
    module_dir = context / name
    if not module_dir.is_dir():
        if uses_builtin_service(context / "Dockerfile"):
            return []        # the built-in Service brings its module (docs/service.md)
        return [f"{where}: no module folder {module_dir} (the Dockerfile ADDs it; or build "
                "FROM dragonballservice:bookworm, whose module is the built-in Service)"]
    _, problems = validate(scan(str(module_dir)))
    return [f"{where}: {module_dir}/{p}" for p in problems]
