"""Projects: the Business understanding phase. Each user owns their own projects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crispml.core.audit import AuditLog
from crispml.core.auth import User
from crispml.core.clock import Clock, utcnow
from crispml.core.errors import Conflict, InvalidInput, NotFound
from crispml.store.db import Database
from crispml.store.tables import ProjectRow

MAX_NAME = 120
MAX_TEXT = 20_000


@dataclass(frozen=True)
class Project:
    id: int
    owner_id: int
    name: str
    goal: str
    success_criteria: str
    notes: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ProjectFields:
    name: str
    goal: str = ""
    success_criteria: str = ""
    notes: str = ""

    def validated(self) -> ProjectFields:
        name = self.name.strip()
        if not name:
            raise InvalidInput("A project needs a name.")
        if len(name) > MAX_NAME:
            raise InvalidInput(f"A project name has at most {MAX_NAME} characters.")
        for label, text in (
            ("goal", self.goal),
            ("success criteria", self.success_criteria),
            ("notes", self.notes),
        ):
            if len(text) > MAX_TEXT:
                raise InvalidInput(f"The {label} have at most {MAX_TEXT} characters.")
        return ProjectFields(name, self.goal.strip(), self.success_criteria.strip(), self.notes)


def _to_project(row: ProjectRow) -> Project:
    return Project(
        row.id,
        row.owner_id,
        row.name,
        row.goal,
        row.success_criteria,
        row.notes,
        row.created_at,
        row.updated_at,
    )


class ProjectService:
    def __init__(self, db: Database, audit: AuditLog, clock: Clock = utcnow) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        self._cleanups: list[Callable[[int], Callable[[], None]]] = []

    def on_delete(self, prepare: Callable[[int], Callable[[], None]]) -> None:
        """``prepare(project_id)`` runs before a project's rows go (to note what belongs to it)
        and returns what to do once they are gone (remove the files they pointed to)."""
        self._cleanups.append(prepare)

    def list(self, owner_id: int) -> list[Project]:
        """The owner's projects, most recently updated first."""
        query = (
            select(ProjectRow)
            .where(ProjectRow.owner_id == owner_id)
            .order_by(ProjectRow.updated_at.desc(), ProjectRow.id.desc())
        )
        with self._db.session() as s:
            return [_to_project(r) for r in s.scalars(query)]

    def get(self, owner_id: int, project_id: int) -> Project:
        with self._db.session() as s:
            return _to_project(self._row(s, owner_id, project_id))

    def resolve(self, owner: User, name: str | None) -> Project:
        """The owner's project named ``name``; without a name their most recently updated one,
        or a new project "Samples" when they have none (what the CLI's ``--project`` means)."""
        projects = self.list(owner.id)
        if name:
            for project in projects:
                if project.name == name:
                    return project
            raise NotFound(f"{owner.username} has no project named '{name}'.")
        if projects:
            return projects[0]  # the most recently updated
        return self.create(owner.id, ProjectFields(name="Samples"), actor=owner.username)

    def exists(self, owner_id: int, project_id: str, _label: str = "") -> bool:
        """Whether the owner still has this project (a saved-work check; renames are fine)."""
        if not project_id.isdigit():
            return False
        with self._db.session() as s:
            row = s.get(ProjectRow, int(project_id))
            return row is not None and row.owner_id == owner_id

    def create(self, owner_id: int, fields: ProjectFields, *, actor: str) -> Project:
        clean = fields.validated()
        now = self._clock()
        with self._db.session() as s:
            self._check_name_free(s, owner_id, clean.name, None)
            row = ProjectRow(
                owner_id=owner_id,
                name=clean.name,
                goal=clean.goal,
                success_criteria=clean.success_criteria,
                notes=clean.notes,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            self._audit.add(s, actor, "project.create", clean.name)
            s.flush()
            return _to_project(row)

    def update(
        self, owner_id: int, project_id: int, fields: ProjectFields, *, actor: str
    ) -> Project:
        clean = fields.validated()
        with self._db.session() as s:
            row = self._row(s, owner_id, project_id)
            self._check_name_free(s, owner_id, clean.name, project_id)
            row.name, row.goal = clean.name, clean.goal
            row.success_criteria, row.notes = clean.success_criteria, clean.notes
            row.updated_at = self._clock()
            self._audit.add(s, actor, "project.update", clean.name)
            return _to_project(row)

    def delete(self, owner_id: int, project_id: int, *, actor: str) -> None:
        with self._db.session() as s:
            self._row(s, owner_id, project_id)  # exists and is theirs
        after = [prepare(project_id) for prepare in self._cleanups]
        with self._db.session() as s:
            row = self._row(s, owner_id, project_id)
            self._audit.add(s, actor, "project.delete", row.name)
            s.delete(row)
        for cleanup in after:
            cleanup()

    @staticmethod
    def _row(s: Session, owner_id: int, project_id: int) -> ProjectRow:
        row = s.get(ProjectRow, project_id)
        if row is None or row.owner_id != owner_id:
            raise NotFound(f"No project {project_id}.")
        return row

    @staticmethod
    def _check_name_free(s: Session, owner_id: int, name: str, project_id: int | None) -> None:
        existing = s.scalar(
            select(ProjectRow.id).where(ProjectRow.owner_id == owner_id, ProjectRow.name == name)
        )
        if existing is not None and existing != project_id:
            raise Conflict(f"You already have a project named '{name}'.")
