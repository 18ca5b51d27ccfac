"""The upgrade's errors (each one layer class and one category class: dragonball.errors)."""

from __future__ import annotations

from dragonball.errors import Failed, InvalidInput, ReleaseError, Unavailable


class UpgradeRefused(ReleaseError, InvalidInput):
    """The .bin is not an upgrade of this cluster (another product, older, unsigned)."""


class ClusterNotReady(ReleaseError, Unavailable):
    """A server is down or unreachable, no quorum, no room: nothing was changed."""


class UpgradeFailed(ReleaseError, Failed):
    """A phase failed; what was done is rolled back."""
