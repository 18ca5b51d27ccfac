"""How reset undoes the portal's steps: the undo handlers of the `portal_*` kinds."""

from __future__ import annotations

import shutil

from dragonball.installer.portal.service import stop_pidfile
from dragonball.installer.undo import undoer


@undoer("portal_swarm")
def undo_swarm(host, entry: dict) -> None:
    done = host.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], check=False,
                    timeout=30)
    if done.ok and done.out.strip() in ("active", "pending", "error"):
        host.run(["docker", "swarm", "leave", "--force"], timeout=120)


@undoer("portal_file")
def undo_private_file(host, entry: dict) -> None:
    """Our file gone (with the folders made for it); one that was there before is kept."""
    if not entry.get("existed"):
        host.remove(entry["path"])
        host.remove_empty_dirs(entry.get("created_dirs") or [])


@undoer("portal_tree")
def undo_tree(host, entry: dict) -> None:
    shutil.rmtree(host.path(entry["path"]), ignore_errors=True)
    host.remove_empty_dirs(entry.get("created_dirs") or [])


@undoer("portal_image")
def undo_image(host, entry: dict) -> None:
    if host.which("docker"):
        host.run(["docker", "image", "rm", entry["ref"]], check=False, timeout=120)


@undoer("portal_container")
def undo_container(host, entry: dict) -> None:
    if host.which("docker"):
        host.run(["docker", "rm", "--force", "--volumes", entry["name"]], check=False,
                 timeout=120)


@undoer("portal_login")
def undo_login(host, entry: dict) -> None:
    if host.which("docker"):
        host.run(["docker", "logout", entry["registry"]], check=False, timeout=60)


@undoer("portal_service")
def undo_service(host, entry: dict) -> None:
    if host.which("systemctl") is None:
        return
    host.run(["systemctl", "stop", entry["unit"]], check=False, timeout=60)
    if not entry.get("was_enabled"):
        host.run(["systemctl", "disable", entry["unit"]], check=False, timeout=60)


@undoer("portal_process")
def undo_process(host, entry: dict) -> None:
    stop_pidfile(host, entry["pidfile"])
    host.remove(entry["pidfile"])
