"""Copy an application's volume from one server to another through their agents (issue 11,
`dragonball move`; docs/agent.md, "Volumes"): the source agent packs the volume into a
staged tar (refused while a running container uses it), the portal streams it to a staged
file on the target's agent piece by piece (never holding more than a chunk), resuming from
what the target holds after a broken connection, and the target checks the sha256 and the
members before it extracts them into a new volume. The staged files are removed on both
sides whatever happens; the source volume is never changed, so a failed copy leaves it in
force and the copy is simply run again.

    with AgentClient() as agents:
        copy_volume(agents, "10.0.0.1", "10.0.0.2", "notes_store_storage.1",
                    {"io.dragonball.app": "notes", "io.dragonball.service": "store"},
                    progress=lambda done, total: ...)
"""

from __future__ import annotations

import logging
import time

from dragonball.agent_client import AgentClient, AgentError
from dragonball.errors import ClientError, Failed

log = logging.getLogger(__name__)

PIECE_BYTES = 32 << 20   # one PUT to the target (the agent takes at most 64 MiB in one)
TRIES = 4                # broken pieces in a row before the copy gives up
PAUSE_S = 1.0            # before trying a piece again, times the failures in a row
SETTLE_S = 60.0         # the target's end of a broken write, waited for this long at most


class VolumeCopyFailed(ClientError, Failed):
    """A volume's copy between two servers failed at `stage` (export, copy, import); the
    source volume is untouched and in force. `status` and `body`: the agent's answer."""

    def __init__(self, message: str, hint: str, stage: str,
                 cause: AgentError | None = None) -> None:
        super().__init__(message, hint, status=cause.status if cause else None,
                         body=cause.body if cause else None)
        self.stage = stage


def copy_volume(agents: AgentClient, source_address: str, target_address: str, name: str,
                labels: dict, progress=None, *, target_name: str | None = None,
                tries: int = TRIES, piece_bytes: int = PIECE_BYTES,
                pause=time.sleep) -> dict:
    """Copy volume `name` from the server at `source_address` to `target_address` (as
    `target_name`, `name` by default, created with `labels`). `progress(done, total)` is
    called after each piece (bytes of the tar). Returns {"name", "size", "sha256",
    "seconds"}; VolumeCopyFailed says what failed and how to retry."""
    copy = _Copy(agents, source_address, target_address, name, target_name or name)
    started = time.monotonic()
    try:
        exported = copy.step("export", lambda: agents.export_volume(source_address, name))
        copy.source_id = exported["id"]
        copy.target_id = copy.step("copy", lambda: agents.new_transfer(target_address))
        copy.stream(exported["size"], progress or (lambda done, total: None), tries,
                    piece_bytes, pause)
        done = copy.step("import", lambda: agents.import_volume(
            target_address, copy.target_name, copy.target_id, exported["sha256"], labels))
    finally:
        copy.clean()
    return {**done, "seconds": round(time.monotonic() - started, 3)}


class _Copy:
    """One copy's state: where from and to, the staged files' ids, the errors it raises."""

    def __init__(self, agents: AgentClient, source: str, target: str, name: str,
                 target_name: str) -> None:
        self.agents, self.source, self.target = agents, source, target
        self.name, self.target_name = name, target_name
        self.source_id = self.target_id = None

    def failed(self, stage: str, why: str, cause: AgentError | None = None,
               hint: str = "") -> VolumeCopyFailed:
        message = (f"copying volume {self.name} from {self.source} to {self.target} "
                   f"failed at the {stage}: {why}")
        untouched = (f"The source volume {self.name} on {self.source} is untouched and "
                     "still in force; the staged files were removed. Run the same command "
                     "again to retry.")
        hint = f"{hint} {untouched}" if hint else untouched
        return VolumeCopyFailed(message, hint, stage, cause)

    def step(self, stage: str, call):
        try:
            return call()
        except AgentError as e:
            raise self.failed(stage, e.message, e, _hint(stage, e)) from e

    def stream(self, size: int, progress, tries: int, piece_bytes: int, pause) -> None:
        """Source to target, a piece per PUT. After a failure the target says how much it
        holds (a broken PUT keeps what arrived) and the copy goes on from there; `tries`
        failures in a row end it."""
        offset, failures = 0, 0
        while offset < size:
            try:
                if failures:
                    offset = self.settled_size(pause)
                    if offset >= size:
                        break
                pieces = self.agents.read_transfer(self.source, self.source_id, offset,
                                                   min(piece_bytes, size - offset))
                held = self.agents.write_transfer(self.target, self.target_id, offset,
                                                  pieces)["size"]
            except AgentError as e:
                failures += 1
                if failures >= tries:
                    raise self.failed("copy", f"{e.message} ({failures} tries in a row, at "
                                              f"byte {offset} of {size})", e) from e
                log.warning("copy of %s broke at byte %d of %d (%s): again", self.name,
                            offset, size, e.message)
                pause(PAUSE_S * failures)
                continue
            failures, offset = 0, held
            progress(offset, size)
        if offset != size:
            raise self.failed("copy", f"the target holds {offset} bytes, the source has "
                                      f"{size}")

    def settled_size(self, pause) -> int:
        """What the target holds once the broken write has ended there (the agent sees a
        connection gone only when it reads from it again)."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            state = self.agents.transfer_size(self.target, self.target_id)
            if not state["busy"]:
                return state["size"]
            if time.monotonic() > deadline:
                raise AgentError(f"the staged file on {self.target} is still being written "
                                 f"{SETTLE_S:.0f} s after the connection broke")
            pause(0.2)

    def clean(self) -> None:
        """Remove the staged files on both sides (an agent that does not answer removes
        its own after a day)."""
        for address, tid in ((self.source, self.source_id), (self.target, self.target_id)):
            if tid:
                try:
                    self.agents.delete_transfer(address, tid)
                except AgentError as e:
                    log.warning("staged file %s on %s stays (removed after a day): %s",
                                tid, address, e.message)


def _hint(stage: str, error: AgentError) -> str:
    """What to do first, from the agent's answer."""
    if stage == "export" and error.status == 409:
        return "Stop the slot that uses the volume first: the copy must see data at rest."
    if stage == "import" and error.status == 409:
        return ("The target already has a volume of that name with data: remove it there "
                "(once you are sure it is not needed) before copying again.")
    if stage == "import" and error.status == 422:
        return "The bytes that arrived differ from the source's (or are no volume's): copy again."
    return ""
