"""Images of DragonBall's own platform, built like any module image: the registry, the
node agent and the keepalived of an app's moving address; and etcd, the portal's replicated
state (a plain image: etcd is its entry point, docs/portal-ha.md).

`build_registry_image(env)` builds ``dragonball/registry:<DragonBall version>`` from
base_images/registry, `build_agent_image(env)` ``dragonball/agent:<DragonBall version>`` from
base_images/agent (module folders that follow docs/module-spec.md, dogfooding it), on top of
``dragonballbase:<suite>``, which must be built first (`pipeline.build_base`).
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
import shutil
import tempfile

import dragonball
from dragonball.errors import BuildError
from dragonball.module import scan, validate

from builder import images
from builder.apt_sources import debian_mirror
from builder.errors import BuildInputInvalid
from builder.pipeline import BuildEnv, build_line_sink
from builder.recipe import load_recipe

#: Where the agent's image carries the release's runtime (its top folder `dragonball/` and
#: runtime.sha256); the agent's start action puts it in place on its server.
RUNTIME_IN_AGENT = "/opt/dragonball-runtime"

log = logging.getLogger(__name__)

REGISTRY_DIR = "base_images/registry"
REGISTRY_MODULE = "registry"
REGISTRY_REPOSITORY = "dragonball/registry"
AGENT_DIR = "base_images/agent"
AGENT_MODULE = "agent"
AGENT_REPOSITORY = "dragonball/agent"
KEEPALIVED_DIR = "base_images/keepalived"
KEEPALIVED_MODULE = "keepalived"
KEEPALIVED_REPOSITORY = "dragonball/keepalived"
ETCD_DIR = "base_images/etcd"
ETCD_REPOSITORY = "dragonball/etcd"


def registry_ref(version: str = dragonball.__version__) -> str:
    """The registry image's name in the engine and in the .bin."""
    return f"{REGISTRY_REPOSITORY}:{version}"


def agent_ref(version: str = dragonball.__version__) -> str:
    """The agent image's name in the engine and in the .bin."""
    return f"{AGENT_REPOSITORY}:{version}"


def keepalived_ref(version: str = dragonball.__version__) -> str:
    """The image of an app's moving address (docs/app-address.md) in the engine and the .bin."""
    return f"{KEEPALIVED_REPOSITORY}:{version}"


def etcd_ref(version: str = dragonball.__version__) -> str:
    """The image of the portal's replicated state (docs/portal-ha.md) in the engine and .bin."""
    return f"{ETCD_REPOSITORY}:{version}"


def build_registry_image(env: BuildEnv, mirror: str | None = None) -> str:
    """Build the registry image (Debian's docker-registry as a module); return its ref.

    `mirror` is the Debian mirror URL (a `BuildPlan.mirror`); by default it is read
    from the build host's apt sources, as for every other image.
    """
    return _build_module_image(env, REGISTRY_DIR, REGISTRY_MODULE, registry_ref(),
                               mirror=mirror, apt=True)


def build_agent_image(env: BuildEnv, mirror: str | None = None,
                      runtime: pathlib.Path | None = None) -> str:
    """Build the node agent's image (its Python libraries from Debian's packages: hypercorn,
    starlette, psutil, docker); return its ref. `mirror` as for build_registry_image.

    `runtime` (the release's runtime.tar.gz): carried in the image at RUNTIME_IN_AGENT, with
    its SHA-256, so that every server's agent puts the release's runtime in place when it
    starts (docs/agent.md, "The runtime"): an upgrade reaches every server through the
    agents' image, from the portal's registry; nobody visits them."""
    ref = _build_module_image(env, AGENT_DIR, AGENT_MODULE, agent_ref(), mirror=mirror,
                              apt=True)
    if runtime is None:
        return ref
    return with_runtime(env, ref, runtime, ref)


def with_runtime(env: BuildEnv, base: str, runtime: pathlib.Path, ref: str) -> str:
    """`base` with the runtime `runtime` (a runtime.tar.gz, top folder dragonball/) added at
    RUNTIME_IN_AGENT with its SHA-256, built as `ref`; return `ref`."""
    with tempfile.TemporaryDirectory(prefix="agent-runtime-") as folder:
        context = pathlib.Path(folder)
        shutil.copyfile(runtime, context / "runtime.tar.gz")
        digest = hashlib.sha256(runtime.read_bytes()).hexdigest()
        (context / "runtime.sha256").write_text(digest + "\n")
        (context / "Dockerfile").write_text(
            f"FROM {base}\n"
            f"ADD runtime.tar.gz {RUNTIME_IN_AGENT}/\n"
            f"COPY runtime.sha256 {RUNTIME_IN_AGENT}/runtime.sha256\n")
        with env.reporter.step(f"build {ref}: with the runtime {digest[:12]}") as step:
            env.engine.build(context, ref, {}, build_line_sink(step))
    return ref


def build_keepalived_image(env: BuildEnv, mirror: str | None = None) -> str:
    """Build the image of an app's moving address (Debian's keepalived and iproute2); return
    its ref. `mirror` as for build_registry_image."""
    return _build_module_image(env, KEEPALIVED_DIR, KEEPALIVED_MODULE, keepalived_ref(),
                               mirror=mirror, apt=True)


def build_etcd_image(env: BuildEnv, mirror: str | None = None) -> str:
    """Build the image of the portal's replicated state (Debian's etcd-server); return its
    ref. Not a module: etcd is its entry point. `mirror` as for build_registry_image."""
    return _build_image(env, ETCD_DIR, etcd_ref(), mirror=mirror, apt=True)


def _build_module_image(env: BuildEnv, folder: str, module: str, ref: str,
                        mirror: str | None = None, apt: bool = False) -> str:
    """Check the module folder against the spec, then build `folder`/Dockerfile as `ref`."""
    context = env.root / folder
    _, problems = validate(scan(str(context / module)))
    if problems:
        raise BuildInputInvalid(f"{context / module} does not follow the module spec:\n" +
                                "\n".join(f"  - {p}" for p in problems),
                                "fix it; 'dragonball module check DIR' lists the same problems")
    return _build_image(env, folder, ref, mirror=mirror, apt=apt)


def _build_image(env: BuildEnv, folder: str, ref: str, mirror: str | None = None,
                 apt: bool = False) -> str:
    """Build `folder`/Dockerfile as `ref`, FROM the base image, which must exist.

    `apt`: the Dockerfile installs Debian packages, so it gets DEBIAN_MIRROR (`mirror`, by
    default read from the build host's apt sources, as for every other image).
    """
    context = env.root / folder
    recipe = load_recipe(env.root / images.BASE_DIR / "recipe.json")
    base = images.base_image_name(recipe.suite)
    if not env.engine.image_exists(base):
        raise BuildError(f"{base} is missing: {ref} is built FROM it",
                         "build it first: python build.py base")
    buildargs = {"VERSION": dragonball.__version__}
    if apt:
        if mirror is None:
            mirror = debian_mirror(recipe.suite, env.apt_root, env.environ)
        buildargs["DEBIAN_MIRROR"] = mirror
    with env.reporter.step(f"build {ref}") as step:
        env.engine.build(context, ref, buildargs, build_line_sink(step))
    return ref
