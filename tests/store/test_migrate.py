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


def test_saved_work_gains_what_it_holds_from_its_document(database_url: str) -> None:
    """0014 stores what each saved work holds, read once from the documents already saved."""
    db = Database(database_url)
    try:
        upgrade(db, "0013")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, username, password_hash, role, active, created_at,"
                    " password_changed_at) VALUES (7, 'ann', 'x', 'user', true, :t, :t)"
                ),
                {"t": "2026-12-01 10:00:00"},
            )
            document = '{"refs":[{"kind":"project","id":"1","label":"P"}],"values":{"ws.a":1}}'
            for work_id, doc in ((1, document), (2, "not json")):
                conn.execute(
                    text(
                        "INSERT INTO saved_work (id, owner_id, name, description, project_name,"
                        " document, size_bytes, created_at, updated_at) VALUES"
                        " (:id, 7, :name, '', 'P', :doc, 10, :t, :t)"
                    ),
                    {"id": work_id, "name": f"w{work_id}", "doc": doc, "t": "2026-12-01 10:00:00"},
                )
        upgrade(db)
        with db.engine.connect() as conn:
            holds = dict(conn.execute(text("SELECT id, holds FROM saved_work")).all())
        assert holds == {1: "project, 1 value", 2: ""}
        indexes = {i["name"] for i in inspect(db.engine).get_indexes("saved_work")}
        assert {"ix_saved_work_updated_id", "ix_saved_work_owner_updated_id"} <= indexes
    finally:
        db.dispose()


def test_the_migrations_make_the_schema_the_code_declares(database_url: str) -> None:
    """Tables, columns and indexes after every migration are those of crispml.store.tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from crispml.store.tables import Base

    db = Database(database_url)
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        ignored = {"alembic_version"}
        differences = [d for d in diff if not (d[0] == "remove_table" and d[1].name in ignored)]
        assert differences == []
    finally:
        db.dispose()
