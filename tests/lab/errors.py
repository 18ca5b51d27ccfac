"""The lab's one exception, a branch of DragonBall's tree (dragonball.errors)."""

from __future__ import annotations

from dragonball.errors import DragonBallError


class LabError(DragonBallError):
    """The lab of local servers could not be brought up, driven or taken down.

    The message says what failed and on which server; the hint says what to do next.
    """
