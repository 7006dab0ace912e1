"""Zip archives in a file space: a folder downloaded as a zip (streamed), and an archive
extracted into a folder within limits (entries, total size: zip bombs)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from crispml.core.errors import Conflict, InvalidInput
from crispml.core.files.space import FileSpace, clean_relative

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int = 10_000
    max_total_bytes: int = 1_000_000_000


def zip_stream(space: FileSpace, folder: str) -> Iterator[bytes]:
    """A folder as a zip, produced piece by piece (never whole in memory)."""
    real = space.resolve(folder)
    if not real.is_dir():
        raise InvalidInput(f"'{folder}' is a file, not a folder.")
    pipe = _ChunkPipe()
    sink = cast(IO[bytes], pipe)  # write/tell/flush is all ZipFile needs to stream
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for directory, _, files in os.walk(real):
            for name in sorted(files):
                full = Path(directory) / name
                if full.is_symlink():
                    continue
                arcname = full.relative_to(real).as_posix()
                with (
                    full.open("rb") as src,
                    archive.open(arcname, "w", force_zip64=True) as dst,
                ):
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                        yield from pipe.drain()
    yield from pipe.drain()


def extract_zip(space: FileSpace, zip_path: str, folder: str, limits: ZipLimits) -> int:
    """Extract an archive into ``folder``; all or nothing. Returns the number of files."""
    space.require_writable()
    target = space.resolve(folder)
    with space.open_read(zip_path) as f:
        try:
            archive = zipfile.ZipFile(f)
        except zipfile.BadZipFile as exc:
            raise InvalidInput(f"'{zip_path}' is not a valid zip archive.") from exc
        with archive:
            members = archive.infolist()
            if len(members) > limits.max_entries:
                raise InvalidInput(
                    f"The archive has {len(members)} entries; the limit is {limits.max_entries}."
                )
            declared = sum(m.file_size for m in members)
            if declared > limits.max_total_bytes:
                raise InvalidInput(
                    f"The archive unpacks to {declared:,} bytes; the limit is "
                    f"{limits.max_total_bytes:,}."
                )
            plan = []
            for m in members:
                mode = m.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise InvalidInput(
                        f"The archive entry '{m.filename}' is a link; links are not extracted."
                    )
                try:
                    rel = clean_relative(m.filename)
                except InvalidInput as exc:
                    raise InvalidInput(
                        f"The archive entry '{m.filename}' would land outside the folder: {exc}"
                    ) from None
                if rel:
                    plan.append((m, rel))
            staging = Path(tempfile.mkdtemp(prefix=".extracting-", dir=target))
            try:
                written = files = 0
                for m, rel in plan:
                    dest = staging / rel
                    if m.is_dir():
                        dest.mkdir(parents=True, exist_ok=True)
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(m) as src, dest.open("wb") as out:
                        while chunk := src.read(CHUNK):
                            written += len(chunk)
                            if written > limits.max_total_bytes:
                                raise InvalidInput(
                                    "The archive unpacks to more than the limit of "
                                    f"{limits.max_total_bytes:,} bytes (it claims less)."
                                )
                            out.write(chunk)
                    files += 1
                clashes = [p.name for p in staging.iterdir() if (target / p.name).exists()]
                if clashes:
                    raise Conflict("Extracting would overwrite: " + ", ".join(sorted(clashes)[:5]))
                for p in staging.iterdir():
                    p.rename(target / p.name)
            except (
                OSError,
                zipfile.BadZipFile,
                RuntimeError,
                NotImplementedError,
                zlib.error,
                EOFError,
            ) as exc:
                # Damaged, encrypted or odd archives (an entry both file and folder, a name
                # too long): a readable refusal; the staging folder goes, nothing lands.
                raise InvalidInput(f"'{zip_path}' cannot be extracted: {exc}") from None
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    space.record("file.extract", zip_path, f"into={space.relative(target)} files={files}")
    return files


class _ChunkPipe:
    """A write-only, non-seekable file for ZipFile that hands out what was written so far."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        return None

    def drain(self) -> Iterator[bytes]:
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            yield data
