"""images.load: every server holds the release's images from its own copy of the .bin.

Tasks name their image by image ID (docs/orchestrator.md, "Images everywhere"), so a
task Swarm places on any server starts from what that server holds, with no registry:
the portal's server may be gone. Each server gets them at its install or join, before it
joins the Swarm, by `docker load` of the .bin's image archive streamed in place (nothing
extracted or recompressed; registry.load): the loaded images keep the archive's image IDs,
the IDs the orchestrator pins tasks by. Images the engine already holds (by ID) are not
loaded again, so a re-run loads nothing.

Reset removes the tags it loaded (`docker image rm`, which leaves an image a container
still uses); /var/lib/docker itself stays, as for every engine reset (docs/installer.md).
"""

from __future__ import annotations

import logging

from dragonball.errors import InstallerError
from dragonball.installer.steps import Step
from dragonball.installer.undo import undoer

log = logging.getLogger(__name__)

STEP_ID = "images.load"


def images_step(ctx) -> Step:
    """Every role's: the release's images into this server's engine (installer/roles.py)."""
    return Step(STEP_ID, "the release's images, loaded from this .bin",
                lambda: load_release_images(ctx))


def to_load(images, held_ids: set) -> list:
    """The archive images whose ID the engine does not hold (pure)."""
    return [i for i in images if i.config["digest"] not in held_ids]


def load_release_images(ctx) -> dict:
    from dragonball.installer.portal.registry import docker_load, image_id, release_archive
    host, undo = ctx.host, ctx.undo(STEP_ID)
    with release_archive() as archive:
        held = {found for found in (image_id(host, i.config["digest"])
                                    for i in archive.images) if found}
        missing = to_load(archive.images, held)
        if not missing:
            return undo.entries()
        undo.note("images", {"kind": "release_images", "refs": [i.ref for i in missing]})
        size = sum(i.size for i in missing)
        ctx.progress.update(f"docker load of {len(missing)} image(s) ({size / 1e6:.0f} MB "
                            "compressed)")
        docker_load(host, archive, missing)
    still = [i.ref for i in missing if image_id(host, i.ref) != i.config["digest"]]
    if still:
        raise InstallerError(f"docker load did not give {', '.join(still)} their image IDs",
                             "run the install again")
    log.info("loaded %d image(s): %s", len(missing), ", ".join(i.ref for i in missing))
    return undo.entries()


@undoer("release_images")
def undo_release_images(host, entry: dict) -> None:
    if host.which("docker"):
        for ref in entry["refs"]:
            host.run(["docker", "image", "rm", ref], check=False, timeout=120)
