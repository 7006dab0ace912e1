"""The audit log: who did what, when. Written by services, read by admins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crispml.core.clock import Clock, utcnow
from crispml.core.paging import PAGE_SIZE, Page, fetch
from crispml.store.db import Database
from crispml.store.tables import AuditEventRow


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


class AuditLog:
    def __init__(self, db: Database, clock: Clock = utcnow) -> None:
        self._db = db
        self._clock = clock

    def add(
        self, session: Session, actor: str, action: str, target: str = "", detail: str = ""
    ) -> None:
        """Record an event inside the caller's transaction, so it lands with the change."""
        session.add(
            AuditEventRow(
                at=self._clock(), actor=actor, action=action, target=target[:1024], detail=detail
            )
        )

    def record(self, actor: str, action: str, target: str = "", detail: str = "") -> None:
        with self._db.session() as session:
            self.add(session, actor, action, target, detail)

    def recent(self, limit: int = 100, actor: str | None = None) -> list[AuditEvent]:
        return self.page(actor=actor, size=limit).items

    def page(
        self, *, actor: str | None = None, number: int = 1, size: int = PAGE_SIZE
    ) -> Page[AuditEvent]:
        """One page of the log, newest first; ``actor`` keeps one user's events."""
        query = select(AuditEventRow).order_by(AuditEventRow.id.desc())
        if actor:
            query = query.where(AuditEventRow.actor == actor)
        with self._db.session() as session:
            return fetch(session, query, _to_event, number=number, size=size)


def _to_event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(row.at, row.actor, row.action, row.target, row.detail)
