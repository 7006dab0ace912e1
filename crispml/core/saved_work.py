"""Named saved work: snapshots of a workspace a user can list, load, rename, copy, delete, export.

A snapshot holds the workspace's values and the page, and *refers* to artifacts (the project now;
datasets, runs and models as those features arrive) instead of copying them. Loading checks each
reference and reports exactly what no longer exists. The export format is versioned JSON; an
import that is not crispml saved work, is of a newer schema, or is damaged changes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crispml import __version__
from crispml.core.audit import AuditLog
from crispml.core.clock import Clock, utcnow
from crispml.core.errors import Conflict, InvalidInput, NotFound
from crispml.core.paging import PAGE_SIZE, Page, fetch
from crispml.core.workspace import SCHEMA_VERSION, Unencodable, decode, encode
from crispml.store.db import Database
from crispml.store.tables import SavedWorkRow, UserRow

# Saved work holds a project's values only ("ws." keys), never session internals.
PROJECT_KEY_PATTERN = re.compile(r"^ws\.[A-Za-z0-9_.-]{1,150}$")

FORMAT = "crispml-saved-work"
MAX_NAME = 100
MAX_DESCRIPTION = 2000
MAX_IMPORT_BYTES = 20_000_000

# kind -> check(owner_id, artifact_id, label) -> exists. Features register their kinds here.
ArtifactCheck = Callable[[int, str, str], bool]


@dataclass(frozen=True)
class ArtifactRef:
    kind: str  # "project", "dataset", "run", "model"
    id: str
    label: str

    def describe(self) -> str:
        return f"{self.kind} '{self.label}'"


@dataclass(frozen=True)
class Snapshot:
    """What is saved: the page, the values (encoded JSON text by key) and the references."""

    page: str
    values: dict[str, str]
    refs: tuple[ArtifactRef, ...] = ()
    project_id: int | None = None
    project_name: str = ""


@dataclass(frozen=True)
class SavedWorkInfo:
    id: int
    owner: str
    name: str
    description: str
    project_name: str
    holds: str
    size_bytes: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LoadResult:
    snapshot: Snapshot
    missing: list[str] = field(default_factory=list)  # what the saved work refers to but is gone


def _validate_name(name: str) -> str:
    clean = name.strip()
    if not clean:
        raise InvalidInput("Saved work needs a name.")
    if len(clean) > MAX_NAME:
        raise InvalidInput(f"A name has at most {MAX_NAME} characters.")
    return clean


def holds(refs: list[dict[str, str]], values: Mapping[str, Any]) -> str:
    """What a saved work holds, in words ("dataset, project, 12 values"); stored with it."""
    kinds = sorted({r["kind"] for r in refs})
    parts = [*kinds, f"{len(values)} value{'s' if len(values) != 1 else ''}"]
    return ", ".join(parts)


_INFO_COLUMNS = (
    SavedWorkRow.id,
    UserRow.username,
    SavedWorkRow.name,
    SavedWorkRow.description,
    SavedWorkRow.project_name,
    SavedWorkRow.holds,
    SavedWorkRow.size_bytes,
    SavedWorkRow.created_at,
    SavedWorkRow.updated_at,
)


def _to_info(row: Any) -> SavedWorkInfo:
    return SavedWorkInfo(*row)


def _document(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "page": snapshot.page,
        "values": {k: json.loads(v) for k, v in snapshot.values.items()},
        "refs": [{"kind": r.kind, "id": r.id, "label": r.label} for r in snapshot.refs],
    }


def _snapshot(doc: Mapping[str, Any], project_id: int | None, project_name: str) -> Snapshot:
    return Snapshot(
        page=str(doc.get("page", "")),
        values={
            k: json.dumps(v, separators=(",", ":"), sort_keys=True)
            for k, v in doc["values"].items()
        },
        refs=tuple(ArtifactRef(r["kind"], r["id"], r["label"]) for r in doc.get("refs", [])),
        project_id=project_id,
        project_name=project_name,
    )


def parse_export(data: bytes) -> dict[str, Any]:
    """Validate an exported file; raise InvalidInput saying what is wrong with it."""
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput(f"The file is larger than {MAX_IMPORT_BYTES // 1_000_000} MB.")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"The file is not crispml saved work (not valid JSON: {exc}).") from exc
    except (RecursionError, ValueError) as exc:  # absurd nesting, numbers of 4300+ digits
        raise InvalidInput(f"The file is damaged: it cannot be read ({exc}).") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidInput("The file is not crispml saved work (no 'format' marker).")
    schema = doc.get("schema")
    if not isinstance(schema, int) or schema < 1:
        raise InvalidInput("The file is damaged: its schema version is missing or invalid.")
    if schema > SCHEMA_VERSION:
        raise InvalidInput(
            f"The file was made by a newer crispml (schema {schema}); this server reads "
            f"schema {SCHEMA_VERSION} and older. Upgrade crispml to import it."
        )
    values, refs = doc.get("values"), doc.get("refs", [])
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise InvalidInput("The file is damaged: 'values' must map names to values.")
    bad = [k for k in values if not PROJECT_KEY_PATTERN.fullmatch(k)]
    if bad:
        raise InvalidInput(f"The file is damaged: '{bad[0][:60]}' is not a workspace value name.")
    if not isinstance(refs, list) or not all(
        isinstance(r, dict)
        and {"kind", "id", "label"} <= r.keys()
        and all(isinstance(r[k], str) for k in ("kind", "id", "label"))
        for r in refs
    ):
        raise InvalidInput("The file is damaged: 'refs' must list kind, id and label.")
    try:
        for value in values.values():
            encode(decode(json.dumps(value)))
    except (Unencodable, ValueError, TypeError, RecursionError) as exc:
        raise InvalidInput(f"The file is damaged: a value cannot be read ({exc}).") from exc
    if not isinstance(doc.get("name", ""), str) or not isinstance(doc.get("page", ""), str):
        raise InvalidInput("The file is damaged: 'name' and 'page' must be text.")
    return doc


class SavedWorkService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        artifact_checks: Mapping[str, ArtifactCheck] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self._audit = audit
        self._checks: dict[str, ArtifactCheck] = dict(artifact_checks or {})
        self._clock = clock

    def register_artifact_kind(self, kind: str, check: ArtifactCheck) -> None:
        self._checks[kind] = check

    # Reading ----------------------------------------------------------------------------------

    def page(
        self, owner_id: int | None, *, number: int = 1, size: int = PAGE_SIZE
    ) -> Page[SavedWorkInfo]:
        """One page of a user's saved work, or of everyone's with ``owner_id=None`` (admins),
        last changed first. Documents are not read: what each holds is stored beside it."""
        query = (
            select(*_INFO_COLUMNS)
            .join(UserRow, UserRow.id == SavedWorkRow.owner_id)
            .order_by(SavedWorkRow.updated_at.desc(), SavedWorkRow.id.desc())
        )
        if owner_id is not None:
            query = query.where(SavedWorkRow.owner_id == owner_id)
        with self._db.session() as s:
            return fetch(s, query, _to_info, number=number, size=size, scalars=False)

    def load(self, owner_id: int, work_id: int) -> LoadResult:
        """The snapshot, with every reference that no longer resolves listed in ``missing``."""
        with self._db.session() as s:
            row = self._row(s, owner_id, work_id)
            snapshot = _snapshot(json.loads(row.document), row.project_id, row.project_name)
        missing = []
        for ref in snapshot.refs:
            check = self._checks.get(ref.kind)
            if check is None or not check(owner_id, ref.id, ref.label):
                missing.append(ref.describe())
        return LoadResult(snapshot, missing)

    def export(self, owner_id: int | None, work_id: int) -> tuple[str, bytes]:
        """A file name and the JSON bytes of one saved work (any owner's when owner_id is None)."""
        with self._db.session() as s:
            row = self._row(s, owner_id, work_id)
            doc = json.loads(row.document)
            doc.update(
                format=FORMAT,
                name=row.name,
                description=row.description,
                project={"name": row.project_name},
                exported_at=self._clock().isoformat(),
                crispml_version=__version__,
            )
            safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in row.name)[:60]
        return f"{safe or 'saved-work'}.crispml.json", json.dumps(doc, indent=2).encode()

    # Writing ----------------------------------------------------------------------------------

    def save(
        self, owner_id: int, name: str, description: str, snapshot: Snapshot, *, actor: str
    ) -> SavedWorkInfo:
        clean = _validate_name(name)
        if len(description) > MAX_DESCRIPTION:
            raise InvalidInput(f"A description has at most {MAX_DESCRIPTION} characters.")
        doc = _document(snapshot)
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True)
        now = self._clock()
        with self._db.session() as s:
            self._check_name_free(s, owner_id, clean, None)
            row = SavedWorkRow(
                owner_id=owner_id,
                name=clean,
                description=description.strip(),
                project_id=snapshot.project_id,
                project_name=snapshot.project_name,
                document=text,
                holds=holds(doc["refs"], doc["values"]),
                size_bytes=len(text.encode()),
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            self._audit.add(s, actor, "saved_work.save", clean)
            s.flush()
            work_id = row.id
        return self._info(owner_id, work_id)

    def rename(self, owner_id: int, work_id: int, new_name: str, *, actor: str) -> None:
        clean = _validate_name(new_name)
        with self._db.session() as s:
            row = self._row(s, owner_id, work_id)
            self._check_name_free(s, owner_id, clean, work_id)
            self._audit.add(s, actor, "saved_work.rename", row.name, f"to={clean}")
            row.name, row.updated_at = clean, self._clock()

    def duplicate(self, owner_id: int, work_id: int, new_name: str, *, actor: str) -> SavedWorkInfo:
        clean = _validate_name(new_name)
        now = self._clock()
        with self._db.session() as s:
            row = self._row(s, owner_id, work_id)
            self._check_name_free(s, owner_id, clean, None)
            copy = SavedWorkRow(
                owner_id=owner_id,
                name=clean,
                description=row.description,
                project_id=row.project_id,
                project_name=row.project_name,
                document=row.document,
                holds=row.holds,
                size_bytes=row.size_bytes,
                created_at=now,
                updated_at=now,
            )
            s.add(copy)
            self._audit.add(s, actor, "saved_work.duplicate", row.name, f"as={clean}")
            s.flush()
            copy_id = copy.id
        return self._info(owner_id, copy_id)

    def delete(self, owner_id: int | None, work_id: int, *, actor: str) -> None:
        """Delete one saved work; ``owner_id=None`` lets an admin delete anyone's."""
        with self._db.session() as s:
            row = self._row(s, owner_id, work_id)
            self._audit.add(s, actor, "saved_work.delete", row.name)
            s.delete(row)

    def import_(
        self,
        owner_id: int,
        data: bytes,
        *,
        name: str | None,
        project_id: int | None,
        project_name: str,
        actor: str,
    ) -> SavedWorkInfo:
        """Create saved work from an exported file, attached to the given (current) project."""
        doc = parse_export(data)
        # Ids in the file belong to the server it came from. The work joins the given project
        # here; its other references keep their labels but lose their ids, so loading reports
        # them as missing instead of matching something unrelated that has the same id.
        doc["refs"] = [{**r, "id": ""} for r in doc.get("refs", []) if r["kind"] != "project"]
        if project_id is not None:
            doc["refs"].insert(0, {"kind": "project", "id": str(project_id), "label": project_name})
        snapshot = _snapshot(doc, project_id, project_name)
        return self.save(
            owner_id,
            name if name is not None else str(doc.get("name", "")),
            str(doc.get("description", ""))[:MAX_DESCRIPTION],
            snapshot,
            actor=actor,
        )

    # Internals --------------------------------------------------------------------------------

    def _info(self, owner_id: int, work_id: int) -> SavedWorkInfo:
        with self._db.session() as s:
            query = (
                select(*_INFO_COLUMNS)
                .join(UserRow, UserRow.id == SavedWorkRow.owner_id)
                .where(SavedWorkRow.id == work_id, SavedWorkRow.owner_id == owner_id)
            )
            return _to_info(s.execute(query).one())

    @staticmethod
    def _row(s: Session, owner_id: int | None, work_id: int) -> SavedWorkRow:
        row = s.get(SavedWorkRow, work_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise NotFound(f"No saved work {work_id}.")
        return row

    @staticmethod
    def _check_name_free(s: Session, owner_id: int, name: str, work_id: int | None) -> None:
        existing = s.scalar(
            select(SavedWorkRow.id).where(
                SavedWorkRow.owner_id == owner_id, SavedWorkRow.name == name
            )
        )
        if existing is not None and existing != work_id:
            raise Conflict(f"You already have saved work named '{name}'.")
