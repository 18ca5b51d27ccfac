"""Docker's multiplexed stdout/stderr stream (pure): what `exec start` and `logs` send
when the container has no TTY. Each frame is an 8-byte header (stream type: 0 stdin,
1 stdout, 2 stderr; three zero bytes; the payload's length, big-endian uint32) and the
payload. Bytes arrive in pieces that cut frames anywhere, so the parser keeps what it
has not yet made a whole frame of."""

from __future__ import annotations

import collections
import struct

HEADER = struct.Struct(">BxxxL")
STDOUT, STDERR = 1, 2


class StreamError(ValueError):
    """The bytes are not a Docker multiplexed stream."""


class FrameParser:
    """Feed bytes as they arrive; get (stream, payload) for every whole frame."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._pending + data
        frames, at = [], 0
        while len(buffer) - at >= HEADER.size:
            stream, size = HEADER.unpack_from(buffer, at)
            if stream > STDERR:
                raise StreamError(f"unknown stream type {stream} at byte {at} of a frame "
                                  "(a TTY container's raw output?)")
            if len(buffer) - at - HEADER.size < size:
                break
            start = at + HEADER.size
            frames.append((stream, buffer[start:start + size]))
            at = start + size
        self._pending = buffer[at:]
        return frames

    @property
    def incomplete(self) -> bool:
        """Bytes of a frame not yet whole: at the end of the stream, it was cut short."""
        return bool(self._pending)


def demux(data: bytes) -> list[tuple[int, bytes]]:
    """Every frame of a whole stream; StreamError if the stream ends inside a frame."""
    parser = FrameParser()
    frames = parser.feed(data)
    if parser.incomplete:
        raise StreamError("the stream ends inside a frame")
    return frames


class Tail:
    """The last `limit` bytes written to it (older ones dropped), and how many it saw."""

    def __init__(self, limit: int) -> None:
        self.limit, self.total = limit, 0
        self._chunks: collections.deque = collections.deque()
        self._size = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        self._chunks.append(data)
        self._size += len(data)
        while len(self._chunks) > 1 and self._size - len(self._chunks[0]) >= self.limit:
            self._size -= len(self._chunks.popleft())

    def value(self) -> bytes:
        return b"".join(self._chunks)[-self.limit:] if self.limit else b""


def text_tail(data: bytes, limit: int) -> str:
    """The last `limit` bytes as text; a UTF-8 sequence cut at the start is dropped."""
    return data[-limit:].decode("utf-8", errors="replace").lstrip("\ufffd")


def lines_of(frames, limit: int | None = None) -> list[str]:
    """The text lines of frames (stdout and stderr in the order they came), the last
    `limit` of them."""
    text = b"".join(payload for _, payload in frames).decode("utf-8", errors="replace")
    lines = text.splitlines()
    return lines[-limit:] if limit else lines
