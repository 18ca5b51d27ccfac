"""Push the images of an archive (images.tar, read in place) to a registry.

Observe (HEAD every blob and tag, in parallel), plan (`plan.plan_push`, pure),
then execute in three waves on a thread pool: uploads, then mounts (their
sources exist by then), then manifests (their blobs exist by then). Blob bodies
are streamed from the archive's file in 1 MiB reads; nothing is extracted and
no blob is held whole in memory.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable

from dragonball.registry.client import RegistryClient, RegistryError, RegistryInputInvalid
from dragonball.registry.plan import (Action, BlobStep, ImageToPush, ManifestStep, Observed,
                                      PushPlan, blob_checks, image_to_push, plan_push,
                                      select_images, tag_checks)

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class PushProgress:
    """What a push reports as it goes; the default ignores it all. Called from worker threads."""

    def planned(self, plan: PushPlan) -> None:
        """The plan is made; nothing is sent yet."""

    def advanced(self, nbytes: int) -> None:
        """`nbytes` more bytes of blob bodies went out."""

    def blob_done(self, step: BlobStep) -> None:
        """A blob was uploaded or mounted."""

    def manifest_done(self, step: ManifestStep) -> None:
        """A manifest was put: the image can be pulled."""


class _BytesCallback(PushProgress):
    """A plain callable given as `progress`: it gets the byte counts."""

    def __init__(self, callback: Callable[[int], None]) -> None:
        self.advanced = callback


@dataclasses.dataclass(frozen=True)
class PushResult:
    plan: PushPlan
    seconds: float


class _Cancelled(Exception):
    """Another upload failed or the user interrupted: stop sending this one."""


class _BlobBody:
    """One blob streamed out of the archive for requests: sized, counted, cancellable.

    Every view of the archive shares one open file (seek + read), so reads are
    serialized by `lock`; each read takes 1 MiB and serves it in the sizes the
    HTTP layer asks for.
    """

    def __init__(self, view, size: int, lock: threading.Lock,
                 on_bytes: Callable[[int], None], cancel: threading.Event) -> None:
        self._view, self._size, self._lock = view, size, lock
        self._on_bytes, self._cancel = on_bytes, cancel
        self._buffer, self._offset = b"", 0

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        if self._cancel.is_set():
            raise _Cancelled()
        if self._offset >= len(self._buffer):
            with self._lock:
                self._buffer, self._offset = self._view.read(CHUNK), 0
        end = len(self._buffer) if n is None or n < 0 else self._offset + n
        data = self._buffer[self._offset:end]
        self._offset += len(data)
        self._on_bytes(len(data))
        return data


class _Pusher:
    def __init__(self, archive, client: RegistryClient, progress: PushProgress, workers: int):
        self.archive, self.client, self.progress = archive, client, progress
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="push")
        self.lock, self.cancel = threading.Lock(), threading.Event()

    def observe(self, images: list[ImageToPush], elsewhere: dict | None = None) -> Observed:
        blobs, tags = blob_checks(images), tag_checks(images)
        wanted = {b.digest for i in images for b in i.blobs}
        blobs += [(r, d) for d, r in (elsewhere or {}).items()
                  if d in wanted and (r, d) not in blobs]
        present = self._all(lambda key: self.client.blob_exists(*key), blobs)
        digests = self._all(lambda key: self.client.tag_digest(*key), tags)
        return Observed(frozenset(k for k, there in zip(blobs, present) if there),
                        {k: d for k, d in zip(tags, digests) if d})

    def execute(self, plan: PushPlan) -> None:
        self._all(self._upload, plan.steps(Action.UPLOAD))
        self._all(self._mount, plan.steps(Action.MOUNT))
        self._all(self._put_manifest, plan.manifests_to_put)

    def _upload(self, step: BlobStep, location: str | None = None) -> None:
        location = location or self.client.start_upload(step.repository)
        body = _BlobBody(self.archive.blob(step.digest), step.size, self.lock,
                         self.progress.advanced, self.cancel)
        self.client.finish_upload(location, step.digest, body, step.size)
        self.progress.blob_done(step)

    def _mount(self, step: BlobStep) -> None:
        location = self.client.mount_blob(step.repository, step.digest, step.source)
        if location is None:
            self.progress.blob_done(step)
            return
        log.info("registry declined to mount %s from %s: uploading it", step.digest, step.source)
        self._upload(step, location)

    def _put_manifest(self, step: ManifestStep) -> None:
        with self.lock:
            data = self.archive.blob_bytes(step.digest)
        self.client.put_manifest(step.repository, step.tag, data)
        self.progress.manifest_done(step)

    def _all(self, work: Callable, items: Iterable) -> list:
        """Run `work` on every item in the pool; the first error cancels the rest and is raised."""
        futures = [self.pool.submit(work, item) for item in items]
        try:
            done, _ = concurrent.futures.wait(futures,
                                              return_when=concurrent.futures.FIRST_EXCEPTION)
            failed = next((f for f in futures if f in done and f.exception()), None)
            if failed is not None:
                self._stop(futures)
                raise failed.exception()
        except BaseException:
            self._stop(futures)
            raise
        return [f.result() for f in futures]

    def _stop(self, futures: list) -> None:
        self.cancel.set()
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def push_archive(archive, client: RegistryClient, refs: Iterable[str] | None = None,
                 workers: int = 4,
                 progress: PushProgress | Callable[[int], None] | None = None,
                 elsewhere: dict | None = None) -> PushResult:
    """Push the images of `archive` (an `ImageArchive`; `refs` picks some) to `client`'s registry.

    `progress` is a `PushProgress`, or a callable that gets each count of bytes sent.
    `elsewhere` ({digest: repository}): blobs the archive left out (an app-only release) and
    where the registry should have them; one it has nowhere is refused before any upload.

    Raises `RegistryInputInvalid` for a ref the archive does not hold (before anything is
    sent) and a `RegistryError` for anything the registry refuses.
    """
    started = time.monotonic()
    images, unknown = select_images([image_to_push(i) for i in archive.images], refs)
    if unknown:
        raise RegistryInputInvalid(f"the archive holds no image {', '.join(unknown)}",
                                   "list what it holds with 'dragonball images list'")
    if progress is None:
        progress = PushProgress()
    elif not isinstance(progress, PushProgress):
        progress = _BytesCallback(progress)
    pusher = _Pusher(archive, client, progress, max(1, workers))
    try:
        plan = plan_push(images, pusher.observe(images, elsewhere), elsewhere)
        held = archive.digests() if elsewhere else None   # only an app release leaves out
        absent = sorted({s.digest for s in plan.steps(Action.UPLOAD)
                         if held is not None and s.digest.split(":", 1)[1] not in held})
        if absent:
            raise RegistryInputInvalid(
                f"the registry lacks {len(absent)} layer(s) this release left out (it was "
                f"built for a cluster that has them): {', '.join(d[:19] for d in absent[:5])}",
                "add the release it was built --since first, or build it without --since")
        progress.planned(plan)
        pusher.execute(plan)
    except _Cancelled as e:  # only when a sibling failed first; never the root cause
        raise RegistryError("push cancelled", "see the first error above") from e
    finally:
        pusher.close()
    return PushResult(plan, time.monotonic() - started)
