"""The node label every server the portal enrolled carries, and the constraint that keeps
every DragonBall task (the apps', their moving addresses', the agent's) on those servers.

Only a manager can label a node, and the portal labels a node only when its device
reported the join with its own device token (portal/api.py `/joined`): a machine that
joined the Swarm with a leaked join token is given no task, not even for the seconds
before the portal drains it (portal/strangers.py), so no secret of a task reaches it.
"""

from dragonball.errors import InvalidInput, ReleaseError

ENROLLED = "io.dragonball.enrolled"
ENROLLED_CONSTRAINT = f"node.labels.{ENROLLED}==true"

# --- which DragonBall and which release each server runs (issue 18) -------------------------
#
# Two labels on every server's Swarm node, written by a manager only (a worker cannot edit
# nodes), so what the portal shows is what the managers last wrote:
#
#   io.dragonball.version   DragonBall's own (runtime) version, e.g. "0.9.0"
#   io.dragonball.release   the release it runs, "<name> <version>", e.g. "notes 0.1.0"
#
# Who writes them: the portal for its own node each time it starts (portal/versions.py:
# after an install and after an upgrade restarted it), the portal for a device when the
# device reports its join with its versions (portal/api.py `/joined`), and the upgrade for
# each server once it switched it, or switched it back (`set_versions`). A node without
# them (a server installed before these labels) is shown as "unknown". Labels, not the
# portal's store: they live in the Swarm's raft beside the node itself, go when the node
# goes, and a restore of the portal's state (an upgrade's rollback) cannot make them lie.

VERSION = "io.dragonball.version"
RELEASE = "io.dragonball.release"
#: What a version or a release name may be in a label (builder/release.py's rules, wider).
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+~-")
TOKEN_MAX = 64


class VersionInvalid(ReleaseError, InvalidInput):
    """A version given to `set_versions` cannot be a label (a caller's mistake)."""


def is_token(value) -> bool:
    """Whether `value` can be a version or a release name in a label (pure)."""
    return isinstance(value, str) and 0 < len(value) <= TOKEN_MAX and \
        set(value) <= _TOKEN_CHARS


def version_labels(version: str | None, release) -> dict:
    """The labels saying `version` (DragonBall's) and `release` ({"name", "version"}, an
    installed-release record, or None): only what is known and well formed (pure)."""
    labels = {}
    if is_token(version):
        labels[VERSION] = version
    if release and is_token(release.get("name")) and is_token(release.get("version")):
        labels[RELEASE] = f"{release['name']} {release['version']}"
    return labels


def versions_of(labels) -> dict:
    """{"version": str or None, "release": {"name", "version"} or None} from a node's
    labels; None for what the labels do not say (pure, never raises)."""
    labels = labels or {}
    version = labels.get(VERSION)
    name, _, release_version = (labels.get(RELEASE) or "").partition(" ")
    release = {"name": name, "version": release_version} \
        if is_token(name) and is_token(release_version) else None
    return {"version": version if is_token(version) else None, "release": release}


def set_versions(cluster, node_ids, version: str, release) -> list[str]:
    """Label each of `node_ids` with `version` (DragonBall's) and `release` ({"name",
    "version"} or an installed-release record; None leaves the release label as it is):
    what the upgrade calls once it switched those servers to the new release, and again
    with the old one after a rollback. `cluster` is anything with the Swarm adapter's
    `update_node(node_id, labels=...)` (dragonball.swarm.Swarm, on a manager); its errors
    (SwarmError) pass through. The IDs whose labels changed."""
    labels = version_labels(version, release)
    if VERSION not in labels:
        raise VersionInvalid(f"{version!r} is not a DragonBall version",
                             "give the runtime's version, e.g. dragonball.__version__")
    return [node_id for node_id in node_ids if cluster.update_node(node_id, labels=labels)]
