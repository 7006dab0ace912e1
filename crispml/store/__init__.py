"""Persistence: SQLAlchemy 2 tables, the engine (SQLite default, PostgreSQL by URL), migrations."""

from crispml.store.db import Database

__all__ = ["Database"]
