"""Exclusive locks shared by every process using one database (web servers, CLI, supervisors).

PostgreSQL: an advisory lock on a dedicated connection. SQLite: an flock on a file beside the
database (all SQLite users are on one machine).
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from crispml.store.db import Database


@contextmanager
def exclusive(db: Database, name: str) -> Iterator[None]:
    if db.is_sqlite:
        database = make_url(db.url).database or ""
        if not database or database == ":memory:":
            yield
            return
        with Path(f"{database}.{name}.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    key = zlib.crc32(f"crispml:{name}".encode())
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
