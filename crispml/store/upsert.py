"""INSERT ... ON CONFLICT DO UPDATE for the two backends, with RETURNING."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import FromClause
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert(
    session: Session,
    table: FromClause,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    update: Mapping[str, Any],
    returning: Sequence[str] = (),
) -> list[Any]:
    """Insert ``rows``; on a key conflict set ``update`` (values may use ``excluded``)."""
    if not rows:
        return []
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(table).values(list(rows))
    values = {k: (v(stmt.excluded) if callable(v) else v) for k, v in update.items()}
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=values)
    if returning:
        return list(session.execute(stmt.returning(*(table.c[c] for c in returning))))
    session.execute(stmt)
    return []
