"""Images of DragonBall's own platform, built like any module image: the registry.

`build_registry_image(env)` builds ``dragonball/registry:<DragonBall version>`` from
base_images/registry (a module folder that follows docs/module-spec.md, dogfooding it)
on top of ``dragonballbase:<suite>``, which must be built first (`pipeline.build_base`).
"""

from __future__ import annotations

import logging

import dragonball
from dragonball.errors import BuildError
from dragonball.module import scan, validate

from builder import images
from builder.apt_sources import debian_mirror
from builder.pipeline import BuildEnv, build_line_sink
from builder.recipe import load_recipe

log = logging.getLogger(__name__)

REGISTRY_DIR = "base_images/registry"
REGISTRY_MODULE = "registry"
REGISTRY_REPOSITORY = "dragonball/registry"


def registry_ref(version: str = dragonball.__version__) -> str:
    """The registry image's name in the engine and in the .bin."""
    return f"{REGISTRY_REPOSITORY}:{version}"


def build_registry_image(env: BuildEnv, mirror: str | None = None) -> str:
    """Build the registry image (Debian's docker-registry as a module); return its ref.

    `mirror` is the Debian mirror URL (a `BuildPlan.mirror`); by default it is read
    from the build host's apt sources, as for every other image.
    """
    context = env.root / REGISTRY_DIR
    _, problems = validate(scan(str(context / REGISTRY_MODULE)))
    if problems:
        raise BuildError(f"{context / REGISTRY_MODULE} does not follow the module spec:\n" +
                         "\n".join(f"  - {p}" for p in problems),
                         "fix it; 'dragonball module check DIR' lists the same problems")
    recipe = load_recipe(env.root / images.BASE_DIR / "recipe.json")
    base = images.base_image_name(recipe.suite)
    if not env.engine.image_exists(base):
        raise BuildError(f"{base} is missing: the registry image is built FROM it",
                         "build it first: python build.py base")
    if mirror is None:
        mirror = debian_mirror(recipe.suite, env.apt_root, env.environ)
    ref = registry_ref()
    with env.reporter.step(f"build {ref}") as step:
        env.engine.build(context, ref, {"DEBIAN_MIRROR": mirror,
                                        "VERSION": dragonball.__version__},
                         build_line_sink(step))
    return ref
