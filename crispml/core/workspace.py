"""The autosaved workspace: every value a user configures, kept per user and project.

Values are JSON documents (a small tagged codec adds dates, times and tuples; no pickle), stored
one row per key so that two tabs changing different values merge rather than overwrite. Every
save bumps the user's revision in the same transaction, so a tab can tell when another tab or
browser wrote since it last looked. A save is one transaction: a crash leaves the last complete
state, never a torn one.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from crispml.core.clock import Clock, utcnow
from crispml.core.errors import InvalidInput
from crispml.store.db import Database
from crispml.store.tables import WorkspaceRow, WorkspaceValueRow
from crispml.store.upsert import upsert

SCHEMA_VERSION = 1
# A stored key: the prefix of a project ("ws.") or user ("wsu.") value and a plain name.
KEY_PATTERN = re.compile(r"^wsu?\.[A-Za-z0-9_.-]{1,150}$")
USER_SCOPE = ""
MAX_VALUE_BYTES = 1_000_000
MAX_KEY_LENGTH = 200


def project_scope(project_id: int | None) -> str:
    return f"p{project_id}" if project_id is not None else "none"


class Unencodable(ValueError):
    """A value that is not plain data (an uploaded file, a DataFrame, ...): never saved."""


def _tag(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_tag(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_tag(v) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise Unencodable("dict keys must be strings")
        if any(k.startswith("$") for k in value):
            raise Unencodable("dict keys must not start with '$'")
        return {k: _tag(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    raise Unencodable(f"cannot keep a {type(value).__name__} in the workspace")


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "$tuple":
                return tuple(_untag(v) for v in inner)
            if tag == "$datetime":
                return dt.datetime.fromisoformat(inner)
            if tag == "$date":
                return dt.date.fromisoformat(inner)
            if tag == "$time":
                return dt.time.fromisoformat(inner)
        return {k: _untag(v) for k, v in value.items()}
    return value


_SCALARS = (str, int, bool, type(None))


def encode(value: Any) -> str:
    """The stored text of a value; raises Unencodable for anything but plain data."""
    if type(value) in _SCALARS:  # the common case (text inputs, numbers): no tagging walk
        text = json.dumps(value)  # (floats, which may be NaN, take the path below)
        if len(text) > MAX_VALUE_BYTES:
            raise Unencodable(f"value larger than {MAX_VALUE_BYTES} bytes")
        return text
    try:
        text = json.dumps(_tag(value), separators=(",", ":"), sort_keys=True, allow_nan=False)
    except ValueError as exc:  # NaN or infinity
        raise Unencodable(str(exc)) from None
    if len(text) > MAX_VALUE_BYTES:
        raise Unencodable(f"value larger than {MAX_VALUE_BYTES} bytes")
    return text


def decode(text: str) -> Any:
    return _untag(json.loads(text))


@dataclass(frozen=True)
class Loaded:
    revision: int
    values: dict[str, str]  # key -> encoded value


@dataclass(frozen=True)
class Saved:
    revision: int
    others_wrote: bool  # someone else saved since the revision this writer knew


class WorkspaceService:
    def __init__(self, db: Database, clock: Clock = utcnow) -> None:
        self._db = db
        self._clock = clock

    def revision(self, user_id: int) -> tuple[int, str]:
        """The user's current revision and the id of the tab that wrote it."""
        with self._db.session() as s:
            row = s.get(WorkspaceRow, user_id)
            return (row.revision, row.writer) if row else (0, "")

    def load(self, user_id: int, scopes: tuple[str, ...]) -> Loaded:
        """Values of the given scopes. The revision is read first: never newer than the values."""
        with self._db.session() as s:
            header = s.get(WorkspaceRow, user_id)
            rows = s.execute(
                select(WorkspaceValueRow.key, WorkspaceValueRow.value).where(
                    WorkspaceValueRow.user_id == user_id, WorkspaceValueRow.scope.in_(scopes)
                )
            ).all()
        return Loaded(header.revision if header else 0, {key: value for key, value in rows})

    def save(
        self,
        user_id: int,
        changes: Mapping[str, Mapping[str, str]],
        *,
        writer: str,
        known_revision: int,
        replace: tuple[str, ...] = (),
    ) -> Saved:
        """Write changed values (scope -> key -> encoded value) in one transaction.

        Scopes named in ``replace`` are emptied first (loading saved work into a project).
        """
        for values in changes.values():
            for key in values:
                if not key or len(key) > MAX_KEY_LENGTH:
                    raise InvalidInput(f"Workspace keys have 1 to {MAX_KEY_LENGTH} characters.")
        now = self._clock()
        with self._db.session() as s:
            ((revision,),) = upsert(
                s,
                WorkspaceRow.__table__,
                [
                    {
                        "user_id": user_id,
                        "revision": 1,
                        "schema_version": SCHEMA_VERSION,
                        "writer": writer,
                        "updated_at": now,
                    }
                ],
                keys=["user_id"],
                update={
                    "revision": WorkspaceRow.__table__.c.revision + 1,
                    "writer": lambda excluded: excluded.writer,
                    "updated_at": lambda excluded: excluded.updated_at,
                },
                returning=["revision"],
            )
            if replace:
                s.execute(
                    delete(WorkspaceValueRow).where(
                        WorkspaceValueRow.user_id == user_id, WorkspaceValueRow.scope.in_(replace)
                    )
                )
            rows = [
                {"user_id": user_id, "scope": scope, "key": key, "value": value, "updated_at": now}
                for scope, values in changes.items()
                for key, value in values.items()
            ]
            upsert(
                s,
                WorkspaceValueRow.__table__,
                rows,
                keys=["user_id", "scope", "key"],
                update={
                    "value": lambda excluded: excluded.value,
                    "updated_at": lambda excluded: excluded.updated_at,
                },
            )
        return Saved(int(revision), others_wrote=int(revision) - 1 != known_revision)

    def clear(self, user_id: int, *, writer: str) -> int:
        """Start fresh: drop every value of the user; returns the new revision."""
        with self._db.session() as s:
            s.execute(delete(WorkspaceValueRow).where(WorkspaceValueRow.user_id == user_id))
        return self.save(user_id, {}, writer=writer, known_revision=-1).revision
