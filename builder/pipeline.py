"""The build steps, in order: validate everything, then root filesystem, base, examples.

Everything the pipeline reads from the world comes in through `BuildEnv`
(repository root, environment, apt root, console, engine), so a test can
point it elsewhere.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Mapping

import dragonball
from dragonball.errors import BuildError

from builder import REPO_ROOT, images, rootfs
from builder.apt_sources import debian_mirror
from builder.engine import Engine
from builder.errors import BuildInputInvalid
from builder.progress import Reporter, Step
from builder.recipe import Recipe, load_recipe, recipe_hash

log = logging.getLogger(__name__)

BARE_DIR = "base_images/bare"
BARE_REPOSITORY = "dragonball-bare"
#: The lab's other userlands: variant -> (Debian release, packages beyond the recipe).
#: "docker": a Debian 12 server that has its distribution's own Docker engine, which
#: DragonBall adopts.
BARE_VARIANTS = {"bullseye": ("bullseye", ()), "trixie": ("trixie", ()),
                 "docker": ("bookworm", ("docker.io",))}
#: A stand-in for an rpm-based server (only Debian's packages can be fetched here): the
#: Debian 12 bare server with dpkg and apt removed and RHEL 9's os-release.
RHEL_DIR = "base_images/bare-rhel"


@dataclasses.dataclass
class BuildEnv:
    """The world as the pipeline sees it (httpie's Environment, for builds)."""

    reporter: Reporter
    engine: Engine
    root: pathlib.Path = REPO_ROOT
    apt_root: pathlib.Path = pathlib.Path("/")
    environ: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(os.environ))


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    """What a run of build.py will build, checked before anything is changed."""

    recipe: Recipe
    mirror: str
    base_context: list[images.ContextFile]
    examples: list[images.ExampleBuild]


def plan_build(env: BuildEnv, with_examples: bool) -> BuildPlan:
    """Read and validate the inputs; every problem is raised before the first side effect."""
    recipe = load_recipe(env.root / images.BASE_DIR / "recipe.json")
    mirror = debian_mirror(recipe.suite, env.apt_root, env.environ)
    context = images.base_context(payload_paths(env.root))
    missing = [f.source for f in context if not (env.root / f.source).is_file()]
    if missing:
        raise BuildError(f"base image files missing under {env.root}: {', '.join(missing)}",
                         "restore them from git (git status shows what changed)")
    examples = images.example_builds(example_names(env.root)) if with_examples else []
    problems = images.example_problems(e.name for e in examples)
    if problems:
        raise BuildInputInvalid("some examples cannot be built:\n" +
                                "\n".join(f"  - {p}" for p in problems),
                                "rename the listed folders")
    return BuildPlan(recipe, mirror, context, examples)


def build_base(env: BuildEnv, plan: BuildPlan) -> str:
    """Build ``dragonballbase:<suite>``, then the built-in Service on it
    (``dragonballservice:<suite>``, `build_service`); return the base's name."""
    tag = rootfs_image(env, plan.recipe, plan.mirror)
    name = images.base_image_name(plan.recipe.suite)
    args = images.base_build_args(tag, plan.mirror, dragonball.__version__)
    with tempfile.TemporaryDirectory(prefix="dragonball-base-") as context:
        assemble_context(plan.base_context, env.root, pathlib.Path(context))
        with env.reporter.step(f"build {name}") as step:
            env.engine.build(pathlib.Path(context), name, args, build_line_sink(step))
    build_service(env, plan.recipe.suite)
    return name


def build_service(env: BuildEnv, suite: str) -> str:
    """Build the built-in Service (base_images/service, a module checked against the spec
    first) FROM the base image; return its name. A few files on the base: cached."""
    from dragonball.module import scan, validate
    context = env.root / images.SERVICE_DIR
    _, found = validate(scan(str(context / images.SERVICE_MODULE)))
    if found:
        raise BuildInputInvalid(f"{context} does not follow the module spec:\n" +
                                "\n".join(f"  - {p}" for p in found),
                                "restore it from git (git status shows what changed)")
    name = images.service_image_name(suite)
    with env.reporter.step(f"build {name}") as step:
        env.engine.build(context, name, {"BASE": images.base_image_name(suite)},
                         build_line_sink(step))
    return name


def build_bare(env: BuildEnv, variant: str | None = None) -> str:
    """Build ``dragonball-bare:<variant>`` (a bare Debian server, no python3; by default
    ``:bookworm``, the recipe's); return its name.

    Same debootstrap cache and import as the base image; its Dockerfile only adds
    the settings systemd needs as PID 1 (no layer of its own). `variant`: one of
    BARE_VARIANTS (another Debian release, or an engine of its own), or "rhel".
    """
    if variant == "rhel":
        build_bare(env)
        name = f"{BARE_REPOSITORY}:rhel"
        with env.reporter.step(f"build {name}") as step:
            env.engine.build(env.root / RHEL_DIR, name, {}, build_line_sink(step))
        return name
    recipe = load_recipe(env.root / BARE_DIR / "recipe.json")
    if variant:
        suite, extra = BARE_VARIANTS[variant]
        recipe = dataclasses.replace(recipe, suite=suite, include=(*recipe.include, *extra))
    tag = rootfs_image(env, recipe, debian_mirror(recipe.suite, env.apt_root, env.environ))
    name = f"{BARE_REPOSITORY}:{variant or recipe.suite}"
    with env.reporter.step(f"build {name}") as step:
        env.engine.build(env.root / BARE_DIR, name, {"ROOTFS_TAG": tag}, build_line_sink(step))
    return name


