"""Incremental reading of a growing file: each read returns only what was appended since the
last one. A file that shrank, was rewritten in place or was replaced (another inode) is read
again from its start. Plain Python, no numpy: the CLI's log tailing uses it too."""

from __future__ import annotations

import os
from pathlib import Path

from crispml.core.records import open_job_file

MAX_READ = 64 * 1024 * 1024  # one read's size: a huge backlog is read in steps
_FINGERPRINT = 64  # bytes before the offset checked on each read: a rewritten file starts over
MAX_PARTIAL = 16 * 1024 * 1024  # an unfinished "line" longer than this is dropped


class FileTail:
    """The bytes appended to a growing file, across truncation, rewriting and rotation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.size = 0  # the file's size at the last read
        self._tail = b""  # the last bytes read: if they changed, the file was rewritten
        self.resets = 0  # how often the file was truncated or replaced (readers start over)

    def _reset(self) -> None:
        self.offset, self._tail = 0, b""
        self.resets += 1

    def appended(self, max_bytes: int = MAX_READ) -> bytes:
        """The bytes appended since the last read, at most ``max_bytes`` (b"" if none)."""
        try:
            stat = os.stat(self.path)
        except OSError:  # gone, or a link to nowhere or to itself: nothing to read now
            if self.offset:
                self._reset()
            self.inode, self.size = None, self.offset  # not "behind": readers would spin
            return b""
        if self.inode is not None and (stat.st_ino != self.inode or stat.st_size < self.offset):
            self._reset()
        self.inode, self.size = stat.st_ino, stat.st_size
        if stat.st_size == self.offset:
            return b""
        try:
            opened = open_job_file(self.path)  # a job may have put a link in its place
        except OSError:
            self.size = self.offset  # nothing readable: not "behind", or readers would spin
            return b""
        with opened as f:
            f.seek(self.offset - len(self._tail))
            if self._tail and f.read(len(self._tail)) != self._tail:
                self._reset()  # same size or larger, other content: rewritten in place
                f.seek(0)
            data = f.read(max_bytes)
        self.offset += len(data)
        self._tail = (self._tail + data)[-_FINGERPRINT:]
        return data

    @property
    def behind(self) -> bool:
        """Whether the last read stopped short of the file's end (``max_bytes`` reached)."""
        return self.offset < self.size


class LineReader(FileTail):
    """New complete lines of a growing text file; a partial last line waits for its end."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._partial = b""

    def _reset(self) -> None:
        super()._reset()
        self._partial = b""

    def read(self, max_bytes: int = MAX_READ) -> list[str]:
        block = self.read_block(max_bytes)
        return [p.decode("utf-8", "replace") for p in block.split(b"\n")[:-1]] if block else []

    def read_block(self, max_bytes: int = MAX_READ) -> bytes:
        """New complete lines as bytes, each ending with a newline (b"" if none)."""
        data = self.appended(max_bytes)
        if not data:
            return b""
        data = self._partial + data
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]  # a partial last line waits for its end
        if len(self._partial) > MAX_PARTIAL:  # no line is that long: not lines at all
            self._partial = b""
        return data[:end]
