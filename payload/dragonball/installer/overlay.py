"""Can this server's kernel encrypt the apps' overlay networks? (shared/overlay.py says why
it is asked and what is done with the answer.) Asked at install, on the portal and on each
device; the answer becomes the node label `io.dragonball.overlay-encryption`."""

from __future__ import annotations

import logging

from dragonball.shared import overlay

log = logging.getLogger(__name__)


def probe(host) -> bool:
    """True when the probe passes in a network namespace of its own (`unshare -n`: nothing
    changes here); False, with the reason logged, when it fails or cannot run."""
    missing = [tool for tool in ("unshare", "ip", "iptables") if host.which(tool) is None]
    if missing:
        log.warning("overlay encryption not probed: %s missing; the apps' overlay networks "
                    "stay unencrypted", ", ".join(missing))
        return False
    done = host.run(["unshare", "-n", "sh", "-c", overlay.probe_script()], check=False,
                    timeout=30)
    if not done.ok:
        reason = (done.err.strip().splitlines() or ["no reason given"])[-1]
        log.warning("this kernel cannot encrypt overlay networks (%s): the apps' networks "
                    "stay unencrypted (docs/security.md)", reason)
    return done.ok
