"""Small JSON records a service keeps beside its jobs (``server.json`` of a JupyterLab or of the
model API server): read leniently, written atomically and readable only by crispml; and the
safe way to read what a job wrote."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO


def read(path: Path) -> dict[str, Any] | None:
    """The record, or None when it is missing or not a JSON object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write(path: Path, value: dict[str, Any]) -> None:
    """Replace the record at once (a reader sees the old or the new one), mode 0600."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def open_job_file(path: Path) -> BinaryIO:
    """Open a file a job wrote, for reading, without following a link a job may have put in
    its place (a job's folder is the job's to change; the server reads what is there as data
    only). Raises OSError for a link, a missing file or anything but a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path.name} is not a regular file")
    return os.fdopen(fd, "rb")


def read_job_file(path: Path, max_bytes: int) -> bytes:
    """The whole of a small file a job wrote (see ``open_job_file``), at most ``max_bytes``."""
    with open_job_file(path) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(f"{path.name} is larger than {max_bytes:,} bytes")
    return data
