"""The environment and search path a child process of the frozen runtime gets."""

from __future__ import annotations

#: Where `docker` and `dockerd` are looked for, in this order (root's usual PATH): the
#: bundled engine's own tree first (when install put it there, paths.ENGINE_BIN: its client
#: goes with its daemon), then /usr/bin, since some hosts keep an unrelated client in
#: /usr/local/bin; last, the tree's iptables, for a server that has none.
SEARCH_PATH = ("/opt/dragonball/engine/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin",
               "/usr/local/bin", "/usr/local/sbin", "/opt/dragonball/engine/fallback")


def child_environment(environ: dict) -> dict:
    """`environ` for a child process: the frozen runtime's LD_LIBRARY_PATH undone.

    PyInstaller's bootloader points LD_LIBRARY_PATH at the bundled libraries and keeps
    the caller's value in LD_LIBRARY_PATH_ORIG; a child such as `docker` must not load
    our libssl or libz.
    """
    env = dict(environ)
    original = env.pop("LD_LIBRARY_PATH_ORIG", None)
    env.pop("LD_LIBRARY_PATH", None)
    if original is not None:
        env["LD_LIBRARY_PATH"] = original
    return env
