"""DragonBall: one self-extracting file that turns servers into a cluster, offline.

This package is also copied into every module image (the supervisor), so it and
`dragonball.errors`, `dragonball.module`, `dragonball.supervisor` import nothing
outside the standard library.
"""

__version__ = "0.1.0"