def rootfs_image(env: BuildEnv, recipe: Recipe, mirror: str) -> str:
    """The tag of ``dragonball-rootfs`` for `recipe`, debootstrapped and imported when missing."""
    env.engine.ping()
    return ensure_rootfs_image(env, recipe, recipe_hash(recipe, rootfs.debootstrap_version()),
                               mirror)


def ensure_rootfs_image(env: BuildEnv, recipe: Recipe, key: str, mirror: str) -> str:
    """Make sure ``dragonball-rootfs:<tag>`` exists; return the tag.

    Never re-imports an existing tag: a new import gets a new image ID, which
    would invalidate the build cache of every image built on top of it.
    """
    tag = images.rootfs_tag(key)
    ref = f"{images.ROOTFS_REPOSITORY}:{tag}"
    if env.engine.image_exists(ref):
        env.reporter.note(f"{ref} exists: debootstrap and import skipped")
        return tag
    cache = rootfs.cache_dir(env.environ)
    tar = rootfs.tar_path(cache, key)
    title = (f"reuse {tar}" if tar.is_file() else
             f"debootstrap {recipe.suite} {recipe.variant} + {', '.join(recipe.include)}")
    with env.reporter.step(title) as step:
        tar = rootfs.ensure_tar(recipe, key, mirror, cache, debootstrap_line_sink(step))
    with env.reporter.step(f"import the root filesystem as {ref}"):
        env.engine.import_tar(tar, images.ROOTFS_REPOSITORY, tag)
    return tag


MODULE_REPOSITORY = "dragonball-module"


def module_build(folder: pathlib.Path | None) -> images.ExampleBuild:
    """`build.py module DIR`: DIR's Dockerfile, tagged dragonball-module/<DIR's name>:latest;
    its module folder DIR/<name> (when there) checked against the module spec first.
    BuildInputInvalid says what is wrong and changes nothing."""
    from dragonball.module import scan, validate
    if folder is None:
        raise BuildInputInvalid("build.py module needs the module's folder",
                                "e.g. python build.py module examples/web")
    folder = folder.resolve()
    name = folder.name
    if not (folder / "Dockerfile").is_file():
        raise BuildInputInvalid(f"{folder} has no Dockerfile",
                                "give the folder whose Dockerfile builds the module "
                                "(FROM dragonballbase, docs/module-spec.md)")
    problems = images.example_problems([name])
    if problems:
        raise BuildInputInvalid(problems[0].replace("examples/", ""), "rename the folder")
    if (folder / name).is_dir():
        _, found = validate(scan(str(folder / name)))
        if found:
            raise BuildInputInvalid(
                f"{folder / name} does not follow the module spec:\n" +
                "\n".join(f"  - {p.path}: {p.message} ({p.hint})" for p in found),
                "fix the listed files (dragonball module check shows the same)")
    return images.ExampleBuild(name, str(folder), f"{MODULE_REPOSITORY}/{name}:latest")


def build_example(env: BuildEnv, example: images.ExampleBuild, mirror: str) -> str:
    """Build one example module image; return its tag."""
    with env.reporter.step(f"build {example.tag}") as step:
        env.engine.build(env.root / example.context, example.tag,
                         {"DEBIAN_MIRROR": mirror}, build_line_sink(step))
    return example.tag


def debootstrap_line_sink(step: Step) -> Callable[[str], None]:
    """Feed debootstrap output to `step`, keeping its warnings and errors on screen."""
    return lambda line: step.line(line, keep=line.startswith(("W:", "E:")))


def build_line_sink(step: Step) -> Callable[[str], None]:
    """Feed engine build output to `step`, keeping the ``Step n/m`` lines on screen."""
    return lambda line: step.line(line, keep=line.startswith("Step "))


def payload_paths(root: pathlib.Path) -> list[str]:
    """Every file under payload/dragonball, relative to payload/ (posix form)."""
    payload = root / "payload"
    package = payload / "dragonball"
    return sorted(p.relative_to(payload).as_posix() for p in package.rglob("*") if p.is_file())


def example_names(root: pathlib.Path) -> list[str]:
    """Names of the folders under examples/ that hold a Dockerfile."""
    examples = root / "examples"
    if not examples.is_dir():
        return []
    return sorted(d.name for d in examples.iterdir() if (d / "Dockerfile").is_file())


def assemble_context(plan: list[images.ContextFile], root: pathlib.Path,
                     context: pathlib.Path) -> None:
    """Copy the planned files into `context` with their planned modes."""
    for item in plan:
        dest = context / item.dest
        _make_dirs(dest.parent, context)
        shutil.copyfile(root / item.source, dest)
        os.chmod(dest, item.mode)


def _make_dirs(path: pathlib.Path, top: pathlib.Path) -> None:
    # COPY keeps directory modes: a restrictive umask on the build host must
    # not make /opt/dragon_ball/lib unreadable to a module's own user.
    path.mkdir(parents=True, exist_ok=True)
    while path != top and top in path.parents:
        os.chmod(path, 0o755)
        path = path.parent
