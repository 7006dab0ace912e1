"""Alembic migrations, applied at start-up under a lock and by ``crispml db upgrade``.

Several processes may start at once (web replicas, CLI commands). PostgreSQL serialises them with
an advisory lock; SQLite with an exclusive file lock beside the database file.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from crispml.store.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x63726973706D6C  # "crispml"


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _file_lock(db: Database) -> Iterator[None]:
    database = make_url(db.url).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to call from many processes at once."""
    if db.is_sqlite:
        with _file_lock(db), db.engine.begin() as conn:
            command.upgrade(_config(conn), revision)
        return
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
        conn.commit()
        try:
            with conn.begin():
                command.upgrade(_config(conn), revision)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()
