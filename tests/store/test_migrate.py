"""Migrations on both databases, and concurrent start-ups racing to migrate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from crispml.store.db import Database
from crispml.store.migrate import current_revision, head_revision, upgrade


def test_upgrade_creates_every_table_and_is_idempotent(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert current_revision(db) is None
        upgrade(db)
        upgrade(db)
        assert current_revision(db) == head_revision()
        tables = set(inspect(db.engine).get_table_names())
        assert {"users", "login_sessions", "login_throttle", "projects", "audit_events"} <= tables
    finally:
        db.dispose()


def test_sqlite_is_tuned_for_a_threaded_server(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    db.dispose()


def test_postgres_url_uses_psycopg3() -> None:
    assert Database("postgresql://u@127.0.0.1/db").url.startswith("postgresql+psycopg://")


def test_concurrent_upgrades_from_many_processes(database_url: str) -> None:
    """Four processes start at once on a fresh database: the lock serialises them, none fails."""
    code = (
        "import sys; from crispml.store.db import Database;"
        "from crispml.store.migrate import upgrade; upgrade(Database(sys.argv[1]))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    db = Database(database_url)
    assert current_revision(db) == head_revision()
    db.dispose()
