"""The database handle: one engine, sessions as transactions.

SQLite is the embedded default, tuned for a web server with threads: WAL (readers never block the
writer), foreign keys on, and a busy timeout so concurrent writers wait instead of failing.
PostgreSQL is the same code with another URL.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from time import time
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crispml.errors import Unavailable

log = logging.getLogger("crispml.store")

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def fault_detail(exc: BaseException) -> str:
    """The driver's own words about a fault (for the server's log)."""
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0][:300]


def describe_fault(exc: BaseException, url: str) -> str:
    """What a database fault means, for the person who met it (who may not be logged in: no
    host names or driver messages; those are in :func:`fault_detail`, for the log)."""
    detail = fault_detail(exc)
    lowered = detail.lower()
    if "disk is full" in lowered or "no space left" in lowered or "could not extend" in lowered:
        return (
            "The database cannot be written: the disk is full. Nothing of this request was "
            "saved; what was saved before is kept. Free space on the disk and try again."
        )
    if url.startswith("sqlite"):
        return "The database file cannot be used now (see the server's log). Try again soon."
    return (
        "The database server cannot be reached or refused the request (see the server's log). "
        "It may be restarting: try again in a moment."
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """An engine plus a session factory. ``with db.session() as s:`` is one transaction."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=10)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction; the database's own faults (a full disk, a server that cannot be
        reached) become :class:`Unavailable` with a message for people, never SQLAlchemy's."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException as exc:
            with contextlib.suppress(Exception):  # rolling back a lost connection fails too
                session.rollback()
            if isinstance(exc, (OperationalError, InterfaceError)):
                raise Unavailable(describe_fault(exc, self.url), fault_detail(exc)) from exc
            raise
        finally:
            with contextlib.suppress(Exception):
                session.close()

    def write_check(self) -> str:
        """'' when a write can be made now, else why not (for /healthz): one committed write
        to a one-row table, so a full disk or a read-only database shows."""
        try:
            with self.session() as s:
                s.execute(text("UPDATE health SET checked_at = :now WHERE id = 1"), {"now": time()})
        except Unavailable as exc:
            log.warning("health check: %s (%s)", exc, exc.detail)
            return str(exc)
        except Exception as exc:  # e.g. before the migrations made the table
            return f"The database cannot be written ({type(exc).__name__})."
        return ""

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()
